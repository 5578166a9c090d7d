"""Periodic harvest on the Celery workers: every `vre.bdis.every` seconds (config), off if 0."""
from __future__ import annotations

from processes.celery_app import celery_app


@celery_app.task(name='providers.harvest')
def harvest_task(bdis: list[str] | None = None) -> dict:
    """Harvest the configured BDIs (mirror or url with harvest not false); returns the report."""
    from providers.harvest import harvest, sources_for
    from vre.config import load_config
    from vre.settings import load_settings

    settings = load_settings()
    config = load_config(settings)
    return harvest(settings.index_db_url, sources_for(bdis, None, None, config), config)


@celery_app.on_after_configure.connect
def _schedule(sender, **kwargs):
    from vre.config import load_config
    from vre.settings import load_settings
    try:
        every = float(((load_config(load_settings()).get('vre') or {}).get('bdis') or {})
                      .get('every') or 0)
    except Exception:  # a broken config is reported by `vre serve`, not here
        every = 0
    if every > 0:
        sender.add_periodic_task(every, harvest_task.s(), name='harvest BDIs')
