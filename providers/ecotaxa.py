"""EcoTaxa (plankton image annotation): export TSVs -> Darwin Core occurrences and samples.

What a granule is: one *export*, as an EcoTaxa/EcoPart export job delivers it: a zip of TSVs
(and vignettes), or that zip unpacked in a folder. Every TSV of one export is read together,
so objects get the position and time of their sample or UVP cast (the UVP "raw" export keeps
lat/lon/date in `*_Export_metadata_summary.tsv`, joined to the ZOO objects by `psampleid` and
to the PAR particle tables by their file name) and per-sample summaries join their sample.
A TSV lying at the top of the BDI root is an export of its own.

TSVs known (recognised by their header, UTF-8 or latin-1, the import "[t]/[f]" type row as
2nd line skipped): object exports and import files (`object_*`, `sample_*`, `acq_*`,
`process_*`, `img_*` columns), UVP raw exports (metadata summary, ZOO objects, PAR particle
size classes), summary exports (summary per sample with positions, abundances /
concentrations / biovolumes by sample, whole-project counts).

Layout read:
- mirror: the folder as ../shared/data/bdi/ecotaxa: each folder holding TSVs is one export,
  each *.zip is one export, TSVs at the root are one export each; vignettes beside the TSVs.
- live (HttpSource at the base URL): the option `exports` lists export paths under the base
  URL: a zip (e.g. `api/jobs/<id>/file`, the file of a finished EcoTaxa export job) or a TSV,
  or a folder (ending in `/`) answering an HTML index page (autoindex) of its files. Without
  `exports` the base URL is such a folder, walked down its index pages like the mirror.

Served as:
- `ecotaxa-occurrences` Features: one Darwin Core occurrence per object (DwC terms as
  properties; `dynamicProperties` holds the object's morphometric `object_*` values);
  `associatedMedia` is the vignette: on a mirror served by our route /ecotaxa/media/<path>
  (made absolute at serve time by EcotaxaFeatures, option `media_url`), live the vignette's
  URL beside the TSV (several joined by ' | ', as EcoTaxa writes one row per image of an
  object; those rows are one occurrence); in an export zip the image names are kept as
  `vignette`. Objects with an EcoTaxa objid also get `references`, the live EcoTaxa API
  record (https://ecotaxa.obs-vlfr.fr/api/object/<objid>, images included). Split exports
  of the same objects in one export (by taxon, by acquisition) give each object once.
- `ecotaxa-samples` Features: one per sample (or UVP cast) of an export, at its position:
  object counts per category and status, and where the export has them the summary values
  (abundance, concentration, biovolume per taxon) and, for UVP casts, the particle profile
  (particles per litre by depth, from PAR: sum(nbr) / (imgcount * acq_volimage)). Samples
  are Features of their own (not granule properties) because one export holds many samples
  and a user searches them by place and time like the occurrences.
- level-2 Records `ecotaxa-granules`: one per export (samples, instruments, counts, extent);
  level-1: one collection per EcoTaxa project (`ecotaxa-project-<n>`: from the export file
  name `ecotaxa_export_<n>_...`, the UVP metadata `projid`, or the option `projects`
  {export path: n}), else per export.

Darwin Core conversion follows the published akvaplan-niva/ecotaxa-darwin-core converter
(its output for the 1-line DOI export is the reference, see the tests): datasetID = UUIDv5
(URL namespace, https://ecotaxa.obs-vlfr.fr/prj/<project>), eventID = UUIDv5(datasetID,
sample_id), occurrenceID = UUIDv5(datasetID, object_id) (without a project: UUIDv5 of the
objid in the EcoTaxa namespace). Where ours differs from that reference and why:
- dateIdentified keeps the annotation time (09:48:12): the reference read the time from
  JSON where 094812 had become the number 94812 and lost it (T00:00:00Z);
- coordinateUncertaintyInMeters (30 in the reference) is a default of that converter, not in
  the data: not set; dynamicProperties holds only the `object_*` measurements (sample,
  acquisition and process metadata are on the sample feature, not repeated per object);
- decimalLatitude/Longitude are rounded to 6 decimals as in the reference; the geometry
  keeps the exported value.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import uuid
import zipfile
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from providers.base import (Connector, Granule, GranuleError, GranuleRef, MirrorSource, Source,
                            Stat)
from providers.index import IndexFeatures

ECOTAXA_URL = 'https://ecotaxa.obs-vlfr.fr'
ECOTAXA_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, ECOTAXA_URL)
STATUS = {'V': 'validated', 'P': 'predicted', 'D': 'dubious'}
LIFE_STAGES = ('egg', 'nauplii', 'part', 'veliger', 'zoea')
IMAGES = ('.jpg', '.jpeg', '.png', '.gif', '.tif', '.tiff')
TEXT_COLUMNS = re.compile(r'(_id|_date|_time|_name|_email|_category|_hierarchy|_status)$')

FEATURE_FIELDS = {
    'scientificName': ('taxon', 'string'), 'eventDate': ('time', 'string'),
    'depth': ('depth', 'number'), 'identificationVerificationStatus': ('qc', 'string'),
    'sample': ('platform', 'string'), 'instrument': ('data_mode', 'string'),
    'category': ('parameters', 'string'), 'kind': ('kind', 'string'),
    'project': ('dataset', 'string'), 'granule': ('granule', 'string')}


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', text).strip('_') or 'x'


def _num(value):
    if value in (None, ''):
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if out == out else None


def _when(date, time=None) -> str | None:
    """EcoTaxa date (YYYYMMDD or YYYY-MM-DD[ HH:MM:SS]) and time (HHMMSS, HH:MM:SS, or HHMM
    when 4 digits or fewer: '420' is 04:20, the time EcoTaxa exports for that object) as UTC."""
    if not date:
        return None
    date = str(date).strip()
    if ' ' in date or 'T' in date:
        date, time = re.split(r'[ T]', date, maxsplit=1)
    d = re.sub(r'\D', '', date)
    t = re.sub(r'\D', '', str(time or ''))[:6]
    t = t.zfill(4) + '00' if len(t) <= 4 else t.zfill(6)
    try:
        return datetime.strptime(d + t, '%Y%m%d%H%M%S').strftime('%Y-%m-%dT%H:%M:%SZ')
    except ValueError:
        return None


def scientific_name(hierarchy: str | None) -> tuple[str | None, str | None]:
    """(scientificName, lifeStage) from an annotation hierarchy (a>b>c) or display name
    (c<b): the last or next-to-last part that is a Latin name; non-living has none."""
    if not hierarchy or hierarchy.startswith('not-living') or hierarchy.startswith('temporary'):
        return None, None
    if re.fullmatch(r'[A-Z][a-z]+ [a-z]+( [a-z]+)?', hierarchy.strip()):
        return hierarchy.strip(), None
    parts = list(dict.fromkeys(p.strip() for p in re.split(r'[<>]', hierarchy) if p.strip()))
    stage = parts[-1] if parts and parts[-1] in LIFE_STAGES else None
    if stage:
        parts.pop()
    for cand in parts[-1:-3:-1]:
        cand = re.sub(r' (X|sp\.)$', '', cand)
        if re.fullmatch(r'[A-Z][a-z]+( [a-z]+){0,2}', cand):
            return cand, stage
    return None, stage


def read_tsv(name: str, data: bytes, problems: list[str]) -> tuple[list[str], list[dict], dict]:
    """Header and rows of an EcoTaxa TSV; a row with a wrong field count is reported and
    skipped; the import files' "[t]/[f]" type row is dropped (it types the columns)."""
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError:
        text = data.decode('latin-1')
    rows = csv.reader(io.StringIO(text), delimiter='\t')
    header = next(rows, None)
    if not header:
        return [], [], {}
    header = [h.strip() for h in header]
    out, types = [], {}
    for n, fields in enumerate(rows, start=2):
        if not fields or fields == ['']:
            continue
        if len(fields) != len(header):
            problems.append(f'{name} line {n}: {len(fields)} fields, header has {len(header)}; '
                            'row skipped')
            continue
        if n == 2 and all(f.strip().lower() in ('[t]', '[f]') for f in fields):
            types = {h: f.strip().lower() for h, f in zip(header, fields)}
            continue
        out.append(dict(zip(header, fields)))
    return header, out, types


def _value(col: str, value: str, types: dict):
    """A measurement as a number when it is one ([f] columns, or numeric non-id columns)."""
    if types.get(col) == '[t]' or TEXT_COLUMNS.search(col):
        return value if value != '' else None
    num = _num(value)
    return num if num is not None else (value if value != '' else None)


class _Export:
    """The TSVs of one export, read and joined."""

    def __init__(self, files: dict[str, bytes], problems: list[str]):
        self.problems = problems
        self.objects: list[tuple[str, dict]] = []     # (file, row)
        self.casts: dict[str, dict] = {}              # psampleid -> metadata row
        self.particles: dict[str, list[dict]] = {}    # PAR file name -> rows
        self.summary: dict[str, dict] = {}            # sample -> {position, counts, ...}
        self.whole: dict[str, float] = {}
        self.kinds: set[str] = set()
        self.types: dict[str, dict] = {}              # file -> its [t]/[f] row
        for name in sorted(files):
            header, rows, self.types[name] = read_tsv(name, files[name], problems)
            cols = set(header)
            base = PurePosixPath(name).name
            if {'psampleid', 'profileid', 'latitude', 'longitude'} <= cols:
                self.kinds.add('uvp-raw')
                self.casts.update({r['psampleid']: r for r in rows})
            elif {'orig_id', 'psampleid', 'taxo_hierarchy'} <= cols or 'object_id' in cols:
                self.kinds.add('uvp-raw' if 'orig_id' in cols else 'objects')
                self.objects += [(name, r) for r in rows]
            elif {'depth', 'imgcount', 'area', 'nbr'} <= cols:
                self.particles[base] = rows
            elif {'sample_id', 'latitude', 'longitude', 'display_name', 'nbr'} <= cols:
                self.kinds.add('summary')
                for r in rows:
                    s = self.summary.setdefault(r['sample_id'], {})
                    s.update(lat=_num(r['latitude']), lon=_num(r['longitude']),
                             time=_when(r['date']))
                    s.setdefault('counts', {})[r['display_name']] = _num(r['nbr'])
            elif {'sampleid', 'status', 'taxonid'} <= cols and len(header) == 4:
                self.kinds.add('summary')
                what = {'count': 'abundance'}.get(header[3], header[3])
                for r in rows:
                    s = self.summary.setdefault(r['sampleid'], {})
                    s.setdefault(what, {})[r['taxonid']] = _num(r[header[3]])
                    s.setdefault('status', {})[r['taxonid']] = STATUS.get(r['status'],
                                                                           r['status'])
            elif cols == {'display_name', 'nbr'}:
                self.kinds.add('summary')
                self.whole.update({r['display_name']: _num(r['nbr']) for r in rows})
            else:
                problems.append(f'{name}: not an EcoTaxa export TSV (header '
                                f'{", ".join(header[:6])}...); file skipped')

    def cast_of_particles(self, psampleid: str) -> list[dict]:
        meta = self.casts.get(psampleid) or {}
        return self.particles.get(meta.get('Particle filename') or '', [])


class EcotaxaConnector(Connector):
    name = 'ecotaxa'
    title = 'EcoTaxa (plankton images and their annotations)'
    kind = 'plankton image objects (taxonomy, morphometrics, vignettes), samples, UVP casts'
    default_url = ECOTAXA_URL + '/'
    license = 'per project (EcoTaxa projects are often CC-BY 4.0 or CC0; see the project)'
    citation = ('Picheral M., Colin S., Irisson J.-O. (2017). EcoTaxa, a tool for the '
                'taxonomic classification of images. https://ecotaxa.obs-vlfr.fr '
                '(cite each project too)')
    feature_fields = FEATURE_FIELDS
    time_property = 'eventDate'
    # the source being harvested, set by granules(); read() builds links from it
    _mirror = True
    _base = ''

    # --- listing -------------------------------------------------------------------------
    def granules(self, source: Source) -> list[GranuleRef]:
        self._listing_problems = []
        self._mirror = isinstance(source, MirrorSource)
        self._base = '' if self._mirror else source.url('')
        exports = self.options.get('exports')
        if isinstance(source, MirrorSource):
            found = self._walk_mirror(source)
        elif exports:
            found = []
            for path in exports:
                if path.endswith('/'):
                    files = self._walk_http(source, path, depth=0)
                    found += files or []
                else:
                    found.append((path, [path], [path]))
        else:
            found = self._walk_http(source, '', depth=0)
            if not found:
                raise FileNotFoundError(f'no EcoTaxa export (TSV, zip) listed at {source!r}')
        return [GranuleRef(id='ecotaxa-' + _slug(path.strip('/')), path=path, collection='',
                           meta={'tsvs': tsvs, 'files': files})
                for path, tsvs, files in found]

    @staticmethod
    def _walk_mirror(source: MirrorSource) -> list[tuple[str, list, list]]:
        out = []
        root = source.root
        for d in sorted([root] + [p for p in root.rglob('*') if p.is_dir()]):
            files = sorted(p for p in d.iterdir() if p.is_file())
            rel = lambda p: p.relative_to(root).as_posix()   # noqa: E731
            tsvs = [rel(p) for p in files if p.suffix.lower() == '.tsv']
            out += [(rel(p), [rel(p)], [rel(p)]) for p in files if p.suffix.lower() == '.zip']
            if d == root:
                out += [(t, [t], [t]) for t in tsvs]
            elif tsvs:
                out.append((rel(d) + '/', tsvs, [rel(p) for p in files]))
        return out

    def _walk_http(self, source: Source, folder: str, depth: int) -> list[tuple[str, list, list]]:
        """A web folder's export(s) from its HTML index page (autoindex), recursively."""
        try:
            page = source.read(folder).decode('utf-8', 'replace')
        except FileNotFoundError:
            self._listing_problems.append((folder or '/', 'folder not found'))
            return []
        names = []
        for href in re.findall(r'href="([^"?#]+)"', page):
            path = unquote(urlsplit(href).path)
            if href.startswith(('http:', 'https:', '/', '..')) or path in ('', './'):
                continue
            names.append(folder + path)
        names = sorted(set(names))
        files = [n for n in names if not n.endswith('/')]
        tsvs = [n for n in files if n.lower().endswith('.tsv')]
        out = [(n, [n], [n]) for n in files if n.lower().endswith('.zip')]
        if folder == '':
            out += [(t, [t], [t]) for t in tsvs]
        elif tsvs:
            out.append((folder, tsvs, files))
        if depth < 4:
            for sub in (n for n in names if n.endswith('/')):
                out += self._walk_http(source, sub, depth + 1)
        return out

    # --- change detection and bytes --------------------------------------------------------
    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        if not ref.path.endswith('/'):
            return source.stat(ref.path)
        sts = [source.stat(p) for p in ref.meta['tsvs']]
        tags = [str(s.etag or s.mtime) for s in sts]
        return Stat(sum(s.size or 0 for s in sts),
                    max((s.mtime for s in sts if s.mtime), default=None),
                    hashlib.sha1('|'.join(tags).encode()).hexdigest()
                    if not isinstance(source, MirrorSource) else None)

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        """A folder's TSVs packed as the zip an export job gives; files are read as they are."""
        if not ref.path.endswith('/'):
            return source.read(ref.path)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w') as zf:
            for p in ref.meta['tsvs']:
                zf.writestr(zipfile.ZipInfo(p[len(ref.path):], (1980, 1, 1, 0, 0, 0)),
                            source.read(p))
        return buf.getvalue()

    # --- reading -------------------------------------------------------------------------
    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        problems: list[str] = []
        folder = ref.path if ref.path.endswith('/') else str(PurePosixPath(ref.path).parent)
        folder = '' if folder in ('.', '') else folder.rstrip('/') + '/'
        # vignettes: files beside the TSVs (mirror or web folder), or inside a real export zip
        media = {'folder': folder, 'inzip': set(),
                 'present': {f[len(folder):] for f in ref.meta.get('files', [])
                             if f.startswith(folder)}}
        if data[:2] == b'PK':
            try:
                zf = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile:
                raise GranuleError('not a zip archive') from None
            files = {i.filename: zf.read(i) for i in zf.infolist()
                     if i.filename.lower().endswith('.tsv')}
            if not ref.path.endswith('/'):
                media.update(present=set(), inzip={i.filename for i in zf.infolist()})
        else:
            files = {PurePosixPath(ref.path).name: data}
        if not files:
            raise GranuleError('no TSV in this export')
        exp = _Export(files, problems)
        if not exp.kinds:
            raise GranuleError('no EcoTaxa TSV in this export: ' + '; '.join(problems))
        project = self._project(ref, exp, files)
        coll = f'ecotaxa-project-{project}' if project else ref.id
        dataset_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f'{ECOTAXA_URL}/prj/{project}')) \
            if project else None
        samples: dict[str, dict] = {}
        occ = self._occurrences(ref, exp, media, dataset_id, coll, samples, problems)
        obs = occ + self._samples(ref, exp, samples, coll, dataset_id)
        record = self._record(ref, exp, obs, coll, project, files)
        self._seen = getattr(self, '_seen', {})
        self._seen[coll] = (project, exp, record)
        return Granule(record, obs, problems)

    def _project(self, ref, exp: _Export, files) -> int | None:
        conf = self.options.get('projects') or {}
        for key in (ref.path, ref.path.rstrip('/')):
            if key in conf:
                return int(conf[key])
        projids = {c.get('projid') for c in exp.casts.values() if c.get('projid')}
        if len(projids) == 1:
            return int(projids.pop())
        for name in files:
            m = re.match(r'ecotaxa_export_(\d+)_\d{8}_\d{4}', PurePosixPath(name).name)
            if m:
                return int(m.group(1))
        return None

    def _occurrences(self, ref, exp, media, dataset_id, coll, samples, problems):
        out, seen, nopos, props_of = [], {}, {}, {}
        for fname, r in exp.objects:
            types = exp.types.get(fname, {})
            oid = r.get('object_id') or r.get('orig_id')
            objid = r.get('objid') or None
            known = seen.setdefault(oid, set())
            # split exports repeat objects of the full one; two objids are two objects
            if not oid or (known and (not objid or objid in known or known == {None})):
                if oid in props_of:          # the same object's next image (img_rank 1, ...)
                    self._attach(props_of[oid], r.get('img_file_name'), media)
                continue
            dup = bool(known)          # an object_id used twice: told apart by its objid
            fid = f'{ref.id}-{_slug(oid)}' + (f'-{objid}' if dup else '')
            known.add(objid)
            cast = exp.casts.get(r.get('psampleid') or '') if 'orig_id' in r else None
            sample = r.get('sample_id') or (cast or {}).get('profileid') or r.get('psampleid')
            lat, lon = _num(r.get('object_lat')), _num(r.get('object_lon'))
            when = _when(r.get('object_date'), r.get('object_time'))
            if cast:
                lat, lon = _num(cast.get('latitude')), _num(cast.get('longitude'))
                when = _when(cast.get('sampledate'))
            summ = exp.summary.get(sample or '')
            if (lat is None or lon is None) and summ and summ.get('lat') is not None:
                lat, lon, when = summ['lat'], summ['lon'], when or summ.get('time')
            if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                nopos.setdefault(fname, []).append(oid)
                continue
            hierarchy = r.get('object_annotation_hierarchy') or r.get('taxo_hierarchy') or \
                r.get('object_annotation_category') or r.get('name')
            category = r.get('object_annotation_category') or r.get('name')
            name, stage = scientific_name(hierarchy)
            status = r.get('object_annotation_status') or \
                STATUS.get(r.get('classif_qual') or '', r.get('classif_qual'))
            if 'orig_id' in r:
                dmin = dmax = _num(r.get('depth_including_offset'))
            else:
                dmin, dmax = _num(r.get('object_depth_min')), _num(r.get('object_depth_max'))
            depth = (dmin + dmax) / 2 if None not in (dmin, dmax) else (dmin if dmax is None
                                                                        else dmax)
            instrument = r.get('acq_instrument') or ((cast or {}).get('instrumtype'))
            event = str(uuid.uuid5(uuid.UUID(dataset_id), sample)) if dataset_id and sample \
                else None
            occurrence_id = str(uuid.uuid5(uuid.UUID(dataset_id), oid)) \
                if dataset_id and not dup else \
                (str(uuid.uuid5(ECOTAXA_NAMESPACE, objid)) if objid else None)
            who = r.get('object_annotation_person_name')
            net, mesh, ship = (r.get('sample_net_type'), r.get('sample_net_mesh'),
                               r.get('sample_ship'))
            props = {
                'scientificName': name, 'lifeStage': stage, 'organismQuantity': 1,
                'organismQuantityType': 'individuals',
                'occurrenceStatus': 'present' if name else None,
                'eventDate': when, 'fieldNumber': sample, 'catalogNumber': oid,
                'locality': r.get('sample_stationid') or (cast or {}).get('stationid'),
                'basisOfRecord': 'MachineObservation',
                'verbatimEventDate': (f"{r['object_date']}T{r.get('object_time') or ''}"
                                      if r.get('object_date') else
                                      (cast or {}).get('sampledate')),
                'decimalLongitude': round(lon, 6), 'decimalLatitude': round(lat, 6),
                'maximumDepthInMeters': dmax, 'minimumDepthInMeters': dmin,
                'samplingProtocol': net or None,
                'samplingEffort': f'{net} mesh size {mesh} from {ship}' if mesh else None,
                'eventRemarks': r.get('sample_comment') if r.get('sample_comment') not in
                (None, '', 'no') else None,
                'occurrenceID': occurrence_id, 'datasetID': dataset_id, 'eventID': event,
                'parentEventID': dataset_id, 'geodeticDatum': 'WGS84',
                'dateIdentified': _when(r.get('object_annotation_date'),
                                        r.get('object_annotation_time')),
                'identificationVerificationStatus': status,
                'identificationRemarks': hierarchy,
                'identifiedBy': f'{ECOTAXA_URL} | {who}' if who else ECOTAXA_URL,
                'category': category, 'instrument': instrument, 'sample': sample,
                'objid': int(objid) if objid and objid.isdigit() else None,
                'references': f'{ECOTAXA_URL}/api/object/{objid}' if objid else None,
                'sourceFile': fname,
                'dynamicProperties': {k: _value(k, v, types) for k, v in r.items()
                                      if k.startswith('object_') and k not in OBJECT_DWC} or
                {k: _value(k, v, types) for k, v in r.items() if k not in UVP_DWC},
            }
            props = {k: v for k, v in props.items() if v is not None}
            props_of[oid] = props
            self._attach(props, r.get('img_file_name'), media)
            out.append({
                'id': fid, 'bdi': self.name,
                'collection': 'ecotaxa-occurrences', 'granule': ref.id, 'time': when,
                'lon': lon, 'lat': lat, 'platform': (sample or '')[:64] or None,
                'data_mode': (instrument or '')[:16] or None, 'kind': 'occurrence',
                'parameters': category, 'taxon': name, 'dataset': coll, 'depth': depth,
                'qc': status, 'props': props})
            s = samples.setdefault(sample or '', {'lons': [], 'lats': [], 'times': [],
                                                  'depths': [], 'counts': {}, 'status': {},
                                                  'taxa': set(), 'instrument': instrument,
                                                  'meta': {}, 'cast': cast})
            s['lons'].append(lon), s['lats'].append(lat), s['times'].append(when)
            s['depths'] += [d for d in (dmin, dmax) if d is not None]
            s['counts'][category] = s['counts'].get(category, 0) + 1
            s['status'][status] = s['status'].get(status, 0) + 1
            s['taxa'].add(name) if name else None
            if not s['meta']:
                s['meta'] = {k: v for k, v in r.items()          # as exported (text)
                             if k.startswith(('sample_', 'acq_', 'process_')) and v != ''}
        for fname, ids in nopos.items():
            problems.append(f'{fname}: {len(ids)} object(s) without a position (no lat/lon and '
                            f'no sample or cast giving one), e.g. {ids[0]}; not served')
        return out

    def _attach(self, props: dict, img: str | None, media: dict) -> None:
        """An object's vignette: a path for our media route (mirror), the live URL beside
        the TSV (web folder), or the name inside the export zip; several are kept in order."""
        if img and img in media['inzip']:
            props.setdefault('vignette', []).append(img)
        elif img and img in media['present']:
            path = media['folder'] + img
            if self._mirror:
                props.setdefault('media', []).append(path)
            else:
                props['associatedMedia'] = ' | '.join(
                    filter(None, [props.get('associatedMedia'), self._base + path]))

    def _samples(self, ref, exp: _Export, samples: dict, coll, dataset_id) -> list[dict]:
        for psid, cast in exp.casts.items():       # every UVP cast, with objects or not
            s = samples.get(cast.get('profileid'))
            if s is None:
                samples[cast.get('profileid')] = {
                    'lons': [], 'lats': [], 'times': [], 'depths': [], 'counts': {},
                    'status': {}, 'taxa': set(), 'instrument': cast.get('instrumtype'),
                    'meta': {}, 'cast': cast}
        for sid, summ in exp.summary.items():
            samples.setdefault(sid, {'lons': [], 'lats': [], 'times': [], 'depths': [],
                                     'counts': {}, 'status': {}, 'taxa': set(),
                                     'instrument': None, 'meta': {}, 'cast': None})
        out = []
        for sid, s in samples.items():
            cast, summ = s['cast'], exp.summary.get(sid) or {}
            if cast:
                lon, lat = _num(cast.get('longitude')), _num(cast.get('latitude'))
                when = _when(cast.get('sampledate'))
            elif s['lons']:
                lon, lat = sum(s['lons']) / len(s['lons']), sum(s['lats']) / len(s['lats'])
                when = min((t for t in s['times'] if t), default=None)
            else:
                lon, lat, when = summ.get('lon'), summ.get('lat'), summ.get('time')
            props = {'sample': sid, 'eventDate': when, 'instrument': s['instrument'],
                     'objects': sum(s['counts'].values()) if s['counts'] else None,
                     'categories': s['counts'] or None, 'status': s['status'] or None,
                     'minimumDepthInMeters': min((d for d in s['depths'] if d is not None),
                                                 default=None),
                     'maximumDepthInMeters': max((d for d in s['depths'] if d is not None),
                                                 default=None),
                     'eventID': str(uuid.uuid5(uuid.UUID(dataset_id), sid))
                     if dataset_id else None, 'metadata': s['meta'] or None}
            for key in ('abundance', 'concentration', 'biovolume'):
                props[key] = summ.get(key)
            if summ.get('counts'):
                props['summary_counts'] = summ['counts']
            if summ.get('status') and any(k in summ for k in ('abundance', 'concentration',
                                                               'biovolume')):
                props['summary_status'] = summ['status']
            if cast:
                props['metadata'] = {k: v for k, v in cast.items() if v != ''}
                props['plankton_file_in_export'] = cast.get('Plankton filename') in \
                    {PurePosixPath(f).name for f, _ in exp.objects}
                levels = _particle_profile(exp.cast_of_particles(cast.get('psampleid')),
                                           _num(cast.get('acq_volimage')))
            else:
                levels = None
            out.append({
                'id': f'{ref.id}-sample-{_slug(sid)}', 'bdi': self.name,
                'collection': 'ecotaxa-samples', 'granule': ref.id, 'time': when,
                'lon': lon, 'lat': lat, 'platform': sid[:64], 'kind': 'sample',
                'data_mode': (s['instrument'] or '')[:16] or None, 'dataset': coll,
                'taxon': ','.join(sorted(s['taxa'])) or None,
                'props': {k: v for k, v in props.items() if v is not None}, 'levels': levels})
        return out

    def _record(self, ref, exp, obs, coll, project, files) -> dict:
        pts = [o for o in obs if o['lon'] is not None]
        times = sorted(o['time'] for o in obs if o['time'])
        occ = [o for o in obs if o['kind'] == 'occurrence']
        smp = [o for o in obs if o['kind'] == 'sample']
        taxa = sorted({o['taxon'] for o in occ if o['taxon']})
        instruments = sorted({o['data_mode'] for o in obs if o['data_mode']})
        status: dict[str, int] = {}
        for o in occ:
            status[o['qc']] = status.get(o['qc'], 0) + 1
        url = self._base + ref.path if self._base else None
        return {
            'id': ref.id, 'bdi': self.name, 'collection': coll, 'path': ref.path, 'url': url,
            'title': f"EcoTaxa {'/'.join(sorted(exp.kinds))} export {ref.path.rstrip('/')}"
                     + (f' (project {project})' if project else ''),
            'type': '+'.join(sorted(exp.kinds)) + '-export',
            'minx': min((o['lon'] for o in pts), default=None),
            'maxx': max((o['lon'] for o in pts), default=None),
            'miny': min((o['lat'] for o in pts), default=None),
            'maxy': max((o['lat'] for o in pts), default=None),
            'tmin': times[0] if times else None, 'tmax': times[-1] if times else None,
            'platform': ','.join(instruments)[:64] or None,
            'parameters': ' '.join(sorted({o['parameters'] for o in occ
                                           if o['parameters']}))[:4000] or None,
            'taxon': ','.join(taxa)[:4000] or None, 'qc': ','.join(sorted(status)) or None,
            'license': self.license, 'citation': self.citation,
            'extra': {'files': sorted(files), 'project': project,
                      'samples': sorted(o['platform'] for o in smp),
                      'instruments': instruments, 'objects': len(occ), 'status': status,
                      'whole_counts': exp.whole or None}}

    def collections(self) -> list[dict]:
        rows = []
        for cid, (project, exp, record) in getattr(self, '_seen', {}).items():
            cast = next(iter(exp.casts.values()), {})
            title = cast.get('ptitle') or (f'EcoTaxa project {project}' if project else
                                           f"EcoTaxa export {record['path'].rstrip('/')}")
            rows.append({
                'id': cid, 'bdi': self.name, 'type': 'dataset', 'title': title,
                'description': f'EcoTaxa plankton image objects and samples ({record["type"]})'
                               + (f", cruise {cast.get('cruise')}, ship {cast.get('ship')}"
                                  if cast else ''),
                'keywords': 'EcoTaxa,plankton,imaging,Darwin Core,'
                            + ','.join(record['extra']['instruments']),
                'license': self.license, 'citation': self.citation,
                'url': f'{ECOTAXA_URL}/prj/{project}' if project else record['url']})
        return rows



OBJECT_DWC = {'object_id', 'object_lat', 'object_lon', 'object_date', 'object_time',
              'object_depth_min', 'object_depth_max', 'object_annotation_status',
              'object_annotation_person_name', 'object_annotation_date',
              'object_annotation_time', 'object_annotation_hierarchy'}
UVP_DWC = {'orig_id', 'objid', 'name', 'taxo_hierarchy', 'classif_qual',
           'depth_including_offset', 'psampleid'}


def _particle_profile(rows: list[dict], volimage: float | None) -> dict | None:
    """Particles per depth bin of a UVP cast (PAR table): counts, images, per litre."""
    if not rows:
        return None
    by_depth: dict[float, list] = {}
    for r in rows:
        d = _num(r.get('depth'))
        if d is None:
            continue
        acc = by_depth.setdefault(d, [0.0, _num(r.get('imgcount')) or 0])
        acc[0] += _num(r.get('nbr')) or 0
    depths = sorted(by_depth)
    out = {'particle_depth': depths, 'particle_images': [by_depth[d][1] for d in depths],
           'particle_count': [by_depth[d][0] for d in depths]}
    if volimage:
        out['particles_per_litre'] = [by_depth[d][0] / (by_depth[d][1] * volimage)
                                      if by_depth[d][1] else None for d in depths]
    return out


class EcotaxaFeatures(IndexFeatures):
    """IndexFeatures for EcoTaxa: vignettes of a mirror are linked at this server's URL
    (option `media_url`, e.g. ${VRE_PUBLIC_URL}/ecotaxa/media/), known only at serve time."""

    def _feature(self, row, select_properties, skip_geometry):
        feat = super()._feature(row, select_properties, skip_geometry)
        props = feat['properties']
        media = props.pop('media', None)
        if media and 'associatedMedia' not in props and self.opts.get('media_url'):
            base = self.opts['media_url'].rstrip('/') + '/'
            props['associatedMedia'] = ' | '.join(base + m for m in media)
        links = [{'href': url, 'rel': 'preview', 'type': 'image/jpeg', 'title': 'vignette'}
                 for url in (props.get('associatedMedia') or '').split(' | ') if url]
        if props.get('references'):
            links.append({'href': props['references'], 'rel': 'via',
                          'type': 'application/json', 'title': 'EcoTaxa object record'})
        if links:
            feat['links'] = links
        return feat


def register(app, api, settings) -> None:
    """/ecotaxa/media/<path>: vignettes of the EcoTaxa mirror (images only)."""
    from flask import send_file
    from vre.errors import BAD_REQUEST, NOT_FOUND, APIError

    conf = ((api.config.get('vre') or {}).get('bdis') or {}).get('ecotaxa') or {}
    root = (PurePosixPath(conf['mirror']) if conf.get('mirror') else
            PurePosixPath(str(settings.bdi_mirror)) / 'ecotaxa')

    @app.get('/ecotaxa/media/<path:rel>')
    def ecotaxa_media(rel):
        from pathlib import Path
        if not rel.lower().endswith(IMAGES):
            raise APIError(400, BAD_REQUEST, 'only vignettes (image files) are served here')
        base = Path(str(root)).resolve()
        target = (base / rel).resolve()
        if base not in target.parents or not target.is_file():
            raise APIError(404, NOT_FOUND, f'no vignette {rel!r} in the EcoTaxa mirror')
        return send_file(target, max_age=86400)
