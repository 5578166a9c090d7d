"""Start real servers for tests and benchmarks: `vre serve` (Redis, Celery worker, gunicorn)
on loopback. Imported by tests as `serverkit` (tests/ is on sys.path under pytest)."""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
BDI_DATA = REPO.parent / 'shared' / 'data' / 'bdi'
VRE = str(Path(sys.executable).with_name('vre'))


USERS = {
    'alice': {'token': 'alice-token', 'groups': ['oceanlab']},
    'bob': {'token': 'bob-token', 'groups': ['oceanlab']},
    'carol': {'token': 'carol-token', 'groups': []},
    'admin': {'token': 'admin-token', 'groups': ['admins'], 'admin': True},
}

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

@dataclass
class Server:
    url: str
    home: Path
    config_path: Path
    proc: subprocess.Popen
    env: dict = field(default_factory=dict)

    def token(self, user: str) -> str:
        return USERS[user]['token']

    def auth(self, user: str | None) -> dict:
        return {'Authorization': f'Bearer {self.token(user)}'} if user else {}

def config_with(home: Path, resources: str) -> Path:
    """The project's config with `resources` (YAML text starting "resources:") put first
    among its collections, written into `home`: for tests serving collections of their own."""
    text = (REPO / 'pygeoapi-config.yml').read_text()
    assert text.count('\nresources:\n') == 1
    cfg = home / 'config.yml'
    cfg.write_text(text.replace('\nresources:\n', '\n' + resources, 1))
    return cfg


def write_users(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / 'users.yml'
    path.write_text(yaml.safe_dump({'users': USERS, 'groups': {'oceanlab': {}}}))
    return path

@contextlib.contextmanager
def start_server(home: Path, extra_env: dict | None = None, port: int | None = None,
                 config_path: Path | None = None, users: bool = True):
    """`vre serve` in a fresh process group; yields a Server once it answers."""
    port = port or free_port()
    config_path = config_path or os.environ.get('VRE_TEST_CONFIG')  # e.g. a deployment's config
    env = {k: v for k, v in os.environ.items() if not k.startswith(('VRE_', 'PYGEOAPI_'))}
    env.pop('REDIS_URL', None)
    env.update({'VRE_HOME': str(home), 'VRE_PORT': str(port), 'VRE_WEB_WORKERS': '2'})
    if users:
        env['VRE_USERS'] = str(write_users(home))
    if config_path:
        env['VRE_CONFIG'] = str(config_path)
    env.update(extra_env or {})
    log = open(home.parent / f'{home.name}-serve.log', 'ab')
    proc = subprocess.Popen([VRE, 'serve'], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    server = Server(url, home, Path(config_path or REPO / 'pygeoapi-config.yml'), proc, env)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f'vre serve exited with {proc.returncode}; see {log.name}')
            try:
                if requests.get(f'{url}/conformance', timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f'vre serve did not answer in 90 s; see {log.name}')
            time.sleep(0.2)
        yield server
    finally:
        stop_server(proc)
        log.close()

def stop_server(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(handler):
    """A threaded HTTP server on loopback answering with `handler`; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f'http://127.0.0.1:{httpd.server_address[1]}'
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def serve_folder(folder: Path):
    """A plain HTTP server on loopback serving a folder, as a remote data host would."""
    with serve(functools.partial(QuietHandler, directory=str(folder))) as url:
        yield url
