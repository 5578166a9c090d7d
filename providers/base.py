"""Connector base: one per BDI, reading the live service or a local mirror with the same layout.

A connector lists granules (`granules`), turns one granule's bytes into index rows (`read`) and
describes its collections (`collections`). The harvest (providers/harvest.py) does the rest:
change detection, the index transaction, the report. Sources hide mirror-vs-HTTP.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests


class GranuleError(Exception):
    """A granule (or a part of it) that cannot be read; the harvest reports it and goes on."""


@dataclass
class Stat:
    size: int | None
    mtime: float | None
    etag: str | None


class Source:
    """Where a BDI's files come from; paths are relative to the BDI root, live layout."""

    def stat(self, path: str) -> Stat:
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        raise NotImplementedError


class MirrorSource(Source):
    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self):
        return f'mirror {self.root}'

    def _file(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if self.root.resolve() not in target.parents:
            raise FileNotFoundError(path)
        return target

    def stat(self, path: str) -> Stat:
        st = os.stat(self._file(path))
        return Stat(st.st_size, st.st_mtime, None)

    def read(self, path: str) -> bytes:
        return self._file(path).read_bytes()


class HttpSource(Source):
    """A live service; one requests session (keep-alive) per harvest."""

    def __init__(self, base_url: str, timeout: float = 60):
        self.base = base_url.rstrip('/') + '/'
        self.timeout = timeout
        self.session = requests.Session()

    def __repr__(self):
        return f'url {self.base}'

    def url(self, path: str) -> str:
        return urljoin(self.base, path.lstrip('/'))

    def stat(self, path: str) -> Stat:
        r = self.session.head(self.url(path), timeout=self.timeout, allow_redirects=True)
        if r.status_code == 404:
            raise FileNotFoundError(path)
        r.raise_for_status()
        size = r.headers.get('Content-Length')
        tag = r.headers.get('ETag') or r.headers.get('Last-Modified')
        return Stat(int(size) if size else None, None, tag)

    def read(self, path: str) -> bytes:
        r = self.session.get(self.url(path), timeout=self.timeout)
        if r.status_code == 404:
            raise FileNotFoundError(path)
        r.raise_for_status()
        return r.content


@dataclass
class GranuleRef:
    """One granule as a BDI's listing names it (before reading it)."""
    id: str
    path: str
    collection: str
    etag: str | None = None          # change marker from the listing (e.g. Argo date_update)
    meta: dict = field(default_factory=dict)


@dataclass
class Granule:
    """What reading one granule gives: its record, its observations, row-level problems."""
    record: dict
    observations: list[dict]
    problems: list[str] = field(default_factory=list)


class Connector:
    """Subclass per BDI: name/title/kind/url as class attributes, three methods."""
    name = ''
    folder = ''      # its folder in a mirror when not its name (e.g. shared OGC service samples)
    title = ''
    kind = ''
    default_url = ''
    license = ''
    citation = ''
    # the queryables of this BDI's observations as Features: public property -> (column of
    # store.OBSERVATION, JSON type); empty when its observations are not served as Features
    feature_fields: dict[str, tuple[str, str]] = {}
    time_property = 'time'    # the public name of the observation time

    def __init__(self, options: dict | None = None):
        self.options = options or {}
        self.public_url = (self.options.get('url') or self.default_url).rstrip('/') + '/'

    def granules(self, source: Source) -> list[GranuleRef]:
        """The granules the BDI lists now (index files, listings, recorded queries)."""
        raise NotImplementedError

    def stat(self, source: Source, ref: GranuleRef) -> Stat:
        """Size/mtime/etag of a granule at the source (FileNotFoundError if gone)."""
        return source.stat(ref.path)

    def fetch(self, source: Source, ref: GranuleRef) -> bytes:
        """A granule's bytes as the live service serves them."""
        return source.read(ref.path)

    def read(self, ref: GranuleRef, data: bytes) -> Granule:
        """One granule's record and observations; raise GranuleError if unreadable."""
        raise NotImplementedError

    def collections(self) -> list[dict]:
        """Collection records (level-1 search); extents are filled in from the granules."""
        raise NotImplementedError

    def listing_problems(self) -> list[tuple[str, str]]:
        """(what, why) for listing entries that could not be used (bad index lines, ...)."""
        return getattr(self, '_listing_problems', [])
