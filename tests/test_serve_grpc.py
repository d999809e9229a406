"""scripts/serve.py --grpc-port, spoken to with TF Serving's own stubs (tensorflow-serving-api) on
loopback: answers equal REST's, metadata, status, status codes, gRPC and REST requests merged into
one batch, a full queue, the graceful stop, and predict.py --server grpc://."""

import json
import re
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import run_main, serving
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from test_serve import PREDICT, call, sample_reviews

BATCH_SECONDS = 0.3  # long enough that the concurrent requests below all join one batch


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    models = tmp_path_factory.mktemp("grpc") / "imdb_sentiment"
    shutil.copytree(trained["models"], models)
    flags = ["--grpc-port", "0", "--enable_batching", "--verbose", "--max-batch", "256"]
    flags += ["--batch-timeout-micros", str(int(BATCH_SECONDS * 1e6))]
    with serving(models, *flags) as s:
        channel = grpc.insecure_channel(s["grpc"])
        yield {
            **s,
            "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
            "models": model_service_pb2_grpc.ModelServiceStub(channel),
        }
        channel.close()


def request(reviews, name="imdb_sentiment", **spec) -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            req.model_spec.version.value = value
        else:
            setattr(req.model_spec, key, value)
    req.inputs["review"].CopyFrom(tf.make_tensor_proto(reviews, dtype=tf.string))
    return req


def outputs(resp):
    prob = tf.make_ndarray(resp.outputs["probability"])
    return prob, [b.decode() for b in tf.make_ndarray(resp.outputs["label"])]


def test_predict_equals_rest_and_echoes_the_model_spec(server):
    reviews = sample_reviews(32)
    resp = server["predict"].Predict(request(reviews, version=1), timeout=60)
    status, body = call(server["url"], PREDICT, {"instances": reviews})
    assert status == 200
    prob, label = outputs(resp)
    assert resp.outputs["probability"].dtype == tf.float32.as_datatype_enum
    np.testing.assert_allclose(
        prob, [p["probability"] for p in body["predictions"]], rtol=0, atol=1e-6
    )
    assert label == [p["label"] for p in body["predictions"]]
    spec = resp.model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == (
        "imdb_sentiment",
        1,
        "serving_default",
    )
    only = server["predict"].Predict(request(reviews[:2]), timeout=60)  # no version: the newest
    assert only.model_spec.version.value == 1 and set(only.outputs) == {"probability", "label"}


def test_metadata_and_status(server):
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "imdb_sentiment"
    resp = server["predict"].GetModelMetadata(req, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert resp.metadata["signature_def"].Unpack(signatures)
    sig = signatures.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert sig.inputs["review"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in sig.inputs["review"].tensor_shape.dim] == [-1]
    assert sig.outputs["probability"].dtype == tf.float32.as_datatype_enum
    assert sig.outputs["label"].dtype == tf.string.as_datatype_enum
    assert resp.model_spec.version.value == 1

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "imdb_sentiment"
    (version,) = server["models"].GetModelStatus(status, timeout=30).model_version_status
    assert version.version == 1
    assert version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert version.status.error_code == 0  # OK


def bad(**changes):
    req = request(["a fine film"])
    for key, value in changes.items():
        if key == "inputs":
            req.inputs.clear()
            for name, tensor in value.items():
                req.inputs[name].CopyFrom(tensor)
        elif key == "version":
            req.model_spec.version.value = value
        else:
            setattr(req.model_spec, key, value)
    return req


INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "req, code",
    [
        (bad(name="other_model"), NOT_FOUND),
        (bad(version=9), NOT_FOUND),
        (bad(signature_name="no_such_signature"), INVALID),
        (bad(inputs={"text": tf.make_tensor_proto(["x"])}), INVALID),
        (bad(inputs={"review": tf.make_tensor_proto([1.0, 2.0])}), INVALID),
        (bad(inputs={"review": tf.make_tensor_proto([["a", "b"]])}), INVALID),  # rank 2
        (bad(inputs={"review": tf.make_tensor_proto([], dtype=tf.string)}), INVALID),
        (bad(inputs={"review": tf.make_tensor_proto(["x"] * 300)}), INVALID),  # over --max-batch
    ],
)
def test_bad_requests_get_tf_servings_status_codes(server, req, code):
    with pytest.raises(grpc.RpcError) as e:
        server["predict"].Predict(req, timeout=30)
    assert e.value.code() == code, e.value.details()
    # metadata needs its field named, as TF Serving's does
    with pytest.raises(grpc.RpcError) as e:
        meta = get_model_metadata_pb2.GetModelMetadataRequest()
        meta.model_spec.name = "imdb_sentiment"
        server["predict"].GetModelMetadata(meta, timeout=30)
    assert e.value.code() == INVALID


def test_grpc_and_rest_requests_merge_into_one_batch(server):
    reviews = sample_reviews(8)
    start = threading.Barrier(8)

    def by_grpc(review):
        start.wait()
        return float(outputs(server["predict"].Predict(request([review]), timeout=60))[0][0])

    def by_rest(review):
        start.wait()
        status, body = call(server["url"], PREDICT, {"instances": [review]})
        assert status == 200
        return body["predictions"][0]["probability"]

    before = len(server["log"])
    with ThreadPoolExecutor(8) as pool:
        got = [pool.submit(f, r) for f, r in zip([by_grpc, by_rest] * 4, reviews)]
        prob = [f.result() for f in got]
    sizes = [re.search(r"from (\d+) requests", x) for x in server["log"][before:]]
    # 4 of each kind: a batch of more than 4 requests holds both
    assert max(int(m[1]) for m in sizes if m) > 4, "".join(server["log"][before:])
    _, body = call(server["url"], PREDICT, {"instances": reviews})
    np.testing.assert_allclose(
        prob, [p["probability"] for p in body["predictions"]], rtol=0, atol=1e-6
    )


@pytest.mark.slow
def test_a_full_queue_is_unavailable_and_sigterm_lets_a_grpc_call_finish(sleeper):
    with serving(sleeper, "--grpc-port", "0", "--max-queued", "1") as s:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(s["grpc"]))
        slow = stub.Predict.future(request(["1.5"]), timeout=30)
        time.sleep(0.5)  # the slow call holds the one place in the queue
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(request(["0"]), timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "retry" in e.value.details()
        s["proc"].send_signal(signal.SIGTERM)
        prob, label = outputs(slow.result())
        np.testing.assert_allclose(prob, [1 / (1 + np.exp(-1.5))], rtol=1e-6)
        assert s["proc"].wait(timeout=30) == 0
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(request(["0"]), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_predict_cli_through_grpc_prints_what_it_prints_through_rest(server, tmp_path):
    texts = ["A wonderful, moving film.", "", "Dull and pointless."]
    (tmp_path / "reviews.txt").write_text("\n".join(texts) + "\n")
    target = f"grpc://{server['grpc']}"
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it

    by_args = run_main(main, "--server", target, *texts)
    by_file = run_main(main, "--server", target, "--file", tmp_path / "reviews.txt")
    assert by_args.returncode == 0 and by_file.returncode == 0, by_args.stderr[-2000:]
    assert by_args.stdout == by_file.stdout
    far = [json.loads(x) for x in by_args.stdout.splitlines()]
    _, body = call(server["url"], PREDICT, {"instances": texts})
    assert [x["label"] for x in far] == [p["label"] for p in body["predictions"]]
    np.testing.assert_allclose(
        [x["probability"] for x in far],
        [p["probability"] for p in body["predictions"]],
        rtol=0,
        atol=1e-6,
    )


def test_predict_cli_reports_a_grpc_server_that_is_down():
    from imdb_sentiment.commands.predict import main  # as scripts/predict.py runs it

    proc = run_main(main, "--server", "grpc://127.0.0.1:9", "--timeout", "5", "text")
    assert proc.returncode == 2 and "UNAVAILABLE" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def grpc_load_test(target: str, data, *flags):
    from imdb_sentiment.commands.load_test import main  # as scripts/load_test.py runs it

    proc = run_main(main, "--url", f"grpc://{target}", "--data", data, *flags)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc, json.loads(proc.stdout)


def test_the_load_test_speaks_grpc(server, tmp_path):
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"review": sample_reviews(40)}).to_csv(data, index=False)
    proc, result = grpc_load_test(server["grpc"], data, "--clients", "8", "--requests", "32")
    assert proc.returncode == 0 and result["errors"] == {} and result["requests"] == 32
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p99"]


@pytest.mark.slow
def test_the_grpc_load_test_counts_unavailable_calls(sleeper, tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("review\n0.3\n")  # every call asks the sleeper for this long
    with serving(sleeper, "--grpc-port", "0", "--max-queued", "1") as s:
        proc, result = grpc_load_test(s["grpc"], data, "--clients", "4", "--requests", "8")
    assert proc.returncode == 1 and "requests failed" in proc.stderr
    assert result["errors"].get("gRPC UNAVAILABLE", 0) > 0 and result["requests"] > 0
    assert result["requests"] + sum(result["errors"].values()) == 8
