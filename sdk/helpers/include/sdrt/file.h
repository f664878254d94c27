/* sdrt/file.h - opening the files a request names (init images, masks,
 * LoRAs, model weights, tokenizer files, latents) without letting the
 * request block a worker or escape the deployment's roots. Part of the
 * static helper library sdrt_helpers; every plugin that reads a file named,
 * directly or indirectly, by a request opens it through here.
 *
 * What it guarantees, for every open:
 *  - open(2) never blocks: the file is opened O_NONBLOCK, so a FIFO with no
 *    writer (or a device) cannot park the calling thread; O_NONBLOCK is
 *    cleared again once the file is known to be regular.
 *  - only regular files are accepted (after following symlinks): FIFOs,
 *    sockets, character and block devices, directories are refused with
 *    INVALID_ARGUMENT naming the field and the kind of file.
 *  - with a scope, the real path of the opened file (the kernel's, read
 *    back from the descriptor, so a symlink anywhere on the way, e.g. a
 *    model's unet/ folder or tokenizer/vocab.json pointing outside) must lie
 *    inside the roots of scope->kind, checked with the host's resolve_path;
 *    outside: PERMISSION_DENIED naming the field, the file and where it
 *    leads. Checking the descriptor (not the name) leaves no window between
 *    check and use.
 *
 * Thread-safe: no shared state. */
#ifndef SDRT_FILE_H
#define SDRT_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "sdrt/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where an opened file must lie. All members borrowed for the call. Fill
 * with designated initializers: members may be appended, zero = default.
 * (The helpers are linked statically from the same SDK as this header, so
 * the struct does not cross a versioned boundary.) */
typedef struct sdrt_file_scope {
    const sdrt_host_api *api; /* the host services (resolve_path); NULL = no root check */
    sdrt_host *host;          /* the calling plugin's host handle */
    const char *kind;         /* "model" or "output" (roots of that kind); NULL = no root check */
    /* More folders the file may lie in besides the host's roots (e.g. the
     * Hugging Face caches a model plugin trusts); NULL/0 = none. Compared
     * after realpath() of each. */
    char *const *extra_roots;
    size_t n_extra_roots;
} sdrt_file_scope;

/* Opens `path` for reading. `field` names what the path came from in
 * messages ("init_image", "lora.adapters[0]", "tokenizer/vocab.json"); NULL
 * = "file". `scope` NULL (or without api/kind) checks the file type only:
 * for files the deployment itself named (config), never for request input.
 * Returns SDRT_OK with *fd_out an open descriptor (close-on-exec, blocking
 * reads, owned by the caller), or:
 *   NOT_FOUND          the file does not exist
 *   PERMISSION_DENIED  the OS refused, or the real path is outside the roots
 *   INVALID_ARGUMENT   not a regular file (FIFO, socket, device, directory)
 *   IO_ERROR           any other open/stat failure
 * with *fd_out = -1 and a message in err (may be NULL). */
sdrt_status sdrt_file_open(const char *path, const char *field, const sdrt_file_scope *scope, int *fd_out,
                           char *err, size_t errlen);

/* The same, as a stdio stream ("rb"). Returns NULL with *status (may be
 * NULL) and err set on failure; the caller fcloses the stream. */
FILE *sdrt_file_fopen(const char *path, const char *field, const sdrt_file_scope *scope, sdrt_status *status,
                      char *err, size_t errlen);

/* The same, reading the whole file into a malloc'd NUL-terminated buffer of
 * at most `max_bytes` bytes (larger: INVALID_ARGUMENT naming the limit).
 * *len_out (may be NULL) receives the length without the NUL. */
char *sdrt_file_read_all(const char *path, const char *field, const sdrt_file_scope *scope, size_t max_bytes,
                         size_t *len_out, sdrt_status *status, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_FILE_H */
