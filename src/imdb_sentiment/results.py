"""What a run measured, as types: the figures training and evaluation produce, which the report,
the export's info and the model card read. metrics.json is their dump (`Results.to_dict`), and
`Results.from_dict` reads it back, from this version or the one before (same keys).
docs/training.md has one table of its fields."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import UserError


class Record:
    """A dataclass that dumps to plain JSON data (fields that are None or empty left out) and
    loads back from it, nested records and dicts and lists of them included."""

    def to_dict(self) -> dict:
        return _dump(self)

    @classmethod
    def from_dict(cls, d: dict):
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _load(hints[k], v) for k, v in d.items() if k in known})


def _dump(value):
    if isinstance(value, Record):
        return {
            f.name: _dump(v)
            for f in dataclasses.fields(value)
            if (v := getattr(value, f.name)) is not None
            and not (isinstance(v, (dict, list)) and not v)
        }
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


def _load(hint, value):
    """`value` (JSON data) as the type `hint` names: records, dict[str, X], list[X], X | None."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _load(next(a for a in args if a is not type(None)), value)
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value)
    if origin is dict:
        return {k: _load(args[1], v) for k, v in value.items()}
    if origin is list:
        return [_load(args[0], v) for v in value]
    return value


@dataclass
class SplitScores(Record):
    """A labelled split scored (evaluate.evaluate): accuracy with its 95% Wilson interval and
    the usual measures; `parts`: each part of the model alone (its log-odds >= 0)."""

    n: int
    accuracy: float
    accuracy_95ci: list[float]
    precision: float
    recall: float
    f1: float
    roc_auc: float
    ece: float
    confusion_matrix: dict[str, int]
    threshold: float = 0.5
    parts: dict[str, float] | None = None


@dataclass
class Blend(Record):
    """log-odds = lstm * LSTM + bag * bag + bias, fitted on validation."""

    lstm: float
    bag: float
    bias: float


@dataclass
class Parts(Record):
    """What each part of the model reached alone on validation, and how the blend weighs them."""

    lstm_val_accuracy: float
    lstm_member_val_accuracy: list[float] | None = None
    bag_unlabelled_reviews: int | None = None
    bag_val_accuracy: float | None = None
    bag_C: float | None = None
    bag_seconds: float | None = None
    blend: Blend | None = None


@dataclass
class CutScores(Record):
    """Accuracy on one cut of the validation reviews (short.CUTS), by scorer."""

    n: int
    mean_tokens: float
    blend: float
    lstm: float | None = None
    bag: float | None = None
    baseline: float | None = None


@dataclass
class PairScores(Record):
    """On a set of minimal pairs: the share of originals right, of edits right, of both."""

    originals: float
    edits: float
    both: float


@dataclass
class EditScores(Record):
    """Minimal pairs read by each scorer (evaluate.edits)."""

    pairs: int
    blend: PairScores
    lstm: PairScores | None = None
    bag: PairScores | None = None
    baseline: PairScores | None = None


@dataclass
class Baseline(Record):
    """The TF-IDF baseline on the same splits (baseline.fit_baseline)."""

    C: float
    val: SplitScores | None = None
    test: SplitScores | None = None
    seconds: float | None = None


@dataclass
class Paired(Record):
    """McNemar's exact test of the model against the baseline on the same test reviews."""

    test: str
    n: int
    model_only_correct: int
    baseline_only_correct: int
    p_value: float


@dataclass
class LineRead(Record):
    """One short line read by the model: what a reader takes it to say (1 positive, 0
    negative) and the model's P(positive)."""

    text: str
    label: int
    probability: float

    @property
    def right(self) -> bool:
        return (self.probability >= 0.5) == (self.label == 1)


@dataclass
class MissedEdit(Record):
    """A minimal pair whose edit the model read wrong: both texts, the original's label, and the
    model's P(positive) of each."""

    original: str
    edit: str
    label: int
    p_original: float
    p_edit: float


@dataclass
class Phase(Record):
    """One phase of a training command: its wall-clock seconds and the rows it went through
    (progress.Phases)."""

    name: str
    seconds: float = 0.0
    rows: int | None = None

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds > 0 else None


@dataclass
class Results(Record):
    """Everything a training run measured (metrics.json). `test` and the dev pairs' edits are
    there only when the test split was read."""

    val: SplitScores | None = None
    test: SplitScores | None = None
    epochs_run: int | None = None
    train_seconds: float | None = None
    parts: Parts | None = None
    encoder: dict[str, Any] | None = None  # pretrain.Encoder.describe()
    pairs_trained_on: dict[str, Any] = field(default_factory=dict)
    short_inputs: dict[str, CutScores] = field(default_factory=dict)
    edits: dict[str, EditScores] = field(default_factory=dict)  # "held_out", "dev"
    baseline: Baseline | None = None
    model_vs_baseline: Paired | None = None
    hard_lines: list[LineRead] = field(default_factory=list)  # evaluate.HARD_LINES read
    missed_edits: dict[str, list[MissedEdit]] = field(default_factory=dict)  # a few, by set
    phases: list[Phase] = field(default_factory=list)  # up to the run's writing, in order

    def splits(self) -> dict[str, SplitScores]:
        """The model's scores of each split read: validation, then test when read."""
        return {name: s for name, s in (("val", self.val), ("test", self.test)) if s is not None}


def read_results(run_dir: Path) -> Results:
    """A finished run's results, as it wrote them (its metrics.json)."""
    path = Path(run_dir) / "metrics.json"
    try:
        return Results.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read it ({e}): is {run_dir} a finished run?") from None


def read_phases(run_dir: Path) -> Results:
    """A finished run's results, refused when they record no phases."""
    results = read_results(run_dir)
    path = Path(run_dir) / "metrics.json"
    if not results.phases:
        raise UserError(f"{path}: no phases: the run was made before runs recorded them")
    return results


def phase_table(runs: dict[str, Results]) -> str:
    """The phases of runs side by side, as a Markdown table: each run's seconds, share of its
    whole and rows/s per phase, and with two runs the second's time over the first's. A phase
    is matched across runs by its name up to the first comma ("bag, 4 values of C")."""

    def by_key(results: Results) -> dict[str, Phase]:
        return {p.name.split(",")[0]: p for p in results.phases}

    tables = {name: by_key(r) for name, r in runs.items()}
    keys = list(dict.fromkeys(k for t in tables.values() for k in t))
    totals = {name: sum(p.seconds for p in t.values()) for name, t in tables.items()}
    ratio = len(runs) == 2
    head = ["phase"] + [f"{n}: s (share), rows/s" for n in runs] + (["ratio"] if ratio else [])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]

    def cell(p: Phase | None, total: float) -> str:
        if p is None:
            return "-"
        rate = f", {p.rows_per_second:,.0f}" if p.rows_per_second else ""
        return f"{p.seconds:,.0f} ({p.seconds / total:.0%}){rate}" if total else "-"

    def row(label: str, phases: list[Phase | None]) -> str:
        cells = [cell(p, totals[n]) for p, n in zip(phases, runs)]
        if ratio:
            a, b = phases
            cells.append(f"{b.seconds / a.seconds:.2f}" if a and b and a.seconds else "-")
        return "| " + " | ".join([label, *cells]) + " |"

    lines += [row(k, [t.get(k) for t in tables.values()]) for k in keys]
    whole = [Phase("whole", totals[n]) for n in runs]
    lines.append(row("all phases", whole))
    return "\n".join(lines)
