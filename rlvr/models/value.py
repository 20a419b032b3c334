"""PPO's value model: a causal LM's trunk (its transformer, without the LM head) and a fresh scalar head.

    values = score(trunk(input_ids).last_hidden_state).squeeze(-1)      [B, L], fp32

The head is `nn.Linear(hidden, 1)` with a bias, initialised normal(0, config.initializer_range), bias 0:
what verl's critic gets (verl/utils/model.py `load_valuehead_model` builds an
`AutoModelForTokenClassification` with num_labels 1 and classifier_dropout 0, whose `score` layer
transformers initialises that way). TRL's `AutoModelForCausalLMWithValueHead` has the same shape (a
`v_head` Linear(hidden, 1) with bias, after a dropout; PyTorch's default init unless
`v_head_init_strategy="normal"`). rlvr writes its own module so that the parameter names are
`model.*` and `score.*`, the layout of transformers' `*ForTokenClassification`: an export
(`save_pretrained`) loads there with num_labels 1, and `load_value_model` reads it back, head included.
No dropout (verl sets classifier_dropout 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rlvr.models.load import DTYPES


class ValueModel(nn.Module):
    """trunk (an AutoModel: hidden states, no LM head) + score (Linear(hidden, 1)). The verbs the training
    backend uses on a model (`config`, `gradient_checkpointing_enable`, `save_pretrained`) delegate to the trunk."""

    def __init__(self, trunk: nn.Module, score: nn.Linear):
        super().__init__()
        self.model = trunk
        self.score = score

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def is_gradient_checkpointing(self) -> bool:
        return bool(getattr(self.model, "is_gradient_checkpointing", False))

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        self.model.gradient_checkpointing_enable(**kwargs)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, position_ids: Tensor | None = None,
                **kwargs: Any) -> Tensor:
        """Values at every position [B, L] (fp32): V(state after token l)."""
        kwargs.pop("logits_to_keep", None)
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            **kwargs).last_hidden_state  # [B, L, H]
        return self.score(hidden).squeeze(-1).float()

    def save_pretrained(self, directory: str | Path, state_dict: dict[str, Tensor] | None = None,
                        safe_serialization: bool = True) -> None:
        """config.json (the trunk's, as `<Arch>ForTokenClassification` with num_labels 1) and model.safetensors."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = state_dict if state_dict is not None else {k: v.detach().cpu() for k, v in self.state_dict().items()}
        config = self.model.config.to_dict()
        config.update(architectures=[token_classification_name(self.model)], num_labels=1, classifier_dropout=0.0,
                      id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
        (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
        save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})


def token_classification_name(trunk: nn.Module) -> str:
    """Qwen2Model -> Qwen2ForTokenClassification (transformers' naming)."""
    name = type(trunk).__name__
    return (name[: -len("Model")] if name.endswith("Model") else name) + "ForTokenClassification"


def fresh_head(hidden_size: int, std: float, dtype: torch.dtype) -> nn.Linear:
    """Linear(hidden, 1): weight normal(0, std), bias 0 (transformers' _init_weights, verl's critic head)."""
    head = nn.Linear(hidden_size, 1, bias=True, dtype=dtype)
    with torch.no_grad():
        head.weight.normal_(0.0, std)
        head.bias.zero_()
    return head


def stored_head(source: Path) -> dict[str, Tensor]:
    """`score.weight` / `score.bias` from a critic export's safetensors, or {} (a causal LM)."""
    from safetensors import safe_open

    found: dict[str, Tensor] = {}
    for f in sorted(source.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in ("score.weight", "score.bias"):
                if key in st.keys():
                    found[key] = st.get_tensor(key)
    return found


def load_value_model(source: str | Path, *, dtype: str = "float32", trust_remote_code: bool = False,
                     seed: int = 0) -> ValueModel:
    """A ValueModel from a causal LM (its trunk, a fresh head drawn from `seed`) or from a critic export
    (trunk and head). Safetensors only."""
    from transformers import AutoModel

    torch_dtype = getattr(torch, DTYPES[dtype])
    trunk = AutoModel.from_pretrained(str(source), dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                      use_safetensors=True)
    config = trunk.config
    hidden = config.get_text_config().hidden_size if hasattr(config, "get_text_config") else config.hidden_size
    with torch.random.fork_rng(devices=[]):  # the head's draw leaves the run's RNG stream alone
        torch.manual_seed(seed)
        head = fresh_head(hidden, float(getattr(config, "initializer_range", 0.02)), torch_dtype)
    stored = stored_head(Path(source)) if Path(source).is_dir() else {}
    if stored:
        with torch.no_grad():
            head.weight.copy_(stored["score.weight"])
            head.bias.copy_(stored["score.bias"])
    return ValueModel(trunk, head)
