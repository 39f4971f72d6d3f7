"""Which examples each training step sees: the length of training, each epoch's batches, where a resume goes on.

In:  the number of training examples (and, with --group_by_length, their lengths), run_classifier's
     batch flags, the seed, and this process's rank among the torchrun processes.
Out: a `TrainingPlan` (batch size, steps per epoch, steps in all), the batches of one epoch as lists of
     example indexes, the ones still to train on after a resume, and those batches as padded tensors
     (features.collate_features).

The order depends only on (seed, epoch), never on an RNG's state, so that a resumed run takes the very batches
an uninterrupted one would have taken.
"""
import logging
import math
from dataclasses import dataclass

import torch

from bert_read_step_to_step.features import collate_features, length_bucketed_batches
from bert_read_step_to_step.tasks import small_training_set_warning
from transformers.file_utils import UserError

logger = logging.getLogger(__name__)


@dataclass
class TrainingPlan:
    """How long training runs, worked out from the data size before anything is written."""
    batch_size: int  # per process (with DataParallel, over all of its GPUs)
    steps_per_epoch: int
    total_steps: int
    num_epochs: int
    warnings: tuple = ()  # logged, and recorded in training_args.json: e.g. fewer examples than one batch


def training_plan(args, runtime, num_examples, train_file="the training set"):
    """Steps per epoch and in all; a UserError when the flags give no optimizer step at all."""
    # With several GPUs in one process, DataParallel splits each batch over them: the batch is per GPU.
    batch_size = args.per_gpu_train_batch_size * max(1, runtime.n_gpu)
    batches_per_epoch = len(epoch_batches(num_examples, batch_size, 0, args.seed, runtime.rank, runtime.world_size))
    steps_per_epoch = batches_per_epoch // args.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise UserError(f"{num_examples} training examples give no full optimizer step with batch size "
                        f"{batch_size} x accumulation {args.gradient_accumulation_steps}"
                        + (f" x {runtime.world_size} processes" if runtime.world_size > 1 else ""))
    warnings = tuple(filter(None, [small_training_set_warning(train_file, num_examples, batch_size)]))
    for warning in warnings:
        logger.warning(warning)
    if args.max_steps > 0:
        return TrainingPlan(batch_size, steps_per_epoch, args.max_steps, math.ceil(args.max_steps / steps_per_epoch),
                            warnings)
    total_steps = int(steps_per_epoch * args.num_train_epochs)
    if total_steps == 0:
        raise UserError(f"--num_train_epochs {args.num_train_epochs} of {steps_per_epoch} steps each is less "
                        "than one optimizer step")
    return TrainingPlan(batch_size, steps_per_epoch, total_steps, math.ceil(args.num_train_epochs), warnings)


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


def batches_to_go(args, runtime, plan, state, dataset):
    """The batches of `state.epoch` (a checkpoints.TrainState) still to train on: whole accumulation groups
    only (a partial group at the epoch's end would step on fewer batches), no more than the steps still to
    take, from where a resumed run stopped. Returns (batches, index of the first one to take)."""
    lengths = [len(feature.input_ids) for feature in dataset.features] if args.group_by_length else None
    batches = epoch_batches(len(dataset), plan.batch_size, state.epoch, args.seed, runtime.rank, runtime.world_size,
                            lengths)
    batches = batches[:plan.steps_per_epoch * args.gradient_accumulation_steps]
    end = min(len(batches), state.batches_done_in_epoch
              + (plan.total_steps - state.global_step) * args.gradient_accumulation_steps)
    return batches[:end], state.batches_done_in_epoch


def collated(dataset, batches):
    """Yield each batch of indexes as padded tensors. A plain loop rather than a DataLoader: a DataLoader
    draws a seed from the global RNG each time it starts iterating, which would make the dropout masks of
    a resumed run differ from those of an uninterrupted one."""
    for indexes in batches:
        yield collate_features([dataset[index] for index in indexes], padding=dataset.padding)
