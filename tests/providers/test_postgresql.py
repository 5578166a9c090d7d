"""The BDI index on PostgreSQL: the same harvest of the mirror into a private PostgreSQL server and into
SQLite must give the same answers through a real `vre serve` (Features, Records, EDR).

With PostGIS installed (Debian: postgresql-15-postgis-3) the index creates the extension and
answers bbox and CQL2 spatial filters from a GiST-indexed geometry column; the fallback (plain
lon/lat and box columns) is what a role without the right to create the extension gets: a
second database, owned by a plain login role, is harvested and served too, and must give the
same answers. PostGIS is not a trusted extension, so only a superuser can create it.

The server is a throw-away cluster (initdb in a temporary folder, loopback port, sockets in that
folder); the test skips only when the PostgreSQL binaries are not installed
(Debian: apt-get install -y --no-install-recommends postgresql)."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa

from bdi_samples import run_harvest
from serverkit import start_server

from providers import store

SPATIAL = [   # (collection, CQL text filter) answered by PostGIS, by SQLite and by the fallback
    ('argo-profiles', 'INTERSECTS(geometry, POLYGON((-17 53.5, -15 54, -15.5 56, -17 53.5)))'),
    ('argo-profiles', 'WITHIN(geometry, MULTIPOLYGON(((-17 53.5, -15 54, -15.5 56, -17 53.5)),'
                      '((4.9 -6.6, 5.1 -6.6, 5 -6.4, 4.9 -6.6))))'),
    ('argo-profiles', 'DISJOINT(geometry, POLYGON((-17 53.5, -15 54, -15.5 56, -17 53.5)))'),
    ('argo-profiles', 'INTERSECTS(geometry, LINESTRING(-16.492245 53.67167166666667, -10 60))'),
    ('argo-profiles', 'BBOX(geometry, -16.6, 54, -15.9, 56)'),
    ('obis-occurrences', 'INTERSECTS(geometry, POLYGON((-180 -70, 0 -70, 0 0, -90 60, '
                         '-180 -70)))'),
    ('obis-occurrences', "WITHIN(geometry, POLYGON((0 -70, 180 -70, 180 70, 0 -70))) AND "
                         "scientificName LIKE 'A%'"),
    ('bdi-collections', 'INTERSECTS(geometry, LINESTRING(2.5 51.2, 42.5 21.2, 47.5 41.2))'),
    ('bdi-collections', 'CONTAINS(geometry, POINT(2.6 51.2))'),
    ('bdi-collections', 'WITHIN(geometry, POLYGON((-20 30, 40 30, 40 70, -20 70, -20 30)))'),
    ('argo-granules', 'INTERSECTS(geometry, POLYGON((4 -7, 6 -7, 5 -6, 4 -7)))'),
]


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


def _post(server, path, body, **params):
    r = requests.post(f'{server.url}{path}', params=params, json=body, timeout=60,
                      headers={'Content-Type': 'application/query-cql-json'})
    return r.status_code, r.json()


def _same(servers, path, _body=None, **params):
    """The answer of both servers, checked equal but for the time it was made."""
    (sp, pg), (sl, lite) = (_post(s, path, _body, **params) if _body else
                            _get(s, path, **params) for s in servers)
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


@pytest.fixture(scope='module')
def postgis(pg_url):
    """Skips when this PostgreSQL has no PostGIS files (Debian: postgresql-15-postgis-3)."""
    eng = sa.create_engine(pg_url)
    with eng.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").first()
    eng.dispose()
    if not found:
        pytest.skip('PostGIS not installed (apt-get install postgresql-15-postgis-3)')


def _column_type(conn, table):
    return conn.execute(sa.text(
        'SELECT type, srid FROM geometry_columns WHERE f_table_name = :t AND '
        "f_geometry_column = 'geom'"), {'t': table}).first()


def test_postgis_geometry_column_and_gist_index(postgis, servers, pg_url):
    """The served database has PostGIS, a geom column per table filled from the row's own
    columns (a point per observation, the box - or the point or line it collapses to - of a
    granule or collection) and a GiST index on it."""
    eng = sa.create_engine(pg_url)
    with eng.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first()
        assert tuple(_column_type(conn, 'observation')) == ('POINT', 4326)
        for table in ('granule', 'collection'):
            assert tuple(_column_type(conn, table)) == ('GEOMETRY', 4326)
        for table in ('observation', 'granule', 'collection'):
            idx = conn.execute(sa.text('SELECT indexdef FROM pg_indexes WHERE tablename = :t '
                                       "AND indexdef LIKE '%USING gist (geom)%'"),
                               {'t': table}).all()
            assert len(idx) == 1, table
        n, bad = conn.execute(sa.text(
            'SELECT count(*), count(*) FILTER (WHERE geom IS NULL OR ST_X(geom) <> lon OR '
            'ST_Y(geom) <> lat) FROM observation WHERE lon IS NOT NULL')).one()
        assert n > 0 and bad == 0
        assert conn.execute(sa.text('SELECT count(*) FROM observation WHERE lon IS NULL AND '
                                    'geom IS NOT NULL')).scalar_one() == 0
        for table in ('granule', 'collection'):
            n, bad = conn.execute(sa.text(
                f'SELECT count(*), count(*) FILTER (WHERE geom IS NULL OR ST_XMin(geom) <> minx '
                f'OR ST_YMin(geom) <> miny OR ST_XMax(geom) <> maxx OR ST_YMax(geom) <> maxy) '
                f'FROM {table} WHERE minx IS NOT NULL')).one()
            assert n > 0 and bad == 0, table
    eng.dispose()


@pytest.mark.parametrize('coll,cql', SPATIAL)
def test_spatial_filters_agree(servers, coll, cql):
    got = _same(servers, f'/collections/{coll}/items', limit=1000, f='json', filter=cql)
    assert got['numberMatched'] == len(got['features']) > 0


def test_cql2_json_and_paging_agree(servers):
    body = {'op': 's_intersects', 'args': [{'property': 'geometry'}, {
        'type': 'Polygon', 'coordinates': [[[-180, -70], [0, -70], [0, 0], [-90, 60],
                                            [-180, -70]]]}]}
    full = _same(servers, '/collections/obis-occurrences/items', body, limit=1000, f='json')
    assert full['numberMatched'] == len(full['features']) > 4
    page = _same(servers, '/collections/obis-occurrences/items', body, limit=3, offset=2,
                 f='json')
    assert page['numberMatched'] == full['numberMatched']
    assert page['features'] == full['features'][2:5]


def test_bbox_on_observations_uses_the_gist_index(postgis, servers, pg_url):
    """EXPLAIN of the Features query for a bbox: the planner picks the GiST index. The mirror is
    small, so a sequential scan is as cheap; it is disabled for this session (enable_seqscan off
    still lets the planner pick any index, and a B-tree on lon/lat would also do)."""
    from providers.index import IndexFeatures
    p = IndexFeatures({'name': 'argo-profiles', 'type': 'feature', 'data': pg_url,
                       'options': {'bdi': 'argo'}})
    assert p.postgis
    where = p._where([-16.6, 54, -15.9, 56], None, [], None, None)
    sql = sa.select(store.OBSERVATION).where(where).compile(
        p.engine, compile_kwargs={'literal_binds': True})
    with p.engine.connect() as conn:
        conn.exec_driver_sql('ANALYZE observation')
        conn.exec_driver_sql('SET enable_seqscan = off')
        plan = '\n'.join(r[0] for r in conn.exec_driver_sql(f'EXPLAIN {sql}'))
        got = conn.execute(sa.select(store.OBSERVATION.c.id).where(where)).all()
    assert 'ix_observation_geom' in plan, plan
    assert 'st_intersects' in plan.lower() or '&&' in plan, plan
    assert got


# --- the fallback: a role that may not create the extension ---

def _admin(pg_url, sql):
    eng = sa.create_engine(pg_url, isolation_level='AUTOCOMMIT')
    with eng.connect() as conn:
        conn.exec_driver_sql(sql)
    eng.dispose()


@pytest.fixture(scope='module')
def plain_url(pg_url):
    """A database owned by a plain login role (no superuser): CREATE EXTENSION postgis fails."""
    _admin(pg_url, 'CREATE ROLE vre_plain LOGIN NOSUPERUSER NOCREATEDB')
    _admin(pg_url, 'CREATE DATABASE vre_plain OWNER vre_plain')
    return pg_url.replace('//vre@', '//vre_plain@').rsplit('/', 1)[0] + '/vre_plain'


@pytest.fixture(scope='module')
def plain(tmp_path_factory, bdi_data, plain_url, servers):
    home = tmp_path_factory.mktemp('plain') / 'home'
    env = {'VRE_INDEX_DB': plain_url}
    run_harvest(home, '--mirror', str(bdi_data), extra_env=env)
    with start_server(home, extra_env=env) as server:
        yield server


def test_fallback_without_rights_keeps_plain_columns(postgis, plain_url, caplog):
    with caplog.at_level(logging.WARNING, logger='providers.store'):
        eng = store.engine(plain_url)
    assert not store.has_postgis(eng)
    assert any('without PostGIS' in r.getMessage() and 'permission denied' in r.getMessage()
               for r in caplog.records), caplog.text
    with eng.connect() as conn:
        assert not conn.exec_driver_sql(
            "SELECT 1 FROM pg_extension WHERE extname = 'postgis'").first()
        cols = {c['name'] for c in sa.inspect(conn).get_columns('observation')}
    assert 'geom' not in cols and {'lon', 'lat'} <= cols


@pytest.mark.parametrize('coll,cql', SPATIAL)
def test_fallback_answers_agree(plain, servers, coll, cql):
    got = _same((plain, servers[1]), f'/collections/{coll}/items', limit=1000, f='json',
                filter=cql)
    assert got['numberMatched'] == len(got['features']) > 0


@pytest.mark.parametrize('coll,bbox', [('argo-profiles', '-20,50,-10,60'),
                                       ('bdi-collections', '0,50,5,52')])
def test_fallback_bbox_agrees(plain, servers, coll, bbox):
    got = _same((plain, servers[1]), f'/collections/{coll}/items', limit=1000, f='json',
                bbox=bbox)
    assert got['numberMatched'] == len(got['features']) > 0


def test_rows_written_before_postgis_get_their_geometry(postgis, pg_url, bdi_data):
    """A database harvested without PostGIS, then given the extension by an administrator: the
    next start adds the geom columns, filled for the rows already there."""
    from providers.argo import ArgoConnector
    from providers.base import MirrorSource
    from providers.harvest import harvest_one
    _admin(pg_url, 'CREATE DATABASE vre_later OWNER vre_plain')
    url = pg_url.replace('//vre@', '//vre_plain@').rsplit('/', 1)[0] + '/vre_later'
    eng = store.engine(url)
    assert not store.has_postgis(eng)
    harvest_one(eng, ArgoConnector(), MirrorSource(bdi_data / 'argo'))
    eng.dispose()
    _admin(pg_url.rsplit('/', 1)[0] + '/vre_later', 'CREATE EXTENSION postgis')
    code = ('import sys; from providers import store; '
            'print(store.has_postgis(store.engine(sys.argv[1])))')
    out = subprocess.run([sys.executable, '-c', code, url], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == 'True', out.stderr
    check = sa.create_engine(url)
    with check.connect() as conn:
        n, filled = conn.execute(sa.text(
            'SELECT count(*), count(*) FILTER (WHERE ST_X(geom) = lon AND ST_Y(geom) = lat) '
            'FROM observation')).one()
    check.dispose()
    assert n > 0 and filled == n
