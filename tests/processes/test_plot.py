"""plot through the running server: the PNG decodes, has the asked size and is not blank."""
from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from test_ogcapi_processes import execute


def png(server, inputs):
    resp = execute(server, 'plot', {'inputs': inputs,
                                    'outputs': {'image': {'transmissionMode': 'value'}}})
    assert resp.status_code == 200, resp.text
    assert resp.headers['Content-Type'].startswith('image/png')
    image = Image.open(io.BytesIO(resp.content))
    image.load()
    return image


def assert_drawn(image, size):
    assert image.format == 'PNG' and image.size == size
    rgb = np.asarray(image.convert('RGB')).astype(int)
    ink = (rgb.sum(axis=2) < 600).mean()            # pixels clearly darker than white
    assert ink > 0.01 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20


@pytest.mark.parametrize('sample,inputs,size', [
    ('obis/api_v3/occurrence_grid5_Abra_alba.geojson', {'kind': 'map', 'variable': 'n'},
     (800, 600)),
    ('argo/dac/bodc/6901929/profiles/D6901929_001.nc',
     {'kind': 'profile', 'variable': 'TEMP', 'width': 500, 'height': 700}, (500, 700)),
    ('erddap/coastwatch_griddap_GEBCO_2020_subset.nc',
     {'kind': 'map', 'variable': 'elevation', 'width': 640, 'height': 480}, (640, 480)),
])
def test_plots_of_samples(vre_server, static_server, sample, inputs, size):
    assert_drawn(png(vre_server, dict(inputs, data={'href': f'{static_server}/{sample}'})), size)


def test_ts_diagram_of_a_job_result(vre_server, static_server):
    """A chain: argo-indicators writes NetCDF by reference, plot draws its SA/CT."""
    doc = execute(vre_server, 'argo-indicators', {
        'inputs': {'profiles': {'href': f'{static_server}/argo/dac/coriolis/3902131/'
                                        '3902131_prof.nc'}},
        'outputs': {'indicators': {'transmissionMode': 'reference'}},
        'response': 'document'}).json()
    image = png(vre_server, {'data': {'href': doc['indicators']['href']}, 'kind': 'ts',
                             'width': 900, 'height': 900, 'title': 'Argo 3902131'})
    assert_drawn(image, (900, 900))


def test_blank_and_bad_requests_are_400(vre_server, static_server):
    r = execute(vre_server, 'plot', {'inputs': {
        'data': {'href': f'{static_server}/obis/api_v3/taxon_545439.json'}, 'kind': 'map'}})
    assert r.status_code == 400 and 'no Point or Polygon' in r.json()['detail']
    r = execute(vre_server, 'plot', {'inputs': {
        'data': {'href': f'{static_server}/argo/dac/bodc/6901929/profiles/D6901929_001.nc'},
        'kind': 'profile', 'variable': 'NOPE'}})
    assert r.status_code == 400 and 'unknown variable' in r.json()['detail']
    r = execute(vre_server, 'plot', {'inputs': {
        'data': {'href': f'{static_server}/argo/dac/bodc/6901929/profiles/D6901929_001.nc'},
        'width': 10}})
    assert r.status_code == 400
    assert requests.get(f'{vre_server.url}/processes/plot').json()['outputs']['image'][
        'schema']['contentMediaType'] == 'image/png'
