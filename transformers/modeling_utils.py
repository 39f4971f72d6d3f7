"""Step 4: loading pre-trained weights into a model, and re-initializing the ones you choose.

Takes a model directory (or a weights file, or a URL) and hands on a ready `BertModel` /
`BertForSequenceClassification` plus a `LoadingInfo` that says where every tensor came from.

`PreTrainedModel.from_pretrained` reads top to bottom as named steps:
    find files -> read config -> build model -> read state dict -> choose what to load and what to reinit
    -> load -> initialize what was not loaded -> report

The article this code is read with puts names into `unexpected_keys` before `_load_from_state_dict`, expecting
those tensors to stay un-loaded. They do not: PyTorch's `_load_from_state_dict` copies every tensor it finds
in the state dict and only *appends* to `unexpected_keys`; it never reads that list. Here the chosen keys
are removed from the state dict itself before `load()` runs, and re-initialized afterwards.
See `tests/test_reinit.py::test_article_line_does_not_reinit` for the executable version of this paragraph.
"""
import contextlib
import difflib
import fnmatch
import logging
import os
import pickle
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from torch import nn

from .configuration_bert import BertConfig
from .file_utils import (CONFIG_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_NAME, cached_path, is_remote_url,
                         join_path_or_url)

logger = logging.getLogger(__name__)

# Keys that checkpoints carry but that are not learned weights: older BertModels saved the
# `position_ids` range [0..511] as a buffer. We compute it on the fly, so the key is dropped silently.
IGNORED_CHECKPOINT_KEYS = re.compile(r"(^|\.)position_ids$")

# Model types whose checkpoints use BERT's architecture and parameter names (Chinese RoBERTa-wwm is one).
BERT_ARCHITECTURE_TYPES = {"bert", "roberta"}


@dataclass
class LoadingInfo:
    """Where each tensor came from. All lists hold parameter names in the model's naming."""
    missing_keys: List[str] = field(default_factory=list)  # the model has them, the checkpoint did not
    unexpected_keys: List[str] = field(default_factory=list)  # the checkpoint had them, we did not use them
    mismatched_keys: List[str] = field(default_factory=list)  # same name, other shape (ignore_mismatched_sizes)
    error_msgs: List[str] = field(default_factory=list)  # what PyTorch's loader reported
    reinit_keys: List[str] = field(default_factory=list)  # re-initialized on purpose (reinit_keys)

    def as_dict(self):
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}


class LoadingError(ValueError):
    """A checkpoint could not be used: the message names the file and the key."""


# ---- the init rule ---------------------------------------------------------------------------------------

def init_parameter(module, name, std, generator=None):
    """Initialize `module.<name>` in place by BERT's rule for the module's kind.

    Linear and Embedding weights ~ N(0, std); biases 0; LayerNorm weight 1 and bias 0. An Embedding's padding
    row is zeroed, as at pre-training. `generator` makes the draw independent of the global RNG.
    """
    tensor = getattr(module, name)
    with torch.no_grad():
        if isinstance(module, nn.LayerNorm):
            tensor.fill_(1.0 if name == "weight" else 0.0)
        elif name == "bias":
            tensor.zero_()
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            tensor.normal_(mean=0.0, std=std, generator=generator)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                tensor[module.padding_idx].zero_()
        else:
            raise TypeError(f"no init rule for parameter {name!r} of {type(module).__name__}")


class PreTrainedModel(nn.Module):
    """Base of every model here: holds the config, the init rule, saving and `from_pretrained`."""

    # Checkpoints of a head model (BertForSequenceClassification) name the encoder's weights `bert.*`.
    base_model_prefix = "bert"

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        self.config = config
        self.loading_info = LoadingInfo()

    def init_weights(self, names=None, std=None, generator=None):
        """Apply the init rule to the named parameters (all of them by default)."""
        if _skipping_init and names is None:
            return
        std = self.config.initializer_range if std is None else std
        modules = dict(self.named_modules())
        for full_name in (names if names is not None else [n for n, _ in self.named_parameters()]):
            module_name, _, param_name = full_name.rpartition(".")
            init_parameter(modules[module_name], param_name, std, generator)

    # ---- saving ----------------------------------------------------------------------------------------

    def save_pretrained(self, directory, safe_serialization=True):
        """Write config.json and the weights (model.safetensors, or pytorch_model.bin) into `directory`.

        Each file is written to a temporary name and renamed into place, so a crash mid-save never leaves a
        half-written file under the real name. Hugging Face transformers loads the result as is.
        """
        os.makedirs(directory, exist_ok=True)
        self.config.extra["architectures"] = [type(self).__name__]
        self.config.save_pretrained(directory)
        state = {name: tensor.detach().contiguous() for name, tensor in self.state_dict().items()}
        if safe_serialization:
            from safetensors.torch import save_file
            _write_atomically(os.path.join(directory, SAFE_WEIGHTS_NAME),
                              lambda path: save_file(state, path, metadata={"format": "pt"}))
        else:
            _write_atomically(os.path.join(directory, WEIGHTS_NAME), lambda path: torch.save(state, path))

    # ---- from_pretrained -------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, config=None, state_dict=None,
                        output_loading_info=False, reinit_keys=None, reinit_std=None, reinit_seed=None,
                        ignore_mismatched_sizes=False, cache_dir=None, **config_overrides):
        """Build a model and fill it from a checkpoint.

        pretrained_model_name_or_path: a directory with config.json and model.safetensors (preferred) or
            pytorch_model.bin, a weights file, or the URL of a directory or file.
        reinit_keys: selectors of parameters to re-initialize instead of loading: an exact name
            (`bert.encoder.layer.0.attention.self.query.weight`), a module prefix (`bert.encoder.layer.5`),
            or a glob (`bert.encoder.layer.[45].*`); with or without the `bert.` prefix.
        reinit_std / reinit_seed: the std of the normal draw (default: config.initializer_range) and the
            seed of the dedicated generator it draws from.
        Returns the model, or (model, LoadingInfo) with output_loading_info=True. The info is also kept as
        `model.loading_info`.
        """
        # 1. Find files.
        config_file, weights_file = _find_files(pretrained_model_name_or_path, config, state_dict, cache_dir)

        # 2. Read the config.
        if config is None:
            config = BertConfig.from_pretrained(config_file, **config_overrides)
        elif config_overrides:
            raise TypeError(f"config overrides {sorted(config_overrides)} given together with a config object; "
                            "set them on the config instead")
        model_type = config.extra.get("model_type")
        if model_type is not None and model_type not in BERT_ARCHITECTURE_TYPES:
            raise LoadingError(f"{config_file}: model_type {model_type!r} is not a BERT architecture "
                               f"(expected one of {sorted(BERT_ARCHITECTURE_TYPES)})")

        # 3. Build the model with its tensors allocated but not initialized: a full random init of tensors
        #    the checkpoint is about to overwrite would be wasted work (for BERT-base, ~110M normal draws).
        with _without_init():
            model = cls(config)

        # 4. Read the state dict, in the model's naming.
        if state_dict is None:
            state_dict = read_state_dict(weights_file)
        source = weights_file or "the given state_dict"
        state_dict = _match_to_model(state_dict, model)

        # 5. Choose what to load and what to re-initialize.
        info = LoadingInfo()
        info.reinit_keys = resolve_reinit_keys(model, reinit_keys or [], checkpoint_keys=state_dict.keys())
        for key in info.reinit_keys:
            if state_dict.pop(key, None) is not None:
                # The checkpoint had it and we chose not to use it: that is what `unexpected_keys` means.
                info.unexpected_keys.append(key)
        info.mismatched_keys = _drop_mismatched(model, state_dict, ignore_mismatched_sizes, source)

        # 6. Load: walk the modules and let each copy its own tensors out of the state dict.
        load_missing, load_unexpected = [], []
        _load(model, state_dict, load_missing, load_unexpected, info.error_msgs)
        if info.error_msgs:
            raise LoadingError(f"{source}: errors while loading into {cls.__name__}:\n  "
                               + "\n  ".join(info.error_msgs))
        info.unexpected_keys += load_unexpected
        reinit = set(info.reinit_keys)
        info.missing_keys = [key for key in load_missing if key not in reinit and key not in info.mismatched_keys]
        _check_architecture(model, state_dict, info, source)

        # 7. Initialize everything that did not come from the checkpoint.
        #    New keys (e.g. the classifier head) draw from the global RNG, so `--seed` fixes them. Re-initialized
        #    keys draw from their own generator in the model's parameter order, so the same reinit_seed gives the
        #    same values whatever else used the global RNG before.
        model.init_weights(info.missing_keys + info.mismatched_keys)
        generator = torch.Generator()
        generator.manual_seed(reinit_seed if reinit_seed is not None else torch.initial_seed())
        model.init_weights(info.reinit_keys, std=reinit_std, generator=generator)

        # 8. Report.
        model.loading_info = info
        logger.info(format_loading_report(cls.__name__, source, model, info, reinit_std, reinit_seed))
        model.eval()  # as a loaded model should start; training code calls model.train()
        return (model, info) if output_loading_info else model


# ---- step 1: find files ------------------------------------------------------------------------------------

def _find_files(path, config, state_dict, cache_dir):
    """Return (config_file_or_dir, weights_file); either may be None when the caller passed the object."""
    if path is None:
        if config is None or state_dict is None:
            raise ValueError("from_pretrained(None, ...) needs both config= and state_dict=")
        return None, None
    path = str(path)
    if os.path.isdir(path):
        for name in (SAFE_WEIGHTS_NAME, WEIGHTS_NAME):
            if os.path.isfile(os.path.join(path, name)):
                weights = os.path.join(path, name)
                break
        else:
            if state_dict is None:
                raise FileNotFoundError(f"{path}: no weights file; expected {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME}")
            weights = None
        return path, weights
    if is_remote_url(path) and not path.endswith((".safetensors", ".bin")):
        # A URL of a model directory: fetch its config, then the first weights file the server has.
        config_file = cached_path(join_path_or_url(path, CONFIG_NAME), cache_dir=cache_dir) if config is None else None
        errors = []
        for name in (SAFE_WEIGHTS_NAME, WEIGHTS_NAME):
            try:
                return config_file, cached_path(join_path_or_url(path, name), cache_dir=cache_dir)
            except OSError as error:
                errors.append(str(error))
        raise FileNotFoundError(f"{path}: no weights file could be fetched:\n  " + "\n  ".join(errors))
    # A weights file (local or URL): its config.json lies beside it.
    weights = cached_path(path, cache_dir=cache_dir) if state_dict is None else None
    config_file = None
    if config is None:
        if is_remote_url(path):
            config_file = cached_path(path.rsplit("/", 1)[0] + "/" + CONFIG_NAME, cache_dir=cache_dir)
        else:
            config_file = os.path.join(os.path.dirname(os.path.abspath(path)), CONFIG_NAME)
            if not os.path.isfile(config_file):
                raise FileNotFoundError(f"{path}: no {CONFIG_NAME} beside the weights file; pass config=")
    return config_file, weights


_skipping_init = False


@contextlib.contextmanager
def _without_init():
    """Build modules without drawing random numbers: neither PyTorch's per-module defaults nor our init rule.

    Step 7 initializes exactly the tensors that the checkpoint does not fill.
    """
    global _skipping_init
    kinds = (nn.Linear, nn.Embedding, nn.LayerNorm)
    saved = {kind: kind.reset_parameters for kind in kinds}
    _skipping_init = True
    try:
        for kind in kinds:
            kind.reset_parameters = lambda self: None
        yield
    finally:
        _skipping_init = False
        for kind, method in saved.items():
            kind.reset_parameters = method


# ---- step 4: read the state dict -------------------------------------------------------------------------

def read_state_dict(path):
    """Read a safetensors or PyTorch weights file into {name: tensor}, or fail naming the file.

    A `.bin` is a pickle, and unpickling can run arbitrary code. It is therefore only read with
    `weights_only=True`, which accepts tensors and plain containers and refuses everything else.
    """
    if path.endswith(".safetensors") or _is_safetensors(path):
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


def _is_safetensors(path):
    # A safetensors file starts with an 8-byte little-endian header size, then a JSON header "{".
    with open(path, "rb") as reader:
        head = reader.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _match_to_model(state_dict, model):
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
            # Loading assigns the checkpoint's tensor itself (see `_load`), so an fp16 checkpoint would
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
            raise ValueError(_no_match_message(selector, names, model, checkpoint_keys))
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
    hint = f"; closest names: {', '.join(close)}" if close else "; run with --list_keys to see all names"
    return f"reinit selector {selector!r} matches no parameter of {type(model).__name__}: {reason}{hint}"


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

def _load(model, state_dict, missing_keys, unexpected_keys, error_msgs):
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

    def load(module, prefix=""):
        module._load_from_state_dict(state_dict, prefix, metadata, True, missing_keys, unexpected_keys,
                                     error_msgs)
        for name, child in module._modules.items():
            if child is not None:
                load(child, prefix + name + ".")

    load(model)


def _check_architecture(model, state_dict, info, source):
    """A checkpoint of which no tensor matched is not a BERT checkpoint: say so instead of loading noise."""
    used = len(state_dict) - len([k for k in info.unexpected_keys if k in state_dict])
    if state_dict and used == 0:
        sample = ", ".join(list(state_dict)[:3])
        raise LoadingError(f"{source}: none of its {len(state_dict)} tensors is a parameter of "
                           f"{type(model).__name__} (first keys: {sample}); is it a checkpoint of another "
                           "architecture?")


# ---- step 8: report ------------------------------------------------------------------------------------

def group_by_module(names, depth_pattern=r"^(.*?\.layer\.\d+|[^.]+\.[^.]+|[^.]+)\."):
    """{'bert.encoder.layer.4': ['attention.self.query.weight', ...], 'bert.pooler': [...], ...}."""
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


def top_layer_selectors(config, num_layers, pooler=False):
    """Selectors for the top `num_layers` encoder layers (and the pooler), e.g. 2 of 6 -> layers 4 and 5."""
    total = config.num_hidden_layers
    if not 0 <= num_layers <= total:
        raise ValueError(f"cannot re-initialize the top {num_layers} layers: the model has {total} "
                         f"encoder layers (choose 0..{total})")
    selectors = [f"bert.encoder.layer.{index}" for index in range(total - num_layers, total)]
    if pooler:
        selectors.append("bert.pooler")
    return selectors


def _write_atomically(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(handle)
    try:
        write(temp)
        # mkstemp makes the file private (0600); give it the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
