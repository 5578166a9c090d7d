"""EMODnet Bathymetry and EMODnet Biology over OGC WCS/WFS (providers/emodnet.py): harvest from a
mirror and from a loopback server answering at the GeoServer/ERDDAP paths, level-1 rows against
lxml reading the capabilities, and the fetched coverages served as OGC API - Coverages, compared
with rasterio/xarray reading the files, read by GDAL (gdalinfo) and OWSLib.

Real samples (../shared/data/bdi): the EMODnet Bathymetry WCS 2.0.1 GetCapabilities, the
Biology WCS DescribeCoverage + GetCoverage GeoTIFF (Calanus finmarchicus, 2 bands, nodata
9.969e36) and the Biology WFS 2.0.0 GetCapabilities.
NOT real: no EMODnet DTM subset exists offline, so `dtm_fixtures` builds, in test code, the two
answers the default config asks for, following emodnet-bathymetry/SOURCE.md: a WCS GetCoverage
GeoTIFF (EPSG:4326, float32, GeoServer's nodata 9.969e36 on land: emodnet__mean has no land
cover) and an ERDDAP griddap NetCDF (1-D latitude/longitude at 1/16 arc-minute, elevation in m,
the attributes of the real GEBCO griddap file). Their values are synthetic (a coast and a slope).
"""
from __future__ import annotations

import http.server
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import netCDF4
import numpy as np
import pytest
import rasterio
import requests
import xarray as xr
import yaml
from lxml import etree

from bdi_samples import BDI_DATA, run_harvest, values, coverage as cov
from serverkit import REPO, serve, start_server

BIO = BDI_DATA / 'emodnet-wcs-wfs'
BIO_TIF = BIO / 'biology_wcs_GetCoverage_cal_fin_L1_err_Lat40-45.tif'
CAPS = BDI_DATA / 'emodnet-bathymetry/wcs_GetCapabilities_2.0.1.xml'
WFS_CAPS = BIO / 'biology_wfs_GetCapabilities_2.0.0.xml'
CAL, DTM_WCS, DTM_GRIDDAP = ('emodnet-biology-calanus-finmarchicus', 'emodnet-bathymetry-dtm-wcs',
                             'emodnet-bathymetry-dtm-griddap')
NODATA = 9.969209968386869e36
STEP = 1 / 960           # 1/16 arc-minute
NS = {'wcs': 'http://www.opengis.net/wcs/2.0', 'ows': 'http://www.opengis.net/ows/2.0'}


def _config_coverages(bdi: str) -> list[dict]:
    conf = yaml.safe_load((REPO / 'pygeoapi-config.yml').read_text())
    return conf['vre']['bdis'][bdi]['coverages']


def _synthetic_dtm(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Elevation (m): land north of a wavy coast, a slope down to about -2500 m southwards."""
    la, lo = np.meshgrid(lat, lon, indexing='ij')
    coast = 43.70 + 0.015 * np.sin((lo - 7.25) * 40)
    return np.where(la > coast, 20 + (la - coast) * 8000,
                    np.maximum(-(coast - la) * 12000, -2500)).astype('f4')


def write_wcs_geotiff(path: Path) -> None:
    """A GetCoverage answer of emodnet__mean for Lat(43.5,43.75) Long(7.25,7.5)."""
    lat = 43.75 - (np.arange(240) + 0.5) * STEP          # north-up rows, as GeoServer writes
    lon = 7.25 + (np.arange(240) + 0.5) * STEP
    z = _synthetic_dtm(lat, lon)
    z[z >= 0] = NODATA                                     # ocean overlay without land cover
    with rasterio.open(path, 'w', driver='GTiff', width=240, height=240, count=1,
                       dtype='float32', crs='EPSG:4326', nodata=NODATA,
                       transform=rasterio.transform.from_origin(7.25, 43.75, STEP, STEP)) as dst:
        dst.write(z, 1)


def write_griddap_netcdf(path: Path) -> None:
    """bathymetry_2022.nc?elevation[(43.5):1:(43.75)][(7.25):1:(7.5)] in ERDDAP's layout."""
    lat = 43.5 + (np.arange(240) + 0.5) * STEP
    lon = 7.25 + (np.arange(240) + 0.5) * STEP
    z = _synthetic_dtm(lat, lon)
    z[z >= 0] = np.nan                                     # the DTM has no land values
    with netCDF4.Dataset(path, 'w', format='NETCDF3_CLASSIC') as ds:
        ds.createDimension('latitude', lat.size)
        ds.createDimension('longitude', lon.size)
        for name, vals, axis, units in (('latitude', lat, 'Y', 'degrees_north'),
                                        ('longitude', lon, 'X', 'degrees_east')):
            v = ds.createVariable(name, 'f8', (name,))
            v[:] = vals
            v.setncatts({'_CoordinateAxisType': axis == 'Y' and 'Lat' or 'Lon', 'axis': axis,
                         'ioos_category': 'Location', 'long_name': name.title(),
                         'standard_name': name, 'units': units,
                         'actual_range': np.array([vals.min(), vals.max()])})
        e = ds.createVariable('elevation', 'f4', ('latitude', 'longitude'),
                              fill_value=np.float32(np.nan))
        e[:] = z
        e.setncatts({'ioos_category': 'Location', 'long_name': 'Elevation relative to sea level',
                     'standard_name': 'height_above_reference_ellipsoid', 'units': 'm'})
        ds.setncatts({'cdm_data_type': 'Grid', 'Conventions': 'CF-1.6, COARDS, ACDD-1.3',
                      'title': 'EMODnet Digital Bathymetry (DTM 2022)',
                      'geospatial_lat_min': lat.min(), 'geospatial_lat_max': lat.max(),
                      'geospatial_lon_min': lon.min(), 'geospatial_lon_max': lon.max(),
                      'Westernmost_Easting': lon.min(), 'Easternmost_Easting': lon.max(),
                      'Southernmost_Northing': lat.min(), 'Northernmost_Northing': lat.max()})


@pytest.fixture(scope='module')
def mirror(tmp_path_factory, bdi_data):
    """A mirror: the real Biology and ERDDAP folders as they are, and an emodnet-bathymetry
    folder with the real capabilities plus the two built DTM answers, listed in MANIFEST.json
    at the URIs the default config asks for."""
    root = tmp_path_factory.mktemp('emodnet-mirror')
    for name in ('emodnet-wcs-wfs', 'erddap'):
        (root / name).symlink_to(bdi_data / name, target_is_directory=True)
    bathy = root / 'emodnet-bathymetry'
    bathy.mkdir()
    shutil.copy(CAPS, bathy / CAPS.name)
    entries = json.loads((CAPS.parent / 'MANIFEST.json').read_text())
    tif, nc = (c['file'] for c in _config_coverages('emodnet-bathymetry'))
    write_wcs_geotiff(bathy / tif)
    write_griddap_netcdf(bathy / nc)
    for c in _config_coverages('emodnet-bathymetry'):
        uri = c['request'] if '://' in c['request'] else \
            'https://ows.emodnet-bathymetry.eu/' + c['request']
        entries.append({'file': c['file'], 'uri': uri, 'status': 200})
    (bathy / 'MANIFEST.json').write_text(json.dumps(entries))
    return root


@pytest.fixture(scope='module')
def server(tmp_path_factory, mirror):
    home = tmp_path_factory.mktemp('emodnet') / 'home'
    home.mkdir()
    report = run_harvest(home, 'emodnet-bathymetry', 'emodnet-biology', '--mirror', str(mirror))
    with start_server(home, extra_env={'VRE_BDI_MIRROR': str(mirror)}) as s:
        s.report = report
        yield s


def rasterio_window(path: Path, band: int, bbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band values (nodata as NaN) of the pixels whose centres fall in bbox, and the centres."""
    with rasterio.open(path) as src:
        data = src.read(band, masked=True).astype('f8').filled(np.nan)
        cols = np.arange(src.width)
        rows = np.arange(src.height)
        xs = np.array(src.xy(np.zeros_like(cols), cols)[0])
        ys = np.array(src.xy(rows, np.zeros_like(rows))[1])
    ci = np.flatnonzero((xs >= bbox[0]) & (xs <= bbox[2]))
    ri = np.flatnonzero((ys >= bbox[1]) & (ys <= bbox[3]))
    return data[np.ix_(ri, ci)], xs[ci], ys[ri]


def level1(server, **params):
    r = requests.get(f'{server.url}/collections/bdi-collections/items',
                     params={'limit': 1000, 'f': 'json', **params}, timeout=60)
    assert r.status_code == 200, r.text
    return {f['id']: f for f in r.json()['features']}


# --- harvest and search ----------------------------------------------------------------------
def test_mirror_harvest_report(server):
    bathy, bio = server.report['emodnet-bathymetry'], server.report['emodnet-biology']
    assert (bathy['added'], bathy['skipped']) == (2, [])
    assert (bio['added'], bio['skipped']) == (1, [])


def test_wcs_coverages_and_wfs_feature_types_are_level1_collections(server):
    found = level1(server)
    caps = etree.parse(str(CAPS))
    summaries = caps.findall('.//wcs:CoverageSummary', NS)
    assert len(summaries) == 8
    for s in summaries:
        cid = s.findtext('wcs:CoverageId', namespaces=NS)
        rec = found[f'emodnet-bathymetry-{cid}']
        assert rec['properties']['title'] == s.findtext('ows:Title', namespaces=NS)
        assert rec['properties']['type'] == 'wcs-coverage'
        if cid == 'emodnet__mean':      # it has harvested subsets: the extent is theirs
            continue
        lo = [float(v) for v in s.findtext('ows:WGS84BoundingBox/ows:LowerCorner',
                                           namespaces=NS).split()]
        hi = [float(v) for v in s.findtext('ows:WGS84BoundingBox/ows:UpperCorner',
                                           namespaces=NS).split()]
        ring = np.array(rec['geometry']['coordinates'][0])
        np.testing.assert_allclose([*ring.min(axis=0), *ring.max(axis=0)], lo + hi)
    wfs = etree.parse(str(WFS_CAPS))
    wns = {'w': 'http://www.opengis.net/wfs/2.0'}
    types = wfs.findall('.//w:FeatureType', wns)
    assert len(types) > 20
    for ft in types:
        name = ft.findtext('w:Name', namespaces=wns)
        rec = found[f'emodnet-biology-{name.replace(":", "-")}']
        assert rec['properties']['title'] == ft.findtext('w:Title', namespaces=wns)
        assert rec['properties']['type'] == 'wfs-featuretype'
    seals = level1(server, q='grey seal')
    assert 'emodnet-biology-Emodnetbio-grey_seal' in seals


def test_described_coverage_and_its_granule(server):
    with rasterio.open(BIO_TIF) as src:
        bounds = list(src.bounds)
    desc = etree.parse(str(BIO / 'biology_wcs_DescribeCoverage_cal_fin_19582016_L1_err.xml'))
    gml = {'gml': 'http://www.opengis.net/gml/3.2', 'swe': 'http://www.opengis.net/swe/2.0',
           'wcsgs': 'http://www.geoserver.org/wcsgs/2.0'}
    rec = level1(server, q='Calanus')['emodnet-biology-Emodnetbio__cal_fin_19582016_L1_err']
    assert rec['properties']['title'] == desc.findtext('.//gml:name', namespaces=gml)
    default = desc.find('.//wcsgs:TimeDomain', gml).get('default')[:19] + 'Z'
    assert rec['time']['interval'] == [default, default]   # what the harvested slice holds
    r = requests.get(f'{server.url}/collections/emodnet-biology-granules/items',
                     params={'f': 'json', 'collection':
                             'emodnet-biology-Emodnetbio__cal_fin_19582016_L1_err'}, timeout=30)
    feats = r.json()['features']
    assert len(feats) == 1
    ring = np.array(feats[0]['geometry']['coordinates'][0])
    np.testing.assert_allclose([*ring.min(axis=0), *ring.max(axis=0)], bounds)
    names = [f.get('name') for f in desc.findall('.//swe:field', gml)]
    assert feats[0]['properties']['parameters'] == [n.replace(' ', '_') for n in names]
    assert 'request=GetCoverage' in json.dumps(feats[0])


# --- the GeoTIFF served as a coverage --------------------------------------------------------
@pytest.mark.parametrize('bbox', [(0, 39.97, 5.1, 45), (2.02, 41.02, 3.03, 42.23),
                                  (4.22, 44.12, 5.03, 44.93)])
def test_biology_geotiff_values_equal_rasterio(server, bbox):
    cj = cov(server, CAL, bbox=','.join(map(str, bbox))).json()
    for band, name in ((1, 'relative_abundance'), (2, 'relative_error')):
        want, xs, ys = rasterio_window(BIO_TIF, band, bbox)
        np.testing.assert_array_equal(values(cj, name), want)
        np.testing.assert_allclose(cj['domain']['axes']['x']['values'], xs)
        np.testing.assert_allclose(cj['domain']['axes']['y']['values'], ys)
    assert np.isnan(values(cj, 'relative_abundance')).all()     # the sample is masked there
    if bbox[0] == 0:                                             # the whole file
        err = values(cj, 'relative_error')
        assert err.shape == (50, 50) and (~np.isnan(err)).sum() == 987 and np.isnan(err).any()


def test_point_subset_and_one_property(server):
    with rasterio.open(BIO_TIF) as src:
        band = src.read(2, masked=True)
        valid = np.argwhere(~np.ma.getmaskarray(band))
        row, col = valid[len(valid) // 2]
        lon, lat = src.xy(row, col)
    cj = cov(server, CAL, subset=f'lon({lon}),lat({lat})', properties='relative_error').json()
    assert list(cj['ranges']) == ['relative_error']
    assert values(cj, 'relative_error').tolist() == [[pytest.approx(float(band[row, col]))]]


def test_netcdf_output_read_by_gdal(server, tmp_path):
    bbox = (1.02, 40.52, 3.03, 42.03)
    out = tmp_path / 'cal.nc'
    out.write_bytes(cov(server, CAL, bbox=','.join(map(str, bbox)), f='netcdf').content)
    info = json.loads(subprocess.run(
        ['gdalinfo', '-json', '-stats', f'NETCDF:{out}:relative_error'],
        capture_output=True, text=True, check=True).stdout)
    want, xs, ys = rasterio_window(BIO_TIF, 2, bbox)
    assert info['size'] == [xs.size, ys.size]
    band = info['bands'][0]
    assert band['minimum'] == pytest.approx(np.nanmin(want), abs=1e-5)   # gdalinfo rounds
    assert band['maximum'] == pytest.approx(np.nanmax(want), abs=1e-5)
    with rasterio.open(f'NETCDF:{out}:relative_error') as src:
        got = src.read(1, masked=True).astype('f8').filled(np.nan)
        if src.transform.e > 0:             # GDAL may keep the file's south-up row order
            got = got[::-1]
        np.testing.assert_array_equal(got, want)


def test_owslib_reads_the_coverages(server):
    from owslib.ogcapi.coverages import Coverages
    api = Coverages(server.url)
    assert {CAL, DTM_WCS, DTM_GRIDDAP} <= set(api.coverages())
    cj = json.load(api.coverage(CAL, subset={'lat': (41.02, 42.03), 'lon': (1.02, 2.03)}))
    want, _, _ = rasterio_window(BIO_TIF, 2, (1.02, 41.02, 2.03, 42.03))
    np.testing.assert_array_equal(values(cj, 'relative_error'), want)
    assert api.collection(CAL)['extent']['spatial']['grid'][0]['cellsCount'] == 50


def test_dtm_geotiff_and_griddap_coverages(server, mirror):
    bbox = (7.3, 43.6, 7.4, 43.72)
    tif, nc = (mirror / 'emodnet-bathymetry' / c['file']
               for c in _config_coverages('emodnet-bathymetry'))
    cj = cov(server, DTM_WCS, bbox=','.join(map(str, bbox))).json()
    want, xs, ys = rasterio_window(tif, 1, bbox)
    np.testing.assert_array_equal(values(cj, 'elevation'), want)
    assert np.isnan(want).any() and (want < -100).any()       # land (nodata) and sea
    cj = cov(server, DTM_GRIDDAP, bbox=','.join(map(str, bbox))).json()
    with xr.open_dataset(nc) as ds:
        sel = ds.elevation.where((ds.longitude >= bbox[0]) & (ds.longitude <= bbox[2]) &
                                 (ds.latitude >= bbox[1]) & (ds.latitude <= bbox[3]), drop=True)
        np.testing.assert_array_equal(values(cj, 'elevation'), sel.values)
    # the two answers describe the same sea floor (the GeoTIFF north-up, griddap south-up)
    np.testing.assert_array_equal(values(cj, 'elevation')[::-1], want)


@pytest.mark.parametrize('params,status', [
    ({'bbox': '1,2,3'}, 400), ({'bbox': 'a,b,c,d'}, 400), ({'subset': 'lat(a:b)'}, 400),
    ({'subset': 'depth(1:2)'}, 400), ({'properties': 'band_9'}, 400),
    ({'datetime': '2016-11-16'}, 400), ({'f': 'xyz'}, 400),
    ({'subset': 'lat(60:61)'}, 404), ({'subset': 'lon(-30)'}, 404)])
def test_bad_input_is_a_problem(server, params, status):
    r = requests.get(f'{server.url}/collections/{CAL}/coverage', params=params, timeout=30)
    assert r.status_code == status, r.text
    if params.get('f') != 'xyz':
        assert r.headers['Content-Type'] == 'application/problem+json'
        assert r.json()['detail']


def test_unreadable_granule_is_skipped_and_the_harvest_goes_on(tmp_path, index_url):
    """A GetCoverage answered with an OWS ExceptionReport (as GeoServer does, HTTP 200)."""
    from providers import harvest, store
    from providers.base import MirrorSource
    from providers.emodnet import BiologyConnector
    folder = tmp_path / 'emodnet-wcs-wfs'
    shutil.copytree(BIO, folder)
    folder.chmod(0o755)
    entries = json.loads((folder / 'MANIFEST.json').read_text())
    (folder / 'bad.tif').write_bytes(
        b'<?xml version="1.0"?><ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1">'
        b'<ows:Exception exceptionCode="InvalidSubsetting"><ows:ExceptionText>subset out of '
        b'bounds</ows:ExceptionText></ows:Exception></ows:ExceptionReport>')
    entries.append({'file': 'bad.tif', 'status': 200, 'uri': entries[1]['uri'].replace(
        'Lat%2840%2C45%29', 'Lat%2890%2C91%29')})
    (folder / 'MANIFEST.json').chmod(0o644)
    (folder / 'MANIFEST.json').write_text(json.dumps(entries))
    rep = harvest.harvest_one(store.engine(index_url), BiologyConnector({}), MirrorSource(folder))
    assert rep['added'] == 1
    assert [s['granule'] for s in rep['skipped']] == ['bad.tif']
    assert 'subset out of bounds' in rep['skipped'][0]['reason']


# --- the live layout -----------------------------------------------------------------------
class OwsHandler(http.server.BaseHTTPRequestHandler):
    """GeoServer and ERDDAP at their live paths, answered from the recorded files by request:
    /wcs?... (EMODnet Bathymetry), /geoserver/Emodnetbio/{wcs,wfs}?... (EMODnet Biology),
    /erddap/griddap/... (ERDDAP); parameter order and key case do not matter, as for GeoServer."""
    folders: dict = {}
    hits: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        from providers.emodnet import request_key
        self.hits.append(self.path)
        path = urlsplit(self.path).path
        folder = self.folders['bio'] if path.startswith('/geoserver/Emodnetbio/') else \
            self.folders['bathy']
        files = {request_key(e['uri']): e['file']
                 for e in json.loads((folder / 'MANIFEST.json').read_text())}
        files[request_key('wfs?service=WFS&version=2.0.0&request=GetCapabilities')] = \
            WFS_CAPS.name
        name = files.get(request_key(self.path))
        body = (folder / name).read_bytes() if name and (folder / name).is_file() else None
        self.send_response(200 if body is not None else 404)
        self.send_header('Content-Length', str(len(body or b'')))
        self.end_headers()
        self.wfile.write(body or b'')


@pytest.fixture(scope='module')
def live(mirror):
    OwsHandler.folders = {'bio': BIO, 'bathy': mirror / 'emodnet-bathymetry'}
    with serve(OwsHandler) as url:
        yield url


def test_harvest_over_http_stores_the_coverages_in_the_mirror(tmp_path, live, mirror):
    home = tmp_path / 'home'
    home.mkdir()
    config = tmp_path / 'config.yml'     # the default config with ERDDAP on the loopback server
    config.write_text((REPO / 'pygeoapi-config.yml').read_text().replace(
        'https://erddap.emodnet.eu/', f'{live}/'))
    OwsHandler.hits.clear()
    report = run_harvest(home, 'emodnet-bathymetry', 'emodnet-biology',
                         '--url', f'emodnet-bathymetry={live}/',
                         '--url', f'emodnet-biology={live}/geoserver/Emodnetbio/',
                         extra_env={'VRE_CONFIG': str(config)})
    assert report['emodnet-bathymetry']['added'] == 2
    assert report['emodnet-biology']['added'] == 1
    assert report['emodnet-biology']['skipped'] == []
    # no DescribeCoverage of emodnet__mean was recorded: the loopback service answers 404,
    # which is reported while the capabilities and both subsets are harvested
    assert [s['granule'] for s in report['emodnet-bathymetry']['skipped']] == [
        'wcs?service=WCS&version=2.0.1&coverageId=emodnet__mean&request=DescribeCoverage']
    assert any('request=GetCoverage' in h for h in OwsHandler.hits)
    assert any(h.startswith('/erddap/griddap/bathymetry_2022.nc?') for h in OwsHandler.hits)
    kept = home / 'mirror'
    assert (kept / 'emodnet-wcs-wfs' / BIO_TIF.name).read_bytes() == BIO_TIF.read_bytes()
    for c in _config_coverages('emodnet-bathymetry'):
        assert (kept / 'emodnet-bathymetry' / c['file']).read_bytes() == \
            (mirror / 'emodnet-bathymetry' / c['file']).read_bytes()
    listed = {e['file'] for e in json.loads((kept / 'emodnet-wcs-wfs/MANIFEST.json').read_text())}
    assert BIO_TIF.name in listed and WFS_CAPS.name in listed
    # the stored mirror harvests to the same index rows as the HTTP run: nothing changed
    again = run_harvest(home, 'emodnet-biology', '--mirror', str(kept),
                        extra_env={'VRE_CONFIG': str(config)})['emodnet-biology']
    assert (again['added'], again['unchanged'], again['skipped']) == (0, 1, [])
    # and a server on that home serves the fetched GeoTIFF
    with start_server(home, extra_env={'VRE_CONFIG': str(config)}) as s:
        cj = cov(s, CAL, bbox='0,39.97,5.1,45').json()
        want, _, _ = rasterio_window(BIO_TIF, 2, (0, 39.97, 5.1, 45))
        np.testing.assert_array_equal(values(cj, 'relative_error'), want)


class ChemistryGeoServer(http.server.BaseHTTPRequestHandler):
    """EMODnet Chemistry's GeoServer at its live paths (/geoserver/emodnet/{wcs,wfs}). No answer
    of it is recorded offline (emodnet-chemistry/SOURCE.md: "responses in OGC formats identical
    to ../emodnet-wcs-wfs/"), so it answers with real GeoServer documents of the same stack:
    the Bathymetry WCS 2.0.1 and the Biology WFS 2.0.0 capabilities. NOT Chemistry content."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        q = {k.lower(): v for k, v in
             (p.split('=', 1) for p in urlsplit(self.path).query.split('&') if '=' in p)}
        path = urlsplit(self.path).path
        body = None
        if q.get('request') == 'GetCapabilities' and path == '/geoserver/emodnet/wcs':
            body = (BDI_DATA / 'emodnet-bathymetry/wcs_GetCapabilities_2.0.1.xml').read_bytes()
        elif q.get('request') == 'GetCapabilities' and path == '/geoserver/emodnet/wfs':
            body = WFS_CAPS.read_bytes()
        self.send_response(200 if body else 404)
        self.send_header('Content-Length', str(len(body or b'')))
        self.end_headers()
        self.wfile.write(body or b'')


def test_chemistry_geoserver_layers_are_level1_collections(tmp_path, bdi_data):
    ns = {'wcs': 'http://www.opengis.net/wcs/2.0', 'wfs': 'http://www.opengis.net/wfs/2.0'}
    wcs = etree.parse(str(bdi_data / 'emodnet-bathymetry/wcs_GetCapabilities_2.0.1.xml'))
    wfs = etree.parse(str(WFS_CAPS))
    want = ({c.text.replace(':', '-') for c in wcs.findall('.//wcs:CoverageId', ns)}
            | {f.text.replace(':', '-') for f in wfs.findall('.//wfs:FeatureType/wfs:Name', ns)})
    home = tmp_path / 'home'
    home.mkdir()
    with serve(ChemistryGeoServer) as url:
        report = run_harvest(home, 'emodnet-chemistry-ows', '--url',
                             f'emodnet-chemistry-ows={url}/geoserver/emodnet/')['emodnet-chemistry-ows']
    assert not report.get('error') and report['skipped'] == []
    import sqlite3
    with sqlite3.connect(home / 'index.sqlite') as db:
        got = {r[0] for r in db.execute(
            "SELECT id FROM collection WHERE bdi = 'emodnet-chemistry-ows'")}
    assert got == {f'emodnet-chemistry-ows-{w}' for w in want} and len(want) > 40
    kept = home / 'mirror/emodnet-chemistry-ows'
    assert (kept / 'wfs_GetCapabilities_2.0.0.xml').read_bytes() == WFS_CAPS.read_bytes()
    again = run_harvest(home, 'emodnet-chemistry-ows', '--mirror', str(home / 'mirror'))
    assert again['emodnet-chemistry-ows']['skipped'] == []
