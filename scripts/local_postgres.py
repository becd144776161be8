"""A PostgreSQL server as a local process: `make run` with several API replicas starts one, and
the tests start their own, each in a data directory of its own on a loopback port.

Debian's `postgresql` package puts the server's programs in /usr/lib/postgresql/<version>/bin
(POSTGRES_BIN overrides). PostgreSQL refuses to run as root, and this machine's tools do run as
root: then the server runs as the `postgres` user the package creates (`runuser`), and the data
directory is made theirs. Access is `trust` on 127.0.0.1 only, with no password, as for any
server bound to loopback on a single-user machine.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

DATABASE = "clip"
SERVER_USER = "postgres"  # the OS account, when we are root


class PostgresError(RuntimeError):
    """PostgreSQL is missing or would not start; the message says what to do."""


def server_bin(env: dict[str, str]) -> Path:
    if env.get("POSTGRES_BIN"):
        return Path(env["POSTGRES_BIN"])
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    if not versions:
        raise PostgresError("no PostgreSQL server: install Debian's (apt-get install postgresql) or set POSTGRES_BIN")
    return versions[-1].parent


class LocalPostgres:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None, fsync: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        # Without fsync a crash of the machine may corrupt the cluster; a stopped or killed server
        # loses nothing. Throwaway test clusters take it: their shutdown checkpoint took ~20 s with it.
        self.fsync = fsync
        self.bin = server_bin(env if env is not None else dict(os.environ))
        self.process: subprocess.Popen | None = None
        self.url = f"postgresql://{SERVER_USER}@127.0.0.1:{port}/{DATABASE}"

    def _as_server_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command

    def initialise(self) -> None:
        """A new cluster in `data_dir` unless one is there already (its data is kept across runs)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
            os.chmod(self.data_dir, 0o700)
        command = [str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", SERVER_USER, "--auth=trust"]
        done = subprocess.run(self._as_server_user([*command, "--no-sync"]), capture_output=True, text=True)
        if done.returncode:
            raise PostgresError(f"initdb failed in {self.data_dir}:\n{done.stderr[-2000:]}")

    def start(self, log_path: Path, timeout_s: float = 30) -> None:
        """Starts the server in the foreground of a child process and waits until it answers."""
        self.initialise()
        command = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            # The socket goes into the data directory: /var/run/postgresql may not exist or be ours.
            "-c",
            f"unix_socket_directories={self.data_dir}",
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
        ]
        log = open(log_path, "a")  # the server keeps it open
        self.process = subprocess.Popen(
            self._as_server_user(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_ready(timeout_s, log_path)
        self.create_database()

    def wait_ready(self, timeout_s: float, log_path: Path) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresError(f"postgres exited with {self.process.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                psycopg.connect(self.admin_url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise PostgresError(f"postgres did not answer within {timeout_s:.0f} s; see {log_path}")

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str = DATABASE) -> str:
        """The URL of database `name`, created if missing."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{name}"

    def stop(self, timeout_s: float = 30) -> None:
        """Fast shutdown (SIGINT): open transactions roll back, committed ones are on disk."""
        if self.process is None or self.process.poll() is not None:
            return
        # Signal the process group: under runuser the server is the child of our child.
        os.killpg(self.process.pid, 2)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
