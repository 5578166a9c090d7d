"""OGC API - EDR over the index: profiles (pressure/depth axis) and time series as CoverageJSON.

Queries select observations from the index (R*Tree bbox first, exact geometry test after) and
build one Coverage per observation from its stored levels; no source file is opened.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from pygeoapi.provider.base import ProviderNoDataError
from pygeoapi.provider.base_edr import BaseEDRProvider
from shapely.geometry import Point

from providers import store
from providers.query import bad, instant_clause, time_range

O = store.OBSERVATION
UNITS = {'PRES': 'decibar', 'TEMP': 'degree_Celsius', 'PSAL': 'psu',
         'DOXY': 'micromole/kg', 'DEPTH': 'm'}


def _z_filter(z: str | None):
    """EDR z: a value, a list or lo/hi -> predicate on a level value."""
    if not z:
        return lambda v: True
    try:
        if '/' in z:
            lo, hi = (float(x) for x in z.split('/'))
            return lambda v: lo <= v <= hi
        wanted = [float(x) for x in z.split(',')]
    except ValueError:
        raise bad(f'z must be a number, a list or lo/hi: {z!r}') from None
    return lambda v: any(abs(v - w) <= 0.5 for w in wanted)


class IndexEDR(BaseEDRProvider):
    """EDR for one BDI's observations (option `bdi`); `tolerance` in degrees for position."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        opts = provider_def.get('options') or {}
        self.bdi = opts.get('bdi')
        self.collection = opts.get('collection')   # only this collection of the BDI's rows
        self.tolerance = float(opts.get('tolerance', 0.5))
        self.engine = store.engine(self.data)
        self.sqlite = store.is_sqlite(self.engine)
        self.postgis = store.has_postgis(self.engine)
        self._fields = self.get_fields()

    def get_fields(self):
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(store.GRANULE.c.parameters).distinct().where(
                store.GRANULE.c.bdi == self.bdi)).scalars().all()
        names = sorted({p for r in rows for p in (r or '').split()})
        return {n: {'type': 'number', 'title': n, 'x-ogc-unit': UNITS.get(n, '')}
                for n in names}

    def get_instance(self, instance):
        return False

    # query types ---------------------------------------------------------------------
    def position(self, wkt=None, datetime_=None, select_properties=None, z=None, limit=None,
                 **kw):
        if wkt is None or wkt.geom_type != 'Point':
            raise bad('position needs coords=POINT(x y)')
        t = self.tolerance
        rows = self._rows([wkt.x - t, wkt.y - t, wkt.x + t, wkt.y + t], datetime_, None)
        if not rows:
            raise ProviderNoDataError(msg='no data near that position')
        near = min(rows, key=lambda r: (r['lon'] - wkt.x) ** 2 + (r['lat'] - wkt.y) ** 2)
        rows = [r for r in rows if (r['lon'], r['lat']) == (near['lon'], near['lat'])]
        return self._coverages(rows[:limit], select_properties, z)

    def area(self, wkt=None, datetime_=None, select_properties=None, z=None, limit=None, **kw):
        if wkt is None or wkt.geom_type not in ('Polygon', 'MultiPolygon'):
            raise bad('area needs coords=POLYGON((...))')
        rows = [r for r in self._rows(list(wkt.bounds), datetime_, None)
                if wkt.intersects(Point(r['lon'], r['lat']))]
        return self._coverages(rows[:limit], select_properties, z)

    def cube(self, bbox=None, datetime_=None, select_properties=None, z=None, limit=None, **kw):
        rows = self._rows(bbox, datetime_, limit)
        return self._coverages(rows, select_properties, z)

    def trajectory(self, wkt=None, datetime_=None, select_properties=None, z=None, limit=None,
                   **kw):
        if wkt is None or 'LineString' not in wkt.geom_type:
            raise bad('trajectory needs coords=LINESTRING(...)')
        t = self.tolerance
        x0, y0, x1, y1 = wkt.bounds
        rows = [r for r in self._rows([x0 - t, y0 - t, x1 + t, y1 + t], datetime_, None)
                if wkt.distance(Point(r['lon'], r['lat'])) <= t]
        return self._coverages(rows[:limit], select_properties, z)

    # helpers --------------------------------------------------------------------------
    def _rows(self, bbox, datetime_, limit):
        if not bbox or len(bbox) not in (4, 6):
            raise bad('a bbox of 4 numbers is needed')
        where = [O.c.bdi == self.bdi, O.c.lon.isnot(None),
                 store.bbox_clause(O, bbox, self.sqlite, self.postgis)]
        if self.collection:
            where.append(O.c.collection == self.collection)
        rng = time_range(datetime_)
        if rng:
            where.append(instant_clause(O.c.time, rng))
        stmt = sa.select(O).where(sa.and_(*where)).order_by(O.c.time, O.c.rid)
        if limit:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return conn.execute(stmt).mappings().all()

    def _coverages(self, rows, select_properties, z):
        if not rows:
            raise ProviderNoDataError(msg='no data for that query')
        zok = _z_filter(z)
        fields = self.get_fields()
        wanted = [p for p in (select_properties or []) if p]
        unknown = [p for p in wanted if p not in fields]
        if unknown:
            raise bad(f'unknown parameter-name: {", ".join(unknown)}')
        covs, used, units = [], set(), dict(UNITS)
        for r in rows:
            units.update(json.loads(r['props'] or '{}').get('units') or {})
            cov = self._coverage(r, wanted, zok)
            if cov:
                used.update(cov['ranges'])
                covs.append(cov)
        if not covs:
            raise ProviderNoDataError(msg='no levels match that query')
        kinds = {c['domain']['domainType'] for c in covs}   # one only if all agree (CoverageJSON)
        return {'type': 'CoverageCollection', **({'domainType': kinds.pop()} if len(kinds) == 1
                                                  else {}),
                'parameters': {p: {'type': 'Parameter', 'description': {'en': p},
                                   'unit': {'symbol': units.get(p, '')},
                                   'observedProperty': {'id': p, 'label': {'en': p}}}
                               for p in sorted(used)},
                'referencing': [
                    {'coordinates': ['x', 'y'], 'system': {
                        'type': 'GeographicCRS',
                        'id': 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'}},
                    {'coordinates': ['t'], 'system': {
                        'type': 'TemporalRS', 'calendar': 'Gregorian'}}],
                'coverages': covs}

    def _coverage(self, row, wanted, zok):
        """One observation: a VerticalProfile on its z levels or a PointSeries on its times."""
        levels = json.loads(row['levels'] or '{}')
        props = json.loads(row['props'] or '{}')
        params = [p for p in (row['parameters'] or '').split()
                  if (not wanted or p in wanted) and p in levels]
        series = props.get('axis_t')
        if series:
            axis = levels.get(series) or []
            keep = [i for i, v in enumerate(axis) if v is not None]
            domain = {'type': 'Domain', 'domainType': 'PointSeries', 'axes': {
                'x': {'values': [row['lon']]}, 'y': {'values': [row['lat']]},
                't': {'values': [axis[i] for i in keep]}}}
            axis_name = 't'
        else:
            zname = props.get('axis_z', 'PRES')
            axis = levels.get(zname) or []
            keep = [i for i, v in enumerate(axis) if v is not None and zok(v)]
            if not keep:
                return None
            params = [p for p in params if p != zname]
            domain = {'type': 'Domain', 'domainType': 'VerticalProfile', 'axes': {
                'x': {'values': [row['lon']]}, 'y': {'values': [row['lat']]},
                'z': {'values': [axis[i] for i in keep]}, 't': {'values': [row['time']]}}}
            axis_name = 'z'
        ranges = {}
        for p in params:
            vals = self._best(levels, p, row['data_mode'])
            ranges[p] = {'type': 'NdArray', 'dataType': 'float', 'axisNames': [axis_name],
                         'shape': [len(keep)],
                         'values': [vals[i] if i < len(vals) else None for i in keep]}
        if not ranges:
            return None
        return {'type': 'Coverage', 'id': row['id'], 'domain': domain, 'ranges': ranges}

    @staticmethod
    def _best(levels, p, mode):
        """Argo practice: adjusted values in delayed/adjusted mode, raw values in real time."""
        adj = levels.get(p + '_ADJUSTED')
        if mode in ('A', 'D') and adj and any(v is not None for v in adj):
            return adj
        return levels.get(p) or []
