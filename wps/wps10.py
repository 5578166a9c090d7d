"""WPS 1.0.0 documents: GetCapabilities and DescribeProcess from pywps's own templates over
the generated Process classes; ExecuteResponse (sync answer and status document) built
here from the job row, since pywps renders it only from its own forked executions.
"""
from __future__ import annotations

import base64
import json
import types
from pathlib import Path

from lxml import etree
from pywps.response.capabilities import CapabilitiesResponse
from pywps.response.describe import DescribeResponse

from processes.documents import iso, materialize
from wps.errors import OWS11, WPSError, invalid, report_element
from wps.execute import failure
from wps.processes import is_complex, literal_type
from wps.requests import WPS10

W = f'{{{WPS10}}}'
O = f'{{{OWS11}}}'
NSMAP = {'wps': WPS10, 'ows': OWS11, 'xlink': 'http://www.w3.org/1999/xlink',
         'xsi': 'http://www.w3.org/2001/XMLSchema-instance'}
STATUS = {'accepted': 'ProcessAccepted', 'running': 'ProcessStarted',
          'successful': 'ProcessSucceeded', 'failed': 'ProcessFailed'}
_REQUEST = types.SimpleNamespace(language='en-US')   # all pywps's responses read from it


def capabilities(processes: dict) -> bytes:
    resp = CapabilitiesResponse(_REQUEST, None, '1.0.0', processes=processes)
    return resp.template_env.get_template('1.0.0/capabilities/main.xml').render(
        **resp.json).encode()


def describe(processes: dict, identifiers: list[str], max_mb: int) -> bytes:
    if any(i.lower() == 'all' for i in identifiers):
        identifiers = ['all']
    for ident in identifiers:
        if ident != 'all' and ident not in processes:
            raise invalid('identifier', f'no process "{ident}"; GetCapabilities lists '
                          'the processes')
    resp = DescribeResponse(_REQUEST, None, processes=processes, identifiers=identifiers)
    doc = etree.fromstring(resp.template_env.get_template('1.0.0/describe/main.xml').render(
        max_size=max_mb, **resp.json).encode())
    for bound in doc.iter(O + 'MinimumValue', O + 'MaximumValue'):
        if bound.text in ('inf', '-inf'):           # an unbounded end (see wps.processes)
            bound.getparent().remove(bound)
    return etree.tostring(doc, xml_declaration=True, encoding='UTF-8')


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else json.dumps(value)


def _data(parent, schema: dict, result: dict):
    """wps:Data of one output or input value."""
    data = etree.SubElement(parent, W + 'Data')
    if not is_complex(schema):
        etree.SubElement(data, W + 'LiteralData', dataType=literal_type(schema)).text = \
            _text(result['value'])
        return
    cd = etree.SubElement(data, W + 'ComplexData',
                          mimeType=result.get('mediaType') or 'application/json')
    if result.get('encoding') == 'base64':
        cd.set('encoding', 'base64')
    text = _text(result['value'])
    cd.text = etree.CDATA(text) if cd.get('mimeType').endswith('json') else text


def execute_response(row: dict, metadata: dict, base_url: str, status_url: str | None) -> bytes:
    """The ExecuteResponse of a job in any state (the sync answer or the stored status)."""
    root = etree.Element(W + 'ExecuteResponse', nsmap=NSMAP, service='WPS', version='1.0.0',
                         serviceInstance=f'{base_url}/wps?service=WPS&request='
                                         'GetCapabilities&version=1.0.0')
    root.set('{http://www.w3.org/XML/1998/namespace}lang', 'en-US')
    root.set(f'{{{NSMAP["xsi"]}}}schemaLocation',
             f'{WPS10} http://schemas.opengis.net/wps/1.0.0/wpsExecute_response.xsd')
    if status_url:
        root.set('statusLocation', status_url)
    proc = etree.SubElement(root, W + 'Process')
    proc.set(W + 'processVersion', metadata.get('version', '1.0.0'))
    etree.SubElement(proc, O + 'Identifier').text = row['process_id']
    etree.SubElement(proc, O + 'Title').text = _title(metadata, row['process_id'])
    status = etree.SubElement(root, W + 'Status',
                              creationTime=iso(row.get('updated') or row['created']))
    state = STATUS.get(row['status'], 'ProcessAccepted')
    el = etree.SubElement(status, W + state)
    if state == 'ProcessFailed':
        el.append(report_element(failure(row), '1.0.0'))
    else:
        el.text = row.get('message') or state
        if state == 'ProcessStarted':
            el.set('percentCompleted', str(int(row.get('progress') or 0)))
    request = row.get('request') or {}
    if (row.get('meta') or {}).get('wps', {}).get('lineage'):
        _lineage(root, metadata, request)
    if state == 'ProcessSucceeded':
        outs = etree.SubElement(root, W + 'ProcessOutputs')
        declared = metadata.get('outputs') or {}
        for name, result in materialize(row.get('results')).items():
            spec = declared.get(name, {})
            out = etree.SubElement(outs, W + 'Output')
            etree.SubElement(out, O + 'Identifier').text = name
            etree.SubElement(out, O + 'Title').text = spec.get('title') or name
            if 'href' in result:
                etree.SubElement(out, W + 'Reference', href=result['href'],
                                 mimeType=result.get('type') or 'application/octet-stream')
            else:
                _data(out, spec.get('schema') or {}, result)
    return etree.tostring(root, xml_declaration=True, encoding='UTF-8', pretty_print=True)


def _title(metadata: dict, default: str) -> str:
    title = metadata.get('title') or default
    return title.get('en') or next(iter(title.values()), default) if isinstance(title, dict) \
        else title


def _lineage(root, metadata: dict, request: dict) -> None:
    """DataInputs and OutputDefinitions echoed back (lineage=true)."""
    declared = metadata.get('inputs') or {}
    inputs = etree.SubElement(root, W + 'DataInputs')
    for name, value in (request.get('inputs') or {}).items():
        spec = declared.get(name, {})
        for v in value if isinstance(value, list) and spec.get('maxOccurs', 1) != 1 else [value]:
            inp = etree.SubElement(inputs, W + 'Input')
            etree.SubElement(inp, O + 'Identifier').text = name
            etree.SubElement(inp, O + 'Title').text = spec.get('title') or name
            if isinstance(v, dict) and 'href' in v:
                etree.SubElement(inp, W + 'Reference', {f'{{{NSMAP["xlink"]}}}href': v['href']})
            elif isinstance(v, dict) and 'value' in v:
                _data(inp, spec.get('schema') or {}, v)
            else:
                _data(inp, spec.get('schema') or {}, {'value': v, 'mediaType': 'application/json'})
    defs = etree.SubElement(root, W + 'OutputDefinitions')
    for name, opts in (request.get('outputs') or {}).items():
        out = etree.SubElement(defs, W + 'Output', asReference=str(
            opts.get('transmissionMode') == 'reference').lower())
        etree.SubElement(out, O + 'Identifier').text = name


def raw_output(result: dict) -> tuple[bytes, str]:
    """RawDataOutput: the bytes of the one output and its media type."""
    if result.get('inline'):
        return Path(result['path']).read_bytes(), result['mediaType']
    if 'href' in result:
        raise WPSError('NoApplicableCode', 'the output was stored by reference', status=500)
    media = result.get('mediaType') or 'application/json'
    value = result['value']
    if result.get('encoding') == 'base64':
        return base64.b64decode(value), media
    if isinstance(value, str) and not media.endswith('json'):
        return value.encode(), media
    return json.dumps(value).encode(), media
