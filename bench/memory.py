"""Peak memory of one training step's loss path at real vocabularies: rlvr before and after LM-head chunking,
and TRL 1.16's GRPO loss path, on the same model and the same token ids.

    python bench/memory.py --json OUT.json        # CPU default (~7 min): rl, Qwen2.5's vocabulary, 1024/2048/3072
    python bench/memory.py --stages rl --vocabs phi4-mini,llama3.2 --lengths 1024,2048,4096 --other-lengths 2048
    python bench/memory.py --stages dpo --other-lengths 1024          # likewise sft
    python bench/memory.py --stages rl --vocabs phi4-mini --lengths 8192,16384,24576 \
        --variants model,after,after-1024,trl                         # Phi-4's 24K responses (hours on 2 cores)
    python bench/memory.py --report A.json B.json                     # the tables of earlier runs, together
    python bench/memory.py --shape bench/configs/qwen2.5-math-1.5b.json --dtype bfloat16 --rows 8 \
        --stages rl --lengths 1024,2048,3072 --max-gib 120            # GPU: the 1.5B shape, 1-shot's micro-batch

One step = forward + backward + optimizer step, through rlvr's own code:
  rl   `rlvr.stages.rlvr.train_on` (1-shot RLVR's loss: temperature 0.6, token-mean, clip 0.2, k3 KL coef 0.001
       in the loss with precomputed reference log-probs, entropy_coef 0.001), one micro-batch of --rows rollouts
       of one prompt (--prompt tokens) with `length` response tokens each;
  dpo  `rlvr.stages.dpo.pair_logps` + `rlvr.rl.dpo.dpo_loss` (sigmoid, beta 0.1), --rows pairs, each side
       prompt + `length` response tokens;
  sft  `rlvr.stages.causal_lm.token_nll` on `collate`d rows of prompt + `length` response tokens (loss on the
       response).
Variants, each in a fresh subprocess on the same model (a Qwen2-architecture model with random weights, tied
embeddings, the DeepSpeed backend as the stages build it) and the same token ids:
  model       the model's own activations: the same inputs, the final hidden states (the scorer's `hidden`) and
              loss = their mean, so no LM head at all (the head's weight is the tied embedding: it still gets a
              gradient and the optimizer steps it);
  before      BackendConfig.logits_chunk_tokens = 0: full [B, T, V] logits and one fp32 log_softmax;
  after       the default: logits_chunk_tokens unset, chunks of 256 MiB of fp32 logits (441 positions at
              Qwen2.5's vocabulary, 511 at Llama-3.2's, 335 at Phi-4-mini's);
  after-N     logits_chunk_tokens = N;
  trl         TRL 1.16: `add_fused_lm_head(model, temperature, outputs=("log_probs", "entropy"))` as GRPOTrainer's
              __init__ calls it, then for rl the unbound `GRPOTrainer._compute_loss` (which calls
              `GRPOTrainer._get_per_token_logps_and_entropies`) on a stand-in trainer that carries the attributes
              those two methods read, taken from a real `GRPOConfig` (loss_type dapo, beta 0.001, entropy_coef
              0.001, temperature 0.6); for dpo and sft, the fused head called as DPOTrainer / SFTTrainer call it
              (`model(..., labels=..., fused_lm_head=True)`), with rlvr's dpo_loss / mean NLL on top. The model is
              the same DeepSpeed engine; `backend.backward` and `backend.step` as for rlvr.
Each case first runs one short step (16 response tokens) so optimizer state and gradient buffers exist, then
measures one full step. CPU: peak RSS above the RSS right before the step (VmHWM, reset by writing 5 to
/proc/self/clear_refs after gc and malloc_trim). CUDA: torch.cuda.max_memory_allocated above memory_allocated.
"The loss path above the model" = a variant's peak minus the `model` case's peak at the same length; the
targets are judged on it: after (default chunk) <= 0.25 x before, and < TRL.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

VOCABS = {"qwen2.5": 151_936, "llama3.2": 128_256, "phi4-mini": 200_064}
VARIANTS = ("model", "before", "after", "after-1024", "trl")
KiB, MiB, GiB = 2**10, 2**20, 2**30


# ------------------------------------------------------------------------------------ measuring (child)
def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class Meter:
    """Peak memory of a region above its start: CUDA allocator counters, or on CPU VmHWM after resetting it
    (falls back to ru_maxrss where /proc/self/clear_refs does not reset VmHWM)."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.method = "cuda max_memory_allocated" if cuda else "VmHWM after clear_refs"

    def start(self) -> None:
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap back to the OS, so the step cannot hide in it
        Path("/proc/self/clear_refs").write_text("5")
        self.base = _status_kib("VmRSS") * KiB
        if _status_kib("VmHWM") * KiB > self.base + 4 * MiB:  # the reset did not work here
            import resource

            self.method = "ru_maxrss difference (VmHWM could not be reset)"
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB

    def peak(self) -> int:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        if self.method.startswith("ru_maxrss"):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB - self.base
        return _status_kib("VmHWM") * KiB - self.base


def build_model(case: dict):
    import torch
    from transformers import AutoConfig, Qwen2Config

    if case["shape"]:
        raw = {k: v for k, v in json.loads(Path(case["shape"]).read_text()).items() if not k.startswith("_")}
        raw["vocab_size"] = case["vocab"]
        raw["max_position_embeddings"] = max(raw.get("max_position_embeddings", 0), case["prompt"] + case["length"] + 16)
        config = AutoConfig.for_model(**raw)
    else:
        config = Qwen2Config(vocab_size=case["vocab"], hidden_size=case["hidden"], intermediate_size=4 * case["hidden"],
                             num_hidden_layers=case["layers"], num_attention_heads=case["heads"],
                             num_key_value_heads=case["kv_heads"], tie_word_embeddings=True,
                             max_position_embeddings=case["prompt"] + case["length"] + 16)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")


class _OneProcess:
    """What GRPOTrainer._compute_loss asks of its Accelerator, for one process: gathers and reductions are the
    identity; no autocast (the model already runs in the bench's dtype); TRL's profiling decorator reads
    is_main_process."""

    num_processes = 1
    is_main_process = True
    sync_gradients = True

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather

    @staticmethod
    def reduce(x, reduction="sum"):
        return x

    @staticmethod
    def autocast():
        import contextlib

        return contextlib.nullcontext()


def trl_grpo(backend, length: int, dtype: str, temperature: float, kl_coef: float, entropy_coef: float):
    """A stand-in GRPOTrainer: the attributes `_compute_loss` and `_get_per_token_logps_and_entropies` read, as
    GRPOTrainer.__init__ sets them from a GRPOConfig; the fused LM head added as __init__ adds it."""
    import tempfile

    from trl import GRPOConfig, GRPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    args = GRPOConfig(output_dir=tempfile.mkdtemp(), temperature=temperature, beta=kl_coef, entropy_coef=entropy_coef,
                      max_completion_length=length, per_device_train_batch_size=2, num_generations=2,
                      bf16=dtype == "bfloat16", report_to=[])
    add_fused_lm_head(backend.module, temperature=args.temperature, cast_lm_head_to_fp32=args.cast_lm_head_to_fp32,
                      outputs=("log_probs", "entropy"))
    t = types.SimpleNamespace(
        args=args, model=backend.module, accelerator=_OneProcess(), loss_type=args.loss_type, beta=args.beta,
        epsilon_low=args.epsilon, epsilon_high=args.epsilon_high if args.epsilon_high is not None else args.epsilon,
        importance_sampling_level=args.importance_sampling_level, off_policy_mask_threshold=args.off_policy_mask_threshold,
        top_entropy_quantile=args.top_entropy_quantile, entropy_coef=args.entropy_coef,
        use_adaptive_entropy=args.use_adaptive_entropy,
        _entropy_bonus_enabled=args.entropy_coef != 0.0 or args.use_adaptive_entropy,
        use_vllm=False, vllm_importance_sampling_correction=args.vllm_importance_sampling_correction,
        aux_loss_enabled=False, max_completion_length=length, current_gradient_accumulation_steps=1,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)})
    t._get_per_token_logps_and_entropies = types.MethodType(GRPOTrainer._get_per_token_logps_and_entropies, t)
    return lambda model, inputs: GRPOTrainer._compute_loss(t, model, inputs)


def make_step(case: dict, backend, world, length: int):
    """A closure running one training step of `case` at `length` response tokens (inputs built here, outside
    the measured region)."""
    import torch

    from rlvr.data.lm import IGNORE, collate, shift

    stage, variant, rows, P, V = case["stage"], case["variant"], case["rows"], case["prompt"], case["vocab"]
    dev = backend.device
    g = torch.Generator().manual_seed(1)
    rand = lambda n: torch.randint(1, V, (n,), generator=g).tolist()  # noqa: E731  (0 is the pad id)
    temp = case["temperature"] if stage == "rl" else 1.0

    if stage == "rl":
        from rlvr.config import RlvrStage
        from rlvr.stages.rlvr import Plan, Rollout, train_on

        prompt = rand(P)
        rollouts = [Rollout(group=0, prompt_ids=prompt, completion_ids=rand(length), rollout_logp=[-1.0] * length,
                            truncated=False, advantage=1.0 if i % 2 == 0 else -1.0,
                            ref_logp=-torch.rand(length, generator=g) * 3) for i in range(rows)]
        ids = torch.tensor([prompt + r.completion_ids for r in rollouts], device=dev)  # [B, P+T]: no padding
        if variant == "model":
            keep = torch.arange(P - 1, P + length - 1, device=dev)

            def step():
                h = backend.scorer.hidden(input_ids=ids, attention_mask=torch.ones_like(ids),
                                          position_ids=torch.arange(ids.shape[1], device=dev).expand_as(ids),
                                          use_cache=False, logits_to_keep=keep).logits  # [B, T, H]
                backend.backward(h.float().mean())
                backend.step()
            return step
        if variant == "trl":
            loss_fn = case["_trl"]
            inputs = {"prompt_ids": ids[:, :P], "prompt_mask": torch.ones_like(ids[:, :P]),
                      "completion_ids": ids[:, P:], "completion_mask": torch.ones_like(ids[:, P:]),
                      "advantages": torch.tensor([r.advantage for r in rollouts], device=dev),
                      "ref_per_token_logps": torch.stack([r.ref_logp for r in rollouts]).to(dev),
                      "num_items_in_batch": torch.tensor(float(rows * length), device=dev)}

            def step():
                backend.backward(loss_fn(backend.engine, inputs))
                backend.step()
            return step
        cfg = RlvrStage(name="rl", type="rlvr", data={"toy": {}}, temperature=temp, max_response_tokens=length,
                        kl={"coef": case["kl_coef"], "kind": "k3", "placement": "loss"}, entropy_coef=case["entropy_coef"])
        plan = Plan(prompts_local=1, updates=1, mini_local=1, grad_accum=1, total_steps=1)
        return lambda: train_on(cfg, world, backend, rollouts, plan, rows, 0, temp, single_update=True)

    # dpo / sft: rows of prompt + response (loss on the response), all of one width, so no padding
    def example():
        return shift(rand(P + length), [0] * P + [1] * length)

    if stage == "dpo":
        from rlvr.rl.dpo import dpo_loss
        from rlvr.stages.dpo import pair_logps

        items = [(example(), example()) for _ in range(rows)]
        ref_w, ref_l = -torch.rand(rows, generator=g) * length, -torch.rand(rows, generator=g) * length
        examples = [c for c, _ in items] + [r for _, r in items]
    else:
        examples = [example() for _ in range(rows)]
    batch = {k: v.to(dev) for k, v in collate(examples, 0, packed=False).items()}
    targets = batch.pop("targets")
    n_loss = float((targets != IGNORE).sum())

    if variant == "model":
        def step():
            h = backend.scorer.hidden(**batch, use_cache=False).logits  # [B, T, H]
            backend.backward(h.float().mean())
            backend.step()
        return step
    if variant == "trl":
        labels = batch["input_ids"].masked_fill(torch.roll(targets, 1, dims=1) == IGNORE, -100)  # unshifted labels

        def scores():  # [B, T-1] log p, 0 where the label is -100: what DPOTrainer / SFTTrainer read
            return backend.engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                                  fused_lm_head=True, use_cache=False).log_probs
    else:
        from rlvr.stages.causal_lm import token_nll

        def scores():
            return -token_nll(backend.scorer, targets, **batch, use_cache=False)

    if stage == "dpo":
        def step():
            if variant == "trl":
                logps = scores().sum(-1)
                pol_w, pol_l = logps[:rows], logps[rows:]
            else:
                pol_w, pol_l = pair_logps(backend.scorer, items, 0, dev)
            losses, _ = dpo_loss("sigmoid", pol_w, pol_l, ref_w.to(dev), ref_l.to(dev), beta=0.1)
            backend.backward(losses.sum() / rows)
            backend.step()
        return step

    def step():
        backend.backward(-scores().sum() / n_loss)
        backend.step()
    return step


def run_case(case: dict) -> dict:
    import torch

    from rlvr.backend import DeepSpeedBackend
    from rlvr.config import BackendConfig, OptimConfig
    from rlvr.tracking import quiet_libraries
    from rlvr.world import World

    quiet_libraries()
    cuda = torch.cuda.is_available()
    world = World.from_env()
    variant = case["variant"]
    chunk = 0 if variant == "before" else int(variant.split("-")[1]) if variant.startswith("after-") else None
    model = build_model(case)
    backend = DeepSpeedBackend.wrap(
        model, world=world, optim=OptimConfig(lr=1e-6), dtype=case["dtype"], total_steps=2,
        config=BackendConfig(zero_stage=case["zero"], micro_batch_size=case["rows"], grad_accum=1,
                             gradient_checkpointing=case["grad_ckpt"], logits_chunk_tokens=chunk))
    if variant == "trl" and case["stage"] == "rl":
        case["_trl"] = trl_grpo(backend, case["length"], case["dtype"], case["temperature"], case["kl_coef"],
                                case["entropy_coef"])
    elif variant == "trl":  # as DPOTrainer / SFTTrainer's __init__ add it
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(backend.module)
    make_step(case, backend, world, 16)()  # optimizer state and gradient buffers exist before the measured step
    step = make_step(case, backend, world, case["length"])
    meter = Meter(cuda)
    meter.start()
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    peak = meter.peak()
    return {k: v for k, v in case.items() if not k.startswith("_")} | {
        "peak_bytes": peak, "base_bytes": meter.base, "step_s": round(seconds, 2), "method": meter.method,
        "device": torch.cuda.get_device_name() if cuda else "cpu", "params": sum(p.numel() for p in model.parameters())}


# ------------------------------------------------------------------------------------ the sweep (parent)
def response_tokens(r: dict) -> int:
    return r["rows"] * r["length"] * (2 if r["stage"] == "dpo" else 1)


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (slope, intercept) of y on x; None with fewer than 2 distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return slope, my - slope * mx


def child(case: dict, timeout: int) -> dict:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]) | {"wall_s": round(time.perf_counter() - t0, 1)}
    tail = (proc.stdout + proc.stderr)[-3000:]
    return case | {"error": f"exit {proc.returncode}: {tail}"}


def predicted_before(done: list[dict], case: dict) -> float:
    """Bytes the `before` case would take: the fitted line of the measured shorter lengths, or (none yet)
    5 fp32 copies of the [N, V] logits of the positions it scores (rl: the responses; dpo, sft: every position)."""
    pts = [(response_tokens(r), r["peak_bytes"]) for r in done
           if r.get("peak_bytes") is not None and r["variant"] == "before" and r["stage"] == case["stage"]
           and r["vocab"] == case["vocab"]]
    line = fit(pts)
    n = response_tokens(case)
    if line:
        return line[0] * n + line[1]
    if len(pts) == 1:
        return pts[0][1] * n / pts[0][0]
    scored = n if case["stage"] == "rl" else n // case["length"] * (case["prompt"] + case["length"])
    return 5 * 4 * scored * case["vocab"]


def summarize(results: list[dict], default_after: str) -> dict:
    """Per (stage, vocab, length): each variant's peak, the loss path above the model, bytes per response token,
    ratios and targets; per (stage, vocab, variant): the slope in bytes per response token. Where `before` was
    skipped (over --max-gib), its peak is extrapolated from the line through its measured lengths."""
    by = defaultdict(dict)
    for r in results:
        if r.get("peak_bytes") is not None:
            by[(r["stage"], r["vocab"], r["length"])][r["variant"]] = r
    series = defaultdict(list)  # (stage, vocab, variant) -> [(tokens, peak bytes)]
    for (stage, vocab, _), vs in by.items():
        for name, r in vs.items():
            series[(stage, vocab, name)].append((response_tokens(r), r["peak_bytes"]))
    rows, slopes = [], []
    for (stage, vocab, length), vs in sorted(by.items()):
        model = vs.get("model")
        n = response_tokens(next(iter(vs.values())))
        row = {"stage": stage, "vocab": vocab, "length": length, "response_tokens": n,
               "model_bytes": model["peak_bytes"] if model else None, "variants": {}}
        peaks = {name: (r["peak_bytes"], False) for name, r in vs.items()}
        line = fit(series.get((stage, vocab, "before"), []))
        if "before" not in peaks and line and model:
            peaks["before"] = (line[0] * n + line[1], True)
        for name, (peak, extrapolated) in peaks.items():
            above = peak - model["peak_bytes"] if model and name != "model" else None
            row["variants"][name] = {"peak_bytes": peak, "above_model_bytes": above, "bytes_per_token": peak / n,
                                     "above_model_bytes_per_token": above / n if above is not None else None,
                                     "step_s": None if extrapolated else vs[name]["step_s"],
                                     "extrapolated": extrapolated}
        a = row["variants"].get(default_after, {}).get("above_model_bytes")
        b = row["variants"].get("before", {}).get("above_model_bytes")
        t = row["variants"].get("trl", {}).get("above_model_bytes")
        row["before_extrapolated"] = row["variants"].get("before", {}).get("extrapolated", False)
        row["after_over_before"] = a / b if a is not None and b else None
        row["after_over_trl"] = a / t if a is not None and t else None
        row["target_quarter_of_before"] = (a <= 0.25 * b) if a is not None and b is not None else None
        row["target_below_trl"] = (a < t) if a is not None and t is not None else None
        rows.append(row)
    models = {(s, v): fit(pts) for (s, v, name), pts in series.items() if name == "model"}
    for (stage, vocab, name), pts in sorted(series.items()):
        total, m = fit(pts), models.get((stage, vocab))
        slopes.append({"stage": stage, "vocab": vocab, "variant": name, "lengths": len(pts),
                       "slope_bytes_per_token": total[0] if total else None,
                       "above_model_slope_bytes_per_token": total[0] - m[0] if total and m and name != "model" else None})
    return {"rows": rows, "slopes": slopes}


def fmt_bytes(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x / GiB:.2f} GiB" if abs(x) >= GiB else f"{x / MiB:.0f} MiB"


def print_tables(summary: dict, variants: list[str], default_after: str) -> None:
    names = {v: k for k, v in VOCABS.items()}
    shown = [v for v in variants if v != "model"]
    print("\nPeak of one step above the RSS before it (CPU) / allocated before it (CUDA); in brackets: the loss path "
          "above the model's own activations (the `model` case)\n")
    print("| stage | vocab | response tokens | model | " + " | ".join(shown)
          + f" | {default_after} / before | {default_after} / trl | ≤ 0.25× before | < TRL |")
    print("|" + "---|" * (4 + len(shown) + 4))
    for row in summary["rows"]:
        cells = []
        for v in shown:
            x = row["variants"].get(v)
            mark = "*" if x and x["extrapolated"] else ""
            cells.append(f"{mark}{fmt_bytes(x['peak_bytes'])} ({fmt_bytes(x['above_model_bytes'])})" if x else "–")
        ok = lambda b: "–" if b is None else ("pass" if b else "FAIL")  # noqa: E731
        ratio = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
        print(f"| {row['stage']} | {names.get(row['vocab'], row['vocab'])} | {row['response_tokens']:,} | "
              f"{fmt_bytes(row['model_bytes'])} | " + " | ".join(cells)
              + f" | {ratio(row['after_over_before'])} | {ratio(row['after_over_trl'])} | "
              f"{ok(row['target_quarter_of_before'])} | {ok(row['target_below_trl'])} |")
    if any(row["before_extrapolated"] for row in summary["rows"]):
        print("\n* `before` extrapolated (the line through its measured lengths): it was predicted above --max-gib.")
    print("\nBytes per response token (the loss path above the model), per case, and the slope over lengths\n")
    print("| stage | vocab | response tokens | " + " | ".join(shown) + " |")
    print("|" + "---|" * (3 + len(shown)))
    for row in summary["rows"]:
        cells = []
        for v in shown:
            x = row["variants"].get(v)
            per = x and x["above_model_bytes_per_token"]
            mark = "*" if x and x["extrapolated"] else ""
            cells.append(f"{mark}{per / KiB:,.0f} KiB" if per is not None else "–")
        print(f"| {row['stage']} | {names.get(row['vocab'], row['vocab'])} | {row['response_tokens']:,} | "
              + " | ".join(cells) + " |")
    print("\n| stage | vocab | variant | lengths | slope: peak, KiB / token | slope: above model, KiB / token |")
    print("|---|---|---|---|---|---|")
    for s in summary["slopes"]:
        if s["lengths"] < 2:
            continue
        f = lambda x: "–" if x is None else f"{x / KiB:,.1f}"  # noqa: E731
        print(f"| {s['stage']} | {names.get(s['vocab'], s['vocab'])} | {s['variant']} | {s['lengths']} | "
              f"{f(s['slope_bytes_per_token'])} | {f(s['above_model_slope_bytes_per_token'])} |")


def plan_cases(args) -> list[dict]:
    base = {"rows": args.rows, "prompt": args.prompt, "hidden": args.hidden, "layers": args.layers, "heads": args.heads,
            "kv_heads": args.kv_heads, "shape": str(args.shape) if args.shape else None, "dtype": args.dtype,
            "zero": args.zero, "grad_ckpt": not args.no_grad_ckpt, "temperature": 0.6, "kl_coef": 0.001,
            "entropy_coef": 0.001}
    cases = []
    for stage in args.stages.split(","):
        for vocab in args.vocabs.split(","):
            V = VOCABS.get(vocab) or int(vocab)
            lengths = args.lengths if stage == "rl" and vocab == args.vocabs.split(",")[0] else args.other_lengths
            for length in (int(x) for x in lengths.split(",")):
                for variant in args.variants.split(","):
                    cases.append(base | {"stage": stage, "vocab": V, "length": length, "variant": variant})
    return cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default="rl", help="rl, dpo, sft (comma-separated)")
    p.add_argument("--vocabs", default="qwen2.5", help=f"names ({', '.join(VOCABS)}) or sizes, comma-separated")
    p.add_argument("--lengths", default="1024,2048,3072",
                   help="response lengths for rl with the first vocabulary (the slope)")
    p.add_argument("--other-lengths", default="1024", help="response lengths for the other stages and vocabularies")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--rows", type=int, default=1, help="rollouts / pairs / sequences in the micro-batch")
    p.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--shape", type=Path, default=None, help="a model config JSON (bench/configs/); its vocabulary "
                   "is replaced by each of --vocabs")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--zero", type=int, default=2, choices=[0, 1, 2, 3])
    p.add_argument("--no-grad-ckpt", action="store_true", help="the 1-shot recipe checkpoints; this turns it off")
    p.add_argument("--max-gib", type=float, default=9.0,
                   help="skip `before` cases predicted to peak above this (the line through its shorter lengths)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per case")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--report", type=Path, nargs="+", default=None,
                   help="no runs: print the tables of these --json files together (and write --json merged)")
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.case:
        result = run_case(json.loads(args.case))
        print("RESULT " + json.dumps(result), flush=True)
        os._exit(0)  # skip DeepSpeed's teardown

    default_after = "after"
    results: list[dict] = []
    cases = [] if args.report else plan_cases(args)
    for path in args.report or []:
        results += json.loads(path.read_text())["cases"]
    for i, case in enumerate(cases):
        if case["variant"] == "before" and predicted_before(results, case) > args.max_gib * GiB:
            est = predicted_before(results, case)
            print(f"[{i + 1}/{len(cases)}] skip {case['stage']} V={case['vocab']} L={case['length']} before: "
                  f"predicted {est / GiB:.1f} GiB > --max-gib {args.max_gib}", flush=True)
            results.append(case | {"skipped": f"predicted {est / GiB:.1f} GiB > --max-gib {args.max_gib}",
                                   "predicted_bytes": est})
            continue
        r = child(case, args.timeout)
        results.append(r)
        msg = r.get("error") or f"{fmt_bytes(r['peak_bytes'])} in {r['step_s']} s (case {r['wall_s']} s)"
        print(f"[{i + 1}/{len(cases)}] {case['stage']} V={case['vocab']} L={case['length']} {case['variant']}: {msg}",
              flush=True)
    summary = summarize(results, default_after)
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in results)] if args.report else args.variants.split(",")
    print_tables(summary, variants, default_after)
    if args.json:
        out = {"argv": sys.argv, "cases": results, **summary}
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(out, indent=2) + "\n")
        tmp.replace(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
