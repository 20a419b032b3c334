"""Prompt templates for evaluation, in one explicit dict (TEMPLATES).

A template says what the system turn holds, how the problem fills the user turn, what text the
assistant turn starts with, and where generation stops. The model's own chat template (from its
tokenizer) turns the messages into text.

- qwen25_math_cot: Qwen2.5-Math's `qwen25-math-cot` evaluation prompt, used by 1-shot RLVR's
  evaluation: system "Please reason step by step, and put your final answer within \\boxed{}.",
  user = the problem only (recipes-reference §A.5).
- chat: no system turn, user = the problem: the model's chat template as it is (the toy task's
  problems carry their own instruction).
- r1_think: R1-style reasoning models. The user turn is the problem plus DeepScaleR's instruction
  (the evaluation prompt of 1-shot RLVR's R1-Distill runs, §A.5/§A.7), and the assistant turn starts
  with "<think>\\n" (what DeepSeek recommends to force the thinking phase). If the tokenizer's chat
  template already ends its generation prompt with "<think>" (newer R1-Distill tokenizers), it is
  not added twice. What the model "said", for grading, is assistant_prefix + the completion.

Multiple-choice benchmarks write their lettered options into the problem text before a template
sees it, in a layout from CHOICE_FORMATS (a benchmark spec's `choices_format`):

- answer_choices: the question, then "Answer Choices: (A) ... (B) ..." on one line: the layout of
  Qwen2.5-Math's evaluation harness for its multiple-choice sets (mmlu_stem, sat_math, aqua in
  `parse_question` of One-Shot-RLVR's Qwen2.5-Eval/evaluation/parser.py), the harness 1-shot RLVR
  evaluates with; its released code has no ARC entry, so this is CHOSEN for ARC.
- simple_evals: openai/simple-evals' multiple-choice query (its GPQA eval): an instruction to think
  step by step and end with a line "Answer: $LETTER", the question, then one "A) ..." line per option.

Stop strings are 1-shot RLVR's evaluation stops (§A.5): </s>, <|im_end|>, <|endoftext|>.

System turns: a chat template that rejects a system role (some do, with an exception) gets the
system text as the first paragraph of the user turn instead. The tiny test model's ChatML template
accepts a system role, so nothing changes there.

This module imports nothing heavy; the tokenizer is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlvr.generate.types import Request
from rlvr.verify.multiple_choice import LETTERS

STOP = ("</s>", "<|im_end|>", "<|endoftext|>")
QWEN_COT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
DEEPSCALER_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."


@dataclass(frozen=True)
class Template:
    name: str
    system: str | None
    """System turn text, or None for no system turn."""
    user: str
    """User turn; `{problem}` is replaced by the problem text."""
    assistant_prefix: str = ""
    """Text the assistant turn starts with (R1: "<think>\\n"); part of the graded output."""
    stop: tuple[str, ...] = STOP
    """Stop strings, passed to the generator's Sampling.stop."""

    def messages(self, problem: str) -> list[dict[str, str]]:
        user = self.user.replace("{problem}", problem)
        head = [{"role": "system", "content": self.system}] if self.system is not None else []
        return [*head, {"role": "user", "content": user}]


TEMPLATES: dict[str, Template] = {
    "qwen25_math_cot": Template(name="qwen25_math_cot", system=QWEN_COT_SYSTEM, user="{problem}"),
    "chat": Template(name="chat", system=None, user="{problem}"),
    "r1_think": Template(
        name="r1_think", system=None, user="{problem}" + DEEPSCALER_SUFFIX, assistant_prefix="<think>\n"
    ),
}


def answer_choices(question: str, options: list[str]) -> str:
    """Qwen2.5-Math eval's layout: the question, then one line "Answer Choices: (A) x (B) y ..."."""
    shown = " ".join(f"({LETTERS[i]}) {o.strip()}" for i, o in enumerate(options))
    return f"{question.strip()}\nAnswer Choices: {shown}"


def simple_evals(question: str, options: list[str]) -> str:
    """simple-evals' multiple-choice query: instruction, question, then "A) x" lines."""
    letters = LETTERS[: len(options)]
    head = (
        "Answer the following multiple choice question. The last line of your response should be of "
        f"the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of {letters}. "
        "Think step by step before answering."
    )
    shown = "\n".join(f"{LETTERS[i]}) {o.strip()}" for i, o in enumerate(options))
    return f"{head}\n\n{question.strip()}\n\n{shown}"


CHOICE_FORMATS = {"answer_choices": answer_choices, "simple_evals": simple_evals}


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise KeyError(f"unknown template {name!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def build_request(template: Template, problem: str, tokenizer: Any = None) -> Request:
    """The generation request for one problem.

    Without a tokenizer this is a chat `messages` request, rendered by the generator (only for
    templates with no assistant_prefix). With a tokenizer the prompt text is rendered here, which is
    needed for an assistant_prefix and gives the system-role fallback described above.
    """
    if tokenizer is None:
        if template.assistant_prefix:
            raise ValueError(
                f"template {template.name!r} starts the assistant turn with "
                f"{template.assistant_prefix!r}: pass the tokenizer to build_request"
            )
        return Request(messages=template.messages(problem))
    return Request(prompt=render_prompt(template, problem, tokenizer))


def render_prompt(template: Template, problem: str, tokenizer: Any) -> str:
    """Prompt text: the tokenizer's chat template with the generation prompt, then assistant_prefix."""
    messages = template.messages(problem)
    try:
        text = _apply(tokenizer, messages)
    except Exception as err:  # a template that rejects the system role raises from jinja
        if messages[0]["role"] != "system":
            raise
        merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
        try:
            text = _apply(tokenizer, merged)
        except Exception:
            raise err from None
    prefix = template.assistant_prefix
    if prefix and text.rstrip().endswith(prefix.strip()):
        return text  # the chat template opened the prefix itself (e.g. R1-Distill's "<think>\n")
    return text + prefix


def _apply(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def graded_text(template: Template, completion: str) -> str:
    """What the model said, for the verifier: the assistant prefix the prompt forced, plus the completion."""
    return template.assistant_prefix + completion
