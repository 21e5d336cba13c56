#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora, fuzz/corpus/<reader>/: a few small, valid files per
reader that between them use every feature the reader has (each dtype, metadata, zero-size
tensors, several records...), so the fuzzer starts from inputs that pass the checks and
mutates its way into the corners. Standard library only; the files are committed, so this
script only needs running again when the formats change.

    /usr/bin/python3 fuzz/make_seeds.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# safetensors dtype name -> (struct format of one element, element size)
DTYPES = {"F64": ("d", 8), "I64": ("q", 8), "F32": ("f", 4), "F16": ("e", 2), "BF16": ("H", 2), "BOOL": ("?", 1)}


def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, flat values). Laid out like kiln's writer:
    data section sorted by element size (largest first), header padded to 8 bytes."""
    order = sorted(range(len(tensors)), key=lambda i: -DTYPES[tensors[i][1]][1])
    begins, data, offset = {}, b"", 0
    for i in order:
        name, dtype, shape, values = tensors[i]
        fmt, size = DTYPES[dtype]
        if dtype == "BF16":  # the top half of an f32
            blob = b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)
        else:
            blob = struct.pack("<%d%s" % (len(values), fmt), *values)
        begins[i] = offset
        data += blob
        offset += len(blob)
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    for i, (name, dtype, shape, values) in enumerate(tensors):
        nbytes = len(values) * DTYPES[dtype][1]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begins[i], begins[i] + nbytes]}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def idx_images(images, rows, cols):
    pixels = bytes((i * 37 + 11) % 256 for i in range(images * rows * cols))
    return struct.pack(">IIII", 0x803, images, rows, cols) + pixels


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def cifar_records(labels):
    out = b""
    for r, label in enumerate(labels):
        out += bytes([label]) + bytes((r * 7 + i) % 256 for i in range(3072))
    return out


def corpus_text(batch_size, seq_len, text):
    """The corpus fuzzer takes batch_size and seq_len from the first 16 bytes."""
    return struct.pack("<qq", batch_size, seq_len) + text


SEEDS = {
    "safetensors": {
        "two_tensors_with_metadata": safetensors_bytes(
            [("weight", "F32", [2, 3], [0.5, -1, 2, 3, 4, 5]), ("bias", "I64", [2], [1, -2])],
            {"step": "100", "note": "seed"}),
        "every_dtype": safetensors_bytes(
            [("f64", "F64", [2], [1.5, -2.25]), ("f16", "F16", [3], [1, 2, 3]), ("bf16", "BF16", [1, 2], [0.5, 8]),
             ("mask", "BOOL", [4], [True, False, True, True]), ("scalar", "F32", [], [7.0])]),
        "zero_size_tensor": safetensors_bytes([("empty", "F32", [0, 3], []), ("one", "I64", [1], [42])]),
        "empty_header": safetensors_bytes([]),
    },
    "checkpoint": {
        "adamw_checkpoint": safetensors_bytes(
            [("model.fc.weight", "F32", [2, 2], [0.1, 0.2, 0.3, 0.4]), ("model.fc.bias", "F32", [2], [0, 1]),
             ("optim.state.0.exp_avg", "F32", [2, 2], [0, 0, 0, 0]), ("optim.state.0.step", "I64", [], [3]),
             ("optim.group.0.lr", "F64", [], [1e-3])],
            {"kiln.format": "training_checkpoint/1", "kiln.step": "3", "kiln.data_position": "12",
             "kiln.rng_seed": "18446744073709551615", "kiln.rng_offset": "96", "run": "seed"}),
        "empty_checkpoint": safetensors_bytes(
            [], {"kiln.format": "training_checkpoint/1", "kiln.step": "0", "kiln.data_position": "0",
                 "kiln.rng_seed": "0", "kiln.rng_offset": "0"}),
    },
    "mnist": {
        "images_2x3x4": idx_images(2, 3, 4),
        "images_1x28x28": idx_images(1, 28, 28),
        "labels_5": idx_labels([0, 9, 3, 3, 7]),
        "labels_empty": idx_labels([]),
    },
    "cifar": {
        "one_record": cifar_records([3]),
        "two_records": cifar_records([0, 9]),
    },
    "corpus": {
        "text_b2_t4": corpus_text(2, 4, b"the quick brown fox jumps over the lazy dog, " * 8),
        "text_b3_t1": corpus_text(3, 1, bytes(range(256))),
        "plain_text": b"<page><title>kiln</title><text>a byte-level corpus</text></page>\n" * 4,
    },
}


def main():
    for reader, files in SEEDS.items():
        folder = os.path.join(HERE, "corpus", reader)
        os.makedirs(folder, exist_ok=True)
        for name, blob in files.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(blob)
        print("%-12s %d seeds, %d bytes" % (reader, len(files), sum(len(b) for b in files.values())))


if __name__ == "__main__":
    main()
