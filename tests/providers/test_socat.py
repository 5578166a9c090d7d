"""SOCAT connector, harvest and collections: the PANGAEA tab file and the Upload Dashboard bag
(real samples in ../shared/data/bdi/socat) and a synthesis data report (no real sample offline:
built in fco2_samples.py from SOURCE.md's description, longitudes 0..360, a QC flag E cruise).
Values served are compared with what the csv module and ElementTree read from the files."""
from __future__ import annotations

import csv
import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import datetime

import pytest
import requests
import sqlalchemy as sa

from providers import store
from providers.base import GranuleError, HttpSource, MirrorSource
from providers.harvest import harvest_one
from providers.socat import SocatConnector, read_pangaea

from bdi_samples import BDI_DATA, run_harvest, get_json as get
from fco2_samples import (SOCAT_TAB, SYNTHESIS_DATASETS, SYNTHESIS_ROWS, build_mirror,
                          serve_tree, synthesis_tsv)
from serverkit import serve_folder, start_server

BAG = BDI_DATA / 'socat/WFCH20220615_submission'
TAB_ID = 'socat-26NA20050107_CO2_underway_SOCATv3'
BAG_ID = 'socat-WFCH20220615_submission'


def tab_rows() -> tuple[str, list[dict]]:
    """(header text, rows) of the PANGAEA file, read with csv after the */ line."""
    text = SOCAT_TAB.read_text(encoding='utf-8')
    head, body = text.split('\n*/\n', 1)
    return head, list(csv.DictReader(body.splitlines(), delimiter='\t'))


def bag_rows() -> list[dict]:
    lines = (BAG / 'WFCH20220615.csv').read_text(encoding='utf-8').splitlines()
    return list(csv.DictReader(lines[4:]))


def num(x):
    return None if x in ('', 'NaN', '-999') else float(x)


def lon180(x):
    return x - 360 if x > 180 else x


RECOMPUTED = 'fCO2water_SST_wet [µatm] (Recomputed after SOCAT (Pfeil...)'


# --- readers ----------------------------------------------------------------------------------
def test_pangaea_cruise_values_and_header():
    head, rows = tab_rows()
    c = SocatConnector()
    ref = next(r for r in c.granules(MirrorSource(BDI_DATA / 'socat')) if r.id == TAB_ID)
    g = c.read(ref, SOCAT_TAB.read_bytes())
    points = [o for o in g.observations if o['collection'] == 'socat-fco2']
    assert len(points) == len(rows) == 526 and not g.problems
    for o, r in zip(points, rows):
        assert o['time'] == r['Date/Time'] + ':00Z'
        assert (o['lon'], o['lat']) == (float(r['Longitude']), float(r['Latitude']))
        assert o['props']['fCO2rec'] == float(r[RECOMPUTED]) == o['props']['fCO2']
        assert o['props']['SST'] == float(r['Temp [°C]'])
        assert o['props']['WOA_SSS'] == float(r['Sal interp'])
        assert o['qc'] == r['Flag [#]'] and o['platform'] == '26NA20050107'
    rec = g.record
    assert 'Cruise QC flag: C' in head and rec['qc'] == 'C'
    assert 'BASIS: Nuka Arctica' in head and rec['platform'] == 'Nuka Arctica'
    assert rec['license'] in head and rec['citation'] in head
    assert rec['extra']['pi'] == ['Olsen, Are'] and 'PI: Olsen, Are' in head
    assert (rec['minx'], rec['maxx']) == (min(float(r['Longitude']) for r in rows),
                                          max(float(r['Longitude']) for r in rows))
    assert (rec['tmin'], rec['tmax']) == (rows[0]['Date/Time'] + ':00Z',
                                          rows[-1]['Date/Time'] + ':00Z')


def test_dashboard_bag_values_missing_and_metadata():
    rows = bag_rows()
    c = SocatConnector()
    src = MirrorSource(BDI_DATA / 'socat')
    ref = next(r for r in c.granules(src) if r.id == BAG_ID)
    g = c.read(ref, c.fetch(src, ref))
    points = [o for o in g.observations if o['collection'] == 'socat-fco2']
    assert len(points) == len(rows) == 2068
    for o, r in zip(points, rows):
        when = datetime.strptime(r['DATE_UTC__ddmmyyyy'] + r['TIME_UTC_hh:mm:ss'],
                                 '%d%m%Y%H:%M:%S')
        assert o['time'] == when.strftime('%Y-%m-%dT%H:%M:%SZ')
        assert o['props'].get('fCO2water_SST_wet') == num(r['fCO2_SW@SST_uatm']) == \
            o['props'].get('fCO2')
        assert o['props'].get('SST') == num(r['SST_C'])
        assert o['props'].get('sal') == num(r['SAL_permil'])
        assert o['qc'] == r['WOCE_QC_FLAG']
        assert o['props'].get('qc_comment') == (r['QC_SUBFLAG'] or None)
    assert any(num(r['fCO2_SW@SST_uatm']) is None for r in rows)   # -999 rows are missing
    ocads = ET.parse(BAG / 'OCADS.xml').getroot()
    rec = g.record
    assert rec['platform'] == ocads.findtext('Platform/PlatformName')
    assert rec['extra']['pi'] == [p.findtext('name') for p in ocads.iterfind('person')
                                  if p.findtext('role') == 'investigator']
    assert rec['extra']['expocode'] == ocads.findtext('expocode') == 'WFCH20220615'
    assert rec['extra']['units']['fCO2water_SST_wet'] == next(
        v.findtext('unit') for v in ocads.iterfind('variable')
        if v.findtext('abbrev') == 'fCO2_SW@SST_uatm')
    assert rec['url'].endswith('/WFCH20220615_submission/')


def test_synthesis_report_longitudes_qc_e_and_values(tmp_path):
    """The synthesis fixture (built from SOURCE.md, values invented): one granule per cruise,
    longitudes 0..360 served in -180..180, the QC flag E cruise left out."""
    (tmp_path / 'SOCATv2024_fixture.tsv').write_bytes(synthesis_tsv())
    c = SocatConnector()
    src = MirrorSource(tmp_path)
    refs = c.granules(src)
    kept = {e for e, _, _, _, qc, _ in SYNTHESIS_DATASETS if qc != 'E'}
    assert {r.meta['expocode'] for r in refs} == kept
    assert c.listing_problems() == [('SOCATv2024_fixture.tsv#33RO20240303',
                                     'cruise QC flag E: excluded as from SOCAT synthesis '
                                     'products')]
    text = synthesis_tsv().decode()
    data = list(csv.DictReader(text[text.index('Expocode\tversion\tSource_DOI'):].splitlines(),
                               delimiter='\t'))
    for ref in refs:
        g = c.read(ref, c.fetch(src, ref))
        want = [r for r in data if r['Expocode'] == ref.meta['expocode']]
        points = [o for o in g.observations if o['collection'] == 'socat-fco2']
        assert len(points) == len(want)
        for o, r in zip(points, want):
            assert o['lon'] == pytest.approx(lon180(float(r['longitude [dec.deg.E]'])))
            assert -180 <= o['lon'] <= 180
            assert o['props'].get('fCO2rec') == num(r['fCO2rec [uatm]'])
            assert o['props'].get('sal') == num(r['sal'])
            assert o['qc'] == r['fCO2rec_flag'] and o['data_mode'] == r['QC_Flag']
            t = datetime(*(int(r[k]) for k in ('yr', 'mon', 'day', 'hh', 'mm', 'ss')))
            assert o['time'] == t.strftime('%Y-%m-%dT%H:%M:%SZ')
        lons = [lon180(float(r['longitude [dec.deg.E]'])) for r in want]
        assert (g.record['minx'], g.record['maxx']) == pytest.approx((min(lons), max(lons)))
        assert g.record['qc'] == want[0]['QC_Flag']
    greenwich = c.read(refs[0], c.fetch(src, refs[0])).record
    assert greenwich['maxx'] - greenwich['minx'] < 1       # not 0.1..359.9


@pytest.mark.parametrize('data', [b'', b'/* DATA DESCRIPTION:\nno end', b'plain text\n',
                                  b'/* DATA DESCRIPTION:\n*/\nA\tB\n1\t2\n'])
def test_unreadable_pangaea_files_are_clear_errors(data):
    with pytest.raises(GranuleError):
        read_pangaea(data)


# --- harvest ----------------------------------------------------------------------------------
def _obs(url):
    O = store.OBSERVATION
    with store.engine(url).connect() as conn:
        return conn.execute(sa.select(O.c.id, O.c.time, O.c.lon, O.c.lat, O.c.qc, O.c.props,
                                      O.c.levels).where(O.c.bdi == 'socat')
                            .order_by(O.c.id)).all()


def test_mirror_and_live_http_harvests_agree(tmp_path):
    mirror = build_mirror(tmp_path / 'm') / 'socat'
    a, b = f'sqlite:///{tmp_path}/a.sqlite', f'sqlite:///{tmp_path}/b.sqlite'
    ra = harvest_one(store.engine(a), SocatConnector(), MirrorSource(mirror))
    with serve_tree(mirror) as (url, handler):
        rb = harvest_one(store.engine(b), SocatConnector(), HttpSource(url + '/'))
        again = harvest_one(store.engine(b), SocatConnector(), HttpSource(url + '/'))
    assert ra['added'] == rb['added'] == 4      # tab, bag, 2 synthesis cruises (not the E one)
    assert ra['skipped'] == rb['skipped'] and len(ra['skipped']) == 1
    n = 526 + 2068 + len([r for r in SYNTHESIS_ROWS if r[1] != 'E'])
    assert ra['observations'] == rb['observations'] == n + 4      # + a series per cruise
    assert _obs(a) == _obs(b) and len(_obs(a)) == ra['observations']
    assert (again['added'], again['updated'], again['unchanged']) == (0, 0, 4)
    assert ('GET', 'WFCH20220615_submission/data/WFCH20220615.csv', '*/*') in handler.requests


def test_corrupt_bag_and_files_are_skipped_and_the_harvest_goes_on(tmp_path, index_url):
    mirror = tmp_path / 'socat'
    shutil.copytree(BDI_DATA / 'socat', mirror)
    eng = store.engine(index_url)
    first = harvest_one(eng, SocatConnector(), MirrorSource(mirror))
    assert first['added'] == 2 and first['skipped'] == []
    csvf = mirror / 'WFCH20220615_submission/WFCH20220615.csv'
    csvf.chmod(0o644)
    csvf.write_bytes(csvf.read_bytes().replace(b'421.019', b'421.018'))
    (mirror / 'pangaea_socatv3/broken.tab').write_text('/* DATA DESCRIPTION:\nnever closed\n')
    second = harvest_one(eng, SocatConnector(), MirrorSource(mirror))
    reasons = {s['granule']: s['reason'] for s in second['skipped']}
    assert 'md5' in reasons['WFCH20220615_submission/']
    assert 'not closed' in reasons['pangaea_socatv3/broken.tab']
    assert second['unchanged'] == 1
    with eng.connect() as conn:     # the old bag rows are kept until it reads again
        n = conn.execute(sa.select(sa.func.count()).select_from(store.OBSERVATION).where(
            store.OBSERVATION.c.granule == BAG_ID)).scalar_one()
    assert n == 2068 + 1


# --- through a real server --------------------------------------------------------------------
@pytest.fixture(scope='module')
def server(tmp_path_factory, bdi_data):
    tmp = tmp_path_factory.mktemp('socat')
    mirror = build_mirror(tmp / 'mirror')
    home = tmp / 'home'
    home.mkdir()
    run_harvest(home, 'socat', 'icos-marine', '--mirror', str(mirror))
    with start_server(home) as srv:
        yield srv


def test_features_are_the_samples(server):
    _, rows = tab_rows()
    got = get(server, '/collections/socat-fco2/items', granule=TAB_ID, limit=1000)
    assert got['numberMatched'] == len(rows)
    for f, r in zip(sorted(got['features'], key=lambda f: f['properties']['time']), rows):
        p = f['properties']
        assert f['geometry']['coordinates'] == [float(r['Longitude']), float(r['Latitude'])]
        assert p['fCO2rec'] == float(r[RECOMPUTED]) and p['SST'] == float(r['Temp [°C]'])
        assert (p['woce_flag'], p['cruise_qc'], p['expocode']) == \
            (r['Flag [#]'], 'C', '26NA20050107')
        assert p['ship'] == 'Nuka Arctica'
    everything = get(server, '/collections/socat-fco2/items', limit=1, resulttype='hits')
    assert everything['numberMatched'] == 526 + 2068 + 7


def test_bbox_across_the_0_360_seam_and_filters(server):
    norm = [(r[0], lon180(r[9]), r[10], r[15]) for r in SYNTHESIS_ROWS if r[1] != 'E']
    want = {(round(x, 4), y) for e, x, y, _ in norm if -0.25 <= x <= 0.2}
    assert len(want) == 2                      # 359.9 E and 0.1 E
    got = get(server, '/collections/socat-fco2/items', bbox='-0.25,49,0.2,51')
    assert {(round(f['geometry']['coordinates'][0], 4), f['geometry']['coordinates'][1])
            for f in got['features']} == want
    pacific = get(server, '/collections/socat-fco2/items', bbox='-160,29,-158,31')
    assert pacific['numberMatched'] == sum(1 for e, x, *_ in norm if -160 <= x <= -158) == 2
    assert {f['properties']['expocode'] for f in pacific['features']} == {'49NZ20240202'}
    assert get(server, '/collections/socat-fco2/items', expocode='33RO20240303')[
        'numberMatched'] == 0
    flagged = get(server, '/collections/socat-fco2/items', woce_flag='3', limit=1000)
    bag = [r for r in bag_rows() if r['WOCE_QC_FLAG'] == '3']
    assert flagged['numberMatched'] == len(bag) + sum(1 for r in norm if r[3] == 3)
    day = get(server, '/collections/socat-fco2/items', datetime='2005-01-07', limit=1000)
    assert day['numberMatched'] == sum(1 for r in tab_rows()[1]
                                       if r['Date/Time'].startswith('2005-01-07'))


def test_level1_and_level2_records(server):
    l1 = get(server, '/collections/bdi-collections/items', q='SOCAT', limit=50)
    assert {'socat-pangaea', 'socat-dashboard', 'socat-synthesis'} <= \
        {f['id'] for f in l1['features']}
    recs = get(server, '/collections/socat-granules/items', limit=50)
    assert recs['numberMatched'] == 4
    by = {r['id']: r for r in recs['features']}
    tab = by[TAB_ID]
    assert tab['properties']['platform'] == 'Nuka Arctica' and tab['properties']['qc'] == 'C'
    assert tab['properties']['license'].startswith('Creative Commons Attribution 3.0')
    assert 'doi:10.1594/PANGAEA.850132' in tab['properties']['citation']
    assert tab['properties']['expocode'] == '26NA20050107'
    assert tab['links'][0]['href'].endswith('pangaea_socatv3/' + SOCAT_TAB.name)
    assert tab['time']['interval'] == ['2005-01-07T01:08:00Z', '2005-01-08T00:08:00Z']
    bag = by[BAG_ID]['properties']
    assert bag['pi'] == ['Rik Wanninkhof', 'Denis Pierrot'] and bag['observations'] == 2069
    ship = get(server, '/collections/socat-granules/items', platform='Le Commandant Charcot')
    assert [r['id'] for r in ship['features']] == [BAG_ID]
    qc_a = get(server, '/collections/socat-granules/items', qc='A')
    assert [r['properties']['expocode'] for r in qc_a['features']] == ['49NZ20240202']
    space = get(server, '/collections/socat-granules/items', bbox='-1,49,1,51')
    assert [r['properties']['expocode'] for r in space['features']] == ['74JC20240101']


def test_edr_cruise_time_series(server):
    _, rows = tab_rows()
    x, y = float(rows[0]['Longitude']), float(rows[0]['Latitude'])
    cov = get(server, '/collections/socat-fco2/position', coords=f'POINT({x} {y})',
              **{'parameter-name': 'fCO2rec,SST'})
    (c,) = cov['coverages']
    assert c['domain']['domainType'] == 'PointSeries'
    assert c['domain']['axes']['t']['values'] == [r['Date/Time'] + ':00Z' for r in rows]
    assert c['ranges']['fCO2rec']['values'] == [float(r[RECOMPUTED]) for r in rows]
    assert c['ranges']['SST']['values'] == [float(r['Temp [°C]']) for r in rows]
    assert cov['parameters']['fCO2rec']['unit']['symbol'] == 'µatm'
    area = get(server, '/collections/socat-fco2/area', **{'parameter-name': 'fCO2'},
               coords=f'POLYGON(({x - 1} {y - 1},{x + 1} {y - 1},{x + 1} {y + 1},'
                      f'{x - 1} {y + 1},{x - 1} {y - 1}))')
    assert [c['id'] for c in area['coverages']] == [TAB_ID + '-series']
    cube = get(server, '/collections/socat-fco2/cube', bbox='-1,49,1,51',
               **{'parameter-name': 'fCO2rec'})
    (c,) = cube['coverages']
    want = [r for r in SYNTHESIS_ROWS if r[0] == '74JC20240101']
    assert c['ranges']['fCO2rec']['values'] == [None if r[13] == 'NaN' else r[13] for r in want]


@pytest.mark.parametrize('path,params', [
    ('items', {'bbox': '1,2'}), ('items', {'datetime': 'not-a-date'}),
    ('items', {'sample_depth': 'deep'}), ('items', {'filter': 'nosuch = 1'}),
    ('position', {'coords': 'POINT(-42.983 59.343)', 'parameter-name': 'NOSUCH'}),
    ('cube', {'bbox': '1,2,3', 'parameter-name': 'fCO2'})])
def test_bad_input_is_a_clear_4xx(server, path, params):
    r = requests.get(f'{server.url}/collections/socat-fco2/{path}', params=params, timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert r.json()['detail']


def test_gdal_and_owslib_read_the_collections(server):
    from owslib.ogcapi.features import Features
    n = get(server, '/collections/socat-fco2/items', limit=1)['numberMatched']
    feats = Features(server.url).collection_items('socat-fco2', limit=5000)
    assert len(feats['features']) == n
    assert {f['properties']['expocode'] for f in feats['features']} == {
        '26NA20050107', 'WFCH20220615', '74JC20240101', '49NZ20240202'}
    ogrinfo = shutil.which('ogrinfo')
    if ogrinfo is None:
        pytest.skip('gdal-bin not installed (apt-get install gdal-bin)')
    for coll, count in (('socat-fco2', n), ('socat-granules', 4)):
        out = subprocess.run([ogrinfo, '-ro', '-so', '-al',
                              f'OAPIF:{server.url}/collections/{coll}'],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f'Feature Count: {count}' in out.stdout
    out = subprocess.run([ogrinfo, '-ro', '-al', '-where', "expocode = '49NZ20240202'",
                          f'OAPIF:{server.url}/collections/socat-fco2'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.count('POINT (') == 2, out.stderr


def test_fco2_trend_reads_the_collection_as_it_reads_the_files(server, tmp_path):
    """fco2-trend given the socat-fco2 collection (Part 3 collection input) answers as when
    it is given the cruise files themselves by reference; QC-flag-E cruises, which the
    connector leaves out, lie outside the regions compared."""
    regions = {'nuka-arctica': [-43.5, 59, -31, 60.2], 'svalbard': [9, 78, 34, 81],
               'greenwich': [-1, 49.9, 1, 50.5]}
    mirror = build_mirror(tmp_path / 'mirror') / 'socat'

    def trend(data):
        r = requests.post(f'{server.url}/processes/fco2-trend/execution', json={
            'inputs': {'data': data, 'regions': regions}}, timeout=300)
        assert r.status_code == 200, r.text
        return r.json()

    got = trend({'collection': f'{server.url}/collections/socat-fco2'})
    with serve_folder(mirror) as url:
        want = trend([{'href': f'{url}/{p.relative_to(mirror)}'} for p in (
            mirror / 'pangaea_socatv3/26NA20050107_CO2_underway_SOCATv3.tab',
            mirror / 'WFCH20220615_submission/WFCH20220615.csv',
            mirror / 'synthesis/SOCATv2024_fixture.tsv')])
    assert set(got) == set(want) == set(regions)
    for name in regions:
        assert got[name]['n'] == want[name]['n'] > 0
        assert got[name]['mean_fco2'] == pytest.approx(want[name]['mean_fco2'], rel=1e-9)
        if want[name]['trend'] is not None:
            assert got[name]['trend'] == pytest.approx(want[name]['trend'], rel=1e-6)
