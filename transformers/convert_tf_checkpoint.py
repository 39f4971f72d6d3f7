"""Convert Google's original TensorFlow BERT release into a normal model folder, once.

    python -m transformers.convert_tf_checkpoint chinese_L-12_H-768_A-12 bert-base-chinese-from-tf

Takes SRC, a folder as Google ships it (bert_config.json, vocab.txt, bert_model.ckpt.index and .data-*) or the
.index file of one checkpoint in it, and writes DST, a folder every `from_pretrained` here and in Hugging Face
transformers reads: config.json, model.safetensors, vocab.txt. No TensorFlow is needed (see tf_checkpoint.py).

`from_pretrained(SRC)` works without this step; converting once saves reading (and checksumming) the TensorFlow
files on every run, and drops what a checkpoint carries that no model uses (Adam's slots can be 2/3 of a
fine-tuned checkpoint).
"""
import argparse
import glob
import logging
import os
import shutil
import sys

from .file_utils import VOCAB_NAME
from .file_utils import ALBERT_TF_CONFIG_NAME
from .modeling_albert import AlbertForSequenceClassification, AlbertModel
from .modeling_bert import BertForSequenceClassification, BertModel
from .modeling_utils import LoadingError
from .tokenization_albert import SPIECE_NAME
from .tf_checkpoint import TFCheckpoint, find_checkpoint_index


def convert_tf_checkpoint(src, dst):
    """Write config.json, model.safetensors and vocab.txt of the checkpoint in `src` into `dst`.

    A checkpoint fine-tuned by Google's run_classifier.py (it has `output_weights`) becomes a
    BertForSequenceClassification with as many labels as its head has rows; a pre-trained one a BertModel.
    Google's ALBERT release (its folder has albert_config.json) becomes AlbertForSequenceClassification or
    AlbertModel the same way; its vocabulary is vocab.txt (albert_zh) or the SentencePiece *.model, copied as
    spiece.model.
    Returns the LoadingInfo. Refuses, before writing anything, a `dst` that already holds files, a `src` without
    a vocabulary, and a checkpoint that lacks any of the model's weights (they would be saved as random numbers).
    """
    src = os.fspath(src)
    index = src if src.endswith(".index") else find_checkpoint_index(src)
    if index is None:
        raise FileNotFoundError(f"{src}: no TensorFlow checkpoint (*.index with its .data-* files) in this folder")
    folder = os.path.dirname(os.path.abspath(index))
    albert = os.path.isfile(os.path.join(folder, ALBERT_TF_CONFIG_NAME))
    vocab, vocab_name = _vocabulary(folder, albert)
    if os.path.isdir(dst) and os.listdir(dst):
        raise FileExistsError(f"{dst}: folder exists and is not empty; choose a new folder, nothing is overwritten")

    entries = TFCheckpoint(index).entries
    classifier, encoder = ((AlbertForSequenceClassification, AlbertModel) if albert
                           else (BertForSequenceClassification, BertModel))
    if "output_weights" in entries:
        model_class, overrides = classifier, {"num_labels": entries["output_weights"].shape[0]}
    else:
        model_class, overrides = encoder, {}
    model, info = model_class.from_pretrained(index, output_loading_info=True, **overrides)
    if info.missing_keys:
        raise LoadingError(f"{index}: the checkpoint lacks {len(info.missing_keys)} of {model_class.__name__}'s "
                           f"weights (first: {', '.join(info.missing_keys[:3])}); not writing a model with "
                           "random weights in their place")
    model.save_pretrained(dst)
    shutil.copyfile(vocab, os.path.join(dst, vocab_name))
    return info


def _vocabulary(folder, albert):
    """(path, name in the converted folder) of the vocabulary beside the checkpoint."""
    vocab = os.path.join(folder, VOCAB_NAME)
    if os.path.isfile(vocab):
        return vocab, VOCAB_NAME
    pieces = sorted(glob.glob(os.path.join(glob.escape(folder), "*.model"))) if albert else []
    if len(pieces) == 1:
        return pieces[0], SPIECE_NAME  # Google's ALBERT ships 30k-clean.model
    wanted = f"{VOCAB_NAME} or one SentencePiece *.model" if albert else VOCAB_NAME
    raise FileNotFoundError(f"{folder}: no {wanted}; a converted model needs the vocabulary it was trained with")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="folder of Google's release (bert_config.json, vocab.txt, *.ckpt.index) "
                                    "or the .index file of one checkpoint")
    parser.add_argument("dst", help="new folder to write config.json, model.safetensors and vocab.txt into")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        info = convert_tf_checkpoint(args.src, args.dst)
    except (OSError, ValueError) as error:
        # OSError covers the missing and existing files, ValueError the unreadable checkpoint (CheckpointError,
        # LoadingError): one readable line either way.
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}: config.json, model.safetensors, {VOCAB_NAME} "
          f"({len(info.unexpected_keys)} checkpoint variables not used, listed above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
