#!/usr/bin/python3
"""safetensors interop fixtures for tests/test_serialize.cpp.

Debian's PyTorch has no `safetensors` module, so this script reads and writes the
format itself with struct + json, following the specification
(https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
N bytes of JSON, then the tensors' raw little-endian bytes tiling the data section.

    /usr/bin/python3 tests/golden/gen_safetensors.py
        Builds a few tensors deterministically with PyTorch, writes them as a safetensors
        file and stores that file's bytes, plus the expected values, in
        safetensors_golden.h next to this script (kiln must read them back exactly).

    /usr/bin/python3 tests/golden/gen_safetensors.py verify FILE
        Checks that FILE (written by kiln) follows the specification and holds exactly
        the tensors and metadata this script builds. Produce such a file with
            KILN_SAFETENSORS_EXPORT=/tmp/kiln.safetensors \\
                build/tests/kiln_tests --source-file='*test_serialize.cpp'
        (the test loads the fixture above and saves it again with kiln).
"""
import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

DTYPES = {
    "F32": torch.float32,
    "F64": torch.float64,
    "I64": torch.int64,
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}
METADATA = {"format": "pt", "producer": "tests/golden/gen_safetensors.py"}


def make_tensors():
    """The fixture's tensors, in the order their names appear in the header."""
    g = torch.Generator().manual_seed(1234)
    f16 = torch.tensor([1.5, -0.0, float("inf"), 2.0**-24, 65504.0, -3.140625], dtype=torch.float16)
    return {
        "weight": torch.randn(3, 4, generator=g),  # f32
        "bias": torch.randn(5, generator=g, dtype=torch.float64),
        # Integers a double cannot hold exactly (2^53 + 1) and the int64 extremes.
        "tokens": torch.tensor([[0, -1, 2**53 + 1], [-(2**63), 7, 2**63 - 1]], dtype=torch.int64),
        "hidden": torch.randn(2, 3, generator=g).to(torch.bfloat16),
        "half": f16,
        "mask": torch.tensor([[True, False, True]]),
        "scale": torch.tensor(3.25),  # 0-d
        "nothing": torch.zeros(0, 3),  # empty
        # Non-contiguous in PyTorch (a transpose); the file always holds row-major bytes.
        "weight_t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t(),
    }


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
        t = t.view(torch.int16)
    elif t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.numpy().tobytes()


def write_safetensors(tensors, metadata):
    """Bytes of a safetensors file. Like the reference writer, the data section is ordered
    by element size (largest first) then name, and the header is padded with spaces to a
    multiple of 8; the header itself keeps `tensors`' order, so the two orders differ."""
    data_order = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    offsets, data, pos = {}, b"", 0
    for name in data_order:
        b = tensor_bytes(tensors[name])
        offsets[name] = [pos, pos + len(b)]
        data += b
        pos += len(b)
    header = {"__metadata__": metadata}
    for name, t in tensors.items():
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": offsets[name]}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def read_safetensors(blob):
    """(tensors in header order, metadata) from the bytes of a safetensors file; raises
    ValueError where the file breaks the specification."""
    if len(blob) < 8:
        raise ValueError("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"header length {n} exceeds the file")
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    metadata = header.pop("__metadata__", {})
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name) for name, info in header.items())
    covered = 0
    for begin, end, name in spans:
        if begin != covered:
            raise ValueError(f"tensor {name}: starts at {begin}, expected {covered} (gap or overlap)")
        covered = end
    if covered != len(data):
        raise ValueError(f"tensors cover {covered} bytes of a {len(data)}-byte data section")
    tensors = {}
    for name, info in header.items():
        dtype, shape = DTYPES[info["dtype"]], info["shape"]
        begin, end = info["data_offsets"]
        numel = math.prod(shape)
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if end - begin != numel * itemsize:
            raise ValueError(f"tensor {name}: {end - begin} bytes for {info['dtype']}{shape}")
        raw = bytearray(data[begin:end])
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        elif dtype == torch.bool:
            t = torch.frombuffer(raw, dtype=torch.uint8).to(torch.bool).reshape(shape)
        else:
            t = torch.frombuffer(raw, dtype=dtype).reshape(shape)
        tensors[name] = t
    return tensors, metadata


def same_bits(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return tensor_bytes(a) == tensor_bytes(b)


# ---- golden header ----------------------------------------------------------------------


def cpp_double(x):
    if math.isinf(x):
        return ("-" if x < 0 else "") + "std::numeric_limits<double>::infinity()"
    return float.hex(float(x))  # exact: C++17 hex float literal


def cpp_vector(name, elem_type, values):
    return f"inline const std::vector<{elem_type}> {name} = {{{', '.join(values)}}};"


def golden_header(blob, tensors):
    lines = [
        "// Generated by tests/golden/gen_safetensors.py with PyTorch " + torch.__version__ + ". Do not edit;",
        "// rerun the script. kTorchWritten is a whole safetensors file written by the script;",
        "// the vectors hold each tensor's values, row-major (floats as exact hex literals).",
        "#pragma once",
        "",
        "#include <cstdint>",
        "#include <limits>",
        "#include <string>",
        "#include <vector>",
        "",
        "namespace golden::safetensors {",
        "",
        f"inline const unsigned char kTorchWritten[{len(blob)}] = {{",
    ]
    for i in range(0, len(blob), 20):
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in blob[i : i + 20]) + ",")
    lines.append("};")
    lines.append("")
    lines.append(cpp_vector("kNames", "std::string", [f'"{n}"' for n in tensors]))
    lines.append(cpp_vector("kDTypes", "std::string", [f'"{NAMES[t.dtype]}"' for t in tensors.values()]))
    shapes = ["{" + ", ".join(str(s) for s in t.shape) + "}" for t in tensors.values()]
    lines.append(cpp_vector("kShapes", "std::vector<int64_t>", shapes))
    for name, t in tensors.items():
        flat = t.contiguous().reshape(-1)
        if t.dtype == torch.int64:
            # INT64_MIN has no literal form: write it as an expression.
            vals = [f"{v}" if v != -(2**63) else "std::numeric_limits<int64_t>::min()" for v in flat.tolist()]
            lines.append(cpp_vector(name, "int64_t", vals))
        else:
            lines.append(cpp_vector(name, "double", [cpp_double(v) for v in flat.double().tolist()]))
    lines += ["", "}  // namespace golden::safetensors", ""]
    return "\n".join(lines)


def generate():
    tensors = make_tensors()
    blob = write_safetensors(tensors, METADATA)
    # The reader above must accept what the writer made, bit for bit.
    back, metadata = read_safetensors(blob)
    assert metadata == METADATA and all(same_bits(back[n], t) for n, t in tensors.items())
    path = os.path.join(HERE, "safetensors_golden.h")
    with open(path, "w") as f:
        f.write(golden_header(blob, tensors))
    print(f"wrote {path} ({len(blob)}-byte fixture)")


def verify(path):
    with open(path, "rb") as f:
        blob = f.read()
    tensors, metadata = read_safetensors(blob)
    expected = make_tensors()
    ok = list(tensors) == list(expected)
    print(f"names in header order: {list(tensors)} {'OK' if ok else 'MISMATCH'}")
    for name, want in expected.items():
        got = tensors.get(name)
        good = got is not None and same_bits(got, want)
        ok &= good
        print(f"  {name}: {NAMES[want.dtype]}{list(want.shape)} {'OK' if good else 'MISMATCH'}")
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    aligned = n % 8 == 0 and all(
        info["data_offsets"][0] % torch.empty(0, dtype=DTYPES[info["dtype"]]).element_size() == 0
        for name, info in header.items()
        if name != "__metadata__"
    )
    ok &= aligned
    print(f"every tensor aligned to its element size: {'OK' if aligned else 'NO'}")
    ok &= metadata == METADATA
    print(f"metadata: {metadata} {'OK' if metadata == METADATA else 'MISMATCH'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "verify":
        sys.exit(verify(sys.argv[2]))
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    generate()
