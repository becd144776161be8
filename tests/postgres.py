"""A real PostgreSQL for the tests (Debian's `postgresql`, which .ci/run installs): one server per
session in a temporary data directory on a free loopback port, a fresh database per test, and a
server of a test's own for the tests that stop and start it. Started by scripts/local_postgres.py,
as `make run` starts its own; a missing server fails the test with how to install it."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_postgres import LocalPostgres
from tests.stack import free_port

_DATABASES = itertools.count()


def start_server(log_dir: Path) -> LocalPostgres:
    # Its own folder under /tmp, not pytest's tmp_path: when the tests run as root the server runs
    # as `postgres`, which cannot enter pytest's private (0700) folders.
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="clip-postgres-")), free_port(), fsync=False)
    server.start(log_dir / f"postgres-{server.port}.log")
    return server


def remove(server: LocalPostgres) -> None:
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    server = start_server(tmp_path_factory.mktemp("postgres-logs"))
    yield server
    remove(server)


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres) -> str:
    """A new, empty database on the session's server."""
    return postgres_server.create_database(f"test_{next(_DATABASES)}")


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[LocalPostgres]:
    """A server for this test alone, which it may stop and start again."""
    server = start_server(tmp_path)
    yield server
    remove(server)
