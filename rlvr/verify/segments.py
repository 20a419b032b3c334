"""Which part of a completion the reward grades: all of it, or only what follows a delimiter.

1-shot RLVR's released reward for reasoning models (verl/utils/reward_score/deepscaler.py,
``compute_score(..., use_think=True)``, reached for R1-Distill through ``_default_compute_score``)
grades only the text after ``</think>``: ``solution.split("</think>")[1]``, i.e. from the FIRST
delimiter up to a second one if the model wrote two; without the delimiter the reward is 0. The
delimiter is looked for in the completion only: the released code also required ``<think>``
somewhere in prompt + response, which R1-Distill's chat template always puts in the prompt.
"""

from __future__ import annotations


def graded_part(completion: str, after: str | None) -> str:
    """The text the verifier judges: `completion` itself when `after` is None, else the text between
    the first `after` and the next one (the end of the completion when there is no second one), or ""
    (nothing to grade, so never correct) when `after` does not occur.

    >>> graded_part("<think>so \\\\boxed{13}</think> It is \\\\boxed{12.8}.", "</think>")
    ' It is \\\\boxed{12.8}.'
    >>> graded_part("<think>still thinking, \\\\boxed{12.8}", "</think>")
    ''
    """
    if after is None:
        return completion
    parts = completion.split(after)
    return parts[1] if len(parts) > 1 else ""
