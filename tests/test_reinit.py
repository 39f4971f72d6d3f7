"""Evidence that `from_pretrained(reinit_keys=...)` re-initializes exactly what it selects, and that the
article's one line (pre-filling `unexpected_keys`) does not."""
import pytest
import torch
from safetensors.torch import load_file

from _support import minilm_dir
from transformers import BertForSequenceClassification, BertModel
from transformers.modeling_utils import load, resolve_reinit_keys, top_layer_selectors

LAYER5_AND_POOLER = ["bert.encoder.layer.5", "bert.pooler"]


@pytest.fixture(scope="module")
def checkpoint():
    """The MiniLM tensors as stored on disk, keyed in the head model's naming (`bert.` prefix)."""
    raw = load_file(str(minilm_dir() / "model.safetensors"))
    return {"bert." + key: tensor for key, tensor in raw.items() if not key.endswith("position_ids")}


def load_with_reinit(seed, selectors=LAYER5_AND_POOLER, **kwargs):
    return BertForSequenceClassification.from_pretrained(
        str(minilm_dir()), num_labels=3, reinit_keys=selectors, reinit_seed=seed, output_loading_info=True,
        **kwargs)


def test_article_line_does_not_reinit(checkpoint):
    """The article's recipe on our own `load()`: list a key in `unexpected_keys`, keep it in the state dict.
    PyTorch copies it anyway, because `_load_from_state_dict` appends to that list and never reads it."""
    key = "bert.encoder.layer.0.attention.self.query.weight"
    model = BertForSequenceClassification(BertModel.from_pretrained(str(minilm_dir())).config)
    assert not torch.equal(model.state_dict()[key], checkpoint[key])  # starts random
    state_dict = dict(checkpoint)
    missing_keys, unexpected_keys, error_msgs = [], [key], []  # the article's one line
    load(model, state_dict, missing_keys, unexpected_keys, error_msgs)
    assert error_msgs == []
    assert unexpected_keys == [key]  # still listed as "not used" ...
    assert torch.equal(model.state_dict()[key], checkpoint[key])  # ... but loaded all the same


def test_selected_tensors_change_and_all_others_are_bit_identical(checkpoint):
    model, info = load_with_reinit(seed=7)
    state = model.state_dict()
    selected = set(info.reinit_keys)
    expected = {k for k in checkpoint if k.startswith("bert.encoder.layer.5.") or k.startswith("bert.pooler.")}
    assert selected == expected
    assert len(selected) == 18
    already_at_init = []
    for key, tensor in checkpoint.items():
        if key in selected and key.endswith("bias") and torch.count_nonzero(tensor) == 0:
            # MiniLM's pooler bias is stored as all zeros, which is also what the init rule gives a bias.
            already_at_init.append(key)
            assert torch.count_nonzero(state[key]) == 0, key
        elif key in selected:
            assert not torch.equal(state[key], tensor), key
        else:
            assert torch.equal(state[key], tensor), key
    assert already_at_init == ["bert.pooler.dense.bias"]
    # Reported: the checkpoint had them and we did not use them; never missing.
    assert selected <= set(info.unexpected_keys)
    assert not selected & set(info.missing_keys)
    assert info.missing_keys == ["classifier.weight", "classifier.bias"]


def test_reinit_values_follow_the_init_rule():
    model, info = load_with_reinit(seed=7)
    std = model.config.initializer_range
    state = model.state_dict()
    weights = [k for k in info.reinit_keys if k.endswith("weight") and "LayerNorm" not in k]
    for key in weights:
        assert abs(state[key].std().item() - std) < 0.1 * std, key
        assert abs(state[key].mean().item()) < 0.1 * std, key
    for key in info.reinit_keys:
        if key.endswith("bias"):
            assert torch.count_nonzero(state[key]) == 0, key
        elif "LayerNorm" in key:
            assert torch.all(state[key] == 1.0), key


def test_reinit_std_is_used():
    model, info = load_with_reinit(seed=7, reinit_std=0.05)
    weight = model.state_dict()["bert.pooler.dense.weight"]
    assert abs(weight.std().item() - 0.05) < 0.005


def test_same_seed_same_values_other_seed_other_values():
    first, info = load_with_reinit(seed=3)
    torch.manual_seed(12345)
    torch.randn(1000)  # consume the global RNG: the reinit draw must not depend on it
    second, _ = load_with_reinit(seed=3)
    third, _ = load_with_reinit(seed=4)
    for key in info.reinit_keys:
        if key.endswith("weight") and "LayerNorm" not in key:
            assert torch.equal(first.state_dict()[key], second.state_dict()[key]), key
            assert not torch.equal(first.state_dict()[key], third.state_dict()[key]), key


@pytest.mark.parametrize("selectors", [
    ["encoder.layer.5", "pooler"],  # the bare BertModel checkpoint's naming
    ["bert.encoder.layer.5.*", "bert.pooler.dense.*"],  # globs
    ["bert.encoder.layer.[5]", "pooler.dense.weight", "pooler.dense.bias"],  # a glob and exact names
])
def test_both_namings_and_all_selector_kinds_resolve_alike(selectors):
    _, reference = load_with_reinit(seed=1)
    _, info = load_with_reinit(seed=1, selectors=selectors)
    assert info.reinit_keys == reference.reinit_keys


def test_bare_model_accepts_prefixed_names():
    model, info = BertModel.from_pretrained(str(minilm_dir()), reinit_keys=["bert.pooler"],
                                            output_loading_info=True)
    assert info.reinit_keys == ["pooler.dense.weight", "pooler.dense.bias"]
    assert info.unexpected_keys == ["pooler.dense.weight", "pooler.dense.bias"]


def test_module_prefix_does_not_overmatch():
    model = BertModel.from_pretrained(str(minilm_dir()))
    # "encoder.layer.1" must not select layer 10, 11, ... (MiniLM has 6, so build a 12-layer config).
    config = model.config
    config.num_hidden_layers = 12
    big = BertModel(config)
    names = resolve_reinit_keys(big, ["encoder.layer.1"])
    assert names and all(n.startswith("encoder.layer.1.") for n in names)


def test_bad_selector_raises_with_a_suggestion():
    with pytest.raises(ValueError) as caught:
        load_with_reinit(seed=1, selectors=["bert.encoder.layer.5.attention.self.querry.weight"])
    message = str(caught.value)
    assert "querry" in message
    assert "bert.encoder.layer.5.attention.self.query.weight" in message


def test_selector_beyond_the_model_raises():
    with pytest.raises(ValueError, match="encoder.layer.6"):
        load_with_reinit(seed=1, selectors=["bert.encoder.layer.6"])


def test_glob_that_matches_nothing_is_called_a_glob():
    """The glob of a 12-layer model on the 6-layer MiniLM: the message speaks of a glob, not of a name or a
    module prefix, which the selector is not."""
    with pytest.raises(ValueError) as caught:
        load_with_reinit(seed=1, selectors=["bert.encoder.layer.1[01].*"])
    message = str(caught.value)
    assert "reinit selector 'bert.encoder.layer.1[01].*' matches no parameter" in message
    assert "the glob matches no parameter name and no module name" in message
    assert "prefix" not in message


def test_buffer_selector_is_refused_with_reason():
    with pytest.raises(ValueError, match="buffer"):
        load_with_reinit(seed=1, selectors=["bert.embeddings.position_ids"])


def test_top_layer_selectors():
    config = BertModel.from_pretrained(str(minilm_dir())).config
    assert top_layer_selectors(config, 2, pooler=True) == [
        "bert.encoder.layer.4", "bert.encoder.layer.5", "bert.pooler"]
    assert top_layer_selectors(config, 0) == []
    with pytest.raises(ValueError, match="6 encoder layers"):
        top_layer_selectors(config, 7)


HF_INIT_WEIGHTS_AFTER_LOADING = """
import json, torch
from transformers import BertModel
model = BertModel.from_pretrained({model_dir!r})
query = model.encoder.layer[5].attention.self.query
before = query.weight.detach().clone()
model._init_weights(query)  # the modern recipe for "re-initialize this module"
after_call = torch.equal(before, query.weight)
model.encoder.layer[5].apply(model._init_weights)
after_apply = torch.equal(before, query.weight)
print(json.dumps({{"unchanged_after_call": after_call, "unchanged_after_apply": after_apply}}))
"""


def test_reference_init_weights_after_loading_is_a_silent_no_op(tmp_path):
    """Today's form of the same trap, in the reference library (5.x): `_init_weights` on a loaded module
    leaves the loaded values in place, with no error. Our reinit_keys is the way that works."""
    from _support import run_oracle_json
    result = run_oracle_json(HF_INIT_WEIGHTS_AFTER_LOADING.format(model_dir=str(minilm_dir())), tmp_path)
    assert result == {"unchanged_after_call": True, "unchanged_after_apply": True}
    ours = BertModel.from_pretrained(str(minilm_dir()), reinit_keys=["encoder.layer.5.attention.self.query"])
    raw = load_file(str(minilm_dir() / "model.safetensors"))
    assert not torch.equal(ours.encoder.layer[5].attention.self.query.weight,
                           raw["encoder.layer.5.attention.self.query.weight"])
