"""The 1-shot RLVR recipes for the paper's other base models (recipes/one_shot_{qwen7b,llama3b,r1distill}.yaml):
each renders its training prompt with that model's real chat template, stops on that model's end token, and
the R1-Distill recipe grades only the text after </think> as the released reward did.

The tokenizers are built here (no hub access): a small byte-level BPE carrying each model's special tokens,
its BOS/EOS settings and its chat-template string from tests/fixtures/chat_templates/ (sources in the
README there).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rlvr.config import load_recipe
from rlvr.generate.types import Completion
from rlvr.stages.rlvr import RolloutSource, build_prompts, generate_round
from rlvr.verify import Verifier
from rlvr.verify.segments import graded_part

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "tests" / "fixtures" / "chat_templates"
PROBLEM = (
    "The pressure \\( P \\) exerted by wind on a sail varies jointly as the area \\( A \\) of the sail and the cube "
    "of the wind's velocity \\( V \\). When the velocity is \\( 8 \\) miles per hour, the pressure on a sail of "
    "\\( 2 \\) square feet is \\( 4 \\) pounds. Find the wind velocity when the pressure on \\( 4 \\) square feet "
    "of sail is \\( 32 \\) pounds."
)
USER = PROBLEM + " Let's think step by step and output the final answer within \\boxed{}."

# Each model's tokenizer as its tokenizer_config.json sets it up: the special tokens its template uses, which
# tokens are BOS/EOS, whether encoding adds a BOS, and <think>/</think> as plain added tokens (R1-Distill's are
# not special, so decoding a completion keeps them).
MODELS = {
    "Qwen/Qwen2.5-Math-7B": dict(
        template="qwen2_5_math.jinja", special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos=None, eos="<|endoftext|>", adds_bos=False, plain=[],
    ),
    "meta-llama/Llama-3.2-3B-Instruct": dict(
        template="llama3_2_instruct.jinja",
        special=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        bos="<|begin_of_text|>", eos="<|eot_id|>", adds_bos=True, plain=[],
    ),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": dict(
        template="r1_distill_qwen.jinja",
        special=["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"],
        bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>", adds_bos=True, plain=["<think>", "</think>"],
    ),
}
RECIPES = {
    "one_shot_qwen7b.yaml": "Qwen/Qwen2.5-Math-7B",
    "one_shot_llama3b.yaml": "meta-llama/Llama-3.2-3B-Instruct",
    "one_shot_r1distill.yaml": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
}


def model_tokenizer(model: str):
    """A byte-level BPE with `model`'s special tokens, BOS/EOS and real chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = MODELS[model]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=spec["special"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([USER, "Cutting Knowledge Date: December 2023", "Please reason step by step"], trainer)
    tok.add_tokens(spec["plain"])
    if spec["adds_bos"]:  # Llama 3 and R1-Distill tokenizers prepend BOS when asked for special tokens
        bos = spec["bos"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=spec["bos"], eos_token=spec["eos"],
        chat_template=(TEMPLATES / spec["template"]).read_text(encoding="utf-8"),
    )


def expected_prompt(model: str, date: str) -> str:
    """The rendered first training prompt, written out from each model's documented chat format."""
    if model.startswith("Qwen/"):
        return ("<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
                f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n")
    if model.startswith("meta-llama/"):
        return ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                f"Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n<|eot_id|>"
                f"<|start_header_id|>user<|end_header_id|>\n\n{USER}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
    return f"<｜begin▁of▁sentence｜><｜User｜>{USER}<｜Assistant｜><think>\n"


class OneRank:
    rank, world_size = 0, 1

    def print0(self, *args, **kwargs):
        pass


class RecordingEngine:
    """Returns the given completion texts for each request and records the sampling settings."""

    def __init__(self, tokenizer, texts: list[str]):
        self.tokenizer, self.texts, self.sampling = tokenizer, texts, None

    def generate(self, requests, sampling):
        self.sampling = sampling
        out = []
        for r in requests:
            out.append([Completion(prompt_ids=list(r.prompt_ids), completion_ids=self.tokenizer(t, add_special_tokens=False)["input_ids"],
                                   text=t, logprobs=None, finish_reason="stop") for t in self.texts])
        return out


def stage(recipe: str):
    loaded = load_recipe(REPO / "recipes" / recipe)
    return loaded, loaded.stages[0]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_renders_its_models_chat_template(recipe):
    loaded, cfg = stage(recipe)
    model = RECIPES[recipe]
    assert loaded.model.name == model
    tok = model_tokenizer(model)
    before = time.strftime("%d %b %Y")
    ids = build_prompts(cfg, OneRank(), tok)[0]["ids"]
    texts = {expected_prompt(model, d) for d in (before, time.strftime("%d %b %Y"))}  # a run across midnight
    assert tok.decode(ids) in texts
    assert any(ids == tok(t, add_special_tokens=False)["input_ids"] for t in texts)
    bos = MODELS[model]["bos"]
    if bos is None:
        assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    else:  # the template writes the BOS; the stage must not add the tokenizer's second one
        assert tok(USER)["input_ids"][0] == tok.bos_token_id  # this tokenizer would add one if asked
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_stops_on_its_models_end_token(recipe):
    loaded, cfg = stage(recipe)
    model = RECIPES[recipe]
    tok = model_tokenizer(model)
    cfg = cfg.model_copy(update={"prompts_per_step": 1, "rollouts_per_prompt": 1})
    prompts = build_prompts(cfg, OneRank(), tok)
    engine = RecordingEngine(tok, ["\\boxed{12.8}"])
    with Verifier(loaded.verifier) as verifier:
        src = RolloutSource(cfg, OneRank(), engine, verifier, prompts, orders=(None, None), seed=0,
                            eos_id=tok.eos_token_id)  # what the stage's main passes
        generate_round(src, [0], 0, 0, 0.6)
    assert engine.sampling.stop_token_ids == [tok.convert_tokens_to_ids(MODELS[model]["eos"])]
    assert engine.sampling.max_tokens == (8192 if "R1" in model else 3072)
    turn = tok.apply_chat_template([{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}],
                                   tokenize=False)
    # Llama and R1-Distill end the assistant turn with the EOS the stage stops on; Qwen2.5-Math (a base
    # model) ends it with <|im_end|> while its EOS is <|endoftext|>, as in the released runs (the eval stops on both).
    end = {"Qwen": "<|im_end|>\n", "meta": "<|eot_id|>", "deep": "<｜end▁of▁sentence｜>"}[model[:4]]
    assert turn.endswith(end)


# (completion, what the released deepscaler.compute_score gives with use_think=True, i.e. R1-Distill's reward:
#  1 iff the text after the FIRST </think> holds the right last \boxed{}; 0 without </think>)
THINK_CASES = [
    ("Let me see... maybe \\boxed{13}?</think>\n\nSo the velocity is \\boxed{12.8}.", True),
    ("So V^3 = 2048 and V = \\boxed{12.8}.</think>\n\nThe answer is \\boxed{13}.", False),
    ("So V^3 = 2048 and V = \\boxed{12.8}, let me double-check", False),  # no </think>: cut off mid-thought
    ("It is \\boxed{12.8}.</think>\n\nNo final statement.", False),
    ("Hm.</think> Answer: \\boxed{12.8} </think> wait, \\boxed{13}", True),  # the first </think> counts
]


@pytest.mark.parametrize("completion,released", THINK_CASES)
def test_r1distill_reward_grades_only_after_think_as_released(completion, released):
    loaded, cfg = stage("one_shot_r1distill.yaml")
    assert cfg.reward.grade_after == "</think>"
    tok = model_tokenizer(RECIPES["one_shot_r1distill.yaml"])
    cfg = cfg.model_copy(update={"prompts_per_step": 1, "rollouts_per_prompt": 1})
    prompts = build_prompts(cfg, OneRank(), tok)
    with Verifier(loaded.verifier) as verifier:
        src = RolloutSource(cfg, OneRank(), RecordingEngine(tok, [completion]), verifier, prompts,
                            orders=(None, None), seed=0, eos_id=tok.eos_token_id)
        (rollout,), _ = generate_round(src, [0], 0, 0, 0.6)
    assert rollout.correct is released
    assert rollout.reward == (cfg.reward.correct if released else cfg.reward.incorrect)


def test_without_grade_after_an_unclosed_think_is_graded_whole():
    """The option is what makes case 3 score 0: without it (the Qwen/Llama recipes, and use_think=False) the
    box written while thinking counts, as deepscaler.compute_score(use_think=False) counts the last box."""
    loaded, cfg = stage("one_shot_r1distill.yaml")
    tok = model_tokenizer(RECIPES["one_shot_r1distill.yaml"])
    cfg = cfg.model_copy(update={"prompts_per_step": 1, "rollouts_per_prompt": 1,
                                 "reward": cfg.reward.model_copy(update={"grade_after": None})})
    prompts = build_prompts(cfg, OneRank(), tok)
    with Verifier(loaded.verifier) as verifier:
        src = RolloutSource(cfg, OneRank(), RecordingEngine(tok, [THINK_CASES[2][0]]), verifier, prompts,
                            orders=(None, None), seed=0, eos_id=tok.eos_token_id)
        (rollout,), _ = generate_round(src, [0], 0, 0, 0.6)
    assert rollout.correct


def test_graded_part():
    assert graded_part("a</think>b", None) == "a</think>b"
    assert graded_part("a</think>b", "</think>") == "b"
    assert graded_part("a</think>b</think>c", "</think>") == "b"
    assert graded_part("no delimiter", "</think>") == ""
    assert graded_part("</think>", "</think>") == ""


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_only_r1distill_grades_after_think(recipe):
    _, cfg = stage(recipe)
    assert cfg.reward.grade_after == ("</think>" if "r1" in recipe else None)


def test_empty_grade_after_is_a_recipe_error():
    from rlvr.config import load_recipe_data, validate_recipe
    from rlvr.schema import ConfigError

    data = load_recipe_data(REPO / "recipes" / "one_shot_r1distill.yaml")
    data["stages"][0]["reward"]["grade_after"] = ""
    with pytest.raises(ConfigError, match="grade_after"):
        validate_recipe(data)
