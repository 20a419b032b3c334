"""Token sequences for causal-LM training (mid-training and SFT): chat formatting, loss masks,
packing, and batching.

An Example holds targets already shifted: `targets[t]` is the token the model must predict at
position t (or -100 for no loss). Packing therefore cannot leak loss across documents: the last
token of a document never has the next document's first token as its target, and position ids
restart at 0 for each document so attention stays within it (transformers builds a block-diagonal
mask from restarting position ids when no attention mask and no KV cache is passed: the forward
must use `use_cache=False`, or the documents silently attend to each other).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    targets: list[int]
    position_ids: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_loss_tokens(self) -> int:
        return sum(t != IGNORE for t in self.targets)


def shift(ids: list[int], loss_mask: list[int]) -> Example:
    """Targets for next-token prediction: position t predicts ids[t+1] when loss_mask[t+1]."""
    targets = [ids[t + 1] if loss_mask[t + 1] else IGNORE for t in range(len(ids) - 1)] + [IGNORE]
    return Example(list(ids), targets, list(range(len(ids))))


def chat_messages(row: dict[str, Any], system_prompt: str | None) -> list[dict[str, str]]:
    if row.get("messages"):
        messages = [dict(m) for m in row["messages"]]
    else:
        messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat-formatted prompt up to the assistant's turn (generation prompt included)."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def sft_example(tokenizer: Any, row: dict[str, Any], system_prompt: str | None = None) -> Example:
    """Prompt -> response with loss on the response tokens only (the final assistant turn, up to and
    including its end-of-turn token)."""
    messages = chat_messages(row, system_prompt)
    if messages[-1]["role"] != "assistant":
        raise ValueError("the last message of an SFT example must be the assistant's response")
    prompt_text = render_prompt(tokenizer, messages[:-1])
    full_text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError(
            "the tokenizer's chat template does not render the prompt as a prefix of the full conversation; "
            "response-only loss masking needs that property"
        )
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = prompt_ids + tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    end = max((i for i, t in enumerate(ids) if t == eos and i >= len(prompt_ids)), default=len(ids) - 1)
    ids = ids[: end + 1]  # drop template whitespace after the end-of-turn token
    mask = [0] * len(prompt_ids) + [1] * (len(ids) - len(prompt_ids))
    return shift(ids, mask)


def document_ids(tokenizer: Any, row: dict[str, Any]) -> list[int]:
    """A mid-training document: `text` if the source has it, else the chat-formatted conversation;
    always ends with the end-of-sequence token so the model sees document ends."""
    if row.get("text"):
        ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"]
    else:
        ids = tokenizer(tokenizer.apply_chat_template(chat_messages(row, None), tokenize=False).rstrip(),
                        add_special_tokens=False)["input_ids"]
    return ids if ids and ids[-1] == tokenizer.eos_token_id else ids + [tokenizer.eos_token_id]


def pack(docs: list[list[int]], seq_len: int, pad_id: int, seed: int) -> list[Example]:
    """Greedy packing of shuffled documents into rows of exactly seq_len tokens. A document longer
    than seq_len is cut into seq_len pieces. Each piece keeps its own position ids (restarting at 0)
    and has no target across its boundary; the tail of the last row is padding with no loss."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    pieces = [docs[i][s:s + seq_len] for i in order for s in range(0, len(docs[i]), seq_len)]
    return pack_examples([shift(p, [1] * len(p)) for p in pieces], seq_len, pad_id)


def pack_examples(examples: list[Example], seq_len: int, pad_id: int) -> list[Example]:
    """Pack whole examples (never split; SFT keeps each response-only mask) into rows of seq_len,
    each example restarting its position ids."""
    rows: list[Example] = []
    cur = Example([], [], [])
    for ex in examples:
        if len(cur) + len(ex) > seq_len:
            rows.append(pad_to(cur, seq_len, pad_id))
            cur = Example([], [], [])
        cur = Example(cur.input_ids + ex.input_ids, cur.targets + ex.targets, cur.position_ids + ex.position_ids)
    if len(cur):
        rows.append(pad_to(cur, seq_len, pad_id))
    return rows


def pad_to(ex: Example, seq_len: int, pad_id: int) -> Example:
    n = seq_len - len(ex)
    return Example(ex.input_ids + [pad_id] * n, ex.targets + [IGNORE] * n, ex.position_ids + list(range(n)))


def collate(examples: list[Example], pad_id: int, packed: bool) -> dict[str, Any]:
    """Tensors for one micro-batch. Packed rows (all seq_len long) carry position ids and no attention
    mask, so attention is block-diagonal per document; unpacked rows are right-padded with a mask."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e)
        ids[i, :n] = torch.tensor(e.input_ids)
        targets[i, :n] = torch.tensor(e.targets)
        pos[i, :n] = torch.tensor(e.position_ids)
        mask[i, :n] = 1
    batch = {"input_ids": ids, "targets": targets, "position_ids": pos}
    if not packed:
        batch["attention_mask"] = mask
    return batch
