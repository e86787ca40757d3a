"""The annotation keys that steer mrun, in one place, and the rule that keeps images off them.

Runtime settings come from the operator: CLI flags, the bundle's own annotations (written by the
engine that made the bundle), pod annotations through the shim. An image's labels are the image
author's words; they are copied into a container's annotations for people and tools to read,
but never under a reserved key (``strip_reserved``), so an image cannot choose its own network
mode, backend or limits. The one exception is the image format's own declaration of a wasm
image (``module.wasm.image/variant``), which is read from the image's format, not passed along
as a label (``images.containers.make_spec``).
"""

from __future__ import annotations

HANDLER = "run.oci.handler"  # names the backend, overriding detection
WASM_VARIANT = "module.wasm.image/variant"  # compat | compat-smart (the wasm OCI image convention)
WASM_DEADLINE = "org.mrun.wasm.deadline-ms"
WASM_PREOPENS = "org.mrun.wasm.preopens"  # rootfs (default) | mounts | none | /a,/b:ro
NETWORK = "org.mrun.network"
NETWORK_PORTS = "org.mrun.network.ports"
NETWORK_HOSTS = "org.mrun.network.hosts"  # NAME=IP,... more lines for /etc/hosts (docker's --add-host)
NETWORK_DNS = "org.mrun.network.dns"  # IP,... the resolvers of /etc/resolv.conf (--dns)
NETWORK_DNS_SEARCH = "org.mrun.network.dns-search"  # DOMAIN,... (--dns-search; "." for none)
NETWORK_DNS_OPTIONS = "org.mrun.network.dns-options"  # OPTION,... (--dns-option)
NETWORK_IP = "org.mrun.network.ip"  # the container's address on its network, asked for (docker's --ip)
NETWORK_MAC = "org.mrun.network.mac"  # its eth0's MAC address, asked for (docker's --mac-address)
NETWORK_ALIASES = "org.mrun.network.aliases"  # NAME,... more names others on its network know it by (--network-alias)
# JSON list of {"name", "ip", "aliases"}: the networks it is on besides the first, eth1 on (a second
# --network, `mrun network connect`)
NETWORK_MORE = "org.mrun.network.more"
# NAME: the network a container was on when its last was disconnected (docker's `network disconnect`
# of its only one): it has lo alone, and `mrun network connect` gives it a first network again
NETWORK_DETACHED = "org.mrun.network.detached"
EXPOSE = "org.mrun.expose"  # PORT/PROTO,...: the ports --expose named (docker's Config.ExposedPorts has them)
OCI_RUNTIME = "org.mrun.oci.runtime"  # the oci backend: which installed OCI runtime runs the container
RESTART = "org.mrun.restart"  # no | always | unless-stopped | on-failure[:N]: mrun run -d --restart
REMOVE = "org.mrun.remove"  # "true": run --rm, create --rm (docker's AutoRemove): removed once it ends
STDIN = "org.mrun.stdin"  # "open": -i (docker's OpenStdin): a detached run's supervisor holds its stdin open for attach
LOG = "org.mrun.log"  # JSON: keep, max_size, max_files (--log-driver, --log-opt): a detached container's log
# JSON: test, interval, timeout, start_period, start_interval, retries (--health-*, an image's Healthcheck)
HEALTH = "org.mrun.health"
# podman's --cgroups: no-conmon or split, where a detached container's supervisor stays in its
# caller's cgroup (a systemd unit's) instead of one beside the container's (cgroups.beside)
CGROUPS = "org.mrun.cgroups"
CONMON_PIDFILE = "org.mrun.conmon-pidfile"  # podman's --conmon-pidfile: its supervisor's pid, at each start
SDNOTIFY = "org.mrun.sdnotify"  # `create IMAGE --sdnotify MODE`: what its `start` does under NOTIFY_SOCKET
SECRET_ENV = "org.mrun.secret-env"  # NAME,...: the variables --secret type=env set (commit leaves them out)
STOP_TIMEOUT = "org.mrun.stop-timeout"  # seconds `mrun stop` waits before SIGKILL (-1: for ever); --stop-timeout
# RFC 3339: when `mrun run IMAGE` or `create IMAGE` made it (docker's Created, kept over its starts;
# the runtime's own `created` is its latest start's, as runc's)
CREATED = "org.mrun.created"
# docker's Config as run or create was given it, for inspect: how many of process.args are the
# entrypoint (the rest its Cmd), and the user as named (--user, or the image's User)
COMMAND_AT = "org.mrun.command-at"
USER = "org.mrun.user"
IMAGE = "org.mrun.image"  # made by `mrun run IMAGE`: the snapshot goes with the container
JOINED = "org.mrun.joined"  # JSON: network/pid -> the container joined by --network/--pid container:ID
STOP_SIGNAL = "org.opencontainers.image.stopSignal"  # from the image config's StopSignal

# Keys other programs define, that mrun reads or writes (not reserved: they are theirs)
CRI_SANDBOX_ID = "io.kubernetes.cri.sandbox-id"  # CRI: containers of one pod share this
CRI_CONTAINER_TYPE = "io.kubernetes.cri.container-type"  # CRI: "sandbox" (its pause container) or "container"
RUNC_GROUP = "io.containerd.runc.v2.group"  # containerd's runc shim: tasks grouped in one shim
# Keys mrun writes into `mrun features`, for people and tools to read
FEATURES_VERSION, FEATURES_BACKENDS = "org.mrun.version", "org.mrun.backends"

RESERVED_PREFIXES = ("org.mrun.", "run.oci.", "module.wasm.image/")
RESERVED_KEYS = frozenset((STOP_SIGNAL,))


def is_reserved(key: str) -> bool:
    return key in RESERVED_KEYS or key.startswith(RESERVED_PREFIXES)


def strip_reserved(labels: dict[str, str]) -> dict[str, str]:
    """An image's labels as annotations, less every key that would steer the runtime."""
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str) and not is_reserved(k)}
