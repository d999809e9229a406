import gzip
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from imdb_sentiment.config import Config
from imdb_sentiment.embeddings import embedding_matrix, iter_glove_text
from imdb_sentiment.files import UserError

LINES = ["the 0.1 0.2 0.3", "movie 1 2 3", "good -1 -2 -3.5", "the 9 9 9"]


def test_text_file_plain_gz_and_zip_with_header_and_duplicate_words(tmp_path):
    (tmp_path / "g.txt").write_text("4 3\n" + "\n".join(LINES) + "\n")
    with gzip.open(tmp_path / "g.txt.gz", "wt") as f:
        f.write("\n".join(LINES) + "\n")
    with zipfile.ZipFile(tmp_path / "g.zip", "w") as zf:
        zf.writestr("glove.6B.3d.txt", "\n".join(LINES) + "\n")
    for name in ("g.txt", "g.txt.gz", "g.zip"):
        m, report = embedding_matrix(
            ["movie", "the", "absent"],
            Config(glove_dim=3, glove_path=str(tmp_path / name)),
        )
        assert m.shape == (5, 3)
        assert m[0].tolist() == [0, 0, 0] and m[1].tolist() == [0, 0, 0]  # padding, OOV
        np.testing.assert_allclose(m[2], [1, 2, 3])
        np.testing.assert_allclose(m[3], [0.1, 0.2, 0.3])  # the first "the" wins
        assert np.abs(m[4]).sum() > 0  # missing word: random, not zero
        assert (
            report["found"] == 2
            and report["duplicate_words"] == 1
            and report["coverage"] == pytest.approx(2 / 3, abs=1e-3)
        )


def test_wrong_dimension_names_file_and_line(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("the 1 2 3\nmovie 1 2\n")
    with pytest.raises(UserError, match=r"g.txt:2: expected a word and 3 numbers, found 2"):
        list(iter_glove_text(path, 3))


def test_offline_package_gives_the_official_50d_vectors():
    m, report = embedding_matrix(["the", "good", "zzzzqqqq"], Config())
    assert report["found"] == 2 and m.shape == (5, 50)
    # glove.6B.50d.txt, first line: "the 0.418 0.24968 -0.41242 ..."
    np.testing.assert_allclose(m[2][:3], [0.418, 0.24968, -0.41242], rtol=1e-5)


def open_handles(path) -> list[str]:
    """This process's file descriptors open on path."""
    fds = Path("/proc/self/fd")
    return [fd.name for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve())]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list open files")
def test_a_zip_archive_is_closed_after_reading_and_after_an_error(tmp_path):
    good, bad, two = tmp_path / "good.zip", tmp_path / "bad.zip", tmp_path / "two.zip"
    for path, members in (
        (good, {"g.txt": "\n".join(LINES)}),
        (bad, {"g.txt": "the 1 2 3\nmovie 1 2\n"}),
        (two, {"a.txt": "", "b.txt": ""}),
    ):
        with zipfile.ZipFile(path, "w") as zf:
            for name, body in members.items():
                zf.writestr(name, body)
    assert len(list(iter_glove_text(good, 3))) == 4 and not open_handles(good)
    # The error's traceback keeps the reading frames alive: the archive must be closed regardless.
    with pytest.raises(UserError, match="bad.zip:2: expected a word") as wrong_width:
        list(iter_glove_text(bad, 3))
    assert wrong_width.value.__traceback__ is not None and not open_handles(bad)
    with pytest.raises(UserError, match="name the member") as ambiguous:
        list(iter_glove_text(two, 3))
    assert ambiguous.value.__traceback__ is not None and not open_handles(two)
