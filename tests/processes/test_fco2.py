"""fco2-trend through the running server, against numpy.polyfit on the same points read by
the test itself (real SOCAT samples) and on a synthetic ICOS-OTC series with a known trend."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from test_ogcapi_processes import execute

TAB = 'socat/pangaea_socatv3/26NA20050107_CO2_underway_SOCATv3.tab'
DASH = 'socat/WFCH20220615_submission/WFCH20220615.csv'
DAYS_PER_YEAR = 365.25


def run(server, inputs):
    r = execute(server, 'fco2-trend', {'inputs': inputs, 'response': 'document'})
    assert r.status_code == 200, r.text
    return r.json()['trend']


def expected(t, f):
    """Deseasonalise by monthly means, then polyfit: the test's own calculation."""
    t, f = pd.DatetimeIndex(t), np.asarray(f, float)
    years = (t - pd.Timestamp('1970-01-01')).total_seconds() / 86400 / DAYS_PER_YEAR
    monthly = pd.Series(f).groupby(t.month).mean()
    cycle = monthly - monthly.mean()
    slope, _ = np.polyfit(years, f - cycle.loc[t.month].values, 1)
    return slope, cycle


def read_samples(bdi):
    lines = (bdi / TAB).read_text(encoding='utf-8').splitlines()
    tab = pd.read_csv(bdi / TAB, sep='\t', skiprows=lines.index('*/') + 1)
    tab = pd.DataFrame({'t': pd.to_datetime(tab['Date/Time']), 'lat': tab['Latitude'],
                        'lon': tab['Longitude'], 'f': tab.iloc[:, 15], 'flag': tab['Flag [#]']})
    dash = pd.read_csv(bdi / DASH, skiprows=4, na_values=[-999])
    dash = pd.DataFrame({
        't': pd.to_datetime(dash['DATE_UTC__ddmmyyyy'].astype(str).str.zfill(8)
                            + dash['TIME_UTC_hh:mm:ss'], format='%d%m%Y%H:%M:%S'),
        'lat': dash['LAT_dec_degree'], 'lon': dash['LONG_dec_degree'],
        'f': dash['fCO2_SW@SST_uatm'], 'flag': dash['WOCE_QC_FLAG']})
    both = pd.concat([tab, dash])
    return both[(both.flag == 2) & both.f.notna()]


def test_socat_samples_per_region(vre_server, static_server, bdi_data):
    regions = {'irminger': [-45, 58, -30, 61], 'svalbard': [5, 77, 35, 82],
               'both': [-50, 50, 40, 85], 'pacific': [150, -10, 170, 10]}
    got = run(vre_server, {'data': [{'href': f'{static_server}/{TAB}'},
                                    {'href': f'{static_server}/{DASH}'}], 'regions': regions})
    pts = read_samples(bdi_data)
    for name in ('svalbard', 'both'):
        x0, y0, x1, y1 = regions[name]
        sel = pts[(pts.lon >= x0) & (pts.lon <= x1) & (pts.lat >= y0) & (pts.lat <= y1)]
        slope, cycle = expected(sel.t, sel.f)
        assert got[name]['n'] == len(sel)
        assert got[name]['trend'] == pytest.approx(slope, rel=1e-9, abs=1e-9)
        assert got[name]['seasonal_cycle'] == pytest.approx(
            {f'{m:02d}': v for m, v in cycle.items()}, rel=1e-9, abs=1e-9)
        assert 'note' in got[name]          # days or two months only: said so
    assert 'cannot be told apart' in got['both']['note']       # Jan 2005 and Jun 2022 only
    assert got['irminger']['n'] == 526 and got['irminger']['trend'] is None   # < 1 day
    assert got['pacific'] == {'n': 0, 'trend': None, 'note': 'no fCO2 values in this region'}


def test_known_trend_in_an_icos_otc_series(vre_server):
    """Ten years of irregular samples: 1.8 µatm/yr + a 25 µatm seasonal cycle + noise."""
    rng = np.random.default_rng(3)
    t = pd.to_datetime('2010-01-01') + pd.to_timedelta(np.sort(rng.uniform(0, 3650, 3000)), 'D')
    years = (t - pd.Timestamp('2010-01-01')).total_seconds() / 86400 / DAYS_PER_YEAR
    f = 360 + 1.8 * years + 25 * np.cos(2 * np.pi * years) + rng.normal(0, 5, len(t))
    flag = np.where(rng.random(len(t)) < 0.05, 4, 2)
    csv = pd.DataFrame({'Date/Time': t.strftime('%Y-%m-%dT%H:%M:%S.000Z'),
                        'Longitude': 12.0, 'Latitude': 56.5, 'fCO2 [uatm]': f,
                        'fCO2 [uatm] QC Flag': flag}).to_csv(index=False)
    got = run(vre_server, {'data': {'value': csv, 'mediaType': 'text/csv'}})['all']
    good = flag == 2
    slope, cycle = expected(t[good], f[good])
    assert got['n'] == good.sum()
    assert got['trend'] == pytest.approx(slope, rel=1e-9)
    assert abs(got['trend'] - 1.8) < 3 * got['trend_stderr'] + 0.1
    assert got['seasonal_cycle']['01'] == pytest.approx(cycle.loc[1], rel=1e-9)
    assert got['seasonal_cycle']['01'] > 15 and got['seasonal_cycle']['07'] < -15
    assert 'note' not in got
    both = run(vre_server, {'data': {'value': csv, 'mediaType': 'text/csv'},
                            'flags': [2, 4]})['all']
    assert both['n'] == len(t)


def test_bad_inputs(vre_server, static_server):
    r = execute(vre_server, 'fco2-trend', {'inputs': {'data': {
        'href': f'{static_server}/seadatanet/netcdf/netCDF_timeseries_tidegauge.nc'}}})
    assert r.status_code == 400 and 'SOCAT' in r.json()['detail']
    r = execute(vre_server, 'fco2-trend', {'inputs': {
        'data': {'href': f'{static_server}/{TAB}'}, 'regions': {'x': [0, 0, 1, 1]}}})
    assert r.status_code == 400 and 'no good fCO2' in r.json()['detail']
    r = execute(vre_server, 'fco2-trend', {'inputs': {
        'data': {'href': f'{static_server}/{TAB}'}, 'regions': {'x': [0, 0, 1]}}})
    assert r.status_code == 400
    r = execute(vre_server, 'fco2-trend', {'inputs': {
        'data': {'href': f'{static_server}/{TAB}'}, 'regions': {'x': [5, 0, 1, 1]}}})
    assert r.status_code == 400 and 'min <= max' in r.json()['detail']
