"""The base map of the HTML pages comes from this server (providers/basemap.py): XYZ tiles drawn
from the real GEBCO 2020 griddap grid of the shared mirror, Leaflet served locally, pygeoapi's
pages without CDN links (templates/), the map URL following VRE_PUBLIC_URL. Checked with a
real server and a real headless browser (Debian chromium) whose network log must name only
loopback URLs.
"""
from __future__ import annotations

import html.parser
import io
import json
import math
import shutil
import subprocess
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
import xarray as xr
from PIL import Image

from bdi_samples import BDI_DATA
from serverkit import free_port, start_server

GEBCO = BDI_DATA / 'erddap/coastwatch_griddap_GEBCO_2020_subset.nc'
PAGES = ['/collections/bathymetry-gebco-2020', '/collections/bdi-collections/items',
         '/collections/bdi-collections/items/bathymetry-gebco-2020']
LOOPBACK = {'localhost', '127.0.0.1'}


@pytest.fixture(scope='module')
def server(tmp_path_factory, bdi_data):
    """A server whose public URL (VRE_PUBLIC_URL) is not the address it binds to."""
    home = tmp_path_factory.mktemp('basemap') / 'home'
    port = free_port()
    with start_server(home, port=port, extra_env={
            'VRE_BDI_MIRROR': str(bdi_data), 'VRE_PUBLIC_URL': f'http://localhost:{port}'}) as s:
        s.public = f'http://localhost:{port}'
        yield s


class Refs(html.parser.HTMLParser):
    """URLs a page makes a browser load: script/img src, stylesheet/icon href."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ('script', 'img', 'iframe') and a.get('src'):
            self.urls.append(a['src'])
        if tag == 'link' and a.get('rel') in ('stylesheet', 'icon', 'shortcut icon'):
            self.urls.append(a['href'])


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int, int]:
    """Tile x, y and pixel column, row of a position (Web Mercator, 256-pixel tiles)."""
    n = 2 ** z * 256
    px = (lon + 180) / 360 * n
    py = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int(px // 256), int(py // 256), int(px % 256), int(py % 256)


def colours_of(pic: Image.Image) -> np.ndarray:
    return np.unique(np.asarray(pic).reshape(-1, 3), axis=0)


def tile(server, z, x, y) -> Image.Image:
    r = requests.get(f'{server.url}/basemap/{z}/{x}/{y}.png', timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers['Content-Type'] == 'image/png'
    pic = Image.open(io.BytesIO(r.content))
    assert pic.format == 'PNG' and pic.size == (256, 256)
    return pic.convert('RGB')


def test_pages_reference_no_external_host(server):
    for path in PAGES:
        r = requests.get(f'{server.url}{path}', params={'f': 'html'}, timeout=30)
        assert r.status_code == 200 and r.headers['Content-Type'].startswith('text/html'), path
        assert 'openstreetmap' not in r.text and 'unpkg.com' not in r.text
        assert f'{server.public}/basemap/{{z}}/{{x}}/{{y}}.png' in r.text     # VRE_PUBLIC_URL
        assert 'GEBCO 2020' in r.text                                           # attribution
        refs = Refs()
        refs.feed(r.text)
        assert f'{server.public}/basemap/leaflet/leaflet.js' in refs.urls
        assert {urlsplit(u).hostname for u in refs.urls} <= LOOPBACK, refs.urls


def test_leaflet_is_served_locally(server):
    js = requests.get(f'{server.url}/basemap/leaflet/leaflet.js', timeout=30)
    css = requests.get(f'{server.url}/basemap/leaflet/leaflet.css', timeout=30)
    assert js.status_code == css.status_code == 200
    assert 'Leaflet' in js.text[:300] and '.leaflet-container' in css.text


def test_deep_sea_and_land_tiles_differ(server):
    with xr.open_dataset(GEBCO) as ds:
        e = ds.elevation
        deep = e.where(e == e.min(), drop=True)
        high = e.where(e == e.max(), drop=True)
        deep = float(deep.longitude[0]), float(deep.latitude[0]), float(e.min())
        high = float(high.longitude[0]), float(high.latitude[0]), float(e.max())
    assert deep[2] < -4000 and high[2] > 1000
    colours = []
    for lon, lat, _ in (deep, high):
        x, y, col, row = tile_of(lon, lat, 6)
        colours.append(tile(server, 6, x, y).getpixel((col, row)))
    (dr, dg, db), (lr, lg, lb) = colours
    assert db > dr and db > dg              # deep sea: blue
    assert lr > lb or lg > lb               # land: not blue
    assert colours[0] != colours[1]


def test_outside_the_grid_is_plain_ocean_and_tiles_are_cached(server):
    x, y, _, _ = tile_of(10, 45, 4)              # Europe: far from the GEBCO subset
    pic = tile(server, 4, x, y)
    assert len(colours_of(pic)) == 1
    with xr.open_dataset(GEBCO) as ds:
        x, y, _, _ = tile_of(float(ds.longitude.mean()), float(ds.latitude.mean()), 3)
    first = requests.get(f'{server.url}/basemap/3/{x}/{y}.png', timeout=60)
    assert len(colours_of(Image.open(io.BytesIO(first.content)).convert('RGB'))) > 50
    assert 'max-age' in first.headers['Cache-Control']
    assert requests.get(f'{server.url}/basemap/3/{x}/{y}.png', timeout=60).content == \
        first.content


@pytest.mark.parametrize('path', ['/basemap/15/0/0.png', '/basemap/3/8/0.png',
                                  '/basemap/3/0/9.png', '/basemap/3/-1/0.png',
                                  '/basemap/a/b/c.png', '/basemap/leaflet/nope.js'])
def test_bad_tiles_are_404_problems(server, path):
    r = requests.get(f'{server.url}{path}', timeout=30)
    assert r.status_code == 404
    assert r.headers['Content-Type'] == 'application/problem+json'


def chromium_requests(url: str, tmp_path) -> tuple[list[str], str]:
    """The URLs a headless Chromium requested for the page at url (from its net log), and
    the DOM after scripts ran. The page's requests are those of its network partition (the
    top frame's site): Chromium's own background calls (component updates, time, accounts)
    carry another partition and are not the page's."""
    exe = shutil.which('chromium')
    if exe is None:
        pytest.fail('Debian chromium is needed: apt-get install -y chromium')
    log = tmp_path / 'net.json'
    proc = subprocess.run(
        [exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--no-first-run', '--disable-sync',
         f'--user-data-dir={tmp_path}/chrome', f'--log-net-log={log}',
         '--window-size=1200,900', '--virtual-time-budget=15000', '--dump-dom', url],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    netlog = json.loads(log.read_text())
    start = netlog['constants']['logEventTypes']['URL_REQUEST_START_JOB']
    parts = urlsplit(url)
    site = f'{parts.scheme}://{parts.hostname}'
    urls = sorted({e['params']['url'] for e in netlog['events']
                   if e['type'] == start and 'params' in e and
                   str(e['params'].get('network_isolation_key', '')).split(' ')[0] == site})
    return urls, proc.stdout


@pytest.mark.parametrize('path', PAGES[:2])
def test_page_in_headless_chromium_requests_only_loopback(server, tmp_path, path):
    urls, dom = chromium_requests(f'{server.public}{path}?f=html', tmp_path)
    assert f'{server.public}{path}?f=html' in urls
    assert {urlsplit(u).hostname for u in urls} <= LOOPBACK, urls
    tiles = [u for u in urls if '/basemap/' in u and u.endswith('.png')]
    assert tiles, urls                                   # Leaflet drew the map from our tiles
    assert any(u.endswith('/basemap/leaflet/leaflet.js') for u in urls)
    assert 'leaflet-tile' in dom and 'leaflet-container' in dom
    for u in tiles[:3]:
        z, x, y = (int(v) for v in urlsplit(u).path.rsplit('.', 1)[0].split('/')[-3:])
        assert 0 <= x < 2 ** z and 0 <= y < 2 ** z
        assert np.asarray(tile(server, z, x, y)).size == 256 * 256 * 3
