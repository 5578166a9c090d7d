"""A coverage for people: `/collections/{id}/coverage?f=html` (a page with the map, extent and
download links) and `?f=png` (the map itself), which pygeoapi 0.21 does not offer. The map is
drawn from our own grid with matplotlib, so the page works offline (no external tiles)."""
from __future__ import annotations

import html
import io
from urllib.parse import urlencode

import numpy as np
from flask import Response, request

from vre.errors import APIError, BAD_REQUEST, NOT_FOUND

MAX_PIXELS = 800    # longest side of the map; larger grids are drawn with a stride


def _provider_defs(api) -> dict:
    from providers.coverage import grid_provider
    resources = api.config.get('resources') or {}
    return {cid: p for cid, p in ((c, grid_provider(r)) for c, r in resources.items()) if p}


def _grid(cid: str, defs: dict):
    from providers.coverage import open_grid
    if cid not in defs:
        raise APIError(404, NOT_FOUND, f'no gridded collection "{cid}"')
    grid = open_grid(str(defs[cid]['data']),
                     tuple((defs[cid].get('options') or {}).get('bands') or ()))
    if grid is None:
        raise APIError(503, 'http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/'
                       'unavailable', f'the grid of "{cid}" is not on this server')
    return grid


def _slice(grid, bbox):
    """The first variable, first time/depth, inside bbox, strided to at most MAX_PIXELS."""
    ax = grid.axes
    name = next(iter(grid.fields))
    var = grid.ds[name]
    for role in ('t', 'z'):
        if role in ax:
            var = var.isel({ax[role]: 0})
    if bbox:
        x, y = grid.ds[ax['x']].values, grid.ds[ax['y']].values
        xs = np.nonzero((x >= bbox[0]) & (x <= bbox[2]))[0]
        ys = np.nonzero((y >= bbox[1]) & (y <= bbox[3]))[0]
        if xs.size == 0 or ys.size == 0:
            raise APIError(404, NOT_FOUND, 'bbox is outside the grid')
        var = var.isel({ax['x']: slice(xs[0], xs[-1] + 1), ax['y']: slice(ys[0], ys[-1] + 1)})
    step = max(1, -(-max(var.sizes[ax['x']], var.sizes[ax['y']]) // MAX_PIXELS))
    return name, var.isel({ax['x']: slice(None, None, step), ax['y']: slice(None, None, step)})


def _bbox():
    raw = request.args.get('bbox')
    if not raw:
        return None
    try:
        box = [float(v) for v in raw.split(',')]
    except ValueError:
        raise APIError(400, BAD_REQUEST, 'bbox must be four numbers') from None
    if len(box) != 4 or box[0] > box[2] or box[1] > box[3]:
        raise APIError(400, BAD_REQUEST, 'bbox must be minlon,minlat,maxlon,maxlat')
    return box


def png(grid) -> bytes:
    from matplotlib.figure import Figure
    name, var = _slice(grid, _bbox())
    ax_names = grid.axes
    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(var[ax_names['x']].values, var[ax_names['y']].values,
                         var.transpose(ax_names['y'], ax_names['x']).values, shading='auto',
                         cmap='viridis')
    fig.colorbar(mesh, ax=ax, label=f"{var.attrs.get('long_name', name)} "
                                    f"({var.attrs.get('units', '')})")
    ax.set_xlabel('longitude')
    ax.set_ylabel('latitude')
    ax.set_aspect('equal', adjustable='box')
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    return buf.getvalue()


def page(cid: str, res: dict, grid, base: str) -> str:
    ax = grid.axes
    x, y = grid.ds[ax['x']].values, grid.ds[ax['y']].values
    args = {k: v for k, v in request.args.items() if k == 'bbox'}
    q = urlencode(args)
    esc = html.escape
    rows = ''.join(f'<tr><td>{esc(n)}</td><td>{esc(str(f.get("title", "")))}</td>'
                   f'<td>{esc(str(f.get("x-ogc-unit", "")))}</td></tr>'
                   for n, f in grid.fields.items())
    url = f'{base}/collections/{cid}/coverage'
    title = res.get('title')
    title = title.get('en', cid) if isinstance(title, dict) else (title or cid)
    return f'''<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{esc(title)} - coverage</title></head><body>
<h1>{esc(title)}</h1>
<p>Grid of {x.size} x {y.size} cells, longitude {x.min():g} to {x.max():g},
latitude {y.min():g} to {y.max():g}.</p>
<img alt="map of {esc(cid)}" src="{url}?{urlencode({**args, 'f': 'png'})}">
<h2>Fields</h2><table><tr><th>name</th><th>title</th><th>unit</th></tr>{rows}</table>
<h2>Download</h2><ul>
<li><a href="{url}?{q}&amp;f=json">CoverageJSON</a></li>
<li><a href="{url}?{q}&amp;f=netcdf">NetCDF</a></li>
<li><a href="{base}/collections/{cid}?f=html">the collection</a></li></ul>
</body></html>'''


def register(app, api, settings) -> None:
    defs = _provider_defs(api)
    original = app.view_functions.get('pygeoapi.collection_coverage')
    if original is None or not defs:
        return

    def coverage(collection_id):
        f = request.args.get('f')
        browser = f is None and request.accept_mimetypes.best == 'text/html'
        if collection_id in defs and (f == 'html' or browser):
            grid = _grid(collection_id, defs)
            return Response(page(collection_id, api.config['resources'][collection_id], grid,
                                 settings.url), mimetype='text/html')
        if collection_id in defs and f == 'png':
            return Response(png(_grid(collection_id, defs)), mimetype='image/png')
        return original(collection_id)

    app.view_functions['pygeoapi.collection_coverage'] = coverage
