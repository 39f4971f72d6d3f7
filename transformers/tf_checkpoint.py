"""Reading path, stop 6, step 4 of `from_pretrained` (read the state dict) for Google's original releases:
reading a TensorFlow checkpoint without TensorFlow.

Takes the prefix of a TensorFlow checkpoint (`chinese_L-12_H-768_A-12/bert_model.ckpt`) and hands on its
variables as torch tensors, renamed to this package's parameter names when asked (`bert_state_dict` for Google's
BERT, `albert_state_dict` for Google's ALBERT, `xlnet_state_dict` for CMU's XLNet).

A TensorFlow checkpoint ("tensor bundle") is two kinds of file:

    bert_model.ckpt.index                  a sorted table: variable name -> where its bytes are
    bert_model.ckpt.data-00000-of-00001    the raw tensor bytes, one tensor after the other

The `.index` is a table in LevelDB's format ("SSTable"), read bottom-up:

    [data block 0][trailer] [data block 1][trailer] ... [metaindex block][trailer] [index block][trailer] [footer]

    footer (last 48 bytes)  two BlockHandles (varint offset, varint size): the metaindex block, the index block;
                            zero padding; then the 8-byte magic number 0xdb4775248b80fb57.
    index block             one entry per data block: key >= every key in that block, value = its BlockHandle.
    data block              the entries (name -> BundleEntryProto), sorted by name.
    trailer (5 bytes)       compression type (0 = none; TensorFlow never compresses a bundle's index) and the
                            masked crc32c of the block and that type byte.

Inside a block, each key shares a prefix with the key before it, so it is stored as (how many bytes are shared,
the rest). Every 16th entry is a "restart point" that shares nothing; a list of their offsets ends the block.
A worked example, a block holding two entries:

    varint 0, varint 22, varint 19, "bert/pooler/dense/bias", <19-byte value>       shared 0: the whole key
    varint 18, varint 6, varint 24, "kernel", <24-byte value>                       "bert/pooler/dense/" + "kernel"
    uint32 0                                                                        restart point: offset 0
    uint32 1                                                                        one restart point

Each value is a small protobuf message, decoded by hand below (`_read_fields`). The entry under the empty key is
the BundleHeaderProto (number of shards, byte order); every other is a BundleEntryProto. The 19 bytes of
`bert/pooler/dense/bias` in tests/fixtures/tf_bert_tiny:

    08 01                field 1 (dtype), varint:  1 = DT_FLOAT
    12 04 12 02 08 10    field 2 (shape), 4 bytes: TensorShapeProto { dim { size: 16 } }
    20 80 96 04          field 4 (offset), varint: 68352 (field 3, shard_id, is 0 and therefore not written)
    28 40                field 5 (size), varint:   64 bytes
    35 4b 71 00 f2       field 6 (crc32c), fixed32: masked crc32c of those 64 bytes

So that bias is 16 float32 in `.data-00000-of-00001` at bytes 68352..68416, and we check those bytes against the
crc32c before handing them on.

Run `python -m transformers.tf_checkpoint PREFIX` to list a checkpoint's variables and our name for each.
"""
import functools
import glob
import os
import re
import struct
import sys
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import torch

TABLE_MAGIC = 0xdb4775248b80fb57
FOOTER_SIZE = 48  # 2 BlockHandles padded to 40 bytes, then the 8-byte magic number
BLOCK_TRAILER_SIZE = 5  # 1 compression-type byte, 4 bytes masked crc32c

# TensorFlow's DataType enum (tensorflow/core/framework/types.proto) -> torch dtype, for the kinds a model
# checkpoint holds. bfloat16 has no numpy dtype; its bytes are read as int16 and viewed as torch.bfloat16.
TF_DTYPES = {
    1: ("DT_FLOAT", torch.float32), 2: ("DT_DOUBLE", torch.float64), 3: ("DT_INT32", torch.int32),
    4: ("DT_UINT8", torch.uint8), 5: ("DT_INT16", torch.int16), 6: ("DT_INT8", torch.int8),
    9: ("DT_INT64", torch.int64), 10: ("DT_BOOL", torch.bool), 14: ("DT_BFLOAT16", torch.bfloat16),
    19: ("DT_HALF", torch.float16),
}
TF_UNSUPPORTED_DTYPES = {7: "DT_STRING", 8: "DT_COMPLEX64", 18: "DT_COMPLEX128", 20: "DT_RESOURCE",
                         21: "DT_VARIANT"}


class CheckpointError(ValueError):
    """A TensorFlow checkpoint that cannot be read: the message names the file and, where there is one, the
    variable."""


# ---- crc32c -------------------------------------------------------------------------------------------------
#
# CRC-32C (Castagnoli) is CRC-32 with another polynomial; Python's zlib only has the ordinary one. The register
# takes one byte at a time: r = TABLE[(r ^ byte) & 0xff] ^ (r >> 8), starting from 0xffffffff and inverted at
# the end. TensorFlow stores checksums "masked" (rotated and offset) so that a checksum of data that itself holds
# checksums does not degenerate.

def _make_crc_table():
    reflected_polynomial = 0x82F63B78
    table = []
    for byte in range(256):
        r = byte
        for _ in range(8):
            r = (r >> 1) ^ (reflected_polynomial if r & 1 else 0)
        table.append(r)
    return np.array(table, dtype=np.uint32)


CRC_TABLE = _make_crc_table()
_CRC_TABLE_LIST = [int(v) for v in CRC_TABLE]


def _crc_register(data, register=0):
    """The raw register after feeding `data` one byte at a time (no start value, no final inversion)."""
    for byte in data:
        register = _CRC_TABLE_LIST[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register


def crc32c(data):
    """CRC-32C of `data` (bytes or a uint8 numpy array). crc32c(b"123456789") == 0xe3069283.

    Byte by byte in Python costs about a tenth of a second per megabyte: most of a minute for BERT-base. Large
    inputs are therefore cut into K rows of equal length C and numpy advances all K registers at once, one column
    per step; the K row checksums are then joined in order. Two properties of the register make that exact:
      - It is linear: the register after A+B equals shift(register after A, len(B)) ^ (register after B alone,
        started from 0), where shift(r, n) is r fed n zero bytes. `_shift_tables` precomputes shift for a row.
      - Zero bytes fed to a zero register leave it zero, so padding the *front* with zeros changes nothing; that
        makes the length a multiple of C. The start value 0xffffffff is the same as inverting the first 4 bytes.
    """
    data = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if data.size < 4096:
        return _crc_register(data.tobytes(), 0xFFFFFFFF) ^ 0xFFFFFFFF
    row_length = 1 << max(6, min(12, (int(data.size ** 0.5)).bit_length() - 1))  # C, a power of two
    rows = -(-data.size // row_length)  # K
    padded = np.zeros(rows * row_length, dtype=np.uint8)
    padded[padded.size - data.size:] = data
    padded[padded.size - data.size:][:4] ^= 0xFF  # the start value 0xffffffff
    columns = np.ascontiguousarray(padded.reshape(rows, row_length).T)  # [K, C] -> [C, K]
    registers = np.zeros(rows, dtype=np.uint32)
    for column in columns:  # C steps, each advancing K registers by one byte
        registers = CRC_TABLE[(registers ^ column) & 0xFF] ^ (registers >> 8)
    shift = _shift_tables(row_length)
    total = 0
    for row_register in registers.tolist():  # total = shift(total, C) ^ row, row by row in order
        total = (shift[0][total & 0xFF] ^ shift[1][(total >> 8) & 0xFF] ^ shift[2][(total >> 16) & 0xFF]
                 ^ shift[3][total >> 24] ^ row_register)
    return total ^ 0xFFFFFFFF


@functools.lru_cache(maxsize=None)
def _shift_tables(length):
    """shift(r, length) is linear in r, so it is the XOR of its value on each of r's four bytes:
    tables[i][v] = shift(v << 8i, length), all 1024 computed together."""
    registers = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None])
    for _ in range(length):  # feed a zero byte
        registers = CRC_TABLE[registers & 0xFF] ^ (registers >> 8)
    return [row.tolist() for row in registers]


def unmask_crc(masked):
    """Undo TensorFlow's mask: masked = rotate_right(crc, 15) + 0xa282ead8 (mod 2**32)."""
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rotated << 15) | (rotated >> 17)) & 0xFFFFFFFF


# ---- varints and protobuf fields -----------------------------------------------------------------------------

def _read_varint(data, pos, where):
    """Little-endian base-128: 7 bits per byte, high bit set on every byte but the last. b"\\xc0\\x02" = 320."""
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CheckpointError(f"{where}: a number runs past the end of its bytes; the file is truncated "
                                  "or corrupt")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _read_fields(message, where):
    """{field number: [values]} of a protobuf message. Varints and fixed32 come back as ints, length-delimited
    fields (strings, nested messages) as bytes. A key byte is (field number << 3) | wire type."""
    fields: Dict[int, list] = {}
    pos = 0
    while pos < len(message):
        key, pos = _read_varint(message, pos, where)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:  # varint
            value, pos = _read_varint(message, pos, where)
        elif wire_type == 1:  # fixed64
            value, pos = int.from_bytes(message[pos:pos + 8], "little"), pos + 8
        elif wire_type == 2:  # length-delimited
            length, pos = _read_varint(message, pos, where)
            value, pos = bytes(message[pos:pos + length]), pos + length
        elif wire_type == 5:  # fixed32
            value, pos = int.from_bytes(message[pos:pos + 4], "little"), pos + 4
        else:
            raise CheckpointError(f"{where}: protobuf wire type {wire_type} is not one a checkpoint uses; "
                                  "the file is corrupt")
        if pos > len(message):
            raise CheckpointError(f"{where}: a protobuf field runs past the end of its message; the file is "
                                  "corrupt")
        fields.setdefault(number, []).append(value)
    return fields


@dataclass
class TensorEntry:
    """One variable as the index describes it (a BundleEntryProto)."""
    name: str
    dtype: int  # TensorFlow's DataType number
    shape: Tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    masked_crc32c: int
    sliced: bool  # saved in slices (a partitioned variable): the bytes live under other keys

    @property
    def dtype_name(self):
        if self.dtype in TF_DTYPES:
            return TF_DTYPES[self.dtype][0]
        return TF_UNSUPPORTED_DTYPES.get(self.dtype, f"DataType {self.dtype}")


def _parse_entry(name, value, where):
    fields = _read_fields(value, where)
    shape = ()
    if 2 in fields:  # TensorShapeProto { repeated Dim dim = 2 }, Dim { int64 size = 1 }; a scalar has no dims
        dims = _read_fields(fields[2][0], where).get(2, [])
        shape = tuple(_read_fields(dim, where).get(1, [0])[0] for dim in dims)

    def first(number):  # a field left out holds its default, 0
        return fields.get(number, [0])[0]

    return TensorEntry(name=name, dtype=first(1), shape=shape, shard_id=first(3), offset=first(4),
                       size=first(5), masked_crc32c=first(6), sliced=7 in fields)


# ---- the table ----------------------------------------------------------------------------------------------

def _read_block(index_bytes, handle, path):
    """The contents of the block at BlockHandle (offset, size), after checking its trailer's crc32c."""
    offset, size = handle
    end = offset + size + BLOCK_TRAILER_SIZE
    if end > len(index_bytes) - FOOTER_SIZE:
        raise CheckpointError(f"{path}: a block at bytes {offset}..{end} runs past the end of the table; "
                              "the file is truncated or corrupt")
    block = index_bytes[offset:offset + size]
    compression = index_bytes[offset + size]
    (masked,) = struct.unpack_from("<I", index_bytes, offset + size + 1)
    if crc32c(index_bytes[offset:offset + size + 1]) != unmask_crc(masked):
        raise CheckpointError(f"{path}: crc32c mismatch in the block at bytes {offset}..{end}; the file is corrupt")
    if compression != 0:
        raise CheckpointError(f"{path}: block at byte {offset} is compressed (type {compression}); TensorFlow "
                              "does not compress checkpoint indexes, so this is not a checkpoint index")
    return block


def _block_entries(block, path):
    """Yield (key, value) of each entry of a block, undoing the prefix compression."""
    if len(block) < 4:
        raise CheckpointError(f"{path}: a table block of {len(block)} bytes is too short; the file is corrupt")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    entries_end = len(block) - 4 - 4 * num_restarts
    if entries_end < 0:
        raise CheckpointError(f"{path}: a table block claims {num_restarts} restart points; the file is corrupt")
    key, pos = b"", 0
    while pos < entries_end:
        shared, pos = _read_varint(block, pos, path)
        unshared, pos = _read_varint(block, pos, path)
        value_length, pos = _read_varint(block, pos, path)
        if shared > len(key) or pos + unshared + value_length > entries_end:
            raise CheckpointError(f"{path}: a table entry runs past its block; the file is corrupt")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        yield key, bytes(block[pos:pos + value_length])
        pos += value_length


def read_index(index_path):
    """[(key, value)] of every entry in a checkpoint's .index file, in key order."""
    with open(index_path, "rb") as reader:
        index_bytes = reader.read()
    if len(index_bytes) < FOOTER_SIZE:
        raise CheckpointError(f"{index_path}: {len(index_bytes)} bytes, shorter than a table footer; the file is "
                              "truncated")
    footer = index_bytes[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise CheckpointError(f"{index_path}: no table magic number at the end (found {magic:#018x}); the file is "
                              "truncated or not a TensorFlow checkpoint index")
    _metaindex_offset, pos = _read_varint(footer, 0, index_path)
    _metaindex_size, pos = _read_varint(footer, pos, index_path)
    index_offset, pos = _read_varint(footer, pos, index_path)
    index_size, pos = _read_varint(footer, pos, index_path)
    entries = []
    for _last_key, handle in _block_entries(_read_block(index_bytes, (index_offset, index_size), index_path),
                                            index_path):
        offset, pos = _read_varint(handle, 0, index_path)
        size, _ = _read_varint(handle, pos, index_path)
        entries.extend(_block_entries(_read_block(index_bytes, (offset, size), index_path), index_path))
    return entries


# ---- the checkpoint -----------------------------------------------------------------------------------------

class TFCheckpoint:
    """A TensorFlow checkpoint, opened from its prefix (or its .index file)."""

    def __init__(self, prefix):
        prefix = str(prefix)
        self.prefix = prefix[:-len(".index")] if prefix.endswith(".index") else prefix
        self.index_path = self.prefix + ".index"
        if not os.path.isfile(self.index_path):
            raise FileNotFoundError(f"no TensorFlow checkpoint index at {self.index_path}")
        self.num_shards = 1
        self.entries: Dict[str, TensorEntry] = {}
        for key, value in read_index(self.index_path):
            if key == b"":  # BundleHeaderProto: int32 num_shards = 1; Endianness endianness = 2 (0 = little)
                header = _read_fields(value, f"{self.index_path} (header)")
                self.num_shards = header.get(1, [1])[0]
                if header.get(2, [0])[0] != 0:
                    raise CheckpointError(f"{self.index_path}: the checkpoint was written big-endian; only "
                                          "little-endian checkpoints are supported")
            elif key.startswith(b"\x00"):
                # The pieces of a sliced variable are stored under binary keys that start with a 0 byte; the
                # variable's own entry (marked `sliced`) is what we list and refuse.
                continue
            else:
                name = key.decode("utf-8")
                self.entries[name] = _parse_entry(name, value, f"{self.index_path} ({name})")

    def variables(self):
        """[(name, dtype name, shape)] in the checkpoint's (sorted) order."""
        return [(entry.name, entry.dtype_name, entry.shape) for entry in self.entries.values()]

    def shard_path(self, shard_id):
        return f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}"

    def read(self, name):
        """The variable `name` as a torch tensor, after checking its bytes against the index's crc32c."""
        if name not in self.entries:
            raise KeyError(f"{self.index_path}: no variable {name!r}")
        entry = self.entries[name]
        where = f"{self.index_path}: variable {name!r}"
        if entry.sliced:
            raise CheckpointError(f"{where} was saved in slices (a partitioned variable); sliced variables are "
                                  "not supported. Save it unpartitioned, or read it with TensorFlow")
        if entry.dtype not in TF_DTYPES:
            raise CheckpointError(f"{where} has dtype {entry.dtype_name}, which is not supported (only numeric "
                                  "tensors are)")
        dtype = TF_DTYPES[entry.dtype][1]
        expected = int(np.prod(entry.shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
        if entry.size != expected:
            raise CheckpointError(f"{where}: the index says {entry.size} bytes, shape {list(entry.shape)} of "
                                  f"{entry.dtype_name} needs {expected}; the index is corrupt")
        data_path = self.shard_path(entry.shard_id)
        try:
            with open(data_path, "rb") as reader:
                reader.seek(entry.offset)
                data = reader.read(entry.size)
        except FileNotFoundError:
            raise CheckpointError(f"{where} lives in {data_path}, which does not exist") from None
        if len(data) != entry.size:
            raise CheckpointError(f"{data_path}: variable {name!r} needs bytes {entry.offset}..."
                                  f"{entry.offset + entry.size}, the file ends at {entry.offset + len(data)}; "
                                  "the file is truncated")
        if crc32c(data) != unmask_crc(entry.masked_crc32c):
            raise CheckpointError(f"{data_path}: crc32c mismatch for variable {name!r} (bytes {entry.offset}..."
                                  f"{entry.offset + entry.size}); the file is corrupt, download it again")
        # bytearray: torch wants a writable buffer. bfloat16 goes through int16, which has the same width.
        raw = torch.frombuffer(bytearray(data), dtype=torch.int16 if dtype == torch.bfloat16 else dtype)
        return raw.view(dtype).reshape(entry.shape)


# ---- Google's BERT names -> ours ----------------------------------------------------------------------------
#
#   bert/embeddings/word_embeddings                       -> bert.embeddings.word_embeddings.weight
#   bert/embeddings/LayerNorm/gamma, beta                 -> bert.embeddings.LayerNorm.weight, bias
#   bert/encoder/layer_3/attention/self/query/kernel      -> bert.encoder.layer.3.attention.self.query.weight (.T)
#   bert/pooler/dense/bias                                -> bert.pooler.dense.bias
#   output_weights, output_bias                           -> classifier.weight, classifier.bias
#
# A TensorFlow dense layer computes x @ kernel with kernel [in, out]; nn.Linear computes x @ weight.T with weight
# [out, in]: every kernel is transposed. Google's run_classifier.py is the exception that proves the rule: it
# makes `output_weights` [num_labels, hidden] and multiplies with transpose_b=True, so it is already in
# nn.Linear's layout. Everything else a checkpoint carries is reported as unused: Adam's moment estimates
# (`.../adam_m`, `.../adam_v`, two per weight, twice the model's size), `global_step`, and the pre-training
# heads (`cls/predictions/...`, `cls/seq_relationship/...`) that a sequence classifier does not have.
# Google's ALBERT release keeps BERT's scopes for what ALBERT shares with BERT; see google_albert_name below.

GOOGLE_BERT_UNUSED = re.compile(r"(/adam_[mv]$|^global_step$|^cls/)")


# The pre-training heads, for the models that have them (BertForPreTraining, BertForMaskedLM): the masked-LM
# head's transform and output bias (its decoder is the word-embedding table itself, so the checkpoint has no
# separate weight for it), and the next-sentence head, whose `output_weights` [2, H] is already in nn.Linear's
# layout (like the classifier's).
GOOGLE_BERT_HEADS = {
    "cls/predictions/transform/dense/kernel": ("cls.predictions.transform.dense.weight", True),
    "cls/predictions/transform/dense/bias": ("cls.predictions.transform.dense.bias", False),
    "cls/predictions/transform/LayerNorm/gamma": ("cls.predictions.transform.LayerNorm.weight", False),
    "cls/predictions/transform/LayerNorm/beta": ("cls.predictions.transform.LayerNorm.bias", False),
    "cls/predictions/output_bias": ("cls.predictions.bias", False),
    "cls/seq_relationship/output_weights": ("cls.seq_relationship.weight", False),
    "cls/seq_relationship/output_bias": ("cls.seq_relationship.bias", False),
}


def google_bert_name(tf_name, heads=False):
    """(our parameter name, transpose?) for a variable of Google's BERT, or None for one we do not use.

    heads=True also maps the pre-training heads `cls/...` (GOOGLE_BERT_HEADS)."""
    if heads and tf_name in GOOGLE_BERT_HEADS:
        return GOOGLE_BERT_HEADS[tf_name]
    if GOOGLE_BERT_UNUSED.search(tf_name):
        return None
    if tf_name == "output_weights":
        return "classifier.weight", False
    if tf_name == "output_bias":
        return "classifier.bias", False
    if not tf_name.startswith("bert/"):
        return None
    parts = re.sub(r"/layer_(\d+)/", r"/layer/\1/", tf_name).split("/")
    last = parts[-1]
    if last.endswith("_embeddings"):  # an embedding table is the variable itself: add nn.Embedding's name
        parts.append("weight")
    elif last in ("kernel", "gamma"):
        parts[-1] = "weight"
    elif last == "beta":
        parts[-1] = "bias"
    return ".".join(parts), last == "kernel"


@dataclass
class ConvertedCheckpoint:
    state_dict: Dict[str, torch.Tensor]  # in our names, read and checked
    unused: List[str]  # the checkpoint's names of what we did not read


def bert_state_dict(checkpoint, heads=False):
    """Read the variables of Google's BERT from `checkpoint` (a TFCheckpoint or a prefix) in our names.
    heads=True: the pre-training heads too (for BertForPreTraining and BertForMaskedLM)."""
    return _state_dict(checkpoint, functools.partial(google_bert_name, heads=heads))


def _state_dict(checkpoint, name_of):
    """{our name: tensor} of the variables `name_of` maps, and the names of those it does not."""
    if not isinstance(checkpoint, TFCheckpoint):
        checkpoint = TFCheckpoint(checkpoint)
    state_dict, unused = {}, []
    for name in checkpoint.entries:
        mapped = name_of(name)
        if mapped is None:
            unused.append(name)
            continue
        our_name, transpose = mapped
        tensor = checkpoint.read(name)
        state_dict[our_name] = tensor.t().contiguous() if transpose else tensor  # kernel [in, out] -> [out, in]
    return ConvertedCheckpoint(state_dict=state_dict, unused=unused)


# Google's ALBERT (google-research/albert) names the layer weights by group rather than by depth:
#   bert/encoder/transformer/group_G/inner_group_I/attention_1/self/query/kernel  -> ...albert_layers.I.attention.query
#                                                 /attention_1/output/dense        -> ...attention.dense
#                                                 /LayerNorm                       -> ...attention.LayerNorm
#                                                 /ffn_1/intermediate/dense        -> ...ffn
#                                                 /ffn_1/intermediate/output/dense -> ...ffn_output
#                                                 /LayerNorm_1                     -> ...full_layer_layer_norm
# (the prefix on our side being albert.encoder.albert_layer_groups.G.albert_layers.I), the [E, H] widening matrix
# bert/encoder/embedding_hidden_mapping_in, and the pooler bert/pooler/dense, which is albert.pooler itself.
# Embeddings and the classifier (output_weights) are named as in BERT. Kernels are [in, out]: transposed.
ALBERT_LAYER_PARTS = {
    "attention_1/self/query": "attention.query", "attention_1/self/key": "attention.key",
    "attention_1/self/value": "attention.value", "attention_1/output/dense": "attention.dense",
    "LayerNorm": "attention.LayerNorm", "ffn_1/intermediate/dense": "ffn",
    "ffn_1/intermediate/output/dense": "ffn_output", "LayerNorm_1": "full_layer_layer_norm",
}
ALBERT_LAYER_NAME = re.compile(
    r"^bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/(.+)/(kernel|bias|gamma|beta)$")
TF_PARAMETER_SUFFIX = {"kernel": "weight", "gamma": "weight", "bias": "bias", "beta": "bias"}


# Google ALBERT's pre-training heads (google-research/albert run_pretraining.py), in the reference library's
# names (AlbertForPreTraining's `predictions.*`, `sop_classifier.*`): the masked-LM transform narrows H to E, so
# its kernel is [H, E]; the sentence-order head keeps BERT's next-sentence scope and its [2, H] layout.
GOOGLE_ALBERT_HEADS = {
    "cls/predictions/transform/dense/kernel": ("predictions.dense.weight", True),
    "cls/predictions/transform/dense/bias": ("predictions.dense.bias", False),
    "cls/predictions/transform/LayerNorm/gamma": ("predictions.LayerNorm.weight", False),
    "cls/predictions/transform/LayerNorm/beta": ("predictions.LayerNorm.bias", False),
    "cls/predictions/output_bias": ("predictions.bias", False),
    "cls/seq_relationship/output_weights": ("sop_classifier.classifier.weight", False),
    "cls/seq_relationship/output_bias": ("sop_classifier.classifier.bias", False),
}


def google_albert_name(tf_name, heads=False):
    """(our parameter name, transpose?) for a variable of Google's ALBERT, or None for one we do not use.

    heads=True also maps the pre-training heads `cls/...` (GOOGLE_ALBERT_HEADS)."""
    if heads and tf_name in GOOGLE_ALBERT_HEADS:
        return GOOGLE_ALBERT_HEADS[tf_name]
    if GOOGLE_BERT_UNUSED.search(tf_name):
        return None
    layer = ALBERT_LAYER_NAME.match(tf_name)
    if layer:
        group, inner, part, last = layer.groups()
        if part not in ALBERT_LAYER_PARTS:
            return None
        name = f"albert.encoder.albert_layer_groups.{group}.albert_layers.{inner}.{ALBERT_LAYER_PARTS[part]}"
        return f"{name}.{TF_PARAMETER_SUFFIX[last]}", last == "kernel"
    for scope, ours in (("bert/encoder/embedding_hidden_mapping_in", "albert.encoder.embedding_hidden_mapping_in"),
                        ("bert/pooler/dense", "albert.pooler")):
        if tf_name.startswith(scope + "/"):
            last = tf_name[len(scope) + 1:]
            return (f"{ours}.{TF_PARAMETER_SUFFIX[last]}", last == "kernel") if last in TF_PARAMETER_SUFFIX else None
    mapped = google_bert_name(tf_name)  # embeddings and the classifier: BERT's names
    if mapped is None or not (mapped[0].startswith("bert.embeddings.") or mapped[0].startswith("classifier.")):
        return None
    return re.sub(r"^bert\.", "albert.", mapped[0]), mapped[1]


# brightmart's albert_zh keeps BERT's scopes, with two changes: the one shared layer is `layer_shared` instead of
# `layer_0`..`layer_{n-1}`, and the [E, H] projection of the word vectors sits beside their table:
#   bert/embeddings/word_embeddings_2                  -> bert.embeddings.word_embeddings_2.weight ([E, H] -> [H, E])
#   bert/encoder/layer_shared/attention/self/query/... -> bert.encoder.layer_shared.attention.self.query.weight (.T)
#   cls/predictions/..., cls/seq_relationship/...      -> cls.predictions.*, cls.seq_relationship.* (BERT's heads)
# These are the names of modeling_albert_zh.py and of the seed's package: its pre-training head's project_layer
# is word_embeddings_2 itself in TensorFlow, so the checkpoint holds no variable for it.
ALBERT_ZH_PROJECTION = "bert/embeddings/word_embeddings_2"


def albert_zh_name(tf_name, heads=False):
    """(our parameter name, transpose?) for a variable of brightmart's albert_zh, or None for one we do not use."""
    if tf_name == ALBERT_ZH_PROJECTION:
        return "bert.embeddings.word_embeddings_2.weight", True
    return google_bert_name(tf_name, heads=heads)


def albert_checkpoint_layout(checkpoint):
    """"albert_zh" for a checkpoint with brightmart's names (a shared `layer_shared`, `word_embeddings_2`),
    "google" otherwise."""
    zh = any(name == ALBERT_ZH_PROJECTION or name.startswith("bert/encoder/layer_shared/")
             for name in checkpoint.entries)
    return "albert_zh" if zh else "google"


def albert_state_dict(checkpoint, heads=False):
    """Read the variables of an ALBERT from `checkpoint` (a TFCheckpoint or a prefix) in our names: Google's
    layout in modeling_albert.py's names, albert_zh's in modeling_albert_zh.py's (albert_checkpoint_layout says
    which). heads=True: the pre-training heads too (for AlbertForPreTraining)."""
    if not isinstance(checkpoint, TFCheckpoint):
        checkpoint = TFCheckpoint(checkpoint)
    name_of = albert_zh_name if albert_checkpoint_layout(checkpoint) == "albert_zh" else google_albert_name
    return _state_dict(checkpoint, functools.partial(name_of, heads=heads))


# CMU's XLNet (zihangdai/xlnet, modeling.py) scopes its weights under model/transformer/, one layer_{i} per depth:
#   model/transformer/word_embedding/lookup_table        -> transformer.word_embedding.weight
#   model/transformer/mask_emb/mask_emb                  -> transformer.mask_emb
#   model/transformer/layer_3/rel_attn/q/kernel          -> transformer.layer.3.rel_attn.q   ([H, N, D], as is)
#   model/transformer/layer_3/rel_attn/LayerNorm/gamma   -> transformer.layer.3.rel_attn.layer_norm.weight
#   model/transformer/layer_3/ff/layer_1/kernel          -> transformer.layer.3.ff.layer_1.weight (transposed)
#   model/lm_loss/bias                                   -> lm_loss.bias (lm_loss.weight is the lookup table)
# The attention's projections are einsum tensors [H, N, D] on both sides, so only the dense layers' kernels
# ([in, out]) are transposed. Four variables hold every layer at once, stacked on a first axis of length n_layer:
# r_w_bias, r_r_bias, r_s_bias [n_layer, N, D] and seg_embed [n_layer, 2, N, D]. They are cut into one tensor per
# layer. With xlnet_config.json's `untie_r: false` the three biases are one [N, D] shared by all layers; each
# layer then gets a copy of it (the same values at every depth, which is what the TF graph computes).
# Fine-tuning heads, where a checkpoint has them: CMU's run_classifier.py's `model/sequnece_summary/summary`
# (sic) and `model/classification_<task>/logit` (or `regression_<task>`), and run_squad.py's top-level
# `start_logits/dense`, `end_logits/{dense_0,LayerNorm,dense_1}`, `answer_class/{dense_0,dense_1}`.
XLNET_NAMES = {
    "model/transformer/word_embedding/lookup_table": "transformer.word_embedding.weight",
    "model/transformer/mask_emb/mask_emb": "transformer.mask_emb",
    "model/lm_loss/bias": "lm_loss.bias",
}
XLNET_STACKED = {"model/transformer/r_w_bias": "rel_attn.r_w_bias", "model/transformer/r_r_bias": "rel_attn.r_r_bias",
                 "model/transformer/r_s_bias": "rel_attn.r_s_bias", "model/transformer/seg_embed": "rel_attn.seg_embed"}
XLNET_LAYER_NAME = re.compile(r"^model/transformer/layer_(\d+)/(.+)/(kernel|bias|gamma|beta)$")
XLNET_LAYER_PARTS = {"rel_attn/q": "rel_attn.q", "rel_attn/k": "rel_attn.k", "rel_attn/v": "rel_attn.v",
                     "rel_attn/o": "rel_attn.o", "rel_attn/r": "rel_attn.r",
                     "rel_attn/LayerNorm": "rel_attn.layer_norm",
                     "ff/layer_1": "ff.layer_1", "ff/layer_2": "ff.layer_2", "ff/LayerNorm": "ff.layer_norm"}
XLNET_HEAD_NAME = re.compile(r"^(model/sequnece_summary/summary|model/(?:classification|regression)_[^/]+/logit"
                             r"|start_logits/dense|end_logits/dense_[01]|end_logits/LayerNorm"
                             r"|answer_class/dense_[01])/(kernel|bias|gamma|beta)$")


def cmu_xlnet_name(tf_name):
    """(our parameter name, transpose?) for a variable of CMU's XLNet that maps one to one, or None (the
    stacked per-layer variables XLNET_STACKED, Adam's slots, global_step, anything else)."""
    if tf_name in XLNET_NAMES:
        return XLNET_NAMES[tf_name], False
    layer = XLNET_LAYER_NAME.match(tf_name)
    if layer:
        index, part, last = layer.groups()
        if part not in XLNET_LAYER_PARTS:
            return None
        ours = XLNET_LAYER_PARTS[part]
        if part.startswith("rel_attn/") and part != "rel_attn/LayerNorm":
            return (f"transformer.layer.{index}.{ours}", False) if last == "kernel" else None  # no biases
        return f"transformer.layer.{index}.{ours}.{TF_PARAMETER_SUFFIX[last]}", last == "kernel"
    head = XLNET_HEAD_NAME.match(tf_name)
    if head:
        scope, last = head.groups()
        if scope == "model/sequnece_summary/summary":
            ours = "sequence_summary.summary"
        elif scope.startswith("model/"):
            ours = "logits_proj"
        else:
            ours = scope.replace("/", ".")  # start_logits.dense, end_logits.LayerNorm, ...: the reference's names
        return f"{ours}.{TF_PARAMETER_SUFFIX[last]}", last == "kernel"
    return None


def xlnet_state_dict(checkpoint, heads=True):
    """Read the variables of CMU's XLNet from `checkpoint` (a TFCheckpoint or a prefix) in the reference
    library's names (`transformer.*`, `lm_loss.bias`, the heads'), the stacked per-layer ones cut per layer.

    heads: from_pretrained's argument for BERT's readers; here every head a checkpoint holds is read, and the
    ones a model does not have are reported unused when it loads."""
    if not isinstance(checkpoint, TFCheckpoint):
        checkpoint = TFCheckpoint(checkpoint)
    where = checkpoint.index_path
    if "model/lm_loss/weight" in checkpoint.entries:
        raise CheckpointError(f"{where}: has model/lm_loss/weight, an output table of its own (tie_weight=False); "
                              "only the tied head of CMU's released models is supported")
    heads = [name for name in checkpoint.entries if re.match(r"^model/(classification|regression)_[^/]+/logit/kernel$",
                                                             name)]
    if len(heads) > 1:
        raise CheckpointError(f"{where}: holds {len(heads)} classifier heads ({', '.join(heads)}); keep one")
    converted = _state_dict(checkpoint, cmu_xlnet_name)  # the stacked ones come back unused, read below
    depths = {int(match.group(1)) for match in map(XLNET_LAYER_NAME.match, checkpoint.entries) if match}
    n_layer = max(depths) + 1 if depths else 0
    for tf_name, ours in XLNET_STACKED.items():
        if tf_name not in checkpoint.entries:
            continue
        converted.unused.remove(tf_name)
        stacked = checkpoint.read(tf_name)
        per_layer_ndim = 3 if tf_name.endswith("seg_embed") else 2  # [2, N, D] or [N, D]
        if stacked.dim() == per_layer_ndim:  # untie_r false: one tensor shared by every layer
            layers = [stacked.clone() for _ in range(n_layer)]
        elif stacked.dim() == per_layer_ndim + 1 and stacked.shape[0] == n_layer:
            layers = list(stacked.unbind(0))  # [n_layer, N, D] -> n_layer x [N, D]
        else:
            raise CheckpointError(f"{where}: variable {tf_name!r} has shape {list(stacked.shape)}; expected one "
                                  f"slice per layer ({n_layer} layers: model/transformer/layer_0 .. layer_"
                                  f"{n_layer - 1})")
        for index, tensor in enumerate(layers):
            converted.state_dict[f"transformer.layer.{index}.{ours}"] = tensor.contiguous()
    return converted


def state_dict_reader(model_type):
    """The function that reads a TensorFlow checkpoint of this family in our names, or None (not mapped)."""
    readers = {"bert": bert_state_dict, "albert": albert_state_dict}
    readers["xlnet"] = xlnet_state_dict  # CMU's names
    return readers.get(model_type)


def find_checkpoint_index(directory):
    """The .index file of the one TensorFlow checkpoint in `directory`, or None when there is none.

    Google's releases hold one (`bert_model.ckpt.index`). A fine-tuning run leaves several (`model.ckpt-1000`,
    `model.ckpt-2000`, ...) and a text file `checkpoint` naming the newest, which is the one taken.
    """
    indexes = sorted(path for path in glob.glob(os.path.join(glob.escape(directory), "*.index"))
                     if glob.glob(glob.escape(path[:-len(".index")]) + ".data-*"))
    if len(indexes) <= 1:
        return indexes[0] if indexes else None
    state_file = os.path.join(directory, "checkpoint")
    if os.path.isfile(state_file):
        with open(state_file, encoding="utf-8") as reader:
            match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', reader.read(), re.MULTILINE)
        if match:
            newest = os.path.join(directory, os.path.basename(match.group(1))) + ".index"
            if newest in indexes:
                return newest
    raise CheckpointError(f"{directory}: holds {len(indexes)} TensorFlow checkpoints "
                          f"({', '.join(os.path.basename(p) for p in indexes)}) and no `checkpoint` file naming "
                          "one of them; pass the .index file of the one you want")


def _demo(prefix):
    checkpoint = TFCheckpoint(prefix)
    print(f"{checkpoint.index_path}: {len(checkpoint.entries)} variables in {checkpoint.num_shards} shard(s)")
    for name, dtype_name, shape in checkpoint.variables():
        mapped = google_bert_name(name, heads=True)
        ours = f"-> {mapped[0]}{' (transposed)' if mapped[1] else ''}" if mapped else "(unused)"
        print(f"  {name:60s} {dtype_name:9s} {str(list(shape)):14s} {ours}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or [None]:
        if arg is None:
            raise SystemExit("usage: python -m transformers.tf_checkpoint PREFIX_OR_INDEX_FILE")
        _demo(arg)
