"""NetCDF helpers shared by the connectors that read NetCDF granules (Argo, SeaDataNet)."""
from __future__ import annotations

import contextlib

import netCDF4
import numpy as np

from providers.base import GranuleError


@contextlib.contextmanager
def open_bytes(data: bytes, name: str, need: tuple[str, ...], what: str):
    """A NetCDF file held in memory (masked values on); GranuleError if unreadable or if one of
    the variables `need` is missing, so the harvest reports it and goes on."""
    try:
        ds = netCDF4.Dataset(name, mode='r', memory=data)
    except OSError as err:
        raise GranuleError(f'not a readable NetCDF file: {err}') from None
    try:
        ds.set_auto_mask(True)
        for n in need:
            if n not in ds.variables:
                raise GranuleError(f'not {what}: no {n} variable')
        yield ds
    finally:
        ds.close()


def floats(var, i) -> list:
    """Values of var[i] as a list, None where missing."""
    arr = np.ma.masked_invalid(np.ma.atleast_1d(np.ma.asarray(var[i], dtype='f8')))
    return [None if m else round(float(v), 6) for v, m in zip(arr.data, np.ma.getmaskarray(arr))]


def trim(levels: dict) -> None:
    """Drop trailing levels where every list is missing (the level dimension is the file max)."""
    arrays = [a for a in levels.values() if isinstance(a, list)]
    n = max((len(a) for a in arrays), default=0)
    while n and all(len(a) < n or a[n - 1] is None for a in arrays):
        n -= 1
    for k, a in levels.items():
        levels[k] = a[:n]
