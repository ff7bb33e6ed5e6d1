/* Unit tests for runtime/zygote through runtime/subprocess: a python
 * environment forked from the zygote gets its own environment variables,
 * cwd and log pipe, is lambdad's child (waitpid gives its exit status 7),
 * leads its own process group (kill(-pid) reaches it), and a killed zygote
 * is restarted; a zygote that cannot start makes subprocess_start fall back
 * to posix_spawn. The real zygote.py is used with a stand-in
 * lambdad_bootstrap.py (no Runtime API needed). Skipped (77) without an
 * absolute python3. */
#include "runtime/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/fnspec.h"
#include "runtime/subprocess.h"
#include "testing.h"

/* Stand-in client: prints what the environment looks like, then exits
 * 7, or sleeps when SLEEP is set (to be killed). */
static const char fake_bootstrap[] =
    "import os, sys, time\n"
    "def _configure_from_env(env):\n"
    "    pass\n"
    "def main():\n"
    "    print('MARK=%s cwd=%s path0=%s' % (os.environ.get('MARK'), os.getcwd(),\n"
    "          sys.path[1] if len(sys.path) > 1 else ''), flush=True)\n"
    "    if os.environ.get('SLEEP'):\n"
    "        time.sleep(30)\n"
    "    sys.exit(7)\n";

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "r");
    if (!in)
        return -1;
    FILE *out = fopen(to, "w");
    char buf[8192];
    size_t n;
    while (out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    return out ? fclose(out) : -1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Waits (bounded) for the process to exit; returns its wait status or -1.
 * Reads the log pipe meanwhile into log. */
static int wait_exit(struct subprocess *sp, char *log, size_t cap, int timeout_ms)
{
    size_t len = strlen(log);
    double until = now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p[2] = {{.fd = sp->pidfd, .events = POLLIN}, {.fd = sp->log_fd, .events = POLLIN}};
        int left = (int)(until - now_ms());
        if (left <= 0)
            return -1;
        poll(p, sp->log_fd >= 0 ? 2 : 1, left);
        ssize_t r;
        while (sp->log_fd >= 0 && len + 1 < cap && (r = read(sp->log_fd, log + len, cap - 1 - len)) > 0)
            len += (size_t)r;
        log[len] = 0;
        if (p[0].revents) {
            int st = subprocess_reap(sp);
            if (st >= 0)
                return st;
        }
    }
}

static char **make_env(const char *mark, bool sleep)
{
    static char mark_kv[128];
    snprintf(mark_kv, sizeof(mark_kv), "MARK=%s", mark);
    static char *env[8];
    int n = 0;
    env[n++] = "PYTHONUNBUFFERED=1";
    env[n++] = "PYTHONDONTWRITEBYTECODE=1";
    env[n++] = "LANG=en_US.UTF-8";
    env[n++] = "PYTHONPATH=/pp-entry";
    env[n++] = mark_kv;
    if (sleep)
        env[n++] = "SLEEP=1";
    env[n] = NULL;
    return env;
}

int main(void)
{
    char root[] = "/tmp/lambdad-zygote-test-XXXXXX";
    if (!mkdtemp(root))
        return TEST_SKIP();
    char dir[512], path[600], code[512];
    snprintf(dir, sizeof(dir), "%s/python", root);
    snprintf(code, sizeof(code), "%s/code", root);
    mkdir(dir, 0755);
    mkdir(code, 0755);
    snprintf(path, sizeof(path), "%s/lambdad_bootstrap.py", dir);
    CHECK(write_text(path, fake_bootstrap) == 0);
    snprintf(path, sizeof(path), "%s/bootstrap.py", dir);
    CHECK(write_text(path, "import lambdad_bootstrap\nlambdad_bootstrap.main()\n") == 0);
    snprintf(path, sizeof(path), "%s/zygote.py", dir);
    CHECK(copy_file(LAMBDAD_SOURCE_DIR "/runtime/bootstrap/python/zygote.py", path) == 0);

    subprocess_init("python3", "node");
    struct fn_spec spec = {.runtime = "python3.12", .code_dir = code};
    const char *err = NULL;
    char **argv = subprocess_argv(&spec, root, NULL, &err);
    if (!argv || argv[0][0] != '/') {
        fprintf(stderr, "no absolute python3: skipped\n");
        subprocess_free_argv(argv);
        return TEST_SKIP();
    }
    subprocess_set_zygote(true, root);
    CHECK(zygote_available());

    /* 1. Env, cwd, log pipe, exit status through the subreaper. */
    struct subprocess sp;
    char log[4096] = "";
    CHECK(subprocess_start(&sp, argv, make_env("first", false), code, "zt", 0) == 0);
    CHECK(sp.zygote);
    CHECK(getpgid(sp.pid) == sp.pid);
    int st = wait_exit(&sp, log, sizeof(log), 10000);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    char want[1200];
    snprintf(want, sizeof(want), "MARK=first cwd=%s path0=/pp-entry\n", code);
    CHECK_STR(log, want);
    subprocess_stop(&sp);

    /* 2. kill(-pid) reaches the environment. */
    log[0] = 0;
    CHECK(subprocess_start(&sp, argv, make_env("second", true), code, "zt", 0) == 0);
    CHECK(sp.zygote);
    double until = now_ms() + 10000;
    while (!strstr(log, "MARK=second") && now_ms() < until) {
        usleep(5000);
        ssize_t r = read(sp.log_fd, log + strlen(log), sizeof(log) - 1 - strlen(log));
        if (r > 0)
            log[strlen(log) + (size_t)r] = 0;
    }
    CHECK(strstr(log, "MARK=second") != NULL);
    subprocess_signal(&sp, SIGKILL);
    st = wait_exit(&sp, log, sizeof(log), 5000);
    CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    subprocess_stop(&sp);

    /* 3. A killed zygote is restarted for the next environment. */
    pid_t z = zygote_pid();
    CHECK(z > 0);
    CHECK(kill(z, SIGKILL) == 0);
    usleep(20000);
    log[0] = 0;
    CHECK(subprocess_start(&sp, argv, make_env("third", false), code, "zt", 0) == 0);
    CHECK(sp.zygote);
    CHECK(zygote_pid() > 0 && zygote_pid() != z);
    st = wait_exit(&sp, log, sizeof(log), 10000);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    CHECK(strstr(log, "MARK=third") != NULL);
    subprocess_stop(&sp);

    /* 4. PYTHON* variables the zygote cannot apply: plain spawn. */
    char **env = make_env("fourth", false);
    env[1] = "PYTHONDONTWRITEBYTECODE=";
    log[0] = 0;
    CHECK(subprocess_start(&sp, argv, env, code, "zt", 0) == 0);
    CHECK(!sp.zygote);
    st = wait_exit(&sp, log, sizeof(log), 10000);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    CHECK(strstr(log, "MARK=fourth") != NULL);
    subprocess_stop(&sp);

    /* 5. A zygote that dies at start-up: every start falls back to
     * posix_spawn, and the zygote is given up. */
    subprocess_set_zygote(false, root);
    snprintf(path, sizeof(path), "%s/zygote.py", dir);
    CHECK(write_text(path, "import os\nos._exit(1)\n") == 0);
    subprocess_set_zygote(true, root);
    for (int i = 0; i < ZYGOTE_MAX_FAILURES; i++) {
        log[0] = 0;
        CHECK(subprocess_start(&sp, argv, make_env("fallback", false), code, "zt", 0) == 0);
        CHECK(!sp.zygote);
        st = wait_exit(&sp, log, sizeof(log), 10000);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 7);
        CHECK(strstr(log, "MARK=fallback") != NULL);
        subprocess_stop(&sp);
    }
    CHECK(!zygote_available());

    subprocess_shutdown();
    subprocess_free_argv(argv);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return TEST_DONE();
}
