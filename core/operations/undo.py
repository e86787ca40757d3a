"""What a failed create or exec takes back, last made first.

contextlib.ExitStack's ``callback`` and ``pop_all``, which is all the create and exec steps use,
without contextlib's import and the collections and functools imports it brings: together
~1 ms of every ``mrun create``, which containerd's runc shim and podman run once per container.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Undo:
    def __init__(self) -> None:
        self._steps: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []

    def callback(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` on a failure, before every step registered earlier."""
        self._steps.append((function, args, kwargs))
        return function

    def pop_all(self) -> None:
        """It all stands: nothing is taken back."""
        self._steps = []

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        """Every step runs, even when one fails; as with ExitStack, the last failure is raised,
        with the one before it as its context."""
        pending = error
        raised = False
        while self._steps:
            function, args, kwargs = self._steps.pop()
            try:
                function(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - the rest still runs; raised below
                if pending is not None and e is not pending:
                    e.__context__ = pending
                pending, raised = e, True
        if raised:
            raise pending  # type: ignore[misc]
        return False
