"""OGC API - Processes Part 1 routes over the Celery job manager.

pygeoapi serves the rest of the OGC API; these handlers take over its process and job
routes because the standard asks for more than pygeoapi 0.21 gives there: the job list
filters, dismiss that really cancels, results by reference, raw/document responses,
statusInfo on 201, and the standard exception types.
"""
from __future__ import annotations

import base64
import codecs
import datetime as dt
import json
import uuid
from pathlib import Path

from flask import Response, request, send_file
from pygeoapi.util import render_j2_template

import pygeoapi.api.processes as pygeoapi_processes
from processes.documents import (BARE_TYPES, TEXT_TYPES, check_execute_request, iso,
                                 materialize, process_summary, results_document, status_info,
                                 REL)
from vre.auth import current_user
from vre.errors import (APIError, BAD_REQUEST, FAILED_JOB, INVALID_PARAMETER, NO_SUCH_JOB,
                        NO_SUCH_PROCESS, RESULT_NOT_READY, UNAUTHORIZED)

CONF = 'http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/'
CONFORMANCE_CLASSES = [CONF + c for c in (
    'core', 'ogc-process-description', 'json', 'html', 'oas30', 'job-list', 'callback',
    'dismiss')] + [
    # Part 3 (workflows): nested processes and collection input (processes/runner.py)
    'http://www.opengis.net/spec/ogcapi-processes-3/1.0/conf/' + c
    for c in ('nested-processes', 'collection-input')]
STATUSES = ('created', 'accepted', 'running', 'successful', 'failed', 'dismissed')
JOB_TYPES = ('process', 'wps', 'order')


def _json(doc, status=200, headers=None, mimetype='application/json') -> Response:
    resp = Response(json.dumps(doc, default=str), status=status, mimetype=mimetype)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def results_response(results: dict, headers=None) -> Response:
    """The results document; a file output by value is streamed, base64-encoded (or, for
    text, escaped) as it is read, so a large output is never held whole in memory."""
    inline = {n for n, r in results.items() if r.get('inline') and Path(r['path']).is_file()}
    if not inline:
        return _json(results_document(results), 200, headers)

    def pieces():
        yield '{'
        for i, (name, r) in enumerate(results.items()):
            yield (', ' if i else '') + json.dumps(name) + ': '
            if name not in inline:
                yield json.dumps(results_document({name: r})[name], default=str)
                continue
            text = r['mediaType'].startswith(TEXT_TYPES)
            bare = r['mediaType'] in BARE_TYPES
            yield '"' if bare else '{"value": "'
            with open(r['path'], 'rb') as fh:
                if text:
                    decode = codecs.getincrementaldecoder('utf-8')().decode
                    while chunk := fh.read(1 << 20):
                        yield json.dumps(decode(chunk))[1:-1]
                    yield json.dumps(decode(b'', final=True))[1:-1]
                else:
                    while chunk := fh.read(3 << 18):      # a multiple of 3: no padding inside
                        yield base64.b64encode(chunk).decode('ascii')
            if bare:
                yield '"'
                continue
            yield f'", "mediaType": {json.dumps(r["mediaType"])}'
            yield '}' if text else ', "encoding": "base64"}'
        yield '}'

    resp = Response(pieces(), mimetype='application/json')
    resp.headers.update(headers or {})
    return resp


def wants_html() -> bool:
    f = request.args.get('f')
    if f is not None:
        if f not in ('json', 'html'):
            raise APIError(400, BAD_REQUEST, f'unsupported format f={f}; use json or html')
        return f == 'html'
    best = request.accept_mimetypes.best_match(['application/json', 'text/html'])
    return best == 'text/html' and request.accept_mimetypes['text/html'] > \
        request.accept_mimetypes['application/json']


class ProcessesAPI:
    def __init__(self, api, settings):
        self.api = api
        self.manager = api.manager
        self.base_url = settings.url
        self._metadata = {pid: self.manager.get_processor(pid).metadata
                          for pid in self.manager.processes}

    # -- helpers ----------------------------------------------------------------
    def _html(self, template: str, data: dict) -> Response:
        html = render_j2_template(self.api.tpl_config, self.api.config['server']['templates'],
                                  template, data, self.api.default_locale)
        return Response(html, mimetype='text/html')

    def metadata(self, pid: str) -> dict:
        if pid not in self._metadata:
            raise APIError(404, NO_SUCH_PROCESS, f'no process "{pid}"; see {self.base_url}/processes')
        return self._metadata[pid]

    def job_for_request(self, job_id: str) -> dict:
        """The job if the caller may see it; others' jobs are 'not found', not 'forbidden'."""
        row = self.manager.get_job_row(job_id)
        user = current_user()
        if row is None or (row['owner'] is not None and
                           (user is None or not user.may_access(row['owner']))):
            raise APIError(404, NO_SUCH_JOB, f'no job "{job_id}"')
        return row

    # -- processes --------------------------------------------------------------
    def processes(self, process_id=None):
        html = wants_html()
        if process_id is not None:
            doc = process_summary(process_id, self.metadata(process_id), self.base_url, full=True)
            return self._html('processes/process.html', doc) if html else _json(doc)
        limit = _int_param('limit', 1000, 1, 10000)
        docs = [process_summary(pid, md, self.base_url) for pid, md in self._metadata.items()]
        doc = {'processes': docs[:limit], 'links': [
            {'href': f'{self.base_url}/processes', 'rel': 'self', 'type': 'application/json'},
            {'href': f'{self.base_url}/processes?f=html', 'rel': 'alternate', 'type': 'text/html'}]}
        return self._html('processes/index.html', doc) if html else _json(doc)

    def execute(self, process_id):
        metadata = self.metadata(process_id)
        raw = request.get_data(cache=False)
        if not raw:
            raise APIError(400, INVALID_PARAMETER, 'the execute request body is empty; send '
                           '{"inputs": {...}} as JSON')
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise APIError(400, INVALID_PARAMETER, f'the body is not valid JSON: {err}') from None
        check_execute_request(metadata, body)
        check_job(self.manager.get_processor(process_id), body.get('inputs') or {})
        jco = metadata.get('jobControlOptions', ['sync-execute', 'async-execute'])
        prefer = request.headers.get('Prefer', '')
        wants_async = 'respond-async' in prefer
        wait = prefer_wait(prefer)
        run_async = ('async-execute' in jco and wants_async) or 'sync-execute' not in jco
        user = current_user()
        row = self.manager.submit(process_id, body, owner=user.name if user else None)
        location = f"{self.base_url}/jobs/{row['job_id']}"
        if run_async:
            headers = {'Location': location}
            applied = ['respond-async'] if wants_async else []
            if wait:    # RFC 7240: answer when the job ends or after `wait` s, still a 201
                row = self.manager.wait(row['job_id'], timeout=wait) or row
                applied.append(f'wait={wait:g}')
            if applied:
                headers['Preference-Applied'] = ', '.join(applied)
            return _json(status_info(row, self.base_url), 201, headers)
        row = self.manager.wait(row['job_id'])
        headers = {'Location': location}
        if 'wait' in prefer:
            headers['Preference-Applied'] = 'wait'
        return self._sync_response(row, body, headers)

    def _sync_response(self, row, body, headers):
        if row is None:
            raise APIError(410, NO_SUCH_JOB, 'the job was dismissed while it ran')
        if row['status'] != 'successful':
            status = (row.get('meta') or {}).get('http_status', 500)
            raise APIError(status, FAILED_JOB, row['message'] or 'the job failed',
                           title='Job failed', headers=headers)
        results = row['results'] or {}
        if body.get('response', 'raw') == 'document':
            return results_response(results, headers)
        return raw_response(results, headers, body.get('outputs') or {})

    # -- jobs -------------------------------------------------------------------
    def jobs(self, job_id=None):
        if job_id is not None:
            if request.method == 'DELETE':
                return self.dismiss(job_id)
            row = self.job_for_request(job_id)
            wait = prefer_wait(request.headers.get('Prefer', ''))
            headers = {}
            if wait and row['status'] in ('accepted', 'running'):   # long poll, RFC 7240
                row = self.manager.wait(job_id, timeout=wait) \
                    or self.job_for_request(job_id)     # dismissed meanwhile: 404 now
                headers['Preference-Applied'] = f'wait={wait:g}'
            doc = status_info(row, self.base_url)
            if wants_html():
                return self._html('jobs/job.html', {'jobs': doc, 'now': iso(_now())})
            return _json(doc, headers=headers)
        html = wants_html()
        filters = job_filters()
        user = current_user()
        rows, total = self.manager.query(owner=user.name if user else None,
                                         see_all=bool(user and user.admin), **filters)
        docs = [status_info(r, self.base_url) for r in rows]
        doc = {'jobs': docs, 'numberMatched': total, 'numberReturned': len(docs),
               'links': self._paging_links(filters['offset'], filters['limit'], total)}
        if html:
            return self._html('jobs/index.html', {'jobs': doc, 'offset': filters['offset'],
                                                  'now': iso(_now())})
        return _json(doc)

    def _paging_links(self, offset, limit, total):
        params = [(k, v) for k, v in request.args.items(multi=True) if k not in ('offset', 'f')]
        from urllib.parse import urlencode
        def href(off, fmt='json'):
            return f"{self.base_url}/jobs?{urlencode(params + [('offset', off), ('f', fmt)])}"
        links = [{'href': href(offset), 'rel': 'self', 'type': 'application/json'},
                 {'href': href(offset, 'html'), 'rel': 'alternate', 'type': 'text/html'}]
        if offset + limit < total:
            links.append({'href': href(offset + limit), 'rel': 'next', 'type': 'application/json'})
        if offset > 0:
            links.append({'href': href(max(0, offset - limit)), 'rel': 'prev',
                          'type': 'application/json'})
        return links

    def dismiss(self, job_id):
        row = self.job_for_request(job_id)
        self.manager.dismiss(job_id)
        row = dict(row, status='dismissed', message='dismissed', updated=_now())
        doc = status_info(row, self.base_url)
        doc['links'] = [{'href': f'{self.base_url}/jobs', 'rel': 'up', 'type': 'application/json',
                         'title': 'the job list'}]
        return _json(doc)

    def results(self, job_id):
        row = self.job_for_request(job_id)
        if row['status'] in ('created', 'accepted', 'running'):
            raise APIError(404, RESULT_NOT_READY, f"job {job_id} is {row['status']}; "
                           'poll its status and ask again when it is successful')
        if row['status'] == 'failed':
            status = (row.get('meta') or {}).get('http_status', 500)
            raise APIError(status, FAILED_JOB, row['message'] or 'the job failed',
                           title='Job failed')
        if wants_html():
            return self._html('jobs/results/index.html', {
                'job': {'id': job_id}, 'result': results_document(row['results'])})
        return results_response(row['results'] or {})

    def definition(self, job_id):
        """The execution request of the job: POST it again to re-run the job."""
        row = self.job_for_request(job_id)
        body = dict(row['request'] or {})
        body['process'] = f"{self.base_url}/processes/{row['process_id']}"
        return _json(body)

    def provenance(self, job_id):
        """W3C PROV of the job: PROV-JSON by default, PROV-N and PROV-XML on request."""
        from processes.provenance import PROV_TYPES, job_provenance, serialize
        row = self.job_for_request(job_id)
        fmt = request.args.get('f')
        if fmt is None:
            best = request.accept_mimetypes.best_match(list(PROV_TYPES.values()))
            fmt = next((k for k, v in PROV_TYPES.items() if v == best), 'json')
        if fmt not in PROV_TYPES:
            raise APIError(400, BAD_REQUEST, f'f={fmt}: use one of {sorted(PROV_TYPES)}')
        version = self._metadata.get(row['process_id'], {}).get('version', '')
        doc = job_provenance(row, self.base_url, version)
        return Response(serialize(doc, fmt), mimetype=PROV_TYPES[fmt])

    def output_file(self, job_id, name):
        row = self.job_for_request(job_id)
        result = (row['results'] or {}).get(name)
        if result is None or 'path' not in result:
            raise APIError(404, NO_SUCH_JOB, f'job {job_id} has no stored output "{name}"')
        path = Path(result['path'])
        if not path.exists():
            raise APIError(410, NO_SUCH_JOB, f'output "{name}" of job {job_id} is gone')
        media = result.get('type') or result.get('mediaType') or 'application/octet-stream'
        return send_file(path, mimetype=media, conditional=True,
                         download_name=f'{job_id}-{path.name}')


def check_job(processor, inputs: dict, partial: bool = False) -> None:
    """The process's own checks of a job's inputs (beyond the schema), as 4xx problems."""
    from processes.base import InputError
    if getattr(processor, 'needs_user', False) and current_user() is None:
        raise APIError(401, UNAUTHORIZED, 'jobs of this process belong to a user: send a '
                       'bearer token', headers={'WWW-Authenticate': 'Bearer'})
    try:
        processor.check(inputs, partial=partial)
    except InputError as err:
        raise APIError(400, INVALID_PARAMETER, str(err)) from None


def raw_response(results: dict, headers: dict, requested: dict) -> Response:
    """response=raw: one output as itself; several as multipart/related (OGC 18-062r2 7.11).
    A file output is sent as bytes unless the request asked for it by reference."""
    parts = []
    for name, r in results.items():
        asked = ((requested.get(name) or {}).get('transmissionMode') == 'reference')
        if len(results) == 1 and r.get('path') and (r.get('inline') or 'href' in r and not asked) \
                and Path(r['path']).is_file():
            resp = send_file(r['path'], mimetype=r.get('type') or r['mediaType'],
                             conditional=True)
            resp.headers.update(headers)
            return resp
        if r.get('inline'):
            r = materialize({name: r})[name]
        if 'href' in r:
            parts.append((name, None, r))
        else:
            value = r['value']
            if r.get('encoding') == 'base64':
                import base64
                data = base64.b64decode(value)
            elif isinstance(value, str) and not r['mediaType'].endswith('json'):
                data = value.encode()
            else:
                data = json.dumps(value).encode()
            parts.append((name, data, r))
    if len(parts) == 1:
        name, data, r = parts[0]
        if data is None:
            resp = Response(status=204)
            resp.headers['Link'] = f'<{r["href"]}>; rel="{REL}results"; type="{r["type"]}"'
        else:
            resp = Response(data, mimetype=r['mediaType'])
    else:
        boundary = uuid.uuid4().hex
        chunks = []
        for name, data, r in parts:
            head = f'--{boundary}\r\nContent-ID: <{name}>\r\n'
            if data is None:
                chunks.append((head + f'Content-Type: {r["type"]}\r\nContent-Location: '
                               f'{r["href"]}\r\n\r\n').encode())
            else:
                chunks.append((head + f'Content-Type: {r["mediaType"]}\r\n\r\n').encode()
                              + data + b'\r\n')
        chunks.append(f'--{boundary}--\r\n'.encode())
        resp = Response(b''.join(chunks), mimetype=f'multipart/related; boundary={boundary}')
    for k, v in headers.items():
        resp.headers[k] = v
    return resp


MAX_WAIT = 60.0


def prefer_wait(prefer: str) -> float | None:
    """Seconds of a `Prefer: wait=N` header (RFC 7240 section 4.3), at most MAX_WAIT; None
    when absent or not a number (a preference the server may ignore, never an error)."""
    for part in prefer.split(','):
        name, _, value = part.strip().partition('=')
        if name.strip().lower() == 'wait':
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                return None
            return min(seconds, MAX_WAIT) if seconds > 0 else None
    return None


def _now():
    return dt.datetime.now(dt.timezone.utc)


def _int_param(name, default, low, high):
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError(400, INVALID_PARAMETER, f'{name} must be an integer') from None
    if not low <= value <= high:
        raise APIError(400, INVALID_PARAMETER, f'{name} must be between {low} and {high}')
    return value


def _list_param(name, allowed=None):
    values = [v for raw in request.args.getlist(name) for v in raw.split(',') if v]
    if allowed:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise APIError(400, INVALID_PARAMETER, f'{name}: unknown value(s) {bad}; '
                           f'allowed: {list(allowed)}')
    return values or None


def _parse_time(text):
    try:
        value = dt.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        raise APIError(400, INVALID_PARAMETER, f'datetime: "{text}" is not an RFC 3339 '
                       'date-time') from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def job_filters() -> dict:
    """The job-list query parameters of OGC API - Processes 1.0 (section 11)."""
    start = end = None
    raw = request.args.get('datetime')
    if raw:
        if '/' in raw:
            a, _, b = raw.partition('/')
            start = None if a in ('', '..') else _parse_time(a)
            end = None if b in ('', '..') else _parse_time(b)
            if start and end and start > end:
                raise APIError(400, INVALID_PARAMETER, 'datetime: start is after end')
        else:
            start = end = _parse_time(raw)
    return dict(types=_list_param('type', JOB_TYPES),
                process_ids=_list_param('processID'),
                statuses=_list_param('status', STATUSES),
                created_from=start, created_to=end,
                min_duration=_int_param('minDuration', None, 0, 10 ** 9),
                max_duration=_int_param('maxDuration', None, 0, 10 ** 9),
                limit=_int_param('limit', 10, 1, 10000),
                offset=_int_param('offset', 0, 0, 10 ** 9))


def register(app, api, settings) -> None:
    """Take over pygeoapi's process and job routes; add output downloads."""
    handlers = ProcessesAPI(api, settings)
    app.extensions['vre_processes'] = handlers
    pygeoapi_processes.CONFORMANCE_CLASSES[:] = CONFORMANCE_CLASSES
    app.view_functions['pygeoapi.get_processes'] = handlers.processes
    app.view_functions['pygeoapi.execute_process_jobs'] = handlers.execute
    app.view_functions['pygeoapi.get_jobs'] = handlers.jobs
    app.view_functions['pygeoapi.get_job_result'] = handlers.results
    app.add_url_rule('/jobs/<job_id>/outputs/<name>', 'vre_job_output', handlers.output_file)
    app.add_url_rule('/jobs/<job_id>/definition', 'vre_job_definition', handlers.definition)
    app.add_url_rule('/jobs/<job_id>/prov', 'vre_job_prov', handlers.provenance)


def extend_openapi(oas: dict) -> None:
    """Document the job-list filters and dismiss, which pygeoapi's generator leaves out."""
    jobs = oas.get('paths', {}).get('/jobs', {}).get('get')
    if jobs is None:
        return
    def q(name, schema, desc, explode=False):
        p = {'name': name, 'in': 'query', 'required': False, 'schema': schema,
             'description': desc}
        if schema.get('type') == 'array':
            p.update(style='form', explode=explode)
        return p
    jobs['parameters'] = [
        q('type', {'type': 'array', 'items': {'type': 'string', 'enum': list(JOB_TYPES)}},
          'job types'),
        q('processID', {'type': 'array', 'items': {'type': 'string'}}, 'process identifiers'),
        q('status', {'type': 'array', 'items': {'type': 'string', 'enum': list(STATUSES)}},
          'job states'),
        q('datetime', {'type': 'string'}, 'creation time: an instant or an interval a/b, .. open'),
        q('minDuration', {'type': 'integer', 'minimum': 0}, 'minimum run time in seconds'),
        q('maxDuration', {'type': 'integer', 'minimum': 0}, 'maximum run time in seconds'),
        q('limit', {'type': 'integer', 'minimum': 1, 'maximum': 10000, 'default': 10}, 'page size'),
        q('offset', {'type': 'integer', 'minimum': 0, 'default': 0}, 'first job of the page'),
        {'$ref': '#/components/parameters/f'},
    ]
    job = oas['paths'].get('/jobs/{jobId}', {})
    if 'delete' in job:
        job['delete']['summary'] = 'Dismiss a job: cancel it if running and delete its results'
        job['delete']['responses'] = {'200': {'description': 'statusInfo of the dismissed job'},
                                      '404': job['delete']['responses'].get('404', {'description': 'no such job'})}
