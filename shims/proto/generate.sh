#!/bin/sh
# Regenerate the *_pb2.py modules from the .proto files (needs `pip install grpcio-tools`).
# The generated files are committed: the shim needs only the `protobuf` runtime.
set -eu
cd "$(dirname "$0")"
python -m grpc_tools.protoc -I. --python_out=. ttrpc.proto types.proto task.proto events.proto metrics.proto metrics_v2.proto bootstrap.proto sandbox.proto
# protoc writes absolute imports (`import types_pb2`); make them package-relative.
sed -i 's/^import types_pb2 as /from . import types_pb2 as /' task_pb2.py events_pb2.py sandbox_pb2.py
