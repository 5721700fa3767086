/* greeter: a tiny line server, updated live in `make demo`. Built twice from this file:
 *   cc -DVERSION=1 ... greeter.c -o greeter          (version 1, an executable)
 *   cc -DVERSION=2 -fPIC -shared ... -o greeter2.so  (version 2, an update)
 * Version 1 answers "hello, visitor N"; version 2 answers in a new format and also counts the
 * bytes it has read (a new variable). The count of visitors and every open connection carry
 * over. Usage: greeter PORT_FILE */
#include <molt/molt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

enum { max_clients = 64 };

static int listen_fd = -1;
static int clients[max_clients];
static int client_count;
static unsigned long visitors;          /* carried over by the update */
#if VERSION >= 2
static unsigned long bytes_in;          /* new in version 2: starts at 0 */
#endif

static void answer(int index)
{
    char line[256], reply[512];
    ssize_t got = read(clients[index], line, sizeof line - 1);
    if (got <= 0) {
        close(clients[index]);
        clients[index] = clients[--client_count];
        return;
    }
    line[got] = '\0';
    visitors++;
#if VERSION == 1
    int length = snprintf(reply, sizeof reply, "hello, visitor %lu\n", visitors);
#else
    bytes_in += (unsigned long)got;
    int length = snprintf(reply, sizeof reply, "Greetings from version 2! You are visitor #%lu (%lu bytes read so far)\n",
                          visitors, bytes_in);
#endif
    if (write(clients[index], reply, (size_t)length) < 0)
        return;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: greeter PORT_FILE\n");
        return 2;
    }
    if (!molt_is_updating()) {                       /* first start only */
        listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bind(listen_fd, (struct sockaddr *)&address, sizeof address);
        listen(listen_fd, 16);
        socklen_t length = sizeof address;
        getsockname(listen_fd, (struct sockaddr *)&address, &length);
        FILE *port_file = fopen(argv[1], "w");
        fprintf(port_file, "%d\n", ntohs(address.sin_port));
        fclose(port_file);
    }
    for (;;) {
        molt_update_point("poll");                   /* a safe place to switch versions */
        struct pollfd watched[max_clients + 1];
        watched[0] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (int i = 0; i < client_count; ++i)
            watched[i + 1] = (struct pollfd){.fd = clients[i], .events = POLLIN};
        if (poll(watched, (nfds_t)client_count + 1, -1) < 0)
            continue;                                /* EINTR: an update may be waiting */
        if ((watched[0].revents & POLLIN) && client_count < max_clients) {
            int fd = accept(listen_fd, NULL, NULL);
            if (fd >= 0)
                clients[client_count++] = fd;
        }
        for (int i = client_count; i >= 1; --i)
            if (watched[i].revents & (POLLIN | POLLHUP))
                answer(i - 1);
    }
}
