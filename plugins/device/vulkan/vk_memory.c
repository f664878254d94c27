/* vk_memory.c - the device buffer type: big VkDeviceMemory blocks (256 MiB,
 * or one allocation's size when it is larger) each covered by one storage
 * VkBuffer, carved by a first-fit free list with coalescing. A block whose
 * last allocation goes is freed, so offloaded models give memory back. */
#include "vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vk_memory_type(const vk_device *d, uint32_t bits, VkMemoryPropertyFlags want) {
    for (uint32_t i = 0; i < d->memprops.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (d->memprops.memoryTypes[i].propertyFlags & want) == want) return (int)i;
    return -1;
}

int vk_make_buffer(vk_device *d, uint64_t size, VkBufferUsageFlags usage, uint32_t type, VkBuffer *buf,
                   VkDeviceMemory *mem, void **map) {
    *buf = VK_NULL_HANDLE;
    *mem = VK_NULL_HANDLE;
    if (map) *map = NULL;
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size, .usage = usage,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    if (d->fn.vkCreateBuffer(d->dev, &bci, NULL, buf) != VK_SUCCESS) return -1;
    VkMemoryRequirements req;
    d->fn.vkGetBufferMemoryRequirements(d->dev, *buf, &req);
    int t = (req.memoryTypeBits & (1u << type)) ? (int)type
                                                 : vk_memory_type(d, req.memoryTypeBits,
                                                                  d->memprops.memoryTypes[type].propertyFlags);
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = (uint32_t)t};
    if (t < 0 || d->fn.vkAllocateMemory(d->dev, &mai, NULL, mem) != VK_SUCCESS ||
        d->fn.vkBindBufferMemory(d->dev, *buf, *mem, 0) != VK_SUCCESS) {
        if (*mem) d->fn.vkFreeMemory(d->dev, *mem, NULL);
        d->fn.vkDestroyBuffer(d->dev, *buf, NULL);
        *buf = VK_NULL_HANDLE;
        *mem = VK_NULL_HANDLE;
        return -1;
    }
    if (map && (d->memprops.memoryTypes[t].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
        d->fn.vkMapMemory(d->dev, *mem, 0, VK_WHOLE_SIZE, 0, map) != VK_SUCCESS)
        *map = NULL;
    return 0;
}

static void vk_block_destroy(vk_device *d, uint32_t i) {
    vk_block *b = d->blocks[i];
    if (!b) return;
    if (b->mapped) d->fn.vkUnmapMemory(d->dev, b->mem);
    d->fn.vkDestroyBuffer(d->dev, b->buf, NULL);
    d->fn.vkFreeMemory(d->dev, b->mem, NULL);
    free(b->free);
    free(b);
    d->blocks[i] = NULL;
}

void vk_free_blocks(vk_device *d) {
    for (uint32_t i = 0; i < VK_MAX_BLOCKS; i++) vk_block_destroy(d, i);
    d->used = 0;
}

vk_block *vk_block_of(vk_device *d, const void *addr) {
    uint64_t a = (uint64_t)(uintptr_t)addr;
    if (!(a & VK_ADDR_TAG)) return NULL;
    uint32_t i = VK_ADDR_BLOCK(addr);
    return i < VK_MAX_BLOCKS ? d->blocks[i] : NULL;
}

/* First fit in block b; returns the offset or UINT64_MAX. */
static uint64_t vk_block_take(vk_block *b, uint64_t size) {
    for (int i = 0; i < b->nfree; i++) {
        vk_range *r = &b->free[i];
        if (r->size < size) continue;
        uint64_t off = r->off;
        r->off += size;
        r->size -= size;
        if (r->size == 0) {
            memmove(r, r + 1, (size_t)(b->nfree - i - 1) * sizeof *r);
            b->nfree--;
        }
        b->used += size;
        return off;
    }
    return UINT64_MAX;
}

static int vk_block_give(vk_block *b, uint64_t off, uint64_t size) {
    int i = 0;
    while (i < b->nfree && b->free[i].off < off) i++;
    int merge_prev = i > 0 && b->free[i - 1].off + b->free[i - 1].size == off;
    int merge_next = i < b->nfree && off + size == b->free[i].off;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (size_t)(b->nfree - i - 1) * sizeof *b->free);
        b->nfree--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].off = off;
        b->free[i].size += size;
    } else {
        if (b->nfree == b->capfree) {
            int cap = b->capfree ? 2 * b->capfree : 16;
            vk_range *nr = realloc(b->free, (size_t)cap * sizeof *nr);
            if (!nr) return -1; /* the range is leaked, nothing else breaks */
            b->free = nr;
            b->capfree = cap;
        }
        memmove(&b->free[i + 1], &b->free[i], (size_t)(b->nfree - i) * sizeof *b->free);
        b->free[i] = (vk_range){off, size};
        b->nfree++;
    }
    b->used -= size;
    return 0;
}

static int vk_block_new(vk_device *d, uint64_t size, uint32_t *out) {
    uint32_t slot = 0;
    while (slot < VK_MAX_BLOCKS && d->blocks[slot]) slot++;
    if (slot == VK_MAX_BLOCKS) return -1;
    vk_block *b = calloc(1, sizeof *b);
    if (!b) return -1;
    VkBufferUsageFlags use = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                             VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    if (vk_make_buffer(d, size, use, d->mem_type_local, &b->buf, &b->mem, &b->mapped) != 0) {
        free(b);
        return -1;
    }
    b->size = size;
    b->serial = ++d->block_serial;
    b->dedicated = size > d->block_size;
    b->free = malloc(16 * sizeof *b->free);
    if (!b->free) {
        d->blocks[slot] = b;
        vk_block_destroy(d, slot);
        return -1;
    }
    b->capfree = 16;
    b->free[0] = (vk_range){0, size};
    b->nfree = 1;
    d->blocks[slot] = b;
    *out = slot;
    return 0;
}

/* ---- buffer type ------------------------------------------------------------ */

static const char *vk_bt_name(sdrt_buffer_type *bt) { return ((vk_device *)bt->context)->name; }

static sdrt_buffer *vk_bt_alloc(sdrt_buffer_type *bt, size_t size) {
    vk_device *d = bt->context;
    uint64_t want = ((uint64_t)(size ? size : 1) + VK_ALIGN - 1) & ~(uint64_t)(VK_ALIGN - 1);
    sdrt_buffer *buf = calloc(1, sizeof *buf);
    vk_alloc *a = calloc(1, sizeof *a);
    if (!buf || !a) goto fail;
    pthread_mutex_lock(&d->lock);
    if (d->lost || !d->dev) {
        pthread_mutex_unlock(&d->lock);
        vk_log(d->fam, SDRT_LOG_WARN, "%s: allocation of %zu bytes refused: the device is lost (reset it)", d->name,
               size);
        goto fail;
    }
    if (want > d->max_alloc || (d->limit && d->used + want > d->limit)) {
        uint64_t used = d->used;
        pthread_mutex_unlock(&d->lock);
        vk_log(d->fam, SDRT_LOG_WARN,
               "%s: out of memory: %zu bytes asked, %llu in use, limit %llu, largest buffer %llu",
               d->name, size, (unsigned long long)used, (unsigned long long)d->limit,
               (unsigned long long)d->max_alloc);
        goto fail;
    }
    uint64_t off = UINT64_MAX;
    uint32_t bi = 0;
    for (; bi < VK_MAX_BLOCKS && off == UINT64_MAX; bi++)
        if (d->blocks[bi] && !d->blocks[bi]->dedicated) off = vk_block_take(d->blocks[bi], want);
    if (off != UINT64_MAX) bi--;
    if (off == UINT64_MAX) {
        uint64_t bsize = want > d->block_size ? want : d->block_size;
        if (vk_block_new(d, bsize, &bi) != 0 && (bsize == want || vk_block_new(d, want, &bi) != 0)) {
            uint64_t used = d->used;
            pthread_mutex_unlock(&d->lock);
            vk_log(d->fam, SDRT_LOG_WARN, "%s: out of device memory: %zu bytes asked, %llu in use", d->name, size,
                   (unsigned long long)used);
            goto fail;
        }
        off = vk_block_take(d->blocks[bi], want);
    }
    d->used += want;
    *a = (vk_alloc){.d = d, .generation = d->generation, .block = bi, .off = off, .size = want};
    pthread_mutex_unlock(&d->lock);
    buf->iface = &vk_buffer_iface;
    buf->context = a;
    buf->type = bt;
    buf->size = size;
    return buf;
fail:
    free(a);
    free(buf);
    return NULL;
}

static size_t vk_bt_alignment(sdrt_buffer_type *bt) { return VK_ALIGN; }
static int vk_bt_is_host(sdrt_buffer_type *bt) { return 0; }
static size_t vk_bt_max_size(sdrt_buffer_type *bt) { return (size_t)((vk_device *)bt->context)->max_alloc; }

const sdrt_buffer_type_iface vk_buffer_type_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_type_iface, max_size),
    .name = vk_bt_name,
    .alloc = vk_bt_alloc,
    .alignment = vk_bt_alignment,
    .is_host = vk_bt_is_host,
    .max_size = vk_bt_max_size,
};

void vk_alloc_release(vk_alloc *a) {
    vk_device *d = a->d;
    /* the range may be rewritten by the host at once (a new allocation's
     * write flushes too) and an empty block is destroyed: recorded kernels
     * of this thread that use it must have run */
    if (a->generation == d->generation && d->dev) vk_device_flush_mine(d);
    pthread_mutex_lock(&d->lock);
    if (a->generation == d->generation && d->dev && d->blocks[a->block]) {
        vk_block *b = d->blocks[a->block];
        vk_block_give(b, a->off, a->size);
        d->used -= a->size;
        if (b->used == 0) vk_block_destroy(d, a->block);
    }
    pthread_mutex_unlock(&d->lock);
    free(a);
}
