"""ttrpc framing and dispatch (the shim's wire layer), on a real unix socket: pipelined calls,
error statuses, and hostile frames that must never take the server down."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest
from mrun.shims import ttrpc
from mrun.shims.main import listen
from mrun.shims.proto import task_pb2, ttrpc_pb2

TASK = "containerd.task.v2.Task"


@pytest.fixture
def server(tmp_path):
    path = str(tmp_path / "t.sock")
    release = threading.Event()
    srv = ttrpc.Server()

    def connect(payload: bytes, req: ttrpc_pb2.Request) -> bytes:
        who = task_pb2.ConnectRequest.FromString(payload).id
        return task_pb2.ConnectResponse(shim_pid=os.getpid(), task_pid=len(who), version="mrun").SerializeToString()

    def wait(payload: bytes, req: ttrpc_pb2.Request) -> bytes:
        release.wait(10)  # like Wait: blocks until the task exits
        return task_pb2.WaitResponse(exit_status=3).SerializeToString()

    def delete(payload: bytes, req: ttrpc_pb2.Request) -> bytes:
        raise ttrpc.TTRPCError(ttrpc.NOT_FOUND, "container not created: not found")

    def crash(payload: bytes, req: ttrpc_pb2.Request) -> bytes:
        raise RuntimeError("a bug in a handler")

    for name, fn in (("Connect", connect), ("Wait", wait), ("Delete", delete), ("Stats", crash)):
        srv.register(TASK, name, fn)
    listener = socket.socket(fileno=listen(path).detach())
    threading.Thread(target=srv.serve, args=(listener,), daemon=True).start()
    yield path, release
    srv.stopping.set()
    listener.close()
    release.set()


def test_call_round_trip(server):
    path, _ = server
    client = ttrpc.Client(path)
    resp = task_pb2.ConnectResponse.FromString(
        client.call(TASK, "Connect", task_pb2.ConnectRequest(id="abc").SerializeToString())
    )
    assert (resp.shim_pid, resp.task_pid, resp.version) == (os.getpid(), 3, "mrun")
    client.close()


def test_pipelined_calls_are_answered_out_of_order(server):
    path, release = server
    client = ttrpc.Client(path)
    results = {}
    waiter = threading.Thread(target=lambda: results.setdefault("wait", client.call(TASK, "Wait", b"")))
    waiter.start()
    time.sleep(0.1)
    # Wait (stream 1) is still pending: Connect (stream 3) on the same connection must not queue behind it
    assert task_pb2.ConnectResponse.FromString(client.call(TASK, "Connect", b"")).version == "mrun"
    assert "wait" not in results
    release.set()
    waiter.join(5)
    assert task_pb2.WaitResponse.FromString(results["wait"]).exit_status == 3
    client.close()


@pytest.mark.parametrize(
    "service, method, code, message",
    [
        (TASK, "Delete", ttrpc.NOT_FOUND, "container not created: not found"),
        (TASK, "Checkpoint", ttrpc.UNIMPLEMENTED, "method Checkpoint"),
        ("containerd.nope.v1.Nope", "Any", ttrpc.UNIMPLEMENTED, "service containerd.nope.v1.Nope"),
        (TASK, "Stats", ttrpc.UNKNOWN, "Stats: internal error: a bug in a handler"),
    ],
)
def test_error_statuses(server, service, method, code, message):
    client = ttrpc.Client(server[0])
    with pytest.raises(ttrpc.TTRPCError) as e:
        client.call(service, method, b"")
    assert (e.value.code, e.value.message) == (code, message)
    client.close()


def _raw_exchange(path: str, frame: bytes) -> ttrpc_pb2.Response:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.settimeout(10)
    sock.sendall(frame)
    header = b""
    while len(header) < 10:
        header += sock.recv(10 - len(header))
    length, stream, kind, _ = struct.unpack(">IIBB", header)
    data = b""
    while len(data) < length:
        data += sock.recv(length - len(data))
    sock.close()
    assert kind == ttrpc.RESPONSE
    return ttrpc_pb2.Response.FromString(data)


def test_hostile_frames_get_error_replies_and_the_server_lives_on(server):
    path, _ = server
    good = ttrpc_pb2.Request(service=TASK, method="Connect").SerializeToString()
    garbage = b"\xff\xff\xff\xff not protobuf"
    r = _raw_exchange(path, struct.pack(">IIBB", len(garbage), 1, 1, 0) + garbage)
    assert r.status.code == ttrpc.INVALID_ARGUMENT
    r = _raw_exchange(path, struct.pack(">IIBB", len(good), 2, 1, 0) + good)  # even stream id
    assert r.status.code == ttrpc.INVALID_ARGUMENT
    big = ttrpc.MAX_MESSAGE + 1
    r = _raw_exchange(path, struct.pack(">IIBB", big, 5, 1, 0) + b"\0" * big)
    assert r.status.code == ttrpc.RESOURCE_EXHAUSTED
    # a truncated frame then a hang-up: only that connection ends
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(struct.pack(">IIBB", 100, 7, 1, 0) + b"short")
    sock.close()
    r = _raw_exchange(path, struct.pack(">IIBB", len(good), 9, 1, 0) + good)
    assert not r.HasField("status") and task_pb2.ConnectResponse.FromString(r.payload).version == "mrun"
