"""from_pretrained, the config and the tokenizer given URLs of a model folder served over real HTTP
(a `http.server` on loopback serving the MiniLM files), not local paths."""
import functools
import http.server
import json
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch

from _support import minilm_dir
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
from transformers.file_utils import OFFLINE_ENV_VAR, DownloadError, ServerUnavailable


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


class ServedModel:
    """The MiniLM folder on a loopback server of its own, counting GETs per file name; `status[name]`
    makes the server answer every request for that file with that HTTP status."""

    def __init__(self):
        self.gets = Counter()
        self.status = {}
        handler = functools.partial(self.Handler, self, directory=str(minilm_dir()))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    class Handler(QuietHandler):
        def __init__(self, served, *args, **kwargs):
            self.served = served
            super().__init__(*args, **kwargs)

        def do_HEAD(self):
            self.answer(super().do_HEAD)

        def do_GET(self):
            name = urlsplit(self.path).path.rsplit("/", 1)[-1]
            self.served.gets[name] += 1
            self.answer(super().do_GET)

        def answer(self, serve):
            status = self.served.status.get(urlsplit(self.path).path.rsplit("/", 1)[-1])
            if status is not None:
                self.send_error(status)
            else:
                serve()


@pytest.fixture
def served():
    served = ServedModel()
    yield served
    served.stop()


def test_force_download_fetches_model_config_and_tokenizer_again(served, tmp_path):
    cache = str(tmp_path / "cache")
    BertForSequenceClassification.from_pretrained(served.url, num_labels=2, cache_dir=cache)
    BertConfig.from_pretrained(served.url, cache_dir=cache)
    BertTokenizer.from_pretrained(served.url, cache_dir=cache)
    # MiniLM is served without ETags, so without force_download nothing is fetched twice.
    assert served.gets == {"config.json": 1, "model.safetensors": 1, "vocab.txt": 1, "tokenizer_config.json": 1}

    model = BertForSequenceClassification.from_pretrained(served.url, num_labels=2, cache_dir=cache,
                                                          force_download=True)
    BertConfig.from_pretrained(served.url, cache_dir=cache, force_download=True)
    BertTokenizer.from_pretrained(served.url, cache_dir=cache, force_download=True)
    assert served.gets == {"config.json": 3, "model.safetensors": 2, "vocab.txt": 2, "tokenizer_config.json": 2}
    assert model.config.hidden_size == 384


def test_offline_loading_uses_the_cache_and_asks_no_server(served, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    with pytest.raises(DownloadError, match=f"{served.url}config.json is not in the cache"):
        BertConfig.from_pretrained(served.url, cache_dir=cache, local_files_only=True)
    BertForSequenceClassification.from_pretrained(served.url, num_labels=2, cache_dir=cache)
    BertTokenizer.from_pretrained(served.url, cache_dir=cache)
    served.stop()

    model = BertForSequenceClassification.from_pretrained(served.url, num_labels=2, cache_dir=cache,
                                                          local_files_only=True)
    assert model.config.hidden_size == 384
    assert BertConfig.from_pretrained(served.url, cache_dir=cache, local_files_only=True) == model.config
    monkeypatch.setenv(OFFLINE_ENV_VAR, "1")
    tokenizer = BertTokenizer.from_pretrained(served.url, cache_dir=cache)
    assert tokenizer.encode_plus("offline") == BertTokenizer.from_pretrained(str(minilm_dir())).encode_plus("offline")


def test_optional_tokenizer_config_is_optional_only_when_missing(served, tmp_path):
    # A cased checkpoint whose tokenizer_config.json cannot be fetched must not be read as uncased.
    served.status["tokenizer_config.json"] = 500
    with pytest.raises(ServerUnavailable) as caught:
        BertTokenizer.from_pretrained(served.url, cache_dir=str(tmp_path / "a"))
    assert f"{served.url}tokenizer_config.json: HTTP 500" in str(caught.value)

    served.status["tokenizer_config.json"] = 404  # an older upload without one: the defaults
    tokenizer = BertTokenizer.from_pretrained(served.url, cache_dir=str(tmp_path / "b"))
    assert tokenizer.do_lower_case


def test_weights_server_error_is_not_taken_for_a_missing_file(served, tmp_path):
    # Only a 404 on model.safetensors moves on to pytorch_model.bin; a 500 is reported as it is.
    served.status["model.safetensors"] = 500
    with pytest.raises(ServerUnavailable, match=f"{served.url}model.safetensors: HTTP 500"):
        BertForSequenceClassification.from_pretrained(served.url, cache_dir=str(tmp_path))
    assert served.gets["pytorch_model.bin"] == 0


def test_a_url_with_a_query_keeps_it_on_every_file_and_never_stores_it(served, tmp_path):
    cache = tmp_path / "cache"
    model = BertForSequenceClassification.from_pretrained(served.url + "?sig=SECRET", num_labels=2,
                                                          cache_dir=str(cache))
    tokenizer = BertTokenizer.from_pretrained(served.url + "?sig=SECRET", cache_dir=str(cache))
    assert model.config.hidden_size == 384 and tokenizer.vocab_size == 30522
    weights = BertForSequenceClassification.from_pretrained(served.url + "model.safetensors?sig=SECRET",
                                                            num_labels=2, cache_dir=str(cache))
    assert weights.config == model.config
    sidecars = [json.loads(p.read_text()) for p in Path(cache).glob("*.json")]
    assert {d["url"] for d in sidecars} >= {served.url + name + "?<redacted>" for name in
                                          ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json")}
    with pytest.raises(OSError) as caught:
        BertForSequenceClassification.from_pretrained(served.url + "no-such-model/?sig=SECRET", cache_dir=str(cache))
    assert "no-such-model/config.json?<redacted>" in str(caught.value) and "SECRET" not in str(caught.value)
