/*
** vector_int.h — what the two halves of vector search share: the stored embedding record
** (vector.c) and the HNSW indexes of an open database (vindex.c).
**
** May call: db (db_int.h), vector/hnsw, json, base.
*/
#ifndef KD_VECTOR_INT_H
#define KD_VECTOR_INT_H

#include "db/db_int.h"
#include "vector/hnsw.h"

#define EMB_PREFIX "_emb."
#define EMB_PREFIX_LEN 5
#define MODELS_NS "_emb"
#define DEFAULT_MODEL "default"

/* The members of a stored embedding, pointing into its canonical text. */
typedef struct emb_rec {
    kd_json_val model;  /* the JSON string, quotes included */
    kd_json_val meta;   /* JSON text ("null" when none) */
    const char *b64;
    size_t b64len;
    size_t dim;
} emb_rec;

/* Reads the members of the stored record val[0..len). KD_CORRUPT when malformed. */
int kd__emb_rec_read(const char *val, size_t len, emb_rec *r);

/* The base64 text of the vector in the stored record val[0..len): found from the end,
** where the canonical record keeps it, without reading the other members. */
int kd__emb_vector_text(const char *val, size_t len, const char **b64, size_t *b64len);

/* Decodes the base64 text s[0..len) of exactly dim float32 into v. 0 when malformed. */
int kd__emb_floats(const char *s, size_t len, float *v, size_t dim);

/* The user namespaces that ever held embeddings (newly allocated names; free each and the
** array with kd__free). */
int kd__emb_namespaces(kd_db *db, char ***out, size_t *n);

/* ---- the HNSW indexes (vindex.c) ---------------------------------------------------- */

/* One id of an index: a (namespace, key) that had an embedding of the index's model. The
** key points into the index's arena (or vidx.keys) and vid into the log's mapping, both
** stable until kd_close; the record itself is read back by seq (kd__db_doc_at) when a
** metadata filter needs it. */
typedef struct vslot {
    uint32_t ns;          /* index into vidx.ns */
    uint32_t klen;
    const char *key;
    uint64_t seq;         /* the version held, when live: the key's current embedding is of
                             this model and in the graph; 0 = not live */
    const uint8_t *vid;   /* its version id (in the log's mapping) and timestamp, for hits */
    int64_t ts;
} vslot;

typedef struct vidx {
    struct vidx *next;
    kd_buf model_json;    /* the model as a JSON string */
    int metric;           /* KD_METRIC_* */
    size_t dim;
    kd__hnsw *h;
    uint64_t applied;     /* versions up to this seq are in the index */
    uint64_t saved;       /* `applied` when it was last saved or loaded (0 = never) */
    vslot *slot;
    uint32_t nslot, cap;
    uint32_t *map;        /* (ns, key) -> id: open addressing, id + 1, 0 = empty */
    uint32_t mcap;
    char **ns;            /* user namespace names */
    uint32_t nns;
    uint32_t *ns_live;    /* live ids per namespace */
    char *keys;           /* the names of ids that were not live when the index was loaded */
    float *buf;           /* dim floats of decoding space */
} vidx;

/* The index of (model, metric) of dimension dim, caught up to seq upto, with the handle's
** vector lock held: *out stays valid, and nobody else changes it, until kd__vidx_release.
** When the handle has none yet, it is loaded from its file (when one was saved and still
** matches the log), else built from every embedding in the log. The log is read in slices
** so commits never wait for a long build. On error the lock is not held. */
int kd__vidx_acquire(kd_db *db, const char *model, size_t dim, int metric, uint64_t upto, vidx **out);
void kd__vidx_release(kd_db *db);

#endif /* KD_VECTOR_INT_H */
