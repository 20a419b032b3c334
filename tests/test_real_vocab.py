"""An RL stage at a real vocabulary (Qwen2.5's 151,936 rows, model.tiny.embedding_size) with an
entropy bonus, a KL term and long completions, end to end on the real stack (vLLM rollouts, DeepSpeed,
token-budget micro-batches): its peak memory stays bounded because no [B, T, V] logits are formed
(rlvr.rl.logprobs). Measured with this setting, peak RSS of the whole run (vLLM engine included): 2.9 GiB
with the default chunk (441 positions at this vocabulary), 3.8 GiB with logits_chunk_tokens 1024, 7.4 GiB
with 0, the full-vocabulary path, which this bound fails."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import PYTHON, REPO, subprocess_env

STAGE = ('[{name: rl, type: rlvr, data: {rows: [{problem: "What is 8 + 8? Think step by step and put the final '
         'answer in \\\\boxed{}.", answer: "16"}]}, prompts_per_step: 2, rollouts_per_prompt: 4, temperature: 1.0, '
         'max_prompt_tokens: 64, max_response_tokens: 512, max_tokens_per_micro_batch: 2304, max_steps: 1, '
         'entropy_coef: 0.001, kl: {coef: 0.001, kind: k3}, optim: {lr: 1.0e-4, schedule: constant}, '
         'generation: {backend: vllm, max_model_len: 640, kv_cache_gib: 0.25}}]')
PEAK_BOUND_GIB = 4.5


def test_rl_at_a_real_vocabulary_with_entropy_and_long_completions_stays_bounded(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [PYTHON, "-m", "rlvr", "run", str(REPO / "recipes" / "tiny_rl.yaml"), "--run-dir", str(run_dir),
           "--set", "model.tiny={hidden_size: 64, num_layers: 2, num_heads: 2, num_kv_heads: 1, "
                    "intermediate_size: 256, embedding_size: 151936}",
           "--set", "backend={zero_stage: 2, micro_batch_size: 8}", "--set", f"stages={STAGE}"]
    # a fresh parent, so that RUSAGE_CHILDREN holds this run's peak and no other test's
    probe = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(rc.stdout[-3000:], rc.stderr[-3000:], file=sys.stderr); "
             "print(rc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=REPO, env=subprocess_env(), capture_output=True,
                          text=True, timeout=600)
    rc, peak_kib = map(int, proc.stdout.split())
    assert rc == 0, proc.stderr[-4000:]
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    step = next(m for m in metrics if "reward/mean" in m)
    assert step["response/length_mean"] >= 256, step  # long completions: an untrained model rarely stops
    assert step["entropy"] > 0 and step["kl"] >= 0
    peak_gib = peak_kib / 2**20
    assert peak_gib <= PEAK_BOUND_GIB, f"peak RSS {peak_gib:.2f} GiB > {PEAK_BOUND_GIB} GiB"
