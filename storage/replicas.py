"""Blobs kept as N replicas on fsspec sites (local folders or any fsspec URL such as s3://).

A blob is written to a temporary name on every chosen site, fsync'ed, and only then renamed
into place, so a killed upload leaves no visible blob. Each blob has the SHA-256 of its
stored bytes; reading verifies it, serves a good replica and rewrites the bad ones.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import fsspec
import zstandard

from storage.errors import DiskFull, Unavailable

LOGGER = logging.getLogger(__name__)
CHUNK = 4 * 1024 * 1024
SAMPLE_RATIO = 0.9      # compress when a sample shrinks to below 90 %


class Site:
    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)

    def blob_path(self, key: str) -> str:
        return f'{self.root}/blobs/{key[:2]}/{key}'

    def tmp_path(self, key: str) -> str:
        return f'{self.root}/tmp/{key}.{uuid.uuid4().hex}'

    def ensure(self) -> None:
        self.fs.makedirs(f'{self.root}/tmp', exist_ok=True)


def _fsync(fh) -> None:
    try:
        fh.flush()
        os.fsync(fh.fileno())
    except (AttributeError, OSError, ValueError, NotImplementedError):
        pass  # object stores have no fsync; their put is atomic on close


def _fault(err: OSError, site: Site):
    if getattr(err, 'errno', None) in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f'replica site {site.url} is full; nothing was stored')
    return Unavailable(f'replica site {site.url} cannot be written ({err.__class__.__name__}: '
                       f'{err}); nothing was stored')


class ReplicaStore:
    def __init__(self, urls, replicas: int = 2, level: int = 3):
        self.sites = [Site(u) for u in urls]
        self.replicas = replicas
        self.level = level

    def site(self, url: str) -> Site:
        for s in self.sites:
            if s.url == url:
                return s
        return Site(url)   # a site since removed from the config: still readable

    # -- write ---------------------------------------------------------------
    def write(self, src, limit: int | None = None, expected: int | None = None) -> dict:
        """Store the bytes of file object `src` on `replicas` sites; returns the blob facts.
        Raises before anything is visible when a site fails or the input is short/too big."""
        from storage.errors import IncompleteUpload, TooLarge
        key = uuid.uuid4().hex
        chosen = self.sites[:self.replicas]
        handles, content, stored = [], hashlib.sha256(), hashlib.sha256()
        size = stored_size = 0
        try:
            for site in chosen:
                try:
                    site.ensure()
                    tmp = site.tmp_path(key)
                    handles.append((site, tmp, site.fs.open(tmp, 'wb')))
                except OSError as err:
                    raise _fault(err, site) from None
            first = src.read(CHUNK)
            codec, cobj = 'raw', None
            if len(first) >= 4096:
                sample = zstandard.ZstdCompressor(level=self.level).compress(first[:1 << 20])
                if len(sample) < SAMPLE_RATIO * min(len(first), 1 << 20):
                    codec = 'zstd'
                    cobj = zstandard.ZstdCompressor(level=self.level).compressobj()
            chunk = first
            with ThreadPoolExecutor(max_workers=len(handles)) as pool:
                while True:
                    final = not chunk
                    if chunk:
                        size += len(chunk)
                        if limit is not None and size > limit:
                            raise TooLarge(f'upload is larger than the {limit} bytes allowed')
                        content.update(chunk)
                    out = (cobj.flush() if final else cobj.compress(chunk)) if cobj else chunk
                    if out:
                        if cobj:
                            stored.update(out)
                        stored_size += len(out)
                        for site, _, fh in handles:
                            try:
                                fh.write(out)
                            except OSError as err:
                                raise _fault(err, site) from None
                    if final:
                        break
                    chunk = src.read(CHUNK)
                if expected is not None and size != expected:
                    raise IncompleteUpload(f'received {size} of {expected} bytes; nothing stored')
                for (site, _, fh), err in zip(handles, pool.map(self._close, handles)):
                    if err is not None:
                        raise _fault(err, site)
            placed = []
            for site, tmp, _ in handles:
                try:
                    site.fs.makedirs(site.blob_path(key).rsplit('/', 1)[0], exist_ok=True)
                    site.fs.mv(tmp, site.blob_path(key))
                    placed.append(site)
                except OSError as err:
                    for p in placed:
                        self._remove(p, p.blob_path(key))
                    raise _fault(err, site) from None
        except BaseException:
            for site, tmp, fh in handles:
                try:
                    fh.close()
                except Exception:
                    pass
                self._remove(site, tmp)
            raise
        sha = content.hexdigest()
        return {'blob': key, 'size': size, 'sha256': sha, 'codec': codec,
                'stored_size': stored_size,
                'stored_sha256': stored.hexdigest() if cobj else sha,
                'sites': [s.url for s, _, _ in handles]}

    @staticmethod
    def _close(handle):
        _, _, fh = handle
        try:
            _fsync(fh)
            fh.close()
        except OSError as err:
            return err
        return None

    @staticmethod
    def _remove(site: Site, path: str) -> None:
        try:
            site.fs.rm(path)
        except (OSError, FileNotFoundError):
            pass

    # -- read, verify, repair ---------------------------------------------------
    def verify(self, site: Site, key: str, sha: str, size: int) -> bool:
        h, n = hashlib.sha256(), 0
        try:
            with site.fs.open(site.blob_path(key), 'rb') as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
                    n += len(chunk)
        except (OSError, FileNotFoundError):
            return False
        return n == size and h.hexdigest() == sha

    def repair(self, good: Site, bad: Site, key: str) -> bool:
        """Copy the good replica over the bad one (temp name, then rename)."""
        tmp = bad.tmp_path(key)
        try:
            bad.ensure()
            with good.fs.open(good.blob_path(key), 'rb') as src, bad.fs.open(tmp, 'wb') as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                _fsync(dst)
            bad.fs.makedirs(bad.blob_path(key).rsplit('/', 1)[0], exist_ok=True)
            bad.fs.mv(tmp, bad.blob_path(key))
            LOGGER.warning('repaired blob %s on %s from %s', key, bad.url, good.url)
            return True
        except OSError as err:
            self._remove(bad, tmp)
            LOGGER.error('cannot repair blob %s on %s: %s', key, bad.url, err)
            return False

    def good_replica(self, key: str, sites: list[str], sha: str, size: int,
                     scrub: bool = False) -> tuple[Site | None, list[str], list[str]]:
        """The first replica that verifies; replicas found bad before it (all, if `scrub`)
        are repaired. Returns (good site, repaired urls, unrepaired urls)."""
        good, bad = None, []
        for url in sites:
            site = self.site(url)
            if self.verify(site, key, sha, size):
                good = good or site
                if not scrub:
                    break
            else:
                bad.append(site)
        repaired, failed = [], []
        for site in bad:
            (repaired if good and self.repair(good, site, key) else failed).append(site.url)
        return good, repaired, failed

    def open(self, site: Site, key: str, codec: str):
        fh = site.fs.open(site.blob_path(key), 'rb')
        if codec == 'zstd':
            return zstandard.ZstdDecompressor().stream_reader(fh, closefd=True)
        return fh

    def remove(self, key: str, sites: list[str]) -> None:
        for url in sites:
            site = self.site(url)
            self._remove(site, site.blob_path(key))
