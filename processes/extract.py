"""`extract-profile` and `extract-timeseries`: data at a point, nearest within a tolerance.

Two layouts are understood. Grids (latitude and longitude are dimension coordinates): the
nearest node, if it lies within the tolerance. Collections of profiles or stations (latitude
and longitude along one instance dimension, as Argo, SeaDataNet and ERDDAP files have): the
instances within the tolerance, by WGS84 geodesic distance (pyproj).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from processes.base import InputError, Output, VREProcess
from processes.cfdata import argo_vertical, find_axes, geodesic_km, open_netcdf, time_interval
from processes.subset import DATA_INPUT, FORMAT_INPUT, VARIABLES_INPUT, select_variables
from processes.tables import write_selection

POINT_INPUTS = {
    'longitude': {'title': 'Longitude', 'description': 'Of the point, degrees east (WGS84).',
                  'schema': {'type': 'number', 'minimum': -180, 'maximum': 360},
                  'minOccurs': 1, 'maxOccurs': 1},
    'latitude': {'title': 'Latitude', 'description': 'Of the point, degrees north (WGS84).',
                 'schema': {'type': 'number', 'minimum': -90, 'maximum': 90},
                 'minOccurs': 1, 'maxOccurs': 1},
    'tolerance_km': {'title': 'Search radius',
                     'description': 'Largest geodesic distance from the point to the data, km.',
                     'schema': {'type': 'number', 'exclusiveMinimum': 0, 'maximum': 20000,
                                'default': 50}, 'minOccurs': 0, 'maxOccurs': 1},
}
COMMON_OUTPUTS = {
    'summary': {'title': 'Summary',
                'description': 'What was taken: position, distance (km), time, sizes.',
                'schema': {'type': 'object', 'contentMediaType': 'application/json'}},
}


def _locate(ds: xr.Dataset, axes: dict, lon: float, lat: float, tol: float):
    """('grid', {lat_dim: i, lon_dim: j}, km) or ('instances', dim, indices, km-array)."""
    if not (axes['latitude'] and axes['longitude']):
        raise InputError('data: no latitude/longitude variables found')
    la, lo = ds[axes['latitude']], ds[axes['longitude']]
    if la.dims == (axes['latitude'],) and lo.dims == (axes['longitude'],):
        i = int(np.nanargmin(np.abs(la.values - lat)))
        j = int(np.nanargmin(np.abs(((lo.values - lon + 180) % 360) - 180)))
        km = float(geodesic_km(lon, lat, lo.values[j], np.array(la.values[i])))
        if km > tol:
            raise InputError(f'no grid point within {tol:g} km of ({lon}, {lat}); the nearest is '
                             f'{km:.1f} km away')
        return 'grid', {la.dims[0]: i, lo.dims[0]: j}, km
    if la.ndim != 1 or la.dims != lo.dims:
        raise InputError('data: latitude/longitude layout not supported (need a grid or one '
                         'instance dimension)')
    km = geodesic_km(lon, lat, lo.values, la.values)
    near = np.flatnonzero(km <= tol)
    if near.size == 0:
        raise InputError(f'no profile or station within {tol:g} km of ({lon}, {lat}); the '
                         f'nearest is {np.min(km):.1f} km away')
    return 'instances', la.dims[0], near, km


def _point(ds, axes):
    lat = float(np.asarray(ds[axes['latitude']].values).ravel()[0])
    lon = float(np.asarray(ds[axes['longitude']].values).ravel()[0])
    return {'longitude': lon, 'latitude': lat}


def _write(sel, axes, inputs, ctx, stem, summary, name):
    fmt = inputs.get('output_format', 'netcdf')
    target, media, rows = write_selection(sel, axes, fmt, ctx.workdir, stem, stem)
    summary.update(format=fmt, rows=rows, dimensions={str(k): int(v) for k, v in sel.sizes.items()})
    return {name: Output(path=target, media_type=media), 'summary': Output(value=summary)}


class ExtractProfileProcess(VREProcess):
    METADATA = {
        'version': '1.0.0', 'id': 'extract-profile',
        'title': {'en': 'Extract a vertical profile at a point'},
        'description': {'en': 'From a NetCDF file by reference (a grid, or a collection of '
                              'profiles such as Argo or SeaDataNet files), the profile nearest to '
                              'a point within a search radius; among several profiles within '
                              'the radius, the one nearest in time to `datetime` when given, '
                              'else the nearest in distance.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['profile', 'extract', 'nearest', 'NetCDF'], 'links': [],
        'inputs': {
            'data': dict(DATA_INPUT, schema={'type': 'string', 'contentEncoding': 'binary',
                                             'contentMediaType': 'application/x-netcdf'}),
            **POINT_INPUTS,
            'datetime': {'title': 'Time', 'description': 'ISO 8601 instant: the profile nearest '
                                                         'to it in time is taken.',
                         'schema': {'type': 'string'}, 'minOccurs': 0, 'maxOccurs': 1},
            'variables': VARIABLES_INPUT, 'output_format': FORMAT_INPUT,
        },
        'outputs': {
            'profile': {'title': 'The profile', 'description': 'NetCDF, CSV or GeoJSON.',
                        'schema': {'type': 'string', 'contentEncoding': 'binary'}},
            **COMMON_OUTPUTS,
        },
        'example': {'inputs': {
            'data': {'href': 'https://data-argo.ifremer.fr/dac/coriolis/3902131/3902131_prof.nc'},
            'longitude': 5.0, 'latitude': -6.6, 'tolerance_km': 50,
            'datetime': '2018-03-20T00:00:00Z', 'output_format': 'csv'}},
    }

    def run(self, inputs, ctx):
        lon, lat, tol = float(inputs['longitude']), float(inputs['latitude']), \
            float(inputs.get('tolerance_km', 50))
        when, _ = time_interval(inputs.get('datetime'))
        with open_netcdf(ctx.input_file(inputs['data'], '.nc')) as ds:
            axes = find_axes(ds)
            ds = select_variables(ds, axes, inputs.get('variables'))
            found = _locate(ds, axes, lon, lat, tol)
            summary = {'requested': {'longitude': lon, 'latitude': lat}}
            if found[0] == 'grid':
                sel = ds.isel(found[1])
                if when is not None and axes['time'] and ds[axes['time']].ndim == 1:
                    sel = sel.sel({ds[axes['time']].dims[0]: when}, method='nearest')
                summary['distance_km'] = found[2]
            else:
                _, dim, near, km = found
                k = near[np.argmin(km[near])]
                if when is not None and axes['time'] and ds[axes['time']].dims == (dim,):
                    dt = np.abs(ds[axes['time']].values[near] - when).astype('int64')
                    k = near[np.argmin(dt)]
                sel = ds.isel({dim: [int(k)]})
                summary.update(distance_km=float(km[k]), index=int(k),
                               profiles_within_tolerance=int(near.size))
            sel = sel.load()
            if axes['time'] in sel and sel[axes['time']].size == 1:
                summary['time'] = str(np.datetime_as_string(sel[axes['time']].values.ravel()[0],
                                                            unit='s')) + 'Z'
            summary['found'] = _point(sel, axes)
            return _write(sel, axes, inputs, ctx, 'profile', summary, 'profile')


class ExtractTimeseriesProcess(VREProcess):
    METADATA = {
        'version': '1.0.0', 'id': 'extract-timeseries',
        'title': {'en': 'Extract a time series at a point'},
        'description': {'en': 'From a NetCDF file by reference: the series of the nearest grid '
                              'node or station within a search radius; for a collection of '
                              'profiles (Argo, SeaDataNet), the values of every profile within '
                              'the radius at the vertical level `z` (linear interpolation in '
                              'the vertical, Argo adjusted pressure in modes A/D), ordered by '
                              'time. `datetime` limits the series to an interval.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['time series', 'extract', 'nearest', 'NetCDF'], 'links': [],
        'inputs': {
            'data': ExtractProfileProcess.METADATA['inputs']['data'],
            **POINT_INPUTS,
            'z': {'title': 'Vertical level', 'description': 'Pressure (dbar) or depth (m), as '
                                                            'the file has it; needed for profiles.',
                  'schema': {'type': 'number', 'minimum': 0}, 'minOccurs': 0, 'maxOccurs': 1},
            'datetime': {'title': 'Time interval', 'description': '"start/end", ".." open.',
                         'schema': {'type': 'string'}, 'minOccurs': 0, 'maxOccurs': 1},
            'variables': VARIABLES_INPUT, 'output_format': FORMAT_INPUT,
        },
        'outputs': {
            'timeseries': {'title': 'The series', 'description': 'NetCDF, CSV or GeoJSON.',
                           'schema': {'type': 'string', 'contentEncoding': 'binary'}},
            **COMMON_OUTPUTS,
        },
        'example': {'inputs': {
            'data': {'href': 'https://data-argo.ifremer.fr/dac/coriolis/3902131/3902131_prof.nc'},
            'longitude': 5.0, 'latitude': -6.6, 'tolerance_km': 100, 'z': 100,
            'variables': ['TEMP'], 'output_format': 'csv'}},
    }

    def run(self, inputs, ctx):
        lon, lat, tol = float(inputs['longitude']), float(inputs['latitude']), \
            float(inputs.get('tolerance_km', 50))
        t0, t1 = time_interval(inputs.get('datetime'))
        z = inputs.get('z')
        with open_netcdf(ctx.input_file(inputs['data'], '.nc')) as ds:
            axes = find_axes(ds)
            if not axes['time']:
                raise InputError('data: no time variable, so no time series')
            ds = select_variables(ds, axes, inputs.get('variables'))
            found = _locate(ds, axes, lon, lat, tol)
            summary = {'requested': {'longitude': lon, 'latitude': lat}}
            time = ds[axes['time']]
            if found[0] == 'grid':
                sel = ds.isel(found[1])
                if z is not None and axes['vertical'] and ds[axes['vertical']].ndim == 1:
                    sel = sel.sel({ds[axes['vertical']].dims[0]: z}, method='nearest')
                summary['distance_km'] = found[2]
            elif time.ndim == 2:                           # stations with their own series
                _, dim, near, km = found
                k = int(near[np.argmin(km[near])])
                sel = ds.isel({dim: [k]})
                summary.update(distance_km=float(km[k]), index=k)
            else:                                          # profiles: one value per profile
                _, dim, near, km = found
                sel = self._at_level(ds.isel({dim: near}), axes, dim, z, ctx)
                sel = sel.isel({dim: np.argsort(sel[axes['time']].values, kind='stable')})
                summary.update(profiles=int(near.size), max_distance_km=float(km[near].max()))
            sel = self._in_interval(sel.load(), axes, t0, t1)
            summary['found'] = _point(sel, axes)
            return _write(sel, axes, inputs, ctx, 'timeseries', summary, 'timeseries')

    @staticmethod
    def _at_level(ds, axes, dim, z, ctx):
        if z is None:
            raise InputError('z is needed to make a time series from profiles')
        if not axes['vertical']:
            raise InputError('data: no depth or pressure variable to interpolate at z')
        zz = argo_vertical(ds, axes['vertical']).load()
        if zz.ndim != 2 or zz.dims[0] != dim:
            raise InputError('data: vertical axis layout not supported')
        level = zz.dims[1]
        out = ds[[v for v in ds.variables if level not in ds[v].dims and v not in ds.dims]]
        n = ds.sizes[dim]
        for name in ds.data_vars:
            var = ds[name]
            if var.dims != zz.dims or not np.issubdtype(var.dtype, np.number):
                continue
            vals, col = var.values.astype(float), np.full(n, np.nan)
            for i in range(n):
                ok = np.isfinite(zz.values[i]) & np.isfinite(vals[i])
                p, v = zz.values[i][ok], vals[i][ok]
                order = np.argsort(p)
                if p.size >= 2 and p.min() <= z <= p.max():
                    col[i] = np.interp(z, p[order], v[order])
            out[name] = ((dim,), col, dict(var.attrs, comment=f'interpolated at z = {z:g}'))
            ctx.progress(50, f'{name} interpolated')
        out.attrs.update(ds.attrs, z=float(z))
        return out

    @staticmethod
    def _in_interval(sel, axes, t0, t1):
        if t0 is None and t1 is None:
            return sel
        t = sel[axes['time']]
        ok = t.notnull()
        ok = ok & (t >= t0) if t0 is not None else ok
        ok = ok & (t <= t1) if t1 is not None else ok
        if not ok.any():
            raise InputError('the selection is empty: no time within datetime at this point')
        if ok.ndim == 1:
            return sel.isel({ok.dims[0]: np.flatnonzero(ok.values)})
        for name in sel.data_vars:
            if set(ok.dims) <= set(sel[name].dims) and np.issubdtype(sel[name].dtype, np.number):
                sel[name] = sel[name].where(ok)
        last = ok.dims[-1]                  # the series dimension: keep the times inside only
        return sel.isel({last: np.flatnonzero(ok.any(ok.dims[:-1]).values)})
