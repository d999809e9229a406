"""The model card: what a person reads about a trained model before using it, in the sections
model hubs use (model details, training, intended use, figures, known failures, licences). It is
written beside every run's report and into every export, from the run's typed results, so its
figures are the results' figures."""

from __future__ import annotations

import json
from pathlib import Path

from .config import Config
from .files import UserError
from .results import EditScores, Results, SplitScores

CARD_FILE = "model_card.md"
SPLIT_NAMES = {"val": "validation", "test": "test"}
SCORERS = {"blend": "the model", "lstm": "LSTM part", "bag": "n-gram bag", "baseline": "TF-IDF"}


def model_card(
    results: Results, cfg: Config, data: dict, command: str, embedding: dict | None = None
) -> str:
    """The card (Markdown) of a model trained with `cfg` on `data` (the data report: source,
    checksum, split sizes) by `command`, which measured `results`."""
    sections = [
        _details(cfg, embedding),
        _training(cfg, data, command, results),
        INTENDED_USE,
        _figures(results),
        _failures(results),
        LICENCES,
    ]
    return "\n\n".join(["# Model card: imdb-sentiment", *sections]) + "\n"


def read_card(version: Path) -> str:
    """The card of an exported version: its model_card.md, or for an export made before cards,
    one made from its model_info.json."""
    version = Path(version)
    if (version / CARD_FILE).exists():
        return (version / CARD_FILE).read_text(encoding="utf-8")
    try:
        info = json.loads((version / "model_info.json").read_text())
        results = Results.from_dict(info["metrics"])
        cfg = Config.from_dict(info["config"], source=str(version / "model_info.json"))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"{version}: no {CARD_FILE}, and no readable model_info.json ({e})"
        ) from None
    command = "(not recorded: this version was exported before model cards)"
    return model_card(results, cfg, info.get("data") or {}, command, info.get("embedding"))


def _details(cfg: Config, embedding: dict | None) -> str:
    vectors = f"GloVe 6B {cfg.glove_dim}d" + (
        ", fine-tuned" if cfg.train_embeddings else ", frozen"
    )
    covered = (
        f" ({embedding['coverage']:.1%} of the vocabulary found)"
        if embedding and "coverage" in embedding
        else ""
    )
    members = f"{cfg.lstm_members} bidirectional LSTM{'s' if cfg.lstm_members > 1 else ''}"
    bag = (
        f", blended with an n-gram bag (1- to {cfg.ngram_order}-grams hashed into "
        f"{cfg.ngram_buckets:,} buckets, logistic regression)"
        if cfg.ngram_buckets
        else ""
    )
    return (
        "## Model details\n\n"
        "A binary sentiment classifier of English movie reviews: raw review text in, "
        "P(positive) and a label out, as a TensorFlow SavedModel that TF Serving loads as it is "
        "(signature `serving_default`, input `review`, a string).\n\n"
        f"- Reader: {members} of {cfg.lstm_units} units over {vectors}{covered}, "
        f"vocabulary {cfg.vocab_size:,}, at most {cfg.max_len} tokens a review{bag}.\n"
        "- Text standardization (HTML stripped, lower-cased, punctuation split off) is one set "
        "of TensorFlow ops, used in training and inside the exported model."
    )


def _training(cfg: Config, data: dict, command: str, results: Results) -> str:
    sizes = ", ".join(f"{k} {data[k]:,}" for k in ("train", "val", "test") if k in data)
    pairs = results.pairs_trained_on or {}
    made = ", ".join(
        f"{v:,} {k.replace('_', ' ')}" for k, v in pairs.items() if isinstance(v, int) and v
    )
    epochs = f"{results.epochs_run} epochs" if results.epochs_run else "epochs not recorded"
    return (
        "## Training\n\n"
        f"- Data: {data.get('source', 'not recorded')} (reviews: {sizes or 'not recorded'}; "
        f"checksum {str(data.get('checksum', '?'))[:12]}…). Validation is carved from the "
        "training reviews and chooses every setting; the test split is read once, at the end.\n"
        f"- Minimal pairs trained on: {made or 'none'}.\n"
        f"- Config: seed {cfg.seed}, batch {cfg.batch_size}, learning rate {cfg.learning_rate:g}, "
        f"{epochs} (at most {cfg.epochs}, early stopping on validation accuracy). Every "
        "hyper-parameter is in the export's model_info.json and the run's config.json.\n"
        f"- To train it again (same seed, same weights on the same host):\n\n"
        f"      {command}"
    )


INTENDED_USE = """## Intended use

- For: the sentiment of English movie reviews and review-like lines, as a baseline to compare
  against, a teaching example of a SavedModel on raw strings, and a model to serve with TF
  Serving.
- Not for: decisions about people; text far from movie reviews (products, news, social media),
  other languages, sarcasm or mixed verdicts, where its figures do not hold; a confidence you can
  trust on one review (its probabilities are calibrated on validation reviews, not lines)."""


def _figures(results: Results) -> str:
    lines = [
        "## Figures",
        "",
        "| split | accuracy (95% interval) | reviews |",
        "| --- | --- | --- |",
    ]
    for name, s in results.splits().items():
        lines.append(_split_row(f"{SPLIT_NAMES[name]}, the model", s))
        if s.parts:
            lines += [
                f"| {SPLIT_NAMES[name]}, {SCORERS[k]} alone | {v:.4f} | {s.n:,} |"
                for k, v in s.parts.items()
            ]
    if results.baseline:
        for name in SPLIT_NAMES:
            if (s := getattr(results.baseline, name)) is not None:
                lines.append(_split_row(f"{SPLIT_NAMES[name]}, TF-IDF baseline", s))
    if results.short_inputs:
        lines += ["", "Short inputs (validation reviews cut short), accuracy of the model:", ""]
        lines += [
            f"- {cut.replace('_', ' ')}: {c.blend:.4f}"
            + (f" (TF-IDF {c.baseline:.4f})" if c.baseline is not None else "")
            for cut, c in results.short_inputs.items()
        ]
    if results.edits:
        lines += ["", "Minimal edits (counterfactual pairs: originals / edits / both right):", ""]
        lines += [_edits_line(name, e) for name, e in results.edits.items()]
    lines += [
        "",
        "The intervals take reviews as independent; reviews of one movie are not, so they are "
        "optimistic.",
    ]
    return "\n".join(lines)


def _split_row(label: str, s: SplitScores) -> str:
    low, high = s.accuracy_95ci
    return f"| {label} | {s.accuracy:.4f} ({low:.3f}-{high:.3f}) | {s.n:,} |"


def _edits_line(name: str, e: EditScores) -> str:
    title = {"held_out": "held-out training pairs", "dev": "dev pairs"}.get(name, name)
    scored = [
        f"{SCORERS[k]} {p.originals:.3f} / {p.edits:.3f} / {p.both:.3f}"
        for k in SCORERS
        if (p := getattr(e, k)) is not None
    ]
    return f"- {title} ({e.pairs}): " + "; ".join(scored)


def _failures(results: Results) -> str:
    lines = [
        "## Known failures",
        "",
        '- Negation and hedges the words alone do not carry ("I can\'t say I enjoyed it."), '
        "mixed verdicts, sarcasm, and reviews that retell a plot's bad events before praising it. "
        "The run's report.md lists the validation reviews it is most confidently wrong on.",
    ]
    if results.hard_lines:
        lines += ["", "Short lines, read by this model (P(positive); a reader's label):", ""]
        lines += [
            f'- {"right" if r.right else "WRONG"}: "{r.text}" {r.probability:.2f} '
            f"({'positive' if r.label else 'negative'})"
            for r in results.hard_lines
        ]
    for name, missed in results.missed_edits.items():
        if missed:
            lines += [
                "",
                f"Edits it still reads wrong ({name.replace('_', ' ')} pairs, shortest first):",
                "",
            ]
            lines += [
                f'- "{_short(m.edit)}" (edit of a {"positive" if m.label else "negative"} review): '
                f"P(positive) {m.p_edit:.2f}, original {m.p_original:.2f}"
                for m in missed
            ]
    return "\n".join(lines)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " …"


LICENCES = """## Licences and credits

- Code: this project's licence. Reviews: the IMDB Large Movie Review Dataset (Maas et al., 2011,
  ACL), for research use. Word vectors: GloVe 6B (Pennington, Socher & Manning, 2014), Public
  Domain Dedication and License. Counterfactual pairs: Kaushik, Hovy & Lipton (2020, ICLR),
  Apache-2.0. Word valences for made-up pairs: VADER (Hutto & Gilbert, 2014), MIT."""
