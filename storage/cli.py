"""`vre storage ...`: operator commands for the tiers."""
from __future__ import annotations

import json

import click


def _tiers():
    from vre.config import load_config
    from vre.settings import load_settings

    from storage.tiers import open_tiers
    settings = load_settings()
    return open_tiers(settings, load_config(settings))


@click.group('storage')
def storage():
    """Storage tiers: scrub, purge."""


@storage.command('check')
@click.option('--json', 'as_json', is_flag=True, help='print the report as JSON')
def check(as_json):
    """Verify every Workspace replica, repair damaged or missing ones from a good one.
    Exits 1 if some damage could not be repaired."""
    report = _tiers().workspace.check()
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(f'{report["files"]} file versions, {report["replicas_ok"]} good replicas, '
                   f'{len(report["repaired"])} repaired, {len(report["unrepaired"])} unrepaired')
        for line in report['repaired']:
            click.echo(f'  repaired   {line}')
        for line in report['unrepaired']:
            click.echo(f'  UNREPAIRED {line}')
    raise SystemExit(1 if report['unrepaired'] else 0)


@storage.command('purge')
def purge():
    """Delete expired volatile files now (the worker also does it periodically)."""
    click.echo(f'{_tiers().volatile.purge()} expired volatile files deleted')
