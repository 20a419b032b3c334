"""Several graders on one sweep (`graders: [...]`): every cached completion judged by each, one score
column per grader, the completions they disagree on counted and written out, and a grader added to a
finished sweep re-judges the cache without generating anything.

The generator is scripted (fixed completions per problem, calls counted) so that what each grader
must decide is known: rlvr's `math` and the Qwen2.5-Math harness (`qwen_math_eval`) differ on an
unboxed final number, a hedge of two boxes and a truncated boxed answer (docs/verifier.md).
"""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
import yaml

from rlvr.eval import sweep as sweep_module
from rlvr.eval.benchmarks import load_problems
from rlvr.eval.options import EvalOptions
from rlvr.eval.spec import load_spec, resolve_sweep
from rlvr.eval.sweep import run_sweep, summary_metrics
from rlvr.generate.types import Completion
from rlvr.world import World

# problem -> (completion, finish_reason, math's verdict, qwen_math_eval's verdict); every gold is 12
SCRIPT = {
    "What is 5 + 7?": ("Adding gives \\boxed{12}.", "stop", True, True),
    "What is 3 * 4?": ("Three fours: 3 * 4 = 12", "stop", False, True),            # no box: the last number
    "What is 24 / 2?": ("Either \\boxed{11} or \\boxed{12}", "stop", False, True),  # a hedge: the last box
    "What is 20 - 8?": ("So \\boxed{12}, and to check it we", "length", False, True),  # cut at the limit
    "What is 6 + 6?": ("The sum is \\boxed{13}.", "stop", False, False),
}


class ScriptedGenerator:
    """The generator protocol's surface a sweep uses; answers from SCRIPT and counts its calls."""

    dp_rank, dp_size, max_model_len = 0, 1, 4096

    def __init__(self, tokenizer):
        self.tokenizer, self.calls, self.completions = tokenizer, 0, 0

    def generate(self, requests, sampling):
        self.calls += 1
        out = []
        for request in requests:
            problem = next(p for p in SCRIPT if p in request.prompt)
            text, finish = SCRIPT[problem][:2]
            out.append([Completion(prompt_ids=[1], completion_ids=[2, 3], text=text, logprobs=None,
                                   finish_reason=finish)])
        self.completions += len(requests)
        return out

    def close(self):
        pass


@pytest.fixture
def scripted(tmp_path, monkeypatch):
    """A math500-named benchmark of SCRIPT's problems, a fake checkpoint, and the scripted engine that
    every start of a generator gets."""
    from rlvr.models.tiny import build_tokenizer

    data = tmp_path / "math500.jsonl"
    data.write_text("".join(json.dumps({"problem": p, "answer": "12", "unique_id": f"p{i}"}) + "\n"
                            for i, p in enumerate(SCRIPT)))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    engine = ScriptedGenerator(build_tokenizer(512))
    starts = Counter()

    def start(sweep, ckpt, world):
        starts["engine"] += 1
        return engine

    monkeypatch.setattr(sweep_module, "start_generator", start)

    def spec(graders, name="g"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "name": name, "protocol": "one_shot_rlvr", "checkpoints": [{"path": str(model), "label": "tiny"}],
            "benchmarks": {"math500": {"path": str(data)}}, "settings": {"max_tokens": 16},
            "verifier": {"policy": "math"}, "out": str(tmp_path / "out"),
            **({"graders": graders} if graders else {})}))
        return resolve_sweep(load_spec(path))

    return spec, engine, starts, tmp_path / "out"


def _cache_rows(out):
    [path] = (out / "generations").rglob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_graders_score_and_count_disagreements(scripted, capsys):
    spec, engine, _, out = scripted
    scores = run_sweep(spec(["qwen_math_eval", "math"]), World())
    by_grader = {r["grader"]: r for r in scores["rows"]}
    assert by_grader["qwen_math_eval"]["avg@k"] == pytest.approx(4 / 5)
    assert by_grader["math"]["avg@k"] == pytest.approx(1 / 5)
    assert [r["primary"] for r in scores["rows"]] == [True, False]
    [split] = scores["disagreements"]
    assert (split["completions"], split["disagree"]) == (5, 3)
    assert split["correct"] == {"qwen_math_eval": 4, "math": 1}
    assert sorted(e["id"] for e in split["examples"]) == ["p1", "p2", "p3"]
    hedge = next(e for e in split["examples"] if e["id"] == "p2")
    assert hedge["verdicts"]["math"]["reason"] == "hedged" and hedge["verdicts"]["qwen_math_eval"]["correct"]
    # the cache holds every grader's verdict; the row's own fields are the primary's
    rows = _cache_rows(out)
    assert [r["correct"] for r in rows] == [SCRIPT[p][3] for p in SCRIPT]
    assert [r["verdicts"]["math"]["correct"] for r in rows] == [SCRIPT[p][2] for p in SCRIPT]
    assert summary_metrics(scores) == pytest.approx({"accuracy": 0.8, "math500": 0.8, "math/accuracy": 0.2,
                                                     "math/math500": 0.2, "disagree": 0.6})


def test_adding_a_grader_rejudges_the_cache_and_never_generates(scripted, capsys):
    spec, engine, starts, out = scripted
    first = run_sweep(spec(None), World())
    assert [r["grader"] for r in first["rows"]] == ["math"] and "disagreements" not in first
    assert (engine.calls, engine.completions, starts["engine"]) == (1, 5, 1)
    assert "verdicts" not in _cache_rows(out)[0]  # one grader: the cache format is unchanged
    capsys.readouterr()

    both = run_sweep(spec(["math", "qwen_math_eval"]), World())
    assert (engine.calls, engine.completions, starts["engine"]) == (1, 5, 1)  # nothing generated, no engine
    assert "0 completions generated, 5 reused from the cache, 5 re-judged" in capsys.readouterr().out
    assert {r["grader"]: r["avg@k"] for r in both["rows"]} == pytest.approx({"math": 0.2, "qwen_math_eval": 0.8})
    meta = json.loads(next((out / "generations").rglob("*.meta.json")).read_text())
    assert meta["rejudged"]["graders"] == ["qwen_math_eval"] and meta["rejudged"]["generated"] == 0
    assert set(meta["graders"]) == {"math", "qwen_math_eval"}

    # the primary swapped: no grader to judge again, only the rows' own fields change
    swapped = run_sweep(spec(["qwen_math_eval", "math"]), World())
    assert "5 reused from the cache, 0 re-judged" in capsys.readouterr().out
    assert swapped["rows"][0]["grader"] == "qwen_math_eval" and [r["correct"] for r in _cache_rows(out)][1] is True
    assert engine.calls == 1


def test_report_shows_a_column_per_grader_and_the_disagreements(scripted, capsys):
    spec, _, _, out = scripted
    run_sweep(spec(["qwen_math_eval", "math"]), World())
    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| checkpoint"))
    assert "math500 (qwen_math_eval)" in header and "math500 (math)" in header
    assert "| tiny | 80.0 ± 20.0 | 20.0 ± 20.0 |" in report
    assert "## Grader disagreements" in report
    assert "| tiny | math500 | qwen25_math_cot-T0-p1-k1-len16-seed0 | 5 | 3 | 4 | 1 |" in report
    assert "problem `p2` sample 0, gold `12`" in report and "math: wrong (hedged" in report
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["grader"], r["avg@k[qwen_math_eval]"], r["avg@k[math]"], r["disagree"]) for r in rows] == [
        ("qwen_math_eval", "0.8", "0.2", "3"), ("math", "0.8", "0.2", "3")]


def test_minerva_keeps_its_policy_for_rlvr_graders_only(tmp_path, shared_data):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "s", "protocol": "one_shot_rlvr", "checkpoints": ["org/model"],
        "benchmarks": {"minerva": {"path": str(shared_data / "minerva_math" / "test.jsonl")}, "math500": {}},
        "graders": ["qwen_math_eval", "math"], "verifier": {"policy": "math", "require_box": True}}))
    sweep = resolve_sweep(load_spec(path))
    assert list(sweep.graders_for("minerva")) == ["qwen_math_eval", "minerva"]
    assert list(sweep.graders_for("math500")) == ["qwen_math_eval", "math"]
    # the verifier's own policy keeps its overrides; another policy does not inherit them
    assert sweep.graders_for("math500")["math"].require_box is True
    assert sweep.graders_for("math500")["qwen_math_eval"].require_box is None
    assert sweep_module.paper_benchmark("minerva") == "minerva_math"
    assert sweep_module.paper_benchmark("toy") is None
    assert len(load_problems(sweep.benchmarks["minerva"])) == 272


def test_graders_are_checked_when_the_spec_loads():
    with pytest.raises(ValueError, match="unknown verifier policy 'lenient'"):
        EvalOptions(graders=["math", "lenient"])
    with pytest.raises(ValueError, match="listed twice"):
        EvalOptions(graders=["math", "math"])


def test_a_prompt_the_engine_cannot_hold_stops_the_sweep_with_the_length_to_set(scripted):
    """vLLM stops with a traceback on a prompt not shorter than max_model_len; the sweep checks first and
    names the problem and the max_model_len that holds the longest prompt and its completion."""
    from rlvr.eval.sweep import PromptTooLong

    spec, engine, _, out = scripted
    engine.max_model_len = 8
    with pytest.raises(PromptTooLong, match=r"math500: 5 problem\(s\) have prompts the engine cannot hold "
                                            r"\(first: problem p0, \d+ tokens; generation.max_model_len is 8\); "
                                            r"raise generation.max_model_len to at least \d+"):
        run_sweep(spec(None), World())
    assert engine.calls == 0 and not (out / "generations").exists() or not list((out / "generations").rglob("*.jsonl"))
