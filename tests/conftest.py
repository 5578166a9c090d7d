"""Fixtures: real servers on loopback (see serverkit.py) and the shared BDI samples."""
from __future__ import annotations

from pathlib import Path

import pytest

from serverkit import BDI_DATA, REPO, USERS, VRE, Server, free_port, start_server, stop_server  # noqa: F401


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
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(bdi_data))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()


@pytest.fixture
def server_factory():
    """`start_server` for tests that need their own server (restarts, faults, other settings):
    `with server_factory(tmp_path / 'home', extra_env={...}) as server: ...`"""
    return start_server
