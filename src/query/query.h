/*
** query.h — the query engine shared by kd_query_run (query.c) and views (views/):
** the parsed query and the executor that turns a set of documents into a kd_result.
**
** May call: db (db_int.h: kd__doc, kd__db_scan), query/filter, query/jv, json, base.
*/
#ifndef KD_QUERY_QUERY_H
#define KD_QUERY_QUERY_H

#include "korudelta.h"
#include "db/db_int.h"
#include "query/filter.h"

typedef struct kd_sortkey {
    kd_path path;
    int desc;
} kd_sortkey;

typedef enum { KD_AGG_COUNT, KD_AGG_SUM, KD_AGG_AVG, KD_AGG_MIN, KD_AGG_MAX, KD_AGG_DISTINCT } kd_aggfn;

typedef struct kd_agg {
    kd_aggfn fn;
    kd_path path;   /* unused for count */
    char *name;     /* how the result names it: "count", "sum(price)" */
} kd_agg;

struct kd_query {
    kd_filter *filter;            /* NULL = every document */
    kd_sortkey *sort;
    size_t nsort;
    size_t offset, limit;         /* limit KD_QUERY_ALL = no limit */
    int has_page;                 /* offset or limit was set */
    kd_path *select;
    size_t nselect;
    kd_agg *agg;
    size_t nagg;
    kd_path group;                /* valid when has_group */
    int has_group;
    int has_at;
    int64_t at;
};

/* What the executor does with a set of documents. */
typedef struct kd__qplan {
    const kd_filter *f1, *f2;     /* a document must match both (NULL = no condition) */
    const kd_sortkey *sort;
    size_t nsort;
    int presorted;                /* the documents already come in the plan's order */
    size_t offset, limit;
    const kd_path *select;
    size_t nselect;
    const kd_agg *agg;
    size_t nagg;
    const kd_path *group;         /* NULL = no grouping */
} kd__qplan;

/* The plan of q alone. */
void kd__query_plan(const kd_query *q, kd__qplan *p);

/* Runs plan p over docs[0..n) and builds *out (namespace ns). docs are not changed. */
int kd__query_exec(const kd__qplan *p, const char *ns, const kd__doc *docs, size_t n, kd_result **out);

/* The aggregation object of p over docs[0..n) (all of which count: no filtering) as
** canonical JSON appended to out. */
int kd__query_aggregate(const kd__qplan *p, const kd__doc *docs, size_t n, kd_buf *out);

/* The values of sort[0..nsort) in document d, into sv[0..nsort), and for numbers their
** value into num[k] (read once, so comparisons never parse). */
void kd__sortvals_read(const kd_sortkey *sort, size_t nsort, const kd__doc *d, kd_qv *sv, kd_qnum *num);
/* The order of query results: each sort value in turn (missing last whatever the
** direction), then the key's bytes. Values as kd__sortvals_read gave them. <0, 0, >0. */
int kd__sortvals_cmp(const kd_sortkey *sort, size_t nsort, const kd__doc *a, const kd_qv *sa,
                     const kd_qnum *na, const kd__doc *b, const kd_qv *sb, const kd_qnum *nb);

/* Deep copy (for views, which keep their query). */
int kd__query_copy(const kd_query *src, kd_query **dst);

#endif /* KD_QUERY_QUERY_H */
