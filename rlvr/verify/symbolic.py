"""Symbolic fallback, run only inside worker processes (it imports sympy and math-verify).

The answer strings reaching here were already extracted and normalised; they are wrapped in
``\\boxed{}`` and parsed with math-verify's LaTeX target only. ``ExprExtractionConfig`` is never
used: it feeds raw text to sympy's ``parse_expr``, which evaluates Python. After math-verify says
"equal", numeric answers are re-checked at 50 digits with a relative tolerance, because
math-verify's 6-decimal rounding and ``chop`` make tiny values equal (1/2^99 = 1/2^98).
"""

from __future__ import annotations

import logging

_CONFIG = None


def _setup():
    global _CONFIG
    if _CONFIG is None:
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
        from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
        from math_verify import LatexExtractionConfig

        # units=False: our normaliser already set units aside; math-verify's word list would
        # strip variables (3t -> 3, \frac{1}{m}t -> 1/m).
        normalization = NormalizationConfig(
            basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False
        )
        _CONFIG = [LatexExtractionConfig(boxed_match_priority=0, normalization_config=normalization)]
    return _CONFIG


def _parse(text: str) -> list:
    from math_verify import parse

    return parse(
        "\\boxed{" + text + "}",
        extraction_config=_setup(),
        fallback_mode="no_fallback",
        extraction_mode="first_match",
        parsing_timeout=None,
    )


def _numeric_disagree(gold, pred) -> bool:
    """True when both sides are plain numbers whose 50-digit values differ relatively."""
    import sympy

    try:
        g, p = gold[0], pred[0]
        if not (isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr)):
            return False
        if g.free_symbols or p.free_symbols:
            return False
        gv, pv = sympy.N(g, 50), sympy.N(p, 50)
        if not (gv.is_number and pv.is_number):
            return False
        diff = abs(gv - pv)
        scale = max(abs(gv), abs(pv))
        return bool(diff > scale * sympy.Float("1e-12", 50))
    except Exception:  # noqa: BLE001 - any sympy failure means "no evidence of disagreement"
        return False


_PROBES = ((7, 3), (11, 5))  # two probe points: symbol number k gets (a + k) / b


def _abstract(expr, table: dict):
    """Replace undefined functions and derivatives (u(t), dx/dt) by shared placeholder symbols."""
    import sympy
    from sympy.core.function import AppliedUndef

    nodes = expr.atoms(sympy.Derivative) | expr.atoms(AppliedUndef)
    reps = {n: table.setdefault(sympy.srepr(n), sympy.Dummy(f"u{len(table)}")) for n in nodes}
    return expr.xreplace(reps) if reps else expr


def _values(exprs: list, point_of) -> list[complex]:
    return [complex(e.evalf(30, subs=point_of)) for e in exprs]


def _probe_differs(gold, pred) -> bool:
    """True when a probe proves two expressions (or equations) different.

    Identically equal expressions agree wherever both are defined, so disagreeing at two probe
    points proves them different; for equations ``a = b`` the differences ``a - b`` must stay
    proportional. This settles most wrong symbolic answers without math-verify's ``simplify``.
    Relations other than equality, sets, tuples and undefined values give "no evidence" (False).
    """
    import sympy

    try:
        g, p = gold[0], pred[0]
        both_eq = isinstance(g, sympy.Eq) and isinstance(p, sympy.Eq)
        if both_eq:
            g, p = g.lhs - g.rhs, p.lhs - p.rhs
        if not (isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr)):
            return False
        table: dict = {}
        g, p = _abstract(g, table), _abstract(p, table)
        symbols = sorted(g.free_symbols | p.free_symbols, key=str)
        if len(symbols) > 16:
            return False
        ratios = []
        for a, b in _PROBES:
            point = {sym: sympy.Rational(a + k, b) for k, sym in enumerate(symbols)}
            gv, pv = _values([g, p], point)
            scale = max(1.0, abs(gv), abs(pv))
            if both_eq:
                if abs(pv) < 1e-12 * scale or abs(gv) < 1e-12 * scale:
                    return False
                ratios.append(gv / pv)
            elif not abs(gv - pv) > 1e-9 * scale:
                return False
        if both_eq:
            r1, r2 = ratios
            return abs(r1 - r2) > 1e-9 * max(1.0, abs(r1), abs(r2))
        return True
    except Exception:  # noqa: BLE001 - undefined at the probe, non-numeric, overflow: no evidence
        return False


def _solved_form(expr) -> bool:
    """A relation counts only in solved form: the variable alone on one side, constants on the other.

    Keeps the "restate the problem's inequality" hack closed: ``x^2 \\le 2x`` is not an answer
    for ``[0, 2]`` even though math-verify's set-relation comparison would solve it.
    """
    import sympy

    if isinstance(expr, (sympy.And, sympy.Or)):
        return all(_solved_form(arg) for arg in expr.args)
    if isinstance(expr, sympy.core.relational.Relational):
        lhs, rhs = expr.lhs, expr.rhs
        return (lhs.is_Symbol and not rhs.free_symbols) or (rhs.is_Symbol and not lhs.free_symbols)
    return True


def judge(pred: str, gold: str, interval_relations: bool = True, equation_values: bool = True) -> str:
    """``match``, ``mismatch`` or ``unparseable`` for two normalised answer strings.

    ``equation_values=False`` (the ``math`` policy's ``var_names``): an equation is no answer for a
    gold that is not one. math-verify compares such an equation's right side with the gold, so
    ``2x = 5`` would match ``5``; the normaliser has already turned every solved ``x = 5`` into 5.
    """
    from math_verify import verify

    gold_parsed = _parse(gold)
    pred_parsed = _parse(pred)
    if not gold_parsed or not pred_parsed:
        return "unparseable"
    import sympy

    if isinstance(gold_parsed[0], sympy.Set) and not _solved_form(pred_parsed[0]):
        return "mismatch"
    if (
        not equation_values
        and isinstance(pred_parsed[0], sympy.Eq)
        and not isinstance(gold_parsed[0], sympy.Eq)
    ):
        return "mismatch"
    if _probe_differs(gold_parsed, pred_parsed):
        return "mismatch"
    ok = verify(
        gold_parsed,
        pred_parsed,
        allow_set_relation_comp=interval_relations,
        timeout_seconds=None,
    )
    if ok and _numeric_disagree(gold_parsed, pred_parsed):
        return "mismatch"
    return "match" if ok else "mismatch"
