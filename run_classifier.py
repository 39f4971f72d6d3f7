"""Fine-tune BERT on a sentence(-pair) classification or regression task.

Reading path, stops 1 and 8 (README): the path starts here (main, arguments), goes through the library, and
comes back here to train and evaluate. Top to bottom, this file is the order things happen:
    main -> arguments -> device, distributed, seed -> processor and labels -> config -> tokenizer
    -> data (every split the run uses, so a bad line stops it before training)
    -> model (`from_pretrained`: the article's step, with `--reinit_keys`) -> train -> evaluate -> predict

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
After training, OUTPUT_DIR/weight_change.json says how far each layer moved (bert_read_step_to_step/weight_change.py).
Inputs of mixed length train faster in batches of similar length: ... --group_by_length
(features.length_bucketed_batches; the same examples each epoch, other batch neighbours, so other numbers).

Training state (model, optimizer, scheduler, grad scaler, RNG states, position in the data) lives in one
`TrainState`; a checkpoint is that state on disk, so `--resume_from_checkpoint` continues exactly.
"""
import argparse
import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import logging
import math
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from bert_read_step_to_step.cli_help import DefaultsHelpFormatter
from bert_read_step_to_step.features import (FeatureDataset, collate_features, file_fingerprint,
                                             length_bucketed_batches, load_and_cache_features, padding_of,
                                             unk_report)
from bert_read_step_to_step.metrics import compute_metrics
from bert_read_step_to_step.precision import (BF16_CHOICES, autocast as precision_autocast, bf16_support,
                                              choose_precision, precision_notes)
from bert_read_step_to_step.stabilizers import DecoupledAdam, add_mixout
from bert_read_step_to_step.tasks import (TASKS, add_generic_task_options, find_data_file, generic_task_options,
                                          get_labels, get_task, read_examples)
from bert_read_step_to_step.weight_change import format_report, relative_change, write_report
from transformers.model_families import FAMILIES, choose_family, family_of
from transformers.file_utils import (UserError, is_remote_url, run_entry_point, write_atomically,
                                     write_folder_atomically, write_json_atomically)
from transformers.modeling_utils import MISSING_WORDS, REINIT_WORDS, UNUSED_WORDS

logger = logging.getLogger("run_classifier")

# --model_type names a row of the family table (transformers/model_families.py): config class, classifier class,
# tokenizer, and what --reinit_layers means. config.json's model_type must agree with it; Chinese RoBERTa-wwm
# (BERT's architecture and vocab.txt) is read as BERT under either name, as in the seed.
MODEL_CLASSES = FAMILIES
TRAIN_STATE_NAME = "training_state.pt"
ARGS_NAME = "training_args.json"
REINIT_RECORD_NAME = "reinit_keys.json"
LOCK_NAME = "run.lock"


# ==== arguments ============================================================================================

def parse_args(argv=None):
    # Every --help line shows its default; a default of None or "" is said in words in the help text.
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=DefaultsHelpFormatter)
    required = parser.add_argument_group("required")
    required.add_argument("--data_dir", required=True, help="folder with the task's train/dev/test files")
    required.add_argument("--model_type", required=True, help=f"one of {', '.join(MODEL_CLASSES)}")
    required.add_argument("--model_name_or_path", required=True, help="model folder, weights file or URL")
    required.add_argument("--task_name", required=True, help=f"one of {', '.join(TASKS)}")
    required.add_argument("--output_dir", required=True, help="where checkpoints, results and the model go")

    p = parser.add_argument_group("model and data")
    p.add_argument("--config_name", default="", help="config path if not the model's own")
    p.add_argument("--tokenizer_name", default="", help="tokenizer path if not the model's own")
    p.add_argument("--cache_dir", default="", help="where downloaded files are cached")
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
                   help="log the mean loss of the last N optimizer steps every N steps (0 = never)")
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
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        parser.error(f"--output_dir {args.output_dir} is a file, not a folder")
    # The lock file of an earlier run does not make a folder "not empty": it holds no result.
    existing = os.path.isdir(args.output_dir) and set(os.listdir(args.output_dir)) - {LOCK_NAME}
    if args.do_train and existing and not args.overwrite_output_dir and not args.resume_from_checkpoint:
        parser.error(f"--output_dir {args.output_dir} exists and is not empty; use --overwrite_output_dir "
                     "to write into it, or --resume_from_checkpoint to continue a run")


# ==== device, distributed, seed ===========================================================================

@dataclass(frozen=True)
class Runtime:
    """Where this process runs: fixed at start-up, then passed to the functions that need it (kept out of
    `args`, which holds only what the user asked for)."""
    device: torch.device
    n_gpu: int  # GPUs this one process drives: with several, DataParallel splits each batch over them
    local_rank: int  # -1: not under torchrun
    rank: int
    world_size: int
    precision: str = "fp32"  # "fp32", "bf16" or "fp16": from --fp16/--bf16 and the hardware (setup_precision)

    @property
    def is_main(self):
        """Rank 0 writes files, evaluates and predicts; the other ranks only train."""
        return self.rank == 0

    @property
    def distributed(self):
        return self.local_rank != -1


def setup_device(args):
    """The Runtime of this process. Under torchrun, one process per device."""
    cuda = torch.cuda.is_available() and not args.no_cuda
    if args.local_rank == -1:
        return Runtime(device=torch.device("cuda" if cuda else "cpu"),
                       n_gpu=torch.cuda.device_count() if cuda else 0, local_rank=-1, rank=0, world_size=1)
    if cuda:
        torch.cuda.set_device(args.local_rank)
    # NCCL only runs between GPUs; gloo runs on CPU, which is how the tests run two ranks.
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Runtime(device=torch.device("cuda", args.local_rank) if cuda else torch.device("cpu"),
                   n_gpu=1 if cuda else 0, local_rank=args.local_rank, rank=dist.get_rank(),
                   world_size=dist.get_world_size())


def barrier(runtime):
    if runtime.distributed:
        dist.barrier()


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def setup_logging(args, runtime):
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
                        datefmt="%m/%d/%Y %H:%M:%S",
                        level=logging.INFO if runtime.is_main else logging.WARNING)
    logger.warning("rank %d of %d, device %s, n_gpu %d, fp16 %s, bf16 %s", runtime.rank, runtime.world_size,
                   runtime.device, runtime.n_gpu, args.fp16, args.bf16)


def setup_precision(args, runtime):
    """The runtime with its precision ("fp32", "bf16" or "fp16") chosen from --fp16/--bf16 and what the device
    can do, logged next to the thread count: bf16 is a speed-up only on hardware that computes it natively."""
    support = bf16_support(runtime.device.type)
    precision = choose_precision(args.fp16, args.bf16, support)
    logger.info("torch threads %d; %s; training and evaluating in %s", torch.get_num_threads(),
                support.description, precision)
    for level, message in precision_notes(precision, args.bf16, support):
        logger.log(level, message)
    return dataclasses.replace(runtime, precision=precision)


# ==== processor and labels, config, tokenizer, model ======================================================

def lower_case_choice(args, tokenizer_path, family):
    """--do_lower_case wins; else the tokenizer's saved choice; else, for BERT, no lower-casing (the original
    default), and for the other families their tokenizer's own default (ALBERT's SentencePiece models are
    uncased; RoBERTa's byte-level BPE is cased and never lower-cases)."""
    if args.do_lower_case:
        return True
    config_file = os.path.join(tokenizer_path, "tokenizer_config.json")
    if os.path.isfile(config_file) or family.name != "bert":
        return None  # from_pretrained reads it, or knows its family's default
    return False


def reinit_selectors(args, config):
    """--reinit_keys as given, plus what --reinit_layers/--reinit_pooler mean for this config's family."""
    layer_rule = family_of(config).reinit_layer_selectors
    return list(args.reinit_keys) + layer_rule(config, args.reinit_layers, args.reinit_pooler)


def load_model(args, config, labels):
    """The article's step: build the model and fill it from the checkpoint, re-initializing what was chosen.

    labels: the task's label names (None for regression). The head gets one row per name, and a head trained
    elsewhere has its rows put in this order by its own id2label (see `match_head_to_labels`); saving writes
    the names into config.json.
    """
    model, info = family_of(config).model_class.from_pretrained(
        args.model_name_or_path, config=config, output_loading_info=True,
        reinit_keys=reinit_selectors(args, config), reinit_std=args.reinit_std, reinit_seed=args.seed,
        cache_dir=args.cache_dir or None, labels=labels)
    return model, info


def check_vocab_fits(tokenizer, config, config_source):
    """A token id past the embedding table would crash with IndexError only when that token shows up."""
    if len(tokenizer.ids_to_tokens) > config.vocab_size:
        raise UserError(f"{tokenizer.vocab_file}: the vocabulary has {len(tokenizer.ids_to_tokens)} tokens, but "
                         f"the model's embedding table has vocab_size {config.vocab_size} rows ({config_source}); "
                         "use the tokenizer the model was trained with (--tokenizer_name)")


def list_keys(args, config, labels):
    """Print every parameter with its shape and where it would come from under the given flags."""
    model, info = load_model(args, config, labels)
    # The loading report's words (format_loading_report), so the two outputs can be read side by side.
    reinit, missing = set(info.reinit_keys), set(info.missing_keys) | set(info.mismatched_keys)
    print(f"{'parameter':60s} {'shape':>14s}  source")
    for name, tensor in model.named_parameters():
        source = REINIT_WORDS if name in reinit else MISSING_WORDS if name in missing else "loaded from checkpoint"
        print(f"{name:60s} {str(list(tensor.shape)):>14s}  {source}")
    had = [key for key in info.unexpected_keys if key in reinit]
    print(f"\n{len(info.reinit_keys)} {REINIT_WORDS}, {len(missing)} {MISSING_WORDS}, "
          f"{len(info.unexpected_keys) - len(had)} {UNUSED_WORDS}")
    if had:
        print(f"(the {len(had)} re-initialized keys the checkpoint had are also in unexpected_keys: "
              f"it had them, we did not use them)")


# ==== output_dir: one run owns it, and records what it did ===============================================

@contextlib.contextmanager
def output_dir_lock(args, runtime):
    """Hold output_dir/run.lock for the whole run, so that a second run into the same folder stops at once
    instead of mixing its model, checkpoints and arguments with ours.

    The lock is an flock, which the kernel drops when the process dies, so a killed run never blocks the
    next. Its file says who holds it (pid, host, start time); a run that finds that text there after
    taking the lock knows the previous holder died without cleaning up, says so, and takes over. Under
    torchrun rank 0 holds it for all ranks.
    """
    if not runtime.is_main:
        yield
        return
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, LOCK_NAME)
    with open(path, "a+", encoding="utf-8") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "a run that has not written its details yet"
            raise UserError(f"--output_dir {args.output_dir} is in use by another run ({holder}, see {path}); "
                            "wait for it to end, or choose another --output_dir") from None
        lock_file.seek(0)
        previous = lock_file.read().strip()
        if previous:
            logger.warning("%s: the run that held it (%s) ended without releasing it; taking it over", path,
                           previous)
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
                        f"{time.strftime('%Y-%m-%d %H:%M:%S %z')}\n")
        lock_file.flush()
        try:
            yield
        finally:
            # Emptied, not removed: removing it would let a run that opened the old file lock that one
            # while a third run creates and locks a new one.
            lock_file.truncate(0)
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def write_run_record(args, runtime, config, info):
    """Every argument (and for training, the resolved reinit list), so a result can be traced to its settings.

    A training run writes training_args.json and reinit_keys.json. An evaluation- or prediction-only run
    writes eval_args.json / predict_args.json instead, so that evaluating a trained folder in place leaves
    the record of how it was trained as it was.
    """
    loading = {"missing_keys": info.missing_keys, "unexpected_keys": info.unexpected_keys}
    if not args.do_train:
        for name in (["eval_args.json"] if args.do_eval else []) + (["predict_args.json"] if args.do_predict else []):
            write_json_atomically(os.path.join(args.output_dir, name), {**args_to_dict(args, runtime), "loading": loading},
                                  sort_keys=True)
        return
    # The std actually drawn with: --reinit_std, or the config's initializer_range when the flag is not given.
    std = args.reinit_std if args.reinit_std is not None else config.initializer_range
    record = {"selectors": reinit_selectors(args, config), "reinit_std": std,
              "reinit_seed": args.seed, "resolved_keys": info.reinit_keys, **loading}
    write_json_atomically(os.path.join(args.output_dir, REINIT_RECORD_NAME), record)
    write_json_atomically(os.path.join(args.output_dir, ARGS_NAME), args_to_dict(args, runtime), sort_keys=True)


def args_to_dict(args, runtime):
    """What training_args.json records: every argument, and the precision the run actually used."""
    return {**vars(args), "precision": runtime.precision}


def is_within(path, folder):
    """True when `path` is `folder` or lies inside it, by path logic: /x/Rx1 is not inside /x/Rx."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


# ==== data ==================================================================================================

def load_features(args, runtime, tokenizer, split):
    """Features of one split.

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


def epoch_batches(num_examples, batch_size, epoch, seed, rank=0, world_size=1, lengths=None):
    """The batches of one epoch as lists of example indexes, for this rank.

    The order depends only on (seed, epoch), not on any RNG state, so a resumed run can skip to the same
    place: batch k of epoch e is the same whether or not the run was stopped in between. Each rank takes
    every world_size-th example of the shuffled order, and all ranks get the same number of batches.
    lengths (--group_by_length): each example's length in tokens; then this rank's examples are grouped
    into batches of similar length (features.length_bucketed_batches): the same examples, the same number
    of batches, less padding.
    """
    generator = torch.Generator()
    generator.manual_seed(seed * 1000 + epoch)
    order = torch.randperm(num_examples, generator=generator).tolist()
    per_rank = num_examples // world_size
    mine = order[rank::world_size][:per_rank]
    if lengths is not None:
        return length_bucketed_batches(mine, lengths, batch_size, generator)
    return [mine[start:start + batch_size] for start in range(0, len(mine), batch_size)]


def collated(dataset, batches):
    """Yield each batch of indexes as padded tensors. A plain loop rather than a DataLoader: a DataLoader
    draws a seed from the global RNG each time it starts iterating, which would make the dropout masks of
    a resumed run differ from those of an uninterrupted one."""
    for indexes in batches:
        yield collate_features([dataset[index] for index in indexes], padding=dataset.padding)


# ==== train =================================================================================================

@dataclass
class TrainState:
    """Everything that changes while training; a checkpoint saves exactly this, plus the tokenizer."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: Optional[torch.amp.GradScaler]
    global_step: int = 0  # optimizer steps taken
    epoch: int = 0
    batches_done_in_epoch: int = 0  # batches of `epoch` already consumed (a multiple of accumulation steps)


@dataclass
class TrainingPlan:
    """How long training runs, worked out from the data size before anything is written."""
    batch_size: int  # per process (with DataParallel, over all of its GPUs)
    steps_per_epoch: int
    total_steps: int
    num_epochs: int


def training_plan(args, runtime, num_examples):
    """Steps per epoch and in all; a UserError when the flags give no optimizer step at all."""
    # With several GPUs in one process, DataParallel splits each batch over them: the batch is per GPU.
    batch_size = args.per_gpu_train_batch_size * max(1, runtime.n_gpu)
    batches_per_epoch = len(epoch_batches(num_examples, batch_size, 0, args.seed, runtime.rank, runtime.world_size))
    steps_per_epoch = batches_per_epoch // args.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise UserError(f"{num_examples} training examples give no full optimizer step with batch size "
                        f"{batch_size} x accumulation {args.gradient_accumulation_steps}"
                        + (f" x {runtime.world_size} processes" if runtime.world_size > 1 else ""))
    if args.max_steps > 0:
        return TrainingPlan(batch_size, steps_per_epoch, args.max_steps, math.ceil(args.max_steps / steps_per_epoch))
    total_steps = int(steps_per_epoch * args.num_train_epochs)
    if total_steps == 0:
        raise UserError(f"--num_train_epochs {args.num_train_epochs} of {steps_per_epoch} steps each is less "
                        "than one optimizer step")
    return TrainingPlan(batch_size, steps_per_epoch, total_steps, math.ceil(args.num_train_epochs))


# The arguments that decide where training goes. A checkpoint records them; a resume that changes one
# would not continue that training but start another from the middle of it, so it is refused.
TRAJECTORY_ARGS = ("learning_rate", "per_gpu_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
                   "max_steps", "warmup_proportion", "weight_decay", "layerwise_lr_decay", "adam_epsilon",
                   "max_grad_norm", "seed", "max_seq_length", "reinit_std", "fp16", "task_name", "use_bertadam",
                   "mixout", "prior_weight_decay", "group_by_length")


def training_trajectory(args, runtime, config):
    """{name: value} of everything that shapes training, the training data's hash and the reinit list included."""
    record = {f"--{name}": getattr(args, name) for name in TRAJECTORY_ARGS}
    if args.max_steps > 0:
        record["--num_train_epochs"] = None  # not used: --max_steps decides the length
    record["re-initialized"] = reinit_selectors(args, config)
    record["processes x GPUs"] = runtime.world_size * max(1, runtime.n_gpu)
    record["precision"] = runtime.precision  # bf16 and fp32 runs draw their steps differently
    spec = get_task(args.task_name, **generic_task_options(args))
    record["training data"] = file_fingerprint(find_data_file(spec, args.data_dir, "train"))
    if spec.name == "generic":
        record["generic columns"] = generic_task_options(args)
    return record


# Trajectory entries added after checkpoints were first written. A checkpoint that lacks one was trained
# before the flag existed, that is with it off. (It lacks "precision" too: its --fp16 entry says the same.)
ADDED_LATER = {"--use_bertadam": False, "--mixout": 0.0, "--prior_weight_decay": False, "--group_by_length": False}


def check_same_trajectory(args, trajectory):
    """Refuse --resume_from_checkpoint when this run's trajectory differs from the checkpoint's."""
    path = os.path.join(args.resume_from_checkpoint, TRAIN_STATE_NAME)
    saved = torch.load(path, map_location="cpu", weights_only=True).get("trajectory")
    if saved is None:
        logger.warning("%s records no training arguments (written by an older version): cannot check that "
                       "this run continues the same training", path)
        return
    saved = {**ADDED_LATER, **saved}
    differences = [f"{name} {saved.get(name)!r} there, {value!r} now" for name, value in trajectory.items()
                   if saved.get(name) != value and (name in saved or name != "precision")]
    if differences:
        raise UserError(f"--resume_from_checkpoint {args.resume_from_checkpoint}: this run would not continue "
                        f"that training: {'; '.join(differences)}. Give the checkpoint's values, or start a "
                        "new run without --resume_from_checkpoint")


def parameter_groups(model, args):
    """AdamW groups: no weight decay on biases and LayerNorm weights; optional layer-wise lr decay.

    With --layerwise_lr_decay F, the classifier and pooler learn at the full rate, encoder layer i (of n)
    at rate * F^(n - i), the embeddings at rate * F^(n + 1): lower layers, which hold more general
    features, move less (Zhang et al., ICLR 2021).
    """
    n = model.config.num_hidden_layers
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if ".encoder.layer." in name:
            depth = n - int(name.split(".encoder.layer.")[1].split(".")[0])
        elif ".embeddings." in name:
            depth = n + 1
        else:
            depth = 0
        no_decay = name.endswith("bias") or "LayerNorm.weight" in name
        key = (depth, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else args.weight_decay,
                           "lr": args.learning_rate * args.layerwise_lr_decay ** depth}
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def linear_warmup_then_decay(warmup_steps, total_steps):
    """lr multiplier: 0 -> 1 over the warmup steps, then 1 -> 0 linearly until the last step."""
    def factor(step):
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


def autocast(runtime):
    """The run's precision as an autocast context: fp16 or bf16 matmuls over fp32 weights, or plain fp32.
    Only fp16 needs a grad scaler (below); bf16 has fp32's exponent range, so small gradients do not underflow."""
    return precision_autocast(runtime.precision, runtime.device.type)


def wrap_model(model, runtime):
    """(the model to train, its core): DataParallel over this process's GPUs, or DDP under torchrun.
    The core is the model itself, unwrapped: what is saved, evaluated and checkpointed."""
    model.to(runtime.device)
    core = model
    if runtime.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    if runtime.distributed:
        # broadcast_buffers=False: this model's only buffers are mixout's pre-trained targets, the same on
        # every rank and never changed; DDP would otherwise send them from rank 0 before every forward.
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.local_rank] if runtime.device.type == "cuda" else None,
            broadcast_buffers=False)
    return model, core


def make_optimizer(args, core, pretrained):
    """torch's AdamW; or, with --use_bertadam or --prior_weight_decay, the same rule written out in
    DecoupledAdam, without bias correction (BERTAdam) and/or decaying pre-trained weights toward `pretrained`."""
    groups = parameter_groups(core, args)
    if not (args.use_bertadam or args.prior_weight_decay):
        # fused=True: one kernel updates all tensors at once instead of several element-wise passes per
        # update; the same AdamW rule, several times faster on CPU and GPU (torch >= 2.4).
        return torch.optim.AdamW(groups, lr=args.learning_rate, eps=args.adam_epsilon, fused=True)
    priors = {}
    if args.prior_weight_decay:
        priors = {param: pretrained[name] for name, param in core.named_parameters() if name in pretrained}
    return DecoupledAdam(groups, lr=args.learning_rate, eps=args.adam_epsilon,
                         correct_bias=not args.use_bertadam, priors=priors)


def start_training(args, runtime, model, core, plan, pretrained):
    """A TrainState at step 0, or at the checkpoint's step with --resume_from_checkpoint.
    pretrained: {name: w0} on the device, for --prior_weight_decay (empty when not needed)."""
    optimizer = make_optimizer(args, core, pretrained)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup_then_decay(int(plan.total_steps * args.warmup_proportion), plan.total_steps))
    scaler = torch.amp.GradScaler("cuda") if runtime.precision == "fp16" else None
    state = TrainState(model, optimizer, scheduler, scaler)
    if args.resume_from_checkpoint:
        load_train_state(state, args.resume_from_checkpoint, args, runtime)
    return state


def batches_to_go(args, runtime, plan, state, dataset):
    """The batches of `state.epoch` still to train on: whole accumulation groups only (a partial group at the
    epoch's end would step on fewer batches), no more than the steps still to take, from where a resumed run
    stopped. Returns (batches, index of the first one to take)."""
    lengths = [len(feature.input_ids) for feature in dataset.features] if args.group_by_length else None
    batches = epoch_batches(len(dataset), plan.batch_size, state.epoch, args.seed, runtime.rank, runtime.world_size,
                            lengths)
    batches = batches[:plan.steps_per_epoch * args.gradient_accumulation_steps]
    end = min(len(batches), state.batches_done_in_epoch
              + (plan.total_steps - state.global_step) * args.gradient_accumulation_steps)
    return batches[:end], state.batches_done_in_epoch


def optimizer_step(state, args):
    """Clip the accumulated gradients, step, move the schedule on, clear the gradients."""
    if state.scaler:
        state.scaler.unscale_(state.optimizer)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(state.model.parameters(), args.max_grad_norm)
    if state.scaler:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    state.scheduler.step()
    state.model.zero_grad(set_to_none=True)
    state.global_step += 1


@dataclass
class LossLog:
    """Loss sums over this run only: a resumed run does not know the losses before its checkpoint."""
    total: float = 0.0  # sum of the per-step losses of this run
    steps: int = 0  # optimizer steps taken by this run
    logged_total: float = 0.0  # `total` at the last log line
    logged_steps: int = 0  # `steps` at the last log line

    def mean_since_start(self):
        return self.total / max(1, self.steps)

    def window(self):
        """(mean loss of the steps since the last log line, how many steps that is) and start a new window."""
        steps = self.steps - self.logged_steps
        mean = (self.total - self.logged_total) / max(1, steps)
        self.logged_total, self.logged_steps = self.total, self.steps
        return mean, steps


def train(args, runtime, train_dataset, model, tokenizer, dev_dataset, plan, trajectory, pretrained):
    """The training loop: accumulate, clip, step, schedule; log, evaluate and checkpoint as asked.

    dev_dataset is only used with --evaluate_during_training (None otherwise); `trajectory` goes into
    every checkpoint, so that a resume can be checked against it; `pretrained` ({name: w0}, see
    `stabilizer_priors`) is what --mixout and --prior_weight_decay pull toward. Returns
    (global step, mean loss of this run).
    """
    model.to(runtime.device)
    pretrained = {name: tensor.to(runtime.device) for name, tensor in pretrained.items()}
    if args.mixout:
        mixed = add_mixout(model, pretrained, args.mixout)
        logger.info("mixout p=%g on %d pre-trained Linear layers", args.mixout, len(mixed))
    model, core = wrap_model(model, runtime)
    state = start_training(args, runtime, model, core, plan, pretrained)
    logger.info("***** Running training *****")
    logger.info("  examples %d, epochs %d, batch size per process %d, processes %d, accumulation %d, steps %d",
                len(train_dataset), plan.num_epochs, plan.batch_size, runtime.world_size,
                args.gradient_accumulation_steps, plan.total_steps)
    if state.global_step:
        logger.info("  resuming at step %d (epoch %d, batch %d)", state.global_step, state.epoch,
                    state.batches_done_in_epoch)

    losses = LossLog()
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
            losses.total += loss.item()
            state.batches_done_in_epoch += 1
            if state.batches_done_in_epoch % args.gradient_accumulation_steps:
                continue

            optimizer_step(state, args)
            losses.steps += 1
            bar.set_postfix_str(f"loss {losses.mean_since_start():.4f} (mean since start)")
            if args.logging_steps > 0 and state.global_step % args.logging_steps == 0:
                mean, steps = losses.window()  # fewer than logging_steps right after a resume
                logger.info("step %d: lr %.3g, loss %.4f (mean of the last %d steps)", state.global_step,
                            state.scheduler.get_last_lr()[0], mean, steps)
                if args.evaluate_during_training:
                    # Rank 0 scores the whole dev set with the weights every rank holds; the others wait.
                    if runtime.is_main:
                        evaluate(args, runtime, core, dev_dataset, prefix=f"step-{state.global_step}")
                        model.train()
                    barrier(runtime)
            if args.save_steps > 0 and state.global_step % args.save_steps == 0:
                save_checkpoint(state, tokenizer, args, runtime, trajectory)
        bar.close()
        if state.global_step < plan.total_steps:
            state.epoch += 1
            state.batches_done_in_epoch = 0
    return state.global_step, losses.mean_since_start()


# ---- checkpoints ------------------------------------------------------------------------------------------

def save_checkpoint(state, tokenizer, args, runtime, trajectory):
    """Write output_dir/checkpoint-{step} so that a crash at any moment leaves the last one whole.

    Everything goes into a temporary folder first, which is renamed into place when complete; a rename
    within one file system is atomic, so a checkpoint folder is either whole or absent. A SIGKILL while
    writing leaves `.checkpoint-{step}-*` behind, which nothing reads (it does not match checkpoint-*).
    """
    barrier(runtime)
    # Every rank's random state: their dropout masks have drawn different amounts (batches of other
    # lengths), so a resumed rank 1 needs rank 1's state, not rank 0's.
    rng_states = [None] * runtime.world_size
    if runtime.distributed:
        dist.all_gather_object(rng_states, rng_state())
    else:
        rng_states = [rng_state()]
    if runtime.is_main:
        final = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")

        def write(temp):
            core = state.model.module if hasattr(state.model, "module") else state.model
            core.save_pretrained(temp)
            tokenizer.save_pretrained(temp)
            torch.save({**train_state_dict(state), "rng": rng_states, "trajectory": trajectory},
                       os.path.join(temp, TRAIN_STATE_NAME))
            write_json_atomically(os.path.join(temp, ARGS_NAME), args_to_dict(args, runtime), sort_keys=True)

        write_folder_atomically(final, write)
        logger.info("Saved checkpoint to %s", final)
    barrier(runtime)


def train_state_dict(state):
    """Plain tensors, numbers and containers only, so that loading needs no unpickling of code.
    The random states ("rng", one per process) are added by save_checkpoint."""
    return {
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler else None,
        "global_step": state.global_step,
        "epoch": state.epoch,
        "batches_done_in_epoch": state.batches_done_in_epoch,
    }


def rng_state():
    """This process's random generators: python, numpy, torch (CPU) and CUDA."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": numpy_state[0], "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
                  "pos": numpy_state[2], "has_gauss": numpy_state[3], "cached_gaussian": numpy_state[4]},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def load_train_state(state, checkpoint_dir, args, runtime):
    """Restore model weights, optimizer, scheduler, scaler, RNGs and position from a checkpoint folder."""
    saved = torch.load(os.path.join(checkpoint_dir, TRAIN_STATE_NAME), map_location="cpu", weights_only=True)
    core = state.model.module if hasattr(state.model, "module") else state.model
    weights = type(core).from_pretrained(checkpoint_dir).state_dict()
    core.load_state_dict(weights)
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    if state.scaler and saved["scaler"]:
        state.scaler.load_state_dict(saved["scaler"])
    state.global_step, state.epoch = saved["global_step"], saved["epoch"]
    state.batches_done_in_epoch = saved["batches_done_in_epoch"]
    rng = saved["rng"][runtime.rank]  # this process's own (the world size is checked to be the checkpoint's)
    random.setstate(rng["python"])
    numpy_rng = rng["numpy"]
    np.random.set_state((numpy_rng["name"], numpy_rng["keys"].numpy().astype(np.uint32), numpy_rng["pos"],
                         numpy_rng["has_gauss"], numpy_rng["cached_gaussian"]))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    logger.info("Resumed from %s at step %d", checkpoint_dir, state.global_step)


# ==== evaluate and predict =================================================================================

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
    with torch.no_grad():
        for indexes, batch in zip(batches, tqdm(collated(dataset, batches), desc=desc, total=len(batches),
                                                disable=not runtime.is_main)):
            batch = {name: tensor.to(runtime.device) for name, tensor in batch.items() if name != "labels"}
            with autocast(runtime):
                logits[indexes] = model(**batch).logits.float().cpu()  # [b, C] into their rows
    return logits


def to_predictions(logits, output_mode):
    return logits.squeeze(-1) if output_mode == "regression" else logits.argmax(dim=-1)


def evaluate(args, runtime, model, dataset, prefix="", results_dir=None):
    """Score the dev set's features; write eval_results.json and eval_results.txt into results_dir."""
    spec = get_task(args.task_name, **generic_task_options(args))
    logits = predict_logits(args, runtime, model, dataset, desc=f"Evaluating {prefix}".strip())
    labels = torch.tensor([feature.label for feature in dataset.features])
    results = compute_metrics(spec.metric, to_predictions(logits, spec.output_mode).numpy(), labels.numpy())
    write_results(results_dir or args.output_dir, "eval", prefix, len(dataset), results)
    return results


def write_results(results_dir, split_name, prefix, examples, results):
    """{split_name}_results.json and .txt (one "metric = value" per line), and the same in the log."""
    os.makedirs(results_dir, exist_ok=True)
    write_json_atomically(os.path.join(results_dir, f"{split_name}_results.json"),
                          {"prefix": prefix, "examples": examples, **results})
    write_atomically(os.path.join(results_dir, f"{split_name}_results.txt"), lambda temp: write_lines(
        temp, [f"{key} = {results[key]}" for key in sorted(results)]))
    logger.info("***** %s results %s (%d examples) *****", split_name.capitalize(), prefix, examples)
    for key in sorted(results):
        logger.info("  %s = %.4f", key, results[key])


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


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as writer:
        writer.writelines(line + "\n" for line in lines)


# ==== main =================================================================================================

def main(argv=None):
    args = parse_args(argv)
    runtime = setup_device(args)
    setup_logging(args, runtime)
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
    config_source = args.config_name or args.model_name_or_path
    family = choose_family(args.model_type, args.model_name_or_path, args.config_name, args.cache_dir or None)
    logger.info("Model family %s: %s, tokenizer %s; --reinit_layers N selects %s", family.name,
                family.model_class.__name__, family.tokenizer_note, family.reinit_note)
    config = family.config_class.from_pretrained(config_source, cache_dir=args.cache_dir or None,
                                                 finetuning_task=spec.name, **head_size)
    if config.max_sequence_length is not None and args.max_seq_length > config.max_sequence_length:
        raise UserError(f"--max_seq_length {args.max_seq_length} exceeds the longest input the model's position "
                        f"table takes ({config.max_sequence_length}, from max_position_embeddings)")
    if args.list_keys:
        list_keys(args, config, head_labels)
        return None
    tokenizer_path = args.tokenizer_name or args.model_name_or_path
    tokenizer = family.load_tokenizer(tokenizer_path, lower_case_choice(args, tokenizer_path, family),
                                      args.cache_dir or None)
    check_vocab_fits(tokenizer, config, config_source)

    # Data: every split this run uses is read and converted now, so that a bad line in dev.tsv stops the run
    # here rather than after hours of training. Only rank 0 evaluates and predicts.
    train_dataset = load_features(args, runtime, tokenizer, "train") if args.do_train else None
    if args.do_train and runtime.is_main:  # a WARNING when the vocabulary does not cover the text
        unk_report(read_examples(spec, args.data_dir, "train"), tokenizer, logger)
    wants_dev = (args.do_eval or args.evaluate_during_training) and runtime.is_main
    dev_dataset = load_features(args, runtime, tokenizer, "dev") if wants_dev else None
    test_dataset = load_features(args, runtime, tokenizer, "test") if args.do_predict and runtime.is_main else None

    # Still nothing written in output_dir: check that training can run at all, and that a resume continues
    # the checkpoint's training rather than starting another one from its middle.
    plan, trajectory = None, None
    if args.do_train:
        plan = training_plan(args, runtime, len(train_dataset))
        trajectory = training_trajectory(args, runtime, config)
        if args.resume_from_checkpoint:
            check_same_trajectory(args, trajectory)

    barrier(runtime)  # every rank reads the same checkpoint; nothing is written yet
    model, info = load_model(args, config, head_labels)
    with output_dir_lock(args, runtime):
        return train_evaluate_predict(args, runtime, model, info, tokenizer, train_dataset, dev_dataset, test_dataset,
                                      plan, trajectory)


def train_evaluate_predict(args, runtime, model, info, tokenizer, train_dataset, dev_dataset, test_dataset, plan,
                           trajectory):
    """The part of the run that writes into output_dir, under its lock: train, evaluate, predict."""
    if runtime.is_main:
        write_run_record(args, runtime, model.config, info)

    results = {}
    if args.do_train:
        # The weights training starts from (loaded, re-initialized or new): weight_change.json measures from
        # them, and --mixout / --prior_weight_decay pull toward the loaded ones.
        start = {name: param.detach().clone() for name, param in model.named_parameters()}
        global_step, mean_loss = train(args, runtime, train_dataset, model, tokenizer, dev_dataset, plan, trajectory,
                                       stabilizer_priors(args, start, info))
        logger.info("global_step = %d, loss %.4f (mean over this run's steps)", global_step, mean_loss)
        if runtime.distributed:
            # Every rank ends with the same weights (DDP averages gradients); the log line lets a reader check.
            logger.warning("rank %d final weights digest %s", runtime.rank, weights_digest(model))
        if runtime.is_main:
            model.save_pretrained(args.output_dir)
            tokenizer.save_pretrained(args.output_dir)
            write_run_record(args, runtime, model.config, info)
            logger.info("Saved model to %s", args.output_dir)
            write_weight_change(args, start, model, info)
        barrier(runtime)

    if args.do_eval and runtime.is_main:
        model_dirs = [args.output_dir] if args.do_train else [args.model_name_or_path]
        if args.eval_all_checkpoints:
            # checkpoint-{step} folders in step order; a folder such as checkpoint-best is not ours to score.
            steps = [path.rsplit("-", 1)[1] for path in glob.glob(os.path.join(args.output_dir, "checkpoint-*"))]
            model_dirs += [os.path.join(args.output_dir, f"checkpoint-{step}")
                           for step in sorted((step for step in steps if step.isdigit()), key=int)]
        for model_dir in model_dirs:
            evaluated = model if model_dir == args.model_name_or_path else type(model).from_pretrained(model_dir)
            prefix = os.path.basename(model_dir.rstrip("/")) if model_dir != args.output_dir else "final"
            inside = not is_remote_url(model_dir) and is_within(model_dir, args.output_dir)
            results_dir = model_dir if inside else args.output_dir
            results[prefix] = evaluate(args, runtime, evaluated, dev_dataset, prefix=prefix, results_dir=results_dir)

    if args.do_predict and runtime.is_main:
        predict(args, runtime, model, test_dataset)
    if runtime.distributed:
        dist.destroy_process_group()
    return results


def not_loaded(info):
    """Names of the parameters that did not come from the checkpoint: re-initialized, missing or mismatched."""
    return set(info.missing_keys) | set(info.reinit_keys) | set(info.mismatched_keys)


def stabilizer_priors(args, start, info):
    """The pre-trained weights w0 that --mixout and --prior_weight_decay pull toward: of the weights training
    starts from (`start`), those loaded from the checkpoint (re-initialized and new ones have none). Under
    --resume_from_checkpoint the model was loaded from --model_name_or_path as at the start, so these are the
    same w0 as the interrupted run's; the checkpoint's trained weights replace them only in `train`."""
    if not (args.mixout or args.prior_weight_decay):
        return {}
    fresh = not_loaded(info)
    return {name: tensor for name, tensor in start.items() if name not in fresh}


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


def weights_digest(model):
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    run_entry_point(main, "run_classifier.py")
