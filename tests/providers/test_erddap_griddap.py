"""GriddapCoverage: a griddap dataset served live as OGC API - Coverages, against loopback
ERDDAP servers answering at the live paths with the recorded GEBCO 2020 griddap answer
(../shared/data/bdi/erddap, MANIFEST.json) through a real `vre serve`.

No info of GEBCO_2020 is recorded, so the loopback's info/GEBCO_2020/index.json is built from
the recorded NetCDF's own attributes in ERDDAP's info layout (Row Type, Variable Name,
Attribute Name, Data Type, Value; a `dimension` row per axis with nValues/averageSpacing, a
`variable` row whose value lists its axes): the dataset it describes is the region of the
recorded answer (its actual_range) at the dataset's own resolution (geospatial_*_resolution),
of which the recorded answer is the stride-10 subset. A second loopback serves the same grid
as ERDDAP publishes a descending latitude (negative averageSpacing, actual_range high to low),
its answer being the recorded file flipped north to south. Any other griddap request gets
ERDDAP's recorded 400 error body (a real ERDDAP message, recorded for another request).
Expected values are read from the recorded file with xarray/netCDF4, not through our code."""
from __future__ import annotations

import contextlib
import http.server
import json
from urllib.parse import unquote

import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr

from bdi_samples import BDI_DATA, coverage, values
from serverkit import config_with, free_port, serve, start_server

from providers.erddap import GriddapCoverage

ERD = BDI_DATA / 'erddap'
MANIFEST = json.loads((ERD / 'MANIFEST.json').read_text())
GEBCO = ERD / 'coastwatch_griddap_GEBCO_2020_subset.nc'
URI = next(e['uri'] for e in MANIFEST if e['file'] == GEBCO.name)
REL = URI.split('/erddap/', 1)[1]           # griddap/GEBCO_2020.nc?elevation[(-67.00):10:...
BBOX = '81,-67,123,-54'                      # the recorded request's constraints
ERROR_400 = ERD / 'error_400_bad_constraint.txt'
TYPES = {'f8': 'double', 'f4': 'float', 'i2': 'short', 'i4': 'int', 'i1': 'byte', 'i8': 'long'}


def _text(value) -> tuple[str, str]:
    """(ERDDAP data type, value text) of a NetCDF attribute."""
    if isinstance(value, str):
        return 'String', value
    arr = np.atleast_1d(value)
    return TYPES[arr.dtype.str[1:]], ', '.join(repr(v.item()) for v in arr)


def erddap_info(path, descending: bool = False) -> bytes:
    """info/<id>/index.json of the grid in `path` built from its own attributes (see above)."""
    rows = []
    with netCDF4.Dataset(path) as nc:
        rows += [['attribute', 'NC_GLOBAL', k, *_text(nc.getncattr(k))] for k in nc.ncattrs()]
        (var,) = [v for v in nc.variables.values() if v.dimensions != (v.name,)]
        for dim in var.dimensions:
            axis = nc.variables[dim]
            lo, hi = (float(v) for v in axis.actual_range)
            res = float(nc.getncattr(f"geospatial_{dim[:3]}_resolution"))
            n = round((hi - lo) / res) + 1
            flip = descending and dim == 'latitude'
            rows.append(['dimension', dim, '', TYPES[axis.dtype.str[1:]],
                         f'nValues={n}, evenlySpaced=true, '
                         f'averageSpacing={repr(-res if flip else res)}'])
            for k in axis.ncattrs():
                value = axis.getncattr(k)
                rows.append(['attribute', dim, k, *_text(value[::-1] if flip and
                                                          k == 'actual_range' else value)])
        rows.append(['variable', var.name, '', TYPES[var.dtype.str[1:]],
                     ', '.join(var.dimensions)])
        rows += [['attribute', var.name, k, *_text(var.getncattr(k))] for k in var.ncattrs()]
    return json.dumps({'table': {
        'columnNames': ['Row Type', 'Variable Name', 'Attribute Name', 'Data Type', 'Value'],
        'columnTypes': ['String'] * 5, 'rows': rows}}).encode()


def descending_rel() -> str:
    """The recorded request as it reads on a descending latitude axis (high to low)."""
    return REL.replace('[(-67.00):10:(-54.00)]', '[(-54.00):10:(-67.00)]')


def flipped(tmp) -> bytes:
    """The recorded answer as ERDDAP sends it for a descending latitude axis."""
    with xr.open_dataset(GEBCO) as ds:
        ds.isel(latitude=slice(None, None, -1)).to_netcdf(tmp, format='NETCDF3_64BIT')
    return tmp.read_bytes()


class Erddap(http.server.BaseHTTPRequestHandler):
    """A loopback ERDDAP answering known paths; other griddap paths get ERDDAP's 400 body."""
    answers: dict = {}
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = unquote(self.path)
        self.seen.append(path)
        if path in self.answers:
            status, body, ctype = 200, *self.answers[path]
        elif path.startswith('/erddap/griddap/'):
            status, body, ctype = 400, ERROR_400.read_bytes(), 'text/plain;charset=UTF-8'
        else:
            status, body, ctype = 404, b'', 'text/plain'
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


SEEN: dict[str, list] = {}      # base URL (…/erddap/) of a loopback ERDDAP -> paths asked


@contextlib.contextmanager
def erddap(answers: dict):
    handler = type('Erddap', (Erddap,), {'answers': answers, 'seen': []})
    with serve(handler) as url:
        SEEN[url + '/erddap/'] = handler.seen
        yield url


@pytest.fixture(scope='module')
def hosts(bdi_data, tmp_path_factory):
    """Base URLs (…/erddap/) of the ascending and the descending loopback ERDDAP."""
    nc = 'application/x-netcdf'
    info = '/erddap/info/GEBCO_2020/index.json'
    flip = flipped(tmp_path_factory.mktemp('flip') / 'flip.nc')
    with erddap({info: (erddap_info(GEBCO), 'application/json'),
                 '/erddap/' + REL: (GEBCO.read_bytes(), nc)}) as up, \
            erddap({info: (erddap_info(GEBCO, descending=True), 'application/json'),
                    '/erddap/' + descending_rel(): (flip, nc)}) as down:
        yield {'up': up + '/erddap/', 'down': down + '/erddap/'}


def seen(base: str) -> list:
    """The paths a loopback ERDDAP was asked."""
    return SEEN[base]


COLLECTION = """  {id}:
    type: collection
    title: {title}
    description: test collection answered live by a griddap dataset
    keywords: [ERDDAP]
    links: []
    extents:
      spatial: {{bbox: [81, -67, 123, -54], crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84}}
    providers:
      - type: coverage
        name: providers.erddap.GriddapCoverage
        data: {data}
        format: {{name: netcdf, mimetype: application/x-netcdf}}
        options: {options}
"""


def resources(hosts: dict) -> str:
    """Three GriddapCoverage collections: ascending, descending, and an ERDDAP that is down."""
    return 'resources:\n' + ''.join(COLLECTION.format(id=cid, title=title, data=data,
                                                      options=options) for cid, title, data,
                                     options in (
        ('gebco-live', 'GEBCO 2020 (live from ERDDAP griddap)',
         hosts['up'] + 'griddap/GEBCO_2020', '{max_cells: 350000}'),
        ('gebco-live-descending', 'GEBCO 2020 on a descending latitude axis',
         hosts['down'] + 'griddap/GEBCO_2020', '{max_cells: 350000}'),
        ('gebco-live-unreachable', 'a griddap dataset whose ERDDAP does not answer',
         f'http://127.0.0.1:{free_port()}/erddap/griddap/GEBCO_2020', '{timeout: 5}')))


@pytest.fixture(scope='module')
def server(tmp_path_factory, hosts):
    home = tmp_path_factory.mktemp('griddap') / 'home'
    home.mkdir(parents=True)
    with start_server(home, config_path=config_with(home, resources(hosts))) as s:
        yield s


def provider(base: str, **options) -> GriddapCoverage:
    return GriddapCoverage({'name': 'providers.erddap.GriddapCoverage', 'type': 'coverage',
                            'data': base + 'griddap/GEBCO_2020', 'options': options})


# --- the request ------------------------------------------------------------------------------
def test_the_bbox_of_the_recorded_request_makes_exactly_that_request(hosts):
    """bbox 81,-67,123,-54 at full resolution is 3121 x 10081 values; under 350,000 the
    stride is 10, the request recorded from coastwatch."""
    assert provider(hosts['up'], max_cells=350_000).request_url(
        bbox=[81, -67, 123, -54]) == hosts['up'] + REL
    assert provider(hosts['down'], max_cells=350_000).request_url(
        bbox=[81, -67, 123, -54]) == hosts['down'] + descending_rel()


def test_stride_is_the_smallest_that_fits_max_cells(hosts):
    with xr.open_dataset(GEBCO) as ds:
        at_10 = ds.elevation.size                 # the recorded answer: 313 x 1009
    box = [81, -67, 123, -54]
    assert ':10:' in provider(hosts['up'], max_cells=at_10).request_url(bbox=box)
    assert ':11:' in provider(hosts['up'], max_cells=at_10 - 1).request_url(bbox=box)
    small = provider(hosts['up'], max_cells=at_10).request_url(bbox=[90, -60, 91, -59])
    assert small.endswith('elevation[(-60.00):(-59.00)][(90.00):(91.00)]')    # stride 1
    edge = provider(hosts['up']).request_url(subsets={'lon': [0, 81.5], 'lat': [-54.5]})
    assert edge.endswith('elevation[(-54.50)][(81.0020833333333):(81.50)]')  # clipped west


def test_answers_are_cached(hosts):
    p = provider(hosts['up'], max_cells=350_000)
    asked = seen(hosts['up'])
    before = len(asked)
    first = p.query(bbox=[81, -67, 123, -54])
    assert p.query(bbox=[81, -67, 123, -54]) == first
    assert asked[before:] == ['/erddap/' + REL]


# --- served -----------------------------------------------------------------------------------
def test_collection_extent_and_grid_come_from_the_info(server):
    got = requests.get(f'{server.url}/collections/gebco-live', params={'f': 'json'},
                       timeout=60).json()
    with xr.open_dataset(GEBCO) as ds:
        res = ds.attrs['geospatial_lon_resolution']
        x, y = got['extent']['spatial']['grid']
        assert (x['cellsCount'], y['cellsCount']) == (
            round((float(ds.longitude.max()) - float(ds.longitude.min())) / res) + 1,
            round((float(ds.latitude.max()) - float(ds.latitude.min())) / res) + 1)
        assert x['resolution'] == pytest.approx(res)


def test_coverage_of_the_recorded_bbox_is_the_recorded_grid(server, hosts):
    asked = seen(hosts['up'])
    cj = coverage(server, 'gebco-live', bbox=BBOX).json()
    assert '/erddap/' + REL in asked
    with xr.open_dataset(GEBCO) as ds:
        assert cj['domain']['axes']['x']['values'] == ds.longitude.values.tolist()
        assert cj['domain']['axes']['y']['values'] == ds.latitude.values.tolist()
        assert cj['ranges']['elevation']['axisNames'] == ['y', 'x']
        np.testing.assert_array_equal(values(cj, 'elevation'), ds.elevation.values)
        assert cj['parameters']['elevation']['unit']['symbol'] == ds.elevation.attrs['units']


def test_descending_latitude_asks_high_to_low(server, hosts):
    asked = seen(hosts['down'])
    cj = coverage(server, 'gebco-live-descending', bbox=BBOX).json()
    assert '/erddap/' + descending_rel() in asked
    with xr.open_dataset(GEBCO) as ds:
        assert cj['domain']['axes']['y']['values'] == ds.latitude.values[::-1].tolist()
        np.testing.assert_array_equal(values(cj, 'elevation'), ds.elevation.values[::-1])


def test_netcdf_coverage_read_by_gdal(server, tmp_path):
    import rasterio
    r = coverage(server, 'gebco-live', bbox=BBOX, f='netcdf')
    assert r.headers['Content-Type'] == 'application/x-netcdf'
    out = tmp_path / 'live.nc'
    out.write_bytes(r.content)
    with xr.open_dataset(GEBCO) as ds, rasterio.open(f'NETCDF:{out}:elevation') as src:
        assert (src.width, src.height) == (ds.sizes['longitude'], ds.sizes['latitude'])
        step = float(ds.longitude[1] - ds.longitude[0])
        assert src.transform.c == pytest.approx(float(ds.longitude[0]) - step / 2)
        assert src.bounds.top == pytest.approx(float(ds.latitude[-1]) + step / 2, abs=1e-6)
        band = src.read(1, masked=True)
        for lon, lat in ((81.5, -66.5), (100.3, -61.7), (122.9, -54.1)):
            row, col = src.index(lon, lat)
            cell = ds.elevation.sel(longitude=lon, latitude=lat, method='nearest')
            assert float(band[row, col]) == float(cell)


def test_erddap_400_is_a_400_with_its_message(server, hosts):
    message = ERROR_400.read_text().split('message="', 1)[1].rsplit('";', 1)[0].replace(
        '\\"', '"')                                   # ERDDAP escapes its quotes
    asked = seen(hosts['up'])
    r = requests.get(f'{server.url}/collections/gebco-live/coverage',
                     params={'bbox': '90,-60,91,-59'}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert message in r.json()['detail']
    assert '/erddap/griddap/GEBCO_2020.nc?elevation[(-60.00):(-59.00)][(90.00):(91.00)]' \
        in asked


@pytest.mark.parametrize('coll,params,status', [
    ('gebco-live-unreachable', {}, 502),                          # server down
    ('gebco-live', {'bbox': '0,0,10,10'}, 404),                   # outside: not asked
    ('gebco-live', {'subset': 'depth(0:10)'}, 400),
    ('gebco-live', {'datetime': '2020-01-01T00:00:00Z'}, 400),    # no time axis
    ('gebco-live', {'properties': 'nothing'}, 400)])
def test_problems_are_problem_json(server, hosts, coll, params, status):
    asked = seen(hosts['up'])

    def data_requests():        # not the dataset's info, which a fresh web worker reads first
        return [path for path in asked if '/griddap/' in path]
    before = len(data_requests())
    r = requests.get(f'{server.url}/collections/{coll}/coverage', params=params, timeout=60)
    assert r.status_code == status, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert r.json()['detail']
    if coll == 'gebco-live':
        assert len(data_requests()) == before        # refused here, not sent to ERDDAP
    else:
        page = requests.get(f'{server.url}/collections/{coll}', params={'f': 'json'},
                            timeout=60)
        assert page.status_code == 200        # the collection is still listed
