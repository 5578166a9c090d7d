"""Helpers of the order tests (loaded by conftest.py as `orderkit`): the providers' loopback
stand-in of the BDIs, able to answer 503 for one BDI; a config whose BDIs point at it; the
harvest over HTTP; waiting for a job."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# the providers' stand-in of the live BDIs (tests/providers/conftest.py), reused as is
_PROVIDERS = _load('vre_providers_conftest', HERE.parent / 'providers' / 'conftest.py')
LiveHandler, BDI_DATA = _PROVIDERS.LiveHandler, _PROVIDERS.BDI_DATA
start_server, VRE = _PROVIDERS.start_server, _PROVIDERS.VRE
REPO = HERE.parents[1]

ORDERED_BDIS = ['argo', 'obis', 'seadatanet']      # eurobis is harvested but not orderable


class StandIn(LiveHandler):
    """LiveHandler, plus: path prefixes in `failing` answer 503 (a BDI that is down)."""
    failing: set = set()

    def _answer(self, body: bool):
        if any(self.path.startswith(p) for p in self.failing):
            self.send_response(503)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        super()._answer(body)


def obis_queries() -> list[str]:
    entries = json.loads((BDI_DATA / 'obis/api_v3/MANIFEST.json').read_text())
    keys = []
    for e in entries:
        parts = urlsplit(e['uri'])
        if parts.path == '/v3/occurrence' and e.get('status', 200) == 200:
            keys.append(parts.path.lstrip('/') + '?' + parts.query)
    return keys


def write_config(path: Path, stand_in: str) -> Path:
    """The repository config with every BDI at the stand-in and quick order retries."""
    config = yaml.safe_load((REPO / 'pygeoapi-config.yml').read_text())
    config['vre']['bdis'] = {
        'every': 0,
        'argo': {'url': f'{stand_in}/argo/'},
        'seadatanet': {'url': f'{stand_in}/seadatanet/'},
        'obis': {'url': f'{stand_in}/obis/', 'queries': obis_queries()},
        'eurobis': {'url': f'{stand_in}/eurobis/', 'resources': ['esas_dwca_sample']},
    }
    config['resources']['order']['processor'].update(
        retries=2, backoff=0.2, timeout=10, bdis=ORDERED_BDIS)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def harvest(home: Path, config: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('VRE_', 'PYGEOAPI_'))}
    env.update(VRE_HOME=str(home), VRE_CONFIG=str(config))
    proc = subprocess.run([VRE, 'harvest', '--json'], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def wait_for(server, job_id, user='alice', timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        doc = requests.get(f'{server.url}/jobs/{job_id}', headers=server.auth(user),
                           timeout=30).json()
        if doc['status'] in ('successful', 'failed', 'dismissed'):
            return doc
        assert time.monotonic() < deadline, f'order {job_id} still {doc["status"]}'
        time.sleep(0.1)
