"""The Celery app shared by the web server (to send) and the workers (to run).

Tasks of every package register on this one app: `include` lists their modules, and a
module adds its periodic tasks with `celery_app.on_after_configure`. Workers read the
same settings (REDIS_URL, job store URL, config) as the server.
"""
from celery import Celery

from vre.settings import load_settings

TASK_MODULES = ['processes.tasks', 'storage.tasks', 'providers.tasks']


def _existing(modules):
    import importlib.util
    return [m for m in modules if importlib.util.find_spec(m) is not None]


def make_celery() -> Celery:
    settings = load_settings()
    url = settings.redis_url or 'redis://127.0.0.1:6379/0'
    app = Celery('vre', broker=url, backend=url, include=_existing(TASK_MODULES))
    app.conf.update(
        task_serializer='json', result_serializer='json', accept_content=['json'],
        task_acks_late=False,              # the job store, not redelivery, decides re-runs
        worker_prefetch_multiplier=1,      # a long job must not hold short ones hostage
        worker_disable_prefetch=True,      # take a job only with a free process: a busy
                                           # worker leaves queued jobs to idle workers
        task_track_started=False,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        broker_transport_options={'visibility_timeout': 43200},
        timezone='UTC',
    )
    return app


celery_app = make_celery()
