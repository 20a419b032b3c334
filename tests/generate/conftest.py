"""Fixtures for the generation tests: one tiny model per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The tiny Qwen2 model + ChatML tokenizer (head size 32: vLLM's CPU attention needs >= 32)."""
    from rlvr.config import TinyModelSpec
    from rlvr.models.tiny import build_tiny

    spec = TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
    return build_tiny(spec, tmp_path_factory.mktemp("tiny"))
