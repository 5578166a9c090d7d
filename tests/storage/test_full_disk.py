"""A full disk over HTTP: one Workspace replica site and the Dataspace root on a real 2 MB
tmpfs. An upload that does not fit gets 507 problem+json, leaves nothing half-visible, and
earlier files and later small uploads are unharmed."""
import hashlib
import os
import shutil
import subprocess

import pytest
import requests
import yaml

from serverkit import REPO, start_server

SIZE = 2 * 1024 * 1024


def _mount(target):
    """A real small filesystem: tmpfs, else a loop-mounted ext4 image; skip (with why)."""
    target.mkdir()
    tmpfs = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={SIZE}', 'tmpfs', str(target)],
                           capture_output=True, text=True)
    if tmpfs.returncode == 0:
        return
    image = target.with_suffix('.img')
    with open(image, 'wb') as fh:
        fh.truncate(SIZE)
    mkfs = subprocess.run(['mkfs.ext4', '-q', str(image)], capture_output=True, text=True)
    loop = subprocess.run(['mount', '-o', 'loop', str(image), str(target)],
                          capture_output=True, text=True) if mkfs.returncode == 0 else mkfs
    if loop.returncode != 0:
        pytest.skip(f'cannot mount a small filesystem here: tmpfs: {tmpfs.stderr.strip()}; '
                    f'loop ext4: {loop.stderr.strip()}')


@pytest.fixture(scope='module')
def full(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('full-disk')
    small = tmp / 'small'
    _mount(small)
    try:
        config = yaml.safe_load((REPO / 'pygeoapi-config.yml').read_text())
        config.setdefault('vre', {})['storage'] = {
            'workspace': {'sites': [str(small / 'site-1'), str(tmp / 'site-2')], 'replicas': 2},
            'dataspace': {'root': str(small / 'dataspace')}}
        (tmp / 'config.yml').write_text(yaml.safe_dump(config))
        with start_server(tmp / 'home', config_path=tmp / 'config.yml') as server:
            server.small, server.site2 = small, tmp / 'site-2'
            yield server
    finally:
        subprocess.run(['umount', str(small)], check=False)


def put(srv, path, data):
    return requests.put(f'{srv.url}/storage/{path}', data=data, headers=srv.auth('alice'))


def get(srv, path):
    return requests.get(f'{srv.url}/storage/{path}', headers=srv.auth('alice'))


def leftovers(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
            if 'tmp' in d.split(os.sep)[-1] or f.startswith('.vre-tmp')]


@pytest.mark.parametrize('tier', ['workspace', 'dataspace'])
def test_full_disk_is_507_and_loses_nothing(full, tier):
    early = os.urandom(300_000)
    assert put(full, f'{tier}/alice/early.bin', early).status_code == 201
    free = shutil.disk_usage(full.small).free
    r = put(full, f'{tier}/alice/huge.bin', os.urandom(free + 512 * 1024))
    assert r.status_code == 507, r.text
    assert r.headers['Content-Type'] == 'application/problem+json'
    assert 'full' in r.json()['detail'] and 'nothing was stored' in r.json()['detail']
    assert get(full, f'{tier}/alice/huge.bin').status_code == 404
    listing = get(full, f'{tier}/alice').json()['entries']
    assert [e['name'] for e in listing if e['type'] == 'file'] == ['early.bin']
    assert not leftovers(full.small) and not leftovers(full.site2)
    assert shutil.disk_usage(full.small).free >= free - 64 * 1024   # the space came back
    got = get(full, f'{tier}/alice/early.bin')
    assert got.content == early
    assert got.headers['ETag'] == f'"{hashlib.sha256(early).hexdigest()}"'
    assert put(full, f'{tier}/alice/after.txt', b'still works').status_code == 201
    assert get(full, f'{tier}/alice/after.txt').content == b'still works'
