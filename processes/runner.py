"""Runs one job inside a Celery worker: claim it, run its process, store its outputs,
call the subscriber back. Everything it needs is in the job store row.

Nested processes (OGC API - Processes Part 3) run inside the same job, before the outer
process, not as a Celery chain: a task that waits for other tasks deadlocks the embedded
single worker, and one job keeps one timeout, one heartbeat and one dismiss for the whole
workflow. Their file outputs are stored in the volatile tier (so they have a URL, a checksum
and a place in the provenance as entities the outer job used) and read from the job folder.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import requests
from celery.exceptions import SoftTimeLimitExceeded

from processes.base import STORAGE_INPUTS, InputError, JobContext, Output
from processes.jobstore import jobs, utcnow
from processes.manager import HEARTBEAT_SECONDS, CeleryJobManager
from processes import documents

LOGGER = logging.getLogger(__name__)
TEXT_TYPES = ('text/', 'application/json', 'application/geo+json', 'application/xml')


class Heartbeat(threading.Thread):
    """Stamps the rows of the jobs this process runs every few seconds: silence means a dead
    worker. One thread per worker process, started on first use (not one per job)."""

    def __init__(self, manager: CeleryJobManager):
        super().__init__(daemon=True, name='vre-heartbeat')
        self.manager = manager
        self.running: set[str] = set()

    def run(self):
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            for job_id in list(self.running):
                try:
                    self.manager.store.update(job_id, only_if_status=['running'],
                                              heartbeat=utcnow())
                except Exception:  # a busy database must not kill the job
                    LOGGER.warning('heartbeat of %s not written', job_id, exc_info=True)


def _notify(uri: str | None, body: dict) -> None:
    if not uri:
        return
    try:
        requests.post(uri, json=body, timeout=10)
    except requests.RequestException as err:
        LOGGER.warning('callback %s failed: %s', uri, err)


@dataclass
class ChainContext(JobContext):
    """A JobContext that reads outputs of nested processes from the job folder, not by HTTP."""
    local: dict = field(default_factory=dict)    # href -> local path

    def input_file(self, value, suffix: str = '') -> Path:
        if isinstance(value, dict) and value.get('href') in self.local:
            return self.local[value['href']]
        return super().input_file(value, suffix)


MAX_COLLECTION_FEATURES = 100_000
PAGE = 1000


class JobRunner:
    def __init__(self, manager: CeleryJobManager, base_url: str, max_input_bytes: int,
                 tiers=None, resources: dict | None = None):
        self.manager = manager
        self.resources = resources or {}   # the config's collections: local grid files
        self.base_url = base_url.rstrip('/')
        self.max_input_bytes = max_input_bytes
        self.tiers = tiers          # storage.tiers.Tiers: where outputs by reference go
        self._heartbeat = None

    @property
    def heartbeat(self) -> Heartbeat:
        # started lazily: a prefork child must start its own thread after the fork
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._heartbeat = Heartbeat(self.manager)
            self._heartbeat.start()
        return self._heartbeat

    def run(self, job_id: str) -> str:
        store = self.manager.store
        row = store.get(job_id)
        if row is None or row['status'] != 'accepted':
            return 'skipped'          # dismissed, or already claimed by another delivery
        now = utcnow()
        claim = dict(status='running', started=now, heartbeat=now, updated=now,
                     message='running', progress=0,
                     worker=f'{socket.gethostname()}:{os.getpid()}')
        if not store.update(job_id, only_if_status=['accepted'],
                            attempts=jobs.c.attempts + 1, **claim):
            return 'skipped'
        row.update(claim, attempts=row['attempts'] + 1)
        request = row['request'] or {}
        subscriber = request.get('subscriber') or {}
        _notify(subscriber.get('inProgressUri'), documents.status_info(row, self.base_url))
        beating = self.heartbeat.running
        beating.add(job_id)
        workdir = self.manager.output_dir / job_id
        try:
            processor = self.manager.get_processor(row['process_id'])
            inputs = documents.inputs_with_defaults(processor.metadata, request.get('inputs') or {})
            target = {k: inputs.pop(k, None) for k in STORAGE_INPUTS}
            ctx = ChainContext(job_id=job_id, user=row['owner'], workdir=workdir,
                               max_input_bytes=self.max_input_bytes,
                               report=self._reporter(job_id),
                               store=lambda files: self._store_files(row, files, target))
            workdir.mkdir(parents=True, exist_ok=True)
            inputs = self._resolve(row, processor.metadata, inputs, ctx, [0])
            outputs = processor.run(inputs, ctx)
            results = self._store_outputs(row, processor.metadata, outputs,
                                          request.get('outputs'), workdir, target)
        except SoftTimeLimitExceeded:
            return self._fail(row, f"timed out after {row['timeout']:g} s", subscriber)
        except InputError as err:   # the caller's mistake (bad file, empty cut)
            return self._fail(row, str(err), subscriber, 400)
        except Exception as err:
            LOGGER.exception('job %s failed', job_id)
            return self._fail(row, f'process error: {type(err).__name__}: {err}', subscriber)
        finally:
            beating.discard(job_id)
        meta = dict(row.get('meta') or {}, used=ctx.used)
        if not store.update(job_id, only_if_status=['running'], status='successful',
                            finished=utcnow(), progress=100, message='done', results=results,
                            meta=meta):
            shutil.rmtree(workdir, ignore_errors=True)   # dismissed while running
            return 'dismissed'
        _notify(subscriber.get('successUri'), documents.results_document(results))
        return 'successful'

    # -- Part 3: nested processes and collection inputs --------------------------------
    def _resolve(self, row, metadata: dict, inputs: dict, ctx: ChainContext, counter) -> dict:
        """Inputs with every nested process run and every collection fetched (depth first)."""
        out = {}
        for name, value in inputs.items():
            spec = metadata.get('inputs', {}).get(name, {})
            schema = spec.get('schema') or {}
            many = isinstance(value, list) and schema.get('type') != 'array'
            values = [self._resolve_one(row, name, schema, v, ctx, counter)
                      for v in (value if many else [value])]
            out[name] = values if many else values[0]
        return out

    def _resolve_one(self, row, name, schema, value, ctx, counter):
        if not isinstance(value, dict) or schema.get('type') == 'object':
            return value
        if 'process' in value:
            return self._run_nested(row, name, schema, value, ctx, counter)
        if 'collection' in value:
            return self._collection(name, schema, value, ctx)
        return value

    def _run_nested(self, row, name, schema, nested, ctx, counter):
        prefix = f'{self.base_url}/processes/'
        pid = nested['process'][len(prefix):].split('?')[0].rstrip('/')
        pid = pid[:-len('/execution')] if pid.endswith('/execution') else pid
        if not nested['process'].startswith(prefix) or pid not in self.manager.processes:
            raise InputError(f'input "{name}": {nested["process"]} is not a process here')
        processor = self.manager.get_processor(pid)
        counter[0] += 1
        sub = ctx.workdir / f'nested-{counter[0]}-{pid}'
        sub.mkdir(parents=True, exist_ok=True)
        inputs = documents.inputs_with_defaults(processor.metadata, nested.get('inputs') or {})
        for k in STORAGE_INPUTS:
            inputs.pop(k, None)
        inputs = self._resolve(row, processor.metadata, inputs, ctx, counter)
        report = ctx.report
        nested_ctx = ChainContext(job_id=ctx.job_id, user=ctx.user, workdir=sub,
                                  max_input_bytes=ctx.max_input_bytes, used=ctx.used,
                                  report=lambda p, m: report(0, f'nested {pid}: {m or p}'),
                                  local=ctx.local)
        ctx.progress(0, f'running nested process {pid}')
        try:
            out_name = documents.selected_output(processor.metadata, nested)
        except documents.APIError as err:         # checked at submission; WPS jobs are not
            raise InputError(f'input "{name}": {err.detail}') from None
        result = processor.run(inputs, nested_ctx).get(out_name)
        if result is None:
            raise InputError(f'input "{name}": nested {pid} gave no output "{out_name}"')
        href = f"{self.base_url}/jobs/{row['job_id']}#nested-{counter[0]}-{pid}-{out_name}"
        media = result.media_type
        if result.path is not None:
            stored = self._store_outputs(
                row, processor.metadata, {out_name: result},
                {out_name: {'transmissionMode': 'reference'}}, sub,
                {'output_tier': 'volatile',
                 'output_folder': f"jobs/{row['job_id']}/nested-{counter[0]}"})[out_name]
            local = Path(stored['path'])          # the tier took the file over
            href, digest, size = stored['href'], stored['sha256'], local.stat().st_size
            ctx.local[href] = local
            value = {'href': href, 'type': media}
        else:
            data = json.dumps(result.value, sort_keys=True).encode()
            digest, size = hashlib.sha256(data).hexdigest(), len(data)
            value = result.value
            if documents.is_file_input(schema):        # a value feeding a file input: a JSON/text file
                value = {'value': result.value if isinstance(result.value, str)
                         else json.dumps(result.value), 'encoding': 'utf-8',
                         'mediaType': media}
            else:
                try:
                    jsonschema.validate(value, {k: v for k, v in schema.items()
                                                if k not in ('contentMediaType',
                                                             'contentEncoding')})
                except jsonschema.ValidationError as err:
                    raise InputError(f'input "{name}": the output "{out_name}" of nested '
                                     f'{pid} does not fit: {err.message}') from None
        ctx.used.append({'href': href, 'sha256': digest, 'bytes': size, 'mediaType': media,
                         'process': pid, 'output': out_name})
        return value

    def _collection(self, name, schema, value, ctx):
        """A collection of this server as a file: NetCDF from its coverage when the input
        takes NetCDF or the collection has no items, else all its items as one GeoJSON."""
        url = str(value['collection']).split('?')[0].rstrip('/')
        if not url.startswith(f'{self.base_url}/collections/'):
            raise InputError(f'input "{name}": {url} is not a collection of this server')
        local = self._grid_file(url.rsplit('/', 1)[-1])
        if local is not None:           # a grid file this worker sees: read in place
            href = f'{url}/coverage?f=netcdf'
            ctx.local[href] = local
            ctx.used.append({'href': href, 'sha256': _file_sha256(local),
                             'bytes': local.stat().st_size, 'mediaType': 'application/x-netcdf'})
            return {'href': href}
        try:
            doc = requests.get(url, params={'f': 'json'}, timeout=30)
        except requests.RequestException as err:
            raise InputError(f'input "{name}": {url} could not be read ({err})') from None
        if doc.status_code != 200:
            raise InputError(f'input "{name}": {url} answered HTTP {doc.status_code}')
        rels = {link.get('rel', '').rsplit('/', 1)[-1] for link in doc.json().get('links', [])}
        wants_netcdf = 'netcdf' in json.dumps(schema).lower()
        if 'coverage' in rels and (wants_netcdf or 'items' not in rels):
            return {'href': f'{url}/coverage?f=netcdf'}   # read (and recorded) by input_file
        if 'items' not in rels:
            raise InputError(f'input "{name}": {url} has neither items nor a coverage')
        return self._items_file(name, url, value, ctx)

    def _grid_file(self, collection: str) -> Path | None:
        """The NetCDF file a GridCoverage collection serves, when this worker sees it (same
        host or shared disk); a worker elsewhere reads the coverage over HTTP."""
        from providers.coverage import grid_provider
        prov = grid_provider(self.resources.get(collection))
        path = Path(str(prov['data'])) if prov else None
        return path if path and path.suffix in ('.nc', '.nc4', '.cdf') and path.is_file() \
            else None

    def _items_file(self, name, url, value, ctx):
        params = {'f': 'json', 'limit': PAGE}
        params.update({k: value[k] for k in ('bbox', 'datetime') if k in value})
        first = requests.Request('GET', f'{url}/items', params=params).prepare().url
        features, next_url = [], first
        while next_url:
            try:
                resp = requests.get(next_url, timeout=120)
            except requests.RequestException as err:
                raise InputError(f'input "{name}": {url} could not be read ({err})') from None
            if resp.status_code != 200:
                raise InputError(f'input "{name}": {next_url} answered HTTP {resp.status_code}')
            page = resp.json()
            features += page.get('features', [])
            if len(features) > MAX_COLLECTION_FEATURES:
                raise InputError(f'input "{name}": the collection has more than '
                                 f'{MAX_COLLECTION_FEATURES} items; narrow it with bbox/datetime')
            next_url = next((link['href'] for link in page.get('links', [])
                             if link.get('rel') == 'next'), None) if page.get('features') else None
        target = ctx.workdir / f'collection-{len(ctx.used)}.geojson'
        data = json.dumps({'type': 'FeatureCollection', 'features': features}).encode()
        target.write_bytes(data)
        ctx.local[first] = target
        ctx.used.append({'href': first, 'sha256': hashlib.sha256(data).hexdigest(),
                         'bytes': len(data), 'mediaType': 'application/geo+json'})
        return {'href': first}

    def _fail(self, row, message, subscriber, http_status=500) -> str:
        meta = dict(row.get('meta') or {}, http_status=http_status)
        if self.manager.store.update(row['job_id'], only_if_status=['running'], status='failed',
                                     finished=utcnow(), message=message, meta=meta):
            row = self.manager.store.get(row['job_id'])
            _notify(subscriber.get('failedUri'), documents.status_info(row, self.base_url))
        return 'failed'

    def _reporter(self, job_id):
        last = [0.0]

        def report(percent: int, message: str):
            now = time.monotonic()
            if now - last[0] < 0.5 and percent < 100:
                return                      # progress is for people: twice a second is plenty
            last[0] = now
            self.manager.store.update(job_id, only_if_status=['running'], progress=percent,
                                      message=message or 'running', heartbeat=utcnow())
        return report

    def _store_outputs(self, row, metadata, outputs: dict[str, Output], requested,
                       workdir: Path, target: dict) -> dict:
        """Each output by value or by reference, as the request asked (or by its nature);
        references are files of the storage tier the request chose."""
        declared = metadata.get('outputs', {})
        wanted = list(requested) if requested else list(outputs)
        results = {}
        for name in wanted:
            out = outputs.get(name)
            if out is None:
                continue
            spec = (requested or {}).get(name) or {}
            mode = spec.get('transmissionMode') or ('reference' if out.path else 'value')
            media = out.media_type or declared.get(name, {}).get('schema', {}).get(
                'contentMediaType', 'application/json')
            if mode == 'reference':
                path = out.path
                if path is None:
                    path = workdir / (name + ('.json' if 'json' in media else '.txt'))
                    data = json.dumps(out.value) if 'json' in media else str(out.value)
                    path.write_text(data)
                href, digest, path = self._to_tier(row, name, path, media, target)
                results[name] = {'href': href, 'type': media, 'path': str(path)}
                if digest:
                    results[name]['sha256'] = digest      # the tier hashed it while storing
            elif out.path is not None:
                data = out.path.read_bytes()
                if media.startswith(TEXT_TYPES):
                    results[name] = {'value': data.decode('utf-8'), 'mediaType': media,
                                     'path': str(out.path)}
                else:
                    results[name] = {'value': base64.b64encode(data).decode('ascii'),
                                     'encoding': 'base64', 'mediaType': media,
                                     'path': str(out.path)}
            else:
                results[name] = {'value': out.value, 'mediaType': media}
        for r in results.values():
            if not r.get('sha256'):
                r['sha256'] = _sha256(r)
        return results

    def _to_tier(self, row, name: str, path: Path, media: str,
                 target: dict) -> tuple[str, str | None, Path]:
        """(URL, SHA-256, local file) of a file output stored in the tier the request chose;
        a local tier takes the file over (renamed, not copied): the local file is then its."""
        if self.tiers is None:
            return f"{self.base_url}/jobs/{row['job_id']}/outputs/{name}", None, path
        from storage.errors import StorageError
        tier, folder, owner, meta = self._target_tier(row, target)
        try:
            stored = tier.put(owner or 'anonymous', f'{folder}/{path.name}', path,
                              media_type=media, author=owner, move=True, meta=meta)
        except StorageError as err:
            raise InputError(f'output "{name}" could not be stored in the {tier.name} tier: '
                             f'{err}') from None
        return tier.url_for(stored), stored.sha256, stored.local or path

    def _store_files(self, row, files: list, target: dict) -> list[dict]:
        """Files a process delivers one by one, into the tier and folder the request chose
        (`JobContext.store`)."""
        if self.tiers is None:
            raise InputError('this server has no storage tiers for the files of this job')
        from storage.errors import StorageError
        tier, folder, owner, meta = self._target_tier(row, target)
        try:
            stored = tier.put_many(owner or 'anonymous', [
                (f'{folder}/{rel}', path, media, sha) for rel, path, media, sha in files],
                author=owner, meta=meta)
        except StorageError as err:
            raise InputError(f'the files could not be stored in the {tier.name} tier: '
                             f'{err}') from None
        return [{'href': tier.url_for(f), 'path': str(f.local) if f.local else None,
                 'sha256': f.sha256, 'size': f.size} for f in stored]

    def _target_tier(self, row, target: dict):
        """(tier, folder, owner, metadata) where this job's outputs by reference go."""
        tier_name = target.get('output_tier') or 'volatile'
        owner = row['owner']
        if tier_name != 'volatile' and owner is None:
            raise InputError(f'output_tier={tier_name} needs a signed-in user; anonymous jobs '
                             'write to the volatile tier')
        folder = (target.get('output_folder') or f"jobs/{row['job_id']}").strip('/')
        return (self.tiers.get(tier_name), folder, owner,
                {'provenance': f"{self.base_url}/jobs/{row['job_id']}"})


_FILE_SHA256: dict[tuple, str] = {}


def _file_sha256(path: Path) -> str:
    """SHA-256 of a grid file for provenance, hashed once per file version per process."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _FILE_SHA256:
        digest = hashlib.sha256()
        with open(path, 'rb') as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        _FILE_SHA256[key] = digest.hexdigest()
    return _FILE_SHA256[key]


def _sha256(result: dict) -> str:
    """Checksum of an output as delivered: the file, or the JSON of the value."""
    digest = hashlib.sha256()
    if result.get('path'):
        with open(result['path'], 'rb') as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b''):
                digest.update(chunk)
    else:
        digest.update(json.dumps(result['value'], sort_keys=True).encode())
    return digest.hexdigest()
