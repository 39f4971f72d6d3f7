"""CMU's XLNet TensorFlow checkpoints, the transformers 2.x converter step and the two heads it builds.

tests/fixtures/tf_xlnet_tiny (a pre-training checkpoint, untie_r true), tf_xlnet_squad (a SQuAD one, untie_r
false, run_squad.py's heads) and tf_xlnet_stsb (run_classifier.py's summary and STS-B regression head) were
written by TensorFlow (tests/fixtures/write_tf_checkpoint.py xlnet), together with every tensor under the
reference library's name (*_expected.safetensors). The tests call the 2.x names the way
the seed's convert_xlnet_original_tf_checkpoint_to_pytorch.py calls them: XLNetConfig.from_json_file on CMU's
xlnet_config.json, the model class, load_tf_weights_in_xlnet(model, config, path), torch.save of the state dict to
folder/WEIGHTS_NAME. The oracle (Hugging Face transformers) then reads that dump and computes the heads' outputs
on the same inputs.
"""
import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _support import run_oracle_json
from transformers import (CONFIG_NAME, WEIGHTS_NAME, LoadingError, XLNetConfig, XLNetForQuestionAnswering,
                          XLNetForSequenceClassification, XLNetLMHeadModel, load_tf_weights_in_xlnet)
from transformers.modeling_utils import _is_torch_pickle
from transformers.tf_checkpoint import CheckpointError, TFCheckpoint, xlnet_state_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KINDS = {"tf_xlnet_tiny": XLNetLMHeadModel, "tf_xlnet_squad": XLNetForQuestionAnswering,
         "tf_xlnet_stsb": XLNetForSequenceClassification}

# Two rows padded on the LEFT (pad id 5, as XLNet's), segment ids as the tokenizer writes them: <cls> is 2,
# padding 4. Eight positions, more than start_n_top = end_n_top = 5.
INPUT_IDS = [[5, 5, 9, 10, 11, 4, 3, 3], [12, 13, 4, 14, 15, 16, 4, 3]]
ATTENTION_MASK = [[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]]
TOKEN_TYPE_IDS = [[4, 4, 0, 0, 0, 0, 2, 2], [0, 0, 0, 1, 1, 1, 1, 2]]
P_MASK = [[1.0, 1, 0, 0, 0, 1, 1, 1], [1.0, 1, 1, 0, 0, 0, 1, 1]]  # question, specials and padding
START, END, CLS_INDEX, IMPOSSIBLE = [2, 3], [4, 5], [7, 7], [0.0, 1.0]


def convert_as_the_seed_does(name, folder):
    """The seed converter's steps, on our package: returns the model it saved. tf_xlnet_stsb is converted with
    --finetuning_task sts-b (a GLUE task: num_labels 1, XLNetForSequenceClassification)."""
    config = XLNetConfig.from_json_file(str(FIXTURES / name / "xlnet_config.json"))
    if name == "tf_xlnet_stsb":
        config.finetuning_task, config.num_labels = "sts-b", 1
    model = KINDS[name](config)
    load_tf_weights_in_xlnet(model, config, str(FIXTURES / name / "xlnet_model.ckpt"))
    os.makedirs(folder, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(folder, WEIGHTS_NAME))
    with open(os.path.join(folder, CONFIG_NAME), "w", encoding="utf-8") as writer:
        writer.write(config.to_json_string())
    return model


@pytest.mark.parametrize("name", sorted(KINDS))
def test_the_dump_equals_what_tensorflow_was_given(name, tmp_path):
    model = convert_as_the_seed_does(name, tmp_path)
    expected = load_file(str(FIXTURES / f"{name}_expected.safetensors"))
    with open(tmp_path / WEIGHTS_NAME, "rb") as reader:  # torch.load(path) would read *.safetensors as safetensors
        dumped = torch.load(reader, weights_only=True)
    assert sorted(dumped) == sorted(expected)
    for key, tensor in expected.items():
        assert torch.equal(dumped[key], tensor), key
    if name == "tf_xlnet_stsb":
        assert dumped["logits_proj.weight"].shape == (1, 8)  # CMU's [H, 1] regression kernel, transposed
    elif name == "tf_xlnet_tiny":
        # The reference's tied name is in the dump, and it is the lookup table; the table is also the model's.
        assert model.lm_loss.weight is model.transformer.word_embedding.weight
    else:
        # untie_r false: every layer got the one shared bias; seg_embed is per layer either way.
        assert torch.equal(dumped["transformer.layer.0.rel_attn.r_w_bias"],
                           dumped["transformer.layer.1.rel_attn.r_w_bias"])
        assert not torch.equal(dumped["transformer.layer.0.rel_attn.seg_embed"],
                               dumped["transformer.layer.1.rel_attn.seg_embed"])


def test_what_the_reader_leaves_unused_is_adam_and_global_step():
    names = TFCheckpoint(FIXTURES / "tf_xlnet_tiny" / "xlnet_model.ckpt").entries
    unused = xlnet_state_dict(FIXTURES / "tf_xlnet_tiny" / "xlnet_model.ckpt").unused
    assert sorted(unused) == sorted(n for n in names if n.endswith(("/Adam", "/Adam_1")) or n == "global_step")
    assert unused  # the fixture has them


def test_a_head_the_checkpoint_lacks_is_refused_not_left_random():
    config = XLNetConfig.from_json_file(str(FIXTURES / "tf_xlnet_tiny" / "xlnet_config.json"))
    for model in (XLNetForQuestionAnswering(config), XLNetForSequenceClassification(config)):
        with pytest.raises(LoadingError, match="the checkpoint lacks .*convert it as XLNetLMHeadModel"):
            load_tf_weights_in_xlnet(model, config, str(FIXTURES / "tf_xlnet_tiny" / "xlnet_model.ckpt"))



def test_a_config_with_fewer_layers_than_the_checkpoint_is_refused_not_cut_down():
    """CMU's 2-layer checkpoint into a 1-layer model: layer 1's tensors have no place, and that stops the load."""
    import dataclasses
    config = XLNetConfig.from_json_file(str(FIXTURES / "tf_xlnet_tiny" / "xlnet_config.json"))
    shallow = dataclasses.replace(config, n_layer=1)
    with pytest.raises(LoadingError, match=r"tensors of the checkpoint's base model have no place in "
                                           r"XLNetLMHeadModel \(first: transformer\.layer\.1\."):
        load_tf_weights_in_xlnet(XLNetLMHeadModel(shallow), shallow,
                                 str(FIXTURES / "tf_xlnet_tiny" / "xlnet_model.ckpt"))

ORACLE = """
import json, os, shutil, torch
from transformers import XLNetForQuestionAnswering, XLNetLMHeadModel
inputs = json.load(open("inputs.json"))
batch = {{name: torch.tensor(inputs[name]) for name in ("input_ids", "attention_mask", "token_type_ids")}}
out = {{}}
for name, cls in (("lm", XLNetLMHeadModel), ("squad", XLNetForQuestionAnswering)):
    # The dump is a torch pickle named model.safetensors; the reference reads a pickle as pytorch_model.bin.
    folder = name + "_as_bin"
    os.makedirs(folder)
    shutil.copy(os.path.join({dumps!r}[name], "config.json"), folder)
    shutil.copy(os.path.join({dumps!r}[name], "model.safetensors"), os.path.join(folder, "pytorch_model.bin"))
    for source in (folder, {rewritten!r}[name]):
        model, info = cls.from_pretrained(source, output_loading_info=True)
        out.setdefault(name + "_info", []).append({{key: sorted(map(str, value)) for key, value in info.items()}})
    model.eval()
    with torch.no_grad():
        if name == "lm":
            out["lm_logits"] = model(**batch).logits.tolist()
            out["lm_tied"] = model.lm_loss.weight.data_ptr() == model.transformer.word_embedding.weight.data_ptr()
            continue
        p_mask = torch.tensor(inputs["p_mask"])
        beam = model(**batch, p_mask=p_mask)
        out["beam"] = {{key: beam[key].tolist() for key in ("start_top_log_probs", "start_top_index",
                       "end_top_log_probs", "end_top_index", "cls_logits")}}
        out["loss"] = model(**batch, p_mask=p_mask, start_positions=torch.tensor(inputs["start"]),
                            end_positions=torch.tensor(inputs["end"]), cls_index=torch.tensor(inputs["cls_index"]),
                            is_impossible=torch.tensor(inputs["impossible"])).loss.item()
        out["loss_spans_only"] = model(**batch, start_positions=torch.tensor(inputs["start"]),
                                       end_positions=torch.tensor(inputs["end"])).loss.item()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Our dumps, read by our from_pretrained (and rewritten as the WARNING says) and by the oracle."""
    dumps, rewritten, ours = {}, {}, {}
    for key, name in (("lm", "tf_xlnet_tiny"), ("squad", "tf_xlnet_squad")):
        dumps[key] = str(tmp_path_factory.mktemp(f"{key}_dump"))
        convert_as_the_seed_does(name, dumps[key])
        ours[key] = KINDS[name].from_pretrained(dumps[key]).eval()
        rewritten[key] = str(tmp_path_factory.mktemp(f"{key}_rewritten"))
        shutil.copytree(dumps[key], rewritten[key], dirs_exist_ok=True)
        KINDS[name].from_pretrained(rewritten[key]).save_pretrained(rewritten[key])
    workdir = tmp_path_factory.mktemp("oracle")
    (workdir / "inputs.json").write_text(json.dumps(dict(
        input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK, token_type_ids=TOKEN_TYPE_IDS, p_mask=P_MASK,
        start=START, end=END, cls_index=CLS_INDEX, impossible=IMPOSSIBLE)), encoding="utf-8")
    reference = run_oracle_json(ORACLE.format(dumps=dumps, rewritten=rewritten), workdir)
    return dict(reference=reference, ours=ours, rewritten=rewritten)


def batch():
    return dict(input_ids=torch.tensor(INPUT_IDS), attention_mask=torch.tensor(ATTENTION_MASK),
                token_type_ids=torch.tensor(TOKEN_TYPE_IDS))


def test_the_reference_loads_the_dump_and_its_rewrite_with_nothing_missing(compared):
    for key in ("lm", "squad"):
        for info in compared["reference"][f"{key}_info"]:  # the pickle dump, then the rewritten safetensors
            assert info["missing_keys"] == [] and info["unexpected_keys"] == [], (key, info)
            assert info["mismatched_keys"] == [], (key, info)
    assert compared["reference"]["lm_tied"]


def test_lm_head_logits_match_the_reference(compared):
    with torch.no_grad():
        logits = compared["ours"]["lm"](**batch()).logits
    reference = torch.tensor(compared["reference"]["lm_logits"])
    assert logits.shape == reference.shape == (2, 8, 24)
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)
    assert logits.std() > 0.5  # the weights move the scores: a comparison of near-zeros would prove nothing


def test_question_answering_beam_and_losses_match_the_reference(compared):
    model, reference = compared["ours"]["squad"], compared["reference"]
    with torch.no_grad():
        beam = model(**batch(), p_mask=torch.tensor(P_MASK))
        loss = model(**batch(), p_mask=torch.tensor(P_MASK), start_positions=torch.tensor(START),
                     end_positions=torch.tensor(END), cls_index=torch.tensor(CLS_INDEX),
                     is_impossible=torch.tensor(IMPOSSIBLE)).loss
        spans_only = model(**batch(), start_positions=torch.tensor(START), end_positions=torch.tensor(END)).loss
    for key in ("start_top_index", "end_top_index"):
        assert beam[key].tolist() == reference["beam"][key], key
    for key in ("start_top_log_probs", "end_top_log_probs", "cls_logits"):
        torch.testing.assert_close(beam[key], torch.tensor(reference["beam"][key]), atol=1e-5, rtol=1e-5)
    assert beam["start_top_log_probs"].shape == (2, 5) and beam["end_top_index"].shape == (2, 25)
    # p_mask keeps the beam inside the text: no start on a masked position.
    assert all(P_MASK[row][position] == 0 for row in range(2) for position in beam["start_top_index"][row][:3])
    assert loss.item() == pytest.approx(reference["loss"], abs=1e-5)
    assert spans_only.item() == pytest.approx(reference["loss_spans_only"], abs=1e-5)
    assert loss.item() != pytest.approx(spans_only.item(), abs=1e-3)  # the no-answer term counted


def test_a_pickle_named_model_safetensors_loads_with_a_warning_naming_it_and_the_rewrite(tmp_path, caplog):
    convert_as_the_seed_does("tf_xlnet_tiny", tmp_path)
    path = tmp_path / WEIGHTS_NAME
    assert _is_torch_pickle(str(path))
    with caplog.at_level(logging.WARNING, logger="transformers.modeling_utils"):
        XLNetLMHeadModel.from_pretrained(str(tmp_path))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{path}: a torch pickle (torch.save) under a safetensors name")
    assert f"XLNetLMHeadModel as M; M.from_pretrained({str(tmp_path)!r}).save_pretrained({str(tmp_path)!r})" \
        in warnings[0]
    # Doing what it says makes the file real safetensors, which loads with no warning.
    XLNetLMHeadModel.from_pretrained(str(tmp_path)).save_pretrained(str(tmp_path))
    assert not _is_torch_pickle(str(path))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transformers.modeling_utils"):
        XLNetLMHeadModel.from_pretrained(str(tmp_path))
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []


def renamed(checkpoint, old, new):
    """The checkpoint with the index entry `old` listed as `new` instead: the same bytes TensorFlow wrote, under a
    name a checkpoint of another shape would have."""
    entry = checkpoint.entries.pop(old)
    checkpoint.entries[new] = dataclasses.replace(entry, name=new)
    return checkpoint


@pytest.mark.parametrize("old, new, message", [
    # An output table of its own (CMU's lm_loss with tie_weight=False): refused, not silently dropped.
    ("model/transformer/mask_emb/mask_emb", "model/lm_loss/weight", "has model/lm_loss/weight, an output table"),
    # A stacked bias whose first axis is not the number of layers: [H, N, D] = [8, 2, 4] for 2 layers.
    ("model/transformer/r_w_bias", None, r"variable 'model/transformer/r_w_bias' has shape \[8, 2, 4\]; expected "
                                         r"one slice per layer \(2 layers"),
])
def test_checkpoints_of_another_shape_are_refused_in_one_line(old, new, message):
    checkpoint = TFCheckpoint(FIXTURES / "tf_xlnet_tiny" / "xlnet_model.ckpt")
    if new is None:  # put a q kernel's entry where r_w_bias was
        del checkpoint.entries[old]
        renamed(checkpoint, "model/transformer/layer_0/rel_attn/q/kernel", old)
    else:
        renamed(checkpoint, old, new)
    with pytest.raises(CheckpointError, match=message) as caught:
        xlnet_state_dict(checkpoint)
    assert str(caught.value).startswith(str(FIXTURES / "tf_xlnet_tiny" / "xlnet_model.ckpt.index"))
    assert "\n" not in str(caught.value)


def test_from_pretrained_reads_a_cmu_release_folder_as_it_reads_googles():
    """xlnet_config.json + xlnet_model.ckpt.*, as CMU's downloads hold them: converted in memory."""
    folder = FIXTURES / "tf_xlnet_tiny"
    expected = load_file(str(FIXTURES / "tf_xlnet_tiny_expected.safetensors"))
    names = TFCheckpoint(folder / "xlnet_model.ckpt").entries
    leftovers = sorted(n for n in names if n.endswith(("/Adam", "/Adam_1")) or n == "global_step")
    lm, info = XLNetLMHeadModel.from_pretrained(str(folder), output_loading_info=True)
    assert info.missing_keys == [] and sorted(info.unexpected_keys) == leftovers
    assert all(torch.equal(lm.state_dict()[key], tensor) for key, tensor in expected.items())
    classifier, info = XLNetForSequenceClassification.from_pretrained(str(folder), num_labels=3,
                                                                      output_loading_info=True)
    # The encoder from the checkpoint; the new head is reported missing (and initialized); lm_loss is left over.
    assert sorted(info.missing_keys) == ["logits_proj.bias", "logits_proj.weight", "sequence_summary.summary.bias",
                                         "sequence_summary.summary.weight"]
    assert sorted(info.unexpected_keys) == sorted(leftovers + ["lm_loss.bias"])
    assert all(torch.equal(classifier.state_dict()[key], tensor) for key, tensor in expected.items()
               if key.startswith("transformer."))
