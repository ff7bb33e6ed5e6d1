/* docker: a small Docker Engine API client (libcurl + jansson).
 *
 * DESIGN: the docker executor creates, starts, watches and removes Lambda
 * containers through the Engine's HTTP API (version prefix /v1.41, served
 * by engines 20.10 through 28), over the unix socket or a plain tcp://
 * DOCKER_HOST. No `docker` CLI processes. Every call builds its own CURL
 * easy handle, so the only shared state is the immutable handle (host,
 * base URL); each call has a 2 s connect timeout and an overall timeout
 * (DOCKER_TIMEOUT_MS, DOCKER_TIMEOUT_LONG_MS for pulls/imports), so an
 * unreachable or wedged engine yields an error instead of a hang. The
 * exceptions are the explicitly blocking calls (container_wait with a 0
 * timeout, logs_follow, attach) meant for helper threads.
 *
 * Errors: every call returns 0 (or a documented non-negative count/flag) on
 * success and a negative errno on failure:
 *   -ECONNREFUSED engine unreachable (socket missing, refused, no route)
 *   -ETIMEDOUT    connect or overall timeout
 *   -ENOENT       404: no such image/container
 *   -EEXIST       409: conflict (name in use, container not running, ...)
 *   -EINVAL       400 or bad argument;  -EACCES 401/403
 *   -EIO          500 / engine-reported error in a stream (e.g. pull)
 *   -EPROTO       unexpected answer;    -ENOMEM; -E2BIG answer > 16 MB
 *   -ECANCELED    docker_attached_cb asked to stop; -EPIPE etc. writing fd
 * and, when the caller passed an err buffer (char[DOCKER_ERR_MAX], may be
 * NULL), a one-line human message naming the operation, the object and
 * the engine's own error text, e.g.
 *   "pull lambdad/nope:1: pull access denied for lambdad/nope, ..."
 *
 * Thread rules: a struct docker may be shared by any number of threads
 * after docker_open returns; all calls are safe concurrently (one CURL easy
 * handle per call; curl_global_init runs once, under pthread_once, in
 * docker_open). All calls block on the network: never call them inside an
 * RCU read-side section or while holding a lock a civetweb thread waits on.
 *
 * Containers are created with Tty=false, so their output is multiplexed
 * (8-byte frame headers); logs_follow/attach demultiplex it. */
#ifndef LAMBDAD_RUNTIME_DOCKER_H
#define LAMBDAD_RUNTIME_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DOCKER_API_VERSION "v1.41"
#define DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"
#define DOCKER_ERR_MAX 512
#define DOCKER_CONNECT_TIMEOUT_MS 2000L
#define DOCKER_TIMEOUT_MS 30000L        /* ordinary calls */
#define DOCKER_TIMEOUT_LONG_MS 900000L  /* pull, import (15 min) */
#define DOCKER_ID_MAX 65                /* 64 hex chars + NUL */

struct docker;

/* Called for each progress line of a pull or import, with a short
 * human-readable summary ("<layer id>: <status> <progress>"). Runs on the
 * calling thread, inside the docker call. */
typedef void (*docker_progress_cb)(const char *line, void *user);

/* Called once by docker_container_attach when the attach stream is
 * established (response headers received), before any output: the moment
 * it is safe to start the container without losing output. Return 0 to go
 * on, non-zero to abort the attach. */
typedef int (*docker_attached_cb)(void *user);

/* Opens a handle for host: "unix:///path", "tcp://host:port", or NULL for
 * $DOCKER_HOST, else DOCKER_DEFAULT_HOST. Does not contact the engine (use
 * docker_ping). TLS (DOCKER_TLS_VERIFY / https) is not supported:
 * -EINVAL. On success *out is owned by the caller (docker_close). */
int docker_open(struct docker **out, const char *host, char *err);

/* Frees the handle. No call may be running on it. NULL is a no-op. */
void docker_close(struct docker *d);

/* The host string the handle talks to ("unix:///var/run/docker.sock"). */
const char *docker_host(const struct docker *d);

/* True for a unix socket host: bind mounts of host paths work. For tcp://
 * hosts the executor must upload code with docker_put_archive instead. */
bool docker_is_local(const struct docker *d);

/* Sets the overall timeout of ordinary calls (default DOCKER_TIMEOUT_MS;
 * <= 0 restores it). Call before the handle is shared between threads. */
void docker_set_timeout(struct docker *d, long timeout_ms);

/* GET /_ping (overall timeout min(5 s, the handle's)). 0 when the engine
 * answers "OK". */
int docker_ping(struct docker *d, char *err);

/* GET /images/{image}/json. Returns 1 if the image exists locally, 0 if
 * not, or a negative error (engine unreachable, ...). */
int docker_image_exists(struct docker *d, const char *image, char *err);

/* What the executor needs of an image's config (from inspect). Every array
 * is NULL-terminated, malloc'd, and NULL when the image leaves it unset.
 * An AWS base image has entrypoint = {"/lambda-entrypoint.sh", NULL}. */
struct docker_image_config {
    char **entrypoint;  /* Config.Entrypoint */
    char **cmd;         /* Config.Cmd */
    char **env;         /* Config.Env, "K=V" */
    char *working_dir;  /* Config.WorkingDir, NULL if empty */
    char *user;         /* Config.User, NULL if empty */
    int64_t size;       /* image size in bytes */
};

/* Fills *out from GET /images/{image}/json. -ENOENT if the image is not
 * present. Release with docker_image_config_free. */
int docker_image_config(struct docker *d, const char *image, struct docker_image_config *out,
                        char *err);
void docker_image_config_free(struct docker_image_config *c);

/* True if the config is an AWS Lambda base image (its entrypoint is
 * /lambda-entrypoint.sh, which expects the handler as its only argument). */
bool docker_image_is_lambda_base(const struct docker_image_config *c);

/* POST /images/create?fromImage=..&tag=.. Pulls image ("repo[:tag]" or
 * "repo@digest"; no tag means "latest", never all tags), calling progress
 * (may be NULL) for each progress line. A failure (also one the engine
 * reports mid-stream) returns -EIO/-ENOENT/... with a message naming the
 * image and the engine's error text. Timeout DOCKER_TIMEOUT_LONG_MS. */
int docker_image_pull(struct docker *d, const char *image, docker_progress_cb progress,
                      void *user, char *err);

/* POST /images/create?fromSrc=-&repo=..&tag=..&changes=.. with the root
 * filesystem tarball at tar_path (plain or gzip/xz compressed) as the body,
 * streamed from disk. changes: NULL or NULL-terminated Dockerfile lines
 * ("ENV K=V", "WORKDIR /x", "CMD [\"sh\"]"). Timeout DOCKER_TIMEOUT_LONG_MS. */
int docker_image_import(struct docker *d, const char *tar_path, const char *repo, const char *tag,
                        const char *const *changes, docker_progress_cb progress, void *user,
                        char *err);

/* DELETE /images/{image}[?force=1]. -ENOENT if absent, -EEXIST if a
 * container uses it (without force). */
int docker_image_remove(struct docker *d, const char *image, bool force, char *err);

/* POST /images/{image}/tag?repo=..&tag=.. (e.g. to alias the test image
 * under a runtime's image name). */
int docker_image_tag(struct docker *d, const char *image, const char *repo, const char *tag,
                     char *err);

/* Options of docker_container_create. All string arrays are
 * NULL-terminated; NULL/0 fields mean "engine or image default". The
 * caller keeps ownership of everything. */
struct docker_create_opts {
    const char *name;                /* container name, NULL = engine-generated */
    const char *image;               /* required */
    const char *const *entrypoint;   /* argv replacing the image's ENTRYPOINT */
    const char *const *cmd;          /* argv replacing the image's CMD */
    const char *const *env;          /* "K=V" */
    const char *working_dir;
    const char *user;                /* "uid[:gid]" or name */
    const char *const *binds;        /* "host:container[:ro]" */
    const char *const *tmpfs;        /* "path:options", e.g. "/tmp:rw,exec,size=512m" */
    const char *const *labels;       /* "key=value" */
    const char *const *extra_hosts;  /* "host.docker.internal:host-gateway" */
    const char *network_mode;        /* "host", "bridge", a network name */
    int64_t memory_bytes;            /* HostConfig.Memory; MemorySwap = same (no swap) */
    int64_t nano_cpus;               /* HostConfig.NanoCpus (1e9 = one CPU), 0 = unlimited */
    bool readonly_rootfs;            /* HostConfig.ReadonlyRootfs (Lambda: only /tmp writable) */
    const char *log_driver;          /* HostConfig.LogConfig.Type; "none" = no log file on
                                      * disk (then only attach sees output, not logs_follow) */
};

/* POST /containers/create?name=.. (AutoRemove=false, Init=false,
 * Tty=false, no stdin). On success copies the new id into id_out. -EEXIST
 * if the name is taken, -ENOENT if the image is missing (no implicit pull). */
int docker_container_create(struct docker *d, const struct docker_create_opts *o,
                            char id_out[DOCKER_ID_MAX], char *err);

/* POST /containers/{id}/start. Starting a running container is 0. */
int docker_container_start(struct docker *d, const char *id, char *err);

/* POST /containers/{id}/kill?signal=.. (signal: "SIGKILL", "TERM", "9"; NULL
 * = SIGKILL). -EEXIST if the container is not running. */
int docker_container_kill(struct docker *d, const char *id, const char *signal, char *err);

/* DELETE /containers/{id}?force=..&v=1 (force kills a running container).
 * -ENOENT if there is no such container; a removal already in progress
 * counts as success. */
int docker_container_remove(struct docker *d, const char *id, bool force, char *err);

/* POST /containers/{id}/wait?condition=not-running: blocks until the
 * container is not running and stores its exit status. Call it after
 * start (a created-but-not-started container counts as not running).
 * timeout_ms 0 = no overall timeout: for a helper thread. */
int docker_container_wait(struct docker *d, const char *id, long timeout_ms, int *exit_code,
                          char *err);

/* GET /containers/{id}/json: State.Running, State.ExitCode, State.OOMKilled.
 * Any out-pointer may be NULL. */
int docker_container_inspect_state(struct docker *d, const char *id, bool *running,
                                   int *exit_code, bool *oom_killed, char *err);

/* GET /containers/{id}/logs?follow=1&stdout=1&stderr=1: writes the
 * demultiplexed stdout+stderr payload to fd, from the container's first
 * byte, until the container stops (the engine ends the stream). Blocking,
 * for a helper thread; may be called any time after create (no output is
 * lost). Returns 0 when the stream ended, negative on error (also when a
 * write to fd fails, e.g. -EPIPE). */
int docker_container_logs_follow(struct docker *d, const char *id, int fd, char *err);

/* POST /containers/{id}/attach?stream=1&stdout=1&stderr=1: like
 * logs_follow but reads the container's output stream directly, not via
 * the log file, so it also works with log_driver "none" (no per-line disk
 * writes). Measured line latency on engine 20.10 is the same as
 * logs_follow (about 1 ms both). Output written before the attach is
 * established is NOT replayed: attach before start. on_attached (may be
 * NULL) runs once the engine answered (it hooks the streams microseconds
 * later, long before a start completes), e.g. to release the thread that
 * starts the container. Blocking until the container stops. */
int docker_container_attach(struct docker *d, const char *id, int fd,
                            docker_attached_cb on_attached, void *user, char *err);

/* docker_container_attach that also ends, with -ECANCELED, as soon as
 * cancel_fd (an eventfd, a pipe's read end; -1 = none) becomes readable.
 * Needed to let go of a container that will never start: the engine
 * (20.10) keeps an attach to a created container open forever, even after
 * removing it. The wait is event-driven (the fd is in curl's poll set). */
int docker_container_attach_cancellable(struct docker *d, const char *id, int fd,
                                        docker_attached_cb on_attached, void *user, int cancel_fd,
                                        char *err);

/* GET /containers/json?all=1&filters={"label":[label]}: ids of all
 * containers (any state) carrying label ("key" or "key=value"). On success
 * returns the count and, if ids is not NULL, a NULL-terminated array the
 * caller frees with docker_strv_free. */
int docker_containers_list_by_label(struct docker *d, const char *label, char ***ids, char *err);

/* One entry of docker_containers_list_info. */
struct docker_container_info {
    char *id;
    char *state; /* "created", "running", "exited", "dead", ... */
    char *label; /* value of the requested label key, NULL if the container has none */
};

/* Like docker_containers_list_by_label, but also returns each container's
 * state and the value of its label key (e.g. an owner label, to tell a
 * live instance's containers from leftovers). Returns the count and sets
 * *out (free with docker_container_infos_free(*out, count)). */
int docker_containers_list_info(struct docker *d, const char *label, const char *key,
                                struct docker_container_info **out, char *err);
void docker_container_infos_free(struct docker_container_info *v, int n);

/* Lists containers with label and force-removes each. Returns how many
 * were removed, or a negative error if listing failed or any removal
 * failed (the message names the first failure; the others are still
 * attempted). Use it at startup and shutdown to clean up. */
int docker_containers_remove_by_label(struct docker *d, const char *label, char *err);

/* PUT /containers/{id}/archive?path=..: extracts the tar (len bytes) into
 * the container at path, which must exist in the container (works on a
 * created, not yet started container). For remote engines (no binds). */
int docker_put_archive(struct docker *d, const char *id, const char *path, const void *tar,
                       size_t len, char *err);

/* Packs the tree under dir (regular files, directories, symlinks; names
 * relative, uid/gid 0, modes and mtimes kept) into an in-memory ustar
 * archive. *buf is malloc'd (caller frees); paths longer than ustar allows
 * (name 100 + prefix 155) fail with -ENAMETOOLONG. Returns 0 or -errno. */
int docker_tar_dir(const char *dir, char **buf, size_t *len);

/* Like docker_tar_dir, but every entry is named prefix/<relative path>
 * (prefix "var/task": upload with path "/" to land in /var/task even when
 * that directory does not exist in the image; the engine creates missing
 * parents). prefix NULL or "" = docker_tar_dir. */
int docker_tar_dir_at(const char *dir, const char *prefix, char **buf, size_t *len);

/* GET /networks/{network}: the IPv4 address of the network's gateway on the
 * host (IPAM.Config[].Gateway, else the first host address of its IPv4
 * subnet, which is what the engine assigns), e.g. "172.17.0.1" for
 * "bridge". -ENOENT if the network does not exist or has no IPv4 config. */
int docker_network_gateway(struct docker *d, const char *network, char ip_out[64], char *err);

/* Receives a piece of a raw stream; returns 0, or a negative errno to stop
 * (the call then fails with it). */
typedef int (*docker_stream_cb)(void *user, const char *data, size_t len);

/* POST /containers/{id}/exec: an exec instance of argv (NULL-terminated)
 * in the running container cid, attached to stdout/stderr (no stdin), with
 * extra env "K=V" (may be NULL) and workdir (may be NULL). Copies its id
 * into id_out. -EEXIST when the container is not running. */
int docker_exec_create(struct docker *d, const char *cid, const char *const *argv,
                       const char *const *env, const char *workdir, bool tty,
                       char id_out[DOCKER_ID_MAX], char *err);

/* POST /exec/{id}/start (attached): passes the engine's stream to cb as it
 * comes (multiplexed frames unless tty) until the command ends. Blocking,
 * no overall timeout. */
int docker_exec_start(struct docker *d, const char *exec_id, bool tty, docker_stream_cb cb,
                      void *user, char *err);

/* GET /exec/{id}/json: whether it still runs and its exit code (-1 while
 * running). */
int docker_exec_inspect(struct docker *d, const char *exec_id, bool *running, int *exit_code,
                        char *err);

/* GET /containers/{id}/archive?path=..: the tar of path in the container,
 * passed to cb as it comes. stat_out (stat_len bytes) receives the
 * X-Docker-Container-Path-Stat header (base64 JSON) before on_headers (may
 * be NULL; non-zero aborts with -ECANCELED, e.g. after a stat) runs.
 * -ENOENT when the path does not exist. */
int docker_get_archive(struct docker *d, const char *id, const char *path, char *stat_out,
                       size_t stat_len, docker_attached_cb on_headers, docker_stream_cb cb,
                       void *user, char *err);

/* Frees a NULL-terminated array of malloc'd strings. NULL is a no-op. */
void docker_strv_free(char **v);

#endif
