"""Guards for bugs that a refactor of the training loop or of `from_pretrained` could bring in quietly.

Each test pins one property that a realistic one-line mistake breaks while every other test still passes
(found by a hand mutation audit): the learning-rate warmup, the loss divided by the accumulation steps, a new
batch order each epoch, re-init drawing from its own generator (the global RNG untouched), and a caller's
`state_dict` left as it was given.
"""
import math
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from _classifier_runs import balanced_tweets, common_args, run_main, write_generic_task
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import minilm_dir
from bert_read_step_to_step.batches import epoch_batches
from transformers import BertConfig, BertForSequenceClassification, BertModel

LEARNING_RATE = 1e-4


@pytest.fixture(scope="module")
def accumulated_run(tmp_path_factory):
    """16 tweets, batches of 2 accumulated over 2 batches: 4 optimizer steps per epoch, 2 epochs = 8 steps,
    with half of them warmup. Every step's learning rate and loss is logged."""
    base = tmp_path_factory.mktemp("guards")
    data = write_generic_task(base / "data", balanced_tweets(16), balanced_tweets(6, start=10))
    results, log = run_main(common_args(data, base / "out", max_seq_length=16) + [
        "--do_train", "--per_gpu_train_batch_size", "2", "--gradient_accumulation_steps", "2",
        "--learning_rate", str(LEARNING_RATE), "--warmup_proportion", "0.5", "--num_train_epochs", "2",
        "--logging_steps", "1", "--save_steps", "0", "--seed", "7"])
    lrs = {}
    for message in log.messages:
        if message.startswith("step ") and ": lr " in message:
            step, rest = message[len("step "):].split(": lr ", 1)
            lrs[int(step)] = float(rest.split(",")[0])
    return SimpleNamespace(lrs=lrs, losses=log.losses)


def test_learning_rate_warms_up_then_decays_linearly(accumulated_run):
    # 16 examples in batches of 2, 2 batches a step: 4 steps an epoch, 8 in all, 4 of them warmup. The rate
    # logged after optimizer step s is the one the scheduler set for step s.
    total, warmup = 8, 4
    expected = {s: LEARNING_RATE * (s / warmup if s < warmup else (total - s) / (total - warmup))
                for s in range(1, total + 1)}
    assert sorted(accumulated_run.lrs) == sorted(expected)
    for step, rate in expected.items():
        assert accumulated_run.lrs[step] == pytest.approx(rate, rel=1e-2, abs=1e-12), step


def test_logged_loss_is_per_example_mean_not_sum_over_accumulated_batches(accumulated_run):
    # A new 3-class head starts near uniform, so the first loss is close to ln 3 = 1.099. Forgetting to divide
    # by gradient_accumulation_steps doubles it (about 2.2).
    assert abs(accumulated_run.losses[1] - math.log(3)) < 0.3


def test_each_epoch_has_its_own_batch_order():
    epochs = [sum(epoch_batches(40, 4, epoch, seed=3), []) for epoch in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(40))  # every example once per epoch
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2] and epochs[0] != epochs[2]
    # The order depends only on (seed, epoch): the same call gives the same batches.
    assert epoch_batches(40, 4, 1, seed=3) == epoch_batches(40, 4, 1, seed=3)


def test_reinit_leaves_the_global_rng_as_it_was():
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    # A bare BertModel gets every tensor from MiniLM's checkpoint: nothing is missing, so only the re-init
    # draws random numbers, and those must come from its own generator.
    model, info = BertModel.from_pretrained(str(minilm_dir()), reinit_keys=["encoder.layer.5"], reinit_seed=0,
                                            output_loading_info=True)
    assert info.missing_keys == [] and len(info.reinit_keys) == 16
    assert torch.equal(torch.get_rng_state(), before)


def test_a_given_state_dict_is_left_untouched():
    state_dict = load_file(str(minilm_dir() / "model.safetensors"))
    original = {name: tensor.clone() for name, tensor in state_dict.items()}
    config = BertConfig.from_pretrained(str(minilm_dir()))
    model = BertModel.from_pretrained(None, config=config, state_dict=state_dict,
                                      reinit_keys=["encoder.layer.5", "pooler"], reinit_seed=0)
    assert sorted(state_dict) == sorted(original)
    changed = [name for name in original if not torch.equal(state_dict[name], original[name])]
    assert changed == []
    # ...while the model's re-initialized weight really differs from the checkpoint's.
    name = "encoder.layer.5.attention.self.query.weight"
    assert not torch.equal(model.state_dict()[name], original[name])


def test_a_new_model_is_initialized_by_the_init_rule_alone():
    """Our layers skip PyTorch's own init when built, so `init_weights` must reach every tensor of a new model:
    none may keep the uninitialized memory it was allocated with."""
    config = BertConfig(vocab_size=300, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=96, initializer_range=0.05)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    for name, tensor in model.named_parameters():
        if "LayerNorm" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.equal(tensor, torch.full_like(tensor, expected)), name
        elif name.endswith("bias"):
            assert torch.equal(tensor, torch.zeros_like(tensor)), name
        else:
            drawn = tensor[1:] if name.endswith("word_embeddings.weight") else tensor  # row 0 is [PAD]
            assert abs(drawn.std().item() - 0.05) < 0.01 and abs(drawn.mean().item()) < 0.01, name
    assert torch.equal(model.bert.embeddings.word_embeddings.weight[0], torch.zeros(48))
