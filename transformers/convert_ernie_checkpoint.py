"""Convert Baidu's ERNIE 1.0 release (PaddlePaddle) into a BERT model folder, once, without Paddle.

    python -m transformers.convert_ernie_checkpoint --params_dir ERNIE_1.0_max-len-512/params \\
        --ernie_config_file ERNIE_1.0_max-len-512/ernie_config.json --vocab_file ERNIE_1.0_max-len-512/vocab.txt \\
        --pytorch_dump_folder_path ernie-1.0-bert

Takes the release's three parts: `params/` (one Paddle LoDTensor file per parameter, read by paddle_params.py),
`ernie_config.json` and `vocab.txt`; writes a folder that `BertModel.from_pretrained` (here and in Hugging Face
transformers) reads: config.json, model.safetensors, vocab.txt.

ERNIE 1.0 is BERT's network under other names, with three differences the converted folder must carry:
  - LayerNorm's epsilon is Paddle's default, 1e-5 (BERT's is 1e-12); ernie_config.json does not say so.
  - ernie_config.json has no intermediate_size: ERNIE's feed-forward layer is always 4 x hidden_size wide.
  - Its vocab.txt lines are `token<TAB>id` (`[PAD]\\t0`, `[CLS]\\t1`, ...); BERT's has one token per line, the
    line number being the id. The converted vocab.txt is written in that form, in id order.
Its activation is `relu` (ernie_config.json says so, and BertConfig takes it as is).

A fluid `fc` weight (`*.w_0`) is [in, out], PyTorch's Linear weight [out, in]: each is transposed. Embedding
tables ([rows, H]), biases and LayerNorm's scale and bias are taken as they are.

With the pre-training heads in `params/` (`mask_lm_*`, `next_sent_fc.*`, as released), the folder holds a
BertForPreTraining (its masked-LM decoder is the word-embedding table, as ERNIE's weight_sharing has it);
without any of them, a BertModel. Either loads into BertModel and BertForSequenceClassification.
"""
import argparse
import json
import logging
import os
import sys

import torch

from .configuration_bert import BertConfig
from .file_utils import VOCAB_NAME
from .modeling_bert import BertForPreTraining, BertModel
from .paddle_params import ParamsError, read_paddle_tensor

logger = logging.getLogger(__name__)

ERNIE_LAYER_NORM_EPS = 1e-5  # Paddle's layer_norm default, which ERNIE never changed
ERNIE_CONFIG_KEYS = ("attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
                     "initializer_range", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
                     "type_vocab_size", "vocab_size")


# ---- the config ---------------------------------------------------------------------------------------------

def ernie_config_to_bert(path):
    """BertConfig of an ERNIE 1.0 ernie_config.json: its keys, plus intermediate_size = 4 x hidden_size and
    layer_norm_eps = 1e-5."""
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    # First, since ERNIE 2.0's configs name their keys otherwise (sent_type_vocab_size): it adds a task
    # embedding to every input, which is not BERT's network.
    if values.get("use_task_id") or {"task_type_vocab_size", "sent_type_vocab_size"} & set(values):
        raise ValueError(f"{path}: an ERNIE 2.0 config (task embeddings); only ERNIE 1.0 converts to BERT")
    missing = [key for key in ERNIE_CONFIG_KEYS if key not in values]
    if missing:
        raise ValueError(f"{path}: ERNIE config lacks {', '.join(missing)}")
    bert = {key: values[key] for key in ERNIE_CONFIG_KEYS}
    bert["intermediate_size"] = values.get("intermediate_size", 4 * values["hidden_size"])
    bert["layer_norm_eps"] = ERNIE_LAYER_NORM_EPS
    bert["model_type"] = "bert"
    return BertConfig.from_dict(bert)


# ---- the vocabulary -----------------------------------------------------------------------------------------

def read_ernie_vocab(path):
    """Tokens in id order from ERNIE's `token<TAB>id` lines. A line without a tab takes its line number as id
    (BERT's form), so a vocabulary already converted reads too. Ids must be 0..n-1, each once."""
    by_id = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if "\t" in line:
                token, _, index = line.rpartition("\t")
                try:
                    index = int(index)
                except ValueError:
                    raise ValueError(f"{path}:{number}: {line!r} does not end in a tab and a number "
                                     "(ERNIE's form is token<TAB>id)") from None
            else:
                token, index = line, number - 1
            if index in by_id:
                raise ValueError(f"{path}:{number}: id {index} again (first for {by_id[index]!r}, now {token!r})")
            by_id[index] = token
    missing = sorted(set(range(len(by_id))) - set(by_id))
    if missing:
        raise ValueError(f"{path}: ids are not 0..{len(by_id) - 1}: {missing[0]} is missing")
    return [by_id[index] for index in range(len(by_id))]


# ---- the parameters -----------------------------------------------------------------------------------------

def _fc(ernie, ours):
    """A fluid fc layer's two files: `NAME.w_0` ([in, out], transposed) and `NAME.b_0`."""
    return [(f"{ernie}.w_0", f"{ours}.weight", True), (f"{ernie}.b_0", f"{ours}.bias", False)]


def _layer_norm(ernie, ours):
    return [(f"{ernie}_layer_norm_scale", f"{ours}.weight", False),
            (f"{ernie}_layer_norm_bias", f"{ours}.bias", False)]


def ernie_weight_map(config):
    """[(ERNIE's file name, our parameter name, transposed?)] of the encoder and the pooler, in the order data
    flows through them: embeddings -> layers -> pooler."""
    table = [("word_embedding", "bert.embeddings.word_embeddings.weight", False),
             ("pos_embedding", "bert.embeddings.position_embeddings.weight", False),
             ("sent_embedding", "bert.embeddings.token_type_embeddings.weight", False),
             ("pre_encoder_layer_norm_scale", "bert.embeddings.LayerNorm.weight", False),
             ("pre_encoder_layer_norm_bias", "bert.embeddings.LayerNorm.bias", False)]
    for i in range(config.num_hidden_layers):
        ernie, ours = f"encoder_layer_{i}", f"bert.encoder.layer.{i}"
        for part, module in (("multi_head_att_query_fc", "attention.self.query"),
                             ("multi_head_att_key_fc", "attention.self.key"),
                             ("multi_head_att_value_fc", "attention.self.value"),
                             ("multi_head_att_output_fc", "attention.output.dense")):
            table += _fc(f"{ernie}_{part}", f"{ours}.{module}")
        table += _layer_norm(f"{ernie}_post_att", f"{ours}.attention.output.LayerNorm")
        table += _fc(f"{ernie}_ffn_fc_0", f"{ours}.intermediate.dense")
        table += _fc(f"{ernie}_ffn_fc_1", f"{ours}.output.dense")
        table += _layer_norm(f"{ernie}_post_ffn", f"{ours}.output.LayerNorm")
    table += _fc("pooled_fc", "bert.pooler.dense")
    return table


# The pre-training heads: the masked-LM transform and bias (its decoder is word_embedding), next-sentence.
ERNIE_HEADS = [("mask_lm_trans_fc.w_0", "cls.predictions.transform.dense.weight", True),
               ("mask_lm_trans_fc.b_0", "cls.predictions.transform.dense.bias", False),
               ("mask_lm_trans_layer_norm_scale", "cls.predictions.transform.LayerNorm.weight", False),
               ("mask_lm_trans_layer_norm_bias", "cls.predictions.transform.LayerNorm.bias", False),
               ("mask_lm_out_fc.b_0", "cls.predictions.bias", False),
               ("next_sent_fc.w_0", "cls.seq_relationship.weight", True),
               ("next_sent_fc.b_0", "cls.seq_relationship.bias", False)]


def read_ernie_params(params_dir, config):
    """(model class, state dict in our names, file names not used) of an ERNIE params/ folder.

    Every file the table names must be there, hold float32 (FP32) and have the shape the config implies;
    otherwise one ParamsError line names the file. The heads are all there or all absent."""
    if not os.path.isdir(params_dir):
        raise FileNotFoundError(f"{params_dir}: no such folder (the release's params/, one file per parameter)")
    present = set(os.listdir(params_dir))
    if "task_embedding" in present:  # whatever its config says, these are ERNIE 2.0's weights
        raise ParamsError(f"{os.path.join(params_dir, 'task_embedding')}: an ERNIE 2.0 params folder (a task "
                          "embedding); only ERNIE 1.0 converts to BERT")
    table = ernie_weight_map(config)
    heads_present = [name for name, _, _ in ERNIE_HEADS if name in present]
    if heads_present:
        absent = [name for name, _, _ in ERNIE_HEADS if name not in present]
        if absent:
            raise ParamsError(f"{os.path.join(params_dir, absent[0])}: missing, while {heads_present[0]} is there; "
                              "the pre-training heads must be all there or all absent")
        table += ERNIE_HEADS
    model_class = BertForPreTraining if heads_present else BertModel
    # The shapes the config implies, under the names of the table (built, not initialized: nothing is drawn).
    expected = BertForPreTraining(config, initialize=False).state_dict()
    state_dict = {}
    for file_name, our_name, transposed in table:
        path = os.path.join(params_dir, file_name)
        if file_name not in present:
            raise ParamsError(f"{path}: missing; {our_name} comes from it (is --params_dir the release's params/ "
                              "and --ernie_config_file its config?)")
        tensor = read_paddle_tensor(path)
        want = tuple(expected[our_name].shape)
        want_paddle = want[::-1] if transposed else want
        if tensor.dtype_name != "FP32":
            raise ParamsError(f"{path}: holds {tensor.dtype_name}, expected FP32 (float32) as ERNIE 1.0 saved it")
        if tensor.shape != want_paddle:
            raise ParamsError(f"{path}: shape {list(tensor.shape)}, expected {list(want_paddle)} for {our_name} "
                              "from the config")
        values = torch.from_numpy(tensor.values.copy())  # [in, out] -> [out, in] for a fc weight
        state_dict[our_name] = values.t().contiguous() if transposed else values
    unused = sorted(present - {name for name, _, _ in table})
    return model_class, state_dict, unused


def convert_ernie_checkpoint(params_dir, ernie_config_file, vocab_file, dump_folder):
    """Write config.json, model.safetensors and vocab.txt into `dump_folder`. Everything is read and checked
    before anything is written; a folder that already holds files is refused. Returns the model class used."""
    config = ernie_config_to_bert(ernie_config_file)
    tokens = read_ernie_vocab(vocab_file)
    if len(tokens) != config.vocab_size:
        raise ValueError(f"{vocab_file}: {len(tokens)} tokens, but {ernie_config_file} says vocab_size "
                         f"{config.vocab_size}")
    model_class, state_dict, unused = read_ernie_params(params_dir, config)
    if os.path.isdir(dump_folder) and os.listdir(dump_folder):
        raise FileExistsError(f"{dump_folder}: folder exists and is not empty; choose a new folder, nothing is "
                              "overwritten")
    if unused:
        logger.info(f"{params_dir}: {len(unused)} files not used: {', '.join(unused)}")
    if model_class is BertModel:
        state_dict = {name[len("bert."):]: value for name, value in state_dict.items()}
    model, info = model_class.from_pretrained(None, config=config, state_dict=state_dict, output_loading_info=True)
    if info.missing_keys or info.unexpected_keys:  # the table and the model disagree: a bug here, not bad input
        raise AssertionError(f"ERNIE table vs {model_class.__name__}: missing {info.missing_keys}, "
                             f"unexpected {info.unexpected_keys}")
    model.save_pretrained(dump_folder)
    with open(os.path.join(dump_folder, VOCAB_NAME), "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token in tokens)
    return model_class


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params_dir", required=True, help="the release's params/ folder, one file per parameter")
    parser.add_argument("--ernie_config_file", required=True, help="the release's ernie_config.json")
    parser.add_argument("--vocab_file", required=True, help="the release's vocab.txt (token<TAB>id lines)")
    parser.add_argument("--pytorch_dump_folder_path", required=True,
                        help="new folder to write config.json, model.safetensors and vocab.txt into")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        model_class = convert_ernie_checkpoint(args.params_dir, args.ernie_config_file, args.vocab_file,
                                               args.pytorch_dump_folder_path)
    except (OSError, ValueError) as error:
        # OSError: missing or existing files; ValueError: an unreadable or mismatched file (ParamsError) or config.
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.pytorch_dump_folder_path}: config.json, model.safetensors ({model_class.__name__}), "
          f"{VOCAB_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
