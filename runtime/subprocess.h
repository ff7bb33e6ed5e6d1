/* subprocess: execution environments as host processes.
 *
 * DESIGN: a runtime is started with posix_spawn (vfork speed, no fork of
 * lambdad's address space) in a new session (so the whole process group can
 * be killed), cwd = the extracted code, stdout and stderr on one pipe that
 * the executor reads as the function's log, and a pidfd the executor polls
 * for exit. Which program runs follows the runtime: python* -> the bundled
 * Python bootstrap on the host's python3, nodejs* -> the bundled Node
 * bootstrap on the host's node, provided* -> the function's own
 * `bootstrap` (task root, then the layers). MemorySize is enforced with a
 * memory cgroup per environment where the host lets lambdad create one
 * (cgroup v2 memory.max, or v1 memory.limit_in_bytes, both with swap off);
 * elsewhere it is reported but not enforced. Python environments can
 * instead be forked from a pre-initialised interpreter (runtime/zygote.h);
 * the resulting process is lambdad's child in its own session all the same.
 *
 * Thread rules: subprocess_start/stop/peak_mb run on the owning executor
 * thread; subprocess_init once at start-up. */
#ifndef LAMBDAD_RUNTIME_SUBPROCESS_H
#define LAMBDAD_RUNTIME_SUBPROCESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "runtime/fnspec.h"

struct subprocess {
    pid_t pid;
    int pidfd;      /* readable when the process exits */
    int log_fd;     /* read end of the stdout+stderr pipe, non-blocking */
    char *cgroup;   /* memory cgroup name (under lambdad's), or NULL when not enforced */
    int cg_fd;      /* that cgroup's directory, or -1 */
    int kill_fd;    /* the env's v2 tracking cgroup (hybrid hosts), or -1 */
    bool zygote;    /* forked from the Python zygote (else posix_spawn) */
    int exit_hwm_mb; /* peak RSS of the reaped process (wait4's ru_maxrss), 0 before */
};

/* Detects cgroup support and remembers which interpreters to use
 * (python: "python3", node: "node" by default, looked up in PATH). The
 * python launcher (maybe a pyenv shim) is resolved to the real interpreter
 * on a background thread; the first python environment waits for it.
 * Returns a static description of how memory is enforced. */
const char *subprocess_init(const char *python, const char *node);

/* Turns the Python zygote (runtime/zygote.h) on or off; call after
 * subprocess_init (while the interpreter is still being resolved, the
 * zygote starts as soon as it is). When on, python* environments are
 * forked from it and fall back to posix_spawn whenever it is unavailable
 * or fails. */
void subprocess_set_zygote(bool on, const char *bootstrap_dir);

/* Stops the zygote; call once at shut-down. */
void subprocess_shutdown(void);

/* The AWS_LAMBDA_EXEC_WRAPPER value of a managed-runtime function, or NULL
 * (custom runtimes ignore it, as in AWS). */
const char *subprocess_exec_wrapper(const struct fn_spec *spec);

/* Builds argv for spec: the bundled bootstrap or the function's own
 * bootstrap, behind AWS_LAMBDA_EXEC_WRAPPER when set (its /opt and
 * /var/task prefixes mapped to opt_dir and the code dir; such an argv never
 * uses the zygote). opt_dir (merged layers) may be NULL. Returns a malloc'd
 * NULL-terminated argv (free with subprocess_free_argv), or NULL with *err
 * set to a message naming the problem (unsupported runtime, no bootstrap). */
char **subprocess_argv(const struct fn_spec *spec, const char *bootstrap_dir, const char *opt_dir,
                       const char **err);
void subprocess_free_argv(char **argv);

/* Starts argv with envp in cwd. name labels the cgroup. Fills *out.
 * Returns 0 or -errno. */
int subprocess_start(struct subprocess *out, char **argv, char **envp, const char *cwd,
                     const char *name, int memory_mb);

/* Kills everything (subprocess_kill), reaps the child, closes the fds and
 * removes the cgroups (waiting for them to empty). Blocking: call it from
 * a background thread (runtime/bio.h). Returns the wait status (or -1). */
int subprocess_stop(struct subprocess *sp);

/* Sends sig to the process group without reaping. */
void subprocess_signal(struct subprocess *sp, int sig);

/* SIGKILLs the process (through its pidfd), its process group and every
 * process in its cgroup, including descendants that called setsid().
 * Never blocks. */
void subprocess_kill(struct subprocess *sp);

/* Whether the kernel's OOM killer killed a process of the environment's
 * memory cgroup (false when memory is not enforced). */
bool subprocess_oom_killed(const struct subprocess *sp);

/* Reaps the child if it exited; returns its wait status or -1 if running. */
int subprocess_reap(struct subprocess *sp);

/* Peak memory of the environment in MB: the larger of the cgroup peak and
 * the process's VmHWM (after it was reaped: its ru_maxrss). */
int subprocess_peak_mb(const struct subprocess *sp);

#endif
