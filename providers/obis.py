"""OBIS (API v3 JSON) and EurOBIS / EMODnet Biology (Darwin Core archives).

OBIS: a granule is one occurrence result page of an API v3 query (`queries` option, or every
recorded /v3/occurrence search of a mirror's api_v3/MANIFEST.json, which maps live URIs to
files); /v3/dataset responses become level-1 collection records.
EurOBIS: a granule is one DwC-A (event core + occurrence + extended measurement-or-fact):
a folder of tables on a mirror, or the IPT's archive.do?r=<resource> zip live.
Taxa carry their WoRMS AphiaID (OBIS aphiaID, or the scientificNameID LSID).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from providers.base import (Connector, Granule, GranuleError, GranuleRef, MirrorSource, Source,
                            Stat)

OBIS_CITATION = ('OBIS (2025) Ocean Biodiversity Information System. Intergovernmental '
                 'Oceanographic Commission of UNESCO. https://obis.org (cite each dataset too)')
DWC_KEEP = ('occurrenceID', 'eventID', 'scientificNameID', 'basisOfRecord', 'individualCount',
            'occurrenceStatus', 'lifeStage', 'sex', 'vernacularName', 'kingdom', 'phylum',
            'class', 'order', 'family', 'genus', 'minimumDepthInMeters', 'maximumDepthInMeters',
            'institutionCode', 'collectionCode', 'datasetName', 'license', 'rightsHolder',
            'flags', 'dropped', 'absence', 'sst', 'sss', 'bathymetry', 'shoredistance',
            'eventRemarks', 'behavior', 'occurrenceRemarks')


# Darwin Core occurrences as Features: public property -> (index column, JSON type)
DWC_FIELDS = {
    'scientificName': ('taxon', 'string'), 'aphiaID': ('aphia_id', 'integer'),
    'datasetID': ('dataset', 'string'), 'basisOfRecord': ('kind', 'string'),
    'depth': ('depth', 'number'), 'eventDate': ('time', 'string'), 'granule': ('granule', 'string')}


def event_time(value: str | None) -> str | None:
    """A DwC eventDate (date, date-time or interval) as the index time: its start, UTC."""
    from providers.query import iso
    if not value:
        return None
    first = str(value).split('/')[0].strip()
    try:
        out = iso(first)
    except Exception:
        return None
    return out


def aphia_of(lsid: str | None) -> int | None:
    """WoRMS AphiaID from urn:lsid:marinespecies.org:taxname:<id>."""
    if lsid and 'marinespecies.org:taxname:' in lsid:
        tail = lsid.rsplit(':', 1)[-1]
        return int(tail) if tail.isdigit() else None
    return None


def _uri_key(uri: str) -> str:
    parts = urlsplit(uri)
    return parts.path.lstrip('/') + ('?' + parts.query if parts.query else '')


class ObisConnector(Connector):
    name = 'obis'
    title = 'OBIS (Ocean Biodiversity Information System)'
    kind = 'species occurrences (Darwin Core) with measurements, WoRMS taxa'
    default_url = 'https://api.obis.org/'
    license = 'per record (CC0, CC-BY 4.0, CC-BY-NC 4.0)'
    citation = OBIS_CITATION
    feature_fields = DWC_FIELDS
    time_property = 'eventDate'

    def _manifest(self, source: Source) -> dict[str, str] | None:
        if not isinstance(source, MirrorSource):
            return None
        try:
            entries = json.loads(source.read('api_v3/MANIFEST.json'))
        except FileNotFoundError:
            return None
        return {_uri_key(e['uri']): 'api_v3/' + e['file'] for e in entries
                if e.get('status', 200) == 200}

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        manifest = self._manifest(source)
        queries = self.options.get('queries')
        if queries is None:
            if manifest is None:
                raise FileNotFoundError('no OBIS queries configured (vre.bdis.obis.queries) '
                                        'and no api_v3/MANIFEST.json at the source')
            queries = [k for k in manifest if k.startswith('v3/occurrence?')]
        dataset_keys = self.options.get('datasets') or (
            [k for k in manifest if k.startswith('v3/dataset')] if manifest else [])
        self._datasets = []
        for key in dataset_keys:
            try:
                body = json.loads(source.read(manifest[key] if manifest else key))
                self._datasets += body.get('results', [body]) if isinstance(body, dict) else []
            except (FileNotFoundError, KeyError, ValueError) as err:
                self._listing_problems.append((key, f'dataset record unreadable: {err}'))
        refs = []
        for key in queries:
            path = manifest.get(key, 'missing:' + key) if manifest else key
            gid = 'obis-' + hashlib.sha1(key.encode()).hexdigest()[:12]
            refs.append(GranuleRef(id=gid, path=path, collection='obis-occurrences',
                                   meta={'query': key}))
        return refs

    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        if ref.path.startswith('missing:'):
            raise FileNotFoundError(ref.path)
        return source.stat(ref.path)

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        try:
            body = json.loads(data)
        except ValueError as err:
            raise GranuleError(f'not JSON: {err}') from None
        if not isinstance(body, dict) or not isinstance(body.get('results'), list):
            raise GranuleError('not an OBIS occurrence result ({"total", "results"})')
        obs, problems = [], []
        for n, rec in enumerate(body['results']):
            lon, lat = rec.get('decimalLongitude'), rec.get('decimalLatitude')
            if not isinstance(lon, (int, float)) or not isinstance(lat, (int, float)):
                problems.append(f'result {n} ({rec.get("id")}): no coordinates')
                continue
            props = {k: rec[k] for k in DWC_KEEP if rec.get(k) not in (None, '')}
            props.update(eventDate=rec.get('eventDate'), mof=rec.get('mof') or None,
                         query=ref.meta['query'], url=self.public_url + ref.meta['query'])
            obs.append(_occ(self.name, ref.id, rec.get('id') or f'{ref.id}-{n}', lon, lat,
                            rec.get('eventDate'), rec.get('scientificName'),
                            rec.get('aphiaID'), rec.get('dataset_id') or rec.get('datasetID'),
                            rec.get('basisOfRecord'), rec.get('depth'),
                            {k: v for k, v in props.items() if v is not None}))
        record = _granule_record(self, ref, obs, f"OBIS API v3 {ref.meta['query']}",
                                 'api-result', self.public_url + ref.meta['query'])
        record['extra'] = {'total': body.get('total'), 'query': ref.meta['query']}
        return Granule(record, obs, problems)

    def collections(self) -> list[dict]:
        rows = [{'id': 'obis-occurrences', 'bdi': self.name, 'type': 'dataset',
                 'title': 'OBIS occurrences (harvested API v3 queries)',
                 'description': 'Darwin Core occurrence records served by the OBIS API v3',
                 'keywords': 'OBIS,biodiversity,occurrence,Darwin Core,WoRMS',
                 'license': self.license, 'citation': self.citation, 'url': self.public_url}]
        for d in getattr(self, '_datasets', []):
            ext = _wkt_bounds(d.get('extent'))
            stats = d.get('statistics') or {}
            rows.append({'id': 'obis-dataset-' + d['id'], 'bdi': self.name, 'type': 'dataset',
                         'title': d.get('title'), 'description': d.get('abstract'),
                         'keywords': ','.join(k.get('keyword', '') if isinstance(k, dict)
                                              else str(k) for k in d.get('keywords') or []),
                         'license': d.get('intellectualrights'), 'citation': d.get('citation'),
                         'url': d.get('url') or f"https://obis.org/dataset/{d['id']}",
                         **dict(zip(('minx', 'miny', 'maxx', 'maxy'), ext or ())),
                         'extra': {'records': d.get('records') or stats.get('Occurrence')}})
        return rows


def _wkt_bounds(wkt: str | None):
    if not wkt:
        return None
    try:
        from shapely import wkt as swkt
        return swkt.loads(wkt).bounds
    except Exception:
        return None


def _occ(bdi, granule, oid, lon, lat, date, taxon, aphia, dataset, kind, depth, props):
    return {'id': f'{bdi}-{oid}', 'bdi': bdi, 'collection': f'{bdi}-occurrences',
            'granule': granule, 'time': event_time(date), 'lon': float(lon), 'lat': float(lat),
            'taxon': taxon, 'aphia_id': aphia, 'dataset': dataset, 'kind': kind,
            'depth': depth if isinstance(depth, (int, float)) else None, 'props': props}


def _granule_record(conn: Connector, ref: GranuleRef, obs: list[dict], title, type_, url):
    lons = [o['lon'] for o in obs]
    lats = [o['lat'] for o in obs]
    times = sorted(o['time'] for o in obs if o['time'])
    taxa = sorted({o['taxon'] for o in obs if o['taxon']})
    return {'id': ref.id, 'bdi': conn.name, 'collection': ref.collection, 'path': ref.path,
            'url': url, 'title': title, 'type': type_,
            'minx': min(lons, default=None), 'maxx': max(lons, default=None),
            'miny': min(lats, default=None), 'maxy': max(lats, default=None),
            'tmin': times[0] if times else None, 'tmax': times[-1] if times else None,
            'taxon': ','.join(taxa)[:4000] or None, 'license': conn.license,
            'citation': conn.citation}


# --- EurOBIS: Darwin Core archives ------------------------------------------------------
TABLES = ('event', 'occurrence', 'emof', 'extendedmeasurementorfact', 'measurementorfact')


def read_table(text: str, name: str, problems: list[str]) -> list[dict]:
    """A DwC-A table (tab-separated, header row); rows with a wrong field count are reported."""
    rows = csv.reader(io.StringIO(text), delimiter='\t', quoting=csv.QUOTE_NONE)
    header = next(rows, None)
    if not header:
        return []
    out = []
    for n, fields in enumerate(rows, start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            problems.append(f'{name} line {n}: {len(fields)} fields, header has {len(header)}; '
                            'row skipped')
            continue
        out.append({k: (v if v != '' else None) for k, v in zip(header, fields)})
    return out


class EurobisConnector(Connector):
    name = 'eurobis'
    title = 'EurOBIS / EMODnet Biology'
    kind = 'species occurrences with sampling events and measurements (Darwin Core archives)'
    default_url = 'https://ipt.vliz.be/eurobis/'
    license = 'per dataset (mostly CC-BY 4.0)'
    citation = 'EurOBIS (European Ocean Biodiversity Information System), VLIZ; cite each dataset'
    feature_fields = DWC_FIELDS
    time_property = 'eventDate'

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        if isinstance(source, MirrorSource):
            names = sorted(p.name for p in source.root.iterdir() if p.is_dir() or
                           p.suffix == '.zip')
            return [GranuleRef(id=f'eurobis-{Path(n).stem}', path=n, collection=f'eurobis-{Path(n).stem}',
                               meta={'resource': Path(n).stem}) for n in names]
        resources = self.options.get('resources') or []
        if not resources:
            raise FileNotFoundError('no EurOBIS IPT resources configured '
                                    '(vre.bdis.eurobis.resources)')
        return [GranuleRef(id=f'eurobis-{r}', path=f'archive.do?r={r}',
                           collection=f'eurobis-{r}', meta={'resource': r}) for r in resources]

    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        if isinstance(source, MirrorSource) and (source.root / ref.path).is_dir():
            files = [p for p in (source.root / ref.path).iterdir() if p.is_file()]
            sts = [p.stat() for p in files]
            return Stat(sum(s.st_size for s in sts), max((s.st_mtime for s in sts), default=0),
                        None)
        return source.stat(ref.path)

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        """A mirror folder is packed as the DwC-A zip the IPT serves; zips are read as is."""
        folder = source.root / ref.path if isinstance(source, MirrorSource) else None
        if folder is None or not folder.is_dir():
            return source.read(ref.path)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w') as zf:
            for p in sorted(folder.iterdir()):
                if p.is_file():
                    zf.writestr(zipfile.ZipInfo(p.name, (1980, 1, 1, 0, 0, 0)), p.read_bytes())
        return buf.getvalue()

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise GranuleError('not a Darwin Core archive (zip)') from None
        problems: list[str] = []
        tables = {}
        for info in zf.infolist():
            stem = Path(info.filename).stem.lower()
            if stem in TABLES and Path(info.filename).suffix.lower() in ('.tsv', '.txt', '.csv'):
                key = 'emof' if 'measurement' in stem else stem
                text = zf.read(info).decode('utf-8-sig', 'replace')
                tables[key] = read_table(text, info.filename, problems)
        if 'occurrence' not in tables:
            raise GranuleError('archive has no occurrence table')
        events = {e['eventID']: e for e in tables.get('event', []) if e.get('eventID')}
        mof: dict[str, list] = {}
        for m in tables.get('emof', []):
            key = m.get('occurrenceID') or m.get('eventID')
            mof.setdefault(key, []).append({k: v for k, v in m.items() if v is not None})

        def up(eid, field):  # value from the event or its nearest parent that has it
            seen = set()
            while eid and eid in events and eid not in seen:
                seen.add(eid)
                if events[eid].get(field):
                    return events[eid][field]
                eid = events[eid].get('parentEventID')
            return None

        obs = []
        for n, occ in enumerate(tables['occurrence']):
            eid = occ.get('eventID')
            lon = occ.get('decimalLongitude') or up(eid, 'decimalLongitude')
            lat = occ.get('decimalLatitude') or up(eid, 'decimalLatitude')
            try:
                lon, lat = float(lon), float(lat)
            except (TypeError, ValueError):
                problems.append(f"occurrence {occ.get('occurrenceID') or n}: no coordinates")
                continue
            date = occ.get('eventDate') or up(eid, 'eventDate')
            props = {k: v for k, v in occ.items() if v is not None and k in DWC_KEEP}
            for f in ('datasetName', 'license', 'rightsHolder', 'institutionCode'):
                props.setdefault(f, up(eid, f))
            props.update(eventDate=date, mof=mof.get(occ.get('occurrenceID')),
                         event_mof=mof.get(eid), parentEventID=events.get(eid, {}).get(
                             'parentEventID'))
            obs.append(_occ(self.name, ref.id, occ.get('occurrenceID') or f'{ref.id}-{n}', lon,
                            lat, date, occ.get('scientificName'),
                            aphia_of(occ.get('scientificNameID')), up(eid, 'datasetID'),
                            occ.get('basisOfRecord'), None,
                            {k: v for k, v in props.items() if v is not None}))
        first = next(iter(events.values()), {})
        url = f"{self.public_url}resource?r={ref.meta['resource']}"
        record = _granule_record(self, ref, obs, f"EurOBIS DwC-A {ref.meta['resource']}"
                                 f" ({first.get('datasetName') or ''})", 'dwc-archive', url)
        record['license'] = first.get('license') or self.license
        record['citation'] = (f"{first.get('rightsHolder')}: {first.get('datasetName')}. "
                              f"EurOBIS IPT {url}" if first.get('datasetName') else self.citation)
        record['extra'] = {'tables': {k: len(v) for k, v in tables.items()}}
        self._seen = getattr(self, '_seen', {})
        self._seen[ref.collection] = (first, url)
        return Granule(record, obs, problems)

    def collections(self) -> list[dict]:
        rows = []
        for cid, (first, url) in getattr(self, '_seen', {}).items():
            rows.append({'id': cid, 'bdi': self.name, 'type': 'dataset',
                         'title': first.get('datasetName') or cid,
                         'description': f"Darwin Core archive {cid} on the EurOBIS IPT",
                         'keywords': 'EurOBIS,EMODnet Biology,occurrence,Darwin Core',
                         'license': first.get('license'), 'citation': first.get('rightsHolder'),
                         'url': url})
        return rows
