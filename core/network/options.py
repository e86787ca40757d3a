"""docker's bridge driver options (`network create -o KEY=VALUE`, compose's driver_opts) that
mrun takes, checked where they are given and again wherever a network's definition is read.
Its own module: the definition (``store``), the links (``links``) and the rules (``firewall``)
each read them, and ``store`` imports the other two."""

from __future__ import annotations

from mrun.errors import InvalidSpec
from mrun.units import decimal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# docker's bridge driver options (`network create -o KEY=VALUE`, compose's driver_opts) mrun takes
MTU_OPTION = "com.docker.network.driver.mtu"  # the bridge's and its containers' interfaces' MTU
MASQUERADE_OPTION = "com.docker.network.bridge.enable_ip_masquerade"  # false: no way out by the host's addresses
DRIVER_OPTIONS = (MTU_OPTION, MASQUERADE_OPTION)
_YES, _NO = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")  # Go's ParseBool


def driver_options(texts: list[str]) -> dict[str, str]:
    """docker's ``network create -o KEY=VALUE``s, each key one mrun's bridge driver takes and
    its value one it can use; any other is refused naming it (passed over, a network would lack
    what it was made for: an MTU its path needs)."""
    options: dict[str, str] = {}
    for text in texts:
        key, eq, value = text.partition("=")
        if not eq or key not in DRIVER_OPTIONS:
            raise InvalidSpec(f"-o {text!r}: KEY=VALUE expected, KEY one of {', '.join(DRIVER_OPTIONS)}")
        options[key] = value
    problem = options_problem(options)
    if problem:
        raise InvalidSpec(f"-o {problem}")
    return options


def options_problem(options: object) -> str:
    if not isinstance(options, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
        return "options: an object of strings expected"
    unknown = next((k for k in options if k not in DRIVER_OPTIONS), None)
    if unknown is not None:
        return f"{unknown!r}: not an option mrun's bridge driver takes"
    mtu = options.get(MTU_OPTION)
    if mtu is not None and (decimal(mtu, 65535) or 0) < 68:
        return f"{MTU_OPTION}={mtu!r}: an MTU of 68 to 65535 expected"
    masquerade = options.get(MASQUERADE_OPTION)
    if masquerade is not None and masquerade not in _YES + _NO:
        return f"{MASQUERADE_OPTION}={masquerade!r}: true or false expected"
    return ""


def mtu_of(network: dict[str, Any]) -> int:
    """The MTU a network's -o asked for (0: the kernel's default)."""
    return int((network.get("options") or {}).get(MTU_OPTION) or 0)


def masqueraded(network: dict[str, Any]) -> bool:
    """Whether its containers reach beyond the host through the host's addresses (docker's
    default; -o com.docker.network.bridge.enable_ip_masquerade=false: not)."""
    return (network.get("options") or {}).get(MASQUERADE_OPTION, "true") not in _NO
