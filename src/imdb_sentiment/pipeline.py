"""The whole pipeline as two Python calls: `fit` (what scripts/train.py does) and
`evaluate_model` (what scripts/evaluate.py does). Each returns typed results; the commands only
parse their flags, call these and print.

    from imdb_sentiment import fit
    run = fit("reviews.csv", {"epochs": 2}, run_dir="runs/try", export_dir="models/try")
    run.results.val.accuracy, run.export_path, run.card
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from . import counterfactuals
from . import data as review_data
from .baseline import fit_baseline, fit_tfidf
from .card import CARD_FILE, model_card
from .config import PRESETS, Config
from .evaluate import (
    SplitPredictions,
    correct,
    edits,
    evaluate_splits,
    hard_lines,
    mcnemar,
    missed_edits,
    positive_probabilities,
)
from .export import export
from .files import UserError, save_model, write_json
from .pretrain import Encoder, find_or_make
from .progress import Phases
from .report import write_report
from .results import Paired, Results, read_results
from .runs import RUNS_DIR, choose_run_dir, finished_run, load_artifacts, new_run_dir
from .short import short_inputs
from .text import Vectorizer
from .train import Trained, is_chief, make_strategy, train, writable_run_dir

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A finished training run: what it measured, the model it made and where it wrote."""

    results: Results
    # The whole model (token ids and n-gram ids in, P(positive) out) and what turns raw reviews
    # into its inputs; None for a run that was finished already (load them with
    # runs.load_artifacts(run.run_dir), or use the export).
    model: keras.Model | None
    vectorizer: Vectorizer | None
    config: Config
    run_dir: Path  # config.json, metrics.json, report.md, model_card.md, model.keras, ...
    export_path: Path | None = None  # the exported SavedModel version, when exported
    trained: bool = True  # False: the run was finished already and was loaded, not trained

    @property
    def card(self) -> str:
        """The model card (Markdown), as written beside the run's report and in its export."""
        return (self.run_dir / CARD_FILE).read_text(encoding="utf-8")

    def predict(self, reviews: list[str]) -> np.ndarray:
        """P(positive) of each raw review, as the exported model gives it."""
        if self.model is None:
            raise UserError(
                f"{self.run_dir}: this run was finished before and is not loaded; predict with "
                "its export (predict.Predictor) or runs.load_artifacts(run.run_dir)"
            )
        return positive_probabilities(self.model, self.vectorizer, list(reviews))


@dataclass
class Sources:
    """Where the data beside the labelled reviews comes from (the flags of scripts/train.py)."""

    cache_dir: Path = review_data.DEFAULT_CACHE
    counterfactuals: str | None = None  # a folder, "none", or None: found as train.py finds it
    unlabelled: str | None = None  # None: found beside the data
    pretrained: Path | None = None  # an encoder folder the LSTM starts from


@dataclass
class Steps:
    """Which optional steps a run takes."""

    export_dir: Path | None = None  # None: no export
    compare_baseline: bool = False
    skip_test: bool = False
    fresh: bool = False
    distribute: str = "none"  # "none", "mirrored" or "multiworker"
    argv: list[str] = field(default_factory=list)  # the command line, for the model card


def config_from(config: Config | dict | str | Path | None, preset: str | None = None) -> Config:
    """A Config from a Config, a dict of some of its fields (over the preset's), or a JSON file
    (a run's config.json); None: the preset's (default: "default")."""
    if preset is not None and preset not in PRESETS:
        raise UserError(f"preset {preset!r}: not one of {', '.join(sorted(PRESETS))}")
    base = PRESETS[preset or "default"]
    if config is None:
        return Config(**base)
    if isinstance(config, dict):
        return Config.from_dict({**base, **config})
    if preset is not None:
        raise UserError("give a preset with a dict of fields, not with a whole config")
    return config if isinstance(config, Config) else Config.load(Path(config))


def fit(
    data: str | Path | None,
    config: Config | dict | str | Path | None = None,
    *,
    preset: str | None = None,
    run_dir: str | Path | None = None,
    export_dir: str | Path | None = None,
    sources: Sources | None = None,
    steps: Steps | None = None,
) -> Run | None:
    """Trains, evaluates and (with export_dir) exports the model, as scripts/train.py does.

    data: an IMDB CSV, an aclImdb folder or tarball, or None (found or downloaded into
    sources.cache_dir). config: see config_from. run_dir: where the run writes (default
    runs/<time>); an unfinished run there continues, a finished one of the same config and data
    is loaded and returned (run.trained is False). Returns None on a worker of a multi-worker
    cluster other than the chief, which writes nothing."""
    cfg, sources, steps = config_from(config, preset), sources or Sources(), steps or Steps()
    if export_dir is not None:
        steps = dataclasses.replace(steps, export_dir=Path(export_dir))
    run_dir = Path(run_dir) if run_dir else None
    _check_distribute(steps, cfg, sources, run_dir)
    strategy = make_strategy(steps.distribute)
    phases = Phases()
    with phases("reading the reviews") as phase:
        splits = review_data.load(data, cfg, sources.cache_dir)
        phase.rows = len(splits.train) + len(splits.val) + len(splits.test)
    if finished_run(run_dir, steps.fresh, cfg, splits.checksum):
        return _finished(run_dir, cfg)
    run_dir = choose_run_dir(run_dir, steps.fresh, cfg, splits.checksum)
    log.info(f"run: {run_dir}")
    with phases("pairs, unlabelled reviews and encoder"):
        inputs = _training_inputs(cfg, splits, sources)
    # Only the chief writes run_dir and the export; other workers write a folder removed on exit.
    with writable_run_dir(run_dir, strategy) as out:
        cfg.save(out / "config.json")
        pairs_report = inputs.pairs.report if inputs.pairs else None
        write_json(out / "data_report.json", _data_report(splits, pairs_report))
        trained = train(
            cfg, splits, out, strategy, inputs.encoder, inputs.unlabelled, inputs.pairs, phases
        )
    if not is_chief(strategy):
        return None  # the rest needs no other worker: the trained model predicts in this process
    with phases("evaluating"):
        results, predictions = _measure(trained, splits, inputs, steps)
    results.phases = phases.done  # metrics.json is written in the last phase, so ends before it
    run = Run(results, trained.model, trained.vectorizer, cfg, run_dir)
    command = _command(data, run, sources, steps)
    with phases("writing the run" + (" and the export" if steps.export_dir else "")):
        _write_run(run, trained, splits, predictions, command, steps.export_dir)
    log.info(f"phases: {sum(p.seconds for p in phases.done):.0f}s in all")
    return run


def _check_distribute(steps: Steps, cfg: Config, sources: Sources, run_dir: Path | None) -> None:
    """Refuses, before any data is read, what a multi-worker cluster cannot do."""
    if steps.distribute not in ("none", "mirrored", "multiworker"):
        raise UserError(f"distribute {steps.distribute!r}: none, mirrored or multiworker")
    if steps.distribute != "multiworker":
        return
    if run_dir is None:
        raise UserError(
            "--distribute multiworker needs --run-dir: give every worker the same "
            "folder, on a file system they share (the chief writes it; the others "
            "resume from it)"
        )
    if steps.fresh:  # one worker would empty it under another
        raise UserError(
            "--distribute multiworker does not take --fresh: delete the run folder "
            "before starting the workers"
        )
    if cfg.pretrain and not sources.pretrained:  # every worker would pretrain into one cache
        raise UserError(
            "--distribute multiworker cannot pretrain: make the encoder first with "
            "scripts/pretrain.py and give it with --pretrained DIR, or --no-pretrain"
        )


@dataclass
class TrainingInputs:
    """What training reads beside the labelled reviews."""

    pairs: counterfactuals.Counterfactuals | None
    encoder: Encoder | None
    unlabelled: list[str] | None


def _training_inputs(cfg: Config, splits: review_data.Splits, sources: Sources) -> TrainingInputs:
    """The human pairs, the pretrained encoder and the unlabelled reviews, each when configured
    and found."""
    folder = counterfactuals.find(sources.counterfactuals, splits.source, sources.cache_dir)
    pairs = counterfactuals.load(folder, splits, cfg) if folder else None
    unlabelled_path = review_data.find_unlabelled(splits.source, sources.unlabelled)
    encoder = None
    if sources.pretrained:
        encoder = Encoder.load(sources.pretrained)
    elif cfg.pretrain:
        encoder = find_or_make(cfg, splits, unlabelled_path, sources.cache_dir)
    unlabelled = None
    if cfg.bag_unlabelled and cfg.ngram_buckets:
        unlabelled = review_data.read_unlabelled(unlabelled_path) if unlabelled_path else []
        unlabelled = unlabelled[: cfg.max_rows or None]  # a quick run stays quick
        log.info(
            f"bag: {len(unlabelled)} unlabelled reviews from {unlabelled_path}"
            if unlabelled
            else "bag: no unlabelled reviews found (give them with --unlabelled PATH); "
            "it fits the training reviews alone"
        )
    return TrainingInputs(pairs, encoder, unlabelled)


def _data_report(splits: review_data.Splits, pairs_report: dict | None) -> dict:
    return {
        "source": splits.source,
        "checksum": splits.checksum,
        **splits.report,
        "counterfactuals": pairs_report,
    }


def _measure(
    trained: Trained, splits: review_data.Splits, inputs: TrainingInputs, steps: Steps
) -> tuple[Results, dict[str, SplitPredictions]]:
    """Every figure of the trained model. The test split (and the dev pairs) are read here,
    once, after every choice was made on validation; not at all with steps.skip_test."""
    model, vec = trained.model, trained.vectorizer
    names = ("val",) if steps.skip_test else ("val", "test")
    scores, predictions = evaluate_splits(model, vec, splits, names)
    results = Results(
        **scores,
        epochs_run=len(trained.history["loss"]),
        train_seconds=trained.train_seconds,
        parts=trained.parts,
        encoder=inputs.encoder.describe() if inputs.encoder else None,
        pairs_trained_on=trained.pairs,
    )
    # Always fitted (about 30 s on the full data): the short-input measure is judged against it.
    tfidf = fit_tfidf(splits)

    def baseline(texts: list[str]) -> np.ndarray:
        return tfidf.predict_proba(texts)[:, 1]

    results.short_inputs = short_inputs(model, vec, splits.val.review, splits.val.label, baseline)
    if pairs := inputs.pairs:  # the held-out training pairs for choosing; the dev pairs read
        read = {"held_out": pairs.held_out} | ({} if steps.skip_test else {"dev": pairs.dev})
        results.edits = {k: edits(model, vec, p, baseline) for k, p in read.items()}
        results.missed_edits = {k: missed_edits(model, vec, p) for k, p in read.items()}
    results.hard_lines = hard_lines(model, vec)
    if steps.compare_baseline:
        results.baseline, base_p = fit_baseline(splits, not steps.skip_test, model=tfidf)
        results.model_vs_baseline = _paired(predictions, base_p)
    return results, predictions


def _paired(predictions: dict, base_p: dict) -> Paired | None:
    """McNemar's test on the test reviews both scored, when the test split was read."""
    if "test" not in predictions:
        return None
    y, p = predictions["test"].labels, predictions["test"].probabilities
    test = mcnemar(correct(y, p), correct(y, base_p["test"]), names=("model", "baseline"))
    return Paired.from_dict(test)


def _write_run(
    run: Run,
    trained: Trained,
    splits: review_data.Splits,
    predictions: dict[str, SplitPredictions],
    command: str,
    export_dir: Path | None,
) -> None:
    """metrics.json, the model, the report and the model card into the run folder, and the
    export (with its card) when asked. metrics.json and model.keras are written last but the
    card: together they mark the run finished."""
    run_dir, vec = run.run_dir, run.vectorizer
    data_report = {"source": splits.source, "checksum": splits.checksum, **splits.report}
    card = model_card(run.results, run.config, data_report, command, trained.embedding_report)
    (run_dir / CARD_FILE).write_text(card, encoding="utf-8")
    write_json(run_dir / "metrics.json", run.results.to_dict())
    save_model(run.model, run_dir / "model.keras")
    t = time.perf_counter()
    report = write_report(run_dir, predictions, run.results, run_dir / "history.csv")
    log.info(f"report: {report} and its plots in {time.perf_counter() - t:.1f}s")
    if export_dir is None:
        return
    info = {
        "config": run.config.to_dict(),
        "vocabulary_size": vec.size,
        "embedding": trained.embedding_report,
        "metrics": run.results.to_dict(),
        "data": data_report,
        "run_dir": str(run_dir.resolve()),
    }
    run.export_path = export(run.model, vec, info, export_dir, card=card)


def _command(data, run: Run, sources: Sources, steps: Steps) -> str:
    """The command that trains this run again: its config (config.json pins every
    hyper-parameter) on the same data and pairs."""
    if steps.argv:
        return shlex.join(["python", "scripts/train.py", *steps.argv])
    args = ["python", "scripts/train.py", "--config", str(run.run_dir / "config.json")]
    args += ["--data", str(data)] if data else []
    if sources.counterfactuals:
        args += ["--counterfactuals", str(sources.counterfactuals)]
    if sources.unlabelled:
        args += ["--unlabelled", str(sources.unlabelled)]
    if sources.pretrained:
        args += ["--pretrained", str(sources.pretrained)]
    return shlex.join(args + ["--run-dir", "runs/again"])


def _finished(run_dir: Path, cfg: Config) -> Run:
    """The finished run in run_dir, its results as it wrote them."""
    return Run(read_results(run_dir), None, None, cfg, run_dir, trained=False)


@dataclass
class Evaluation:
    """A trained model evaluated again (evaluate_model)."""

    results: Results
    out: Path  # evaluation.json, report.md and its plots
    same_data: bool  # the data the model was trained on (by checksum)


def evaluate_model(
    path: str | Path | Run,
    data: str | Path | None = None,
    splits: tuple[str, ...] = ("val", "test"),
    *,
    sources: Sources | None = None,
    other_data: bool = False,
    out: str | Path | None = None,
) -> Evaluation:
    """Evaluates a run folder, an exported model (a version or a folder of versions) or a Run
    again, on the splits its own config makes of the data, and writes the report to `out`
    (default: the run folder, else runs/eval-<time>). Data other than the model was trained on
    is refused unless other_data: its seeded split may put training reviews into validation and
    test. Choose on "val"; read "test" for reports."""
    if not splits or set(splits) - {"val", "test"}:
        raise UserError("splits takes val, test or both")
    path = path.run_dir if isinstance(path, Run) else Path(path)
    sources = sources or Sources()
    art = load_artifacts(path)
    labelled = review_data.load(data, art.cfg, sources.cache_dir)
    same_data = _check_same_data(path, art.data, labelled, other_data)
    scores, predictions = evaluate_splits(art.model, art.vectorizer, labelled, splits)
    results = Results(**scores)
    if "val" in splits:  # the model and its parts; fitting the baseline is train.py's work
        results.short_inputs = short_inputs(
            art.model, art.vectorizer, labelled.val.review, labelled.val.label
        )
    folder = counterfactuals.find(sources.counterfactuals, labelled.source, sources.cache_dir)
    if folder:  # the same held-out pairs as at training: the model's seed and splits
        pairs = counterfactuals.load(folder, labelled, art.cfg)
        read = {"held_out": pairs.held_out} if "val" in splits else {}
        if "test" in splits:  # the dev pairs are read with the test split, for reports only
            read["dev"] = pairs.dev
        results.edits = {k: edits(art.model, art.vectorizer, p) for k, p in read.items()}
    out = _evaluation_folder(path, out)
    write_json(
        out / "evaluation.json",
        {
            "model": str(path.resolve()),
            "data": labelled.source,
            "checksum": labelled.checksum,
            "training_data": same_data,
            **results.to_dict(),
        },
    )
    title = f"Evaluation of {path}"
    log.info(f"report: {write_report(out, predictions, results, art.history_csv, title=title)}")
    return Evaluation(results, out, same_data)


def _check_same_data(
    path: Path, then: dict | None, splits: review_data.Splits, other_data: bool
) -> bool:
    """Whether `splits` come from the data the model at `path` was trained on (its data report
    `then`); refused when not, unless other_data."""
    checksum = (then or {}).get("checksum")
    if checksum == splits.checksum:
        return True
    what = (
        f"not the data {path} was trained on ({then.get('source')}; data checksum "
        f"{checksum[:12]}… -> {splits.checksum[:12]}…)"
        if checksum
        else f"not checked against the data {path} was trained on (none recorded)"
    )
    if not other_data:
        raise UserError(
            f"{splits.source}: {what}; its validation and test splits may hold "
            f"training reviews. Give the training data with --data, or add "
            f"--other-data to evaluate anyway"
        )
    log.warning(
        f"{splits.source}: {what}; the splits may overlap training, so the figures may be "
        "optimistic"
    )
    return False


def _evaluation_folder(path: Path, out: str | Path | None) -> Path:
    out = Path(out) if out else None
    out = out or (path if (path / "config.json").exists() else new_run_dir(RUNS_DIR, "eval-"))
    out.mkdir(parents=True, exist_ok=True)
    replaced = [name for name in ("evaluation.json", "report.md") if (out / name).exists()]
    if replaced:  # a report is rebuilt from the model; nothing trained is in these files
        log.info(f"report: {' and '.join(replaced)} in {out} rewritten with this evaluation")
    return out
