"""What a run loads, decided from its flags: where the model is, lower-casing, the keys to re-initialize, and the --list_keys table.

In:  run_classifier's arguments, the model's config and family (transformers/model_families.py).
Out: local paths for --model_name_or_path, --config_name and --tokenizer_name (a Hub name becomes its
     snapshot folder, transformers/hub.py), the lower-casing choice for the tokenizer, the re-init selectors
     `from_pretrained` gets (--reinit_keys plus what --reinit_layers/--reinit_pooler mean for this family), the
     sentence that says which depths --reinit_layers changed where shared weights make that more than the top N,
     a check that the vocabulary fits the embedding table, and `list_keys`, which prints where each parameter of
     a loaded model came from.

run_classifier.load_model makes the article's call itself (`from_pretrained(..., reinit_keys=...)`); this
module only works out its arguments, so that the run record and the checkpoint's trajectory name the same list.
"""
import os
from typing import NamedTuple

from transformers.file_utils import UserError
from transformers.hub import CONFIG_LAYOUTS, MODEL_LAYOUTS, TOKENIZER_FILES, local_model_path
from transformers.model_families import family_of
from transformers.modeling_utils import MISSING_WORDS, REINIT_WORDS, UNUSED_WORDS


class ModelSources(NamedTuple):
    """Where the run reads its model, config and tokenizer: local folders or files, or URLs."""
    model: str
    config: str
    tokenizer: str


# A tokenizer named apart from the model (--tokenizer_name) may be of any family: the first layout its repo has.
TOKENIZER_LAYOUTS = (("vocab.txt",), ("vocab.json", "merges.txt"), ("spiece.model",), ("tokenizer.json",))


def model_sources(args):
    """Hub names in --model_name_or_path, --config_name, --tokenizer_name fetched once, at --revision, into the
    hub cache (--cache_dir, else HF_HUB_CACHE), so that everything after reads folders as it always has:

        "bert-base-chinese" -> ~/.cache/huggingface/hub/models--bert-base-chinese/snapshots/<commit>
    A local path or URL is returned as given. The run record keeps the names as given.
    """
    options = dict(revision=args.revision or None, cache_dir=args.cache_dir or None)
    model = local_model_path(args.model_name_or_path, MODEL_LAYOUTS, optional=TOKENIZER_FILES,
                             what="--model_name_or_path", **options)
    config = local_model_path(args.config_name, CONFIG_LAYOUTS, what="--config_name", **options) or model
    tokenizer = local_model_path(args.tokenizer_name, TOKENIZER_LAYOUTS, optional=TOKENIZER_FILES,
                                 what="--tokenizer_name", **options) or model
    return ModelSources(model, config, tokenizer)


def lower_case_choice(args, tokenizer_path, family):
    """--do_lower_case wins; else the tokenizer's saved choice; else, for BERT, no lower-casing (the original
    default), and for the other families their tokenizer's own default (ALBERT's SentencePiece models are
    uncased; RoBERTa's byte-level BPE is cased and never lower-cases)."""
    if args.do_lower_case:
        return True
    config_file = os.path.join(tokenizer_path, "tokenizer_config.json")
    if os.path.isfile(config_file) or family.name != "bert":
        return None  # from_pretrained reads it, or knows its family's default
    return False


def reinit_selectors(args, config):
    """--reinit_keys as given, plus what --reinit_layers/--reinit_pooler mean for this config's family."""
    layer_rule = family_of(config).reinit_layer_selectors
    return list(args.reinit_keys) + layer_rule(config, args.reinit_layers, args.reinit_pooler)


def reinit_layers_meaning(args, config):
    """What --reinit_layers N did, in one sentence, where weights shared across depths make it more than the
    top N depths (ALBERT: "every depth changes, not only the top 2"); None elsewhere."""
    return family_of(config).reinit_layers_meaning(config, args.reinit_layers)


def check_vocab_fits(tokenizer, config, config_source):
    """A token id past the embedding table would crash with IndexError only when that token shows up."""
    if len(tokenizer.ids_to_tokens) > config.vocab_size:
        raise UserError(f"{tokenizer.vocab_file}: the vocabulary has {len(tokenizer.ids_to_tokens)} tokens, but "
                        f"the model's embedding table has vocab_size {config.vocab_size} rows ({config_source}); "
                        "use the tokenizer the model was trained with (--tokenizer_name)")


def list_keys(model, info):
    """Print every parameter with its shape and where it came from (info: the loading report of `model`)."""
    # The loading report's words (format_loading_report), so the two outputs can be read side by side.
    reinit, missing = set(info.reinit_keys), set(info.missing_keys) | set(info.mismatched_keys)
    print(f"{'parameter':60s} {'shape':>14s}  source")
    for name, tensor in model.named_parameters():
        source = REINIT_WORDS if name in reinit else MISSING_WORDS if name in missing else "loaded from checkpoint"
        print(f"{name:60s} {str(list(tensor.shape)):>14s}  {source}")
    had = [key for key in info.unexpected_keys if key in reinit]
    print(f"\n{len(info.reinit_keys)} {REINIT_WORDS}, {len(missing)} {MISSING_WORDS}, "
          f"{len(info.unexpected_keys) - len(had)} {UNUSED_WORDS}")
    if had:
        print(f"(the {len(had)} re-initialized keys the checkpoint had are also in unexpected_keys: "
              f"it had them, we did not use them)")
