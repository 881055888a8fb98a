#!/usr/bin/env python3
"""Writes the fuzz regression corpus: fuzz/regress/fuzz_record/* (single
records) and fuzz/regress/fuzz_open/* (stores framed as fuzzfiles.h says:
[u8 name length][name][u32 LE size][bytes] per file). Each input is one
shape the decoder or recovery must handle: the edges of the formats in the
byte tables of store/log.c and store/compact.c, and the shapes of bugs
found before (an empty newest segment left by a kill, a length running
past the mapped file). .ci/run hands these directories to each fuzzer as a
second corpus, so every input runs at every CI pass; the files are
committed, this script only says how they were made.
    python3 fuzz/regress/make_regress.py   (from the repository root)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

PUT, DEL, COMMIT, ABORT, ROLLBACK_TO = 1, 2, 3, 4, 5
SELF = 0x01  # SELFCOMMIT: the record is a whole transaction


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def record(kind, key=b"", val=b"", txn=1, flags=0, n_key=None, n_val=None,
           bad_crc=False, expires=None):
    """A record: 20-byte header (CRC of bytes 4..end, kind, flags, key and
    value lengths, transaction id), the 8-byte expiry when given (flag 0x02
    is the caller's to set), then key and value."""
    body = struct.pack("<BBHIQ", kind, flags,
                       len(key) if n_key is None else n_key,
                       len(val) if n_val is None else n_val, txn)
    if expires is not None:
        body += struct.pack("<q", expires)
    body += key + val
    crc = crc32c(body) ^ (1 if bad_crc else 0)
    return struct.pack("<I", crc) + body


def seg_header(seq, cap=65536, flags=0, version=1):
    # version 1 files are still read; 3 is what the engine writes.
    """The 32-byte segment header."""
    a = b"hkvlog\r\n" + struct.pack("<IIQI", version, flags, seq, cap)
    return a + struct.pack("<I", crc32c(a))


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def manifest(entries, mark=0):
    """MANIFEST listing (file id, order, kind) entries."""
    a = b"hkvmanif" + struct.pack("<IIII", 1, len(entries), mark, 0)
    for e in entries:
        a += struct.pack("<III", *e)
    return a + struct.pack("<I", crc32c(a))


def compact_hint(file_id, entries):
    """Compaction hint, version 1: (offset, key) per record."""
    a = b"hkvhint\n" + struct.pack("<II", file_id, len(entries))
    last = 32
    for off, key in entries:
        a += varint(off - last) + varint(len(key)) + key
        last = off
    return a + struct.pack("<I", crc32c(a))


def compact_hint2(file_id, entries):
    """Compaction hint, version 2: (offset, key, expiry) per record."""
    a = b"hkvhint2" + struct.pack("<II", file_id, len(entries))
    last = 32
    for off, key, exp in entries:
        a += varint(off - last) + varint(len(key)) + varint(exp) + key
        last = off
    return a + struct.pack("<I", crc32c(a))


def frame(files):
    out = b""
    for name, data in files:
        n = name.encode()
        out += bytes([len(n)]) + n + struct.pack("<I", len(data)) + data
    return out


def put(k, v, txn):
    return record(PUT, k, v, txn, SELF)


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_record: one record's bytes ----
records = {
    "put-valid": put(b"key", b"value", 1),
    "put-empty-value": put(b"k", b"", 2),
    "put-bad-crc": record(PUT, b"key", b"value", 1, SELF, bad_crc=True),
    "header-19-bytes": put(b"key", b"value", 1)[:19],
    "header-only-claims-key": put(b"key", b"", 1)[:20],
    "put-no-key": record(PUT, b"", b"value", 1, SELF),
    "put-value-past-end": record(PUT, b"k", b"v", 1, SELF, n_val=2),
    "put-value-length-max": record(PUT, b"k", b"v", 1, SELF, n_val=0xFFFFFFFF),
    "put-value-over-limit": record(PUT, b"k", b"", 1, SELF,
                                   n_val=1000000001),
    "put-key-length-max": record(PUT, b"k", b"", 1, SELF, n_key=0xFFFF),
    # Flag 0x02: an 8-byte expiry (Unix ms, above 0) after the header.
    "put-expires": record(PUT, b"k", b"v", 1, SELF | 0x02,
                          expires=1700000000000),
    "put-expires-zero": record(PUT, b"k", b"v", 1, SELF | 0x02, expires=0),
    "put-expires-negative": record(PUT, b"k", b"v", 1, SELF | 0x02,
                                   expires=-1),
    "put-expires-cut": record(PUT, b"k", b"v", 1, SELF | 0x02,
                              expires=1700000000000)[:25],
    "put-expires-flag-no-field": record(PUT, b"", b"", 1, SELF | 0x02),
    "del-expires": record(DEL, b"k", b"", 1, SELF | 0x02,
                          expires=1700000000000),
    "put-unknown-flag": record(PUT, b"k", b"v", 1, 0x80),
    "del-valid": record(DEL, b"key", b"", 3, SELF),
    "del-with-value": record(DEL, b"key", b"v", 3, SELF),
    "del-no-key": record(DEL, b"", b"", 3, SELF),
    "commit-valid": record(COMMIT, txn=4),
    "commit-with-key": record(COMMIT, b"k", b"", 4),
    "abort-valid": record(ABORT, txn=4),
    "rollback-to-valid": record(ROLLBACK_TO, b"",
                                struct.pack("<Q", (1 << 32) | 32), 5),
    "rollback-to-short": record(ROLLBACK_TO, b"", b"\0\0\0\0", 5),
    "rollback-to-with-flags": record(ROLLBACK_TO, b"", b"\0" * 8, 5, SELF),
    "kind-0": record(0, b"k", b"v", 1),
    "kind-6": record(6, b"k", b"v", 1),
    "two-records": put(b"a", b"1", 1) + put(b"b", b"2", 2),
}
for name, data in records.items():
    write("fuzz_record", name, data)

# ---- fuzz_open: stores ----
seg1 = seg_header(1) + put(b"a", b"1", 1) + put(b"b", b"2", 2)
txn = (record(PUT, b"c", b"3", 7) + record(PUT, b"d", b"4", 7) +
       record(COMMIT, txn=7))
stores = {
    # A kill between creating a new segment and writing its header left
    # an empty newest segment (the bug test_crash found): and one with only
    # its header.
    "empty-newest-segment": [("00000001.hkd", seg1), ("00000002.hkd", b"")],
    "header-only-newest-segment": [("00000001.hkd", seg1),
                                   ("00000002.hkd", seg_header(2))],
    "torn-tail": [("00000001.hkd", seg1 + put(b"c", b"3", 3)[:25])],
    "open-transaction-at-tail": [("00000001.hkd",
                                  seg1 + record(PUT, b"c", b"3", 9))],
    "transaction": [("00000001.hkd", seg1 + txn)],
    "commit-revoked": [("00000001.hkd",
                        seg1 + txn + record(ABORT, txn=7))],
    "rollback-to-savepoint": [(
        "00000001.hkd",
        seg1 + record(PUT, b"c", b"3", 8) + record(PUT, b"d", b"4", 8) +
        record(ROLLBACK_TO, b"", struct.pack("<Q", (1 << 32) + 32 + 2 * 22 +
                                             22), 8) +
        record(COMMIT, txn=8))],
    "rollback-to-elsewhere": [(
        "00000001.hkd",
        seg1 + record(PUT, b"c", b"3", 8) +
        record(ROLLBACK_TO, b"", struct.pack("<Q", (7 << 32) + 99999), 8) +
        record(COMMIT, txn=8))],
    # A length running past the file (the mapping is longer: a read that
    # trusted it would die of SIGBUS), in the newest and in a sealed
    # segment.
    "length-past-file-newest": [(
        "00000001.hkd",
        seg1 + record(PUT, b"c", b"3", 3, SELF, n_val=100000))],
    "length-past-file-sealed": [
        ("00000001.hkd", seg_header(1) + record(PUT, b"c", b"3", 3, SELF,
                                                  n_val=100000)),
        ("00000002.hkd", seg_header(2) + put(b"z", b"9", 4))],
    "bad-record-then-valid": [(
        "00000001.hkd",
        seg_header(1) + put(b"a", b"1", 1) +
        record(PUT, b"b", b"2", 2, SELF, bad_crc=True) + put(b"c", b"3", 3))],
    "sequence-not-the-name": [("00000001.hkd", seg1),
                              ("00000002.hkd", seg_header(3))],
    "unknown-segment-flags": [("00000001.hkd", seg_header(1, flags=1) +
                               put(b"a", b"1", 1))],
    "unknown-format-version": [("00000001.hkd", seg_header(1, version=4))],
    # Keys that expire: one in 2023 (expired by any real clock), one in
    # 2100, one never, and the older record of the expired key under it.
    "expiring": [("00000001.hkd", seg_header(1, version=3) +
                  put(b"a", b"old", 1) +
                  record(PUT, b"a", b"1", 2, SELF | 0x02,
                         expires=1700000000000) +
                  record(PUT, b"b", b"2", 3, SELF | 0x02,
                         expires=4102444800000) +
                  put(b"c", b"3", 4))],
    "capacity-below-file": [("00000001.hkd", seg_header(1, cap=40) +
                             put(b"a", b"1", 1) + put(b"b", b"2", 2))],
    "capacity-zero": [("00000001.hkd", seg_header(1, cap=0) +
                       put(b"a", b"1", 1))],
    "manifest-garbage": [("00000001.hkd", seg1),
                         ("MANIFEST", b"hkvmanif" + b"\xff" * 40)],
    "manifest-lists-missing-file": [("00000003.hkd", seg_header(3)),
                                    ("MANIFEST", manifest([(2, 2, 2)], 1))],
}
# A compacted store: one .hkc with its hint, listed in MANIFEST, and the
# active segment above the mark; then hints that lie.
hkc = seg_header(2, cap=0) + put(b"k1", b"v1", 1) + put(b"k2", b"v2", 2)
good = [("00000002.hkc", hkc), ("00000003.hkd", seg_header(3)),
        ("MANIFEST", manifest([(2, 2, 2)], 1))]
stores["compacted"] = good + [
    ("00000002.hkh", compact_hint(2, [(32, b"k1"), (56, b"k2")]))]
stores["hint-offset-past-segment"] = good + [
    ("00000002.hkh", compact_hint(2, [(32, b"k1"), (5000, b"k2")]))]
# A hint naming a key that is not its record's, under a good checksum: the
# segment is read instead of the hint.
stores["hint-wrong-key"] = good + [
    ("00000002.hkh", compact_hint(2, [(32, b"k1"), (56, b"zz")]))]
stores["hint-offset-inside-record"] = good + [
    ("00000002.hkh", compact_hint(2, [(32, b"k1"), (40, b"k2")]))]
stores["hint-other-file"] = good + [
    ("00000002.hkh", compact_hint(9, [(32, b"k1"), (56, b"k2")]))]
# A varint of eleven bytes, under a correct checksum.
bad = b"hkvhint\n" + struct.pack("<II", 2, 1) + b"\xff" * 10 + b"\x01\x02k1"
stores["hint-varint-overflow"] = good + [
    ("00000002.hkh", bad + struct.pack("<I", crc32c(bad)))]
# Version 2 hints, with expiries: a compacted store of an expired key (2023)
# and one expiring in 2100; then a hint whose record lengths are too short
# for the expiry it claims.
FAR = 4102444800000
hkc2 = (seg_header(2, cap=0, version=3) +
        record(PUT, b"k1", b"v1", 1, SELF | 0x02, expires=1700000000000) +
        record(PUT, b"k2", b"v2", 2, SELF | 0x02, expires=FAR))
good2 = [("00000002.hkc", hkc2), ("00000003.hkd", seg_header(3, version=3)),
         ("MANIFEST", manifest([(2, 2, 2)], 1))]
stores["compacted-expiring"] = good2 + [
    ("00000002.hkh", compact_hint2(2, [(32, b"k1", 1700000000000),
                                       (64, b"k2", FAR)]))]
stores["hint2-records-overlap"] = good2 + [
    ("00000002.hkh", compact_hint2(2, [(32, b"k1", 1700000000000),
                                       (50, b"k2", FAR)]))]


def log_hint(file_id, recs):
    """Sealed-segment hint: per record its offset, kind, flags, lengths,
    transaction, expiry (with flag 0x02) and key (recs: (offset, kind,
    flags, key, n_val, txn[, expiry]))."""
    a = b"hkvloghn" + struct.pack("<I", file_id)
    last = 32
    for r in recs:
        off, kind, flags, key, n_val, txn = r[:6]
        a += (varint(off - last) + bytes([kind, flags]) + varint(len(key)) +
              varint(n_val) + varint(txn) +
              (varint(r[6]) if flags & 0x02 else b"") + key)
        last = off
    a += struct.pack("<I", len(recs))
    return a + struct.pack("<I", crc32c(a))


sealed = [("00000001.hkd", seg1), ("00000002.hkd", seg_header(2) +
                                   put(b"z", b"9", 4))]
stores["log-hint"] = sealed + [
    ("00000001.hkh", log_hint(1, [(32, PUT, SELF, b"a", 1, 1),
                                  (54, PUT, SELF, b"b", 1, 2)]))]
# Hints that do not cover the segment exactly, or claim other records.
stores["log-hint-short"] = sealed + [
    ("00000001.hkh", log_hint(1, [(32, PUT, SELF, b"a", 1, 1)]))]
stores["log-hint-past-end"] = sealed + [
    ("00000001.hkh", log_hint(1, [(32, PUT, SELF, b"a", 1, 1),
                                  (54, PUT, SELF, b"b", 60000, 2)]))]
stores["log-hint-open-transaction"] = sealed + [
    ("00000001.hkh", log_hint(1, [(32, PUT, 0, b"a", 1, 1),
                                  (54, PUT, 0, b"b", 1, 1)]))]
seg1e = (seg_header(1, version=3) + put(b"a", b"1", 1) +
         record(PUT, b"b", b"2", 2, SELF | 0x02, expires=1700000000000))
sealed_e = [("00000001.hkd", seg1e), ("00000002.hkd", seg_header(
    2, version=3) + put(b"z", b"9", 4))]
stores["log-hint-expiring"] = sealed_e + [
    ("00000001.hkh", log_hint(1, [(32, PUT, SELF, b"a", 1, 1),
                                  (54, PUT, SELF | 2, b"b", 1, 2,
                                   1700000000000)]))]
# The hint says the record has no expiry: its lengths then do not cover
# the segment, and the segment is read instead.
stores["log-hint-expiry-missing"] = sealed_e + [
    ("00000001.hkh", log_hint(1, [(32, PUT, SELF, b"a", 1, 1),
                                  (54, PUT, SELF, b"b", 1, 2)]))]
for name, files in stores.items():
    write("fuzz_open", name, frame(files))
