"""Orders over HTTP against a real server: baskets as Part 4 jobs, fulfilment on the Celery
worker from three BDIs (one answering 503), the stored files, the zip made at download and
the manifest against the source files, retry of what failed, provenance, dashboard,
downloads with Range, push to the workspace, and the client mistakes."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import time
import zipfile
import zlib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests

from orderkit import BDI_DATA, StandIn, wait_for
from processes.jobstore import JobStore
from storage.replicas import Site

SDN_GRANULES = ['sdn-netCDF_timeseries_tidegauge', 'sdn-sample_ODV']


def api(server, method, path, user='alice', headers=None, **kwargs):
    return requests.request(method, f'{server.url}{path}', timeout=60,
                            headers={**server.auth(user), **(headers or {})}, **kwargs)


def granule_ids(server, bdi, limit):
    r = requests.get(f'{server.url}/collections/{bdi}-granules/items',
                     params={'limit': limit, 'f': 'json'}, timeout=30)
    assert r.status_code == 200, r.text
    ids = [f['id'] for f in r.json()['features']]
    assert len(ids) == limit
    return ids


def disk_file(source_url: str):
    """The sample file the stand-in served for this URL, found on disk by the test."""
    parts = urlsplit(source_url)
    bdi, _, rel = parts.path.lstrip('/').partition('/')
    if bdi == 'obis':
        return StandIn.obis['/' + rel + ('?' + parts.query if parts.query else '')]
    if bdi == 'argo':
        return BDI_DATA / 'argo' / rel
    return BDI_DATA / bdi / rel


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_basket(server, granules, user='alice', **inputs):
    r = api(server, 'POST', '/jobs', user, json={
        'process': f'{server.url}/processes/order', 'inputs': {'granules': granules, **inputs}})
    assert r.status_code == 201, r.text
    assert r.headers['Location'].endswith(f"/jobs/{r.json()['jobID']}")
    return r.json()


def test_basket_is_a_created_job_edited_then_submitted(order_server):
    s = order_server
    argo = granule_ids(s, 'argo', 3)
    job = new_basket(s, argo[:1])
    jid = job['jobID']
    assert job['status'] == 'created' and job['type'] == 'order'
    listed = api(s, 'GET', '/jobs', params={'type': 'order', 'status': 'created',
                                             'limit': 100}).json()
    assert jid in [j['jobID'] for j in listed['jobs']]
    r = api(s, 'PATCH', f'/jobs/{jid}', json={'add': argo[1:] + SDN_GRANULES,
                                               'remove': [argo[0]]})
    assert r.status_code == 200, r.text
    definition = api(s, 'GET', f'/jobs/{jid}/definition').json()
    assert definition['inputs']['granules'] == argo[1:] + SDN_GRANULES
    r = api(s, 'PATCH', f'/jobs/{jid}', json={'inputs': {'granules': argo[:2]}})
    assert r.status_code == 200, r.text
    assert api(s, 'GET', f'/jobs/{jid}/definition').json()['inputs']['granules'] == argo[:2]
    assert api(s, 'GET', f'/jobs/{jid}/results').status_code == 404       # not submitted
    r = api(s, 'POST', f'/jobs/{jid}/results')
    assert r.status_code == 201, r.text
    assert r.json()['status'] == 'accepted' and r.headers['Location'].endswith(jid)
    locked = api(s, 'PATCH', f'/jobs/{jid}', json={'add': [argo[2]]})
    assert locked.status_code == 423 and locked.headers['Content-Type'].startswith(
        'application/problem+json')
    assert api(s, 'POST', f'/jobs/{jid}/results').status_code == 423
    assert wait_for(s, jid)['status'] == 'successful'


def test_three_bdis_one_down_then_retry(order_server, bdi_down):
    s = order_server
    argo, obis = granule_ids(s, 'argo', 4), granule_ids(s, 'obis', 2)
    job = new_basket(s, argo + obis + SDN_GRANULES)
    bdi_down('/seadatanet/')                                 # SeaDataNet goes down
    started = time.monotonic()
    assert api(s, 'POST', f"/jobs/{job['jobID']}/results").status_code == 201
    done = wait_for(s, job['jobID'])
    assert done['status'] == 'successful'
    assert time.monotonic() - started < 60                   # bounded, never hangs
    order = api(s, 'GET', f"/orders/{job['jobID']}").json()
    by_id = {ln['granule']: ln for ln in order['lines']}
    assert {g for g, ln in by_id.items() if ln['status'] == 'delivered'} == set(argo + obis)
    for g in SDN_GRANULES:
        assert by_id[g]['status'] == 'failed' and by_id[g]['bdi'] == 'seadatanet'
        assert '503' in by_id[g]['error'] or 'down' in by_id[g]['error']

    r = api(s, 'GET', f"/orders/{job['jobID']}/download")
    assert r.status_code == 200 and r.headers['Content-Type'] == 'application/zip'
    assert int(r.headers['Content-Length']) == len(r.content)
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    manifest = json.loads(zf.read('manifest.json'))
    assert manifest['delivered'] == 6 and manifest['failed'] == 2
    assert 'seadatanet' in manifest['bdis_down']
    for e in manifest['granules']:
        if e['status'] != 'delivered':
            assert 'file' not in e
            continue
        source = disk_file(e['source_url']).read_bytes()
        member = zf.read(e['file'])
        assert member == source
        assert e['sha256'] == sha256(source) == e['expected_sha256']
        assert e['bytes'] == len(source)
        assert e['licence'] and e['citation'] and e['url']
    assert sorted(n.split('/')[0] for n in zf.namelist() if n != 'manifest.json') == \
        ['argo'] * 4 + ['obis'] * 2
    check_stored_files(s, job['jobID'], zf)

    # the zip is made again, byte for byte, for every request: ranges resume it anywhere
    part = api(s, 'GET', f"/orders/{job['jobID']}/download", headers={'Range': 'bytes=1000-'})
    assert part.status_code == 206 and part.content == r.content[1000:]
    assert part.headers['Content-Range'] == f'bytes 1000-{len(r.content) - 1}/{len(r.content)}'
    infos = zf.infolist()
    mid_first = infos[0].header_offset + 200
    mid_third = infos[2].header_offset + 10                  # inside the third local header
    across = api(s, 'GET', f"/orders/{job['jobID']}/download",
                 headers={'Range': f'bytes={mid_first}-{mid_third}'})
    assert across.status_code == 206 and across.content == r.content[mid_first:mid_third + 1]
    assert api(s, 'GET', f"/orders/{job['jobID']}/download", headers={
        'Range': f'bytes={len(r.content)}-'}).status_code == 416
    head = api(s, 'HEAD', f"/orders/{job['jobID']}/download")
    assert head.headers['Content-Length'] == str(len(r.content))
    assert head.headers['ETag'] == r.headers['ETag']
    # the CRC-32s computed by the first download are kept for the next ones
    row = JobStore(f'sqlite:///{s.home}/jobs.sqlite').get(job['jobID'])
    assert row['meta']['zip_crc32'] == {i.filename: zlib.crc32(zf.read(i)) for i in infos}

    # provenance: every granule read is a used entity with its source URL and checksum
    prov = api(s, 'GET', f"/jobs/{job['jobID']}/prov").json()
    used = {(v['prov:location'], v['vre:sha256']) for v in prov['entity'].values()
            if 'vre:bytes' in v}
    for e in manifest['granules']:
        if e['status'] == 'delivered':
            assert (e['source_url'], e['sha256']) in used
    assert len(prov['used']) >= 6
    check_order_provenance(s, job['jobID'])

    StandIn.failing.clear()                                  # SeaDataNet is back
    retry = api(s, 'POST', f"/orders/{job['jobID']}/retry")
    assert retry.status_code == 201, retry.text
    again = wait_for(s, retry.json()['jobID'])
    assert again['status'] == 'successful'
    lines = api(s, 'GET', f"/orders/{again['jobID']}").json()['lines']
    assert {ln['granule']: ln['status'] for ln in lines} == {g: 'delivered' for g in SDN_GRANULES}
    zf = zipfile.ZipFile(io.BytesIO(api(s, 'GET', f"/orders/{again['jobID']}/download").content))
    for e in json.loads(zf.read('manifest.json'))['granules']:
        assert zf.read(e['file']) == disk_file(e['source_url']).read_bytes()
    check_stored_files(s, again['jobID'], zf)
    again_retry = api(s, 'POST', f"/orders/{again['jobID']}/retry")
    assert again_retry.status_code == 409                    # nothing failed


def test_order_of_a_bdi_down_throughout_fails_with_reasons(order_server, bdi_down):
    s = order_server
    bdi_down('/obis/')
    job = new_basket(s, granule_ids(s, 'obis', 2))
    api(s, 'POST', f"/jobs/{job['jobID']}/results")
    done = wait_for(s, job['jobID'])
    assert done['status'] == 'failed' and '503' in done['message']
    lines = api(s, 'GET', f"/orders/{job['jobID']}").json()['lines']
    assert [ln['status'] for ln in lines] == ['failed', 'failed']
    assert api(s, 'GET', f"/orders/{job['jobID']}/download").status_code == 404
    StandIn.failing.clear()
    retry = api(s, 'POST', f"/orders/{job['jobID']}/retry")
    assert wait_for(s, retry.json()['jobID'])['status'] == 'successful'


def test_dashboard_json_csv_filters_and_owners(order_server):
    s = order_server
    argo = granule_ids(s, 'argo', 2)
    done = new_basket(s, argo)
    api(s, 'POST', f"/jobs/{done['jobID']}/results")
    wait_for(s, done['jobID'])
    basket = new_basket(s, SDN_GRANULES[:1])
    doc = api(s, 'GET', '/orders').json()
    orders = {o['id']: o for o in doc['orders']}
    assert {done['jobID'], basket['jobID']} <= set(orders)
    lines = orders[done['jobID']]['lines']
    assert [(ln['granule'], ln['bdi'], ln['status']) for ln in lines] == \
        [(g, 'argo', 'delivered') for g in argo]
    for ln in lines:
        assert ln['submitted'] and ln['delivered'] and ln['dataset'] and ln['source']
        assert ln['size'] == disk_file(ln['source'].replace(
            'https://data-argo.ifremer.fr', s.stand_in + '/argo')).stat().st_size
    assert [ln['status'] for ln in orders[basket['jobID']]['lines']] == ['basket']

    only_sdn = api(s, 'GET', '/orders', params={'bdi': 'seadatanet'}).json()['orders']
    assert only_sdn and all(ln['bdi'] == 'seadatanet' for o in only_sdn for ln in o['lines'])
    delivered = api(s, 'GET', '/orders', params={'status': 'delivered'}).json()['orders']
    assert all(ln['status'] == 'delivered' for o in delivered for ln in o['lines'])
    assert done['jobID'] in {o['id'] for o in delivered}
    assert basket['jobID'] not in {o['id'] for o in delivered}

    rows = list(csv.DictReader(io.StringIO(api(s, 'GET', '/orders', params={'f': 'csv'}).text)))
    assert {(r['order'], r['granule']) for r in rows} >= {(done['jobID'], g) for g in argo}
    assert set(rows[0]) >= {'order', 'bdi', 'dataset', 'source', 'submitted', 'delivered',
                            'status', 'size'}

    html = api(s, 'GET', '/orders', params={'f': 'html'})
    assert html.status_code == 200 and done['jobID'] in html.text

    for bad in ({'status': 'lost'}, {'bdi': 'nosuch'}, {'f': 'xml'}):
        r = api(s, 'GET', '/orders', params=bad)
        assert r.status_code == 400 and r.json()['detail']
    assert api(s, 'GET', '/orders', user=None).status_code == 401
    # bob sees none of alice's orders, and cannot reach them
    assert done['jobID'] not in {o['id'] for o in api(s, 'GET', '/orders', 'bob').json()['orders']}
    for method, path in (('GET', f"/orders/{done['jobID']}"),
                         ('GET', f"/orders/{done['jobID']}/download"),
                         ('POST', f"/orders/{done['jobID']}/workspace"),
                         ('POST', f"/orders/{done['jobID']}/retry"),
                         ('PATCH', f"/jobs/{basket['jobID']}"),
                         ('POST', f"/jobs/{basket['jobID']}/results")):
        r = api(s, method, path, 'bob', json={'add': argo})
        assert r.status_code == 404, (method, path, r.text)


def check_stored_files(server, job_id, zf):
    """The order's files in its tier, one per delivered granule at <folder>/<bdi>/<file>,
    are the source files; the stored manifest.json is the zip's."""
    results = api(server, 'GET', f'/jobs/{job_id}/results').json()
    assert results['order'] == {'href': f'{server.url}/orders/{job_id}/download',
                                'type': 'application/zip'}
    manifest = results['manifest']
    delivered = [e for e in manifest['granules'] if e['status'] == 'delivered']
    assert delivered
    for e in delivered:
        assert e['href'].endswith(f"/jobs/{job_id}/{e['file']}")
        got = api(server, 'GET', urlsplit(e['href']).path)
        assert got.status_code == 200, got.text
        assert got.content == disk_file(e['source_url']).read_bytes() == zf.read(e['file'])
        assert sha256(got.content) == e['sha256']
        assert requests.get(e['href'], headers=server.auth('bob'), timeout=30).status_code == 404
    stored = api(server, 'GET', urlsplit(manifest['manifest_file']['href']).path).content
    assert stored == zf.read('manifest.json')
    assert sha256(stored) == manifest['manifest_file']['sha256']
    on_disk = json.loads(stored)        # the job's manifest is it, plus the stored URLs
    assert [{k: v for k, v in e.items() if k != 'href'} for e in manifest['granules']] == \
        on_disk['granules']
    assert {k: v for k, v in manifest.items() if k not in ('granules', 'manifest_file')} == \
        {k: v for k, v in on_disk.items() if k != 'granules'}


def check_order_provenance(server, job_id):
    """GET /jobs/{id}/prov: each stored file an entity with its checksum, derived from its
    source and generated by the job."""
    row = JobStore(f'sqlite:///{server.home}/jobs.sqlite').get(job_id)
    graph = api(server, 'GET', f'/jobs/{job_id}/prov').json()
    by_location = {v['prov:location']: k for k, v in graph['entity'].items()
                   if 'prov:location' in v}
    derived = {(d['prov:generatedEntity'], d['prov:usedEntity'])
               for d in graph['wasDerivedFrom'].values()}
    generated = {(g['prov:entity'], g['prov:activity']) for g in graph['wasGeneratedBy'].values()}
    delivered = [e for e in row['results']['manifest']['value']['granules']
                 if e['status'] == 'delivered']
    for e in delivered:
        stored = by_location[e['href']]
        assert graph['entity'][stored]['vre:sha256'] == e['sha256']
        assert (stored, by_location[e['source_url']]) in derived
        assert (stored, f'job:{job_id}') in generated
    assert len(derived) == len(delivered)


def test_push_to_workspace(order_server):
    s = order_server
    job = new_basket(s, granule_ids(s, 'obis', 2), output_tier='volatile')
    api(s, 'POST', f"/jobs/{job['jobID']}/results")
    assert wait_for(s, job['jobID'])['status'] == 'successful'
    zf = zipfile.ZipFile(io.BytesIO(api(s, 'GET', f"/orders/{job['jobID']}/download").content))
    r = api(s, 'POST', f"/orders/{job['jobID']}/workspace")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc['tier'] == 'workspace' and doc['path'] == f"orders/{job['jobID']}"
    assert r.headers['Location'] == doc['href'] and doc['files'] == 3
    listing = api(s, 'GET', urlsplit(doc['href']).path + '/obis').json()['entries']
    assert len(listing) == 2
    assert all(e['licence'] and e['citation'] for e in listing)   # kept from the order
    for name in zf.namelist():
        got = api(s, 'GET', f"{urlsplit(doc['href']).path}/{name}")
        assert got.status_code == 200 and got.content == zf.read(name)
    assert doc['size'] == sum(i.file_size for i in zf.infolist() if i.filename != 'manifest.json')
    stat = api(s, 'GET', f"{urlsplit(doc['manifest']).path}", params={'f': 'json'}).json()
    assert stat['provenance'].endswith(f"/jobs/{job['jobID']}")
    assert requests.get(doc['href'], headers=s.auth('bob'), timeout=30).status_code in (403, 404)
    again = api(s, 'POST', f"/orders/{job['jobID']}/workspace", json={'path': 'kept/obis'})
    assert again.status_code == 201 and again.json()['path'] == 'kept/obis'
    on_a_file = api(s, 'POST', f"/orders/{job['jobID']}/workspace",
                    json={'path': f"orders/{job['jobID']}/manifest.json"})
    assert on_a_file.status_code == 409, on_a_file.text
    assert api(s, 'POST', f"/orders/{job['jobID']}/workspace",
               json={'path': ['x']}).status_code == 400


def workspace_files(server, folder, user='alice'):
    """{path: (versions, bytes)} of every live file under a workspace folder ({} if none)."""
    out, todo = {}, [folder]
    while todo:
        r = api(server, 'GET', f'/storage/workspace/{user}/{todo.pop()}', user)
        if r.status_code == 404:
            continue
        for e in r.json()['entries']:
            if e['type'] == 'folder':
                todo.append(e['path'])
                continue
            path = f"/storage/workspace/{user}/{e['path']}"
            versions = api(server, 'GET', path, user, params={'versions': ''}).json()
            out[e['path']] = ([v['version'] for v in versions['versions'] if not v['trashed']],
                              api(server, 'GET', path, user).content)
    return out


def test_push_is_all_or_nothing(order_server):
    """A push that cannot finish leaves the workspace as it was: a destination taken by a
    folder is refused before any copy; a copy failing part-way (a stored file whose every
    replica is damaged) is undone, and files pushed earlier keep their only version."""
    s = order_server
    job = new_basket(s, granule_ids(s, 'obis', 2))            # delivered to the workspace
    jid = job['jobID']
    api(s, 'POST', f'/jobs/{jid}/results')
    assert wait_for(s, jid)['status'] == 'successful'
    push = f'/orders/{jid}/workspace'
    assert api(s, 'POST', push, json={'path': f'kept/{jid}'}).status_code == 201
    before = workspace_files(s, f'kept/{jid}')
    assert len(before) == 3 and all(v == [1] for v, _ in before.values())
    again = api(s, 'POST', push, json={'path': f'kept/{jid}'})     # a new version of each
    assert again.status_code == 201, again.text
    assert all(v == [1, 2] for v, _ in workspace_files(s, f'kept/{jid}').values())

    # manifest.json is copied last: its place taken by a folder is found before any copy
    made = api(s, 'POST', f'/storage/workspace/alice/taken/{jid}/manifest.json',
               json={'action': 'mkdir'})
    assert made.status_code == 201, made.text
    r = api(s, 'POST', push, json={'path': f'taken/{jid}'})
    assert r.status_code == 409, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    listing = api(s, 'GET', f'/storage/workspace/alice/taken/{jid}').json()['entries']
    assert [(e['type'], e['name']) for e in listing] == [('folder', 'manifest.json')]
    assert 'manifest.json' in r.json()['detail'] and 'nothing' in r.json()['detail']

    # the second stored file damaged on both replica sites: found only when it is read
    manifest = api(s, 'GET', f'/jobs/{jid}/results').json()['manifest']
    second = [e for e in (manifest.get('value') or manifest)['granules']
              if e['status'] == 'delivered'][1]
    _, _, stored_path = urlsplit(second['href']).path.partition('/storage/workspace/alice/')
    with sqlite3.connect(s.home / 'storage.sqlite') as db:
        blob, sites = db.execute(
            "SELECT blob, sites FROM files WHERE tier = 'workspace' AND owner = 'alice' "
            'AND path = ? ORDER BY version DESC', (unquote(stored_path),)).fetchone()
    for site in json.loads(sites):
        damaged = Site(site).blob_path(blob)
        Path(damaged).write_bytes(b'\0' * Path(damaged).stat().st_size)
    for dest in (f'kept/{jid}', f'fresh/{jid}'):
        r = api(s, 'POST', push, json={'path': dest})
        assert r.status_code == 503, r.text
        assert r.headers['Content-Type'].startswith('application/problem+json')
        assert 'nothing was pushed' in r.json()['detail']
    assert workspace_files(s, f'fresh/{jid}') == {}
    after = workspace_files(s, f'kept/{jid}')
    assert after == {path: ([1, 2], data) for path, (_, data) in before.items()}


def test_dataspace_order_in_its_folder_and_changed_files(order_server):
    """An order to the dataspace lands in output_folder/<bdi>/; a delivered file changed
    afterwards makes the download a clear 410, not a zip that lies about its contents."""
    s = order_server
    argo = granule_ids(s, 'argo', 2)
    job = new_basket(s, argo, output_tier='dataspace', output_folder='my/argo-order')
    api(s, 'POST', f"/jobs/{job['jobID']}/results")
    assert wait_for(s, job['jobID'])['status'] == 'successful'
    listing = api(s, 'GET', '/storage/dataspace/alice/my/argo-order/argo').json()['entries']
    assert sorted(e['name'] for e in listing) == sorted(f'{g}.nc' for g in argo)
    manifest = api(s, 'GET', f"/jobs/{job['jobID']}/results").json()['manifest']
    by_file = {e['file']: e for e in (manifest['value'] if 'value' in manifest
                                      else manifest)['granules']}
    for e in listing:       # each stored file carries its granule's licence and citation
        granule = by_file[f"argo/{e['name']}"]
        assert granule['licence'] and (e['licence'], e['citation']) == \
            (granule['licence'], granule['citation'])
    r = api(s, 'GET', f"/orders/{job['jobID']}/download")
    assert r.status_code == 200
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(zf.namelist()) == sorted([f'argo/{g}.nc' for g in argo] + ['manifest.json'])
    order = api(s, 'GET', f"/orders/{job['jobID']}").json()
    assert order['size'] == sum(i.file_size for i in zf.infolist()
                                if i.filename != 'manifest.json')
    put = api(s, 'PUT', f'/storage/dataspace/alice/my/argo-order/argo/{argo[0]}.nc',
              data=b'not the granule')
    assert put.status_code == 201, put.text
    gone = api(s, 'GET', f"/orders/{job['jobID']}/download")
    assert gone.status_code == 410 and argo[0] in gone.json()['detail']
    assert api(s, 'POST', f"/orders/{job['jobID']}/workspace").status_code == 410
    # the same bytes put back: the order is whole again; a file deleted: 410 again
    put = api(s, 'PUT', f'/storage/dataspace/alice/my/argo-order/argo/{argo[0]}.nc',
              data=zf.read(f'argo/{argo[0]}.nc'))
    assert put.status_code == 201, put.text
    assert api(s, 'GET', f"/orders/{job['jobID']}/download").content == r.content
    deleted = api(s, 'DELETE', f'/storage/dataspace/alice/my/argo-order/argo/{argo[1]}.nc')
    assert deleted.status_code == 200, deleted.text
    gone = api(s, 'GET', f"/orders/{job['jobID']}/download")
    assert gone.status_code == 410 and gone.json()['detail'].startswith(
        f"argo/{argo[1]}.nc of order {job['jobID']} is no longer stored")


@pytest.mark.parametrize('body,status,words', [
    ({'process': 'order', 'inputs': {'granules': ['no-such-granule']}}, 400, 'unknown granule'),
    ({'process': 'order', 'inputs': {'granules': ['eurobis-esas_dwca_sample']}}, 400,
     'not configured'),
    ({'process': 'order', 'inputs': {'granules': 'D6901929_001'}}, 400, 'granules'),
    ({'process': 'nosuch', 'inputs': {}}, 404, 'nosuch'),
    ({'process': 42}, 400, 'process'),
    ({'process': 'order', 'inputs': {'colour': 'red'}}, 400, 'colour'),
])
def test_bad_baskets_are_clear_4xx(order_server, body, status, words):
    r = api(order_server, 'POST', '/jobs', json=body)
    assert r.status_code == status, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert words in r.json()['detail']


def test_bad_edits_and_submissions_are_clear_4xx(order_server):
    s = order_server
    empty = new_basket(s, [])
    jid = empty['jobID']
    r = api(s, 'POST', f'/jobs/{jid}/results')
    assert r.status_code == 400 and 'empty' in r.json()['detail']
    assert api(s, 'GET', f'/jobs/{jid}').json()['status'] == 'created'
    for body, words in (({'add': ['no-such-granule']}, 'unknown granule'),
                        ({'add': 'D6901929_001'}, 'lists'),
                        ({'colour': 'red'}, 'unknown members')):
        r = api(s, 'PATCH', f'/jobs/{jid}', json=body)
        assert r.status_code == 400 and words in r.json()['detail'], r.text
    r = api(s, 'PATCH', f'/jobs/{jid}', data='{not json', headers={
        'Content-Type': 'application/json'})
    assert r.status_code == 400
    assert api(s, 'POST', '/jobs', None, json={
        'process': 'order', 'inputs': {'granules': []}}).status_code == 401
    r = api(s, 'POST', '/processes/order/execution', json={'inputs': {'granules': []}},
            headers={'Prefer': 'respond-async'})
    assert r.status_code == 400 and 'empty' in r.json()['detail']
    assert api(s, 'PATCH', '/jobs/no-such-job', json={'add': []}).status_code == 404
    assert api(s, 'GET', '/orders/no-such-job').status_code == 404
