"""The run report: PNG plots of training and of the evaluated splits, and report.md that shows them.

Plots are drawn with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn import metrics as skm  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from .data import strip_html  # noqa: E402
from .evaluate import SplitPredictions, expected_calibration_error  # noqa: E402
from .files import atomic_file, atomic_write_text  # noqa: E402
from .results import CutScores, EditScores, Paired, Parts, Results, SplitScores  # noqa: E402

LENGTH_BINS = (0, 100, 200, 300, 500, 800, np.inf)  # tokens per review
PLOTS = {
    "curves": "Training and validation loss and accuracy per epoch",
    "confusion": "Confusion matrices",
    "roc_pr": "ROC and precision-recall curves",
    "reliability": "Reliability diagram",
    "accuracy_by_length": "Accuracy by review length",
}
SPLIT_NAMES = {"val": "validation", "test": "test"}


def write_report(
    run_dir: Path,
    splits: dict[str, SplitPredictions],
    results: Results,
    history_csv: Path | None = None,
    title: str = "Run report",
) -> Path:
    """Draws every plot into run_dir and writes run_dir/report.md; returns the report's path."""
    run_dir = Path(run_dir)
    sns.set_theme(style="whitegrid")
    drawn = {}
    if history_csv is not None and Path(history_csv).exists():
        drawn["curves"] = plot_curves(pd.read_csv(history_csv), run_dir / "curves.png")
    drawn["confusion"] = plot_confusion(splits, run_dir / "confusion.png")
    drawn["roc_pr"] = plot_roc_pr(splits, run_dir / "roc_pr.png")
    drawn["reliability"] = plot_reliability(splits, run_dir / "reliability.png")
    drawn["accuracy_by_length"] = plot_accuracy_by_length(
        splits, run_dir / "accuracy_by_length.png"
    )
    lines = [f"# {title}", "", metrics_table(results), ""] + parts_note(results.parts)
    if results.model_vs_baseline:
        lines += [paired_note(results.model_vs_baseline), ""]
    for key, path in drawn.items():
        lines += [f"## {PLOTS[key]}", "", f"![{PLOTS[key]}]({path.name})", ""]
    # Measures on inputs made from the data: a plot and a table each.
    for key, title, plot, table in (
        ("short_inputs", SHORT_TITLE, plot_short_inputs, short_inputs_table),
        ("edits", EDITS_TITLE, plot_edits, edits_table),
    ):
        if measured := getattr(results, key):
            path = plot(measured, run_dir / f"{key}.png")
            lines += [f"## {title}", "", f"![{title}]({path.name})", "", table(measured), ""]
    if "val" in splits:
        lines += [
            "## Most confidently wrong validation reviews",
            "",
            confident_errors(splits["val"]),
            "",
        ]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def metrics_table(results: Results) -> str:
    """Markdown: one column per split of the model, then the baseline's when it was run."""
    columns: dict[str, SplitScores] = {
        f"model {SPLIT_NAMES[s]}": scores for s, scores in results.splits().items()
    }
    for s in SPLIT_NAMES:
        if results.baseline and getattr(results.baseline, s):
            columns[f"baseline {SPLIT_NAMES[s]}"] = getattr(results.baseline, s)
    rows = [
        ("accuracy", lambda m: "{:.4f} ({:.3f}-{:.3f})".format(m.accuracy, *m.accuracy_95ci)),
        ("precision", lambda m: f"{m.precision:.4f}"),
        ("recall", lambda m: f"{m.recall:.4f}"),
        ("F1", lambda m: f"{m.f1:.4f}"),
        ("ROC-AUC", lambda m: f"{m.roc_auc:.4f}"),
        ("ECE", lambda m: f"{m.ece:.4f}" if m.ece is not None else "-"),
        ("reviews", lambda m: str(m.n)),
    ]
    out = ["| metric | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    out += [
        f"| {name} | " + " | ".join(fmt(m) for m in columns.values()) + " |" for name, fmt in rows
    ]
    note = (
        "Accuracy with its 95% Wilson interval; ECE: expected calibration error over 10 "
        "probability bins. " + INDEPENDENCE_NOTE
    )
    return "\n".join(out + ["", note])


INDEPENDENCE_NOTE = (
    "The intervals (and the paired test's p-value, when given) assume independent "
    "reviews, but reviews of one movie are not independent: IMDB holds up to 30 "
    "per movie, sharing its names and plot. So the intervals are too narrow and "
    "the p-value too small: both are optimistic."
)


def paired_note(paired: Paired) -> str:
    """McNemar's test of the model against the baseline on the same test reviews, in a sentence."""
    return (
        f"Paired on the same {paired.n} test reviews ({paired.test}): only the model "
        f"right on {paired.model_only_correct}, only the baseline on "
        f"{paired.baseline_only_correct}; p = {paired.p_value:.2g}."
    )


def parts_note(parts: Parts | None) -> list[str]:
    """What each part of the model reached alone on validation, and how the blend weighs them."""
    if parts is None or parts.blend is None:
        return []
    b = parts.blend
    members = parts.lstm_member_val_accuracy
    of_members = (
        f" (the average of {len(members)} LSTMs, each alone "
        + ", ".join(f"{a:.4f}" for a in members)
        + ")"
        if members
        else ""
    )
    unlabelled = parts.bag_unlabelled_reviews
    fitted_on = (
        f"; fitted on the training reviews and {unlabelled} unlabelled ones the LSTM labelled"
        if unlabelled
        else ""
    )
    return [
        f"Parts alone on validation: the LSTM {parts.lstm_val_accuracy:.4f}{of_members}, "
        "the n-gram bag "
        f"{parts.bag_val_accuracy:.4f} (C={parts.bag_C:g}{fitted_on}). "
        "Blend, fitted on validation: "
        f"log-odds = {b.lstm:.3f} × LSTM + {b.bag:.3f} × bag {b.bias:+.3f}. "
        "The training curves are the LSTM part's: the bag is fitted outside the network.",
        "",
    ]


SHORT_TITLE = "Accuracy on short inputs (validation)"
SHORT_SERIES = {
    "blend": "blend (the model)",
    "lstm": "LSTM part",
    "bag": "n-gram bag part",
    "baseline": "TF-IDF baseline",
}


def short_inputs_table(short: dict[str, CutScores]) -> str:
    """Markdown: one row per cut of the validation reviews, one column per scored model."""
    series = [s for s in SHORT_SERIES if any(getattr(row, s) is not None for row in short.values())]
    header = ["cut", "tokens (mean)", *(SHORT_SERIES[s] for s in series), "reviews"]
    out = ["| " + " | ".join(header) + " |", "| --- |" + " --- |" * (len(header) - 1)]
    for cut, row in short.items():
        cells = [f"{getattr(row, s):.4f}" if getattr(row, s) is not None else "-" for s in series]
        out.append(
            f"| {cut.replace('_', ' ')} | {row.mean_tokens:.1f} | "
            + " | ".join(cells)
            + f" | {row.n} |"
        )
    note = (
        "Validation reviews cut to their first tokens, or to their first or last sentence, "
        "and read as whole inputs; a part alone predicts positive when its log-odds are >= 0."
    )
    return "\n".join(out + ["", note])


def plot_short_inputs(short: dict[str, CutScores], path: Path) -> Path:
    df = pd.DataFrame(
        [
            {"cut": cut.replace("_", " "), "series": label, "accuracy": getattr(row, key)}
            for cut, row in short.items()
            for key, label in SHORT_SERIES.items()
            if getattr(row, key) is not None
        ]
    )
    fig, ax = plt.subplots(figsize=(9, 4.5))
    sns.barplot(df, x="cut", y="accuracy", hue="series", ax=ax)
    low = max(0.0, df["accuracy"].min() - 0.1)
    ax.set(
        xlabel="input: part of each validation review",
        ylabel="accuracy",
        ylim=(low, 1.0),
        title=SHORT_TITLE,
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=4, fontsize=8)  # off the bars
    return _save(fig, path)


EDITS_TITLE = "Minimal edits: counterfactual review pairs"
EDITS_SETS = {"held_out": "held-out training pairs", "dev": "dev pairs"}


def edits_table(edits: dict[str, EditScores]) -> str:
    """Markdown: one row per pair set and scorer; originals, edits and both of a pair right."""
    out = ["| pairs | scorer | originals | edits | both |", "| --- | --- | --- | --- | --- |"]
    for name, result in edits.items():
        for key, label in SHORT_SERIES.items():
            if (row := getattr(result, key)) is not None:
                out.append(
                    f"| {EDITS_SETS.get(name, name)} ({result.pairs}) | {label} | "
                    f"{row.originals:.4f} | {row.edits:.4f} | {row.both:.4f} |"
                )
    note = (
        "Counterfactually revised reviews (Kaushik, Hovy & Lipton, 2020): each original and its "
        "minimal edit with the opposite label. Getting the original right and the edit wrong is "
        "recalling a review, not reading it."
    )
    return "\n".join(out + ["", note])


def plot_edits(edits: dict[str, EditScores], path: Path) -> Path:
    df = pd.DataFrame(
        [
            {
                "set": f"{EDITS_SETS.get(name, name)}: {what}",
                "series": label,
                "accuracy": getattr(getattr(result, key), what),
            }
            for name, result in edits.items()
            for what in ("originals", "edits", "both")
            for key, label in SHORT_SERIES.items()
            if getattr(result, key) is not None
        ]
    )
    fig, ax = plt.subplots(figsize=(9, 4.5))
    sns.barplot(df, x="set", y="accuracy", hue="series", ax=ax)
    ax.set(xlabel="", ylabel="accuracy", ylim=(0.0, 1.0), title=EDITS_TITLE)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=4, fontsize=8)
    return _save(fig, path)


def confident_errors(split: SplitPredictions, k: int = 10, excerpt: int = 300) -> str:
    wrong = np.flatnonzero((split.probabilities >= 0.5) != (split.labels == 1))
    worst = wrong[np.argsort(-np.abs(split.probabilities[wrong] - 0.5), kind="stable")][:k]
    if not len(worst):
        return "No misclassified reviews."
    out = ["| label | P(positive) | review (start) |", "| --- | --- | --- |"]
    for i in worst:
        text = " ".join(strip_html(split.reviews[i]).split())  # raw review, markup removed to read
        text = (text[:excerpt] + " …" if len(text) > excerpt else text).replace("|", "\\|")
        label = "positive" if split.labels[i] else "negative"
        out.append(f"| {label} | {split.probabilities[i]:.4f} | {text} |")
    return "\n".join(out)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_curves(history: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = history["epoch"] + 1
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="training")
        ax.plot(epochs, history[f"val_{key}"], "o-", label="validation")
        ax.set(xlabel="epoch", ylabel=key, title=key.capitalize())
        ax.legend()
    best = history["val_accuracy"].idxmax()
    axes[1].axvline(epochs[best], color="grey", ls="--", lw=1, label="kept (best validation)")
    axes[1].legend()
    return _save(fig, path)


def plot_confusion(splits: dict[str, SplitPredictions], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 4), squeeze=False)
    for ax, (name, s) in zip(axes[0], splits.items()):
        cm = skm.confusion_matrix(s.labels, s.probabilities >= 0.5, labels=[0, 1])
        annot = np.array([[f"{c}\n{c / cm.sum():.1%}" for c in row] for row in cm])
        sns.heatmap(
            cm,
            annot=annot,
            fmt="",
            cmap="Blues",
            cbar=False,
            ax=ax,
            xticklabels=["negative", "positive"],
            yticklabels=["negative", "positive"],
        )
        ax.set(
            xlabel="predicted",
            ylabel="true",
            title=f"{SPLIT_NAMES.get(name, name)} ({len(s.labels)} reviews)",
        )
    return _save(fig, path)


def plot_roc_pr(splits: dict[str, SplitPredictions], path: Path) -> Path:
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, s in splits.items():
        fpr, tpr, _ = skm.roc_curve(s.labels, s.probabilities)
        roc.plot(fpr, tpr, label=f"{SPLIT_NAMES.get(name, name)} (AUC {skm.auc(fpr, tpr):.4f})")
        precision, recall, _ = skm.precision_recall_curve(s.labels, s.probabilities)
        ap = skm.average_precision_score(s.labels, s.probabilities)
        pr.plot(recall, precision, label=f"{SPLIT_NAMES.get(name, name)} (AP {ap:.4f})")
    roc.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0.4, 1.01))
    roc.legend(loc="lower right")
    pr.legend(loc="lower left")
    return _save(fig, path)


def plot_reliability(splits: dict[str, SplitPredictions], path: Path) -> Path:
    fig, (diag, hist) = plt.subplots(2, 1, figsize=(6, 7), height_ratios=(3, 1), sharex=True)
    diag.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for name, s in splits.items():
        ece, bins = expected_calibration_error(s.labels, s.probabilities)
        diag.plot(
            [b["mean_probability"] for b in bins],
            [b["fraction_positive"] for b in bins],
            "o-",
            label=f"{SPLIT_NAMES.get(name, name)} (ECE {ece:.4f})",
        )
        hist.hist(
            s.probabilities, bins=20, range=(0, 1), alpha=0.5, label=SPLIT_NAMES.get(name, name)
        )
    diag.set(ylabel="fraction positive", title="Reliability diagram (10 bins)")
    diag.legend(loc="upper left")
    hist.set(xlabel="predicted P(positive)", ylabel="reviews", yscale="log")
    return _save(fig, path)


def accuracy_by_length(split: SplitPredictions) -> pd.DataFrame:
    bucket = pd.cut(split.lengths, LENGTH_BINS, right=False)
    correct = (split.probabilities >= 0.5) == (split.labels == 1)
    return (
        pd.DataFrame({"tokens": bucket, "correct": correct})
        .groupby("tokens", observed=True)["correct"]
        .agg(accuracy="mean", reviews="size")
        .reset_index()
    )


def plot_accuracy_by_length(splits: dict[str, SplitPredictions], path: Path) -> Path:
    frames = []
    for name, s in splits.items():
        df = accuracy_by_length(s)
        df["split"] = SPLIT_NAMES.get(name, name)
        frames.append(df)
    df = pd.concat(frames)
    df["tokens"] = df["tokens"].map(
        lambda b: f"{int(b.left)}+" if np.isinf(b.right) else f"{int(b.left)}-{int(b.right) - 1}"
    )
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.barplot(df, x="tokens", y="accuracy", hue="split", ax=ax)
    for container, (_, group) in zip(ax.containers, df.groupby("split", sort=False)):
        ax.bar_label(
            container,
            labels=[f"n={n}" for n in group["reviews"]],
            fontsize=7,
            rotation=90,
            label_type="center",
            color="white",
        )
    low = max(0.0, df["accuracy"].min() - 0.1)
    ax.set(
        xlabel="tokens per review",
        ylabel="accuracy",
        ylim=(low, 1.0),
        title="Accuracy by review length",
    )
    return _save(fig, path)


def plot_embeddings(
    words: list[str], vectors: np.ndarray, polarity: np.ndarray, out: Path, seed: int = 0
) -> list[Path]:
    """Words at their 2-D PCA and t-SNE positions, coloured by polarity (log-odds of "positive")."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    limit = max(float(np.abs(polarity).max()), 1e-6)
    views = {
        "pca": ("PCA", PCA(n_components=2, random_state=seed)),
        "tsne": (
            "t-SNE",
            TSNE(
                n_components=2,
                perplexity=min(30.0, len(words) - 1.0),
                init="pca",
                random_state=seed,
            ),
        ),
    }
    paths = []
    for key, (name, method) in views.items():
        xy = method.fit_transform(np.asarray(vectors, np.float64))
        fig, ax = plt.subplots(figsize=(10, 8))
        points = ax.scatter(
            xy[:, 0], xy[:, 1], c=polarity, cmap="RdYlGn", vmin=-limit, vmax=limit, s=30
        )
        for (x, y), word in zip(xy, words):
            ax.annotate(word, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        fig.colorbar(points, ax=ax, label="model's log-odds of positive for the word alone")
        ax.set(title=f"GloVe vectors of {len(words)} words, {name}", xticks=[], yticks=[])
        ax.grid(False)
        paths.append(_save(fig, out / f"embeddings_{key}.png"))
    return paths
