
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/socket.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"


static void ngx_http_eas_redis_add_read(void *data);
static void ngx_http_eas_redis_del_read(void *data);
static void ngx_http_eas_redis_add_write(void *data);
static void ngx_http_eas_redis_del_write(void *data);
static void ngx_http_eas_redis_cleanup(void *data);
static void ngx_http_eas_redis_read_handler(ngx_event_t *ev);
static void ngx_http_eas_redis_write_handler(ngx_event_t *ev);


/*
 * The adapter.  hiredis says when it wants to read or write; nginx
 * calls back when the socket is ready.  Events are edge-triggered with
 * epoll: a read goes on until the socket says EAGAIN, its end of stream
 * included, and a write wished for on a connected socket is posted, so
 * that it runs once at the end of this pass of the event loop for every
 * command queued meanwhile.
 */


/* hiredis's socket becomes an nginx connection of this worker */

ngx_int_t
ngx_http_eas_redis_attach(redisAsyncContext *ac,
    ngx_http_eas_redis_link_t *link)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, ngx_cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = link;
    c->read->handler = ngx_http_eas_redis_read_handler;
    c->write->handler = ngx_http_eas_redis_write_handler;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;

    /* told when the worker starts to shut down gracefully (below) */
    c->idle = !link->subscriber;

    link->ac = ac;
    link->conn = c;

    ac->data = link;
    ac->ev.data = link;
    ac->ev.addRead = ngx_http_eas_redis_add_read;
    ac->ev.delRead = ngx_http_eas_redis_del_read;
    ac->ev.addWrite = ngx_http_eas_redis_add_write;
    ac->ev.delWrite = ngx_http_eas_redis_del_write;
    ac->ev.cleanup = ngx_http_eas_redis_cleanup;

    return NGX_OK;
}

static void
ngx_http_eas_redis_add_read(void *data)
{
    ngx_http_eas_redis_link_t  *link = data;

    if (link->conn && !link->conn->read->active) {
        (void) ngx_handle_read_event(link->conn->read, 0);
    }
}


static void
ngx_http_eas_redis_del_read(void *data)
{
    /* an event that finds nothing to read is harmless */
}


static void
ngx_http_eas_redis_add_write(void *data)
{
    ngx_http_eas_redis_link_t  *link = data;

    ngx_event_t  *wev;

    if (link->conn == NULL) {
        return;
    }

    wev = link->conn->write;
    link->want_write = 1;

    if (link->in_write) {
        return;
    }

    if (link->connected) {
        if (!wev->posted) {
            ngx_post_event(wev, &ngx_posted_events);
        }

        return;
    }

    (void) ngx_handle_write_event(wev, 0);
}


static void
ngx_http_eas_redis_del_write(void *data)
{
    ngx_http_eas_redis_link_t  *link = data;

    ngx_event_t  *wev;

    if (link->conn == NULL) {
        return;
    }

    link->want_write = 0;
    wev = link->conn->write;

    if ((ngx_event_flags & NGX_USE_LEVEL_EVENT) && wev->active) {
        (void) ngx_del_event(wev, NGX_WRITE_EVENT, 0);
    }
}


/* the context is being freed; hiredis closes the socket right after */

static void
ngx_http_eas_redis_cleanup(void *data)
{
    ngx_http_eas_redis_link_t  *link = data;

    ngx_connection_t  *c;

    c = link->conn;

    if (c == NULL) {
        return;
    }

    link->conn = NULL;

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_del_conn) {
        (void) ngx_del_conn(c, NGX_CLOSE_EVENT);

    } else {
        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }
    }

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}


/*
 * Edge-triggered: the event fires once for what arrived, so the socket
 * is read until it says EAGAIN.  Each read takes up to what hiredis
 * reads at once; then a peek tells whether more is there.  It must see
 * the end of the stream too: Redis that sends a reply and closes at
 * once (CLIENT KILL, a restart) delivers both in one event, and a loop
 * that stopped when no byte was left (FIONREAD) never read the FIN:
 * the socket stayed in CLOSE-WAIT, the subscription deaf for good.
 */

static void
ngx_http_eas_redis_read_handler(ngx_event_t *ev)
{
    u_char                      byte;
    ssize_t                     n;
    ngx_err_t                   err;
    ngx_connection_t           *c;
    redisAsyncContext          *ac;
    ngx_http_eas_redis_link_t  *link;

    c = ev->data;
    link = c->data;
    ac = link->ac;

    if (ac == NULL) {
        return;
    }

    if (c->close) {
        /* ngx_close_idle_connections(): the worker exits, the link stays */
        c->close = 0;
        c->idle = 0;
        ngx_http_eas_redis_inv_exiting();
    }

    if (!(ac->c.flags & REDIS_CONNECTED)) {
        /* readable before the write event told connect() is done */

        ngx_http_eas_redis_write_handler(c->write);

        if (link->ac != ac || link->conn == NULL
            || !(ac->c.flags & REDIS_CONNECTED))
        {
            return;
        }
    }

    for ( ;; ) {
        ngx_http_eas_redis_read(link);

        if (link->ac != ac || link->conn == NULL) {
            /* freed by hiredis, or taken away by a callback */
            return;
        }

        /*
         * more bytes (n > 0), the end of the stream (0) or an error:
         * read again, and hiredis's read says which; EAGAIN: all read
         */

        n = recv(ac->c.fd, &byte, 1, MSG_PEEK|MSG_DONTWAIT);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN) {
                ev->ready = 0;
                return;
            }

            if (err == NGX_EINTR) {
                continue;
            }
        }
    }
}


static void
ngx_http_eas_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    redisAsyncContext          *ac;
    ngx_http_eas_redis_link_t  *link;

    c = ev->data;
    link = c->data;
    ac = link->ac;

    if (ac == NULL) {
        return;
    }

    link->in_write = 1;
    link->want_write = 0;

    redisAsyncHandleWrite(ac);

    if (link->ac != ac || link->conn == NULL) {
        return;
    }

    link->in_write = 0;

    if (link->want_write) {
        /* the socket took part of it: wait for room */
        ev->ready = 0;
        (void) ngx_handle_write_event(ev, 0);
    }
}
