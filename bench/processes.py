"""Processes through a running `vre serve`: `subset` of a grid against the same cut done
directly with xarray, and `variational-analysis` run times for growing grids and
observation counts.

    .venv/bin/python bench/processes.py [--runs 16] [--grid 2400x3600]

Inputs are synthetic files in a temporary folder, served over loopback HTTP (as a data host
would serve them) and read by reference, and the grid also as a collection of the server,
read in place. Goal: subset within 1.3x of xarray (bench/README.md).
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))
from serverkit import serve_folder, start_server  # noqa: E402

# this file is named like the `processes` package: take bench/ off the path to import it
sys.path[:] = [p for p in sys.path if Path(p or '.').resolve() != Path(__file__).resolve().parent]
from processes.base import JobContext  # noqa: E402
from processes.subset import SubsetProcess  # noqa: E402

BOXES = {'small': [10.0, 20.0, 40.0, 50.0],      # 400 x 300 cells, 0.5 MB
         'medium': [-60.0, -30.0, 60.0, 60.0],   # 1200 x 1200 cells, 5.8 MB
         'large': [-150.0, -60.0, 150.0, 75.0]}  # 1800 x 3000 cells, 21.6 MB
BOX = BOXES['small']


def make_grid(path: Path, ny: int, nx: int) -> None:
    lat = np.linspace(-89.975, 89.975, ny)
    lon = np.linspace(-179.975, 179.975, nx)
    field = (20 * np.cos(np.radians(lat))[:, None] + np.sin(np.radians(lon))[None, :]
             + np.random.default_rng(0).normal(0, 0.1, (ny, nx))).astype('float32')
    xr.Dataset({'sst': (('lat', 'lon'), field, {'units': 'degC'})},
               coords={'lat': ('lat', lat, {'standard_name': 'latitude'}),
                       'lon': ('lon', lon, {'standard_name': 'longitude'})}
               ).to_netcdf(path, engine='netcdf4')


def direct_cut(path: Path, out: Path, box=BOX) -> float:
    """What a notebook does: open the file, cut, write the cut."""
    t0 = time.perf_counter()
    with xr.open_dataset(path) as ds:
        cut = ds.sel(lon=slice(box[0], box[2]), lat=slice(box[1], box[3]))
        cut.to_netcdf(out, engine='netcdf4')
    return time.perf_counter() - t0


def open_cut(ds: xr.Dataset, out: Path, box=BOX) -> float:
    """The same cut from a dataset a notebook already holds open (for comparison only)."""
    t0 = time.perf_counter()
    ds.sel(lon=slice(box[0], box[2]), lat=slice(box[1], box[3])).to_netcdf(out, engine='netcdf4')
    return time.perf_counter() - t0


def fetched_cut(data_url: str, folder: Path) -> float:
    """The fair baseline for a by-reference input: download the file, then cut it."""
    t0 = time.perf_counter()
    with requests.get(f'{data_url}/grid.nc', stream=True, timeout=300) as r, \
            open(folder / 'fetched.nc', 'wb') as fh:
        for chunk in r.iter_content(1 << 20):
            fh.write(chunk)
    direct_cut(folder / 'fetched.nc', folder / 'direct2.nc')
    return time.perf_counter() - t0


def in_process(data_url: str, folder: Path) -> float:
    """subset's run() called here: the process alone, without the job machinery."""
    work = Path(tempfile.mkdtemp(dir=folder))
    ctx = JobContext('bench', None, work, 1 << 30, lambda p, m: None)
    t0 = time.perf_counter()
    SubsetProcess({'name': 'subset'}).run({'data': {'href': f'{data_url}/grid.nc'},
                                           'bbox': BOX}, ctx)
    return time.perf_counter() - t0


AUTH: dict = {}      # the bench runs as one user, who may delete the outputs afterwards
HTTP = requests.Session()   # one connection kept alive, as a notebook's client keeps it


def _execute(url: str, process: str, body: dict) -> requests.Response:
    r = HTTP.post(f'{url}/processes/{process}/execution', timeout=900, json=body,
                  headers=AUTH, stream=True)
    if r.status_code != 200:
        raise RuntimeError(f'{process}: {r.status_code} {r.text[:300]}')
    return r


def body(r: requests.Response) -> bytes:
    """The whole body in one read, as a client saving a file does (`.content` reads 10 kB at
    a time: 70 ms for 21.6 MB here, against 10 ms)."""
    data = r.raw.read(decode_content=True)
    r.raw.release_conn()                # read to the end: the connection serves the next call
    return data


def download(href: str) -> bytes:
    return body(HTTP.get(href, timeout=300, stream=True))


def forget(response: requests.Response) -> None:
    """Once the clock has stopped: wait for the worker to record the output's checksum
    (it hashes the file after the answer; that work must not land on the next timed run),
    then delete the output from the volatile tier, as the direct cut overwrites its one
    file: both sides start each run with the same page cache (on this VM writing pages not
    written before costs about 1 ms per MB more)."""
    job = response.headers['Location']
    results = HTTP.get(f'{job}/results', headers=AUTH, timeout=60).json()
    for r in results.values():
        if '/storage/volatile/' in str(r.get('href', '')):
            deadline = time.monotonic() + 30
            while 'Digest' not in HTTP.head(r['href'], timeout=60).headers:
                assert time.monotonic() < deadline, 'the output was never hashed'
                time.sleep(0.005)
            HTTP.delete(r['href'], headers=AUTH, timeout=60).raise_for_status()


def server_run(url: str, process: str, inputs: dict, output: str):
    """Sync execute with the output by reference, then its download: what a client waits."""
    t0 = time.perf_counter()
    r = _execute(url, process, {'inputs': inputs, 'response': 'document',
                                'outputs': {output: {'transmissionMode': 'reference'}}})
    data = download(r.json()[output]['href'])
    return time.perf_counter() - t0, data, r


def server_raw(url: str, process: str, inputs: dict, output: str):
    """Sync execute answered with the output itself (response=raw, the default): one round
    trip; the output is still stored in the volatile tier."""
    t0 = time.perf_counter()
    r = _execute(url, process, {'inputs': inputs, 'outputs': {output: {}}})
    return time.perf_counter() - t0, body(r), r


def server_stored(url: str, process: str, inputs: dict, output: str):
    """Sync execute with the output by reference, not downloaded: the cut stored in the
    volatile tier for the next step (what the direct cut writing a local file compares
    with); the bytes are fetched after the clock stops, to check them."""
    t0 = time.perf_counter()
    r = _execute(url, process, {'inputs': inputs, 'response': 'document',
                                'outputs': {output: {'transmissionMode': 'reference'}}})
    seconds = time.perf_counter() - t0
    return seconds, download(r.json()[output]['href']), r


def in_turns(runs: int, calls: dict, want, passes: int = 4) -> dict:
    """Median seconds of each way of making the cut, measured in `passes` passes over the
    ways (this VM's speed drifts by a third over minutes: one pass would put a drift on one
    side of the ratio), each way's runs in a row after one untimed run. Not run by run: on this VM
    memory freed by one process (a cut of 22 MB, the file it overwrote) is handed back to
    the host, and whoever touches memory next pays for it again (about 1 ms per MB), so
    alternating run by run charges each way with the one before it. The untimed run also
    covers the worker's first read of a file (hashed once for provenance, then kept open).
    Each server cut must equal xarray's; its output is deleted once the clock has
    stopped."""
    times: dict = {name: [] for name in calls}
    for turn in [runs // passes + (k < runs % passes) for k in range(passes)]:
        for name, call in calls.items():
            for i in range(turn + 1):
                seconds, data, response = call()
                if response is not None:
                    forget(response)
                    got = xr.open_dataset(io.BytesIO(data), engine='h5netcdf').sst.values
                    assert np.array_equal(got, want), f'{name}: server cut differs from xarray'
                if i:
                    times[name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_subset(url, data_url, folder, runs, ny, nx):
    grid = folder / 'grid.nc'
    size_mb = grid.stat().st_size / 1e6
    direct = [direct_cut(grid, folder / 'direct.nc') for _ in range(runs)]
    fetched = [fetched_cut(data_url, folder) for _ in range(runs)]
    rows = [('xarray direct (netcdf)', statistics.median(direct)),
            ('download + xarray (netcdf)', statistics.median(fetched)),
            ('subset run() in-process (netcdf)',
             statistics.median([in_process(data_url, folder) for _ in range(runs)]))]
    want = xr.open_dataset(folder / 'direct.nc').sst.values
    forget(server_run(url, 'subset', {'data': {'href': f'{data_url}/grid.nc'}, 'bbox': BOX},
                      'subset')[2])                     # warm-up: the worker imports xarray
    for fmt in ('netcdf', 'geotiff'):
        times = []
        for _ in range(runs):
            seconds, data, response = server_run(url, 'subset', {
                'data': {'href': f'{data_url}/grid.nc'}, 'bbox': BOX, 'output_format': fmt},
                'subset')
            times.append(seconds)
            forget(response)
        if fmt == 'netcdf':     # the same cut, or the comparison means nothing
            got = xr.open_dataset(io.BytesIO(data), engine='h5netcdf').sst.values
            assert np.array_equal(got, want), 'server cut differs from the xarray cut'
        rows.append((f'server subset by URL ({fmt}), reference + GET', statistics.median(times)))
    print(f'\n## subset by URL: {ny}x{nx} float32 grid ({size_mb:.1f} MB), cut {want.shape}, '
          f'median of {runs}\n')
    print('| run | median s | / xarray | / download + xarray |\n|---|---:|---:|---:|')
    for name, s in rows:
        print(f'| {name} | {s:.3f} | {s / rows[0][1]:.2f} | {s / rows[1][1]:.2f} |')

    coll = f'{url}/collections/bench-grid'
    print(f'\n## subset of a collection (read in place), median of {runs}\n')
    print('| cut | cells | MB | xarray direct s | xarray, already open s | server, stored s | '
          '/ xarray | server, raw s | / xarray | server, reference + GET s | / xarray |\n'
          '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    with xr.open_dataset(grid) as ds:
        for name, box in BOXES.items():
            direct_cut(grid, folder / 'cut.nc', box)
            want = xr.open_dataset(folder / 'cut.nc').sst.values
            inputs = {'data': {'collection': coll}, 'bbox': box}
            m = in_turns(runs, {
                'direct': lambda: (direct_cut(grid, folder / 'cut.nc', box), None, None),
                'held': lambda: (open_cut(ds, folder / 'cut.nc', box), None, None),
                'stored': lambda: server_stored(url, 'subset', inputs, 'subset'),
                'raw': lambda: server_raw(url, 'subset', inputs, 'subset'),
                'ref': lambda: server_run(url, 'subset', inputs, 'subset')}, want)
            print(f'| {name} | {want.shape[0]}x{want.shape[1]} | {want.nbytes / 1e6:.1f} | '
                  f'{m["direct"]:.4f} | {m["held"]:.4f} | {m["stored"]:.4f} | '
                  f'{m["stored"] / m["direct"]:.2f} | {m["raw"]:.4f} | '
                  f'{m["raw"] / m["direct"]:.2f} | {m["ref"]:.4f} | '
                  f'{m["ref"] / m["direct"]:.2f} |', flush=True)


def bench_divand(url, data_url, folder, grids, counts, fixed_n, fixed_grid):
    rng = np.random.default_rng(1)

    def observations(n):
        lon, lat = rng.uniform(-10, 0, n), rng.uniform(35, 45, n)
        sst = 15 + 0.3 * (lat - 40) + np.sin(lon) + rng.normal(0, 0.2, n)
        pd.DataFrame({'longitude': lon, 'latitude': lat, 'sst': sst}).to_csv(
            folder / f'obs{n}.csv', index=False)

    def one(n, g):
        seconds, data, _ = server_run(url, 'variational-analysis', {
            'observations': {'href': f'{data_url}/obs{n}.csv'}, 'variable': 'sst',
            'bbox': [-10, 35, 0, 45], 'nx': g, 'ny': g, 'correlation_length': 80}, 'analysis')
        solve = xr.open_dataset(io.BytesIO(data), engine='h5netcdf').attrs['solve_seconds']
        print(f'| {g}x{g} | {n} | {solve:.3f} | {seconds:.3f} |', flush=True)

    for n in sorted(set(counts) | {fixed_n}):
        observations(n)
    print('\n## variational-analysis (one run each)\n')
    print('| grid | observations | solve s | request s |\n|---|---:|---:|---:|')
    for g in grids:
        one(fixed_n, g)
    for n in counts:
        if n != fixed_n:
            one(n, fixed_grid)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runs', type=int, default=16)
    ap.add_argument('--grid', default='2400x3600', help='rows x columns of the subset grid')
    ap.add_argument('--divand-grids', default='50,100,200,400')
    ap.add_argument('--divand-obs', default='200,2000,20000')
    args = ap.parse_args()
    ny, nx = (int(v) for v in args.grid.split('x'))
    with tempfile.TemporaryDirectory(prefix='vre-bench-') as tmp:
        folder = Path(tmp) / 'data'
        folder.mkdir()
        make_grid(folder / 'grid.nc', ny, nx)
        config = yaml.safe_load((REPO / 'pygeoapi-config.yml').read_text())
        config['resources']['bench-grid'] = {   # the grid as a collection of the server
            'type': 'collection', 'title': 'bench grid', 'description': 'bench grid',
            'keywords': ['bench'], 'links': [],
            'extents': {'spatial': {'bbox': [-180, -90, 180, 90]}},
            'providers': [{'type': 'coverage', 'name': 'providers.coverage.GridCoverage',
                           'data': str(folder / 'grid.nc'),
                           'format': {'name': 'netcdf', 'mimetype': 'application/x-netcdf'}}]}
        (Path(tmp) / 'config.yml').write_text(yaml.safe_dump(config, sort_keys=False))
        with serve_folder(folder) as data_url, \
                start_server(Path(tmp) / 'home', config_path=Path(tmp) / 'config.yml') as server:
            AUTH.update(server.auth('alice'))
            bench_subset(server.url, data_url, folder, args.runs, ny, nx)
            bench_divand(server.url, data_url, folder,
                         [int(v) for v in args.divand_grids.split(',')],
                         [int(v) for v in args.divand_obs.split(',')], 2000, 200)


if __name__ == '__main__':
    main()
