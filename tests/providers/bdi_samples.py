"""Helpers reading the shared BDI samples directly (not through providers/), for comparisons."""
from __future__ import annotations

import functools
from pathlib import Path

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
