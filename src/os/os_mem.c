/*
** os_mem.c — a kd_vfs kept entirely in memory, for tests: it injects I/O errors (EIO,
** ENOSPC) into the Nth matching call, freezes at a chosen call as if the process had died
** there, and simulates a power cut that drops what was never made durable.
**
** May call: base (allocator, error messages) and the C library. No real file is touched.
**
** Model (docs/testing.md, "Fault injection"):
**   - A file is a node holding two copies: `data` (what a reader sees, the page cache) and
**     `durable` (what survives a power cut), plus the list of writes and truncates made
**     since its last sync. sync() makes data durable.
**   - Names live in one flat table of paths. Directories are a set of paths, created by
**     mkdirs (directory creation itself is treated as durable at once). A name's creation,
**     rename or removal becomes durable when its parent directory is sync_dir()ed; the
**     table of durable names is kept per directory.
**   - Power loss: each directory independently keeps its current names or falls back to
**     its last synced names (so unsynced creates/renames/removes may be undone, atomically
**     per directory). Each file restarts from its durable copy; then its unsynced
**     operations are replayed in order up to a random point, and the one at that point,
**     if a write, is kept only as a random strict prefix (a torn write). One time in four
**     every unsynced operation is dropped except a torn prefix of the last write.
**   - Reordering power loss (harsher): names as above; each sector of a file holds its
**     contents as of its own moment since the last sync, so writes land out of order
**     (see node_reorder).
**   - Handles (files, locks, mappings) opened before a power loss are dead: every call on
**     them fails, and while any of them is still open the whole backend refuses path
**     calls, so a crashed kd_db can be closed without touching the "rebooted" disk.
**   - A mapping is a private buffer of max(size, len) bytes that never moves; write() and
**     truncate() update every live mapping of the file, as a shared mmap would.
**   - One mutex guards everything; the library's threads may call in concurrently.
*/
#include "os/os.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_op {  /* an operation not yet covered by a sync */
    int is_write;        /* else a truncate */
    uint64_t off;        /* write offset, or the new size */
    size_t len;
    uint8_t *bytes;
} mem_op;

typedef struct mem_map mem_map;
struct mem_map {
    uint8_t *buf;
    uint64_t len;
    mem_map *next;
    struct mem_node *node;
    struct mem_vfs *m;
};

typedef struct mem_node {
    uint8_t *data;
    uint64_t size, cap;
    uint8_t *durable;
    uint64_t dsize;
    mem_op *ops;
    size_t nops, capops;
    int refs;            /* names + open handles pointing here */
    mem_map *maps;
} mem_node;

typedef struct mem_name {
    char *path;
    mem_node *node;
} mem_name;

typedef struct mem_table {
    mem_name *v;
    size_t n, cap;
} mem_table;

typedef struct mem_dir {
    char *path;
    mem_table durable;   /* names directly inside it at its last sync_dir */
} mem_dir;

typedef struct mem_vfs mem_vfs;
struct mem_vfs {
    kd_vfs vfs;
    pthread_mutex_t mu;
    mem_table names;
    mem_dir *dirs;
    size_t ndirs, capdirs;
    char **locks;        /* paths whose lock is held */
    size_t nlocks;
    uint64_t rng;
    int64_t clock_us, clock_step;
    uint64_t gen;        /* bumped by each power loss */
    size_t open_handles; /* open handles (files and locks) of this generation */
    size_t dead_handles; /* open handles of an older generation */
    int frozen;          /* a simulated crash happened: every call fails */
    uint64_t calls[KD_MEM_NOPS];
    /* the armed fault */
    unsigned f_mask;
    uint64_t f_left;     /* matching calls until it fires (0 = none armed) */
    int f_error;
    int f_sticky, f_fired, f_crash;
    uint64_t faults;     /* faults that fired */
    uint64_t cuts, holes; /* power cuts; files a reordering cut left with a hole */
};

struct kd_file {
    mem_vfs *m;
    mem_node *node;
    char *path;
    uint64_t gen;
    int writable;
    int is_lock;
};

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static mem_vfs *M(kd_vfs *v) { return (mem_vfs *)v; }

static const char *op_name(int op) {
    static const char *names[KD_MEM_NOPS] = {"open", "read", "write", "sync", "rename", "truncate",
                                             "sync_dir", "remove", "list", "mkdirs", "map", "lock"};
    return op >= 0 && op < KD_MEM_NOPS ? names[op] : "?";
}

/* Counts a call of kind op and decides whether it fails. Returns KD_OK or the error to
** report; *crash_after is set when the call must go through and then freeze the backend.
** Called with m->mu held. */
static int gate(mem_vfs *m, int op, const char *path, int *crash_after) {
    if (crash_after) *crash_after = 0;
    if (m->frozen) return kd__err(KD_IOERR, "%s %s: simulated crash (the backend is frozen)", op_name(op), path);
    m->calls[op]++;
    if (!(m->f_mask & (1u << op))) return KD_OK;
    if (m->f_fired && m->f_sticky) {
        m->faults++;
        goto fail;
    }
    if (m->f_left == 0) return KD_OK;
    if (--m->f_left > 0) return KD_OK;
    m->f_fired = 1;
    m->faults++;
    if (m->f_crash) {
        if (crash_after) *crash_after = 1;
        else m->frozen = 1;
        return KD_OK;
    }
fail:
    if (m->f_error == KD_FULL) return kd__err(KD_FULL, "%s %s: no space left on device (injected)", op_name(op), path);
    return kd__err(KD_IOERR, "%s %s: input/output error (injected)", op_name(op), path);
}

static int dead(kd_file *f, const char *what) {
    if (f->m->frozen) return kd__err(KD_IOERR, "%s %s: simulated crash (the backend is frozen)", what, f->path);
    if (f->gen != f->m->gen) return kd__err(KD_IOERR, "%s %s: handle opened before a power loss", what, f->path);
    return KD_OK;
}

static int path_dead(mem_vfs *m, int op, const char *path) {
    if (m->dead_handles) return kd__err(KD_IOERR, "%s %s: handles from before a power loss are still open", op_name(op), path);
    return KD_OK;
}

static char *parent_of(const char *path) {
    const char *s = strrchr(path, '/');
    size_t n = s ? (size_t)(s - path) : 0;
    if (s == path) n = 1; /* "/x" -> "/" */
    char *p = kd__malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, path, n);
    p[n] = 0;
    return p;
}

static int is_parent(const char *dir, const char *path) { /* is path directly inside dir? */
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0) n = 0;
    return strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1] && !strchr(path + n + 1, '/');
}

static void node_unref(mem_node *nd) {
    if (!nd || --nd->refs > 0) return;
    for (size_t i = 0; i < nd->nops; i++) kd__free(nd->ops[i].bytes);
    kd__free(nd->ops);
    kd__free(nd->data);
    kd__free(nd->durable);
    kd__free(nd); /* mappings hold no reference: they detach in unmap (node must outlive them) */
}

static ssize_t table_find(mem_table *t, const char *path) {
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].path, path) == 0) return (ssize_t)i;
    return -1;
}

static int table_set(mem_table *t, const char *path, mem_node *nd) {
    ssize_t i = table_find(t, path);
    if (i >= 0) {
        nd->refs++;
        node_unref(t->v[i].node);
        t->v[i].node = nd;
        return KD_OK;
    }
    if (kd__grow(&t->v, &t->cap, t->n, sizeof *t->v, 16) != KD_OK) return KD_NOMEM;
    if (!(t->v[t->n].path = kd__strdup(path))) return kd__err(KD_NOMEM, "out of memory");
    t->v[t->n].node = nd;
    nd->refs++;
    t->n++;
    return KD_OK;
}

static void table_del(mem_table *t, size_t i) {
    kd__free(t->v[i].path);
    node_unref(t->v[i].node);
    t->v[i] = t->v[--t->n];
}

static void table_free(mem_table *t) {
    while (t->n) table_del(t, t->n - 1);
    kd__free(t->v);
    memset(t, 0, sizeof *t);
}

static mem_dir *dir_find(mem_vfs *m, const char *path) {
    for (size_t i = 0; i < m->ndirs; i++)
        if (strcmp(m->dirs[i].path, path) == 0) return &m->dirs[i];
    return NULL;
}

static int dir_add(mem_vfs *m, const char *path) {
    if (dir_find(m, path)) return KD_OK;
    if (m->ndirs == m->capdirs) {
        size_t nc = m->capdirs ? m->capdirs * 2 : 8;
        mem_dir *nd = kd__realloc(m->dirs, nc * sizeof *nd);
        if (!nd) return kd__err(KD_NOMEM, "out of memory");
        m->dirs = nd;
        m->capdirs = nc;
    }
    memset(&m->dirs[m->ndirs], 0, sizeof m->dirs[0]);
    if (!(m->dirs[m->ndirs].path = kd__strdup(path))) return kd__err(KD_NOMEM, "out of memory");
    m->ndirs++;
    return KD_OK;
}

/* Makes the names directly inside dir durable. */
static int dir_snapshot(mem_vfs *m, mem_dir *d) {
    table_free(&d->durable);
    for (size_t i = 0; i < m->names.n; i++)
        if (is_parent(d->path, m->names.v[i].path)) {
            int rc = table_set(&d->durable, m->names.v[i].path, m->names.v[i].node);
            if (rc != KD_OK) return rc;
        }
    return KD_OK;
}

static int node_reserve(mem_node *nd, uint64_t size) {
    if (size <= nd->cap) return KD_OK;
    uint64_t nc = nd->cap ? nd->cap : 4096;
    while (nc < size) nc *= 2;
    if (nc > SIZE_MAX) return kd__err(KD_FULL, "in-memory file too large");
    uint8_t *p = kd__realloc(nd->data, (size_t)nc);
    if (!p) return kd__err(KD_NOMEM, "out of memory");
    nd->data = p;
    nd->cap = nc;
    return KD_OK;
}

/* Applies a write to data (and to live mappings). */
static int node_write(mem_node *nd, const void *buf, size_t n, uint64_t off) {
    int rc = node_reserve(nd, off + n);
    if (rc != KD_OK) return rc;
    if (off > nd->size) memset(nd->data + nd->size, 0, (size_t)(off - nd->size));
    memcpy(nd->data + off, buf, n);
    if (off + n > nd->size) nd->size = off + n;
    for (mem_map *mp = nd->maps; mp; mp = mp->next)
        if (off < mp->len) memcpy(mp->buf + off, buf, (size_t)KD_MIN((uint64_t)n, mp->len - off));
    return KD_OK;
}

static int node_truncate(mem_node *nd, uint64_t size) {
    int rc = node_reserve(nd, size);
    if (rc != KD_OK) return rc;
    if (size > nd->size) memset(nd->data + nd->size, 0, (size_t)(size - nd->size));
    for (mem_map *mp = nd->maps; mp; mp = mp->next)
        if (size < mp->len) memset(mp->buf + size, 0, (size_t)(KD_MIN(nd->size, mp->len) > size ? KD_MIN(nd->size, mp->len) - size : 0));
    nd->size = size;
    return KD_OK;
}

static int node_log(mem_node *nd, int is_write, const void *buf, size_t n, uint64_t off) {
    if (kd__grow(&nd->ops, &nd->capops, nd->nops, sizeof *nd->ops, 8) != KD_OK) return KD_NOMEM;
    mem_op *o = &nd->ops[nd->nops];
    memset(o, 0, sizeof *o);
    o->is_write = is_write;
    o->off = off;
    o->len = n;
    if (is_write && n) {
        if (!(o->bytes = kd__malloc(n))) return kd__err(KD_NOMEM, "out of memory");
        memcpy(o->bytes, buf, n);
    }
    nd->nops++;
    return KD_OK;
}

static int node_sync(mem_node *nd) {
    uint8_t *d = kd__malloc(nd->size ? (size_t)nd->size : 1);
    if (!d) return kd__err(KD_NOMEM, "out of memory");
    if (nd->size) memcpy(d, nd->data, (size_t)nd->size);
    kd__free(nd->durable);
    nd->durable = d;
    nd->dsize = nd->size;
    for (size_t i = 0; i < nd->nops; i++) kd__free(nd->ops[i].bytes);
    nd->nops = 0;
    return KD_OK;
}

static mem_node *node_new(void) {
    mem_node *nd = kd__calloc(1, sizeof *nd);
    if (!nd) kd__err(KD_NOMEM, "out of memory");
    return nd;
}

static kd_file *handle_new(mem_vfs *m, mem_node *nd, const char *path, int writable) {
    kd_file *f = kd__calloc(1, sizeof *f);
    char *p = kd__strdup(path);
    if (!f || !p) {
        kd__free(f);
        kd__free(p);
        kd__err(KD_NOMEM, "out of memory");
        return NULL;
    }
    f->m = m;
    f->node = nd;
    f->path = p;
    f->gen = m->gen;
    f->writable = writable;
    nd->refs++;
    m->open_handles++;
    return f;
}

static void handle_free(kd_file *f) {
    if (f->gen != f->m->gen) f->m->dead_handles--;
    else f->m->open_handles--;
    node_unref(f->node);
    kd__free(f->path);
    kd__free(f);
}

/* ---- the kd_vfs members ------------------------------------------------------------ */

static int m_open(kd_vfs *vfs, const char *path, int flags, kd_file **out) {
    mem_vfs *m = M(vfs);
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = path_dead(m, KD_MEM_OP_OPEN, path)) != KD_OK || (rc = gate(m, KD_MEM_OP_OPEN, path, &crash)) != KD_OK) goto out;
    ssize_t i = table_find(&m->names, path);
    mem_node *nd = NULL;
    if (i >= 0) nd = m->names.v[i].node;
    else if ((flags & KD_OPEN_CREATE) && (flags & KD_OPEN_WRITE)) {
        char *parent = parent_of(path);
        int ok = parent && dir_find(m, parent);
        kd__free(parent);
        if (!ok) { rc = kd__err(KD_NOTFOUND, "open %s: no such directory", path); goto out; }
        if (!(nd = node_new())) { rc = KD_NOMEM; goto out; }
        if ((rc = table_set(&m->names, path, nd)) != KD_OK) {
            kd__free(nd);
            goto out;
        }
    } else {
        rc = kd__err(KD_NOTFOUND, "open %s: no such file", path);
        goto out;
    }
    kd_file *f = handle_new(m, nd, path, (flags & KD_OPEN_WRITE) != 0);
    if (!f) { rc = KD_NOMEM; goto out; }
    *out = f;
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_close(kd_file *f) {
    if (!f) return KD_OK;
    mem_vfs *m = f->m;
    pthread_mutex_lock(&m->mu);
    handle_free(f);
    pthread_mutex_unlock(&m->mu);
    return KD_OK;
}

static int m_read(kd_file *f, void *buf, size_t n, uint64_t off, size_t *got) {
    mem_vfs *m = f->m;
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = dead(f, "read")) != KD_OK || (rc = gate(m, KD_MEM_OP_READ, f->path, &crash)) != KD_OK) goto out;
    mem_node *nd = f->node;
    size_t k = off >= nd->size ? 0 : (size_t)KD_MIN((uint64_t)n, nd->size - off);
    if (k) memcpy(buf, nd->data + off, k);
    *got = k;
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_write(kd_file *f, const void *buf, size_t n, uint64_t off) {
    mem_vfs *m = f->m;
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = dead(f, "write")) != KD_OK) goto out;
    if (!f->writable) { rc = kd__err(KD_IOERR, "write %s: file opened read-only", f->path); goto out; }
    if ((rc = gate(m, KD_MEM_OP_WRITE, f->path, &crash)) != KD_OK) {
        /* A failing write may have written part of its bytes, as a real one can. */
        size_t part = n ? (size_t)(rng_next(&m->rng) % n) : 0;
        if (part && node_log(f->node, 1, buf, part, off) == KD_OK) (void)node_write(f->node, buf, part, off);
        goto out;
    }
    if ((rc = node_log(f->node, 1, buf, n, off)) != KD_OK) goto out;
    if ((rc = node_write(f->node, buf, n, off)) != KD_OK) goto out;
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_sync(kd_file *f) {
    mem_vfs *m = f->m;
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = dead(f, "fsync")) != KD_OK || (rc = gate(m, KD_MEM_OP_SYNC, f->path, &crash)) != KD_OK) goto out;
    rc = node_sync(f->node);
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_size(kd_file *f, uint64_t *out) {
    mem_vfs *m = f->m;
    int rc;
    pthread_mutex_lock(&m->mu);
    if ((rc = dead(f, "stat")) == KD_OK) *out = f->node->size;
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_truncate(kd_file *f, uint64_t size) {
    mem_vfs *m = f->m;
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = dead(f, "truncate")) != KD_OK || (rc = gate(m, KD_MEM_OP_TRUNCATE, f->path, &crash)) != KD_OK) goto out;
    if (!f->writable) { rc = kd__err(KD_IOERR, "truncate %s: file opened read-only", f->path); goto out; }
    if ((rc = node_log(f->node, 0, NULL, 0, size)) != KD_OK) goto out;
    rc = node_truncate(f->node, size);
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_mkdirs(kd_vfs *vfs, const char *path) {
    mem_vfs *m = M(vfs);
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = path_dead(m, KD_MEM_OP_MKDIRS, path)) != KD_OK || (rc = gate(m, KD_MEM_OP_MKDIRS, path, &crash)) != KD_OK) goto out;
    if (table_find(&m->names, path) >= 0) { rc = kd__err(KD_IOERR, "%s is not a directory", path); goto out; }
    char *p = kd__strdup(path);
    if (!p) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') p[--len] = 0;
    if ((rc = dir_add(m, "/")) == KD_OK)
        for (char *s = p + 1;; s++) {
            if (*s == '/' || *s == 0) {
                char c = *s;
                *s = 0;
                if (*p && (rc = dir_add(m, p)) != KD_OK) break;
                *s = c;
                if (!c) break;
            }
        }
    kd__free(p);
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_sync_dir(kd_vfs *vfs, const char *path) {
    mem_vfs *m = M(vfs);
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = path_dead(m, KD_MEM_OP_SYNC_DIR, path)) != KD_OK || (rc = gate(m, KD_MEM_OP_SYNC_DIR, path, &crash)) != KD_OK) goto out;
    mem_dir *d = dir_find(m, path);
    if (!d) { rc = kd__err(KD_IOERR, "open directory %s: no such directory", path); goto out; }
    rc = dir_snapshot(m, d);
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_rename(kd_vfs *vfs, const char *from, const char *to) {
    mem_vfs *m = M(vfs);
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = path_dead(m, KD_MEM_OP_RENAME, from)) != KD_OK || (rc = gate(m, KD_MEM_OP_RENAME, from, &crash)) != KD_OK) goto out;
    ssize_t i = table_find(&m->names, from);
    if (i < 0) { rc = kd__err(KD_IOERR, "rename %s: no such file", from); goto out; }
    char *parent = parent_of(to);
    int ok = parent && dir_find(m, parent);
    kd__free(parent);
    if (!ok) { rc = kd__err(KD_IOERR, "rename %s: target directory missing", from); goto out; }
    mem_node *nd = m->names.v[i].node;
    nd->refs++;
    if ((rc = table_set(&m->names, to, nd)) == KD_OK) {
        i = table_find(&m->names, from);
        if (strcmp(from, to) != 0) table_del(&m->names, (size_t)i);
    }
    node_unref(nd);
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_remove(kd_vfs *vfs, const char *path) {
    mem_vfs *m = M(vfs);
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = path_dead(m, KD_MEM_OP_REMOVE, path)) != KD_OK || (rc = gate(m, KD_MEM_OP_REMOVE, path, &crash)) != KD_OK) goto out;
    ssize_t i = table_find(&m->names, path);
    if (i < 0) rc = kd__err(KD_NOTFOUND, "%s: no such file", path);
    else table_del(&m->names, (size_t)i);
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_exists(kd_vfs *vfs, const char *path) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    int r = table_find(&m->names, path) >= 0 || dir_find(m, path) != NULL;
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int push_name(char ***v, size_t *n, size_t *cap, const char *s) {
    if (kd__grow(v, cap, *n, sizeof **v, 16) != KD_OK) return KD_NOMEM;
    if (!((*v)[*n] = kd__strdup(s))) return kd__err(KD_NOMEM, "out of memory");
    (*n)++;
    return KD_OK;
}

static int m_list(kd_vfs *vfs, const char *dir, char ***names, size_t *n) {
    mem_vfs *m = M(vfs);
    int rc, crash;
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    pthread_mutex_lock(&m->mu);
    if ((rc = path_dead(m, KD_MEM_OP_LIST, dir)) != KD_OK || (rc = gate(m, KD_MEM_OP_LIST, dir, &crash)) != KD_OK) goto out;
    if (!dir_find(m, dir)) { rc = kd__err(KD_NOTFOUND, "%s: no such directory", dir); goto out; }
    size_t skip = strcmp(dir, "/") == 0 ? 1 : strlen(dir) + 1;
    for (size_t i = 0; i < m->names.n && rc == KD_OK; i++)
        if (is_parent(dir, m->names.v[i].path)) rc = push_name(&v, &cnt, &cap, m->names.v[i].path + skip);
    for (size_t i = 0; i < m->ndirs && rc == KD_OK; i++)
        if (is_parent(dir, m->dirs[i].path)) rc = push_name(&v, &cnt, &cap, m->dirs[i].path + skip);
    if (rc == KD_OK && cnt) qsort(v, cnt, sizeof *v, cmp_names);
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    if (rc != KD_OK) {
        kd__os_names_free(v, cnt);
        return rc;
    }
    *names = v;
    *n = cnt;
    return KD_OK;
}

static int m_lock(kd_vfs *vfs, const char *path, kd_file **out, long *holder) {
    mem_vfs *m = M(vfs);
    int rc, crash;
    *holder = 0;
    pthread_mutex_lock(&m->mu);
    if ((rc = path_dead(m, KD_MEM_OP_LOCK, path)) != KD_OK || (rc = gate(m, KD_MEM_OP_LOCK, path, &crash)) != KD_OK) goto out;
    for (size_t i = 0; i < m->nlocks; i++)
        if (strcmp(m->locks[i], path) == 0) { rc = kd__err(KD_BUSY, "locked"); goto out; }
    ssize_t i = table_find(&m->names, path);
    mem_node *nd;
    if (i >= 0) nd = m->names.v[i].node;
    else {
        char *parent = parent_of(path);
        int ok = parent && dir_find(m, parent);
        kd__free(parent);
        if (!ok) { rc = kd__err(KD_IOERR, "lock %s: no such directory", path); goto out; }
        if (!(nd = node_new())) { rc = KD_NOMEM; goto out; }
        if ((rc = table_set(&m->names, path, nd)) != KD_OK) { kd__free(nd); goto out; }
    }
    char **nl = kd__realloc(m->locks, (m->nlocks + 1) * sizeof *nl);
    if (!nl) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
    m->locks = nl;
    kd_file *f = handle_new(m, nd, path, 1);
    if (!f) { rc = KD_NOMEM; goto out; }
    if (!(m->locks[m->nlocks] = kd__strdup(path))) {
        handle_free(f);
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    m->nlocks++;
    f->is_lock = 1;
    *out = f;
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int m_unlock(kd_file *f) {
    if (!f) return KD_OK;
    mem_vfs *m = f->m;
    pthread_mutex_lock(&m->mu);
    if (f->gen == m->gen) /* a power loss already dropped the locks of its time */
        for (size_t i = 0; i < m->nlocks; i++)
            if (strcmp(m->locks[i], f->path) == 0) {
                kd__free(m->locks[i]);
                m->locks[i] = m->locks[--m->nlocks];
                break;
            }
    handle_free(f);
    pthread_mutex_unlock(&m->mu);
    return KD_OK;
}

static int m_map(kd_file *f, uint64_t len, const uint8_t **addr) {
    mem_vfs *m = f->m;
    int rc, crash;
    pthread_mutex_lock(&m->mu);
    if ((rc = dead(f, "mmap")) != KD_OK || (rc = gate(m, KD_MEM_OP_MAP, f->path, &crash)) != KD_OK) goto out;
    mem_node *nd = f->node;
    uint64_t n = KD_MAX(len, nd->size);
    if (n + sizeof(mem_map *) > SIZE_MAX) { rc = kd__err(KD_NOMEM, "mmap %s: too large", f->path); goto out; }
    mem_map *mp = kd__calloc(1, sizeof *mp);
    /* A back pointer just before the bytes lets unmap find the mapping from its address. */
    uint8_t *raw = mp ? kd__calloc(1, (size_t)n + sizeof(mem_map *)) : NULL;
    if (!raw) {
        kd__free(mp);
        rc = kd__err(KD_NOMEM, "mmap %s: out of memory", f->path);
        goto out;
    }
    memcpy(raw, &mp, sizeof mp);
    mp->buf = raw + sizeof(mem_map *);
    mp->len = n;
    mp->node = nd;
    mp->m = m;
    if (nd->size) memcpy(mp->buf, nd->data, (size_t)nd->size);
    mp->next = nd->maps;
    nd->maps = mp;
    nd->refs++; /* the mapping keeps the node alive, as a real mapping keeps the file */
    *addr = mp->buf;
    if (crash) m->frozen = 1;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static void m_unmap_locked(mem_map *mp) {
    mem_node *nd = mp->node;
    for (mem_map **pp = &nd->maps; *pp; pp = &(*pp)->next)
        if (*pp == mp) {
            *pp = mp->next;
            break;
        }
    kd__free(mp->buf - sizeof(mem_map *));
    kd__free(mp);
    node_unref(nd);
}

/* unmap has no vfs argument: the mapping finds its way back through the pointer stored
** just before its bytes. */
static void m_unmap(const uint8_t *addr, uint64_t len) {
    (void)len;
    if (!addr) return;
    mem_map *mp;
    memcpy(&mp, addr - sizeof(mem_map *), sizeof mp);
    mem_vfs *m = mp->m;
    pthread_mutex_lock(&m->mu);
    m_unmap_locked(mp);
    pthread_mutex_unlock(&m->mu);
}

static int64_t m_now(kd_vfs *vfs) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    int64_t t = m->clock_us;
    m->clock_us += m->clock_step;
    pthread_mutex_unlock(&m->mu);
    return t;
}

static int m_random(kd_vfs *vfs, void *buf, size_t n) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rng_next(&m->rng);
        memcpy(p + i, &r, KD_MIN((size_t)8, n - i));
    }
    pthread_mutex_unlock(&m->mu);
    return KD_OK;
}

/* ---- the test API ------------------------------------------------------------------ */

kd_vfs *kd__os_mem_new(uint64_t seed) {
    mem_vfs *m = kd__calloc(1, sizeof *m);
    if (!m) return NULL;
    kd_vfs v = {"mem", m, m_open, m_close, m_read, m_write, m_sync, m_size, m_truncate, m_mkdirs,
                m_sync_dir, m_rename, m_remove, m_exists, m_list, m_lock, m_unlock, m_map, m_unmap, m_now, m_random};
    m->vfs = v;
    pthread_mutex_init(&m->mu, NULL);
    m->rng = seed;
    m->clock_us = 1767225600000000; /* 2026-01-01T00:00:00Z */
    m->clock_step = 1000;
    if (dir_add(m, "/") != KD_OK) {
        kd__os_mem_free(&m->vfs);
        return NULL;
    }
    return &m->vfs;
}

void kd__os_mem_free(kd_vfs *vfs) {
    if (!vfs) return;
    mem_vfs *m = M(vfs);
    table_free(&m->names);
    for (size_t i = 0; i < m->ndirs; i++) {
        table_free(&m->dirs[i].durable);
        kd__free(m->dirs[i].path);
    }
    kd__free(m->dirs);
    for (size_t i = 0; i < m->nlocks; i++) kd__free(m->locks[i]);
    kd__free(m->locks);
    pthread_mutex_destroy(&m->mu);
    kd__free(m);
}

static void arm(kd_vfs *vfs, unsigned op_mask, uint64_t nth, int error, int crash) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    m->f_mask = op_mask & KD_MEM_ALL;
    m->f_left = nth;
    m->f_error = error == KD_FULL ? KD_FULL : KD_IOERR;
    m->f_sticky = (op_mask & KD_MEM_STICKY) != 0;
    m->f_fired = 0;
    m->f_crash = crash;
    pthread_mutex_unlock(&m->mu);
}

void kd__os_mem_fail(kd_vfs *vfs, unsigned op_mask, uint64_t nth, int error) { arm(vfs, op_mask, nth, error, 0); }
void kd__os_mem_crash_at(kd_vfs *vfs, unsigned op_mask, uint64_t nth) { arm(vfs, op_mask, nth, KD_IOERR, 1); }

int kd__os_mem_fired(kd_vfs *vfs) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    int r = m->f_fired;
    pthread_mutex_unlock(&m->mu);
    return r;
}

uint64_t kd__os_mem_calls(kd_vfs *vfs, unsigned op_mask) {
    mem_vfs *m = M(vfs);
    uint64_t t = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < KD_MEM_NOPS; i++)
        if (op_mask & (1u << i)) t += m->calls[i];
    pthread_mutex_unlock(&m->mu);
    return t;
}

uint64_t kd__os_mem_faults(kd_vfs *vfs) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    uint64_t r = m->faults;
    pthread_mutex_unlock(&m->mu);
    return r;
}

int kd__os_mem_frozen(kd_vfs *vfs) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    int r = m->frozen;
    pthread_mutex_unlock(&m->mu);
    return r;
}

void kd__os_mem_set_clock(kd_vfs *vfs, int64_t now_us, int64_t step_us) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    m->clock_us = now_us;
    m->clock_step = step_us;
    pthread_mutex_unlock(&m->mu);
}

/* The reordering model (kd__os_mem_power_loss_reorder). A page of a file, once dirty, is
** written back by the kernel whenever it likes, each page on its own, so after a cut each
** page of the file holds its contents as of some moment since the last sync: the synced
** contents (version 0), the current ones (version nops), or anything between (version k:
** the durable contents with the first k unsynced operations applied). Pages are 512-byte
** sectors or 4 KiB pages (per file and cut); a 4 KiB page may be torn at a sector
** boundary (its two parts from two versions). Sectors themselves are never torn. The
** file's size is that of some version too, so data past it is lost and a hole below it
** reads as zeros. */

/* Bytes [a, b) of nd as they were after its first k unsynced operations, into out. Bytes
** past the size of that moment are zero (a truncate zeroes what it cut). */
static void node_version_range(const mem_node *nd, size_t k, uint64_t a, uint64_t b, uint8_t *out) {
    memset(out, 0, (size_t)(b - a));
    if (nd->dsize > a) memcpy(out, nd->durable + a, (size_t)(KD_MIN(b, nd->dsize) - a));
    for (size_t i = 0; i < k; i++) {
        const mem_op *o = &nd->ops[i];
        if (o->is_write) {
            uint64_t lo = KD_MAX(a, o->off), hi = KD_MIN(b, o->off + o->len);
            if (lo < hi) memcpy(out + (lo - a), o->bytes + (lo - o->off), (size_t)(hi - lo));
        } else if (o->off < b) {
            uint64_t lo = KD_MAX(a, o->off);
            memset(out + (lo - a), 0, (size_t)(b - lo));
        }
    }
}

/* A version number, biased to the two ends: nothing landed, everything landed. */
static size_t pick_version(uint64_t *rng, size_t nops) {
    switch (rng_next(rng) % 3) {
    case 0: return 0;
    case 1: return nops;
    default: return (size_t)(rng_next(rng) % (nops + 1));
    }
}

/* Builds the contents a reordering power cut leaves (see above) into tmp. *hole is set
** when a sector kept stale contents while a later sector of the file got newer ones: the
** shape a simple "prefix of the writes" model never makes. */
static int node_reorder(mem_node *nd, uint64_t *rng, mem_node *tmp, int *hole) {
    enum { SECTOR = 512 };
    uint8_t cur[SECTOR], latest[SECTOR], old[SECTOR];
    int rc = KD_OK, stale_before = 0;
    uint64_t *sizes = kd__malloc((nd->nops + 1) * sizeof *sizes);
    if (!sizes) return kd__err(KD_NOMEM, "out of memory");
    sizes[0] = nd->dsize;
    for (size_t i = 0; i < nd->nops; i++) {
        const mem_op *o = &nd->ops[i];
        sizes[i + 1] = !o->is_write ? o->off : o->len && o->off + o->len > sizes[i] ? o->off + o->len : sizes[i];
    }
    uint64_t size = sizes[pick_version(rng, nd->nops)];
    uint64_t unit = rng_next(rng) & 1 ? 4096 : SECTOR;
    *hole = 0;
    if (size && (rc = node_reserve(tmp, size)) != KD_OK) goto out;
    tmp->size = size;
    for (uint64_t page = 0; page < size; page += unit) {
        size_t k = pick_version(rng, nd->nops), k2 = k;
        uint64_t split = unit, older_first = 0;
        if (unit > SECTOR && k > 0 && rng_next(rng) % 4 == 0) { /* torn at a sector boundary */
            split = SECTOR * (1 + rng_next(rng) % (unit / SECTOR - 1));
            k2 = (size_t)(rng_next(rng) % k);
            older_first = rng_next(rng) & 1;
        }
        for (uint64_t a = page; a < page + unit && a < size; a += SECTOR) {
            uint64_t b = KD_MIN(a + SECTOR, size);
            size_t v = (a - page < split) != (older_first != 0) ? k : k2;
            node_version_range(nd, v, a, b, cur);
            node_version_range(nd, nd->nops, a, b, latest);
            node_version_range(nd, 0, a, b, old);
            memcpy(tmp->data + a, cur, (size_t)(b - a));
            if (stale_before && memcmp(cur, old, (size_t)(b - a)) != 0) *hole = 1;
            if (memcmp(cur, latest, (size_t)(b - a)) != 0) stale_before = 1;
        }
    }
out:
    kd__free(sizes);
    return rc;
}

/* Rebuilds a node's contents as a power cut leaves them (see the models above). */
static int node_power_loss(mem_node *nd, uint64_t *rng, int reorder, int *hole) {
    mem_node tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = KD_OK;
    if (reorder && nd->nops) {
        if ((rc = node_reorder(nd, rng, &tmp, hole)) != KD_OK) goto out;
    } else if (nd->dsize && (rc = node_write(&tmp, nd->durable, (size_t)nd->dsize, 0)) != KD_OK)
        goto out;
    if (nd->nops && !reorder) {
        size_t keep = (size_t)(rng_next(rng) % (nd->nops + 1)); /* ops kept whole */
        size_t torn = keep;                                       /* op kept as a prefix */
        if (rng_next(rng) % 4 == 0) {
            keep = 0;
            torn = nd->nops;
            while (torn > 0 && !nd->ops[torn - 1].is_write) torn--;
            torn = torn ? torn - 1 : nd->nops;
        }
        for (size_t i = 0; i < keep && rc == KD_OK; i++) {
            mem_op *o = &nd->ops[i];
            rc = o->is_write ? node_write(&tmp, o->bytes, o->len, o->off) : node_truncate(&tmp, o->off);
        }
        if (rc == KD_OK && torn < nd->nops && nd->ops[torn].is_write && nd->ops[torn].len) {
            mem_op *o = &nd->ops[torn];
            size_t part = (size_t)(rng_next(rng) % o->len);
            if (part) rc = node_write(&tmp, o->bytes, part, o->off);
        }
    }
    if (rc != KD_OK) goto out;
    /* Live mappings belong to dead handles; they keep the old bytes. */
    mem_map *maps = nd->maps;
    nd->maps = NULL;
    kd__free(nd->data);
    nd->data = tmp.data;
    nd->size = tmp.size;
    nd->cap = tmp.cap;
    tmp.data = NULL;
    rc = node_sync(nd);
    nd->maps = maps;
    /* Detach the mappings from later writes: they are of the dead generation. */
    for (mem_map *mp = maps; mp; mp = mp->next) mp->len = 0;
out:
    kd__free(tmp.data);
    return rc;
}

static int power_cut(kd_vfs *vfs, uint64_t seed, int reorder) {
    mem_vfs *m = M(vfs);
    int rc = KD_OK;
    uint64_t rng = seed ^ 0x5DEECE66Dull;
    pthread_mutex_lock(&m->mu);
    /* Names: per directory, the current table or the last synced one. */
    mem_table next = {0};
    int *revert = kd__calloc(m->ndirs ? m->ndirs : 1, sizeof *revert);
    if (!revert) rc = kd__err(KD_NOMEM, "out of memory");
    for (size_t d = 0; d < m->ndirs && rc == KD_OK; d++) revert[d] = (int)(rng_next(&rng) & 1);
    for (size_t d = 0; d < m->ndirs && rc == KD_OK; d++) {
        mem_dir *dir = &m->dirs[d];
        if (revert[d]) {
            for (size_t i = 0; i < dir->durable.n && rc == KD_OK; i++)
                rc = table_set(&next, dir->durable.v[i].path, dir->durable.v[i].node);
        } else {
            for (size_t i = 0; i < m->names.n && rc == KD_OK; i++)
                if (is_parent(dir->path, m->names.v[i].path)) rc = table_set(&next, m->names.v[i].path, m->names.v[i].node);
        }
    }
    kd__free(revert);
    if (rc != KD_OK) {
        table_free(&next);
        goto out;
    }
    table_free(&m->names);
    m->names = next;
    /* Contents: every node reachable by a name (durable or current). A node counted once:
    ** node_power_loss empties its op list, so a second visit changes nothing. */
    for (size_t i = 0; i < m->names.n && rc == KD_OK; i++) {
        int hole = 0;
        rc = node_power_loss(m->names.v[i].node, &rng, reorder, &hole);
        m->holes += (uint64_t)hole;
    }
    m->cuts++;
    for (size_t d = 0; d < m->ndirs && rc == KD_OK; d++) {
        rc = dir_snapshot(m, &m->dirs[d]);
    }
    /* Every handle of the old generation is dead, locks vanish with their process. */
    for (size_t i = 0; i < m->nlocks; i++) kd__free(m->locks[i]);
    m->nlocks = 0;
    m->gen++;
    m->dead_handles += m->open_handles;
    m->open_handles = 0;
    m->frozen = 0;
    m->f_mask = 0;
    m->f_left = 0;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int kd__os_mem_power_loss(kd_vfs *vfs, uint64_t seed) { return power_cut(vfs, seed, 0); }
int kd__os_mem_power_loss_reorder(kd_vfs *vfs, uint64_t seed) { return power_cut(vfs, seed, 1); }

uint64_t kd__os_mem_holes(kd_vfs *vfs) {
    mem_vfs *m = M(vfs);
    pthread_mutex_lock(&m->mu);
    uint64_t r = m->holes;
    pthread_mutex_unlock(&m->mu);
    return r;
}
