"""User mistakes found at run time are UserErrors naming what is wrong and the fix (issue #20 item 6):
`rlvr run` turns them into exit 2 with one or two lines and no traceback."""

from __future__ import annotations

import pytest

from rlvr.models.load import ModelNotFound, load_model, load_tokenizer


def test_a_missing_local_model_is_named(tmp_path):
    with pytest.raises(ModelNotFound, match=f"model {tmp_path}/nope: the local path does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelNotFound, match="has no config.json"):
        load_model(tmp_path)  # a directory, but no model in it
    with pytest.raises(ModelNotFound, match="has no tokenizer_config.json or config.json"):
        load_tokenizer(tmp_path)


def test_an_uncached_hub_model_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match=r"not in the Hugging Face cache and the hub is offline.*huggingface-cli download "
                                            r"rlvr-test/no-such-model"):
        load_tokenizer("rlvr-test/no-such-model")


def test_a_model_directory_still_loads(tmp_path):
    from rlvr.config import TinyModelSpec
    from rlvr.models.tiny import build_tiny

    build_tiny(TinyModelSpec(hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64), tmp_path)
    assert load_tokenizer(tmp_path) is not None and load_model(tmp_path) is not None
