"""WPS 1.0.0 and 2.0.0 requests (KVP GET and XML POST) parsed into one plain `Call`.

Our own parser rather than pywps's: pywps 4.8 cannot read 2.0 Execute documents and turns
some malformed requests into 500s; here every mistake becomes a WPSError naming the
parameter. Inputs stay raw (text, media type, href) until wps/execute.py converts them
by the process's schema.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree

from wps.errors import WPSError, invalid, missing

WPS10 = 'http://www.opengis.net/wps/1.0.0'
WPS20 = 'http://www.opengis.net/wps/2.0'
OWS11 = 'http://www.opengis.net/ows/1.1'
OWS20 = 'http://www.opengis.net/ows/2.0'
XLINK = 'http://www.w3.org/1999/xlink'
VERSIONS = ('1.0.0', '2.0.0')
OPERATIONS = {'1.0.0': ('GetCapabilities', 'DescribeProcess', 'Execute'),
              '2.0.0': ('GetCapabilities', 'DescribeProcess', 'Execute', 'GetStatus',
                        'GetResult', 'Dismiss')}
ALL_OPERATIONS = {op.lower(): op for op in OPERATIONS['2.0.0']}
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                              huge_tree=False)


@dataclass
class Call:
    """One WPS request, whatever its encoding."""
    version: str
    operation: str
    identifiers: list[str] = field(default_factory=list)
    job_id: str | None = None
    # input id -> list of {'value': text, 'mimeType', 'encoding'} or {'href', 'mimeType'}
    inputs: dict[str, list[dict]] = field(default_factory=dict)
    # output id -> {'transmission': 'value'|'reference'|None, 'mimeType': str|None}
    outputs: dict[str, dict] = field(default_factory=dict)
    raw: bool = False
    mode: str = 'sync'            # sync | async | auto
    lineage: bool = False


def _bool(name: str, text: str | None, default: bool = False) -> bool:
    if text is None or text == '':
        return default
    if text.lower() in ('true', '1'):
        return True
    if text.lower() in ('false', '0'):
        return False
    raise invalid(name, f'{name} must be true or false, not "{text}"')


def _operation(name: str | None, version: str | None) -> str:
    if not name:
        raise missing('request')
    op = ALL_OPERATIONS.get(name.lower())
    if op is None:
        raise WPSError('OperationNotSupported', f'unknown operation "{name}"; this server '
                       f'offers {", ".join(OPERATIONS["2.0.0"])}', 'request')
    if version in OPERATIONS and op not in OPERATIONS[version]:
        raise WPSError('OperationNotSupported', f'{op} is not an operation of WPS {version}; '
                       'use version 2.0.0', 'request')
    return op


def negotiate(accept: str | None) -> str:
    """GetCapabilities: the first version of AcceptVersions we speak (1.0.0 by default)."""
    if not accept:
        return '1.0.0'
    for version in (v.strip() for v in accept.split(',')):
        if version in VERSIONS:
            return version
    raise WPSError('VersionNegotiationFailed', f'none of the versions "{accept}" is '
                   'supported; this server speaks 1.0.0 and 2.0.0', 'AcceptVersions')


def _check_version(version: str | None) -> str:
    if not version:
        raise missing('version', 'parameter "version" is required (1.0.0 or 2.0.0)')
    if version not in VERSIONS:
        raise invalid('version', f'version "{version}" is not supported; use 1.0.0 or 2.0.0')
    return version


# -- KVP ------------------------------------------------------------------------------
def parse_kvp(args) -> Call:
    """A GET request (its query parameters, keys case-insensitive)."""
    params = {k.lower(): v for k, v in args.items()}
    service = params.get('service')
    if not service:
        raise missing('service', 'parameter "service" is required (service=WPS)')
    if service.upper() != 'WPS':
        raise invalid('service', f'service "{service}" is not offered here; use service=WPS')
    name = params.get('request')
    if name and name.lower() == 'getcapabilities':
        return Call(negotiate(params.get('acceptversions') or params.get('version')),
                    'GetCapabilities')
    if not name:
        raise missing('request')
    op = _operation(name, None)
    version = _check_version(params.get('version'))
    op = _operation(name, version)
    call = Call(version, op)
    if op == 'DescribeProcess':
        ids = [i for i in (params.get('identifier') or '').split(',') if i]
        if not ids:
            raise missing('identifier', 'parameter "identifier" is required '
                          '(one or more process identifiers, comma-separated, or "ALL")')
        call.identifiers = ids
    elif op == 'Execute':
        if version == '2.0.0':
            raise WPSError('OperationNotSupported', 'WPS 2.0.0 Execute is sent as an XML '
                           'document by HTTP POST', 'request')
        _kvp_execute(call, params)
    else:
        call.job_id = params.get('jobid')
        if not call.job_id:
            raise missing('jobId')
    return call


def _kvp_items(text: str, name: str) -> list[tuple[str, str, dict]]:
    """`id=value@attr=v;id2=...` (WPS 1.0.0 10.2.2.1): (id, value, attributes) each."""
    items = []
    for part in text.split(';'):
        if not part:
            continue
        head, *attrs = part.split('@')
        ident, sep, value = head.partition('=')
        if not ident:
            raise invalid(name, f'{name}: "{part}" has no identifier')
        attributes = {}
        for attr in attrs:
            key, eq, val = attr.partition('=')
            if not eq:
                raise invalid(name, f'{name}: attribute "{attr}" of "{ident}" has no value')
            attributes[key.lower()] = unquote(val)
        items.append((unquote(ident), unquote(value) if sep else None, attributes))
    return items


def _kvp_execute(call: Call, params: dict) -> None:
    call.identifiers = [params['identifier']] if params.get('identifier') else []
    if not call.identifiers:
        raise missing('identifier')
    for ident, value, attrs in _kvp_items(params.get('datainputs') or '', 'DataInputs'):
        href = attrs.get('xlink:href') or attrs.get('href')
        if href:
            item = {'href': href, 'mimeType': attrs.get('mimetype')}
        else:
            if value is None:
                raise invalid('DataInputs', f'DataInputs: input "{ident}" has no value')
            item = {'value': value, 'mimeType': attrs.get('mimetype'),
                    'encoding': (attrs.get('encoding') or '').lower()}
        call.inputs.setdefault(ident, []).append(item)
    doc, raw = params.get('responsedocument'), params.get('rawdataoutput')
    if doc and raw:
        raise invalid('ResponseDocument', 'give ResponseDocument or RawDataOutput, not both')
    for ident, _, attrs in _kvp_items(doc or raw or '', 'ResponseDocument' if doc else
                                       'RawDataOutput'):
        as_ref = attrs.get('asreference')
        call.outputs[ident] = {
            'transmission': None if as_ref is None else
            ('reference' if _bool('asReference', as_ref) else 'value'),
            'mimeType': attrs.get('mimetype')}
    call.raw = bool(raw)
    _execute_flags(call, params.get('storeexecuteresponse'), params.get('status'),
                   params.get('lineage'))


def _execute_flags(call: Call, store, status, lineage) -> None:
    store = _bool('storeExecuteResponse', store)
    status = _bool('status', status)
    if status and not store:
        raise invalid('status', 'status=true needs storeExecuteResponse=true')
    if store and call.raw:
        raise invalid('storeExecuteResponse', 'RawDataOutput cannot be stored; ask for a '
                      'ResponseDocument')
    call.mode = 'async' if store else 'sync'
    call.lineage = _bool('lineage', lineage)


# -- XML ------------------------------------------------------------------------------
def parse_xml(body: bytes) -> Call:
    """A POST request: a WPS 1.0.0 or 2.0.0 XML document."""
    if not body or not body.strip():
        raise missing('request', 'the POST body is empty; send a WPS request document')
    try:
        root = etree.fromstring(body, SAFE_PARSER)
    except etree.XMLSyntaxError as err:
        raise WPSError('NoApplicableCode', f'the request body is not well-formed XML: {err}',
                       status=400) from None
    ns, _, local = root.tag[1:].partition('}') if root.tag.startswith('{') else ('', '', root.tag)
    version = {WPS10: '1.0.0', WPS20: '2.0.0'}.get(ns)
    if version is None:
        raise invalid('request', f'the root element {root.tag} is not a WPS 1.0.0 or 2.0.0 '
                      'request')
    if local not in ALL_OPERATIONS.values():
        raise WPSError('OperationNotSupported', f'unknown operation "{local}"', 'request')
    service = root.get('service')
    if not service:
        raise missing('service', 'attribute "service" is required (service="WPS")')
    if service.upper() != 'WPS':
        raise invalid('service', f'service "{service}" is not offered here; use "WPS"')
    ows = OWS11 if version == '1.0.0' else OWS20
    if local == 'GetCapabilities':
        accepted = [v.text or '' for v in root.iter(f'{{{ows}}}Version')]
        return Call(negotiate(','.join(accepted) or version), 'GetCapabilities')
    if _check_version(root.get('version')) != version:
        raise invalid('version', f'version "{root.get("version")}" does not match the '
                      f'namespace of the document ({ns})')
    call = Call(version, _operation(local, version))
    if local == 'DescribeProcess':
        call.identifiers = [e.text.strip() for e in root.findall(f'{{{ows}}}Identifier')
                            if e.text and e.text.strip()]
        if not call.identifiers:
            raise missing('Identifier', 'DescribeProcess needs at least one ows:Identifier')
    elif local == 'Execute':
        ident = root.findtext(f'{{{ows}}}Identifier')
        if not ident or not ident.strip():
            raise missing('Identifier', 'Execute needs the ows:Identifier of a process')
        call.identifiers = [ident.strip()]
        (_xml_execute10 if version == '1.0.0' else _xml_execute20)(call, root)
    else:
        call.job_id = (root.findtext(f'{{{WPS20}}}JobID') or '').strip()
        if not call.job_id:
            raise missing('JobID', f'{local} needs a wps:JobID')
    return call


def _complex_value(data) -> str:
    """Text content, or the serialized child element (XML given inline)."""
    children = list(data)
    if children:
        return etree.tostring(children[0], encoding='unicode')
    return data.text or ''


def _xml_execute10(call: Call, root) -> None:
    w, o = f'{{{WPS10}}}', f'{{{OWS11}}}'
    for inp in root.iterfind(f'{w}DataInputs/{w}Input'):
        ident = (inp.findtext(f'{o}Identifier') or '').strip()
        if not ident:
            raise missing('Identifier', 'every wps:Input needs an ows:Identifier')
        literal = inp.find(f'{w}Data/{w}LiteralData')
        cplx = inp.find(f'{w}Data/{w}ComplexData')
        ref = inp.find(f'{w}Reference')
        if literal is not None:
            item = {'value': literal.text or '', 'mimeType': None, 'encoding': ''}
        elif cplx is not None:
            item = {'value': _complex_value(cplx), 'mimeType': cplx.get('mimeType'),
                    'encoding': (cplx.get('encoding') or '').lower()}
        elif ref is not None:
            href = ref.get(f'{{{XLINK}}}href') or ref.get('href')
            if not href:
                raise missing(ident, f'input "{ident}": wps:Reference needs xlink:href')
            if (ref.get('method') or 'GET').upper() != 'GET' or len(ref):
                raise invalid(ident, f'input "{ident}": only GET references are supported')
            item = {'href': href, 'mimeType': ref.get('mimeType')}
        else:
            raise invalid(ident, f'input "{ident}" has no LiteralData, ComplexData or '
                          'Reference (BoundingBoxData is not supported)')
        call.inputs.setdefault(ident, []).append(item)
    form = root.find(f'{w}ResponseForm')
    doc = form.find(f'{w}ResponseDocument') if form is not None else None
    raw = form.find(f'{w}RawDataOutput') if form is not None else None
    call.raw = raw is not None
    outs = doc.findall(f'{w}Output') if doc is not None else ([raw] if raw is not None else [])
    for out in outs:
        ident = (out.findtext(f'{o}Identifier') or '').strip()
        if not ident:
            raise missing('Identifier', 'every requested output needs an ows:Identifier')
        as_ref = out.get('asReference')
        call.outputs[ident] = {
            'transmission': None if as_ref is None else
            ('reference' if _bool('asReference', as_ref) else 'value'),
            'mimeType': out.get('mimeType')}
    get = doc.get if doc is not None else (lambda _k: None)
    _execute_flags(call, get('storeExecuteResponse'), get('status'), get('lineage'))


def _xml_execute20(call: Call, root) -> None:
    w = f'{{{WPS20}}}'
    call.mode = root.get('mode') or 'auto'
    if call.mode not in ('sync', 'async', 'auto'):
        raise invalid('mode', f'mode must be sync, async or auto, not "{call.mode}"')
    response = root.get('response') or 'document'
    if response not in ('document', 'raw'):
        raise invalid('response', f'response must be document or raw, not "{response}"')
    call.raw = response == 'raw'
    for inp in root.iterfind(f'{w}Input'):
        ident = inp.get('id')
        if not ident:
            raise missing('id', 'every wps:Input needs an id attribute')
        data, ref = inp.find(f'{w}Data'), inp.find(f'{w}Reference')
        if inp.find(f'{w}Input') is not None:
            raise invalid(ident, f'input "{ident}": nested inputs (process chaining) are not '
                          'supported')
        if data is not None:
            literal = data.find(f'{w}LiteralValue')
            value = literal.text or '' if literal is not None else _complex_value(data)
            item = {'value': value, 'mimeType': data.get('mimeType'),
                    'encoding': (data.get('encoding') or '').lower()}
        elif ref is not None:
            href = ref.get(f'{{{XLINK}}}href')
            if not href:
                raise missing(ident, f'input "{ident}": wps:Reference needs xlink:href')
            if ref.find(f'{w}Body') is not None or ref.find(f'{w}BodyReference') is not None:
                raise invalid(ident, f'input "{ident}": only GET references are supported')
            item = {'href': href, 'mimeType': ref.get('mimeType')}
        else:
            raise invalid(ident, f'input "{ident}" has neither wps:Data nor wps:Reference')
        call.inputs.setdefault(ident, []).append(item)
    for out in root.iterfind(f'{w}Output'):
        ident = out.get('id')
        if not ident:
            raise missing('id', 'every wps:Output needs an id attribute')
        transmission = out.get('transmission')
        if transmission not in (None, 'value', 'reference'):
            raise invalid('transmission', f'output "{ident}": transmission must be value or '
                          f'reference, not "{transmission}"')
        call.outputs[ident] = {'transmission': transmission, 'mimeType': out.get('mimeType')}
