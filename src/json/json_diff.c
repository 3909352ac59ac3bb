/*
** json_diff.c — RFC 6902 JSON Patch: computing a patch between two trees (diff) and
** applying one (apply), with RFC 6901 JSON Pointers for paths.
**
** May call: the other json_*.c files (through json.h), base and the C library.
**
** Diff invariants: apply(diff(a, b), a) equals b; the patch names only changed locations
** (an unchanged subtree never appears); ops are written canonically, one object each, in
** an order that is valid to apply front to back: inside an array the paired elements are
** patched first (no index has moved yet), then surplus elements are removed from the
** highest index down, then new elements are added in increasing index order.
**
** Apply invariants: the patch runs on a copy of the document, so a failing operation
** (malformed, missing path, failed test, out of memory) leaves the caller's document
** untouched; the result never nests deeper than KD_JSON_MAX_DEPTH (so it can be written
** and parsed back); every helper that takes a value to insert owns it from then on, and frees it
** if it fails.
*/
#include "json/json.h"

#include <stdio.h>

/* ---- diff ------------------------------------------------------------------------ */

typedef struct differ {
    kd_buf *out;
    kd_buf path; /* JSON Pointer of the location being compared, RFC 6901-escaped */
    int nops;
} differ;

static void path_push_key(kd_buf *path, const char *k, size_t n) {
    kd__buf_putc(path, '/');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] != '~' && k[i] != '/') continue;
        kd__buf_append(path, k + run, i - run);
        kd__buf_append(path, k[i] == '~' ? "~0" : "~1", 2);
        run = i + 1;
    }
    kd__buf_append(path, k + run, n - run);
}

static void path_push_index(kd_buf *path, size_t i) { kd__buf_printf(path, "/%zu", i); }

static void path_pop(kd_buf *path, size_t len) {
    path->len = len;
    if (path->p) path->p[len] = 0;
}

static void emit(differ *d, const char *op, const kd_json *value) {
    kd_buf *o = d->out;
    if (d->nops++) kd__buf_putc(o, ',');
    kd__buf_puts(o, "{\"op\":\"");
    kd__buf_puts(o, op);
    kd__buf_puts(o, "\",\"path\":");
    kd__json_write_string(o, d->path.p ? d->path.p : "", d->path.len);
    if (value) {
        kd__buf_puts(o, ",\"value\":");
        kd__json_write_canonical(value, o);
    }
    kd__buf_putc(o, '}');
}

static void diff_value(differ *d, const kd_json *a, const kd_json *b);

static void diff_object(differ *d, const kd_json *a, const kd_json *b) {
    size_t i = 0, j = 0, na = a->u.obj.n, nb = b->u.obj.n;
    size_t mark = d->path.len;
    while (i < na || j < nb) {
        const kd_jmember *x = i < na ? &a->u.obj.m[i] : NULL;
        const kd_jmember *y = j < nb ? &b->u.obj.m[j] : NULL;
        int c = !x ? 1 : !y ? -1 : kd__json_keycmp(x->key, x->klen, y->key, y->klen);
        path_push_key(&d->path, c <= 0 ? x->key : y->key, c <= 0 ? x->klen : y->klen);
        if (c < 0) emit(d, "remove", NULL);
        else if (c > 0) emit(d, "add", y->val);
        else diff_value(d, x->val, y->val);
        path_pop(&d->path, mark);
        if (c <= 0) i++;
        if (c >= 0) j++;
    }
}

static void diff_array(differ *d, const kd_json *a, const kd_json *b) {
    size_t na = a->u.arr.n, nb = b->u.arr.n, common = KD_MIN(na, nb);
    size_t pre = 0, suf = 0;
    while (pre < common && kd__json_equal(a->u.arr.v[pre], b->u.arr.v[pre])) pre++;
    while (suf < common - pre && kd__json_equal(a->u.arr.v[na - 1 - suf], b->u.arr.v[nb - 1 - suf])) suf++;
    size_t ma = na - pre - suf, mb = nb - pre - suf, pairs = KD_MIN(ma, mb);
    size_t mark = d->path.len;
    for (size_t k = 0; k < pairs; k++) {
        path_push_index(&d->path, pre + k);
        diff_value(d, a->u.arr.v[pre + k], b->u.arr.v[pre + k]);
        path_pop(&d->path, mark);
    }
    for (size_t k = ma; k > pairs; k--) {
        path_push_index(&d->path, pre + k - 1);
        emit(d, "remove", NULL);
        path_pop(&d->path, mark);
    }
    for (size_t k = pairs; k < mb; k++) {
        path_push_index(&d->path, pre + k);
        emit(d, "add", b->u.arr.v[pre + k]);
        path_pop(&d->path, mark);
    }
}

static void diff_value(differ *d, const kd_json *a, const kd_json *b) {
    if (d->out->oom || d->path.oom) return;
    if (a->type == KD_JOBJECT && b->type == KD_JOBJECT) diff_object(d, a, b);
    else if (a->type == KD_JARRAY && b->type == KD_JARRAY) diff_array(d, a, b);
    else if (!kd__json_equal(a, b)) emit(d, "replace", b);
}

int kd__json_diff(const kd_json *a, const kd_json *b, kd_buf *patch) {
    differ d = {patch, KD_BUF_INIT, 0};
    kd__buf_putc(patch, '[');
    if (a && b) diff_value(&d, a, b);
    else if (b) emit(&d, "add", b);
    else if (a) emit(&d, "remove", NULL);
    kd__buf_putc(patch, ']');
    int rc = KD_OK;
    if (patch->oom || d.path.oom) {
        patch->oom = 1;
        rc = kd__err(KD_NOMEM, "out of memory while computing a JSON diff");
    }
    kd__buf_free(&d.path);
    return rc;
}

/* ---- apply ----------------------------------------------------------------------- */

typedef struct applier {
    size_t opno;  /* index of the operation being applied, for messages */
    kd_buf tok;   /* the current decoded pointer token */
} applier;

static int bad(applier *ap, const char *what, const kd_json *path) {
    if (path)
        return kd__err(KD_INVALID, "JSON patch operation %zu: %s: \"%.*s\"", ap->opno, what,
                       (int)KD_MIN(path->u.str.len, 200), path->u.str.s);
    return kd__err(KD_INVALID, "JSON patch operation %zu: %s", ap->opno, what);
}

/* Decodes the pointer token starting at ptr[*i] (just after a '/') into ap->tok and moves
** *i to the next '/' or the end. KD_INVALID for a '~' not followed by 0 or 1. */
static int next_token(applier *ap, const char *ptr, size_t len, size_t *i) {
    kd__buf_reset(&ap->tok);
    kd__buf_reserve(&ap->tok, 0);
    size_t k = *i;
    while (k < len && ptr[k] != '/') {
        if (ptr[k] == '~') {
            if (k + 1 >= len || (ptr[k + 1] != '0' && ptr[k + 1] != '1')) return KD_INVALID;
            kd__buf_putc(&ap->tok, ptr[k + 1] == '0' ? '~' : '/');
            k += 2;
        } else {
            kd__buf_putc(&ap->tok, ptr[k]);
            k++;
        }
    }
    *i = k;
    return ap->tok.oom ? KD_NOMEM : KD_OK;
}

/* Array index token: "0" or digits without a leading zero, below limit (or == limit when
** allow_end). "-" means the end when allow_end. Returns 1 and *idx if valid. */
static int array_index(const kd_buf *tok, size_t n, int allow_end, size_t *idx) {
    const char *s = tok->p;
    size_t len = tok->len;
    if (len == 1 && s[0] == '-' && allow_end) {
        *idx = n;
        return 1;
    }
    if (len == 0 || (len > 1 && s[0] == '0')) return 0;
    size_t v = 0;
    for (size_t k = 0; k < len; k++) {
        if (s[k] < '0' || s[k] > '9') return 0;
        if (v > (SIZE_MAX - 9) / 10) return 0;
        v = v * 10 + (size_t)(s[k] - '0');
    }
    if (v > n || (v == n && !allow_end)) return 0;
    *idx = v;
    return 1;
}

/* Binary search for key in obj: 1 and *idx = its index when present, else 0 and *idx =
** where it would be inserted. */
static int member_find(const kd_json *obj, const char *key, size_t klen, size_t *idx) {
    size_t lo = 0, hi = obj->u.obj.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = kd__json_keycmp(obj->u.obj.m[mid].key, obj->u.obj.m[mid].klen, key, klen);
        if (c == 0) {
            *idx = mid;
            return 1;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *idx = lo;
    return 0;
}

static kd_json **member_slot(kd_json *obj, const char *key, size_t klen) {
    size_t k;
    return member_find(obj, key, klen, &k) ? &obj->u.obj.m[k].val : NULL;
}

/* Walks every token of path but the last. On KD_OK, *parent is the container the last
** token refers into (NULL for the root path "") and ap->tok holds the last token. */
static int locate_parent(applier *ap, kd_json **root, const kd_json *path, kd_json **parent) {
    const char *ptr = path->u.str.s;
    size_t len = path->u.str.len, i = 0;
    *parent = NULL;
    if (len == 0) return KD_OK;
    if (ptr[0] != '/') return bad(ap, "a JSON Pointer must be empty or start with '/'", path);
    kd_json *cur = *root;
    for (;;) {
        i++; /* skip the '/' */
        int rc = next_token(ap, ptr, len, &i);
        if (rc == KD_NOMEM) return kd__err(KD_NOMEM, "out of memory");
        if (rc != KD_OK) return bad(ap, "invalid '~' escape in path", path);
        if (i >= len) break; /* ap->tok is the last token; cur is its container */
        kd_json **next = NULL;
        size_t idx;
        if (cur && cur->type == KD_JOBJECT) next = member_slot(cur, ap->tok.p, ap->tok.len);
        else if (cur && cur->type == KD_JARRAY && array_index(&ap->tok, cur->u.arr.n, 0, &idx))
            next = &cur->u.arr.v[idx];
        if (!next) return bad(ap, "path does not exist", path);
        cur = *next;
    }
    if (!cur || (cur->type != KD_JOBJECT && cur->type != KD_JARRAY))
        return bad(ap, "path does not exist", path);
    *parent = cur;
    return KD_OK;
}

/* The slot holding the value at path (the root slot for ""); NULL (and an error) if it
** does not exist. */
static kd_json **find_slot(applier *ap, kd_json **root, const kd_json *path, int *rc) {
    kd_json *parent;
    *rc = locate_parent(ap, root, path, &parent);
    if (*rc != KD_OK) return NULL;
    kd_json **slot = NULL;
    size_t idx;
    if (!parent) slot = *root ? root : NULL;
    else if (parent->type == KD_JOBJECT) slot = member_slot(parent, ap->tok.p, ap->tok.len);
    else if (array_index(&ap->tok, parent->u.arr.n, 0, &idx)) slot = &parent->u.arr.v[idx];
    if (!slot) *rc = bad(ap, "path does not exist", path);
    return slot;
}

/* Inserts or replaces member key of obj with val (owned from now on). */
static int object_set(kd_json *obj, const char *key, size_t klen, kd_json *val) {
    int rc = KD_OK;
    char *k = NULL;
    size_t lo;
    if (member_find(obj, key, klen, &lo)) {
        kd__json_free(obj->u.obj.m[lo].val);
        obj->u.obj.m[lo].val = val;
        val = NULL;
        goto out;
    }
    k = kd__strndup(key, klen);
    kd_jmember *m = k ? kd__realloc(obj->u.obj.m, (obj->u.obj.n + 1) * sizeof *m) : NULL;
    if (!m) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    obj->u.obj.m = m;
    memmove(m + lo + 1, m + lo, (obj->u.obj.n - lo) * sizeof *m);
    m[lo].key = k;
    m[lo].klen = klen;
    m[lo].val = val;
    obj->u.obj.n++;
    k = NULL;
    val = NULL;
out:
    kd__free(k);
    kd__json_free(val);
    return rc;
}

static int array_insert(kd_json *arr, size_t idx, kd_json *val) {
    kd_json **v = kd__realloc(arr->u.arr.v, (arr->u.arr.n + 1) * sizeof *v);
    if (!v) {
        kd__json_free(val);
        return kd__err(KD_NOMEM, "out of memory");
    }
    arr->u.arr.v = v;
    memmove(v + idx + 1, v + idx, (arr->u.arr.n - idx) * sizeof *v);
    v[idx] = val;
    arr->u.arr.n++;
    return KD_OK;
}

/* Levels of arrays/objects in v (0 for a scalar). */
static size_t json_depth(const kd_json *v) {
    if (v->type != KD_JARRAY && v->type != KD_JOBJECT) return 0;
    size_t n = v->type == KD_JARRAY ? v->u.arr.n : v->u.obj.n, d = 0;
    for (size_t i = 0; i < n; i++) {
        size_t c = json_depth(v->type == KD_JARRAY ? v->u.arr.v[i] : v->u.obj.m[i].val);
        if (c > d) d = c;
    }
    return d + 1;
}

/* A patch must not build a document the parser would refuse (and that recursive walks
** could not bound): val placed at path must stay within KD_JSON_MAX_DEPTH levels. */
static int too_deep(const kd_json *path, const kd_json *val) {
    size_t tokens = 0;
    for (size_t i = 0; i < path->u.str.len; i++) tokens += path->u.str.s[i] == '/';
    return tokens + json_depth(val) > KD_JSON_MAX_DEPTH;
}

/* RFC 6902 "add" of val (owned from now on) at path. */
static int op_add(applier *ap, kd_json **root, const kd_json *path, kd_json *val) {
    kd_json *parent = NULL;
    int rc = too_deep(path, val) ? bad(ap, "the result would nest deeper than the limit", path)
                                 : locate_parent(ap, root, path, &parent);
    size_t idx;
    if (rc != KD_OK) {
        kd__json_free(val);
    } else if (!parent) {
        kd__json_free(*root);
        *root = val;
    } else if (parent->type == KD_JOBJECT) {
        rc = object_set(parent, ap->tok.p, ap->tok.len, val);
    } else if (array_index(&ap->tok, parent->u.arr.n, 1, &idx)) {
        rc = array_insert(parent, idx, val);
    } else {
        kd__json_free(val);
        rc = bad(ap, "invalid array index", path);
    }
    return rc;
}

/* RFC 6902 "remove" at path; the removed value goes to *removed (or is freed if NULL). */
static int op_remove(applier *ap, kd_json **root, const kd_json *path, kd_json **removed) {
    kd_json *parent, *val = NULL;
    int rc = locate_parent(ap, root, path, &parent);
    size_t idx;
    if (rc != KD_OK) return rc;
    if (!parent) {
        if (!*root) return bad(ap, "path does not exist", path);
        val = *root;
        *root = NULL;
    } else if (parent->type == KD_JOBJECT) {
        size_t k;
        if (!member_find(parent, ap->tok.p, ap->tok.len, &k)) return bad(ap, "path does not exist", path);
        kd_jmember *m = &parent->u.obj.m[k];
        val = m->val;
        kd__free(m->key);
        memmove(m, m + 1, (parent->u.obj.n - k - 1) * sizeof *m);
        parent->u.obj.n--;
    } else {
        if (!array_index(&ap->tok, parent->u.arr.n, 0, &idx)) return bad(ap, "path does not exist", path);
        val = parent->u.arr.v[idx];
        memmove(parent->u.arr.v + idx, parent->u.arr.v + idx + 1,
                (parent->u.arr.n - idx - 1) * sizeof *parent->u.arr.v);
        parent->u.arr.n--;
    }
    if (removed) *removed = val;
    else kd__json_free(val);
    return KD_OK;
}

/* A string member of an operation object, or NULL (with an error) when absent or not a
** string. */
static const kd_json *op_string(applier *ap, const kd_json *op, const char *name, int *rc) {
    const kd_json *v = kd__json_get(op, name, strlen(name));
    if (!v || v->type != KD_JSTRING) {
        char what[64];
        snprintf(what, sizeof what, "missing or non-string \"%s\"", name);
        *rc = bad(ap, what, NULL);
        return NULL;
    }
    return v;
}

static int apply_op(applier *ap, kd_json **root, const kd_json *op) {
    int rc = KD_OK;
    if (op->type != KD_JOBJECT) return bad(ap, "an operation must be an object", NULL);
    const kd_json *name = op_string(ap, op, "op", &rc);
    const kd_json *path = name ? op_string(ap, op, "path", &rc) : NULL;
    if (!path) return rc;
    const char *o = name->u.str.s;
    const kd_json *value = kd__json_get(op, "value", 5);
    int needs_value = !strcmp(o, "add") || !strcmp(o, "replace") || !strcmp(o, "test");
    int needs_from = !strcmp(o, "move") || !strcmp(o, "copy");
    if (strlen(o) != name->u.str.len || (!needs_value && !needs_from && strcmp(o, "remove")))
        return bad(ap, "unknown \"op\"", NULL);
    if (needs_value && !value) return bad(ap, "missing \"value\"", NULL);
    const kd_json *from = needs_from ? op_string(ap, op, "from", &rc) : NULL;
    if (needs_from && !from) return rc;

    if (!strcmp(o, "add")) {
        kd_json *c = kd__json_clone(value);
        if (!c) return kd__err(KD_NOMEM, "out of memory");
        return op_add(ap, root, path, c);
    }
    if (!strcmp(o, "remove")) return op_remove(ap, root, path, NULL);
    if (!strcmp(o, "replace") || !strcmp(o, "test")) {
        kd_json **slot = find_slot(ap, root, path, &rc);
        if (!slot) return rc;
        if (o[0] == 't') return kd__json_equal(*slot, value) ? KD_OK : bad(ap, "test failed", path);
        if (too_deep(path, value)) return bad(ap, "the result would nest deeper than the limit", path);
        kd_json *c = kd__json_clone(value);
        if (!c) return kd__err(KD_NOMEM, "out of memory");
        kd__json_free(*slot);
        *slot = c;
        return KD_OK;
    }
    if (!strcmp(o, "copy")) {
        kd_json **slot = find_slot(ap, root, from, &rc);
        if (!slot) return rc;
        kd_json *c = kd__json_clone(*slot);
        if (!c) return kd__err(KD_NOMEM, "out of memory");
        return op_add(ap, root, path, c);
    }
    /* move: from must exist and must not be a proper prefix of path */
    size_t fl = from->u.str.len;
    if (fl == path->u.str.len && memcmp(from->u.str.s, path->u.str.s, fl) == 0) {
        kd_json **slot = find_slot(ap, root, from, &rc);
        return slot ? KD_OK : rc;
    }
    if (fl < path->u.str.len && memcmp(from->u.str.s, path->u.str.s, fl) == 0 && path->u.str.s[fl] == '/')
        return bad(ap, "cannot move a value into itself", path);
    kd_json *moved = NULL;
    rc = op_remove(ap, root, from, &moved);
    if (rc != KD_OK) return rc;
    return op_add(ap, root, path, moved);
}

int kd__json_patch_apply(kd_json **doc, const kd_json *patch) {
    applier ap = {0, KD_BUF_INIT};
    kd_json *work = NULL;
    int rc = KD_OK;
    if (!patch || patch->type != KD_JARRAY) {
        rc = kd__err(KD_INVALID, "a JSON patch must be an array of operations");
        goto out;
    }
    if (*doc && !(work = kd__json_clone(*doc))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < patch->u.arr.n; i++) {
        ap.opno = i;
        rc = apply_op(&ap, &work, patch->u.arr.v[i]);
        if (rc != KD_OK) goto out;
    }
    kd__json_free(*doc);
    *doc = work;
    work = NULL;
out:
    kd__json_free(work);
    kd__buf_free(&ap.tok);
    return rc;
}
