"""Mid-training: causal-LM loss on long chain-of-thought text, packed to fixed-length sequences.

Objective as implemented: mean next-token NLL over every token of every document (a document is
the source's `text` field, or the chat-formatted conversation when there is none), with documents
packed greedily into `seq_len` rows. Packing never mixes documents: position ids restart per
document (transformers then masks attention block-diagonally) and no target crosses a document
boundary. Phi-4-Mini-Reasoning's distillation mid-training (recipes-reference.md §B.3): 16K packed
sequences, lr 1e-5, 5 epochs, 10% warm-up; see recipes/phi4_mini_reasoning.yaml.

Launch: `rlvr run RECIPE` (one process) or `torchrun --nproc_per_node N -m rlvr run RECIPE`.
"""

from __future__ import annotations

from rlvr.data.lm import document_ids, pack, shift
from rlvr.data.sources import LM_DEFAULT_NEEDS, LM_NEEDS, load_rows
from rlvr.stages.causal_lm import train_causal_lm
from rlvr.stages.context import StageContext, StageResult


def build_examples(ctx: StageContext, tokenizer):
    cfg = ctx.cfg
    rows = load_rows(cfg.data, needs=LM_NEEDS.get(cfg.data.preset, LM_DEFAULT_NEEDS), run=ctx.run)
    docs = [document_ids(tokenizer, row) for row in rows]
    if cfg.packing:
        return pack(docs, cfg.seq_len, tokenizer.pad_token_id, seed=ctx.recipe.seed)
    # unpacked: one document per row, cut at seq_len
    return [shift(d[: cfg.seq_len], [1] * len(d[: cfg.seq_len])) for d in docs]


def main(ctx: StageContext) -> StageResult:
    tokenizer, model = ctx.load_policy()
    examples = build_examples(ctx, tokenizer)
    return train_causal_lm(ctx, tokenizer, model, examples, packed=ctx.cfg.packing)
