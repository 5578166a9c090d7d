"""`ocean-heat-content`: heat content of the upper ocean from Argo profiles (TEOS-10).

Reads an Argo profile NetCDF (single- or multi-profile core file) by reference, takes the
adjusted values where the data mode is delayed or adjusted, keeps only levels whose QC flags
are good (1, 2; also 5, 8 for estimated/interpolated), and integrates
rho * cp * CT over pressure from the surface to `max_pressure`, with TEOS-10 from gsw.
Writes a CF NetCDF with one value per profile, and answers a JSON summary.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
import gsw

from processes.base import InputError, Output, VREProcess

GOOD_QC = {b'1', b'2', b'5', b'8'}
# TEOS-10 'potential enthalpy' heat capacity cp0 (IOC et al. 2010, eq. 3.3.3); gsw does not export it
CP0 = 3991.86795711963  # J kg-1 K-1


def _qc_ok(flags: np.ndarray) -> np.ndarray:
    return np.isin(flags.astype('S1'), list(GOOD_QC))


ARGO_VARS = ('PRES', 'TEMP', 'PSAL', 'JULD', 'LATITUDE', 'LONGITUDE', 'DATA_MODE')


def open_argo_profiles(ctx, value) -> xr.Dataset:
    """The Argo profile file of a `profiles` input, opened, or an InputError saying why not."""
    from processes.cfdata import open_netcdf
    ds = open_netcdf(ctx.input_file(value, '.nc'), 'profiles')
    missing = [v for v in ARGO_VARS if v not in ds]
    if missing:
        ds.close()
        raise InputError(f'profiles: not an Argo profile file (missing {missing})')
    return ds


def good_profiles(ds: xr.Dataset, ctx=None):
    """(index, p, t, s, lon, lat) of each profile with at least two levels whose pressure,
    temperature and salinity are all good; reports progress as it goes."""
    n = ds.sizes['N_PROF']
    lons = ds['LONGITUDE'].values.astype(float)
    lats = ds['LATITUDE'].values.astype(float)
    for i in range(n):
        p, pm = chosen(ds, 'PRES', i)
        t, tm = chosen(ds, 'TEMP', i)
        s, sm = chosen(ds, 'PSAL', i)
        good = pm & tm & sm
        if good.sum() >= 2 and np.isfinite(lons[i]) and np.isfinite(lats[i]):
            yield i, p[good], t[good], s[good], lons[i], lats[i], good
        if ctx is not None:
            ctx.progress(int(90 * (i + 1) / n), f'profile {i + 1} of {n}')


def chosen(ds: xr.Dataset, name: str, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and good-QC mask of a parameter: adjusted in modes A/D, raw in R."""
    mode = ds['DATA_MODE'].values[i]
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    key = f'{name}_ADJUSTED' if mode in ('A', 'D') and f'{name}_ADJUSTED' in ds else name
    values = ds[key].values[i].astype(float)
    mask = _qc_ok(ds[f'{key}_QC'].values[i]) & np.isfinite(values)
    return values, mask


def heat_content(p, t, s, lon, lat, max_p):
    """Heat content in J/m^2 of one profile from 0 to max_p dbar (trapezoid over depth),
    or NaN when the profile does not reach max_p or has fewer than 2 good levels."""
    order = np.argsort(p)
    p, t, s = p[order], t[order], s[order]
    if p.size < 2 or p[-1] < max_p:
        return np.nan
    keep = p <= max_p
    p, t, s = p[keep], t[keep], s[keep]
    sa = gsw.SA_from_SP(s, p, lon, lat)
    ct = gsw.CT_from_t(sa, t, p)
    rho = gsw.rho(sa, ct, p)
    z = -gsw.z_from_p(p, lat)                       # depth in metres, positive down
    return float(np.trapezoid(rho * CP0 * ct, z))


class OceanHeatContentProcess(VREProcess):
    METADATA = {
        'version': '1.0.0',
        'id': 'ocean-heat-content',
        'title': {'en': 'Ocean heat content of Argo profiles'},
        'description': {'en': 'Upper-ocean heat content (J/m2, relative to 0 degC Conservative '
                              'Temperature) from 0 to max_pressure for every profile of an Argo '
                              'profile NetCDF file, with TEOS-10 (gsw), adjusted values in '
                              'delayed/adjusted mode and good QC flags only.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['Argo', 'ocean heat content', 'TEOS-10', 'gsw'],
        'links': [{'type': 'text/html', 'rel': 'about', 'title': 'TEOS-10',
                   'href': 'https://www.teos-10.org/', 'hreflang': 'en-US'}],
        'inputs': {
            'profiles': {
                'title': 'Argo profile NetCDF',
                'description': 'An Argo core profile file (single- or multi-profile), '
                               'by reference ({"href": URL}).',
                'schema': {'type': 'string', 'contentEncoding': 'binary',
                           'contentMediaType': 'application/x-netcdf'},
                'minOccurs': 1, 'maxOccurs': 1,
            },
            'max_pressure': {
                'title': 'Integration depth',
                'description': 'Lower bound of the integral, in dbar.',
                'schema': {'type': 'number', 'minimum': 10, 'maximum': 6000, 'default': 700},
                'minOccurs': 0, 'maxOccurs': 1,
            },
        },
        'outputs': {
            'ohc': {
                'title': 'Heat content per profile (NetCDF)',
                'description': 'CF NetCDF: ohc(profile) in J m-2 with time, latitude, longitude.',
                'schema': {'type': 'string', 'contentEncoding': 'binary',
                           'contentMediaType': 'application/x-netcdf'},
            },
            'summary': {
                'title': 'Summary',
                'description': 'Profiles read, profiles with a value, mean heat content.',
                'schema': {'type': 'object', 'contentMediaType': 'application/json'},
            },
        },
        'example': {'inputs': {
            'profiles': {'href': 'https://data-argo.ifremer.fr/dac/bodc/6901929/profiles/D6901929_001.nc'},
            'max_pressure': 700}},
    }

    def run(self, inputs, ctx):
        max_p = float(inputs.get('max_pressure', 700))
        with open_argo_profiles(ctx, inputs['profiles']) as ds:
            n = ds.sizes['N_PROF']
            ohc = np.full(n, np.nan)
            for i, p, t, s, lon, lat, _ in good_profiles(ds, ctx):
                ohc[i] = heat_content(p, t, s, lon, lat, max_p)
            platform = np.array([x.decode().strip() if isinstance(x, bytes) else str(x).strip()
                                 for x in ds['PLATFORM_NUMBER'].values])
            out = xr.Dataset(
                {'ohc': ('profile', ohc, {
                    'long_name': f'ocean heat content 0-{max_p:g} dbar',
                    'units': 'J m-2', 'comment': 'rho * cp0 * Conservative Temperature, TEOS-10'})},
                coords={
                    'time': ('profile', ds['JULD'].values, {'standard_name': 'time'}),
                    'latitude': ('profile', ds['LATITUDE'].values.astype(float),
                                 {'standard_name': 'latitude', 'units': 'degrees_north'}),
                    'longitude': ('profile', ds['LONGITUDE'].values.astype(float),
                                  {'standard_name': 'longitude', 'units': 'degrees_east'}),
                    'platform_number': ('profile', platform.astype(str)),
                    'cycle_number': ('profile', ds['CYCLE_NUMBER'].values.astype('int32')),
                },
                attrs={'Conventions': 'CF-1.8', 'featureType': 'point',
                       'title': 'Ocean heat content of Argo profiles',
                       'source': 'Argo profile file; computed with gsw (TEOS-10)',
                       'max_pressure_dbar': max_p})
        target = ctx.workdir / 'ohc.nc'
        out.to_netcdf(target, engine='netcdf4')
        valid = ohc[np.isfinite(ohc)]
        summary = {'profiles': int(n), 'profiles_with_value': int(valid.size),
                   'mean_ohc_J_m2': float(valid.mean()) if valid.size else None,
                   'max_pressure_dbar': max_p}
        return {'ohc': Output(path=target, media_type='application/x-netcdf'),
                'summary': Output(value=summary)}
