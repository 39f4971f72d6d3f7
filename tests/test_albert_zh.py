"""brightmart's albert_zh (Read_Bert_Code's `--model_type albert`) against the seed's own package, and the seed's
ALBERT converter path on checkpoints TensorFlow wrote.

The expected values come from outside our code:
- tests/fixtures/albert_zh_tiny_{postln,preln}/ and albert_zh_tiny_seed_outputs.safetensors were written by
  tests/fixtures/write_albert_zh_fixture.py with the seed's package (its 2.x modeling_albert.py), run by hand:
  the weights, a padded batch, and what the seed's models compute from them.
- tests/fixtures/tf_albert_zh_tiny/ and tf_albert_pretraining_tiny/ were written by TensorFlow
  (write_tf_checkpoint.py albert_pretraining), with every value under its PyTorch name beside them.
"""
import json
import logging
import re

import pytest
import torch
from safetensors.torch import load_file

from transformers import (AlbertConfig, AlbertForPreTraining, AlbertForSequenceClassification, AlbertModel,
                          AlbertZhConfig, BertConfig, load_tf_weights_in_albert)
from transformers.configuration_bert import LoadingError
from transformers.file_utils import BadValueError
from transformers.modeling_albert import BertConfig as BertConfigFromAlbert
from transformers.modeling_albert import top_group_selectors
from transformers.modeling_albert_zh import (AlbertZhForPreTraining, AlbertZhForSequenceClassification,
                                             AlbertZhModel)

from _classifier_runs import balanced_tweets, run_main, write_generic_task
from _support import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures"
SEED_OUTPUTS = FIXTURES / "albert_zh_tiny_seed_outputs.safetensors"
LN_TYPES = ("postln", "preln")


@pytest.fixture(scope="module")
def seed():
    outputs = load_file(str(SEED_OUTPUTS))
    batch = {name: outputs[name] for name in ("input_ids", "attention_mask", "token_type_ids")}
    assert not bool(batch["attention_mask"].all())  # the batch has padded positions, and they are compared
    return outputs, batch


def seed_classifier(folder, outputs, ln_type):
    """The seed's run_classifier.py path: BertConfig.from_pretrained, then AlbertForSequenceClassification with
    that config; the classifier the seed computed with is copied in (the folder is a pre-trained model)."""
    config = BertConfig.from_pretrained(str(folder), num_labels=3, finetuning_task="tnews")
    model = AlbertForSequenceClassification.from_pretrained(str(folder), from_tf=False, config=config)
    with torch.no_grad():
        model.classifier.weight.copy_(outputs[f"{ln_type}.classifier.weight"])
        model.classifier.bias.copy_(outputs[f"{ln_type}.classifier.bias"])
    return model


@pytest.mark.parametrize("ln_type", LN_TYPES)
def test_outputs_equal_the_seed_package_at_every_position(seed, ln_type):
    outputs, batch = seed
    folder = FIXTURES / f"albert_zh_tiny_{ln_type}"
    model = seed_classifier(folder, outputs, ln_type)
    assert type(model) is AlbertZhForSequenceClassification and model.config.ln_type == ln_type
    assert model.base_model_prefix == "bert" and isinstance(getattr(model, model.base_model_prefix), AlbertZhModel)
    with torch.no_grad():
        base = model.bert(**batch)
        logits = model(**batch).logits
    for ours, theirs in ((base.last_hidden_state, "sequence_output"), (base.pooler_output, "pooled_output"),
                         (logits, "logits")):
        expected = outputs[f"{ln_type}.{theirs}"]
        assert ours.shape == expected.shape
        assert torch.allclose(ours, expected, atol=2e-5, rtol=1e-5), (theirs, (ours - expected).abs().max())

    pretraining, info = AlbertForPreTraining.from_pretrained(str(folder), output_loading_info=True)
    assert type(pretraining) is AlbertZhForPreTraining
    assert info.missing_keys == []
    # The seed keeps word_embeddings_2 transposed as a parameter of its own; here it is read from the embeddings.
    assert info.unexpected_keys == ["cls.predictions.project_layer.weight"]
    with torch.no_grad():
        scores = pretraining(**batch)
    assert torch.allclose(scores.prediction_logits, outputs[f"{ln_type}.prediction_scores"], atol=2e-5, rtol=1e-5)
    assert torch.allclose(scores.seq_relationship_logits, outputs[f"{ln_type}.seq_relationship_score"],
                          atol=2e-5, rtol=1e-5)


def test_the_parity_check_tells_the_blocks_apart(seed):
    # postln's weights run as preln blocks must miss the seed's postln outputs by far, or the parity test above
    # would pass whichever block ran.
    outputs, batch = seed
    model = AlbertModel.from_pretrained(str(FIXTURES / "albert_zh_tiny_postln"), ln_type="preln")
    assert type(model) is AlbertZhModel and model.config.ln_type == "preln"
    with torch.no_grad():
        sequence = model(**batch).last_hidden_state
    assert (sequence - outputs["postln.sequence_output"]).abs().max() > 0.5


def test_ln_type_decides_the_variant():
    shapes = dict(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=20)
    zh = BertConfig(**shapes, extra={"embedding_size": 8, "ln_type": "preln"})
    google = BertConfig(**shapes, extra={"embedding_size": 8})
    assert BertConfigFromAlbert is BertConfig  # `from transformers.modeling_albert import BertConfig`, as in 2.x
    assert type(AlbertModel(zh)) is AlbertZhModel
    assert type(AlbertForPreTraining(zh)) is AlbertZhForPreTraining
    model = AlbertForSequenceClassification(google)
    assert type(model) is AlbertForSequenceClassification and type(model.config) is AlbertConfig
    assert "albert.encoder.embedding_hidden_mapping_in.weight" in model.state_dict()
    with pytest.raises(LoadingError, match="without embedding_size"):
        AlbertModel(BertConfig(**shapes))
    with pytest.raises(ValueError, match="ln_type 'mid' is not albert_zh's"):
        AlbertZhConfig(**shapes, embedding_size=8, ln_type="mid")
    # Read from files: albert_zh's config.json has ln_type; Google's albert_config.json has none.
    assert type(AlbertConfig.from_pretrained(str(FIXTURES / "albert_zh_tiny_preln"))) is AlbertZhConfig
    google_file = BertConfig.from_json_file(str(FIXTURES / "tf_albert_tiny" / "albert_config.json"))
    assert type(AlbertModel(google_file)) is AlbertModel


def test_a_config_json_that_says_albert_is_read_by_bertconfig(tmp_path):
    # What a folder saved by this package holds: model_type "albert", ln_type, and the trained classifier.
    model = AlbertForSequenceClassification.from_pretrained(str(FIXTURES / "albert_zh_tiny_postln"), num_labels=3)
    model.save_pretrained(str(tmp_path))
    assert '"model_type": "albert"' in (tmp_path / "config.json").read_text(encoding="utf-8")
    config = BertConfig.from_pretrained(str(tmp_path), num_labels=3)
    again = AlbertForSequenceClassification.from_pretrained(str(tmp_path), config=config)
    assert type(again) is AlbertZhForSequenceClassification
    assert torch.equal(again.classifier.weight, model.classifier.weight)
    reloaded = AlbertForSequenceClassification.from_pretrained(str(tmp_path))  # the seed's reload, no config
    assert type(reloaded) is AlbertZhForSequenceClassification and reloaded.config.num_labels == 3


def test_reinit_on_albert_zh():
    folder = str(FIXTURES / "albert_zh_tiny_postln")
    checkpoint = load_file(f"{folder}/model.safetensors")
    model, info = AlbertForSequenceClassification.from_pretrained(
        folder, num_labels=3, reinit_keys=["encoder.layer_shared.output.dense"], reinit_seed=3,
        output_loading_info=True)
    assert info.reinit_keys == ["bert.encoder.layer_shared.output.dense.weight",
                                "bert.encoder.layer_shared.output.dense.bias"]
    state = model.state_dict()
    changed = sorted(key for key in checkpoint if key in state and not torch.equal(state[key], checkpoint[key]))
    # The bias is re-initialized to 0, which it was not in the checkpoint.
    assert changed == ["bert.encoder.layer_shared.output.dense.bias", "bert.encoder.layer_shared.output.dense.weight"]


def test_reinit_layers_on_albert_zh_reinitializes_the_shared_layer():
    """albert_zh has one layer for all its depths: --reinit_layers N (1..num_hidden_layers) selects it."""
    folder = str(FIXTURES / "albert_zh_tiny_postln")
    checkpoint = load_file(f"{folder}/model.safetensors")
    config = AlbertConfig.from_pretrained(folder)
    assert type(config) is AlbertZhConfig and config.num_hidden_layers == 3
    assert top_group_selectors(config, 0, pooler=True) == ["bert.pooler"]
    assert top_group_selectors(config, 0) == []
    assert top_group_selectors(config, 1) == top_group_selectors(config, 3) == ["bert.encoder.layer_shared"]
    assert top_group_selectors(config, 2, pooler=True) == ["bert.encoder.layer_shared", "bert.pooler"]
    with pytest.raises(BadValueError, match=re.escape("--reinit_layers 4: albert_zh has 3 depths (choose 0..3)")):
        top_group_selectors(config, 4)

    model, info = AlbertForSequenceClassification.from_pretrained(
        folder, num_labels=3, reinit_keys=top_group_selectors(config, 2), reinit_seed=3, output_loading_info=True)
    shared = {key for key in checkpoint if key.startswith("bert.encoder.layer_shared.")}
    assert len(shared) == 16 and set(info.reinit_keys) == shared
    state = model.state_dict()
    changed = {key for key in checkpoint if key in state and not torch.equal(state[key], checkpoint[key])}
    # The fixture's values are all random (no bias at 0, no LayerNorm at 1), so every re-initialized tensor
    # differs from it, and every other tensor the checkpoint has is loaded bit for bit.
    assert changed == shared
    assert {key for key in checkpoint if key in state} - shared  # embeddings and pooler were compared too


def test_run_classifier_says_what_reinit_layers_did_on_albert_zh(tmp_path, caplog):
    data = write_generic_task(tmp_path / "data", balanced_tweets(8), balanced_tweets(4, start=8))
    out = tmp_path / "out"
    caplog.set_level(logging.WARNING, logger="run_classifier")
    run_main(["--model_type", "albert", "--model_name_or_path", FIXTURES / "albert_zh_tiny_postln", "--task_name",
              "generic", "--data_dir", data, "--output_dir", out, "--max_seq_length", 16, "--do_train",
              "--max_steps", 1, "--per_gpu_train_batch_size", 4, "--save_steps", 0, "--seed", 3,
              "--reinit_layers", 2])
    sentence = ("albert_zh shares one layer across all 3 depths: --reinit_layers 2 re-initializes that shared "
                "layer (bert.encoder.layer_shared), so every depth changes, not only the top 2")
    assert sentence in [record.getMessage() for record in caplog.records if record.name == "run_classifier"]
    record = json.loads((out / "reinit_keys.json").read_text(encoding="utf-8"))
    assert record["selectors"] == ["bert.encoder.layer_shared"]
    assert len(record["resolved_keys"]) == 16
    assert record["reinit_layers_meaning"] == sentence
    # weight_change.json gives the shared layer a row of its own, measured from its new draw.
    rows = {row["module"]: row for row in json.loads((out / "weight_change.json").read_text())["modules"]}
    assert list(rows) == ["embeddings", "layer_shared", "pooler", "head"]
    assert (rows["layer_shared"]["tensors"], rows["layer_shared"]["measured_from"]) == (16, "fresh init")
    assert rows["embeddings"]["measured_from"] == rows["pooler"]["measured_from"] == "pre-trained"


@pytest.mark.parametrize("name,prefixes", [("tf_albert_zh_tiny", ("bert.", "cls.")),
                                           ("tf_albert_pretraining_tiny", ("albert.", "predictions.",
                                                                           "sop_classifier."))])
def test_the_seed_converters_calls_dump_the_tensorflow_values(tmp_path, name, prefixes):
    """convert_albert_original_tf_checkpoint_to_pytorch.py, step by step: BertConfig.from_json_file,
    AlbertForPreTraining(config), load_tf_weights_in_albert(model, config, path), torch.save(state_dict)."""
    folder = FIXTURES / name
    config = BertConfig.from_json_file(str(folder / "albert_config.json"))
    model = AlbertForPreTraining(config)
    load_tf_weights_in_albert(model, config, str(folder / "model.ckpt"))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    dump = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    expected = load_file(str(FIXTURES / f"{name}_expected.safetensors"))
    assert set(expected) <= set(dump) and all(key.startswith(prefixes) for key in dump)
    for key, value in expected.items():
        assert torch.equal(dump[key], value), key
    # Beyond the checkpoint's tensors, the dump holds only the tied decoder: the word table under a second name.
    zh = prefixes[0] == "bert."
    assert sorted(set(dump) - set(expected)) == ["cls.predictions.decoder.weight" if zh else
                                                 "predictions.decoder.weight"]
    decoder = dump["cls.predictions.decoder.weight" if zh else "predictions.decoder.weight"]
    assert torch.equal(decoder, expected[f"{prefixes[0]}embeddings.word_embeddings.weight"])


def test_a_checkpoint_of_the_other_layout_is_refused():
    zh_config = BertConfig.from_json_file(str(FIXTURES / "tf_albert_zh_tiny" / "albert_config.json"))
    google_prefix = str(FIXTURES / "tf_albert_pretraining_tiny" / "model.ckpt")
    with pytest.raises(LoadingError, match="a checkpoint in google ALBERT's layout, but AlbertZhForPreTraining"):
        load_tf_weights_in_albert(AlbertForPreTraining(zh_config), zh_config, google_prefix)


def test_tensorflow_folders_load_directly_in_both_layouts():
    for name in ("tf_albert_zh_tiny", "tf_albert_pretraining_tiny"):
        model, info = AlbertForPreTraining.from_pretrained(str(FIXTURES / name), output_loading_info=True)
        assert info.missing_keys == [] and info.mismatched_keys == []
        # Adam's slots and global_step are all that is left over.
        assert all(re.search(r"(/adam_[mv]$|^global_step$)", key) for key in info.unexpected_keys), name
        expected = load_file(str(FIXTURES / f"{name}_expected.safetensors"))
        state = model.state_dict()
        assert all(torch.equal(state[key], value) for key, value in expected.items()), name
