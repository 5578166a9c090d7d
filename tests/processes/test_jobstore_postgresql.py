"""The job store on PostgreSQL (several hosts share one): the same job life through a real
server whose VRE_JOBS_DB is a private PostgreSQL database."""
from __future__ import annotations

import time

import requests
import sqlalchemy as sa


def test_jobs_on_postgresql(tmp_path, server_factory, postgres):
    url = postgres('vre_jobs')
    with server_factory(tmp_path / 'home', extra_env={'VRE_JOBS_DB': url}) as server:
        sync = requests.post(f'{server.url}/processes/echo/execution',
                             json={'inputs': {'echoInput': 'on postgres'}}, timeout=60)
        assert sync.status_code == 200 and sync.text == 'on postgres'
        h = server.auth('alice')
        ids = []
        for i in range(3):
            r = requests.post(f'{server.url}/processes/echo/execution', headers={
                **h, 'Prefer': 'respond-async'}, json={'inputs': {'echoInput': f'pg{i}'}})
            assert r.status_code == 201
            ids.append(r.json()['jobID'])
        deadline = time.monotonic() + 60
        while any(requests.get(f'{server.url}/jobs/{j}', headers=h).json()['status']
                  != 'successful' for j in ids):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        listed = requests.get(f'{server.url}/jobs', params={'processID': 'echo', 'limit': 2,
                                                            'status': 'successful'},
                              headers=h).json()
        assert listed['numberMatched'] == 3 and len(listed['jobs']) == 2
        assert requests.get(f'{server.url}/jobs/{ids[0]}/results', headers=h).json() == \
            {'echoOutput': 'pg0'}
        long = requests.post(f'{server.url}/processes/echo/execution', headers={
            **h, 'Prefer': 'respond-async'}, json={'inputs': {'echoInput': 'x', 'pause': 60}})
        job = long.json()['jobID']
        while requests.get(f'{server.url}/jobs/{job}', headers=h).json()['status'] != 'running':
            assert time.monotonic() < deadline + 30
            time.sleep(0.1)
        assert requests.delete(f'{server.url}/jobs/{job}', headers=h).status_code == 200
    # the rows really are in PostgreSQL, and nothing went to a SQLite file
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text('select count(*) from jobs')).scalar_one() == 4
    assert not (tmp_path / 'home' / 'jobs.sqlite').exists()
