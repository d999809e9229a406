"""scripts/soak.py against the real server for a bounded time, on its REST and gRPC ports at once:
good requests among malformed, slow and idle clients all answered right, threads and memory flat."""

import json

import pytest
from conftest import run_script, serving

pytestmark = pytest.mark.slow  # a timed soak of a real server

SECONDS = 24


def test_a_soak_keeps_answers_right_and_threads_and_memory_flat(trained):
    flags = ["--read-timeout", "2", "--idle-timeout", "2", "--max-body-mb", "1"]
    with serving(trained["models"], *flags, "--grpc-port", "0", "--enable_batching") as s:
        proc = run_script(
            "soak.py",
            "--pid",
            s["proc"].pid,
            "--port",
            s["port"],
            "--grpc-port",
            s["grpc"].rsplit(":", 1)[1],
            "--max-body-mb",
            1,
            "--seconds",
            SECONDS,
            "--quiet-seconds",
            8,
            timeout=SECONDS + 120,
        )
        assert s["proc"].poll() is None
    summary = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert all(summary["checks"].values())
    assert {"good", "bad", "slow", "idle", "grpc good", "grpc bad", "grpc raw"} <= set(
        summary["requests"]
    )
    assert not summary["failures"]
