/* zygote: Python execution environments forked from a pre-initialised
 * interpreter instead of started from scratch.
 *
 * DESIGN: one zygote process per lambdad runs
 * `<python> <bootstrap_dir>/python/zygote.py` (site, the bootstrap module
 * and common stdlib modules already imported) and talks to lambdad over a
 * SOCK_SEQPACKET socketpair: a request is one datagram "<cwd>\0<K=V>\0..."
 * carrying the log pipe's write end (SCM_RIGHTS); the reply is the pid of
 * the new environment process B (or "-errno"). The zygote forks A, A forks B
 * and exits, B calls setsid() (so kill(-B) reaches its group) and runs the
 * bootstrap. While a request is in flight lambdad is a child subreaper
 * (PR_SET_CHILD_SUBREAPER), so B re-parents to lambdad when A exits and the
 * executor's waitpid/pidfd/kill-group logic works unchanged. The subreaper
 * flag is switched off again after the reply so that orphans of the
 * functions (their own children) still go to init, which reaps them.
 *
 * The zygote is started by zygote_enable (not waited for) and restarted
 * lazily if it dies; after ZYGOTE_MAX_FAILURES failed starts or requests in
 * a row (a successful spawn resets the count) it is given up for the rest of the run and callers fall back to posix_spawn.
 * Only environments whose interpreter settings match the zygote's are served
 * (PYTHON* variables other than PYTHONPATH, locale variables; see
 * zygote_accepts).
 *
 * Thread rules: zygote_enable/zygote_disable from the start-up/shut-down
 * thread; zygote_accepts and zygote_spawn from any executor thread (requests
 * are serialised by an internal mutex that no civetweb thread takes). */
#ifndef LAMBDAD_RUNTIME_ZYGOTE_H
#define LAMBDAD_RUNTIME_ZYGOTE_H

#include <stdbool.h>
#include <sys/types.h>

#define ZYGOTE_MAX_FAILURES 3

/* Remembers the interpreter (an absolute path) and the zygote script
 * (<bootstrap_dir>/python/zygote.py) and starts the zygote in the
 * background. Returns 0 or -errno (the zygote is then simply not used). */
int zygote_enable(const char *python, const char *bootstrap_dir);

/* Stops the zygote (EOF on its socket, SIGKILL if it lingers) and disables
 * further use. Environments already forked are not affected. */
void zygote_disable(void);

/* Whether the zygote is enabled and not given up. */
bool zygote_available(void);

/* The zygote process's pid, or -1 when none runs (diagnostics, tests). */
pid_t zygote_pid(void);

/* Whether an environment with envp can be forked from the zygote: the
 * variables the interpreter reads at start-up must match the zygote's
 * (PYTHONUNBUFFERED=1, PYTHONDONTWRITEBYTECODE=1, LANG=en_US.UTF-8, no
 * LC_* and no other PYTHON* than PYTHONPATH). */
bool zygote_accepts(char **envp);

/* Forks an environment running the Python bootstrap with envp in cwd, its
 * stdout and stderr on log_fd (not consumed: the caller closes it). On
 * success *pid is a process in its own session whose parent is lambdad.
 * Returns 0, or -errno when the zygote is unavailable or failed (the caller
 * then starts the environment the ordinary way). */
int zygote_spawn(char **envp, const char *cwd, int log_fd, pid_t *pid);

#endif
