"""The same Generator interface on transformers models: for installs without vLLM and for debugging.
Batched (left padding, KV cache), seeded, with the same log-prob definition as vLLM's
"processed_logprobs": log_softmax of the scores after temperature, top-k and top-p. Llama-family
models decode through rlvr's own loop (`hf_decode.decode`), others through transformers `generate`."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

import torch

from rlvr.generate.config import GenerationConfig
from rlvr.generate.hf_decode import decode, unsupported_reason
from rlvr.generate.types import (
    Completion,
    Request,
    Sampling,
    StaleWeightsError,
    render_prompts,
    request_seed,
    throughput,
)
from rlvr.world import World


class HFGenerator:
    def __init__(self, config: GenerationConfig, model_path: str, world: World, *, dtype: str, seed: int):
        from rlvr.models.load import load_model, load_tokenizer

        self.config, self.world = config, world
        self.tokenizer = load_tokenizer(model_path)
        self.model = load_model(model_path, dtype=dtype).to(world.device).eval()
        # why rlvr's own decode loop cannot run this model (None: it runs, unless hf_fast_decode is off)
        self.fast_decode_refused = unsupported_reason(self.model)
        self.fast_decode = config.hf_fast_decode and self.fast_decode_refused is None
        if config.hf_fast_decode and self.fast_decode_refused and world.is_main:
            print(f"[generate] hf backend uses transformers generate: rlvr's decode loop does not support "
                  f"{self.fast_decode_refused}", flush=True)
        self._rng = random.Random(seed + world.rank)
        self.dp_rank, self.dp_size = world.rank, world.world_size  # one engine per rank
        self.max_model_len = config.max_model_len
        self.last_stats: dict[str, float] = {}
        self.shares_weights = False
        self._shared_from: torch.nn.Module | None = None

    def share_weights(self, module: torch.nn.Module) -> bool:
        """Make this generator's parameters (and persistent buffers) the very tensors of `module`, the
        trainer's model: every optimizer step (an in-place update) is visible at once, so no weight sync
        is needed and the weights are held once, as in TRL. The generator keeps its own module object
        (eval mode, outside the DeepSpeed engine: generating through the wrapped module measured 25-33 %
        slower per decode step on the tiny model).
        Only when `module` holds full parameters of the same dtype on the same device (not ZeRO-3, whose
        parameters are partitioned); returns False, keeping the copy, otherwise."""
        mine, theirs = self._tensors(self.model), self._tensors(module)
        if (set(mine) != set(theirs) or any(hasattr(t, "ds_id") for t in theirs.values())
                or any((mine[k].dtype, mine[k].device, mine[k].shape) != (t.dtype, t.device, t.shape)
                       for k, t in theirs.items())):
            return False
        for name, tensor in theirs.items():
            mine[name].data = tensor.data
        self._shared_from = module
        self.shares_weights = True
        return True

    @staticmethod
    def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        persistent = set(module.state_dict().keys())
        out = dict(module.named_parameters())
        out.update((n, b) for n, b in module.named_buffers() if n in persistent)
        return out

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _gen_config(self, s: Sampling):
        from transformers import GenerationConfig as HFGenConfig

        eos = [self.tokenizer.eos_token_id, *s.stop_token_ids]
        greedy = s.temperature <= 0
        # Every processor is set explicitly: values left None are filled from the model's own
        # generation_config (e.g. top_k=50, repetition_penalty), which vLLM would not apply. A processor
        # whose mere presence costs time (min_p and min_new_tokens are applied whenever they are not
        # None, even at a no-op 0: ~0.5 ms per decode step for a tiny model) is left None unless the
        # model's own config would fill in a value.
        own = self.model.generation_config
        return HFGenConfig(
            do_sample=not greedy,
            temperature=1.0 if greedy else s.temperature,
            top_p=1.0 if greedy else s.top_p,
            top_k=0 if greedy or s.top_k <= 0 else s.top_k,
            min_p=None if getattr(own, "min_p", None) is None else 0.0,
            typical_p=1.0,
            epsilon_cutoff=0.0,
            eta_cutoff=0.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            max_new_tokens=s.max_tokens,
            min_length=0,
            min_new_tokens=None if getattr(own, "min_new_tokens", None) is None else 0,
            eos_token_id=eos,
            pad_token_id=self.tokenizer.pad_token_id,
            stop_strings=list(s.stop) or None,
            output_scores=s.logprobs,
            return_dict_in_generate=True,
            use_cache=True,
        )

    @torch.no_grad()
    def _batch(self, prompts: list[list[int]], s: Sampling, seed: int) -> list[Completion]:
        pad = self.tokenizer.pad_token_id
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        stop_ids = {self.tokenizer.eos_token_id, *s.stop_token_ids}
        if self.fast_decode:  # stop strings are cut afterwards by _completion, as for generate's rows
            generator = torch.Generator(device=self.device).manual_seed(seed)
            new_ids, lp = decode(self.model, ids, mask, max_new_tokens=s.max_tokens, temperature=s.temperature,
                                 top_k=s.top_k, top_p=s.top_p, stop_ids=stop_ids, pad_id=pad, generator=generator)
            lps = lp.tolist() if s.logprobs else [None] * len(prompts)
            return [self._completion(prompt, toks, s, row_lp, stop_ids)
                    for prompt, toks, row_lp in zip(prompts, new_ids.tolist(), lps, strict=True)]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=self._gen_config(s),
                                      tokenizer=self.tokenizer if s.stop else None)
        new_ids = out.sequences[:, width:]
        lps = [None] * len(prompts)
        if s.logprobs:  # one log_softmax over [B, S, V] and a gather, not one per token
            scores = torch.stack(out.scores, dim=1).float()
            lps = torch.log_softmax(scores, dim=-1).gather(-1, new_ids[..., None])[..., 0].tolist()
        return [self._completion(prompt, toks, s, lp, stop_ids)
                for prompt, toks, lp in zip(prompts, new_ids.tolist(), lps, strict=True)]

    def _completion(self, prompt: list[int], toks: list[int], s: Sampling, lps: list[float] | None,
                    stop_ids: set[int]) -> Completion:
        """Cut a padded row like vLLM does: after the first stop id (kept in the ids, not in the text), or
        after the token that completes a stop string (text cut before the string). `lps`: the row's
        processed log-prob of every generated position (None without Sampling.logprobs)."""
        end = next((i + 1 for i, t in enumerate(toks) if t in stop_ids), None)
        toks = toks[:end] if end is not None else toks
        text_ids = toks[:-1] if end is not None else toks
        text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
        hits = [text.find(x) for x in s.stop if x in text]
        if hits:
            cut = min(hits)
            # the shortest token prefix whose text reaches past the stop string's start
            lo, hi = 1, len(text_ids)
            while lo < hi:
                mid = (lo + hi) // 2
                if any(x in self.tokenizer.decode(text_ids[:mid], skip_special_tokens=True) for x in s.stop):
                    hi = mid
                else:
                    lo = mid + 1
            toks, text, end = text_ids[:lo], text[:cut], lo
        reason = "stop" if end is not None else "length"
        if reason == "length":
            text = text.rstrip("\ufffd")  # vLLM holds back an incomplete trailing UTF-8 character too
        return Completion(prompt, toks, text, lps[:len(toks)] if lps is not None else None, reason)

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        from tqdm.auto import tqdm

        prompts = render_prompts(self.tokenizer, requests)
        flat = [p for p in prompts for _ in range(sampling.n)]
        base = sampling.seed if sampling.seed is not None else self._rng.randrange(2**31)
        start = time.perf_counter()
        comps: list[Completion] = []
        size = self.config.hf_batch_size
        chunks = range(0, len(flat), size)
        bar = tqdm(chunks, desc="generate (hf)", disable=not (self.config.use_tqdm and self.world.is_main))
        for k, i in enumerate(bar):
            comps += self._batch(flat[i:i + size], sampling, request_seed(base, self.world.rank, k))
        seconds = time.perf_counter() - start
        n_out = sum(len(c.completion_ids) for c in comps)
        self.last_stats = throughput(sum(map(len, flat)), n_out, seconds, len(flat))
        self.last_stats["gen/fast_decode"] = float(self.fast_decode)
        return [comps[i * sampling.n:(i + 1) * sampling.n] for i in range(len(prompts))]

    @torch.no_grad()
    def score(self, sequences: list[list[int]]) -> list[list[float]]:
        out = []
        for seq in sequences:
            ids = torch.tensor([seq], device=self.device)
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0, :-1].float(), -1)
            out.append(logp.gather(-1, ids[0, 1:, None])[:, 0].tolist())
        return out

    @torch.no_grad()
    def sync_weights(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> float:
        """Copy the streamed tensors into the model in place. After `share_weights` nothing is copied (the
        iterator is not consumed): it checks instead that every tensor is still the trainer's own
        storage, and raises StaleWeightsError if the trainer replaced one (then the generator would
        sample from stale weights)."""
        start = time.perf_counter()
        if self.shares_weights:
            mine, theirs = self._tensors(self.model), self._tensors(self._shared_from)
            moved = [k for k, t in theirs.items() if mine[k].data_ptr() != t.data_ptr()]
            if moved:
                raise StaleWeightsError(f"the HF generator no longer shares the trainer's tensors {moved[:5]}: the "
                                        "trainer replaced them (not an in-place update); rollouts would use stale weights")
            return time.perf_counter() - start
        state = self.model.state_dict()
        missing = []
        for name, tensor in named_params:
            if name in state:
                state[name].copy_(tensor)
            else:
                missing.append(name)
        if missing:
            raise KeyError(f"sync_weights: the HF generator's model has no parameters named {missing[:5]}")
        return time.perf_counter() - start

    def sleep(self) -> None:
        """No-op: the HF generator's weights stay resident."""

    def wake(self) -> None:
        """No-op."""

    def close(self) -> None:
        self.model = self._shared_from = None
