#!/usr/bin/python3
"""Independent reference fixtures for promedical's safetensors reader/writer.

This script deliberately does NOT use the `safetensors` Python package: the
file format is written and parsed by hand with numpy/struct/json so that it is
an implementation independent of both the TypeScript code and the official
library. torch is used only as the reference for bfloat16 rounding/decoding.

Requirements: Debian's /usr/bin/python3 with numpy (1.24) and torch (1.13).

Modes
-----
generate [--out DIR]    (default when no arguments are given)
    Writes into DIR (default: test/fixtures next to this directory):
      safetensors_numpy.safetensors  file produced by the numpy writer below
      safetensors_numpy.json         expected header/tensor contents
      float_rounding.json            f32 -> bf16 / f16 rounding references

verify [--strict-padding] [--max-values K] PATH [PATH ...]
    Parses each file with the numpy parser below, checks the format rules,
    prints every tensor (name, dtype, shape, first values) and exits non-zero
    if any file violates a rule.

Format summary (huggingface safetensors):
    bytes [0, 8)       little-endian u64 N = header length
    bytes [8, 8+N)     UTF-8 JSON object:
                         {name: {"dtype": str, "shape": [int...],
                                 "data_offsets": [begin, end]},
                          "__metadata__": {str: str}}   (metadata optional)
                       padded with spaces so that N is a multiple of 8
    bytes [8+N, EOF)   tensor data; offsets are relative to byte 8+N; tensors
                       are contiguous (no holes, no overlap, no trailing
                       bytes), little-endian, row-major (C order).
"""

import argparse
import json
import math
import struct
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

SEED = 1234

# dtype name -> (itemsize in bytes, little-endian numpy dtype used for raw
# storage). BF16 is stored/read as raw uint16 and decoded through torch; BOOL
# is stored as one byte per element (0 or 1); F8 types are only size-checked
# and shown as raw bytes (torch 1.13 has no float8).
DTYPES = {
    "BOOL": (1, np.dtype("u1")),
    "U8": (1, np.dtype("u1")),
    "I8": (1, np.dtype("i1")),
    "F8_E4M3": (1, np.dtype("u1")),
    "F8_E5M2": (1, np.dtype("u1")),
    "I16": (2, np.dtype("<i2")),
    "U16": (2, np.dtype("<u2")),
    "F16": (2, np.dtype("<f2")),
    "BF16": (2, np.dtype("<u2")),
    "I32": (4, np.dtype("<i4")),
    "U32": (4, np.dtype("<u4")),
    "F32": (4, np.dtype("<f4")),
    "I64": (8, np.dtype("<i8")),
    "U64": (8, np.dtype("<u8")),
    "F64": (8, np.dtype("<f8")),
}

# The official implementation refuses headers larger than this.
MAX_HEADER_LENGTH = 100_000_000


# --------------------------------------------------------------------------
# bfloat16 / float16 helpers
# --------------------------------------------------------------------------

def f32_to_bf16_bits_torch(values_f32: np.ndarray) -> np.ndarray:
    """f32 -> bf16 bit patterns (uint16) via torch, which rounds to nearest even.

    Uses the tensor conversion path (tensor(float32).to(bfloat16)). Note: in
    torch 1.13 this path maps every NaN to 0xFFFF, whereas converting a Python
    scalar (torch.tensor(nan, dtype=torch.bfloat16)) gives 0x7FC0.
    """
    t = torch.from_numpy(np.ascontiguousarray(values_f32, dtype=np.float32).copy())
    return t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16).copy()


def bf16_bits_to_f32_torch(bits: np.ndarray) -> np.ndarray:
    """bf16 bit patterns (uint16) -> float32 values via torch (exact widening)."""
    t = torch.from_numpy(np.ascontiguousarray(bits, dtype=np.uint16).view(np.int16).copy())
    return t.view(torch.bfloat16).to(torch.float32).numpy().copy()


def f32_to_f16_bits_numpy(values_f32: np.ndarray) -> np.ndarray:
    """f32 -> f16 bit patterns (uint16) via numpy astype (round to nearest even)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(values_f32, dtype=np.float32).astype(np.float16).view(np.uint16)


def rne_bf16_bits_python(b: int) -> int:
    """Pure-integer RNE f32 bits -> bf16 bits, used only to cross-check torch (non-NaN)."""
    lsb = (b >> 16) & 1
    return ((b + 0x7FFF + lsb) >> 16) & 0xFFFF


def rne_f16_bits_python(b: int) -> int:
    """Exact-rational RNE f32 bits -> f16 bits, used only to cross-check numpy (non-NaN)."""
    sign = 0x8000 if b >> 31 else 0
    x = abs(bits_f32(b))
    if math.isinf(x) or x >= 65520.0:  # 65520 is the tie to 65536 -> overflow
        return sign | 0x7C00
    if x < 2.0 ** -14:  # subnormal range: quantum 2^-24
        n = round(Fraction(x) / Fraction(2) ** -24)  # round() on Fraction is RNE
        return sign | n  # n == 1024 correctly becomes the smallest normal
    e = math.frexp(x)[1] - 1  # x in [2^e, 2^(e+1))
    n = round(Fraction(x) / Fraction(2) ** (e - 10))  # n in [1024, 2048]
    return sign | (((e + 15) << 10) + (n - 1024))  # n == 2048 carries into exponent


def f32_bits(x) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits_f32(b: int) -> float:
    return struct.unpack("<f", struct.pack("<I", b))[0]


# --------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------

def write_safetensors(path: Path, tensors, metadata, header_key_order):
    """Write a safetensors file.

    tensors: list of (name, dtype_name, shape, raw_bytes) in DATA order.
    header_key_order: order in which tensor names appear in the JSON header
    (independent of the data order).
    Returns (header_length, number of padding spaces, {name: (begin, end)}).
    """
    offsets = {}
    pos = 0
    for name, dtype, shape, raw in tensors:
        itemsize = DTYPES[dtype][0]
        assert len(raw) == math.prod(shape) * itemsize, name
        offsets[name] = (pos, pos + len(raw))
        pos += len(raw)

    by_name = {t[0]: t for t in tensors}
    assert sorted(header_key_order) == sorted(by_name)
    header = {"__metadata__": metadata}
    for name in header_key_order:
        _, dtype, shape, _ = by_name[name]
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": list(offsets[name])}
    # Python's default separators (", ", ": ") are used; whitespace inside the
    # JSON is legal and readers must not depend on the compact form.
    header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
    padding = -len(header_bytes) % 8
    header_bytes += b" " * padding  # pad to a multiple of 8

    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for _, _, _, raw in tensors:
            f.write(raw)
    return len(header_bytes), padding, offsets


def encode_array(dtype: str, arr) -> bytes:
    """Row-major little-endian bytes of `arr` stored as safetensors `dtype`.

    For BF16, a uint16 array is taken as bit patterns; any other array is
    rounded from float32 to bf16 through torch (round to nearest even).
    """
    arr = np.asarray(arr)
    if dtype == "BF16" and arr.dtype != np.uint16:
        arr = f32_to_bf16_bits_torch(arr.astype(np.float32))
    return np.ascontiguousarray(arr).astype(DTYPES[dtype][1], copy=False).tobytes(order="C")


def save_tensors(path: Path, named, metadata=None):
    """General entry point: write {name: (dtype_name, array)} to `path`.

    Data and header follow the iteration order of `named`. Returns the file
    size in bytes. Built on write_safetensors above.
    """
    entries = [(name, dtype, list(np.shape(arr)), encode_array(dtype, arr))
               for name, (dtype, arr) in named.items()]
    write_safetensors(Path(path), entries, metadata if metadata is not None else {},
                      [e[0] for e in entries])
    return Path(path).stat().st_size


def load_tensors(path: Path):
    """Parse `path` with the validating parser; return (metadata, {name: (dtype, array)}).

    Arrays are decoded with decode_tensor (BF16 -> float32). Raises
    SafetensorsError if the file violates any format rule.
    """
    info, violations, _ = parse_safetensors(Path(path).read_bytes())
    if violations:
        raise SafetensorsError(f"{path}: " + "; ".join(violations))
    out = {}
    for name, t in sorted(info["tensors"].items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        out[name] = (t["dtype"], decode_tensor(t["dtype"], t["shape"], t["raw"]))
    return info["metadata"], out


# --------------------------------------------------------------------------
# Parser / verifier
# --------------------------------------------------------------------------

class SafetensorsError(Exception):
    pass


def _no_duplicate_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise SafetensorsError(f"duplicate JSON key {k!r}")
        d[k] = v
    return d


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def parse_safetensors(data: bytes):
    """Parse and validate a safetensors byte string.

    Returns (info, violations, notes) where info is a dict with header_length,
    metadata and tensors (name -> dict with dtype, shape, data_offsets, raw),
    violations is a list of rule violations and notes lists non-fatal
    observations (padding). Raises SafetensorsError if parsing cannot proceed.
    """
    violations, notes = [], []
    if len(data) < 8:
        raise SafetensorsError(f"file is {len(data)} bytes, shorter than the 8-byte length prefix")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > MAX_HEADER_LENGTH:
        violations.append(f"header length {n} exceeds {MAX_HEADER_LENGTH}")
    if 8 + n > len(data):
        raise SafetensorsError(f"header length {n} runs past end of file ({len(data)} bytes)")
    header_raw = data[8:8 + n]

    try:
        text = header_raw.decode("utf-8")  # strict: rejects invalid UTF-8
    except UnicodeDecodeError as e:
        raise SafetensorsError(f"header is not valid UTF-8: {e}")
    if not text.startswith("{"):
        violations.append(f"header does not start with '{{' (starts with {text[:1]!r})")

    # Padding report: N % 8 and what trails the JSON value.
    stripped = text.rstrip(" ")
    pad = len(text) - len(stripped)
    if stripped != stripped.rstrip():
        violations.append("header has trailing whitespace other than spaces")
    notes.append(f"header length {n} ({'multiple of 8' if n % 8 == 0 else 'NOT a multiple of 8'}), "
                 f"{pad} trailing space(s) of padding")
    if n % 8 != 0:
        notes.append("PADDING: header length is not a multiple of 8")

    try:
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise SafetensorsError(f"header is not valid JSON: {e}")
    if not isinstance(header, dict):
        raise SafetensorsError("header JSON is not an object")

    metadata = None
    if "__metadata__" in header:
        metadata = header["__metadata__"]
        if not isinstance(metadata, dict):
            violations.append("__metadata__ is not an object")
        else:
            for k, v in metadata.items():
                if not isinstance(v, str):
                    violations.append(f"__metadata__[{k!r}] is not a string: {v!r}")

    data_start = 8 + n
    data_len = len(data) - data_start
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"tensor {name!r}"
        if not isinstance(entry, dict):
            violations.append(f"{where}: entry is not an object")
            continue
        extra = set(entry) - {"dtype", "shape", "data_offsets"}
        missing = {"dtype", "shape", "data_offsets"} - set(entry)
        if missing:
            violations.append(f"{where}: missing keys {sorted(missing)}")
            continue
        if extra:
            violations.append(f"{where}: unexpected keys {sorted(extra)}")
        dtype, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            violations.append(f"{where}: unknown dtype {dtype!r}")
            continue
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            violations.append(f"{where}: shape must be a list of non-negative integers: {shape!r}")
            continue
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(_is_int(o) and o >= 0 for o in offs)):
            violations.append(f"{where}: data_offsets must be two non-negative integers: {offs!r}")
            continue
        begin, end = offs
        if begin > end:
            violations.append(f"{where}: data_offsets begin {begin} > end {end}")
            continue
        expected = math.prod(shape) * DTYPES[dtype][0]
        if end - begin != expected:
            violations.append(f"{where}: byte size {end - begin} != prod({shape}) * "
                              f"{DTYPES[dtype][0]} = {expected}")
        if end > data_len:
            violations.append(f"{where}: end offset {end} past end of data section ({data_len} bytes)")
            continue
        tensors[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end],
                         "raw": data[data_start + begin:data_start + end]}

    # Offsets must tile [0, data_len) exactly: contiguous from 0, no holes,
    # no overlap, no trailing bytes. Empty tensors (begin == end) are allowed
    # anywhere the cursor currently is.
    cursor = 0
    for name, t in sorted(tensors.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        begin, end = t["data_offsets"]
        if begin != cursor:
            kind = "hole" if begin > cursor else "overlap"
            violations.append(f"tensor {name!r}: {kind}: begins at {begin}, expected {cursor}")
        cursor = max(cursor, end)
    if cursor != data_len:
        violations.append(f"data section is {data_len} bytes but tensors cover [0, {cursor}) "
                          f"({data_len - cursor} trailing byte(s))")

    # BOOL payload must be 0/1 bytes.
    for name, t in tensors.items():
        if t["dtype"] == "BOOL":
            bad = set(t["raw"]) - {0, 1}
            if bad:
                violations.append(f"tensor {name!r}: BOOL bytes other than 0/1: {sorted(bad)}")

    info = {"header_length": n, "metadata": metadata, "tensors": tensors,
            "file_size": len(data), "data_start": data_start}
    return info, violations, notes


def decode_tensor(dtype: str, shape, raw: bytes) -> np.ndarray:
    """Decode raw little-endian bytes into a numpy array of the given shape.

    BF16 is decoded via torch to float32; F16 via numpy; BOOL to bool;
    F8 types are returned as raw uint8.
    """
    _, np_dtype = DTYPES[dtype]
    arr = np.frombuffer(raw, dtype=np_dtype).copy().reshape(shape)
    if dtype == "BF16":
        return bf16_bits_to_f32_torch(arr.reshape(-1)).reshape(shape)
    if dtype == "BOOL":
        return arr.astype(bool)
    return arr


def cmd_verify(args) -> int:
    failed = False
    for path in args.paths:
        print(f"== {path}")
        try:
            data = Path(path).read_bytes()
            info, violations, notes = parse_safetensors(data)
        except (OSError, SafetensorsError) as e:
            print(f"  VIOLATION: {e}")
            failed = True
            continue
        if args.strict_padding and info["header_length"] % 8 != 0:
            violations.append("header length is not a multiple of 8 (--strict-padding)")
        print(f"  file size {info['file_size']}, header length {info['header_length']}, "
              f"data starts at {info['data_start']}")
        for note in notes:
            print(f"  note: {note}")
        print(f"  metadata: {json.dumps(info['metadata'], ensure_ascii=False)}")
        for name, t in sorted(info["tensors"].items(),
                              key=lambda kv: tuple(kv[1]["data_offsets"])):
            try:
                values = decode_tensor(t["dtype"], t["shape"], t["raw"]).reshape(-1)
            except ValueError as e:  # size mismatch already reported
                print(f"  {name}: {t['dtype']} {t['shape']} offsets {t['data_offsets']} "
                      f"(cannot decode: {e})")
                continue
            k = values.size if args.max_values < 0 else min(args.max_values, values.size)
            shown = ", ".join(repr(v.item()) for v in values[:k])
            more = f", ... ({values.size} total)" if k < values.size else ""
            print(f"  {name}: {t['dtype']} {t['shape']} offsets {t['data_offsets']} "
                  f"[{shown}{more}]")
        if violations:
            failed = True
            for v in violations:
                print(f"  VIOLATION: {v}")
        else:
            print(f"  OK ({len(info['tensors'])} tensors)")
    return 1 if failed else 0


# --------------------------------------------------------------------------
# Fixture generation
# --------------------------------------------------------------------------

def json_number(v):
    """A Python float/int suitable for strict JSON (non-finite values -> None)."""
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def build_numpy_tensors():
    """Deterministic tensors: name -> (dtype_name, numpy array in storage dtype).

    For BF16 the array holds the uint16 bit patterns.
    """
    rng = np.random.default_rng(SEED)
    t = {}
    t["f32_matrix"] = ("F32", rng.standard_normal((3, 5)).astype(np.float32))
    t["f64_vec"] = ("F64", rng.standard_normal(4) * 1000.0)

    f16 = rng.uniform(-100.0, 100.0, (2, 3)).astype(np.float16)
    f16[1, 1] = np.array([0x0155], dtype=np.uint16).view(np.float16)[0]  # +341 * 2^-24 (subnormal)
    f16[1, 2] = np.array([0x8003], dtype=np.uint16).view(np.float16)[0]  # -3 * 2^-24 (subnormal)
    t["f16_matrix"] = ("F16", f16)

    # BF16: rounded from float32 exactly as in the brief.
    x = (rng.standard_normal((4, 2)) * np.array([1.0, 300.0])).astype(np.float32)
    bits = (torch.tensor(x, dtype=torch.float32).to(torch.bfloat16)
            .view(torch.int16).numpy().view(np.uint16).copy())
    t["bf16_matrix"] = ("BF16", bits)

    i32 = rng.integers(-1_000_000, 1_000_000, 5).astype(np.int32)
    i32[1], i32[2], i32[3] = -1, np.iinfo(np.int32).min, np.iinfo(np.int32).max
    t["i32_vec"] = ("I32", i32)

    i64 = rng.integers(-2**31, 2**31, 3).astype(np.int64)
    i64[0] = -abs(i64[0])  # guarantee a negative value
    t["i64_vec"] = ("I64", i64)

    i16 = rng.integers(-32768, 32768, (2, 2)).astype(np.int16)
    i16[1, 1] = -32768
    t["i16"] = ("I16", i16)

    i8 = rng.integers(-128, 128, 3).astype(np.int8)
    i8[0], i8[2] = -128, 127
    t["i8"] = ("I8", i8)

    u8 = rng.integers(0, 256, 4).astype(np.uint8)
    u8[3] = 255
    t["u8"] = ("U8", u8)

    u16 = rng.integers(0, 65536, 2).astype(np.uint16)
    u16[1] = 65535
    t["u16"] = ("U16", u16)

    t["u32"] = ("U32", rng.integers(0, 2**31, 2).astype(np.uint32))
    t["bool_vec"] = ("BOOL", rng.permutation(np.array([True, False, True, False])))
    t["scalar"] = ("F32", np.array(rng.standard_normal(), dtype=np.float32))  # shape ()
    t["empty"] = ("F32", np.zeros((0, 3), dtype=np.float32))

    assert (i32 < 0).any() and (i64 < 0).any() and (np.abs(i64) < 2**31).all()
    assert f16.view(np.uint16)[1, 1] & 0x7C00 == 0
    return t


# Data-section order: deliberately not alphabetical. Small 1-byte tensors come
# first, so most later tensors start at offsets that are NOT multiples of their
# itemsize (e.g. f64_vec at data offset 7): a reader must not assume aligned
# typed-array views. The empty tensor sits in the middle (begin == end).
DATA_ORDER = ["u8", "i8", "f64_vec", "bool_vec", "f16_matrix", "scalar", "empty",
              "i32_vec", "bf16_matrix", "u16", "i64_vec", "f32_matrix", "i16", "u32"]


def generate_numpy_file(out: Path):
    tensors = build_numpy_tensors()
    assert sorted(DATA_ORDER) == sorted(tensors) and DATA_ORDER != sorted(DATA_ORDER)
    metadata = {"format": "pt", "producer": "numpy reference"}

    entries = []
    for name in DATA_ORDER:
        dtype, arr = tensors[name]
        raw = np.ascontiguousarray(arr).astype(DTYPES[dtype][1], copy=False).tobytes(order="C")
        entries.append((name, dtype, list(arr.shape), raw))

    st_path = out / "safetensors_numpy.safetensors"
    # JSON header: __metadata__ first, then tensor names alphabetically, i.e.
    # a different order from the data section.
    header_length, padding, offsets = write_safetensors(st_path, entries, metadata,
                                                        sorted(tensors))
    # Make sure the fixture actually exercises header padding.
    assert padding > 0, "fixture header needs no padding; change the tensor set"
    file_size = st_path.stat().st_size

    expected = {
        "file": st_path.name,
        "header_length": header_length,
        "file_size": file_size,
        "data_start": 8 + header_length,
        "header_padding_spaces": padding,
        "metadata": metadata,
        "data_order": DATA_ORDER,
        "tensors": {},
    }
    for name in DATA_ORDER:
        dtype, arr = tensors[name]
        if dtype == "BF16":
            decoded = bf16_bits_to_f32_torch(arr.reshape(-1)).astype(np.float64)
        else:
            decoded = arr.reshape(-1).astype(np.float64)
        entry = {
            "dtype": dtype,
            "shape": list(arr.shape),
            "data_offsets": list(offsets[name]),
            # Row-major flattened values as float64 (BOOL as 0/1).
            "values": [json_number(v) for v in decoded],
        }
        if dtype in ("F16", "BF16"):
            entry["bits"] = [int(b) for b in arr.reshape(-1).view(np.uint16)]
        assert all(v is not None for v in entry["values"])
        expected["tensors"][name] = entry

    json_path = out / "safetensors_numpy.json"
    json_path.write_text(json.dumps(expected, indent=1, allow_nan=False) + "\n")

    # Self-check: re-parse the file with the independent parser.
    info, violations, _ = parse_safetensors(st_path.read_bytes())
    assert not violations, violations
    for name, e in expected["tensors"].items():
        t = info["tensors"][name]
        got = decode_tensor(t["dtype"], t["shape"], t["raw"]).reshape(-1).astype(np.float64)
        assert got.tolist() == e["values"], name
    return st_path, json_path, header_length, file_size, offsets


def rounding_inputs():
    """(label, f32 bit pattern) pairs for the conversion references."""
    cases = []

    def add(label, value=None, bits=None):
        cases.append((label, f32_bits(value) if bits is None else bits))

    # Basic values.
    add("0", 0.0)
    add("-0", bits=0x80000000)
    add("1", 1.0)
    add("-1", -1.0)
    add("1/3", 1.0 / 3.0)
    add("pi", math.pi)
    # f16 overflow boundary: max finite f16 = 65504, 65520 is the tie to 65536.
    add("65504 (max f16)", 65504.0)
    add("65505", 65505.0)
    add("65519", 65519.0)
    add("65520 - 1ulp", bits=f32_bits(65520.0) - 1)
    add("65520 (f16 overflow tie -> inf)", 65520.0)
    add("-65520", -65520.0)
    add("65536", 65536.0)
    # f16 underflow / subnormal boundaries.
    add("1e-8", 1e-8)
    add("6e-8", 6e-8)
    add("5.96e-8", 5.96e-8)
    add("2.98e-8", 2.98e-8)
    add("2^-24 (smallest f16 subnormal)", 2.0 ** -24)
    add("2^-25 (f16 tie 0 / 2^-24 -> 0)", 2.0 ** -25)
    add("2^-25 + 1ulp", bits=f32_bits(2.0 ** -25) + 1)
    add("-2^-25", -(2.0 ** -25))
    add("1.5 * 2^-24 (f16 subnormal tie, odd lower)", 1.5 * 2.0 ** -24)
    add("2.5 * 2^-24 (f16 subnormal tie, even lower)", 2.5 * 2.0 ** -24)
    add("2^-14 - 2^-25 (f16 tie largest subnormal / smallest normal)", 2.0 ** -14 - 2.0 ** -25)
    add("2^-14 (smallest f16 normal)", 2.0 ** -14)
    add("1e-5", 1e-5)
    # f32 extremes.
    add("smallest f32 normal", bits=0x00800000)
    add("smallest f32 subnormal", bits=0x00000001)
    add("f32 subnormal 0x00400000", bits=0x00400000)
    add("-f32 subnormal 0x80123456", bits=0x80123456)
    add("largest f32", bits=0x7F7FFFFF)
    add("-largest f32", bits=0xFF7FFFFF)
    add("+inf", bits=0x7F800000)
    add("-inf", bits=0xFF800000)
    # bf16 ties (low 16 bits exactly 0x8000) and near-ties.
    add("bf16 tie, even lower (0x3F808000)", bits=0x3F808000)
    add("bf16 tie, odd lower (0x3F818000)", bits=0x3F818000)
    add("bf16 tie, even lower, negative (0xBF808000)", bits=0xBF808000)
    add("bf16 tie, odd lower, negative (0xBF818000)", bits=0xBF818000)
    add("bf16 just below tie (0x3F807FFF)", bits=0x3F807FFF)
    add("bf16 just above tie (0x3F808001)", bits=0x3F808001)
    add("bf16 tie into next binade (0x3F7F8000)", bits=0x3F7F8000)
    add("bf16 tie at max finite -> inf (0x7F7F8000)", bits=0x7F7F8000)
    add("bf16 just below max tie (0x7F7F7FFF)", bits=0x7F7F7FFF)
    add("bf16 subnormal tie, even lower (0x00008000)", bits=0x00008000)
    add("bf16 subnormal tie, odd lower (0x00018000)", bits=0x00018000)
    add("bf16 subnormal tie into normal (0x007F8000)", bits=0x007F8000)
    add("bf16 tie, odd lower (0x40498000)", bits=0x40498000)
    add("bf16 tie, even lower (0x40488000)", bits=0x40488000)
    # f16 ties (exactly halfway between two f16 values).
    add("1 + 2^-11 (f16 tie, even lower)", 1.0 + 2.0 ** -11)
    add("1 + 3*2^-11 (f16 tie, odd lower)", 1.0 + 3.0 * 2.0 ** -11)
    add("1 + 2^-11 + 2^-23 (just above f16 tie)", 1.0 + 2.0 ** -11 + 2.0 ** -23)
    add("-(1 + 3*2^-11)", -(1.0 + 3.0 * 2.0 ** -11))
    add("2049 (f16 tie, even lower)", 2049.0)
    add("2051 (f16 tie, odd lower)", 2051.0)
    add("2 - 2^-11 (f16 tie into next binade)", 2.0 - 2.0 ** -11)
    # Round up into the next binade.
    add("0x3FFFFFFF (just below 2)", bits=0x3FFFFFFF)
    add("0x3F7FFFFF (just below 1)", bits=0x3F7FFFFF)
    # NaNs: only NaN-ness should be checked.
    add("quiet NaN 0x7FC00000", bits=0x7FC00000)
    add("negative quiet NaN 0xFFC00000", bits=0xFFC00000)
    add("quiet NaN with payload 0x7FC00001", bits=0x7FC00001)
    add("signaling NaN 0x7F800001", bits=0x7F800001)

    # Random float32 values: mixed signs, magnitudes 1e-9 .. 1e6.
    rng = np.random.default_rng(SEED)
    exps = rng.uniform(-9.0, 6.0, 200)
    signs = rng.choice(np.array([-1.0, 1.0]), 200)
    rand = (signs * 10.0 ** exps).astype(np.float32)
    for i, b in enumerate(rand.view(np.uint32)):
        cases.append((f"random[{i}]", int(b)))
    return cases


def generate_rounding_file(out: Path):
    cases = rounding_inputs()
    bits = np.array([b for _, b in cases], dtype=np.uint32)
    f32 = bits.view(np.float32)

    bf16 = f32_to_bf16_bits_torch(f32)
    bf16_back = bf16_bits_to_f32_torch(bf16).view(np.uint32)
    f16 = f32_to_f16_bits_numpy(f32)
    f16_back = f16.view(np.float16).astype(np.float32).view(np.uint32)

    records = []
    mismatches = []
    for i, (label, b) in enumerate(cases):
        is_nan = math.isnan(bits_f32(b))
        rec = {
            "label": label,
            "f32_bits": b,
            "f32_value": json_number(float(f32[i])),  # null for inf/NaN
            "bf16_bits": int(bf16[i]),
            "bf16_to_f32_bits": int(bf16_back[i]),
            "f16_bits": int(f16[i]),
            "f16_to_f32_bits": int(f16_back[i]),
            "nan": is_nan,
        }
        records.append(rec)
        if is_nan:
            continue
        # Independent cross-checks of the torch/numpy results.
        if rec["bf16_bits"] != rne_bf16_bits_python(b):
            mismatches.append(f"bf16 {label}: torch {rec['bf16_bits']:#06x} "
                              f"python {rne_bf16_bits_python(b):#06x}")
        if rec["f16_bits"] != rne_f16_bits_python(b):
            mismatches.append(f"f16 {label}: numpy {rec['f16_bits']:#06x} "
                              f"python {rne_f16_bits_python(b):#06x}")
        if rec["bf16_to_f32_bits"] != rec["bf16_bits"] << 16:
            mismatches.append(f"bf16->f32 {label}")
        h = struct.unpack("<e", struct.pack("<H", rec["f16_bits"]))[0]
        if rec["f16_to_f32_bits"] != f32_bits(h):
            mismatches.append(f"f16->f32 {label}")
    if mismatches:
        raise SystemExit("reference cross-check failed:\n" + "\n".join(mismatches))

    doc = {
        "description": "float32 -> bfloat16 / float16 conversion references. All values are "
                       "bit patterns as unsigned integers. Rounding is round-to-nearest-even. "
                       "For records with nan=true only NaN-ness should be checked.",
        "generator": f"numpy {np.__version__}, torch {torch.__version__}",
        "bf16_method": "torch.from_numpy(f32_array).to(torch.bfloat16).view(torch.int16); "
                       "decoded with .view(torch.bfloat16).to(torch.float32)",
        "f16_method": "f32_array.astype(np.float16).view(np.uint16); decoded with "
                      ".view(np.float16).astype(np.float32)",
        "cases": records,
    }
    path = out / "float_rounding.json"
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return path, records


def cmd_generate(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    st_path, json_path, n, size, offsets = generate_numpy_file(out)
    print(f"wrote {st_path} (header length {n}, file size {size})")
    for name in DATA_ORDER:
        print(f"  {name}: data_offsets {list(offsets[name])}")
    print(f"wrote {json_path}")
    rpath, records = generate_rounding_file(out)
    print(f"wrote {rpath} ({len(records)} cases, "
          f"{sum(r['nan'] for r in records)} NaN)")
    return 0


def main(argv=None) -> int:
    default_out = Path(__file__).resolve().parent.parent / "fixtures"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    g = sub.add_parser("generate", help="write the reference fixtures (default)")
    g.add_argument("--out", default=str(default_out), help=f"output directory (default {default_out})")
    v = sub.add_parser("verify", help="check safetensors files written by another implementation")
    v.add_argument("paths", nargs="+", metavar="PATH")
    v.add_argument("--strict-padding", action="store_true",
                   help="treat a header length that is not a multiple of 8 as a violation")
    v.add_argument("--max-values", type=int, default=8,
                   help="number of values to print per tensor (-1 for all)")
    args = parser.parse_args(argv)
    if args.mode is None:
        args = parser.parse_args(["generate"])
    return cmd_generate(args) if args.mode == "generate" else cmd_verify(args)


if __name__ == "__main__":
    sys.exit(main())
