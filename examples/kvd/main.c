/* main.c: kvd's threads and connections. The main thread accepts connections and hands each to
 * a worker, round robin; each worker serves its connections with epoll (the memcached design).
 *
 * What makes it updatable (see docs/guide.md):
 *   - every thread loops through an update point: "accept" in main, "worker" in each worker,
 *     "expirer" in the expiry thread (v4 on); none of them holds a lock there;
 *   - blocking calls are interrupted for an update: accept() returns EINTR (Molt's wake signal),
 *     and the workers' epoll sets hold molt_wake_fd();
 *   - initialisation runs only on a first start, not when a thread restarts in a new version
 *     (molt_is_updating());
 *   - all state is reachable from globals (the store, the connection table, the workers), so
 *     Molt carries it over and converts it; epoll is given fds, never pointers. */
#define _GNU_SOURCE   /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kvd.h"

struct conn *connections[max_fds];
struct worker workers[max_workers];
int worker_count;
int listen_port;
uint64_t connected_clients, commands_processed;
static int listen_fd = -1;
static unsigned next_worker;

enum { read_chunk = 64 * 1024, max_pending_input = 80 * 1024 * 1024 };

int64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void connection_close_later(struct conn *conn) { conn->closing = 1; }

static void connection_close(struct conn *conn)
{
    epoll_ctl(workers[conn->worker].epoll_fd, EPOLL_CTL_DEL, conn->fd, NULL);
    __atomic_store_n(&connections[conn->fd], NULL, __ATOMIC_RELEASE);   /* before the fd is reused */
    close(conn->fd);
    buffer_free(&conn->in);
    buffer_free(&conn->out);
    free(conn);
    __atomic_sub_fetch(&connected_clients, 1, __ATOMIC_RELAXED);
}

/* Reads what the socket has: 0, 1 when the client has sent all it will (it closed its end, or
 * only its sending half), -1 when it has gone or sent more than a request may hold. */
static int read_input(struct conn *conn)
{
    for (;;) {
        if (conn->in.capacity - conn->in.length < read_chunk) {
            size_t capacity = conn->in.capacity ? conn->in.capacity * 2 : read_chunk * 2;
            char *grown = realloc(conn->in.data, capacity);
            if (!grown)
                return -1;
            conn->in.data = grown;
            conn->in.capacity = capacity;
        }
        ssize_t got = read(conn->fd, conn->in.data + conn->in.length, conn->in.capacity - conn->in.length);
        if (got > 0) {
            conn->in.length += (size_t)got;
            if (conn->in.length - conn->in_parsed > max_pending_input)
                return -1;   /* a request bigger than any we accept: drop the client */
            continue;
        }
        if (got == 0)
            return 1;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
}

/* Executes every complete request in the input (pipelining), then forgets the executed bytes. */
static void execute_input(struct conn *conn, struct request *request)
{
    while (!conn->closing) {
        size_t consumed = 0;
        const char *error = NULL;
        enum parse_result result = resp_parse(conn->in.data + conn->in_parsed, conn->in.length - conn->in_parsed,
                                              request, &consumed, &error);
        if (result == parse_incomplete)
            break;
        if (result == parse_error) {
            reply_error(&conn->out, "ERR %s", error);   /* as Redis does: say why, then hang up */
            connection_close_later(conn);
            break;
        }
        execute(conn, request);
        conn->in_parsed += consumed;
        conn->commands++;
    }
    memmove(conn->in.data, conn->in.data + conn->in_parsed, conn->in.length - conn->in_parsed);
    conn->in.length -= conn->in_parsed;
    conn->in_parsed = 0;
}

/* Input is watched until the client has sent all it will: at its end, input is always "readable",
 * and would wake the worker for nothing until the replies are out. */
static void watch_output(struct conn *conn, int on)
{
    struct epoll_event event = {.events = (on ? EPOLLOUT : 0) | (conn->input_ended ? 0 : EPOLLIN), .data.fd = conn->fd};
    epoll_ctl(workers[conn->worker].epoll_fd, EPOLL_CTL_MOD, conn->fd, &event);
    conn->watching_output = on;
}

/* Writes what it can; asks epoll for writability while output remains. -1 when the client has gone. */
static int flush_output(struct conn *conn)
{
    while (conn->out_sent < conn->out.length) {
        ssize_t sent = write(conn->fd, conn->out.data + conn->out_sent, conn->out.length - conn->out_sent);
        if (sent > 0) {
            conn->out_sent += (size_t)sent;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (!conn->watching_output)
            watch_output(conn, 1);
        return 0;
    }
    if (conn->watching_output)
        watch_output(conn, 0);
    conn->out.length = conn->out_sent = 0;
    if (conn->out.capacity > 1024 * 1024) {
        buffer_free(&conn->out);   /* a large reply is gone: give its memory back */
    }
    return 0;
}

static void serve(struct conn *conn, struct request *request)
{
    int input = conn->input_ended ? 0 : read_input(conn);
    if (input < 0) {
        connection_close(conn);
        return;
    }
    if (!conn->closing)
        execute_input(conn, request);
    else   /* after QUIT or a protocol error: read (closing on unread input would reset the
              connection, and the client might lose its last replies), not run */
        conn->in.length = conn->in_parsed = 0;
    if (input > 0) {   /* it sent all it will: it gets every reply, then we hang up */
        conn->input_ended = 1;
        connection_close_later(conn);
    }
    if (flush_output(conn) != 0 || (conn->closing && conn->out_sent == conn->out.length)) {
        connection_close(conn);
        return;
    }
    if (input > 0)
        watch_output(conn, 1);   /* replies left: wait for room, and no longer for input */
}

static void *worker_main(void *argument)
{
    struct worker *self = argument;
    struct request request = {0};
    struct epoll_event events[128];
    for (;;) {
        molt_update_point("worker");
        int ready = epoll_wait(self->epoll_fd, events, 128, -1);
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            struct conn *conn = fd >= 0 && fd < max_fds ? __atomic_load_n(&connections[fd], __ATOMIC_ACQUIRE) : NULL;
            if (conn)
                serve(conn, &request);
            __atomic_add_fetch(&self->events_handled, 1, __ATOMIC_RELAXED);
            /* else: molt_wake_fd(), an update is pending; the loop goes to its update point */
        }
    }
    return NULL;
}

static void start_workers(int count)
{
    worker_count = count;
    for (int i = 0; i < count; i++) {
        struct worker *worker = &workers[i];
        worker->index = i;
        worker->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (worker->epoll_fd < 0) {
            perror("kvd: epoll_create1");
            exit(1);
        }
        int wake = molt_wake_fd();
        if (wake >= 0) {
            struct epoll_event event = {.events = EPOLLIN, .data.fd = wake};
            epoll_ctl(worker->epoll_fd, EPOLL_CTL_ADD, wake, &event);
        }
        if (pthread_create(&worker->thread, NULL, worker_main, worker) != 0) {
            fprintf(stderr, "kvd: cannot start worker %d\n", i);
            exit(1);
        }
    }
}

static void accept_one(void)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            struct timespec pause = {0, 10 * 1000 * 1000};   /* out of fds: let clients leave */
            nanosleep(&pause, NULL);
        }
        return;   /* EINTR: an update may be pending; the loop goes to its update point */
    }
    struct conn *conn = calloc(1, sizeof *conn);
    if (fd >= max_fds || !conn) {
        free(conn);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn->fd = fd;
    conn->worker = (int)(next_worker++ % (unsigned)worker_count);
    __atomic_add_fetch(&workers[conn->worker].connections_served, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&connected_clients, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&connections[fd], conn, __ATOMIC_RELEASE);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(workers[conn->worker].epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0)
        connection_close(conn);
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 511) != 0) {
        fprintf(stderr, "kvd: cannot listen on port %d: %s\n", port, strerror(errno));
        exit(1);
    }
    socklen_t length = sizeof address;
    getsockname(fd, (struct sockaddr *)&address, &length);
    listen_port = ntohs(address.sin_port);
    return fd;
}

struct options {
    int port;
    int workers;
    const char *port_file;
};

static struct options parse_options(int argc, char **argv)
{
    struct options options = {.port = 6380, .workers = 4};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            options.port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            options.workers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
            options.port_file = argv[++i];
        else {
            fprintf(stderr, "usage: kvd [--port N (6380; 0 picks one)] [--workers N (4)] [--port-file FILE]\n");
            exit(2);
        }
    }
    if (options.workers < 1 || options.workers > max_workers || options.port < 0 || options.port > 65535) {
        fprintf(stderr, "kvd: --workers takes 1 to %d, --port 0 to 65535\n", max_workers);
        exit(2);
    }
    return options;
}

int main(int argc, char **argv)
{
    struct options options = parse_options(argc, argv);
    if (!molt_is_updating()) {   /* a first start; a new version restarting here skips it */
        signal(SIGPIPE, SIG_IGN);
        store_init();
        listen_fd = listen_on(options.port);
        start_workers(options.workers);
        if (options.port_file) {
            FILE *file = fopen(options.port_file, "w");
            if (!file || fprintf(file, "%d\n", listen_port) < 0 || fclose(file) != 0) {
                fprintf(stderr, "kvd: cannot write %s\n", options.port_file);
                exit(1);
            }
        }
        fprintf(stderr, "kvd v%d: listening on 127.0.0.1:%d with %d workers\n", KVD_VERSION, listen_port,
                options.workers);
    }
    for (;;) {
        molt_update_point("accept");
#if KVD_VERSION >= 4
        /* Past the update point, an update to this version has committed: now is the time to
         * start the thread that the old version did not have. */
        if (!expirer_running)
            expirer_start();
#endif
        accept_one();
    }
}
