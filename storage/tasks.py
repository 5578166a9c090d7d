"""Celery tasks of the storage tiers: the periodic purge of expired volatile files."""
from __future__ import annotations

import logging

from processes.celery_app import celery_app

LOGGER = logging.getLogger(__name__)
_TIERS = []


def worker_tiers():
    """The tiers of this worker process, built once from the settings and the config."""
    if not _TIERS:
        from vre.config import load_config
        from vre.settings import load_settings

        from storage.tiers import open_tiers
        settings = load_settings()
        _TIERS.append(open_tiers(settings, load_config(settings)))
    return _TIERS[0]


@celery_app.task(name='storage.purge_volatile', ignore_result=True)
def purge_volatile() -> int:
    n = worker_tiers().volatile.purge()
    if n:
        LOGGER.info('purged %d expired volatile files', n)
    return n


def _schedule(sender, **_):
    """Purge every `vre.storage.volatile.purge_every` seconds (default 600)."""
    try:
        every = worker_tiers().cfg.purge_every
    except Exception as err:  # a broken config must not stop the worker; say why
        LOGGER.error('storage purge not scheduled: %s', err)
        return
    sender.add_periodic_task(float(every), purge_volatile.s(), name='purge expired volatile files')


# The worker imports this module after the app may already be configured, when
# on_after_configure has fired: then add the entry at once.
if celery_app.configured:
    _schedule(celery_app)
else:
    celery_app.on_after_configure.connect(_schedule, weak=False)
