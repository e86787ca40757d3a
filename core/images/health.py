"""docker's health checks for a detached container, run by its supervisor.

The check (``--health-cmd`` and friends, or the image's ``Healthcheck``; ``--no-healthcheck``
and the image's ``NONE`` turn it off) is noted in the ``org.mrun.health`` annotation. Every
interval the supervisor runs it inside the container, as `mrun exec` would, in a process of its
own: exit 0 is a pass, anything else (or running past the timeout, when the check is killed) a
failure. The status is docker's: ``starting`` until the first pass (failures during the start
period do not count), ``healthy`` after a pass, ``unhealthy`` after ``retries`` failures in a
row. It is written to ``health.json`` beside the container's log, with the last five results
(their output cut at 4 KiB, as docker's), for `mrun ps` ("Up 3 minutes (healthy)"),
`mrun inspect` (``State.Health``) and `ps --filter health=`."""

from __future__ import annotations

import os
import signal
import time

from mrun import jsonio
from mrun.errors import InvalidSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

HEALTH_FILE = "health.json"
OUTPUT_MAX = 4096  # docker's maxOutputLen
KEPT_RESULTS = 5  # docker's maxLogEntries
DEFAULTS = {"interval": 30.0, "timeout": 30.0, "start_period": 0.0, "start_interval": 5.0, "retries": 3}  # docker's
MAX_WAIT = 86400.0  # seconds the supervisor waits at most before it looks again
STATUSES = ("starting", "healthy", "unhealthy")
# podman's --health-on-failure: what the supervisor does once the container turns unhealthy
# (kill: SIGKILL; stop: as `mrun stop`, and no restart follows; restart: as `mrun restart`)
ON_FAILURE = ("none", "kill", "restart", "stop")


def check_from(flags: dict[str, Any], image: Any) -> dict[str, Any] | None:
    """The check a container gets: the image's ``Healthcheck``, each field the flags give over it.
    ``flags``: cmd (the shell command), interval, timeout, start_period, start_interval (Go
    durations), retries, none (--no-healthcheck), on_failure (--health-on-failure). -> None for
    no check."""
    from mrun.units import INT64_MAX, go_duration

    given = {k: v for k, v in flags.items() if v not in (None, "", False) and (k, v) != ("on_failure", "none")}
    if given.get("on_failure") not in (None, *ON_FAILURE):
        raise InvalidSpec(f"--health-on-failure {given['on_failure']!r}: none, kill, restart or stop")
    if flags.get("none"):
        if len(given) > 1:
            raise InvalidSpec("--no-healthcheck conflicts with the --health-* options")
        return None
    base: dict[str, Any] = {}
    if isinstance(image, dict):
        test = image.get("Test")
        if isinstance(test, list) and test and all(isinstance(t, str) for t in test) and test[0] != "NONE":
            base["test"] = _test(test, "the image's Healthcheck.Test")
        for field in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            value = image.get(field)
            if isinstance(value, int) and value > INT64_MAX:  # Go's time.Duration: docker cannot read it either
                raise InvalidSpec(f"the image's Healthcheck.{field} {value}: out of range (a 64-bit number)")
        for key, field in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                           ("start_interval", "StartInterval")):
            value = image.get(field)
            if isinstance(value, int) and value > 0:
                if value < 1_000_000 and key != "start_period" and not flags.get(key):  # docker refuses it too
                    raise InvalidSpec(f"the image's Healthcheck.{field} {value}: less than 1ms (--no-healthcheck, "
                                      f"or --health-{key} over it)")
                base[key] = value / 1e9  # nanoseconds there
        if isinstance(image.get("Retries"), int) and image["Retries"] > 0:
            base["retries"] = image["Retries"]
    if given.get("cmd"):
        base["test"] = ["/bin/sh", "-c", given["cmd"]]
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in given:
            seconds = go_duration(given[key])
            if seconds is None or seconds < 0.001 and not (key == "start_period" and seconds == 0):
                raise InvalidSpec(f"--health-{key.replace('_', '-')} {given[key]!r}: a duration of 1ms or more "
                                  "(30s, 1m30s, 500ms)")
            base[key] = seconds
    if "retries" in given:
        if not isinstance(given["retries"], int) or given["retries"] < 1:  # 0 is docker's "the default"
            raise InvalidSpec(f"--health-retries {given['retries']!r}: cannot be negative")
        base["retries"] = given["retries"]
    if given.get("on_failure"):
        base["on_failure"] = given["on_failure"]
    if "test" not in base:
        if len(given) > 0:
            raise InvalidSpec("--health-*: no check to run (--health-cmd, or an image with a Healthcheck)")
        return None
    return {**DEFAULTS, **base}


def docker_form(check: dict[str, Any]) -> dict[str, Any] | None:
    """docker's Config.Healthcheck of a check noted by ``check_from``: its Test in docker's form
    (a shell's command as ["CMD-SHELL", COMMAND]), the durations in nanoseconds. The defaults
    are shown as they apply (docker's shows 0 for them). None for a note that is no check (a
    bundle's own annotation, written by hand); a value there that is no duration shows as 0."""
    from mrun.units import INT64_MAX

    test = check.get("test")
    if not isinstance(test, list) or not test or not all(isinstance(t, str) for t in test):
        return None
    shaped = ["CMD-SHELL", test[2]] if len(test) == 3 and test[:2] == ["/bin/sh", "-c"] else ["CMD", *test]

    def nanoseconds(key: str) -> int:
        value = check.get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= INT64_MAX / 1e9
        return round(value * 1e9) if ok else 0

    retries = check.get("retries")
    return {"Test": shaped, "Interval": nanoseconds("interval"), "Timeout": nanoseconds("timeout"),
            "StartPeriod": nanoseconds("start_period"), "StartInterval": nanoseconds("start_interval"),
            "Retries": retries if isinstance(retries, int) and not isinstance(retries, bool) else 0}


def _test(test: list[str], field: str) -> list[str]:
    """docker's Test forms: ["CMD", args...], ["CMD-SHELL", command]."""
    if test[0] == "CMD" and len(test) > 1:
        return test[1:]
    if test[0] == "CMD-SHELL" and len(test) == 2:
        return ["/bin/sh", "-c", test[1]]
    raise InvalidSpec(f"{field} {test!r}: [\"CMD\", ARG...], [\"CMD-SHELL\", COMMAND] or [\"NONE\"]")


def read(bundle: str) -> dict[str, Any] | None:
    """The container's health as its supervisor last wrote it, or None (no check)."""
    doc = jsonio.load_object(os.path.join(bundle, HEALTH_FILE))
    return doc if doc is not None and doc.get("Status") in STATUSES else None


class Checker:
    """The supervisor's side: when the next check is due, the one running, what came of them."""

    kill_at = 0.0  # a stop or restart of --health-on-failure's under way: SIGKILL then
    restart_asked = False  # --health-on-failure restart's: the supervisor starts it again

    def __init__(self, runtime: Any, container_id: str, bundle: str, check: dict[str, Any],
                 stop_signal: int = signal.SIGTERM, stop_timeout: float = 10.0,
                 rest_policy: Callable[[], None] | None = None) -> None:
        self.runtime, self.id, self.bundle, self.check = runtime, container_id, bundle, check
        # --health-on-failure stop|restart's: as `mrun stop`; ``rest_policy`` marks the container
        # stopped by its user (supervisor.mark_stopped: its restart policy rests)
        self.stop_signal, self.stop_timeout, self.rest_policy = stop_signal, stop_timeout, rest_policy
        self.on_failure = check.get("on_failure") if check.get("on_failure") in ON_FAILURE else "none"
        self.pid = 0  # the check running, if any (our child)
        self.killed = 0  # a check killed for its timeout, not reaped yet
        self.orphan = 0  # that check's process in the container, to kill once it is our child
        self.output = -1  # the running check's output, its read end
        self.taken = b""
        self.began = 0.0
        self.reset()

    def reset(self) -> None:
        """The container (re)started: starting again, the first check one interval on."""
        self.started = time.monotonic()
        self.state = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self.kill_at, self.restart_asked = 0.0, False
        self.due = self.started + self._interval(self.started)
        self._save()

    def _interval(self, now: float) -> float:
        """docker's (25+): the start interval while in the start period and not yet passed once,
        else the interval. (A check noted by an older mrun has no start interval: docker's 5 s.)"""
        if now - self.started < self.check["start_period"] and self.state["Status"] == "starting":
            return self.check.get("start_interval") or DEFAULTS["start_interval"]
        return self.check["interval"]

    def wait_for(self) -> float:
        """Seconds until the supervisor must look again (a check due, or one to time out), at most
        a day: select() refuses a wait past ~292 years, and an interval that long (an image's
        Healthcheck, a bundle's annotation) made the supervisor die, its container's exit code
        lost. Looking again early is only a loop that finds nothing due."""
        now = time.monotonic()
        due = self.began + self.check["timeout"] if self.pid else self.due
        return min(MAX_WAIT, max(0.0, min(due, self.kill_at or due) - now))

    def fds(self) -> list[int]:
        return [self.output] if self.output >= 0 else []

    def tick(self, init_pid: int) -> None:
        """Start a check that is due; kill one past its timeout (a failure)."""
        now = time.monotonic()
        if self.kill_at and now >= self.kill_at:  # a stop or restart's grace is over
            self.kill_at = 0.0
            self._kill(signal.SIGKILL)
        if self.pid and now >= self.began + self.check["timeout"]:
            os.kill(self.pid, signal.SIGKILL)  # our child, not reaped yet: the pid is still its own
            self.killed, self.pid = self.pid, 0
            self.orphan = self._exec_pid(init_pid)
            self.pump()
            self._result(None, f"Health check exceeded timeout ({self.check['timeout']:g}s)")
        elif not self.pid and now >= self.due:
            self._start()

    def stop(self) -> None:
        """The container ended: a check still running is killed (reaped with the rest)."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            self.pid = 0
        self._close_output()

    def pump(self) -> None:
        """What the running check has written (the first OUTPUT_MAX bytes are kept)."""
        while self.output >= 0:
            try:
                data = os.read(self.output, 65536)
            except BlockingIOError:
                return
            if not data:
                self._close_output()
                return
            self.taken = (self.taken + data)[:OUTPUT_MAX]

    def reaped(self, pid: int, code: int | None) -> bool:
        """A child of the supervisor ended: was it the check's? Then its result counts."""
        if pid and pid == self.pid:
            self.pid = 0
            self.pump()
            self._result(code, "")
            return True
        if pid and pid == self.killed:  # its process in the container is our child now: it goes too
            self.killed = 0
            if self.orphan:
                _kill_if_child(self.orphan)
            return True
        if pid and pid == self.orphan:
            self.orphan = 0
            return True
        return False

    def _start(self) -> None:
        try:
            os.unlink(self._pid_file())  # what is there after the fork is this check's
        except FileNotFoundError:
            pass
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _run_check(self.runtime, self.id, self.check["test"], w, self._pid_file())
        os.close(w)
        os.set_blocking(r, False)
        self.pid, self.output, self.taken, self.began = pid, r, b"", time.monotonic()

    def _pid_file(self) -> str:
        return os.path.join(self.bundle, "health.pid")

    def _exec_pid(self, init_pid: int) -> int:
        try:
            with open(self._pid_file()) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0
        return pid if pid > 1 and pid != init_pid else 0

    def _close_output(self) -> None:
        if self.output >= 0:
            os.close(self.output)
            self.output = -1

    def _result(self, code: int | None, why: str) -> None:
        from mrun.state import now_rfc3339

        self._close_output()
        now = time.monotonic()
        passed = code == 0
        counts = now - self.started >= self.check["start_period"]  # failures in the start period do not
        streak = 0 if passed else self.state["FailingStreak"] + (1 if counts else 0)
        status = "healthy" if passed else "unhealthy" if streak >= self.check["retries"] else self.state["Status"]
        turned = status == "unhealthy" and self.state["Status"] != "unhealthy"
        result = {"End": now_rfc3339(), "ExitCode": -1 if code is None else code,
                  "Output": why or self.taken.decode(errors="replace")}
        self.state = {"Status": status, "FailingStreak": streak, "Log": [*self.state["Log"], result][-KEPT_RESULTS:]}
        self.due = now + self._interval(now)
        self._save()
        if turned:
            self._act()

    def _act(self) -> None:
        """--health-on-failure, once the container turned unhealthy: kill it; or stop it as
        `mrun stop` does (its stop signal, SIGKILL after its stop timeout), no restart to follow;
        or that, and the supervisor starts it again whatever its restart policy."""
        if self.on_failure == "none" or self.kill_at or self.restart_asked:
            return
        if self.on_failure == "kill":
            self._kill(signal.SIGKILL)
            return
        if self.on_failure == "stop":
            if self.rest_policy is not None:
                self.rest_policy()  # as `mrun stop` marks it
        else:
            self.restart_asked = True
        self._kill(self.stop_signal)
        self.kill_at = time.monotonic() + self.stop_timeout if self.stop_timeout >= 0 else 0.0

    def _kill(self, signum: int) -> None:
        from mrun.errors import MrunError

        try:
            self.runtime.kill(self.id, signum, all_processes=signum == signal.SIGKILL)
        except MrunError:
            pass  # ended meanwhile: its supervisor sees that next

    def _save(self) -> None:
        try:
            jsonio.replace_file(os.path.join(self.bundle, HEALTH_FILE), self.state)
        except OSError:
            pass  # removed with the container meanwhile


def _kill_if_child(pid: int) -> None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return
    if ppid == os.getpid():
        os.kill(pid, signal.SIGKILL)


def _run_check(runtime: Any, container_id: str, args: list[str], out: int, pid_file: str) -> None:
    """In the check's own process: the command inside the container, as `mrun exec` runs it."""
    code = 126
    try:
        signal.set_wakeup_fd(-1)  # the supervisor's, not this process's
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(out, 1)
        os.dup2(out, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        from mrun.runtime import CreateOptions

        record = runtime.store.load(container_id)
        process = {**(record.config.get("process") or {}), "args": args, "terminal": False}
        opts = CreateOptions()
        opts.pid_file = pid_file
        code = runtime.exec(container_id, process, opts, detach=False)
    except BaseException as e:  # noqa: BLE001 - its output is the check's result
        os.write(2, f"{e}\n".encode(errors="replace"))
    finally:
        os._exit(code)
