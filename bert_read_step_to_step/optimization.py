"""How a training run moves the weights: parameter groups, the optimizer, the lr schedule, one optimizer step.

In:  the model (unwrapped), run_classifier's optimization flags (--learning_rate, --weight_decay,
     --layerwise_lr_decay, --warmup_proportion, --max_grad_norm, the stabilizer flags), the TrainingPlan's
     step count, and for --mixout/--prior_weight_decay the pre-trained weights w0.
Out: a `checkpoints.TrainState` at step 0, or at a checkpoint's step with --resume_from_checkpoint;
     `optimizer_step`, which clips, steps, moves the schedule on and counts the step.

The optimizer is torch's AdamW unless a stabilizer of Zhang et al. (stabilizers.py) asks for BERTAdam or
for decay toward the pre-trained weights.
"""
import math
import warnings

import torch

from bert_read_step_to_step.checkpoints import TrainingDiverged, TrainState, load_train_state
from bert_read_step_to_step.stabilizers import DecoupledAdam


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
        load_train_state(state, args.resume_from_checkpoint, runtime)
    return state


def optimizer_step(state, args, step_loss):
    """Clip the accumulated gradients, step, move the schedule on, clear the gradients. Returns the gradient
    norm before clipping (what the curves log as grad_norm), or None for a step fp16's scaler skipped.

    step_loss: the loss summed over this step's batches. A non-finite loss stops training (TrainingDiverged),
    and so do non-finite gradients, except under fp16's GradScaler, which skips such a step and lowers its
    scale: that is how fp16 training finds its scale, not a divergence.
    """
    if state.scaler:
        state.scaler.unscale_(state.optimizer)  # clip the true gradients, not the scaled ones
    grad_norm = float(torch.nn.utils.clip_grad_norm_(state.model.parameters(), args.max_grad_norm))
    if not math.isfinite(step_loss) or not (math.isfinite(grad_norm) or state.scaler):
        raise TrainingDiverged(
            f"training diverged at step {state.global_step + 1}: loss {step_loss:.4g}, gradient norm {grad_norm:.4g}; "
            "nothing of this step was applied or saved (checkpoints already written stay as they were). Lower "
            f"--learning_rate (now {args.learning_rate:g}) or --max_grad_norm (now {args.max_grad_norm:g})")
    skipped = bool(state.scaler) and not math.isfinite(grad_norm)  # the scaler skips exactly these steps
    if state.scaler:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    with warnings.catch_warnings():
        if skipped:
            # The schedule follows global_step, and a step the scaler skipped still counts as a step (the
            # checkpoints and --max_steps count it): the lr of that step is simply not used. PyTorch, seeing
            # the scheduler move on while the optimizer did not step, warns on the first such call that
            # "lr_scheduler.step() [came] before optimizer.step()"; here that is the intended order.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        state.scheduler.step()
    state.model.zero_grad(set_to_none=True)
    state.global_step += 1
    return None if skipped else grad_norm


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
