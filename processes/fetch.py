"""HTTP reads of jobs, in one place: inputs by reference (`JobContext.fetch`) and order
granules. urllib3 pools keep connections alive per host and cost half the CPU per request
of `requests` (which counts for 1,000 small granules); the SHA-256 for provenance and
checks is computed as the bytes arrive, in a second thread for large bodies (hashlib
releases the GIL on big buffers, so hashing overlaps the receiving)."""
from __future__ import annotations

import hashlib
import os
import queue
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import urllib3

from processes.base import FetchError

CHUNK = 1 << 20
HASH_THREAD_AT = 8 << 20   # bodies larger than this are hashed in a second thread


class _Digest:
    """SHA-256 of a body as it arrives; for a large body, in a second thread fed with the
    chunks (hashlib releases the GIL on big buffers, so hashing overlaps the receiving)."""

    def __init__(self, threaded: bool):
        self.sha = hashlib.sha256()
        self.chunks = queue.Queue(8) if threaded else None
        if threaded:
            self.thread = threading.Thread(target=self._run, daemon=True,
                                           name='vre-fetch-hash')
            self.thread.start()

    def _run(self):
        while (chunk := self.chunks.get()) is not None:
            self.sha.update(chunk)

    def update(self, chunk: bytes) -> None:
        if self.chunks is None:
            self.sha.update(chunk)
        else:
            self.chunks.put(chunk)

    def hexdigest(self) -> str:
        if self.chunks is not None:
            self.chunks.put(None)
            self.thread.join()
        return self.sha.hexdigest()


class Pools:
    """urllib3 connection pools shared by the fetching threads (keep-alive per host; half
    the CPU requests spends per request, which counts for 1,000 small granules), through
    the proxy the environment names (http_proxy, https_proxy, no_proxy)."""

    def __init__(self, size: int):
        self.size = size
        self.proxies = urllib.request.getproxies()
        self.direct = urllib3.PoolManager(maxsize=size)
        self.via: dict[str, urllib3.ProxyManager] = {}

    def for_url(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        proxy = self.proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ''):
            return self.direct
        if proxy not in self.via:
            self.via[proxy] = urllib3.ProxyManager(proxy, maxsize=self.size)
        return self.via[proxy]

    def clear(self) -> None:
        for pool in [self.direct, *self.via.values()]:
            pool.clear()


# redirects followed; failures are not retried here (an order retries a BDI with back-off)
RETRY = urllib3.Retry(total=None, connect=0, read=0, redirect=5, status=0, other=0)


def fetch(pools: Pools, href: str, target: Path, limit: int, timeout) -> dict:
    """Stream an http(s) URL to `target`, SHA-256 computed on the way: {href, sha256, bytes,
    mediaType}. Raises FetchError (`retry` when the server may answer later)."""
    if not href.startswith(('http://', 'https://')):
        raise FetchError('only http(s) references can be read')
    try:
        resp = pools.for_url(href).request(
            'GET', href, preload_content=False, retries=RETRY,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
    except urllib3.exceptions.HTTPError as err:
        reason = getattr(err, 'reason', None) or err
        raise FetchError(f'{href} could not be read: {type(reason).__name__}', True) from None
    done = False
    try:
        if resp.status != 200:
            raise FetchError(f'{href} answered HTTP {resp.status}',
                             retry=resp.status >= 500 or resp.status == 429)
        length = resp.headers.get('Content-Length', '')
        length = int(length) if length.isdigit() else None
        if length is not None and length > limit:
            raise FetchError(f'{href} is larger than the limit ({limit} bytes)')
        digest = _Digest(length is None or length > HASH_THREAD_AT)
        size = 0
        try:
            with target.open('wb') as fh:
                for chunk in resp.stream(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(f'{href} is larger than the limit ({limit} bytes)')
                    fh.write(chunk)
                    digest.update(chunk)
        finally:
            sha256 = digest.hexdigest()
        done = True
        return {'href': href, 'sha256': sha256, 'bytes': size,
                'mediaType': resp.headers.get('Content-Type')}
    except urllib3.exceptions.HTTPError as err:
        raise FetchError(f'{href} could not be read: {type(err).__name__}', True) from None
    finally:
        if not done:
            resp.close()           # a half-read answer: its connection is not reused
        resp.release_conn()


_SHARED: tuple[int, Pools] | None = None


def shared_pools() -> Pools:
    """The pools of this process (made after a worker forks: sockets are not shared)."""
    global _SHARED
    if _SHARED is None or _SHARED[0] != os.getpid():
        _SHARED = (os.getpid(), Pools(8))
    return _SHARED[1]
