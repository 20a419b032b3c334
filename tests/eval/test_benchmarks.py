"""The benchmark registry: every built-in spec loads its shared-data file with the right count and
golds the verifier accepts; quirks (Minerva's boxed solution, OlympiadBench's $-wrapped list, AIME's
zero padding, AMC's floats) are read right; user spec files, hub sources and errors behave."""

from __future__ import annotations

import json
import sys
import types

import pytest

from rlvr.config import ConfigError
from rlvr.data.sources import DataError
from rlvr.data.toy import is_test_problem, toy_rows
from rlvr.eval.benchmarks import (
    SIX_BENCHMARKS,
    BenchmarkSpec,
    benchmark_names,
    load_benchmark,
    load_problems,
    read_gold,
)
from rlvr.verify import Verifier, VerifierConfig

SHARED_FILES = {
    "math500": ("math500/test.jsonl", 500),
    "aime24": ("aime24/test.jsonl", 30),
    "aime25": ("aime25/test.jsonl", 30),
    "amc23": ("amc23/test.jsonl", 40),
    "minerva": ("minerva_math/test.jsonl", 272),
    "olympiadbench": ("olympiadbench/test.jsonl", 675),
}


def shared(shared_data, name):
    path, _ = SHARED_FILES[name]
    return load_problems(load_benchmark(name, {"path": str(shared_data / path)}))


@pytest.fixture(scope="module")
def verifiers():
    made: dict[str, Verifier] = {}

    def get(policy: str) -> Verifier:
        if policy not in made:
            made[policy] = Verifier(VerifierConfig(policy=policy, workers=1, timeout=5.0))
        return made[policy]

    yield get
    for v in made.values():
        v.close()


def test_builtin_names():
    assert benchmark_names() == sorted([*SIX_BENCHMARKS, "toy", "arc_easy", "arc_challenge", "gpqa_diamond"])
    assert SIX_BENCHMARKS == ("math500", "aime24", "aime25", "amc23", "minerva", "olympiadbench")


@pytest.mark.parametrize("name", SIX_BENCHMARKS)
def test_shared_file_loads_and_every_boxed_gold_verifies(name, shared_data, verifiers):
    spec = load_benchmark(name, {"path": str(shared_data / SHARED_FILES[name][0])})
    problems = shared(shared_data, name)
    assert len(problems) == SHARED_FILES[name][1] == spec.expected_rows
    assert [p.index for p in problems] == list(range(len(problems)))
    assert len({p.id for p in problems}) == len(problems), "problem ids must be unique"
    assert all(p.problem.strip() and p.gold for p in problems)
    golds = [p.gold for p in problems]
    results = verifiers(spec.verifier_policy or "math").verify_batch(
        [f"\\boxed{{{g}}}" for g in golds], golds
    )
    rejected = [(p.index, p.gold, r.reason) for p, r in zip(problems, results, strict=True) if r.score != 1.0]
    assert rejected == []


def test_answer_quirks(shared_data):
    aime = {p.id: p.gold for p in shared(shared_data, "aime24")}
    assert aime["67"] == "025"  # zero padding kept as given; the verifier compares numbers
    amc = shared(shared_data, "amc23")
    assert amc[0].gold == "27.0"
    minerva = shared(shared_data, "minerva")
    row0 = json.loads((shared_data / "minerva_math/test.jsonl").read_text().splitlines()[0])
    assert "answer" not in row0 and minerva[0].gold == "1.6"
    assert row0["solution"].count("\\boxed") >= 1 and "\\boxed{1.6}" in row0["solution"]
    olympiad = shared(shared_data, "olympiadbench")
    assert olympiad[0].problem.startswith("Xenia and Sergey play")  # from `question`
    assert not any(p.gold.startswith("$") or p.gold.endswith("$") for p in olympiad)
    assert load_benchmark("minerva", {"path": "x.jsonl"}).verifier_policy == "minerva"


def test_boxed_zero_padded_and_float_golds_verify(verifiers):
    v = verifiers("math")
    assert v.verify("\\boxed{25}", "025").score == 1.0
    assert v.verify("\\boxed{27}", "27.0").score == 1.0
    assert v.verify("\\boxed{26}", "27.0").score == 0.0


def test_read_gold_formats():
    assert (
        read_gold("first \\boxed{1} then \\boxed{\\frac{a}{\\sqrt{b}}} end", "last_boxed")
        == "\\frac{a}{\\sqrt{b}}"
    )
    assert read_gold(["$x \\in [1, 2]$", "$y$"], "list_first") == "x \\in [1, 2]"
    assert read_gold("['$3$']", "list_first") == "3"
    assert read_gold(27.0, "plain") == "27.0"
    assert read_gold("025", "plain") == "025"
    with pytest.raises(ValueError, match="no complete"):
        read_gold("no box here", "last_boxed")


def test_toy_is_the_held_out_split():
    spec = load_benchmark("toy")
    problems = load_problems(spec)
    assert spec.toy.split == "test" and len(problems) == 200 == spec.expected_rows
    assert len({p.problem for p in problems}) == 200  # distinct: a repeat would understate the stderr
    train = {r["prompt"] for r in toy_rows("train", 5000, [1, 2], seed=0)}
    assert not train & {p.problem for p in problems}
    for p in problems:
        a, op, b = p.problem.split("?")[0].removeprefix("What is ").split()
        level = 1 if int(a) < 10 and int(b) < 10 else 2
        assert is_test_problem(level, int(a), op, int(b))
        assert p.gold == str(int(a) + int(b))


def test_overrides_and_limit(shared_data):
    spec = load_benchmark("math500", {"path": str(shared_data / "math500/test.jsonl"), "limit": 7})
    problems = load_problems(spec)
    assert len(problems) == 7 and problems[0].id == "test/precalculus/807.json"
    assert load_benchmark("toy", {"toy": {"n": 5}}).toy.levels == [1, 2]  # nested keys merge
    assert len(load_problems(load_benchmark("toy", {"toy": {"n": 5}}))) == 5


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        load_benchmark("math5000")
    assert "unknown benchmark 'math5000'" in str(err.value) and "math500, minerva" in str(err.value)
    with pytest.raises(ConfigError, match="not found: nowhere/mine.yaml"):
        load_benchmark("nowhere/mine.yaml")


def test_every_problem_of_a_spec_is_reported():
    with pytest.raises(ConfigError) as err:
        load_benchmark("math500", {"answerfield": "x", "answer_format": "boxed", "verifier_policy": "nope"})
    problems = err.value.problems
    assert any(p.startswith("answerfield: unknown key") for p in problems)
    assert any(p.startswith("answer_format: must be one of") for p in problems)
    assert len(problems) == 2  # the policy check runs once the fields validate
    with pytest.raises(ConfigError, match="verifier_policy: unknown policy 'nope'"):
        load_benchmark("math500", {"verifier_policy": "nope"})


def test_minerva_without_path_says_to_pass_path():
    with pytest.raises(ConfigError) as err:
        load_benchmark("minerva")
    assert "benchmarks.minerva.path" in str(err.value) and "pass `path`" in str(err.value)
    spec = load_benchmark("minerva", require_source=False)
    assert spec.hub is None and "no canonical" in spec.description.lower().replace("\n", " ")
    with pytest.raises(ConfigError, match="pass `path`"):
        load_problems(spec)


def test_user_spec_file_needs_no_code(tmp_path):
    data = tmp_path / "mine.jsonl"
    rows = [
        {"q": {"text": f"What is {i}+{i}?"}, "sol": f"so \\boxed{{{2 * i}}}.", "key": f"p{i}"}
        for i in range(3)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    spec_file = tmp_path / "mine.yaml"
    spec_file.write_text(
        f"description: my benchmark\npath: {data}\nproblem_field: q.text\nanswer_field: sol\n"
        "answer_format: last_boxed\nid_field: key\nexpected_rows: 3\n"
    )
    spec = load_benchmark(str(spec_file))
    assert spec.name == "mine"  # from the file name
    problems = load_problems(spec)
    assert [(p.id, p.problem, p.gold) for p in problems][2] == ("p2", "What is 2+2?", "4")


def test_missing_field_names_file_row_and_field(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(
        json.dumps({"problem": "1+1?", "answer": "2"}) + "\n" + json.dumps({"problem": "2+2?"}) + "\n"
    )
    with pytest.raises(DataError) as err:
        load_problems(BenchmarkSpec(name="bad", path=str(data)))
    assert str(data) in str(err.value) and "row 1" in str(err.value) and "'answer'" in str(err.value)


def test_row_count_mismatch_warns(tmp_path, capsys):
    data = tmp_path / "short.jsonl"
    data.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    load_problems(BenchmarkSpec(name="short", path=str(data), expected_rows=30))
    err = capsys.readouterr().err
    assert "short.jsonl has 1 rows, expected 30" in err


def test_hub_source_reads_each_config_with_hub_fields(monkeypatch):
    calls = []
    tables = {
        "AIME2025-I": [{"question": "p1", "answer": "1"}],
        "AIME2025-II": [{"question": "p2", "answer": "070"}],
    }

    def load_dataset(hub, config, split):
        calls.append((hub, config, split))
        return tables[config]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    spec = load_benchmark("aime25", {"expected_rows": 2})
    problems = load_problems(spec)
    assert calls == [
        ("opencompass/AIME2025", "AIME2025-I", "test"),
        ("opencompass/AIME2025", "AIME2025-II", "test"),
    ]
    assert [(p.id, p.problem, p.gold) for p in problems] == [("0", "p1", "1"), ("1", "p2", "070")]


def test_path_wins_over_hub_and_toy_over_path(tmp_path):
    assert load_benchmark("math500", {"path": "f.jsonl"}).source() == "path"
    assert load_benchmark("math500").source() == "hub"
    assert load_benchmark("math500", {"path": "f.jsonl", "toy": {"n": 3}}).source() == "toy"
