"""`rlvr plan`: the memory arithmetic on hand-computed cases, the direction each knob moves it, and the
CLI's table and exit codes (0 fits, 1 does not, 2 bad input), without importing torch."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import PYTHON, REPO, run_cmd, tail

from rlvr.cli import main
from rlvr.config import load_recipe
from rlvr.plan import (
    BACKWARD_WORKSPACE_LAYERS,
    KNOWN_SHAPES,
    LOGITS_CHUNK_FACTOR,
    GiB,
    PlanError,
    activation_bytes,
    layer_activation_bytes,
    logits_bytes,
    model_state_bytes,
    parameter_count,
    parse_memory,
    plan_recipe,
    resolve_shape,
    shape_from_config,
    stage_memory,
    stage_setup,
)

QWEN_1_5B = shape_from_config(KNOWN_SHAPES["Qwen/Qwen2.5-Math-1.5B"], "test")
V, H = 151936, 1536


@pytest.fixture(autouse=True)
def _empty_hf_cache(tmp_path, monkeypatch):
    """No test reads the machine's Hugging Face cache: hub ids resolve from the built-in table."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def test_parameter_count_of_qwen2_5_math_1_5b():
    layer = H * H + 2 * H * 256 + H * H + 3 * H * 8960 + 2 * H + (H + 2 * 256)  # q, k, v, o, MLP, norms, qkv bias
    assert parameter_count(QWEN_1_5B) == V * H + H + 28 * layer == 1_543_714_304  # tied head: one V x H


def test_model_states_bf16_zero2_on_8_gpus():
    N = parameter_count(QWEN_1_5B)
    weights, grads, optim, cpu = model_state_bytes(N, "bfloat16", zero_stage=2, world=8)
    assert (weights, grads, optim, cpu) == (2 * N, 2 * N / 8, 12 * N / 8, 0.0)
    assert model_state_bytes(N, "bfloat16", 2, 8, grad_bytes=4)[1] == 4 * N / 8  # fp32 gradient accumulation
    assert model_state_bytes(N, "float32", 0, 8)[:3] == (4 * N, 4 * N, 8 * N)  # no master copy in fp32
    assert model_state_bytes(N, "bfloat16", 2, 8, offload_optimizer=True)[2:] == (0.0, 12 * N / 8)


def test_each_zero_stage_partitions_one_more_state():
    N = parameter_count(QWEN_1_5B)
    states = [model_state_bytes(N, "bfloat16", z, 8) for z in range(4)]
    assert states[0] == (2 * N, 2 * N, 12 * N, 0.0)
    assert states[1] == (2 * N, 2 * N, 12 * N / 8, 0.0)
    assert states[2] == (2 * N, 2 * N / 8, 12 * N / 8, 0.0)
    assert states[3] == (2 * N / 8, 2 * N / 8, 12 * N / 8, 0.0)
    totals = [sum(s) for s in states]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 4


def test_activation_formula_and_checkpointing():
    A = 2 * (3 * H + 2 * 256 + 4 * 8960) + 2 * (4 + 2) * H + 4 * 12  # bf16 layer bytes per token
    assert layer_activation_bytes(QWEN_1_5B, "bfloat16") == A == 100_400
    tokens = 8 * 4096
    full = activation_bytes(QWEN_1_5B, tokens, "bfloat16", checkpointing=False)
    ckpt = activation_bytes(QWEN_1_5B, tokens, "bfloat16", checkpointing=True)
    W = BACKWARD_WORKSPACE_LAYERS * A  # gradients in flight in the layer being differentiated
    assert full == tokens * (28 * A + W + 6 * H)
    assert ckpt == tokens * (28 * 2 * H + A + W + 6 * H)
    assert ckpt < full / 9
    assert activation_bytes(QWEN_1_5B, 2 * tokens, "bfloat16", False) == pytest.approx(2 * full)  # linear (SDPA)


def test_logits_chunked_and_full():
    chunked = logits_bytes(QWEN_1_5B, 24576, chunk=1024, dtype="bfloat16", entropy=True)
    assert chunked == LOGITS_CHUNK_FACTOR * 1024 * V * 4 + V * H * 4  # one chunk + fp32 head-grad accumulator
    assert logits_bytes(QWEN_1_5B, 512, 1024, "bfloat16", True) == LOGITS_CHUNK_FACTOR * 512 * V * 4  # one chunk
    assert logits_bytes(QWEN_1_5B, 24576, 1024, "float32", True) == LOGITS_CHUNK_FACTOR * 1024 * V * 4
    assert logits_bytes(QWEN_1_5B, 24576, 0, "bfloat16", entropy=True) == 5 * 24576 * V * 4
    assert logits_bytes(QWEN_1_5B, 24576, 0, "bfloat16", entropy=False) == 3 * 24576 * V * 4


def test_one_shot_stage_knobs_and_phases():
    recipe = load_recipe(REPO / "recipes" / "one_shot.yaml")
    s = stage_setup(recipe.stage("rl"), recipe, QWEN_1_5B.vocab)
    assert (s.tokens, s.seq_len, s.zero_stage, s.gradient_checkpointing) == (24000, 4096, 2, True)  # token budget
    assert s.logits_chunk_tokens == 441  # 256 MiB of fp32 logits at 151,936 rows
    assert s.reference and s.entropy and s.vllm_utilization == 0.4 and not s.vllm_awake_in_training
    m = stage_memory(QWEN_1_5B, s, world=8, gpu_memory=80 * GiB)
    N = parameter_count(QWEN_1_5B)
    assert m.reference == 2 * N and m.vllm == 32 * GiB
    assert m.rollout == m.weights + m.optimizer + m.zero_buffers + m.reference + m.vllm  # engine asleep in training
    assert m.train == m.rollout - m.vllm + m.grads + m.activations + m.logits
    from dataclasses import replace

    awake = stage_memory(QWEN_1_5B, replace(s, vllm_awake_in_training=True), 8, 80 * GiB)
    assert awake.train == m.train + 32 * GiB
    z3 = stage_memory(QWEN_1_5B, replace(s, zero_stage=3), 8, 80 * GiB)
    assert z3.weights == m.weights / 8


def test_tiny_shape_reads_embedding_size_when_present():
    tiny = SimpleNamespace(hidden_size=64, intermediate_size=256, num_layers=2, num_heads=2, num_kv_heads=1,
                           vocab_size=512)
    recipe = SimpleNamespace(model=SimpleNamespace(tiny=tiny, name=None, revision=None))
    assert resolve_shape(recipe).vocab == 512
    tiny.embedding_size = 640
    assert resolve_shape(recipe).vocab == 640


def test_shapes_from_local_dir_hf_cache_and_table(tmp_path, monkeypatch):
    cfg = dict(KNOWN_SHAPES["Qwen/Qwen2.5-Math-1.5B"], vocab_size=1000)
    local = tmp_path / "model"
    local.mkdir()
    (local / "config.json").write_text(json.dumps(cfg))
    recipe = lambda name: SimpleNamespace(model=SimpleNamespace(tiny=None, name=name, revision=None))  # noqa: E731
    assert resolve_shape(recipe(str(local))).vocab == 1000
    snap = tmp_path / "hf-cache" / "models--org--cached" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(dict(cfg, vocab_size=2000)))
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("abc123")
    assert resolve_shape(recipe("org/cached")).vocab == 2000
    assert resolve_shape(recipe("Qwen/Qwen2.5-Math-7B")).source == "built-in shape table"
    with pytest.raises(PlanError, match="--set model.name=/path"):
        resolve_shape(recipe("org/not-a-known-model"))


def test_built_in_shapes_match_bench_configs():
    for hub_id, file in [("Qwen/Qwen2.5-Math-1.5B", "qwen2.5-math-1.5b.json"),
                         ("microsoft/Phi-4-mini-instruct", "phi-4-mini.json")]:
        bench = json.loads((REPO / "bench" / "configs" / file).read_text())
        assert shape_from_config(KNOWN_SHAPES[hub_id], "x") == shape_from_config(bench, "x"), hub_id


def test_parse_memory_units():
    assert parse_memory("80GiB") == parse_memory("80GB") == parse_memory("80G") == parse_memory("80") == 80 * GiB
    assert parse_memory("80 GB") == parse_memory("80gib") == 80 * GiB
    assert parse_memory("81559MiB") == 81559 * 2**20
    assert parse_memory("0.5TiB") == 512 * GiB
    for bad in ("eighty", "80XB", "0GiB", "-5GiB", "80 G B", ""):
        with pytest.raises(PlanError, match="--gpu-memory"):
            parse_memory(bad)


def test_cli_prints_a_table_for_one_shot_and_phi4():
    proc = run_cmd([PYTHON, "-m", "rlvr", "plan", "recipes/one_shot.yaml", "--gpus", "8", "--gpu-memory", "80GiB"],
                   timeout=60)
    assert proc.returncode == 0, tail(proc)
    for word in ("weights", "grads", "optim", "act on", "act off", "logits", "vllm", "peak", "every stage fits"):
        assert word in proc.stdout, word
    assert any(line.startswith("rl ") for line in proc.stdout.splitlines())
    recipe = load_recipe(REPO / "recipes" / "phi4_mini_reasoning.yaml")
    assert main(["plan", "recipes/phi4_mini_reasoning.yaml"]) == 0
    plans = plan_recipe(recipe, 8, 80 * GiB)
    assert [p.setup.name for p in plans] == ["distill", "distill_hard", "midtrain", "sft", "dpo", "rl"]


def test_plan_does_not_import_torch():
    code = ("import sys\nfrom rlvr.cli import main\n"
            f"rc = main(['plan', r'{REPO / 'recipes' / 'one_shot.yaml'}'])\n"
            "print('RC', rc, [m for m in ('torch', 'deepspeed', 'vllm', 'transformers') if m in sys.modules])\n")
    proc = run_cmd([PYTHON, "-c", code], timeout=60)
    assert "RC 0 []" in proc.stdout, tail(proc)


def test_a_stage_that_does_not_fit_exits_1_naming_stage_and_knob(capsys):
    rc = main(["plan", str(REPO / "recipes" / "one_shot.yaml"), "--set", "backend.gradient_checkpointing=false",
               "--set", "stages.rl.max_tokens_per_micro_batch=49152"])
    out = capsys.readouterr().out
    assert rc == 1
    warning = next(line for line in out.splitlines() if line.startswith("WARNING"))
    assert "stage rl:" in warning and "> 80.0 GiB" in warning
    assert "set backend.gradient_checkpointing: true" in warning
    assert "stages.rl.max_tokens_per_micro_batch to" in warning or "stages.rl.micro_batch_size to" in warning
    # the engine's share alone can also be too much: the rollout phase names gpu_memory_utilization
    rc = main(["plan", str(REPO / "recipes" / "one_shot.yaml"), "--gpu-memory", "40GiB",
               "--set", "stages.rl.generation.gpu_memory_utilization=0.95"])
    assert rc == 1 and "generation.gpu_memory_utilization to" in capsys.readouterr().out


def test_bad_inputs_exit_2_without_traceback(capsys):
    one_shot = str(REPO / "recipes" / "one_shot.yaml")
    for argv, message in [
        (["plan", "no/such/recipe.yaml"], "file not found"),
        (["plan", one_shot, "--gpu-memory", "80XB"], "--gpu-memory '80XB'"),
        (["plan", one_shot, "--gpus", "0"], "--gpus must be >= 1"),
        (["plan", one_shot, "--set", "model.name=org/unknown-model"], "--set model.name=/path"),
        (["plan", one_shot, "--set", "backend.zero_stage=5"], "backend.zero_stage"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    proc = run_cmd([PYTHON, "-m", "rlvr", "plan", "no/such/recipe.yaml"], timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "file not found" in proc.stderr
