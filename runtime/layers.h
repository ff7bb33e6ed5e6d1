/* layers: merging a function's layers into one /opt tree.
 *
 * DESIGN: Lambda extracts layers into /opt in attach order, later layers
 * overwriting files of earlier ones. The code store already holds every
 * layer extracted; this builds the merged tree once per layer combination
 * with hard links (a copy only across file systems), in a temporary
 * directory renamed into place, so concurrent builders and crashes leave
 * either nothing or a complete tree. The result is read-only by contract
 * (mounted :ro in containers).
 *
 * Thread rules: any thread; does disk I/O (never inside an RCU read-side
 * section). */
#ifndef LAMBDAD_RUNTIME_LAYERS_H
#define LAMBDAD_RUNTIME_LAYERS_H

#include <stddef.h>

/* Merges dirs[0..n) (attach order) into out_dir unless it already exists.
 * Returns 0 or -errno. */
int layers_merge(char *const *dirs, size_t n, const char *out_dir);

#endif
