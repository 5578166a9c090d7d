"""Runs jobs inside Celery workers: claim the job, run its process, store its outputs, call
the subscriber back. Everything it needs is in the job store row.

Nested processes (OGC API - Processes Part 3) run as their own Celery tasks, composed by the
manager (processes/manager.py `enqueue`) into a chain or chord ending with the outer
process: no task waits for another, so one worker with one process runs any workflow. It
stays one job: the first step claims the row (running), every step beats and says in the
message which process runs, checks the job is still its own (not dismissed, not re-queued)
and stops at the job's timeout; a failing step fails the job and ends the workflow. A nested
step passes its output on as its task result: values as they are, files stored in the
volatile tier (a URL, a checksum, a place in the provenance as entities the outer job used),
read by the next step from the tier's file where its worker sees it, else by URL.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import requests
from celery.exceptions import Ignore, SoftTimeLimitExceeded

from processes.base import STORAGE_INPUTS, InputError, JobContext, Output
from processes.jobstore import jobs, utcnow
from processes.manager import HEARTBEAT_SECONDS, CeleryJobManager, input_values, is_nested
from processes import documents

LOGGER = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Stamps the rows of the jobs this process runs every few seconds: silence means a dead
    worker. One thread per worker process, started on first use (not one per job)."""

    def __init__(self, manager: CeleryJobManager):
        super().__init__(daemon=True, name='vre-heartbeat')
        self.manager = manager
        self.running: set[str] = set()
        self.lock = threading.Lock()    # held while stamping: a job taken off is not stamped

    def run(self):
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self.lock:
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
    """A JobContext that reads files of this job (nested outputs, collections) where this
    worker sees them, not by HTTP; a nested output it does not see is read by its URL,
    checked against the checksum its step recorded (and not recorded twice)."""
    local: dict = field(default_factory=dict)    # href -> local path
    made: dict = field(default_factory=dict)     # href of a nested output -> its SHA-256

    def input_file(self, value, suffix: str = '') -> Path:
        if isinstance(value, dict) and value.get('href') in self.local:
            return self.local[value['href']]
        return super().input_file(value, suffix)

    def _download(self, href: str, target: Path) -> None:
        got = self.fetch(href, target)
        if href in self.made:
            self.used.remove(got)             # in `used` once, from the step that made it
            if got['sha256'] != self.made[href]:
                raise InputError(f'{href} is not the file the nested process made')


class Feed:
    """The results of the nested steps a step comes after, handed out in the order the
    runner meets the nested inputs (the order the manager numbered them in)."""

    def __init__(self, previous=None):
        results = previous if isinstance(previous, list) else [previous] if previous else []
        self._results = iter(results)
        self.steps = [s for r in results for s in r['steps']]   # their records, depth first
        self.numbers = [r['n'] for r in results]

    def next(self, name: str) -> dict:
        result = next(self._results, None)
        if result is None:
            raise RuntimeError(f'input "{name}": nested process without its step')
        return result


@contextlib.contextmanager
def _time_limit(seconds: float):
    """SoftTimeLimitExceeded after `seconds`: a workflow step gets the job's time left."""
    if seconds <= 0:
        raise SoftTimeLimitExceeded()
    if threading.current_thread() is not threading.main_thread():
        yield                   # no signals here: the task's own limit and the reaper stop it
        return

    def expired(_signum, _frame):
        raise SoftTimeLimitExceeded()
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _step_record(n: int, pid: str, task_id, started, feed: Feed, output=None) -> dict:
    """Who ran a step of a workflow, when, after which steps, making what (provenance)."""
    return {'step': n, 'process': pid, 'task': task_id,
            'worker': f'{socket.gethostname()}:{os.getpid()}', 'started': started.isoformat(),
            'finished': utcnow().isoformat(), 'after': feed.numbers, 'output': output}


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

    def run(self, job_id: str, previous=None, attempt: int | None = None,
            task_id: str | None = None) -> str:
        """The outer process of a job: the job's one task, or (given `attempt`) the last
        step of its workflow, after the nested steps whose results are `previous`."""
        row = self._claim(job_id, attempt, 'running')
        if row is None:
            return 'skipped'          # dismissed, re-queued, or claimed by another delivery
        request = row['request'] or {}
        subscriber = request.get('subscriber') or {}
        beating = self.heartbeat.running
        beating.add(job_id)
        workdir = self.manager.output_dir / job_id
        feed, started = Feed(previous), utcnow()
        try:
            with self._time_left(row, attempt):
                processor = self.manager.get_processor(row['process_id'])
                inputs = documents.inputs_with_defaults(processor.metadata,
                                                        request.get('inputs') or {})
                target = {k: inputs.pop(k, None) for k in STORAGE_INPUTS}
                ctx = ChainContext(job_id=job_id, user=row['owner'], workdir=workdir,
                                   max_input_bytes=self.max_input_bytes,
                                   report=self._reporter(job_id), base_url=self.base_url,
                                   store=lambda files: self._store_files(row, files, target))
                workdir.mkdir(parents=True, exist_ok=True)
                inputs = self._resolve(processor.metadata, inputs, ctx, feed)
                outputs = processor.run(inputs, ctx)
                later: list = []
                results = self._store_outputs(row, processor.metadata, outputs,
                                              request.get('outputs'), workdir, target, later)
        except Exception as err:
            return self._failed(row, err, subscriber)
        finally:
            beating.discard(job_id)
        meta = dict(row.get('meta') or {}, used=ctx.used)
        if attempt is not None:
            meta['steps'] = feed.steps + [_step_record(0, row['process_id'], task_id,
                                                       started, feed)]
        if not self.manager.store.update(job_id, only_if_status=['running'], status='successful',
                                         finished=utcnow(), progress=100, message='done',
                                         results=results, meta=meta):
            shutil.rmtree(workdir, ignore_errors=True)   # dismissed while running
            return 'dismissed'
        _notify(subscriber.get('successUri'), documents.results_document(results))
        _tidy(workdir, {Path(r['path']) for r in results.values() if r.get('path')})
        self._hash_outputs(job_id, results, later)
        return 'successful'

    def _hash_outputs(self, job_id: str, results: dict, later: list) -> None:
        """The checksums of the file outputs, computed once the job has answered: hashing
        a large output (0.7 ms a MB) would otherwise delay every answer, while only the
        provenance and the tier's ETag need it (`GET /jobs/{id}/prov` hashes a file whose
        checksum is not recorded yet itself)."""
        if not later:
            return
        try:
            for name, stored in later:
                with open(results[name]['path'], 'rb') as fh:
                    digest = hashlib.file_digest(fh, 'sha256').hexdigest()
                results[name]['sha256'] = digest
                if stored is not None:
                    self.tiers.get(stored.tier).record_sha256(stored, digest)
            self.manager.store.update(job_id, only_if_status=['successful'], results=results)
        except Exception:   # dismissed meanwhile, or the job's time ran out: no checksum
            LOGGER.warning('outputs of job %s not hashed', job_id, exc_info=True)

    def run_nested(self, job_id: str, attempt: int, step: dict, previous=None,
                   task_id: str | None = None) -> dict:
        """One nested process of a workflow (`step` from the manager's `nested_steps`); its
        output, for the step after it, is the task's result. Raises Celery's Ignore to end
        the workflow: the job failed here, or is no longer this workflow's."""
        pid = step['process']
        row = self._claim(job_id, attempt, f'running nested process {pid}')
        if row is None:
            raise Ignore()
        heartbeat = self.heartbeat
        heartbeat.running.add(job_id)
        feed, started = Feed(previous), utcnow()
        try:
            with self._time_left(row, attempt):
                result = self._run_nested(row, step, feed)
        except Exception as err:
            self._failed(row, err, (row['request'] or {}).get('subscriber') or {})
            raise Ignore() from None
        finally:
            with heartbeat.lock:
                heartbeat.running.discard(job_id)
        # until the next step starts, silence is no lost worker: the broker holds the step,
        # and the job's timeout still bounds the wait
        deadline = row['started'] + dt.timedelta(seconds=row['timeout'] or
                                                 self.manager.default_timeout)
        if not self.manager.store.update(job_id, only_if_status=['running'], heartbeat=deadline,
                                         message=f'nested process {pid} done'):
            raise Ignore()                  # dismissed (or timed out) meanwhile
        result['steps'] = feed.steps + [_step_record(step['n'], pid, task_id, started, feed,
                                                     result['used'][-1]['href'])]
        return result

    def _claim(self, job_id: str, attempt: int | None, message: str) -> dict | None:
        """The job row, once this task may run it: it claimed the accepted job (the job's
        task or the first step of its workflow), or, as a later step (`attempt` given), the
        job is running that attempt of the workflow. None: leave the job alone."""
        store = self.manager.store
        row = store.get(job_id)
        if row is None:
            return None
        now = utcnow()
        worker = f'{socket.gethostname()}:{os.getpid()}'
        if row['status'] == 'accepted' and (attempt is None or row['attempts'] == attempt - 1):
            claim = dict(status='running', started=now, heartbeat=now, updated=now,
                         message=message, progress=0, worker=worker)
            if store.update(job_id, only_if_status=['accepted'],
                            attempts=jobs.c.attempts + 1, **claim):
                row.update(claim, attempts=row['attempts'] + 1)
                subscriber = (row['request'] or {}).get('subscriber') or {}
                _notify(subscriber.get('inProgressUri'),
                        documents.status_info(row, self.base_url))
                return row
            if attempt is None:
                return None
            row = store.get(job_id) or {}       # another step of the workflow claimed it
        if attempt is None or row.get('status') != 'running' or row['attempts'] != attempt:
            return None
        later = dict(heartbeat=now, message=message, progress=0, worker=worker)
        if not store.update(job_id, only_if_status=['running'], **later):
            return None
        row.update(later)
        return row

    def _time_left(self, row, attempt):
        """A workflow step stops when the job's time is up (the job's one task has Celery's
        soft time limit for that)."""
        if attempt is None:
            return contextlib.nullcontext()
        timeout = row['timeout'] or self.manager.default_timeout
        return _time_limit(timeout - (utcnow() - row['started']).total_seconds())

    def _failed(self, row, err: Exception, subscriber) -> str:
        if isinstance(err, SoftTimeLimitExceeded):
            return self._fail(row, f"timed out after {row['timeout']:g} s", subscriber)
        if isinstance(err, InputError):     # the caller's mistake (bad file, empty cut)
            return self._fail(row, str(err), subscriber, 400)
        LOGGER.exception('job %s failed', row['job_id'])
        return self._fail(row, f'process error: {type(err).__name__}: {err}', subscriber)

    # -- Part 3: nested processes and collection inputs --------------------------------
    def _resolve(self, metadata: dict, inputs: dict, ctx: ChainContext, feed: Feed) -> dict:
        """Inputs with the result of each nested process in place (from `feed`) and every
        collection fetched."""
        out = {name: [] if isinstance(value, list) else value for name, value in inputs.items()}
        for name, schema, index, value in input_values(inputs, metadata):
            if is_nested(value, schema):
                value = self._nested_value(name, schema, feed.next(name), ctx)
            elif isinstance(value, dict) and 'collection' in value \
                    and schema.get('type') != 'object':
                value = self._collection(name, schema, value, ctx)
            if index is None:
                out[name] = value
            else:
                out[name].append(value)
        return out

    def _run_nested(self, row, step: dict, feed: Feed) -> dict:
        """Run one nested process; its selected output as a task result (a value, or the
        URL, checksum and tier file of a file in the volatile tier) with what it used."""
        n, pid, job_id = step['n'], step['process'], row['job_id']
        nested = row['request']
        for name, index in step['path']:
            nested = nested['inputs'][name] if index is None else nested['inputs'][name][index]
        if not str(nested['process']).startswith(f'{self.base_url}/processes/') \
                or pid not in self.manager.processes:
            raise InputError(f'input "{name}": {nested["process"]} is not a process here')
        processor = self.manager.get_processor(pid)
        workdir = self.manager.output_dir / job_id / f'nested-{n}-{pid}'
        workdir.mkdir(parents=True, exist_ok=True)
        inputs = documents.inputs_with_defaults(processor.metadata, nested.get('inputs') or {})
        for k in STORAGE_INPUTS:
            inputs.pop(k, None)
        report = self._reporter(job_id)
        ctx = ChainContext(job_id=job_id, user=row['owner'], workdir=workdir,
                           max_input_bytes=self.max_input_bytes,
                           report=lambda p, m: report(0, f'nested {pid}: {m or p}'))
        inputs = self._resolve(processor.metadata, inputs, ctx, feed)
        try:
            out_name = documents.selected_output(processor.metadata, nested)
        except documents.APIError as err:         # checked at submission; WPS jobs are not
            raise InputError(f'input "{name}": {err.detail}') from None
        result = processor.run(inputs, ctx).get(out_name)
        if result is None:
            raise InputError(f'input "{name}": nested {pid} gave no output "{out_name}"')
        out = {'n': n, 'process': pid, 'output': out_name, 'mediaType': result.media_type}
        if result.path is not None:
            stored = self._store_outputs(
                row, processor.metadata, {out_name: result},
                {out_name: {'transmissionMode': 'reference'}}, workdir,
                {'output_tier': 'volatile', 'output_folder': f'jobs/{job_id}/nested-{n}'}
            )[out_name]
            local = Path(stored['path'])          # the tier took the file over
            href, digest, size = stored['href'], stored['sha256'], local.stat().st_size
            out.update(href=href, path=str(local))
        else:
            href = f'{self.base_url}/jobs/{job_id}#nested-{n}-{pid}-{out_name}'
            data = json.dumps(result.value, sort_keys=True).encode()
            digest, size = hashlib.sha256(data).hexdigest(), len(data)
            out['value'] = result.value
        ctx.used.append({'href': href, 'sha256': digest, 'bytes': size,
                         'mediaType': result.media_type, 'process': pid, 'output': out_name})
        out['used'] = ctx.used
        return out

    def _nested_value(self, name, schema, result: dict, ctx: ChainContext):
        """The value an input gets from the result of its nested step: a file by its URL
        (read from the tier's file when this worker sees it), or a value fitted to the
        input's schema."""
        ctx.used.extend(result['used'])
        if 'href' in result:
            ctx.made[result['href']] = result['used'][-1]['sha256']
            if Path(result['path']).is_file():
                ctx.local[result['href']] = Path(result['path'])
            return {'href': result['href'], 'type': result['mediaType']}
        value = result['value']
        if documents.is_file_input(schema):        # a value feeding a file input: a JSON/text file
            return {'value': value if isinstance(value, str) else json.dumps(value),
                    'encoding': 'utf-8', 'mediaType': result['mediaType']}
        try:
            jsonschema.validate(value, {k: v for k, v in schema.items()
                                        if k not in ('contentMediaType', 'contentEncoding')})
        except jsonschema.ValidationError as err:
            raise InputError(f'input "{name}": the output "{result["output"]}" of nested '
                             f'{result["process"]} does not fit: {err.message}') from None
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
        job_id = row['job_id']
        meta = dict(row.get('meta') or {}, http_status=http_status)
        if self.manager.store.update(job_id, only_if_status=['running'], status='failed',
                                     finished=utcnow(), message=message, meta=meta):
            failed = self.manager.store.get(job_id)
            if failed is not None:                  # not dismissed in the meantime
                _notify(subscriber.get('failedUri'),
                        documents.status_info(failed, self.base_url))
        shutil.rmtree(self.manager.output_dir / job_id, ignore_errors=True)
        return 'failed'

    def _reporter(self, job_id):
        last = [time.monotonic()]   # a job done within half a second writes no progress

        def report(percent: int, message: str):
            now = time.monotonic()
            if now - last[0] < 0.5 and percent < 100:
                return                      # progress is for people: twice a second is plenty
            last[0] = now
            self.manager.store.update(job_id, only_if_status=['running'], progress=percent,
                                      message=message or 'running', heartbeat=utcnow())
        return report

    def _store_outputs(self, row, metadata, outputs: dict[str, Output], requested,
                       workdir: Path, target: dict, later: list | None = None) -> dict:
        """Each output by value or by reference, as the request asked (or by its nature);
        references are files of the storage tier the request chose. Given `later`, file
        outputs left unhashed are listed there (name, stored file or None when the job's
        folder keeps it), to be hashed after the answer; else every output has its checksum."""
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
            if out.href is not None:        # a reference the process made: only that
                results[name] = {'href': out.href, 'type': media}
                continue
            if out.path is None and mode != 'reference':
                results[name] = {'value': out.value, 'mediaType': media}
                results[name]['sha256'] = _sha256(results[name])
                continue
            if mode == 'reference':
                path = out.path
                if path is None:
                    path = workdir / (name + ('.json' if 'json' in media else '.txt'))
                    data = json.dumps(out.value) if 'json' in media else str(out.value)
                    path.write_text(data)
                href, stored, path = self._to_tier(row, name, path, media, target, later)
                results[name] = {'href': href, 'type': media, 'path': str(path)}
            else:   # a file by value: kept in the job's folder as long as the job, read when
                stored = None                                               # answered
                results[name] = {'inline': True, 'path': str(out.path), 'mediaType': media,
                                 'file': f"{self.base_url}/jobs/{row['job_id']}/outputs/{name}"}
            if stored is not None and stored.sha256:
                results[name]['sha256'] = stored.sha256   # the tier hashed it while storing
            elif later is not None:
                later.append((name, stored))
            else:
                results[name]['sha256'] = _sha256(results[name])
        return results

    def _to_tier(self, row, name: str, path: Path, media: str, target: dict,
                 later: list | None = None) -> tuple[str, object, Path]:
        """(URL, storage.tiers.StoredFile or None, local file) of a file output stored in
        the tier the request chose; a local tier takes the file over (renamed, not copied):
        the local file is then its. `later`: the caller hashes it after."""
        if self.tiers is None:
            return f"{self.base_url}/jobs/{row['job_id']}/outputs/{name}", None, path
        from storage.errors import StorageError
        tier, folder, owner, meta = self._target_tier(row, target)
        try:
            stored = tier.put(owner or 'anonymous', f'{folder}/{path.name}', path,
                              media_type=media, author=owner, move=True, meta=meta,
                              hash_later=later is not None)
        except StorageError as err:
            raise InputError(f'output "{name}" could not be stored in the {tier.name} tier: '
                             f'{err}') from None
        return tier.url_for(stored), stored, stored.local or path

    def _store_files(self, row, files: list, target: dict) -> list[dict]:
        """Files a process delivers one by one, into the tier and folder the request chose
        (`JobContext.store`)."""
        if self.tiers is None:
            raise InputError('this server has no storage tiers for the files of this job')
        from storage.errors import StorageError
        tier, folder, owner, meta = self._target_tier(row, target)
        try:
            stored = tier.put_many(owner or 'anonymous', [
                (f'{folder}/{rel}', path, media, sha) for rel, path, media, sha, *_ in files],
                author=owner, meta=meta, metas=[f[4] if len(f) > 4 else None for f in files])
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
        with open(path, 'rb') as fh:
            _FILE_SHA256[key] = hashlib.file_digest(fh, 'sha256').hexdigest()
    return _FILE_SHA256[key]


def _tidy(workdir: Path, keep: set[Path]) -> None:
    """Remove what a finished job left in its folder (inputs read by reference, nested
    steps' scratch) but the outputs its results point at: the folder would otherwise keep a
    copy of every input for as long as the job is listed."""
    if not workdir.is_dir():
        return
    for entry in workdir.iterdir():
        if entry in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            if any(k.is_relative_to(entry) for k in keep):
                _tidy(entry, keep)
            else:
                shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _sha256(result: dict) -> str:
    """Checksum of an output as delivered: the file, or the JSON of the value."""
    if result.get('path'):
        with open(result['path'], 'rb') as fh:
            return hashlib.file_digest(fh, 'sha256').hexdigest()
    return hashlib.sha256(json.dumps(result['value'], sort_keys=True).encode()).hexdigest()
