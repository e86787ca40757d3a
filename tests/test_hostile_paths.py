"""A hostile rootfs or config never reaches the host's filesystem.

Each test builds its own rootfs whose /dev, /etc or a mount target is a symlink aimed at a
"victim" directory on the host, runs a real container, and asserts the victim is exactly as it
was (same names, same bytes, no device nodes) — the in-root resolution in ``mrun.kernel.inroot`` is
the one mechanism under all of it.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import pytest
from busybox_bundle import make_rootfs
from conftest import one_line_error
from mrun.kernel import inroot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def snapshot(path: str) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, content) for everything below ``path``."""
    out = {}
    for d, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            data = b""
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
            out[os.path.relpath(p, path)] = (st.st_mode, data)
    return out


@pytest.fixture
def victim(tmp_path):
    """A host directory holding files a container must never touch."""
    v = tmp_path / "victim"
    v.mkdir()
    for name in ("null", "zero", "full", "random", "urandom", "tty", "hosts", "passwd"):
        (v / name).write_text(f"host file {name}\n")
    before = snapshot(str(v))
    yield str(v)
    assert snapshot(str(v)) == before, "the container changed a host directory"


@pytest.fixture
def hostile_rootfs(tmp_path):
    root = str(tmp_path / "hostile-rootfs")
    make_rootfs(root)
    return root


def relative_link_to(target: str, link_dir: str) -> str:
    """A ../../..-style link from ``link_dir`` that climbs to / and then down to ``target``."""
    depth = len([p for p in link_dir.split("/") if p])
    return "../" * (depth + 3) + target.lstrip("/")


@pytest.mark.parametrize("form", ["absolute", "relative"])
def test_dev_symlinked_to_the_host(h, hostile_rootfs, victim, form):
    dev = os.path.join(hostile_rootfs, "dev")
    os.rmdir(dev)
    os.symlink(victim if form == "absolute" else relative_link_to(victim, hostile_rootfs), dev)
    cfg = h.config(["sh", "-c", "echo hi > /dev/null && ls /dev/null"])
    cfg["root"] = {"path": hostile_rootfs, "readonly": False}
    cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]  # no tmpfs to hide behind
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode == 0, r.stderr
    # The nodes were made where the link leads *inside* the rootfs.
    inside = os.path.join(hostile_rootfs, victim.lstrip("/"), "null")
    assert stat.S_ISCHR(os.lstat(inside).st_mode)


def test_device_path_with_dotdot_is_refused(h, victim):
    cfg = h.config(["true"])
    cfg["linux"]["devices"] = [{"path": "/dev/../../../../../../" + victim.lstrip("/") + "/zero", "type": "c",
                                "major": 1, "minor": 5}]
    r = h.mrun("create", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode != 0
    assert "linux.devices[0].path" in r.stderr and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("dest", ["/proc/sys", "/proc/self/attr", "/via-link/kernel", "/proc"])
def test_nothing_is_mounted_over_what_procfs_shows(h, hostile_rootfs, dest):
    """runc's rule (checkProcMount): a bind mount over /proc/sys or a process's attr/ (where an
    AppArmor profile is set: CVE-2019-16884) is refused, also when a link in the rootfs leads
    there, and /proc itself takes only a procfs. It was mounted. lxcfs's files stay allowed."""
    from conftest import one_line_error

    os.symlink("/proc/sys", os.path.join(hostile_rootfs, "via-link"))
    fake = os.path.join(h.tmp, "fake")
    os.makedirs(fake, exist_ok=True)
    cfg = h.config(["true"])
    cfg["root"] = {"path": hostile_rootfs, "readonly": False}
    cfg["mounts"].append({"destination": dest, "type": "bind", "source": fake, "options": ["rbind"]})
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), f"mounts[{len(cfg['mounts']) - 1}]",
                   "inside /proc")


@pytest.mark.parametrize("where, shape, what", [
    ("proc", "link", "a symbolic link"), ("proc", "file", "not a directory"),
    ("sys", "link", "a symbolic link"), ("sys", "file", "not a directory"),
])
def test_proc_and_sysfs_go_on_an_ordinary_directory_only(h, hostile_rootfs, where, shape, what):
    """runc's rule: an image's /proc that is a link (to /tmp here) had the container's procfs
    mounted where it led, away from /proc; a file there was a bare "Not a directory" about
    /proc/self/fd/N. Both are refused naming the mount."""
    from conftest import one_line_error

    path = os.path.join(hostile_rootfs, where)
    os.rmdir(path)
    if shape == "link":
        os.symlink("/tmp", path)
    else:
        open(path, "w").close()
    cfg = h.config(["true"])
    cfg["root"] = {"path": hostile_rootfs, "readonly": False}
    index = next(i for i, m in enumerate(cfg["mounts"]) if m["destination"] == f"/{where}")
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), f"mounts[{index}]",
                   f"/{where} in the rootfs is {what}", "ordinary directory")
    assert not os.listdir(os.path.join(hostile_rootfs, "tmp"))


def test_a_working_directory_through_a_descriptor_stays_inside_the_root(h, victim):
    """process.cwd /proc/self/fd/N, N a host directory the set-up holds (here passed on purpose
    with --preserve-fds; runc leaked one by accident: CVE-2024-21626, an image's WorkingDir the
    way in): chdir followed the magic link and the process started outside its root. Resolved
    inside the root, the link is text: the host directory is never the working directory."""
    import subprocess

    cfg = h.config(["sh", "-c", "ls; touch made-here"])
    cfg["process"]["cwd"] = "/proc/self/fd/3"
    r = subprocess.run(["sh", "-c", 'exec 3<"$1"; shift; exec "$@"', "sh", victim,  # the victim as fd 3
                        h.binary, "--root", h.root, "run", "--preserve-fds", "1", "-b", h.bundle(config=cfg), h.cid()],
                       capture_output=True, text=True, timeout=30, env={**os.environ, **h.base_env})
    if r.returncode:  # the path made inside this read-only root: refused, in one line
        assert r.stderr.startswith("mrun: process.cwd: /proc/self/fd/3:") and r.stderr.count("\n") == 1, r.stderr
    assert "hosts" not in r.stdout and "passwd" not in r.stdout, r.stdout  # the victim's files, unseen
    assert not os.path.exists(os.path.join(victim, "made-here"))  # and the victim fixture finds it unchanged


def test_a_dev_null_that_leads_elsewhere_masks_nothing(h, tmp_path):
    """/dev bound from a directory where /dev/null is a link to /proc/sys/kernel/core_pattern (a
    shared volume, where another container can put one): masking bound the link's target over
    /proc/timer_list, a writable view of the host's core_pattern inside the container (runc's
    CVE-2025-31133). Now the null device is checked (char 1:3, not a link) and the create refused."""
    from conftest import one_line_error

    shared = tmp_path / "shared-dev"
    shared.mkdir()
    os.symlink("/proc/sys/kernel/core_pattern", shared / "null")
    cfg = h.config(["cat", "/proc/timer_list"])
    cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]
    cfg["mounts"].append({"destination": "/dev", "type": "bind", "source": str(shared), "options": ["rbind"]})
    assert "/proc/timer_list" in cfg["linux"]["maskedPaths"]
    one_line_error(h.mrun("run", "-b", h.bundle(config=cfg), h.cid()), "linux.maskedPaths", "not the null device")


def test_a_dev_bind_is_one_however_its_destination_is_spelled(h, tmp_path):
    """runc cleans a mount's destination as Go's filepath.Clean does, "//dev" being "/dev". mrun's
    test for a bound /dev used os.path.normpath, which keeps a leading "//" (POSIX lets it mean
    something else): a host directory bound at "//dev" was taken for no /dev bind, and the
    container's device nodes were made in the host's directory. Both spellings do the same now."""
    import stat

    found = {}
    for spelling in ("/dev", "//dev"):
        shared = tmp_path / f"dev-{len(found)}"
        shared.mkdir()
        os.mknod(shared / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what masking binds
        cfg = h.config(["true"])
        cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]
        cfg["mounts"].append({"destination": spelling, "type": "bind", "source": str(shared), "options": ["rbind"]})
        r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
        found[spelling] = (r.returncode, sorted(os.listdir(shared)))
    assert found["/dev"][0] == 0 and found["//dev"] == found["/dev"], found


def test_a_dev_console_link_does_not_lead_the_terminal_out(h, hostile_rootfs, victim):
    """/dev/console a link to a host file (a /dev with links in it, as a shared directory can
    hold): the init's pty is bound onto /dev/console resolved inside the root, never onto the
    link's host target (runc's CVE-2025-52565)."""
    import subprocess

    dev = os.path.join(hostile_rootfs, "dev")
    os.symlink(os.path.join(victim, "hosts"), os.path.join(dev, "console"))
    cfg = h.config(["true"])
    cfg["process"]["terminal"] = True
    cfg["root"] = {"path": hostile_rootfs, "readonly": False}
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev"]  # the rootfs's own /dev
    r = subprocess.run([h.binary, "--root", h.root, "run", "-b", h.bundle(config=cfg), h.cid()], input="",
                       capture_output=True, text=True, timeout=30, env={**os.environ, **h.base_env})
    assert r.returncode == 0, r.stderr
    with open("/proc/self/mountinfo") as f:
        assert os.path.join(victim, "hosts") not in f.read()  # and the victim fixture finds it unchanged


def test_lxcfs_s_files_may_cover_proc_s(h):
    meminfo = os.path.join(h.tmp, "meminfo")
    with open(meminfo, "w") as f:
        f.write("MemTotal: 42 kB\n")
    cfg = h.config(["head", "-1", "/proc/meminfo"])
    cfg["mounts"].append({"destination": "/proc/meminfo", "type": "bind", "source": meminfo, "options": ["rbind"]})
    cfg["mounts"].append({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"})  # runc allows a tmpfs
    assert h.ok("run", "-b", h.bundle(config=cfg), h.cid()).stdout == "MemTotal: 42 kB\n"


def test_mount_target_through_a_symlink(h, hostile_rootfs, victim):
    os.symlink(victim, os.path.join(hostile_rootfs, "mnt"))
    os.symlink(relative_link_to(victim, os.path.join(hostile_rootfs, "etc")), os.path.join(hostile_rootfs, "etc2"))
    src = os.path.join(h.tmp, "hosts-src")
    with open(src, "w") as f:
        f.write("10.0.0.1 mine\n")
    cfg = h.config(["sh", "-c", "cat /etc2/hosts; ls /mnt/sub"])
    cfg["root"] = {"path": hostile_rootfs, "readonly": False}
    cfg["mounts"] += [
        {"destination": "/mnt/sub", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/etc2/hosts", "type": "bind", "source": src, "options": ["rbind", "ro"]},
        {"destination": "/mnt/newdir/deeper", "type": "bind", "source": h.tmp, "options": ["rbind"]},
    ]
    r = h.mrun("run", "-b", h.bundle(config=cfg), h.cid())
    assert r.returncode == 0, r.stderr
    assert "10.0.0.1 mine" in r.stdout


def test_etc_symlinked_to_the_host_for_user_lookup(images, tmp_path):
    """`--user name` reads the image's /etc/passwd inside the image, not through a link to the host's."""
    from busybox_bundle import make_oci_archive
    from conftest import img, img_ok, run_args

    root = str(tmp_path / "etc-link-rootfs")
    make_rootfs(root)
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    (host_etc / "passwd").write_text("hostonly:x:4242:4242::/:/bin/sh\n")
    etc = os.path.join(root, "etc")
    for name in os.listdir(etc):
        os.unlink(os.path.join(etc, name))
    os.rmdir(etc)
    os.symlink(str(host_etc), etc)
    archive = make_oci_archive(root, str(tmp_path), "localhost/etclink:1", ["/bin/true"], ["PATH=/bin"])
    img_ok(images, "load", archive)
    r = img(images, *run_args(images, "--rm", "--user", "hostonly", "localhost/etclink:1", "id"))
    assert r.returncode != 0 and "no user 'hostonly'" in r.stderr, r.stderr


def test_walk_stays_inside_the_root(tmp_path):
    """The resolver itself, against every trick at once (no container needed)."""
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), root / "abs")
    os.symlink("../../../../" + str(outside).lstrip("/"), root / "real" / "rel")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("/nowhere/deep", root / "dangling")
    fd = inroot.open_root(str(root))
    try:
        for path, create in (("/abs/x/y", "dir"), ("/real/rel/f", "file"), ("/../../abs/z", "dir"),
                             ("/dangling/file", "file")):
            made = inroot.walk(fd, path, create=create)
            try:
                where = os.readlink(inroot.fd_path(made))
                assert where.startswith(str(root) + "/"), (path, where)
            finally:
                os.close(made)
        with pytest.raises(Exception, match="too many levels"):
            inroot.walk(fd, "/loop1/x", create="dir")
        with pytest.raises(FileNotFoundError):
            inroot.walk(fd, "/abs/never")
    finally:
        os.close(fd)
    assert os.listdir(outside) == []
    assert (root / "nowhere" / "deep" / "file").is_file()


def test_image_labels_never_steer_the_runtime(images, busybox_rootfs, tmp_path):
    """An image labelled with mrun's own keys (host network, another backend, a network to join)
    runs as the operator asked; the labels stay visible in `mrun inspect`."""
    import json

    from busybox_bundle import make_oci_archive
    from conftest import img_ok, run_args

    # module.wasm.image/variant is left out on purpose: it is the wasm image format's own
    # declaration (read from the format, tested in test_images), not a runtime setting.
    hostile = {"org.mrun.network": "host", "run.oci.handler": "wasm", "org.mrun.network.ports": "80:80",
               "org.mrun.wasm.deadline-ms": "1", "org.example.kept": "yes"}
    archive = make_oci_archive(busybox_rootfs, str(tmp_path), "localhost/labelled:1", ["/bin/sh"], ["PATH=/bin"],
                               labels=hostile)
    img_ok(images, "load", archive)
    host_net = os.readlink("/proc/self/ns/net")
    cid = images.cid()
    r = img_ok(images, *run_args(images, "--name", cid, "localhost/labelled:1", "readlink", "/proc/self/ns/net"))
    assert r.stdout.strip() and r.stdout.strip() != host_net  # --network none, not the label's host
    doc = json.loads(img_ok(images, "inspect", cid).stdout)
    assert doc["image"]["labels"] == hostile
    annotations = doc["config"]["annotations"]
    assert annotations["org.example.kept"] == "yes"
    for key in ("org.mrun.network", "run.oci.handler", "org.mrun.network.ports", "org.mrun.wasm.deadline-ms"):
        assert key not in annotations, key
    img_ok(images, "rm", cid)


def test_volume_destination_symlinked_to_the_host(images, tmp_path, victim):
    """`-v name:/data` where the image's /data is a link to a host directory: the volume is
    mounted inside the container's rootfs, the host directory is untouched."""
    from busybox_bundle import make_oci_archive
    from conftest import img_ok, run_args

    root = str(tmp_path / "data-link-rootfs")
    make_rootfs(root)
    os.symlink(victim, os.path.join(root, "data"))
    os.symlink(relative_link_to(victim + "/two", root), os.path.join(root, "data2"))  # not over /data's
    archive = make_oci_archive(root, str(tmp_path), "localhost/datalink:1", ["/bin/true"], ["PATH=/bin"])
    img_ok(images, "load", archive)
    r = img_ok(images, *run_args(images, "--rm", "-v", "vol1:/data/sub", "-v", "vol2:/data2", "localhost/datalink:1",
                                 "sh", "-c", "echo in-volume > /data/sub/f && echo two > /data2/g && cat /data/sub/f"))
    assert r.stdout == "in-volume\n"
    assert open(os.path.join(images.image_root, "volumes", "vol1", "data", "f")).read() == "in-volume\n"


def test_pull_never_reads_a_module_through_a_layers_link(images, tmp_path):
    """Pulling (or loading) a wasm image compiles its entrypoint ahead of the first run, reading
    the file from the layer on the host. A layer whose /app is a link to a host directory had the
    host's /that/dir/mod.wasm read and compiled: the host resolved the image's link. Links in the
    entrypoint's path are the container root's to resolve; nothing is read through them."""
    import hashlib

    import wasmtime
    from busybox_bundle import make_oci_archive
    from conftest import img_ok

    host_dir = tmp_path / "host-only"
    host_dir.mkdir()
    module = wasmtime.wat2wasm(f'(module (func (export "_start")) (func (export "host_{os.getpid()}")))')
    (host_dir / "mod.wasm").write_bytes(module)
    root = tmp_path / "link-rootfs"
    root.mkdir()
    os.symlink(str(host_dir), root / "app")
    from mrun.annotations import WASM_VARIANT

    archive = make_oci_archive(str(root), str(tmp_path), "localhost/applink:1", ["/app/mod.wasm"],
                               labels={WASM_VARIANT: "compat"})  # a wasm image: its module compiled at load
    cache = {"MRUN_CACHE_DIR": str(tmp_path / "cache")}
    img_ok(images, "load", archive, env=cache)
    listed = img_ok(images, "cache", "list", env=cache).stdout
    assert "sha256:" + hashlib.sha256(module).hexdigest()[:12] not in listed, listed


def test_a_program_swapped_for_a_fifo_never_blocks_the_host(tmp_path):
    """What the host reads of a container's program (its first bytes, to choose a backend; a wasm
    module, to compile it) is found inside the rootfs and then opened: a container sharing that
    rootfs can swap the file for a fifo in between, and an open of a fifo waits for a writer
    (forever). The file is opened where it was found, as a regular file only; a fifo is refused."""
    script = f"""
import os, sys, threading
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from mrun.plugins.api import Bundle, find_program
from mrun.backends.wasm import read_module
root = {str(tmp_path / 'rootfs')!r}
os.makedirs(root)
open(os.path.join(root, "real"), "wb").write(b"\\0asm\\1\\0\\0\\0")
os.mkfifo(os.path.join(root, "fifo"))
stop = False
def flip():
    while not stop:  # the name is now the module, now a fifo
        os.link(os.path.join(root, "real"), os.path.join(root, "tmp-real"))
        os.rename(os.path.join(root, "tmp-real"), os.path.join(root, "prog"))
        os.link(os.path.join(root, "fifo"), os.path.join(root, "tmp-fifo"))
        os.rename(os.path.join(root, "tmp-fifo"), os.path.join(root, "prog"))
threading.Thread(target=flip, daemon=True).start()
class Spec:
    raw, annotations = {{}}, {{}}
    rootfs = root
    process = {{"args": ["/prog"], "env": []}}
found = 0
for i in range(3000):
    found += Bundle(Spec()).magic() == b"\\0asm\\1\\0\\0\\0"
    path = find_program(root, "/prog", Spec.process)
    if path:
        try:
            read_module(path, "prog", root)
        except Exception:
            pass
stop = True
print("done", found)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("done"), r.stderr[-2000:]


def test_an_oci_layout_s_fifo_device_link_or_oversized_blob_is_refused_in_one_line(images, busybox_archive, tmp_path):
    """`mrun load DIR` reads an OCI layout directory someone else made (unpacked from a download,
    say). Its index.json or a blob as a fifo held the load forever; a blob linked to /dev/zero, or
    a sparse file far larger than its manifest says, was copied into the store until the disk was
    full (5.8 GB in 10 s here), the size checked only at the end. Now only regular files inside the
    directory are read, and no more of a blob than its manifest gives: one line, nothing kept."""
    from conftest import img

    genuine = tmp_path / "genuine"
    genuine.mkdir()
    subprocess.run(["tar", "-xf", busybox_archive, "-C", str(genuine)], check=True)
    index = json.loads((genuine / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((genuine / "blobs" / "sha256" / manifest_digest).read_text())
    layer = manifest["layers"][0]["digest"].split(":")[1]

    def layout(name: str, change: Any) -> str:
        d = tmp_path / name
        shutil.copytree(genuine, d)
        change(d)
        return str(d)

    def swap(path: pathlib.Path, how: Any) -> None:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        how(path)

    blobs = pathlib.PurePath("blobs", "sha256")
    cases = {
        "index.json a fifo": layout("fifo-index", lambda d: swap(d / "index.json", os.mkfifo)),
        "manifest a fifo": layout("fifo-manifest", lambda d: swap(d / blobs / manifest_digest, os.mkfifo)),
        "layer a link to /dev/zero": layout("zero-layer", lambda d: swap(d / blobs / layer,
                                                                         lambda p: os.symlink("/dev/zero", p))),
        "layer far larger than its manifest says": layout("sparse-layer", lambda d: os.truncate(d / blobs / layer,
                                                                                                64 << 30)),
        "blobs a link out of the layout": layout("linked-blobs", lambda d: swap(
            d / "blobs", lambda p: os.symlink(os.path.relpath(genuine / "blobs", d), p))),
    }
    for case, path in cases.items():
        r = img(images, "load", path, timeout=30)
        assert r.returncode == 1, (case, r.returncode, r.stderr)
        one_line_error(r)
        blob_dir = os.path.join(images.image_root, "blobs", "sha256")
        kept = [n for n in os.listdir(blob_dir) if ".part-" in n] if os.path.isdir(blob_dir) else []
        assert not kept, (case, kept)
    assert img(images, "images", "-q").stdout == ""


def test_unmounting_a_rootfs_never_follows_a_link_to_someone_else_s_mount(tmp_path):
    """Every undo of a rootfs mount (the shim's Delete and its `delete` after a killed daemon, a
    failed create, `mrun rm`) detaches what is stacked on <bundle>/rootfs. A link there (put in
    place after the mount, or by a hostile bundle) led the detach to the mount it pointed at: a
    tmpfs of someone else's here, the node's / at worst. Only the path itself is unmounted."""
    from mrun.kernel import syscalls as sc

    elsewhere, link = tmp_path / "elsewhere", tmp_path / "rootfs"
    elsewhere.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "someone-else-s", str(elsewhere)], check=True)
    try:
        (elsewhere / "theirs").write_text("kept")
        link.symlink_to(elsewhere)
        sc.unmount_all(str(link))
        assert (elsewhere / "theirs").read_text() == "kept", "the mount the link pointed at was detached"
    finally:
        sc.unmount_all(str(elsewhere))
