/*
** sub.c — in-process subscriptions: callbacks for every committed version that passes a
** filter, after the commit, in seq order.
**
** Each subscription owns a thread and a feed (kd_feed: the log read from a seq). The
** commit hook only bumps a generation counter and wakes the threads that sleep, each on
** its own condition variable (one shared one made 50 woken threads queue for one mutex
** at every commit), so a writer never waits for a subscriber; a subscriber that falls behind reads the versions it missed
** from the log, so it never loses one. Delivery is exactly once per subscription: the
** feed's cursor only moves forward.
**
** Locking: subs.mu guards the list. The generation is atomic. A subscription sleeps on its
** own mu/cond: it sets `sleeping`, then reads the generation; a writer bumps the
** generation, then reads `sleeping` (both sequentially consistent, so one of the two sees
** the other) and signals under the subscription's mu. The stop flag is atomic and set
** under that mu too, so a sleeping thread cannot miss it. No lock is held while a
** callback runs or the log is read.
**
** May call: db (db_int.h, the public feed), query (filter evaluation), base.
*/
#include <stdlib.h>
#include <string.h>

#include "query/query.h"

struct kd_subscription {
    kd_db *db;
    kd_sub_fn fn;
    void *ctx;
    char *ns, *key;
    int types;
    kd_query *q;                  /* the filter's owner (a copy), or NULL */
    kd_feed *feed;
    _Atomic uint64_t done_seq;    /* last seq delivered or skipped */
    pthread_t th;
    pthread_mutex_t mu;           /* guards the sleep below */
    pthread_cond_t cond;
    atomic_int sleeping;          /* the thread is (about to be) waiting on cond */
    atomic_int stop;              /* set under mu, read anywhere */
    struct kd_subscription *next; /* the list, under subs.mu */
};

typedef struct kd_subs {
    pthread_mutex_t mu;           /* guards list */
    _Atomic uint64_t gen;         /* bumped by every commit */
    kd_subscription *list;
} kd_subs;

static void wake(kd_subscription *s) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void on_commit(kd_db *db) {
    kd_subs *ss = db->subs;
    atomic_fetch_add(&ss->gen, 1);
    pthread_mutex_lock(&ss->mu);
    for (kd_subscription *s = ss->list; s; s = s->next)
        if (atomic_load(&s->sleeping)) wake(s);
    pthread_mutex_unlock(&ss->mu);
}

static int wanted(const kd_subscription *s, const kd_entry *e) {
    if (s->ns ? strcmp(s->ns, e->ns) != 0 : e->ns[0] == '_') return 0;
    if (s->key && strcmp(s->key, e->key) != 0) return 0;
    if (s->types && !(s->types & (1 << e->change))) return 0;
    if (s->q && s->q->filter && !e->deleted) {
        kd_qv doc = kd__qv_doc(e->value, e->value_len);
        if (kd__filter_eval(s->q->filter, &doc) != 1) return 0; /* out of memory counts as no */
    }
    return 1;
}

/* The subscription whose thread this is (NULL on other threads). */
static _Thread_local kd_subscription *tl_self;

static void *run(void *arg) {
    kd_subscription *s = arg;
    tl_self = s;
    kd_subs *ss = s->db->subs;
    uint64_t seen = 0;
    for (;;) {
        /* Drain what is visible, then sleep until a commit (or the end). */
        for (;;) {
            kd_entry e;
            int rc = kd_feed_next(s->feed, &e);
            if (rc == KD_DONE) break;
            if (rc != KD_OK) { /* a damaged log: say so, and try again at the next commit */
                kd__log(KD_LOG_ERROR, "subscription: reading the log failed: %s", kd_errmsg(s->db));
                break;
            }
            if (wanted(s, &e)) s->fn(s->ctx, &e);
            atomic_store(&s->done_seq, e.seq);
            kd_entry_clear(&e);
            if (atomic_load(&s->stop)) return NULL;
        }
        pthread_mutex_lock(&s->mu);
        for (;;) {
            atomic_store(&s->sleeping, 1);
            if (atomic_load(&s->stop) || atomic_load(&ss->gen) != seen) break;
            pthread_cond_wait(&s->cond, &s->mu);
        }
        atomic_store(&s->sleeping, 0);
        pthread_mutex_unlock(&s->mu);
        if (atomic_load(&s->stop)) return NULL;
        seen = atomic_load(&ss->gen);
    }
}

static void sub_free(kd_subscription *s) {
    if (!s) return;
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    kd_feed_close(s->feed);
    kd_query_free(s->q);
    kd__free(s->ns);
    kd__free(s->key);
    kd__free(s);
}

/* Stops and frees s, which is on no list any more. */
static void stop_and_free(kd_subscription *s) {
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, 1);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    sub_free(s);
}

static void subs_free(void *p) {
    kd_subs *ss = p;
    if (!ss) return;
    pthread_mutex_lock(&ss->mu);
    kd_subscription *list = ss->list;
    ss->list = NULL;
    pthread_mutex_unlock(&ss->mu);
    while (list) {
        kd_subscription *n = list->next;
        stop_and_free(list);
        list = n;
    }
    pthread_mutex_destroy(&ss->mu);
    kd__free(ss);
}

static kd_subs *attach(kd_db *db) {
    pthread_mutex_lock(&db->ext_mu);
    if (!db->subs) {
        kd_subs *ss = kd__calloc(1, sizeof *ss);
        if (ss) {
            pthread_mutex_init(&ss->mu, NULL);
            db->subs = ss;
            db->subs_free = subs_free;
            atomic_store(&db->hooks[KD_HOOK_SUBS], on_commit);
        }
    }
    kd_subs *ss = db->subs;
    pthread_mutex_unlock(&db->ext_mu);
    return ss;
}

int kd_subscribe(kd_db *db, const kd_sub_options *opt, kd_sub_fn fn, void *ctx, kd_subscription **out) {
    kd__err_clear();
    int rc = KD_OK;
    kd_subscription *s = NULL;
    if (!db || !fn || !out) return kd__err(KD_INVALID, "missing database, callback or result pointer");
    *out = NULL;
    kd_sub_options o = {NULL, NULL, 0, NULL, KD_SUB_NOW};
    if (opt) o = *opt;
    if (o.ns && (rc = kd_valid_namespace(o.ns, 1)) != KD_OK) return rc;
    if (o.key && !o.ns) return kd__err(KD_INVALID, "a subscription to a key needs its namespace");
    if (o.key && (rc = kd_valid_key(o.key)) != KD_OK) return rc;
    if (o.types & ~(KD_SUB_INSERT | KD_SUB_UPDATE | KD_SUB_DELETE))
        return kd__err(KD_INVALID, "unknown change types 0x%x", (unsigned)o.types);
    kd_subs *ss = attach(db);
    if (!ss || !(s = kd__calloc(1, sizeof *s))) return kd__err(KD_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->db = db;
    s->fn = fn;
    s->ctx = ctx;
    s->types = o.types;
    if ((o.ns && !(s->ns = kd__strdup(o.ns))) || (o.key && !(s->key = kd__strdup(o.key)))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto fail;
    }
    if (o.filter && (rc = kd__query_copy(o.filter, &s->q)) != KD_OK) goto fail;
    uint64_t since = o.since == KD_SUB_NOW ? kd__db_visible(db) : o.since;
    atomic_store(&s->done_seq, since);
    if ((rc = kd_feed_open(db, since, &s->feed)) != KD_OK) goto fail;
    /* *out is set before the thread starts: the callback may run before this returns,
    ** and may look at the handle. */
    *out = s;
    pthread_mutex_lock(&ss->mu);
    if (pthread_create(&s->th, NULL, run, s) != 0) {
        pthread_mutex_unlock(&ss->mu);
        *out = NULL;
        rc = kd__err(KD_ERROR, "could not start the subscription's thread");
        goto fail;
    }
    s->next = ss->list;
    ss->list = s;
    pthread_mutex_unlock(&ss->mu);
    return KD_OK;
fail:
    sub_free(s);
    return rc;
}

int kd_unsubscribe(kd_subscription *s) {
    kd__err_clear();
    if (!s) return KD_OK;
    if (tl_self == s)
        return kd__err(KD_INVALID, "a subscription cannot be ended from inside its own callback");
    kd_subs *ss = s->db->subs;
    pthread_mutex_lock(&ss->mu);
    kd_subscription **pp = &ss->list;
    while (*pp && *pp != s) pp = &(*pp)->next;
    if (*pp) *pp = s->next;
    pthread_mutex_unlock(&ss->mu);
    stop_and_free(s);
    return KD_OK;
}

uint64_t kd_subscription_seq(const kd_subscription *s) {
    return s ? atomic_load(&((kd_subscription *)s)->done_seq) : 0;
}
