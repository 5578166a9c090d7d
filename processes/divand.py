"""`variational-analysis`: DIVAnd-like gridding of scattered observations with its error.

The analysis x minimises ||x - xb||²_B⁻¹ + ||Hx - y||²_R⁻¹ where
  B⁻¹ = a/(4πL²) (I + L²K)²,  K = DxᵀDx + DyᵀDy (minus the Laplacian, sea-sea edges only),
which is DIVAnd's 2-D smoothness norm ∫ φ² + 2L²|∇φ|² + L⁴(∇²φ)² with its normalisation:
the background covariance of (1 - L²∇²)⁻² has unit variance (∫d²k/(2π)²/(1+L²k²)² = 1/(4πL²)).
Land cells take no part (no edge crosses the coast, so information does not leak across it).
H interpolates bilinearly; R = ε² I with ε² = 1/(signal-to-noise ratio).

One sparse Cholesky-like factorisation (SuperLU, symmetric ordering) of the SPD matrix serves
two solves: the analysis, and DIVAnd's "clever poor man's error" (the analysis of observations
all equal to 1 with a zero background; relative error ≈ 1 minus it), which costs one solve
instead of a diagonal of the inverse.
"""
from __future__ import annotations

import json
import time as clock

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import xarray as xr

from processes.base import InputError, Output, VREProcess
from processes.cfdata import (bbox_lonlat, cf_attrs, find_axes, is_netcdf, open_netcdf,
                              read_table, table_axes, write_netcdf)

KM_PER_DEG = 111.195          # mean Earth radius 6371.0 km
NETCDF = 'application/x-netcdf'


def _diff(n: int, active: np.ndarray) -> sp.csr_matrix:
    """Differences along the last axis between neighbouring active cells (one row per edge)."""
    ny, nx = active.shape
    idx = np.arange(ny * nx).reshape(ny, nx)
    ok = active[:, 1:] & active[:, :-1]
    a, b = idx[:, 1:][ok], idx[:, :-1][ok]
    rows = np.arange(len(a))
    return sp.csr_matrix((np.r_[np.ones(len(a)), -np.ones(len(a))], (np.r_[rows, rows],
                                                                    np.r_[a, b])),
                         shape=(len(a), n))


def smoothness(sea: np.ndarray, dx: float, dy: float) -> sp.csr_matrix:
    """K = DxᵀDx/dx² + DyᵀDy/dy² on the sea cells (a graph Laplacian with coast = Neumann)."""
    n = sea.size
    gx = _diff(n, sea) / dx
    gy = _diff(n, sea.T.copy())                      # along y: transpose the index grid
    ny, nx = sea.shape
    perm = np.arange(n).reshape(ny, nx).T.ravel()   # index of (x, y) order in (y, x) order
    gy = sp.csr_matrix((gy.data, perm[gy.indices], gy.indptr), shape=gy.shape) / dy
    return (gx.T @ gx + gy.T @ gy).tocsr()


def dissection(ny: int, nx: int, leaf: int = 64) -> np.ndarray:
    """Nested-dissection order of the grid cells (separators two cells wide, as the stencil of
    (I + L²K)² reaches two cells): eliminated in this order a 2-D factor stays near-linear in
    size, where minimum-degree orderings fill in several times more."""
    idx = np.arange(ny * nx).reshape(ny, nx)
    out = []

    def split(r0, r1, c0, c1):
        h, w = r1 - r0, c1 - c0
        if h * w <= leaf or min(h, w) < 5:
            out.append(idx[r0:r1, c0:c1].ravel())
            return
        if w >= h:
            m = c0 + w // 2 - 1
            split(r0, r1, c0, m)
            split(r0, r1, m + 2, c1)
            out.append(idx[r0:r1, m:m + 2].ravel())
        else:
            m = r0 + h // 2 - 1
            split(r0, m, c0, c1)
            split(m + 2, r1, c0, c1)
            out.append(idx[m:m + 2, c0:c1].ravel())

    split(0, ny, 0, nx)
    return np.concatenate(out)


def interpolation(lon, lat, x0, y0, dlon, dlat, sea) -> tuple[sp.csr_matrix, np.ndarray]:
    """Bilinear weights from sea cells to each observation (weights of land corners are moved
    to the sea corners); the mask of observations that have at least one sea corner."""
    ny, nx = sea.shape
    fx, fy = (lon - x0) / dlon, (lat - y0) / dlat
    i0 = np.clip(np.floor(fx).astype(int), 0, nx - 2)
    j0 = np.clip(np.floor(fy).astype(int), 0, ny - 2)
    tx, ty = np.clip(fx - i0, 0, 1), np.clip(fy - j0, 0, 1)
    corners = [(j0, i0, (1 - tx) * (1 - ty)), (j0, i0 + 1, tx * (1 - ty)),
               (j0 + 1, i0, (1 - tx) * ty), (j0 + 1, i0 + 1, tx * ty)]
    w = np.stack([c[2] * sea[c[0], c[1]] for c in corners])
    total = w.sum(axis=0)
    ok = total > 1e-9
    w = w[:, ok] / total[ok]
    cols = np.stack([c[0][ok] * nx + c[1][ok] for c in corners])
    rows = np.broadcast_to(np.arange(ok.sum()), cols.shape)
    H = sp.csr_matrix((w.ravel(), (rows.ravel(), cols.ravel())), shape=(ok.sum(), sea.size))
    return H, ok


def analyse(lon, lat, values, grid_lon, grid_lat, sea, length_km, snr):
    """Analysis and relative error on the grid (NaN on land)."""
    ny, nx = sea.shape
    lat0 = np.deg2rad(grid_lat.mean())
    dlon, dlat = grid_lon[1] - grid_lon[0], grid_lat[1] - grid_lat[0]
    dx, dy = dlon * KM_PER_DEG * np.cos(lat0), dlat * KM_PER_DEG
    inside = ((lon >= grid_lon[0]) & (lon <= grid_lon[-1]) & (lat >= grid_lat[0])
              & (lat <= grid_lat[-1]) & np.isfinite(values))
    H, ok = interpolation(lon[inside], lat[inside], grid_lon[0], grid_lat[0], dlon, dlat, sea)
    y = values[inside][ok]
    if len(y) == 0:
        raise InputError('no observation falls on a sea cell of the grid')
    order = dissection(ny, nx)
    cells = order[sea.ravel()[order]]                # unknowns: sea cells, dissection order
    H = H[:, cells]
    K = smoothness(sea, dx, dy)[cells][:, cells]
    L2 = length_km ** 2
    M = sp.identity(len(cells), format='csr') + L2 * K
    area = dx * dy
    Binv = (area / (4 * np.pi * L2)) * (M @ M)
    eps2 = 1.0 / snr
    A = (Binv + (H.T @ H) / eps2).tocsc()
    background = float(y.mean())
    solve = spla.splu(A, permc_spec='NATURAL', diag_pivot_thresh=0.0,   # SPD: no pivoting
                      options={'SymmetricMode': True}).solve
    xa = solve(H.T @ (y - background) / eps2) + background
    relerr = 1 - solve(H.T @ np.ones_like(y) / eps2)
    field = np.full(sea.size, np.nan)
    err = np.full(sea.size, np.nan)
    field[cells], err[cells] = xa, np.clip(relerr, 0, 1)
    return field.reshape(ny, nx), err.reshape(ny, nx), int(len(y)), background


def read_observations(path, variable: str):
    """lon, lat, value arrays from a CSV/TSV table or a GeoJSON of points."""
    if is_netcdf(path):
        raise InputError('observations: give a CSV/TSV table or GeoJSON points, not NetCDF')
    with open(path, 'rb') as fh:
        head = fh.read(64).lstrip()
    if head.startswith(b'{'):
        try:
            doc = json.loads(path.read_text())
        except ValueError as err:
            raise InputError(f'observations: not valid JSON ({err})')
        pts = [(f['geometry']['coordinates'][0], f['geometry']['coordinates'][1],
                (f.get('properties') or {}).get(variable))
               for f in doc.get('features', [])
               if (f.get('geometry') or {}).get('type') == 'Point']
        if not pts:
            raise InputError('observations: the GeoJSON has no Point features')
        arr = np.array([(x, y, np.nan if v is None else v) for x, y, v in pts], float)
        if np.isnan(arr[:, 2]).all():
            raise InputError(f'observations: no feature has a numeric "{variable}"')
        return arr[:, 0], arr[:, 1], arr[:, 2]
    df = read_table(path, 'observations')
    axes = table_axes(df.columns)
    if not (axes['longitude'] and axes['latitude']):
        raise InputError('observations: no longitude/latitude columns')
    if variable not in df:
        raise InputError(f'observations: no column "{variable}"; columns: {list(df.columns)}')
    try:
        return tuple(pd.to_numeric(df[c]).to_numpy(float)
                     for c in (axes['longitude'], axes['latitude'], variable))
    except (ValueError, TypeError):
        raise InputError(f'observations: longitude, latitude or "{variable}" is not numeric')


def land_mask(path, grid_lon, grid_lat, min_depth: float) -> np.ndarray:
    """True on sea cells: bathymetry (elevation < 0 or depth > 0) deeper than min_depth."""
    with open_netcdf(path, 'bathymetry') as ds:
        axes = find_axes(ds)
        name = next((n for n in ('elevation', 'depth', 'DEPTH', 'z', 'Band1', 'bathymetry')
                     if n in ds.data_vars), None)
        if name is None or not (axes['longitude'] and axes['latitude']):
            raise InputError('bathymetry: needs an elevation or depth variable on lat/lon')
        z = ds[name].interp({axes['longitude']: grid_lon, axes['latitude']: grid_lat},
                            method='nearest', kwargs={'fill_value': np.nan})
        z = z.transpose(axes['latitude'], axes['longitude']).values.astype(float)
        depth = -z if name in ('elevation', 'z', 'Band1') else z
    return np.nan_to_num(depth, nan=-1.0) > min_depth


class VariationalAnalysisProcess(VREProcess):
    METADATA = {
        'version': '1.0.0', 'id': 'variational-analysis',
        'title': {'en': 'Variational analysis (DIVAnd-like gridding)'},
        'description': {'en': 'Grids scattered observations into a field with its relative '
                              'error by minimising ||x - xb||²_B⁻¹ + ||Hx - y||²_R⁻¹ with the '
                              'DIVAnd smoothness norm (correlation length L, signal-to-noise '
                              'ratio) on the sea cells of a bathymetry (optional). Output in '
                              'the DIVAnd layout: <variable>, <variable>_relerr and '
                              '<variable>_L1 / _L2 masked where the relative error exceeds '
                              '0.3 / 0.5. The error is the "clever poor man\'s estimate".'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['DIVAnd', 'DIVA', 'variational analysis', 'gridding', 'interpolation'],
        'links': [{'type': 'text/html', 'rel': 'about', 'title': 'DIVAnd (Barth et al. 2014)',
                   'href': 'https://doi.org/10.5194/gmd-7-225-2014', 'hreflang': 'en'}],
        'inputs': {
            'observations': {'title': 'Observations', 'description': 'CSV/TSV with longitude, '
                                                                     'latitude and the variable, '
                                                                     'or GeoJSON points.',
                             'schema': {'type': 'string', 'contentEncoding': 'binary',
                                        'contentMediaType': 'text/csv'},
                             'minOccurs': 1, 'maxOccurs': 1},
            'variable': {'title': 'Variable', 'description': 'Column or property to grid.',
                         'schema': {'type': 'string'}, 'minOccurs': 1, 'maxOccurs': 1},
            'bbox': {'title': 'Grid extent', 'description': 'minlon, minlat, maxlon, maxlat '
                                                            '(degrees, cell centres).',
                     'schema': {'type': 'array', 'items': {'type': 'number'},
                                'minItems': 4, 'maxItems': 4},
                     'minOccurs': 1, 'maxOccurs': 1},
            'nx': {'title': 'Columns', 'description': 'Grid cells along longitude.',
                   'schema': {'type': 'integer', 'minimum': 3, 'maximum': 2000, 'default': 100},
                   'minOccurs': 0, 'maxOccurs': 1},
            'ny': {'title': 'Rows', 'description': 'Grid cells along latitude.',
                   'schema': {'type': 'integer', 'minimum': 3, 'maximum': 2000, 'default': 100},
                   'minOccurs': 0, 'maxOccurs': 1},
            'correlation_length': {'title': 'Correlation length',
                                   'description': 'L in km: the distance over which an '
                                                  'observation informs the field.',
                                   'schema': {'type': 'number', 'exclusiveMinimum': 0,
                                              'default': 100, 'x-units': 'km'},
                                   'minOccurs': 0, 'maxOccurs': 1},
            'signal_to_noise': {'title': 'Signal-to-noise ratio',
                                'description': 'Background variance over observation error '
                                               'variance (ε² = 1/ratio).',
                                'schema': {'type': 'number', 'exclusiveMinimum': 0,
                                           'default': 1}, 'minOccurs': 0, 'maxOccurs': 1},
            'bathymetry': {'title': 'Bathymetry', 'description': 'NetCDF with elevation (m, '
                                                                 'negative below sea level) '
                                                                 'or depth: cells shallower '
                                                                 'than min_depth are land.',
                           'schema': {'type': 'string', 'contentEncoding': 'binary',
                                      'contentMediaType': NETCDF},
                           'minOccurs': 0, 'maxOccurs': 1},
            'min_depth': {'title': 'Minimum depth', 'description': 'm; with bathymetry.',
                          'schema': {'type': 'number', 'default': 0, 'x-units': 'm'},
                          'minOccurs': 0, 'maxOccurs': 1},
        },
        'outputs': {'analysis': {'title': 'Analysis (NetCDF, DIVAnd layout)',
                                 'description': 'variable, variable_relerr, variable_L1, '
                                                'variable_L2 on lat/lon.',
                                 'schema': {'type': 'string', 'contentEncoding': 'binary',
                                            'contentMediaType': NETCDF}}},
        'example': {'inputs': {'observations': {'href': 'https://example.org/sst_points.csv'},
                               'variable': 'sst', 'bbox': [-10, 35, 0, 45], 'nx': 200,
                               'ny': 200, 'correlation_length': 80, 'signal_to_noise': 2}},
    }

    def run(self, inputs, ctx):
        variable = inputs['variable']
        x0, y0, x1, y1 = bbox_lonlat(inputs['bbox'], None)
        nx, ny = int(inputs.get('nx', 100)), int(inputs.get('ny', 100))
        if x0 == x1 or y0 == y1:
            raise InputError('bbox must have an extent in longitude and latitude')
        lon, lat, values = read_observations(ctx.input_file(inputs['observations']), variable)
        grid_lon, grid_lat = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
        sea = np.ones((ny, nx), bool)
        if inputs.get('bathymetry'):
            ctx.progress(10, 'reading the bathymetry')
            sea = land_mask(ctx.input_file(inputs['bathymetry'], '.nc'), grid_lon, grid_lat,
                            float(inputs.get('min_depth', 0)))
            if not sea.any():
                raise InputError('bathymetry: every grid cell is land')
        ctx.progress(20, f'solving on {int(sea.sum())} sea cells')
        start = clock.monotonic()
        field, err, used, background = analyse(
            lon, lat, values, grid_lon, grid_lat, sea, float(inputs.get('correlation_length', 100)),
            float(inputs.get('signal_to_noise', 1)))
        seconds = clock.monotonic() - start
        ctx.progress(90, 'writing')
        ds = xr.Dataset(coords={
            'lat': ('lat', grid_lat, {'standard_name': 'latitude', 'units': 'degrees_north'}),
            'lon': ('lon', grid_lon, {'standard_name': 'longitude', 'units': 'degrees_east'})})
        dims = ('lat', 'lon')
        ds[variable] = (dims, field, {'long_name': f'{variable} (variational analysis)'})
        ds[f'{variable}_relerr'] = (dims, err, {'long_name': f'relative error of {variable}',
                                                'units': '1'})
        ds[f'{variable}_L1'] = (dims, np.where(err > 0.3, np.nan, field),
                                {'long_name': f'{variable} masked where relative error > 0.3'})
        ds[f'{variable}_L2'] = (dims, np.where(err > 0.5, np.nan, field),
                                {'long_name': f'{variable} masked where relative error > 0.5'})
        ds['mask'] = (dims, sea.astype('int8'), {'long_name': 'sea (1) or land (0)'})
        cf_attrs(ds, f'variational analysis of {variable}', 'VRE variational-analysis process')
        ds.attrs.update({'correlation_length_km': float(inputs.get('correlation_length', 100)),
                         'signal_to_noise_ratio': float(inputs.get('signal_to_noise', 1)),
                         'observations_used': used, 'background': background,
                         'solve_seconds': round(seconds, 3)})
        target = write_netcdf(ds, ctx.workdir / 'analysis.nc')
        return {'analysis': Output(path=target, media_type=NETCDF)}
