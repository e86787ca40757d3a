"""podman's run flags that docker has not, as podman scripts and Quadlet units write them
(EnvironmentHost=, ReadOnlyTmpfs=, PodmanArgs=--umask ...): --env-host, --unsetenv,
--unsetenv-all, --umask and --read-only-tmpfs."""

from __future__ import annotations

import os

import pytest
from conftest import IMAGE, img, img_ok, one_line_error, run_args


def _out(h, *args: str, env: dict[str, str] | None = None) -> str:
    return img_ok(h, *run_args(h, "--rm", *args), env=env).stdout


def test_env_host_unsetenv_and_unsetenv_all(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    caller = {"MRUN_TEST_FROM_HOST": "host value", "MRUN_TEST_BOTH": "host"}
    # the caller's environment (the warm template's child has it too), under -e
    out = _out(h, "--env-host", "-e", "MRUN_TEST_BOTH=flag", IMAGE, "sh", "-c",
               "echo $MRUN_TEST_FROM_HOST; echo $MRUN_TEST_BOTH", env=caller)
    assert out == "host value\nflag\n", out
    assert _out(h, IMAGE, "sh", "-c", "echo \"[$MRUN_TEST_FROM_HOST]\"", env=caller) == "[]\n"  # not without it
    # but for the caller's systemd socket: a container's own is --sdnotify's (the first of two wins)
    out = _out(h, "--env-host", IMAGE, "sh", "-c", "echo \"[$NOTIFY_SOCKET]\"", env={"NOTIFY_SOCKET": "/run/x"})
    assert out == "[]\n", out
    # --unsetenv: a default left out (the image's PATH, our HOSTNAME); one -e gives stays
    out = _out(h, "--unsetenv", "PATH", "--unsetenv", "HOSTNAME", "--unsetenv", "KEPT", "-e", "KEPT=1", IMAGE,
               "/bin/env")
    names = {line.partition("=")[0] for line in out.splitlines()}
    assert "PATH" not in names and "HOSTNAME" not in names and "KEPT" in names, out
    # --unsetenv-all: only what -e gives (and HOME, which the runtime adds as runc does)
    out = _out(h, "--unsetenv-all", "--env-host", "-e", "A=1", IMAGE, "/bin/env", env=caller)
    assert sorted(out.splitlines()) == ["A=1", "HOME=/root"], out


def test_umask(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    assert _out(h, IMAGE, "sh", "-c", "umask") == "0022\n"
    assert _out(h, "--umask", "0077", IMAGE, "sh", "-c", "umask; touch /tmp/f; stat -c %a /tmp/f") == "0077\n600\n"
    assert _out(h, "--umask", "2", IMAGE, "sh", "-c", "umask") == "0002\n"


def test_read_only_tmpfs(images, busybox_archive, tmp_path):
    h = images
    img_ok(h, "load", busybox_archive)
    write = "for d in /run /tmp /var/tmp; do touch $d/f && echo $d; done; touch /etc/f 2>/dev/null || echo ro"
    assert _out(h, "--read-only", "--read-only-tmpfs", IMAGE, "sh", "-c", write) == "/run\n/tmp\n/var/tmp\nro\n"
    # a program may run from them, as podman's allow
    out = _out(h, "--read-only", "--read-only-tmpfs", IMAGE, "sh", "-c",
               "cp /bin/true /tmp/true && /tmp/true && echo ran")  # (a busybox applet by its name)
    assert out == "ran\n", out
    # a mount of the caller's at one of them wins; without --read-only nothing is added
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "mine").write_text("")
    out = _out(h, "--read-only", "--read-only-tmpfs", "-v", f"{tmp_path / 'own'}:/tmp", IMAGE, "ls", "/tmp")
    assert out == "mine\n", out
    assert _out(h, "--read-only-tmpfs", IMAGE, "sh", "-c", "grep -c ' /run tmpfs' /proc/mounts || true") == "0\n"


@pytest.mark.parametrize("flags, needles", [
    (("--umask", "9"), ("--umask", "octal")),
    (("--umask", "01000"), ("--umask", "0777")),
    (("--umask", "u=rwx"), ("--umask",)),
])
def test_a_bad_podman_flag_is_refused_in_one_line(images, busybox_archive, flags, needles):
    h = images
    img_ok(h, "load", busybox_archive)
    one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true")), *needles)
    assert os.listdir(os.path.join(h.image_root, "containers")) == []


def _until(h, container: str, template: str, wanted: str, timeout: float = 20) -> str:
    """`inspect -f template` once it says ``wanted`` (each check runs every 200 ms here)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = img_ok(h, "inspect", "-f", template, container).stdout.strip()
        if got == wanted or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


FAILING = ("--health-cmd", "test -e /tmp/healthy", "--health-interval", "200ms", "--health-retries", "1")
TRAPPING = ["sh", "-c", "echo started; trap 'echo got TERM; exit 7' TERM; while :; do sleep 0.1; done"]


def test_health_on_failure(images, busybox_archive):
    """podman's --health-on-failure (a Quadlet unit's HealthOnFailure=): once the container turns
    unhealthy its supervisor kills it (SIGKILL), stops it as `mrun stop` does (its stop signal;
    no restart follows, whatever its policy) or restarts it (whatever its policy)."""
    h = images
    img_ok(h, "load", busybox_archive)
    try:
        img_ok(h, *run_args(h, "-d", "--name", "killed", *FAILING, "--health-on-failure", "kill", IMAGE, *TRAPPING))
        assert _until(h, "killed", "{{.State.Status}} {{.State.ExitCode}}", "exited 137") == "exited 137"
        img_ok(h, *run_args(h, "-d", "--name", "stopped", "--restart", "always", *FAILING, "--health-on-failure",
                            "stop", IMAGE, *TRAPPING))
        assert _until(h, "stopped", "{{.State.Status}} {{.State.ExitCode}}", "exited 7") == "exited 7"
        assert img_ok(h, "logs", "stopped").stdout == "started\ngot TERM\n"
        import time

        time.sleep(1)  # no restart follows: --restart always rests, as after `mrun stop`
        assert img_ok(h, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "stopped").stdout == "exited 0\n"
        img_ok(h, *run_args(h, "-d", "--name", "restarted", *FAILING, "--health-on-failure", "restart", IMAGE,
                            *TRAPPING))
        assert _until(h, "restarted", "{{.RestartCount}}", "2") == "2"
        assert img_ok(h, "logs", "restarted").stdout.startswith("started\ngot TERM\nstarted\n")
        # a check that passes: nothing happens
        img_ok(h, *run_args(h, "-d", "--name", "healthy", "--health-cmd", "true", "--health-interval", "200ms",
                            "--health-on-failure", "kill", IMAGE, "sleep", "600"))
        assert _until(h, "healthy", "{{.State.Health.Status}}", "healthy") == "healthy"
        time.sleep(0.5)
        assert img_ok(h, "inspect", "-f", "{{.State.Status}}", "healthy").stdout == "running\n"
    finally:
        for name in ("killed", "stopped", "restarted", "healthy"):
            img(h, "rm", "-f", name)


@pytest.mark.parametrize("flags, needles", [
    (("--health-on-failure", "bogus", "--health-cmd", "true"), ("--health-on-failure 'bogus'",)),
    (("--health-on-failure", "kill"), ("no check to run",)),
    (("--health-on-failure", "restart", "--restart", "always", "--health-cmd", "true"), ("conflicting",)),
    (("--health-on-failure", "kill", "--no-healthcheck"), ("--no-healthcheck",)),
])
def test_a_bad_health_on_failure_is_refused_in_one_line(images, busybox_archive, flags, needles):
    h = images
    img_ok(h, "load", busybox_archive)
    one_line_error(img(h, *run_args(h, "-d", *flags, IMAGE, "true")), *needles)
    assert os.listdir(os.path.join(h.image_root, "containers")) == []


def test_tz(images, busybox_archive):
    """podman's --tz (a Quadlet unit's Timezone=): the zone's file is the container's
    /etc/localtime, a read-only copy."""
    import hashlib
    import time

    h = images
    img_ok(h, "load", busybox_archive)
    assert _out(h, "--tz", "Asia/Tokyo", IMAGE, "date", "+%Z").strip() == "JST"
    assert _out(h, "--tz", "Etc/GMT+3", IMAGE, "date", "+%z").strip() == "-0300"
    assert _out(h, "--tz", "local", IMAGE, "date", "+%Z").strip() == time.strftime("%Z")
    with open("/etc/localtime", "rb") as f:  # the host's own file (this host's zone may be the default)
        host = hashlib.md5(f.read()).hexdigest()
    assert _out(h, "--tz", "local", IMAGE, "md5sum", "/etc/localtime").split()[0] == host
    out = _out(h, "--tz", "UTC", IMAGE, "sh", "-c", "echo x > /etc/localtime 2>/dev/null || echo read-only")
    assert out == "read-only\n", out


@pytest.mark.parametrize("tz, needles", [
    ("../../etc/shadow", ("--tz", "zone name")),
    ("/etc/shadow", ("--tz", "zone name")),
    ("Nowhere/City", ("no such time zone",)),
    ("Europe", ("no such time zone", "not a file")),
    ("zone.tab", ("not a zone file",)),
])
def test_a_bad_tz_is_refused_in_one_line(images, busybox_archive, tz, needles):
    h = images
    img_ok(h, "load", busybox_archive)
    one_line_error(img(h, *run_args(h, "--rm", "--tz", tz, IMAGE, "true")), *needles)
    assert os.listdir(os.path.join(h.image_root, "containers")) == []


def test_a_zone_that_leads_out_of_zoneinfo_copies_no_host_file(tmp_path):
    """A link in the zone directory that points out of it (or a name that climbs out) is refused:
    --tz would have copied that host file into the container."""
    from mrun.errors import InvalidSpec
    from mrun.images.timezone import zone_file

    zoneinfo = tmp_path / "zoneinfo"
    (zoneinfo / "Area").mkdir(parents=True)
    (zoneinfo / "Area" / "Good").write_bytes(b"TZif2 a zone")
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"TZif but the host's own")  # even one that looks like a zone
    os.symlink(secret, zoneinfo / "Area" / "Out")
    os.symlink("../../host-secret", zoneinfo / "Area" / "Up")
    os.symlink("Good", zoneinfo / "Area" / "Alias")  # a link inside it is a zone's other name
    assert zone_file("Area/Good", str(zoneinfo)) == b"TZif2 a zone"
    assert zone_file("Area/Alias", str(zoneinfo)) == b"TZif2 a zone"
    for name in ("Area/Out", "Area/Up", "../host-secret"):
        with pytest.raises(InvalidSpec):
            zone_file(name, str(zoneinfo))
