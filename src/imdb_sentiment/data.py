"""Finding, reading, cleaning and splitting the IMDB reviews.

Sources, in order: a file the user names; a copy in the cache folder; Kaggle (when credentials
exist); the Stanford tarball. Every reader returns the same frame: review, sentiment, split
("train"/"test", or None when the source has no official split) and id (the review's number in
the aclImdb release, or None when the source has none).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tarfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from .files import UserError, fetch

log = logging.getLogger(__name__)

KAGGLE_DATASET = "lakshmi25npathi/imdb-dataset-of-50k-movie-reviews"
KAGGLE_FILE = "IMDB Dataset.csv"
STANFORD_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
STANFORD_FILE = "aclImdb_v1.tar.gz"
STANFORD_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
DEFAULT_CACHE = Path(
    os.environ.get("IMDB_SENTIMENT_CACHE", Path.home() / ".cache" / "imdb-sentiment")
)

_LABELS = {"positive": 1, "pos": 1, "1": 1, "negative": 0, "neg": 0, "0": 0}
_ACL_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_ACL_UNSUP = re.compile(r"(?:^|/)train/unsup/(\d+)_(\d+)\.txt$")
UNSUP_CSV = "imdb_unsup_50k.csv.gz"  # the release's unlabelled reviews as one CSV (review, id)

NO_DATA_HELP = """\
No IMDB data found, and it could not be downloaded.
Give it one of these ways:
  --data PATH      the Kaggle CSV ("IMDB Dataset.csv", also .gz/.zip), the Stanford aclImdb
                   folder or aclImdb_v1.tar.gz, or a CSV with review, sentiment and split columns
  cache folder     put one of those files in {cache}
  Kaggle           set KAGGLE_API_TOKEN (or ~/.kaggle/kaggle.json) and have network access
  Stanford         network access to {url}"""


@dataclass
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    source: str
    report: dict = field(default_factory=dict)

    @property
    def checksum(self) -> str:
        """SHA-256 of the rows (raw text, label) of all three splits: identifies the data seen."""
        h = hashlib.sha256()
        for name in ("train", "val", "test"):
            df = getattr(self, name)
            h.update(name.encode())
            for review, label in zip(df.review, df.label):
                h.update(f"{label}\t{review}\n".encode("utf-8", "surrogatepass"))
        return h.hexdigest()


# ---------------------------------------------------------------------------- reading


def read_reviews(path: Path) -> pd.DataFrame:
    """Read any supported source into a frame with columns review, label, split (raw text)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    name = path.name.lower()
    if path.is_dir():
        return _read_acl_folder(path)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _read_acl_tar(path)
    if name.endswith((".csv", ".csv.gz", ".gz", ".zip")):
        return _read_csv(path)
    raise UserError(
        f"{path}: unsupported data file (expected .csv, .csv.gz, .zip, aclImdb folder or .tar.gz)"
    )


def _read_csv(path: Path) -> pd.DataFrame:
    df = _read_csv_columns(path, ("review", "sentiment"))
    split = df["split"].str.strip().str.lower() if "split" in df.columns else None
    ids = pd.to_numeric(df["id"], errors="coerce") if "id" in df.columns else None
    return pd.DataFrame(
        {"review": df["review"], "sentiment": df["sentiment"], "split": split, "id": ids}
    )


def _read_csv_columns(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if m.lower().endswith(".csv")]
                if not members:
                    raise UserError(f"{path}: the zip archive holds no .csv file")
                with zf.open(members[0]) as f:
                    df = pd.read_csv(
                        io.TextIOWrapper(f, encoding="utf-8", errors="replace"),
                        dtype=str,
                        keep_default_na=False,
                    )
        else:
            df = pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="replace"
            )
    except UserError:
        raise
    except (
        EOFError,
        OSError,
        zipfile.BadZipFile,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeError,
    ) as e:
        raise UserError(f"{path}: cannot be read as CSV: {e}") from None
    df.columns = [str(c).strip().lstrip("\ufeff").lower() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}"
        )
    return df


def _read_acl_folder(path: Path) -> pd.DataFrame:
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    rows = []
    for f in sorted(root.glob("*/*/*.txt")):
        m = _ACL_MEMBER.search(f.relative_to(root).as_posix())
        if m:
            rows.append((f.read_text(encoding="utf-8", errors="replace"), m[2], m[1], int(m[3])))
    if not rows:
        raise UserError(f"{path}: no aclImdb reviews found (expected train/pos/*.txt and the like)")
    return pd.DataFrame(rows, columns=["review", "sentiment", "split", "id"])


def _read_acl_tar(path: Path) -> pd.DataFrame:
    # Members are read in memory, never extracted: no path in the archive can reach the disk.
    rows = [(text, m[2], m[1], int(m[3])) for m, text in _tar_texts(path, _ACL_MEMBER)]
    if not rows:
        raise UserError(f"{path}: no aclImdb reviews in this archive")
    return pd.DataFrame(rows, columns=["review", "sentiment", "split", "id"])


def _tar_texts(path: Path, pattern: re.Pattern) -> list[tuple[re.Match, str]]:
    """(match, text) of the archive's members whose name matches."""
    found = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                m = pattern.search(member.name)
                # Only regular files, never links, and no member that climbs out of the
                # archive's root.
                if m and member.isfile() and ".." not in Path(member.name).parts:
                    text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                    found.append((m, text))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UserError(
            f"{path}: damaged or truncated archive ({e}); delete it and fetch it again"
        ) from None
    return found


def find_unlabelled(
    data_source: str | os.PathLike, given: str | os.PathLike | None = None
) -> Path | None:
    """Where the unlabelled reviews are: `given` (--unlabelled), else next to the labelled data:
    UNSUP_CSV in the CSV's folder, train/unsup in the aclImdb folder, or the tarball itself (which
    read_unlabelled may find without any). None when there is nothing to look in."""
    if given:
        if not Path(given).exists():
            raise UserError(f"{given}: no such file or folder (--unlabelled)")
        return Path(given)
    source = Path(data_source)
    if source.is_dir():
        root = source / "aclImdb" if (source / "aclImdb").is_dir() else source
        return root if (root / "train" / "unsup").is_dir() else None
    if source.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        return source
    return source.parent / UNSUP_CSV if (source.parent / UNSUP_CSV).exists() else None


def read_unlabelled(path: Path) -> list[str]:
    """The unlabelled reviews' texts, raw as clean() keeps the labelled ones (so the same review
    has the same text in both; empty ones dropped), in the order of their ids: from a CSV with a
    review column, an aclImdb folder or its tarball."""
    path = Path(path)
    if path.is_dir():
        root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
        found = [
            (_ACL_UNSUP.search(f.relative_to(root).as_posix()), f)
            for f in root.glob("train/unsup/*.txt")
        ]
        rows = [(int(m[1]), f.read_text(encoding="utf-8", errors="replace")) for m, f in found if m]
    elif path.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        rows = [(int(m[1]), text) for m, text in _tar_texts(path, _ACL_UNSUP)]
    else:
        df = _read_csv_columns(path, ("review",))
        rows = list(enumerate(df["review"]))
    texts = (str(text) for _, text in sorted(rows, key=lambda r: r[0]))
    return [t for t in texts if t.strip()]


def without_texts_of(reviews: list[str], *others) -> list[str]:
    """`reviews` less those with the text of a review in `others`: fitting anything on the same
    text as a validation or test review would leak that review into its own evaluation."""
    barred = set().union(*(set(o) for o in others))
    return [r for r in reviews if r not in barred]


# ---------------------------------------------------------------------------- finding


def find_source(
    data: str | os.PathLike | None, cache_dir: Path = DEFAULT_CACHE
) -> tuple[Path, str]:
    """Return (path, how it was found). Raises UserError with NO_DATA_HELP when nothing works."""
    if data:
        return Path(data), "given with --data"
    # The Stanford tarball is not taken as is: download_stanford checks its hash, re-fetching a
    # bad copy.
    for name in (
        "imdb_50k_split.csv.gz",
        KAGGLE_FILE,
        "imdb-dataset-of-50k-movie-reviews.zip",
        "aclImdb",
    ):
        if (Path(cache_dir) / name).exists():
            return Path(cache_dir) / name, f"cached copy in {cache_dir}"
    errors = []
    if (Path(cache_dir) / STANFORD_FILE).exists():
        try:
            return download_stanford(cache_dir), f"cached copy in {cache_dir}"
        except UserError as e:
            errors.append(f"cached {STANFORD_FILE}: {e}")
    if kaggle_credentials_present():
        try:
            return download_kaggle(cache_dir), "downloaded from Kaggle"
        except Exception as e:  # the client raises many types; the message is what matters
            errors.append(f"Kaggle: {_redact(str(e))}")
    try:
        return download_stanford(cache_dir), "downloaded from Stanford"
    except Exception as e:
        errors.append(f"Stanford: {_redact(str(e))}")
    raise UserError(
        NO_DATA_HELP.format(cache=cache_dir, url=STANFORD_URL)
        + "\n\nTried:\n  "
        + "\n  ".join(errors)
    )


def kaggle_credentials_present() -> bool:
    home = Path.home() / ".kaggle"
    return bool(
        os.environ.get("KAGGLE_API_TOKEN")
        or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
        or (home / "access_token").exists()
        or (home / "kaggle.json").exists()
    )


def _redact(message: str) -> str:
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_KEY"):
        secret = os.environ.get(var)
        if secret:
            message = message.replace(secret, "***")
    return message


def download_kaggle(cache_dir: Path) -> Path:
    # Imported here: importing kaggle without credentials prints a long notice.
    from kaggle.api.kaggle_api_extended import KaggleApi

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    api = KaggleApi()
    api.authenticate()
    api.dataset_download_files(KAGGLE_DATASET, path=str(cache_dir), unzip=False, quiet=False)
    path = cache_dir / "imdb-dataset-of-50k-movie-reviews.zip"
    if not path.exists():
        raise RuntimeError(f"Kaggle download finished but {path} is missing")
    return path


def download_stanford(cache_dir: Path) -> Path:
    return fetch(STANFORD_URL, STANFORD_SHA256, cache_dir, STANFORD_FILE)


# ------------------------------------------------------------------------ cleaning and splitting


def strip_html(text: str) -> str:
    """Remove markup with BeautifulSoup; text without '<' or '&' has none, so it is returned as is.

    Not on the model's path: the model tokenizes the raw text (text.standardize removes the markup
    in the graph, at training and at serving alike). Used where text is read as the notebooks
    read it (the TF-IDF baseline, the benchmark's notebook-style prediction) and where a person
    reads it (review excerpts in report.md).
    """
    if "<" not in text and "&" not in text:
        return text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        return BeautifulSoup(text, "html.parser").get_text(" ")


def clean(raw: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Labels to 0/1; rows with no text or an unknown label dropped and counted.

    The text is kept raw: training, evaluation and serving all tokenize it with text.tokenize.
    """
    report = {"rows_read": len(raw)}
    label = raw["sentiment"].astype(str).str.strip().str.lower().map(_LABELS)
    review = raw["review"].astype(str)
    empty = review.str.strip().eq("")
    unknown = label.isna() & ~empty
    report["dropped_empty_text"] = int(empty.sum())
    report["dropped_unknown_label"] = int(unknown.sum())
    # Readers decode with errors="replace": bytes that are not UTF-8 become U+FFFD and are counted.
    report["rows_with_invalid_utf8"] = int(review.str.contains("\ufffd", regex=False).sum())
    keep = ~(empty | unknown)
    df = pd.DataFrame(
        {
            "review": review[keep],
            "label": label[keep].astype(int),
            **{c: raw[c][keep] if raw[c] is not None else None for c in ("split", "id")},
        }
    )
    return df.reset_index(drop=True), report


def split(df: pd.DataFrame, cfg) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Official split when the data has one; else duplicates removed, then seeded and stratified.
    Validation comes from train."""
    report = {}
    official = df["split"].notna().all() and set(df["split"]) <= {"train", "test"}
    if official:
        train, test = df[df.split == "train"], df[df.split == "test"]
        report["split"] = "official train/test"
    else:
        # Without an official split, a review that occurs twice could land in train and in test.
        dup = df.duplicated("review")
        report["duplicates_removed_before_split"] = int(dup.sum())
        df = df[~dup]
        train, test = train_test_split(
            df, test_size=cfg.test_fraction, random_state=cfg.seed, stratify=df.label
        )
        report["split"] = f"seeded stratified, test fraction {cfg.test_fraction}"
    # Duplicate reviews inside train would leak between train and validation.
    dup = train.duplicated("review")
    report["duplicates_dropped_from_train"] = int(dup.sum())
    report["test_reviews_also_in_train"] = int(test.review.isin(train.review).sum())
    train = train[~dup]
    if cfg.max_rows:
        train = train.sample(n=min(cfg.max_rows, len(train)), random_state=cfg.seed)
        test = test.sample(n=min(cfg.max_rows, len(test)), random_state=cfg.seed)
    try:
        blocks = (
            train["id"] // cfg.val_block if cfg.val_block and train["id"].notna().all() else None
        )
        if blocks is not None and _enough_blocks(blocks, train.label, cfg.val_fraction):
            train, val = _split_by_id_blocks(train, blocks, cfg)
            report["validation"] = (
                f"blocks of {cfg.val_block} consecutive ids per label (movies kept apart)"
            )
        else:
            train, val = train_test_split(
                train, test_size=cfg.val_fraction, random_state=cfg.seed, stratify=train.label
            )
            report["validation"] = "seeded stratified rows"
    except ValueError as e:  # too few reviews (or id blocks) of one label for the cut
        raise UserError(
            f"cannot carve a validation split from {len(train)} training reviews: {e}"
        ) from None

    def shuffle(d):
        return d.sample(frac=1.0, random_state=cfg.seed).reset_index(drop=True)[["review", "label"]]

    return shuffle(train), shuffle(val), shuffle(test), report


def _enough_blocks(blocks: pd.Series, labels: pd.Series, val_fraction: float) -> bool:
    """Each label needs 1 / val_fraction blocks, or validation would take far more than its
    share."""
    per_label = blocks.groupby(labels).nunique()
    return len(per_label) == 2 and per_label.min() * val_fraction >= 1


def _split_by_id_blocks(
    train: pd.DataFrame, blocks: pd.Series, cfg
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validation takes whole blocks of consecutive ids, the same share of blocks of each label.

    The aclImdb release numbers one movie's reviews consecutively (within each split and label),
    and its test movies are not in train. Rows drawn one by one would put reviews of the same movie
    on both sides, and validation would reward memorising titles and names, which test never does.
    """
    parts = []
    for _, rows in train.groupby("label"):
        cut = GroupShuffleSplit(n_splits=1, test_size=cfg.val_fraction, random_state=cfg.seed)
        keep, held = next(cut.split(rows, groups=blocks[rows.index]))
        parts.append((rows.iloc[keep], rows.iloc[held]))
    return pd.concat([t for t, _ in parts]), pd.concat([v for _, v in parts])


def load(data, cfg, cache_dir: Path = DEFAULT_CACHE) -> Splits:
    path, how = find_source(data, cache_dir)
    log.info(f"data: {path} ({how})")
    df, report = clean(read_reviews(path))
    if df.empty:
        raise UserError(f"{path}: no usable reviews (read {report['rows_read']} rows)")
    train, val, test, split_report = split(df, cfg)
    report.update(split_report, train=len(train), val=len(val), test=len(test))
    log.info("data: " + ", ".join(f"{k} {v}" for k, v in report.items()))
    splits = Splits(train, val, test, source=str(path), report=report)
    if log.isEnabledFor(logging.DEBUG):  # hashing 50k reviews is not free
        log.debug(f"data: checksum of the splits {splits.checksum}")  # as run folders record it
    return splits
