"""Helpers reading the shared BDI samples directly (not through providers/), for comparisons."""
from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

from serverkit import VRE

BDI_DATA = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data' / 'bdi'


@functools.lru_cache
def argo_profiles_on_disk() -> list[dict]:
    """Every profile of every Argo file that the mirror's indexes list and holds, read with
    xarray (independently of providers/argo.py)."""
    import xarray as xr
    from providers.argo import INDEXES, parse_index
    out = []
    for name, (_, ftype) in INDEXES.items():
        for row in parse_index((BDI_DATA / 'argo/index' / name).read_text()):
            f = BDI_DATA / 'argo/dac' / row['file']
            if not f.exists():
                continue
            with xr.open_dataset(f, decode_times=True) as ds:
                for i in range(ds.sizes['N_PROF']):
                    out.append({'id': f'{f.stem}_{i}', 'file': f, 'i': i, 'file_type': ftype,
                                'lon': float(ds.LONGITUDE[i]), 'lat': float(ds.LATITUDE[i]),
                                'time': ds.JULD[i].values.astype('datetime64[s]').item()})
    return out


def run_harvest(home: Path, *args: str, extra_env: dict | None = None) -> dict:
    """`vre harvest ... --json` in a child process with VRE_HOME=home; the parsed report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('VRE_', 'PYGEOAPI_'))}
    env['VRE_HOME'] = str(home)
    env.update(extra_env or {})
    proc = subprocess.run([VRE, 'harvest', *args, '--json'], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def get_json(server, path: str, **params):
    """GET a path of a running server; asserts 200 and answers the JSON."""
    import requests
    r = requests.get(f'{server.url}{path}', params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def coverage(server, coll: str, **params):
    """GET /collections/{coll}/coverage of a running server; asserts 200."""
    import requests
    r = requests.get(f'{server.url}/collections/{coll}/coverage', params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r


def values(cj: dict, name: str):
    """A CoverageJSON range as a float array of its shape (null as NaN)."""
    import numpy as np
    return np.array([np.nan if v is None else v for v in cj['ranges'][name]['values']],
                    dtype='f8').reshape(cj['ranges'][name]['shape'])
