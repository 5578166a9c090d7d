"""`argo-indicators`: mixed layer depth, ocean heat content and T-S diagram data per Argo profile.

Values are chosen as in processes/ohc.py (adjusted in delayed/adjusted mode, good QC only) and
the heat content is that module's `heat_content`, so both processes always agree. TEOS-10 (gsw):
SA from SP, CT from in-situ T, sigma0. The mixed layer depth follows de Boyer Montegut et al.
(2004, doi:10.1029/2004JC002378): the pressure where sigma0 first exceeds its value at the
reference level (10 dbar) by the threshold (0.03 kg m-3), linearly interpolated between levels.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
import gsw

from processes.base import Output, VREProcess
from processes.cfdata import write_netcdf
from processes.ohc import OceanHeatContentProcess, good_profiles, heat_content, open_argo_profiles

OHC_INPUTS = OceanHeatContentProcess.METADATA['inputs']


def mixed_layer_depth(p, sigma0, p_ref=10.0, threshold=0.03) -> float:
    """Pressure (dbar) of the base of the mixed layer, NaN when the profile does not bracket
    the reference level or never leaves the mixed layer (no base observed)."""
    order = np.argsort(p)
    p, sigma0 = p[order], sigma0[order]
    if p.size < 2 or p[0] > p_ref or p[-1] <= p_ref:
        return np.nan
    ref = np.interp(p_ref, p, sigma0)
    below = p > p_ref
    pb, sb = np.concatenate([[p_ref], p[below]]), np.concatenate([[ref], sigma0[below]])
    over = np.nonzero(sb > ref + threshold)[0]
    if over.size == 0:
        return np.nan
    k = over[0]
    # linear interpolation between the last level inside and the first level outside
    frac = (ref + threshold - sb[k - 1]) / (sb[k] - sb[k - 1])
    return float(pb[k - 1] + frac * (pb[k] - pb[k - 1]))


class ArgoIndicatorsProcess(VREProcess):
    METADATA = {
        'version': '1.0.0',
        'id': 'argo-indicators',
        'title': {'en': 'Argo profile indicators: mixed layer depth, heat content, T-S data'},
        'description': {'en': 'For every profile of an Argo core profile NetCDF file (by reference): '
                              'mixed layer depth (density threshold criterion of de Boyer '
                              'Montegut et al. 2004 on sigma0), upper-ocean heat content '
                              '(as the ocean-heat-content process) and T-S diagram data (Absolute '
                              'Salinity, Conservative Temperature, sigma0 per level), with TEOS-10 '
                              '(gsw), adjusted values in delayed/adjusted mode and good QC flags '
                              '(1, 2, 5, 8) only.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['Argo', 'mixed layer depth', 'ocean heat content', 'T-S diagram', 'TEOS-10',
                     'gsw'],
        'links': [{'type': 'text/html', 'rel': 'about', 'title': 'de Boyer Montegut et al. 2004',
                   'href': 'https://doi.org/10.1029/2004JC002378', 'hreflang': 'en-US'},
                  {'type': 'text/html', 'rel': 'about', 'title': 'TEOS-10',
                   'href': 'https://www.teos-10.org/', 'hreflang': 'en-US'}],
        'inputs': {
            'profiles': OHC_INPUTS['profiles'],
            'mld_threshold': {
                'title': 'MLD density threshold',
                'description': 'Increase of sigma0 from the reference level that marks the base '
                               'of the mixed layer, in kg m-3.',
                'schema': {'type': 'number', 'exclusiveMinimum': 0, 'maximum': 1,
                           'default': 0.03}, 'minOccurs': 0, 'maxOccurs': 1,
            },
            'reference_pressure': {
                'title': 'MLD reference level',
                'description': 'Pressure of the reference level of the MLD criterion, in dbar.',
                'schema': {'type': 'number', 'minimum': 0, 'maximum': 200, 'default': 10},
                'minOccurs': 0, 'maxOccurs': 1,
            },
            'max_pressure': dict(OHC_INPUTS['max_pressure'],
                                 title='Heat content integration depth'),
        },
        'outputs': {
            'indicators': {
                'title': 'Indicators (NetCDF)',
                'description': 'CF NetCDF: mld (dbar) and mld_depth (m), ohc (J m-2) per profile; '
                               'pressure, SA (g kg-1), CT (degC), sigma0 (kg m-3) per profile and '
                               'level (NaN for levels failing QC). mld is NaN when the shallowest '
                               'good level is below the reference level or no base is observed.',
                'schema': {'type': 'string', 'contentEncoding': 'binary',
                           'contentMediaType': 'application/x-netcdf'},
            },
            'summary': {
                'title': 'Summary',
                'description': 'Per profile: cycle, time, position, MLD and heat content; counts.',
                'schema': {'type': 'object', 'contentMediaType': 'application/json'},
            },
        },
        'example': {'inputs': {
            'profiles': {'href': 'https://data-argo.ifremer.fr/dac/coriolis/3902131/3902131_prof.nc'},
            'mld_threshold': 0.03, 'reference_pressure': 10, 'max_pressure': 700}},
    }

    def run(self, inputs, ctx):
        threshold = float(inputs.get('mld_threshold', 0.03))
        p_ref = float(inputs.get('reference_pressure', 10))
        max_p = float(inputs.get('max_pressure', 700))
        with open_argo_profiles(ctx, inputs['profiles']) as ds:
            n, m = ds.sizes['N_PROF'], ds.sizes['N_LEVELS']
            mld, ohc = np.full(n, np.nan), np.full(n, np.nan)
            levels = {k: np.full((n, m), np.nan) for k in ('pressure', 'SA', 'CT', 'sigma0')}
            lats = ds['LATITUDE'].values.astype(float)
            for i, p, t, s, lon, lat, good in good_profiles(ds, ctx):
                sa = gsw.SA_from_SP(s, p, lon, lat)
                ct = gsw.CT_from_t(sa, t, p)
                sig = gsw.sigma0(sa, ct)
                for key, val in zip(('pressure', 'SA', 'CT', 'sigma0'), (p, sa, ct, sig)):
                    levels[key][i, good] = val
                mld[i] = mixed_layer_depth(p, sig, p_ref, threshold)
                ohc[i] = heat_content(p, t, s, lon, lat, max_p)
            mld_depth = -gsw.z_from_p(mld, lats)
            out = self._dataset(ds, mld, mld_depth, ohc, levels, threshold, p_ref, max_p)
        target = write_netcdf(out, ctx.workdir / 'argo-indicators.nc')
        return {'indicators': Output(path=target, media_type='application/x-netcdf'),
                'summary': Output(value=self._summary(out))}

    @staticmethod
    def _dataset(ds, mld, mld_depth, ohc, levels, threshold, p_ref, max_p) -> xr.Dataset:
        lvl = ('profile', 'level')
        platform = [x.decode().strip() if isinstance(x, bytes) else str(x).strip()
                    for x in ds['PLATFORM_NUMBER'].values]
        return xr.Dataset(
            {
                'mld': ('profile', mld, {
                    'long_name': 'mixed layer depth as pressure', 'units': 'dbar',
                    'comment': f'sigma0 > sigma0({p_ref:g} dbar) + {threshold:g} kg m-3 '
                               '(de Boyer Montegut et al. 2004)'}),
                'mld_depth': ('profile', mld_depth, {
                    'standard_name': 'ocean_mixed_layer_thickness_defined_by_sigma_theta',
                    'units': 'm'}),
                'ohc': ('profile', ohc, {
                    'long_name': f'ocean heat content 0-{max_p:g} dbar', 'units': 'J m-2',
                    'comment': 'rho * cp0 * Conservative Temperature, TEOS-10'}),
                'pressure': (lvl, levels['pressure'], {'standard_name': 'sea_water_pressure',
                                                       'units': 'dbar'}),
                'SA': (lvl, levels['SA'], {'standard_name': 'sea_water_absolute_salinity',
                                           'units': 'g kg-1'}),
                'CT': (lvl, levels['CT'], {
                    'standard_name': 'sea_water_conservative_temperature', 'units': 'degC'}),
                'sigma0': (lvl, levels['sigma0'], {
                    'standard_name': 'sea_water_sigma_theta', 'units': 'kg m-3',
                    'comment': 'potential density anomaly referenced to 0 dbar, TEOS-10'}),
            },
            coords={
                'time': ('profile', ds['JULD'].values, {'standard_name': 'time'}),
                'latitude': ('profile', ds['LATITUDE'].values.astype(float),
                             {'standard_name': 'latitude', 'units': 'degrees_north'}),
                'longitude': ('profile', ds['LONGITUDE'].values.astype(float),
                              {'standard_name': 'longitude', 'units': 'degrees_east'}),
                'platform_number': ('profile', np.array(platform, dtype=str)),
                'cycle_number': ('profile', ds['CYCLE_NUMBER'].values.astype('int32')),
            },
            attrs={'Conventions': 'CF-1.8', 'featureType': 'profile',
                   'title': 'Argo profile indicators', 'mld_threshold_kg_m3': threshold,
                   'mld_reference_pressure_dbar': p_ref, 'ohc_max_pressure_dbar': max_p,
                   'source': 'Argo profile file; computed with gsw (TEOS-10)'})

    @staticmethod
    def _summary(out: xr.Dataset) -> dict:
        def num(x):
            return float(x) if np.isfinite(x) else None
        rows = [{'platform_number': str(out.platform_number.values[i]),
                 'cycle_number': int(out.cycle_number.values[i]),
                 'time': str(np.datetime_as_string(out.time.values[i], unit='s')) + 'Z'
                 if not np.isnat(out.time.values[i]) else None,
                 'latitude': num(out.latitude.values[i]), 'longitude': num(out.longitude.values[i]),
                 'mld_dbar': num(out.mld.values[i]), 'mld_m': num(out.mld_depth.values[i]),
                 'ohc_J_m2': num(out.ohc.values[i])} for i in range(out.sizes['profile'])]
        mld, ohc = out.mld.values, out.ohc.values
        return {'profiles': len(rows),
                'profiles_with_mld': int(np.isfinite(mld).sum()),
                'profiles_with_ohc': int(np.isfinite(ohc).sum()),
                'mean_mld_dbar': num(np.nanmean(mld)) if np.isfinite(mld).any() else None,
                'mean_ohc_J_m2': num(np.nanmean(ohc)) if np.isfinite(ohc).any() else None,
                'per_profile': rows}
