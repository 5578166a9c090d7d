"""The bulk checks behind an order's download and push (Tiers.stat_many,
Workspace.check_free and discard) on real tiers (real folders, a real SQLite catalogue):
the same answers as the tiers' own per-file `stat` and `put` checks, from a few queries."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time

import pytest
from sqlalchemy import event

from storage.config import StorageConfig
from storage.errors import Conflict, Gone, NotFound
from storage.tiers import Tiers
from vre.settings import Settings


@pytest.fixture
def tiers(tmp_path):
    settings = Settings(home=tmp_path, config_path=tmp_path / 'cfg.yml')
    return Tiers(StorageConfig.build(settings, {'vre': {'storage': {
        'volatile': {'max_ttl': 60, 'default_ttl': 30}}}}))


@contextlib.contextmanager
def queries(tiers):
    """The SQL statements the catalogue runs inside the block."""
    seen = []

    def count(conn, cursor, sql, *rest):
        seen.append(sql)
    event.listen(tiers.cat.engine, 'before_cursor_execute', count)
    try:
        yield seen
    finally:
        event.remove(tiers.cat.engine, 'before_cursor_execute', count)


def by_stat(tiers, href):
    """What the tier's own stat says of one file (None: gone), one query or more each."""
    tier, space, path = tiers.resolve(href)
    try:
        f = tier.stat(space, path)
    except (NotFound, Gone):
        return None
    return f.size, f.sha256


def test_a_thousand_files_per_tier_checked_in_a_few_queries(tiers, tmp_path):
    def files(kind, n):
        out = []
        for i in range(n):
            src = tmp_path / f'{kind}-{i}'
            src.write_bytes(os.urandom(i % 50 + 1))
            out.append((f'order/argo/{i}.nc', src, None, None))
        return out
    ds = tiers.dataspace.put_many('alice', files('ds', 1000))
    vo = tiers.volatile.put_many('alice', files('vo', 1000))
    ws = [tiers.workspace.put('alice', f'order/obis/{i}.json', os.urandom(10 + i))
          for i in range(3)]
    hrefs = [tiers.url_for(f) for f in ds + vo + ws]
    with queries(tiers) as seen:
        facts = tiers.stat_many(hrefs)
    assert len(seen) <= 5, seen           # 2 + 2 chunks of 500 paths, 1 for the workspace
    assert facts == [(f.size, f.sha256) for f in ds + vo + ws]

    # changed in every way a tier knows, then the same answers as each file's stat
    target = ds[0].local
    target.write_bytes(b'x' * ds[0].size)              # a notebook rewrote it, same size
    os.utime(target, (time.time() + 5, time.time() + 5))
    ds[1].local.unlink()                                 # deleted on disk
    tiers.dataspace.put('alice', ds[2].path, b'new bytes')      # replaced through the tier
    tiers.workspace.put('alice', ws[0].path, b'version two')    # a new version
    tiers.workspace.delete('alice', ws[1].path)                 # in the trash
    tiers.volatile.delete(vo[0].token)
    late = tiers.volatile.put('alice', 'late.nc', b'soon gone', ttl=1)
    hrefs.append(tiers.url_for(late))
    time.sleep(1.1)
    facts = tiers.stat_many(hrefs)
    assert facts == [by_stat(tiers, h) for h in hrefs]
    assert facts[0] == (ds[0].size, None) and facts[1] is None
    assert facts[2] == (9, hashlib.sha256(b'new bytes').hexdigest())
    assert facts[1000] is None and facts[-1] is None                  # deleted, expired
    assert facts[-4][1] == hashlib.sha256(b'version two').hexdigest() and facts[-3] is None
    assert facts[3:1000] == [(f.size, f.sha256) for f in ds[3:]]


def test_destinations_refused_as_put_would_refuse_them(tiers):
    ws = tiers.workspace
    ws.put('alice', 'p/a.txt', b'a')
    ws.put('alice', 'p/b/c.txt', b'c')
    ws.put('alice', 'r', b'a file where the folder would go')
    ws.mkdir('alice', 'q/empty')
    ws.put('alice', 'p/gone/x', b'x')
    ws.delete('alice', 'p/gone')           # trashed: no longer in the way
    cases = [('p', 'p/a.txt'), ('p', 'p/new/d.nc'), ('p', 'p/gone'), ('p', 'p/gone/x/y'),
             ('p', 'p/b'), ('p', 'p/a.txt/z'), ('p', 'p/b/c.txt/z/w'), ('q', 'q/empty'),
             ('q', 'q/other'), ('r', 'r/manifest.json'), ('r/s', 'r/s/t')]
    for dest, target in cases:
        try:
            ws._check_parents('alice', target)      # what put() would say, file by file
            expected = None
        except Conflict as err:
            expected = err
        with queries(tiers) as seen:
            assert _free(tiers, dest, target) == (expected is None), target
        assert len(seen) == 2
    assert [t for d, t in cases if _free(tiers, d, t)] == \
        ['p/a.txt', 'p/new/d.nc', 'p/gone', 'p/gone/x/y', 'q/other']


def _free(tiers, dest, target) -> bool:
    try:
        tiers.workspace.check_free('alice', dest, [target])
    except Conflict:
        return False
    return True


def test_discard_removes_only_the_versions_given(tiers):
    ws = tiers.workspace
    first = ws.put('alice', 'd/a.nc', b'one')
    second = ws.put('alice', 'd/a.nc', io.BytesIO(b'two'))
    new = ws.put('alice', 'd/new.nc', b'new')
    blobs = {f.version if f.path == 'd/a.nc' else 'new': _blob_files(tiers, f)
             for f in (first, second, new)}
    assert all(os.path.exists(b) for paths in blobs.values() for b in paths)
    ws.discard([second, new])
    assert ws.stat('alice', 'd/a.nc').version == 1
    assert ws.open('alice', 'd/a.nc').read() == b'one'
    assert [v['version'] for v in ws.versions('alice', 'd/a.nc')] == [1]
    with pytest.raises(NotFound):
        ws.stat('alice', 'd/new.nc')
    assert all(os.path.exists(b) for b in blobs[1])
    assert not any(os.path.exists(b) for b in blobs[2] + blobs['new'])


def _blob_files(tiers, f) -> list[str]:
    row = tiers.workspace._current(f.owner, f.path, f.version)
    return [s.blob_path(row.blob) for s in tiers.workspace.store.sites]
