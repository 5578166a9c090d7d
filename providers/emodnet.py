"""EMODnet Bathymetry and EMODnet Biology gridded layers over OGC WCS 2.0.1 / WFS 2.0.0
(GeoServer) and ERDDAP griddap.

Level 1: each coverage of the WCS GetCapabilities (and each coverage described by a
DescribeCoverage: title, bbox, time axis) and each feature type of the WFS GetCapabilities is a
collection. Level 2: each fetched coverage subset (a WCS GetCoverage GeoTIFF or a griddap
NetCDF) is a granule; over HTTP it is also stored in the configured mirror folder (with a
MANIFEST.json line, as the shared samples are laid out), where a GridCoverage collection
serves it (providers/coverage.py).

The documents are parsed with OWSLib (WebCoverageService / WebFeatureService built from the
XML) and lxml for what OWSLib's WCS 2.0.1 reader leaves out (ows:Title, WGS84BoundingBox,
DescribeCoverage envelopes). Requests go through the Source, not OWSLib, because a mirror
answers from its MANIFEST.json and because OWSLib takes the operation URLs from the
capabilities, which always name the live host.
A mirror lists its granules from MANIFEST.json (GetCoverage and griddap entries); a live
service from the `coverages` option: [{request: <path?query or URL>, file: <mirror name>}].
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from lxml import etree

from providers.base import (Connector, Granule, GranuleError, GranuleRef, HttpSource,
                            MirrorSource, Source, Stat)

NS = {'wcs': 'http://www.opengis.net/wcs/2.0', 'ows': 'http://www.opengis.net/ows/2.0',
      'gml': 'http://www.opengis.net/gml/3.2', 'swe': 'http://www.opengis.net/swe/2.0',
      'wcsgs': 'http://www.geoserver.org/wcsgs/2.0', 'xlink': 'http://www.w3.org/1999/xlink'}
WCS_CAPS = 'wcs?service=WCS&version=2.0.1&request=GetCapabilities'
WFS_CAPS = 'wfs?service=WFS&version=2.0.0&request=GetCapabilities'


def describe_path(coverage_id: str) -> str:
    return (f'wcs?service=WCS&version=2.0.1&coverageId={coverage_id}'
            '&request=DescribeCoverage')


def request_key(uri: str) -> tuple:
    """A request independent of host, base path, parameter order and key case: the last path
    segment and the sorted KVP parameters (or the raw query of a griddap request)."""
    parts = urlsplit(uri)
    name = parts.path.rstrip('/').rsplit('/', 1)[-1]
    query = unquote(parts.query)
    if '=' in parts.query and '[' not in query:
        return name, tuple(sorted((k.lower(), v) for k, v in parse_qsl(parts.query)))
    return name, query


def _params(request: str) -> dict:
    return {k.lower(): v for k, v in parse_qsl(urlsplit(request).query)}


def _float_pair(text: str | None) -> list[float]:
    return [float(v) for v in (text or '').split()]


def describe_coverage(xml: bytes) -> dict:
    """Title, bbox (lon/lat), time axis, band names and nil values of a DescribeCoverage."""
    root = etree.fromstring(xml)
    desc = root.find('wcs:CoverageDescription', NS)
    if desc is None:
        raise ValueError('not a wcs:CoverageDescriptions document')
    env = desc.find('gml:boundedBy/*', NS)
    labels = (env.get('axisLabels') or 'Lat Long').split() if env is not None else []
    lo = _float_pair(env.findtext('gml:lowerCorner', namespaces=NS)) if env is not None else []
    hi = _float_pair(env.findtext('gml:upperCorner', namespaces=NS)) if env is not None else []
    bbox = None
    if len(lo) >= 2 and len(hi) >= 2:
        ix = next((i for i, a in enumerate(labels) if a.lower() in ('long', 'lon', 'x')), 1)
        iy = next((i for i, a in enumerate(labels) if a.lower() in ('lat', 'y')), 0)
        bbox = [lo[ix], lo[iy], hi[ix], hi[iy]]
    domain = desc.find('.//wcsgs:TimeDomain', NS)
    positions = [t.text for t in desc.iterfind('.//wcsgs:TimeDomain//gml:timePosition', NS)]
    fields = [{'name': f.get('name'),
               'nil': f.findtext('.//swe:nilValue', namespaces=NS),
               'uom': (f.find('.//swe:uom', NS).get('code')
                       if f.find('.//swe:uom', NS) is not None else None)}
              for f in desc.iterfind('.//swe:DataRecord/swe:field', NS)]
    return {'id': desc.findtext('wcs:CoverageId', namespaces=NS),
            'title': desc.findtext('gml:name', namespaces=NS),
            'description': desc.findtext('gml:description', namespaces=NS),
            'bbox': bbox, 'crs': env.get('srsName') if env is not None else None,
            'begin': env.findtext('gml:beginPosition', namespaces=NS) if env is not None
            else None,
            'end': env.findtext('gml:endPosition', namespaces=NS) if env is not None else None,
            'default_time': domain.get('default') if domain is not None else None,
            'time_positions': len(positions), 'fields': fields,
            'keywords': [k.text for k in desc.iterfind('.//ows:Keyword', NS) if k.text],
            'metadata': [m.get(f'{{{NS["xlink"]}}}href')
                         for m in desc.iterfind('.//ows:Metadata', NS)]}


def _iso(text: str | None) -> str | None:
    """GeoServer's '1958-02-16T01:00:00.000Z' as the index's second-precision UTC text."""
    return text[:19] + 'Z' if text and len(text) >= 19 else text


def read_geotiff(data: bytes) -> dict:
    """What a WCS GetCoverage GeoTIFF holds: size, bands, nodata, CRS, lon/lat bounds."""
    from rasterio.io import MemoryFile
    with MemoryFile(data) as mem, mem.open() as src:
        if src.crs is None or src.crs.to_epsg() != 4326:
            raise GranuleError(f'GeoTIFF not in EPSG:4326 (crs {src.crs})')
        b = src.bounds
        return {'format': 'image/tiff', 'width': src.width, 'height': src.height,
                'bands': src.count, 'dtype': src.dtypes[0], 'nodata': src.nodata,
                'crs': 'EPSG:4326', 'bbox': [b.left, b.bottom, b.right, b.top],
                'descriptions': list(src.descriptions)}


def read_griddap(data: bytes) -> dict:
    """What an ERDDAP griddap NetCDF holds: variables, lon/lat bounds, time range, title."""
    import xarray as xr
    with tempfile.NamedTemporaryFile(suffix='.nc') as fh:
        fh.write(data)
        fh.flush()
        with xr.open_dataset(fh.name) as ds:
            lon = next((n for n in ds.coords if n.lower() in ('longitude', 'lon')), None)
            lat = next((n for n in ds.coords if n.lower() in ('latitude', 'lat')), None)
            if lon is None or lat is None:
                raise GranuleError('not a griddap NetCDF: no latitude/longitude axes')
            out = {'format': 'application/x-netcdf', 'title': ds.attrs.get('title'),
                   'variables': [v for v in ds.data_vars if {lat, lon} <= set(ds[v].dims)],
                   'bbox': [float(ds[lon].min()), float(ds[lat].min()),
                            float(ds[lon].max()), float(ds[lat].max())],
                   'shape': [int(ds.sizes[lat]), int(ds.sizes[lon])]}
            if 'time' in ds.coords and ds['time'].size:
                t = ds['time'].values.astype('datetime64[s]')
                out['time'] = [f'{t.min()}Z', f'{t.max()}Z']
            return out


def _exception_text(data: bytes) -> str | None:
    """The text of an OWS ExceptionReport (a service error answered with 200)."""
    if b'ExceptionReport' not in data[:2000]:
        return None
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError:
        return None
    return ' '.join(t.strip() for t in root.itertext() if t.strip())[:500]


class _OwsConnector(Connector):
    """A GeoServer WCS/WFS (and griddap) BDI; subclasses name their capabilities documents."""
    kind = 'gridded layers (OGC WCS GeoTIFF, ERDDAP griddap NetCDF) and WFS feature types'
    capabilities: dict[str, str] = {}   # 'wcs'/'wfs' -> mirror file when not in MANIFEST.json

    # where requests are answered ------------------------------------------------------------
    @staticmethod
    def _files_of(entries: list[dict]) -> dict:
        """request key -> mirror file of the recorded answers (MANIFEST.json entries)."""
        return {request_key(e['uri']): e['file'] for e in entries
                if e.get('status', 200) == 200 and e.get('file')}

    def _get(self, source: Source, request: str, file: str | None = None) -> bytes:
        """A request's answer: from the mirror (MANIFEST.json, else `file`) or the service,
        in which case it is also kept in the configured mirror folder."""
        if isinstance(source, MirrorSource):
            name = self._files.get(request_key(request)) or file
            if not name:
                raise FileNotFoundError(request)
            return source.read(name)
        data = source.read(request)
        if file and isinstance(source, HttpSource):
            self._keep(source.url(request), file, data)
        return data

    def _keep(self, uri: str, file: str, data: bytes) -> None:
        folder = self.options.get('mirror')
        if not folder or _exception_text(data):
            return
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (file + '.part')
        tmp.write_bytes(data)
        tmp.replace(folder / file)
        manifest = folder / 'MANIFEST.json'
        entries = json.loads(manifest.read_text()) if manifest.exists() else []
        entries = [e for e in entries if e.get('file') != file]
        entries.append({'file': file, 'uri': uri, 'status': 200, 'bytes': len(data)})
        manifest.write_text(json.dumps(entries, indent=1))

    # listing --------------------------------------------------------------------------------
    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems, self._rows, self._described = [], {}, {}
        entries = self._entries(source) if isinstance(source, MirrorSource) else []
        self._files = self._files_of(entries)
        if 'wcs' in self.capabilities:
            self._read_caps(source, WCS_CAPS, self.capabilities['wcs'], self._wcs_rows)
        if 'wfs' in self.capabilities:
            self._read_caps(source, WFS_CAPS, self.capabilities['wfs'], self._wfs_rows)
        if isinstance(source, MirrorSource):
            wanted = [(self._relative(e['uri']), e['file']) for e in entries
                      if self._is_granule(e['uri'])]
        else:
            wanted = [(c['request'], c.get('file')) for c in self.options.get('coverages') or []]
        refs = []
        for request, file in wanted:
            params = _params(request)
            cid = params.get('coverageid') or urlsplit(request).path.rsplit('/', 1)[-1] \
                .rsplit('.', 1)[0]
            recorded = request_key(describe_path(cid)) in self._files
            if 'coverageid' in params and cid not in self._described and (
                    recorded or not isinstance(source, MirrorSource)
                    or self._cid(cid) not in self._rows):   # a mirror may not hold it
                self._describe(source, cid)
            gid = f'{self.name}-' + (file or cid).rsplit('.', 1)[0]
            path = file if isinstance(source, MirrorSource) else request
            refs.append(GranuleRef(id=gid, path=path, collection=self._cid(cid),
                                   meta={'request': request, 'file': file, 'coverage': cid}))
        return refs

    def _entries(self, source: MirrorSource) -> list[dict]:
        try:
            return json.loads(source.read('MANIFEST.json'))
        except FileNotFoundError:
            return []

    def _relative(self, uri: str) -> str:
        """A recorded live URI as a request path under this BDI's base (griddap URIs are
        kept whole: ERDDAP is another host)."""
        parts = urlsplit(uri)
        if '/griddap/' in parts.path:
            return uri
        return parts.path.rstrip('/').rsplit('/', 1)[-1] + '?' + parts.query

    @staticmethod
    def _is_granule(uri: str) -> bool:
        return _params(uri).get('request', '').lower() == 'getcoverage' or '/griddap/' in uri

    def _cid(self, coverage: str) -> str:
        return f'{self.name}-{coverage.replace(":", "-")}'

    def _read_caps(self, source, request, file, rows) -> None:
        try:
            rows(self._get(source, request, file))
        except Exception as err:   # an unreachable or broken document: reported, harvest goes on
            self._listing_problems.append((request, f'{type(err).__name__}: {err}'))

    def _describe(self, source, cid) -> None:
        try:
            d = describe_coverage(self._get(source, describe_path(cid),
                                            f'wcs_DescribeCoverage_{cid}.xml'))
        except Exception as err:
            self._listing_problems.append((describe_path(cid), f'{type(err).__name__}: {err}'))
            return
        self._described[cid] = d
        row = self._rows.setdefault(self._cid(cid), self._row(cid, 'wcs-coverage'))
        row.update(title=d['title'] or row['title'], url=self.public_url + describe_path(cid))
        if d['description'] and not row.get('description'):
            row['description'] = d['description']
        if d['bbox']:
            row.update(zip(('minx', 'miny', 'maxx', 'maxy'), d['bbox']))
        row.update(tmin=_iso(d['begin']), tmax=_iso(d['end']))
        row['keywords'] = ','.join(dict.fromkeys([*row['keywords'].split(','), *d['keywords']])
                                   ).strip(',')
        row['extra'].update(time_axis=[_iso(d['begin']), _iso(d['end'])] if d['begin'] else None,
                            time_positions=d['time_positions'],
                            default_time=_iso(d['default_time']),
                            fields=d['fields'], metadata=d['metadata'])

    def _row(self, ident: str, type_: str) -> dict:
        return {'id': self._cid(ident), 'bdi': self.name, 'type': type_, 'title': ident,
                'description': None, 'keywords': self.name, 'license': self.license,
                'citation': self.citation, 'url': self.public_url,
                'extra': {'service_id': ident}}

    def _wcs_rows(self, xml: bytes) -> None:
        from owslib.wcs import WebCoverageService
        wcs = WebCoverageService(self.public_url + 'wcs', version='2.0.1', xml=xml)
        for cid, content in wcs.contents.items():
            elem = content._elem       # OWSLib's WCS 2.0.1 summary leaves title/bbox out
            row = self._row(cid, 'wcs-coverage')
            row['title'] = elem.findtext('{%s}Title' % NS['ows']) or cid
            row['description'] = elem.findtext('{%s}Abstract' % NS['ows']) or None
            lo = _float_pair(elem.findtext('{0}WGS84BoundingBox/{0}LowerCorner'.format(
                '{%s}' % NS['ows'])))
            hi = _float_pair(elem.findtext('{0}WGS84BoundingBox/{0}UpperCorner'.format(
                '{%s}' % NS['ows'])))
            if len(lo) == 2 and len(hi) == 2:
                row.update(minx=lo[0], miny=lo[1], maxx=hi[0], maxy=hi[1])
            row['keywords'] = ','.join([self.name, 'WCS', wcs.identification.title or ''])
            row['url'] = self.public_url + describe_path(cid)
            row['extra'].update(service='WCS 2.0.1', formats=content.supportedFormats)
            self._rows[row['id']] = row

    def _wfs_rows(self, xml: bytes) -> None:
        from owslib.wfs import WebFeatureService
        wfs = WebFeatureService(self.public_url + 'wfs', version='2.0.0', xml=xml)
        for name, ft in wfs.contents.items():
            row = self._row(name, 'wfs-featuretype')
            row.update(title=ft.title or name, description=ft.abstract,
                       keywords=','.join([self.name, 'WFS', *(ft.keywords or [])]),
                       url=(f'{self.public_url}wfs?service=WFS&version=2.0.0&request=GetFeature'
                            f'&typeNames={name}'))
            if ft.boundingBoxWGS84:
                row.update(zip(('minx', 'miny', 'maxx', 'maxy'), ft.boundingBoxWGS84[:4]))
            row['extra'].update(service='WFS 2.0.0', crs=[str(c) for c in ft.crsOptions or []])
            self._rows[row['id']] = row

    # granules -------------------------------------------------------------------------------
    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        if isinstance(source, MirrorSource):
            return source.stat(ref.path)
        return Stat(None, None, None)   # a GetCoverage is not HEAD-able: the checksum decides

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        return self._get(source, ref.meta['request'], ref.meta['file'])

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        problem = _exception_text(data)
        if problem:
            raise GranuleError(f'the service answered an exception: {problem}')
        if data[:4] in (b'II*\x00', b'MM\x00*'):
            info = read_geotiff(data)
        elif data[:3] == b'CDF' or data[:4] == b'\x89HDF':
            info = read_griddap(data)
        else:
            raise GranuleError('neither a GeoTIFF nor a NetCDF file')
        cid = ref.meta['coverage']
        d = self._described.get(cid) or {}
        names = [f['name'] for f in d.get('fields') or []] or info.get('variables') or \
            [n or f'band_{i + 1}' for i, n in enumerate(info.get('descriptions') or [])]
        params = _params(ref.meta['request'])
        # GeoServer answers the default time slice when the request does not subset time
        when = info.get('time') or ([_iso(d['default_time'])] * 2 if d.get('default_time')
                                    and 'time' not in ref.meta['request'].lower() else None)
        row = self._rows.get(ref.collection)
        title = (row or {}).get('title') or info.get('title') or cid
        request = ref.meta['request']
        url = request if '://' in request else self.public_url + request
        minx, miny, maxx, maxy = info['bbox']
        record = {'id': ref.id, 'bdi': self.name, 'collection': ref.collection, 'path': ref.path,
                  'url': url, 'title': f'{title} ({info["format"]} subset)',
                  'type': 'wcs-getcoverage' if 'coverageid' in params else 'griddap-subset',
                  'minx': minx, 'miny': miny, 'maxx': maxx, 'maxy': maxy,
                  'tmin': when[0] if when else None, 'tmax': when[1] if when else None,
                  'parameters': ' '.join(n.replace(' ', '_') for n in names),
                  'license': self.license,
                  'citation': self.citation,
                  'extra': {**info, 'fields': names, 'file': ref.meta['file'],
                            'request': request, 'coverage': cid}}
        if row is None:
            self._rows[ref.collection] = dict(self._row(cid, 'griddap' if 'griddap' in record[
                'type'] else 'wcs-coverage'), title=title, url=url)
        return Granule(record, [])

    def collections(self) -> list[dict]:
        return list(getattr(self, '_rows', {}).values())


class BathymetryConnector(_OwsConnector):
    name = 'emodnet-bathymetry'
    title = 'EMODnet Bathymetry'
    default_url = 'https://ows.emodnet-bathymetry.eu/'
    license = 'CC-BY 4.0'
    citation = ('EMODnet Bathymetry Consortium (2022): EMODnet Digital Bathymetry (DTM 2022), '
                'doi:10.12770/ff3aff8a-cff1-44a3-a2c8-1910bf109f85')
    capabilities = {'wcs': 'wcs_GetCapabilities_2.0.1.xml'}


class BiologyConnector(_OwsConnector):
    name = 'emodnet-biology'
    folder = 'emodnet-wcs-wfs'
    title = 'EMODnet Biology (gridded products and feature layers)'
    default_url = 'https://geo.vliz.be/geoserver/Emodnetbio/'
    license = 'CC-BY 4.0 (EMODnet Biology products; see each layer\'s metadata)'
    citation = 'EMODnet Biology, VLIZ (https://emodnet.ec.europa.eu/en/biology); cite each product'
    capabilities = {'wfs': 'biology_wfs_GetCapabilities_2.0.0.xml'}


class ChemistryOwsConnector(_OwsConnector):
    """EMODnet Chemistry's GeoServer: the WCS coverages and WFS feature types behind its
    products and observation layers (the ISO product records and their NetCDF files are
    providers/emodnet_chemistry.py). The same GeoServer stack as Biology and Bathymetry."""
    name = 'emodnet-chemistry-ows'
    title = 'EMODnet Chemistry (WCS/WFS layers)'
    default_url = 'https://geoserver.emodnet-chemistry.eu/geoserver/emodnet/'
    license = 'CC-BY 4.0'
    citation = 'EMODnet Chemistry (https://emodnet.ec.europa.eu/en/chemistry); cite each product'
    capabilities = {'wcs': 'wcs_GetCapabilities_2.0.1.xml',
                    'wfs': 'wfs_GetCapabilities_2.0.0.xml'}
