#!/usr/bin/env python3
"""Writes the safetensors corpus replayed by tests/test_safetensors.c: ok_* files
must load, bad_* files must fail cleanly. Run from this folder; needs only the
standard library, so the bytes are written by hand, independently of scorekit."""
import json
import struct


def pack(header, data, pad=True, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


files = {}
files["ok_f32_basic"] = pack(
    {"__metadata__": {"format": "pt", "note": "quote \" backslash \\ newline \n \u00e9\u20ac"},
     "w": entry("F32", [2, 3], 0, 24), "b": entry("F32", [3], 24, 36)},
    f32(1, 2, 3, 4, 5, 6) + f32(-0.5, 0.25, 1e-3))
files["ok_mixed_dtypes"] = pack(
    {"d": entry("F64", [2], 0, 16), "h": entry("F16", [3], 16, 22),
     "bf": entry("BF16", [2], 22, 26), "f": entry("F32", [1], 26, 30)},
    struct.pack("<2d", 0.1, -2.0) + struct.pack("<3H", 0x3C00, 0xC000, 0x0001)
    + struct.pack("<2H", 0x3F80, 0x4049) + f32(7.0))
files["ok_empty"] = pack({}, b"")
files["ok_unpadded_scalar_and_zero"] = pack(
    {"s": entry("F32", [], 0, 4), "z": entry("F32", [0, 3], 4, 4)}, f32(42.0), pad=False)
files["ok_offset_order"] = pack(
    {"second": entry("F32", [1], 4, 8), "first": entry("F32", [1], 0, 4)}, f32(1, 2))
files["bad_short_file"] = b"\x08\x00\x00\x00"
files["bad_header_len_huge"] = struct.pack("<Q", 1 << 62) + b"{}      "
files["bad_header_len_past_eof"] = struct.pack("<Q", 1000) + b"{}      "
files["bad_not_object"] = pack(None, b"", raw_header=b"[]")
files["bad_json"] = pack(None, f32(1), raw_header=b'{"a":{"dtype":"F32","shape":[1],}}')
files["bad_missing_offsets"] = pack({"a": {"dtype": "F32", "shape": [1]}}, f32(1))
files["bad_dtype"] = pack({"a": entry("I64", [1], 0, 8)}, b"\0" * 8)
files["bad_byte_size"] = pack({"a": entry("F32", [3], 0, 8)}, f32(1, 2))
files["bad_overlap"] = pack({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}, f32(1, 2, 3))
files["bad_hole"] = pack({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}, f32(1, 2, 3))
files["bad_trailing"] = pack({"a": entry("F32", [1], 0, 4)}, f32(1, 2))
files["bad_truncated"] = pack({"a": entry("F32", [4], 0, 16)}, f32(1, 2))
files["bad_nan"] = pack({"a": entry("F32", [2], 0, 8)}, f32(1.0, float("nan")))
files["bad_dup_name"] = pack(None, f32(1, 2), raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                             b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')
files["bad_rank5"] = pack({"a": entry("F32", [1, 1, 1, 1, 1], 0, 4)}, f32(1))

for name, data in files.items():
    with open(name + ".safetensors", "wb") as f:
        f.write(data)
