"""The JSON documents of OGC API - Processes Part 1 built from job rows and process
metadata, and the checks of an execute request against a process description.

The checks follow Part 3 too: an input value may be a nested process ({"process": URL of a
process of this server, "inputs", "outputs"}, checked like a top-level request, recursively)
or, for file inputs, a collection of this server ({"collection": URL})."""
from __future__ import annotations

import base64
import copy
import functools
import json
from pathlib import Path

import jsonschema

from processes.base import is_file
from vre.errors import APIError, INVALID_PARAMETER

REL = 'http://www.opengis.net/def/rel/ogc/1.0/'


def iso(value):
    return value.isoformat().replace('+00:00', 'Z') if value else None


def process_summary(pid: str, metadata: dict, base_url: str, full: bool = False) -> dict:
    doc = copy.deepcopy(metadata)
    doc['id'] = pid
    doc.setdefault('version', '1.0.0')
    doc.setdefault('jobControlOptions', ['sync-execute', 'async-execute', 'dismiss'])
    doc.setdefault('outputTransmission', ['value', 'reference'])
    for key in ('title', 'description'):
        if isinstance(doc.get(key), dict):          # pygeoapi-style {lang: text}
            doc[key] = doc[key].get('en') or next(iter(doc[key].values()), '')
    url = f'{base_url}/processes/{pid}'
    doc['links'] = list(doc.get('links') or []) + [
        {'href': url, 'rel': 'self' if full else REL + 'process', 'type': 'application/json',
         'title': 'process description'},
        {'href': f'{url}?f=html', 'rel': 'alternate', 'type': 'text/html',
         'title': 'process description as HTML'},
        {'href': f'{url}/execution', 'rel': REL + 'execute', 'type': 'application/json',
         'title': 'execute this process'},
        {'href': f'{base_url}/jobs?processID={pid}', 'rel': REL + 'job-list',
         'type': 'application/json', 'title': 'jobs of this process'},
    ]
    if not full:
        for key in ('inputs', 'outputs', 'example'):
            doc.pop(key, None)
    return doc


def status_info(row: dict, base_url: str) -> dict:
    job_url = f"{base_url}/jobs/{row['job_id']}"
    doc = {
        'jobID': row['job_id'], 'processID': row['process_id'], 'type': row['type'],
        'status': row['status'], 'message': row.get('message') or '',
        'progress': row.get('progress') or 0,
        'created': iso(row['created']), 'started': iso(row.get('started')),
        'finished': iso(row.get('finished')), 'updated': iso(row.get('updated')),
        # beyond the standard: who started it and where it ran (the operator's questions)
        'user': row.get('owner'), 'worker': row.get('worker'), 'attempts': row.get('attempts'),
        'links': [
            {'href': job_url, 'rel': 'self', 'type': 'application/json', 'title': 'job status'},
            {'href': f'{job_url}?f=html', 'rel': 'alternate', 'type': 'text/html',
             'title': 'job status as HTML'},
            {'href': f"{base_url}/processes/{row['process_id']}", 'rel': 'up',
             'type': 'application/json', 'title': 'the process'},
        ],
    }
    if row['status'] == 'successful':
        doc['links'].append({'href': f'{job_url}/results', 'rel': REL + 'results',
                             'type': 'application/json', 'title': 'job results'})
    return {k: v for k, v in doc.items() if v is not None}


TEXT_TYPES = ('text/', 'application/json', 'application/geo+json', 'application/xml')
BARE_TYPES = ('application/json', 'text/plain')   # values the results document shows bare


def materialize(results: dict) -> dict:
    """Results with each file output by value (`inline`: the job row keeps the file's place,
    not its bytes, so reading a job's status never parses them) read now: text as text, other
    bytes as base64. A file this process cannot read becomes a reference to its URL."""
    out = {}
    for name, r in (results or {}).items():
        if not r.get('inline'):
            out[name] = r
            continue
        try:
            data = Path(r['path']).read_bytes()
        except OSError:
            out[name] = {'href': r['file'], 'type': r['mediaType'], 'sha256': r.get('sha256')}
            continue
        if r['mediaType'].startswith(TEXT_TYPES):
            out[name] = dict(r, value=data.decode('utf-8'))
        else:
            out[name] = dict(r, value=base64.b64encode(data).decode('ascii'), encoding='base64')
    return out


def results_document(results: dict) -> dict:
    """Results as the standard's results.yaml: an inline value or a link per output."""
    doc = {}
    for name, r in materialize(results).items():
        if 'href' in r:
            doc[name] = {'href': r['href'], 'type': r['type']}
        elif r.get('encoding') == 'base64' or r['mediaType'] not in BARE_TYPES:
            doc[name] = {k: r[k] for k in ('value', 'mediaType', 'encoding') if k in r}
        else:
            doc[name] = r['value']
    return doc


def inputs_with_defaults(metadata: dict, inputs: dict) -> dict:
    out = dict(inputs)
    for name, spec in metadata.get('inputs', {}).items():
        default = (spec.get('schema') or {}).get('default')
        if name not in out and default is not None:
            out[name] = default
    return out


def _bad(detail: str) -> APIError:
    return APIError(400, INVALID_PARAMETER, detail, title='Invalid parameter')


def is_file_input(schema: dict) -> bool:
    """A file: binary or non-JSON media, a URI, or a choice (oneOf/anyOf) of such."""
    if is_file(schema) or schema.get('format') in ('uri', 'binary'):
        return True
    return any(is_file_input(s) for s in schema.get('oneOf', []) + schema.get('anyOf', []))


MAX_NESTING = 5          # nested processes deeper than this are refused (and cannot loop)


class Resolver:
    """Finds the description of a process of this server from its URL (Part 3 nesting)."""

    def __init__(self, base_url: str, metadata: dict):
        self.base_url = base_url.rstrip('/')
        self.metadata = metadata            # process id -> description

    def process_id(self, url) -> str | None:
        prefix = f'{self.base_url}/processes/'
        if not isinstance(url, str) or not url.startswith(prefix):
            return None
        pid = url[len(prefix):].split('?')[0].rstrip('/')
        pid = pid[:-len('/execution')] if pid.endswith('/execution') else pid
        return pid if pid in self.metadata else None

    def collection_ok(self, url) -> bool:
        prefix = f'{self.base_url}/collections/'
        return isinstance(url, str) and url.startswith(prefix) and len(url) > len(prefix)


def _app_resolver() -> Resolver | None:
    """The resolver of the running app: its process handlers (processes/api.py register)
    know the base URL and every description. None outside a request (no nesting then)."""
    try:
        from flask import current_app
        handlers = current_app.extensions.get('vre_processes')
    except RuntimeError:
        return None
    return handlers and Resolver(handlers.base_url, handlers._metadata)


def selected_output(metadata: dict, nested: dict) -> str:
    """The one output of a nested process that feeds the outer input."""
    declared = list(metadata.get('outputs', {}))
    asked = list(nested.get('outputs') or {})
    if len(asked) > 1:
        raise _bad(f'a nested process must select one output; got {asked}')
    if not asked and len(declared) != 1:
        raise _bad(f'the nested process has outputs {declared}: select one in "outputs"')
    return asked[0] if asked else declared[0]


def check_execute_request(metadata: dict, body, resolve: Resolver | None = None,
                          depth: int = 0) -> dict:
    """An execute request checked against the process description (400 on any mistake).
    Nested processes are checked with their own descriptions, found by `resolve`
    (default: the running app's)."""
    resolve = resolve or _app_resolver()
    if not isinstance(body, dict):
        raise _bad('the execute request must be a JSON object')
    unknown = set(body) - {'inputs', 'outputs', 'response', 'subscriber', 'mode', 'process'}
    if unknown:
        raise _bad(f'unknown members of the execute request: {sorted(unknown)}')
    inputs = body.get('inputs', {})
    if not isinstance(inputs, dict):
        raise _bad('"inputs" must be an object mapping input ids to values')
    declared = metadata.get('inputs', {})
    for name in inputs:
        if name not in declared:
            raise _bad(f'unknown input "{name}"; this process takes {sorted(declared)}')
    for name, spec in declared.items():
        min_occurs = spec.get('minOccurs', 1)
        if name not in inputs:
            if min_occurs > 0:
                raise APIError(400, INVALID_PARAMETER, f'missing required input "{name}"',
                               title='Missing parameter value')
            continue
        _check_input(name, spec, inputs[name], resolve, depth)
    outputs = body.get('outputs')
    if outputs is not None:
        if not isinstance(outputs, dict):
            raise _bad('"outputs" must be an object mapping output ids to options')
        allowed = metadata.get('outputTransmission', ['value', 'reference'])
        for name, spec in outputs.items():
            if name not in metadata.get('outputs', {}):
                raise _bad(f'unknown output "{name}"')
            mode = (spec or {}).get('transmissionMode', 'value') if isinstance(spec, dict) else None
            if mode not in allowed:
                raise _bad(f'output "{name}": transmissionMode must be one of {allowed}')
    if body.get('response', 'raw') not in ('raw', 'document'):
        raise _bad('"response" must be "raw" or "document"')
    sub = body.get('subscriber')
    if sub is not None:
        if not isinstance(sub, dict) or not sub.get('successUri'):
            raise _bad('"subscriber" needs at least a successUri')
        for key in ('successUri', 'inProgressUri', 'failedUri'):
            uri = sub.get(key)
            if uri is not None and not (isinstance(uri, str) and uri.startswith(('http://', 'https://'))):
                raise _bad(f'subscriber.{key} must be an http(s) URI')
    return body


def _check_nested(name: str, schema: dict, v: dict, resolve, depth: int) -> None:
    if resolve is None:
        raise _bad(f'input "{name}": nested processes are not available here')
    if depth + 1 > MAX_NESTING:
        raise _bad(f'input "{name}": processes nested deeper than {MAX_NESTING} levels')
    pid = resolve.process_id(v['process'])
    if pid is None:
        raise _bad(f'input "{name}": "{v["process"]}" is not a process of this server '
                   f'({resolve.base_url}/processes/<id>)')
    nested = {k: val for k, val in v.items() if k != 'process'}
    if set(nested) - {'inputs', 'outputs'}:
        raise _bad(f'input "{name}": a nested process takes only process, inputs, outputs')
    try:
        check_execute_request(resolve.metadata[pid], nested, resolve, depth + 1)
        out = selected_output(resolve.metadata[pid], nested)
    except APIError as err:
        raise _bad(f'input "{name}" (nested {pid}): {err.detail}') from None
    out_schema = resolve.metadata[pid]['outputs'][out].get('schema') or {}
    if is_file(out_schema) and not is_file_input(schema):
        raise _bad(f'input "{name}" takes a value, but output "{out}" of {pid} is a file')


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str):
    """A checked, compiled validator per input schema: built once, not per request."""
    schema = {k: v for k, v in json.loads(schema_json).items()
              if k not in ('contentMediaType', 'contentEncoding')}
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _check_input(name: str, spec: dict, value, resolve=None, depth: int = 0) -> None:
    schema = spec.get('schema') or {}
    max_occurs = spec.get('maxOccurs', 1)
    values = value if isinstance(value, list) and schema.get('type') != 'array' else [value]
    if max_occurs != 'unbounded' and len(values) > max_occurs:
        raise _bad(f'input "{name}" takes at most {max_occurs} value(s)')
    for v in values:
        if isinstance(v, dict) and 'process' in v and schema.get('type') != 'object':
            _check_nested(name, schema, v, resolve, depth)
            continue
        if isinstance(v, dict) and 'collection' in v and schema.get('type') != 'object':
            if not is_file_input(schema):
                raise _bad(f'input "{name}" is not a file: it cannot be a collection')
            if resolve is not None and not resolve.collection_ok(v['collection']):
                raise _bad(f'input "{name}": collection must be the URL of a collection of '
                           f'this server ({resolve.base_url}/collections/<id>)')
            continue
        if isinstance(v, dict) and 'href' in v:
            if not is_file_input(schema):
                raise _bad(f'input "{name}" cannot be given by reference')
            if not isinstance(v['href'], str) or not v['href'].startswith(('http://', 'https://')):
                raise _bad(f'input "{name}": href must be an http(s) URL')
            continue
        if isinstance(v, dict) and 'value' in v and schema.get('type') != 'object':
            v = v['value']
            if is_file_input(schema):
                continue
        error = jsonschema.exceptions.best_match(_validator(json.dumps(schema, sort_keys=True))
                                                 .iter_errors(v))
        if error is not None:
            raise _bad(f'input "{name}": {error.message}')
