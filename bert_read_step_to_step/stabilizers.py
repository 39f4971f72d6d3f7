"""Zhang et al.'s other remedies for unstable few-sample fine-tuning ("Revisiting Few-sample BERT Fine-tuning",
ICLR 2021), next to re-initialization: the optimizer of the original BERT, mixout, and weight decay toward
the pre-trained weights. `run_classifier.py` turns them on with --use_bertadam, --mixout P and
--prior_weight_decay.

Each takes the pre-trained weights `w0` where it needs them, as {parameter name: tensor} of the parameters
that were loaded from the checkpoint (optimization.py's `stabilizer_priors`): a re-initialized or new parameter (the
classifier) has no pre-trained value, so mixout leaves it alone and its decay pulls it toward zero.
"""
import math

import torch
import torch.nn.functional as F

from transformers.modeling_utils import Linear


# ---- the optimizer: Adam with decoupled weight decay, bias correction optional, decay toward a prior -------

class DecoupledAdam(torch.optim.Optimizer):
    """Adam with decoupled weight decay (AdamW), written out so that two things can be switched:

    correct_bias=False gives BERTAdam, the optimizer of the original BERT: Adam's moving averages m and v
    start at zero, and Adam divides them by (1 - beta1^t) and (1 - beta2^t) so that early steps are not
    biased toward zero. BERT's optimizer leaves that out. With beta1 = 0.9, beta2 = 0.999 the first step
    is then lr * g (1 - beta1) / (sqrt((1 - beta2) g^2) + eps) ~ lr * 0.1 / 0.0316 ~ 3.16 lr in size where
    AdamW's is lr: early steps are too large, which is what Zhang et al. found makes runs fail.

    priors: {parameter: w0}. A parameter with a prior decays toward it, w -= lr * wd * (w - w0), instead of
    toward zero, w -= lr * wd * w (the --prior_weight_decay of Zhang et al.'s code).

    With correct_bias=True and no priors this is torch.optim.AdamW's rule; run_classifier uses torch's
    (fused, faster) whenever neither stabilizer is on. The priors are not part of state_dict(): they are
    the pre-trained weights, which a resumed run reads again from the checkpoint it was started from.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, correct_bias=False,
                 priors=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      correct_bias=correct_bias))
        self.priors = priors or {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                # Decoupled decay, applied to the weight before the Adam step (as torch's AdamW does).
                if group["weight_decay"]:
                    prior = self.priors.get(param)
                    pulled_from = param - prior if prior is not None else param
                    param.sub_(pulled_from, alpha=group["lr"] * group["weight_decay"])
                state["exp_avg"].mul_(beta1).add_(param.grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
                step_size, denominator = group["lr"], state["exp_avg_sq"].sqrt()
                if group["correct_bias"]:
                    step_size = step_size / (1 - beta1 ** state["step"])
                    denominator = denominator / math.sqrt(1 - beta2 ** state["step"])
                param.addcdiv_(state["exp_avg"], denominator.add_(group["eps"]), value=-step_size)
        return loss


# ---- mixout --------------------------------------------------------------------------------------------

def mixout(weight, target, p):
    """Lee et al.'s mixout(w; w0, p) (ICLR 2020): each element of `weight` is swapped for its pre-trained
    value `target` with probability p, then the mix is shifted and scaled so that its expectation is `weight`:

        mask ~ Bernoulli(1 - p), elementwise
        w_mix = (mask * w + (1 - mask) * w0 - p * w0) / (1 - p)
        E[w_mix] = ((1 - p) w + p w0 - p w0) / (1 - p) = w

    Dropout is the case w0 = 0. The gradient reaches only the kept elements (scaled by 1 / (1 - p)), so the
    swapped ones stay where the pre-trained model had them for this step: a pull toward w0 whose strength
    grows with p.
    """
    mask = torch.empty_like(weight).bernoulli_(1 - p)
    return (mask * weight + (1 - mask) * target - p * target) / (1 - p)


class MixoutLinear(Linear):
    """A Linear layer whose weight goes through `mixout` in training; in eval it is the plain layer.

    It holds the very same weight and bias Parameters as the layer it replaces, so the optimizer, the
    state_dict keys and the saved files are unchanged: a model trained with mixout loads anywhere as a plain
    BERT. The pre-trained weight is a buffer that is not saved (persistent=False), moved with the model.
    """

    def __init__(self, layer, target, p):
        torch.nn.Module.__init__(self)  # no new tensors: the layer's own are adopted below
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.weight, self.bias = layer.weight, layer.bias
        self.register_buffer("target", target, persistent=False)
        self.p = p

    def forward(self, input):
        weight = mixout(self.weight, self.target, self.p) if self.training else self.weight
        return F.linear(input, weight, self.bias)

    def extra_repr(self):
        return f"{super().extra_repr()}, mixout p={self.p}"


def add_mixout(model, pretrained, p):
    """Replace, inside `model`, each Linear layer whose weight is pre-trained (its name is in `pretrained`)
    by a MixoutLinear mixing toward that weight. Returns the names of the replaced layers."""
    replaced = []
    for name, module in list(model.named_modules()):
        if isinstance(module, Linear) and not isinstance(module, MixoutLinear) and f"{name}.weight" in pretrained:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            setattr(parent, child, MixoutLinear(module, pretrained[f"{name}.weight"], p))
            replaced.append(name)
    return replaced
