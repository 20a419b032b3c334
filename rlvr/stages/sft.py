"""Supervised fine-tuning: chat-formatted prompt -> response, loss on the response tokens only.

Objective as implemented: mean NLL over the assistant response tokens (through its end-of-turn
token) of the global batch; prompt and template tokens carry no loss. Packing is off by default, as in
Phi-4-Mini-Reasoning's SFT ("so the model learns when to stop"); when on, examples are packed
like mid-training documents, each keeping its own response-only mask. Examples longer than
`max_len` are dropped and counted, never cut (a cut response would teach the model to stop early).

Launch: `rlvr run RECIPE` (one process) or `torchrun --nproc_per_node N -m rlvr run RECIPE`.
"""

from __future__ import annotations

from rlvr.data.lm import Example, pack_examples, sft_example
from rlvr.data.sources import LM_DEFAULT_NEEDS, LM_NEEDS, load_rows
from rlvr.schema import UserError
from rlvr.stages.causal_lm import train_causal_lm
from rlvr.stages.context import StageContext, StageResult


def build_examples(ctx: StageContext, tokenizer) -> list[Example]:
    cfg = ctx.cfg
    examples = [sft_example(tokenizer, row, cfg.system_prompt) for row in load_rows(cfg.data, needs=LM_NEEDS.get(cfg.data.preset, LM_DEFAULT_NEEDS), run=ctx.run)]
    kept = [e for e in examples if len(e) <= cfg.max_len]
    if len(kept) < len(examples):
        ctx.world.print0(f"[{cfg.name}] dropped {len(examples) - len(kept)} of {len(examples)} examples "
                         f"longer than max_len={cfg.max_len}")
    if not kept:
        raise UserError(f"stage {cfg.name}: no example fits max_len={cfg.max_len}")
    if cfg.packing:
        kept = pack_examples(kept, cfg.max_len, tokenizer.pad_token_id)
    return kept


def main(ctx: StageContext) -> StageResult:
    tokenizer, model = ctx.load_policy()
    examples = build_examples(ctx, tokenizer)
    return train_causal_lm(ctx, tokenizer, model, examples, packed=ctx.cfg.packing)
