"""The runner builds RUN/base_model (the recipe's tiny model, ~9 s on CPU) only when a stage reads it."""

from __future__ import annotations

import pytest
import yaml

from rlvr import runner
from rlvr.config import dump_recipe, validate_recipe
from rlvr.rundir import RunDir
from rlvr.world import World

SFT = {"type": "sft", "data": {"toy": {}}, "optim": {"lr": 1e-3}}

CASES = {
    # id: (stages, base model built?)
    "only_stage_from_path": ([{"name": "sft", "init": "/models/some-sft", **SFT}], False),
    "every_stage_from_path": ([{"name": "a", "init": "/models/x", **SFT}, {"name": "b", "init": "org/model", **SFT}],
                              False),
    "path_then_previous": ([{"name": "a", "init": "/models/x", **SFT}, {"name": "b", **SFT}], False),
    "first_stage_previous": ([{"name": "sft", **SFT}], True),
    "later_stage_base": ([{"name": "a", "init": "/models/x", **SFT}, {"name": "b", "init": "base", **SFT}], True),
    "eval_of_base_before_path": ([{"name": "ev", "type": "eval"}, {"name": "a", "init": "/models/x", **SFT}], True),
    "eval_then_stage_after_it": ([{"name": "ev", "type": "eval", "init": "/models/x"},
                                  {"name": "a", "init": "ev", **SFT}], False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_base_model_built_only_when_a_stage_reads_it(case, tmp_path, monkeypatch):
    stages, built = CASES[case]
    recipe = validate_recipe({"name": "t", "model": {"tiny": {}}, "stages": stages})
    calls = []

    def fake_build_tiny(spec, out):  # the real one takes ~9 s; only whether it runs matters here
        calls.append(out)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr("rlvr.models.tiny.build_tiny", fake_build_tiny)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    run = RunDir(tmp_path / "run")
    runner._prepare_base_model(recipe, run, World.from_env())
    assert run.base_model.is_dir() == built
    assert len(calls) == int(built)


def test_hub_model_recipe_builds_nothing(tmp_path):
    recipe = validate_recipe({"name": "t", "model": {"name": "org/model"}, "stages": [{"name": "sft", **SFT}]})
    run = RunDir(tmp_path / "run")
    runner._prepare_base_model(recipe, run, World.from_env())
    assert not run.base_model.exists()


def _contract_paths(text: str) -> set[str]:
    """The first column of each `RUN_DIR/...` line of a run-directory listing."""
    return {line.strip().split("  ")[0] for line in text.splitlines() if line.strip().startswith("RUN_DIR/")}


def test_run_dir_contract_lists_every_output_in_rundir_and_readme():
    from conftest import REPO

    import rlvr.rundir

    documented = _contract_paths(rlvr.rundir.__doc__)
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The run directory"):readme.index("## Evaluation")]
    assert _contract_paths(section) == documented
    for path in ("RUN_DIR/stages/<name>/exports/step-<N>/", "RUN_DIR/stages/<name>/eval/",
                 "RUN_DIR/stages/<name>/validation/step-<N>/", "RUN_DIR/stages/<name>/validation/",
                 "RUN_DIR/report.md, scores.csv, plots/"):
        assert path in documented, path


def test_config_changes_name_each_key_by_its_stage():
    old = validate_recipe({"name": "t", "model": {"tiny": {}}, "stages": [{"name": "a", **SFT}, {"name": "b", **SFT}]})
    new = validate_recipe({"name": "t2", "seed": 3, "model": {"tiny": {}}, "tracking": {"project": "x"},
                           "stages": [{"name": "a", **SFT, "save_every": 5},
                                      {"name": "b", **SFT, "optim": {"lr": 0.5}}, {"name": "c", **SFT}]})
    dump = lambda r: yaml.safe_load(dump_recipe(r))  # noqa: E731
    changes = runner.config_changes(dump(old), dump(new))
    assert set(changes) == {None, "b", "c"}  # name, tracking and save_every do not change the weights
    assert changes[None] == ["seed: 0 -> 3"]
    assert changes["b"] == ["stages.b.optim.lr: 0.001 -> 0.5"]
    assert changes["c"][0].startswith("stages.c: (absent) -> {")
    swapped = dump(old)
    swapped["stages"].reverse()
    assert runner.config_changes(dump(old), swapped) == {None: ["stages (order): ['a', 'b'] -> ['b', 'a']"]}


# ------------------------------------------------------------------ global_batch_size (issue #18 item 3)
@pytest.mark.parametrize(("world", "micro", "expect"), [(1, 1, 128), (8, 1, 16), (128, 1, 1), (8, 4, 4), (16, 8, 1)])
def test_global_batch_size_keeps_the_batch_on_any_number_of_ranks(world, micro, expect):
    import types

    from rlvr.config import SftStage
    from rlvr.stages.context import StageContext

    cfg = SftStage(name="sft", type="sft", data={"toy": {}}, global_batch_size=128, micro_batch_size=micro)
    ctx = StageContext.__new__(StageContext)
    ctx.cfg, ctx.world = cfg, types.SimpleNamespace(world_size=world)
    ctx.recipe = types.SimpleNamespace(backend=types.SimpleNamespace(micro_batch_size=1, grad_accum=1))
    assert ctx.grad_accum == expect and ctx.global_batch == 128


@pytest.mark.parametrize(("world", "micro", "message"), [
    (3, 1, "global_batch_size 128 cannot be split over 3 ranks"),
    (8, 3, "each of the 8 ranks takes 16 rows of global_batch_size 128, not a multiple of micro_batch_size 3; "
           "set micro_batch_size to a divisor of 16 (e.g. 2)"),
])
def test_a_global_batch_the_ranks_cannot_split_is_refused(world, micro, message):
    import types

    from rlvr.config import SftStage
    from rlvr.schema import UserError
    from rlvr.stages.context import StageContext

    ctx = StageContext.__new__(StageContext)
    ctx.cfg = SftStage(name="sft", type="sft", data={"toy": {}}, global_batch_size=128, micro_batch_size=micro)
    ctx.world = types.SimpleNamespace(world_size=world)
    ctx.recipe = types.SimpleNamespace(backend=types.SimpleNamespace(micro_batch_size=1, grad_accum=1))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _ = ctx.grad_accum


def test_global_batch_size_and_grad_accum_exclude_each_other():
    from rlvr.config import RlvrStage, SftStage

    with pytest.raises(ValueError, match="not both"):
        SftStage(name="sft", type="sft", data={"toy": {}}, global_batch_size=128, grad_accum=2)
    with pytest.raises(ValueError, match="prompts_per_step"):
        RlvrStage(name="rl", type="rlvr", data={"toy": {}}, global_batch_size=128)
