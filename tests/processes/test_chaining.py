"""OGC API - Processes Part 3 through the running server: nested processes and collection
inputs, their checks (400 before any job runs) and their provenance."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import requests
import xarray as xr
from celery import Celery
from PIL import Image

from serverkit import VRE, serve_folder, start_server
from test_ogcapi_processes import execute, wait_for

PART3 = 'http://www.opengis.net/spec/ogcapi-processes-3/1.0/conf/'
ARGO = 'argo/dac/coriolis/3902131/3902131_prof.nc'


def pixels(resp):
    assert resp.status_code == 200, resp.text
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert('RGB'))


def test_conformance_declares_part3(vre_server):
    conforms = requests.get(f'{vre_server.url}/conformance').json()['conformsTo']
    assert {PART3 + 'nested-processes', PART3 + 'collection-input'} <= set(conforms)


def test_nested_value_output_becomes_the_input(vre_server):
    inner = {'process': f'{vre_server.url}/processes/echo', 'inputs': {'echoInput': 'inner'}}
    outer = {'process': f'{vre_server.url}/processes/echo', 'inputs': {'echoInput': inner}}
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': outer}, 'response': 'document'})
    assert r.status_code == 200, r.text
    assert r.json() == {'echoOutput': 'inner'}


def test_nested_file_output_equals_the_two_step_chain(vre_server, static_server):
    """plot(argo-indicators(profiles)) in one request draws what the same two jobs run one
    after the other draw; the prov of the outer job uses the nested NetCDF by checksum."""
    profiles = {'href': f'{static_server}/{ARGO}'}
    step = execute(vre_server, 'argo-indicators', {
        'inputs': {'profiles': profiles},
        'outputs': {'indicators': {'transmissionMode': 'reference'}},
        'response': 'document'}).json()
    plot = {'kind': 'ts', 'width': 400, 'height': 400}
    two_steps = pixels(execute(vre_server, 'plot', {
        'inputs': dict(plot, data={'href': step['indicators']['href']})}))
    nested = {'process': f'{vre_server.url}/processes/argo-indicators',
              'inputs': {'profiles': profiles}, 'outputs': {'indicators': {}}}
    r = execute(vre_server, 'plot', {'inputs': dict(plot, data=nested)})
    assert np.array_equal(pixels(r), two_steps)

    prov = requests.get(f"{r.headers['Location']}/prov").json()
    locations = {e['prov:location']: e for e in prov['entity'].values() if 'prov:location' in e}
    assert profiles['href'] in locations           # what the nested process read
    made = [e for loc, e in locations.items() if loc.startswith(vre_server.url)
            and e.get('vre:mediaType') == 'application/x-netcdf']
    assert len(made) == 1                           # what it made and plot read
    data = requests.get(made[0]['prov:location']).content
    assert made[0]['vre:sha256'] == hashlib.sha256(data).hexdigest()
    assert data[:4] in (b'CDF\x01', b'CDF\x02', b'\x89HDF')
    assert len(prov['used']) == 2


def test_bad_nested_requests_are_400_before_running(vre_server, static_server):
    url = vre_server.url
    profiles = {'href': f'{static_server}/{ARGO}'}
    cases = [
        ({'process': f'{url}/processes/nope', 'inputs': {}}, 'not a process of this server'),
        ({'process': 'http://elsewhere.example/processes/echo', 'inputs': {'echoInput': 'a'}},
         'not a process of this server'),
        ({'process': f'{url}/processes/echo', 'inputs': {}}, 'missing required input'),
        ({'process': f'{url}/processes/echo', 'inputs': {'echoInput': 'a', 'pause': -1}},
         'nested echo'),
        ({'process': f'{url}/processes/argo-indicators', 'inputs': {'profiles': profiles}},
         'select one'),
    ]
    before = requests.get(f'{url}/jobs', params={'limit': 10000}).json()['numberMatched']
    for value, message in cases:
        r = execute(vre_server, 'plot', {'inputs': {'data': value}})
        assert r.status_code == 400 and message in r.json()['detail'], (value, r.text)
    # a file output cannot feed a plain value input
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': {
        'process': f'{url}/processes/argo-indicators', 'inputs': {'profiles': profiles},
        'outputs': {'indicators': {}}}}})
    assert r.status_code == 400 and 'is a file' in r.json()['detail']
    r = execute(vre_server, 'plot', {'inputs': {'data': {'collection': f'{static_server}/x'}}})
    assert r.status_code == 400 and 'collection' in r.json()['detail']
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': {
        'collection': f'{url}/collections/obis-occurrences'}}})
    assert r.status_code == 400 and 'not a file' in r.json()['detail']
    after = requests.get(f'{url}/jobs', params={'limit': 10000}).json()['numberMatched']
    assert after == before


def test_nested_failure_fails_the_outer_job_with_its_reason(vre_server, static_server):
    nested = {'process': f'{vre_server.url}/processes/argo-indicators',
              'inputs': {'profiles': {'href': f'{static_server}/obis/api_v3/taxon_545439.json'}},
              'outputs': {'indicators': {}}}
    r = execute(vre_server, 'plot', {'inputs': {'data': nested}}, prefer='respond-async')
    doc = wait_for(vre_server, r.json()['jobID'])
    assert doc['status'] == 'failed' and 'NetCDF' in doc['message']
    assert requests.get(f"{vre_server.url}/jobs/{doc['jobID']}/results").status_code == 400


@pytest.fixture(scope='module')
def obis_server(tmp_path_factory, bdi_data):
    """A server whose index holds the OBIS sample (vre harvest obis --mirror) and whose
    coverages are read from the sample mirror."""
    home = tmp_path_factory.mktemp('part3') / 'home'
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(('VRE_', 'PYGEOAPI_'))}
    env['VRE_HOME'] = str(home)
    proc = subprocess.run([VRE, 'harvest', 'obis', '--mirror', str(bdi_data), '--json'],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with start_server(home, extra_env={'VRE_BDI_MIRROR': str(bdi_data)}) as server:
        yield server


def test_collection_input_reads_every_item(obis_server):
    """plot of {"collection": ...} draws the same map as plot of all items by reference,
    although the runner fetches them in pages."""
    url = f'{obis_server.url}/collections/obis-occurrences'
    items = requests.get(f'{url}/items', params={'f': 'json', 'limit': 10000}).json()
    assert len(items['features']) > 100
    by_ref = pixels(execute(obis_server, 'plot', {'inputs': {
        'data': {'href': f'{url}/items?f=json&limit=10000'}, 'kind': 'map'}}))
    r = execute(obis_server, 'plot', {'inputs': {'data': {'collection': url}, 'kind': 'map'}})
    assert np.array_equal(pixels(r), by_ref)
    prov = requests.get(f"{r.headers['Location']}/prov").json()
    geo = [e for e in prov['entity'].values() if e.get('vre:mediaType') == 'application/geo+json']
    assert len(geo) == 1
    fetched = json.dumps({'type': 'FeatureCollection', 'features': items['features']})
    assert int(geo[0]['vre:bytes']['$']) == len(fetched.encode())


def test_collection_items_are_fetched_page_by_page(obis_server, tmp_path, monkeypatch):
    """The runner's item fetch follows `next` links: with 50-item pages it still gets every
    item once, in the server's order."""
    from processes import runner
    from processes.base import JobContext
    url = f'{obis_server.url}/collections/obis-occurrences'
    items = requests.get(f'{url}/items', params={'f': 'json', 'limit': 10000}).json()
    monkeypatch.setattr(runner, 'PAGE', 50)
    job = runner.JobRunner.__new__(runner.JobRunner)
    job.base_url, job.resources = obis_server.url, {}
    ctx = runner.ChainContext('t', None, tmp_path, 1 << 30, lambda p, m: None)
    value = job._collection('data', {'contentEncoding': 'binary'}, {'collection': url}, ctx)
    got = json.loads(ctx.input_file(value).read_text())['features']
    assert len(items['features']) > 3 * 50
    assert [f['id'] for f in got] == [f['id'] for f in items['features']]
    assert isinstance(ctx, JobContext) and ctx.used[0]['bytes'] > 0


def test_coverage_collection_input_as_netcdf(obis_server, static_server):
    """A NetCDF input given as a coverage collection: the land mask of variational-analysis
    from the GEBCO coverage is the one from the same file by reference."""
    rng = np.random.default_rng(5)
    csv = 'longitude,latitude,t\n' + '\n'.join(
        f'{x},{y},{x / 10}' for x, y in zip(rng.uniform(100, 110, 200),
                                           rng.uniform(-66.5, -64, 200)))
    base = {'observations': {'value': csv, 'mediaType': 'text/csv'}, 'variable': 't',
            'bbox': [100, -66.5, 110, -64], 'nx': 40, 'ny': 30, 'correlation_length': 30,
            'min_depth': 50}
    masks = []
    for bathy in ({'href': f'{static_server}/erddap/coastwatch_griddap_GEBCO_2020_subset.nc'},
                  {'collection': f'{obis_server.url}/collections/bathymetry-gebco-2020'}):
        r = execute(obis_server, 'variational-analysis', {'inputs': dict(base, bathymetry=bathy)})
        assert r.status_code == 200, r.text
        masks.append(xr.open_dataset(io.BytesIO(r.content))['mask'].values)
    assert 0 < masks[0].mean() < 1
    np.testing.assert_array_equal(masks[0], masks[1])


def test_coverage_collection_is_read_in_place_with_its_checksum(obis_server, static_server,
                                                               bdi_data):
    """subset of a grid collection reads the collection's own file where the worker sees it
    (no download of the whole grid): the cut equals the cut of the same file by reference, and
    the provenance records the file's own SHA-256 under the collection's coverage URL."""
    grid = bdi_data / 'erddap/coastwatch_griddap_GEBCO_2020_subset.nc'
    cuts, jobs = [], []
    for data in ({'href': f'{static_server}/erddap/coastwatch_griddap_GEBCO_2020_subset.nc'},
                 {'collection': f'{obis_server.url}/collections/bathymetry-gebco-2020'}):
        r = execute(obis_server, 'subset', {'inputs': {'data': data, 'bbox': [90, -66, 100, -60]},
                                            'response': 'document'})
        assert r.status_code == 200, r.text
        nc = requests.get(r.json()['subset']['href']).content
        cuts.append(xr.open_dataset(io.BytesIO(nc), engine='h5netcdf')['elevation'].values)
        jobs.append(r.headers['Location'])
    np.testing.assert_array_equal(cuts[0], cuts[1])
    assert cuts[1].size > 100
    prov = requests.get(f'{jobs[1]}/prov').text
    assert hashlib.sha256(grid.read_bytes()).hexdigest() in prov
    assert 'collections/bathymetry-gebco-2020/coverage' in prov


# -- nested processes as a Celery workflow ---------------------------------------------
@pytest.fixture(scope='module')
def solo(tmp_path_factory):
    """A server whose worker runs ONE task at a time (a workflow must not wait for itself),
    a folder it reads a grid from, and the Celery result backend it uses."""
    root = tmp_path_factory.mktemp('workflow')
    data = root / 'data'
    data.mkdir()
    rng = np.random.default_rng(3)
    time_ = pd.date_range('2015-01-03', '2018-12-28', freq='7D')
    lat, lon = np.linspace(40, 43, 4), np.linspace(-10, -6, 5)
    doy = time_.day_of_year.values[:, None, None]
    sst = 15 + 4 * np.sin(2 * np.pi * doy / 365.25) + rng.normal(0, 0.5, (len(time_), 4, 5))
    xr.Dataset({'sst': (('time', 'lat', 'lon'), sst, {'units': 'degC'})},
               coords={'time': time_, 'lat': ('lat', lat, {'units': 'degrees_north'}),
                       'lon': ('lon', lon, {'units': 'degrees_east'})}).to_netcdf(data / 'sst.nc')
    home = root / 'home'
    home.mkdir()
    with serve_folder(data) as files, \
            start_server(home, extra_env={'VRE_WORKER_CONCURRENCY': '1'}) as server:
        log = (root / 'home-serve.log').read_text()
        broker = re.search(r'broker (redis://\S+?)\)', log).group(1)
        server.grid = {'href': f'{files}/sst.nc'}
        server.backend = Celery(broker=broker, backend=broker)
        yield server


def nested(server, process, **inputs):
    return {'process': f'{server.url}/processes/{process}', 'inputs': inputs}


def netcdf(server, process, inputs):
    """Run a job; its NetCDF output, and the job URL."""
    r = execute(server, process, {'inputs': inputs})
    assert r.status_code == 200, r.text
    return xr.open_dataset(io.BytesIO(r.content)).load(), r.headers['Location']


def by_reference(server, process, inputs, output):
    r = execute(server, process, {'inputs': inputs, 'response': 'document',
                                  'outputs': {output: {'transmissionMode': 'reference'}}})
    assert r.status_code == 200, r.text
    return {'href': r.json()[output]['href']}


def records(prov: dict, kind: str) -> list[dict]:
    """The relations of one kind in PROV-JSON (records under one key come as a list)."""
    return [r for v in prov.get(kind, {}).values() for r in (v if isinstance(v, list) else [v])]


def steps_of(prov: dict) -> list[dict]:
    """The step activities of a job's PROV-JSON, with what informed each."""
    steps = {k: dict(v, id=k, after=set()) for k, v in prov['activity'].items()
             if v.get('prov:type') == 'vre:Step'}
    for rel in records(prov, 'wasInformedBy'):
        if rel['prov:informed'] in steps:
            steps[rel['prov:informed']]['after'].add(rel['prov:informant'])
    return sorted(steps.values(), key=lambda s: s['prov:startTime'])


def test_two_nested_inputs_run_as_a_chord_like_separate_jobs(solo):
    """anomaly(subset(grid), climatology(grid)): two nested steps then the outer one, each
    its own Celery task, give what three separate jobs give."""
    cut = dict(datetime='2016-01-01/2018-12-31')
    separate, _ = netcdf(solo, 'anomaly', {
        'data': by_reference(solo, 'subset', dict(cut, data=solo.grid), 'subset'),
        'climatology': by_reference(solo, 'climatology', {'data': solo.grid, 'variable': 'sst'},
                                    'climatology'),
        'variable': 'sst'})
    together, job = netcdf(solo, 'anomaly', {
        'data': dict(nested(solo, 'subset', data=solo.grid, **cut), outputs={'subset': {}}),
        'climatology': nested(solo, 'climatology', data=solo.grid, variable='sst'),
        'variable': 'sst'})
    assert separate.sst.size > 0 and np.isfinite(together.sst.values).any()
    np.testing.assert_array_equal(together.sst.values, separate.sst.values)

    prov = requests.get(f'{job}/prov').json()
    steps = steps_of(prov)
    job_id = job.rsplit('/', 1)[-1]
    assert [s['vre:process'] for s in steps[:2]] in (['subset', 'climatology'],
                                                     ['climatology', 'subset'])
    outer = steps[-1]
    assert outer['vre:process'] == 'anomaly' and outer['after'] == {s['id'] for s in steps[:2]}
    assert sorted(s['vre:task'] for s in steps) == [f'{job_id}.0', f'{job_id}.0.1',
                                                     f'{job_id}.0.2']
    assert all(outer['prov:startTime'] >= s['prov:endTime'] for s in steps[:2])
    # the outer task ran once, to the end (the nested ones passed their outputs on)
    assert solo.backend.AsyncResult(f'{job_id}.0').get(timeout=10) == 'successful'
    assert solo.backend.AsyncResult(f'{job_id}.0.1').state == 'SUCCESS'


def test_two_levels_of_nesting_run_depth_first_on_one_worker_process(solo):
    """anomaly(subset(grid), climatology(subset(grid))): four tasks, depth first (the order
    the inline runner had), all on the one worker process, each in the provenance with its
    task, informed by the steps it needs; the nested outputs are generated by their steps."""
    cut = dict(bbox=[-9.5, 40.5, -6.5, 43.5])
    sub = dict(nested(solo, 'subset', data=solo.grid, **cut), outputs={'subset': {}})
    got, job = netcdf(solo, 'anomaly', {
        'data': sub, 'variable': 'sst',
        'climatology': nested(solo, 'climatology', data=sub, variable='sst')})
    clim = by_reference(solo, 'climatology', {
        'data': by_reference(solo, 'subset', dict(cut, data=solo.grid), 'subset'),
        'variable': 'sst'}, 'climatology')
    alone, _ = netcdf(solo, 'anomaly', {'data': by_reference(solo, 'subset', dict(
        cut, data=solo.grid), 'subset'), 'climatology': clim, 'variable': 'sst'})
    np.testing.assert_array_equal(got.sst.values, alone.sst.values)

    job_id = job.rsplit('/', 1)[-1]
    prov = requests.get(f'{job}/prov').json()
    steps = steps_of(prov)
    assert [s['id'].rsplit('/', 1)[-1] for s in steps] == ['1', '3', '2', '0']
    assert [s['vre:process'] for s in steps] == ['subset', 'subset', 'climatology', 'anomaly']
    assert [s['vre:task'] for s in steps] == [f'{job_id}.0.{n}' for n in (1, 3, 2)] + \
        [f'{job_id}.0']
    by_id = {s['id'].rsplit('/', 1)[-1]: s for s in steps}
    assert {a.rsplit('/', 1)[-1] for a in by_id['2']['after']} == {'3'}
    assert {a.rsplit('/', 1)[-1] for a in by_id['0']['after']} == {'1', '2'}
    for a, b in zip(steps, steps[1:]):          # one after the other, none inside another
        assert a['prov:endTime'] <= b['prov:startTime']
    assert len({s['vre:worker'] for s in steps}) == 1      # concurrency 1: one process
    # the three nested outputs are entities the job used, each generated by its step
    generated = {g['prov:entity']: g['prov:activity'] for g in records(prov, 'wasGeneratedBy')}
    used = {u['prov:entity'] for u in records(prov, 'used')}
    nested_made = {e for e, a in generated.items() if a != f'job:{job_id}'}
    assert len(nested_made) == 3 and nested_made <= used
    doc = requests.get(job).json()
    assert doc['status'] == 'successful' and doc['attempts'] == 1


def echo_of_nested_echo(server, pause: float) -> tuple[str, dict]:
    """Submit echo(echo("inner", pause)); its id and status once the nested step runs."""
    r = execute(server, 'echo', {'inputs': {
        'echoInput': nested(server, 'echo', echoInput='inner', pause=pause)}},
        prefer='respond-async')
    job_id = r.json()['jobID']
    deadline = time.monotonic() + 30
    while 'nested' not in (doc := requests.get(f'{server.url}/jobs/{job_id}').json())['message']:
        assert doc['status'] in ('accepted', 'running') and time.monotonic() < deadline, doc
        time.sleep(0.1)
    return job_id, doc


def test_dismissing_a_job_during_its_nested_step_stops_the_workflow(solo):
    """DELETE while the nested echo pauses: its task is terminated, the outer task never
    runs, and the one worker process is free for the next job at once."""
    job_id, doc = echo_of_nested_echo(solo, pause=60)
    assert doc['status'] == 'running' and 'echo' in doc['message']
    assert requests.delete(f'{solo.url}/jobs/{job_id}').status_code == 200
    began = time.monotonic()
    r = execute(solo, 'echo', {'inputs': {'echoInput': 'next'}})
    assert r.text == 'next' and time.monotonic() - began < 20     # not after the 60 s pause
    assert solo.backend.AsyncResult(f'{job_id}.0.1').state == 'REVOKED'
    time.sleep(2)
    assert solo.backend.AsyncResult(f'{job_id}.0').state in ('PENDING', 'REVOKED')
    assert requests.get(f'{solo.url}/jobs/{job_id}').status_code == 404


def test_a_failing_nested_step_ends_the_workflow_with_a_400_reason(solo):
    """A client mistake found while the nested step runs fails the job as a 400, and the
    outer task never runs."""
    r = execute(solo, 'anomaly', {'inputs': {
        'data': solo.grid, 'variable': 'sst',
        'climatology': nested(solo, 'climatology', data=solo.grid, variable='nope')}},
        prefer='respond-async')
    doc = wait_for(solo, r.json()['jobID'])
    assert doc['status'] == 'failed' and 'nope' in doc['message']
    res = requests.get(f"{solo.url}/jobs/{doc['jobID']}/results")
    assert res.status_code == 400 and 'nope' in res.text
    time.sleep(1)
    assert solo.backend.AsyncResult(f"{doc['jobID']}.0").state == 'PENDING'


def test_a_nested_output_this_worker_does_not_see_is_read_by_url(tmp_path):
    """The step after a nested one on another host reads its file over HTTP, checked
    against the checksum the nested step recorded, and does not record it twice."""
    from processes.base import InputError
    from processes.runner import ChainContext
    (tmp_path / 'served').mkdir()
    (tmp_path / 'served' / 'out.nc').write_bytes(b'CDF\x01 made by the nested step')
    digest = hashlib.sha256(b'CDF\x01 made by the nested step').hexdigest()
    with serve_folder(tmp_path / 'served') as url:
        href = f'{url}/out.nc'
        made = {'href': href, 'sha256': digest, 'bytes': 30, 'process': 'subset'}
        ctx = ChainContext('j', None, tmp_path / 'work', 1 << 20, lambda p, m: None,
                           used=[made], made={href: digest})
        path = ctx.input_file({'href': href})
        assert path.read_bytes().startswith(b'CDF') and ctx.used == [made]
        ctx.made[href] = '0' * 64
        with pytest.raises(InputError, match='not the file'):
            ctx.input_file({'href': href})


def test_a_workflow_whose_worker_dies_is_sent_again_whole(solo):
    """The worker process running a nested step is killed: the reaper queues the job again,
    which sends the whole workflow again (new task ids), and the job ends as if nothing
    happened, on its second attempt."""
    job_id, doc = echo_of_nested_echo(solo, pause=4)
    os.kill(int(doc['worker'].rpartition(':')[2]), signal.SIGKILL)
    done = wait_for(solo, job_id, timeout=90)
    assert done['status'] == 'successful' and done['attempts'] == 2, done
    assert requests.get(f'{solo.url}/jobs/{job_id}/results').json()['echoOutput'] == 'inner'
    steps = steps_of(requests.get(f'{solo.url}/jobs/{job_id}/prov').json())
    assert [s['vre:task'] for s in steps] == [f'{job_id}.1.1', f'{job_id}.1']


def test_the_job_timeout_covers_the_whole_workflow(tmp_path, server_factory):
    """Two steps of 4 s each under a 6 s job timeout: each fits, the workflow does not; the
    outer step stops when the job's time is up."""
    with server_factory(tmp_path / 'home', extra_env={'VRE_JOB_TIMEOUT': '6'}) as server:
        r = execute(server, 'echo', {'inputs': {
            'echoInput': nested(server, 'echo', echoInput='inner', pause=4), 'pause': 4}},
            prefer='respond-async')
        doc = wait_for(server, r.json()['jobID'], timeout=30)
        assert doc['status'] == 'failed' and 'timed out after 6 s' in doc['message'], doc
        took = (dt.datetime.fromisoformat(doc['finished'])
                - dt.datetime.fromisoformat(doc['started'])).total_seconds()
        assert 5.5 < took < 7.5
