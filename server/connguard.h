/* connguard: keeps civetweb's connection threads from running out.
 *
 * DESIGN: civetweb 1.15 serves each open connection on one of its fixed
 * threads from accept to close, so sockets that connect and send nothing,
 * trickle their headers, or sit idle between keep-alive requests hold a
 * thread each; once they hold them all, every new request (health
 * included) waits behind them. connguard tracks what every worker thread
 * is doing (a slot per thread: free, waiting for a request, in a request)
 * from civetweb's callbacks, and a watchdog thread, when fewer than a
 * reserve of threads are free, closes the connections that have been
 * waiting for a request the longest (idle at least CONNGUARD_MIN_IDLE_MS;
 * never one inside a request): it finds the socket by its peer address
 * among the process's descriptors (only sockets whose local port is the
 * listening port) and shuts it down, so civetweb's thread sees EOF, closes
 * the connection and takes the next one. The slot's mutex is held across
 * the check and the shutdown and taken by civetweb's close callback, so the
 * descriptor cannot be closed and reused in between.
 *
 * Thread rules: connguard_start/stop on the main thread; the connection
 * hooks on civetweb worker threads (each touches only its own slot). */
#ifndef LAMBDAD_SERVER_CONNGUARD_H
#define LAMBDAD_SERVER_CONNGUARD_H

struct mg_connection;

#define CONNGUARD_MIN_IDLE_MS 200

/* Sets up one slot per worker thread and starts the watchdog for the
 * listener on port. Returns 0 or -errno. */
int connguard_start(int threads, int port);

/* Stops the watchdog and frees the slots (after civetweb stopped: its
 * threads use them until then). */
void connguard_stop(void);

/* civetweb hooks, called on the worker thread. */
void connguard_thread_init(void);                           /* init_thread, worker type */
void connguard_conn_open(const struct mg_connection *conn); /* init_connection */
void connguard_request_begin(const struct mg_connection *conn); /* begin_request */
void connguard_request_end(void);                           /* end_request */
void connguard_conn_close(void);                            /* connection_close */

/* Connections closed by the watchdog so far (for /_lambdad/health). */
unsigned long connguard_shed_count(void);

#endif
