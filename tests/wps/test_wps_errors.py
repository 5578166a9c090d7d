"""Bad WPS requests: an OWS ExceptionReport with the right code, locator and 4xx status."""
from __future__ import annotations

import pytest
import requests
from lxml import etree

OWS11 = 'http://www.opengis.net/ows/1.1'
OWS20 = 'http://www.opengis.net/ows/2.0'
WPS10 = 'http://www.opengis.net/wps/1.0.0'
WPS20 = 'http://www.opengis.net/wps/2.0'
EXEC = {'service': 'WPS', 'request': 'Execute', 'version': '1.0.0', 'identifier': 'echo'}


def check_report(resp, status, code, locator=None, ows=OWS11, text=None):
    assert resp.status_code == status, resp.text
    assert resp.headers['Content-Type'].startswith('application/xml')
    assert 'Traceback' not in resp.text
    root = etree.fromstring(resp.content)
    assert root.tag == f'{{{ows}}}ExceptionReport'
    assert root.get('version') == ('1.1.0' if ows == OWS11 else '2.0.0')
    exc = root.find(f'{{{ows}}}Exception')
    assert exc.get('exceptionCode') == code
    if locator is not None:
        assert exc.get('locator') == locator
    message = exc.findtext(f'{{{ows}}}ExceptionText')
    assert message
    if text:
        assert text in message


KVP_CASES = [
    ({'request': 'GetCapabilities'}, 400, 'MissingParameterValue', 'service', OWS11),
    ({'service': 'WMS', 'request': 'GetCapabilities'}, 400, 'InvalidParameterValue',
     'service', OWS11),
    ({'service': 'WPS'}, 400, 'MissingParameterValue', 'request', OWS11),
    ({'service': 'WPS', 'request': 'GetMap', 'version': '1.0.0'}, 400,
     'OperationNotSupported', 'request', OWS11),
    ({'service': 'WPS', 'request': 'GetCapabilities', 'acceptVersions': '3.0.0,0.4'}, 400,
     'VersionNegotiationFailed', 'AcceptVersions', OWS11),
    ({'service': 'WPS', 'request': 'DescribeProcess', 'identifier': 'echo'}, 400,
     'MissingParameterValue', 'version', OWS11),
    ({'service': 'WPS', 'request': 'DescribeProcess', 'version': '1.5.0', 'identifier': 'echo'},
     400, 'InvalidParameterValue', 'version', OWS11),
    ({'service': 'WPS', 'request': 'DescribeProcess', 'version': '1.0.0'}, 400,
     'MissingParameterValue', 'identifier', OWS11),
    ({'service': 'WPS', 'request': 'DescribeProcess', 'version': '1.0.0', 'identifier': 'nope'},
     400, 'InvalidParameterValue', 'identifier', OWS11),
    ({'service': 'WPS', 'request': 'DescribeProcess', 'version': '2.0.0', 'identifier': 'nope'},
     404, 'NoSuchProcess', 'identifier', OWS20),
    ({'service': 'WPS', 'request': 'GetStatus', 'version': '1.0.0', 'jobId': 'x'}, 400,
     'OperationNotSupported', 'request', OWS11),
    ({'service': 'WPS', 'request': 'GetStatus', 'version': '2.0.0'}, 400,
     'MissingParameterValue', 'jobId', OWS20),
    ({'service': 'WPS', 'request': 'GetResult', 'version': '2.0.0', 'jobId': 'no-such-job'},
     404, 'NoSuchJob', 'JobID', OWS20),
    ({'service': 'WPS', 'request': 'Execute', 'version': '2.0.0', 'identifier': 'echo'}, 400,
     'OperationNotSupported', 'request', OWS20),
    (dict(EXEC, identifier='nope', DataInputs='a=1'), 400, 'InvalidParameterValue',
     'Identifier', OWS11),
    (EXEC, 400, 'MissingParameterValue', 'echoInput', OWS11),
    (dict(EXEC, DataInputs='echoInput=hi;colour=red'), 400, 'InvalidParameterValue', 'colour',
     OWS11),
    (dict(EXEC, DataInputs='echoInput=hi;pause=soon'), 400, 'InvalidParameterValue', 'pause',
     OWS11),
    (dict(EXEC, DataInputs='echoInput=hi;pause=nan'), 400, 'InvalidParameterValue', 'pause',
     OWS11),
    (dict(EXEC, DataInputs='echoInput=hi;pause=99999'), 400, 'InvalidParameterValue', 'pause',
     OWS11),
    (dict(EXEC, DataInputs='echoInput=a;echoInput=b'), 400, 'InvalidParameterValue',
     'echoInput', OWS11),
    (dict(EXEC, DataInputs='echoInput=@xlink:href=http://example.org/x'), 400,
     'InvalidParameterValue', 'echoInput', OWS11),
    (dict(EXEC, DataInputs='echoInput=hi', status='true'), 400, 'InvalidParameterValue',
     'status', OWS11),
    (dict(EXEC, DataInputs='echoInput=hi', storeExecuteResponse='maybe'), 400,
     'InvalidParameterValue', 'storeExecuteResponse', OWS11),
    (dict(EXEC, DataInputs='echoInput=hi', ResponseDocument='colour'), 400,
     'InvalidParameterValue', 'colour', OWS11),
    (dict(EXEC, DataInputs='echoInput=hi', RawDataOutput='echoOutput@mimeType=image/png'), 400,
     'InvalidParameterValue', 'echoOutput', OWS11),
    (dict(EXEC, identifier='ocean-heat-content', DataInputs='profiles=@xlink:href=file:///etc/passwd'),
     400, 'InvalidParameterValue', 'profiles', OWS11),
    (dict(EXEC, identifier='ocean-heat-content',
          DataInputs='profiles=@xlink:href=http://example.org/a.nc@mimeType=text/csv'),
     400, 'InvalidParameterValue', 'profiles', OWS11),
]


@pytest.mark.parametrize('params,status,code,locator,ows', KVP_CASES,
                         ids=[f'{c[2]}-{c[3]}-{i}' for i, c in enumerate(KVP_CASES)])
def test_bad_kvp_request(vre_server, params, status, code, locator, ows):
    resp = requests.get(f'{vre_server.url}/wps', params=params)
    check_report(resp, status, code, locator, ows)


def _execute10(inner: str, version='1.0.0') -> str:
    return (f'<wps:Execute xmlns:wps="{WPS10}" xmlns:ows="{OWS11}" service="WPS" '
            f'version="{version}">{inner}</wps:Execute>')


def _execute20(inner: str, **attrs) -> str:
    extra = ''.join(f' {k}="{v}"' for k, v in attrs.items())
    return (f'<wps:Execute xmlns:wps="{WPS20}" xmlns:ows="{OWS20}" service="WPS" '
            f'version="2.0.0"{extra}>{inner}</wps:Execute>')


ECHO20 = '<ows:Identifier>echo</ows:Identifier>'
POST_CASES = [
    ('', 400, 'MissingParameterValue', 'request', OWS11),
    ('<wps:Execute', 400, 'NoApplicableCode', None, OWS11),
    ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
     f'<wps:GetCapabilities xmlns:wps="{WPS10}" service="WPS">&e;</wps:GetCapabilities>',
     200, None, None, None),
    ('<Execute xmlns="http://example.org/">x</Execute>', 400, 'InvalidParameterValue',
     'request', OWS11),
    (f'<wps:Launch xmlns:wps="{WPS20}" service="WPS" version="2.0.0"/>', 400,
     'OperationNotSupported', 'request', OWS20),
    (_execute10('<ows:Identifier>echo</ows:Identifier>', version='2.0.0'), 400,
     'InvalidParameterValue', 'version', OWS11),
    (_execute10(''), 400, 'MissingParameterValue', 'Identifier', OWS11),
    (_execute10('<ows:Identifier>echo</ows:Identifier><wps:DataInputs><wps:Input>'
                '<ows:Identifier>echoInput</ows:Identifier></wps:Input></wps:DataInputs>'),
     400, 'InvalidParameterValue', 'echoInput', OWS11),
    (_execute10('<ows:Identifier>echo</ows:Identifier><wps:DataInputs><wps:Input>'
                '<wps:Data><wps:LiteralData>x</wps:LiteralData></wps:Data></wps:Input>'
                '</wps:DataInputs>'), 400, 'MissingParameterValue', 'Identifier', OWS11),
    (_execute20('<ows:Identifier>nope</ows:Identifier>'), 404, 'NoSuchProcess', 'Identifier',
     OWS20),
    (_execute20(ECHO20, mode='later'), 400, 'InvalidParameterValue', 'mode', OWS20),
    (_execute20(ECHO20, response='pdf'), 400, 'InvalidParameterValue', 'response', OWS20),
    (_execute20(ECHO20), 400, 'MissingParameterValue', 'echoInput', OWS20),
    (_execute20(ECHO20 + '<wps:Input><wps:Data>x</wps:Data></wps:Input>'), 400,
     'MissingParameterValue', 'id', OWS20),
    (_execute20(ECHO20 + '<wps:Input id="echoInput"><wps:Data>x</wps:Data></wps:Input>'
                '<wps:Output id="echoOutput" transmission="pigeon"/>'), 400,
     'InvalidParameterValue', 'transmission', OWS20),
    (_execute20('<ows:Identifier>ocean-heat-content</ows:Identifier>'
                '<wps:Input id="profiles"><wps:Reference xlink:href="http://example.org/a.nc" '
                'xmlns:xlink="http://www.w3.org/1999/xlink"/></wps:Input>', response='raw'),
     400, 'InvalidParameterValue', 'RawDataOutput', OWS20),
    (f'<wps:GetResult xmlns:wps="{WPS20}" service="WPS" version="2.0.0"/>', 400,
     'MissingParameterValue', 'JobID', OWS20),
    (f'<wps:Dismiss xmlns:wps="{WPS20}" service="WPS" version="2.0.0"><wps:JobID>nope'
     '</wps:JobID></wps:Dismiss>', 404, 'NoSuchJob', 'JobID', OWS20),
]


@pytest.mark.parametrize('body,status,code,locator,ows', POST_CASES,
                         ids=[f'{c[2]}-{c[3]}-{i}' for i, c in enumerate(POST_CASES)])
def test_bad_xml_request(vre_server, body, status, code, locator, ows):
    resp = requests.post(f'{vre_server.url}/wps', data=body.encode(),
                         headers={'Content-Type': 'application/xml'})
    if code is None:          # an external entity is neither resolved nor an error
        assert resp.status_code == status and b'root:' not in resp.content
        return
    check_report(resp, status, code, locator, ows)


def test_body_over_the_limit(vre_server):
    body = _execute10('<ows:Identifier>echo</ows:Identifier>' + ' ' * (3 * 1024 * 1024))
    resp = requests.post(f'{vre_server.url}/wps', data=body.encode(),
                         headers={'Content-Type': 'application/xml'})
    check_report(resp, 413, 'FileSizeExceeded')


def test_unknown_status_location(vre_server):
    resp = requests.get(f'{vre_server.url}/wps/status/0000')
    check_report(resp, 404, 'NoSuchJob')


def test_other_methods_are_refused(vre_server):
    resp = requests.delete(f'{vre_server.url}/wps')
    check_report(resp, 405, 'OperationNotSupported', 'method')
    assert resp.headers['Allow'] == 'GET, POST'


def test_bad_token_is_an_exception_report(vre_server):
    resp = requests.get(f'{vre_server.url}/wps',
                        params={'service': 'WPS', 'request': 'GetCapabilities'},
                        headers={'Authorization': 'Bearer not-a-token'})
    check_report(resp, 401, 'NoApplicableCode')
    assert resp.headers['WWW-Authenticate'] == 'Bearer'
