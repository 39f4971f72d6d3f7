"""What did fine-tuning move? The relative change of each module's weights, ‖W_after − W_before‖ / ‖W_before‖.

A module is the embeddings, one encoder layer, the pooler or the head (the classifier); its norm is taken over
all of its tensors together (the Frobenius norm of their concatenation). albert_zh's one layer, run at every
depth, is its own row, "layer_shared". Layers that barely move kept what
pre-training gave them; layers that move most were reshaped for the task, which is the evidence a reader wants
when choosing which layers to re-initialize (Zhang et al. re-initialize the top ones).

run_classifier.py writes OUTPUT_DIR/weight_change.json and weight_change.png after training, measured from the
weights training started from: the checkpoint's for loaded modules, the fresh draw for re-initialized and new
ones (each row says which). Any two model folders compare the same way:

    python -m bert_read_step_to_step.weight_change PRETRAINED_DIR FINETUNED_DIR [--out_dir DIR]

There the "before" of every tensor is PRETRAINED_DIR's, so a layer the run re-initialized moved by its new draw
plus its training; when FINETUNED_DIR holds run_classifier's reinit_keys.json, such rows say so instead of
claiming to be measured from pre-trained weights.

Worked example: the embeddings' only tensor goes from [[3, 4]] to [[3, 5]]:
    ‖[[0, 1]]‖ / ‖[[3, 4]]‖ = 1 / 5 = 0.2.
"""
import argparse
import json
import logging
import math
import os
import re
import textwrap

from bert_read_step_to_step.cli_help import DefaultsHelpFormatter
from transformers.file_utils import (PICKLE_WEIGHTS_NAME, SAFE_WEIGHTS_NAME, UserError, run_entry_point,
                                     write_json_atomically)
from transformers.modeling_utils import IGNORED_CHECKPOINT_KEYS, read_state_dict

logger = logging.getLogger(__name__)

REPORT_NAME, PLOT_NAME = "weight_change.json", "weight_change.png"
REINIT_RECORD_NAME = "reinit_keys.json"  # written by run_classifier.py next to the weights it trained
# What a row's change is measured from. In a run: the checkpoint's weights, or a fresh draw. Between two folders:
# the "before" folder's weights, for every tensor; the record of the "after" run says which ones it re-drew.
FROM_PRETRAINED, FROM_FRESH_INIT = "pre-trained", "fresh init"
FROM_BEFORE, REINIT_IN_AFTER = "before folder", "before folder; re-initialized by the after run"
# The bar colours in the picture, one per kind of row; the legend is drawn from this same table.
BAR_COLORS = {FROM_PRETRAINED: "tab:blue", FROM_FRESH_INIT: "tab:orange",
              FROM_BEFORE: "tab:blue", REINIT_IN_AFTER: "tab:red"}
MATPLOTLIB_MISSING = "matplotlib is not installed: skipping {path} (install it with: pip install -r requirements.txt)"
LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")
SHARED_LAYER = "encoder.layer_shared."


def module_of(name):
    """The module a parameter belongs to, in reading order: "embeddings", "layer 0", ..., "pooler", "head".
    A task model's names start with "bert." and a bare encoder's do not; both give the same module."""
    name = name[len("bert."):] if name.startswith("bert.") else name
    layer = LAYER.match(name)
    if layer:
        return f"layer {layer.group(1)}"
    if name.startswith(SHARED_LAYER):  # albert_zh: one set of weights for all depths, not one layer's
        return "layer_shared"
    if name.startswith(("embeddings.", "pooler.")):
        return name.split(".")[0]
    return "head"


def module_order(module):
    """Sort key: embeddings, then the layers by number (or albert_zh's shared one), then the pooler, then the head."""
    if module.startswith("layer "):
        return (1, int(module.split()[1]))
    if module == "layer_shared":
        return (1, 0)
    return ({"embeddings": 0, "pooler": 2}.get(module, 3), 0)


def relative_change(before, after, fresh=(), labels=(FROM_PRETRAINED, FROM_FRESH_INIT)):
    """{"modules": [row per module], "only_in_before": [names], "only_in_after": [names]} for two
    {name: tensor} dicts. A row: {"module", "relative_change", "norm_before", "norm_change", "tensors",
    "measured_from"}. Only tensors present in both with the same shape are compared; `fresh` names the
    tensors that were drawn afresh (re-initialized or new): a module holding one gets labels[1] as its
    "measured_from", any other module labels[0]."""
    shared = sorted(name for name in before if name in after and before[name].shape == after[name].shape)
    sums = {}
    for name in shared:
        old, new = before[name].double(), after[name].double()
        row = sums.setdefault(module_of(name), {"before": 0.0, "change": 0.0, "tensors": 0, "fresh": False})
        row["before"] += float((old ** 2).sum())
        row["change"] += float(((new - old) ** 2).sum())
        row["tensors"] += 1
        row["fresh"] = row["fresh"] or name in fresh
    modules = []
    for module in sorted(sums, key=module_order):
        row = sums[module]
        norm_before, norm_change = math.sqrt(row["before"]), math.sqrt(row["change"])
        modules.append({"module": module, "relative_change": norm_change / norm_before if norm_before else None,
                        "norm_before": norm_before, "norm_change": norm_change, "tensors": row["tensors"],
                        "measured_from": labels[1] if row["fresh"] else labels[0]})
    return {"modules": modules, "only_in_before": sorted(set(before) - set(shared)),
            "only_in_after": sorted(set(after) - set(shared))}


def write_report(folder, report, title):
    """weight_change.json in `folder`, and weight_change.png when matplotlib is installed. Returns the
    message to show about the picture; a missing matplotlib is also logged as a WARNING with the install line."""
    write_json_atomically(os.path.join(folder, REPORT_NAME), report)
    png = os.path.join(folder, PLOT_NAME)
    figure = plot_report(report, title)
    if figure is None:
        message = MATPLOTLIB_MISSING.format(path=png)
        logger.warning(message)
        return message
    figure.savefig(png)
    return f"Wrote {png}"


def plot_report(report, title):
    """A matplotlib Figure with one bar per module, coloured by what it is measured from, with a legend of
    exactly those colours; None when matplotlib is not installed (it is imported only here, when asked)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
        from matplotlib.patches import Patch
    except ImportError:
        return None
    rows = [row for row in report["modules"] if row["relative_change"] is not None]
    width = max(6.0, 0.6 * len(rows) + 2)
    figure = Figure(figsize=(width, 4.5), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    axes.bar(range(len(rows)), [row["relative_change"] for row in rows],
             color=[BAR_COLORS[row["measured_from"]] for row in rows])
    axes.set_xticks(range(len(rows)), [row["module"] for row in rows], rotation=45, ha="right")
    axes.set_ylabel("‖W_after − W_before‖ / ‖W_before‖")
    # A long folder path is wrapped to the figure's width (about 11 characters an inch at this size), not cut.
    axes.set_title("\n".join(textwrap.wrap(title, width=int(width * 11))), fontsize=9)
    # One legend entry per kind of bar that is drawn, in the bars' own colours.
    kinds = list(dict.fromkeys(row["measured_from"] for row in rows))
    axes.legend(handles=[Patch(color=BAR_COLORS[kind], label=f"measured from: {kind}") for kind in kinds],
                fontsize=8, loc="best")
    axes.grid(axis="y", alpha=0.3)
    return figure


def format_report(report):
    lines = [f"{'module':12s} {'relative change':>16s}  measured from"]
    for row in report["modules"]:
        value = "n/a (zero)" if row["relative_change"] is None else f"{row['relative_change']:.6f}"
        lines.append(f"{row['module']:12s} {value:>16s}  {row['measured_from']}")
    for side in ("before", "after"):
        if report[f"only_in_{side}"]:
            lines.append(f"only in the {side} model, not compared: {', '.join(report[f'only_in_{side}'])}")
    return "\n".join(lines)


# ==== comparing two folders ================================================================================

def read_folder_weights(folder):
    """{name: tensor} of a model folder's weights file, without the position_ids buffer some checkpoints carry."""
    for name in (SAFE_WEIGHTS_NAME, PICKLE_WEIGHTS_NAME):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return {key: value for key, value in read_state_dict(path).items()
                    if not IGNORED_CHECKPOINT_KEYS.search(key)}
    raise UserError(f"{folder}: no {SAFE_WEIGHTS_NAME} or {PICKLE_WEIGHTS_NAME} there; give a model folder")


def normalized_names(state_dict):
    """The same tensor under one name whether or not the model's names start with "bert."."""
    return {name[len("bert."):] if name.startswith("bert.") else name: tensor for name, tensor in state_dict.items()}


def reinit_record(folder):
    """(names the run re-drew, or None when `folder` has no reinit_keys.json): its re-initialized keys and its
    new ones (missing from the checkpoint), both with the "bert." prefix taken off as normalized_names does."""
    path = os.path.join(folder, REINIT_RECORD_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        names = list(record.get("resolved_keys", [])) + list(record.get("missing_keys", []))
    except (ValueError, TypeError, AttributeError) as error:
        raise UserError(f"{path}: not a reinit record written by run_classifier.py ({error})") from None
    return {name[len("bert."):] if name.startswith("bert.") else name for name in names}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("before", help="model folder before (e.g. the pre-trained model)")
    parser.add_argument("after", help="model folder after (e.g. a fine-tuned output_dir)")
    parser.add_argument("--out_dir", default=None,
                        help=f"write {REPORT_NAME} (and {PLOT_NAME}) there; default: print only")
    args = parser.parse_args(argv)
    redrawn = reinit_record(args.after)
    report = relative_change(normalized_names(read_folder_weights(args.before)),
                             normalized_names(read_folder_weights(args.after)),
                             fresh=redrawn or (), labels=(FROM_BEFORE, REINIT_IN_AFTER))
    print(format_report(report))
    if redrawn is None:
        print(f"no {REINIT_RECORD_NAME} in {args.after}: every row is measured from {args.before}'s weights, "
              f"and a layer that run re-initialized cannot be told apart")
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        message = write_report(args.out_dir, report, f"What changed from {args.before} to {args.after}")
        if message != MATPLOTLIB_MISSING.format(path=os.path.join(args.out_dir, PLOT_NAME)):
            print(message)  # otherwise the WARNING has said it
        print(f"Wrote {os.path.join(args.out_dir, REPORT_NAME)}")
    return report


if __name__ == "__main__":
    run_entry_point(main, "python -m bert_read_step_to_step.weight_change")
