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


# ------------------------------------------------------------------ user mistakes rlvr validate catches
# (issue #20: each of these passed `rlvr validate` or printed a raw parser error; `rlvr run` then failed
# with a traceback after minutes of work)

def _validate(capsys, *argv: str) -> tuple[int, str]:
    rc = main(["validate", str(REPO / "recipes" / "tiny_rl.yaml"), *argv])
    return rc, capsys.readouterr().err


def test_validate_names_a_data_file_that_does_not_exist(capsys, tmp_path):
    rc, err = _validate(capsys, "--set", f"stages.rl.data={{path: {tmp_path / 'nope.jsonl'}}}")
    assert rc == 2 and f"stages[1].data.path: file not found: {tmp_path / 'nope.jsonl'}" in err, err
    (tmp_path / "nope.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    assert _validate(capsys, "--set", f"stages.rl.data={{path: {tmp_path / 'nope.jsonl'}}}")[0] == 0


def test_validate_names_an_init_that_is_no_stage_and_no_path(capsys):
    rc, err = _validate(capsys, "--set", "stages.rl.init=stf")
    assert rc == 2 and "stages[1].init: 'stf' is not a stage of this recipe (sft, rl)" in err, err
    assert _validate(capsys, "--set", "stages.rl.init=sft")[0] == 0
    assert _validate(capsys, "--set", "stages.rl.init=Qwen/Qwen2.5-Math-1.5B")[0] == 0  # a hub id: checked at run time


def test_validate_names_a_local_model_path_that_does_not_exist(capsys, tmp_path):
    rc, err = _validate(capsys, "--set", f"stages.rl.init={tmp_path}/models/sft")
    assert rc == 2 and f"stages[1].init: model path not found: {tmp_path}/models/sft" in err, err
    rc, err = _validate(capsys, "--set", "model={name: ./no/such/model}")
    assert rc == 2 and "model.name: local model not found: ./no/such/model" in err, err


def test_a_set_value_that_is_not_yaml_is_one_line_naming_the_key(capsys):
    rc, err = _validate(capsys, "--set", "stages.sft.optim.lr=[1e-3")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 2, err
    assert "--set stages.sft.optim.lr: value '[1e-3' is not valid YAML" in lines[1], err


def test_run_refuses_missing_inputs_before_creating_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny_rl.yaml"), "--run-dir", str(run_dir),
                    "--set", f"stages.rl.data={{path: {tmp_path / 'nope.jsonl'}}}"], timeout=60)
    assert proc.returncode == 2 and "file not found" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not run_dir.exists()
