/* subprocess: host-process execution environments (see subprocess.h). */
#include "runtime/subprocess.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/lambda_env.h"
#include "runtime/log.h"
#include "runtime/zygote.h"

static const char *g_python = "python3";
static const char *g_node = "node";
/* The python launcher is resolved on a thread started by subprocess_init
 * (a pyenv shim costs ~80 ms), so the HTTP front starts meanwhile; what
 * needs g_python waits for it (python_path). g_py_mu also serialises the
 * zygote switch with the resolver, which turns the zygote on once it knows
 * the interpreter if subprocess_set_zygote asked for it before. */
static pthread_mutex_t g_py_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_py_cv = PTHREAD_COND_INITIALIZER;
static bool g_py_ready = true; /* false while the resolver runs */
static bool g_py_thread;       /* the resolver was started (joined at shutdown) */
static pthread_t g_py_tid;
static char g_py_launcher[1024];
static bool g_zygote_wanted;
static char g_zygote_dir[PATH_MAX];
static int g_cg_root = -1; /* parent memory cgroup dir of environments (O_DIRECTORY), -1 = none */
static int g_cg_v2;        /* g_cg_root is cgroup v2: it also kills (cgroup.kill) */
/* Parent of the environments' kill cgroups on a hybrid (v1 + v2) host:
 * the v2 hierarchy has cgroup.kill even when it has no controllers. -1
 * when g_cg_v2 (the memory cgroup does it) or unavailable. */
static int g_kill_root = -1;

/* Writes val to the file name inside the directory dirfd. Returns 0 or -errno. */
static int write_at(int dirfd, const char *name, const char *val)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, val, strlen(val));
    int rc = w < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static int open_dir(int at, const char *path)
{
    return openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* SIGKILLs every process listed in the cgroup dirfd's cgroup.procs (one
 * pass; v1 has no cgroup.kill). Returns how many were listed. */
static int sweep_procs(int dirfd)
{
    int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[4096];
    int n = 0;
    size_t have = 0;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = 0;
        char *p = buf, *nl;
        while ((nl = strchr(p, '\n'))) {
            *nl = 0;
            long pid = atol(p);
            if (pid > 1 && pid != (long)getpid()) {
                kill((pid_t)pid, SIGKILL);
                n++;
            }
            p = nl + 1;
        }
        have = strlen(p);
        memmove(buf, p, have);
    }
    close(fd);
    return n;
}

/* Kills everything in the cgroup dirfd: cgroup.kill (v2, Linux 5.14+), else
 * a sweep of cgroup.procs. */
static void cgroup_kill_all(int dirfd, bool v2)
{
    if (dirfd < 0)
        return;
    if (v2 && write_at(dirfd, "cgroup.kill", "1") == 0)
        return;
    sweep_procs(dirfd);
}

/* Removes an (emptied) cgroup name under root: processes take a moment to
 * leave after SIGKILL. Kills stragglers again while waiting (up to ~2 s).
 * Blocking: callers run on a background thread or at start-up. */
static void cgroup_rmdir(int root, const char *name, bool v2)
{
    for (int i = 0; i < 400; i++) {
        if (unlinkat(root, name, AT_REMOVEDIR) == 0 || errno != EBUSY)
            return;
        if (i % 20 == 19) {
            int fd = open_dir(root, name);
            cgroup_kill_all(fd, v2);
            if (fd >= 0)
                close(fd);
        }
        usleep(5000);
    }
    LOG_WARN("cgroup %s: still busy after its processes were killed", name);
}

/* Whether pid is a running process other than us. */
static bool pid_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Start-up: removes env-<pid>-<id> cgroups under root left by lambdad runs
 * that are gone (killed -9, crashed), killing what still runs in them.
 * Cgroups of lambdad processes that are alive (other instances on this
 * host) are left alone. */
static void remove_stale(int root, bool v2, const char *what)
{
    if (root < 0)
        return;
    int dfd = dup(root);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long pid;
        unsigned long long id;
        char tail;
        if (sscanf(de->d_name, "env-%ld-%llu%c", &pid, &id, &tail) != 2)
            continue;
        if (pid == (long)getpid() || pid_alive(pid))
            continue;
        int fd = open_dir(root, de->d_name);
        cgroup_kill_all(fd, v2);
        if (fd >= 0)
            close(fd);
        cgroup_rmdir(root, de->d_name, v2);
        removed++;
    }
    closedir(d);
    if (removed)
        LOG_INFO("removed %d stale %s cgroup(s) of lambdad runs that are gone", removed, what);
}

/* Resolves a python launcher (possibly a pyenv shim, which costs ~60 ms per
 * start) to the real interpreter once, at start-up. */
static const char *resolve_python(const char *python)
{
    static char real[1024];
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "'%s' -S -c 'import sys; print(sys.executable)' 2>/dev/null", python);
    FILE *f = popen(cmd, "r");
    if (!f)
        return python;
    char *line = fgets(real, sizeof(real), f);
    pclose(f);
    if (!line)
        return python;
    real[strcspn(real, "\n")] = 0;
    return real[0] == '/' && access(real, X_OK) == 0 ? real : python;
}

/* Opens (creating) the hybrid host's v2 parent of kill cgroups. */
static void kill_root_init(void)
{
    const char *dir = "/sys/fs/cgroup/unified/lambdad";
    if (g_cg_v2 || access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) != 0)
        return;
    if ((mkdir(dir, 0755) == 0 || errno == EEXIST) && (g_kill_root = open_dir(AT_FDCWD, dir)) >= 0 &&
        faccessat(g_kill_root, "cgroup.procs", W_OK, 0) != 0) {
        close(g_kill_root);
        g_kill_root = -1;
    }
}

static const char *cgroup_init(void);

static void zygote_switch(bool on, const char *bootstrap_dir)
{
    if (!on) {
        zygote_disable();
        return;
    }
    int rc = zygote_enable(g_python, bootstrap_dir);
    if (rc < 0)
        LOG_WARN("python zygote unavailable (%s): python environments start as plain processes",
                 strerror(-rc));
}

/* Resolves g_py_launcher, publishes it and starts the zygote if it was
 * asked for meanwhile. */
static void resolve_now(void)
{
    const char *real = resolve_python(g_py_launcher);
    LOG_INFO("python runtimes use %s", real);
    pthread_mutex_lock(&g_py_mu);
    g_python = real;
    g_py_ready = true;
    if (g_zygote_wanted) {
        g_zygote_wanted = false;
        zygote_switch(true, g_zygote_dir);
    }
    pthread_cond_broadcast(&g_py_cv);
    pthread_mutex_unlock(&g_py_mu);
}

static void *resolver_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "py-resolve");
    resolve_now();
    return NULL;
}

/* The resolved python interpreter; waits for the resolver (only at
 * start-up: ~80 ms through a pyenv shim, ~13 ms for a real python3). */
static const char *python_path(void)
{
    pthread_mutex_lock(&g_py_mu);
    while (!g_py_ready)
        pthread_cond_wait(&g_py_cv, &g_py_mu);
    const char *p = g_python;
    pthread_mutex_unlock(&g_py_mu);
    return p;
}

const char *subprocess_init(const char *python, const char *node)
{
    pthread_mutex_lock(&g_py_mu);
    bool resolve = !g_py_thread;
    if (resolve) {
        snprintf(g_py_launcher, sizeof(g_py_launcher), "%s", python && *python ? python : "python3");
        g_python = g_py_launcher;
        g_py_ready = false;
        g_py_thread = pthread_create(&g_py_tid, NULL, resolver_main, NULL) == 0;
    }
    pthread_mutex_unlock(&g_py_mu);
    if (resolve && !g_py_thread)
        resolve_now(); /* no thread: here, as before */
    if (node && *node)
        g_node = node;
    const char *how = cgroup_init();
    kill_root_init();
    remove_stale(g_cg_root, g_cg_v2, "memory");
    remove_stale(g_kill_root, true, "tracking");
    if (g_kill_root >= 0 || g_cg_v2)
        LOG_INFO("environment processes are tracked by cgroup (killed as a whole on stop)");
    return how;
}

/* cgroup v2 (unified at /sys/fs/cgroup) or v1 memory controller. */
static const char *cgroup_init(void)
{
    const char *v2 = "/sys/fs/cgroup/lambdad";
    const char *v1 = "/sys/fs/cgroup/memory/lambdad";
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
        /* Environments are children of /sys/fs/cgroup/lambdad, which must
         * delegate the memory controller to them. */
        int top = open_dir(AT_FDCWD, "/sys/fs/cgroup");
        if (top >= 0) {
            write_at(top, "cgroup.subtree_control", "+memory");
            close(top);
        }
        if ((mkdir(v2, 0755) == 0 || errno == EEXIST) && (g_cg_root = open_dir(AT_FDCWD, v2)) >= 0) {
            if (write_at(g_cg_root, "cgroup.subtree_control", "+memory") == 0) {
                g_cg_v2 = 1;
                return "cgroup v2 memory.max per environment";
            }
            close(g_cg_root);
            g_cg_root = -1;
        }
    } else if (access("/sys/fs/cgroup/memory", F_OK) == 0) {
        if ((mkdir(v1, 0755) == 0 || errno == EEXIST) && (g_cg_root = open_dir(AT_FDCWD, v1)) >= 0)
            return "cgroup v1 memory.limit_in_bytes per environment";
    }
    return "not enforced (no writable memory cgroup); Max Memory Used from VmHWM";
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

const char *subprocess_exec_wrapper(const struct fn_spec *s)
{
    const char *rt = s->runtime ? s->runtime : "";
    if (!*rt || lambda_env_is_custom_runtime(rt))
        return NULL; /* managed runtimes only, as in AWS */
    for (size_t i = 0; i < s->n_env; i++)
        if (!strcmp(s->env[i].key, "AWS_LAMBDA_EXEC_WRAPPER") && s->env[i].value && *s->env[i].value)
            return s->env[i].value;
    return NULL;
}

/* The host path of an environment path: /opt/... in the merged layers,
 * /var/task/... in the code, anything else as is. */
static char *host_path(const char *p, const char *code_dir, const char *opt_dir)
{
    char buf[4096];
    if (opt_dir && (!strncmp(p, "/opt/", 5) || !strcmp(p, "/opt")))
        snprintf(buf, sizeof(buf), "%s%s", opt_dir, p + 4);
    else if (code_dir && (!strncmp(p, "/var/task/", 10) || !strcmp(p, "/var/task")))
        snprintf(buf, sizeof(buf), "%s%s", code_dir, p + 9);
    else
        snprintf(buf, sizeof(buf), "%s", p);
    return strdup(buf);
}

/* AWS_LAMBDA_EXEC_WRAPPER: the wrapper runs with the runtime command as
 * its arguments. Shifts argv (room for one more entry) right by one. */
static int add_wrapper(char **argv, const struct fn_spec *s, const char *opt_dir)
{
    const char *w = subprocess_exec_wrapper(s);
    if (!w)
        return 0;
    char *hp = host_path(w, s->code_dir, opt_dir);
    if (!hp)
        return -1;
    size_t n = 0;
    while (argv[n])
        n++;
    memmove(argv + 1, argv, (n + 1) * sizeof(char *));
    argv[0] = hp;
    return 0;
}

char **subprocess_argv(const struct fn_spec *s, const char *bootstrap_dir, const char *opt_dir,
                       const char **err)
{
    char path[4096];
    char **argv = calloc(5, sizeof(char *));
    if (!argv) {
        *err = "out of memory";
        return NULL;
    }
    const char *rt = s->runtime ? s->runtime : "";
    if (strncmp(rt, "python", 6) == 0) {
        snprintf(path, sizeof(path), "%s/python/bootstrap.py", bootstrap_dir);
        argv[0] = xstrdup(python_path());
        argv[1] = xstrdup(path);
    } else if (strncmp(rt, "nodejs", 6) == 0) {
        snprintf(path, sizeof(path), "%s/node/bootstrap.js", bootstrap_dir);
        argv[0] = xstrdup(g_node);
        argv[1] = xstrdup(path);
    } else if (lambda_env_is_custom_runtime(rt)) {
        /* RIE search order: task root, then /opt (the merged layers). */
        snprintf(path, sizeof(path), "%s/bootstrap", s->code_dir ? s->code_dir : ".");
        if (access(path, X_OK) != 0 && opt_dir)
            snprintf(path, sizeof(path), "%s/bootstrap", opt_dir);
        if (access(path, X_OK) != 0) {
            *err = "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]";
            free(argv);
            return NULL;
        }
        argv[0] = xstrdup(path);
    } else {
        *err = "This runtime is not supported by the subprocess executor; run lambdad with "
               "--lambda-executor docker (or auto with the tag lambdad:executor=docker)";
        free(argv);
        return NULL;
    }
    if (!argv[0] || add_wrapper(argv, s, opt_dir)) {
        subprocess_free_argv(argv);
        *err = "out of memory";
        return NULL;
    }
    return argv;
}

void subprocess_free_argv(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

/* Creates the environment's memory cgroup g_cg_root/name; fills sp->cgroup
 * (the name) and sp->cg_fd, or leaves them unset when not enforced. */
static void cgroup_create(struct subprocess *sp, const char *name, int memory_mb)
{
    if (g_kill_root >= 0 && (mkdirat(g_kill_root, name, 0755) == 0 || errno == EEXIST)) {
        sp->kill_fd = open_dir(g_kill_root, name);
        if (sp->kill_fd < 0)
            unlinkat(g_kill_root, name, AT_REMOVEDIR);
        else if (!sp->cgroup && !(sp->cgroup = strdup(name))) {
            close(sp->kill_fd);
            sp->kill_fd = -1;
            unlinkat(g_kill_root, name, AT_REMOVEDIR);
        }
    }
    if (g_cg_root < 0 || memory_mb <= 0)
        return;
    if (mkdirat(g_cg_root, name, 0755) < 0 && errno != EEXIST)
        return;
    int fd = open_dir(g_cg_root, name);
    char val[64];
    snprintf(val, sizeof(val), "%lld", (long long)memory_mb * 1024 * 1024);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && g_cg_v2) {
        rc = write_at(fd, "memory.max", val);
        write_at(fd, "memory.swap.max", "0");
    } else if (rc == 0) {
        rc = write_at(fd, "memory.limit_in_bytes", val);
        write_at(fd, "memory.memsw.limit_in_bytes", val);
        write_at(fd, "memory.swappiness", "0");
    }
    if (rc == 0 && !sp->cgroup && !(sp->cgroup = strdup(name)))
        rc = -ENOMEM;
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        unlinkat(g_cg_root, name, AT_REMOVEDIR);
        return;
    }
    sp->cg_fd = fd;
}

/* Removes the environment's cgroups (closes their fds). Blocking. */
static void cgroup_remove(struct subprocess *sp)
{
    if (sp->cg_fd >= 0) {
        close(sp->cg_fd);
        cgroup_rmdir(g_cg_root, sp->cgroup, g_cg_v2);
    }
    if (sp->kill_fd >= 0) {
        close(sp->kill_fd);
        cgroup_rmdir(g_kill_root, sp->cgroup, true);
    }
    sp->cg_fd = sp->kill_fd = -1;
    free(sp->cgroup);
    sp->cgroup = NULL;
}

void subprocess_set_zygote(bool on, const char *bootstrap_dir)
{
    pthread_mutex_lock(&g_py_mu);
    if (!g_py_ready) {
        /* The resolver turns it on when it knows the interpreter. */
        g_zygote_wanted = on;
        snprintf(g_zygote_dir, sizeof(g_zygote_dir), "%s", bootstrap_dir ? bootstrap_dir : "");
    } else {
        zygote_switch(on, bootstrap_dir);
    }
    pthread_mutex_unlock(&g_py_mu);
}

void subprocess_shutdown(void)
{
    if (g_py_thread) {
        pthread_join(g_py_tid, NULL);
        g_py_thread = false;
    }
    pthread_mutex_lock(&g_py_mu);
    zygote_disable();
    pthread_mutex_unlock(&g_py_mu);
}

/* Whether argv is the bundled Python bootstrap on the resolved interpreter
 * and the environment suits the zygote. */
static bool use_zygote(char **argv, char **envp)
{
    static const char tail[] = "/python/bootstrap.py";
    if (!argv[0] || !argv[1] || argv[2] || strcmp(argv[0], python_path()) != 0)
        return false;
    size_t l = strlen(argv[1]);
    if (l < sizeof(tail) - 1 || strcmp(argv[1] + l - (sizeof(tail) - 1), tail) != 0)
        return false;
    return zygote_available() && zygote_accepts(envp);
}

int subprocess_start(struct subprocess *out, char **argv, char **envp, const char *cwd,
                     const char *name, int memory_mb)
{
    int rc = 0;
    int pipefd[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    memset(out, 0, sizeof(*out));
    out->pid = -1;
    out->pidfd = out->log_fd = out->cg_fd = out->kill_fd = -1;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    if (cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);
    pid_t pid;
    int err = 0;
    if (use_zygote(argv, envp) && zygote_spawn(envp, cwd, pipefd[1], &pid) == 0)
        out->zygote = true;
    else
        err = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    if (err) {
        close(pipefd[0]);
        return -err;
    }
    out->pid = pid;
    out->log_fd = pipefd[0];
    fcntl(out->log_fd, F_SETFL, O_NONBLOCK);
    out->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (out->pidfd < 0) {
        rc = -errno;
        subprocess_stop(out);
        return rc;
    }
    cgroup_create(out, name, memory_mb);
    char val[32];
    snprintf(val, sizeof(val), "%d", (int)pid);
    if (out->cg_fd >= 0 && write_at(out->cg_fd, "cgroup.procs", val) < 0) {
        close(out->cg_fd);
        out->cg_fd = -1;
        unlinkat(g_cg_root, out->cgroup, AT_REMOVEDIR);
    }
    if (out->kill_fd >= 0 && write_at(out->kill_fd, "cgroup.procs", val) < 0) {
        close(out->kill_fd);
        out->kill_fd = -1;
        unlinkat(g_kill_root, out->cgroup, AT_REMOVEDIR);
    }
    if (out->cg_fd < 0 && out->kill_fd < 0) {
        free(out->cgroup);
        out->cgroup = NULL;
    }
    return 0;
}

void subprocess_signal(struct subprocess *sp, int sig)
{
    if (sp->pid > 0)
        kill(-sp->pid, sig);
}

void subprocess_kill(struct subprocess *sp)
{
    /* The pidfd names exactly our child even if its pid was reused. */
    if (sp->pid > 0 && sp->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, sp->pidfd, SIGKILL, NULL, 0);
    if (sp->pid > 0)
        kill(-sp->pid, SIGKILL);
    /* Its descendants, even those that left the session (setsid). */
    if (sp->kill_fd >= 0)
        cgroup_kill_all(sp->kill_fd, true);
    else if (sp->cg_fd >= 0)
        cgroup_kill_all(sp->cg_fd, g_cg_v2);
}

bool subprocess_oom_killed(const struct subprocess *sp)
{
    if (sp->cg_fd < 0)
        return false;
    /* v2: memory.events; v1: memory.oom_control ("oom_kill N", Linux 4.13+). */
    int fd = openat(sp->cg_fd, g_cg_v2 ? "memory.events" : "memory.oom_control", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[1024];
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0)
        return false;
    buf[r] = 0;
    for (char *p = buf; (p = strstr(p, "oom_kill ")); p++)
        if ((p == buf || p[-1] == '\n') && atol(p + 9) > 0)
            return true;
    return false;
}

int subprocess_reap(struct subprocess *sp)
{
    if (sp->pid <= 0)
        return -1;
    int status;
    struct rusage ru;
    pid_t r = wait4(sp->pid, &status, WNOHANG, &ru);
    if (r == sp->pid) {
        sp->pid = -sp->pid; /* remember the group id for the final kill */
        /* Its VmHWM is gone with it: a REPORT made after (a runtime that
         * died in init) still says how much memory it used. */
        sp->exit_hwm_mb = (int)((ru.ru_maxrss + 1023) / 1024);
        return status;
    }
    return -1;
}

int subprocess_stop(struct subprocess *sp)
{
    int status = -1;
    subprocess_kill(sp);
    if (sp->pid > 0) {
        while (waitpid(sp->pid, &status, 0) < 0 && errno == EINTR)
            ;
    } else if (sp->pid < -1) {
        kill(sp->pid, SIGKILL); /* leftover children of the group */
    }
    sp->pid = -1;
    if (sp->pidfd >= 0)
        close(sp->pidfd);
    if (sp->log_fd >= 0)
        close(sp->log_fd);
    sp->pidfd = sp->log_fd = -1;
    cgroup_remove(sp);
    return status;
}

static long read_long(int dirfd, const char *name)
{
    char buf[64];
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0)
        return -1;
    buf[r] = 0;
    return atol(buf);
}

int subprocess_peak_mb(const struct subprocess *sp)
{
    /* The process joins its cgroup just after it started, so the cgroup
     * peak can miss the first pages: report the larger of it and VmHWM. */
    int cg = 0;
    if (sp->cg_fd >= 0) {
        long v = read_long(sp->cg_fd, g_cg_v2 ? "memory.peak" : "memory.max_usage_in_bytes");
        if (v > 0)
            cg = (int)((v + (1 << 20) - 1) >> 20);
    }
    if (sp->pid <= 0)
        return sp->exit_hwm_mb > cg ? sp->exit_hwm_mb : cg; /* reaped */
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)sp->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cg;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0)
        return cg;
    buf[r] = 0;
    const char *p = strstr(buf, "VmHWM:");
    int hwm = p ? (int)((atol(p + 6) + 1023) / 1024) : 0;
    return hwm > cg ? hwm : cg;
}
