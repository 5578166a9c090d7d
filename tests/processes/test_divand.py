"""variational-analysis through the running server: a known analytic field sampled at random
points with noise is recovered; the error is small near data and large in a data gap; land
from a real bathymetry (GEBCO sample) is masked; 500x500 cells with 10,000 observations."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import xarray as xr

from test_ogcapi_processes import execute

GEBCO = 'erddap/coastwatch_griddap_GEBCO_2020_subset.nc'


def truth(lon, lat):
    return np.sin(2 * np.pi * lon / 5) * np.cos(2 * np.pi * (lat - 40) / 5)


def observations(n, seed, gap=None, noise=0.1):
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(0, 10, n), rng.uniform(40, 50, n)
    if gap:
        keep = np.hypot(lon - gap[0], lat - gap[1]) > gap[2]
        lon, lat = lon[keep], lat[keep]
    sst = truth(lon, lat) + rng.normal(0, noise, len(lon))
    return pd.DataFrame({'longitude': lon, 'latitude': lat, 'sst': sst})


def analyse(server, df, **inputs):
    body = {'inputs': {'observations': {'value': df.to_csv(index=False), 'mediaType': 'text/csv'},
                       'variable': 'sst', **inputs}}
    r = execute(server, 'variational-analysis', body)
    assert r.status_code == 200, r.text
    return xr.open_dataset(io.BytesIO(r.content)).load()


def test_recovers_an_analytic_field_and_its_error(vre_server):
    obs = observations(3000, 1, gap=(7, 45, 1.5))
    ds = analyse(vre_server, obs, bbox=[0, 40, 10, 50], nx=150, ny=150,
                 correlation_length=40, signal_to_noise=5)
    lon, lat = np.meshgrid(ds.lon.values, ds.lat.values)
    error = ds.sst.values - truth(lon, lat)
    known = ds.sst_relerr.values < 0.3
    assert known.mean() > 0.9
    rms = np.sqrt(np.mean(error[known] ** 2))
    assert rms < 0.08, rms                       # noise is 0.1, signal amplitude 1
    # the relative error: near zero among the data, large in the middle of the 1.5° gap
    dist = np.hypot(lon - 7, lat - 45)
    assert ds.sst_relerr.values[dist > 2.5].mean() < 0.05
    assert ds.sst_relerr.values[dist < 0.3].mean() > 0.4
    # DIVAnd layout: L1/L2 are the field masked where relerr > 0.3 / 0.5
    np.testing.assert_array_equal(np.isnan(ds.sst_L1.values), ds.sst_relerr.values > 0.3)
    np.testing.assert_array_equal(np.isnan(ds.sst_L2.values), ds.sst_relerr.values > 0.5)
    assert ds.attrs['observations_used'] == len(obs)
    # more noise (lower signal-to-noise) smooths more: the fit to the data loosens
    loose = analyse(vre_server, obs, bbox=[0, 40, 10, 50], nx=150, ny=150,
                    correlation_length=40, signal_to_noise=0.05)
    assert np.nanmean(loose.sst_relerr.values) > np.nanmean(ds.sst_relerr.values)


def test_500_by_500_with_10000_observations_in_seconds(vre_server):
    ds = analyse(vre_server, observations(10_000, 2), bbox=[0, 40, 10, 50], nx=500, ny=500,
                 correlation_length=50, signal_to_noise=10)
    assert ds.sst.shape == (500, 500)
    assert ds.attrs['solve_seconds'] < 30, ds.attrs['solve_seconds']
    lon, lat = np.meshgrid(ds.lon.values, ds.lat.values)
    assert np.sqrt(np.mean((ds.sst.values - truth(lon, lat)) ** 2)) < 0.08


def test_land_from_a_bathymetry_is_masked(vre_server, static_server, bdi_data):
    with xr.open_dataset(bdi_data / GEBCO) as gebco:
        grid_lon, grid_lat = np.linspace(100, 110, 60), np.linspace(-66.5, -64, 40)
        z = gebco.elevation.sel(longitude=grid_lon, latitude=grid_lat, method='nearest').values
    sea = z < -50
    assert 0.05 < sea.mean() < 0.95                 # the bbox holds coast (Antarctica)
    rng = np.random.default_rng(5)
    obs = pd.DataFrame({'longitude': rng.uniform(100, 110, 500),
                        'latitude': rng.uniform(-66.5, -64, 500)})
    obs['sst'] = -1 + 0.1 * (obs.latitude + 65)
    ds = analyse(vre_server, obs, bbox=[100, -66.5, 110, -64], nx=60, ny=40,
                 correlation_length=30, signal_to_noise=2,
                 bathymetry={'href': f'{static_server}/{GEBCO}'}, min_depth=50)
    np.testing.assert_array_equal(ds['mask'].values == 1, sea)
    assert np.isnan(ds.sst.values[~sea]).all() and np.isfinite(ds.sst.values[sea]).all()


def test_bad_inputs(vre_server, static_server):
    obs = observations(50, 3)
    base = {'observations': {'value': obs.to_csv(index=False), 'mediaType': 'text/csv'},
            'variable': 'sst', 'bbox': [0, 40, 10, 50]}
    cases = [({'variable': 'temp'}, 'no column "temp"'),
             ({'bbox': [10, 40, 0, 50]}, 'min <= max'),
             ({'bbox': [100, 40, 110, 50]}, 'no observation'),
             ({'correlation_length': 0}, 'correlation_length'),
             ({'observations': {'href': f'{static_server}/{GEBCO}'}}, 'not NetCDF')]
    for change, message in cases:
        r = execute(vre_server, 'variational-analysis', {'inputs': {**base, **change}})
        assert r.status_code == 400 and message in r.json()['detail'], (change, r.text)
