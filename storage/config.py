"""Tier settings in one place: embedded defaults, overridden by the `vre: storage:` section
of the config dict (pygeoapi-config.yml), so tests and deployments set them without the
environment.

Keys read (all optional) under `vre: storage:`::

    catalogue: sqlite:///...          # SQLAlchemy URL of the file catalogue
    workspace: {sites: [dir or fsspec URL, ...], replicas: 2, compress_level: 3}
    dataspace: {root: dir, quota: bytes, fsync: false}
    volatile: {root: dir, max_ttl: seconds, default_ttl: seconds, purge_every: seconds,
               fsync: false}

`fsync`: whether a file put in the tier is synced to disk before it is listed. The
Workspace always syncs (it is the tier that keeps things). The Dataspace (fast scratch
for notebooks, which write there without syncing either) and the Volatile tier (24 h)
default to not waiting for the disk: a crash may lose their last seconds of writes, and a
file whose size no longer matches its catalogue row is then reported lost, never served
as the checksum it no longer has.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TB = 1024 ** 4


@dataclass(frozen=True)
class StorageConfig:
    catalogue_url: str
    base_url: str               # public URL of the server, for url_for()
    staging: Path               # local scratch for uploads (same disk as the tiers)
    workspace_sites: tuple[str, ...]
    replicas: int = 2
    compress_level: int = 3
    dataspace_root: Path = Path()
    quota: int = TB
    dataspace_fsync: bool = False
    volatile_root: Path = Path()
    volatile_fsync: bool = False
    max_ttl: int = 24 * 3600
    default_ttl: int = 24 * 3600
    purge_every: float = 600
    jobs_db_url: str = ''       # the job store, to copy job results into a workspace
    redis_url: str = ''         # shared WebDAV locks across web workers ('' = in memory)

    @classmethod
    def build(cls, settings, config: dict | None = None) -> 'StorageConfig':
        """Defaults from `settings`, then whatever `config['vre']['storage']` says."""
        root = Path(settings.storage_root)
        section = ((config or {}).get('vre') or {}).get('storage') or {}
        ws = section.get('workspace') or {}
        ds = section.get('dataspace') or {}
        vo = section.get('volatile') or {}
        max_ttl = int(vo.get('max_ttl', 24 * 3600))
        sites = tuple(str(s) for s in (ws.get('sites') or
                                       [root / 'workspace-site-1', root / 'workspace-site-2']))
        replicas = int(ws.get('replicas', 2))
        if not 1 <= replicas <= len(sites):
            raise ValueError(f'vre.storage.workspace.replicas={replicas} needs that many sites '
                             f'(have {len(sites)})')
        return cls(
            catalogue_url=section.get('catalogue') or f'sqlite:///{settings.home}/storage.sqlite',
            base_url=settings.url,
            staging=root / 'staging',
            workspace_sites=sites, replicas=replicas,
            compress_level=int(ws.get('compress_level', 3)),
            dataspace_root=Path(ds.get('root') or root / 'dataspace'),
            quota=int(ds.get('quota', TB)),
            dataspace_fsync=bool(ds.get('fsync', False)),
            volatile_root=Path(vo.get('root') or root / 'volatile'),
            volatile_fsync=bool(vo.get('fsync', False)),
            max_ttl=max_ttl,
            default_ttl=min(int(vo.get('default_ttl', max_ttl)), max_ttl),
            purge_every=float(vo.get('purge_every', 600)),
            jobs_db_url=getattr(settings, 'jobs_db_url', '')
            or f'sqlite:///{settings.home}/jobs.sqlite',
            redis_url=getattr(settings, 'redis_url', None) or '',
        )
