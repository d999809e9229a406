"""Train a small model from Python, predict with its export, explain one prediction and read its
model card: the library's calls, top to bottom.

    python examples/quickstart.py DATA.csv [--out runs/quickstart]

DATA is any IMDB CSV (review,sentiment, as the Kaggle file); the tests run this script on their
small synthetic reviews. A small config keeps it to a minute or two on 2 cores; drop `config` for
the default model (about 35-80 minutes, docs/training.md).
"""

import argparse
from pathlib import Path

from imdb_sentiment import fit
from imdb_sentiment.card import read_card
from imdb_sentiment.explain import explain, summary
from imdb_sentiment.predict import Predictor

SMALL = {
    "vocab_size": 2000,
    "min_count": 1,
    "max_len": 64,
    "head_tokens": 16,
    "lstm_units": 8,
    "lstm_members": 1,
    "epochs": 3,
    "learning_rate": 0.01,
    "ngram_buckets": 4096,
    "pretrain": False,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", type=Path, help="an IMDB CSV: review,sentiment")
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    args = p.parse_args()

    # 1. Train, evaluate and export. The run folder holds the report and the model card; the
    #    export is a SavedModel version that TF Serving loads as it is.
    run = fit(args.data, SMALL, run_dir=args.out / "run", export_dir=args.out / "models")
    print(
        f"validation accuracy {run.results.val.accuracy:.4f}, test {run.results.test.accuracy:.4f}"
    )
    print(f"exported: {run.export_path}")

    # 2. Predict with the export, on raw strings, as a server would.
    predictor = Predictor(run.export_path)
    lines = ["A wonderful film.", "Dull and pointless."]
    for line, out in zip(lines, predictor.predict(lines)):
        print(f"{out['label']:8} {out['probability']:.3f}  {line}")

    # 3. Which words moved the verdict: each word's change of the log-odds when it is removed.
    print(summary(explain(predictor, "The plot was dull but the acting was wonderful.")))

    # 4. The model card, as every export carries it.
    print(read_card(run.export_path))


if __name__ == "__main__":
    main()
