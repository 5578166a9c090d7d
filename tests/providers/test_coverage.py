"""Gridded NetCDF as OGC API - Coverages through a real `vre serve`: served values and index
ranges against what xarray/netCDF4 read from the files, CoverageJSON and NetCDF outputs, GDAL
(rasterio) on the NetCDF output, OWSLib's Coverages client, HTML pages, problems for bad input
and for a grid absent from the mirror.

Two servers: one on the shared mirror (the real GEBCO 2020 griddap file; no EMODnet Chemistry
grid there, so that collection must answer 503), one on a mirror holding only a DIVAnd-layout
climatology written by `divand_layout` (no real DIVAnd product is available offline; the file
follows DIVAnd_save.jl's layout, see ../shared/data/bdi/emodnet-chemistry/SOURCE.md, and its
values are random) to exercise the depth and time axes.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr

from bdi_samples import BDI_DATA, coverage, values
from serverkit import start_server

GEBCO = BDI_DATA / 'erddap/coastwatch_griddap_GEBCO_2020_subset.nc'
BATHY, CHEM = 'bathymetry-gebco-2020', 'emodnet-chemistry-ammonium'
CHEM_FILE = 'emodnet-chemistry/Water_body_ammonium.combined.nc'
VAR = 'Water_body_ammonium'


def divand_layout(path: Path) -> None:
    """A small climatology in the layout DIVAnd writes: dims (time, depth, lat, lon) + nv,
    days since 1900, climatology_bounds, <var>, <var>_relerr, <var>_L1; random values, some
    cells missing (land)."""
    rng = np.random.default_rng(3)
    with netCDF4.Dataset(path, 'w') as ds:
        for name, n in (('lon', 8), ('lat', 6), ('depth', 3), ('time', 4), ('nv', 2)):
            ds.createDimension(name, n)
        lon = ds.createVariable('lon', 'f4', ('lon',))
        lon.units, lon.standard_name = 'degrees_east', 'longitude'
        lon[:] = np.arange(8) * 0.5 - 10
        lat = ds.createVariable('lat', 'f4', ('lat',))
        lat.units, lat.standard_name = 'degrees_north', 'latitude'
        lat[:] = np.arange(6) * 0.5 + 43
        depth = ds.createVariable('depth', 'f4', ('depth',))
        depth.units, depth.standard_name, depth.positive = 'meters', 'depth', 'down'
        depth[:] = [0, 10, 50]
        t = ds.createVariable('time', 'f8', ('time',))
        t.units, t.standard_name = 'days since 1900-01-01 00:00:00', 'time'
        t.climatology = 'climatology_bounds'
        mid = [netCDF4.date2num(datetime(2009, m, 15), t.units) for m in (2, 5, 8, 11)]
        t[:] = mid
        bounds = ds.createVariable('climatology_bounds', 'f8', ('time', 'nv'))
        bounds[:] = [[m - 45, m + 45] for m in mid]
        for suffix, long in (('', 'Water body ammonium'), ('_relerr', 'Relative error'),
                             ('_L1', 'Water body ammonium masked using relerr 0.3')):
            v = ds.createVariable(VAR + suffix, 'f4', ('time', 'depth', 'lat', 'lon'),
                                  fill_value=np.float32(-99999))
            v.long_name, v.units = long, 'umol/l' if suffix != '_relerr' else '1'
            data = rng.uniform(0, 3, (4, 3, 6, 8)).astype('f4')
            data[:, :, 0, :2] = np.nan                      # land in the south-west corner
            v[:] = np.ma.masked_invalid(data)
        ds.Conventions, ds.title = 'CF-1.6', 'DIVAnd layout test grid (random values)'


@pytest.fixture(scope='module')
def mirror_server(tmp_path_factory, bdi_data):
    """A server whose mirror is the shared sample mirror."""
    home = tmp_path_factory.mktemp('cov') / 'home'
    with start_server(home, extra_env={'VRE_BDI_MIRROR': str(bdi_data)}) as server:
        yield server


@pytest.fixture(scope='module')
def clim_file(tmp_path_factory):
    mirror = tmp_path_factory.mktemp('mirror')
    (mirror / 'emodnet-chemistry').mkdir()
    divand_layout(mirror / CHEM_FILE)
    return mirror / CHEM_FILE


@pytest.fixture(scope='module')
def clim_server(tmp_path_factory, clim_file, bdi_data):
    home = tmp_path_factory.mktemp('clim') / 'home'
    mirror = str(clim_file.parents[1])
    with start_server(home, extra_env={'VRE_BDI_MIRROR': mirror}) as server:
        yield server


def span(coord: np.ndarray, lo, hi) -> slice:
    idx = np.flatnonzero((coord >= lo) & (coord <= hi))
    return slice(idx[0], idx[-1] + 1)


# --- GEBCO (the real griddap file) ---------------------------------------------------------
def test_bbox_alone_cuts_the_index_ranges_and_values(mirror_server):
    cj = coverage(mirror_server, BATHY, bbox='90,-60,91.5,-59').json()
    with xr.open_dataset(GEBCO) as ds:
        ys = span(ds.latitude.values, -60, -59)
        xs = span(ds.longitude.values, 90, 91.5)
        want = ds.elevation.isel(latitude=ys, longitude=xs)
        assert cj['domain']['axes']['x']['values'] == pytest.approx(want.longitude.values)
        assert cj['domain']['axes']['y']['values'] == pytest.approx(want.latitude.values)
        assert cj['ranges']['elevation']['axisNames'] == ['y', 'x']
        np.testing.assert_array_equal(values(cj, 'elevation'), want.values)
    assert cj['type'] == 'Coverage' and cj['domain']['domainType'] == 'Grid'
    assert cj['parameters']['elevation']['unit']['symbol'] == 'm'


def test_subset_lat_lon_equals_bbox_and_cuts_one_axis_alone(mirror_server):
    by_subset = coverage(mirror_server, BATHY, subset='lat(-60:-59),lon(90:91.5)').json()
    by_bbox = coverage(mirror_server, BATHY, bbox='90,-60,91.5,-59').json()
    assert by_subset['ranges'] == by_bbox['ranges']
    only_lat = coverage(mirror_server, BATHY, subset='latitude(-55.2:-55)').json()
    with xr.open_dataset(GEBCO) as ds:
        want = ds.elevation.isel(latitude=span(ds.latitude.values, -55.2, -55))
        assert values(only_lat, 'elevation').shape == want.shape
        assert want.shape[0] > 1 and want.shape[1] == ds.sizes['longitude']
        np.testing.assert_array_equal(values(only_lat, 'elevation'), want.values)


@pytest.mark.parametrize('lon,lat', [(81.0, -67.0), (100.013, -60.4), (122.99, -54.01)])
def test_value_at_a_position_is_the_nearest_cell(mirror_server, lon, lat):
    cj = coverage(mirror_server, BATHY, subset=f'lon({lon}),lat({lat})').json()
    with xr.open_dataset(GEBCO) as ds:
        cell = ds.elevation.sel(longitude=lon, latitude=lat, method='nearest')
        assert values(cj, 'elevation').tolist() == [[float(cell)]]
        assert cj['domain']['axes']['x']['values'] == [float(cell.longitude)]


def test_netcdf_output_reads_back_with_xarray_and_gdal(mirror_server, tmp_path):
    import rasterio
    r = coverage(mirror_server, BATHY, bbox='100,-62,102,-61', f='netcdf')
    assert r.headers['Content-Type'] == 'application/x-netcdf'
    out = tmp_path / 'cut.nc'
    out.write_bytes(r.content)
    with xr.open_dataset(GEBCO) as ds, xr.open_dataset(out) as got:
        want = ds.elevation.isel(latitude=span(ds.latitude.values, -62, -61),
                                 longitude=span(ds.longitude.values, 100, 102))
        np.testing.assert_array_equal(got.elevation.values, want.values)
        assert got.elevation.attrs['units'] == 'm'
        assert got.attrs['Westernmost_Easting'] == pytest.approx(float(want.longitude[0]))
        with rasterio.open(f'NETCDF:{out}:elevation') as src:
            assert (src.width, src.height) == (want.sizes['longitude'], want.sizes['latitude'])
            res = float(want.longitude[1] - want.longitude[0])
            assert src.transform.c == pytest.approx(float(want.longitude[0]) - res / 2)
            assert src.bounds.top == pytest.approx(float(want.latitude[-1]) + res / 2, abs=1e-6)
            band = src.read(1, masked=True)
            for lon, lat in ((100.3, -61.7), (101.9, -61.05)):
                row, col = src.index(lon, lat)
                cell = want.sel(longitude=lon, latitude=lat, method='nearest')
                assert float(band[row, col]) == float(cell)


def test_owslib_coverages_client(mirror_server):
    from owslib.ogcapi.coverages import Coverages
    api = Coverages(mirror_server.url)
    assert {BATHY, CHEM} <= set(api.coverages())
    assert api.collection(BATHY)['extent']['spatial']['grid'][0]['cellsCount'] == 1009
    raw = api.coverage(BATHY, subset={'lat': (-58, -57.8), 'lon': (110, 110.3)})
    cj = json.load(raw)
    with xr.open_dataset(GEBCO) as ds:
        want = ds.elevation.isel(latitude=span(ds.latitude.values, -58, -57.8),
                                 longitude=span(ds.longitude.values, 110, 110.3))
        np.testing.assert_array_equal(values(cj, 'elevation'), want.values)


def test_html_pages(mirror_server):
    for path in (f'/collections/{BATHY}', f'/collections/{BATHY}/schema', '/collections'):
        r = requests.get(f'{mirror_server.url}{path}', params={'f': 'html'}, timeout=30)
        assert r.status_code == 200 and r.headers['Content-Type'].startswith('text/html')
    page = requests.get(f'{mirror_server.url}/collections/{BATHY}', params={'f': 'html'},
                        timeout=30).text
    assert f'/collections/{BATHY}/coverage?f=netcdf' in page
    meta = requests.get(f'{mirror_server.url}/collections/{BATHY}', params={'f': 'json'},
                        timeout=30).json()
    with xr.open_dataset(GEBCO) as ds:
        assert meta['extent']['spatial']['grid'][1]['cellsCount'] == ds.sizes['latitude']


@pytest.mark.parametrize('params,status', [
    ({'bbox': '1,2,3'}, 400), ({'bbox': 'a,b,c,d'}, 400), ({'bbox': '90,-59,91,-60'}, 400),
    ({'subset': 'lat(a:b)'}, 400), ({'subset': 'lat(-55:-56)'}, 400),
    ({'subset': 'foo(1:2)'}, 400), ({'subset': 'lat'}, 400), ({'subset': 'lat(nan)'}, 400),
    ({'subset': 'time("2020-01-01T00:00:00Z")'}, 400), ({'datetime': '2020-01-01'}, 400),
    ({'bbox': '90,-60,91,-59', 'subset': 'lat(-60:-59)'}, 400),
    ({'properties': 'nope'}, 400), ({'f': 'xyz'}, 400),
    ({'subset': 'lat(0:1)'}, 404), ({'subset': 'lon(10)'}, 404)])
def test_bad_input_is_a_problem_not_a_500(mirror_server, params, status):
    r = requests.get(f'{mirror_server.url}/collections/{BATHY}/coverage', params=params,
                     timeout=30)
    assert r.status_code == status, r.text
    if params.get('f') != 'xyz':
        assert r.headers['Content-Type'] == 'application/problem+json'
        assert r.json()['status'] == status and r.json()['detail']


def test_grid_absent_from_the_mirror_is_a_503_and_the_server_runs(mirror_server):
    assert not (BDI_DATA / CHEM_FILE).exists()
    r = requests.get(f'{mirror_server.url}/collections/{CHEM}/coverage', timeout=30)
    assert r.status_code == 503 and r.headers['Content-Type'] == 'application/problem+json'
    assert 'not available' in r.json()['detail']
    r = requests.get(f'{mirror_server.url}/collections/{CHEM}/coverage',
                     params={'subset': 'lat(1:2)'}, timeout=30)
    assert r.status_code == 503
    assert requests.get(f'{mirror_server.url}/collections/{CHEM}', timeout=30).status_code == 200


# --- DIVAnd layout: depth and time ----------------------------------------------------------
def test_value_at_position_depth_and_instant(clim_server, clim_file):
    cj = coverage(clim_server, CHEM, subset='lon(-8.1),lat(44.4),depth(10),'
                                            'time("2009-05-15T00:00:00Z")').json()
    with xr.open_dataset(clim_file) as ds:
        cell = ds[VAR].sel(lon=-8.1, lat=44.4, depth=10, method='nearest') \
            .sel(time='2009-05-15T00:00:00')
        assert values(cj, VAR).ravel().tolist() == [float(cell)]
    axes = cj['domain']['axes']
    assert axes['t']['values'] == ['2009-05-15T00:00:00Z'] and axes['z']['values'] == [10.0]
    assert cj['ranges'][VAR]['axisNames'] == ['t', 'z', 'y', 'x']


@pytest.mark.parametrize('when,months', [
    ('2009-05-15T00:00:00Z', [5]), ('2009-05-15', [5]), ('2009-05-14', None),
    ('2009-04-01/2009-09-01', [5, 8]), ('../2009-05-15T00:00:00Z', [2, 5]),
    ('2009-08-15T00:00:00+00:00/..', [8, 11])])
def test_datetime_instants_days_and_intervals(clim_server, clim_file, when, months):
    r = requests.get(f'{clim_server.url}/collections/{CHEM}/coverage',
                     params={'datetime': when, 'properties': VAR}, timeout=30)
    if months is None:
        assert r.status_code == 404, r.text
        return
    assert r.status_code == 200, r.text
    cj = r.json()
    assert [int(t[5:7]) for t in cj['domain']['axes']['t']['values']] == months
    assert list(cj['ranges']) == [VAR]
    with xr.open_dataset(clim_file) as ds:
        want = ds[VAR].isel(time=[m // 3 for m in months])
        np.testing.assert_array_equal(values(cj, VAR), want.values)


def test_time_subset_interval_bbox_and_depth_range(clim_server, clim_file):
    cj = coverage(clim_server, CHEM, bbox='-9.2,43.4,-8,44.6', properties=f'{VAR}_L1',
                  subset='time("2009-02-01T00:00:00Z":"2009-06-01T00:00:00Z"),depth(5:60)'
                  ).json()
    with xr.open_dataset(clim_file) as ds:
        want = ds[f'{VAR}_L1'].isel(
            time=[0, 1], depth=span(ds.depth.values, 5, 60),
            lat=span(ds.lat.values, 43.4, 44.6), lon=span(ds.lon.values, -9.2, -8))
        assert values(cj, f'{VAR}_L1').shape == want.shape and min(want.shape) > 1
        np.testing.assert_array_equal(values(cj, f'{VAR}_L1'), want.values)
        assert cj['domain']['axes']['z']['values'] == [10.0, 50.0]


def test_missing_cells_are_null_in_json_and_fill_in_netcdf(clim_server, clim_file, tmp_path):
    cj = coverage(clim_server, CHEM, bbox='-10,43,-9,43.2', properties=VAR).json()
    raw = cj['ranges'][VAR]['values']
    with xr.open_dataset(clim_file) as ds:
        want = ds[VAR].isel(lat=span(ds.lat.values, 43, 43.2), lon=span(ds.lon.values, -10, -9))
        assert [v is None for v in raw] == np.isnan(want.values).ravel().tolist()
    out = tmp_path / 'clim.nc'
    out.write_bytes(coverage(clim_server, CHEM, bbox='-10,43,-9,43.2', f='netcdf').content)
    with netCDF4.Dataset(out) as got, netCDF4.Dataset(clim_file) as src:
        assert got[VAR]._FillValue == src[VAR]._FillValue
        assert (netCDF4.num2date(got['time'][:], got['time'].units) ==
                netCDF4.num2date(src['time'][:], src['time'].units)).all()
        assert np.ma.getmaskarray(got[VAR][:]).any()


def test_grid_absent_in_this_mirror_is_a_503(clim_server):
    r = requests.get(f'{clim_server.url}/collections/{BATHY}/coverage', timeout=30)
    assert r.status_code == 503


# --- the provider keeps datasets open ------------------------------------------------------
def test_dataset_is_opened_once_and_reopened_when_it_changes(tmp_path):
    from providers.coverage import GridCoverage
    f = tmp_path / 'g.nc'
    divand_layout(f)
    pdef = {'name': 'providers.coverage.GridCoverage', 'type': 'coverage', 'data': str(f)}
    first, second = GridCoverage(pdef), GridCoverage(pdef)
    assert first.grid is second.grid
    time.sleep(0.01)
    os.utime(f)                                             # a new mtime: a changed file
    assert GridCoverage(pdef).grid is not first.grid
    assert GridCoverage(dict(pdef, data=str(tmp_path / 'absent.nc'))).grid is None


def test_answers_above_max_cells_are_refused(tmp_path):
    from pygeoapi.provider.base import ProviderRequestEntityTooLargeError
    from providers.coverage import GridCoverage
    f = tmp_path / 'g.nc'
    divand_layout(f)
    p = GridCoverage({'name': 'providers.coverage.GridCoverage', 'type': 'coverage',
                      'data': str(f), 'options': {'max_cells': 8}})
    assert p.query(properties=[VAR], subsets={'lat': [44], 'depth': [0], 'time': [
        '2009-02-15T00:00:00Z']})['ranges'][VAR]['shape'] == [1, 1, 1, 8]
    with pytest.raises(ProviderRequestEntityTooLargeError):
        p.query(properties=[VAR], subsets={'lat': [44, 44.5], 'depth': [0],
                                           'time': ['2009-02-15T00:00:00Z']})


def _level1(server, **params):
    r = requests.get(f'{server.url}/collections/bdi-collections/items',
                     params={'limit': 100, 'f': 'json', **params}, timeout=60)
    assert r.status_code == 200, r.text
    return {f['id']: f for f in r.json()['features']}


def test_grid_collections_are_in_level1_search_with_the_file_extent(mirror_server):
    with netCDF4.Dataset(GEBCO) as ds:
        lon, lat = ds['longitude'][:], ds['latitude'][:]
        want = [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]
    found = _level1(mirror_server, q='bathymetry')
    rec = found[BATHY]
    ring = np.array(rec['geometry']['coordinates'][0])
    np.testing.assert_allclose([*ring.min(axis=0), *ring.max(axis=0)], want)
    assert rec['properties']['type'] == 'coverage' and rec['properties']['available'] is True
    assert rec['properties']['bdi'] == 'erddap' and CHEM not in found
    inside = f'{want[0] + 1},{want[1] + 1},{want[0] + 2},{want[1] + 2}'
    assert BATHY in _level1(mirror_server, bbox=inside)
    assert BATHY not in _level1(mirror_server, bbox='0,0,1,1')
    chem = _level1(mirror_server, q='ammonium')[CHEM]
    assert chem['properties']['available'] is False and chem['properties']['bdi'] == \
        'emodnet-chemistry'


def test_grid_bdis_in_the_bdi_table_say_whether_the_file_is_there(mirror_server):
    rows = {b['name']: b for b in requests.get(f'{mirror_server.url}/bdis',
                                               params={'f': 'json'}, timeout=30).json()['bdis']}
    erddap, chem = rows['erddap'], rows['emodnet-chemistry']
    assert erddap['collections'] == [{'id': BATHY, 'title': erddap['collections'][0]['title'],
                                      'granules': 0, 'available': True}]
    assert erddap['health']['reachable'] is True and erddap['health']['last_error'] is None
    assert chem['collections'][0]['available'] is False
    assert chem['health']['reachable'] is False
    assert os.path.basename(CHEM_FILE) in chem['health']['last_error']
    html = requests.get(f'{mirror_server.url}/bdis', params={'f': 'html'}, timeout=30).text
    assert BATHY in html and CHEM in html


def test_a_present_climatology_has_its_time_extent_in_level1(clim_server, clim_file):
    with xr.open_dataset(clim_file) as ds:
        t = ds['time'].values.astype('datetime64[s]')
    rec = _level1(clim_server, q='ammonium', datetime='2009-03-01/2009-04-01')[CHEM]
    assert rec['time']['interval'] == [f'{t.min()}Z', f'{t.max()}Z']
    assert rec['properties']['available'] is True
    assert CHEM not in _level1(clim_server, q='ammonium', datetime='2010-01-01/..')
    assert BATHY in _level1(clim_server, q='bathymetry')   # listed, from the config extent


def test_coverage_page_and_map_for_people(mirror_server, bdi_data):
    """The HTML page of a coverage shows its map (drawn from our grid, no external tiles)."""
    import io
    import re

    from PIL import Image

    ds = xr.open_dataset(bdi_data / 'erddap' / 'coastwatch_griddap_GEBCO_2020_subset.nc')
    lon = next(n for n in ds.dims if 'lon' in n.lower())
    lat = next(n for n in ds.dims if 'lat' in n.lower())
    base = f'{mirror_server.url}/collections/bathymetry-gebco-2020/coverage'
    page = requests.get(base, params={'f': 'html'})
    assert page.status_code == 200 and page.headers['Content-Type'].startswith('text/html')
    assert f'Grid of {ds.sizes[lon]} x {ds.sizes[lat]} cells' in page.text
    src = re.search(r'<img alt="[^"]*" src="([^"]+)"', page.text).group(1)
    image = requests.get(src.replace('&amp;', '&'))
    assert image.headers['Content-Type'] == 'image/png'
    pic = Image.open(io.BytesIO(image.content)).convert('RGB')
    assert pic.size == (800, 500) and len(set(pic.getdata())) > 100     # a real map, not blank
    browser = requests.get(base, headers={'Accept': 'text/html,application/xhtml+xml'})
    assert browser.headers['Content-Type'].startswith('text/html')
    x0, x1 = float(ds[lon].min()), float(ds[lon].max())
    y0, y1 = float(ds[lat].min()), float(ds[lat].max())
    cut = requests.get(base, params={'f': 'png', 'bbox': f'{x0},{y0},{(x0 + x1) / 2},{y1}'})
    assert cut.status_code == 200 and cut.content != image.content
    for bbox, status in (('1,2,3', 400), ('a,b,c,d', 400), (f'{x1 + 1},{y0},{x1 + 2},{y1}', 404)):
        r = requests.get(base, params={'f': 'png', 'bbox': bbox})
        assert r.status_code == status and r.headers['Content-Type'] == 'application/problem+json'
