/*
** rowset.h — the rows of a materialized view: the matching documents of its namespace,
** one per key, kept in the view's order (its sort fields, then key) and findable by key.
**
** Each row carries its sort values, read from the document once, so keeping the order
** never re-reads JSON. The order lives in a list of chunks of at most KD_VCHUNK row
** pointers (a one-level B-tree): an insert or a removal moves at most one chunk's
** pointers, whatever the size of the view, and reading a page walks the chunks.
**
** May call: query (kd_sortkey, jv), db (kd__doc), base. Not thread-safe: views.c holds
** its lock around every call.
*/
#ifndef KD_VIEWS_ROWSET_H
#define KD_VIEWS_ROWSET_H

#include "query/query.h"

#define KD_VCHUNK 256

typedef struct kd_vrow {
    kd__doc d;
    kd_qv *sv;      /* nsort sort values (pointing into d.val) */
    kd_qnum *num;   /* their numbers, for KD_QV_NUM values */
} kd_vrow;

typedef struct kd_vchunk {
    uint32_t n;
    kd_vrow *r[KD_VCHUNK];
} kd_vchunk;

typedef struct kd_rowset {
    const kd_sortkey *sort;
    size_t nsort;
    kd_vchunk **ch;
    size_t nch, capch;
    size_t n;            /* rows */
    kd_vrow **map;       /* rows by key, open addressing (NULL = empty) */
    size_t mapsize;
} kd_rowset;

/* An empty set ordered by sort[0..nsort) (the array must outlive the set). */
void kd__rowset_init(kd_rowset *s, const kd_sortkey *sort, size_t nsort);
/* Frees every row; the set is empty again. */
void kd__rowset_clear(kd_rowset *s);
/* Replaces the contents with docs[0..n) (distinct keys). KD_OK or KD_NOMEM (then empty). */
int kd__rowset_load(kd_rowset *s, const kd__doc *docs, size_t n);
/* Adds d, replacing the row of the same key if there is one. KD_OK or KD_NOMEM (then the
** set no longer holds that key). */
int kd__rowset_put(kd_rowset *s, const kd__doc *d);
/* Removes the row of key, if any. */
void kd__rowset_remove(kd_rowset *s, const char *key, size_t klen);
/* Copies the documents of rows first .. first+cnt-1 (in order) to out; returns how many
** there were. */
size_t kd__rowset_docs(const kd_rowset *s, size_t first, size_t cnt, kd__doc *out);

#endif /* KD_VIEWS_ROWSET_H */
