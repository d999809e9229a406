"""Batch prediction on Ray Data: review files in (one, many, a glob; any file system fsspec
reaches), one JSON line per review out, malformed records to a dead-letter folder with their
reason. Runs on a local Ray started for the job or on a Ray cluster; each worker loads the model
once. Ray is optional: `pip install imdb-sentiment[ray]`."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .cli import load_tensorflow
from .files import UserError
from .progress import shown
from .review_files import file_format, records

log = logging.getLogger(__name__)

PREDICTIONS, DEAD_LETTER = "predictions", "dead_letter"
# Written by pandas: its default of 10 decimals would round probabilities by up to 5e-11.
JSON_ARGS = {"double_precision": 15, "force_ascii": False}


def require_ray():
    try:
        import fsspec  # noqa: F401  (comes with ray[data])
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(
            "batch prediction needs Ray Data: pip install 'imdb-sentiment[ray]'"
        ) from None
    return ray


def expand(patterns: list[str]) -> list[str]:
    """The files the patterns name (globs expanded, on any fsspec file system), sorted."""
    import fsspec

    files = []
    for pattern in patterns:
        fs, _ = fsspec.core.url_to_fs(pattern)
        found = fs.glob(pattern) if fsspec.core.has_magic(pattern) else [pattern]
        found = [p for p in found if fs.isfile(p)]
        if not found:
            raise UserError(f"{pattern}: no such file")
        # Workers open the same files: a URL gets its protocol back (s3://...), a local path is
        # made absolute (the same on every worker of one machine, and in the output's `file`).
        files += [fs.unstrip_protocol(p) if "://" in pattern else os.path.abspath(p) for p in found]
    return sorted(set(files))


def read_file(item: dict):
    """Ray flat_map: a file's records. A file that cannot be read is one dead-letter record
    (line 0); the job goes on."""
    import fsspec

    path = item["path"]
    try:
        with fsspec.open(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
            for r in records(f, file_format(path)):
                bad = r.error is not None
                yield {
                    "file": path,
                    "line": r.line,
                    "review": "" if bad else r.review,
                    "reason": r.error if bad else "",
                    "raw": r.raw if bad else "",  # good rows carry their text once
                }
    except OSError as e:
        yield {"file": path, "line": 0, "review": "", "reason": f"cannot be read ({e})", "raw": ""}


class Scorer:
    """Ray map_batches callable class: one Predictor per worker, loaded when the worker starts."""

    def __init__(self, model: str, batch_size: int, intra_op_threads: int):
        # The worker's first TensorFlow call, so that its threads can still be set; its start-up
        # notices held back, as every command holds them.
        load_tensorflow(intra_op_threads=intra_op_threads)
        from .predict import Predictor

        self.predictor = Predictor(Path(model))
        self.batch_size = batch_size

    def __call__(self, batch):
        import pandas as pd

        out = self.predictor.predict(batch["review"].tolist(), self.batch_size)
        return pd.DataFrame(
            {
                "file": batch["file"].to_numpy(),
                "line": batch["line"].to_numpy(),
                "label": [o["label"] for o in out],
                "probability": [o["probability"] for o in out],
            }
        )


def _good(batch):
    return batch[batch["reason"] == ""]


def _bad(batch):
    return batch.loc[batch["reason"] != "", ["file", "line", "reason", "raw"]]


@dataclass
class Counts:
    files: int  # read
    dead_letter: int  # malformed records


def run(
    inputs: list[str],
    out: str,
    model: Path,
    *,
    address: str | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    batch_size: int = 256,
    intra_op_threads: int = 1,
) -> Counts:
    """Predicts every review of the inputs into out/predictions/*.json (JSON lines of file, line,
    label, probability; in no particular order) and writes malformed records to
    out/dead_letter/*.json (file, line, reason, raw)."""
    ray = require_ray()
    from .export import resolve_version  # TensorFlow: only the driver and the model workers

    version = resolve_version(model)  # the driver checks it before any worker starts
    files = expand(inputs)
    _refuse_written(out)
    log.info(f"{len(files)} input file(s); model {version}")
    quiet = not log.isEnabledFor(logging.DEBUG)  # Ray's own INFO lines only with -v
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    # The model workers hold their CPUs for the whole job; with no CPU left over, the tasks that
    # read the files never start and the job waits forever (seen with 2 workers on 2 cores).
    needed = math.ceil(workers * cpus_per_worker) + 1
    started = _start_ray(ray, address or os.environ.get("RAY_ADDRESS"), needed, quiet)
    try:
        if ray.cluster_resources().get("CPU", 0) < needed:
            log.warning(
                f"the cluster has fewer CPUs than the {needed} that --workers {workers} x "
                f"--cpus-per-worker {cpus_per_worker} and one reading task need: the job waits "
                "until it grows"
            )
        # Ray's bars on a terminal only, as ours; without them Ray warns that they are off.
        ray.data.DataContext.get_current().enable_progress_bars = shown()
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        rows = ray.data.from_items(
            [{"path": p} for p in files], override_num_blocks=len(files)
        ).flat_map(read_file)
        # Reading and parsing twice (once per output) costs far less than keeping every parsed
        # review in the object store until both outputs are written.
        dead = _write_dead_letter(rows, out)
        _write_predictions(
            ray,
            rows,
            out,
            version,
            batch_size=batch_size,
            intra_op_threads=intra_op_threads,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
        )
    finally:
        if started:
            ray.shutdown()
    return Counts(len(files), dead)


def _refuse_written(out: str) -> None:
    """A UserError when either output folder under out holds files already."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(out)
    for name in (PREDICTIONS, DEAD_LETTER):
        if fs.exists(f"{root}/{name}") and fs.ls(f"{root}/{name}"):
            raise UserError(f"{out}/{name} is not empty: give another --out or remove it")


def _start_ray(ray, address: str | None, needed: int, quiet: bool) -> bool:
    """Joins the Ray at address (None: starts a local one with at least `needed` CPUs) unless
    this process has joined one already; whether it did."""
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING if quiet else logging.INFO,
            # A local Ray's CPUs are scheduling slots: one more than the cores costs nothing.
            num_cpus=None if address else max(os.cpu_count() or 1, needed),
        )
    except ConnectionError as e:
        raise UserError(f"cannot join the Ray cluster at {address}: {e}") from None
    return True


def _write_dead_letter(rows, out: str) -> int:
    """Writes the malformed records of the Ray dataset rows (read_file's) to out/dead_letter,
    if any; how many."""
    dead = rows.map_batches(_bad, batch_format="pandas").materialize()
    n_dead = dead.count()
    if n_dead:
        dead.write_json(f"{out}/{DEAD_LETTER}", **JSON_ARGS)
        log.warning(f"{n_dead} malformed record(s) written to {out}/{DEAD_LETTER}")
    return n_dead


def _write_predictions(
    ray,
    rows,
    out: str,
    version: Path,
    *,
    batch_size: int,
    intra_op_threads: int,
    workers: int,
    cpus_per_worker: float,
) -> None:
    """Scores the good records of the Ray dataset rows (read_file's) on `workers` Scorer actors
    of the model `version` and writes them to out/predictions."""
    start = time.perf_counter()
    rows.map_batches(_good, batch_format="pandas").map_batches(
        Scorer,
        fn_constructor_kwargs={
            "model": str(version),
            "batch_size": batch_size,
            "intra_op_threads": intra_op_threads,
        },
        batch_size=batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
    ).write_json(f"{out}/{PREDICTIONS}", **JSON_ARGS)
    log.info(f"predictions written to {out}/{PREDICTIONS} in {time.perf_counter() - start:.1f}s")
