/* Unit tests for server/registry.c with persistence: create, resolve in
 * every name form and namespace, update (immutable records, new spec and
 * deploy ID), versions and aliases (their specs, qualifier resolution,
 * alias routing), list order/paging, delete, and a reload from the data
 * dir. */
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

/* Adds version 1 (a snapshot of $LATEST with MemorySize 256) and aliases
 * "live" -> 1 and "all" -> $LATEST routing *(double *)ud of the traffic to
 * version 1. */
static int add_version_and_aliases(json_t *doc, const struct fn_record *cur, void *ud, struct api_error *err)
{
    (void)cur;
    (void)err;
    json_t *cfg = json_deep_copy(json_object_get(doc, "configuration"));
    json_object_set_new(cfg, "Version", json_string("1"));
    json_object_set_new(cfg, "MemorySize", json_integer(256));
    json_object_set_new(doc, "versions", json_pack("[{s:s,s:o}]", "version", "1", "configuration", cfg));
    json_object_set_new(doc, "last_version", json_integer(1));
    json_object_set_new(doc, "aliases",
                        json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s,s:{s:{s:f}}}]", "Name", "live", "FunctionVersion",
                                  "1", "RevisionId", "r1", "Name", "all", "FunctionVersion", "$LATEST",
                                  "RevisionId", "r2", "RoutingConfig", "AdditionalVersionWeights", "1",
                                  *(double *)ud));
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
    /* An ARN from another region is not reachable from this one (issue 8:
     * regions are walls); from its own region it resolves. */
    CHECK(registry_resolve("arn:aws:lambda:eu-west-1:000000000000:function:a-fn", NULL, 256, "us-east-1",
                           "000000000000", &n, &err) == NULL);
    CHECK(err.type == &AWS_RESOURCE_NOT_FOUND);
    CHECK_STR(err.msg, "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')");
    rec = registry_resolve("arn:aws:lambda:eu-west-1:000000000000:function:a-fn", NULL, 256, "eu-west-1",
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

    /* Versions and aliases: own spec key, version and deploy ID; qualifier
     * resolution; alias routing at weights 1 and 0. */
    double weight = 1.0;
    CHECK(registry_update(&n, add_version_and_aliases, &weight, NULL, 0, &rec, &err) == 0);
    CHECK(rec->n_versions == 1 && rec->n_aliases == 2 && !strcmp(rec->aliases[0].name, "all"));
    const struct fn_version *ver = registry_version(rec, "1");
    CHECK(ver && ver->number == 1 && registry_version(rec, "2") == NULL && registry_version(rec, "x") == NULL);
    CHECK(!strcmp(ver->spec->key, "us-east-1/000000000000/b-fn:1") && !strcmp(ver->spec->version, "1"));
    CHECK(ver->spec->memory_mb == 256 && strcmp(ver->spec->deploy_id, rec->spec->deploy_id) != 0);
    struct fn_spec *s1 = registry_spec_for(rec, "live");
    CHECK(s1 == ver->spec);
    fnspec_unref(s1);
    for (int i = 0; i < 20; i++) { /* weight 1: always the additional version */
        s1 = registry_spec_for(rec, "all");
        CHECK(s1 == ver->spec);
        fnspec_unref(s1);
    }
    CHECK(registry_spec_for(rec, "nope") == NULL);
    s1 = registry_spec_for(rec, "$LATEST");
    CHECK(s1 == rec->spec);
    fnspec_unref(s1);
    registry_record_unref(rec);
    weight = 0.0;
    CHECK(registry_update(&n, add_version_and_aliases, &weight, NULL, 0, &rec, &err) == 0);
    for (int i = 0; i < 20; i++) { /* weight 0: always the primary ($LATEST) */
        s1 = registry_spec_for(rec, "all");
        CHECK(s1 == rec->spec);
        fnspec_unref(s1);
    }
    registry_record_unref(rec);
    rcu_read_lock();
    CHECK(registry_resolve("b-fn:1", NULL, 256, "us-east-1", "000000000000", &n, &err) != NULL);
    CHECK(registry_resolve("b-fn", "live", 256, "us-east-1", "000000000000", &n, &err) != NULL);
    CHECK(registry_resolve("b-fn", "2", 256, "us-east-1", "000000000000", &n, &err) == NULL);
    CHECK(err.type == &AWS_RESOURCE_NOT_FOUND && strstr(err.msg, "function:b-fn:2"));
    rcu_read_unlock();
    n.qualifier[0] = 0;

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
    CHECK(rec && rec->n_versions == 1 && rec->n_aliases == 2 && registry_version(rec, "1") &&
          registry_version(rec, "1")->spec->memory_mb == 256 && registry_alias(rec, "live"));
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
