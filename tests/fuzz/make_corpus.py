#!/usr/bin/env python3
"""Writes the generated seed corpora of the fuzz targets (tests/fuzz/corpus).

    python3 tests/fuzz/make_corpus.py

Run it after changing a format rule a seed depends on, and commit the result;
the build and scripts/test.sh only read the committed files (no Python at
test time). Standard library only, deterministic output.

It owns corpus/safetensors, corpus/npy and corpus/schema (each is emptied and
rewritten) and the gen_* files of corpus/image; the other seeds (the rest of
image, prompt, request, tokenizer, lora_keys) are hand-written files
committed as they are. Each owned corpus
holds small valid files (so the fuzzer starts inside the parser's accepting
paths) and near-valid ones, each breaking exactly one rule (so it starts next
to every refusal). Keep every file small (a few hundred bytes): libFuzzer
runs -max_len=65536 and the standalone driver reads at most 256 seeds.
"""
import base64
import json
import pathlib
import shutil
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SCHEMA_CORPUS = HERE.parent / "schema" / "corpus"


def fresh_dir(name):
    d = CORPUS / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


# --- safetensors -------------------------------------------------------------
# 8-byte little-endian header length, a JSON object header, then the data.
# Rules checked by plugins/model/safetensors.c: known dtypes, shape x dtype
# size == end - begin, offsets inside the data and not overlapping, unique
# names, __metadata__ a string->string object.

ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
            "BOOL": 1}


def st_tensors(specs):
    """specs: [(name, dtype, shape)] -> (header dict, data bytes), packed in order."""
    header, data = {}, bytearray()
    for name, dtype, shape in specs:
        n = 1
        for d in shape:
            n *= d
        size = n * ST_SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + size]}
        data += bytes((len(data) + i) * 37 % 251 for i in range(size))
    return header, bytes(data)


def st_file(header, data, pad_to=8, raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad_to:
        text += b" " * (-len(text) % pad_to)  # the format pads with spaces
    return struct.pack("<Q", len(text)) + text + data


def safetensors():
    d = fresh_dir("safetensors")

    def put(name, blob):
        (d / name).write_bytes(blob)

    h, data = st_tensors([("a", "F32", [2, 2]), ("b", "F16", [3])])
    put("two_tensors", st_file(h, data))
    h, data = st_tensors([(f"t_{k.lower()}", k, [2]) for k in ST_SIZES])
    put("all_dtypes", st_file(h, data))
    h, data = st_tensors([("w", "BF16", [1, 2, 1])])
    h["__metadata__"] = {"format": "pt", "modelspec.title": "seed"}
    put("metadata", st_file(h, data))
    h, data = st_tensors([("scalar", "F32", []), ("empty", "F32", [0]), ("zero_dim", "I8", [3, 0])])
    put("scalar_and_empty", st_file(h, data))
    put("no_tensors", st_file({}, b""))
    h, data = st_tensors([("model.diffusion_model.input_blocks.0.0.weight", "F16", [2, 1, 1, 1]),
                          ("first_stage_model.decoder.conv_in.bias", "F32", [1]),
                          ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", "F16",
                           [1, 2])])
    put("checkpoint_names", st_file(h, data))
    h, data = st_tensors([("a", "F32", [2])])
    put("unpadded", st_file(h, data, pad_to=0))

    # near-valid: one broken rule each
    h, data = st_tensors([("a", "F32", [2, 2])])
    h["a"]["data_offsets"] = [0, 32]
    put("bad_offsets_past_end", st_file(h, data))
    h, data = st_tensors([("a", "F32", [2]), ("b", "F32", [2])])
    h["b"]["data_offsets"] = [4, 12]
    put("bad_overlap", st_file(h, data))
    h, data = st_tensors([("a", "F32", [2])])
    h["a"]["data_offsets"] = [8, 0]
    put("bad_reversed_offsets", st_file(h, data))
    h, data = st_tensors([("a", "F32", [3])])
    h["a"]["shape"] = [2]
    put("bad_shape_size", st_file(h, data))
    h, data = st_tensors([("a", "F32", [2])])
    h["a"]["dtype"] = "F8_E4M3"
    put("bad_dtype", st_file(h, data))
    h, data = st_tensors([("a", "F32", [2])])
    h["a"]["shape"] = [-2]
    put("bad_negative_dim", st_file(h, data))
    h, data = st_tensors([("a", "U8", [1] * 9)])
    put("bad_nine_dims", st_file(h, data))
    h, data = st_tensors([("a", "F32", [2])])
    h["__metadata__"] = {"n": 1}
    put("bad_metadata_value", st_file(h, data))
    raw = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    put("bad_duplicate_name", st_file(None, b"\x01\x02", raw_header=raw))
    put("bad_header_not_object", st_file(None, b"", raw_header=b"[1,2,3]"))
    put("bad_header_json", st_file(None, b"", raw_header=b'{"a":{"dtype":"F32",'))
    h, data = st_tensors([("a", "F32", [2])])
    put("bad_truncated_data", st_file(h, data)[:-3])
    put("bad_header_length", struct.pack("<Q", 1 << 40) + b"{}")
    put("bad_short", b"\x02\x00\x00\x00")


# --- npy ---------------------------------------------------------------------
# "\x93NUMPY", version, header length (2 bytes in 1.0, 4 in 2.0/3.0), a
# Python dict literal padded with spaces to 64-byte alignment ending in \n,
# then the C-order data. sdk/helpers/npy.c reads <f4 <f8 <f2 <i8 <i4 |u1 |i1
# |b1 (and big-endian >f4 etc.) into float32.

NPY_ITEM = {"<f4": ("<f", 4), "<f8": ("<d", 8), "<f2": ("<e", 2), "<i8": ("<q", 8), "<i4": ("<i", 4),
            "|u1": ("<B", 1), "|i1": ("<b", 1), "|b1": ("<?", 1)}


def npy_header(descr, shape, fortran=False):
    dims = f"{shape[0]}," if len(shape) == 1 else ", ".join(str(s) for s in shape)  # (), (5,), (2, 3)
    return f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': ({dims}), }}"


def npy_file(descr, shape, version=1, header=None, values=None, fmt=None):
    text = (header if header is not None else npy_header(descr, shape)).encode("latin-1")
    lenbytes = 2 if version == 1 else 4
    pre = 6 + 2 + lenbytes
    text += b" " * (-(pre + len(text) + 1) % 64) + b"\n"
    head = b"\x93NUMPY" + bytes([version, 0]) + (struct.pack("<H", len(text)) if lenbytes == 2
                                                  else struct.pack("<I", len(text)))
    n = 1
    for s in shape:
        n *= s
    fmt = fmt or NPY_ITEM.get(descr, ("<f", 4))[0]
    if values is None:
        values = [((i * 7) % 5) - 2 for i in range(n)]
        if fmt == "<?":
            values = [v > 0 for v in values]
        elif fmt == "<B":
            values = [v + 2 for v in values]
    return head + text + b"".join(struct.pack(fmt, v) for v in values)


def npy():
    d = fresh_dir("npy")

    def put(name, blob):
        (d / name).write_bytes(blob)

    for descr in NPY_ITEM:
        tag = descr[1:]
        put(f"{tag}_2x3.npy", npy_file(descr, [2, 3]))
    put("f4_vector.npy", npy_file("<f4", [5]))
    put("f4_scalar.npy", npy_file("<f4", []))
    put("f4_empty.npy", npy_file("<f4", [0]))
    put("f4_4d.npy", npy_file("<f4", [1, 2, 1, 2]))
    put("f4_v2.npy", npy_file("<f4", [2, 2], version=2))
    put("f4_v3.npy", npy_file("<f4", [2], version=3))
    put("f4_special.npy", npy_file("<f4", [4], values=[float("inf"), float("-inf"), float("nan"), -0.0]))
    put("f2_subnormal.npy", npy_file("<f2", [2], values=[6e-8, 65504.0]))

    # near-valid: one broken rule each
    put("bad_fortran.npy", npy_file("<f4", [2, 2], header=npy_header("<f4", [2, 2], fortran=True)))
    put("f4_big_endian.npy", npy_file(">f4", [3], header=npy_header(">f4", [3]), values=[1.5, -2.0, 3.25],
                                      fmt=">f"))
    put("bad_order_multibyte.npy", npy_file("|f4", [2], header=npy_header("|f4", [2])))
    put("bad_descr.npy", npy_file("<c8", [2], header=npy_header("<c8", [2])))
    put("bad_missing_key.npy", npy_file("<f4", [2], header="{'descr': '<f4', 'shape': (2,), }"))
    put("bad_extra_key.npy",
        npy_file("<f4", [2], header="{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1, }"))
    put("bad_shape_negative.npy", npy_file("<f4", [2], header=npy_header("<f4", ["-2"])))
    put("bad_shape_nine_dims.npy", npy_file("<f4", [1] * 9))
    put("bad_shape_overflow.npy",
        npy_file("<f4", [1], header=npy_header("<f4", [4294967296, 4294967296, 4294967296])))
    put("bad_truncated_data.npy", npy_file("<f4", [2, 3])[:-5])
    put("bad_magic.npy", b"\x93NUMPX" + npy_file("<f4", [2])[6:])
    put("bad_version.npy", npy_file("<f4", [2])[:6] + b"\x04\x00" + npy_file("<f4", [2])[8:])
    blob = bytearray(npy_file("<f4", [2]))
    blob[8:10] = struct.pack("<H", 60000)
    put("bad_header_length.npy", bytes(blob))
    put("bad_not_dict.npy", npy_file("<f4", [2], header="['descr', '<f4']"))


# --- schema ------------------------------------------------------------------
# fuzz_schema.c reads "INSTANCE" (validated against the real schema set) or
# "SCHEMA\0INSTANCE" (an inline schema). The seeds are the cases of the
# schema conformance corpus (tests/schema/corpus), whose verdicts are checked
# against Python's jsonschema there: file-schema cases become bare instances,
# inline ones SCHEMA\0INSTANCE pairs, plus whole envelopes and configs.


def schema():
    d = fresh_dir("schema")
    for path in sorted(SCHEMA_CORPUS.glob("*.json")):
        case = json.loads(path.read_text())
        doc = json.dumps(case["doc"], separators=(",", ":"), ensure_ascii=False).encode()
        if isinstance(case["schema"], str):
            blob = doc
        else:
            blob = json.dumps(case["schema"], separators=(",", ":"), ensure_ascii=False).encode() + b"\0" + doc
        (d / path.stem).write_bytes(blob)
    envelopes = {
        "envelope_run": {"type": "inference.run", "request_id": "r1",
                         "data": {"model": "m", "prompt": "a cat", "steps": 4, "width": 512, "height": 512}},
        "envelope_tokenize": {"type": "conditioning.tokenize", "request_id": "t", "data": {"text": "a (b:1.2)"}},
        "envelope_sigmas": {"type": "scheduler.sigmas", "request_id": "s", "data": {"scheduler": "euler", "steps": 3}},
        "envelope_jsonrpc": {"jsonrpc": "2.0", "id": 7, "method": "host.cancel", "params": {"request_id": "r1"}},
    }
    for name, doc in envelopes.items():
        (d / name).write_bytes(json.dumps(doc, separators=(",", ":")).encode())


# --- image -------------------------------------------------------------------
# PNG variants libpng's simplified API converts to RGB (grey, grey+alpha,
# 16-bit, interlaced), a PNG past the size limit, other formats sdrt names
# in its refusal, truncated files and near-valid data: URIs.


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(w, h, depth, color, rows, interlace=0):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    raw = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9)) +
            png_chunk(b"IEND", b""))


def image():
    d = CORPUS / "image"
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("gen_*"):
        old.unlink()

    def put(name, blob):
        (d / f"gen_{name}").write_bytes(blob)

    put("gray16.png", png(3, 2, 16, 0, [bytes(range(6)), bytes(range(6, 12))]))
    put("gray_alpha.png", png(2, 2, 8, 4, [b"\x10\xff\x20\x80", b"\x30\x00\x40\x40"]))
    put("rgba16.png", png(1, 2, 16, 6, [bytes(range(8)), bytes(range(8, 16))]))
    put("gray1.png", png(9, 3, 1, 0, [b"\xa5\x80", b"\x5a\x00", b"\xff\x80"]))
    put("interlaced.png", png(1, 1, 8, 2, [b"\x10\x20\x30"], interlace=1))  # Adam7: only pass 1 has a row
    put("too_wide.png", png(100000, 1, 8, 0, [b"\0"]))
    put("zero_height.png", png(4, 0, 8, 2, []))
    rgb = (d / "rgb.png").read_bytes() if (d / "rgb.png").exists() else png(2, 1, 8, 2, [b"\1\2\3\4\5\6"])
    put("truncated.png", rgb[:len(rgb) // 2])
    jpg = (d / "rgb.jpg").read_bytes() if (d / "rgb.jpg").exists() else b""
    if jpg:
        put("truncated.jpg", jpg[:len(jpg) * 2 // 3])
    put("other.gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00;")
    put("other.bmp", b"BM" + bytes(30))
    put("other.tiff", b"II*\0" + bytes(12))
    put("riff_not_webp", b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(8))
    put("short", b"\x89PNG")
    b64 = base64.b64encode(rgb).decode()
    put("uri_png_wrapped.txt", ("data:image/png;base64," + "\n ".join(b64[i:i + 20] for i in range(0, len(b64), 20)))
        .encode())
    put("uri_urlsafe.txt", ("data:image/png;BASE64," + base64.urlsafe_b64encode(rgb).decode().rstrip("=")).encode())
    put("uri_no_comma.txt", b"data:image/png;base64")
    put("uri_not_base64.txt", b"data:image/png,iVBORw0KGgo")
    put("uri_bad_padding.txt", b"data:image/png;base64,iVBO=Rw==")
    put("uri_bad_char.txt", b"data:image/png;base64,iVBO*w0KGgo=")
    put("uri_empty.txt", b"data:;base64,")


if __name__ == "__main__":
    image()
    safetensors()
    npy()
    schema()
