"""The runtime-spec features document (``mrun features``), backends included."""

from __future__ import annotations

import json

from mrun import OCI_VERSION, __version__
from mrun import annotations as ann
from mrun.kernel import apparmor
from mrun.kernel.capnames import NAMES
from mrun.sandbox.rootfs import _FLAGS, PROPAGATION, RECURSIVE_ATTRS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def features_document() -> dict[str, Any]:
    from mrun.plugins.manager import Backends
    from mrun.sandbox.seccomp import _ACTIONS, _ARCHES, _OPS
    from mrun.sandbox.seccomp import _FLAGS as SECCOMP_FLAGS
    from mrun.spec import MEMORY_POLICY_FLAGS, MEMORY_POLICY_MODES

    backends = Backends.shared().features()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted([*_FLAGS, *PROPAGATION, *RECURSIVE_ATTRS, "tmpcopyup", "idmap", "ridmap"]),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": ["CAP_" + n for n in NAMES],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": sorted(_ACTIONS),
                "operators": sorted(_OPS),
                "archs": sorted(_ARCHES),
                "knownFlags": list(SECCOMP_FLAGS),
                "supportedFlags": [f for f, bit in SECCOMP_FLAGS.items() if bit],  # passed to seccomp(2)
            },
            "apparmor": {"enabled": apparmor.enabled()},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "memoryPolicy": {"modes": list(MEMORY_POLICY_MODES), "flags": list(MEMORY_POLICY_FLAGS)},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
        },
        "annotations": {
            ann.FEATURES_VERSION: __version__,
            ann.FEATURES_BACKENDS: ",".join(b["name"] for b in backends),
            f"{ann.FEATURES_BACKENDS}.detail": json.dumps(backends),
            ann.HANDLER: "names the backend to use, overriding detection",
        },
    }
