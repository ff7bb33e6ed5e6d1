/* evloop: the one type every epoll-registered object starts with.
 *
 * DESIGN: executor threads run plain epoll loops; epoll_event.data.ptr
 * always points at a struct ev_handler embedded (as first member or via
 * container_of) in the object that owns the fd. The loop calls
 * h->fn(h, events). Handlers run on the owning executor thread only. */
#ifndef LAMBDAD_RUNTIME_EVLOOP_H
#define LAMBDAD_RUNTIME_EVLOOP_H

#include <stddef.h>
#include <stdint.h>

struct ev_handler {
    void (*fn)(struct ev_handler *h, uint32_t events);
};

#define EV_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
