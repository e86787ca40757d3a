"""Publishing task events to containerd: the events service's Forward, over ttrpc.

containerd gives a shim its ttrpc address in ``$TTRPC_ADDRESS``; the namespace travels as
``containerd-namespace-ttrpc`` metadata, and the event as an Any whose type URL is the bare
message name (``containerd.events.TaskExit``), as containerd's typeurl v1 writes it.
"""

from __future__ import annotations

import time

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from mrun.shims.proto import events_pb2
from mrun.shims.ttrpc import Client, background

SERVICE = "containerd.services.events.ttrpc.v1.Events"
TOPICS = {
    "TaskCreate": "/tasks/create",
    "TaskStart": "/tasks/start",
    "TaskExit": "/tasks/exit",
    "TaskDelete": "/tasks/delete",
    "TaskExecAdded": "/tasks/exec-added",
    "TaskExecStarted": "/tasks/exec-started",
    "TaskPaused": "/tasks/paused",
    "TaskResumed": "/tasks/resumed",
    "TaskOOM": "/tasks/oom",
}


def now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


class Publisher:
    """Events go out in order from one sender thread, through a bounded queue: when containerd is
    away (restarting), the sender reconnects with backoff and sends what waited, as containerd's
    own shims do. When the queue is full the oldest events go first, but never an exit or an OOM:
    those decide what Kubernetes reports about a container."""

    KEEP = ("TaskExit", "TaskOOM")

    def __init__(self, ttrpc_address: str, namespace: str, limit: int = 1024) -> None:
        import collections
        import threading

        self.address = ttrpc_address.removeprefix("unix://")
        self.namespace = namespace
        self.client: Client | None = None
        self.queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self.limit = limit
        self.cond = threading.Condition()
        self.sending = False
        background(self._send_forever)  # not waited for: the daemon is about to serve

    def publish(self, event: Message) -> None:
        """Queue one event; its topic follows from its type, its timestamp is now."""
        name = event.DESCRIPTOR.name
        envelope = events_pb2.Envelope(
            timestamp=now(),
            namespace=self.namespace,
            topic=TOPICS[name],
            event=any_pb2.Any(type_url=event.DESCRIPTOR.full_name, value=event.SerializeToString()),
        )
        with self.cond:
            if len(self.queue) >= self.limit:
                self._drop_one()
            self.queue.append((name, events_pb2.ForwardRequest(envelope=envelope).SerializeToString()))
            self.cond.notify_all()

    def _drop_one(self) -> None:
        for i, (name, _) in enumerate(self.queue):
            if name not in self.KEEP:
                del self.queue[i]
                return

    def _send_forever(self) -> None:
        import sys

        delay = 0.05
        while True:
            with self.cond:
                while not self.queue:
                    self.sending = False
                    self.cond.notify_all()
                    self.cond.wait()
                self.sending = True
                name, request = self.queue[0]
            try:
                self._send(request)
            except Exception as e:  # noqa: BLE001 - containerd away: reconnect and try again
                if self.client is not None:
                    self.client.close()
                    self.client = None
                if delay >= 1:
                    print(f"mrun shim: publishing {name} failed ({e}); retrying", file=sys.stderr)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            with self.cond:
                self.queue.popleft()

    def _send(self, request: bytes) -> None:
        if self.client is None:
            self.client = Client(self.address)
        self.client.call(
            SERVICE, "Forward", request, timeout=5, metadata={"containerd-namespace-ttrpc": self.namespace}
        )

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued was sent (before the daemon exits). -> whether it was."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.queue or self.sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
