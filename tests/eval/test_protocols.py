"""Protocol presets resolve to the papers' settings, take user overrides, and reject bad input."""

from __future__ import annotations

import re

import pytest

from rlvr.config import ConfigError
from rlvr.eval.benchmarks import SIX_BENCHMARKS, benchmark_names
from rlvr.eval.protocols import PROTOCOLS, EvalSetting, protocol_settings
from rlvr.eval.templates import TEMPLATES


def test_one_shot_rlvr_is_the_papers_protocol():
    s = protocol_settings("one_shot_rlvr")
    assert tuple(s) == SIX_BENCHMARKS
    for name in ("math500", "minerva", "olympiadbench"):
        assert s[name] == EvalSetting(
            template="qwen25_math_cot", temperature=0.0, top_p=1.0, k=1, max_tokens=3072
        )
    for name in ("aime24", "aime25", "amc23"):
        assert s[name] == EvalSetting(
            template="qwen25_math_cot", temperature=0.6, top_p=1.0, k=8, max_tokens=3072
        )


def test_r1_distill_and_toy():
    s = protocol_settings("r1_distill")
    assert (s["math500"].k, s["aime24"].k, s["amc23"].k) == (16, 64, 64)
    assert {(x.template, x.temperature, x.top_p, x.max_tokens) for x in s.values()} == {
        ("r1_think", 0.6, 0.95, 32768)
    }
    assert protocol_settings("toy") == {
        "toy": EvalSetting(template="chat", temperature=0, k=1, max_tokens=96)
    }


def test_phi4_settings_are_marked_chosen():
    assert "CHOSEN" in PROTOCOLS["phi4_mini_reasoning"]["description"]
    assert set(protocol_settings("phi4_mini_reasoning")) == {"aime24", "math500", "gpqa_diamond"}


def test_every_protocol_is_well_formed():
    for name, preset in PROTOCOLS.items():
        assert set(preset) - {"extra"} == {"description", "defaults", "benchmarks"} and preset["description"]
        assert set(preset["benchmarks"]) | set(preset.get("extra", {})) <= set(benchmark_names()), name
        assert not set(preset["benchmarks"]) & set(preset.get("extra", {})), name
        assert all(s.template in TEMPLATES for s in protocol_settings(name).values())


def test_overrides_for_all_and_for_one_benchmark():
    s = protocol_settings(
        "one_shot_rlvr", ["math500", "aime24", "toy"], {"max_tokens": 512, "aime24": {"k": 4}}
    )
    assert list(s) == ["math500", "aime24", "toy"]
    assert s["math500"].max_tokens == s["aime24"].max_tokens == s["toy"].max_tokens == 512
    assert (s["aime24"].k, s["aime24"].temperature) == (4, 0.6)
    assert s["toy"] == EvalSetting(
        template="qwen25_math_cot", max_tokens=512
    )  # not in the protocol: its defaults
    s = protocol_settings("one_shot_rlvr", overrides={"temperature": 1.0})
    assert s["math500"].temperature == s["aime24"].temperature == 1.0


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown protocol 'one_shot'; known: one_shot_rlvr"):
        protocol_settings("one_shot")
    with pytest.raises(ConfigError) as err:
        protocol_settings("toy", overrides={"temprature": 0.5, "top_p": 0, "template": "nope"})
    text = str(err.value)
    assert "temprature: unknown setting" in text
    assert "toy.top_p: must be > 0" in text
    with pytest.raises(ConfigError, match="toy.template: unknown template 'nope'"):
        protocol_settings("toy", overrides={"template": "nope"})
    with pytest.raises(ConfigError, match="aime24.k: 8 samples at temperature 0"):
        protocol_settings("one_shot_rlvr", overrides={"temperature": 0})
    with pytest.raises(ConfigError, match="math500: overrides for a benchmark that is not evaluated"):
        protocol_settings("toy", overrides={"math500": {"k": 2}})


def test_setting_key_is_stable_and_filesystem_safe():
    s = EvalSetting(template="qwen25_math_cot", temperature=0.6, top_p=1.0, k=8, max_tokens=3072)
    assert s.key(0) == "qwen25_math_cot-T0.6-p1-k8-len3072-seed0"
    assert (
        EvalSetting(template="chat", temperature=0, top_p=0.95, max_tokens=96).key(3)
        == "chat-T0-p0.95-k1-len96-seed3"
    )
    for name in PROTOCOLS:
        for setting in protocol_settings(name).values():
            assert re.fullmatch(r"[A-Za-z0-9_.-]+", setting.key(1234))
