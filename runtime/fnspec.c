/* fnspec: reference-counted immutable function description (see fnspec.h). */
#include "runtime/fnspec.h"

#include "runtime/codestore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fn_spec *fnspec_new(void)
{
    struct fn_spec *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->reserved_concurrency = -1;
    return s;
}

struct fn_spec *fnspec_ref(struct fn_spec *spec)
{
    if (spec)
        atomic_fetch_add_explicit(&spec->refs, 1, memory_order_relaxed);
    return spec;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void fnspec_unref(struct fn_spec *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (s->dirs_pinned) {
        codestore_unpin(s->code_dir);
        for (size_t i = 0; s->layer_dirs && i < s->n_layers; i++)
            codestore_unpin(s->layer_dirs[i]);
    }
    free(s->key);
    free(s->name);
    free(s->version);
    free(s->arn);
    free(s->region);
    free(s->account);
    free(s->runtime);
    free(s->handler);
    free(s->package_type);
    free(s->code_dir);
    free(s->code_sha256);
    free_strv(s->layer_dirs, s->n_layers);
    free_strv(s->layer_shas, s->n_layers);
    for (size_t i = 0; i < s->n_env; i++) {
        free(s->env[i].key);
        free(s->env[i].value);
    }
    free(s->env);
    free(s->image_uri);
    free_strv(s->image_entrypoint, s->n_entrypoint);
    free_strv(s->image_command, s->n_command);
    free(s->image_workdir);
    free(s->log_group);
    free(s->log_format);
    free(s->app_log_level);
    free(s->system_log_level);
    free(s);
}

void fnspec_pin_dirs(struct fn_spec *s)
{
    if (s->dirs_pinned)
        return;
    s->dirs_pinned = true;
    codestore_pin(s->code_dir);
    for (size_t i = 0; s->layer_dirs && i < s->n_layers; i++)
        codestore_pin(s->layer_dirs[i]);
}

char *fnspec_strdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "lambdad: out of memory\n");
        abort();
    }
    return d;
}
