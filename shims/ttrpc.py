"""ttrpc, the RPC containerd speaks to shims: protobuf messages in small frames on a unix socket.

Frame: ``len:u32be stream:u32be type:u8 flags:u8`` then ``len`` bytes. Type 1 is a Request,
2 a Response; clients use odd stream ids. containerd keeps one connection per shim and
pipelines calls on it (``Wait`` blocks while ``Start`` is answered), so the server runs each
request on its own thread and serialises frame writes. Nothing a peer sends may crash the
server: an oversized frame is discarded and answered with ResourceExhausted, a request that
does not parse or uses an even stream id with InvalidArgument (a payload that does not parse as
its method's message too), an unknown service or method with Unimplemented, and a handler that
fails where it should not with Unknown, its message saying "internal error".
"""

from __future__ import annotations

import _thread
import socket
import struct
import sys
import threading
from collections.abc import Callable

from google.protobuf.message import DecodeError
from mrun.errors import in_words
from mrun.kernel.fdpass import read_exact
from mrun.shims.proto import ttrpc_pb2
from mrun.trace import span

HEADER = struct.Struct(">IIBB")
MAX_MESSAGE = 4 << 20
REQUEST, RESPONSE = 1, 2

# google.rpc codes that containerd maps (errdefs.FromGRPC)
CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 1, 2, 3, 4, 5
ALREADY_EXISTS, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, UNIMPLEMENTED, UNAVAILABLE = 6, 8, 9, 12, 14

Handler = Callable[[bytes, ttrpc_pb2.Request], bytes]


class TTRPCError(Exception):
    """An error status for the peer: raise it from a handler, or get it from a call."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _discard(conn: socket.socket, n: int) -> bool:
    while n:
        chunk = conn.recv(min(n, 1 << 20))
        if not chunk:
            return False
        n -= len(chunk)
    return True


class Connection:
    """One peer: a writer lock shared by every thread answering on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.write_lock = threading.Lock()

    def send(self, stream: int, kind: int, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(HEADER.pack(len(data), stream, kind, 0) + data)

    def read_frame(self) -> tuple[int, int, bytes | None] | None:
        """(stream, type, data); data is None when the frame was too large and was skipped."""
        header = read_exact(self.sock, HEADER.size)
        if header is None:
            return None
        length, stream, kind, _flags = HEADER.unpack(header)
        if length > MAX_MESSAGE:
            return (stream, kind, None) if _discard(self.sock, length) else None
        data = read_exact(self.sock, length)
        return None if data is None else (stream, kind, data)


def background(fn: Callable[..., object], *args: object) -> None:
    """``fn(*args)`` on a thread of its own, without waiting for it to start: ``Thread.start``
    waits until the new thread runs, which on a busy node (the shim's first moments: its fork
    helper, containerd and ctr on the other CPU) cost a call up to a millisecond before the
    caller went on. Used for threads the process ends without joining (it leaves by _exit)."""
    _thread.start_new_thread(fn, args)


class Server:
    """Serve registered methods on a listening unix socket, one thread per connection and per call."""

    def __init__(self, on_last_disconnect: Callable[[], None] | None = None) -> None:
        self.methods: dict[str, dict[str, Handler]] = {}
        self.stopping = threading.Event()
        self.calls = 0  # requests received, ever
        self.callers = 0  # open connections that have sent a request
        self.inflight = 0  # requests being answered
        self.callers_lock = threading.Lock()
        # Called when the last connection that made calls closes: containerd is gone (or has
        # restarted and will reconnect). A connection that never calls (a liveness probe) counts not.
        self.on_last_disconnect = on_last_disconnect

    def register(self, service: str, method: str, handler: Handler) -> None:
        self.methods.setdefault(service, {})[method] = handler

    def serve(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                raise
            background(self._connection, Connection(conn))

    def _connection(self, conn: Connection) -> None:
        called = False
        try:
            while True:
                frame = conn.read_frame()
                if frame is None:
                    return
                stream, kind, data = frame
                if kind != REQUEST:
                    continue  # responses and data frames are never sent to a server here
                if not called:
                    called = True
                    with self.callers_lock:
                        self.callers += 1
                self.calls += 1
                if data is None:
                    self._reply_error(conn, stream, RESOURCE_EXHAUSTED, f"message larger than {MAX_MESSAGE} bytes")
                elif stream % 2 == 0:
                    self._reply_error(conn, stream, INVALID_ARGUMENT, f"stream id {stream} is not odd")
                else:
                    with self.callers_lock:
                        self.inflight += 1
                    background(self._call, conn, stream, data)
        except OSError:
            return
        finally:
            conn.sock.close()
            if called:
                with self.callers_lock:
                    self.callers -= 1
                self._maybe_gone()

    def _maybe_gone(self) -> None:
        """No caller left and nothing being answered (a Create that outlives its caller counts)."""
        with self.callers_lock:
            gone = self.callers == 0 and self.inflight == 0
        if gone and self.on_last_disconnect is not None:
            self.on_last_disconnect()

    def _reply_error(self, conn: Connection, stream: int, code: int, message: str) -> None:
        resp = ttrpc_pb2.Response(status=ttrpc_pb2.Status(code=code, message=message))
        try:
            conn.send(stream, RESPONSE, resp.SerializeToString())
        except OSError:
            pass

    def _call(self, conn: Connection, stream: int, data: bytes) -> None:
        try:
            self._answer(conn, stream, data)
        finally:
            with self.callers_lock:
                self.inflight -= 1
                idle = self.callers == 0
            if idle:
                self._maybe_gone()

    def _answer(self, conn: Connection, stream: int, data: bytes) -> None:
        try:
            req = ttrpc_pb2.Request.FromString(data)
        except Exception:
            self._reply_error(conn, stream, INVALID_ARGUMENT, "malformed request")
            return
        service = self.methods.get(req.service)
        if service is None:
            self._reply_error(conn, stream, UNIMPLEMENTED, f"service {req.service}")
            return
        handler = service.get(req.method)
        if handler is None:
            self._reply_error(conn, stream, UNIMPLEMENTED, f"method {req.method}")
            return
        try:
            with span(f"ttrpc {req.method}"):
                payload = handler(req.payload, req)
        except TTRPCError as e:
            self._reply_error(conn, stream, e.code, e.message)
            return
        except DecodeError as e:  # the payload (or an Any in it) is not the message the method takes
            self._reply_error(conn, stream, INVALID_ARGUMENT, f"{req.method}: malformed request: {e}")
            return
        except Exception as e:  # a bug must not take the server down: report it to the caller, as one
            print(f"mrun shim: {req.service}/{req.method} failed: {e!r}", file=sys.stderr)
            self._reply_error(conn, stream, UNKNOWN, f"{req.method}: internal error: {in_words(e)}")
            return
        try:
            conn.send(stream, RESPONSE, ttrpc_pb2.Response(payload=payload).SerializeToString())
        except OSError:
            pass


class Client:
    """Calls on one connection, pipelined: a reader thread hands each response to its caller."""

    def __init__(self, path: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        self.conn = Connection(sock)
        self.lock = threading.Lock()
        self.next_stream = 1
        self.waiting: dict[int, list] = {}
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                frame = self.conn.read_frame()
            except OSError:
                frame = None
            if frame is None:
                with self.lock:
                    self.closed = True
                    for slot in self.waiting.values():
                        slot[1] = TTRPCError(UNAVAILABLE, "connection closed")
                        slot[0].set()
                return
            stream, _kind, data = frame
            with self.lock:
                slot = self.waiting.get(stream)
            if slot is not None:
                slot[1] = data
                slot[0].set()

    def call(
        self, service: str, method: str, payload: bytes, timeout: float = 10.0, metadata: dict[str, str] | None = None
    ) -> bytes:
        req = ttrpc_pb2.Request(
            service=service,
            method=method,
            payload=payload,
            timeout_nano=int(timeout * 1e9),
            metadata=[ttrpc_pb2.KeyValue(key=k, value=v) for k, v in (metadata or {}).items()],
        )
        slot: list = [threading.Event(), None]
        with self.lock:
            if self.closed:
                raise TTRPCError(UNAVAILABLE, "connection closed")
            stream = self.next_stream
            self.next_stream += 2
            self.waiting[stream] = slot
        try:
            self.conn.send(stream, REQUEST, req.SerializeToString())
            if not slot[0].wait(timeout):
                raise TTRPCError(DEADLINE_EXCEEDED, f"{service}/{method}: no answer in {timeout}s")
        finally:
            with self.lock:
                self.waiting.pop(stream, None)
        if isinstance(slot[1], TTRPCError):
            raise slot[1]
        resp = ttrpc_pb2.Response.FromString(slot[1])
        if resp.HasField("status") and resp.status.code:
            raise TTRPCError(resp.status.code, resp.status.message)
        return resp.payload

    def close(self) -> None:
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.sock.close()
