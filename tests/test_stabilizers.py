"""Zhang et al.'s stabilizers (bert_read_step_to_step/stabilizers.py): each shows its defining property, and
each gives a run that resumes exactly, combined with re-init and layer-wise lr decay.

- BERTAdam: the first step has the size of Adam without the 1/(1-beta^t) corrections; with them it is AdamW.
- mixout: each weight is its pre-trained value with probability p, the mix averages to the current weight,
  it is off in eval, and the saved model is a plain one.
- prior weight decay: pre-trained weights decay toward w0, the others toward zero.
"""
import math
import re
import shutil

import pytest
import torch

import run_classifier
from _classifier_runs import assert_same_weights, balanced_tweets, common_args, run_main, saved_weights, \
    write_generic_task
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import minilm_dir
from bert_read_step_to_step import optimization
from bert_read_step_to_step.stabilizers import DecoupledAdam, MixoutLinear, add_mixout, mixout
from transformers import BertConfig, BertForSequenceClassification
from transformers.modeling_utils import Linear

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


def one_step(optimizer_class, weight, grad, **kwargs):
    param = torch.nn.Parameter(weight.clone())
    optimizer = optimizer_class([param], **kwargs)
    param.grad = grad.clone()
    optimizer.step()
    return param.detach()


# ---- BERTAdam ---------------------------------------------------------------------------------------------

def test_bertadam_first_step_is_adam_without_bias_correction():
    torch.manual_seed(0)
    weight, grad = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    lr = 1e-3
    moved = weight - one_step(DecoupledAdam, weight, grad, lr=lr, eps=EPS, correct_bias=False)
    # m1 = (1 - beta1) g, v1 = (1 - beta2) g^2, and no division by (1 - beta^1):
    expected = lr * (1 - BETA1) * grad / (torch.sqrt((1 - BETA2) * grad ** 2) + EPS)
    torch.testing.assert_close(moved, expected, rtol=1e-12, atol=0)
    # AdamW's first step is lr * sign(g) (up to eps); BERTAdam's is (1 - beta1) / sqrt(1 - beta2) ~ 3.16 times it.
    adamw_moved = weight - one_step(torch.optim.AdamW, weight, grad, lr=lr, eps=EPS, weight_decay=0.0)
    torch.testing.assert_close(adamw_moved, lr * torch.sign(grad), rtol=1e-6, atol=0)
    ratio = (moved / adamw_moved)
    # (eps weighs about 30 times more against BERTAdam's smaller denominator, hence the looser tolerance)
    torch.testing.assert_close(ratio, torch.full_like(ratio, (1 - BETA1) / math.sqrt(1 - BETA2)), rtol=1e-4, atol=0)


def test_with_bias_correction_it_is_torch_adamw_step_for_step():
    torch.manual_seed(1)
    weight = torch.randn(30, dtype=torch.float64)
    ours, theirs = torch.nn.Parameter(weight.clone()), torch.nn.Parameter(weight.clone())
    mine = DecoupledAdam([ours], lr=1e-2, eps=EPS, weight_decay=0.1, correct_bias=True)
    reference = torch.optim.AdamW([theirs], lr=1e-2, eps=EPS, weight_decay=0.1)
    for _ in range(5):
        grad = torch.randn(30, dtype=torch.float64)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        mine.step()
        reference.step()
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-12, atol=1e-15)


# ---- prior weight decay -----------------------------------------------------------------------------------

def test_prior_decay_pulls_toward_the_prior_and_weights_without_one_toward_zero():
    torch.manual_seed(2)
    w, w0, other = torch.randn(20), torch.randn(20), torch.randn(20)
    with_prior, without = torch.nn.Parameter(w.clone()), torch.nn.Parameter(other.clone())
    lr, wd = 0.1, 0.5
    optimizer = DecoupledAdam([with_prior, without], lr=lr, weight_decay=wd, priors={with_prior: w0})
    # A zero gradient makes Adam's own update zero (m = 0), so only the decay moves the weights.
    with_prior.grad, without.grad = torch.zeros(20), torch.zeros(20)
    optimizer.step()
    torch.testing.assert_close(with_prior.detach(), w - lr * wd * (w - w0))
    torch.testing.assert_close(without.detach(), other - lr * wd * other)


# ---- mixout -----------------------------------------------------------------------------------------------

def test_mixout_swaps_in_the_prior_with_probability_p_and_averages_to_the_weight():
    torch.manual_seed(3)
    w, w0, p = torch.randn(8, 8, dtype=torch.float64), torch.randn(8, 8, dtype=torch.float64), 0.7
    draws = torch.stack([mixout(w, w0, p) for _ in range(20000)])
    # Each element is either w0 itself (swapped) or (w - p * w0) / (1 - p) (kept, shifted and scaled).
    swapped = torch.isclose(draws, w0.expand_as(draws))
    kept = torch.isclose(draws, ((w - p * w0) / (1 - p)).expand_as(draws))
    assert bool((swapped | kept).all())
    assert abs(swapped.double().mean().item() - p) < 0.005
    # The expectation is the current weight, not the pre-trained one: the mean of the draws is within five
    # standard errors of w (one draw's std is |w - w0| sqrt(p / (1 - p))).
    standard_error = (w - w0).abs() * math.sqrt(p / (1 - p)) / math.sqrt(len(draws))
    assert bool(((draws.mean(dim=0) - w).abs() < 5 * standard_error).all())
    assert not bool(((draws.mean(dim=0) - w0).abs() < 5 * standard_error).any())


@pytest.fixture(scope="module")
def minilm_head():
    return BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3)


def test_mixout_layers_keep_state_dict_and_are_plain_in_eval(minilm_head):
    model = minilm_head
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    pretrained = {name: param.detach().clone() for name, param in model.named_parameters()
                  if not name.startswith("classifier")}
    torch.manual_seed(4)
    for name in pretrained:  # move the weights away from w0, as training would
        model.get_parameter(name).data.add_(0.01 * torch.randn_like(pretrained[name]))
    moved = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    inputs = {"input_ids": torch.tensor([[101, 7592, 2088, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    model.eval()
    plain_logits = model(**inputs).logits

    replaced = add_mixout(model, pretrained, p=0.5)
    # Every pre-trained Linear (6 layers x 6, and the pooler), not the new classifier.
    assert len(replaced) == 6 * 6 + 1 and "classifier" not in replaced
    assert isinstance(model.bert.pooler.dense, MixoutLinear) and type(model.classifier) is Linear
    state = model.state_dict()
    assert sorted(state) == sorted(before)
    assert all(torch.equal(state[name], moved[name]) for name in state)
    model.eval()
    torch.testing.assert_close(model(**inputs).logits, plain_logits, rtol=0, atol=0)
    model.train()
    torch.manual_seed(5)
    first, second = model(**inputs).logits, model(**inputs).logits
    assert not torch.allclose(first, second)


# ---- in a run: flags, priors, exact resume -----------------------------------------------------------------

def test_priors_are_the_loaded_weights_only():
    args = run_classifier.parse_args(common_args("data", "out") + [
        "--do_train", "--reinit_layers", "1", "--reinit_pooler", "--mixout", "0.5"])
    config = BertConfig.from_pretrained(str(minilm_dir()), num_labels=3)
    model, info = run_classifier.load_model(args, args.model_name_or_path, config, ["a", "b", "c"])
    start = {name: param.detach().clone() for name, param in model.named_parameters()}
    priors = optimization.stabilizer_priors(args, start, info)
    names = {name for name, _ in model.named_parameters()}
    no_prior = {name for name in names if name.startswith(("bert.encoder.layer.5.", "bert.pooler.", "classifier."))}
    assert set(priors) == names - no_prior
    loaded = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).state_dict()
    assert all(torch.equal(priors[name], loaded[name]) for name in priors)


@pytest.mark.parametrize("flags, correct_bias, with_priors", [
    ([], None, False),  # torch's fused AdamW
    (["--use_bertadam"], False, False),
    (["--prior_weight_decay", "--weight_decay", "0.1"], True, True),
    (["--use_bertadam", "--prior_weight_decay", "--weight_decay", "0.1"], False, True),
])
def test_the_flags_choose_the_optimizer(flags, correct_bias, with_priors):
    args = run_classifier.parse_args(common_args("data", "out") + ["--do_train"] + flags)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3)
    pretrained = {name: param.detach().clone() for name, param in model.named_parameters()
                  if not name.startswith("classifier")}
    optimizer = optimization.make_optimizer(args, model, pretrained)
    if correct_bias is None:
        assert type(optimizer) is torch.optim.AdamW
        return
    assert isinstance(optimizer, DecoupledAdam)
    assert {group["correct_bias"] for group in optimizer.param_groups} == {correct_bias}
    prior_names = {name for name, param in model.named_parameters() if param in optimizer.priors}
    assert prior_names == (set(pretrained) if with_priors else set())
    assert all(optimizer.priors[model.get_parameter(name)] is pretrained[name] for name in prior_names)


@pytest.mark.parametrize("bad, message", [
    (["--mixout", "1"], "--mixout must be in [0, 1)"),
    (["--prior_weight_decay"], "give --weight_decay > 0 too"),
])
def test_bad_stabilizer_flags_are_refused(bad, message, capsys):
    with pytest.raises(SystemExit):
        run_classifier.parse_args(common_args("data", "out") + ["--do_train"] + bad)
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stabilizer_data")
    write_generic_task(folder, balanced_tweets(12), balanced_tweets(3, start=6))
    return folder


STABILIZERS = {
    "bertadam": ["--use_bertadam"],
    "mixout": ["--mixout", "0.5"],
    "prior_wd": ["--prior_weight_decay", "--weight_decay", "0.5"],
}


@pytest.mark.parametrize("stabilizer", sorted(STABILIZERS))
def test_run_with_stabilizer_resumes_exactly_and_saves_a_plain_model(stabilizer, data, tmp_path):
    argv = common_args(data, tmp_path / "whole", max_seq_length=16) + [
        "--do_train", "--per_gpu_train_batch_size", "2", "--max_steps", "4", "--save_steps", "2",
        "--logging_steps", "1", "--learning_rate", "1e-3", "--seed", "3", "--reinit_layers", "1",
        "--layerwise_lr_decay", "0.8"] + STABILIZERS[stabilizer]
    run_main(argv)
    resumed_argv = [arg if arg != str(tmp_path / "whole") else str(tmp_path / "resumed") for arg in map(str, argv)]
    run_main(resumed_argv + ["--resume_from_checkpoint", tmp_path / "whole" / "checkpoint-2"])
    assert_same_weights(tmp_path / "whole", tmp_path / "resumed")
    # The saved model is a plain BERT with the usual keys, and training moved it.
    plain = BertForSequenceClassification.from_pretrained(str(tmp_path / "whole"))
    saved = saved_weights(tmp_path / "whole")
    assert sorted(saved) == sorted(plain.state_dict())
    start = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).state_dict()
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(saved[name], start[name])
    # Resuming that checkpoint without the stabilizer would start another training from its middle: refused.
    plain = [arg for arg in resumed_argv if arg not in STABILIZERS[stabilizer]]
    with pytest.raises(run_classifier.UserError, match="this run would not continue that training: .*"
                                                        + re.escape(STABILIZERS[stabilizer][0]) + r" \S+ there"):
        run_main(plain + ["--resume_from_checkpoint", tmp_path / "whole" / "checkpoint-2"])
    shutil.rmtree(tmp_path)
