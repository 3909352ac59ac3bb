/*
** filter.h — the filter language of queries and views: field paths, the filter tree,
** its two spellings (a string for people, a JSON form for programs) and its evaluation
** over a stored document.
**
** String form (docs/query.md is the reference):
**     expr    := orexp
**     orexp   := andexp ( OR andexp )*
**     andexp  := notexp ( AND notexp )*
**     notexp  := NOT notexp | primary
**     primary := '(' expr ')' | EXISTS '(' path ')' | path op literal
**     op      := '=' | '==' | '!=' | '>' | '>=' | '<' | '<=' | CONTAINS | '~'
**     literal := any JSON value (string, number, true, false, null, array, object)
**     path    := segment ( '.' segment )*
**     segment := [A-Za-z_$][A-Za-z0-9_$-]* | [0-9]+ | '`' any text, `` for a backtick '`'
** Keywords (and, or, not, exists, contains) are case-insensitive; a field named like a
** keyword is written in backticks. Precedence: not > and > or.
**
** JSON form, one object per node:
**     {"and":[F,...]}  {"or":[F,...]}  {"not":F}  {"exists":PATH}
**     {"field":PATH,"op":"=|!=|>|>=|<|<=|contains|~","value":V}
** where PATH is a string in the path syntax above or an array of segments (strings, or
** non-negative integers for array indexes). Both forms build the same tree, and
** kd__filter_write_json / kd__filter_write_text turn a tree back into either form.
**
** Semantics (two-valued, so De Morgan's laws hold exactly):
**   - a path segment of digits indexes an array, or names an object member;
**   - a missing field makes every comparison false, except != which is true; `!=` is
**     exactly `not =`; exists(f) is true when f is present, null included;
**   - = and != compare any two JSON values (numbers by value, containers deeply);
**   - > >= < <= hold only between two numbers (exact, also across int64/double) or two
**     strings (code point order); any other pair is false;
**   - contains: a string field contains a string literal as a substring; an array field
**     contains an element equal to the literal; an object field contains the literal
**     string as a key; anything else is false;
**   - ~ matches a string field against a POSIX extended regex (case-sensitive, unanchored,
**     compiled once at parse time); a non-string field is false.
**
** May call: base, json, query/jv.
*/
#ifndef KD_QUERY_FILTER_H
#define KD_QUERY_FILTER_H

#include <regex.h>

#include "base/base.h"
#include "json/json.h"
#include "query/jv.h"

/* ---- paths ------------------------------------------------------------------------ */
typedef struct kd_pseg {
    char *s;        /* the segment's bytes (NUL-terminated, may hold any UTF-8) */
    size_t len;
    int64_t idx;    /* >= 0 when the segment is all digits (fits int64): it may index an
                       array; -1 otherwise */
} kd_pseg;

typedef struct kd_path {
    kd_pseg *seg;
    size_t n;       /* >= 1 */
} kd_path;

/* Parses a whole path in the string syntax (text[0..len), nothing else around it but
** spaces). KD_INVALID with "invalid field \"...\" at column N: ..." or KD_NOMEM. */
int kd__path_parse(const char *text, size_t len, kd_path *out);
/* A path from the JSON form: a string (parsed as above) or an array of segments. */
int kd__path_from_json(const kd_json *v, kd_path *out);
void kd__path_free(kd_path *p);
int kd__path_copy(const kd_path *src, kd_path *dst);
/* Writes the path in the string syntax, in backticks only where needed, so that
** kd__path_parse reads it back to an equal path. */
void kd__path_write(const kd_path *p, kd_buf *out);
int kd__path_equal(const kd_path *a, const kd_path *b);
/* The value at p inside doc (MISSING when any step is absent). */
kd_qv kd__path_get(const kd_qv *doc, const kd_path *p);

/* ---- filters ---------------------------------------------------------------------- */
typedef enum { KD_F_AND, KD_F_OR, KD_F_NOT, KD_F_EXISTS, KD_F_CMP } kd_fkind;
typedef enum {
    KD_OP_EQ, KD_OP_NE, KD_OP_GT, KD_OP_GE, KD_OP_LT, KD_OP_LE, KD_OP_CONTAINS, KD_OP_REGEX
} kd_fop;

typedef struct kd_filter kd_filter;
struct kd_filter {
    kd_fkind kind;
    kd_fop op;           /* KD_F_CMP */
    kd_path path;        /* KD_F_CMP, KD_F_EXISTS */
    char *lit;           /* KD_F_CMP: the literal's canonical JSON text */
    size_t litlen;
    kd_qv litv;          /* cursor over lit */
    kd_qnum litnum;      /* when litv is a number */
    char *litstr;        /* when litv is a string: its decoded bytes (NUL-terminated) */
    size_t litstrlen;
    regex_t *re;         /* KD_OP_REGEX */
    kd_filter **kids;    /* KD_F_AND/OR: >= 2 children; KD_F_NOT: 1 */
    size_t nkids;
};

/* Parses the string form (text[0..len)). On a syntax error: KD_INVALID and the message
** "filter syntax error at column N: expected X, found Y" (N 1-based, in characters of
** the text); a bad regex: "invalid regex at column N: <reason>"; or KD_NOMEM. */
int kd__filter_parse(const char *text, size_t len, kd_filter **out);
/* Builds a filter from its JSON form (an already parsed tree). KD_INVALID names the
** place, e.g. "invalid filter at and[1]: unknown op \"=>\"". */
int kd__filter_from_json(const kd_json *v, kd_filter **out);
/* Parses JSON text and calls kd__filter_from_json. */
int kd__filter_parse_json(const char *json, size_t len, kd_filter **out);
void kd__filter_free(kd_filter *f);
/* The canonical JSON form of f (paths written as strings). */
void kd__filter_write_json(const kd_filter *f, kd_buf *out);
/* The string form of f, with parentheses only where precedence needs them; it parses
** back to the same tree. */
void kd__filter_write_text(const kd_filter *f, kd_buf *out);

/* Does doc match f? 1 yes, 0 no, or -KD_NOMEM when a string could not be decoded.
** Thread-safe: any number of threads may evaluate one filter at once. */
int kd__filter_eval(const kd_filter *f, const kd_qv *doc);

#endif /* KD_QUERY_FILTER_H */
