"""`climatology` and `anomaly` of a NetCDF variable, gridded (time, ..., lat, lon) or station
(time) or SeaDataNet time series (INSTANCE, MAXT).

Means per month or season are sums and counts by np.bincount over a group index (one pass, no
per-group loop, any layout). The output follows CF 7.4 (climatological statistics): a time
coordinate with a `climatology` attribute naming `climatology_bounds`, and cell_methods
"time: mean within years time: mean over years".
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from processes.base import InputError, Output, VREProcess
from processes.cfdata import cf_attrs, find_axes, open_netcdf, write_netcdf

SEASONS = {'DJF': (12, 1, 2), 'MAM': (3, 4, 5), 'JJA': (6, 7, 8), 'SON': (9, 10, 11)}
SEASON_OF_MONTH = {m: i for i, months in enumerate(SEASONS.values()) for m in months}
CELL_METHODS = 'time: mean within years time: mean over years'
NETCDF = 'application/x-netcdf'


def group_index(times: np.ndarray, period: str) -> np.ndarray:
    """0-11 (month) or 0-3 (DJF, MAM, JJA, SON) per time; -1 where the time is missing."""
    t = pd.DatetimeIndex(np.asarray(times).ravel())
    month = np.where(t.isna(), 0, t.month).astype(int)
    g = month - 1 if period == 'month' else np.vectorize(SEASON_OF_MONTH.get)(
        np.where(month == 0, 1, month))
    return np.where(t.isna(), -1, g).reshape(np.shape(times))


def _layout(ds: xr.Dataset, what: str):
    axes = find_axes(ds)
    name = axes['time']
    if name is None or not np.issubdtype(ds[name].dtype, np.datetime64):
        raise InputError(f'{what}: no decodable time variable')
    if ds[name].ndim not in (1, 2):
        raise InputError(f'{what}: time must have one dimension (or INSTANCE x time)')
    return name, ds[name]


def _variables(ds, time, requested):
    sample_dim = time.dims[-1]
    if requested:
        bad = [v for v in requested if v not in ds.data_vars]
        if bad:
            raise InputError(f'unknown variable(s) {bad}; the file has '
                             f'{sorted(map(str, ds.data_vars))}')
        for v in requested:
            if not set(time.dims) <= set(ds[v].dims):
                raise InputError(f'{v} does not vary with time ({ds[v].dims})')
            if not np.issubdtype(ds[v].dtype, np.number):
                raise InputError(f'{v} is not numeric')
        return list(requested)
    names = [str(n) for n, v in ds.data_vars.items()
             if set(time.dims) <= set(v.dims) and sample_dim in v.dims
             and np.issubdtype(v.dtype, np.floating) and not str(n).upper().endswith('_QC')]
    if not names:
        raise InputError('no numeric variable varies with time; name one in "variable"')
    return names


def _group_means(values: xr.DataArray, groups: xr.DataArray, n_groups: int):
    """Mean and count per group along the last time dimension: (..., n_groups) arrays."""
    sample = groups.dims[-1]
    other = [d for d in values.dims if d != sample]
    v = values.transpose(*other, sample)
    g = groups.broadcast_like(v).transpose(*other, sample).values
    data = v.values.astype(float).reshape(-1, v.shape[-1])
    g = g.reshape(data.shape)
    ok = np.isfinite(data) & (g >= 0)
    rows = np.broadcast_to(np.arange(data.shape[0])[:, None], data.shape)
    flat = (rows * n_groups + g)[ok]
    size = data.shape[0] * n_groups
    sums = np.bincount(flat, weights=data[ok], minlength=size)
    counts = np.bincount(flat, minlength=size)
    with np.errstate(invalid='ignore', divide='ignore'):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    shape = v.shape[:-1] + (n_groups,)
    return other, means.reshape(shape), counts.reshape(shape)


def _clim_time(times: np.ndarray, groups: np.ndarray, period: str):
    """Per group: a representative time (the 16th of the group's middle month in the middle
    year) and bounds from the start of the first month with data to the end of the last."""
    t = pd.DatetimeIndex(np.asarray(times).ravel())
    g = np.asarray(groups).ravel()
    labels = [f'{m:02d}' for m in range(1, 13)] if period == 'month' else list(SEASONS)
    mids, bounds = [], []
    for k in range(len(labels)):
        tk = t[g == k]
        if len(tk) == 0:
            mids.append(np.datetime64('NaT'))
            bounds.append((np.datetime64('NaT'), np.datetime64('NaT')))
            continue
        first, last = tk.min(), tk.max()
        month = k + 1 if period == 'month' else list(SEASONS.values())[k][1]
        mids.append(pd.Timestamp(year=(first.year + last.year) // 2, month=month, day=16))
        start = pd.Timestamp(year=first.year, month=first.month, day=1)
        end = pd.Timestamp(year=last.year, month=last.month, day=1) + pd.offsets.MonthBegin(1)
        bounds.append((start, end))
    return (labels, np.array(mids, dtype='datetime64[ns]'),
            np.array(bounds, dtype='datetime64[ns]'))


def _static(ds, time):
    """The dataset without what varies along time (coordinates, station metadata stay)."""
    return ds.drop_vars([n for n, v in ds.variables.items() if time.dims[-1] in v.dims])


def climatology(ds: xr.Dataset, variables: list[str], period: str) -> xr.Dataset:
    time_name, time = _layout(ds, 'data')
    n_groups = 12 if period == 'month' else 4
    groups = xr.DataArray(group_index(time.values, period), dims=time.dims)
    labels, mids, bounds = _clim_time(time.values, groups.values, period)
    present = ~np.isnat(mids)            # months or seasons without data are left out
    if not present.any():
        raise InputError('data: no valid times')
    out = _static(ds, time)
    for name in variables:
        other, means, counts = _group_means(ds[name], groups, n_groups)
        means, counts = means[..., present], counts[..., present]
        dims = other + ['time']
        attrs = {k: v for k, v in ds[name].attrs.items()
                 if k not in ('_FillValue', 'missing_value', 'ancillary_variables')}
        attrs['cell_methods'] = CELL_METHODS
        order = ['time' if d == time.dims[-1] else d for d in ds[name].dims]
        out[name] = xr.Variable(dims, means, attrs).transpose(*order)
        out[f'{name}_count'] = xr.Variable(dims, counts.astype('int32'), {
            'long_name': f'number of values of {name} averaged', 'units': '1',
            'cell_methods': 'time: sum within years time: sum over years'}).transpose(*order)
    out = out.assign_coords(time=('time', mids[present], {
        'standard_name': 'time', 'axis': 'T', 'climatology': 'climatology_bounds'}))
    out['climatology_bounds'] = xr.Variable(('time', 'nv'), bounds[present])
    out['period'] = xr.Variable('time', np.array(labels, dtype=object)[present],
                                {'long_name': f'climatological {period}'})
    out.attrs['climatology_period'] = period
    return out


def anomaly(ds: xr.Dataset, clim: xr.Dataset, variables: list[str], period: str) -> xr.Dataset:
    """Each value minus the climatology of its month or season (same station/grid)."""
    time_name, time = _layout(ds, 'data')
    labels = [f'{m:02d}' for m in range(1, 13)] if period == 'month' else list(SEASONS)
    if 'period' not in clim:
        raise InputError('climatology: no "period" variable (not made by the climatology '
                         'process?)')
    have = [str(p) for p in clim['period'].values]
    unknown = set(have) - set(labels)
    if unknown:
        raise InputError(f'climatology: periods {sorted(unknown)} are not {period}s')
    # group of each time -> position in the climatology (-1: that month has no climatology)
    where = np.array([have.index(k) if k in have else -1 for k in labels] + [-1])
    groups = where[group_index(time.values, period)]
    sample = time.dims[-1]
    out = ds.drop_vars([n for n, v in ds.data_vars.items() if sample in v.dims
                        and n not in variables])
    for name in variables:
        if name not in clim:
            raise InputError(f'climatology: has no variable {name}')
        c = clim[name]
        other = [d for d in ds[name].dims if d != sample]
        if [c.sizes.get(d) for d in other] != [ds.sizes[d] for d in other]:
            raise InputError(f'climatology: {name} is not on the grid of the data')
        v = ds[name].transpose(*other, sample)
        g = xr.DataArray(groups, dims=time.dims).broadcast_like(v).transpose(*other, sample)
        cv = c.transpose(*other, 'time').values
        picked = np.take_along_axis(cv, np.where(g.values < 0, 0, g.values), axis=-1)
        values = np.where(g.values < 0, np.nan, v.values.astype(float) - picked)
        attrs = {k: val for k, val in ds[name].attrs.items()
                 if k not in ('_FillValue', 'missing_value', 'ancillary_variables',
                              'standard_name')}
        attrs['long_name'] = f"anomaly of {ds[name].attrs.get('long_name', name)}"
        out[name] = xr.Variable(other + [sample], values, attrs).transpose(*ds[name].dims)
    out.attrs['climatology_period'] = period
    return out


COMMON_INPUTS = {
    'data': {'title': 'Data', 'description': 'NetCDF with a time axis: a grid (time, [depth,] '
                                             'lat, lon), a station series (time) or a '
                                             'SeaDataNet time series (INSTANCE, MAXT).',
             'schema': {'type': 'string', 'contentEncoding': 'binary',
                        'contentMediaType': NETCDF},
             'minOccurs': 1, 'maxOccurs': 1},
    'variable': {'title': 'Variables', 'description': 'Variables to average (default: every '
                                                      'floating-point variable along time, '
                                                      'QC flags left out).',
                 'schema': {'type': 'string'}, 'minOccurs': 0, 'maxOccurs': 'unbounded'},
    'period': {'title': 'Period', 'description': 'month (12 values) or season (DJF, MAM, JJA, '
                                                 'SON).',
               'schema': {'type': 'string', 'enum': ['month', 'season'], 'default': 'month'},
               'minOccurs': 0, 'maxOccurs': 1},
}


def _names(value):
    return [value] if isinstance(value, str) else list(value or [])


class ClimatologyProcess(VREProcess):
    METADATA = {
        'version': '1.0.0', 'id': 'climatology',
        'title': {'en': 'Monthly or seasonal climatology'},
        'description': {'en': 'Mean of each month (or season) over all years of a gridded or '
                              'station NetCDF variable, with the number of values averaged; '
                              'CF climatological time (climatology_bounds) and cell_methods '
                              '"time: mean within years time: mean over years".'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['climatology', 'monthly mean', 'seasonal mean', 'CF'],
        'links': [{'type': 'text/html', 'rel': 'about', 'title': 'CF 7.4 climatological statistics',
                   'href': 'https://cfconventions.org/Data/cf-conventions/cf-conventions-1.11/'
                           'cf-conventions.html#climatological-statistics', 'hreflang': 'en'}],
        'inputs': COMMON_INPUTS,
        'outputs': {'climatology': {'title': 'Climatology (NetCDF)',
                                    'description': 'One time step per month or season.',
                                    'schema': {'type': 'string', 'contentEncoding': 'binary',
                                               'contentMediaType': NETCDF}}},
        'example': {'inputs': {'data': {'href': 'https://example.org/sst_monthly.nc'},
                               'variable': 'sst', 'period': 'season'}},
    }

    def run(self, inputs, ctx):
        period = inputs.get('period', 'month')
        with open_netcdf(ctx.input_file(inputs['data'], '.nc')) as ds:
            _, time = _layout(ds, 'data')
            names = _variables(ds, time, _names(inputs.get('variable')))
            ctx.progress(20, f'averaging {", ".join(names)} per {period}')
            out = climatology(ds.load(), names, period)
        cf_attrs(out, f'{period}ly climatology of {", ".join(names)}', 'VRE climatology process')
        target = write_netcdf(out, ctx.workdir / 'climatology.nc')
        return {'climatology': Output(path=target, media_type=NETCDF)}


class AnomalyProcess(VREProcess):
    METADATA = {
        'version': '1.0.0', 'id': 'anomaly',
        'title': {'en': 'Anomaly from a climatology'},
        'description': {'en': 'Each value minus the climatology of its month or season: the '
                              'climatology given (output of the climatology process, e.g. '
                              'nested) or, by default, the one of the data itself.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['anomaly', 'climatology', 'deseasonalise'],
        'links': [],
        'inputs': {**COMMON_INPUTS, 'climatology': {
            'title': 'Climatology', 'description': 'NetCDF of the climatology process on the same '
                                                   'grid or station (default: computed here).',
            'schema': {'type': 'string', 'contentEncoding': 'binary',
                       'contentMediaType': NETCDF}, 'minOccurs': 0, 'maxOccurs': 1}},
        'outputs': {'anomaly': {'title': 'Anomaly (NetCDF)', 'description': 'Same layout as the data.',
                                'schema': {'type': 'string', 'contentEncoding': 'binary',
                                           'contentMediaType': NETCDF}}},
        'example': {'inputs': {'data': {'href': 'https://example.org/sst_monthly.nc'},
                               'variable': 'sst'}},
    }

    def run(self, inputs, ctx):
        period = inputs.get('period', 'month')
        with open_netcdf(ctx.input_file(inputs['data'], '.nc')) as ds:
            _, time = _layout(ds, 'data')
            names = _variables(ds, time, _names(inputs.get('variable')))
            ds = ds.load()
        if inputs.get('climatology'):
            with open_netcdf(ctx.input_file(inputs['climatology'], '.nc'), 'climatology') as c:
                clim = c.load()
            if clim.attrs.get('climatology_period', period) != period:
                raise InputError(f'climatology is per {clim.attrs["climatology_period"]}, '
                                 f'period is {period}')
        else:
            ctx.progress(20, 'computing the climatology')
            clim = climatology(ds, names, period)
        ctx.progress(60, 'subtracting')
        out = anomaly(ds, clim, names, period)
        cf_attrs(out, f'anomaly of {", ".join(names)} from the {period}ly climatology',
                 'VRE anomaly process')
        target = write_netcdf(out, ctx.workdir / 'anomaly.nc')
        return {'anomaly': Output(path=target, media_type=NETCDF)}
