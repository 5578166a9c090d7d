"""The job manager plugin for pygeoapi (`server.manager.name` in the config).

Every job (OGC API, WPS, orders) is a row of one job store; execution goes to Celery.
A job whose worker stops beating is failed with a reason (or queued again when its process
says a re-run is safe); a job past its timeout is stopped and failed. `dismiss` revokes a
running task (terminating its worker child) and removes its results.
"""
from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
import uuid
from pathlib import Path

from pygeoapi.process.base import JobNotFoundError, JobResultNotFoundError
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import JobStatus, RequestedProcessExecutionMode

from processes.jobstore import ACTIVE, FINAL, JobStore, utcnow
from processes.notify import RECHECK, Notices
from vre.settings import load_settings

HEARTBEAT_SECONDS = 2.0
RUN_TASK = 'processes.tasks.run_job'


class CeleryJobManager(BaseManager):
    """pygeoapi manager backed by the SQLAlchemy job store and Celery."""

    def __init__(self, manager_def: dict):
        super().__init__(manager_def)
        self.is_async = True
        self.supports_subscribing = True
        self.notices = Notices(load_settings().redis_url)
        self.store = JobStore(manager_def['connection'], on_final=self.notices.publish)
        self.output_dir = Path(manager_def.get('output_dir') or 'jobs')
        self.default_timeout = float(manager_def.get('timeout') or 3600)
        self.heartbeat_grace = float(manager_def.get('heartbeat_grace') or 5 * HEARTBEAT_SECONDS)
        self._last_reap = 0.0
        self._reap_lock = threading.Lock()
        self._processors = {}

    def get_processor(self, process_id: str):
        """One instance per process and process: processors hold no per-job state, and
        building one (import, metadata merge) is not free on the hot path of execute."""
        if process_id not in self._processors:
            self._processors[process_id] = super().get_processor(process_id)
        return self._processors[process_id]

    # -- submission -------------------------------------------------------------
    @property
    def celery(self):
        from processes.celery_app import celery_app
        return celery_app

    def submit(self, process_id: str, request: dict, owner: str | None,
               type_: str | None = None, meta: dict | None = None) -> dict:
        """Record an accepted job and queue it; answers the job row."""
        row = self.create(process_id, request, owner, type_, meta, status='accepted')
        self.enqueue(row)
        return row

    def create(self, process_id: str, request: dict, owner: str | None,
               type_: str | None = None, meta: dict | None = None,
               status: str = 'created') -> dict:
        """Record a job without queueing it (OGC API - Processes Part 4: a job being put
        together, e.g. an order basket); `start` queues it."""
        processor = self.get_processor(process_id)
        timeout = float(getattr(processor, 'timeout', None) or self.default_timeout)
        now = utcnow()
        row = dict(job_id=str(uuid.uuid4()),
                   type=type_ or getattr(processor, 'job_type', 'process'),
                   process_id=process_id, status=status,
                   message='queued' if status == 'accepted' else status, progress=0,
                   owner=owner, request=request, results=None, created=now, updated=now,
                   timeout=timeout, attempts=0,
                   rerun_safe=int(bool(getattr(processor, 'rerun_safe', False))),
                   meta=meta or {})
        self.store.add(row)
        return row

    def start(self, job_id: str) -> dict | None:
        """created -> accepted and queued; None when the job is no longer `created`."""
        row = self.store.get(job_id)
        meta = dict((row or {}).get('meta') or {}, submitted=utcnow().isoformat())
        if row is None or not self.store.update(job_id, only_if_status=['created'],
                                                status='accepted', message='queued', meta=meta):
            return None
        row = self.store.get(job_id)
        self.enqueue(row)
        return row

    def enqueue(self, row: dict) -> None:
        timeout = row['timeout'] or self.default_timeout
        self.celery.send_task(RUN_TASK, args=[row['job_id']], task_id=f"{row['job_id']}.{row['attempts']}",
                              soft_time_limit=timeout, time_limit=timeout + 10)

    def wait(self, job_id: str, timeout: float | None = None) -> dict | None:
        """The job row once it is final, or as it is when `timeout` runs out (sync execute,
        `Prefer: wait`); woken by the job-finished notice, re-reading at least every
        RECHECK seconds."""
        deadline = time.monotonic() + (self.default_timeout + 30 if timeout is None
                                       else timeout)
        with self.notices.waiter(job_id) as finished:
            while True:
                row = self.get_job_row(job_id)
                left = deadline - time.monotonic()
                if row is None or row['status'] in FINAL or left <= 0:
                    return row
                finished.wait(min(left, RECHECK))

    # -- reading ----------------------------------------------------------------
    def get_job_row(self, job_id: str) -> dict | None:
        self.reap()
        return self.store.get(job_id)

    def query(self, **filters) -> tuple[list[dict], int]:
        self.reap()
        return self.store.query(**filters)

    # -- dismiss ----------------------------------------------------------------
    def dismiss(self, job_id: str) -> dict | None:
        """Cancel if active (revoke + terminate), delete the job and its results."""
        row = self.store.get(job_id)
        if row is None:
            return None
        if row['status'] in ACTIVE:
            self.store.update(job_id, status='dismissed', message='dismissed by the user')
            # queued as <id>.<attempts>; once claimed, attempts was incremented
            self.celery.control.revoke(self._task_ids(row), terminate=True, signal='SIGTERM')
        self.store.delete(job_id)
        shutil.rmtree(self.output_dir / job_id, ignore_errors=True)
        return row

    @staticmethod
    def _task_ids(row: dict) -> list[str]:
        return [f"{row['job_id']}.{a}" for a in {max(row['attempts'] - 1, 0), row['attempts']}]

    # -- fault handling ---------------------------------------------------------
    def reap(self, force: bool = False) -> None:
        """Fail (or re-queue) jobs whose worker died, and stop jobs past their timeout.
        Cheap, and run at most once a second per process."""
        now_m = time.monotonic()
        if not force and now_m - self._last_reap < 1.0:
            return
        if not self._reap_lock.acquire(blocking=False):
            return
        try:
            self._last_reap = now_m
            now = utcnow()
            for row in self.store.stale_running(now - dt.timedelta(seconds=self.heartbeat_grace)):
                beat = row['heartbeat'].isoformat() if row['heartbeat'] else 'never'
                if row['rerun_safe'] and row['attempts'] < 2:
                    if self.store.update(row['job_id'], only_if_status=['running'],
                                         status='accepted', progress=0,
                                         message=f"worker {row['worker']} was lost; queued again"):
                        self.enqueue(row)
                else:
                    self.store.update(row['job_id'], only_if_status=['running'],
                                      status='failed', finished=now,
                                      message=f"worker {row['worker']} was lost (killed or its "
                                              f"host went down); last heartbeat {beat}")
            for row in self.store.overdue(now):
                if self.store.update(row['job_id'], only_if_status=['running'], status='failed',
                                     finished=now,
                                     message=f"timed out after {row['timeout']:g} s"):
                    self.celery.control.revoke(self._task_ids(row), terminate=True,
                                               signal='SIGKILL')
        finally:
            self._reap_lock.release()

    # -- pygeoapi's BaseManager interface ----------------------------------------
    def get_jobs(self, status: JobStatus = None, limit=None, offset=None) -> dict:
        rows, total = self.query(see_all=True, statuses=[status.value] if status else None,
                                 limit=limit or 10, offset=offset or 0)
        return {'jobs': [self._pygeoapi_job(r) for r in rows], 'numberMatched': total}

    def add_job(self, job_metadata: dict) -> str:
        now = utcnow()
        self.store.add(dict(job_id=job_metadata['identifier'], type='process',
                            process_id=job_metadata['process_id'],
                            status=job_metadata.get('status', 'accepted'),
                            message=job_metadata.get('message', ''), progress=0,
                            created=now, updated=now, request={}, meta={}))
        return job_metadata['identifier']

    def update_job(self, job_id: str, update_dict: dict) -> bool:
        allowed = {k: v for k, v in update_dict.items()
                   if k in ('status', 'message', 'progress')}
        return self.store.update(job_id, **allowed)

    def get_job(self, job_id: str) -> dict:
        row = self.get_job_row(job_id)
        if row is None:
            raise JobNotFoundError()
        return self._pygeoapi_job(row)

    def get_job_result(self, job_id: str):
        row = self.get_job_row(job_id)
        if row is None:
            raise JobNotFoundError()
        if row['status'] != 'successful' or row['results'] is None:
            raise JobResultNotFoundError()
        return 'application/json', {k: {kk: vv for kk, vv in v.items() if kk != 'path'}
                                    for k, v in row['results'].items()}

    def delete_job(self, job_id: str) -> bool:
        if self.dismiss(job_id) is None:
            raise JobNotFoundError()
        return True

    def execute_process(self, process_id, data_dict, execution_mode=None,
                        requested_outputs=None, subscriber=None, requested_response='raw'):
        request = {'inputs': data_dict, 'response': requested_response}
        if requested_outputs:
            request['outputs'] = requested_outputs
        if subscriber:
            request['subscriber'] = {'successUri': subscriber.success_uri,
                                     'inProgressUri': subscriber.in_progress_uri,
                                     'failedUri': subscriber.failed_uri}
        row = self.submit(process_id, request, owner=None)
        if execution_mode == RequestedProcessExecutionMode.respond_async:
            return row['job_id'], 'application/json', None, JobStatus.accepted, {}
        row = self.wait(row['job_id'])
        _, results = (self.get_job_result(row['job_id']) if row['status'] == 'successful'
                      else ('application/json', {'message': row['message']}))
        return row['job_id'], 'application/json', results, JobStatus[row['status']], {}

    @staticmethod
    def _pygeoapi_job(row: dict) -> dict:
        iso = lambda v: v.isoformat() if v else None  # noqa: E731
        return {'type': row['type'], 'identifier': row['job_id'], 'process_id': row['process_id'],
                'status': row['status'], 'message': row['message'], 'progress': row['progress'],
                'created': iso(row['created']), 'started': iso(row['started']),
                'finished': iso(row['finished']), 'updated': iso(row['updated']),
                'mimetype': 'application/json', 'location': None}

    def __repr__(self):
        return f'<CeleryJobManager> {self.store.engine.url!r}'
