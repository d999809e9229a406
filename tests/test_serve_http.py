"""scripts/serve.py spoken to over raw sockets: framing, timeouts, caps, errors and a graceful
stop, each checked against the real server process on loopback.

The model is conftest's `sleeper`: a request takes as long as asked, and a model can fail at run
time."""

import json
import re
import signal
import socket
import threading
import time

import pytest
from conftest import run_script, serving

PREDICT = "/v1/models/imdb_sentiment:predict"
STATUS = "/v1/models/imdb_sentiment"


@pytest.fixture(scope="module")
def server(sleeper):
    flags = ["--read-timeout", "2", "--idle-timeout", "2", "--max-queued", "1", "--access-log"]
    flags.append("--no-page")  # TF Serving's routes alone
    with serving(sleeper, *flags) as s:
        yield s


class Conn:
    """One client connection, read response by response."""

    def __init__(self, port: int, timeout: float = 10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def send(self, data: bytes) -> "Conn":
        self.sock.sendall(data)
        return self

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        self.buf += chunk
        return bool(chunk)

    def response(self):
        """The next response as (status, headers with lower-case names, JSON body), or None when
        the server closed the connection before one came."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                assert not self.buf, f"connection closed inside a response: {self.buf!r}"
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
        n = int(headers.get("content-length", 0))
        while len(self.buf) < n:
            assert self._fill(), "connection closed inside a body"
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(status.split()[1]), headers, json.loads(body) if body else None

    def closed(self) -> bool:
        """Whether the server closes the connection within the socket's timeout, with nothing
        more sent."""
        try:
            return not self._fill() and not self.buf
        except TimeoutError:
            return False


def request(method: str, path: str, body: bytes = b"", headers=()) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def post(path: str, obj) -> bytes:
    body = json.dumps(obj).encode()
    return request("POST", path, body, [f"Content-Length: {len(body)}"])


def wait_for(predicate, seconds: float):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    return predicate()


def test_an_error_before_the_body_is_read_keeps_the_connection_usable(server):
    with Conn(server["port"]) as c:
        status, _, body = c.send(post("/v1/models/other:predict", {"instances": ["1"]})).response()
        assert status == 404 and "other" in body["error"]
        assert c.send(post(STATUS + "/metadata", {"instances": ["1"]})).response()[0] == 405
        assert c.send(request("GET", STATUS, b"hello", ["Content-Length: 5"])).response()[0] == 200
        status, headers, body = c.send(post(PREDICT, {"instances": ["0"]})).response()
        assert status == 200 and body["predictions"][0]["label"] == "positive"
        assert "close" not in headers.get("connection", "")


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "+5", "5, 5"])
def test_a_content_length_that_cannot_be_trusted_is_refused_at_once(server, value):
    with Conn(server["port"]) as c:
        status, headers, body = c.send(
            request("POST", PREDICT, headers=[f"Content-Length: {value}"])
        ).response()
        assert status == 400 and "Content-Length" in body["error"]
        assert headers["connection"] == "close" and c.closed()


def test_two_content_lengths_are_refused(server):
    with Conn(server["port"]) as c:
        raw = request("POST", PREDICT, b"{}", ["Content-Length: 2", "Content-Length: 40"])
        assert c.send(raw).response()[0] == 400 and c.closed()


def test_a_post_without_content_length_gets_411_and_the_connection_closes(server):
    with Conn(server["port"]) as c:
        status, _, body = c.send(request("POST", PREDICT) + b'{"instances": ["1"]}').response()
        assert status == 411 and c.closed()


def test_a_chunked_body_gets_411_and_its_chunks_are_never_read_as_a_request(server):
    chunks = b'14\r\n{"instances": ["0"]}\r\n0\r\n\r\n'
    with Conn(server["port"]) as c:
        c.send(request("POST", PREDICT, chunks, ["Transfer-Encoding: chunked"]))
        c.send(request("GET", STATUS))
        status, _, body = c.response()
        assert status == 411 and "chunked" in body["error"]
        assert c.response() is None  # closed: neither the chunks nor the GET were answered


@pytest.mark.parametrize(
    "half",
    [
        b"POST /v1/models/imdb_sentiment:pre",  # inside the request line
        b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # inside the headers
        post(PREDICT, {"instances": ["0"]})[:-5],  # inside the body
    ],
)
def test_a_half_sent_request_is_closed_after_the_read_timeout(server, half):
    with Conn(server["port"]) as c:
        t = time.time()
        answer = c.send(half).response()
        waited = time.time() - t
        assert answer is None or answer[0] == 408
        assert 1.5 < waited < 8 and c.closed()


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(server):
    with Conn(server["port"]) as c:
        assert c.send(request("GET", STATUS)).response()[0] == 200
        t = time.time()
        assert c.closed() and 1.5 < time.time() - t < 8


def test_requests_beyond_the_model_queue_get_503_with_retry_after(server):
    with Conn(server["port"]) as slow, Conn(server["port"]) as other:
        slow.send(post(PREDICT, {"instances": ["3"]}))
        time.sleep(1)  # the slow request is in the model now
        status, headers, body = other.send(post(PREDICT, {"instances": ["0"]})).response()
        assert status == 503 and headers["retry-after"] == "1" and "retry" in body["error"]
        assert slow.response()[0] == 200
    # Once the queue has room again, requests are served. A new connection: `other` may have sat
    # idle past this server's 2 s idle timeout while the slow request finished.
    with Conn(server["port"]) as again:
        assert again.send(post(PREDICT, {"instances": ["0"]})).response()[0] == 200


def test_a_500_tells_the_client_only_a_request_id_which_the_log_has_with_the_traceback(server):
    with Conn(server["port"]) as c:
        status, _, body = c.send(post(PREDICT, {"instances": ["not a number"]})).response()
        assert status == 500
        m = re.fullmatch(r"internal error, request id (\w+)", body["error"])
        assert m, body
        assert c.send(post(PREDICT, {"instances": ["0"]})).response()[0] == 200

    def logged():
        text = "".join(server["log"])
        return m[1] in text and text[text.index(m[1]) :]

    text = wait_for(logged, 10)
    assert text and "Traceback" in text and "StringToNumber" in text, "".join(server["log"])


def test_no_page_leaves_out_the_page_and_the_explain_route(server):
    with Conn(server["port"]) as c:
        status, _, body = c.send(request("GET", "/")).response()
        assert status == 404 and "no such route" in body["error"]
        status, _, body = c.send(post(STATUS + ":explain", {"instances": ["1"]})).response()
        assert status == 404 and "no such route" in body["error"]
        assert c.send(post(PREDICT, {"instances": ["0"]})).response()[0] == 200


def test_a_lone_surrogate_is_the_clients_mistake(server):
    with Conn(server["port"]) as c:
        body = b'{"instances": ["\\ud800 film"]}'
        status, _, answer = c.send(
            request("POST", PREDICT, body, [f"Content-Length: {len(body)}"])
        ).response()
        assert status == 400 and "Unicode" in answer["error"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"instances": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        b'{"instances": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    ],
    ids=["bare-200000", "instances-200000", "instances-5000"],
)
def test_json_nested_too_deeply_is_the_clients_mistake(server, body):
    # Python's recursion limit, hit on the client's nesting, once made a 500 and a traceback.
    with Conn(server["port"]) as c:
        status, headers, answer = c.send(
            request("POST", PREDICT, body, [f"Content-Length: {len(body)}"])
        ).response()
        assert status == 400 and "nested too deeply" in answer["error"]
        assert "close" not in headers.get("connection", "")
        status, _, answer = c.send(post(PREDICT, {"instances": ["0"]})).response()
        assert status == 200 and answer["predictions"][0]["label"] == "positive"
    assert "RecursionError" not in "".join(server["log"])


def test_the_access_log_has_a_line_per_request(server):
    with Conn(server["port"]) as c:
        assert c.send(request("GET", STATUS + "?access-log-probe")).response()[0] == 200
    line = f'"GET {STATUS}?access-log-probe HTTP/1.1" 200'
    assert wait_for(lambda: any(line in x for x in server["log"]), 10), "".join(server["log"])


@pytest.mark.slow
def test_connections_beyond_the_cap_get_503_without_a_thread(sleeper):
    with serving(sleeper, "--max-connections", "2") as s:
        held = [Conn(s["port"]), Conn(s["port"])]
        with Conn(s["port"]) as third:
            status, headers, body = third.response()
            assert status == 503 and headers["retry-after"] == "1" and third.closed()
        assert held[0].send(request("GET", STATUS)).response()[0] == 200  # the held ones work
        held[1].sock.close()

        def served():
            with Conn(s["port"]) as c:
                answer = c.send(request("GET", STATUS)).response()
                return answer and answer[0] == 200

        assert wait_for(served, 10)  # a place freed is taken again
        held[0].sock.close()


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits_0(sleeper):
    with serving(sleeper, "--drain-seconds", "10") as s:
        idle = Conn(s["port"])
        assert idle.send(request("GET", STATUS)).response()[0] == 200
        with Conn(s["port"], timeout=20) as busy:
            busy.send(post(PREDICT, {"instances": ["3"]}))
            time.sleep(1)
            t = time.time()
            s["proc"].send_signal(signal.SIGTERM)

            def refused():
                try:
                    socket.create_connection(("127.0.0.1", s["port"]), timeout=1).close()
                except ConnectionRefusedError:
                    return True
                except ConnectionResetError:
                    return False  # the listener closed during this handshake; the next is refused
                return False

            assert wait_for(refused, 1.5)  # before the request in flight ends
            assert idle.closed()  # an idle connection is not waited on
            status, headers, body = busy.response()
            assert status == 200 and headers["connection"] == "close"
            assert body["predictions"][0]["label"] == "positive"
        assert s["proc"].wait(timeout=10) == 0 and time.time() - t < 10
        idle.sock.close()


@pytest.mark.slow
def test_the_drain_is_bounded(sleeper):
    with serving(sleeper, "--drain-seconds", "1") as s:
        with Conn(s["port"], timeout=20) as busy:
            busy.send(post(PREDICT, {"instances": ["60"]}))
            time.sleep(1)
            t = time.time()
            s["proc"].send_signal(signal.SIGTERM)
            # Far under the request's 60 s; the rest is TensorFlow's exit, slow on a loaded machine.
            assert s["proc"].wait(timeout=30) == 0 and time.time() - t < 20
            assert busy.response() is None
        assert wait_for(lambda: "1 requests unfinished" in "".join(s["log"]), 5)


BATCHING_FILE = """# TF Serving's format; num_batch_threads is overridden by the flag
max_batch_size { value: 8 }
batch_timeout_micros { value: 500000 }
num_batch_threads { value: 4 }
max_enqueued_batches { value: 1 }
pad_variable_length_inputs: true
"""


@pytest.fixture(scope="module")
def batching_server(sleeper, tmp_path_factory):
    config = tmp_path_factory.mktemp("batching") / "batching.config"
    config.write_text(BATCHING_FILE)
    flags = ["--enable_batching", "--batching_parameters_file", config, "--num-batch-threads", "1"]
    with serving(sleeper, *flags) as s:
        yield s


@pytest.mark.slow
def test_batching_merges_concurrent_requests_into_one_model_call(batching_server):
    conns = [Conn(batching_server["port"]) for _ in range(4)]
    t = time.time()
    for c in conns:  # one second each, on one batch thread: 4 s unless they share a call
        c.send(post(PREDICT, {"instances": ["1"]}))
    answers = [c.response() for c in conns]
    assert [a[0] for a in answers] == [200] * 4 and time.time() - t < 3.5
    assert all(a[2]["predictions"][0]["label"] == "positive" for a in answers)
    big = post(PREDICT, {"instances": ["0"] * 9 + ["-1"]})  # over max_batch_size: on its own
    status, _, body = conns[0].send(big).response()
    assert status == 200 and [p["label"] for p in body["predictions"]][-2:] == [
        "positive",
        "negative",
    ]
    for c in conns:
        c.sock.close()


@pytest.mark.slow
def test_a_version_without_the_token_signatures_cannot_explain(batching_server):
    with Conn(batching_server["port"]) as c:
        status, _, body = c.send(post(STATUS + ":explain", {"instances": ["1"]})).response()
        assert status == 400 and "cannot explain" in body["error"] and "export it" in body["error"]


@pytest.mark.slow
def test_batching_refuses_requests_beyond_max_enqueued_batches(batching_server):
    with (
        Conn(batching_server["port"]) as a,
        Conn(batching_server["port"]) as b,
        Conn(batching_server["port"]) as c,
    ):
        a.send(post(PREDICT, {"instances": ["2"]}))
        time.sleep(1)  # a's batch runs on the one thread
        b.send(post(PREDICT, {"instances": ["0"]}))  # opens the one batch allowed to wait
        time.sleep(0.2)
        status, headers, body = c.send(post(PREDICT, {"instances": ["0"] * 8})).response()
        assert status == 503 and headers["retry-after"] == "1" and "batches" in body["error"]
        assert a.response()[0] == 200 and b.response()[0] == 200


def test_a_batching_file_this_server_cannot_read_is_refused(sleeper, tmp_path):
    config = tmp_path / "batching.config"
    config.write_text("max_batch_size { value: 8 }\nbatch_size_limit { value: 3 }\n")
    proc = run_script(
        "serve.py",
        "--model-dir",
        sleeper,
        "--enable_batching",
        "--batching_parameters_file",
        config,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: {config}: batch_size_limit" in proc.stderr


def test_an_answer_is_not_held_back_by_nagles_algorithm(server):
    # Headers and body in two writes waited for the client's delayed ACK (40 ms or more on
    # Linux) on every answer of a keep-alive connection.
    with Conn(server["port"]) as c:
        times = []
        for _ in range(30):
            t = time.perf_counter()
            assert c.send(request("GET", STATUS)).response()[0] == 200
            times.append(time.perf_counter() - t)
    assert sorted(times)[15] < 0.025, sorted(times)


def test_a_client_that_expects_100_continue_gets_it_before_it_sends_the_body(server):
    body = json.dumps({"instances": ["0"]}).encode()
    head = [f"Content-Length: {len(body)}", "Expect: 100-continue"]
    with Conn(server["port"], timeout=3) as c:
        # answers are buffered until the request is done: held in the buffer, the 100 would
        # leave only once the body it waits for had come
        assert c.send(request("POST", PREDICT, headers=head)).response()[0] == 100
        status, _, answer = c.send(body).response()
        assert status == 200 and answer["predictions"][0]["label"] == "positive"


def load_test(port: int, tmp_path, seconds: str, *flags):
    data = tmp_path / "reviews.csv"
    data.write_text(f"review\n{seconds}\n")  # every request asks the sleeper for this long
    proc = run_script(
        "load_test.py", "--url", f"http://127.0.0.1:{port}", "--data", data, *flags, timeout=120
    )
    return proc, json.loads(proc.stdout)


@pytest.mark.slow
def test_many_clients_connecting_at_once_are_all_answered(sleeper, tmp_path):
    with serving(sleeper) as s:
        proc, result = load_test(s["port"], tmp_path, "0", "--clients", "128", "--requests", "256")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["requests"] == 256 and result["errors"] == {}


@pytest.mark.slow
def test_the_load_test_counts_refused_requests_and_fails_without_a_traceback(sleeper, tmp_path):
    with serving(sleeper, "--max-queued", "1") as s:
        proc, result = load_test(s["port"], tmp_path, "0.3", "--clients", "4", "--requests", "8")
    assert proc.returncode == 1
    assert result["errors"].get("HTTP 503", 0) > 0 and result["requests"] > 0
    assert result["requests"] + sum(result["errors"].values()) == 8
    assert "Traceback" not in proc.stderr and "requests failed" in proc.stderr


@pytest.mark.parametrize(
    "answer, error",
    [
        (b"", "ConnectionResetError"),  # hangs up without a word
        (b"SSH-2.0-OpenSSH_9.6\r\n", "BadResponse"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "BadResponse"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}", "ConnectionResetError"),
    ],
)
def test_the_load_test_names_what_a_broken_server_sent_without_a_traceback(answer, error):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)

    def serve_badly():
        with listener:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
            with conn:
                conn.recv(1 << 16)
                conn.sendall(answer)

    threading.Thread(target=serve_badly, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    proc = run_script("load_test.py", "--url", url, "--requests", "1", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"the first request failed: {error}" in proc.stderr


@pytest.mark.slow
def test_tf_servings_intra_op_flag_is_taken_and_a_negative_one_refused(sleeper):
    with serving(sleeper, "--tensorflow_intra_op_parallelism", "0") as s:
        with Conn(s["port"]) as c:
            status, _, body = c.send(post(PREDICT, {"instances": ["0"]})).response()
            assert status == 200 and body["predictions"][0]["label"] == "positive"
    proc = run_script("serve.py", "--model-dir", sleeper, "--intra-op-threads", "-1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--intra-op-threads must be 0 or more" in proc.stderr


@pytest.mark.parametrize(
    "head, code",
    [
        (b"GET " + STATUS.encode() + b" HTTP/2.0\r\n\r\n", 505),
        (b"GET " + STATUS.encode() + b"\r\n\r\n", 400),  # no HTTP version
        (b"GET " + STATUS.encode() + b" HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET " + STATUS.encode() + b" HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", 400),
        (b"GET " + STATUS.encode() + b" HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400),
        (b"GET " + STATUS.encode() + b" HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET " + STATUS.encode() + b" HTTP/1.1\r\n" + b"X: 1\r\n" * 101 + b"\r\n", 431),
    ],
)
def test_a_head_that_cannot_be_read_is_refused_and_the_connection_closed(server, head, code):
    with Conn(server["port"]) as c:
        status, headers, body = c.send(head).response()
        assert status == code and body["error"] and headers["connection"] == "close"
        assert c.closed()


def test_an_unknown_method_gets_501_and_its_body_is_not_read_as_a_request(server):
    with Conn(server["port"]) as c:
        raw = request("PUT", PREDICT, b"GET / HTTP/1.1\r\n\r\n", ["Content-Length: 18"])
        status, _, body = c.send(raw).response()
        assert status == 501 and "PUT" in body["error"]
        assert c.send(request("GET", STATUS)).response()[0] == 200


def test_a_blank_line_before_a_request_is_ignored_and_http_1_0_closes(server):
    with Conn(server["port"]) as c:
        status, headers, _ = c.send(b"\r\nGET " + STATUS.encode() + b" HTTP/1.0\r\n\r\n").response()
        assert status == 200 and headers["connection"] == "close" and c.closed()


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("Threads:"))


@pytest.mark.slow
def test_many_half_sent_requests_cost_no_thread_each(sleeper):
    # Held by a thread each, 200 such connections once made 210 threads, none ever freed.
    with serving(sleeper, "--read-timeout", "30") as s:
        before = threads_of(s["proc"].pid)
        held = [Conn(s["port"]) for _ in range(150)]
        for c in held:
            c.send(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nContent-Le")
        with Conn(s["port"]) as c:  # served beside them
            assert c.send(request("GET", STATUS)).response()[0] == 200
        assert threads_of(s["proc"].pid) <= before + 2
        for c in held:
            c.sock.close()
