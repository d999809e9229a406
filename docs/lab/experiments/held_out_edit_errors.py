"""Minimal pairs (issue 40): where the LSTM part misses an edit of the held-out training pairs.

For one run folder, the LSTM's log-odds of each held-out pair's original and edit (never the dev
pairs, never the test split), then the LSTM's edit accuracy by the share of tokens the edit
changed and by review length, and how far the failed edits moved the log-odds. With N, also the
first N failed edits with what was changed in them.

  PYTHONPATH=src python docs/lab/experiments/held_out_edit_errors.py RUN DATA CAD [N]
"""

import difflib
import sys
from pathlib import Path

import numpy as np

from imdb_sentiment import cli, counterfactuals, data, text
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import part_logits
from imdb_sentiment.runs import load_artifacts


def tokens_and_logits(art, parts, texts):
    tokens = text.tokenize_corpus(texts)
    logits = predict_features(parts, art.vectorizer.features(tokens))
    return [[w.decode() for w in row] for row in tokens.to_list()], logits


def changes(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    return [(" ".join(a[i1:i2]), " ".join(b[j1:j2])) for t, i1, i2, j1, j2 in ops if t != "equal"]


def accuracy_by(name: str, values, edges, right) -> None:
    for lo, hi in zip(edges, edges[1:]):
        m = (values >= lo) & (values < hi)
        print(f"  {name} [{lo}, {hi}): {m.sum():3d} pairs, edits right {right[m].mean():.3f}")


def main(run: str, source: str, cad: str, show: str = "0") -> None:
    cli.load_tensorflow()
    art = load_artifacts(Path(run))
    splits = data.load(source, art.cfg)
    held = counterfactuals.load(Path(cad), splits, art.cfg).held_out
    parts = part_logits(art.model)
    originals, z_original = tokens_and_logits(art, parts, held.original)
    edits, z_edit = tokens_and_logits(art, parts, held.edit)
    sign = np.where(held.label == 1, 1.0, -1.0)  # the original's side
    lstm_o, lstm_e = z_original[:, 0] * sign, z_edit[:, 0] * sign
    right_o, right_e = lstm_o > 0, lstm_e < 0
    lengths = np.array([len(t) for t in originals])
    changed = np.array(
        [
            sum(max(len(x.split()), len(y.split())) for x, y in changes(a, b))
            for a, b in zip(originals, edits)
        ]
    ) / np.maximum(lengths, 1)
    print(
        f"held-out pairs {len(held)}: LSTM originals {right_o.mean():.3f}, "
        f"edits {right_e.mean():.3f}"
    )
    accuracy_by("share of tokens changed", changed, [0, 0.03, 0.06, 0.1, 0.2, 1.01], right_e)
    accuracy_by("tokens", lengths, [0, 100, 150, 200, 300, 10_000], right_e)
    for label in (0, 1):
        m = held.label == label
        print(
            f"  original {'positive' if label else 'negative'}: edits right {right_e[m].mean():.3f}"
        )
    wrong = ~right_e
    moved = lstm_o - lstm_e
    print(
        f"failed edits: median log-odds moved {np.median(moved[wrong]):.2f} towards the edit's "
        f"side (right ones {np.median(moved[right_e]):.2f}); "
        f"{(np.abs(lstm_e[wrong]) < 1).mean():.0%} of them end within 1 of 0"
    )
    for i in np.flatnonzero(wrong)[: int(show)]:
        print(
            f"[{i}] original {'positive' if held.label[i] else 'negative'}, {lengths[i]} tokens, "
            f"LSTM {z_original[i, 0]:+.2f} -> {z_edit[i, 0]:+.2f}: "
            f"{changes(originals[i], edits[i])[:8]}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
