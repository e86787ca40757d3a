"""The hook markers of mrun's backend contract, made without importing pluggy.

They set exactly what ``pluggy.HookspecMarker("mrun")`` and ``pluggy.HookimplMarker("mrun")``
set (an ``mrun_spec`` / ``mrun_impl`` dict of the same options), so pluggy's PluginManager
reads them as its own. Why not pluggy's: importing pluggy costs ~10 ms here (it pulls in
``inspect``, ``typing``, ``ast``, ``dis``), and ``create``, which runs once per container for
containerd's runc shim and podman, needs no more than to call one backend's functions
(``mrun.plugins.manager`` makes pluggy's manager only for what needs it).
"""

from __future__ import annotations

PROJECT = "mrun"
SPEC, IMPL = f"{PROJECT}_spec", f"{PROJECT}_impl"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def hookspec(function: Callable | None = None, firstresult: bool = False, historic: bool = False,
             warn_on_impl: Warning | None = None, warn_on_impl_args: dict[str, Warning] | None = None) -> Any:
    def mark(func: Callable) -> Callable:
        setattr(func, SPEC, {"firstresult": firstresult, "historic": historic, "warn_on_impl": warn_on_impl,
                             "warn_on_impl_args": warn_on_impl_args})
        return func

    return mark if function is None else mark(function)


def hookimpl(function: Callable | None = None, hookwrapper: bool = False, optionalhook: bool = False,
             tryfirst: bool = False, trylast: bool = False, specname: str | None = None,
             wrapper: bool = False) -> Any:
    def mark(func: Callable) -> Callable:
        setattr(func, IMPL, {"wrapper": wrapper, "hookwrapper": hookwrapper, "optionalhook": optionalhook,
                             "tryfirst": tryfirst, "trylast": trylast, "specname": specname})
        return func

    return mark if function is None else mark(function)


def argnames(func: object) -> tuple[str, ...] | None:
    """The arguments pluggy passes to a hook function: its positional parameters without a
    default, ``self`` left out of a bound method. None for anything but a plain function or a
    bound method (pluggy's own rules then apply: the caller goes through pluggy)."""
    bound = hasattr(func, "__self__") and hasattr(func, "__func__")
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    if code is None or (not bound and "." in getattr(func, "__qualname__", ".").rsplit("<locals>.", 1)[-1]):
        return None
    defaults = getattr(getattr(func, "__func__", func), "__defaults__", None) or ()
    names = code.co_varnames[: code.co_argcount]
    names = names[: len(names) - len(defaults)]
    return names[1:] if bound and names else names
