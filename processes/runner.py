"""Runs one job inside a Celery worker: claim it, run its process, store its outputs,
call the subscriber back. Everything it needs is in the job store row."""
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
from pathlib import Path

import requests
from celery.exceptions import SoftTimeLimitExceeded

from processes.base import STORAGE_INPUTS, InputError, JobContext, Output
from processes.jobstore import jobs, utcnow
from processes.manager import HEARTBEAT_SECONDS, CeleryJobManager
from processes import documents

LOGGER = logging.getLogger(__name__)
TEXT_TYPES = ('text/', 'application/json', 'application/geo+json', 'application/xml')


class Heartbeat(threading.Thread):
    """Stamps the job row every few seconds while it runs: silence means a dead worker."""

    def __init__(self, manager: CeleryJobManager, job_id: str):
        super().__init__(daemon=True)
        self.manager, self.job_id = manager, job_id
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self.manager.store.update(self.job_id, only_if_status=['running'],
                                          heartbeat=utcnow())
            except Exception:  # a busy database must not kill the job
                LOGGER.warning('heartbeat of %s not written', self.job_id, exc_info=True)


def _notify(uri: str | None, body: dict) -> None:
    if not uri:
        return
    try:
        requests.post(uri, json=body, timeout=10)
    except requests.RequestException as err:
        LOGGER.warning('callback %s failed: %s', uri, err)


class JobRunner:
    def __init__(self, manager: CeleryJobManager, base_url: str, max_input_bytes: int,
                 tiers=None):
        self.manager = manager
        self.base_url = base_url.rstrip('/')
        self.max_input_bytes = max_input_bytes
        self.tiers = tiers          # storage.tiers.Tiers: where outputs by reference go

    def run(self, job_id: str) -> str:
        store = self.manager.store
        row = store.get(job_id)
        if row is None or row['status'] != 'accepted':
            return 'skipped'          # dismissed, or already claimed by another delivery
        now = utcnow()
        if not store.update(job_id, only_if_status=['accepted'], status='running',
                            started=now, heartbeat=now, message='running', progress=0,
                            worker=f'{socket.gethostname()}:{os.getpid()}',
                            attempts=jobs.c.attempts + 1):
            return 'skipped'
        row = store.get(job_id)
        request = row['request'] or {}
        subscriber = request.get('subscriber') or {}
        _notify(subscriber.get('inProgressUri'), documents.status_info(row, self.base_url))
        beat = Heartbeat(self.manager, job_id)
        beat.start()
        workdir = self.manager.output_dir / job_id
        try:
            processor = self.manager.get_processor(row['process_id'])
            inputs = documents.inputs_with_defaults(processor.metadata, request.get('inputs') or {})
            target = {k: inputs.pop(k, None) for k in STORAGE_INPUTS}
            ctx = JobContext(job_id=job_id, user=row['owner'], workdir=workdir,
                             max_input_bytes=self.max_input_bytes,
                             report=self._reporter(job_id))
            workdir.mkdir(parents=True, exist_ok=True)
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
            beat.stop.set()
        meta = dict(row.get('meta') or {}, used=ctx.used)
        if not store.update(job_id, only_if_status=['running'], status='successful',
                            finished=utcnow(), progress=100, message='done', results=results,
                            meta=meta):
            shutil.rmtree(workdir, ignore_errors=True)   # dismissed while running
            return 'dismissed'
        _notify(subscriber.get('successUri'), documents.results_document(results))
        return 'successful'

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
        job_id = row['job_id']
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
                href = self._to_tier(row, name, path, media, target)
                results[name] = {'href': href, 'type': media, 'path': str(path)}
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
            r['sha256'] = _sha256(r)
        return results


    def _to_tier(self, row, name: str, path: Path, media: str, target: dict) -> str:
        tier_name = target.get('output_tier') or 'volatile'
        owner = row['owner']
        if self.tiers is None:
            return f"{self.base_url}/jobs/{row['job_id']}/outputs/{name}"
        if tier_name != 'volatile' and owner is None:
            raise InputError(f'output_tier={tier_name} needs a signed-in user; anonymous jobs '
                             'write to the volatile tier')
        from storage.errors import StorageError
        folder = (target.get('output_folder') or f"jobs/{row['job_id']}").strip('/')
        tier = self.tiers.get(tier_name)
        try:
            stored = tier.put(owner or 'anonymous', f'{folder}/{path.name}', path,
                              media_type=media, author=owner,
                              meta={'provenance': f"{self.base_url}/jobs/{row['job_id']}"})
        except StorageError as err:
            raise InputError(f'output "{name}" could not be stored in the {tier_name} tier: '
                             f'{err}') from None
        return tier.url_for(stored)


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
