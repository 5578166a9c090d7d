"""extract-profile and extract-timeseries through the running server; the nearest profile,
distances and interpolated values are worked out here with pyproj, netCDF4 and numpy."""
from __future__ import annotations

import io

import netCDF4
import numpy as np
import pandas as pd
import pyproj
import pytest
import requests
import xarray as xr

from test_ogcapi_processes import execute

ARGO = 'argo/dac/coriolis/3902131/3902131_prof.nc'
CTD = 'seadatanet/netcdf/netCDF_vertical_profiles_ctd.nc'
GEOD = pyproj.Geod(ellps='WGS84')


def run(server, process, inputs, name):
    body = {'inputs': inputs, 'response': 'document',
            'outputs': {name: {'transmissionMode': 'reference'}, 'summary': {}}}
    resp = execute(server, process, body)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    return requests.get(doc[name]['href']), doc['summary']


def distances_km(lon, lat, lons, lats):
    _, _, d = GEOD.inv(np.full(len(lons), lon), np.full(len(lons), lat), lons, lats)
    return d / 1000


def test_profile_nearest_in_time_among_those_in_radius(vre_server, static_server, bdi_data):
    src = xr.open_dataset(bdi_data / ARGO)
    lon, lat, when = 5.0, -6.6, np.datetime64('2018-04-20T00:00:00')
    km = distances_km(lon, lat, src.LONGITUDE.values, src.LATITUDE.values)
    near = np.flatnonzero(km <= 50)
    k = near[np.argmin(np.abs(src.JULD.values[near] - when))]
    got, summary = run(vre_server, 'extract-profile', {
        'data': {'href': f'{static_server}/{ARGO}'}, 'longitude': lon, 'latitude': lat,
        'tolerance_km': 50, 'datetime': '2018-04-20T00:00:00Z', 'variables': ['TEMP']},
        'profile')
    prof = xr.open_dataset(io.BytesIO(got.content), engine='h5netcdf')
    assert len(near) > 1 and summary['index'] == k
    assert summary['distance_km'] == pytest.approx(km[k], rel=1e-9)
    np.testing.assert_array_equal(prof.TEMP.values[0], src.TEMP.values[k])
    assert prof.JULD.values[0] == src.JULD.values[k]


def test_seadatanet_profile_times_are_gregorian(vre_server, static_server, bdi_data):
    with netCDF4.Dataset(bdi_data / CTD) as nc:
        lons, lats, days = nc['LONGITUDE'][:], nc['LATITUDE'][:], nc['TIME'][:]
    k = 3
    got, summary = run(vre_server, 'extract-profile', {
        'data': {'href': f'{static_server}/{CTD}'}, 'longitude': float(lons[k]),
        'latitude': float(lats[k]), 'tolerance_km': 1, 'output_format': 'csv'}, 'profile')
    want = pd.Timestamp('1970-01-01') + pd.to_timedelta(float(days[k]) - 2440588, unit='D')
    assert summary['index'] == k and summary['distance_km'] == pytest.approx(0, abs=1e-6)
    assert abs(pd.Timestamp(summary['time'].rstrip('Z')) - want) < pd.Timedelta(seconds=1)
    assert want.year == 2006 and want.month == 5 and 24 <= want.day <= 26
    table = pd.read_csv(io.StringIO(got.text))
    assert len(table) > 100 and np.allclose(table.LATITUDE, lats[k])


def test_timeseries_from_profiles_at_a_level(vre_server, static_server, bdi_data):
    src = xr.open_dataset(bdi_data / ARGO)
    lon, lat, z = 5.0, -6.6, 100.0
    km = distances_km(lon, lat, src.LONGITUDE.values, src.LATITUDE.values)
    near = np.flatnonzero(km <= 100)
    adjusted = np.isin(src.DATA_MODE.values.astype('S1'), [b'A', b'D'])
    want = {}
    for i in near:
        p = src.PRES_ADJUSTED.values[i] if adjusted[i] else src.PRES.values[i]
        t = src.TEMP.values[i]
        ok = np.isfinite(p) & np.isfinite(t)
        if ok.sum() >= 2 and p[ok].min() <= z <= p[ok].max():
            o = np.argsort(p[ok])
            want[src.JULD.values[i]] = np.interp(z, p[ok][o], t[ok][o])
    got, summary = run(vre_server, 'extract-timeseries', {
        'data': {'href': f'{static_server}/{ARGO}'}, 'longitude': lon, 'latitude': lat,
        'tolerance_km': 100, 'z': z, 'variables': ['TEMP']}, 'timeseries')
    ts = xr.open_dataset(io.BytesIO(got.content), engine='h5netcdf')
    assert summary['profiles'] == len(near) == ts.sizes['N_PROF']
    assert (np.diff(ts.JULD.values) >= np.timedelta64(0)).all()
    have = {t: v for t, v in zip(ts.JULD.values, ts.TEMP.values) if np.isfinite(v)}
    assert len(want) > 20 and set(have) == set(want)
    for t, v in want.items():
        assert have[t] == pytest.approx(v, rel=1e-6)


def test_station_series_in_interval(vre_server, static_server, bdi_data):
    path = 'seadatanet/netcdf/netCDF_timeseries_tidegauge.nc'
    with netCDF4.Dataset(bdi_data / path) as nc:
        days = nc['TIME'][0, :]
        level = nc['ASLVZZ01'][0, :]
        lon, lat = float(nc['LONGITUDE'][0]), float(nc['LATITUDE'][0])
    t = pd.Timestamp('1970-01-01') + pd.to_timedelta(np.asarray(days) - 2440588, unit='D')
    inside = (t >= pd.Timestamp('1998-07-21')) & (t <= pd.Timestamp('1998-07-22'))
    got, summary = run(vre_server, 'extract-timeseries', {
        'data': {'href': f'{static_server}/{path}'}, 'longitude': lon + 0.01, 'latitude': lat,
        'datetime': '1998-07-21T00:00:00Z/1998-07-22T00:00:00Z', 'output_format': 'csv'},
        'timeseries')
    table = pd.read_csv(io.StringIO(got.text))
    assert inside.sum() > 10 and len(table) == inside.sum()
    np.testing.assert_allclose(table.ASLVZZ01.to_numpy(), np.asarray(level)[inside])


@pytest.mark.parametrize('process,extra', [('extract-profile', {}),
                                           ('extract-timeseries', {'z': 10})])
def test_nothing_within_tolerance_is_400(vre_server, static_server, process, extra):
    r = execute(vre_server, process, {'inputs': dict(extra, **{
        'data': {'href': f'{static_server}/{ARGO}'}, 'longitude': -30.0, 'latitude': 40.0,
        'tolerance_km': 10})})
    assert r.status_code == 400 and 'within 10 km' in r.json()['detail']
