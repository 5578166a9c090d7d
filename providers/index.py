"""pygeoapi providers answering from the BDI index (providers/store.py).

`IndexFeatures` serves observations of one BDI (option `bdi`), `IndexRecords` serves the
level-1 catalogue of BDI collections (option `level: collections`) or one BDI's granules
(`level: granules`, `bdi: ...`). `data` is the index URL (${VRE_INDEX_DB}). pygeoapi builds a
provider per request, so all state worth keeping (the engine) is cached by URL in store.py.
"""
from __future__ import annotations

import json
import os

import sqlalchemy as sa
from pygeoapi.provider.base import BaseProvider, ProviderItemNotFoundError

from providers import store
from providers.query import CQL, bad, coerce, extent_clause, instant_clause, time_range

O, G, C = store.OBSERVATION, store.GRANULE, store.COLLECTION


GRANULE_FIELDS = {'title': ('title', 'string'), 'type': ('type', 'string'),
                  'collection': ('collection', 'string'), 'platform': ('platform', 'string'),
                  'parameter': ('parameters', 'string'), 'taxon': ('taxon', 'string'),
                  'data_mode': ('data_mode', 'string'), 'qc': ('qc', 'string'),
                  'updated': ('tmax', 'string')}
COLLECTION_FIELDS = {'title': ('title', 'string'), 'type': ('type', 'string'),
                     'keywords': ('keywords', 'string'), 'bdi': ('bdi', 'string'),
                     'description': ('description', 'string')}
LIST_COLUMNS = {'parameters', 'keywords', 'taxon'}   # matched word by word, not whole


def _word_match(col, word: str):
    """A word of a space- or comma-separated list column."""
    norm = sa.func.replace(sa.func.lower(sa.func.coalesce(col, '')), ',', ' ')
    return (' ' + norm + ' ').like(f'% {word.lower()} %')


class _IndexProvider(BaseProvider):
    table: sa.Table = O
    field_map: dict = {}

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.opts = provider_def.get('options') or {}
        self.bdi = self.opts.get('bdi') or provider_def.get('bdi')
        self.engine = store.engine(self.data)
        self.sqlite = store.is_sqlite(self.engine)
        self.postgis = store.has_postgis(self.engine)
        self.cols = {k: (self.table.c[c], t) for k, (c, t) in self.field_map.items()}
        self._fields = self.get_fields()   # pygeoapi reads .fields for queryables and sortby

    def get_fields(self):
        return {k: ({'type': t, 'format': 'date-time'} if c.name in ('time', 'tmax', 'tmin')
                    else {'type': t}) for k, (c, t) in self.cols.items()}

    def _scope(self):
        where = [self.table.c.bdi == self.bdi] if self.bdi else []
        if self.opts.get('collection'):   # one collection of a BDI's rows (points vs series)
            where.append(self.table.c.collection == self.opts['collection'])
        return where

    def _where(self, bbox, datetime_, properties, q, filterq):
        where = self._scope()
        if bbox:
            if len(bbox) not in (4, 6):
                raise bad('bbox needs 4 or 6 numbers')
            where.append(store.bbox_clause(self.table, bbox, self.sqlite, self.postgis))
        rng = time_range(datetime_)
        if rng:
            where.append(self._time_clause(rng))
        for name, value in properties or []:
            if name not in self.cols:
                continue
            col, kind = self.cols[name]
            if col.name in LIST_COLUMNS:
                where.append(sa.and_(*[_word_match(col, w) for w in
                                       str(value).replace(',', ' ').split()]))
            else:
                where.append(col == coerce(value, kind))
        if q:
            where.append(sa.or_(*[sa.and_(*[sa.func.lower(sa.func.coalesce(c, '')).like(
                f'%{w.lower()}%') for w in q.replace(',', ' ').split()])
                for c in self._text_columns()]))
        if filterq is not None:
            where.append(CQL({k: v for k, v in self.cols.items()},
                             lambda b: store.bbox_clause(self.table, b, self.sqlite,
                                                         self.postgis),
                             self._time_col(),
                             lambda p, g: store.spatial_clause(self.table, p, g, self.engine)
                             )(filterq))
        return sa.and_(*where) if where else sa.true()

    def _order(self, sortby):
        order = []
        for s in sortby or []:
            if s['property'] not in self.cols:
                raise bad(f"cannot sort by {s['property']!r}")
            col = self.cols[s['property']][0]
            order.append(col.desc() if s['order'] == '-' else col.asc())
        return order + [self.table.c.rid]

    def query(self, offset=0, limit=10, resulttype='results', bbox=[], datetime_=None,
              properties=[], sortby=[], select_properties=[], skip_geometry=False, q=None,
              filterq=None, **kwargs):
        where = self._where(bbox, datetime_, properties, q, filterq)
        with self.engine.connect() as conn:
            matched = conn.execute(sa.select(sa.func.count()).select_from(self.table)
                                   .where(where)).scalar_one()
            rows = [] if resulttype == 'hits' else conn.execute(
                sa.select(self.table).where(where).order_by(*self._order(sortby))
                .offset(offset).limit(limit)).mappings().all()
        feats = [self._feature(r, select_properties, skip_geometry) for r in rows]
        return {'type': 'FeatureCollection', 'features': feats, 'numberMatched': matched,
                'numberReturned': len(feats), 'timeStamp': store.now_iso()}

    def get(self, identifier, **kwargs):
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(
                sa.and_(self.table.c.id == str(identifier), *self._scope()))).mappings().first()
        if row is None:
            raise ProviderItemNotFoundError(msg=f'no item {identifier!r}',
                                            user_msg=f'no item {identifier!r}')
        return self._feature(row, [], False)

    def _select(self, props: dict, select_properties) -> dict:
        if select_properties:
            return {k: v for k, v in props.items() if k in select_properties}
        return props


class IndexFeatures(_IndexProvider):
    """One feature per observation (Argo profile, occurrence, station/series)."""
    table = O

    def __init__(self, provider_def):
        from providers.harvest import connectors
        bdi = (provider_def.get('options') or {}).get('bdi') or provider_def.get('bdi')
        known = {n: c for n, c in connectors().items() if c.feature_fields}
        if bdi not in known:
            raise bad(f'provider option bdi must be one of {sorted(known)}')
        self.field_map = known[bdi].feature_fields
        super().__init__(provider_def)
        self.time_field = known[bdi].time_property
        self.id_field = 'id'

    def _time_col(self):
        return O.c.time

    def _time_clause(self, rng):
        return instant_clause(O.c.time, rng)

    def _text_columns(self):
        return [O.c.platform, O.c.taxon, O.c.parameters, O.c.dataset, O.c.id]

    def _feature(self, row, select_properties, skip_geometry):
        props = {k: row[c.name] for k, (c, _) in self.cols.items()}
        props['parameters'] = (row['parameters'] or '').split() or None \
            if 'parameters' in props else None
        props = {k: v for k, v in props.items() if v is not None}
        props.update(json.loads(row['props'] or '{}'))
        if row['levels']:
            props.update(json.loads(row['levels']))
        geom = None if skip_geometry or row['lon'] is None else {
            'type': 'Point', 'coordinates': [row['lon'], row['lat']]}
        return {'type': 'Feature', 'id': row['id'], 'geometry': geom,
                'properties': self._select(props, select_properties)}


def _bbox_polygon(row):
    if None in (row['minx'], row['miny'], row['maxx'], row['maxy']):
        return None
    x0, y0, x1, y1 = row['minx'], row['miny'], row['maxx'], row['maxy']
    if (x0, y0) == (x1, y1):
        return {'type': 'Point', 'coordinates': [x0, y0]}
    return {'type': 'Polygon', 'coordinates': [[[x0, y0], [x1, y0], [x1, y1], [x0, y1],
                                                [x0, y0]]]}


class IndexRecords(_IndexProvider):
    """OGC API - Records items: BDI collections (level 1) or one BDI's granules (level 2)."""

    def __init__(self, provider_def):
        level = (provider_def.get('options') or {}).get('level', 'granules')
        if level not in ('collections', 'granules'):
            raise bad('provider option level must be collections or granules')
        self.table = C if level == 'collections' else G
        self.field_map = COLLECTION_FIELDS if level == 'collections' else GRANULE_FIELDS
        super().__init__(provider_def)
        self.time_field = 'updated'

    def _time_col(self):
        return self.table.c.tmax

    def _time_clause(self, rng):
        return extent_clause(self.table.c.tmin, self.table.c.tmax, rng)

    def _text_columns(self):
        t = self.table.c
        return [t.title, t.description, t.keywords] if self.table is C else \
            [t.title, t.id, t.platform, t.parameters, t.taxon]

    def _feature(self, row, select_properties, skip_geometry):
        extra = json.loads(row['extra'] or '{}')
        # links a connector gives with their relation (e.g. an ISO record's online resources)
        links = [lk for lk in extra.get('links') or [] if isinstance(lk, dict)
                 and lk.get('rel') and lk.get('href')]
        if links:
            extra['links'] = [lk for lk in extra['links'] if lk not in links]
        if row['url'] and row['url'] not in {lk['href'] for lk in links}:
            links.append({'href': row['url'], 'rel': 'enclosure' if self.table is G else 'via',
                          'title': 'download' if self.table is G else 'source'})
        props = {'type': row['type'], 'title': row['title'], 'license': row['license'],
                 'rights': row['license'], 'citation': row['citation'], 'bdi': row['bdi'],
                 'updated': row['tmax']}
        if self.table is C:
            props.update(description=row['description'],
                         keywords=[k for k in (row['keywords'] or '').split(',') if k],
                         granules=extra.get('granules'), observations=extra.get('observations'))
            if extra.get('data'):    # a grid collection: is its file on this server now
                props['available'] = os.path.exists(extra['data'])
        else:
            props.update(collection=row['collection'], platform=row['platform'],
                         parameters=(row['parameters'] or '').split() or None,
                         taxon=row['taxon'], data_mode=row['data_mode'], qc=row['qc'],
                         size=row['size'], checksum=row['checksum'], observations=row['n_obs'],
                         **{k: v for k, v in extra.items() if v not in (None, '', [])})
        props = {k: v for k, v in props.items() if v is not None}
        time = {'interval': [row['tmin'], row['tmax']]} if row['tmin'] else None
        return {'type': 'Feature', 'id': row['id'], 'time': time,
                'geometry': None if skip_geometry else _bbox_polygon(row),
                'properties': self._select(props, select_properties), 'links': links}
