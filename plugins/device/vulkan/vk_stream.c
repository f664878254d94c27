/* vk_stream.c - a stream: one command buffer recorded per submission (a
 * graph, or the ops enqueued since the last synchronize), a barrier only
 * where a dispatch reads or overwrites bytes an earlier unbarriered one
 * wrote (or overwrites what one read), per-dispatch parameter words in
 * host-visible chunks, descriptor sets from pools reset after each wait.
 * One submission is in flight per stream; the next recording waits for it.
 *
 * Replay: a graph with a replay_key is recorded into a slot of its own
 * (command buffer, parameter words, descriptor sets, kept across waits);
 * when the key comes again the slot's command buffer is submitted as it is,
 * after the stream's pending work (the graph's input uploads), so a UNet
 * step costs one vkQueueSubmit instead of re-recording every dispatch. The
 * key promises the same ops and addresses (sdrt/backend.h); the slot also
 * remembers each block it binds by serial, so a block freed and made again
 * at the same index (same addresses, another VkBuffer) is recorded anew.
 * Graphs with operands outside this device's buffers (copied into
 * temporaries per call) are never kept. */
#include "vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VK_PCHUNK_SLOTS 1024u
#define VK_DPOOL_SETS 256u
#define VK_SPAN_MAX 512

typedef struct vk_event {
    vk_stream *s;
    uint64_t seq;
} vk_event;

static vk_stream *st_of(sdrt_stream *ss) { return ss->context; }
static sdrt_status vk_stream_submit(vk_stream *s);

static int vk_stream_live(vk_stream *s) {
    return s->generation == s->d->generation && s->d->dev && !s->d->lost && s->main.pool;
}

/* Frees the staging buffers; `deliver`: copy read results to their host
 * destinations first (the submission that filled them completed). */
static void vk_staged_release(vk_stream *s, int deliver) {
    vk_device *d = s->d;
    for (int i = 0; i < s->nstaged; i++) {
        struct vk_staged *g = &s->staged[i];
        if (deliver && g->host_dst) memcpy(g->host_dst, g->map, g->size);
        d->fn.vkUnmapMemory(d->dev, g->mem);
        d->fn.vkDestroyBuffer(d->dev, g->buf, NULL);
        d->fn.vkFreeMemory(d->dev, g->mem, NULL);
    }
    s->nstaged = 0;
}

/* Destroys a recording's Vulkan objects (its host arrays stay for reuse). */
static void vk_cmdrec_destroy(vk_device *d, vk_cmdrec *r) {
    for (int i = 0; i < r->npchunks; i++) {
        d->fn.vkUnmapMemory(d->dev, r->pchunks[i].mem);
        d->fn.vkDestroyBuffer(d->dev, r->pchunks[i].buf, NULL);
        d->fn.vkFreeMemory(d->dev, r->pchunks[i].mem, NULL);
    }
    r->npchunks = r->pchunk = 0;
    for (int i = 0; i < r->ndpools; i++) d->fn.vkDestroyDescriptorPool(d->dev, r->dpools[i], NULL);
    r->ndpools = r->dpool = r->dsets_in_pool = 0;
    if (r->pool) d->fn.vkDestroyCommandPool(d->dev, r->pool, NULL);
    r->pool = VK_NULL_HANDLE;
    r->cb = VK_NULL_HANDLE;
}

/* Makes the recording's parameter words and descriptor sets reusable
 * (what used them has completed). */
static void vk_cmdrec_recycle(vk_device *d, vk_cmdrec *r) {
    for (int i = 0; i < r->npchunks; i++) r->pchunks[i].used = 0;
    r->pchunk = 0;
    for (int i = 0; i < r->ndpools; i++) d->fn.vkResetDescriptorPool(d->dev, r->dpools[i], 0);
    r->dpool = 0;
    r->dsets_in_pool = 0;
}

static void vk_cmdrec_free_host(vk_cmdrec *r) {
    free(r->pchunks);
    free(r->dpools);
    r->pchunks = NULL;
    r->dpools = NULL;
}

void vk_stream_destroy_objects(vk_stream *s) {
    vk_device *d = s->d;
    if (!s->main.pool) return;
    for (int i = 0; i < s->ntemps; i++) sdrt_buffer_free(s->temps[i]);
    s->ntemps = 0;
    vk_staged_release(s, 0);
    vk_cmdrec_destroy(d, &s->main);
    for (int i = 0; i < VK_REPLAY_SLOTS; i++) {
        vk_cmdrec_destroy(d, &s->replay[i].rec);
        s->replay[i].key = 0;
        s->replay[i].nblocks = 0;
    }
    d->fn.vkDestroyFence(d->dev, s->fence, NULL);
    s->recording = s->in_flight = 0;
    s->cur = &s->main;
    s->rslot = NULL;
}

/* Waits for the submission in flight and recycles what it used. */
static sdrt_status vk_stream_wait(vk_stream *s) {
    vk_device *d = s->d;
    sdrt_status st = SDRT_OK;
    if (s->in_flight) {
        VkResult r = d->fn.vkWaitForFences(d->dev, 1, &s->fence, VK_TRUE, UINT64_MAX);
        d->fn.vkResetFences(d->dev, 1, &s->fence);
        s->in_flight = 0;
        s->completed = s->submitted;
        if (r != VK_SUCCESS) {
            if (r == VK_ERROR_DEVICE_LOST) d->lost = 1;
            vk_log(d->fam, SDRT_LOG_ERROR, "%s: waiting for the GPU failed (VkResult %d)%s", d->name, (int)r,
                   d->lost ? ": device lost" : "");
            st = SDRT_UNAVAILABLE;
        }
    }
    for (int i = 0; i < s->ntemps; i++) sdrt_buffer_free(s->temps[i]);
    s->ntemps = 0;
    vk_staged_release(s, st == SDRT_OK);
    vk_cmdrec_recycle(d, &s->main);
    return st;
}

static void vk_barrier(vk_stream *s, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = dst_access};
    s->d->fn.vkCmdPipelineBarrier(s->cur->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                                  dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
    s->nwrites = s->nreads = 0;
}

static sdrt_status vk_stream_begin(vk_stream *s) {
    if (s->recording) return SDRT_OK;
    sdrt_status st = vk_stream_wait(s);
    if (st != SDRT_OK) return st;
    s->d->fn.vkResetCommandPool(s->d->dev, s->main.pool, 0);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if (s->d->fn.vkBeginCommandBuffer(s->main.cb, &bi) != VK_SUCCESS) return SDRT_INTERNAL;
    s->recording = 1;
    s->owner = pthread_self();
    s->nwrites = s->nreads = 0;
    return SDRT_OK;
}

void vk_device_flush_mine(vk_device *d) {
    enum { MAX = 64 };
    vk_stream *mine[MAX];
    int n = 0;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&d->lock);
    for (vk_stream *s = d->streams; s && n < MAX; s = s->next)
        if ((s->recording || s->in_flight) && pthread_equal(s->owner, self) && s->generation == d->generation)
            mine[n++] = s;
    pthread_mutex_unlock(&d->lock);
    for (int i = 0; i < n; i++) {
        vk_stream_submit(mine[i]);
        vk_stream_wait(mine[i]);
    }
}

/* Ends command buffer cb: results visible to host reads through mappings
 * (and to transfers) after the fence. */
static int vk_cb_end(vk_device *d, VkCommandBuffer cb) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT};
    d->fn.vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                               VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0,
                               NULL);
    return d->fn.vkEndCommandBuffer(cb) == VK_SUCCESS ? 0 : -1;
}

/* Ends the main recording when there is one and submits it, followed by
 * `extra` (a replay slot's command buffer) when not NULL; no wait. */
static sdrt_status vk_stream_submit_with(vk_stream *s, VkCommandBuffer extra) {
    vk_device *d = s->d;
    VkCommandBuffer cbs[2];
    uint32_t n = 0;
    if (s->recording) {
        s->recording = 0;
        if (vk_cb_end(d, s->main.cb) != 0) return SDRT_INTERNAL;
        cbs[n++] = s->main.cb;
    }
    if (extra) cbs[n++] = extra;
    if (!n) return SDRT_OK;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = n, .pCommandBuffers = cbs};
    pthread_mutex_lock(&d->lock);
    VkResult r = d->fn.vkQueueSubmit(d->queue, 1, &si, s->fence);
    pthread_mutex_unlock(&d->lock);
    if (r != VK_SUCCESS) {
        if (r == VK_ERROR_DEVICE_LOST) d->lost = 1;
        vk_log(d->fam, SDRT_LOG_ERROR, "%s: vkQueueSubmit failed (VkResult %d)", d->name, (int)r);
        return r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? SDRT_RESOURCE_EXHAUSTED
                                                                                      : SDRT_UNAVAILABLE;
    }
    s->in_flight = 1;
    s->submitted++;
    return SDRT_OK;
}

/* Ends and submits the main recording (no wait). */
static sdrt_status vk_stream_submit(vk_stream *s) { return vk_stream_submit_with(s, VK_NULL_HANDLE); }

static int vk_overlaps(const vk_span *list, int n, const vk_span *x) {
    for (int i = 0; i < n; i++)
        if (list[i].block == x->block && list[i].lo < x->hi && x->lo < list[i].hi) return 1;
    return 0;
}

static int vk_span_push(vk_span **list, int *n, int *cap, const vk_span *x) {
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 32;
        vk_span *nl = realloc(*list, (size_t)nc * sizeof *nl);
        if (!nl) return -1;
        *list = nl;
        *cap = nc;
    }
    (*list)[(*n)++] = *x;
    return 0;
}

/* Barrier before an access to `srcs` (read) and `dst` (written) when any
 * overlaps unbarriered earlier work; then records them. */
static void vk_hazard(vk_stream *s, const vk_span *srcs, int nsrc, const vk_span *dst) {
    int need = s->nwrites + s->nreads > VK_SPAN_MAX;
    for (int i = 0; i < nsrc && !need; i++)
        need = srcs[i].hi > srcs[i].lo && vk_overlaps(s->writes, s->nwrites, &srcs[i]);
    if (!need && dst) need = vk_overlaps(s->writes, s->nwrites, dst) || vk_overlaps(s->reads, s->nreads, dst);
    if (need)
        vk_barrier(s, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                       VK_ACCESS_TRANSFER_WRITE_BIT);
    int fail = 0;
    for (int i = 0; i < nsrc; i++)
        if (srcs[i].hi > srcs[i].lo) fail |= vk_span_push(&s->reads, &s->nreads, &s->capreads, &srcs[i]);
    if (dst) fail |= vk_span_push(&s->writes, &s->nwrites, &s->capwrites, dst);
    if (fail) /* cannot track: be conservative next time */
        s->nwrites = s->nreads = VK_SPAN_MAX + 1;
}

/* A parameter slot: its buffer, its first word index, its host words. */
static int vk_param_slot(vk_stream *s, VkBuffer *buf, uint32_t *base, uint32_t **words) {
    vk_device *d = s->d;
    vk_cmdrec *rc = s->cur;
    while (rc->pchunk < rc->npchunks && rc->pchunks[rc->pchunk].used == rc->pchunks[rc->pchunk].cap) rc->pchunk++;
    if (rc->pchunk == rc->npchunks) {
        void *nl = realloc(rc->pchunks, (size_t)(rc->npchunks + 1) * sizeof *rc->pchunks);
        if (!nl) return -1;
        rc->pchunks = nl;
        VkBuffer b;
        VkDeviceMemory m;
        void *map;
        if (vk_make_buffer(d, (uint64_t)VK_PCHUNK_SLOTS * VK_PARAM_WORDS * 4, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                           d->mem_type_host, &b, &m, &map) != 0)
            return -1;
        if (!map) {
            d->fn.vkDestroyBuffer(d->dev, b, NULL);
            d->fn.vkFreeMemory(d->dev, m, NULL);
            return -1;
        }
        rc->pchunks[rc->npchunks].buf = b;
        rc->pchunks[rc->npchunks].mem = m;
        rc->pchunks[rc->npchunks].map = map;
        rc->pchunks[rc->npchunks].used = 0;
        rc->pchunks[rc->npchunks].cap = VK_PCHUNK_SLOTS;
        rc->npchunks++;
    }
    uint32_t slot = rc->pchunks[rc->pchunk].used++;
    *buf = rc->pchunks[rc->pchunk].buf;
    *base = slot * VK_PARAM_WORDS;
    *words = rc->pchunks[rc->pchunk].map + *base;
    return 0;
}

static VkDescriptorSet vk_dset(vk_stream *s) {
    vk_device *d = s->d;
    vk_cmdrec *rc = s->cur;
    if (rc->dpool < rc->ndpools && rc->dsets_in_pool == (int)VK_DPOOL_SETS) {
        rc->dpool++;
        rc->dsets_in_pool = 0;
    }
    if (rc->dpool == rc->ndpools) {
        VkDescriptorPool *nl = realloc(rc->dpools, (size_t)(rc->ndpools + 1) * sizeof *nl);
        if (!nl) return VK_NULL_HANDLE;
        rc->dpools = nl;
        VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = 6 * VK_DPOOL_SETS};
        VkDescriptorPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                         .maxSets = VK_DPOOL_SETS, .poolSizeCount = 1, .pPoolSizes = &ps};
        if (d->fn.vkCreateDescriptorPool(d->dev, &ci, NULL, &rc->dpools[rc->ndpools]) != VK_SUCCESS)
            return VK_NULL_HANDLE;
        rc->ndpools++;
        rc->dsets_in_pool = 0;
    }
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = rc->dpools[rc->dpool], .descriptorSetCount = 1,
                                      .pSetLayouts = &d->dsl};
    VkDescriptorSet set;
    if (d->fn.vkAllocateDescriptorSets(d->dev, &ai, &set) != VK_SUCCESS) return VK_NULL_HANDLE;
    rc->dsets_in_pool++;
    return set;
}

/* Remembers that the slot being recorded binds `block` (by serial). No
 * lock: an operand's allocation keeps its block alive. */
static int vk_replay_note_block(vk_stream *s, uint32_t block) {
    vk_replay *r = s->rslot;
    vk_block *b = s->d->blocks[block];
    if (!b) return -1;
    for (int i = 0; i < r->nblocks; i++)
        if (r->blocks[i].block == block) return 0;
    if (r->nblocks == r->capblocks) {
        int nc = r->capblocks ? 2 * r->capblocks : 8;
        void *nl = realloc(r->blocks, (size_t)nc * sizeof *r->blocks);
        if (!nl) return -1;
        r->blocks = nl;
        r->capblocks = nc;
    }
    r->blocks[r->nblocks++] = (struct vk_replay_block){block, b->serial};
    return 0;
}

sdrt_status vk_stream_dispatch(vk_stream *s, const vk_dispatch *ds) {
    vk_device *d = s->d;
    if (ds->groups[0] == 0 || ds->groups[1] == 0 || ds->groups[2] == 0) return SDRT_OK;
    VkPipeline pipe = vk_pipeline_get(d, ds->kernel);
    if (!pipe) return SDRT_INTERNAL;
    if (s->cur == &s->main) {
        sdrt_status st = vk_stream_begin(s);
        if (st != SDRT_OK) return st;
    } else {
        for (int i = 0; i < 5; i++)
            if (ds->bind[i] && vk_replay_note_block(s, ds->spans[i].block) != 0) {
                vk_log(d->fam, SDRT_LOG_WARN, "%s: out of host memory recording a graph", d->name);
                return SDRT_RESOURCE_EXHAUSTED;
            }
    }
    VkBuffer pbuf;
    uint32_t base, *words;
    VkDescriptorSet set = VK_NULL_HANDLE;
    if (vk_param_slot(s, &pbuf, &base, &words) != 0 || (set = vk_dset(s)) == VK_NULL_HANDLE) {
        vk_log(d->fam, SDRT_LOG_WARN, "%s: out of host-visible memory for dispatch parameters", d->name);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    memcpy(words, ds->words, sizeof ds->words);
    VkDescriptorBufferInfo bi[6];
    VkWriteDescriptorSet w[6];
    for (uint32_t i = 0; i < 6; i++) {
        VkBuffer b = i < 5 && ds->bind[i] ? ds->bind[i] : pbuf;
        bi[i] = (VkDescriptorBufferInfo){.buffer = b, .offset = 0, .range = VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = i,
                                      .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &bi[i]};
    }
    d->fn.vkUpdateDescriptorSets(d->dev, 6, w, 0, NULL);
    vk_hazard(s, ds->spans, 4, &ds->spans[4]);
    VkCommandBuffer cb = s->cur->cb;
    d->fn.vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    d->fn.vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, d->layout, 0, 1, &set, 0, NULL);
    d->fn.vkCmdPushConstants(cb, d->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, 4, &base);
    d->fn.vkCmdDispatch(cb, ds->groups[0], ds->groups[1], ds->groups[2]);
    return SDRT_OK;
}

sdrt_buffer *vk_stream_temp(vk_stream *s, size_t size) {
    if (s->ntemps == s->captemps) {
        int nc = s->captemps ? 2 * s->captemps : 8;
        sdrt_buffer **nl = realloc(s->temps, (size_t)nc * sizeof *nl);
        if (!nl) return NULL;
        s->temps = nl;
        s->captemps = nc;
    }
    sdrt_buffer *b = sdrt_buffer_alloc(&s->d->bt, size);
    if (b) s->temps[s->ntemps++] = b;
    return b;
}

/* ---- sdrt_stream iface ---------------------------------------------------------- */

static void vk_s_free(sdrt_stream *ss) {
    if (!ss) return;
    vk_stream *s = st_of(ss);
    vk_device *d = s->d;
    if (vk_stream_live(s)) {
        vk_stream_submit(s);
        vk_stream_wait(s);
    }
    pthread_mutex_lock(&d->lock);
    for (vk_stream **pp = &d->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&d->lock);
    if (s->generation == d->generation && d->dev) vk_stream_destroy_objects(s);
    vk_cmdrec_free_host(&s->main);
    for (int i = 0; i < VK_REPLAY_SLOTS; i++) {
        vk_cmdrec_free_host(&s->replay[i].rec);
        free(s->replay[i].blocks);
    }
    free(s->temps);
    free(s->staged);
    free(s->writes);
    free(s->reads);
    free(s);
}

static sdrt_status vk_s_compute(sdrt_stream *ss, const sdrt_op *op) {
    vk_stream *s = st_of(ss);
    if (!vk_stream_live(s)) return SDRT_UNAVAILABLE;
    return vk_op_record(s, op);
}

static void vk_s_synchronize(sdrt_stream *ss) {
    vk_stream *s = st_of(ss);
    if (!vk_stream_live(s)) return;
    vk_stream_submit(s);
    vk_stream_wait(s);
}

/* 1 when every operand of g lies in this device's buffers (a graph with
 * host operands uploads them into temporaries per call: never kept). */
static int vk_graph_resident(vk_stream *s, const sdrt_graph *g) {
    for (size_t i = 0; i < g->n_ops; i++) {
        const sdrt_op *op = &g->ops[i];
        if (!op->dst || !vk_tensor_is_ours(s->d, op->dst)) return 0;
        for (int j = 0; j < SDRT_OP_MAX_SRC; j++)
            if (op->src[j] && !vk_tensor_is_ours(s->d, op->src[j])) return 0;
    }
    return 1;
}

/* The slot recorded for `key` whose blocks are all still the ones it
 * bound, else NULL (a stale slot is emptied). Under the device lock: a
 * block the slot remembers may have lost its last allocation and be
 * destroyed by another thread meanwhile. */
static vk_replay *vk_replay_find(vk_stream *s, uint64_t key) {
    vk_device *d = s->d;
    for (int i = 0; i < VK_REPLAY_SLOTS; i++) {
        vk_replay *r = &s->replay[i];
        if (r->key != key) continue;
        pthread_mutex_lock(&d->lock);
        for (int j = 0; j < r->nblocks && r->key; j++) {
            vk_block *b = d->blocks[r->blocks[j].block];
            if (!b || b->serial != r->blocks[j].serial) r->key = 0;
        }
        pthread_mutex_unlock(&d->lock);
        return r->key ? r : NULL;
    }
    return NULL;
}

/* Records g into a slot (the least recently used, or the stale one of
 * its key) and returns it, or NULL with *st set. The stream has nothing
 * in flight (the slot's old command buffer may have been that). */
static vk_replay *vk_replay_record(vk_stream *s, const sdrt_graph *g, sdrt_status *st) {
    vk_device *d = s->d;
    vk_replay *r = &s->replay[0];
    for (int i = 1; i < VK_REPLAY_SLOTS; i++)
        if (s->replay[i].stamp < r->stamp) r = &s->replay[i];
    r->key = 0;
    r->nblocks = 0;
    *st = SDRT_INTERNAL;
    if (!r->rec.pool) {
        VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                       .queueFamilyIndex = d->qfamily};
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
        if (d->fn.vkCreateCommandPool(d->dev, &pci, NULL, &r->rec.pool) != VK_SUCCESS) {
            r->rec.pool = VK_NULL_HANDLE;
            return NULL;
        }
        ai.commandPool = r->rec.pool;
        if (d->fn.vkAllocateCommandBuffers(d->dev, &ai, &r->rec.cb) != VK_SUCCESS) {
            vk_cmdrec_destroy(d, &r->rec);
            return NULL;
        }
    } else {
        d->fn.vkResetCommandPool(d->dev, r->rec.pool, 0);
        vk_cmdrec_recycle(d, &r->rec);
    }
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if (d->fn.vkBeginCommandBuffer(r->rec.cb, &bi) != VK_SUCCESS) return NULL;
    s->cur = &r->rec;
    s->rslot = r;
    /* ordered after whatever the queue ran before (the uploads of this
     * graph's inputs in the main recording, earlier graphs) */
    vk_barrier(s, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
               VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                   VK_ACCESS_TRANSFER_WRITE_BIT);
    *st = SDRT_OK;
    for (size_t i = 0; i < g->n_ops && *st == SDRT_OK; i++) *st = vk_op_record(s, &g->ops[i]);
    s->cur = &s->main;
    s->rslot = NULL;
    s->nwrites = s->nreads = 0;
    int ended = vk_cb_end(d, r->rec.cb) == 0;
    if (*st != SDRT_OK || !ended) {
        if (*st == SDRT_OK) *st = SDRT_INTERNAL;
        return NULL;
    }
    r->key = g->replay_key;
    __atomic_fetch_add(&d->cb_recorded, 1, __ATOMIC_RELAXED);
    return r;
}

static sdrt_status vk_s_graph_compute(sdrt_stream *ss, const sdrt_graph *g) {
    vk_stream *s = st_of(ss);
    if (!vk_stream_live(s)) return SDRT_UNAVAILABLE;
    uint64_t key = SDRT_HAS_MEMBER(g, sdrt_graph, replay_key) ? g->replay_key : 0;
    if (key && g->n_ops && vk_graph_resident(s, g)) {
        /* the slot's command buffer may be the pending submission */
        if (s->in_flight && !s->recording) {
            sdrt_status st = vk_stream_wait(s);
            if (st != SDRT_OK) return st;
        }
        s->owner = pthread_self();
        vk_replay *r = vk_replay_find(s, key);
        if (r) {
            __atomic_fetch_add(&s->d->cb_replayed, 1, __ATOMIC_RELAXED);
        } else {
            sdrt_status st;
            r = vk_replay_record(s, g, &st);
            if (!r) {
                vk_stream_submit(s); /* the uploads before it still run */
                return st;
            }
        }
        r->stamp = ++s->replay_clock;
        return vk_stream_submit_with(s, r->rec.cb);
    }
    for (size_t i = 0; i < g->n_ops; i++) {
        sdrt_status st = vk_op_record(s, &g->ops[i]);
        if (st != SDRT_OK) {
            vk_stream_submit(s); /* ops before the failing one still run, as documented */
            return st;
        }
    }
    return vk_stream_submit(s);
}

/* The live block of `addr` in `buf` when it is this stream's device's
 * buffer, else NULL. */
static vk_block *vk_own_block(vk_stream *s, sdrt_buffer *buf, const void *addr) {
    if (buf->iface != &vk_buffer_iface || ((vk_alloc *)buf->context)->d != s->d) return NULL;
    return vk_block_of(s->d, addr);
}

/* A host-visible staging buffer of `size` bytes owned by the stream until
 * its next wait; NULL when out of memory. */
static struct vk_staged *vk_stage(vk_stream *s, size_t size) {
    vk_device *d = s->d;
    if (s->nstaged == s->capstaged) {
        int nc = s->capstaged ? 2 * s->capstaged : 8;
        struct vk_staged *nl = realloc(s->staged, (size_t)nc * sizeof *nl);
        if (!nl) return NULL;
        s->staged = nl;
        s->capstaged = nc;
    }
    struct vk_staged *g = &s->staged[s->nstaged];
    memset(g, 0, sizeof *g);
    if (vk_make_buffer(d, size, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                       d->mem_type_host, &g->buf, &g->mem, &g->map) != 0)
        return NULL;
    if (!g->map) {
        d->fn.vkDestroyBuffer(d->dev, g->buf, NULL);
        d->fn.vkFreeMemory(d->dev, g->mem, NULL);
        return NULL;
    }
    g->size = size;
    s->nstaged++;
    return g;
}

/* Host -> buffer in stream order: straight into a mapped block when the
 * stream is idle, else through a staging copy recorded in the command
 * buffer (the host source is copied now, so it may change at once). */
static sdrt_status vk_s_write_async(sdrt_stream *ss, sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    vk_stream *s = st_of(ss);
    if (!vk_stream_live(s)) return SDRT_UNAVAILABLE;
    vk_block *b = vk_own_block(s, buf, dst);
    if (!b) {
        vk_s_synchronize(ss);
        buf->iface->write(buf, dst, src, size);
        return SDRT_OK;
    }
    if (!size) return SDRT_OK;
    if (b->mapped && !s->recording && !s->in_flight) {
        memcpy((char *)b->mapped + VK_ADDR_OFF(dst), src, size);
        return SDRT_OK;
    }
    sdrt_status st = vk_stream_begin(s);
    if (st != SDRT_OK) return st;
    struct vk_staged *g = vk_stage(s, size);
    if (!g) {
        vk_log(s->d->fam, SDRT_LOG_WARN, "%s: out of memory: %zu bytes of staging for an upload", s->d->name, size);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    memcpy(g->map, src, size);
    vk_span ws = {VK_ADDR_BLOCK(dst), VK_ADDR_OFF(dst), VK_ADDR_OFF(dst) + size};
    vk_hazard(s, NULL, 0, &ws);
    VkBufferCopy r = {.srcOffset = 0, .dstOffset = VK_ADDR_OFF(dst), .size = size};
    s->d->fn.vkCmdCopyBuffer(s->main.cb, g->buf, b->buf, 1, &r);
    return SDRT_OK;
}

/* Buffer -> host in stream order: the copy lands in staging and reaches
 * `dst` when the stream is next waited for (synchronize, an event). */
static sdrt_status vk_s_read_async(sdrt_stream *ss, sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    vk_stream *s = st_of(ss);
    if (!vk_stream_live(s)) return SDRT_UNAVAILABLE;
    vk_block *b = vk_own_block(s, buf, src);
    if (!b) {
        vk_s_synchronize(ss);
        buf->iface->read(buf, dst, src, size);
        return SDRT_OK;
    }
    if (!size) return SDRT_OK;
    if (b->mapped && !s->recording && !s->in_flight) {
        memcpy(dst, (const char *)b->mapped + VK_ADDR_OFF(src), size);
        return SDRT_OK;
    }
    sdrt_status st = vk_stream_begin(s);
    if (st != SDRT_OK) return st;
    struct vk_staged *g = vk_stage(s, size);
    if (!g) {
        vk_log(s->d->fam, SDRT_LOG_WARN, "%s: out of memory: %zu bytes of staging for a download", s->d->name, size);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    g->host_dst = dst;
    vk_span rs = {VK_ADDR_BLOCK(src), VK_ADDR_OFF(src), VK_ADDR_OFF(src) + size};
    vk_hazard(s, &rs, 1, NULL);
    VkBufferCopy r = {.srcOffset = VK_ADDR_OFF(src), .dstOffset = 0, .size = size};
    s->d->fn.vkCmdCopyBuffer(s->main.cb, b->buf, g->buf, 1, &r);
    return SDRT_OK;
}

static sdrt_status vk_s_copy_async(sdrt_stream *ss, sdrt_buffer *dst_buf, void *dst, sdrt_buffer *src_buf,
                                   const void *src, size_t size) {
    vk_stream *s = st_of(ss);
    if (!vk_stream_live(s)) return SDRT_UNAVAILABLE;
    if (dst_buf->iface != &vk_buffer_iface || src_buf->iface != &vk_buffer_iface ||
        ((vk_alloc *)dst_buf->context)->d != s->d || ((vk_alloc *)src_buf->context)->d != s->d)
        return SDRT_UNSUPPORTED;
    vk_block *db = vk_block_of(s->d, dst), *sb = vk_block_of(s->d, src);
    if (!db || !sb) return SDRT_INVALID_ARGUMENT;
    if (!size) return SDRT_OK;
    sdrt_status st = vk_stream_begin(s);
    if (st != SDRT_OK) return st;
    vk_span rs = {VK_ADDR_BLOCK(src), VK_ADDR_OFF(src), VK_ADDR_OFF(src) + size};
    vk_span ws = {VK_ADDR_BLOCK(dst), VK_ADDR_OFF(dst), VK_ADDR_OFF(dst) + size};
    vk_hazard(s, &rs, 1, &ws);
    VkBufferCopy r = {.srcOffset = VK_ADDR_OFF(src), .dstOffset = VK_ADDR_OFF(dst), .size = size};
    s->d->fn.vkCmdCopyBuffer(s->main.cb, sb->buf, db->buf, 1, &r);
    return SDRT_OK;
}

static sdrt_event *vk_s_event_record(sdrt_stream *ss) {
    vk_stream *s = st_of(ss);
    vk_event *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    if (vk_stream_live(s)) vk_stream_submit(s);
    e->s = s;
    e->seq = s->submitted;
    return (sdrt_event *)e;
}

static void vk_event_sync(vk_event *e) {
    vk_stream *s = e->s;
    if (vk_stream_live(s) && s->completed < e->seq) vk_stream_wait(s);
}

static void vk_s_event_synchronize(sdrt_stream *ss, sdrt_event *ev) { vk_event_sync((vk_event *)ev); }

/* Another stream of this device: the host waits for it (one queue, so the
 * order on the GPU needs nothing more). */
static void vk_s_event_wait(sdrt_stream *ss, sdrt_event *ev) { vk_event_sync((vk_event *)ev); }

static void vk_s_event_free(sdrt_stream *ss, sdrt_event *ev) { free(ev); }

static const sdrt_stream_iface g_vk_stream_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_stream_iface, weight_dtype),
    .free = vk_s_free,
    .compute = vk_s_compute,
    .synchronize = vk_s_synchronize,
    .graph_compute = vk_s_graph_compute,
    .write_async = vk_s_write_async,
    .read_async = vk_s_read_async,
    .copy_async = vk_s_copy_async,
    .event_record = vk_s_event_record,
    .event_synchronize = vk_s_event_synchronize,
    .event_wait = vk_s_event_wait,
    .event_free = vk_s_event_free,
    .weight_dtype = vk_stream_weight_dtype,
};

sdrt_stream *vk_stream_new(vk_device *d) {
    if (!d->dev || d->lost) return NULL;
    vk_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->d = d;
    s->generation = d->generation;
    s->precision = d->fam->precision;
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT, .queueFamilyIndex = d->qfamily};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (d->fn.vkCreateCommandPool(d->dev, &pci, NULL, &s->main.pool) != VK_SUCCESS) {
        free(s);
        return NULL;
    }
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = s->main.pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    if (d->fn.vkAllocateCommandBuffers(d->dev, &ai, &s->main.cb) != VK_SUCCESS ||
        d->fn.vkCreateFence(d->dev, &fci, NULL, &s->fence) != VK_SUCCESS) {
        d->fn.vkDestroyCommandPool(d->dev, s->main.pool, NULL);
        free(s);
        return NULL;
    }
    s->cur = &s->main;
    s->ss = (sdrt_stream){.iface = &g_vk_stream_iface, .context = s, .device = &d->sd};
    pthread_mutex_lock(&d->lock);
    s->next = d->streams;
    d->streams = s;
    pthread_mutex_unlock(&d->lock);
    return &s->ss;
}
