/* TEMPORARY weak stand-ins until runtime/container.c lands (removed then). */
#include <errno.h>
#include <stdio.h>
#include "runtime/container.h"
__attribute__((weak)) int container_init(const struct container_config *cfg, char *err)
{
    (void)cfg;
    snprintf(err, 512, "docker executor not built yet");
    return -ENOTSUP;
}
__attribute__((weak)) bool container_available(void) { return false; }
__attribute__((weak)) void container_shutdown(void) {}
__attribute__((weak)) const char *container_bind_ip(void) { return "127.0.0.1"; }
__attribute__((weak)) const char *container_host_for_container(void) { return "127.0.0.1"; }
__attribute__((weak)) int container_start(struct container **out, const struct container_start_opts *o)
{
    (void)out;
    (void)o;
    return -ENOTSUP;
}
__attribute__((weak)) void container_kill(struct container *c) { (void)c; }
__attribute__((weak)) const char *container_id(const struct container *c) { (void)c; return ""; }
__attribute__((weak)) void container_release(struct container *c) { (void)c; }
