
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"


/*
 * The connection layer of the shared state (docs/scale-out.md): each
 * worker's connections to Redis, made, watched and made again, every
 * reply and message read, every command sent.  Each worker keeps two
 * connections: one for commands, pipelined (hiredis queues them; the
 * write event is posted so that every command of one pass of the event
 * loop leaves in one write), and one that is subscribed to the
 * gateways' channel.  hiredis's asynchronous context is attached to
 * nginx's event loop by the small adapter (ngx_http_eas_redis_adapter.c):
 * its socket becomes an ngx_connection_t, its read and write wishes
 * nginx events.  Nothing here ever blocks: the address is resolved when
 * the configuration is read, connect() is non-blocking, a connection
 * that is not ready within connect_timeout, or that leaves a command
 * unanswered for "timeout", is dropped and made again after a backoff.
 *
 * Whether Redis is up is kept per gateway in a small zone, so that the
 * workers log one line per change between them (ngx_http_eas_redis.c).
 */


#define NGX_HTTP_EAS_REDIS_RETRY_MIN  50        /* ms, first backoff */


typedef struct {
    redisCallbackFn             *handler;
    void                        *data;
    void                        *next;
    ngx_uint_t                   counted;      /* in the link's inflight */
} ngx_http_eas_redis_call_t;


/*
 * What a reply from Redis may take: the socket's unread bytes past the
 * last whole reply, and the elements of an array.  Every reply of the
 * shared state is small; anything larger drops the connection.
 */
#define NGX_HTTP_EAS_REDIS_BUFFER_MAX    65536
#define NGX_HTTP_EAS_REDIS_ELEMENTS_MAX  16


static void ngx_http_eas_redis_connect(ngx_http_eas_redis_link_t *link);
static void ngx_http_eas_redis_retry(ngx_event_t *ev);
static void ngx_http_eas_redis_watch(ngx_event_t *ev);
static void ngx_http_eas_redis_lost(ngx_http_eas_redis_link_t *link,
    const char *why);
static void ngx_http_eas_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_eas_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_eas_redis_on_auth(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_eas_redis_on_ready(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_eas_redis_refused(ngx_http_eas_redis_link_t *link,
    redisReply *rr);
static void ngx_http_eas_redis_flush(ngx_http_eas_redis_link_t *link,
    redisAsyncContext *ac);
static void *ngx_http_eas_redis_create_array(const redisReadTask *task,
    int elements);


/* this worker's: two connections, the configuration, a free list */

static ngx_http_eas_redis_link_t   ngx_http_eas_redis_cmd;
static ngx_http_eas_redis_link_t   ngx_http_eas_redis_sub;
ngx_http_eas_redis_conf_t         *ngx_http_eas_redis_conf;
ngx_http_eas_redis_sh_t           *ngx_http_eas_redis_sh;
static ngx_http_eas_redis_call_t  *ngx_http_eas_redis_free;
static ngx_uint_t                  ngx_http_eas_redis_exiting;
static redisReplyObjectFunctions   ngx_http_eas_redis_fns;
static void                     *(*ngx_http_eas_redis_array)(
                                    const redisReadTask *task, int elements);
static time_t                      ngx_http_eas_redis_odd_logged;
static ngx_uint_t                  ngx_http_eas_redis_refused_logged;


ngx_int_t
ngx_http_eas_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_eas_redis_conf_t  *rcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_eas_redis_module);
    if (rcf == NULL || !rcf->enabled) {
        return NGX_OK;
    }

    ngx_http_eas_redis_conf = rcf;
    ngx_http_eas_redis_sh = rcf->shm_zone->data;

    ngx_http_eas_redis_sub.subscriber = 1;

    ngx_http_eas_redis_connect(&ngx_http_eas_redis_cmd);
    ngx_http_eas_redis_connect(&ngx_http_eas_redis_sub);

    return NGX_OK;
}


/*
 * A worker that shut down gracefully must leave no socket open (nginx
 * alerts about each): both connections are freed, and not made again.
 */

void
ngx_http_eas_redis_exit_process(ngx_cycle_t *cycle)
{
    redisAsyncContext  *ac;

    ngx_http_eas_redis_exiting = 1;

    ac = ngx_http_eas_redis_cmd.ac;

    if (ac) {
        ngx_http_eas_redis_cmd.ac = NULL;
        ngx_http_eas_redis_cmd.ready = 0;
        ngx_http_eas_redis_flush(&ngx_http_eas_redis_cmd, ac);
        redisAsyncFree(ac);
    }

    ngx_http_eas_redis_sub_lost();

    ac = ngx_http_eas_redis_sub.ac;

    if (ac) {
        ngx_http_eas_redis_sub.ac = NULL;
        ngx_http_eas_redis_sub.ready = 0;
        ngx_http_eas_redis_flush(&ngx_http_eas_redis_sub, ac);
        redisAsyncFree(ac);
    }

    ngx_http_eas_redis_inv_pending_exit();
    ngx_http_eas_redis_conf = NULL;
}


static void
ngx_http_eas_redis_connect(ngx_http_eas_redis_link_t *link)
{
    redisAsyncContext          *ac;
    ngx_http_eas_redis_conf_t  *rcf;
    const char                 *argv[2];
    size_t                      argvlen[2];
    u_char                      db[NGX_INT_T_LEN];

    rcf = ngx_http_eas_redis_conf;

    link->retry.handler = ngx_http_eas_redis_retry;
    link->retry.data = link;
    link->retry.log = ngx_cycle->log;
    link->retry.cancelable = 1;

    link->watch.handler = ngx_http_eas_redis_watch;
    link->watch.data = link;
    link->watch.log = ngx_cycle->log;
    link->watch.cancelable = 1;

    link->connected = 0;
    link->ready = 0;
    link->inflight = 0;
    link->in_write = 0;
    link->want_write = 0;

    ac = redisAsyncConnect(rcf->host, (int) rcf->port);

    if (ac == NULL || ac->err) {
        ngx_http_eas_redis_lost(link, ac ? ac->errstr : "no memory");

        if (ac) {
            redisAsyncFree(ac);
        }

        return;
    }

    if (ngx_http_eas_redis_attach(ac, link) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_http_eas_redis_lost(link, "no free connection");
        return;
    }

    /* the first write event tells that connect() is done */

    (void) redisAsyncSetConnectCallback(ac, ngx_http_eas_redis_on_connect);
    (void) redisAsyncSetDisconnectCallback(ac,
                                           ngx_http_eas_redis_on_disconnect);

    /*
     * Every reply is read here, not by hiredis's callbacks: its reader
     * takes no array of more than a few elements, and a reply that is
     * not what was asked for drops the connection (hiredis's own
     * subscribe handling asserts on such replies).
     */

    ngx_http_eas_redis_fns = *ac->c.reader->fn;
    ngx_http_eas_redis_array = ngx_http_eas_redis_fns.createArray;
    ngx_http_eas_redis_fns.createArray = ngx_http_eas_redis_create_array;
    ac->c.reader->fn = &ngx_http_eas_redis_fns;

    /* queued now, sent once connected: AUTH, SELECT, PING or SUBSCRIBE */

    if (rcf->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (const char *) rcf->password.data;
        argvlen[1] = rcf->password.len;

        (void) ngx_http_eas_redis_send(link, ngx_http_eas_redis_on_auth, link,
                                       2, argv, argvlen);
    }

    if (rcf->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%ui", rcf->db) - db;

        (void) ngx_http_eas_redis_send(link, ngx_http_eas_redis_on_auth, link,
                                       2, argv, argvlen);
    }

    if (link->subscriber) {
        /* its confirmation and every message: ngx_http_eas_redis_message */
        argv[0] = "SUBSCRIBE";
        argvlen[0] = 9;
        argv[1] = (const char *) rcf->channel.data;
        argvlen[1] = rcf->channel.len;

        (void) ngx_http_eas_redis_send(link, NULL, NULL, 2, argv, argvlen);

    } else {
        argv[0] = "PING";
        argvlen[0] = 4;

        (void) ngx_http_eas_redis_send(link, ngx_http_eas_redis_on_ready,
                                       link, 1, argv, argvlen);
    }

    ngx_add_timer(&link->watch, rcf->connect_timeout);
}


static void
ngx_http_eas_redis_retry(ngx_event_t *ev)
{
    ngx_http_eas_redis_link_t  *link = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_http_eas_redis_exiting
        || link->ac)
    {
        return;
    }

    ngx_http_eas_redis_connect(link);
}


/* not ready in connect_timeout, or a command unanswered for "timeout" */

static void
ngx_http_eas_redis_watch(ngx_event_t *ev)
{
    ngx_http_eas_redis_link_t  *link = ev->data;

    if (link->ac == NULL) {
        return;
    }

    if (!link->ready) {
        ngx_http_eas_redis_drop(link, "connect timed out");
        return;
    }

    if (link->inflight == 0) {
        return;
    }

    if ((ngx_msec_int_t) (ngx_current_msec - link->busy_since)
        >= (ngx_msec_int_t) ngx_http_eas_redis_conf->timeout)
    {
        ngx_http_eas_redis_drop(link, "a command timed out");
        return;
    }

    ngx_add_timer(ev, ngx_http_eas_redis_conf->timeout
                      - (ngx_current_msec - link->busy_since));
}


/*
 * From nginx's side (a timer): the context is freed at once, every
 * command waiting on it is called back without a reply.
 */

void
ngx_http_eas_redis_drop(ngx_http_eas_redis_link_t *link, const char *why)
{
    redisAsyncContext  *ac;

    ac = link->ac;

    ngx_http_eas_redis_lost(link, why);

    if (ac) {
        redisAsyncFree(ac);
    }
}


/* the link is gone: down, and made again after a backoff */

static void
ngx_http_eas_redis_lost(ngx_http_eas_redis_link_t *link, const char *why)
{
    ngx_msec_t          backoff;
    redisAsyncContext  *ac;

    /*
     * the backoff starts again from the shortest only after a link that
     * proved healthy: set up and kept for the longest backoff.  A server
     * that answers the setup and then says something nobody asked (a
     * rogue one, or not Redis) is dropped each time after a longer wait,
     * not 20 times a second.
     */

    if (link->ready
        && ngx_current_msec - link->ready_since
           >= ngx_http_eas_redis_conf->retry)
    {
        link->backoff = 0;
    }

    ac = link->ac;
    link->ac = NULL;
    link->connected = 0;
    link->ready = 0;
    link->inflight = 0;
    link->why = why;

    if (link->watch.timer_set) {
        ngx_del_timer(&link->watch);
    }

    /* every command still waiting is answered: no reply */
    ngx_http_eas_redis_flush(link, ac);

    if (link->subscriber) {
        ngx_http_eas_redis_sub_lost();
    }

    if (ngx_http_eas_redis_exiting) {
        return;
    }

    if (!link->subscriber) {
        ngx_http_eas_redis_state(0, why);
    }

    if (ngx_exiting || ngx_terminate || link->retry.timer_set) {
        return;
    }

    backoff = link->backoff ? ngx_min(2 * link->backoff,
                                      ngx_http_eas_redis_conf->retry)
                            : NGX_HTTP_EAS_REDIS_RETRY_MIN;
    link->backoff = backoff;

    ngx_add_timer(&link->retry, backoff);
}


static void
ngx_http_eas_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_eas_redis_link_t  *link = ac->data;

    if (link->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this */
        ngx_http_eas_redis_lost(link, ac->errstr);
        return;
    }

    link->connected = 1;
}


static void
ngx_http_eas_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_eas_redis_link_t  *link = ac->data;

    if (link->ac != ac) {
        return;
    }

    ngx_http_eas_redis_lost(link, status == REDIS_OK ? "disconnected"
                                                     : ac->errstr);
}


/* AUTH or SELECT refused: said once per change, the link made again */

static void
ngx_http_eas_redis_on_auth(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply                 *rr = reply;
    ngx_http_eas_redis_link_t  *link = data;

    if (link->ac != ac || rr == NULL) {
        return;
    }

    if (rr->type != REDIS_REPLY_ERROR) {
        if (rr->type != REDIS_REPLY_STATUS || rr->len != 2
            || ngx_strncmp(rr->str, "OK", 2) != 0)
        {
            /* not what Redis answers AUTH or SELECT: not Redis */
            ngx_http_eas_redis_drop(link, "an unexpected setup reply");
        }

        return;
    }

    ngx_http_eas_redis_refused(link, rr);
}


/*
 * An error reply to the setup: AUTH or SELECT refused, or a PING or
 * SUBSCRIBE refused before any AUTH (NOAUTH).  Said once per worker
 * until its command connection is set up again, however often it is
 * tried (each worker of a reload says it once), then the link is made
 * again.  The reply is Redis's text: it never holds the password.
 */

static void
ngx_http_eas_redis_refused(ngx_http_eas_redis_link_t *link, redisReply *rr)
{
    if (!ngx_http_eas_redis_refused_logged) {
        ngx_http_eas_redis_refused_logged = 1;

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state \"%V\" refused the connection's "
                      "setup: %*s (check \"password_file\" and \"db\")",
                      &ngx_http_eas_redis_conf->url,
                      (size_t) ngx_min(rr->len, 200), rr->str);
    }

    ngx_http_eas_redis_drop(link, "refused");
}


static void
ngx_http_eas_redis_on_ready(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply                 *rr = reply;
    ngx_http_eas_redis_link_t  *link = data;

    if (link->ac != ac || rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_http_eas_redis_refused(link, rr);
        return;
    }

    if (rr->type != REDIS_REPLY_STATUS || rr->len != 4
        || ngx_strncmp(rr->str, "PONG", 4) != 0)
    {
        /* not what Redis answers PING: not Redis, or it spoke first */
        ngx_http_eas_redis_drop(link, "an unexpected setup reply");
        return;
    }

    if (link->watch.timer_set) {
        ngx_del_timer(&link->watch);
    }

    link->ready = 1;
    link->ready_since = ngx_current_msec;
    ngx_http_eas_redis_refused_logged = 0;
    ngx_http_eas_redis_state(1, NULL);
}


/* hiredis's reader: an array of more elements than asked for is refused */

static void *
ngx_http_eas_redis_create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > NGX_HTTP_EAS_REDIS_ELEMENTS_MAX) {
        return NULL;        /* the reader fails: the connection is dropped */
    }

    return ngx_http_eas_redis_array(task, elements);
}


/*
 * The socket is readable (ngx_http_eas_redis_adapter.c): what it holds
 * is read, and each whole reply goes to the command that asked for it,
 * oldest first, or on the subscriber connection, to
 * ngx_http_eas_redis_message().  A reply nothing asked for, one the
 * reader cannot take, or more unread bytes than a reply may have drop
 * the connection (said once a minute): it is made again after a
 * backoff.
 */

void
ngx_http_eas_redis_read(ngx_http_eas_redis_link_t *link)
{
    void                       *reply, *data;
    const char                 *why;
    redisReader                *reader;
    redisCallbackFn            *handler;
    redisAsyncContext          *ac;
    ngx_http_eas_redis_call_t  *call;

    ac = link->ac;

    if (!(ac->c.flags & REDIS_CONNECTED)) {
        /* the write event ends connect() first, then replies can come */
        return;
    }

    if (redisBufferRead(&ac->c) != REDIS_OK) {
        ngx_http_eas_redis_drop(link, ac->c.err == REDIS_ERR_EOF
                                      ? "Server closed the connection"
                                      : "read failed");
        return;
    }

    reader = ac->c.reader;
    why = NULL;

    for ( ;; ) {
        reply = NULL;

        if (redisGetReplyFromReader(&ac->c, &reply) != REDIS_OK) {
            why = "a reply it could not read";
            break;
        }

        if (reply == NULL) {
            break;
        }

        call = link->calls;

        if (call) {
            link->calls = call->next;

            if (call->counted && link->inflight) {
                link->inflight--;
                link->busy_since = ngx_current_msec;
            }

            handler = call->handler;
            data = call->data;

            call->next = ngx_http_eas_redis_free;
            ngx_http_eas_redis_free = call;

            if (handler) {
                handler(ac, reply, data);
            }

        } else if (link->subscriber
                   && ((redisReply *) reply)->type == REDIS_REPLY_ERROR)
        {
            /* SUBSCRIBE refused: NOAUTH, a channel the ACL denies */
            ngx_http_eas_redis_refused(link, reply);

        } else if (!link->subscriber
                   || ngx_http_eas_redis_sub_message(link, reply) != NGX_OK)
        {
            why = "a reply nothing asked for";
        }

        freeReplyObject(reply);

        if (link->ac != ac) {
            /* dropped by a handler */
            return;
        }

        if (why) {
            break;
        }
    }

    if (why == NULL
        && reader->len - reader->pos > NGX_HTTP_EAS_REDIS_BUFFER_MAX)
    {
        why = "a reply larger than the shared state's";
    }

    if (why == NULL) {
        return;
    }

    if (ngx_time() - ngx_http_eas_redis_odd_logged >= 60) {
        ngx_http_eas_redis_odd_logged = ngx_time();

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state \"%V\" sent %s: connection "
                      "dropped (said once a minute)",
                      &ngx_http_eas_redis_conf->url, why);
    }

    ngx_http_eas_redis_drop(link, why);
}


/* a command written to the link's buffer; its reply comes in order */

ngx_int_t
ngx_http_eas_redis_send(ngx_http_eas_redis_link_t *link,
    redisCallbackFn *handler, void *data, int argc, const char **argv,
    const size_t *argvlen)
{
    redisAsyncContext          *ac;
    ngx_http_eas_redis_call_t  *call, *last;

    ac = link->ac;
    call = NULL;

    if (handler || !link->subscriber) {
        call = ngx_http_eas_redis_free;

        if (call) {
            ngx_http_eas_redis_free = call->next;

        } else {
            call = ngx_alloc(sizeof(ngx_http_eas_redis_call_t),
                             ngx_cycle->log);
            if (call == NULL) {
                return NGX_ERROR;
            }
        }
    }

    if (redisAppendCommandArgv(&ac->c, argc, argv, argvlen) != REDIS_OK) {
        if (call) {
            call->next = ngx_http_eas_redis_free;
            ngx_http_eas_redis_free = call;
        }

        return NGX_ERROR;
    }

    if (call) {
        call->handler = handler;
        call->data = data;
        call->counted = 0;
        call->next = NULL;

        if (link->calls) {
            last = link->last;
            last->next = call;

        } else {
            link->calls = call;
        }

        link->last = call;
    }

    if (ac->ev.addWrite) {
        ac->ev.addWrite(ac->ev.data);
    }

    return NGX_OK;
}


/* the link is gone: each command waiting is called back without a reply */

static void
ngx_http_eas_redis_flush(ngx_http_eas_redis_link_t *link,
    redisAsyncContext *ac)
{
    ngx_http_eas_redis_call_t  *call, *next;

    call = link->calls;
    link->calls = NULL;
    link->last = NULL;

    for ( /* void */ ; call; call = next) {
        next = call->next;

        if (call->handler) {
            call->handler(ac, NULL, call->data);
        }

        call->next = ngx_http_eas_redis_free;
        ngx_http_eas_redis_free = call;
    }
}


/*
 * A command of the shared state, pipelined on this worker's command
 * connection.  NGX_DECLINED while Redis is down: the caller falls
 * back.  "handler" (may be NULL) is called exactly once, with NULL
 * when the link went away first.
 */

ngx_int_t
ngx_http_eas_redis_command(redisCallbackFn *handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_http_eas_redis_call_t  *call;
    ngx_http_eas_redis_link_t  *link;

    link = &ngx_http_eas_redis_cmd;

    if (ngx_http_eas_redis_conf == NULL || !link->ready) {
        if (ngx_http_eas_redis_sh) {
            (void) ngx_atomic_fetch_add(&ngx_http_eas_redis_sh->fallbacks,
                                        1);
        }

        return NGX_DECLINED;
    }

    if (ngx_http_eas_redis_send(link, handler, data, argc, argv, argvlen)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    call = link->last;
    call->counted = 1;

    (void) ngx_atomic_fetch_add(&ngx_http_eas_redis_sh->commands, 1);

    if (link->inflight++ == 0) {
        link->busy_since = ngx_current_msec;

        if (!link->watch.timer_set) {
            ngx_add_timer(&link->watch, ngx_http_eas_redis_conf->timeout);
        }
    }

    return NGX_OK;
}
