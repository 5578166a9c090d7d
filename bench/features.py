"""Features query benchmark: our index (IndexFeatures) against pygeoapi's stock SQLite/GeoPackage
and CSV providers on the same 1,000,000 Argo-like observations.

Why: DESIGN.md asks that answers come from an indexed store; this shows what that buys for the
commonest request (bbox + datetime, 1,000 features). All three providers are called in-process
through their `query()`; the stock ones ignore `datetime` (they filter by bbox only), so they
are given the same bbox and do less filtering work than ours. Ours is also measured through a
running `vre serve` over loopback HTTP (the index as VRE_INDEX_DB).

    .venv/bin/python bench/features.py [--rows 1000000] [--dir /tmp/vre-bench] [--runs 30]

Needs ogr2ogr (Debian gdal-bin) to build the GeoPackage, mod_spatialite (Debian
libsqlite3-mod-spatialite) for the stock SQLite provider, and pysqlite3-binary where Python's
own sqlite3 cannot load extensions (then used for the stock provider only).
"""
from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from providers import store
from providers.index import IndexFeatures

T0 = datetime(2015, 1, 1)


def tracks(n_rows: int, seed: int = 42):
    """Float tracks: random start positions, a random walk per 10-day cycle, starts over years."""
    rng = np.random.default_rng(seed)
    cycles = 250
    floats = n_rows // cycles
    lon0 = rng.uniform(-180, 180, floats)
    lat0 = rng.uniform(-60, 60, floats)
    start = rng.uniform(0, 365 * 4, floats)
    steps = rng.normal(0, 0.08, (2, floats, cycles)).cumsum(axis=2)
    lon = (lon0[:, None] + steps[0] + 180) % 360 - 180
    lat = np.clip(lat0[:, None] + steps[1], -80, 80)
    days = start[:, None] + 10 * np.arange(cycles)[None, :] + rng.uniform(0, 0.5, (floats, cycles))
    for f in range(floats):
        wmo = str(1900000 + f)
        for c in range(cycles):
            t = (T0 + timedelta(days=float(days[f, c]))).strftime('%Y-%m-%dT%H:%M:%SZ')
            yield {'id': f'{wmo}_{c:03d}', 'platform': wmo, 'cycle': c, 'time': t,
                   'lon': round(float(lon[f, c]), 5), 'lat': round(float(lat[f, c]), 5),
                   'data_mode': 'D' if c < 200 else 'R'}


def build(folder: Path, n_rows: int) -> tuple[str, Path, Path]:
    """Our index (SQLite + R*Tree), a CSV and a GeoPackage (via ogr2ogr) of the same rows."""
    folder.mkdir(parents=True, exist_ok=True)
    db, csv_path, gpkg = folder / 'index.sqlite', folder / 'obs.csv', folder / 'obs.gpkg'
    url = f'sqlite:///{db}'
    if not db.exists():
        eng = store.engine(url)
        batch = []
        with open(csv_path, 'w', newline='') as fh, eng.begin() as conn:
            out = csv.writer(fh)
            out.writerow(['id', 'lon', 'lat', 'time', 'platform_number', 'cycle_number',
                          'data_mode'])
            for r in tracks(n_rows):
                out.writerow([r['id'], r['lon'], r['lat'], r['time'], r['platform'],
                              r['cycle'], r['data_mode']])
                batch.append(dict(r, bdi='argo', collection='argo-profiles', kind='core',
                                  granule=r['id'], parameters='PRES TEMP PSAL', qc='1'))
                if len(batch) == 20000:
                    store.upsert(conn, store.OBSERVATION, batch)
                    batch = []
            store.upsert(conn, store.OBSERVATION, batch)
    if not gpkg.exists():
        subprocess.run(['ogr2ogr', '-f', 'GPKG', str(gpkg), str(csv_path), '-nln', 'obs',
                        '-oo', 'X_POSSIBLE_NAMES=lon', '-oo', 'Y_POSSIBLE_NAMES=lat',
                        '-oo', 'AUTODETECT_TYPE=YES', '-a_srs', 'EPSG:4326'], check=True)
    return url, csv_path, gpkg


def queries(n: int, seed: int = 7):
    """Random 20x20 degree boxes with a one-year window (each matches well over 1,000 rows)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x, y = rng.uniform(-170, 130), rng.uniform(-55, 35)
        year = int(rng.integers(2016, 2020))
        yield [round(x, 2), round(y, 2), round(x + 40, 2), round(y + 20, 2)], \
            f'{year}-01-01T00:00:00Z/{year}-12-31T23:59:59Z'


def measure(provider, runs: int) -> dict:
    times, returned = [], []
    for bbox, dt in queries(runs):
        t = time.perf_counter()
        fc = provider.query(bbox=bbox, datetime_=dt, limit=1000)
        times.append(time.perf_counter() - t)
        returned.append(len(fc['features']))
    times.sort()
    return {'p50': statistics.median(times) * 1000,
            'p95': times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))] * 1000,
            'items_s': sum(returned) / sum(times), 'returned': min(returned), 'runs': runs}


def measure_http(base_url: str, runs: int) -> dict:
    """The same queries to a running `vre serve` over loopback: what a client waits for
    (request, query, GeoJSON of 1,000 features, transfer)."""
    import requests
    session = requests.Session()
    session.get(f'{base_url}/collections/argo-profiles/items', params={'limit': 1})
    times, returned = [], []
    for bbox, dt in queries(runs):
        t = time.perf_counter()
        r = session.get(f'{base_url}/collections/argo-profiles/items', params={
            'bbox': ','.join(map(str, bbox)), 'datetime': dt, 'limit': 1000, 'f': 'json'})
        n = len(r.json()['features'])
        times.append(time.perf_counter() - t)
        returned.append(n)
    times.sort()
    return {'p50': statistics.median(times) * 1000,
            'p95': times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))] * 1000,
            'items_s': sum(returned) / sum(times), 'returned': min(returned), 'runs': runs}


def over_http(url: str, runs: int) -> dict:
    import sys
    import tempfile
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests'))
    from serverkit import start_server
    with tempfile.TemporaryDirectory(prefix='vre-bench-features-home-') as home:
        with start_server(Path(home), extra_env={'VRE_INDEX_DB': url}) as server:
            return measure_http(server.url, runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rows', type=int, default=1_000_000)
    ap.add_argument('--dir', type=Path, default=Path('/tmp/vre-bench-features'))
    ap.add_argument('--runs', type=int, default=30)
    ap.add_argument('--csv-runs', type=int, default=5)
    args = ap.parse_args()
    if not shutil.which('ogr2ogr'):
        raise SystemExit('ogr2ogr not found: apt-get install gdal-bin')
    t = time.perf_counter()
    url, csv_path, gpkg = build(args.dir, args.rows)
    print(f'data: {args.rows} rows in {args.dir} (built/loaded in {time.perf_counter() - t:.0f} s)')
    from pygeoapi.provider import sqlite as stock_sqlite
    from pygeoapi.provider.csv_ import CSVProvider
    from pygeoapi.provider.sqlite import SQLiteGPKGProvider
    try:   # the stock provider loads mod_spatialite; some Python builds cannot load extensions
        import pysqlite3.dbapi2
        stock_sqlite.sqlite3 = pysqlite3.dbapi2
    except ImportError:
        pass
    base = {'name': 'bench', 'type': 'feature', 'id_field': 'id'}
    providers = [
        ('ours: IndexFeatures (SQLite R*Tree + time index)', args.runs,
         lambda: IndexFeatures(dict(base, data=url, options={'bdi': 'argo'}))),
        ('pygeoapi SQLiteGPKGProvider (GeoPackage)', args.runs,
         lambda: SQLiteGPKGProvider(dict(base, data=str(gpkg), table='obs'))),
        ('pygeoapi CSVProvider', args.csv_runs,
         lambda: CSVProvider(dict(base, data=str(csv_path),
                                  geometry={'x_field': 'lon', 'y_field': 'lat'}))),
    ]
    rows = []
    for label, runs, make in providers:
        prov = make()
        prov.query(limit=1)    # warm-up: first connection, page cache
        rows.append((label, measure(prov, runs)))
    rows.insert(1, ('ours over HTTP: vre serve, GeoJSON', over_http(url, args.runs)))
    print(f"{'provider':52} {'p50 ms':>9} {'p95 ms':>9} {'items/s':>10} {'min n':>6} {'runs':>5}")
    for label, m in rows:
        print(f"{label:52} {m['p50']:9.1f} {m['p95']:9.1f} {m['items_s']:10.0f} "
              f"{m['returned']:6d} {m['runs']:5d}")
    ours, http, gpkg_, csv_ = (r[1] for r in rows)
    print(f"ours vs CSV: {csv_['p50'] / ours['p50']:.0f}x faster at p50 in-process, "
          f"{csv_['p50'] / http['p50']:.0f}x over HTTP; ours vs GeoPackage: "
          f"{gpkg_['p50'] / ours['p50']:.1f}x")


if __name__ == '__main__':
    main()
