"""OGC API - Coverages for gridded NetCDF (ERDDAP griddap bathymetry, DIVAnd climatologies)
and GeoTIFF (WCS GetCoverage answers: one field per band, nodata as missing, EPSG:4326).

pygeoapi's stock xarray provider ignores a bbox alone, rejects `...Z` times and fails on a
single instant, so this one selects index ranges itself: bbox or `subset=lon(a:b)`/`lat(..)`/
`depth(..)`/`time("..")`, single values as the nearest cell (time: that instant, or that day
for a date). `data` is the file path, normally under the configured mirror; a missing file
answers 503 and never stops the server from starting. pygeoapi builds a provider per request,
so opened datasets and their axis metadata are cached per path (reopened if the file changes).
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from http import HTTPStatus

import numpy as np
import xarray as xr
from pygeoapi.provider.base import (BaseProvider, ProviderGenericError,
                                    ProviderRequestEntityTooLargeError)

from providers.query import bad, time_range

CRS84 = 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'
ALIASES = {'x': ('lon', 'long', 'longitude', 'x'), 'y': ('lat', 'latitude', 'y'),
           'z': ('depth', 'z', 'elevation_level'), 't': ('time', 't')}
KEEP_ENCODING = ('dtype', '_FillValue', 'scale_factor', 'add_offset', 'units', 'calendar')
RASTER_SUFFIXES = ('.tif', '.tiff')


class Unavailable(ProviderGenericError):
    """The configured grid file is not there (no mirror, partial mirror): 503, not a crash."""
    http_status_code = HTTPStatus.SERVICE_UNAVAILABLE
    ogc_exception_code = 'ServiceUnavailable'


class NoCells(ProviderGenericError):
    """A subset that is well formed but outside the grid."""
    http_status_code = HTTPStatus.NOT_FOUND
    ogc_exception_code = 'NotFound'


@dataclass
class Grid:
    """An opened dataset with its axes found once: role ('x','y','z','t') -> dimension name."""
    ds: xr.Dataset
    axes: dict
    fields: dict


_GRIDS: dict[tuple, tuple[tuple, Grid]] = {}
_LOCK = threading.Lock()


def _role(name: str, var) -> str | None:
    attrs = {k: str(v).lower() for k, v in var.attrs.items()}
    if attrs.get('axis') in ('X', 'x') or attrs.get('units') in ('degrees_east', 'degree_east') \
            or attrs.get('standard_name') == 'longitude':
        return 'x'
    if attrs.get('axis') in ('Y', 'y') or attrs.get('units') in ('degrees_north', 'degree_north') \
            or attrs.get('standard_name') == 'latitude':
        return 'y'
    if np.issubdtype(var.dtype, np.datetime64) or attrs.get('axis') == 't' \
            or attrs.get('standard_name') == 'time':
        return 't'
    if attrs.get('axis') == 'z' or 'positive' in attrs or attrs.get('standard_name') in (
            'depth', 'altitude', 'height'):
        return 'z'
    return None


def raster_dataset(path: str, bands: tuple = ()) -> xr.Dataset:
    """A GeoTIFF as a lon/lat dataset: one variable per band (named by `bands`, else by the
    band description, else band_N), nodata as NaN, coordinates at pixel centres."""
    import rasterio
    with rasterio.open(path) as src:
        if src.crs is None or src.crs.to_epsg() != 4326:
            raise Unavailable(user_msg=f'the GeoTIFF is not in EPSG:4326 ({src.crs})')
        t = src.transform
        if t.b or t.d:
            raise Unavailable(user_msg='the GeoTIFF grid is rotated')
        lon = t.c + t.a * (np.arange(src.width) + 0.5)
        lat = t.f + t.e * (np.arange(src.height) + 0.5)
        data = src.read(masked=True)
        names = [(bands[i] if i < len(bands) else None) or src.descriptions[i] or f'band_{i + 1}'
                 for i in range(src.count)]
        out = xr.Dataset(coords={
            'lat': ('lat', lat, {'units': 'degrees_north', 'standard_name': 'latitude'}),
            'lon': ('lon', lon, {'units': 'degrees_east', 'standard_name': 'longitude'})})
        for i, name in enumerate(names):
            band = data[i].astype('f4' if data.dtype.itemsize <= 4 else 'f8').filled(np.nan)
            out[name] = (('lat', 'lon'), band, {'long_name': name, 'units': src.units[i] or ''})
        out.attrs = {'source': os.path.basename(path), 'crs': 'EPSG:4326'}
    return out


def grid_of(ds: xr.Dataset) -> Grid:
    """An opened dataset's axes (by role) and fields: the variables on its lon/lat axes."""
    axes = {}
    for name in ds.dims:
        if name in ds.coords and (role := _role(name, ds[name])) and role not in axes:
            axes[role] = name
    if 'x' not in axes or 'y' not in axes:
        raise Unavailable(user_msg='the grid file has no longitude/latitude axes')
    dims = set(axes.values())
    fields = {}
    for name, var in ds.data_vars.items():
        if {axes['x'], axes['y']} <= set(var.dims) <= dims:
            fields[name] = {'type': 'number', 'title': var.attrs.get('long_name', name),
                            'x-ogc-unit': var.attrs.get('units', '')}
    return Grid(ds, axes, fields)


def with_bbox_and_datetime(wanted: dict, bbox, datetime_, roles) -> dict:
    """The asked ranges by role (from subset) with bbox as x/y and datetime as t."""
    if bbox:
        if 'x' in wanted or 'y' in wanted:
            raise bad('bbox and subset on lon/lat cannot be used together')
        wanted['x'] = [bbox[0], bbox[2] if len(bbox) == 4 else bbox[3]]
        wanted['y'] = [bbox[1], bbox[3] if len(bbox) == 4 else bbox[4]]
    if datetime_:
        if 't' in wanted:
            raise bad('datetime and subset on time cannot be used together')
        if 't' not in roles:
            raise bad('this grid has no time axis')
        wanted['t'] = datetime_
    return wanted


def open_grid(path: str, bands: tuple = ()) -> Grid | None:
    """The cached Grid of a file, None if the file is absent; reopened when it changes.
    `bands` names the bands of a GeoTIFF (it has no variable names of its own)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_mtime_ns, st.st_size)
    with _LOCK:
        cached = _GRIDS.get((path, tuple(bands)))
        if cached and cached[0] == key:
            return cached[1]
        try:
            if path.lower().endswith(RASTER_SUFFIXES):
                ds = raster_dataset(path, tuple(bands))
            else:
                ds = xr.open_dataset(path)
        except Unavailable:
            raise
        except Exception as err:   # a corrupt file is a server-side problem, said plainly
            raise Unavailable(user_msg=f'the grid file cannot be read: {type(err).__name__}')
        grid = grid_of(ds)
        if cached:
            cached[1].ds.close()
        _GRIDS[(path, tuple(bands))] = (key, grid)
        return grid


def _iso(value) -> str:
    return np.datetime_as_string(np.datetime64(value, 's'), unit='s') + 'Z'


def _range(values: np.ndarray) -> np.ndarray:
    return np.array([np.nanmin(values), np.nanmax(values)]) if np.isfinite(values).any() \
        else np.array([np.nan, np.nan])


def _subset_extent(attrs: dict, out: xr.Dataset) -> dict:
    """The source's ACDD/ERDDAP extent attributes rewritten to the subset (not the whole grid)."""
    attrs = dict(attrs)
    names = {'x': ('geospatial_lon_min', 'geospatial_lon_max', 'Westernmost_Easting',
                   'Easternmost_Easting'),
             'y': ('geospatial_lat_min', 'geospatial_lat_max', 'Southernmost_Northing',
                   'Northernmost_Northing')}
    for role, keys in names.items():
        dim = next((d for d in out.dims if _role(d, out[d]) == role), None)
        if dim is None:
            continue
        lo, hi = (float(v) for v in _range(out[dim].values))
        for key, value in zip(keys, (lo, hi, lo, hi)):
            if key in attrs:
                attrs[key] = value
    return attrs


def _step(values: np.ndarray) -> float | None:
    return float(abs(values[1] - values[0])) if values.size > 1 else None


class GridCoverage(BaseProvider):
    """Coverage provider for one gridded NetCDF or GeoTIFF file (`data`); option `max_cells`
    caps answers, option `bands` names a GeoTIFF's bands."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.max_cells = int((self.options or {}).get('max_cells', 5_000_000))
        self.grid = open_grid(str(self.data), tuple((self.options or {}).get('bands') or ()))
        if self.grid is None:
            self.axes = [n for r in 'xyzt' for n in ALIASES[r]]
            self._coverage_properties = {'width': 0, 'height': 0, 'resx': None, 'resy': None}
            return
        ax = self.grid.axes
        self.axes = sorted({*ax.values(), *(a for r in ax for a in ALIASES[r])})
        self._fields = dict(self.grid.fields)
        x, y = (self.grid.ds[ax[r]].values for r in 'xy')
        props = {'width': x.size, 'height': y.size, 'resx': _step(x), 'resy': _step(y),
                 'bbox': [float(x.min()), float(y.min()), float(x.max()), float(y.max())]}
        if 't' in ax:
            t = self.grid.ds[ax['t']].values
            if np.issubdtype(t.dtype, np.datetime64):
                props['time_range'] = [_iso(t.min()), _iso(t.max())]
        if 'z' in ax:
            z = self.grid.ds[ax['z']].values
            props['uad'] = {'vertical': {'interval': [[float(z.min()), float(z.max())]],
                                         'name': ax['z']}}
        self._coverage_properties = props

    def get_fields(self):
        return self._fields

    # the query ---------------------------------------------------------------------------
    def query(self, properties=None, subsets=None, bbox=None, datetime_=None, format_='json',
              **kwargs):
        if self.grid is None:
            raise Unavailable(user_msg=f'the grid of this collection is not available on this '
                                       f'server (no file {os.path.basename(str(self.data))} in '
                                       'the configured mirror)')
        ds, ax = self.grid.ds, self.grid.axes
        names = list(properties or self.fields)
        wanted = with_bbox_and_datetime(self._by_role(subsets or {}), bbox, datetime_, ax)
        index = {ax[r]: self._cut(r, v) for r, v in wanted.items()}
        out = ds[names].isel(index)
        cells = int(np.prod([out.sizes[d] for d in out.dims])) * max(len(names), 1)
        if cells > self.max_cells:
            raise ProviderRequestEntityTooLargeError(
                f'{cells} values asked, at most {self.max_cells}: use bbox or subset')
        return answer(self.grid, out, names, format_)

    def _by_role(self, subsets: dict) -> dict:
        ax = self.grid.axes
        wanted = {}
        for name, values in subsets.items():
            role = next((r for r, d in ax.items() if name == d or name.lower() in ALIASES[r]),
                        None)
            if role is None:
                raise bad(f'this grid has no axis {name!r}; axes: {", ".join(ax.values())}')
            if role in wanted:
                raise bad(f'axis {name!r} is subset twice')
            if not 1 <= len(values) <= 2:
                raise bad(f'subset {name} needs one value or low:high')
            wanted[role] = values
        return wanted

    def _cut(self, role: str, values) -> slice:
        """Index range of one axis: [lo, hi] inclusive, or the nearest cell to one value."""
        dim = self.grid.axes[role]
        coord = self.grid.ds[dim].values
        if role == 't' and np.issubdtype(coord.dtype, np.datetime64):
            return self._cut_time(dim, coord, values)
        try:
            nums = [float(v) for v in values]
        except (TypeError, ValueError):
            raise bad(f'subset {dim} needs numbers, got {values!r}') from None
        if any(np.isnan(n) for n in nums):
            raise bad(f'subset {dim} needs numbers, got {values!r}')
        lo_c, hi_c = float(coord.min()), float(coord.max())
        if len(nums) == 1:
            half = (_step(coord) or 0) / 2
            if not lo_c - half <= nums[0] <= hi_c + half:
                raise NoCells(user_msg=f'{dim}={nums[0]} is outside the grid ({lo_c}..{hi_c})')
            i = int(np.argmin(np.abs(coord - nums[0])))
            return slice(i, i + 1)
        lo, hi = nums
        if lo > hi:
            raise bad(f'subset {dim}({lo}:{hi}): low is above high')
        return self._span(dim, (coord >= lo) & (coord <= hi), f'{lo}..{hi}', f'{lo_c}..{hi_c}')

    def _cut_time(self, dim, coord, values) -> slice:
        if isinstance(values, str):                  # the datetime parameter
            text = values
        elif len(values) == 1:
            text = str(values[0])
        else:
            text = f'{values[0]}/{values[1]}'
        start, end = time_range(text.replace('"', ''))
        t = coord.astype('datetime64[s]')
        keep = np.ones(t.shape, bool)
        if start:
            keep &= t >= np.datetime64(start.rstrip('Z'))
        if end:
            keep &= t <= np.datetime64(end.rstrip('Z'))
        return self._span(dim, keep, text, f'{_iso(t.min())}..{_iso(t.max())}')

    @staticmethod
    def _span(dim, keep: np.ndarray, asked: str, extent: str) -> slice:
        found = np.flatnonzero(keep)
        if found.size == 0:
            raise NoCells(user_msg=f'no grid cell of {dim} in {asked}; the grid has {extent}')
        return slice(int(found[0]), int(found[-1]) + 1)


# outputs -------------------------------------------------------------------------------
def answer(grid: Grid, out: xr.Dataset, names: list[str], format_: str):
    """A cut of a grid as the coverage answer: CoverageJSON, else NetCDF."""
    return covjson(grid, out, names) if format_ == 'json' else netcdf(out)


def covjson(grid: Grid, out: xr.Dataset, names: list[str]) -> dict:
    """CoverageJSON of a cut `out` of `grid` (titles and units from its fields)."""
    ax = grid.axes
    role_of = {d: r for r, d in ax.items()}
    axes = {}
    for role, dim in ax.items():
        vals = out[dim].values
        axes[role] = {'values': [_iso(v) for v in vals] if role == 't' and
                      np.issubdtype(vals.dtype, np.datetime64) else vals.tolist()}
    referencing = [{'coordinates': ['x', 'y'],
                    'system': {'type': 'GeographicCRS', 'id': CRS84}}]
    if 'z' in ax:
        attrs = grid.ds[ax['z']].attrs
        referencing.append({'coordinates': ['z'], 'system': {
            'type': 'VerticalCRS', 'cs': {'csAxes': [{
                'name': {'en': ax['z']}, 'direction': attrs.get('positive', 'down'),
                'unit': {'symbol': attrs.get('units', '')}}]}}})
    if 't' in ax:
        referencing.append({'coordinates': ['t'],
                            'system': {'type': 'TemporalRS', 'calendar': 'Gregorian'}})
    params, ranges = {}, {}
    for name in names:
        var = out[name]
        meta = grid.fields[name]
        params[name] = {'type': 'Parameter', 'description': {'en': meta['title']},
                        'unit': {'symbol': meta['x-ogc-unit']},
                        'observedProperty': {'id': name, 'label': {'en': meta['title']}}}
        values = var.values.astype('f8').ravel()
        ranges[name] = {'type': 'NdArray', 'dataType': 'float',
                        'axisNames': [role_of[d] for d in var.dims],
                        'shape': list(var.shape),
                        'values': [None if np.isnan(v) else float(v) for v in values]}
    return {'type': 'Coverage', 'domain': {'type': 'Domain', 'domainType': 'Grid',
                                           'axes': axes, 'referencing': referencing},
            'parameters': params, 'ranges': ranges}


def netcdf(out: xr.Dataset) -> bytes:
    """NetCDF-4 of the subset with the source's attributes and packing (not its chunking)."""
    out = out.copy()
    for name, var in out.variables.items():
        var.encoding = {k: v for k, v in var.encoding.items() if k in KEEP_ENCODING}
        if name in out.coords:      # GDAL < 3.7 takes a coordinate's actual_range as the
            var.attrs.pop('actual_range', None)    # grid's edges: half a cell off; drop it
        elif 'actual_range' in var.attrs:
            var.attrs['actual_range'] = _range(var.values).astype(var.dtype)
    out.attrs = _subset_extent(out.attrs, out)
    with tempfile.NamedTemporaryFile(suffix='.nc') as fh:
        out.to_netcdf(fh.name, engine='netcdf4')
        return open(fh.name, 'rb').read()


def _bdi_of(path: str, bdis: dict, default: str) -> tuple[str, dict]:
    """The `vre: bdis:` entry whose mirror folder holds the grid file."""
    for name, conf in bdis.items():
        mirror = (conf or {}).get('mirror') if isinstance(conf, dict) else None
        if mirror and os.path.normpath(path).startswith(os.path.normpath(mirror) + os.sep):
            return name, conf
    return default, {}


def grid_provider(resource: dict | None) -> dict | None:
    """The GridCoverage provider definition of a configured collection, if it has one."""
    return next((p for p in (resource or {}).get('providers') or []
                 if p.get('type') == 'coverage' and p.get('name') == f'{__name__}.GridCoverage'),
                None)


def catalogue(config: dict) -> tuple[list[dict], list[dict]]:
    """(collection rows, BDI rows) of the configured grid collections, for level-1 search and
    /bdis: extents from the file when it is there, else from the config."""
    bdis = ((config.get('vre') or {}).get('bdis')) or {}
    colls, owners = [], {}
    for rid, res in (config.get('resources') or {}).items():
        prov = grid_provider(res)
        if prov is None:
            continue
        path = str(prov['data'])
        bdi, conf = _bdi_of(path, bdis, rid)
        owners.setdefault(bdi, (conf, []))[1].append(path)
        bbox = ((res.get('extents') or {}).get('spatial') or {}).get('bbox') or [None] * 4
        tmin, tmax = (((res.get('extents') or {}).get('temporal') or {}).get('interval')
                      or [[None, None]])[0]
        try:
            grid = open_grid(path, tuple((prov.get('options') or {}).get('bands') or ()))
        except Unavailable:    # unreadable now: listed with the config's extent
            grid = None
        if grid is not None:
            x, y = (grid.ds[grid.axes[r]].values for r in 'xy')
            bbox = [float(x.min()), float(y.min()), float(x.max()), float(y.max())]
            if 't' in grid.axes and np.issubdtype(grid.ds[grid.axes['t']].dtype, np.datetime64):
                t = grid.ds[grid.axes['t']].values
                tmin, tmax = _iso(t.min()), _iso(t.max())
        link = next((lk['href'] for lk in res.get('links') or []), None)
        colls.append({'id': rid, 'bdi': bdi, 'type': 'coverage', 'title': res.get('title'),
                      'description': res.get('description'),
                      'keywords': ','.join(res.get('keywords') or []),
                      'minx': bbox[0], 'miny': bbox[1], 'maxx': bbox[2], 'maxy': bbox[3],
                      'tmin': tmin, 'tmax': tmax, 'url': link,
                      'extra': json.dumps({'data': path})})
    rows = [{'name': name, 'title': name, 'kind': 'gridded (OGC API - Coverages)',
             'source': conf.get('url') or conf.get('mirror'), 'reachable': True,
             'report': json.dumps({'files': paths})} for name, (conf, paths) in owners.items()]
    return colls, rows


def register_catalogue(db_url: str, config: dict) -> None:
    """Write the grid collections into the index; each web worker does it at start, so a
    concurrent identical write is not an error."""
    import sqlalchemy as sa

    from providers import store
    colls, bdis = catalogue(config)
    eng = store.engine(db_url)
    try:
        with eng.begin() as conn:
            store.delete(conn, store.COLLECTION, store.COLLECTION.c.type == 'coverage')
            store.upsert(conn, store.COLLECTION, colls)
            harvested = set(conn.execute(sa.select(store.BDI.c.name).where(
                store.BDI.c.last_harvest.isnot(None))).scalars())
            bdis = [b for b in bdis if b['name'] not in harvested]   # keep a harvest's row
            conn.execute(store.BDI.delete().where(
                store.BDI.c.name.in_([b['name'] for b in bdis])))
            if bdis:
                conn.execute(store.BDI.insert(), bdis)
    except sa.exc.IntegrityError:
        pass


def register(app, api, settings) -> None:
    """pygeoapi 0.21 answers a malformed bbox on /coverage with a 500: check it first (400).
    The grid collections join level-1 search and /bdis."""
    from flask import request
    from pygeoapi.api import validate_bbox

    from vre.errors import BAD_REQUEST, APIError

    register_catalogue(settings.index_db_url, api.config)
    from providers import basemap, coverage_view
    coverage_view.register(app, api, settings)
    basemap.register(app, api, settings)

    @app.before_request
    def _coverage_bbox():
        parts = request.path.rstrip('/').split('/')
        if len(parts) == 4 and parts[1] == 'collections' and parts[3] == 'coverage' \
                and 'bbox' in request.args:
            try:
                validate_bbox(request.args['bbox'])
            except ValueError as err:
                raise APIError(400, BAD_REQUEST, f'bbox: {err}') from None
