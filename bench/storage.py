"""Storage tiers benchmark: upload/download throughput of one big file per tier next to a
plain copy on the same disk, and the Workspace compression ratio on real BDI files.

    .venv/bin/python bench/storage.py [--size-mb 1024] [--dir /path/on/the/disk] [--data DIR]

Runs the tiers' Python API (what the job runner uses), not HTTP. Every upload, the plain
copy included, ends with fsync so all of them pay for durability. Reads come from the page
cache where the kernel keeps the file (the VM cannot drop caches for us).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.config import StorageConfig  # noqa: E402
from storage.tiers import Tiers  # noqa: E402
from vre.settings import Settings  # noqa: E402

CHUNK = 4 << 20


def make_source(path: Path, size: int) -> None:
    """Random bytes: the worst case for compression, so the Workspace stores them raw."""
    with open(path, 'wb') as fh:
        left = size
        while left:
            n = min(CHUNK, left)
            fh.write(os.urandom(n))
            left -= n


def drain(fh) -> int:
    n = 0
    with fh:
        while chunk := fh.read(CHUNK):
            n += len(chunk)
    return n


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def plain_copy(src: Path, dst: Path) -> None:
    with open(src, 'rb') as a, open(dst, 'wb') as b:
        shutil.copyfileobj(a, b, CHUNK)
        b.flush()
        os.fsync(b.fileno())


def throughput(src: Path, work: Path) -> list[tuple[str, float, float]]:
    size = src.stat().st_size
    settings = Settings(home=work / 'home', config_path=work / 'none.yml')
    tiers = Tiers(StorageConfig.build(settings, {}))
    rows = []
    up = timed(lambda: plain_copy(src, work / 'copy.bin'))
    down = timed(lambda: drain(open(work / 'copy.bin', 'rb')))
    rows.append(('plain copy (+fsync)', up, down))
    (work / 'copy.bin').unlink()
    for name in ('dataspace', 'workspace', 'volatile'):
        tier = tiers.get(name)
        box = {}
        up = timed(lambda: box.update(f=tier.put('bench', 'big.bin', src)))
        f = box['f']
        key = f.token if name == 'volatile' else 'bench'
        down = timed(lambda: drain(tier.open(key, 'big.bin')))
        assert drain(tier.open(key, 'big.bin')) == size
        rows.append((name + (f' ({len(tiers.cfg.workspace_sites)} replicas, verify on read)'
                             if name == 'workspace' else ''), up, down))
        tier.delete(key, 'big.bin') if name != 'workspace' else None
    shutil.rmtree(work / 'home')
    return rows


def compression(data: Path, work: Path) -> list[tuple[str, int, int, int]]:
    settings = Settings(home=work / 'chome', config_path=work / 'none.yml')
    ws = Tiers(StorageConfig.build(settings, {})).workspace
    kinds = {'NetCDF': ('.nc',), 'CSV/TSV': ('.csv', '.tsv')}
    out = []
    for kind, exts in kinds.items():
        files = [p for p in data.rglob('*') if p.is_file() and p.suffix.lower() in exts]
        size = stored = 0
        for i, p in enumerate(files):
            f = ws.put('bench', f'{kind}/{i}{p.suffix}', p)
            size += f.size
            stored += f.stored_size
        out.append((kind, len(files), size, stored))
    shutil.rmtree(work / 'chome')
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size-mb', type=int, default=1024)
    ap.add_argument('--dir', default=None, help='a folder on the disk to measure')
    ap.add_argument('--data', default=str(Path(__file__).resolve().parents[2] /
                                          'shared' / 'data' / 'bdi'))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix='vre-bench-', dir=args.dir))
    try:
        src = work / 'source.bin'
        size = args.size_mb << 20
        make_source(src, size)
        rows = throughput(src, work)
        base_up, base_down = rows[0][1], rows[0][2]
        mb = size / 1e6
        print(f'{args.size_mb} MiB file in {work} (same disk for every row)\n')
        print('x copy: time / time of the plain copy; x read: time / time of a plain read')
        print(f'{"tier":<44}{"upload MB/s":>12}{"x copy":>8}{"download MB/s":>15}{"x copy":>8}'
              f'{"x read":>8}')
        for name, up, down in rows:
            print(f'{name:<44}{mb / up:>12.0f}{up / base_up:>8.2f}{mb / down:>15.0f}'
                  f'{down / base_up:>8.2f}{down / base_down:>8.2f}')
        print('\nWorkspace compression (zstd level 3, chosen per file) on', args.data)
        print(f'{"kind":<10}{"files":>7}{"bytes":>14}{"stored":>14}{"ratio":>8}')
        for kind, n, total, stored in compression(Path(args.data), work):
            ratio = total / stored if stored else float('nan')
            print(f'{kind:<10}{n:>7}{total:>14}{stored:>14}{ratio:>8.2f}')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
