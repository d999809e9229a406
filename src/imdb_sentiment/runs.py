"""Run folders: where a run writes, which interrupted run a command continues, and loading a
trained model back from a run folder or an exported version."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from .config import Config
from .export import resolve_version
from .files import UserError, discard_dir
from .text import VOCAB_FILE, Vectorizer, load_vocabulary

CHECKPOINT = "checkpoint.npz"  # the training state after the last finished epoch (train.Checkpoint)
RUNS_DIR = Path("runs")
FINISHED = ("model.keras", "metrics.json")  # written last by a training run, in that order


def run_differences(run: Path, cfg, data_checksum: str) -> list[str]:
    """What differs between the run in `run` (its config.json and data_report.json) and this config
    and data, one "key: then -> now" line each; [] when that run may be continued by this one.

    Raises OSError, ValueError or KeyError when the run's files are missing or unreadable.
    """
    then = json.loads((run / "config.json").read_text())
    now = cfg.to_dict()

    def shown(d, k):
        return json.dumps(d[k]) if k in d else "(absent)"

    out = [
        f"{k}: {shown(then, k)} -> {shown(now, k)}"
        for k in sorted(then.keys() | now.keys())
        if k not in then or k not in now or then[k] != now[k]
    ]
    checksum = json.loads((run / "data_report.json").read_text())["checksum"]
    if checksum != data_checksum:
        out.append(f"data checksum: {checksum[:12]}… -> {data_checksum[:12]}…")
    return out


def find_unfinished(base: Path, cfg, data_checksum: str) -> Path | None:
    """The newest run under base that was interrupted (it still has a checkpoint) with the same
    config and the same data: running the same command again continues it."""
    for run in sorted(
        Path(base).glob(f"*/{CHECKPOINT}"), key=lambda p: p.stat().st_mtime, reverse=True
    ):
        try:
            if not run_differences(run.parent, cfg, data_checksum):
                return run.parent
        except (OSError, ValueError, KeyError):
            continue
    return None


def is_finished(run: Path) -> bool:
    """Whether `run` holds a finished training run: its model and metrics, and no checkpoint."""
    run = Path(run)
    return all((run / name).exists() for name in FINISHED) and not (run / CHECKPOINT).exists()


def finished_run(run_dir: Path | None, fresh: bool, cfg, data_checksum: str) -> bool:
    """True when run_dir holds a finished run of this config and data, which this command then
    leaves as it is; refused (UserError, naming what differs) when it holds one of another config
    or data. False when there is no finished run there, or with fresh (it is to be replaced)."""
    if run_dir is None or fresh or not is_finished(run_dir):
        return False
    _refuse_another_run(Path(run_dir), "a finished run", cfg, data_checksum)
    return True


def choose_run_dir(run_dir: Path | None, fresh: bool, cfg, data_checksum: str) -> Path:
    """The folder this run writes into, checked before anything is written there.

    With run_dir: an unfinished run in it is continued only when its config and data are these
    (otherwise refused, naming what differs, with the folder untouched); with fresh, the earlier
    run's files are discarded first. A finished run in it is never trained over without fresh
    (finished_run tells first). Without run_dir: the newest unfinished run of this config and
    data under RUNS_DIR (unless fresh), else a new RUNS_DIR/<time>.
    """
    if run_dir is None:
        return (None if fresh else find_unfinished(RUNS_DIR, cfg, data_checksum)) or new_run_dir()
    run_dir = Path(run_dir)
    if fresh:
        if run_dir.is_dir() and any(run_dir.iterdir()):
            if not (run_dir / "config.json").exists():
                raise UserError(
                    f"{run_dir}: not a run folder (no config.json), so --fresh does "
                    f"not empty it; choose a new or empty --run-dir"
                )
            discard_dir(run_dir)
    elif (run_dir / CHECKPOINT).exists():
        _refuse_another_run(run_dir, "an unfinished run", cfg, data_checksum)
    elif is_finished(run_dir):  # finished_run was not asked first
        raise UserError(f"{run_dir}: holds a finished run; add --fresh to replace it")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _refuse_another_run(run_dir: Path, what: str, cfg, data_checksum: str) -> None:
    """UserError, naming each difference, when the run in run_dir has another config or data."""
    try:
        differences = run_differences(run_dir, cfg, data_checksum)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(
            f"{run_dir}: holds {what} whose config.json or data_report.json cannot be read "
            f"({e}); add --fresh to start it over, or choose another --run-dir"
        ) from None
    if differences:
        raise UserError(
            f"{run_dir}: holds {what} with another config or data "
            f"({'; '.join(differences)}); to use it, give its own config "
            f"(--config {run_dir / 'config.json'}) and data; add --fresh to start "
            f"it over, or choose another --run-dir"
        )


def new_run_dir(base: Path = RUNS_DIR, prefix: str = "") -> Path:
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    path = base / stamp
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


@dataclass
class Artifacts:
    """What scripts need to rebuild a trained model in Keras: from a run folder or an exported
    version."""

    cfg: Config
    vectorizer: Vectorizer
    model: keras.Model
    history_csv: Path | None
    data: dict | None  # the data report recorded at training (source, checksum, ...), if any


def load_artifacts(path: Path) -> Artifacts:
    """A run folder (config.json, vocab.txt, model.keras), or an exported version or model
    folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such run folder or model")
    if (path / "config.json").exists():
        cfg, history = Config.load(path / "config.json"), path / "history.csv"
        report = path / "data_report.json"
        data = json.loads(report.read_text()) if report.exists() else None
    else:
        path = resolve_version(path)
        info = json.loads((path / "model_info.json").read_text())
        cfg = Config.from_dict(info["config"], source=str(path / "model_info.json"))
        history, data = Path(info.get("run_dir", path)) / "history.csv", info.get("data")
    for name in (VOCAB_FILE, "model.keras"):
        if not (path / name).exists():
            raise UserError(
                f"{path}: no {name} here; expected a run folder or a version exported by train.py"
            )
    vocabulary = load_vocabulary(path)
    try:  # safe_mode refuses Lambda layers and anything else that would run pickled Python code
        model = keras.saving.load_model(path / "model.keras", safe_mode=True)
    except ValueError as e:
        raise UserError(
            f"{path / 'model.keras'}: refused to load: {str(e).splitlines()[0]}"
        ) from None
    return Artifacts(
        cfg,
        Vectorizer.from_config(vocabulary, cfg),
        model,
        history if history.exists() else None,
        data,
    )
