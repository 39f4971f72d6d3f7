"""Checkpoints: the training state on disk, written so a crash never leaves half of one, and read back to resume.

In:  the `TrainState` of a training run (model, optimizer, scheduler, grad scaler, step, position in the
     data), this process's random generators, and the run's trajectory (the settings that decide where
     training goes).
Out: output_dir/checkpoint-{step}/ holding the model (model.safetensors, config.json), the tokenizer,
     training_args.json and training_state.pt; and, for --resume_from_checkpoint, the state put back into
     a TrainState, after a check that this run continues the checkpoint's training rather than another one.

    save_checkpoint       the one function that writes a checkpoint folder
    read_train_state      the one place training_state.pt is read
    check_same_trajectory refuses a resume whose settings differ, listing each difference
    load_train_state      puts weights, optimizer, scheduler, scaler, RNGs and position back
"""
import fnmatch
import json
import logging
import os
import random
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist

from bert_read_step_to_step.features import file_fingerprint
from bert_read_step_to_step.model_setup import reinit_selectors
from bert_read_step_to_step.run_folder import ARGS_NAME, args_to_dict, discard_previous_run
from bert_read_step_to_step.runtime import barrier
from bert_read_step_to_step.tasks import find_data_file, generic_task_options, get_task
from transformers.configuration_bert import LoadingError
from transformers.file_utils import (UserError, check_free_space, disk_full_is_one_line, is_remote_url, redact_url,
                                     sha256_of_file, write_folder_atomically, write_json_atomically)
from transformers.modeling_utils import check_finite

logger = logging.getLogger(__name__)

TRAIN_STATE_NAME = "training_state.pt"
# Written last into a checkpoint: the size and sha256 of every other file, checked before a resume reads any.
MANIFEST_NAME = "manifest.json"


class CheckpointDamaged(UserError):
    """A checkpoint folder whose files are not what was written (cut short, a flipped bit, another run's file)."""


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


# ---- the trajectory: what a resume must share with the checkpoint ----------------------------------------

# The arguments that decide where training goes. A checkpoint records them; a resume that changes one
# would not continue that training but start another from the middle of it, so it is refused.
TRAJECTORY_ARGS = ("learning_rate", "per_gpu_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
                   "max_steps", "warmup_proportion", "weight_decay", "layerwise_lr_decay", "adam_epsilon",
                   "max_grad_norm", "seed", "max_seq_length", "reinit_std", "fp16", "task_name", "use_bertadam",
                   "mixout", "prior_weight_decay", "group_by_length")

# Trajectory entries added after checkpoints were first written. A checkpoint that lacks one was trained
# before the flag existed, that is with it off. (It lacks "precision" too: its --fp16 entry says the same.)
ADDED_LATER = {"--use_bertadam": False, "--mixout": 0.0, "--prior_weight_decay": False, "--group_by_length": False}


# What the run started from, recorded since checkpoints carry manifests. A checkpoint without them resumes with
# a WARNING that these were not checked. The model's path is only shown: a moved folder holding the same
# weights (same fingerprint) is the same model.
IDENTITY = ("model weights", "tokenizer files", "labels")


def training_trajectory(args, runtime, config, labels=None, sources=None):
    """{name: value} of everything that shapes training: the flags, the training data's hash, the reinit list,
    and what the run started from (the model's weights and tokenizer files by their hashes, the label list).
    sources (model_setup.ModelSources): the local folders the names became; a Hub name is fingerprinted by its
    snapshot, so a resume after the repo moved on (or at another --revision) is refused like any other model."""
    record = {f"--{name}": getattr(args, name) for name in TRAJECTORY_ARGS}
    record["model"] = redact_url(args.model_name_or_path)
    model_path = sources.model if sources else args.model_name_or_path
    tokenizer_path = sources.tokenizer if sources else args.tokenizer_name or args.model_name_or_path
    record["model weights"] = folder_fingerprint(model_path, WEIGHT_FILES)
    record["tokenizer files"] = folder_fingerprint(tokenizer_path, TOKENIZER_FILES)
    record["labels"] = list(labels) if labels is not None else None
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


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "tf_model.h5", "*.index", "*.data-*")
TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "spiece.model", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")


def folder_fingerprint(folder, patterns):
    """{file name: sha256} of the files of a model folder that match `patterns`; for a URL, the URL (redacted):
    its files are the server's to change, and the download cache checks them by ETag."""
    if is_remote_url(folder) or not os.path.isdir(folder):
        return redact_url(folder)
    names = sorted({name for pattern in patterns for name in fnmatch.filter(os.listdir(folder), pattern)})
    return {name: sha256_of_file(os.path.join(folder, name)) for name in names}


def check_same_trajectory(args, trajectory):
    """Refuse --resume_from_checkpoint when this run's trajectory differs from the checkpoint's."""
    path = os.path.join(args.resume_from_checkpoint, TRAIN_STATE_NAME)
    saved = read_train_state(args.resume_from_checkpoint).get("trajectory")
    if saved is None:
        logger.warning("%s records no training arguments (written by an older version): cannot check that "
                       "this run continues the same training", path)
        return
    unchecked = [name for name in IDENTITY if name not in saved]
    if unchecked:
        logger.warning("%s records no %s (written by an older version): cannot check that this run starts from "
                       "the same ones", path, ", ".join(unchecked))
    saved = {**ADDED_LATER, **saved}
    differences = [f"{name} {shown(saved.get(name))} there, {shown(value)} now" for name, value in trajectory.items()
                   if name != "model" and saved.get(name) != value
                   and (name in saved or name not in ("precision", *IDENTITY))]
    if any(entry.startswith("model weights") for entry in differences):
        differences.insert(0, f"model {saved.get('model')!r} there, {trajectory['model']!r} now")
    if differences:
        raise UserError(f"--resume_from_checkpoint {args.resume_from_checkpoint}: this run would not continue "
                        f"that training: {'; '.join(differences)}. Give the checkpoint's values, or start a "
                        "new run without --resume_from_checkpoint")


def shown(value):
    """A trajectory value for an error line: file hashes shortened to 12 digits."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{name}: {str(digest)[:12]}" for name, digest in value.items()) + "}"
    return repr(value)


# ---- writing ----------------------------------------------------------------------------------------------

class TrainingDiverged(UserError):
    """The loss, an update or the weights stopped being numbers (NaN or inf). Training stops before anything of
    that step is applied or saved; the entry point exits 3, which the re-init sweep records as a run that
    diverged."""
    exit_code = 3


def refuse_non_finite_weights(model, step, where):
    """Raise TrainingDiverged instead of writing weights that hold NaN or inf to `where`: a later from_pretrained
    would refuse them anyway, and a results file next to them would score a broken model."""
    try:
        check_finite(model.state_dict(), f"the weights after step {step}")
    except LoadingError as error:
        raise TrainingDiverged(f"training diverged: {str(error).split(';')[0]}; not saved to {where}. Lower "
                               "--learning_rate or --max_grad_norm") from None


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

        core = state.model.module if hasattr(state.model, "module") else state.model
        refuse_non_finite_weights(core, state.global_step, final)

        def write(temp):
            core.save_pretrained(temp)
            tokenizer.save_pretrained(temp)
            torch.save({**train_state_dict(state), "rng": rng_states, "trajectory": trajectory},
                       os.path.join(temp, TRAIN_STATE_NAME))
            write_json_atomically(os.path.join(temp, ARGS_NAME), args_to_dict(args, runtime), sort_keys=True)
            write_manifest(temp)

        # Weights, and Adam's two moments of the same size: the room the folder needs before it is written.
        needed = 3 * weights_bytes(core)
        check_free_space(args.output_dir, needed)
        with disk_full_is_one_line(final, needed):  # ENOSPC mid-write: one line; the temp folder is removed
            write_folder_atomically(final, write)
        discard_previous_run(args.output_dir)
        logger.info("Saved checkpoint to %s", final)
    barrier(runtime)


def save_model(model, tokenizer, output_dir, step):
    """The trained model and its tokenizer into output_dir, once training has ended.

    Refused before a byte is written when the weights hold NaN or inf, or when the disk has no room for them, so
    that a failed save never leaves this run's config.json beside an older run's weights.
    """
    refuse_non_finite_weights(model, step, output_dir)
    needed = weights_bytes(model)
    check_free_space(output_dir, needed)
    with disk_full_is_one_line(output_dir, needed):
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    discard_previous_run(output_dir)


def weights_bytes(model):
    return sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values())


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


# ---- reading --------------------------------------------------------------------------------------------

def write_manifest(folder):
    """folder/manifest.json: {"files": {relative path: {"size", "sha256"}}} of every file already in `folder`."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            if os.path.relpath(path, folder) == MANIFEST_NAME:
                continue
            files[os.path.relpath(path, folder)] = {"size": os.path.getsize(path), "sha256": sha256_of_file(path)}
    write_json_atomically(os.path.join(folder, MANIFEST_NAME), {"files": files}, sort_keys=True)


_verified = set()  # checkpoint folders already checked by this process (the trajectory check and the resume)


def verify_checkpoint(checkpoint_dir):
    """Check every file of a checkpoint against its manifest before anything of it is read.
    A folder written before manifests existed is read with a WARNING that it is unverified."""
    folder = os.path.realpath(checkpoint_dir)
    if folder in _verified:
        return
    path = os.path.join(checkpoint_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        logger.warning("%s has no %s (written before checkpoints recorded their checksums): its files are "
                       "used unverified", checkpoint_dir, MANIFEST_NAME)
        _verified.add(folder)
        return
    try:
        with open(path, encoding="utf-8") as f:
            files = json.load(f)["files"]
        expected = {name: (int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointDamaged(f"{path}: not a checkpoint manifest ({type(error).__name__}: {error}); "
                                "resume from another checkpoint") from None
    for name, (size, sha256) in sorted(expected.items()):
        file = os.path.join(checkpoint_dir, name)
        if not os.path.isfile(file):
            problem = "is missing"
        elif os.path.getsize(file) != size:
            problem = f"has {os.path.getsize(file)} bytes, {size} were written"
        elif sha256_of_file(file) != sha256:
            problem = "does not hold the bytes that were written (sha256 differs)"
        else:
            continue
        raise CheckpointDamaged(f"{file} {problem}: checkpoint {checkpoint_dir} is damaged; resume from another "
                                "checkpoint")
    _verified.add(folder)


def read_train_state(checkpoint_dir):
    """training_state.pt of a checkpoint folder, as saved (weights_only: plain tensors and containers), after
    `verify_checkpoint`. Whatever is wrong with it is one line naming the file."""
    verify_checkpoint(checkpoint_dir)
    path = os.path.join(checkpoint_dir, TRAIN_STATE_NAME)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's unpickler and zip reader raise many kinds; all mean "not readable"
        raise CheckpointDamaged(f"{path}: cannot be read ({type(error).__name__}: {str(error).splitlines()[0]}); "
                                f"checkpoint {checkpoint_dir} is damaged; resume from another checkpoint") from None
    kinds = {"optimizer": dict, "scheduler": dict, "global_step": int, "epoch": int, "batches_done_in_epoch": int,
             "rng": list}
    wrong = [name for name, kind in kinds.items() if not isinstance(saved.get(name) if isinstance(saved, dict)
                                                                    else None, kind)]
    if wrong:
        raise CheckpointDamaged(f"{path}: missing or wrong {', '.join(wrong)}; checkpoint {checkpoint_dir} is "
                                "damaged; resume from another checkpoint")
    return saved


def check_optimizer_state(saved, optimizer, model, path):
    """Refuse an optimizer state that does not fit the model before torch copies it in: the fused AdamW would
    otherwise read past a moment of the wrong size (a segmentation fault, not an error)."""
    names = {param: name for name, param in model.named_parameters()}
    groups, state = saved.get("param_groups"), saved.get("state")
    # How many parameters each saved group holds; None for anything that is not a group of torch's shape.
    sizes = [len(group["params"]) if isinstance(group, dict) and isinstance(group.get("params"), list) else None
             for group in groups] if isinstance(groups, list) else None
    if not isinstance(state, dict) or sizes != [len(group["params"]) for group in optimizer.param_groups]:
        raise CheckpointDamaged(f"{path}: its optimizer state has other parameter groups than this model's; "
                                "resume from another checkpoint")
    saved_ids = [index for group in groups for index in group["params"]]
    params = [param for group in optimizer.param_groups for param in group["params"]]
    for index, param in zip(saved_ids, params):
        entry = state.get(index, {})
        if not isinstance(entry, dict):
            raise CheckpointDamaged(f"{path}: the optimizer state of {names.get(param, index)} is not a table of "
                                    "tensors; resume from another checkpoint")
        for key, value in entry.items():
            if torch.is_tensor(value) and value.dim() > 0 and tuple(value.shape) != tuple(param.shape):
                raise CheckpointDamaged(f"{path}: optimizer state {key!r} of {names.get(param, index)} has shape "
                                        f"{list(value.shape)}, the parameter {list(param.shape)}; resume from "
                                        "another checkpoint")


def load_train_state(state, checkpoint_dir, runtime):
    """Restore model weights, optimizer, scheduler, scaler, RNGs and position from a checkpoint folder."""
    saved = read_train_state(checkpoint_dir)
    core = state.model.module if hasattr(state.model, "module") else state.model
    weights = type(core).from_pretrained(checkpoint_dir).state_dict()
    core.load_state_dict(weights)
    check_optimizer_state(saved["optimizer"], state.optimizer, core, os.path.join(checkpoint_dir, TRAIN_STATE_NAME))
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
