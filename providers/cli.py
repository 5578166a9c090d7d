"""`vre harvest [BDI ...] [--mirror DIR] [--url BDI=URL]`: fill the BDI index, print the report."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command('harvest')
@click.argument('bdis', nargs=-1)
@click.option('--mirror', type=click.Path(exists=True, file_okay=False, path_type=Path),
              help='a folder with one subfolder per BDI, laid out as the live services')
@click.option('--url', 'urls', multiple=True, metavar='BDI=URL',
              help='harvest BDI from this live base URL (repeatable)')
@click.option('--json', 'as_json', is_flag=True, help='print the report as JSON')
def harvest(bdis, mirror, urls, as_json):
    """Harvest BDIs (all found in --mirror, or those configured) into the index."""
    from providers.harvest import harvest as run, sources_for
    from vre.config import load_config
    from vre.settings import load_settings

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)     # the index lives there
    config = load_config(settings)
    try:
        url_map = dict(u.split('=', 1) for u in urls)
        sources = sources_for(list(bdis), mirror, url_map, config)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    if not sources:
        raise click.UsageError('nothing to harvest: give --mirror DIR, --url BDI=URL, or '
                               'configure vre.bdis.<name>.mirror in the config')

    def progress(items, label):
        with click.progressbar(items, label=f'{label:<11}', file=sys.stderr) as bar:
            yield from bar

    report = run(settings.index_db_url, sources, config, progress)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for name, rep in report.items():
        click.echo(f"{name}: {rep['added']} added, {rep['updated']} updated, "
                   f"{rep['unchanged']} unchanged, {rep['removed']} removed, "
                   f"{rep['observations']} observations, {len(rep['skipped'])} skipped"
                   + (f"; ERROR {rep['error']}" if rep.get('error') else ''))
        for s in rep['skipped'][:50]:
            click.echo(f"  skipped {s['granule']}: {s['reason']}")
        if len(rep['skipped']) > 50:
            click.echo(f"  ... and {len(rep['skipped']) - 50} more (see --json)")
