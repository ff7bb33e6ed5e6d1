/* docker_api: a Docker Engine API front end whose containers are Lambda
 * functions (`DOCKER_HOST=unix:///run/lambdad/docker.sock docker run ...`).
 *
 * DESIGN: a second civetweb context serves the Engine API on the TCP
 * addresses given with --docker-api; a unix:// address gets a small
 * acceptor thread that relays each connection to a loopback port of that
 * context (Debian's civetweb 1.15 cannot listen on unix sockets), and the
 * loopback port answers only connections the relay opened. A container is
 * a record here (id, name, labels, state, exit code, bounded output buffer)
 * plus an ordinary Lambda function created through the same code as
 * CreateFunction (api_create_function_doc): PackageType Image, the image
 * as ImageUri, lambdad's command runner (runtime/bootstrap/cmdrunner) as
 * ImageConfig.EntryPoint and the container's resolved ENTRYPOINT+CMD as
 * ImageConfig.Command. `start` is an invocation; the runner streams the
 * command's stdout/stderr as Docker stream frames to a third, small
 * listener on the address the Runtime API uses (reachable from the
 * containers), authenticated by a per-start token; the invocation's answer
 * {"StatusCode":N} is the exit code. stop/kill signal the function's
 * environments through the engine (container_signal_function). wait,
 * logs -f and attach block a worker thread of the Engine API context
 * until the record changes (one mutex + condition variable).
 *
 * Thread rules: docker_api_start/stop on the main thread, after pool_start
 * and before pool_stop (the front end submits invocations and reads the
 * registry); everything else runs on its own threads. */
#ifndef LAMBDAD_SERVER_DOCKER_API_H
#define LAMBDAD_SERVER_DOCKER_API_H

#include <stdbool.h>

struct docker_api_options {
    const char *const *listen; /* "unix:///path" / "tcp://host:port", NULL-terminated */
    const char *account;       /* 12-digit account of the functions */
    const char *region;        /* region of the functions */
    const char *prefix;        /* function names: <prefix>-<id12> */
    int memory_mb;             /* MemorySize without HostConfig.Memory */
    int timeout_s;             /* Timeout of every container function */
    bool engine;               /* the docker executor can run Image functions */
};

/* Starts the listeners. Returns 0, or -1 with *err set to a message for the
 * operator (static storage). Main thread. */
int docker_api_start(const struct docker_api_options *o, const char **err);

/* Stops the listeners (streams in progress end), removes the unix sockets.
 * The containers' functions stay (they are ordinary functions). Main
 * thread; NULL-safe when never started. */
void docker_api_stop(void);

#endif
