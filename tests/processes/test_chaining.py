"""OGC API - Processes Part 3 through the running server: nested processes and collection
inputs, their checks (400 before any job runs) and their provenance."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess

import numpy as np
import pytest
import requests
import xarray as xr
from PIL import Image

from serverkit import VRE, start_server
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
