"""The BDI index: collections, granules and observations in one SQL store.

SQLite by default (an R*Tree virtual table per table for bbox, B-tree on time), PostgreSQL by
URL: with PostGIS when the database has it or lets us create it (a generated `geom` column,
EPSG:4326, with a GiST index), else plain B-tree indexes on lon/lat and the box columns.
Providers answer every query from here and never re-read source files. Engines are cached per
URL: pygeoapi builds a provider per request.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from datetime import datetime, timezone
from functools import lru_cache

import sqlalchemy as sa

LOG = logging.getLogger(__name__)

META = sa.MetaData()

def _spatial():
    return [sa.Column(n, sa.Float) for n in ('minx', 'miny', 'maxx', 'maxy')]

BDI = sa.Table(
    'bdi', META,
    sa.Column('name', sa.String(64), primary_key=True),
    sa.Column('title', sa.Text), sa.Column('kind', sa.Text), sa.Column('source', sa.Text),
    sa.Column('last_harvest', sa.String(32)), sa.Column('reachable', sa.Boolean),
    sa.Column('last_error', sa.Text), sa.Column('report', sa.Text))

COLLECTION = sa.Table(
    'collection', META,
    sa.Column('rid', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('id', sa.String(255), unique=True, nullable=False),
    sa.Column('bdi', sa.String(64), index=True),
    sa.Column('title', sa.Text), sa.Column('description', sa.Text),
    sa.Column('keywords', sa.Text), sa.Column('type', sa.String(64)),
    *_spatial(),
    sa.Column('tmin', sa.String(32), index=True), sa.Column('tmax', sa.String(32), index=True),
    sa.Column('license', sa.Text), sa.Column('citation', sa.Text),
    sa.Column('url', sa.Text), sa.Column('extra', sa.Text))

GRANULE = sa.Table(
    'granule', META,
    sa.Column('rid', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('id', sa.String(255), unique=True, nullable=False),
    sa.Column('bdi', sa.String(64), index=True),
    sa.Column('collection', sa.String(255), index=True),
    sa.Column('path', sa.Text), sa.Column('url', sa.Text), sa.Column('title', sa.Text),
    sa.Column('type', sa.String(64)),
    *_spatial(),
    sa.Column('tmin', sa.String(32), index=True), sa.Column('tmax', sa.String(32), index=True),
    sa.Column('platform', sa.String(64), index=True), sa.Column('parameters', sa.Text),
    sa.Column('data_mode', sa.String(16)), sa.Column('taxon', sa.Text), sa.Column('qc', sa.Text),
    sa.Column('license', sa.Text), sa.Column('citation', sa.Text),
    sa.Column('size', sa.BigInteger), sa.Column('mtime', sa.Float), sa.Column('etag', sa.Text),
    sa.Column('checksum', sa.String(64)), sa.Column('n_obs', sa.Integer),
    sa.Column('extra', sa.Text))

OBSERVATION = sa.Table(
    'observation', META,
    sa.Column('rid', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('id', sa.String(255), unique=True, nullable=False),
    sa.Column('bdi', sa.String(64)), sa.Column('collection', sa.String(255)),
    sa.Column('granule', sa.String(255), index=True),
    sa.Column('time', sa.String(32)), sa.Column('lon', sa.Float), sa.Column('lat', sa.Float),
    sa.Column('platform', sa.String(64)), sa.Column('cycle', sa.Integer),
    sa.Column('kind', sa.String(32)), sa.Column('data_mode', sa.String(16)),
    sa.Column('parameters', sa.Text), sa.Column('taxon', sa.Text),
    sa.Column('aphia_id', sa.Integer), sa.Column('dataset', sa.Text),
    sa.Column('depth', sa.Float), sa.Column('qc', sa.String(16)),
    sa.Column('props', sa.Text), sa.Column('levels', sa.Text),
    sa.Index('ix_obs_coll_time', 'collection', 'time'),
    sa.Index('ix_obs_time', 'time'),
    sa.Index('ix_obs_platform', 'collection', 'platform'),
    sa.Index('ix_obs_taxon', 'collection', 'taxon'),
    sa.Index('ix_obs_lonlat', 'lon', 'lat'))

ISSUE = sa.Table(
    'harvest_issue', META,
    sa.Column('rid', sa.Integer, primary_key=True, autoincrement=True),
    sa.Column('bdi', sa.String(64), index=True), sa.Column('granule', sa.Text),
    sa.Column('problem', sa.Text), sa.Column('time', sa.String(32)))

# table -> its R*Tree (SQLite only); the R*Tree id is the table's integer rid
RTREES = {'collection': 'collection_rtree', 'granule': 'granule_rtree',
          'observation': 'observation_rtree'}

_ENGINES: dict[str, sa.Engine] = {}
_POSTGIS: set[sa.Engine] = set()     # PostgreSQL engines whose tables have the geom column
_LOCK = threading.Lock()

# PostGIS: the geometry of a row, computed by PostgreSQL from the row's own columns on every
# write (a stored generated column: rows written before the column existed get it when it is
# added). A box that collapses to a point or a line becomes that point or line, as in SQLite's
# exact test (spatial_clause), so both stores give the same answers.
_ENVELOPE = ('ST_SetSRID(ST_Envelope(ST_MakeLine(ST_MakePoint({x0}, {y0}), '
             'ST_MakePoint({x1}, {y1}))), 4326)')
GEOM_SQL = {'observation': ('geometry(Point, 4326)', 'ST_SetSRID(ST_MakePoint(lon, lat), 4326)'),
            'granule': ('geometry(Geometry, 4326)',
                        _ENVELOPE.format(x0='minx', y0='miny', x1='maxx', y1='maxy')),
            'collection': ('geometry(Geometry, 4326)',
                           _ENVELOPE.format(x0='minx', y0='miny', x1='maxx', y1='maxy'))}


def engine(url: str) -> sa.Engine:
    """One engine per URL per process, schema created on first use."""
    with _LOCK:
        eng = _ENGINES.get(url)
        if eng is None:
            eng = sa.create_engine(url, future=True)
            if eng.dialect.name == 'sqlite':
                sa.event.listen(eng, 'connect', _sqlite_pragmas)
                sa.event.listen(eng, 'connect', _sqlite_functions)
            if eng.dialect.name == 'postgresql':
                with eng.begin() as conn:   # web workers, Celery and harvest may start at once
                    conn.exec_driver_sql('SELECT pg_advisory_xact_lock(72656)')
                    META.create_all(conn)
                    if _postgis(conn):
                        _POSTGIS.add(eng)
            else:
                META.create_all(eng)
            if eng.dialect.name == 'sqlite':
                with eng.begin() as conn:
                    for rtree in RTREES.values():
                        conn.exec_driver_sql(f'CREATE VIRTUAL TABLE IF NOT EXISTS {rtree} '
                                             'USING rtree(id, minx, maxx, miny, maxy)')
            _ENGINES[url] = eng
        return eng


def _postgis(conn) -> bool:
    """Make sure of PostGIS and the geom columns; False (and why, in the log) if it cannot be."""
    have = conn.exec_driver_sql(
        "SELECT 1 FROM pg_extension WHERE extname = 'postgis'").first()
    if not have:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS postgis')
        except sa.exc.DBAPIError as err:
            LOG.warning('index on PostgreSQL without PostGIS (plain lon/lat columns): %s',
                        str(err.orig).strip().splitlines()[0])
            return False
    for table, (kind, expr) in GEOM_SQL.items():
        # checked first: ALTER TABLE would wait for any running harvest even when a no-op
        if not conn.exec_driver_sql(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = %s AND column_name = 'geom'",
                (table,)).first():
            conn.exec_driver_sql(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS geom {kind} '
                                 f'GENERATED ALWAYS AS ({expr}) STORED')
        if not conn.exec_driver_sql(
                'SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND '
                'indexname = %s', (f'ix_{table}_geom',)).first():
            conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS ix_{table}_geom ON {table} '
                                 'USING gist (geom)')
    return True


def has_postgis(eng: sa.Engine) -> bool:
    return eng in _POSTGIS


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute('PRAGMA busy_timeout=30000')  # first: switching to WAL waits for a lock
    try:
        cur.execute('PRAGMA journal_mode=WAL')   # readers (the web server) go on while harvesting
    except sqlite3.OperationalError:
        pass    # another process is switching it; WAL is a property of the file
    cur.close()


def _sqlite_functions(dbapi_conn, _record):
    dbapi_conn.create_function('vre_spatial', 6, _spatial_test, deterministic=True)


@lru_cache(maxsize=64)
def _prepared(wkb: bytes):
    import shapely
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    return geom


def row_geometry(minx, miny, maxx, maxy):
    """A row's shape from its box: a point, a line when the box is flat, else the box."""
    from shapely.geometry import LineString, Point, box
    if (minx, miny) == (maxx, maxy):
        return Point(minx, miny)
    if minx == maxx or miny == maxy:
        return LineString([(minx, miny), (maxx, maxy)])
    return box(minx, miny, maxx, maxy)


def _spatial_test(pred, wkb, minx, miny, maxx, maxy):
    """SQLite function vre_spatial(predicate, query WKB, box): 1 if row `pred` query, exactly.
    (WKB, not WKT: shapely's WKT rounds the last digit of some coordinates.)"""
    if None in (minx, miny, maxx, maxy):
        return 0
    return int(getattr(row_geometry(minx, miny, maxx, maxy), pred)(_prepared(bytes(wkb))))


def is_sqlite(eng: sa.Engine) -> bool:
    return eng.dialect.name == 'sqlite'


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def dumps(value) -> str | None:
    return None if value is None else json.dumps(value, separators=(',', ':'), default=str)


def _bbox_of(row: dict):
    if 'lon' in row:
        return row.get('lon'), row.get('lon'), row.get('lat'), row.get('lat')
    return row.get('minx'), row.get('maxx'), row.get('miny'), row.get('maxy')


def upsert(conn, table: sa.Table, rows: list[dict]) -> None:
    """Replace rows by text id, keeping the R*Tree in step."""
    if not rows:
        return
    keys = [c for c in table.c.keys() if c != 'rid']
    rows = [{k: r.get(k) for k in keys} for r in rows]
    ids = [r['id'] for r in rows]
    delete(conn, table, table.c.id.in_(ids))
    conn.execute(table.insert(), rows)
    if is_sqlite(conn.engine):
        rtree = RTREES[table.name]
        got = conn.execute(sa.select(table.c.rid, table.c.id).where(table.c.id.in_(ids))).all()
        rid_of = dict((i, r) for r, i in got)
        boxes = []
        for row in rows:
            minx, maxx, miny, maxy = _bbox_of(row)
            if None not in (minx, maxx, miny, maxy):
                boxes.append((rid_of[row['id']], minx, maxx, miny, maxy))
        conn.exec_driver_sql(f'INSERT INTO {rtree} VALUES (?,?,?,?,?)', boxes) if boxes else None


def delete(conn, table: sa.Table, where) -> int:
    """Delete rows matching `where`, and their R*Tree entries."""
    if is_sqlite(conn.engine):
        rids = [r for (r,) in conn.execute(sa.select(table.c.rid).where(where))]
        for i in range(0, len(rids), 500):
            chunk = rids[i:i + 500]
            conn.exec_driver_sql(f'DELETE FROM {RTREES[table.name]} WHERE id IN '
                                 f'({",".join("?" * len(chunk))})', tuple(chunk))
    return conn.execute(table.delete().where(where)).rowcount


def bbox_clause(table: sa.Table, bbox, sqlite: bool, postgis: bool = False):
    """Rows whose box meets bbox [minx, miny, maxx, maxy]: R*Tree on SQLite, the GiST-indexed
    geom with PostGIS, columns elsewhere."""
    minx, miny, maxx, maxy = bbox[:4] if len(bbox) == 4 else (bbox[0], bbox[1], bbox[3], bbox[4])
    if postgis:
        f = sa.func
        env = f.ST_SetSRID(f.ST_Envelope(f.ST_MakeLine(f.ST_MakePoint(minx, miny),
                                                       f.ST_MakePoint(maxx, maxy))), 4326)
        return f.ST_Intersects(sa.literal_column(f'{table.name}.geom'), env)
    if 'lon' in table.c:
        exact = sa.and_(table.c.lon.between(minx, maxx), table.c.lat.between(miny, maxy))
    else:
        exact = sa.and_(table.c.maxx >= minx, table.c.minx <= maxx,
                        table.c.maxy >= miny, table.c.miny <= maxy)
    if sqlite:      # the R*Tree finds the candidates; its float32 boxes are rounded outward,
        rt = sa.table(RTREES[table.name], *[sa.column(c) for c in   # so test them exactly
                                           ('id', 'minx', 'maxx', 'miny', 'maxy')])
        return sa.and_(table.c.rid.in_(sa.select(rt.c.id).where(
            rt.c.maxx >= minx, rt.c.minx <= maxx, rt.c.maxy >= miny, rt.c.miny <= maxy)), exact)
    return exact


# CQL2 spatial predicates: the row's geometry `pred` the query geometry (shapely / PostGIS names)
PREDICATES = ('intersects', 'within', 'contains', 'disjoint', 'touches', 'crosses', 'overlaps',
              'equals')


def spatial_clause(table: sa.Table, pred: str, geom, eng: sa.Engine):
    """Rows whose geometry `pred` a shapely geometry (EPSG:4326), exactly, as a SQL clause (so
    that counts and paging stay exact).

    PostGIS: ST_<pred> on the GiST-indexed geom. SQLite: the R*Tree keeps the rows whose box
    meets the geometry's envelope and vre_spatial tests each with shapely. PostgreSQL without
    PostGIS: the rows of that envelope are read and tested here, the clause names their rids."""
    if pred not in PREDICATES:
        raise ValueError(pred)
    cols = (table.c.lon, table.c.lat, table.c.lon, table.c.lat) if 'lon' in table.c else \
        (table.c.minx, table.c.miny, table.c.maxx, table.c.maxy)
    if pred == 'disjoint':      # rows without a position are in no spatial answer
        return sa.and_(*[c.isnot(None) for c in cols],
                       sa.not_(spatial_clause(table, 'intersects', geom, eng)))
    if has_postgis(eng):
        fn = getattr(sa.func, f'ST_{pred.capitalize()}')
        return fn(sa.literal_column(f'{table.name}.geom'),
                  sa.func.ST_GeomFromWKB(geom.wkb, 4326))
    sqlite = is_sqlite(eng)
    near = bbox_clause(table, list(geom.bounds), sqlite)
    if sqlite:
        return sa.and_(near, sa.func.vre_spatial(pred, geom.wkb, *cols) == 1)
    with eng.connect() as conn:
        rows = conn.execute(sa.select(table.c.rid, *cols).where(near)).all()
    rids = [r[0] for r in rows if _spatial_test(pred, geom.wkb, *r[1:])]
    from sqlalchemy.dialects.postgresql import ARRAY
    return table.c.rid == sa.any_(sa.bindparam(None, rids, type_=ARRAY(sa.Integer)))
