/*
** views.c — materialized views: named queries over one namespace whose matching documents
** the database keeps, current at every commit (auto-refresh) or as of their last refresh.
**
** Definitions are versioned records in the system namespace `_views` (key = view name):
**     {"auto_refresh":B,"created":TS,"description":S,"query":{query JSON form},
**      "refreshed":TS,"refreshed_seq":SEQ,"source":NS}
** so they have history and survive restarts. The contents are not stored: the log already
** holds every version, so a view is rebuilt from it on first use after opening — an
** auto-refresh view from the namespace as it is now, any other view from the namespace as
** of refreshed_seq, the last seq its refresh saw (HLC timestamps make that snapshot exact).
**
** Incremental maintenance: the db layer calls on_commit (its views hook) after every commit, once the
** commit is visible. It replays the versions since `applied` (in seq order, whichever
** thread gets there first) and, for each one whose namespace is the source of a built
** auto-refresh view, re-evaluates the view's filter on that key's new value only: the
** key's row is removed, and added back if the new value matches. Rows are kept in the
** view's sort order (rowset.h: ordered chunks of row pointers), so reading
** a page costs the page plus a walk over the chunks; the aggregation is cached until the
** next change.
**
** Locking: views.mu guards the registry, every view's rows and `applied`. It is never held
** while writing to the database (a commit calls back into on_commit, which takes it).
**
** May call: db (db_int.h), query, json, base.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views/rowset.h"

#define VIEWS_NS "_views"

typedef struct view {
    char *name, *source, *description;
    kd_query *q;
    int auto_refresh;
    int64_t created, refreshed;
    uint64_t refreshed_seq;   /* manual views: the snapshot they show */
    int built;
    kd_rowset rs;             /* the matching documents, in the view's order */
    char *agg;                /* cached aggregation (canonical JSON) while agg_valid */
    size_t agglen;
    int agg_valid;
} view;

typedef struct kd_views {
    pthread_mutex_t mu;
    view **v;
    size_t n, cap;            /* cap: slots allocated in v */
    int loaded;
    uint64_t applied;         /* built auto-refresh views reflect every seq <= applied */
} kd_views;

/* ---- rows --------------------------------------------------------------------------- */

static void rows_clear(view *w) {
    kd__rowset_clear(&w->rs);
    kd__free(w->agg);
    w->agg = NULL;
    w->agg_valid = 0;
    w->built = 0;
}

/* A version of the view's source namespace committed: re-evaluate that key only. */
static int row_update(view *w, const kd__doc *d) {
    w->agg_valid = 0;
    if (!d->val) {
        kd__rowset_remove(&w->rs, d->key, d->klen);
        return KD_OK;
    }
    kd_qv doc = kd__qv_doc(d->val, d->vlen);
    int ok = w->q->filter ? kd__filter_eval(w->q->filter, &doc) : 1;
    if (ok < 0) return kd__err(KD_NOMEM, "out of memory");
    if (ok) return kd__rowset_put(&w->rs, d);
    kd__rowset_remove(&w->rs, d->key, d->klen);
    return KD_OK;
}

/* Computes the view's rows from the namespace as of seq upto. */
static int view_build(kd_db *db, view *w, uint64_t upto) {
    kd__doc *docs = NULL;
    size_t n = 0, m = 0;
    rows_clear(w);
    if (upto == 0) { /* the snapshot before the first commit: empty (a scan bound of 0 means "now") */
        w->built = 1;
        return KD_OK;
    }
    int rc = kd__db_scan(db, w->source, 0, 0, upto, &docs, &n, NULL);
    if (rc != KD_OK) return rc;
    for (size_t i = 0; i < n; i++) { /* keep the matches, in place */
        kd_qv doc = kd__qv_doc(docs[i].val, docs[i].vlen);
        int ok = w->q->filter ? kd__filter_eval(w->q->filter, &doc) : 1;
        if (ok < 0) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
        if (ok) docs[m++] = docs[i];
    }
    if ((rc = kd__rowset_load(&w->rs, docs, m)) == KD_OK) w->built = 1;
out:
    kd__free(docs);
    return rc;
}

/* ---- definitions -------------------------------------------------------------------- */

static void view_free(view *w) {
    if (!w) return;
    rows_clear(w);
    kd__free(w->name);
    kd__free(w->source);
    kd__free(w->description);
    kd_query_free(w->q);
    kd__free(w);
}

static int view_record(const view *w, kd_buf *out) {
    char *qj = NULL;
    size_t qn;
    int rc = kd_query_to_json(w->q, &qj, &qn);
    if (rc != KD_OK) return rc;
    kd__buf_printf(out, "{\"auto_refresh\":%s,\"created\":%lld,\"description\":", w->auto_refresh ? "true" : "false",
                   (long long)w->created);
    kd__json_write_string(out, w->description, strlen(w->description));
    kd__buf_puts(out, ",\"query\":");
    kd__buf_append(out, qj, qn);
    kd__buf_printf(out, ",\"refreshed\":%lld,\"refreshed_seq\":%llu,\"source\":", (long long)w->refreshed,
                   (unsigned long long)w->refreshed_seq);
    kd__json_write_string(out, w->source, strlen(w->source));
    kd__buf_putc(out, '}');
    kd__free(qj);
    return out->oom ? kd__err(KD_NOMEM, "out of memory") : KD_OK;
}

static int view_from_record(const kd__doc *d, view **out) {
    kd_json *v = NULL;
    view *w = NULL;
    int rc = kd__json_parse(d->val, d->vlen, &v, NULL);
    if (rc != KD_OK) goto bad;
    const kd_json *src = kd__json_get(v, "source", 6), *q = kd__json_get(v, "query", 5),
                  *desc = kd__json_get(v, "description", 11), *ar = kd__json_get(v, "auto_refresh", 12),
                  *cr = kd__json_get(v, "created", 7), *rf = kd__json_get(v, "refreshed", 9),
                  *rs = kd__json_get(v, "refreshed_seq", 13);
    if (!src || src->type != KD_JSTRING || !q || !desc || desc->type != KD_JSTRING || !ar ||
        (ar->type != KD_JTRUE && ar->type != KD_JFALSE) || !cr || cr->type != KD_JINT || !rf ||
        rf->type != KD_JINT || !rs || rs->type != KD_JINT || rs->u.i < 0)
        goto bad;
    if (!(w = kd__calloc(1, sizeof *w))) goto nomem;
    w->name = kd__strndup(d->key, d->klen);
    w->source = kd__strdup(src->u.str.s);
    w->description = kd__strdup(desc->u.str.s);
    if (!w->name || !w->source || !w->description) goto nomem;
    w->auto_refresh = ar->type == KD_JTRUE;
    w->created = cr->u.i;
    w->refreshed = rf->u.i;
    w->refreshed_seq = (uint64_t)rs->u.i;
    kd_buf qb = KD_BUF_INIT;
    kd__json_write_canonical(q, &qb);
    rc = qb.oom ? KD_NOMEM : kd_query_from_json(NULL, qb.p, qb.len, &w->q);
    kd__buf_free(&qb);
    if (rc == KD_NOMEM) goto nomem;
    if (rc != KD_OK) goto bad;
    kd__rowset_init(&w->rs, w->q->sort, w->q->nsort);
    kd__json_free(v);
    *out = w;
    return KD_OK;
nomem:
    kd__json_free(v);
    view_free(w);
    return kd__err(KD_NOMEM, "out of memory");
bad:
    kd__json_free(v);
    view_free(w);
    return kd__err(KD_CORRUPT, "view \"%.*s\": its definition in _views is not valid", (int)KD_MIN(d->klen, 128),
                   d->key);
}

/* ---- the registry --------------------------------------------------------------------- */

static view *find(kd_views *vs, const char *name, size_t *pos) {
    for (size_t i = 0; i < vs->n; i++)
        if (strcmp(vs->v[i]->name, name) == 0) {
            if (pos) *pos = i;
            return vs->v[i];
        }
    return NULL;
}

/* Room for one more view. kd_view_create reserves it before it writes the view's record,
** so that adding the view once the record is written cannot run out of memory. */
static int reserve(kd_views *vs) { return kd__grow(&vs->v, &vs->cap, vs->n, sizeof *vs->v, 4); }

static int add(kd_views *vs, view *w) {
    int rc = reserve(vs);
    if (rc != KD_OK) return rc;
    size_t i = vs->n;
    while (i > 0 && strcmp(vs->v[i - 1]->name, w->name) > 0) { /* sorted by name */
        vs->v[i] = vs->v[i - 1];
        i--;
    }
    vs->v[i] = w;
    vs->n++;
    return KD_OK;
}

static int catch_up_cb(void *ctx, const char *ns, const kd__doc *d) {
    kd_views *vs = ctx;
    for (size_t i = 0; i < vs->n; i++) {
        view *w = vs->v[i];
        if (!w->built || !w->auto_refresh || strcmp(w->source, ns) != 0) continue;
        int rc = row_update(w, d);
        if (rc != KD_OK) {
            /* The view can no longer follow incrementally: drop its rows; the next read
            ** rebuilds it from the log. */
            kd__log(KD_LOG_WARN, "view %s: %s; it will be rebuilt", w->name, kd__errmsg_get());
            rows_clear(w);
        }
        w->refreshed = d->ts;
    }
    return KD_OK;
}

/* Applies every visible version since `applied` to the built auto-refresh views.
** Caller holds vs->mu. */
static int catch_up(kd_db *db, kd_views *vs) {
    uint64_t vis = kd__db_visible(db);
    if (vis <= vs->applied) return KD_OK;
    int any = 0;
    for (size_t i = 0; i < vs->n; i++) any |= vs->v[i]->built && vs->v[i]->auto_refresh;
    int rc = any ? kd__db_each_version(db, vs->applied + 1, vis, catch_up_cb, vs) : KD_OK;
    if (rc == KD_OK) vs->applied = vis;
    return rc;
}

static void on_commit(kd_db *db) {
    kd_views *vs = db->views;
    pthread_mutex_lock(&vs->mu);
    if (vs->loaded && catch_up(db, vs) != KD_OK)
        kd__log(KD_LOG_WARN, "views: catching up failed: %s", kd__errmsg_get());
    pthread_mutex_unlock(&vs->mu);
}

static void views_free(void *p) {
    kd_views *vs = p;
    if (!vs) return;
    for (size_t i = 0; i < vs->n; i++) view_free(vs->v[i]);
    kd__free(vs->v);
    pthread_mutex_destroy(&vs->mu);
    kd__free(vs);
}

/* Loads the definitions from `_views` (once per handle). Caller holds vs->mu. */
static int load(kd_db *db, kd_views *vs) {
    if (vs->loaded) return KD_OK;
    kd__doc *docs = NULL;
    size_t n = 0;
    uint64_t upto;
    int rc = kd__db_scan(db, VIEWS_NS, 0, 0, 0, &docs, &n, &upto);
    for (size_t i = 0; i < n && rc == KD_OK; i++) {
        view *w = NULL;
        if ((rc = view_from_record(&docs[i], &w)) == KD_OK && (rc = add(vs, w)) != KD_OK) view_free(w);
    }
    kd__free(docs);
    if (rc != KD_OK) {
        for (size_t i = 0; i < vs->n; i++) view_free(vs->v[i]);
        vs->n = 0;
        return rc;
    }
    vs->applied = upto;
    vs->loaded = 1;
    return KD_OK;
}

/* The handle's views, attached on first use, locked, loaded and caught up. Unlock with
** pthread_mutex_unlock(&vs->mu). written: the caller has just written to `_views` and must
** now bring the registry in line with it, so a catch-up that fails (out of memory) is left
** for the next call, as on_commit does, rather than failing a write that has landed. */
static int lock_views_as(kd_db *db, int written, kd_views **out) {
    pthread_mutex_lock(&db->ext_mu);
    if (!db->views) {
        kd_views *vs = kd__calloc(1, sizeof *vs);
        if (!vs) {
            pthread_mutex_unlock(&db->ext_mu);
            return kd__err(KD_NOMEM, "out of memory");
        }
        pthread_mutex_init(&vs->mu, NULL);
        db->views = vs;
        db->views_free = views_free;
        atomic_store(&db->hooks[KD_HOOK_VIEWS], on_commit);
    }
    kd_views *vs = db->views;
    pthread_mutex_unlock(&db->ext_mu);
    pthread_mutex_lock(&vs->mu);
    int rc = load(db, vs);
    if (rc == KD_OK && (rc = catch_up(db, vs)) != KD_OK && written) {
        kd__log(KD_LOG_WARN, "views: catching up failed: %s", kd__errmsg_get());
        rc = KD_OK;
    }
    if (rc != KD_OK) {
        pthread_mutex_unlock(&vs->mu);
        return rc;
    }
    *out = vs;
    return KD_OK;
}

static int lock_views(kd_db *db, kd_views **out) { return lock_views_as(db, 0, out); }
static int lock_views_written(kd_db *db, kd_views **out) { return lock_views_as(db, 1, out); }

/* The named view, built. Caller holds vs->mu. */
static int get_built(kd_db *db, kd_views *vs, const char *name, view **out) {
    view *w = find(vs, name, NULL);
    if (!w) return kd__err(KD_NOTFOUND, "view \"%.128s\" not found", name);
    if (!w->built) {
        int rc = view_build(db, w, w->auto_refresh ? vs->applied : w->refreshed_seq);
        if (rc != KD_OK) return rc;
    }
    *out = w;
    return KD_OK;
}

static int valid_view_name(const char *name) {
    if (!name) return kd__err(KD_INVALID, "missing view name");
    if (kd_valid_namespace(name, 0) != KD_OK) {
        char m[300];
        snprintf(m, sizeof m, "%s", kd__errmsg_get());
        /* The rules are a namespace's; say so in terms of views. */
        return kd__err(KD_INVALID, "invalid view name \"%.64s\": 1-128 letters, digits, '_', '.' or '-', starting "
                                   "with a letter or digit (%s)", name, m);
    }
    return KD_OK;
}

/* ---- public calls --------------------------------------------------------------------- */

int kd_view_create(kd_db *db, const char *name, const char *source, const kd_query *q,
                   const char *description, int auto_refresh) {
    kd__err_clear();
    int rc;
    view *w = NULL;
    kd_views *vs;
    kd_buf rec = KD_BUF_INIT;
    if (!db || !q) return kd__err(KD_INVALID, "missing database or query");
    if ((rc = valid_view_name(name)) != KD_OK) return rc;
    if (!source) return kd__err(KD_INVALID, "missing source namespace");
    if ((rc = kd_valid_namespace(source, 0)) != KD_OK) {
        char m[300];
        snprintf(m, sizeof m, "%s", kd__errmsg_get());
        return kd__err(KD_INVALID, "view \"%s\" cannot read from %s: %s", name, source, m);
    }
    if (q->has_at) return kd__err(KD_INVALID, "a view follows its namespace: its query cannot have a time (at)");
    if (!(w = kd__calloc(1, sizeof *w))) return kd__err(KD_NOMEM, "out of memory");
    w->name = kd__strdup(name);
    w->source = kd__strdup(source);
    w->description = kd__strdup(description ? description : "");
    if (!w->name || !w->source || !w->description) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = kd__query_copy(q, &w->q)) != KD_OK) goto out;
    kd__rowset_init(&w->rs, w->q->sort, w->q->nsort);
    w->auto_refresh = auto_refresh != 0;

    if ((rc = lock_views(db, &vs)) != KD_OK) goto out;
    if (find(vs, name, NULL)) {
        pthread_mutex_unlock(&vs->mu);
        rc = kd__err(KD_CONFLICT, "view \"%s\" already exists", name);
        goto out;
    }
    /* Build it first: the snapshot it shows is the one its record names. (Out of memory
    ** found a view record written but the view missing from the registry, or written and
    ** then deleted again: the slot is reserved before the record is written.) */
    if ((rc = reserve(vs)) == KD_OK) rc = view_build(db, w, vs->applied);
    w->refreshed_seq = vs->applied;
    pthread_mutex_unlock(&vs->mu);
    if (rc != KD_OK) goto out;
    w->refreshed = kd__db_seq_time(db, w->refreshed_seq);
    w->created = db->vfs->now_us(db->vfs);

    kd_put_cond cond = {.if_absent = 1, .if_version = NULL};
    if ((rc = view_record(w, &rec)) != KD_OK) goto out;
    rc = kd__put_system(db, VIEWS_NS, name, rec.p, rec.len, &cond, NULL);
    if (rc == KD_CONFLICT) {
        rc = kd__err(KD_CONFLICT, "view \"%s\" already exists", name);
        goto out;
    }
    if (rc != KD_OK) goto out;

    if ((rc = lock_views_written(db, &vs)) != KD_OK) goto undo;
    if (find(vs, name, NULL)) { /* created concurrently by another thread: theirs stands */
        pthread_mutex_unlock(&vs->mu);
        goto out;
    }
    /* An auto-refresh view catches up with what committed since it was built. The record
    ** is written: from here on, a failure must not leave it out of the registry, so a
    ** view that cannot catch up is added unbuilt (it rebuilds on first use). */
    if (w->auto_refresh && w->refreshed_seq < vs->applied) {
        view *tmp[1] = {w};
        kd_views one = {.v = tmp, .n = 1, .loaded = 1};
        if (kd__db_each_version(db, w->refreshed_seq + 1, vs->applied, catch_up_cb, &one) != KD_OK) rows_clear(w);
    }
    rc = add(vs, w); /* fails only when another thread took the reserved slot */
    pthread_mutex_unlock(&vs->mu);
    if (rc == KD_OK) {
        w = NULL;
        goto out;
    }
undo:
    if (kd__delete_system(db, VIEWS_NS, name, NULL) != KD_OK)
        kd__log(KD_LOG_WARN, "view %s: its record stays in _views after a failed create", name);
out:
    kd__buf_free(&rec);
    view_free(w);
    return rc;
}

static int info_fill(const view *w, kd_view_info *i) {
    memset(i, 0, sizeof *i);
    size_t n;
    i->name = kd__strdup(w->name);
    i->source = kd__strdup(w->source);
    i->description = kd__strdup(w->description);
    i->auto_refresh = w->auto_refresh;
    i->records = w->rs.n;
    i->created = w->created;
    i->refreshed = w->refreshed;
    if (!i->name || !i->source || !i->description || kd_query_to_json(w->q, &i->query, &n) != KD_OK ||
        kd_query_filter_text(w->q, &i->filter) != KD_OK)
        return kd__err(KD_NOMEM, "out of memory");
    return KD_OK;
}

void kd_view_list_free(kd_view_info *list, size_t n) {
    if (!list) return;
    for (size_t i = 0; i < n; i++) {
        kd__free(list[i].name);
        kd__free(list[i].source);
        kd__free(list[i].description);
        kd__free(list[i].query);
        kd__free(list[i].filter);
    }
    kd__free(list);
}

int kd_view_list(kd_db *db, kd_view_info **out, size_t *n) {
    kd__err_clear();
    if (!db || !out || !n) return kd__err(KD_INVALID, "missing argument");
    *out = NULL;
    *n = 0;
    kd_views *vs;
    int rc = lock_views(db, &vs);
    if (rc != KD_OK) return rc;
    kd_view_info *list = vs->n ? kd__calloc(vs->n, sizeof *list) : NULL;
    size_t cnt = 0;
    if (vs->n && !list) rc = kd__err(KD_NOMEM, "out of memory");
    for (size_t i = 0; i < vs->n && rc == KD_OK; i++) {
        view *w;
        if ((rc = get_built(db, vs, vs->v[i]->name, &w)) != KD_OK) break;
        rc = info_fill(w, &list[cnt++]);
    }
    pthread_mutex_unlock(&vs->mu);
    if (rc != KD_OK) {
        kd_view_list_free(list, cnt);
        return rc;
    }
    *out = list;
    *n = cnt;
    return KD_OK;
}

int kd_view_get(kd_db *db, const char *name, kd_view_info **info) {
    kd__err_clear();
    if (!db || !info) return kd__err(KD_INVALID, "missing argument");
    *info = NULL;
    int rc = valid_view_name(name);
    if (rc != KD_OK) return rc;
    kd_views *vs;
    if ((rc = lock_views(db, &vs)) != KD_OK) return rc;
    view *w;
    kd_view_info *i = NULL;
    if ((rc = get_built(db, vs, name, &w)) == KD_OK) {
        if (!(i = kd__calloc(1, sizeof *i))) rc = kd__err(KD_NOMEM, "out of memory");
        else rc = info_fill(w, i);
    }
    pthread_mutex_unlock(&vs->mu);
    if (rc != KD_OK) {
        kd_view_list_free(i, i ? 1 : 0);
        return rc;
    }
    *info = i;
    return KD_OK;
}

static int is_plain(const kd_query *x) {
    return !x || (!x->filter && !x->nsort && !x->has_page && !x->nselect && !x->nagg && !x->has_group);
}

/* The page of a view in its own order, and its cached aggregation. Caller holds vs->mu. */
static int query_fast(view *w, kd_result **out) {
    kd_result *r = kd__calloc(1, sizeof *r);
    int rc = KD_OK;
    if (!r || !(r->ns = kd__strdup(w->source))) goto nomem;
    r->total = w->rs.n;
    kd__qplan p;
    kd__query_plan(w->q, &p);
    p.presorted = 1;
    if ((p.nagg || p.group) && !w->agg_valid) {
        size_t n = w->rs.n;
        kd__doc *docs = n ? kd__malloc(n * sizeof *docs) : NULL;
        if (n && !docs) goto nomem;
        kd__rowset_docs(&w->rs, 0, n, docs);
        kd_buf b = KD_BUF_INIT;
        rc = kd__query_aggregate(&p, docs, n, &b);
        kd__free(docs);
        kd__free(w->agg);
        w->agg = NULL;
        if (rc == KD_OK && !(w->agg = kd__buf_take(&b, &w->agglen))) rc = kd__err(KD_NOMEM, "out of memory");
        kd__buf_free(&b);
        if (rc != KD_OK) goto out;
        w->agg_valid = 1;
    }
    if (p.nagg || p.group) {
        if (!(r->aggregation = kd__strndup(w->agg, w->agglen))) goto nomem;
        r->aggregation_len = w->agglen;
    }
    /* The page: run the executor over just the rows it needs, already in order. */
    size_t first = p.offset < w->rs.n ? p.offset : w->rs.n;
    size_t cnt = w->rs.n - first;
    if (p.limit != KD_QUERY_ALL && p.limit < cnt) cnt = p.limit;
    if (cnt) {
        kd__doc *docs = kd__malloc(cnt * sizeof *docs);
        if (!docs) goto nomem;
        kd__rowset_docs(&w->rs, first, cnt, docs);
        kd__qplan pp = p;
        pp.f1 = pp.f2 = NULL;
        pp.nagg = 0;
        pp.agg = NULL;
        pp.group = NULL;
        pp.offset = 0;
        pp.limit = KD_QUERY_ALL;
        kd_result *page = NULL;
        rc = kd__query_exec(&pp, w->source, docs, cnt, &page);
        kd__free(docs);
        if (rc != KD_OK) goto out;
        r->records = page->records;
        r->n = page->n;
        page->records = NULL;
        page->n = 0;
        kd_result_free(page);
    }
    goto out;
nomem:
    rc = kd__err(KD_NOMEM, "out of memory");
out:
    if (rc != KD_OK) kd_result_free(r);
    else *out = r;
    return rc;
}

int kd_view_query(kd_db *db, const char *name, const kd_query *extra, kd_result **out) {
    kd__err_clear();
    if (!db || !out) return kd__err(KD_INVALID, "missing argument");
    *out = NULL;
    int rc = valid_view_name(name);
    if (rc != KD_OK) return rc;
    if (extra && extra->has_at)
        return kd__err(KD_INVALID, "a view query cannot take a time: query the source namespace with --at instead");
    kd_views *vs;
    if ((rc = lock_views(db, &vs)) != KD_OK) return rc;
    view *w;
    if ((rc = get_built(db, vs, name, &w)) != KD_OK) {
        pthread_mutex_unlock(&vs->mu);
        return rc;
    }
    if (is_plain(extra)) {
        rc = query_fast(w, out);
        pthread_mutex_unlock(&vs->mu);
        return rc;
    }
    /* Copy the rows and the parts of the plan, then run without holding the views lock
    ** (committers wait on it). The rows' pointers stay valid until kd_close. */
    size_t n = w->rs.n;
    kd__doc *docs = n ? kd__malloc(n * sizeof *docs) : NULL;
    kd_query *vq = NULL;
    char *src = kd__strdup(w->source);
    if ((n && !docs) || !src) rc = kd__err(KD_NOMEM, "out of memory");
    else rc = kd__query_copy(w->q, &vq);
    if (rc == KD_OK) kd__rowset_docs(&w->rs, 0, n, docs);
    pthread_mutex_unlock(&vs->mu);
    if (rc == KD_OK) {
        kd__qplan p;
        kd__query_plan(vq, &p);
        p.f1 = NULL; /* every row matches the view's filter */
        p.f2 = extra->filter;
        p.presorted = 1;
        if (extra->nsort) {
            p.sort = extra->sort;
            p.nsort = extra->nsort;
            p.presorted = 0;
        }
        if (extra->has_page) {
            p.offset = extra->offset;
            p.limit = extra->limit;
        }
        if (extra->nselect) {
            p.select = extra->select;
            p.nselect = extra->nselect;
        }
        if (extra->nagg || extra->has_group) {
            p.agg = extra->agg;
            p.nagg = extra->nagg;
            p.group = extra->has_group ? &extra->group : NULL;
        }
        rc = kd__query_exec(&p, src, docs, n, out);
    }
    kd_query_free(vq);
    kd__free(docs);
    kd__free(src);
    return rc;
}

int kd_view_refresh(kd_db *db, const char *name) {
    kd__err_clear();
    if (!db) return kd__err(KD_INVALID, "missing database");
    int rc = valid_view_name(name);
    if (rc != KD_OK) return rc;
    kd_views *vs;
    kd_buf rec = KD_BUF_INIT;
    if ((rc = lock_views(db, &vs)) != KD_OK) return rc;
    view *w = find(vs, name, NULL);
    if (!w) {
        pthread_mutex_unlock(&vs->mu);
        return kd__err(KD_NOTFOUND, "view \"%.128s\" not found", name);
    }
    uint64_t upto = vs->applied, old_seq = w->refreshed_seq;
    int64_t old_time = w->refreshed;
    if ((rc = view_build(db, w, upto)) == KD_OK) {
        w->refreshed_seq = upto;
        w->refreshed = kd__db_seq_time(db, upto);
        if (!w->auto_refresh && (rc = view_record(w, &rec)) != KD_OK) {
            /* Not recorded: the handle keeps showing the old snapshot (out of memory here
            ** used to leave the handle at the new one and the record at the old). */
            w->refreshed_seq = old_seq;
            w->refreshed = old_time;
            rows_clear(w);
        }
    }
    pthread_mutex_unlock(&vs->mu);
    /* A manual view's new snapshot is part of its definition: record it, so the view
    ** shows the same after a restart. (Written after the lock: a commit takes it.) */
    if (rc == KD_OK && rec.len) {
        /* Only over the definition that is there now: a view deleted (or recreated) by
        ** another thread meanwhile must not come back from this refresh. */
        kd_entry cur;
        char hx[65];
        rc = kd_get(db, VIEWS_NS, name, &cur);
        if (rc == KD_OK) {
            kd_hex(cur.version_id, hx);
            kd_put_cond cond = {.if_absent = 0, .if_version = hx};
            rc = kd__put_system(db, VIEWS_NS, name, rec.p, rec.len, &cond, NULL);
            if (rc == KD_CONFLICT) rc = kd__err(KD_CONFLICT, "view \"%.128s\" changed while it was refreshed", name);
        } else if (rc == KD_NOTFOUND) {
            rc = kd__err(KD_NOTFOUND, "view \"%.128s\" not found (deleted while it was refreshed)", name);
        }
        kd_entry_clear(&cur);
        if (rc != KD_OK) { /* the stored snapshot did not move: neither does the handle's */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", kd__errmsg_get());
            if (lock_views_written(db, &vs) == KD_OK) { /* a catch-up must not stop the undo */
                view *v = find(vs, name, NULL);
                if (v && v->refreshed_seq == upto) {
                    v->refreshed_seq = old_seq;
                    v->refreshed = old_time;
                    rows_clear(v); /* rebuilt from old_seq on next use */
                }
                pthread_mutex_unlock(&vs->mu);
            }
            kd__err(rc, "%s", msg);
        }
    }
    kd__buf_free(&rec);
    return rc;
}

int kd_view_delete(kd_db *db, const char *name) {
    kd__err_clear();
    if (!db) return kd__err(KD_INVALID, "missing database");
    int rc = valid_view_name(name);
    if (rc != KD_OK) return rc;
    kd_views *vs;
    if ((rc = lock_views(db, &vs)) != KD_OK) return rc;
    int known = find(vs, name, NULL) != NULL;
    pthread_mutex_unlock(&vs->mu);
    if (!known) return kd__err(KD_NOTFOUND, "view \"%.128s\" not found", name);
    rc = kd__delete_system(db, VIEWS_NS, name, NULL);
    if (rc == KD_NOTFOUND) rc = kd__err(KD_NOTFOUND, "view \"%.128s\" not found", name);
    if (rc != KD_OK) return rc;
    /* The tombstone is written: the view is deleted whatever follows. (Out of memory
    ** here used to fail the call with the view gone from `_views` but still served.) */
    if (lock_views_written(db, &vs) != KD_OK) return KD_OK; /* not loaded: nothing to drop */
    size_t pos;
    view *w = find(vs, name, &pos);
    if (w) {
        memmove(&vs->v[pos], &vs->v[pos + 1], (vs->n - pos - 1) * sizeof *vs->v);
        vs->n--;
        view_free(w);
    }
    pthread_mutex_unlock(&vs->mu);
    return KD_OK;
}
