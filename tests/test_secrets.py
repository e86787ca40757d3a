"""podman's secrets with mrun: `mrun secret create|ls|inspect|rm|exists` and `run --secret`, as
a Quadlet unit's `Secret=` lines and `podman run --secret` scripts use them. What a secret may
never do: reach an image (commit, export), a listing or inspect, or the host's other users."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile

import pytest
from conftest import IMAGE, img, img_ok, one_line_error, run_args

DATA = "hunter2-\u00e9-not-for-images"


def _secret(h, name: str, data: str = DATA, *flags: str) -> str:
    """`secret create NAME -` with ``data`` on stdin, as a script pipes it. -> the id printed."""
    r = subprocess.run([h.binary, "--root", h.root, "--image-root", h.image_root, "secret", "create", *flags,
                        name, "-"], input=data, capture_output=True, text=True, timeout=60,
                       env={**os.environ, **h.base_env})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _cat(h, *args: str) -> str:
    return img_ok(h, *run_args(h, "--rm", *args)).stdout


def test_a_secret_is_a_read_only_copy_where_podman_puts_it(images, busybox_archive):
    h = images
    img_ok(h, "load", busybox_archive)
    secret_id = _secret(h, "db-password")
    assert len(secret_id) == 25 and int(secret_id, 16) >= 0
    assert _cat(h, "--secret", "db-password", IMAGE, "cat", "/run/secrets/db-password") == DATA
    # target: under /run/secrets, or absolute; uid, gid and mode are the file's (0444 by default)
    out = _cat(h, "--secret", "db-password,target=pw", "--secret", "db-password,target=/etc/app/pw,uid=7,gid=8,"
               "mode=0400", IMAGE, "sh", "-c", "stat -c '%n %u %g %a' /run/secrets/pw /etc/app/pw; "
               "cat /etc/app/pw; echo x > /run/secrets/pw || echo refused")
    assert out.splitlines()[:2] == ["/run/secrets/pw 0 0 444", "/etc/app/pw 7 8 400"], out
    assert DATA in out and out.endswith("refused\n"), out
    # by id too, or a prefix of one
    assert _cat(h, "--secret", f"{secret_id[:6]},target=x", IMAGE, "cat", "/run/secrets/x") == DATA


def test_a_container_keeps_its_copy_whatever_becomes_of_the_secret(images, busybox_archive):
    """podman's: `secret rm` is safe while containers use it, and a secret made again under the
    same name changes no container made before."""
    h = images
    img_ok(h, "load", busybox_archive)
    _secret(h, "token", "first")
    img_ok(h, *run_args(h, "-d", "--name", "keeper", "--secret", "token", "--secret", "token,type=env,target=TOKEN",
                        IMAGE, "sleep", "600"))
    try:
        img_ok(h, "secret", "rm", "token")
        _secret(h, "token", "second")
        read = "cat /run/secrets/token; echo \" $TOKEN\""
        assert img_ok(h, "exec", "keeper", "sh", "-c", read).stdout == "first first\n"
        img_ok(h, "restart", "-t", "0", "keeper")
        assert img_ok(h, "exec", "keeper", "sh", "-c", read).stdout == "first first\n"
        assert _cat(h, "--secret", "token", IMAGE, "cat", "/run/secrets/token") == "second"
    finally:
        img_ok(h, "rm", "-f", "keeper")


def test_a_secret_reaches_no_image_listing_or_other_user(images, busybox_archive, tmp_path):
    """inspect shows an env secret's name, never its value; commit leaves the variable and the
    file out of the image; export carries no byte of it; the store and a container's copies are
    root's alone (0700 directories), and secret ls and inspect never print the data unless
    --showsecret asks."""
    h = images
    img_ok(h, "load", busybox_archive)
    _secret(h, "api-key", DATA, "--label", "team=core")
    img_ok(h, *run_args(h, "-d", "--name", "holder", "--secret", "api-key", "--secret",
                        "api-key,type=env,target=API_KEY", IMAGE, "sh", "-c", "echo changed > /made; sleep 600"))
    try:
        assert img_ok(h, "exec", "holder", "sh", "-c", "echo $API_KEY").stdout == DATA + "\n"
        doc = img_ok(h, "inspect", "holder").stdout
        assert DATA not in doc and "API_KEY=*******" in doc
        env = img_ok(h, "inspect", "-f", "{{json .Config.Env}}", "holder").stdout
        assert DATA not in env and "API_KEY=*******" in env, env
        img_ok(h, "commit", "holder", "committed:latest")
        config = img_ok(h, "image", "inspect", "committed:latest").stdout
        assert DATA not in config and "API_KEY" not in config
        out = _cat(h, "committed:latest", "sh", "-c", "cat /made; cat /run/secrets/api-key; echo \"[$API_KEY]\"")
        assert out == "changed\n[]\n", out  # its mount point came along empty, as a bind's does
        img_ok(h, "export", "-o", str(tmp_path / "holder.tar"), "holder")
        with tarfile.open(tmp_path / "holder.tar") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    assert DATA.encode() not in tar.extractfile(member).read(), member.name
        bundle = os.path.join(h.image_root, "containers", "holder")
        for path in (os.path.join(h.image_root, "secrets"), os.path.join(h.image_root, "secrets", "api-key"),
                     os.path.join(bundle, "secrets")):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
        assert stat.S_IMODE(os.stat(os.path.join(h.image_root, "secrets", "api-key", "data")).st_mode) == 0o600
        for args in (["secret", "ls"], ["secret", "ls", "--format", "json"], ["secret", "inspect", "api-key"]):
            assert DATA not in img_ok(h, *args).stdout, args
        shown = json.loads(img_ok(h, "secret", "inspect", "--showsecret", "api-key").stdout)
        assert shown[0]["SecretData"] == DATA and shown[0]["Spec"]["Labels"] == {"team": "core"}
    finally:
        img_ok(h, "rm", "-f", "holder")
        img(h, "rmi", "committed:latest")


def test_the_secret_verbs_as_podman_s(images, tmp_path):
    h = images
    (tmp_path / "file").write_text("from a file")
    first = img_ok(h, "secret", "create", "one", str(tmp_path / "file")).stdout.strip()
    second = img_ok(h, "secret", "create", "--env", "two", "MRUN_TEST_SECRET",
                    env={"MRUN_TEST_SECRET": "from the environment"}).stdout.strip()
    third = _secret(h, "three", "x", "-l", "kind=test")
    assert img_ok(h, "secret", "ls", "-q").stdout.split() == [first, third, second]  # by name
    assert img_ok(h, "secret", "ls", "--format", "{{.Name}}", "--filter", "label=kind=test").stdout == "three\n"
    assert img_ok(h, "secret", "ls", "--format", "{{.Name}}", "--filter", "name=t").stdout == "three\ntwo\n"
    assert img_ok(h, "secret", "inspect", "--showsecret", "--format", "{{.SecretData}}", "two").stdout == \
        "from the environment\n"
    assert img(h, "secret", "exists", "one").returncode == 0
    assert img(h, "secret", "exists", "nothing").returncode == 1
    one_line_error(img(h, "secret", "create", "one", str(tmp_path / "file")), "one", "in use")
    img_ok(h, "secret", "create", "--replace", "one", str(tmp_path / "file"))
    assert img_ok(h, "secret", "inspect", "--format", "{{.ID}}", "one").stdout.strip() != first
    one_line_error(img(h, "secret", "rm", "nothing"), "no such secret")
    assert img_ok(h, "secret", "rm", "-i", "nothing", "two").stdout == f"{second}\n"
    img_ok(h, "secret", "rm", "--all")
    assert img_ok(h, "secret", "ls", "-q").stdout == ""
    assert not [e for e in os.listdir(os.path.join(h.image_root, "secrets"))], "nothing left of a removed secret"


@pytest.mark.parametrize("flag, needles", [
    ("nothing", ("no such secret", "nothing")),
    ("../images", ("no such secret",)),
    ("s,type=file", ("type=file",)),
    ("s,type=env,mode=0400", ("mode", "type=mount")),
    ("s,type=env,target=A=B", ("target",)),
    ("s,target=../../etc/passwd", ("target", "..")),
    ("s,target=/", ("target=/",)),
    ("s,mode=0999", ("mode=0999", "octal")),
    ("s,uid=-1", ("uid=-1",)),
    ("s,gid=4294967296", ("gid=4294967296",)),
    ("s,colour=red", ("colour=red",)),
    (",target=x", ("name comes first",)),
])
def test_a_bad_secret_flag_is_refused_in_one_line_and_leaves_nothing(images, busybox_archive, flag, needles):
    h = images
    img_ok(h, "load", busybox_archive)
    _secret(h, "s")
    one_line_error(img(h, *run_args(h, "--rm", "--secret", flag, IMAGE, "true")), "--secret", *needles)
    one_line_error(img(h, "create", "--cgroup-parent", h.cgroup_parent, "--network", "none", "--secret", flag,
                       IMAGE, "true"), "--secret")
    assert os.listdir(os.path.join(h.image_root, "containers")) == []
    assert img_ok(h, "ps", "-aq").stdout == ""


@pytest.mark.parametrize("name, source, needles", [
    ("bad/name", "file", ("secret name",)),
    ("..", "file", ("secret name",)),
    (".new-1-x", "file", ("secret name",)),
    ("x" * 254, "file", ("at most 253",)),
    ("empty", "empty", ("1 to 512000 bytes", "none")),
    ("big", "big", ("1 to 512000 bytes", "more than")),
    ("fifo", "fifo", ("not a regular file",)),
    ("device", "/dev/zero", ("not a regular file",)),
    ("missing", "missing", ("No such file",)),
])
def test_a_bad_secret_is_refused_in_one_line_and_leaves_nothing(images, tmp_path, name, source, needles):
    h = images
    (tmp_path / "file").write_text("data")
    (tmp_path / "empty").write_text("")
    (tmp_path / "big").write_bytes(b"x" * 512001)
    os.mkfifo(tmp_path / "fifo")  # read, it would hold `secret create` up for good
    path = source if source.startswith("/") else str(tmp_path / source)
    one_line_error(img(h, "secret", "create", name, path, timeout=30), *needles)
    store = os.path.join(h.image_root, "secrets")
    assert not os.path.isdir(store) or os.listdir(store) == []


def test_a_link_planted_in_the_store_is_not_followed(images, busybox_archive, tmp_path):
    h = images
    img_ok(h, "load", busybox_archive)
    _secret(h, "s")
    data = os.path.join(h.image_root, "secrets", "s", "data")
    (tmp_path / "elsewhere").write_text("a host file")
    os.unlink(data)
    os.symlink(tmp_path / "elsewhere", data)
    one_line_error(img(h, *run_args(h, "--rm", "--secret", "s", IMAGE, "true")), "secret 's'")
    one_line_error(img(h, "secret", "inspect", "--showsecret", "s"), "secret 's'")
    assert os.listdir(os.path.join(h.image_root, "containers")) == []


def test_a_refused_env_secret_is_not_printed(images, busybox_archive, tmp_path):
    """An env secret whose data holds a NUL byte cannot be a variable: refused in one line that
    names the flag, not the value (the spec check's words printed the whole variable)."""
    h = images
    img_ok(h, "load", busybox_archive)
    (tmp_path / "nul").write_bytes(b"top\0secret")
    img_ok(h, "secret", "create", "nul", str(tmp_path / "nul"))
    r = img(h, *run_args(h, "--rm", "--secret", "nul,type=env", IMAGE, "true"))
    one_line_error(r, "--secret 'nul'", "NUL")
    assert "secret\"" not in r.stderr and "top" not in r.stderr, r.stderr
    assert os.listdir(os.path.join(h.image_root, "containers")) == []


def test_a_killed_create_s_leftovers_are_swept_and_nothing_else(images, tmp_path):
    """A create or rm killed midway leaves its directory (.new-PID-HEX, .gone-PID-HEX): the next
    create sweeps it once PID is gone. One whose maker lives (a create under way) stays, and so
    does any other name (a root shared by mistake: someone else's)."""
    h = images
    _secret(h, "first")
    store = os.path.join(h.image_root, "secrets")
    probe = subprocess.Popen(["true"])  # a pid that has ended
    probe.wait()
    dead = probe.pid
    left = [f".new-{dead}-0123abcd", f".gone-{dead}-89abcdef"]
    kept = [f".new-{os.getpid()}-0123abcd", ".new-someone-else", f".new-{dead}-NOTHEX00", "notes.txt"]
    for name in left + kept[:-1]:
        os.mkdir(os.path.join(store, name))
        with open(os.path.join(store, name, "data"), "w") as f:
            f.write("x")
    with open(os.path.join(store, kept[-1]), "w") as f:
        f.write("someone's")
    _secret(h, "second")
    assert sorted(os.listdir(store)) == sorted(kept + ["first", "second"])
    assert img_ok(h, "secret", "ls", "--format", "{{.Name}}").stdout == "first\nsecond\n"


def test_secret_create_ignore(images, tmp_path):
    """podman's --ignore: a secret of that name is no error; its id is printed and it is left as
    it is. Not with --replace, as podman refuses both."""
    h = images
    first = _secret(h, "kept", "first")
    (tmp_path / "other").write_text("second")
    assert img_ok(h, "secret", "create", "--ignore", "kept", str(tmp_path / "other")).stdout == f"{first}\n"
    assert img_ok(h, "secret", "inspect", "--showsecret", "--format", "{{.SecretData}}", "kept").stdout == "first\n"
    one_line_error(img(h, "secret", "create", "--ignore", "--replace", "kept", str(tmp_path / "other")),
                   "--ignore and --replace")
    one_line_error(img(h, "secret", "ls", "--ignore"), "--ignore")
