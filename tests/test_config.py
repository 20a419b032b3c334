"""Recipe schema: every shipped recipe validates; malformed recipes exit 2 naming the key; overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import PYTHON, REPO, run_cmd

from rlvr.cli import main
from rlvr.config import ConfigError, apply_override, load_recipe

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.stages, path


def test_recipes_exist():
    assert any(p.name == "tiny.yaml" for p in RECIPES)


GOOD = {
    "name": "t",
    "model": {"tiny": {}},
    "stages": [{"name": "sft", "type": "sft", "data": {"toy": {}}, "optim": {"lr": 1e-3}}],
}

MALFORMED = {
    # id: (mutation of GOOD, key path expected in the message, words expected)
    "unknown_key": (lambda d: d["stages"][0].update(bogus=1), "stages[0].bogus", "unknown key"),
    "unknown_top_key": (lambda d: d.update(lr=1), "lr", "unknown key"),
    "wrong_type": (lambda d: d["stages"][0].update(max_steps="many"), "stages[0].max_steps", "integer"),
    "negative_lr": (lambda d: d["stages"][0]["optim"].update(lr=-1), "stages[0].optim.lr", "must be > 0, got -1"),
    "duplicate_stage": (lambda d: d["stages"].append(dict(d["stages"][0])), "stages[1].name", "duplicate stage name"),
    "unknown_stage_type": (lambda d: d["stages"][0].update(type="ppo"), "stages[0]", "unknown stage type 'ppo'"),
    "missing_model": (lambda d: d.pop("model"), "model", "required key is missing"),
    "two_model_sources": (lambda d: d["model"].update(name="Qwen/Qwen2.5-Math-1.5B"), "model", "exactly one"),
    "small_head": (lambda d: d["model"]["tiny"].update(hidden_size=64, num_heads=4), "model.tiny", "head size 16 < 32"),
    "two_data_sources": (lambda d: d["stages"][0]["data"].update(path="x.jsonl"), "stages[0].data", "exactly one data source of toy, rows, path, hub, spec"),
    "bad_zero_stage": (lambda d: d.update(backend={"zero_stage": 4}), "backend.zero_stage", "must be one of"),
}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_recipe_exits_2_with_key_path(case, tmp_path, capsys):
    import copy

    mutate, key, words = MALFORMED[case]
    data = copy.deepcopy(GOOD)
    mutate(data)
    code = main(["validate", str(_write(tmp_path, data))])
    err = capsys.readouterr().err
    assert code == 2
    assert f"  {key}: " in err, err
    assert words in err, err
    assert "Traceback" not in err


def test_all_problems_reported_at_once(tmp_path):
    data = {"name": "t", "model": {"tiny": {}, "dtype": "fp8"}, "bogus": 1,
            "stages": [{"name": "a", "type": "sft", "data": {"toy": {}}, "optim": {"lr": 0}},
                       {"name": "a", "type": "midtrain", "data": {"toy": {}}, "seq_len": 1}]}
    with pytest.raises(ConfigError) as info:
        load_recipe(_write(tmp_path, data))
    text = info.value.render()
    for key in ("model.dtype", "bogus", "stages[0].optim.lr", "stages[1].seq_len", "stages[1].name"):
        assert f"  {key}: " in text, text
    assert "5 problems" in text


def test_config_error_exits_2_in_subprocess_without_traceback(tmp_path):
    data = {**GOOD, "stages": [{**GOOD["stages"][0], "optim": {"lr": -1}}]}
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(_write(tmp_path, data))], timeout=60)
    assert proc.returncode == 2
    assert "stages[0].optim.lr: must be > 0, got -1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_overrides_by_stage_name_and_index():
    data = {"stages": [{"name": "sft", "optim": {"lr": 1}}, {"name": "rl"}]}
    apply_override(data, "stages.rl.optim.lr=2e-6")
    apply_override(data, "stages[0].optim.lr=0.5")
    apply_override(data, "stages.1.max_steps=7")
    assert data["stages"][1]["optim"]["lr"] == 2e-6
    assert data["stages"][0]["optim"]["lr"] == 0.5
    assert data["stages"][1]["max_steps"] == 7
    with pytest.raises(ValueError, match="no item named 'nope'"):
        apply_override(data, "stages.nope.lr=1")
    with pytest.raises(ValueError, match="out of range"):
        apply_override(data, "stages.5.lr=1")
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        apply_override(data, "stages.rl.lr")


def test_override_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no item named 'rl'"):
        load_recipe(_write(tmp_path, GOOD), ["stages.rl.optim.lr=1"])


def test_defaults_live_in_schema_and_resolve(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD), ["stages.sft.max_steps=3"])
    sft = recipe.stage("sft")
    assert sft.max_steps == 3 and sft.packing is False and sft.optim.schedule == "cosine"
    assert recipe.backend.zero_stage == 2 and recipe.tracking.mode == "disabled"


def test_data_spec_files_validate():
    specs = sorted((REPO / "data").glob("*.yaml"))
    assert specs
    for spec in specs:
        data = {**GOOD, "stages": [{**GOOD["stages"][0], "data": {"spec": str(spec)}}]}
        from rlvr.config import _expand_data_specs, validate_recipe

        problems: list[str] = []
        _expand_data_specs(data, REPO / "recipes", problems)
        assert not problems
        validate_recipe(data, spec)


def test_missing_data_spec_is_reported(tmp_path):
    data = {**GOOD, "stages": [{**GOOD["stages"][0], "data": {"spec": "no_such_dataset"}}]}
    with pytest.raises(ConfigError, match=r"stages\[0\].data.spec: dataset spec 'no_such_dataset' not found"):
        load_recipe(_write(tmp_path, data))
