"""Argo: GDAC index files (core, bio, synthetic), profile NetCDF files, greylist.

The live GDAC (https://data-argo.ifremer.fr/) has the index files at its root and the data
under dac/<dac>/<wmo>/; a mirror may keep the index files in index/ (as argopy-data does), so
both places are tried. One observation per profile (N_PROF entry) of each file, with its
parameters (raw, adjusted, QC flags) per level; pressure is the vertical axis.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import netCDF4
import numpy as np

from providers.base import Connector, Granule, GranuleRef, Source
from providers.ncutil import floats as _floats, open_bytes, trim as _trim

INDEXES = {  # index file -> (collection, file type)
    'ar_index_global_prof.txt': ('argo-core', 'core'),
    'argo_bio-profile_index.txt': ('argo-bio', 'bio'),
    'argo_synthetic-profile_index.txt': ('argo-synthetic', 'synthetic'),
}
GREYLIST = 'ar_greylist.txt'
JULD_ORIGIN = datetime(1950, 1, 1, tzinfo=timezone.utc)
LICENSE = 'CC-BY-4.0'
CITATION = ('Argo (2000). Argo float data and metadata from Global Data Assembly Centre '
            '(Argo GDAC). SEANOE. https://doi.org/10.17882/42182')


def read_index_file(source: Source, name: str) -> bytes:
    """An index file from the GDAC root, or from index/ on an argopy-style mirror."""
    try:
        return source.read(name)
    except FileNotFoundError:
        return source.read('index/' + name)


def parse_index(text: str) -> list[dict]:
    """Rows of a GDAC index (CSV after '#' comment lines)."""
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith('#')]
    return list(csv.DictReader(lines))


def parse_greylist(text: str) -> dict[str, list[dict]]:
    """Greylist entries by platform number."""
    out: dict[str, list[dict]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        out.setdefault(row['PLATFORM_CODE'].strip(), []).append(
            {'parameter': row['PARAMETER_NAME'], 'start': _ymd(row['START_DATE']),
             'end': _ymd(row['END_DATE']), 'qc': row['QUALITY_CODE'],
             'comment': row['COMMENT'], 'dac': row['DAC']})
    return out


def _ymd(value: str) -> str | None:
    value = (value or '').strip()
    return f'{value[:4]}-{value[4:6]}-{value[6:8]}' if len(value) >= 8 else None


def _index_time(value: str) -> str | None:
    value = (value or '').strip()
    if len(value) < 14:
        return None
    return (f'{value[:4]}-{value[4:6]}-{value[6:8]}T{value[8:10]}:{value[10:12]}:'
            f'{value[12:14]}Z')


def _text(var, i=None) -> str:
    arr = var[:] if i is None else var[i]
    if np.ma.isMaskedArray(arr):
        arr = arr.filled(b' ')
    return netCDF4.chartostring(np.asarray(arr)).tolist().strip() if np.ndim(arr) else \
        arr.tobytes().decode('ascii', 'replace').strip()


def _chars(var, i) -> str:
    """Per-level QC flags (char array) as one string, ' ' where missing."""
    arr = var[i]
    if np.ma.isMaskedArray(arr):
        arr = arr.filled(b' ')
    return np.asarray(arr).tobytes().decode('ascii', 'replace')


def _scalar(var, i):
    value = var[i]
    return None if np.ma.is_masked(value) else value.item()


def read_profiles(data: bytes, name: str = 'argo.nc') -> list[dict]:
    """Every profile of an Argo profile file (core/B/S, single- or multi-profile)."""
    need = ('PLATFORM_NUMBER', 'JULD', 'LATITUDE', 'LONGITUDE', 'STATION_PARAMETERS')
    with open_bytes(data, name, need, 'an Argo profile file') as ds:
        v = ds.variables
        n_prof = ds.dimensions['N_PROF'].size
        profiles = []
        for i in range(n_prof):
            params = [p for p in (_text(v['STATION_PARAMETERS'], (i, j))
                                  for j in range(ds.dimensions['N_PARAM'].size)) if p]
            if 'PARAMETER_DATA_MODE' in v:
                pmodes = _chars(v['PARAMETER_DATA_MODE'], i)[:len(params)]
            else:
                pmodes = ''
            if 'DATA_MODE' in v:
                mode = _chars(v['DATA_MODE'], slice(i, i + 1)).strip()
            else:  # synthetic files: the least processed parameter decides
                mode = 'R' if 'R' in pmodes else 'A' if 'A' in pmodes else 'D'
            juld = _scalar(v['JULD'], i)
            time = None if juld is None else (JULD_ORIGIN + timedelta(days=juld)).strftime(
                '%Y-%m-%dT%H:%M:%SZ')
            levels = {}
            for p in params:
                for suffix in ('', '_QC', '_ADJUSTED', '_ADJUSTED_QC', '_ADJUSTED_ERROR'):
                    var = v.get(p + suffix)
                    if var is None:
                        continue
                    levels[p + suffix] = _chars(var, i) if suffix.endswith('QC') else \
                        _floats(var, i)
            _trim(levels)
            profiles.append({
                'index': i,
                'platform_number': _text(v['PLATFORM_NUMBER'], i),
                'cycle_number': _scalar(v['CYCLE_NUMBER'], i) if 'CYCLE_NUMBER' in v else None,
                'direction': _chars(v['DIRECTION'], slice(i, i + 1)) if 'DIRECTION' in v else None,
                'data_mode': mode,
                'parameter_data_mode': pmodes or None,
                'time': time,
                'juld_qc': _chars(v['JULD_QC'], slice(i, i + 1)) if 'JULD_QC' in v else None,
                'latitude': _scalar(v['LATITUDE'], i),
                'longitude': _scalar(v['LONGITUDE'], i),
                'position_qc': _chars(v['POSITION_QC'], slice(i, i + 1))
                if 'POSITION_QC' in v else None,
                'vertical_sampling_scheme': _text(v['VERTICAL_SAMPLING_SCHEME'], i)
                if 'VERTICAL_SAMPLING_SCHEME' in v else None,
                'parameters': params,
                'profile_qc': {p: _chars(v[f'PROFILE_{p}_QC'], slice(i, i + 1)).strip()
                               for p in params if f'PROFILE_{p}_QC' in v},
                'levels': levels,
            })
        return profiles


class ArgoConnector(Connector):
    name = 'argo'
    title = 'Argo floats (GDAC)'
    kind = 'profiles (temperature, salinity, biogeochemical) from profiling floats'
    default_url = 'https://data-argo.ifremer.fr/'
    license = LICENSE
    citation = CITATION
    feature_fields = {
        'platform_number': ('platform', 'string'), 'cycle_number': ('cycle', 'integer'),
        'file_type': ('kind', 'string'), 'data_mode': ('data_mode', 'string'),
        'parameters': ('parameters', 'string'), 'position_qc': ('qc', 'string'),
        'time': ('time', 'string'), 'granule': ('granule', 'string')}

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        self.greylist = {}
        try:
            self.greylist = parse_greylist(read_index_file(source, GREYLIST).decode())
        except FileNotFoundError:
            self._listing_problems.append((GREYLIST, 'greylist not found'))
        refs, found_any = [], False
        for index_name, (collection, ftype) in INDEXES.items():
            try:
                rows = parse_index(read_index_file(source, index_name).decode('ascii', 'replace'))
                found_any = True
            except FileNotFoundError:
                self._listing_problems.append((index_name, 'index file not found'))
                continue
            for n, row in enumerate(rows):
                if not row.get('file') or None in row:
                    self._listing_problems.append((f'{index_name} line {n + 1}',
                                                   'malformed index line'))
                    continue
                stem = row['file'].rsplit('/', 1)[-1].removesuffix('.nc')
                refs.append(GranuleRef(id=stem, path='dac/' + row['file'], collection=collection,
                                       etag=row.get('date_update'),
                                       meta=dict(row, file_type=ftype)))
        if not found_any:
            raise FileNotFoundError('no Argo index file found (ar_index_global_prof.txt, ...)')
        return refs

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        profiles = read_profiles(data, ref.id)
        grey = self.greylist.get(ref.id.lstrip('BSDRA').split('_')[0], [])
        obs = []
        for p in profiles:
            greylisted = sorted({g['parameter'] for g in grey if p['time'] and g['start'] and
                                 g['start'] <= p['time'][:10] and
                                 (not g['end'] or p['time'][:10] <= g['end'])})
            props = {k: p[k] for k in ('direction', 'juld_qc', 'parameter_data_mode',
                                       'vertical_sampling_scheme', 'profile_qc')}
            props.update(file=ref.path, profile_index=p['index'], greylisted=greylisted,
                         dac=ref.path.split('/')[1], url=self.public_url + ref.path)
            obs.append({
                'id': f"{ref.id}_{p['index']}", 'bdi': self.name, 'collection': 'argo-profiles',
                'granule': ref.id, 'time': p['time'], 'lon': p['longitude'],
                'lat': p['latitude'], 'platform': p['platform_number'],
                'cycle': p['cycle_number'], 'kind': ref.meta['file_type'],
                'data_mode': p['data_mode'], 'parameters': ' '.join(p['parameters']),
                'qc': p['position_qc'], 'props': props, 'levels': p['levels']})
        lons = [o['lon'] for o in obs if o['lon'] is not None]
        lats = [o['lat'] for o in obs if o['lat'] is not None]
        times = sorted(o['time'] for o in obs if o['time'])
        params = sorted({q for p in profiles for q in p['parameters']})
        record = {
            'id': ref.id, 'bdi': self.name, 'collection': ref.collection, 'path': ref.path,
            'url': self.public_url + ref.path, 'title': f"Argo {ref.meta['file_type']} profile "
            f"file {ref.id} (float {profiles[0]['platform_number'] if profiles else '?'})",
            'type': 'profile-file',
            'minx': min(lons, default=None), 'maxx': max(lons, default=None),
            'miny': min(lats, default=None), 'maxy': max(lats, default=None),
            'tmin': times[0] if times else _index_time(ref.meta.get('date')),
            'tmax': times[-1] if times else _index_time(ref.meta.get('date')),
            'platform': profiles[0]['platform_number'] if profiles else None,
            'parameters': ' '.join(params),
            'data_mode': ''.join(sorted({p['data_mode'] for p in profiles})),
            'qc': ' '.join(f'{k}:{v}' for p in profiles[:1] for k, v in p['profile_qc'].items()),
            'license': self.license, 'citation': self.citation,
            'extra': {'institution': ref.meta.get('institution'),
                      'profiler_type': ref.meta.get('profiler_type'),
                      'ocean': ref.meta.get('ocean'), 'date_update': ref.meta.get('date_update'),
                      'parameter_data_mode': ref.meta.get('parameter_data_mode'),
                      'greylist': grey},
        }
        return Granule(record, obs)

    def collections(self) -> list[dict]:
        base = {'bdi': self.name, 'license': self.license, 'citation': self.citation,
                'url': self.public_url}
        return [
            dict(base, id='argo-core', type='dataset', title='Argo core profiles (T, S, P)',
                 description='Core Argo profile files (PRES, TEMP, PSAL, adjusted values and QC '
                 'flags) listed in ar_index_global_prof.txt, real-time and delayed mode.',
                 keywords='Argo,profile,temperature,salinity,pressure,float'),
            dict(base, id='argo-bio', type='dataset', title='Argo BGC (B) profiles',
                 description='Biogeochemical Argo B files (DOXY, CHLA, NITRATE, ...) listed in '
                 'argo_bio-profile_index.txt.',
                 keywords='Argo,BGC,oxygen,biogeochemistry,profile,float'),
            dict(base, id='argo-synthetic', type='dataset', title='Argo synthetic (S) profiles',
                 description='Synthetic Argo S files merging core and BGC parameters on one '
                 'pressure axis, listed in argo_synthetic-profile_index.txt.',
                 keywords='Argo,synthetic,BGC,profile,float'),
        ]
