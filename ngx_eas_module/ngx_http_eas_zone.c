
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The shared-zone layer used by the pre-authentication zone and the
 * device zone: keyed nodes in a red-black tree, LRU queues, budgets per
 * kind, the eviction policy and the "zone is full" rate limit.  See
 * ngx_http_eas_zone.h for the model; nginx's slab allocator, tree and
 * queues underneath, as limit_req uses them.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_eas_zone.h"
#include "ngx_http_eas_metrics.h"


static void ngx_http_eas_zone_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_eas_zone_cmp(ngx_http_eas_zone_sh_t *sh,
    ngx_http_eas_zone_node_t *a, ngx_http_eas_zone_node_t *b);
static size_t ngx_http_eas_zone_slot(ngx_http_eas_zone_t *z, size_t size);
static ngx_uint_t ngx_http_eas_zone_expire_any(ngx_http_eas_zone_t *z,
    time_t now);
static ngx_uint_t ngx_http_eas_zone_evict(ngx_http_eas_zone_t *z,
    ngx_uint_t kind, void *keep);


/*
 * The zone's shared part, made once; a reload or a worker finds it
 * again.  NGX_OK: made now, the owner sets up its own fields (zeroed);
 * NGX_DECLINED: carried over.
 */

ngx_int_t
ngx_http_eas_zone_init(ngx_http_eas_zone_t *z, ngx_shm_zone_t *shm_zone,
    ngx_http_eas_zone_t *oz, size_t size)
{
    size_t       len;
    ngx_uint_t   i;

    if (oz) {
        z->sh = oz->sh;
        z->shpool = oz->shpool;

        return NGX_DECLINED;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;

        return NGX_DECLINED;
    }

    z->sh = ngx_slab_calloc(z->shpool, size);
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel,
                    ngx_http_eas_zone_insert_value);

    for (i = 0; i < NGX_HTTP_EAS_ZONE_QUEUES; i++) {
        ngx_queue_init(&z->sh->queues[i]);
    }

    for (i = 0; i < NGX_HTTP_EAS_ZONE_KINDS; i++) {
        z->sh->key[i] = z->policy->kinds[i].key;
    }

    /* the budgets share out the pages, what the slab can hand out */
    z->sh->size = z->shpool->end - z->shpool->start;

    len = sizeof(" in eas zone \"\"") + shm_zone->shm.name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in eas zone \"%V\"%Z",
                &shm_zone->shm.name);

    z->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_http_eas_zone_node_t *
ngx_http_eas_zone_find(ngx_http_eas_zone_t *z, ngx_uint_t kind, u_char *key,
    size_t len, uint32_t hash)
{
    ngx_int_t                  rc;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_eas_zone_node_t  *n;

    node = z->sh->rbtree.root;
    sentinel = z->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        n = (ngx_http_eas_zone_node_t *) node;

        rc = (ngx_int_t) kind - (ngx_int_t) ngx_http_eas_zone_kind(n);

        if (rc == 0) {
            rc = ngx_memn2cmp(key, ngx_http_eas_zone_key(z, n), len,
                              (size_t) n->len);
        }

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * A slot for a node of this kind within its budget: expired nodes of
 * any kind go first, then the least recently used of the queue the kind
 * may take from (never "keep").  NULL: no room without dropping what
 * must stay.  The memory is not initialised.
 */

void *
ngx_http_eas_zone_alloc(ngx_http_eas_zone_t *z, ngx_uint_t kind, size_t size,
    time_t now, void *keep)
{
    void        *p;
    size_t       slot, cap;
    ngx_uint_t   i, budget;

    slot = ngx_http_eas_zone_slot(z, size);
    budget = z->policy->kinds[kind].budget;

    cap = z->policy->shares[budget]
          ? z->sh->size / z->policy->shares[budget] : 0;

    for (i = 0; /* void */ ; i++) {

        if (cap == 0 || z->sh->used[budget] + slot <= cap) {
            p = ngx_slab_alloc_locked(z->shpool, slot);

            if (p) {
                z->sh->used[budget] += slot;
                return p;
            }
        }

        if (i == z->policy->tries) {
            return NULL;
        }

        if (ngx_http_eas_zone_expire_any(z, now)) {
            continue;
        }

        if (z->no_evict || !ngx_http_eas_zone_evict(z, kind, keep)) {
            return NULL;
        }

        ngx_http_eas_metrics_count(z->policy->evicted);
    }
}


/* the key bytes are in place; the node goes at the head of "queue" */

void
ngx_http_eas_zone_insert(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node, ngx_uint_t kind, uint32_t hash,
    ngx_uint_t queue)
{
    node->rbnode.key = hash;
    ngx_http_eas_zone_kind(node) = (u_char) kind;

    ngx_rbtree_insert(&z->sh->rbtree, &node->rbnode);
    ngx_queue_insert_head(&z->sh->queues[queue], &node->queue);

    z->sh->nodes[kind]++;
}


/* used now: to the head of "queue" (its own, or another one) */

void
ngx_http_eas_zone_touch(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node, ngx_uint_t queue)
{
    ngx_queue_remove(&node->queue);
    ngx_queue_insert_head(&z->sh->queues[queue], &node->queue);
}


/* out of the tree and its queue, its memory still held */

void
ngx_http_eas_zone_unlink(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node)
{
    ngx_queue_remove(&node->queue);
    ngx_rbtree_delete(&z->sh->rbtree, &node->rbnode);

    z->sh->nodes[ngx_http_eas_zone_kind(node)]--;
}


/* the memory of an unlinked node back to its budget */

void
ngx_http_eas_zone_release(ngx_http_eas_zone_t *z,
    ngx_http_eas_zone_node_t *node)
{
    ngx_uint_t  kind;

    kind = ngx_http_eas_zone_kind(node);

    z->sh->used[z->policy->kinds[kind].budget] -=
        ngx_http_eas_zone_slot(z, z->sh->key[kind] + node->len + node->extra);

    ngx_slab_free_locked(z->shpool, node);
}


void
ngx_http_eas_zone_free(ngx_http_eas_zone_t *z, ngx_http_eas_zone_node_t *node)
{
    ngx_http_eas_zone_unlink(z, node);
    ngx_http_eas_zone_release(z, node);
}


/* free up to n nodes from the tail of a queue whose time is over */

void
ngx_http_eas_zone_expire(ngx_http_eas_zone_t *z, ngx_uint_t queue,
    time_t now, ngx_uint_t n)
{
    ngx_queue_t               *q;
    ngx_http_eas_zone_node_t  *node;

    q = &z->sh->queues[queue];

    while (n--) {

        if (ngx_queue_empty(q)) {
            return;
        }

        node = ngx_queue_data(ngx_queue_last(q), ngx_http_eas_zone_node_t,
                              queue);

        if (!z->policy->expired(node, now)) {
            return;
        }

        ngx_http_eas_zone_free(z, node);
    }
}


/* is it time to say again that the zone is full? */

ngx_uint_t
ngx_http_eas_zone_full(ngx_http_eas_zone_t *z, time_t now)
{
    if (now - z->sh->full_logged < NGX_HTTP_EAS_ZONE_FULL_LOG) {
        return 0;
    }

    z->sh->full_logged = now;

    return 1;
}


/* the nodes of one kind, or of every kind (NGX_HTTP_EAS_ZONE_ALL) */

ngx_uint_t
ngx_http_eas_zone_nodes(ngx_http_eas_zone_t *z, ngx_uint_t kind)
{
    ngx_uint_t  i, n;

    if (kind != NGX_HTTP_EAS_ZONE_ALL) {
        return z->sh->nodes[kind];
    }

    n = 0;

    for (i = 0; i < NGX_HTTP_EAS_ZONE_KINDS; i++) {
        n += z->sh->nodes[i];
    }

    return n;
}


/*
 * nginx gives the insert function no context but the sentinel, which
 * is the zone's own: the key offsets are found from it.
 */

static void
ngx_http_eas_zone_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t      **p;
    ngx_http_eas_zone_sh_t  *sh;

    sh = (ngx_http_eas_zone_sh_t *)
             ((u_char *) sentinel - offsetof(ngx_http_eas_zone_sh_t,
                                             sentinel));

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */
            p = (ngx_http_eas_zone_cmp(sh,
                                       (ngx_http_eas_zone_node_t *) node,
                                       (ngx_http_eas_zone_node_t *) temp)
                 < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_int_t
ngx_http_eas_zone_cmp(ngx_http_eas_zone_sh_t *sh, ngx_http_eas_zone_node_t *a,
    ngx_http_eas_zone_node_t *b)
{
    ngx_int_t   rc;
    ngx_uint_t  ka, kb;

    ka = ngx_http_eas_zone_kind(a);
    kb = ngx_http_eas_zone_kind(b);

    rc = (ngx_int_t) ka - (ngx_int_t) kb;

    if (rc == 0) {
        rc = ngx_memn2cmp((u_char *) a + sh->key[ka],
                          (u_char *) b + sh->key[kb], a->len, b->len);
    }

    return rc;
}


/*
 * The slab slot a node takes.  With a smallest slot, every small node
 * takes one size class, so that a slot one kind frees fits any other.
 */

static size_t
ngx_http_eas_zone_slot(ngx_http_eas_zone_t *z, size_t size)
{
    size_t  slot;

    if (z->policy->slot == 0) {
        return size;
    }

    if (size > ngx_pagesize / 2) {
        return ngx_align(size, ngx_pagesize);
    }

    for (slot = z->policy->slot; slot < size; slot <<= 1) {
        /* void */
    }

    return slot;
}


/* free one node whose time is over, looking a few from each tail */

static ngx_uint_t
ngx_http_eas_zone_expire_any(ngx_http_eas_zone_t *z, time_t now)
{
    ngx_uint_t                 i, n;
    ngx_queue_t               *queue, *q;
    ngx_http_eas_zone_node_t  *node;

    if (z->policy->expired == NULL) {
        return 0;
    }

    for (i = 0; i < z->policy->nqueues; i++) {

        queue = &z->sh->queues[i];
        q = queue;

        for (n = 0; n < z->policy->scan; n++) {
            q = ngx_queue_prev(q);

            if (q == queue) {
                break;
            }

            node = ngx_queue_data(q, ngx_http_eas_zone_node_t, queue);

            if (z->policy->expired(node, now)) {
                ngx_http_eas_zone_free(z, node);
                return 1;
            }
        }
    }

    return 0;
}


/* the least recently used node of the kind's victims queue, not keep */

static ngx_uint_t
ngx_http_eas_zone_evict(ngx_http_eas_zone_t *z, ngx_uint_t kind, void *keep)
{
    ngx_int_t                  v;
    ngx_queue_t               *queue, *q;
    ngx_http_eas_zone_node_t  *node;

    v = z->policy->kinds[kind].victims;

    if (v < 0) {
        return 0;
    }

    queue = &z->sh->queues[v];
    q = ngx_queue_last(queue);

    if (q == ngx_queue_sentinel(queue)) {
        return 0;
    }

    node = ngx_queue_data(q, ngx_http_eas_zone_node_t, queue);

    if ((void *) node == keep) {
        q = ngx_queue_prev(q);

        if (q == ngx_queue_sentinel(queue)) {
            return 0;
        }

        node = ngx_queue_data(q, ngx_http_eas_zone_node_t, queue);
    }

    ngx_http_eas_zone_free(z, node);

    return 1;
}
