"""Nineteenth round of docs/lab/experiments.md: the LSTM taught by the other part on the unlabelled
reviews (co-training's second step; the thirteenth round was its first, the bag taught by the LSTM).

For one run folder: a teacher labels the unlabelled reviews found beside the data (less those with
the text of a validation or test review, as train.py leaves them out), the run's LSTM members are
trained on for EPOCHS more epochs on the training reviews, their cut copies (as train.py makes them)
and those labelled reviews, Adam from LR decayed to 0, keeping the best epoch on validation; then,
as train.py does after the LSTM, the bag is fitted again on the training reviews and the unlabelled
ones labelled by the new LSTM, and the blend on validation and its cuts. Teachers: "bag" (a bag
fitted on the training reviews alone, the view the LSTM does not have), "blend" (the run's blend).
Prints the LSTM alone, the bag alone and the blend on validation, and the blend at each cut beside
the TF-IDF baseline of the run's metrics.json. Validation only; the test split is never read. OUT
gets the model as a run folder (config.json, vocab.txt, model.keras) for scripts/evaluate.py.

  PYTHONPATH=src python docs/lab/experiments/lstm_from_teacher.py RUN_DIR DATA OUT TEACHER EPOCHS LR
"""

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment import cli, data, text
from imdb_sentiment.bag import binary_matrix, fit_bag, fit_blend
from imdb_sentiment.features import predict_features
from imdb_sentiment.model import compile_model, lstm_model, part_logits, set_bag, set_blend
from imdb_sentiment.runs import load_artifacts
from imdb_sentiment.short import CUTS, cut_copies, cut_texts
from imdb_sentiment.train import make_dataset, steps_per_epoch


def main(run: str, source: str, out: str, teacher: str, epochs: str, lr: str) -> None:
    cli.load_tensorflow()
    run, out = Path(run), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    art = load_artifacts(run)
    cfg, vec, model = art.cfg, art.vectorizer, art.model
    metrics = json.loads((run / "metrics.json").read_text())
    splits = data.load(source, cfg)
    unlabelled = data.without_texts_of(
        data.read_unlabelled(data.find_unlabelled(source)), splits.val.review, splits.test.review
    )
    x = {
        name: vec.features(text.tokenize_corpus(list(reviews)))
        for name, reviews in (
            ("train", splits.train.review),
            ("val", splits.val.review),
            ("cuts", cut_texts(splits.val.review)),
            ("unlabelled", unlabelled),
        )
    }
    y_train, y_val = splits.train.label.to_numpy(), splits.val.label.to_numpy()
    keras.utils.set_random_seed(cfg.seed)

    if teacher == "bag":
        alone = fit_bag(x["train"]["ngram_ids"], y_train, x["val"]["ngram_ids"], y_val, cfg)
        rows = binary_matrix(x["unlabelled"]["ngram_ids"], cfg.ngram_buckets)
        taught = rows @ alone["weights"] + alone["bias"]
        print(f"teacher: the bag on the training reviews alone, {100 * alone['val_accuracy']:.2f}")
    elif teacher == "blend":
        w = metrics["parts"]["blend"]
        parts = predict_features(part_logits(model), x["unlabelled"])
        taught = w["lstm"] * parts[:, 0] + w["bag"] * parts[:, 1] + w["bias"]
        print("teacher: the run's blend")
    else:
        raise SystemExit(f"unknown teacher {teacher!r}")
    pseudo = (taught >= 0).astype(y_train.dtype)
    print(f"{len(pseudo)} unlabelled reviews, {100 * pseudo.mean():.1f}% positive", flush=True)

    cuts = cut_copies(x["train"]["token_ids"], cfg.short_copies, cfg.seed)
    ids = {"token_ids": tf.concat([x["train"]["token_ids"], cuts, x["unlabelled"]["token_ids"]], 0)}
    labels = np.concatenate([y_train, np.repeat(y_train, cfg.short_copies), pseudo])
    # The schedule the LSTM is compiled with: Adam from LR, decayed to 0 over EPOCHS.
    more = dataclasses.replace(cfg, epochs=int(epochs), learning_rate=float(lr))
    batches = {"batch_size": cfg.batch_size, "max_len": cfg.max_len}
    steps = steps_per_epoch(ids, **batches)
    lstm = lstm_model(model)
    compile_model(lstm, more, steps)
    early = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=more.epochs, restore_best_weights=True
    )
    val_ids = {"token_ids": x["val"]["token_ids"]}
    t0 = time.perf_counter()
    history = lstm.fit(
        make_dataset(ids, labels, training=True, epochs=more.epochs, **batches),
        validation_data=make_dataset(val_ids, y_val, training=False, **batches),
        steps_per_epoch=steps,
        epochs=more.epochs,
        callbacks=[early],
        shuffle=False,
        verbose=2,
    ).history
    seconds = time.perf_counter() - t0
    curve = " ".join(f"{100 * a:.2f}" for a in history["val_accuracy"])
    print(
        f"LSTM on validation per epoch: {curve} ({seconds:.0f}s; before: "
        f"{100 * metrics['parts']['lstm_val_accuracy']:.2f})",
        flush=True,
    )

    lstm_unlabelled = predict_features(part_logits(model), x["unlabelled"])[:, 0]
    bag = fit_bag(
        tf.concat([x["train"]["ngram_ids"], x["unlabelled"]["ngram_ids"]], axis=0),
        np.concatenate([y_train, (lstm_unlabelled >= 0).astype(y_train.dtype)]),
        x["val"]["ngram_ids"],
        y_val,
        cfg,
    )
    set_bag(model, bag["weights"], bag["bias"])
    val, cut = (predict_features(part_logits(model), x[k]) for k in ("val", "cuts"))
    both = np.concatenate([val, cut])
    y = np.tile(y_val, 1 + len(CUTS))
    weights, bias = fit_blend(both[:, 0], both[:, 1], y)
    set_blend(model, weights, bias)
    right = (both @ weights + bias >= 0) == y
    by_cut = right.reshape(1 + len(CUTS), len(y_val)).mean(axis=1)
    baseline = {k: metrics["short_inputs"][k]["baseline"] for k in CUTS}
    print(
        f"LSTM alone {100 * ((val[:, 0] >= 0) == y_val).mean():.2f}, bag alone "
        f"{100 * bag['val_accuracy']:.2f} (C={bag['C']:g}), blend {weights[0]:.3f} LSTM + "
        f"{weights[1]:.3f} bag {bias:+.3f}: {100 * by_cut[0]:.2f}; blend/baseline at the cuts: "
        + ", ".join(f"{k} {100 * a:.2f}/{100 * baseline[k]:.2f}" for k, a in zip(CUTS, by_cut[1:]))
    )
    model.save(out / "model.keras")
    for name in ("config.json", "vocab.txt", "data_report.json"):
        shutil.copy(run / name, out / name)


if __name__ == "__main__":
    main(*sys.argv[1:])
