"""The base map of the HTML pages, drawn by this server: XYZ tiles (`/basemap/{z}/{x}/{y}.png`,
Web Mercator) rendered from a configured bathymetry coverage (`server: map: collection:`), so
the pages need no external tile server and work offline. Depths get a blue ramp, land a
green-brown one, and outside the grid's extent the tile is a plain ocean colour.

Leaflet itself is served from `/basemap/leaflet/` (Debian's libjs-leaflet, or the folder named
by `server: map: leaflet:`), and templates/ overrides pygeoapi's pages to use it.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from flask import Response, abort, send_from_directory

from vre.errors import NOT_FOUND, APIError

TILE = 256
MAX_ZOOM = 14
OCEAN = (170, 200, 225)          # outside the grid
LEAFLET = '/usr/share/javascript/leaflet'
TEMPLATES = Path(__file__).resolve().parents[1] / 'templates'
# elevation (m) -> colour: deep to shallow sea, then coast to mountains
DEPTH_STOPS = [(-8000, (8, 29, 88)), (-4000, (34, 94, 168)), (-1000, (65, 145, 200)),
               (-200, (127, 205, 230)), (0, (200, 235, 245))]
LAND_STOPS = [(0, (60, 140, 70)), (300, (140, 170, 90)), (1000, (190, 160, 100)),
              (3000, (150, 110, 80)), (6000, (250, 250, 250))]


def _ramp(values: np.ndarray, stops) -> np.ndarray:
    x = [s[0] for s in stops]
    return np.stack([np.interp(values, x, [s[1][i] for s in stops]) for i in range(3)], -1)


def colours(elevation: np.ndarray) -> np.ndarray:
    """RGB (uint8) of elevations; NaN (no value) as the plain ocean colour."""
    out = np.empty(elevation.shape + (3,), 'f8')
    out[:] = OCEAN
    sea = elevation < 0
    land = elevation >= 0
    out[sea] = _ramp(elevation[sea], DEPTH_STOPS)
    out[land] = _ramp(elevation[land], LAND_STOPS)
    return out.round().astype('u1')


def tile_lonlat(z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes of the tile's pixel columns and latitudes of its pixel rows (centres)."""
    n = 2 ** z * TILE
    px = (x * TILE + np.arange(TILE) + 0.5) / n
    py = (y * TILE + np.arange(TILE) + 0.5) / n
    return px * 360 - 180, np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * py))))


def _nearest(coord: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest grid cell for each wanted value, and whether it is in the grid."""
    order = np.argsort(coord)
    c = coord[order]
    i = np.clip(np.searchsorted(c, wanted), 1, c.size - 1)
    i -= (wanted - c[i - 1]) < (c[i] - wanted)
    half = abs(c[-1] - c[0]) / max(c.size - 1, 1) / 2
    inside = (wanted >= c[0] - half) & (wanted <= c[-1] + half)
    return order[i], inside


_VALUES: dict[int, tuple] = {}


def _values(grid) -> np.ndarray:
    """The first field at the first time/depth as a (lat, lon) array, read once per grid."""
    if id(grid) in _VALUES and _VALUES[id(grid)][0] is grid:
        return _VALUES[id(grid)][1]
    ax = grid.axes
    var = grid.ds[next(iter(grid.fields))]
    for role in ('t', 'z'):
        if role in ax:
            var = var.isel({ax[role]: 0})
    values = np.asarray(var.transpose(ax['y'], ax['x']).values, dtype='f8')
    _VALUES.clear()
    _VALUES[id(grid)] = (grid, values)
    return values


def render(grid, z: int, x: int, y: int) -> bytes:
    """One 256x256 PNG tile of the grid's first field, nearest cell per pixel."""
    from PIL import Image
    lon, lat = tile_lonlat(z, x, y)
    xs, x_in = _nearest(grid.ds[grid.axes['x']].values.astype('f8'), lon)
    ys, y_in = _nearest(grid.ds[grid.axes['y']].values.astype('f8'), lat)
    values = _values(grid)[np.ix_(ys, xs)]
    values[~np.outer(y_in, x_in)] = np.nan
    buf = io.BytesIO()
    Image.fromarray(colours(values), 'RGB').save(buf, format='PNG', optimize=True)
    return buf.getvalue()


@functools.lru_cache(maxsize=2048)
def _tile(path: str, bands: tuple, stamp: tuple, z: int, x: int, y: int) -> bytes:
    from providers.coverage import open_grid
    return render(open_grid(path, bands), z, x, y)


def register(app, api, settings) -> None:
    import os

    from providers.coverage import grid_provider
    conf = api.config['server'].get('map') or {}
    leaflet = conf.get('leaflet') or LEAFLET
    if str(api.config['server'].get('templates', {}).get('path')) == \
            str(Path(__import__('pygeoapi').__file__).parent / 'templates'):
        # no templates configured: ours (pygeoapi's pages without CDN links) come first
        api.config['server']['templates'] = {'path': str(TEMPLATES)}
        api.tpl_config['server']['templates'] = {'path': str(TEMPLATES)}

    @app.get('/basemap/<int:z>/<int:x>/<int:y>.png')
    def basemap_tile(z, x, y):
        if not 0 <= z <= MAX_ZOOM or not (0 <= x < 2 ** z and 0 <= y < 2 ** z):
            raise APIError(404, NOT_FOUND, f'no tile {z}/{x}/{y} (zoom 0..{MAX_ZOOM})')
        cid = conf.get('collection')
        prov = grid_provider((api.config.get('resources') or {}).get(cid))
        if prov is None:
            raise APIError(404, NOT_FOUND, 'no base map grid configured (server: map: '
                                           'collection: names a GridCoverage collection)')
        path = str(prov['data'])
        bands = tuple((prov.get('options') or {}).get('bands') or ())
        try:
            st = os.stat(path)
        except OSError:
            raise APIError(503, 'http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/'
                           'unavailable', f'the base map grid ({cid}) is not on this server')
        png = _tile(path, bands, (st.st_mtime_ns, st.st_size), z, x, y)
        resp = Response(png, mimetype='image/png')
        resp.headers['Cache-Control'] = 'public, max-age=86400'
        return resp

    @app.get('/basemap/leaflet/<path:name>')
    def basemap_leaflet(name):
        if not Path(leaflet).is_dir():
            abort(404, 'Leaflet is not installed on this server (Debian libjs-leaflet)')
        return send_from_directory(leaflet, name, max_age=86400)
