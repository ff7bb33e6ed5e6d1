#!/usr/bin/env python3
"""check-include-cycles: the engine's modules depend on each other one way.

    tools/check-include-cycles.py [ROOT]      (ROOT: the source tree, default ..)
    tools/check-include-cycles.py --self-test (the checker on made-up trees)

Registered as the ctests `tools/include_cycles` and
`tools/include_cycles_selftest`; exits 1 and prints every offence, 0 when
the shape holds.

DESIGN: a module is one stem of server/, pool/ or runtime/ (`server/registry`
= registry.c + registry.h). Module A depends on module B when a file of A
has `#include "B.h"` (the project's own includes, written from the root as
STYLE.md asks). Two rules:

  1. Folders: server -> pool -> runtime, never back (DESIGN.md).
  2. No cycle among modules: every strongly connected component of the
     dependency graph with more than one module must lie inside one of the
     GROUPS below, each a unit that is one concern split into files on
     purpose. Anything else -- layers <-> registry, pool <-> executor, or a
     cycle through a group and a module outside it -- is reported with one
     concrete cycle.

A group is a list of fnmatch patterns; keep them narrow: a module that
matches a group can join a cycle inside it unnoticed.
"""
import fnmatch
import os
import re
import sys

FOLDERS = ("server", "pool", "runtime")  # in dependency order: each may use those after it

GROUPS = {
    # http.c routes to the handlers; the handlers answer through http.h.
    # logs_filter uses http.h's JSON depth check.
    "HTTP front": ["server/http", "server/admin", "server/api_*", "server/services", "server/svc_*",
                   "server/logs_filter"],
    # One executor thread's parts around pool/internal.h (see its DESIGN).
    # pool/pool (the public face) is not one of them.
    "executor": ["pool/internal", "pool/executor", "pool/cap", "pool/env", "pool/fnpool", "pool/report",
                 "pool/timers"],
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"((%s)/[A-Za-z0-9_]+)\.h"' % "|".join(FOLDERS))


def read_graph(root):
    graph = {}
    for folder in FOLDERS:
        for f in sorted(os.listdir(os.path.join(root, folder))):
            stem, ext = os.path.splitext(f)
            if ext not in (".c", ".h"):
                continue
            mod = folder + "/" + stem
            deps = graph.setdefault(mod, set())
            with open(os.path.join(root, folder, f), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    m = INCLUDE.match(line)
                    if m and m.group(1) != mod:
                        deps.add(m.group(1))
                        graph.setdefault(m.group(1), set())
    return graph


def components(graph):
    """Strongly connected components (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def one_cycle(graph, comp, first):
    """A shortest cycle through first, inside comp."""
    members = set(comp)
    prev, frontier = {first: None}, [first]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == first:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return path[::-1] + [first]  # path: v ... first
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def outsiders(comp):
    """(group, the modules of comp outside it) for the group covering most of comp."""
    best = (None, comp)
    for name, patterns in GROUPS.items():
        out = [m for m in comp if not any(fnmatch.fnmatchcase(m, p) for p in patterns)]
        if len(out) < len(best[1]):
            best = (name, out)
    return best


def check(root):
    graph = read_graph(root)
    bad = 0
    for mod, deps in sorted(graph.items()):
        rank = FOLDERS.index(mod.split("/")[0])
        for d in sorted(deps):
            if FOLDERS.index(d.split("/")[0]) < rank:
                print("folder rule broken: %s includes %s.h (server -> pool -> runtime only)" % (mod, d))
                bad += 1
    for comp in components(graph):
        if len(comp) < 2:
            continue
        group, out = outsiders(comp)
        if not out:
            print("ok: %d modules of the %s group depend on each other" % (len(comp), group))
            continue
        for mod in out:
            print("include cycle: %s" % " -> ".join(one_cycle(graph, comp, mod)))
        print("  (%s in a cycle outside any group%s)" % (" ".join(out), ", with the %s group" % group if group else ""))
        bad += 1
    edges = sum(len(d) for d in graph.values())
    print("%d modules, %d dependencies, %d offence(s)" % (len(graph), edges, bad))
    return 1 if bad else 0


def self_test():
    """The checker must pass a clean tree and fail each kind of offence."""
    import shutil
    import tempfile

    def tree(files):
        root = tempfile.mkdtemp(prefix="include-cycles-")
        for folder in FOLDERS:
            os.makedirs(os.path.join(root, folder))
        for path, includes in files.items():
            with open(os.path.join(root, path), "w", encoding="utf-8") as fh:
                fh.write("".join('#include "%s.h"\n' % i for i in includes))
        return root

    base = {"server/registry.c": ["server/registry", "server/coderefs", "server/layers"],
            "server/layers.c": ["server/layers", "server/coderefs"], "server/coderefs.h": [],
            "server/http.c": ["server/api_layers"], "server/api_layers.c": ["server/http", "server/layers"],
            "pool/pool.c": ["pool/executor"], "pool/executor.h": ["pool/invocation"],
            "pool/env.c": ["pool/internal"], "pool/internal.h": ["pool/executor", "runtime/log"],
            "pool/executor.c": ["pool/env"]}
    cases = [("clean", {}, 0),
             ("layers <-> registry", {"server/layers.h": ["server/registry"]}, 1),
             ("pool <-> executor", {"pool/executor.h": ["pool/pool"]}, 1),
             ("into a group and back", {"server/layers.h": ["server/http"]}, 1),
             ("folder rule", {"runtime/log.c": ["pool/pool"]}, 1)]
    failed = 0
    for name, extra, want in cases:
        files = dict(base)
        files.update(extra)
        print("--- %s" % name)
        root = tree(files)
        got = check(root)
        shutil.rmtree(root)
        if got != want:
            print("self-test FAILED: %s: exit %d, want %d" % (name, got, want))
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    sys.exit(check(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")))
