"""The `order` process: fetch granules of any harvested BDI, check them, and deliver them as
files with a manifest into the tier the user chose; the zip is made when it is downloaded.

A basket is a job of this process in the `created` state (processes/job_management.py);
the dashboard, the streamed zip and the push to the workspace are processes/orders.py. Each
granule is read from where the index was harvested from (the BDI's live URL, a stand-in, or
a mirror folder) at its index path, so its size and checksum can be compared with the index.
Its SHA-256 is computed while it arrives (in a second thread for large files: hashlib
releases the GIL, so hashing overlaps the receiving), and the checked file is handed to the
tier as it is: a local tier renames it into `<folder>/<bdi>/<file>` with that checksum, so
each byte is received, written and hashed once. Failures are per granule: the rest is
delivered, and a BDI that keeps failing is marked down so its other granules fail fast
instead of each waiting through its retries.
"""
from __future__ import annotations

import csv
import hashlib
import json
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import sqlalchemy as sa

from processes.base import FetchError, InputError, JobContext, Output, VREProcess
from processes.fetch import Pools, fetch

SUFFIX_FORMATS = {'.nc': 'netcdf', '.json': 'json', '.zip': 'zip', '.xml': 'xml',
                  '.csv': 'table', '.tsv': 'table', '.txt': 'table'}
TYPE_FORMATS = {'api-result': 'json', 'dwc-archive': 'zip', 'cdi': 'xml'}
FORMAT_SUFFIX = {'netcdf': '.nc', 'json': '.json', 'zip': '.zip', 'xml': '.xml',
                 'table': '.txt'}
FORMAT_MEDIA = {'netcdf': 'application/x-netcdf', 'json': 'application/json',
                'zip': 'application/zip', 'xml': 'application/xml', 'table': 'text/plain'}
MAX_LISTED = 10
NETCDF_LOCK = threading.Lock()   # the netCDF/HDF5 C libraries are not thread-safe


class OrderFailed(Exception):
    """No granule of the order could be delivered (the job fails with the reasons)."""


def granule_rows(index_url: str, ids: list[str]) -> dict[str, dict]:
    """Index rows of these granule ids (missing ids are absent)."""
    from providers import store
    G = store.GRANULE
    cols = [G.c.id, G.c.bdi, G.c.collection, G.c.path, G.c.url, G.c.title, G.c.type,
            G.c.size, G.c.checksum, G.c.license, G.c.citation]
    out = {}
    with store.engine(index_url).connect() as conn:
        for i in range(0, len(ids), 500):
            for r in conn.execute(sa.select(*cols).where(G.c.id.in_(ids[i:i + 500]))):
                out[r.id] = dict(r._mapping)
    return out


def bdi_sources(index_url: str) -> dict[str, str]:
    """{BDI name: where it was harvested from ('url BASE' or 'mirror DIR')}."""
    from providers import store
    with store.engine(index_url).connect() as conn:
        return {r.name: r.source for r in conn.execute(
            sa.select(store.BDI.c.name, store.BDI.c.source)) if r.source}


def expected_format(row: dict) -> str | None:
    suffix = Path(urlsplit(row['path'] or '').path).suffix.lower()
    return SUFFIX_FORMATS.get(suffix) or TYPE_FORMATS.get(row.get('type') or '')


def sniff_format(path: Path) -> str:
    """What the file opens as; raises ValueError when it opens as nothing we know."""
    with path.open('rb') as fh:
        head = fh.read(4096)
    if head[:3] == b'CDF' or head[:8] == b'\x89HDF\r\n\x1a\n':
        import netCDF4
        with NETCDF_LOCK, netCDF4.Dataset(path):
            return 'netcdf'
    if head[:4] == b'PK\x03\x04':
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
        if bad:
            raise ValueError(f'zip member {bad} is corrupt')
        return 'zip'
    text = head.decode('utf-8-sig', 'replace').lstrip()
    if text[:1] in ('{', '['):
        with path.open('rb') as fh:
            json.load(fh)
        return 'json'
    if text[:1] == '<':
        import xml.etree.ElementTree as ET
        for _ in ET.iterparse(path):
            pass
        return 'xml'
    return _check_table(path)


def _check_table(path: Path) -> str:
    """CSV/TSV/ODV text: UTF-8, rows of one width (comment lines `//` or `#` aside)."""
    with path.open(encoding='utf-8', errors='strict', newline='') as fh:
        lines = [ln for ln in (fh.readline() for _ in range(2000)) if ln and
                 not ln.startswith(('//', '#'))]
    if not lines:
        raise ValueError('empty text file')
    delim = '\t' if lines[0].count('\t') >= lines[0].count(',') else ','
    widths = {len(r) for r in csv.reader(lines, delimiter=delim) if r}
    if max(widths) < 2 or len(widths) > 1 and len(lines) > 1 and min(widths) < 2:
        raise ValueError('not a CSV/TSV table')
    return 'table'


class OrderProcess(VREProcess):
    job_type = 'order'
    basket_input = 'granules'
    needs_user = True
    default_tier = 'workspace'
    rerun_safe = True

    METADATA = {
        'version': '1.0.0',
        'id': 'order',
        'title': 'Order granules',
        'description': 'Fetch granules (Level-2 records of any harvested BDI) from their '
                       'infrastructure, check size, checksum and format, and deliver them '
                       'as files with a manifest.json (source URL, licence, citation, '
                       'checksum per granule) into the storage tier you choose, folder '
                       '<output_folder or jobs/<id>>/<bdi>/; the order is downloaded as one '
                       'zip, made as it is sent (GET /orders/{id}/download, Range). A basket '
                       'is a job of this process in the "created" state: POST /jobs, PATCH '
                       '/jobs/{id}, POST /jobs/{id}/results. Granules that fail are listed '
                       'per granule; the rest is delivered.',
        'keywords': ['order', 'download', 'basket', 'BDI'],
        'jobControlOptions': ['async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'links': [],
        'inputs': {
            'granules': {
                'title': 'Granules',
                'description': 'Ids of Level-2 records (e.g. of /collections/argo-granules).',
                'schema': {'type': 'array', 'items': {'type': 'string', 'minLength': 1,
                                                      'maxLength': 255},
                           'maxItems': 100000},
                'minOccurs': 1, 'maxOccurs': 1,
            },
        },
        'outputs': {
            'order': {'title': 'The delivered files and manifest.json as one zip, made when '
                               'downloaded (a link to /orders/{id}/download)',
                      'schema': {'type': 'string', 'contentMediaType': 'application/zip'}},
            'manifest': {'title': 'Per-granule status, source, licence, citation, checksum '
                                  'and the stored file (file: its path in the order folder '
                                  'and zip; href: its URL)',
                         'schema': {'type': 'object', 'contentMediaType': 'application/json'}},
        },
        'example': {'inputs': {'granules': ['D6901929_001', 'sdn-netCDF_timeseries_tidegauge']}},
    }

    def __init__(self, processor_def: dict):
        super().__init__(processor_def)
        self.index = self.config.get('index')
        self.retries = int(self.config.get('retries', 3))
        self.backoff = float(self.config.get('backoff', 1.0))
        self.parallel = int(self.config.get('parallel', 4))
        self.read_timeout = float(self.config.get('timeout', 120))
        self.max_bytes = int(self.config.get('max_granule_bytes', 50 << 30))
        self.bdis = self.config.get('bdis')     # BDIs open to orders; None = all harvested

    # -- submission checks ---------------------------------------------------------
    def check(self, inputs: dict, partial: bool = False) -> None:
        ids = inputs.get('granules') or []
        if not ids:
            if partial:
                return
            raise InputError('the basket is empty: add granules (PATCH {"add": [ids]}) '
                             'before submitting')
        if not self.index:
            raise InputError('orders are not configured on this server (no index)')
        rows = granule_rows(self.index, list(dict.fromkeys(ids)))
        unknown = [i for i in ids if i not in rows]
        if unknown:
            raise InputError(f'unknown granule id(s): {", ".join(unknown[:MAX_LISTED])}'
                             f'{" ..." if len(unknown) > MAX_LISTED else ""}; find ids in '
                             'the level-2 collections (/collections/<bdi>-granules/items)')
        sources = bdi_sources(self.index)
        off = sorted({r['bdi'] for r in rows.values() if r['bdi'] not in sources
                      or (self.bdis is not None and r['bdi'] not in self.bdis)})
        if off:
            raise InputError(f'granules of BDI(s) not configured for orders on this server: '
                             f'{", ".join(off)}')

    # -- fulfilment ----------------------------------------------------------------
    def run(self, inputs: dict, ctx: JobContext) -> dict[str, Output]:
        ids = list(dict.fromkeys(inputs.get('granules') or []))
        if not ids:
            raise InputError('the basket is empty')
        if ctx.store is None:
            raise OrderFailed('orders are delivered into a storage tier; this run has none')
        rows = granule_rows(self.index, ids)
        sources = bdi_sources(self.index)
        folder = ctx.workdir / 'granules'
        folder.mkdir(parents=True, exist_ok=True)
        down: dict[str, str] = {}
        lock = threading.Lock()
        pools = Pools(max(1, self.parallel))

        def one(n_id):
            n, gid = n_id
            return self._fetch_one(gid, rows.get(gid), sources, folder / str(n), ctx,
                                   down, lock, pools)

        entries = []
        try:
            with ThreadPoolExecutor(max(1, self.parallel)) as pool:
                for entry in pool.map(one, enumerate(ids)):
                    entries.append(entry)
                    ctx.progress(90 * len(entries) // len(ids),
                                 f'{len(entries)} of {len(ids)} granules')
        finally:
            pools.clear()
        delivered = [(n, e) for n, e in enumerate(entries) if e['status'] == 'delivered']
        if not delivered:
            reasons = '; '.join(f"{e['granule']}: {e['error']}" for e in entries[:MAX_LISTED])
            raise OrderFailed(f'no granule could be delivered: {reasons}')
        _unique_names([e for _, e in delivered])
        manifest = {'order': ctx.job_id, 'granules': entries,
                    'delivered': len(delivered), 'failed': len(entries) - len(delivered),
                    'bdis_down': down}
        # the stored manifest names each file by its path next to it (`file`: right in the
        # folder, in the zip and in a pushed copy); the job's manifest adds the URLs the tier
        # gave them (`href`, known once stored: volatile ones are random)
        data = manifest_bytes(manifest)
        (ctx.workdir / 'manifest.json').write_bytes(data)
        ctx.progress(92, 'storing')
        files = [(e['file'], folder / str(n),
                  FORMAT_MEDIA.get(e['format'], 'application/octet-stream'), e['sha256'],
                  {'licence': e.get('licence'), 'citation': e.get('citation')})
                 for n, e in delivered]
        files.append(('manifest.json', ctx.workdir / 'manifest.json', 'application/json',
                      hashlib.sha256(data).hexdigest()))
        stored = ctx.store(files)
        hrefs = {e['granule']: f['href'] for (_, e), f in zip(delivered, stored)}
        last = stored[-1]
        value = dict(manifest, granules=[dict(e, href=hrefs[e['granule']])
                                         if e['granule'] in hrefs else e for e in entries],
                     manifest_file={'href': last['href'], 'sha256': last['sha256'],
                                    'bytes': last['size']})
        download = f'{ctx.base_url}/orders/{ctx.job_id}/download'
        return {'order': Output(href=download, media_type='application/zip'),
                'manifest': Output(value=value)}

    def _fetch_one(self, gid, row, sources, target: Path, ctx, down, lock,
                   pools) -> dict:
        entry = {'granule': gid, 'status': 'failed'}
        if row is None:
            return dict(entry, error='no longer in the index')
        entry.update(bdi=row['bdi'], collection=row['collection'], title=row['title'],
                     url=row['url'], licence=row['license'], citation=row['citation'],
                     expected_size=row['size'], expected_sha256=row['checksum'])
        source = sources.get(row['bdi'])
        if source is None:
            return dict(entry, error=f"BDI {row['bdi']} is not configured (no source)")
        with lock:
            if row['bdi'] in down:
                return dict(entry, error=f"BDI {row['bdi']} is down: {down[row['bdi']]}")
        try:
            used = self._read(row, source, target, ctx, pools)
        except FetchError as err:
            target.unlink(missing_ok=True)
            if err.retry:
                with lock:
                    down.setdefault(row['bdi'], str(err))
            return dict(entry, error=str(err))
        entry.update(source_url=used['href'], sha256=used['sha256'], bytes=used['bytes'])
        fmt, problem = self._verify(row, used, target)
        if problem:
            target.unlink(missing_ok=True)
            return dict(entry, error=problem)
        entry['format'] = fmt
        entry['file'] = f"{row['bdi']}/{_file_name(row, entry['format'])}"
        entry['status'] = 'delivered'
        return entry

    def _read(self, row, source: str, target: Path, ctx: JobContext, pools) -> dict:
        """The granule's bytes from its BDI, retried with back-off while it may recover."""
        kind, _, base = source.partition(' ')
        if kind == 'mirror':
            return _read_mirror(row, Path(base), target, ctx)
        href = urljoin(base.rstrip('/') + '/', (row['path'] or '').lstrip('/'))
        for attempt in range(self.retries + 1):
            try:
                used = fetch(pools, href, target, self.max_bytes, (10, self.read_timeout))
                ctx.used.append(used)
                return used
            except FetchError as err:
                if not err.retry or attempt == self.retries:
                    if err.retry:
                        raise FetchError(f'{err} (after {attempt + 1} attempts)', True) from None
                    raise
                time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError('unreachable')

    @staticmethod
    def _verify(row, used: dict, path: Path) -> tuple[str | None, str | None]:
        """(format, problem): size and checksum against the index, then the format."""
        if row['checksum'] and used['sha256'] != row['checksum']:
            return None, 'SHA-256 differs from the index (the file changed or was corrupted)'
        # a mirror folder's index size is of its files, not of the archive served: the
        # checksum, where known, is the stronger test
        if not row['checksum'] and row['size'] is not None and used['bytes'] != row['size']:
            return None, f"size {used['bytes']} differs from the index ({row['size']} bytes)"
        try:
            got = sniff_format(path)
        except Exception as err:   # any parser's complaint: the file is not what it claims
            return None, f'does not open: {type(err).__name__}: {str(err)[:200]}'
        want = expected_format(row)
        if want and got != want:
            return got, f'opens as {got}, not as {want}'
        return got, None


def manifest_bytes(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=1).encode()


def _unique_names(entries: list[dict]) -> None:
    """Two granules may carry the same file name: the later ones get their number added."""
    seen = set()
    for n, e in enumerate(entries):
        name = e['file']
        while name in seen:
            stem, dot, ext = name.rpartition('.')
            name = f'{stem}-{n}.{ext}' if dot else f'{name}-{n}'
        seen.add(name)
        e['file'] = name


def order_provenance(doc, row: dict, activity) -> None:
    """Add an order's stored files to its PROV document (processes/provenance.py calls this
    for jobs of type 'order'): each file an entity (its URL and SHA-256) generated by the
    job and derived from the granule's source, the entity the job used."""
    from processes.provenance import _entity_id
    manifest = (((row.get('results') or {}).get('manifest') or {}).get('value') or {})
    for e in manifest.get('granules') or []:
        if e.get('status') != 'delivered' or not e.get('href'):
            continue
        stored = doc.entity(_entity_id(e['href']), {
            'prov:location': e['href'], 'vre:sha256': e['sha256'], 'vre:bytes': e['bytes'],
            'vre:granule': e['granule'], 'vre:bdi': e['bdi'],
            'vre:licence': e.get('licence') or '', 'vre:citation': e.get('citation') or ''})
        source = _entity_id(e['source_url'])
        if not doc.get_record(source):
            doc.entity(source, {'prov:location': e['source_url'], 'vre:sha256': e['sha256'],
                                'vre:bytes': e['bytes']})
        doc.wasGeneratedBy(stored, activity, row.get('finished'))
        doc.wasDerivedFrom(stored, source)


def _file_name(row: dict, fmt: str) -> str:
    """The BDI's own file name where it names the granule, else the granule id."""
    name = Path(urlsplit(row['path'] or '').path).name
    if name and Path(name).stem in row['id'] and \
            SUFFIX_FORMATS.get(Path(name).suffix.lower()) == fmt:
        return name
    return f"{row['id']}{FORMAT_SUFFIX.get(fmt, '')}"


def _read_mirror(row, root: Path, target: Path, ctx: JobContext) -> dict:
    """A granule of a mirror-harvested BDI, read as the harvest read it (the connector
    packs folder granules, e.g. EurOBIS DwC-A, as the live service would)."""
    from providers.base import GranuleRef, MirrorSource
    from providers.harvest import connectors
    connector = connectors()[row['bdi']]({})
    # a listed SeaDataNet CDI record lives under another name on a mirror; its connector
    # maps it from these (other connectors ignore them)
    ref = GranuleRef(id=row['id'], path=row['path'], collection=row['collection'],
                     meta={'listed_url': row['path'], 'cdi': Path(row['path']).parent.name}
                     if row['type'] == 'cdi' and row['path'].startswith('cdi_aggregation/')
                     else {})
    try:
        data = connector.fetch(MirrorSource(root), ref)
    except (FileNotFoundError, IsADirectoryError):
        raise FetchError(f"{row['path']} is not in the {row['bdi']} mirror") from None
    target.write_bytes(data)
    used = {'href': row['url'] or f"{root}/{row['path']}",
            'sha256': hashlib.sha256(data).hexdigest(), 'bytes': len(data),
            'mediaType': None}
    ctx.used.append(used)
    return used

