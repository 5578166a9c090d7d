"""ERDDAP connector: recorded tabledap/griddap/info/search/error answers (../shared/data/bdi/
erddap, MANIFEST.json) harvested from the mirror and from loopback servers answering at the
live paths (one per recorded host), then served by a real `vre serve`. Expected values are read
from the recorded files with xarray, pandas and json, not through providers/erddap.py."""
from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import subprocess
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy as sa
import xarray as xr

from bdi_samples import BDI_DATA, run_harvest, get_json as get
from serverkit import serve, start_server

from providers import store
from providers.base import HttpSource, MirrorSource
from providers.erddap import (ErddapConnector, error_message, griddap_request, no_results,
                              parse_request, tabledap_request)
from providers.harvest import harvest_one

ERD = BDI_DATA / 'erddap'
MANIFEST = json.loads((ERD / 'MANIFEST.json').read_text())
TABLES = sorted(ERD.glob('ifremer_tabledap_*.nc'))
BOX = ERD / 'ifremer_tabledap_ArgoFloats_box.nc'
GEBCO = ERD / 'coastwatch_griddap_GEBCO_2020_subset.nc'
GLIDER = ERD / 'gliders_tabledap_amelia-20180501T0000.csvp'


def uri_of(name: str) -> str:
    return next(e['uri'] for e in MANIFEST if e['file'] == name)


def rel_of(name: str) -> str:
    return uri_of(name).split('/erddap/', 1)[1]


def rows_on_disk() -> pd.DataFrame:
    """Every row of every recorded tabledap .nc answer present in the mirror (xarray)."""
    frames = []
    for f in TABLES:
        with xr.open_dataset(f) as ds:
            frames.append(ds[['longitude', 'latitude', 'time']].to_dataframe().assign(file=f.name))
    return pd.concat(frames, ignore_index=True)


# --- loopback ERDDAP servers replaying the recorded answers at their live paths ------------
class Recorded(http.server.BaseHTTPRequestHandler):
    answers: dict = {}     # unquoted path?query -> manifest entry

    def log_message(self, *args):
        pass

    def do_GET(self):
        e = self.answers.get(unquote(self.path))
        f = ERD / e['file'] if e else None
        if f is None or not f.is_file():
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        body = f.read_bytes()
        self.send_response(e.get('status', 200))
        ctype = e.get('content_type') or ['application/octet-stream']
        self.send_header('Content-Type', ctype[0] if isinstance(ctype, list) else ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope='module')
def live_hosts(bdi_data):
    """host of each recorded URI -> base URL of a loopback server answering for that host."""
    by_host: dict[str, dict] = {}
    for e in MANIFEST:
        p = urlsplit(e['uri'])
        by_host.setdefault(p.netloc, {})[unquote(p.path + ('?' + p.query if p.query else ''))] = e
    with contextlib.ExitStack() as servers:
        yield {host: servers.enter_context(serve(type(
                   'Recorded_' + host.replace('.', '_'), (Recorded,), {'answers': answers})))
               + '/erddap/' for host, answers in by_host.items()}


def live_config(hosts: dict) -> dict:
    """The recorded requests as a `servers:` config; two of them built from their parts."""
    reference = {'dataset': 'ArgoFloats-reference', 'variables': [
        'cycle_number', 'latitude', 'longitude', 'platform_number', 'pres', 'psal', 'ptmp',
        'temp', 'time'], 'bbox': [-25, 36, -10, 40], 'constraints': {'pres': [0, 10.0]},
        'time': [1514764800.0, 1546300800.0],
        'extra': ['latitude!=NaN', 'longitude!=NaN', 'distinct()', 'orderBy("time,pres")']}
    gebco = {'dataset': 'GEBCO_2020', 'griddap': ['elevation'], 'stride': 10,
             'ranges': [['-67.00', '-54.00'], ['81.00', '123.00']]}
    ifremer = [rel_of(f.name) for f in TABLES if 'reference' not in f.name]
    return {'servers': [
        {'name': 'erddap.ifremer.fr', 'url': hosts['erddap.ifremer.fr'], 'catalogue': True,
         'datasets': ['ArgoFloats', 'ArgoFloats-reference', 'ArgoFloats-synthetic-BGC'],
         'requests': ifremer + [reference, rel_of('ifremer_tabledap_ArgoFloats_6902746_c34.nc')]},
        {'name': 'coastwatch.pfeg.noaa.gov', 'url': hosts['coastwatch.pfeg.noaa.gov'],
         'requests': [gebco]},
        {'name': 'gliders.ioos.us', 'url': hosts['gliders.ioos.us'],
         'requests': [rel_of(GLIDER.name)]},
        {'name': 'standards.sensors.ioos.us', 'url': hosts['standards.sensors.ioos.us'],
         'datasets': ['org_cormp_cap2'], 'requests': [rel_of('error_400_bad_constraint.txt')]},
        {'name': 'erddap.sensors.ioos.us', 'url': hosts['erddap.sensors.ioos.us'],
         'search': '"incredibly_long_string_that_should_never_match_a_real_dataset" '}]}


def dump(db_url: str) -> dict:
    eng = store.engine(db_url)
    G, C, O = store.GRANULE, store.COLLECTION, store.OBSERVATION
    with eng.connect() as conn:
        return {
            'granules': {r.id: (r.collection, r.checksum, r.minx, r.miny, r.maxx, r.maxy,
                                r.tmin, r.tmax, r.n_obs) for r in conn.execute(sa.select(G))},
            'collections': {r.id: (r.title, r.minx, r.maxy, r.tmin, r.keywords)
                            for r in conn.execute(sa.select(C))},
            'observations': {r.id: (r.lon, r.lat, r.time, {    # the link names the server
                k: v for k, v in json.loads(r.props).items() if k != 'dataset_url'})
                for r in conn.execute(sa.select(O))}}


@pytest.fixture(scope='module')
def mirror_db(tmp_path_factory, bdi_data):
    url = f"sqlite:///{tmp_path_factory.mktemp('erd')}/index.sqlite"
    rep = harvest_one(store.engine(url), ErddapConnector(), MirrorSource(ERD))
    return url, rep


# --- reading ---------------------------------------------------------------------------------
@pytest.mark.parametrize('path', TABLES, ids=lambda p: p.stem)
def test_tabledap_rows_are_features_with_the_file_values(path):
    c = ErddapConnector()
    c._datasets = {}
    req = parse_request(rel_of(path.name))
    from providers.base import GranuleRef
    ref = GranuleRef('g', uri_of(path.name), 'c', meta=dict(
        req, server='s', server_url='https://erddap.ifremer.fr/erddap/', dataset_collection='x'))
    got = c.read(ref, path.read_bytes())
    with xr.open_dataset(path) as ds:
        assert len(got.observations) == ds.sizes['row']
        for i, o in enumerate(got.observations):
            assert (o['lon'], o['lat']) == (float(ds.longitude[i]), float(ds.latitude[i]))
            assert o['time'] == str(ds.time[i].values.astype('datetime64[s]')) + 'Z'
            assert o['platform'] == str(ds.platform_number[i].values)
            for name in ('pres', 'temp', 'psal', 'temp_qc', 'doxy'):
                if name not in ds:
                    continue
                want = ds[name][i].values.item()
                if isinstance(want, float) and np.isnan(want):
                    assert o['props'][name] is None
                else:
                    assert o['props'][name] == pytest.approx(want) if isinstance(want, float) \
                        else o['props'][name] == want
        assert got.record['tmin'] == ds.attrs['time_coverage_start']
        assert got.record['tmax'] == ds.attrs['time_coverage_end']
        assert got.record['minx'] == pytest.approx(float(ds.longitude.min()))


def test_csvp_without_positions_is_a_granule_boxed_by_its_constraints(mirror_db):
    frame = pd.read_csv(GLIDER)
    url, _ = mirror_db
    with store.engine(url).connect() as conn:
        g = conn.execute(sa.select(store.GRANULE).where(
            store.GRANULE.c.type == 'tabledap-csvp')).mappings().one()
    extra = json.loads(g['extra'])
    assert extra['rows'] == len(frame) and g['n_obs'] == 0 and 'no latitude' in extra['note']
    t = pd.to_datetime(frame['time (UTC)'])
    assert (g['tmin'], g['tmax']) == (t.min().strftime('%Y-%m-%dT%H:%M:%SZ'),
                                      t.max().strftime('%Y-%m-%dT%H:%M:%SZ'))
    assert (g['minx'], g['miny'], g['maxx'], g['maxy']) == (-76, 36, -73, 38)   # the request's box
    assert g['parameters'] == 'temperature'


def test_error_bodies_give_erddaps_message():
    bad = error_message(400, (ERD / 'error_400_bad_constraint.txt').read_bytes())
    assert bad.status == 400 and 'Unrecognized constraint variable="time%3E"' in bad.message
    none = error_message(404, (ERD / 'error_404_search_no_results.txt').read_bytes())
    assert no_results(none) and not no_results(bad)


def test_request_builders_make_the_recorded_requests():
    """Built from parts, the tabledap and griddap requests are the ones recorded live."""
    cfg = live_config({h: 'x' for h in ('erddap.ifremer.fr', 'coastwatch.pfeg.noaa.gov',
                                        'gliders.ioos.us', 'standards.sensors.ioos.us',
                                        'erddap.sensors.ioos.us')})
    ref, gebco = cfg['servers'][0]['requests'][-2], cfg['servers'][1]['requests'][0]
    assert tabledap_request(**{k: v for k, v in ref.items() if k != 'dataset'},
                            dataset=ref['dataset']) == \
        rel_of('ifremer_tabledap_ArgoFloats-reference_box.nc')
    assert griddap_request(gebco['dataset'], gebco['griddap'], gebco['ranges'],
                           gebco['stride']) == rel_of(GEBCO.name)
    from datetime import date
    iso = tabledap_request('ArgoFloats', ['temp'], time=[date(2004, 1, 1), '..'], fmt='csv')
    assert iso == 'tabledap/ArgoFloats.csv?temp&time>=2004-01-01T00:00:00Z'


# --- harvest -----------------------------------------------------------------------------------
def test_mirror_harvest_report_and_level1_records(mirror_db):
    url, rep = mirror_db
    reasons = {s['granule']: s['reason'] for s in rep['skipped']}
    assert reasons[uri_of('error_400_bad_constraint.txt')] == \
        'ERDDAP 400: Bad Request: Query error: Unrecognized constraint variable="time%3E".'
    assert reasons[uri_of('ifremer_tabledap_ArgoFloats_6902746_c34.nc')] == \
        'not found at the source'
    assert len(reasons) == 2 and 'error' not in rep    # the 404 search is just empty
    assert rep['observations'] == len(rows_on_disk())
    listing = json.loads((ERD / 'ifremer_info_index.json').read_text())['table']
    ids = [r[listing['columnNames'].index('Dataset ID')] for r in listing['rows']]
    with store.engine(url).connect() as conn:
        colls = {r['id']: r for r in conn.execute(sa.select(store.COLLECTION)).mappings()}
    assert {f'erddap-erddap.ifremer.fr-{i}' for i in ids if i != 'allDatasets'} <= set(colls)
    assert not any('sensors.ioos.us-' in c and 'org_cormp_cap2' not in c for c in colls)
    # the dataset's extent is its actual_range (Argo's -99.999 fill latitude clipped)
    info = pd.DataFrame(**{k: v for k, v in zip(('data', 'columns'), (
        lambda t: (t['rows'], t['columnNames']))(json.loads(
            (ERD / 'ifremer_info_ArgoFloats-reference_index.json').read_text())['table']))})
    rng = {r['Variable Name']: [float(v) for v in r['Value'].split(',')]
           for _, r in info[info['Attribute Name'] == 'actual_range'].iterrows()}
    ref = colls['erddap-erddap.ifremer.fr-ArgoFloats-reference']
    assert [ref['minx'], ref['maxx'], ref['miny'], ref['maxy']] == \
        rng['longitude'] + rng['latitude']
    assert ref['tmin'] == pd.Timestamp(rng['time'][0], unit='s').strftime('%Y-%m-%dT%H:%M:%SZ')
    assert 'ptmp' in ref['keywords'].split(',') and 'redistributed' in ref['license']
    assert colls['erddap-erddap.ifremer.fr-ArgoFloats']['miny'] == -90
    # the subsets collection has the extent of the data held here
    with xr.open_dataset(ERD / 'ifremer_tabledap_ArgoFloats-reference_box.nc') as ds:
        sub = colls['erddap-erddap.ifremer.fr-ArgoFloats-reference-subsets']
        assert sub['minx'] == pytest.approx(float(ds.longitude.min()))
        assert sub['maxy'] == pytest.approx(float(ds.latitude.max()))
    cap2 = colls['erddap-standards.sensors.ioos.us-org_cormp_cap2']    # info as CSV
    csv_info = pd.read_csv(ERD / 'ioos_info_org_cormp_cap2_index.csv')
    title = csv_info[(csv_info['Variable Name'] == 'NC_GLOBAL') &
                     (csv_info['Attribute Name'] == 'title')]['Value'].item()
    assert cap2['title'] == title and '\\n' not in cap2['license']


def test_live_http_harvest_equals_mirror_harvest(mirror_db, live_hosts, tmp_path):
    url, mrep = mirror_db
    live = f'sqlite:///{tmp_path}/live.sqlite'
    conf = live_config(live_hosts)
    rep = harvest_one(store.engine(live), ErddapConnector(conf),
                      HttpSource(live_hosts['erddap.ifremer.fr']))
    assert 'error' not in rep and rep['added'] == mrep['added'] == 5
    assert sorted(s['reason'] for s in rep['skipped']) == \
        sorted(s['reason'] for s in mrep['skipped'])
    a, b = dump(url), dump(live)
    assert a['granules'] == b['granules']
    assert a['observations'] == b['observations']
    assert a['collections'] == b['collections']
    again = harvest_one(store.engine(live), ErddapConnector(conf),
                        HttpSource(live_hosts['erddap.ifremer.fr']))
    assert (again['unchanged'], again['added'], again['updated']) == (5, 0, 0)


def test_live_error_answers_are_reported_with_erddaps_message(live_hosts, tmp_path):
    conf = {'servers': [{'url': live_hosts['standards.sensors.ioos.us'],
                         'requests': [rel_of('error_400_bad_constraint.txt')]},
                        {'url': live_hosts['erddap.sensors.ioos.us'], 'search': 'nothing'}]}
    rep = harvest_one(store.engine(f'sqlite:///{tmp_path}/e.sqlite'), ErddapConnector(conf),
                      HttpSource(live_hosts['erddap.sensors.ioos.us']))
    (bad,) = rep['skipped'][-1:]
    assert 'Unrecognized constraint variable' in bad['reason']
    # an unrecorded search is a plain 404 (not ERDDAP's "no results"): a listing problem
    assert any('search/index.csv' in s['granule'] for s in rep['skipped'])


# --- served ------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def server(tmp_path_factory, bdi_data):
    home = tmp_path_factory.mktemp('erddap') / 'home'
    home.mkdir(parents=True)
    report = run_harvest(home, 'erddap', '--mirror', str(bdi_data))
    with start_server(home, extra_env={'VRE_BDI_MIRROR': str(bdi_data)}) as s:
        s.harvest_report = report
        yield s


def test_features_are_the_rows_of_the_tabledap_files(server):
    with xr.open_dataset(BOX) as ds:
        frame = ds.to_dataframe()
    got = get(server, '/collections/erddap-observations/items', dataset='ArgoFloats',
              limit=1000)
    assert got['numberMatched'] == len(frame) == len(got['features'])
    for f in got['features']:
        row = frame.iloc[int(f['id'].rsplit('-', 1)[1])]
        p = f['properties']
        assert f['geometry']['coordinates'] == pytest.approx([row.longitude, row.latitude])
        assert p['time'] == row.time.strftime('%Y-%m-%dT%H:%M:%SZ')
        assert (p['platform_number'], p['temp_qc'], p['psal_qc']) == \
            (row.platform_number, row.temp_qc, row.psal_qc)
        for name in ('pres', 'temp', 'psal', 'temp_adjusted'):
            assert (p[name] is None and np.isnan(row[name])) or p[name] == pytest.approx(row[name])
        assert p['depth'] == pytest.approx(row.pres) and p['cycle'] == int(row.cycle_number)


def test_bbox_datetime_and_parameter_select_rows(server):
    rows = rows_on_disk()
    pick = rows[(rows.longitude.between(-20, -16)) & (rows.latitude.between(0, 1)) &
                (rows.time >= '2004-01-10') & (rows.time <= '2004-01-31')]
    got = get(server, '/collections/erddap-observations/items', bbox='-20,0,-16,1',
              datetime='2004-01-10T00:00:00Z/2004-01-31T00:00:00Z', limit=1000)
    assert 0 < got['numberMatched'] == len(pick) < len(rows)
    with xr.open_dataset(ERD / 'ifremer_tabledap_ArgoFloats-synthetic-BGC_5903248_c34.nc') as ds:
        n = ds.sizes['row']
    assert get(server, '/collections/erddap-observations/items', parameter='doxy',
               limit=1)['numberMatched'] == n


def test_level2_records_and_level1_search(server):
    recs = get(server, '/collections/erddap-granules/items', limit=100)
    assert recs['numberMatched'] == 5
    grid = next(r for r in recs['features'] if r['properties']['type'] == 'griddap-nc')
    with xr.open_dataset(GEBCO) as ds:
        ring = np.array(grid['geometry']['coordinates'][0])
        assert [*ring.min(axis=0), *ring.max(axis=0)] == pytest.approx(
            [float(ds.longitude.min()), float(ds.latitude.min()), float(ds.longitude.max()),
             float(ds.latitude.max())])
    assert grid['links'][0]['href'] == uri_of(GEBCO.name)
    l1 = get(server, '/collections/bdi-collections/items', q='Argo Reference', limit=100)
    ids = {f['id'] for f in l1['features']}
    assert 'erddap-erddap.ifremer.fr-ArgoFloats-reference' in ids
    south = get(server, '/collections/bdi-collections/items', bdi='erddap',
                bbox='160,-58,163,-56', limit=200)
    assert 'erddap-erddap.ifremer.fr-ArgoFloats-synthetic-BGC-subsets' in \
        {f['id'] for f in south['features']}
    assert 'erddap-erddap.ifremer.fr-ArgoFloats-reference-subsets' not in \
        {f['id'] for f in south['features']}


@pytest.mark.parametrize('params,status', [
    ({'bbox': '1,2'}, 400), ({'datetime': 'not-a-date'}, 400), ({'limit': 'x'}, 400)])
def test_bad_input_is_a_problem_json_4xx(server, params, status):
    r = requests.get(f'{server.url}/collections/erddap-observations/items', params=params,
                     timeout=30)
    assert r.status_code == status, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    r = requests.get(f'{server.url}/collections/erddap-observations/items/nosuch', timeout=30)
    assert r.status_code == 404


def test_one_coherent_erddap_row_with_the_grid_and_a_second_harvest(server, bdi_data):
    def row():
        table = get(server, '/bdis', f='json')['bdis']
        (erd,) = [b for b in table if b['name'] == 'erddap']
        return erd
    erd = row()
    colls = {c['id']: c for c in erd['collections']}
    assert colls['bathymetry-gebco-2020']['available'] is True
    assert erd['granules'] == 5 and erd['health']['skipped'] == 2
    assert erd['title'] == ErddapConnector.title and erd['last_harvest']
    assert 'skipped' in erd['health']['last_error'] and erd['health']['reachable'] is True
    again = run_harvest(server.home, 'erddap', '--mirror', str(bdi_data))   # server running
    assert again['erddap']['unchanged'] == 5
    assert 'bathymetry-gebco-2020' in {c['id'] for c in row()['collections']}
    l1 = get(server, '/collections/bdi-collections/items', q='bathymetry', limit=100)
    assert 'bathymetry-gebco-2020' in {f['id'] for f in l1['features']}
    cov = get(server, '/collections/bathymetry-gebco-2020/coverage', bbox='90,-60,90.5,-59.5')
    with xr.open_dataset(GEBCO) as ds:
        want = ds.elevation.sel(latitude=slice(-60, -59.5), longitude=slice(90, 90.5))
    np.testing.assert_array_equal(np.array(cov['ranges']['elevation']['values'], dtype='f4'),
                                  want.values.ravel())


def test_gdal_and_owslib_read_the_collections(server):
    from owslib.ogcapi.features import Features
    from owslib.ogcapi.records import Records
    n = len(rows_on_disk())
    feats = Features(server.url).collection_items('erddap-observations', limit=1000)
    assert len(feats['features']) == n
    assert {f['properties']['platform_number'] for f in feats['features']} >= {'5903248'}
    recs = Records(server.url).collection_items('erddap-granules', limit=10)
    assert len(recs['features']) == 5
    ogrinfo = shutil.which('ogrinfo')
    if ogrinfo is None:
        pytest.skip('gdal-bin not installed (apt-get install gdal-bin)')
    out = subprocess.run([ogrinfo, '-ro', '-so', '-al',
                          f'OAPIF:{server.url}/collections/erddap-observations'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f'Feature Count: {n}' in out.stdout
    assert 'temp_qc: String' in out.stdout and 'temp: Real' in out.stdout


# --- live pass-through (providers.erddap.TabledapFeatures) -----------------------------------
LIVE_BLOCK = """resources:
  erddap-live-reference:
    type: collection
    title: Argo reference data (live from ERDDAP)
    description: test collection answered live by a tabledap dataset
    keywords: [ERDDAP]
    links: []
    extents:
      spatial: {{bbox: [-180, -90, 180, 90], crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84}}
    providers:
      - type: feature
        name: providers.erddap.TabledapFeatures
        data: {data}
        id_field: id
        time_field: time
        options:
          variables: [cycle_number, latitude, longitude, platform_number, pres, psal, ptmp, temp, time]
          constraints: {{pres: [0, 10.0]}}
          extra: ['latitude!=NaN', 'longitude!=NaN', 'distinct()', 'orderBy("time,pres")']
  erddap-live-down:
    type: collection
    title: an ERDDAP that does not answer
    description: test collection whose server is down
    keywords: [ERDDAP]
    links: []
    extents:
      spatial: {{bbox: [-180, -90, 180, 90], crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84}}
    providers:
      - type: feature
        name: providers.erddap.TabledapFeatures
        data: {down}
        id_field: id
        options: {{timeout: 5, variables: [latitude, longitude, time]}}
"""


@pytest.fixture(scope='module')
def live_server(tmp_path_factory, live_hosts):
    from serverkit import config_with, free_port
    home = tmp_path_factory.mktemp('erdlive') / 'home'
    home.mkdir(parents=True)
    block = LIVE_BLOCK.format(
        data=live_hosts['erddap.ifremer.fr'] + 'tabledap/ArgoFloats-reference',
        down=f'http://127.0.0.1:{free_port()}/erddap/tabledap/nothing')
    with start_server(home, config_path=config_with(home, block)) as s:
        yield s


def test_live_pass_through_sends_the_recorded_request_and_pages(live_server):
    """bbox + datetime make exactly the request argopy recorded; the answer is paged."""
    url = f'{live_server.url}/collections/erddap-live-reference/items'
    q = {'bbox': '-25,36,-10,40', 'datetime': '2018-01-01T00:00:00Z/2019-01-01T00:00:00Z'}
    with xr.open_dataset(ERD / 'ifremer_tabledap_ArgoFloats-reference_box.nc') as ds:
        frame = ds.to_dataframe().reset_index(drop=True)
    # one connection, so one web worker: a row is found by id in the answers its process holds
    http = requests.Session()
    first = http.get(url, params={**q, 'limit': 100}, timeout=60).json()
    second = http.get(url, params={**q, 'limit': 200, 'offset': 100}, timeout=60).json()
    assert first['numberMatched'] == second['numberMatched'] == len(frame)
    feats = first['features'] + second['features']
    assert len(feats) == len(frame) and len({f['id'] for f in feats}) == len(frame)
    for f, (_, row) in zip(feats, frame.iterrows()):
        assert f['geometry']['coordinates'] == pytest.approx([row.longitude, row.latitude])
        assert f['properties']['temp'] == pytest.approx(row.temp)
        assert f['properties']['time'] == row.time.strftime('%Y-%m-%dT%H:%M:%SZ')
    one = http.get(f"{url}/{feats[5]['id']}", timeout=30)
    assert one.status_code == 200 and one.json()['properties'] == feats[5]['properties']
    from owslib.ogcapi.features import Features
    got = Features(live_server.url).collection_items(
        'erddap-live-reference', limit=10, bbox=[-25, 36, -10, 40], datetime=q['datetime'])
    assert [f['id'] for f in got['features']] == [f['id'] for f in feats[:10]]


def test_live_pass_through_errors_are_problem_json(live_server):
    base = f'{live_server.url}/collections'
    for path, params, status in (
            ('erddap-live-reference/items', {'bbox': '1,2'}, 400),
            ('erddap-live-reference/items', {'sortby': 'temp'}, 400),
            # a request the server does not know: a plain 404 upstream, not "no results"
            ('erddap-live-reference/items', {'bbox': '0,0,1,1'}, 502),
            ('erddap-live-down/items', {}, 502)):
        r = requests.get(f'{base}/{path}', params=params, timeout=60)
        assert r.status_code == status, r.text
        assert r.headers['Content-Type'].startswith('application/problem+json')
        assert r.json()['detail']
