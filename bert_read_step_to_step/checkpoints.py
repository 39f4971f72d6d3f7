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
from bert_read_step_to_step.run_folder import ARGS_NAME, args_to_dict
from bert_read_step_to_step.runtime import barrier
from bert_read_step_to_step.tasks import find_data_file, generic_task_options, get_task
from transformers.file_utils import UserError, write_folder_atomically, write_json_atomically

logger = logging.getLogger(__name__)

TRAIN_STATE_NAME = "training_state.pt"


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


def check_same_trajectory(args, trajectory):
    """Refuse --resume_from_checkpoint when this run's trajectory differs from the checkpoint's."""
    path = os.path.join(args.resume_from_checkpoint, TRAIN_STATE_NAME)
    saved = read_train_state(args.resume_from_checkpoint).get("trajectory")
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


# ---- writing ----------------------------------------------------------------------------------------------

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


# ---- reading --------------------------------------------------------------------------------------------

def read_train_state(checkpoint_dir):
    """training_state.pt of a checkpoint folder, as saved (weights_only: plain tensors and containers)."""
    return torch.load(os.path.join(checkpoint_dir, TRAIN_STATE_NAME), map_location="cpu", weights_only=True)


def load_train_state(state, checkpoint_dir, runtime):
    """Restore model weights, optimizer, scheduler, scaler, RNGs and position from a checkpoint folder."""
    saved = read_train_state(checkpoint_dir)
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
