"""climatology and anomaly through the running server, against xarray groupby in the test."""
from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from test_ogcapi_processes import execute

TIDE = 'seadatanet/netcdf/netCDF_timeseries_tidegauge.nc'
SEASON_MONTHS = {'DJF': (12, 1, 2), 'MAM': (3, 4, 5), 'JJA': (6, 7, 8), 'SON': (9, 10, 11)}


@pytest.fixture(scope='module')
def grid():
    """Six years of daily-ish SST on a 4x5 grid: seasonal cycle, trend, noise, gaps."""
    rng = np.random.default_rng(7)
    time = pd.date_range('2014-03-05', '2020-02-20', freq='5D')
    lat, lon = np.linspace(40, 43, 4), np.linspace(-10, -6, 5)
    doy = time.day_of_year.values[:, None, None]
    sst = (15 + 4 * np.sin(2 * np.pi * doy / 365.25) + lat[None, :, None] * 0.1
           + rng.normal(0, 0.5, (len(time), 4, 5)))
    sst[rng.random(sst.shape) < 0.1] = np.nan
    ds = xr.Dataset({'sst': (('time', 'lat', 'lon'), sst,
                             {'units': 'degC', 'standard_name': 'sea_surface_temperature'})},
                    coords={'time': time, 'lat': ('lat', lat, {'units': 'degrees_north'}),
                            'lon': ('lon', lon, {'units': 'degrees_east'})})
    return ds


def inline(ds):
    return {'value': base64.b64encode(ds.to_netcdf()).decode(), 'encoding': 'base64',
            'mediaType': 'application/x-netcdf'}


def run(server, process, inputs):
    r = execute(server, process, {'inputs': inputs})
    assert r.status_code == 200, r.text
    return xr.open_dataset(io.BytesIO(r.content)).load()


def seasons(time):
    return xr.DataArray([next(k for k, m in SEASON_MONTHS.items() if t.month in m)
                         for t in pd.DatetimeIndex(time.values)], dims=time.dims)


@pytest.mark.parametrize('period', ['month', 'season'])
def test_gridded_climatology_is_the_groupby_mean(vre_server, grid, period):
    got = run(vre_server, 'climatology', {'data': inline(grid), 'period': period})
    key = grid.time.dt.month if period == 'month' else seasons(grid.time).rename('season')
    expected = grid.sst.groupby(key).mean()
    labels = ([f'{m:02d}' for m in expected[key.name].values] if period == 'month'
              else list(expected[key.name].values))
    order = [labels.index(p) for p in got.period.values]
    np.testing.assert_allclose(got.sst.values, expected.values[order], rtol=1e-12)
    np.testing.assert_array_equal(got.sst_count.values,
                                  grid.sst.notnull().groupby(key).sum().values[order])
    assert got.sst.attrs['cell_methods'] == 'time: mean within years time: mean over years'
    assert got.time.attrs['climatology'] == 'climatology_bounds'
    assert got.sst.attrs['units'] == 'degC'
    # bounds: start of the first month with data, end of the last one, per period
    for i, label in enumerate(got.period.values):
        months = [int(label)] if period == 'month' else SEASON_MONTHS[str(label)]
        t = grid.time.to_index()
        t = t[t.month.isin(months)]
        start, end = pd.DatetimeIndex(got.climatology_bounds.values[i])
        assert start == t.min().to_period('M').to_timestamp()
        assert end == (t.max().to_period('M') + 1).to_timestamp()
        assert start <= pd.Timestamp(got.time.values[i]) <= end


def test_anomaly_is_field_minus_its_month(vre_server, grid):
    got = run(vre_server, 'anomaly', {'data': inline(grid), 'variable': 'sst'})
    clim = grid.sst.groupby('time.month').mean()
    expected = grid.sst.groupby('time.month') - clim
    np.testing.assert_allclose(got.sst.values, expected.values, rtol=1e-12, atol=1e-12)
    assert got.sst.dims == ('time', 'lat', 'lon')
    # the same with the climatology as a nested process
    nested = {'process': f'{vre_server.url}/processes/climatology',
              'inputs': {'data': inline(grid), 'variable': 'sst'}}
    chained = run(vre_server, 'anomaly', {'data': inline(grid), 'variable': 'sst',
                                          'climatology': nested})
    np.testing.assert_allclose(chained.sst.values, expected.values, rtol=1e-12, atol=1e-12)


def test_station_series_of_seadatanet(vre_server, static_server, bdi_data):
    """The SeaDataNet tide gauge (INSTANCE x MAXT, chronological Julian days) per month."""
    from processes.cfdata import open_netcdf
    got = run(vre_server, 'climatology', {'data': {'href': f'{static_server}/{TIDE}'},
                                          'variable': ['ASLVZZ01', 'TEMPPR01']})
    with open_netcdf(bdi_data / TIDE) as ds:
        series = xr.DataArray(ds.ASLVZZ01.values[0], dims='t',
                              coords={'t': ds.TIME.values[0]})
    expected = series.groupby('t.month').mean()
    assert list(got.period.values) == [f'{m:02d}' for m in expected.month.values]
    np.testing.assert_allclose(got.ASLVZZ01.values[0], expected.values, rtol=1e-12)
    assert got.ASLVZZ01.dims == ('INSTANCE', 'time')
    assert float(got.LATITUDE.values[0]) == pytest.approx(-18.14, abs=0.01)


def test_bad_inputs(vre_server, static_server, grid):
    r = execute(vre_server, 'climatology', {'inputs': {'data': inline(grid), 'variable': 'nope'}})
    assert r.status_code == 400 and 'unknown variable' in r.json()['detail']
    r = execute(vre_server, 'climatology', {'inputs': {'data': inline(grid), 'period': 'week'}})
    assert r.status_code == 400
    r = execute(vre_server, 'climatology', {'inputs': {
        'data': {'href': f'{static_server}/obis/api_v3/taxon_545439.json'}}})
    assert r.status_code == 400 and 'NetCDF' in r.json()['detail']
    seasonal = {'process': f'{vre_server.url}/processes/climatology',
                'inputs': {'data': inline(grid), 'period': 'season'}}
    r = execute(vre_server, 'anomaly', {'inputs': {'data': inline(grid), 'climatology': seasonal}})
    assert r.status_code == 400 and 'season' in r.json()['detail']
