"""Celery tasks of the job system: run a job, and reap jobs of dead workers periodically."""
from __future__ import annotations

from functools import lru_cache

from processes.celery_app import celery_app


@lru_cache(maxsize=1)
def _runner():
    """Built once per worker process from the same config the web server uses."""
    from pygeoapi.process.manager.base import get_manager
    from vre.config import load_config
    from vre.settings import load_settings
    from processes.runner import JobRunner

    from storage.tiers import open_tiers

    settings = load_settings()
    config = load_config(settings)
    manager = get_manager(config)
    return JobRunner(manager, settings.url, settings.max_body_bytes * 10,
                     tiers=open_tiers(settings, config), resources=config.get('resources'))


@celery_app.task(name='processes.tasks.run_job', ignore_result=True)  # the job store has it
def run_job(job_id: str) -> str:
    return _runner().run(job_id)


@celery_app.task(name='processes.tasks.reap_jobs', ignore_result=True)
def reap_jobs() -> None:
    _runner().manager.reap(force=True)


@celery_app.on_after_configure.connect
def _schedule(sender, **_kwargs):
    sender.add_periodic_task(5.0, reap_jobs.s(), name='reap jobs of lost workers')
