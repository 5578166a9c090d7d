"""`subset`: cut a NetCDF or CSV file by bbox, time interval, vertical range and variables;
written as NetCDF (CF), CSV, GeoJSON or GeoTIFF (grids).

NetCDF files are opened lazily and cut with index selections, so only the selected part is
read; CSV files are filtered in chunks of rows. Masks on one dimension (positions and times of
profiles or stations, grid axes) select indices; masks on two dimensions (Argo PRES per
profile and level, a station's time series) blank the numeric values outside the range and
trim the levels that hold nothing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from processes.base import InputError, Output, VREProcess
from processes.cfdata import (argo_vertical, as_datetime, bbox_lonlat, find_axes, is_netcdf,
                              open_netcdf, read_table, table_axes, time_interval)
from processes.tables import FORMATS, GEOTIFF, write_selection

CHUNK_ROWS = 10_000
DATA_INPUT = {
    'title': 'Data file',
    'description': 'A NetCDF file (Argo, SeaDataNet, ERDDAP, CF grids) or a CSV/TSV table with '
                   'latitude/longitude (and time, depth) columns, by reference ({"href": URL}); '
                   'the format is recognised from the content.',
    'schema': {'type': 'string', 'contentEncoding': 'binary'},
    'minOccurs': 1, 'maxOccurs': 1,
}
FORMAT_INPUT = {
    'title': 'Output format', 'description': 'netcdf (CF), csv or geojson (points).',
    'schema': {'type': 'string', 'enum': sorted(FORMATS), 'default': 'netcdf'},
    'minOccurs': 0, 'maxOccurs': 1,
}
SUBSET_FORMAT_INPUT = {
    'title': 'Output format',
    'description': 'netcdf (CF), csv, geojson (points) or geotiff (latitude/longitude grids '
                   'only: EPSG:4326, one band per variable and time/depth slice, NaN nodata).',
    'schema': {'type': 'string', 'enum': sorted(FORMATS | GEOTIFF), 'default': 'netcdf'},
    'minOccurs': 0, 'maxOccurs': 1,
}
VARIABLES_INPUT = {
    'title': 'Variables',
    'description': 'Names of the variables or columns to keep (axes and QC/adjusted companions '
                   'are always kept); all when omitted.',
    'schema': {'type': 'array', 'items': {'type': 'string'}, 'minItems': 1},
    'minOccurs': 0, 'maxOccurs': 1,
}


def lon_inside(lon, x0: float, x1: float):
    """Longitudes in [x0, x1] whatever the file's convention (-180..180 or 0..360)."""
    if x1 - x0 >= 360:
        return np.isfinite(lon) if isinstance(lon, np.ndarray) else lon.notnull()
    return ((lon - x0) % 360) <= (x1 - x0)


def companions(ds_or_columns, names: list[str]) -> list[str]:
    """The variables that qualify the asked ones: QC flags and adjusted values."""
    have = set(map(str, ds_or_columns))
    extra = []
    for n in names:
        for suffix in ('_QC', '_ADJUSTED', '_ADJUSTED_QC', '_ADJUSTED_ERROR', '_SEADATANET_QC',
                       '_qc', '_adjusted', '_adjusted_qc'):
            if n + suffix in have:
                extra.append(n + suffix)
    return extra


def _on_values(var: xr.DataArray, test) -> xr.DataArray:
    """`test` run on the values of `var` with numpy, as a mask along its dimensions
    (xarray's own operators align and wrap at every step: a quarter of a small cut)."""
    return xr.DataArray(test(var.values), dims=var.dims)


def _masks(ds, axes, box, t0, t1, z0, z1) -> list[xr.DataArray]:
    masks = []
    if box is not None and axes['latitude'] and axes['longitude']:
        masks.append(_on_values(ds[axes['longitude']],
                                lambda lon: lon_inside(lon, box[0], box[2])))
        masks.append(_on_values(ds[axes['latitude']],
                                lambda lat: (lat >= box[1]) & (lat <= box[3])))
    elif box is not None:
        raise InputError('bbox given but the file has no latitude/longitude variables')
    if (t0 is not None or t1 is not None):
        if not axes['time']:
            raise InputError('datetime given but the file has no time variable')
        t = ds[axes['time']]
        masks.append((t >= t0 if t0 is not None else t.notnull())
                     & (t <= t1 if t1 is not None else t.notnull()))
    if z0 is not None or z1 is not None:
        if not axes['vertical']:
            raise InputError('a vertical range was given but the file has no depth or '
                             'pressure variable')
        z = argo_vertical(ds, axes['vertical'])
        masks.append((z >= z0 if z0 is not None else z.notnull())
                     & (z <= z1 if z1 is not None else z.notnull()))
    return masks


def cut_dataset(ds: xr.Dataset, axes, box, t0, t1, z0, z1) -> xr.Dataset:
    masks = _masks(ds, axes, box, t0, t1, z0, z1)
    by_dim: dict[str, np.ndarray] = {}
    for m in [m for m in masks if m.ndim == 1]:
        dim = m.dims[0]
        by_dim[dim] = by_dim.get(dim, True) & m.values
    for dim, keep in by_dim.items():
        if not keep.any():
            raise InputError(f'the selection is empty: nothing along "{dim}" lies inside '
                             'the bbox / datetime / vertical range')
    ds = ds.isel({d: np.nonzero(k)[0] for d, k in by_dim.items()})
    for m in [m for m in masks if m.ndim > 1]:
        m = m.isel({d: np.nonzero(k)[0] for d, k in by_dim.items() if d in m.dims}).load()
        if not m.values.any():
            raise InputError('the selection is empty: no value lies inside the datetime / '
                             'vertical range in the selected area')
        for name in list(ds.data_vars):
            var = ds[name]
            if set(m.dims) <= set(var.dims) and np.issubdtype(var.dtype, np.number):
                ds[name] = var.where(m)
        for dim in m.dims:       # trim levels / times where no element is inside
            others = [d for d in m.dims if d != dim]
            ds = ds.isel({dim: np.nonzero(m.any(others).values)[0]})
            m = m.isel({dim: np.nonzero(m.any(others).values)[0]})
    return ds


def cut_table(chunks, box, t0, t1, z0, z1, variables, ctx, limit_bytes):
    """Rows inside the cut, read chunk by chunk; returns (DataFrame, axes)."""
    parts, axes, kept_bytes, seen = [], None, 0, 0
    for chunk in chunks:
        if axes is None:
            axes = table_axes(chunk.columns)
            _check_table_axes(axes, box, t0, t1, z0, z1)
            columns = list(chunk.columns)
            if variables:
                unknown = [v for v in variables if v not in columns]
                if unknown:
                    raise InputError(f'unknown variables {unknown}; the file has {columns}')
                want = [c for c in columns if c in set(variables) | set(axes.values())
                        | set(companions(columns, variables))]
            else:
                want = columns
        keep = np.ones(len(chunk), dtype=bool)
        if box is not None:
            lon = pd.to_numeric(chunk[axes['longitude']], errors='coerce').to_numpy()
            lat = pd.to_numeric(chunk[axes['latitude']], errors='coerce').to_numpy()
            keep &= lon_inside(lon, box[0], box[2]) & (lat >= box[1]) & (lat <= box[3])
        if t0 is not None or t1 is not None:
            t = as_datetime(chunk[axes['time']])
            keep &= ~np.isnat(t)
            keep &= (t >= t0 if t0 is not None else True) & (t <= t1 if t1 is not None else True)
        if z0 is not None or z1 is not None:
            z = pd.to_numeric(chunk[axes['vertical']], errors='coerce').to_numpy()
            keep &= (z >= (z0 if z0 is not None else -np.inf)) & \
                (z <= (z1 if z1 is not None else np.inf))
        part = chunk.loc[keep, want]
        kept_bytes += int(part.memory_usage(deep=True).sum())
        if kept_bytes > limit_bytes:
            raise InputError(f'the selection is too large (over {limit_bytes} bytes): '
                             'narrow the bbox, time interval or variables')
        parts.append(part)
        seen += len(chunk)
        ctx.progress(min(80, 5 + seen // CHUNK_ROWS), f'{seen} rows read')  # size unknown ahead
    if axes is None:
        raise InputError('data: the table has no rows')
    df = pd.concat(parts, ignore_index=True)
    if df.empty:
        raise InputError('the selection is empty: no row lies inside the bbox / datetime / '
                         'vertical range')
    if axes['time']:
        times = as_datetime(df[axes['time']])
        if not np.isnat(times).all():
            df[axes['time']] = times
    return df, axes


def _check_table_axes(axes, box, t0, t1, z0, z1):
    if box is not None and not (axes['latitude'] and axes['longitude']):
        raise InputError('bbox given but the table has no latitude/longitude columns')
    if (t0 is not None or t1 is not None) and not axes['time']:
        raise InputError('datetime given but the table has no time column')
    if (z0 is not None or z1 is not None) and not axes['vertical']:
        raise InputError('a vertical range was given but the table has no depth or pressure '
                         'column')


def select_variables(ds: xr.Dataset, axes: dict, variables) -> xr.Dataset:
    if not variables:
        return ds
    unknown = [v for v in variables if v not in ds.variables]
    if unknown:
        raise InputError(f'unknown variables {unknown}; the file has {sorted(map(str, ds.data_vars))}')
    keep = set(variables) | {a for a in axes.values() if a} | set(companions(ds.variables, variables))
    if 'PRES_ADJUSTED' in keep or 'DATA_MODE' in ds:
        keep |= {v for v in ('PRES_ADJUSTED', 'DATA_MODE', 'PLATFORM_NUMBER', 'CYCLE_NUMBER')
                 if v in ds}
    return ds[[v for v in ds.data_vars if v in keep]].set_coords(
        [c for c in ds.coords if c in keep])


class SubsetProcess(VREProcess):
    METADATA = {
        'version': '1.0.0',
        'id': 'subset',
        'title': {'en': 'Subset a NetCDF or CSV file'},
        'description': {'en': 'Cuts a NetCDF (CF, Argo, SeaDataNet, ERDDAP) or CSV/TSV file given '
                              'by reference by bounding box, time interval, vertical range '
                              '(pressure in dbar or depth in m, as the file has it; Argo '
                              'adjusted pressure in delayed/adjusted mode) and variables, and '
                              'writes the cut as CF NetCDF, CSV, GeoJSON points or GeoTIFF (grids). NetCDF is read '
                              'lazily and CSV in chunks, so only the selection is held.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['subset', 'bbox', 'time', 'depth', 'NetCDF', 'CSV', 'GeoJSON', 'GeoTIFF'],
        'links': [],
        'inputs': {
            'data': DATA_INPUT,
            'bbox': {
                'title': 'Bounding box', 'description': '[minx, miny, maxx, maxy] in bbox_crs.',
                'schema': {'type': 'array', 'items': {'type': 'number'}, 'minItems': 4,
                           'maxItems': 4},
                'minOccurs': 0, 'maxOccurs': 1,
            },
            'bbox_crs': {
                'title': 'CRS of the bbox',
                'description': 'CRS84 (lon, lat; default) or any EPSG code/URI; other CRSs are '
                               'transformed to lon/lat with pyproj.',
                'schema': {'type': 'string',
                           'default': 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'},
                'minOccurs': 0, 'maxOccurs': 1,
            },
            'datetime': {
                'title': 'Time interval',
                'description': 'ISO 8601 instant or interval "start/end", ".." for an open end '
                               '(UTC when no offset is given).',
                'schema': {'type': 'string'}, 'minOccurs': 0, 'maxOccurs': 1,
            },
            'z_min': {
                'title': 'Vertical minimum', 'description': 'Lowest pressure (dbar) or depth (m).',
                'schema': {'type': 'number'}, 'minOccurs': 0, 'maxOccurs': 1,
            },
            'z_max': {
                'title': 'Vertical maximum', 'description': 'Highest pressure (dbar) or depth (m).',
                'schema': {'type': 'number'}, 'minOccurs': 0, 'maxOccurs': 1,
            },
            'variables': VARIABLES_INPUT,
            'output_format': SUBSET_FORMAT_INPUT,
        },
        'outputs': {
            'subset': {
                'title': 'The cut',
                'description': 'NetCDF (application/x-netcdf), CSV (text/csv), GeoJSON '
                               '(application/geo+json) or GeoTIFF (image/tiff; '
                               'application=geotiff), as output_format asks.',
                'schema': {'type': 'string', 'contentEncoding': 'binary'},
            },
            'summary': {
                'title': 'Summary', 'description': 'Sizes of the cut and the axes used.',
                'schema': {'type': 'object', 'contentMediaType': 'application/json'},
            },
        },
        'example': {'inputs': {
            'data': {'href': 'https://data-argo.ifremer.fr/dac/coriolis/3902131/3902131_prof.nc'},
            'bbox': [0, -10, 10, 0], 'datetime': '2018-03-01T00:00:00Z/2018-12-31T23:59:59Z',
            'z_min': 0, 'z_max': 200, 'variables': ['TEMP', 'PSAL'], 'output_format': 'netcdf'}},
    }

    def run(self, inputs, ctx):
        box = (bbox_lonlat(inputs['bbox'], inputs.get('bbox_crs'))
               if inputs.get('bbox') is not None else None)
        t0, t1 = time_interval(inputs.get('datetime'))
        z0, z1 = inputs.get('z_min'), inputs.get('z_max')
        if z0 is not None and z1 is not None and z0 > z1:
            raise InputError('z_min is greater than z_max')
        fmt = inputs.get('output_format', 'netcdf')
        variables = inputs.get('variables')
        path = ctx.input_file(inputs['data'])
        ctx.progress(5, 'input read')
        if is_netcdf(path):
            # a file outside the job's folder is read in place (a collection): kept open
            with open_netcdf(path, 'data', keep_open=not path.is_relative_to(ctx.workdir)) as ds:
                axes = find_axes(ds)
                ds = select_variables(ds, axes, variables)
                sel = cut_dataset(ds, axes, box, t0, t1, z0, z1)
                size = sum(v.nbytes for v in sel.variables.values())
                if size > ctx.max_input_bytes:
                    raise InputError(f'the selection is too large ({size} bytes, limit '
                                     f'{ctx.max_input_bytes}): narrow the bbox, time interval, '
                                     'vertical range or variables')
                ctx.progress(50, 'reading the selection')
                sel = sel.load()
                sel.attrs['history'] = (str(sel.attrs.get('history', '')) +
                                        '\nsubset by the VRE subset process').strip()
                target, media, rows = write_selection(sel, axes, fmt, ctx.workdir, 'subset',
                                                      'subset')
                dims = {str(k): int(v) for k, v in sel.sizes.items()}
        else:
            chunks = read_table(path, 'data', chunksize=CHUNK_ROWS)
            df, axes = cut_table(chunks, box, t0, t1, z0, z1, variables, ctx,
                                 ctx.max_input_bytes)
            target, media, rows = write_selection(df, axes, fmt, ctx.workdir, 'subset', 'subset')
            dims = {'obs': len(df)}
        summary = {'format': fmt, 'dimensions': dims, 'rows': rows,
                   'axes': {k: v for k, v in axes.items() if v},
                   'bbox_lonlat': list(box) if box else None}
        return {'subset': Output(path=target, media_type=media), 'summary': Output(value=summary)}
