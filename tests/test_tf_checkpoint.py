"""Reading Google's original TensorFlow checkpoints without TensorFlow (transformers/tf_checkpoint.py).

The fixtures under tests/fixtures/ were written by TensorFlow itself (tests/fixtures/write_tf_checkpoint.py, run
with tensorflow-cpu), together with the values it was given: tf_bert_tiny_expected.safetensors. So these tests
check our reader against bytes TensorFlow wrote, and need no TensorFlow to run.
"""
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from _classifier_runs import balanced_tweets, run_main, write_generic_task
from transformers import BertConfig, BertForSequenceClassification, BertModel
from transformers.convert_tf_checkpoint import convert_tf_checkpoint, main as convert_main
from transformers.tf_checkpoint import CheckpointError, TFCheckpoint, _crc_register, crc32c, google_bert_name

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = FIXTURES / "tf_bert_tiny"
INDEX = TINY / "bert_model.ckpt.index"
DATA = TINY / "bert_model.ckpt.data-00000-of-00001"


@pytest.fixture(scope="module")
def expected():
    """{TensorFlow name: the value TensorFlow was given}."""
    return load_file(str(FIXTURES / "tf_bert_tiny_expected.safetensors"))


def unused_by_rule(names):
    """What a classifier cannot use, by the rule the issue states: Adam's slots, global_step, the cls/ heads."""
    return {n for n in names if n.endswith(("/adam_m", "/adam_v")) or n == "global_step" or n.startswith("cls/")}


def copy_fixture(tmp_path):
    folder = tmp_path / "tf_bert_tiny"
    shutil.copytree(TINY, folder)
    return folder


def inputs():
    input_ids = torch.tensor([[2, 10, 11, 3, 12, 13, 3], [2, 5, 6, 7, 8, 3, 0]])
    return dict(input_ids=input_ids, attention_mask=(input_ids != 0).long(),
                token_type_ids=torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0] * 7]))


# ---- crc32c ----------------------------------------------------------------------------------------------

def test_crc32c_check_values():
    # Published check values of CRC-32C: "123456789" (the catalogue's check), 32 zero / 32 0xff bytes (RFC 3720).
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(b"") == 0


@pytest.mark.parametrize("size", [4096, 4099, 65536 + 7, 1 << 20])
def test_vectorised_crc32c_equals_the_byte_by_byte_one(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert crc32c(data) == _crc_register(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


# ---- the reader --------------------------------------------------------------------------------------------

def test_lists_every_variable_with_dtype_and_shape(expected):
    variables = {name: (dtype, shape) for name, dtype, shape in TFCheckpoint(INDEX).variables()}
    assert set(variables) == set(expected)
    for name, tensor in expected.items():
        assert variables[name] == ({torch.float32: "DT_FLOAT", torch.int64: "DT_INT64"}[tensor.dtype],
                                   tuple(tensor.shape)), name
    assert variables["global_step"] == ("DT_INT64", ())
    assert variables["output_weights"] == ("DT_FLOAT", (3, 16))  # [num_labels, hidden], as run_classifier.py has it


def test_values_are_bit_identical_to_what_tensorflow_was_given(expected):
    checkpoint = TFCheckpoint(str(INDEX)[:-len(".index")])  # opened from the prefix, as TensorFlow names it
    for name, value in expected.items():
        read = checkpoint.read(name)
        assert read.dtype == value.dtype and torch.equal(read, value), name
    assert checkpoint.read("global_step").item() == 1234


def test_google_names_map_to_ours():
    assert google_bert_name("bert/encoder/layer_0/attention/self/query/kernel") == \
        ("bert.encoder.layer.0.attention.self.query.weight", True)
    assert google_bert_name("bert/encoder/layer_11/output/LayerNorm/gamma") == \
        ("bert.encoder.layer.11.output.LayerNorm.weight", False)
    assert google_bert_name("bert/embeddings/LayerNorm/beta") == ("bert.embeddings.LayerNorm.bias", False)
    assert google_bert_name("bert/embeddings/word_embeddings") == ("bert.embeddings.word_embeddings.weight", False)
    assert google_bert_name("bert/pooler/dense/kernel") == ("bert.pooler.dense.weight", True)
    assert google_bert_name("output_weights") == ("classifier.weight", False)
    assert google_bert_name("output_bias") == ("classifier.bias", False)
    for unused in ("global_step", "output_weights/adam_m", "bert/pooler/dense/kernel/adam_v",
                   "cls/predictions/output_bias", "cls/seq_relationship/output_weights"):
        assert google_bert_name(unused) is None, unused


def test_the_module_lists_a_checkpoint_with_our_names(capsys):
    """`python -m transformers.tf_checkpoint PREFIX` (the module's demo) prints each variable and where it goes,
    the pre-training heads included; Adam's slots are unused."""
    from transformers.tf_checkpoint import _demo
    _demo(str(TINY / "bert_model.ckpt"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("131 variables in 1 shard(s)")
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert by_name["bert/pooler/dense/kernel"].endswith("-> bert.pooler.dense.weight (transposed)")
    assert by_name["cls/predictions/output_bias"].endswith("-> cls.predictions.bias")
    assert by_name["bert/embeddings/LayerNorm/beta/adam_m"].endswith("(unused)")


def test_string_and_sliced_variables_are_listed_and_refused():
    checkpoint = TFCheckpoint(FIXTURES / "tf_odd" / "odd.ckpt")
    assert checkpoint.variables() == [("plain", "DT_FLOAT", (2, 3)), ("sliced", "DT_FLOAT", (4, 2)),
                                      ("vocab_words", "DT_STRING", (2,))]
    assert torch.equal(checkpoint.read("plain"), torch.arange(6, dtype=torch.float32).reshape(2, 3))
    with pytest.raises(CheckpointError, match=r"odd\.ckpt\.index: variable 'sliced' was saved in slices"):
        checkpoint.read("sliced")
    with pytest.raises(CheckpointError, match=r"odd\.ckpt\.index: variable 'vocab_words' has dtype DT_STRING"):
        checkpoint.read("vocab_words")


def test_a_checkpoint_in_two_shards_reads_each_variable_from_its_own_file():
    checkpoint = TFCheckpoint(FIXTURES / "tf_odd" / "sharded.ckpt.index")
    assert checkpoint.num_shards == 2
    assert [checkpoint.entries[name].shard_id for name in ("first", "second")] == [0, 1]
    assert checkpoint.shard_path(1).endswith("sharded.ckpt.data-00001-of-00002")
    assert torch.equal(checkpoint.read("first"), torch.arange(3, dtype=torch.float32))
    assert torch.equal(checkpoint.read("second"), torch.arange(4, dtype=torch.int32))


# ---- corrupt bytes -----------------------------------------------------------------------------------------

def test_flipped_byte_in_the_data_file_names_the_file_and_the_variable(tmp_path):
    folder = copy_fixture(tmp_path)
    data_file = folder / DATA.name
    entry = TFCheckpoint(folder / INDEX.name).entries["bert/encoder/layer_1/intermediate/dense/kernel"]
    raw = bytearray(data_file.read_bytes())
    raw[entry.offset + entry.size // 2] ^= 0x01  # one bit of one float
    data_file.write_bytes(bytes(raw))
    message = (re.escape(str(data_file)) + r": crc32c mismatch for variable "
               r"'bert/encoder/layer_1/intermediate/dense/kernel'")
    with pytest.raises(CheckpointError, match=message):
        TFCheckpoint(folder / INDEX.name).read("bert/encoder/layer_1/intermediate/dense/kernel")
    with pytest.raises(CheckpointError, match=message):
        BertForSequenceClassification.from_pretrained(folder, num_labels=3)


def test_truncated_index_names_the_file(tmp_path):
    folder = copy_fixture(tmp_path)
    index = folder / INDEX.name
    index.write_bytes(index.read_bytes()[:len(index.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(index)) + r": no table magic number .* truncated"):
        BertForSequenceClassification.from_pretrained(folder, num_labels=3)
    index.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match=re.escape(str(index)) + r": 20 bytes, shorter than a table footer"):
        TFCheckpoint(index)


def test_flipped_byte_in_the_index_fails_its_block_checksum(tmp_path):
    folder = copy_fixture(tmp_path)
    index = folder / INDEX.name
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0x20  # inside the first data block: a key or an entry's value
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=re.escape(str(index)) + r": crc32c mismatch in the block at bytes 0\."):
        TFCheckpoint(index)


def test_missing_data_file_is_named(tmp_path):
    folder = copy_fixture(tmp_path)
    index = folder / INDEX.name
    (folder / DATA.name).rename(folder / "moved.data")
    checkpoint = TFCheckpoint(index)  # the index alone is still readable (the folder lookup needs both files)
    with pytest.raises(CheckpointError, match=re.escape(str(folder / DATA.name)) + ", which does not exist"):
        checkpoint.read("output_bias")


# ---- from_pretrained ---------------------------------------------------------------------------------------

def test_from_pretrained_converts_the_folder_in_memory(expected, caplog):
    with caplog.at_level(logging.INFO, logger="transformers.modeling_utils"):
        model, info = BertForSequenceClassification.from_pretrained(TINY, num_labels=3, output_loading_info=True)
    assert f"{INDEX} (TensorFlow checkpoint, converted in memory)" in caplog.text
    assert model.config.hidden_size == 16 and model.config.extra["pooler_type"] == "first_token_transform"
    assert info.missing_keys == [] and info.mismatched_keys == [] and info.reinit_keys == []
    assert sorted(info.unexpected_keys) == sorted(unused_by_rule(expected))
    params = dict(model.named_parameters())
    assert len(params) == len(expected) - len(unused_by_rule(expected))
    # Independent of the mapping under test: the writer's TensorFlow layouts, transposed by hand where Dense.
    assert torch.equal(params["bert.encoder.layer.1.attention.self.value.weight"],
                       expected["bert/encoder/layer_1/attention/self/value/kernel"].T)
    assert torch.equal(params["bert.encoder.layer.0.intermediate.dense.weight"],
                       expected["bert/encoder/layer_0/intermediate/dense/kernel"].T)
    assert torch.equal(params["bert.embeddings.LayerNorm.weight"], expected["bert/embeddings/LayerNorm/gamma"])
    assert torch.equal(params["bert.embeddings.word_embeddings.weight"], expected["bert/embeddings/word_embeddings"])
    assert torch.equal(params["classifier.weight"], expected["output_weights"])
    assert torch.equal(params["classifier.bias"], expected["output_bias"])


def test_bert_config_json_is_read_when_there_is_no_config_json():
    config = BertConfig.from_pretrained(TINY)
    assert (config.vocab_size, config.num_hidden_layers, config.intermediate_size) == (34, 2, 32)
    assert config.extra["directionality"] == "bidi"


def test_reinit_keys_work_on_a_tf_folder(expected):
    model, info = BertModel.from_pretrained(TINY, output_loading_info=True, reinit_keys=["encoder.layer.1"],
                                            reinit_seed=0)
    params = dict(model.named_parameters())
    assert info.reinit_keys == [name for name in params if name.startswith("encoder.layer.1.")]
    assert not torch.equal(params["encoder.layer.1.output.dense.weight"],
                           expected["bert/encoder/layer_1/output/dense/kernel"].T)
    assert torch.equal(params["encoder.layer.1.output.LayerNorm.weight"], torch.ones(16))  # the init rule
    assert torch.equal(params["encoder.layer.0.output.dense.weight"],
                       expected["bert/encoder/layer_0/output/dense/kernel"].T)
    # A bare BertModel has no head: the classifier is unused too, alongside the re-initialized layer.
    assert {"bert.classifier.weight", "classifier.weight"} & set(info.unexpected_keys)
    assert set(info.reinit_keys) <= set(info.unexpected_keys)


def test_converter_writes_a_folder_that_gives_equal_logits(tmp_path):
    destination = tmp_path / "converted"
    info = convert_tf_checkpoint(TINY, destination)
    assert sorted(p.name for p in destination.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    assert (destination / "vocab.txt").read_bytes() == (TINY / "vocab.txt").read_bytes()
    assert "global_step" in info.unexpected_keys
    from_tf = BertForSequenceClassification.from_pretrained(TINY, num_labels=3)
    converted = BertForSequenceClassification.from_pretrained(destination)
    assert converted.config.num_labels == 3
    with torch.no_grad():
        logits_tf, logits_converted = from_tf(**inputs()).logits, converted(**inputs()).logits
    assert torch.equal(logits_tf, logits_converted)
    assert logits_tf.abs().max() > 0.1  # a head that carries weights, not zeros
    # Nothing is overwritten: a second conversion into the same folder is refused with one line.
    assert convert_main([str(TINY), str(destination)]) == 1


def test_run_classifier_fine_tunes_from_a_tf_folder(tmp_path, caplog):
    """The issue's command: --model_name_or_path a Google folder --reinit_layers works as it is."""
    data = write_generic_task(tmp_path / "data", balanced_tweets(6), balanced_tweets(6, start=2))
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="transformers.modeling_utils"):
        results, _ = run_main(["--model_type", "bert", "--model_name_or_path", TINY, "--task_name", "generic",
                                "--data_dir", data, "--output_dir", out, "--max_seq_length", "16", "--do_train",
                                "--do_eval", "--do_lower_case", "--reinit_layers", "1", "--num_train_epochs", "1",
                                "--per_gpu_train_batch_size", "3", "--save_steps", "0", "--seed", "1"])
    assert f"{INDEX} (TensorFlow checkpoint, converted in memory)" in caplog.text
    assert "re-initialized on request (std=0.02, seed=1): 16" in caplog.text  # layer 1 of 2: its 16 tensors
    saved = load_file(str(out / "model.safetensors"))
    assert saved["classifier.weight"].shape == (3, 16)
    assert set(results["final"]) == {"acc"}
