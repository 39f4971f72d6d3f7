"""A readable BERT in the layout of transformers 2.x, whose `from_pretrained(reinit_keys=...)` really
re-initializes what you select.

Reading order: configuration_bert.py -> tokenization_bert.py -> modeling_bert.py -> modeling_utils.py
(`from_pretrained`), with file_utils.py turning names and URLs into local files.
"""
from .configuration_bert import BertConfig
from .file_utils import cached_path
from .modeling_bert import BertForSequenceClassification, BertModel, BertModelOutput, SequenceClassifierOutput
from .modeling_utils import LoadingError, LoadingInfo, PreTrainedModel, resolve_reinit_keys, top_layer_selectors
from .tokenization_bert import BasicTokenizer, BertTokenizer, WordpieceTokenizer

__version__ = "0.1.0"
__all__ = [
    "BasicTokenizer", "BertConfig", "BertForSequenceClassification", "BertModel", "BertModelOutput",
    "BertTokenizer", "LoadingError", "LoadingInfo", "PreTrainedModel", "SequenceClassifierOutput",
    "WordpieceTokenizer", "cached_path", "resolve_reinit_keys", "top_layer_selectors",
]
