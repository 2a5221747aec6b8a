
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * Many phones at once: opens N TLS connections, sends one Ping on
 * each and keeps them all open, as DirectPush devices do.
 *
 *     loadcli PREFIX NADDR PORT N REQUEST SETUP HOLD STOPFILE FIRST
 *
 * connects to PREFIX1 .. PREFIX<NADDR> (e.g. "127.0.3." and 8: one
 * ephemeral port range per destination address) on PORT, at most
 * LOADCLI_INFLIGHT handshakes at a time, sends the bytes of the file
 * REQUEST on each connection, and gives up on setup after SETUP
 * seconds.  Every "XXXXXXXX" in REQUEST becomes the connection's
 * number (FIRST + i, eight digits), so each connection is a device of
 * its own.  Then it holds everything for HOLD seconds or until the file
 * STOPFILE exists, counting connections that were closed or answered,
 * and prints one line:
 *
 *     loadcli: held=N opened=N failed=N answered=N dropped=N setup=S
 *
 * "held" is what was still open, unanswered, at the end.  A line
 * "loadcli: ready ..." is printed when setup is done.
 */


#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>


#define LOADCLI_INFLIGHT  200
#define LOADCLI_EVENTS    1024

#define LC_FREE       0
#define LC_CONNECT    1
#define LC_HANDSHAKE  2
#define LC_WRITE      3
#define LC_HELD       4
#define LC_DONE       5


typedef struct {
    int           fd;
    int           state;
    size_t        sent;
    SSL          *ssl;
} lc_conn_t;


typedef struct {
    int           ep;
    SSL_CTX      *ctx;
    char         *request;
    size_t        request_len;
    lc_conn_t    *conns;
    int           n;
    int           next;
    int           inflight;
    int           opened;
    int           failed;
    int           answered;
    int           dropped;
    const char   *prefix;
    int           naddr;
    int           port;
    int           first;
} lc_t;


static double lc_now(void);
static int lc_open(lc_t *lc, int i);
static void lc_fail(lc_t *lc, lc_conn_t *c, int held);
static void lc_step(lc_t *lc, lc_conn_t *c);
static void lc_poll(lc_t *lc, int timeout);
static char *lc_read_file(const char *path, size_t *len);
static void lc_request(lc_t *lc, long i, char *out);


int
main(int argc, char **argv)
{
    int            i, held;
    lc_t           lc;
    double         start, setup, hold_end;
    struct rlimit  rl;

    if (argc != 10) {
        fprintf(stderr, "usage: loadcli PREFIX NADDR PORT N REQUEST SETUP "
                "HOLD STOPFILE FIRST\n");
        return 2;
    }

    memset(&lc, 0, sizeof(lc_t));

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    lc.prefix = argv[1];
    lc.naddr = atoi(argv[2]);
    lc.port = atoi(argv[3]);
    lc.n = atoi(argv[4]);
    lc.first = atoi(argv[9]);

    lc.request = lc_read_file(argv[5], &lc.request_len);
    if (lc.request == NULL || lc.request_len > 8192) {
        fprintf(stderr, "loadcli: no request, or over 8k\n");
        return 1;
    }

    lc.conns = calloc(lc.n, sizeof(lc_conn_t));
    lc.ctx = SSL_CTX_new(TLS_client_method());
    lc.ep = epoll_create1(0);

    if (lc.conns == NULL || lc.ctx == NULL || lc.ep == -1) {
        fprintf(stderr, "loadcli: out of memory\n");
        return 1;
    }

    SSL_CTX_set_verify(lc.ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(lc.ctx, SSL_MODE_RELEASE_BUFFERS
                             | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(lc.ctx, SSL_SESS_CACHE_OFF);

    start = lc_now();
    setup = start + atoi(argv[6]);

    while (lc.next < lc.n || lc.inflight > 0) {
        while (lc.next < lc.n && lc.inflight < LOADCLI_INFLIGHT) {
            if (lc_open(&lc, lc.next++) == 0) {
                lc.inflight++;
            }
        }

        if (lc_now() > setup) {
            break;
        }

        lc_poll(&lc, 100);
    }

    printf("loadcli: ready opened=%d failed=%d in %.1f s\n", lc.opened,
           lc.failed, lc_now() - start);
    fflush(stdout);

    hold_end = lc_now() + atoi(argv[7]);

    while (lc_now() < hold_end && access(argv[8], F_OK) != 0) {
        lc_poll(&lc, 200);
    }

    held = 0;

    for (i = 0; i < lc.n; i++) {
        if (lc.conns[i].state == LC_HELD) {
            held++;
        }
    }

    printf("loadcli: held=%d opened=%d failed=%d answered=%d dropped=%d "
           "setup=%.1f\n", held, lc.opened, lc.failed, lc.answered,
           lc.dropped, lc_now() - start);

    return 0;
}


static double
lc_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
lc_open(lc_t *lc, int i)
{
    int                  fd, on;
    char                 addr[64];
    lc_conn_t           *c;
    struct sockaddr_in   sin;
    struct epoll_event   ev;

    c = &lc->conns[i];

    snprintf(addr, sizeof(addr), "%s%d", lc->prefix, i % lc->naddr + 1);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(lc->port);
    inet_pton(AF_INET, addr, &sin.sin_addr);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        lc->failed++;
        c->state = LC_DONE;
        return -1;
    }

    on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        && errno != EINPROGRESS)
    {
        close(fd);
        lc->failed++;
        c->state = LC_DONE;
        return -1;
    }

    c->fd = fd;
    c->state = LC_CONNECT;
    c->ssl = SSL_new(lc->ctx);
    SSL_set_fd(c->ssl, fd);
    SSL_set_connect_state(c->ssl);

    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u32 = (uint32_t) i;
    epoll_ctl(lc->ep, EPOLL_CTL_ADD, fd, &ev);

    return 0;
}


static void
lc_fail(lc_t *lc, lc_conn_t *c, int held)
{
    if (held) {
        lc->dropped++;

    } else {
        lc->failed++;
        lc->inflight--;
    }

    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->state = LC_DONE;
}


static void
lc_step(lc_t *lc, lc_conn_t *c)
{
    int    rc, err;
    char   buf[4096], out[8192];

    if (c->state == LC_HELD) {
        rc = SSL_read(c->ssl, buf, sizeof(buf));

        if (rc > 0) {
            /* the backend never answers: anything here is the gateway */
            lc->answered++;
            lc->dropped--;
            lc_fail(lc, c, 1);
            return;
        }

        err = SSL_get_error(c->ssl, rc);

        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            lc_fail(lc, c, 1);
        }

        return;
    }

    if (c->state == LC_CONNECT || c->state == LC_HANDSHAKE) {
        c->state = LC_HANDSHAKE;
        rc = SSL_do_handshake(c->ssl);

        if (rc != 1) {
            err = SSL_get_error(c->ssl, rc);

            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                lc_fail(lc, c, 0);
            }

            return;
        }

        c->state = LC_WRITE;
    }

    if (c->state == LC_WRITE) {
        lc_request(lc, c - lc->conns, out);

        rc = SSL_write(c->ssl, out + c->sent,
                       (int) (lc->request_len - c->sent));

        if (rc <= 0) {
            err = SSL_get_error(c->ssl, rc);

            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                lc_fail(lc, c, 0);
            }

            return;
        }

        c->sent += rc;

        if (c->sent == lc->request_len) {
            c->state = LC_HELD;
            lc->opened++;
            lc->inflight--;
        }
    }
}


static void
lc_poll(lc_t *lc, int timeout)
{
    int                 n, i;
    lc_conn_t          *c;
    struct epoll_event  ev, events[LOADCLI_EVENTS];

    n = epoll_wait(lc->ep, events, LOADCLI_EVENTS, timeout);

    for (i = 0; i < n; i++) {
        c = &lc->conns[events[i].data.u32];

        if (c->state == LC_DONE || c->state == LC_FREE) {
            continue;
        }

        lc_step(lc, c);

        if (c->state == LC_DONE) {
            continue;
        }

        /* wait for writability only when TLS needs it: no busy loop */

        ev.events = EPOLLIN | EPOLLRDHUP;

        if (c->state != LC_HELD && SSL_want_write(c->ssl)) {
            ev.events |= EPOLLOUT;
        }

        ev.data.u32 = events[i].data.u32;
        epoll_ctl(lc->ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}


static char *
lc_read_file(const char *path, size_t *len)
{
    long   size;
    char  *buf;
    FILE  *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);

    buf = malloc(size ? size : 1);
    if (buf == NULL || fread(buf, 1, size, f) != (size_t) size) {
        fclose(f);
        return NULL;
    }

    fclose(f);
    *len = (size_t) size;

    return buf;
}


/* the request of connection i: every XXXXXXXX is its number */

static void
lc_request(lc_t *lc, long i, char *out)
{
    char    num[16];
    char   *p;
    size_t  k;

    memcpy(out, lc->request, lc->request_len);
    snprintf(num, sizeof(num), "%08ld", (lc->first + i) % 100000000);

    for (k = 0; k + 8 <= lc->request_len; k++) {
        p = out + k;

        if (memcmp(p, "XXXXXXXX", 8) == 0) {
            memcpy(p, num, 8);
            k += 7;
        }
    }
}
