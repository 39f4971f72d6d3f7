"""Converting Baidu's ERNIE 1.0 release without Paddle (transformers/paddle_params.py,
transformers/convert_ernie_checkpoint.py).

tests/fixtures/paddle_ernie_tiny was written by PaddlePaddle itself (tests/fixtures/write_paddle_ernie.py, run in
a separate venv with paddlepaddle), together with the values it was given under BERT's names:
paddle_ernie_tiny_expected.safetensors. So these tests check our reader and name table against bytes Paddle
wrote, and need no Paddle to run.
"""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformers import BertForPreTraining, BertForSequenceClassification, BertModel
from transformers.convert_ernie_checkpoint import convert_ernie_checkpoint, main as convert_main
from transformers.paddle_params import ParamsError, main as list_params, read_paddle_tensor

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = FIXTURES / "paddle_ernie_tiny"


@pytest.fixture(scope="module")
def expected():
    """{our name: the value Paddle was given, in PyTorch's layout}, plus `inputs.*` and the `outputs.*` Paddle
    computed on them."""
    return load_file(str(FIXTURES / "paddle_ernie_tiny_expected.safetensors"))


def parameters(expected):
    return {name: value for name, value in expected.items() if not name.startswith(("inputs.", "outputs."))}


def copy_release(tmp_path):
    folder = tmp_path / "ernie"
    shutil.copytree(TINY, folder)
    return folder


def convert(release, out):
    return convert_ernie_checkpoint(release / "params", release / "ernie_config.json", release / "vocab.txt", out)


def test_reader_reads_the_bytes_paddle_wrote(expected):
    tensor = read_paddle_tensor(TINY / "params" / "encoder_layer_1_ffn_fc_0.w_0")
    assert tensor.dtype_name == "FP32"
    assert tensor.shape == (16, 64)  # fluid's [in, out]
    assert torch.equal(torch.from_numpy(tensor.values.copy()).t(),
                       expected["bert.encoder.layer.1.intermediate.dense.weight"])


def test_listing_a_params_folder_shows_each_type_and_shape(capsys):
    assert list_params([str(TINY / "params")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 46
    assert "word_embedding: FP32 [25, 16]" in lines and "next_sent_fc.w_0: FP32 [16, 2]" in lines


def test_converted_folder_loads_and_every_tensor_equals_the_source(tmp_path, expected):
    out = tmp_path / "converted"
    assert convert(TINY, out) is BertForPreTraining
    model = BertForPreTraining.from_pretrained(out)
    assert not model.loading_info.missing_keys and not model.loading_info.unexpected_keys
    state = model.state_dict()
    assert set(parameters(expected)) <= set(state) and len(parameters(expected)) == 46
    for name, value in parameters(expected).items():
        assert torch.equal(state[name], value), name
    # The masked-LM decoder is the word-embedding table (ERNIE's weight_sharing).
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()

    encoder = BertModel.from_pretrained(out)
    assert torch.equal(encoder.encoder.layer[0].attention.self.query.weight,
                       expected["bert.encoder.layer.0.attention.self.query.weight"])
    config = encoder.config
    assert config.layer_norm_eps == 1e-5 and encoder.embeddings.LayerNorm.eps == 1e-5
    assert config.intermediate_size == 4 * config.hidden_size == 64
    assert config.hidden_act == "relu"
    classifier = BertForSequenceClassification.from_pretrained(out, num_labels=3)
    assert sorted(classifier.loading_info.missing_keys) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(classifier.bert.pooler.dense.weight, expected["bert.pooler.dense.weight"])
    written = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert written[:4] == ["[PAD]", "[CLS]", "[SEP]", "[MASK]"] and written[21] == "[UNK]" and len(written) == 25


def test_converted_model_computes_what_ernie_computes_in_paddle(tmp_path, expected):
    """The outputs Paddle computed with ERNIE's network on the source weights (write_paddle_ernie.py) are the
    converted BertForPreTraining's, at every position that is not padding (ERNIE's mask also blanks the padded
    query rows; BERT's only the padded keys)."""
    convert(TINY, tmp_path / "converted")
    model = BertForPreTraining.from_pretrained(tmp_path / "converted")
    ids, segments = expected["inputs.src_ids"], expected["inputs.sent_ids"]
    real = ids != 0  # [B, L]

    def outputs(m):
        with torch.no_grad():
            base = m.bert(ids, (ids != 0).long(), segments)
            heads = m(ids, (ids != 0).long(), segments)
        return {"sequence_output": base.last_hidden_state[real], "pooled_output": base.pooler_output,
                "mask_lm_logits": heads.prediction_logits[real], "next_sent_logits": heads.seq_relationship_logits}

    ours = outputs(model)
    for name, value in ours.items():
        paddle_value = expected[f"outputs.{name}"]
        paddle_value = paddle_value[real] if paddle_value.dim() == 3 else paddle_value
        torch.testing.assert_close(value, paddle_value, rtol=0, atol=5e-6, msg=name)
    # The tolerance is tight enough to see the epsilon: BERT's 1e-12 in ERNIE's place moves the outputs further.
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = 1e-12
    moved = (outputs(model)["sequence_output"] - expected["outputs.sequence_output"][real]).abs().max()
    assert moved > 1e-5  # 3.6e-5 on this fixture; the agreement above is within 2e-6


def test_vocab_is_written_in_id_order_and_a_repeated_id_is_refused(tmp_path):
    release = copy_release(tmp_path)
    lines = (release / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (release / "vocab.txt").write_text("\n".join(lines[::-1]) + "\n", encoding="utf-8")  # ids 24, 23, ..., 0
    convert(release, tmp_path / "out")
    assert (tmp_path / "out" / "vocab.txt").read_text(encoding="utf-8").splitlines() == [
        line.split("\t")[0] for line in lines]

    (release / "vocab.txt").write_text("\n".join(lines[:-1] + ["[UNK]\t3"]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.txt:25: id 3 again"):
        convert(release, tmp_path / "out2")


def test_without_heads_the_folder_holds_a_bert_model(tmp_path, expected):
    release = copy_release(tmp_path)
    for path in (release / "params").iterdir():
        if path.name.startswith(("mask_lm_", "next_sent_fc")):
            path.unlink()
    assert convert(release, tmp_path / "out") is BertModel
    model = BertModel.from_pretrained(tmp_path / "out")
    assert torch.equal(model.pooler.dense.weight, expected["bert.pooler.dense.weight"])
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == ["BertModel"]


def break_one(release, how):
    """Damage params/ as `how` says; return the file that is now wrong."""
    params = release / "params"
    target = params / "encoder_layer_1_multi_head_att_key_fc.w_0"
    if how == "missing":
        target.unlink()
    elif how == "shape":  # a [16, 64] tensor where a [16, 16] one belongs
        shutil.copyfile(params / "encoder_layer_1_ffn_fc_0.w_0", target)
    elif how == "dtype":  # TensorDesc's data_type 5 (FP32) -> 2 (INT32): same size, other type
        data = bytearray(target.read_bytes())
        assert data[20:22] == b"\x08\x05"  # after 4 + 8 + 4 + 4 header bytes, as paddle_params.py describes
        data[21] = 2
        target.write_bytes(bytes(data))
    elif how == "truncated":
        target.write_bytes(target.read_bytes()[:-4])
    elif how == "one head":
        (params / "next_sent_fc.b_0").unlink()
        target = params / "next_sent_fc.b_0"
    return target


@pytest.mark.parametrize("how, message", [
    ("missing", r"missing; bert\.encoder\.layer\.1\.attention\.self\.key\.weight comes from it"),
    ("shape", r"shape \[16, 64\], expected \[16, 16\]"),
    ("dtype", r"holds INT32, expected FP32"),
    ("truncated", r"the file ends inside the values"),
    ("one head", r"missing, while mask_lm_trans_fc\.w_0 is there"),
])
def test_a_bad_parameter_file_fails_in_one_line_naming_it(tmp_path, how, message):
    release = copy_release(tmp_path)
    target = break_one(release, how)
    out = tmp_path / "out"
    with pytest.raises(ParamsError, match=message) as caught:
        convert(release, out)
    assert str(caught.value).startswith(str(target)) and "\n" not in str(caught.value)
    assert not out.exists()  # nothing written


def test_command_line_prints_one_error_line(tmp_path, capsys):
    release = copy_release(tmp_path)
    break_one(release, "missing")
    argv = ["--params_dir", str(release / "params"), "--ernie_config_file", str(release / "ernie_config.json"),
            "--vocab_file", str(release / "vocab.txt"), "--pytorch_dump_folder_path", str(tmp_path / "out")]
    assert convert_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "encoder_layer_1_multi_head_att_key_fc.w_0" in err[0]
    shutil.copytree(TINY / "params", release / "params", dirs_exist_ok=True)
    assert convert_main(argv) == 0 and (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("hidden_size"), r"ernie_config\.json: ERNIE config lacks hidden_size"),
    (lambda c: c.update(use_task_id=True, task_type_vocab_size=3), r"an ERNIE 2\.0 config"),
    # ERNIE 2.0's own key names: refused as 2.0, not as a config that "lacks type_vocab_size"
    (lambda c: c.update(sent_type_vocab_size=c.pop("type_vocab_size")), r"an ERNIE 2\.0 config"),
    (lambda c: c.update(vocab_size=26), r"vocab\.txt: 25 tokens, but .*ernie_config\.json says vocab_size 26"),
])
def test_a_config_that_is_not_ernie_1_or_disagrees_with_the_vocab_is_refused(tmp_path, change, message):
    release = copy_release(tmp_path)
    config = json.loads((release / "ernie_config.json").read_text())
    change(config)
    (release / "ernie_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        convert(release, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_ernie_2_params_folder_is_refused_whatever_its_config_says(tmp_path):
    release = copy_release(tmp_path)
    (release / "params" / "task_embedding").write_bytes((release / "params" / "sent_embedding").read_bytes())
    with pytest.raises(ValueError, match=r"task_embedding: an ERNIE 2\.0 params folder"):
        convert(release, tmp_path / "out")
    assert not (tmp_path / "out").exists()
