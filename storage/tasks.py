"""Celery tasks of the storage tiers: the periodic purge of expired volatile files."""
from __future__ import annotations

import logging

from processes.celery_app import celery_app

LOGGER = logging.getLogger(__name__)
_TIERS = []


def _settings_and_config():
    from vre.config import load_config
    from vre.settings import load_settings
    settings = load_settings()
    return settings, load_config(settings)


def worker_tiers():
    """The tiers of this worker process, built on first use (after the fork, so no SQLite
    connection is shared between processes)."""
    if not _TIERS:
        from storage.tiers import open_tiers
        _TIERS.append(open_tiers(*_settings_and_config()))
    return _TIERS[0]


@celery_app.task(name='storage.purge_volatile', ignore_result=True)
def purge_volatile() -> int:
    n = worker_tiers().volatile.purge()
    if n:
        LOGGER.info('purged %d expired volatile files', n)
    return n


def _schedule(sender, **_):
    """Purge every `vre.storage.volatile.purge_every` seconds (default 600)."""
    from storage.config import StorageConfig
    try:
        every = StorageConfig.build(*_settings_and_config()).purge_every
    except Exception as err:  # a broken config must not stop the worker; say why
        LOGGER.error('storage purge not scheduled: %s', err)
        return
    sender.add_periodic_task(float(every), purge_volatile.s(), name='purge expired volatile files')


# The worker may import this module after the app is configured, when on_after_configure
# has already fired: then add the entry at once.
if celery_app.configured:
    _schedule(celery_app)
else:
    celery_app.on_after_configure.connect(_schedule, weak=False)
