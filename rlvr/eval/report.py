"""`rlvr report DIR`: report.md, scores.csv and plots/*.png for an eval directory or a run directory.

DIR is either
- an eval output directory (`rlvr eval`): DIR/scores.json; or
- a run directory (`rlvr run`): DIR/summary.json, DIR/metrics.jsonl, and for each `eval` stage its
  scores.json (summary entry's `output`, else DIR/stages/<name>/eval/). The eval stages' rows are
  merged into one table, in stage order.

What is written (all under DIR):
- report.md: checkpoints x benchmarks, avg@k in percent +- one standard error over problems; the
  6-benchmark average (1-shot RLVR's "Avg.") when a checkpoint has all six; under it how every column
  was made (grader policy, template, temperature, top_p, k, max tokens, seed) and the per-cell details
  (pass@k, maj@k, 95% interval); for runs the stage table and training curves; and what is absent.
- scores.csv: one row per scores.json row (fractions in [0, 1], as in scores.json) plus one row per
  6-benchmark average; with several graders an `avg@k[<grader>]` column per grader.
- with several graders (scores.json `disagreements`): a "Grader disagreements" section, per
  checkpoint x benchmark x setting the completions the graders disagree on, with examples.
- plots/score_vs_step.png (checkpoints with steps), plots/scores_by_stage.png (run) or
  plots/scores_by_checkpoint.png (eval dir), plots/training_<stage>.png (metrics.jsonl).

A column is one (benchmark, template, temperature, top_p, k, max tokens, seed, grader): a benchmark
scored under two settings gets two columns, labelled by what differs. The 6-benchmark average takes
each benchmark's first column (sweep order). Its +- is sqrt(sum of the six stderr^2) / 6
(independent benchmarks).

Matplotlib (Agg, no pyplot) is imported only inside the plotting functions, so importing this module
stays cheap.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.eval.benchmarks import choices_notes
from rlvr.eval.scores import SIX_BENCHMARKS, Z95, benchmark_average

SETTING_FIELDS = ("template", "temperature", "top_p", "k", "max_tokens", "seed", "grader")
SHORT = {"template": "{}", "temperature": "T={}", "top_p": "top_p={}", "k": "k={}", "max_tokens": "len={}",
         "seed": "seed={}", "grader": "{}"}
SCORE_FIELDS = ("n_problems", "avg@k", "pass@k", "maj@k", "stderr", "ci95_low", "ci95_high")
CSV_FIELDS = ("source", "checkpoint", "path", "stage", "step", "benchmark", *SETTING_FIELDS, *SCORE_FIELDS,
              "primary", "disagree")
AVERAGE = "six_benchmark_average"

# Training-curve panels: metric key -> (panel title, y is a fraction, band key (+-)).
CURVES = {
    "reward/mean": ("reward (mean; band = std over rollouts)", False, "reward/std"),
    "accuracy": ("accuracy", True, None),
    "val/accuracy": ("validation accuracy (held-out, mean avg@k)", True, None),
    "entropy": ("entropy (nats/token)", False, None),
    "kl": ("KL to reference", False, None),
    "response/length_mean": ("response length (tokens, mean)", False, None),
    "loss": ("loss", False, None),
    "margin": ("DPO margin (chosen - rejected)", False, None),
}
STAGE_CURVES = {
    "rlvr": ("reward/mean", "accuracy", "val/accuracy", "entropy", "kl", "response/length_mean"),
    "dpo": ("loss", "accuracy", "margin"),
    "midtrain": ("loss",),
    "sft": ("loss",),
}


class ReportError(Exception):
    """DIR cannot be reported on (not a run or eval directory, unreadable files). CLI exit 2."""


# ------------------------------------------------------------------------------------- inputs
@dataclass
class Inputs:
    kind: str                                   # "eval" | "run"
    root: Path
    name: str
    rows: list[dict] = field(default_factory=list)          # scores rows + "source" (eval stage or "")
    checkpoints: list[tuple[str, str]] = field(default_factory=list)  # (source, label) in order
    verifiers: dict[str, dict] = field(default_factory=dict)          # source -> VerifierConfig dump
    protocols: dict[str, str] = field(default_factory=dict)           # source -> protocol name
    choice_notes: dict[str, str] = field(default_factory=dict)        # benchmark -> how options were shown
    stages: list[dict] = field(default_factory=list)        # summary.json stages (run)
    metrics: list[dict] = field(default_factory=list)       # metrics.jsonl records (run)
    absent: list[str] = field(default_factory=list)         # what is missing, in words
    disagreements: list[dict] = field(default_factory=list)  # scores.json `disagreements` + "source"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"cannot read {path}: {err}") from None


def load_inputs(directory: Path) -> Inputs:
    root = Path(directory)
    if not root.is_dir():
        raise ReportError(f"{root}: no such directory (expected an eval output directory with scores.json "
                          "or a run directory with summary.json)")
    if (root / "summary.json").is_file():
        return _load_run(root)
    if (root / "scores.json").is_file():
        inputs = Inputs(kind="eval", root=root, name=root.name)
        _add_scores(inputs, root / "scores.json", source="")
        return inputs
    raise ReportError(f"{root} is neither an eval output directory (expected {root}/scores.json, written by "
                      f"`rlvr eval`) nor a run directory (expected {root}/summary.json, written by `rlvr run`)")


def _add_scores(inputs: Inputs, path: Path, source: str) -> None:
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ReportError(f"{path}: not a scores file (expected a JSON object with a `rows` list)")
    if inputs.kind == "eval":
        inputs.name = doc.get("name") or inputs.name
    inputs.verifiers[source] = doc.get("verifier") or {}
    inputs.protocols[source] = doc.get("protocol") or ""
    inputs.choice_notes.update(choices_notes(path.parent / "spec.yaml"))  # the sweep's resolved specs
    order = [c.get("label") for c in doc.get("checkpoints") or []]
    order += [r.get("checkpoint") for r in doc["rows"]]
    for label in dict.fromkeys(x for x in order if x is not None):
        inputs.checkpoints.append((source, label))
    inputs.rows += [{**r, "source": source} for r in doc["rows"]]
    inputs.disagreements += [{**d, "source": source} for d in doc.get("disagreements") or []]
    if not doc["rows"]:
        inputs.absent.append(f"{path} has no score rows.")


def _load_run(root: Path) -> Inputs:
    summary = _read_json(root / "summary.json")
    inputs = Inputs(kind="run", root=root, name=root.name, stages=list(summary.get("stages") or []))
    evals = [s for s in inputs.stages if s.get("type") == "eval"]
    for stage in evals:
        path = _eval_dir(root, stage) / "scores.json"
        if path.is_file():
            _add_scores(inputs, path, source=stage["name"])
        else:
            inputs.absent.append(f"Eval stage `{stage['name']}` (status {stage.get('status', '?')}) has no "
                                 f"scores.json at {path}.")
    if not evals:
        names = ", ".join(f"{s.get('name')} ({s.get('type')})" for s in inputs.stages) or "none"
        inputs.absent.append(f"No eval stage in this run (stages: {names}), so no score table: add an `eval` "
                             "stage to the recipe, or run `rlvr eval` on this run directory and report on its "
                             "output.")
    inputs.metrics = _read_metrics(root / "metrics.jsonl", inputs.absent)
    return inputs


def _eval_dir(root: Path, stage: dict) -> Path:
    output = stage.get("output")
    if output and (Path(output) / "scores.json").is_file():
        return Path(output)
    return root / "stages" / stage["name"] / "eval"


def _read_metrics(path: Path, absent: list[str]) -> list[dict]:
    """metrics.jsonl records; on a resumed run the last record of a (stage, step) wins."""
    if not path.is_file():
        absent.append(f"No metrics.jsonl in {path.parent}, so no training curves.")
        return []
    latest: dict[tuple[str, int], dict] = {}
    bad = 0
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            latest[(str(rec["stage"]), int(rec["step"]))] = rec
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            bad += bool(line.strip())
    if bad:
        absent.append(f"{bad} unreadable line(s) in {path} were skipped (a run killed mid-write?).")
    return list(latest.values())


# ------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Column:
    benchmark: str
    setting: tuple                  # values of SETTING_FIELDS
    label: str

    @property
    def settings(self) -> dict[str, Any]:
        return dict(zip(SETTING_FIELDS, self.setting, strict=True))


@dataclass
class Table:
    checkpoints: list[tuple[str, str]]
    columns: list[Column]
    cells: dict[tuple[tuple[str, str], Column], dict]  # (checkpoint, column) -> scores row
    average_columns: list[Column] | None                # the six columns the average uses, if any checkpoint has all

    def best(self) -> tuple[str, str] | None:
        """The checkpoint with the highest 6-benchmark average (the first of equals), when two or more
        have one: 1-shot RLVR reports that checkpoint (P1 App. B.5)."""
        averaged = [(avg[0], -i, ck) for i, ck in enumerate(self.checkpoints) if (avg := self.average(ck))]
        return max(averaged)[2] if len(averaged) > 1 else None

    def average(self, ckpt: tuple[str, str]) -> tuple[float, float] | None:
        """(6-benchmark average, its stderr) of a checkpoint, or None."""
        if not self.average_columns:
            return None
        rows = [self.cells.get((ckpt, c)) for c in self.average_columns]
        pairs = zip(self.average_columns, rows, strict=True)
        value = benchmark_average({c.benchmark: (r or {}).get("avg@k") for c, r in pairs})
        if value is None:
            return None
        return value, math.sqrt(sum(float(r.get("stderr") or 0.0) ** 2 for r in rows)) / len(rows)


def build_table(inputs: Inputs) -> Table:
    keys: dict[tuple[str, tuple], None] = {}
    for r in inputs.rows:
        keys[(r["benchmark"], tuple(r.get(f) for f in SETTING_FIELDS))] = None
    columns = [Column(b, s, _column_label(b, s, [k[1] for k in keys if k[0] == b])) for b, s in keys]
    by_key = {(c.benchmark, c.setting): c for c in columns}
    cells = {((r["source"], r["checkpoint"]), by_key[(r["benchmark"], tuple(r.get(f) for f in SETTING_FIELDS))]): r
             for r in inputs.rows}
    first = {}
    for c in columns:
        first.setdefault(c.benchmark, c)
    average_columns = [first[b] for b in SIX_BENCHMARKS] if all(b in first for b in SIX_BENCHMARKS) else None
    table = Table(list(inputs.checkpoints), columns, cells, average_columns)
    if average_columns and not any(table.average(ck) for ck in table.checkpoints):
        table.average_columns = None
    return table


def _column_label(benchmark: str, setting: tuple, siblings: list[tuple]) -> str:
    if len(siblings) < 2:
        return benchmark
    differ = [i for i, f in enumerate(SETTING_FIELDS) if len({s[i] for s in siblings}) > 1]
    return benchmark + " (" + ", ".join(SHORT[SETTING_FIELDS[i]].format(_num(setting[i])) for i in differ) + ")"


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}"


def _ckpt_name(table: Table, ckpt: tuple[str, str]) -> str:
    source, label = ckpt
    return f"{source}: {label}" if source and source != label else label


# ------------------------------------------------------------------------------------ report.md
def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(map(esc, r)) + " |" for r in rows]


def _scores_section(inputs: Inputs, table: Table) -> list[str]:
    if not table.columns:
        return ["## Scores", "", "No scores to show (see *Absent or omitted* below).", ""]
    first = "eval stage: checkpoint" if inputs.kind == "run" else "checkpoint"
    steps = any(r.get("step") is not None for r in inputs.rows)
    header = [first, *(["step"] if steps else []), *(c.label for c in table.columns)]
    if table.average_columns:
        header.append("6-benchmark avg")
    rows = []
    best = table.best()
    for ck in table.checkpoints:
        cells = [table.cells.get((ck, c)) for c in table.columns]
        step = next((r.get("step") for r in cells if r and r.get("step") is not None), None)
        line = [_ckpt_name(table, ck) + (" (best avg)" if ck == best else ""), *([_num(step)] if steps else [])]
        line += [f"{_pct(r['avg@k'])} ± {_pct(r.get('stderr'))}" if r else "-" for r in cells]
        if table.average_columns:
            avg = table.average(ck)
            line.append(f"**{_pct(avg[0])} ± {_pct(avg[1])}**" if avg else "-")
        rows.append(line)
    out = ["## Scores", "", "avg@k in percent ± one standard error over problems (avg@k = mean accuracy over "
           "the k samples of each problem; with k = 1 it is plain accuracy).", ""]
    out += _md_table(header, rows) + [""]
    if table.average_columns:
        cols = ", ".join(c.label for c in table.average_columns)
        out += [f"6-benchmark avg: unweighted mean of {cols} (1-shot RLVR's \"Avg.\"); its ± is "
                "sqrt(sum of the six squared standard errors) / 6.", ""]
        if best is not None:
            out += [f"(best avg) marks {_ckpt_name(table, best)}, the checkpoint with the highest 6-benchmark average, "
                    "which is the checkpoint 1-shot RLVR reports (App. B.5). Choosing it looks at the test sets "
                    "themselves, so its scores are optimistic estimates of a checkpoint chosen in advance; compare "
                    "the last checkpoint's too, or choose on held-out data.", ""]
    else:
        have = sorted({c.benchmark for c in table.columns} & set(SIX_BENCHMARKS))
        out += [f"No 6-benchmark average: it needs all of {', '.join(SIX_BENCHMARKS)} for one checkpoint "
                f"(present: {', '.join(have) or 'none'}).", ""]
    return out + _settings_section(inputs, table) + _details_section(table)


def _settings_section(inputs: Inputs, table: Table) -> list[str]:
    header = ["column", "benchmark", "grader", "template", "temperature", "top_p", "k", "max tokens", "seed",
              "problems"]
    rows = []
    for c in table.columns:
        s = c.settings
        n = sorted({r.get("n_problems") for (_, col), r in table.cells.items() if col == c} - {None})
        rows.append([c.label, c.benchmark, _num(s["grader"]), _num(s["template"]), _num(s["temperature"]),
                     _num(s["top_p"]), _num(s["k"]), _num(s["max_tokens"]), _num(s["seed"]),
                     "/".join(map(str, n)) or "-"])
    out = ["### How each column was made", ""] + _md_table(header, rows) + [""]
    for source, verifier in inputs.verifiers.items():
        where = f"eval stage `{source}`" if source else "this sweep"
        protocol = inputs.protocols.get(source)
        out.append(f"- Grader for {where}{f' (protocol `{protocol}`)' if protocol else ''}: rlvr.verify with "
                   f"`{json.dumps(verifier, sort_keys=True)}`; a column's grader is its policy.")
    shown = {c.benchmark for c in table.columns}
    out += [f"- {note}" for name, note in inputs.choice_notes.items() if name in shown]
    return out + [""]


def _details_section(table: Table) -> list[str]:
    header = ["checkpoint", "column", "problems", "k", "avg@k", "95% CI", "pass@k", "maj@k"]
    rows = []
    for ck in table.checkpoints:
        for c in table.columns:
            r = table.cells.get((ck, c))
            if r:
                rows.append([_ckpt_name(table, ck), c.label, _num(r.get("n_problems")), _num(r.get("k")),
                             _pct(r.get("avg@k")), f"{_pct(r.get('ci95_low'))}–{_pct(r.get('ci95_high'))}",
                             _pct(r.get("pass@k")), _pct(r.get("maj@k"))])
    intro = ("Percent. 95% CI = avg@k ± 1.96 standard errors, clipped to [0, 100]; pass@k is the unbiased "
             "estimator over all samples; maj@k is the majority vote of the first k samples' answers.")
    return ["### Details", "", intro, ""] + _md_table(header, rows) + [""]


def _stages_section(inputs: Inputs) -> list[str]:
    rows = []
    for s in inputs.stages:
        m = {k: v for k, v in (s.get("metrics") or {}).items() if k != "seconds"}
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items())
        rows.append([s.get("name", "?"), s.get("type", "?"), s.get("status", "?"), _num(s.get("steps")),
                     shown or "-", _num((s.get("metrics") or {}).get("seconds"))])
    return (["## Stages", "", "From summary.json, in run order.", ""]
            + _md_table(["stage", "type", "status", "steps", "metrics", "seconds"], rows) + [""])


def render_markdown(inputs: Inputs, table: Table, plots: list[tuple[str, str]]) -> str:
    kind = "eval output directory (scores.json)" if inputs.kind == "eval" else "run directory (summary.json)"
    out = [f"# Report: {inputs.name}", "", f"Source: {kind} `{inputs.root}`. Scores in scores.csv "
           "(fractions in [0, 1]); plots in plots/.", ""]
    if inputs.kind == "run":
        out += _stages_section(inputs)
    out += _scores_section(inputs, table)
    out += _disagreements_section(inputs)
    if plots:
        out += ["## Plots", ""]
        for title, rel in plots:
            out += [f"### {title}", "", f"![{title}]({rel})", ""]
    if inputs.absent:
        out += ["## Absent or omitted", ""] + [f"- {a}" for a in inputs.absent] + [""]
    return "\n".join(out)


def _disagreements_section(inputs: Inputs) -> list[str]:
    """With several graders: per checkpoint x benchmark x setting, the completions the graders disagree
    on, each grader's correct count, and the examples scores.json wrote out."""
    if not inputs.disagreements:
        return []
    graders = list(dict.fromkeys(g for d in inputs.disagreements for g in d["graders"]))
    header = ["checkpoint", "benchmark", "setting", "completions", "graders disagree",
              *(f"correct: {g}" for g in graders)]
    rows = [[_ckpt_name(None, (d["source"], d["checkpoint"])), d["benchmark"], d["setting"], str(d["completions"]),
             str(d["disagree"]), *(_num(d["correct"].get(g)) for g in graders)] for d in inputs.disagreements]
    out = ["## Grader disagreements", "", "Every completion judged by each grader (the score columns above are "
           "one per grader); a disagreement is a completion that not all graders score the same.", ""]
    out += _md_table(header, rows) + [""]
    examples = [(d, e) for d in inputs.disagreements for e in d.get("examples") or []]
    if examples:
        out += ["### Example disagreements", ""]
    for d, e in examples:
        verdicts = "; ".join(f"{g}: {'correct' if v.get('correct') else 'wrong'} ({v.get('reason')}, answer "
                             f"`{v.get('answer')}`)" for g, v in e["verdicts"].items())
        tail = e["completion_tail"].replace("```", "` ` `")
        out += [f"- {d['checkpoint']} / {d['benchmark']} / {d['setting']}, problem `{e['id']}` sample {e['sample']}, "
                f"gold `{e['gold']}`, finish {e['finish_reason']}: {verdicts}. Completion ends:", "",
                "  ```", *(f"  {line}" for line in tail.splitlines() or [""]), "  ```", ""]
    return out


# ------------------------------------------------------------------------------------ scores.csv
def render_csv(inputs: Inputs, table: Table) -> str:
    """scores.csv: one row per scores.json row (its `grader` column names the grader) and, with several
    graders, one `avg@k[<grader>]` column per grader holding every grader's avg@k of the same
    checkpoint x benchmark x setting x seed on each of its rows."""
    graders = list(dict.fromkeys(r.get("grader") for r in inputs.rows if "primary" in r and r.get("grader")))
    wide = [f"avg@k[{g}]" for g in graders] if len(graders) > 1 else []
    by_cell: dict[tuple, dict[str, Any]] = {}
    for r in inputs.rows:
        cell = (r["source"], r["checkpoint"], r["benchmark"], *(r.get(f) for f in SETTING_FIELDS if f != "grader"))
        by_cell.setdefault(cell, {})[f"avg@k[{r.get('grader')}]"] = r.get("avg@k")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*CSV_FIELDS, *wide], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in inputs.rows:
        cell = (r["source"], r["checkpoint"], r["benchmark"], *(r.get(f) for f in SETTING_FIELDS if f != "grader"))
        row = {**{k: by_cell[cell].get(k, "") for k in wide}, **r}
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in [*CSV_FIELDS, *wide]})
    for ck in table.checkpoints:
        avg = table.average(ck)
        if avg is None:
            continue
        rows = [table.cells[(ck, c)] for c in table.average_columns]
        any_row = rows[0]
        writer.writerow({"source": ck[0], "checkpoint": ck[1], "path": any_row.get("path", ""),
                         "stage": any_row.get("stage") or "", "step": _blank(any_row.get("step")),
                         "benchmark": AVERAGE, "n_problems": sum(int(r.get("n_problems") or 0) for r in rows),
                         "avg@k": avg[0], "stderr": avg[1], "ci95_low": max(0.0, avg[0] - Z95 * avg[1]),
                         "ci95_high": min(1.0, avg[0] + Z95 * avg[1])})
    return buf.getvalue()


def _blank(value: Any) -> Any:
    return "" if value is None else value


# ------------------------------------------------------------------------------------ plots
def _figure(n_panels: int, ncols: int = 3, width: float = 4.6, height: float = 3.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(2 if n_panels == 4 else ncols, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _percent_axis(ax, top: float, lines: bool = True) -> None:
    """y in percent from 0 (a little below for lines, so points at 0% stay visible) to above `top`."""
    from matplotlib.ticker import FuncFormatter

    upper = max(5.0, min(100.0, top * 1.15 + 1.0))
    ax.set_ylim(-0.03 * upper if lines else 0.0, upper * (1.02 if lines and upper >= 100 else 1.0))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}%"))
    ax.grid(axis="y", alpha=0.3)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _series(table: Table) -> list[tuple[str, Column | None]]:
    """Panels for score plots: one per column, plus the 6-benchmark average."""
    panels: list[tuple[str, Column | None]] = [(c.label, c) for c in table.columns]
    if table.average_columns:
        panels.append(("6-benchmark avg", None))
    return panels


def _value(table: Table, ck: tuple[str, str], col: Column | None) -> tuple[float, float, float] | None:
    """(value, 95% low, 95% high) in percent, or None."""
    if col is None:
        avg = table.average(ck)
        if avg is None:
            return None
        return 100 * avg[0], 100 * max(0.0, avg[0] - Z95 * avg[1]), 100 * min(1.0, avg[0] + Z95 * avg[1])
    r = table.cells.get((ck, col))
    if r is None:
        return None
    v = float(r["avg@k"])
    lo, hi = r.get("ci95_low"), r.get("ci95_high")
    return 100 * v, 100 * float(v if lo is None else lo), 100 * float(v if hi is None else hi)


def _run_of(path: Any) -> str:
    """The run directory a checkpoint lies in (RUN/stages/<name>/..., RUN/base_model); '' if none."""
    if not path:
        return ""
    parts = Path(str(path)).parts
    if parts[-1] == "base_model":
        return str(Path(*parts[:-1]))
    if "stages" in parts[:-1]:
        return str(Path(*parts[: len(parts) - 1 - parts[::-1].index("stages")]))
    return ""


def _stepped(inputs: Inputs, table: Table) -> dict[str, list[tuple[int, str, tuple[str, str]]]]:
    """Checkpoints with a step, per run directory: run -> [(step, stage, checkpoint)] by step.

    Steps of checkpoints from one run are the run's global step (rlvr.eval.spec), so one line per run."""
    groups: dict[str, dict[tuple[str, str], tuple[int, str]]] = {}
    for r in inputs.rows:
        if r.get("step") is not None:
            stage = r.get("stage") or ("base" if int(r["step"]) == 0 else "checkpoint")
            groups.setdefault(_run_of(r.get("path")), {})[(r["source"], r["checkpoint"])] = (int(r["step"]), stage)
    return {run: sorted((step, stage, ck) for ck, (step, stage) in cks.items()) for run, cks in groups.items()}


def plot_score_vs_step(inputs: Inputs, table: Table, path: Path) -> bool:
    """One panel per column: avg@k vs checkpoint step, a line per run directory with its 95% CI band;
    with one run, the markers are coloured by the stage that made the checkpoint."""
    groups = _stepped(inputs, table)
    if not any(len(v) >= 2 for v in groups.values()):
        return False
    stages = list(dict.fromkeys(stage for pts in groups.values() for _, stage, _ in pts))
    by_stage = len(groups) == 1 and len(stages) > 1
    steps = sorted({step for pts in groups.values() for step, _, _ in pts})
    panels = _series(table)
    fig, axes = _figure(len(panels))
    for ax, (title, col) in zip(axes, panels, strict=True):
        top = 0.0
        for g, (run, points) in enumerate(groups.items()):
            pts = [(step, stage, v) for step, stage, ck in points if (v := _value(table, ck, col)) is not None]
            if not pts:
                continue
            xs, color = [p[0] for p in pts], "0.45" if by_stage else f"C{g}"
            ax.plot(xs, [p[2][0] for p in pts], color=color, marker=None if by_stage else "o",
                    label=None if by_stage else (Path(run).name or "checkpoints"))
            ax.fill_between(xs, [p[2][1] for p in pts], [p[2][2] for p in pts], alpha=0.15, color=color)
            top = max(top, *(p[2][2] for p in pts))
            if by_stage:
                for stage in stages:
                    mine = [p for p in pts if p[1] == stage]
                    ax.scatter([p[0] for p in mine], [p[2][0] for p in mine], s=30, zorder=3,
                               color=f"C{stages.index(stage)}", label=stage if mine else None)
        ax.set_title(title + "\n" + _sampling(col), fontsize="medium")
        ax.set_xlabel("checkpoint step" + (" (global over the run's stages)" if any(groups) else ""))
        ax.set_ylabel("mean avg@k" if col is None else f"avg@{_num(col.settings['k'])}")
        _percent_axis(ax, top)
        _step_ticks(ax, steps)
        if (by_stage or len(groups) > 1) and ax is axes[0]:  # one legend: the colours mean the same everywhere
            ax.legend(fontsize="small", title="stage" if by_stage else "run", title_fontsize="small")
    fig.suptitle(f"{inputs.name}: score vs checkpoint step (band = 95% CI)")
    _save(fig, path)
    return True


def _step_ticks(ax, steps: list[int]) -> None:
    """Ticks at the checkpoints' steps when there are few and they do not crowd; else integer ticks."""
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    if len(steps) <= 8 and gaps and min(gaps) >= (steps[-1] - steps[0]) / 12:
        ax.set_xticks(steps)
    else:
        _integer_x(ax)


def _sampling(col: Column | None) -> str:
    """A panel subtitle: how the column was sampled."""
    if col is None:
        return "unweighted mean of the six"
    s = col.settings
    greedy = s["temperature"] in (0, 0.0)
    how = "greedy" if greedy else f"T={_num(s['temperature'])}, top_p={_num(s['top_p'])}"
    return f"avg@{_num(s['k'])}, {how}, {_num(s['max_tokens'])} tok"


def _integer_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))


def plot_bars(inputs: Inputs, table: Table, path: Path) -> bool:
    """Grouped bars: x = checkpoints (eval stages in order for a run), one bar per column, 95% CI whiskers."""
    import textwrap

    panels = _series(table)
    if not table.checkpoints or not panels:
        return False
    n_ck, n_bar = len(table.checkpoints), len(panels)
    width = 0.8 / n_bar
    fig, (ax,) = _figure(1, width=min(20.0, max(6.5, 0.55 * n_ck * n_bar + 2.5)), height=4.6)
    top = 0.0
    annotate = n_ck * n_bar <= 30
    for j, (title, col) in enumerate(panels):
        xs, ys, err_lo, err_hi = [], [], [], []
        for i, ck in enumerate(table.checkpoints):
            v = _value(table, ck, col)
            if v is not None:
                xs.append(i + (j - (n_bar - 1) / 2) * width)
                ys.append(v[0])
                err_lo.append(v[0] - v[1])
                err_hi.append(v[2] - v[0])
                top = max(top, v[2])
        hatch = "//" if col is None else None
        ax.bar(xs, ys, width * 0.95, yerr=[err_lo, err_hi], capsize=3, label=title, hatch=hatch,
               edgecolor="black" if col is None else None, linewidth=0.6, error_kw={"linewidth": 1.0})
        if annotate:  # the value just above its whisker, so the two never overlap
            for x, y, hi in zip(xs, ys, err_hi, strict=True):
                ax.annotate(f"{y:.1f}", (x, y + hi), xytext=(0, 2), textcoords="offset points", ha="center",
                            va="bottom", fontsize=7)
    names = [textwrap.fill(_ckpt_name(table, ck), 18) for ck in table.checkpoints]
    ax.set_xticks(range(n_ck), names, rotation=0 if n_ck <= 4 else 25, ha="center" if n_ck <= 4 else "right")
    ax.set_ylabel("avg@k")
    _percent_axis(ax, top * 1.05, lines=False)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), title="benchmark")
    what = "eval stage (run order)" if inputs.kind == "run" else "checkpoint"
    ax.set_title(f"{inputs.name}: avg@k per {what}\nwhiskers = 95% CI", fontsize="medium")
    _save(fig, path)
    return True


def _ema(values: list[float], weight: float) -> list[float]:
    out, acc = [], None
    for v in values:
        if math.isfinite(v):
            acc = v if acc is None else weight * acc + (1 - weight) * v
        out.append(acc if acc is not None else float("nan"))
    return out


def _float(value: Any) -> float:
    try:
        return float(value)  # "nan"/"inf" strings come back as floats
    except (TypeError, ValueError):
        return float("nan")


def _curve_keys(stage: str, kind: str | None, records: list[dict], notes: list[str]) -> list[str]:
    """The metrics to draw for a stage: its type's list (all known curves for an unknown type), those
    with a finite value; a metric that is 0 at every step (e.g. kl without a KL term) is noted, not drawn."""
    keys = []
    for key in STAGE_CURVES.get(kind or "", tuple(CURVES)):
        values = [v for r in records if key in r and math.isfinite(v := _float(r[key]))]
        if values and all(v == 0 for v in values):
            notes.append(f"Stage `{stage}`: `{key}` is 0 at every logged step; no panel drawn.")
        elif values:
            keys.append(key)
    return keys


def _curve(ax, records: list[dict], key: str, weight: float) -> None:
    title, fraction, band = CURVES[key]
    scale = 100.0 if fraction else 1.0
    pts = [(int(r["step"]), _float(r.get(key)) * scale, _float(r.get(band)) * scale if band else 0.0)
           for r in records]
    pts = [p for p in pts if math.isfinite(p[1])]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if any(math.isfinite(p[2]) and p[2] > 0 for p in pts):
        ax.fill_between(xs, [p[1] - p[2] for p in pts], [p[1] + p[2] for p in pts], alpha=0.15, color="C0")
    if 0 < weight < 1 and len(xs) > 2:
        ax.plot(xs, ys, color="C0", alpha=0.3, linewidth=0.8, label="raw")
        ax.plot(xs, _ema(ys, weight), color="C0", linewidth=1.6, label=f"EMA {weight:g}")
        ax.legend(fontsize="small")
    else:
        ax.plot(xs, ys, color="C0", marker="o" if len(xs) <= 30 else None, markersize=3.5)
    ax.set_title(title)
    ax.set_xlabel("step")
    if fraction:
        _percent_axis(ax, max(ys))
    ax.grid(alpha=0.3)
    _integer_x(ax)


def plot_training(stage: str, kind: str | None, records: list[dict], path: Path, smooth: float | None,
                  notes: list[str]) -> bool:
    """One panel per logged metric of one stage (x = step); raw line, EMA over it when smoothing."""
    records = sorted(records, key=lambda r: r["step"])
    keys = _curve_keys(stage, kind, records, notes)
    if not keys:
        return False
    weight = (0.8 if len(records) >= 50 else 0.0) if smooth is None else smooth
    fig, axes = _figure(len(keys), width=4.4 if len(keys) > 1 else 5.6, height=3.2 if len(keys) > 1 else 3.6)
    for ax, key in zip(axes, keys, strict=True):
        _curve(ax, records, key, weight)
        if key == "accuracy" and kind == "dpo":
            ax.set_title("pair accuracy (chosen > rejected)")
    fig.suptitle(f"training curves: stage {stage}" + (f" ({kind})" if kind else "") + f", {len(records)} steps")
    _save(fig, path)
    return True


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "stage"


def write_plots(inputs: Inputs, table: Table, smooth: float | None) -> list[tuple[str, str]]:
    """Write plots/*.png; returns (title, path relative to DIR) of each written plot."""
    plots_dir = inputs.root / "plots"
    done: list[tuple[str, str]] = []
    if table.columns:
        if plot_score_vs_step(inputs, table, plots_dir / "score_vs_step.png"):
            done.append(("Score vs checkpoint step", "plots/score_vs_step.png"))
        name = "scores_by_stage.png" if inputs.kind == "run" else "scores_by_checkpoint.png"
        if plot_bars(inputs, table, plots_dir / name):
            done.append(("Scores per eval stage" if inputs.kind == "run" else "Scores per checkpoint",
                         f"plots/{name}"))
    types = {s.get("name"): s.get("type") for s in inputs.stages}
    order = [s.get("name") for s in inputs.stages]
    by_stage: dict[str, list[dict]] = {}
    for rec in inputs.metrics:
        by_stage.setdefault(str(rec["stage"]), []).append(rec)
    for stage in sorted(by_stage, key=lambda s: (order.index(s) if s in order else len(order), s)):
        if types.get(stage) == "eval":
            continue  # its numbers are the score table
        rel = f"plots/training_{_slug(stage)}.png"
        if plot_training(stage, types.get(stage), by_stage[stage], inputs.root / rel, smooth, inputs.absent):
            done.append((f"Training: {stage}", rel))
        else:
            inputs.absent.append(f"Stage `{stage}` logged no plottable metric ({', '.join(CURVES)}).")
    for s in inputs.stages:
        if s.get("type") != "eval" and s.get("name") not in by_stage and inputs.metrics:
            inputs.absent.append(f"Stage `{s.get('name')}` ({s.get('status')}) has no records in metrics.jsonl.")
    return done


# ------------------------------------------------------------------------------------ entry point
def write_report(directory: Path, smooth: float | None = None) -> Path:
    """Write DIR/report.md, DIR/scores.csv and DIR/plots/*.png; return the report.md path.

    smooth: EMA weight for training curves (0 = raw; None = 0.8 for stages with >= 50 logged steps).
    Raises ReportError when DIR is neither an eval output directory nor a run directory.
    """
    if smooth is not None and not 0 <= smooth < 1:
        raise ReportError(f"smooth must be in [0, 1), got {smooth}")
    inputs = load_inputs(Path(directory))
    table = build_table(inputs)
    plots = write_plots(inputs, table, smooth)
    (inputs.root / "scores.csv").write_text(render_csv(inputs, table))
    report = inputs.root / "report.md"
    report.write_text(render_markdown(inputs, table, plots))
    return report
