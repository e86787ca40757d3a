"""Find backends through the ``mrun.backends`` entry-point group and pick one for a bundle.

pluggy's PluginManager is made on first need (``Backends.pm``): bidding and one backend's
hooks (everything ``create`` does) are called here directly, with pluggy's calling rules
(``_Caller``), because importing pluggy costs ~10 ms of every ``create``. Calls that fan out to
every backend (``mrun_warm``, ``mrun_features``, ``mrun_commands``, ``mrun_precompile``), and a
backend whose hook pluggy must wrap, go through pluggy itself.

Scanning entry points means reading every installed distribution's metadata (~35 ms with
importlib.metadata here). The result is cached in a small file keyed by the mtimes of the
``sys.path`` directories — installing or removing a distribution changes its directory's
mtime — so the verb that dispatches (``create``) normally only imports the backend modules.
``MRUN_PLUGIN_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import os
import sys

from mrun import annotations as ann
from mrun import jsonio
from mrun.errors import InvalidSpec, MrunError
from mrun.plugins import hookspecs, markers
from mrun.plugins.api import Bundle, Claim
from mrun.plugins.installed import installed_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GROUP = "mrun.backends"
# Backends may be forced by this annotation (crun's name for the same idea).
HANDLER_ANNOTATION = ann.HANDLER
ANNOTATION_PRIORITY = 1000  # a bid this high means "the bundle's annotations ask for me" (hookspecs)


def _cache_path() -> str:
    """One file per environment (venv), so that two installs do not keep evicting each other."""
    import zlib

    from mrun.knobs import cache_home

    return os.path.join(cache_home(), "mrun", f"entry-points-{zlib.crc32(sys.prefix.encode()):08x}.json")


def _unknown_hooks(impls: dict[str, Any]) -> list[str]:
    """Names of a plugin's hook implementations (``_impls``) that no hookspec declares (pluggy
    would keep them, uncalled, until ``check_pending``, which would then fail every backend at once)."""
    return sorted(name for name in impls if not hasattr(hookspecs, name))


def _impls(plugin: object) -> dict[str, Any]:
    """hook name -> the plugin's function for it (``specname`` honoured), as pluggy finds them."""
    found = {}
    for attr in dir(plugin):
        function = getattr(plugin, attr, None)
        opts = getattr(function, markers.IMPL, None)
        if isinstance(opts, dict):
            found[opts.get("specname") or attr] = function
    return found


def _misfits(impls: dict[str, Any]) -> list[str]:
    """Hook functions (``_impls``) that ask for an argument their hookspec does not offer (pluggy
    refuses them when it registers the plugin)."""
    bad = []
    for name, function in impls.items():
        spec, wanted = getattr(hookspecs, name, None), markers.argnames(function)
        offered = markers.argnames(spec) if spec is not None else None
        if wanted is not None and offered is not None and not set(wanted) <= set(offered):
            bad.append(f"{name}({', '.join(sorted(set(wanted) - set(offered)))})")
    return sorted(bad)


class _Caller:
    """One backend's implementation of one hook, called as pluggy calls it: only the keyword
    arguments its function names, and for a ``firstresult`` hookspec its own result, else a list
    of the non-None results (of one function: none or one)."""

    def __init__(self, name: str, function: Any, args: tuple[str, ...]) -> None:
        spec_opts = getattr(getattr(hookspecs, name), markers.SPEC, None) or {}
        self.name, self.function, self.first = name, function, bool(spec_opts.get("firstresult"))
        self.args = args

    def __call__(self, **kwargs: Any) -> Any:
        if self.function is None:
            return None if self.first else []
        missing = [a for a in self.args if a not in kwargs]
        if missing:
            raise MrunError(f"hook {self.name} needs {', '.join(missing)}, which the caller did not pass")
        result = self.function(*[kwargs[a] for a in self.args])
        if self.first:
            return result
        return [] if result is None else [result]


class BackendHooks:
    """The hooks of one backend only. An attribute that is no hook of the contract is an error here,
    not a silent no-op."""

    def __init__(self, backends: Backends, name: str, plugin: object) -> None:
        self._backends, self._name, self._plugin = backends, name, plugin

    def __getattr__(self, hook_name: str) -> Any:
        if not hook_name.startswith("mrun_") or not hasattr(hookspecs, hook_name):
            raise AttributeError(f"{hook_name!r} is not a hook of mrun's backend contract")
        function = self._backends.impls[self._name].get(hook_name)
        opts = getattr(function, markers.IMPL, None) or {}
        wraps = opts.get("wrapper") or opts.get("hookwrapper")
        args = markers.argnames(function) if function is not None else ()
        if function is not None and (wraps or args is None):
            pm = self._backends.pm  # pluggy's own rules for what it alone knows how to call
            others = [p for p in pm.get_plugins() if p is not self._plugin]
            return pm.subset_hook_caller(hook_name, remove_plugins=others)
        return _Caller(hook_name, function, args)


def _read_cache(path: str) -> dict[str, Any]:
    """The cached scan, if it and its directory are ours alone: it names the modules imported as
    backends, and a planted one took the place of the real backends (OSError: scan anew)."""
    from mrun.umask import ours_alone

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        if not (ours_alone(os.fstat(f.fileno())) and ours_alone(os.stat(os.path.dirname(path)))):
            raise OSError(f"{path}: writable by others or not ours")
        found = jsonio.loads(f.read())
    return found if isinstance(found, dict) else {}


def entry_points() -> list[tuple[str, str]]:
    """(name, "module[:attr]") for every backend entry point, cached as described above."""
    use_cache = os.environ.get("MRUN_PLUGIN_CACHE", "1") != "0"
    key = installed_key()
    path = _cache_path()
    if use_cache:
        try:
            cached = _read_cache(path)
            if cached.get("key") == key:
                return [tuple(e) for e in cached["entries"]]  # type: ignore[misc]
        except (OSError, ValueError, KeyError):
            pass
    from importlib.metadata import entry_points as scan

    entries = sorted({(ep.name, ep.value) for ep in scan(group=GROUP)})
    if use_cache:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(jsonio.dumps({"key": key, "entries": entries}))
            os.rename(tmp, path)
        except OSError:
            pass
    return entries


_shared: Backends | None = None


class Backends:
    """The loaded backends, in the order they were registered, plus dispatch. pluggy's manager
    over the same plugins is made on first use of ``pm``."""

    def __init__(self, plugins: list[tuple[str, object]]) -> None:
        self.plugins = plugins
        self.impls = {name: _impls(plugin) for name, plugin in plugins}
        self._pm: Any = None

    @property
    def pm(self) -> Any:  # pluggy.PluginManager
        if self._pm is None:
            import pluggy

            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            for name, plugin in self.plugins:
                pm.register(plugin, name=name)
            pm.check_pending()  # nothing unknown is left registered (see _unknown_hooks)
            self._pm = pm
        return self._pm

    @classmethod
    def shared(cls) -> Backends:
        """The plugin manager of this process, loaded once: the warm template loads it (and
        pluggy's manager) before it forks, so its children never do. What is installed cannot
        change under it: a template whose installed code changed serves nobody."""
        global _shared
        if _shared is None:
            _shared = cls.load()
        return _shared

    @classmethod
    def load(cls) -> Backends:
        plugins: list[tuple[str, object]] = []
        for name, value in entry_points():
            module, _, attr = value.partition(":")
            try:
                __import__(module)  # not importlib.import_module: importlib's package imports warnings,
                obj: Any = sys.modules[module]  # ~1.5 ms of every create (entry points name modules absolutely)
                for part in filter(None, attr.split(".")):
                    obj = getattr(obj, part)
            except Exception as e:  # a broken third-party plugin must not break the others
                print(f"mrun: warning: backend {name!r} ({value}) failed to load: {e}", file=sys.stderr)
                continue
            impls = _impls(obj)
            unknown = _unknown_hooks(impls)
            if unknown:  # a misspelled hook would otherwise load and never be called
                print(
                    f"mrun: warning: backend {name!r} ({value}) not loaded: {', '.join(unknown)} "
                    f"{'is' if len(unknown) == 1 else 'are'} not in mrun's backend contract (mrun.plugins.hookspecs)",
                    file=sys.stderr,
                )
                continue
            misfits = _misfits(impls)
            if misfits:
                print(f"mrun: warning: backend {name!r} ({value}) not loaded: {', '.join(misfits)}: no such "
                      "argument in mrun's backend contract (mrun.plugins.hookspecs)", file=sys.stderr)
                continue
            if all(n != name for n, _ in plugins):
                plugins.append((name, obj))
        return cls(plugins)

    def plugin(self, name: str) -> object | None:
        return next((p for n, p in self.plugins if n == name), None)

    def names(self) -> list[str]:
        return [name for name, _ in self.plugins]

    def of(self, backend: str) -> BackendHooks:
        """One backend's hooks, called by name as attributes: ``backends.of("wasm").mrun_prepare(...)``."""
        chosen = self.plugin(backend)
        if chosen is None:
            raise MrunError(f"backend {backend!r} is not installed (installed: {', '.join(self.names())})")
        return BackendHooks(self, backend, chosen)

    def claims(self, bundle: Bundle) -> list[Claim]:
        """Every bid, each under the name its backend is registered as: a bid that names another
        backend (a copy-pasted plugin) would otherwise be chosen and then be "not installed"."""
        claims = []
        for name, _ in self.plugins:
            for claim in self.of(name).mrun_claim(bundle=bundle):  # none or one, as pluggy answers
                claim.backend = name
                claims.append(claim)
        order = {name: i for i, name in enumerate(self.names())}
        return sorted(claims, key=lambda c: (-c.priority, order.get(c.backend, 99)))

    def choose(self, bundle: Bundle) -> tuple[str, str, list[Claim]]:
        """-> (backend, why, all claims), within the operator's policy (plugins.policy). A forced
        backend that is missing or not allowed is an error, and so is a bundle whose annotations
        ask for a backend the policy does not allow (a claim at ANNOTATION_PRIORITY or above)."""
        from mrun.plugins import policy as backend_policy

        policy = backend_policy.load()
        forced = bundle.annotations.get(HANDLER_ANNOTATION)
        claims = self.claims(bundle)
        if policy.pin:
            if forced and forced != policy.pin:
                raise InvalidSpec(
                    f"annotation {HANDLER_ANNOTATION}={forced}: the backend policy ({policy.source}) "
                    f"pins every container to {policy.pin!r}"
                )
            self.of(policy.pin)  # installed, or one line saying so
            return policy.pin, f"pinned by the backend policy ({policy.source})", claims
        if forced:
            if self.plugin(forced) is None:
                raise MrunError(
                    f"annotation {HANDLER_ANNOTATION}={forced} asks for backend {forced!r}, "
                    f"which is not installed (installed: {', '.join(self.names())})"
                )
            if not policy.permits(forced):
                raise InvalidSpec(self._refused(f"annotation {HANDLER_ANNOTATION}={forced}", forced, policy))
            return forced, f"annotation {HANDLER_ANNOTATION}={forced}", claims
        asked = [c for c in claims if c.priority >= ANNOTATION_PRIORITY and not policy.permits(c.backend)]
        if asked and (not claims or claims[0] is asked[0]):
            raise InvalidSpec(self._refused(asked[0].reason, asked[0].backend, policy))
        permitted = [c for c in claims if policy.permits(c.backend)]
        if not permitted:
            raise MrunError(
                f"no backend can run {bundle.args[0] if bundle.args else 'this bundle'!r} "
                f"(installed: {', '.join(self.names())}; allowed by the backend policy: "
                f"{', '.join(policy.allowed) or 'all'})"
            )
        best = permitted[0]
        default = policy.default
        if best.priority <= 0 and default and default != best.backend and self.plugin(default) is not None:
            if policy.permits(default):
                return default, f"nothing bid for it; the backend policy's default ({policy.source})", claims
        return best.backend, best.reason, claims

    @staticmethod
    def _refused(what: str, backend: str, policy: Any) -> str:
        return (
            f"{what}: backend {backend!r} is not allowed by the backend policy ({policy.source}; "
            f"allowed: {', '.join(policy.allowed)})"
        )

    def commands(self) -> dict[str, Any]:
        """name -> Command for every verb the backends add."""
        found: dict[str, Any] = {}
        for commands in reversed(self.pm.hook.mrun_commands()):  # pluggy calls the last registered first
            for cmd in commands or []:
                for name in (cmd.name, *cmd.aliases):
                    found.setdefault(name, cmd)
        return found

    def features(self) -> list[dict[str, Any]]:
        return [f for f in self.pm.hook.mrun_features() if f]
