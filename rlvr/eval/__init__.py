"""Evaluation: benchmark registry, prompt templates, protocols, sweeps, scores and reports.

Modules (docs/evaluation.md): benchmarks (specs in data/benchmarks/), templates, protocols, scores,
spec/sweep/cache (running a sweep), report. Importing this package imports nothing; the modules
benchmarks, templates, protocols, scores, spec and report import no torch or vLLM.
"""
