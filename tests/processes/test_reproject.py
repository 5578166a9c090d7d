"""reproject through the running server: features against pyproj called here, a raster's
bounds against rasterio.warp.transform_bounds and its cells against the source grid read
with xarray at the back-projected cell centres."""
from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio
import rasterio.warp
import requests
import xarray as xr

from test_ogcapi_processes import execute, wait_for

GEBCO = 'erddap/coastwatch_griddap_GEBCO_2020_subset.nc'
FEATURES = {'type': 'FeatureCollection', 'features': [
    {'type': 'Feature', 'properties': {'name': 'a'},
     'geometry': {'type': 'Point', 'coordinates': [100.5, -61.5]}},
    {'type': 'Feature', 'properties': {'name': 'b'},
     'geometry': {'type': 'Polygon', 'coordinates': [[[90.0, -60.0], [95.0, -60.0],
                                                      [95.0, -55.0], [90.0, -60.0]]]}}]}


def reproject(server, inputs):
    resp = execute(server, 'reproject', {'inputs': inputs, 'response': 'document', 'outputs': {
        'result': {'transmissionMode': 'reference'}}})
    assert resp.status_code == 200, resp.text
    got = requests.get(resp.json()['result']['href'])
    assert got.status_code == 200
    return got


@pytest.mark.parametrize('target', ['EPSG:3031', 'http://www.opengis.net/def/crs/EPSG/0/32647'])
def test_features_match_pyproj(vre_server, target):
    doc = reproject(vre_server, {'data': FEATURES, 'target_crs': target}).json()
    move = pyproj.Transformer.from_crs('OGC:CRS84', target, always_xy=True)
    point, polygon = doc['features']
    assert point['properties'] == {'name': 'a'}
    assert point['geometry']['coordinates'] == pytest.approx(list(move.transform(100.5, -61.5)))
    ring = np.asarray(FEATURES['features'][1]['geometry']['coordinates'][0])
    want = np.column_stack(move.transform(ring[:, 0], ring[:, 1]))
    np.testing.assert_allclose(polygon['geometry']['coordinates'][0], want, rtol=1e-12)
    assert pyproj.CRS(doc['crs']['properties']['name']) == pyproj.CRS(target)


def test_netcdf_grid_to_polar_stereographic(vre_server, static_server, bdi_data, tmp_path):
    got = reproject(vre_server, {'data': {'href': f'{static_server}/{GEBCO}'},
                                 'target_crs': 'EPSG:3031'})
    (tmp_path / 'out.tif').write_bytes(got.content)
    grid = xr.open_dataset(bdi_data / GEBCO).elevation
    step = float(grid.longitude[1] - grid.longitude[0])
    west, east = float(grid.longitude[0]) - step / 2, float(grid.longitude[-1]) + step / 2
    south, north = float(grid.latitude[0]) - step / 2, float(grid.latitude[-1]) + step / 2
    want = rasterio.warp.transform_bounds('EPSG:4326', 'EPSG:3031', west, south, east, north,
                                          densify_pts=21)
    with rasterio.open(tmp_path / 'out.tif') as tif:
        assert tif.crs.to_epsg() == 3031
        res = tif.res[0]
        np.testing.assert_allclose(tif.bounds, want, atol=2 * res)
        band = tif.read(1)
        rows, cols = np.nonzero(np.isfinite(band))
        pick = np.random.default_rng(0).choice(rows.size, 2000, replace=False)
        x, y = rasterio.transform.xy(tif.transform, rows[pick], cols[pick])
    lon, lat = pyproj.Transformer.from_crs('EPSG:3031', 'EPSG:4326', always_xy=True) \
        .transform(np.asarray(x), np.asarray(y))
    # cells whose centre falls well inside one source cell (GDAL approximates the
    # transformation to 1/8 of a cell)
    fx = (lon - float(grid.longitude[0])) / step
    fy = (lat - float(grid.latitude[0])) / step
    clear = (np.abs(fx - np.round(fx)) < 0.3) & (np.abs(fy - np.round(fy)) < 0.3)
    assert clear.sum() > 500 and rows.size > 0.5 * band.size
    source = grid.sel(longitude=xr.DataArray(lon[clear]), latitude=xr.DataArray(lat[clear]),
                      method='nearest').values
    np.testing.assert_array_equal(band[rows[pick][clear], cols[pick][clear]], source)


@pytest.mark.parametrize('target', ['EPSG:999999', 'not a crs'])
def test_unknown_crs_is_400(vre_server, target):
    r = execute(vre_server, 'reproject', {'inputs': {'data': FEATURES, 'target_crs': target}},
                prefer='respond-async')
    done = wait_for(vre_server, r.json()['jobID'])
    assert done['status'] == 'failed' and 'unknown coordinate reference system' in done['message']
    res = requests.get(f"{vre_server.url}/jobs/{done['jobID']}/results")
    assert res.status_code == 400
