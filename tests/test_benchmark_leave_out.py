"""benchmarks/leave_out.py: each part it leaves out is really gone from the training step, nothing else is, and
the model is as before once the `with` ends. (The timings themselves are the benchmark's, not tested here.)"""
import contextlib

import pytest
import torch
from torch.profiler import profile

from benchmarks import leave_out
from benchmarks.harness import minilm_dir
from transformers import BertForSequenceClassification


@pytest.fixture(scope="module")
def model():
    return BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).train()


def training_step_ops(model, part=None):
    """{aten op name: calls} of one forward + backward on a 2 x 16 batch, with `part` left out (None: none)."""
    torch.manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (2, 16))
    with leave_out.left_out(model, part) if part else contextlib.nullcontext():
        with profile() as prof:
            model(ids, torch.ones_like(ids), labels=torch.tensor([0, 2])).loss.backward()
    model.zero_grad(set_to_none=True)
    return {event.key: event.count for event in prof.key_averages()}


def seeded_loss(model):
    torch.manual_seed(1)
    ids = torch.randint(1000, model.config.vocab_size, (2, 16))
    return model(ids, torch.ones_like(ids), labels=torch.tensor([1, 0])).loss.item()


def test_each_part_left_out_removes_its_ops_and_only_those(model):
    layers = model.config.num_hidden_layers
    # Dropout draws (random_), one per dropout: the embeddings', two per layer after attention and the
    # feed-forward, the classifier's, and one per layer on the attention probabilities.
    hidden_draws = 1 + 2 * layers + 1
    whole = training_step_ops(model)
    assert whole["aten::random_"] == hidden_draws + layers
    assert whole["aten::gelu"] == layers and whole["aten::_softmax"] == layers

    no_attention_dropout = training_step_ops(model, "attention dropout")
    assert no_attention_dropout["aten::random_"] == hidden_draws
    assert no_attention_dropout["aten::_softmax"] == layers and no_attention_dropout["aten::gelu"] == layers

    mask_drawn_only = training_step_ops(model, "attention mask multiply")
    assert mask_drawn_only["aten::random_"] == hidden_draws + layers
    # The probabilities are not multiplied by the mask: one multiply fewer per layer forward, one backward.
    assert mask_drawn_only["aten::mul"] == whole["aten::mul"] - 2 * layers

    no_softmax = training_step_ops(model, "softmax")
    assert "aten::_softmax" not in no_softmax and "aten::_softmax_backward_data" not in no_softmax
    assert no_softmax["aten::random_"] == hidden_draws + layers

    no_gelu = training_step_ops(model, "GELU")
    assert "aten::gelu" not in no_gelu and "aten::gelu_backward" not in no_gelu
    assert no_gelu["aten::_softmax"] == layers

    no_hidden_dropout = training_step_ops(model, "hidden dropout")
    assert no_hidden_dropout["aten::random_"] == layers

    nothing = training_step_ops(model, "all of these")
    assert not any(op in nothing for op in ("aten::random_", "aten::gelu", "aten::_softmax"))
    # Every matmul still runs, on the same shapes.
    for matmul in ("aten::mm", "aten::addmm", "aten::bmm"):
        assert nothing[matmul] == whole[matmul]


def test_the_model_is_as_before_after_the_with(model):
    before = seeded_loss(model)
    with leave_out.left_out(model, "all of these"):
        assert seeded_loss(model) != before
    assert seeded_loss(model) == before
    with pytest.raises(RuntimeError):  # restored even when the step inside fails
        with leave_out.left_out(model, "GELU"):
            raise RuntimeError("a step failed")
    assert seeded_loss(model) == before


def test_an_unknown_part_is_refused_with_the_choices(model):
    with pytest.raises(ValueError, match="unknown part 'layer norm'; choose from attention dropout"):
        with leave_out.left_out(model, "layer norm"):
            pass


def test_measure_reports_every_part_against_the_whole_step():
    result = leave_out.measure("fp32", parts=("GELU", "softmax"), rounds=2, batch_size=2, seq_length=16)
    assert result["rounds"] == 1 and set(result["parts"]) == {"GELU", "softmax"}
    for row in result["parts"].values():
        assert row["saves ms"] == pytest.approx(result["whole step ms"] - row["ms"], abs=0.11)
    assert "| GELU |" in leave_out.as_table(result)


def test_a_left_out_step_that_diverges_stops_the_measurement(monkeypatch):
    # Attention that returns NaN: the loss is NaN, and the model the other settings share is spoiled.
    monkeypatch.setattr(leave_out, "attention_stand_in", lambda **_: lambda query, *rest: query * float("nan"))
    with pytest.raises(RuntimeError, match="with softmax left out gave loss nan"):
        leave_out.measure("fp32", parts=("softmax",), rounds=2, batch_size=2, seq_length=16)
