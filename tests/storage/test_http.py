"""The storage tiers over HTTP on a real `vre serve` (gunicorn, Redis, Celery worker + beat),
started with a config whose `vre: storage:` section sets a small quota and a short TTL."""
import hashlib
import os
import socket
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
import yaml

from serverkit import REPO, start_server

QUOTA, MAX_TTL = 200_000, 3
STORAGE = {'dataspace': {'quota': QUOTA},
           'volatile': {'max_ttl': MAX_TTL, 'default_ttl': MAX_TTL, 'purge_every': 1}}


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('storage-http')
    config = yaml.safe_load((REPO / 'pygeoapi-config.yml').read_text())
    config.setdefault('vre', {})['storage'] = STORAGE
    (tmp / 'config.yml').write_text(yaml.safe_dump(config))
    with start_server(tmp / 'home', config_path=tmp / 'config.yml',
                      extra_env={'VRE_MAX_BODY': str(2 * 1024 * 1024)}) as server:
        yield server


def url(srv, *parts):
    return '/'.join([srv.url, 'storage', *parts])


def put(srv, user, path, data, **params):
    return requests.put(url(srv, path), data=data, headers=srv.auth(user), params=params)


def post(srv, user, path, body):
    return requests.post(url(srv, path), json=body, headers=srv.auth(user))


def test_upload_download_range_stat_list(srv):
    data = os.urandom(3 * 1024 * 1024)   # above the app-wide body limit: tiers have their own
    r = put(srv, 'alice', 'workspace/alice/runs/a.bin', data, provenance='/jobs/abc',
            licence='CC-BY-4.0')
    assert r.status_code == 201, r.text
    assert r.json()['sha256'] == hashlib.sha256(data).hexdigest()
    r = requests.get(url(srv, 'workspace/alice/runs/a.bin'), headers=srv.auth('alice'))
    assert r.content == data
    r = requests.get(url(srv, 'workspace/alice/runs/a.bin'),
                     headers=dict(srv.auth('alice'), Range='bytes=100-199'))
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers['Content-Range'] == f'bytes 100-199/{len(data)}'
    stat = requests.get(url(srv, 'workspace/alice/runs/a.bin'), params={'f': 'json'},
                        headers=srv.auth('alice')).json()
    assert stat['provenance'] == '/jobs/abc' and stat['licence'] == 'CC-BY-4.0'
    assert stat['owner'] == 'alice' and stat['size'] == len(data)
    spaces = requests.get(url(srv, 'workspace'), headers=srv.auth('alice')).json()['entries']
    assert [s['name'] for s in spaces] == ['alice']
    listing = requests.get(url(srv, 'workspace/alice/runs'), headers=srv.auth('alice')).json()
    assert [e['name'] for e in listing['entries']] == ['a.bin']
    html = requests.get(url(srv, 'workspace/alice/runs'), params={'f': 'html'},
                        headers=srv.auth('alice'))
    assert html.headers['Content-Type'].startswith('text/html') and 'a.bin' in html.text


def test_versions(srv):
    for body in (b'first', b'second'):
        assert put(srv, 'alice', 'workspace/alice/v.txt', body).status_code == 201
    versions = requests.get(url(srv, 'workspace/alice/v.txt'), params={'versions': ''},
                            headers=srv.auth('alice')).json()['versions']
    assert [v['version'] for v in versions] == [1, 2]
    old = requests.get(url(srv, 'workspace/alice/v.txt'), params={'version': 1},
                       headers=srv.auth('alice'))
    assert old.content == b'first'
    assert requests.get(url(srv, 'workspace/alice/v.txt'),
                        headers=srv.auth('alice')).content == b'second'


def test_delete_goes_to_trash_and_restores(srv):
    put(srv, 'alice', 'workspace/alice/tmp/t.txt', b'keep me')
    assert requests.delete(url(srv, 'workspace/alice/tmp'), headers=srv.auth('alice')).ok
    assert requests.get(url(srv, 'workspace/alice/tmp/t.txt'),
                        headers=srv.auth('alice')).status_code == 404
    trash = requests.get(url(srv, 'workspace/alice'), params={'trash': ''},
                         headers=srv.auth('alice')).json()['trash']
    assert 'tmp/t.txt' in [t['path'] for t in trash]
    assert post(srv, 'alice', 'workspace/alice/tmp', {'action': 'restore'}).ok
    assert requests.get(url(srv, 'workspace/alice/tmp/t.txt'),
                        headers=srv.auth('alice')).content == b'keep me'
    assert post(srv, 'alice', 'workspace/alice/tmp', {'action': 'move', 'to': 'kept'}).ok
    assert requests.get(url(srv, 'workspace/alice/kept/t.txt'),
                        headers=srv.auth('alice')).content == b'keep me'


def test_sharing_and_public_links(srv):
    put(srv, 'alice', 'workspace/alice/lab/data.csv', b'a,b\n1,2\n')
    put(srv, 'alice', 'workspace/alice/private/diary.txt', b'secret')
    get = lambda user, p: requests.get(url(srv, p), headers=srv.auth(user))
    assert get('bob', 'workspace/alice/lab/data.csv').status_code == 404   # private by default
    r = post(srv, 'alice', 'workspace/alice/lab', {'action': 'share', 'with': 'group:oceanlab',
                                                   'mode': 'read'})
    assert r.status_code == 201, r.text
    assert get('bob', 'workspace/alice/lab/data.csv').content == b'a,b\n1,2\n'
    assert get('bob', 'workspace/alice/private/diary.txt').status_code == 404
    assert get('carol', 'workspace/alice/lab/data.csv').status_code == 404  # not in oceanlab
    assert put(srv, 'bob', 'workspace/alice/lab/data.csv', b'overwrite').status_code == 403
    assert post(srv, 'bob', 'workspace/alice/lab', {'action': 'share', 'with': 'user:carol'}
                ).status_code == 403
    spaces = requests.get(url(srv), headers=srv.auth('bob')).json()['workspace']
    assert {'owner': 'alice', 'path': 'lab'} .items() <= next(
        s for s in spaces if s.get('owner') == 'alice').items()
    post(srv, 'alice', 'workspace/alice/lab', {'action': 'share', 'with': 'user:bob',
                                               'mode': 'write'})
    assert put(srv, 'bob', 'workspace/alice/lab/data.csv', b'bob was here').status_code == 201
    link = post(srv, 'alice', 'workspace/alice/lab/data.csv', {'action': 'link'}).json()
    assert requests.get(link['url']).content == b'bob was here'       # anonymous
    assert requests.delete(url(srv, 'links', link['token']), headers=srv.auth('bob')
                           ).status_code == 404                        # not bob's link
    assert requests.delete(url(srv, 'links', link['token']), headers=srv.auth('alice')).ok
    assert requests.get(link['url']).status_code == 404
    post(srv, 'alice', 'workspace/alice/lab', {'action': 'unshare', 'with': 'group:oceanlab'})
    post(srv, 'alice', 'workspace/alice/lab', {'action': 'unshare', 'with': 'user:bob'})
    assert get('bob', 'workspace/alice/lab/data.csv').status_code == 404


def test_volatile_expiry_no_listing_and_purge(srv):
    r = requests.post(url(srv, 'volatile'), data=b'short-lived', params={'ttl': 2,
                                                                        'name': 'r.txt'},
                      headers=srv.auth('alice'))
    assert r.status_code == 201, r.text
    cap = r.json()['url']
    assert requests.get(cap).content == b'short-lived'                 # the URL is the key
    assert requests.get(url(srv, 'volatile'), headers=srv.auth('alice')).status_code == 404
    assert requests.get(url(srv, 'volatile', 'A' * 43)).status_code == 404
    too_long = requests.post(url(srv, 'volatile'), data=b'x', params={'ttl': MAX_TTL + 1},
                             headers=srv.auth('alice'))
    assert too_long.status_code == 400
    time.sleep(2.2)
    assert requests.get(cap).status_code == 410                        # refused at once
    vol = srv.home / 'storage' / 'volatile'
    deadline = time.monotonic() + 30                                   # the beat purges it
    while any(f for _, _, f in os.walk(vol)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(f for _, _, f in os.walk(vol))
    assert requests.get(cap).status_code == 410                        # still said clearly


def test_dataspace_quota_and_group_folder(srv):
    assert put(srv, 'alice', 'dataspace/alice/nb/a.bin', os.urandom(150_000)).status_code == 201
    assert (srv.home / 'storage/dataspace/users/alice/nb/a.bin').stat().st_size == 150_000
    r = put(srv, 'alice', 'dataspace/alice/nb/b.bin', os.urandom(100_000))
    assert r.status_code == 413 and r.headers['Content-Type'] == 'application/problem+json'
    assert 'quota' in r.json()['detail']
    assert not (srv.home / 'storage/dataspace/users/alice/nb/b.bin').exists()
    assert put(srv, 'bob', 'dataspace/@oceanlab/shared.txt', b'team').status_code == 201
    assert requests.get(url(srv, 'dataspace/@oceanlab/shared.txt'),
                        headers=srv.auth('alice')).content == b'team'
    assert requests.get(url(srv, 'dataspace/@oceanlab/shared.txt'),
                        headers=srv.auth('carol')).status_code == 404
    assert requests.get(url(srv, 'dataspace/alice/nb/a.bin'),
                        headers=srv.auth('bob')).status_code == 404


def test_damaged_replica_is_served_right_and_repaired(srv):
    data = os.urandom(500_000)
    assert put(srv, 'alice', 'workspace/alice/fault/r.bin', data).status_code == 201
    site1 = srv.home / 'storage' / 'workspace-site-1' / 'blobs'
    replica = next(p for p in site1.rglob('*') if p.is_file() and p.read_bytes() == data)
    damaged = bytearray(data)
    damaged[1000:1010] = b'\0' * 10
    replica.write_bytes(bytes(damaged))
    r = requests.get(url(srv, 'workspace/alice/fault/r.bin'), headers=srv.auth('alice'))
    assert r.status_code == 200 and r.content == data
    assert replica.read_bytes() == data                                 # repaired
    replica.unlink()                                                    # a lost replica
    assert requests.get(url(srv, 'workspace/alice/fault/r.bin'),
                        headers=srv.auth('alice')).content == data
    assert replica.read_bytes() == data


def test_killed_upload_leaves_nothing(srv):
    host, port = urlsplit(srv.url).hostname, urlsplit(srv.url).port
    with socket.create_connection((host, port)) as s:
        s.sendall(b'PUT /storage/workspace/alice/killed.bin HTTP/1.1\r\n'
                  b'Host: x\r\nAuthorization: Bearer ' + srv.token('alice').encode() +
                  b'\r\nContent-Length: 20000000\r\n\r\n')
        s.sendall(os.urandom(5_000_000))
    time.sleep(1.5)
    assert requests.get(url(srv, 'workspace/alice/killed.bin'),
                        headers=srv.auth('alice')).status_code == 404
    for site in ('workspace-site-1', 'workspace-site-2'):
        tmp = srv.home / 'storage' / site / 'tmp'
        assert not tmp.exists() or not list(tmp.iterdir())


@pytest.mark.parametrize('path,status', [
    ('workspace/alice/a/%2e%2e/%2e%2e/bob/x', 400),
    ('workspace/alice/..%2f..%2fetc%2fpasswd', 400),
    ('workspace/alice/bad%00name', 400),
    ('dataspace/%2e%2e/x.txt', 400),
    ('dataspace/@%2e%2e/x.txt', 400),
    ('workspace/bob/x.txt', 404),
])
def test_bad_paths_refused(srv, path, status):
    r = requests.put(f'{srv.url}/storage/{path}', data=b'x', headers=srv.auth('alice'))
    assert r.status_code == status, r.text
    assert r.headers['Content-Type'] == 'application/problem+json'


def test_odd_names_roundtrip(srv):
    name = 'Données été (v2) [final] #1 ünï.csv'
    quoted = quote(name)                 # '#' would otherwise start a URL fragment
    assert put(srv, 'alice', f'workspace/alice/{quoted}', b'ok').status_code == 201
    listing = requests.get(url(srv, 'workspace/alice'), headers=srv.auth('alice')).json()
    assert name in [e['name'] for e in listing['entries']]
    assert requests.get(url(srv, f'workspace/alice/{quoted}'),
                        headers=srv.auth('alice')).content == b'ok'


def test_bad_requests_are_clear(srv):
    assert requests.get(url(srv, 'workspace/alice')).status_code == 401
    for body in ({}, {'action': 'explode'}, {'action': 'move'}, {'action': 'share',
                                                                  'with': 'nobody'}):
        r = post(srv, 'alice', 'workspace/alice/v.txt', body)
        assert r.status_code == 400 and r.json()['detail'], body
    r = requests.get(url(srv, 'workspace/alice/v.txt'), params={'version': 'x'},
                     headers=srv.auth('alice'))
    assert r.status_code == 400
    assert requests.get(url(srv, 'attic/alice')).status_code == 404


def test_copy_volatile_to_workspace(srv):
    r = requests.post(url(srv, 'volatile'), data=b'result', params={'name': 'res.txt',
                                                                   'provenance': '/jobs/9'},
                      headers=srv.auth('alice'))
    cap = r.json()['url']
    r = post(srv, 'alice', 'workspace/alice/copied/res.txt', {'action': 'copy', 'from': cap})
    assert r.status_code == 201, r.text
    assert r.json()['provenance'] == '/jobs/9'
    assert requests.get(r.json()['href'], headers=srv.auth('alice')).content == b'result'
    r = post(srv, 'carol', 'workspace/carol/stolen.txt',
             {'action': 'copy', 'from': url(srv, 'workspace/alice/copied/res.txt')})
    assert r.status_code == 404


def test_webdav_list_read_write(srv):
    from webdav4.client import Client
    put(srv, 'alice', 'workspace/alice/dav/hello.txt', b'hello dav')
    dav = Client(f'{srv.url}/dav', auth=('alice', srv.token('alice')))
    names = [Path(e['name']).name for e in dav.ls('alice/dav', detail=True)]
    assert names == ['hello.txt']
    with dav.open('alice/dav/hello.txt', 'rb') as fh:
        assert fh.read() == b'hello dav'
    import io
    dav.upload_fileobj(io.BytesIO(b'from a file manager'), 'alice/dav/new.txt', overwrite=True)
    assert requests.get(url(srv, 'workspace/alice/dav/new.txt'),
                        headers=srv.auth('alice')).content == b'from a file manager'
    dav.mkdir('alice/dav/sub')
    dav.move('alice/dav/new.txt', 'alice/dav/sub/new.txt')
    assert requests.get(url(srv, 'workspace/alice/dav/sub/new.txt'),
                        headers=srv.auth('alice')).ok
    bob = Client(f'{srv.url}/dav', auth=('bob', srv.token('bob')))
    assert not bob.exists('alice/dav/hello.txt')
    bad = requests.request('PROPFIND', f'{srv.url}/dav/', auth=('alice', 'wrong-token'))
    assert bad.status_code == 401
    bearer = requests.request('PROPFIND', f'{srv.url}/dav/alice/dav/', headers=dict(
        srv.auth('alice'), Depth='1'))
    assert bearer.status_code == 207 and 'hello.txt' in bearer.text


def run_echo(srv, user, text):
    """A real job of `user` with its output by reference; returns (job id, results doc)."""
    body = {'inputs': {'echoInput': text}, 'response': 'document',
            'outputs': {'echoOutput': {'transmissionMode': 'reference'}}}
    r = requests.post(f'{srv.url}/processes/echo/execution', json=body,
                      headers=dict(srv.auth(user), Prefer='respond-async'), timeout=60)
    assert r.status_code == 201, r.text
    job_id = r.json()['jobID']
    deadline = time.monotonic() + 60
    while requests.get(f'{srv.url}/jobs/{job_id}', headers=srv.auth(user)
                       ).json()['status'] not in ('successful', 'failed'):
        assert time.monotonic() < deadline, 'echo job did not finish in 60 s'
        time.sleep(0.1)
    results = requests.get(f'{srv.url}/jobs/{job_id}/results', headers=srv.auth(user))
    assert results.status_code == 200, results.text
    return job_id, results.json()


def test_copy_job_results_to_workspace(srv):
    job_id, results = run_echo(srv, 'alice', 'a job result')
    job_url = f'{srv.url}/jobs/{job_id}'
    sources = {'by-output-url.txt': f'{job_url}/outputs/echoOutput',
               'by-results-path.txt': f'/jobs/{job_id}/results/echoOutput',
               'by-href.txt': results['echoOutput']['href']}
    for name, source in sources.items():
        r = post(srv, 'alice', f'workspace/alice/from-job/{name}',
                 {'action': 'copy', 'from': source})
        assert r.status_code == 201, (source, r.text)
        assert r.json()['provenance'] == job_url, source
        assert requests.get(r.json()['href'], headers=srv.auth('alice')
                            ).content == b'a job result'
    r = post(srv, 'carol', 'workspace/carol/stolen.txt',
             {'action': 'copy', 'from': f'{job_url}/outputs/echoOutput'})
    assert r.status_code == 404 and r.headers['Content-Type'] == 'application/problem+json'
    assert job_id in r.json()['detail']
    r = post(srv, 'alice', 'workspace/alice/none.txt',
             {'action': 'copy', 'from': f'{job_url}/outputs/nothing'})
    assert r.status_code == 404 and 'nothing' in r.json()['detail']
    assert requests.get(url(srv, 'workspace/carol/stolen.txt'),
                        headers=srv.auth('carol')).status_code == 404


def test_webdav_lock_holds_across_web_workers(srv):
    """A LOCK is kept in Redis: every later request, whichever gunicorn worker answers it,
    sees it (PROPFIND lockdiscovery, a PUT without the token refused with 423)."""
    put(srv, 'alice', 'workspace/alice/locked/doc.txt', b'v1')
    target = f'{srv.url}/dav/alice/locked/doc.txt'
    auth = ('alice', srv.token('alice'))
    body = ('<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            '</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>alice</D:owner>'
            '</D:lockinfo>')
    r = requests.request('LOCK', target, data=body, auth=auth,
                         headers={'Timeout': 'Second-600', 'Content-Type': 'application/xml'})
    assert r.status_code == 200, r.text
    token = r.headers['Lock-Token'].strip('<>')
    for _ in range(12):
        found = requests.request('PROPFIND', target, auth=auth, headers={'Depth': '0'},
                                 data='<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
                                      '<D:lockdiscovery/></D:prop></D:propfind>')
        assert found.status_code == 207 and token in found.text
        refused = requests.put(target, data=b'no token', auth=auth)
        assert refused.status_code == 423, refused.text
    assert requests.get(url(srv, 'workspace/alice/locked/doc.txt'),
                        headers=srv.auth('alice')).content == b'v1'
    ok = requests.put(target, data=b'v2', auth=auth, headers={'If': f'(<{token}>)'})
    assert ok.status_code in (201, 204), ok.text
    assert requests.request('UNLOCK', target, auth=auth,
                            headers={'Lock-Token': f'<{token}>'}).status_code == 204
    assert requests.put(target, data=b'v3', auth=auth).status_code in (201, 204)
    assert requests.get(url(srv, 'workspace/alice/locked/doc.txt'),
                        headers=srv.auth('alice')).content == b'v3'
