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

#endif
