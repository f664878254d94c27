/* vk_transfer.c - the sdrt_buffer iface: synchronous write/read/memset and
 * device-side copies. Blocks in host-visible memory (CPU and integrated
 * devices) are plain memcpy through their mapping; VRAM goes through one
 * staging buffer per device and the device's transfer command buffer,
 * serialised by the device lock. Each first completes the work the calling
 * thread enqueued on the device's streams (vk_device_flush_mine): callers
 * free, reuse and rewrite memory that recorded kernels still read. */
#include "vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VK_STAGE_BYTES (16u << 20)

int vk_transfer_init(vk_device *d) {
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = d->qfamily};
    if (d->fn.vkCreateCommandPool(d->dev, &pci, NULL, &d->xpool) != VK_SUCCESS) return -1;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = d->xpool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (d->fn.vkAllocateCommandBuffers(d->dev, &ai, &d->xcb) != VK_SUCCESS ||
        d->fn.vkCreateFence(d->dev, &fci, NULL, &d->xfence) != VK_SUCCESS)
        return -1;
    return 0;
}

void vk_transfer_fini(vk_device *d) {
    if (d->stage) {
        d->fn.vkUnmapMemory(d->dev, d->stage_mem);
        d->fn.vkDestroyBuffer(d->dev, d->stage, NULL);
        d->fn.vkFreeMemory(d->dev, d->stage_mem, NULL);
    }
    if (d->xfence) d->fn.vkDestroyFence(d->dev, d->xfence, NULL);
    if (d->xpool) d->fn.vkDestroyCommandPool(d->dev, d->xpool, NULL);
    d->stage = VK_NULL_HANDLE;
    d->stage_mem = VK_NULL_HANDLE;
    d->stage_map = NULL;
    d->xfence = VK_NULL_HANDLE;
    d->xpool = VK_NULL_HANDLE;
    d->xcb = VK_NULL_HANDLE;
}

/* Lock held. */
static int vk_stage_ready(vk_device *d) {
    if (d->stage) return 0;
    if (vk_make_buffer(d, VK_STAGE_BYTES, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                       d->mem_type_host, &d->stage, &d->stage_mem, &d->stage_map) != 0 || !d->stage_map) {
        vk_log(d->fam, SDRT_LOG_ERROR, "%s: cannot allocate a %u-byte staging buffer", d->name, VK_STAGE_BYTES);
        return -1;
    }
    d->stage_size = VK_STAGE_BYTES;
    return 0;
}

/* Copy regions on the transfer command buffer, submitted and waited for.
 * Lock held. */
static int vk_xfer_copy(vk_device *d, VkBuffer src, uint64_t soff, VkBuffer dst, uint64_t doff, uint64_t size,
                        int fill, uint32_t value) {
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    d->fn.vkBeginCommandBuffer(d->xcb, &bi);
    if (fill) {
        d->fn.vkCmdFillBuffer(d->xcb, dst, doff, size, value);
    } else {
        VkBufferCopy r = {.srcOffset = soff, .dstOffset = doff, .size = size};
        d->fn.vkCmdCopyBuffer(d->xcb, src, dst, 1, &r);
    }
    d->fn.vkEndCommandBuffer(d->xcb);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &d->xcb};
    VkResult r = d->fn.vkQueueSubmit(d->queue, 1, &si, d->xfence);
    if (r == VK_SUCCESS) r = d->fn.vkWaitForFences(d->dev, 1, &d->xfence, VK_TRUE, UINT64_MAX);
    d->fn.vkResetFences(d->dev, 1, &d->xfence);
    if (r != VK_SUCCESS) {
        if (r == VK_ERROR_DEVICE_LOST) d->lost = 1;
        vk_log(d->fam, SDRT_LOG_ERROR, "%s: transfer of %llu bytes failed (VkResult %d)%s", d->name,
               (unsigned long long)size, (int)r, d->lost ? ": device lost, reset it" : "");
        return -1;
    }
    return 0;
}

/* The live block an address of buffer `buf` lies in, or NULL (stale
 * buffer from before a reset, or a lost device). */
static vk_block *vk_live_block(sdrt_buffer *buf, const void *addr) {
    vk_alloc *a = buf->context;
    vk_device *d = a->d;
    if (a->generation != d->generation || !d->dev || d->lost) return NULL;
    return vk_block_of(d, addr);
}

static void vk_buf_free(sdrt_buffer *buf) {
    if (!buf) return;
    vk_alloc_release(buf->context);
    free(buf);
}

static void *vk_buf_base(sdrt_buffer *buf) {
    vk_alloc *a = buf->context;
    return VK_ADDR(a->block, a->off);
}

static void vk_buf_write(sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    vk_block *b = vk_live_block(buf, dst);
    if (!b || !size) return;
    vk_device_flush_mine(((vk_alloc *)buf->context)->d);
    uint64_t off = VK_ADDR_OFF(dst);
    if (b->mapped) {
        memcpy((char *)b->mapped + off, src, size);
        return;
    }
    vk_device *d = ((vk_alloc *)buf->context)->d;
    pthread_mutex_lock(&d->lock);
    if (vk_stage_ready(d) == 0)
        for (uint64_t done = 0; done < size;) {
            uint64_t n = size - done < d->stage_size ? size - done : d->stage_size;
            memcpy(d->stage_map, (const char *)src + done, n);
            if (vk_xfer_copy(d, d->stage, 0, b->buf, off + done, n, 0, 0) != 0) break;
            done += n;
        }
    pthread_mutex_unlock(&d->lock);
}

static void vk_buf_read(sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    vk_block *b = vk_live_block(buf, src);
    if (!b || !size) return;
    vk_device_flush_mine(((vk_alloc *)buf->context)->d);
    uint64_t off = VK_ADDR_OFF(src);
    if (b->mapped) {
        memcpy(dst, (const char *)b->mapped + off, size);
        return;
    }
    vk_device *d = ((vk_alloc *)buf->context)->d;
    pthread_mutex_lock(&d->lock);
    if (vk_stage_ready(d) == 0)
        for (uint64_t done = 0; done < size;) {
            uint64_t n = size - done < d->stage_size ? size - done : d->stage_size;
            if (vk_xfer_copy(d, b->buf, off + done, d->stage, 0, n, 0, 0) != 0) break;
            memcpy((char *)dst + done, d->stage_map, n);
            done += n;
        }
    pthread_mutex_unlock(&d->lock);
}

static void vk_buf_memset(sdrt_buffer *buf, void *dst, int value, size_t size) {
    vk_block *b = vk_live_block(buf, dst);
    if (!b || !size) return;
    vk_device_flush_mine(((vk_alloc *)buf->context)->d);
    uint64_t off = VK_ADDR_OFF(dst);
    if (b->mapped) {
        memset((char *)b->mapped + off, value, size);
        return;
    }
    vk_device *d = ((vk_alloc *)buf->context)->d;
    uint32_t v = (uint8_t)value;
    v |= v << 8;
    v |= v << 16;
    if (off % 4 == 0 && size % 4 == 0) {
        pthread_mutex_lock(&d->lock);
        vk_xfer_copy(d, VK_NULL_HANDLE, 0, b->buf, off, size, 1, v);
        pthread_mutex_unlock(&d->lock);
        return;
    }
    /* unaligned: write a host block of the byte */
    size_t chunk = size < (1u << 20) ? size : (1u << 20);
    char *tmp = malloc(chunk);
    if (!tmp) return;
    memset(tmp, value, chunk);
    for (size_t done = 0; done < size; done += chunk)
        vk_buf_write(buf, (char *)dst + done, tmp, size - done < chunk ? size - done : chunk);
    free(tmp);
}

static int vk_buf_copy_from(sdrt_buffer *buf, void *dst, sdrt_buffer *src_buf, const void *src, size_t size) {
    if (src_buf->iface != &vk_buffer_iface) return 0;
    vk_alloc *da = buf->context, *sa = src_buf->context;
    if (da->d != sa->d) return 0;
    vk_block *db = vk_live_block(buf, dst), *sb = vk_live_block(src_buf, src);
    if (!db || !sb) return 0;
    if (!size) return 1;
    vk_device_flush_mine(da->d);
    if (db->mapped && sb->mapped) {
        memmove((char *)db->mapped + VK_ADDR_OFF(dst), (const char *)sb->mapped + VK_ADDR_OFF(src), size);
        return 1;
    }
    vk_device *d = da->d;
    pthread_mutex_lock(&d->lock);
    int rc = vk_xfer_copy(d, sb->buf, VK_ADDR_OFF(src), db->buf, VK_ADDR_OFF(dst), size, 0, 0);
    pthread_mutex_unlock(&d->lock);
    return rc == 0;
}

/* Weights and arenas share the device-local blocks today; the hint is
 * accepted so callers can state it. */
static void vk_buf_set_usage(sdrt_buffer *buf, int usage) { (void)buf, (void)usage; }

const sdrt_buffer_iface vk_buffer_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_iface, set_usage),
    .free = vk_buf_free,
    .base = vk_buf_base,
    .write = vk_buf_write,
    .read = vk_buf_read,
    .memset = vk_buf_memset,
    .copy_from = vk_buf_copy_from,
    .set_usage = vk_buf_set_usage,
};
