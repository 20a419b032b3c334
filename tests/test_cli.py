"""The CLI answers fast, without importing torch, and bad input exits 2."""

from __future__ import annotations

from conftest import PYTHON, REPO, run_cmd

from rlvr.cli import main


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from rlvr.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'deepspeed', 'vllm', 'transformers', 'sympy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = run_cmd([PYTHON, "-c", code], timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_validate_does_not_import_torch():
    code = (
        "import sys\nfrom rlvr.cli import main\n"
        f"rc = main(['validate', r'{REPO / 'recipes' / 'tiny.yaml'}'])\n"
        "print('RC', rc, 'torch' in sys.modules)\n"
    )
    proc = run_cmd([PYTHON, "-c", code], timeout=60)
    assert "RC 0 False" in proc.stdout, proc.stdout + proc.stderr


def test_console_script_and_module_entry_points():
    proc = run_cmd([PYTHON, "-m", "rlvr", "--version"], timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("rlvr ")
    rlvr_bin = REPO / ".venv" / "bin" / "rlvr"
    if rlvr_bin.exists():
        proc = run_cmd([str(rlvr_bin), "validate", "recipes/tiny.yaml"], timeout=60)
        assert proc.returncode == 0, proc.stderr


def test_report_of_a_missing_directory_exits_2(capsys):
    assert main(["report", "no/such/dir"]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_no_verb_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: rlvr" in capsys.readouterr().out
