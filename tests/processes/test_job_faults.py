"""Faults of the job system: a worker killed mid-job, a job past its timeout, a server
restart, and a clean stop that leaves no process behind. Each test runs its own server."""
from __future__ import annotations

import os
import signal
import time

import psutil
import requests


def submit(server, body, user=None):
    r = requests.post(f'{server.url}/processes/echo/execution', json=body,
                      headers={'Prefer': 'respond-async', **server.auth(user)}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()['jobID']


def status(server, job_id):
    return requests.get(f'{server.url}/jobs/{job_id}', timeout=10).json()


def wait_status(server, job_id, pred, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = status(server, job_id)
        if pred(doc):
            return doc
        time.sleep(0.1)
    raise AssertionError(f'job {job_id}: {doc}')


def kill_worker_of(doc):
    host, _, pid = doc['worker'].rpartition(':')
    os.kill(int(pid), signal.SIGKILL)
    return int(pid)


def test_killed_worker_reruns_then_fails_with_reason(tmp_path, server_factory):
    with server_factory(tmp_path / 'home') as server:
        job_id = submit(server, {'inputs': {'echoInput': 'x', 'pause': 120}})
        first = wait_status(server, job_id, lambda d: d['status'] == 'running' and d.get('worker'))
        kill_worker_of(first)
        # echo is safe to run again: the job is queued again and picked up by a new child
        second = wait_status(server, job_id, lambda d: d['status'] == 'running'
                             and d['attempts'] == 2 and d['worker'] != first['worker'])
        kill_worker_of(second)
        failed = wait_status(server, job_id, lambda d: d['status'] == 'failed')
        assert 'was lost' in failed['message'] and second['worker'] in failed['message']
        # and the worker pool still runs jobs
        ok = requests.post(f'{server.url}/processes/echo/execution',
                           json={'inputs': {'echoInput': 'still here'}}, timeout=60)
        assert ok.text == 'still here'


def test_timeout_stops_and_fails_the_job(tmp_path, server_factory):
    with server_factory(tmp_path / 'home', extra_env={'VRE_JOB_TIMEOUT': '2'}) as server:
        job_id = submit(server, {'inputs': {'echoInput': 'slow', 'pause': 30}})
        failed = wait_status(server, job_id, lambda d: d['status'] == 'failed', timeout=30)
        assert 'timed out after 2 s' in failed['message']
        started = failed['started']
        assert failed['finished'] > started


def test_jobs_survive_a_restart_and_an_interrupted_job_is_rerun(tmp_path, server_factory):
    home = tmp_path / 'home'
    with server_factory(home) as server:
        done_id = submit(server, {'inputs': {'echoInput': 'kept'}}, user='alice')
        wait_status(server, done_id, lambda d: True)
        deadline = time.monotonic() + 30
        while requests.get(f'{server.url}/jobs/{done_id}',
                           headers=server.auth('alice')).json()['status'] != 'successful':
            assert time.monotonic() < deadline
            time.sleep(0.1)
        cut_id = submit(server, {'inputs': {'echoInput': 'cut', 'pause': 4}})
        wait_status(server, cut_id, lambda d: d['status'] == 'running')
    with server_factory(home) as server:
        h = server.auth('alice')
        assert requests.get(f'{server.url}/jobs/{done_id}/results', headers=h).json() == \
            {'echoOutput': 'kept'}
        done = wait_status(server, cut_id, lambda d: d['status'] in ('successful', 'failed'),
                           timeout=60)
        assert done['status'] == 'successful' and done['attempts'] == 2
        assert requests.get(f'{server.url}/jobs/{cut_id}/results').json() == {'echoOutput': 'cut'}


def test_sigterm_stops_every_child(tmp_path, server_factory):
    with server_factory(tmp_path / 'home') as server:
        parent = psutil.Process(server.proc.pid)
        family = parent.children(recursive=True)
        names = ' '.join(' '.join(p.cmdline()) for p in family)
        assert 'redis' in names and 'celery' in names and 'gunicorn' in names
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(30)
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]
