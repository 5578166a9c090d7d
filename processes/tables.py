"""Writing a selection as NetCDF (CF), CSV, GeoJSON or GeoTIFF: shared by subset and the
extractors (which offer the first three; GeoTIFF is for grids only).

Why one place: every process that cuts data offers the same three formats, and a dataset
must be flattened to a table the same way (one row per observation, empty rows dropped).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from processes.base import InputError
from processes.cfdata import write_netcdf

FORMATS = {'netcdf': ('application/x-netcdf', '.nc'), 'csv': ('text/csv', '.csv'),
           'geojson': ('application/geo+json', '.geojson')}
GEOTIFF = {'geotiff': ('image/tiff; application=geotiff', '.tif')}
MAX_FEATURES = 200_000   # GeoJSON is for maps and small results; CSV/NetCDF for more


def _text(values) -> np.ndarray:
    return np.array([v.decode('utf-8', 'replace').strip() if isinstance(v, bytes) else v
                     for v in values], dtype=object)


def dataset_to_table(ds: xr.Dataset, axes: dict) -> pd.DataFrame:
    """One row per element of the observation dimensions (those of the vertical or time
    variable when 2-D, else of latitude); variables on other dimensions are left out, and
    rows whose numeric data variables are all missing are dropped."""
    shapes = [ds[axes[a]].dims for a in ('vertical', 'time', 'latitude')
              if axes.get(a) and axes[a] in ds]
    obs_dims = set(max(shapes, key=len)) if shapes else set(ds.dims)
    if axes.get('latitude') in ds.coords and ds[axes['latitude']].dims == (axes['latitude'],):
        obs_dims |= {axes['latitude'], axes['longitude']}          # a regular grid
    names = [n for n, v in ds.variables.items() if v.dims and set(v.dims) <= obs_dims]
    if not names:
        raise InputError('nothing to tabulate: no variable on the observation dimensions')
    df = ds[[n for n in names if n not in ds.dims]].to_dataframe().reset_index()
    df = df[[c for c in df.columns if c in names]]
    data = [n for n in names if n not in axes.values() and set(ds[n].dims) == obs_dims
            and np.issubdtype(ds[n].dtype, np.number)]     # blanked outside a 2-D cut
    if data:
        df = df[df[data].notna().any(axis=1)]
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = _text(df[col].to_numpy())
    return df.reset_index(drop=True)


def _json_value(v):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(v) else pd.Timestamp(v).isoformat() + 'Z'
    if isinstance(v, bytes):
        return v.decode('utf-8', 'replace')
    return v


def write_geojson(df: pd.DataFrame, lon: str, lat: str, target: Path) -> Path:
    if len(df) > MAX_FEATURES:
        raise InputError(f'the selection has {len(df)} rows, more than {MAX_FEATURES} GeoJSON '
                         'features: narrow it or ask for csv or netcdf')
    props = [c for c in df.columns if c not in (lon, lat)]
    features = []
    for row in df.itertuples(index=False, name=None):
        values = dict(zip(df.columns, row))
        x, y = values[lon], values[lat]
        geom = None if pd.isna(x) or pd.isna(y) else {'type': 'Point',
                                                       'coordinates': [float(x), float(y)]}
        features.append({'type': 'Feature', 'geometry': geom,
                         'properties': {p: _json_value(values[p]) for p in props}})
    target.write_text(json.dumps({'type': 'FeatureCollection', 'features': features}))
    return target


def table_to_dataset(df: pd.DataFrame, axes: dict, title: str) -> xr.Dataset:
    """A table as a CF point dataset (dimension obs); names made NetCDF-safe, originals kept."""
    ds = xr.Dataset()
    for col in df.columns:
        name = re.sub(r'[^A-Za-z0-9_]+', '_', str(col)).strip('_') or 'column'
        values = df[col].to_numpy()
        if values.dtype == object:
            values = values.astype(str)
        ds[name] = ('obs', values, {'long_name': str(col)})
        if col == axes.get('latitude'):
            ds[name].attrs.update(standard_name='latitude', units='degrees_north')
        elif col == axes.get('longitude'):
            ds[name].attrs.update(standard_name='longitude', units='degrees_east')
        elif col == axes.get('time'):
            ds[name].attrs.update(standard_name='time')
    ds.attrs.update({'Conventions': 'CF-1.8', 'featureType': 'point', 'title': title})
    return ds


def _regular_axis(values: np.ndarray, name: str) -> float:
    """The constant step of a grid axis; GeoTIFF has one geotransform, so no irregular axes."""
    if values.size < 2:
        raise InputError(f'GeoTIFF needs at least two cells along {name}')
    step = np.diff(values.astype(float))
    if not np.allclose(step, step[0], rtol=1e-4, atol=0):
        raise InputError(f'GeoTIFF needs a regular grid: {name} is not evenly spaced')
    return float(step[0])


def write_geotiff(ds: xr.Dataset, axes: dict, target: Path) -> int:
    """A lat/lon grid as a north-up GeoTIFF in EPSG:4326, one band per 2-D slice of each data
    variable (other dimensions such as time or depth give more bands); NaN is nodata.
    Returns the number of bands."""
    import rasterio
    from rasterio.transform import from_origin
    lat, lon = axes.get('latitude'), axes.get('longitude')
    if not (lat in ds.dims and lon in ds.dims):
        raise InputError('GeoTIFF is for gridded data (latitude and longitude dimensions); '
                         'this selection holds points or profiles: ask for netcdf, csv or '
                         'geojson')
    dy = _regular_axis(ds[lat].values, lat)
    dx = _regular_axis(ds[lon].values, lon)
    if dx < 0:
        ds = ds.isel({lon: slice(None, None, -1)})
        dx = -dx
    if dy > 0:                                          # rows from north to south
        ds = ds.isel({lat: slice(None, None, -1)})
    dy = abs(dy)
    bands, names, wide = [], [], False
    for name, var in ds.data_vars.items():
        if not ({lat, lon} <= set(var.dims) and np.issubdtype(var.dtype, np.number)):
            continue
        others = [d for d in var.dims if d not in (lat, lon)]
        wide |= var.dtype.itemsize > 4
        stacked = var.transpose(*others, lat, lon)
        for index in np.ndindex(*[ds.sizes[d] for d in others]):
            band = stacked[index] if others else stacked
            label = ', '.join(f'{d}={ds[d].values[i]}' if d in ds.coords else f'{d}={i}'
                              for d, i in zip(others, index))
            bands.append(np.asarray(band.values, dtype='float64'))
            names.append(f'{name} {label}'.strip())
    if not bands:
        raise InputError('GeoTIFF: no numeric variable on the latitude/longitude grid')
    dtype = 'float64' if wide else 'float32'
    x0 = float(ds[lon].values[0]) - dx / 2
    y0 = float(ds[lat].values[0]) + dy / 2
    profile = {'driver': 'GTiff', 'width': ds.sizes[lon], 'height': ds.sizes[lat],
               'count': len(bands), 'dtype': dtype, 'crs': 'EPSG:4326', 'nodata': np.nan,
               'transform': from_origin(x0, y0, dx, dy), 'compress': 'deflate'}
    with rasterio.open(target, 'w', **profile) as dst:
        for i, (band, label) in enumerate(zip(bands, names), start=1):
            dst.write(band.astype(dtype), i)
            dst.set_band_description(i, label)
    return len(bands)


def write_selection(sel, axes: dict, fmt: str, workdir: Path, stem: str, title: str):
    """Writes a Dataset or a DataFrame in the asked format; returns (path, media type, rows)."""
    if fmt not in FORMATS and fmt not in GEOTIFF:
        raise InputError(f'output_format must be one of {sorted(FORMATS | GEOTIFF)}')
    media, suffix = {**FORMATS, **GEOTIFF}[fmt]
    target = workdir / f'{stem}{suffix}'
    if fmt == 'geotiff':
        if not isinstance(sel, xr.Dataset):
            raise InputError('GeoTIFF is for gridded data; a table (CSV input) holds points: '
                             'ask for netcdf, csv or geojson')
        write_geotiff(sel, axes, target)
        return target, media, None
    if fmt == 'netcdf':
        ds = sel if isinstance(sel, xr.Dataset) else table_to_dataset(sel, axes, title)
        ds.attrs.update({'Conventions': 'CF-1.8', 'title': title})
        write_netcdf(ds, target)
        return target, media, None
    df = sel if isinstance(sel, pd.DataFrame) else dataset_to_table(sel, axes)
    if fmt == 'csv':
        df.to_csv(target, index=False, date_format='%Y-%m-%dT%H:%M:%SZ')
    else:
        if not (axes.get('longitude') in df.columns and axes.get('latitude') in df.columns):
            raise InputError('GeoJSON needs latitude and longitude columns in the selection')
        write_geojson(df, axes['longitude'], axes['latitude'], target)
    return target, media, len(df)
