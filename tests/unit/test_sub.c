/*
** test_sub.c — in-process subscriptions: every version once, in seq order, after commit;
** filters by namespace, key, change type and query; replay from a seq; a blocked
** subscriber does not hold writers back and misses nothing.
*/
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "korudelta.h"
#include "t.h"

static char dir[256];

static void fresh(void) {
    char cmd[300];
    snprintf(dir, sizeof dir, "/tmp/kd_sub_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) abort();
}

static kd_db *open_db(kd_sync_mode sync) {
    kd_options o;
    kd_options_init(&o);
    o.sync = sync;
    kd_db *db = NULL;
    if (kd_open(dir, &o, &db) != KD_OK) abort();
    return db;
}

/* What a subscriber saw: "seq:change:ns/key=value" lines. */
typedef struct seen {
    pthread_mutex_t mu;
    char log[65536];
    size_t len;
    atomic_ullong last;
    atomic_int count;
    sem_t *gate;       /* when set, the first callback waits on it */
    atomic_int gated;
} seen;

static void on_event(void *ctx, const kd_entry *e) {
    seen *s = ctx;
    if (s->gate && !atomic_exchange(&s->gated, 1)) sem_wait(s->gate);
    pthread_mutex_lock(&s->mu);
    s->len += (size_t)snprintf(s->log + s->len, sizeof s->log - s->len, "%llu:%d:%s/%s=%s\n",
                               (unsigned long long)e->seq, e->change, e->ns, e->key, e->value ? e->value : "-");
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->last, e->seq);
    atomic_fetch_add(&s->count, 1);
}

static void seen_init(seen *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

/* Waits (up to 10 s) until the subscription has passed seq. */
static int wait_for(kd_subscription *sub, uint64_t seq) {
    for (int i = 0; i < 10000; i++) {
        if (kd_subscription_seq(sub) >= seq) return 1;
        usleep(1000);
    }
    return 0;
}

static uint64_t put(kd_db *db, const char *ns, const char *key, const char *json) {
    kd_entry e;
    if (kd_put(db, ns, key, json, strlen(json), NULL, &e) != KD_OK) return 0;
    uint64_t s = e.seq;
    kd_entry_clear(&e);
    return s;
}

TEST(every_change_once_in_order) {
    fresh();
    kd_db *db = open_db(KD_SYNC_FULL);
    put(db, "a", "old", "1"); /* before the subscription: not delivered */
    seen s;
    seen_init(&s);
    kd_subscription *sub = NULL;
    CHECK(kd_subscribe(db, NULL, on_event, &s, &sub) == KD_OK);
    put(db, "a", "x", "{\"n\":1}");
    put(db, "a", "x", "{\"n\":2}");
    CHECK(kd_delete(db, "a", "x", NULL) == KD_OK);
    put(db, "a", "x", "{\"n\":3}");
    kd_batch *b = kd_batch_new();
    kd_batch_put(b, "b", "y", "true", 4);
    kd_batch_delete(b, "a", "old");
    uint64_t last = 0;
    CHECK(kd_batch_commit(db, b, NULL, &last) == KD_OK);
    kd_batch_free(b);
    CHECK(wait_for(sub, last));
    CHECK_EQ_STR(s.log, "2:1:a/x={\"n\":1}\n3:2:a/x={\"n\":2}\n4:3:a/x=-\n5:1:a/x={\"n\":3}\n"
                        "6:1:b/y=true\n7:3:a/old=-\n");
    CHECK(kd_unsubscribe(sub) == KD_OK);
    put(db, "a", "z", "0"); /* after unsubscribing: nothing more */
    usleep(20000);
    CHECK_EQ_INT(atomic_load(&s.count), 6);
    kd_close(db);
}

TEST(filters_and_replay) {
    fresh();
    kd_db *db = open_db(KD_SYNC_OFF);
    put(db, "users", "ann", "{\"age\":40}");
    put(db, "users", "bob", "{\"age\":20}");
    put(db, "other", "ann", "{\"age\":50}");
    put(db, "users", "ann", "{\"age\":41}");
    kd_delete(db, "users", "bob", NULL);
    uint64_t last = put(db, "users", "cy", "{\"age\":70}");

    kd_query *q;
    kd_query_new(&q);
    CHECK(kd_query_set_filter(q, "age > 30") == KD_OK);
    seen s1, s2, s3, s4;
    seen_init(&s1);
    seen_init(&s2);
    seen_init(&s3);
    seen_init(&s4);
    kd_subscription *a, *bb, *c, *d;
    kd_sub_options o1 = {.ns = "users", .since = 0};                       /* replay one namespace */
    kd_sub_options o2 = {.ns = "users", .key = "ann", .since = 0};         /* one key */
    kd_sub_options o3 = {.types = KD_SUB_INSERT | KD_SUB_DELETE, .since = 0};
    kd_sub_options o4 = {.ns = "users", .filter = q, .since = 2};          /* query filter, from seq 3 */
    CHECK(kd_subscribe(db, &o1, on_event, &s1, &a) == KD_OK);
    CHECK(kd_subscribe(db, &o2, on_event, &s2, &bb) == KD_OK);
    CHECK(kd_subscribe(db, &o3, on_event, &s3, &c) == KD_OK);
    CHECK(kd_subscribe(db, &o4, on_event, &s4, &d) == KD_OK);
    kd_query_free(q); /* the subscription holds its own copy */
    CHECK(wait_for(a, last) && wait_for(bb, last) && wait_for(c, last) && wait_for(d, last));
    CHECK_EQ_STR(s1.log, "1:1:users/ann={\"age\":40}\n2:1:users/bob={\"age\":20}\n4:2:users/ann={\"age\":41}\n"
                         "5:3:users/bob=-\n6:1:users/cy={\"age\":70}\n");
    CHECK_EQ_STR(s2.log, "1:1:users/ann={\"age\":40}\n4:2:users/ann={\"age\":41}\n");
    CHECK_EQ_STR(s3.log, "1:1:users/ann={\"age\":40}\n2:1:users/bob={\"age\":20}\n3:1:other/ann={\"age\":50}\n"
                         "5:3:users/bob=-\n6:1:users/cy={\"age\":70}\n");
    CHECK_EQ_STR(s4.log, "4:2:users/ann={\"age\":41}\n5:3:users/bob=-\n6:1:users/cy={\"age\":70}\n");
    /* Bad options. */
    kd_subscription *x = NULL;
    kd_sub_options bad1 = {.key = "k"}, bad2 = {.ns = "bad ns"}, bad3 = {.types = 1 << 9};
    CHECK(kd_subscribe(db, &bad1, on_event, &s1, &x) == KD_INVALID);
    CHECK(kd_subscribe(db, &bad2, on_event, &s1, &x) == KD_INVALID);
    CHECK(kd_subscribe(db, &bad3, on_event, &s1, &x) == KD_INVALID);
    CHECK(x == NULL);
    kd_unsubscribe(a);
    kd_unsubscribe(bb);
    /* c and d are still running: kd_close ends them. */
    kd_close(db);
}

TEST(blocked_subscriber_does_not_hold_writers) {
    fresh();
    kd_db *db = open_db(KD_SYNC_NORMAL);
    sem_t gate;
    sem_init(&gate, 0, 0);
    seen s;
    seen_init(&s);
    s.gate = &gate;
    kd_subscription *sub;
    CHECK(kd_subscribe(db, NULL, on_event, &s, &sub) == KD_OK);
    /* The subscriber blocks in its first callback; all 300 writes still complete (if a
    ** writer waited for it, this test would hang and time out). */
    uint64_t last = 0;
    char key[16];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i % 17);
        last = put(db, "w", key, "[1,2,3]");
        CHECK(last != 0);
    }
    CHECK(atomic_load(&s.count) == 0);
    sem_post(&gate);
    CHECK(wait_for(sub, last));
    CHECK_EQ_INT(atomic_load(&s.count), 300);
    CHECK_EQ_INT(atomic_load(&s.last), last);
    kd_unsubscribe(sub);
    sem_destroy(&gate);
    kd_close(db);
}

static kd_db *g_db;
static void *writer(void *arg) {
    char key[32];
    for (int i = 0; i < 150; i++) {
        snprintf(key, sizeof key, "t%d-%d", (int)(intptr_t)arg, i % 10);
        if (!put(g_db, "c", key, "{\"v\":1}")) return (void *)1;
    }
    return NULL;
}

static kd_subscription *g_self;
static atomic_int g_self_rc = -1;
static void unsubscribe_self(void *ctx, const kd_entry *e) {
    (void)ctx;
    (void)e;
    atomic_store(&g_self_rc, kd_unsubscribe(g_self));
}

TEST(concurrent_writers_gap_free) {
    fresh();
    g_db = open_db(KD_SYNC_FULL);
    seen s;
    seen_init(&s);
    kd_subscription *sub;
    CHECK(kd_subscribe(g_db, NULL, on_event, &s, &sub) == KD_OK);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        CHECK(rv == NULL);
    }
    CHECK(wait_for(sub, 600));
    CHECK_EQ_INT(atomic_load(&s.count), 600);
    /* seqs 1..600, each once, in order */
    const char *p = s.log;
    int ok = 1;
    for (unsigned long long want = 1; want <= 600 && ok; want++) {
        ok = strtoull(p, NULL, 10) == want;
        p = strchr(p, '\n');
        ok = ok && p;
        if (p) p++;
    }
    CHECK(ok);
    kd_unsubscribe(sub);

    /* A callback cannot end its own subscription. */
    kd_sub_options o = {.since = 599};
    CHECK(kd_subscribe(g_db, &o, unsubscribe_self, NULL, &g_self) == KD_OK);
    CHECK(wait_for(g_self, 600));
    CHECK_EQ_INT(atomic_load(&g_self_rc), KD_INVALID);
    CHECK(kd_unsubscribe(g_self) == KD_OK);
    kd_close(g_db);
}

int main(void) {
    RUN(every_change_once_in_order);
    RUN(filters_and_replay);
    RUN(blocked_subscriber_does_not_hold_writers);
    RUN(concurrent_writers_gap_free);
    fresh();
    return t_done();
}
