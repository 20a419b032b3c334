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


# ------------------------------------------------------------------ through `rlvr run`

RECIPE = """
name: mistakes
model: {MODEL}
backend: {{zero_stage: 0, micro_batch_size: 4}}
stages:
  - name: sft
    type: sft
    data: {DATA}
    max_steps: 1
"""


def _run(tmp_path, model: str, data: str, *extra: str):
    from conftest import PYTHON, run_cmd

    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(MODEL=model, DATA=data))
    return run_cmd([PYTHON, "-m", "rlvr", "run", str(recipe), "--run-dir", str(tmp_path / "run"), *extra], timeout=300)


def test_run_with_an_uncached_hub_model_offline_exits_2_naming_it(tmp_path):
    proc = _run(tmp_path, "{name: rlvr-test/no-such-model}", "{toy: {n: 8}}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "huggingface-cli download rlvr-test/no-such-model" in proc.stderr, proc.stderr
    import json

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stages"][0]["status"] == "failed"


def test_run_with_an_empty_data_file_names_the_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    tiny = "{tiny: {hidden_size: 64, num_layers: 1, num_heads: 2, num_kv_heads: 1, intermediate_size: 64}, dtype: float32}"
    proc = _run(tmp_path, tiny, f"{{path: {tmp_path / 'empty.jsonl'}}}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"{tmp_path / 'empty.jsonl'}: no rows" in proc.stderr, proc.stderr


def test_rlvr_debug_shows_the_traceback(tmp_path):
    from conftest import PYTHON, run_cmd

    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(MODEL="{name: rlvr-test/no-such-model}", DATA="{toy: {n: 8}}"))
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(recipe), "--run-dir", str(tmp_path / "run")], timeout=300,
                   RLVR_DEBUG="1")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ModelNotFound" in proc.stderr, proc.stderr[-2000:]
