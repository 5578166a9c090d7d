"""Typed settings, read once from the environment (the only place that reads it).

Everything else receives a `Settings` (or a part of it) as an argument.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    home: Path                      # VRE_HOME: job store, users file, tiers, logs
    config_path: Path               # VRE_CONFIG: the one pygeoapi-config.yml
    host: str = '127.0.0.1'
    port: int = 5000
    public_url: str = ''            # VRE_PUBLIC_URL: what clients see (default http://host:port)
    redis_url: str | None = None    # REDIS_URL: None means "start a private Redis"
    jobs_db_url: str = ''           # VRE_JOBS_DB: SQLAlchemy URL of the job store
    index_db_url: str = ''          # VRE_INDEX_DB: SQLAlchemy URL of the BDI index
    users_file: Path = field(default=Path())   # VRE_USERS
    bdi_mirror: Path = field(default=Path())   # VRE_BDI_MIRROR: local mirror of the BDIs
    max_body_bytes: int = 100 * 1024 * 1024    # VRE_MAX_BODY
    job_timeout: int = 3600         # VRE_JOB_TIMEOUT seconds, hard limit per job
    worker_concurrency: int = 0     # VRE_WORKER_CONCURRENCY, 0 = cores
    web_workers: int = 2            # VRE_WEB_WORKERS gunicorn processes

    @property
    def url(self) -> str:
        return (self.public_url or f'http://{self.host}:{self.port}').rstrip('/')

    @property
    def storage_root(self) -> Path:
        return self.home / 'storage'

    @property
    def jobs_dir(self) -> Path:
        return self.home / 'jobs'

    def env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        return {
            'VRE_HOME': str(self.home), 'VRE_CONFIG': str(self.config_path),
            'VRE_HOST': self.host, 'VRE_PORT': str(self.port),
            'VRE_PUBLIC_URL': self.url, 'REDIS_URL': self.redis_url or '',
            'VRE_JOBS_DB': self.jobs_db_url, 'VRE_INDEX_DB': self.index_db_url,
            'VRE_USERS': str(self.users_file), 'VRE_MAX_BODY': str(self.max_body_bytes),
            'VRE_BDI_MIRROR': str(self.bdi_mirror),
            'VRE_JOB_TIMEOUT': str(self.job_timeout),
            'VRE_WORKER_CONCURRENCY': str(self.worker_concurrency),
            'VRE_WEB_WORKERS': str(self.web_workers),
        }


def load_settings(**overrides) -> Settings:
    """Settings from the environment; keyword overrides win (used by the CLI)."""
    env = os.environ
    home = Path(overrides.pop('home', None) or env.get('VRE_HOME') or Path.cwd() / 'vre-data').resolve()
    values = dict(
        home=home,
        config_path=Path(env.get('VRE_CONFIG') or REPO_ROOT / 'pygeoapi-config.yml').resolve(),
        host=env.get('VRE_HOST', '127.0.0.1'),
        port=int(env.get('VRE_PORT', '5000')),
        public_url=env.get('VRE_PUBLIC_URL', ''),
        redis_url=env.get('REDIS_URL') or None,
        jobs_db_url=env.get('VRE_JOBS_DB') or f'sqlite:///{home}/jobs.sqlite',
        index_db_url=env.get('VRE_INDEX_DB') or f'sqlite:///{home}/index.sqlite',
        users_file=Path(env.get('VRE_USERS') or home / 'users.yml'),
        bdi_mirror=Path(env.get('VRE_BDI_MIRROR') or home / 'mirror').resolve(),
        max_body_bytes=int(env.get('VRE_MAX_BODY', 100 * 1024 * 1024)),
        job_timeout=int(env.get('VRE_JOB_TIMEOUT', 3600)),
        worker_concurrency=int(env.get('VRE_WORKER_CONCURRENCY', 0)),
        web_workers=int(env.get('VRE_WEB_WORKERS', 2)),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
