"""OGC API - EDR over one gridded NetCDF file (DIVAnd climatologies, griddap grids).

The same file that providers.coverage.GridCoverage serves as a coverage, opened once through
its cache (`open_grid`). Queries cut index ranges, never read the whole grid:
- position: the nearest cell; all depths and times -> one VerticalProfile per time step, or a
  PointSeries when one depth (or no depth axis) is left;
- area: the cells whose centre is inside the polygon (others null), as a Grid;
- cube: bbox + z + datetime, as a Grid.
`z` is a level, a list, lo/hi or Rn/start/step; levels must exist in the grid (400 if not).
A time axis with CF `climatology` bounds (DIVAnd `climatology_bounds`) carries those intervals
as CoverageJSON axis bounds, so a season is shown with the years it was computed from.
"""
from __future__ import annotations

import numpy as np
import shapely
import xarray as xr
from pygeoapi.provider.base import ProviderRequestEntityTooLargeError
from pygeoapi.provider.base_edr import BaseEDRProvider

from providers.coverage import CRS84, NoCells, Unavailable, open_grid
from providers.query import bad, time_range


def _iso(value) -> str:
    return np.datetime_as_string(np.datetime64(value, 's'), unit='s') + 'Z'


def _floats(values) -> list:
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, 'f8').ravel()]


def _zvalues(z: str) -> tuple[list[float] | None, tuple[float, float] | None]:
    """EDR z -> (wanted levels, None) or (None, (lo, hi))."""
    try:
        if z.upper().startswith('R'):
            n, start, step = z[1:].split('/')
            return [float(start) + i * float(step) for i in range(int(n))], None
        if '/' in z:
            lo, hi = (float(v) for v in z.split('/'))
            if lo > hi:
                raise bad(f'z interval {z!r}: low is above high')
            return None, (lo, hi)
        values = [float(v) for v in z.split(',')]
    except ValueError:
        raise bad(f'z must be a level, a list, lo/hi or Rn/start/step: {z!r}') from None
    if any(np.isnan(v) for v in values):
        raise bad(f'z must be numbers: {z!r}')
    return values, None


class GridEDR(BaseEDRProvider):
    """EDR provider for one gridded NetCDF file (`data`); option `max_cells` caps answers."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.max_cells = int((self.options or {}).get('max_cells', 5_000_000))
        self.grid = open_grid(str(self.data))
        self._fields = dict(self.grid.fields) if self.grid else {}

    def get_fields(self):
        return self._fields

    def get_instance(self, instance):
        return False

    # query types -----------------------------------------------------------------------
    def position(self, wkt=None, datetime_=None, select_properties=None, z=None, **kw):
        if wkt is None or wkt.geom_type != 'Point':
            raise bad('position needs coords=POINT(x y)')
        ax = self._axes()
        index = {ax['x']: [self._nearest('x', wkt.x)], ax['y']: [self._nearest('y', wkt.y)],
                 **self._zt(z, datetime_)}
        names = self._names(select_properties)
        out = self._cut(names, index)
        zdim, tdim = ax.get('z'), ax.get('t')
        x, y = float(out[ax['x']][0]), float(out[ax['y']][0])
        covs = []
        if zdim and out.sizes[zdim] > 1:     # one vertical profile per time step
            for i in range(out.sizes[tdim]) if tdim else [None]:
                one = out.isel({tdim: [i]}) if tdim else out
                axes = {'x': {'values': [x]}, 'y': {'values': [y]},
                        'z': {'values': _floats(one[zdim])}, **self._taxis(one)}
                covs.append(self._coverage('VerticalProfile', axes, one, names, ['z']))
            kind = 'VerticalProfile'
        else:
            axes = {'x': {'values': [x]}, 'y': {'values': [y]}}
            if zdim:
                axes['z'] = {'values': _floats(out[zdim])}
            axes.update(self._taxis(out))
            kind = 'PointSeries' if tdim else 'Point'
            covs.append(self._coverage(kind, axes, out, names, ['t'] if tdim else []))
        return {'type': 'CoverageCollection', 'domainType': kind,
                'parameters': self._parameters(names), 'referencing': self._referencing(),
                'coverages': covs}

    def area(self, wkt=None, datetime_=None, select_properties=None, z=None, **kw):
        if wkt is None or wkt.geom_type not in ('Polygon', 'MultiPolygon'):
            raise bad('area needs coords=POLYGON((...))')
        if not wkt.is_valid:
            raise bad('the area polygon is not valid (self-intersecting?)')
        ax = self._axes()
        x0, y0, x1, y1 = wkt.bounds
        index = {ax['x']: self._span('x', x0, x1), ax['y']: self._span('y', y0, y1),
                 **self._zt(z, datetime_)}
        names = self._names(select_properties)
        out = self._cut(names, index)
        xx, yy = np.meshgrid(out[ax['x']].values, out[ax['y']].values)
        inside = shapely.intersects_xy(wkt, xx, yy)     # centres inside or on the edge
        if not inside.any():
            raise NoCells(user_msg='no grid cell centre inside that polygon')
        mask = xr.DataArray(inside, dims=(ax['y'], ax['x']))
        out = out.where(mask)
        return self._grid(out, names)

    def cube(self, bbox=None, datetime_=None, select_properties=None, z=None, **kw):
        if not bbox or len(bbox) not in (4, 6):
            raise bad('cube needs bbox=minx,miny,maxx,maxy')
        x0, y0, x1, y1 = bbox if len(bbox) == 4 else (bbox[0], bbox[1], bbox[3], bbox[4])
        ax = self._axes()
        index = {ax['x']: self._span('x', x0, x1), ax['y']: self._span('y', y0, y1),
                 **self._zt(z, datetime_)}
        names = self._names(select_properties)
        return self._grid(self._cut(names, index), names)

    # selection -------------------------------------------------------------------------
    def _axes(self) -> dict:
        if self.grid is None:
            raise Unavailable(user_msg='the grid of this collection is not available on this '
                                       'server (its file is not in the configured mirror)')
        return self.grid.axes

    def _names(self, select_properties) -> list[str]:
        wanted = [p for p in (select_properties or []) if p]
        unknown = [p for p in wanted if p not in self._fields]
        if unknown:
            raise bad(f'unknown parameter-name {", ".join(unknown)}; this grid has '
                      f'{", ".join(self._fields)}')
        return wanted or list(self._fields)

    def _coord(self, role: str) -> np.ndarray:
        return self.grid.ds[self.grid.axes[role]].values

    def _nearest(self, role: str, value: float) -> int:
        c = self._coord(role)
        half = abs(float(c[1] - c[0])) / 2 if c.size > 1 else 0
        if not c.min() - half <= value <= c.max() + half:
            raise NoCells(user_msg=f'{value} is outside the grid ({c.min()}..{c.max()})')
        return int(np.argmin(np.abs(c - value)))

    def _span(self, role: str, lo: float, hi: float) -> list[int]:
        c = self._coord(role)
        found = np.flatnonzero((c >= lo) & (c <= hi))
        if found.size == 0:
            raise NoCells(user_msg=f'no grid cell in {lo}..{hi}; the grid has '
                                   f'{c.min()}..{c.max()}')
        return list(range(found[0], found[-1] + 1))

    def _zt(self, z, datetime_) -> dict:
        ax, index = self.grid.axes, {}
        if z:
            if 'z' not in ax:
                raise bad('this grid has no vertical axis: z cannot be used')
            levels = self._coord('z').astype('f8')
            wanted, interval = _zvalues(str(z))
            if interval:
                found = np.flatnonzero((levels >= interval[0]) & (levels <= interval[1]))
                if found.size == 0:
                    raise bad(f'no level of this grid in z={z}; levels: {levels.tolist()}')
                index[ax['z']] = found.tolist()
            else:
                tol = max(1e-6, np.min(np.diff(np.sort(levels))) / 1000 if levels.size > 1
                          else 1e-6)
                picks = []
                for w in wanted:
                    hit = np.flatnonzero(np.abs(levels - w) <= tol)
                    if hit.size == 0:
                        raise bad(f'z={w:g} is not a level of this grid; levels: '
                                  f'{levels.tolist()}')
                    picks.append(int(hit[0]))
                index[ax['z']] = sorted(set(picks))
        if datetime_:
            if 't' not in ax:
                raise bad('this grid has no time axis: datetime cannot be used')
            start, end = time_range(datetime_)
            t = self._coord('t').astype('datetime64[s]')
            keep = np.ones(t.shape, bool)
            if start:
                keep &= t >= np.datetime64(start.rstrip('Z'))
            if end:
                keep &= t <= np.datetime64(end.rstrip('Z'))
            if not keep.any():
                raise NoCells(user_msg=f'no time step in {datetime_}; the grid has '
                                       f'{_iso(t.min())}..{_iso(t.max())}')
            index[ax['t']] = np.flatnonzero(keep).tolist()
        return index

    def _cut(self, names: list[str], index: dict) -> xr.Dataset:
        sizes = [len(v) for v in index.values()]
        rest = [n for d, n in self.grid.ds.sizes.items()
                if d in self.grid.axes.values() and d not in index]
        cells = int(np.prod(sizes + rest)) * len(names)
        if cells > self.max_cells:
            raise ProviderRequestEntityTooLargeError(
                f'{cells} values asked, at most {self.max_cells}: narrow the query')
        return self.grid.ds[names].isel(index)

    # CoverageJSON ----------------------------------------------------------------------
    def _taxis(self, out: xr.Dataset) -> dict:
        """The time axis of a subset; climatology (or plain) bounds as CoverageJSON bounds."""
        tdim = self.grid.axes.get('t')
        if not tdim:
            return {}
        t = out[tdim].values
        if not np.issubdtype(t.dtype, np.datetime64):
            return {'t': {'values': _floats(t)}}
        axis = {'values': [_iso(v) for v in t]}
        bounds = self._tbounds(out[tdim])
        if bounds is not None:
            axis['bounds'] = [_iso(v) for v in bounds.ravel()]
        return {'t': axis}

    def _tbounds(self, tvar) -> np.ndarray | None:
        name = tvar.attrs.get('climatology') or tvar.attrs.get('bounds')
        ds = self.grid.ds
        if not name or name not in ds.variables:
            return None
        b = ds[name].sel({tvar.name: tvar.values})
        if not np.issubdtype(b.dtype, np.datetime64):     # CF: bounds take the axis units
            enc = ds[tvar.name].encoding
            raw = xr.Dataset({'b': (b.dims, b.values, {
                'units': enc.get('units'), 'calendar': enc.get('calendar', 'standard')})})
            b = xr.decode_cf(raw)['b']
        return b.values

    def _parameters(self, names) -> dict:
        out = {}
        for n in names:
            meta = self._fields[n]
            out[n] = {'type': 'Parameter', 'description': {'en': meta['title']},
                      'unit': {'symbol': meta['x-ogc-unit']},
                      'observedProperty': {'id': n, 'label': {'en': meta['title']}}}
        return out

    def _referencing(self) -> list[dict]:
        ax = self.grid.axes
        ref = [{'coordinates': ['x', 'y'], 'system': {'type': 'GeographicCRS', 'id': CRS84}}]
        if 'z' in ax:
            attrs = self.grid.ds[ax['z']].attrs
            ref.append({'coordinates': ['z'], 'system': {'type': 'VerticalCRS', 'cs': {
                'csAxes': [{'name': {'en': ax['z']}, 'direction': attrs.get('positive', 'down'),
                            'unit': {'symbol': attrs.get('units', '')}}]}}})
        if 't' in ax:
            ref.append({'coordinates': ['t'],
                        'system': {'type': 'TemporalRS', 'calendar': 'Gregorian'}})
        return ref

    def _coverage(self, kind, axes, out, names, axis_names) -> dict:
        ranges = {}
        for n in names:
            vals = out[n].values
            ranges[n] = {'type': 'NdArray', 'dataType': 'float', 'axisNames': axis_names,
                         'shape': [vals.size] if axis_names else [], 'values': _floats(vals)}
        return {'type': 'Coverage',
                'domain': {'type': 'Domain', 'domainType': kind, 'axes': axes},
                'ranges': ranges}

    def _grid(self, out: xr.Dataset, names) -> dict:
        ax = self.grid.axes
        role_of = {d: r for r, d in ax.items()}
        axes = {r: {'values': _floats(out[ax[r]])} for r in ('x', 'y', 'z') if r in ax}
        axes.update(self._taxis(out))
        ranges = {}
        for n in names:
            var = out[n]
            ranges[n] = {'type': 'NdArray', 'dataType': 'float',
                         'axisNames': [role_of[d] for d in var.dims], 'shape': list(var.shape),
                         'values': _floats(var.values)}
        return {'type': 'Coverage',
                'domain': {'type': 'Domain', 'domainType': 'Grid', 'axes': axes,
                           'referencing': self._referencing()},
                'parameters': self._parameters(names), 'ranges': ranges}
