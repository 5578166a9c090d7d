"""Fixtures for the BDI tests: the samples served at the live services' paths, and a real
`vre serve` whose index was harvested from the mirror (../shared/data/bdi)."""
from __future__ import annotations

import email.utils

import http.server
import io
import json
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bdi_samples import run_harvest  # noqa: F401  (used below and by test modules)
from serverkit import serve


def _root_conftest():
    # 'tests' as a package name is taken by an installed distribution; load ours by path
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'vre_root_conftest', Path(__file__).resolve().parents[1] / 'conftest.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_ROOT = _root_conftest()
BDI_DATA, VRE, start_server = _ROOT.BDI_DATA, _ROOT.VRE, _ROOT.start_server


def _obis_manifest() -> dict[str, Path]:
    entries = json.loads((BDI_DATA / 'obis/api_v3/MANIFEST.json').read_text())
    out = {}
    for e in entries:
        parts = urlsplit(e['uri'])
        out[parts.path + ('?' + parts.query if parts.query else '')] = \
            BDI_DATA / 'obis/api_v3' / e['file']
    return out


def _dwca_zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        for p in sorted(folder.iterdir()):
            zf.writestr(p.name, p.read_bytes())
    return buf.getvalue()


def _seadatanet(rel: str) -> tuple[bytes, float] | None:
    root = BDI_DATA / 'seadatanet'
    if rel == 'report/aggregation':
        f = root / 'cdi_metadata/cdi_aggregation_listing_cdiGroup.xml'
        return f.read_bytes(), f.stat().st_mtime
    parts = rel.split('/')
    if len(parts) == 4 and parts[:2] == ['cdi_aggregation', 'seadatanet'] and \
            parts[3] == 'details.xml':
        found = sorted((root / 'cdi_metadata').glob(f'cdi_iso19139_{parts[2]}_*.xml'))
        return (found[0].read_bytes(), found[0].stat().st_mtime) if found else None
    if parts[0] in ('netcdf', 'odv', 'cdi_metadata') and '..' not in parts:
        target = root / rel
        if rel.endswith('/') and target.is_dir():   # an autoindex page, as web servers give
            links = ''.join(f'<a href="{p.name}">{p.name}</a>\n' for p in sorted(target.iterdir()))
            return f'<html><body><a href="../">../</a>\n{links}</body></html>'.encode(), \
                target.stat().st_mtime
        if target.is_file():
            return target.read_bytes(), target.stat().st_mtime
    return None


class LiveHandler(http.server.BaseHTTPRequestHandler):
    """Answers as the live BDIs do, from the recorded samples:
    /argo/...   GDAC root (index files at the root, dac/ tree),
    /obis/v3/.. OBIS API v3 (exact recorded URIs from MANIFEST.json),
    /eurobis/archive.do?r=NAME  the EurOBIS IPT's DwC-A zip,
    /seadatanet/report/aggregation  the CDI aggregation listing (cdiGroup),
    /seadatanet/cdi_aggregation/seadatanet/<id>/details.xml  a CDI record,
    /seadatanet/{netcdf,odv,cdi_metadata}/  data folders with an HTML index page."""

    obis = None

    def log_message(self, *args):
        pass

    def _resolve(self) -> tuple[bytes, float] | None:
        path = self.path
        if path.startswith('/argo/'):
            rel = path[len('/argo/'):].split('?')[0]
            for cand in (BDI_DATA / 'argo' / rel, BDI_DATA / 'argo/index' / rel):
                if cand.is_file():
                    return cand.read_bytes(), cand.stat().st_mtime
            return None
        if path.startswith('/obis/'):
            f = self.obis.get(path[len('/obis'):])
            return (f.read_bytes(), f.stat().st_mtime) if f and f.is_file() else None
        if path.startswith('/seadatanet/'):
            return _seadatanet(path[len('/seadatanet/'):].split('?')[0])
        if path.startswith('/eurobis/archive.do?r='):
            folder = BDI_DATA / 'eurobis' / path.split('=', 1)[1]
            if folder.is_dir() and '/' not in path.split('=', 1)[1]:
                return _dwca_zip(folder), max(p.stat().st_mtime for p in folder.iterdir())
        return None

    def _answer(self, body: bool):
        found = self._resolve()
        if found is None:
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        data, mtime = found
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Last-Modified', email.utils.formatdate(mtime, usegmt=True))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)


@pytest.fixture(scope='session')
def live_bdis(bdi_data):
    """Base URL of a loopback server answering at the BDIs' live paths."""
    LiveHandler.obis = _obis_manifest()
    with serve(LiveHandler) as url:
        yield url


@pytest.fixture(scope='module')
def bdi_server(tmp_path_factory, bdi_data):
    """A real server whose index was harvested from the shared mirror."""
    home = tmp_path_factory.mktemp('bdi') / 'home'
    home.mkdir(parents=True)
    report = run_harvest(home, '--mirror', str(bdi_data))
    with start_server(home) as server:
        server.harvest_report = report
        yield server


@pytest.fixture
def index_url(tmp_path):
    return f'sqlite:///{tmp_path}/index.sqlite'
