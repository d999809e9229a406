"""Counterfactually revised reviews (Kaushik, Hovy & Lipton, ICLR 2020; Apache-2.0): IMDB reviews
that people edited as little as they could to flip the label, each with its original.

They teach what a bag of n-grams cannot learn from whole reviews (that "not", "hardly" or one
swapped word turns the verdict) and measure it: a model that recalls a review it has seen gets
the original right and its edit wrong. The training pairs are split by pair into a part to train
on and a fifth held out for choosing; the dev pairs are read once, at the end, like the test split.

Almost every original is a review of the official IMDB train split, a few of its test split: a
pair whose original (or edit) has the text of a validation or test review of this run is left out
of training, counted in the run's data report.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .files import UserError, fetch

log = logging.getLogger(__name__)

CAD_COMMIT = "6f232a1d2a11462a30ce08fb4825b734ab30828e"
CAD_URL = (
    "https://raw.githubusercontent.com/acmi-lab/counterfactually-augmented-data/"
    f"{CAD_COMMIT}/sentiment/combined/paired/"
)
CAD_SHA256 = {
    "train_paired.tsv": "7ac50ca3d70890f80e11ee59955cdbfc43f26b5078d0603717817ab224d2af18",
    "dev_paired.tsv": "4c2d8a70cbce23eba27fb1f0bb5043cf044811912435cf8d10c3ea6fc7a51363",
}
CAD_DIR = "cad"  # under the cache folder, and beside a data folder (../cad)
# The default of --counterfactuals: "none" turns the pairs off, e.g. for hermetic tests.
ENV_VAR = "IMDB_SENTIMENT_COUNTERFACTUALS"
_LABELS = {"positive": 1, "negative": 0}


@dataclass
class Pairs:
    """Pairs of texts with opposite labels: `label` is the original's, the edit's is 1 - label."""

    original: list[str] = field(default_factory=list)
    edit: list[str] = field(default_factory=list)
    label: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.original)

    def subset(self, index) -> "Pairs":
        return Pairs(
            [self.original[i] for i in index], [self.edit[i] for i in index], self.label[index]
        )

    def rows(self) -> tuple[list[str], np.ndarray]:
        """Both texts of every pair as rows: the originals, then the edits; their labels."""
        return self.original + self.edit, np.concatenate([self.label, 1 - self.label])


@dataclass
class Counterfactuals:
    train: Pairs  # trained on
    held_out: Pairs  # a fifth of the training pairs, never trained on: for choosing
    dev: Pairs  # read once, for the final report
    report: dict  # where they came from and what was left out, for data_report.json
    # the training pairs of validation reviews: never trained on, as those reviews are; the
    # blend is fitted on them beside the validation reviews (train.blend_on_validation)
    val: Pairs


def find(given: str | None, data_source: str, cache_dir: Path) -> Path | None:
    """The folder holding train_paired.tsv and dev_paired.tsv: `given` (--counterfactuals;
    "none" turns them off), else a copy in cache_dir/cad or in a cad folder beside the data's,
    else downloaded at the pinned commit (SHA-256 checked). None, with a warning, when there are
    none and the download fails: training goes on without them."""
    given = given if given is not None else os.environ.get(ENV_VAR)
    if given == "none":
        log.info("counterfactual pairs: turned off (--counterfactuals none)")
        return None
    if given:
        folder = Path(given)
        missing = [name for name in CAD_SHA256 if not (folder / name).is_file()]
        if missing:
            raise UserError(
                f"{folder}: no {', '.join(missing)} here (--counterfactuals takes the folder "
                f"of the pairs, as in {CAD_URL})"
            )
        return folder
    source = Path(data_source)
    for folder in (
        Path(cache_dir) / CAD_DIR,
        source.parent / CAD_DIR,
        source.parent.parent / CAD_DIR,
    ):
        if all((folder / name).is_file() for name in CAD_SHA256):
            return folder
    try:
        for name, sha256 in CAD_SHA256.items():
            fetch(CAD_URL + name, sha256, Path(cache_dir) / CAD_DIR, name)
    except UserError as e:
        log.warning(
            f"counterfactual pairs: none found and {e}; training goes on without them "
            "(give them with --counterfactuals PATH)"
        )
        return None
    return Path(cache_dir) / CAD_DIR


def normalized(text: str) -> str:
    """The form in which texts are matched: line breaks as spaces, lower case, every run of
    non-word characters one space (the pairs keep markup only where their editors did)."""
    return re.sub(r"\W+", " ", text.replace("<br />", " ").lower()).strip()


def read_pairs(path: Path, known: set[str] = frozenset()) -> Pairs:
    """A paired TSV (Sentiment, Text, batch_id; the two rows of a pair share batch_id). The
    original of a pair is the text found among `known` (normalized reviews of the data), else its
    first row."""
    try:
        df = pd.read_csv(path, sep="\t", dtype={"Text": str}, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read counterfactual pairs: {e}") from None
    missing = {"Sentiment", "Text", "batch_id"} - set(df.columns)
    if missing:
        raise UserError(f"{path}: no column {', '.join(sorted(missing))} (a paired TSV has 3)")
    pairs = Pairs()
    labels = []
    for batch, rows in df.groupby("batch_id", sort=False):
        sentiment = rows.Sentiment.str.strip().str.lower().map(_LABELS)
        if len(rows) != 2 or sentiment.isna().any() or sentiment.nunique() != 2:
            raise UserError(
                f"{path}: batch_id {batch} is not a pair of a Positive and a Negative text"
            )
        texts, sentiment = rows.Text.tolist(), sentiment.tolist()
        first = 1 if normalized(texts[1]) in known and normalized(texts[0]) not in known else 0
        pairs.original.append(texts[first])
        pairs.edit.append(texts[1 - first])
        labels.append(sentiment[first])
    pairs.label = np.asarray(labels, np.int64)
    return pairs


def load(folder: Path, splits, cfg) -> Counterfactuals:
    """The pairs in `folder` for a run on `splits`: training pairs whose texts are validation or
    test reviews left out and counted, a cfg.counterfactual_holdout share held out by pair
    (seeded), the dev pairs whole; the pairs of validation reviews apart."""
    seen = {
        name: {normalized(t) for t in getattr(splits, name).review}
        for name in ("train", "val", "test")
    }
    known = seen["train"] | seen["val"] | seen["test"]
    train = read_pairs(Path(folder) / "train_paired.tsv", known)
    dev = read_pairs(Path(folder) / "dev_paired.tsv", known)
    report = {"source": str(folder), "train_pairs_read": len(train), "dev_pairs": len(dev)}
    left_out, of = set(), {}
    for name in ("test", "val"):
        hit = {
            i
            for i, texts in enumerate(zip(train.original, train.edit))
            if any(normalized(t) in seen[name] for t in texts)
        }
        of[name] = np.array(sorted(hit - left_out), np.int64)
        report[f"train_pairs_left_out_{name}"] = len(of[name])
        left_out |= hit
    kept = np.array(sorted(set(range(len(train))) - left_out), np.int64)
    order = np.random.default_rng(cfg.seed).permutation(kept)
    n_held = int(round(len(order) * cfg.counterfactual_holdout))
    held, used = np.sort(order[:n_held]), np.sort(order[n_held:])
    report.update(train_pairs=len(used), held_out_pairs=len(held))
    log.info(
        "counterfactual pairs: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.items() if k != "source")
        + f" (from {folder})"
    )
    return Counterfactuals(
        train.subset(used), train.subset(held), dev, report, train.subset(of["val"])
    )
