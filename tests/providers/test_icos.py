"""ICOS-Marine connector, harvest and collections: the OTC exports of ../shared/data/bdi/
icos-marine as they are (no landing pages: metadata from the file) and a Carbon Portal data
object whose landing-page JSON has no real sample offline: built in fco2_samples.py from the
field list of SOURCE.md, for the real Nuka Arctica 26NA20050107 SOCAT-format file. Values served
are compared with what the csv module reads from the files; EDR gives CoverageJSON series."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from datetime import datetime

import pytest
import requests
import sqlalchemy as sa

from providers import store
from providers.base import HttpSource, MirrorSource
from providers.harvest import harvest_one
from providers.icos import IcosMarineConnector, read_otc_csv

from bdi_samples import BDI_DATA, run_harvest, get_json as get
from fco2_samples import SOCAT_TAB, build_mirror, landing_page, object_id, serve_tree
from serverkit import start_server

ICOS = BDI_DATA / 'icos-marine'
OID = object_id(SOCAT_TAB.read_bytes())
RECOMPUTED = 'fCO2water_SST_wet [µatm] (Recomputed after SOCAT (Pfeil...)'


def rows_of(path) -> list[dict]:
    text = path.read_text(encoding='utf-8')
    if text.startswith('/*'):
        text = text.split('\n*/\n', 1)[1]
        return list(csv.DictReader(text.splitlines(), delimiter='\t'))
    return list(csv.DictReader(text.splitlines()))


def num(x):
    return None if x in ('', 'NaN') else float(x)


def iso(text):
    return datetime.fromisoformat(text.replace('Z', '+00:00')).strftime('%Y-%m-%dT%H:%M:%SZ')


def read_one(name):
    c = IcosMarineConnector()
    src = MirrorSource(ICOS)
    ref = next(r for r in c.granules(src) if r.path == name)
    return c.read(ref, c.fetch(src, ref))


# --- readers ----------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['otc_quality_flags.csv', 'otc_no_quality_flags.csv'])
def test_otc_exports_values_and_flags(name):
    rows = rows_of(ICOS / name)
    g = read_one(name)
    points = [o for o in g.observations if o['collection'] == 'icos-marine-fco2']
    assert len(points) == len(rows) == 8 and not g.problems
    for o, r in zip(points, rows):
        assert o['time'] == iso(r['Date/Time'])
        assert (o['lon'], o['lat']) == (float(r['Longitude']), float(r['Latitude']))
        assert o['depth'] == float(r['Depth [m]'])
        assert o['props'].get('lon_QC') == (r.get('Longitude QC Flag') or None)
        assert o['props'].get('lat_QC') == (r.get('Latitude QC Flag') or None)
        assert o['props']['depth_QC'] == r['Depth [m] QC Flag']
        assert o['props'].get('fCO2') == num(r['fCO2 [uatm]'])
        assert o['props'].get('pCO2') == num(r['pCO2 [uatm]'])
        assert o['qc'] == (r['fCO2 [uatm] QC Flag'] or None)
        assert o['props']['xCO2_in_atmosphere_type'] == r['xCO2 in atmosphere [umol mol-1] Type']
    assert g.record['url'].endswith(name) and g.record['title'].endswith('(no landing page)')
    # the schema-test rows carry no measurement: no time series to serve
    assert [o for o in g.observations if o['collection'] == 'icos-marine-series'] == []
    assert g.record['extra']['units']['fCO2'] == 'uatm'


def test_tab_variant_is_the_26na_cruise_with_position_flags():
    rows = rows_of(ICOS / 'otc_quality_flags.tab')
    socat = rows_of(SOCAT_TAB)
    g = read_one('otc_quality_flags.tab')
    points = [o for o in g.observations if o['collection'] == 'icos-marine-fco2']
    assert len(points) == len(rows)
    for o, r, s in zip(points, rows, socat):
        assert o['props']['fCO2rec'] == float(r[RECOMPUTED]) == float(s[RECOMPUTED])
        assert o['time'] == r['Date/Time'] + ':00Z' and o['qc'] == r['Flag [#]']
        assert o['props'].get('lat_QC') == (r['Latitude QC Flag'].strip('" ') or None)
        assert o['props'].get('lon_QC') == (r['Longitude QC Flag'].strip('" ') or None)
    assert any(o['props'].get('lat_QC') == 'Flag' for o in points)


def test_read_otc_csv_refuses_other_files():
    from providers.base import GranuleError
    for data in (b'', b'a,b\n1,2\n', b'\xff\xfe\x00garbage'):
        with pytest.raises(GranuleError):
            read_otc_csv(data)


def test_live_portal_paths_without_a_request():
    c = IcosMarineConnector({'objects': ['abc']})
    live = HttpSource('https://meta.icos-cp.eu/')
    (ref,) = c.granules(live)
    assert c._landing(live, ref.path) == 'https://meta.icos-cp.eu/objects/abc'
    assert live.url(c._at(live, 'data.icos-cp.eu/objects/abc')) == \
        'https://data.icos-cp.eu/objects/abc'
    with pytest.raises(FileNotFoundError):
        IcosMarineConnector().granules(live)


# --- harvest ----------------------------------------------------------------------------------
def _obs(url):
    O = store.OBSERVATION
    with store.engine(url).connect() as conn:
        return conn.execute(sa.select(O.c.id, O.c.time, O.c.lon, O.c.lat, O.c.qc, O.c.props,
                                      O.c.levels).where(O.c.bdi == 'icos-marine')
                            .order_by(O.c.id)).all()


def _granules(url):
    G = store.GRANULE
    with store.engine(url).connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(G).where(G.c.bdi == 'icos-marine'))}


def test_landing_page_object_mirror_and_live_http_agree(tmp_path):
    mirror = build_mirror(tmp_path / 'm') / 'icos-marine'
    a, b = f'sqlite:///{tmp_path}/a.sqlite', f'sqlite:///{tmp_path}/b.sqlite'
    ra = harvest_one(store.engine(a), IcosMarineConnector(), MirrorSource(mirror))
    with serve_tree(mirror) as (url, handler):
        rb = harvest_one(store.engine(b), IcosMarineConnector(), HttpSource(url + '/'))
        again = harvest_one(store.engine(b), IcosMarineConnector(), HttpSource(url + '/'))
    assert ra['added'] == rb['added'] == 4 and ra['skipped'] == rb['skipped'] == []
    assert _obs(a) == _obs(b) and len(_obs(a)) == ra['observations']
    assert (again['added'], again['updated'], again['unchanged']) == (0, 0, 4)
    assert ('GET', f'meta.icos-cp.eu/objects/{OID}', 'application/json') in handler.requests
    assert ('GET', f'data.icos-cp.eu/objects/{OID}', '*/*') in handler.requests
    page = json.loads((mirror / 'meta.icos-cp.eu/objects' / OID).read_text())
    rec = _granules(b)[f'icos-{OID}']
    extra = json.loads(rec.extra)
    station = page['specificInfo']['acquisition']['station']
    assert rec.platform == station['id'] and extra['station'] == station['org']['name']
    assert rec.title == page['references']['title']
    assert rec.citation == page['references']['citationString']
    assert rec.license.startswith(page['references']['licence']['name'])
    assert rec.url == f'https://meta.icos-cp.eu/objects/{OID}'
    assert extra['pid'] == page['pid'] and extra['hash'] == page['hash']
    assert extra['interval'] == list(page['specificInfo']['acquisition']['interval'].values())
    assert extra['units']['WOA_SSS'] == 'psu'          # from the landing page's columns
    rows = rows_of(SOCAT_TAB)
    assert rec.n_obs == len(rows) + 1 and (rec.tmin, rec.tmax) == (
        rows[0]['Date/Time'] + ':00Z', rows[-1]['Date/Time'] + ':00Z')


def test_bad_objects_are_skipped_and_the_harvest_goes_on(tmp_path, index_url):
    mirror = build_mirror(tmp_path / 'm') / 'icos-marine'
    data = SOCAT_TAB.read_bytes()
    pages = mirror / 'meta.icos-cp.eu/objects'
    wrong_hash = landing_page(data, 'x.tab', 526, '', '', hash_of=b'other bytes')
    wrong_rows = landing_page(data, 'y.tab', 500, '', '')
    (pages / 'wronghash.json').write_text(json.dumps(wrong_hash))
    (pages / 'wrongrows.json').write_text(json.dumps(wrong_rows))
    (pages / 'elsewhere.json').write_text(json.dumps(dict(wrong_rows, accessUrl='https://example.org/x')))
    (pages / 'notjson').write_text('<html>')
    (mirror / 'broken.csv').write_text('Date/Time,Longitude\nyesterday\n')
    rep = harvest_one(store.engine(index_url), IcosMarineConnector(), MirrorSource(mirror))
    reasons = {s['granule']: s['reason'] for s in rep['skipped']}
    assert 'SHA-256' in reasons['meta.icos-cp.eu/objects/wronghash']
    assert 'nRows 500' in reasons['meta.icos-cp.eu/objects/wrongrows']
    assert 'accessUrl' in reasons['meta.icos-cp.eu/objects/elsewhere']
    assert 'not JSON' in reasons['meta.icos-cp.eu/objects/notjson']
    assert 'not an ICOS OTC export' in reasons['broken.csv']
    assert rep['added'] == 5     # the 4 good ones and wrongrows (read, with its problem)


# --- through a real server --------------------------------------------------------------------
@pytest.fixture(scope='module')
def server(tmp_path_factory, bdi_data):
    tmp = tmp_path_factory.mktemp('icos')
    mirror = build_mirror(tmp / 'mirror')
    home = tmp / 'home'
    home.mkdir()
    run_harvest(home, 'icos-marine', '--mirror', str(mirror))
    with start_server(home) as srv:
        yield srv


def test_features_are_the_samples(server):
    n = sum(len(rows_of(ICOS / f)) for f in ('otc_quality_flags.csv',
                                               'otc_no_quality_flags.csv',
                                               'otc_quality_flags.tab')) + 526
    got = get(server, '/collections/icos-marine-fco2/items', limit=1000)
    assert got['numberMatched'] == len(got['features']) == n
    rows = rows_of(ICOS / 'otc_quality_flags.csv')
    mine = sorted((f for f in got['features']
                   if f['properties']['file'] == 'otc_quality_flags.csv'),
                  key=lambda f: int(f['id'].rsplit('-', 1)[1]))
    for f, r in zip(mine, rows):
        assert f['geometry']['coordinates'] == [float(r['Longitude']), float(r['Latitude'])]
        assert f['properties']['time'] == iso(r['Date/Time'])
        assert f['properties']['lon_QC'] == r['Longitude QC Flag']
    bad_pos = get(server, '/collections/icos-marine-fco2/items', bbox='-52,37,-51,38')
    assert bad_pos['numberMatched'] == sum(
        1 for f in ('otc_quality_flags.csv', 'otc_no_quality_flags.csv')
        for r in rows_of(ICOS / f) if float(r['Longitude']) < -51)
    station = get(server, '/collections/icos-marine-fco2/items', station='26NA', limit=1000)
    assert station['numberMatched'] == 526
    day = get(server, '/collections/icos-marine-fco2/items', datetime='2020-01-01T00:04:00Z')
    assert day['numberMatched'] == 6


def test_records_level1_and_level2(server):
    l1 = get(server, '/collections/bdi-collections/items', q='ICOS')
    assert 'icos-marine-otc' in {f['id'] for f in l1['features']}
    recs = get(server, '/collections/icos-marine-granules/items', limit=20)
    assert recs['numberMatched'] == 4
    obj = get(server, f'/collections/icos-marine-granules/items/icos-{OID}')
    assert obj['properties']['platform'] == '26NA'
    assert obj['properties']['license'].startswith('CC BY 4.0')
    assert obj['links'][0]['href'] == f'https://meta.icos-cp.eu/objects/{OID}'
    assert obj['time']['interval'] == ['2005-01-07T01:08:00Z', '2005-01-08T00:08:00Z']


def test_edr_time_series_for_a_station_object(server):
    rows = rows_of(SOCAT_TAB)
    x, y = float(rows[0]['Longitude']), float(rows[0]['Latitude'])
    cov = get(server, '/collections/icos-marine-fco2/position', coords=f'POINT({x} {y})',
              **{'parameter-name': 'fCO2,SST'})
    by = {c['id']: c for c in cov['coverages']}
    # the data object and the .tab export start at the same position
    assert set(by) == {f'icos-{OID}-series', 'icos-otc_quality_flags.tab-series'}
    c = by[f'icos-{OID}-series']
    assert c['domain']['domainType'] == 'PointSeries'
    assert c['domain']['axes']['t']['values'] == [r['Date/Time'] + ':00Z' for r in rows]
    assert c['ranges']['fCO2']['values'] == [float(r[RECOMPUTED]) for r in rows]
    assert c['ranges']['SST']['values'] == [float(r['Temp [°C]']) for r in rows]
    assert cov['parameters']['fCO2']['unit']['symbol'] == 'µatm'
    box = f'{x - 0.5},{y - 0.5},{x + 0.5},{y + 0.5}'
    cube = get(server, '/collections/icos-marine-fco2/cube', bbox=box,
               datetime='2005-01-07T00:00:00Z/2005-01-07T02:00:00Z',
               **{'parameter-name': 'fCO2'})
    assert {c['id'] for c in cube['coverages']} == set(by)
    area = get(server, '/collections/icos-marine-fco2/area', **{'parameter-name': 'fCO2'},
               coords=f'POLYGON(({x - 1} {y - 1},{x + 1} {y - 1},{x + 1} {y + 1},'
                      f'{x - 1} {y + 1},{x - 1} {y - 1}))')
    assert {c['id'] for c in area['coverages']} == set(by)
    empty = requests.get(f'{server.url}/collections/icos-marine-fco2/position', timeout=30,
                         params={'coords': 'POINT(12.7516 56.594)'})
    assert empty.status_code in (204, 404), empty.text    # schema-test rows: no values


@pytest.mark.parametrize('path,params', [
    ('items', {'bbox': 'a,b,c,d'}), ('items', {'datetime': '2020-13-45'}),
    ('items', {'depth': 'x'}), ('items', {'sortby': 'nosuch'}),
    ('position', {'coords': 'POINT(-42.983 59.343)', 'parameter-name': 'NOSUCH'}),
    ('area', {'coords': 'POINT(1 2)'})])
def test_bad_input_is_a_clear_4xx(server, path, params):
    r = requests.get(f'{server.url}/collections/icos-marine-fco2/{path}', params=params,
                     timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert r.json()['detail']


def test_gdal_and_owslib_read_the_collections(server):
    from owslib.ogcapi.features import Features
    from owslib.ogcapi.records import Records
    n = get(server, '/collections/icos-marine-fco2/items', limit=1)['numberMatched']
    feats = Features(server.url).collection_items('icos-marine-fco2', limit=5000)
    assert len(feats['features']) == n
    recs = Records(server.url).collection_items('icos-marine-granules')
    assert {r['id'] for r in recs['features']} == {
        f'icos-{OID}', 'icos-otc_quality_flags.csv', 'icos-otc_no_quality_flags.csv',
        'icos-otc_quality_flags.tab'}
    ogrinfo = shutil.which('ogrinfo')
    if ogrinfo is None:
        pytest.skip('gdal-bin not installed (apt-get install gdal-bin)')
    for coll, count in (('icos-marine-fco2', n), ('icos-marine-granules', 4)):
        out = subprocess.run([ogrinfo, '-ro', '-so', '-al',
                              f'OAPIF:{server.url}/collections/{coll}'],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f'Feature Count: {count}' in out.stdout
