#!/usr/bin/env python3
"""Writes the IDX corpus replayed by tests/test_idx.c (and by replay_idx, the
fuzz target's seed): ok_* files must load, bad_* files must fail cleanly. Run
from tests/corpus/idx; needs only the standard library, so the bytes are
written by hand, independently of scorekit. gzip members carry mtime 0, so the
output is the same on every run."""
import gzip
import struct

CODES = {"u8": (0x08, "B"), "i8": (0x09, "b"), "i16": (0x0B, "h"), "i32": (0x0C, "i"),
         "f32": (0x0D, "f"), "f64": (0x0E, "d")}


def idx(kind, dims, values, ndim=None, code=None):
    c, fmt = CODES[kind]
    head = bytes([0, 0, code if code is not None else c, len(dims) if ndim is None else ndim])
    return head + struct.pack(">%dI" % len(dims), *dims) + struct.pack(">%d%s" % (len(values), fmt), *values)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


files = {}
# MNIST-shaped: three 4x4 images of 8-bit pixels and their labels.
pixels = [(i * 37) % 256 for i in range(48)]
files["ok_u8_images_3x4x4.idx"] = idx("u8", [3, 4, 4], pixels)
files["ok_u8_images_3x4x4.idx.gz"] = gz(files["ok_u8_images_3x4x4.idx"])
files["ok_u8_labels_3.idx"] = idx("u8", [3], [9, 0, 3])
files["ok_i8_2x2.idx"] = idx("i8", [2, 2], [-128, -1, 0, 127])
files["ok_i16_3.idx.gz"] = gz(idx("i16", [3], [-32768, 0, 32767]))
files["ok_i32_2.idx"] = idx("i32", [2], [-16777216, 16777216])
files["ok_f32_nchw_1x2x2x2.idx"] = idx("f32", [1, 2, 2, 2], [0.0, 0.25, 0.5, 0.75, 1.0, -1.0, 1e-3, 3e38])
files["ok_f64_2x3.idx.gz"] = gz(idx("f64", [2, 3], [0.1, -2.5, 0.0, 1e-300, 123.25, -3e38]))
files["ok_empty_0x28x28.idx"] = idx("u8", [0, 28, 28], [])
files["ok_two_members.idx.gz"] = gz(files["ok_u8_images_3x4x4.idx"][:10]) + gz(files["ok_u8_images_3x4x4.idx"][10:])

files["bad_empty.idx"] = b""
files["bad_magic.idx"] = b"\x50\x4b\x03\x04" + bytes(12)
files["bad_type_0x0a.idx"] = idx("u8", [2], [1, 2], code=0x0A)
files["bad_rank0.idx"] = bytes([0, 0, 8, 0, 7])
files["bad_rank5.idx"] = idx("u8", [1, 1, 1, 1, 1], [7])
files["bad_dims_cut.idx"] = idx("u8", [2, 2], [1, 2, 3, 4])[:9]
files["bad_negative_dim.idx"] = bytes([0, 0, 8, 2]) + struct.pack(">Ii", 1, -5) + b"\x01"
files["bad_overflow.idx"] = bytes([0, 0, 8, 4]) + struct.pack(">4I", *[0x7FFFFFFF] * 4)
files["bad_truncated.idx"] = idx("u8", [2, 3], [1, 2, 3, 4, 5, 6])[:-2]
files["bad_trailing.idx"] = idx("u8", [2, 3], [1, 2, 3, 4, 5, 6]) + b"\x00"
files["bad_nan.idx"] = idx("f32", [3], [1.0, float("nan"), 2.0])
files["bad_inf.idx.gz"] = gz(idx("f64", [2], [float("inf"), 0.0]))
files["bad_i32_inexact.idx"] = idx("i32", [1], [16777217])
files["bad_gzip_truncated.idx.gz"] = files["ok_u8_images_3x4x4.idx.gz"][:-5]
files["bad_gzip_crc.idx.gz"] = bytearray(files["ok_u8_images_3x4x4.idx.gz"])
files["bad_gzip_crc.idx.gz"][-6] ^= 0x01
files["bad_gzip_garbage_after.idx.gz"] = files["ok_u8_images_3x4x4.idx.gz"] + b"junk"
files["bad_gzip_data_short.idx.gz"] = gz(idx("u8", [2, 3], [1, 2, 3, 4, 5, 6])[:-1])
files["bad_gzip_data_long.idx.gz"] = gz(idx("u8", [2, 3], [1, 2, 3, 4, 5, 6]) + b"\x00")
files["bad_gzip_bomb_header.idx.gz"] = gz(bytes([0, 0, 8, 2]) + struct.pack(">2I", 60000, 60000))

for name, data in files.items():
    with open(name, "wb") as f:
        f.write(bytes(data))
