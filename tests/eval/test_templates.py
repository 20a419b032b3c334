"""Prompt templates: the registry, the rendered prompt text, the R1 <think> prefix, and the fallback
for chat templates without a system role."""

from __future__ import annotations

import pytest

from rlvr.eval.templates import TEMPLATES, build_request, get_template, graded_text, render_prompt

PROBLEM = "What is 2 + 3?"


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from rlvr.models.tiny import build_tokenizer

    return build_tokenizer(512)


class NoSystemTokenizer:
    """A chat template that, like Gemma's, raises on a system message."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        if any(m["role"] == "system" for m in messages):
            raise ValueError("System role not supported")
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"


class ThinkingTokenizer:
    """A chat template whose generation prompt already opens <think> (newer R1-Distill tokenizers)."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|Assistant|><think>\n"


def test_registry():
    assert {"qwen25_math_cot", "chat", "r1_think"} <= set(TEMPLATES)
    for name, template in TEMPLATES.items():
        assert template.name == name
        assert set(template.stop) >= {"</s>", "<|im_end|>", "<|endoftext|>"}
    qwen = TEMPLATES["qwen25_math_cot"]
    assert qwen.system == "Please reason step by step, and put your final answer within \\boxed{}."
    assert qwen.messages(PROBLEM)[1] == {"role": "user", "content": PROBLEM}  # the problem only
    assert TEMPLATES["chat"].messages(PROBLEM) == [{"role": "user", "content": PROBLEM}]
    assert TEMPLATES["r1_think"].assistant_prefix == "<think>\n"
    with pytest.raises(KeyError, match="unknown template 'qwen'"):
        get_template("qwen")


def test_messages_request_without_tokenizer():
    req = build_request(TEMPLATES["qwen25_math_cot"], PROBLEM)
    assert req.messages == [
        {"role": "system", "content": TEMPLATES["qwen25_math_cot"].system},
        {"role": "user", "content": PROBLEM},
    ]
    with pytest.raises(ValueError, match="pass the tokenizer"):
        build_request(TEMPLATES["r1_think"], PROBLEM)


def test_qwen_cot_prompt_on_the_tiny_tokenizer(tiny_tokenizer):
    text = render_prompt(TEMPLATES["qwen25_math_cot"], PROBLEM, tiny_tokenizer)
    assert text == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n"
    )
    req = build_request(TEMPLATES["qwen25_math_cot"], PROBLEM, tiny_tokenizer)
    assert req.prompt == text and req.messages is None


def test_r1_prompt_opens_think(tiny_tokenizer):
    text = render_prompt(TEMPLATES["r1_think"], PROBLEM, tiny_tokenizer)
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    assert f"{PROBLEM} Let's think step by step and output the final answer within \\boxed{{}}." in text
    assert graded_text(TEMPLATES["r1_think"], "5</think> \\boxed{5}") == "<think>\n5</think> \\boxed{5}"
    assert graded_text(TEMPLATES["chat"], "\\boxed{5}") == "\\boxed{5}"


def test_think_prefix_is_not_doubled():
    text = render_prompt(TEMPLATES["r1_think"], PROBLEM, ThinkingTokenizer())
    assert text.endswith("<|Assistant|><think>\n") and text.count("<think>") == 1


def test_system_role_falls_back_to_the_user_turn():
    text = render_prompt(TEMPLATES["qwen25_math_cot"], PROBLEM, NoSystemTokenizer())
    assert text == f"<user>{TEMPLATES['qwen25_math_cot'].system}\n\n{PROBLEM}</user><assistant>"


def test_other_template_errors_are_not_swallowed():
    class Broken:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            raise RuntimeError("no chat template")

    with pytest.raises(RuntimeError, match="no chat template"):
        render_prompt(TEMPLATES["chat"], PROBLEM, Broken())
    with pytest.raises(RuntimeError, match="no chat template"):
        render_prompt(TEMPLATES["qwen25_math_cot"], PROBLEM, Broken())


def test_rendered_prompt_tokenizes_like_the_messages_request(tiny_tokenizer):
    from rlvr.generate.types import render_prompts

    template = TEMPLATES["qwen25_math_cot"]
    as_messages = build_request(template, PROBLEM)
    as_text = build_request(template, PROBLEM, tiny_tokenizer)
    assert render_prompts(tiny_tokenizer, [as_messages]) == render_prompts(tiny_tokenizer, [as_text])
