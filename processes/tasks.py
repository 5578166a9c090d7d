"""Celery tasks of the job system: run a job (one task, or the steps of a workflow of
nested processes, composed by processes/manager.py), and reap jobs of dead workers."""
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


# Steps of a workflow: keyword arguments only, as Celery puts the result of the steps before
# (one, or a list after a chord) first. A nested step's result feeds the next step (and a
# chord needs it in the result backend); the outer step's says whether it ran.
@celery_app.task(name='processes.tasks.run_nested', bind=True)
def run_nested(self, previous=None, *, job_id: str, attempt: int, step: dict) -> dict:
    return _runner().run_nested(job_id, attempt, step, previous, task_id=self.request.id)


@celery_app.task(name='processes.tasks.run_outer', bind=True)
def run_outer(self, previous=None, *, job_id: str, attempt: int) -> str:
    return _runner().run(job_id, previous, attempt, task_id=self.request.id)


@celery_app.task(name='processes.tasks.reap_jobs', ignore_result=True)
def reap_jobs() -> None:
    _runner().manager.reap(force=True)


@celery_app.on_after_configure.connect
def _schedule(sender, **_kwargs):
    sender.add_periodic_task(5.0, reap_jobs.s(), name='reap jobs of lost workers')
