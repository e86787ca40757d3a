"""The backend contract. A backend is a pluggy plugin registered under the entry-point group
``mrun.backends``; the entry-point name is the backend's name.

Lifecycle of one container, and where each hook runs:

1. ``mrun_claim`` (host): every backend may bid for the bundle; the core picks the highest
   priority and can explain why (``mrun explain``).
2. ``mrun_modify_spec`` (host): the chosen backend may rewrite the config before the process
   plan, the cgroup and the network are derived from it.
3. ``mrun_prepare`` (host, before any namespace): the chosen backend loads or compiles what
   it needs; after pivot_root the host filesystem is gone.
4. ``mrun_payload`` (inside the sandbox, after pivot_root, before the start signal): resolve
   and check the entrypoint; raising here fails ``create`` with the message.
5. ``Payload.run()`` (inside the sandbox, after ``start`` and the privilege drop).

Bid priorities (``Claim.priority``; the highest wins, ties go to the backend loaded first):

- ``0``: "I can run anything" (the ``linux`` backend's default bid).
- ``50``: the entrypoint's format is mine (``linux``: ELF, ``#!``).
- ``60``: a more specific format than a native executable (``wasm``: ``\0asm``; the example
  ``textfile`` backend: text files).
- ``1000``: the bundle's annotations ask for me by a convention of mine
  (``module.wasm.image/variant``). ``run.oci.handler`` (``mrun.annotations.HANDLER``) bypasses
  bidding altogether.

The operator's policy (``mrun.plugins.policy``: ``/etc/mrun/policy.json``, ``--backends-allowed``,
``--backend-default``, ``--backend-pin``) narrows this: bids of backends it does not allow are
set aside (a bid at 1000, the bundle asking by annotation, is refused instead), its default
replaces a bid at 0, and a pin overrides everything.

A bid counts for the backend registered under the entry-point name, whatever ``Claim.backend``
says. A hook implementation whose name is not declared here keeps the whole backend from loading
(a warning names it), so a misspelling cannot go unnoticed.

Rules a backend keeps:

- Everything the payload needs is imported and opened in ``mrun_prepare`` or at module import:
  after ``pivot_root`` the host's filesystem, Python's stdlib included, is gone.
- ``mrun_claim`` is cheap and side-effect free: every backend is asked for every bundle.
- Errors meant for the user are ``mrun.errors.MrunError`` with one line naming the field.
- Annotations the runtime reserves (``mrun.annotations``) are read through that module;
  image labels never reach a backend as instructions.
"""

from __future__ import annotations

from mrun.plugins.markers import PROJECT, hookimpl, hookspec  # noqa: F401 - pluggy's markers, pluggy-free

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mrun.plugins.api import Bundle, Claim, Command, Container, Payload, SandboxDriver


@hookspec
def mrun_claim(bundle: Bundle) -> Claim | None:
    """Bid for ``bundle``; return None to pass."""


@hookspec(firstresult=True)
def mrun_modify_spec(bundle: Bundle, config: dict[str, Any]) -> dict[str, Any] | None:
    """Optional, host side, on the chosen backend only, before anything is derived from the config
    (process plan, cgroup, network): return the config to use instead (``config`` is the backend's
    own copy to change and return), or None to keep it. The result is validated like a bundle's."""


@hookspec(firstresult=True)
def mrun_sandbox(container_id: str, state_dir: str) -> SandboxDriver | None:
    """The second tier, on the chosen backend only: return a ``SandboxDriver`` if this backend
    owns the sandbox (it then gets every lifecycle verb: create/start/state/kill/delete/exec/
    pause/resume/update/ps/stats), or None to run in mrun's own Linux sandbox (the default, which
    calls the first tier's hooks). ``state_dir`` is mrun's directory for the container; the same
    answer must come for the same container in a later command (it is asked again for each verb)."""


@hookspec(firstresult=True)
def mrun_prepare(container: Container, process: dict[str, Any]) -> None:
    """Host-side preparation of the chosen backend for ``process`` (the container's, or an
    exec'd one), called on that backend only. Raise to refuse the bundle with a message. Costly
    work on the image's content (compiling it) goes through ``container.contained``: a child in
    the container's cgroup, so a hostile image pays with the container's limits, not the host's."""


@hookspec(firstresult=True)
def mrun_payload(container: Container, process: dict[str, Any]) -> Payload:
    """Inside the sandbox: return the payload to run for ``process`` (called on the chosen backend only).

    Also used for ``exec``: ``process`` is then the exec'd process."""


@hookspec(firstresult=True)
def mrun_preload(bundle: Bundle) -> None:
    """Optional, host side, called on the chosen backend by a long-lived process that forks a
    worker per container (the containerd shim's fork helper): import and set up what
    ``mrun_prepare`` will need, once, so every later fork inherits it instead of redoing it."""


@hookspec
def mrun_warm() -> None:
    """Optional, called on every backend in the warm template (``mrun.warm``) when it starts and
    again between callers: load what this backend's containers will need (imports, engines,
    compiled code) into the template, so every child forked from it starts with it. Keep it cheap
    when nothing changed, and start no thread: the template forks."""


@hookspec
def mrun_precompile(path: str) -> bool | None:
    """Optional, called on every backend when an image was just pulled or loaded: ``path`` is its
    entrypoint as unpacked on the host. A backend that runs such files may compile it now, so the
    first ``run`` is already fast, in ``mrun.plugins.api.bounded`` (no container's limits exist
    yet). Return True if it did, None to pass."""


@hookspec
def mrun_features() -> dict[str, Any]:
    """A description of the backend for ``mrun features``: {"name", "description", ...}."""


@hookspec(firstresult=True)
def mrun_stats(container: Container) -> dict[str, Any] | None:
    """Backend-specific figures for ``mrun events --stats`` (called on the chosen backend only)."""


@hookspec
def mrun_commands() -> list[Command]:
    """Optional: CLI verbs of the backend's own (``mrun cache`` is the wasm backend's), each a
    ``Command`` whose ``handler`` is a function ``(globals, **params) -> exit status``. Core verbs
    win a name clash; the first backend loaded wins among backends."""
