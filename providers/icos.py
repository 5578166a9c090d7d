"""ICOS-Marine: ICOS Ocean Thematic Centre (OTC) CO2 data objects of the ICOS Carbon Portal.

Live: a data object's landing page `https://meta.icos-cp.eu/objects/<PID>` answers JSON (with
`Accept: application/json`): hash, accessUrl, pid, doi, fileName, size, submission,
specification, specificInfo (StationTimeSeriesMeta: acquisition{station, interval, ...}, nRows,
coverage, columns; or SpatioTemporalMeta) and references (citationString, licence, title). Its
data is at the accessUrl `https://data.icos-cp.eu/objects/<PID>`.

Layout (mirror, or any web root serving one, with index pages): folders named after the hosts,
as `wget -x` keeps them, so each live path is kept as is:
  meta.icos-cp.eu/objects/<PID>      landing page JSON (`<PID>.json` accepted on a mirror)
  data.icos-cp.eu/objects/<PID>      the data object (OTC product CSV or SOCAT-format tab)
  *.csv, *.tab at the root           OTC exports without a landing page (as ../shared/data/bdi/
                                     icos-marine): read as granules with metadata from the file
When the source URL is a Carbon Portal host (url https://meta.icos-cp.eu/), the host folder is
the host and the objects are those named by the `objects` option (PIDs); discovery through the
SPARQL endpoint is not implemented. The data's SHA-256 must equal the landing page's `hash`.
One observation per sample (collection `icos-marine-fco2`, Features: fCO2/pCO2 and their QC
flags) and one time series per object (`icos-marine-series`, EDR PointSeries).
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pandas as pd

from providers.base import (Connector, Granule, GranuleError, GranuleRef, HttpSource,
                            MirrorSource, Source, Stat)
from providers.socat import (_points, list_folder, read_pangaea, series_observation, track,
                             unit_of)

LICENSE = 'CC-BY 4.0 (ICOS data licence, https://data.icos-cp.eu/licence)'
CITATION = ('ICOS RI: ICOS Ocean Thematic Centre data, ICOS Carbon Portal, '
            'https://www.icos-cp.eu (cite each data object by its DOI or PID)')
META_HOST, DATA_HOST = 'meta.icos-cp.eu', 'data.icos-cp.eu'
POINTS, SERIES, OBJECTS = 'icos-marine-fco2', 'icos-marine-series', 'icos-marine-otc'
COMPANIONS = ((' QC Flag', '_QC'), (' QC Comment', '_QC_comment'), (' Type', '_type'))
OTC_NAMES = {'Longitude': 'lon', 'Latitude': 'lat', 'Depth': 'depth'}


def otc_key(label: str) -> str:
    """'fCO2 in atmosphere [uatm]' -> 'fCO2_in_atmosphere'; position and depth by role."""
    base = re.sub(r'\s*\[.*?\]\s*$', '', label).strip()
    return OTC_NAMES.get(base) or re.sub(r'\W+', '_', base).strip('_')


def read_otc_csv(data: bytes) -> tuple[pd.DataFrame, dict]:
    """(rows with time, lon, lat and one column per variable and companion, units) of an OTC
    export CSV: each variable followed by its '<name> QC Flag', 'QC Comment', 'Type' columns."""
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GranuleError(f'OTC CSV unreadable: {err}') from None
    cols = list(df.columns)
    if 'Date/Time' not in cols or not {'Longitude', 'Latitude'} <= set(cols):
        raise GranuleError('not an ICOS OTC export (no Date/Time, Longitude, Latitude)')
    out = pd.DataFrame({'time': [None if pd.isna(t) else t.strftime('%Y-%m-%dT%H:%M:%SZ')
                                 for t in pd.to_datetime(df['Date/Time'], errors='coerce',
                                                         utc=True)]})
    units = {}
    for c in cols[1:]:
        comp = next(((c[:-len(s)], k) for s, k in COMPANIONS
                     if c.endswith(s) and c[:-len(s)] in cols), None)
        if comp:
            out[otc_key(comp[0]) + comp[1]] = df[c].str.strip()
        else:
            key = otc_key(c)
            units[key] = unit_of(c)
            out[key] = pd.to_numeric(df[c].str.strip().replace('', 'NaN'), errors='coerce')
    return out, units


def read_data(data: bytes, name: str) -> tuple[pd.DataFrame, dict, dict]:
    """(rows, units, PANGAEA header or {}) of an OTC data object in either format."""
    if data.lstrip()[:2] == b'/*':
        meta, df, units = read_pangaea(data)
        return df, units, meta
    df, units = read_otc_csv(data)
    return df, units, {}


class IcosMarineConnector(Connector):
    name = 'icos-marine'
    title = 'ICOS-Marine (ICOS Ocean Thematic Centre, Carbon Portal)'
    kind = 'surface-ocean CO2 (fCO2, pCO2) time series of ICOS ocean stations and ships'
    default_url = f'https://{META_HOST}/'
    license = LICENSE
    citation = CITATION
    feature_fields = {
        'station': ('platform', 'string'), 'file': ('dataset', 'string'),
        'fCO2_qc': ('qc', 'string'), 'time': ('time', 'string'),
        'depth': ('depth', 'number'), 'granule': ('granule', 'string')}

    @staticmethod
    def _live(source: Source) -> bool:
        return isinstance(source, HttpSource) and \
            (urlsplit(source.base).hostname or '').endswith('icos-cp.eu')

    def _at(self, source: Source, path: str) -> str:
        """A host-folder path as the source names it (the absolute URL on the live portal)."""
        return 'https://' + path if self._live(source) else path

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        pids = list(self.options.get('objects') or [])
        loose = []
        if not self._live(source):
            for folder, bucket in ((f'{META_HOST}/objects/', pids), ('', loose)):
                try:
                    names = [n for n in list_folder(source, folder) if not n.endswith('/')]
                except FileNotFoundError:
                    continue
                bucket += [n.removesuffix('.json') for n in names] if folder else \
                    [n for n in names if n.endswith(('.csv', '.tab'))]
        refs = [GranuleRef(id=f'icos-{pid}', path=f'{META_HOST}/objects/{pid}',
                           collection=OBJECTS, meta={'kind': 'object', 'pid': pid})
                for pid in dict.fromkeys(pids)]
        refs += [GranuleRef(id=f'icos-{n}', path=n, collection=OBJECTS,
                            meta={'kind': 'file'}) for n in loose]
        if not refs:
            raise FileNotFoundError('no ICOS data objects: name them (vre.bdis.icos-marine.'
                                    'objects) or give a mirror with meta.icos-cp.eu/objects/')
        return refs

    def _landing(self, source: Source, path: str) -> str:
        """A landing page as the source names it (a mirror may add .json)."""
        if isinstance(source, MirrorSource) and not (source.root / path).is_file():
            path += '.json'
        return self._at(source, path)

    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        if ref.meta['kind'] == 'file':
            return source.stat(ref.path)
        return source.stat(self._landing(source, ref.path))

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        """A data object is packed (zip) as its landing-page JSON and its data."""
        if ref.meta['kind'] == 'file':
            return source.read(ref.path)
        path = self._landing(source, ref.path)
        if isinstance(source, HttpSource):   # the landing page answers HTML unless asked JSON
            r = source.session.get(source.url(path), headers={'Accept': 'application/json'},
                                   timeout=source.timeout)
            if r.status_code == 404:
                raise FileNotFoundError(path)
            r.raise_for_status()
            meta = r.content
        else:
            meta = source.read(path)
        try:
            access = json.loads(meta).get('accessUrl') or ''
        except ValueError:
            raise GranuleError('landing page is not JSON') from None
        parts = urlsplit(access)
        if parts.hostname != DATA_HOST or not parts.path.startswith('/objects/'):
            raise GranuleError(f'landing page accessUrl {access!r} is not a {DATA_HOST} object')
        data = source.read(self._at(source, DATA_HOST + parts.path))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w') as zf:
            zf.writestr('meta.json', meta)
            zf.writestr('data', data)
        return buf.getvalue()

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        problems: list[str] = []
        meta = {}
        if ref.meta['kind'] == 'object':
            zf = zipfile.ZipFile(io.BytesIO(data))
            meta, data = json.loads(zf.read('meta.json')), zf.read('data')
            if meta.get('hash') and hashlib.sha256(data).hexdigest() != meta['hash'].lower():
                raise GranuleError('data object SHA-256 differs from the landing page hash')
        name = meta.get('fileName') or PurePosixPath(ref.path).name
        df, units, header = read_data(data, name)
        info = self._describe(meta, name, ref.meta.get('pid'))
        n_rows = info.get('nRows')
        if n_rows is not None and n_rows != len(df):
            problems.append(f'{name}: {len(df)} rows, the landing page says nRows {n_rows}')
        cols = {c.get('label'): c for c in info.pop('columns')}
        for label, c in cols.items():     # units of the landing page's column descriptions
            unit = ((c.get('valueType') or {}).get('unit'))
            if label and unit:
                units[otc_key(label)] = unit
        points = _points(df, problems, name)
        if not points:
            raise GranuleError('no samples with a valid time and position')
        station = info.get('station_id')
        obs = []
        for p in points:
            v = p['values']
            qc = v.get('fCO2_QC') or v.get('WOCE_flag')
            obs.append({'id': f"{ref.id}-{p['n']}", 'bdi': self.name, 'collection': POINTS,
                        'granule': ref.id, 'time': p['time'], 'lon': p['lon'], 'lat': p['lat'],
                        'platform': station, 'dataset': name, 'kind': 'underway', 'qc': qc,
                        'depth': v.get('depth', v.get('sample_depth')),
                        'props': {k: x for k, x in v.items() if k not in ('depth',)}})
        units.setdefault('fCO2', units.get('fCO2rec') or units.get('fCO2water_SST_wet', ''))
        series, params = series_observation(self.name, SERIES, ref.id, points, units, station,
                                            {'station': station, 'file': name})
        obs += [series] if series else []
        url = info.pop('landing_page', None) or self.public_url + ref.path
        record = {'id': ref.id, 'bdi': self.name, 'collection': OBJECTS, 'path': ref.path,
                  'url': url, 'type': 'data object' if meta else 'file', **track(points),
                  'title': info.pop('title'), 'platform': station,
                  'parameters': ' '.join(params), 'license': info.pop('license'),
                  'citation': info.pop('citation'),
                  'extra': dict({k: x for k, x in info.items() if x not in (None, '', [])},
                                units={k: u for k, u in units.items() if u},
                                header=header.get('Citation'))}
        return Granule(record, obs, problems)

    def _describe(self, meta: dict, name: str, object_id: str | None) -> dict:
        """Granule metadata from the landing page (fields of the CP DataObject model)."""
        if not meta:
            return {'title': f'ICOS OTC export {name} (no landing page)', 'columns': [],
                    'license': self.license, 'citation': self.citation, 'fileName': name}
        spec = meta.get('specification') or {}
        spi = meta.get('specificInfo') or {}
        acq = spi.get('acquisition') or {}
        station = acq.get('station') or spi.get('station') or {}
        interval = acq.get('interval') or (spi.get('temporal') or {}).get('interval') or {}
        refs = meta.get('references') or {}
        lic = refs.get('licence') or {}
        org = (station.get('org') or {}).get('name')
        title = refs.get('title') or spi.get('title') or \
            f"{(spec.get('self') or {}).get('label') or 'ICOS data object'} {org or ''} " \
            f"{interval.get('start', '')}".strip()
        return {'title': title, 'pid': meta.get('pid'), 'doi': meta.get('doi'),
                'hash': meta.get('hash'), 'fileName': meta.get('fileName'),
                'object_size': meta.get('size'), 'accessUrl': meta.get('accessUrl'),
                'landing_page': f'https://{META_HOST}/objects/{object_id}',
                'specification': (spec.get('self') or {}).get('label'),
                'format': (spec.get('format') or {}).get('label'),
                'dataLevel': spec.get('dataLevel'),
                'project': ((spec.get('project') or {}).get('self') or {}).get('label'),
                'station_id': station.get('id'), 'station': org,
                'interval': [interval.get('start'), interval.get('stop')] if interval else None,
                'nRows': spi.get('nRows'),
                'columns': spi.get('columns') or spi.get('variables') or [],
                'submitted': (meta.get('submission') or {}).get('start'),
                'license': (f"{lic['name']} ({lic.get('url')})" if lic.get('name')
                            else self.license),
                'citation': refs.get('citationString') or self.citation,
                'keywords': refs.get('keywords')}

    def collections(self) -> list[dict]:
        return [{'id': OBJECTS, 'bdi': self.name, 'type': 'dataset',
                 'title': 'ICOS Ocean Thematic Centre CO2 data objects',
                 'description': 'Surface-ocean CO2 (fCO2, pCO2, xCO2) with temperature, '
                                'salinity and per-value QC flags from ICOS OTC stations and '
                                'ships, as data objects of the ICOS Carbon Portal',
                 'keywords': 'ICOS,OTC,fCO2,pCO2,carbon dioxide,surface ocean,time series',
                 'license': self.license, 'citation': self.citation,
                 'url': 'https://www.icos-cp.eu/data-services/about-data-portal'}]
