/* Unit tests for server/layers.c: ARN parsing, publish and version
 * numbering, namespaces, filters and pagination, delete (idempotent, the
 * number is never reused, also after a reload), persistence and reload, and
 * the code-blob rule shared with the registry through coderefs: a blob
 * stays while a layer version or a function (code or attached layer) holds
 * a reference on it, and the loads rebuild those references. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <urcu.h>
#include <zip.h>

#include "runtime/codestore.h"
#include "server/coderefs.h"
#include "server/layers.h"
#include "server/persist.h"
#include "server/registry.h"
#include "one_file_zip.h"
#include "testing.h"

#define R "us-east-1"
#define A "000000000000"

static long long publish(struct codestore *cs, const char *region, const char *name, const char *content,
                         json_t *runtimes, char hex_out[65])
{
    size_t len;
    void *zip = make_zip("python/mod.py", content, &len);
    struct code_info info;
    const char *cerr;
    struct api_error err;
    struct layer_version *v = NULL;
    long long version = -1;
    if (codestore_put(cs, zip, len, &info, &cerr) == 0) {
        struct layer_publish in = {.region = region, .account = A, .name = name, .code_hex = info.sha256_hex,
                                   .code_sha256 = info.sha256_b64, .code_size = (long long)info.size,
                                   .description = "d", .runtimes = runtimes, .zip = zip, .zip_len = len};
        if (layers_publish(&in, &v, &err) == 0) {
            version = v->version;
            if (hex_out)
                snprintf(hex_out, 65, "%s", v->code_hex);
        }
        layers_unref(v);
    }
    free(zip);
    return version;
}

static bool blob_exists(struct codestore *cs, const char *hex)
{
    char *p = codestore_zip_path(cs, hex);
    bool ok = p != NULL;
    free(p);
    return ok;
}

static json_t *fn_doc(const char *name, const struct layer_version *v)
{
    char arn[256];
    snprintf(arn, sizeof(arn), "arn:aws:lambda:" R ":" A ":function:%s", name);
    return json_pack("{s:i,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:[{s:s,s:I}]},"
                     "s:[{s:s,s:s,s:s,s:I}]}",
                     "lambdad_format", 1, "region", R, "account", A, "name", name, "configuration",
                     "FunctionName", name, "FunctionArn", arn, "Runtime", "python3.12", "Handler", "a.h",
                     "MemorySize", 128, "Timeout", 3, "CodeSha256", "abc=", "RevisionId", "r",
                     "Layers", "Arn", v->arn, "CodeSize", (json_int_t)v->code_size,
                     "layers", "arn", v->arn, "code_hex", v->code_hex, "code_sha256", v->code_sha256,
                     "code_size", (json_int_t)v->code_size);
}

int main(void)
{
    char dir[] = "/tmp/lambdad-test-layers-XXXXXX", cmd[600], hex1[65], hex2[65], hexeu[65];
    char region[32], account[13], name[LAYERS_NAME_MAX + 1];
    long long version;
    struct persist *p = NULL, *lp = NULL;
    struct codestore *cs = NULL;
    struct api_error err;
    rcu_register_thread();
    CHECK(mkdtemp(dir) != NULL);

    /* ARNs and names. */
    CHECK(layers_parse_arn("arn:aws:lambda:us-east-1:123456789012:layer:my-lib_2:7", region, account, name,
                           &version) == 0);
    CHECK_STR(region, "us-east-1");
    CHECK_STR(account, "123456789012");
    CHECK_STR(name, "my-lib_2");
    CHECK(version == 7);
    CHECK(layers_parse_arn("arn:aws:lambda:us-east-1:123456789012:layer:lib", region, account, name,
                           &version) == 0 && version == 0);
    CHECK(layers_parse_arn("arn:aws:lambda:us-east-1:12345678901:layer:lib:1", region, account, name, &version));
    CHECK(layers_parse_arn("arn:aws:lambda:us-east-1:123456789012:function:lib:1", region, account, name,
                           &version));
    CHECK(layers_parse_arn("arn:aws:lambda:us-east-1:123456789012:layer:li.b:1", region, account, name,
                           &version));
    CHECK(layers_parse_arn("arn:aws:lambda:us-east-1:123456789012:layer:lib:0", region, account, name,
                           &version));
    CHECK(layers_parse_arn("arn:aws:lambda:us-east-1:123456789012:layer:lib:1x", region, account, name,
                           &version));
    CHECK(layers_name_ok("a-B_9") && !layers_name_ok("") && !layers_name_ok("a.b") &&
          !layers_name_ok("0123456789012345678901234567890123456789012345678901234567890123456789"));

    /* Publish: versions per layer start at 1, namespaces are separate. */
    CHECK(persist_open(&p, dir) == 0);
    CHECK(persist_open_sub(&lp, p, "layers") == 0);
    snprintf(cmd, sizeof(cmd), "%s/store", dir);
    CHECK(codestore_open(&cs, cmd) == 0);
    coderefs_init(cs);
    CHECK(registry_init(cs, p) == 0);
    layers_init(cs, lp);
    json_t *py = json_pack("[s,s]", "python3.12", "python3.11"), *node = json_pack("[s]", "nodejs20.x");
    CHECK(publish(cs, R, "lib", "A = 1\n", py, hex1) == 1);
    CHECK(publish(cs, R, "lib", "A = 2\n", node, hex2) == 2);
    CHECK(publish(cs, R, "other", "A = 1\n", NULL, NULL) == 1); /* same zip as lib:1 */
    CHECK(publish(cs, "eu-west-1", "lib", "A = 3\n", NULL, hexeu) == 1);
    json_decref(py);
    json_decref(node);
    struct layer_version *v = layers_get(R, A, "lib", 2);
    CHECK(v && !strcmp(v->arn, "arn:aws:lambda:us-east-1:000000000000:layer:lib:2"));
    CHECK(v && !strcmp(v->layer_arn, "arn:aws:lambda:us-east-1:000000000000:layer:lib"));
    CHECK(v && strlen(v->created_date) == 28 && !strcmp(v->created_date + 23, "+0000"));
    CHECK(v && !strcmp(v->description, "d") && v->code_size > 0 && strlen(v->code_sha256) == 44);
    layers_unref(v);
    v = layers_find_arn("arn:aws:lambda:eu-west-1:000000000000:layer:lib:1");
    CHECK(v && !strcmp(v->code_hex, hexeu));
    layers_unref(v);
    CHECK(layers_find_arn("arn:aws:lambda:eu-west-1:000000000000:layer:lib:2") == NULL);

    /* Lists: newest first, filters, pages. */
    struct layer_version **vs;
    size_t n;
    bool more;
    CHECK(layers_list_versions(R, A, "lib", NULL, 0, 1, &vs, &n, &more) == 0);
    CHECK(n == 1 && more && vs[0]->version == 2);
    long long next = n ? vs[0]->version : 0;
    for (size_t i = 0; i < n; i++)
        layers_unref(vs[i]);
    free(vs);
    CHECK(layers_list_versions(R, A, "lib", NULL, next, 1, &vs, &n, &more) == 0);
    CHECK(n == 1 && !more && vs[0]->version == 1);
    for (size_t i = 0; i < n; i++)
        layers_unref(vs[i]);
    free(vs);
    struct layers_filter f = {.runtime = "python3.12"};
    CHECK(layers_list_latest(R, A, &f, NULL, 50, &vs, &n, &more) == 0);
    CHECK(n == 1 && !more && !strcmp(vs[0]->name, "lib") && vs[0]->version == 1); /* latest *matching* */
    for (size_t i = 0; i < n; i++)
        layers_unref(vs[i]);
    free(vs);
    CHECK(layers_list_latest(R, A, NULL, NULL, 1, &vs, &n, &more) == 0);
    CHECK(n == 1 && more && !strcmp(vs[0]->name, "lib") && vs[0]->version == 2);
    for (size_t i = 0; i < n; i++)
        layers_unref(vs[i]);
    free(vs);
    CHECK(layers_list_latest(R, A, NULL, "lib", 1, &vs, &n, &more) == 0);
    CHECK(n == 1 && !more && !strcmp(vs[0]->name, "other"));
    for (size_t i = 0; i < n; i++)
        layers_unref(vs[i]);
    free(vs);
    f.runtime = NULL;
    f.architecture = "arm64";
    CHECK(layers_list_latest(R, A, &f, NULL, 50, &vs, &n, &more) == 0 && n == 0);
    free(vs);

    /* Blobs: lib:1 and other:1 share a zip; a function attaches lib:2. */
    struct layer_version *l2 = layers_get(R, A, "lib", 2);
    struct fn_record *rec = NULL;
    CHECK(l2 && registry_create(fn_doc("uses-lib2", l2), NULL, 0, &rec, &err) == 0);
    CHECK(rec && rec->spec->n_layers == 1 && !strcmp(rec->spec->layer_shas[0], l2->code_sha256));
    char *l2dir = codestore_dir_path(cs, hex2);
    CHECK(rec && l2dir && !strcmp(rec->spec->layer_dirs[0], l2dir));
    free(l2dir);
    registry_record_unref(rec);
    layers_unref(l2);
    /* hex1: lib:1 + other:1; hex2: lib:2 + the function. */
    CHECK(coderefs_count(hex1) == 2 && coderefs_count(hex2) == 2);
    CHECK(layers_delete(R, A, "lib", 1, &err) == 0);
    CHECK(blob_exists(cs, hex1)); /* other:1 still uses it */
    CHECK(layers_delete(R, A, "other", 1, &err) == 0);
    CHECK(!blob_exists(cs, hex1));
    CHECK(layers_delete(R, A, "lib", 2, &err) == 0);
    CHECK(blob_exists(cs, hex2)); /* the function keeps its copy */
    CHECK(coderefs_count(hex1) == 0 && coderefs_count(hex2) == 1);
    CHECK(layers_get(R, A, "lib", 2) == NULL);
    CHECK(layers_delete(R, A, "lib", 2, &err) == 0);    /* idempotent */
    CHECK(layers_delete(R, A, "nothing", 9, &err) == 0);
    /* Version numbers are never reused. */
    CHECK(publish(cs, R, "lib", "A = 4\n", NULL, NULL) == 3);
    CHECK(publish(cs, R, "other", "A = 5\n", NULL, NULL) == 2);
    CHECK(layers_delete(R, A, "other", 2, &err) == 0);  /* every version of "other" is gone now */

    /* Reload: the counters and the remaining versions come back. */
    layers_shutdown();
    registry_shutdown();
    coderefs_init(cs); /* counts are in memory: the loads rebuild them */
    CHECK(registry_init(cs, p) == 0);
    layers_init(cs, lp);
    CHECK(layers_load() == 2); /* lib:3, eu-west-1 lib:1 */
    CHECK(registry_load() == 1);
    CHECK(coderefs_count(hex2) == 1 && coderefs_count(hexeu) == 1); /* rebuilt by the loads */
    v = layers_get(R, A, "lib", 3);
    CHECK(v && v->runtimes == NULL && !strcmp(v->description, "d"));
    layers_unref(v);
    v = layers_get("eu-west-1", A, "lib", 1);
    CHECK(v && !strcmp(v->code_hex, hexeu));
    layers_unref(v);
    py = json_pack("[s]", "python3.12");
    CHECK(publish(cs, R, "lib", "A = 6\n", py, NULL) == 4);
    json_decref(py);
    CHECK(publish(cs, R, "other", "A = 7\n", NULL, NULL) == 3);
    /* The function still has the deleted lib:2 attached after the reload... */
    rcu_read_lock();
    rec = registry_record_ref(registry_lookup(R, A, "uses-lib2"));
    rcu_read_unlock();
    CHECK(rec && rec->spec->n_layers == 1);
    registry_record_unref(rec);
    /* ...and deleting the function releases the blob. */
    struct fn_name fnn = {R, A, "uses-lib2", ""};
    CHECK(registry_delete(&fnn, &err) == 0);
    /* The deleted record's spec pins its layer until the record is freed
     * after the RCU grace period (an environment could still use it). */
    rcu_barrier();
    CHECK(!blob_exists(cs, hex2) && coderefs_count(hex2) == 0);

    layers_shutdown();
    registry_shutdown();
    coderefs_shutdown();
    persist_close(lp);
    persist_close(p);
    codestore_close(cs);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    rcu_unregister_thread();
    return TEST_DONE();
}
