"""A readable BERT in the layout of transformers 2.x, whose `from_pretrained(reinit_keys=...)` really
re-initializes what you select.

Reading order: configuration_bert.py -> tokenization_bert.py -> modeling_bert.py -> modeling_utils.py
(`from_pretrained`), with file_utils.py turning names and URLs into local files, and tf_checkpoint.py reading
Google's original TensorFlow checkpoints. The other families (configuration_albert.py, modeling_albert.py,
tokenization_albert.py, and RoBERTa's) reuse BERT's pieces and say only how they differ; model_families.py
is the table that picks a family for a model folder.
compat_2x.py, optimization.py and auto.py hold what transformers 2.x scripts call besides (AdamW, the warm-up
schedules, the Auto classes, encode_plus's 2.x options); the reading path does not need them. compat_2x.py sits
above modeling_utils.py and tokenization_utils.py (what every tokenizer lays out and saves alike) and below the
families, whose classes derive from its PreTrainedModel2x and TokenizerCompat2x.
XLNet's files (configuration_xlnet.py, tokenization_xlnet.py, modeling_xlnet.py) are read the same way.
convert_ernie_checkpoint.py turns Baidu's ERNIE 1.0 release into a BERT folder, reading its Paddle files with
paddle_params.py (no Paddle needed).
modeling_albert_zh.py is brightmart's albert_zh, the other ALBERT, which the ALBERT classes build for a config
with `ln_type`.

The public names are imported on first use rather than here. Importing every module up front would make
`python -m transformers.tokenization_bert ...` (each module's demo) import that module twice, which Python
warns about.
"""
import importlib

__version__ = "0.1.0"

_PUBLIC_NAMES = {
    "BertConfig": "configuration_bert",
    "AlbertConfig": "configuration_albert",
    "AlbertModel": "modeling_albert",
    "AlbertForSequenceClassification": "modeling_albert",
    "AlbertTokenizer": "tokenization_albert",
    "RobertaConfig": "configuration_roberta",
    "RobertaModel": "modeling_roberta",
    "RobertaForSequenceClassification": "modeling_roberta",
    "RobertaTokenizer": "tokenization_roberta",
    "FAMILIES": "model_families",
    "choose_family": "model_families",
    "BasicTokenizer": "tokenization_bert",
    "BertTokenizer": "tokenization_bert",
    "WordpieceTokenizer": "tokenization_bert",
    "BertModel": "modeling_bert",
    "BertModelOutput": "modeling_bert",
    "BertForSequenceClassification": "modeling_bert",
    "SequenceClassifierOutput": "modeling_bert",
    "XLNetConfig": "configuration_xlnet",
    "XLNetTokenizer": "tokenization_xlnet",
    "XLNetModel": "modeling_xlnet",
    "XLNetForSequenceClassification": "modeling_xlnet",
    "XLNetLMHeadModel": "modeling_xlnet",
    "XLNetForQuestionAnswering": "modeling_xlnet",
    "load_tf_weights_in_xlnet": "modeling_xlnet",
    "PreTrainedModel": "modeling_utils",
    "LoadingInfo": "modeling_utils",
    "LoadingError": "configuration_bert",
    "ModelOutput": "modeling_utils",
    "resolve_reinit_keys": "modeling_utils",
    "top_layer_selectors": "modeling_utils",
    "cached_path": "file_utils",
    "TFCheckpoint": "tf_checkpoint",
    # The transformers 2.x surface (compat_2x.py says what each 2.x argument means here).
    "WEIGHTS_NAME": "file_utils",
    "CONFIG_NAME": "file_utils",
    "AdamW": "optimization",
    "ConstantLRSchedule": "optimization",
    "WarmupConstantSchedule": "optimization",
    "WarmupLinearSchedule": "optimization",
    "WarmupCosineSchedule": "optimization",
    "WarmupCosineWithHardRestartsSchedule": "optimization",
    "AutoConfig": "auto",
    "AutoTokenizer": "auto",
    "AutoModel": "auto",
    "AutoModelForSequenceClassification": "auto",
    "BertForPreTraining": "modeling_bert",
    "BertForMaskedLM": "modeling_bert",
    "load_tf_weights_in_bert": "modeling_bert",
    # ALBERT's 2.x converter names, and brightmart's albert_zh (modeling_albert_zh.py).
    "AlbertForPreTraining": "modeling_albert",
    "load_tf_weights_in_albert": "modeling_albert",
    "AlbertZhConfig": "configuration_albert",
    "AlbertZhModel": "modeling_albert_zh",
    "AlbertZhForSequenceClassification": "modeling_albert_zh",
    "AlbertZhForPreTraining": "modeling_albert_zh",
}
__all__ = sorted(_PUBLIC_NAMES)


def __getattr__(name):
    if name not in _PUBLIC_NAMES:
        raise AttributeError(f"module 'transformers' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC_NAMES[name]}", __name__), name)
