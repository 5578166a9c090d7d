"""ERDDAP (tabledap and griddap), harvested from one or more configured servers.

ERDDAP is the most common marine data server, so this connector is generic: it knows the
ERDDAP protocol, not a dataset. Configuration (`vre: bdis: erddap:` in pygeoapi-config.yml):

    mirror: DIR      recorded responses; DIR/MANIFEST.json maps each live request URI to its file
    url: URL         the default server when `servers` is absent
    servers:         - url: https://erddap.ifremer.fr/erddap/
                       name: ifremer             (optional; default: the host name)
                       search: Argo              (search/index.csv?searchFor=..., the form
                                                  erddapy sends and the mirror records; same
                                                  table as search/index.json)
                       catalogue: true           (info/index.json; default when nothing else)
                       datasets: [ArgoFloats]    (info/<id>/index.json of each)
                       requests:                 (granules: paths below url, or parts to build)
                         - tabledap/ArgoFloats.nc?...&time>=2004-01-01T00:00:00Z
                         - {dataset: GEBCO_2020, griddap: [elevation], ranges: [[-67, -54],
                            [81, 123]], stride: 10}
                         - {dataset: ArgoFloats, variables: [...], bbox: [w, s, e, n],
                            time: [t0, t1], constraints: {pres: [0, 100]},
                            extra: ['distinct()'], format: csv}

On a mirror without `servers`, every server, info and data request recorded in the manifest is
used (a recorded URI stands for the live call; a request without its file is reported).
Live without `servers` (`vre harvest erddap --url erddap=URL`): that server's catalogue.

What becomes what:
- Level 1: each dataset (catalogue row, search hit, info or data request) is a collection
  `erddap-<server>-<datasetID>`: title, summary, institution, licence, variables as keywords,
  bbox and time from the info's actual_range (else geospatial_*/time_coverage_*), link to the
  dataset page. Its harvested subsets form a second collection `...-subsets` whose extent is
  that of the data held here (the dataset's own extent stays the server's).
- Level 2: each data request (tabledap .nc/.csv/.csvp, griddap .nc) is a granule with its
  extent (from the data, else from the request's constraints) and its ERDDAP URL.
- Tabledap rows with latitude/longitude become Features (collection `erddap-observations`):
  a point per row with every variable as a property (Argo: platform_number, cycle_number,
  pres, temp, psal and their QC); griddap subsets are served as coverages by
  providers.coverage.GridCoverage (e.g. `bathymetry-gebco-2020`), and a whole griddap dataset
  live by `GriddapCoverage` (below).
- Errors: ERDDAP answers `Error { code=...; message="..."; }` as text/plain. A 404 "no
  matching results" is an empty answer, not a failure; other codes are reported with
  ERDDAP's message (listing problems, or the granule's `skipped` reason).

Harvest, not live pass-through: pygeoapi 0.21's `pygeoapi.provider.erddap.TabledapProvider`
asks ERDDAP for `.geoJson` on every request (and once more at construction for the fields,
and pygeoapi builds a provider per request), reads the whole answer to cut offset/limit in
Python (`[offset:limit]`, wrong after the first page), reports numberReturned = limit, keeps
only the last field in get_fields, turns ERDDAP's 404 "no results" and 400 bodies into 500s,
and cannot combine several servers or answer when the server is down. Harvesting keeps
answers fast, paged, searchable together with the other BDIs, and available offline; the
subsets to keep are chosen in the config (the request builders below make ERDDAP URLs from a
bbox, a time interval and constraints). For data too large or too fresh to harvest,
`TabledapFeatures` (below) is a small live pass-through provider for one tabledap dataset that
fixes those faults (ids from the row, paging over a cached answer, ERDDAP errors as 4xx/502);
`GriddapCoverage` does the same for one griddap dataset as OGC API - Coverages.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import time as time_module
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http import HTTPStatus
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pandas as pd
import requests
from pygeoapi.provider.base import (BaseProvider, ProviderGenericError,
                                    ProviderInvalidQueryError, ProviderItemNotFoundError,
                                    ProviderRequestEntityTooLargeError)

from providers.base import (Connector, Granule, GranuleError, GranuleRef, HttpSource,
                            MirrorSource, Source, Stat)

DATA_FORMATS = ('nc', 'csv', 'csvp')
ERROR = re.compile(r'code=(\d+);\s*message="(.*)";', re.S)
CONSTRAINT = re.compile(r'^([A-Za-z_]\w*)(>=|<=|!=|=~|=|<|>)(.*)$')
FIELDS = {'dataset': ('dataset', 'string'), 'platform': ('platform', 'string'),
          'cycle': ('cycle', 'integer'), 'depth': ('depth', 'number'),
          'time': ('time', 'string'), 'parameter': ('parameters', 'string'),
          'granule': ('granule', 'string')}
NO_RESULTS = 'no matching results'
IGNORED_CATEGORIES = ('Identifier', 'Statistics', 'Location', 'Time', 'Quality')


class ErddapError(Exception):
    """An ERDDAP error answer: its HTTP status and ERDDAP's own message."""

    def __init__(self, status: int, message: str):
        super().__init__(f'ERDDAP {status}: {message}')
        self.status, self.message = status, message


def error_message(status: int, body: bytes) -> ErddapError:
    """ERDDAP's `Error { code=..; message=".."; }` body (or the bare status) as an exception."""
    m = ERROR.search(body.decode('utf-8', 'replace'))
    return ErddapError(int(m.group(1)) if m else status,
                       m.group(2).replace('\\"', '"') if m else f'HTTP {status}')


def no_results(err: ErddapError) -> bool:
    return err.status == 404 and NO_RESULTS in err.message.lower()


# --- request builders (ERDDAP syntax) ------------------------------------------------------
def _value(value) -> str:
    """A constraint value as ERDDAP reads it: dates as ISO 8601 UTC, the rest verbatim."""
    if isinstance(value, (date, datetime)):
        from providers.query import iso
        return iso(value)
    return str(value)


def tabledap_request(dataset: str, variables=(), bbox=None, time=None, constraints=None,
                     extra=(), fmt: str = 'nc') -> str:
    """`tabledap/<id>.<fmt>?vars&longitude>=w&...&var>=lo&var<=hi&time>=t0&...&extra`."""
    ranges = [('longitude', bbox[0], bbox[2]), ('latitude', bbox[1], bbox[3])] if bbox else []
    ranges += [(var, lo, hi) for var, (lo, hi) in (constraints or {}).items()]
    ranges += [('time', *(None if t == '..' else t for t in time))] if time else []
    parts = [','.join(variables)]
    for var, lo, hi in ranges:
        parts += [f'{var}>={_value(lo)}'] if lo is not None else []
        parts += [f'{var}<={_value(hi)}'] if hi is not None else []
    return f'tabledap/{dataset}.{fmt}?' + '&'.join(parts + list(extra))


def griddap_request(dataset: str, variables, ranges, stride=1, fmt: str = 'nc') -> str:
    """`griddap/<id>.<fmt>?var[(a):stride:(b)]...` (one range per axis, in the grid's order;
    a range of one value is `[(v)]`; `stride` is one for all axes or one per axis)."""
    strides = stride if isinstance(stride, (list, tuple)) else [stride] * len(ranges)
    dims = ''.join(f'[({_value(r[0])})]' if len(r) == 1 else
                   f'[({_value(r[0])}){f":{s}" if s != 1 else ""}:({_value(r[1])})]'
                   for r, s in zip(ranges, strides))
    return f'griddap/{dataset}.{fmt}?' + ','.join(v + dims for v in variables)


def _request(spec) -> str:
    if isinstance(spec, str):
        return spec.lstrip('/')
    fmt = spec.get('format', 'nc')
    if spec.get('griddap'):
        return griddap_request(spec['dataset'], spec['griddap'], spec['ranges'],
                               spec.get('stride', 1), fmt)
    return tabledap_request(spec['dataset'], spec.get('variables') or (), spec.get('bbox'),
                            spec.get('time'), spec.get('constraints'), spec.get('extra') or (),
                            fmt)


def parse_request(rel: str) -> dict:
    """protocol, dataset, format and constraints of `tabledap/<id>.<fmt>?...`."""
    path, _, query = rel.partition('?')
    protocol, _, leaf = path.partition('/')
    dataset, _, fmt = leaf.rpartition('.')
    query = unquote(query)
    constraints = []
    for part in query.split('&')[1:] if protocol == 'tabledap' else []:
        m = CONSTRAINT.match(part)
        if m:
            constraints.append((m.group(1), m.group(2), m.group(3).strip('"')))
    return {'protocol': protocol, 'dataset': dataset, 'format': fmt, 'query': query,
            'constraints': constraints}


def _key(uri: str) -> str:
    """A request URI as the manifest is looked up: host, path and query, percent-decoded."""
    p = urlsplit(uri)
    return unquote(p.netloc + p.path + ('?' + p.query if p.query else ''))


@dataclass
class Server:
    name: str
    url: str                                   # ends with /erddap/
    catalogue: list[str] = field(default_factory=list)     # listing requests (info, search)
    datasets: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def _split(uri: str) -> tuple[str, str] | None:
    """(server URL, request below it) of an ERDDAP URI."""
    i = uri.find('/erddap/')
    return (uri[:i + 8], uri[i + 8:]) if i >= 0 else None


def _servers_from_manifest(entries: list[dict]) -> list[Server]:
    out: dict[str, Server] = {}
    for e in entries:
        parts = _split(e['uri'])
        if not parts:
            continue
        base, rel = parts
        s = out.setdefault(base, Server(urlsplit(base).netloc, base))
        path = rel.split('?')[0]
        if path in ('info/index.json', 'info/index.csv') or path.startswith('search/'):
            s.catalogue.append(rel)
        elif path.startswith('info/') and path.count('/') == 2:
            s.datasets.append(path.split('/')[1])
        elif path.startswith(('tabledap/', 'griddap/')) and not path.endswith('.ncHeader'):
            s.requests.append(rel)
    return list(out.values())


def read_table(body: bytes, fmt: str) -> pd.DataFrame:
    """An ERDDAP table answer (info, search): JSON {"table": {columnNames, rows}} or CSV."""
    if fmt == 'json':
        t = json.loads(body)['table']
        return pd.DataFrame(t['rows'], columns=t['columnNames'])
    table = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    return table.replace(r'\\n', '\n', regex=True)     # ERDDAP's CSV writes newlines as \n


def read_info(table: pd.DataFrame) -> dict:
    """info/<id>/index: global attributes, per variable its type and attributes; for griddap
    also its axes (`dimension` rows: nValues, averageSpacing, ...; their attributes are under
    `variables`) and the axes of each data variable (a `variable` row's value), in order."""
    glob, variables, dimensions, dims = {}, {}, {}, {}
    for row in table.itertuples(index=False):
        kind, var, attr, dtype, value = (str(v) for v in row[:5])
        if kind == 'variable':
            variables[var] = {'type': dtype}
            if value.strip():
                dims[var] = [d.strip() for d in value.split(',')]
        elif kind == 'dimension':
            dimensions[var] = dict([part.strip().partition('=')[::2]
                                    for part in value.split(',')], type=dtype)
        elif kind == 'attribute' and var == 'NC_GLOBAL':
            glob[attr] = value
        elif kind == 'attribute':
            variables.setdefault(var, {'type': None})[attr] = value
    return {'attributes': glob, 'variables': variables, 'dimensions': dimensions, 'dims': dims}


def _floats(text) -> list[float]:
    try:
        return [float(v) for v in str(text).split(',')]
    except ValueError:
        return []


def _epoch_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def info_extent(info: dict) -> dict:
    """minx/miny/maxx/maxy/tmin/tmax of a dataset from actual_range (else ACDD attributes)."""
    g, v = info['attributes'], info['variables']

    def rng(var, lo_attr, hi_attr):
        got = _floats((v.get(var) or {}).get('actual_range', ''))
        if len(got) == 2:
            return got
        both = _floats(g.get(lo_attr, '')) + _floats(g.get(hi_attr, ''))
        return both if len(both) == 2 else None

    out = {}
    lon = rng('longitude', 'geospatial_lon_min', 'geospatial_lon_max')
    lat = rng('latitude', 'geospatial_lat_min', 'geospatial_lat_max')
    if lon and lat:
        if lon[1] > 180:     # 0..360 datasets: the whole longitude range in -180..180
            lon = [lon[0] - 360, lon[1] - 360] if lon[0] >= 180 else [-180.0, 180.0]
        out.update(minx=max(lon[0], -180), maxx=min(lon[1], 180), miny=max(lat[0], -90),
                   maxy=min(lat[1], 90))    # Argo's -99.999 fill latitude is not an extent
    t = _floats((v.get('time') or {}).get('actual_range', ''))
    if len(t) == 2 and 'since 1970-01-01' in (v['time'].get('units') or ''):
        out.update(tmin=_epoch_iso(t[0]), tmax=_epoch_iso(t[1]))
    elif g.get('time_coverage_start'):
        out.update(tmin=g['time_coverage_start'], tmax=g.get('time_coverage_end'))
    return out


# --- data answers -------------------------------------------------------------------------
def read_nc(data: bytes):
    import xarray as xr
    return xr.open_dataset(io.BytesIO(data))


def tabledap_frame(data: bytes, fmt: str) -> tuple[pd.DataFrame, dict, dict]:
    """(rows, variable attributes, global attributes) of a tabledap .nc, .csv or .csvp answer;
    times as UTC datetimes."""
    if fmt == 'nc':
        with read_nc(data) as ds:
            frame = ds.to_dataframe().reset_index(drop=True)
            attrs = {k: dict(ds[k].attrs) for k in ds.variables}
            return frame, attrs, dict(ds.attrs)
    if fmt == 'csv':      # names, then a row of units
        frame = pd.read_csv(io.BytesIO(data), skiprows=[1])
    elif fmt == 'csvp':   # "name (units)"
        frame = pd.read_csv(io.BytesIO(data))
        frame.columns = [re.sub(r' \([^()]*\)$', '', c) for c in frame.columns]
    else:
        raise GranuleError(f'tabledap .{fmt} answers are not read (ask for .nc, .csv, .csvp)')
    if 'time' in frame:
        frame['time'] = pd.to_datetime(frame['time'], utc=True).dt.tz_localize(None)
    return frame, {}, {}


def _jsonable(value):
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (pd.Timestamp, np.datetime64, datetime)):
        return None if pd.isna(value) else pd.Timestamp(value).strftime('%Y-%m-%dT%H:%M:%SZ')
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace').strip()
    return value.strip() if isinstance(value, str) else value


def _role_column(frame, attrs: dict, info_vars: dict, role: str, fallbacks) -> str | None:
    for name in frame.columns:
        if (attrs.get(name) or info_vars.get(name) or {}).get('cf_role') == role:
            return name
    return next((n for n in fallbacks if n in frame.columns), None)


class ErddapConnector(Connector):
    name = 'erddap'
    title = 'ERDDAP servers (tabledap, griddap)'
    kind = 'in situ tables (tabledap rows) and grids (griddap subsets) from ERDDAP servers'
    default_url = 'https://coastwatch.pfeg.noaa.gov/erddap/'
    license = 'per dataset (see each dataset\'s license attribute)'
    citation = 'Cite each ERDDAP dataset (institution, title, dataset URL)'
    feature_fields = FIELDS
    time_property = 'time'

    # --- listing ----------------------------------------------------------------------------
    def _servers(self, source: Source) -> list[Server]:
        conf = self.options.get('servers')
        if not conf:
            if self._manifest is not None:
                return _servers_from_manifest(self._entries)
            if isinstance(source, MirrorSource):
                raise FileNotFoundError(f'{source.root}/MANIFEST.json (recorded requests)')
            base = source.base if isinstance(source, HttpSource) else self.public_url
            conf = [{'url': base, 'catalogue': True}]
        out = []
        for s in conf:
            url = s['url'].rstrip('/') + '/'
            server = Server(s.get('name') or urlsplit(url).netloc, url,
                            datasets=list(s.get('datasets') or []),
                            requests=[_request(r) for r in s.get('requests') or []])
            if s.get('search'):
                server.catalogue.append('search/index.csv?page=1&itemsPerPage=1000000&searchFor='
                                        + quote(str(s['search'])))
            if s.get('catalogue', not (s.get('search') or server.datasets or server.requests)):
                server.catalogue.append('info/index.json')
            out.append(server)
        return out

    def _load_manifest(self, source: Source) -> None:
        self._manifest, self._entries = None, []
        if isinstance(source, MirrorSource):
            try:
                self._entries = json.loads(source.read('MANIFEST.json'))
            except FileNotFoundError:
                return
            self._manifest = {_key(e['uri']): e for e in self._entries}

    def _entry(self, uri: str) -> dict:
        entry = self._manifest.get(_key(uri))
        if entry is None:
            raise FileNotFoundError(f'{uri} is not recorded in MANIFEST.json')
        return entry

    def _get(self, source: Source, uri: str) -> bytes:
        """An answer's body; ErddapError for ERDDAP's error answers, FileNotFoundError for a
        plain 404 or an unrecorded URI."""
        if self._manifest is not None:
            entry = self._entry(uri)
            status, body = entry.get('status', 200), source.read(entry['file'])
        else:
            session = source.session if isinstance(source, HttpSource) else requests
            r = session.get(uri, timeout=getattr(source, 'timeout', 60))
            status, body = r.status_code, r.content
        if status == 200:
            return body
        err = error_message(status, body)
        if status == 404 and not ERROR.search(body.decode('utf-8', 'replace')):
            raise FileNotFoundError(uri)
        raise err

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        self._load_manifest(source)
        self._datasets: dict[str, dict] = {}     # collection id -> what is known of it
        refs = []
        for server in self._servers(source):
            for rel in server.catalogue:
                self._catalogue(source, server, rel)
            wanted = list(server.datasets)
            for rel in server.requests:
                req = parse_request(rel)
                if req['dataset'] and req['dataset'] not in wanted:
                    wanted.append(req['dataset'])
            for ds in wanted:
                self._info(source, server, ds)
            for rel in server.requests:
                req = parse_request(rel)
                coll = self._dataset(server, req['dataset'])
                coll['protocol'] = req['protocol']
                coll['subsets'] = True
                key = f'{server.name}/{unquote(rel)}'
                refs.append(GranuleRef(
                    id='erddap-' + hashlib.sha1(key.encode()).hexdigest()[:12],
                    path=server.url + rel, collection=coll['id'] + '-subsets',
                    meta=dict(req, server=server.name, server_url=server.url,
                              dataset_collection=coll['id'])))
        return refs

    def _dataset(self, server: Server, ds: str) -> dict:
        cid = f'erddap-{server.name}-{ds}'
        return self._datasets.setdefault(cid, {'id': cid, 'dataset': ds, 'server': server})

    def _catalogue(self, source, server: Server, rel: str) -> None:
        """Datasets of a server's listing (info/index) or search; no results is empty."""
        try:
            table = read_table(self._get(source, server.url + rel),
                               'json' if '.json' in rel.split('?')[0] else 'csv')
        except ErddapError as err:
            if not no_results(err):
                self._listing_problems.append((server.url + rel, str(err)))
            return
        except (FileNotFoundError, ValueError, KeyError) as err:
            self._listing_problems.append((server.url + rel, f'catalogue unreadable: {err}'))
            return
        for row in table.to_dict('records'):
            ds = row.get('Dataset ID')
            if not ds or ds == 'allDatasets':
                continue
            d = self._dataset(server, ds)
            d.update(title=row.get('Title'), summary=row.get('Summary'),
                     institution=row.get('Institution'),
                     protocol='griddap' if row.get('griddap') else 'tabledap',
                     page=(row.get('griddap') or row.get('tabledap') or '') + '.html'
                     if row.get('griddap') or row.get('tabledap') else None)

    def _info(self, source, server: Server, ds: str) -> None:
        d = self._dataset(server, ds)
        for fmt in ('json', 'csv'):
            uri = f'{server.url}info/{ds}/index.{fmt}'
            if self._manifest is not None and _key(uri) not in self._manifest:
                continue     # a mirror holds the info in one of the two formats, or none
            try:
                d['info'] = read_info(read_table(self._get(source, uri), fmt))
            except FileNotFoundError:
                continue
            except (ErddapError, ValueError, KeyError) as err:
                self._listing_problems.append((uri, f'dataset info unreadable: {err}'))
            return

    # --- granules ---------------------------------------------------------------------------
    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        if self._manifest is not None:
            return source.stat(self._entry(ref.path)['file'])
        return Stat(None, None, None)    # a data request has no validator; the checksum decides

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        try:
            return self._get(source, ref.path)
        except ErddapError as err:
            if no_results(err):
                return b''
            raise GranuleError(str(err)) from None

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        m = ref.meta
        d = self._datasets.get(m['dataset_collection']) or {}
        info_vars = (d.get('info') or {}).get('variables') or {}
        record = {'id': ref.id, 'bdi': self.name, 'collection': ref.collection,
                  'path': ref.path, 'url': ref.path, 'type': f"{m['protocol']}-{m['format']}",
                  'title': f"{m['dataset']} ({m['server']}) {m['protocol']} .{m['format']} "
                           'subset',
                  'license': (d.get('info') or {}).get('attributes', {}).get('license')
                  or self.license, 'citation': self._citation(d),
                  'extra': {'server': m['server_url'], 'dataset': m['dataset'],
                            'query': m['query']}}
        if m['format'] not in DATA_FORMATS:
            raise GranuleError(f"{m['protocol']} .{m['format']} answers are not read "
                               '(ask for .nc, .csv or .csvp)')
        if not data:
            record['extra']['rows'] = 0
            return Granule(record, [])
        if m['protocol'] == 'griddap':
            return Granule(self._grid_record(record, data, m['format']), [])
        try:
            frame, attrs, glob = tabledap_frame(data, m['format'])
        except GranuleError:
            raise
        except Exception as err:
            raise GranuleError(f'not a tabledap .{m["format"]} answer: {err}') from None
        obs, problems = self._rows(ref, frame, attrs, glob, info_vars)
        record.update(_extent_of(frame))
        record.update(_constraint_box(m['constraints'], record))
        params = _parameters(frame, {**info_vars, **attrs})
        platforms = sorted({o['platform'] for o in obs if o['platform']})
        record.update(parameters=' '.join(params) or None,
                      platform=platforms[0] if len(platforms) == 1 else None)
        record['extra'].update(rows=len(frame), platforms=platforms[:100] or None,
                               features=len(obs))
        if len(frame) and not obs:
            record['extra']['note'] = 'no latitude/longitude in the answer: no Features'
        return Granule(record, obs, problems)

    def _grid_record(self, record: dict, data: bytes, fmt: str) -> dict:
        if fmt != 'nc':
            raise GranuleError('griddap answers are read as .nc only')
        from providers.coverage import _role
        try:
            ds = read_nc(data)
        except Exception as err:
            raise GranuleError(f'not a griddap .nc answer: {err}') from None
        with ds:
            roles = {_role(n, ds[n]): n for n in ds.dims if n in ds.coords}
            for r, (lo, hi) in (('x', ('minx', 'maxx')), ('y', ('miny', 'maxy'))):
                if r in roles:
                    vals = ds[roles[r]].values
                    record[lo], record[hi] = float(vals.min()), float(vals.max())
            if 't' in roles and np.issubdtype(ds[roles['t']].dtype, np.datetime64):
                t = ds[roles['t']].values
                record['tmin'], record['tmax'] = _jsonable(t.min()), _jsonable(t.max())
            record['parameters'] = ' '.join(ds.data_vars) or None
            record['extra'].update(shape={k: int(v) for k, v in ds.sizes.items()})
        return record

    def _rows(self, ref, frame, attrs, glob, info_vars):
        if 'longitude' not in frame or 'latitude' not in frame:
            return [], []
        platform = _role_column(frame, attrs, info_vars, 'trajectory_id',
                                ('platform_number', 'platform', 'station', 'trajectory'))
        platform = platform or _role_column(frame, attrs, info_vars, 'timeseries_id', ())
        cycle = _role_column(frame, attrs, info_vars, 'profile_id', ('cycle_number',))
        zname = glob.get('cdm_altitude_proxy') or next(
            (n for n in ('depth', 'pres') if n in frame), None)
        params = ' '.join(_parameters(frame, {**info_vars, **attrs})) or None
        obs, problems = [], []
        for i, row in enumerate(frame.to_dict('records')):
            props = {k: _jsonable(v) for k, v in row.items()}
            lon, lat = props.get('longitude'), props.get('latitude')
            if lon is None or lat is None:
                problems.append(f'row {i}: no latitude/longitude')
                continue
            cyc = props.get(cycle) if cycle else None
            obs.append({'id': f'{ref.id}-{i}', 'bdi': self.name,
                        'collection': 'erddap-observations', 'granule': ref.id,
                        'time': props.get('time'), 'lon': lon, 'lat': lat,
                        'platform': str(props[platform]) if platform and
                        props.get(platform) is not None else None,
                        'cycle': int(cyc) if isinstance(cyc, (int, float)) else None,
                        'dataset': ref.meta['dataset'], 'kind': 'tabledap-row',
                        'depth': props.get(zname) if isinstance(props.get(zname), float)
                        else None, 'parameters': params,
                        'props': dict(props, dataset_url=ref.meta['server_url'] + 'tabledap/'
                                      + ref.meta['dataset'] + '.html')})
        return obs, problems

    def _citation(self, d: dict) -> str:
        if not d:
            return self.citation
        g = (d.get('info') or {}).get('attributes') or {}
        who = g.get('institution') or d.get('institution') or d['server'].name
        title = g.get('title') or d.get('title') or d['dataset']
        return f"{who}: {title}. ERDDAP dataset {d['dataset']}, {d['server'].url}"

    # --- collections ------------------------------------------------------------------------
    def collections(self) -> list[dict]:
        rows = []
        for cid, d in getattr(self, '_datasets', {}).items():
            info = d.get('info') or {}
            g = info.get('attributes') or {}
            server, protocol = d['server'], d.get('protocol') or 'tabledap'
            variables = [v for v in info.get('variables') or {}]
            keywords = ['ERDDAP', protocol, d['dataset']] + variables
            title = g.get('title') or d.get('title') or d['dataset']
            page = d.get('page') or f"{server.url}{protocol}/{d['dataset']}.html"
            base = {'bdi': self.name, 'license': g.get('license') or self.license,
                    'citation': self._citation(d), 'url': page}
            rows.append(dict(base, id=cid, type='dataset', title=title,
                             description=g.get('summary') or d.get('summary'),
                             keywords=','.join(keywords), **info_extent(info) if info else {},
                             extra={'server': server.url, 'dataset': d['dataset'],
                                    'protocol': protocol,
                                    'institution': g.get('institution') or d.get('institution'),
                                    'cdm_data_type': g.get('cdm_data_type'),
                                    'infoUrl': g.get('infoUrl')}))
            if d.get('subsets'):
                rows.append(dict(base, id=cid + '-subsets', type='subsets',
                                 title=f'{title}: subsets harvested from {server.name}',
                                 description=f"{protocol} requests of ERDDAP dataset "
                                             f"{d['dataset']} kept in this VRE (level-2 "
                                             'granules; tabledap rows as Features)',
                                 keywords=','.join(keywords)))
        return rows


def _parameters(frame: pd.DataFrame, attrs: dict) -> list[str]:
    """Measured variables: numeric columns other than position, time, identifiers, counters
    and QC/error ones (by name and by ERDDAP's ioos_category)."""
    skip = {'longitude', 'latitude', 'time'}
    return [c for c in frame.columns if c not in skip and not c.endswith(('_qc', '_error'))
            and pd.api.types.is_numeric_dtype(frame[c]) and 'cf_role' not in attrs.get(c, {})
            and attrs.get(c, {}).get('ioos_category') not in IGNORED_CATEGORIES]


def _extent_of(frame: pd.DataFrame) -> dict:
    out = {}
    if 'longitude' in frame and frame['longitude'].notna().any():
        out.update(minx=float(frame['longitude'].min()), maxx=float(frame['longitude'].max()),
                   miny=float(frame['latitude'].min()), maxy=float(frame['latitude'].max()))
    if 'time' in frame and frame['time'].notna().any():
        out.update(tmin=_jsonable(frame['time'].min()), tmax=_jsonable(frame['time'].max()))
    return out


def _constraint_box(constraints, record: dict) -> dict:
    """The request's own longitude/latitude/time bounds where the answer has none."""
    names = {('longitude', '>='): 'minx', ('longitude', '<='): 'maxx',
             ('latitude', '>='): 'miny', ('latitude', '<='): 'maxy',
             ('time', '>='): 'tmin', ('time', '<='): 'tmax'}
    out = {}
    for var, op, value in constraints:
        col = names.get((var, op))
        if col is None or record.get(col) is not None:
            continue
        try:
            out[col] = _epoch_iso(float(value)) if var == 'time' else float(value)
        except ValueError:
            if var == 'time':
                from providers.query import iso
                try:
                    out[col] = iso(value)
                except Exception:    # ERDDAP's own forms (now-1day, ...) give no bound here
                    pass
    return out


# --- live pass-through (pygeoapi feature provider) ----------------------------------------
class UpstreamError(ProviderGenericError):
    """The ERDDAP server is unreachable or failed: 502, said plainly."""
    http_status_code = HTTPStatus.BAD_GATEWAY
    ogc_exception_code = 'BadGateway'


_LIVE: dict[str, tuple[float, object]] = {}     # request URL -> (when, answer), per process
_LIVE_MAX = 32
_LIVE_BYTES = 16 << 20                          # larger raw answers are not kept
_INFO: dict[str, tuple[float, object]] = {}     # info URL -> (when, info or the error)
INFO_RETRY = 30


def _num(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


class _LiveDataset(BaseProvider):
    """One ERDDAP dataset asked live (`data`: <server>/<protocol>/<id>): its info read once
    per process, answers kept `cache_seconds` (option), ERDDAP's errors as 4xx/502."""
    protocol = 'tabledap'

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.opts = provider_def.get('options') or {}
        base, _, ds = str(self.data).rstrip('/').rpartition(f'/{self.protocol}/')
        self.server, self.dataset = base + '/', ds
        self.timeout = float(self.opts.get('timeout', 60))

    def info(self) -> dict:
        """info/<id>/index.json, once per process; a failure is retried after INFO_RETRY s
        (pygeoapi builds a provider per request: a down server is not asked every time)."""
        url = f'{self.server}info/{self.dataset}/index.json'
        hit = _INFO.get(url)
        if hit and not isinstance(hit[1], Exception):
            return hit[1]
        if hit and time_module.monotonic() - hit[0] < INFO_RETRY:
            raise hit[1]
        try:
            info = self._fetch(url, lambda body: read_info(read_table(body, 'json')))
            if info is None:
                raise UpstreamError(user_msg=f'ERDDAP {self.server} has no dataset '
                                             f'{self.dataset!r}')
        except ProviderGenericError as err:
            _INFO[url] = (time_module.monotonic(), err)
            raise
        _INFO[url] = (time_module.monotonic(), info)
        return info

    def _cached(self, url, parse):
        hit = _LIVE.get(url)
        if hit and time_module.monotonic() - hit[0] < float(self.opts.get('cache_seconds', 300)):
            return hit[1]
        value = self._fetch(url, parse)
        if len(_LIVE) >= _LIVE_MAX:
            _LIVE.pop(next(iter(_LIVE)))
        if not isinstance(value, bytes) or len(value) <= _LIVE_BYTES:
            _LIVE[url] = (time_module.monotonic(), value)
        return value

    def _fetch(self, url, parse):
        """parse(body) of a 200; None for ERDDAP's 404 "no results"; else 400 or 502."""
        try:
            r = requests.get(url, timeout=self.timeout)
        except requests.RequestException as err:
            raise UpstreamError(user_msg=f'ERDDAP {self.server} unreachable: '
                                f'{type(err).__name__}') from None
        if r.status_code == 200:
            try:
                return parse(r.content)
            except ProviderGenericError:
                raise
            except Exception as err:
                raise UpstreamError(user_msg=f'ERDDAP {self.server} answered what cannot be '
                                    f'read here: {type(err).__name__}') from None
        err = error_message(r.status_code, r.content)
        if err.status == 400:
            raise ProviderInvalidQueryError(msg=str(err), user_msg=str(err))
        if not no_results(err):
            raise UpstreamError(user_msg=str(err))
        return None


class TabledapFeatures(_LiveDataset):
    """Features answered live by one tabledap dataset (`data`: <server>/tabledap/<id>).

    bbox -> longitude/latitude constraints, datetime -> time constraints (seconds since 1970),
    properties -> `var="value"`; options `variables`, `constraints` (fixed ranges), `extra`
    (e.g. distinct(), orderBy), `cache_seconds` (an answer is reused for the next pages),
    `timeout`. ERDDAP does not page: the answer is read whole (.nc) and cut. Its 404 "no
    results" is an empty collection, its 400 a 400 with ERDDAP's message, a server down a 502.
    Item ids are a checksum of the row: /items/{id} finds rows of the answers this process
    holds (a live ERDDAP has no row identifiers)."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.id_field = 'id'
        self._fields = self.get_fields()

    def get_fields(self):
        """From the dataset's info (fetched once per process); the declared variables as text
        while the server cannot be reached."""
        try:
            info = self.info()
        except Exception:
            return {v: {'type': 'string'} for v in self.opts.get('variables') or ()}
        kinds = {'String': 'string', 'char': 'string', 'double': 'number', 'float': 'number'}
        wanted = self.opts.get('variables') or list(info['variables'])
        types = {v: info['variables'].get(v, {}).get('type') for v in wanted}
        return {v: {'type': kinds.get(types[v], 'integer' if types[v] else 'string'),
                    **({'format': 'date-time'} if v == 'time' else {})} for v in wanted}

    def request_url(self, bbox=None, datetime_=None, properties=()) -> str:
        """The tabledap .nc request for an OGC API query."""
        from providers.query import time_range
        if bbox and len(bbox) != 4:
            raise ProviderInvalidQueryError(user_msg='bbox needs 4 numbers here')
        rng = time_range(datetime_)
        period = [None if t is None else repr(pd.Timestamp(t).timestamp()) for t in rng] \
            if rng else None
        extra = [f'{k}={v}' if _is_number(v) and self.fields.get(k, {}).get('type') != 'string'
                 else f'{k}="{v}"' for k, v in properties]
        return self.server + tabledap_request(
            self.dataset, self.opts.get('variables') or (),
            [_num(v) for v in bbox] if bbox else None, period, self.opts.get('constraints'),
            extra + list(self.opts.get('extra') or ()))

    def _features(self, url) -> list[dict]:
        def parse(body):
            frame, _, _ = tabledap_frame(body, 'nc')
            out = []
            for row in frame.to_dict('records'):
                props = {k: _jsonable(v) for k, v in row.items()}
                fid = hashlib.sha1(json.dumps(props, sort_keys=True).encode()).hexdigest()[:16]
                out.append({'type': 'Feature', 'id': fid, 'properties': props,
                            'geometry': {'type': 'Point', 'coordinates': [
                                props.get('longitude'), props.get('latitude')]}})
            return out
        return self._cached(url, parse) or []

    def query(self, offset=0, limit=10, resulttype='results', bbox=[], datetime_=None,
              properties=[], sortby=[], select_properties=[], skip_geometry=False, q=None,
              filterq=None, **kwargs):
        if sortby or filterq is not None or q:
            raise ProviderInvalidQueryError(
                user_msg='sortby, filter and q are not passed on to ERDDAP here')
        feats = self._features(self.request_url(bbox, datetime_, properties))
        page = [] if resulttype == 'hits' else feats[offset:offset + limit]
        if select_properties or skip_geometry:
            page = [dict(f, geometry=None if skip_geometry else f['geometry'],
                         properties={k: v for k, v in f['properties'].items()
                                     if not select_properties or k in select_properties})
                    for f in page]
        return {'type': 'FeatureCollection', 'features': page, 'numberMatched': len(feats),
                'numberReturned': len(page)}

    def get(self, identifier, **kwargs):
        for _, value in list(_LIVE.values()):
            for f in value if isinstance(value, list) else ():
                if f['id'] == str(identifier):
                    return f
        raise ProviderItemNotFoundError(
            msg='not in a held answer', user_msg=f'no item {identifier!r} in the answers this '
            'server process holds: query the collection first, on the same connection (ERDDAP '
            'rows have no identifiers)')


# --- live griddap (pygeoapi coverage provider) ----------------------------------------------
AXIS_TYPES = {'lon': 'x', 'lat': 'y', 'time': 't', 'height': 'z', 'geoz': 'z'}


@dataclass
class GridAxis:
    """A griddap axis as its info gives it: `n` values from `first` to `last` (descending
    when first > last, as ERDDAP often stores latitude; time in seconds since 1970)."""
    name: str
    role: str | None
    first: float
    last: float
    n: int

    @property
    def step(self) -> float:
        return (self.last - self.first) / (self.n - 1) if self.n > 1 else 0.0

    @property
    def lo(self) -> float:
        return min(self.first, self.last)

    @property
    def hi(self) -> float:
        return max(self.first, self.last)

    def index(self, value: float) -> int:
        """ERDDAP's closest index of a value."""
        return 0 if self.n == 1 else int(min(max(round((value - self.first) / self.step), 0),
                                             self.n - 1))

    def count(self, rng: tuple) -> int:
        """Values ERDDAP answers for a constraint (value,) or (start, stop) of this axis."""
        if len(rng) == 1:
            return 1
        num = (lambda v: pd.Timestamp(v).timestamp()) if self.role == 't' else float
        return abs(self.index(num(rng[1])) - self.index(num(rng[0]))) + 1

    def text(self, value: float) -> str:
        """A value as a constraint: ISO time, else degrees etc. (2 decimals when exact, the
        form erddapy/argopy send)."""
        if self.role == 't':
            return _epoch_iso(value)
        short = f'{value:.2f}'
        return short if float(short) == value else repr(float(value))


def _axis_role(name: str, attrs: dict) -> str | None:
    from providers.coverage import ALIASES
    kind = str(attrs.get('_CoordinateAxisType') or '').lower()
    axis = str(attrs.get('axis') or '').lower()
    return AXIS_TYPES.get(kind) or (axis if axis in ('x', 'y', 'z', 't') else None) or next(
        (r for r, names in ALIASES.items() if name.lower() in names), None)


def grid_axes(info: dict) -> list[GridAxis]:
    """The axes of a griddap info, in the grid's order (its `dimension` rows): actual_range,
    nValues, and the sign of averageSpacing for the direction."""
    out = []
    for name, dim in (info.get('dimensions') or {}).items():
        attrs = info['variables'].get(name) or {}
        rng, n = _floats(attrs.get('actual_range', '')), _floats(dim.get('nValues', ''))
        if len(rng) != 2 or len(n) != 1:
            raise UpstreamError(user_msg=f'the ERDDAP info gives no actual_range/nValues of '
                                         f'the axis {name}')
        first, last = rng
        spacing = _floats(dim.get('averageSpacing', ''))     # none for time ("1 day 3h")
        if spacing and (spacing[0] < 0) != (first > last):
            first, last = last, first
        out.append(GridAxis(name, _axis_role(name, attrs), first, last, int(n[0])))
    return out


def _stride(nx: int, ny: int, other: int, max_cells: int) -> int:
    """The smallest stride on x and y that keeps ceil(nx/s) * ceil(ny/s) * other cells (other:
    the time/depth steps times the variables) within max_cells."""
    if other > max_cells:
        raise ProviderRequestEntityTooLargeError(
            f'{other} values asked for a single cell, at most {max_cells}: ask fewer times, '
            'depths or properties')
    s = max(1, int((nx * ny * other / max_cells) ** 0.5))
    while -(-nx // s) * -(-ny // s) * other > max_cells:
        s += 1
    return s


def _netcdf_answer(body: bytes) -> bytes:
    read_nc(body).close()        # not NetCDF: an upstream fault, not kept
    return body


class GriddapCoverage(_LiveDataset):
    """OGC API - Coverages answered live by one griddap dataset (`data`: <server>/griddap/<id>).

    The info (read once per process) gives the axes, extent, resolution and fields. A query
    (bbox, subset on the axes, datetime, properties = variables) is one griddap .nc request,
    `var[(start):stride:(stop)]` per axis in the grid's order (high to low on a descending
    axis), strided on lon/lat so that about `max_cells` (option) values come back rather than
    a refusal; the answer is served as GridCoverage serves a file (CoverageJSON or NetCDF).
    Without datetime the latest time step is asked (`(last)`; a live grid grows). Options
    `variables`, `max_cells`, `cache_seconds`, `timeout`; errors as TabledapFeatures'."""
    protocol = 'griddap'

    def __init__(self, provider_def):
        from providers.coverage import ALIASES
        super().__init__(provider_def)
        self.max_cells = int(self.opts.get('max_cells', 1_000_000))
        self.grid_axes, self.problem = [], None
        self.axes = [n for r in 'xyzt' for n in ALIASES[r]]
        self._coverage_properties = {'width': 0, 'height': 0, 'resx': None, 'resy': None}
        try:
            info = self.info()
            axes = grid_axes(info)
        except ProviderGenericError as err:      # listed all the same; queries say why
            self.problem = err
            return
        roles = {a.role: a for a in axes if a.role}
        if 'x' not in roles or 'y' not in roles:
            self.problem = UpstreamError(user_msg=f'{self.dataset} has no longitude/latitude '
                                                  'axes')
            return
        self.grid_axes, self.roles = axes, roles
        self.axes = sorted({a.name for a in axes} | {n for r in roles for n in ALIASES[r]})
        names = [a.name for a in axes]
        wanted = self.opts.get('variables') or list(info['dims'])
        self._fields = {v: {'type': 'number',
                            'title': info['variables'][v].get('long_name', v),
                            'x-ogc-unit': info['variables'][v].get('units', '')}
                        for v in wanted if info['dims'].get(v) == names}
        x, y = roles['x'], roles['y']
        props = {'width': x.n, 'height': y.n, 'resx': abs(x.step) or None,
                 'resy': abs(y.step) or None, 'bbox': [x.lo, y.lo, x.hi, y.hi]}
        if 't' in roles:
            props['time_range'] = [_epoch_iso(roles['t'].lo), _epoch_iso(roles['t'].hi)]
        if 'z' in roles:
            props['uad'] = {'vertical': {'interval': [[roles['z'].lo, roles['z'].hi]],
                                         'name': roles['z'].name}}
        self._coverage_properties = props

    def get_fields(self):
        return self._fields

    def query(self, properties=None, subsets=None, bbox=None, datetime_=None, format_='json',
              **kwargs):
        from providers.coverage import NoCells, Unavailable, answer, grid_of
        if self.problem:
            raise self.problem
        names = list(properties or self.fields)
        body = self._cached(self.request_url(names, subsets, bbox, datetime_), _netcdf_answer)
        if body is None:
            raise NoCells(user_msg=f'ERDDAP has no data of {self.dataset} there')
        with read_nc(body) as ds:
            try:
                grid = grid_of(ds)
            except Unavailable:
                raise UpstreamError(user_msg='the griddap answer has no longitude/latitude '
                                             'axes') from None
            return answer(grid, ds[names], names, format_)

    def request_url(self, names=None, subsets=None, bbox=None, datetime_=None) -> str:
        """The griddap .nc request of a coverage query."""
        from providers.coverage import with_bbox_and_datetime
        names = list(names or self.fields)
        wanted = with_bbox_and_datetime(self._by_role(subsets or {}), bbox, datetime_,
                                        self.roles)
        ranges = [self._range(a, wanted.get(a.role)) for a in self.grid_axes]
        count = {a.name: a.count(r) for a, r in zip(self.grid_axes, ranges)}
        x, y = self.roles['x'].name, self.roles['y'].name
        other = len(names) * int(np.prod([n for k, n in count.items() if k not in (x, y)]))
        s = _stride(count[x], count[y], other, self.max_cells)
        strides = [s if a.name in (x, y) else 1 for a in self.grid_axes]
        return self.server + griddap_request(self.dataset, names, ranges, strides)

    def _by_role(self, subsets: dict) -> dict:
        from providers.coverage import ALIASES
        from providers.query import bad
        wanted = {}
        for name, values in subsets.items():
            a = next((a for a in self.grid_axes if name == a.name or
                      (a.role and name.lower() in ALIASES[a.role])), None)
            if a is None or a.role is None:
                raise bad(f'this grid has no axis {name!r}; axes: '
                          f'{", ".join(a.name for a in self.grid_axes)}')
            if a.role in wanted:
                raise bad(f'axis {name!r} is subset twice')
            if not 1 <= len(values) <= 2:
                raise bad(f'subset {name} needs one value or low:high')
            wanted[a.role] = values
        return wanted

    def _range(self, a: GridAxis, values) -> tuple:
        """The constraint of one axis: (value,) for one cell, else (start, stop) in the axis'
        order, clipped to the axis where the ask goes beyond half a cell."""
        from providers.coverage import NoCells
        from providers.query import bad, time_range
        if values is None:
            return ('last',) if a.role == 't' else (a.text(a.first), a.text(a.last))
        if a.role == 't':
            text = values if isinstance(values, str) else '/'.join(
                str(v).strip('"') for v in values)
            start, end = time_range(text)
            nums = [pd.Timestamp(t).timestamp() if t else None for t in (start, end)]
            nums = nums[:1] if start and start == end else \
                [a.lo if nums[0] is None else nums[0], a.hi if nums[1] is None else nums[1]]
        else:
            try:
                nums = [float(v) for v in values]
            except (TypeError, ValueError):
                raise bad(f'subset {a.name} needs numbers, got {values!r}') from None
            if any(np.isnan(nums)):
                raise bad(f'subset {a.name} needs numbers, got {values!r}')
        half = abs(a.step) / 2 * (1 + 1e-9)
        lo, hi = nums[0], nums[-1]
        if lo > hi:
            raise bad(f'subset {a.name}: low is above high')
        if hi < a.lo - half or lo > a.hi + half:
            raise NoCells(user_msg=f'{a.name} {a.text(lo)}..{a.text(hi)} is outside the grid '
                                   f'({a.text(a.lo)}..{a.text(a.hi)})')
        if len(nums) == 1:
            return (a.text(lo),)
        lo, hi = (a.lo if lo < a.lo - half else lo), (a.hi if hi > a.hi + half else hi)
        return (a.text(lo), a.text(hi)) if a.first <= a.last else (a.text(hi), a.text(lo))
