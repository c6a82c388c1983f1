"""A throwaway PostgreSQL server for the tests: a fresh cluster in a temp folder, listening
on a Unix socket only (no port to collide with), fsync off, removed afterwards.

The server binaries come from the system (Debian's `postgresql` package; `make test` runs
scripts/ensure-test-servers.sh, which installs it where it is missing). PostgreSQL refuses to run
as root, so as root the cluster is made and run by the `postgres` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

SUPERUSER = "postgres"


def server_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} was not found: install the server (Debian: apt-get install "
            "postgresql; scripts/ensure-test-servers.sh does it)"
        )
    return found


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SUPERUSER, "--", *command]


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[Path]:
    """Start a server; yield its socket folder; stop it and remove everything. Tests run it
    without fsync (nothing to keep); `durable` (benchmarks) keeps PostgreSQL's defaults, so
    a commit waits for the disk as it would in production."""
    folder = Path(tempfile.mkdtemp(prefix="flux-playground-pg-"))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(SUPERUSER)
            os.chown(folder, user.pw_uid, user.pw_gid)
        data = folder / "data"
        subprocess.run(
            _as_server_user(
                [server_binary("initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"]
            ),
            check=True,
            capture_output=True,
        )
        # Each test's app keeps a small pool open until it shuts down: room for many.
        options = f"-c listen_addresses='' -k {folder} -c max_connections=300"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        subprocess.run(
            _as_server_user(
                [
                    server_binary("pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(folder / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        try:
            yield folder
        finally:
            subprocess.run(
                _as_server_user(
                    [server_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
                ),
                capture_output=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def new_database(socket_folder: Path, copy_of: str | None = None) -> str:
    """Create a database on the server, empty or a copy of another database of it (which
    must have no open connections); its SQLAlchemy URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{make_url(copy_of).database}"' if copy_of else ""
    with psycopg.connect(
        host=str(socket_folder), user=SUPERUSER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}'.encode())
    return f"postgresql+psycopg://{SUPERUSER}@/{name}?host={socket_folder}"
