"""Ninth round of docs/lab/experiments.md: what each added LSTM member is worth.

For one run folder trained with lstm_members = K, the LSTM part made of its first k members
(k = 1..K, their log-odds averaged as the model averages them) alone, and blended with the run's
bag as train.py blends (fitted on the validation reviews and their cuts, in-sample), on whole
validation reviews and on each cut. Validation only; the test split is never read.

  PYTHONPATH=src python docs/lab/experiments/lstm_members.py RUN_DIR DATA
writes RUN_DIR/lstm_members.json and prints one line per k.
"""

import json
import sys

import keras
import numpy as np

from imdb_sentiment import cli, data, short, text
from imdb_sentiment.bag import fit_blend
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import member_logit_layers
from imdb_sentiment.runs import load_artifacts


def main(run: str, source: str) -> None:
    cli.load_tensorflow()
    art = load_artifacts(run)
    splits = data.load(source, art.cfg)
    y = splits.val.label.to_numpy()
    model = art.model
    members = [layer.output for layer in member_logit_layers(model)]
    columns = keras.Model(
        model.inputs,
        keras.layers.Concatenate()([*members, model.get_layer("part_logits").output]),
    )
    tokens = [
        [t.decode() for t in row]
        for row in text.tokenize_corpus(splits.val.review.tolist()).to_list()
    ]
    texts = {"whole": [short.as_text(t) for t in tokens]}
    texts.update({name: [short.as_text(short.cut(t, name)) for t in tokens] for name in short.CUTS})
    # [member logits..., LSTM part, bag] per review, for whole reviews and each cut
    rows = {
        name: predict_features(columns, art.vectorizer.features(text.tokenize_corpus(batch)))
        for name, batch in texts.items()
    }
    assert np.allclose(rows["whole"][:, : len(members)].mean(1), rows["whole"][:, -2], atol=1e-4)
    out = {}
    for k in range(1, len(members) + 1):
        lstm = {name: r[:, :k].mean(1) for name, r in rows.items()}
        bag = {name: r[:, -1] for name, r in rows.items()}
        weights, bias = fit_blend(
            np.concatenate(list(lstm.values())),
            np.concatenate(list(bag.values())),
            np.tile(y, len(rows)),
        )
        out[k] = {
            "lstm": {n: float(((v >= 0) == y).mean()) for n, v in lstm.items()},
            "blend": {
                n: float(((weights[0] * lstm[n] + weights[1] * bag[n] + bias >= 0) == y).mean())
                for n in rows
            },
            "blend_weights": [float(weights[0]), float(weights[1]), float(bias)],
        }
        for part in ("lstm", "blend"):
            print(
                f"{k} member(s), {part}: "
                + " ".join(f"{n} {v:.4f}" for n, v in out[k][part].items())
            )
    with open(f"{run}/lstm_members.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
