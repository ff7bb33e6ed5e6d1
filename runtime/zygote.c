/* zygote: Python environments forked from a pre-initialised interpreter
 * (see zygote.h for the design and the protocol). */
#include "runtime/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/fsutil.h"
#include "runtime/log.h"

extern char **environ;

#define ZYGOTE_FD 3                /* the zygote's end of the socketpair */
#define ZYGOTE_READY_MS 10000      /* start-up (imports) may be slow under load */
#define ZYGOTE_REPLY_MS 5000       /* one fork+fork+setsid */
#define ZYGOTE_MAX_MSG (1 << 20)   /* zygote.py's receive buffer */

/* Everything below is protected by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool g_enabled;
static int g_failures;
static char g_python[1024];
static char g_script[4096];
static int g_fd = -1;      /* lambdad's end of the socketpair */
static pid_t g_pid = -1;   /* the zygote process */
static bool g_ready;       /* "ready" received */

/* Environment variables the zygote is started with (and that a request
 * must carry unchanged). */
static const char *const fixed_env[] = {
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",
    "LANG=en_US.UTF-8",
    NULL,
};

/* Variables the interpreter reads at start-up that the zygote cannot
 * change afterwards. */
static bool startup_var(const char *kv)
{
    return (strncmp(kv, "PYTHON", 6) == 0 && strncmp(kv, "PYTHONPATH=", 11) != 0) ||
           strncmp(kv, "LC_", 3) == 0 || strncmp(kv, "LANG=", 5) == 0;
}

bool zygote_accepts(char **envp)
{
    int fixed_seen = 0;
    for (size_t i = 0; envp && envp[i]; i++) {
        if (!startup_var(envp[i]))
            continue;
        bool ok = false;
        for (size_t j = 0; fixed_env[j]; j++)
            if (strcmp(envp[i], fixed_env[j]) == 0)
                ok = true;
        if (!ok)
            return false;
        fixed_seen++;
    }
    return fixed_seen == (int)(sizeof(fixed_env) / sizeof(fixed_env[0]) - 1);
}

/* Kills and reaps the zygote process; mu held. */
static void zygote_kill(void)
{
    if (g_fd >= 0)
        close(g_fd);
    g_fd = -1;
    g_ready = false;
    if (g_pid > 0) {
        kill(g_pid, SIGKILL);
        while (waitpid(g_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    g_pid = -1;
}

/* Counts a failure; gives the zygote up after too many. mu held. */
static void zygote_failed(const char *what, int err)
{
    zygote_kill();
    g_failures++;
    LOG_WARN("python zygote: %s: %s%s", what, strerror(err),
             g_failures >= ZYGOTE_MAX_FAILURES ? "; giving up, python environments start as "
                                                 "plain processes from now on"
                                               : "; will restart it");
}

/* Builds the zygote's environment: ours minus start-up variables, plus
 * fixed_env. Returns a malloc'd array of borrowed strings. */
static char **zygote_env(void)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + sizeof(fixed_env) / sizeof(fixed_env[0]), sizeof(char *));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!startup_var(environ[i]))
            env[k++] = environ[i];
    for (size_t j = 0; fixed_env[j]; j++)
        env[k++] = (char *)fixed_env[j];
    return env;
}

/* Starts the zygote without waiting for it. mu held. */
static int zygote_start(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (sv[1] == ZYGOTE_FD) { /* dup2(3, 3) would keep FD_CLOEXEC */
        int n = fcntl(sv[1], F_DUPFD_CLOEXEC, ZYGOTE_FD + 1);
        close(sv[1]);
        sv[1] = n;
    }
    char **env = zygote_env();
    /* The bootstrap's C speed-up, when this build made it (CMakeLists.txt):
     * zygote.py loads it before forking environments. */
    char ext[] = LAMBDAD_PYEXT;
    char *argv[] = {g_python, g_script, access(ext, R_OK) == 0 ? ext : NULL, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1); /* its own messages go to our log */
    posix_spawn_file_actions_adddup2(&fa, sv[1], ZYGOTE_FD);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_USEVFORK);
    int err = sv[1] < 0 ? EMFILE : !env ? ENOMEM : posix_spawn(&g_pid, g_python, &fa, &attr, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(env);
    if (sv[1] >= 0)
        close(sv[1]);
    if (err) {
        g_pid = -1;
        close(sv[0]);
        return -err;
    }
    g_fd = sv[0];
    g_ready = false;
    return 0;
}

/* Waits up to ms for a datagram; returns its length, 0 on EOF, -errno. */
static ssize_t recv_timeout(char *buf, size_t len, int ms)
{
    struct pollfd p = {.fd = g_fd, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t n = recv(g_fd, buf, len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return n < 0 ? -errno : n;
    }
}

/* Makes sure a ready zygote is running. mu held. */
static int zygote_ensure(void)
{
    if (!g_enabled || g_failures >= ZYGOTE_MAX_FAILURES)
        return -ENOSYS;
    if (g_fd < 0) {
        int rc = zygote_start();
        if (rc < 0) {
            zygote_failed("cannot start", -rc);
            return rc;
        }
    }
    if (!g_ready) {
        char buf[16];
        ssize_t n = recv_timeout(buf, sizeof(buf), ZYGOTE_READY_MS);
        if (n != 5 || memcmp(buf, "ready", 5) != 0) {
            int err = n < 0 ? (int)-n : EPROTO;
            zygote_failed("did not start", err);
            return -err;
        }
        g_ready = true;
    }
    return 0;
}

int zygote_enable(const char *python, const char *bootstrap_dir)
{
    if (!python || python[0] != '/' || !bootstrap_dir)
        return -EINVAL;
    pthread_mutex_lock(&mu);
    snprintf(g_python, sizeof(g_python), "%s", python);
    snprintf(g_script, sizeof(g_script), "%s/python/zygote.py", bootstrap_dir);
    int rc = access(g_script, R_OK) == 0 ? 0 : -errno;
    if (rc == 0) {
        g_enabled = true;
        g_failures = 0;
        rc = zygote_start();
        if (rc < 0)
            zygote_failed("cannot start", -rc);
    }
    pthread_mutex_unlock(&mu);
    if (rc == 0)
        LOG_INFO("python zygote: %s %s (pid %d)", g_python, g_script, (int)g_pid);
    return rc;
}

void zygote_disable(void)
{
    pthread_mutex_lock(&mu);
    g_enabled = false;
    if (g_fd >= 0) {
        close(g_fd); /* EOF: the zygote exits by itself */
        g_fd = -1;
        for (int i = 0; i < 100 && g_pid > 0; i++) {
            if (waitpid(g_pid, NULL, WNOHANG) == g_pid)
                g_pid = -1;
            else
                usleep(2000);
        }
    }
    zygote_kill();
    pthread_mutex_unlock(&mu);
}

pid_t zygote_pid(void)
{
    pthread_mutex_lock(&mu);
    pid_t p = g_pid;
    pthread_mutex_unlock(&mu);
    return p;
}

bool zygote_available(void)
{
    pthread_mutex_lock(&mu);
    bool ok = g_enabled && g_failures < ZYGOTE_MAX_FAILURES;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* Serialises cwd and envp into one datagram. Returns its length or -errno. */
static ssize_t build_request(char *buf, size_t cap, char **envp, const char *cwd)
{
    size_t len = strlen(cwd) + 1;
    if (len > cap)
        return -E2BIG;
    memcpy(buf, cwd, len);
    for (size_t i = 0; envp[i]; i++) {
        size_t l = strlen(envp[i]) + 1;
        if (len + l > cap)
            return -E2BIG;
        memcpy(buf + len, envp[i], l);
        len += l;
    }
    return (ssize_t)len - 1; /* no trailing NUL: zygote.py splits on it */
}

/* One request/reply with a running zygote. mu held. Returns 0, -EPIPE-like
 * errors when the zygote is gone, or the zygote's -errno. */
static int request(const char *msg, size_t len, int log_fd, pid_t *pid)
{
    if (fsutil_send_fds(g_fd, msg, len, &log_fd, 1, MSG_NOSIGNAL) < 0)
        return -errno;
    char reply[32];
    ssize_t n = recv_timeout(reply, sizeof(reply) - 1, ZYGOTE_REPLY_MS);
    if (n <= 0)
        return n == 0 ? -EPIPE : (int)n;
    reply[n] = 0;
    char *end;
    long v = strtol(reply, &end, 10);
    if (*end || v == 0)
        return -EPROTO;
    if (v < 0)
        return (int)v > -4096 ? (int)v : -EPROTO;
    *pid = (pid_t)v;
    return 0;
}

int zygote_spawn(char **envp, const char *cwd, int log_fd, pid_t *pid)
{
    char *msg = malloc(ZYGOTE_MAX_MSG);
    if (!msg)
        return -ENOMEM;
    ssize_t len = build_request(msg, ZYGOTE_MAX_MSG, envp, cwd ? cwd : ".");
    int rc = len < 0 ? (int)len : 0;
    pthread_mutex_lock(&mu);
    /* A dead zygote is restarted once per request. */
    for (int attempt = 0; rc == 0 && attempt < 2; attempt++) {
        rc = zygote_ensure();
        if (rc < 0)
            break;
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        rc = request(msg, (size_t)len, log_fd, pid);
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
        if (rc == 0)
            g_failures = 0;
        if (rc == 0 || (rc != -EPIPE && rc != -ECONNRESET && rc != -ETIMEDOUT &&
                        rc != -EPROTO))
            break; /* done, or the zygote's own fork failed: it is still fine */
        zygote_failed("request failed", -rc);
        rc = attempt == 0 ? 0 : rc;
    }
    pthread_mutex_unlock(&mu);
    free(msg);
    return rc;
}
