"""The BDI index on PostgreSQL: the same harvest of the mirror into a private PostgreSQL server and into
SQLite must give the same answers through a real `vre serve` (Features, Records, EDR).

The server is a throw-away cluster (initdb in a temporary folder, loopback port, sockets in that
folder); the test skips only when the PostgreSQL binaries are not installed
(Debian: apt-get install -y --no-install-recommends postgresql)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa

from bdi_samples import run_harvest
from serverkit import start_server


@pytest.fixture(scope='session')
def pg_url(postgres):
    """SQLAlchemy URL of an empty database on the private PostgreSQL server."""
    return postgres('vre_index')


@pytest.fixture(scope='module')
def servers(tmp_path_factory, bdi_data, pg_url):
    """(PostgreSQL-backed server, SQLite-backed server), both harvested from the mirror."""
    pytest.importorskip('psycopg', reason="pip install 'psycopg[binary]'")
    base = tmp_path_factory.mktemp('pg')
    pg_home, lite_home = base / 'pg', base / 'lite'
    pg_env = {'VRE_INDEX_DB': pg_url}
    reports = [run_harvest(pg_home, '--mirror', str(bdi_data), extra_env=pg_env),
               run_harvest(lite_home, '--mirror', str(bdi_data))]
    with start_server(pg_home, extra_env=pg_env) as pg, start_server(lite_home) as lite:
        pg.harvest_report, lite.harvest_report = reports
        yield pg, lite


def _get(server, path, **params):
    r = requests.get(f'{server.url}{path}', params=params, timeout=60)
    return r.status_code, r.json()


def _same(servers, path, **params):
    """The answer of both servers, checked equal but for the time it was made."""
    (sp, pg), (sl, lite) = (_get(s, path, **params) for s in servers)
    assert sp == sl == 200, (pg, lite)
    for body in (pg, lite):
        body.pop('timeStamp', None)
        body.pop('links', None)
    assert pg == lite
    return pg


@pytest.mark.parametrize('bdi', ['argo', 'seadatanet', 'obis', 'eurobis'])
def test_harvest_reports_agree(servers, pg_url, bdi):
    pg, lite = (s.harvest_report[bdi] for s in servers)
    assert pg['added'] == lite['added'] > 0
    assert pg['observations'] == lite['observations'] > 0
    assert pg['skipped'] == lite['skipped']
    eng = sa.create_engine(pg_url)    # the rows are in PostgreSQL, not in a stray SQLite file
    with eng.connect() as conn:
        n = conn.execute(sa.text('SELECT count(*) FROM granule WHERE bdi = :b'), {'b': bdi})
        assert n.scalar_one() == pg['added']
    eng.dispose()
    assert not (servers[0].home / 'index.sqlite').exists()


@pytest.mark.parametrize('params', [
    {'bbox': '-20,50,-10,60', 'datetime': '2018-03-01T00:00:00Z/..'},
    {'bbox': '4,-7,6,-6'},
    {'datetime': '2018-03-15/2018-03-19'},
    {'datetime': '../2018-03-01T00:00:00Z', 'sortby': '-time'},
    {'filter': "platform_number = '3902131' AND file_type = 'synthetic'"},
    {'parameters': 'DOXY', 'sortby': 'platform_number'},
])
def test_features_answers_agree(servers, params):
    got = _same(servers, '/collections/argo-profiles/items', limit=1000, f='json', **params)
    assert got['numberMatched'] == len(got['features']) > 0


@pytest.mark.parametrize('coll,params', [
    ('seadatanet-observations', {'bbox': '-10,35,30,60', 'sortby': 'time'}),
    ('seadatanet-observations', {'datetime': '2000-01-01/..', 'featureType': 'profile'}),
    ('obis-occurrences', {'aphiaID': '141433'}),
    ('eurobis-occurrences', {'scientificName': 'Melanitta nigra', 'bbox': '-10,45,15,65'}),
])
def test_other_bdis_agree(servers, coll, params):
    got = _same(servers, f'/collections/{coll}/items', limit=1000, f='json', **params)
    assert got['numberMatched'] == len(got['features']) > 0


def test_paging_and_hits_agree(servers):
    page = _same(servers, '/collections/argo-profiles/items', limit=7, offset=11,
                 sortby='-time', f='json')
    assert page['numberReturned'] == 7 and page['numberMatched'] > 18
    hits = _same(servers, '/collections/argo-profiles/items', resulttype='hits', f='json')
    assert hits['numberMatched'] == page['numberMatched']


@pytest.mark.parametrize('coll,params', [
    ('bdi-collections', {'q': 'oxygen'}),
    ('bdi-collections', {'bbox': '-180,-90,180,90', 'datetime': '2018-01-01/..'}),
    ('argo-granules', {'platform': '6901929'}),
    ('argo-granules', {'parameter': 'DOXY', 'datetime': '2018-03-01/2018-03-31'}),
    ('argo-granules', {'q': 'core', 'bbox': '-20,50,-10,60'}),
])
def test_records_search_agrees(servers, coll, params):
    got = _same(servers, f'/collections/{coll}/items', limit=1000, f='json', **params)
    assert got['numberMatched'] == len(got['features']) > 0


@pytest.mark.parametrize('query,params', [
    ('position', {'coords': 'POINT(5.0 -6.5)', 'parameter-name': 'TEMP'}),
    ('position', {'coords': 'POINT(-15 55)', 'datetime': '2018-03-01T00:00:00Z/..'}),
    ('cube', {'bbox': '4,-7,6,-6', 'z': '0/50', 'parameter-name': 'DOXY'}),
    ('area', {'coords': 'POLYGON((-20 50,-10 50,-10 60,-20 60,-20 50))'}),
])
def test_edr_answers_agree(servers, query, params):
    got = _same(servers, f'/collections/argo-profiles/{query}', **params)
    assert got['coverages']


def test_bdi_table_agrees(servers):
    pg, lite = (_get(s, '/bdis', f='json')[1]['bdis'] for s in servers)
    for rows in (pg, lite):
        for r in rows:
            r.pop('last_harvest')
            r.pop('source')
    assert pg == lite and pg[0]['granules'] > 0


def test_processes_starting_at_once_on_an_empty_database(postgres):
    """Several processes creating the schema on an empty database at the same time."""
    url = postgres('vre_fresh')
    code = ('import sys; from providers import store; print("ready", flush=True); '
            'sys.stdin.readline(); store.engine(sys.argv[1])')
    procs = [subprocess.Popen([sys.executable, '-c', code, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    for p in procs:                       # all imported: let them go at once
        assert p.stdout.readline().strip() == 'ready', p.stderr.read()
    for p in procs:
        p.stdin.write('go\n')
        p.stdin.flush()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, '\n'.join(errors)[-3000:]
    eng = sa.create_engine(url)
    tables = set(sa.inspect(eng).get_table_names())
    assert {'bdi', 'collection', 'granule', 'observation'} <= tables
    eng.dispose()
