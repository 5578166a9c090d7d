"""OGC API - Processes Part 1 against a running server (Redis, Celery worker, gunicorn)."""
from __future__ import annotations

import http.server
import json
import time

import pytest
import requests
import xarray as xr
from owslib.ogcapi.processes import Processes

from serverkit import serve

CONF = 'http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/'
EXC = 'http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/'


def execute(server, process, body, user=None, prefer=None):
    headers = {'Content-Type': 'application/json', **server.auth(user)}
    if prefer:
        headers['Prefer'] = prefer
    return requests.post(f'{server.url}/processes/{process}/execution', json=body,
                         headers=headers, timeout=60)


def wait_for(server, job_id, user=None, states=('successful', 'failed'), timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = requests.get(f'{server.url}/jobs/{job_id}', headers=server.auth(user)).json()
        if doc['status'] in states:
            return doc
        time.sleep(0.05)
    raise AssertionError(f'job {job_id} still {doc["status"]} after {timeout} s')


def test_conformance_declares_processes_classes(vre_server):
    conforms = requests.get(f'{vre_server.url}/conformance').json()['conformsTo']
    for c in ('core', 'ogc-process-description', 'json', 'html', 'oas30', 'job-list',
              'callback', 'dismiss'):
        assert CONF + c in conforms


def test_landing_openapi_and_html(vre_server):
    landing = requests.get(f'{vre_server.url}/?f=json').json()
    assert any(link['href'].endswith('/processes') or '/processes?' in link['href']
               for link in landing['links'])
    oas = requests.get(f'{vre_server.url}/openapi?f=json').json()
    params = {p.get('name') for p in oas['paths']['/jobs']['get']['parameters']}
    assert {'processID', 'status', 'datetime', 'minDuration', 'maxDuration', 'limit'} <= params
    for path in ('/processes', '/processes/echo', '/jobs'):
        page = requests.get(f'{vre_server.url}{path}?f=html')
        assert page.status_code == 200 and page.headers['Content-Type'].startswith('text/html')


def test_process_description_with_owslib(vre_server):
    client = Processes(vre_server.url)
    ids = {p['id'] for p in client.processes()}
    assert {'echo', 'ocean-heat-content'} <= ids
    echo = client.process('echo')
    assert 'async-execute' in echo['jobControlOptions']
    assert set(echo['inputs']) == {'echoInput', 'pause'}
    assert echo['outputs']['echoOutput']['schema']['type'] == 'string'


def test_sync_raw_and_document(vre_server):
    raw = execute(vre_server, 'echo', {'inputs': {'echoInput': 'sea surface'}})
    assert raw.status_code == 200 and raw.text == 'sea surface'
    assert raw.headers['Content-Type'].startswith('text/plain')
    doc = execute(vre_server, 'echo', {'inputs': {'echoInput': 'sal'}, 'response': 'document'})
    assert doc.status_code == 200 and doc.json() == {'echoOutput': 'sal'}
    # the job behind a synchronous execution is recorded too
    job = requests.get(doc.headers['Location']).json()
    assert job['status'] == 'successful' and job['processID'] == 'echo'


def test_owslib_sync_and_async(vre_server):
    client = Processes(vre_server.url)
    result = client.execute('echo', {'echoInput': 'owslib'})
    assert result == {'echoOutput': 'owslib'}
    status = client.execute('echo', {'echoInput': 'later'}, async_=True)
    assert status['status'] in ('accepted', 'running', 'successful')
    done = wait_for(vre_server, status['jobID'])
    assert done['status'] == 'successful'


def test_async_statusinfo_location_and_results(vre_server):
    resp = execute(vre_server, 'echo', {'inputs': {'echoInput': 'async', 'pause': 1.5}},
                   prefer='respond-async')
    assert resp.status_code == 201
    assert resp.headers['Preference-Applied'] == 'respond-async'
    info = resp.json()
    assert info['status'] == 'accepted' and info['processID'] == 'echo'
    assert resp.headers['Location'] == f"{vre_server.url}/jobs/{info['jobID']}"
    wait_for(vre_server, info['jobID'], states=('running',))
    early = requests.get(f"{vre_server.url}/jobs/{info['jobID']}/results")
    assert early.status_code == 404 and early.json()['type'] == EXC + 'result-not-ready'
    done = wait_for(vre_server, info['jobID'])
    assert done['status'] == 'successful' and done['progress'] == 100
    assert any(link['rel'].endswith('/results') for link in done['links'])
    results = requests.get(f"{vre_server.url}/jobs/{info['jobID']}/results").json()
    assert results == {'echoOutput': 'async'}


def test_output_by_reference(vre_server):
    body = {'inputs': {'echoInput': 'by reference'}, 'response': 'document',
            'outputs': {'echoOutput': {'transmissionMode': 'reference'}}}
    doc = execute(vre_server, 'echo', body).json()
    href = doc['echoOutput']['href']
    assert requests.get(href).text == 'by reference'
    raw = execute(vre_server, 'echo', dict(body, response='raw'))
    assert raw.status_code == 204 and 'rel="http://www.opengis.net/def/rel/ogc/1.0/results"' \
        in raw.headers['Link']


def test_netcdf_input_and_output_by_reference(vre_server, static_server, bdi_data):
    import gsw
    import numpy as np
    sample = 'argo/dac/bodc/6901929/profiles/D6901929_001.nc'
    body = {'inputs': {'profiles': {'href': f'{static_server}/{sample}'}, 'max_pressure': 500},
            'outputs': {'ohc': {'transmissionMode': 'reference'}, 'summary': {}},
            'response': 'document'}
    resp = execute(vre_server, 'ocean-heat-content', body, prefer='respond-async')
    assert resp.status_code == 201
    wait_for(vre_server, resp.json()['jobID'])
    doc = requests.get(f"{vre_server.url}/jobs/{resp.json()['jobID']}/results").json()
    assert doc['ohc']['type'] == 'application/x-netcdf'
    nc = requests.get(doc['ohc']['href'])
    assert nc.status_code == 200
    path = vre_server.home / 'ohc-check.nc'
    path.write_bytes(nc.content)
    served = xr.open_dataset(path)
    # independent calculation on the first profile, straight from the file with gsw
    src = xr.open_dataset(bdi_data / sample)
    p = src.PRES_ADJUSTED.values[0]; t = src.TEMP_ADJUSTED.values[0]
    s = src.PSAL_ADJUSTED.values[0]
    good = np.isfinite(p) & np.isfinite(t) & np.isfinite(s)
    for var in ('PRES', 'TEMP', 'PSAL'):
        good &= np.isin(src[f'{var}_ADJUSTED_QC'].values[0].astype('S1'), [b'1', b'2', b'5', b'8'])
    p, t, s = p[good], t[good], s[good]
    keep = p <= 500
    lat, lon = float(src.LATITUDE[0]), float(src.LONGITUDE[0])
    sa = gsw.SA_from_SP(s[keep], p[keep], lon, lat)
    ct = gsw.CT_from_t(sa, t[keep], p[keep])
    expected = np.trapezoid(gsw.rho(sa, ct, p[keep]) * 3991.86795711963 * ct, -gsw.z_from_p(p[keep], lat))
    assert served.ohc.values[0] == pytest.approx(expected, rel=1e-9)
    assert doc['summary']['profiles'] == src.sizes['N_PROF']


def test_multiple_outputs_raw_is_multipart(vre_server, static_server):
    body = {'inputs': {'profiles': {'href': f'{static_server}/argo/dac/bodc/6901929/profiles/'
                                            'D6901929_002.nc'}},
            'outputs': {'ohc': {'transmissionMode': 'reference'},
                        'summary': {'transmissionMode': 'value'}}}
    resp = execute(vre_server, 'ocean-heat-content', body)
    assert resp.status_code == 200
    assert resp.headers['Content-Type'].startswith('multipart/related')
    assert b'Content-ID: <summary>' in resp.content and b'Content-ID: <ohc>' in resp.content


def test_output_selection(vre_server, static_server):
    body = {'inputs': {'profiles': {'href': f'{static_server}/argo/dac/bodc/6901929/profiles/'
                                            'D6901929_003.nc'}},
            'outputs': {'summary': {}}, 'response': 'document'}
    doc = execute(vre_server, 'ocean-heat-content', body).json()
    assert list(doc) == ['summary']


def test_job_list_filters_and_paging(vre_server):
    user = 'carol'
    ids = []
    for i in range(5):
        r = execute(vre_server, 'echo', {'inputs': {'echoInput': f'n{i}'}}, user=user,
                    prefer='respond-async')
        ids.append(r.json()['jobID'])
    for job_id in ids:
        wait_for(vre_server, job_id, user=user)
    h = vre_server.auth(user)
    page = requests.get(f'{vre_server.url}/jobs', params={'processID': 'echo', 'limit': 2},
                        headers=h).json()
    assert page['numberMatched'] == 5 and len(page['jobs']) == 2
    nxt = next(link['href'] for link in page['links'] if link['rel'] == 'next')
    page2 = requests.get(nxt, headers=h).json()
    assert {j['jobID'] for j in page2['jobs']}.isdisjoint({j['jobID'] for j in page['jobs']})
    assert any(link['rel'] == 'prev' for link in page2['links'])
    seen = set()
    url = f'{vre_server.url}/jobs?limit=2&processID=echo'
    while url:
        doc = requests.get(url, headers=h).json()
        seen |= {j['jobID'] for j in doc['jobs']}
        url = next((link['href'] for link in doc['links'] if link['rel'] == 'next'), None)
    assert seen == set(ids)
    assert requests.get(f'{vre_server.url}/jobs', params={'status': 'failed'},
                        headers=h).json()['numberMatched'] == 0
    assert requests.get(f'{vre_server.url}/jobs', params={'type': 'process', 'limit': 100},
                        headers=h).json()['numberMatched'] == 5
    assert requests.get(f'{vre_server.url}/jobs', params={'datetime': '2000-01-01T00:00:00Z/..'},
                        headers=h).json()['numberMatched'] == 5
    assert requests.get(f'{vre_server.url}/jobs', params={'datetime': '../2000-01-01T00:00:00Z'},
                        headers=h).json()['numberMatched'] == 0
    assert requests.get(f'{vre_server.url}/jobs', params={'minDuration': 3600},
                        headers=h).json()['numberMatched'] == 0
    assert requests.get(f'{vre_server.url}/jobs', params={'maxDuration': 3600},
                        headers=h).json()['numberMatched'] == 5
    for bad in ({'status': 'finished'}, {'limit': 0}, {'limit': 'x'}, {'datetime': 'yesterday'},
                {'type': 'nope'}, {'minDuration': -1}):
        r = requests.get(f'{vre_server.url}/jobs', params=bad, headers=h)
        assert r.status_code == 400, bad
        assert r.headers['Content-Type'] == 'application/problem+json'


def test_dismiss_cancels_a_running_job(vre_server):
    resp = execute(vre_server, 'echo', {'inputs': {'echoInput': 'long', 'pause': 60}},
                   prefer='respond-async', user='alice')
    job_id = resp.json()['jobID']
    running = wait_for(vre_server, job_id, user='alice', states=('running',))
    h = vre_server.auth('alice')
    gone = requests.delete(f'{vre_server.url}/jobs/{job_id}', headers=h)
    assert gone.status_code == 200 and gone.json()['status'] == 'dismissed'
    assert requests.get(f'{vre_server.url}/jobs/{job_id}', headers=h).status_code == 404
    # the worker child that ran it was terminated: the worker is free for a new job at once
    quick = execute(vre_server, 'echo', {'inputs': {'echoInput': 'next'}})
    assert quick.status_code == 200 and quick.text == 'next'
    assert running['status'] == 'running'


def test_callbacks_are_called(vre_server):
    received = {}

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers['Content-Length']))
            received[self.path] = json.loads(body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    with serve(Hook) as base:
        sub = {'successUri': f'{base}/ok', 'inProgressUri': f'{base}/progress',
               'failedUri': f'{base}/failed'}
        r = execute(vre_server, 'echo', {'inputs': {'echoInput': 'call me'}, 'subscriber': sub},
                    prefer='respond-async')
        wait_for(vre_server, r.json()['jobID'])
        deadline = time.monotonic() + 10
        while '/ok' not in received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received['/ok'] == {'echoOutput': 'call me'}
        assert received['/progress']['status'] == 'running'
        r = execute(vre_server, 'ocean-heat-content',
                    {'inputs': {'profiles': {'href': f'{base}/missing.nc'}}, 'subscriber': sub},
                    prefer='respond-async')
        wait_for(vre_server, r.json()['jobID'])
        deadline = time.monotonic() + 10
        while '/failed' not in received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received['/failed']['status'] == 'failed'


def test_jobs_belong_to_their_user(vre_server):
    r = execute(vre_server, 'echo', {'inputs': {'echoInput': 'private'}}, user='alice',
                prefer='respond-async')
    job_id = r.json()['jobID']
    wait_for(vre_server, job_id, user='alice')
    for other in ('bob', None):
        h = vre_server.auth(other)
        assert requests.get(f'{vre_server.url}/jobs/{job_id}', headers=h).status_code == 404
        assert requests.get(f'{vre_server.url}/jobs/{job_id}/results',
                            headers=h).status_code == 404
        assert requests.delete(f'{vre_server.url}/jobs/{job_id}', headers=h).status_code == 404
        listed = requests.get(f'{vre_server.url}/jobs?limit=1000', headers=h).json()['jobs']
        assert job_id not in {j['jobID'] for j in listed}
    assert requests.get(f'{vre_server.url}/jobs/{job_id}/results',
                        headers=vre_server.auth('alice')).json() == {'echoOutput': 'private'}
    admin = requests.get(f'{vre_server.url}/jobs/{job_id}', headers=vre_server.auth('admin'))
    assert admin.status_code == 200
    bad = requests.get(f'{vre_server.url}/jobs', headers={'Authorization': 'Bearer nope'})
    assert bad.status_code == 401 and bad.headers['Content-Type'] == 'application/problem+json'


@pytest.mark.parametrize('body,status', [
    (b'{not json', 400),
    (b'', 400),
    (b'[1, 2]', 400),
    (json.dumps({'inputs': {}}).encode(), 400),                          # missing required
    (json.dumps({'inputs': {'echoInput': 5}}).encode(), 400),            # wrong type
    (json.dumps({'inputs': {'echoInput': 'a', 'pause': -1}}).encode(), 400),
    (json.dumps({'inputs': {'echoInput': 'a', 'colour': 'red'}}).encode(), 400),
    (json.dumps({'inputs': {'echoInput': 'a'}, 'response': 'zip'}).encode(), 400),
    (json.dumps({'inputs': {'echoInput': 'a'}, 'outputs': {'x': {}}}).encode(), 400),
    (json.dumps({'inputs': {'echoInput': 'a'}, 'subscriber': {'successUri': 'ftp://x'}}).encode(),
     400),
    (json.dumps({'inputs': {'echoInput': {'href': 'http://example.org/a'}}}).encode(), 400),
])
def test_bad_execute_requests(vre_server, body, status):
    r = requests.post(f'{vre_server.url}/processes/echo/execution', data=body,
                      headers={'Content-Type': 'application/json'})
    assert r.status_code == status
    assert r.headers['Content-Type'] == 'application/problem+json'
    assert 'Traceback' not in r.text and r.json()['detail']


def test_unknown_process_job_and_oversized_body(vre_server):
    r = execute(vre_server, 'nope', {'inputs': {}})
    assert r.status_code == 404 and r.json()['type'] == EXC + 'no-such-process'
    r = requests.get(f'{vre_server.url}/jobs/not-a-job')
    assert r.status_code == 404 and r.json()['type'] == EXC + 'no-such-job'
    big = {'inputs': {'echoInput': 'x' * (3 * 1024 * 1024)}}
    r = execute(vre_server, 'echo', big)
    assert r.status_code == 413 and r.headers['Content-Type'] == 'application/problem+json'


def test_failed_job_reports_reason(vre_server, static_server):
    r = execute(vre_server, 'ocean-heat-content',
                {'inputs': {'profiles': {'href': f'{static_server}/argo/index/ar_greylist.txt'}}},
                prefer='respond-async')
    done = wait_for(vre_server, r.json()['jobID'])
    assert done['status'] == 'failed' and 'NetCDF' in done['message']
    res = requests.get(f"{vre_server.url}/jobs/{done['jobID']}/results")
    assert res.status_code == 400 and res.headers['Content-Type'] == 'application/problem+json'
    sync = execute(vre_server, 'ocean-heat-content',
                   {'inputs': {'profiles': {'href': f'{static_server}/argo/no-such-file.nc'}}})
    assert sync.status_code == 400 and '404' in sync.json()['detail']


def test_definition_rerun_reproduces_outputs(vre_server, static_server):
    body = {'inputs': {'profiles': {'href': f'{static_server}/argo/dac/bodc/6901929/profiles/'
                                            'D6901929_004.nc'}, 'max_pressure': 300},
            'outputs': {'ohc': {'transmissionMode': 'reference'}, 'summary': {}},
            'response': 'document'}
    first = execute(vre_server, 'ocean-heat-content', body)
    job_id = first.headers['Location'].rsplit('/', 1)[-1]
    definition = requests.get(f'{vre_server.url}/jobs/{job_id}/definition').json()
    assert definition['inputs'] == body['inputs']
    assert definition['process'].endswith('/processes/ocean-heat-content')
    again = execute(vre_server, 'ocean-heat-content', definition)
    assert again.status_code == 200
    again_id = again.headers['Location'].rsplit('/', 1)[-1]
    assert again.json()['summary'] == first.json()['summary']
    sums = []
    for jid in (job_id, again_id):
        prov = requests.get(f'{vre_server.url}/jobs/{jid}/prov').json()
        outputs = {e['vre:output']: e['vre:sha256'] for e in prov['entity'].values()
                   if 'vre:output' in e}
        sums.append(outputs)
    assert sums[0] == sums[1] and len(sums[0]['ohc']) == 64


def test_provenance_formats_and_content(vre_server, static_server, bdi_data):
    import hashlib
    sample = 'argo/dac/bodc/6901929/profiles/D6901929_005.nc'
    r = execute(vre_server, 'ocean-heat-content',
                {'inputs': {'profiles': {'href': f'{static_server}/{sample}'}}, 'response': 'document'},
                user='alice')
    job_id = r.headers['Location'].rsplit('/', 1)[-1]
    h = vre_server.auth('alice')
    prov = requests.get(f'{vre_server.url}/jobs/{job_id}/prov', headers=h)
    assert prov.headers['Content-Type'].startswith('application/json')
    doc = prov.json()
    entities = list(doc['entity'].values())
    used = [e for e in entities if e.get('prov:location') == f'{static_server}/{sample}']
    assert used and used[0]['vre:sha256'] == hashlib.sha256((bdi_data / sample).read_bytes()).hexdigest()
    agents = list(doc['agent'])
    assert any(a.endswith('alice') for a in agents)
    assert 'used' in doc and 'wasGeneratedBy' in doc and 'wasAssociatedWith' in doc
    provn = requests.get(f'{vre_server.url}/jobs/{job_id}/prov',
                         headers={**h, 'Accept': 'text/provenance-notation'})
    assert provn.text.startswith('document') and 'wasAssociatedWith' in provn.text
    xml = requests.get(f'{vre_server.url}/jobs/{job_id}/prov?f=xml', headers=h)
    assert xml.headers['Content-Type'].startswith('application/provenance+xml')
    assert '<prov:document' in xml.text
    assert requests.get(f'{vre_server.url}/jobs/{job_id}/prov',
                        headers=vre_server.auth('bob')).status_code == 404


def test_outputs_go_to_the_chosen_tier(vre_server, static_server):
    sample = f'{static_server}/argo/dac/bodc/6901929/profiles/D6901929_006.nc'
    body = {'inputs': {'profiles': {'href': sample}, 'output_tier': 'workspace',
                       'output_folder': 'analyses/ohc'},
            'outputs': {'ohc': {'transmissionMode': 'reference'}}, 'response': 'document'}
    r = execute(vre_server, 'ocean-heat-content', body, user='alice')
    assert r.status_code == 200, r.text
    href = r.json()['ohc']['href']
    assert href.startswith(f'{vre_server.url}/storage/workspace/alice/analyses/ohc/')
    job_id = r.headers['Location'].rsplit('/', 1)[-1]
    mine = requests.get(href, headers=vre_server.auth('alice'))
    assert mine.status_code == 200 and mine.content[:3] in (b'CDF', b'\x89HD')
    assert requests.get(href, headers=vre_server.auth('bob')).status_code == 404
    stat = requests.get(href, params={'stat': 1}, headers={**vre_server.auth('alice'),
                                                           'Accept': 'application/json'})
    if stat.headers['Content-Type'].startswith('application/json'):
        assert stat.json()['provenance'].endswith(f'/jobs/{job_id}')
    # default: the volatile tier, an unguessable URL anyone holding it can read
    body['inputs'].pop('output_tier'); body['inputs'].pop('output_folder')
    r = execute(vre_server, 'ocean-heat-content', body)
    href = r.json()['ohc']['href']
    assert '/storage/volatile/' in href and requests.get(href).status_code == 200
    # anonymous jobs cannot write into a workspace
    body['inputs']['output_tier'] = 'workspace'
    r = execute(vre_server, 'ocean-heat-content', body)
    assert r.status_code == 400 and 'signed-in user' in r.json()['detail']
