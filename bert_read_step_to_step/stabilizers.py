"""Zhang et al.'s other remedies for unstable few-sample fine-tuning ("Revisiting Few-sample BERT Fine-tuning",
ICLR 2021), next to re-initialization: the optimizer of the original BERT, mixout, and weight decay toward
the pre-trained weights. `run_classifier.py` turns them on with --use_bertadam, --mixout P and
--prior_weight_decay.

Each takes the pre-trained weights `w0` where it needs them, as {parameter name: tensor} of the parameters
that were loaded from the checkpoint (optimization.py's `stabilizer_priors`): a re-initialized or new parameter (the
classifier) has no pre-trained value, so mixout leaves it alone and its decay pulls it toward zero.
"""
import torch
import torch.nn.functional as F

from transformers.modeling_utils import Linear
from transformers.optimization import AdamW


# ---- the optimizer: Adam with decoupled weight decay, bias correction optional, decay toward a prior -------

class DecoupledAdam(AdamW):
    """transformers' AdamW (bias correction switchable: correct_bias=False is BERTAdam, see its docstring), whose
    weight decay can pull toward the pre-trained weights instead of toward zero.

    priors: {parameter: w0}. A parameter with a prior decays toward it, w -= lr * wd * (w - w0), instead of
    toward zero, w -= lr * wd * w (the --prior_weight_decay of Zhang et al.'s code).

    With correct_bias=True and no priors this is torch.optim.AdamW's rule; run_classifier uses torch's
    (fused, faster) whenever neither stabilizer is on. The priors are not part of state_dict(): they are
    the pre-trained weights, which a resumed run reads again from the checkpoint it was started from.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, correct_bias=False,
                 priors=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, correct_bias=correct_bias)
        self.priors = priors or {}

    def decay_pull(self, param):
        prior = self.priors.get(param)
        return param - prior if prior is not None else param


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
