/*
** os_unix.c — the kd_vfs backed by POSIX files. The only file in the library that
** calls open/pread/pwrite/fsync/flock/rename/clock_gettime directly.
**
** Invariants: short reads and writes are retried; EINTR is retried; ENOSPC maps to
** KD_FULL, other failures to KD_IOERR with the path and strerror in the message.
*/
#include "os/os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct kd_file {
    int fd;
    char *path;
};

static int os_err(const char *what, const char *path) {
    int e = errno;
    return kd__err(e == ENOSPC || e == EDQUOT ? KD_FULL : KD_IOERR, "%s %s: %s", what, path,
                   strerror(e));
}

static int u_open(kd_vfs *vfs, const char *path, int flags, kd_file **out) {
    (void)vfs;
    int oflags = O_CLOEXEC | ((flags & KD_OPEN_WRITE) ? O_RDWR : O_RDONLY);
    if (flags & KD_OPEN_CREATE) oflags |= O_CREAT;
    int fd;
    do fd = open(path, oflags, 0644); while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        if (errno == ENOENT) return kd__err(KD_NOTFOUND, "open %s: no such file", path);
        return os_err("open", path);
    }
    kd_file *f = kd__malloc(sizeof *f);
    char *p = kd__strdup(path);
    if (!f || !p) {
        kd__free(f);
        kd__free(p);
        close(fd);
        return kd__err(KD_NOMEM, "out of memory");
    }
    f->fd = fd;
    f->path = p;
    *out = f;
    return KD_OK;
}

static int u_close(kd_file *f) {
    if (!f) return KD_OK;
    int rc = KD_OK;
    if (close(f->fd) != 0 && errno != EINTR) rc = os_err("close", f->path);
    kd__free(f->path);
    kd__free(f);
    return rc;
}

static int u_read(kd_file *f, void *buf, size_t n, uint64_t off, size_t *got) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return os_err("read", f->path);
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return KD_OK;
}

static int u_write(kd_file *f, const void *buf, size_t n, uint64_t off) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(f->fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return os_err("write", f->path);
        }
        done += (size_t)r;
    }
    return KD_OK;
}

static int u_sync(kd_file *f) {
    int r;
    do r = fdatasync(f->fd); while (r != 0 && errno == EINTR);
    return r == 0 ? KD_OK : os_err("fsync", f->path);
}

static int u_size(kd_file *f, uint64_t *out) {
    struct stat st;
    if (fstat(f->fd, &st) != 0) return os_err("stat", f->path);
    *out = (uint64_t)st.st_size;
    return KD_OK;
}

static int u_truncate(kd_file *f, uint64_t size) {
    int r;
    do r = ftruncate(f->fd, (off_t)size); while (r != 0 && errno == EINTR);
    return r == 0 ? KD_OK : os_err("truncate", f->path);
}

static int u_mkdirs(kd_vfs *vfs, const char *path) {
    (void)vfs;
    char *p = kd__strdup(path);
    if (!p) return kd__err(KD_NOMEM, "out of memory");
    int rc = KD_OK;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                rc = os_err("mkdir", p);
                goto out;
            }
            *s = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = kd__err(KD_IOERR, "%s is not a directory", path);
out:
    kd__free(p);
    return rc;
}

static int u_sync_dir(kd_vfs *vfs, const char *path) {
    (void)vfs;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return os_err("open directory", path);
    int r;
    do r = fsync(fd); while (r != 0 && errno == EINTR);
    int rc = r == 0 ? KD_OK : os_err("fsync directory", path);
    close(fd);
    return rc;
}

static int u_rename(kd_vfs *vfs, const char *from, const char *to) {
    (void)vfs;
    return rename(from, to) == 0 ? KD_OK : os_err("rename", from);
}

static int u_remove(kd_vfs *vfs, const char *path) {
    (void)vfs;
    if (unlink(path) == 0) return KD_OK;
    if (errno == ENOENT) return kd__err(KD_NOTFOUND, "%s: no such file", path);
    return os_err("remove", path);
}

static int u_exists(kd_vfs *vfs, const char *path) {
    (void)vfs;
    return access(path, F_OK) == 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int u_list(kd_vfs *vfs, const char *dir, char ***names, size_t *n) {
    (void)vfs;
    int rc = KD_OK;
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? kd__err(KD_NOTFOUND, "%s: no such directory", dir)
                                   : os_err("list", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if ((rc = kd__grow(&v, &cap, cnt, sizeof *v, 16)) != KD_OK) goto out;
        if (!(v[cnt] = kd__strdup(e->d_name))) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
        cnt++;
    }
    if (cnt) qsort(v, cnt, sizeof *v, cmp_names);
out:
    closedir(d);
    if (rc != KD_OK) {
        kd__os_names_free(v, cnt);
        return rc;
    }
    *names = v;
    *n = cnt;
    return KD_OK;
}

void kd__os_names_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) kd__free(names[i]);
    kd__free(names);
}

static int u_lock(kd_vfs *vfs, const char *path, kd_file **out, long *holder) {
    kd_file *f = NULL;
    *holder = 0;
    int rc = u_open(vfs, path, KD_OPEN_WRITE | KD_OPEN_CREATE, &f);
    if (rc != KD_OK) return rc;
    if (flock(f->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            char buf[32] = {0};
            ssize_t r = pread(f->fd, buf, sizeof buf - 1, 0);
            if (r > 0) *holder = strtol(buf, NULL, 10);
            u_close(f);
            return kd__err(KD_BUSY, "locked");
        }
        rc = os_err("lock", path);
        u_close(f);
        return rc;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(f->fd, 0) != 0 || pwrite(f->fd, buf, (size_t)len, 0) != len) {
        rc = os_err("write lock file", path);
        u_close(f);
        return rc;
    }
    *out = f;
    return KD_OK;
}

static int u_unlock(kd_file *f) {
    if (!f) return KD_OK;
    if (ftruncate(f->fd, 0) != 0) { /* the pid is only a hint; flock is the lock */ }
    flock(f->fd, LOCK_UN);
    return u_close(f);
}

static int u_map(kd_file *f, uint64_t len, const uint8_t **addr) {
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, f->fd, 0);
    if (p == MAP_FAILED) return os_err("mmap", f->path);
    *addr = p;
    return KD_OK;
}

static void u_unmap(const uint8_t *addr, uint64_t len) {
    if (addr) munmap((void *)addr, (size_t)len);
}

static int64_t u_now(kd_vfs *vfs) {
    (void)vfs;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int u_random(kd_vfs *vfs, void *buf, size_t n) {
    (void)vfs;
    size_t done = 0;
    while (done < n) {
        ssize_t r = getrandom((char *)buf + done, n - done, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return kd__err(KD_IOERR, "getrandom: %s", strerror(errno));
        }
        done += (size_t)r;
    }
    return KD_OK;
}

static kd_vfs unix_vfs = {
    "unix", NULL, u_open, u_close, u_read, u_write, u_sync, u_size, u_truncate, u_mkdirs,
    u_sync_dir, u_rename, u_remove, u_exists, u_list, u_lock, u_unlock, u_map, u_unmap, u_now, u_random,
};

kd_vfs *kd__os_unix(void) { return &unix_vfs; }
