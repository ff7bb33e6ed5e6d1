/* logs_filter: CloudWatch Logs filter patterns (see logs_filter.h). */
#include "server/logs_filter.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

#define MAX_TERMS 64
#define MAX_DEPTH 16
#define MAX_PATH 16

enum fmode { F_TERMS, F_REGEX, F_JSON };
enum term_kind { T_AND, T_NOT, T_OR };
enum jop { J_EQ, J_NE, J_LT, J_LE, J_GT, J_GE, J_TRUE, J_FALSE, J_NULL, J_EXISTS, J_NOT_EXISTS };

struct term {
    enum term_kind kind;
    char *text;
    size_t len;
};

struct jseg {
    char *key; /* NULL: array index */
    size_t idx;
};

struct jnode {
    int kind; /* 0 compare, 1 and, 2 or */
    struct jnode *l, *r;
    struct jseg path[MAX_PATH];
    int npath;
    enum jop op;
    bool is_num;
    double num;
    char *str;
};

struct logs_filter {
    enum fmode mode;
    struct term terms[MAX_TERMS];
    int nterms;
    bool has_or;
    bool re_ok; /* re compiled */
    regex_t re;
    struct jnode *root;
};

/* ------------------------------------------------------------- parsing */

struct parser {
    const char *p;
    const char *err;
    int depth;
};

static void skip_ws(struct parser *ps)
{
    while (*ps->p && isspace((unsigned char)*ps->p))
        ps->p++;
}

/* Reads a "quoted" string (the parser sits on the opening quote). */
static char *read_quoted(struct parser *ps, size_t *len)
{
    const char *s = ++ps->p;
    char *out = malloc(strlen(s) + 1);
    size_t n = 0;
    if (!out) {
        ps->err = "out of memory";
        return NULL;
    }
    while (*ps->p && *ps->p != '"') {
        if (*ps->p == '\\' && ps->p[1])
            ps->p++;
        out[n++] = *ps->p++;
    }
    if (*ps->p != '"') {
        free(out);
        ps->err = "Invalid filter pattern: unbalanced quotes";
        return NULL;
    }
    ps->p++;
    out[n] = 0;
    *len = n;
    return out;
}

static int parse_terms(struct logs_filter *f, struct parser *ps)
{
    for (;;) {
        skip_ws(ps);
        if (!*ps->p)
            return 0;
        if (f->nterms == MAX_TERMS) {
            ps->err = "Invalid filter pattern: too many terms";
            return -1;
        }
        struct term *t = &f->terms[f->nterms];
        t->kind = T_AND;
        if (*ps->p == '-' || *ps->p == '?') {
            t->kind = *ps->p == '-' ? T_NOT : T_OR;
            ps->p++;
        }
        if (*ps->p == '"') {
            t->text = read_quoted(ps, &t->len);
            if (!t->text)
                return -1;
        } else {
            const char *s = ps->p;
            while (*ps->p && !isspace((unsigned char)*ps->p)) {
                if (*ps->p == '"') {
                    ps->err = "Invalid filter pattern: a quote inside an unquoted term";
                    return -1;
                }
                ps->p++;
            }
            t->len = (size_t)(ps->p - s);
            if (!t->len) {
                ps->err = "Invalid filter pattern: empty term";
                return -1;
            }
            t->text = strndup(s, t->len);
            if (!t->text) {
                ps->err = "out of memory";
                return -1;
            }
        }
        if (t->kind == T_OR)
            f->has_or = true;
        f->nterms++;
    }
}

static void jnode_free(struct jnode *n)
{
    if (!n)
        return;
    jnode_free(n->l);
    jnode_free(n->r);
    for (int i = 0; i < n->npath; i++)
        free(n->path[i].key);
    free(n->str);
    free(n);
}

static bool word_char(char c)
{
    return c && !isspace((unsigned char)c) && !strchr("()&|}=!<>\"", c);
}

static bool eat_word(struct parser *ps, const char *w)
{
    size_t n = strlen(w);
    if (strncasecmp(ps->p, w, n) == 0 && !word_char(ps->p[n])) {
        ps->p += n;
        return true;
    }
    return false;
}

static int parse_selector(struct parser *ps, struct jnode *n)
{
    if (*ps->p != '$') {
        ps->err = "Invalid filter pattern: a JSON selector must start with $";
        return -1;
    }
    ps->p++;
    while (*ps->p == '.' || *ps->p == '[') {
        if (n->npath == MAX_PATH) {
            ps->err = "Invalid filter pattern: selector too deep";
            return -1;
        }
        struct jseg *sg = &n->path[n->npath];
        if (*ps->p == '[') {
            char *end;
            ps->p++;
            if (!isdigit((unsigned char)*ps->p)) {
                ps->err = "Invalid filter pattern: bad array index";
                return -1;
            }
            unsigned long v = strtoul(ps->p, &end, 10);
            if (*end != ']' || v > 1000000) {
                ps->err = "Invalid filter pattern: bad array index";
                return -1;
            }
            sg->key = NULL;
            sg->idx = v;
            ps->p = end + 1;
        } else {
            ps->p++;
            const char *s = ps->p;
            while (*ps->p && (isalnum((unsigned char)*ps->p) || *ps->p == '_' || *ps->p == '-' ||
                              *ps->p == '@' || *ps->p == ':'))
                ps->p++;
            if (ps->p == s) {
                ps->err = "Invalid filter pattern: empty selector member";
                return -1;
            }
            sg->key = strndup(s, (size_t)(ps->p - s));
            if (!sg->key) {
                ps->err = "out of memory";
                return -1;
            }
        }
        n->npath++;
    }
    if (!n->npath) {
        ps->err = "Invalid filter pattern: empty selector";
        return -1;
    }
    return 0;
}

static int parse_value(struct parser *ps, struct jnode *n)
{
    skip_ws(ps);
    size_t len;
    if (*ps->p == '"') {
        n->str = read_quoted(ps, &len);
        return n->str ? 0 : -1;
    }
    const char *s = ps->p;
    while (word_char(*ps->p))
        ps->p++;
    if (ps->p == s) {
        ps->err = "Invalid filter pattern: missing value";
        return -1;
    }
    n->str = strndup(s, (size_t)(ps->p - s));
    if (!n->str) {
        ps->err = "out of memory";
        return -1;
    }
    char *end;
    double v = strtod(n->str, &end);
    if (*end == 0 && end != n->str && isfinite(v)) {
        n->is_num = true;
        n->num = v;
    }
    return 0;
}

static struct jnode *parse_or(struct parser *ps);

static struct jnode *parse_unary(struct parser *ps)
{
    skip_ws(ps);
    if (*ps->p == '(') {
        if (++ps->depth > MAX_DEPTH) {
            ps->err = "Invalid filter pattern: too many nested parentheses";
            return NULL;
        }
        ps->p++;
        struct jnode *n = parse_or(ps);
        if (!n)
            return NULL;
        skip_ws(ps);
        if (*ps->p != ')') {
            jnode_free(n);
            ps->err = "Invalid filter pattern: unbalanced parentheses";
            return NULL;
        }
        ps->p++;
        ps->depth--;
        return n;
    }
    struct jnode *n = calloc(1, sizeof(*n));
    if (!n) {
        ps->err = "out of memory";
        return NULL;
    }
    if (parse_selector(ps, n) < 0)
        goto fail;
    skip_ws(ps);
    static const struct {
        const char *s;
        enum jop op;
    } ops[] = {{"!=", J_NE}, {"<=", J_LE}, {">=", J_GE}, {"=", J_EQ}, {"<", J_LT}, {">", J_GT}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t l = strlen(ops[i].s);
        if (strncmp(ps->p, ops[i].s, l) == 0) {
            ps->p += l;
            n->op = ops[i].op;
            if (parse_value(ps, n) < 0)
                goto fail;
            if (n->op >= J_LT && n->op <= J_GE && !n->is_num) {
                ps->err = "Invalid filter pattern: <, <=, > and >= need a number";
                goto fail;
            }
            return n;
        }
    }
    if (eat_word(ps, "IS")) {
        skip_ws(ps);
        if (eat_word(ps, "TRUE"))
            n->op = J_TRUE;
        else if (eat_word(ps, "FALSE"))
            n->op = J_FALSE;
        else if (eat_word(ps, "NULL"))
            n->op = J_NULL;
        else {
            ps->err = "Invalid filter pattern: IS must be followed by TRUE, FALSE or NULL";
            goto fail;
        }
        return n;
    }
    if (eat_word(ps, "EXISTS")) {
        n->op = J_EXISTS;
        return n;
    }
    if (eat_word(ps, "NOT")) {
        skip_ws(ps);
        if (eat_word(ps, "EXISTS")) {
            n->op = J_NOT_EXISTS;
            return n;
        }
    }
    ps->err = "Invalid filter pattern: expected a comparison after the selector";
fail:
    jnode_free(n);
    return NULL;
}

static struct jnode *parse_binary(struct parser *ps, bool is_or)
{
    struct jnode *l = is_or ? parse_binary(ps, false) : parse_unary(ps);
    if (!l)
        return NULL;
    for (;;) {
        skip_ws(ps);
        const char *tok = is_or ? "||" : "&&";
        if (strncmp(ps->p, tok, 2) != 0)
            return l;
        ps->p += 2;
        struct jnode *r = is_or ? parse_binary(ps, false) : parse_unary(ps);
        struct jnode *n = r ? calloc(1, sizeof(*n)) : NULL;
        if (!n) {
            if (r && !ps->err)
                ps->err = "out of memory";
            jnode_free(l);
            jnode_free(r);
            return NULL;
        }
        n->kind = is_or ? 2 : 1;
        n->l = l;
        n->r = r;
        l = n;
    }
}

static struct jnode *parse_or(struct parser *ps)
{
    return parse_binary(ps, true);
}

/* Refuses regular expressions that make the regex compiler's automaton
 * explode (hostile input): quantifiers on quantifiers ("a++", "(a+)+"),
 * bounded repetition over 100, more than two levels of groups, and more
 * than 256 characters. AWS's own regex filters are limited similarly. */
static const char *regex_guard(const char *re, size_t len)
{
    if (len > 256)
        return "Invalid filter pattern: a regular expression may have at most 256 characters";
    int depth = 0;
    bool quantified[3] = {false}; /* per open group: holds a quantifier */
    bool last_quantified = false; /* the preceding atom holds a quantifier */
    for (size_t i = 0; i < len; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < len) {
            i++;
            last_quantified = false;
            continue;
        }
        if (c == '[') { /* a bracket expression: skip to its end */
            size_t j = i + 1;
            if (j < len && re[j] == '^')
                j++;
            if (j < len && re[j] == ']')
                j++;
            while (j < len && re[j] != ']')
                j++;
            i = j;
            last_quantified = false;
            continue;
        }
        if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last_quantified)
                return "Invalid filter pattern: nested quantifiers in a regular expression";
            if (c == '{') {
                long v = 0;
                for (i++; i < len && re[i] != '}'; i++) {
                    if (isdigit((unsigned char)re[i])) {
                        v = v * 10 + (re[i] - '0');
                        if (v > 100)
                            return "Invalid filter pattern: repetition count over 100";
                    } else if (re[i] == ',') {
                        v = 0;
                    } else {
                        return "Invalid filter pattern: bad repetition in a regular expression";
                    }
                }
            }
            last_quantified = true;
            if (depth > 0)
                quantified[depth] = true;
            continue;
        }
        if (c == '(') {
            if (depth == 2)
                return "Invalid filter pattern: groups nested too deeply in a regular expression";
            quantified[++depth] = false;
            last_quantified = false;
        } else if (c == ')' && depth > 0) {
            /* "(a+)+": a quantifier on this group would repeat a quantifier. */
            last_quantified = quantified[depth];
            depth--;
            if (depth > 0 && last_quantified)
                quantified[depth] = true;
        } else {
            last_quantified = false;
        }
    }
    return NULL;
}

int logs_filter_compile(const char *pattern, struct logs_filter **out, const char **err)
{
    *out = NULL;
    *err = NULL;
    if (strlen(pattern) > 1024) {
        *err = "Invalid filter pattern: longer than 1024 characters";
        return -1;
    }
    struct parser ps = {.p = pattern};
    skip_ws(&ps);
    if (!*ps.p)
        return 0;
    struct logs_filter *f = calloc(1, sizeof(*f));
    if (!f) {
        *err = "out of memory";
        return -1;
    }
    size_t plen = strlen(ps.p);
    while (plen && isspace((unsigned char)ps.p[plen - 1]))
        plen--;
    if (*ps.p == '[') {
        ps.err = "Invalid filter pattern: space-delimited patterns ([...]) are not supported by lambdad";
    } else if (*ps.p == '%') {
        f->mode = F_REGEX;
        if (plen < 3 || ps.p[plen - 1] != '%') {
            ps.err = "Invalid filter pattern: a regular expression must be enclosed in %";
        } else {
            char *re = strndup(ps.p + 1, plen - 2);
            if (!re)
                ps.err = "out of memory";
            else if ((ps.err = regex_guard(re, plen - 2)) != NULL)
                ;
            else if (regcomp(&f->re, re, REG_EXTENDED | REG_NOSUB) != 0)
                ps.err = "Invalid filter pattern: invalid regular expression";
            else
                f->re_ok = true;
            free(re);
        }
    } else if (*ps.p == '{') {
        f->mode = F_JSON;
        if (ps.p[plen - 1] != '}') {
            ps.err = "Invalid filter pattern: unbalanced braces";
        } else {
            char *body = strndup(ps.p + 1, plen - 2);
            if (!body) {
                ps.err = "out of memory";
            } else {
                struct parser in = {.p = body};
                f->root = parse_or(&in);
                if (f->root) {
                    skip_ws(&in);
                    if (*in.p)
                        in.err = "Invalid filter pattern: unexpected text after the expression";
                }
                ps.err = in.err;
                free(body);
            }
        }
    } else {
        f->mode = F_TERMS;
        parse_terms(f, &ps);
    }
    if (ps.err) {
        *err = ps.err;
        logs_filter_free(f);
        return -1;
    }
    *out = f;
    return 0;
}

void logs_filter_free(struct logs_filter *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->nterms; i++)
        free(f->terms[i].text);
    if (f->re_ok)
        regfree(&f->re);
    jnode_free(f->root);
    free(f);
}

/* ------------------------------------------------------------- matching */

/* Glob with '*' only; iterative with one backtrack point. */
static bool wildcard_match(const char *pat, const char *s)
{
    const char *star = NULL, *ss = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            ss = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++ss;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return !*pat;
}

static json_t *select_path(json_t *doc, const struct jnode *n)
{
    json_t *cur = doc;
    for (int i = 0; i < n->npath && cur; i++)
        cur = n->path[i].key ? json_object_get(cur, n->path[i].key) : json_array_get(cur, n->path[i].idx);
    return cur;
}

static bool jeval(const struct jnode *n, json_t *doc)
{
    if (n->kind == 1)
        return jeval(n->l, doc) && jeval(n->r, doc);
    if (n->kind == 2)
        return jeval(n->l, doc) || jeval(n->r, doc);
    json_t *v = select_path(doc, n);
    switch (n->op) {
    case J_EXISTS:
        return v != NULL;
    case J_NOT_EXISTS:
        return v == NULL;
    case J_TRUE:
        return v && json_is_true(v);
    case J_FALSE:
        return v && json_is_false(v);
    case J_NULL:
        return v && json_is_null(v);
    default:
        break;
    }
    if (!v)
        return false;
    if (json_is_number(v) && n->is_num) {
        double x = json_number_value(v);
        switch (n->op) {
        case J_EQ: return x == n->num;
        case J_NE: return x != n->num;
        case J_LT: return x < n->num;
        case J_LE: return x <= n->num;
        case J_GT: return x > n->num;
        case J_GE: return x >= n->num;
        default: return false;
        }
    }
    if (n->op != J_EQ && n->op != J_NE)
        return false;
    bool eq;
    if (json_is_string(v))
        eq = wildcard_match(n->str, json_string_value(v));
    else if (json_is_boolean(v))
        eq = !strcmp(n->str, json_is_true(v) ? "true" : "false");
    else
        eq = false;
    return n->op == J_EQ ? eq : !eq;
}

bool logs_filter_match(const struct logs_filter *f, const char *msg, size_t len)
{
    if (!f)
        return true;
    if (f->mode == F_TERMS) {
        bool any_or = false;
        for (int i = 0; i < f->nterms; i++) {
            const struct term *t = &f->terms[i];
            bool hit = memmem(msg, len, t->text, t->len) != NULL;
            if (t->kind == T_AND && !hit)
                return false;
            if (t->kind == T_NOT && hit)
                return false;
            if (t->kind == T_OR && hit)
                any_or = true;
        }
        return !f->has_or || any_or;
    }
    if (f->mode == F_REGEX) {
        char *s = malloc(len + 1);
        if (s) {
            memcpy(s, msg, len);
            s[len] = 0;
        }
        bool hit = s && regexec(&f->re, s, 0, NULL, 0) == 0;
        free(s);
        return hit;
    }
    /* JSON: only events whose message is a JSON object. */
    size_t i = 0;
    while (i < len && isspace((unsigned char)msg[i]))
        i++;
    if (i == len || msg[i] != '{' || http_json_too_deep(msg, len, 64))
        return false;
    json_t *doc = json_loadb(msg, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!doc)
        return false;
    bool hit = jeval(f->root, doc);
    json_decref(doc);
    return hit;
}
