"""The tier library on real folders and a real SQLite catalogue (no server needed)."""
import dataclasses
import hashlib
import io
import os
import time

import pytest

from storage.errors import (BadPath, Conflict, Forbidden, Gone, IncompleteUpload, NotFound,
                            QuotaExceeded, Unavailable)
from storage.tiers import Tiers
from storage.config import StorageConfig
from vre.auth import User
from vre.settings import Settings

CSV = b'time,lat,lon,temp\n' + b''.join(b'2020-01-01T00:00:%02dZ,43.1,7.2,13.%d\n' % (i % 60, i % 10)
                                      for i in range(5000))


@pytest.fixture
def tiers(tmp_path):
    settings = Settings(home=tmp_path, config_path=tmp_path / 'cfg.yml')
    config = {'vre': {'storage': {'dataspace': {'quota': 100_000},
                                  'volatile': {'max_ttl': 60, 'default_ttl': 30}}}}
    return Tiers(StorageConfig.build(settings, config))


def blob_files(tiers, f):
    row_sites = tiers.workspace.store.sites
    row = tiers.workspace._current(f.owner, f.path)
    return [s.blob_path(row.blob) for s in row_sites]


def test_workspace_roundtrip_replicas_compression(tiers):
    f = tiers.workspace.put('alice', 'data/ctd.csv', io.BytesIO(CSV),
                            meta={'licence': 'CC-BY-4.0', 'provenance': '/jobs/42'})
    assert f.size == len(CSV) and f.sha256 == hashlib.sha256(CSV).hexdigest()
    assert f.codec == 'zstd' and f.stored_size < len(CSV) / 3
    assert f.media_type == 'text/csv' and f.provenance == '/jobs/42'
    paths = blob_files(tiers, f)
    assert len(paths) == 2 and all(os.path.exists(p) for p in paths)
    with tiers.workspace.open('alice', 'data/ctd.csv') as fh:
        assert fh.read() == CSV
    assert tiers.url_for(f).endswith('/storage/workspace/alice/data/ctd.csv')


def test_random_bytes_are_stored_raw(tiers):
    data = os.urandom(300_000)
    f = tiers.workspace.put('alice', 'r.bin', data)
    assert f.codec == 'raw' and f.stored_size == len(data)


def test_versions_keep_previous(tiers):
    ws = tiers.workspace
    ws.put('alice', 'a.txt', b'one')
    ws.put('alice', 'a.txt', b'two')
    assert [v['version'] for v in ws.versions('alice', 'a.txt')] == [1, 2]
    assert ws.open('alice', 'a.txt').read() == b'two'
    assert ws.open('alice', 'a.txt', version=1).read() == b'one'


def test_damaged_and_missing_replica_read_and_repair(tiers):
    ws = tiers.workspace
    f = ws.put('alice', 'x.csv', CSV)
    first, second = blob_files(tiers, f)
    with open(first, 'r+b') as fh:       # flip bytes in the first replica
        fh.seek(10)
        fh.write(b'XXXX')
    assert ws.open('alice', 'x.csv').read() == CSV
    assert ws.store.verify(ws.store.sites[0], ws._current('alice', 'x.csv').blob,
                           ws._current('alice', 'x.csv').stored_sha256, f.stored_size)
    os.remove(second)                    # a missing replica is found by the scrub
    report = ws.check()
    assert len(report['repaired']) == 1 and not report['unrepaired']
    assert os.path.exists(second)
    os.remove(first)
    os.remove(second)
    with pytest.raises(Unavailable):
        ws.open('alice', 'x.csv')
    assert ws.check()['unrepaired']


def test_killed_upload_leaves_nothing(tiers):
    class Dies(io.RawIOBase):
        sent = 0

        def read(self, n=-1):
            self.sent += 1
            if self.sent > 3:
                raise ConnectionResetError('client went away')
            return os.urandom(1 << 20)

    with pytest.raises(ConnectionResetError):
        tiers.workspace.put('alice', 'big.bin', Dies())
    with pytest.raises(NotFound):
        tiers.workspace.stat('alice', 'big.bin')
    for site in tiers.workspace.store.sites:
        assert not os.listdir(f'{site.root}/tmp')
        assert not os.path.exists(f'{site.root}/blobs') or not any(
            files for _, _, files in os.walk(f'{site.root}/blobs'))
    with pytest.raises(IncompleteUpload):
        tiers.workspace.put('alice', 'short.bin', b'abc', expected_size=10)


def test_folders_move_trash_restore(tiers):
    ws = tiers.workspace
    ws.put('alice', 'p/q/r.txt', b'r')
    ws.mkdir('alice', 'empty')
    assert [e['name'] for e in ws.list('alice')] == ['empty', 'p']
    with pytest.raises(Conflict):
        ws.put('alice', 'p/q', b'clash')
    with pytest.raises(Conflict):
        ws.put('alice', 'p/q/r.txt/s', b'below a file')
    ws.move('alice', 'p', 'moved')
    assert ws.open('alice', 'moved/q/r.txt').read() == b'r'
    ws.delete('alice', 'moved')
    with pytest.raises(NotFound):
        ws.stat('alice', 'moved/q/r.txt')
    assert [t['path'] for t in ws.trash('alice')] == ['moved/q/r.txt']
    ws.restore('alice', 'moved')
    assert ws.open('alice', 'moved/q/r.txt').read() == b'r'


def test_sharing_and_links(tiers):
    ws = tiers.workspace
    ws.put('alice', 'shared/a.nc', b'nc')
    ws.put('alice', 'private/b.nc', b'secret')
    bob = User('bob', frozenset({'oceanlab'}))
    carol = User('carol')
    assert ws.access(bob, 'alice', 'shared/a.nc') is None
    ws.share('alice', 'shared', 'group:oceanlab', 'read')
    assert ws.access(bob, 'alice', 'shared/a.nc') == 'read'
    assert ws.access(bob, 'alice', 'private/b.nc') is None
    assert ws.access(carol, 'alice', 'shared/a.nc') is None
    with pytest.raises(Forbidden):
        ws.need(bob, 'alice', 'shared/a.nc', 'write')
    with pytest.raises(NotFound):
        ws.need(carol, 'alice', 'private/b.nc', 'read')
    ws.share('alice', 'shared', 'user:bob', 'write')
    assert ws.access(bob, 'alice', 'shared/a.nc') == 'write'
    token = ws.link('alice', 'shared/a.nc')
    assert ws.resolve_link(token) == ('alice', 'shared/a.nc')
    ws.revoke(token, User('alice'))
    with pytest.raises(NotFound):
        ws.resolve_link(token)


@pytest.mark.parametrize('bad', ['../etc/passwd', 'a/../../b', 'a/./b', 'x\x00y', 'tab\there',
                                 '.vre-tmp-x', 'n' * 300])
def test_bad_paths_refused(tiers, bad):
    for tier in (tiers.workspace, tiers.dataspace):
        with pytest.raises(BadPath):
            tier.put('alice', bad, b'x')


def test_odd_but_fine_names(tiers):
    name = 'Données été/ (copy) [1] #2 %20 ünï.csv'
    tiers.workspace.put('alice', name, b'ok')
    assert tiers.workspace.open('alice', name).read() == b'ok'
    tiers.dataspace.put('alice', name, b'ok')
    assert tiers.dataspace.open('alice', name).read() == b'ok'


def test_dataspace_plain_files_quota_and_symlinks(tiers, tmp_path):
    ds = tiers.dataspace
    f = ds.put('alice', 'nb/in.csv', CSV[:50_000])
    assert (tiers.cfg.dataspace_root / 'users/alice/nb/in.csv').read_bytes() == CSV[:50_000]
    assert f.sha256 == hashlib.sha256(CSV[:50_000]).hexdigest()
    with pytest.raises(QuotaExceeded):
        ds.put('alice', 'nb/more.bin', os.urandom(60_000))
    with pytest.raises(QuotaExceeded):
        ds.put('alice', 'nb/more.bin', io.BytesIO(os.urandom(60_000)), expected_size=60_000)
    assert [e['name'] for e in ds.list('alice', 'nb')] == ['in.csv']
    ds.put('alice', 'nb/in.csv', b'smaller')          # replacing frees the old size
    ds.put('@oceanlab', 'team.txt', b'hi')
    assert (tiers.cfg.dataspace_root / 'groups/oceanlab/team.txt').exists()
    assert ds.access(User('bob', frozenset({'oceanlab'})), '@oceanlab') == 'write'
    assert ds.access(User('carol'), '@oceanlab') is None
    secret = tmp_path / 'secret.txt'
    secret.write_text('not yours')
    os.symlink(secret, tiers.cfg.dataspace_root / 'users/alice/link.txt')
    with pytest.raises(NotFound):
        ds.open('alice', 'link.txt')
    assert 'link.txt' not in [e['name'] for e in ds.list('alice')]


def test_volatile_capability_expiry_and_purge(tiers):
    vo = tiers.volatile
    f = vo.put('alice', 'out.nc', b'tmp', ttl=1)
    url = vo.url_for(f)
    token = url.rsplit('/', 1)[1]
    assert len(token) >= 40 and vo.open(token).read() == b'tmp'
    with pytest.raises(BadPath):
        vo.put('alice', 'x', b'x', ttl=61)
    with pytest.raises(NotFound):
        vo.list('alice')
    with pytest.raises(NotFound):
        vo.open('guessed-token')
    time.sleep(1.1)
    with pytest.raises(Gone):
        vo.open(token)
    assert vo.purge() == 1 and vo.purge() == 0
    assert not any(files for _, _, files in os.walk(tiers.cfg.volatile_root))
    with pytest.raises(Gone):
        vo.open(token)


def test_copy_to_workspace_keeps_metadata(tiers):
    f = tiers.volatile.put('alice', 'res.csv', CSV, meta={'provenance': '/jobs/7',
                                                          'licence': 'CC0'})
    copy = tiers.copy_to_workspace(User('alice'), tiers.url_for(f), 'results/res.csv')
    assert copy.provenance == '/jobs/7' and copy.licence == 'CC0'
    assert tiers.workspace.open('alice', 'results/res.csv').read() == CSV
    src = tiers.workspace.url_for(copy)
    with pytest.raises(NotFound):      # carol cannot copy alice's private file
        tiers.copy_to_workspace(User('carol'), src, 'stolen.csv')


def test_replica_site_gone(tmp_path):
    """A site that cannot be written refuses the upload whole (503), leaves nothing behind,
    and files already stored are still read from the other replica."""
    settings = Settings(home=tmp_path, config_path=tmp_path / 'cfg.yml')
    sites = [str(tmp_path / 'site-a'), str(tmp_path / 'site-b')]
    tiers = Tiers(StorageConfig.build(settings, {'vre': {'storage': {'workspace': {
        'sites': sites}}}}))
    ws = tiers.workspace
    ws.put('alice', 'before.csv', CSV)
    os.rename(sites[1], str(tmp_path / 'site-b-unplugged'))
    (tmp_path / 'site-b').write_text('not a folder: the mount is gone')
    assert ws.open('alice', 'before.csv').read() == CSV
    with pytest.raises(Unavailable) as err:
        ws.put('alice', 'after.csv', CSV)
    assert err.value.status == 503 and 'site-b' in err.value.detail
    with pytest.raises(NotFound):
        ws.stat('alice', 'after.csv')
    assert not os.listdir(tmp_path / 'site-a' / 'tmp')
    assert ws.check()['unrepaired']            # the scrub reports the lost replica


def test_check_command_reports_and_exits(tmp_path, monkeypatch):
    from click.testing import CliRunner
    import yaml
    from storage.cli import storage
    from vre.settings import REPO_ROOT
    config = yaml.safe_load((REPO_ROOT / 'pygeoapi-config.yml').read_text())
    (tmp_path / 'cfg.yml').write_text(yaml.safe_dump(config))
    monkeypatch.setattr(os, 'environ', dict(os.environ))   # load_config exports settings
    monkeypatch.setenv('VRE_HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('VRE_CONFIG', str(tmp_path / 'cfg.yml'))
    settings = Settings(home=tmp_path / 'home', config_path=tmp_path / 'cfg.yml')
    tiers = Tiers(StorageConfig.build(settings, config))
    f = tiers.workspace.put('alice', 'x.csv', CSV)
    first, second = blob_files(tiers, f)
    os.remove(second)
    result = CliRunner().invoke(storage, ['check'])
    assert result.exit_code == 0 and '1 repaired' in result.output, result.output
    os.remove(first)
    os.remove(second)
    result = CliRunner().invoke(storage, ['check'])
    assert result.exit_code == 1 and 'UNREPAIRED' in result.output


def test_copy_job_output_kept_as_local_file(tiers, tmp_path):
    """A job output with no storage URL (a job run without tiers) is copied from the file
    the job store names; the job is the provenance; others' jobs are not found."""
    from processes.jobstore import JobStore, utcnow
    out = tmp_path / 'ohc.json'
    out.write_bytes(b'{"ohc": 1.5e9}')
    store = JobStore(tiers.cfg.jobs_db_url)
    results = {'ohc': {'href': 'http://elsewhere/jobs/j1/outputs/ohc', 'type': 'application/json',
                       'path': str(out)},
               'gone': {'href': 'x', 'path': str(tmp_path / 'missing.nc')},
               'summary': {'value': {'n': 1}, 'mediaType': 'application/json'}}
    store.add(dict(job_id='j1', type='process', process_id='ocean-heat-content',
                   status='successful', owner='alice', created=utcnow(), request={}, meta={},
                   results=results))
    alice, carol = User('alice', groups=frozenset()), User('carol', groups=frozenset())
    f = tiers.copy_to_workspace(alice, '/jobs/j1/outputs/ohc', 'kept/ohc.json')
    assert f.provenance == f'{tiers.cfg.base_url}/jobs/j1' and f.media_type == 'application/json'
    assert tiers.workspace.open('alice', 'kept/ohc.json').read() == b'{"ohc": 1.5e9}'
    with pytest.raises(NotFound):
        tiers.copy_to_workspace(carol, '/jobs/j1/outputs/ohc', 'stolen.json')
    with pytest.raises(NotFound):
        tiers.copy_to_workspace(alice, '/jobs/j1/outputs/summary', 'by-value.json')
    with pytest.raises(Gone):
        tiers.copy_to_workspace(alice, '/jobs/j1/outputs/gone', 'gone.nc')
    with pytest.raises(NotFound):
        tiers.copy_to_workspace(alice, '/jobs/nope/outputs/ohc', 'nope.json')
    assert [e['path'] for e in tiers.workspace.list('alice')] == ['kept']


def test_scratch_tiers_skip_fsync_and_report_a_cut_short_file_lost(tiers, tmp_path, monkeypatch):
    """Dataspace and Volatile do not wait for the disk by default (the Workspace does, and
    `fsync: true` makes them); a file cut short by a crash is then 'lost', not served."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: synced.append(fd) or real_fsync(fd))
    out = tmp_path / 'job-output.nc'
    out.write_bytes(b'x' * 1000)
    known = hashlib.sha256(b'x' * 1000).hexdigest()
    f = tiers.volatile.put('alice', 'out.nc', out, move=True, sha256=known)
    assert not out.exists() and f.sha256 == known and synced == []
    tiers.dataspace.put('alice', 'a.csv', CSV[:5000])
    assert synced == []
    tiers.workspace.put('alice', 'a.csv', CSV[:5000])
    assert synced                                    # the replicas are synced
    # and so are the rows: SQLite's synchronous FULL (2) for the workspace, NORMAL (1) else
    assert [pragma(t.cat, 'synchronous') for t in (tiers.workspace, tiers.dataspace,
                                                   tiers.volatile)] == [2, 1, 1]
    token = tiers.volatile.url_for(f).rsplit('/', 1)[1]
    os.truncate(f.local, 10)                         # what a crash before writeback leaves
    with pytest.raises(Gone, match='lost'):
        tiers.volatile.open(token)

    settings = Settings(home=tmp_path / 'b', config_path=tmp_path / 'b.yml')
    durable = Tiers(StorageConfig.build(settings, {'vre': {'storage': {
        'dataspace': {'fsync': True}, 'volatile': {'fsync': True}}}}))
    synced.clear()
    durable.dataspace.put('alice', 'a.csv', CSV)
    durable.volatile.put('alice', 'a.csv', CSV)
    assert len(synced) == 2
    assert {pragma(t.cat, 'synchronous') for t in (durable.dataspace, durable.volatile)} == {2}


def pragma(cat, name: str):
    with cat.engine.connect() as conn:
        return conn.exec_driver_sql(f'PRAGMA {name}').scalar()


def test_a_file_taken_over_unhashed_gets_its_checksum_recorded(tiers, tmp_path):
    """`hash_later`: a job's output is renamed into the local tiers without reading it; its
    checksum is unknown until recorded, and a record for other bytes (the file replaced in
    the meantime) is not taken. The Workspace, which copies, hashes it anyway."""
    digest = hashlib.sha256(b'y' * 3000).hexdigest()
    for tier, owner in ((tiers.volatile, 'alice'), (tiers.dataspace, 'alice')):
        out = tmp_path / f'{tier.name}.nc'
        out.write_bytes(b'y' * 3000)
        f = tier.put(owner, 'jobs/j/out.nc', out, move=True, hash_later=True)
        again = (lambda: tier.stat(tier.url_for(f).rsplit('/', 1)[1])) \
            if tier is tiers.volatile else (lambda: tier.stat(owner, 'jobs/j/out.nc'))
        assert f.sha256 is None and again().sha256 is None
        tier.record_sha256(dataclasses.replace(f, size=2999), digest)    # not these bytes
        assert again().sha256 is None
        tier.record_sha256(f, digest)
        assert again().sha256 == digest
        tier.record_sha256(f, '0' * 64)                                 # recorded once
        assert again().sha256 == digest
    out = tmp_path / 'ws.nc'
    out.write_bytes(b'y' * 3000)
    assert tiers.workspace.put('alice', 'out.nc', out, hash_later=True).sha256 == digest


def _job_files(folder, sizes):
    """Disposable files as a job writes them: (path in the tier, local file, media, sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        local = folder / f'g{i}'
        local.write_bytes(data)
        out.append((f'jobs/j1/bdi/g{i}.nc', local, 'application/x-netcdf',
                    hashlib.sha256(data).hexdigest(), data))
    return out


def test_dataspace_put_many_renames_all_with_one_quota_check(tiers, tmp_path, monkeypatch):
    files = _job_files(tmp_path / 'job', [1000, 2000, 0, 3000])
    walks = []
    real_usage = tiers.dataspace.usage
    monkeypatch.setattr(tiers.dataspace, 'usage', lambda s: walks.append(s) or real_usage(s))
    fake = 'f' * 64                              # a caller's checksum is taken, not recomputed
    given = [(p, local, media, fake if i == 0 else (sha if i == 1 else None))
             for i, (p, local, media, sha, _) in enumerate(files)]
    stored = tiers.dataspace.put_many('alice', given, author='alice',
                                      meta={'provenance': '/jobs/j1'})
    assert walks == ['alice']
    assert [f.path for f in stored] == [p for p, *_ in files]
    assert stored[0].sha256 == fake
    for f, (path, local, _, sha, data) in zip(stored[1:], files[1:]):
        assert f.sha256 == sha and f.size == len(data) and not local.exists()
        assert f.local.read_bytes() == data and f.provenance == '/jobs/j1'
    listed = {e['name']: e for e in tiers.dataspace.list('alice', 'jobs/j1/bdi')}
    assert sorted(listed) == ['g0.nc', 'g1.nc', 'g2.nc', 'g3.nc']
    for f in stored:
        row = tiers.dataspace.stat('alice', f.path)
        assert (row.sha256, row.size, row.media_type) == (f.sha256, f.size,
                                                          'application/x-netcdf')
    # the same paths again replace the files and their rows (one row per path)
    again = _job_files(tmp_path / 'job2', [10, 20, 30, 40])
    tiers.dataspace.put_many('alice', [(p, local, m, s) for p, local, m, s, _ in again])
    assert tiers.dataspace.stat('alice', 'jobs/j1/bdi/g3.nc').size == 40
    assert tiers.dataspace.usage('alice') == 100


def test_put_many_over_quota_or_twice_the_same_path_stores_nothing(tiers, tmp_path):
    files = _job_files(tmp_path / 'job', [60_000, 50_000])       # quota is 100,000
    with pytest.raises(QuotaExceeded, match='nothing stored'):
        tiers.dataspace.put_many('alice', [(p, local, m, s) for p, local, m, s, _ in files])
    assert all(local.exists() for _, local, *_ in files)
    assert tiers.dataspace.list('alice') == [] and tiers.dataspace.usage('alice') == 0
    twice = [(files[0][0], files[0][1], None, None), (files[0][0], files[1][1], None, None)]
    for tier in (tiers.dataspace, tiers.volatile):
        with pytest.raises(Conflict, match='twice'):
            tier.put_many('alice', twice)
        assert all(local.exists() for _, local, *_ in files)
    assert tiers.dataspace.list('alice') == []
    outside = tmp_path / 'outside'                       # a folder leading out of the space
    outside.mkdir()
    tiers.dataspace.space_root('alice').mkdir(parents=True, exist_ok=True)
    os.symlink(outside, tiers.dataspace.space_root('alice') / 'out')
    with pytest.raises(NotFound):
        tiers.dataspace.put_many('alice', [('out/x.nc', files[1][1], None, None)])
    assert list(outside.iterdir()) == [] and files[1][1].exists()


def test_volatile_put_many_one_capability_each(tiers, tmp_path):
    files = _job_files(tmp_path / 'job', [100, 200, 300])
    stored = tiers.volatile.put_many('bob', [(p, local, m, s) for p, local, m, s, _ in files],
                                     meta={'provenance': '/jobs/j1'})
    assert len({f.token for f in stored}) == 3
    for f, (path, local, _, sha, data) in zip(stored, files):
        assert f.path == path.rsplit('/', 1)[1] and f.sha256 == sha and not local.exists()
        token = tiers.volatile.url_for(f).rsplit('/', 1)[1]
        assert tiers.volatile.open(token).read() == data
        got = tiers.volatile.stat(token)
        assert got.expires and got.provenance == '/jobs/j1' and got.owner == 'bob'


def test_workspace_put_many_copies_each(tiers, tmp_path):
    files = _job_files(tmp_path / 'job', [500, 700])
    stored = tiers.workspace.put_many('alice', [(p, local, m, s) for p, local, m, s, _ in files])
    for f, (path, _, _, sha, data) in zip(stored, files):
        assert f.sha256 == sha and tiers.workspace.open('alice', path).read() == data
