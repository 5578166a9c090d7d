"""A WPS Execute turned into the OGC API execute request of the same process, so WPS jobs
are ordinary rows of the one job store, run by the same Celery workers and listed at /jobs
(type 'wps').

Raw WPS values are converted by the process's JSON schema (a KVP or XML value is text),
then checked by the same `check_execute_request` that guards OGC API - Processes.
"""
from __future__ import annotations

import json
import math
import re

from processes.documents import check_execute_request
from vre.errors import APIError
from wps.errors import WPSError, invalid, missing
from wps.processes import is_complex, max_occurs, media_types
from wps.requests import Call


def _file_like(schema: dict) -> bool:
    return bool(schema.get('contentMediaType') or schema.get('contentEncoding'))


def _literal(name: str, schema: dict, text: str):
    kind = schema.get('type')
    try:
        if kind == 'integer':
            return int(text.strip())
        if kind == 'number':
            value = float(text.strip())
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        raise invalid(name, f'input "{name}": "{text}" is not a {kind}') from None
    if kind == 'boolean':
        if text.strip().lower() in ('true', '1'):
            return True
        if text.strip().lower() in ('false', '0'):
            return False
        raise invalid(name, f'input "{name}": "{text}" is not a boolean (true or false)')
    return text


def _convert(name: str, schema: dict, item: dict):
    """One raw WPS value as the OGC API value of that input."""
    media = item.get('mimeType')
    if media and is_complex(schema) and media not in media_types(schema):
        raise invalid(name, f'input "{name}": mimeType {media} is not supported; use '
                      f'{" or ".join(media_types(schema))}')
    if 'href' in item:
        if not is_complex(schema):
            raise invalid(name, f'input "{name}" is a literal value and cannot be given by '
                          'reference')
        if not item['href'].startswith(('http://', 'https://')):
            raise invalid(name, f'input "{name}": a reference must be an http(s) URL')
        return {'href': item['href']}
    text = item['value']
    if _file_like(schema):
        encoding = 'base64' if item.get('encoding') == 'base64' else 'utf-8'
        return {'value': text, 'encoding': encoding,
                'mediaType': media or media_types(schema)[0]}
    if is_complex(schema):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise invalid(name, f'input "{name}" must be JSON') from None
    return _literal(name, schema, text)


def ogc_inputs(metadata: dict, raw: dict[str, list[dict]]) -> dict:
    declared = metadata.get('inputs') or {}
    inputs = {}
    for name, items in raw.items():
        spec = declared.get(name)
        if spec is None:
            raise invalid(name, f'unknown input "{name}"; this process takes '
                          f'{", ".join(sorted(declared))}')
        if len(items) > max_occurs(spec):
            raise invalid(name, f'input "{name}" takes at most {spec.get("maxOccurs", 1)} '
                          'value(s)')
        values = [_convert(name, spec.get('schema') or {}, item) for item in items]
        inputs[name] = values[0] if max_occurs(spec) == 1 else values
    for name, spec in declared.items():
        if name not in inputs and spec.get('minOccurs', 1) > 0:
            raise missing(name, f'input "{name}" is required')
    return inputs


def ogc_outputs(metadata: dict, requested: dict[str, dict], raw: bool) -> dict:
    """Requested outputs (all when none named) with their transmission mode."""
    declared = metadata.get('outputs') or {}
    allowed = metadata.get('outputTransmission') or ['value', 'reference']
    names = list(requested) or list(declared)
    if raw and len(names) != 1:
        raise invalid('RawDataOutput', 'a raw response carries exactly one output; name it '
                      f'(this process has {", ".join(declared)})')
    outputs = {}
    for name in names:
        if name not in declared:
            raise invalid(name, f'unknown output "{name}"; this process has '
                          f'{", ".join(declared)}')
        schema = declared[name].get('schema') or {}
        want = requested.get(name) or {}
        media = want.get('mimeType')
        if media and media not in (media_types(schema) if is_complex(schema) else
                                   ['text/plain']):
            raise invalid(name, f'output "{name}" is not available as {media}')
        mode = 'value' if raw else (want.get('transmission') or
                                    ('value' if 'value' in allowed else allowed[0]))
        if mode not in allowed:
            raise invalid(name, f'output "{name}" cannot be sent by {mode}; this process '
                          f'allows {" or ".join(allowed)}')
        outputs[name] = {'transmissionMode': mode}
    return outputs


def execute_request(metadata: dict, call: Call) -> dict:
    """The OGC API execute request of a WPS Execute (400 WPSError on any mistake)."""
    body = {'inputs': ogc_inputs(metadata, call.inputs),
            'outputs': ogc_outputs(metadata, call.outputs, call.raw),
            'response': 'raw' if call.raw else 'document'}
    try:
        return check_execute_request(metadata, body)
    except APIError as err:
        names = re.findall(r'"([^"]+)"', err.detail)
        raise invalid(names[0] if names else 'DataInputs', err.detail) from None


def run_async(metadata: dict, call: Call) -> bool:
    """Whether to answer at once (async) or after the job ends (sync)."""
    jco = metadata.get('jobControlOptions') or ['sync-execute', 'async-execute']
    locator = 'storeExecuteResponse' if call.version == '1.0.0' else 'mode'
    if call.mode == 'auto':
        return 'sync-execute' not in jco
    wanted = f'{call.mode}-execute'
    if wanted not in jco:
        raise invalid(locator, f'this process does not support {call.mode}hronous execution')
    return call.mode == 'async'


def failure(row: dict | None) -> WPSError:
    """The exception of a job that did not succeed: 400 for the caller's mistakes (bad
    file, bad reference), 500 for ours."""
    if row is None:
        return WPSError('NoApplicableCode', 'the job was dismissed while it ran', status=410)
    status = (row.get('meta') or {}).get('http_status', 500)
    code = 'InvalidParameterValue' if 400 <= status < 500 else 'NoApplicableCode'
    return WPSError(code, row.get('message') or 'the job failed', status=status)
