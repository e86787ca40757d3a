"""A seeded structural mutator for JSON documents (config.json, image index/manifest/config).

Each case takes a valid document and applies one to three mutations at random paths: a value
replaced by a hostile one (wrong type, huge or negative number, NUL bytes, a very long string,
deep nesting), a key removed, an unknown key added, a list emptied or duplicated. The same seed
always gives the same cases, so a failure names a reproducible case number.
"""

from __future__ import annotations

import copy
import random
from typing import Any

HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1.5, 2**63, 2**64, 2**80, -(2**63) - 1, "", "x", "\x00", "a\x00b", "../../..",
    "/", "é", "x" * 5000, [], [None], [1, "a"], {}, {"": None}, {"x": {"y": {"z": []}}}, "sha256:" + "0" * 64,
    "sha256:zz", 1e308, -0.0, "\ud800", "a\udcff",  # a lone surrogate escape (Go: U+FFFD), a byte not UTF-8
]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _mutate_once(doc: Any, rng: random.Random) -> Any:
    paths = _paths(doc)
    path = rng.choice(paths)
    if not path:
        return rng.choice(HOSTILE) if rng.random() < 0.1 else doc
    parent, key = _get(doc, path[:-1]), path[-1]
    action = rng.random()
    if action < 0.55:
        parent[key] = copy.deepcopy(rng.choice(HOSTILE))
    elif action < 0.7:
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif action < 0.8 and isinstance(parent, dict):
        parent[rng.choice(["unknownField", "x", "", "\x00"])] = copy.deepcopy(rng.choice(HOSTILE))
    elif action < 0.9 and isinstance(parent[key], list):
        parent[key] = parent[key] * rng.choice([0, 2, 50])
    else:
        value = parent[key]
        if isinstance(value, str):
            parent[key] = rng.choice([value + "\x00", value * 100, value.upper(), "/" + value, value[:1]])
        elif isinstance(value, int) and not isinstance(value, bool):
            parent[key] = rng.choice([value + 1, -value - 1, value * 2**40, str(value)])
        else:
            parent[key] = copy.deepcopy(rng.choice(HOSTILE))
    return doc


def mutations(base: Any, count: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        doc = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            doc = _mutate_once(doc, rng)
        out.append(doc)
    return out
