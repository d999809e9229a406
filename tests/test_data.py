import tarfile
import zipfile

import pandas as pd
import pytest
from conftest import run_main, run_script, synthetic_reviews

from imdb_sentiment import data
from imdb_sentiment.config import Config
from imdb_sentiment.files import UserError


def write_kaggle_csv(path, n=200):
    synthetic_reviews(n, seed=3).to_csv(path, index=False)  # no split column, as Kaggle's file


def test_kaggle_csv_gets_a_seeded_stratified_split_with_validation_from_train(tmp_path):
    path = tmp_path / "IMDB Dataset.csv"
    write_kaggle_csv(path)
    s1 = data.load(path, Config(seed=5))
    s2 = data.load(path, Config(seed=5))
    assert s1.report["split"].startswith("seeded stratified")
    assert (len(s1.train), len(s1.val), len(s1.test)) == (90, 10, 100)
    assert s1.test.label.mean() == 0.5 and s1.val.label.mean() == 0.5
    assert not set(s1.val.review) & set(s1.test.review)
    assert s1.checksum == s2.checksum  # same seed, same split


def test_columns_are_read_by_name_in_any_order_and_compressed_forms(tmp_path):
    df = synthetic_reviews(40, seed=4)[["sentiment", "review"]].assign(extra=1)
    df.to_csv(tmp_path / "a.csv.gz", index=False)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("IMDB Dataset.csv", df.to_csv(index=False))
    (tmp_path / "bom.csv").write_bytes(
        b"\xef\xbb\xbf" + df.to_csv(index=False, lineterminator="\r\n").encode()
    )
    for name in ("a.csv.gz", "a.zip", "bom.csv"):
        raw = data.read_reviews(tmp_path / name)
        assert raw.review.tolist() == df.review.tolist(), name
        assert raw.sentiment.tolist() == df.sentiment.tolist(), name


def test_bad_rows_are_dropped_and_counted_and_text_is_kept_raw(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame(
        {
            "review": ["Good<br />film", "  ", "Fine", "Bad", "Odd"],
            "sentiment": ["positive", "negative", "pos", "0", "maybe"],
        }
    ).to_csv(path, index=False)
    df, report = data.clean(data.read_reviews(path))
    assert report == {
        "rows_read": 5,
        "dropped_empty_text": 1,
        "dropped_unknown_label": 1,
        "rows_with_invalid_utf8": 0,
    }
    assert df.review.tolist() == ["Good<br />film", "Fine", "Bad"]  # the graph removes markup
    assert df.label.tolist() == [1, 1, 0]


def test_missing_column_is_a_clear_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("text,label\nhello,positive\n")
    with pytest.raises(UserError, match="missing column.*review"):
        data.read_reviews(path)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    good = tmp_path / "g.csv.gz"
    synthetic_reviews(400, seed=6).to_csv(good, index=False)
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="bad.csv.gz"):
        data.read_reviews(bad)


def make_acl(root):
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            d = root / "aclImdb" / split / label
            d.mkdir(parents=True)
            for i in range(3):
                (d / f"{i}_{8 if label == 'pos' else 2}.txt").write_text(
                    f"{split} {label} review {i}<br />"
                )
    (root / "aclImdb" / "train" / "unsup").mkdir()
    (root / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("unlabelled")


def test_aclimdb_folder_and_tarball_use_the_official_split(tmp_path):
    make_acl(tmp_path)
    with tarfile.open(tmp_path / "aclImdb_v1.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "aclImdb", arcname="aclImdb")
    for src in (tmp_path / "aclImdb", tmp_path, tmp_path / "aclImdb_v1.tar.gz"):
        raw = data.read_reviews(src)
        assert len(raw) == 12, src  # unsup reviews are not read
        assert sorted(raw.split.unique()) == ["test", "train"]
        assert (raw[raw.review.str.contains("pos")].sentiment == "pos").all()
        assert sorted(raw.id) == [
            0,
            0,
            0,
            0,
            1,
            1,
            1,
            1,
            2,
            2,
            2,
            2,
        ]  # the number in each file name


def test_validation_keeps_blocks_of_consecutive_ids_together(tmp_path):
    """aclImdb numbers one movie's reviews consecutively: validation takes whole id blocks."""
    df = synthetic_reviews(1200, seed=7).assign(split="train")
    df["id"] = df.groupby(
        "sentiment"
    ).cumcount()  # 600 ids per label, as in train/pos and train/neg
    df.to_csv(tmp_path / "ids.csv", index=False)
    raw = data.read_reviews(tmp_path / "ids.csv")
    for val_block, how in ((50, "blocks of 50"), (0, "seeded stratified rows")):
        cleaned, _ = data.clean(raw)
        rows = cleaned.assign(split="train")
        rows = pd.concat([rows, cleaned.head(10).assign(split="test")])
        train, val, _, report = data.split(rows, Config(val_block=val_block))
        assert report["validation"].startswith(how)
        assert (
            len(val) == (200 if val_block else 120) and val.label.mean() == 0.5
        )  # 2 blocks of 50 per label

        def block(d):
            return set(zip(d.label, d.review.map(dict(zip(cleaned.review, cleaned.id))) // 50))

        shared = block(train) & block(val)
        assert (not shared) if val_block else len(shared) > 5
    few = data.split(cleaned.assign(split="train").head(400), Config())[3]  # 4 blocks per label
    assert few["validation"] == "seeded stratified rows"


def test_max_rows_limits_each_split(tmp_path):
    path = tmp_path / "IMDB Dataset.csv"
    write_kaggle_csv(path, 400)
    s = data.load(path, Config(max_rows=50))
    assert len(s.train) + len(s.val) == 50 and len(s.test) == 50


def test_cached_copy_is_found(tmp_path):
    write_kaggle_csv(tmp_path / "IMDB Dataset.csv")
    path, how = data.find_source(None, tmp_path)
    assert path == tmp_path / "IMDB Dataset.csv" and "cached" in how


def test_no_data_and_no_network_exits_2_with_the_options(tmp_path):
    # A proxy on a closed loopback port makes every download fail at once, network or not.
    env = {
        "HOME": str(tmp_path),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "KAGGLE_API_TOKEN": "",
        "KAGGLE_USERNAME": "",
        "KAGGLE_KEY": "",
    }
    proc = run_script(
        "train.py", "--cache-dir", tmp_path / "cache", "--run-dir", tmp_path / "run", env=env
    )
    assert proc.returncode == 2
    assert (
        "No IMDB data found" in proc.stderr
        and "--data PATH" in proc.stderr
        and "Kaggle" in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_missing_data_file_exits_2(tmp_path):
    from imdb_sentiment.commands.train import main  # the real script exits 2: the test above

    proc = run_main(main, "--data", tmp_path / "nope.csv", "--run-dir", tmp_path / "run")
    assert (
        proc.returncode == 2
        and "nope.csv: no such file" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_quoted_newlines_invalid_utf8_and_duplicates_are_handled_and_counted(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(
        b"review,sentiment,split\r\n"
        b'"A film\r\nin two lines, ""quoted""",positive,train\r\n'
        b'"Caf\xe9 scene \xff broken bytes",negative,train\r\n'
        b"Same review,positive,train\r\nSame review,positive,train\r\n"
        b"Other,negative,train\r\nTest one,positive,test\r\nTest two,negative,test\r\n"
    )
    raw = data.read_reviews(path)
    assert raw.review[0] == 'A film\r\nin two lines, "quoted"' and len(raw) == 7
    df, report = data.clean(raw)
    assert report["rows_with_invalid_utf8"] == 1 and "\ufffd" in df.review[1]
    s = data.load(path, Config(val_fraction=0.5))
    assert s.report["duplicates_dropped_from_train"] == 1 and len(s.train) + len(s.val) == 4


def test_every_bad_data_case_exits_2_naming_the_file(tmp_path):
    # In this process: that scripts/train.py itself exits 2 the tests above show.
    from imdb_sentiment.commands.train import main

    cases = {
        "nocol.csv": b"text,label\nhi,positive\n",
        "empty.csv": b"",
        "junk.csv.gz": b"\x1f\x8b\x08junk",
        "bad.zip": b"PK\x03\x04 not a zip",
        "labels.csv": b"review,sentiment\nok,maybe\n",
    }
    for name, body in cases.items():
        (tmp_path / name).write_bytes(body)
        proc = run_main(
            main, "--data", tmp_path / name, "--run-dir", tmp_path / "run", "--no-export"
        )
        assert proc.returncode == 2 and name in proc.stderr and "Traceback" not in proc.stderr, (
            name,
            proc.stderr,
        )


def test_too_few_reviews_for_a_validation_split_is_a_clear_error(tmp_path):
    path = tmp_path / "few.csv"
    path.write_text("review,sentiment,split\na,positive,train\nb,negative,train\nc,positive,test\n")
    with pytest.raises(UserError, match="cannot carve a validation split from 2 training reviews"):
        data.load(path, Config())


def test_without_an_official_split_duplicates_are_removed_before_splitting(tmp_path):
    reviews = synthetic_reviews(200, seed=3)
    copies = reviews.iloc[:30]  # 30 reviews twice, 5 of them three times
    pd.concat([reviews, copies, copies.iloc[:5]]).sample(frac=1.0, random_state=0).to_csv(
        tmp_path / "IMDB Dataset.csv", index=False
    )
    s = data.load(tmp_path / "IMDB Dataset.csv", Config(seed=5))
    assert s.report["duplicates_removed_before_split"] == 35
    assert len(s.train) + len(s.val) + len(s.test) == 200
    assert not set(s.test.review) & (set(s.train.review) | set(s.val.review))
    assert s.report["test_reviews_also_in_train"] == 0
