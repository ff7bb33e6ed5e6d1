/* connguard: sheds idle connections when civetweb's threads run out (see
 * connguard.h for the design). */
#include "server/connguard.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/log.h"

enum { SLOT_FREE = 0, SLOT_WAITING, SLOT_BUSY };

/* One per civetweb worker thread. */
struct slot {
    pthread_mutex_t mu;
    atomic_int state;
    struct sockaddr_storage peer; /* client of the request in progress (mu) */
};

/* What the watchdog remembers of a descriptor it saw idle. */
struct seen {
    struct sockaddr_storage peer;
    uint64_t since_ms;
    unsigned scan;
};

static struct slot *g_slots;
static int g_nslots;
static atomic_int g_next_slot;
static int g_port;
static pthread_t g_watchdog;
static bool g_running;
static atomic_bool g_stop;
static atomic_ulong g_shed;
static _Thread_local struct slot *t_slot;

#define WATCH_INTERVAL_MS 100

static uint64_t now_ms(void)
{
    return (uint64_t)clock_mono_ns() / 1000000u;
}

void connguard_thread_init(void)
{
    int i = atomic_fetch_add(&g_next_slot, 1);
    t_slot = g_slots && i < g_nslots ? &g_slots[i] : NULL;
}

/* The client address civetweb recorded for the request, as a sockaddr. */
static void peer_of(const struct mg_connection *conn, struct sockaddr_storage *out)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    memset(out, 0, sizeof(*out));
    if (!ri)
        return;
    if (strchr(ri->remote_addr, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)ri->remote_port);
        if (inet_pton(AF_INET6, ri->remote_addr, &a->sin6_addr) != 1)
            out->ss_family = AF_UNSPEC;
        return;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)ri->remote_port);
    if (inet_pton(AF_INET, ri->remote_addr, &a->sin_addr) != 1)
        out->ss_family = AF_UNSPEC;
}

void connguard_conn_open(const struct mg_connection *conn)
{
    (void)conn; /* its request info is not filled yet */
    if (t_slot)
        atomic_store(&t_slot->state, SLOT_WAITING);
}

void connguard_request_begin(const struct mg_connection *conn)
{
    struct slot *s = t_slot;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    peer_of(conn, &s->peer);
    atomic_store(&s->state, SLOT_BUSY);
    pthread_mutex_unlock(&s->mu);
}

void connguard_request_end(void)
{
    if (t_slot)
        atomic_store(&t_slot->state, SLOT_WAITING);
}

void connguard_conn_close(void)
{
    if (t_slot)
        atomic_store(&t_slot->state, SLOT_FREE);
}

unsigned long connguard_shed_count(void)
{
    return atomic_load(&g_shed);
}

/* Total order on peers (family, port, address) for the busy list. */
static int peer_cmp(const void *pa, const void *pb)
{
    const struct sockaddr_storage *a = pa, *b = pb;
    if (a->ss_family != b->ss_family)
        return a->ss_family < b->ss_family ? -1 : 1;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = pa, *y = pb;
        if (x->sin_port != y->sin_port)
            return x->sin_port < y->sin_port ? -1 : 1;
        return memcmp(&x->sin_addr, &y->sin_addr, sizeof(x->sin_addr));
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = pa, *y = pb;
        if (x->sin6_port != y->sin6_port)
            return x->sin6_port < y->sin6_port ? -1 : 1;
        return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
    }
    return 0;
}

/* Whether fd is a connection accepted on our listening port whose client
 * has sent nothing we have not read; fills peer. */
static bool idle_connection(int fd, struct sockaddr_storage *peer)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
        return false;
    int port = local.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&local)->sin_port)
               : local.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&local)->sin6_port)
                                             : -1;
    int pending = 0;
    memset(peer, 0, sizeof(*peer));
    len = sizeof(*peer);
    return port == g_port && getpeername(fd, (struct sockaddr *)peer, &len) == 0 &&
           ioctl(fd, FIONREAD, &pending) == 0 && pending == 0;
}

/* One pass: every connection on our port that is not inside a request and
 * has had nothing unread for CONNGUARD_MIN_IDLE_MS (seen idle by an earlier
 * pass) is shut down. Queued connections whose request is waiting to be
 * read have unread bytes and are kept. */
static void shed(struct seen *seen, size_t nseen, unsigned scan, struct sockaddr_storage *busy, size_t nbusy)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int dfd = dirfd(d);
    uint64_t t = now_ms();
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        struct sockaddr_storage peer;
        if (*end || end == de->d_name || fd == dfd || fd < 0 || (size_t)fd >= nseen ||
            !idle_connection((int)fd, &peer) || bsearch(&peer, busy, nbusy, sizeof(*busy), peer_cmp))
            continue;
        struct seen *e = &seen[fd];
        if (e->scan + 1 < scan || peer_cmp(&e->peer, &peer) != 0) {
            /* New to us (or another connection on a reused number). */
            e->peer = peer;
            e->since_ms = t;
        } else if (t - e->since_ms >= CONNGUARD_MIN_IDLE_MS) {
            /* The same client on the same port: a TCP connection is its
             * 4-tuple, so this cannot be another connection. */
            shutdown((int)fd, SHUT_RDWR);
            atomic_fetch_add(&g_shed, 1);
        }
        e->scan = scan;
    }
    closedir(d);
}

static void *watchdog(void *arg)
{
    (void)arg;
    struct rlimit rl;
    size_t nseen = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (1u << 20)
                       ? (size_t)rl.rlim_cur
                       : (1u << 16);
    struct seen *seen = NULL;
    struct sockaddr_storage *busy = calloc((size_t)g_nslots, sizeof(*busy));
    int reserve = g_nslots / 32 > 1 ? g_nslots / 32 : 1;
    unsigned scan = 1;
    bool warned = false;
    while (busy && !atomic_load(&g_stop)) {
        struct timespec tick = {0, WATCH_INTERVAL_MS * 1000000L};
        nanosleep(&tick, NULL);
        int free_slots = 0;
        for (int i = 0; i < g_nslots; i++)
            free_slots += atomic_load(&g_slots[i].state) == SLOT_FREE;
        if (free_slots >= reserve)
            continue;
        if (!seen && !(seen = calloc(nseen, sizeof(*seen))))
            continue;
        size_t nbusy = 0;
        bool unknown = false;
        for (int i = 0; i < g_nslots; i++) {
            struct slot *s = &g_slots[i];
            pthread_mutex_lock(&s->mu);
            if (atomic_load(&s->state) == SLOT_BUSY) {
                busy[nbusy++] = s->peer;
                unknown |= s->peer.ss_family != AF_INET && s->peer.ss_family != AF_INET6;
            }
            pthread_mutex_unlock(&s->mu);
        }
        if (unknown)
            continue; /* a request whose socket we could not tell apart: shed nothing */
        qsort(busy, nbusy, sizeof(*busy), peer_cmp);
        if (!warned) {
            LOG_WARN("all %d HTTP threads are taken: closing connections idle for %d ms or more "
                     "(raise --http-threads if this is legitimate load)", g_nslots, CONNGUARD_MIN_IDLE_MS);
            warned = true;
        }
        shed(seen, nseen, ++scan, busy, nbusy);
    }
    free(seen);
    free(busy);
    return NULL;
}

int connguard_start(int threads, int port)
{
    g_slots = calloc((size_t)threads, sizeof(*g_slots));
    if (!g_slots)
        return -ENOMEM;
    for (int i = 0; i < threads; i++)
        pthread_mutex_init(&g_slots[i].mu, NULL);
    g_nslots = threads;
    g_port = port;
    atomic_store(&g_stop, false);
    int rc = pthread_create(&g_watchdog, NULL, watchdog, NULL);
    if (rc)
        return -rc;
    pthread_setname_np(g_watchdog, "http-guard");
    g_running = true;
    return 0;
}

void connguard_stop(void)
{
    if (!g_running)
        return;
    atomic_store(&g_stop, true);
    pthread_join(g_watchdog, NULL);
    g_running = false;
    for (int i = 0; i < g_nslots; i++)
        pthread_mutex_destroy(&g_slots[i].mu);
    free(g_slots);
    g_slots = NULL;
    g_nslots = 0;
    atomic_store(&g_next_slot, 0);
}
