"""A throwaway PostgreSQL cluster for integration tests: initdb, pg_ctl, loopback, gone after.

No pytest here: the fixtures in ``conftest.py`` decide whether a missing binary skips or
fails. The cluster lives in its own temporary directory, listens on 127.0.0.1 on a random
port and on a unix socket in that directory, and is stopped (``pg_ctl stop -m immediate``)
at teardown and at interpreter exit. PostgreSQL refuses to run as root, so under root the
cluster runs as the ``postgres`` user that Debian's package creates.

Roles: ``slo_admin`` (superuser, loads data) and ``slo_gate`` (the read-only role the README
recommends, created with exactly those grants), both with passwords over TCP.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from servers import ServerError, free_port

__all__ = ["ADMIN", "GATE", "PG_INSTALL_HINT", "PostgresCluster", "find_pg_binary"]

PG_INSTALL_HINT = ("install it with `sudo apt-get install postgresql` "
                   "(or run scripts/ensure-servers.sh as root)")
ADMIN = ("slo_admin", "admin-secret-4711")
GATE = ("slo_gate", "gate-s3cret-pw!")
"""The read-only role and its password (the tests check the password never shows)."""

_LIVE: set[PostgresCluster] = set()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_LIVE):
        cluster.stop()


def find_pg_binary(name: str) -> str | None:
    """``initdb`` or ``pg_ctl`` on PATH, else in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parent.parent.name)
                        if Path(p).parent.parent.name.isdigit() else 0)
    return candidates[-1] if candidates else None


class PostgresCluster:
    """One cluster with a database ``events``; a context manager that removes it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # Not under pytest's tmp_path: that is private to root, and the server may run as
        # the postgres user, which must reach its data directory and socket.
        self.root = Path(tempfile.mkdtemp(prefix="slo-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = 0
        self._user = "postgres" if os.geteuid() == 0 else None
        self._running = False

    # -- life cycle ---------------------------------------------------------------------

    @classmethod
    def start(cls, initdb: str, timeout: float = 60.0) -> PostgresCluster:
        cluster = cls(Path(initdb).parent)
        _LIVE.add(cluster)
        try:
            cluster._initdb()
            for attempt in range(3):  # free_port() may lose a race with another process
                cluster.port = free_port()
                try:
                    cluster._pg_ctl("start", "-w", "-t", str(int(timeout)))
                    break
                except ServerError:
                    if attempt == 2 or "already in use" not in cluster.log_tail():
                        raise
            cluster._running = True
            cluster._setup()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, argv: list[str], *, stdin: str | None = None
             ) -> subprocess.CompletedProcess[str]:
        if self._user is not None:
            argv = ["runuser", "-u", self._user, "--", *argv]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                              timeout=120)

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(ADMIN[1] + "\n", encoding="utf-8")
        if self._user is not None:
            try:
                record = pwd.getpwnam(self._user)
            except KeyError as exc:
                raise ServerError("PostgreSQL will not run as root and there is no postgres "
                                  f"user to run it as; {PG_INSTALL_HINT}") from exc
            for path in (self.root, pwfile):
                os.chown(path, record.pw_uid, record.pw_gid)
        result = self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", ADMIN[0],
                            f"--pwfile={pwfile}", "--auth-local=trust",
                            "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
        pwfile.unlink()
        if result.returncode != 0:
            raise ServerError(f"initdb failed (exit {result.returncode}):\n{result.stdout}"
                              f"{result.stderr}")

    def _pg_ctl(self, action: str, *args: str) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
                *(["-o", options] if action == "start" else []), action, *args]
        result = self._run(argv)
        if result.returncode != 0:
            raise ServerError(f"pg_ctl {action} failed (exit {result.returncode}):\n"
                              f"{result.stdout}{result.stderr}\nlog:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server at once and remove the cluster; idempotent."""
        if self._running:
            self._running = False
            with contextlib.suppress(ServerError):
                self._pg_ctl("stop", "-m", "immediate", "-w")
        _LIVE.discard(self)
        shutil.rmtree(self.root, ignore_errors=True)

    def pause(self) -> None:
        """Stop the server but keep the cluster, as an outage would (see ``resume``)."""
        self._pg_ctl("stop", "-m", "fast", "-w")
        self._running = False

    def resume(self) -> None:
        self._pg_ctl("start", "-w")
        self._running = True

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- roles, urls --------------------------------------------------------------------

    def url(self, role: tuple[str, str] = GATE, *, password: str | None = None,
            database: str = "events") -> str:
        """A SQLAlchemy URL over TCP on loopback."""
        secret = role[1] if password is None else password
        return f"postgresql+psycopg://{role[0]}:{secret}@127.0.0.1:{self.port}/{database}"

    def admin_sql(self, *statements: str, database: str = "events") -> None:
        """Run statements as the superuser, each committed (psycopg, over TCP)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=ADMIN[0],
                             password=ADMIN[1], dbname=database, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def _setup(self) -> None:
        started = time.monotonic()
        self.admin_sql("CREATE DATABASE events", database="postgres")
        self.admin_sql(*READ_ONLY_ROLE)
        self.setup_seconds = time.monotonic() - started

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


READ_ONLY_ROLE = (
    # The recipe of the README's PostgreSQL section, word for word (test_docs checks it).
    f"CREATE ROLE {GATE[0]} LOGIN PASSWORD '{GATE[1]}'",
    f"ALTER ROLE {GATE[0]} SET default_transaction_read_only = on",
    f"GRANT CONNECT ON DATABASE events TO {GATE[0]}",
    f"GRANT USAGE ON SCHEMA public TO {GATE[0]}",
    f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {GATE[0]}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {GATE[0]}",
)
