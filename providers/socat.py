"""SOCAT (Surface Ocean CO2 Atlas): surface-ocean fCO2 cruises in the formats SOCAT publishes.

Layout (mirror and HTTP alike): a folder of SOCAT files, as ../shared/data/bdi/socat, served over
HTTP as a web folder with index pages (autoindex), or with the files named by the `files` option
where the server has none. Granules found in it:
- `*.tab`: a PANGAEA per-cruise file (SOCAT v3 on PANGAEA): `/* DATA DESCRIPTION: ... */` header
  (Citation, Coverage, Event(s), Comment with the cruise QC flag, Parameter(s) with PIs, License)
  then a TSV body;
- a folder holding `bagit.txt`: a SOCAT Upload Dashboard submission (BagIt bag): the data CSV
  (`key: value` header lines, then the columns) with OCADS.xml / PI_OME.xml metadata, payload
  under data/ or at the bag root, each file checked against manifest-md5.txt;
- `*.tsv`: a SOCAT synthesis / enhanced "data report" (metadata block with a per-dataset table,
  then the data TSV): one granule per cruise (Expocode); cruises with QC flag E are left out, as
  SOCAT leaves them out of its synthesis products.
One granule per cruise; one observation per fCO2 sample (collection `socat-fco2`, Features) and
one per cruise time series (`socat-series`, EDR PointSeries at the cruise's first position).
Columns take SOCAT's own names (the synthesis header); longitudes are normalised to -180..180;
-999 and NaN are missing.
"""
from __future__ import annotations

import hashlib
import io
import math
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import pandas as pd

from providers.base import (Connector, Granule, GranuleError, GranuleRef, MirrorSource, Source,
                            Stat)

LICENSE = 'CC-BY 4.0 (SOCAT Fair Data Use Statement, hdl:10013/epic.48576.d001)'
CITATION = ('Bakker, D. C. E. et al. (2016): A multi-decade record of high-quality fCO2 data in '
            'version 3 of the Surface Ocean CO2 Atlas (SOCAT). Earth System Science Data 8, '
            '383-413, doi:10.5194/essd-8-383-2016; www.socat.info')
MISSING = (-999, -999.0, -9999, -99999)
POINTS, SERIES = 'socat-fco2', 'socat-series'
# numeric values served as EDR parameters of a cruise series (when the cruise has them)
SERIES_PARAMS = ('fCO2', 'fCO2rec', 'fCO2water_SST_wet', 'fCO2water_equ_wet',
                 'xCO2water_equ_dry', 'SST', 'sal', 'WOA_SSS', 'Tequ', 'Pequ', 'PPPP',
                 'NCEP_SLP', 'GVCO2', 'pCO2', 'fCO2_in_atmosphere', 'pCO2_in_atmosphere',
                 'Temp', 'P_sal')
# PANGAEA SOCAT column (without unit) -> SOCAT name (the synthesis header's)
PANGAEA_NAMES = {
    'Date/Time': 'time', 'Latitude': 'lat', 'Longitude': 'lon', 'Depth water': 'sample_depth',
    'Temp': 'SST', 'Sal': 'sal', 'Sal interp': 'WOA_SSS', 'PPPP interp': 'NCEP_SLP',
    'Bathy depth interp/grid': 'ETOPO2_depth', 'Distance': 'dist_to_land',
    'xCO2air_interp': 'GVCO2', 'Algorithm': 'fCO2rec_src', 'Flag': 'fCO2rec_flag',
    'Latitude QC Flag': 'lat_QC', 'Longitude QC Flag': 'lon_QC'}
# Upload Dashboard column (regex on the PI's name) -> SOCAT name; others keep their own name
DASHBOARD_NAMES = [
    (r'^LAT', 'lat'), (r'^LON', 'lon'), (r'^xCO2_EQU', 'xCO2water_equ_dry'),
    (r'^PRES_EQU', 'Pequ'), (r'^PRES_ATM', 'PPPP'), (r'^TEMP_EQU', 'Tequ'), (r'^SST', 'SST'),
    (r'^SAL', 'sal'), (r'^fCO2_SW@SST', 'fCO2water_SST_wet'), (r'^fCO2_SW@EQU',
                                                                'fCO2water_equ_wet'),
    (r'^WOCE_QC_FLAG', 'WOCE_flag'), (r'^QC_SUBFLAG', 'qc_comment'), (r'^Expocode$', 'expocode')]
# synthesis column (without unit) -> SOCAT name where it differs
SYNTHESIS_NAMES = {'longitude': 'lon', 'latitude': 'lat', 'QC_Flag': 'cruise_qc',
                   'Source_DOI': 'doi', 'SOCAT_DOI': 'doi', 'Expocode': 'expocode'}
ISO = '%Y-%m-%dT%H:%M:%SZ'


# --- shared with providers/icos.py ------------------------------------------------------------
def norm_lon(lon: float) -> float:
    """0..360 (SOCAT synthesis) -> -180..180."""
    return lon - 360.0 if lon > 180 else lon


def clean(value):
    """A cell as JSON: None for NaN/-999, int for whole flags, stripped text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or f in MISSING:
        return None
    return f


def flag(value) -> str | None:
    """A WOCE/QC flag cell as text ('2', 'E', ...)."""
    v = clean(value)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else str(v)
    return v


def unit_of(label: str) -> str:
    m = re.search(r'\[(.*?)\]', label)
    return m.group(1) if m else ''


def list_folder(source: Source, folder: str) -> list[str]:
    """Entries of a folder (sub-folders end with '/'): the directory on a mirror, its autoindex
    page over HTTP."""
    if isinstance(source, MirrorSource):
        d = source.root / folder
        if not d.is_dir():
            raise FileNotFoundError(folder)
        return sorted(p.name + ('/' if p.is_dir() else '') for p in d.iterdir())
    page = source.read(folder).decode('utf-8', 'replace')
    out = set()
    for href in re.findall(r'href="([^"?#]+)"', page):
        path = unquote(urlsplit(href).path)
        if urlsplit(href).netloc or path.startswith(('/', '.')):
            continue
        if path.rstrip('/') and '/' not in path.rstrip('/'):
            out.add(path)
    return sorted(out)


def track(points: list[dict]) -> dict:
    """Extent of a list of points {time, lon, lat}."""
    times = sorted(p['time'] for p in points)
    lons = [p['lon'] for p in points]
    lats = [p['lat'] for p in points]
    return {'minx': min(lons, default=None), 'maxx': max(lons, default=None),
            'miny': min(lats, default=None), 'maxy': max(lats, default=None),
            'tmin': times[0] if times else None, 'tmax': times[-1] if times else None}


def series_observation(bdi: str, collection: str, gid: str, points: list[dict], units: dict,
                       platform: str | None, props: dict) -> tuple[dict | None, list[str]]:
    """One time series (EDR PointSeries at the first position) of a cruise or station: TIME,
    LONGITUDE, LATITUDE and every numeric parameter that has a value, with its flags."""
    pts = sorted(points, key=lambda p: p['time'])
    params = [n for n in SERIES_PARAMS
              if any(isinstance(p['values'].get(n), float) for p in pts)]
    if not params:
        return None, []
    levels = {'TIME': [p['time'] for p in pts], 'LONGITUDE': [p['lon'] for p in pts],
              'LATITUDE': [p['lat'] for p in pts]}
    for n in params:
        levels[n] = [p['values'].get(n) for p in pts]
        for f in (n + '_QC', ):
            if any(p['values'].get(f) is not None for p in pts):
                levels[f] = [p['values'].get(f) for p in pts]
    woce = [p['values'].get('WOCE_flag') for p in pts]
    if any(w is not None for w in woce):
        levels['WOCE_flag'] = woce
    obs = {'id': f'{gid}-series', 'bdi': bdi, 'collection': collection, 'granule': gid,
           'time': pts[0]['time'], 'lon': pts[0]['lon'], 'lat': pts[0]['lat'],
           'platform': platform, 'kind': 'timeSeries', 'parameters': ' '.join(params),
           'levels': levels,
           'props': dict(props, axis_t='TIME', time_end=pts[-1]['time'],
                         units={n: units.get(n, '') for n in params})}
    return obs, params


def _iso(t) -> str | None:
    if t is None or pd.isna(t):
        return None
    return pd.Timestamp(t).tz_localize(None).strftime(ISO) if pd.Timestamp(t).tzinfo \
        else pd.Timestamp(t).strftime(ISO)


def _points(df: pd.DataFrame, problems: list[str], what: str) -> list[dict]:
    """Rows with columns time, lon, lat (+ SOCAT-named values) -> points; bad rows reported."""
    out = []
    for n, row in enumerate(df.to_dict('records')):
        lon, lat, t = clean(row.get('lon')), clean(row.get('lat')), row.get('time')
        if not isinstance(lon, float) or not isinstance(lat, float) or not t:
            problems.append(f'{what} row {n + 1}: no valid time or position; row skipped')
            continue
        if not (-180 <= lon <= 360 and -90 <= lat <= 90):
            problems.append(f'{what} row {n + 1}: position {lon}, {lat} out of range; skipped')
            continue
        values = {}
        for k, v in row.items():
            if k in ('time', 'lon', 'lat'):
                continue
            v = flag(v) if k.endswith(('_flag', '_QC')) or k in ('cruise_qc', 'fCO2rec_src') \
                else clean(v)
            if v is not None:
                values[k] = v
        if 'fCO2rec_flag' in values and 'WOCE_flag' not in values:
            values['WOCE_flag'] = values['fCO2rec_flag']
        best = values.get('fCO2rec', values.get('fCO2water_SST_wet'))
        if best is not None and 'fCO2' not in values:
            values['fCO2'] = best
            values['fCO2_source'] = 'fCO2rec' if 'fCO2rec' in values else 'fCO2water_SST_wet'
        out.append({'n': n, 'time': t, 'lon': norm_lon(lon), 'lat': lat, 'values': values})
    return out


# --- PANGAEA per-cruise files ---------------------------------------------------------------
def pangaea_name(col: str) -> str:
    if 'Recomputed' in col:
        return 'fCO2rec'
    base = re.sub(r'\s*\[.*$', '', col).strip()
    return PANGAEA_NAMES.get(base, base)


def read_pangaea(data: bytes) -> tuple[dict, pd.DataFrame, dict]:
    """(header fields, body with SOCAT column names, units) of a PANGAEA tab file."""
    text = data.decode('utf-8-sig', 'replace').replace('\r\n', '\n')
    if not text.startswith('/*'):
        raise GranuleError('not a PANGAEA tab file (no /* DATA DESCRIPTION */ header)')
    end = text.find('\n*/')
    if end < 0:
        raise GranuleError('PANGAEA header not closed by */')
    head, body = text[:end], text[end + 4:]
    meta: dict[str, str] = {}
    key = None
    for line in head.split('\n')[1:]:
        if line.startswith('\t') and key:
            meta[key] += '\n' + line.strip()
        elif '\t' in line:
            key, value = line.split('\t', 1)
            key = key.rstrip(':')
            meta[key] = value.strip()
    try:
        df = pd.read_csv(io.StringIO(body), sep='\t', dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise GranuleError(f'PANGAEA body unreadable: {err}') from None
    if 'Date/Time' not in df.columns or 'Latitude' not in df.columns:
        raise GranuleError('PANGAEA body has no Date/Time, Latitude, Longitude columns')
    units = {pangaea_name(c): unit_of(c) for c in df.columns}
    df.columns = [pangaea_name(c) for c in df.columns]
    for c in df.columns:
        if c not in ('time', 'lat_QC', 'lon_QC'):
            df[c] = pd.to_numeric(df[c].str.strip().replace('', 'NaN'), errors='coerce')
    df['time'] = [_iso(t) for t in pd.to_datetime(df['time'], errors='coerce', utc=True)]
    return meta, df, units


def pangaea_info(meta: dict, fallback: str) -> dict:
    event = meta.get('Event(s)', '')
    campaign = re.search(r'CAMPAIGN:\s*([^*\n]+?)\s*(\*|$)', event)
    basis = re.search(r'BASIS:\s*([^*\n]+?)\s*(\*|$)', event)
    qc = re.search(r'Cruise QC flag:\s*([A-E])', meta.get('Comment', ''))
    pis = []
    for m in re.finditer(r'PI:\s*([^(*\n]+?)\s*(\(|\*|$)', meta.get('Parameter(s)', '')):
        if m.group(1) not in pis:
            pis.append(m.group(1))
    citation = meta.get('Citation', '').split('\n')[0].rstrip(', ') or None
    doi = re.search(r'doi:(10\.1594/PANGAEA\.\d+)', meta.get('Citation', ''))
    return {'expocode': campaign.group(1) if campaign else fallback,
            'ship': basis.group(1) if basis else None, 'cruise_qc': qc.group(1) if qc else None,
            'pi': pis, 'citation': citation, 'license': meta.get('License'),
            'doi': doi.group(1) if doi else None, 'coverage': meta.get('Coverage')}


# --- SOCAT Upload Dashboard submissions (BagIt) ---------------------------------------------
def read_dashboard_csv(data: bytes) -> tuple[dict, pd.DataFrame, dict]:
    """(`key: value` header, body with SOCAT names, PI column -> SOCAT name) of an Upload
    Dashboard data file."""
    lines = data.decode('utf-8-sig', 'replace').replace('\r\n', '\n').split('\n')
    header, start = {}, None
    for i, line in enumerate(lines):
        m = re.match(r'^([A-Za-z][\w ]*):\s*(.*)$', line)
        if m and line.count(',') < 2 and '\t' not in line:
            header[m.group(1).strip()] = m.group(2).strip()
        elif line.strip():
            start = i
            break
    if start is None:
        raise GranuleError('no data columns after the header lines')
    sep = '\t' if '\t' in lines[start] else ','
    try:
        df = pd.read_csv(io.StringIO('\n'.join(lines[start:])), sep=sep, dtype=str,
                         keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise GranuleError(f'dashboard CSV unreadable: {err}') from None
    date_c = next((c for c in df.columns if c.upper().startswith('DATE')), None)
    time_c = next((c for c in df.columns if c.upper().startswith('TIME')), None)
    if date_c is None or time_c is None:
        raise GranuleError('dashboard CSV without DATE and TIME columns')
    pattern = re.search(r'(ddmmyyyy|yyyymmdd|mmddyyyy|yyyy-mm-dd)', date_c, re.I)
    fmt = (pattern.group(1).lower() if pattern else 'yyyy-mm-dd').replace(
        'dd', '%d').replace('mm', '%m').replace('yyyy', '%Y')
    stamp = pd.to_datetime(df[date_c].str.strip() + ' ' + df[time_c].str.strip(),
                           format=fmt + ' %H:%M:%S', errors='coerce')
    names = {}
    for c in df.columns:
        names[c] = next((n for pat, n in DASHBOARD_NAMES if re.search(pat, c)), c)
    out = pd.DataFrame({'time': [_iso(t) for t in stamp]})
    for c, n in names.items():
        if c in (date_c, time_c) or n in out.columns:
            continue
        col = df[c].str.strip()
        num = pd.to_numeric(col.replace('', 'NaN'), errors='coerce')
        out[n] = num if n not in ('expocode', 'qc_comment') and num.notna().sum() >= \
            (col != '').sum() else col
    return header, out, names


def read_ocads(data: bytes | None) -> dict:
    """Fields of an OCADS metadata record (NOAA OCADS XML as the dashboard writes it)."""
    if not data:
        return {}
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise GranuleError(f'OCADS.xml unreadable: {err}') from None

    def text(path):
        e = root.find(path)
        return (e.text or '').strip() if e is not None and e.text else None
    return {'expocode': text('expocode'), 'ship': text('Platform/PlatformName'),
            'platform_id': text('Platform/PlatformID'), 'submitted': text('submissiondate'),
            'start': text('startdate'), 'end': text('enddate'),
            'bbox': [text(k) for k in ('westbd', 'southbd', 'eastbd', 'northbd')],
            'pi': [(p.findtext('name') or '').strip() for p in root.iterfind('person')
                   if (p.findtext('role') or '').strip() == 'investigator'],
            'units': {(v.findtext('abbrev') or '').strip(): (v.findtext('unit') or '').strip()
                      for v in root.iterfind('variable')},
            'cruise_id': text('cruiseID')}


def read_pi_ome(data: bytes | None) -> dict:
    if not data:
        return {}
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise GranuleError(f'PI_OME.xml unreadable: {err}') from None
    return {'pi': [(e.findtext('Name') or '').strip() for e in root.iterfind('Investigator')],
            'ship': (root.findtext('.//Vessel/Vessel_Name') or '').strip() or None,
            'expocode': (root.findtext('.//Cruise/Cruise_ID') or '').strip() or None,
            'citation': (root.findtext('.//Citation') or '').strip() or None}


def read_bag(data: bytes) -> dict[str, bytes]:
    """The payload of a packed bag, each file checked against manifest-md5.txt."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise GranuleError('not a packed BagIt bag') from None
    files = {n: zf.read(n) for n in zf.namelist()}
    manifest = files.pop('manifest-md5.txt', b'').decode('utf-8', 'replace')
    sums = dict((PurePosixPath(p.strip()).name, m) for m, p in
                (ln.split(None, 1) for ln in manifest.splitlines() if len(ln.split(None, 1)) == 2))
    for name, body in files.items():
        if name in sums and hashlib.md5(body).hexdigest() != sums[name]:
            raise GranuleError(f'BagIt payload {name} does not match its md5 in '
                               'manifest-md5.txt')
    return files


# --- SOCAT synthesis / enhanced data report -------------------------------------------------
def read_synthesis(data: bytes) -> tuple[dict[str, dict], pd.DataFrame, dict]:
    """(per-dataset table by Expocode, data rows with SOCAT names, units)."""
    lines = data.decode('utf-8-sig', 'replace').replace('\r\n', '\n').split('\n')
    start = next((i for i, ln in enumerate(lines) if ln.startswith('Expocode\t')
                  and '\tyr\t' in ln and 'fCO2rec' in ln), None)
    if start is None:
        raise GranuleError('not a SOCAT data report (no Expocode ... yr ... fCO2rec header)')
    datasets = {}
    for i, ln in enumerate(lines[:start]):
        if ln.startswith('Expocode\t') and 'QC Flag' in ln:
            cols = ln.split('\t')
            for row in lines[i + 1:start]:
                if not row.strip() or '\t' not in row:
                    break
                rec = dict(zip(cols, row.split('\t')))
                datasets[rec['Expocode']] = rec
            break
    try:
        df = pd.read_csv(io.StringIO('\n'.join(lines[start:])), sep='\t', dtype=str,
                         keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise GranuleError(f'SOCAT data rows unreadable: {err}') from None
    units = {}
    names = {}
    for c in df.columns:
        base = re.sub(r'\s*\[.*$', '', c).strip()
        names[c] = SYNTHESIS_NAMES.get(base, base)
        units[names[c]] = unit_of(c)
    df.columns = [names[c] for c in df.columns]
    for c in df.columns:
        if c not in ('expocode', 'doi', 'cruise_qc', 'version'):
            df[c] = pd.to_numeric(df[c].str.strip().replace('', 'NaN'), errors='coerce')
    parts = df[['yr', 'mon', 'day', 'hh', 'mm']].astype('Int64').astype(str)
    stamp = pd.to_datetime(parts['yr'] + '-' + parts['mon'] + '-' + parts['day'] + ' ' +
                           parts['hh'] + ':' + parts['mm'], format='%Y-%m-%d %H:%M',
                           errors='coerce') + pd.to_timedelta(df['ss'].fillna(0), unit='s')
    df['time'] = [_iso(t) for t in stamp.dt.round('s')]
    return datasets, df.drop(columns=['yr', 'mon', 'day', 'hh', 'mm', 'ss']), units


# --- the connector --------------------------------------------------------------------------
class SocatConnector(Connector):
    name = 'socat'
    title = 'SOCAT (Surface Ocean CO2 Atlas)'
    kind = 'surface-ocean fCO2 cruises (PANGAEA files, Upload Dashboard bags, data reports)'
    default_url = 'https://socat.info/'
    license = LICENSE
    citation = CITATION
    feature_fields = {
        'expocode': ('platform', 'string'), 'ship': ('dataset', 'string'),
        'cruise_qc': ('data_mode', 'string'), 'woce_flag': ('qc', 'string'),
        'time': ('time', 'string'), 'sample_depth': ('depth', 'number'),
        'granule': ('granule', 'string')}
    COLLECTIONS = {
        'socat-pangaea': ('SOCAT cruises on PANGAEA (per-cruise tab files)',
                          'SOCAT v3 per-cruise files as published on PANGAEA, with cruise QC '
                          'flag, PIs, citation and licence from their header'),
        'socat-dashboard': ('SOCAT Upload Dashboard submissions',
                            'Cruises submitted by PIs to the SOCAT Upload Dashboard (BagIt bags '
                            'with the data CSV and OCADS / PI_OME metadata), before SOCAT QC'),
        'socat-synthesis': ('SOCAT synthesis data report',
                            'Cruises of a SOCAT synthesis or enhanced data report (QC flags '
                            'A-D; E excluded as in SOCAT products), recomputed fCO2 (fCO2rec)')}

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        self._seen = set()
        self._cache: dict[str, bytes] = {}
        files = self.options.get('files')
        found = [(f, 'bag' if f.endswith('/') else PurePosixPath(f).suffix) for f in files] \
            if files else self._walk(source, '', 0)
        refs = []
        for path, kind in found:
            stem = PurePosixPath(path.rstrip('/')).name
            if kind == 'bag':
                refs.append(GranuleRef(id=f'socat-{PurePosixPath(stem).stem}', path=path,
                                       collection='socat-dashboard', meta={'kind': 'bag'}))
            elif kind == '.tab':
                refs.append(GranuleRef(id=f'socat-{PurePosixPath(stem).stem}', path=path,
                                       collection='socat-pangaea', meta={'kind': 'pangaea'}))
            elif kind == '.tsv':
                refs += self._synthesis_refs(source, path)
        if not refs:
            raise FileNotFoundError('no SOCAT files (*.tab, *.tsv, BagIt bags) at the source')
        self._seen = {r.collection for r in refs}
        return refs

    def _walk(self, source, folder, depth) -> list[tuple[str, str]]:
        try:
            names = list_folder(source, folder)
        except FileNotFoundError:
            return []
        if 'bagit.txt' in names and folder:
            return [(folder, 'bag')]
        out = []
        for n in names:
            if n.endswith('/'):
                if depth < 4:
                    out += self._walk(source, folder + n, depth + 1)
            elif n.endswith(('.tab', '.tsv')):
                out.append((folder + n, PurePosixPath(n).suffix))
        return out

    def _synthesis_refs(self, source, path) -> list[GranuleRef]:
        """One granule per cruise of a data report (read once here; kept for this harvest)."""
        try:
            data = self._cache[path] = source.read(path)
            datasets, df, _ = read_synthesis(data)
        except (FileNotFoundError, GranuleError) as err:
            self._listing_problems.append((path, f'SOCAT data report unreadable: {err}'))
            return []
        refs = []
        expocodes = list(dict.fromkeys(list(datasets) + list(df['expocode'].dropna())))
        for expo in expocodes:
            qc = (datasets.get(expo) or {}).get('QC Flag') or next(
                iter(df.loc[df['expocode'] == expo, 'cruise_qc'].dropna()), None)
            if qc == 'E':
                self._listing_problems.append((f'{path}#{expo}', 'cruise QC flag E: excluded '
                                               'as from SOCAT synthesis products'))
                continue
            refs.append(GranuleRef(id=f'socat-{PurePosixPath(path).stem}-{expo}', path=path,
                                   collection='socat-synthesis',
                                   meta={'kind': 'synthesis', 'expocode': expo}))
        return refs

    def _bag_files(self, source, ref) -> list[str]:
        manifest = source.read(ref.path + 'manifest-md5.txt').decode('utf-8', 'replace')
        names = [ln.split(None, 1)[1].strip() for ln in manifest.splitlines()
                 if len(ln.split(None, 1)) == 2]
        return [n for n in names if n.lower().endswith(('.csv', '.tsv', '.txt', '.xml'))]

    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        if ref.meta['kind'] != 'bag':
            return source.stat(ref.path)
        if isinstance(source, MirrorSource):   # any payload file changed
            sts = [p.stat() for p in (source.root / ref.path).rglob('*') if p.is_file()]
            return Stat(sum(s.st_size for s in sts), max((s.st_mtime for s in sts), default=0),
                        None)
        return source.stat(ref.path + 'manifest-md5.txt')

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        """A bag is packed (zip) with its manifest and the payload files read here."""
        if ref.meta['kind'] == 'synthesis':
            if ref.path not in self._cache:
                self._cache[ref.path] = source.read(ref.path)
            return self._cache[ref.path]
        if ref.meta['kind'] != 'bag':
            return source.read(ref.path)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w') as zf:
            zf.writestr('manifest-md5.txt', source.read(ref.path + 'manifest-md5.txt'))
            for name in self._bag_files(source, ref):
                for cand in (name, PurePosixPath(name).name):   # data/x or a flattened copy
                    try:
                        zf.writestr(PurePosixPath(name).name, source.read(ref.path + cand))
                        break
                    except FileNotFoundError:
                        continue
        return buf.getvalue()

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        problems: list[str] = []
        kind = ref.meta['kind']
        if kind == 'pangaea':
            meta, df, units = read_pangaea(data)
            info = pangaea_info(meta, PurePosixPath(ref.path).stem.split('_')[0])
            fmt = 'PANGAEA tab (SOCAT v3)'
        elif kind == 'bag':
            files = read_bag(data)
            data_name = next((n for n in files if n.lower().endswith(('.csv', '.tsv', '.txt'))
                              and n.lower() not in ('bag-info.txt', 'bagit.txt')), None)
            if data_name is None:
                raise GranuleError('bag has no data file in its payload')
            head, df, names = read_dashboard_csv(files[data_name])
            ocads, ome = read_ocads(files.get('OCADS.xml')), read_pi_ome(files.get('PI_OME.xml'))
            units = {names[c]: u for c, u in (ocads.get('units') or {}).items() if c in names}
            expo = head.get('Expocode') or ocads.get('expocode') or ome.get('expocode')
            pis = ocads.get('pi') or ome.get('pi') or [p.strip() for p in
                                                        head.get('Investigators', '').split(';')]
            ship = head.get('Ship') or ocads.get('ship') or ome.get('ship')
            info = {'expocode': expo, 'ship': ship, 'cruise_qc': None, 'pi': pis,
                    'license': None, 'doi': None, 'citation': ome.get('citation') or (
                        f"{'; '.join(pis)}: surface ocean CO2 data of cruise {expo} ({ship}), "
                        f"submitted to SOCAT {ocads.get('submitted') or ''}".strip()),
                    'group': head.get('Group'), 'submitted': ocads.get('submitted'),
                    'metadata_bbox': ocads.get('bbox'), 'platform_id': ocads.get('platform_id'),
                    'metadata_files': sorted(n for n in files if n.endswith('.xml'))}
            fmt = 'SOCAT Upload Dashboard CSV (BagIt)'
        else:
            datasets, df, units = read_synthesis(data)
            expo = ref.meta['expocode']
            df = df[df['expocode'] == expo]
            ds = datasets.get(expo) or {}
            doi = ds.get('DOI') or (next(iter(df['doi'].dropna()), None)
                                    if 'doi' in df.columns else None)
            info = {'expocode': expo, 'ship': ds.get('Platform Name'),
                    'cruise_qc': ds.get('QC Flag') or next(iter(df['cruise_qc'].dropna()), None),
                    'pi': [p.strip() for p in (ds.get('Principal Investigator(s)') or '')
                           .split(';') if p.strip()],
                    'license': None, 'doi': doi,
                    'citation': f"{ds.get('Principal Investigator(s)', '')}: {ds.get('Dataset Name') or expo}"
                                f"{', doi:' + doi if doi else ''}. In: SOCAT data report",
                    'version': ds.get('version')}
            fmt = 'SOCAT synthesis data report TSV'
        if not info.get('expocode'):
            raise GranuleError('no Expocode in the file or its metadata')
        points = _points(df, problems, PurePosixPath(ref.path.rstrip('/')).name)
        if not points:
            raise GranuleError('no samples with a valid time and position')
        return self._granule(ref, info, points, units, fmt, problems)

    def _granule(self, ref, info, points, units, fmt, problems) -> Granule:
        gid, expo = ref.id, info['expocode']
        units = {k: u for k, u in units.items() if u and u != 'None'}
        units.setdefault('fCO2', units.get('fCO2rec') or units.get('fCO2water_SST_wet', ''))
        obs = []
        for p in points:
            v = p['values']
            props = {k: x for k, x in v.items()   # the rest are columns (feature_fields)
                     if k not in ('sample_depth', 'expocode', 'cruise_qc', 'WOCE_flag')}
            obs.append({'id': f"{gid}-{p['n']}", 'bdi': self.name, 'collection': POINTS,
                        'granule': gid, 'time': p['time'], 'lon': p['lon'], 'lat': p['lat'],
                        'platform': expo, 'dataset': info.get('ship'), 'kind': 'underway',
                        'data_mode': info.get('cruise_qc'), 'qc': v.get('WOCE_flag'),
                        'depth': v.get('sample_depth'), 'props': props})
        series, params = series_observation(self.name, SERIES, gid, points, units, expo,
                                            {'expocode': expo, 'ship': info.get('ship')})
        obs += [series] if series else []
        url = self.public_url + ref.path
        extra = {k: info.get(k) for k in ('expocode', 'pi', 'doi', 'group', 'submitted',
                                          'version', 'coverage', 'metadata_bbox',
                                          'platform_id', 'metadata_files')}
        record = {'id': gid, 'bdi': self.name, 'collection': ref.collection, 'path': ref.path,
                  'url': url, 'type': 'cruise', **track(points),
                  'title': f"SOCAT cruise {expo}" + (f" ({info['ship']})" if info.get('ship')
                                                     else ''),
                  'platform': info.get('ship'), 'parameters': ' '.join(params),
                  'qc': info.get('cruise_qc'), 'data_mode': info.get('cruise_qc'),
                  'license': info.get('license') or self.license,
                  'citation': info.get('citation') or self.citation,
                  'extra': dict({k: x for k, x in extra.items() if x not in (None, [], '')},
                                format=fmt, units={k: u for k, u in units.items() if u})}
        return Granule(record, obs, problems)

    def collections(self) -> list[dict]:
        return [{'id': cid, 'bdi': self.name, 'type': 'dataset', 'title': title,
                 'description': desc, 'keywords': 'SOCAT,fCO2,carbon dioxide,surface ocean,'
                 'underway,cruise', 'license': self.license, 'citation': self.citation,
                 'url': self.public_url}
                for cid, (title, desc) in self.COLLECTIONS.items()
                if cid in getattr(self, '_seen', set())]
