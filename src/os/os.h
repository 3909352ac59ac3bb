/*
** os.h — the storage and clock abstraction (a VFS). Everything the library does with
** files, fsync, locks, the clock and randomness goes through a kd_vfs, so the engine can
** run on a real directory (os_unix.c), in memory with injected faults (os_mem.c, for
** tests), or later in a browser.
**
** All functions return KD_OK or an error code (KD_IOERR, KD_FULL, KD_NOTFOUND, KD_BUSY,
** KD_NOMEM) and set the thread's error message with the path and the OS's reason.
*/
#ifndef KD_OS_H
#define KD_OS_H

#include "base/base.h"

typedef struct kd_file kd_file;
typedef struct kd_vfs kd_vfs;

enum {
    KD_OPEN_READ = 0,
    KD_OPEN_WRITE = 1,   /* read and write */
    KD_OPEN_CREATE = 2,  /* create if missing (with KD_OPEN_WRITE) */
    KD_OPEN_APPEND = 4   /* writes go to the end (hint; positions are still explicit) */
};

struct kd_vfs {
    const char *name;
    void *ctx;
    int (*open)(kd_vfs *vfs, const char *path, int flags, kd_file **out);
    int (*close)(kd_file *f);
    /* Reads up to n bytes at off; *got < n only at end of file. */
    int (*read)(kd_file *f, void *buf, size_t n, uint64_t off, size_t *got);
    int (*write)(kd_file *f, const void *buf, size_t n, uint64_t off);
    int (*sync)(kd_file *f);               /* data and size durable */
    int (*size)(kd_file *f, uint64_t *out);
    int (*truncate)(kd_file *f, uint64_t size);
    int (*mkdirs)(kd_vfs *vfs, const char *path);           /* mkdir -p; exists is fine */
    int (*sync_dir)(kd_vfs *vfs, const char *path);
    int (*rename)(kd_vfs *vfs, const char *from, const char *to); /* atomic replace */
    int (*remove)(kd_vfs *vfs, const char *path);           /* KD_NOTFOUND if absent */
    int (*exists)(kd_vfs *vfs, const char *path);           /* 1 or 0 */
    /* Names (not paths) of the entries of dir, sorted; free with kd__os_names_free. */
    int (*list)(kd_vfs *vfs, const char *dir, char ***names, size_t *n);
    /* Takes the exclusive process lock at path (created if needed). KD_BUSY when another
    ** process holds it; *holder receives its pid if known (else 0). The lock dies with
    ** the process (flock semantics). */
    int (*lock)(kd_vfs *vfs, const char *path, kd_file **out, long *holder);
    int (*unlock)(kd_file *lock);
    /* Maps len bytes of f read-only and shared, so bytes written later through write()
    ** become visible through the mapping; len may exceed the file size (pages past
    ** the end must not be touched). */
    int (*map)(kd_file *f, uint64_t len, const uint8_t **addr);
    void (*unmap)(const uint8_t *addr, uint64_t len);
    int64_t (*now_us)(kd_vfs *vfs);        /* wall clock, microseconds since the epoch */
    int (*random)(kd_vfs *vfs, void *buf, size_t n);
};

kd_vfs *kd__os_unix(void);                 /* the process-wide, stateless unix backend */
void kd__os_names_free(char **names, size_t n);

/* ---- os_mem.c: the in-memory backend for fault and power-loss tests ---------------- */
/* Kinds of call, for counting and for choosing which call a fault hits. */
enum {
    KD_MEM_OP_OPEN, KD_MEM_OP_READ, KD_MEM_OP_WRITE, KD_MEM_OP_SYNC, KD_MEM_OP_RENAME,
    KD_MEM_OP_TRUNCATE, KD_MEM_OP_SYNC_DIR, KD_MEM_OP_REMOVE, KD_MEM_OP_LIST,
    KD_MEM_OP_MKDIRS, KD_MEM_OP_MAP, KD_MEM_OP_LOCK, KD_MEM_NOPS
};
#define KD_MEM_OPEN     (1u << KD_MEM_OP_OPEN)
#define KD_MEM_READ     (1u << KD_MEM_OP_READ)
#define KD_MEM_WRITE    (1u << KD_MEM_OP_WRITE)
#define KD_MEM_SYNC     (1u << KD_MEM_OP_SYNC)
#define KD_MEM_RENAME   (1u << KD_MEM_OP_RENAME)
#define KD_MEM_TRUNCATE (1u << KD_MEM_OP_TRUNCATE)
#define KD_MEM_SYNC_DIR (1u << KD_MEM_OP_SYNC_DIR)
#define KD_MEM_REMOVE   (1u << KD_MEM_OP_REMOVE)
#define KD_MEM_LIST     (1u << KD_MEM_OP_LIST)
#define KD_MEM_MKDIRS   (1u << KD_MEM_OP_MKDIRS)
#define KD_MEM_MAP      (1u << KD_MEM_OP_MAP)
#define KD_MEM_LOCK     (1u << KD_MEM_OP_LOCK)
#define KD_MEM_ALL      ((1u << KD_MEM_NOPS) - 1)
/* The calls of the sweeps: write, fsync (files and directories), rename, open, read. */
#define KD_MEM_IO (KD_MEM_OPEN | KD_MEM_READ | KD_MEM_WRITE | KD_MEM_SYNC | KD_MEM_RENAME | KD_MEM_SYNC_DIR)
#define KD_MEM_STICKY   (1u << 31) /* with kd__os_mem_fail: every matching call from the nth on fails */

/* A new, empty in-memory file system ("/" exists). seed drives every random choice (torn
** write lengths, random()). The clock starts at 2026-01-01T00:00:00Z and advances 1 ms per
** now_us call. NULL when out of memory. Free with kd__os_mem_free once nothing uses it. */
kd_vfs *kd__os_mem_new(uint64_t seed);
void kd__os_mem_free(kd_vfs *vfs);
/* Arms one fault (replacing any armed one): the nth call from now matching op_mask fails
** with error (KD_IOERR or KD_FULL) and a message saying it was injected; a failing write
** first writes a random prefix of its bytes. With KD_MEM_STICKY in op_mask, every later
** matching call fails too. nth = 0 disarms. */
void kd__os_mem_fail(kd_vfs *vfs, unsigned op_mask, uint64_t nth, int error);
/* Arms a crash: the nth matching call from now completes (and returns success), then the
** backend freezes as if the process had died: every later call fails with KD_IOERR until
** kd__os_mem_power_loss. */
void kd__os_mem_crash_at(kd_vfs *vfs, unsigned op_mask, uint64_t nth);
int kd__os_mem_fired(kd_vfs *vfs);                     /* did the armed fault/crash fire? */
int kd__os_mem_frozen(kd_vfs *vfs);
uint64_t kd__os_mem_calls(kd_vfs *vfs, unsigned op_mask); /* matching calls so far */
uint64_t kd__os_mem_faults(kd_vfs *vfs);               /* injected faults so far */
void kd__os_mem_set_clock(kd_vfs *vfs, int64_t now_us, int64_t step_us);
/* Power cut: each file falls back to its last synced contents plus, in order, a random
** number of its later writes and truncates, the next write torn at a random byte; names
** not covered by sync_dir may be undone (per directory). Handles opened before it are
** dead: calls on them fail, and path calls fail until they are all closed. Unfreezes
** and disarms. KD_NOMEM only. */
int kd__os_mem_power_loss(kd_vfs *vfs, uint64_t seed);
/* A harsher power cut, as real page caches and disks behave: every 512-byte sector of a
** file independently holds its contents as of some moment since the file's last sync
** (the synced bytes, the current ones, or any state between), grouped by 4 KiB page or
** not, a page possibly torn at a sector boundary; the size is that of some moment too
** (a hole reads as zeros). So an earlier unsynced sector may be lost while a later one
** landed. Synced data is never lost; names as in kd__os_mem_power_loss. KD_NOMEM only. */
int kd__os_mem_power_loss_reorder(kd_vfs *vfs, uint64_t seed);
/* Files that reordering cuts left with a hole: a sector with stale contents before a
** sector holding newer ones. Tells a test the model made the shape it is there for. */
uint64_t kd__os_mem_holes(kd_vfs *vfs);

#endif
