"""Length-bucketed training batches (--group_by_length), scoring in length order, and the feature cache built
once when several runs start together: the three changes that make the re-init sweep faster.

Bucketing must change only which examples share a batch: every example still comes once per epoch, the
batches stay seeded (so a resumed run continues exactly), and each batch pads less. Scoring shortest first
must give every example the logits it gets alone, in the dataset's order.
"""
import math
import os
import re
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

import run_classifier
from _classifier_runs import (assert_same_weights, balanced_tweets, common_args, one_thread_env, run_main,
                              write_generic_task)
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import REPO_ROOT, minilm_dir
from bert_read_step_to_step import batches as batches_module
from bert_read_step_to_step.batches import epoch_batches
from bert_read_step_to_step.checkpoints import TRAIN_STATE_NAME
from bert_read_step_to_step.runtime import Runtime
from bert_read_step_to_step.features import (FEATURES_LOCK_NAME, FeatureDataset, convert_examples_to_features,
                                             length_bucketed_batches, load_and_cache_features)
from bert_read_step_to_step.tasks import get_task, read_examples
from transformers import BertForSequenceClassification, BertTokenizer
from transformers.file_utils import exclusive_lock


def padded_tokens(batches, lengths):
    """Tokens a run computes: each batch is padded to its longest example."""
    return sum(len(batch) * max(lengths[index] for index in batch) for batch in batches)


@pytest.fixture(scope="module")
def tweet_lengths():
    """Token counts of 300 real tweets under MiniLM's tokenizer, max_seq_length 64 (the sweep's setting)."""
    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()), do_lower_case=True)
    return [min(64, len(tokenizer.tokenize(text)) + 2) for _, text in balanced_tweets(300)]


# ---- the batches ---------------------------------------------------------------------------------------

def test_the_worked_example_of_the_docstring():
    # lengths 9 3 7 5 2 8 sorted: indexes 4 1 3 2 5 0; buckets of one batch of 2 pair neighbours in length.
    batches = length_bucketed_batches([0, 1, 2, 3, 4, 5], [9, 3, 7, 5, 2, 8], 2, torch.Generator().manual_seed(0),
                                      bucket_batches=1)
    assert sorted(sorted(batch) for batch in batches) == [[0, 5], [1, 4], [2, 3]]


def test_bucketing_keeps_the_examples_and_batch_count_of_each_epoch_and_pads_less(tweet_lengths):
    n = len(tweet_lengths)
    plain_tokens, bucketed_tokens = 0, 0
    for epoch in range(3):
        for rank in range(2):  # each of two ranks gets the same examples with and without bucketing
            plain = epoch_batches(n, 16, epoch, seed=5, rank=rank, world_size=2)
            bucketed = epoch_batches(n, 16, epoch, seed=5, rank=rank, world_size=2,
                                                    lengths=tweet_lengths)
            assert sorted(sum(bucketed, [])) == sorted(sum(plain, []))  # each example once, none added
            assert len(bucketed) == len(plain) == math.ceil(n // 2 / 16)
            assert [len(batch) for batch in bucketed] == [len(batch) for batch in plain]  # the partial one last
            plain_tokens += padded_tokens(plain, tweet_lengths)
            bucketed_tokens += padded_tokens(bucketed, tweet_lengths)
    real_tokens = 3 * sum(tweet_lengths)  # two ranks of 150: every example once an epoch
    assert bucketed_tokens < 0.8 * plain_tokens
    assert bucketed_tokens < 1.25 * real_tokens < plain_tokens


def test_bucketed_batches_are_seeded_and_differ_between_epochs(tweet_lengths):
    n = len(tweet_lengths)

    def batches(epoch, seed=5):
        return epoch_batches(n, 16, epoch, seed, lengths=tweet_lengths)

    assert batches(1) == batches(1)  # what a resumed run relies on
    assert batches(0) != batches(1) and batches(0, seed=5) != batches(0, seed=6)
    # Not one fixed sequence of length classes: the first batch is not always the shortest or the longest.
    first_lengths = {max(tweet_lengths[i] for i in batches(epoch)[0]) for epoch in range(8)}
    assert len(first_lengths) > 2


# ---- in a run -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bucket_data")
    write_generic_task(folder, balanced_tweets(24), balanced_tweets(9, start=12))
    return folder


def test_a_bucketed_run_feeds_less_padding_resumes_exactly_and_keeps_its_batching(data, tmp_path, monkeypatch):
    fed = []
    collate = batches_module.collate_features

    def counting_collate(batch, *args, **kwargs):
        tensors = collate(batch, *args, **kwargs)
        fed.append(tensors["input_ids"].numel())
        return tensors

    monkeypatch.setattr(batches_module, "collate_features", counting_collate)
    argv = common_args(data, tmp_path / "whole", max_seq_length=48) + [
        "--do_train", "--per_gpu_train_batch_size", "4", "--max_steps", "8", "--save_steps", "3",
        "--logging_steps", "1", "--learning_rate", "1e-3", "--seed", "3", "--group_by_length"]
    run_main([arg for arg in argv if arg != "--group_by_length"] + ["--output_dir", tmp_path / "plain"])
    plain_fed, fed[:] = sum(fed), []
    run_main(argv)
    assert sum(fed) < 0.9 * plain_fed  # the same 8 batches of 4, with less padding

    # Checkpoint 3 is in the middle of epoch 0 (6 batches an epoch): the resumed run must skip to the same
    # place in the same bucketed order and end with the same weights.
    resumed = [str(arg) if str(arg) != str(tmp_path / "whole") else str(tmp_path / "resumed") for arg in argv]
    run_main(resumed + ["--resume_from_checkpoint", tmp_path / "whole" / "checkpoint-3"])
    assert_same_weights(tmp_path / "whole", tmp_path / "resumed")
    # Resuming it with plain batches would be another training: refused, naming the flag.
    with pytest.raises(run_classifier.UserError, match=r"--group_by_length True there, False now"):
        run_main([arg for arg in resumed if arg != "--group_by_length"]
                 + ["--resume_from_checkpoint", tmp_path / "whole" / "checkpoint-3"])
    # A checkpoint written before --group_by_length, the stabilizers and the precision entry existed records
    # none of them: it trained with them off, so a resume with bucketing is refused and nothing else differs.
    state_path = tmp_path / "whole" / "checkpoint-3" / TRAIN_STATE_NAME
    state = torch.load(state_path, weights_only=True)
    for name in ("--group_by_length", "--use_bertadam", "--mixout", "--prior_weight_decay", "precision"):
        del state["trajectory"][name]
    torch.save(state, state_path)
    with pytest.raises(run_classifier.UserError) as refused:
        run_main(resumed + ["--output_dir", tmp_path / "again", "--resume_from_checkpoint", state_path.parent])
    assert re.search(r"that training: --group_by_length False there, True now\. Give", str(refused.value))
    shutil.rmtree(tmp_path)


def test_scoring_in_length_order_gives_each_example_its_own_logits_in_dataset_order(data):
    spec = get_task("generic")
    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()), do_lower_case=True)
    features = convert_examples_to_features(read_examples(spec, str(data), "train")[:10], tokenizer, 48,
                                            ["negative", "neutral", "positive"], "classification")
    lengths = [len(feature.input_ids) for feature in features]
    assert sorted(lengths) != lengths  # else length order and file order would coincide
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).eval()
    runtime = Runtime(device=torch.device("cpu"), n_gpu=0, local_rank=-1, rank=0, world_size=1)
    args = SimpleNamespace(per_gpu_eval_batch_size=4)
    logits = run_classifier.predict_logits(args, runtime, model, FeatureDataset(features), desc="test")
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([feature.input_ids]),
                                 attention_mask=torch.tensor([feature.attention_mask]),
                                 token_type_ids=torch.tensor([feature.token_type_ids])).logits
                           for feature in features])  # [10, 3], each example in a batch of its own
    assert logits.shape == (10, 3)
    torch.testing.assert_close(logits, alone, atol=1e-5, rtol=1e-5)


# ---- the feature cache, built once ----------------------------------------------------------------------

WAITING_RUN = """
import logging
import sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
from bert_read_step_to_step.features import load_and_cache_features
from transformers import BertTokenizer
tokenizer = BertTokenizer.from_pretrained(sys.argv[1], do_lower_case=True)
print("ready", flush=True)
load_and_cache_features("generic", sys.argv[2], "train", tokenizer, 48, cache_dir=sys.argv[3])
"""


def flock_waiters():
    """Lines of /proc/locks that are a process waiting for a lock (marked "->")."""
    with open("/proc/locks", encoding="ascii") as f:
        return [line for line in f if "->" in line]


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks to see a waiting lock")
def test_a_run_that_finds_the_cache_being_built_waits_and_reads_it(data, tmp_path):
    """Two runs start on one data folder (reinit_sweep --workers 2): the second must not tokenize again.

    The test plays the first run: it holds the cache folder's lock, starts the second run, waits until that
    run is blocked on the lock, then puts the finished cache file in place and lets go. The second run must
    then load it; without the lock it would have found no cache file and built its own."""
    cache = tmp_path / "cache"
    cache.mkdir()
    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()), do_lower_case=True)
    load_and_cache_features("generic", str(data), "train", tokenizer, 48, cache_dir=str(tmp_path / "elsewhere"))
    [built] = [name for name in os.listdir(tmp_path / "elsewhere") if name.startswith("cached_")]

    with exclusive_lock(str(cache / FEATURES_LOCK_NAME)):
        before = len(flock_waiters())
        second = subprocess.Popen([sys.executable, "-c", WAITING_RUN, str(minilm_dir()), str(data), str(cache)],
                                  cwd=REPO_ROOT, env=one_thread_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        assert second.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(flock_waiters()) <= before:
            assert second.poll() is None, second.stdout.read()  # it must wait, not finish on its own
            assert time.monotonic() < deadline, "the second run never waited for the lock"
            time.sleep(0.05)
        shutil.copy(tmp_path / "elsewhere" / built, cache / built)
    output = second.communicate(timeout=120)[0]
    assert second.returncode == 0, output
    assert "Loading features from cache file" in output and "Creating features" not in output
    assert re.search(r"cached_\S+", output).group(0).endswith(built)
