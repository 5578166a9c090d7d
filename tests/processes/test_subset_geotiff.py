"""subset written as GeoTIFF through the running server: the raster read back with rasterio is
compared, cell by cell, with the GEBCO grid read with xarray at the cell centres."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
import requests
import xarray as xr

from serverkit import serve_folder
from test_ogcapi_processes import execute, wait_for

GEBCO = 'erddap/coastwatch_griddap_GEBCO_2020_subset.nc'
ARGO = 'argo/dac/coriolis/3902131/3902131_prof.nc'
ICOS = 'icos-marine/otc_quality_flags.csv'


def test_grid_cut_as_geotiff_matches_the_grid(vre_server, static_server, bdi_data, tmp_path):
    box = [100.0, -62.0, 101.5, -61.0]
    body = {'inputs': {'data': {'href': f'{static_server}/{GEBCO}'}, 'bbox': box,
                       'output_format': 'geotiff'},
            'response': 'document', 'outputs': {'subset': {'transmissionMode': 'reference'}}}
    resp = execute(vre_server, 'subset', body)
    assert resp.status_code == 200, resp.text
    got = requests.get(resp.json()['subset']['href'])
    assert got.status_code == 200
    (tmp_path / 'cut.tif').write_bytes(got.content)

    grid = xr.open_dataset(bdi_data / GEBCO).elevation
    step = float(grid.longitude[1] - grid.longitude[0])
    with rasterio.open(tmp_path / 'cut.tif') as tif:
        assert tif.crs.to_epsg() == 4326 and tif.count == 1 and np.isnan(tif.nodata)
        assert tif.res == pytest.approx((step, step), rel=1e-6)
        band = tif.read(1)
        rows, cols = np.meshgrid(np.arange(tif.height), np.arange(tif.width), indexing='ij')
        lon, lat = rasterio.transform.xy(tif.transform, rows.ravel(), cols.ravel())
        assert tif.descriptions[0] == 'elevation'
    lon, lat = np.asarray(lon), np.asarray(lat)
    # every cell centre inside the bbox, and every grid cell inside the bbox present
    assert lon.min() >= box[0] and lon.max() <= box[2] and lat.min() >= box[1] \
        and lat.max() <= box[3]
    inside = ((grid.longitude >= box[0]) & (grid.longitude <= box[2])).sum() * \
        ((grid.latitude >= box[1]) & (grid.latitude <= box[3])).sum()
    assert band.size == int(inside) > 500
    want = grid.sel(longitude=xr.DataArray(lon), latitude=xr.DataArray(lat), method='nearest',
                    tolerance=step / 100).values
    np.testing.assert_array_equal(band.ravel(), want)
    assert np.ptp(band) > 100         # real relief, not a constant


@pytest.mark.parametrize('source', [ARGO, ICOS])
def test_points_and_profiles_are_refused_as_geotiff(vre_server, static_server, source):
    r = execute(vre_server, 'subset', {'inputs': {
        'data': {'href': f'{static_server}/{source}'}, 'output_format': 'geotiff'}},
        prefer='respond-async')
    done = wait_for(vre_server, r.json()['jobID'])
    assert done['status'] == 'failed' and 'GeoTIFF is for gridded data' in done['message']
    res = requests.get(f"{vre_server.url}/jobs/{done['jobID']}/results")
    assert res.status_code == 400


def test_time_slices_become_bands_with_nan_nodata(vre_server, tmp_path):
    """A grid stored south-down (latitude descending) with two times and missing cells."""
    rng = np.random.default_rng(3)
    lat, lon = np.arange(45.0, 40.0, -0.5), np.arange(-5.0, 2.0, 0.5)
    values = rng.normal(15, 2, (2, lat.size, lon.size))
    values[0, 2, 3] = values[1, 5, 7] = np.nan
    times = np.array(['2020-01-01', '2020-02-01'], dtype='datetime64[ns]')
    xr.Dataset({'sst': (('time', 'lat', 'lon'), values)},
               coords={'time': times, 'lat': lat, 'lon': lon}).to_netcdf(tmp_path / 'g.nc')
    with serve_folder(tmp_path) as url:
        resp = execute(vre_server, 'subset', {
            'inputs': {'data': {'href': f'{url}/g.nc'}, 'output_format': 'geotiff'},
            'response': 'document', 'outputs': {'subset': {'transmissionMode': 'reference'}}})
    assert resp.status_code == 200, resp.text
    (tmp_path / 'out.tif').write_bytes(requests.get(resp.json()['subset']['href']).content)
    src = xr.open_dataset(tmp_path / 'g.nc').sst
    with rasterio.open(tmp_path / 'out.tif') as tif:
        assert tif.count == 2 and np.isnan(tif.nodata) and tif.transform.e < 0
        assert [d.startswith('sst time=2020-0') for d in tif.descriptions] == [True, True]
        rows, cols = np.meshgrid(np.arange(tif.height), np.arange(tif.width), indexing='ij')
        x, y = rasterio.transform.xy(tif.transform, rows.ravel(), cols.ravel())
        for band, when in zip((1, 2), times):
            want = src.sel(time=when).sel(lon=xr.DataArray(np.asarray(x)),
                                          lat=xr.DataArray(np.asarray(y)), method='nearest',
                                          tolerance=0.01).values
            got = tif.read(band).ravel()
            assert np.isnan(got).sum() == 1
            np.testing.assert_allclose(got, want.astype('float32'), equal_nan=True)
        assert tif.read(1, masked=True).mask.sum() == 1      # NaN read as nodata
