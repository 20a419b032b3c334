"""Every gold of the six shared benchmark files round-trips: accepted when given back boxed and in a
few equivalent spellings, rejected when its last digit is changed."""

from __future__ import annotations

import pytest
from benchmark_golds import SHARED_FILES, equivalent_spellings, grading_policy, load_golds, perturbed

from rlvr.verify.pool import WALL_BACKSTOP_FACTOR, WALL_BACKSTOP_MIN

EXPECTED_ROWS = {
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "minerva": 272,
    "olympiadbench": 675,
}


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_gold_round_trip(name, shared_data, verifiers):
    golds = load_golds(shared_data, name)
    assert len(golds) == EXPECTED_ROWS[name]
    preds, gold_col, expected = [], [], []
    for gold in golds:
        for spelling in equivalent_spellings(gold):
            preds.append(spelling)
            gold_col.append(gold)
            expected.append(True)
        preds.append(perturbed(gold))
        gold_col.append(gold)
        expected.append(False)
    # Accepted spellings are decided on the exact path; only perturbed symbolic golds reach the
    # fallback, where a timeout also counts as rejected. A 1 s limit keeps the suite fast.
    results = verifiers(grading_policy(shared_data, name), timeout=1.0).verify_batch(preds, gold_col)
    wrong = [
        (gold, pred[-80:], res.reason)
        for pred, gold, want, res in zip(preds, gold_col, expected, results, strict=True)
        if (res.score == 1.0) != want
    ]
    assert wrong == []
    # no hang: the 1 s CPU limit bounds every verdict, and the wall-clock backstop its wait
    assert max(r.cpu_seconds for r in results) <= 1.0 + 0.25
    assert max(r.seconds for r in results) <= max(WALL_BACKSTOP_FACTOR * 1.0, WALL_BACKSTOP_MIN) + 4.0
