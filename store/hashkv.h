/*
** hashkv.h: the public interface of the hashkv storage engine.
**
** hashkv is a Bitcask-style key-value store: every write is appended to a
** log of checksummed records split into segment files, and an in-memory hash
** index maps each key to its newest record. This header is the only one that
** clients (the SQLite module, the benchmarks, the tests) include.
**
** Conventions
**   - Every function returns an int status: HKV_OK (0) or one of the codes of
**     HKV_CODE_MAP. hkv_codename() and hkv_strerror() name them; hkv_errmsg()
**     gives the detailed message of the last failure on a handle.
**   - A handle (hkv_db) is used by one thread at a time, like a sqlite3
**     connection. Several handles on the same directory in one process share
**     one engine; they may be used from different threads at once.
**   - Several processes may open one store: any number read, one writes at
**     a time (the write lock is taken at a transaction's first write and
**     released at its end; another writer gets BUSY). Each read sees every
**     transaction any process committed before it began.
**   - Keys are 1..HKV_MAX_KEY bytes, values 0..HKV_MAX_VALUE bytes; both are
**     arbitrary bytes (NUL, newline, any value).
**   - FULL is the IOERR of a write that found no space (ENOSPC, EDQUOT):
**     wherever a function below lists IOERR, it may return FULL instead,
**     with the same effect (the store refuses writes until reopened).
**   - Pointers returned into the store stay valid until the next call on the
**     same handle (any hkv_* call taking that handle) or its close; the
**     caller never frees them.
*/
#ifndef HASHKV_H
#define HASHKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HKV_VERSION_STRING "0.1.0"
#define HKV_VERSION_NUMBER 1000 /* major*1000000 + minor*1000 + patch */

#define HKV_MAX_KEY 65535u
#define HKV_MAX_VALUE 1000000000u

/*
** Status codes: name, value, message. The first column becomes HKV_<name>.
*/
#define HKV_CODE_MAP(X)                                               \
  X(OK, 0, "not an error")                                            \
  X(MISUSE, 1, "library misuse (bad argument or call out of order)")  \
  X(NOMEM, 2, "out of memory")                                        \
  X(IOERR, 3, "I/O error")                                            \
  X(CORRUPT, 4, "store file is corrupt")                              \
  X(BUSY, 5, "another handle or process is writing the store")        \
  X(LOCKED, 6, "store is locked (no longer returned)")                \
  X(NOTFOUND, 7, "key not found")                                     \
  X(TOOBIG, 8, "key or value too large")                              \
  X(READONLY, 9, "store is open read-only")                           \
  X(FAILED, 10, "store refuses writes after an I/O error; reopen it") \
  X(DONE, 11, "no more entries")                                      \
  X(NOTSTORE, 12, "not a hashkv store")                               \
  X(CANTOPEN, 13, "cannot open store")                                \
  X(EXISTS, 14, "key already exists")                                 \
  X(FULL, 15, "disk full (or over quota)")                            \
  X(ABORTED, 16, "stopped by the caller")

enum hkv_code {
#define HKV_CODE_ENUM(name, val, msg) HKV_##name = val,
  HKV_CODE_MAP(HKV_CODE_ENUM)
#undef HKV_CODE_ENUM
};

/* Name ("HKV_NOTFOUND") and generic message of a code. Static strings. */
const char *hkv_codename(int rc);
const char *hkv_strerror(int rc);

/* Durability of a commit. */
enum hkv_sync {
  HKV_SYNC_OFF = 0,    /* no fsync at all; commits reach the OS (see README) */
  HKV_SYNC_NORMAL = 1, /* commit returns once written to the OS */
  HKV_SYNC_FULL = 2    /* commit returns after fsync; dirs fsynced too */
};

/* Open flags. */
#define HKV_OPEN_READONLY 0x01 /* no writes; never creates or repairs */
#define HKV_OPEN_NOCREATE 0x02 /* the store must exist already */

typedef struct hkv_options {
  unsigned flags;        /* HKV_OPEN_* */
  int sync;              /* enum hkv_sync; default HKV_SYNC_FULL */
  uint64_t segment_size; /* bytes at which a segment is sealed; 0 = default */
  double auto_compact;   /* start compacting when dead bytes reach this share
                         ** of the sealed segments; 0 = never by itself */
  uint64_t auto_compact_min; /* ... and sealed segments hold at least this */
} hkv_options;

#define HKV_DEFAULT_SEGMENT_SIZE (128u << 20)
#define HKV_MIN_SEGMENT_SIZE 4096u
#define HKV_MAX_SEGMENT_SIZE (1u << 30)
#define HKV_DEFAULT_AUTO_COMPACT 0.5
#define HKV_DEFAULT_AUTO_COMPACT_MIN (64u << 20)

/* Fills *pOpts with the defaults. Always HKV_OK. */
int hkv_options_init(hkv_options *pOpts);

typedef struct hkv_db hkv_db;
typedef struct hkv_iter hkv_iter;

/*
** Opens (creating it unless HKV_OPEN_NOCREATE or READONLY) the store in
** directory zPath and returns a new handle in *ppDb. pOpts may be NULL for the
** defaults. Opening a directory this process already has open shares its
** engine (segment_size is then the first opener's). Recovery runs at the
** first open: see hkv_stats.recovered_*.
** Returns OK, MISUSE, NOMEM, IOERR, CANTOPEN, NOTSTORE, CORRUPT (message names
** file and offset), READONLY (a writable
** open of a store this process holds read-only).
** On failure *ppDb is NULL, except when a handle could be made: then *ppDb
** holds it so hkv_errmsg() can be read, and it must be closed.
*/
int hkv_open(const char *zPath, const hkv_options *pOpts, hkv_db **ppDb);

/*
** Closes a handle; an open transaction is rolled back. The last handle on an
** engine closes its files. NULL is a no-op. Always HKV_OK.
*/
int hkv_close(hkv_db *db);

/*
** Closes db and deletes its store: every segment file, then the directory
** db was opened with if nothing else is left in it. Returns BUSY (and db
** stays open, nothing removed) if other handles of this process, or another
** process, have the store open; READONLY for a read-only handle; IOERR if a
** file could not be removed (db is closed all the same).
*/
int hkv_destroy(hkv_db *db);

/*
** HKV_OK if db is the only handle on its store, in this process and in
** every other: what hkv_destroy needs. HKV_BUSY, with a message saying
** which, otherwise. Takes no lock, so the answer holds only until another
** handle opens the store.
*/
int hkv_sole_handle(hkv_db *db);

/*
** Whether this process may write the store in directory zPath: for a caller
** choosing between a writable and a read-only open (as SQLite opens a
** database file it cannot write read-only). HKV_OK if it may, or if that
** cannot be told (the open then reports); HKV_READONLY if the directory lies
** on a read-only file system; HKV_CANTOPEN if the directory or a file of the
** store this process would write is write-protected. Opens nothing.
*/
int hkv_writable(const char *zPath);

/* Message of the last failed call on db (or "not an error"). Valid until
** the next call on db. */
const char *hkv_errmsg(hkv_db *db);

/*
** Reads key. On HKV_OK, *ppVal and *pnVal point to the value inside the store:
** valid until the next call on db; do not free or write. Inside a write
** transaction the handle sees its own writes; otherwise committed data.
** Returns OK, NOTFOUND, MISUSE, TOOBIG (key length out of range), CORRUPT
** (checksum mismatch: message names file and offset).
*/
int hkv_get(hkv_db *db, const void *pKey, size_t nKey, const void **ppVal,
            size_t *pnVal);

/*
** Writes key=value. Outside a transaction it commits by itself (with the
** handle's sync mode). Returns OK, MISUSE, TOOBIG, READONLY, BUSY (another
** handle is writing), FAILED, IOERR, NOMEM. On failure nothing is written
** (an IOERR makes the store FAILED until reopened).
*/
int hkv_put(hkv_db *db, const void *pKey, size_t nKey, const void *pVal,
            size_t nVal);

/* As hkv_put, but only if key is absent: EXISTS (nothing written) if it is
** present. One index probe, where hkv_get then hkv_put take two. */
int hkv_insert(hkv_db *db, const void *pKey, size_t nKey, const void *pVal,
               size_t nVal);

/* Deletes key. Returns NOTFOUND (nothing written) if absent; otherwise as
** hkv_put. */
int hkv_delete(hkv_db *db, const void *pKey, size_t nKey);

/*
** Keys that expire. An expiry is a wall-clock time in milliseconds since the
** Unix epoch (UTC); 0 means never. A key whose expiry is not after the
** clock's now is gone: hkv_get, hkv_get_expiry, iteration, hkv_delete and
** hkv_insert treat it as absent, in every process (each reads its own
** clock when it reads), after a reopen or a crash, and compaction reclaims
** its bytes and index slot without any call (see README, "Keys that
** expire"). hkv_put and hkv_insert write keys that never expire, clearing
** any expiry the key had.
**
** hkv_put_expiring: as hkv_put, the key expiring at iExpireAt (0: never).
**   An iExpireAt already past (or below 0) deletes the key instead, and
**   returns OK whether or not it was there.
** hkv_insert_expiring: as hkv_insert (EXISTS if the key is there and has
**   not expired), expiring at iExpireAt; already past: OK, nothing written.
** hkv_expire: sets the expiry of a present key to iExpireAt (0: never
**   expires), keeping its value. NOTFOUND (nothing written) if the key is
**   absent or has expired; an iExpireAt already past deletes it. Otherwise
**   returns as hkv_put.
** hkv_get_expiry: *piExpireAt = the key's expiry (0: never). Returns OK,
**   NOTFOUND (absent or expired; *piExpireAt = 0), MISUSE, TOOBIG, CORRUPT,
**   as hkv_get.
** Inside a transaction these write and see its state, like hkv_put/hkv_get.
*/
int hkv_put_expiring(hkv_db *db, const void *pKey, size_t nKey,
                     const void *pVal, size_t nVal, int64_t iExpireAt);
int hkv_insert_expiring(hkv_db *db, const void *pKey, size_t nKey,
                        const void *pVal, size_t nVal, int64_t iExpireAt);
int hkv_expire(hkv_db *db, const void *pKey, size_t nKey, int64_t iExpireAt);
int hkv_get_expiry(hkv_db *db, const void *pKey, size_t nKey,
                   int64_t *piExpireAt);

/*
** Transactions. hkv_begin opens one (MISUSE if already open). The write
** lock of the engine is taken at the first put/delete, not at begin, so a
** transaction that only reads never blocks other writers.
**
** Commit is two-phase for SQLite's xSync/xCommit:
**   hkv_prepare: writes the commit record and makes it durable per sync
**     mode. May be called twice. Other handles still see the old state.
**     Fails with IOERR/FAILED/NOMEM; the transaction stays open (roll back).
**   hkv_commit: prepares if not yet done, then publishes in memory. After a
**     successful hkv_prepare it cannot fail.
**   hkv_rollback: undoes everything. After hkv_prepare it revokes the
**     durable commit with an abort record, so a reopen does not show it.
** Savepoints are numbered like SQLite's: hkv_savepoint(db, n) marks level n
** (dropping marks >= n; levels below n not marked yet are marked at the
** start of the transaction, as if opened before it); hkv_rollback_to(db, n)
** undoes writes after mark n and keeps it (n = -1: back to the start of the
** transaction, which stays open); hkv_release(db, n) drops marks >= n and
** keeps the writes. All return MISUSE outside a transaction or for an
** unknown level. hkv_savepoint_levels(db) is the number of levels marked
** (0 .. n-1; 0 outside a transaction).
*/
int hkv_begin(hkv_db *db);
int hkv_prepare(hkv_db *db);
int hkv_commit(hkv_db *db);
int hkv_rollback(hkv_db *db);
int hkv_savepoint(hkv_db *db, int iLevel);
int hkv_rollback_to(hkv_db *db, int iLevel);
int hkv_release(hkv_db *db, int iLevel);
int hkv_savepoint_levels(hkv_db *db);

/* Nonzero if db has an open transaction. */
int hkv_in_transaction(hkv_db *db);

/* Nonzero if db's open transaction holds writes: puts or deletes not
** rolled back (0 outside a transaction). */
int hkv_txn_dirty(hkv_db *db);

/*
** Takes the write lock for db's open transaction now, as its first write
** would (SQLite's BEGIN IMMEDIATE): from then on its reads see the newest
** committed data of every process and no other writer can come between a
** read and the write that depends on it. Returns OK (also if already held),
** BUSY (another handle or process is writing: nothing changed, try again),
** MISUSE (no transaction), READONLY, FAILED, IOERR.
*/
int hkv_write_lock(hkv_db *db);

/*
** Iteration over a snapshot of the live entries, in log order (segment by
** segment, each from its start: the order of the files' bytes, so a scan
** reads them sequentially; no order of keys). The snapshot is taken by
** hkv_iter_open: later writes (by this or other handles) are not seen, and
** every entry of the snapshot is returned once. hkv_iter_open returns OK,
** NOMEM (nothing open, *ppIter 0), MISUSE, or what a read of another
** process's commits returns (IOERR, CORRUPT, BUSY). hkv_iter_next moves to
** the next entry and returns OK with *ppKey..*pnVal set (valid until the
** next call on the iterator, or a write on db), DONE at the end, CORRUPT on
** a bad record (its checksum included). The iterator belongs to db's
** thread; close it before db.
*/
int hkv_iter_open(hkv_db *db, hkv_iter **ppIter);
int hkv_iter_next(hkv_iter *pIter, const void **ppKey, size_t *pnKey,
                  const void **ppVal, size_t *pnVal);
/* The expiry (Unix ms, 0: never) of the entry the iterator is on (after
** hkv_iter_next, hkv_iter_next_key or hkv_iter_skip). An entry that has
** expired by the time the iterator reaches it is skipped by all three.
** Returns OK, or MISUSE when the iterator is on no entry. */
int hkv_iter_expiry(hkv_iter *pIter, int64_t *piExpireAt);
/*
** hkv_iter_next_key moves to the next entry like hkv_iter_next but returns
** its key only: the value is not read and the record's checksum is not
** checked (its header is: a bad one is CORRUPT), so a caller that drops
** most entries by key reads only their keys. hkv_iter_current returns the
** entry the iterator is on (after hkv_iter_next_key or hkv_iter_next),
** its checksum checked: OK, CORRUPT, or MISUSE before the first move and
** after DONE. Pointers as for hkv_iter_next. A caller that hands a key on
** as data should take it from hkv_iter_current, which vouches for it.
*/
int hkv_iter_next_key(hkv_iter *pIter, const void **ppKey, size_t *pnKey);
/* hkv_iter_skip moves to the next entry and returns nothing of it: OK,
** DONE, CORRUPT (a bad header it had to read). It reads no record the
** snapshot knows to be a live entry (all but the writer's own), so
** counting the entries costs no reads of the log. */
int hkv_iter_skip(hkv_iter *pIter);
int hkv_iter_current(hkv_iter *pIter, const void **ppKey, size_t *pnKey,
                     const void **ppVal, size_t *pnVal);
int hkv_iter_close(hkv_iter *pIter);

/* The counters: name, meaning. The first column becomes a field of
** hkv_stats; hashkv_stats() in SQL and the README list them from here. */
#define HKV_STATS_MAP(X)                                                   \
  X(live_keys, "committed keys in the index (expired: until reclaimed)")   \
  X(live_bytes, "bytes of records holding them")                           \
  X(dead_bytes, "bytes of overwritten, deleted or aborted records")        \
  X(total_bytes, "bytes of all segment files")                             \
  X(segments, "segment files")                                             \
  X(index_bytes, "memory of the hash index")                               \
  X(recovered_cut_bytes, "bytes cut from the tail at open")                \
  X(recovered_cut_offset, "offset in the newest segment where it was cut") \
  X(commits, "transactions committed since open")                          \
  X(compactions, "compactions finished since open")                        \
  X(reclaimed_bytes, "bytes they freed")                                   \
  X(retired_segments, "compacted away, still mapped for readers")          \
  X(expiring_keys, "keys in the index that carry an expiry")               \
  X(expired_keys, "keys dropped from the index since open as expired")

typedef struct hkv_stats {
#define HKV_STATS_FIELD(name, doc) uint64_t name;
  HKV_STATS_MAP(HKV_STATS_FIELD)
#undef HKV_STATS_FIELD
} hkv_stats;

/* Fills *pStats for the engine behind db. Returns OK or MISUSE. */
int hkv_stats_get(hkv_db *db, hkv_stats *pStats);

/*
** Checks every record of every segment (checksums, lengths, that the index
** and the log agree). Returns OK or CORRUPT with the message naming the file
** and offset.
*/
int hkv_integrity_check(hkv_db *db);

/*
** Compacts the store: every sealed segment (the active one is sealed first)
** is rewritten with only its live records, then retired, atomically with
** respect to crashes. Readers go on meanwhile. Must be called outside a
** transaction, or in one that has not written yet. Returns OK, BUSY (another
** handle is writing), READONLY, MISUSE, NOMEM, IOERR/FAILED, CORRUPT (a bad
** record in a sealed segment: nothing switched).
** Automatic compaction (hkv_options.auto_compact) runs the same work in
** small steps at the end of commits.
*/
int hkv_compact(hkv_db *db);

/* Removes every key in one transaction step (inside the handle's transaction
** if one is open). Returns as hkv_put. */
int hkv_clear(hkv_db *db);

/*
** Online backup (store/backup.c).
**
** hkv_backup copies db's store, as of one commit, into a new store at
** directory zDest, while readers and writers of every process go on. The
** copy holds every transaction committed (by any process) before the call
** began and none that was not committed when it took its snapshot, which
** is the state of one instant; it opens as an ordinary store and passes
** hkv_integrity_check. Sealed segments are hard-linked when zDest is on the
** same file system (they are never written again), else copied; the active
** segment is copied up to the committed end; hints are copied; a MANIFEST
** is written for the copy. Writers are never blocked: the snapshot is
** taken under the engine's mutex, for as long as it takes to list the
** segments.
**
** zDest must not exist, or be an empty directory. The copy is built in
** "<zDest>.partial" (created; CANTOPEN if it exists: a backup to zDest is
** under way or was interrupted, and that directory is to be removed), every
** file and the directory fsynced, then renamed to zDest: a crash never
** leaves a partial store at zDest. A transaction db has open is not in the
** copy (its committed state is).
**
** xProgress (may be NULL) is called with the bytes done and the total
** before the first byte and after each file and each 4 MiB copied; a
** nonzero return stops the backup. pArg is passed through.
**
** Returns OK, MISUSE (NULL db or zDest), NOMEM, CANTOPEN (zDest exists and
** is not an empty directory, or cannot be created), IOERR or FULL (a write
** or fsync of the copy failed), ABORTED (xProgress returned nonzero), or
** what reading the source's state may (CORRUPT: SHM damaged). On failure
** nothing is left at zDest or "<zDest>.partial" (as far as removing them
** succeeds); db and its store are unchanged. hkv_errmsg(db) names the file.
*/
typedef int (*hkv_progress)(void *pArg, uint64_t nDone, uint64_t nTotal);
int hkv_backup(hkv_db *db, const char *zDest, hkv_progress xProgress,
               void *pArg);

#ifdef __cplusplus
}
#endif
#endif /* HASHKV_H */
