/* deploy: deploy-ID fingerprints of a function version.
 *
 * DESIGN: an environment may only serve invocations whose function spec has
 * the deploy ID the environment was started with. The ID is SHA-256 over
 * the code's SHA-256, each attached layer's SHA-256 in attach order, and a
 * canonical rendering of every configuration field that reaches the
 * environment (runtime, handler, memory, timeout, ephemeral storage,
 * environment variables, image settings, log settings), written as URL-safe
 * base64 without padding (43 characters). Changing code, layers or
 * configuration therefore changes the ID and old environments drain.
 *
 * Thread rules: pure function, any thread. */
#ifndef LAMBDAD_POOL_DEPLOY_H
#define LAMBDAD_POOL_DEPLOY_H

#include "runtime/fnspec.h"

/* Computes spec's deploy ID into spec->deploy_id (call before sharing the
 * spec). Returns 0 or -ENOMEM. */
int deploy_id_compute(struct fn_spec *spec);

#endif
