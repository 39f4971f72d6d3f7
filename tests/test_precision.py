"""fp32 or bf16: what the hardware probe reports, which precision the flags give, that --bf16 really runs
training, evaluation and prediction in bf16 with fp32 weights saved, the start-up messages, and exact resume
in bf16.

The runs use a tiny BERT (2 layers, H=32) with MiniLM's vocabulary: on a CPU without native bf16 a bf16
matmul is emulated and very slow, and a tiny model keeps these tests at seconds on any CPU. Whether the CPU
has native bf16 is faked where a test needs the other kind (torch.cpu's checks are replaced for the test):
the code paths are the same, only the arithmetic's speed differs.
"""
import logging
import os
import shutil

import pytest
import torch

import run_classifier
from _classifier_runs import (assert_same_weights, balanced_tweets, run_main, saved_weights, write_generic_task)
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import minilm_dir
from bert_read_step_to_step import precision, reinit_sweep
from bert_read_step_to_step.precision import Bf16Support, bf16_support, choose_precision
from transformers import BertConfig, BertModel
from transformers.file_utils import UserError

NATIVE_CPU = Bf16Support("cpu", True, "faked")
PLAIN_CPU = Bf16Support("cpu", False, "faked")
CUDA_AMPERE = Bf16Support("cuda", True, "faked")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialized 2-layer BertModel with MiniLM's vocab.txt, saved as a model folder."""
    folder = tmp_path_factory.mktemp("tiny_model")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))  # a pre-trained body, as MiniLM; the classifier is new
    shutil.copy(minilm_dir() / "vocab.txt", folder / "vocab.txt")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("precision_data")
    return write_generic_task(folder, balanced_tweets(8), balanced_tweets(3, start=8),
                              test=[text for _, text in balanced_tweets(3, start=11)])


def tiny_args(model, data, out, *flags):
    return ["--model_type", "bert", "--model_name_or_path", str(model), "--task_name", "generic",
            "--data_dir", str(data), "--output_dir", str(out), "--max_seq_length", "16",
            "--per_gpu_train_batch_size", "2", "--per_gpu_eval_batch_size", "2", "--logging_steps", "1",
            "--learning_rate", "1e-3", "--seed", "3", *flags]


def fake_cpu(monkeypatch, avx512_bf16, amx):
    """Make torch.cpu report (or deny) native bf16 for this test."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


class LinearDtypes:
    """Records the output dtypes of every nn.Linear, separately for training and for eval mode."""

    def __enter__(self):
        self.training, self.eval = set(), set()

        def record(module, inputs, output):
            if isinstance(module, torch.nn.Linear):
                (self.training if module.training else self.eval).add(output.dtype)

        self.hook = torch.nn.modules.module.register_module_forward_hook(record)
        return self

    def __exit__(self, *exc):
        self.hook.remove()


# ---- the probe and the choice ------------------------------------------------------------------------------

def test_bf16_support_follows_torch_cpu_checks(monkeypatch):
    for avx512_bf16, amx, native in [(False, False, False), (True, False, True), (False, True, True)]:
        fake_cpu(monkeypatch, avx512_bf16, amx)
        support = bf16_support("cpu")
        assert support.native is native
        assert f"avx512_bf16 {'yes' if avx512_bf16 else 'no'}, AMX {'yes' if amx else 'no'}" in support.description
        assert torch.backends.cpu.get_cpu_capability() in support.description
    with pytest.raises(ValueError, match="'mps' is neither"):
        bf16_support("mps")


def test_choose_precision_from_the_flags():
    # (fp16, bf16) -> precision on a CPU without native bf16, one with it, and an Ampere GPU.
    table = {(False, "off"): ("fp32", "fp32", "fp32"),
             (False, "on"): ("bf16", "bf16", "bf16"),
             (False, "auto"): ("fp32", "bf16", "bf16"),
             (True, "off"): ("bf16", "bf16", "fp16")}
    for (fp16, bf16), expected in table.items():
        got = tuple(choose_precision(fp16, bf16, support) for support in (PLAIN_CPU, NATIVE_CPU, CUDA_AMPERE))
        assert got == expected, (fp16, bf16)
    with pytest.raises(ValueError, match="--bf16 'yes'"):
        choose_precision(False, "yes", PLAIN_CPU)


def test_notes_warn_about_slow_bf16_and_point_to_fast_bf16():
    [(level, message)] = precision.precision_notes("bf16", "on", PLAIN_CPU)
    assert level == logging.WARNING and "no native bf16" in message and "slower than fp32" in message
    [(level, message)] = precision.precision_notes("fp32", "off", NATIVE_CPU)
    assert level == logging.INFO and "--bf16" in message
    [(level, message)] = precision.precision_notes("fp32", "auto", PLAIN_CPU)
    assert level == logging.INFO and "so fp32" in message
    assert precision.precision_notes("bf16", "on", NATIVE_CPU) == []
    assert precision.precision_notes("fp32", "off", PLAIN_CPU) == []


def test_fp16_and_bf16_together_are_refused(tiny_model, data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_classifier.parse_args(tiny_args(tiny_model, data, tmp_path / "out", "--do_train", "--fp16", "--bf16"))
    assert "--fp16 and --bf16 on both given" in capsys.readouterr().err


# ---- runs --------------------------------------------------------------------------------------------------

def test_bf16_trains_evaluates_and_predicts_in_bf16_and_saves_fp32(tiny_model, data, tmp_path, monkeypatch):
    fake_cpu(monkeypatch, False, False)
    out = tmp_path / "out"
    with LinearDtypes() as dtypes:
        results, log = run_main(tiny_args(tiny_model, data, out, "--do_train", "--do_eval", "--do_predict",
                                          "--bf16", "--max_steps", "2", "--save_steps", "0"))
    assert dtypes.training == {torch.bfloat16} and dtypes.eval == {torch.bfloat16}
    assert sorted(log.losses) == [1, 2] and 0.0 <= results["final"]["acc"] <= 1.0
    assert (out / "test_predictions.tsv").read_text().count("\n") == 4  # header + 3 predictions
    assert {tensor.dtype for tensor in saved_weights(out).values()} == {torch.float32}
    # The start-up log names the hardware next to the threads, and warns: this (faked) CPU lacks native bf16.
    assert any(m.startswith("torch threads 1; CPU capability") and m.endswith("in bf16") for m in log.messages)
    assert any("no native bf16" in m and "slower than fp32" in m for m in log.messages)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_auto_takes_bf16_only_where_native(tiny_model, data, tmp_path, monkeypatch, native):
    fake_cpu(monkeypatch, native, False)
    with LinearDtypes() as dtypes:
        _, log = run_main(tiny_args(tiny_model, data, tmp_path / "out", "--do_eval", "--bf16", "auto"))
    assert dtypes.eval == {torch.bfloat16 if native else torch.float32}
    assert any(m.endswith("in bf16" if native else "in fp32") for m in log.messages)
    assert any(m.startswith("--bf16 auto: no native bf16 here") for m in log.messages) is not native


def test_fp32_on_a_native_bf16_cpu_says_how_to_get_the_speed_up(tiny_model, data, tmp_path, monkeypatch):
    fake_cpu(monkeypatch, True, False)
    with LinearDtypes() as dtypes:
        _, log = run_main(tiny_args(tiny_model, data, tmp_path / "out", "--do_eval"))
    assert dtypes.eval == {torch.float32}
    assert [m for m in log.messages if "computes bf16 natively" in m and "--bf16" in m] != []


def test_resume_in_bf16_is_bit_identical(tiny_model, data, tmp_path):
    """Stopped after checkpoint-2 and resumed from it, a bf16 run ends bit-identical to the uninterrupted one;
    resuming the same checkpoint in fp32 would be another training, and is refused before anything is written."""
    flags = ("--do_train", "--bf16", "--max_steps", "4", "--save_steps", "2")
    _, whole = run_main(tiny_args(tiny_model, data, tmp_path / "whole", *flags))
    assert sorted(whole.losses) == [1, 2, 3, 4]
    for name in ("resumed", "resumed_fp32"):  # each resumes in a folder of its own, from the same checkpoint
        shutil.copytree(tmp_path / "whole" / "checkpoint-2", tmp_path / name / "checkpoint-2")
    _, resumed = run_main(tiny_args(tiny_model, data, tmp_path / "resumed", *flags,
                                    "--resume_from_checkpoint", tmp_path / "resumed" / "checkpoint-2"))
    assert resumed.losses == {step: whole.losses[step] for step in (3, 4)}
    assert_same_weights(tmp_path / "resumed", tmp_path / "whole")
    assert_same_weights(tmp_path / "resumed" / "checkpoint-4", tmp_path / "whole" / "checkpoint-4")

    fp32_flags = [flag for flag in flags if flag != "--bf16"]
    with pytest.raises(UserError, match="precision 'bf16' there, 'fp32' now"):
        run_main(tiny_args(tiny_model, data, tmp_path / "resumed_fp32", *fp32_flags,
                           "--resume_from_checkpoint", tmp_path / "resumed_fp32" / "checkpoint-2"))
    assert sorted(os.listdir(tmp_path / "resumed_fp32")) == ["checkpoint-2"]


# ---- the re-init sweep's --precision -----------------------------------------------------------------------

def sweep_args(tiny_model, data, out, *flags):
    return reinit_sweep.parse_args(["--data_dir", str(data), "--output_dir", str(out), "--model_name_or_path",
                                    str(tiny_model), *flags])


@pytest.mark.parametrize("native, requested, expected", [(False, [], "fp32"), (True, [], "bf16"),
                                                         (True, ["--precision", "fp32"], "fp32"),
                                                         (False, ["--precision", "bf16"], "bf16")])
def test_sweep_precision_reaches_every_run(tiny_model, data, tmp_path, monkeypatch, capsys, native, requested,
                                           expected):
    fake_cpu(monkeypatch, native, False)
    args = sweep_args(tiny_model, data, tmp_path / "sweep", *requested)
    config = reinit_sweep.sweep_config(args, str(data), str(tiny_model))
    assert config["precision"] == expected
    assert capsys.readouterr().out.startswith(f"Precision: {expected} (")
    setting = reinit_sweep.Setting(0, False)
    argv = reinit_sweep.run_argv(config, str(data), setting, 1, str(tmp_path / "run"))
    parsed = run_classifier.parse_args(argv)  # as the run's own process will read its command line
    assert parsed.bf16 == ("on" if expected == "bf16" else "off")


def test_sweep_refuses_bf16_after_the_double_dash(tiny_model, data, tmp_path, monkeypatch):
    fake_cpu(monkeypatch, False, False)
    args = sweep_args(tiny_model, data, tmp_path / "sweep", "--", "--bf16")
    with pytest.raises(reinit_sweep.SweepError, match="--bf16 .* through --precision"):
        reinit_sweep.check_extra_args(args.extra_args)


def bf16_and_fp32_pooled(training):
    """Our MiniLM's pooled vectors for 16 real tweets in fp32 and under bf16 autocast (same seed, so in
    training the same dropout masks), and the dtype of the bf16 run's last hidden state."""
    from _support import read_tweets
    from transformers import BertTokenizer
    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()))
    rows = [tokenizer.encode_plus(text, max_length=64)["input_ids"] for _, text in read_tweets(16)]
    length = max(map(len, rows))
    ids = torch.tensor([row + [0] * (length - len(row)) for row in rows])  # [B, L], padded with [PAD] = 0
    model = BertModel.from_pretrained(str(minilm_dir())).train(training)
    pooled = {}
    for name in ("fp32", "bf16"):
        torch.manual_seed(5)
        with torch.no_grad(), precision.autocast(name, "cpu"):
            output = model(ids, (ids != 0).long())
        pooled[name] = output.pooler_output.float()  # [B, H]
    return pooled["fp32"], pooled["bf16"], output.last_hidden_state.dtype


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train-same-masks"])
def test_bf16_forward_keeps_the_residual_stream_in_bf16_and_stays_near_our_fp32_forward(training):
    """Under bf16 autocast the residual stream, LayerNorm and softmax run in bf16 (modeling_bert
    residual_stream_dtype). Tolerance: 0.02 on pooled values in [-1, 1]; measured 0.002 on MiniLM (bf16 keeps
    8 significant bits, about 0.4% per rounding). In training the dropout masks do not depend on the dtype,
    so the same seed gives the same masks and the two stay as close."""
    fp32, bf16, stream_dtype = bf16_and_fp32_pooled(training)
    assert stream_dtype == torch.bfloat16
    assert (fp32 - bf16).abs().max().item() <= 0.02
    assert (fp32 - bf16).abs().max().item() > 0  # bf16 really ran
