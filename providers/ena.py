"""ELIXIR-ENA (European Nucleotide Archive): sequencing runs and samples as granules, studies
(or configured searches) as collections, samples with a position also as point Features.

Live layout, under the base URL (`vre: bdis: ena: url`, default https://www.ebi.ac.uk/):
  ena/portal/api/search?result=<sample|read_run|study>&query=<q>&fields=<f,...>&format=tsv|json
  ena/portal/api/filereport?accession=<acc>&result=read_run&fields=<f,...>&format=tsv
  ena/browser/api/xml/<acc>
What is asked is configured: `accessions` (browser XML + read_run filereport of each) and
`searches` (a list of {name, result, query, fields, format, limit}).
Mirror layout (the shared samples folder as it is): every `*.tsv`/`*.json` below the folder is
a Portal API answer (TSV: a header of field names and one row per record, '' for missing;
JSON: an array of flat objects), every `*.xml` a Browser API answer (STUDY_SET, SAMPLE_SET,
EXPERIMENT_SET, RUN_SET). What a file holds is read from its header or root element, not its
name; files are named after what they answer (`<acc>.filereport_read_run.tsv`,
`ena_browser_xml_<acc>.xml`), and a search answer `search_<name>.tsv|json` is the configured
search <name> (its records without a study form the collection `ena-<name>`).
Records from all answers are merged by accession (INSDC and BioSample/BioProject aliases) and
linked run -> experiment -> sample -> study. The marine filter (`marine_only`, default true)
uses what the metadata says and leaves out only records that are clearly not marine.
"""
from __future__ import annotations

import calendar
import csv
import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from urllib.parse import urlencode

import requests

from providers.base import (Connector, Granule, GranuleError, GranuleRef, MirrorSource, Source,
                            Stat)

# the 31 fields of a real read_run filereport (nf-core/fetchngs), then sample context fields
RUN_FIELDS = [
    'run_accession', 'experiment_accession', 'sample_accession', 'secondary_sample_accession',
    'study_accession', 'secondary_study_accession', 'submission_accession', 'run_alias',
    'experiment_alias', 'sample_alias', 'study_alias', 'library_layout', 'library_selection',
    'library_source', 'library_strategy', 'library_name', 'instrument_model',
    'instrument_platform', 'base_count', 'read_count', 'tax_id', 'scientific_name',
    'sample_title', 'experiment_title', 'study_title', 'sample_description', 'fastq_md5',
    'fastq_bytes', 'fastq_ftp', 'fastq_galaxy', 'fastq_aspera',
    'first_public', 'collection_date', 'lat', 'lon', 'depth', 'country', 'environment_biome',
    'environment_feature', 'environment_material', 'broad_scale_environmental_context']
SAMPLE_FIELDS = [
    'sample_accession', 'secondary_sample_accession', 'description', 'collection_date',
    'first_public', 'tax_id', 'scientific_name', 'lat', 'lon', 'country', 'depth',
    'environment_biome', 'environment_feature', 'environment_material',
    'broad_scale_environmental_context', 'local_environmental_context', 'environmental_medium']
STUDY_FIELDS = ['study_accession', 'secondary_study_accession', 'study_title', 'first_public']
DEFAULT_FIELDS = {'read_run': RUN_FIELDS, 'sample': SAMPLE_FIELDS, 'study': STUDY_FIELDS}

# what a sample says about where it comes from (copied onto its runs)
CONTEXT = ('lat', 'lon', 'depth', 'collection_date', 'country', 'environment_biome',
           'environment_feature', 'environment_material', 'broad_scale_environmental_context',
           'local_environmental_context', 'environmental_medium', 'tax_id', 'scientific_name',
           'marine')
ENV = ('environment_biome', 'environment_feature', 'environment_material',
       'broad_scale_environmental_context', 'local_environmental_context',
       'environmental_medium')
LIBRARY = ('library_layout', 'library_selection', 'library_source', 'library_strategy',
           'library_name', 'instrument_model', 'instrument_platform', 'experiment_title')

# SAMPLE_ATTRIBUTE tags (ENA checklists, MIxS) -> portal field names
ATTRIBUTE_FIELDS = {
    'geographic location (latitude)': 'lat', 'latitude': 'lat', 'lat': 'lat',
    'geographic location (longitude)': 'lon', 'longitude': 'lon', 'lon': 'lon',
    'lat_lon': 'lat_lon', 'collection date': 'collection_date',
    'collection_date': 'collection_date', 'depth': 'depth',
    'geographic location (depth)': 'depth',
    'geographic location (country and/or sea)': 'country', 'geo_loc_name': 'country',
    'broad-scale environmental context': 'broad_scale_environmental_context',
    'env_broad_scale': 'broad_scale_environmental_context',
    'environment (biome)': 'environment_biome', 'env_biome': 'environment_biome',
    'local environmental context': 'local_environmental_context',
    'env_local_scale': 'local_environmental_context',
    'environment (feature)': 'environment_feature', 'env_feature': 'environment_feature',
    'environmental medium': 'environmental_medium', 'env_medium': 'environmental_medium',
    'environment (material)': 'environment_material', 'env_material': 'environment_material',
    'marine': 'marine', 'ena-first-public': 'first_public'}

# the marine filter's evidence (taxonomy ids of NCBI; ENVO classes; words)
MARINE_TAXA = {'408172': 'marine metagenome', '412755': 'marine sediment metagenome'}
NOT_MARINE_TAXA = {'408170': 'human gut metagenome', '9606': 'Homo sapiens',
                   '10090': 'Mus musculus', '410661': 'mouse gut metagenome',
                   '749906': 'gut metagenome', '646099': 'human metagenome',
                   '410658': 'soil metagenome'}
MARINE_ENVO = {'ENVO:00000447': 'marine biome', 'ENVO:00002149': 'sea water',
               'ENVO:00000016': 'sea', 'ENVO:00000015': 'ocean'}
MARINE_WORDS = re.compile(r'\b(marine|oceanic|ocean|seas?|sea ?water|sea ice|estuar\w*|'
                          r'neritic|pelagic|coral reef|intertidal|coastal)\b', re.I)
NOT_MARINE_WORDS = re.compile(r'\b(terrestrial|soil|freshwater|lake|river|gut|intestin\w*|'
                              r'feces|faeces|stool|skin|oral|lung|urban|indoor)\b', re.I)
SEA_LOCATION = re.compile(r'^[\w ]*\b(Ocean|Sea)\b', re.I)   # INSDC geo names of seas

ACCESSION = re.compile(r'^(PRJ[EDN][A-Z]\d+|[EDS]R[PSXR]\d+|SAM[EDN][A-Z]?\d+)$')
KIND_OF_PREFIX = (('PRJ', 'study'), ('SAM', 'sample'))
KIND_OF_LETTER = {'P': 'study', 'S': 'sample', 'X': 'experiment', 'R': 'run'}
LINK_KIND = {'ENA-STUDY': 'study', 'ENA-SAMPLE': 'sample', 'ENA-EXPERIMENT': 'experiment',
             'ENA-RUN': 'run'}


def kind_of(acc: str) -> str | None:
    """study / sample / experiment / run from an INSDC, BioProject or BioSample accession."""
    if not ACCESSION.match(acc or ''):
        return None
    for prefix, kind in KIND_OF_PREFIX:
        if acc.startswith(prefix):
            return kind
    return KIND_OF_LETTER[acc[2]]


def https_of(ftp_path: str) -> str:
    """ENA serves its fastq files by FTP and HTTPS at the same host and path."""
    path = re.sub(r'^(ftp|https?)://', '', ftp_path.strip())
    return 'https://' + path


# --- the two answer formats ---------------------------------------------------------------
def read_portal(data: bytes) -> list[dict]:
    """Portal API answer (TSV or JSON) -> rows with non-empty string values.

    An empty body (also what an HTTP 204 gives) is no records.
    """
    text = data.decode('utf-8-sig')
    if not text.strip():
        return []
    if text.lstrip()[0] in '[{':
        body = json.loads(text)
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            raise ValueError(f'not a Portal API JSON array of records: {text[:200]!r}')
        return [{k: str(v).strip() for k, v in r.items() if v not in (None, '')} for r in body]
    rows = csv.reader(io.StringIO(text), delimiter='\t', quoting=csv.QUOTE_NONE)
    header = next(rows)
    if not any(h.endswith('accession') for h in header):
        raise ValueError(f'not a Portal API TSV (no accession field): {header[:5]}')
    out = []
    for n, fields in enumerate(rows, start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            raise ValueError(f'line {n}: {len(fields)} fields, header has {len(header)}')
        out.append({k: v.strip() for k, v in zip(header, fields) if v.strip()})
    return out


def _text(el, path):
    found = el.find(path)
    return (found.text or '').strip() if found is not None and found.text else None


def _ids(el) -> set[str]:
    ids = {el.get('accession') or ''}
    for tag in ('PRIMARY_ID', 'SECONDARY_ID', 'EXTERNAL_ID'):
        ids |= {(i.text or '').strip() for i in el.iterfind(f'IDENTIFIERS/{tag}')}
    return {i for i in ids if ACCESSION.match(i)}


def read_browser_xml(data: bytes) -> list[dict]:
    """Browser API XML (STUDY_SET, SAMPLE_SET, EXPERIMENT_SET, RUN_SET) -> entities:
    {kind, ids, fields, refs {kind: set}, links {DB: [ID]}, attributes {TAG: VALUE}}."""
    root = ET.fromstring(data)
    kind = {'STUDY_SET': 'study', 'SAMPLE_SET': 'sample', 'EXPERIMENT_SET': 'experiment',
            'RUN_SET': 'run'}.get(root.tag)
    if kind is None:
        raise ValueError(f'not an ENA browser XML set: <{root.tag}>')
    out = []
    for el in root.findall(kind.upper()):
        acc = el.get('accession')
        ent = {'kind': kind, 'ids': _ids(el) | ({acc} if acc else set()), 'fields': {},
               'refs': {}, 'links': {}, 'attributes': {}}
        for link in el.iterfind(f'{kind.upper()}_LINKS/{kind.upper()}_LINK/XREF_LINK'):
            db, ident = _text(link, 'DB'), _text(link, 'ID')
            if db and ident:
                ent['links'].setdefault(db, []).append(ident)
                if db in LINK_KIND:
                    ent['refs'].setdefault(LINK_KIND[db], set()).update(
                        i.strip() for i in ident.split(',') if ACCESSION.match(i.strip()))
        for a in el.iterfind(f'{kind.upper()}_ATTRIBUTES/{kind.upper()}_ATTRIBUTE'):
            tag, value = _text(a, 'TAG'), _text(a, 'VALUE')
            if tag and value:
                ent['attributes'][tag] = value
        f = ent['fields']
        f['first_public'] = ent['attributes'].get('ENA-FIRST-PUBLIC')
        if kind == 'study':
            f['study_title'] = _text(el, 'DESCRIPTOR/STUDY_TITLE')
            f['study_description'] = (_text(el, 'DESCRIPTOR/STUDY_ABSTRACT') or
                                      _text(el, 'DESCRIPTOR/STUDY_DESCRIPTION'))
        elif kind == 'sample':
            f.update(sample_title=_text(el, 'TITLE'), tax_id=_text(el, 'SAMPLE_NAME/TAXON_ID'),
                     scientific_name=_text(el, 'SAMPLE_NAME/SCIENTIFIC_NAME'),
                     description=_text(el, 'DESCRIPTION'))
            for tag, value in ent['attributes'].items():
                name = ATTRIBUTE_FIELDS.get(tag.lower())
                if name and not f.get(name):
                    f[name] = value
            if f.get('lat_lon') and not f.get('lat'):
                m = re.match(r'^\s*([\d.]+)\s*([NS])\s+([\d.]+)\s*([EW])', f['lat_lon'])
                if m:
                    f['lat'] = str(float(m[1]) * (-1 if m[2] == 'S' else 1))
                    f['lon'] = str(float(m[3]) * (-1 if m[4] == 'W' else 1))
        elif kind == 'experiment':
            ref = el.find('STUDY_REF')
            if ref is not None:
                ent['refs'].setdefault('study', set()).update(_ids(ref))
            sd = el.find('DESIGN/SAMPLE_DESCRIPTOR')
            if sd is not None:
                ent['refs'].setdefault('sample', set()).update(_ids(sd))
            lib = el.find('DESIGN/LIBRARY_DESCRIPTOR')
            layout = lib.find('LIBRARY_LAYOUT') if lib is not None else None
            plat = el.find('PLATFORM')
            plat = plat[0] if plat is not None and len(plat) else None
            f.update(experiment_title=_text(el, 'TITLE'),
                     library_strategy=_text(lib, 'LIBRARY_STRATEGY') if lib is not None else None,
                     library_source=_text(lib, 'LIBRARY_SOURCE') if lib is not None else None,
                     library_selection=_text(lib, 'LIBRARY_SELECTION') if lib is not None
                     else None,
                     library_name=_text(lib, 'LIBRARY_NAME') if lib is not None else None,
                     library_layout=layout[0].tag if layout is not None and len(layout)
                     else None,
                     instrument_platform=plat.tag if plat is not None else None,
                     instrument_model=_text(plat, 'INSTRUMENT_MODEL') if plat is not None
                     else None)
            f['experiment_accession'] = acc
        elif kind == 'run':
            ref = el.find('EXPERIMENT_REF')
            if ref is not None:
                ent['refs'].setdefault('experiment', set()).update(_ids(ref))
            f.update(run_accession=acc, run_title=_text(el, 'TITLE'),
                     read_count=ent['attributes'].get('ENA-SPOT-COUNT'),
                     base_count=ent['attributes'].get('ENA-BASE-COUNT'))
        ent['fields'] = {k: v for k, v in f.items() if v}
        out.append(ent)
    return out


def _row_entity(row: dict) -> dict:
    """A Portal API row as an entity; which kind it is, its header says."""
    if row.get('run_accession'):
        kind, own = 'run', ('run_accession',)
    elif row.get('experiment_accession'):
        kind, own = 'experiment', ('experiment_accession',)
    elif row.get('sample_accession') or row.get('secondary_sample_accession'):
        kind, own = 'sample', ('sample_accession', 'secondary_sample_accession')
    elif row.get('study_accession') or row.get('secondary_study_accession'):
        kind, own = 'study', ('study_accession', 'secondary_study_accession')
    elif kind_of(row.get('accession', '')):
        kind, own = kind_of(row['accession']), ('accession',)
    else:
        raise ValueError('a row without a run, experiment, sample or study accession')
    if kind == 'sample' and row.get('accession'):
        own = own + ('accession',)
    refs = {}
    for k in ('study', 'sample', 'experiment'):
        if k != kind:
            accs = {row.get(f'{k}_accession'), row.get(f'secondary_{k}_accession')} - {None}
            if accs:
                refs[k] = accs
    return {'kind': kind, 'ids': {row[o] for o in own if row.get(o)}, 'fields': dict(row),
            'refs': refs, 'links': {}, 'attributes': {}}


def _stubs(ent: dict) -> list[dict]:
    """What a record says of the entities it refers to (aliases, a study's title)."""
    f = ent['fields']
    out = []
    for k, accs in ent['refs'].items():
        fields = {'study_title': f['study_title']} if k == 'study' and f.get('study_title') \
            else {}
        if k == 'experiment' and ent['kind'] == 'run':   # run rows carry the library
            fields = {n: f[n] for n in LIBRARY if f.get(n)}
        out.append({'kind': k, 'ids': set(accs), 'fields': fields, 'refs': {}, 'links': {},
                    'attributes': {}, 'stub': True})
    if ent['kind'] == 'experiment':    # an experiment names its runs: each is a granule
        for run in ent['refs'].get('run', ()):
            out.append({'kind': 'run', 'ids': {run}, 'refs': {
                'experiment': set(ent['ids'])}, 'links': {}, 'attributes': {},
                'fields': {'run_accession': run}})
    return out


# --- merging and linking ------------------------------------------------------------------
class Catalogue:
    """Entities of every answer merged by accession and linked run->experiment->sample->study."""

    def __init__(self, entities: list[dict]):
        parent: dict = {}

        def find(x):
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for ent in entities:
            keys = [(ent['kind'], i) for i in sorted(ent['ids'])]
            for k in keys[1:]:
                parent[find(k)] = find(keys[0])
            for k in keys[:1]:
                find(k)
        groups: dict = {}
        for ent in entities:
            if ent['ids']:
                groups.setdefault(find((ent['kind'], min(ent['ids']))), []).append(ent)
        self.find = find
        self.groups = {}
        for members in groups.values():
            merged = self._merge(members)
            for i in merged['ids']:
                self.groups[(merged['kind'], i)] = merged

    @staticmethod
    def _merge(members: list[dict]) -> dict:
        members = sorted(members, key=lambda e: e.get('stub', False))   # real records first
        out = {'kind': members[0]['kind'], 'ids': set(), 'fields': {}, 'refs': {},
               'links': {}, 'attributes': {}, 'sources': [],
               'stub': all(m.get('stub') for m in members), 'query': None}
        for m in members:
            out['ids'] |= m['ids']
            for k, v in m['fields'].items():
                out['fields'].setdefault(k, v)
            for k, v in m['refs'].items():
                out['refs'].setdefault(k, set()).update(v)
            for k, v in m['links'].items():
                out['links'].setdefault(k, v)
            for k, v in m['attributes'].items():
                out['attributes'].setdefault(k, v)
            if m.get('source') and m['source'] not in out['sources']:
                out['sources'].append(m['source'])
            out['query'] = out['query'] or m.get('query')
        prefer = {'study': 'PRJ', 'sample': 'SAM'}.get(out['kind'], '')
        out['accession'] = sorted(out['ids'], key=lambda i: (not i.startswith(prefer), i))[0]
        return out

    def get(self, kind: str, accs) -> dict | None:
        for a in sorted(accs or ()):
            if (kind, a) in self.groups:
                return self.groups[(kind, a)]
        return None

    def entities(self, kind: str) -> list[dict]:
        seen, out = set(), []
        for (k, _), ent in sorted(self.groups.items(), key=lambda kv: kv[0]):
            if k == kind and id(ent) not in seen and not ent['stub']:
                seen.add(id(ent))
                out.append(ent)
        return out

    def study_of(self, ent: dict) -> tuple[str | None, dict | None]:
        """The canonical study accession of a run or sample, and the study's entity."""
        accs = set(ent['refs'].get('study', ()))
        exp = self.get('experiment', ent['refs'].get('experiment'))
        if exp:
            accs |= exp['refs'].get('study', set())
        sample = self.get('sample', ent['refs'].get('sample'))
        if sample and not accs:
            accs |= sample['refs'].get('study', set())
        if ent['kind'] == 'sample' and not accs:     # a sample's study, as its runs say
            for run in self.runs_of_sample(ent):
                accs |= run['refs'].get('study', set())
        study = self.get('study', accs)
        if study:
            return study['accession'], study
        return (sorted(accs, key=lambda i: (not i.startswith('PRJ'), i))[0] if accs
                else None), None

    def runs_of_sample(self, sample: dict) -> list[dict]:
        if not hasattr(self, '_runs_by_sample'):
            self._runs_by_sample: dict[int, list] = {}
            for r in self.entities('run'):
                s = self.get('sample', self._sample_refs(r))
                if s is not None:
                    self._runs_by_sample.setdefault(id(s), []).append(r)
        return self._runs_by_sample.get(id(sample), [])

    def _sample_refs(self, run: dict) -> set:
        accs = set(run['refs'].get('sample', ()))
        exp = self.get('experiment', run['refs'].get('experiment'))
        if exp:
            accs |= exp['refs'].get('sample', set())
        return accs

    def enrich_run(self, run: dict) -> dict:
        """A run's fields with its experiment's library and its sample's context."""
        fields = dict(run['fields'])
        exp = self.get('experiment', run['refs'].get('experiment'))
        if exp:
            fields.setdefault('experiment_accession', exp['accession'])
            for k in LIBRARY:
                if exp['fields'].get(k):
                    fields.setdefault(k, exp['fields'][k])
        sample = self.get('sample', self._sample_refs(run))
        if sample:
            fields.setdefault('sample_accession', sample['accession'])
            for k in CONTEXT:
                if sample['fields'].get(k):
                    fields.setdefault(k, sample['fields'][k])
        return fields


# --- values -------------------------------------------------------------------------------
def number(value) -> float | None:
    m = re.match(r'^\s*(-?\d+(?:\.\d+)?)', str(value or ''))
    return float(m[1]) if m else None


def position(fields: dict) -> tuple[float, float] | None:
    try:
        lon, lat = float(fields['lon']), float(fields['lat'])
    except (KeyError, TypeError, ValueError):
        return None
    return (lon, lat) if -180 <= lon <= 180 and -90 <= lat <= 90 else None


def _bounds(part: str) -> tuple[str, str] | None:
    part = part.strip()
    if re.fullmatch(r'\d{4}', part):
        return f'{part}-01-01T00:00:00Z', f'{part}-12-31T23:59:59Z'
    if re.fullmatch(r'\d{4}-\d{2}', part):
        y, m = int(part[:4]), int(part[5:])
        if not 1 <= m <= 12:
            return None
        return f'{part}-01T00:00:00Z', f'{part}-{calendar.monthrange(y, m)[1]:02d}T23:59:59Z'
    if re.fullmatch(r'\d{4}-\d{2}-\d{2}', part):
        return f'{part}T00:00:00Z', f'{part}T23:59:59Z'
    from providers.query import iso
    try:
        t = iso(part)
    except Exception:
        return None
    return t, t


def collection_period(value: str | None) -> tuple[str | None, str | None]:
    """ENA collection_date (a date, a truncated date, a date-time or a/b) as (start, end)."""
    if not value:
        return None, None
    parts = [_bounds(p) for p in value.split('/')]
    if not parts or None in parts:
        return None, None
    return parts[0][0], parts[-1][1]


def marine_of(f: dict) -> tuple[str, str]:
    """('yes' | 'no' | 'unknown', why) from what the metadata says."""
    flag = (f.get('marine') or '').strip().lower()
    if flag in ('true', 'yes', '1'):
        return 'yes', 'marine flag is set'
    if flag in ('false', 'no', '0'):
        return 'no', 'marine flag is false'
    tax, name = f.get('tax_id'), f.get('scientific_name') or ''
    env = ' | '.join(f[k] for k in ENV if f.get(k))
    if tax in MARINE_TAXA:
        return 'yes', f'tax_id {tax} ({MARINE_TAXA[tax]})'
    for envo, label in MARINE_ENVO.items():
        if envo in env.upper().replace('_', ':'):
            return 'yes', f'environment {envo} ({label})'
    m = MARINE_WORDS.search(env)
    if m:
        return 'yes', f'environment says {m[0]!r}'
    if 'metagenome' in name and MARINE_WORDS.search(name):
        return 'yes', f'taxon {name!r}'
    if SEA_LOCATION.match(f.get('country') or ''):
        return 'yes', f"location {f['country']!r}"
    if tax in NOT_MARINE_TAXA:
        return 'no', f'tax_id {tax} ({NOT_MARINE_TAXA[tax]})'
    m = NOT_MARINE_WORDS.search(env)
    if m:
        return 'no', f'environment says {m[0]!r}'
    if 'metagenome' in name and NOT_MARINE_WORDS.search(name):
        return 'no', f'taxon {name!r}'
    return 'unknown', 'the metadata does not say'


def _split(value: str | None) -> list[str]:
    return [v for v in (value or '').split(';')] if value else []


# --- the connector ------------------------------------------------------------------------
FEATURE_FIELDS = {'accession': ('platform', 'string'), 'scientific_name': ('taxon', 'string'),
                  'study': ('dataset', 'string'), 'marine': ('qc', 'string'),
                  'depth': ('depth', 'number'), 'collection_date': ('time', 'string'),
                  'granule': ('granule', 'string')}


class EnaConnector(Connector):
    name = 'ena'
    title = 'ELIXIR-ENA (European Nucleotide Archive)'
    kind = 'sequencing runs (fastq files) and samples (position, environment, taxonomy)'
    default_url = 'https://www.ebi.ac.uk/'
    license = 'INSDC: no restrictions on use (https://www.ebi.ac.uk/ena/browser/about/policies)'
    citation = ('European Nucleotide Archive (ENA), EMBL-EBI. https://www.ebi.ac.uk/ena '
                '(cite each study accession)')
    feature_fields = FEATURE_FIELDS
    time_property = 'collection_date'

    def __init__(self, options: dict | None = None):
        super().__init__(options)
        self.marine_only = bool(self.options.get('marine_only', True))

    # listing: every answer, merged
    def _answers(self, source: Source) -> list[tuple[str, str, str | None]]:
        """(path, 'portal' | 'xml', search name) of every answer to read."""
        if isinstance(source, MirrorSource):
            out = []
            for p in sorted(source.root.rglob('*')):
                if p.is_file() and p.suffix in ('.tsv', '.json', '.xml') and \
                        p.name != 'MANIFEST.json':
                    rel = p.relative_to(source.root).as_posix()
                    name = p.stem[len('search_'):] if p.stem.startswith('search_') else None
                    out.append((rel, 'xml' if p.suffix == '.xml' else 'portal', name))
            return out
        accs, searches = self.options.get('accessions') or [], self.options.get('searches') or []
        if not accs and not searches:
            raise FileNotFoundError('no ENA accessions or searches configured '
                                    '(vre.bdis.ena.accessions / searches)')
        out = []
        for acc in accs:
            out.append((f'ena/browser/api/xml/{acc}', 'xml', None))
            out.append(('ena/portal/api/filereport?' + urlencode(
                {'accession': acc, 'result': 'read_run', 'fields': ','.join(RUN_FIELDS),
                 'format': 'tsv'}), 'portal', None))
        for s in searches:
            result = s.get('result', 'sample')
            params = {'result': result, 'query': s['query'],
                      'fields': ','.join(s.get('fields') or DEFAULT_FIELDS.get(result, [])),
                      'format': s.get('format', 'tsv'), 'limit': s.get('limit', 0)}
            out.append(('ena/portal/api/search?' + urlencode(params), 'portal',
                        s.get('name') or result))
        return out

    def _read_answer(self, source: Source, path: str, form: str) -> list[dict] | None:
        try:
            data = source.read(path)
        except FileNotFoundError:
            self._listing_problems.append((path, 'not found at the source'))
            return None
        except requests.HTTPError as err:
            if err.response is None or err.response.status_code >= 500:
                raise                              # the service is down: keep the old index
            self._listing_problems.append((path, f'HTTP {err.response.status_code}: '
                                           f'{err.response.text[:300]}'))
            return None
        try:
            return read_browser_xml(data) if form == 'xml' else \
                [_row_entity(r) for r in read_portal(data)]
        except (ValueError, ET.ParseError, StopIteration) as err:
            self._listing_problems.append((path, f'unreadable {form} answer: {err}'))
            return None

    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        entities = []
        for path, form, query in self._answers(source):
            for ent in self._read_answer(source, path, form) or []:
                ent.update(source=path, query=query)
                entities.append(ent)
                entities += [dict(s, source=path, query=query) for s in _stubs(ent)]
        cat = Catalogue(entities)
        self._collections: dict[str, dict] = {}
        self.filtered = Counter()
        self.filtered_records: list[str] = []
        refs = []
        for kind in ('sample', 'run'):
            for ent in cat.entities(kind):
                ref = self._granule_ref(cat, ent)
                if ref is not None:
                    refs.append(ref)
        return refs

    def _granule_ref(self, cat: Catalogue, ent: dict) -> GranuleRef | None:
        fields = cat.enrich_run(ent) if ent['kind'] == 'run' else dict(ent['fields'])
        marine, why = marine_of(fields)
        if marine == 'no' and self.marine_only:
            self.filtered[why] += 1
            self.filtered_records.append(ent['accession'])
            return None
        study, study_ent = cat.study_of(ent)
        if study:
            cid = f'ena-{study}'
            self._collections.setdefault(cid, self._study_collection(study, study_ent, fields))
        elif ent.get('query'):
            cid = f"ena-{ent['query']}"
            self._collections.setdefault(cid, self._query_collection(ent['query']))
        else:
            cid = 'ena-no-study'
            self._collections.setdefault(cid, self._query_collection(None))
        body = {'kind': ent['kind'], 'accession': ent['accession'], 'ids': sorted(ent['ids']),
                'fields': fields, 'attributes': ent['attributes'], 'links': ent['links'],
                'study': study, 'marine': [marine, why]}
        if ent['kind'] == 'sample':
            body['runs'] = sorted(r['accession'] for r in cat.runs_of_sample(ent))
        data = json.dumps(body, sort_keys=True).encode()
        return GranuleRef(id=f"ena-{ent['accession']}", path=ent['sources'][0],
                          collection=cid, etag=hashlib.sha1(data).hexdigest(),
                          meta={'data': data})

    def report_notes(self) -> dict:
        """For the harvest report: what the marine filter left out, and why."""
        return {'marine_only': self.marine_only,
                'filtered': {'count': sum(self.filtered.values()),
                             'reasons': dict(self.filtered),
                             'records': self.filtered_records[:200]}}

    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        return Stat(len(ref.meta['data']), None, ref.etag)

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        return ref.meta['data']

    # one run or sample
    def browser(self, acc: str) -> str:
        return f'{self.public_url}ena/browser/api/xml/{acc}'

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        try:
            body = json.loads(data)
            f, kind, acc = body['fields'], body['kind'], body['accession']
        except (ValueError, KeyError, TypeError) as err:
            raise GranuleError(f'not an ENA record: {err}') from None
        marine, why = body['marine']
        pos = position(f)
        tmin, tmax = collection_period(f.get('collection_date'))
        links = [{'href': self.browser(acc), 'rel': 'describedby', 'type': 'application/xml',
                  'title': f'ENA browser XML of {acc}'},
                 {'href': f'{self.public_url}ena/browser/view/{acc}', 'rel': 'alternate',
                  'type': 'text/html', 'title': f'ENA browser page of {acc}'}]
        for k in ('study', 'sample', 'experiment'):
            other = body['study'] if k == 'study' else f.get(f'{k}_accession')
            if other and other != acc:
                links.append({'href': self.browser(other), 'rel': 'related',
                              'type': 'application/xml', 'title': f'ENA {k} {other}'})
        extra = {'accession': acc, 'accessions': body['ids'], 'kind': kind,
                 'study': body['study'], 'marine': marine, 'marine_reason': why,
                 'lat': pos[1] if pos else None, 'lon': pos[0] if pos else None,
                 'depth': number(f.get('depth')), 'collection_date': f.get('collection_date'),
                 'first_public': f.get('first_public'), 'tax_id': f.get('tax_id'),
                 'scientific_name': f.get('scientific_name'), 'country': f.get('country'),
                 **{k: f.get(k) for k in ENV}}
        obs, url, title = [], self.browser(acc), None
        if kind == 'run':
            files = self._files(f)
            if files:
                url = files[0]['url']
                links[:0] = [{'href': x['url'], 'rel': 'enclosure', 'type': 'application/gzip',
                              'title': x['name'], 'length': x['bytes']} for x in files]
                links += [{'href': x['ftp'], 'rel': 'alternate', 'title': x['name'] + ' (FTP)'}
                          for x in files]
            filereport = (f'{self.public_url}ena/portal/api/filereport?accession={acc}'
                          '&result=read_run&fields=run_accession,fastq_ftp,fastq_md5,fastq_bytes')
            links.append({'href': filereport, 'rel': 'related', 'type': 'text/tab-separated-values',
                          'title': 'ENA filereport of the fastq files'})
            extra.update(files=files or None, fastq='listed' if files else 'none listed',
                         read_count=_int(f.get('read_count')),
                         base_count=_int(f.get('base_count')),
                         sample=f.get('sample_accession'),
                         experiment=f.get('experiment_accession'),
                         **{k: f.get(k) for k in LIBRARY})
            title = f"ENA run {acc}: {f.get('experiment_title') or f.get('run_title') or ''}"
        else:
            extra.update(runs=body.get('runs') or None, title=f.get('sample_title'),
                         description=f.get('description'), attributes=body['attributes'] or None)
            title = f"ENA sample {acc}: {f.get('sample_title') or f.get('description') or ''}"
            if pos:
                obs.append({'id': f'ena-{acc}', 'bdi': self.name, 'collection': ref.collection,
                            'granule': ref.id, 'time': tmin, 'lon': pos[0], 'lat': pos[1],
                            'platform': acc, 'kind': 'sample', 'taxon': f.get('scientific_name'),
                            'dataset': body['study'], 'depth': number(f.get('depth')),
                            'qc': marine, 'props': {
                                k: v for k, v in dict(
                                    extra, runs=body.get('runs') or None, study=body['study'],
                                    url=self.browser(acc), collection_date=None,
                                    accession=None, depth=None, lat=None, lon=None).items()
                                if v not in (None, '', [], {})}})
        record = {
            'id': ref.id, 'bdi': self.name, 'collection': ref.collection, 'path': ref.path,
            'url': url, 'title': title.rstrip(': '), 'type': kind,
            'minx': pos[0] if pos else None, 'maxx': pos[0] if pos else None,
            'miny': pos[1] if pos else None, 'maxy': pos[1] if pos else None,
            'tmin': tmin, 'tmax': tmax, 'platform': f.get('instrument_model'),
            'parameters': ' '.join(f[k].replace(' ', '_') for k in
                                   ('library_strategy', 'library_source') if f.get(k)) or None,
            'taxon': f.get('scientific_name'), 'license': self.license,
            'citation': (f"ENA {kind} {acc}" + (f", study {body['study']}" if body['study']
                                                 else '') + f'. {self.citation}'),
            'extra': dict({k: v for k, v in extra.items() if v not in (None, '', [], {})},
                          links=links)}
        return Granule(record, obs, [])

    @staticmethod
    def _files(f: dict) -> list[dict]:
        """Paired fastq files: ';' separates them in fastq_ftp, fastq_md5, fastq_bytes."""
        ftp, md5, size = _split(f.get('fastq_ftp')), _split(f.get('fastq_md5')), \
            _split(f.get('fastq_bytes'))
        return [{'name': path.rsplit('/', 1)[-1], 'url': https_of(path),
                 'ftp': 'ftp://' + re.sub(r'^(ftp|https?)://', '', path),
                 'md5': md5[i] if i < len(md5) else None,
                 'bytes': _int(size[i]) if i < len(size) else None}
                for i, path in enumerate(ftp) if path]

    # collections
    def _study_collection(self, acc: str, ent: dict | None, fields: dict) -> dict:
        sf = ent['fields'] if ent else {}
        title = sf.get('study_title') or fields.get('study_title') or f'ENA study {acc}'
        others = sorted((ent['ids'] if ent else set()) - {acc})
        return {'id': f'ena-{acc}', 'bdi': self.name, 'type': 'dataset', 'title': title,
                'description': sf.get('study_description') or
                f'Runs and samples of ENA study {acc}' + (f" ({', '.join(others)})"
                                                          if others else ''),
                'keywords': ','.join(['ENA', 'nucleotide sequences', acc, *others]),
                'license': self.license,
                'citation': f'{title}. ENA study {acc}. {self.public_url}ena/browser/view/{acc}',
                'url': f'{self.public_url}ena/browser/view/{acc}',
                'extra': {'study_accession': acc, 'aliases': others,
                          'first_public': sf.get('first_public'),
                          'marine_only': self.marine_only}}

    def _query_collection(self, query: str | None) -> dict:
        cid = f'ena-{query}' if query else 'ena-no-study'
        title = (f'ENA search {query!r}' if query else 'ENA records without a known study')
        return {'id': cid, 'bdi': self.name, 'type': 'dataset', 'title': title,
                'description': f'{title}: runs and samples harvested from the ENA Portal API',
                'keywords': 'ENA,nucleotide sequences', 'license': self.license,
                'citation': self.citation, 'url': f'{self.public_url}ena/browser/',
                'extra': {'search': query, 'marine_only': self.marine_only}}

    def collections(self) -> list[dict]:
        return list(getattr(self, '_collections', {}).values())


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
