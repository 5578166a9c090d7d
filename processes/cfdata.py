"""Shared reading helpers of the data processes (subset, extract, plot, ...).

Why here: every process takes "a NetCDF or a CSV by reference" and must find its latitude,
longitude, time and vertical axes the same way, decode SeaDataNet's chronological Julian days,
and turn the caller's bbox / interval / CRS into clear 400 errors when they are wrong.
"""
from __future__ import annotations

import csv
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from processes.base import InputError

CRS84 = ('http://www.opengis.net/def/crs/OGC/1.3/CRS84', 'OGC:CRS84', 'CRS84', 'EPSG:4326',
         'http://www.opengis.net/def/crs/EPSG/0/4326')
NAMES = {
    'latitude': ('latitude', 'lat', 'decimallatitude', 'y'),
    'longitude': ('longitude', 'lon', 'long', 'decimallongitude', 'x'),
    'time': ('time', 'juld', 'date/time', 'date', 'datetime', 'eventdate', 'time_iso8601'),
    'vertical': ('pres', 'pressure', 'depth', 'z', 'depth [m]', 'pres_adjusted', 'altitude'),
}
STANDARD = {
    'latitude': ('latitude',), 'longitude': ('longitude',), 'time': ('time',),
    'vertical': ('sea_water_pressure', 'depth', 'altitude', 'height'),
}
NETCDF_MAGIC = (b'CDF\x01', b'CDF\x02', b'CDF\x05', b'\x89HDF')


def is_netcdf(path: Path) -> bool:
    with open(path, 'rb') as fh:
        return fh.read(4).startswith(NETCDF_MAGIC)


def _fix_chronological_julian(ds: xr.Dataset) -> xr.Dataset:
    """SeaDataNet counts days from -4713-01-01 midnight (chronological Julian day): a CF decode
    would give Julian-calendar dates 13 days off, so convert them to Gregorian UTC here."""
    for name, var in ds.variables.items():
        units = str(var.attrs.get('units', ''))
        if units.startswith('days since -4713-01-01') and var.attrs.get('calendar') == 'julian':
            days = np.asarray(var.values, dtype=float) - 2440588.0
            values = (np.datetime64('1970-01-01T00:00:00', 'ns')
                      + np.round(days * 86400e9).astype('int64').astype('timedelta64[ns]'))
            values = np.where(np.isfinite(days), values, np.datetime64('NaT'))
            attrs = {k: v for k, v in var.attrs.items()
                     if k not in ('units', 'calendar', '_FillValue')}
            ds[name] = xr.Variable(var.dims, values, attrs)
    return ds


KEEP_OPEN = 8     # files kept open per worker process (see open_netcdf)
_KEPT: OrderedDict[tuple, xr.Dataset] = OrderedDict()


def open_netcdf(path: Path, what: str = 'data', keep_open: bool = False) -> xr.Dataset:
    """A lazily opened dataset (values are read only when selected), with times decoded.

    `keep_open`: a file that many jobs read in place (a collection's grid) stays open in this
    worker process for the next job, as a data server keeps its datasets open: opening a
    NetCDF-4 file costs more than cutting a few MB out of it (netCDF-C reads the first 4 MiB
    to find the format). Each call gets its own view; closing it leaves the file open. A new
    version of the file (size or mtime) is opened anew."""
    if keep_open:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in _KEPT:
            _KEPT[key] = _open_netcdf(path, what, cache=False)  # cache=False: no value sticks
            while len(_KEPT) > KEEP_OPEN:
                _KEPT.popitem(last=False)[1].close()
        _KEPT.move_to_end(key)
        return _KEPT[key].copy()
    return _open_netcdf(path, what)


def _open_netcdf(path: Path, what: str, cache: bool = True) -> xr.Dataset:
    if not is_netcdf(path):
        raise InputError(f'{what}: not a NetCDF file')
    try:
        ds = xr.open_dataset(path, decode_times=False, decode_timedelta=False, cache=cache)
        ds = xr.decode_cf(_fix_chronological_julian(ds), decode_timedelta=False)
    except Exception as err:
        raise InputError(f'{what}: not a readable NetCDF file ({type(err).__name__}: {err})')
    return ds


def _match(name: str, attrs: dict, axis: str) -> bool:
    low = name.lower()
    std = str(attrs.get('standard_name', '')).lower()
    plain = re.sub(r'\s*\(.*\)$', '', low)          # ERDDAP .csvp: "latitude (degrees_north)"
    return plain in NAMES[axis] or std in STANDARD[axis] or (
        axis != 'vertical' and str(attrs.get('axis', '')).upper() == {'latitude': 'Y',
                                                                     'longitude': 'X',
                                                                     'time': 'T'}[axis])


def find_axes(ds: xr.Dataset) -> dict[str, str | None]:
    """Names of the latitude, longitude, time and vertical variables (None when absent);
    names listed first in NAMES win over standard_name matches (PRES before PRES_ADJUSTED)."""
    found = {}
    for axis in NAMES:
        candidates = [n for n, v in ds.variables.items() if _match(str(n), v.attrs, axis)]
        candidates.sort(key=lambda n: (NAMES[axis].index(str(n).lower())
                                       if str(n).lower() in NAMES[axis] else 99))
        found[axis] = str(candidates[0]) if candidates else None
    return found


def argo_vertical(ds: xr.Dataset, name: str) -> xr.DataArray:
    """The pressure an Argo file means: PRES_ADJUSTED in delayed/adjusted mode, PRES otherwise."""
    if name == 'PRES' and 'PRES_ADJUSTED' in ds and 'DATA_MODE' in ds:
        mode = ds['DATA_MODE'].astype(str)
        adjusted = mode.isin(['A', 'D', "b'A'", "b'D'"])
        return xr.where(adjusted, ds['PRES_ADJUSTED'], ds['PRES'])
    return ds[name]


def table_axes(columns) -> dict[str, str | None]:
    found = {}
    for axis in NAMES:
        hits = [c for c in columns if _match(str(c), {}, axis)]
        hits.sort(key=lambda c: NAMES[axis].index(re.sub(r'\s*\(.*\)$', '', str(c).lower())))
        found[axis] = hits[0] if hits else None
    return found


def read_table(path: Path, what: str = 'data', chunksize: int | None = None):
    """A CSV/TSV file as a DataFrame, or as an iterator of DataFrames with `chunksize` rows
    (large files are then filtered piece by piece, never held whole)."""
    try:
        with open(path, newline='', encoding='utf-8', errors='replace') as fh:
            head = fh.readline()
        sep = '\t' if head.count('\t') > head.count(',') else ','
        return pd.read_csv(path, sep=sep, chunksize=chunksize, low_memory=False,
                           on_bad_lines='warn', quoting=csv.QUOTE_MINIMAL)
    except Exception as err:
        raise InputError(f'{what}: not a readable CSV/TSV file ({type(err).__name__}: {err})')


def bbox_lonlat(bbox, crs: str | None) -> tuple[float, float, float, float]:
    """A bbox in lon/lat degrees; bboxes in other CRSs (any EPSG code or URI pyproj knows)
    are transformed, with densified edges so that curved borders are covered."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise InputError('bbox must be [minx, miny, maxx, maxy]')
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if x0 > x1 or y0 > y1:
        raise InputError('bbox must be [minx, miny, maxx, maxy] with min <= max '
                         '(boxes crossing the antimeridian are not supported)')
    if crs and crs not in CRS84:
        import pyproj
        try:
            src = pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError:
            raise InputError(f'bbox_crs: unknown coordinate reference system "{crs}"')
        tr = pyproj.Transformer.from_crs(src, 'EPSG:4326', always_xy=True)
        x0, y0, x1, y1 = tr.transform_bounds(x0, y0, x1, y1, densify_pts=21)
        if not all(np.isfinite([x0, y0, x1, y1])):
            raise InputError(f'bbox is outside the valid area of {crs}')
    if not (-90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise InputError('bbox latitudes must lie in [-90, 90] (is the CRS axis order right?)')
    return x0, y0, x1, y1


def _instant(text: str, what: str):
    if text in ('', '..'):
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise InputError(f'{what}: "{text}" is not an ISO 8601 date-time')
    if ts.tzinfo is not None:
        ts = ts.tz_convert('UTC').tz_localize(None)
    return np.datetime64(ts.to_datetime64(), 'ns')


def time_interval(value: str | None, what: str = 'datetime'):
    """(start, end) as numpy datetimes (None = open) from "a/b", "a/..", "../b" or one instant."""
    if not value:
        return None, None
    parts = str(value).split('/')
    if len(parts) == 1:
        t = _instant(parts[0], what)
        return t, t
    if len(parts) != 2:
        raise InputError(f'{what}: expected "start/end" with ".." for an open end')
    start, end = _instant(parts[0], what), _instant(parts[1], what)
    if start is not None and end is not None and start > end:
        raise InputError(f'{what}: start is after end')
    return start, end


def as_datetime(values) -> np.ndarray:
    """Times of a table column as naive UTC datetime64 (unparseable -> NaT)."""
    t = pd.to_datetime(pd.Series(values), errors='coerce', utc=True, format='mixed')
    return t.dt.tz_localize(None).to_numpy(dtype='datetime64[ns]')


def geodesic_km(lon0, lat0, lon, lat) -> np.ndarray:
    """WGS84 geodesic distance in km from one point to many (pyproj.Geod)."""
    import pyproj
    lon = np.broadcast_to(np.asarray(lon, dtype=float), np.shape(lat))
    lat = np.asarray(lat, dtype=float)
    _, _, dist = pyproj.Geod(ellps='WGS84').inv(np.full(lat.shape, lon0), np.full(lat.shape, lat0),
                                               lon, lat)
    return np.where(np.isfinite(lat) & np.isfinite(lon), dist / 1000.0, np.inf)


def cf_attrs(ds: xr.Dataset, title: str, source: str) -> xr.Dataset:
    ds.attrs.update({'Conventions': 'CF-1.8', 'title': title, 'source': source,
                     'history': f'{pd.Timestamp.now("UTC").isoformat()} {title}'})
    return ds


def write_netcdf(ds: xr.Dataset, target: Path) -> Path:
    """to_netcdf with the source's chunking/compression encodings dropped (they may not fit
    the cut shape) and object strings written as plain strings."""
    for name, var in list(ds.variables.items()):
        for key in ('chunksizes', 'contiguous', 'original_shape', 'preferred_chunks'):
            var.encoding.pop(key, None)
        if var.dtype == object and var.size == 0:
            # an empty text variable (Argo's HISTORY_* when no step is recorded) has no
            # element to tell xarray it is text: it would be written as float, its b' ' fill
            # value failing; write it as the characters it was read as
            ds[name] = var.astype(var.encoding.get('dtype') or 'S1')
    ds.encoding.pop('unlimited_dims', None)
    ds.to_netcdf(target, engine='netcdf4')
    return target
