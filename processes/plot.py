"""`plot`: a PNG of a result: a map of points or cells, profiles, or a T-S diagram.

matplotlib's object API with the Agg canvas (no pyplot state: workers run many jobs in one
process). T-S diagrams use SA/CT when the file has them (argo-indicators output), else compute
them from PSAL/TEMP/PRES with gsw, and draw sigma0 isopycnals.
"""
from __future__ import annotations

import json

import gsw
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from processes.base import InputError, Output, VREProcess
from processes.cfdata import argo_vertical, find_axes, is_netcdf, open_netcdf

DPI = 100
MAX_LINES = 100


def _figure(width, height):
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _geojson_map(ax, doc, variable):
    polys, values, points, pvalues = [], [], [], []
    for f in doc.get('features', []):
        g, props = f.get('geometry') or {}, f.get('properties') or {}
        v = props.get(variable) if variable else None
        if g.get('type') == 'Point':
            points.append(g['coordinates'][:2])
            pvalues.append(np.nan if v is None else v)
        elif g.get('type') == 'Polygon':
            polys.append(np.asarray(g['coordinates'][0])[:, :2])
            values.append(np.nan if v is None else v)
    if not polys and not points:
        raise InputError('data: the GeoJSON has no Point or Polygon features to map')
    mappable = None
    if polys:
        coll = PolyCollection(polys, edgecolors='none',
                              array=np.asarray(values, float) if variable else None,
                              facecolors=None if variable else 'tab:blue')
        ax.add_collection(coll)
        mappable = coll if variable else None
        ax.autoscale_view()
    if points:
        pts = np.asarray(points, float)
        sc = ax.scatter(pts[:, 0], pts[:, 1], s=12,
                        c=np.asarray(pvalues, float) if variable else 'tab:blue')
        mappable = sc if variable else mappable
    return mappable


def _netcdf_map(ax, ds, axes, variable):
    lon, lat = ds[axes['longitude']], ds[axes['latitude']]
    if variable and ds[variable].dims == (lat.dims[0], lon.dims[0]) and lat.ndim == 1 \
            and lat.dims[0] == axes['latitude']:
        return ax.pcolormesh(lon.values, lat.values, ds[variable].values, shading='auto')
    c = None
    if variable and ds[variable].dims == lon.dims:
        c = ds[variable].values.astype(float)
    return ax.scatter(lon.values.ravel(), lat.values.ravel(), s=14, c=c)


def _profiles(ax, ds, axes, variable):
    if not variable:
        raise InputError('variable is needed for a profile plot')
    if not axes['vertical']:
        raise InputError('data: no depth or pressure variable for a profile plot')
    z = argo_vertical(ds, axes['vertical']).values
    v = ds[variable].values.astype(float)
    z, v = np.atleast_2d(np.broadcast_to(z, v.shape)), np.atleast_2d(v)
    if not np.isfinite(v).any():
        raise InputError(f'{variable} has no values to plot')
    for i in range(min(len(v), MAX_LINES)):
        ok = np.isfinite(v[i]) & np.isfinite(z[i])
        ax.plot(v[i][ok], z[i][ok], lw=1)
    ax.invert_yaxis()
    ax.set_xlabel(f"{variable} ({ds[variable].attrs.get('units', '')})")
    ax.set_ylabel(f"{axes['vertical']} ({ds[axes['vertical']].attrs.get('units', '')})")


def _ts(ax, ds, axes):
    if 'SA' in ds and 'CT' in ds:
        sa, ct = ds['SA'].values.ravel(), ds['CT'].values.ravel()
    elif all(n in ds for n in ('PSAL', 'TEMP')) and axes['vertical']:
        p = argo_vertical(ds, axes['vertical']).values
        lon = np.broadcast_to(ds[axes['longitude']].values[..., None], p.shape) \
            if ds[axes['longitude']].ndim == 1 and p.ndim == 2 else ds[axes['longitude']].values
        lat = np.broadcast_to(ds[axes['latitude']].values[..., None], p.shape) \
            if ds[axes['latitude']].ndim == 1 and p.ndim == 2 else ds[axes['latitude']].values
        sa = gsw.SA_from_SP(ds['PSAL'].values, p, lon, lat).ravel()
        ct = gsw.CT_from_t(sa.reshape(p.shape), ds['TEMP'].values, p).ravel()
    else:
        raise InputError('a T-S diagram needs SA and CT, or PSAL, TEMP and a pressure variable')
    ok = np.isfinite(sa) & np.isfinite(ct)
    if not ok.any():
        raise InputError('no valid salinity/temperature pairs to plot')
    sa, ct = sa[ok], ct[ok]
    gs, gt = np.meshgrid(np.linspace(sa.min() - 0.2, sa.max() + 0.2, 80),
                         np.linspace(ct.min() - 0.5, ct.max() + 0.5, 80))
    cs = ax.contour(gs, gt, gsw.sigma0(gs, gt), colors='grey', linewidths=0.6)
    ax.clabel(cs, fontsize=7)
    ax.scatter(sa, ct, s=4, c='tab:blue')
    ax.set_xlabel('Absolute Salinity (g/kg)')
    ax.set_ylabel('Conservative Temperature (degC)')


class PlotProcess(VREProcess):
    METADATA = {
        'version': '1.0.0', 'id': 'plot',
        'title': {'en': 'Plot a result as PNG'},
        'description': {'en': 'A PNG image of a NetCDF or GeoJSON file by reference: a map of '
                              'points, grid cells (GeoJSON polygons) or a grid, coloured by '
                              '`variable`; vertical profiles of `variable`; or a T-S diagram '
                              '(TEOS-10, with sigma0 isopycnals) from SA/CT when present (the QC-filtered '
                              'argo-indicators output), else from the raw PSAL/TEMP/PRES.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['plot', 'map', 'profile', 'T-S diagram', 'PNG', 'matplotlib'], 'links': [],
        'inputs': {
            'data': {'title': 'Data', 'description': 'NetCDF or GeoJSON, by reference.',
                     'schema': {'type': 'string', 'contentEncoding': 'binary'},
                     'minOccurs': 1, 'maxOccurs': 1},
            'kind': {'title': 'Kind of plot', 'description': 'map, profile or ts.',
                     'schema': {'type': 'string', 'enum': ['map', 'profile', 'ts'],
                                'default': 'map'}, 'minOccurs': 0, 'maxOccurs': 1},
            'variable': {'title': 'Variable', 'description': 'Variable or GeoJSON property to '
                                                            'colour a map or draw as profile.',
                         'schema': {'type': 'string'}, 'minOccurs': 0, 'maxOccurs': 1},
            'width': {'title': 'Width', 'description': 'Image width in pixels.',
                      'schema': {'type': 'integer', 'minimum': 100, 'maximum': 4000,
                                 'default': 800}, 'minOccurs': 0, 'maxOccurs': 1},
            'height': {'title': 'Height', 'description': 'Image height in pixels.',
                       'schema': {'type': 'integer', 'minimum': 100, 'maximum': 4000,
                                  'default': 600}, 'minOccurs': 0, 'maxOccurs': 1},
            'title': {'title': 'Title', 'description': 'Text above the plot.',
                      'schema': {'type': 'string'}, 'minOccurs': 0, 'maxOccurs': 1},
        },
        'outputs': {
            'image': {'title': 'PNG image', 'description': 'The plot.',
                      'schema': {'type': 'string', 'contentEncoding': 'binary',
                                 'contentMediaType': 'image/png'}},
        },
        'example': {'inputs': {
            'data': {'href': 'https://data-argo.ifremer.fr/dac/coriolis/3902131/3902131_prof.nc'},
            'kind': 'ts', 'width': 800, 'height': 600}},
    }

    def run(self, inputs, ctx):
        kind, variable = inputs.get('kind', 'map'), inputs.get('variable')
        fig, ax = _figure(int(inputs.get('width', 800)), int(inputs.get('height', 600)))
        path = ctx.input_file(inputs['data'])
        mappable = None
        if is_netcdf(path):
            with open_netcdf(path) as ds:
                axes = find_axes(ds)
                if variable and variable not in ds:
                    raise InputError(f'unknown variable "{variable}"; the file has '
                                     f'{sorted(map(str, ds.data_vars))}')
                if kind == 'map':
                    if not (axes['latitude'] and axes['longitude']):
                        raise InputError('data: no latitude/longitude to map')
                    mappable = _netcdf_map(ax, ds, axes, variable)
                elif kind == 'profile':
                    _profiles(ax, ds, axes, variable)
                else:
                    _ts(ax, ds, axes)
        else:
            try:
                doc = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError):
                raise InputError('data: neither NetCDF nor GeoJSON')
            if kind != 'map':
                raise InputError('GeoJSON can only be drawn as a map (kind=map)')
            mappable = _geojson_map(ax, doc, variable)
        if kind == 'map':
            ax.set_xlabel('longitude (degrees east)')
            ax.set_ylabel('latitude (degrees north)')
            if mappable is not None and variable:
                fig.colorbar(mappable, ax=ax, label=variable)
        ax.grid(True, lw=0.3)
        if inputs.get('title'):
            ax.set_title(inputs['title'])
        ctx.progress(90, 'rendering')
        target = ctx.workdir / 'plot.png'
        fig.savefig(target, format='png', dpi=DPI)
        return {'image': Output(path=target, media_type='image/png')}
