"""Fixtures: real servers on loopback (see serverkit.py) and the shared BDI samples."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from serverkit import (BDI_DATA, REPO, USERS, VRE, Server, free_port, serve_folder,  # noqa: F401
                       start_server, stop_server)


@pytest.fixture(scope='session')
def vre_server(tmp_path_factory):
    """One server for the whole session (tests that restart or kill parts start their own)."""
    home = tmp_path_factory.mktemp('vre') / 'home'
    with start_server(home, extra_env=SERVER_ENV) as server:
        yield server

# Settings the session server runs with (small limits so tests can reach them).
SERVER_ENV = {
    'VRE_MAX_BODY': str(2 * 1024 * 1024),
}

@pytest.fixture(scope='session')
def bdi_data() -> Path:
    if not BDI_DATA.exists():
        pytest.fail(f'shared BDI samples not found at {BDI_DATA} (CI clones beside shared/)')
    return BDI_DATA

@pytest.fixture(scope='session')
def static_server(bdi_data):
    """Serves ../shared/data/bdi over HTTP on loopback, as a remote data host would."""
    with serve_folder(bdi_data) as url:
        yield url


@pytest.fixture
def server_factory():
    """`start_server` for tests that need their own server (restarts, faults, other settings):
    `with server_factory(tmp_path / 'home', extra_env={...}) as server: ...`"""
    return start_server


def _pg_bin() -> Path | None:
    """The folder of initdb/postgres/pg_isready (Debian keeps them off PATH)."""
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'), reverse=True) or \
        [p for p in [shutil.which('initdb')] if p]
    return Path(found[0]).resolve().parent if found else None


def _as_owner(cmd: list[str]) -> list[str]:
    """root cannot run postgres: run it as the `postgres` account the Debian package makes."""
    return ['runuser', '-u', 'postgres', '--', *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope='session')
def postgres():
    """A private PostgreSQL server for the session (initdb in a temporary folder, loopback
    port); `postgres(name)` creates a database and answers its SQLAlchemy URL. Skips only
    when the binaries are not installed (Debian: apt-get install postgresql)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip('PostgreSQL binaries not found (apt-get install postgresql)')
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam('postgres')
        except KeyError:
            pytest.fail('running as root needs the postgres account to own the server')
    root = Path(tempfile.mkdtemp(prefix='vre-pg-'))
    data = root / 'data'
    if os.geteuid() == 0:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    subprocess.run(_as_owner([str(bindir / 'initdb'), '-D', str(data), '-U', 'vre',
                              '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']),
                   check=True, capture_output=True)
    port = free_port()
    log = open(root / 'postgres.log', 'ab')
    proc = subprocess.Popen(_as_owner([
        str(bindir / 'postgres'), '-D', str(data), '-p', str(port), '-h', '127.0.0.1',
        '-k', str(root), '-c', 'fsync=off', '-c', 'synchronous_commit=off']),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(bindir / 'pg_isready'), '-h', '127.0.0.1', '-p', str(port)],
                             capture_output=True).returncode != 0:
            assert proc.poll() is None, (root / 'postgres.log').read_text()[-2000:]
            assert time.monotonic() < deadline, 'PostgreSQL did not start in 60 s'
            time.sleep(0.2)

        def database(name: str) -> str:
            subprocess.run([str(bindir / 'createdb'), '-h', '127.0.0.1', '-p', str(port),
                            '-U', 'vre', name], check=True, capture_output=True)
            return f'postgresql+psycopg://vre@127.0.0.1:{port}/{name}'
        yield database
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
