"""The two reproduced published graders (rlvr/verify/paper_rules.py): one_shot_reward and
qwen_math_eval.

Each case is labelled with what the ORIGINAL decides, read from its source at
ypwang61/One-Shot-RLVR @ 21ed529, and names where the decision is made:
  OS = verl/utils/reward_score/  (deepscaler.py, utils/utils.py)
  QP = Qwen2.5-Eval/evaluation/parser.py, QG = .../grader.py, QM = .../math_eval.py
Golds come from the benchmark files in shared/data (the same files the harness reads).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlvr.verify import VerifierConfig
from rlvr.verify.paper_rules import qwen_gold, strip_string


def _rows(root, name):
    with open(root / name / "test.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def golds(shared_data):
    """Named golds from the benchmark files (the spelling the harness reads, not retyped)."""
    math500 = {r["unique_id"]: r for r in _rows(shared_data, "math500")}
    by_answer = {r["answer"]: r for r in math500.values()}
    aime24 = [r["answer"] for r in _rows(shared_data, "aime24")]
    aime25 = [r["answer"] for r in _rows(shared_data, "aime25")]
    amc23 = [r["answer"] for r in _rows(shared_data, "amc23")]
    minerva = [r["solution"] for r in _rows(shared_data, "minerva_math")]
    olympiad = [r["final_answer"] for r in _rows(shared_data, "olympiadbench")]
    out = {
        "aime_padded": next(a for a in aime24 if a.startswith("0")),  # "025"
        "aime_degrees": next(a for a in aime25 if "circ" in a),  # "336^\circ"
        "amc_float": amc23[0],  # 27.0
        "minerva_sci": next(s for s in minerva if "3.83e35" in s),  # solution; boxed 3.83e35
        "olympiad_list": next(o for o in olympiad if o == ["$\\frac{1}{2 n+2}$"]),
    }
    for answer in (
        "\\text{east}",
        "\\frac{270}7\\text{ degrees}",
        "5.4 \\text{ cents}",
        "(-\\infty, 0]",
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        "x=5",
        "\\text{Evelyn}",
        "\\frac{14}{3}",
        "\\sqrt{51}",
        "\\text{(C)}",
        "1.25",
        ".0000672",
    ):
        out[answer] = by_answer[answer]["answer"]
        out["sol:" + answer] = by_answer[answer]["solution"]
    return out


# ---------------------------------------------------------------- one_shot_reward
# (id, prediction, gold key or literal, original's decision). Gold 12.8 is pi1's ground truth
# (shared/data/one_shot_rlvr/pi1_r128.parquet).
ONE_SHOT = [
    # --- the five measured differences against rlvr's `math` policy
    ("no_box_answer_is__OS.utils.extract_answer_needs_boxed", "… the answer is 12.8.", "12.8", False),
    (
        "box_then_truncated__OS.deepscaler.compute_score_no_length_check",
        "So the value is \\boxed{12.8}. Let me double-check by recomputing the are",
        "12.8",
        True,
    ),
    (
        "three_boxes_last_right__OS.last_boxed_only_string_rfind",
        "Maybe \\boxed{12}? Or \\boxed{13}? Finally \\boxed{12.8}",
        "12.8",
        True,
    ),
    ("hedge_or__OS.last_boxed_only_string_rfind", "\\boxed{12.7} or \\boxed{12.8}", "12.8", True),
    ("fbox__OS.utils.extract_answer_needs_boxed", "The answer is $\\fbox{12.8}$.", "12.8", False),
    # --- extraction
    ("unterminated_box__OS.last_boxed_only_string", "\\boxed{12.8", "12.8", False),
    ("boxed_space__OS.remove_boxed_needs_brace", "\\boxed 12.8", "12.8", False),
    ("think_not_required__OS.main_ppo_use_think_False", "<think>hmm</think> \\boxed{12.8}", "12.8", True),
    ("last_box_wrong__OS.last_boxed_only_string", "\\boxed{12.8} no wait \\boxed{12.7}", "12.8", False),
    ("boxed_gold_extracted__OS.deepscaler.compute_score", "\\boxed{5}", "\\boxed{5}", True),
    # --- grade_answer_mathd (Hendrycks strip_string)
    ("mathd_dfrac__OS.utils._strip_string", "\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", True),
    ("mathd_frac12__OS.utils._fix_fracs", "\\boxed{\\frac14 3}", "\\frac{14}{3}", False),
    ("mathd_slash__OS.utils._fix_a_slash_b", "\\boxed{14/3}", "\\frac{14}{3}", True),
    ("mathd_half__OS.utils._strip_string_0.5", "\\boxed{0.5}", "\\frac{1}{2}", True),
    (
        "mathd_text_unit__OS.utils._remove_right_units",
        "\\boxed{5.4 \\text{ cents}}",
        "5.4 \\text{ cents}",
        True,
    ),
    ("mathd_degrees__OS.utils._strip_string_circ", "\\boxed{336}", "336^\\circ", True),
    ("mathd_k_eq__OS.utils._strip_string_k=", "\\boxed{x=5}", "x=5", True),
    # _fix_sqrt braces one character: \sqrt51 is \sqrt{5}1, not \sqrt{51}
    ("mathd_sqrt3__OS.utils._fix_sqrt", "\\boxed{\\sqrt51}", "\\sqrt{51}", False),
    ("mathd_sqrt3_one_digit__OS.utils._fix_sqrt", "\\boxed{2\\sqrt3}", "2\\sqrt{3}", True),
    ("mathd_leading_dot__OS.utils._strip_string", "\\boxed{0.0000672}", ".0000672", True),
    # --- grade_answer_sympy (PRM800K normalise + gated sympy.simplify)
    ("sympy_decimal_trailing0__OS.are_equal_under_sympy", "\\boxed{12.80}", "12.8", True),
    ("sympy_frac_equals_decimal__OS.are_equal_under_sympy", "\\boxed{\\frac{64}{5}}", "12.8", True),
    ("sympy_unreduced_frac__OS.grade_answer_sympy_is_frac", "\\boxed{\\frac{28}{6}}", "\\frac{14}{3}", False),
    ("sympy_int_vs_expr__OS.grade_answer_sympy_str_is_int", "\\boxed{\\frac{54}{2}}", "27", False),
    ("sympy_int_float__OS._normalize_is_int", "\\boxed{27.0}", "27", True),
    ("sympy_thousands__OS._strip_properly_formatted_commas", "\\boxed{3,159}", "3159", True),
    ("sympy_units_words__OS._normalize_units", "\\boxed{27 \\text{miles}}", "27", True),
    ("sympy_tuple_brackets__OS.grade_answer_sympy", "\\boxed{[-\\infty, 0]}", "(-\\infty, 0]", False),
    ("sympy_tuple_ok__OS.grade_answer_sympy", "\\boxed{(1, 2)}", "(1,2)", True),
    ("sympy_sqrt_product__OS.are_equal_under_sympy", "\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    ("sympy_three_letters__OS.should_allow_eval", "\\boxed{a+b+c}", "c+b+a", False),
    ("sympy_exponent_2digits__OS.should_allow_eval", "\\boxed{1024}", "2^10", False),
    ("sympy_wrong__OS.are_equal_under_sympy", "\\boxed{12.9}", "12.8", False),
    ("sympy_poly__OS.are_equal_under_sympy", "\\boxed{2x+2}", "2(x+1)", True),
]


@pytest.mark.parametrize("name,prediction,gold,expected", ONE_SHOT, ids=[c[0] for c in ONE_SHOT])
def test_one_shot_reward(verifiers, name, prediction, gold, expected):
    result = verifiers("one_shot_reward").verify(prediction, gold)
    assert (result.score == 1.0) is expected, result


def test_one_shot_reward_on_released_gold(verifiers, shared_data):
    """pi1's gold as stored in the released training parquet, several spellings."""
    import pandas as pd

    gold = pd.read_parquet(shared_data / "one_shot_rlvr" / "pi1_r128.parquet").iloc[0]["reward_model"][
        "ground_truth"
    ]
    v = verifiers("one_shot_reward")
    right = [
        "\\boxed{12.8}",
        "\\boxed{\\frac{64}{5}}",
        "\\boxed{12.80}",
        "\\boxed{\\dfrac{64}{5}}",
        "$\\boxed{12.8}$ m/s",
    ]
    right.append("\\boxed{\\frac{128}{10}}")  # unreduced, but the gold is no fraction: sympy decides
    wrong = ["\\boxed{12.81}", "12.8", "\\boxed{128}", "\\boxed{\\frac{129}{10}}"]
    assert [v.verify(p, gold).score for p in right] == [1.0] * len(right)
    assert [v.verify(p, gold).score for p in wrong] == [0.0] * len(wrong)


# ---------------------------------------------------------------- qwen_math_eval
# (id, benchmark, prediction, gold key, original's decision)
QWEN = [
    # --- extraction order (QP.extract_answer)
    (
        "last_box__QP.extract_answer",
        "math500",
        "\\boxed{3} then \\boxed{\\frac{14}{3}}",
        "\\frac{14}{3}",
        True,
    ),
    (
        "answer_is_unboxed__QP.extract_answer_he_answer_is",
        "math500",
        "So the answer is $\\frac{14}{3}$.",
        "\\frac{14}{3}",
        True,
    ),
    (
        "answer_is_tail_kept__QP.extract_answer_split_last",
        "math500",
        "The answer is $\\frac{14}{3}$. Let me verify this once more.",
        "\\frac{14}{3}",
        False,
    ),
    ("final_answer_is__QP.extract_answer", "aime24", "Hence our final answer is 25", "aime_padded", True),
    (
        "minerva_hope__QP.extract_answer_minerva_format",
        "minerva_math",
        "Final Answer: The final answer is $3.83e35$. I hope it is correct.",
        "minerva_sci",
        True,
    ),
    ("last_number__QP.extract_answer_use_last_number", "aime24", "we get 20, then 25", "aime_padded", True),
    (
        "last_number_wrong__QP.extract_answer_use_last_number",
        "aime24",
        "it is 25 or maybe 26",
        "aime_padded",
        False,
    ),
    (
        "truncated_box_graded__QP.extract_answer_unbalanced",
        "math500",
        "so \\boxed{\\frac{14}{3}",
        "\\frac{14}{3}",
        True,
    ),
    (
        "truncated_last_number__QM.evaluate_no_finish_check",
        "aime24",
        "First compute 12 + 13 = 25 and then we also need to subtra",
        "aime_padded",
        True,
    ),
    ("fbox_last_number__QP.extract_answer", "aime24", "$\\fbox{25}$", "aime_padded", True),
    ("boxed_no_brace__QP.extract_answer_split_dollar", "aime24", "$\\boxed 25$", "aime_padded", True),
    ("hedge_boxes_last__QP.extract_answer", "aime24", "\\boxed{24} or \\boxed{25}", "aime_padded", True),
    # --- numeric (QG.math_equal numerical branch, QG.numeric_equal)
    ("aime_zero_pad__QP.convert_word_number_int", "aime24", "\\boxed{25}", "aime_padded", True),
    ("amc_float_gold__QP.strip_string_trailing_0", "amc23", "\\boxed{27}", "amc_float", True),
    ("rel_tol_1e-4__QG.numeric_equal", "amc23", "\\boxed{27.0019}", "amc_float", True),
    ("rel_tol_outside__QG.numeric_equal", "amc23", "\\boxed{27.01}", "amc_float", False),
    ("percent_x100__QG.math_equal_include_percentage", "amc23", "\\boxed{2700}", "amc_float", True),
    ("percent_div100__QG.math_equal_include_percentage", "amc23", "\\boxed{0.27}", "amc_float", True),
    ("percent_sign__QP.strip_string_percent", "amc23", "\\boxed{27\\%}", "amc_float", True),
    ("thousands_comma__QG.parse_digits", "math500", "\\boxed{1.250}", "1.25", True),
    ("decimal_vs_frac__QG.symbolic_equal_N", "math500", "\\boxed{4.66667}", "\\frac{14}{3}", True),
    ("decimal_vs_frac_far__QG.symbolic_equal_N", "math500", "\\boxed{4.67}", "\\frac{14}{3}", False),
    ("sqrt_decimal__QG.symbolic_equal_N", "math500", "\\boxed{7.14143}", "\\sqrt{51}", True),
    ("word_number__QP.convert_word_number", "aime24", "\\boxed{twenty-five}", "aime_padded", True),
    ("degrees__QP.strip_string_circ", "aime25", "\\boxed{336}", "aime_degrees", True),
    ("degrees_word__QP.unit_texts_degree", "aime25", "\\boxed{336 degrees}", "aime_degrees", True),
    # --- text, units, letters (QP.strip_string)
    ("text_unit_stripped__QP.strip_string_text_unit", "math500", "\\boxed{5.4}", "5.4 \\text{ cents}", True),
    (
        "frac_brace_less__QP._fix_fracs",
        "math500",
        "\\boxed{\\frac{270}{7}}",
        "\\frac{270}7\\text{ degrees}",
        True,
    ),
    ("x_eq__QP.strip_string_x=", "math500", "\\boxed{5}", "x=5", True),
    ("name__QG.math_equal_lower", "math500", "\\boxed{\\text{evelyn}}", "\\text{Evelyn}", True),
    ("choice_letter__QG.math_equal_brackets", "math500", "\\boxed{(C)}", "\\text{(C)}", True),
    ("choice_bare_letter__QG.math_equal_bracket_strip", "math500", "\\boxed{C}", "\\text{(C)}", True),
    # reproduced bug: "east" is in unit_texts, so gold \text{east} strips to "", and so does any
    # \text{<unit word>}; a bare "west" survives (a strip to "" is not applied) and an empty box matches
    ("bug_east_gold_emptied__QP.unit_texts", "math500", "\\boxed{\\text{west}}", "\\text{east}", True),
    ("bug_east_empty_box__QG.math_equal_lower", "math500", "\\boxed{}", "\\text{east}", True),
    ("east_bare_west__QP.strip_string_unit_nonempty", "math500", "\\boxed{west}", "\\text{east}", False),
    # --- brackets, matrices, equations (QG.math_equal)
    (
        "interval_ends_ignored__QG.math_equal_elementwise",
        "math500",
        "\\boxed{(-\\infty, 0)}",
        "(-\\infty, 0]",
        True,
    ),
    (
        "interval_wrong_end__QG.math_equal_elementwise",
        "math500",
        "\\boxed{(-\\infty, 1]}",
        "(-\\infty, 0]",
        False,
    ),
    (
        "pmatrix_elementwise__QG.math_equal_pmatrix",
        "math500",
        "\\boxed{\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\\\ \\frac53 \\end{pmatrix}}",
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        True,
    ),
    (
        "pmatrix_wrong__QG.math_equal_pmatrix",
        "math500",
        "\\boxed{\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 4/3 \\end{pmatrix}}",
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        False,
    ),
    ("equation_negated__QG.math_equal_equation", "math500", "\\boxed{b-2a=1}", "2a-b=-1", True),
    # reproduced bug: strip_string deletes "x=" and "y=" anywhere, so "y-2x=1" becomes "y-21"
    ("bug_x_eq_inside__QP.strip_string_x=", "math500", "\\boxed{y-2x=1}", "2x-y=-1", False),
    ("symbolic_poly__QG.symbolic_equal_simplify", "math500", "\\boxed{x^2+2x+1}", "(x+1)^2", True),
    ("symbolic_wrong__QG.symbolic_equal", "math500", "\\boxed{x^2+2x}", "(x+1)^2", False),
    # decided by the worker pool (math-verify standing in for sympy.simplify)
    (
        "symbolic_identity_pool__QG.symbolic_equal_simplify",
        "math500",
        "\\boxed{\\sin^2(x)+\\cos^2(x)}",
        "1",
        True,
    ),
    # --- per-benchmark gold reading (QP.parse_ground_truth)
    (
        "math500_gold_from_solution__QP.parse_ground_truth",
        "math500",
        "\\boxed{\\frac{14}{3}}",
        "sol:\\frac{14}{3}",
        True,
    ),
    (
        "minerva_no_units_stripped__QP.STRIP_EXCEPTIONS",
        "minerva_math",
        "\\boxed{3.83e35}",
        "minerva_sci",
        True,
    ),
    ("minerva_sci_close__QG.numeric_equal", "minerva_math", "\\boxed{3.8302e35}", "minerva_sci", True),
    ("minerva_sci_far__QG.numeric_equal", "minerva_math", "\\boxed{3.9e35}", "minerva_sci", False),
    (
        "olympiad_list_dollar__QP.parse_ground_truth",
        "olympiadbench",
        "\\boxed{\\frac{1}{2n+2}}",
        "olympiad_list",
        True,
    ),
    (
        "olympiad_wrong__QP.parse_ground_truth",
        "olympiadbench",
        "\\boxed{\\frac{1}{2n+1}}",
        "olympiad_list",
        False,
    ),
]


def _gold(golds, key):
    return golds.get(key, key)


@pytest.mark.parametrize("name,benchmark,prediction,gold,expected", QWEN, ids=[c[0] for c in QWEN])
def test_qwen_math_eval(verifiers, golds, name, benchmark, prediction, gold, expected):
    result = verifiers("qwen_math_eval").verify(
        prediction, _gold(golds, gold), benchmark=benchmark, truncated=True
    )
    assert (result.score == 1.0) is expected, result


def test_qwen_golds_read_like_the_harness(golds, shared_data):
    """QP.parse_ground_truth: math500's gold from the solution's last box equals the stored answer
    after the same processing, for all 500; the known manglings are reproduced."""
    for row in _rows(shared_data, "math500"):
        assert qwen_gold(row["solution"], "math500") == qwen_gold(row["answer"], "math500"), row["unique_id"]
    assert qwen_gold(golds["\\text{east}"], "math500") == ""  # unit_texts contains "east"
    assert qwen_gold(golds["aime_padded"], "aime24") == "25"
    assert qwen_gold(str(golds["amc_float"]), "amc23") == "27"
    assert strip_string("\\text{Sandy}") == "Sy"  # "and" is removed everywhere


def test_benchmark_names(verifiers):
    v = verifiers("qwen_math_eval")
    with pytest.raises(ValueError, match="unknown benchmark 'gsm8k'"):
        v.verify("\\boxed{1}", "1", benchmark="gsm8k")
    assert v.verify("\\boxed{1}", "1").score == 1.0  # no benchmark: math500 rules


def test_policies_registered():
    for name in ("one_shot_reward", "qwen_math_eval"):
        assert VerifierConfig(policy=name).resolved_policy().rules == name


def test_cli_paper_policies(tmp_path):
    rows = [
        {"prediction": "… the answer is 12.8.", "gold": "12.8", "benchmark": "math500"},
        {"prediction": "\\boxed{12.7} or \\boxed{12.8}", "gold": "12.8"},
        {"prediction": "\\boxed{27}", "gold": 27.0, "benchmark": "amc23"},
        {"prediction": "\\boxed{1}", "gold": "1", "benchmark": "gsm8k"},
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = {}
    for policy in ("one_shot_reward", "qwen_math_eval"):
        out = tmp_path / f"{policy}.jsonl"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rlvr.cli",
                "verify",
                "--policy",
                policy,
                "--in",
                str(inp),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr  # the gsm8k row is malformed, the rest written
        assert "in.jsonl:4: unknown benchmark 'gsm8k'" in proc.stderr
        scores[policy] = [json.loads(line)["score"] for line in out.read_text().splitlines()]
    assert scores == {"one_shot_reward": [0.0, 1.0, 1.0], "qwen_math_eval": [1.0, 1.0, 1.0]}
