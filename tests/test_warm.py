"""The warm template (mrun.warm): a user cannot tell a command it served from a cold one, except
by the speed; it serves only root callers it could have been, never stale code, and nothing
depends on it staying alive. The `images` fixture runs each CLI test warm (checked) and cold."""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

import pytest
from conftest import (
    IMAGE,
    await_template,
    cgroup_dirs,
    img,
    img_ok,
    mrun_binary,
    process_report,
    require,
    run_args,
    running,
    stop_templates,
    template_path,
    warm_path,
    warm_served,
    warm_since,
    warm_templates,
)
from mrun.warm import client
from test_containerd import WASM_IMAGE, build_wasm_archive
from test_images import _with_memory_deny_write_execute

# The tests of what a user could tell apart run through both launchers, and cold.
LAUNCHERS = pytest.mark.parametrize("images", ["warm", "python", "cold"], indirect=True)


def cli(h, *args: str) -> list[str]:
    return [h.binary, "--root", h.root, "--image-root", h.image_root, *args]


def env_of(h, **extra: str) -> dict[str, str]:
    return {**os.environ, **h.base_env, **extra}


@LAUNCHERS
def test_exit_codes_stdin_eof_and_a_pipeline(images, busybox_archive, tmp_path):
    h = images
    img_ok(h, "load", busybox_archive)
    r = subprocess.run(cli(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 7")),
                       capture_output=True, text=True, timeout=30, env=env_of(h))
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    data = tmp_path / "in.txt"
    data.write_text("line one\nline two\n")
    with open(data) as stdin:  # cat ends at the end of its input
        r = subprocess.run(cli(h, *run_args(h, "--rm", "-i", IMAGE, "cat")), stdin=stdin, capture_output=True,
                           text=True, timeout=30, env=env_of(h))
    assert (r.returncode, r.stdout) == (0, "line one\nline two\n"), r.stderr
    command = " ".join(cli(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "'echo piped; exit 5'")))
    r = subprocess.run(["bash", "-o", "pipefail", "-c", f"{command} | cat"], capture_output=True, text=True,
                       timeout=30, env=env_of(h))
    assert (r.returncode, r.stdout) == (5, "piped\n"), r.stderr


@LAUNCHERS
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 42), (signal.SIGINT, 43)])
def test_signals_to_the_command_reach_the_container(images, busybox_archive, sig, code):
    h = images
    img_ok(h, "load", busybox_archive)
    script = "trap 'echo got-term; exit 42' TERM; trap 'echo got-int; exit 43' INT; echo ready; " \
             "while :; do sleep 0.05; done"
    proc = subprocess.Popen(cli(h, *run_args(h, "--rm", IMAGE, "sh", "-c", script)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True, env=env_of(h))
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    try:
        assert proc.wait(timeout=15) == code
    except subprocess.TimeoutExpired:
        report = process_report("got-term")  # the command, the process that serves it, the container
        proc.kill()
        pytest.fail(f"{sig.name} to the command did not end it within 15 s:\n{report}")
    assert ("got-term" if code == 42 else "got-int") in proc.stdout.read()
    proc.stdout.close()


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


@LAUNCHERS
def test_a_signal_that_comes_before_the_relay_is_in_place_reaches_the_container(images, busybox_archive, tmp_path):
    """The command hands its work to another process (the template's child; a cold run's own
    child), then puts its relay of signals in place. A SIGTERM between the two ended the command
    itself (the default action) and was never passed on: the caller saw -15 while the container
    ran on, and a container still being made was left half made (the child dies with its caller
    until its container runs). Held until the relay is in place, it is passed on as any later.
    strace holds the command at its first pidfd_open, the relay's first step, while the
    container starts and the signal is sent."""
    require("strace", "strace")
    h = images
    img_ok(h, "load", busybox_archive)
    log = tmp_path / "strace.log"
    script = "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    proc = subprocess.Popen(["strace", "-o", str(log), "-e", "trace=pidfd_open",
                             "-e", "inject=pidfd_open:delay_enter=3000000:when=1",
                             *cli(h, *run_args(h, "--rm", "--name", "early", IMAGE, "sh", "-c", script))],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, env=env_of(h))
    try:
        assert proc.stdout.readline().strip() == "ready"

        def held() -> bool:  # at its pidfd_open still: strace wrote the call, not yet its result
            calls = [line for line in log.read_text().splitlines() if "pidfd_open(" in line]
            return len(calls) == 1 and "=" not in calls[0]

        assert held(), f"the command was not held before its relay: {log.read_text()!r}"
        [command] = _children(proc.pid)
        os.kill(command, signal.SIGTERM)
        assert held(), "the 3 s hold ended before the signal was sent: a slow machine, not a lost signal"
        assert proc.wait(timeout=30) == 42
        assert "got-term" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        img(h, "rm", "-f", "early")


@LAUNCHERS
def test_a_signal_the_caller_blocked_stays_blocked(images, busybox_archive):
    """The launchers hold the signals they pass on from their request until their relay is in
    place (the test above), then put back the caller's mask, not an empty one: a caller that
    blocked SIGUSR1 for its child still has it blocked in the command that waits for the
    container, warm or cold."""
    h = images
    img_ok(h, "load", busybox_archive)
    proc = subprocess.Popen(cli(h, *run_args(h, "--rm", IMAGE, "sh", "-c", "echo ready; sleep 1")),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, env=env_of(h),
                            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1}))
    try:
        assert proc.stdout.readline().strip() == "ready"
        with open(f"/proc/{proc.pid}/status") as f:
            blocked = int(next(line.split()[1] for line in f if line.startswith("SigBlk:")), 16)
        assert blocked & (1 << (signal.SIGUSR1 - 1)), f"SigBlk {blocked:x}"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


IOPRIO_SET = {"x86_64": 251, "aarch64": 30}[os.uname().machine]
IDLE_IO = 3 << 13  # IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0)
NO_RANDOMIZE = 0x0040000  # ADDR_NO_RANDOMIZE, setarch -R
LOGINUID = "4242"


def as_a_tuned_caller() -> None:
    """What `nice -n 7 chrt --batch 0 taskset -c N ionice -c 3 setarch -R`, an OOM score of 123 and
    login uid 4242 leave a process with: all inherited across fork, so a cold mrun passes them on."""
    import ctypes

    with open("/proc/self/loginuid", "w") as f:
        f.write(LOGINUID)
    os.nice(7)
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("123")
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(IOPRIO_SET, 1, 0, IDLE_IO) == 0  # IOPRIO_WHO_PROCESS, ourselves
    assert libc.personality(NO_RANDOMIZE) != -1


def tuned(pid: int | str) -> list[str]:
    """nice, policy, CPUs, OOM score, personality and login uid of ``pid`` as /proc shows them."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/status") as f:
        cpus = next(line.split()[1] for line in f if line.startswith("Cpus_allowed_list"))
    rest = []
    for name in ("oom_score_adj", "personality", "loginuid"):
        with open(f"/proc/{pid}/{name}") as f:
            rest.append(f.read().strip())
    return [fields[16], fields[38], cpus, *rest]


def tuned_as_expected() -> list[str]:
    return ["7", str(os.SCHED_BATCH), str(max(os.sched_getaffinity(0))), "123", f"{NO_RANDOMIZE:08x}", LOGINUID]


@LAUNCHERS
def test_the_callers_priorities_cpus_and_oom_score_reach_its_container(images, busybox_archive):
    """The template's child once kept the template's nice value, CPU affinity, scheduling policy,
    I/O priority, OOM score, personality and login uid: `nice mrun run` ran its container at the
    template's priority."""
    h = images
    img_ok(h, "load", busybox_archive)
    script = "set -- $(cat /proc/self/stat); shift 18; echo $1; shift 22; echo $1; " \
             "grep Cpus_allowed_list /proc/self/status | cut -f2; cat /proc/self/oom_score_adj; " \
             "cat /proc/self/personality; cat /proc/self/loginuid; echo; ionice"
    r = subprocess.run(cli(h, *run_args(h, "--rm", IMAGE, "sh", "-c", script)), capture_output=True, text=True,
                       timeout=30, env=env_of(h), preexec_fn=as_a_tuned_caller, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:7] == [*tuned_as_expected(), "idle"], r.stdout


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _read_until(fd: int, needle: str, timeout: float = 15) -> str:
    out = ""
    deadline = time.monotonic() + timeout
    while needle not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} never came: {out!r}"
        if not select.select([fd], [], [], left)[0]:
            continue
        try:
            out += os.read(fd, 4096).decode(errors="replace")
        except OSError:  # EIO: every slave end is closed, and it never came
            break
    assert needle in out, f"{needle!r} never came: {out!r}"
    return out


@LAUNCHERS
def test_a_terminal_and_its_resize(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    master, slave = os.openpty()
    _set_size(slave, 30, 100)
    # The resize travels on its own (SIGWINCH to us, then to the process holding the container's
    # pty) while "go" goes through the terminal: the size is looked at until it changes, for 5 s.
    script = ("tty; echo term=$TERM; stty size; read line; i=0; "
              "while [ \"$(stty size)\" = '30 100' ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; "
              "stty size; exit 9")
    proc = subprocess.Popen(cli(h, *run_args(h, "--rm", "-t", "-i", IMAGE, "sh", "-c", script)), stdin=slave,
                            stdout=slave, stderr=slave, env=env_of(h), start_new_session=True)
    os.close(slave)
    try:
        first = _read_until(master, "30 100")
        assert "/dev/pts/0" in first and "term=xterm" in first  # docker's TERM with -t
        time.sleep(0.3)  # the terminal relay has long copied the first size: only SIGWINCH can change it now
        _set_size(master, 40, 120)
        proc.send_signal(signal.SIGWINCH)  # what the terminal does when its window changes
        os.write(master, b"go\n")
        _read_until(master, "40 120")
        assert proc.wait(timeout=15) == 9
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def _on_a_terminal(h, args: list[str], until: str, code: int, typed: bytes = b"",
                   size: tuple[int, int] = (24, 80)) -> str:
    """mrun ARGS on a terminal of ``size`` (``typed``: already in its input): what it showed up to
    ``until``, once it exited with ``code``."""
    return on_a_terminal(cli(h, *args), until, code, env_of(h), typed, size)


def on_a_terminal(argv: list[str], until: str, code: int, env: dict[str, str] | None, typed: bytes = b"",
                  size: tuple[int, int] = (24, 80), controlling: bool = False, timeout: float = 15) -> str:
    """``argv`` in a session of its own on a terminal of ``size`` (``controlling``: as the
    terminal's session leader), ``typed`` already in its input: what it showed up to ``until``,
    once it exited with ``code``."""
    master, slave = os.openpty()
    _set_size(slave, *size)
    if typed:
        os.write(master, typed)

    def own_session() -> None:
        os.setsid()
        if controlling:
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=own_session)
    os.close(slave)
    try:
        shown = _read_until(master, until, timeout)
        assert proc.wait(timeout=15) == code
        return shown
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


@LAUNCHERS
def test_what_is_typed_before_a_terminal_container_starts_reaches_it(images, busybox_archive):
    """A user who types before `mrun run -ti IMAGE sh` shows its prompt (a command pasted with it):
    making the caller's terminal raw discarded the input it held (tty.setraw's TCSAFLUSH), so the
    line never reached the container. docker's client switches without a flush: it arrives."""
    h = images
    img_ok(h, "load", busybox_archive)
    _on_a_terminal(h, run_args(h, "--rm", "-t", "-i", IMAGE, "sh", "-c", "read line; echo got=$line"),
                   "got=typed ahead", 0, typed=b"typed ahead\n")  # in the caller's terminal before mrun starts


@LAUNCHERS
def test_a_terminal_containers_output_is_in_its_log(images, busybox_archive):
    """`docker run -it --name dev IMAGE sh`, later `docker logs dev`: docker logs what a terminal
    container printed; mrun kept no log of a `-t` container ("has no log"). The terminal's relay
    now logs what it shows, and the container still sees the caller's window."""
    h = images
    img_ok(h, "load", busybox_archive)
    shown = _on_a_terminal(h, run_args(h, "-t", "-i", "--name", "tl", IMAGE, "sh", "-c",
                                       "echo hello-tty; stty size; exit 4"), "33 111", 4, size=(33, 111))
    assert "hello-tty" in shown
    logged = img_ok(h, "logs", "tl").stdout
    assert "hello-tty" in logged and "33 111" in logged, logged
    assert img_ok(h, "wait", "tl").stdout == "4\n"
    img_ok(h, "rm", "tl")


@LAUNCHERS
def test_a_terminal_container_reading_a_pipe_or_a_file_sees_its_end(images, busybox_archive, tmp_path):
    """`echo hi | mrun run -ti IMAGE cat`: the container's stdin is its terminal, and the end of
    ours never reached it: cat waited for good (podman's does too; docker's refuses -ti without
    a terminal). The relay now types the terminal's end-of-file character at our end, as a user
    would (twice after an unfinished line), in run and exec alike. `-t` without `-i` is left
    as docker's: a terminal nobody types into, so cat there is ended by a timeout, not by EOF."""
    h = images
    img_ok(h, "load", busybox_archive)
    data = tmp_path / "in.txt"
    data.write_text("line one\nline two\n")

    def on_the_terminal(*args: str, stdin: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(cli(h, *args), stdin=stdin, capture_output=True, timeout=60, env=env_of(h))

    with open(data) as stdin:
        r = on_the_terminal(*run_args(h, "--rm", "-t", "-i", IMAGE, "sh", "-c", "wc -l; exit 4"), stdin=stdin)
    assert r.returncode == 4 and r.stdout.split()[-1] == b"2", (r.stdout, r.stderr)  # the pty echoes the lines
    cat = " ".join(cli(h, *run_args(h, "--rm", "-ti", IMAGE, "cat")))
    r = subprocess.run(["bash", "-c", f"printf unfinished | {cat}"], capture_output=True, timeout=60, env=env_of(h))
    assert r.returncode == 0 and r.stdout == b"unfinishedunfinished", (r.stdout, r.stderr)
    r = on_the_terminal(*run_args(h, "--rm", "-t", IMAGE, "sh", "-c", "timeout 1 cat; echo $?"), stdin=subprocess.PIPE)
    assert r.returncode == 0 and r.stdout.split()[-1] == b"143", (r.stdout, r.stderr)  # no EOF: ended by TERM
    img_ok(h, *run_args(h, "-d", "--name", "typed-into", IMAGE, "sleep", "600"))
    try:
        with open(data) as stdin:
            r = on_the_terminal("exec", "-ti", "typed-into", "sh", "-c", "cat >/dev/null; exit 5", stdin=stdin)
        assert r.returncode == 5, (r.stdout, r.stderr)
    finally:
        img(h, "rm", "-f", "typed-into")


@LAUNCHERS
def test_a_terminal_container_given_more_input_than_its_pty_holds_goes_on(images, busybox_archive, tmp_path):
    """`mrun run -ti IMAGE sh < script` or a large paste: the relay wrote what it read of its
    stdin into the pty whole, and while the container was not reading (asleep, or printing),
    that write held the relay, which then read none of the container's output (its echo of the
    input among it): the container waited for us and we for it, for good. Input now waits in the
    relay while output goes on."""
    h = images
    img_ok(h, "load", busybox_archive)
    lines = tmp_path / "lines"
    lines.write_text("".join(f"line {i:06d} {'x' * 60}\n" for i in range(6000)))  # ~430 KB
    with open(lines) as stdin:
        r = subprocess.run(cli(h, *run_args(h, "--rm", "-t", "-i", IMAGE, "sh", "-c",
                                            "sleep 1; head -n 5000 | tail -n 1 | tr x y; echo done")),
                           stdin=stdin, capture_output=True, timeout=90, env=env_of(h))
    assert r.returncode == 0, r.stderr
    # the pty's echo of the input written to it goes on around what the container prints
    assert f"line 004999 {'y' * 60}".encode() in r.stdout and b"done" in r.stdout, r.stdout[-300:]


# A shell's job control, shrunk: the session leader of a terminal that runs argv as a background
# job (its own process group, not the terminal's foreground one), says whether the job stopped
# and the terminal's mode then, lets it go on in the background (`bg`) and says whether it
# stopped again, brings it to the foreground (`fg`) and says how it ended.
JOB_SHELL = """
import os, signal, sys, termios, time
p = os.fork()
if p == 0:
    os.setpgid(0, 0)
    os.execvp(sys.argv[1], sys.argv[1:])
try:
    os.setpgid(p, p)  # both sides, as a shell does: whichever comes first
except PermissionError:  # EACCES: the child has exec'd already, in its group (a shell ignores it too)
    pass
def stopped():
    deadline = time.monotonic() + 10
    while True:
        pid, status = os.waitpid(p, os.WUNTRACED | os.WNOHANG)
        if pid or time.monotonic() > deadline:
            return bool(pid) and os.WIFSTOPPED(status)
        time.sleep(0.02)
first = stopped()
raw = not termios.tcgetattr(0)[3] & termios.ICANON
print("stopped" if first else "running", "raw" if raw else "cooked", flush=True)
if first:
    os.killpg(p, signal.SIGCONT)
    print("bg:", "stopped" if stopped() else "running", flush=True)
signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # as a shell: it hands its terminal over
os.tcsetpgrp(0, p)
os.killpg(p, signal.SIGCONT)
pid, status = os.waitpid(p, 0)
os.tcsetpgrp(0, os.getpgrp())
print("exit", os.waitstatus_to_exitcode(status), flush=True)
"""


def as_a_background_job(argv: list[str], env: dict[str, str] | None = None) -> str:
    """What the terminal showed of ``argv`` run as a background job of JOB_SHELL (its session
    leader), with a line typed in the terminal from the start for whoever reads it, up to the
    job's exit status of 3 (the container's `read line; echo got=$line; exit 3`)."""
    return on_a_terminal([sys.executable, "-c", JOB_SHELL, *argv], "exit 3", 0, env, typed=b"typed\n",
                         controlling=True, timeout=60).replace("\r", "")


@LAUNCHERS
def test_a_terminal_run_in_a_shell_s_background_is_stopped_until_it_is_brought_back(images, busybox_archive):
    """`mrun run -ti IMAGE sh &` at a shell: the kernel stops a background job that reads its
    terminal or changes its mode (SIGTTIN, SIGTTOU) until `fg`, and a cold mrun doing the work
    itself was stopped so, as docker's client is. The child doing the work (the template's, or
    a cold run's) has a session of its own, which the kernel does not check: it made the shell's
    terminal raw and read the keys meant for the shell. It now stops its caller's job as the
    kernel would, and waits for the shell to bring it back."""
    h = images
    img_ok(h, "load", busybox_archive)
    shown = as_a_background_job(cli(h, *run_args(h, "--rm", "-t", "-i", IMAGE, "sh", "-c",
                                                  "read line; echo got=$line; exit 3")), env_of(h))
    # stopped, not reading the shell's keys; sent on in the background (`bg`), it reads again:
    # stopped again; in the foreground, the line typed reaches the container
    assert "stopped cooked\nbg: stopped\n" in shown and "got=typed" in shown, shown
    img_ok(h, *run_args(h, "-d", "--name", "bgexec", IMAGE, "sleep", "600"))  # and `exec -ti`, whose child is alike
    try:
        script = "read line; echo got=$line; exit 3"
        shown = as_a_background_job(cli(h, "exec", "-t", "-i", "bgexec", "sh", "-c", script), env_of(h))
        assert "stopped cooked\nbg: stopped\n" in shown and "got=typed" in shown, shown
    finally:
        img(h, "rm", "-f", "bgexec")


def test_relative_paths_resolve_in_the_callers_directory_not_at_its_name(images, busybox_archive, tmp_path):
    """A directory's name can come to mean another directory while the caller sits in the first
    one (a mount over it, a rename and a new one): the child must work where the caller is, as a
    cold process does, not wherever the name points by the time it looks it up."""
    import ctypes
    import shutil

    h = images
    here, other = tmp_path / "here", tmp_path / "other"
    here.mkdir()
    other.mkdir()
    shutil.copy(busybox_archive, here / "image.tar")

    def cover_our_directory() -> None:  # after Popen's chdir: our directory is hidden under `other`
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.mount(str(other).encode(), str(here).encode(), None, 4096, None) == 0  # MS_BIND

    try:
        r = subprocess.run(cli(h, "load", "image.tar"), cwd=here, capture_output=True, text=True, timeout=60,
                           env=env_of(h), preexec_fn=cover_our_directory, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run(["umount", str(here)], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert IMAGE.split(":")[0] in img_ok(h, "images").stdout


def test_a_module_in_the_callers_directory_is_never_imported(images, busybox_archive, tmp_path):
    """A warm child works in its caller's directory. A module file there (here tty.py, which the
    terminal relay imports only once a terminal is in use) must not be what it imports: the
    template's import path has no "" (python -c puts one there), so nothing resolves against
    whichever directory a caller happens to be in."""
    h = images
    img_ok(h, "load", busybox_archive)
    workdir, marker = tmp_path / "cwd", tmp_path / "imported"
    workdir.mkdir()
    (workdir / "tty.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    master, slave = os.openpty()
    _set_size(slave, 24, 80)
    proc = subprocess.Popen(cli(h, *run_args(h, "--rm", "-t", IMAGE, "echo", "done")), stdin=slave, stdout=slave,
                            stderr=slave, cwd=workdir, env=env_of(h), start_new_session=True)
    os.close(slave)
    try:
        out = _read_until(master, "done")
        assert proc.wait(timeout=15) == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert not marker.exists(), "tty.py from the caller's working directory was imported"


def test_a_detached_containers_exit_code_outlives_the_template(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    img_ok(h, *run_args(h, "-d", "--name", "late", IMAGE, "sh", "-c", "sleep 1; exit 3"))
    stop_templates(os.environ["MRUN_WARM_DIR"])  # while the container still runs
    deadline = time.monotonic() + 15
    while "Exited (3)" not in (row := img_ok(h, "ps", "-a").stdout):
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
    assert json.loads(img_ok(h, "inspect", "late").stdout)["exit"]["exit_code"] == 3
    img_ok(h, "rm", "late")
    warm_served()  # the warm variant's check needs a template again: the next caller starts one


def _template() -> dict:
    warm_served()  # makes sure one runs
    status = client.status(warm_path())
    assert status is not None
    return status


def test_only_root_may_use_the_template(tmp_path):
    status = _template()
    path = status["path"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700

    def as_nobody() -> str:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                os.chdir(os.path.dirname(path))  # its ancestors (pytest's) are root's alone
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                import socket

                s = socket.socket(socket.AF_UNIX)
                s.connect(os.path.basename(path))
                try:
                    client.send_message(s, {"kind": "cli", "argv": ["mrun", "ps"]})
                except BrokenPipeError:  # refused before it read a byte: the answer is there
                    pass
                answer = client.recv_message(s)
                os.write(w, json.dumps(answer).encode())
            except OSError as e:
                os.write(w, f"OSError {e.errno}".encode())
            finally:
                os._exit(0)
        os.close(w)
        out = os.read(r, 4096).decode()
        os.close(r)
        os.waitpid(pid, 0)
        return out

    assert as_nobody() == "OSError 13"  # EACCES: the socket's mode stops it first
    directory_mode = os.stat(os.path.dirname(path)).st_mode & 0o777
    os.chmod(os.path.dirname(path), 0o711)
    os.chmod(path, 0o666)  # as if the mode were lost: the peer's credentials still refuse it
    try:
        assert json.loads(as_nobody()) == {"error": "refused: uid 65534 is not root"}
    finally:
        os.chmod(path, 0o600)
        os.chmod(os.path.dirname(path), directory_mode)
    assert client.status(path)["served"] == status["served"]  # nothing was forked for it


def test_bytes_that_are_no_request_neither_end_nor_wedge_the_template():
    """What a root caller (a crashed one, a buggy tool) may send the template that is no request:
    a length of 4 GiB, a body that is no JSON or no object, a request cut short. Each connection
    is closed and logged; the same template answers the next caller, and its address space stays
    put (a 4 GiB length was a 4 GiB recv() buffer: VmPeak +4 GiB, a MemoryError where the host
    does not overcommit)."""
    import socket

    status = _template()
    path = status["path"]
    before = _vm_peak_kib(status["pid"])
    for data in (b"\xff\xff\xff\xff" + b"x" * 10, (5).to_bytes(4, "big") + b"{bad}", (2).to_bytes(4, "big") + b"[]",
                 (4).to_bytes(4, "big") + b"null", (100).to_bytes(4, "big") + b'{"kind":', b"\x00\x00",
                 (15).to_bytes(4, "big") + b'{"kind": "cli"}', (17).to_bytes(4, "big") + b'{"kind": [1, 2]}'):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            try:
                while s.recv(4096):  # until the template lets go of it
                    pass
            except ConnectionResetError:  # it closed with our bytes unread
                pass
    after = client.status(path)
    assert after is not None and after["pid"] == status["pid"]
    assert _vm_peak_kib(status["pid"]) - before < 1024 * 1024


def _vm_peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmPeak:"))


# Root callers a node has side by side, each in a context a template serves only if it shares it
CONTEXTS = {
    # a root login shell (group root among its supplementary groups) beside a service (none)
    "groups": ("setpriv", "--groups", "0"),
    # fewer privileges: no CAP_SYS_ADMIN in the bounding set
    "bounding set": ("setpriv", "--bounding-set", "-sys_admin"),
}

DIRECT_CALLER = """
import json, os, socket, sys
from mrun.warm import client
from mrun.warm.peer import kept_state
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
client.send_message(sock, {"kind": "cli", "argv": ["mrun", "ps"], "cmdline": "mrun", "comm": "mrun",
                           "env": dict(os.environ), "script_dir": sys.argv[2], "umask": 18, "fds": [0, 1, 2],
                           "stdio": [None, None, None], "identity": client.identity(), "kept": kept_state()})
print(json.dumps(client.recv_message(sock)), flush=True)
"""


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_a_caller_in_another_context_is_served_by_a_template_of_its_own(h, context, tmp_path):
    """A template serves only callers it could have been (mrun.warm.peer), and it is started by
    whichever caller comes first. When all callers shared one, the first one's context decided:
    an operator's `mrun ps` from a root shell left containerd's shim (a service, without the
    shell's group) cold, and a refused call still counted as a caller, so it never idled out while
    anyone called. Each context now has a template of its own, with no more than its callers
    have; one reached from another context all the same still refuses."""
    if not shutil_which("setpriv"):
        pytest.fail("setpriv is missing: apt-get install -y util-linux")
    wrapper = CONTEXTS[context]
    mine = _template()
    theirs = template_path(wrapper=wrapper)
    assert theirs != warm_path()
    call = [*wrapper, h.binary, "--root", h.root, "ps"]
    env = {**os.environ, "MRUN_WARM_DEBUG": "1"}
    started = None
    try:
        r = subprocess.run(call, capture_output=True, text=True, timeout=30, env=env)
        assert r.returncode == 0, r.stderr
        assert client.status(warm_path())["served"] == mine["served"], "a template served a caller it differs from"
        started = await_template(theirs, "the caller's first call started no template for its context")
        r = subprocess.run(call, capture_output=True, text=True, timeout=30, env=env)
        assert r.returncode == 0 and "cold because" not in r.stderr, r.stderr
        assert client.status(theirs)["served"] == started["served"] + 1
        status = "grep -E '^(Groups|CapBnd):' /proc/{}/status"
        own = subprocess.run([*wrapper, "sh", "-c", status.format("self")], capture_output=True, text=True)
        assert _lines(status.format(started["pid"])) == own.stdout, "its template has what its callers have"
        r = subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, text=True, timeout=30, env=env)
        assert r.returncode == 0 and client.status(warm_path())["served"] == mine["served"] + 1, r.stderr
        script = tmp_path / "direct.py"
        script.write_text(DIRECT_CALLER)
        python = os.path.join(os.path.dirname(mrun_binary()), "python")
        answer = subprocess.run([*wrapper, python, str(script), warm_path(), os.path.dirname(mrun_binary())],
                                capture_output=True, text=True, timeout=30)
        field = {"groups": "Groups", "bounding set": "CapBnd"}[context]
        assert f"{field} differs" in json.loads(answer.stdout)["cold"], answer
        assert client.status(warm_path())["served"] == mine["served"] + 1
    finally:
        if started is not None:
            os.kill(started["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 10
            while client.status(theirs) is not None and time.monotonic() < deadline:
                time.sleep(0.05)


def _lines(command: str) -> str:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout


SWAPPED_CALLER = """
import os, sys
from mrun.warm import client
from mrun.warm.peer import kept_state
ident = client.identity()
sock = __import__("socket").socket(__import__("socket").AF_UNIX)
sock.connect(sys.argv[2])  # the template of callers with all privileges
if os.fork():
    os._exit(0)  # the pid the template saw connect goes; our child keeps the connection
sys.stdin.readline()  # until the pid belongs to another process
client.send_message(sock, {"kind": "cli", "argv": ["mrun", "ps"], "cmdline": "mrun", "comm": "mrun",
                           "env": dict(os.environ), "script_dir": sys.argv[1], "umask": 18, "fds": [0, 1, 2],
                           "stdio": [None, None, None], "identity": ident, "kept": kept_state()})
answer = client.recv_message(sock)
if answer and answer.get("send") == "fds":
    client.send_fds(sock, [0, 1, 2, os.open(".", os.O_PATH)])
    answer = client.recv_message(sock)
print(__import__("json").dumps(answer), flush=True)
"""


def test_a_caller_whose_pid_passes_to_another_process_is_not_served_as_that_one(tmp_path):
    """SO_PEERCRED names the pid that connected, not whoever holds it by the time the template
    reads /proc: a caller without CAP_SYS_ADMIN connects and exits, a fully privileged process
    takes its pid, and the caller's child finishes the request. It must not be served with the
    privileges /proc now shows; the descriptors carry their sender's pid (SCM_CREDENTIALS)."""
    before = _template()["served"]
    python = os.path.join(os.path.dirname(mrun_binary()), "python")
    script = tmp_path / "swapped.py"
    script.write_text(SWAPPED_CALLER)
    caller = subprocess.Popen(["setpriv", "--bounding-set", "-sys_admin", python, str(script),
                               os.path.dirname(mrun_binary()), warm_path()],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    gone = caller.pid  # setpriv execs: this is the process that connects, then exits
    caller.wait(timeout=30)
    holder = None
    try:
        for _ in range(50):  # the next pid the kernel hands out, made to be the one that just went
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(gone - 1))
            holder = subprocess.Popen(["sleep", "60"])
            if holder.pid == gone:
                break
            holder.kill()
            holder.wait()
            holder = None
        assert holder is not None, f"pid {gone} was never handed out again"
        caller.stdin.write("go\n")
        caller.stdin.flush()
        answer = caller.stdout.readline()
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    answer = json.loads(answer)
    assert "pid" not in answer, f"served as the privileged process that took the caller's pid: {answer}"
    assert "is not the process that connected" in answer["cold"]
    assert client.status(warm_path())["served"] == before


def under_a_seccomp_filter() -> None:
    """A filter of our own that allows everything: /proc says "Seccomp: 2" as for any other."""
    import ctypes

    class Instruction(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Instruction))]

    allow = (Instruction * 1)(Instruction(0x06, 0, 0, 0x7FFF0000))  # BPF_RET|BPF_K SECCOMP_RET_ALLOW
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(22, 2, ctypes.byref(Program(1, allow)), 0, 0) == 0  # PR_SET_SECCOMP, MODE_FILTER


def test_a_caller_without_proc_runs_cold_and_starts_no_template(h, tmp_path):
    """A template is found by its callers' context, which /proc tells: a caller that has no /proc
    (a mount namespace or chroot without it) runs cold with the same result and starts no template,
    which could serve nobody there. The first version of that routing raised FileNotFoundError.
    Through the Python launcher: the native one needs /proc/self/exe to find it."""
    directory = str(tmp_path / "warm")
    python_launcher = os.path.join(os.path.dirname(h.binary), "mrun-python")
    for verb in ("ps -q", "state no-such-container"):
        script = f"umount -l /proc && exec {python_launcher} --root {h.root} {verb}"
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           env={**os.environ, "MRUN_WARM_DIR": directory}, capture_output=True, text=True, timeout=30)
        assert "Traceback" not in r.stderr, r.stderr
        if verb == "ps -q":
            assert r.returncode == 0 and not r.stderr, r.stderr
        else:
            assert r.returncode == 1 and r.stderr == "mrun: container 'no-such-container' does not exist\n", r.stderr
    time.sleep(0.5)  # a template would have been started detached
    assert not os.path.isdir(directory) or not os.listdir(directory), os.listdir(directory)


def test_a_caller_under_a_seccomp_filter_is_told_to_run_cold(h, tmp_path):
    """Two filters cannot be compared (/proc shows only the mode): a template must not serve a
    caller under a filter, whose rules the child would not have. Nor does such a caller start a
    template (it would inherit the filter); and one started under a filter leaves at once."""
    directory = str(tmp_path / "warm")
    env = {**os.environ, "MRUN_WARM_DIR": directory, "MRUN_WARM_DEBUG": "1"}
    deadline = time.monotonic() + 30

    def ps(**kw) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, text=True, timeout=30, env=env,
                           **kw)
        assert r.returncode == 0, r.stderr
        return r

    def await_file(suffix: str, holding: str = "") -> str:
        while True:
            names = [n for n in os.listdir(directory) if n.endswith(suffix)] if os.path.isdir(directory) else []
            if names and holding in open(os.path.join(directory, names[0])).read():
                return os.path.join(directory, names[0])
            assert time.monotonic() < deadline, f"no {suffix} file holding {holding!r} in {directory}"
            time.sleep(0.05)

    try:
        ps(preexec_fn=under_a_seccomp_filter)
        time.sleep(1)
        assert not os.path.isdir(directory) or not os.listdir(directory), "a filtered caller started a template"
        code = "from mrun.warm import client; client.start_template(client.socket_path())"
        python = os.path.join(os.path.dirname(h.binary), "python")
        subprocess.run([python, "-c", code], env=env, check=True, timeout=30, preexec_fn=under_a_seccomp_filter)
        await_file(".log", holding="seccomp")  # it left at once
        assert not [n for n in os.listdir(directory) if n.endswith(".sock")]
        ps()  # unfiltered: starts one
        path = await_file(".pid")[: -len(".pid")] + ".sock"
        while client.status(path) is None:
            assert time.monotonic() < deadline, "the template does not answer"
            time.sleep(0.05)
        r = ps(preexec_fn=under_a_seccomp_filter)
        assert "cold because" in r.stderr and "seccomp" in r.stderr, r.stderr
        assert client.status(path)["served"] == 0
    finally:
        stop_templates(directory)


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def test_a_change_once_seen_is_seen_at_every_later_check(tmp_path):
    """The check reads inotify's events as it looks: a second look, with the queue now quiet, said
    nothing had changed, though the file was as changed as before."""
    from mrun.warm.fingerprint import Fingerprint

    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    code = Fingerprint([str(tmp_path), str(module)])
    assert code.events is not None, "inotify is needed here"
    assert code.changed() is None
    module.write_text("x = 2\n")
    assert code.changed() == str(module)
    assert code.changed() == str(module)


def test_new_code_is_never_served_by_an_old_template(h):
    """A changed installed file (as an upgrade leaves it): the next call runs cold on the new code,
    the old template leaves, and the one after is served warm by a new template with the new code."""
    import mrun.cli.commands as commands

    old = _template()
    source = commands.__file__
    original = open(source).read()
    times = os.stat(source)
    assert "list images" in original
    marker = f"list images (upgraded {os.getpid()})"

    def help_text() -> str:
        r = subprocess.run([h.binary, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    try:
        with open(source, "w") as f:
            f.write(original.replace("list images", marker))
        assert "upgraded" in help_text()  # cold, on the new code
        deadline = time.monotonic() + 20
        while (new := client.status(old["path"])) is None or new["pid"] == old["pid"]:
            assert time.monotonic() < deadline, "no new template came up"
            help_text()
            time.sleep(0.1)
        assert not running(old["pid"])
        assert new["code"] != old["code"]
        assert "upgraded" in help_text() and client.status(old["path"])["served"] > new["served"]  # warm, new code
    finally:
        with open(source, "w") as f:
            f.write(original)
        # Its installed bytecode names the original's mtime: restored, it is valid again (where
        # PYTHONDONTWRITEBYTECODE is set nothing would rewrite it, and every mrun after this
        # test compiled the module, 2.5 ms each).
        os.utime(source, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert "upgraded" not in help_text()


def test_a_broken_template_means_a_cold_start_with_the_same_result(h):
    """A socket that accepts and never answers (a hung template) costs the caller a timeout once,
    never a failure; a socket nobody listens on is replaced."""
    path = warm_path()
    stop_templates(os.environ["MRUN_WARM_DIR"])
    for leftover in warm_templates():
        os.unlink(leftover)
    import socket

    hung = socket.socket(socket.AF_UNIX)
    hung.bind(path)
    hung.listen(8)
    try:
        t0 = time.monotonic()
        r = subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - t0 < client.FIRST_ANSWER_TIMEOUT + 5
    finally:
        hung.close()
    r = subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr  # ECONNREFUSED on the dead socket: cold, and a template is started
    await_template(path, "no template replaced the dead socket")


def test_an_idle_template_leaves_and_the_next_caller_brings_one_back(h, tmp_path):
    """$MRUN_WARM_IDLE seconds without a caller and the template is gone, socket and all."""
    env = {**os.environ, "MRUN_WARM_DIR": str(tmp_path / "warm"), "MRUN_WARM_IDLE": "1"}
    path = template_path(env)
    try:
        for _ in range(2):
            subprocess.run([h.binary, "--root", h.root, "ps"], capture_output=True, env=env, check=True, timeout=30)
            status = await_template(path)
            spares = spares_of(path, wait=5)  # forked once no caller came for a moment (template.QUIET)
            assert spares, "no spare child waits for the next caller"
            deadline = time.monotonic() + 10
            while os.path.exists(path) or running(status["pid"]) or any(running(p) for p in spares):
                assert time.monotonic() < deadline, "the idle template (or its spare child) stayed"
                time.sleep(0.1)
            with open(path[: -len(".sock")] + ".log") as f:
                log = f.read()
            assert "leaving" in log and "Traceback" not in log and "Exception ignored" not in log, log
    finally:
        stop_templates(str(tmp_path / "warm"))


def spares_of(path: str, wait: float = 0) -> list[int]:
    """The children a template forked in advance for its next caller (named after its socket),
    looked for again for up to ``wait`` seconds while there are none."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[:2] == [b"mrun-warm-spare", path.encode()]:
                        found.append(int(pid))
            except OSError:
                continue
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.01)


def test_a_caller_is_served_when_the_spare_child_is_gone(images, busybox_archive):
    """The spare is a convenience: killed (or never forked), the template forks for the caller."""
    h = images
    if h.base_env.get("MRUN_WARM") == "0":
        pytest.skip("the cold variant has no template")
    img_ok(h, "load", busybox_archive)
    path = warm_path()
    for pid in spares_of(path):
        os.kill(pid, signal.SIGKILL)  # ours: the session's template's child, by pid
    before = client.status(path)["served"]
    r = subprocess.run(cli(h, *run_args(h, "--rm", IMAGE, "echo", "served")), capture_output=True, text=True,
                       timeout=30, env=env_of(h))
    assert (r.returncode, r.stdout) == (0, "served\n"), r.stderr
    assert client.status(path)["served"] == before + 1
    deadline = time.monotonic() + 10
    while not spares_of(path):  # and it keeps one for the next caller again
        assert time.monotonic() < deadline, "no new spare child"
        time.sleep(0.05)


def test_a_sigterm_outside_the_wait_for_a_caller_stops_the_template_before_its_next_wait(tmp_path):
    """SIGTERM as the template forks its spare once raised SystemExit inside logging's after-fork
    hook, which swallowed it ("Exception ignored"): the template served on, and the suite's stop
    timed out. Outside the wait it is now noted, and the loop leaves before waiting again."""
    import socket

    from mrun.warm import template

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "s.sock"))
    listener.listen(1)
    serving = object.__new__(template.Template)  # only what serve() touches before its first long wait
    serving.listener, serving.leaving = listener, False
    raised_inside = []

    def settle() -> None:  # where the spare is forked: as if the signal came mid-fork
        try:
            template.on_sigterm(signal.SIGTERM, None)
        except SystemExit:
            raised_inside.append(True)  # an after-fork hook would have swallowed it
            raise

    serving.settle = settle
    try:
        t0 = time.monotonic()
        with pytest.raises(SystemExit):
            serving.serve(30)
        assert not raised_inside, "SIGTERM was raised inside the fork of the spare"
        assert time.monotonic() - t0 < 10  # it did not wait for a caller (30 s) first
    finally:
        template.stop.safe = template.stop.pending = False
        listener.close()


def test_a_child_that_cannot_take_its_caller_on_sends_it_cold_not_a_bare_255():
    """A failure while the template's child takes on its caller (before the caller's descriptors
    and stdio are in place; a low open-files limit did it) answered exit 255, and the caller
    printed nothing: the child now tells it to run cold, which gives the same results."""
    import socket

    from mrun.warm import child, client, template

    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            def cannot(*_args: object) -> None:
                raise OSError(22, "Invalid argument")

            child.become = cannot
            template.Template._child(object.__new__(template.Template), ours, {"kind": "cli", "argv": ["mrun"]}, [],
                                     os.getppid())
        finally:
            os._exit(3)
    ours.close()
    try:
        answer = client.recv_message(theirs)
    finally:
        theirs.close()
        _, status = os.waitpid(pid, 0)
    assert answer == {"cold": "the template's child could not take this caller on: OSError: [Errno 22] Invalid "
                              "argument"}, answer
    assert os.waitstatus_to_exitcode(status) == 0


def _run_under_a_template_another_started(h, busybox_archive, tmp_path, look: str, done: str,
                                          first_only: dict[str, str], second_only: dict[str, str],
                                          preexec_fn=None) -> dict[str, str]:
    """A template of its own, started by a first caller with `mrun load` (``first_only`` in its
    environment, before the rest; ``preexec_fn``); then another caller's warm `mrun run IMAGE`
    (``second_only`` in its environment) under a runtime the oci backend runs: a wrapper of runc
    that first runs the shell line ``look`` once (until the file ``done`` exists). -> the second
    caller's environment."""
    require("runc", "runc")
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runtime = bin_dir / "lookrunc"
    runtime.write_text(f"#!/bin/sh\n[ -e {done} ] || {look}\nexec {shutil.which('runc')} \"$@\"\n")
    runtime.chmod(0o755)
    warm_dir = str(tmp_path / "warm")
    base = {**os.environ, "MRUN_WARM_DIR": warm_dir}
    first = {**first_only, **base}
    mrun = [h.binary, "--root", h.root, "--image-root", str(tmp_path / "images")]
    try:
        subprocess.run([*mrun, "load", busybox_archive], env=first, check=True, capture_output=True, timeout=60,
                       preexec_fn=preexec_fn)
        path = template_path(first)
        served = await_template(path)["served"]
        caller = {**base, "PATH": f"{bin_dir}:{base['PATH']}", "MRUN_OCI_RUNTIMES": "lookrunc", **second_only}
        r = subprocess.run([*mrun, "run", "--rm", "--cgroup-parent", h.cgroup_parent, "--network", "none",
                            "--annotation", "org.mrun.oci.runtime=lookrunc", IMAGE, "true"],
                           env=caller, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert client.status(path)["served"] > served, "the template did not serve the run"
        return caller
    finally:
        stop_templates(warm_dir)


def test_what_a_warm_child_runs_gets_its_callers_environment_not_the_templates(h, busybox_archive, tmp_path):
    """The C library's environment (getenv, and what a program exec'd without an explicit one
    inherits) is the caller's in a warm child: a variable the caller shares with the template's
    first caller used to be left pointing into the process's original environment block, which
    the child overwrites with its caller's, so with another layout it read another string (or
    half of one). Here a runtime the oci backend runs for `mrun run IMAGE` shows what it got."""
    dump = tmp_path / "environ"
    # The template's first caller: another layout (a long variable first, everything after it moved).
    caller = _run_under_a_template_another_started(h, busybox_archive, tmp_path, f"cat /proc/$$/environ > {dump}",
                                                   str(dump), {"MRUN_TEST_PAD": "p" * 333}, {"MRUN_TEST_MARK": "1"})
    got = [entry.decode("latin-1") for entry in dump.read_bytes().split(b"\0") if entry]
    wrong = [e for e in got if "=" not in e or e.split("=", 1)[0] not in caller]
    assert not wrong, f"entries the caller never had: {wrong[:5]}"
    for name, value in (e.split("=", 1) for e in got):
        assert value == caller[name], (name, value, caller[name])
    assert {"PATH", "MRUN_TEST_MARK", "HOME"} <= {e.split("=", 1)[0] for e in got}


KEYCTL, ADD_KEY = {"x86_64": (250, 248), "aarch64": (219, 217)}[os.uname().machine]


def _in_a_session_keyring_with_a_secret() -> None:
    """The template's first caller: a login session whose keyring holds a key of its own."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(KEYCTL, 1, None) > 0  # KEYCTL_JOIN_SESSION_KEYRING, anonymous: a new one
    assert libc.syscall(ADD_KEY, b"user", b"mrun-test-secret", b"s3cret", 6, -3) > 0  # into @s


def test_a_warm_child_never_holds_the_session_keyring_of_the_templates_first_caller(h, busybox_archive, tmp_path):
    """Keyrings are not namespaced, and the session keyring passes down fork and exec: the template
    held its first caller's (a login's, with its keys) and every process it served, whoever called
    it, possessed those keys, and so did what they ran (a runtime, hooks). Here a runtime the oci
    backend runs for another caller's warm `mrun run IMAGE` looks for the first caller's key."""
    found = tmp_path / "found"
    search = (f"import ctypes; l = ctypes.CDLL(None); "
              f"open({str(found)!r}, 'w').write(str(l.syscall({KEYCTL}, 10, -3, b'user', b'mrun-test-secret', 0)))")
    _run_under_a_template_another_started(h, busybox_archive, tmp_path, f"/usr/bin/python3 -c \"{search}\"",
                                          str(found), {}, {}, preexec_fn=_in_a_session_keyring_with_a_secret)
    assert found.read_text() == "-1", "the first caller's key was in reach (its serial number)"


def test_a_template_started_under_memory_deny_write_execute_imposes_it_on_no_other_caller(h, tmp_path):
    """The template is started by whichever caller comes first, and keeps what fork and exec keep
    of that caller's. Started by one under PR_SET_MDWE (which /proc does not show), it handed it
    on to every later caller's children: their wasm containers failed ("unable to make memory
    executable") until it left. Such a template now serves only callers that say they have the
    same; another runs cold, and its module runs."""
    warm_dir = str(tmp_path / "warm")
    base = {**os.environ, "MRUN_WARM_DIR": warm_dir}
    mrun = [h.binary, "--root", h.root, "--image-root", str(tmp_path / "images")]
    try:
        subprocess.run([*mrun, "load", build_wasm_archive(str(tmp_path))], env=base, check=True, capture_output=True,
                       timeout=60, preexec_fn=_with_memory_deny_write_execute)
        path = template_path(base, preexec_fn=_with_memory_deny_write_execute)  # its callers' template
        served = await_template(path)["served"]
        r = subprocess.run([*mrun, *run_args(h, "--rm", WASM_IMAGE)], env=base, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 3 and "hello from wasm32-wasi" in r.stdout, r.stderr
        assert client.status(path)["served"] == served, "the template served a caller it differs from"
    finally:
        stop_templates(warm_dir)


NOISY_CALLER = """
import os, sys, time
from mrun.warm import client
pid, sock, unheld = client._hand_over("cli", ["--root", sys.argv[1], "state", "no-such-container"], None, {})
if pid is None:
    print("cold", flush=True)
    sys.exit(0)
sock.send(b"x")  # an event on the child's end that is no hang-up: data
print(client._wait(sock, pid, unheld), flush=True)
"""


def test_an_event_on_the_connection_that_is_no_hang_up_does_not_kill_the_child(h, tmp_path):
    """The child takes its caller's fate with it: the kernel signals it on events of the caller's
    connection (O_ASYNC). That signal was SIGKILL itself, so any event killed it, and a suite's
    signal tracing caught one with POLL_IN (data arriving, not the caller's end closing) killing a
    child whose live caller then said "ended without an exit status" (seen in start, kill,
    inspect, run --rm, update: about once in a few thousand calls). Data on the connection now
    leaves the child at its work; the caller's end closing still kills it (the killed-caller
    tests)."""
    h.ok("ps")  # a template up for this installation
    await_template(warm_path())
    before = _template()["served"]
    python = os.path.join(os.path.dirname(mrun_binary()), "python")
    script = tmp_path / "noisy.py"
    script.write_text(NOISY_CALLER)
    r = subprocess.run([python, str(script), h.root], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() != "cold", "the template did not serve the caller"
    assert r.stdout.strip() == "1", r  # state of an unknown container: the verb's own answer
    assert "ended without an exit status" not in r.stderr, r.stderr
    assert _template()["served"] > before


def test_a_warm_child_lets_go_of_its_callers_cgroups_before_the_caller_returns(h, tmp_path):
    """The template's child joins its caller's cgroups to do the work. It reports the exit status
    only once it has left them again (v1: back into the template's, thread-wise) and closed the
    caller's descriptors, so the caller returns without waiting for its exit (the teardown of a
    fork the template's size); or, where that move would cost more (v2), the caller waits for
    it as before. Either way the caller's cgroup is empty, and removable, the moment it returns."""
    made = []
    for d in map(os.path.normpath, cgroup_dirs("/")):
        if os.path.basename(d) == "unified":  # a hybrid host's v2 hierarchy: only the v1 ones are moved here
            continue
        made.append(os.path.join(d, h.cgroup_parent.lstrip("/"), "caller"))
        os.makedirs(made[-1])
        if os.path.basename(d) == "cpuset":  # a new v1 cpuset takes no task until it has cpus and mems
            for parent in (os.path.dirname(made[-1]), made[-1]):
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(parent, f), "w") as out:
                        out.write(open(os.path.join(d, f)).read().strip())

    def into_the_callers_cgroups() -> None:
        for d in made:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

    try:
        before = warm_served()
        for _ in range(20):
            r = h.mrun("--image-root", str(tmp_path / "images"), "ps", "-a", preexec_fn=into_the_callers_cgroups)
            assert r.returncode == 0, r.stderr
            held = {d: open(os.path.join(d, "cgroup.procs")).read().split() for d in made}
            assert not any(held.values()), f"the caller returned while its cgroups held {held}"
        assert warm_since(before), "never served warm"
    finally:
        for d in reversed(made):
            for leaf in (d, os.path.dirname(d)):
                try:
                    os.rmdir(leaf)
                except OSError:
                    pass


def test_a_released_child_holds_nothing_of_its_callers_and_no_longer_shows_its_command(h):
    """What ``child.let_go`` leaves of a child that did a caller's work, in a process that took on
    a caller (its cgroups, descriptors, command line, environment and name) and then let go:
    only its connection open, back in its own cgroups (v1: on v2 a child that moved is never
    released), and in /proc the template's exiting child, not the caller's command (a `ps` the
    moment the caller returned showed it, until the exit)."""
    from mrun.kernel.proc import rewrite_area
    from mrun.warm import child

    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            home = child.own_cgroups()
            v1 = not os.path.exists("/sys/fs/cgroup/cgroup.controllers")  # v2 moves are never undone: see let_go
            for d in map(os.path.normpath, cgroup_dirs("/") if v1 else []):
                if os.path.basename(d) == "unified":
                    continue
                leaf = os.path.join(d, h.cgroup_parent.lstrip("/"), "caller")
                os.makedirs(leaf, exist_ok=True)
                if os.path.basename(d) == "cpuset":
                    for level in (os.path.dirname(leaf), leaf):
                        for f in ("cpuset.cpus", "cpuset.mems"):
                            with open(os.path.join(level, f), "w") as out:
                                out.write(open(os.path.join(d, f)).read().strip())
                with open(os.path.join(leaf, "tasks"), "w") as f:
                    f.write("0")
            kept = os.open("/dev/null", os.O_RDONLY)  # a descriptor of the caller's
            rewrite_area("arg", b"mrun\0--root\0/caller/root\0state\0x\0")
            released = child.let_go(theirs.fileno(), home)
            report = {"released": released, "kept_open": _is_open(kept), "cgroups": child.own_cgroups() == home,
                      "cmdline": open("/proc/self/cmdline", "rb").read().decode(),
                      "comm": open("/proc/self/comm").read().strip(),
                      "fds": sorted(int(x) for x in os.listdir("/proc/self/fd"))}
            theirs.sendall(json.dumps(report).encode())
        finally:
            os._exit(0)
    theirs.close()
    got = json.loads(ours.makefile().read())
    os.waitpid(pid, 0)
    for d in cgroup_dirs(f"{h.cgroup_parent}/caller"):
        try:
            os.rmdir(d)
        except OSError:
            pass
    assert got["released"] and got["cgroups"] and not got["kept_open"], got
    assert got["cmdline"].rstrip("\0") == "mrun-warm-exit" and got["comm"] == "mrun-warm-exit", got
    assert len(got["fds"]) == 2, got  # the connection, and the listing's own


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
