"""The BDI index: collections, granules and observations in one SQL store.

SQLite by default (an R*Tree virtual table per table for bbox, B-tree on time), PostgreSQL by
URL (plain SQL: B-tree indexes on lon/lat/time). Providers answer every query from here and
never re-read source files. Engines are cached per URL: pygeoapi builds a provider per request.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone

import sqlalchemy as sa

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
_LOCK = threading.Lock()


def engine(url: str) -> sa.Engine:
    """One engine per URL per process, schema created on first use."""
    with _LOCK:
        eng = _ENGINES.get(url)
        if eng is None:
            eng = sa.create_engine(url, future=True)
            if eng.dialect.name == 'sqlite':
                sa.event.listen(eng, 'connect', _sqlite_pragmas)
            if eng.dialect.name == 'postgresql':
                with eng.begin() as conn:   # web workers, Celery and harvest may start at once
                    conn.exec_driver_sql('SELECT pg_advisory_xact_lock(72656)')
                    META.create_all(conn)
            else:
                META.create_all(eng)
            if eng.dialect.name == 'sqlite':
                with eng.begin() as conn:
                    for rtree in RTREES.values():
                        conn.exec_driver_sql(f'CREATE VIRTUAL TABLE IF NOT EXISTS {rtree} '
                                             'USING rtree(id, minx, maxx, miny, maxy)')
            _ENGINES[url] = eng
        return eng


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute('PRAGMA busy_timeout=30000')  # first: switching to WAL waits for a lock
    try:
        cur.execute('PRAGMA journal_mode=WAL')   # readers (the web server) go on while harvesting
    except sqlite3.OperationalError:
        pass    # another process is switching it; WAL is a property of the file
    cur.close()


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


def bbox_clause(table: sa.Table, bbox, sqlite: bool):
    """Rows whose box meets bbox [minx, miny, maxx, maxy]: R*Tree on SQLite, columns elsewhere."""
    minx, miny, maxx, maxy = bbox[:4] if len(bbox) == 4 else (bbox[0], bbox[1], bbox[3], bbox[4])
    if sqlite:
        sub = sa.text(f'SELECT id FROM {RTREES[table.name]} WHERE maxx >= :bminx AND '
                      'minx <= :bmaxx AND maxy >= :bminy AND miny <= :bmaxy').bindparams(
            bminx=minx, bmaxx=maxx, bminy=miny, bmaxy=maxy).columns(sa.column('id'))
        return table.c.rid.in_(sub)
    if 'lon' in table.c:
        return sa.and_(table.c.lon.between(minx, maxx), table.c.lat.between(miny, maxy))
    return sa.and_(table.c.maxx >= minx, table.c.minx <= maxx,
                   table.c.maxy >= miny, table.c.miny <= maxy)
