"""EMODnet Chemistry and SeaDataNet products: Sextant ISO 19139 records + DIVAnd NetCDF grids.

A product is one ISO 19139 record (Sextant catalogue, read with OWSLib's ISO parser) and,
when the mirror holds it, its gridded NetCDF (DIVAnd layout), which the pygeoapi config
serves as a coverage (providers.coverage.GridCoverage) and as EDR (providers.grid_edr).
Each product is a level-1 collection and a level-2 granule (its record, with contacts,
keywords, extents, constraints, and its online resources as links: NetCDF, WMS/WCS/WFS,
OPeNDAP, DOI).

Layout: on a mirror, the records are the folder's *.xml files (as
../shared/data/bdi/emodnet-chemistry/iso19139_product_*.xml) and the product files any *.nc
below it; live, each record (option `records`: the product UUIDs) is a CSW GetRecordById
answer of the Sextant catalogue at the BDI url (`csw?...&id=<uuid>`). A record is matched
to a local NetCDF by file name (the basename of a download/OPeNDAP/WMS online resource) or
by the file's `product_id` global attribute (the record's UUID). Option `coverages` maps a
product file name to the collection that serves it.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import netCDF4
from lxml import etree
from owslib.iso import MD_Metadata

from providers.base import (Connector, Granule, GranuleError, GranuleRef, HttpSource,
                            MirrorSource, Source, Stat)

GMD = 'http://www.isotc211.org/2005/gmd'
CSW_RECORD = ('csw?service=CSW&version=2.0.2&request=GetRecordById&elementSetName=full'
              '&outputSchema=http://www.isotc211.org/2005/gmd&id={id}')
COVERAGE_REL = 'http://www.opengis.net/def/rel/ogc/1.0/coverage'
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _metadata(data: bytes):
    """The MD_Metadata element of a bare record or of a CSW GetRecordById answer."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as err:
        raise GranuleError(f'not XML: {err}') from None
    if root.tag == f'{{{GMD}}}MD_Metadata':
        return root
    found = root.find(f'.//{{{GMD}}}MD_Metadata')
    if found is None:
        raise GranuleError(f'no ISO 19139 record in the answer (root {root.tag})')
    return found


def _nerc_code(url: str | None) -> str | None:
    """P35/P02/P01 code of an NVS vocabulary URL (.../collection/P35/current/EPC00009/)."""
    m = re.search(r'/collection/(\w+)/current/(\w+)', url or '')
    return f'{m.group(1)}:{m.group(2)}' if m else None


def read_product(data: bytes) -> dict:
    """The discovery fields of a Sextant ISO 19139 product record."""
    el = _metadata(data)
    md = MD_Metadata(el)
    if not md.identification:
        raise GranuleError('ISO record without identificationInfo')
    ident = md.identification[0]
    keywords, codes, groups = [], [], {}
    for label, words in _keywords(el):
        keywords += [w for w, _ in words]
        codes += [c for _, href in words if (c := _nerc_code(href))]
        if words:
            groups.setdefault(label, []).extend(w for w, _ in words)
    box = ident.bbox
    bbox = [float(v) for v in (box.minx, box.miny, box.maxx, box.maxy)] if box and None not in (
        box.minx, box.miny, box.maxx, box.maxy) else None
    vertical = _vertical(el)
    contacts = [{'organisation': c.organization, 'role': c.role,
                 'email': c.email if c.email not in (None, 'None') else None,
                 'url': c.onlineresource.url if c.onlineresource else None}
                for c in list(md.contact) + list(ident.contact)]
    online = [{'href': o.url, 'protocol': o.protocol, 'name': o.name,
               'description': o.description, 'function': o.function or None}
              for o in (md.distribution.online if md.distribution else []) if o.url]
    return {
        'id': md.identifier, 'title': ident.title, 'abstract': ident.abstract,
        'date': md.datestamp, 'created': ident.date[0].date if ident.date else None,
        'hierarchy': md.hierarchy, 'bbox': bbox, 'vertical': vertical,
        'begin': ident.temporalextent_start, 'end': ident.temporalextent_end,
        'keywords': keywords, 'keyword_groups': groups, 'codes': codes,
        'topics': ident.topiccategory,
        'constraints': {'use_limitation': ident.uselimitation,
                        'access': ident.accessconstraints, 'use': ident.useconstraints,
                        'other': ident.otherconstraints},
        'contacts': contacts, 'online': online, 'overview': ident.graphicoverview,
    }


def _keywords(el) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """(thesaurus or type, [(keyword, vocabulary URL)]) per MD_Keywords; OWSLib 0.35 drops a
    gmx:Anchor keyword that is not the last of its group, so they are read here."""
    ns = {'gmd': GMD, 'gco': 'http://www.isotc211.org/2005/gco',
          'gmx': 'http://www.isotc211.org/2005/gmx'}
    href = '{http://www.w3.org/1999/xlink}href'
    out = []
    for group in el.iterfind('gmd:identificationInfo/*/gmd:descriptiveKeywords/gmd:MD_Keywords',
                             ns):
        words = [((k.text or '').strip(), k.get(href)) for k in group.iterfind(
            'gmd:keyword/*', ns) if (k.text or '').strip()]
        kind = group.find('gmd:type/gmd:MD_KeywordTypeCode', ns)
        label = group.findtext('gmd:thesaurusName//gmd:title/gco:CharacterString',
                               namespaces=ns) or (kind.get('codeListValue') if kind is not None
                                                  else 'keywords')
        out.append((label, words))
    return out


def _vertical(el) -> list[float] | None:
    """EX_VerticalExtent (OWSLib does not read it)."""
    ns = {'gmd': GMD, 'gco': 'http://www.isotc211.org/2005/gco'}
    ext = el.find('.//gmd:EX_VerticalExtent', ns)
    if ext is None:
        return None
    vals = [ext.findtext(f'gmd:{k}/gco:Real', namespaces=ns) for k in ('minimumValue',
                                                                         'maximumValue')]
    try:
        return [float(v) for v in vals]
    except (TypeError, ValueError):
        return None


def _file_names(online: list[dict]) -> set[str]:
    """Product file names named by the online resources (download, OPeNDAP page, WMS layer)."""
    out = set()
    for o in online:
        for text in (urlsplit(o['href']).path, (o['name'] or '').split('*')[0]):
            base = os.path.basename(text.removesuffix('.html'))
            if base.endswith('.nc'):
                out.add(base)
    return out


def _link(o: dict) -> dict:
    """An ISO online resource as an OGC API link (rel and media type from protocol and URL)."""
    proto, href = (o['protocol'] or ''), o['href']
    title = o['description'] or o['name'] or proto
    path = urlsplit(href).path
    if proto.upper().startswith('OGC:'):
        service = proto[4:].split('-')[0].upper()
        link = {'rel': 'service', 'type': 'application/xml', 'title': f'{service}: {title}'}
        if o['name']:
            link['layer'] = o['name']
    elif path.endswith('.nc'):
        link = {'rel': 'enclosure', 'type': 'application/x-netcdf', 'title': title}
    elif 'doi.org/' in href:
        link = {'rel': 'cite-as', 'type': 'text/html', 'title': title}
    elif 'opendap' in f"{o['name']} {o['description']}".lower():
        link = {'rel': 'alternate', 'type': 'text/html', 'title': f'OPeNDAP: {title}'}
    else:
        link = {'rel': 'related', 'title': title}
    return dict(link, href=href, protocol=proto or None)


def _product_id(path: Path) -> str | None:
    try:
        with netCDF4.Dataset(path) as ds:
            return str(getattr(ds, 'product_id', '')) or None
    except OSError:
        return None


def _date(value: str | None, end: bool = False) -> str | None:
    if not value:
        return None
    value = str(value)
    if len(value) == 4:
        value += '-12-31' if end else '-01-01'
    if 'T' not in value:
        return value[:10] + ('T23:59:59Z' if end else 'T00:00:00Z')
    return value[:19] + 'Z'


class ProductConnector(Connector):
    """Sextant ISO 19139 product records and their DIVAnd NetCDF files."""
    default_url = 'https://sextant.ifremer.fr/geonetwork/srv/eng/'
    records: tuple[str, ...] = ()      # the product UUIDs harvested live by default
    product_word = 'product'

    def _local(self, source: Source) -> Path | None:
        """Where product files are: the mirror harvested, else the configured mirror."""
        if isinstance(source, MirrorSource):
            return source.root
        mirror = self.options.get('mirror')
        return Path(mirror) if mirror and Path(mirror).is_dir() else None

    @staticmethod
    def _files(local: Path | None) -> list[Path]:
        return sorted(local.rglob('*.nc')) if local else []

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        local = self._local(source)
        files = [str(p) for p in self._files(local)]
        refs = []
        if isinstance(source, MirrorSource):     # every record of the mirror
            for f in sorted(source.root.glob('*.xml')):
                try:
                    uuid = MD_Metadata(_metadata(f.read_bytes())).identifier
                except GranuleError:
                    uuid = None
                if not uuid:
                    self._problem(f.name, 'not an ISO 19139 record with a fileIdentifier')
                    continue
                refs.append(GranuleRef(id=f'{self.name}-{uuid}', path=f.name,
                                       collection=f'{self.name}-product-{uuid}',
                                       meta={'uuid': uuid, 'files': files}))
            return refs
        wanted = self.options.get('records') or list(self.records)
        if not wanted:
            raise FileNotFoundError('no product records configured (option records)')
        return [GranuleRef(id=f'{self.name}-{u}', path=CSW_RECORD.format(id=u),
                           collection=f'{self.name}-product-{u}',
                           meta={'uuid': u, 'files': files}) for u in wanted]

    def _problem(self, what, why):
        self._listing_problems.append((what, why))

    def _files_sig(self, ref: GranuleRef) -> str:
        parts = []
        for f in ref.meta.get('files') or []:
            try:
                st = os.stat(f)
            except OSError:
                continue
            parts.append(f'{f}:{st.st_size}:{st.st_mtime_ns}')
        return hashlib.sha256('\n'.join(parts).encode()).hexdigest()[:16]

    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        """The record's marker plus the product files' (a file arriving re-reads the record);
        a CSW answer has no change marker: it is fetched and compared by checksum."""
        st = source.stat(ref.path) if not isinstance(source, HttpSource) else Stat(None, None,
                                                                                   None)
        return Stat(st.size, st.mtime, f'{st.etag}|{self._files_sig(ref)}')

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        # the files' marker rides along as an XML comment, so the checksum sees a new file
        return source.read(ref.path) + f'\n<!-- files {self._files_sig(ref)} -->\n'.encode()

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        p = read_product(data)
        if not p['id']:
            raise GranuleError('ISO record without fileIdentifier')
        names = _file_names(p['online'])
        match = next((Path(f) for f in ref.meta.get('files') or []
                      if os.path.basename(f) in names), None)
        if match is None:
            match = next((Path(f) for f in ref.meta.get('files') or []
                          if _product_id(Path(f)) == p['id']), None)
        coverage = (self.options.get('coverages') or {}).get(match.name) if match else None
        links = [{'href': self.public_url + CSW_RECORD.format(id=p['id']),
                  'rel': 'describedby', 'type': 'application/xml',
                  'title': 'ISO 19139 record (Sextant CSW GetRecordById)'}]
        links += [_link(o) for o in p['online']]
        links += [{'href': g, 'rel': 'preview', 'title': 'overview'} for g in p['overview']]
        if coverage:
            links += [{'href': f'../../{coverage}/coverage', 'rel': COVERAGE_REL,
                       'type': 'application/prs.coverage+json', 'title': 'coverage (this server)'},
                      {'href': f'../../{coverage}', 'rel': 'data', 'type': 'application/json',
                       'title': 'coverage and EDR collection (this server)'}]
        c = p['constraints']
        licence = '; '.join(c['use_limitation'] + c['other']) or self.license
        citation = next((o for o in c['other'] if 'citation' in o.lower()), None)
        doi = next((lk['href'] for lk in links if lk['rel'] == 'cite-as'), None)
        originators = [x['organisation'] for x in p['contacts'] if x['role'] == 'originator']
        year = (p['created'] or p['date'] or '')[:4] or 'n.d.'
        cite = (f"{self.title_short} ({year}). {p['title']}."
                f"{' ' + doi if doi else ''}{' ' + citation if citation else ''}")
        download = next((lk['href'] for lk in links if lk['rel'] == 'enclosure'), None)
        box = p['bbox'] or [None] * 4
        files_params = []
        if match is not None:
            with netCDF4.Dataset(match) as ds:
                files_params = [n for n, v in ds.variables.items() if v.ndim >= 2
                                and {'lon', 'lat'} <= set(v.dimensions)]
        record = {
            'id': ref.id, 'bdi': self.name, 'collection': ref.collection, 'path': ref.path,
            'url': download, 'title': p['title'], 'type': self.product_word,
            'minx': box[0], 'miny': box[1], 'maxx': box[2], 'maxy': box[3],
            'tmin': _date(p['begin']), 'tmax': _date(p['end'], end=True),
            'parameters': ' '.join(dict.fromkeys(p['codes'] + files_params)),
            'license': licence, 'citation': cite,
            'extra': {'identifier': p['id'], 'abstract': p['abstract'],
                      'keywords': p['keywords'], 'keyword_groups': p['keyword_groups'],
                      'topics': p['topics'], 'vertical_extent': p['vertical'],
                      'constraints': c, 'contacts': p['contacts'], 'originators': originators,
                      'links': links, 'metadata_date': p['date'], 'hierarchy': p['hierarchy'],
                      'file': match.name if match else None,
                      'data': str(match) if match else None, 'coverage': coverage},
        }
        self._described = getattr(self, '_described', {})
        self._described[ref.collection] = {
            'id': ref.collection, 'bdi': self.name, 'type': self.product_word,
            'title': p['title'], 'description': p['abstract'],
            'keywords': ','.join(dict.fromkeys(k.replace(',', ' ') for k in p['keywords'])),
            'license': licence, 'citation': cite, 'url': download or links[0]['href'],
            'extra': {'identifier': p['id'], 'links': links, 'coverage': coverage,
                      'file': match.name if match else None}}
        return Granule(record, [])

    def collections(self) -> list[dict]:
        return list(getattr(self, '_described', {}).values())


class EmodnetChemistryConnector(ProductConnector):
    name = 'emodnet-chemistry'
    title = 'EMODnet Chemistry (gridded products: DIVAnd climatologies, ISO 19139 records)'
    title_short = 'EMODnet Chemistry'
    kind = 'gridded products (OGC API - Coverages and EDR) with ISO 19139 product records'
    records = ('e61d12cd-837f-49ff-a0e1-3a694ab84bc5',)   # Water body ammonium, combined
    license = 'EMODnet Chemistry: use subject to mandatory citation (see each record)'
    citation = 'EMODnet Chemistry (https://emodnet.ec.europa.eu/en/chemistry)'


class SeaDataNetProductsConnector(ProductConnector):
    name = 'seadatanet-products'
    title = 'SeaDataNet products (climatologies and aggregated collections, ISO 19139 records)'
    title_short = 'SeaDataNet'
    kind = 'gridded climatologies (OGC API - Coverages and EDR) with ISO 19139 product records'
    license = 'SeaDataNet licence (see each record)'
    citation = 'SeaDataNet (https://www.seadatanet.org/Products)'
