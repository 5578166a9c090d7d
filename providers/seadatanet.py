"""SeaDataNet: CDI metadata (ISO 19139), SeaDataNet NetCDF (CF DSG) and ODV spreadsheets.

Layout (mirror and HTTP alike): the CDI aggregation listing (`listing` option; a cdiGroup of
record URLs, served live at report/aggregation) names CDI records, read at the path of each
listed URL (`cdi_aggregation/seadatanet/<id>/details.xml`; a mirror keeps them as
cdi_metadata/cdi_iso19139_<id>_*.xml). Data files delivered by SeaDataNet are listed from the
folders netcdf/, odv/ (and unlisted records from cdi_metadata/): a directory on a mirror, an
HTML index page over HTTP. One observation per NetCDF INSTANCE or ODV station/series, with its
values and SeaDataNet (L20) quality flags per level; depth or pressure is the vertical axis.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import netCDF4
import numpy as np

from providers.base import (Connector, Granule, GranuleError, GranuleRef, MirrorSource, Source,
                            Stat)
from providers.ncutil import floats as _floats, open_bytes, trim as _trim

LICENSE = 'SeaDataNet licence (SDN:L08::LS, https://www.seadatanet.org/urnurl/SDN:L08::LS)'
CITATION = ('SeaDataNet (2025). Pan-European infrastructure for ocean and marine data '
            'management. https://www.seadatanet.org (cite each CDI and its originators too)')
UNIX_EPOCH_CJD = 2440588  # chronological Julian day of 1970-01-01 (midnight origin)
DATA_DIRS = {'netcdf/': ('.nc',), 'odv/': ('.txt',), 'cdi_metadata/': ('.xml',)}
NS = {'gmd': 'http://www.isotc211.org/2005/gmd', 'gco': 'http://www.isotc211.org/2005/gco',
      'gml': 'http://www.opengis.net/gml', 'gmx': 'http://www.isotc211.org/2005/gmx',
      'xlink': 'http://www.w3.org/1999/xlink'}
FEATURE_KIND = {'profiles': 'profile', 'timeseries': 'timeSeries', 'trajectories': 'trajectory'}


def cjd_to_iso(value: float) -> str:
    """Chronological Julian day (days from -4713-01-01T00:00 Julian) -> Gregorian UTC text.

    A CF decode with calendar 'julian' gives a Julian-calendar date, 13 days off today.
    """
    t = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(
        seconds=round((float(value) - UNIX_EPOCH_CJD) * 86400))
    return t.strftime('%Y-%m-%dT%H:%M:%SZ')


def _times(var, i) -> list:
    """TIME of one instance as index text; other units than chronological Julian days via CF."""
    vals = np.ma.masked_invalid(np.ma.atleast_1d(np.ma.asarray(var[i], dtype='f8')))
    units = getattr(var, 'units', '')
    out = []
    for v, m in zip(vals.data, np.ma.getmaskarray(vals)):
        if m:
            out.append(None)
        elif '-4713' in units:
            out.append(cjd_to_iso(v))
        else:
            t = netCDF4.num2date(v, units, getattr(var, 'calendar', 'standard'),
                                 only_use_cftime_datetimes=False)
            out.append(t.strftime('%Y-%m-%dT%H:%M:%SZ'))
    return out


# --- SeaDataNet NetCDF ----------------------------------------------------------------------
def _text(var, i) -> str:
    arr = var[i]
    if np.ma.isMaskedArray(arr):
        arr = arr.filled(b' ')
    return np.asarray(arr).tobytes().decode('utf-8', 'replace').replace('\x00', ' ').strip()


def _flags(var, i) -> str:
    """L20 flags (int8 ASCII codes '0'..'9', 'A', 'B', 'Q') as one string."""
    arr = np.ma.filled(np.ma.atleast_1d(var[i]), ord('9')).astype('u1')
    return arr.tobytes().decode('ascii', 'replace')


def read_netcdf(data: bytes, name: str = 'sdn.nc') -> list[dict]:
    """One dict per INSTANCE (profile, time series, trajectory) of a SeaDataNet NetCDF file."""
    with open_bytes(data, name, ('LONGITUDE', 'LATITUDE', 'TIME'),
                    'a SeaDataNet NetCDF file') as ds:
        v = ds.variables
        ftype = getattr(ds, 'featureType', '')
        if 'INSTANCE' not in ds.dimensions or ftype not in ('profile', 'timeSeries',
                                                             'trajectory'):
            raise GranuleError(f'unsupported SeaDataNet NetCDF (featureType {ftype!r})')
        series = v['TIME'].ndim == 2
        zname = next((n for n in ('PRES', 'DEPTH') if n in v and v[n].ndim == 2), None)
        axis = {'LONGITUDE', 'LATITUDE', 'TIME', 'DEPTH', 'PRES'}
        params = [n for n, var in v.items() if n not in axis and not n.startswith('SDN_')
                  and not n.endswith('_QC') and var.dimensions[:1] == ('INSTANCE',)
                  and var.ndim == 2 and var.dtype.kind == 'f']
        out = []
        for i in range(ds.dimensions['INSTANCE'].size):
            times = _times(v['TIME'], i)
            lon, lat = _floats(v['LONGITUDE'], i), _floats(v['LATITUDE'], i)
            levels = {}
            for n in ([zname] if zname else []) + params:
                levels[n] = _floats(v[n], i)
                if n + '_SEADATANET_QC' in v:
                    levels[n + '_SEADATANET_QC'] = _flags(v[n + '_SEADATANET_QC'], i)
            if series:
                levels['TIME'] = times
                if 'TIME_SEADATANET_QC' in v:
                    levels['TIME_SEADATANET_QC'] = _flags(v['TIME_SEADATANET_QC'], i)
                if ftype == 'trajectory':
                    levels.update(LONGITUDE=lon, LATITUDE=lat)
            _trim(levels)
            valid = [t for t in times if t]
            first = next((k for k, (x, y) in enumerate(zip(lon, lat)) if None not in (x, y)),
                         None)
            cruise = v.get('SDN_CRUISE')
            out.append({
                'index': i, 'featureType': ftype, 'parameters': params,
                'time': valid[0] if valid else None, 'time_end': valid[-1] if valid else None,
                'longitude': lon[first] if first is not None else None,
                'latitude': lat[first] if first is not None else None,
                'position_qc': _flags(v['POSITION_SEADATANET_QC'], i)[:1]
                if 'POSITION_SEADATANET_QC' in v else None,
                'time_qc': None if series or 'TIME_SEADATANET_QC' not in v
                else _flags(v['TIME_SEADATANET_QC'], i),
                'station': _text(v['SDN_STATION'], i) if 'SDN_STATION' in v else None,
                'cruise': _text(cruise, i) if cruise is not None else None,
                'cruise_name': getattr(cruise, 'long_name', None) if cruise is not None
                else None,
                'local_cdi_id': _text(v['SDN_LOCAL_CDI_ID'], i)
                if 'SDN_LOCAL_CDI_ID' in v else None,
                'edmo_code': int(v['SDN_EDMO_CODE'][i]) if 'SDN_EDMO_CODE' in v
                and not np.ma.is_masked(v['SDN_EDMO_CODE'][i]) else None,
                'bot_depth': _floats(v['SDN_BOT_DEPTH'], i)[0] if 'SDN_BOT_DEPTH' in v
                else None,
                'depth': _floats(v['DEPTH'], i)[0] if 'DEPTH' in v and v['DEPTH'].ndim == 1
                else None,
                'axis_z': zname, 'axis_t': 'TIME' if series else None,
                'units': {n: getattr(v[n], 'units', '') for n in ([zname] if zname else [])
                          + params},
                'p01': {n: getattr(v[n], 'sdn_parameter_urn', '') for n in params},
                'levels': levels,
            })
        return out


# --- ODV spreadsheets -----------------------------------------------------------------------
def _key(label: str, mapping: dict) -> str:
    """Parameter key of an ODV column: its P01 code when mapped, else a slug of its name."""
    name = re.sub(r'\s*\[.*?\]\s*$', '', label).strip()
    return mapping.get(name) or re.sub(r'\W+', '_', name).strip('_')


def _odv_time(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.rstrip('Z'))
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.strftime('%Y-%m-%dT%H:%M:%SZ')


def read_odv(data: bytes) -> tuple[dict, list[dict]]:
    """(header info, stations) of an ODV generic spreadsheet with QV:SEADATANET flags."""
    text = data.decode('utf-8-sig', 'replace').replace('\r\n', '\n').replace('\r', '\n')
    lines = text.split('\n')
    comments = [ln.rstrip('\t') for ln in lines if ln.startswith('//')]
    rows = [ln.split('\t') for ln in lines if ln.strip('\t ') and not ln.startswith('//')]
    if not rows or 'Station' not in rows[0] or not any(h.startswith('Longitude') for h in rows[0]):
        raise GranuleError('not an ODV spreadsheet (no Cruise/Station/Longitude header row)')
    head = rows[0]
    info = {'data_type': next((re.sub(r'</?DataType>', '', c[2:]) for c in comments
                               if c.startswith('//<DataType>')), 'Profiles'),
            'version': next((re.sub(r'</?Version>', '', c[2:]) for c in comments
                             if c.startswith('//<Version>')), None)}
    missing = {m for c in comments if c.startswith('//<MissingValueIndicators>')
               for m in re.sub(r'</?MissingValueIndicators>', '', c[2:]).split()}
    mapping = {}
    for c in comments:  # //<subject>SDN:LOCAL:Temperature</subject><object>SDN:P01::X</object>
        m = re.search(r'<subject>SDN:LOCAL:(.*?)</subject><object>SDN:P01::(\w+)</object>', c)
        if m:
            mapping[m.group(1)] = m.group(2)
    first_var = next((i for i in range(len(head) - 1)
                      if not head[i].startswith('QV:') and head[i + 1].startswith('QV:')), None)
    if first_var is None:
        raise GranuleError('ODV header has no data variable with a QV quality column')
    col = {h: i for i, h in reversed(list(enumerate(head[:first_var])))}
    tcol = next((i for h, i in col.items() if h.startswith('yyyy-mm-dd')), None)
    lon_c = next(i for h, i in col.items() if h.startswith('Longitude'))
    lat_c = next(i for h, i in col.items() if h.startswith('Latitude'))
    variables = []  # (key, column, flag column or None, unit)
    for i in range(first_var, len(head)):
        if head[i].startswith('QV:'):
            continue
        flag = i + 1 if i + 1 < len(head) and head[i + 1].startswith('QV:') else None
        unit = re.search(r'\[(.*?)\]\s*$', head[i])
        variables.append((_key(head[i], mapping), i, flag, unit.group(1) if unit else ''))
    sample_flag = next((i for i, h in enumerate(head) if h.startswith('QV:') and
                        h.endswith(':SAMPLE')), None)

    def cell(row, i):
        return row[i].strip() if i is not None and i < len(row) else ''

    stations, problems = [], []
    for n, row in enumerate(rows[1:], start=2):
        if any(cell(row, i) for i in range(first_var)):
            meta = {h: cell(row, i) for h, i in col.items()}
            try:
                lon, lat = float(cell(row, lon_c)), float(cell(row, lat_c))
            except ValueError:
                problems.append(f'row {n}: station without a numeric position')
                lon = lat = None
            stations.append({'meta': meta, 'longitude': lon, 'latitude': lat,
                             'time': _odv_time(cell(row, tcol)), 'rows': []})
        elif not stations:
            problems.append(f'row {n}: data before the first station')
            continue
        stations[-1]['rows'].append(row)
    for st in stations:
        levels = {}
        for key, i, flag, _ in variables:
            vals = [cell(r, i) for r in st['rows']]
            if key == 'time_ISO8601':
                levels[key] = [_odv_time(x) for x in vals]
            else:
                levels[key] = [None if x in ('',) or x in missing else _num(x) for x in vals]
            if flag is not None:
                levels[key + '_SEADATANET_QC'] = ''.join((cell(r, flag) or ' ')[0]
                                                         for r in st['rows'])
        if sample_flag is not None:
            levels['SAMPLE_SEADATANET_QC'] = ''.join((cell(r, sample_flag) or ' ')[0]
                                                     for r in st['rows'])
        st['levels'] = levels
        del st['rows']
    info.update(variables=[(k, u) for k, _, _, u in variables], problems=problems)
    return info, stations


def _num(x: str):
    try:
        return round(float(x), 6)
    except ValueError:
        return None


# --- CDI metadata (ISO 19139, SeaDataNet profile) -------------------------------------------
def _all_text(root, path: str) -> list[str]:
    return [(e.text or '').strip() for e in root.iterfind(path, NS) if (e.text or '').strip()]


def read_cdi(data: bytes) -> dict:
    """The discovery fields of a CDI record."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise GranuleError(f'not XML: {err}') from None
    if not root.tag.endswith('MD_Metadata'):
        raise GranuleError(f'not an ISO 19139 record (root {root.tag})')
    ident = next(iter(root.iterfind('gmd:identificationInfo/*', NS)), None)
    if ident is None:
        raise GranuleError('CDI record without identificationInfo')
    cit = 'gmd:citation/gmd:CI_Citation/'
    boxes = []
    for b in ident.iterfind('.//gmd:EX_GeographicBoundingBox', NS):
        vals = [_all_text(b, f'gmd:{k}/gco:Decimal') for k in (
            'westBoundLongitude', 'southBoundLatitude', 'eastBoundLongitude',
            'northBoundLatitude')]
        if all(vals):
            boxes.append([float(x[0]) for x in vals])
    begin = _all_text(ident, './/gml:TimePeriod/gml:beginPosition')
    end = _all_text(ident, './/gml:TimePeriod/gml:endPosition')
    keywords, params = [], []
    for kw in ident.iterfind('gmd:descriptiveKeywords/gmd:MD_Keywords/gmd:keyword/*', NS):
        if (kw.text or '').strip():
            keywords.append(kw.text.strip())
        if kw.tag.endswith('SDN_ParameterDiscoveryCode') and kw.get('codeListValue'):
            params.append(kw.get('codeListValue'))
    licences = [(a.text or '').strip() + (f" ({a.get('{%s}href' % NS['xlink'])})"
                                          if a.get('{%s}href' % NS['xlink']) else '')
                for a in ident.iterfind('gmd:resourceConstraints//gmd:otherConstraints/*', NS)]
    parties = ident.iterfind(f'{cit}gmd:citedResponsibleParty/gmd:CI_ResponsibleParty', NS)
    originators = [(p.find('gmd:organisationName/*', NS).text or '').strip() for p in parties
                   if p.find('gmd:role/gmd:CI_RoleCode', NS) is not None and
                   p.find('gmd:role/gmd:CI_RoleCode', NS).get('codeListValue') == 'originator'
                   and p.find('gmd:organisationName/*', NS) is not None]
    links = []
    for r in root.iterfind('gmd:distributionInfo//gmd:onLine/gmd:CI_OnlineResource', NS):
        url = _all_text(r, 'gmd:linkage/gmd:URL')
        fn = r.find('gmd:function/gmd:CI_OnLineFunctionCode', NS)
        if url:
            links.append({'href': url[0], 'function': fn.get('codeListValue') if fn is not None
                          else None, 'title': (_all_text(r, 'gmd:description/*') or [None])[0]})
    return {
        'id': (_all_text(root, 'gmd:fileIdentifier/*') or [None])[0],
        'title': (_all_text(ident, f'{cit}gmd:title/*') or [''])[0],
        'local_id': (_all_text(ident, f'{cit}gmd:alternateTitle/*') or [None])[0],
        'abstract': (_all_text(ident, 'gmd:abstract/*') or [None])[0],
        'date': (_all_text(root, 'gmd:dateStamp/*') or [None])[0],
        'boxes': boxes, 'begin': begin[0] if begin else None, 'end': end[0] if end else None,
        'parameters': params, 'keywords': keywords, 'licences': licences,
        'originators': originators, 'links': links,
        'formats': _all_text(root, 'gmd:distributionInfo//gmd:MD_Format/gmd:name/*'),
        'edmo': [e.get('codeListValue') for e in root.iterfind('gmd:contact//*', NS)
                 if e.tag.endswith('SDN_EDMOCode')][:1],
    }


def _date_iso(value: str | None, end: bool = False) -> str | None:
    if not value:
        return None
    if 'T' not in value:
        return value[:10] + ('T23:59:59Z' if end else 'T00:00:00Z')
    return _odv_time(value)


# --- the connector --------------------------------------------------------------------------
class SeaDataNetConnector(Connector):
    name = 'seadatanet'
    title = 'SeaDataNet (CDI, SeaDataNet NetCDF and ODV)'
    kind = 'profiles, time series and trajectories (physics, chemistry) with CDI metadata'
    default_url = 'https://cdi.seadatanet.org/'
    license = LICENSE
    citation = CITATION
    feature_fields = {
        'station': ('platform', 'string'), 'featureType': ('kind', 'string'),
        'parameters': ('parameters', 'string'), 'local_cdi_id': ('dataset', 'string'),
        'time': ('time', 'string'), 'qc': ('qc', 'string'), 'granule': ('granule', 'string')}

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        refs, listed = [], set()
        mirror = isinstance(source, MirrorSource)
        listing = self.options.get('listing') or (
            'cdi_metadata/cdi_aggregation_listing_cdiGroup.xml' if mirror
            else 'report/aggregation')
        try:
            urls = _all_text(ET.fromstring(source.read(listing)), './/cdiUrl')
        except FileNotFoundError:
            urls = []
            self._listing_problems.append((listing, 'CDI listing not found'))
        except ET.ParseError as err:
            urls = []
            self._listing_problems.append((listing, f'CDI listing unreadable: {err}'))
        for url in urls:
            path = urlsplit(url).path.lstrip('/')
            parts = path.split('/')
            cdi = parts[-2] if len(parts) >= 2 else path
            listed.add(cdi)
            refs.append(GranuleRef(id=f'cdi-{cdi}', path=path, collection='seadatanet-cdi',
                                   meta={'kind': 'cdi', 'cdi': cdi, 'listed_url': url}))
        for folder, exts in DATA_DIRS.items():
            try:
                names = self._list(source, folder)
            except FileNotFoundError:
                continue
            for fname in sorted(n for n in names if n.endswith(exts)):
                stem = PurePosixPath(fname).stem
                if folder == 'cdi_metadata/':
                    m = re.match(r'cdi_iso19139_(.+?)_', fname)
                    if not m or m.group(1) in listed:
                        continue
                    refs.append(GranuleRef(id=f'cdi-{m.group(1)}', path=folder + fname,
                                           collection='seadatanet-cdi',
                                           meta={'kind': 'cdi', 'cdi': m.group(1)}))
                else:
                    kind = 'netcdf' if folder == 'netcdf/' else 'odv'
                    refs.append(GranuleRef(id=f'sdn-{stem}', path=folder + fname,
                                           collection=f'seadatanet-{kind}', meta={'kind': kind}))
        if not refs:
            raise FileNotFoundError('no SeaDataNet CDI listing and no netcdf/ or odv/ files')
        return refs

    @staticmethod
    def _list(source: Source, folder: str) -> list[str]:
        """File names of a folder: the directory on a mirror, its HTML index over HTTP."""
        if isinstance(source, MirrorSource):
            d = source.root / folder
            if not d.is_dir():
                raise FileNotFoundError(folder)
            return [p.name for p in d.iterdir() if p.is_file()]
        page = source.read(folder).decode('utf-8', 'replace')
        return sorted({PurePosixPath(urlsplit(h).path).name
                       for h in re.findall(r'href="([^"?#]+)"', page)} - {''})

    def _mirror_path(self, source: Source, ref: GranuleRef) -> str:
        """A listed CDI record on a mirror: cdi_metadata/cdi_iso19139_<id>_*.xml."""
        if isinstance(source, MirrorSource) and ref.meta.get('listed_url'):
            found = sorted((source.root / 'cdi_metadata').glob(
                f"cdi_iso19139_{ref.meta['cdi']}_*.xml"))
            if not found:
                raise FileNotFoundError(ref.path)
            return 'cdi_metadata/' + found[0].name
        return ref.path

    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        return source.stat(self._mirror_path(source, ref))

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        return source.read(self._mirror_path(source, ref))

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        kind = ref.meta['kind']
        if kind == 'cdi':
            return Granule(self._cdi_record(ref, read_cdi(data)), [])
        if kind == 'netcdf':
            items = read_netcdf(data, ref.id)
            problems = []
        else:
            info, stations = read_odv(data)
            problems = info['problems']
            items = [self._odv_item(info, n, st) for n, st in enumerate(stations)]
        url = self.public_url + ref.path
        obs = []
        for it in items:
            if it['longitude'] is None or it['latitude'] is None:
                problems.append(f"instance {it['index']}: no position")
                continue
            props = {k: it[k] for k in ('cruise', 'cruise_name', 'edmo_code', 'bot_depth',
                                        'time_end', 'position_qc', 'time_qc', 'axis_z',
                                        'axis_t', 'units', 'p01') if it.get(k) not in (None, {})}
            props.update(file=ref.path, instance=it['index'], url=url)
            obs.append({
                'id': f"{ref.id.removeprefix('sdn-')}_{it['index']}", 'bdi': self.name,
                'collection': 'seadatanet-observations', 'granule': ref.id,
                'time': it['time'], 'lon': it['longitude'], 'lat': it['latitude'],
                'platform': it['station'], 'kind': it['featureType'],
                'parameters': ' '.join(it['parameters']), 'dataset': it['local_cdi_id'],
                'depth': it.get('depth'), 'qc': it.get('position_qc'),
                'props': props, 'levels': it['levels']})
        lons = [o['lon'] for o in obs]
        lats = [o['lat'] for o in obs]
        times = sorted(t for o in obs for t in (o['time'], o['props'].get('time_end')) if t)
        kinds = sorted({o['kind'] for o in obs})
        record = {
            'id': ref.id, 'bdi': self.name, 'collection': ref.collection, 'path': ref.path,
            'url': url, 'type': f"{kind}-{'/'.join(kinds) or 'empty'}",
            'title': f"SeaDataNet {'NetCDF' if kind == 'netcdf' else 'ODV'} file "
                     f"{PurePosixPath(ref.path).name}: {len(obs)} {'/'.join(kinds)} "
                     f"({', '.join(sorted({o['props'].get('cruise_name') or o['props'].get('cruise') or '' for o in obs} - {''}))})",
            'minx': min(lons, default=None), 'maxx': max(lons, default=None),
            'miny': min(lats, default=None), 'maxy': max(lats, default=None),
            'tmin': times[0] if times else None, 'tmax': times[-1] if times else None,
            'platform': ' '.join(sorted({o['platform'] for o in obs if o['platform']}))[:64]
            or None,
            'parameters': ' '.join(sorted({p for it in items for p in it['parameters']})),
            'qc': 'SeaDataNet L20 flags per value (<PARAM>_SEADATANET_QC)',
            'license': self.license, 'citation': self._data_citation(obs),
            'extra': {'local_cdi_ids': sorted({o['dataset'] for o in obs if o['dataset']}),
                      'edmo_codes': sorted({o['props'].get('edmo_code') for o in obs
                                            if o['props'].get('edmo_code')}),
                      'format': 'SeaDataNet NetCDF (CF DSG)' if kind == 'netcdf'
                      else 'ODV spreadsheet'},
        }
        return Granule(record, obs, problems)

    @staticmethod
    def _odv_item(info: dict, n: int, st: dict) -> dict:
        meta, levels = st['meta'], st['levels']
        dtype = info['data_type'].lower()
        keys = [k for k, _ in info['variables']]
        zname = None if dtype == 'timeseries' else (keys[0] if keys else None)
        tname = 'time_ISO8601' if 'time_ISO8601' in levels else None
        valid = [t for t in levels.get(tname, []) if t] if tname else []
        edmo = meta.get('EDMO_code') or ''
        return {
            'index': n, 'featureType': FEATURE_KIND.get(dtype, dtype),
            'parameters': [k for k in keys if k not in (zname, tname)],
            'time': st['time'] or (valid[0] if valid else None),
            'time_end': valid[-1] if valid else None,
            'longitude': st['longitude'], 'latitude': st['latitude'],
            'station': meta.get('Station') or None, 'cruise': meta.get('Cruise') or None,
            'local_cdi_id': meta.get('LOCAL_CDI_ID') or None,
            'edmo_code': int(edmo) if edmo.isdigit() else None,
            'bot_depth': _num(meta.get('Bot. Depth [m]') or 'x'),
            'axis_z': zname, 'axis_t': tname,
            'units': {k: u for k, u in info['variables'] if u}, 'levels': levels,
        }

    def _data_citation(self, obs) -> str:
        ids = sorted({o['dataset'] for o in obs if o['dataset']})
        edmo = sorted({str(o['props'].get('edmo_code')) for o in obs
                       if o['props'].get('edmo_code')})
        return (f"{self.citation}. Data centre EDMO {', '.join(edmo) or 'unknown'}; "
                f"CDI local ids {', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}")

    def _cdi_record(self, ref: GranuleRef, cdi: dict) -> dict:
        boxes = cdi['boxes']
        download = next((lk['href'] for lk in cdi['links']
                         if lk['function'] in ('download', 'downloadRegistration')),
                        cdi['links'][0]['href'] if cdi['links'] else None)
        year = (cdi['date'] or '')[:4] or 'n.d.'
        citation = (f"{'; '.join(cdi['originators']) or 'SeaDataNet partner'} ({year}). "
                    f"{cdi['title']}. SeaDataNet CDI {cdi['id']}. https://www.seadatanet.org")
        return {
            'id': ref.id, 'bdi': self.name, 'collection': ref.collection, 'path': ref.path,
            'url': download, 'title': cdi['title'], 'type': 'cdi',
            'minx': min((b[0] for b in boxes), default=None),
            'miny': min((b[1] for b in boxes), default=None),
            'maxx': max((b[2] for b in boxes), default=None),
            'maxy': max((b[3] for b in boxes), default=None),
            'tmin': _date_iso(cdi['begin']), 'tmax': _date_iso(cdi['end'], end=True),
            'platform': None, 'parameters': ' '.join(cdi['parameters']),
            'qc': None, 'license': '; '.join(cdi['licences']) or self.license,
            'citation': citation,
            'extra': {'identifier': cdi['id'], 'local_cdi_id': cdi['local_id'],
                      'abstract': cdi['abstract'], 'keywords': cdi['keywords'],
                      'bboxes': boxes if len(boxes) > 1 else None, 'formats': cdi['formats'],
                      'links': cdi['links'], 'originators': cdi['originators'],
                      'edmo': cdi['edmo'][0] if cdi['edmo'] else None,
                      'metadata_date': cdi['date']},
        }

    def collections(self) -> list[dict]:
        base = {'bdi': self.name, 'license': self.license, 'citation': self.citation,
                'url': self.public_url}
        return [
            dict(base, id='seadatanet-cdi', type='dataset', title='SeaDataNet CDI records',
                 description='Common Data Index (ISO 19139) records of the SeaDataNet data '
                 'centres: extent, P02 parameters, originators, licence and access links.',
                 keywords='SeaDataNet,CDI,metadata,ISO 19139'),
            dict(base, id='seadatanet-netcdf', type='dataset',
                 title='SeaDataNet NetCDF profiles, time series and trajectories',
                 description='SeaDataNet NetCDF (CF DSG) files: CTD/XBT profiles, tide gauge '
                 'and other time series, trajectories, with L20 quality flags per value.',
                 keywords='SeaDataNet,NetCDF,profile,time series,temperature,salinity,oxygen'),
            dict(base, id='seadatanet-odv', type='dataset',
                 title='SeaDataNet ODV spreadsheets',
                 description='ODV generic spreadsheet files (stations, profiles, time series) '
                 'from SeaDataNet and EMODnet Chemistry, with QV:SEADATANET flags.',
                 keywords='SeaDataNet,ODV,EMODnet Chemistry,profile,time series,nutrients'),
        ]
