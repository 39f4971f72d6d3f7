"""from_pretrained, the config and the tokenizer given URLs of a model folder served over real HTTP
(a `http.server` on loopback serving the MiniLM files), not local paths."""
import functools
import http.server
import threading

import pytest
import torch

from _support import minilm_dir
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def model_url():
    handler = functools.partial(QuietHandler, directory=str(minilm_dir()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_model_config_and_tokenizer_from_a_served_folder(model_url, tmp_path):
    cache = str(tmp_path / "cache")
    local = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3)
    remote, info = BertForSequenceClassification.from_pretrained(model_url, num_labels=3, cache_dir=cache,
                                                                 output_loading_info=True)
    assert info.missing_keys == ["classifier.weight", "classifier.bias"]
    for key, tensor in local.bert.state_dict().items():
        assert torch.equal(remote.bert.state_dict()[key], tensor), key

    assert BertConfig.from_pretrained(model_url, cache_dir=cache) == BertConfig.from_pretrained(str(minilm_dir()))
    tokenizer = BertTokenizer.from_pretrained(model_url, cache_dir=cache)
    assert tokenizer.do_lower_case  # read from the served tokenizer_config.json
    text = "Remote files land in the cache first."
    assert tokenizer.encode_plus(text) == BertTokenizer.from_pretrained(str(minilm_dir())).encode_plus(text)


def test_weights_file_url_finds_its_config(model_url, tmp_path):
    model = BertForSequenceClassification.from_pretrained(model_url + "model.safetensors", num_labels=2,
                                                          cache_dir=str(tmp_path))
    assert model.config.hidden_size == 384


def test_missing_remote_folder_names_the_url(model_url, tmp_path):
    with pytest.raises(OSError) as caught:
        BertForSequenceClassification.from_pretrained(model_url + "no-such-model/", cache_dir=str(tmp_path))
    assert "no-such-model" in str(caught.value) and "404" in str(caught.value)
