/* pool: TEMPORARY stub so the server links while the executor is written. */
#include "pool/pool.h"

#include <stdlib.h>
#include <string.h>

struct invocation *invocation_new(struct fn_spec *fn)
{
    struct invocation *inv = calloc(1, sizeof(*inv));
    if (inv)
        inv->fn = fnspec_ref(fn);
    return inv;
}
void invocation_free(struct invocation *inv)
{
    if (!inv)
        return;
    fnspec_unref(inv->fn);
    free(inv);
}
int pool_start(const struct pool_config *cfg, const char **err)
{
    (void)cfg;
    (void)err;
    return 0;
}
void pool_stop(void)
{
}
void pool_submit(struct invocation *inv)
{
    inv->outcome = INV_SERVICE_ERROR;
    inv->on_done(inv);
}
void pool_evict(const char *fn_key)
{
    (void)fn_key;
}
json_t *pool_envs_json(void)
{
    return json_array();
}
void pool_stats(struct pool_stats *out)
{
    memset(out, 0, sizeof(*out));
}
bool pool_uses_docker(const struct fn_spec *spec)
{
    (void)spec;
    return false;
}
