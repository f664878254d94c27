/* vk_internal.h - the Vulkan backend family's private types.
 *
 * Levels: one vk_family (instance) -> vk_device per physical device (in the
 * loader's order, so "vulkan:N" matches the device plugin's probe) -> its
 * sub-allocated memory blocks, pipelines and streams.
 *
 * Addresses: sdrt_tensor.data for Vulkan memory is VK_ADDR(block, offset),
 * a non-canonical value (bit 63 set) that faults if host code dereferences
 * it; the kernels bind the whole block and get the offset as a parameter.
 */
#ifndef SDRT_VK_INTERNAL_H
#define SDRT_VK_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "sdrt/backend.h"
#include "sdrt/precision.h"
#include "vk_loader.h"
#include "vk_select.h"

#define VK_ADDR_TAG (1ull << 63)
#define VK_ADDR_BLOCK_SHIFT 40
#define VK_ADDR(block, off) ((void *)(uintptr_t)(VK_ADDR_TAG | ((uint64_t)(block) << VK_ADDR_BLOCK_SHIFT) | (off)))
#define VK_ADDR_BLOCK(p) ((uint32_t)(((uint64_t)(uintptr_t)(p) & ~VK_ADDR_TAG) >> VK_ADDR_BLOCK_SHIFT))
#define VK_ADDR_OFF(p) ((uint64_t)(uintptr_t)(p) & ((1ull << VK_ADDR_BLOCK_SHIFT) - 1))

#define VK_ALIGN 256         /* buffer alignment: covers minStorageBufferOffsetAlignment */
#define VK_MAX_BLOCKS 4096
#define VK_PARAM_WORDS 128   /* words per dispatch in the parameter buffer */

/* Kernels, one pipeline each (the *_sg variants use subgroup operations;
 * vk_pipeline_gemm / vk_pipeline_attention pick a device's variant). */
#define VK_KERNEL_LIST(X)                                                                          \
    X(ew) X(row) X(groupnorm) X(timestep) X(matmul) X(conv2d) X(attention) X(matmul_direct)         \
    X(conv2d_direct) X(matmul_sg) X(conv2d_sg) X(matmul_direct_sg) X(conv2d_direct_sg) X(attention_sg)
typedef enum vk_kernel {
#define VK_KERNEL_ENUM_(n) VK_K_##n,
    VK_KERNEL_LIST(VK_KERNEL_ENUM_)
#undef VK_KERNEL_ENUM_
    VK_K_COUNT
} vk_kernel;

/* One free range of a block. */
typedef struct vk_range {
    uint64_t off, size;
} vk_range;

/* One VkDeviceMemory + VkBuffer over all of it, carved by first fit. */
typedef struct vk_block {
    VkBuffer buf;
    VkDeviceMemory mem;
    uint64_t size;
    void *mapped;    /* host mapping when the memory is host-visible, else NULL */
    vk_range *free;  /* sorted, coalesced */
    int nfree, capfree;
    uint64_t used;
    int dedicated;   /* one allocation larger than the block size: freed with it */
    uint64_t serial; /* unique per device: tells a remade block at the same index apart */
} vk_block;

typedef struct vk_family vk_family;
typedef struct vk_stream vk_stream;

typedef struct vk_device {
    vk_family *fam;
    int index;
    char name[16];   /* "vulkan:N" */
    char desc[256];
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memprops;
    int has_budget;          /* VK_EXT_memory_budget */
    int has_feedback;        /* pipeline creation feedback (1.3 / EXT) */
    int cpu_like;            /* *_direct GEMM kernels (CPU-type devices such as lavapipe) */
    vk_caps caps;            /* subgroup properties, device type (vk_pipeline_select) */
    vk_choice choice;        /* the kernel variants this device runs */
    uint32_t qfamily;
    /* everything below is (re)made by vk_device_init and torn down by
     * vk_device_fini; `generation` counts inits so stale buffers/streams
     * from before a reset are recognised */
    VkDevice dev;
    vkl_device_table fn;
    VkQueue queue;
    uint32_t generation;
    int lost;
    pthread_mutex_t lock;    /* blocks, queue submission, transfer context, pipelines */
    vk_block *blocks[VK_MAX_BLOCKS];
    uint32_t mem_type_local, mem_type_host; /* memory type indices */
    uint64_t block_size, max_alloc, used, limit;
    uint64_t block_serial;   /* the last vk_block.serial handed out */
    uint64_t cb_recorded, cb_replayed; /* graphs with a replay_key: recorded, resubmitted */
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipelineCache cache;
    VkPipeline pipes[VK_K_COUNT];
    int cache_dirty;
    unsigned cache_hits, cache_misses;
    size_t cache_loaded; /* bytes read from the cache file at init */
    char cache_path[1200]; /* cache_dir + file name */
    /* transfer context for synchronous buffer read/write/memset/copy */
    VkCommandPool xpool;
    VkCommandBuffer xcb;
    VkFence xfence;
    VkBuffer stage;
    VkDeviceMemory stage_mem;
    void *stage_map;
    uint64_t stage_size;
    vk_stream *streams;       /* live streams, for reset */
    sdrt_device sd;
    sdrt_buffer_type bt;
    char info[4096];         /* info_json text: cache path (1200) + heaps (768) + the rest */
} vk_device;

struct vk_family {
    vkl_table fn;
    VkInstance inst;
    const sdrt_host_api *host;
    vk_device *devs;
    int ndev;
    sdrt_backend_reg reg;
    char cache_dir[1024];
    uint64_t limit;           /* config memory_limit, 0 = none */
    int api13;
    int gemm;                 /* VK_GEMM_* (config "gemm", env SDRT_VULKAN_GEMM) */
    int subgroups;            /* VK_SG_* (config "subgroups", env SDRT_VULKAN_SUBGROUPS) */
    sdrt_precision precision; /* what "auto" means (config "precision"; f16) */
};

/* A buffer's private state: a range of one block. */
typedef struct vk_alloc {
    vk_device *d;
    uint32_t generation;
    uint32_t block;
    uint64_t off, size;
} vk_alloc;

/* Written ranges since the last barrier (hazard tracking). */
typedef struct vk_span {
    uint32_t block;
    uint64_t lo, hi;
} vk_span;

/* One command buffer and what its dispatches point at: parameter words in
 * host-visible chunks and descriptor sets from pools. */
typedef struct vk_cmdrec {
    VkCommandPool pool;
    VkCommandBuffer cb;
    struct vk_pchunk { VkBuffer buf; VkDeviceMemory mem; uint32_t *map; uint32_t used, cap; } *pchunks;
    int npchunks, pchunk;
    VkDescriptorPool *dpools;
    int ndpools, dpool, dsets_in_pool;
} vk_cmdrec;

/* A graph recorded once and submitted again while its replay_key comes
 * back (sdrt_graph.replay_key), kept with the blocks it binds so a block
 * freed and made again (same address, another VkBuffer) forces a new
 * recording. */
#define VK_REPLAY_SLOTS 4
typedef struct vk_replay {
    uint64_t key;    /* 0 = empty */
    uint64_t stamp;  /* last use, for eviction */
    vk_cmdrec rec;
    struct vk_replay_block { uint32_t block; uint64_t serial; } *blocks;
    int nblocks, capblocks;
} vk_replay;

struct vk_stream {
    vk_device *d;
    uint32_t generation;
    vk_stream *next;
    VkFence fence;
    int recording, in_flight;  /* `main` is being recorded / a submission is pending */
    pthread_t owner;           /* the thread that last enqueued work */
    uint64_t submitted, completed; /* submission counters for events */
    /* the per-submission recording: its parameter chunks and descriptor
     * pools are reset after each wait */
    vk_cmdrec main;
    /* where dispatches are recorded: &main, or &rslot->rec while a graph
     * with a replay_key is recorded into its slot */
    vk_cmdrec *cur;
    vk_replay *rslot;
    vk_replay replay[VK_REPLAY_SLOTS];
    uint64_t replay_clock;
    /* temporary device copies of host operands, freed after the wait */
    sdrt_buffer **temps;
    int ntemps, captemps;
    /* host-visible staging of write_async/read_async, released (reads:
     * copied out to their host destination) after the wait */
    struct vk_staged { VkBuffer buf; VkDeviceMemory mem; void *map; void *host_dst; size_t size; } *staged;
    int nstaged, capstaged;
    vk_span *writes, *reads;
    int nwrites, capwrites, nreads, capreads;
    sdrt_precision precision;  /* resolved (never AUTO): the weights' form */
    sdrt_stream ss;
};

/* A dispatch the op layer asks the stream to record. */
typedef struct vk_dispatch {
    vk_kernel kernel;
    uint32_t words[VK_PARAM_WORDS];
    VkBuffer bind[5];               /* src0..3, dst; VK_NULL_HANDLE = unused */
    vk_span spans[5];               /* the bytes each operand touches */
    uint32_t groups[3];
} vk_dispatch;

/* ---- vk_family.c / vk_device.c ---- */
void vk_log(vk_family *f, sdrt_log_level lvl, const char *fmt, ...) SDRT_PRINTF(3, 4);
int vk_device_init(vk_device *d, char *why, size_t whylen);
void vk_device_fini(vk_device *d);
extern const sdrt_device_iface vk_device_iface;

/* ---- vk_memory.c ---- */
extern const sdrt_buffer_type_iface vk_buffer_type_iface;
/* Finds a memory type with `want` flags among `bits`; -1 if none. */
int vk_memory_type(const vk_device *d, uint32_t bits, VkMemoryPropertyFlags want);
/* Makes a buffer + memory of `size` with `props`; 0 or -1. */
int vk_make_buffer(vk_device *d, uint64_t size, VkBufferUsageFlags usage, uint32_t type, VkBuffer *buf,
                   VkDeviceMemory *mem, void **map);
void vk_free_blocks(vk_device *d);
/* Returns a buffer's range to its block (the buffer iface's free); a block
 * left empty is destroyed. A stale allocation (before a reset) is only
 * released on the host. Frees `a`. */
void vk_alloc_release(vk_alloc *a);
/* The block a device address lies in, or NULL (lock not needed: blocks are
 * only removed when their last allocation is freed). */
vk_block *vk_block_of(vk_device *d, const void *addr);

/* ---- vk_transfer.c ---- */
int vk_transfer_init(vk_device *d);
void vk_transfer_fini(vk_device *d);
extern const sdrt_buffer_iface vk_buffer_iface;

/* ---- vk_pipeline.c ---- */
/* Reads the device's subgroup properties and picks its kernel variants
 * (d->caps, d->choice, d->cpu_like) from the family config; -1 with why
 * when the config forces a variant the device cannot run. */
int vk_pipeline_select(vk_device *d, char *why, size_t whylen);
/* The GEMM kernel of MATMUL (conv = 0) or CONV2D (conv = 1) on d. */
vk_kernel vk_pipeline_gemm(const vk_device *d, int conv);
/* The ATTENTION kernel on d. */
vk_kernel vk_pipeline_attention(const vk_device *d);
int vk_pipeline_init(vk_device *d);
void vk_pipeline_fini(vk_device *d);
/* The pipeline of kernel k, created on first use; VK_NULL_HANDLE on failure. */
VkPipeline vk_pipeline_get(vk_device *d, vk_kernel k);
void vk_pipeline_cache_save(vk_device *d);

/* ---- vk_stream.c ---- */
sdrt_stream *vk_stream_new(vk_device *d);
/* Records one dispatch (barrier first when it depends on earlier work). */
sdrt_status vk_stream_dispatch(vk_stream *s, const vk_dispatch *ds);
/* A device copy of host-memory tensor `t`, owned by the stream until its
 * next wait; NULL when out of memory. */
sdrt_buffer *vk_stream_temp(vk_stream *s, size_t size);
void vk_stream_destroy_objects(vk_stream *s);
/* Submits and waits for the work the calling thread enqueued on any stream
 * of `d`: synchronous buffer operations run after it, as cudaMemcpy runs
 * after the default stream's work. Streams other threads use are theirs
 * to synchronize. Call without d->lock. */
void vk_device_flush_mine(vk_device *d);

/* ---- vk_precision.c ---- */
struct cJSON;
/* The family config's "precision" (what "auto" means; f16 when absent).
 * 0, or -1 with the reason in why. */
int vk_precision_config(vk_family *f, const struct cJSON *root, char *why, size_t whylen);
/* The precision stream params ask for on `d`, "auto" resolved: SDRT_OK,
 * INVALID_ARGUMENT (malformed) or UNSUPPORTED ("int8"), with a message. */
sdrt_status vk_precision_resolve(const vk_device *d, const char *params_json, sdrt_precision *out, char *msg,
                                 size_t msg_size);
/* The stream iface's weight_dtype: the form parameters take on the device. */
sdrt_dtype vk_stream_weight_dtype(sdrt_stream *ss, sdrt_dtype stored);

/* ---- vk_ops.c / vk_supports.c ---- */
sdrt_status vk_op_record(vk_stream *s, const sdrt_op *op);
int vk_supports_op(const vk_device *d, const sdrt_op *op);
int vk_tensor_is_ours(const vk_device *d, const sdrt_tensor *t);

/* ---- generated: vk_shaders.c ---- */
typedef struct vk_spirv {
    const uint32_t *code;
    size_t size; /* bytes */
} vk_spirv;
extern const vk_spirv vk_shader_spirv[VK_K_COUNT];

#endif
