"""The servers' model calls, each on a thread of its own so that no front end waits on the model:
a cap on the requests waiting for it (503 beyond), predict and explain alike, and with batching
on, concurrent predict requests merged into one model call, as TF Serving's --enable_batching
does (Batcher)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future

from .model_versions import predict
from .serving_config import BatchingParameters
from .serving_requests import RETRY_AFTER_SECONDS, ClientError

log = logging.getLogger(__name__)


def in_thread(fn, *args) -> Future:
    """fn(*args) (a model call) on a thread of its own. A daemon thread: a call still running when
    the server has drained for its --drain-seconds must not hold the process's exit."""
    done = Future()

    def run():
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(fn(*args))
        except BaseException as e:
            done.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return done


class _Batch:
    def __init__(self, loaded):
        self.loaded = loaded
        self.opened = time.monotonic()
        self.size = 0
        self.requests: list[tuple[list[bytes], Future]] = []


class Batcher:
    """Merges concurrent predict requests into one model call, with TF Serving's batching
    parameters: a batch runs once it holds max_batch_size reviews, once a request does not fit in
    it, or batch_timeout_micros after it opened, on one of num_batch_threads threads; beyond
    max_enqueued_batches waiting, requests are refused (503). A request larger than
    max_batch_size runs on its own. Each request gets its own rows of the outputs back."""

    def __init__(self, params: BatchingParameters):
        self.params = params
        self._queue: deque[_Batch] = deque()  # oldest first; only the newest takes requests
        self._changed = threading.Condition()
        for _ in range(params.num_batch_threads):
            threading.Thread(target=self._work, daemon=True).start()

    def submit(self, loaded, reviews: list[bytes]) -> Future:
        """The request's outputs, to come: its rows of a batch's model call."""
        if len(reviews) > self.params.max_batch_size:
            return in_thread(predict, loaded, reviews)
        done = Future()
        with self._changed:
            batch = self._queue[-1] if self._queue else None
            if (
                batch is None
                or batch.loaded is not loaded
                or batch.size + len(reviews) > self.params.max_batch_size
            ):
                if len(self._queue) >= self.params.max_enqueued_batches:
                    raise ClientError(
                        503,
                        f"{len(self._queue)} batches are waiting for the model; retry later",
                        RETRY_AFTER_SECONDS,
                    )
                batch = _Batch(loaded)
                self._queue.append(batch)
            batch.requests.append((reviews, done))
            batch.size += len(reviews)
            self._changed.notify()
        return done

    def _next(self) -> _Batch:
        timeout = self.params.batch_timeout_micros / 1e6
        with self._changed:
            while True:
                if self._queue:
                    first = self._queue[0]
                    wait = first.opened + timeout - time.monotonic()
                    full = first.size >= self.params.max_batch_size or len(self._queue) > 1
                    if full or wait <= 0:
                        return self._queue.popleft()
                    self._changed.wait(wait)
                else:
                    self._changed.wait()

    def _work(self) -> None:
        while True:
            batch = self._next()
            # requests given up while they waited (a stopping server's) are left out
            requests = [(rs, d) for rs, d in batch.requests if d.set_running_or_notify_cancel()]
            log.debug(f"a batch of {batch.size} reviews from {len(requests)} requests")
            if not requests:
                continue
            try:
                prob, label = predict(batch.loaded, [r for rs, _ in requests for r in rs])
            except Exception as e:  # each request of the batch answers 500 with it
                for _, done in requests:
                    done.set_exception(e)
                continue
            start = 0
            for reviews, done in requests:
                end = start + len(reviews)
                done.set_result((prob[start:end], label[start:end]))
                start = end


class ModelCalls:
    """The model calls of every front end (REST and gRPC) alike: at most max_queued waiting for
    or in the model, more refused with 503; predict calls through the Batcher when batching is on,
    so that requests from both merge into one model call."""

    def __init__(self, max_queued: int, batcher: Batcher | None = None):
        self.max_queued = max_queued
        self._slots = threading.BoundedSemaphore(max_queued)
        self._batcher = batcher

    def submit(self, loaded, reviews: list[bytes]) -> Future:
        """The outputs, to come, of a model call (or of a batch's) that runs on another thread, so
        that the event loop of the HTTP server never waits on the model."""
        if self._batcher:
            return self._capped(self._batcher.submit, loaded, reviews)
        return self._capped(in_thread, predict, loaded, reviews)

    def call(self, fn, *args) -> Future:
        """fn(*args), model work other than a predict call (an explanation), on a thread of its own
        under the same cap as predict calls; never batched."""
        return self._capped(in_thread, fn, *args)

    def _capped(self, start, *args) -> Future:
        """start(*args), which starts a model call and gives its Future, in one of the max_queued
        slots, held until the call is done."""
        if not self._slots.acquire(blocking=False):
            raise ClientError(
                503,
                f"{self.max_queued} requests are already waiting for the model; retry later",
                RETRY_AFTER_SECONDS,
            )
        try:
            done = start(*args)
        except BaseException:
            self._slots.release()
            raise
        done.add_done_callback(lambda _: self._slots.release())
        return done

    def predict(self, loaded, reviews: list[bytes]) -> tuple[list[float], list[str]]:
        """submit(), waited for: for gRPC's handler threads."""
        return self.submit(loaded, reviews).result()
