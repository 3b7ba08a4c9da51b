"""Who may use a learner's dashboard: whoever holds its key, and on a shared server that is the learner alone.

On a class server 20 to 60 learners each run their own dashboard, and every
account on the machine can reach every ``127.0.0.1`` port. So each dashboard
has a key, a random secret in the learner's lab home that only their account
can read::

    $LAB_HOME/              made 0700 when the lab makes it (lessons.engine.paths.lab_home)
        dashboard.key       0600, written once, atomically, by secrets.token_urlsafe

``bash dashboard/start.sh`` prints the address to open, key included
(``http://127.0.0.1:8501/?key=…``); ``dashboard/app.py`` refuses every visit
that does not present it, before it opens the store or draws anything else.
A visit presents the key in the address (``?key=``) or, behind a proxy that has
already checked the login (JupyterHub's ``jupyter-server-proxy``,
docs/classroom.md), in the ``X-Lora-Kitchen-Key`` header the proxy adds.

``LAB_DASHBOARD_KEY`` chooses the key instead of the file (the tests use it);
it is read by the server, never from the visitor, and there is no setting
that switches the check off.

No Streamlit here: ``python -m dashboard.logic.access address`` is what
start.sh runs to choose the port and print the address.
"""
from __future__ import annotations

import argparse
import errno
import hmac
import os
import pwd
import secrets
import socket
import stat
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

from lessons.engine.errors import LabError
from lessons.engine.paths import lab_home

KEY_ENV = "LAB_DASHBOARD_KEY"     # chooses the key (tests, a proxy's config); empty: the key file
KEY_FILE = "dashboard.key"        # in the lab home
KEY_PARAM = "key"                 # the address's ?key=
KEY_HEADER = "X-Lora-Kitchen-Key" # added by a proxy that checked the login itself (jupyter-server-proxy)
KEY_BYTES = 32                    # secrets.token_urlsafe(32): 43 characters, 256 bits
MIN_KEY_CHARS = 16                # a chosen key shorter than this is guessable
HOST = "127.0.0.1"                # this machine only: never the network
FIRST_PORT = 8501                 # Streamlit's usual port; a shared server's next learners get 8502, 8503, …
PORT_TRIES = 200                  # then the system chooses one


class AccessError(LabError):
    """The dashboard's key cannot be read or made safely; the message says what to do."""


def key_path() -> Path:
    """Where this learner's key is: ``$LAB_HOME/dashboard.key``."""
    return lab_home() / KEY_FILE


def dashboard_key() -> str:
    """This dashboard's key: ``LAB_DASHBOARD_KEY`` when set, else the lab home's key file, made on first use."""
    chosen = os.environ.get(KEY_ENV, "").strip()
    if chosen:
        if len(chosen) < MIN_KEY_CHARS:
            raise AccessError(f"{KEY_ENV} is {len(chosen)} characters long: a key that short can be guessed.\n"
                              f"  fix: give it at least {MIN_KEY_CHARS} random characters, or unset it "
                              f"(the dashboard then makes its own in {key_path()})")
        return chosen
    try:
        path = key_path()
        try:
            return _read_own_key(path)
        except FileNotFoundError:
            return _make_key(path)
    except PermissionError as error:
        raise AccessError(f"cannot use {error.filename}: {error.strerror}. This lab home is another account's, "
                          "so neither is the dashboard's key.\n"
                          "  fix: set LAB_HOME to a folder of your own, e.g. "
                          "`LAB_HOME=~/.lora-kitchen bash dashboard/start.sh`") from None


def key_matches(offered: object) -> bool:
    """``offered`` (from the address or a header) is this dashboard's key; compared in constant time."""
    if not isinstance(offered, str) or not offered:
        return False
    return hmac.compare_digest(offered.encode("utf-8"), dashboard_key().encode("utf-8"))


def address(port: int, key: str, *, host: str = HOST) -> str:
    """The address to open: ``http://127.0.0.1:PORT/?key=KEY``."""
    return f"http://{host}:{port}/?{KEY_PARAM}={quote(key, safe='')}"


def owner() -> str:
    """The account this dashboard runs as (the kernel's word, not ``$USER``, which anyone can set)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def refusal(account: str | None = None) -> str:
    """What a visit without the key reads: whose dashboard this is (default: ``owner()``), and how its owner gets in."""
    account = account or owner()
    return (f"This dashboard belongs to {account}. Open the address it printed when it started "
            f"(`http://{HOST}:PORT/?{KEY_PARAM}=…`): the key in it is what lets you in.\n\n"
            f"If you are {account} and lost the address: stop the dashboard (Ctrl+C) and start it again with "
            f"`bash dashboard/start.sh`; it prints the address again.")


def free_port(first: int = FIRST_PORT, *, tries: int = PORT_TRIES, host: str = HOST) -> int:
    """The first port from ``first`` upwards that nobody on this machine listens on, else one the system picks."""
    for port in range(first, min(first + tries, 65536)):
        if _can_bind(host, port):
            return port
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


# -- the key file -----------------------------------------------------------------------------
def _read_own_key(path: Path) -> str:
    """The key in ``path``, which must be this account's own file that no one else can read.

    A key file others could read is no secret any more: it is replaced by a new one (the
    dashboard prints the new address). One that belongs to another account means this lab
    home is not this learner's: refused.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # a symlink planted in place of the key is refused
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as error:
        raise AccessError(f"cannot read the dashboard's key {path}: {error.strerror} (a link or another "
                          f"account's file is never used as the key).\n"
                          "  fix: remove it; the dashboard makes a new key on its next start") from None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if info.st_uid != os.geteuid():
            raise AccessError(f"{path} belongs to another account (uid {info.st_uid}), not to you: this lab home "
                              "is not yours, so neither is the dashboard's key.\n"
                              "  fix: set LAB_HOME to a folder of your own, e.g. "
                              "`LAB_HOME=~/.lora-kitchen bash dashboard/start.sh`")
        if not stat.S_ISREG(info.st_mode):
            raise AccessError(f"{path} is not a plain file.\n  fix: remove it; the dashboard makes a new key")
        key = file.read().decode("utf-8", "replace").strip()
    if stat.S_IMODE(info.st_mode) & 0o077 or len(key) < MIN_KEY_CHARS:
        return _make_key(path, replace=True)
    return key


def _make_key(path: Path, *, replace: bool = False) -> str:
    """Write a new key to ``path`` (mode 0600) under a temporary name, then link it in place.

    The link fails if another start made the key first: then both use that one, so the
    address start.sh printed and the key the app checks are the same.
    """
    key = secrets.token_urlsafe(KEY_BYTES)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # os.open's mode passes through the umask; the key's must not
            file.write(key.encode("ascii") + b"\n")
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(partial, path)
            return key
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # another start won the race: its key is the one
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            os.replace(partial, path)  # a file system without hard links: the last start's key wins
            return key
    finally:
        partial.unlink(missing_ok=True)
    return _read_own_key(path)


# -- the command line (start.sh) ---------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.logic.access",
                                     description="The dashboard's port and key (bash dashboard/start.sh runs this).")
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = commands.add_parser("address", help="print 'PORT ADDRESS': a free port (or --port) and the address "
                                                  "to open, key included; makes the key on first use")
    chosen.add_argument("--port", type=int, help=f"the port (default: the first free one from {FIRST_PORT})")
    commands.add_parser("key", help="print the key alone (for a proxy's configuration, docs/classroom.md)")
    args = parser.parse_args(argv)
    try:
        key = dashboard_key()
    except (AccessError, OSError) as error:
        print(f"[dashboard] {error}", file=sys.stderr)
        return 1
    if args.command == "key":
        print(key)
        return 0
    if args.port is not None and not 1 <= args.port <= 65535:
        print(f"[dashboard] PORT={args.port} is no port.\n  fix: a number from 1 to 65535, or unset PORT "
              "(the dashboard takes the first free one)", file=sys.stderr)
        return 1
    port = args.port if args.port is not None else free_port()
    print(port, address(port, key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
