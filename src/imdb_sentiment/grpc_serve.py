"""TF Serving's gRPC API beside the REST server: PredictionService (Predict, GetModelMetadata) and
ModelService (GetModelStatus), with the protos of the tensorflow-serving-api package, so that
TF Serving's own stubs are the client. It serves the REST server's model repository through the
same model calls (batching.ModelCalls): the same cap on queued requests, and with batching on, gRPC
and REST requests merge into one model call.

Status codes as TF Serving's: an unknown model or version NOT_FOUND, a malformed request
INVALID_ARGUMENT, a full queue UNAVAILABLE (TF Serving's answer when its batch queue is full), a
bug or a model error INTERNAL with a request id that the log has with the traceback. Classify,
Regress, MultiInference and HandleReloadConfigRequest answer UNIMPLEMENTED.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from .batching import ModelCalls
from .export import INPUT_NAME
from .files import UserError
from .model_versions import ModelRepository, signature_metadata
from .serving_config import Limits
from .serving_requests import ClientError, check_count

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"
OUTPUTS = ("probability", "label")
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    503: grpc.StatusCode.UNAVAILABLE,
}
# A worker thread beyond the requests the model calls admit, so that status and metadata calls
# are answered while max_queued predict calls wait for the model.
_SPARE_WORKERS = 4


def _rpc(fn):
    """One RPC: a ClientError becomes its status code, anything else INTERNAL with a request id;
    with the access log on, one line per call."""

    @functools.wraps(fn)
    def call(self, request, context):
        started, code = time.monotonic(), grpc.StatusCode.OK
        try:
            return fn(self, request)
        except ClientError as e:
            code = _CODES.get(e.status, grpc.StatusCode.INTERNAL)
            context.abort(code, str(e))
        except Exception:  # a bug must cost one call, never the server
            code, request_id = grpc.StatusCode.INTERNAL, uuid.uuid4().hex[:12]
            log.exception(f"request id {request_id}: gRPC {fn.__name__} failed")
            context.abort(code, f"internal error, request id {request_id}")
        finally:
            if self.access_log:
                ms = (time.monotonic() - started) * 1000
                log.info(f"{context.peer()} gRPC {fn.__name__} {code.name} {ms:.1f} ms")

    return call


class Services(
    prediction_service_pb2_grpc.PredictionServiceServicer,
    model_service_pb2_grpc.ModelServiceServicer,
):
    def __init__(
        self,
        repo: ModelRepository,
        model_name: str,
        limits: Limits,
        calls: ModelCalls,
        access_log: bool = False,
    ):
        self.repo, self.model_name, self.limits = repo, model_name, limits
        self.calls, self.access_log = calls, access_log

    def _model(self, spec):
        """The version asked for by a ModelSpec and its loaded model."""
        if spec.name != self.model_name:
            raise ClientError(404, f"Servable not found for request: Latest({spec.name})")
        if spec.version_label:
            raise ClientError(400, "this server has no version labels; give a version")
        return self.repo.get(spec.version.value if spec.HasField("version") else None)

    def _reviews(self, request) -> list[bytes]:
        if request.model_spec.signature_name not in ("", SIGNATURE):
            raise ClientError(
                400, f'Serving signature key "{request.model_spec.signature_name}" not found.'
            )
        if set(request.inputs) != {INPUT_NAME}:
            raise ClientError(
                400, f"the only input is {INPUT_NAME!r}; got {sorted(request.inputs)}"
            )
        proto = request.inputs[INPUT_NAME]
        if proto.dtype != types_pb2.DT_STRING or len(proto.tensor_shape.dim) != 1:
            raise ClientError(
                400,
                f"{INPUT_NAME!r} must be a DT_STRING tensor of shape [n]; got "
                f"{types_pb2.DataType.Name(proto.dtype)} of rank {len(proto.tensor_shape.dim)}",
            )
        try:
            reviews = tf.make_ndarray(proto).tolist()
        except Exception as e:  # string_val not matching the shape
            raise ClientError(400, f"{INPUT_NAME!r} cannot be read: {e}") from None
        check_count(reviews, self.limits.max_batch)
        return reviews

    @_rpc
    def Predict(self, request):
        reviews = self._reviews(request)
        wanted = list(request.output_filter) or list(OUTPUTS)
        if unknown := set(wanted) - set(OUTPUTS):
            raise ClientError(400, f"output_filter names {sorted(unknown)}; outputs: {OUTPUTS}")
        version, loaded = self._model(request.model_spec)
        prob, label = self.calls.predict(loaded, reviews)
        out = predict_pb2.PredictResponse()
        out.model_spec.name = self.model_name
        out.model_spec.version.value = version
        out.model_spec.signature_name = SIGNATURE
        tensors = {
            "probability": lambda: tf.make_tensor_proto(np.asarray(prob, np.float32)),
            "label": lambda: tf.make_tensor_proto(label, dtype=tf.string, shape=[len(label)]),
        }
        for name in wanted:
            out.outputs[name].CopyFrom(tensors[name]())
        return out

    @_rpc
    def GetModelMetadata(self, request):
        if list(request.metadata_field) != ["signature_def"]:
            raise ClientError(
                400,
                f"metadata_field must be ['signature_def'] (the only one served); "
                f"got {list(request.metadata_field)}",
            )
        version, loaded = self._model(request.model_spec)
        out = get_model_metadata_pb2.GetModelMetadataResponse()
        out.model_spec.name = self.model_name
        out.model_spec.version.value = version
        # The REST answer's JSON is this proto's JSON form, so both are built from one place.
        signatures = json_format.ParseDict(
            signature_metadata(loaded)["signature_def"], get_model_metadata_pb2.SignatureDefMap()
        )
        out.metadata["signature_def"].Pack(signatures)
        return out

    @_rpc
    def GetModelStatus(self, request):
        version, _ = self._model(request.model_spec)
        asked = request.model_spec.HasField("version")
        out = get_model_status_pb2.GetModelStatusResponse()
        for v in [version] if asked else self.repo.loaded_versions():
            status = out.model_version_status.add()
            status.version = v
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return out


def make_grpc_server(
    repo: ModelRepository,
    calls: ModelCalls,
    model_name: str,
    host: str,
    port: int,
    limits: Limits = Limits(),
    access_log: bool = False,
) -> tuple[grpc.Server, int]:
    """The gRPC server, started, and the port it listens on (port 0 picks a free one). Stop it
    with stop(grace), which refuses new calls at once and lets those in flight finish."""
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=limits.max_queued + _SPARE_WORKERS, thread_name_prefix="grpc"
        ),
        # More calls at once are refused with RESOURCE_EXHAUSTED by grpc itself.
        maximum_concurrent_rpcs=limits.max_connections,
        options=[
            ("grpc.max_receive_message_length", limits.max_body),
            ("grpc.max_send_message_length", -1),
        ],
    )
    services = Services(repo, model_name, limits, calls, access_log)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(services, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(services, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as e:
        raise UserError(f"cannot listen for gRPC on {host}:{port}: {e}") from None
    if not bound:
        raise UserError(f"cannot listen for gRPC on {host}:{port}")
    server.start()
    return server, bound
