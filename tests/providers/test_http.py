"""The BDI collections through a real `vre serve` harvested from the mirror: Features, Records,
EDR, /bdis, and real clients (OWSLib, GDAL ogrinfo). Expected values come from the sample
files read directly."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from datetime import datetime

import netCDF4
import numpy as np
import pytest
import requests

from bdi_samples import BDI_DATA, argo_profiles_on_disk


def items(server, coll, **params):
    r = requests.get(f'{server.url}/collections/{coll}/items', params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_bbox_datetime_counts_match_the_files(bdi_server):
    want = {p['id'] for p in argo_profiles_on_disk()
            if -20 <= p['lon'] <= -10 and 50 <= p['lat'] <= 60
            and p['time'] >= datetime(2018, 3, 1)}
    got = items(bdi_server, 'argo-profiles', bbox='-20,50,-10,60',
                datetime='2018-03-01T00:00:00Z/..', limit=1000, skipGeometry='true')
    assert got['numberMatched'] == len(want) == len(got['features'])
    assert {f['id'] for f in got['features']} == want


@pytest.mark.parametrize('dt,pick', [
    ('2018-03-15T12:21:40Z', lambda t: t == datetime(2018, 3, 15, 12, 21, 40)),
    ('../2018-03-01T00:00:00Z', lambda t: t <= datetime(2018, 3, 1)),
    ('2018-03-15/2018-03-19', lambda t: datetime(2018, 3, 15) <= t < datetime(2018, 3, 20)),
])
def test_datetime_instants_and_intervals(bdi_server, dt, pick):
    want = {p['id'] for p in argo_profiles_on_disk() if pick(p['time'])}
    got = items(bdi_server, 'argo-profiles', datetime=dt, limit=1000)
    assert want and {f['id'] for f in got['features']} == want


def test_profile_values_are_the_file_values(bdi_server):
    f = BDI_DATA / 'argo/dac/bodc/6901929/profiles/D6901929_003.nc'
    r = requests.get(f'{bdi_server.url}/collections/argo-profiles/items/D6901929_003_0',
                     params={'f': 'json'}, timeout=30)
    props = r.json()['properties']
    with netCDF4.Dataset(f) as ds:
        temp = np.ma.filled(ds['TEMP_ADJUSTED'][0].astype('f8'), np.nan)
        n = len(props['TEMP_ADJUSTED'])
        got = np.array([np.nan if v is None else v for v in props['TEMP_ADJUSTED']])
        np.testing.assert_allclose(got, temp[:n], rtol=1e-6, equal_nan=True)
        assert props['data_mode'] == ds['DATA_MODE'][0].tobytes().decode()
        assert props['cycle_number'] == int(ds['CYCLE_NUMBER'][0])


def test_paging_sorting_and_cql2(bdi_server):
    all_ = items(bdi_server, 'argo-profiles', sortby='-time', limit=1000)
    times = [f['properties']['time'] for f in all_['features']]
    assert times == sorted(times, reverse=True)
    page = items(bdi_server, 'argo-profiles', sortby='-time', limit=5, offset=5)
    assert [f['id'] for f in page['features']] == [f['id'] for f in all_['features'][5:10]]
    rels = {link['rel'] for link in page['links']}
    assert {'next', 'prev'} <= rels
    cql = items(bdi_server, 'argo-profiles', limit=1000,
                filter="platform_number = '3902131' AND file_type = 'synthetic'")
    want = {p['id'] for p in argo_profiles_on_disk() if p['file_type'] == 'synthetic'}
    assert cql['numberMatched'] == len(want) and {f['id'] for f in cql['features']} == want


@pytest.mark.parametrize('params', [{'datetime': 'yesterday'}, {'bbox': '1,2,3'},
                                    {'filter': 'nosuch = 1'}, {'cycle_number': 'abc'},
                                    {'sortby': 'nosuch'}, {'datetime': '2019-01-01/2018-01-01'}])
def test_bad_input_is_a_clear_400(bdi_server, params):
    r = requests.get(f'{bdi_server.url}/collections/argo-profiles/items', params=params,
                     timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert r.json()['status'] == 400 and r.json()['detail']


def test_records_level1_and_level2(bdi_server):
    l1 = items(bdi_server, 'bdi-collections', q='oxygen')
    ids = {f['id'] for f in l1['features']}
    assert 'argo-bio' in ids and 'argo-core' not in ids
    assert all('oxygen' in json.dumps(f['properties']).lower() for f in l1['features'])
    l2 = items(bdi_server, 'argo-granules', platform='6901929', limit=100)
    rows = [r for r in csv.DictReader(line for line in (
        BDI_DATA / 'argo/index/ar_index_global_prof.txt').read_text().splitlines()
        if not line.startswith('#')) if '/6901929/' in r['file']
        and (BDI_DATA / 'argo/dac' / r['file']).exists()]
    assert l2['numberMatched'] == len(rows)
    rec = l2['features'][0]
    assert rec['links'][0]['href'].startswith('https://data-argo.ifremer.fr/dac/bodc/6901929/')
    assert rec['properties']['license'] and 'doi.org/10.17882/42182' in rec['properties']['citation']


def test_edr_position_and_cube(bdi_server):
    f = BDI_DATA / 'argo/dac/coriolis/3902131/profiles/D3902131_001.nc'
    with netCDF4.Dataset(f) as ds:
        lon, lat = float(ds['LONGITUDE'][0]), float(ds['LATITUDE'][0])
        temp = np.ma.filled(ds['TEMP_ADJUSTED'][0].astype('f8'), np.nan)
        pres = np.ma.filled(ds['PRES'][0].astype('f8'), np.nan)
    r = requests.get(f'{bdi_server.url}/collections/argo-profiles/position',
                     params={'coords': f'POINT({lon} {lat})', 'parameter-name': 'TEMP'},
                     timeout=30)
    assert r.status_code == 200, r.text
    cov = next(c for c in r.json()['coverages'] if c['id'] == 'D3902131_001_0')
    z = cov['domain']['axes']['z']['values']
    np.testing.assert_allclose(z, pres[~np.isnan(pres)][:len(z)], rtol=1e-6)
    vals = np.array([np.nan if v is None else v for v in cov['ranges']['TEMP']['values']])
    np.testing.assert_allclose(vals, temp[~np.isnan(pres)][:len(z)], rtol=1e-6, equal_nan=True)
    cube = requests.get(f'{bdi_server.url}/collections/argo-profiles/cube',
                        params={'bbox': '4,-7,6,-6', 'z': '0/50', 'parameter-name': 'DOXY'},
                        timeout=30).json()
    assert cube['coverages'] and all(max(c['domain']['axes']['z']['values']) <= 50
                                     for c in cube['coverages'])


def test_eurobis_occurrences_and_the_bdi_table(bdi_server):
    occ = list(csv.DictReader(open(BDI_DATA / 'eurobis/esas_dwca_sample/occurrence.tsv'),
                              delimiter='\t'))
    got = items(bdi_server, 'eurobis-occurrences', scientificName='Melanitta nigra', limit=1)
    assert got['numberMatched'] == sum(o['scientificName'] == 'Melanitta nigra' for o in occ)
    assert got['features'][0]['properties']['aphiaID'] == int(
        next(o for o in occ if o['scientificName'] == 'Melanitta nigra')
        ['scientificNameID'].rsplit(':', 1)[1])
    with open(BDI_DATA / 'eurobis/esas_dwca_sample/emof.tsv') as fh:
        widths = [len(line.rstrip('\n').split('\t')) for line in fh]
    bad_rows = sum(w != widths[0] for w in widths)
    rep = bdi_server.harvest_report['eurobis']
    assert sum('emof.tsv line' in s['reason'] for s in rep['skipped']) == bad_rows == 42
    table = requests.get(f'{bdi_server.url}/bdis', params={'f': 'json'}, timeout=30).json()
    names = {b['name']: b for b in table['bdis']}
    assert {'argo', 'obis', 'eurobis'} <= set(names)
    assert names['eurobis']['health']['skipped'] == 42 and names['argo']['granules'] > 0
    html = requests.get(f'{bdi_server.url}/bdis', params={'f': 'html'}, timeout=30)
    assert html.headers['Content-Type'].startswith('text/html') and 'argo-core' in html.text


def test_obis_occurrences_match_the_recorded_responses(bdi_server):
    body = json.loads((BDI_DATA / 'obis/api_v3/occurrence_Abra_alba_mof_size100.json')
                      .read_text())
    want = [r for r in body['results'] if r['scientificName'] == 'Abra alba']
    got = items(bdi_server, 'obis-occurrences', aphiaID=141433, limit=1000)
    ids = {f['id'] for f in got['features']}
    assert {'obis-' + r['id'] for r in want} <= ids


def test_owslib_clients(bdi_server):
    from owslib.ogcapi.edr import EnvironmentalDataRetrieval
    from owslib.ogcapi.features import Features
    from owslib.ogcapi.records import Records
    feats = Features(bdi_server.url).collection_items('argo-profiles', limit=3)
    assert len(feats['features']) == 3
    recs = Records(bdi_server.url).collection_items('bdi-collections', q='Argo')
    assert {'argo-core', 'argo-bio', 'argo-synthetic'} <= {r['id'] for r in recs['features']}
    edr = EnvironmentalDataRetrieval(bdi_server.url)
    assert 'position' in json.dumps(edr.collection('argo-profiles'))


def test_gdal_ogrinfo_reads_the_collection(bdi_server):
    ogrinfo = shutil.which('ogrinfo')
    if ogrinfo is None:
        pytest.skip('gdal-bin not installed (apt-get install gdal-bin)')
    out = subprocess.run([ogrinfo, '-ro', '-so', '-al',
                          f'OAPIF:{bdi_server.url}/collections/argo-profiles'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f'Feature Count: {len(argo_profiles_on_disk())}' in out.stdout


def _edr(server, query, **params):
    r = requests.get(f'{server.url}/collections/argo-profiles/{query}', params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _with_temp() -> dict:
    """Profiles on disk that carry TEMP, by id, with position."""
    out = {}
    for p in argo_profiles_on_disk():
        with netCDF4.Dataset(p['file']) as ds:
            if 'TEMP' in ds.variables:
                out[p['id']] = p
    return out


def _check_values(cov, p):
    """A coverage's z axis and TEMP are the file's PRES and best TEMP (adjusted if D/A)."""
    with netCDF4.Dataset(p['file']) as ds:
        pres = np.ma.filled(ds['PRES'][p['i']].astype('f8'), np.nan)
        mode = ds['DATA_MODE'][p['i']].tobytes().decode()
        temp = np.ma.filled(ds['TEMP'][p['i']].astype('f8'), np.nan)
        adj = np.ma.filled(ds['TEMP_ADJUSTED'][p['i']].astype('f8'), np.nan)
    if mode in 'AD' and not np.isnan(adj).all():
        temp = adj
    keep = ~np.isnan(pres)
    np.testing.assert_allclose(cov['domain']['axes']['z']['values'], pres[keep], rtol=1e-6)
    got = np.array([np.nan if v is None else v for v in cov['ranges']['TEMP']['values']])
    np.testing.assert_allclose(got, temp[keep], rtol=1e-6, equal_nan=True)
    assert cov['domain']['axes']['x']['values'] == [pytest.approx(p['lon'])]


def test_edr_area_is_the_profiles_inside_the_polygon(bdi_server):
    from shapely.geometry import Point
    from shapely.wkt import loads
    poly = 'POLYGON((-17 53.5,-15 53.5,-16.5 55.5,-17 53.5))'
    shape = loads(poly)
    profiles = _with_temp()
    want = {i for i, p in profiles.items() if shape.intersects(Point(p['lon'], p['lat']))}
    x0, y0, x1, y1 = shape.bounds
    in_box = {i for i, p in profiles.items() if x0 <= p['lon'] <= x1 and y0 <= p['lat'] <= y1}
    assert 0 < len(want) < len(in_box)   # the polygon, not its bounds, decides
    got = _edr(bdi_server, 'area', coords=poly, **{'parameter-name': 'TEMP', 'limit': 1000})
    assert {c['id'] for c in got['coverages']} == want
    assert got['domainType'] == 'VerticalProfile'
    for cov in got['coverages'][:3]:
        _check_values(cov, profiles[cov['id']])
    late = _edr(bdi_server, 'area', coords=poly, datetime='2018-04-01T00:00:00Z/..',
                **{'parameter-name': 'TEMP', 'limit': 1000})
    assert {c['id'] for c in late['coverages']} == {
        i for i in want if profiles[i]['time'] >= datetime(2018, 4, 1)}


def test_edr_trajectory_is_the_profiles_near_the_line(bdi_server):
    from shapely.geometry import Point
    from shapely.wkt import loads
    line = 'LINESTRING(-17.5 53,-15 56)'
    shape = loads(line)
    profiles = _with_temp()
    want = {i for i, p in profiles.items() if shape.distance(Point(p['lon'], p['lat'])) <= 0.5}
    assert 0 < len(want) < sum('6901929' in i for i in profiles)
    got = _edr(bdi_server, 'trajectory', coords=line,
               **{'parameter-name': 'TEMP', 'limit': 1000})
    assert {c['id'] for c in got['coverages']} == want
    for cov in got['coverages'][:3]:
        _check_values(cov, profiles[cov['id']])
    shallow = _edr(bdi_server, 'trajectory', coords=line, z='0/20',
                   **{'parameter-name': 'TEMP', 'limit': 1000})
    assert shallow['coverages'] and all(
        max(c['domain']['axes']['z']['values']) <= 20 for c in shallow['coverages'])


@pytest.mark.parametrize('query,coords', [('area', 'POINT(-16 54)'),
                                          ('trajectory', 'POLYGON((0 0,1 0,1 1,0 0))'),
                                          ('area', 'POLYGON((0 0,1 0'),
                                          ('trajectory', 'LINESTRING(-17 53,-15 56)&z=a/b')])
def test_edr_area_and_trajectory_refuse_bad_geometry(bdi_server, query, coords):
    coords, _, z = coords.partition('&z=')
    r = requests.get(f'{bdi_server.url}/collections/argo-profiles/{query}',
                     params={'coords': coords, **({'z': z} if z else {})}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
