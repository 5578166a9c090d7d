"""argo-indicators through the running server, checked against gsw called directly on the
same Argo profiles (read here with netCDF4, not with the process's code)."""
from __future__ import annotations

import io

import gsw
import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr

from test_ogcapi_processes import execute, wait_for

MULTI = 'argo/dac/coriolis/3902131/3902131_prof.nc'
GOOD = [b'1', b'2', b'5', b'8']


def expected_levels(path):
    """Per profile: good pressure, SA, CT, sigma0 and position, straight from the file."""
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        modes = nc['DATA_MODE'][:].astype('S1')
        out = []
        for i, mode in enumerate(modes):
            adj = '_ADJUSTED' if mode in (b'A', b'D') else ''
            cols, ok = {}, None
            for name in ('PRES', 'TEMP', 'PSAL'):
                var = nc[name + adj]
                vals = var[i].astype(float)
                vals[vals == var._FillValue] = np.nan
                good = np.isin(nc[name + adj + '_QC'][i].astype('S1'), GOOD) & np.isfinite(vals)
                cols[name] = vals
                ok = good if ok is None else ok & good
            lon, lat = float(nc['LONGITUDE'][i]), float(nc['LATITUDE'][i])
            p, t, s = cols['PRES'][ok], cols['TEMP'][ok], cols['PSAL'][ok]
            sa = gsw.SA_from_SP(s, p, lon, lat)
            ct = gsw.CT_from_t(sa, t, p)
            out.append({'ok': ok, 'p': p, 't': t, 's': s, 'lon': lon, 'lat': lat,
                        'SA': sa, 'CT': ct, 'sigma0': gsw.sigma0(sa, ct)})
        return out


def mld_by_walking_down(p, sig, pref=10.0, dsig=0.03):
    """The de Boyer Montegut criterion written as a plain walk from the surface."""
    order = np.argsort(p)
    p, sig = p[order], sig[order]
    if len(p) < 2 or p[0] > pref or p[-1] <= pref:
        return np.nan
    i = int(np.searchsorted(p, pref))
    s_ref = sig[i] if p[i] == pref else \
        sig[i - 1] + (sig[i] - sig[i - 1]) * (pref - p[i - 1]) / (p[i] - p[i - 1])
    prev_p, prev_s = pref, s_ref
    for pk, sk in zip(p, sig):
        if pk <= pref:
            continue
        if sk > s_ref + dsig:
            return prev_p + (s_ref + dsig - prev_s) * (pk - prev_p) / (sk - prev_s)
        prev_p, prev_s = pk, sk
    return np.nan


def test_indicators_match_gsw_on_multi_profile_file(vre_server, static_server, bdi_data):
    body = {'inputs': {'profiles': {'href': f'{static_server}/{MULTI}'},
                       'max_pressure': 300},
            'outputs': {'indicators': {'transmissionMode': 'reference'}, 'summary': {}},
            'response': 'document'}
    resp = execute(vre_server, 'argo-indicators', body)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    nc_bytes = requests.get(doc['indicators']['href']).content
    got = xr.open_dataset(io.BytesIO(nc_bytes), engine='h5netcdf')
    assert got.attrs['Conventions'].startswith('CF')
    assert got.SA.attrs['units'] == 'g kg-1' and got.mld.attrs['units'] == 'dbar'
    exp = expected_levels(bdi_data / MULTI)
    assert got.sizes['profile'] == len(exp) == doc['summary']['profiles']
    n_mld = 0
    for i, e in enumerate(exp):
        if e['ok'].sum() < 2:
            assert np.isnan(got.mld.values[i]) and np.isnan(got.ohc.values[i])
            continue
        for key in ('SA', 'CT', 'sigma0'):
            np.testing.assert_allclose(got[key].values[i][e['ok']], e[key], rtol=1e-12)
            assert np.isnan(got[key].values[i][~e['ok']]).all()
        want = mld_by_walking_down(e['p'], e['sigma0'])
        if np.isnan(want):
            assert np.isnan(got.mld.values[i])
        else:
            n_mld += 1
            assert got.mld.values[i] == pytest.approx(want, rel=1e-9)
            assert got.mld_depth.values[i] == pytest.approx(-gsw.z_from_p(want, e['lat']),
                                                            rel=1e-9)
        keep = e['p'] <= 300
        if e['p'].max() >= 300:
            order = np.argsort(e['p'][keep])
            p, sa, ct = e['p'][keep][order], e['SA'][keep][order], e['CT'][keep][order]
            rho_cp_ct = gsw.rho(sa, ct, p) * 3991.86795711963 * ct
            want_ohc = np.trapezoid(rho_cp_ct, -gsw.z_from_p(p, e['lat']))
            assert got.ohc.values[i] == pytest.approx(want_ohc, rel=1e-9)
        else:
            assert np.isnan(got.ohc.values[i])
    assert n_mld > 50                          # the check really covered many profiles
    assert doc['summary']['profiles_with_mld'] == n_mld
    first = doc['summary']['per_profile'][2]
    assert first['mld_dbar'] == pytest.approx(float(got.mld.values[2]))


def test_not_an_argo_file_is_a_clear_400(vre_server, static_server):
    r = execute(vre_server, 'argo-indicators', {'inputs': {'profiles': {
        'href': f'{static_server}/seadatanet/netcdf/netCDF_vertical_profiles_ctd.nc'}}},
        prefer='respond-async')
    done = wait_for(vre_server, r.json()['jobID'])
    assert done['status'] == 'failed' and 'not an Argo profile file' in done['message']
    res = requests.get(f"{vre_server.url}/jobs/{done['jobID']}/results")
    assert res.status_code == 400 and 'not an Argo profile file' in res.json()['detail']
    r = execute(vre_server, 'argo-indicators', {'inputs': {'profiles': {
        'href': f'{static_server}/argo/index/ar_greylist.txt'}}})
    assert r.status_code == 400 and 'not a NetCDF file' in r.json()['detail']
