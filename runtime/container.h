/* container: execution environments as Docker containers.
 *
 * DESIGN: a container is just another environment: it runs a Lambda
 * runtime client that talks the Runtime API back to the listener lambdad
 * opened for it (AWS_LAMBDA_RUNTIME_API, as reachable from the container).
 * Everything that blocks on the Engine API (image check and pull, create,
 * start, log streaming, waiting for exit, kill and removal) runs on one
 * helper thread per container, never on an executor thread. The helper
 * reports what happened through the callback, which must only post a
 * message to the executor (it runs on the helper thread).
 *
 * Per container: image from the runtime map (public.ecr.aws/lambda/<lang>:
 * <version>, overridable per runtime) or the function's ImageUri; code
 * bind-mounted read-only at /var/task (uploaded with the archive endpoint
 * when the engine is remote); layers (already merged by the caller into one
 * directory, attach order) read-only at /opt; /tmp a tmpfs of
 * EphemeralStorage MB with exec; memory limit MemorySize (swap off); labels
 * lambdad=1, lambdad.instance=<id>, lambdad.function=<name>; entrypoint: the
 * image's own (/lambda-entrypoint.sh + handler in AWS base images), or
 * lambdad's bundled bootstrap mounted read-only at CONTAINER_BOOTSTRAP_DIR
 * when the image has none; for PackageType=Image the image's ENTRYPOINT/CMD
 * unless ImageConfig overrides them. stdout/stderr are streamed into the
 * caller's log fd.
 *
 * Thread rules: container_init/container_shutdown on the main thread;
 * container_start/kill/release on the owning executor thread; callbacks on
 * helper threads. */
#ifndef LAMBDAD_RUNTIME_CONTAINER_H
#define LAMBDAD_RUNTIME_CONTAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/fnspec.h"

#define CONTAINER_BOOTSTRAP_DIR "/var/lambdad-runtime"

struct container_config {
    const char *docker_host;     /* NULL: DOCKER_HOST or /var/run/docker.sock */
    const char *network;         /* "host", "bridge" or a network name */
    const char **image_overrides; /* "runtime=image" strings, NULL-terminated */
    const char *instance_id;     /* value of the lambdad.instance label */
    const char *bootstrap_dir;   /* host dir holding python/ and node/ bootstraps */
};

/* Opens the Engine API client and pings the engine; removes containers
 * left by previous lambdad runs (label lambdad=1). Returns 0, or a negative
 * errno with a one-line message in err (char[512]) naming the engine
 * address. Main thread, once. */
int container_init(const struct container_config *cfg, char *err);

/* Whether container_init succeeded (the engine was reachable then). */
bool container_available(void);

/* Removes every container of this instance (kill + remove) and closes the
 * client. Main thread, after the executors stopped. */
void container_shutdown(void);

/* The address the per-environment Runtime API listener must bind so that
 * containers reach it ("127.0.0.1" with host networking; the bridge
 * gateway or "0.0.0.0" otherwise), and the host name/IP containers use to
 * reach lambdad (for AWS_LAMBDA_RUNTIME_API, AWS_ENDPOINT_URL and
 * rewritten localhost URLs). */
const char *container_bind_ip(void);
const char *container_host_for_container(void);

/* The image a spec runs in (override, runtime map or ImageUri). Returns a
 * malloc'd string, or NULL with *err set for a runtime without image. */
char *container_image_for(const struct fn_spec *spec, const char **err);

enum container_event {
    CONTAINER_STARTED = 1, /* running; status 0 */
    CONTAINER_FAILED,      /* never ran: msg names the reason (e.g. the image); final */
    CONTAINER_EXITED,      /* stopped; status = exit code (137 when killed); final */
};

/* Called on the helper thread. user is what container_start was given. */
typedef void (*container_event_cb)(void *user, enum container_event ev, int status, const char *msg);

struct container;

struct container_start_opts {
    const struct fn_spec *spec;
    char **envp;            /* "K=V" NULL-terminated, built for a container; copied */
    const char *opt_dir;    /* merged layers dir on the host, or NULL */
    int log_fd;             /* write end of the log pipe; the helper owns and closes it */
    const char *name;       /* container name (unique) */
    container_event_cb cb;
    void *user;
};

/* Starts the helper thread that brings the container up. Returns 0 (the
 * outcome arrives through cb, exactly one final event), or -errno if the
 * thread could not be started (no callback then; log_fd is closed). */
int container_start(struct container **out, const struct container_start_opts *o);

/* Asks the helper to kill and remove the container; the final event
 * (EXITED or FAILED) follows. Safe to call more than once. */
void container_kill(struct container *c);

/* The container id ("" until STARTED). */
const char *container_id(const struct container *c);

/* Sends signal ("SIGTERM", "KILL", "9") to every running container of the
 * function whose spec key is fn_key (this instance's environments only).
 * Returns how many containers got it (0: none running), or a negative
 * errno with err (char[DOCKER_ERR_MAX]) set. Blocks on the engine: any
 * thread, no lock held. */
int container_signal_function(const char *fn_key, const char *signal, char *err);

struct docker_image_config;

/* The engine's config of a local image (docker_image_config through the
 * executor's engine handle): -ENOENT when absent, -ENOTCONN when no engine
 * is available. Blocks: any thread, no lock held. */
int container_image_inspect(const char *image, struct docker_image_config *out, char *err);

/* Pulls image through the executor's engine handle (docker_image_pull). */
int container_image_pull(const char *image, char *err);

/* Copies the engine id of a running container of the function whose spec
 * key is fn_key (this instance's) into cid_out. 0, or -ENOENT. Any thread. */
int container_of_function(const char *fn_key, char cid_out[65]);

/* The executor's engine handle (shared, thread-safe; see docker.h), or
 * NULL when no engine is available. Valid until container_shutdown. */
struct docker *container_engine(void);

/* Joins the helper thread and frees c. Call only after the final event was
 * received. */
void container_release(struct container *c);

#endif
