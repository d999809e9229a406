"""scripts/serve.py started for real on a free loopback port, spoken to over HTTP."""

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, run_main, serving, synthetic_reviews

from imdb_sentiment.export import WARM_UP_FILE, write_warm_up_requests


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    models = tmp_path_factory.mktemp("serve") / "imdb_sentiment"
    shutil.copytree(trained["models"], models)
    with serving(models, "--poll-seconds", "0.5", "--max-batch", "256") as s:
        yield {**s, "models": models}


def call(url, path, body=None, raw: bytes | None = None, method=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


PREDICT = "/v1/models/imdb_sentiment:predict"


def sample_reviews(n=64):
    if SHARED_DATA.exists():
        return pd.read_csv(SHARED_DATA, nrows=30000).sample(n, random_state=0).review.tolist()
    return synthetic_reviews(n, seed=9).review.tolist()


def test_predictions_equal_local_prediction(server, trained):
    from imdb_sentiment.predict import Predictor

    reviews = sample_reviews()
    status, body = call(server["url"], PREDICT, {"instances": reviews})
    assert status == 200
    local = Predictor(trained["models"]).predict(reviews)
    np.testing.assert_allclose(
        [p["probability"] for p in body["predictions"]],
        [p["probability"] for p in local],
        atol=1e-5,
    )
    assert [p["label"] for p in body["predictions"]] == [p["label"] for p in local]


def test_columnar_and_named_inputs(server):
    r = ["superb film", "awful film"]
    s1, rows = call(server["url"], PREDICT, {"instances": r})
    s2, cols = call(server["url"], PREDICT, {"inputs": {"review": r}})
    s3, named = call(server["url"], PREDICT, {"instances": [{"review": x} for x in r]})
    assert s1 == s2 == s3 == 200
    assert cols["outputs"]["probability"] == [p["probability"] for p in rows["predictions"]]
    assert named == rows


def test_status_and_metadata(server):
    status, body = call(server["url"], "/v1/models/imdb_sentiment")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, meta = call(server["url"], "/v1/models/imdb_sentiment/metadata")
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["review"]["dtype"] == "DT_STRING"
    assert sig["inputs"]["review"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert (
        sig["outputs"]["probability"]["dtype"] == "DT_FLOAT"
        and sig["outputs"]["label"]["dtype"] == "DT_STRING"
    )


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{not json", 400),
        (b'{"instances": [1, 2]}', 400),
        (b'{"instances": "x", "inputs": "y"}', 400),
        (b'{"instances": []}', 400),
        (b'{"instances": [null]}', 400),
        (b'["a list"]', 400),
        (b"\xff\xfe\x00garbage", 400),
        (b'{"instances": ' + json.dumps(["x"] * 300).encode() + b"}", 400),  # over --max-batch
        (b'{"instances": ["' + b"a" * (10 << 20) + b'"]}', 413),  # 10 MB body
    ],
)
def test_bad_requests_get_a_clean_4xx_and_the_server_lives(server, raw, code):
    status, body = call(server["url"], PREDICT, raw=raw)
    assert status == code and isinstance(body["error"], str) and body["error"]
    assert call(server["url"], PREDICT, {"instances": ["fine"]})[0] == 200


def test_wrong_routes_and_methods(server):
    assert call(server["url"], "/v1/models/other:predict", {"instances": ["x"]})[0] == 404
    assert (
        call(server["url"], "/v1/models/imdb_sentiment/versions/99:predict", {"instances": ["x"]})[
            0
        ]
        == 404
    )
    assert call(server["url"], "/nothing")[0] == 404
    assert call(server["url"], PREDICT)[0] == 405  # GET on :predict


def test_thousand_concurrent_requests_from_8_threads(server):
    good = {"instances": ["a superb film"]}
    bad = b'{"instances": [3]}'

    def one(i):
        return (
            call(server["url"], PREDICT, raw=bad)
            if i % 10 == 0
            else call(server["url"], PREDICT, good)
        )

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(1000)))
    for i, (status, body) in enumerate(results):
        if i % 10 == 0:
            assert status == 400 and "error" in body
        else:
            assert status == 200 and body["predictions"][0]["label"] in ("positive", "negative")
    assert server["proc"].poll() is None


@pytest.mark.slow
def test_batched_answers_equal_unbatched_ones(server):
    reviews = sample_reviews(48)
    alone = [call(server["url"], PREDICT, {"instances": [r]}) for r in reviews]
    flags = ["--enable_batching", "--batch-timeout-micros", "20000", "--verbose"]
    with serving(server["models"], *flags) as batching:
        with ThreadPoolExecutor(8) as pool:
            merged = list(
                pool.map(lambda r: call(batching["url"], PREDICT, {"instances": [r]}), reviews)
            )
        sizes = [re.search(r"from (\d+) requests", x) for x in batching["log"]]
    assert [s for s, _ in alone + merged] == [200] * 96
    alone, merged = (
        [b["predictions"][0] for _, b in alone],
        [b["predictions"][0] for _, b in merged],
    )
    np.testing.assert_allclose(
        [p["probability"] for p in merged], [p["probability"] for p in alone], rtol=0, atol=1e-6
    )
    assert [p["label"] for p in merged] == [p["label"] for p in alone]
    assert max(int(m[1]) for m in sizes if m) > 1  # requests were merged


def test_new_version_is_served_without_restart(server):
    """...after the requests of its own warm-up file have run, as TF Serving runs them."""
    assert any("version 1: warmed up on 256 reviews from assets.extra" in x for x in server["log"])
    shutil.copytree(server["models"] / "1", server["models"] / "2")
    write_warm_up_requests(server["models"] / "2" / WARM_UP_FILE, [b"Fine.", b"Dull!", b""])
    deadline = time.time() + 60
    while time.time() < deadline:
        _, body = call(server["url"], "/v1/models/imdb_sentiment")
        if [s["version"] for s in body["model_version_status"]] == ["2"]:
            break
        time.sleep(0.5)
    assert [s["version"] for s in body["model_version_status"]] == ["2"]
    assert any("version 2: warmed up on 3 reviews from assets.extra" in x for x in server["log"])
    assert (
        call(server["url"], "/v1/models/imdb_sentiment/versions/2:predict", {"instances": ["ok"]})[
            0
        ]
        == 200
    )


def test_predict_cli_through_the_server_prints_what_local_prediction_prints(server, trained):
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it

    texts = ["A wonderful, moving film.", "", "Dull and pointless."]
    remote = run_main(main, "--server", server["url"], *texts)
    local = run_main(main, "--model", trained["models"], *texts)
    assert remote.returncode == 0 and local.returncode == 0, remote.stderr[-2000:]
    far = [json.loads(x) for x in remote.stdout.splitlines()]
    near = [json.loads(x) for x in local.stdout.splitlines()]
    assert [x["label"] for x in far] == [x["label"] for x in near]
    np.testing.assert_allclose(
        [x["probability"] for x in far], [x["probability"] for x in near], atol=1e-5
    )


def test_predict_cli_reports_a_server_that_is_down():
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it

    proc = run_main(main, "--server", "http://127.0.0.1:9", "--timeout", "5", "text")
    assert (
        proc.returncode == 2
        and "cannot reach the model server" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_serve_help_takes_its_defaults_without_loading_tensorflow():
    code = (
        "import sys\nfrom imdb_sentiment.commands.serve import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(default 1024)" in proc.stdout and "(default 2000)" in proc.stdout
