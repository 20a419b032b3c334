"""Validation during RL (`validation:` on an rlvr stage): the stage's own engine, synced to the trainer,
scores benchmarks through the sweep's code; the scores equal an offline `rlvr eval` of the exported
model at the same step (so the weights are not stale), and a resumed run does not redo validations."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, subprocess_env, tail

from rlvr.config import ConfigError, load_recipe

VALIDATION = "{every: 2, at_start: true, protocol: toy, benchmarks: {toy: {limit: 24}}}"
STEPS = 4


def _args(model, run_dir):
    """4 RL steps from the SFT'd tiny model, validated at 0, 2, 4 and exported at 2 (4 is final/). lr 1e-3
    moves the greedy outputs within 4 steps, so stale weights would show."""
    stage = {"name": "rl", "type": "rlvr", "init": str(model),
             "data": "{rows: [{problem: 'What is 8 + 8? Think step by step and put the final answer in \\boxed{}.', answer: '16'}]}",
             "prompts_per_step": 8, "rollouts_per_prompt": 4, "temperature": 0.7, "max_response_tokens": 96,
             "max_steps": STEPS, "save_every": 2, "export_every": 2, "optim": "{lr: 1.0e-3, schedule: constant}",
             "generation": "{backend: vllm, max_model_len: 256, kv_cache_gib: 0.25}", "validation": VALIDATION}
    body = ", ".join(f"{k}: {v}" for k, v in stage.items())
    return ["-m", "rlvr", "run", str(REPO / "recipes" / "tiny_rl.yaml"), "--run-dir", str(run_dir),
            "--set", f"model.tiny={TINY_SMALL}", "--set", f"stages=[{{{body}}}]"]


def _val_records(run_dir) -> dict[int, dict]:
    """step -> the last metrics.jsonl record with validation metrics at that step."""
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "val/accuracy" in r:
            out[r["step"]] = r
    return out


def _cache(root, label):
    (path,) = (root / "generations" / label / "toy").glob("*.jsonl")
    return path, [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def validated_run(sft_model, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("val") / "straight"
    proc = run_cmd([PYTHON, *_args(sft_model, run_dir)], timeout=900)
    assert proc.returncode == 0, tail(proc)
    return run_dir, proc.stdout + proc.stderr


@pytest.mark.slow
def test_validation_logs_at_the_expected_steps(validated_run):
    run_dir, out = validated_run
    val = _val_records(run_dir)
    assert sorted(val) == [0, 2, 4]
    for step, r in val.items():
        assert r["val/accuracy"] == r["val/toy/avg@k"]
        assert r["val/generated"] == 24
        assert f"[rl] validation at step {step}: toy" in out
        if step:
            assert "reward/mean" in r  # merged into the step's own record (the report keeps one per step)
    root = run_dir / "stages" / "rl" / "validation"
    merged = json.loads((root / "scores.json").read_text())
    assert [c["label"] for c in merged["checkpoints"]] == ["rl@0", "rl@2", "rl@4"]
    assert [r["avg@k"] for r in merged["rows"]] == [val[s]["val/toy/avg@k"] for s in (0, 2, 4)]
    assert (root / "report.md").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stages"][0]["metrics"]["val_accuracy_last"] == val[4]["val/accuracy"]


@pytest.mark.slow
def test_validation_equals_an_offline_sweep_of_the_exports(validated_run, sft_model, tmp_path):
    """Greedy completions and scores of the in-training validation at steps 0, 2, 4 equal those of
    `rlvr eval` on the input model, exports/step-2 and final/: the engine held the trained weights."""
    run_dir, _ = validated_run
    spec = {"name": "offline", "protocol": "toy",
            "checkpoints": [{"path": str(sft_model), "label": "start"},
                            {"path": str(run_dir), "select": ["steps", "finals"], "stages": ["rl"]}],
            "benchmarks": {"toy": {"limit": 24}}, "dtype": "float32",
            "generation": {"backend": "vllm", "max_model_len": 256, "kv_cache_gib": 0.25},
            "out": str(tmp_path / "offline")}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    proc = run_cmd([PYTHON, "-m", "rlvr", "eval", str(tmp_path / "spec.yaml")], timeout=600)
    assert proc.returncode == 0, tail(proc)
    offline = tmp_path / "offline"
    scores = {r["checkpoint"]: r["avg@k"] for r in json.loads((offline / "scores.json").read_text())["rows"]}
    val = _val_records(run_dir)
    texts = {}
    for step, label in ((0, "start"), (2, "rl@2"), (4, "rl")):
        _, online = _cache(run_dir / "stages" / "rl" / "validation" / f"step-{step}", f"rl@{step}")
        _, ref = _cache(offline, label)
        key = lambda r: (r["index"], r["sample"])  # noqa: E731
        online, ref = sorted(online, key=key), sorted(ref, key=key)
        assert [(r["prompt"], r["completion"], r["correct"]) for r in online] == \
               [(r["prompt"], r["completion"], r["correct"]) for r in ref], step
        assert val[step]["val/toy/avg@k"] == scores[label], step
        texts[step] = [r["completion"] for r in online]
    assert texts[0] != texts[4]  # training changed the greedy outputs, so stale weights could not pass


@pytest.mark.slow
def test_resumed_run_does_not_redo_validations(validated_run, sft_model, tmp_path):
    straight, _ = validated_run
    run_dir = tmp_path / "broken"
    child = subprocess.Popen([PYTHON, *_args(sft_model, run_dir)], cwd=REPO, env=subprocess_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while child.poll() is None and time.time() < deadline:
        metrics = run_dir / "metrics.jsonl"
        if metrics.is_file() and metrics.read_text().count("\n") >= 2:  # step 0's validation, then step 1
            (run_dir / "CHECKPOINT_REQUEST").touch()
            break
        time.sleep(0.05)
    out, err = child.communicate(timeout=600)
    assert child.returncode == 75, out + err
    stopped = json.loads((run_dir / "CHECKPOINT_DONE").read_text())["step"]
    assert 1 <= stopped < STEPS
    root = run_dir / "stages" / "rl" / "validation"
    kept = {s: _cache(root / f"step-{s}", f"rl@{s}")[0] for s in range(0, stopped + 1, 2)}
    before = {s: (p.stat().st_mtime_ns, p.read_bytes()) for s, p in kept.items()}
    # a validation after the resume step is from a lost trajectory (a crash before its checkpoint)
    lost = root / f"step-{stopped + 1}"
    subprocess.run(["cp", "-r", str(root / "step-0"), str(lost)], check=True)

    proc = run_cmd([PYTHON, *_args(sft_model, run_dir), "--resume"], timeout=600)
    assert proc.returncode == 0, tail(proc)
    out = proc.stdout + proc.stderr
    for s, path in kept.items():
        assert f"validation at step {s}:" not in out
        assert (path.stat().st_mtime_ns, path.read_bytes()) == before[s], s
    assert f"removed validation at step {stopped + 1}" in out and not lost.exists()
    val, ref = _val_records(run_dir), _val_records(straight)
    assert sorted(val) == [0, 2, 4]
    assert {s: r["val/accuracy"] for s, r in val.items()} == {s: r["val/accuracy"] for s, r in ref.items()}
    for s in (0, 2, 4):
        a = _cache(root / f"step-{s}", f"rl@{s}")[1]
        b = _cache(straight / "stages" / "rl" / "validation" / f"step-{s}", f"rl@{s}")[1]
        assert [r["completion"] for r in a] == [r["completion"] for r in b], s
    merged = json.loads((root / "scores.json").read_text())
    assert [c["label"] for c in merged["checkpoints"]] == ["rl@0", "rl@2", "rl@4"]


# ---------------------------------------------------------------------------------- config (fast)
def _recipe(tmp_path, validation, generation="{backend: vllm, max_model_len: 256}"):
    path = tmp_path / "r.yaml"
    path.write_text(f"name: v\nmodel: {{tiny: {{}}}}\nstages:\n  - {{name: rl, type: rlvr, data: {{toy: {{}}}}, "
                    f"generation: {generation}, validation: {validation}}}\n")
    return path


@pytest.mark.parametrize("validation, message", [
    ("{every: 2, protocol: nope}", "stages[0].validation.protocol: unknown protocol 'nope'; choose one of"),
    ("{every: 2, benchmarks: {math501: {}}}", "stages[0].validation.benchmarks: unknown benchmark(s) math501"),
    ("{every: 0}", "stages[0].validation.every: must be >= 1"),
    ("{protocol: toy}", "stages[0].validation.every: required key is missing"),
    ("{every: 2, benchmarks: {toy: {limt: 3}}}", "stages[0].validation.benchmarks: toy.limt: unknown key"),
    ("{every: 2, settings: {k: 4}}", "k: 4 samples at temperature 0 repeats one greedy sample"),
    ("{every: 2, generation: {backend: hf}}", "validation generates with the stage's own engine"),
    ("{every: 2, oops: 1}", "stages[0].validation.oops: unknown key"),
    ("{every: 2, protocol: one_shot_rlvr, benchmarks: {math500: {}}}",
     "validation: max_tokens 3072 leaves no room for the prompt in generation.max_model_len 256"),
])
def test_bad_validation_is_a_config_error_at_load(tmp_path, validation, message):
    with pytest.raises(ConfigError) as err:
        load_recipe(_recipe(tmp_path, validation))
    assert message in str(err.value), str(err.value)


def test_validation_is_checked_before_torch(tmp_path):
    good = _recipe(tmp_path, "{every: 20, protocol: one_shot_rlvr, benchmarks: {math500: {}}}",
                   "{max_model_len: 4096}")
    code = ("import sys\nfrom rlvr.config import load_recipe\n"
            f"r = load_recipe(r'{good}')\nprint(r.stages[0].validation.every, 'torch' in sys.modules)\n")
    proc = subprocess.run([PYTHON, "-c", code], cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.stdout.split() == ["20", "False"], proc.stdout + proc.stderr


def test_shipped_recipes_validate_their_rl_stage():
    one = load_recipe(REPO / "recipes" / "one_shot.yaml").stage("rl")
    assert (one.validation.every, one.validation.at_start, one.export_every) == (20, True, 20)
    benchmarks, settings = one.validation.resolve()
    ((setting, seed),) = settings["math500"]
    assert (setting.template, setting.temperature, setting.k, setting.max_tokens, seed) == ("qwen25_math_cot", 0.0, 1, 3072, 0)
    tiny = load_recipe(REPO / "recipes" / "tiny_rl.yaml").stage("rl")
    assert tiny.validation.every < tiny.max_steps
