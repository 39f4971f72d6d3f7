"""Loading checkpoints of every shape users meet: old TF-converted names, with and without the `bert.`
prefix, pickled `.bin` files (safely), damaged files, other architectures, and configs from any version."""
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from _support import minilm_dir
from transformers import BertConfig, BertForSequenceClassification, BertModel, LoadingError
from transformers.file_utils import BadValueError
from transformers.modeling_utils import check_finite


@pytest.fixture(scope="module")
def minilm_tensors():
    raw = load_file(str(minilm_dir() / "model.safetensors"))
    return {key: tensor for key, tensor in raw.items() if not key.endswith("position_ids")}


def make_model_dir(path, tensors, config_values=None, bin_file=False):
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(minilm_dir() / "config.json", path / "config.json")
    if config_values is not None:
        (path / "config.json").write_text(json.dumps(config_values))
    if bin_file:
        torch.save(tensors, path / "pytorch_model.bin")
    else:
        save_file(tensors, str(path / "model.safetensors"))
    return path


def old_style(tensors):
    """The MiniLM weights as an old pre-training checkpoint would hold them: `bert.` prefix, LayerNorm
    `gamma`/`beta`, plus the masked-LM and next-sentence heads (`cls.*`)."""
    out = {}
    for key, tensor in tensors.items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        out["bert." + key] = tensor
    out["cls.predictions.bias"] = torch.zeros(30522)
    out["cls.seq_relationship.weight"] = torch.randn(2, 384)
    out["cls.seq_relationship.bias"] = torch.zeros(2)
    return out


def test_old_format_bin_loads_into_classifier(tmp_path, minilm_tensors):
    model_dir = make_model_dir(tmp_path / "old", old_style(minilm_tensors), bin_file=True)
    model, info = BertForSequenceClassification.from_pretrained(str(model_dir), num_labels=2,
                                                                output_loading_info=True)
    assert sorted(info.unexpected_keys) == ["cls.predictions.bias", "cls.seq_relationship.bias",
                                            "cls.seq_relationship.weight"]
    assert info.missing_keys == ["classifier.weight", "classifier.bias"]
    state = model.state_dict()
    for key, tensor in minilm_tensors.items():
        assert torch.equal(state["bert." + key], tensor), key


def test_prefixed_checkpoint_loads_into_bare_model(tmp_path, minilm_tensors):
    model_dir = make_model_dir(tmp_path / "old", old_style(minilm_tensors))
    model, info = BertModel.from_pretrained(str(model_dir), output_loading_info=True)
    assert info.missing_keys == []
    assert len(info.unexpected_keys) == 3 and all(k.startswith("cls.") for k in info.unexpected_keys)
    assert torch.equal(model.embeddings.LayerNorm.weight, minilm_tensors["embeddings.LayerNorm.weight"])


def test_weights_file_path_and_safetensors_preferred(tmp_path, minilm_tensors):
    model_dir = make_model_dir(tmp_path / "both", minilm_tensors)
    changed = dict(minilm_tensors)
    changed["pooler.dense.bias"] = torch.ones(384)
    torch.save(changed, model_dir / "pytorch_model.bin")
    from_dir = BertModel.from_pretrained(str(model_dir))
    assert torch.count_nonzero(from_dir.pooler.dense.bias) == 0  # safetensors won
    from_bin = BertModel.from_pretrained(str(model_dir / "pytorch_model.bin"))
    assert torch.all(from_bin.pooler.dense.bias == 1)


def test_fp16_checkpoint_gives_fp32_model(tmp_path, minilm_tensors):
    half = {k: v.half() for k, v in minilm_tensors.items()}
    model = BertModel.from_pretrained(str(make_model_dir(tmp_path / "half", half)))
    assert model.pooler.dense.weight.dtype == torch.float32
    assert torch.equal(model.pooler.dense.weight, half["pooler.dense.weight"].float())


def test_shape_mismatch_is_an_error_or_reinit(tmp_path):
    torch.manual_seed(0)
    three = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3)
    three.save_pretrained(str(tmp_path / "three"))
    with pytest.raises(LoadingError) as caught:
        BertForSequenceClassification.from_pretrained(str(tmp_path / "three"), num_labels=5)
    message = str(caught.value)
    assert "classifier.weight" in message and "[3, 384]" in message and "[5, 384]" in message
    model, info = BertForSequenceClassification.from_pretrained(
        str(tmp_path / "three"), num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True)
    assert info.mismatched_keys == ["classifier.weight", "classifier.bias"]
    assert model.classifier.weight.shape == (5, 384)
    assert torch.equal(model.bert.pooler.dense.weight, three.bert.pooler.dense.weight)


def test_save_pretrained_round_trip_both_formats(tmp_path):
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=4)
    for safe in (True, False):
        target = tmp_path / f"saved_{safe}"
        model.save_pretrained(str(target), safe_serialization=safe)
        assert (target / ("model.safetensors" if safe else "pytorch_model.bin")).is_file()
        assert not [p for p in os.listdir(target) if p.startswith(".tmp")]
        again, info = BertForSequenceClassification.from_pretrained(str(target), output_loading_info=True)
        assert info.missing_keys == [] and info.unexpected_keys == []
        for key, tensor in model.state_dict().items():
            assert torch.equal(again.state_dict()[key], tensor), key


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    model_dir = tmp_path / "evil"
    model_dir.mkdir()
    shutil.copy(minilm_dir() / "config.json", model_dir / "config.json")
    torch.save({"bert.pooler.dense.bias": Payload()}, model_dir / "pytorch_model.bin")
    assert not marker.exists()
    with pytest.raises(LoadingError) as caught:
        BertModel.from_pretrained(str(model_dir))
    message = str(caught.value)
    assert "pytorch_model.bin" in message and "safetensors" in message and "refused" in message
    assert not marker.exists()


@pytest.mark.parametrize("bin_file", [False, True])
def test_truncated_weights_name_the_file(tmp_path, minilm_tensors, bin_file):
    model_dir = make_model_dir(tmp_path / "cut", minilm_tensors, bin_file=bin_file)
    weights = model_dir / ("pytorch_model.bin" if bin_file else "model.safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadingError) as caught:
        BertModel.from_pretrained(str(model_dir))
    assert str(weights) in str(caught.value)
    assert "truncated or corrupt" in str(caught.value)


def test_directory_without_weights(tmp_path):
    (tmp_path / "config.json").write_text((minilm_dir() / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="model.safetensors or pytorch_model.bin"):
        BertModel.from_pretrained(str(tmp_path))


def test_checkpoint_of_another_architecture(tmp_path):
    gpt_like = {"transformer.h.0.attn.c_attn.weight": torch.zeros(384, 1152),
                "transformer.wte.weight": torch.zeros(100, 384)}
    model_dir = make_model_dir(tmp_path / "gpt", gpt_like)
    with pytest.raises(LoadingError, match="another architecture"):
        BertModel.from_pretrained(str(model_dir))
    config = json.loads((minilm_dir() / "config.json").read_text())
    config["model_type"] = "gpt2"
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadingError, match="gpt2"):
        BertModel.from_pretrained(str(model_dir))


# ---- config.json from any version -----------------------------------------------------------------------

def test_config_keeps_unknown_keys_and_round_trips(tmp_path):
    config = BertConfig.from_pretrained(str(minilm_dir()))
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 6, 12)
    assert config.extra["transformers_version"] == "4.8.2"
    config.save_pretrained(str(tmp_path))
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["architectures"] == ["BertModel"] and written["hidden_size"] == 384
    assert BertConfig.from_pretrained(str(tmp_path)) == config


# The architecture fields every writer (Google's bert_config.json, transformers 2.x to 5.x) puts in config.json.
TINY_ARCHITECTURE = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
                     "intermediate_size": 37, "hidden_act": "gelu", "max_position_embeddings": 64,
                     "type_vocab_size": 2}


@pytest.mark.parametrize("values, num_labels", [
    ({}, 2),  # 2.x: no num_labels written
    ({"num_labels": 5, "output_attentions": False, "torchscript": False}, 5),  # 3.x style with flags we do not use
    ({"id2label": {"0": "neg", "1": "neu", "2": "pos"}, "label2id": {"neg": 0, "neu": 1, "pos": 2},
      "transformers_version": "5.23.0", "dtype": "float32"}, 3),
])
def test_configs_of_other_versions(tmp_path, values, num_labels):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY_ARCHITECTURE, **values}))
    config = BertConfig.from_pretrained(str(path))
    assert config.num_labels == num_labels
    assert config.hidden_size == 32


@pytest.mark.parametrize("left_out", [["num_hidden_layers"], ["vocab_size", "intermediate_size"]])
def test_config_without_an_architecture_field_is_refused(tmp_path, minilm_tensors, left_out):
    """A config.json without num_hidden_layers used to build 12 layers on the 6-layer MiniLM checkpoint and
    load 103 of 201 tensors, leaving the rest random."""
    config = json.loads((minilm_dir() / "config.json").read_text())
    model_dir = make_model_dir(tmp_path / "partial", minilm_tensors,
                               {k: v for k, v in config.items() if k not in left_out})
    with pytest.raises(LoadingError) as caught:
        BertForSequenceClassification.from_pretrained(str(model_dir), num_labels=2)
    message = str(caught.value)
    assert str(model_dir / "config.json") in message
    assert all(name in message for name in left_out)


def test_config_errors_name_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 384, "num_attention')
    with pytest.raises(ValueError) as caught:
        BertConfig.from_pretrained(str(path))
    assert str(path) in str(caught.value) and "line 1" in str(caught.value)
    with pytest.raises(TypeError, match="hidden_sizes"):
        BertConfig.from_pretrained(str(minilm_dir()), hidden_sizes=3)
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        BertConfig(hidden_size=100, num_attention_heads=12)


# ---- non-finite weights (issue 23, item 2) ------------------------------------------------------------------

def with_non_finite(tensors):
    """The MiniLM weights after a diverged run: one tensor with a NaN, one with an inf."""
    broken = dict(tensors)
    broken["encoder.layer.3.attention.self.query.weight"] = tensors["encoder.layer.3.attention.self.query.weight"].clone()
    broken["encoder.layer.3.attention.self.query.weight"][0, 5] = float("nan")
    broken["pooler.dense.bias"] = tensors["pooler.dense.bias"].clone()
    broken["pooler.dense.bias"][:2] = float("-inf")
    return broken


@pytest.mark.parametrize("bin_file", [False, True], ids=["safetensors", "bin"])
def test_weights_with_nan_or_inf_are_refused_naming_the_tensor_and_file(tmp_path, minilm_tensors, bin_file):
    model_dir = make_model_dir(tmp_path / "diverged", with_non_finite(minilm_tensors), bin_file=bin_file)
    weights = model_dir / ("pytorch_model.bin" if bin_file else "model.safetensors")
    with pytest.raises(LoadingError) as caught:
        BertForSequenceClassification.from_pretrained(str(model_dir), num_labels=2)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{weights}: 2 tensor(s) hold NaN or inf")
    assert "encoder.layer.3.attention.self.query.weight (1 NaN of 147456)" in message
    assert "pooler.dense.bias (2 inf of 384)" in message
    assert "allow_non_finite=True" in message


def test_allow_non_finite_loads_with_a_warning_naming_the_tensors(tmp_path, minilm_tensors, caplog):
    model_dir = make_model_dir(tmp_path / "diverged", with_non_finite(minilm_tensors))
    with caplog.at_level("WARNING", logger="transformers.modeling_utils"):
        model = BertModel.from_pretrained(str(model_dir), allow_non_finite=True)
    [warning] = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert "encoder.layer.3.attention.self.query.weight" in warning and "pooler.dense.bias" in warning
    assert torch.isnan(model.encoder.layer[3].attention.self.query.weight[0, 5])  # loaded as it is, to inspect


def test_a_given_state_dict_is_checked_too(minilm_tensors):
    config = BertConfig.from_pretrained(str(minilm_dir()))
    with pytest.raises(LoadingError, match=r"^the given state_dict: 2 tensor\(s\) hold NaN or inf"):
        BertModel.from_pretrained(None, config=config, state_dict=with_non_finite(minilm_tensors))


def test_a_sum_that_overflows_from_finite_values_is_not_a_false_alarm():
    """check_finite sums each tensor first; fp16 values of 60000 are finite but their sum is inf in fp16."""
    big = torch.full((4,), 60000.0, dtype=torch.float16)
    assert torch.isinf(big.sum())
    check_finite({"big": big, "ids": torch.arange(3)}, "fp16 weights")  # no error
    big[1] = float("nan")
    with pytest.raises(LoadingError, match=r"big \(1 NaN of 4\)"):
        check_finite({"big": big}, "fp16 weights")


def nan_with_the_same_crc32c(data):
    """`data` (float32 bytes) with its first float set to NaN and its second changed so that the crc32c stays
    the same: a TensorFlow data file that passes its checksum and holds a NaN, as a diverged run would save.

    For inputs of one length crc32c is affine over GF(2): crc(a ^ b) = crc(a) ^ crc(b) ^ crc(zeros). So a change
    d keeps the crc when crc(d) == crc(zeros); we solve for the 32 bits of the second float that make it so."""
    from transformers.tf_checkpoint import crc32c

    def linear(change):
        return crc32c(bytes(change)) ^ crc32c(bytes(len(data)))

    nan_change = bytearray(len(data))
    nan_change[:4] = bytes(a ^ b for a, b in zip(data[:4], struct.pack("<f", float("nan"))))
    columns = []
    for bit in range(32):  # what flipping each bit of the second float does to the crc
        change = bytearray(len(data))
        change[4 + bit // 8] = 1 << (bit % 8)
        columns.append((linear(change), 1 << bit))
    target, chosen = linear(nan_change), 0
    for row in range(32):  # Gaussian elimination: find bits whose effects XOR to the target
        pivot = next((i for i, (value, _) in enumerate(columns) if value >> row & 1), None)
        if pivot is None:
            continue
        value, bits = columns.pop(pivot)
        columns = [(v ^ value, b ^ bits) if v >> row & 1 else (v, b) for v, b in columns]
        if target >> row & 1:
            target, chosen = target ^ value, chosen ^ bits
    assert target == 0
    out = bytearray(a ^ b for a, b in zip(data, nan_change))
    for byte in range(4):
        out[4 + byte] ^= chosen >> (8 * byte) & 0xFF
    assert crc32c(bytes(out)) == crc32c(bytes(data))
    return bytes(out)


def test_a_tensorflow_checkpoint_with_nan_is_refused_too(tmp_path):
    from transformers.tf_checkpoint import TFCheckpoint
    folder = tmp_path / "tf_bert_tiny"
    shutil.copytree(Path(__file__).resolve().parent / "fixtures" / "tf_bert_tiny", folder)
    name = "bert/encoder/layer_1/output/dense/kernel"
    entry = TFCheckpoint(folder / "bert_model.ckpt.index").entries[name]
    data_file = folder / "bert_model.ckpt.data-00000-of-00001"
    raw = bytearray(data_file.read_bytes())
    raw[entry.offset:entry.offset + entry.size] = nan_with_the_same_crc32c(raw[entry.offset:entry.offset + entry.size])
    data_file.write_bytes(bytes(raw))
    with pytest.raises(LoadingError, match=r"TensorFlow checkpoint, converted in memory\): 1 tensor\(s\) hold NaN "
                                           r"or inf: bert\.encoder\.layer\.1\.output\.dense\.weight \(1 NaN"):
        BertForSequenceClassification.from_pretrained(folder, num_labels=3)


# ---- config values by type (issue 23, item 9) ----------------------------------------------------------------

def test_numbers_written_as_strings_load_as_numbers(tmp_path, minilm_tensors):
    """transformers 2.x configs were sometimes saved with "num_labels": "3"; that used to end in
    TypeError: '<' not supported between 'str' and 'int'."""
    config = json.loads((minilm_dir() / "config.json").read_text())
    config.update(num_labels="3", hidden_size=" 384", layer_norm_eps="1e-12", hidden_dropout_prob="0.1")
    model_dir = make_model_dir(tmp_path / "strings", minilm_tensors, config)
    model = BertForSequenceClassification.from_pretrained(str(model_dir))
    assert (model.config.num_labels, model.config.hidden_size) == (3, 384)
    assert model.config.layer_norm_eps == 1e-12 and model.config.hidden_dropout_prob == 0.1
    assert model.classifier.weight.shape == (3, 384)


@pytest.mark.parametrize("key, value, expected", [
    ("hidden_size", "abc", "'hidden_size' must be an integer, found 'abc'"),
    ("num_labels", "3.5", "'num_labels' must be an integer, found '3.5'"),
    ("num_hidden_layers", True, "'num_hidden_layers' must be an integer, found True"),
    ("vocab_size", [30522], "'vocab_size' must be an integer, found [30522]"),
    ("hidden_dropout_prob", "high", "'hidden_dropout_prob' must be a finite number, found 'high'"),
    ("layer_norm_eps", "nan", "'layer_norm_eps' must be a finite number, found 'nan'"),
])
def test_a_value_of_the_wrong_type_names_the_key_and_the_file(tmp_path, key, value, expected):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY_ARCHITECTURE, key: value}))
    with pytest.raises(BadValueError) as caught:
        BertConfig.from_pretrained(str(path))
    assert str(caught.value) == f"{path}: {expected}"


@pytest.mark.parametrize("family", ["albert", "roberta", "xlnet"])
def test_every_family_reads_its_config_by_type(tmp_path, family):
    from transformers.configuration_albert import AlbertConfig
    from transformers.configuration_roberta import RobertaConfig
    from transformers.configuration_xlnet import XLNetConfig
    config_class, integer_key = {"albert": (AlbertConfig, "embedding_size"), "roberta": (RobertaConfig, "vocab_size"),
                                 "xlnet": (XLNetConfig, "d_inner")}[family]
    assert config_class.from_dict({integer_key: "64"}).__getattribute__(integer_key) == 64
    with pytest.raises(ValueError, match=f"'{integer_key}' must be an integer, found 'abc'"):
        config_class.from_dict({integer_key: "abc"})


def test_the_new_head_is_the_first_draw_after_the_seed():
    """docs/read_bert_code.md ("Same --seed, other numbers") rests on this: from_pretrained draws nothing before
    the missing keys, so the new classifier is N(0, initializer_range) straight from the seeded generator
    (transformers 2.x drew the whole model twice first). Drawing anything else before it would break the page."""
    torch.manual_seed(1234)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3)
    torch.manual_seed(1234)
    first = torch.empty(3, 384).normal_(mean=0.0, std=0.02)
    assert torch.equal(model.classifier.weight, first)
    assert torch.equal(model.classifier.bias, torch.zeros(3))
