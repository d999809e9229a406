"""Downloads from a real HTTP server on 127.0.0.1: hash checks, re-fetching, errors; safe archive
reading."""

import hashlib
import http.server
import io
import tarfile
import threading

import pytest
from conftest import run_script

from imdb_sentiment import data
from imdb_sentiment.files import UserError, fetch


@pytest.fixture
def server():
    """Serves `files` (path -> bytes); anything else is a 404. Counts the requests."""
    files, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", files, hits
    httpd.shutdown()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_fetch_checks_the_hash_and_refetches_a_truncated_copy(server, tmp_path, caplog):
    url, files, hits = server
    body = b"reviews " * 5000
    files["/f.bin"] = body
    path = fetch(url + "/f.bin", sha(body), tmp_path, "f.bin")
    assert path.read_bytes() == body and len(hits) == 1
    assert (
        fetch(url + "/f.bin", sha(body), tmp_path, "f.bin") == path and len(hits) == 1
    )  # cached, checked
    path.write_bytes(body[:1000])  # a download cut short
    with caplog.at_level("INFO", logger="imdb_sentiment"):
        assert fetch(url + "/f.bin", sha(body), tmp_path, "f.bin").read_bytes() == body
    assert len(hits) == 2 and "does not match" in caplog.messages[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no temporary file left


def test_fetch_refuses_corrupted_content_and_keeps_nothing(server, tmp_path):
    url, files, _ = server
    files["/f.bin"] = b"not what was published"
    with pytest.raises(UserError, match="could not download .*f.bin.*(hash|corrupted)"):
        fetch(url + "/f.bin", sha(b"the real file"), tmp_path, "f.bin")
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_no_network_are_clear_errors(server, tmp_path):
    url, _, _ = server
    with pytest.raises(UserError, match="404"):
        fetch(url + "/missing.bin", sha(b""), tmp_path, "missing.bin")
    with pytest.raises(UserError, match="could not download http://127.0.0.1:9/"):
        fetch("http://127.0.0.1:9/x.bin", sha(b""), tmp_path, "x.bin")  # nothing listens on port 9
    assert list(tmp_path.iterdir()) == []


def acl_tar(reviews: dict[str, str], extra=None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in reviews.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def test_a_bad_cached_tarball_is_fetched_again_from_stanford(server, tmp_path, monkeypatch):
    url, files, hits = server
    good = acl_tar(
        {
            f"aclImdb/{s}/{lab}/{i}_{7 if lab == 'pos' else 3}.txt": f"{s} {lab} {i}"
            for s in ("train", "test")
            for lab in ("pos", "neg")
            for i in range(3)
        }
    )
    files["/aclImdb_v1.tar.gz"] = good
    monkeypatch.setattr(data, "STANFORD_URL", url + "/aclImdb_v1.tar.gz")
    monkeypatch.setattr(data, "STANFORD_SHA256", sha(good))
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(good[: len(good) // 2])
    path, how = data.find_source(None, tmp_path)
    assert path.read_bytes() == good and hits == ["/aclImdb_v1.tar.gz"]
    assert len(data.read_reviews(path)) == 12


def test_archive_links_and_climbing_paths_are_not_read_and_nothing_is_extracted(tmp_path):
    link = tarfile.TarInfo("aclImdb/train/pos/9_10.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("aclImdb/train/neg/8_1.txt")
    hard.type, hard.linkname = tarfile.LNKTYPE, "aclImdb/train/pos/0_10.txt"
    body = acl_tar(
        {
            "aclImdb/train/pos/0_10.txt": "fine",
            "aclImdb/test/neg/0_1.txt": "bad",
            "../../escape/train/pos/1_10.txt": "outside",
            "/abs/test/pos/2_9.txt": "absolute",
        },
        extra=[link, hard],
    )
    (tmp_path / "a.tar.gz").write_bytes(body)
    df = data.read_reviews(tmp_path / "a.tar.gz")
    assert sorted(df.review) == [
        "absolute",
        "bad",
        "fine",
    ]  # read in memory; the absolute name is harmless
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.tar.gz"]
    assert not (tmp_path.parent.parent / "escape").exists()


def test_kaggle_credentials_are_never_printed(tmp_path, tiny_csv):
    secret = "kaggle-secret-0123456789abcdef"
    env = {
        "HOME": str(tmp_path),
        "KAGGLE_USERNAME": "someone",
        "KAGGLE_KEY": secret,
        "KAGGLE_API_TOKEN": "",
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    proc = run_script(
        "train.py",
        "--cache-dir",
        tmp_path / "cache",
        "--run-dir",
        tmp_path / "run",
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2 and "Kaggle" in proc.stderr and "Traceback" not in proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert not (tmp_path / "run").exists() or secret not in "".join(
        p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.is_file()
    )


def test_counterfactual_pairs_are_fetched_checked_and_cached(server, tmp_path, monkeypatch, caplog):
    from imdb_sentiment import counterfactuals

    url, files, hits = server
    bodies = {
        name: f"Sentiment\tText\tbatch_id\n# {name}\n".encode()
        for name in ("train_paired.tsv", "dev_paired.tsv")
    }
    files.update({f"/pinned/{name}": body for name, body in bodies.items()})
    monkeypatch.delenv(counterfactuals.ENV_VAR)  # as on a user's machine: nothing turns them off
    monkeypatch.setattr(counterfactuals, "CAD_URL", url + "/pinned/")
    monkeypatch.setattr(counterfactuals, "CAD_SHA256", {n: sha(b) for n, b in bodies.items()})
    folder = counterfactuals.find(None, str(tmp_path / "data.csv"), tmp_path / "cache")
    assert folder == tmp_path / "cache" / counterfactuals.CAD_DIR
    assert {n: (folder / n).read_bytes() for n in bodies} == bodies and len(hits) == 2
    assert counterfactuals.find(None, str(tmp_path / "data.csv"), tmp_path / "cache") == folder
    assert len(hits) == 2  # the cached copies, checked, are used

    # A download that does not match the pinned checksum is refused and nothing is kept:
    # training goes on without pairs, and the log says why.
    files["/pinned/dev_paired.tsv"] = b"something else"
    with caplog.at_level("WARNING", logger="imdb_sentiment"):
        assert counterfactuals.find(None, str(tmp_path / "data.csv"), tmp_path / "other") is None
    assert "training goes on without them" in caplog.text and "dev_paired.tsv" in caplog.text
    assert not (tmp_path / "other" / counterfactuals.CAD_DIR / "dev_paired.tsv").exists()
