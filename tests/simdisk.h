/*
** simdisk.h: a simulated disk under the engine's HkvEnv seam, for the
** power-loss and fsync-failure tests (test_faults, test_sqlpower).
**
** It watches every call the engine makes on one store directory and keeps
** what a disk would hold if the power went now:
**   - a file's bytes are durable as of its last good fsync; each 512-byte
**     sector written since may be kept or lost, and the size may fall back
**     to the synced one;
**   - the directory's entries are durable as of its last good fsync: a file
**     created since disappears, a rename reverts, an unlink comes back (with
**     the content the file had). The changes made since persist, if at all,
**     in the order they were made (journaling file systems commit namespace
**     changes in order), so what survives is a prefix of them;
**   - a failed fsync loses what it was to make durable, even with the power
**     on: the file's bytes written since its last good fsync (a later read
**     sees the old ones; Linux drops the dirty pages after a writeback
**     error), or for the directory the entries changed since its last good
**     fsync.
** The real files stay as the engine wrote them while it runs (its mappings
** keep working); simDiskSettle() then puts the disk's version in their
** place, for a reopen to recover from.
**
** The engine's fsyncs are not passed to the host: durability is the model's
** copy, and the host's disk would only make every run wait.
*/
#ifndef HKV_SIMDISK_H
#define HKV_SIMDISK_H

#include "hkvInt.h"

/* How a power cut treats what no fsync covered. */
enum {
  SIM_LOSE_ALL,       /* every unsynced sector and directory change lost */
  SIM_LOSE_ALTERNATE, /* every other unsynced sector lost (damage followed by
                      ** valid records); every directory change kept */
  SIM_LOSE_RANDOM     /* sectors kept or lost at random, a random size; a
                      ** random prefix of the directory changes kept */
};

/* Resets the model for store directory zDir (which may not exist yet: the
** engine creates it) and installs the simulated disk. Files already in zDir
** count as durable. Later calls replace the model. */
void simDiskInstall(const char *zDir);

/* The simulated disk's hooks, for a test that wraps them in its own. */
const HkvEnv *simDiskEnv(void);

/* Counts events (writes, fsyncs, creations, truncations, renames, unlinks
** in the store directory) from now on; the power goes instead of the nAt-th
** (1-based; 0: never), with unsynced changes treated as iHow says. */
void simDiskCutAt(long nAt, int iHow, unsigned iSeed);

/* The power goes now. */
void simDiskCutNow(int iHow);

long simDiskEvents(void); /* counted since simDiskCutAt */
int simDiskIsOff(void);   /* the power went */

/* Also models the store directory's own entry in its parent: created by the
** engine, it is lost at a power cut until the parent directory is fsynced. */
void simDiskModelParent(int bOn);

/* An fsync of fd is failing (the caller returns the error to the engine):
** what it was to make durable is lost. */
void simDiskSyncFailed(int fd);

/* The name in the store directory of what fd is open on: a file's name,
** "." for the directory, "" for anything else. */
const char *simDiskFdName(int fd);

/* After the engine has closed the store: replaces the store directory's
** files with what the disk holds (after a cut, the cut's picture; else the
** files less what failed fsyncs lost) and uninstalls the simulated disk.
** Returns the number of files left (-1: the directory itself is gone). */
int simDiskSettle(void);

/* Frees the model (before a test ends). */
void simDiskFree(void);

#endif
