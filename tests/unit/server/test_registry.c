/* Unit tests for server/registry.c with persistence: create, resolve in
 * every name form and namespace, update (immutable records, new spec and
 * deploy ID), list order/paging, delete, and a reload from the data dir. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>

#include "server/persist.h"
#include "server/registry.h"
#include "testing.h"

static json_t *make_doc(const char *region, const char *account, const char *name, int memory)
{
    char arn[256];
    snprintf(arn, sizeof(arn), "arn:aws:lambda:%s:%s:function:%s", region, account, name);
    return json_pack("{s:i,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:{s:{s:s}},s:{s:i}}}",
                     "lambdad_format", 1, "region", region, "account", account, "name", name,
                     "configuration", "FunctionName", name, "FunctionArn", arn, "Runtime", "python3.12",
                     "Handler", "app.handler", "MemorySize", memory, "Timeout", 3, "CodeSha256", "abc=",
                     "RevisionId", "rev-1", "Environment", "Variables", "KEY1", "v1",
                     "EphemeralStorage", "Size", 512);
}

static int set_memory(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    (void)err;
    json_object_set_new(json_object_get(doc, "configuration"), "MemorySize", json_integer(*(int *)ud));
    return 0;
}

static int refuse(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)doc;
    (void)cur;
    (void)ud;
    return api_fail(err, &AWS_PRECONDITION_FAILED, "no");
}

int main(void)
{
    char dir[] = "/tmp/lambdad-test-registry-XXXXXX", cmd[600];
    struct persist *p = NULL;
    struct api_error err;
    struct fn_name n;
    struct fn_record *rec;
    rcu_register_thread();
    CHECK(mkdtemp(dir) != NULL);
    CHECK(persist_open(&p, dir) == 0);
    CHECK(registry_init(NULL, p) == 0);

    CHECK(registry_create(make_doc("us-east-1", "000000000000", "b-fn", 128), NULL, 0, &rec, &err) == 0);
    CHECK(rec && rec->spec && strlen(rec->spec->deploy_id) == 43);
    CHECK_STR(rec->spec->key, "us-east-1/000000000000/b-fn");
    CHECK(rec->spec->n_env == 1 && !strcmp(rec->spec->env[0].key, "KEY1"));
    CHECK_STR(rec->spec->log_group, "/aws/lambda/b-fn");
    CHECK(rec->reserved_concurrency == -1);
    char old_deploy[48];
    snprintf(old_deploy, sizeof(old_deploy), "%s", rec->spec->deploy_id);
    registry_record_unref(rec);
    CHECK(registry_create(make_doc("us-east-1", "000000000000", "a-fn", 128), NULL, 0, NULL, &err) == 0);
    CHECK(registry_create(make_doc("eu-west-1", "000000000000", "a-fn", 128), NULL, 0, NULL, &err) == 0);
    CHECK(registry_create(make_doc("us-east-1", "000000000000", "a-fn", 128), NULL, 0, NULL, &err) == -1);
    CHECK(err.type == &AWS_RESOURCE_CONFLICT);
    CHECK_STR(err.msg, "Function already exist: a-fn");
    CHECK(registry_count() == 3);

    /* Resolution in every form. */
    const char *forms[] = {"b-fn", "b-fn:$LATEST", "000000000000:function:b-fn",
                           "arn:aws:lambda:us-east-1:000000000000:function:b-fn"};
    for (size_t i = 0; i < 4; i++) {
        rcu_read_lock();
        rec = registry_resolve(forms[i], NULL, 256, "us-east-1", "000000000000", &n, &err);
        CHECK(rec != NULL && !strcmp(rec->name, "b-fn"));
        rcu_read_unlock();
    }
    rcu_read_lock();
    CHECK(registry_resolve("b-fn", "1", 256, "us-east-1", "000000000000", &n, &err) == NULL);
    CHECK(err.type == &AWS_RESOURCE_NOT_FOUND);
    CHECK_STR(err.msg, "Function not found: arn:aws:lambda:us-east-1:000000000000:function:b-fn:1");
    CHECK(registry_resolve("b-fn", NULL, 256, "eu-west-1", "000000000000", &n, &err) == NULL);
    CHECK_STR(err.msg, "Function not found: arn:aws:lambda:eu-west-1:000000000000:function:b-fn");
    /* An ARN from another region resolves there. */
    rec = registry_resolve("arn:aws:lambda:eu-west-1:000000000000:function:a-fn", NULL, 256, "us-east-1",
                           "000000000000", &n, &err);
    CHECK(rec && !strcmp(rec->region, "eu-west-1"));
    struct fn_spec *spec = rec ? registry_spec_ref(rec) : NULL;
    rcu_read_unlock();
    CHECK(spec && spec->refs >= 2);
    fnspec_unref(spec);

    /* Update: a new record and a new deploy ID; the old spec stays alive while referenced. */
    rcu_read_lock();
    struct fn_record *before = registry_record_ref(registry_resolve("b-fn", NULL, 256, "us-east-1", "000000000000", &n, &err));
    rcu_read_unlock();
    int mem = 512;
    CHECK(registry_update(&n, set_memory, &mem, NULL, 0, &rec, &err) == 0);
    CHECK(rec != before && rec->spec->memory_mb == 512 && before->spec->memory_mb == 128);
    CHECK(strcmp(rec->spec->deploy_id, old_deploy) != 0);
    registry_record_unref(rec);
    registry_record_unref(before);
    CHECK(registry_update(&n, refuse, NULL, NULL, 0, NULL, &err) == -1 && err.type == &AWS_PRECONDITION_FAILED);

    /* List: sorted, paged, namespaced. */
    struct fn_record **v;
    size_t cnt;
    bool more;
    CHECK(registry_list("us-east-1", "000000000000", NULL, 1, &v, &cnt, &more) == 0);
    CHECK(cnt == 1 && more && !strcmp(v[0]->name, "a-fn"));
    registry_record_unref(v[0]);
    free(v);
    CHECK(registry_list("us-east-1", "000000000000", "a-fn", 50, &v, &cnt, &more) == 0);
    CHECK(cnt == 1 && !more && !strcmp(v[0]->name, "b-fn"));
    registry_record_unref(v[0]);
    free(v);

    /* Delete, then reload everything from disk. */
    struct fn_name del;
    struct api_error e2;
    CHECK(validate_function_ref("a-fn", NULL, 256, "eu-west-1", "000000000000", &del, &e2) == 0);
    CHECK(registry_delete(&del, &err) == 0);
    CHECK(registry_delete(&del, &err) == -1 && err.type == &AWS_RESOURCE_NOT_FOUND);
    CHECK(registry_count() == 2);
    registry_shutdown();
    persist_close(p);

    CHECK(persist_open(&p, dir) == 0);
    CHECK(registry_init(NULL, p) == 0);
    CHECK(registry_load() == 2);
    rcu_read_lock();
    rec = registry_lookup("us-east-1", "000000000000", "b-fn");
    CHECK(rec && rec->spec->memory_mb == 512);
    CHECK(registry_lookup("eu-west-1", "000000000000", "a-fn") == NULL);
    CHECK(registry_lookup("us-east-1", "000000000000", "a-fn") != NULL);
    rcu_read_unlock();
    registry_shutdown();
    persist_close(p);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    rcu_unregister_thread();
    return TEST_DONE();
}
