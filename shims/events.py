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
from mrun.shims.ttrpc import Client

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
    def __init__(self, ttrpc_address: str, namespace: str) -> None:
        self.address = ttrpc_address.removeprefix("unix://")
        self.namespace = namespace
        self.client: Client | None = None

    def publish(self, event: Message) -> None:
        """Forward one event; its topic follows from its type."""
        name = event.DESCRIPTOR.name
        envelope = events_pb2.Envelope(
            timestamp=now(),
            namespace=self.namespace,
            topic=TOPICS[name],
            event=any_pb2.Any(type_url=event.DESCRIPTOR.full_name, value=event.SerializeToString()),
        )
        if self.client is None:
            self.client = Client(self.address)
        self.client.call(
            SERVICE,
            "Forward",
            events_pb2.ForwardRequest(envelope=envelope).SerializeToString(),
            timeout=5,
            metadata={"containerd-namespace-ttrpc": self.namespace},
        )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
