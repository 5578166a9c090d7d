"""OGC API - EDR over gridded DIVAnd products (providers/grid_edr.py) through a real
`vre serve`: position (nearest cell -> vertical profiles / time series), area (polygon ->
cells inside), cube (bbox + z + datetime), parameter-name, the climatology time axis shown
with its climatology_bounds, CoverageJSON validated by covjson-pydantic, values against
xarray reading the file directly, problems for bad input.

No real DIVAnd product (EMODnet Chemistry or SeaDataNet climatology) is available offline:
`divand_product` writes one in the layout of DIVAnd_save.jl as described in
../shared/data/bdi/emodnet-chemistry/SOURCE.md (dims time, depth, lat, lon + nv; time in
days since 1900 with `climatology = "climatology_bounds"`; <var>, <var>_relerr, <var>_L1 and
<var>_L2 masked where relerr > 0.3 / 0.5; float32 with _FillValue and missing_value; global
product_id). Its values are random; it follows the layout, not a real product's numbers.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import requests
import shapely
import xarray as xr

from serverkit import start_server

SAL, AMM = 'Water_body_salinity', 'Water_body_ammonium'
SDN_FILE = 'seadatanet-products/Water_body_salinity.4Danl.nc'
CHEM_FILE = 'emodnet-chemistry/Water_body_ammonium.combined.nc'
SDN_COLL, CHEM_COLL = 'seadatanet-salinity-climatology', 'emodnet-chemistry-ammonium'
SEASONS = ((1, 3), (4, 6), (7, 9), (10, 12))


def divand_product(path: Path, var: str = SAL, units: str = '1e-3',
                   product_id: str | None = None, seed: int = 7) -> None:
    """A small DIVAnd product: 4 seasons of 1960-2019, 4 depths, 10 x 7 cells (see above)."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = 10, 7, 4
    with netCDF4.Dataset(path, 'w') as ds:
        for name, n in (('lon', nx), ('lat', ny), ('depth', nz), ('time', None), ('nv', 2)):
            ds.createDimension(name, n)
        lon = ds.createVariable('lon', 'f4', ('lon',))
        lon.units, lon.standard_name, lon.long_name = 'degrees_east', 'longitude', 'longitude'
        lon[:] = np.arange(nx) * 0.25 - 5
        lat = ds.createVariable('lat', 'f4', ('lat',))
        lat.units, lat.standard_name, lat.long_name = 'degrees_north', 'latitude', 'latitude'
        lat[:] = np.arange(ny) * 0.25 + 50
        depth = ds.createVariable('depth', 'f4', ('depth',))
        depth.units, depth.standard_name, depth.positive = 'meters', 'depth', 'down'
        depth.long_name = 'depth below sea level'
        depth[:] = [0, 10, 30, 75]
        t = ds.createVariable('time', 'f8', ('time',))
        t.units, t.standard_name, t.long_name = 'days since 1900-01-01 00:00:00', 'time', 'time'
        t.climatology = 'climatology_bounds'
        mid = [datetime(1990, a + 1, 16) for a, _ in SEASONS]
        t[:] = netCDF4.date2num(mid, t.units)
        bounds = ds.createVariable('climatology_bounds', 'f8', ('time', 'nv'))
        bounds.units = t.units
        ends = [datetime(2019, b % 12 + 1, 1) if b < 12 else datetime(2020, 1, 1)
                for _, b in SEASONS]
        bounds[:] = [[netCDF4.date2num(datetime(1960, a, 1), t.units),
                      netCDF4.date2num(e, t.units)] for (a, _), e in zip(SEASONS, ends)]
        shape = (4, nz, ny, nx)
        field = rng.uniform(30, 36, shape).astype('f4')
        relerr = rng.uniform(0, 1, shape).astype('f4')
        land = np.zeros(shape, bool)
        land[:, :, :2, :3] = True                        # a coast in the south-west
        land[:, 3, :, 5:] = True                         # shallower to the east
        long = var.replace('_', ' ')
        for suffix, data, title, unit in (
                ('', field, long, units), ('_relerr', relerr, f'Relative error of {long}', '1'),
                ('_L1', np.where(relerr > 0.3, np.nan, field),
                 f'{long} masked using relative error threshold 0.3', units),
                ('_L2', np.where(relerr > 0.5, np.nan, field),
                 f'{long} masked using relative error threshold 0.5', units)):
            v = ds.createVariable(var + suffix, 'f4', ('time', 'depth', 'lat', 'lon'),
                                  fill_value=np.float32(-99999))
            v.missing_value = np.float32(-99999)
            v.long_name, v.units = title, unit
            v[:] = np.ma.masked_invalid(np.where(land, np.nan, data))
        ds.Conventions = 'CF-1.6'
        ds.title = f'DIVAnd analysis of {long} (layout test product, random values)'
        ds.institution, ds.project = 'University of Liege, GHER', 'SeaDataNet'
        ds.product_version, ds.DIVAnd_source = '1.0', 'https://github.com/gher-uliege/DIVAnd.jl'
        if product_id:
            ds.product_id = product_id


@pytest.fixture(scope='module')
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp('edr-mirror')
    for f, var, unit in ((SDN_FILE, SAL, '1e-3'), (CHEM_FILE, AMM, 'umol/l')):
        (root / f).parent.mkdir()
        divand_product(root / f, var, unit)
    return root


@pytest.fixture(scope='module')
def server(tmp_path_factory, mirror):
    home = tmp_path_factory.mktemp('edr') / 'home'
    with start_server(home, extra_env={'VRE_BDI_MIRROR': str(mirror)}) as srv:
        yield srv


def edr(server, coll, query, **params):
    return requests.get(f'{server.url}/collections/{coll}/{query}', params=params, timeout=60)


def ok(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


def validate(doc: dict):
    """Structural CoverageJSON check by the covjson-pydantic models."""
    from covjson_pydantic.coverage import Coverage, CoverageCollection
    model = CoverageCollection if doc['type'] == 'CoverageCollection' else Coverage
    model.model_validate_json(json.dumps(doc))
    covs = doc['coverages'] if doc['type'] == 'CoverageCollection' else [doc]
    for cov in covs:        # and every range fits its axes
        axes = cov['domain']['axes']
        for rng in cov['ranges'].values():
            assert rng['shape'] == [len(axes[a]['values']) for a in rng['axisNames']]
            assert len(rng['values']) == int(np.prod(rng['shape']))


def arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype='f8')


def iso(values) -> list[str]:
    return [np.datetime_as_string(v.astype('datetime64[s]'), unit='s') + 'Z'
            for v in np.asarray(values).ravel()]


def climatology_bounds(path) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        b = ds['climatology_bounds']
        return np.array([np.datetime64(d, 's') for d in netCDF4.num2date(
            b[:].ravel(), b.units, only_use_cftime_datetimes=False)]).reshape(b.shape)


@pytest.mark.parametrize('coll,rel,var', [(SDN_COLL, SDN_FILE, SAL), (CHEM_COLL, CHEM_FILE, AMM)])
def test_position_gives_one_vertical_profile_per_season(server, mirror, coll, rel, var):
    doc = ok(edr(server, coll, 'position', coords='POINT(-3.9 50.8)'))
    validate(doc)
    assert doc['domainType'] == 'VerticalProfile'
    with xr.open_dataset(mirror / rel) as ds:
        cell = ds.sel(lon=-3.9, lat=50.8, method='nearest')
        assert len(doc['coverages']) == ds.sizes['time']
        assert set(doc['parameters']) == {var, f'{var}_relerr', f'{var}_L1', f'{var}_L2'}
        for i, cov in enumerate(doc['coverages']):
            axes = cov['domain']['axes']
            assert axes['x']['values'] == [float(cell.lon)]
            assert axes['y']['values'] == [float(cell.lat)]
            assert axes['z']['values'] == ds.depth.values.tolist()
            assert axes['t']['values'] == iso(ds.time.values[i])
            for name in doc['parameters']:
                np.testing.assert_array_equal(arr(cov['ranges'][name]['values']),
                                              cell[name].isel(time=i).values)
    bounds = climatology_bounds(mirror / rel)
    assert [c['domain']['axes']['t']['bounds'] for c in doc['coverages']] == \
        [iso(b) for b in bounds]
    assert doc['coverages'][0]['domain']['axes']['t']['bounds'][0].startswith('1960-01-01')


def test_position_at_one_depth_is_a_time_series_with_climatology_bounds(server, mirror):
    doc = ok(edr(server, SDN_COLL, 'position', coords='POINT(-3.0 51.0)', z='30',
                 **{'parameter-name': f'{SAL}_L2'}))
    validate(doc)
    assert doc['domainType'] == 'PointSeries' and list(doc['parameters']) == [f'{SAL}_L2']
    (cov,) = doc['coverages']
    with xr.open_dataset(mirror / SDN_FILE) as ds:
        want = ds[f'{SAL}_L2'].sel(lon=-3.0, lat=51.0, method='nearest').sel(depth=30)
        np.testing.assert_array_equal(arr(cov['ranges'][f'{SAL}_L2']['values']), want.values)
        assert cov['domain']['axes']['t']['values'] == iso(ds.time.values)
    assert cov['domain']['axes']['z']['values'] == [30.0]
    assert cov['domain']['axes']['t']['bounds'] == iso(climatology_bounds(mirror / SDN_FILE))


def test_area_gives_the_cells_inside_the_polygon(server, mirror):
    poly = 'POLYGON((-4.6 50.1, -3.1 50.1, -3.1 51.4, -4.6 50.1))'
    doc = ok(edr(server, SDN_COLL, 'area', coords=poly, z='0/10',
                 datetime='1990-04-01/1990-09-30', **{'parameter-name': SAL}))
    validate(doc)
    assert doc['domain']['domainType'] == 'Grid'
    rng = doc['ranges'][SAL]
    assert rng['axisNames'] == ['t', 'z', 'y', 'x']
    got = arr(rng['values']).reshape(rng['shape'])
    shape = shapely.from_wkt(poly)
    with xr.open_dataset(mirror / SDN_FILE) as ds:
        x0, y0, x1, y1 = shape.bounds
        sub = ds[SAL].sel(lon=slice(x0, x1), lat=slice(y0, y1), depth=slice(0, 10))
        sub = sub.isel(time=[1, 2])
        xx, yy = np.meshgrid(sub.lon.values, sub.lat.values)
        inside = shapely.intersects_xy(shape, xx, yy)
        assert 0 < inside.sum() < inside.size
        want = np.where(inside, sub.values, np.nan)
        np.testing.assert_array_equal(got, want)
        assert doc['domain']['axes']['x']['values'] == sub.lon.values.tolist()
        assert doc['domain']['axes']['t']['values'] == iso(sub.time.values)


def test_cube_bbox_z_list_and_datetime(server, mirror):
    doc = ok(edr(server, CHEM_COLL, 'cube', bbox='-4.5,50.2,-3.2,51', z='10,75',
                 datetime='1990-01-01/1990-03-31'))
    validate(doc)
    with xr.open_dataset(mirror / CHEM_FILE) as ds:
        sub = ds.sel(lon=slice(-4.5, -3.2), lat=slice(50.2, 51)).sel(depth=[10, 75]).isel(
            time=[0])
        for name in (AMM, f'{AMM}_L1', f'{AMM}_relerr'):
            rng = doc['ranges'][name]
            np.testing.assert_array_equal(arr(rng['values']).reshape(rng['shape']),
                                          sub[name].values)
        assert doc['domain']['axes']['z']['values'] == [10.0, 75.0]
        assert doc['parameters'][AMM]['unit']['symbol'] == ds[AMM].attrs['units']


def test_collection_describes_the_edr_queries_and_parameters(server):
    meta = ok(requests.get(f'{server.url}/collections/{SDN_COLL}', params={'f': 'json'},
                           timeout=30))
    assert set(meta['data_queries']) == {'position', 'area', 'cube'}
    assert set(meta['parameter_names']) == {SAL, f'{SAL}_relerr', f'{SAL}_L1', f'{SAL}_L2'}
    rels = {lk['rel'] for lk in meta['links']}
    assert 'http://www.opengis.net/def/rel/ogc/1.0/coverage' in rels and 'data' in rels


@pytest.mark.parametrize('query,params,status', [
    ('position', {'coords': 'POINT(1)'}, 400),
    ('position', {'coords': 'POINT(-4 50.5)', 'parameter-name': 'nope'}, 400),
    ('position', {'coords': 'POINT(-4 50.5)', 'parameter-name': f'{SAL},nope'}, 400),
    ('position', {'coords': 'POINT(-4 50.5)', 'z': '33'}, 400),
    ('position', {'coords': 'POINT(-4 50.5)', 'z': '500/900'}, 400),
    ('position', {'coords': 'POINT(-4 50.5)', 'z': 'deep'}, 400),
    ('position', {'coords': 'POINT(-4 50.5)', 'datetime': '1990-13-01'}, 400),
    ('position', {'coords': 'POLYGON((0 0,1 0,1 1,0 0))'}, 400),
    ('position', {'coords': 'POINT(20 10)'}, 404),
    ('position', {'coords': 'POINT(-4 50.5)', 'datetime': '2030-01-01'}, 404),
    ('area', {'coords': 'POINT(-4 50.5)'}, 400),
    ('area', {'coords': 'POLYGON((-4 50, -3 51, -3 50, -4 51, -4 50))'}, 400),
    ('area', {'coords': 'POLYGON((10 10, 11 10, 11 11, 10 10))'}, 404),
    ('cube', {}, 400), ('cube', {'bbox': '1,2,3'}, 400),
    ('cube', {'bbox': '-4,50,-3,51', 'z': '1/0'}, 400)])
def test_bad_input_is_a_problem_not_a_500(server, query, params, status):
    r = edr(server, SDN_COLL, query, **params)
    assert r.status_code == status, r.text
    assert r.headers['Content-Type'] == 'application/problem+json'
    assert r.json()['status'] == status and r.json()['detail']


def test_a_grid_absent_from_the_mirror_is_unavailable(tmp_path):
    from providers.coverage import Unavailable
    from providers.grid_edr import GridEDR
    p = GridEDR({'name': 'providers.grid_edr.GridEDR', 'type': 'edr',
                 'data': str(tmp_path / 'absent.nc')})
    assert p.get_fields() == {}
    with pytest.raises(Unavailable):
        p.query(query_type='position', wkt=shapely.Point(0, 0))


def test_answers_above_max_cells_are_refused(mirror):
    from pygeoapi.provider.base import ProviderRequestEntityTooLargeError
    from providers.grid_edr import GridEDR
    p = GridEDR({'name': 'providers.grid_edr.GridEDR', 'type': 'edr',
                 'data': str(mirror / SDN_FILE), 'options': {'max_cells': 20}})
    assert len(p.query(query_type='position', wkt=shapely.Point(-4, 50.5), z='0',
                       select_properties=[SAL])['coverages'][0]['ranges'][SAL]['values']) == 4
    with pytest.raises(ProviderRequestEntityTooLargeError):
        p.query(query_type='cube', bbox=[-5, 50, -3, 51], select_properties=[SAL])
