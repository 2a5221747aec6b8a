
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_ZONE_H_INCLUDED_
#define _NGX_HTTP_EAS_ZONE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * The shared-zone layer (docs/design.md, "Shared state"): what the
 * pre-authentication zone (ngx_http_eas_cache.c) and the device zone
 * (ngx_http_eas_devices.c) have in common, written once.  A zone holds
 * nodes of a few kinds in one red-black tree, keyed by (hash, kind,
 * key bytes), each node in one of the zone's LRU queues, most recently
 * used first.  Each kind counts against a budget, a share of the zone's
 * pages, so that one kind cannot push out another.  To make room, an
 * allocation frees expired nodes first (the owner says what expired),
 * then the least recently used node of the queue the kind may take
 * from; a kind with no such queue (live lockout counters, devices
 * counted for their user) is never dropped: the allocation fails and
 * the owner fails closed, saying so once a minute (full()).
 *
 * Every function but init() runs with the zone's mutex held
 * (ngx_http_eas_zone_lock()).  The owner's node structure starts with
 * ngx_http_eas_zone_node_t; its key bytes sit at the kind's key offset,
 * and the owner's shared structure starts with ngx_http_eas_zone_sh_t.
 */


#define NGX_HTTP_EAS_ZONE_KINDS    4
#define NGX_HTTP_EAS_ZONE_QUEUES   3
#define NGX_HTTP_EAS_ZONE_ALL      NGX_HTTP_EAS_ZONE_KINDS

/* seconds between two "zone is full" alerts */
#define NGX_HTTP_EAS_ZONE_FULL_LOG  60


/*
 * 64 bytes on LP64.  The kind is kept in rbnode.data, the byte nginx
 * leaves to the tree's user; "mark" and "count" are the owner's, kept
 * here so that a credential node still fills one 128-byte slot.
 */

typedef struct {
    ngx_rbtree_node_t       rbnode;        /* key: the owner's hash */
    ngx_queue_t             queue;         /* most recently used first */
    u_short                 len;           /* of the key */
    u_short                 extra;         /* the owner's bytes after it */
    u_char                  mark;          /* the owner's */
    u_short                 count;         /* the owner's */
} ngx_http_eas_zone_node_t;

#define ngx_http_eas_zone_kind(node)  ((node)->rbnode.data)
#define ngx_http_eas_zone_key(z, node)                                       \
    ((u_char *) (node) + (z)->sh->key[ngx_http_eas_zone_kind(node)])


typedef struct {
    ngx_rbtree_t            rbtree;
    ngx_rbtree_node_t       sentinel;
    ngx_queue_t             queues[NGX_HTTP_EAS_ZONE_QUEUES];
    size_t                  size;          /* the pages the slab hands out */
    size_t                  used[NGX_HTTP_EAS_ZONE_KINDS]; /* per budget */
    ngx_uint_t              nodes[NGX_HTTP_EAS_ZONE_KINDS]; /* per kind */
    time_t                  full_logged;   /* the last "zone is full" */
    u_short                 key[NGX_HTTP_EAS_ZONE_KINDS]; /* key offsets */
} ngx_http_eas_zone_sh_t;


typedef struct {
    u_short                 key;           /* offset of the key bytes */
    u_char                  budget;        /* the share it counts against */
    signed char             victims;       /* queue evicted for it, -1 */
} ngx_http_eas_zone_kind_t;


/* an owner's policy, a static table */
typedef struct {
    ngx_uint_t              nqueues;
    ngx_http_eas_zone_kind_t  kinds[NGX_HTTP_EAS_ZONE_KINDS];
    u_char                  shares[NGX_HTTP_EAS_ZONE_KINDS]; /* a budget
                                              may take 1/n of the pages,
                                              0: no cap of its own */
    size_t                  slot;          /* the smallest slot; 0: the
                                              node's size as it is */
    ngx_uint_t              tries;         /* nodes freed for one node */
    ngx_uint_t              scan;          /* nodes looked at per queue
                                              for an expired one */
    ngx_uint_t              evicted;       /* metric of an eviction */
    ngx_uint_t            (*expired)(ngx_http_eas_zone_node_t *node,
                                     time_t now);    /* NULL: none do */
} ngx_http_eas_zone_policy_t;


/* one process's handle of a zone */
typedef struct {
    ngx_http_eas_zone_sh_t            *sh;
    ngx_slab_pool_t                   *shpool;
    const ngx_http_eas_zone_policy_t  *policy;
    ngx_uint_t                         no_evict;  /* this allocation
                                                     takes free room only */
} ngx_http_eas_zone_t;


#define ngx_http_eas_zone_lock(z)    ngx_shmtx_lock(&(z)->shpool->mutex)
#define ngx_http_eas_zone_unlock(z)  ngx_shmtx_unlock(&(z)->shpool->mutex)
#define ngx_http_eas_zone_queue(z, n)  (&(z)->sh->queues[n])


ngx_int_t ngx_http_eas_zone_init(ngx_http_eas_zone_t *z,
    ngx_shm_zone_t *shm_zone, ngx_http_eas_zone_t *oz, size_t size);
ngx_http_eas_zone_node_t *ngx_http_eas_zone_find(ngx_http_eas_zone_t *z,
    ngx_uint_t kind, u_char *key, size_t len, uint32_t hash);
void *ngx_http_eas_zone_alloc(ngx_http_eas_zone_t *z, ngx_uint_t kind,
    size_t size, time_t now, void *keep);
void ngx_http_eas_zone_insert(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node, ngx_uint_t kind, uint32_t hash,
    ngx_uint_t queue);
void ngx_http_eas_zone_touch(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node, ngx_uint_t queue);
void ngx_http_eas_zone_unlink(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node);
void ngx_http_eas_zone_release(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node);
void ngx_http_eas_zone_free(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node);
void ngx_http_eas_zone_expire(ngx_http_eas_zone_t *z, ngx_uint_t queue,
    time_t now, ngx_uint_t n);
ngx_uint_t ngx_http_eas_zone_full(ngx_http_eas_zone_t *z, time_t now);
ngx_uint_t ngx_http_eas_zone_nodes(ngx_http_eas_zone_t *z, ngx_uint_t kind);


#endif /* _NGX_HTTP_EAS_ZONE_H_INCLUDED_ */
