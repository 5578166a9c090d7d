"""Order fulfilment against a plain download of the same bytes from the same HTTP server.

    .venv/bin/python bench/orders.py [--small 1000] [--big-mb 1000] [--tier dataspace]
                                     [--parallel N]

Builds, in a temporary folder, N small NetCDF files and one big NetCDF file, serves them
with Python's threaded HTTP server (in a process of its own) as an 'argo' BDI, writes their index rows (as a harvest
would: path, size, SHA-256), starts a real `vre serve`, then times
  plain: GET every file with one requests session, to disk (what a user's script does);
  order: POST /jobs + POST /jobs/{id}/results until the job is successful (fetch with
         SHA-256, check against the index, open as NetCDF, store the files and manifest in
         the tier);
  zip:   GET /orders/{id}/download to disk (the zip made as it is sent; the first download
         also computes the CRC-32s), for information.
Each timed phase starts after an os.sync() (no dirty pages of the phase before) and with the
files of the phase before deleted. Untimed warm-ups first: an order of one granule (the
first job of a fresh worker also pays its imports, about 0.3 s: start-up, not fulfilment)
and one plain download of the big file (the first GiB written on this VM is about 1 s
slower, whoever writes it).
Goal (issue 5): an order within 1.5x of the plain download.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

from serverkit import start_server  # noqa: E402


def write_nc(path: Path, n_values: int) -> None:
    import netCDF4
    with netCDF4.Dataset(path, 'w') as ds:
        ds.createDimension('N', n_values)
        var = ds.createVariable('TEMP', 'f4', ('N',))
        step = 1 << 24
        for i in range(0, n_values, step):
            k = min(step, n_values - i)
            var[i:i + k] = np.random.default_rng(i).random(k, dtype='f4')


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open('rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def make_files(root: Path, small: int, big_mb: int) -> dict[str, list[Path]]:
    folder = root / 'bdi' / 'files'
    folder.mkdir(parents=True)
    smalls = []
    for i in range(small):
        p = folder / f'S{i:05d}.nc'
        write_nc(p, 500)
        smalls.append(p)
    big = folder / 'BIG.nc'
    write_nc(big, big_mb * (1 << 20) // 4)
    return {'small': smalls, 'big': [big]}


def index_rows(index_url: str, base: str, files: list[Path]) -> None:
    from providers import store
    eng = store.engine(index_url)
    rows = [{'id': p.stem, 'bdi': 'argo', 'collection': 'bench', 'path': f'files/{p.name}',
             'url': f'{base}files/{p.name}', 'title': p.name, 'type': 'profile-file',
             'size': p.stat().st_size, 'checksum': sha256(p), 'license': 'CC-BY-4.0',
             'citation': 'bench'} for p in files]
    with eng.begin() as conn:
        store.upsert(conn, store.GRANULE, rows)
        conn.execute(store.BDI.delete().where(store.BDI.c.name == 'argo'))
        conn.execute(store.BDI.insert().values(name='argo', title='bench', kind='bench',
                                               source=f'url {base}'))


@contextlib.contextmanager
def data_server(folder: Path):
    """The BDI's HTTP server (tests/serverkit.serve_folder) in a process of its own, as a
    remote host would be: in this process it would share the GIL with the plain client."""
    code = ('import sys, time; from pathlib import Path; sys.path.insert(0, sys.argv[1]); '
            'from serverkit import serve_folder\n'
            'with serve_folder(Path(sys.argv[2])) as url:\n'
            '    print(url, flush=True); time.sleep(86400)')
    proc = subprocess.Popen([sys.executable, '-c', code, str(REPO / 'tests'), str(folder)],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def plain(base: str, files: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    t0 = time.perf_counter()
    for p in files:
        with session.get(f'{base}files/{p.name}', stream=True, timeout=60) as r:
            r.raise_for_status()
            with (out / p.name).open('wb') as fh:
                for chunk in r.iter_content(1 << 20):
                    fh.write(chunk)
    return time.perf_counter() - t0


def order(server, ids: list[str], tier: str) -> tuple[float, str]:
    auth = server.auth('alice')
    t0 = time.perf_counter()
    r = requests.post(f'{server.url}/jobs', headers=auth, timeout=600, json={
        'process': 'order', 'inputs': {'granules': ids, 'output_tier': tier}})
    r.raise_for_status()
    jid = r.json()['jobID']
    requests.post(f'{server.url}/jobs/{jid}/results', headers=auth, timeout=600).raise_for_status()
    while True:     # the server answers as soon as the job ends (Prefer: wait, RFC 7240)
        doc = requests.get(f'{server.url}/jobs/{jid}', timeout=120,
                           headers={**auth, 'Prefer': 'wait=60'}).json()
        if doc['status'] in ('successful', 'failed'):
            break
    elapsed = time.perf_counter() - t0
    if doc['status'] != 'successful':
        raise SystemExit(f'order failed: {doc["message"]}')
    return elapsed, jid


def download(server, jid: str, out: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    size = 0
    with requests.get(f'{server.url}/orders/{jid}/download', headers=server.auth('alice'),
                      stream=True, timeout=600) as r, out.open('wb') as fh:
        r.raise_for_status()
        for chunk in r.iter_content(1 << 20):
            size += len(chunk)
            fh.write(chunk)
    return time.perf_counter() - t0, size


def config_with(parallel: int | None, path: Path) -> Path | None:
    """The repository config with the order process's `parallel` set (None: as it is)."""
    if parallel is None:
        return None
    config = yaml.safe_load((REPO / 'pygeoapi-config.yml').read_text())
    config['resources']['order']['processor']['parallel'] = parallel
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--small', type=int, default=1000)
    ap.add_argument('--big-mb', type=int, default=1000)
    ap.add_argument('--tier', default='dataspace')
    ap.add_argument('--parallel', type=int, help='fetches at a time (default: the config\'s)')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix='vre-bench-orders-') as tmp:
        tmp = Path(tmp)
        files = make_files(tmp, args.small, args.big_mb)
        home = tmp / 'home'
        home.mkdir()
        config = config_with(args.parallel, tmp / 'config.yml')
        with data_server(tmp / 'bdi') as url, start_server(home, config_path=config) as server:
            base = url + '/'
            index_rows(f'sqlite:///{home}/index.sqlite', base, files['small'] + files['big'])
            # untimed warm-ups: a fresh worker's first job pays its imports once, and the
            # first GiB written on this VM lands in memory the guest never touched before
            # (about 1 s more, whatever writes it)
            t_warm, _ = order(server, [files['small'][0].stem], args.tier)
            t_first = plain(base, files['big'], tmp / 'warm-up')
            shutil.rmtree(tmp / 'warm-up')
            print(f'warm-up: an order of 1 granule, the first job of the worker: '
                  f'{t_warm:.2f} s; the first plain download of the big file: {t_first:.2f} s',
                  flush=True)
            for label, group in (('small', files['small']), ('big', files['big'])):
                nbytes = sum(p.stat().st_size for p in group)
                # each timed phase starts with no dirty pages left by the one before (a GiB
                # written back to the disk during the next phase slows whichever comes next)
                # and with the files of the phase before deleted (their memory is reused)
                os.sync()
                t_plain = plain(base, group, tmp / f'plain-{label}')
                shutil.rmtree(tmp / f'plain-{label}')
                os.sync()
                t_order, jid = order(server, [p.stem for p in group], args.tier)
                os.sync()
                t_zip, zbytes = download(server, jid, tmp / f'order-{label}.zip')
                (tmp / f'order-{label}.zip').unlink()
                print(f'{label}: {len(group)} granule(s), {nbytes / 1e6:.1f} MB: plain '
                      f'{t_plain:.2f} s ({nbytes / 1e6 / t_plain:.0f} MB/s), order '
                      f'{t_order:.2f} s ({nbytes / 1e6 / t_order:.0f} MB/s), '
                      f'ratio {t_order / t_plain:.2f}x; zip download {t_zip:.2f} s '
                      f'({zbytes / 1e6 / t_zip:.0f} MB/s)', flush=True)


if __name__ == '__main__':
    main()
