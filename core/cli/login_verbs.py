"""docker's `login` and `logout` (mrun.images.login keeps the credentials): the prompts, flags
and words of docker's client."""

from __future__ import annotations

import os
import sys

from mrun.errors import InvalidSpec, MrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NO_TTY = "Cannot perform an interactive login from a non TTY device"
PASSWORD_STDIN_MAX = 64 << 10  # characters: registry tokens (JWTs, cloud access tokens) run to a few KiB


def _asked(username: str, password: str, password_stdin: bool) -> tuple[str, str]:
    """The user and password from the flags, stdin, or the terminal's prompts, as docker's login."""
    if password and password_stdin:
        raise InvalidSpec("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidSpec("Must provide --username with --password-stdin")
        password = sys.stdin.buffer.read(PASSWORD_STDIN_MAX + 1).decode("utf-8", "surrogateescape")  # bytes
        if len(password) > PASSWORD_STDIN_MAX:  # `< /dev/zero`, a wrong file: it was read into memory to its end
            raise InvalidSpec(f"--password-stdin: more than {PASSWORD_STDIN_MAX >> 10} KiB came on stdin; "
                              "a password or token is shorter")
        password = password.removesuffix("\n").removesuffix("\r")
    elif password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    if not username or not password:
        if not os.isatty(0):
            raise MrunError(NO_TTY)
        if not username:
            username = input("Username: ").strip()
        if not password:
            import getpass

            password = getpass.getpass("Password: ")
    if not username:
        raise InvalidSpec("login: a username is needed")
    if not password:
        raise InvalidSpec("login: a password is needed")
    if ":" in username:
        raise InvalidSpec(f"login: username {username!r}: it may not hold ':'")
    return username, password


def login(_g: dict[str, Any], server: str = "", username: str = "", password: str = "",
          password_stdin: bool = False, insecure: bool = False) -> int:
    from mrun.images import login as creds

    key = creds.server_key(server)
    user, secret = _asked(username, password, password_stdin)
    creds.check(key, user, secret, insecure)
    path = creds.store(key, user, secret)
    print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print("Login Succeeded")
    return 0


def logout(_g: dict[str, Any], server: str = "") -> int:
    from mrun.images import login as creds

    key = creds.server_key(server)
    if creds.forget(key):
        print(f"Removing login credentials for {key}")
    else:
        print(f"Not logged in to {key}")
    return 0
