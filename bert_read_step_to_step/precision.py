"""Which number format the arithmetic runs in: fp32, or bf16 autocast where the hardware computes bf16 natively.

In:  the device type ("cpu" or "cuda") and what was asked for (run_classifier's --fp16 and --bf16 [auto]).
Out: a `Bf16Support` (can this device compute bf16 in hardware, and one line saying why), the precision a run
     uses ("fp32", "bf16" or "fp16"), the autocast context for it, and the log lines that tell a user when
     their choice is slow or when a faster one is available. run_classifier, the re-init sweep and the
     benchmark all ask this module, so they agree on what "this machine supports bf16" means.

Why it matters. bf16 keeps fp32's 8 exponent bits and cuts the mantissa to 7, so a matmul moves half the bytes
and, on hardware built for it, multiplies pairs of bf16 values in one instruction. x86 CPUs have that hardware
when they have avx512_bf16 (bf16 dot products in AVX-512 registers) or AMX (tile matrix units); NVIDIA GPUs from
Ampere (compute capability 8.0) on. Elsewhere, e.g. on an AVX2-only CPU, there is no bf16 arithmetic: the values
are widened to fp32 inside slow fallback kernels, and a bf16 matmul is far slower than an fp32 one. So bf16 is a
large speed-up on some machines and a large slow-down on others; `--bf16 auto` takes it only where it is native.
Weights, optimizer state and checkpoints stay fp32 either way: autocast only changes the dtype that matmuls
and similar ops compute in.

    python -m bert_read_step_to_step.precision      # prints what this machine can do
"""
import logging
from dataclasses import dataclass

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BF16_CHOICES = ("off", "on", "auto")  # the values of run_classifier's --bf16


@dataclass(frozen=True)
class Bf16Support:
    """Whether `device_type` computes bf16 matmuls in hardware, and what that was decided from."""
    device_type: str
    native: bool
    description: str  # e.g. "CPU capability AVX2; native bf16: no (avx512_bf16 no, AMX no)"


def cpu_flag(name):
    """torch.cpu._is_<name>_supported(), or False in a torch without that (private) check."""
    check = getattr(torch.cpu, f"_is_{name}_supported", None)
    return bool(check()) if check is not None else False


def bf16_support(device_type):
    """Ask torch what this machine's `device_type` ("cpu" or "cuda") can do in bf16."""
    if device_type == "cuda":
        major, minor = torch.cuda.get_device_capability()
        native = major >= 8  # Ampere's tensor cores were the first to take bf16
        return Bf16Support("cuda", native, f"GPU {torch.cuda.get_device_name()}, compute capability "
                                           f"{major}.{minor}; native bf16: {'yes' if native else 'no'}")
    if device_type != "cpu":
        raise ValueError(f"bf16_support: device type {device_type!r} is neither 'cpu' nor 'cuda'")
    # get_cpu_capability() is the widest vector set ATen's own kernels were dispatched to (DEFAULT, AVX2,
    # AVX512, ...). The bf16 checks are separate: avx512_bf16 and AMX are extensions that some AVX-512 CPUs
    # have and others lack, and matmuls (oneDNN) use them whatever ATen's capability says.
    avx512_bf16, amx = cpu_flag("avx512_bf16"), cpu_flag("amx_tile")
    native = avx512_bf16 or amx
    yes_no = lambda flag: "yes" if flag else "no"  # noqa: E731
    return Bf16Support("cpu", native, f"CPU capability {torch.backends.cpu.get_cpu_capability()}; native bf16: "
                                      f"{yes_no(native)} (avx512_bf16 {yes_no(avx512_bf16)}, AMX {yes_no(amx)})")


def choose_precision(fp16, bf16, support):
    """The precision of a run from run_classifier's flags: "fp32", "bf16" or "fp16".

    --fp16 means fp16 on CUDA; on CPU it has always meant bf16 here (torch.amp's CPU autocast has no fast fp16
    path). --bf16 is bf16 everywhere; --bf16 auto is bf16 where `support.native`, fp32 elsewhere.
    """
    if bf16 not in BF16_CHOICES:
        raise ValueError(f"--bf16 {bf16!r}: choose one of {', '.join(BF16_CHOICES)}")
    if fp16:
        return "fp16" if support.device_type == "cuda" else "bf16"
    if bf16 == "on" or (bf16 == "auto" and support.native):
        return "bf16"
    return "fp32"


def autocast(precision, device_type):
    """The autocast context of a precision; for "fp32" a disabled one, so callers need no branch."""
    return torch.autocast(device_type=device_type, dtype=AUTOCAST_DTYPES[precision], enabled=precision != "fp32")


def precision_notes(precision, bf16, support):
    """[(logging level, message)]: what a user should know about this choice on this hardware (maybe nothing).

    bf16 on hardware without it is a WARNING: it is not a little slower but many times slower than fp32.
    fp32 on hardware with native bf16 is one INFO line saying how to get the speed-up.
    """
    if precision == "bf16" and not support.native:
        return [(logging.WARNING,
                 f"bf16 was asked for, but this {support.device_type.upper()} has no native bf16 ({support.description}): "
                 "its bf16 matmuls are emulated and run many times slower than fp32 (README, 'fp32 or bf16?'). "
                 "Leave out --bf16/--fp16 to train in fp32, or give --bf16 auto to use bf16 only where it is native.")]
    if precision == "fp32" and support.native:
        return [(logging.INFO,
                 f"this {support.device_type.upper()} computes bf16 natively ({support.description}): --bf16 "
                 "(or --bf16 auto) trains in bf16 autocast, several times faster per matmul; weights stay fp32.")]
    if precision == "fp32" and bf16 == "auto":
        return [(logging.INFO, f"--bf16 auto: no native bf16 here ({support.description}), so fp32.")]
    return []


if __name__ == "__main__":
    for device_type in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
        support = bf16_support(device_type)
        print(f"{device_type}: {support.description}; --bf16 auto gives {choose_precision(False, 'auto', support)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
