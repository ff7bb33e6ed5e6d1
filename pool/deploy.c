/* deploy: deploy-ID fingerprints (see deploy.h). */
#include "pool/deploy.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* Feeds one length-prefixed field so that ("ab","c") != ("a","bc"). */
static void feed(EVP_MD_CTX *ctx, const char *tag, const char *s)
{
    size_t n = s ? strlen(s) : (size_t)-1;
    EVP_DigestUpdate(ctx, tag, strlen(tag) + 1);
    EVP_DigestUpdate(ctx, &n, sizeof(n));
    if (s)
        EVP_DigestUpdate(ctx, s, n);
}

static void feed_int(EVP_MD_CTX *ctx, const char *tag, long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", v);
    feed(ctx, tag, buf);
}

static void feed_strv(EVP_MD_CTX *ctx, const char *tag, char **v, size_t n)
{
    feed_int(ctx, tag, v ? (long long)n : -1);
    for (size_t i = 0; v && i < n; i++)
        feed(ctx, tag, v[i]);
}

int deploy_id_compute(struct fn_spec *s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    feed(ctx, "code", s->code_sha256);
    feed_strv(ctx, "layers", s->layer_shas, s->n_layers);
    feed(ctx, "key", s->key);
    feed(ctx, "version", s->version);
    feed(ctx, "runtime", s->runtime);
    feed(ctx, "handler", s->handler);
    feed(ctx, "package", s->package_type);
    feed_int(ctx, "memory", s->memory_mb);
    feed_int(ctx, "timeout", s->timeout_s);
    feed_int(ctx, "ephemeral", s->ephemeral_mb);
    feed_int(ctx, "nenv", (long long)s->n_env);
    for (size_t i = 0; i < s->n_env; i++) {
        feed(ctx, "ek", s->env[i].key);
        feed(ctx, "ev", s->env[i].value);
    }
    feed(ctx, "image", s->image_uri);
    feed_strv(ctx, "entrypoint", s->image_entrypoint, s->n_entrypoint);
    feed_strv(ctx, "command", s->image_command, s->n_command);
    feed(ctx, "workdir", s->image_workdir);
    feed(ctx, "loggroup", s->log_group);
    feed(ctx, "logformat", s->log_format);
    feed(ctx, "applevel", s->app_log_level);
    feed(ctx, "syslevel", s->system_log_level);
    feed_int(ctx, "docker", s->force_docker);
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);

    unsigned char b64[64];
    int n = EVP_EncodeBlock(b64, md, (int)mdlen);
    /* URL-safe alphabet, no padding. */
    int j = 0;
    for (int i = 0; i < n && j < (int)sizeof(s->deploy_id) - 1; i++) {
        char c = (char)b64[i];
        if (c == '=')
            break;
        s->deploy_id[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    s->deploy_id[j] = 0;
    return 0;
}
