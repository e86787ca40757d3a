"""The layers of ARCHITECTURE.md, enforced: a module imports only from its own package or from a
layer below its own — never upward, never sideways into a sibling package of the same layer —
and nothing outside ``mrun.backends`` imports a backend (backends are reached through the
plugin manager). Every import counts, the lazy ones inside functions included."""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = {"core": "mrun", "backends": "mrun.backends", "shims": "mrun.shims"}

# Bottom to top. A module belongs to the longest prefix listed; each prefix is one "package".
LAYERS: list[list[str]] = [
    # 0: leaves: import nothing of mrun's
    ["mrun", "mrun.errors", "mrun.jsonio", "mrun.annotations", "mrun.plugins.cli", "mrun.exiting", "mrun.knobs",
     "mrun.umask", "mrun.standard_fds"],
    # 1: the kernel as mrun uses it, and the small vocabularies everything shares
    ["mrun.kernel", "mrun.status", "mrun.schema", "mrun.units", "mrun.warm.client", "mrun.stop_signals"],
    # 2: host resources and the data everything passes around
    ["mrun.cgroups", "mrun.hooks", "mrun.defaults", "mrun.spec", "mrun.plugins.api"],
    # 3: what mrun remembers
    ["mrun.state", "mrun.bundles"],
    # 4: mechanisms
    ["mrun.sandbox", "mrun.network", "mrun.plugins", "mrun.notify_socket"],
    # 5: the operations that build a sandbox, as named steps (create, exec)
    ["mrun.operations"],
    # 6: orchestration: the runtime API
    ["mrun.runtime", "mrun.features"],
    # 7: products built on the runtime
    ["mrun.images", "mrun.backends"],
    # 8: front ends
    ["mrun.cli", "mrun.shims", "mrun.conformance"],
    # 9: the warm template, which loads the front ends and forks them
    ["mrun.warm"],
]
PACKAGE_LAYER = {package: i for i, layer in enumerate(LAYERS) for package in layer}


def package_of(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in PACKAGE_LAYER:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to ARCHITECTURE.md)")


def modules() -> dict[str, str]:
    found = {}
    for directory, package in SOURCES.items():
        for dirpath, _, files in os.walk(os.path.join(ROOT, directory)):
            if os.sep + "proto" in dirpath or "__pycache__" in dirpath:
                continue
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, name), os.path.join(ROOT, directory))[:-3]
                    dotted = rel.replace(os.sep, ".").removesuffix("__init__").rstrip(".")
                    found[f"{package}.{dotted}" if dotted else package] = os.path.join(dirpath, name)
    return found


def imported(path: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mrun":
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "mrun")
    return names


def test_no_module_imports_upward_or_sideways():
    known = modules()
    problems = []
    for module, path in sorted(known.items()):
        mine = package_of(module)
        for name in sorted(imported(path)):
            if name not in known:  # `from mrun.x import func`: the module is mrun.x
                continue
            theirs = package_of(name)
            if theirs == mine or theirs.startswith(mine + ".") or mine.startswith(theirs + "."):
                continue  # within one package (a subpackage of it counts as its own)
            if name.startswith("mrun.backends") and not module.startswith("mrun.backends"):
                problems.append(f"{module} imports {name}: backends are reached through the plugin manager")
            elif PACKAGE_LAYER[theirs] >= PACKAGE_LAYER[mine]:
                how = "a sibling" if PACKAGE_LAYER[theirs] == PACKAGE_LAYER[mine] else "a layer above"
                problems.append(f"{module} (layer {PACKAGE_LAYER[mine]}) imports {name}: {how}")
    assert not problems, "\n".join(problems)


def test_every_module_is_in_a_layer():
    for module in modules():
        package_of(module)


def test_no_two_modules_import_each_other():
    """Within a package too: a pair that needs each other is one module, or needs a third below both."""
    known = modules()
    graph = {m: {n for n in imported(p) if n in known and n != m} for m, p in known.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())})
    assert not pairs, "\n".join(f"{a} <-> {b}" for a, b in pairs)


def test_every_package_is_installed():
    """A package missing from pyproject.toml works from a checkout and fails once installed."""
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    packages = {
        ".".join(m.split(".")[: -1 if not path.endswith("__init__.py") else None])
        for m, path in modules().items()
    }
    assert packages <= listed, f"add to [tool.setuptools] packages: {sorted(packages - listed)}"


def test_annotation_keys_are_spelled_in_one_module():
    """mrun.annotations owns every key mrun reads or writes (and the rule that images cannot set
    the reserved ones); anywhere else they are named, never retyped as string literals."""
    import re

    prefixes = (
        r"org\.mrun\.", r"run\.oci\.", r"module\.wasm\.image/", r"io\.kubernetes\.cri\.",
        r"io\.containerd\.runc\.v2\.group", r"org\.opencontainers\.image\.stopSignal",
    )
    key = re.compile(r"""["'](""" + "|".join(prefixes) + ")")
    found = []
    for module, path in modules().items():
        if module == "mrun.annotations":
            continue
        for n, line in enumerate(open(path), 1):
            if key.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{path}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
