"""OGC API - Processes Part 4 (job management) over the same job store and manager:

    POST  /jobs                {"process": URL or id, "inputs": {...}}  -> 201, job `created`
    PATCH /jobs/{id}           {"inputs": {...}} replaces inputs; {"add": [...], "remove": [...]}
                               edits the process's basket input (orders: granules); 423 once
                               the job was submitted
    POST  /jobs/{id}/results   submit: created -> accepted, queued on Celery; 201 statusInfo

A job being put together may be incomplete; the process's checks run in full on submit.
"""
from __future__ import annotations

import json

from flask import request

from processes.api import _json, check_job
from processes.documents import check_execute_request, status_info
from vre.auth import current_user
from vre.errors import APIError, INVALID_PARAMETER, NOT_ALLOWED


def _body() -> dict:
    try:
        body = json.loads(request.get_data(cache=False) or b'null')
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise APIError(400, INVALID_PARAMETER, f'the body is not valid JSON: {err}') from None
    if not isinstance(body, dict):
        raise APIError(400, INVALID_PARAMETER, 'the body must be a JSON object')
    return body


def _relaxed(metadata: dict) -> dict:
    """The description with every input optional: a created job may still lack some."""
    return dict(metadata, inputs={k: dict(v, minOccurs=0)
                                  for k, v in metadata.get('inputs', {}).items()})


class JobManagement:
    def __init__(self, processes_api):
        self.p = processes_api          # processes.api.ProcessesAPI: metadata, ownership
        self.manager = processes_api.manager
        self.base_url = processes_api.base_url

    def _process_id(self, ref) -> str:
        if not isinstance(ref, str) or not ref:
            raise APIError(400, INVALID_PARAMETER, '"process" must be the URL or the id of '
                           f'a process of {self.base_url}/processes')
        pid = ref.rstrip('/').rsplit('/processes/', 1)[-1] if '/' in ref else ref
        self.p.metadata(pid)            # 404 no-such-process
        return pid

    def _checked(self, pid: str, body: dict) -> dict:
        check_execute_request(_relaxed(self.p.metadata(pid)), body)
        check_job(self.manager.get_processor(pid), body.get('inputs') or {}, partial=True)
        return body

    def create(self):
        body = _body()
        pid = self._process_id(body.pop('process', None))
        body.setdefault('inputs', {})
        self._checked(pid, body)
        user = current_user()
        row = self.manager.create(pid, body, owner=user.name if user else None)
        return _json(status_info(row, self.base_url), 201,
                     {'Location': f"{self.base_url}/jobs/{row['job_id']}"})

    def _created(self, job_id: str) -> dict:
        row = self.p.job_for_request(job_id)
        if row['status'] != 'created':
            raise APIError(423, NOT_ALLOWED, f"job {job_id} is {row['status']}: only a job "
                           'that was not submitted yet can be changed', title='Locked')
        return row

    def update(self, job_id: str):
        row = self._created(job_id)
        body = _body()
        old = dict(row['request'] or {})
        if 'add' in body or 'remove' in body:
            new = dict(old, inputs=self._edit_basket(row, body))
        else:
            unknown = set(body) - {'inputs', 'outputs', 'response', 'subscriber'}
            if unknown:
                raise APIError(400, INVALID_PARAMETER, f'unknown members {sorted(unknown)}; '
                               'send {"inputs": {...}} or {"add": [...], "remove": [...]}')
            new = dict(old, **body)
        self._checked(row['process_id'], new)
        if not self.manager.store.update(job_id, only_if_status=['created'], request=new):
            return self._created(job_id)      # submitted meanwhile: 423
        return _json(status_info(self.manager.store.get(job_id), self.base_url))

    def _edit_basket(self, row: dict, body: dict) -> dict:
        name = getattr(self.manager.get_processor(row['process_id']), 'basket_input', None)
        if name is None:
            raise APIError(400, INVALID_PARAMETER, f"process {row['process_id']} has no "
                           'basket input: send {"inputs": {...}} instead of add/remove')
        add, remove = body.get('add') or [], body.get('remove') or []
        if not (isinstance(add, list) and isinstance(remove, list)):
            raise APIError(400, INVALID_PARAMETER, '"add" and "remove" must be lists')
        inputs = dict((row['request'] or {}).get('inputs') or {})
        items = [i for i in inputs.get(name) or [] if i not in remove]
        items += [i for i in add if i not in items]
        inputs[name] = items
        return inputs

    def submit(self, job_id: str):
        row = self._created(job_id)
        body = row['request'] or {}
        check_execute_request(self.p.metadata(row['process_id']), body)
        check_job(self.manager.get_processor(row['process_id']), body.get('inputs') or {})
        row = self.manager.start(job_id)
        if row is None:
            return self._created(job_id)      # submitted twice at once: 423
        return _json(status_info(row, self.base_url), 201,
                     {'Location': f"{self.base_url}/jobs/{job_id}"})


def register(app, api, settings) -> None:
    """After processes.api (its ProcessesAPI gives ownership rules and metadata)."""
    handlers = JobManagement(app.extensions['vre_processes'])
    app.add_url_rule('/jobs', 'vre_job_create', handlers.create, methods=['POST'])
    app.add_url_rule('/jobs/<job_id>', 'vre_job_update', handlers.update, methods=['PATCH'])
    app.add_url_rule('/jobs/<job_id>/results', 'vre_job_submit', handlers.submit,
                     methods=['POST'])
