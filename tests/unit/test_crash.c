/*
** test_crash.c — kill -9 of real processes holding a database, over and over on the same
** directory (issue 2). Three tests:
**
** kill9_durable_writers (sync=full). Each round forks a child that opens the database and
** runs NTHREADS writer threads: puts of new keys and overwrites of recent ones, deletes of
** live keys, and atomic batches of 2..20 items over two namespaces. A writer announces every
** operation to the parent through a pipe before calling the library (a BEGIN frame) and
** reports it again only after the library returned KD_OK (an ACK frame with the seqs,
** version id and timestamp it was given). The parent kills the child with SIGKILL after a
** seeded random delay, drains the pipe, reopens the database and checks it against its
** model of what must be there:
**
**   - every acknowledged version is present with the same seq, version id, timestamp and
**     value, and so is every version verified in an earlier round (recovery after recovery);
**   - each writer has at most one operation in flight at the kill; it is present whole or
**     not at all (batches are all-or-nothing), and if present it becomes part of the model;
**   - nothing else is there: seqs are 1..S without holes (read through the feed), every one
**     belongs to an acknowledged or in-flight operation, stats agree, kd_check(deep) passes;
**   - history chains (previous_version), change types, batch timestamps and the current
**     value of each key agree with the model.
**   Only the writer thread that owns a key (keys are named w<thread>-<n>) ever writes it,
**   so the model is exact: a key's history must be the acknowledged versions plus possibly
**   the one in flight. That turns "at least as new as the last acknowledged write" into an
**   equality check. Rounds vary: paced or flat out, some with many values above 64 KiB,
**   some killed within 40 ms of the fork (during open and recovery), and in some the test
**   plays a power cut after the kill (see tear_tail) so that open has a torn tail to cut.
**
** kill9_idle_holder_releases_lock: a child holding the database idle is killed; while it
** lived kd_open said KD_BUSY, afterwards it must succeed with the child's write there.
**
** kill9_sync_normal_keeps_a_prefix (sync=normal): acknowledged writes may be lost, but what
** survives must be seqs 1..S exactly, each the acknowledged version, a prefix of every
** writer's acknowledged writes, batches whole, and nothing verified earlier may change.
**
** Pipe frames are at most PIPE_BUF bytes and written with one write(), so frames from
** different threads never interleave and a SIGKILL never leaves half a frame behind (a
** partial tail would still be ignored).
**
** Environment: KD_CRASH_ROUNDS (default 6; `make test-crash` uses 200), KD_CRASH_SEED
** (default from the clock; printed). Thread timing is not reproducible, but everything the
** writers choose (keys, values, op mix), the round kinds and the kill delays are functions
** of the seed.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "korudelta.h"
#include "t.h"

#define NTHREADS 4
#define MAXITEMS 20
#define TEXTCAP 3600
#define HDRBYTES 70
#define ITEMBYTES 12
#define RECENT 32

_Static_assert(HDRBYTES + MAXITEMS * ITEMBYTES + TEXTCAP <= PIPE_BUF, "a frame must fit one atomic pipe write");

static const char *const NSNAME[2] = {"crash", "crash2"};
static char dir[256];
static uint64_t seed;
static int msgs; /* failure lines printed so far (capped so a broken library does not flood) */

#define FAILF(...)                                                          \
    do {                                                                    \
        t_cur_failed = 1;                                                   \
        if (msgs++ < 60) {                                                  \
            fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        } else if (msgs == 61) {                                            \
            fprintf(stderr, "  (further failures not printed)\n");          \
        }                                                                   \
    } while (0)

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static uint64_t rng_next(uint64_t *s) {
    *s += 0x9e3779b97f4a7c15ull;
    return mix64(*s);
}
static uint32_t rnd(uint64_t *s, uint32_t n) { return n ? (uint32_t)(rng_next(s) % n) : 0; }
static uint64_t stream(uint32_t round, uint32_t which) {
    return mix64(seed ^ mix64(((uint64_t)round << 32) | which));
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void key_name(char *out, size_t cap, const char *prefix, int t, uint32_t keyn) {
    snprintf(out, cap, "%sw%d-%u", prefix, t, keyn);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}
static void rmtree(const char *p) { nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* ---- operations and pipe frames -------------------------------------------------------
**
** Frame layout (native byte order; both ends are the same program):
**   0  u16 frame length        2 u8 kind (F_*)   3 u8 thread   4 u8 op kind (OP_*)
**   5  u8 item count           6 u32 op number (per thread, per round, from 1)
**   10 i32 status code (F_ERR) 14 u64 first seq  22 u64 last seq  30 i64 timestamp
**   38 32-byte version id (single put/delete acks)
**   70 items: u8 namespace index, u8 flags (1 deleted, 2 generated), u16 value length,
**      u32 key number, u32 pad length, then the value bytes. Values too big for a frame
**      (flag 2, no bytes) are re-generated by the parent from (key, op, round, thread,
**      pad length) with gen_value(), the function the writer made them with.
**      An F_ERR frame carries its message text instead of items.
*/

enum { F_READY = 1, F_BEGIN, F_ACK, F_ERR };
enum { OP_PUT = 1, OP_DEL, OP_BATCH };

typedef struct opitem {
    uint8_t ns, del, gen; /* gen: the value is not in text (see gen_value) */
    uint16_t vlen, voff;  /* value = text[voff .. voff+vlen) */
    uint32_t keyn, padlen;
} opitem;

typedef struct op {
    uint8_t kind, n;
    uint32_t opno;
    opitem it[MAXITEMS];
    uint16_t textlen;
    char text[TEXTCAP];
} op;

typedef struct frame {
    uint8_t kind, thread;
    int32_t rc;
    uint64_t first_seq, last_seq;
    int64_t ts;
    uint8_t vid[32];
    op o;
    char msg[TEXTCAP + 1];
} frame;

static const char *op_name(int kind) {
    return kind == OP_PUT ? "put" : kind == OP_DEL ? "delete" : kind == OP_BATCH ? "batch" : "?";
}

/* One write() of the whole frame; EINTR retried. Returns 0, or -1 when the parent is gone. */
static int send_bytes(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_frame(int fd, const frame *f) {
    uint8_t buf[PIPE_BUF];
    size_t len = HDRBYTES;
    memset(buf, 0, HDRBYTES);
    buf[2] = f->kind;
    buf[3] = f->thread;
    buf[4] = f->o.kind;
    buf[5] = f->o.n;
    put_u32(buf + 6, f->o.opno);
    put_u32(buf + 10, (uint32_t)f->rc);
    put_u64(buf + 14, f->first_seq);
    put_u64(buf + 22, f->last_seq);
    put_u64(buf + 30, (uint64_t)f->ts);
    memcpy(buf + 38, f->vid, 32);
    if (f->kind == F_ERR) {
        size_t m = strlen(f->msg);
        if (m > TEXTCAP) m = TEXTCAP;
        memcpy(buf + len, f->msg, m);
        len += m;
    } else {
        for (int i = 0; i < f->o.n; i++) {
            const opitem *it = &f->o.it[i];
            buf[len] = it->ns;
            buf[len + 1] = (uint8_t)(it->del | it->gen << 1);
            put_u16(buf + len + 2, it->vlen);
            put_u32(buf + len + 4, it->keyn);
            put_u32(buf + len + 8, it->padlen);
            memcpy(buf + len + ITEMBYTES, f->o.text + it->voff, it->vlen);
            len += ITEMBYTES + it->vlen;
        }
    }
    put_u16(buf, (uint16_t)len);
    return send_bytes(fd, buf, len);
}

/* Parses one complete frame; 0 on success, -1 if it is malformed. */
static int decode_frame(const uint8_t *p, size_t len, frame *f) {
    memset(f, 0, offsetof(frame, o));
    f->kind = p[2];
    f->thread = p[3];
    f->o.kind = p[4];
    f->o.n = p[5];
    f->o.opno = get_u32(p + 6);
    f->rc = (int32_t)get_u32(p + 10);
    f->first_seq = get_u64(p + 14);
    f->last_seq = get_u64(p + 22);
    f->ts = (int64_t)get_u64(p + 30);
    memcpy(f->vid, p + 38, 32);
    f->o.textlen = 0;
    if (f->kind < F_READY || f->kind > F_ERR || f->thread > NTHREADS || f->o.n > MAXITEMS) return -1;
    size_t off = HDRBYTES;
    if (f->kind == F_ERR) {
        memcpy(f->msg, p + off, len - off);
        f->msg[len - off] = 0;
        return 0;
    }
    for (int i = 0; i < f->o.n; i++) {
        opitem *it = &f->o.it[i];
        if (off + ITEMBYTES > len) return -1;
        it->ns = p[off];
        it->del = p[off + 1] & 1;
        it->gen = (p[off + 1] >> 1) & 1;
        it->vlen = get_u16(p + off + 2);
        it->keyn = get_u32(p + off + 4);
        it->padlen = get_u32(p + off + 8);
        off += ITEMBYTES;
        if (it->gen && it->vlen != 0) return -1;
        if (it->ns > 1 || off + it->vlen > len || f->o.textlen + it->vlen > TEXTCAP) return -1;
        it->voff = f->o.textlen;
        memcpy(f->o.text + f->o.textlen, p + off, it->vlen);
        f->o.textlen = (uint16_t)(f->o.textlen + it->vlen);
        off += it->vlen;
    }
    return off == len ? 0 : -1;
}

/* The value written by op `opno` of writer t in `round` to key number keyn: canonical JSON,
** unique per (round, thread, op, key). Writes at most cap bytes (cap >= padlen + 96 always
** suffices); returns the length. */
static size_t gen_value(char *out, size_t cap, uint32_t keyn, uint32_t opno, uint32_t round, int t, uint32_t padlen) {
    int n = snprintf(out, cap, "{\"n\":%u,\"o\":%u,\"p\":\"", keyn, opno);
    size_t len = (size_t)n;
    for (uint32_t i = 0; i < padlen && len < cap; i++) out[len++] = (char)('a' + (keyn + i) % 26);
    if (len < cap) len += (size_t)snprintf(out + len, cap - len, "\",\"r\":%u,\"t\":%d}", round, t);
    return len;
}

/* ---- the child: writer threads -------------------------------------------------------- */

typedef struct writer {
    int t, fd;
    kd_db *db;
    uint64_t rng;
    uint32_t round;
    int allow_del, allow_big, many_big;
    uint32_t pace_us;  /* mean pause after each op (0: flat out) */
    const char *prefix;
    uint32_t next[2];  /* next unused key number, per namespace */
    uint8_t *live[2];  /* live[ns][keyn]: the key's newest version is not a tombstone */
    size_t cap[2];
} writer;

static uint32_t new_key(writer *w, int ns) {
    if (w->next[ns] >= w->cap[ns]) {
        size_t cap = w->cap[ns] ? w->cap[ns] * 2 : 4096;
        uint8_t *p = realloc(w->live[ns], cap);
        if (!p) _exit(3);
        memset(p + w->cap[ns], 0, cap - w->cap[ns]);
        w->live[ns] = p;
        w->cap[ns] = cap;
    }
    return w->next[ns]++;
}

static uint32_t recent_key(writer *w, int ns) {
    if (w->next[ns] == 0) return new_key(w, ns);
    uint32_t window = w->next[ns] < RECENT ? w->next[ns] : RECENT;
    return w->next[ns] - 1 - rnd(&w->rng, window);
}

/* A recently used key that is live now, or -1. */
static int64_t live_recent_key(writer *w, int ns) {
    if (w->next[ns] == 0) return -1;
    for (int tries = 0; tries < 8; tries++) {
        uint32_t k = recent_key(w, ns);
        if (w->live[ns][k]) return k;
    }
    return -1;
}

static int in_op(const op *o, int ns, uint32_t keyn) {
    for (int i = 0; i < o->n; i++)
        if (o->it[i].ns == ns && o->it[i].keyn == keyn) return 1;
    return 0;
}

/* Appends an item; the value is canonical JSON, unique per (round, thread, op, key). */
static void add_item(writer *w, op *o, int ns, uint32_t keyn, int del, uint32_t padlen) {
    opitem *it = &o->it[o->n++];
    it->ns = (uint8_t)ns;
    it->keyn = keyn;
    it->del = (uint8_t)del;
    it->voff = o->textlen;
    it->vlen = 0;
    it->padlen = del ? 0 : padlen;
    it->gen = !del && padlen > 3000;
    if (del || it->gen) return;
    size_t n = gen_value(o->text + o->textlen, TEXTCAP - o->textlen, keyn, o->opno, w->round, w->t, padlen);
    if (n >= (size_t)(TEXTCAP - o->textlen)) _exit(4); /* sizes are bounded in build_op */
    it->vlen = (uint16_t)n;
    o->textlen = (uint16_t)(o->textlen + n);
}

static void build_op(writer *w, op *o, uint32_t opno) {
    o->n = 0;
    o->textlen = 0;
    o->opno = opno;
    int64_t k;
    uint32_t r = rnd(&w->rng, 100);
    uint32_t pad = rnd(&w->rng, 20) == 0 ? 1000 + rnd(&w->rng, 2000) : rnd(&w->rng, 120);
    /* now and then a value above 64 KiB: the log writes its header and payload separately,
    ** and the kernel may cut a large write short, so the kill can leave a torn record */
    if (w->allow_big && rnd(&w->rng, w->many_big ? 6 : 400) == 0)
        pad = 65536 + rnd(&w->rng, w->many_big ? 400000 : 100000);
    if (r < 50) {
        o->kind = OP_PUT;
        add_item(w, o, 0, new_key(w, 0), 0, pad);
    } else if (r < 75) {
        o->kind = OP_PUT;
        add_item(w, o, 0, recent_key(w, 0), 0, pad);
    } else if (r < 87 && w->allow_del && (k = live_recent_key(w, 0)) >= 0) {
        o->kind = OP_DEL;
        add_item(w, o, 0, (uint32_t)k, 1, 0);
    } else {
        o->kind = OP_BATCH;
        uint32_t n = 2 + rnd(&w->rng, MAXITEMS - 1);
        for (uint32_t i = 0; i < n; i++) {
            int ns = (int)rnd(&w->rng, 2);
            uint32_t c = rnd(&w->rng, 10);
            int del = 0;
            k = -1;
            if (c >= 8 && w->allow_del) {
                k = live_recent_key(w, ns);
                del = k >= 0;
            } else if (c >= 5) {
                k = recent_key(w, ns);
            }
            if (k < 0 || in_op(o, ns, (uint32_t)k)) {
                k = new_key(w, ns);
                del = 0;
            }
            add_item(w, o, ns, (uint32_t)k, del, rnd(&w->rng, 40));
        }
    }
}

static int run_op(writer *w, const op *o, frame *ack) {
    char key[64];
    int rc;
    if (o->kind != OP_BATCH) {
        const opitem *it = &o->it[0];
        kd_entry e;
        key_name(key, sizeof key, w->prefix, w->t, it->keyn);
        if (o->kind == OP_PUT && it->gen) {
            size_t cap = it->padlen + 96;
            char *big = malloc(cap);
            if (!big) _exit(3);
            size_t n = gen_value(big, cap, it->keyn, o->opno, w->round, w->t, it->padlen);
            rc = kd_put(w->db, NSNAME[it->ns], key, big, n, NULL, &e);
            free(big);
        } else if (o->kind == OP_PUT)
            rc = kd_put(w->db, NSNAME[it->ns], key, o->text + it->voff, it->vlen, NULL, &e);
        else
            rc = kd_delete(w->db, NSNAME[it->ns], key, &e);
        if (rc == KD_OK) {
            ack->first_seq = ack->last_seq = e.seq;
            ack->ts = e.timestamp;
            memcpy(ack->vid, e.version_id, 32);
            kd_entry_clear(&e);
        }
        return rc;
    }
    kd_batch *b = kd_batch_new();
    if (!b) return KD_NOMEM;
    rc = KD_OK;
    for (int i = 0; i < o->n && rc == KD_OK; i++) {
        const opitem *it = &o->it[i];
        key_name(key, sizeof key, w->prefix, w->t, it->keyn);
        rc = it->del ? kd_batch_delete(b, NSNAME[it->ns], key)
                     : kd_batch_put(b, NSNAME[it->ns], key, o->text + it->voff, it->vlen);
    }
    if (rc == KD_OK) rc = kd_batch_commit(w->db, b, &ack->first_seq, &ack->last_seq);
    kd_batch_free(b);
    return rc;
}

static void *writer_main(void *arg) {
    writer *w = arg;
    frame *f = calloc(1, sizeof *f);
    if (!f) _exit(3);
    for (uint32_t opno = 1;; opno++) {
        memset(f, 0, offsetof(frame, o));
        f->thread = (uint8_t)w->t;
        build_op(w, &f->o, opno);
        f->kind = F_BEGIN;
        if (send_frame(w->fd, f) != 0) _exit(2);
        int rc = run_op(w, &f->o, f);
        if (rc != KD_OK) {
            f->kind = F_ERR;
            f->rc = rc;
            snprintf(f->msg, sizeof f->msg, "%s", kd_errmsg(w->db));
            send_frame(w->fd, f);
            break; /* stop writing; the parent fails the round */
        }
        for (int i = 0; i < f->o.n; i++) w->live[f->o.it[i].ns][f->o.it[i].keyn] = !f->o.it[i].del;
        f->kind = F_ACK; /* only now: the library has acknowledged */
        if (send_frame(w->fd, f) != 0) _exit(2);
        if (w->pace_us) {
            struct timespec ts = {0, (long)rnd(&w->rng, 2 * w->pace_us) * 1000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        }
    }
    for (;;) pause();
    return NULL;
}

typedef struct child_cfg {
    kd_sync_mode sync;
    int allow_del, allow_big, many_big;
    uint32_t pace_us;
    int nthreads;
    uint32_t round;    /* seeds the writers and goes into their values */
    char name[32];     /* "round 3", for messages */
    const char *prefix;
    /* initial per-thread state (copied into the child by fork) */
    uint32_t next[NTHREADS][2];
    uint8_t *live[NTHREADS][2];
    size_t cap[NTHREADS][2];
} child_cfg;

/* A child must not outlive the test, even if the parent dies before killing it. */
static void die_with_parent(pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(6);
}

static void child_fail(int fd, int rc, const char *what) {
    frame f;
    memset(&f, 0, sizeof f);
    f.kind = F_ERR;
    f.thread = NTHREADS; /* the child's main thread */
    f.rc = rc;
    snprintf(f.msg, sizeof f.msg, "%s: %s", what, kd_errmsg(NULL));
    send_frame(fd, &f);
    _exit(1);
}

static void child_main(int fd, const child_cfg *cfg) {
    kd_options o;
    kd_options_init(&o);
    o.sync = cfg->sync;
    kd_db *db = NULL;
    int rc = kd_open(dir, &o, &db);
    if (rc != KD_OK) child_fail(fd, rc, "kd_open");
    frame f;
    memset(&f, 0, sizeof f);
    f.kind = F_READY;
    f.thread = NTHREADS;
    if (send_frame(fd, &f) != 0) _exit(2);
    static writer w[NTHREADS];
    pthread_t th[NTHREADS];
    for (int t = 0; t < cfg->nthreads; t++) {
        w[t].t = t;
        w[t].fd = fd;
        w[t].db = db;
        w[t].rng = stream(cfg->round, (uint32_t)t);
        w[t].round = cfg->round;
        w[t].allow_del = cfg->allow_del;
        w[t].allow_big = cfg->allow_big;
        w[t].many_big = cfg->many_big;
        w[t].pace_us = cfg->pace_us;
        w[t].prefix = cfg->prefix;
        for (int ns = 0; ns < 2; ns++) {
            w[t].next[ns] = cfg->next[t][ns];
            w[t].live[ns] = cfg->live[t][ns];
            w[t].cap[ns] = cfg->cap[t][ns];
        }
        if (pthread_create(&th[t], NULL, writer_main, &w[t]) != 0) child_fail(fd, KD_ERROR, "pthread_create");
    }
    for (;;) pause();
}

/* ---- the parent: one round ----------------------------------------------------------- */

typedef void (*frame_fn)(void *ctx, const frame *f);

typedef struct round_out {
    uint64_t kill_ms;   /* delay before the kill: from the first acknowledgement (so slow
                           builds, valgrind and loaded machines still get writes in), or
                           from fork when early */
    int early;          /* killed without waiting for the child (maybe during open/recovery) */
    int ready, acked;
    int died_first;     /* the child was gone before the kill */
    size_t partial;     /* bytes of an incomplete frame at EOF (never seen: frames are atomic) */
} round_out;

typedef struct pipe_reader {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    int eof, bad;
} pipe_reader;

/* Reads what is available; sets eof at end of file. */
static void reader_fill(pipe_reader *r) {
    if (r->cap - r->len < 65536) {
        size_t cap = r->cap ? r->cap * 2 : 262144;
        uint8_t *p = realloc(r->buf, cap);
        if (!p) abort();
        r->buf = p;
        r->cap = cap;
    }
    ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
    if (n < 0) {
        if (errno != EINTR && errno != EAGAIN) r->eof = 1;
        return;
    }
    if (n == 0) r->eof = 1;
    r->len += (size_t)n;
}

/* Hands every complete frame to fn and keeps an incomplete tail for the next read. */
static void reader_frames(pipe_reader *r, frame *scratch, frame_fn fn, void *ctx, round_out *out) {
    size_t off = 0;
    while (!r->bad && r->len - off >= 2) {
        size_t flen = get_u16(r->buf + off);
        if (flen < HDRBYTES || flen > PIPE_BUF) {
            FAILF("pipe protocol: bad frame length %zu", flen);
            r->bad = 1;
            break;
        }
        if (r->len - off < flen) break;
        if (decode_frame(r->buf + off, flen, scratch) != 0) {
            FAILF("pipe protocol: malformed frame");
            r->bad = 1;
            break;
        }
        if (scratch->kind == F_READY) out->ready = 1;
        if (scratch->kind == F_ACK) out->acked = 1;
        fn(ctx, scratch);
        off += flen;
    }
    memmove(r->buf, r->buf + off, r->len - off);
    r->len -= off;
}

/* Forks the child, feeds its frames to fn, kills it after the seeded delay, drains the pipe
** and reaps it. Returns 0 when the round ran as intended (the child was killed by us). */
static int run_round(const child_cfg *cfg, uint64_t *krng, frame_fn fn, void *ctx, round_out *out) {
    memset(out, 0, sizeof *out);
    out->early = rnd(krng, 8) == 0;
    /* flat-out rounds are short: a round's writes are checked again in every later round */
    out->kill_ms = out->early      ? rnd(krng, 40)
                   : cfg->many_big ? 20 + rnd(krng, 61)
                   : cfg->pace_us  ? 20 + rnd(krng, 381)
                                   : 20 + rnd(krng, 101);
    int p[2];
    if (pipe(p) != 0) {
        FAILF("pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        FAILF("fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        die_with_parent(parent);
        close(p[0]);
        child_main(p[1], cfg);
        _exit(5);
    }
    close(p[1]);
    pipe_reader r = {p[0], NULL, 0, 0, 0, 0};
    frame *scratch = malloc(sizeof *scratch);
    if (!scratch) abort();
    uint64_t t0 = now_ms();
    uint64_t deadline = out->early ? t0 + out->kill_ms : UINT64_MAX;
    uint64_t hard = t0 + 60000; /* the child never became ready */
    uint64_t drain_until = 0;
    int killed = 0, armed = out->early;
    while (!r.eof) {
        uint64_t now = now_ms();
        int timeout;
        if (!killed) {
            uint64_t dl = deadline < hard ? deadline : hard;
            if (now >= dl) {
                if (dl == hard && !out->ready) FAILF("%s: child not ready after 60 s", cfg->name);
                kill(pid, SIGKILL);
                killed = 1;
                drain_until = now + 30000;
                continue;
            }
            timeout = (int)(dl - now);
        } else {
            if (now >= drain_until) {
                FAILF("%s: pipe still open 30 s after the kill", cfg->name);
                break;
            }
            timeout = (int)(drain_until - now);
        }
        struct pollfd pfd = {p[0], POLLIN, 0};
        int pr = poll(&pfd, 1, timeout);
        if (pr < 0 && errno != EINTR) {
            FAILF("poll: %s", strerror(errno));
            if (!killed) kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        if (pr <= 0) continue;
        reader_fill(&r);
        reader_frames(&r, scratch, fn, ctx, out);
        if (out->ready && !armed) {
            if (out->acked) { /* the writers are running: start the clock */
                armed = 1;
                deadline = now_ms() + out->kill_ms;
            } else if (hard > now_ms() + 10000) {
                hard = now_ms() + 10000; /* ready but no write acknowledged: do not wait forever */
            }
        }
    }
    out->partial = r.len;
    if (!killed) {
        out->died_first = 1;
        kill(pid, SIGKILL); /* harmless if it is already a zombie; makes sure if not */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    close(p[0]);
    free(r.buf);
    free(scratch);
    if (out->died_first) {
        if (WIFEXITED(status))
            FAILF("%s: child exited by itself with status %d before the kill", cfg->name, WEXITSTATUS(status));
        else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
            FAILF("%s: child died of signal %d before the kill", cfg->name, WTERMSIG(status));
        else
            FAILF("%s: child gone before the kill (status 0x%x)", cfg->name, status);
        return -1;
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        FAILF("%s: child ended with status 0x%x, not by our SIGKILL", cfg->name, status);
        return -1;
    }
    return r.bad ? -1 : 0;
}

/* ---- the model of the sync=full database --------------------------------------------- */

typedef struct mver {
    uint64_t seq;
    int64_t ts;
    uint64_t vh;     /* vhash() of the value (the model keeps no copies: 200 rounds make
                        hundreds of thousands of versions) */
    uint8_t vid[32];
    uint8_t known;   /* vid and ts confirmed (from an ack or a verified read) */
    uint8_t deleted;
    uint8_t acked;   /* acknowledged (otherwise: an in-flight write that landed) */
    uint32_t vlen;
} mver;

typedef struct mkey {
    mver *v;
    uint32_t n, cap;
    uint32_t touched; /* last round that wrote it */
} mkey;

typedef struct mset {
    mkey *keys; /* indexed by key number */
    uint32_t nkeys, cap;
} mset;

typedef struct vref {
    uint8_t used, ns, t;
    uint32_t keyn, idx;
} vref;

typedef struct model {
    mset s[2][NTHREADS];
    vref *byseq; /* byseq[seq - 1] */
    uint64_t seqcap, versions, maxseq;
} model;

static mkey *model_key(model *m, int ns, int t, uint32_t keyn) {
    mset *s = &m->s[ns][t];
    if (keyn >= s->cap) {
        uint32_t cap = s->cap ? s->cap : 1024;
        while (cap <= keyn) cap *= 2;
        mkey *k = realloc(s->keys, cap * sizeof *k);
        if (!k) abort();
        memset(k + s->cap, 0, (cap - s->cap) * sizeof *k);
        s->keys = k;
        s->cap = cap;
    }
    if (keyn >= s->nkeys) s->nkeys = keyn + 1;
    return &s->keys[keyn];
}

static vref *model_seq(model *m, uint64_t seq) {
    if (seq == 0 || seq > m->seqcap) return NULL;
    return &m->byseq[seq - 1];
}

/* Adds a version; returns 0, or -1 if the seq is already taken (reported by the caller). */
static int model_add(model *m, int ns, int t, uint32_t keyn, uint32_t round, const mver *v) {
    if (v->seq == 0) return -1;
    if (v->seq > m->seqcap) {
        uint64_t cap = m->seqcap ? m->seqcap : 65536;
        while (cap < v->seq) cap *= 2;
        vref *p = realloc(m->byseq, cap * sizeof *p);
        if (!p) abort();
        memset(p + m->seqcap, 0, (cap - m->seqcap) * sizeof *p);
        m->byseq = p;
        m->seqcap = cap;
    }
    vref *r = &m->byseq[v->seq - 1];
    if (r->used) return -1;
    mkey *k = model_key(m, ns, t, keyn);
    if (k->n == k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 4;
        mver *p = realloc(k->v, cap * sizeof *p);
        if (!p) abort();
        k->v = p;
        k->cap = cap;
    }
    k->v[k->n] = *v;
    *r = (vref){1, (uint8_t)ns, (uint8_t)t, keyn, k->n};
    k->n++;
    k->touched = round;
    m->versions++;
    if (v->seq > m->maxseq) m->maxseq = v->seq;
    return 0;
}

static void model_free(model *m) {
    for (int ns = 0; ns < 2; ns++)
        for (int t = 0; t < NTHREADS; t++) {
            mset *s = &m->s[ns][t];
            for (uint32_t i = 0; i < s->nkeys; i++) free(s->keys[i].v);
            free(s->keys);
        }
    free(m->byseq);
    memset(m, 0, sizeof *m);
}

/* A 64-bit hash of a value, eight bytes at a time (the feed pass hashes every value of the
** database in every round). */
static uint64_t vhash(const char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t c;
        memcpy(&c, p + i, 8);
        h = (h ^ c) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return mix64(h);
}

/* Hash and length of an item's value, re-generating it when it did not fit the frame. */
static uint64_t item_hash(const op *o, const opitem *it, uint32_t round, int t, uint32_t *len) {
    if (!it->gen) {
        *len = it->vlen;
        return vhash(o->text + it->voff, it->vlen);
    }
    size_t cap = it->padlen + 96;
    char *big = malloc(cap);
    if (!big) abort();
    size_t n = gen_value(big, cap, it->keyn, o->opno, round, t, it->padlen);
    uint64_t h = vhash(big, n);
    free(big);
    *len = (uint32_t)n;
    return h;
}

static char *dup_bytes(const char *p, size_t n) {
    char *d = malloc(n + 1);
    if (!d) abort();
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

/* ---- the sync=full round: frames in, checks out ---------------------------------------- */

typedef struct batchref {
    uint64_t first;
    uint32_t n;
} batchref;

typedef struct full_round {
    model *m;
    uint32_t round;
    op pend[NTHREADS]; /* the op each writer announced last */
    int has_pend[NTHREADS];
    uint64_t acks, acked_versions, errors;
    batchref *batches;
    size_t nbatches, capbatches;
} full_round;

static void push_batch(full_round *fr, uint64_t first, uint32_t n) {
    if (fr->nbatches == fr->capbatches) {
        size_t cap = fr->capbatches ? fr->capbatches * 2 : 64;
        batchref *p = realloc(fr->batches, cap * sizeof *p);
        if (!p) abort();
        fr->batches = p;
        fr->capbatches = cap;
    }
    fr->batches[fr->nbatches++] = (batchref){first, n};
}

static void full_on_frame(void *ctx, const frame *f) {
    full_round *fr = ctx;
    int t = f->thread;
    if (f->kind == F_READY) return;
    if (f->kind == F_ERR) {
        fr->errors++;
        FAILF("round %u: writer %d: %s failed: %s: %s", fr->round, t, t == NTHREADS ? "setup" : op_name(f->o.kind),
              kd_strerror(f->rc), f->msg);
        return;
    }
    if (t >= NTHREADS) {
        FAILF("round %u: frame from unknown writer %d", fr->round, t);
        return;
    }
    if (f->kind == F_BEGIN) {
        if (fr->has_pend[t])
            FAILF("round %u: writer %d began op %u before op %u was acknowledged", fr->round, t, f->o.opno,
                  fr->pend[t].opno);
        fr->pend[t] = f->o;
        fr->has_pend[t] = 1;
        for (int i = 0; i < f->o.n; i++)
            model_key(fr->m, f->o.it[i].ns, t, f->o.it[i].keyn); /* reserves the number */
        return;
    }
    /* F_ACK */
    if (!fr->has_pend[t] || fr->pend[t].opno != f->o.opno) {
        FAILF("round %u: writer %d acknowledged op %u it never began", fr->round, t, f->o.opno);
        return;
    }
    fr->has_pend[t] = 0;
    if (f->last_seq < f->first_seq || f->last_seq - f->first_seq + 1 != f->o.n) {
        FAILF("round %u: writer %d %s of %d items got seqs %llu..%llu", fr->round, t, op_name(f->o.kind), f->o.n,
              (unsigned long long)f->first_seq, (unsigned long long)f->last_seq);
        return;
    }
    fr->acks++;
    fr->acked_versions += f->o.n;
    for (int i = 0; i < f->o.n; i++) {
        const opitem *it = &f->o.it[i];
        mver v;
        memset(&v, 0, sizeof v);
        v.seq = f->first_seq + (uint64_t)i;
        v.deleted = it->del;
        v.acked = 1;
        if (!it->del) v.vh = item_hash(&f->o, it, fr->round, t, &v.vlen);
        if (f->o.kind != OP_BATCH) { /* kd_batch_commit reports no ids or time */
            v.known = 1;
            v.ts = f->ts;
            memcpy(v.vid, f->vid, 32);
        }
        if (model_add(fr->m, it->ns, t, it->keyn, fr->round, &v) != 0) {
            FAILF("round %u: seq %llu acknowledged twice (writer %d, %s/w%d-%u)", fr->round,
                  (unsigned long long)v.seq, t, NSNAME[it->ns], t, it->keyn);
        }
    }
    if (f->o.kind == OP_BATCH) push_batch(fr, f->first_seq, f->o.n);
}

/* Compares a version read from the database with the model; fills in what the model did
** not know yet. Returns 1 when they agree. */
static int match_version(model *m, int ns, int t, uint32_t keyn, uint32_t idx, const kd_entry *e, int check_change,
                         const char *via, uint32_t round) {
    mkey *k = &m->s[ns][t].keys[keyn];
    mver *v = &k->v[idx];
    char key[64];
    key_name(key, sizeof key, "", t, keyn);
    const char *what = NULL;
    if (e->seq != v->seq)
        what = "seq differs";
    else if (strcmp(e->ns, NSNAME[ns]) != 0 || strcmp(e->key, key) != 0)
        what = "belongs to another key";
    else if (!!e->deleted != v->deleted)
        what = v->deleted ? "should be a tombstone" : "is a tombstone";
    else if (!v->deleted && (!e->value || e->value_len != v->vlen || vhash(e->value, e->value_len) != v->vh))
        what = "value differs";
    else if (v->known && memcmp(e->version_id, v->vid, 32) != 0)
        what = "version id differs";
    else if (v->known && e->timestamp != v->ts)
        what = "timestamp differs";
    else if (idx == 0 && e->has_previous)
        what = "has a previous version but is the first";
    else if (idx > 0 && (!e->has_previous || memcmp(e->previous_version, k->v[idx - 1].vid, 32) != 0))
        what = "previous_version does not name the version before it";
    else if (check_change) {
        int want = v->deleted                            ? KD_CHANGE_DELETE
                   : (idx > 0 && !k->v[idx - 1].deleted) ? KD_CHANGE_UPDATE
                                                         : KD_CHANGE_INSERT;
        if (e->change != want) what = "wrong change type";
    }
    if (what) {
        FAILF("round %u: %s/%s version %u (seq %llu, %s): %s %s", round, NSNAME[ns], key, idx,
              (unsigned long long)v->seq, v->acked ? "acknowledged" : "unacknowledged, found after a kill", what,
              via);
        if (e->value && !v->deleted && strcmp(what, "value differs") == 0)
            fprintf(stderr, "      got %.200s\n", e->value);
        return 0;
    }
    if (!v->known) {
        memcpy(v->vid, e->version_id, 32);
        v->ts = e->timestamp;
        v->known = 1;
    }
    return 1;
}

static int history_of(kd_db *db, int ns, int t, uint32_t keyn, kd_entry **h, size_t *n) {
    char key[64];
    size_t total;
    key_name(key, sizeof key, "", t, keyn);
    *h = NULL;
    *n = 0;
    int rc = kd_history(db, NSNAME[ns], key, 0, 0, 1, h, n, &total);
    if (rc == KD_NOTFOUND) {
        *h = NULL;
        *n = 0;
        return KD_OK;
    }
    return rc;
}

/* The op a writer had in flight at the kill: all of it landed or none. If it landed it
** joins the model. Returns the number of versions that landed. */
static uint32_t settle_in_flight(kd_db *db, full_round *fr, int t) {
    op *o = &fr->pend[t];
    model *m = fr->m;
    uint32_t present = 0;
    kd_entry *h[MAXITEMS];
    size_t hn[MAXITEMS];
    for (int i = 0; i < o->n; i++) {
        mkey *k = model_key(m, o->it[i].ns, t, o->it[i].keyn);
        int rc = history_of(db, o->it[i].ns, t, o->it[i].keyn, &h[i], &hn[i]);
        if (rc != KD_OK)
            FAILF("round %u: kd_history %s/w%d-%u: %s", fr->round, NSNAME[o->it[i].ns], t, o->it[i].keyn,
                  kd_strerror(rc));
        if (hn[i] == (size_t)k->n + 1) present++;
    }
    if (present != 0 && present != o->n) {
        for (int i = 0; i < o->n; i++)
            FAILF("round %u: writer %d's in-flight %s is torn: %u of %d items present; item %d %s/w%d-%u has %zu "
                  "versions, %u expected before it",
                  fr->round, t, op_name(o->kind), present, o->n, i + 1, NSNAME[o->it[i].ns], t, o->it[i].keyn, hn[i],
                  model_key(m, o->it[i].ns, t, o->it[i].keyn)->n);
    } else if (present == o->n) {
        const kd_entry *first = &h[0][hn[0] - 1];
        for (int i = 0; i < o->n; i++) {
            const opitem *it = &o->it[i];
            const kd_entry *e = &h[i][hn[i] - 1];
            mver v;
            memset(&v, 0, sizeof v);
            v.seq = e->seq;
            v.deleted = it->del;
            if (!it->del) v.vh = item_hash(o, it, fr->round, t, &v.vlen);
            if (e->seq != first->seq + (uint64_t)i || e->timestamp != first->timestamp)
                FAILF("round %u: writer %d's in-flight %s landed but item %d has seq %llu / time %lld (item 1: %llu "
                      "/ %lld)",
                      fr->round, t, op_name(o->kind), i + 1, (unsigned long long)e->seq, (long long)e->timestamp,
                      (unsigned long long)first->seq, (long long)first->timestamp);
            if (model_add(m, it->ns, t, it->keyn, fr->round, &v) != 0) {
                FAILF("round %u: in-flight item %s/w%d-%u landed at seq %llu, which an acknowledged write holds",
                      fr->round, NSNAME[it->ns], t, it->keyn, (unsigned long long)e->seq);
            }
            /* value, id and chain are checked by the feed pass, in seq order */
        }
    }
    for (int i = 0; i < o->n; i++) kd_entries_free(h[i], hn[i]);
    return present == o->n ? present : 0;
}

/* Every version in the database, through the feed, against the model. Returns the number of
** model versions that are missing or wrong (lost). */
static uint64_t check_feed(kd_db *db, model *m, uint32_t round, uint64_t dbseq) {
    kd_feed *f = NULL;
    uint64_t lost = 0, expect = 1, count = 0;
    int64_t last_ts = INT64_MIN;
    uint8_t *seen = calloc(m->seqcap ? m->seqcap : 1, 1);
    if (!seen) abort();
    int rc = kd_feed_open(db, 0, &f);
    if (rc != KD_OK) {
        FAILF("round %u: kd_feed_open: %s", round, kd_strerror(rc));
        free(seen);
        return 0;
    }
    kd_entry e;
    while ((rc = kd_feed_next(f, &e)) == KD_OK) {
        count++;
        if (e.seq != expect)
            FAILF("round %u: feed: seq %llu follows %llu (a hole)", round, (unsigned long long)e.seq,
                  (unsigned long long)expect - 1);
        expect = e.seq + 1;
        if (e.timestamp < last_ts)
            FAILF("round %u: feed: seq %llu has a timestamp before the one of seq %llu", round,
                  (unsigned long long)e.seq, (unsigned long long)e.seq - 1);
        last_ts = e.timestamp;
        vref *r = model_seq(m, e.seq);
        if (!r || !r->used) {
            FAILF("round %u: seq %llu (%s/%s) was never written (not acknowledged, not in flight)", round,
                  (unsigned long long)e.seq, e.ns, e.key);
        } else {
            seen[e.seq - 1] = 1;
            if (!match_version(m, r->ns, r->t, r->keyn, r->idx, &e, 1, "(read through the feed)", round)) lost++;
        }
        kd_entry_clear(&e);
    }
    if (rc != KD_DONE) FAILF("round %u: kd_feed_next: %s: %s", round, kd_strerror(rc), kd_errmsg(db));
    kd_feed_close(f);
    if (count != dbseq)
        FAILF("round %u: feed has %llu versions, stats.seq is %llu", round, (unsigned long long)count,
              (unsigned long long)dbseq);
    for (uint64_t s = 1; s <= m->seqcap; s++) {
        vref *r = &m->byseq[s - 1];
        if (!r->used || seen[s - 1]) continue;
        mver *v = &m->s[r->ns][r->t].keys[r->keyn].v[r->idx];
        lost++;
        FAILF("round %u: LOST %s/w%d-%u version %u (seq %llu, %s)", round, NSNAME[r->ns], r->t, r->keyn, r->idx,
              (unsigned long long)s, v->acked ? "acknowledged" : "verified in an earlier round");
    }
    free(seen);
    return lost;
}

/* kd_history and kd_get of one key against the model. */
static void check_key(kd_db *db, model *m, int ns, int t, uint32_t keyn, uint32_t round) {
    mkey *k = &m->s[ns][t].keys[keyn];
    kd_entry *h;
    size_t n;
    char key[64];
    key_name(key, sizeof key, "", t, keyn);
    int rc = history_of(db, ns, t, keyn, &h, &n);
    if (rc != KD_OK) {
        FAILF("round %u: kd_history %s/%s: %s", round, NSNAME[ns], key, kd_strerror(rc));
        return;
    }
    if (n != k->n)
        FAILF("round %u: %s/%s has %zu versions in its history, the model %u", round, NSNAME[ns], key, n, k->n);
    for (size_t i = 0; i < n && i < k->n; i++)
        match_version(m, ns, t, keyn, (uint32_t)i, &h[i], 0, "(read through kd_history)", round);
    kd_entries_free(h, n);
    if (k->n == 0) return;
    kd_entry e;
    memset(&e, 0, sizeof e);
    const mver *last = &k->v[k->n - 1];
    rc = kd_get(db, NSNAME[ns], key, &e);
    if (last->deleted) {
        if (rc != KD_NOTFOUND || !e.deleted || e.seq != last->seq)
            FAILF("round %u: %s/%s should be deleted at seq %llu: kd_get gave %s, seq %llu", round, NSNAME[ns], key,
                  (unsigned long long)last->seq, kd_strerror(rc), (unsigned long long)e.seq);
    } else if (rc != KD_OK || e.seq != last->seq || !e.value || e.value_len != last->vlen ||
               vhash(e.value, e.value_len) != last->vh) {
        FAILF("round %u: %s/%s current version should be seq %llu: kd_get gave %s, seq %llu", round, NSNAME[ns], key,
              (unsigned long long)last->seq, kd_strerror(rc), (unsigned long long)e.seq);
    }
    kd_entry_clear(&e);
}

typedef struct totals {
    uint64_t acks, acked_versions, landed, lost, versions, segments, torn, cuts;
} totals;

/* kd_open with the library's log lines captured: after kill -9 it may warn that it cut a
** torn tail, which is expected; those are counted (to show the path ran), other lines are
** passed on. */
static int open_counting_torn(const kd_options *o, kd_db **db, uint64_t *torn) {
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = tmp ? dup(2) : -1;
    if (saved >= 0) dup2(fileno(tmp), 2);
    int rc = kd_open(dir, o, db);
    fflush(stderr);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    if (tmp) {
        char line[1200];
        rewind(tmp);
        while (fgets(line, sizeof line, tmp)) {
            if (strstr(line, "torn tail") || strstr(line, "cut short by a crash"))
                (*torn)++;
            else
                fputs(line, stderr);
        }
        fclose(tmp);
    }
    return rc;
}

/* Reopens after the kill and checks everything. Returns -1 if the database did not open. */
static int verify_full(full_round *fr, int all_keys, totals *tot, const round_out *ro, const child_cfg *cfg,
                       const char *note) {
    model *m = fr->m;
    kd_db *db = NULL;
    kd_options o;
    kd_options_init(&o);
    tot->acks += fr->acks;
    tot->acked_versions += fr->acked_versions;
    uint64_t torn = 0;
    int rc = open_counting_torn(&o, &db, &torn);
    tot->torn += torn;
    if (rc != KD_OK) {
        FAILF("round %u: reopen after kill -9 failed: %s: %s", fr->round, kd_strerror(rc), kd_errmsg(NULL));
        return -1;
    }
    uint32_t inflight = 0, landed = 0;
    for (int t = 0; t < NTHREADS; t++) {
        if (!fr->has_pend[t]) continue;
        inflight++;
        if (settle_in_flight(db, fr, t)) landed++;
    }
    kd_check_report rep;
    memset(&rep, 0, sizeof rep);
    rc = kd_check(db, 1, &rep);
    if (rc != KD_OK || !rep.ok)
        FAILF("round %u: kd_check: %s, ok=%d, %llu errors: %s", fr->round, kd_strerror(rc), rep.ok,
              (unsigned long long)rep.errors, rep.first_error);
    kd_stats st;
    memset(&st, 0, sizeof st);
    rc = kd_stats_get(db, &st);
    if (rc != KD_OK) FAILF("round %u: kd_stats_get: %s", fr->round, kd_strerror(rc));
    uint64_t lost = check_feed(db, m, fr->round, st.seq);
    if (st.versions != st.seq || st.seq != m->versions)
        FAILF("round %u: stats say %llu versions, seq %llu; acknowledged and landed writes make %llu", fr->round,
              (unsigned long long)st.versions, (unsigned long long)st.seq, (unsigned long long)m->versions);
    for (int ns = 0; ns < 2; ns++)
        for (int t = 0; t < NTHREADS; t++)
            for (uint32_t kn = 0; kn < m->s[ns][t].nkeys; kn++)
                if (all_keys || m->s[ns][t].keys[kn].touched == fr->round) check_key(db, m, ns, t, kn, fr->round);
    for (size_t b = 0; b < fr->nbatches; b++) {
        const vref *r0 = model_seq(m, fr->batches[b].first);
        if (!r0 || !r0->used) continue;
        int64_t ts = m->s[r0->ns][r0->t].keys[r0->keyn].v[r0->idx].ts;
        for (uint32_t i = 1; i < fr->batches[b].n; i++) {
            const vref *r = model_seq(m, fr->batches[b].first + i);
            if (r && r->used && m->s[r->ns][r->t].keys[r->keyn].v[r->idx].ts != ts)
                FAILF("round %u: batch at seq %llu: item %u has another timestamp", fr->round,
                      (unsigned long long)fr->batches[b].first, i + 1);
        }
    }
    rc = kd_close(db);
    if (rc != KD_OK) FAILF("round %u: kd_close: %s", fr->round, kd_strerror(rc));
    tot->landed += landed;
    tot->lost += lost;
    tot->versions = st.seq;
    tot->segments = st.segments;
    printf("     round %u%s: kill %s %llu ms%s; %llu acks (%llu versions), %u in flight (%u landed)%s%s; db: %llu "
           "versions%s%s\n",
           fr->round, cfg->many_big ? " (flat out, big values)" : cfg->pace_us ? "" : " (flat out)",
           ro->early ? "at" : "after the first ack +", (unsigned long long)ro->kill_ms,
           ro->ready ? "" : " (before ready)", (unsigned long long)fr->acks, (unsigned long long)fr->acked_versions,
           inflight, landed, ro->partial ? "; a partial frame ignored" : "", note, (unsigned long long)st.seq,
           torn ? ", torn tail cut" : "", all_keys ? ", every key checked" : "");
    return 0;
}

/* ---- simulated power cut: a torn tail ------------------------------------------------
**
** kill -9 alone rarely tears a record: the kernel finishes most write() calls even for a
** dying process. So in some rounds, after the kill, the test plays a power cut in the middle
** of a write that nobody was told about: in the newest log segment (layout in
** docs/format.md), the first record whose versions are all newer than every acknowledged
** or verified one is cut at a random byte, and everything after the cut is zeroed (as if
** never written back: the log is zero-filled ahead of its write position) or truncated
** away. Nothing acknowledged is touched, so the checks do not change: the writes in flight
** may be absent, whole. Skipped when the child wrote a checkpoint (a checkpoint never
** covers log that was not durable, so it must not be cut). */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static int newest_segment(char *path, size_t cap) {
    char logdir[300];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    DIR *d = opendir(logdir);
    if (!d) return -1;
    unsigned long best = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        unsigned long n = strtoul(de->d_name, &end, 10);
        if (end == de->d_name + 8 && strcmp(end, ".kdl") == 0 && n > best) best = n;
    }
    closedir(d);
    if (!best) return -1;
    snprintf(path, cap, "%s/%08lu.kdl", logdir, best);
    return 0;
}

typedef struct ckpt_id {
    int exists;
    struct stat st;
} ckpt_id;

static ckpt_id checkpoint_id(void) {
    char p[300];
    ckpt_id c;
    memset(&c, 0, sizeof c);
    snprintf(p, sizeof p, "%s/checkpoint", dir);
    c.exists = stat(p, &c.st) == 0;
    return c;
}

static int same_checkpoint(const ckpt_id *a, const ckpt_id *b) {
    if (a->exists != b->exists) return 0;
    return !a->exists ||
           (a->st.st_ino == b->st.st_ino && a->st.st_size == b->st.st_size &&
            a->st.st_mtim.tv_sec == b->st.st_mtim.tv_sec && a->st.st_mtim.tv_nsec == b->st.st_mtim.tv_nsec);
}

/* Returns 1 if it cut a record (described in note). */
static int tear_tail(uint64_t max_known_seq, uint64_t *rng, char *note, size_t cap) {
    char path[512];
    if (newest_segment(path, sizeof path) != 0) return 0;
    int fd = open(path, O_RDWR);
    if (fd < 0) return 0;
    struct stat st;
    int torn = 0;
    if (fstat(fd, &st) != 0) goto out;
    uint64_t size = (uint64_t)st.st_size, off = 64, victim = 0, victim_len = 0, first = 0, nvers = 0;
    for (;;) { /* walk the records; stop at the zero tail or anything that does not fit */
        uint8_t h[9 + 24];
        if (off + sizeof h > size || pread(fd, h, sizeof h, (off_t)off) != (ssize_t)sizeof h) break;
        uint64_t L = le32(h);
        if (L < 24 || off + 9 + L > size) break;
        if (!victim && le64(h + 9) > max_known_seq) {
            victim = off;
            victim_len = 9 + L;
            first = le64(h + 9);
            nvers = le32(h + 9 + 20);
        }
        off += 9 + L;
    }
    if (!victim) goto out;
    uint64_t cut = victim + 1 + rnd(rng, (uint32_t)(victim_len - 1 < UINT32_MAX ? victim_len - 1 : UINT32_MAX));
    int truncate_it = rnd(rng, 2);
    if (truncate_it) {
        if (ftruncate(fd, (off_t)cut) != 0) goto out;
    } else {
        static const uint8_t zeros[65536];
        for (uint64_t p = cut; p < off;) {
            size_t n = off - p < sizeof zeros ? (size_t)(off - p) : sizeof zeros;
            ssize_t w = pwrite(fd, zeros, n, (off_t)p);
            if (w <= 0) goto out;
            p += (uint64_t)w;
        }
    }
    snprintf(note, cap, "; power cut: commit of seqs %llu..%llu cut at byte %llu of %llu, then %s",
             (unsigned long long)first, (unsigned long long)(first + nvers - 1), (unsigned long long)(cut - victim),
             (unsigned long long)victim_len, truncate_it ? "truncated" : "zeros");
    torn = 1;
out:
    close(fd);
    return torn;
}

static uint32_t env_u32(const char *name, uint32_t dflt) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    return *end || v == 0 ? dflt : (uint32_t)v;
}

static void fresh_dir(void) { rmtree(dir); }

/* The writers' starting state for the next round, from the model. */
static void child_state_from_model(child_cfg *cfg, model *m) {
    for (int t = 0; t < NTHREADS; t++)
        for (int ns = 0; ns < 2; ns++) {
            mset *s = &m->s[ns][t];
            size_t cap = s->nkeys + 4096;
            uint8_t *live = calloc(cap, 1);
            if (!live) abort();
            for (uint32_t k = 0; k < s->nkeys; k++)
                live[k] = s->keys[k].n > 0 && !s->keys[k].v[s->keys[k].n - 1].deleted;
            cfg->next[t][ns] = s->nkeys;
            cfg->live[t][ns] = live;
            cfg->cap[t][ns] = cap;
        }
}

static void child_state_free(child_cfg *cfg) {
    for (int t = 0; t < NTHREADS; t++)
        for (int ns = 0; ns < 2; ns++) {
            free(cfg->live[t][ns]);
            cfg->live[t][ns] = NULL;
        }
}

/* ---- tests ---------------------------------------------------------------------------- */

TEST(kill9_durable_writers) {
    uint32_t rounds = env_u32("KD_CRASH_ROUNDS", 6);
    fresh_dir();
    model m;
    memset(&m, 0, sizeof m);
    totals tot;
    memset(&tot, 0, sizeof tot);
    uint64_t t0 = now_ms();
    for (uint32_t r = 1; r <= rounds; r++) {
        child_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.sync = KD_SYNC_FULL;
        cfg.allow_del = 1;
        cfg.allow_big = 1;
        cfg.nthreads = NTHREADS;
        cfg.round = r;
        snprintf(cfg.name, sizeof cfg.name, "round %u", r);
        cfg.prefix = "";
        child_state_from_model(&cfg, &m);
        full_round *fr = calloc(1, sizeof *fr);
        if (!fr) abort();
        fr->m = &m;
        fr->round = r;
        uint64_t krng = stream(r, 1000);
        uint32_t mode = rnd(&krng, 10);
        cfg.pace_us = mode < 3 ? 0 : 1000; /* 3 in 10 rounds flat out */
        cfg.many_big = mode == 0;          /* 1 in 10 with many values of 64..460 KiB */
        int tear = rnd(&krng, 4) == 0;
        ckpt_id before = checkpoint_id();
        round_out ro;
        int ran = run_round(&cfg, &krng, full_on_frame, fr, &ro);
        child_state_free(&cfg);
        char note[200] = "";
        ckpt_id after = checkpoint_id();
        if (tear && ran == 0 && same_checkpoint(&before, &after) && tear_tail(m.maxseq, &krng, note, sizeof note))
            tot.cuts++;
        int opened = verify_full(fr, r == rounds || r % 25 == 0, &tot, &ro, &cfg, note);
        free(fr->batches);
        free(fr);
        if (opened != 0 || ran != 0) {
            FAILF("round %u: stopping", r);
            break;
        }
    }
    printf("crash: %u rounds, %llu acknowledged writes (%llu versions), %llu lost; %llu in-flight writes landed, "
           "%llu power cuts played, %llu torn tails cut at open; db: %llu versions in %llu log segments; %.1f s\n",
           rounds, (unsigned long long)tot.acks, (unsigned long long)tot.acked_versions, (unsigned long long)tot.lost,
           (unsigned long long)tot.landed, (unsigned long long)tot.cuts, (unsigned long long)tot.torn,
           (unsigned long long)tot.versions, (unsigned long long)tot.segments, (double)(now_ms() - t0) / 1000.0);
    CHECK_EQ_INT(tot.lost, 0);
    CHECK(tot.acks > 0);
    model_free(&m);
    fresh_dir();
}

/* A child that holds the database and does nothing is killed; the lock must go with it. */
typedef struct idle_ctx {
    int errors;
} idle_ctx;
static void idle_on_frame(void *ctx, const frame *f) {
    idle_ctx *c = ctx;
    if (f->kind == F_ERR) {
        c->errors++;
        FAILF("idle child: %s", f->msg);
    }
}

static void idle_child(int fd) {
    kd_options o;
    kd_options_init(&o);
    kd_db *db = NULL;
    int rc = kd_open(dir, &o, &db);
    if (rc != KD_OK) child_fail(fd, rc, "kd_open");
    rc = kd_put(db, "idle", "k", "1", 1, NULL, NULL);
    if (rc != KD_OK) child_fail(fd, rc, "kd_put");
    frame f;
    memset(&f, 0, sizeof f);
    f.kind = F_READY;
    f.thread = NTHREADS;
    send_frame(fd, &f);
    for (;;) pause();
}

TEST(kill9_idle_holder_releases_lock) {
    fresh_dir();
    for (int rep = 0; rep < 3; rep++) {
        int p[2];
        if (pipe(p) != 0) {
            FAILF("pipe: %s", strerror(errno));
            break;
        }
        fflush(stdout);
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
            FAILF("fork: %s", strerror(errno));
            close(p[0]);
            close(p[1]);
            break;
        }
        if (pid == 0) {
            die_with_parent(parent);
            close(p[0]);
            idle_child(p[1]);
            _exit(5);
        }
        close(p[1]);
        pipe_reader r = {p[0], NULL, 0, 0, 0, 0};
        frame *scratch = malloc(sizeof *scratch);
        if (!scratch) abort();
        idle_ctx c = {0};
        round_out ro;
        memset(&ro, 0, sizeof ro);
        uint64_t until = now_ms() + 30000;
        while (!ro.ready && !r.eof && now_ms() < until) {
            struct pollfd pfd = {p[0], POLLIN, 0};
            if (poll(&pfd, 1, 1000) > 0) {
                reader_fill(&r);
                reader_frames(&r, scratch, idle_on_frame, &c, &ro);
            }
        }
        CHECK(ro.ready);
        /* while it lives, the lock holds */
        kd_db *db = NULL;
        kd_options o;
        kd_options_init(&o);
        if (ro.ready) {
            CHECK_EQ_INT(kd_open(dir, &o, &db), KD_BUSY);
            char want[32];
            snprintf(want, sizeof want, "%d", (int)pid);
            CHECK(strstr(kd_errmsg(NULL), want) != NULL);
        }
        kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        close(p[0]);
        free(r.buf);
        free(scratch);
        db = NULL;
        int rc = kd_open(dir, &o, &db);
        CHECK_EQ_INT(rc, KD_OK);
        if (rc != KD_OK) {
            fprintf(stderr, "  reopen after killing an idle holder: %s\n", kd_errmsg(NULL));
            break;
        }
        kd_entry e;
        memset(&e, 0, sizeof e);
        CHECK_EQ_INT(kd_get(db, "idle", "k", &e), KD_OK);
        kd_entry_clear(&e);
        kd_stats st;
        kd_stats_get(db, &st);
        CHECK_EQ_INT(st.seq, (uint64_t)rep + 1); /* one acknowledged put per child, none lost */
        CHECK_EQ_INT(kd_close(db), KD_OK);
    }
    fresh_dir();
}

/* ---- sync=normal: acknowledged writes may be lost, but what survives is a prefix ------ */

typedef struct nitem {
    uint8_t t, ns, known;
    uint32_t keyn;
    uint64_t seq, first, last; /* seq of this item; its op's range */
    uint8_t vid[32];
    uint16_t vlen;
    char *value;
} nitem;

typedef struct normal_round {
    uint32_t round;
    char prefix[16];
    nitem *items;
    size_t n, cap;
    op pend[NTHREADS];
    int has_pend[NTHREADS];
    uint64_t last_seq[NTHREADS];
    uint64_t acks, errors;
} normal_round;

static void normal_on_frame(void *ctx, const frame *f) {
    normal_round *nr = ctx;
    int t = f->thread;
    if (f->kind == F_READY) return;
    if (f->kind == F_ERR) {
        nr->errors++;
        FAILF("normal round %u: writer %d: %s failed: %s: %s", nr->round, t,
              t == NTHREADS ? "setup" : op_name(f->o.kind), kd_strerror(f->rc), f->msg);
        return;
    }
    if (t >= NTHREADS) return;
    if (f->kind == F_BEGIN) {
        nr->pend[t] = f->o;
        nr->has_pend[t] = 1;
        return;
    }
    nr->has_pend[t] = 0;
    if (f->last_seq < f->first_seq || f->last_seq - f->first_seq + 1 != f->o.n || f->first_seq <= nr->last_seq[t]) {
        FAILF("normal round %u: writer %d got seqs %llu..%llu for %d items after seq %llu", nr->round, t,
              (unsigned long long)f->first_seq, (unsigned long long)f->last_seq, f->o.n,
              (unsigned long long)nr->last_seq[t]);
        return;
    }
    nr->last_seq[t] = f->last_seq;
    nr->acks++;
    for (int i = 0; i < f->o.n; i++) {
        if (nr->n == nr->cap) {
            size_t cap = nr->cap ? nr->cap * 2 : 4096;
            nitem *p = realloc(nr->items, cap * sizeof *p);
            if (!p) abort();
            nr->items = p;
            nr->cap = cap;
        }
        const opitem *it = &f->o.it[i];
        nitem *x = &nr->items[nr->n++];
        memset(x, 0, sizeof *x);
        x->t = (uint8_t)t;
        x->ns = it->ns;
        x->keyn = it->keyn;
        x->seq = f->first_seq + (uint64_t)i;
        x->first = f->first_seq;
        x->last = f->last_seq;
        x->known = f->o.kind != OP_BATCH;
        memcpy(x->vid, f->vid, 32);
        x->vlen = it->vlen;
        x->value = dup_bytes(f->o.text + it->voff, it->vlen);
    }
}

static int entry_is(const kd_entry *e, int ns, const char *key, const char *value, size_t vlen) {
    return strcmp(e->ns, NSNAME[ns]) == 0 && strcmp(e->key, key) == 0 && !e->deleted && e->value &&
           e->value_len == vlen && memcmp(e->value, value, vlen) == 0;
}

TEST(kill9_sync_normal_keeps_a_prefix) {
    uint32_t rounds = env_u32("KD_CRASH_ROUNDS", 6) / 10;
    if (rounds < 3) rounds = 3;
    if (rounds > 20) rounds = 20;
    fresh_dir();
    uint8_t (*prefix_ids)[32] = NULL; /* version ids of seqs 1..P verified in earlier rounds */
    uint64_t P = 0, total_acked = 0, total_lost = 0;
    for (uint32_t r = 1; r <= rounds; r++) {
        child_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.sync = KD_SYNC_NORMAL;
        cfg.allow_del = 0;
        cfg.pace_us = 1000;
        cfg.nthreads = NTHREADS;
        cfg.round = 10000 + r; /* other random streams than the sync=full rounds */
        snprintf(cfg.name, sizeof cfg.name, "normal round %u", r);
        normal_round *nr = calloc(1, sizeof *nr);
        if (!nr) abort();
        nr->round = r;
        snprintf(nr->prefix, sizeof nr->prefix, "n%u", r);
        cfg.prefix = nr->prefix;
        for (int t = 0; t < NTHREADS; t++) nr->last_seq[t] = P;
        uint64_t krng = stream(10000 + r, 1000);
        round_out ro;
        int ran = run_round(&cfg, &krng, normal_on_frame, nr, &ro);
        kd_db *db = NULL;
        kd_options o;
        kd_options_init(&o);
        int rc = kd_open(dir, &o, &db);
        if (rc != KD_OK) {
            FAILF("normal round %u: reopen after kill -9 failed: %s: %s", r, kd_strerror(rc), kd_errmsg(NULL));
            for (size_t i = 0; i < nr->n; i++) free(nr->items[i].value);
            free(nr->items);
            free(nr);
            break;
        }
        kd_check_report rep;
        memset(&rep, 0, sizeof rep);
        rc = kd_check(db, 1, &rep);
        if (rc != KD_OK || !rep.ok)
            FAILF("normal round %u: kd_check: %s, ok=%d: %s", r, kd_strerror(rc), rep.ok, rep.first_error);
        kd_stats st;
        memset(&st, 0, sizeof st);
        kd_stats_get(db, &st);
        uint64_t S = st.seq;
        /* what earlier rounds verified is compared on the fly; this round's versions are kept:
        ** feed[i] is seq P + 1 + i */
        if (S < P)
            FAILF("normal round %u: seq went back from %llu to %llu", r, (unsigned long long)P,
                  (unsigned long long)S);
        kd_entry *feed = calloc(S > P ? S - P : 1, sizeof *feed);
        if (!feed) abort();
        kd_feed *f = NULL;
        uint64_t count = 0;
        if ((rc = kd_feed_open(db, 0, &f)) != KD_OK) FAILF("normal round %u: kd_feed_open: %s", r, kd_strerror(rc));
        kd_entry e;
        while (f && (rc = kd_feed_next(f, &e)) == KD_OK) {
            if (e.seq != count + 1)
                FAILF("normal round %u: feed: seq %llu follows %llu (a hole)", r, (unsigned long long)e.seq,
                      (unsigned long long)count);
            if (e.seq == count + 1 && count < P) {
                if (memcmp(e.version_id, prefix_ids[count], 32) != 0)
                    FAILF("normal round %u: seq %llu, verified in an earlier round, changed", r,
                          (unsigned long long)e.seq);
                kd_entry_clear(&e);
            } else if (e.seq == count + 1 && count < S) {
                feed[count - P] = e;
            } else {
                kd_entry_clear(&e);
            }
            count++;
        }
        if (f) kd_feed_close(f);
        if (count != S || st.versions != S)
            FAILF("normal round %u: feed has %llu versions, stats %llu versions, seq %llu", r,
                  (unsigned long long)count, (unsigned long long)st.versions, (unsigned long long)S);
        /* acknowledged items: present exactly when their seq is within 1..S, and then intact */
        uint64_t present = 0, lost = 0;
        int gone[NTHREADS] = {0};
        for (size_t i = 0; i < nr->n; i++) {
            nitem *x = &nr->items[i];
            char key[64];
            key_name(key, sizeof key, nr->prefix, x->t, x->keyn);
            if (x->seq <= P) {
                FAILF("normal round %u: %s/%s acknowledged with seq %llu, already taken before the round", r,
                      NSNAME[x->ns], key, (unsigned long long)x->seq);
                continue;
            }
            if (x->seq > S) {
                lost++;
                gone[x->t] = 1;
                if (x->first <= S)
                    FAILF("normal round %u: batch %llu..%llu cut at seq %llu (not all-or-nothing)", r,
                          (unsigned long long)x->first, (unsigned long long)x->last, (unsigned long long)S);
                continue;
            }
            if (gone[x->t])
                FAILF("normal round %u: writer %d: %s/%s (seq %llu) survived an earlier lost write", r, x->t,
                      NSNAME[x->ns], key, (unsigned long long)x->seq);
            const kd_entry *fe = &feed[x->seq - 1 - P];
            if (!fe->ns || !entry_is(fe, x->ns, key, x->value, x->vlen) ||
                (x->known && memcmp(fe->version_id, x->vid, 32) != 0))
                FAILF("normal round %u: %s/%s: seq %llu in the database is not the acknowledged version", r,
                      NSNAME[x->ns], key, (unsigned long long)x->seq);
            present++;
        }
        /* in-flight ops: all of their items or none; nothing else is in the database */
        uint64_t landed = 0;
        for (int t = 0; t < NTHREADS; t++) {
            if (!nr->has_pend[t]) continue;
            op *po = &nr->pend[t];
            int found = 0;
            for (int i = 0; i < po->n; i++) {
                char key[64];
                key_name(key, sizeof key, nr->prefix, t, po->it[i].keyn);
                for (uint64_t s = 0; s + P < S; s++)
                    if (feed[s].ns &&
                        entry_is(&feed[s], po->it[i].ns, key, po->text + po->it[i].voff, po->it[i].vlen)) {
                        found++;
                        break;
                    }
            }
            if (found != 0 && found != po->n)
                FAILF("normal round %u: writer %d's in-flight %s is torn: %d of %d items present", r, t,
                      op_name(po->kind), found, po->n);
            landed += (uint64_t)found;
        }
        if (S >= P && S - P != present + landed)
            FAILF("normal round %u: %llu new versions, but only %llu acknowledged + %llu in flight are accounted for",
                  r, (unsigned long long)(S - P), (unsigned long long)present, (unsigned long long)landed);
        uint8_t(*ids)[32] = realloc(prefix_ids, (S ? S : 1) * 32);
        if (!ids) abort();
        prefix_ids = ids;
        for (uint64_t s = P; s < S; s++) {
            memcpy(prefix_ids[s], feed[s - P].version_id, 32);
            kd_entry_clear(&feed[s - P]);
        }
        free(feed);
        CHECK_EQ_INT(kd_close(db), KD_OK);
        printf("     normal round %u: kill %s %llu ms; %llu acks (%zu versions), %llu present, %llu lost (allowed), "
               "%llu in-flight landed; db: %llu versions\n",
               r, ro.early ? "at" : "after the first ack +", (unsigned long long)ro.kill_ms,
               (unsigned long long)nr->acks, nr->n, (unsigned long long)present, (unsigned long long)lost,
               (unsigned long long)landed, (unsigned long long)S);
        total_acked += nr->n;
        total_lost += lost;
        P = S;
        for (size_t i = 0; i < nr->n; i++) free(nr->items[i].value);
        free(nr->items);
        free(nr);
        if (ran != 0) break;
    }
    printf("crash (sync=normal): %u rounds, %llu acknowledged versions, %llu lost (allowed in this mode)\n", rounds,
           (unsigned long long)total_acked, (unsigned long long)total_lost);
    free(prefix_ids);
    fresh_dir();
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const char *s = getenv("KD_CRASH_SEED");
    if (s && *s)
        seed = strtoull(s, NULL, 0);
    else
        seed = mix64((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ now_ms());
    printf("crash: seed %llu (KD_CRASH_SEED=%llu repeats the choices)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/kd_test_crash_%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    RUN(kill9_idle_holder_releases_lock);
    RUN(kill9_durable_writers);
    RUN(kill9_sync_normal_keeps_a_prefix);
    rmtree(dir);
    return t_done();
}
