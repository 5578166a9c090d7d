"""QGIS (PyQGIS 3.22 from Debian) against a real `vre serve`: the Argo profiles as an OAPIF
vector layer and a coverage's NetCDF output as a GDAL raster layer. PyQGIS runs only with the
system /usr/bin/python3, so the QGIS side is a child script that reports what QGIS sees as
JSON; this test compares that with the server's JSON and with xarray on the sample file.

CI: apt-get update && apt-get install -y --no-install-recommends qgis python3-qgis
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import requests
import xarray as xr

from bdi_samples import BDI_DATA
from serverkit import start_server

SYSTEM_PYTHON = '/usr/bin/python3'
GEBCO = BDI_DATA / 'erddap/coastwatch_griddap_GEBCO_2020_subset.nc'
SCALARS = ('platform_number', 'cycle_number', 'file_type', 'data_mode', 'time', 'granule')

QGIS_SCRIPT = r'''
import json, sys
from qgis.PyQt.QtCore import QDateTime, Qt
from qgis.core import QgsApplication, QgsPointXY, QgsRasterLayer, QgsVectorLayer


def plain(v):
    """An attribute as JSON: QDateTime as ISO UTC, lists kept, NULL as None."""
    if isinstance(v, QDateTime):
        return v.toUTC().toString(Qt.ISODate)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (str, int, float)) or v is None:
        return v
    return None if (hasattr(v, 'isNull') and v.isNull()) else str(v)


def summary(layer):
    """The layer's error messages (QgsError.summary() segfaults in PyQGIS 3.22)."""
    return ' '.join(m.message() for m in layer.error().messageList())


args = json.loads(sys.argv[1])
QgsApplication.setPrefixPath('/usr', True)
app = QgsApplication([], False)
app.initQgis()
out = {}
layer = QgsVectorLayer("url='%s' typename='argo-profiles'" % args['url'], 'argo', 'OAPIF')
out['valid'] = layer.isValid()
out['error'] = summary(layer)
out['count'] = layer.featureCount()
names = [f.name() for f in layer.fields()]
feats = {}
for f in layer.getFeatures():
    p = f.geometry().asPoint()
    feats[str(f['id'])] = {'attrs': {n: plain(f[n]) for n in names}, 'xy': [p.x(), p.y()]}
out['features'] = feats
raster = QgsRasterLayer('NETCDF:"%s":elevation' % args['netcdf'], 'gebco', 'gdal')
out['raster_valid'] = raster.isValid()
out['raster_error'] = summary(raster)
out['size'] = [raster.width(), raster.height()]
e = raster.extent()
out['extent'] = [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()]
out['samples'] = [raster.dataProvider().sample(QgsPointXY(x, y), 1)[0] for x, y in args['points']]
print(json.dumps(out))
del layer, raster               # layers must go before the providers are unloaded
app.exitQgis()
'''


def _qgis_missing() -> str | None:
    """Why PyQGIS cannot be used here, or None."""
    if not Path(SYSTEM_PYTHON).exists():
        return f'{SYSTEM_PYTHON} not found'
    proc = subprocess.run([SYSTEM_PYTHON, '-c', 'import qgis.core'], capture_output=True,
                          text=True, timeout=120, env=_qt_env())
    return None if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1]


def _qt_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME',
                                                            'VIRTUAL_ENV')}
    env.update(QT_QPA_PLATFORM='offscreen', XDG_RUNTIME_DIR=tempfile.mkdtemp(prefix='xdg-'))
    return env


@pytest.fixture(scope='module')
def qgis_server(tmp_path_factory, bdi_data):
    """A server with a harvested index (Argo etc.) whose mirror also holds the GEBCO grid."""
    why = _qgis_missing()
    if why:
        print(f'PyQGIS unavailable: {why}')
        pytest.skip(f'PyQGIS unavailable with {SYSTEM_PYTHON}: {why}')
    run_harvest = importlib.import_module('tests.providers.conftest').run_harvest
    home = tmp_path_factory.mktemp('qgis') / 'home'
    home.mkdir(parents=True)
    run_harvest(home, '--mirror', str(bdi_data))
    with start_server(home, extra_env={'VRE_BDI_MIRROR': str(bdi_data)}) as server:
        yield server


def test_qgis_reads_argo_oapif_and_coverage_netcdf(qgis_server, tmp_path):
    url = qgis_server.url
    served = requests.get(f'{url}/collections/argo-profiles/items',
                          params={'limit': 10000}, timeout=60).json()
    assert served['numberMatched'] > 0
    nc = tmp_path / 'gebco.nc'
    r = requests.get(f'{url}/collections/bathymetry-gebco-2020/coverage',
                     params={'bbox': '95,-63,97,-62', 'f': 'netcdf'}, timeout=60)
    assert r.status_code == 200, r.text
    nc.write_bytes(r.content)
    points = [(95.3, -62.8), (96.71, -62.13)]
    proc = subprocess.run([SYSTEM_PYTHON, '-c', QGIS_SCRIPT, json.dumps(
        {'url': url, 'netcdf': str(nc), 'points': points})],
        capture_output=True, text=True, timeout=600, env=_qt_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])

    # (1) the OAPIF layer: valid, as many features as the server matches, same attributes
    assert seen['valid'], seen['error']
    assert seen['count'] == served['numberMatched']
    assert len(seen['features']) == served['numberMatched']
    one = served['features'][len(served['features']) // 2]
    got = seen['features'][one['id']]
    compared = 0
    for key, want in one['properties'].items():
        if key not in got['attrs'] or isinstance(want, dict):
            continue
        have = got['attrs'][key]
        if key == 'time':
            have, want = have.replace('.000', '').rstrip('Z'), want.rstrip('Z')
        if isinstance(want, list) and have is None and all(v is None for v in want):
            continue                          # QGIS reads [] and [null, ...] as NULL
        if isinstance(want, list) and want and isinstance(want[0], float):
            assert have == pytest.approx(want, nan_ok=True), key
        else:
            assert have == want, key
        compared += 1
    assert compared >= len(SCALARS)
    assert got['xy'] == pytest.approx(one['geometry']['coordinates'], abs=1e-9)

    # (2) the coverage's NetCDF output as a GDAL raster layer
    assert seen['raster_valid'], seen['raster_error']
    with xr.open_dataset(GEBCO) as ds:
        lat, lon = ds.latitude.values, ds.longitude.values
        rows = np.flatnonzero((lat >= -63) & (lat <= -62))
        cols = np.flatnonzero((lon >= 95) & (lon <= 97))
        assert seen['size'] == [cols.size, rows.size]
        half = float(lon[1] - lon[0]) / 2
        assert seen['extent'] == pytest.approx(
            [lon[cols[0]] - half, lat[rows[0]] - half, lon[cols[-1]] + half,
             lat[rows[-1]] + half], abs=1e-6)
        for (x, y), value in zip(points, seen['samples']):
            assert value == float(ds.elevation.sel(longitude=x, latitude=y, method='nearest'))
