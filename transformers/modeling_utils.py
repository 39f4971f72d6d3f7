"""Reading path, stop 6 (README): loading pre-trained weights into a model, and re-initializing the ones
you choose.

Takes a model directory (or a weights file, or a URL) and hands on a ready model of the class it was called on
(`BertModel`, `BertForSequenceClassification`, `AlbertForSequenceClassification`, ...) plus a `LoadingInfo` that
says where every tensor came from. Each model class names its config class and the prefix of its encoder's
weights (`config_class`, `base_model_prefix`); everything below works from those two.

`PreTrainedModel.from_pretrained` reads top to bottom as named steps:
    find files -> read config -> build model -> read state dict -> choose what to load and what to reinit
    -> load -> initialize what was not loaded -> report

A trained classification head comes with its label names (config `id2label`). Given the task's labels
(`labels=`), step 5 reorders the head's rows into the task's order, so that row i scores task label i
however the checkpoint numbered them; `match_head_to_labels` is the one place this happens.

The article this code is read with puts names into `unexpected_keys` before `_load_from_state_dict`, expecting
those tensors to stay un-loaded. They do not: PyTorch's `_load_from_state_dict` copies every tensor it finds
in the state dict and only *appends* to `unexpected_keys`; it never reads that list. Here the chosen keys
are removed from the state dict itself before `load()` runs, and re-initialized afterwards.
See `tests/test_reinit.py::test_article_line_does_not_reinit` for the executable version of this paragraph.

Floors, lowest first: this file -> compat_2x.py (PreTrainedModel2x: transformers 2.x's from_pretrained arguments,
resize_token_embeddings, the output switches) -> modeling_bert.py and the other families, whose model classes
derive from PreTrainedModel2x. This file never imports compat_2x.py (tests/test_layout.py).
"""
import difflib
import functools
import fnmatch
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_bert import BertConfig, LoadingError
from .file_utils import (CONFIG_NAME, PICKLE_WEIGHTS_NAME, SAFE_WEIGHTS_NAME, BadValueError, RemoteFileNotFound,
                         cached_path, is_remote_url, join_path_or_url, redact_url, sibling_url, url_file_name,
                         write_atomically)
from .hub import MODEL_LAYOUTS, local_model_path
from .tf_checkpoint import find_checkpoint_index, state_dict_reader

logger = logging.getLogger(__name__)

# Keys that checkpoints carry but that are not learned weights: older BertModels saved the
# `position_ids` range [0..511] as a buffer. We compute it on the fly, so the key is dropped silently.
IGNORED_CHECKPOINT_KEYS = re.compile(r"(^|\.)position_ids$")

# Keys of BERT's classification head: the only weights whose rows stand for label names. A model class whose
# head is built otherwise names its own (`PreTrainedModel.label_row_keys`).
HEAD_KEYS = ("classifier.weight", "classifier.bias")


class ModelOutput(Mapping):
    """Base of the output dataclasses: read them by attribute, by name or by position.

    Code written for transformers 2.x got a tuple from the model; today's transformers returns an object that
    is also a dict. Both styles work here, with the fields that are None left out of the numbering:
        outputs.logits == outputs["logits"] == outputs[0]        (no labels given: loss is None)
        outputs.loss   == outputs["loss"]   == outputs[0]        (labels given: outputs[1] is the logits)
        loss, logits = outputs.to_tuple()
    """

    def to_tuple(self):
        return tuple(self[name] for name in self)

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in tuple(iter(self)):
                raise KeyError(f"{type(self).__name__} has no {key!r} here; it has {list(self)}")
            return getattr(self, key)
        return self.to_tuple()[key]  # an int or a slice, as on 2.x's tuple

    def __iter__(self):
        return (f.name for f in fields(self) if getattr(self, f.name) is not None)

    def __len__(self):
        return sum(1 for _ in self)


@dataclass(eq=False)
class LoadingInfo(Mapping):
    """Where each tensor came from. All lists hold parameter names in the model's naming.

    It is also the dict that transformers returns (`info["missing_keys"]`, `dict(info)`), with one more key,
    `reinit_keys`.
    """
    missing_keys: List[str] = field(default_factory=list)  # the model has them, the checkpoint did not
    unexpected_keys: List[str] = field(default_factory=list)  # the checkpoint had them, we did not use them
    mismatched_keys: List[str] = field(default_factory=list)  # same name, other shape (ignore_mismatched_sizes)
    error_msgs: List[str] = field(default_factory=list)  # what PyTorch's loader reported
    reinit_keys: List[str] = field(default_factory=list)  # re-initialized on purpose (reinit_keys)

    def __getitem__(self, name):
        if name not in self.__dataclass_fields__:
            raise KeyError(f"LoadingInfo has no {name!r}; it has {list(self.__dataclass_fields__)}")
        return getattr(self, name)

    def __iter__(self):
        return iter(self.__dataclass_fields__)

    def __len__(self):
        return len(self.__dataclass_fields__)


# ---- the init rule ---------------------------------------------------------------------------------------

def init_parameter(module, name, std, generator=None):
    """Initialize `module.<name>` in place by BERT's rule for the module's kind.

    Linear and Embedding weights ~ N(0, std); biases 0; LayerNorm weight 1 and bias 0. An Embedding's padding
    row is zeroed, as at pre-training. A module that holds bare parameters of its own (XLNet's attention keeps
    its projections and biases as plain tensors) lists them in `normal_init_parameters`: those ~ N(0, std) too.
    `generator` makes the draw independent of the global RNG.
    """
    tensor = getattr(module, name)
    with torch.no_grad():
        if isinstance(module, nn.LayerNorm):
            tensor.fill_(1.0 if name == "weight" else 0.0)
        elif name in getattr(module, "normal_init_parameters", ()):
            tensor.normal_(mean=0.0, std=std, generator=generator)
        elif name == "bias":
            tensor.zero_()
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            tensor.normal_(mean=0.0, std=std, generator=generator)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                tensor[module.padding_idx].zero_()
        else:
            raise TypeError(f"no init rule for parameter {name!r} of {type(module).__name__}")


class Linear(nn.Linear):
    """`nn.Linear` whose constructor leaves its tensors uninitialized.

    PyTorch's layers initialize themselves when built (Kaiming-uniform for Linear, N(0, 1) for Embedding).
    BERT has its own rule, applied by `PreTrainedModel.init_weights`, and `from_pretrained` is about to fill
    most tensors from the checkpoint anyway. So our layers skip PyTorch's draw: every value a model holds
    comes either from a checkpoint or from `init_weights`, the one place that initializes.
    """

    def reset_parameters(self):
        pass

    def forward(self, input):
        fused = inference_linear(input, self.weight, self.bias)  # None while training, or off CPU
        return F.linear(input, self.weight, self.bias) if fused is None else fused


def _onednn_linear():
    """oneDNN's linear op, which applies the bias (and an activation) as the matmul writes each output tile;
    None in a PyTorch built without oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


def _onednn_bf16():
    """Whether oneDNN computes bf16 on this CPU (it refuses, with an error, on CPUs without AVX-512)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


ONEDNN_LINEAR = _onednn_linear()
ONEDNN_BF16 = ONEDNN_LINEAR is not None and _onednn_bf16()


def inference_linear(input, weight, bias, activation="none", residual=None):
    """input @ weight^T + bias, then `activation` ("none", or "gelu": the exact erf form) or + `residual` (a
    tensor of the output's shape), as one oneDNN call; None where that call does not apply, and the caller
    computes the same thing the plain way.

    Why: on CPU `F.linear` first copies the bias into every row of its output and then lets the matmul add
    onto it, and a GELU or a residual addition after it is one more pass over the activations. oneDNN does
    them while each output tile is still in cache. The op has no backward, so it serves only when no gradient
    is recorded (evaluation, prediction); in fp32, or in bf16 under bf16 autocast, casting as autocast would.
    benchmarks/README.md has the measurement; tests/test_modeling.py compares it with F.linear.
    """
    if ONEDNN_LINEAR is None or torch.is_grad_enabled() or input.device.type != "cpu" or bias is None:
        return None
    if torch.is_autocast_enabled("cpu"):
        # autocast casts only fp32 tensors (float64 stays float64): anything else takes the plain path
        if torch.get_autocast_dtype("cpu") != torch.bfloat16 or torch.float64 in (input.dtype, weight.dtype):
            return None
        input, weight, bias = (tensor.to(torch.bfloat16) for tensor in (input, weight, bias))
    if not (input.dtype == torch.float32 or (input.dtype == torch.bfloat16 and ONEDNN_BF16)):
        return None
    if not input.dtype == weight.dtype == bias.dtype:
        return None
    if residual is not None and residual.dtype != input.dtype:
        # `residual + output` would be computed in the wider dtype (an fp32 residual stream under bf16
        # autocast); rounding the residual to the matmul's dtype here would not be the same sum.
        return None
    if residual is not None:
        # [.., in] -> [.., out], plus residual [.., out] in the same pass
        return ONEDNN_LINEAR.binary(input, residual.contiguous(), weight, bias, "add")
    # [.., in] -> [.., out]; the last argument names GELU's form ("none": erf), empty for no activation.
    return ONEDNN_LINEAR(input, weight, bias, activation, [], "none" if activation == "gelu" else "")


class Embedding(nn.Embedding):
    """`nn.Embedding` whose constructor leaves its table uninitialized (see `Linear`)."""

    def reset_parameters(self):
        pass


class PreTrainedModel(nn.Module):
    """Base of every model here: holds the config, the init rule, saving and `from_pretrained`."""

    # The config class that from_pretrained reads config.json with, and whose instances the model takes.
    config_class = BertConfig
    # Checkpoints of a head model (BertForSequenceClassification) name the encoder's weights `bert.*`.
    base_model_prefix = "bert"
    # The weights whose rows stand for label names (see `match_head_to_labels`).
    label_row_keys = HEAD_KEYS
    # Models with Google's pre-training heads (BertForPreTraining) read `cls/...` from TensorFlow checkpoints.
    reads_pretraining_heads = False
    # Keys that are another parameter under a second name (a masked-LM decoder is the word-embedding table):
    # not saved, not reported missing, tied again after loading (`tie_weights`).
    tied_keys = ()
    # transformers 2.x's name for the config class's table of shortcut names (hub.SHORTCUT_NAMES): the
    # same table, set for each model class from its config_class.
    pretrained_model_archive_map = config_class.pretrained_config_archive_map

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.pretrained_model_archive_map = cls.config_class.pretrained_config_archive_map

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config
        self.loading_info = LoadingInfo()

    def init_weights(self, names=None, std=None, generator=None):
        """Apply the init rule to the named parameters (all of them by default)."""
        std = self.config.initializer_range if std is None else std
        modules = dict(self.named_modules())
        for full_name in (names if names is not None else [n for n, _ in self.named_parameters()]):
            module_name, _, param_name = full_name.rpartition(".")
            init_parameter(modules[module_name], param_name, std, generator)

    def tie_weights(self):
        """Make each of `tied_keys` the same tensor as the parameter it stands for (models with tied_keys)."""

    # ---- saving ----------------------------------------------------------------------------------------

    def save_pretrained(self, directory, safe_serialization=True):
        """Write config.json and the weights (model.safetensors, or pytorch_model.bin) into `directory`.

        Each file is written to a temporary name and renamed into place, so a crash mid-save never leaves a
        half-written file under the real name. Hugging Face transformers loads the result as is.
        """
        os.makedirs(directory, exist_ok=True)
        self.config.extra["architectures"] = [type(self).__name__]
        self.config.save_pretrained(directory)
        state = {name: tensor.detach().contiguous() for name, tensor in self.state_dict().items()
                 if name not in self.tied_keys}
        if safe_serialization:
            from safetensors.torch import save_file
            write_atomically(os.path.join(directory, SAFE_WEIGHTS_NAME),
                              lambda path: save_file(state, path, metadata={"format": "pt"}))
        else:
            write_atomically(os.path.join(directory, PICKLE_WEIGHTS_NAME), lambda path: torch.save(state, path))

    # ---- from_pretrained -------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, config=None, state_dict=None,
                        output_loading_info=False, reinit_keys=None, reinit_std=None, reinit_seed=None,
                        ignore_mismatched_sizes=False, cache_dir=None, force_download=False, local_files_only=False,
                        labels=None, allow_non_finite=False, revision=None, **config_overrides):
        """Build a model and fill it from a checkpoint.

        pretrained_model_name_or_path: a directory with config.json and model.safetensors (preferred) or
            pytorch_model.bin, a weights file, or the URL of a directory or file. A directory of Google's original
            TensorFlow release (bert_config.json, bert_model.ckpt.index, ...; ALBERT's albert_config.json,
            model.ckpt-best.index, ...) is converted in memory. Any other name is a Hub repo id
            ("bert-base-chinese", "hfl/chinese-roberta-wwm-ext"), fetched at `revision` (see hub.py).
        reinit_keys: selectors of parameters to re-initialize instead of loading: an exact name
            (`bert.encoder.layer.0.attention.self.query.weight`), a module prefix (`bert.encoder.layer.5`),
            or a glob (`bert.encoder.layer.[45].*`); with or without the `bert.` prefix.
        reinit_std / reinit_seed: the std of the normal draw (default: config.initializer_range) and the
            seed of the dedicated generator it draws from.
        cache_dir / force_download / local_files_only: how remote files are fetched (see `cached_path`).
        labels: the task's label names, in the order its data numbers them. The head gets one row per name,
            and a head loaded from the checkpoint is reordered to match (see `match_head_to_labels`).
        allow_non_finite: load a checkpoint that holds NaN or inf (a diverged run's), with a WARNING naming
            the tensors, instead of refusing it; for inspecting such a file, never for training on it.
        Returns the model, or (model, LoadingInfo) with output_loading_info=True. The info is also kept as
        `model.loading_info`.
        """
        # transformers 2.x's extra arguments (from_tf, proxies, resume_download) were taken before this line, by
        # compat_2x.PreTrainedModel2x.from_pretrained, which every family's model classes inherit; the rest are ours.
        # 1. Find files. A Hub name becomes its snapshot folder here; a URL is fetched file by file below.
        fetch = functools.partial(cached_path, cache_dir=cache_dir, force_download=force_download,
                                  local_files_only=local_files_only)
        pretrained_model_name_or_path = local_model_path(
            pretrained_model_name_or_path, MODEL_LAYOUTS, what=cls.__name__, revision=revision, cache_dir=cache_dir,
            force_download=force_download, local_files_only=local_files_only)
        config_file, weights_file = _find_files(pretrained_model_name_or_path, config, state_dict, fetch)

        # 2. Read the config.
        #    The config class refuses a config.json whose model_type is another family's.
        if config is None:
            config = cls.config_class.from_pretrained(config_file, **config_overrides)
        elif config_overrides:
            raise TypeError(f"config overrides {sorted(config_overrides)} given together with a config object; "
                            "set them on the config instead")
        checkpoint_labels = config.label_names  # what the checkpoint's head rows mean, if it says
        if labels is not None:
            config = config.with_labels(labels)

        # 3. Build the model with its tensors allocated but not initialized: a full random init of tensors
        #    the checkpoint is about to overwrite would be wasted work (for BERT-base, ~110M normal draws).
        #    `initialize=False` skips our init rule, and our Linear and Embedding layers draw nothing when built.
        #    (ALBERT's classes build albert_zh's network for a config with ln_type: see modeling_albert.py.)
        model = cls(config, initialize=False)

        # 4. Read the state dict, in the model's naming. A TensorFlow checkpoint is renamed from Google's names
        #    here; what it holds that no model uses (Adam's slots, global_step, the cls/ heads) is only listed.
        #    Whatever the format, a tensor with NaN or inf stops the load here (see `check_finite`).
        source, unused_in_checkpoint = weights_file or "the given state_dict", []
        if state_dict is None and weights_file.endswith(".index"):
            read_checkpoint = state_dict_reader(cls.config_class.model_type)
            if read_checkpoint is None:
                raise LoadingError(f"{weights_file}: a TensorFlow checkpoint; Google's names are mapped for BERT "
                                   f"and ALBERT (and CMU's for XLNet) only, not for {cls.__name__}. Convert it "
                                   "with the reference library first")
            if model.reads_pretraining_heads:
                read_checkpoint = functools.partial(read_checkpoint, heads=True)
            converted = read_checkpoint(weights_file)
            state_dict, unused_in_checkpoint = converted.state_dict, converted.unused
            source = f"{weights_file} (TensorFlow checkpoint, converted in memory)"
        elif state_dict is None:
            state_dict = read_state_dict(weights_file)
            warn_if_pickle_named_safetensors(weights_file, cls.__name__)
        check_finite(state_dict, source, allow_non_finite)
        state_dict = match_to_model(state_dict, model)

        # 5. Choose what to load and what to re-initialize.
        info = LoadingInfo()
        info.reinit_keys = resolve_reinit_keys(model, reinit_keys or [], checkpoint_keys=state_dict.keys())
        for key in info.reinit_keys:
            if state_dict.pop(key, None) is not None:
                # The checkpoint had it and we chose not to use it: that is what `unexpected_keys` means.
                info.unexpected_keys.append(key)
        if labels is not None:
            match_head_to_labels(state_dict, labels, checkpoint_labels, _config_path(config_file) or "the config",
                                 ignore_mismatched_sizes, head_keys=model.label_row_keys)
        info.mismatched_keys = _drop_mismatched(model, state_dict, ignore_mismatched_sizes, source)

        # 6. Load: walk the modules and let each copy its own tensors out of the state dict.
        load_missing, load_unexpected = [], []
        load(model, state_dict, load_missing, load_unexpected, info.error_msgs)
        if info.error_msgs:
            raise LoadingError(f"{source}: errors while loading into {cls.__name__}:\n  "
                               + "\n  ".join(info.error_msgs))
        info.unexpected_keys += load_unexpected + unused_in_checkpoint
        reinit = set(info.reinit_keys)
        info.missing_keys = [key for key in load_missing if key not in reinit and key not in info.mismatched_keys
                             and key not in model.tied_keys]
        _check_architecture(model, state_dict, info, source)

        # 7. Initialize everything that did not come from the checkpoint.
        #    New keys (e.g. the classifier head) draw from the global RNG, so `--seed` fixes them. Re-initialized
        #    keys draw from their own generator in the model's parameter order, so the same reinit_seed gives the
        #    same values whatever else used the global RNG before.
        model.init_weights(info.missing_keys + info.mismatched_keys)
        generator = torch.Generator()
        generator.manual_seed(reinit_seed if reinit_seed is not None else torch.initial_seed())
        model.init_weights(info.reinit_keys, std=reinit_std, generator=generator)
        model.tie_weights()  # loading assigned each name its own tensor; tied names share one again

        # 8. Report.
        model.loading_info = info
        logger.info(format_loading_report(type(model).__name__, source, model, info, reinit_std, reinit_seed))
        model.eval()  # as a loaded model should start; training code calls model.train()
        return (model, info) if output_loading_info else model


# ---- step 1: find files ------------------------------------------------------------------------------------

def _find_files(path, config, state_dict, fetch):
    """Return (config_file_or_dir, weights_file); either may be None when the caller passed the object.

    fetch: `cached_path` with this call's cache options bound.
    """
    if path is None:
        if config is None or state_dict is None:
            raise ValueError("from_pretrained(None, ...) needs both config= and state_dict=")
        return None, None
    path = str(path)
    if os.path.isdir(path):
        for name in (SAFE_WEIGHTS_NAME, PICKLE_WEIGHTS_NAME):
            if os.path.isfile(os.path.join(path, name)):
                weights = os.path.join(path, name)
                break
        else:
            # Google's original releases: bert_model.ckpt.index and bert_model.ckpt.data-00000-of-00001.
            weights = find_checkpoint_index(path)
            if weights is None and state_dict is None:
                raise FileNotFoundError(f"{path}: no weights file; expected {SAFE_WEIGHTS_NAME} or "
                                        f"{PICKLE_WEIGHTS_NAME}, "
                                        "or a TensorFlow checkpoint (*.index with its .data-* files)")
        return path, weights
    if is_remote_url(path) and not url_file_name(path).endswith((".safetensors", ".bin")):
        # A URL of a model directory: fetch its config, then the first weights file the server has.
        # Only "not there" (404) moves on to the next name; a server error or a cut download is an error.
        config_file = fetch(join_path_or_url(path, CONFIG_NAME)) if config is None else None
        errors = []
        for name in (SAFE_WEIGHTS_NAME, PICKLE_WEIGHTS_NAME):
            try:
                return config_file, fetch(join_path_or_url(path, name))
            except RemoteFileNotFound as error:
                errors.append(str(error))
        raise FileNotFoundError(f"{redact_url(path)}: no weights file could be fetched:\n  " + "\n  ".join(errors))
    # A weights file (local or URL): its config.json lies beside it.
    weights = fetch(path) if state_dict is None else None
    config_file = None
    if config is None:
        if path.endswith(".index") and not is_remote_url(path):
            # A TensorFlow checkpoint's .index: its folder holds config.json or Google's bert_config.json.
            config_file = os.path.dirname(os.path.abspath(path))
        elif is_remote_url(path):
            config_file = fetch(sibling_url(path, CONFIG_NAME))
        else:
            config_file = os.path.join(os.path.dirname(os.path.abspath(path)), CONFIG_NAME)
            if not os.path.isfile(config_file):
                raise FileNotFoundError(f"{path}: no {CONFIG_NAME} beside the weights file; pass config=")
    return config_file, weights


def _config_path(config_file):
    """config.json's path for messages: _find_files gives a model directory where it found one."""
    if config_file is not None and os.path.isdir(config_file):
        return os.path.join(config_file, CONFIG_NAME)
    return config_file


# ---- step 4: read the state dict -------------------------------------------------------------------------

def read_state_dict(path):
    """Read a safetensors or PyTorch weights file into {name: tensor}, or fail naming the file.

    A `.bin` is a pickle, and unpickling can run arbitrary code. It is therefore only read with
    `weights_only=True`, which accepts tensors and plain containers and refuses everything else.
    The format is told by the file's first bytes, not its name: a transformers 2.x script that
    `torch.save`s a state dict to folder/WEIGHTS_NAME writes a pickle called model.safetensors.
    """
    if not (path.endswith(".bin") or _is_torch_pickle(path)):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise LoadingError(f"{path}: not a readable safetensors file ({error}); "
                               "the file may be truncated or corrupt, download it again") from None
    try:
        # Files in torch's zip format are memory-mapped rather than read: tensors are paged in as they
        # are used, which makes loading several times faster. The old pre-zip format cannot be mapped.
        if path.endswith(".safetensors"):
            # torch.load reads any path named *.safetensors as safetensors; a pickle saved under that name (a
            # 2.x script's torch.save to WEIGHTS_NAME) goes in as an open file instead, and is not mapped.
            with open(path, "rb") as reader:
                state_dict = torch.load(reader, map_location="cpu", weights_only=True)
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0]
        raise LoadingError(
            f"{path}: refused to unpickle: this file needs more than tensors to load, and loading it "
            f"could run code ({first_line}). Only load .bin files you trust; ask for, or convert to, "
            f"{SAFE_WEIGHTS_NAME}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise LoadingError(f"{path}: not a readable PyTorch weights file ({str(error).strip()[:200]}); "
                           "the file may be truncated or corrupt, download it again") from None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise LoadingError(f"{path}: expected a dict of tensors, found {type(state_dict).__name__}")
    return state_dict


def check_finite(state_dict, source, allow_non_finite=False):
    """Refuse a state dict with NaN or inf in any floating tensor, naming the tensors and `source`.

    A run that diverged saves weights that are all NaN, and a model built from them predicts one class for
    every input without an error anywhere. One sum per tensor is cheap next to reading it.
    allow_non_finite=True logs the same finding as a WARNING and lets the load go on.
    """
    bad = [name for name, tensor in state_dict.items() if tensor.is_floating_point() and not _all_finite(tensor)]
    if not bad:
        return
    # e.g. "bert.pooler.dense.weight (147456 NaN of 147456)"
    described = [f"{name} ({_count_non_finite(state_dict[name])} of {state_dict[name].numel()})" for name in bad[:3]]
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    finding = f"{source}: {len(bad)} tensor(s) hold NaN or inf: {', '.join(described)}{more}"
    if allow_non_finite:
        logger.warning(f"{finding}; loaded anyway (allow_non_finite=True), this model's outputs are not meaningful")
        return
    raise LoadingError(f"{finding}; the run that saved it probably diverged (use an earlier checkpoint). "
                       "To inspect it anyway, pass allow_non_finite=True")


def _all_finite(tensor):
    # A NaN or an inf anywhere makes the sum NaN or inf, so a finite sum proves every value finite. Summing is
    # one pass with nothing to allocate, where isfinite(tensor) first builds a bool tensor as large as the
    # weights. A sum that overflows from finite values alone (fp16 sums can) is settled by the exact test.
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _count_non_finite(tensor):
    nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
    return " and ".join(part for part in (f"{nan} NaN" if nan else "", f"{inf} inf" if inf else "") if part)


def warn_if_pickle_named_safetensors(path, class_name):
    """WARNING for a torch pickle saved as model.safetensors (a 2.x script's `torch.save(state_dict,
    os.path.join(folder, WEIGHTS_NAME))`, the seed's XLNet converter for one). It has loaded here, but every other
    safetensors reader (Hugging Face transformers, safetensors.safe_open) refuses it, and a pickle is only as safe
    as weights_only makes it. The message names the file and the one line that rewrites it."""
    if not (path.endswith(".safetensors") and _is_torch_pickle(path)):
        return
    folder = os.path.dirname(os.path.abspath(path))
    logger.warning(f"{path}: a torch pickle (torch.save) under a safetensors name; loaded with "
                   "torch.load(weights_only=True), but other safetensors readers cannot open it. Rewrite it as "
                   f"real safetensors: python -c \"from transformers import {class_name} as M; "
                   f"M.from_pretrained({folder!r}).save_pretrained({folder!r})\"")


def _is_torch_pickle(path):
    """Whether `path` holds what torch.save writes: a zip archive (torch >= 1.6; it starts with "PK\\x03\\x04")
    or a bare pickle (older torch; it starts with the PROTO opcode, byte 0x80). A safetensors file starts with
    its header's size (8 bytes) and then the JSON header's "{"; that is checked first, since the size's bytes
    are arbitrary."""
    with open(path, "rb") as reader:
        head = reader.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False  # safetensors
    return head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"


def match_to_model(state_dict, model):
    """Rename checkpoint keys to the model's naming, and cast tensors to the model's dtype.

    - Old TensorFlow-converted checkpoints call LayerNorm's parameters `gamma`/`beta`.
    - A head model's checkpoint prefixes the encoder with `bert.`; a bare BertModel's does not. Either kind of
      checkpoint loads into either kind of model.
    """
    prefix = model.base_model_prefix + "."
    own = model.state_dict()
    renamed = {}
    for key, tensor in state_dict.items():
        if IGNORED_CHECKPOINT_KEYS.search(key):
            continue
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        if key not in own:
            if prefix + key in own:
                key = prefix + key
            elif key.startswith(prefix) and key[len(prefix):] in own:
                key = key[len(prefix):]
        if key in own and tensor.dtype != own[key].dtype and tensor.is_floating_point():
            # Loading assigns the checkpoint's tensor itself (see `load`), so an fp16 checkpoint would
            # otherwise make an fp16 model.
            tensor = tensor.to(own[key].dtype)
        renamed[key] = tensor
    return renamed


# ---- step 5: choose what to load and what to re-initialize -----------------------------------------------

def resolve_reinit_keys(model, selectors, checkpoint_keys=None):
    """Turn selectors into the model's parameter names, in the model's parameter order.

    A selector is an exact name, a dotted module prefix (`bert.encoder.layer.11` selects that whole layer), or
    a glob (`bert.encoder.layer.1[01].*`). It may be written with or without the `bert.` prefix, so names copied
    from either kind of checkpoint work. A selector that matches nothing is an error, never a silent no-op.
    """
    if isinstance(selectors, str):
        selectors = [selectors]
    names = [name for name, _ in model.named_parameters()]
    chosen = set()
    for selector in selectors:
        matched = _match_selector(selector, names, model.base_model_prefix + ".")
        if not matched:
            raise BadValueError(_no_match_message(selector, names, model, checkpoint_keys))
        chosen.update(matched)
    return [name for name in names if name in chosen]


def _match_selector(selector, names, prefix):
    spellings = {selector, selector[len(prefix):] if selector.startswith(prefix) else prefix + selector}
    matched = set()
    for spelling in spellings:
        if any(ch in spelling for ch in "*?["):
            # A glob selects the names it matches and, like a prefix, everything inside the modules it matches.
            matched.update(fnmatch.filter(names, spelling))
            matched.update(fnmatch.filter(names, spelling + ".*"))
        else:
            matched.update(n for n in names if n == spelling or n.startswith(spelling + "."))
    return matched


def _no_match_message(selector, names, model, checkpoint_keys):
    buffers = {name for name, _ in model.named_buffers()}
    stripped = IGNORED_CHECKPOINT_KEYS.search(selector) or selector in buffers
    if stripped or (checkpoint_keys is not None and selector in checkpoint_keys):
        reason = "it names a buffer or a non-parameter checkpoint entry, which is not re-initialized"
    elif any(ch in selector for ch in "*?["):
        reason = "the glob matches no parameter name and no module name"
    else:
        reason = "no parameter has that name or starts with that module prefix"
    modules = {name.rsplit(".", 1)[0] for name in names}
    close = difflib.get_close_matches(selector, sorted(set(names) | modules), n=3, cutoff=0.5)
    numbered = _past_the_last_index(selector, names, model.base_model_prefix + ".")
    if numbered and not reason.startswith("it names a buffer"):
        # bert.encoder.layer.9 on a 6-layer model: the useful answer is the range and the nearest layers,
        # not the names that share the most characters (bert.encoder.layer.5.output.dense).
        container, indexes, index, rest = numbered
        reason = f"{container} is numbered {indexes[0]}-{indexes[-1]} in this model ({len(indexes)} of them)"
        nearest = sorted(indexes, key=lambda number: abs(number - index))[:2]
        close = [f"{container}.{number}{rest}" for number in nearest
                 if any(name == f"{container}.{number}{rest}" or name.startswith(f"{container}.{number}{rest}.")
                        for name in names)]
    hint = f"; closest names: {', '.join(close)}" if close else "; run with --list_keys to see all names"
    return f"reinit selector {selector!r} matches no parameter of {type(model).__name__}: {reason}{hint}"


def _past_the_last_index(selector, names, prefix):
    """(container, its indexes, the index asked for, the rest) when `selector` indexes a numbered list of
    modules at a number it does not have: for bert.encoder.layer.9 on 6 layers, ("bert.encoder.layer",
    [0, ..., 5], 9, ""). None otherwise."""
    match = re.fullmatch(r"(.+?)\.(\d+)((?:\..+)?)", selector)
    if not match:
        return None
    container, index, rest = match.groups()
    for spelling in (container, prefix + container):
        indexes = sorted({int(part) for part in (name[len(spelling) + 1:].split(".")[0] for name in names
                                                 if name.startswith(spelling + ".")) if part.isdigit()})
        if indexes and int(index) not in indexes:
            return spelling, indexes, int(index), rest
    return None


def match_head_to_labels(state_dict, labels, checkpoint_labels, config_source, ignore_mismatched_sizes=False,
                         head_keys=HEAD_KEYS):
    """Reorder a loaded head's rows (in place) so that row i scores `labels[i]`.

    A checkpoint saved by transformers may number its classes in any order, e.g. id2label
    {0: "positive", 1: "negative", 2: "neutral"}, while the task numbers them alphabetically
    (negative=0, neutral=1, positive=2). Each task label takes the row that the checkpoint's label2id gives
    it: rows [1, 2, 0] here. Without this, every prediction would carry the wrong name.

    Nothing to do when the head is not in `state_dict` (new, or chosen for re-init) or when the checkpoint
    names no labels (LABEL_0, LABEL_1, ...: its rows are taken in order, as always). A checkpoint whose names
    differ from the task's is an error: its head was trained for other classes.
    """
    if head_keys[0] not in state_dict or checkpoint_labels is None:
        return
    if sorted(checkpoint_labels) == sorted(labels):
        label2id = {name: row for row, name in enumerate(checkpoint_labels)}
        rows = [label2id[name] for name in labels]
        if rows != list(range(len(labels))):
            logger.info("classifier rows reordered to the task's labels: %s",
                        ", ".join(f"{name} <- row {row}" for name, row in zip(labels, rows)))
            for key in head_keys:
                if key in state_dict:
                    state_dict[key] = state_dict[key][rows]  # [C, H] rows picked -> [C, H] in task order
        return
    if ignore_mismatched_sizes and len(checkpoint_labels) != len(labels):
        return  # the head is dropped as mismatched and starts anew
    raise LoadingError(f"{config_source}: the checkpoint's classifier was trained for the labels "
                       f"{checkpoint_labels}, but the task has the labels {list(labels)}; to train a new "
                       "head for this task, re-initialize it (--reinit_keys classifier)")


def _drop_mismatched(model, state_dict, ignore_mismatched_sizes, source):
    """Keys whose checkpoint shape differs from the model's: an error, or dropped and reported."""
    own = model.state_dict()
    mismatched = [key for key in own if key in state_dict and state_dict[key].shape != own[key].shape]
    shapes = [f"{key}: {list(state_dict[key].shape)} in the checkpoint, {list(own[key].shape)} in the model"
              for key in mismatched]
    if mismatched and not ignore_mismatched_sizes:
        raise LoadingError(f"{source}: shapes differ for\n  " + "\n  ".join(shapes)
                           + "\nfix the config (e.g. num_labels) or pass ignore_mismatched_sizes=True "
                           "to re-initialize these keys")
    for key, line in zip(mismatched, shapes):
        logger.warning("%s: %s; re-initializing it", source, line)
        del state_dict[key]
    return mismatched


# ---- step 6: load --------------------------------------------------------------------------------------

def load(model, state_dict, missing_keys, unexpected_keys, error_msgs):
    """Copy tensors into the model module by module, as transformers 2.x's `load()` does.

    Each module's `_load_from_state_dict` looks for `prefix + name` for its own parameters. For each one it finds,
    it takes the tensor; for each one it does not, it appends to `missing_keys`; keys under its prefix that are
    neither its own nor a child's go to `unexpected_keys`. It never *reads* those lists: a key listed in
    `unexpected_keys` beforehand (the article's one line) is still loaded if it is in `state_dict`. Removing a
    key from `state_dict`, as step 5 did, is the only way to keep it from loading.
    """
    # With "assign", a parameter becomes the checkpoint's tensor itself instead of a copy into the
    # uninitialized tensor built in step 3: one copy of the weights in memory rather than two.
    metadata = {"assign_to_params_buffers": True}

    def load_module(module, prefix=""):
        module._load_from_state_dict(state_dict, prefix, metadata, True, missing_keys, unexpected_keys,
                                     error_msgs)
        for name, child in module._modules.items():
            if child is not None:
                load_module(child, prefix + name + ".")

    load_module(model)


def _check_architecture(model, state_dict, info, source):
    """A checkpoint of which no tensor matched is not a BERT checkpoint: say so instead of loading noise."""
    used = len(state_dict) - len([k for k in info.unexpected_keys if k in state_dict])
    if state_dict and used == 0:
        sample = ", ".join(list(state_dict)[:3])
        raise LoadingError(f"{source}: none of its {len(state_dict)} tensors is a parameter of "
                           f"{type(model).__name__} (first keys: {sample}); is it a checkpoint of another "
                           "architecture?")


# ---- step 8: report ------------------------------------------------------------------------------------

# A name's module, for the report: down to a layer's number (BERT's `layer.4`, ALBERT's `albert_layer_groups.0`,
# TensorFlow's `layer_4`), else its first two parts.
MODULE_OF_NAME = r"^(.*?[./](?:layer|albert_layer_groups)[._]\d+|[^./]+[./][^./]+|[^./]+)[./]"


def group_by_module(names, depth_pattern=MODULE_OF_NAME):
    """{'bert.encoder.layer.4': ['attention.self.query.weight', ...], 'bert.pooler': [...], ...}.

    ALBERT's names group by layer group: 'albert.encoder.albert_layer_groups.0': ['albert_layers.0.ffn.weight', ...].

    TensorFlow names group the same way: 'bert/encoder/layer_4': ['attention/self/query/kernel/adam_m', ...].
    """
    groups: Dict[str, List[str]] = {}
    for name in names:
        match = re.match(depth_pattern, name)
        head = match.group(1) if match else name
        groups.setdefault(head, []).append(name[len(head) + 1:] if match else "")
    return groups


# The report's words for where a parameter came from; run_classifier's --list_keys uses the same ones.
REINIT_WORDS = "re-initialized on request"
MISSING_WORDS = "missing from checkpoint, newly initialized"
UNUSED_WORDS = "in checkpoint but not used"


def format_loading_report(model_name, source, model, info, reinit_std, reinit_seed):
    total = sum(1 for _ in model.named_parameters())
    not_loaded = set(info.missing_keys) | set(info.reinit_keys) | set(info.mismatched_keys)
    lines = [f"Loading {model_name} from {source}",
             f"  loaded from checkpoint: {total - len(not_loaded)} of {total} parameter tensors"]

    def section(title, names):
        if not names:
            return
        lines.append(f"  {title}: {len(names)}")
        for head, members in group_by_module(names).items():
            lines.append(f"    {head}: {len(members)} ({', '.join(m for m in members if m) or head})")

    std = reinit_std if reinit_std is not None else model.config.initializer_range
    section(f"{REINIT_WORDS} (std={std}, seed={reinit_seed})", info.reinit_keys)
    section(MISSING_WORDS, info.missing_keys)
    section("shape mismatch, newly initialized", info.mismatched_keys)
    unused = [key for key in info.unexpected_keys if key not in set(info.reinit_keys)]
    section(UNUSED_WORDS, unused)
    if len(unused) < len(info.unexpected_keys):
        lines.append(f"  (the {len(info.unexpected_keys) - len(unused)} re-initialized keys the checkpoint had "
                     "are also in unexpected_keys: it had them, we did not use them)")
    return "\n".join(lines)


def top_layer_selectors(config, num_layers, pooler=False, layer_prefix="bert.encoder.layer",
                        pooler_name="bert.pooler"):
    """Selectors for the top `num_layers` encoder layers (and the pooler), e.g. 2 of 6 -> layers 4 and 5.

    layer_prefix / pooler_name: where the family keeps them (XLNet: `transformer.layer`, `sequence_summary`).
    """
    total = config.num_hidden_layers
    if not 0 <= num_layers <= total:
        raise BadValueError(f"cannot re-initialize the top {num_layers} layers: the model has {total} "
                            f"encoder layers (choose 0..{total})")
    selectors = [f"{layer_prefix}.{index}" for index in range(total - num_layers, total)]
    if pooler:
        selectors.append(pooler_name)
    return selectors
