"""Count the parameters of an ONNX file without the `onnx` package (not in the light install).

An ONNX file is a protobuf ModelProto; its weights are the graph's initialisers (TensorProto),
whose element count is the product of their `dims`. This reads just those fields from the wire
format: ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto.dims = 1 (int64,
packed or not).
"""

from __future__ import annotations

import os
from math import prod

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def onnx_parameter_count(path: str | os.PathLike) -> int:
    """The number of weights (initialiser elements) in an ONNX model file."""
    with open(path, "rb") as f:
        data = memoryview(f.read())
    total = 0
    for field, graph in _fields(data):
        if field != 7:
            continue
        for sub, tensor in _fields(graph):
            if sub == 5:
                total += prod(_dims(tensor))
    return total


def _dims(tensor: memoryview) -> list[int]:
    dims: list[int] = []
    for field, value in _fields(tensor, keep_varints=True):
        if field != 1:
            continue
        if isinstance(value, int):
            dims.append(value)
        else:  # packed
            pos = 0
            while pos < len(value):
                number, pos = _varint(value, pos)
                dims.append(number)
    return dims


def _fields(buf: memoryview, keep_varints: bool = False):
    """(field number, value) of one message: bytes for length-delimited fields, int for
    varints (when keep_varints); fixed-width fields are skipped."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            if keep_varints:
                yield field, value
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            yield field, buf[pos : pos + size]
            pos += size
        elif wire in (_I64, _I32):
            pos += 8 if wire == _I64 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
