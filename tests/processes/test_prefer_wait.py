"""`Prefer: wait=N` (RFC 7240): an async execute or a job status read answers as soon as the
job ends (woken by the job-finished notice over Redis), or after N seconds as it is then."""
from __future__ import annotations

import time

import requests

from test_ogcapi_processes import execute, wait_for


def test_async_execute_with_wait_answers_the_finished_job(vre_server):
    t0 = time.monotonic()
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': 'hi', 'pause': 0.3}},
                prefer='respond-async, wait=20')
    took = time.monotonic() - t0
    assert r.status_code == 201, r.text
    assert r.json()['status'] == 'successful' and r.headers['Location'].endswith(
        r.json()['jobID'])
    assert 'respond-async' in r.headers['Preference-Applied']
    assert 'wait=20' in r.headers['Preference-Applied']
    assert 0.3 <= took < 10


def test_status_read_with_wait_returns_when_the_job_ends(vre_server):
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': 'hi', 'pause': 1.5}},
                prefer='respond-async')
    assert r.status_code == 201 and r.json()['status'] in ('accepted', 'running')
    url = r.headers['Location']
    t0 = time.monotonic()
    s = requests.get(url, headers={'Prefer': 'wait=30'}, timeout=60)
    took = time.monotonic() - t0
    assert s.status_code == 200 and s.json()['status'] == 'successful'
    assert s.headers['Preference-Applied'] == 'wait=30'
    assert 0.5 < took < 15      # it waited for the job, and did not sit out the 30 s


def test_wait_runs_out_and_answers_the_running_job(vre_server):
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': 'hi', 'pause': 4}},
                prefer='respond-async, wait=0.5')
    assert r.status_code == 201 and r.json()['status'] in ('accepted', 'running')
    t0 = time.monotonic()
    s = requests.get(r.headers['Location'], headers={'Prefer': 'wait=0.7'}, timeout=30)
    assert s.json()['status'] in ('accepted', 'running')
    assert 0.6 <= time.monotonic() - t0 < 3
    assert wait_for(vre_server, r.json()['jobID'])['status'] == 'successful'


def test_finished_job_and_bad_wait_values_answer_at_once(vre_server):
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': 'hi'}}, prefer='respond-async')
    job = wait_for(vre_server, r.json()['jobID'])
    url = r.headers['Location']
    for prefer in ('wait=30', 'wait=soon', 'wait=-1'):
        t0 = time.monotonic()
        s = requests.get(url, headers={'Prefer': prefer}, timeout=30)
        assert s.status_code == 200 and s.json()['status'] == job['status'] == 'successful'
        assert time.monotonic() - t0 < 2 and 'Preference-Applied' not in s.headers


def test_dismissed_job_wakes_a_waiting_reader(vre_server):
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': 'hi', 'pause': 30}},
                prefer='respond-async')
    url = r.headers['Location']
    import threading
    timer = threading.Timer(1.0, lambda: requests.delete(url, timeout=30))
    timer.start()
    t0 = time.monotonic()
    s = requests.get(url, headers={'Prefer': 'wait=20'}, timeout=60)
    timer.join()
    assert time.monotonic() - t0 < 10
    # dismiss marks the job dismissed, then deletes it: the reader sees either
    assert (s.status_code == 200 and s.json()['status'] == 'dismissed') or \
        s.status_code == 404, s.text
