"""No model output reaches eval/exec/sympify/parse_expr of raw strings; the package imports light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from rlvr.verify import VerifierConfig

PACKAGE = Path(__file__).resolve().parents[2] / "rlvr" / "verify"
FORBIDDEN = re.compile(
    r"\b(?:eval|exec|sympify|parse_expr|parse_expr_cached|ExprExtractionConfig|__import__)\s*\(|"
    r"(?<![.\w])compile\s*\(|\bsympy\.S\s*\("
)


def test_package_source_never_evaluates_strings():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if FORBIDDEN.search(code) and not code.strip().startswith(('"', "'")):
                offenders.append(f"{path.name}:{lineno}: {line.strip()}")
    assert offenders == []


AUDIT = r"""
import sys
MARK = "zqxjvw"
seen = []
def hook(event, args):
    if event == "compile" and args and isinstance(args[0], (str, bytes)):
        src = args[0] if isinstance(args[0], str) else args[0].decode("utf-8", "replace")
        if MARK in src:
            seen.append(src[:80])
sys.addaudithook(hook)
from rlvr.verify import symbolic
from rlvr.verify.verifier import Verifier
payloads = [
    MARK + "+1", "__import__('os').system('echo " + MARK + "')", MARK + "**2", MARK + "(1)",
    "x = " + MARK, r"\text{" + MARK + "}", MARK + "=2", "[" + MARK + "]", "lambda: " + MARK,
]
for p in payloads:
    try:
        symbolic.judge(p, "x+1")
    except Exception:
        pass
v = Verifier()
v._fast(r"\boxed{" + payloads[1] + "}", "5", False)
print("SEEN", len(seen), seen[:3])
from sympy.parsing.sympy_parser import parse_expr
parse_expr(MARK + "+1")  # positive control: the hook does see string evaluation
print("CONTROL", len(seen) > 0)
"""


def test_model_output_never_compiled_as_python():
    """An audit hook sees every compile() (eval/exec/parse_expr/sympify(str) all compile source)."""
    proc = subprocess.run([sys.executable, "-c", AUDIT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "SEEN 0 []" in proc.stdout, proc.stdout
    assert "CONTROL True" in proc.stdout, proc.stdout


def test_import_is_light():
    code = (
        "import sys, rlvr.verify, rlvr.verify.config; "
        "heavy = [m for m in ('sympy', 'math_verify', 'latex2sympy2_extended', 'torch') if m in sys.modules]; "
        "print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_config_validation():
    assert VerifierConfig().policy == "math" and VerifierConfig().timeout == 2.0
    with pytest.raises(ValidationError, match="unknown verifier policy"):
        VerifierConfig(policy="nope")
    with pytest.raises(ValidationError):
        VerifierConfig(timeout=0)
    with pytest.raises(ValidationError):
        VerifierConfig(timeout=float("inf"))
    with pytest.raises(ValidationError):
        VerifierConfig(nonsense=1)
    assert VerifierConfig(policy="minerva").resolved_policy().numeric == "sig_figs"
    assert VerifierConfig(require_box=True).resolved_policy().require_box is True
