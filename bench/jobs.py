"""Job round trips and throughput: this server (Celery + job store) against pygeoapi's stock
TinyDB manager serving the same `echo` process, side by side on this machine.

    .venv/bin/python bench/jobs.py [--seconds 30] [--round-trips 300] [--clients 16]

Both servers run under gunicorn with the same process and thread counts. A round trip is
POST execute (Prefer: respond-async), poll the job until it is successful, GET its results.
Each server is measured with two clients: one polling (1 ms, doubling to 50 ms) and one
sending `Prefer: wait=10` (RFC 7240) with the execute and the status reads, which a server
may honour by answering when the job ends (stock pygeoapi is measured polling only: it
takes `Prefer: respond-async, wait=10` for a sync request).
Goal (issue 2): median round trip under 20 ms and at least 200 jobs/s on 2 cores.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / 'tests'))
from serverkit import free_port, start_server  # noqa: E402


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f'server for {url} exited with {proc.returncode}')
        try:
            if requests.get(f'{url}/processes', timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f'{url} did not come up')


@contextlib.contextmanager
def vre(home: Path, workers: int):
    """This server, as `vre serve` runs it (serverkit starts and stops it)."""
    with start_server(home, extra_env={'VRE_WEB_WORKERS': str(workers)}) as server:
        yield server.url


@contextlib.contextmanager
def stock(home: Path, workers: int):
    """pygeoapi as shipped: TinyDB manager, its own echo process, async jobs as threads."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    config = {
        'server': {'bind': {'host': '127.0.0.1', 'port': port},
                   'url': f'http://127.0.0.1:{port}', 'mimetype': 'application/json',
                   'encoding': 'utf-8', 'languages': ['en-US'], 'limits': {},
                   'map': {'url': 'https://tile.openstreetmap.org/{z}/{x}/{y}.png',
                           'attribution': 'OSM'},
                   'manager': {'name': 'TinyDB', 'connection': str(home / 'jobs.db'),
                               'output_dir': str(home)}},
        'logging': {'level': 'ERROR'},
        'metadata': {'identification': {'title': 'stock', 'description': 'stock',
                                        'keywords': ['x'], 'terms_of_service': 'x', 'url': 'x'},
                     'license': {'name': 'x', 'url': 'x'},
                     'provider': {'name': 'x', 'url': 'x'}, 'contact': {'name': 'x'}},
        'resources': {'echo': {'type': 'process',
                               'processor': {'name': 'pygeoapi.process.echo.EchoProcessor'}}},
    }
    cfg = home / 'config.yml'
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, 'PYGEOAPI_CONFIG': str(cfg), 'PYGEOAPI_OPENAPI': str(home / 'openapi.yml')}
    subprocess.run([str(BIN / 'pygeoapi'), 'openapi', 'generate', str(cfg),
                    '--output-file', str(home / 'openapi.yml')], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, '-m', 'gunicorn', 'pygeoapi.flask_app:APP',
                             '--bind', f'127.0.0.1:{port}', '--workers', str(workers),
                             '--threads', '8', '--worker-class', 'gthread',
                             '--log-level', 'error'],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    try:
        wait_up(url, proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def round_trip(session: requests.Session, url: str, process: str, text: str,
               wait: bool = False) -> float:
    t0 = time.perf_counter()
    prefer = {'Prefer': 'wait=10'} if wait else {}
    r = session.post(f'{url}/processes/{process}/execution', json={'inputs': {'echoInput': text}},
                     headers={'Prefer': 'respond-async' + (', wait=10' if wait else '')},
                     timeout=60)
    if r.status_code != 201:
        raise RuntimeError(f'{url}: execute answered {r.status_code}: {r.text[:200]}')
    job = r.headers['Location']
    status = (r.json() or {}).get('status')   # stock pygeoapi: no body
    delay = 0.001
    while status != 'successful':
        if status in ('failed', 'dismissed'):
            raise RuntimeError(f'{job} {status}')
        if not (wait and 'wait' in r.headers.get('Preference-Applied', '')):
            time.sleep(delay)       # the server did not wait: poll
            delay = min(delay * 2, 0.05)
        r = session.get(job, headers=prefer, timeout=60)
        status = r.json()['status']
    res = session.get(f'{job}/results', timeout=60)
    if text not in res.text:
        raise RuntimeError(f'{job}: wrong result {res.text[:200]}')
    return time.perf_counter() - t0


def latency(url, process, n, wait):
    s = requests.Session()
    for i in range(10):
        round_trip(s, url, process, f'warm{i}', wait)
    times = sorted(round_trip(s, url, process, f'rt{i}', wait) for i in range(n))
    return statistics.median(times) * 1000, times[int(0.95 * (len(times) - 1))] * 1000


def throughput(url, process, seconds, clients, wait):
    done = [0] * clients
    errors = []
    stop = time.monotonic() + seconds

    def client(k):
        s = requests.Session()
        i = 0
        while time.monotonic() < stop:
            try:
                round_trip(s, url, process, f'c{k}-{i}', wait)
                done[k] += 1
            except Exception as err:  # counted, reported
                errors.append(str(err)[:120])
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0), len(errors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=30)
    ap.add_argument('--round-trips', type=int, default=300)
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--workers', type=int, default=2, help='gunicorn processes for both')
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, server in (('vre (Celery + SQLite job store)', vre),
                             ('pygeoapi stock (TinyDB, threads)', stock)):
            with server(Path(tmp) / name.split()[0], args.workers) as url:
                # pygeoapi 0.21 reads 'respond-async, wait=10' as no respond-async at all
                # (it compares the whole header), so only the polling client is fair to it
                for client in ('polling', 'Prefer: wait')[:1 if server is stock else 2]:
                    wait = client != 'polling'
                    med, p95 = latency(url, 'echo', args.round_trips, wait)
                    rate, errors = throughput(url, 'echo', args.seconds, args.clients, wait)
                    rows.append((name, client, med, p95, rate, errors))
    print(f'machine: {os.cpu_count()} cores; {args.round_trips} sequential round trips; '
          f'{args.clients} clients for {args.seconds:g} s')
    print(f"{'server':36} {'client':13} {'median ms':>10} {'p95 ms':>10} {'jobs/s':>10} "
          f"{'errors':>7}")
    for name, client, med, p95, rate, errors in rows:
        print(f'{name:36} {client:13} {med:10.1f} {p95:10.1f} {rate:10.1f} {errors:7d}')
    print('goal (issue 2): median < 20 ms, >= 200 jobs/s, ahead of the stock manager')


if __name__ == '__main__':
    main()
