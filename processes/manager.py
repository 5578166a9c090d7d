"""The job manager plugin for pygeoapi (`server.manager.name` in the config).

Every job (OGC API, WPS, orders) is a row of one job store; execution goes to Celery.
A job whose worker stops beating is failed with a reason (or queued again when its process
says a re-run is safe); a job past its timeout is stopped and failed. `dismiss` revokes a
running task (terminating its worker child) and removes its results.

A job with nested processes (OGC API - Processes Part 3) is a Celery workflow: one task per
nested process, chained (one nested input) or joined by a chord (several) before the task of
the outer process, recursively. No task waits for another (Celery sends each step when the
steps it needs are done), so one worker with one process runs it. The task ids derive from
`<job id>.<attempts>`, so dismiss and the reaper revoke every step without a lookup.
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
NESTED_TASK = 'processes.tasks.run_nested'      # one nested process of a workflow
OUTER_TASK = 'processes.tasks.run_outer'        # the outer process, after its nested ones


def input_values(inputs: dict, metadata: dict):
    """(name, schema, index, value) of each input value in request order, the values of a
    non-array input one by one (index None for a single value): the order in which the
    runner resolves them."""
    for name, value in inputs.items():
        schema = metadata.get('inputs', {}).get(name, {}).get('schema') or {}
        if isinstance(value, list) and schema.get('type') != 'array':
            for index, v in enumerate(value):
                yield name, schema, index, v
        else:
            yield name, schema, None, value


def is_nested(value, schema: dict) -> bool:
    return isinstance(value, dict) and 'process' in value and schema.get('type') != 'object'


def _may_nest(value) -> bool:
    """A cheap look at one top-level input value: could it hold a nested process?"""
    if isinstance(value, list):
        return any(isinstance(v, dict) and 'process' in v for v in value)
    return isinstance(value, dict) and 'process' in value


def _count(steps: list[dict]) -> int:
    return sum(1 + _count(s['children']) for s in steps)


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
        """Queue a job: one task, or the workflow of its nested processes (re-sent whole
        when the reaper queues a job again)."""
        timeout = row['timeout'] or self.default_timeout
        tag = f"{row['job_id']}.{row['attempts']}"
        steps = self.nested_steps(row)
        if not steps:
            # ignore_result: the job store has the outcome; without it the sender subscribes
            # to the task's result channel on Redis for every job
            self.celery.send_task(RUN_TASK, args=[row['job_id']], task_id=tag,
                                  soft_time_limit=timeout, time_limit=timeout + 10,
                                  ignore_result=True)
            return
        from celery import chain, chord, group
        # every step gets the whole timeout here; a step stops itself when the job's time is
        # up (processes/runner.py), as it only knows then how much is left
        kwargs = dict(job_id=row['job_id'], attempt=row['attempts'] + 1)
        options = dict(soft_time_limit=timeout, time_limit=timeout + 10)

        def after(children: list[dict], sig):
            heads = [after(c['children'], self.celery.signature(
                NESTED_TASK, kwargs=dict(kwargs, step={k: c[k] for k in ('n', 'process', 'path')}),
                task_id=f"{tag}.{c['n']}", **options)) for c in children]
            if not heads:
                return sig
            return chain(heads[0], sig) if len(heads) == 1 else chord(group(heads), sig)

        after(steps, self.celery.signature(OUTER_TASK, kwargs=kwargs, task_id=tag,
                                           **options)).apply_async()

    def nested_steps(self, row: dict) -> list[dict]:
        """The nested processes of a job as a tree, [{n, process, path, children}], numbered
        depth first in the order the runner meets them; [] (at the cost of a look at each
        top-level input) for a job without any."""
        inputs = (row['request'] or {}).get('inputs') or {}
        if not isinstance(inputs, dict) or not any(_may_nest(v) for v in inputs.values()):
            return []
        return self._steps(row['process_id'], inputs, [], [0])

    def _steps(self, process_id: str, inputs: dict, path: list, counter: list) -> list[dict]:
        metadata = self.get_processor(process_id).metadata if process_id in self.processes \
            else {}                     # an unknown process fails its step with a reason
        steps = []
        for name, schema, index, value in input_values(inputs, metadata):
            if not is_nested(value, schema):
                continue
            pid = str(value['process']).split('?')[0].rstrip('/')
            pid = pid.removesuffix('/execution').rsplit('/', 1)[-1]
            counter[0] += 1
            step = dict(n=counter[0], process=pid, path=path + [[name, index]])
            nested = value.get('inputs')
            step['children'] = self._steps(pid, nested, step['path'], counter) \
                if isinstance(nested, dict) else []
            steps.append(step)
        return steps

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

    def _task_ids(self, row: dict) -> list[str]:
        """The task ids of a job's current and previous attempt: `<id>.<attempts>` for the
        job (or its outer process), `<id>.<attempts>.<n>` for its nested processes."""
        count = _count(self.nested_steps(row))
        return [f"{row['job_id']}.{a}{suffix}"
                for a in {max(row['attempts'] - 1, 0), row['attempts']}
                for suffix in [''] + [f'.{n}' for n in range(1, count + 1)]]

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
        from processes.documents import materialize
        return 'application/json', {
            k: {kk: vv for kk, vv in v.items() if kk not in ('path', 'inline', 'file')}
            for k, v in materialize(row['results']).items()}

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
