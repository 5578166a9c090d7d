"""WPS 1.0.0 through the real server, driven by OWSLib's WebProcessingService client."""
from __future__ import annotations

import json
import time

import pytest
import requests
import xarray as xr
from lxml import etree
from owslib.wps import SYNC, ASYNC, ComplexDataInput, WebProcessingService

WPS = '{http://www.opengis.net/wps/1.0.0}'
OWS = '{http://www.opengis.net/ows/1.1}'
PROFILE = '/argo/dac/bodc/6901929/profiles/D6901929_001.nc'


def client(server, user='alice') -> WebProcessingService:
    return WebProcessingService(f'{server.url}/wps', version='1.0.0',
                                headers=server.auth(user), timeout=60)


def wait(execution, seconds=60):
    """Poll the statusLocation as a client does; answer the statuses seen."""
    seen = [execution.status]
    deadline = time.monotonic() + seconds
    while not execution.isComplete():
        assert time.monotonic() < deadline, 'job did not end in time'
        execution.checkStatus(sleepSecs=0.2)
        seen.append(execution.status)
    return seen


def test_capabilities_list_every_process(vre_server):
    wps = client(vre_server)
    assert wps.identification.title == 'Marine Virtual Research Environment'
    offered = {p['id'] for p in requests.get(f'{vre_server.url}/processes').json()['processes']}
    assert {'echo', 'ocean-heat-content'} <= offered
    assert {p.identifier for p in wps.processes} == offered     # the same processes
    ops = {op.name for op in wps.operations}
    assert {'GetCapabilities', 'DescribeProcess', 'Execute'} <= ops
    execute = next(op for op in wps.operations if op.name == 'Execute')
    assert execute.methods[0]['url'] == f'{vre_server.url}/wps'


def test_describe_derives_from_process_metadata(vre_server):
    proc = client(vre_server).describeprocess('ocean-heat-content')
    assert proc.title == 'Ocean heat content of Argo profiles'
    assert proc.storeSupported and proc.statusSupported
    inputs = {i.identifier: i for i in proc.dataInputs}
    assert inputs['profiles'].dataType == 'ComplexData'
    assert [v.mimeType for v in inputs['profiles'].supportedValues] == ['application/x-netcdf']
    assert inputs['profiles'].minOccurs == 1
    assert inputs['max_pressure'].dataType == 'float'
    assert inputs['max_pressure'].minOccurs == 0
    assert inputs['max_pressure'].defaultValue == 700.0
    outputs = {o.identifier: o for o in proc.processOutputs}
    assert outputs['ohc'].dataType == 'ComplexData'
    assert outputs['summary'].defaultValue.mimeType == 'application/json'


def test_execute_sync_by_value(vre_server):
    execution = client(vre_server).execute('echo', [('echoInput', 'Hello, ocean')],
                                          output=[('echoOutput', False)], mode=SYNC)
    assert execution.isSucceeded(), execution.errors
    [out] = execution.processOutputs
    assert out.identifier == 'echoOutput'
    assert out.data == ['Hello, ocean']
    assert execution.statusLocation is None


def test_execute_async_netcdf_by_reference(vre_server, static_server):
    """ocean-heat-content through the job manager: async, input and output by reference."""
    wps = client(vre_server)
    execution = wps.execute(
        'ocean-heat-content',
        [('profiles', ComplexDataInput(static_server + PROFILE, mimeType='application/x-netcdf')),
         ('max_pressure', '500')],
        output=[('ohc', True), ('summary', False)], mode=ASYNC)
    assert execution.statusLocation.startswith(f'{vre_server.url}/wps/status/')
    seen = wait(execution)
    assert execution.isSucceeded(), (seen, [e.text for e in execution.errors])
    outputs = {o.identifier: o for o in execution.processOutputs}
    # outputs by reference live in the volatile tier by default (an unguessable URL)
    assert outputs['ohc'].reference.startswith(f'{vre_server.url}/storage/volatile/')
    assert outputs['ohc'].mimeType == 'application/x-netcdf'
    data = outputs['ohc'].retrieveData(headers=vre_server.auth('alice'))
    assert data[:3] == b'\x89HD'                  # NetCDF-4 (HDF5 signature)
    summary = json.loads(outputs['summary'].data[0])
    assert summary['max_pressure_dbar'] == 500.0 and summary['profiles'] == 2

    job_id = execution.statusLocation.rsplit('/', 1)[1]
    jobs = requests.get(f'{vre_server.url}/jobs', params={'type': 'wps', 'limit': 1000},
                        headers=vre_server.auth('alice')).json()['jobs']
    [job] = [j for j in jobs if j['jobID'] == job_id]
    assert job['processID'] == 'ocean-heat-content' and job['status'] == 'successful'
    # the same job seen through OGC API - Processes
    results = requests.get(f'{vre_server.url}/jobs/{job_id}/results',
                           headers=vre_server.auth('alice')).json()
    assert results['ohc']['href'] == outputs['ohc'].reference


def test_netcdf_output_opens_as_ohc(vre_server, static_server, tmp_path):
    execution = client(vre_server).execute(
        'ocean-heat-content', [('profiles', ComplexDataInput(static_server + PROFILE))],
        output=[('ohc', True)], mode=SYNC)
    assert execution.isSucceeded(), [e.text for e in execution.errors]
    target = tmp_path / 'ohc.nc'
    execution.getOutput(str(target), identifier='ohc')
    with xr.open_dataset(target) as ds:
        assert ds['ohc'].attrs['units'] == 'J m-2'
        assert float(ds['ohc'][0]) > 1e9              # J/m2 over 700 dbar of warm water


def test_async_status_goes_through_started(vre_server):
    execution = client(vre_server).execute('echo', [('echoInput', 'slow'), ('pause', '2')],
                                          output=[('echoOutput', False)], mode=ASYNC)
    seen = wait(execution)
    assert execution.isSucceeded()
    assert seen[0] in ('ProcessAccepted', 'ProcessStarted')
    assert 'ProcessStarted' in seen
    assert execution.processOutputs[0].data == ['slow']


def test_status_location_is_private_to_the_owner(vre_server):
    execution = client(vre_server).execute('echo', [('echoInput', 'mine')],
                                          output=[('echoOutput', False)], mode=ASYNC)
    wait(execution)
    job_id = execution.statusLocation.rsplit('/', 1)[1]
    for who in ('bob', None):
        resp = requests.get(execution.statusLocation, headers=vre_server.auth(who))
        assert resp.status_code == 404
        root = etree.fromstring(resp.content)
        assert root.find(f'{OWS}Exception').get('exceptionCode') == 'NoSuchJob'
        listed = requests.get(f'{vre_server.url}/jobs', params={'type': 'wps', 'limit': 1000},
                              headers=vre_server.auth(who)).json()['jobs']
        assert job_id not in {j['jobID'] for j in listed}
    assert requests.get(execution.statusLocation,
                        headers=vre_server.auth('admin')).status_code == 200


def test_failed_job_reports_process_failed(vre_server, static_server):
    """A reference that does not resolve fails the job; the status says why."""
    execution = client(vre_server).execute(
        'ocean-heat-content', [('profiles', ComplexDataInput(static_server + '/nope.nc'))],
        output=[('summary', False)], mode=ASYNC)
    wait(execution)
    # OWSLib names a ProcessFailed carrying an ExceptionReport 'Exception'
    assert not execution.isSucceeded()
    assert etree.fromstring(execution.response).find(f'{WPS}Status/{WPS}ProcessFailed') \
        is not None
    assert 'HTTP 404' in execution.errors[0].text
    assert execution.errors[0].code == 'InvalidParameterValue'


def test_kvp_execute_and_raw_output(vre_server):
    url = f'{vre_server.url}/wps'
    params = {'service': 'WPS', 'request': 'Execute', 'version': '1.0.0', 'identifier': 'echo',
              'DataInputs': 'echoInput=a%3Bb%40c;pause=0', 'RawDataOutput': 'echoOutput'}
    resp = requests.get(url, params=params)
    assert resp.status_code == 200
    assert resp.headers['Content-Type'].startswith('text/plain')
    assert resp.text == 'a;b@c'
    params.pop('RawDataOutput')
    params['ResponseDocument'] = 'echoOutput@asReference=true'
    root = etree.fromstring(requests.get(url, params=params).content)
    ref = root.find(f'{WPS}ProcessOutputs/{WPS}Output/{WPS}Reference')
    assert requests.get(ref.get('href')).text == 'a;b@c'   # anonymous job: public output


def test_xml_execute_with_lineage(vre_server):
    body = f'''<wps:Execute service="WPS" version="1.0.0" xmlns:wps="{WPS[1:-1]}"
        xmlns:ows="{OWS[1:-1]}"><ows:Identifier>echo</ows:Identifier>
      <wps:DataInputs><wps:Input><ows:Identifier>echoInput</ows:Identifier>
        <wps:Data><wps:LiteralData>&lt;tide&gt;</wps:LiteralData></wps:Data></wps:Input>
      </wps:DataInputs>
      <wps:ResponseForm><wps:ResponseDocument lineage="true">
        <wps:Output><ows:Identifier>echoOutput</ows:Identifier></wps:Output>
      </wps:ResponseDocument></wps:ResponseForm></wps:Execute>'''
    resp = requests.post(f'{vre_server.url}/wps', data=body,
                         headers={'Content-Type': 'text/xml', **vre_server.auth('carol')})
    assert resp.status_code == 200, resp.text
    root = etree.fromstring(resp.content)
    assert root.find(f'{WPS}DataInputs/{WPS}Input/{WPS}Data/{WPS}LiteralData').text == '<tide>'
    assert root.find(f'{WPS}OutputDefinitions/{WPS}Output').get('asReference') == 'false'
    assert root.findtext(f'{WPS}ProcessOutputs/{WPS}Output/{WPS}Data/{WPS}ComplexData') \
        == '<tide>'


def test_owslib_sees_exception_for_bad_execute(vre_server):
    from owslib.util import ServiceException
    with pytest.raises(ServiceException) as err:
        client(vre_server).execute('echo', [('pause', '1')], mode=SYNC)
    assert 'MissingParameterValue' in str(err.value) and 'echoInput' in str(err.value)


def test_post_describe_and_form_encoded_kvp(vre_server):
    body = (f'<wps:DescribeProcess xmlns:wps="{WPS[1:-1]}" xmlns:ows="{OWS[1:-1]}" '
            'service="WPS" version="1.0.0"><ows:Identifier>echo</ows:Identifier>'
            '<ows:Identifier>ocean-heat-content</ows:Identifier></wps:DescribeProcess>')
    root = etree.fromstring(requests.post(f'{vre_server.url}/wps', data=body).content)
    assert [p.findtext(f'{OWS}Identifier') for p in root.findall('ProcessDescription')] == [
        'echo', 'ocean-heat-content']
    form = requests.post(f'{vre_server.url}/wps', data={
        'service': 'WPS', 'request': 'Execute', 'version': '1.0.0', 'identifier': 'echo',
        'DataInputs': 'echoInput=posted', 'RawDataOutput': 'echoOutput'})
    assert form.status_code == 200 and form.text == 'posted'
