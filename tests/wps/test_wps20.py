"""WPS 2.0.0 through the real server with plain requests and XML documents."""
from __future__ import annotations

import json
import time

import requests
from lxml import etree

WPS = 'http://www.opengis.net/wps/2.0'
OWS = 'http://www.opengis.net/ows/2.0'
XLINK = 'http://www.w3.org/1999/xlink'
W, O = f'{{{WPS}}}', f'{{{OWS}}}'
PROFILE = '/argo/dac/bodc/6901929/profiles/D6901929_001.nc'


def post(server, body: str, user='alice') -> requests.Response:
    return requests.post(f'{server.url}/wps', data=body.encode(),
                         headers={'Content-Type': 'application/xml', **server.auth(user)})


def execute_doc(process: str, inputs: str, outputs: str = '', mode='sync',
                response='document') -> str:
    return (f'<wps:Execute xmlns:wps="{WPS}" xmlns:ows="{OWS}" xmlns:xlink="{XLINK}" '
            f'service="WPS" version="2.0.0" mode="{mode}" response="{response}">'
            f'<ows:Identifier>{process}</ows:Identifier>{inputs}{outputs}</wps:Execute>')


def job_doc(operation: str, job_id: str) -> str:
    return (f'<wps:{operation} xmlns:wps="{WPS}" service="WPS" version="2.0.0">'
            f'<wps:JobID>{job_id}</wps:JobID></wps:{operation}>')


def xml(resp: requests.Response, status=200):
    assert resp.status_code == status, resp.text
    assert resp.headers['Content-Type'].startswith('application/xml')
    return etree.fromstring(resp.content)


def status_of(server, job_id, user='alice'):
    return xml(post(server, job_doc('GetStatus', job_id), user))


def wait_status(server, job_id, user='alice', seconds=60) -> list[str]:
    seen = []
    deadline = time.monotonic() + seconds
    while True:
        state = status_of(server, job_id, user).findtext(f'{W}Status')
        seen.append(state)
        if state in ('Succeeded', 'Failed', 'Dismissed'):
            return seen
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_capabilities_kvp_and_post(vre_server):
    kvp = xml(requests.get(f'{vre_server.url}/wps', params={
        'service': 'WPS', 'request': 'GetCapabilities', 'acceptVersions': '2.0.0'}))
    doc = xml(post(vre_server, f'<wps:GetCapabilities xmlns:wps="{WPS}" xmlns:ows="{OWS}" '
                   'service="WPS"><ows:AcceptVersions><ows:Version>2.0.0</ows:Version>'
                   '</ows:AcceptVersions></wps:GetCapabilities>'))
    offered = {p['id'] for p in requests.get(f'{vre_server.url}/processes').json()['processes']}
    for root in (kvp, doc):
        assert root.tag == f'{W}Capabilities' and root.get('version') == '2.0.0'
        summaries = root.findall(f'{W}Contents/{W}ProcessSummary')
        assert {s.findtext(f'{O}Identifier') for s in summaries} == offered
        echo = next(s for s in summaries if s.findtext(f'{O}Identifier') == 'echo')
        assert echo.findtext(f'{O}Title') == 'Echo'
        assert echo.get('jobControlOptions') == 'sync-execute async-execute dismiss'
        ops = {op.get('name') for op in root.iter(f'{O}Operation')}
        assert {'GetStatus', 'GetResult', 'Dismiss'} <= ops


def test_describe_process(vre_server):
    root = xml(requests.get(f'{vre_server.url}/wps', params={
        'service': 'WPS', 'version': '2.0.0', 'request': 'DescribeProcess',
        'identifier': 'ocean-heat-content'}))
    [offering] = root.findall(f'{W}ProcessOffering')
    assert offering.get('outputTransmission') == 'value reference'
    proc = offering.find(f'{W}Process')
    assert proc.findtext(f'{O}Identifier') == 'ocean-heat-content'
    inputs = {i.findtext(f'{O}Identifier'): i for i in proc.findall(f'{W}Input')}
    assert inputs['profiles'].find(f'{W}ComplexData/{W}Format').get('mimeType') == \
        'application/x-netcdf'
    domain = inputs['max_pressure'].find(f'{W}LiteralData/LiteralDataDomain')
    assert domain.findtext(f'{O}DataType') == 'float'
    assert domain.findtext(f'{O}DefaultValue') == '700'
    assert domain.findtext(f'{O}AllowedValues/{O}Range/{O}MaximumValue') == '6000'
    assert inputs['max_pressure'].get('minOccurs') == '0'
    assert {o.findtext(f'{O}Identifier') for o in proc.findall(f'{W}Output')} == {
        'ohc', 'summary'}


def test_half_open_ranges_are_described():
    """exclusiveMinimum without a maximum: pywps needs both ends; the description shows one."""
    from wps import wps10, wps20
    from wps.processes import process_class
    md = {'id': 'p', 'title': 'P', 'version': '1.0.0', 'outputs': {}, 'inputs': {
        'ratio': {'title': 'Ratio', 'schema': {'type': 'number', 'exclusiveMinimum': 0,
                                               'default': 0.5}}}}
    doc10 = etree.fromstring(wps10.describe({'p': process_class('p', md)()}, ['p'], 1))
    [rng] = doc10.iter('{http://www.opengis.net/ows/1.1}Range')
    ows11 = '{http://www.opengis.net/ows/1.1}'
    assert rng.get(f'{ows11}rangeClosure') == 'open-closed'
    assert rng.findtext(f'{ows11}MinimumValue') == '0'
    assert rng.find(f'{ows11}MaximumValue') is None
    [rng] = etree.fromstring(wps20.describe({'p': md}, ['p'])).iter(f'{O}Range')
    assert rng.get('rangeClosure') == 'open-closed' and rng.find(f'{O}MaximumValue') is None


def test_execute_sync_document_and_raw(vre_server):
    inputs = ('<wps:Input id="echoInput"><wps:Data><wps:LiteralValue>tide &amp; wave'
              '</wps:LiteralValue></wps:Data></wps:Input>')
    root = xml(post(vre_server, execute_doc('echo', inputs)))
    assert root.tag == f'{W}Result'
    out = root.find(f'{W}Output')
    assert out.get('id') == 'echoOutput'
    assert out.findtext(f'{W}Data') == 'tide & wave'
    raw = post(vre_server, execute_doc('echo', inputs, response='raw'))
    assert raw.status_code == 200 and raw.text == 'tide & wave'
    assert raw.headers['Content-Type'].startswith('text/plain')


def test_execute_async_status_result_by_reference(vre_server, static_server):
    inputs = (f'<wps:Input id="profiles"><wps:Reference xlink:href="{static_server}{PROFILE}" '
              'mimeType="application/x-netcdf"/></wps:Input>'
              '<wps:Input id="max_pressure"><wps:Data>600</wps:Data></wps:Input>')
    outputs = ('<wps:Output id="ohc" transmission="reference"/>'
               '<wps:Output id="summary" transmission="value"/>')
    info = xml(post(vre_server, execute_doc('ocean-heat-content', inputs, outputs, 'async')))
    assert info.tag == f'{W}StatusInfo'
    job_id = info.findtext(f'{W}JobID')
    assert info.findtext(f'{W}Status') in ('Accepted', 'Running', 'Succeeded')
    assert wait_status(vre_server, job_id)[-1] == 'Succeeded'
    result = xml(post(vre_server, job_doc('GetResult', job_id)))
    assert result.findtext(f'{W}JobID') == job_id
    outs = {o.get('id'): o for o in result.findall(f'{W}Output')}
    href = outs['ohc'].find(f'{W}Reference').get(f'{{{XLINK}}}href')
    data = requests.get(href, headers=vre_server.auth('alice'))
    assert data.status_code == 200 and data.content[:3] == b'\x89HD'
    summary = json.loads(outs['summary'].findtext(f'{W}Data'))
    assert summary['max_pressure_dbar'] == 600.0
    # the job is the same job at /jobs, typed 'wps'
    job = requests.get(f'{vre_server.url}/jobs/{job_id}', headers=vre_server.auth('alice'))
    assert job.json()['type'] == 'wps' and job.json()['status'] == 'successful'
    # and through KVP
    kvp = xml(requests.get(f'{vre_server.url}/wps', headers=vre_server.auth('alice'), params={
        'service': 'WPS', 'version': '2.0.0', 'request': 'GetStatus', 'jobId': job_id}))
    assert kvp.findtext(f'{W}Status') == 'Succeeded'


def test_result_not_ready_then_dismiss(vre_server):
    inputs = ('<wps:Input id="echoInput"><wps:Data>wait</wps:Data></wps:Input>'
              '<wps:Input id="pause"><wps:Data>30</wps:Data></wps:Input>')
    job_id = xml(post(vre_server, execute_doc('echo', inputs, mode='async'))).findtext(
        f'{W}JobID')
    deadline = time.monotonic() + 20
    while status_of(vre_server, job_id).findtext(f'{W}Status') != 'Running':
        assert time.monotonic() < deadline
        time.sleep(0.2)
    running = status_of(vre_server, job_id)
    assert 0 <= int(running.findtext(f'{W}PercentCompleted')) < 100
    err = xml(post(vre_server, job_doc('GetResult', job_id)), 404)
    assert err.find(f'{O}Exception').get('exceptionCode') == 'ResultNotReady'
    # another user can neither see nor dismiss it
    err = xml(post(vre_server, job_doc('Dismiss', job_id), 'bob'), 404)
    assert err.find(f'{O}Exception').get('exceptionCode') == 'NoSuchJob'
    dismissed = xml(post(vre_server, job_doc('Dismiss', job_id)))
    assert dismissed.findtext(f'{W}Status') == 'Dismissed'
    err = xml(post(vre_server, job_doc('GetStatus', job_id)), 404)
    assert err.find(f'{O}Exception').get('exceptionCode') == 'NoSuchJob'
    assert requests.get(f'{vre_server.url}/jobs/{job_id}',
                        headers=vre_server.auth('alice')).status_code == 404


def test_failed_job_result_is_an_exception(vre_server, static_server):
    inputs = (f'<wps:Input id="profiles"><wps:Reference xlink:href="{static_server}/none.nc"/>'
              '</wps:Input>')
    job_id = xml(post(vre_server, execute_doc('ocean-heat-content', inputs, mode='async'))
                 ).findtext(f'{W}JobID')
    assert wait_status(vre_server, job_id)[-1] == 'Failed'
    err = xml(post(vre_server, job_doc('GetResult', job_id)), 400)
    exc = err.find(f'{O}Exception')
    assert exc.get('exceptionCode') == 'InvalidParameterValue'
    assert 'HTTP 404' in exc.findtext(f'{O}ExceptionText')
    # sync: the same mistake answers 400 at once
    err = xml(post(vre_server, execute_doc('ocean-heat-content', inputs)), 400)
    assert 'HTTP 404' in err.findtext(f'{O}Exception/{O}ExceptionText')


def test_file_input_by_value_base64(vre_server, bdi_data):
    """A NetCDF sent inline (base64) reaches the process as the same file."""
    import base64
    data = base64.b64encode((bdi_data / PROFILE.lstrip('/')).read_bytes()).decode()
    inputs = (f'<wps:Input id="profiles"><wps:Data mimeType="application/x-netcdf" '
              f'encoding="base64">{data}</wps:Data></wps:Input>')
    root = xml(post(vre_server, execute_doc('ocean-heat-content', inputs,
                                            '<wps:Output id="summary"/>')))
    summary = json.loads(root.findtext(f'{W}Output/{W}Data'))
    assert summary['profiles'] == 2 and summary['profiles_with_value'] == 1
