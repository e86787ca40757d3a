"""Every verb and flag of the ``mrun`` CLI, defined once.

(Plain classes, not dataclasses: importing dataclasses pulls in inspect, ~20 ms on every call.)

Two front ends are built from this table: ``fastparse`` (no typer import; what containerd's
runc shim and podman hit once per verb) and ``typer_app`` (help, completion and friendly usage
errors for people). A flag added here exists in both, with the same names and defaults.
"""

from __future__ import annotations

from mrun.plugins.cli import Arg, Command, Flag  # noqa: F401 - the table's vocabulary, shared with backends

GLOBAL_FLAGS = (
    Flag("root", "directory holding container state", default="/run/mrun"),
    Flag("image-root", "directory holding images, image containers and volumes", default="/var/lib/mrun"),
    Flag("log", "write runtime log lines to this file (containerd's shim reads it)", default=""),
    Flag("log-format", "format of the --log file: text or json", default="text"),
    Flag("debug", "log debug messages", kind=bool, default=False),
    Flag(
        "systemd-cgroup",
        "read cgroupsPath as slice:prefix:name (the cgroup is made with cgroupfs)",
        kind=bool,
        default=False,
    ),
    Flag("rootless", "accepted for runc compatibility: auto, true or false", default="auto", hidden=True),
    Flag("criu", "accepted for runc compatibility; checkpointing is not implemented", default="", hidden=True),
    # the operator's backend policy (mrun.plugins.policy), over /etc/mrun/policy.json
    Flag("backends-allowed", "only these backends may run containers (comma-separated)", default=""),
    Flag("backend-default", "the backend for bundles no backend bids for", default=""),
    Flag("backend-pin", "every container runs on this backend", default=""),
)
POLICY_ENV = {
    "backends_allowed": "MRUN_BACKENDS_ALLOWED",
    "backend_default": "MRUN_BACKEND_DEFAULT",
    "backend_pin": "MRUN_BACKEND_PIN",
}

_ID = Arg("container-id", "the container's name")
_INSECURE = Flag("insecure", "plain HTTP (always so for loopback registries)", kind=bool, default=False)
# docker's ps (and container ls) flags beyond -a, -q, --filter and --format
_LISTING = (
    Flag("last", "list: the N containers created last, in every state, newest first (docker's -n)", kind=int,
         short="n", default=-1),
    Flag("latest", "list: the container created last, in any state (docker's -l)", kind=bool, short="l",
         default=False),
    Flag("no-trunc", "list: each command whole", kind=bool, default=False),
    Flag("size", "list: SIZE, its writable layer (and with its image's: virtual) (docker's -s)", kind=bool,
         short="s", default=False),
)
# commit's and import's
_CHANGE = Flag("change", "a Dockerfile instruction over its config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, "
               "WORKDIR, VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD", kind=list, short="c", default=())
_CREDS = Flag("creds", "USER:PASSWORD (else from auth.json or docker's config.json; see login)", default="")
_BUNDLE = Flag("bundle", "path to the OCI bundle (holds config.json)", short="b", default=".")
_PID_FILE = Flag("pid-file", "write the process id to this file", default="")
_CONSOLE = Flag("console-socket", "unix socket that receives the pty master (SCM_RIGHTS)", default="")
_PRESERVE = Flag("preserve-fds", "pass this many extra descriptors (3, 4, ...) to the process", kind=int, default=0)
_NO_PIVOT = Flag("no-pivot", "use MS_MOVE + chroot instead of pivot_root (for ramdisk roots)", kind=bool, default=False)
_NO_KEYRING = Flag(
    "no-new-keyring", "keep the caller's session keyring (default: the container's own)", kind=bool, default=False
)
_DETACH = Flag("detach", "do not wait for the process", kind=bool, short="d", default=False)
_DETACH_KEYS = Flag("detach-keys", "docker's: the keys typed into a terminal container that leave it running "
                    "(default ctrl-p,ctrl-q)", default="")
_FORMAT = Flag("format", "output format: table or json", short="f", default="table")
# docker's listings: ps, images, volume ls, network ls (mrun.cli.listing)
_LIST_HELP = "table, json, or docker's Go template ({{.ID}}; 'table {{.ID}}\\t{{.Status}}' adds a header)"
_LIST_FORMAT = Flag("format", _LIST_HELP, default="table")
# docker's ps and images -f is --filter (mrun's was --format, as runc's ps -f: a template, json or
# table given to -f is still read as one: listing.filters_and_format)
_IMAGE_FILTER = Flag("filter", "only images matching KEY=VALUE: reference=PATTERN, label=KEY[=VALUE], dangling=, "
                     "before=IMAGE, since=IMAGE (image prune: label=, label!=, until=TIME)", short="f", kind=list,
                     default=())
# docker's images --digests and --no-trunc
_IMAGE_COLUMNS = (Flag("digests", "ls: a DIGEST column (the manifest's)", kind=bool, default=False),
                  Flag("no-trunc", "ls: ids whole (sha256:...)", kind=bool, default=False))
# docker's stop -s and restart -s: the signal instead of the container's own stop signal
_STOP_WITH = Flag("signal", "the signal to stop it with (default: its --stop-signal, else the image's, else SIGTERM)",
                  short="s", default="")
# podman's, for the units `podman generate systemd --new` and Quadlet write (ExecStop, ExecStopPost)
_CIDFILES = Flag("cidfile", "podman's: the container named in this file (as run --cidfile wrote it); repeatable",
                 kind=list, default=())
_IGNORE = Flag("ignore", "podman's: a container (or --cidfile) that is not there is no error", kind=bool, short="i",
               default=False)
# docker's `prune -f` (fastparse.prune_flags reads a prune's -f as --force: -f is --format elsewhere)
_PRUNE_FORCE = Flag("force", "prune: accepted (docker asks first; mrun does not)", kind=bool, default=False)


def _accepted(strings: tuple[str, ...] = (), switches: tuple[str, ...] = (),
              lists: tuple[str, ...] = ()) -> tuple[Flag, ...]:
    """runc flags taken only so that a verb mrun refuses is refused in one line, not a usage error."""
    return (*(Flag(name, "", default="", hidden=True) for name in strings),
            *(Flag(name, "", kind=bool, default=False, hidden=True) for name in switches),
            *(Flag(name, "", kind=list, default=(), hidden=True) for name in lists))


# runc's flags both CRIU verbs take (containerd's runc shim and podman pass them)
_CRIU_FLAGS = _accepted(("image-path", "work-path", "manage-cgroups-mode"),
                        ("tcp-established", "ext-unix-sk", "shell-job", "file-locks", "auto-dedup", "lazy-pages"),
                        ("empty-ns",))

# docker's run flags, which its create takes too (an image's container made, not started)
DOCKER_RUN_FLAGS = (
    Flag("name", "the container's name (default: a random id)", default=""),
    Flag("rm", "remove the container when it exits", kind=bool, default=False),
    Flag(
        "env", "set an environment variable (KEY=VALUE, or KEY to pass ours)", kind=list, short="e", default=()
    ),
    Flag("env-file", "read KEY=VALUE lines from a file", kind=list, default=()),
    Flag("mount", "docker's long form: type=bind|volume|tmpfs,source=...,target=...[,readonly]...",
         kind=list, default=()),
    Flag("volumes-from", "CONTAINER[:ro|rw]: its volumes and bind mounts, at the same places (docker's)",
         kind=list, default=()),
    Flag(
        "volume",
        "bind mount /host:/dest[:ro] or named volume name:/dest[:ro]",
        kind=list,
        short="v",
        default=(),
    ),
    Flag("workdir", "working directory in the container", short="w", default=""),
    Flag("user", "user[:group] (names from the image's /etc/passwd and /etc/group)", short="u", default=""),
    Flag("entrypoint", "replace the image's entrypoint", default=None),
    Flag("memory", "memory limit (bytes, or with k/m/g)", short="m", default=""),
    Flag("cpus", "number of CPUs (CFS quota)", default=""),
    Flag("pids-limit", "maximum number of processes", kind=int, default=None),
    Flag("memory-swap", "memory plus swap (default: twice --memory; -1: unlimited swap)", default=""),
    Flag("memory-reservation", "a soft memory limit, below --memory", default=""),
    Flag("memory-swappiness", "0 to 100 (cgroup v1)", kind=int, default=None),
    Flag("oom-kill-disable", "no OOM killer for the container (cgroup v1)", kind=bool, default=False),
    Flag("kernel-memory", "ignored, with a warning (the kernel deprecated it)", default=""),
    Flag("cpu-shares", "a relative CPU weight (1024 is the default's)", kind=int, short="c", default=None),
    Flag("cpu-period", "the CFS period in microseconds", kind=int, default=None),
    Flag("cpu-quota", "the CFS quota in microseconds per period", kind=int, default=None),
    Flag("cpu-rt-period", "the real-time period in microseconds (cgroup v1)", kind=int, default=None),
    Flag("cpu-rt-runtime", "the real-time runtime in microseconds per period (cgroup v1; out of the cgroup "
         "parent's)", kind=int, default=None),
    Flag("disable-content-trust", "docker's: skip image verification (the default; mrun verifies no signatures, "
         "so =false is refused)", kind=bool, default=True),
    Flag("isolation", "docker's: default, the one technology on Linux", default=""),
    Flag("volume-driver", "docker's: local, the one volume driver", default=""),
    Flag("cpuset-cpus", "the CPUs it may run on (0-3, 0,1)", default=""),
    Flag("cpuset-mems", "the memory nodes it may use (0-3, 0,1)", default=""),
    Flag("blkio-weight", "block I/O weight, 10 to 1000", kind=int, default=None),
    Flag("blkio-weight-device", "a device's block I/O weight: DEVICE:WEIGHT (10 to 1000)", kind=list, default=()),
    Flag("device-read-bps", "a device's read limit: DEVICE:RATE in bytes per second (kb, mb, gb)", kind=list,
         default=()),
    Flag("device-write-bps", "a device's write limit: DEVICE:RATE in bytes per second (kb, mb, gb)", kind=list,
         default=()),
    Flag("device-read-iops", "a device's read limit: DEVICE:RATE in operations per second", kind=list, default=()),
    Flag("device-write-iops", "a device's write limit: DEVICE:RATE in operations per second", kind=list,
         default=()),
    Flag("read-only", "mount the rootfs read-only", kind=bool, default=False),
    Flag("read-only-tmpfs", "podman's, with --read-only: a writable tmpfs on /run, /tmp and /var/tmp (where no "
         "mount is)", kind=bool, default=False),
    Flag("env-host", "podman's: the caller's environment in the container (over the image's, under -e)", kind=bool,
         default=False),
    Flag("unsetenv", "podman's: leave this default variable out (the image's, --env-host's, HOSTNAME, HOME...)",
         kind=list, default=()),
    Flag("unsetenv-all", "podman's: leave every default variable out (-e and --env-file ones stay)", kind=bool,
         default=False),
    Flag("umask", "podman's: the container process's umask (octal; default 0022)", default=""),
    Flag("tz", "podman's: the container's time zone (/etc/localtime): Area/City, UTC, Etc/GMT+3 (the host's "
         "/usr/share/zoneinfo), or local (the host's own)", default=""),
    Flag("hostname", "the container's hostname (docker's -h: help is --help here)", short="h", default=""),
    Flag("domainname", "the container's NIS domain name", default=""),
    Flag("cgroup-parent", "cgroup the container's cgroup is made under", default="/mrun"),
    Flag("network", "bridge (default), none, host, container:ID, or a network's name (several networks: eth0 on "
         "the first, eth1... on the others); docker's long form name=NET,alias=A,ip=IP,mac-address=MAC,"
         "gw-priority=N (the highest priority's network is eth0)", kind=list, default=(), also=("net",)),
    Flag("ip", "docker's --ip: this IPv4 address on a network of `mrun network create` (free, in its "
         "subnet)", default=""),
    Flag("mac-address", "eth0's MAC address on a bridge network (02:42:ac:11:00:02)", default=""),
    Flag("network-alias", "another name the containers on its network know it by (a network of `mrun network "
         "create`; its own name they know already)", kind=list, default=(), also=("net-alias",)),
    Flag("link", "NAME[:ALIAS]: that running container's address under those names in its /etc/hosts (docker's "
         "legacy links; both on one network of `mrun network create`)", kind=list, default=()),
    Flag("publish", "publish a port: [host_ip:][host_port:]container_port[/udp] (no host port: a free one; "
         "see mrun port); ranges as docker's: 8000-8002:80-82, 80-82, 8000-8010:80 (a free one of those)",
         kind=list, short="p", default=()),
    Flag("log-driver", "json-file (the default; local, k8s-file: the same) keeps the log of -d, none does "
         "not", default="json-file"),
    Flag("log-opt", "max-size=SIZE (rotate the log there), max-file=N (keep N files)", kind=list,
         default=()),
    Flag("health-cmd", "a shell command whose exit 0 says the container is healthy (run with -d)",
         default=""),
    Flag("health-interval", "time between checks (default 30s)", default=""),
    Flag("health-timeout", "a check running longer fails (default 30s)", default=""),
    Flag("health-start-period", "failures this soon after the start do not count (default 0s)", default=""),
    Flag("health-start-interval", "time between checks in the start period, until the first pass (default 5s)",
         default=""),
    Flag("health-retries", "failures in a row that make it unhealthy (default 3)", kind=int, default=None),
    Flag("no-healthcheck", "no check, not even the image's", kind=bool, default=False),
    Flag("health-on-failure", "podman's: once the container turns unhealthy, none (default), kill, stop (as `mrun "
         "stop`; no restart follows) or restart (as `mrun restart`; not with --restart)", default=""),
    Flag("publish-all", "publish every port the image exposes, and --expose's, on free host ports", kind=bool,
         short="P", default=False),
    Flag("expose", "a port the container serves (PORT[/udp], PORT-PORT): -P publishes it", kind=list,
         default=()),
    Flag("secret", "podman's: a secret of `mrun secret create`, NAME[,type=mount|env][,target=PATH|VAR][,uid=N]"
         "[,gid=N][,mode=OCTAL]: a read-only copy at /run/secrets/NAME (or the target), or a variable", kind=list,
         default=()),
    Flag("pull", "pull the image: missing (default), always or never", default="missing"),
    Flag("platform", "os/arch to pull, when run pulls the image", default=""),
    Flag("quiet", "say nothing of the pull (docker's -q)", kind=bool, short="q", default=False),
    Flag("pid", "host, or container:ID to share its PID namespace (default: its own)", default=""),
    Flag("ipc", "host, none (no /dev/shm), private or shareable (default)", default=""),
    Flag("uts", "host: the host's hostname (default: its own)", default=""),
    Flag("userns", "host: docker's one mode without remapping (mrun remaps no users)", default=""),
    Flag("runtime", "an installed OCI runtime to run it under (runc, crun...: the oci backend; default mrun's own)",
         default=""),
    Flag("cgroupns", "host: the host's cgroup namespace (default: private)", default=""),
    Flag("add-host", "a line for /etc/hosts: NAME:IP (IP may be host-gateway)", kind=list, default=()),
    Flag("dns", "a resolver for /etc/resolv.conf (instead of the host's)", kind=list, default=()),
    Flag("dns-search", "a search domain for /etc/resolv.conf ('.' for none)", kind=list, default=()),
    Flag("dns-option", "an option for /etc/resolv.conf (ndots:2, ...)", kind=list, default=(), also=("dns-opt",)),
    Flag("annotation", "add an OCI annotation (KEY=VALUE)", kind=list, default=()),
    Flag("label", "a note on the container: KEY[=VALUE] (mrun ps --filter label=KEY)", kind=list, short="l",
         default=()),
    Flag("label-file", "read KEY[=VALUE] label lines from a file", kind=list, default=()),
    Flag(
        "security-opt",
        "seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges (default: mrun's seccomp profile)",
        kind=list,
        default=(),
    ),
    Flag("privileged", "every capability and host device, no seccomp, /proc and /sys unmasked and writable",
         kind=bool, default=False),
    Flag("cap-add", "add a capability (CHOWN or CAP_CHOWN; ALL)", kind=list, default=()),
    Flag("cap-drop", "drop a capability (ALL: all but those added)", kind=list, default=()),
    Flag("ulimit", "a resource limit: NAME=SOFT[:HARD] (nofile=1024:2048; -1: unlimited)", kind=list,
         default=()),
    Flag("tmpfs", "mount a tmpfs: /DEST[:OPTIONS] (size=64m,mode=1777...)", kind=list, default=()),
    Flag("device", "add a host device: /HOST[:/CONTAINER][:rwm]", kind=list, default=()),
    Flag("device-cgroup-rule", "allow devices in the device cgroup: TYPE MAJOR:MINOR ACCESS (c 1:3 rwm; * for "
         "any number)", kind=list, default=()),
    Flag("sysctl", "set a namespaced sysctl: KEY=VALUE", kind=list, default=()),
    Flag("group-add", "an additional group (a gid, or a name in the image's /etc/group)", kind=list,
         default=()),
    Flag("oom-score-adj", "the process's OOM score adjustment (-1000 to 1000)", kind=int, default=None),
    Flag("stop-signal", "the signal `mrun stop` sends (default: the image's, else SIGTERM)", default=""),
    Flag("stop-timeout", "seconds `mrun stop` waits before SIGKILL (default 10; -1: for ever)", kind=int,
         default=None),
    Flag("cidfile", "write the container's id to this file (which must not exist; removed with the container, "
         "as podman's)", default=""),
    Flag("replace", "podman's, with --name: a container of that name (made by `mrun run` or `create`) is stopped "
         "and removed first", kind=bool, default=False),
    Flag("cgroups", "podman's: enabled (default), no-conmon (a -d container's supervisor stays in our cgroup: a "
         "systemd unit's) or split (the container's cgroup and its supervisor under ours)", default=""),
    Flag("init", "run the command under an init that passes signals and reaps orphans (mrun-init)",
         kind=bool, default=False),
    Flag("restart", "with -d: no (default), always, unless-stopped or on-failure[:MAX-RETRIES]", default=""),
    Flag("shm-size", "the size of /dev/shm (64m, 1g...)", default=""),
    Flag(
        "wasm-preopens",
        "what a wasm module sees: rootfs (default), mounts, none, or /dir[:ro],...",
        default="",
    ),
    Flag("tty", "allocate a pseudo-terminal", kind=bool, short="t", default=False),
    Flag(
        "interactive", "give the container our stdin (without it, as docker: /dev/null)", kind=bool, short="i",
        default=False,
    ),
    Flag("attach", "docker's: the streams shown here, STDIN, STDOUT or STDERR (default: stdout and stderr, "
         "stdin with -i); the others are logged only", kind=list, short="a", default=()),
)

_CONMON_PIDFILE = Flag("conmon-pidfile", "podman's: write the pid of its supervisor (conmon's part) to this file "
                       "at each start (a Type=forking unit's PIDFile)", default="")
_SDNOTIFY = Flag("sdnotify", "podman's, under systemd's NOTIFY_SOCKET: conmon (default: READY=1 once it runs), "
                 "container (its own READY= passed on; with -d the run returns then), healthy (with -d: once its "
                 "health check passed) or ignore; create's is its start's", default="")

COMMANDS = (
    Command(
        "create",
        "create a container: from a bundle (runc's: it waits for `start`), or from an image (docker's create "
        "IMAGE [COMMAND...]: made, not started; `mrun start` runs it detached)",
        "create",
        (
            Arg("container-id", "with a bundle, the container's name (runc's); else the IMAGE"),
            Arg("command", "command and arguments (images only; default: the image's)", required=False, variadic=True,
                rest=True),
        ),
        (
            Flag("bundle", "path to the OCI bundle (default: the working directory, when it holds config.json)",
                 short="b", default=""),
            *DOCKER_RUN_FLAGS,
            _PID_FILE,
            _CONSOLE,
            _PRESERVE,
            _NO_PIVOT,
            _NO_KEYRING,
            _SDNOTIFY,
            _CONMON_PIDFILE,
        ),
    ),
    Command("start", "run the user process of a created container (or start exited `mrun run -d` ones again)",
            "start", (Arg("container-ids", "the containers (runc's verb: one)", variadic=True),),
            (Flag("attach", "docker's: follow its output from its start and exit with its code (one container)",
                  short="a", kind=bool, default=False),
             Flag("interactive", "docker's: as -a, and our stdin its (one made with -i)", short="i", kind=bool,
                  default=False),
             _DETACH_KEYS)),
    Command("state", "print a container's state as JSON", "state", (_ID,)),
    Command(
        "kill",
        "send a signal to the container's init (or all its processes)",
        "kill",
        (_ID, Arg("signal-or-containers", "runc's form: the SIGNAL (name or number, default SIGTERM); docker's: more "
                          "containers", required=False, variadic=True)),
        (
            Flag("all", "signal every process in the container", kind=bool, short="a", default=False),
            Flag("signal", "docker's spelling of the signal argument", short="s", default="", dest="signal_flag"),
        ),
    ),
    Command(
        "delete",
        "remove a stopped container and everything it held",
        "delete",
        (_ID,),
        (Flag("force", "kill it first if it is still running", kind=bool, short="f", default=False),),
    ),
    Command(
        "rm",
        "docker's rm: remove containers, printing each one removed",
        "container_verbs.rm",
        (Arg("container-ids", "the containers", required=False, variadic=True),),
        (
            Flag("force", "kill each first if it is still running", kind=bool, short="f", default=False),
            Flag("volumes", "remove its anonymous volumes too", kind=bool, short="v", default=False),
            Flag("time", "podman's, with -f: stop each first as `mrun stop -t` does, then remove it", kind=int,
                 short="t", default=None),
            _CIDFILES,
            _IGNORE,
        ),
    ),
    Command(
        "volume",
        "volume create [NAME] | ls | inspect NAME... | rm NAME... | prune [-a]",
        "volume_verbs.volume",
        (Arg("action", "create, ls, inspect, rm or prune"), Arg("names", "volumes", required=False, variadic=True)),
        (
            Flag("quiet", "ls: only the names", kind=bool, short="q", default=False),
            Flag("all", "prune: named volumes too, not only anonymous ones", kind=bool, short="a", default=False),
            _LIST_FORMAT,
            _PRUNE_FORCE,
            Flag("name", "create: the name, as docker's older `volume create --name NAME`", default=""),
            Flag("label", "create: a label KEY[=VALUE] on the volume (ls --filter label=KEY)", kind=list, default=()),
            Flag("driver", "create: docker's -d; local, the one driver", short="d", default="local"),
            Flag("opt", "create: the local driver's KEY=VALUE: type=none, o=bind, device=/PATH (a named bind of "
                 "a host directory)", short="o", kind=list, default=()),
            Flag("ignore", "create: podman's: a volume of that name is left as it is, whatever its options (a "
                 "Quadlet .volume unit's)", kind=bool, default=False),
            Flag("filter", "ls: only volumes matching KEY=VALUE (dangling=true|false, name=TEXT, driver=local, "
                 "label=KEY[=VALUE]); prune: label=, label!=, all=true|false", short="f", kind=list, default=()),
        ),
    ),
    Command(
        "secret",
        "podman's secret create NAME FILE|- | ls | inspect NAME... | rm NAME... | exists NAME",
        "secret_verbs.secret",
        (Arg("action", "create, ls, inspect, rm or exists"),
         Arg("names", "secrets (create: NAME and FILE, or - for stdin)", required=False, variadic=True)),
        (
            Flag("quiet", "ls: only the ids", kind=bool, short="q", default=False),
            Flag("all", "rm: every secret", kind=bool, short="a", default=False),
            Flag("ignore", "rm: a secret that is not there is no error; create: one of that name is (its id is "
                 "printed)", kind=bool, short="i", default=False),
            Flag("format", "ls, inspect: table, json, or a Go template ({{.ID}})", default=""),
            Flag("label", "create: a label KEY[=VALUE]", short="l", kind=list, default=()),
            Flag("driver", "create: file, the one driver", short="d", default="file"),
            Flag("env", "create: FILE names an environment variable that holds the data", kind=bool, default=False),
            Flag("replace", "create: one of that name is replaced (its containers keep their copies)", kind=bool,
                 default=False),
            Flag("showsecret", "inspect: the data too", kind=bool, default=False),
            Flag("filter", "ls: name=TEXT, id=TEXT or label=KEY[=VALUE]", short="f", kind=list, default=()),
        ),
    ),
    Command(
        "run",
        "run a container: from an image (mrun run IMAGE [COMMAND...]) or from a bundle (mrun run -b BUNDLE ID)",
        "run",
        (
            Arg("container-id", "the IMAGE to run, or with --bundle the container's name"),
            Arg("command", "command and arguments (images only; default: the image's)", required=False, variadic=True,
                rest=True),
        ),
        (
            Flag("bundle", "path to the OCI bundle (holds config.json): runc's run", short="b", default=""),
            *DOCKER_RUN_FLAGS,
            _PID_FILE,
            _CONSOLE,
            _PRESERVE,
            _NO_PIVOT,
            _NO_KEYRING,
            _DETACH,
            _DETACH_KEYS,
            Flag("sig-proxy", "docker's: pass the signals we get on to the container (--sig-proxy=false: "
                 "a signal ends us alone, the container runs on; with -t, our terminal given back)",
                 kind=bool, default=True),
            Flag("keep", "keep the container's state after it exits", kind=bool, default=False),
            Flag("no-subreaper", "accepted for runc compatibility", kind=bool, default=False, hidden=True),
            _SDNOTIFY,
            _CONMON_PIDFILE,
        ),
    ),
    Command(
        "list",
        "list containers",
        "list_",
        (),
        (_FORMAT, Flag("quiet", "print only ids", kind=bool, short="q", default=False)),
        aliases=("ls",),
    ),
    Command(
        "ps",
        "without an id: list containers (like docker ps; -a: stopped ones too); with one: that container's processes "
        "(like runc)",
        "ps",
        (
            Arg("container-id", "the container", required=False),
            Arg("ps-args", "arguments for ps(1) in table mode (default -ef)", required=False, variadic=True, rest=True),
        ),
        (
            _LIST_FORMAT,
            Flag("all", "without an id: every container, not only those running (docker's -a)", kind=bool, short="a",
                 default=False),
            Flag("filter", "without an id: only containers matching KEY=VALUE (label=KEY[=VALUE], name=, id=, "
                 "status=, ancestor=, health=); -f json or -f table is runc's --format", kind=list, short="f",
                 default=()),
            Flag("quiet", "without an id: print only the containers' ids (docker's -q)", kind=bool, short="q",
                 default=False),
            *_LISTING,
        ),
        aliases=("top",),  # docker's top ID [ps options]: this verb with an id
    ),
    Command(
        "load",
        "import an image from an oci-archive, a docker-archive or an OCI layout directory (docker's load: -i "
        "FILE, or a tarball on stdin)",
        "image_store_verbs.load",
        (Arg("archive", "the tarball or directory (else -i, else stdin)", False),
         Arg("name", "name the image (else: the archive's name)", False)),
        (
            Flag("platform", "os/arch to pick from a multi-platform index", default=""),
            Flag("input", "docker's -i: read the tarball from this file, not stdin", short="i", default=""),
            Flag("quiet", "docker's -q: no progress (load shows none); what it loaded is still said",
                 kind=bool, short="q", default=False),
        ),
    ),
    Command(
        "pull",
        "pull an image from a registry (OCI distribution: token and basic auth, resumable)",
        "image_store_verbs.pull",
        (Arg("image", "[host[:port]/]name[:tag|@digest] (with -a: [host[:port]/]name)"),),
        (
            Flag("platform", "os/arch to pick from a multi-platform index", default=""),
            _INSECURE,
            _CREDS,
            Flag("quiet", "print the image's name alone, no progress (docker's -q)", kind=bool, short="q",
                 default=False),
            Flag("all-tags", "docker's -a: every tag of the repository", kind=bool, short="a", default=False),
        ),
    ),
    Command(
        "import",
        "an image of one layer from a filesystem tarball (docker's import: `mrun export C | mrun import - NAME`)",
        "image_store_verbs.import_image",
        (Arg("source", "a tarball (plain, gzip, bzip2, xz or zstd): a file, - for stdin, or an http(s) URL"),
         Arg("repository", "NAME[:TAG] of the new image", False)),
        (
            _CHANGE,
            Flag("message", "a comment in the image's history", short="m", default=""),
            Flag("platform", "os/arch of the image (default: the host's)", default=""),
        ),
    ),
    Command(
        "login",
        "log in to a registry (docker's): the credentials are checked, then kept where pull and push read them",
        "login_verbs.login",
        (Arg("server", "host[:port] (default: Docker Hub)", False),),
        (
            Flag("username", "the user", short="u", default=""),
            Flag("password", "the password (insecure: on the command line; see --password-stdin)", short="p",
                 default=""),
            Flag("password-stdin", "read the password from stdin", kind=bool, default=False),
            _INSECURE,
        ),
    ),
    Command(
        "logout",
        "log out of a registry (docker's): its credentials removed from every auth file mrun reads",
        "login_verbs.logout",
        (Arg("server", "host[:port] (default: Docker Hub)", False),),
    ),
    Command(
        "push",
        "push an image to a registry (docker's push: the blobs it lacks, then the manifest under the tag)",
        "image_store_verbs.push",
        (Arg("image", "name or id"),
         Arg("destination", "[host[:port]/]name[:tag] (else: the image's own name)", False)),
        (
            _INSECURE,
            _CREDS,
            Flag("all-tags", "docker's: push every tag of the repository IMAGE names", kind=bool, short="a",
                 default=False),
            Flag("quiet", "docker's: no progress; print the name pushed", kind=bool, short="q", default=False),
        ),
    ),
    Command(
        "save",
        "write an image to an oci-archive, an OCI layout directory or a docker-archive (docker's save: -o "
        "FILE, or the tarball on stdout)",
        "image_store_verbs.save",
        (Arg("image", "name or id"),
         Arg("more", "more images, all in one archive (docker's save IMAGE...); or, one that names no image, "
             "the tarball (or directory) to write (else -o, else stdout)", False, variadic=True)),
        (
            Flag("format", "oci-archive, oci-dir or docker-archive", short="f", default="oci-archive"),
            Flag("output", "docker's -o: write to this file, not stdout", short="o", default=""),
            Flag("platform", "docker's: os/arch each image must be (an image here has one platform)", default=""),
        ),
    ),
    Command(
        "images",
        "list images: every one, or a repository's ([REPOSITORY[:TAG]]), as docker's",
        "image_store_verbs.images",
        (Arg("repository", "only this repository's images (and tag's)", required=False),),
        (_LIST_FORMAT, _IMAGE_FILTER, Flag("quiet", "print only ids", kind=bool, short="q", default=False),
         Flag("all", "docker's -a: the same list (mrun keeps no intermediate images)", kind=bool, short="a",
              default=False), *_IMAGE_COLUMNS),
    ),
    Command(
        "rmi", "remove images (refused while a container uses one; -f: untag it, its data kept for the container)",
        "image_store_verbs.rmi", (Arg("images", "names or ids", variadic=True),),
        (Flag("force", "docker's -f: untag an image containers use (its data stays while they do)", kind=bool,
              short="f", default=False),
         Flag("no-prune", "docker's: keep untagged parents (mrun's images have none: one rmi removes one image)",
              kind=bool, default=False)),
    ),
    Command(
        "image",
        "image inspect NAME | image prune (remove what nothing uses) | image wasm FILE.wasm NAME (make a wasm image)"
        " | image ls | image rm NAME | image tag NAME NEW | image history NAME",
        "image_store_verbs.image",
        (
            Arg("action", "ls, rm, tag, inspect, history, prune or wasm"),
            Arg("image", "the image (inspect, rm, tag, history), or the .wasm file (wasm)", required=False),
            Arg("name", "the new image's name (wasm, tag)", required=False),
        ),
        (_LIST_FORMAT, _IMAGE_FILTER, Flag("quiet", "ls: print only ids", kind=bool, short="q", default=False),
         _PRUNE_FORCE,
         Flag("all", "prune: every image no container was made from too (docker's -a); ls: the same list",
              kind=bool, short="a", default=False), *_IMAGE_COLUMNS),
    ),
    Command(
        "tag",
        "give an image another name (docker's tag)",
        "image_store_verbs.tag",
        (Arg("source", "the image: name or id"), Arg("target", "its new name: [host/]name[:tag]")),
    ),
    Command(
        "inspect",
        "a container's state, image and config as JSON (or an image's, where no container has the name; "
        "several: an array)",
        "inspect_verbs.inspect",
        (Arg("names", "containers or images", variadic=True),),
        (Flag("format", "docker's Go template: {{.State.Pid}}, {{json .Config.Labels}}, ... (docker's fields and "
              "mrun's own), a line per name", short="f", default=""),
         Flag("type", "container or image: look only for that kind", default=""),
         Flag("size", "docker's -s: a container's sizes too (SizeRw: its writable layer; SizeRootFs: with its "
              "image's)", kind=bool, short="s", default=False)),
    ),
    Command(
        "container",
        "container ls (docker's; as ps) | container prune: remove every stopped container (their volumes stay) | "
        "container rm|stop|logs|exec|inspect|...: those verbs (docker's management commands)",
        "container_verbs.container",
        (Arg("action", "ls or prune"),),
        (
            Flag("force", "prune: accepted (docker asks first; mrun does not)", kind=bool, short="f", default=False),
            _LIST_FORMAT,
            Flag("quiet", "ls: print only the containers' ids", kind=bool, short="q", default=False),
            Flag("all", "ls: every container, not only those running (docker's -a)", kind=bool, short="a",
                 default=False),
            Flag("filter", "ls: only containers matching KEY=VALUE (as ps --filter)", kind=list, default=()),
            *_LISTING,
        ),
    ),
    Command(
        "system",
        "system prune: remove what killed or crashed commands left (half-created containers, orphaned "
        "snapshots, partial downloads, stale leases, empty cgroup parents), never a container; -a: the images no "
        "container was made from too, --volumes: the unused anonymous volumes too | system df: the disk images, "
        "containers and volumes take, and what a prune gives back (docker's)",
        "system_verbs.system",
        (Arg("action", "prune, df, or info (as `mrun info`)"),),
        (Flag("format", "info, df: docker's Go template ({{.CgroupVersion}}, {{.Type}}\t{{.Size}}, {{json .}}); "
              "df: json too", short="f", default=""),
         _PRUNE_FORCE,
         Flag("all", "prune: every image no container was made from too (docker's -a)", kind=bool, short="a",
              default=False),
         Flag("volumes", "prune: the anonymous volumes no container uses too", kind=bool, default=False),
         Flag("verbose", "df: each image, container and volume (docker's -v)", kind=bool, short="v",
              default=False)),
    ),
    Command(
        "info",
        "docker's info: containers (running, paused, stopped), images, drivers, cgroup version, backends, host",
        "info.info",
        (),
        (Flag("format", "docker's Go template over its fields ({{.CgroupVersion}}, {{.ContainersRunning}}, "
              "{{json .}})", short="f", default=""),),
    ),
    Command(
        "history",
        "docker's history: an image's build steps, newest first, with their layers' sizes",
        "history.history",
        (Arg("image", "name or id"),),
        (
            Flag("format", "docker's Go template ({{.ID}}, {{.CreatedSince}}, {{.CreatedAt}}, {{.CreatedBy}}, "
                 "{{.Size}}, {{.Comment}}; table ... adds a header)", default=""),
            Flag("quiet", "only the image id (and <missing> for the steps before it)", kind=bool, short="q",
                 default=False),
            Flag("no-trunc", "the whole command of each step and the whole id", kind=bool, default=False),
            Flag("human", "sizes and times for people (-H=false: bytes and RFC 3339)", kind=bool, short="H",
                 default=True),
        ),
    ),
    Command(
        "network",
        "network create NAME [--subnet CIDR] [--gateway IP] [--ip-range CIDR] [--internal] | ls | inspect NAME "
        "| rm NAME... | prune | connect [--ip IP] [--alias NAME] NAME CONTAINER | disconnect NAME CONTAINER",
        "network_verbs.network",
        (Arg("action", "create, ls, inspect, rm, prune, connect or disconnect"),
         Arg("names", "the network (rm: one or more; connect, disconnect: the network and the container)",
             required=False, variadic=True)),
        (
            Flag("subnet", "create: the network's IPv4 subnet (default: a free /24 of 10.89.0.0/16)", default=""),
            Flag("gateway", "create: the bridge's address in --subnet (default: its first host)", default=""),
            Flag("ip-range", "create: docker's: the part of --subnet containers' addresses are given from (an --ip "
                 "may be anywhere in the subnet)", default=""),
            Flag("aux-address", "create: docker's NAME=IP: an address of --subnet given to no container", kind=list,
                 default=()),
            Flag("internal", "create: docker's: its containers reach each other and the host, nothing beyond, "
                 "and publish no port", kind=bool, default=False),
            Flag("driver", "create: docker's -d; bridge, the one driver here", short="d", default="bridge"),
            Flag("label", "create: a label KEY[=VALUE] on the network (ls --filter label=KEY)", kind=list, default=()),
            Flag("opt", "create: docker's driver option KEY=VALUE: com.docker.network.driver.mtu=N (the bridge's and "
                 "its containers' MTU), com.docker.network.bridge.enable_ip_masquerade=false (no way out through "
                 "the host's addresses)", short="o", kind=list, default=()),
            Flag("quiet", "ls: only the names", kind=bool, short="q", default=False),
            _LIST_FORMAT,
            _PRUNE_FORCE,
            Flag("filter", "ls: only networks matching KEY=VALUE (name=TEXT, driver=bridge, type=custom|builtin, "
                 "dangling=true|false, label=KEY[=VALUE]); prune: until=TIME, label=, label!=", short="f",
                 kind=list, default=()),
            Flag("ip", "connect: docker's: this IPv4 address on the network (free, in its subnet)", default=""),
            Flag("alias", "connect: another name the containers on the network know it by", kind=list, default=()),
            Flag("ignore", "create: podman's: a network of that name is no error (a Quadlet .network unit's)",
                 kind=bool, default=False),
        ),
    ),
    Command(
        "stats",
        "docker's stats: CPU, memory, network and block I/O of running containers (every second; --no-stream: once)",
        "stats.stats",
        (Arg("containers", "only these (default: every running one)", required=False, variadic=True),),
        (
            Flag("no-stream", "print the figures once, then exit", kind=bool, default=False),
            Flag("all", "stopped containers too (docker's -a)", kind=bool, short="a", default=False),
            Flag("no-trunc", "docker's: ids whole (mrun's ids are its names, never cut)", kind=bool, default=False),
            Flag("format", "docker's Go template over CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs, Name, ID "
                 "('table ...' adds a header)", default=""),
        ),
    ),
    Command(
        "export",
        "write a container's files as a tar archive (docker's export; volumes are left out, as docker's)",
        "container_files.export",
        (_ID,),
        (Flag("output", "write to this file, not to standard output", short="o", default=""),),
    ),
    Command(
        "diff",
        "what a container changed over its image: A added, C changed, D deleted (docker's diff)",
        "container_files.diff",
        (_ID,),
    ),
    Command(
        "commit",
        "a new image from a container's changes over its image (docker's commit)",
        "container_files.commit",
        (_ID, Arg("name", "the new image: [host/]name[:tag]", required=False)),
        (
            Flag("message", "a comment in the image's history", short="m", default=""),
            Flag("author", "the image's author", short="a", default=""),
            _CHANGE,
            Flag("pause", "pause a running container meanwhile (--pause=false: not)", kind=bool, short="p",
                 default=True),
        ),
    ),
    Command(
        "port",
        "the host ports a container's ports are published on (docker's port)",
        "inspect_verbs.port",
        (_ID, Arg("private-port", "only this one: PORT[/tcp|udp]", required=False)),
    ),
    Command(
        "logs",
        "print the output of a container started with mrun run IMAGE -d",
        "log_verbs.logs",
        (_ID,),
        (
            Flag("follow", "keep printing until the container stops", kind=bool, short="f", default=False),
            Flag("tail", "only the last N lines (default: all)", short="n", default="all"),
            Flag("timestamps", "each line's time (when it was written)", kind=bool, short="t", default=False),
            Flag("since", "only lines since: 2026-01-02T15:04:05Z, a Unix time, or a duration ago (10m)",
                 default=""),
            Flag("until", "only lines before: as --since", default=""),
            Flag("details", "docker's: the attributes --log-opt labels=/env= add (mrun's logs carry none)",
                 kind=bool, default=False),
        ),
    ),
    Command(
        "stop",
        "stop containers: each one's stop signal, then SIGKILL after the timeout",
        "container_verbs.stop",
        (Arg("container-ids", "the containers", required=False, variadic=True),),
        (Flag("time", "seconds to wait before SIGKILL (default: its --stop-timeout, else 10; -1: for ever)",
              kind=int, short="t", default=None), _STOP_WITH, _CIDFILES, _IGNORE),
    ),
    Command(
        "restart",
        "restart containers of `mrun run -d`: each stopped as by `mrun stop`, then started again",
        "container_verbs.restart",
        (Arg("container-ids", "the containers", variadic=True),),
        (Flag("time", "seconds to wait before SIGKILL (default: its --stop-timeout, else 10)", kind=int, short="t",
              default=None), _STOP_WITH),
    ),
    Command(
        "cp",
        "copy files between a container and here: cp CONTAINER:PATH DEST, or cp SRC CONTAINER:PATH",
        "copying.cp",
        (Arg("source", "CONTAINER:PATH or a path here"), Arg("destination", "a path here or CONTAINER:PATH")),
        (Flag("archive", "keep the files' uids and gids (else they are the caller's)", kind=bool, short="a",
              default=False),
         Flag("quiet", "docker's: no progress (mrun's cp prints none)", kind=bool, short="q", default=False),
         Flag("follow-link", "docker's -L: a SRC that is a link is copied as what it leads to (a container's: "
              "inside its root)", kind=bool, short="L", default=False)),
    ),
    Command(
        "attach",
        "docker's attach: a running `mrun run -d` container's output from now on, signals passed on, our stdin its "
        "(one made with -i), its exit code",
        "attach.attach",
        (Arg("container-id", "the container"),),
        (
            Flag("sig-proxy", "pass the signals we get on to the container (--sig-proxy=false: ^C detaches)",
                 kind=bool, default=True),
            Flag("no-stdin", "docker's: our stdin is not its (by default it is, for one made with -i)",
                 kind=bool, default=False),
            _DETACH_KEYS,
        ),
    ),
    Command(
        "wait",
        "wait until containers of `mrun run -d` stop, and print each one's exit code",
        "container_verbs.wait",
        (Arg("container-ids", "the containers", variadic=True),),
    ),
    Command(
        "exec",
        "run another process in a running container",
        "exec_",
        (_ID, Arg("command", "command and arguments (unless --process)", required=False, variadic=True, rest=True)),
        (
            Flag("process", "path to a process.json (runtime-spec process object)", short="p", default=""),
            _DETACH,
            _DETACH_KEYS,
            _PID_FILE,
            _CONSOLE,
            _PRESERVE,
            Flag("env", "set an environment variable (KEY=VALUE)", kind=list, short="e", default=()),
            Flag("cwd", "working directory in the container", default=""),
            Flag("workdir", "docker's spelling of --cwd", short="w", default=""),
            Flag("tty", "allocate a pseudo-terminal", kind=bool, short="t", default=False),
            Flag("interactive", "docker's -i: our stdin to a container of `mrun run`/`create` (without it: "
                 "/dev/null, as docker); a bundle's container always gets it, as runc's", kind=bool, short="i",
                 default=False),
            Flag("user", "uid[:gid], or a name[:group] from the container's /etc/passwd and /etc/group",
                 short="u", default=""),
            Flag("additional-gids", "extra group id", kind=list, short="g", default=()),
            Flag("cap", "add a capability", kind=list, short="c", default=()),
            Flag("privileged", "docker's: every capability for the process", kind=bool, default=False),
            Flag("env-file", "docker's: read KEY=VALUE lines from a file", kind=list, default=()),
            Flag("no-new-privs", "set no_new_privileges", kind=bool, default=False),
            Flag("ignore-paused", "exec in a paused container too (the process runs once it is resumed)",
                 kind=bool, default=False),
            Flag("cgroup", "run the process in an existing sub-cgroup of the container's: [CONTROLLER:]PATH",
                 kind=list, default=()),
            Flag("apparmor", "an AppArmor profile: refused, mrun applies none", default="", hidden=True),
            Flag("process-label", "an SELinux label: refused, mrun applies none", default="", hidden=True),
        ),
    ),
    Command("pause", "freeze every process of a container (docker's: of several)", "pause",
            (Arg("container-ids", "the containers (runc's verb: one)", variadic=True),)),
    Command("resume", "thaw a paused container (docker's unpause: of several)", "resume",
            (Arg("container-ids", "the containers (runc's verb: one)", variadic=True),), aliases=("unpause",)),
    Command(
        "update",
        "change a running container's resource limits (docker's: of several, kept over their restarts)",
        "update",
        (Arg("container-ids", "the containers (runc's verb: one)", variadic=True),),
        (
            Flag("resources", "a linux.resources JSON file ('-' for stdin); the other flags are then ignored",
                 short="r", default=""),
            Flag("blkio-weight", "block I/O weight (10 to 1000; BFQ 1 to 1000)", kind=int, default=0),
            Flag("cpu-period", "CFS period in microseconds", default=""),
            Flag("cpu-quota", "CFS quota in microseconds per period", default=""),
            Flag("cpu-burst", "CFS burst in microseconds", default=""),
            Flag("cpu-share", "relative CPU weight (v1 shares)", default=""),
            Flag("cpu-shares", "the same as --cpu-share (docker's spelling)", short="c", default="", hidden=True),
            Flag("cpus", "docker's: number of CPUs (CFS quota over a 100 ms period; 0: no limit)", default=""),
            Flag("restart", "docker's: the restart policy of a container of `mrun run -d`/`create` (no, always, "
                 "unless-stopped, on-failure[:N]), from its next exit on", default=""),
            Flag("cpu-rt-period", "real-time period in microseconds", default=""),
            Flag("cpu-rt-runtime", "real-time runtime in microseconds per period", default=""),
            Flag("cpu-idle", "1: the cgroup's tasks run as SCHED_IDLE", default=""),
            Flag("cpuset-cpus", "CPUs to use (0-3,5)", default=""),
            Flag("cpuset-mems", "memory nodes to use", default=""),
            Flag("memory", "memory limit (bytes, or 64m, 1g...; -1: unlimited)", short="m", default=""),
            Flag("memory-reservation", "memory soft limit", default=""),
            Flag("memory-swap", "memory plus swap limit (-1: unlimited swap)", default=""),
            Flag("kernel-memory", "ignored, as by runc", default="", hidden=True),
            Flag("kernel-memory-tcp", "ignored, as by runc", default="", hidden=True),
            Flag("pids-limit", "maximum number of processes (0: unchanged)", kind=int, default=0),
            Flag("l3-cache-schema", "Intel RDT L3 cache schema (not supported)", default="", hidden=True),
            Flag("mem-bw-schema", "Intel RDT memory bandwidth schema (not supported)", default="", hidden=True),
        ),
    ),
    Command(
        "events",
        "print container statistics (cgroup figures, as runc lays them out) and OOM events",
        "events",
        (_ID,),
        (
            Flag("stats", "print the statistics once and exit", kind=bool, default=False),
            Flag("interval", "time between reports, a duration such as 5s or 500ms", default="5s"),
        ),
    ),
    Command(
        "spec",
        "write a default config.json into a bundle",
        "spec",
        (),
        (_BUNDLE, Flag("rootless", "make a spec for a rootless container", kind=bool, default=False)),
    ),
    Command("features", "print the runtime-spec features document (backends included)", "features"),
    Command("explain", "say which backend would run a bundle, and why", "explain", (), (_BUNDLE,)),
    Command("version", "print mrun's version (also --version)", "version", (),
            (Flag("format", "docker's Go template: {{.Client.Version}}, {{.Server.Version}}, {{json .}}", short="f",
                  default=""),)),
    # runc verbs mrun does not implement: accepted by the parser with runc's flags (containerd's runc
    # shim and podman pass them), refused in one line.
    Command("checkpoint", "not implemented in mrun (needs CRIU)", "unsupported", (_ID,), _CRIU_FLAGS + _accepted(
        ("parent-path", "page-server", "status-fd"),
        ("leave-running", "tcp-skip-in-flight", "link-remap", "pre-dump"))),
    Command("restore", "not implemented in mrun (needs CRIU)", "unsupported", (_ID,), (
        *_CRIU_FLAGS, _BUNDLE, _DETACH,
        *_accepted(("pid-file", "console-socket", "lsm-profile", "lsm-mount-context"), ("no-subreaper", "no-pivot")))),
)

BY_NAME = {alias: c for c in COMMANDS for alias in (c.name, *c.aliases)}
