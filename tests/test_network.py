"""Networking on real netlink and nftables, on loopback and private namespaces only: bridge
networks, published ports, shared namespaces (Linux and wasm), concurrent IPAM, clean-up."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from busybox_bundle import make_oci_archive, make_rootfs
from conftest import (
    IMAGE,
    LARGEST_RSS,
    img,
    img_ok,
    one_line_error,
    play_a_reboot,
    remove_under_mrun,
    run_args,
    veths_left,
)

HTTPD = "mkdir -p /www && echo hello-{tag} > /www/index.html && exec httpd -f -p {listen} -h /www"
WGET = "for i in $(seq 20); do wget -q -O - {url} && exit 0; sleep 0.2; done; exit 1"  # the server may be starting


@pytest.fixture
def net(images, busybox_archive, tmp_path):
    """A private network root and one network in it; afterwards: no bridge, veth, lease or rule left."""
    h = images
    forwarding = open("/proc/sys/net/ipv4/ip_forward").read()  # bridge networks turn it on: put it back
    h.env = {"MRUN_NETWORK_ROOT": str(tmp_path / "networks")}
    h.net = f"t{uuid.uuid4().hex[:6]}"
    img_ok(h, "load", busybox_archive)
    img_ok(h, "network", "create", h.net, env=h.env)
    bridge = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["bridge"]
    try:
        yield h
    finally:
        containers = os.path.join(h.image_root, "containers")
        for cid in os.listdir(containers) if os.path.isdir(containers) else []:
            img(h, "rm", "--force", cid, env=h.env)
        leftovers = leases(h)
        img(h, "network", "prune", env=h.env)
        bridge_left = os.path.exists(f"/sys/class/net/{bridge}")
        if bridge_left:  # even a failed test leaves the host as it found it
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(forwarding)
    assert not leftovers, f"leases left behind: {leftovers}"
    assert not bridge_left, f"bridge {bridge} left behind"
    assert not veths_left(), "veths left behind"
    assert not guards_left(), "ports of removed containers left in the bridge table"
    assert "mrun-ctr" not in nft_rules() and f"mrun-net:{h.net}" not in nft_rules()


def test_a_networks_first_start_imports_no_netlink_library(net):
    """mrun speaks netlink itself (network.netlink): a library for it (pyroute2: ~0.3 s, and
    ~14 MiB of heap that every fork of the warm template would copy page tables for) is paid by
    nothing. Cold, the first start on a new network makes its bridge, gateway address and
    masquerade rules, a published port's rules, and its removal lists and deletes them."""
    from test_startup import imported

    h = net
    env = {**h.env, "MRUN_WARM": "0"}
    base = ["--root", h.root, "--image-root", h.image_root]
    run = run_args(h, "--rm", "--network", h.net, "-p", "127.0.0.1:18093:80", IMAGE, "true")
    mods = imported([*base, *run], env)
    assert "mrun.network.rtnl" in mods, "the start did not reach the network set-up"
    assert not {m for m in mods if m.split(".")[0] in ("pyroute2", "pr2modules")}
    bridge = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["bridge"]
    assert os.path.isdir(f"/sys/class/net/{bridge}/bridge")
    assert f"mrun-net:{h.net}" in nft_rules() and "mrun-ctr" not in nft_rules()


def guards_left() -> list[int]:
    """The ports mrun's bridge table holds to their addresses (portguard) that no link is now."""
    from mrun.network import portguard

    return portguard.gone_ports()


def nft_rules() -> str:
    return subprocess.run(["nft", "list", "table", "ip", "mrun"], capture_output=True, text=True).stdout


def net_tag(h) -> str:
    """The comment on the test network's rules (its name and its network root's hash)."""
    from mrun.network.store import network_tag

    return network_tag(h.env["MRUN_NETWORK_ROOT"], h.net)


def leases(h) -> list[str]:
    d = os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "leases")
    return os.listdir(d) if os.path.isdir(d) else []


def ip_of(h, cid: str) -> str:
    return json.loads(img_ok(h, "inspect", cid).stdout)["network"]["ip"]


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free ports, below the kernel's ephemeral range: a port in
    that range can be taken at any moment as the local end of some connection on this host (one
    was, in a CI run: "-p 58322/tcp: port already in use")."""
    import random

    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
    for _ in range(100):
        first = random.randrange(10000, ephemeral - count)
        try:
            with contextlib.ExitStack() as held:
                for port in range(first, first + count):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise AssertionError(f"no {count} consecutive free ports below {ephemeral}")


def wait_http(url: str, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_ps_filters_publish_and_expose_as_docker_s(net):
    """docker's `ps --filter publish=PORT[/PROTO]` and `expose=` (FIRST-LAST too; tcp where no
    protocol is said), of the container's side: the containers that publish such a port (-p, -P),
    or expose it (their image's ExposedPorts, --expose, and what they publish); stopped ones too
    with -a, as docker keeps them in their config. A host port or a bad range is one line. Were
    refused as unknown keys."""
    h = net
    base = ["--network", h.net]
    img_ok(h, "create", "--cgroup-parent", h.cgroup_parent, *base, "--name", "pc", "-p", "18094:80",
           "-p", "18095:53/udp", IMAGE, "true", env=h.env)
    img_ok(h, "create", "--cgroup-parent", h.cgroup_parent, "--network", "none", "--name", "ec",
           "--expose", "7000-7002", IMAGE, "true", env=h.env)
    img_ok(h, "commit", "--change", "EXPOSE 9000/udp", "ec", "localhost/exposing:1", env=h.env)
    try:
        img_ok(h, "create", "--cgroup-parent", h.cgroup_parent, "--network", "none", "--name", "ic",
               "localhost/exposing:1", "true", env=h.env)

        def names(*filters: str) -> list[str]:
            args = [a for f in filters for a in ("--filter", f)]
            return sorted(img_ok(h, "ps", "-a", *args, "--format", "{{.Names}}", env=h.env).stdout.split())

        assert names("publish=80") == names("publish=79-81") == names("publish=80/tcp") == ["pc"]
        assert names("publish=53") == [] and names("publish=53/udp") == ["pc"]
        assert names("publish=18094") == []  # the container's port, not the host's
        assert names("expose=9000/udp") == ["ic"] and names("expose=9000") == []
        assert names("expose=7001") == ["ec", "ic"]  # ec's --expose, kept by its commit (ic's image), as docker's
        assert names("expose=80") == ["pc"]  # what it publishes it exposes
        assert names("expose=7000", "expose=80") == ["ec", "ic", "pc"]  # one key's values: any may match
        # docker's commit keeps what its container exposes: the image's, --expose's, what it publishes
        img_ok(h, "commit", "pc", "localhost/exposing:2", env=h.env)
        shown = img_ok(h, "image", "inspect", "-f", "{{json .Config.ExposedPorts}}", "localhost/exposing:1",
                       "localhost/exposing:2", env=h.env).stdout.split()
        assert [sorted(json.loads(e)) for e in shown] == [["7000/tcp", "7001/tcp", "7002/tcp", "9000/udp"],
                                                          ["53/udp", "80/tcp"]]
        one_line_error(img(h, "ps", "--filter", "publish=127.0.0.1:80", env=h.env), "should not contain ':'")
        one_line_error(img(h, "ps", "--filter", "expose=0-70000", env=h.env), "expose=0-70000")
        one_line_error(img(h, "ps", "--filter", "publish=²", env=h.env), "publish=²")
    finally:
        img(h, "rm", "-f", "pc", "ec", "ic", env=h.env)
        img(h, "rmi", "localhost/exposing:1", "localhost/exposing:2", env=h.env)


def test_two_bridge_containers_talk_over_tcp(net):
    h = net
    img_ok(
        h,
        *run_args(
            h, "-d", "--name", "srv", "--network", h.net, IMAGE, "sh", "-c", HTTPD.format(tag="srv", listen="8000")
        ),
        env=h.env,
    )
    srv = ip_of(h, "srv")
    r = img(
        h,
        *run_args(
            h,
            "--rm",
            "--network",
            h.net,
            IMAGE,
            "sh",
            "-c",
            WGET.format(url=f"http://{srv}:8000/index.html"),
        ),
        env=h.env,
    )
    assert r.returncode == 0 and r.stdout == "hello-srv\n", r.stderr
    r = img(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "cat", "/etc/hosts", "/etc/hostname"), env=h.env)
    assert "127.0.0.1\tlocalhost" in r.stdout


def test_add_host_and_dns_flags_shape_the_container_s_files_as_docker_s_do(net):
    """docker's --add-host (NAME:IP, NAME=IP, IPv6, host-gateway: the network's gateway) and
    --dns/--dns-search/--dns-option; a value that would start another line or field of those files
    is refused in one line, from the flags and from a bundle's annotations alike."""
    h = net
    gateway = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["gateway"]
    r = img_ok(h, *run_args(h, "--rm", "--network", h.net, "--add-host", "db:10.1.2.3", "--add-host", "gw=host-gateway",
                            "--add-host", "six:2001:db8::1", "--dns", "192.0.2.53", "--dns-search", "example.com",
                            "--dns-option", "ndots:2", IMAGE, "sh", "-c", "tail -n 3 /etc/hosts; cat /etc/resolv.conf"),
               env=h.env)
    assert r.stdout.splitlines() == ["10.1.2.3\tdb", f"{gateway}\tgw", "2001:db8::1\tsix", "nameserver 192.0.2.53",
                                     "search example.com", "options ndots:2"], r.stdout
    for flag, value, needle in (("--add-host", "two words:1.2.3.4", "NAME:IP expected"),
                                ("--add-host", "x:1.2.3", "is not an IP address"),
                                ("--dns", "192.0.2.1\nnameserver 10.0.0.1", "is not an IP address"),
                                ("--dns-search", "a.com\noptions x", "a domain name expected"),
                                ("--dns-option", "ndots:1 rotate", "an option of resolv.conf")):
        one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, flag, value, IMAGE, "true"), env=h.env),
                       flag, needle)
    one_line_error(img(h, *run_args(h, "--rm", "--network", "none", "--dns", "192.0.2.53", IMAGE, "true"),
                       env=h.env), "--dns", "bridge networks")
    r = img(h, *run_args(h, "--rm", "--network", h.net, "--annotation", "org.mrun.network.hosts=x=1.2.3.4\n5.6.7.8",
                         IMAGE, "true"), env=h.env)
    one_line_error(r, "is not an IP address")
    # docker's older spellings: --net, --net-alias, --dns-opt (each was "No such option")
    img_ok(h, *run_args(h, "-d", "--name", "aliased", "--net", h.net, "--net-alias", "other", IMAGE, "sleep", "60"),
           env=h.env)
    r = img_ok(h, *run_args(h, "--rm", f"--net={h.net}", "--dns-opt", "ndots:3", IMAGE, "sh",
                            "-c", "grep -c ' other' /etc/hosts; tail -n 1 /etc/resolv.conf"), env=h.env)
    assert r.stdout == "1\noptions ndots:3\n", r.stdout
    img_ok(h, "rm", "-f", "aliased", env=h.env)
    assert not leases(h)


def test_a_published_port_on_127_0_0_1_reaches_httpd(net):
    h = net
    port = free_port_run(1)
    img_ok(
        h,
        *run_args(
            h,
            "-d",
            "--name",
            "web",
            "--network",
            h.net,
            "-p",
            f"127.0.0.1:{port}:80",
            IMAGE,
            "sh",
            "-c",
            HTTPD.format(tag="web", listen="80"),
        ),
        env=h.env,
    )
    assert wait_http(f"http://127.0.0.1:{port}/index.html") == b"hello-web\n"
    assert f"dport {port}" in nft_rules()
    # docker's --format fields name the port and the network
    shown = img_ok(h, "ps", "--format", "{{.Ports}} {{.Networks}}", env=h.env).stdout.split()
    assert shown == [f"127.0.0.1:{port}->80/tcp", h.net]
    listed = img_ok(h, "network", "ls", "--format", "{{.Name}} {{.Driver}}", env=h.env).stdout.split()
    assert listed == [h.net, "bridge"]
    assert img_ok(h, "network", "ls", "-q", env=h.env).stdout.split() == [h.net]
    one_line_error(img(h, "network", "ls", "--format", "{{.Pid}}", env=h.env), "--format", "no field 'Pid'")
    # docker's network inspect --format (and -f): the format was dropped (--format) or refused (-f)
    doc = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)
    ip = next(iter(doc["leases"]))
    for flag in ("--format", "-f"):
        shown = img_ok(h, "network", "inspect", flag, "{{.Name}} {{.Driver}} {{json .IPAM.Config}} {{.Internal}}",
                       h.net, env=h.env).stdout
        assert shown == f'{h.net} bridge [{{"Subnet":"{doc["subnet"]}","Gateway":"{doc["gateway"]}"}}] false\n', shown
    containers = json.loads(img_ok(h, "network", "inspect", "-f", "{{json .Containers}}", h.net, env=h.env).stdout)
    assert [c["Name"] for c in containers.values()] == ["web"], containers
    assert containers["web"]["IPv4Address"] == f"{ip}/{doc['subnet'].split('/')[1]}"
    one_line_error(img(h, "network", "inspect", "-f", "{{.Pid}}", h.net, env=h.env), "no field 'Pid'")
    # the reads of a container's address scripts write (Go's range and index: "not supported" before)
    for template in ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                     f'{{{{(index .NetworkSettings.Networks "{h.net}").IPAddress}}}}'):
        assert img_ok(h, "inspect", "-f", template, "web", env=h.env).stdout == f"{ip}\n", template
    assert img_ok(h, "network", "ls", "--format", '{{.Name}}={{.Label "none"}}|', env=h.env).stdout == f"{h.net}=|\n"
    img_ok(h, "rm", "--force", "web", env=h.env)
    assert f"dport {port}" not in nft_rules()


def test_ports_without_a_host_port_and_publish_all_get_free_host_ports(net, tmp_path):
    """docker's `-p 127.0.0.1::80` and `-P` (the image's ExposedPorts and --expose, but what -p
    publishes already): the host chooses free ports, recorded, shown by `mrun port` and `ps`, and
    reaching the server; released with the container. `-p 80` used to be refused."""
    h = net
    make_rootfs(str(tmp_path / "rootfs"))
    archive = make_oci_archive(str(tmp_path / "rootfs"), str(tmp_path), "localhost/exposing:1", ["sh"],
                               ["PATH=/bin"], exposed=["80/tcp", "8125/udp"])
    img_ok(h, "load", archive)
    img_ok(h, *run_args(h, "-d", "--name", "pub", "--network", h.net, "-P", "--expose", "81", "-p", "127.0.0.1::80",
                        "localhost/exposing:1", "sh", "-c", HTTPD.format(tag="pub", listen="80")), env=h.env)
    try:
        lines = img_ok(h, "port", "pub", env=h.env).stdout.splitlines()
        mapped = dict(line.split(" -> ") for line in lines)
        assert sorted(mapped) == ["80/tcp", "81/tcp", "8125/udp"], lines
        assert mapped["80/tcp"].startswith("127.0.0.1:") and mapped["81/tcp"].startswith("0.0.0.0:")
        host_port = int(mapped["80/tcp"].rpartition(":")[2])
        assert img_ok(h, "port", "pub", "80/tcp", env=h.env).stdout.strip() == f"127.0.0.1:{host_port}"
        assert wait_http(f"http://127.0.0.1:{host_port}/index.html") == b"hello-pub\n"
        assert f"127.0.0.1:{host_port}->80/tcp" in img_ok(h, "ps", "--format", "{{.Ports}}", env=h.env).stdout
        assert all(f"dport {m.rpartition(':')[2]}" in nft_rules() for m in mapped.values())
        one_line_error(img(h, "port", "pub", "82", env=h.env), "no public port '82/tcp'")
        ports = json.loads(img_ok(h, "inspect", "-f", "{{json .NetworkSettings.Ports}}", "pub", env=h.env).stdout)
        assert ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]
    finally:
        img_ok(h, "rm", "--force", "pub", env=h.env)
    assert f"dport {host_port}" not in nft_rules()
    assert not os.listdir(os.path.join(h.env["MRUN_NETWORK_ROOT"], "ports"))  # every reservation released


def _four_free_ports() -> int:
    """The first of four consecutive ports nobody listens on, below the ephemeral range (so no
    outgoing connection takes one meanwhile), starting somewhere of our own."""
    start = 20000 + (os.getpid() * 7) % 12000
    for base in range(start, start + 400, 4):
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + 4):
                    s = stack.enter_context(socket.socket())
                    s.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
    raise AssertionError("no four consecutive free ports found")


def test_port_ranges_publish_as_docker_s_do(net, tmp_path):
    """docker's -p ranges: `A-B:C-D` publishes each pair, `C-D` each with a free host port,
    `A-B:C` one, on the first host port of the range nobody holds (here the first is taken by a
    listener). mrun refused them all ("[host_ip:][host_port:]container_port expected"). A range
    that ends before it starts, or two of different lengths, is one line naming it."""
    h = net
    base = _four_free_ports()
    held = socket.socket()
    held.bind(("127.0.0.1", base + 2))
    held.listen()
    try:
        img_ok(h, *run_args(h, "-d", "--name", "ranges", "--network", h.net, "-p", f"127.0.0.1:{base}-{base + 1}:80-81",
                            "-p", f"127.0.0.1:{base + 2}-{base + 3}:82", "-p", "127.0.0.1::90-91", IMAGE, "sh", "-c",
                            HTTPD.format(tag="ranges", listen="82")), env=h.env)
        try:
            lines = img_ok(h, "port", "ranges", env=h.env).stdout.splitlines()
            mapped = dict(line.split(" -> ") for line in lines)
            assert sorted(mapped) == ["80/tcp", "81/tcp", "82/tcp", "90/tcp", "91/tcp"], lines
            assert mapped["80/tcp"] == f"127.0.0.1:{base}" and mapped["81/tcp"] == f"127.0.0.1:{base + 1}"
            assert mapped["82/tcp"] == f"127.0.0.1:{base + 3}", mapped  # base + 2 is held: the next one
            assert wait_http(f"http://127.0.0.1:{base + 3}/index.html") == b"hello-ranges\n"
        finally:
            img_ok(h, "rm", "--force", "ranges", env=h.env)
    finally:
        held.close()
    assert f"dport {base + 3}" not in nft_rules()
    assert not os.listdir(os.path.join(h.env["MRUN_NETWORK_ROOT"], "ports"))
    for form, words in ((f"{base}-{base + 2}:80-81", "not as long"),
                        (f"{base + 1}-{base}:80", "ends before it starts")):
        one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, "-p", form, IMAGE, "true"), env=h.env), words)


def test_a_port_or_address_a_killed_run_left_is_taken_by_the_next_run(net):
    """A run killed between reserving a host port (or leasing an address) and naming it in its
    plan leaves the reservation behind, and so does a reboot (the state under /run is gone, the
    network root stays). The next `run -p PORT` failed with "internal error: DecodeError" (a
    reservation cut short: empty) or "already published by container 'gone'" until someone ran
    `system prune`; docker's next run just works. Now a reservation or lease whose container has
    no state is taken over; a live container's is still refused in one line, and a reservation
    that is no JSON object is read as no one's."""
    h = net
    base = _four_free_ports()
    ports = os.path.join(h.env["MRUN_NETWORK_ROOT"], "ports")
    os.makedirs(ports, exist_ok=True)
    gone = json.dumps({"root": h.root, "container": "gone"})
    for port, content in ((base, ""), (base + 1, gone), (base + 2, "[1]")):
        with open(os.path.join(ports, f"tcp-127.0.0.1-{port}"), "w") as f:
            f.write(content)
    import ipaddress

    network = ipaddress.ip_network(json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"])
    want = str(network.network_address + 78)
    with open(os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "leases", want), "w") as f:
        f.write(gone)
    img_ok(h, *run_args(h, "-d", "--name", "heir", "--network", h.net, "--ip", want, "-p", f"127.0.0.1:{base}:80",
                        "-p", f"127.0.0.1:{base + 1}:81", "-p", f"127.0.0.1:{base + 2}:82", IMAGE, "sleep", "600"),
           env=h.env)
    try:
        mapped = dict(line.split(" -> ") for line in img_ok(h, "port", "heir", env=h.env).stdout.splitlines())
        assert mapped == {"80/tcp": f"127.0.0.1:{base}", "81/tcp": f"127.0.0.1:{base + 1}",
                          "82/tcp": f"127.0.0.1:{base + 2}"}, mapped
        assert img_ok(h, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "heir", env=h.env).stdout.strip() == want
        for entry in os.listdir(ports):
            with open(os.path.join(ports, entry)) as f:
                assert json.load(f)["container"] == "heir", entry
        one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, "-p", f"127.0.0.1:{base}:80", IMAGE, "true"),
                           env=h.env), f"-p {base}/tcp", "already published by container 'heir'")
        one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, "--ip", want, IMAGE, "true"), env=h.env),
                       f"--ip {want}", "already the address of container 'heir'")
    finally:
        img_ok(h, "rm", "--force", "heir", env=h.env)
    assert not os.listdir(ports) and not leases(h)


def test_ip_gives_a_container_the_address_asked_for_as_docker_s_does(net):
    """docker's --ip on a network of one's own: the container has that address (its eth0, its
    /etc/hosts, inspect), and a second container asking for it, an address outside the subnet,
    the gateway, or --ip on the default network or none, is one line naming --ip; nothing is
    leased after. mrun had no --ip: compose files with ipv4_address could not be run."""
    h = net
    import ipaddress

    network = ipaddress.ip_network(json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"])
    want = str(network.network_address + 77)
    gateway = str(network.network_address + 1)
    img_ok(h, *run_args(h, "-d", "--name", "fixed", "--network", h.net, "--ip", want, IMAGE, "sleep", "600"), env=h.env)
    try:
        shown = img_ok(h, "exec", "fixed", "sh", "-c", "ip -4 -o addr show eth0; cat /etc/hosts", env=h.env).stdout
        assert f"inet {want}/" in shown and f"{want}\t" in shown, shown
        assert img_ok(h, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "fixed", env=h.env).stdout.strip() == want
        one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, "--ip", want, IMAGE, "true"), env=h.env),
                       f"--ip {want}", "already the address of container")
    finally:
        img_ok(h, "rm", "--force", "fixed", env=h.env)
    outside = str(network.broadcast_address + 1)
    for flags, words in ((["--network", h.net, "--ip", outside], "not an address"),
                         (["--network", h.net, "--ip", gateway], "not an address"),
                         (["--network", h.net, "--ip", "10.1.2"], "an IPv4 address expected"),
                         (["--network", "bridge", "--ip", want], "not with --network bridge"),
                         (["--network", "none", "--ip", want], "not with --network none")):
        one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true"), env=h.env), "--ip", words)
    assert not leases(h)


def test_network_create_takes_docker_s_ip_range_and_aux_addresses(net):
    """docker's `network create --subnet S --ip-range R --aux-address NAME=IP` (compose's ipam
    ip_range and aux_addresses), unknown before: containers' addresses come from the range alone
    (an --ip may be anywhere in the subnet, docker's way of keeping static ones apart), and an aux
    address is given to no container, even asked for. inspect shows both; a range or address
    outside the subnet, or either without --subnet, is one line; a network.json forged to hold a
    range outside its subnet is refused as it is read."""
    import ipaddress

    h = net
    name = f"r{uuid.uuid4().hex[:6]}"
    img_ok(h, "network", "create", name, env=h.env)  # a subnet free on this host, then made again
    subnet = ipaddress.ip_network(json.loads(img_ok(h, "network", "inspect", name, env=h.env).stdout)["subnet"])
    img_ok(h, "network", "rm", name, env=h.env)
    hosts = list(subnet.hosts())
    pool = ipaddress.ip_network(f"{hosts[127]}/29", strict=False)  # .128-.135
    aux = str(pool.network_address + 1)
    img_ok(h, "network", "create", "--subnet", str(subnet), "--ip-range", str(pool), "--aux-address", f"router={aux}",
           "--aux-address", f"printer={hosts[4]}", name, env=h.env)
    try:
        ipam = json.loads(img_ok(h, "network", "inspect", "-f", "{{json .IPAM.Config}}", name, env=h.env).stdout)
        assert ipam[0]["IPRange"] == str(pool) and ipam[0]["AuxiliaryAddresses"] == {"router": aux,
                                                                                  "printer": str(hosts[4])}, ipam
        for cid in ("a", "b"):
            img_ok(h, *run_args(h, "-d", "--name", cid, "--network", name, IMAGE, "sleep", "600"), env=h.env)
        addresses = [_interfaces(h, cid)["eth0"].split("/")[0] for cid in ("a", "b")]
        assert addresses == [str(pool.network_address), str(pool.network_address + 2)], addresses  # aux passed over
        img_ok(h, *run_args(h, "-d", "--name", "c", "--network", name, "--ip", str(hosts[9]), IMAGE, "sleep", "600"),
               env=h.env)
        one_line_error(img(h, *run_args(h, "--rm", "--network", name, "--ip", str(hosts[4]), IMAGE, "true"),
                           env=h.env), "aux-addresses")
    finally:
        img(h, "rm", "-f", "a", "b", "c", env=h.env)
    definition = os.path.join(h.env["MRUN_NETWORK_ROOT"], name, "network.json")
    with open(definition) as f:
        forged = json.load(f)
    with open(definition, "w") as f:
        json.dump({**forged, "ip_range": "192.0.2.0/24"}, f)
    one_line_error(img(h, "network", "inspect", name, env=h.env), "ip_range")
    with open(definition, "w") as f:
        json.dump(forged, f)
    img_ok(h, "network", "rm", name, env=h.env)
    for args, words in ((["--ip-range", str(pool), name], "goes with --subnet"),
                        (["--aux-address", f"x={aux}", name], "goes with --subnet"),
                        (["--subnet", str(subnet), "--ip-range", "10.255.255.0/28", name], "no matching subnet"),
                        (["--subnet", str(subnet), "--aux-address", "x=10.255.255.1", name], "no matching subnet"),
                        (["--subnet", str(subnet), "--aux-address", f"x={hosts[0]}", name], "gateway"),
                        (["--subnet", str(subnet), "--aux-address", "x", name], "NAME=IP")):
        one_line_error(img(h, "network", "create", *args, env=h.env), words)
    one_line_error(img(h, "network", "ls", "--ip-range", str(pool), env=h.env), "create's")
    assert name not in img_ok(h, "network", "ls", "-q", env=h.env).stdout.split()


def test_network_create_takes_docker_s_driver_and_gateway_and_rm_takes_several(net):
    """`docker network create -d bridge --subnet S --gateway G NAME` and `docker network rm A B`:
    mrun had neither -d nor --gateway (a usage error) and removed one network per call. The
    gateway is the bridge's address and the containers' default route; rm goes on past a network
    it cannot remove and says so, exit 1."""
    import ipaddress

    h = net
    name, other = f"g{uuid.uuid4().hex[:6]}", f"o{uuid.uuid4().hex[:6]}"
    img_ok(h, "network", "create", name, env=h.env)  # a subnet free on this host, then made again with a gateway
    subnet = ipaddress.ip_network(json.loads(img_ok(h, "network", "inspect", name, env=h.env).stdout)["subnet"])
    img_ok(h, "network", "rm", name, env=h.env)
    gateway = str(subnet.broadcast_address - 1)
    img_ok(h, "network", "create", "-d", "bridge", "--subnet", str(subnet), "--gateway", gateway, name, env=h.env)
    img_ok(h, "network", "create", "--driver", "bridge", other, env=h.env)
    bridges = [json.loads(img_ok(h, "network", "inspect", n, env=h.env).stdout)["bridge"] for n in (name, other)]
    r = img_ok(h, *run_args(h, "--rm", "--network", name, IMAGE, "ip", "route"), env=h.env)
    assert f"default via {gateway}" in r.stdout, r.stdout
    assert f"inet {gateway}/" in subprocess.run(["ip", "-4", "addr", "show", "dev", bridges[0]], capture_output=True,
                                                 text=True).stdout
    r = img(h, "network", "rm", name, "nosuch", other, env=h.env)
    assert r.returncode == 1 and r.stdout.split() == [name, other], r
    one_line_error(r, "'nosuch' not found")
    assert not any(os.path.exists(f"/sys/class/net/{b}") for b in bridges)
    assert name not in img_ok(h, "network", "ls", "-q", env=h.env).stdout.split()
    for args, words in ((["-d", "macvlan", name], "bridge is the one driver"),
                        (["--gateway", gateway, name], "goes with --subnet"),
                        (["--subnet", str(subnet), "--gateway", str(subnet.network_address), name],
                         "not a host address")):
        one_line_error(img(h, "network", "create", *args, env=h.env), words)
    one_line_error(img(h, "network", "inspect", h.net, name, env=h.env), "one network at a time")


def test_an_internal_network_reaches_nothing_beyond_itself(net):
    """docker's `network create --internal` (compose's `internal: true`): its containers reach
    each other and the host's address on their bridge, have no default route, and nothing is
    forwarded between their bridge and anywhere else, even for one that makes itself a route
    (NET_ADMIN); no port of it is published. mrun refused the flag. Its rules are drops in a
    forward chain of mrun's table, gone with the network; without them the same fetch goes
    through (the test's own control: this host forwards between bridges)."""
    from mrun.network import firewall
    from mrun.network.store import network_tag

    h = net
    inside = f"i{uuid.uuid4().hex[:6]}"
    img_ok(h, "network", "create", "--internal", inside, env=h.env)
    doc = json.loads(img_ok(h, "network", "inspect", inside, env=h.env).stdout)
    assert doc["internal"] is True
    try:
        for name, network, extra in (("in1", inside, ["--cap-add", "NET_ADMIN"]), ("in2", inside, []),
                                     ("out", h.net, [])):
            img_ok(h, *run_args(h, "-d", "--name", name, "--network", network, *extra, IMAGE, "sh", "-c",
                                HTTPD.format(tag=name, listen="8000")), env=h.env)
        assert "default" not in img_ok(h, "exec", "in1", "ip", "route", env=h.env).stdout
        assert img_ok(h, "exec", "in1", "sh", "-c", WGET.format(url=f"http://{ip_of(h, 'in2')}:8000/index.html"),
                      env=h.env).stdout == "hello-in2\n"  # on its own bridge: not forwarded
        img_ok(h, "exec", "in1", "ping", "-c", "1", "-W", "2", doc["gateway"], env=h.env)
        img_ok(h, "exec", "out", "sh", "-c", WGET.format(url="http://127.0.0.1:8000/index.html"), env=h.env)  # up
        fetch = "timeout 3 wget -q -O - http://{}:8000/index.html"  # (this busybox's wget -T crashes)
        assert img(h, "exec", "in1", "sh", "-c", fetch.format(ip_of(h, "out")), env=h.env).returncode != 0
        img_ok(h, "exec", "in1", "ip", "route", "add", "default", "via", doc["gateway"], env=h.env)
        for source, target in (("in1", "out"), ("out", "in1")):
            r = img(h, "exec", source, "sh", "-c", fetch.format(ip_of(h, target)), env=h.env)
            assert r.returncode != 0, f"{source} reached {target}: {r.stdout}"
        rules = nft_rules()
        assert f'iifname "{doc["bridge"]}" oifname != "{doc["bridge"]}" drop' in rules, rules
        assert f"ip saddr {doc['subnet']}" not in rules  # no masquerade: no way out
        one_line_error(img(h, *run_args(h, "--rm", "--network", inside, "-p", "8080:80", IMAGE, "true"), env=h.env),
                       "is internal")
        one_line_error(img(h, "network", "ls", "--internal", env=h.env), "--internal is create's")
        assert firewall.remove(network_tag(h.env["MRUN_NETWORK_ROOT"], inside)) == 3  # the control (and
        assert firewall.remove(net_tag(h)) == 6  # out's network's isolation, masquerade, guard, inbound)
        assert img_ok(h, "exec", "in1", "sh", "-c", fetch.format(ip_of(h, "out")), env=h.env).stdout == "hello-out\n"
    finally:
        for name in ("in1", "in2", "out"):
            img(h, "rm", "--force", name, env=h.env)
    img_ok(h, "network", "rm", inside, env=h.env)
    assert doc["bridge"] not in nft_rules()


# One IPv6 router advertisement of the prefix fd99:6::/64 (router lifetime 0: no default route is
# offered, so even the code this test catches leaves the host's routes alone), sent as a raw
# Ethernet frame out of eth0, as a container with docker's default CAP_NET_RAW can.
ROUTER_ADVERTISEMENT = """
import socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = s.getsockname()[4]  # (/sys is the host's: it names the host's interfaces)
src = b"\\xfe\\x80" + bytes(6) + bytes([mac[0] ^ 2]) + mac[1:3] + b"\\xff\\xfe" + mac[3:]
dst = socket.inet_pton(socket.AF_INET6, "ff02::1")
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0) + struct.pack("!BB", 1, 1) + mac
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 600, 600, 0) + socket.inet_pton(socket.AF_INET6, "fd99:6::")
data = src + dst + struct.pack("!I", len(ra)) + bytes(3) + bytes([58]) + ra
total = sum(struct.unpack(f"!{len(data) // 2}H", data))
while total >> 16:
    total = (total & 0xFFFF) + (total >> 16)
ra = ra[:2] + struct.pack("!H", ~total & 0xFFFF) + ra[4:]
frame = bytes.fromhex("333300000001") + mac + b"\\x86\\xdd" + struct.pack("!IHBB", 6 << 28, len(ra), 58, 255)
for _ in range(3):
    s.send(frame + src + dst + ra)
"""


def test_a_container_s_router_advertisement_reaches_neither_the_host_nor_its_neighbours(net):
    """A container (docker's default capabilities: CAP_NET_RAW) sent an IPv6 router advertisement
    onto its bridge, and the host took it on the bridge (an address in the prefix; with a router
    lifetime, a default route through the container: the host's IPv6 traffic hijacked) as did
    every other container on the network (CVE-2020-13401's kind). As docker's on a network
    without IPv6, neither the bridge nor a container's interface speaks IPv6 now: no link-local
    address either (a container keeps ::1 on lo)."""
    h = net
    for name in ("sender", "neighbour"):
        img_ok(h, *run_args(h, "-d", "--name", name, "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
    bridge = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["bridge"]
    try:
        for name in ("sender", "neighbour"):
            inet6 = img_ok(h, "exec", name, "cat", "/proc/net/if_inet6", env=h.env).stdout.split("\n")
            assert [line.split()[-1] for line in inet6 if line] == ["lo"], inet6
        assert not subprocess.run(["ip", "-6", "addr", "show", "dev", bridge], capture_output=True,
                                  text=True).stdout, "the bridge speaks IPv6"
        pid = json.loads(img_ok(h, "inspect", "sender").stdout)["state"]["pid"]
        subprocess.run(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", ROUTER_ADVERTISEMENT], check=True)
        time.sleep(1.5)  # the kernel configures an address from a router advertisement at once
        host = subprocess.run(["ip", "-6", "addr"], capture_output=True, text=True).stdout
        assert "fd99:6:" not in host, host
        routes = subprocess.run(["ip", "-6", "route", "show", "proto", "ra"], capture_output=True, text=True).stdout
        assert bridge not in routes, routes
        neighbour = img_ok(h, "exec", "neighbour", "cat", "/proc/net/if_inet6", env=h.env).stdout
        assert "fd99" not in neighbour, neighbour
    finally:
        for name in ("sender", "neighbour"):
            img(h, "rm", "--force", name, env=h.env)  # (the bridge, and all it took, go with the network)


# One UDP datagram to 127.0.0.1:PORT through the gateway: a raw Ethernet frame to the bridge's
# MAC address (argv: the bridge's MAC, the port), which the container's own routing would
# never send, as a container with docker's default CAP_NET_RAW can.
TO_THE_HOST_S_LOOPBACK = """
import socket, struct, sys
gateway_mac, port = bytes.fromhex(sys.argv[1].replace(":", "")), int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = s.getsockname()[4]  # (/sys is the host's: it names the host's interfaces)
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe.connect(("10.255.255.1", 9))  # (any address beyond: eth0's own address is the source)
src, dst = socket.inet_aton(probe.getsockname()[0]), socket.inet_aton("127.0.0.1")
payload = b"reached the host's loopback"
udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0) + src + dst
total = sum(struct.unpack("!10H", header))
while total >> 16:
    total = (total & 0xFFFF) + (total >> 16)
header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
for _ in range(3):
    s.send(gateway_mac + mac + b"\\x08\\x00" + header + udp)
"""


def test_a_container_reaches_no_service_on_the_host_s_loopback(net):
    """A bridge has route_localnet=1 (a port published on 127.0.0.1 is DNAT'ed into it from
    the host), which also let the host take a packet for 127.0.0.1 arriving on the bridge: a
    container with CAP_NET_RAW (docker's default) reached every service bound to the host's
    loopback only, a frame to the gateway's MAC address away (CVE-2020-8558's kind). Each
    network's rules drop what arrives on its bridge for 127.0.0.0/8 before anything else sees
    it (the replies of the host's own connections to such a port come to the gateway's address,
    and still pass: test_a_published_port_on_127_0_0_1_reaches_httpd)."""
    h = net
    img_ok(h, *run_args(h, "-d", "--name", "prober", "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
    bridge = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["bridge"]
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(1.5)
        with open(f"/sys/class/net/{bridge}/address") as f:
            gateway_mac = f.read().strip()
        pid = json.loads(img_ok(h, "inspect", "prober").stdout)["state"]["pid"]
        subprocess.run(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", TO_THE_HOST_S_LOOPBACK, gateway_mac,
                        str(listener.getsockname()[1])], check=True)
        with pytest.raises(TimeoutError):
            got = listener.recvfrom(100)
            pytest.fail(f"the host's loopback took {got} from the container")
    finally:
        listener.close()
        img(h, "rm", "--force", "prober", env=h.env)
    # A network an older mrun started has no guard, and its record of the rules seen in place
    # (the ruleset's generation then) holds while nobody changes the ruleset: its shape is
    # in the record now, so the next start looks again and adds the guard.
    from mrun.network import firewall

    def rules_in(chain: str) -> list[str]:
        listing = subprocess.run(["nft", "-a", "list", "chain", "ip", "mrun", chain], capture_output=True,
                                 text=True, check=True).stdout
        return [line.strip() for line in listing.splitlines() if f'"{_tag_of(h, h.net)}"' in line]

    for chain in ("guard", "inbound"):  # (and the inbound rule: test_a_container_s_unpublished_port_is_not_...)
        (handle,) = [rule.rsplit(" # handle ", 1)[1] for rule in rules_in(chain)]
        subprocess.run(["nft", "delete", "rule", "ip", "mrun", chain, "handle", handle], check=True)
    record = os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "rules-seen")
    with open(record) as f:
        boot, netns, _gen, _shape = f.read().split()
    with open(record, "w") as f:
        f.write(f"{boot} {netns} {firewall.generation()}")  # an older mrun's record, of this generation
    img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)
    assert len(rules_in("guard")) == len(rules_in("inbound")) == 1


# One UDP datagram from SOURCE to DESTINATION:PORT, a raw Ethernet frame out of IFACE to the MAC
# address given (argv: the interface, the MAC, the destination, the port, the source): what any
# machine on this host's network can send it.
FROM_A_NEIGHBOUR = """
import socket, struct, sys
iface, to_mac, destination, port, source = sys.argv[1:6]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
mac = s.getsockname()[4]
payload = b"from a neighbour"
udp = struct.pack("!HHHH", 40000, int(port), 8 + len(payload), 0) + payload
header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0)
header += socket.inet_aton(source) + socket.inet_aton(destination)
total = sum(struct.unpack("!10H", header))
while total >> 16:
    total = (total & 0xFFFF) + (total >> 16)
header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
for _ in range(3):
    s.send(bytes.fromhex(to_mac.replace(":", "")) + mac + b"\\x08\\x00" + header + udp)
"""
# What reaches UDP port 80 of the namespace it runs in, within 3 s ("" if nothing).
UDP_LISTENER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 80))
s.settimeout(3)
print("listening", flush=True)
try:
    print(s.recvfrom(100)[0].decode(), flush=True)
except TimeoutError:
    pass
"""


@contextlib.contextmanager
def a_neighbour():
    """A machine on the host's network, played by a namespace of its own on a veth pair to the
    host, no address on either end (none of the host's can be taken). -> send(destination,
    port): a UDP datagram from it to the host's MAC address, for ``destination``."""
    suffix = uuid.uuid4().hex[:6]
    host_end, far_end = f"tnh{suffix}", f"tnf{suffix}"
    neighbour = subprocess.Popen(["unshare", "-n", "sleep", "120"])
    try:
        time.sleep(0.2)  # (unshare has made the namespace by then)
        enter = ["nsenter", "-t", str(neighbour.pid), "-n"]
        for command in (
            ["ip", "link", "add", host_end, "type", "veth", "peer", "name", far_end, "netns", str(neighbour.pid)],
            ["ip", "link", "set", host_end, "up"],
            [*enter, "ip", "link", "set", far_end, "up"],
        ):
            subprocess.run(command, check=True)
        taken = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
        taken += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
        source = next(f"{prefix}.2" for prefix in ("198.51.100", "203.0.113", "100.64.213") if f" {prefix}." not in
                      f" {taken}".replace("\n", " "))  # an address of no network this host knows
        with open(f"/sys/class/net/{host_end}/address") as f:
            host_mac = f.read().strip()

        def send(destination: str, port: int) -> None:
            subprocess.run([*enter, sys.executable, "-c", FROM_A_NEIGHBOUR, far_end, host_mac, destination, str(port),
                            source], check=True)

        yield send
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        neighbour.kill()
        neighbour.wait()


def received(h, container: str, send) -> str:
    """What the container's UDP port 80 gets while ``send()`` runs ("" if nothing)."""
    pid = json.loads(img_ok(h, "inspect", container).stdout)["state"]["pid"]
    listener = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", UDP_LISTENER],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline() == "listening\n"
        send()
        return listener.communicate(timeout=10)[0]
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def test_a_port_published_on_127_0_0_1_is_not_reached_from_the_host_s_network(net):
    """A port published on 127.0.0.1 is for this host's own programs. Its DNAT rule in
    prerouting matched a packet for 127.0.0.1 from anywhere, and DNAT comes before the routing
    that would drop it as a martian: any machine on the host's network reached the container
    by sending to the host's MAC address (docker's moby#45610). Now the rule takes only what
    comes in on lo (the host's own packets are DNAT'ed in output)."""
    h = net
    port = free_port_run(1)
    img_ok(h, *run_args(h, "-d", "--name", "local", "--network", h.net, "-p", f"127.0.0.1:{port}:80/udp", IMAGE,
                        "sleep", "600"), env=h.env)
    try:
        with a_neighbour() as send:
            got = received(h, "local", lambda: send("127.0.0.1", port))
        assert got == "", f"a neighbour reached the container through 127.0.0.1:{port}: {got!r}"
    finally:
        img(h, "rm", "--force", "local", env=h.env)


def test_a_container_s_unpublished_port_is_not_reached_by_routing_through_the_host(net):
    """mrun turns the host's forwarding on, and forwarded anything to a bridge: a machine on the
    host's network that routes the network's subnet through the host reached every port of
    every container on it, published or not (docker 28 closed the same). What comes to a bridge
    from elsewhere is now forwarded only for a published port (a DNAT'ed connection) or as a
    reply to the containers' own connections; a published port is still reached that way."""
    h = net
    port = free_port_run(1)
    img_ok(h, *run_args(h, "-d", "--name", "routed", "--network", h.net, "-p", f"{port}:80/udp", IMAGE,
                        "sleep", "600"), env=h.env)
    try:
        with a_neighbour() as send:
            got = received(h, "routed", lambda: send(ip_of(h, "routed"), 80))
            assert got == "", f"a neighbour reached the container's port 80 at its address: {got!r}"
            host = subprocess.run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True, text=True,
                                  check=True).stdout.split(" src ")[1].split()[0]  # an address of this host's
            got = received(h, "routed", lambda: send(host, port))
            assert got == "from a neighbour\n", "the published port is not reached from the host's network"
    finally:
        img(h, "rm", "--force", "routed", env=h.env)


# ARP replies a container with CAP_NET_RAW (docker's default) can send, naming an address as its
# own (argv: the address, the MAC it goes to).
ARP_AS_ANOTHER = """
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = s.getsockname()[4]
claimed, to_mac = socket.inet_aton(sys.argv[1]), bytes.fromhex(sys.argv[2].replace(":", ""))
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mac + claimed + to_mac + bytes(4)
for _ in range(3):
    s.send(to_mac + mac + b"\\x08\\x06" + arp)
"""


def _neighbour(where: list[str], address: str) -> str:
    """The MAC address ``address`` resolves to in a namespace's ARP table ("" if none)."""
    shown = subprocess.run([*where, "ip", "-4", "neigh", "show", address], capture_output=True, text=True,
                           check=True).stdout.split()
    return shown[shown.index("lladdr") + 1] if "lladdr" in shown else ""


def udp_from(pid: str, destination: str, port: int, payload: str) -> None:
    """One UDP datagram sent by the kernel of a container's network namespace (its own address)."""
    send = ("import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[3].encode(), "
            "(sys.argv[1], int(sys.argv[2])))")
    subprocess.run(["nsenter", "-t", pid, "-n", sys.executable, "-c", send, destination, str(port), payload],
                   check=True)


def test_a_container_speaks_on_its_network_only_as_itself(net):
    """A container (docker's default CAP_NET_RAW) answered ARP for a neighbour's address and for
    the gateway's: the host then sent the neighbour's traffic (a published port's, the host's
    own) to it, and the neighbour its way out of the network, a man in the middle for both; and
    it sent packets from any address (past the host's address-based checks). Each port of a
    container now says only its own MAC and address, as libvirt's clean-traffic and Calico's
    anti-spoofing do; one given CAP_NET_ADMIN may change them, and is not held to them. The
    check is put in place before the port exists, and what a killed run left for a port is
    swept: a port is named by its interface index, which names no other link after it, and what
    removed ports left is taken away once a few have gathered, and by the prune verbs."""
    from mrun.network import portguard

    h = net
    gateway = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["gateway"]
    # what removed containers (or killed runs) left: ports that are gone, SWEEP_AT of them
    gone = [2**31 - 1 - i for i in range(portguard.SWEEP_AT)]
    left = "".join(f"add element bridge mrun speakers {{ {index} . 02:00:5e:10:00:99 . 10.255.255.254 }}\n"
                   for index in gone)
    subprocess.run(["nft", "-f", "-"], input="add table bridge mrun\nadd set bridge mrun speakers { type iface_index"
                   " . ether_addr . ipv4_addr; }\n" + left, text=True, check=True)
    assert guards_left() == sorted(gone)
    for name in ("spoofer", "victim"):
        img_ok(h, *run_args(h, "-d", "--name", name, "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert guards_left() == [], "what gone ports left was not swept"
        victim = ip_of(h, "victim")
        pids = {name: str(json.loads(img_ok(h, "inspect", name).stdout)["state"]["pid"])
                for name in ("spoofer", "victim")}
        as_victim = ["nsenter", "-t", pids["victim"], "-n"]
        listener.bind((gateway, 0))
        listener.settimeout(1.5)
        listener.sendto(b"hello", (victim, 9))  # the host learns the victim's MAC, and it the gateway's
        udp_from(pids["victim"], gateway, 9, "hello")
        time.sleep(0.3)
        victim_mac, gateway_mac = _neighbour([], victim), _neighbour(as_victim, gateway)
        assert victim_mac and gateway_mac, (victim_mac, gateway_mac)
        shown = img_ok(h, "inspect", "-f", "{{.NetworkSettings.MacAddress}}", "victim", env=h.env).stdout.strip()
        assert shown == victim_mac == "02:42:" + ":".join(f"{int(o):02x}" for o in victim.split(".")), shown
        time.sleep(1.2)  # past the kernel's ARP locktime: a later answer would be taken
        spoofer = ["nsenter", "-t", pids["spoofer"], "-n", sys.executable, "-c"]
        subprocess.run([*spoofer, ARP_AS_ANOTHER, victim, gateway_mac], check=True)  # "I am the victim", to the host
        subprocess.run([*spoofer, ARP_AS_ANOTHER, gateway, victim_mac], check=True)  # "I am the gateway", to it
        subprocess.run([*spoofer, FROM_A_NEIGHBOUR, "eth0", gateway_mac, gateway, str(listener.getsockname()[1]),
                        victim], check=True)  # a datagram from the victim's address
        time.sleep(0.3)
        assert _neighbour([], victim) == victim_mac, "the host took the spoofer for the victim"
        assert _neighbour(as_victim, gateway) == gateway_mac, "the victim took the spoofer for its gateway"
        with pytest.raises(TimeoutError):
            got = listener.recvfrom(100)
            pytest.fail(f"the host took {got} from the victim's address")
        # its own traffic goes on: the host reaches it, and it the host
        udp_from(pids["spoofer"], gateway, listener.getsockname()[1], "mine")
        assert listener.recvfrom(100)[0] == b"mine"
        # given CAP_NET_ADMIN, a container may take another MAC address for itself, and still talks
        img_ok(h, *run_args(h, "-d", "--name", "admin", "--cap-add", "NET_ADMIN", "--network", h.net, IMAGE,
                            "sleep", "600"), env=h.env)
        img_ok(h, "exec", "admin", "ip", "link", "set", "eth0", "address", "02:00:5e:10:00:42", env=h.env)
        admin = str(json.loads(img_ok(h, "inspect", "admin").stdout)["state"]["pid"])
        udp_from(admin, gateway, listener.getsockname()[1], "admin")
        assert listener.recvfrom(100)[0] == b"admin"
    finally:
        listener.close()
        for name in ("spoofer", "victim", "admin"):
            img(h, "rm", "--force", name, env=h.env)
    assert len(guards_left()) == 2  # (spoofer's and victim's: admin's port was held to nothing)
    img_ok(h, "network", "prune", env=h.env)
    assert guards_left() == []


@contextlib.contextmanager
def a_steady_sender(port: int):
    """A UDP client of this host sending to 127.0.0.1:``port`` every 0.1 s from one source port,
    as a syslog or statsd client does: one flow the kernel keeps."""
    stop = threading.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def send() -> None:
        while not stop.wait(0.1):
            sock.sendto(b"steady", ("127.0.0.1", port))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()
        sock.close()


def _conntrack_table() -> str:
    with open("/proc/net/nf_conntrack") as f:
        return f.read()


def _eventually(check, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def test_a_flow_goes_to_the_container_publishing_its_port_and_to_no_other(net):
    """The kernel NATs a flow once, at its first packet, and keeps that while packets keep coming
    (a UDP client on a fixed port never lets it lapse). A removed container's flows went on to
    its address, and so to the container that took that address next, even once a third
    published the port (moby#8795's kind); and a flow that reached the host port before a
    container published it (no one listening) went on to the host. The flows of a removed
    container's address are deleted before the address is given out again, and a UDP port's
    flows the host took itself once the port is published. A plan forged to name another's
    address cuts none of that one's flows (the lease says whose the address is)."""
    h = net
    port = free_port_run(1)
    base = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"].rsplit(".", 1)[0]
    publish = ["-p", f"127.0.0.1:{port}:80/udp"]
    # the network's rules in place (a container on it): the host tracks connections from then on
    img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)
    with a_steady_sender(port):
        time.sleep(0.3)  # the flow reaches the host port: no one publishes it yet
        img_ok(h, *run_args(h, "-d", "--name", "first", "--network", h.net, "--ip", f"{base}.10", *publish, IMAGE,
                            "sleep", "600"), env=h.env)
        try:
            assert received(h, "first", lambda: None) == "steady\n", "the flow stayed with the host"
            # a forged plan naming first's address: its removal cuts none of first's flows
            img_ok(h, *run_args(h, "-d", "--name", "forger", "--network", h.net, "--ip", f"{base}.12", IMAGE,
                                "sleep", "600"), env=h.env)
            plan = os.path.join(h.root, "forger", "net.json")
            with open(plan) as f:
                forged = json.load(f)
            with open(plan, "w") as f:
                json.dump({**forged, "ip": f"{base}.10"}, f)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as once:  # a flow of first's, kept by none
                once.bind(("127.0.0.1", 0))  # but the kernel: a deletion of it is seen
                once.sendto(b"once", ("127.0.0.1", port))
                flow = f"sport={once.getsockname()[1]} dport={port} "
                assert _eventually(lambda: flow in _conntrack_table()), "the flow is not tracked"
                img_ok(h, "rm", "-f", "forger", env=h.env)
                assert flow in _conntrack_table(), "a forged plan cut another's flow"
            img_ok(h, "system", "prune", env=h.env)  # the forger's own lease, which its plan no longer named
            img_ok(h, "rm", "-f", "first", env=h.env)
            for name, address, flags in (("taker", f"{base}.10", []), ("second", f"{base}.11", publish)):
                img_ok(h, *run_args(h, "-d", "--name", name, "--network", h.net, "--ip", address, *flags, IMAGE,
                                    "sleep", "600"), env=h.env)
            assert received(h, "taker", lambda: None) == "", "the removed container's flow reached its address"
            assert received(h, "second", lambda: None) == "steady\n"
        finally:
            for name in ("first", "forger", "taker", "second"):
                img(h, "rm", "-f", name, env=h.env)


def test_network_create_takes_docker_s_mtu_and_masquerade_options(net):
    """docker's `network create -o` (compose's driver_opts): com.docker.network.driver.mtu sets
    the MTU of the bridge and of its containers' interfaces (a host whose own link carries less
    than 1500 needs it, or large packets go nowhere), enable_ip_masquerade=false leaves the
    network without a way out through the host's addresses; both are shown by inspect. The flag
    was unknown. Any other option, or a value mrun cannot use, is one line naming it, and
    nothing is made; a network.json whose options were forged is refused as it is read."""
    h = net
    name = f"m{uuid.uuid4().hex[:6]}"
    img_ok(h, "network", "create", "-o", "com.docker.network.driver.mtu=1400", "--opt",
           "com.docker.network.bridge.enable_ip_masquerade=false", name, env=h.env)
    doc = json.loads(img_ok(h, "network", "inspect", name, env=h.env).stdout)
    try:
        shown = json.loads(img_ok(h, "network", "inspect", "-f", "{{json .Options}}", name, env=h.env).stdout)
        assert shown["com.docker.network.driver.mtu"] == "1400", shown
        assert shown["com.docker.network.bridge.enable_ip_masquerade"] == "false", shown
        out = img_ok(h, *run_args(h, "--rm", "--network", name, IMAGE, "cat", "/sys/class/net/eth0/mtu"),
                     env=h.env).stdout
        assert out == "1400\n", out
        with open(f"/sys/class/net/{doc['bridge']}/mtu") as f:
            assert f.read() == "1400\n"
        img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)  # the control: its rules
        rules = nft_rules()
        assert f"ip saddr {doc['subnet']}" not in rules, rules  # no masquerade
        assert f"ip saddr {json.loads(img_ok(h, 'network', 'inspect', h.net, env=h.env).stdout)['subnet']}" in rules
    finally:
        img_ok(h, "network", "rm", name, env=h.env)
    for bad, needle in (("com.docker.network.driver.mtu=9x", "an MTU of 68 to 65535"),
                        ("com.docker.network.driver.mtu=70000", "an MTU of 68 to 65535"),
                        ("com.docker.network.bridge.enable_ip_masquerade=maybe", "true or false"),
                        ("com.docker.network.bridge.name=br0", "KEY one of"), ("mtu", "KEY=VALUE expected")):
        one_line_error(img(h, "network", "create", "-o", bad, f"{name}x", env=h.env), needle)
    one_line_error(img(h, "network", "ls", "-o", "com.docker.network.driver.mtu=1400", env=h.env), "create's")
    assert name + "x" not in img_ok(h, "network", "ls", "-q", env=h.env).stdout.split()
    definition = os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "network.json")
    with open(definition) as f:
        forged = json.load(f)
    forged["options"] = {"com.docker.network.driver.mtu": "1; drop table ip mrun"}
    with open(definition, "w") as f:
        json.dump(forged, f)
    one_line_error(img(h, "network", "inspect", h.net, env=h.env), "an MTU of 68 to 65535")
    del forged["options"]
    with open(definition, "w") as f:
        json.dump(forged, f)


def test_container_mode_shares_localhost_and_a_wasm_container_sees_the_same_interfaces(net):
    h = net
    img_ok(
        h,
        *run_args(
            h,
            "-d",
            "--name",
            "owner",
            "--network",
            h.net,
            IMAGE,
            "sh",
            "-c",
            HTTPD.format(tag="local", listen="127.0.0.1:8000"),
        ),
        env=h.env,
    )
    r = img(
        h,
        *run_args(
            h,
            "--rm",
            "--network",
            "container:owner",
            IMAGE,
            "sh",
            "-c",
            WGET.format(url="http://127.0.0.1:8000/index.html"),
        ),
        env=h.env,
    )
    assert r.returncode == 0 and r.stdout == "hello-local\n", r.stderr
    # docker's: the joined container's hostname and its /etc/hosts, resolv.conf and hostname files
    owner_sees = img_ok(h, "exec", "owner", "sh", "-c", "hostname; cat /etc/hosts /etc/resolv.conf", env=h.env).stdout
    r = img_ok(h, *run_args(h, "--rm", "--network", "container:owner", IMAGE, "sh", "-c",
                            "hostname; cat /etc/hosts /etc/resolv.conf; echo $HOSTNAME"), env=h.env)
    assert r.stdout == owner_sees + owner_sees.split("\n", 1)[0] + "\n", r.stdout
    cat = os.path.join(os.path.dirname(__file__), "..", "examples", "wasm", "cat.wasm")
    img_ok(h, "image", "wasm", cat, "localhost/cat:1")
    r = img(h, *run_args(h, "--rm", "--network", "container:owner", "localhost/cat:1", "/proc/net/dev"), env=h.env)
    assert r.returncode == 0, r.stderr
    wasm_sees = sorted(line.split(":")[0].strip() for line in r.stdout.splitlines()[2:])
    r = img_ok(h, "exec", "owner", "cat", "/proc/net/dev", env=h.env)
    linux_sees = sorted(line.split(":")[0].strip() for line in r.stdout.splitlines()[2:])
    assert wasm_sees == linux_sees == ["eth0", "lo"]


def test_twenty_concurrent_starts_get_twenty_addresses(net):
    h = net

    def start(i: int) -> int:
        return img(
            h, *run_args(h, "-d", "--name", f"c{i}", "--network", h.net, IMAGE, "sleep", "600"), env=h.env
        ).returncode

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(start, range(20)))
    assert codes == [0] * 20
    addresses = {ip_of(h, f"c{i}") for i in range(20)}
    assert len(addresses) == 20 and len(leases(h)) == 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: img(h, "rm", "--force", f"c{i}", env=h.env), range(20)))
    assert not leases(h)


def test_a_hundred_create_delete_cycles_leave_nothing(net):
    h = net
    port = free_port_run(10)

    def cycle(i: int) -> str:
        args = ["--rm", "--network", h.net]
        if i % 10 == 0:
            args += ["-p", f"127.0.0.1:{port + i // 10}:80"]  # some with rules to remove as well
        r = img(h, *run_args(h, *args, IMAGE, "true"), env=h.env)
        return f"{r.returncode}: {r.stderr.strip()}" if r.returncode else ""

    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = [f for f in pool.map(cycle, range(100)) if f]
    assert not failed, failed[:3]
    assert not leases(h)
    assert "mrun-ctr" not in nft_rules()
    assert not veths_left()


@pytest.mark.parametrize("images", ["cold"], indirect=True)
def test_network_prune_removes_no_directory_mrun_did_not_make(net):
    """A network root shared by mistake (MRUN_NETWORK_ROOT=/tmp) or someone's directory in it:
    `network prune` took every directory without a network.json for a killed create's and
    removed it whole. A half-made network holds only what a create makes before its definition
    (leases/, with addresses, and network.json.tmp); any other directory is someone else's."""
    h = net
    root = h.env["MRUN_NETWORK_ROOT"]
    theirs = {"someone/notes.txt": "keep", "other/leases/not-an-address": "keep too"}
    for name, text in theirs.items():
        os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
        with open(os.path.join(root, name), "w") as f:
            f.write(text)
    os.makedirs(os.path.join(root, "half", "leases"))  # a create killed before its definition's rename
    open(os.path.join(root, "half", "network.json.tmp"), "w").close()
    try:
        r = img_ok(h, "network", "prune", "-f", env=h.env)
        assert "half-made network half" in r.stdout and "someone" not in r.stdout and "other" not in r.stdout, r.stdout
        assert not os.path.exists(os.path.join(root, "half"))
        for name, text in theirs.items():
            with open(os.path.join(root, name)) as f:
                assert f.read() == text, name
        r = img_ok(h, "network", "create", "half", env=h.env)  # the name is free again
        img_ok(h, "network", "rm", "half", env=h.env)
    finally:
        for top in ("someone", "other"):
            shutil.rmtree(os.path.join(root, top), ignore_errors=True)


def test_bad_network_input_is_refused_and_nothing_is_half_made(net):
    h = net
    r = img(h, *run_args(h, "--rm", "--network", "no-such-net", IMAGE, "true"), env=h.env)
    assert r.returncode != 0 and "no-such-net" in r.stderr and "not found" in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = img(h, *run_args(h, "--rm", "--network", h.net, "-p", f"127.0.0.1:{port}:80", IMAGE, "true"), env=h.env)
        assert r.returncode != 0 and "already in use" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # TEST-NET-1 is no address of this host: said so (it was "port already in use")
    r = img(h, *run_args(h, "--rm", "--network", h.net, "-p", "192.0.2.1:8080:80", IMAGE, "true"), env=h.env)
    one_line_error(r, "192.0.2.1:8080/tcp", "not an address of this host")
    subnet = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"]
    r = img(h, "network", "create", "overlapping", "--subnet", subnet, env=h.env)
    assert r.returncode != 0 and "overlaps" in r.stderr
    # the host's loopback is in its local routing table, which the overlap check does not read: a
    # bridge took 127.0.0.1/8; multicast and reserved ranges are no interface's either
    for special in ("127.0.0.0/8", "127.5.0.0/24", "224.0.0.0/24", "169.254.9.0/24", "240.1.0.0/16", "0.0.0.0/0"):
        one_line_error(img(h, "network", "create", "overlapping", "--subnet", special, env=h.env),
                       f"--subnet {special}", "never a bridge's")
    assert "overlapping" not in img_ok(h, "network", "ls", env=h.env).stdout
    one_line_error(img(h, "network", "create", "n" * 65, env=h.env), "1 to 64 ASCII letters")  # (named letters alone)
    # as podman's and docker's: a name is in the rules' comments, at most 128 bytes to nft, and
    # these were taken by create, then every start on them refused by nft ("comment too long")
    for wide in ("é" * 64, "Ａ" * 40, "²"):
        one_line_error(img(h, "network", "create", wide, env=h.env), f"network name {wide!r}: 1 to 64 ASCII letters")
    digits = "9" * 5000  # more than int() takes: it failed with a traceback ("internal error: ValueError")
    # a host address as Go's net.ParseIP reads it: inet_aton took these, kept as written (a loopback
    # address past the "127." test that confines its DNAT to the host's own programs; the text
    # into the nft script as it was)
    for bad in ("90-80:80", "80-89:80-81", "x:80", "1.2.3.4:0:80", "1:2:3:4", "80/sctp", f"{digits}:80", "²:80",
                "127.1:8080:80", "0x7f.0.0.1:8080:80", "2130706433:8080:80", "127.0.0.1 x:8080:80",
                "127.000.000.001:8080:80"):
        one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, "-p", bad, IMAGE, "true"), env=h.env),
                       f"-p {bad!r}")
    for flags, needle in ((["--add-host", "h:fe80::1%eth0"], "--add-host"), (["--dns", "fe80::1%a\nb"], "--dns"),
                          (["--expose", "80-99999"], "--expose '80-99999'"), (["--expose", "http"], "--expose 'http'"),
                          (["--expose", f"80-{digits}"], "ports are 1 to 65535"), (["--expose", "²"], "--expose '²'")):
        one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, *flags, IMAGE, "true"), env=h.env), needle)
    one_line_error(img(h, *run_args(h, "--rm", "--network", "none", "-P", IMAGE, "true"), env=h.env),
                   "-P: ports are published on bridge networks")
    # a second network was dropped unsaid, the last one taking the container: docker connects it
    # to each (test_a_container_joins_more_networks_by_run_and_connect_as_docker_s), or refuses a
    # mode beside a network; one that is not there is refused before anything is taken
    for second in ("none", "host"):
        r = img(h, *run_args(h, "--rm", "--network", h.net, "--network", second, IMAGE, "true"), env=h.env)
        one_line_error(r, f"--network {second} beside --network {h.net}", "conflicting options")
        assert r.returncode == 125
    one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, "--network", "other", IMAGE, "true"), env=h.env),
                   "network 'other' not found")
    img_ok(h, *run_args(h, "--rm", "--network", h.net, "--network", h.net, IMAGE, "true"), env=h.env)  # the same: one
    containers = os.path.join(h.image_root, "containers")
    assert not leases(h) and (not os.path.isdir(containers) or not os.listdir(containers))
    assert not os.path.isdir(h.root) or not os.listdir(h.root)


def test_a_bundle_joins_a_network_through_its_annotations(net):
    """The OCI bundle path (runc CLI, containerd's shims): the same attach, driven by config.json."""
    h = net
    config = h.config(["sh", "-c", "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; cat /etc/hostname"])
    config["annotations"] = {"org.mrun.network": h.net}
    config["hostname"] = "from-bundle"
    bundle = h.bundle(config=config)
    r = h.mrun("run", "-b", bundle, h.cid("bundle"), env=h.env)
    assert r.returncode == 0, r.stderr
    subnet = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"]
    assert r.stdout.startswith("inet " + subnet.rsplit(".", 1)[0] + ".") and "from-bundle" in r.stdout, r.stdout
    assert not leases(h)
    # its other networks likewise (org.mrun.network.more), and a list that is no list of networks
    # (or names one that is not there) is one line, with nothing taken
    config["process"]["args"] = ["sh", "-c", "ip -o -4 addr show eth1 | grep -o 'inet [0-9.]*'"]
    config["annotations"]["org.mrun.network.more"] = json.dumps([{"name": "mrun"}])
    r = h.mrun("run", "-b", h.bundle(config=config), h.cid("more"), env=h.env)
    assert r.returncode == 0 and r.stdout.startswith("inet "), r.stderr
    for more, needle in (("[1]", "org.mrun.network.more"), ('[{"name": "a/b"}]', "'a/b'"),
                         ('[{"name": "nosuch"}]', "'nosuch' not found"),
                         (json.dumps([{"name": "mrun", "aliases": ["x y"]}]), "'x y'")):
        config["annotations"]["org.mrun.network.more"] = more
        one_line_error(h.mrun("run", "-b", h.bundle(config=config), h.cid("bad"), env=h.env), needle)
        assert not leases(h) and not leases_of(h, "mrun")


def leases_of(h, network: str) -> list[str]:
    d = os.path.join(h.env["MRUN_NETWORK_ROOT"], network, "leases")
    return os.listdir(d) if os.path.isdir(d) else []


def test_a_dead_container_is_cleaned_up_by_delete_force_and_stale_leases_by_prune(net):
    import signal

    h = net
    port = free_port_run(1)
    img_ok(
        h,
        *run_args(h, "-d", "--name", "victim", "--network", h.net, "-p", f"127.0.0.1:{port}:80", IMAGE, "sleep", "600"),
        env=h.env,
    )
    pid = json.loads(img_ok(h, "inspect", "victim").stdout)["state"]["pid"]
    os.kill(pid, signal.SIGKILL)  # the container dies behind mrun's back
    h.wait_status("victim", "stopped")
    assert len(leases(h)) == 1 and f"dport {port}" in nft_rules()
    img_ok(h, "rm", "--force", "victim", env=h.env)
    assert not leases(h) and f"dport {port}" not in nft_rules()
    # a lease whose owner vanished without any clean-up (mrun killed mid-create): prune finds it
    stale = os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "leases", "10.255.255.254")
    with open(stale, "w") as f:
        json.dump({"root": h.root, "container": "never-was"}, f)
    assert "lease 10.255.255.254" in img_ok(h, "network", "prune", env=h.env).stdout
    assert not leases(h)


def mrun_veths() -> set[str]:
    return {n for n in os.listdir("/sys/class/net") if n.startswith("mrv")}


def test_a_namespace_pinned_by_someone_else_does_not_keep_the_veth(net, tmp_path):
    """delete leaves a container's veth pair to the kernel only when the namespace it ends in is
    being destroyed. Here someone holds that namespace (a bind mount, as `ip netns` makes one),
    so it lives on after the container: mrun must delete the pair itself, at once."""
    h = net
    before = mrun_veths()
    img_ok(h, *run_args(h, "-d", "--name", "pinned", "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
    (veth,) = mrun_veths() - before
    pid = json.loads(img_ok(h, "inspect", "pinned").stdout)["state"]["pid"]
    pin = tmp_path / "netns"
    pin.touch()
    subprocess.run(["mount", "--bind", f"/proc/{pid}/ns/net", str(pin)], check=True)
    try:
        img_ok(h, "rm", "--force", "pinned", env=h.env)
        assert not os.path.exists(f"/sys/class/net/{veth}"), "the veth of a namespace that lives on was left"
        links = subprocess.run(["nsenter", f"--net={pin}", "ip", "-o", "link"], capture_output=True, text=True)
        assert links.returncode == 0 and "eth0" not in links.stdout, links.stdout + links.stderr
    finally:
        subprocess.run(["umount", str(pin)], check=True)


def test_the_same_name_again_at_once_gets_its_network(net):
    h = net
    for i in range(4):
        r = img(h, *run_args(h, "--rm", "--name", "again", "--network", h.net, IMAGE, "true"), env=h.env)
        assert r.returncode == 0, f"round {i}: {r.stderr}"


@contextlib.contextmanager
def namespace_holder():
    """A process alone in a new network namespace; when it ends, so does the namespace."""
    own = os.readlink("/proc/self/ns/net")
    p = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{p.pid}/ns/net") == own:
            assert time.monotonic() < deadline, "unshare --net did not happen"
            time.sleep(0.005)
        yield p.pid
    finally:
        p.kill()
        p.wait()


def test_a_pair_on_its_way_out_is_waited_for_not_refused(net):
    """A container's veth is named after its id. The pair of the last container of that id may
    still be on its way out with that container's namespace (the kernel takes some tens of ms)
    when the next one plugs in: plugging waits for it rather than failing with 'File exists'."""
    import ipaddress

    from mrun.network import links
    from mrun.network.store import Networks

    h = net
    network = Networks(h.env["MRUN_NETWORK_ROOT"]).get(h.net)
    links.ensure_bridge(network)
    ip = str(ipaddress.ip_network(network["subnet"])[200])
    veth, still_there = "mrvreuse0", 0
    for _ in range(6):
        with namespace_holder() as pid:
            links.plug(network, veth, pid, ip)
        still_there += os.path.exists(f"/sys/class/net/{veth}")  # its namespace is going, the pair not gone yet
        with namespace_holder() as pid:
            links.plug(network, veth, pid, ip)
    assert still_there, "the kernel was always faster: this test did not see a pair on its way out"


def test_a_pair_on_its_way_out_is_waited_for_while_other_namespaces_die_with_it(net):
    """Seen in CI: while other namespaces are being torn down, a namespace whose last process
    has just been reaped still resolves for a few milliseconds (the kernel drops its last
    references later), so its pair looked alive, someone's, and the next container of that id
    was refused with 'File exists'. Forty namespaces, each with a pair of its own, end with the
    container's here; the next one of that id plugs in each time."""
    import ipaddress

    from mrun.network import links
    from mrun.network.store import Networks

    h = net
    network = Networks(h.env["MRUN_NETWORK_ROOT"]).get(h.net)
    links.ensure_bridge(network)
    ip = str(ipaddress.ip_network(network["subnet"])[202])
    veth = "mrvreuse2"
    for _ in range(16):
        others = [subprocess.Popen(["unshare", "--net", "sh", "-c",
                                    "ip link add name a type veth peer name b && exec sleep 60"])
                  for _ in range(40)]
        try:
            with namespace_holder() as pid:
                links.plug(network, veth, pid, ip)
                time.sleep(0.2)  # the others have made their pairs
                for other in others:
                    other.kill()
        finally:
            for other in others:
                other.kill()
                other.wait()
        with namespace_holder() as pid:
            links.plug(network, veth, pid, ip)


def test_a_leftover_pair_whose_namespace_lives_is_refused_not_taken(net):
    """A pair of that name whose namespace lives on is someone's: plugging fails, in one line,
    and the pair stays."""
    import ipaddress

    from mrun.errors import MrunError
    from mrun.network import links
    from mrun.network.store import Networks

    h = net
    network = Networks(h.env["MRUN_NETWORK_ROOT"]).get(h.net)
    links.ensure_bridge(network)
    ip = str(ipaddress.ip_network(network["subnet"])[201])
    with namespace_holder() as first:
        links.plug(network, "mrvreuse1", first, ip)
        with namespace_holder() as second:
            with pytest.raises(MrunError, match="mrvreuse1.*File exists"):
                links.plug(network, "mrvreuse1", second, ip)
        assert os.path.exists("/sys/class/net/mrvreuse1")


def test_a_masquerade_rule_removed_behind_mrun_s_back_is_put_back(net):
    """Starts skip the rule listing while the ruleset's generation is the one at which the rules
    were last seen; any change to the ruleset (here someone deleting them) makes the next start
    look again and put them back."""
    h = net
    run = run_args(h, "--rm", "--network", h.net, IMAGE, "true")
    img_ok(h, *run, env=h.env)
    seen = os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "rules-seen")
    assert os.path.exists(seen)
    tag = f'comment "{net_tag(h)}"'

    def postrouting() -> list[str]:
        listing = subprocess.run(["nft", "-a", "list", "chain", "ip", "mrun", "postrouting"], capture_output=True,
                                 text=True, check=True).stdout
        return [line.rsplit("# handle ", 1)[1] for line in listing.splitlines() if tag in line]

    assert len(postrouting()) == 2
    for handle in postrouting():
        subprocess.run(["nft", "delete", "rule", "ip", "mrun", "postrouting", "handle", handle], check=True)
    assert not postrouting()
    img_ok(h, *run, env=h.env)
    assert len(postrouting()) == 2 and nft_rules().count(tag) == 6  # its isolation's, guard, inbound: as they were


def test_rules_carrying_mrun_s_comments_in_someone_else_s_tables_are_never_touched(net):
    """mrun reads back only its own table (`ip mrun`): a rule with the very comment mrun looks
    for, in another table of the same family or in a table named mrun of another family, is
    neither counted as mrun's nor deleted with a container's rules."""
    h = net
    other = f"mrun-test-{uuid.uuid4().hex[:6]}"
    tags = [net_tag(h)]
    script = (f"add table ip {other}\nadd chain ip {other} c\nadd table inet mrun\nadd chain inet mrun c\n"
              + "".join(f'add rule ip {other} c counter comment "{t}"\nadd rule inet mrun c counter comment "{t}"\n'
                        for t in tags))
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
    try:
        name = h.cid("pub")
        img_ok(h, *run_args(h, "-d", "--name", name, "--network", h.net, "-p", "127.0.0.1:18094:80", IMAGE,
                            "sleep", "60"), env=h.env)
        ours = nft_rules()
        # the table's own (masquerade, isolation, guard, inbound), despite the decoys
        assert ours.count(f'comment "{net_tag(h)}"') == 6, ours
        ctr_tag = next(line.split('comment "', 1)[1].rstrip('"') for line in ours.splitlines() if "mrun-ctr:" in line)
        subprocess.run(["nft", "add", "rule", "ip", other, "c", "counter", "comment", f'"{ctr_tag}"'], check=True)
        img_ok(h, "rm", "--force", name, env=h.env)
        assert "mrun-ctr:" not in nft_rules()
        theirs = subprocess.run(["nft", "list", "table", "ip", other], capture_output=True, text=True).stdout
        inet = subprocess.run(["nft", "list", "table", "inet", "mrun"], capture_output=True, text=True).stdout
        assert theirs.count("comment") == 2 and ctr_tag in theirs, theirs
        assert inet.count(f'comment "{net_tag(h)}"') == 1, inet
    finally:
        subprocess.run(["nft", "-f", "-"], input=f"delete table ip {other}\ndelete table inet mrun\n", text=True)


def test_a_link_named_as_the_bridge_that_is_no_bridge_is_refused_in_one_line(net):
    """The network's bridge name taken by another kind of link (here a veth pair): mrun neither
    adds its address to it nor plugs into it; the start fails in one line and leaves nothing."""
    h = net
    bridge = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["bridge"]
    subprocess.run(["ip", "link", "add", bridge, "type", "veth", "peer", "name", f"{bridge[:11]}-p"], check=True)
    try:
        one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env),
                       f"{bridge} is a link but not a bridge")
        addresses = subprocess.run(["ip", "-o", "addr", "show", "dev", bridge], capture_output=True, text=True).stdout
        assert "inet " not in addresses, addresses
        containers = os.path.join(h.image_root, "containers")
        assert not leases(h) and (not os.path.isdir(containers) or not os.listdir(containers))
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


CHURN = r"""
import subprocess, sys, threading, time
from mrun.network import firewall, netlink
interrupted = []
talk = netlink.talk
def counting_talk(*args):
    try:
        return talk(*args)
    except InterruptedError:
        interrupted.append(1)
        raise
netlink.talk = counting_talk
rules = "".join(f'add rule ip mrun postrouting ip saddr 10.{i}.0.0/24 masquerade comment "mrun-net:n{i}"\n'
                for i in range(30))
subprocess.run(["nft", "-f", "-"], check=True, text=True, input="add table ip mrun\n"
               "add chain ip mrun postrouting { type nat hook postrouting priority 100; policy accept; }\n"
               + rules + "add table ip other\nadd chain ip other c\n")
stop = []
def churn():  # commits between the passes of each dump: someone else's rules, all the time
    while not stop:
        subprocess.run(["nft", "add", "rule", "ip", "other", "c", "counter"], check=True)
        subprocess.run(["nft", "flush", "chain", "ip", "other", "c"], check=True)
threads = [threading.Thread(target=churn) for _ in range(3)]
for t in threads:
    t.start()
listings, deadline = 0, time.monotonic() + 3
try:
    while time.monotonic() < deadline:
        found = sorted(r["comment"] for r in firewall._list())
        assert found == sorted(f"mrun-net:n{i}" for i in range(30)), found
        listings += 1
finally:
    stop.append(1)
    for t in threads:
        t.join()
print(listings, len(interrupted))
"""


def test_listing_mrun_s_rules_holds_while_others_commit_all_the_time(tmp_path):
    """A netlink dump that a concurrent commit interrupts (NLM_F_DUMP_INTR) is read again until
    whole, never taken for a failure or for the truth: thousands of listings, each complete,
    while three writers commit to another table. In a network namespace of its own."""
    script = tmp_path / "churn.py"
    script.write_text(CHURN)
    r = subprocess.run(["unshare", "--net", sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    listings, interrupted = map(int, r.stdout.split())
    assert listings > 100 and interrupted > 0, (listings, interrupted)  # the retry was needed, and held


def test_a_forged_network_definition_never_steers_netlink_or_nft(net):
    """network.json is root's alone to write, but a damaged or forged one must not reach the
    host: its subnet goes into an nft script and its bridge names the link mrun addresses, plugs
    into and deletes. A start refuses it in one line naming the file and field; `network rm`
    removes the definition and touches no link or rule that is not the network's own."""
    h = net
    path = os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "network.json")
    doc = json.load(open(path))
    victim, injected = f"mrvictim{uuid.uuid4().hex[:5]}", f"mrun-test-injected-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "link", "add", victim, "type", "veth", "peer", "name", f"{victim}p"], check=True)
    forgeries = {
        "bridge": {**doc, "bridge": victim},
        "subnet": {**doc, "subnet": f'{doc["subnet"]} counter\nadd table ip {injected}\n#'},
        "gateway": {**doc, "gateway": "192.0.2.1"},
    }
    try:
        for field, forged in forgeries.items():
            with open(path, "w") as f:
                json.dump(forged, f)
            one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env),
                           "network.json", field)
            assert "inet " not in subprocess.run(["ip", "-o", "addr", "show", "dev", victim], capture_output=True,
                                                 text=True).stdout
            assert injected not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
            assert not leases(h)
        listing = img(h, "network", "ls", env=h.env)
        assert listing.returncode == 0 and h.net in listing.stdout, listing.stderr
        img_ok(h, "network", "rm", h.net, env=h.env)
        assert os.path.exists(f"/sys/class/net/{victim}"), "network rm deleted a link that was not its bridge"
        assert not os.path.exists(path)
    finally:
        subprocess.run(["ip", "link", "del", victim], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", injected], capture_output=True)


def test_a_network_name_that_is_the_stores_own_or_dockers_predefined_is_refused(images, tmp_path):
    """The network root holds each network's directory beside its own `ports` (published-port
    reservations) and `lock`. A network called `ports` was made there: `network prune` then took
    its definition for a stale port reservation and removed it, and failed on its leases ("Is a
    directory") from then on, every prune of the host. `lock` failed with "Not a directory".
    `bridge`, `host` and `none` are docker's predefined networks (modes of --network here): a
    network so named could never be joined. Each is refused in one line, as docker refuses them,
    and a `ports` network an older mrun made is pruned like any other."""
    h = images
    env = {"MRUN_NETWORK_ROOT": str(tmp_path / "networks")}
    for name in ("ports", "lock", "bridge", "host", "none"):
        one_line_error(img(h, "network", "create", name, env=env), f"network name {name!r}")
    assert img_ok(h, "network", "ls", "-q", env=env).stdout == ""
    made = tmp_path / "networks" / "ports"  # as an mrun before this one made it
    (made / "leases").mkdir(parents=True)
    (made / "network.json").write_text(json.dumps(
        {"name": "ports", "subnet": "10.89.250.0/24", "gateway": "10.89.250.1", "bridge": "mrb-0000000000",
         "driver": "bridge"}))
    r = img(h, "network", "prune", env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert not made.exists()
    r = img(h, "network", "prune", env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_a_network_create_killed_before_its_definition_holds_no_name(net):
    """`network create` makes the network's directory, then renames its definition in: killed
    between the two, the name was held for good (every later create failed, "File exists"), and
    for the default network, made on first use by `run`, every `run --network bridge` failed. The
    next create of the name, and `network prune`, take such a directory away."""
    h = net
    root = h.env["MRUN_NETWORK_ROOT"]
    for name in ("mrun", "half", "other"):  # what a kill there leaves: the directory, its leases, no definition
        os.makedirs(os.path.join(root, name, "leases"))
    img_ok(h, "network", "create", "half", env=h.env)
    assert json.loads(img_ok(h, "network", "inspect", "half", env=h.env).stdout)["name"] == "half"
    r = img(h, *run_args(h, "--rm", "--network", "bridge", IMAGE, "echo", "default"), env=h.env)
    assert r.returncode == 0 and r.stdout == "default\n", r.stderr
    img_ok(h, "network", "prune", env=h.env)
    assert not os.path.exists(os.path.join(root, "other"))
    assert "half" not in img_ok(h, "network", "ls", "-q", env=h.env).stdout.split()


def test_a_full_disk_leaves_no_empty_lease(images, busybox_archive, tmp_path):
    """The network root's disk full (/var/lib or /run): a run's lease was made, then its content
    failed to be written, and the empty file stayed. It counted as a container on the network
    (`network rm` refused: "in use"), its address went out only once every other had, and the
    refusal named no file. Now it is removed and named."""
    h = images
    root = tmp_path / "full-networks"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "mrun-test-full", str(root)], check=True)
    h.env, h.net = {"MRUN_NETWORK_ROOT": str(root)}, f"t{uuid.uuid4().hex[:6]}"
    try:
        img_ok(h, "load", busybox_archive)
        img_ok(h, "network", "create", h.net, env=h.env)
        with open(root / "fill", "wb", buffering=0) as f:
            with pytest.raises(OSError, match="No space left"):
                while True:
                    f.write(b"\0" * 4096)
        for _ in range(2):
            r = img(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)
            one_line_error(r, "No space left on device", os.path.join(str(root), h.net, "leases"))
        assert leases(h) == []
        assert img_ok(h, "ps", "-aq").stdout == ""
        os.unlink(root / "fill")
        img_ok(h, "network", "rm", h.net, env=h.env)
        assert not veths_left()
    finally:
        img(h, "network", "rm", h.net, env=h.env)
        subprocess.run(["umount", str(root)], check=True)


def test_a_container_keeps_its_address_over_a_reboot(net):
    """A reboot takes the state root (/run) and leaves the network root (/var/lib/mrun): the
    leases of the containers then taken back stayed held in their name, so a start took a second
    address beside the first, and one of --ip found its own address taken ("already the address
    of container 'fixed'"). The earlier boot's leases and port reservations are let go first."""
    import ipaddress

    h = net
    subnet = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"]
    fixed = str(ipaddress.ip_network(subnet)[77])
    img_ok(h, *run_args(h, "-d", "--name", "fixed", "--network", h.net, "--ip", fixed, "-p", "18077:80",
                        IMAGE, "sleep", "600"), env=h.env)
    assert ip_of(h, "fixed") == fixed
    play_a_reboot(h, ["fixed"])
    assert img_ok(h, "start", "fixed", env=h.env).stdout == "fixed\n"
    assert ip_of(h, "fixed") == fixed
    assert leases(h) == [fixed]
    img_ok(h, "rm", "-f", "fixed", env=h.env)


def _addresses_on(bridge: str) -> list[str]:
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", bridge], capture_output=True, text=True).stdout
    return [line.split()[3] for line in shown.splitlines()]


def test_a_network_root_removed_under_running_containers_is_held_again(net):
    """`rm -rf /var/lib/mrun/networks` (an admin "resetting" networks, a root on a tmpfs) while
    containers run on it: the next `run` made the default network again on a new subnet beside
    the old one on the same bridge (without a masquerade rule for it: the old subnet's had the
    network's comment), published a host port a running container published already (two DNAT
    rules, the first winning), gave out a running container's --ip, and `network rm` took the
    bridge from under them. The next command defines the networks again from the containers'
    copies (one of an older mrun, without a copy, from what its bridge carries) and holds their
    addresses and ports again. Once they are gone, a bridge left without its definition is
    made anew with the network, never a second address beside its old one."""
    h = net
    try:
        _held_again(h)
    finally:  # a failure leaves no bridge nor rules of a lost definition: defined again, the fixture prunes them
        for name in {h.net, "mrun"} - set(img(h, "network", "ls", "-q", env=h.env).stdout.split()):
            img(h, "network", "create", name, env=h.env)


def _held_again(h) -> None:
    import ipaddress

    root = h.env["MRUN_NETWORK_ROOT"]
    port = free_port_run(1)
    subnet = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"]
    fixed = str(ipaddress.ip_network(subnet)[77])
    img_ok(h, *run_args(h, "-d", "--name", "web", "--network", h.net, "-p", f"127.0.0.1:{port}:80", IMAGE,
                        "sh", "-c", HTTPD.format(tag="web", listen="80")), env=h.env)
    img_ok(h, *run_args(h, "-d", "--name", "fixed", "--network", h.net, "--ip", fixed, IMAGE, "sleep", "600"),
           env=h.env)
    img_ok(h, *run_args(h, "-d", "--name", "dflt", "--network", "bridge", IMAGE, "sleep", "600"), env=h.env)
    before = {d["name"]: d for d in json.loads(img_ok(h, "network", "ls", "--format", "json", env=h.env).stdout)}
    assert set(before) == {h.net, "mrun"}
    default_bridge, default_ip = before["mrun"]["bridge"], ip_of(h, "dflt")
    assert wait_http(f"http://127.0.0.1:{port}/index.html") == b"hello-web\n"
    plan = os.path.join(h.root, "dflt", "net.json")  # as an older mrun wrote it: no copy of the definition
    doc = json.load(open(plan))
    doc.pop("definition", None)
    with open(plan, "w") as f:
        json.dump(doc, f)
    remove_under_mrun(root)

    r = img_ok(h, "network", "ls", "--format", "json", env=h.env)
    assert r.stderr == ""
    after = {d["name"]: d for d in json.loads(r.stdout)}
    for name in (h.net, "mrun"):
        assert {**after[name], "leases": 0} == {**before[name], "leases": 0}, (before, after)
    held = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["leases"]
    assert sorted(holder["container"] for holder in held.values()) == ["fixed", "web"] and fixed in held
    one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, "--ip", fixed, IMAGE, "true"), env=h.env),
                   f"--ip {fixed}", "already the address of container 'fixed'")
    one_line_error(img(h, *run_args(h, "--rm", "--network", h.net, "-p", f"127.0.0.1:{port}:80", IMAGE, "true"),
                       env=h.env), f"-p {port}/tcp", "already published by container 'web'")
    r = img(h, "network", "rm", h.net, env=h.env)
    assert r.returncode != 0 and "in use by 2 container(s)" in r.stderr, r.stderr
    shown = img_ok(h, *run_args(h, "--rm", "--network", "bridge", IMAGE, "ip", "-4", "-o", "addr", "show", "eth0"),
                   env=h.env).stdout
    address = ipaddress.ip_interface(shown.split()[3])
    assert str(address.network) == before["mrun"]["subnet"] and str(address.ip) != default_ip, shown
    assert _addresses_on(default_bridge) == [f"{before['mrun']['gateway']}/24"]
    assert wait_http(f"http://127.0.0.1:{port}/index.html") == b"hello-web\n"
    img_ok(h, "rm", "-f", "web", "fixed", "dflt", env=h.env)
    assert f"dport {port}" not in nft_rules() and not leases(h)

    # no container left on them: the bridges stay, their definitions go
    remove_under_mrun(root)
    img_ok(h, "network", "create", "--subnet", "10.89.213.0/24", h.net, env=h.env)
    img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)
    bridge = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["bridge"]
    assert _addresses_on(bridge) == ["10.89.213.1/24"]
    assert "ip saddr 10.89.213.0/24 ip daddr != 10.89.213.0/24 masquerade" in nft_rules()
    img_ok(h, *run_args(h, "--rm", "--network", "bridge", IMAGE, "true"), env=h.env)  # the default one, made again
    remade = json.loads(img_ok(h, "network", "inspect", "mrun", env=h.env).stdout)
    assert _addresses_on(default_bridge) == [f"{remade['gateway']}/24"]
    assert f"ip saddr {remade['subnet']} ip daddr != {remade['subnet']} masquerade" in nft_rules()


def test_a_state_root_removed_under_a_publishing_container_leaves_no_rule(net):
    """`rm -rf /run/mrun` under a container publishing a port: its record was written back from
    its supervisor's copy (images/kept), but not its network plan, so its `rm` left its DNAT
    rules (the host port then went to whoever got its address next), its lease and its port
    reservation. The copy keeps the plan. With the network root removed too, both come back."""

    h = net
    port = free_port_run(1)
    for roots in ([h.root], [h.root, h.env["MRUN_NETWORK_ROOT"]]):
        img_ok(h, *run_args(h, "-d", "--name", "web", "--network", h.net, "-p", f"127.0.0.1:{port}:80", IMAGE,
                            "sh", "-c", HTTPD.format(tag="web", listen="80")), env=h.env)
        for root in roots:
            remove_under_mrun(root)
        assert img_ok(h, "ps", "--format", "{{.Names}} {{.Ports}}", env=h.env).stdout == \
            f"web 127.0.0.1:{port}->80/tcp\n"
        assert len(leases(h)) == 1
        assert wait_http(f"http://127.0.0.1:{port}/index.html") == b"hello-web\n"
        img_ok(h, "rm", "-f", "web", env=h.env)
        assert "mrun-ctr" not in nft_rules() and not leases(h)
        assert os.listdir(os.path.join(h.env["MRUN_NETWORK_ROOT"], "ports")) == []


def test_a_network_of_another_network_root_keeps_its_rules(net, tmp_path):
    """Two network roots (a second installation, a test's private root beside the host's) each
    with a network of one name: their bridges were told apart (named from root and name), their
    masquerade rules were not (commented with the name alone). The second network's start found
    the first one's rules and added none for its own subnet (no way out for its containers), and
    its `network rm` deleted the first one's from under its running containers."""
    h = net
    other = {"MRUN_NETWORK_ROOT": str(tmp_path / "other-networks")}
    img_ok(h, "network", "create", "--subnet", "10.89.214.0/24", h.net, env=other)
    try:
        ours = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"]
        img_ok(h, *run_args(h, "-d", "--name", "ours", "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
        img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=other)
        assert "ip saddr 10.89.214.0/24 ip daddr != 10.89.214.0/24 masquerade" in nft_rules()
        img_ok(h, "network", "rm", h.net, env=other)
        assert "10.89.214.0/24" not in nft_rules()
        assert f"ip saddr {ours} ip daddr != {ours} masquerade" in nft_rules()
        img_ok(h, "rm", "-f", "ours", env=h.env)
    finally:
        img(h, "network", "rm", h.net, env=other)


def test_mac_address_gives_eth0_that_address_as_docker_s_does(net):
    """docker's --mac-address on a bridge network (the default one too): eth0 has it, inspect
    shows it; a multicast or malformed one, or one with --network none or host, is one line
    naming the flag, and nothing is leased. It was an unknown option (exit 2)."""
    h = net
    shown = img_ok(h, *run_args(h, "--rm", "--network", h.net, "--mac-address", "02:42:AC:11:00:09", IMAGE,
                                "ip", "-o", "link", "show", "eth0"), env=h.env).stdout
    assert "link/ether 02:42:ac:11:00:09 " in shown, shown
    img_ok(h, *run_args(h, "-d", "--name", "m", "--network", "bridge", "--mac-address", "02-42-ac-11-00-0a", IMAGE,
                        "sleep", "60"), env=h.env)
    try:
        assert img_ok(h, "inspect", "-f", "{{.NetworkSettings.MacAddress}}", "m", env=h.env).stdout == \
            "02:42:ac:11:00:0a\n"
        assert "link/ether 02:42:ac:11:00:0a " in img_ok(h, "exec", "m", "ip", "-o", "link", "show", "eth0",
                                                        env=h.env).stdout
    finally:
        img_ok(h, "rm", "-f", "m", env=h.env)
    for flags, words in ((["--network", h.net, "--mac-address", "01:00:5e:00:00:01"], "unicast"),
                         (["--network", h.net, "--mac-address", "00:00:00:00:00:00"], "unicast"),
                         (["--network", h.net, "--mac-address", "02:42:ac:11:00"], "a MAC address expected"),
                         (["--network", h.net, "--mac-address", "02:42:ac:11:00:zz"], "a MAC address expected"),
                         (["--network", "none", "--mac-address", "02:42:ac:11:00:01"], "not with --network none"),
                         (["--network", "host", "--mac-address", "02:42:ac:11:00:01"], "not with --network host")):
        one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true"), env=h.env), "--mac-address", words)
    assert not leases(h)


def test_containers_on_a_network_know_each_other_by_name_and_alias(net):
    """docker's user-defined networks resolve their containers' names and --network-alias names
    (compose's `db`, reached from `web`): each container's /etc/hosts lists the others on its
    network, a later one is added to the earlier ones' files, one removed is taken out; --link
    NAME:ALIAS names that container in one's own file only. Not on the default network (docker's
    bridge resolves none), and nothing of a forged lease's directory is written. They were
    unknown: containers reached each other by address only."""
    h = net
    img_ok(h, *run_args(h, "-d", "--name", "db", "--network", h.net, "--network-alias", "database", IMAGE,
                        "sh", "-c", HTTPD.format(tag="db", listen="8000")), env=h.env)
    img_ok(h, *run_args(h, "-d", "--name", "app", "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
    img_ok(h, *run_args(h, "-d", "--name", "plain", "--network", "bridge", IMAGE, "sleep", "600"), env=h.env)
    try:
        db, app = ip_of(h, "db"), ip_of(h, "app")
        assert f"{db}\tdb database\t" in img_ok(h, "exec", "app", "cat", "/etc/hosts", env=h.env).stdout
        assert f"{app}\tapp\t" in img_ok(h, "exec", "db", "cat", "/etc/hosts", env=h.env).stdout  # added later
        r = img(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "sh", "-c",
                             WGET.format(url="http://database:8000/index.html")), env=h.env)
        assert r.returncode == 0 and r.stdout == "hello-db\n", r.stderr
        linked = img_ok(h, *run_args(h, "--rm", "--network", h.net, "--link", "db:store", IMAGE, "cat", "/etc/hosts"),
                        env=h.env).stdout
        assert f"{db}\tdb\n" in linked and f"{db}\tstore\n" in linked, linked
        assert "\tdb" not in img_ok(h, "exec", "plain", "cat", "/etc/hosts", env=h.env).stdout
        # a forged lease naming a directory with a hosts file but no plan of this network: left alone
        decoy = os.path.join(h.root, "decoy")
        os.makedirs(decoy)
        with open(os.path.join(decoy, "hosts"), "w") as f:
            f.write("untouched\n")
        with open(os.path.join(decoy, "state.json"), "w") as f:
            f.write("{}")
        subnet = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"]
        import ipaddress

        forged = os.path.join(h.env["MRUN_NETWORK_ROOT"], h.net, "leases", str(ipaddress.ip_network(subnet)[200]))
        with open(forged, "w") as f:
            json.dump({"root": h.root, "container": "decoy"}, f)
        img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)
        assert open(os.path.join(decoy, "hosts")).read() == "untouched\n"
        os.unlink(forged)
        import shutil

        shutil.rmtree(decoy)
        img_ok(h, "rm", "-f", "app", env=h.env)
        assert "\tapp" not in img_ok(h, "exec", "db", "cat", "/etc/hosts", env=h.env).stdout
        for flags, needles in ((["--network", "bridge", "--network-alias", "x"], ["--network-alias", "bridge"]),
                               (["--network", h.net, "--network-alias", "a b"], ["--network-alias 'a b'"]),
                               (["--network", "bridge", "--link", "db"], ["--link", "bridge"]),
                               (["--network", h.net, "--link", "nosuch"], ["--link nosuch", "does not exist"]),
                               (["--network", h.net, "--link", "plain"], ["--link plain", "not on network"])):
            one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true"), env=h.env), *needles)
    finally:
        img(h, "rm", "-f", "db", "app", "plain", env=h.env)


def test_network_prune_takes_down_a_network_whose_definition_was_lost(net):
    """The network root removed while nothing ran on a network: its bridge (with its address) and
    its masquerade rules stayed, and no verb could reach them (`network prune` read definitions
    only) unless a network of that name was made again. prune finds them by their rules'
    comments; a network whose bridge still carries a running container is left alone."""
    h = net
    bridge = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["bridge"]
    img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)
    img_ok(h, *run_args(h, "-d", "--name", "busy", "--network", "bridge", IMAGE, "sleep", "600"), env=h.env)
    default_bridge = json.loads(img_ok(h, "network", "inspect", "mrun", env=h.env).stdout)["bridge"]
    try:
        remove_under_mrun(h.env["MRUN_NETWORK_ROOT"])
        os.unlink(os.path.join(h.root, "busy", "net.json"))  # its plan gone too: nothing can define mrun again
        assert os.path.exists(f"/sys/class/net/{bridge}") and net_tag(h) in nft_rules()
        r = img_ok(h, "network", "prune", env=h.env)
        assert f"network {h.net}'s bridge and rules (its definition was lost)" in r.stdout, r.stdout
        assert "mrun's bridge" not in r.stdout
        assert not os.path.exists(f"/sys/class/net/{bridge}") and net_tag(h) not in nft_rules()
        assert os.path.exists(f"/sys/class/net/{default_bridge}")  # busy runs on it
    finally:
        img(h, "rm", "-f", "busy", env=h.env)
        for name in (h.net, "mrun"):  # what a failure left: defined again, the fixture's prune takes it down
            if name not in img(h, "network", "ls", "-q", env=h.env).stdout.split():
                img(h, "network", "create", name, env=h.env)


def test_network_filters_as_docker_s(net):
    """`docker network ls -q --filter name=NET` (a script's "is it there"), dangling=true, and
    `network prune --filter until=24h|label!=keep`: the network verbs had no --filter ("No such
    option"). ls takes name, driver, type, dangling and label (mrun's networks carry no labels:
    none match); prune takes until, label and label!; any other key is one line, removing nothing."""
    h = net
    img_ok(h, "network", "create", "spare" + h.net, env=h.env)
    spare = "spare" + h.net
    img_ok(h, *run_args(h, "-d", "--name", "on", "--network", h.net, IMAGE, "sleep", "60"), env=h.env)

    def ls(*filters: str) -> list[str]:
        args = [f for x in filters for f in ("--filter", x)]
        return sorted(img_ok(h, "network", "ls", "-q", *args, env=h.env).stdout.split())

    try:
        assert ls() == sorted([h.net, spare])
        assert ls(f"name={h.net}") == sorted([h.net, spare]) and ls("name=spare") == [spare]
        assert ls("dangling=true") == [spare] and ls("dangling=false") == [h.net]
        assert ls("driver=bridge", "type=custom") == sorted([h.net, spare])
        assert ls("type=builtin") == [] and ls("driver=overlay") == [] and ls("label=x") == []
        table = img_ok(h, "network", "ls", "-f", "name=spare", env=h.env).stdout.splitlines()
        assert len(table) == 2 and table[1].startswith(spare), table
        for verb, bad in (("ls", "until=1h"), ("ls", "dangling=maybe"), ("prune", "name=spare"), ("prune", "id=1")):
            one_line_error(img(h, "network", verb, "--filter", bad, env=h.env), bad)
        assert ls() == sorted([h.net, spare])
        assert spare not in img_ok(h, "network", "prune", "--filter", "until=1h", env=h.env).stdout  # younger
        assert spare not in img_ok(h, "network", "prune", "--filter", "label=keep", env=h.env).stdout
        assert ls() == sorted([h.net, spare])
        assert f"removed network {spare}" in img_ok(h, "network", "prune", "--filter", "label!=keep",
                                                    env=h.env).stdout
        assert ls() == [h.net]  # in use: stays
    finally:
        img(h, "rm", "-f", "on", env=h.env)
        img(h, "network", "rm", spare, env=h.env)


def test_network_labels_as_docker_s(net):
    """`docker network create --label team=a NET`, `network ls -f label=team`, `network inspect -f
    '{{json .Labels}}'`, `network prune --filter label!=keep`: --label was "No such option", and
    a label filter matched no network. A forged network.json whose labels are not strings is
    refused in one line, as its other fields are."""
    h = net
    kept, spare = "kept" + h.net, "spare" + h.net
    img_ok(h, "network", "create", "--label", "team=a", "--label", "keep", kept, env=h.env)
    img_ok(h, "network", "create", "--label", "team=b", spare, env=h.env)

    def ls(*filters: str) -> list[str]:
        args = [f for x in filters for f in ("--filter", x)]
        return sorted(img_ok(h, "network", "ls", "-q", *args, env=h.env).stdout.split())

    try:
        assert ls("label=team") == sorted([kept, spare]) and ls("label=team=a") == [kept] and ls("label=x") == []
        assert img_ok(h, "network", "inspect", "-f", "{{json .Labels}}", kept, env=h.env).stdout == \
            '{"keep":"","team":"a"}\n'
        assert img_ok(h, "network", "ls", "-f", "label=keep", "--format", "{{.Name}} {{.Labels}}",
                      env=h.env).stdout == f"{kept} keep=,team=a\n"
        one_line_error(img(h, "network", "create", "--label", "org.mrun.network=x", "bad" + h.net, env=h.env),
                       "--label org.mrun.network")
        one_line_error(img(h, "network", "ls", "--label", "x", env=h.env), "--label is create's")
        out = img_ok(h, "network", "prune", "--filter", "label!=keep", env=h.env).stdout
        assert f"removed network {spare}" in out and kept not in out, out
        assert ls() == [kept]  # (the fixture's network, unused and unlabelled, went too)
        path = os.path.join(h.env["MRUN_NETWORK_ROOT"], kept, "network.json")
        doc = json.load(open(path))
        json.dump({**doc, "labels": {"team": 5}}, open(path, "w"))
        one_line_error(img(h, "network", "inspect", kept, env=h.env), "labels")
    finally:
        img(h, "network", "rm", kept, spare, env=h.env)


def _interfaces(h, cid: str) -> dict[str, str]:
    """Its interfaces' IPv4 addresses (name -> address/length), lo's left out."""
    shown = img_ok(h, "exec", cid, "ip", "-4", "-o", "addr", env=h.env).stdout
    return {f[1]: f[3] for f in (line.split() for line in shown.splitlines()) if f[1] != "lo"}


def _hosts(h, cid: str) -> str:
    return img_ok(h, "exec", cid, "cat", "/etc/hosts", env=h.env).stdout


def test_a_container_joins_more_networks_by_run_and_connect_as_docker_s(net):
    """docker's second --network and `network connect`/`disconnect`: refused before ("a container is
    on one network here"; "unknown action 'connect'"). A container is on each network it joins
    (eth1, eth2... beside its first network's eth0, which keeps the default route and its published
    ports), known there by its name and --alias, across its restarts; one that is not running joins
    at its next start; disconnect takes it off again (its first network stays). Its places undo as
    its first one does: a forged plan of another network makes mrun take nobody else's address."""
    import ipaddress

    h = net
    other = h.net + "x"
    img_ok(h, "network", "create", other, env=h.env)
    subnets = {n: json.loads(img_ok(h, "network", "inspect", n, env=h.env).stdout)["subnet"] for n in (h.net, other)}

    def on(address: str, network: str) -> bool:
        return ipaddress.ip_interface(address).ip in ipaddress.ip_network(subnets[network])

    try:
        for name, networks in (("a", [h.net]), ("b", [other]), ("c", [h.net, other])):
            img_ok(h, *run_args(h, "-d", "--name", name, *[f"--network={n}" for n in networks], IMAGE,
                                "sleep", "600"), env=h.env)
        shown = _interfaces(h, "c")
        assert sorted(shown) == ["eth0", "eth1"] and on(shown["eth0"], h.net) and on(shown["eth1"], other), shown
        assert img_ok(h, "exec", "c", "ip", "route", env=h.env).stdout.count("default") == 1
        for peer in ("a", "b"):
            img_ok(h, "exec", "c", "ping", "-c1", "-W2", peer, env=h.env)
        assert set(json.loads(img_ok(h, "inspect", "-f", "{{json .NetworkSettings.Networks}}", "c").stdout)) == \
            {h.net, other}
        listed = img_ok(h, "ps", "--filter", f"network={other}", "--format", "{{.Names}}").stdout.split()
        assert listed == ["c", "b"], listed  # docker's order: the newest first

        img_ok(h, "network", "connect", "--alias", "web", other, "a", env=h.env)
        assert on(_interfaces(h, "a")["eth1"], other)
        assert "\ta web\t" in _hosts(h, "b")
        img_ok(h, "exec", "a", "ping", "-c1", "-W2", "b", env=h.env)
        from mrun.network.attach import more_veth
        from mrun.network.store import veth_name

        ports = (veth_name(h.root, "c"), more_veth(h.root, "c", other), more_veth(h.root, "a", other))

        def held() -> str:  # each of its ports says only its own addresses (portguard): by run and connect
            return subprocess.run(["nft", "list", "set", "bridge", "mrun", "guarded"], capture_output=True,
                                  text=True).stdout

        assert all(f'"{port}"' in held() for port in ports), held()
        img_ok(h, "restart", "-t", "0", "a", env=h.env)  # its networks are its own over its restarts
        assert sorted(_interfaces(h, "a")) == ["eth0", "eth1"]
        assert all(f'"{port}"' in held() for port in ports), held()  # (its new ports)
        one_line_error(img(h, "network", "connect", other, "a", env=h.env), "already on network")
        one_line_error(img(h, "network", "connect", other, "nope", env=h.env), "'nope'")
        one_line_error(img(h, "network", "connect", "--ip", "192.0.2.9", h.net, "b", env=h.env), "192.0.2.9")
        one_line_error(img(h, "network", "connect", "--ip", "10.0.0.9", "bridge", "b", env=h.env), "default one")
        one_line_error(img(h, "network", "rm", other, env=h.env), "in use")
        img_ok(h, "network", "disconnect", "-f", other, "a", env=h.env)
        assert sorted(_interfaces(h, "a")) == ["eth0"]
        assert "\ta web\t" not in _hosts(h, "b")
        one_line_error(img(h, "network", "disconnect", other, "a", env=h.env), "not connected")

        img_ok(h, "create", *run_args(h, "--name", "d", "--network", h.net, IMAGE, "sleep", "600")[1:], env=h.env)
        img_ok(h, "network", "connect", other, "d", env=h.env)  # made, not started: joins at its start
        img_ok(h, "start", "d", env=h.env)
        assert on(_interfaces(h, "d")["eth1"], other)
        one_line_error(img(h, *run_args(h, "--rm", "--network", "none", "--network", other, IMAGE, "true"),
                           env=h.env), "conflicting options")

        # a forged plan of a's on the network it left, naming b's address there: b keeps it
        b_address = str(ipaddress.ip_interface(_interfaces(h, "b")["eth0"]).ip)
        with open(os.path.join(h.root, "a", f"net-{other}.json"), "w") as f:
            json.dump({"network": other, "ip": b_address, "ports": [], "netroot": h.env["MRUN_NETWORK_ROOT"]}, f)
        img_ok(h, "rm", "-f", "a", env=h.env)
        assert b_address in os.listdir(os.path.join(h.env["MRUN_NETWORK_ROOT"], other, "leases"))
        img_ok(h, "exec", "b", "ping", "-c1", "-W2", "c", env=h.env)
    finally:
        img(h, "rm", "-f", "a", "b", "c", "d", env=h.env)
    assert not os.listdir(os.path.join(h.env["MRUN_NETWORK_ROOT"], other, "leases"))
    img_ok(h, "network", "rm", other, env=h.env)


def test_a_container_s_first_network_is_disconnected_as_docker_s(net):
    """docker's `network disconnect` of a container's first network (`disconnect bridge c` once c
    is on a network of its own), refused before ("it is the container's first network"). The
    first of its other networks takes that part at once: the container's default route goes
    through that network's gateway, its published ports to its address there, its own /etc/hosts
    line names that address; its address on the first is let go; inspect and port say so; from its
    next start that network is its eth0. Its only network disconnected, it has lo alone (as docker
    leaves it), now and at its starts, until a `network connect` gives it a first network again,
    its ports published there. Ports that would go to an internal network are refused, as a port
    on one is at run."""
    h = net
    other, inside = h.net + "o", h.net + "i"
    img_ok(h, "network", "create", other, env=h.env)
    img_ok(h, "network", "create", "--internal", inside, env=h.env)
    gateway = json.loads(img_ok(h, "network", "inspect", other, env=h.env).stdout)["gateway"]
    first_gateway = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["gateway"]
    port = free_port_run(1)
    publish = ["-p", f"127.0.0.1:{port}:80/udp"]

    def sent() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"published", ("127.0.0.1", port))

    try:
        img_ok(h, *run_args(h, "-d", "--name", "peer", "--network", other, IMAGE, "sleep", "600"), env=h.env)
        img_ok(h, *run_args(h, "-d", "--name", "c", "--network", h.net, "--network", other, *publish, IMAGE,
                            "sleep", "600"), env=h.env)
        first = leases(h)
        img_ok(h, "network", "disconnect", h.net, "c", env=h.env)
        shown = _interfaces(h, "c")
        address = shown["eth1"].split("/")[0]
        assert list(shown) == ["eth1"], shown
        route = img_ok(h, "exec", "c", "ip", "route", env=h.env).stdout
        assert f"default via {gateway} dev eth1" in route, route
        assert received(h, "c", sent) == "published\n"
        assert img_ok(h, "port", "c").stdout == f"80/udp -> 127.0.0.1:{port}\n"
        own = [line for line in _hosts(h, "c").splitlines() if line.endswith("\tc")]
        assert own == [f"{address}\tc"], own
        assert set(json.loads(img_ok(h, "inspect", "-f", "{{json .NetworkSettings.Networks}}", "c").stdout)) == {other}
        assert first and not leases(h), "its address on the network it left is still held"
        img_ok(h, "exec", "c", "ping", "-c1", "-W2", "peer", env=h.env)
        img_ok(h, "exec", "peer", "ping", "-c1", "-W2", "c", env=h.env)
        one_line_error(img(h, "network", "connect", other, "c", env=h.env), "already on network")
        img_ok(h, "restart", "-t", "0", "c", env=h.env)  # its eth0 now
        assert list(_interfaces(h, "c")) == ["eth0"] and received(h, "c", sent) == "published\n"

        # its only network: lo alone, as docker leaves it, until it is connected to another
        address = _interfaces(h, "c")["eth0"].split("/")[0]
        img_ok(h, "network", "disconnect", other, "c", env=h.env)
        assert _interfaces(h, "c") == {} and received(h, "c", sent) == ""
        assert img_ok(h, "exec", "c", "ip", "route", env=h.env).stdout == ""
        assert address not in leases_of(h, other) and not [line for line in _hosts(h, "c").splitlines()
                                                           if line.endswith("\tc")]
        one_line_error(img(h, "network", "disconnect", other, "c", env=h.env), "not connected")
        img_ok(h, "network", "connect", h.net, "c", env=h.env)
        shown = _interfaces(h, "c")
        assert len(shown) == 1 and leases(h) == [next(iter(shown.values())).split("/")[0]], shown
        route = img_ok(h, "exec", "c", "ip", "route", env=h.env).stdout
        assert f"default via {first_gateway} dev {next(iter(shown))}" in route, route
        assert received(h, "c", sent) == "published\n"
        img_ok(h, "restart", "-t", "0", "c", env=h.env)
        assert list(_interfaces(h, "c")) == ["eth0"] and received(h, "c", sent) == "published\n"

        # one stopped: its next start is on the other network alone
        img_ok(h, *run_args(h, "-d", "--name", "s", "--network", h.net, "--network", other, IMAGE, "sleep", "600"),
               env=h.env)
        img_ok(h, "stop", "-t", "0", "s", env=h.env)
        img_ok(h, "network", "disconnect", h.net, "s", env=h.env)
        img_ok(h, "start", "s", env=h.env)
        shown = _interfaces(h, "s")
        assert list(shown) == ["eth0"] and shown["eth0"].split("/")[0] in leases_of(h, other), shown
        img_ok(h, "stop", "-t", "0", "s", env=h.env)  # and its only one: it starts with lo alone
        img_ok(h, "network", "disconnect", other, "s", env=h.env)
        img_ok(h, "start", "s", env=h.env)
        assert _interfaces(h, "s") == {} and "127.0.0.1\tlocalhost" in _hosts(h, "s")
        img_ok(h, "network", "connect", other, "s", env=h.env)  # and joins one again as it runs
        img_ok(h, "exec", "s", "ping", "-c1", "-W2", "peer", env=h.env)

        img_ok(h, *run_args(h, "-d", "--name", "i", "--network", h.net, "--network", inside, *publish[:1],
                            f"127.0.0.1:{free_port_run(1)}:80/udp", IMAGE, "sleep", "600"), env=h.env)
        one_line_error(img(h, "network", "disconnect", h.net, "i", env=h.env), "internal")
        assert list(_interfaces(h, "i")) == ["eth0", "eth1"]
    finally:
        img(h, "rm", "-f", "c", "peer", "s", "i", env=h.env)
    for network in (other, inside):
        assert not leases_of(h, network)
        img_ok(h, "network", "rm", network, env=h.env)


def test_a_container_s_name_files_are_kept_with_it_never_in_the_state_root(net):
    """A bridge container's /etc/hosts, resolv.conf and hostname are files of its own, bound into
    it read-write. They were made in its state directory, under the state root: /run/mrun, and
    /run is a tmpfs on most hosts (a tenth of RAM), shared by the whole host (systemd, logins,
    every daemon's sockets), which a container writing into its /etc/hosts could fill. They are
    made beside its writable layer now (its bundle, on disk), as docker keeps them; names still
    come and go as peers join and leave."""
    h = net
    try:
        img_ok(h, *run_args(h, "-d", "--name", "c", "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
        bundle = os.path.join(h.image_root, "containers", "c")
        for key, name in (("HostsPath", "hosts"), ("ResolvConfPath", "resolv.conf"), ("HostnamePath", "hostname")):
            assert not os.path.exists(os.path.join(h.root, "c", name)), f"{name} in the state root"
            assert img_ok(h, "inspect", "-f", f"{{{{.{key}}}}}", "c").stdout.strip() == os.path.join(bundle, name)
        img_ok(h, "exec", "c", "sh", "-c", "head -c 1048576 /dev/zero >> /etc/hosts", env=h.env)
        state = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(os.path.join(h.root, "c"))
                    for f in files)
        assert state < 64 << 10, f"the state directory holds {state} bytes"
        img_ok(h, *run_args(h, "-d", "--name", "peer", "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
        assert "\tpeer\t" in img_ok(h, "exec", "c", "cat", "/etc/hosts", env=h.env).stdout
        img_ok(h, "rm", "-f", "peer", env=h.env)
        assert "\tpeer\t" not in img_ok(h, "exec", "c", "cat", "/etc/hosts", env=h.env).stdout
    finally:
        img(h, "rm", "-f", "c", "peer", env=h.env)


def test_a_container_s_own_hosts_file_costs_no_other_its_memory(net):
    """A container's /etc/hosts is a file of its own (mrun's, bound into it, written by it at
    will), which mrun rewrites in place as others join or leave its network. That read it whole:
    one that wrote 300 MB there made another's `run` on its network take 1.2 GB and 4 s (seen
    here), so a few GB took the host's memory. A file larger than mrun ever writes is its
    container's doing: it is left as it is, and the others' runs cost what they did."""
    h = net
    size = 64 << 20
    try:
        img_ok(h, *run_args(h, "-d", "--name", "big", "--network", h.net, IMAGE, "sleep", "600"), env=h.env)
        img_ok(h, "exec", "big", "sh", "-c", f"head -c {size} /dev/zero > /etc/hosts", env=h.env)
        argv = [h.binary, "--root", h.root, "--image-root", h.image_root,
                *run_args(h, "--rm", "--network", h.net, IMAGE, "true")]
        largest = subprocess.run([sys.executable, "-c", LARGEST_RSS, *argv], capture_output=True, text=True,
                                 check=True, env={**os.environ, **h.base_env, **h.env, "MRUN_WARM": "0"})
        assert int(largest.stdout) < (size >> 10) // 2, f"a run beside it took {largest.stdout.strip()} KiB"
        hosts = img_ok(h, "inspect", "-f", "{{.HostsPath}}", "big").stdout.strip()
        assert os.path.getsize(hosts) == size  # as its container left it
    finally:
        img(h, "rm", "-f", "big", env=h.env)


def test_docker_s_long_network_form_gives_each_network_its_settings(net):
    """docker's `--network name=NET,alias=A,ip=IP,mac-address=MAC,gw-priority=N` (its CLI since 25):
    each network's own aliases, address and MAC; the network of highest gw-priority gives the
    default route (here: its eth0, with -p), as docker's. The form was read as a network's name.
    What mrun's IPv4 bridges cannot give (ip6, link-local-ip, driver-opt) is one line naming it, and
    settings given twice over (--ip beside a first network's ip=) are refused as docker's CLI does."""
    h = net
    other = h.net + "l"
    img_ok(h, "network", "create", other, env=h.env)
    base = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"].rsplit(".", 1)[0]
    gateway = json.loads(img_ok(h, "network", "inspect", other, env=h.env).stdout)["gateway"]
    try:
        for name, network in (("p1", h.net), ("p2", other)):
            img_ok(h, *run_args(h, "-d", "--name", name, "--network", network, IMAGE, "sleep", "600"), env=h.env)
        img_ok(h, *run_args(h, "-d", "--name", "c", "--network", f"name={h.net},alias=web,ip={base}.20",
                            "--network", f"NAME={other},mac-address=02:00:00:00:00:42,gw-priority=1,alias=api",
                            IMAGE, "sleep", "600"), env=h.env)
        for _ in range(2):  # as made, then as its restart makes it again
            shown = _interfaces(h, "c")
            assert shown["eth1"] == f"{base}.20/24", shown
            links = img_ok(h, "exec", "c", "ip", "-o", "link", "show", "eth0", env=h.env).stdout
            assert "link/ether 02:00:00:00:00:42 " in links, links
            route = img_ok(h, "exec", "c", "ip", "route", env=h.env).stdout
            assert f"default via {gateway} dev eth0" in route, route
            img_ok(h, "exec", "p1", "ping", "-c1", "-W2", "web", env=h.env)
            img_ok(h, "exec", "p2", "ping", "-c1", "-W2", "api", env=h.env)
            assert "bad address 'api'" in img(h, "exec", "p1", "ping", "-c1", "-W1", "api", env=h.env).stderr
            img_ok(h, "restart", "-t", "0", "c", env=h.env)
        for value, needle in (("name=x,ip6=fd00::1", "IPv4"), ("name=x,link-local-ip=169.254.1.1", "IPv4"),
                              ("name=x,driver-opt=a=b", "driver-opt"), ("name=x,foo=1", "'foo'"),
                              ("alias=x", "name=NET"), ("name=x,gw-priority=high", "gw-priority"),
                              ("name=x,mac-address=zz", "zz"), ('name=x,alias="a', "comma-separated")):
            one_line_error(img(h, *run_args(h, "--rm", "--network", value, IMAGE, "true"), env=h.env), needle)
        for flags, needle in ((["--network", f"name={h.net},ip={base}.21", "--ip", f"{base}.22"], "--ip and"),
                              (["--network", f"name={h.net},alias=a", "--network-alias", "b"], "--network-alias and"),
                              (["--network", f"name={h.net},alias=a", "--network", h.net], "multiple times")):
            one_line_error(img(h, *run_args(h, "--rm", *flags, IMAGE, "true"), env=h.env), needle)
    finally:
        img(h, "rm", "-f", "c", "p1", "p2", env=h.env)
    img_ok(h, "network", "rm", other, env=h.env)


def test_a_container_s_other_networks_are_held_again_when_its_roots_are_lost(net):
    """Its places on its other networks are repaired as its first one's: the network root removed
    (its definitions and leases held again from the container's plans), then its state directory
    (its plans written back from its kept record); `rm` then lets every address go."""
    h = net
    other = h.net + "y"
    img_ok(h, "network", "create", other, env=h.env)
    root = h.env["MRUN_NETWORK_ROOT"]
    try:
        img_ok(h, *run_args(h, "-d", "--name", "both", "--network", h.net, "--network", other, IMAGE, "sleep", "600"),
               env=h.env)
        held = {n: os.listdir(os.path.join(root, n, "leases")) for n in (h.net, other)}
        remove_under_mrun(root)
        img_ok(h, "ps", env=h.env)
        assert {n: os.listdir(os.path.join(root, n, "leases")) for n in (h.net, other)} == held
        remove_under_mrun(os.path.join(h.root, "both"))
        img_ok(h, "ps", env=h.env)
        assert os.path.exists(os.path.join(h.root, "both", f"net-{other}.json"))
        img_ok(h, "rm", "-f", "both", env=h.env)
        assert not os.listdir(os.path.join(root, other, "leases")) and not leases(h)
    finally:
        img(h, "rm", "-f", "both", env=h.env)
        img(h, "network", "rm", other, env=h.env)


def test_networks_are_isolated_from_each_other_as_docker_s(net):
    """docker isolates its networks from each other: a container reaches another network's
    containers only by joining that network. mrun's host forwarded between its bridges, so any
    container reached every other network's (the default one's too) by address. Now each
    network's bridge forwards to no other's (rules in mrun's table, gone with the network); a
    container that joins both reaches each side; out of the networks, nothing changes. A port one
    network's container publishes is reached from another's through the host, as docker's proxy
    passes it on (the isolation dropped that too)."""
    from mrun.network import firewall

    h = net
    other = h.net + "z"
    img_ok(h, "network", "create", other, env=h.env)
    fetch = "timeout 3 wget -q -O - http://{}:8000/index.html"
    try:
        for name, network in (("here", h.net), ("there", other), ("plain", "bridge")):
            published = ("-p", "18095:8000") if name == "there" else ()
            img_ok(h, *run_args(h, "-d", "--name", name, "--network", network, *published, IMAGE, "sh", "-c",
                                HTTPD.format(tag=name, listen="8000")), env=h.env)
        for source, target in (("here", "there"), ("there", "here"), ("plain", "here"), ("here", "plain")):
            r = img(h, "exec", source, "sh", "-c", fetch.format(ip_of(h, target)), env=h.env)
            assert r.returncode != 0, f"{source} reached {target}: {r.stdout}"
        img_ok(h, "exec", "here", "sh", "-c", WGET.format(url="http://127.0.0.1:8000/index.html"), env=h.env)  # up
        through_the_host = img_ok(h, *run_args(h, "--rm", "--network", h.net, "--add-host", "hostgw:host-gateway",
                                               IMAGE, "sh", "-c", WGET.format(url="http://hostgw:18095/index.html")),
                                  env=h.env)
        assert through_the_host.stdout == "hello-there\n"
        img_ok(h, "network", "connect", other, "here", env=h.env)
        assert img_ok(h, "exec", "here", "sh", "-c", fetch.format("there"), env=h.env).stdout == "hello-there\n"
        img_ok(h, "network", "disconnect", other, "here", env=h.env)
        for network in (h.net, other):  # the control: without the rules, the host forwards between them
            firewall.remove(_tag_of(h, network))
        assert img_ok(h, "exec", "here", "sh", "-c", fetch.format(ip_of(h, "there")), env=h.env).stdout == \
            "hello-there\n"
    finally:
        img(h, "rm", "-f", "here", "there", "plain", env=h.env)
    img_ok(h, "network", "rm", other, env=h.env)
    assert other not in nft_rules()


@pytest.mark.parametrize("images", ["warm"], indirect=True)
def test_an_older_mrun_s_isolation_is_made_again_at_the_next_start(net):
    """A network made by an mrun whose isolation dropped connections to published ports too (its
    forward rules look at no connection state) gets today's rules at its next container's start,
    in one transaction, as a network missing its rules does."""
    h = net
    tag = _tag_of(h, h.net)

    def forward_rules() -> list[str]:
        listing = subprocess.run(["nft", "-a", "list", "chain", "ip", "mrun", "forward"], capture_output=True,
                                 text=True, check=True).stdout
        return [line.strip() for line in listing.splitlines() if f'"{tag}"' in line]

    img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)
    today = forward_rules()
    assert today and all("ct status" in rule for rule in today), today
    older = ""
    for rule in today:
        text, handle = rule.rsplit(" # handle ", 1)
        older += f"delete rule ip mrun forward handle {handle}\n"
        older += f"add rule ip mrun forward {text.replace('ct status ! dnat ', '')}\n"
    subprocess.run(["nft", "-f", "-"], input=older, text=True, check=True)
    assert not any("ct status" in rule for rule in forward_rules())
    img_ok(h, *run_args(h, "--rm", "--network", h.net, IMAGE, "true"), env=h.env)
    again = forward_rules()
    assert len(again) == len(today) and all("ct status" in rule for rule in again), again


def _tag_of(h, network: str) -> str:
    from mrun.network.store import network_tag

    return network_tag(h.env["MRUN_NETWORK_ROOT"], network)


def test_a_hostname_that_is_not_utf_8_is_the_container_s_byte_for_byte(net):
    """`--hostname` given bytes that are not UTF-8 (argv is bytes): an internal error
    ("'utf-8' codec can't encode") where mrun wrote its /etc/hostname (--network none) or its
    /etc/hosts (a bridge network), and at sethostname. The container has those bytes, as
    docker's; a --domainname of them is one line (docker's printable rule)."""
    h = net
    name = "h\udcff"  # the byte 0xff, as Python reads it from argv
    for network in ("none", h.net):
        r = img_ok(h, *run_args(h, "--rm", "--network", network, "--hostname", name, IMAGE, "sh", "-c",
                                "hostname | od -An -tx1; grep -c $(hostname) /etc/hosts /etc/hostname"), env=h.env)
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["68", "ff", "0a"], r.stdout
        in_hosts = "1" if network != "none" else "0"  # a bridge's /etc/hosts names the container
        assert lines[1:] == [f"/etc/hosts:{in_hosts}", "/etc/hostname:1"], r.stdout
    one_line_error(img(h, *run_args(h, "--rm", "--domainname", name, IMAGE, "true")), "--domainname")


def test_an_nft_failure_is_told_by_nft_s_error_line():
    """nft says what went wrong on one line, then echoes the script's line and a row of carets
    under the part it means: mrun passed on the last line, so a failure read "mrun: nft: ^^^^".
    (A script naming no table of anyone's: nothing on the host changes.)"""
    from mrun.errors import MrunError
    from mrun.network import firewall

    with pytest.raises(MrunError) as caught:
        firewall.nft("add rule ip mrun-test-no-such-table prerouting ip daddr 127.1 accept\n")
    assert str(caught.value).startswith("nft: syntax error") and "^" not in str(caught.value), caught.value


def test_network_and_volume_create_ignore_as_quadlet_units_run_them(net):
    """A Quadlet .network (.volume) unit's ExecStart is `podman network (volume) create --ignore
    NAME` at every start: one of that name is no error and is left as it is, whatever the start
    asks of it; without --ignore, a network of that name is still refused."""
    h = net
    subnet = json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"]
    assert img_ok(h, "network", "create", "--ignore", h.net, env=h.env).stdout == f"{h.net}\n"
    assert img_ok(h, "network", "create", "--ignore", "--subnet", "10.213.0.0/24", h.net,
                  env=h.env).stdout == f"{h.net}\n"
    assert json.loads(img_ok(h, "network", "inspect", h.net, env=h.env).stdout)["subnet"] == subnet
    one_line_error(img(h, "network", "create", h.net, env=h.env), "already exists")
    one_line_error(img(h, "network", "ls", "--ignore", env=h.env), "--ignore", "create's")
    img_ok(h, "volume", "create", "--label", "made=first", "data")
    assert img_ok(h, "volume", "create", "--ignore", "--label", "made=again", "data").stdout == "data\n"
    assert img_ok(h, "volume", "inspect", "-f", "{{json .Labels}}", "data").stdout == '{"made":"first"}\n'
    one_line_error(img(h, "volume", "ls", "--ignore"), "--ignore", "create's")
    img_ok(h, "volume", "rm", "data")
