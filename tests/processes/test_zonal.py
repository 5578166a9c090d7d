"""zonal-statistics through the running server on the GEBCO grid, as NetCDF and as a GeoTIFF
made by subset, against numpy on the cells whose centres shapely finds inside each polygon."""
from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import shapely
import shapely.geometry
import xarray as xr

from serverkit import serve_folder
from test_ogcapi_processes import execute, wait_for

GEBCO = 'erddap/coastwatch_griddap_GEBCO_2020_subset.nc'
TRIANGLE = {'type': 'Polygon', 'coordinates': [[[100.013, -61.91], [101.37, -61.83],
                                                [100.61, -61.07], [100.013, -61.91]]]}
BOX = {'type': 'Polygon', 'coordinates': [[[90.507, -60.493], [91.252, -60.493],
                                           [91.252, -59.917], [90.507, -59.917],
                                           [90.507, -60.493]]]}
POLYGONS = {'type': 'FeatureCollection', 'features': [
    {'type': 'Feature', 'properties': {'name': 'triangle'}, 'geometry': TRIANGLE},
    {'type': 'Feature', 'properties': {'name': 'box'}, 'geometry': BOX}]}


def expected(bdi_data, geometry):
    grid = xr.open_dataset(bdi_data / GEBCO).elevation
    lon, lat = np.meshgrid(grid.longitude.values, grid.latitude.values)
    inside = shapely.contains_xy(shapely.geometry.shape(geometry), lon, lat)
    return grid.values[inside].astype('float64')


def zonal(server, inputs):
    resp = execute(server, 'zonal-statistics', {'inputs': inputs, 'response': 'document',
                                                'outputs': {'zones': {}}})
    assert resp.status_code == 200, resp.text
    return resp.json()['zones']['value']


def check(zones, bdi_data):
    assert [f['properties']['name'] for f in zones['features']] == ['triangle', 'box']
    for f, geom in zip(zones['features'], (TRIANGLE, BOX)):
        want, got = expected(bdi_data, geom), f['properties']
        assert got['count'] == want.size > 100
        assert got['min'] == want.min() and got['max'] == want.max()
        assert got['mean'] == pytest.approx(want.mean(), rel=1e-9)
        assert got['std'] == pytest.approx(want.std(), rel=1e-9)


def test_netcdf_grid_with_polygons_by_value(vre_server, static_server, bdi_data):
    zones = zonal(vre_server, {'raster': {'href': f'{static_server}/{GEBCO}'},
                               'polygons': POLYGONS})
    check(zones, bdi_data)
    means = [f['properties']['mean'] for f in zones['features']]
    assert means[0] != means[1]


def test_geotiff_from_subset_with_polygons_by_reference(vre_server, static_server, bdi_data,
                                                        tmp_path):
    resp = execute(vre_server, 'subset', {
        'inputs': {'data': {'href': f'{static_server}/{GEBCO}'}, 'output_format': 'geotiff'},
        'response': 'document', 'outputs': {'subset': {'transmissionMode': 'reference'}}})
    assert resp.status_code == 200, resp.text
    tif = resp.json()['subset']['href']
    (tmp_path / 'zones.geojson').write_text(json.dumps(POLYGONS))
    with serve_folder(tmp_path) as url:
        zones = zonal(vre_server, {'raster': {'href': tif},
                                   'polygons': {'href': f'{url}/zones.geojson'}})
    check(zones, bdi_data)


def test_polygon_outside_the_grid_has_no_cells(vre_server, static_server):
    far = {'type': 'Polygon', 'coordinates': [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    zones = zonal(vre_server, {'raster': {'href': f'{static_server}/{GEBCO}'},
                               'polygons': {'type': 'Feature', 'properties': {},
                                            'geometry': far}})
    assert zones['features'][0]['properties'] == {'count': 0, 'min': None, 'max': None,
                                                  'mean': None, 'std': None}


@pytest.mark.parametrize('polygons,message', [
    ({'type': 'Point', 'coordinates': [100, -61]}, 'not a Polygon'),
    ({'type': 'FeatureCollection', 'features': []}, 'holds no features'),
])
def test_bad_polygons_are_400(vre_server, static_server, polygons, message):
    r = execute(vre_server, 'zonal-statistics', {'inputs': {
        'raster': {'href': f'{static_server}/{GEBCO}'}, 'polygons': polygons}},
        prefer='respond-async')
    done = wait_for(vre_server, r.json()['jobID'])
    assert done['status'] == 'failed' and message in done['message']
    res = requests.get(f"{vre_server.url}/jobs/{done['jobID']}/results")
    assert res.status_code == 400
