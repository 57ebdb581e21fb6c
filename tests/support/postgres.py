"""A PostgreSQL cluster of the tests' own, and scripts/postgres-up run against one.

Debian's programs (scripts/postgres-install puts them on a fresh machine) run a throwaway
cluster: initdb in a temporary folder, listening on loopback at a free port and on a socket in
that folder, stopped and removed afterwards, whether the test passed or not. No system cluster
or role is touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .repo import REPO
from .servers import free_port


@dataclass(frozen=True)
class Cluster:
    """`uri`: a database of its own, owned by a role of its own that logs in with a password
    over loopback. `env`: libpq's settings that reach the cluster as its superuser."""

    port: int
    uri: str
    env: dict[str, str]


def programs() -> Path:
    """The bin folder of Debian's newest PostgreSQL."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parents[1].name)
    )
    if not found:
        raise RuntimeError("no PostgreSQL in /usr/lib/postgresql: run scripts/postgres-install")
    return found[-1].parent


def run(*command: str | Path, env: dict[str, str], sql: str = "", log: Path | None = None) -> None:
    """`command` with libpq's settings `env` and `sql` on its input; its output (and the
    server's `log`) in the error where it fails."""
    done = subprocess.run(
        command, input=sql, capture_output=True, text=True, env={**os.environ, **env}
    )
    if done.returncode != 0:
        said = done.stdout + done.stderr + (log.read_text() if log and log.exists() else "")
        raise RuntimeError(f"{command} exited {done.returncode}\n{said}")


@contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    """A cluster of its own (see the module's docstring), up until the block ends."""
    bin_ = programs()
    folder = Path(tempfile.mkdtemp(prefix="postgres-"))
    owner: list[str | Path] = []
    if os.geteuid() == 0:
        # initdb refuses root: the cluster runs as Debian's postgres user, in a folder it owns.
        shutil.chown(folder, "postgres", "postgres")
        owner = ["runuser", "-u", "postgres", "--"]
    data, log, port = folder / "data", folder / "log", free_port()
    env = {"PGHOST": str(folder), "PGPORT": str(port), "PGUSER": "postgres"}
    env["PGDATABASE"] = "postgres"
    # The socket trusts its callers (its folder is the owner's alone); loopback wants a password.
    init = ["-U", "postgres", "-E", "UTF8", "--locale=C", "--auth-local=trust"]
    init += ["--auth-host=scram-sha-256", "--no-sync"]
    # No fsync: nothing of a throwaway cluster needs to outlive a crash.
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    pg_ctl = [*owner, bin_ / "pg_ctl", "-D", data]

    def stop() -> None:
        if (data / "postmaster.pid").exists():
            run(*pg_ctl, "-m", "fast", "stop", env=env)

    with ExitStack() as cleanup:  # stopped, then removed, whatever the block raised
        cleanup.callback(shutil.rmtree, folder)
        run(*owner, bin_ / "initdb", "-D", data, *init, env=env)
        cleanup.callback(stop)
        run(*pg_ctl, "-l", log, "-o", options, "start", env=env, log=log)
        password = secrets.token_hex(16)  # hex: nothing to quote in SQL
        sql = f"CREATE ROLE tests LOGIN PASSWORD '{password}';\n"
        sql += "CREATE DATABASE tests OWNER tests;\n"
        run(bin_ / "psql", "-v", "ON_ERROR_STOP=1", "-q", "-f", "-", env=env, sql=sql)
        yield Cluster(port, f"postgresql://tests:{password}@127.0.0.1:{port}/tests", env)


def postgres_up(**env: str) -> str:
    """scripts/postgres-up with `env`: the URI it prints."""
    done = subprocess.run(
        [str(REPO / "scripts" / "postgres-up")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return done.stdout.strip().splitlines()[-1]
