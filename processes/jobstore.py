"""One job store for every job (OGC API, WPS, orders), shared by web servers and workers.

SQLAlchemy Core over SQLite (WAL, so readers never wait for the writer) by default, or
PostgreSQL by URL for several hosts. Rows are plain JSON-able dicts so a worker on another
host can rebuild a job from its id alone.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3

from sqlalchemy import (JSON, Column, DateTime, Float, Integer, MetaData, String, Table, Text,
                        bindparam, create_engine, event, select, update, delete, func, and_,
                        or_)
from sqlalchemy.sql import ClauseElement

metadata = MetaData()

jobs = Table(
    'jobs', metadata,
    Column('job_id', String(64), primary_key=True),
    Column('type', String(32), nullable=False, default='process', index=True),
    Column('process_id', String(128), nullable=False, index=True),
    Column('status', String(16), nullable=False, index=True),
    Column('message', Text, default=''),
    Column('progress', Integer, default=0),
    Column('owner', String(128), index=True),          # None = anonymous
    Column('request', JSON),                            # the execution request, as received
    Column('results', JSON),                            # {output id: {value|href, mediaType}}
    Column('created', DateTime(timezone=True), nullable=False, index=True),
    Column('started', DateTime(timezone=True)),
    Column('finished', DateTime(timezone=True)),
    Column('updated', DateTime(timezone=True)),
    Column('heartbeat', DateTime(timezone=True)),
    Column('timeout', Float),                           # seconds
    Column('worker', String(256)),                      # host:pid that ran it
    Column('attempts', Integer, default=0),
    Column('rerun_safe', Integer, default=0),
    Column('meta', JSON),                               # per-kind extras (WPS, orders)
)

# created (Part 4: not queued yet) -> accepted -> running -> successful | failed | dismissed
ACTIVE = ('accepted', 'running')
FINAL = ('successful', 'failed', 'dismissed')


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(value):
    """SQLite drops the zone: read times back as UTC."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


_ENGINES: dict[str, object] = {}


def get_engine(url: str):
    """One engine per URL per process (engines pool connections; build once)."""
    engine = _ENGINES.get(url)
    if engine is None:
        kwargs = {}
        if url.startswith('sqlite'):
            kwargs['connect_args'] = {'timeout': 30, 'check_same_thread': False}
        engine = create_engine(url, **kwargs)
        if url.startswith('sqlite'):
            @event.listens_for(engine, 'connect')
            def _pragmas(conn, _record):
                cur = conn.cursor()
                try:
                    cur.execute('PRAGMA journal_mode=WAL')
                except sqlite3.OperationalError:
                    pass    # another process is switching it; WAL is a property of the file
                cur.execute('PRAGMA synchronous=NORMAL')
                cur.close()
        metadata.create_all(engine)
        _ENGINES[url] = engine
    return engine


# The hot statements are built once: building and keying a statement per call cost more
# than running it (a job is claimed, finished and read several times per round trip).
_GET = select(jobs).where(jobs.c.job_id == bindparam('_id'))
_UPDATES: dict[tuple, object] = {}
_INCREMENTS = {'attempts': jobs.c.attempts + 1}     # the only SQL expression values in use


def _update_statement(keys: tuple, exprs: tuple, guarded: bool):
    """UPDATE jobs SET <keys> [, <expr keys>] WHERE job_id = :_id [AND status IN :_states]."""
    key = (keys, exprs, guarded)
    stmt = _UPDATES.get(key)
    if stmt is None:
        stmt = update(jobs).where(jobs.c.job_id == bindparam('_id'))
        if guarded:
            stmt = stmt.where(jobs.c.status.in_(bindparam('_states', expanding=True)))
        stmt = stmt.values({**{k: bindparam(f'v_{k}', type_=jobs.c[k].type) for k in keys},
                            **{k: _INCREMENTS[k] for k in exprs}})
        _UPDATES[key] = stmt
    return stmt


class JobStore:
    """CRUD and the queries OGC API - Processes job lists need."""

    def __init__(self, url: str, on_final=None):
        self.engine = get_engine(url)
        self.on_final = on_final or (lambda job_id: None)   # called once a job has ended

    def add(self, row: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(jobs.insert(), row)      # one cached compiled statement

    def get(self, job_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(_GET, {'_id': job_id}).mappings().first()
        return self._row(row) if row else None

    def update(self, job_id: str, only_if_status=None, **values) -> bool:
        """Update a job; with only_if_status, only while it is in one of those states
        (so a finished or dismissed job is never brought back by a late writer)."""
        values.setdefault('updated', utcnow())
        exprs = tuple(sorted(k for k, v in values.items() if isinstance(v, ClauseElement)))
        if any(k not in _INCREMENTS or not values[k].compare(_INCREMENTS[k]) for k in exprs):
            raise ValueError(f'SQL expressions other than {list(_INCREMENTS.values())}')
        keys = tuple(sorted(k for k in values if k not in exprs))
        stmt = _update_statement(keys, exprs, bool(only_if_status))
        params = {f'v_{k}': values[k] for k in keys}
        params['_id'] = job_id
        if only_if_status:
            params['_states'] = list(only_if_status)
        with self.engine.begin() as conn:
            done = conn.execute(stmt, params).rowcount > 0
        if done and values.get('status') in FINAL:
            self.on_final(job_id)
        return done

    def delete(self, job_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(delete(jobs).where(jobs.c.job_id == job_id)).rowcount > 0
        if done:
            self.on_final(job_id)
        return done

    def query(self, *, owner=None, see_all=False, types=None, process_ids=None, statuses=None,
              created_from=None, created_to=None, min_duration=None, max_duration=None,
              limit=10, offset=0) -> tuple[list[dict], int]:
        """Jobs matching the OGC job-list filters, newest first, and the total matched."""
        conds = []
        if not see_all:
            conds.append(jobs.c.owner == owner if owner else jobs.c.owner.is_(None))
        if types:
            conds.append(jobs.c.type.in_(types))
        if process_ids:
            conds.append(jobs.c.process_id.in_(process_ids))
        if statuses:
            conds.append(jobs.c.status.in_(statuses))
        if created_from is not None:
            conds.append(jobs.c.created >= created_from)
        if created_to is not None:
            conds.append(jobs.c.created <= created_to)
        where = and_(*conds) if conds else None
        stmt = select(jobs).order_by(jobs.c.created.desc(), jobs.c.job_id)
        count = select(func.count()).select_from(jobs)
        if where is not None:
            stmt, count = stmt.where(where), count.where(where)
        duration_filter = min_duration is not None or max_duration is not None
        if not duration_filter:
            stmt = stmt.limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = [self._row(r) for r in conn.execute(stmt).mappings()]
            total = conn.execute(count).scalar_one() if not duration_filter else None
        if duration_filter:
            # duration = (finished or now) - started, in seconds, as the standard defines it;
            # computed here because SQL date arithmetic differs between SQLite and PostgreSQL
            now = utcnow()
            def duration(r):
                if not r['started']:
                    return None
                return ((r['finished'] or now) - r['started']).total_seconds()
            rows = [r for r in rows if (d := duration(r)) is not None
                    and (min_duration is None or d >= min_duration)
                    and (max_duration is None or d <= max_duration)]
            total = len(rows)
            rows = rows[offset:offset + limit]
        return rows, total

    def stale_running(self, heartbeat_before: dt.datetime) -> list[dict]:
        """Running jobs whose worker stopped beating: it was killed or its host is gone."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs).where(and_(
                jobs.c.status == 'running',
                or_(jobs.c.heartbeat.is_(None), jobs.c.heartbeat < heartbeat_before),
            ))).mappings().all()
        return [self._row(r) for r in rows]

    def overdue(self, now: dt.datetime) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs).where(and_(
                jobs.c.status == 'running', jobs.c.timeout.is_not(None)))).mappings().all()
        out = []
        for r in rows:
            r = self._row(r)
            if r['started'] and (now - r['started']).total_seconds() > r['timeout']:
                out.append(r)
        return out

    @staticmethod
    def _row(row) -> dict:
        d = dict(row)
        for k in ('created', 'started', 'finished', 'updated', 'heartbeat'):
            d[k] = _aware(d[k])
        for k in ('request', 'results', 'meta'):
            if isinstance(d.get(k), str):
                d[k] = json.loads(d[k])
        return d
