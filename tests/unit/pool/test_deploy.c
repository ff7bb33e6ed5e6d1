/* Unit test: deploy IDs change with code, layers and configuration, and
 * only with them. */
#include <stdlib.h>

#include "pool/deploy.h"
#include "testing.h"

static struct fn_spec *base(void)
{
    struct fn_spec *s = fnspec_new();
    s->key = fnspec_strdup("us-east-1/000000000000/f");
    s->version = fnspec_strdup("$LATEST");
    s->runtime = fnspec_strdup("python3.12");
    s->handler = fnspec_strdup("app.handler");
    s->package_type = fnspec_strdup("Zip");
    s->code_sha256 = fnspec_strdup("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=");
    s->memory_mb = 128;
    s->timeout_s = 3;
    s->ephemeral_mb = 512;
    deploy_id_compute(s);
    return s;
}

int main(void)
{
    struct fn_spec *a = base(), *b = base();
    CHECK(strlen(a->deploy_id) == 43);
    CHECK(strchr(a->deploy_id, '+') == NULL && strchr(a->deploy_id, '/') == NULL &&
          strchr(a->deploy_id, '=') == NULL);
    CHECK_STR(a->deploy_id, b->deploy_id);

    char before[48];
    strcpy(before, b->deploy_id);
    free(b->code_sha256);
    b->code_sha256 = fnspec_strdup("x4LqyBMfV1sUZq8pSDxvW0dXjeOzjmNAJZCN4L8GTTo=");
    deploy_id_compute(b);
    CHECK(strcmp(before, b->deploy_id) != 0);

    struct fn_spec *c = base();
    c->timeout_s = 4;
    deploy_id_compute(c);
    CHECK(strcmp(a->deploy_id, c->deploy_id) != 0);

    struct fn_spec *d = base();
    d->n_env = 1;
    d->env = calloc(1, sizeof(*d->env));
    d->env[0].key = fnspec_strdup("A");
    d->env[0].value = fnspec_strdup("1");
    deploy_id_compute(d);
    CHECK(strcmp(a->deploy_id, d->deploy_id) != 0);
    /* ("A","1") vs ("A1","") must differ: fields are length-prefixed. */
    struct fn_spec *e = base();
    e->n_env = 1;
    e->env = calloc(1, sizeof(*e->env));
    e->env[0].key = fnspec_strdup("A1");
    e->env[0].value = fnspec_strdup("");
    deploy_id_compute(e);
    CHECK(strcmp(d->deploy_id, e->deploy_id) != 0);

    /* Layers: order matters. */
    struct fn_spec *l1 = base(), *l2 = base();
    const char *x = "AAAA", *y = "BBBB";
    l1->n_layers = l2->n_layers = 2;
    l1->layer_shas = calloc(2, sizeof(char *));
    l2->layer_shas = calloc(2, sizeof(char *));
    l1->layer_dirs = calloc(2, sizeof(char *));
    l2->layer_dirs = calloc(2, sizeof(char *));
    l1->layer_shas[0] = fnspec_strdup(x);
    l1->layer_shas[1] = fnspec_strdup(y);
    l2->layer_shas[0] = fnspec_strdup(y);
    l2->layer_shas[1] = fnspec_strdup(x);
    deploy_id_compute(l1);
    deploy_id_compute(l2);
    CHECK(strcmp(l1->deploy_id, l2->deploy_id) != 0);
    CHECK(strcmp(l1->deploy_id, a->deploy_id) != 0);

    fnspec_unref(a);
    fnspec_unref(b);
    fnspec_unref(c);
    fnspec_unref(d);
    fnspec_unref(e);
    fnspec_unref(l1);
    fnspec_unref(l2);
    return TEST_DONE();
}
