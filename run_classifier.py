"""Fine-tune BERT on a sentence(-pair) classification or regression task.

Reading path, stops 1 and 8 (README): the path starts at `main` (the bottom of this file), goes through the
library, and comes back here to train and evaluate. The file has the seed's shape, top to bottom:
    parse_args -> set_seed -> train -> evaluate -> predict -> load_and_cache_examples -> load_model -> main
and `main` runs them in the order things happen:
    arguments -> device, distributed, seed -> processor and labels -> config -> tokenizer
    -> checks that training can run (and resume) -> model (`from_pretrained`: the article's step, with
    `--reinit_keys`) -> data (every split the run uses, so a bad line stops it before training)
    -> train -> evaluate -> predict
The run's machinery lives one floor down, in bert_read_step_to_step/, one idea a module:
    runtime.py      device, torchrun ranks, logging, precision, DataParallel/DDP
    model_setup.py  lower-casing, the re-init selectors, the --list_keys table
    batches.py      how long training runs, each epoch's batches, where a resume goes on
    optimization.py parameter groups, optimizer, lr schedule, one optimizer step
    checkpoints.py  TrainState, checkpoint save, the resume check (trajectory) and resume
    run_folder.py   the output_dir lock, the run records, results files
    curves.py       the training curves: train_log.jsonl, TensorBoard event files, loss_curve.png

Example (TNEWS with a Chinese BERT, the original command works verbatim):
    python run_classifier.py --model_type=bert --model_name_or_path=prev_trained_model/bert-base-chinese \\
        --task_name="tnews" --do_train --do_eval --do_lower_case --data_dir=./chineseGLUEdatasets/tnews \\
        --max_seq_length=128 --per_gpu_train_batch_size=16 --per_gpu_eval_batch_size=16 \\
        --learning_rate=2e-5 --num_train_epochs=4.0 --logging_steps=100 --save_steps=100 \\
        --output_dir=./outputs/tnews_output/ --overwrite_output_dir
Re-initializing the top 2 layers and the pooler before fine-tuning (Zhang et al., ICLR 2021):
    ... --reinit_layers 2 --reinit_pooler          (on a 12-layer model the same as
    ... --reinit_keys bert.encoder.layer.10 bert.encoder.layer.11 bert.pooler)
Finding names to pass: ... --list_keys
Other families: --model_type albert or roberta (English RoBERTa; Chinese RoBERTa-wwm is read as BERT). The family
is config.json's model_type (transformers/model_families.py); a --model_type that disagrees is an error.
Zhang et al.'s other stabilizers, alone or with re-init (bert_read_step_to_step/stabilizers.py):
    ... --use_bertadam      ... --mixout 0.7      ... --prior_weight_decay --weight_decay 0.01
After training, OUTPUT_DIR/weight_change.json says how far each layer moved (bert_read_step_to_step/weight_change.py),
and OUTPUT_DIR/loss_curve.png, train_log.jsonl and tensorboard/ (--logging_dir) hold the curves (curves.py).
Inputs of mixed length train faster in batches of similar length: ... --group_by_length
(features.length_bucketed_batches; the same examples each epoch, other batch neighbours, so other numbers).

Training state (model, optimizer, scheduler, grad scaler, RNG states, position in the data) lives in one
`TrainState`; a checkpoint is that state on disk, so `--resume_from_checkpoint` continues exactly.
"""
import argparse
import logging
import math
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from bert_read_step_to_step.batches import batches_to_go, collated, training_plan
from bert_read_step_to_step.allocator import keep_freed_memory
from bert_read_step_to_step.checkpoints import (TRAIN_STATE_NAME, check_same_trajectory, save_checkpoint, save_model,
                                                training_trajectory)
from bert_read_step_to_step.cli_help import DefaultsHelpFormatter
from bert_read_step_to_step.curves import TrainingCurves
from bert_read_step_to_step.features import FeatureDataset, load_and_cache_features, padding_of, unk_report
from bert_read_step_to_step.metrics import compute_metrics
from bert_read_step_to_step.model_setup import (check_vocab_fits, list_keys, lower_case_choice, model_sources,
                                                reinit_layers_meaning, reinit_selectors)
from bert_read_step_to_step.optimization import not_loaded, optimizer_step, stabilizer_priors, start_training
from bert_read_step_to_step.precision import BF16_CHOICES
from bert_read_step_to_step.run_folder import (checkpoint_dirs, is_within, output_dir_lock, output_dir_problem,
                                               start_writing, write_lines, write_results, write_run_record)
from bert_read_step_to_step.runtime import (autocast, barrier, setup_device, setup_logging, setup_precision,
                                            weights_digest, wrap_model)
from bert_read_step_to_step.stabilizers import add_mixout
from bert_read_step_to_step.tasks import (TASKS, add_generic_task_options, find_data_file, generic_task_options,
                                          get_labels, get_task, read_examples)
from bert_read_step_to_step.weight_change import format_report, relative_change, write_report
from transformers.model_families import FAMILIES, choose_family, family_of
from transformers.file_utils import UserError, is_remote_url, run_entry_point, write_atomically

logger = logging.getLogger("run_classifier")

# --model_type names a row of the family table (transformers/model_families.py): config class, classifier class,
# tokenizer, and what --reinit_layers means. config.json's model_type must agree with it; Chinese RoBERTa-wwm
# (BERT's architecture and vocab.txt) is read as BERT under either name, as in the seed.
MODEL_CLASSES = FAMILIES
# What a flag error prints above its one line: argparse's own usage would list all the flags (37 lines).
SHORT_USAGE = ("%(prog)s --model_type TYPE --model_name_or_path PATH --task_name TASK --data_dir DIR "
               "--output_dir DIR --do_train|--do_eval|--do_predict|--list_keys [more: --help lists every flag]")


# ==== arguments ============================================================================================

def parse_args(argv=None):
    # Every --help line shows its default; a default of None or "" is said in words in the help text.
    parser = argparse.ArgumentParser(prog="run_classifier.py", usage=SHORT_USAGE, description=__doc__.split("\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    required = parser.add_argument_group("required")
    required.add_argument("--data_dir", required=True, help="folder with the task's train/dev/test files")
    required.add_argument("--model_type", required=True, help=f"one of {', '.join(MODEL_CLASSES)}")
    required.add_argument("--model_name_or_path", required=True,
                          help="model folder, weights file, URL, or Hub name (bert-base-chinese, org/name)")
    required.add_argument("--task_name", required=True, help=f"one of {', '.join(TASKS)}")
    required.add_argument("--output_dir", required=True, help="where checkpoints, results and the model go")

    p = parser.add_argument_group("model and data")
    p.add_argument("--config_name", default="", help="config path if not the model's own")
    p.add_argument("--tokenizer_name", default="", help="tokenizer path if not the model's own")
    p.add_argument("--cache_dir", default="", help="where downloaded files are cached (Hub names: the hub cache, "
                                                   "default HF_HUB_CACHE)")
    p.add_argument("--revision", default="", help="branch, tag or commit of a Hub name (default: main)")
    p.add_argument("--max_seq_length", default=128, type=int,
                   help="longest input in tokens after WordPiece, [CLS] and [SEP]s included; longer is truncated")
    p.add_argument("--do_lower_case", action="store_true",
                   help="lower-case the input (uncased models); without it the tokenizer's saved setting is "
                        "used, or no lower-casing when it has none")
    p.add_argument("--overwrite_cache", action="store_true", help="rebuild the cached features")
    p.add_argument("--features_cache_dir", default=None, metavar="DIR",
                   help="where the feature cache files go (default: data_dir when writable, else a "
                        "'features' folder in the per-user cache)")

    add_generic_task_options(parser)

    p = parser.add_argument_group("what to do")
    p.add_argument("--do_train", action="store_true", help="fine-tune on the training set")
    p.add_argument("--do_eval", action="store_true", help="evaluate on the dev set")
    p.add_argument("--do_predict", action="store_true", help="predict labels for the test set")
    p.add_argument("--evaluate_during_training", action="store_true", help="evaluate at every logging step")
    p.add_argument("--eval_all_checkpoints", action="store_true",
                   help="evaluate every checkpoint-* folder in output_dir, not only the final model")
    p.add_argument("--list_keys", action="store_true",
                   help="print the model's parameter names and where each would come from, then exit")

    p = parser.add_argument_group("re-initialization")
    p.add_argument("--reinit_keys", nargs="+", default=[], metavar="SEL",
                   help="parameters to re-initialize instead of loading: exact names, module prefixes "
                        "(bert.encoder.layer.5) or globs ('bert.encoder.layer.[45].*'); see --list_keys")
    p.add_argument("--reinit_layers", type=int, default=0, metavar="N", help="re-initialize the top N layers")
    p.add_argument("--reinit_pooler", action="store_true", help="re-initialize the pooler")
    p.add_argument("--reinit_std", type=float, default=None,
                   help="std of the re-init's normal draw; None: the config's initializer_range")

    p = parser.add_argument_group("optimization")
    p.add_argument("--per_gpu_train_batch_size", default=8, type=int, help="training examples per batch per GPU")
    p.add_argument("--per_gpu_eval_batch_size", default=8, type=int, help="examples per batch in eval/predict")
    p.add_argument("--gradient_accumulation_steps", type=int, default=1,
                   help="batches whose gradients are summed before one optimizer step")
    p.add_argument("--learning_rate", default=5e-5, type=float, help="peak AdamW learning rate")
    p.add_argument("--layerwise_lr_decay", default=1.0, type=float, metavar="FACTOR",
                   help="each layer below the top learns FACTOR times slower than the one above (1 = off)")
    p.add_argument("--weight_decay", default=0.0, type=float, help="AdamW weight decay (not on biases, LayerNorm)")
    p.add_argument("--adam_epsilon", default=1e-8, type=float, help="AdamW epsilon")
    p.add_argument("--max_grad_norm", default=1.0, type=float, help="clip the gradient norm to this")
    p.add_argument("--num_train_epochs", default=3.0, type=float, help="passes over the training set")
    p.add_argument("--max_steps", default=-1, type=int, help="if > 0: total optimizer steps (overrides epochs)")
    p.add_argument("--warmup_proportion", default=0.1, type=float, help="share of steps with rising lr")
    p.add_argument("--group_by_length", action="store_true",
                   help="length-bucketed training batches: each batch holds examples of similar length, so "
                        "less padding is computed; the same examples each epoch, batches still shuffled "
                        "(seeded). Changes which examples share a batch, so results differ from plain batches")

    # Zhang et al.'s other remedies for unstable few-sample runs (bert_read_step_to_step/stabilizers.py).
    p = parser.add_argument_group("stabilizers")
    p.add_argument("--use_bertadam", action="store_true",
                   help="the original BERT optimizer: Adam without bias correction (larger early steps)")
    p.add_argument("--mixout", type=float, default=0.0, metavar="P",
                   help="mixout (Lee et al.): in training, each pre-trained Linear weight is swapped for its "
                        "pre-trained value with probability P (0 = off)")
    p.add_argument("--prior_weight_decay", action="store_true",
                   help="--weight_decay pulls pre-trained weights toward their pre-trained values, not toward "
                        "zero (re-initialized and new ones still decay toward zero)")

    p = parser.add_argument_group("run")
    p.add_argument("--logging_steps", type=int, default=50,
                   help="log the mean loss of the last N optimizer steps every N steps, into the log, "
                        "train_log.jsonl and TensorBoard (0 = never, and no curve)")
    p.add_argument("--logging_dir", default=None, metavar="DIR",
                   help="where the TensorBoard event files go (default: output_dir/tensorboard); keep it the "
                        "same on a resume, so TensorBoard shows one run")
    p.add_argument("--save_steps", type=int, default=50, help="save a checkpoint every N steps (0 = never)")
    p.add_argument("--resume_from_checkpoint", default=None, metavar="DIR", help="continue from a checkpoint")
    p.add_argument("--no_cuda", action="store_true", help="run on CPU even where CUDA is available")
    p.add_argument("--overwrite_output_dir", action="store_true", help="write into a non-empty output_dir")
    p.add_argument("--seed", type=int, default=42,
                   help="seeds data order, dropout, the new head and the re-initialized keys")
    p.add_argument("--fp16", action="store_true",
                   help="mixed precision through torch.amp: fp16 with a grad scaler on CUDA, bf16 on CPU")
    p.add_argument("--bf16", nargs="?", const="on", default="off", choices=BF16_CHOICES,
                   help="bf16 autocast (weights stay fp32). --bf16: always; --bf16 auto: only where the hardware "
                        "computes bf16 natively (CPU with avx512_bf16 or AMX, GPU from Ampere on), fp32 elsewhere; "
                        "off by default. On a CPU without native bf16 it is many times slower than fp32")
    p.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", -1)),
                   help="set by torchrun through LOCAL_RANK; -1 means not distributed")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of user errors too (or set BERT_READ_DEBUG=1)")
    args = parser.parse_args(argv)
    check_args(args, parser)
    return args


def check_args(args, parser):
    """Refuse bad combinations before any work is done, naming the flag."""
    if args.model_type.lower() not in MODEL_CLASSES:
        parser.error(f"--model_type {args.model_type!r} is not supported; choose one of {', '.join(MODEL_CLASSES)}")
    args.model_type = args.model_type.lower()
    if args.max_seq_length < 3:
        parser.error(f"--max_seq_length {args.max_seq_length} is too small: [CLS], one token and [SEP] need 3")
    if args.reinit_layers < 0:
        parser.error(f"--reinit_layers must be >= 0, got {args.reinit_layers}")
    if args.gradient_accumulation_steps < 1:
        parser.error("--gradient_accumulation_steps must be >= 1")
    # Every number is checked here, before any file is created: a bad one found later (after the model has
    # loaded) would leave a half-made output_dir that the rerun then refuses. `not x > 0` also refuses NaN.
    for flag in ("per_gpu_train_batch_size", "per_gpu_eval_batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    for flag in ("learning_rate", "num_train_epochs", "adam_epsilon", "max_grad_norm"):
        if not (getattr(args, flag) > 0 and math.isfinite(getattr(args, flag))):
            parser.error(f"--{flag} must be a number > 0, got {getattr(args, flag)}")
    if args.reinit_std is not None and not (args.reinit_std > 0 and math.isfinite(args.reinit_std)):
        parser.error(f"--reinit_std must be a number > 0, got {args.reinit_std}")
    if not 0.0 <= args.weight_decay < math.inf:
        parser.error(f"--weight_decay must be >= 0, got {args.weight_decay}")
    if not 0.0 <= args.warmup_proportion <= 1.0:
        parser.error(f"--warmup_proportion must be in [0, 1], got {args.warmup_proportion}")
    if args.max_steps == 0 or args.max_steps < -1:
        parser.error(f"--max_steps must be >= 1, or -1 to train --num_train_epochs epochs; got {args.max_steps}")
    for flag in ("logging_steps", "save_steps"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag} must be >= 0 (0 = never), got {getattr(args, flag)}")
    if not 0 <= args.seed < 2 ** 32:
        parser.error(f"--seed must be in [0, 2**32), got {args.seed}")  # numpy's seed range
    if args.features_cache_dir and os.path.exists(args.features_cache_dir) and \
            not os.path.isdir(args.features_cache_dir):
        parser.error(f"--features_cache_dir {args.features_cache_dir} is a file, not a folder")
    if not 0.0 < args.layerwise_lr_decay <= 1.0:
        parser.error(f"--layerwise_lr_decay must be in (0, 1], got {args.layerwise_lr_decay}")
    if not 0.0 <= args.mixout < 1.0:
        parser.error(f"--mixout must be in [0, 1), got {args.mixout}")
    if args.prior_weight_decay and not args.weight_decay > 0:
        parser.error("--prior_weight_decay changes what --weight_decay pulls toward: give --weight_decay > 0 too")
    if args.fp16 and args.bf16 != "off":
        parser.error(f"--fp16 and --bf16 {args.bf16} both given: choose one (on CPU --fp16 means bf16 too)")
    if not (args.do_train or args.do_eval or args.do_predict or args.list_keys):
        parser.error("nothing to do: give --do_train, --do_eval, --do_predict or --list_keys")
    if args.resume_from_checkpoint and not os.path.isfile(os.path.join(args.resume_from_checkpoint, TRAIN_STATE_NAME)):
        parser.error(f"--resume_from_checkpoint {args.resume_from_checkpoint}: no {TRAIN_STATE_NAME} there; "
                     "pass a checkpoint-N folder written by --save_steps")
    problem = output_dir_problem(args)
    if problem:
        parser.error(problem)


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


# ==== train =================================================================================================

@dataclass
class LossLog:
    """Loss sums over this run only: a resumed run does not know the losses before its checkpoint."""
    total: float = 0.0  # sum of the per-step losses of this run
    steps: int = 0  # optimizer steps taken by this run
    grad_norms: float = 0.0  # sum of the per-step gradient norms (before clipping) of this run
    norm_steps: int = 0  # the steps that had a norm: fp16's scaler skips steps with inf gradients
    logged_total: float = 0.0  # `total` at the last log line
    logged_steps: int = 0  # `steps` at the last log line
    logged_grad_norms: float = 0.0  # `grad_norms` at the last log line
    logged_norm_steps: int = 0  # `norm_steps` at the last log line

    def add(self, step_loss, grad_norm):
        self.total, self.steps = self.total + step_loss, self.steps + 1
        if grad_norm is not None:
            self.grad_norms, self.norm_steps = self.grad_norms + grad_norm, self.norm_steps + 1

    def mean_since_start(self):
        return self.total / max(1, self.steps)

    def window(self):
        """(mean loss, mean gradient norm, how many steps) of the steps since the last log line, and start a new
        window. A window of steps the scaler all skipped has no gradient norm (None)."""
        steps, norm_steps = self.steps - self.logged_steps, self.norm_steps - self.logged_norm_steps
        loss = (self.total - self.logged_total) / max(1, steps)
        grad_norm = (self.grad_norms - self.logged_grad_norms) / norm_steps if norm_steps else None
        self.logged_total, self.logged_steps = self.total, self.steps
        self.logged_grad_norms, self.logged_norm_steps = self.grad_norms, self.norm_steps
        return loss, grad_norm, steps


def train(args, runtime, train_dataset, model, tokenizer, dev_dataset, plan, trajectory, pretrained, curves):
    """The training loop: accumulate, clip, step, schedule; log, evaluate and checkpoint as asked.

    plan (batches.TrainingPlan) says how many steps; dev_dataset is only used with --evaluate_during_training
    (None otherwise); `trajectory` goes into every checkpoint, so that a resume can be checked against it;
    `pretrained` ({name: w0}, see optimization.stabilizer_priors) is what --mixout and --prior_weight_decay
    pull toward. Each logging step and evaluation also goes to `curves` (curves.TrainingCurves: train_log.jsonl
    and TensorBoard), continuing the interrupted run's curve on a resume. Returns (global step, mean loss of
    this run).
    """
    model.to(runtime.device)
    pretrained = {name: tensor.to(runtime.device) for name, tensor in pretrained.items()}
    if args.mixout:
        mixed = add_mixout(model, pretrained, args.mixout)
        logger.info("mixout p=%g on %d pre-trained Linear layers", args.mixout, len(mixed))
    model, core = wrap_model(model, runtime)
    state = start_training(args, runtime, model, core, plan, pretrained)  # a checkpoints.TrainState
    logger.info("***** Running training *****")
    logger.info("  examples %d, epochs %d, batch size per process %d, processes %d, accumulation %d, steps %d",
                len(train_dataset), plan.num_epochs, plan.batch_size, runtime.world_size,
                args.gradient_accumulation_steps, plan.total_steps)
    if state.global_step:
        logger.info("  resuming at step %d (epoch %d, batch %d)", state.global_step, state.epoch,
                    state.batches_done_in_epoch)
    curves.start(state.global_step)

    losses, step_loss = LossLog(), 0.0  # step_loss: the loss of the accumulation group under way
    model.train()
    model.zero_grad(set_to_none=True)
    while state.global_step < plan.total_steps and state.epoch < plan.num_epochs:
        batches, first = batches_to_go(args, runtime, plan, state, train_dataset)
        bar = tqdm(collated(train_dataset, batches[first:]), desc=f"Epoch {state.epoch + 1}/{plan.num_epochs}",
                   disable=not runtime.is_main, initial=first, total=len(batches))
        for batch in bar:
            batch = {name: tensor.to(runtime.device) for name, tensor in batch.items()}
            with autocast(runtime):
                loss = model(**batch).loss
            if runtime.n_gpu > 1:
                loss = loss.mean()  # DataParallel returns one loss per GPU
            loss = loss / args.gradient_accumulation_steps  # so the accumulated gradient is a mean, not a sum
            (state.scaler.scale(loss) if state.scaler else loss).backward()
            step_loss += loss.item()
            state.batches_done_in_epoch += 1
            if state.batches_done_in_epoch % args.gradient_accumulation_steps:
                continue

            grad_norm = optimizer_step(state, args, step_loss)  # a non-finite loss or update stops the run (exit 3)
            losses.add(step_loss, grad_norm)  # grad_norm None: a step fp16's scaler skipped
            step_loss = 0.0
            bar.set_postfix_str(f"loss {losses.mean_since_start():.4f} (mean since start)")
            if args.logging_steps > 0 and state.global_step % args.logging_steps == 0:
                mean, grad_norm, steps = losses.window()  # fewer than logging_steps right after a resume
                lr = state.scheduler.get_last_lr()[0]
                logger.info("step %d: lr %.3g, loss %.4f (mean of the last %d steps)", state.global_step, lr, mean,
                            steps)
                # epoch: fractional, the epochs done so far (each epoch has the same number of steps)
                curves.log_train(state.global_step, state.global_step / plan.steps_per_epoch, mean, lr, grad_norm)
                if args.evaluate_during_training:
                    # Rank 0 scores the whole dev set with the weights every rank holds; the others wait.
                    if runtime.is_main:
                        curves.log_eval(state.global_step, evaluate(args, runtime, core, dev_dataset,
                                                                    prefix=f"step-{state.global_step}"))
                        model.train()
                    barrier(runtime)
            if args.save_steps > 0 and state.global_step % args.save_steps == 0:
                save_checkpoint(state, tokenizer, args, runtime, trajectory)
        bar.close()
        if state.global_step < plan.total_steps:
            state.epoch += 1
            state.batches_done_in_epoch = 0
    return state.global_step, losses.mean_since_start()


# ==== evaluate and predict =================================================================================

def evaluate(args, runtime, model, dataset, prefix="", results_dir=None):
    """Score the dev set's features; write eval_results.json and eval_results.txt into results_dir."""
    spec = get_task(args.task_name, **generic_task_options(args))
    logits = predict_logits(args, runtime, model, dataset, desc=f"Evaluating {prefix}".strip())
    labels = torch.tensor([feature.label for feature in dataset.features])
    results = compute_metrics(spec.metric, to_predictions(logits, spec.output_mode).numpy(), labels.numpy())
    write_results(results_dir or args.output_dir, "eval", prefix, len(dataset), results)
    return results


def predict_logits(args, runtime, model, dataset, desc):
    """[N, C] logits for a dataset, in its order.

    The examples are scored shortest first, so that each batch holds examples of similar length and little
    padding is computed; the logits are then put back in the dataset's order. In eval mode an example's
    logits do not depend on what shares its batch (padding is masked out), so the order only changes the
    cost, and the last digits that a matmul of another shape rounds differently.
    """
    size = args.per_gpu_eval_batch_size * max(1, runtime.n_gpu)
    by_length = sorted(range(len(dataset)), key=lambda index: len(dataset.features[index].input_ids))
    batches = [by_length[start:start + size] for start in range(0, len(dataset), size)]
    model.to(runtime.device).eval()
    logits = torch.empty(len(dataset), model.config.num_labels)  # [N, C]
    # The bar wraps the zip, not one of its inputs: zip stops when its first input runs out without asking
    # the second for its end, and tqdm counts an item only when asked for the next one, so a bar inside the
    # zip stopped at 7/8.
    with torch.no_grad():
        for indexes, batch in tqdm(zip(batches, collated(dataset, batches)), desc=desc, total=len(batches),
                                   disable=not runtime.is_main):
            batch = {name: tensor.to(runtime.device) for name, tensor in batch.items() if name != "labels"}
            with autocast(runtime):
                logits[indexes] = model(**batch).logits.float().cpu()  # [b, C] into their rows
    return logits


def to_predictions(logits, output_mode):
    return logits.squeeze(-1) if output_mode == "regression" else logits.argmax(dim=-1)


def predict(args, runtime, model, dataset):
    """Write test_predictions.tsv: the example id and its predicted label name (or score). Where the test
    file carries labels (TNEWS's does; the demo's test.tsv has a label column), also score the predictions
    into test_results.json and test_results.txt, like eval_results.

    dataset holds the test set's features, one per example of the test file, in the file's order.
    """
    spec = get_task(args.task_name, **generic_task_options(args))
    label_list = get_labels(spec, args.data_dir)
    examples = read_examples(spec, args.data_dir, "test")  # for their guids
    predictions = to_predictions(predict_logits(args, runtime, model, dataset, desc="Predicting"), spec.output_mode)
    path = os.path.join(args.output_dir, "test_predictions.tsv")
    rows = [f"{example.guid}\t{value if spec.output_mode == 'regression' else label_list[value]}"
            for example, value in zip(examples, predictions.tolist())]
    write_atomically(path, lambda temp: write_lines(temp, ["guid\tprediction"] + rows))
    logger.info("Wrote %d predictions to %s", len(examples), path)
    if all(example.label is not None for example in examples):
        labels = np.array([feature.label for feature in dataset.features])
        prefix = "final" if args.do_train else os.path.basename(args.model_name_or_path.rstrip("/"))
        write_results(args.output_dir, "test", prefix, len(examples),
                      compute_metrics(spec.metric, predictions.numpy(), labels))
    return path


# ==== data and model ========================================================================================

def load_and_cache_examples(args, runtime, tokenizer, split):
    """Features of one split ("train", "dev" or "test"), from the cache file or built and cached
    (bert_read_step_to_step/features.py: InputExample -> InputFeatures, the first examples logged).

    Under torchrun every rank reads the training set: rank 0 builds the cache file first while the others
    wait at a barrier, then they read it. Dev and test are read by rank 0 alone (it alone evaluates and
    predicts), so there is no barrier for them: one that only rank 0 reached would wait forever.
    """
    every_rank = split == "train"
    if every_rank and runtime.rank != 0:
        barrier(runtime)
    features = load_and_cache_features(args.task_name, args.data_dir, split, tokenizer, args.max_seq_length,
                                       overwrite_cache=args.overwrite_cache, cache_dir=args.features_cache_dir,
                                       logger=logger, **generic_task_options(args))
    if every_rank and runtime.rank == 0:
        barrier(runtime)
    return FeatureDataset(features, padding_of(tokenizer))


def load_model(args, model_path, config, labels):
    """The article's step: build the model and fill it from the checkpoint, re-initializing what was chosen.

    labels: the task's label names (None for regression). The head gets one row per name, and a head trained
    elsewhere has its rows put in this order by its own id2label (see `match_head_to_labels`); saving writes
    the names into config.json.
    """
    meaning = reinit_layers_meaning(args, config)  # ALBERT's shared weights: more depths change than the top N
    if meaning:
        logger.warning(meaning)
    model, info = family_of(config).model_class.from_pretrained(
        model_path, config=config, output_loading_info=True,
        reinit_keys=reinit_selectors(args, config), reinit_std=args.reinit_std, reinit_seed=args.seed,
        cache_dir=args.cache_dir or None, labels=labels)
    return model, info


# ==== main =================================================================================================

def main(argv=None):
    args = parse_args(argv)
    runtime = setup_device(args)
    setup_logging(args, runtime)
    logger.info(keep_freed_memory())  # big tensors reused step after step instead of fresh pages (allocator.py)
    runtime = setup_precision(args, runtime)
    set_seed(args.seed)

    # Processor and labels: what the task's files hold and what the classifier's outputs are called.
    # A classification head gets one row per label name; regression has one output and no names.
    spec = get_task(args.task_name, **generic_task_options(args))
    label_list = get_labels(spec, args.data_dir)
    head_labels = label_list if spec.output_mode == "classification" else None
    head_size = {"num_labels": 1} if head_labels is None else {}

    # Config, tokenizer, model. The config keeps the checkpoint's own label names: loading the model
    # compares them with the task's.
    # A Hub name (bert-base-chinese) becomes its snapshot folder here, once (transformers/hub.py).
    sources = model_sources(args)
    config_source = sources.config
    family = choose_family(args.model_type, sources.model, args.config_name and sources.config,
                           args.cache_dir or None)
    logger.info("Model family %s: %s, tokenizer %s; --reinit_layers N selects %s", family.name,
                family.model_class.__name__, family.tokenizer_note, family.reinit_note)
    config = family.config_class.from_pretrained(config_source, cache_dir=args.cache_dir or None,
                                                 finetuning_task=spec.name, **head_size)
    if config.max_sequence_length is not None and args.max_seq_length > config.max_sequence_length:
        raise UserError(f"--max_seq_length {args.max_seq_length} exceeds the longest input the model's position "
                        f"table takes ({config.max_sequence_length}, from max_position_embeddings)")
    if args.list_keys:
        list_keys(*load_model(args, sources.model, config, head_labels))
        return None
    tokenizer_path = sources.tokenizer
    tokenizer = family.load_tokenizer(tokenizer_path, lower_case_choice(args, tokenizer_path, family),
                                      args.cache_dir or None)
    check_vocab_fits(tokenizer, config, config_source)

    # Still nothing written, nor any example shown: check that training can run at all, and that a resume
    # continues the checkpoint's training rather than starting another one from its middle. A flag error is
    # then the last line a run prints, not one after the first examples.
    plan, trajectory, train_examples = None, None, None
    if args.do_train:
        train_examples = read_examples(spec, args.data_dir, "train")
        plan = training_plan(args, runtime, len(train_examples), find_data_file(spec, args.data_dir, "train"))
        trajectory = training_trajectory(args, runtime, config, label_list, sources)
        if args.resume_from_checkpoint:
            check_same_trajectory(args, trajectory)
    barrier(runtime)  # every rank reads the same checkpoint; nothing is written yet
    model, info = load_model(args, sources.model, config, head_labels)  # a bad --reinit_keys stops the run here

    # Data: every split this run uses is read and converted now, so that a bad line in dev.tsv stops the run
    # here rather than after hours of training. Only rank 0 evaluates and predicts.
    train_dataset = load_and_cache_examples(args, runtime, tokenizer, "train") if args.do_train else None
    if args.do_train and runtime.is_main:  # a WARNING when the vocabulary does not cover the text
        unk_report(train_examples, tokenizer, logger)
    wants_dev = (args.do_eval or args.evaluate_during_training) and runtime.is_main
    dev_dataset = load_and_cache_examples(args, runtime, tokenizer, "dev") if wants_dev else None
    wants_test = args.do_predict and runtime.is_main
    test_dataset = load_and_cache_examples(args, runtime, tokenizer, "test") if wants_test else None
    # The curves (bert_read_step_to_step/curves.py) are closed however the run ends; loss_curve.png is drawn
    # when it went through. Rank 0 alone writes them.
    # A resume continues output_dir's train_log.jsonl only from one of output_dir's own checkpoints.
    own_history = not args.resume_from_checkpoint or is_within(args.resume_from_checkpoint, args.output_dir)
    with output_dir_lock(args, runtime), TrainingCurves.for_run(args, runtime, own_history) as curves:
        return train_evaluate_predict(args, runtime, model, info, tokenizer, train_dataset, dev_dataset, test_dataset,
                                      plan, trajectory, curves)


def train_evaluate_predict(args, runtime, model, info, tokenizer, train_dataset, dev_dataset, test_dataset, plan,
                           trajectory, curves):
    """The part of the run that writes into output_dir, under its lock: train, evaluate, predict. Training and
    the final evaluation also go to `curves` (train_log.jsonl, TensorBoard, loss_curve.png)."""
    start_writing(args, runtime, model.config, info, plan)

    results = {}
    if args.do_train:
        # The weights training starts from (loaded, re-initialized or new): weight_change.json measures from
        # them, and --mixout / --prior_weight_decay pull toward the loaded ones.
        start = {name: param.detach().clone() for name, param in model.named_parameters()}
        global_step, mean_loss = train(args, runtime, train_dataset, model, tokenizer, dev_dataset, plan, trajectory,
                                       stabilizer_priors(args, start, info), curves)
        logger.info("global_step = %d, loss %.4f (mean over this run's steps)", global_step, mean_loss)
        if runtime.distributed:
            # Every rank ends with the same weights (DDP averages gradients); the log line lets a reader check.
            logger.warning("rank %d final weights digest %s", runtime.rank, weights_digest(model))
        if runtime.is_main:
            save_model(model, tokenizer, args.output_dir, global_step)
            write_run_record(args, runtime, model.config, info, plan)
            logger.info("Saved model to %s", args.output_dir)
            curves.log_weight_change(global_step, write_weight_change(args, start, model, info))
        barrier(runtime)

    if args.do_eval and runtime.is_main:
        model_dirs = [args.output_dir] if args.do_train else [args.model_name_or_path]
        if args.eval_all_checkpoints:
            model_dirs += checkpoint_dirs(args.output_dir)
        for model_dir in model_dirs:
            evaluated = model if model_dir == args.model_name_or_path else type(model).from_pretrained(model_dir)
            prefix = os.path.basename(model_dir.rstrip("/")) if model_dir != args.output_dir else "final"
            inside = not is_remote_url(model_dir) and is_within(model_dir, args.output_dir)
            results_dir = model_dir if inside else args.output_dir
            results[prefix] = evaluate(args, runtime, evaluated, dev_dataset, prefix=prefix, results_dir=results_dir)
            if args.do_train and prefix == "final":
                curves.log_eval(global_step, results[prefix])

    if args.do_predict and runtime.is_main:
        predict(args, runtime, model, test_dataset)
    if runtime.distributed:
        dist.destroy_process_group()
    return results


def write_weight_change(args, start, model, info):
    """OUTPUT_DIR/weight_change.json (+ .png with matplotlib): how far each module moved from where training
    started, relative to its size (bert_read_step_to_step/weight_change.py). Under a resume, "where training
    started" is the original start (the model as loaded and re-initialized), not the checkpoint."""
    after = {name: param.detach().cpu() for name, param in model.named_parameters()}
    report = relative_change(start, after, fresh=not_loaded(info))
    logger.info("Relative weight change per module (%s):\n%s", os.path.join(args.output_dir, "weight_change.json"),
                format_report(report))
    message = write_report(args.output_dir, report, f"What fine-tuning moved: {args.output_dir}")
    if os.path.isfile(os.path.join(args.output_dir, "weight_change.png")):
        logger.info(message)  # a missing matplotlib has been logged as a WARNING already
    return report


if __name__ == "__main__":
    run_entry_point(main, "run_classifier.py")
