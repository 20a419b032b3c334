"""The `distill` stage (issue #18): teacher rollouts judged by the verifier become sft.jsonl, pairs.jsonl and
rollouts.jsonl, which later stages read by name.

- selection and pairing on hand-made judged groups (Phi-4's filters, `keep`, the dpo pairs format);
- recipe validation of the references (unknown stage, wrong type, later stage, a model from a distill stage);
- a killed distill stage resumes without regenerating its finished chunks and writes the same rollouts as an
  uninterrupted run; another teacher (changed weights) never reuses them;
- recipes/tiny_distill.yaml end to end: the student's held-out accuracy rises over its base and the
  teacher's pairs feed a DPO stage (slow)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import PYTHON, REPO, run_cmd, tail

from rlvr.config import DistillStage, load_recipe
from rlvr.data.config import DataConfig
from rlvr.data.sources import DataError, load_rows
from rlvr.rundir import RunDir
from rlvr.schema import ConfigError
from rlvr.stages.distill import complete_prompts, select, teacher_fingerprint

RECIPE = REPO / "recipes" / "tiny_distill.yaml"


def _sample(index: int, sample: int, correct: bool, tokens: int, truncated: bool = False) -> dict:
    return {"index": index, "sample": sample, "prompt": f"p{index}", "completion": f"c{index}.{sample}",
            "gold": "1", "correct": correct, "reason": "match" if correct else "wrong_answer",
            "truncated": truncated, "num_tokens": tokens}


def _stage(**kw) -> DistillStage:
    return DistillStage.model_validate({"name": "d", "type": "distill", "data": {"toy": {"n": 4}}, **kw})


GROUPS = [
    [_sample(0, 0, False, 10), _sample(0, 1, False, 12)],             # never solved
    [_sample(1, 0, True, 10), _sample(1, 1, True, 11)],               # always solved
    [_sample(2, 0, True, 10), _sample(2, 1, False, 90)],              # uneven lengths (cv 0.8)
    [_sample(3, 0, True, 20), _sample(3, 1, True, 18, truncated=True), _sample(3, 2, False, 20)],
]


def test_selection_filters_keep_and_pairs():
    out = select([GROUPS[0], GROUPS[3]], _stage(), seed=0)
    s = out["stats"]["summary"]
    assert s["dropped_never_solved"] == 1 and s["prompts_kept"] == 1
    # a truncated response is never kept nor chosen, even when the verifier's verdict is correct
    assert [(r["index"], r["sample"]) for r in out["sft"]] == [(3, 0)]
    assert set(out["sft"][0]) >= {"problem", "solution", "answer"}  # the default problem_solution preset
    assert out["pairs"] == [{"prompt": "p3", "gold": "1", "chosen": "c3.0", "rejected": "c3.2",
                             "chosen_reason": "match", "rejected_reason": "wrong_answer"}]

    out = select(GROUPS, _stage(selection={"drop_always_solved": True, "max_length_cv": 0.5}), seed=0)
    s = out["stats"]["summary"]
    assert (s["dropped_never_solved"], s["dropped_always_solved"], s["dropped_length_cv"]) == (1, 1, 1)
    assert {r["index"] for r in out["sft"]} == {3}

    everything = select(GROUPS, _stage(selection={"drop_never_solved": False}), seed=0)
    assert len(everything["sft"]) == 4 and everything["stats"]["summary"]["dropped_never_solved"] == 0
    shortest = select(GROUPS, _stage(keep="shortest"), seed=0)["sft"]
    assert [(r["index"], r["sample"]) for r in shortest] == [(1, 0), (2, 0), (3, 0)]
    one = select(GROUPS, _stage(keep="one_per_prompt"), seed=0)["sft"]
    assert sorted(r["index"] for r in one) == [1, 2, 3]
    stats = everything["stats"]
    assert stats["prompt_accuracy"] == [0.0, 1.0, 0.5, 2 / 3]
    assert stats["summary"]["teacher_accuracy"] == pytest.approx(5 / 9)


def test_pairs_per_prompt_and_truncated_rejected():
    group = [_sample(0, 0, True, 5), _sample(0, 1, True, 6), _sample(0, 2, False, 7, truncated=True),
             _sample(0, 3, False, 8)]
    pairs = select([group], _stage(pairs_per_prompt=10), seed=0)["pairs"]
    assert len(pairs) == 4 and len({(p["chosen"], p["rejected"]) for p in pairs}) == 4
    pairs = select([group], _stage(pairs_per_prompt=10, allow_truncated_rejected=False), seed=0)["pairs"]
    assert {p["rejected"] for p in pairs} == {"c0.3"}


def test_torn_prompt_is_not_complete():
    rows = [_sample(0, 0, True, 1), _sample(0, 1, True, 1), _sample(1, 0, True, 1)]
    assert list(complete_prompts(rows, 2)) == [0]


def test_completions_with_unicode_line_separators_survive_cache_and_outputs(tmp_path):
    """An untrained teacher samples anything, U+2028 and U+0085 included: str.splitlines() would cut a JSONL
    row there. The cache, the outputs and a from_stage reader keep the row whole."""
    from rlvr.eval.cache import CacheFile
    from rlvr.stages.distill import write_outputs

    odd = "a\u2028b\x85c\x1cd \\boxed{1}"
    group = [{**_sample(0, 0, True, 5), "completion": odd}, {**_sample(0, 1, False, 5), "completion": odd + "!"}]
    cache = CacheFile(tmp_path, "teacher", "rollouts", "k")
    cache.append(group)
    assert complete_prompts(cache.read(), 2)[0] == group
    stage = tmp_path / "stages" / "distill"
    stage.mkdir(parents=True)
    write_outputs(stage, [group], select([group], _stage(), seed=0))
    rows = load_rows(DataConfig(from_stage="distill"), run=RunDir(tmp_path))
    assert [r["response"] for r in rows] == [odd]


def test_teacher_fingerprint_follows_the_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    (tmp_path / "config.json").write_text("{}")
    before = teacher_fingerprint(str(tmp_path))
    assert teacher_fingerprint(str(tmp_path)) == before
    (tmp_path / "model.safetensors").write_bytes(b"abd")
    assert teacher_fingerprint(str(tmp_path)) != before
    assert teacher_fingerprint("org/some-model") != teacher_fingerprint("org/other-model")


def test_from_stage_reads_the_distill_file(tmp_path):
    cfg = DataConfig(from_stage="distill", part="sft")
    with pytest.raises(DataError, match="run stage 'distill' first"):
        load_rows(cfg, run=RunDir(tmp_path))
    with pytest.raises(DataError, match="does not read run-directory sources"):
        load_rows(cfg)
    (tmp_path / "stages" / "distill").mkdir(parents=True)
    (tmp_path / "stages" / "distill" / "sft.jsonl").write_text(
        json.dumps({"problem": "1+1?", "solution": "\\boxed{2}", "answer": "2", "index": 0}) + "\n")
    assert load_rows(cfg, run=RunDir(tmp_path)) == [{"prompt": "1+1?", "response": "\\boxed{2}", "answer": "2"}]


@pytest.mark.parametrize("override, message", [
    ("stages.student.data.from_stage=nope", "stages[5].data.from_stage: no stage named 'nope'"),
    ("stages.student.data.from_stage=teacher", "stages[5].data.from_stage: stage 'teacher' is of type sft"),
    ("stages.dpo.pairs_from=eval_dpo", "stages[7].pairs_from: stage 'eval_dpo' is of type eval"),
    ("stages.distill.teacher=student", "stages[3].teacher: stage 'student' runs later"),
    ("stages.eval_student_base.init=distill", "stages[4].init: 'distill' is a distill stage, which makes data"),
    ("stages.teacher.data.part=sft", "stages[1].data: `part` selects a file of a distill stage"),
])
def test_references_are_checked_at_load(override, message):
    with pytest.raises(ConfigError) as err:
        load_recipe(RECIPE, [override])
    assert message in err.value.render(), err.value.render()


def test_previous_after_a_distill_stage_is_the_model_before_it(tmp_path):
    """A distill stage makes data, not a model: `init: previous` right after it loads what came before it
    (as after an eval stage), and a finished distill stage counts as done for --from-stage and --resume."""
    from rlvr.rundir import RunDir
    from rlvr.runner import _done, _input_model

    recipe = load_recipe(RECIPE, ["stages.eval_student_base.init=previous"])
    names = [s.name for s in recipe.stages]
    i, j = names.index("eval_student_base"), names.index("distill")
    run = RunDir(tmp_path)
    before = str(run.final(names[j - 1])) if recipe.stages[j - 1].type != "eval" else _input_model(recipe, run, j - 1)
    assert _input_model(recipe, run, i) == before
    assert not _done(run, recipe.stages[j])
    (tmp_path / "stages" / "distill").mkdir(parents=True)
    (tmp_path / "stages" / "distill" / "sft.jsonl").write_text("")
    assert _done(run, recipe.stages[j])


def test_later_distill_stage_is_refused():
    with pytest.raises(ConfigError) as err:
        load_recipe(RECIPE, ["stages.teacher.data={from_stage: distill}"])
    assert "stages[1].data.from_stage: stage 'distill' runs later" in err.value.render()


def test_shipped_recipe_reads_the_distill_stage():
    recipe = load_recipe(RECIPE)
    assert recipe.stage("student").data.from_stage == "distill" and recipe.stage("dpo").pairs_from == "distill"
    phi4 = load_recipe(REPO / "recipes" / "phi4_mini_reasoning.yaml")
    assert phi4.stage("distill").type == phi4.stage("distill_hard").type == "distill"
    assert [phi4.stage(s).data.from_stage for s in ("midtrain", "sft")] == ["distill", "distill_hard"]
    assert phi4.stage("dpo").pairs_from == "distill_hard"


# ------------------------------------------------------------------------------------ resume and fingerprint
SMALL = ["--set", "stages=[{name: distill, type: distill, teacher: base, data: {toy: {n: 48, levels: [1, 2], seed: 5}},"
                  " samples_per_prompt: 2, temperature: 1.0, max_response_tokens: 48, chunk_size: 16,"
                  " selection: {drop_never_solved: false},"
                  " generation: {backend: vllm, max_model_len: 256, kv_cache_gib: 0.25, use_tqdm: false}}]"]


def _distill(run_dir, *extra, **env):
    return run_cmd([PYTHON, "-m", "rlvr", "run", str(RECIPE), "--run-dir", str(run_dir), *SMALL, *extra],
                   timeout=600, **env)


def _metrics(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())["stages"][0]["metrics"]


@pytest.mark.slow
def test_killed_distill_resumes_and_a_changed_teacher_regenerates(tmp_path):
    straight = tmp_path / "straight"
    proc = _distill(straight)
    assert proc.returncode == 0, tail(proc)
    assert _metrics(straight)["generated"] == 96

    broken = tmp_path / "broken"
    proc = _distill(broken, RLVR_DISTILL_KILL_AFTER_CHUNKS="1")
    assert proc.returncode == -9, tail(proc)  # SIGKILL right after the first chunk was appended
    assert not (broken / "stages" / "distill" / "rollouts.jsonl").exists()
    proc = _distill(broken, "--resume")
    assert proc.returncode == 0, tail(proc)
    assert "16 prompts cached" in proc.stdout
    assert _metrics(broken)["generated"] == 64  # only the two chunks the kill left
    files = ("rollouts.jsonl", "sft.jsonl", "pairs.jsonl")
    for name in files:  # per-chunk seeds: the same samples as the uninterrupted run
        assert (broken / "stages" / "distill" / name).read_text() == (straight / "stages" / "distill" / name).read_text()
    rows = [json.loads(x) for x in (straight / "stages" / "distill" / "rollouts.jsonl").read_text().split("\n") if x]
    assert len(rows) == 96 and all({"correct", "reason", "completion", "gold"} <= set(r) for r in rows)

    # re-run from its inputs (--from-stage), the stage moves its cache aside with its outputs and samples again
    proc = _distill(broken, "--from-stage", "distill")
    assert proc.returncode == 0 and _metrics(broken)["generated"] == 96, tail(proc)

    # a killed stage resumed with another teacher (one weight changed) reuses none of the first teacher's chunks
    from safetensors.torch import load_file, save_file

    again = tmp_path / "again"
    proc = _distill(again, RLVR_DISTILL_KILL_AFTER_CHUNKS="1")
    assert proc.returncode == -9, tail(proc)
    teacher = tmp_path / "teacher"
    shutil.copytree(again / "base_model", teacher)
    weights = load_file(str(teacher / "model.safetensors"))
    name = next(k for k in weights if k.endswith("norm.weight"))
    weights[name] = weights[name] * 1.5
    save_file(weights, str(teacher / "model.safetensors"), metadata={"format": "pt"})
    proc = _distill(again, "--resume", "--accept-changes", "--set", f"stages.distill.teacher={teacher}")
    assert proc.returncode == 0, tail(proc)
    assert "0 prompts cached" in proc.stdout and _metrics(again)["generated"] == 96


# ------------------------------------------------------------------------------------ the tiny demo
@pytest.mark.slow
def test_tiny_distill_recipe_student_learns_and_pairs_feed_dpo(tmp_path):
    """The recipe at about half its size (CI time): fewer teacher, student and DPO steps, 512 distill prompts,
    a 100-problem held-out set. `rlvr run recipes/tiny_distill.yaml` itself measured 0.025 -> 0.605."""
    run_dir = tmp_path / "run"
    smaller = ["stages.teacher_midtrain.max_steps=100", "stages.teacher.max_steps=250", "stages.distill.data.toy.n=512",
               "stages.student.max_steps=150", "stages.dpo.max_steps=20",
               *[f"stages.{e}.benchmarks={{toy: {{limit: 100}}}}" for e in ("eval_teacher", "eval_student_base",
                                                                          "eval_student", "eval_dpo")]]
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(RECIPE), "--run-dir", str(run_dir),
                    *[x for o in smaller for x in ("--set", o)]], timeout=1200)
    assert proc.returncode == 0, tail(proc)
    summary = {s["name"]: s for s in json.loads((run_dir / "summary.json").read_text())["stages"]}
    assert all(s["status"] == "done" for s in summary.values()), summary
    out = run_dir / "stages" / "distill"
    sft = [json.loads(x) for x in (out / "sft.jsonl").read_text().split("\n") if x]
    rollouts = [json.loads(x) for x in (out / "rollouts.jsonl").read_text().split("\n") if x]
    pairs = [json.loads(x) for x in (out / "pairs.jsonl").read_text().split("\n") if x]
    correct = {(r["index"], r["sample"]) for r in rollouts if r["correct"] and not r["truncated"]}
    assert sft and all((r["index"], r["sample"]) in correct for r in sft)
    assert pairs and all(p["chosen_reason"] == "match" and p["rejected_reason"] != "match" for p in pairs)
    d = summary["distill"]["metrics"]
    assert d["sft_rows"] == len(sft) and d["pairs"] == len(pairs) and d["samples"] == len(rollouts) == 512 * 4
    assert summary["student"]["metrics"]["sequences"] == len(sft)
    assert f"[dpo] reusing {len(pairs)} pairs from {out / 'pairs.jsonl'}" in proc.stdout
    assert summary["dpo"]["metrics"]["pairs"] > 0
    acc = {name: s["metrics"]["accuracy"] for name, s in summary.items() if s["type"] == "eval"}
    assert acc["eval_student"] >= acc["eval_student_base"] + 0.05, acc
    assert (run_dir / "plots" / "training_distill.png").is_file()
