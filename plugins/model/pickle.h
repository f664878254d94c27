/* plugins/model/pickle.h - PyTorch .pt/.pth files read by a restricted
 * unpickler: nothing in the file can run code.
 *
 * A torch.save file (torch >= 1.6) is a zip archive (stored entries) with
 * <prefix>/data.pkl, a pickle whose persistent ids name the storages in
 * <prefix>/data/<key>. pt_open interprets the pickle on a small stack machine
 * of its own, never calling Python or anything named by the file: only the
 * opcodes that plain containers and tensors use are known, and a GLOBAL is
 * accepted only from a fixed list (collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter[_with_state],
 * the typed storages torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,
 * Byte,Bool}Storage). Any other global fails the whole file with an error
 * naming it ("refused global 'posix.system'").
 *
 * The result is every tensor reachable from the top object through dicts,
 * lists and tuples, named by the keys on the way joined with '.'
 * ({"params_ema": {"conv_first.weight": T}} gives "params_ema.conv_first.weight";
 * list and tuple items are named by their index). Other leaves (ints,
 * strings, None) are skipped. Tensors are C-contiguous: strided views are
 * copied, contiguous ones point into the file's bytes.
 *
 * The legacy (torch < 1.6, non-zip) format and compressed zip entries are
 * refused with an error that says so. Thread-safe (no shared state). */
#ifndef SDRT_MODEL_PICKLE_H
#define SDRT_MODEL_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* Limits that bound the work a hostile file can cause. */
#define PT_MAX_OPS ((size_t)1 << 26)      /* pickle opcodes executed */
#define PT_MAX_VALUES ((size_t)1 << 24)   /* objects created */
#define PT_MAX_DEPTH 64                   /* container nesting for names */
#define PT_MAX_NAME 1024                  /* bytes of a flattened name */

typedef struct pt_file {
    char *path;            /* as opened; "<memory>" for pt_parse */
    uint8_t *owned;        /* the file's bytes when pt_open read them */
    st_tensor *tensors;    /* sorted by name; begin = 0, end = byte size */
    size_t n_tensors;
    void **copies;         /* buffers of copied (strided) tensors */
    size_t n_copies;
} pt_file;

/* Reads and interprets `path`. Returns 0 with *out owned by the caller
 * (pt_close), or -1 with err naming the file and the reason (a refused
 * global, an unknown opcode and its offset, a storage out of bounds, ...). */
int pt_open(const char *path, pt_file **out, char *err, size_t errlen);
/* The same over borrowed memory (fuzzing, tests): `buf` must outlive *out,
 * since contiguous tensors point into it. */
int pt_parse(const void *buf, size_t len, pt_file **out, char *err, size_t errlen);
void pt_close(pt_file *f);

/* Tensor by flattened name (binary search), or NULL. */
const st_tensor *pt_find(const pt_file *f, const char *name);

/* 1 when the bytes look like a zip (torch >= 1.6) or legacy torch file. */
int pt_sniff(const void *buf, size_t len);

#endif
