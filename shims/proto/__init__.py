"""Protobuf messages of the shim protocol, generated from the .proto files beside them (generate.sh)."""
