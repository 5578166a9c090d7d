"""Argo connector and harvest: values against netCDF4/xarray, mirror vs live HTTP, increments,
unreadable granules reported and skipped."""
from __future__ import annotations

import os
import shutil

import netCDF4
import numpy as np
import pytest
import sqlalchemy as sa
import xarray as xr

from providers import store
from providers.argo import ArgoConnector, parse_index, read_profiles
from providers.base import HttpSource, MirrorSource
from providers.harvest import harvest_one

from bdi_samples import BDI_DATA, argo_profiles_on_disk

ARGO = BDI_DATA / 'argo'


@pytest.mark.parametrize('rel', ['bodc/6901929/profiles/D6901929_001.nc',
                                 'coriolis/3902131/profiles/SD3902131_001.nc',
                                 'coriolis/3902131/profiles/BD3902131_002.nc',
                                 'coriolis/3902131/3902131_prof.nc'])
def test_profiles_read_as_netcdf4_reads_them(rel):
    path = ARGO / 'dac' / rel
    profiles = read_profiles(path.read_bytes())
    with netCDF4.Dataset(path) as ds, xr.open_dataset(path) as xds:
        assert len(profiles) == ds.dimensions['N_PROF'].size
        for p in profiles[:: max(1, len(profiles) // 7)]:
            i = p['index']
            assert p['platform_number'] == str(netCDF4.chartostring(ds['PLATFORM_NUMBER'][i])).strip()
            assert p['latitude'] == pytest.approx(float(ds['LATITUDE'][i]))
            assert p['time'] == str(xds.JULD[i].values.astype('datetime64[s]')) + 'Z'
            for name in p['parameters']:
                raw = np.ma.filled(ds[name][i].astype('f8'), np.nan)
                got = np.array([np.nan if v is None else v for v in p['levels'][name]])
                n = len(got)
                np.testing.assert_allclose(got, raw[:n], rtol=1e-6, atol=1e-6, equal_nan=True)
                assert np.all(np.isnan(raw[n:]))       # only missing levels were trimmed
                if name + '_QC' not in ds.variables:   # B files: PRES has no QC
                    assert name + '_QC' not in p['levels']
                    continue
                qc = ds[name + '_QC'][i]
                assert p['levels'][name + '_QC'] == np.ma.filled(qc, b' ').tobytes().decode()[:n]


def test_corrupt_file_is_a_clear_granule_error():
    from providers.base import GranuleError
    with pytest.raises(GranuleError, match='not a readable NetCDF'):
        read_profiles(b'CDF\x01 truncated')


def _obs_count(url):
    with store.engine(url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(store.OBSERVATION)
                            .where(store.OBSERVATION.c.bdi == 'argo')).scalar_one()


def test_mirror_harvest_reports_missing_files_and_indexes_every_profile(index_url):
    rep = harvest_one(store.engine(index_url), ArgoConnector(), MirrorSource(ARGO))
    listed = [r['file'] for n in ('ar_index_global_prof.txt', 'argo_bio-profile_index.txt',
                                  'argo_synthetic-profile_index.txt')
              for r in parse_index((ARGO / 'index' / n).read_text())]
    missing = sorted('dac/' + f for f in listed if not (ARGO / 'dac' / f).exists())
    assert missing, 'the sample mirror is partial on purpose'
    assert sorted(s['granule'] for s in rep['skipped']) == missing
    assert rep['added'] == len(listed) - len(missing)
    assert _obs_count(index_url) == len(argo_profiles_on_disk()) == rep['observations']


def test_live_http_harvest_equals_mirror_harvest(live_bdis, tmp_path):
    a, b = f'sqlite:///{tmp_path}/a.sqlite', f'sqlite:///{tmp_path}/b.sqlite'
    ra = harvest_one(store.engine(a), ArgoConnector(), MirrorSource(ARGO))
    rb = harvest_one(store.engine(b), ArgoConnector(), HttpSource(live_bdis + '/argo/'))
    assert rb['added'] == ra['added'] and len(rb['skipped']) == len(ra['skipped'])
    cols = [store.OBSERVATION.c[c] for c in ('id', 'time', 'lon', 'lat', 'levels')]
    rows = []
    for url in (a, b):
        with store.engine(url).connect() as conn:
            rows.append(conn.execute(sa.select(*cols).order_by(cols[0])).all())
    assert rows[0] == rows[1]
    again = harvest_one(store.engine(b), ArgoConnector(), HttpSource(live_bdis + '/argo/'))
    assert (again['added'], again['updated'], again['unchanged']) == (0, 0, rb['added'])


def test_incremental_harvest_touches_only_what_changed(tmp_path, index_url):
    mirror = tmp_path / 'argo'
    shutil.copytree(ARGO / 'index', mirror / 'index')
    shutil.copytree(ARGO / 'dac/bodc', mirror / 'dac/bodc')
    eng = store.engine(index_url)
    first = harvest_one(eng, ArgoConnector(), MirrorSource(mirror))
    assert first['added'] > 3 and first['updated'] == 0

    second = harvest_one(eng, ArgoConnector(), MirrorSource(mirror))
    assert (second['added'], second['updated'], second['removed']) == (0, 0, 0)
    assert second['unchanged'] == first['added'] and second['observations'] == 0

    prof = mirror / 'dac/bodc/6901929/profiles'
    os.utime(prof / 'D6901929_003.nc', (1, 1))            # same bytes, new mtime
    (prof / 'D6901929_004.nc').write_bytes(b'garbage')     # corrupt
    shutil.copy(prof / 'D6901929_005.nc', prof / 'D6901929_006.nc')   # other content
    third = harvest_one(eng, ArgoConnector(), MirrorSource(mirror))
    assert third['updated'] == 1 and third['unchanged'] == first['added'] - 2
    reasons = {s['granule']: s['reason'] for s in third['skipped']}
    assert 'not a readable NetCDF' in reasons['dac/bodc/6901929/profiles/D6901929_004.nc']
    with eng.connect() as conn:
        rows = conn.execute(sa.select(store.OBSERVATION.c.id, store.OBSERVATION.c.cycle).where(
            store.OBSERVATION.c.granule == 'D6901929_006')).all()
    assert {c for _, c in rows} == {5}      # re-read: now the copied cycle-5 content
