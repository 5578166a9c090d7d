"""subset through the running server, compared with the same cut done here with xarray or
pandas directly on the same sample files."""
from __future__ import annotations

import hashlib
import io
import json
import time

import numpy as np
import pandas as pd
import pyproj
import pytest
import requests
import xarray as xr

from test_ogcapi_processes import execute, wait_for

ARGO = 'argo/dac/coriolis/3902131/3902131_prof.nc'
ICOS = 'icos-marine/otc_quality_flags.csv'
GLIDER = 'erddap/gliders_tabledap_amelia-20180501T0000.csvp'


def run(server, inputs):
    body = {'inputs': inputs, 'response': 'document',
            'outputs': {'subset': {'transmissionMode': 'reference'}, 'summary': {}}}
    resp = execute(server, 'subset', body)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    got = requests.get(doc['subset']['href'])
    assert got.status_code == 200
    return got, doc['summary']


def argo_expected(bdi_data, box, t0, t1, z0, z1):
    """The cut written plainly with xarray: profiles by position and date, then levels by the
    pressure the file means (adjusted in modes A/D)."""
    ds = xr.open_dataset(bdi_data / ARGO)
    inside = ((ds.LONGITUDE >= box[0]) & (ds.LONGITUDE <= box[2]) & (ds.LATITUDE >= box[1])
              & (ds.LATITUDE <= box[3]) & (ds.JULD >= np.datetime64(t0))
              & (ds.JULD <= np.datetime64(t1)))
    sub = ds.isel(N_PROF=np.flatnonzero(inside.values))
    adjusted = np.isin(sub.DATA_MODE.values.astype('S1'), [b'A', b'D'])[:, None]
    pres = np.where(adjusted, sub.PRES_ADJUSTED.values, sub.PRES.values)
    ok = (pres >= z0) & (pres <= z1)
    levels = np.flatnonzero(ok.any(axis=0))
    temp = np.where(ok, sub.TEMP.values, np.nan)[:, levels]
    return sub, temp, ok[:, levels]


def test_argo_cut_as_netcdf_and_csv_matches_xarray(vre_server, static_server, bdi_data):
    box, t0, t1 = [4.0, -8.0, 6.0, -5.0], '2018-03-01T00:00:00', '2018-06-30T23:59:59'
    inputs = {'data': {'href': f'{static_server}/{ARGO}'}, 'bbox': box,
              'datetime': f'{t0}Z/{t1}Z', 'z_min': 0, 'z_max': 200,
              'variables': ['TEMP', 'PSAL']}
    got, summary = run(vre_server, inputs)
    cut = xr.open_dataset(io.BytesIO(got.content), engine='h5netcdf')
    sub, temp, ok = argo_expected(bdi_data, box, t0, t1, 0, 200)
    assert sub.sizes['N_PROF'] > 10 and cut.sizes['N_PROF'] == sub.sizes['N_PROF']
    np.testing.assert_array_equal(cut.JULD.values, sub.JULD.values)
    np.testing.assert_array_equal(cut.TEMP.values, temp)
    assert 'DOXY' not in cut and 'PSAL_ADJUSTED_QC' in cut and 'PRES_ADJUSTED' in cut
    assert summary['dimensions'] == {'N_PROF': temp.shape[0], 'N_LEVELS': temp.shape[1]}

    got, summary = run(vre_server, dict(inputs, output_format='csv'))
    table = pd.read_csv(io.StringIO(got.text))
    assert len(table) == ok.sum() == summary['rows']
    np.testing.assert_allclose(np.sort(table.TEMP.dropna().to_numpy()),
                               np.sort(temp[np.isfinite(temp)]), rtol=1e-6)


def test_csv_cut_by_bbox_in_another_crs_and_time(vre_server, static_server, bdi_data):
    box = [5.0, 55.0, 13.0, 59.0]
    merc = pyproj.Transformer.from_crs('EPSG:4326', 'EPSG:3857', always_xy=True)
    x0, y0 = merc.transform(box[0], box[1])
    x1, y1 = merc.transform(box[2], box[3])
    got, summary = run(vre_server, {
        'data': {'href': f'{static_server}/{ICOS}'}, 'bbox': [x0, y0, x1, y1],
        'bbox_crs': 'EPSG:3857', 'datetime': '2020-01-01T00:00:30Z/2020-01-01T00:05:00Z',
        'output_format': 'geojson'})
    src = pd.read_csv(bdi_data / ICOS)
    t = pd.to_datetime(src['Date/Time'])
    want = src[(src.Longitude >= box[0]) & (src.Longitude <= box[2]) & (src.Latitude >= box[1])
               & (src.Latitude <= box[3]) & (t > pd.Timestamp('2020-01-01T00:00:30Z'))
               & (t <= pd.Timestamp('2020-01-01T00:05:00Z'))]
    features = got.json()['features']
    assert len(want) >= 2 and len(features) == len(want) == summary['rows']
    assert [f['geometry']['coordinates'] for f in features] == \
        want[['Longitude', 'Latitude']].values.tolist()


def test_csv_time_cut_streams_chunks(vre_server, static_server, bdi_data):
    got, summary = run(vre_server, {'data': {'href': f'{static_server}/{GLIDER}'},
                                    'datetime': '2018-05-08T06:00:00Z/2018-05-09T06:00:00Z',
                                    'output_format': 'netcdf'})
    src = pd.read_csv(bdi_data / GLIDER)
    t = pd.to_datetime(src['time (UTC)'])
    want = src[(t >= pd.Timestamp('2018-05-08T06:00:00Z'))
               & (t <= pd.Timestamp('2018-05-09T06:00:00Z'))]
    assert len(src) > 10_000 and 0 < len(want) < len(src)       # more than one chunk read
    cut = xr.open_dataset(io.BytesIO(got.content), engine='h5netcdf')
    assert cut.sizes['obs'] == len(want)
    np.testing.assert_allclose(cut['temperature_Celsius'].values,
                               want['temperature (Celsius)'].to_numpy())
    assert cut['time_UTC'].attrs['standard_name'] == 'time'


@pytest.mark.parametrize('inputs,message', [
    ({'bbox': [100, 10, 110, 20]}, 'selection is empty'),
    ({'datetime': '1990-01-01T00:00:00Z/1990-12-31T00:00:00Z'}, 'selection is empty'),
    ({'z_min': 9000, 'z_max': 9100}, 'selection is empty'),
    ({'bbox': [0, 0, 1, 1], 'bbox_crs': 'EPSG:999999'}, 'unknown coordinate reference system'),
    ({'variables': ['NOPE']}, 'unknown variables'),
    ({'datetime': 'last tuesday'}, 'not an ISO 8601'),
])
def test_bad_cuts_are_400_with_reason(vre_server, static_server, inputs, message):
    r = execute(vre_server, 'subset', {'inputs': dict(inputs, data={
        'href': f'{static_server}/{ARGO}'})}, prefer='respond-async')
    done = wait_for(vre_server, r.json()['jobID'])
    assert done['status'] == 'failed' and message in done['message']
    res = requests.get(f"{vre_server.url}/jobs/{done['jobID']}/results")
    assert res.status_code == 400 and message in res.json()['detail']


def test_unreadable_input(vre_server, static_server):
    r = execute(vre_server, 'subset', {'inputs': {
        'data': {'href': f'{static_server}/obis/api_v3/taxon_545439.json'}, 'bbox': [0, 0, 1, 1]}})
    assert r.status_code == 400 and 'no latitude/longitude' in json.loads(r.text)['detail']


def test_a_file_read_in_place_is_kept_open_per_version(tmp_path):
    """Collection files stay open in the worker between jobs; each job gets its own view,
    and a new version of the file is opened anew (not served from the old handle)."""
    from processes.cfdata import _KEPT, open_netcdf

    def grid(path, n):
        xr.Dataset({'sst': (('lat', 'lon'), np.arange(n * 4, dtype='f4').reshape(n, 4))},
                   coords={'lat': np.arange(n) * 1.0, 'lon': np.arange(4) * 1.0},
                   attrs={'history': 'made'}).to_netcdf(path)
    path = tmp_path / 'grid.nc'
    grid(path, 3)
    with open_netcdf(path, keep_open=True) as first:
        first.attrs['history'] = 'changed by one job'
        first['sst'] = first.sst * 0
    with open_netcdf(path, keep_open=True) as second:     # the file stayed open
        assert second.attrs['history'] == 'made'
        assert second.sst.values.tolist()[1] == [4, 5, 6, 7]
    assert sum(k[0] == str(path) for k in _KEPT) == 1
    grid(tmp_path / 'new.nc', 5)                           # a new version of the file
    (tmp_path / 'new.nc').replace(path)
    with open_netcdf(path, keep_open=True) as third:
        assert third.sizes['lat'] == 5


def test_a_finished_job_keeps_no_copy_of_its_inputs(vre_server, static_server):
    """The input read by reference is gone from the job's folder once the job is done; an
    output by value is kept there as a file, as long as the job (the job row holds its place,
    not its bytes, so status reads stay small), and read when the results are asked for."""
    import base64
    from processes.jobstore import JobStore
    body = {'inputs': {'data': {'href': f'{static_server}/{ARGO}'}, 'bbox': [-180, -90, 180, 90]},
            'response': 'document',
            'outputs': {'subset': {'transmissionMode': 'value'}, 'summary': {}}}
    resp = execute(vre_server, 'subset', body)
    assert resp.status_code == 200, resp.text
    job_id = resp.headers['Location'].rstrip('/').rsplit('/', 1)[-1]
    folder = vre_server.home / 'jobs' / job_id
    row = JobStore(f'sqlite:///{vre_server.home}/jobs.sqlite').get(job_id)
    assert 'value' not in row['results']['subset'] and row['results']['subset']['inline']
    assert [str(p) for p in folder.rglob('*') if p.is_file()] == [row['results']['subset']['path']]
    data = base64.b64decode(resp.json()['subset']['value'])
    assert data[:4] == b'\x89HDF'
    assert hashlib.sha256(data).hexdigest() == recorded_sha256(vre_server, job_id, 'subset')
    again = requests.get(f"{resp.headers['Location']}/results").json()['subset']['value']
    assert base64.b64decode(again) == data
    file = requests.get(f"{resp.headers['Location']}/outputs/subset")
    assert file.status_code == 200 and file.content == data
    assert requests.delete(resp.headers['Location']).status_code == 200
    assert not folder.exists()                      # dismissed: gone with the job


def recorded_sha256(server, job_id: str, output: str, timeout: float = 30) -> str:
    """The checksum of a file output as the job row records it: the worker hashes the file
    once the job has answered."""
    from processes.jobstore import JobStore
    store = JobStore(f'sqlite:///{server.home}/jobs.sqlite')
    deadline = time.monotonic() + timeout
    while not (digest := store.get(job_id)['results'][output].get('sha256')):
        assert time.monotonic() < deadline, f'no checksum of {output} after {timeout} s'
        time.sleep(0.05)
    return digest


def test_an_output_checksum_is_recorded_after_the_answer(vre_server, static_server):
    """The answer does not wait for the output's SHA-256; the provenance read at once has
    it all the same (hashed from the file until the worker records it), and then the job row
    and the stored file's Digest/ETag carry the same checksum."""
    resp = execute(vre_server, 'subset', {
        'inputs': {'data': {'href': f'{static_server}/{ARGO}'}, 'bbox': [0, -10, 10, 0]},
        'response': 'document', 'outputs': {'subset': {'transmissionMode': 'reference'}}})
    assert resp.status_code == 200, resp.text
    job = resp.headers['Location'].rstrip('/').rsplit('/', 1)[-1]
    href = resp.json()['subset']['href']
    want = hashlib.sha256(requests.get(href).content).hexdigest()
    prov = requests.get(f'{vre_server.url}/jobs/{job}/prov').json()
    assert [e['vre:sha256'] for e in prov['entity'].values()
            if e.get('vre:output') == 'subset'] == [want]
    assert recorded_sha256(vre_server, job, 'subset') == want
    again = requests.get(href)
    assert again.headers['Digest'] == f'sha-256={want}'
    assert again.headers['ETag'] == f'"{want}"'


@pytest.mark.parametrize('fmt', ['netcdf', 'csv', 'geojson'])
def test_a_streamed_results_document_equals_the_built_one(vre_server, static_server, fmt):
    """The results document streams a file output by value; it is the same JSON as the one
    built in memory from the same results (binary as base64, text as text)."""
    from processes.documents import results_document
    from processes.jobstore import JobStore
    body = {'inputs': {'data': {'href': f'{static_server}/{ARGO}'}, 'bbox': [0, -60, 60, 0],
                       'output_format': fmt},
            'response': 'document', 'outputs': {'subset': {'transmissionMode': 'value'}, 'summary': {}}}
    resp = execute(vre_server, 'subset', body)
    assert resp.status_code == 200, resp.text
    job_id = resp.headers['Location'].rstrip('/').rsplit('/', 1)[-1]
    row = JobStore(f'sqlite:///{vre_server.home}/jobs.sqlite').get(job_id)
    assert resp.json() == results_document(row['results'])
    assert requests.get(f"{resp.headers['Location']}/results").json() == resp.json()
