"""Where a run computes: the device, the torchrun ranks, the log, the number format and the model wrapping.

In:  run_classifier's arguments (--no_cuda, --local_rank from torchrun, --fp16, --bf16).
Out: a frozen `Runtime` (device, GPUs, rank, world size, precision) that train, evaluate and the checkpoint
     code take instead of reading `args`; and the few steps that differ between one process and several:
     `barrier`, `autocast`, `wrap_model` (DataParallel or DDP) and `weights_digest` (do the ranks agree?).

Run by run_classifier.main first, before any file is read, so that every later line of the log says which
rank wrote it and every later step knows where its tensors go.
"""
import dataclasses
import hashlib
import logging
from dataclasses import dataclass

import torch
import torch.distributed as dist

from bert_read_step_to_step.precision import autocast as precision_autocast, bf16_support, choose_precision, \
    precision_notes

logger = logging.getLogger(__name__)


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


def setup_logging(args, runtime):
    """The log goes to stderr: INFO on rank 0, WARNING on the other ranks (they repeat rank 0's lines).

    Under --list_keys the listing on stdout is the output, so the log shows only warnings: then
    `run_classifier.py --list_keys ... | tail -2` prints the summary, not a screen of log lines.
    """
    quiet = not runtime.is_main or args.list_keys
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
                        datefmt="%m/%d/%Y %H:%M:%S", level=logging.WARNING if quiet else logging.INFO)
    # Which process this is: plain information on rank 0; on the other ranks the one line they log
    # at WARNING, so that each rank's log still says where it ran.
    logger.log(logging.INFO if runtime.is_main else logging.WARNING,
               "rank %d of %d, device %s, n_gpu %d, fp16 %s, bf16 %s", runtime.rank, runtime.world_size,
               runtime.device, runtime.n_gpu, args.fp16, args.bf16)


def setup_precision(args, runtime):
    """The runtime with its precision ("fp32", "bf16" or "fp16") chosen from --fp16/--bf16 and what the device
    can do, logged next to the thread count: bf16 is a speed-up only on hardware that computes it natively
    (precision.py says how that is decided)."""
    support = bf16_support(runtime.device.type)
    precision = choose_precision(args.fp16, args.bf16, support)
    logger.info("torch threads %d; %s; training and evaluating in %s", torch.get_num_threads(),
                support.description, precision)
    for level, message in precision_notes(precision, args.bf16, support):
        logger.log(level, message)
    return dataclasses.replace(runtime, precision=precision)


def autocast(runtime):
    """The run's precision as an autocast context: fp16 or bf16 matmuls over fp32 weights, or plain fp32.
    Only fp16 needs a grad scaler; bf16 has fp32's exponent range, so small gradients do not underflow."""
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


def weights_digest(model):
    """A short hash of every tensor of the model: ranks that end with the same weights print the same one."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
