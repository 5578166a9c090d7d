"""`vre worker` on "another host": a second worker that shares the broker and the job store."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import requests

from serverkit import VRE


def wait_for_workers(env: dict, count: int, timeout: float = 60) -> None:
    """Until `count` workers answer a Celery ping on the broker (the new one has connected)."""
    import sys
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, '-m', 'celery', '-A', 'processes.celery_app:celery_app',
                              'inspect', 'ping', '--timeout', '2'], env=env, capture_output=True,
                             text=True).stdout
        if out.count('pong') >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f'fewer than {count} workers answer on the broker')


def test_a_second_worker_takes_jobs(tmp_path, server_factory):
    home = tmp_path / 'home'
    with server_factory(home, extra_env={'VRE_WORKER_CONCURRENCY': '1'}) as server:
        log = (home.parent / 'home-serve.log').read_text()
        broker = re.search(r'broker (redis://\S+?)\)', log).group(1)
        env = {k: v for k, v in server.env.items()}
        env.update(REDIS_URL=broker, VRE_HOME=str(tmp_path / 'other-host'),
                   VRE_JOBS_DB=f'sqlite:///{home}/jobs.sqlite', VRE_PUBLIC_URL=server.url)
        worker = subprocess.Popen([VRE, 'worker', '--concurrency', '1'], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            wait_for_workers(env, 2)
            ids = []
            for i in range(2):
                r = requests.post(f'{server.url}/processes/echo/execution',
                                  json={'inputs': {'echoInput': f'w{i}', 'pause': 8}},
                                  headers={'Prefer': 'respond-async'})
                ids.append(r.json()['jobID'])
            deadline = time.monotonic() + 30
            while True:
                docs = [requests.get(f'{server.url}/jobs/{j}').json() for j in ids]
                if all(d['status'] == 'running' for d in docs) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            # two jobs run at once although the server's own worker has one process:
            # the second one runs on the other worker, which the job record names
            assert [d['status'] for d in docs] == ['running', 'running']
            assert docs[0]['worker'] != docs[1]['worker']
            pids = {int(d['worker'].rsplit(':', 1)[1]) for d in docs}
            worker_family = {worker.pid} | {int(p) for p in subprocess.run(
                ['pgrep', '-g', str(worker.pid)], capture_output=True, text=True).stdout.split()}
            assert pids & worker_family
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
