"""`rlvr select` and the RL stage's per-example accuracy log: the released 1-shot RLVR selection reproduced
from its own accuracy file, ties, bad inputs, the log's resume rule, and a real tiny RL run ranked from its
run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, tail

from rlvr.cli import main as cli
from rlvr.config import DataConfig
from rlvr.data.sources import example_id, load_rows
from rlvr.rl.example_log import ExampleLog, count_examples, merge_counts, read_lines
from rlvr.select import history_from_log


def _jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------ the released file
@pytest.mark.parametrize("method", ["variance", "std"])
def test_released_accuracies_give_the_papers_pis(shared_data, tmp_path, method):
    """On the released acc_step_500.json and DSR-sub: pi_1 = 124, pi_2 = 267, pi_13 = 682, pi_1209 = 789 (the
    last of 104 examples tied at 0, so this also checks the tie rule), and the written pi_1 is the released
    pi1_r128.parquet row for row."""
    d = shared_data / "one_shot_rlvr"
    out = tmp_path / "sel"
    assert cli(["select", str(d / "acc_step_500.json"), "--data", str(d / "dsr_sub.parquet"), "--method", method,
                "--top", "13", "--out", str(out)]) == 0
    ranking = _jsonl(out / "ranking.jsonl")
    assert len(ranking) == 1209 and [r["rank"] for r in ranking] == list(range(1, 1210))
    by_rank = {r["rank"]: r["index"] for r in ranking}
    assert (by_rank[1], by_rank[2], by_rank[13], by_rank[1209]) == (124, 267, 682, 789)
    scores = [r["score"] for r in ranking]
    assert scores == sorted(scores, reverse=True)
    accs = json.loads((d / "acc_step_500.json").read_text())
    assert ranking[0]["score"] == pytest.approx(float((np.std if method == "std" else np.var)(accs["124"])), abs=0)
    assert sorted(p.name for p in out.glob("pi_*.jsonl")) == sorted(f"pi_{r}.jsonl" for r in range(1, 14))

    written = load_rows(DataConfig(path=str(out / "pi_1.jsonl")), needs=("prompt", "answer"), with_ids=True)
    released = load_rows(DataConfig(path=str(d / "pi1_r128.parquet"), preset="verl"), with_ids=True)
    assert len(written) == len(released) == 128
    assert [(r["prompt"], r["answer"], r["id"]) for r in written] == [(r["prompt"], r["answer"], r["id"]) for r in released]
    assert {r["id"] for r in written} == {124}
    for rank, index in ((2, 267), (13, 682)):
        assert {r["index"] for r in _jsonl(out / f"pi_{rank}.jsonl")} == {index}


# ------------------------------------------------------------------------------------ small files
def _pool(path, n):
    path.write_text("".join(json.dumps({"problem": f"What is {i} + 1?", "answer": str(i + 1), "index": i}) + "\n"
                            for i in range(n)))
    return path


def test_ties_keep_the_source_order(tmp_path):
    pool = _pool(tmp_path / "pool.jsonl", 4)
    same = [0.0, 1.0]
    for order in (["2", "0", "3", "1"], ["1", "3", "0", "2"]):
        acc = {k: (same if k != "3" else [0.5, 0.5]) for k in order}
        (tmp_path / "acc.json").write_text(json.dumps(acc))
        assert cli(["select", str(tmp_path / "acc.json"), "--data", str(pool), "--top", "0", "--out", str(tmp_path / "o")]) == 0
        ranked = [r["index"] for r in _jsonl(tmp_path / "o" / "ranking.jsonl")]
        assert ranked == [int(k) for k in order if k != "3"] + [3]  # three tied at 0.25 in file order, then the 0
    assert not list((tmp_path / "o").glob("pi_*"))


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file or directory"),
    ("format", "unknown SOURCE format '.txt'"),
    ("not-accuracies", "expected a non-empty list of accuracies"),
    ("size", "pool size mismatch: "),
    ("unknown-id", "scores 1 example(s) that the pool does not have (ids 7)"),
    ("no-log", "no stages/<name>/examples.jsonl"),
    ("pool-missing", "--data "),
    ("duplicate-ids", "has the same example id 0"),
    ("top", "--top 5: only 3 examples are scored"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, case, message):
    pool = _pool(tmp_path / "pool.jsonl", 3)
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"0": [0.0, 1.0], "1": [0.5], "2": [1.0, 1.0]}))
    args = {"source": str(acc), "--data": str(pool), "--out": str(tmp_path / "out")}
    extra = []
    if case == "missing":
        args["source"] = str(tmp_path / "nope.json")
    elif case == "format":
        (tmp_path / "acc.txt").write_text("{}")
        args["source"] = str(tmp_path / "acc.txt")
    elif case == "not-accuracies":
        acc.write_text(json.dumps({"0": "0.5"}))
    elif case == "size":
        args["--data"] = str(_pool(tmp_path / "big.jsonl", 4))
    elif case == "unknown-id":
        acc.write_text(json.dumps({"0": [0.0], "1": [0.5], "7": [1.0]}))
    elif case == "no-log":
        (tmp_path / "run").mkdir()
        args["source"] = str(tmp_path / "run")
    elif case == "pool-missing":
        args["--data"] = str(tmp_path / "none.jsonl")
    elif case == "duplicate-ids":
        pool.write_text(pool.read_text() + json.dumps({"problem": "x", "answer": "1", "index": 0}) + "\n")
    elif case == "top":
        extra = ["--top", "5"]
    argv = ["select", args.pop("source")] + [x for kv in args.items() for x in kv] + extra
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlvr select: ") and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "ranking.jsonl").exists()


# ------------------------------------------------------------------------------------ ids and the log
def test_example_ids_follow_the_data():
    assert example_id({"id": "q-7", "index": 3}, 0) == "q-7"
    assert example_id({"index": 3}, 0) == 3
    assert example_id({"extra_info": {"index": 124, "split": "train"}}, 5) == 124
    assert example_id({"problem": "p"}, 5) == 5
    assert example_id({"index": None}, 2) == 2
    rows = load_rows(DataConfig(rows=[{"problem": "a", "answer": "1"}, {"problem": "b", "answer": "2"}]), needs=("prompt", "answer"),
                     with_ids=True)
    assert [r["id"] for r in rows] == [0, 1]
    toy = load_rows(DataConfig.model_validate({"toy": {"n": 3, "levels": [1]}}), with_ids=True)
    assert [r["id"] for r in toy] == [0, 1, 2]
    assert "id" not in load_rows(DataConfig.model_validate({"toy": {"n": 3, "levels": [1]}}))[0]


def test_counts_merge_ranks_and_become_per_epoch_histories():
    rank0 = count_examples([(3, True), (3, False), (1, True)])
    rank1 = count_examples([(3, True), (8, False)])
    assert rank0 == {"3": [1, 2], "1": [1, 1]}
    merged = merge_counts([rank0, rank1])
    assert merged == {"3": [2, 3], "1": [1, 1], "8": [0, 1]} and list(merged) == ["3", "1", "8"]
    lines = [{"step": 2, "examples": {"3": [4, 4]}}, {"step": 1, "examples": merged}]
    assert history_from_log(lines) == {"3": [2 / 3, 1.0], "1": [1.0], "8": [0.0]}


def test_example_log_on_resume_keeps_only_the_steps_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "stages" / "rl" / "examples.jsonl"
    log = ExampleLog(path, start=0, enabled=True)
    for step in (1, 2, 3, 4):
        log.append(step, [{"0": [step % 2, 1]}, {"1": [1, 2]}])
    with path.open("a") as f:
        f.write('{"step": 5, "exam')  # killed while appending
    assert [x["step"] for x in read_lines(path)] == [1, 2, 3, 4]
    ExampleLog(path, start=4, enabled=False)  # other ranks never touch the file
    assert path.read_text().endswith('"exam')
    resumed = ExampleLog(path, start=2, enabled=True)  # the newest checkpoint is step 2
    assert [x["step"] for x in read_lines(path)] == [1, 2] and path.read_text().endswith("\n")
    resumed.append(3, [{"0": [0, 1]}])
    assert [(x["step"], x["examples"]) for x in read_lines(path)] == [
        (1, {"0": [1, 1], "1": [1, 2]}), (2, {"0": [0, 1], "1": [1, 2]}), (3, {"0": [0, 1]})]
    ExampleLog(path, start=0, enabled=True)  # a stage rerun from scratch
    assert read_lines(path) == []


# ------------------------------------------------------------------------------------ a real tiny run
@pytest.mark.slow
def test_tiny_rl_run_logs_examples_and_select_ranks_them(sft_model, tmp_path):
    """RL on a pool of 8 toy problems, 4 prompts x 4 rollouts per step for 4 steps (two epochs):
    examples.jsonl has one line per step whose counts are the rollouts (4 per example, 16 per step, each
    epoch every example once) and agree with metrics.jsonl's accuracy; `rlvr select RUN_DIR` ranks the
    8 examples by the variance of their two per-epoch accuracies."""
    toy = load_rows(DataConfig.model_validate({"toy": {"n": 8, "levels": [1], "distinct": True, "seed": 3}}))
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"problem": r["prompt"], "answer": r["answer"]}) + "\n" for r in toy))
    run_dir = tmp_path / "run"
    stage = (f"{{name: rl, type: rlvr, init: {sft_model}, data: {{path: {pool}}}, prompts_per_step: 4, "
             "rollouts_per_prompt: 4, temperature: 1.0, max_response_tokens: 96, max_steps: 4, "
             "optim: {lr: 1.0e-4, schedule: constant}, "
             "generation: {backend: vllm, max_model_len: 256, kv_cache_gib: 0.25}}")
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                    "--set", f"model.tiny={TINY_SMALL}", "--set", f"stages=[{stage}]",
                    "--set", "backend={zero_stage: 2, micro_batch_size: 16}"], timeout=900)
    assert proc.returncode == 0, tail(proc)
    lines = _jsonl(run_dir / "stages" / "rl" / "examples.jsonl")
    metrics = _jsonl(run_dir / "metrics.jsonl")
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    for line, m in zip(lines, metrics, strict=True):
        counts = line["examples"]
        assert len(counts) == 4 and all(total == 4 and 0 <= c <= 4 for c, total in counts.values())
        assert sum(c for c, _ in counts.values()) / 16 == pytest.approx(m["accuracy"])
    for epoch in (lines[:2], lines[2:]):
        assert sorted(int(k) for x in epoch for k in x["examples"]) == list(range(8))

    out = tmp_path / "sel"
    proc = run_cmd([PYTHON, "-m", "rlvr", "select", str(run_dir), "--data", str(pool), "--top", "2", "--out", str(out)])
    assert proc.returncode == 0, tail(proc)
    ranking = _jsonl(out / "ranking.jsonl")
    assert len(ranking) == 8 and all(r["epochs"] == 2 for r in ranking)
    history = history_from_log(lines)
    for r in ranking:
        assert r["score"] == pytest.approx(float(np.var(history[str(r["index"])])))
        assert r["problem"] == toy[r["index"]]["prompt"]
    assert [r["score"] for r in ranking] == sorted((r["score"] for r in ranking), reverse=True)
    pi1 = _jsonl(out / "pi_1.jsonl")
    assert len(pi1) == 128 and {r["index"] for r in pi1} == {ranking[0]["index"]}
