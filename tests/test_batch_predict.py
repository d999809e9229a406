"""Batch prediction on Ray Data (the [ray] extra): the same labels and probabilities as
predict.py, malformed records in the dead-letter output with their reasons, many shards read
through one glob."""

import importlib.util
import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, run_script, synthetic_reviews

# Decided when the tests are collected, so that without Ray no tiny model is trained for nothing.
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="the [ray] extra is not installed: pip install -e '.[ray]'",
)


def json_lines(folder):
    return [json.loads(line) for path in sorted(folder.glob("*.json")) for line in path.open()]


@needs_ray
@pytest.mark.slow
def test_batch_predict_equals_predict_py_and_sets_malformed_records_aside(trained, tmp_path):
    reviews = synthetic_reviews(300, seed=11).review.tolist()
    reviews[60] = "A first line,\nand a second: one CSV record over two lines."
    shards, where = tmp_path / "in", {}  # (file, line) -> index of the review
    shards.mkdir()
    for k in range(6):
        part = reviews[k * 50 : (k + 1) * 50]
        path = shards / f"part-{k}.{['txt', 'csv', 'jsonl'][k % 3]}"
        if path.suffix == ".txt":
            path.write_text("".join(r + "\n" for r in part))
            lines = range(1, 51)
        elif path.suffix == ".jsonl":
            path.write_text("".join(json.dumps({"review": r}) + "\n" for r in part))
            lines = range(1, 51)
        else:
            pd.DataFrame({"review": part}).to_csv(path, index=False)
            lines = [2 + j + sum(r.count("\n") for r in part[:j]) for j in range(50)]
        where.update({(str(path), line): k * 50 + j for j, line in enumerate(lines)})
    with open(shards / "part-2.jsonl", "a") as f:
        f.write('{"review": "cut off\n{"review": 3}\n')
    with open(shards / "part-4.csv", "a") as f:
        f.write("one,field too many\n")
    (shards / "other.csv").write_text("text\nno review column here\n")

    # predict.py on the same reviews, in one file: the reference
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    proc = run_script("predict.py", "--model", trained["models"], "--file", tmp_path / "all.jsonl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = [json.loads(line) for line in proc.stdout.splitlines()]

    out = tmp_path / "out"
    proc = run_script(
        "batch_predict.py", str(shards / "part-*"), str(shards / "other.csv"),
        "--out", out, "--model", trained["models"], "--workers", 1, "--batch-size", 64,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json_lines(out / "predictions")
    assert sorted((r["file"], r["line"]) for r in got) == sorted(where)
    for r in got:
        want = expected[where[r["file"], r["line"]]]
        assert r["label"] == want["label"]
        assert r["probability"] == pytest.approx(want["probability"], abs=1e-6)

    dead = {(r["file"].rsplit("/", 1)[1], r["line"]): r for r in json_lines(out / "dead_letter")}
    assert sorted(dead) == [("other.csv", 1), ("part-2.jsonl", 51), ("part-2.jsonl", 52),
                            ("part-4.csv", 52)]  # fmt: skip
    assert dead["part-2.jsonl", 51]["reason"].startswith("not valid JSON")
    assert dead["part-2.jsonl", 51]["raw"] == '{"review": "cut off\n'
    assert "string 'review' field" in dead["part-2.jsonl", 52]["reason"]
    assert dead["part-4.csv", 52] == {
        "file": str(shards / "part-4.csv"),
        "line": 52,
        "reason": "expected 1 fields, found 2",
        "raw": "one,field too many\n",
    }
    assert "no 'review' column" in dead["other.csv", 1]["reason"]
    assert "malformed record" in proc.stderr and "Traceback" not in proc.stderr

    # A second run into the same folder would mix two runs' files: refused.
    proc = run_script("batch_predict.py", shards / "part-0.txt", "--out", out, "--model",
                      trained["models"])  # fmt: skip
    assert proc.returncode == 2 and "is not empty" in proc.stderr


def test_without_ray_the_command_says_which_extra_to_install(tmp_path):
    # The [ray] extra absent: an import of ray fails, as it does where it is not installed.
    code = (
        "import sys, runpy; sys.modules['ray'] = None; sys.argv = sys.argv[1:];"
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "scripts" / "batch_predict.py"), "x.txt",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and "pip install 'imdb-sentiment[ray]'" in proc.stderr
    assert "Traceback" not in proc.stderr
