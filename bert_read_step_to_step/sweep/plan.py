"""The re-init sweep's plan: what is compared (settings, seeds) and the run_classifier command line of one run.

In:  the --settings and --seeds texts, the sweep's shared values (its config: task, data, model, epochs, ...)
     and the arguments given after `--`.
Out: Setting values (what is re-initialized, which stabilizers are on), seed lists, the argv of each run,
     and the config as it may be recorded (model URLs redacted). main.py checks them before any run;
     runs.py runs the argv; records.py and report.py store and print the settings.
Nothing here touches the disk except check_settings_fit, which reads the model's config.json.
"""
import argparse
import re
from dataclasses import dataclass

from bert_read_step_to_step.batches import epoch_batches
from bert_read_step_to_step.tasks import add_generic_task_options, generic_task_options
from transformers.file_utils import UserError, redact_url
from transformers.model_families import choose_family

DEFAULT_SETTINGS = "0,1+pooler,2+pooler,3+pooler"
DEFAULT_SEEDS = "1-5"
DEFAULT_TRAIN_SIZE = 500
DEFAULT_DATA_SEED = 42
DEFAULT_EPOCHS = 2.0
DEFAULT_MAX_SEQ_LENGTH = 64
DEFAULT_BATCH_SIZE = 16
DEFAULT_LEARNING_RATE = 1e-4
# Two runs at once, one thread each, beat one run on two threads: a run's matmuls are small (16 x 64 tokens),
# so a second thread speeds one run up by less than 2x, and a run's start-up, loading and saving, which use one
# core, overlap with the other run's training. (One on a one-core machine.)
DEFAULT_WORKERS = 2
PRIOR_WEIGHT_DECAY = 0.01  # what the prior_wd setting pulls with (BERT's usual weight decay)
# Scoring runs without gradients, so a larger batch is cheaper per example and gives the same predictions.
EVAL_BATCH_SIZE = 64
# Points of each run's loss curve (curves.py): run_classifier logs the loss every --logging_steps steps.
CURVE_POINTS = 20



class SweepError(UserError):
    """The sweep cannot go on; the message names the file, option or run at fault."""


# ==== settings and seeds ===================================================================================

@dataclass(frozen=True, order=True)
class Setting:
    """What is re-initialized before fine-tuning, and which of Zhang et al.'s other stabilizers are on
    (run_classifier's --use_bertadam, --mixout P, --prior_weight_decay). Sorted by the fields in order:
    0, 0+pooler, 1, 1+pooler, ..., and after each re-init its variants with stabilizers."""
    layers: int
    pooler: bool
    bertadam: bool = False
    mixout: float = 0.0
    prior_wd: bool = False

    @property
    def label(self):
        """"2+pooler", "0", "bertadam", "2+pooler+mixout0.7+prior_wd": what parse_setting reads back."""
        stabilizers = (["bertadam"] if self.bertadam else []) + ([f"mixout{self.mixout:g}"] if self.mixout else []) \
            + (["prior_wd"] if self.prior_wd else [])
        reinit = f"{self.layers}+pooler" if self.pooler else str(self.layers)
        return "+".join(stabilizers if reinit == "0" and stabilizers else [reinit] + stabilizers)

    def describe(self):
        """Words for a plot axis: "none", "pooler", "top 2", "top 2 + pooler", "BERTAdam + mixout 0.7"."""
        parts = ([f"top {self.layers}"] if self.layers else []) + (["pooler"] if self.pooler else []) \
            + (["BERTAdam"] if self.bertadam else []) + ([f"mixout {self.mixout:g}"] if self.mixout else []) \
            + (["prior WD"] if self.prior_wd else [])
        return " + ".join(parts) or "none"


SETTING_FORMS = "N, N+pooler, optionally joined with +bertadam, +mixoutP (0 < P < 1) and +prior_wd " \
                "(for example 0, 2+pooler, bertadam, 2+pooler+bertadam, mixout0.7, prior_wd)"


def parse_setting(text):
    """"2+pooler" -> Setting(2, True); "0" -> Setting(0, False); "bertadam" -> Setting(0, False, bertadam=True);
    "2+pooler+mixout0.7" -> Setting(2, True, mixout=0.7). The re-init part, when given, comes first."""
    parts = [part.strip() for part in text.strip().split("+")]
    fields = {"layers": 0, "pooler": False}
    for position, part in enumerate(parts):
        mixout = re.fullmatch(r"mixout(0?\.\d+)", part)
        if part.isdigit() and position == 0:
            key, value = "layers", int(part)
        elif part == "pooler" and position == 1 and parts[0].isdigit():
            key, value = "pooler", True
        elif part in ("bertadam", "prior_wd"):
            key, value = part, True
        elif mixout and 0 < float(mixout.group(1)) < 1:
            key, value = "mixout", float(mixout.group(1))
        else:
            raise SweepError(f"setting {text!r}: {part!r} is not understood; a setting is {SETTING_FORMS}")
        if key in fields and key not in ("layers", "pooler"):
            raise SweepError(f"setting {text!r} names {key} twice")
        fields[key] = value
    return Setting(**fields)


def setting_flags(setting):
    """The run_classifier flags of a setting. prior_wd also sets --weight_decay PRIOR_WEIGHT_DECAY (a weight
    decay is what it redirects); a --weight_decay after `--` comes later on the command line and wins."""
    flags = ["--reinit_layers", str(setting.layers)] + (["--reinit_pooler"] if setting.pooler else [])
    if setting.bertadam:
        flags.append("--use_bertadam")
    if setting.mixout:
        flags += ["--mixout", f"{setting.mixout:g}"]
    if setting.prior_wd:
        flags += ["--prior_weight_decay", "--weight_decay", str(PRIOR_WEIGHT_DECAY)]
    return flags


def parse_settings(text):
    settings = [parse_setting(item) for item in text.split(",") if item.strip()]
    if not settings:
        raise SweepError("--settings is empty; give for example 0,1+pooler,2+pooler")
    return list(dict.fromkeys(settings))  # drop repeats, keep the order given


def parse_seeds(text):
    """"1,2,3" -> [1, 2, 3]; "1-5" -> [1, 2, 3, 4, 5]; the two forms mix: "1-3,10"."""
    seeds = []
    for item in (item.strip() for item in text.split(",")):
        if not item:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
            raise SweepError(f"seed {item!r} is not a number or a range a-b with a <= b (for example 1,2,3 or 1-20)")
        first = int(match.group(1))
        seeds += range(first, int(match.group(2) or first) + 1)
    if not seeds:
        raise SweepError("--seeds is empty; give for example 1,2,3")
    return list(dict.fromkeys(seeds))


def check_settings_fit(settings, model_path, extra_args):
    """Refuse `4+pooler` on a 3-layer model now, not after the runs that come before it. Each setting is put
    to the model family's own --reinit_layers rule (ALBERT counts layer groups; RoBERTa has no pooler)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model_type", default="bert")  # run_argv's default; `-- --model_type albert` wins
    model_type = parser.parse_known_args(extra_args)[0].model_type.lower()
    family = choose_family(model_type, model_path)
    config = family.config_class.from_pretrained(model_path)
    for setting in settings:
        try:
            family.reinit_layer_selectors(config, setting.layers, setting.pooler)
        except ValueError as error:
            raise SweepError(f"setting {setting.label} does not fit {recorded_path(model_path)}: {error}") from None


# ==== one run ==============================================================================================

# run_classifier options that the sweep sets for each run, with the sweep option that chooses each value.
# Passing one of them after `--` would quietly make every run the same (or lie in results.json), so it is refused.
CONTROLLED_BY_SWEEP = {
    "task_name": "--task_name", "data_dir": "--data_dir", "model_name_or_path": "--model_name_or_path",
    "output_dir": "--output_dir", "seed": "--seeds", "reinit_layers": "--settings", "reinit_pooler": "--settings",
    "reinit_keys": "--settings", "use_bertadam": "--settings",
    "mixout": "--settings", "prior_weight_decay": "--settings",
    "num_train_epochs": "--epochs", "max_seq_length": "--max_seq_length", "group_by_length": "--batching",
    "per_gpu_train_batch_size": "--batch_size", "learning_rate": "--learning_rate", "do_train": "(always on)",
    "do_eval": "(always on)", "list_keys": "(always off)", "resume_from_checkpoint": "(a new run each time)",
    "bf16": "--precision",
}


def logging_steps(train_examples, batch_size, epochs):
    """run_classifier's --logging_steps for a loss curve of about CURVE_POINTS points or more: the run's
    optimizer steps (the batches of an epoch, counted as batches.epoch_batches cuts them, times the epochs)
    over CURVE_POINTS, and every step when the run has fewer. Worked example: 500 examples in batches of 16
    -> 32 batches x 2 epochs = 64 steps -> every 3 steps, 21 points; 24 examples of 8, 1 epoch -> 3 steps ->
    every step."""
    total = int(len(epoch_batches(train_examples, batch_size, 0, 0)) * epochs)
    return max(1, total // CURVE_POINTS)


def run_argv(config, data_dir, setting, seed, run_dir, logging_steps=None):
    """The run_classifier command line of one run. The extra arguments come last, so they win over the
    defaults before them (--model_type, --save_steps, --logging_steps, ...) but, checked by check_extra_args,
    not over the rest."""
    argv = ["--model_type", "bert", "--model_name_or_path", config["model_name_or_path"],
            "--task_name", config["task_name"], "--data_dir", data_dir,
            "--output_dir", run_dir, "--overwrite_output_dir", "--do_train", "--do_eval",
            "--seed", str(seed), *setting_flags(setting),
            "--num_train_epochs", str(config["epochs"]), "--max_seq_length", str(config["max_seq_length"]),
            "--per_gpu_train_batch_size", str(config["batch_size"]),
            "--per_gpu_eval_batch_size", str(EVAL_BATCH_SIZE),
            "--learning_rate", str(config["learning_rate"]),
            "--save_steps", "0"]  # no checkpoints: only the final model is scored
    if config["precision"] == "bf16":
        argv.append("--bf16")
    if config["batching"] == "length":
        argv.append("--group_by_length")
    if logging_steps is not None:
        argv += ["--logging_steps", str(logging_steps)]
    return argv + list(config["extra_args"])


def check_extra_args(extra_args):
    """Refuse extra arguments (after `--`) that name one of the options the sweep sets for every run.

    argparse accepts any unambiguous prefix of an option (`--learning` for `--learning_rate`), so a prefix of
    a controlled option is refused too. Everything else is run_classifier's to judge: a bad extra argument
    stops the first run, and the sweep reports run_classifier's one-line error.
    """
    for token in extra_args:
        if not token.startswith("--") or token == "--":
            continue
        name = token[2:].split("=", 1)[0]
        controlled = [option for option in CONTROLLED_BY_SWEEP if option.startswith(name)]
        if name and controlled:
            raise SweepError(f"the arguments after -- set --{controlled[0]} ({token}); the sweep sets it for "
                             f"every run, through {CONTROLLED_BY_SWEEP[controlled[0]]}")


def extra_generic_task_options(task_name, extra_args):
    """The generic task's column options among the extra arguments, parsed as run_classifier parses them
    (the same `add_generic_task_options`), so the sweep downsamples the file the runs will read."""
    parser = argparse.ArgumentParser(add_help=False)
    add_generic_task_options(parser)
    known, _ = parser.parse_known_args(extra_args)
    known.task_name = task_name
    return generic_task_options(known)


# ==== what may be written down =============================================================================

def recorded_path(text):
    """A model path or URL as the sweep may print or store it: a URL's user-info and query, which can hold a
    password or a signed token, are replaced by <redacted> (file_utils.redact_url); a local path stays as it
    is, since `#` or `?` are ordinary characters in a file name.
    "https://user:token@host/bert/?sig=abc" -> "https://<redacted>@host/bert/?<redacted>"."""
    return redact_url(text) if "://" in str(text) else text


def recorded_argv(argv):
    """`argv` with every URL in it redacted, for results.json's record of a run's command line."""
    return [recorded_path(item) for item in argv]


def recorded_config(config):
    """The sweep's config as results.json stores it and check_same_sweep compares it: the model path and any
    URL among the extra arguments redacted. The real values stay in memory only, for the runs' argv."""
    return dict(config, model_name_or_path=recorded_path(config["model_name_or_path"]),
                extra_args=recorded_argv(config["extra_args"]))
