"""pywps `Process` classes generated from the OGC process metadata (METADATA), so a
process is declared once and offered both as OGC API - Processes and as WPS.

An input or output whose schema has `contentMediaType` (or `contentEncoding`) is complex
(a file, given by value or by reference); object/array schemas without it are complex
JSON; everything else is literal. The generated classes describe; they never run: WPS
jobs go to the same Celery job manager as OGC API jobs (see wps/execute.py).
"""
from __future__ import annotations

import math

from pywps import ComplexInput, ComplexOutput, Format, LiteralInput, LiteralOutput, Process
from pywps.app.Common import Metadata
from pywps.inout.literaltypes import AllowedValue
from pywps.validator.allowed_value import ALLOWEDVALUETYPE

from processes.documents import process_summary

# JSON schema type (and format) -> WPS literal data type (xs: names, as pywps uses them)
LITERAL_TYPES = {'string': 'string', 'number': 'float', 'integer': 'integer',
                 'boolean': 'boolean'}
FORMAT_TYPES = {'date-time': 'dateTime', 'date': 'date', 'time': 'time', 'uri': 'anyURI'}
JSON_MEDIA = 'application/json'


def is_complex(schema: dict) -> bool:
    """Files (contentMediaType/contentEncoding) and structured JSON are complex in WPS."""
    return bool(schema.get('contentMediaType') or schema.get('contentEncoding')
                or schema.get('type') in ('object', 'array'))


def media_types(schema: dict) -> list[str]:
    """The media types of a complex input/output (one: the declared one; binary without a
    declared type is octet-stream, structured JSON is application/json)."""
    if schema.get('contentMediaType'):
        return [schema['contentMediaType']]
    return ['application/octet-stream' if schema.get('contentEncoding') else JSON_MEDIA]


def literal_type(schema: dict) -> str:
    return FORMAT_TYPES.get(schema.get('format'), LITERAL_TYPES.get(schema.get('type'), 'string'))


def value_range(schema: dict) -> tuple | None:
    """(minimum, maximum, closure) of a numeric schema, None where unbounded; closure is
    the OWS rangeClosure (exclusiveMinimum/Maximum make that end open)."""
    low = schema.get('minimum', schema.get('exclusiveMinimum'))
    high = schema.get('maximum', schema.get('exclusiveMaximum'))
    if low is None and high is None:
        return None
    left = 'open' if 'exclusiveMinimum' in schema and 'minimum' not in schema else 'closed'
    right = 'open' if 'exclusiveMaximum' in schema and 'maximum' not in schema else 'closed'
    return low, high, left if left == right else f'{left}-{right}'


def _allowed_values(schema: dict) -> list | None:
    if 'enum' in schema:
        return [AllowedValue(allowed_type=ALLOWEDVALUETYPE.VALUE, value=v) for v in schema['enum']]
    bounds = value_range(schema)
    if bounds is None:
        return None
    low, high, closure = bounds
    # pywps compares both ends: an open end is an infinite bound (dropped when rendered)
    return [AllowedValue(allowed_type=ALLOWEDVALUETYPE.RANGE, range_closure=closure,
                         minval=-math.inf if low is None else low,
                         maxval=math.inf if high is None else high)]


def max_occurs(spec: dict) -> int:
    value = spec.get('maxOccurs', 1)
    return 1_000_000 if value == 'unbounded' else int(value)


def _input(name: str, spec: dict):
    schema = spec.get('schema') or {}
    common = dict(identifier=name, title=spec.get('title') or name,
                  abstract=spec.get('description', ''), min_occurs=spec.get('minOccurs', 1),
                  max_occurs=max_occurs(spec))
    if is_complex(schema):
        return ComplexInput(supported_formats=[Format(m) for m in media_types(schema)], **common)
    allowed = _allowed_values(schema)
    return LiteralInput(data_type=literal_type(schema), default=schema.get('default'),
                        allowed_values=allowed or None, **common)


def _output(name: str, spec: dict):
    schema = spec.get('schema') or {}
    common = dict(identifier=name, title=spec.get('title') or name,
                  abstract=spec.get('description', ''))
    if is_complex(schema):
        return ComplexOutput(supported_formats=[Format(m) for m in media_types(schema)],
                             as_reference=True, **common)
    return LiteralOutput(data_type=literal_type(schema), **common)


def _not_run_here(request, response):
    raise RuntimeError('WPS processes run through the job manager, not in pywps')


def process_class(pid: str, metadata: dict) -> type:
    """A pywps Process subclass for one process description; instantiate with no arguments."""
    doc = process_summary(pid, metadata, '')
    jco = doc.get('jobControlOptions', [])

    def __init__(self):
        Process.__init__(
            self, _not_run_here, identifier=pid, title=doc.get('title') or pid,
            abstract=doc.get('description', ''), keywords=list(doc.get('keywords') or []),
            version=doc['version'],
            metadata=[Metadata(link.get('title') or link['href'], href=link['href'])
                      for link in metadata.get('links') or [] if link.get('href')],
            inputs=[_input(n, s) for n, s in (metadata.get('inputs') or {}).items()],
            outputs=[_output(n, s) for n, s in (metadata.get('outputs') or {}).items()],
            store_supported='async-execute' in jco, status_supported='async-execute' in jco)

    name = ''.join(part.capitalize() for part in pid.replace('_', '-').split('-')) + 'WPS'
    return type(name, (Process,), {'__init__': __init__, 'METADATA': metadata,
                                   '__doc__': f'WPS face of the "{pid}" process.'})
