"""Reading a PaddlePaddle parameter file without Paddle: the step before convert_ernie_checkpoint.py.

Takes one file of a `params/` folder as Baidu released ERNIE 1.0 (`params/word_embedding`,
`params/encoder_layer_0_ffn_fc_0.w_0`, ...: one file per parameter, named after it) and hands on its values as a
numpy array. Paddle wrote each file with its `save` op (what `fluid.io.save_params` and
`paddle.static.save_vars` run per variable), which calls `SerializeToStream` on a LoDTensor:

    uint32   LoDTensor version, 0
    uint64   LoD level, the number of offset tables that follow: 0 for a parameter
               per level: uint64 size in bytes, then that many bytes of size_t offsets
    uint32   tensor version, 0
    int32    size of the TensorDesc that follows, in bytes
    bytes    TensorDesc, a protobuf message: field 1 data_type (varint, Paddle's VarType.Type),
             field 2 dims (one varint per dimension, int64)
    bytes    the values, row-major, little-endian: product(dims) * the type's size

Every number is little-endian. A worked example, the bias of shape [4] in float32 (40 bytes):

    00 00 00 00                  LoDTensor version 0
    00 00 00 00 00 00 00 00      LoD level 0
    00 00 00 00                  tensor version 0
    04 00 00 00                  TensorDesc is 4 bytes:
    08 05                          field 1, varint: 5 = FP32
    10 04                          field 2, varint: 4 (a second dimension would be another `10 ..`)
    00 00 80 3f 00 00 00 40 ...  4 float32: 1.0, 2.0, ...

A fluid `fc` layer stores its weight as [in, out] (it computes x @ W), PyTorch's Linear as [out, in]; which files
need a transpose is the converter's business, not this file's.

Run `python -m transformers.paddle_params PARAMS_DIR` to list the files of a folder with their types and shapes.
"""
import os
import struct
import sys
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .tf_checkpoint import _read_fields, _read_varint

# Paddle's VarType.Type (paddle/fluid/framework/framework.proto), for the kinds a parameter can hold:
# number -> (name, numpy dtype). BF16 has no numpy dtype; its bytes are kept as uint16.
PADDLE_DTYPES = {
    0: ("BOOL", np.dtype(np.bool_)), 1: ("INT16", np.dtype("<i2")), 2: ("INT32", np.dtype("<i4")),
    3: ("INT64", np.dtype("<i8")), 4: ("FP16", np.dtype("<f2")), 5: ("FP32", np.dtype("<f4")),
    6: ("FP64", np.dtype("<f8")), 20: ("UINT8", np.dtype(np.uint8)), 21: ("INT8", np.dtype(np.int8)),
    22: ("BF16", np.dtype("<u2")),
}


class ParamsError(ValueError):
    """A Paddle parameter file that cannot be read or is not what the model needs: the message names the file."""


@dataclass
class PaddleTensor:
    path: str
    dtype_name: str  # Paddle's name of the type: "FP32", "FP16", ...
    shape: Tuple[int, ...]
    values: np.ndarray  # of that shape, in the type's numpy dtype


def read_paddle_tensor(path):
    """Read one LoDTensor file (see the module docstring). A file that is too short, too long or not this
    format raises ParamsError naming it."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(size, what):
        nonlocal pos
        if pos + size > len(data):
            raise ParamsError(f"{path}: the file ends inside the {what} (at byte {pos} of {len(data)}); it is "
                              "truncated or not a Paddle parameter file")
        piece = data[pos:pos + size]
        pos += size
        return piece

    (lod_version,) = struct.unpack("<I", take(4, "LoDTensor version"))
    (lod_level,) = struct.unpack("<Q", take(8, "LoD level"))
    if lod_version != 0 or lod_level > 8:
        raise ParamsError(f"{path}: starts with version {lod_version} and LoD level {lod_level}, not a Paddle "
                          "LoDTensor file (version 0, a small LoD level)")
    for level in range(lod_level):  # a parameter has none; a saved sequence batch would
        (size,) = struct.unpack("<Q", take(8, f"size of LoD level {level}"))
        take(size, f"LoD level {level}")
    (tensor_version,) = struct.unpack("<I", take(4, "tensor version"))
    (desc_size,) = struct.unpack("<i", take(4, "TensorDesc size"))
    if tensor_version != 0 or desc_size <= 0 or desc_size > 1024:
        raise ParamsError(f"{path}: tensor version {tensor_version}, TensorDesc of {desc_size} bytes; not a Paddle "
                          "LoDTensor file (version 0, a TensorDesc of a few bytes)")
    fields = _read_fields(take(desc_size, "TensorDesc"), f"{path} (TensorDesc)")
    type_number = fields.get(1, [None])[0]
    if type_number not in PADDLE_DTYPES:
        raise ParamsError(f"{path}: data type {type_number} is not a numeric Paddle type "
                          f"({', '.join(name for name, _ in PADDLE_DTYPES.values())})")
    dtype_name, dtype = PADDLE_DTYPES[type_number]
    shape = tuple(_as_int64(dim) for dim in _dims(fields.get(2, []), path))
    if any(dim < 0 for dim in shape):
        raise ParamsError(f"{path}: shape {list(shape)} has an unknown (-1) dimension; a saved parameter has none")
    count = int(np.prod(shape, dtype=np.int64))
    raw = take(count * dtype.itemsize, f"values ({count} x {dtype_name})")
    if pos != len(data):
        raise ParamsError(f"{path}: {len(data) - pos} bytes after the {count} values of shape {list(shape)}; the "
                          "file is not one Paddle parameter")
    values = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return PaddleTensor(path=path, dtype_name=dtype_name, shape=shape, values=values)


def _dims(values, path):
    """`repeated int64 dims = 2` comes one varint per dimension (proto2's default, what Paddle writes), or, from
    a writer that packs repeated fields, as one length-delimited run of varints: take both."""
    dims = []
    for value in values:
        if isinstance(value, bytes):  # packed: varint after varint
            pos = 0
            while pos < len(value):
                number, pos = _read_varint(value, pos, f"{path} (TensorDesc dims)")
                dims.append(number)
        else:
            dims.append(value)
    return dims


def _as_int64(value):
    """A negative int64 is written as its 64-bit two's complement (ten varint bytes): -1 reads as 2**64 - 1."""
    return value - (1 << 64) if value >= 1 << 63 else value


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m transformers.paddle_params PARAMS_DIR", file=sys.stderr)
        return 2
    folder = argv[0]
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        try:
            tensor = read_paddle_tensor(path)
        except (OSError, ValueError) as error:
            print(f"{name}: not read ({error})")
            continue
        print(f"{name}: {tensor.dtype_name} {list(tensor.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
