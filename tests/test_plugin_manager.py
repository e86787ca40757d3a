"""The plugin manager in-process, no root and no sandbox: which backend a bid is counted for, what
a broken backend package does to the others, and that hooks are called by checked names."""

from __future__ import annotations

import sys
import textwrap

import pytest
from mrun.errors import MrunError
from mrun.plugins import manager
from mrun.plugins.api import Bundle


class FakeSpec:
    def __init__(self, args: list[str]) -> None:
        self.raw: dict = {"process": {"args": args}}
        self.rootfs = "/nonexistent"
        self.annotations: dict[str, str] = {}
        self.process = self.raw["process"]


@pytest.fixture
def backends_from(tmp_path, monkeypatch, capsys):
    """Backends.load() over the given modules only: {entry-point name: module source}."""

    def load(sources: dict[str, str]) -> tuple[manager.Backends, str]:
        entries = []
        for name, source in sources.items():
            module = f"mrun_test_backend_{name}"
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            entries.append((name, module))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(manager, "entry_points", lambda: entries)
        backends = manager.Backends.load()
        return backends, capsys.readouterr().err

    yield load
    for name in list(sys.modules):
        if name.startswith("mrun_test_backend_"):
            del sys.modules[name]


BIDDER = """
from mrun.plugins.api import Claim
from mrun.plugins.hookspecs import hookimpl

@hookimpl
def mrun_claim(bundle):
    return Claim({claimed!r}, {priority}, "it says so")
"""


def test_a_bid_counts_for_the_backend_that_made_it(backends_from):
    """A plugin copied from another one still bids as "bar": it is chosen under its own name."""
    backends, _ = backends_from({"liar": BIDDER.format(claimed="bar", priority=50)})
    name, why, claims = backends.choose(Bundle(FakeSpec(["/x"])))
    assert (name, why) == ("liar", "it says so")
    assert [c.backend for c in claims] == ["liar"]
    backends.of(name)  # installed under that name


def test_a_misspelled_hook_keeps_its_backend_out_and_says_why(backends_from):
    misspelled = "\n@hookimpl\ndef mrun_payoad(container, process):\n    pass\n"
    broken = BIDDER.format(claimed="typo", priority=90) + misspelled
    good = BIDDER.format(claimed="good", priority=10)
    backends, err = backends_from({"typo": broken, "good": good})
    assert backends.names() == ["good"]
    assert "backend 'typo'" in err and "mrun_payoad" in err and len(err.strip().splitlines()) == 1
    assert backends.choose(Bundle(FakeSpec(["/x"])))[0] == "good"


def test_hooks_are_called_by_checked_names(backends_from):
    backends, _ = backends_from({"good": BIDDER.format(claimed="good", priority=10)})
    with pytest.raises(AttributeError, match="not a hook"):
        backends.of("good").mrun_payoad  # noqa: B018 - the typo is the test
    assert backends.of("good").mrun_features() == []  # a declared hook it does not implement
    with pytest.raises(MrunError, match="not installed"):
        backends.of("absent")


VERBS = """
from mrun.plugins.api import Arg, Command
from mrun.plugins.hookspecs import hookimpl

def hello(g, name):
    print("hello", name)
    return 7

@hookimpl
def mrun_commands():
    return [Command("hello", "greet", hello, (Arg("name", "who"),)), Command("state", "shadow a core verb", hello)]
"""


def test_a_backend_adds_its_own_verbs_and_core_verbs_win(backends_from, monkeypatch, capsys):
    from mrun.cli import fastparse, main

    backends, _ = backends_from({"verby": VERBS})
    assert set(backends.commands()) == {"hello", "state"}
    monkeypatch.setattr(fastparse, "backend_commands", backends.commands)
    assert main.main(["hello", "world"]) == 7
    assert capsys.readouterr().out == "hello world\n"
    _, cmd, _ = fastparse.parse(["state", "c1"])
    assert cmd.handler == "state"  # the core's, not the backend's


def test_the_operators_policy_restricts_defaults_and_pins(backends_from, monkeypatch, tmp_path):
    from mrun.errors import InvalidSpec

    backends, _ = backends_from({
        "native": BIDDER.format(claimed="native", priority=0),
        "fancy": BIDDER.format(claimed="fancy", priority=60),
        "asked": BIDDER.format(claimed="asked", priority=1000),
    })
    plain = Bundle(FakeSpec(["/x"]))
    assert backends.choose(plain)[0] == "asked"
    policy = tmp_path / "policy.json"
    policy.write_text('{"allowed": ["native", "fancy"], "default": "fancy"}')
    monkeypatch.setenv("MRUN_POLICY", str(policy))
    with pytest.raises(InvalidSpec, match="'asked' is not allowed by the backend policy"):
        backends.choose(plain)  # an annotation-level bid for a forbidden backend: refused, not rerouted
    monkeypatch.setenv("MRUN_BACKENDS_ALLOWED", "native,fancy,other")
    policy.write_text('{"default": "fancy"}')
    backends2, _ = backends_from({"native": BIDDER.format(claimed="native", priority=0)})
    name, why, _ = backends2.choose(plain)
    assert name == "native"  # the default is not installed here: the fallback stays
    forced = FakeSpec(["/x"])
    forced.annotations = {"run.oci.handler": "fancy"}
    monkeypatch.setenv("MRUN_BACKENDS_ALLOWED", "native")
    with pytest.raises(InvalidSpec, match="not allowed by the backend policy"):
        backends.choose(Bundle(forced))
    monkeypatch.setenv("MRUN_BACKEND_PIN", "native")
    sources = f"{policy} and $MRUN_BACKENDS_ALLOWED and $MRUN_BACKEND_PIN"
    assert backends.choose(Bundle(FakeSpec(["/x"])))[:2] == ("native", f"pinned by the backend policy ({sources})")
    forced.annotations = {"run.oci.handler": "fancy"}
    with pytest.raises(InvalidSpec, match="pins every container to 'native'"):
        backends.choose(Bundle(forced))


def test_the_policys_default_takes_what_nobody_bid_for(backends_from, monkeypatch):
    backends, _ = backends_from({
        "native": BIDDER.format(claimed="native", priority=0),
        "other": "from mrun.plugins.hookspecs import hookimpl\n@hookimpl\ndef mrun_claim(bundle):\n    return None\n",
    })
    monkeypatch.setenv("MRUN_POLICY", "/nonexistent/policy.json")
    monkeypatch.setenv("MRUN_BACKEND_DEFAULT", "other")
    name, why, _ = backends.choose(Bundle(FakeSpec(["/x"])))
    assert name == "other" and "policy's default" in why


def test_the_markers_are_pluggys_own(backends_from):
    """mrun's hook markers are made without pluggy, for pluggy: the same options, and pluggy's
    manager registers a backend marked with them (the template and fan-out calls use it)."""
    import pluggy
    from mrun.plugins import hookspecs, markers

    def f(bundle):
        return None

    ours = markers.hookimpl(tryfirst=True, specname="mrun_claim")(f)
    opts = dict(ours.mrun_impl)
    del ours.mrun_impl
    theirs = pluggy.HookimplMarker("mrun")(tryfirst=True, specname="mrun_claim")(f)
    assert opts == dict(theirs.mrun_impl)
    spec = pluggy.HookspecMarker("mrun")(firstresult=True)(lambda config: None).mrun_spec
    assert markers.hookspec(firstresult=True)(lambda config: None).mrun_spec == spec
    assert hookspecs.mrun_modify_spec.mrun_spec["firstresult"] is True
    backends, _ = backends_from({"good": BIDDER.format(claimed="good", priority=10)})
    assert backends.pm.get_plugin("good") is not None  # pluggy took the same plugin
    assert [c.backend for c in backends.claims(Bundle(FakeSpec(["/x"])))] == ["good"]


def test_a_hook_asking_for_an_argument_the_contract_lacks_keeps_its_backend_out(backends_from):
    odd = BIDDER.format(claimed="odd", priority=90) + "\n@hookimpl\ndef mrun_payload(container, spool):\n    pass\n"
    backends, err = backends_from({"odd": odd, "good": BIDDER.format(claimed="good", priority=10)})
    assert backends.names() == ["good"]
    assert "backend 'odd'" in err and "mrun_payload(spool)" in err and len(err.strip().splitlines()) == 1
    backends.pm  # noqa: B018 - pluggy's manager, made from what loaded, registers without complaint


def test_one_backends_hooks_follow_pluggys_calling_rules(backends_from):
    source = BIDDER.format(claimed="rules", priority=10) + """
@hookimpl
def mrun_modify_spec(config, bundle):
    return {"seen": sorted(config)}

@hookimpl(specname="mrun_stats")
def numbers(container, extra=7):
    return {"extra": extra}

@hookimpl
def mrun_features():
    return None
"""
    backends, _ = backends_from({"rules": source})
    hooks = backends.of("rules")
    assert hooks.mrun_modify_spec(bundle=None, config={"b": 1, "a": 2}) == {"seen": ["a", "b"]}  # firstresult
    assert hooks.mrun_stats(container=None) == {"extra": 7}  # specname; a default is not passed
    assert hooks.mrun_features() == []  # not firstresult: the results that are not None
    assert hooks.mrun_prepare(container=None, process={}) is None  # firstresult, not implemented
    for name in ("mrun_modify_spec", "mrun_stats", "mrun_features", "mrun_prepare"):
        kwargs = {"mrun_modify_spec": {"bundle": None, "config": {"b": 1, "a": 2}}, "mrun_stats": {"container": None},
                  "mrun_features": {}, "mrun_prepare": {"container": None, "process": {}}}[name]
        pluggy_caller = backends.pm.subset_hook_caller(name, remove_plugins=[])
        assert getattr(hooks, name)(**kwargs) == pluggy_caller(**kwargs), name  # the same answer as pluggy's
