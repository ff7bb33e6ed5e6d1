/* config: lambdad's command-line flags and their environment variables.
 *
 * DESIGN: every flag has an environment variable; defaults come first, then
 * the environment, then the command line (the flag wins). Parsing validates
 * every value so main() can refuse a bad configuration with one line and
 * exit status 2 before anything starts.
 *
 * Thread rules: parsed once by the main thread before any other thread
 * exists; read-only afterwards. */
#ifndef LAMBDAD_SERVER_CONFIG_H
#define LAMBDAD_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "pool/pool.h"
#include "runtime/log.h"

#define CONFIG_MAX_IMAGES 64
#define CONFIG_MAX_DOCKER_API 8
#define CONFIG_MAX_HTTP_THREADS 16384
/* Idle keep-alive connections stay open this long by default: well above
 * the intervals clients poll at on one connection (`aws logs tail --follow`
 * sleeps 5 s between FilterLogEvents calls). A timeout equal to a client's
 * poll interval races: the client checks the connection, the server gives
 * up on it in the same moment and closes it with the new request unread,
 * and the client reads "connection closed before a valid response" (seen
 * with 5 s under CPU load). Idle connections cost a civetweb thread each;
 * connguard closes the longest-idle ones when threads run short. */
#define CONFIG_DEFAULT_HTTP_KEEPALIVE_S 60

struct lambdad_config {
    char *host;
    int port;
    char *data_dir;
    bool ephemeral;
    int http_threads;     /* civetweb threads = connections served at once */
    int http_keepalive_s; /* idle keep-alive connections close after this */
    char account_id[13];
    enum log_level log_level;
    int executors;
    enum pool_executor_kind executor;
    int container_ttl_s;
    int max_containers;
    char *network;
    const char *images[CONFIG_MAX_IMAGES + 1]; /* "runtime=image", NULL-terminated */
    size_t n_images;
    char *docker_host;
    size_t async_payload_limit;
    int invoke_spin_us;          /* --invoke-spin-us (server/api_invoke.h) */
    int retry_delay_ms[2];
    char *bootstrap_dir;
    bool python_zygote; /* --python-zygote on|off */
    const char *docker_api[CONFIG_MAX_DOCKER_API + 1]; /* --docker-api addresses, NULL-terminated */
    size_t n_docker_api;
    int docker_api_memory_mb;  /* --docker-api-memory */
    int docker_api_timeout_s;  /* --docker-api-timeout */
    char *docker_api_prefix;   /* --docker-api-prefix */
    unsigned long long logs_max_bytes; /* --logs-max-bytes (0: no cap) */
    bool validate_roles; /* --validate-roles: the function's Role must exist in lambdad's IAM */
    int state_transition_ms; /* Pending / InProgress window after create / update */
};

enum config_result { CONFIG_OK = 0, CONFIG_HELP = 1, CONFIG_ERROR = -1 };

/* Parses the environment and argv into *cfg (strings are malloc'd and live
 * for the process). CONFIG_HELP: usage was printed to stdout. CONFIG_ERROR:
 * err holds a one-line message. */
enum config_result config_parse(struct lambdad_config *cfg, int argc, char **argv, char *err,
                                size_t errlen);

/* Frees the strings config_parse allocated. Main thread, at exit. */
void config_free(struct lambdad_config *cfg);

/* The configuration parsed by the last successful config_parse (e.g. for
 * the Invoke handler's async payload limit), or NULL before. Read-only. */
const struct lambdad_config *config_current(void);

/* Name of an executor kind ("subprocess", "docker", "auto"). */
const char *config_executor_name(enum pool_executor_kind kind);

#endif
