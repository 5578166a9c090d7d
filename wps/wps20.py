"""WPS 2.0.0 documents, written here because pywps 4.8's 2.0 support is a broken
GetCapabilities template (process titles are printed literally) and nothing else:
Capabilities, ProcessOfferings, StatusInfo and Result, from process metadata and job rows.
"""
from __future__ import annotations

import datetime as dt

from lxml import etree

from processes.documents import iso, materialize, process_summary
from wps.errors import OWS20, WPSError
from wps.processes import is_complex, literal_type, media_types, value_range
from wps.wps10 import _text

WPS20 = 'http://www.opengis.net/wps/2.0'
XLINK = 'http://www.w3.org/1999/xlink'
W, O, X = f'{{{WPS20}}}', f'{{{OWS20}}}', f'{{{XLINK}}}'
NSMAP = {'wps': WPS20, 'ows': OWS20, 'xlink': XLINK,
         'xsi': 'http://www.w3.org/2001/XMLSchema-instance'}
STATUS = {'accepted': 'Accepted', 'running': 'Running', 'successful': 'Succeeded',
          'failed': 'Failed', 'dismissed': 'Dismissed'}
OPERATIONS = ('GetCapabilities', 'DescribeProcess', 'Execute', 'GetStatus', 'GetResult',
              'Dismiss')


def _root(tag: str, **attrs):
    root = etree.Element(W + tag, nsmap=NSMAP, **attrs)
    root.set(f'{{{NSMAP["xsi"]}}}schemaLocation',
             f'{WPS20} http://schemas.opengis.net/wps/2.0/wps.xsd')
    return root


def _xml(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding='UTF-8', pretty_print=True)


def _sub(parent, tag: str, text=None, **attrs):
    el = etree.SubElement(parent, tag, **attrs)
    if text is not None:
        el.text = str(text)
    return el


def _describe(parent, doc: dict) -> None:
    """ows:Title, Abstract, Keywords, Identifier (the order of OWS 2.0 DescriptionType)."""
    _sub(parent, O + 'Title', doc.get('title') or doc['id'])
    if doc.get('description'):
        _sub(parent, O + 'Abstract', doc['description'])
    if doc.get('keywords'):
        kw = _sub(parent, O + 'Keywords')
        for word in doc['keywords']:
            _sub(kw, O + 'Keyword', word)
    _sub(parent, O + 'Identifier', doc['id'])


def _text_of(value, default=''):
    if isinstance(value, dict):
        return value.get('en') or next(iter(value.values()), default)
    if isinstance(value, list):
        return ', '.join(map(str, value))
    return default if value is None else str(value)


def capabilities(service_meta: dict, metadata: dict[str, dict], wps_url: str) -> bytes:
    """Capabilities from the server's metadata section (pygeoapi config) and the processes."""
    ident = service_meta.get('identification') or {}
    provider = service_meta.get('provider') or {}
    contact = service_meta.get('contact') or {}
    root = _root('Capabilities', service='WPS', version='2.0.0')
    si = _sub(root, O + 'ServiceIdentification')
    _sub(si, O + 'Title', _text_of(ident.get('title'), 'WPS'))
    _sub(si, O + 'Abstract', _text_of(ident.get('description')))
    keywords = ident.get('keywords') or {}
    keywords = keywords.get('en', []) if isinstance(keywords, dict) else keywords
    if keywords:
        kw = _sub(si, O + 'Keywords')
        for word in keywords:
            _sub(kw, O + 'Keyword', word)
    _sub(si, O + 'ServiceType', 'WPS')
    _sub(si, O + 'ServiceTypeVersion', '2.0.0')
    _sub(si, O + 'Fees', 'NONE')
    _sub(si, O + 'AccessConstraints', _text_of((service_meta.get('license') or {}).get('name'),
                                                'NONE'))
    sp = _sub(root, O + 'ServiceProvider')
    _sub(sp, O + 'ProviderName', _text_of(provider.get('name'), 'n/a'))
    _sub(sp, O + 'ProviderSite', **{X + 'href': _text_of(provider.get('url'), wps_url)})
    sc = _sub(sp, O + 'ServiceContact')
    _sub(sc, O + 'IndividualName', _text_of(contact.get('name')))
    _sub(sc, O + 'PositionName', _text_of(contact.get('position')))
    info = _sub(sc, O + 'ContactInfo')
    address = _sub(info, O + 'Address')
    _sub(address, O + 'ElectronicMailAddress', _text_of(contact.get('email')))
    om = _sub(root, O + 'OperationsMetadata')
    for op in OPERATIONS:
        http = _sub(_sub(_sub(om, O + 'Operation', name=op), O + 'DCP'), O + 'HTTP')
        if op != 'Execute':
            _sub(http, O + 'Get', **{X + 'href': wps_url})
        _sub(http, O + 'Post', **{X + 'href': wps_url})
    contents = _sub(root, W + 'Contents')
    for pid, md in metadata.items():
        doc = process_summary(pid, md, '')
        summary = _sub(contents, W + 'ProcessSummary', **_offering_attrs(doc))
        _describe(summary, doc)
    return _xml(root)


def _offering_attrs(doc: dict) -> dict:
    return {'jobControlOptions': ' '.join(doc.get('jobControlOptions') or []),
            'outputTransmission': ' '.join(doc.get('outputTransmission') or []),
            'processVersion': doc.get('version', '1.0.0'), 'processModel': 'native'}


def _domain(parent, spec: dict, schema: dict) -> None:
    """The data description of one input or output."""
    if is_complex(schema):
        cd = _sub(parent, W + 'ComplexData')
        for i, media in enumerate(media_types(schema)):
            _sub(cd, W + 'Format', mimeType=media, default=str(i == 0).lower())
        return
    ld = _sub(parent, W + 'LiteralData')
    _sub(ld, W + 'Format', mimeType='text/plain', default='true')
    dom = _sub(ld, 'LiteralDataDomain', default='true')     # unqualified in the 2.0 schema
    if 'enum' in schema:
        allowed = _sub(dom, O + 'AllowedValues')
        for v in schema['enum']:
            _sub(allowed, O + 'Value', _text(v))
    elif value_range(schema):
        low, high, closure = value_range(schema)
        rng = _sub(_sub(dom, O + 'AllowedValues'), O + 'Range', rangeClosure=closure)
        if low is not None:
            _sub(rng, O + 'MinimumValue', low)
        if high is not None:
            _sub(rng, O + 'MaximumValue', high)
    else:
        _sub(dom, O + 'AnyValue')
    dtype = literal_type(schema)
    _sub(dom, O + 'DataType', dtype, **{O + 'reference': f'http://www.w3.org/2001/XMLSchema#{dtype}'})
    if schema.get('default') is not None:
        _sub(dom, O + 'DefaultValue', _text(schema['default']))


def describe(metadata: dict[str, dict], identifiers: list[str]) -> bytes:
    if any(i.lower() == 'all' for i in identifiers):
        identifiers = list(metadata)
    for ident in identifiers:
        if ident not in metadata:
            raise WPSError('NoSuchProcess', f'no process "{ident}"; GetCapabilities lists '
                           'the processes', 'identifier')
    root = _root('ProcessOfferings')
    for pid in identifiers:
        md = metadata[pid]
        doc = process_summary(pid, md, '', full=True)
        offering = _sub(root, W + 'ProcessOffering', **_offering_attrs(doc))
        proc = _sub(offering, W + 'Process')
        _describe(proc, doc)
        for name, spec in (md.get('inputs') or {}).items():
            max_occurs = spec.get('maxOccurs', 1)
            inp = _sub(proc, W + 'Input', minOccurs=str(spec.get('minOccurs', 1)),
                       maxOccurs=str(max_occurs))
            _describe(inp, {'id': name, 'title': spec.get('title'),
                            'description': spec.get('description')})
            _domain(inp, spec, spec.get('schema') or {})
        for name, spec in (md.get('outputs') or {}).items():
            out = _sub(proc, W + 'Output')
            _describe(out, {'id': name, 'title': spec.get('title'),
                            'description': spec.get('description')})
            _domain(out, spec, spec.get('schema') or {})
    return _xml(root)


def status_info(row: dict, status: str | None = None) -> bytes:
    root = _root('StatusInfo')
    _sub(root, W + 'JobID', row['job_id'])
    state = STATUS.get(status or row['status'], 'Accepted')
    _sub(root, W + 'Status', state)
    if state in ('Accepted', 'Running'):
        next_poll = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
        _sub(root, W + 'NextPoll', iso(next_poll.replace(microsecond=0)))
        _sub(root, W + 'PercentCompleted', int(row.get('progress') or 0))
    return _xml(root)


def result(row: dict, metadata: dict) -> bytes:
    root = _root('Result')
    _sub(root, W + 'JobID', row['job_id'])
    declared = metadata.get('outputs') or {}
    for name, res in materialize(row.get('results')).items():
        out = _sub(root, W + 'Output', id=name)
        if 'href' in res:
            _sub(out, W + 'Reference', mimeType=res.get('type') or 'application/octet-stream',
                 **{X + 'href': res['href']})
            continue
        schema = (declared.get(name) or {}).get('schema') or {}
        if not is_complex(schema):
            data = _sub(out, W + 'Data', mimeType='text/plain')
            _sub(data, W + 'LiteralValue', _text(res['value']),
                 dataType=f'http://www.w3.org/2001/XMLSchema#{literal_type(schema)}')
            continue
        data = _sub(out, W + 'Data', mimeType=res.get('mediaType') or 'application/json')
        if res.get('encoding') == 'base64':
            data.set('encoding', 'base64')
        text = _text(res['value'])
        data.text = etree.CDATA(text) if data.get('mimeType').endswith('json') else text
    return _xml(root)

