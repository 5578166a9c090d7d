"""SeaDataNet collections through a real `vre serve` harvested from the mirror: Features,
level-2 Records, EDR (pressure/depth axis, time series), GDAL and OWSLib. Expected values are
read from the sample files with netCDF4 and csv."""
from __future__ import annotations

import shutil
import subprocess

import netCDF4
import numpy as np
import pytest
import requests

from bdi_samples import BDI_DATA, get_json as get
from test_seadatanet import gregorian, odv_rows

SDN = BDI_DATA / 'seadatanet'
CTD = SDN / 'netcdf/netCDF_vertical_profiles_ctd.nc'
XBT = SDN / 'netcdf/netCDF_vertical_profiles_xbt_with_fall_rate_and_instruments.nc'


def instances_on_disk():
    """(id, lon, lat, time) of every NetCDF instance and ODV station, read directly."""
    out = []
    for f in sorted((SDN / 'netcdf').glob('*.nc')):
        with netCDF4.Dataset(f) as ds:
            t = np.ma.filled(ds['TIME'][:].astype('f8'), np.nan)
            for i in range(ds.dimensions['INSTANCE'].size):
                first = t[i] if t.ndim == 1 else t[i][~np.isnan(t[i])][0]
                out.append((f'{f.stem}_{i}', float(ds['LONGITUDE'][i]),
                            float(ds['LATITUDE'][i]), gregorian(first)))
    for f in sorted((SDN / 'odv').glob('*.txt')):
        rows = odv_rows(f)
        lon = rows[0].index('Longitude [degrees_east]')
        starts = [r for r in rows[1:] if r[0]]
        out += [(f'{f.stem}_{n}', float(r[lon]), float(r[lon + 1]), None)
                for n, r in enumerate(starts)]
    return out


def test_every_station_and_series_is_a_feature_at_its_position(bdi_server):
    want = {i: (x, y) for i, x, y, _ in instances_on_disk()}
    got = get(bdi_server, '/collections/seadatanet-observations/items', limit=1000)
    assert got['numberMatched'] == len(want)
    served = {f['id']: f['geometry']['coordinates'] for f in got['features']}
    assert served.keys() == want.keys()
    for i, xy in want.items():
        assert served[i] == pytest.approx(list(xy), abs=1e-6)


def test_bbox_and_datetime_select_the_ctd_profiles(bdi_server):
    want = {i for i, x, y, t in instances_on_disk() if t and -11 <= x <= -9 and 38 <= y <= 41
            and t.strftime('%Y-%m-%d') == '2006-05-25'}
    got = get(bdi_server, '/collections/seadatanet-observations/items', bbox='-11,38,-9,41',
              datetime='2006-05-25', limit=100)
    assert want and {f['id'] for f in got['features']} == want
    assert got['numberMatched'] == len(want)


def test_ctd_feature_values_qc_and_time(bdi_server):
    i = 3
    with netCDF4.Dataset(CTD) as ds:
        pres = np.ma.filled(ds['PRES'][i].astype('f8'), np.nan)
        temp = np.ma.filled(ds['TEMPPR01'][i].astype('f8'), np.nan)
        qc = np.ma.filled(ds['TEMPPR01_SEADATANET_QC'][i], 57)
        when = gregorian(float(ds['TIME'][i])).strftime('%Y-%m-%dT%H:%M:%SZ')
        cdi = str(netCDF4.chartostring(ds['SDN_LOCAL_CDI_ID'][i])).strip()
    f = get(bdi_server, f'/collections/seadatanet-observations/items/{CTD.stem}_{i}')
    props = f['properties']
    assert props['time'] == when and props['local_cdi_id'] == cdi
    k = int(np.nanargmin(np.abs(pres - 1000)))           # the level nearest 1000 dbar
    assert props['PRES'][k] == pytest.approx(pres[k])
    assert props['TEMPPR01'][k] == pytest.approx(temp[k])
    assert props['TEMPPR01_SEADATANET_QC'][k] == chr(qc[k])


def test_level2_records_have_licence_citation_and_download_link(bdi_server):
    recs = get(bdi_server, '/collections/seadatanet-granules/items', limit=100)
    by_id = {r['id']: r for r in recs['features']}
    cdi = by_id['cdi-1022-DS02-4']
    assert 'SDN:L08::LS' in cdi['properties']['license']
    assert '1022-DS02-4' in cdi['properties']['citation']
    assert cdi['time']['interval'] == ['1961-01-01T00:00:00Z', '2005-03-18T23:59:59Z']
    assert cdi['links'][0]['rel'] == 'enclosure'
    nc = by_id[f'sdn-{CTD.stem}']
    assert nc['links'][0]['href'].endswith('netcdf/' + CTD.name)
    assert nc['properties']['observations'] == 10
    oxygen = get(bdi_server, '/collections/seadatanet-granules/items', parameter='DOXMSDXX')
    assert [r['id'] for r in oxygen['features']] == [f'sdn-{CTD.stem}']
    l1 = get(bdi_server, '/collections/bdi-collections/items', q='SeaDataNet', limit=50)
    assert {'seadatanet-cdi', 'seadatanet-netcdf', 'seadatanet-odv'} <= \
        {r['id'] for r in l1['features']}


def test_edr_position_with_pressure_axis(bdi_server):
    i = 5
    with netCDF4.Dataset(CTD) as ds:
        lon, lat = float(ds['LONGITUDE'][i]), float(ds['LATITUDE'][i])
        pres = np.ma.filled(ds['PRES'][i].astype('f8'), np.nan)
        sal = np.ma.filled(ds['PSLTZZ01'][i].astype('f8'), np.nan)
    cov = get(bdi_server, '/collections/seadatanet-observations/position',
              coords=f'POINT({lon} {lat})', **{'parameter-name': 'PSLTZZ01', 'z': '100/200'})
    (c,) = [c for c in cov['coverages'] if c['id'] == f'{CTD.stem}_{i}']
    sel = (pres >= 100) & (pres <= 200)
    np.testing.assert_allclose(c['domain']['axes']['z']['values'], pres[sel])
    np.testing.assert_allclose(c['ranges']['PSLTZZ01']['values'], sal[sel])


def test_edr_cube_with_depth_axis_and_area(bdi_server):
    with netCDF4.Dataset(XBT) as ds:
        lons = np.ma.filled(ds['LONGITUDE'][:], np.nan)
        lats = np.ma.filled(ds['LATITUDE'][:], np.nan)
    inside = (lons >= 137) & (lons <= 138) & (lats >= -54) & (lats <= -51)
    assert inside.sum() > 1
    cube = get(bdi_server, '/collections/seadatanet-observations/cube', bbox='137,-54,138,-51',
               z='0/10', **{'parameter-name': 'TEMPET01'})
    assert len(cube['coverages']) == inside.sum()
    assert all(max(c['domain']['axes']['z']['values']) <= 10 for c in cube['coverages'])
    area = get(bdi_server, '/collections/seadatanet-observations/area',
               coords='POLYGON((137 -54,138 -54,138 -51,137 -51,137 -54))',
               **{'parameter-name': 'TEMPET01'})
    assert {c['id'] for c in area['coverages']} == {c['id'] for c in cube['coverages']}


def test_edr_time_series(bdi_server):
    f = SDN / 'netcdf/netCDF_timeseries_tidegauge.nc'
    with netCDF4.Dataset(f) as ds:
        lon, lat = float(ds['LONGITUDE'][0]), float(ds['LATITUDE'][0])
        t = np.ma.filled(ds['TIME'][0].astype('f8'), np.nan)
        sl = np.ma.filled(ds['ASLVZZ01'][0].astype('f8'), np.nan)
    cov = get(bdi_server, '/collections/seadatanet-observations/position',
              coords=f'POINT({lon} {lat})', **{'parameter-name': 'ASLVZZ01'})
    (c,) = cov['coverages']
    assert c['domain']['domainType'] == 'PointSeries'
    times = c['domain']['axes']['t']['values']
    k = 100
    assert times[k] == gregorian(t[k]).strftime('%Y-%m-%dT%H:%M:%SZ')
    assert c['ranges']['ASLVZZ01']['values'][k] == pytest.approx(sl[k])


@pytest.mark.parametrize('path,params', [
    ('items', {'bbox': '1,2'}), ('items', {'datetime': 'not-a-date'}),
    ('position', {'coords': 'POINT(1 2)', 'parameter-name': 'NOSUCH'}),
    ('cube', {'bbox': '1,2,3', 'parameter-name': 'TEMPPR01'})])
def test_bad_input_is_a_clear_4xx(bdi_server, path, params):
    r = requests.get(f'{bdi_server.url}/collections/seadatanet-observations/{path}',
                     params=params, timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert r.json()['detail']


def test_gdal_and_owslib_read_the_collections(bdi_server):
    from owslib.ogcapi.features import Features
    n = len(instances_on_disk())
    feats = Features(bdi_server.url).collection_items('seadatanet-observations', limit=1000)
    assert len(feats['features']) == n
    ogrinfo = shutil.which('ogrinfo')
    if ogrinfo is None:
        pytest.skip('gdal-bin not installed (apt-get install gdal-bin)')
    for coll, count in (('seadatanet-observations', n), ('seadatanet-granules', None)):
        out = subprocess.run([ogrinfo, '-ro', '-so', '-al', f'OAPIF:{bdi_server.url}/collections/{coll}'],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        if count is None:
            count = get(bdi_server, f'/collections/{coll}/items', limit=1)['numberMatched']
        assert f'Feature Count: {count}' in out.stdout
