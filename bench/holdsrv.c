
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * A backend that holds every request, the way Exchange holds a Ping:
 * it accepts, reads and discards whatever arrives and never answers.
 * One epoll loop, no per-connection state beyond the socket, so it
 * scales far past the Python simulator.
 *
 *     holdsrv PORT SECONDS
 *
 * listens on 0.0.0.0:PORT (so every 127.0.0.x reaches it) with
 * SO_REUSEPORT, so that several processes share the load past one
 * process's descriptor limit, and exits after SECONDS, closing
 * everything.
 */


#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define HOLD_EVENTS  1024


static int hold_listen(int port);
static void hold_raise_nofile(void);


int
main(int argc, char **argv)
{
    int                 lfd, ep, n, i, fd, port;
    char                buf[16384];
    time_t              deadline;
    ssize_t             r;
    struct epoll_event  ev, events[HOLD_EVENTS];

    if (argc != 3) {
        fprintf(stderr, "usage: holdsrv PORT SECONDS\n");
        return 2;
    }

    port = atoi(argv[1]);
    deadline = time(NULL) + atoi(argv[2]);

    hold_raise_nofile();

    lfd = hold_listen(port);
    if (lfd == -1) {
        return 1;
    }

    ep = epoll_create1(0);

    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

    while (time(NULL) < deadline) {
        n = epoll_wait(ep, events, HOLD_EVENTS, 1000);

        for (i = 0; i < n; i++) {
            fd = events[i].data.fd;

            if (fd == lfd) {
                for ( ;; ) {
                    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd == -1) {
                        break;
                    }

                    ev.events = EPOLLIN | EPOLLRDHUP;
                    ev.data.fd = fd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }

                continue;
            }

            for ( ;; ) {
                r = read(fd, buf, sizeof(buf));

                if (r > 0) {
                    continue;
                }

                if (r == -1 && errno == EAGAIN) {
                    break;
                }

                close(fd);
                break;
            }
        }
    }

    return 0;
}


static int
hold_listen(int port)
{
    int                 fd, on;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_ANY);

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || listen(fd, 4096) == -1)
    {
        perror("holdsrv: bind/listen");
        return -1;
    }

    return fd;
}


static void
hold_raise_nofile(void)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}
