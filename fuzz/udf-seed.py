#!/usr/bin/env python3
"""Turns a UDF image (2048-byte sectors) into the fuzz target `udf`'s sparse form: for each
non-zero sector below 1024, a 2-byte little-endian sector number and its 2048 bytes."""
import sys

img = open(sys.argv[1], "rb").read()
out = bytearray()
for n in range(min(len(img) // 2048, 1024)):
    s = img[n * 2048:(n + 1) * 2048]
    if any(s):
        out += n.to_bytes(2, "little") + s
sys.stdout.buffer.write(bytes(out))
