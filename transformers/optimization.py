"""The optimizer and learning-rate schedules of transformers 2.x: `AdamW` and the five `Warmup...Schedule`s.

Takes a model's parameters (or parameter groups) and hands on an optimizer whose `step()` updates them, and
a schedule whose `step()` sets the optimizer's learning rate for the next step. A 2.x fine-tuning script
builds them exactly as it did there:

    optimizer = AdamW(groups, lr=2e-5, eps=1e-8)                       # correct_bias=True by default
    scheduler = WarmupLinearSchedule(optimizer, warmup_steps=10, t_total=100)

Each schedule multiplies the optimizer's initial lr by a factor of the step count s (PyTorch's LambdaLR):

    ConstantLRSchedule                     1
    WarmupConstantSchedule                 s / w while s < w, then 1
    WarmupLinearSchedule                   s / w while s < w, then (T - s) / (T - w), down to 0 at T
    WarmupCosineSchedule                   s / w while s < w, then 0.5 (1 + cos(2 pi cycles p)), cycles = 0.5
    WarmupCosineWithHardRestartsSchedule   s / w while s < w, then 0.5 (1 + cos(pi ((cycles p) mod 1))), 0 from T
                                           where p = (s - w) / (T - w) is the progress after warm-up.

Today's transformers has the same curves as get_linear_schedule_with_warmup(optimizer, w, T) and its siblings
(tests/test_compat_2x.py compares them step by step).
"""
import math

import torch
from torch.optim.lr_scheduler import LambdaLR


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), with Adam's bias correction switchable.

    correct_bias=False gives BERTAdam, the optimizer of the original BERT: Adam's moving averages m and v
    start at zero, and Adam divides them by (1 - beta1^t) and (1 - beta2^t) so that early steps are not
    biased toward zero. BERT's optimizer leaves that out. With beta1 = 0.9, beta2 = 0.999 the first step
    is then lr * g (1 - beta1) / (sqrt((1 - beta2) g^2) + eps) ~ lr * 0.1 / 0.0316 ~ 3.16 lr in size where
    AdamW's is lr: early steps are too large, which is what Zhang et al. (ICLR 2021) found makes runs fail.

    The 2.x signature and defaults: lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, correct_bias=True.
    Two differences from 2.x, both to follow torch.optim.AdamW (with correct_bias=True this is its rule):
    the decay w -= lr * wd * w comes before the Adam step, where 2.x applied it after (they differ by
    lr^2 * wd times the step); and with bias correction, eps is added to sqrt(v / (1 - beta2^t)), where 2.x added
    it to sqrt(v) (a difference of about eps per step). Both are below float32 rounding at fine-tuning's
    learning rates; with weight_decay=0 and correct_bias=False (BERTAdam) the update is 2.x's exactly.

    `decay_pull(param)` is what the decay pulls toward zero: the weight itself here. A subclass can pull toward
    something else (bert_read_step_to_step/stabilizers.py's DecoupledAdam pulls toward the pre-trained weight).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, correct_bias=True):
        if lr < 0.0:
            raise ValueError(f"AdamW: lr must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"AdamW: betas must be in [0, 1), got {betas}")
        if eps < 0.0:
            raise ValueError(f"AdamW: eps must be >= 0, got {eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      correct_bias=correct_bias))

    def decay_pull(self, param):
        return param

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients; use torch.optim.SparseAdam")
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                # Decoupled decay, applied to the weight before the Adam step (as torch's AdamW does).
                if group["weight_decay"]:
                    param.sub_(self.decay_pull(param), alpha=group["lr"] * group["weight_decay"])
                state["exp_avg"].mul_(beta1).add_(param.grad, alpha=1 - beta1)  # m = b1 m + (1 - b1) g
                # v = b2 v + (1 - b2) g^2
                state["exp_avg_sq"].mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
                step_size, denominator = group["lr"], state["exp_avg_sq"].sqrt()
                if group["correct_bias"]:
                    step_size = step_size / (1 - beta1 ** state["step"])
                    denominator = denominator / math.sqrt(1 - beta2 ** state["step"])
                param.addcdiv_(state["exp_avg"], denominator.add_(group["eps"]), value=-step_size)
        return loss


# ---- schedules: the factor on the initial lr after s optimizer steps ------------------------------------------

def _warmup(step, warmup_steps):
    return step / max(1, warmup_steps)


def _progress(step, warmup_steps, t_total):
    return (step - warmup_steps) / max(1, t_total - warmup_steps)


class ConstantLRSchedule(LambdaLR):
    def __init__(self, optimizer, last_epoch=-1):
        super().__init__(optimizer, lambda step: 1.0, last_epoch=last_epoch)


class WarmupConstantSchedule(LambdaLR):
    def __init__(self, optimizer, warmup_steps, last_epoch=-1):
        def factor(step):
            return _warmup(step, warmup_steps) if step < warmup_steps else 1.0
        super().__init__(optimizer, factor, last_epoch=last_epoch)


class WarmupLinearSchedule(LambdaLR):
    def __init__(self, optimizer, warmup_steps, t_total, last_epoch=-1):
        def factor(step):
            if step < warmup_steps:
                return _warmup(step, warmup_steps)
            return max(0.0, (t_total - step) / max(1, t_total - warmup_steps))
        super().__init__(optimizer, factor, last_epoch=last_epoch)


class WarmupCosineSchedule(LambdaLR):
    def __init__(self, optimizer, warmup_steps, t_total, cycles=0.5, last_epoch=-1):
        def factor(step):
            if step < warmup_steps:
                return _warmup(step, warmup_steps)
            progress = _progress(step, warmup_steps, t_total)
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress)))
        super().__init__(optimizer, factor, last_epoch=last_epoch)


class WarmupCosineWithHardRestartsSchedule(LambdaLR):
    def __init__(self, optimizer, warmup_steps, t_total, cycles=1.0, last_epoch=-1):
        def factor(step):
            if step < warmup_steps:
                return _warmup(step, warmup_steps)
            progress = _progress(step, warmup_steps, t_total)
            if progress >= 1.0:
                return 0.0
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((cycles * progress) % 1.0))))
        super().__init__(optimizer, factor, last_epoch=last_epoch)
