"""`vre order ...`: baskets, submission, the dashboard and downloads over HTTP, for scripts.

    vre order create ID... | add JOB ID... | remove JOB ID... | submit JOB | list | show JOB
    vre order download JOB [-o FILE]   (resumes a partial FILE with Range and If-Range)
    vre order push JOB [--path P] | retry JOB
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import requests


class Client:
    def __init__(self, url: str, token: str | None):
        self.url = url.rstrip('/')
        self.session = requests.Session()
        if token:
            self.session.headers['Authorization'] = f'Bearer {token}'

    def call(self, method: str, path: str, **kwargs):
        try:
            r = self.session.request(method, self.url + path, timeout=60, **kwargs)
        except requests.RequestException as err:
            raise click.ClickException(f'{self.url} cannot be reached: {err}') from None
        if r.status_code >= 400:
            try:
                detail = r.json().get('detail') or r.text
            except ValueError:
                detail = r.text
            raise click.ClickException(f'HTTP {r.status_code}: {detail}')
        return r


def _echo(doc) -> None:
    click.echo(json.dumps(doc, indent=1))


@click.group('order')
@click.option('--url', envvar='VRE_URL', default='http://127.0.0.1:5000', show_default=True,
              help='the VRE server ($VRE_URL)')
@click.option('--token', envvar='VRE_TOKEN', help='your bearer token ($VRE_TOKEN)')
@click.pass_context
def order(ctx, url, token):
    """Order granules of any BDI: a basket, submitted, then downloaded or pushed."""
    ctx.obj = Client(url, token)


@order.command()
@click.argument('granules', nargs=-1)
@click.option('--tier', type=click.Choice(['volatile', 'workspace', 'dataspace']),
              help='where the order is delivered (default workspace)')
@click.pass_obj
def create(client, granules, tier):
    """A new basket with these granule ids; prints the job (its jobID is the order)."""
    inputs = {'granules': list(granules)}
    if tier:
        inputs['output_tier'] = tier
    _echo(client.call('POST', '/jobs', json={'process': 'order', 'inputs': inputs}).json())


def _edit(name: str, doc: str):
    """`add` and `remove`: PATCH the basket with {name: [ids]}."""
    @click.argument('job')
    @click.argument('granules', nargs=-1, required=True)
    @click.pass_obj
    def command(client, job, granules):
        _echo(client.call('PATCH', f'/jobs/{job}', json={name: list(granules)}).json())
    command.__doc__ = doc
    return order.command(name)(command)


_edit('add', 'Add granules to a basket.')
_edit('remove', 'Remove granules from a basket.')


@order.command()
@click.argument('job')
@click.pass_obj
def submit(client, job):
    """Submit a basket: it is fulfilled in the background."""
    _echo(client.call('POST', f'/jobs/{job}/results').json())


@order.command('list')
@click.option('--bdi', multiple=True, help='only lines of this BDI (repeatable)')
@click.option('--status', multiple=True, help='basket, submitted, in progress, delivered, failed')
@click.option('--csv', 'as_csv', is_flag=True, help='the dashboard as CSV')
@click.pass_obj
def list_(client, bdi, status, as_csv):
    """Your orders, one line per granule."""
    params = {'bdi': ','.join(bdi) or None, 'status': ','.join(status) or None,
              'f': 'csv' if as_csv else 'json'}
    r = client.call('GET', '/orders', params=params)
    click.echo(r.text if as_csv else json.dumps(r.json(), indent=1))


@order.command()
@click.argument('job')
@click.pass_obj
def show(client, job):
    """One order with its lines."""
    _echo(client.call('GET', f'/orders/{job}').json())


@order.command()
@click.argument('job')
@click.option('-o', '--output', type=click.Path(dir_okay=False, path_type=Path),
              help='file to write (default order-JOB.zip); a partial file is resumed')
@click.pass_obj
def download(client, job, output):
    """Download the order as one zip, resuming where a previous download stopped.

    While FILE is partial, the zip's ETag is kept next to it in FILE.etag and sent back as
    If-Range: a zip that is no longer the same (or a partial FILE with no ETag kept) is
    downloaded again from the start instead of being appended to."""
    output = output or Path(f'order-{job}.zip')
    tag = output.with_name(output.name + '.etag')
    have = output.stat().st_size if output.exists() else 0
    etag = tag.read_text().strip() if have and tag.exists() else ''
    r = _get_zip(client, job, {'Range': f'bytes={have}-', 'If-Range': etag} if etag else {})
    if r.status_code == 416 and r.headers.get('Content-Range') == f'bytes */{have}':
        tag.unlink(missing_ok=True)       # the same zip, already complete
        click.echo(output)
        return
    if r.status_code == 416:              # longer than the zip: not a part of it
        r = _get_zip(client, job, {})
    if r.status_code not in (200, 206):
        raise click.ClickException(f'HTTP {r.status_code}: {r.text[:500]}')
    resume = r.status_code == 206
    if resume and not r.headers.get('Content-Range', '').startswith(f'bytes {have}-'):
        raise click.ClickException(f'the server sent {r.headers.get("Content-Range")!r} '
                                   f'for bytes {have}-')
    if have:
        click.echo(f'resuming {output} at byte {have}' if resume else
                   f'{output} cannot be resumed (not a part of this zip, or no ETag kept '
                   'for it): downloading it again', err=True)
    if r.headers.get('ETag'):
        tag.write_text(r.headers['ETag'])
    else:
        tag.unlink(missing_ok=True)
    # a body cut short is kept up to where it stopped (urllib3 would drop the last read)
    # and its length checked here, so that the next run resumes from there
    r.raw.enforce_content_length = False
    expected = int(r.headers.get('Content-Length', -1))
    got, problem = 0, None
    with output.open('ab' if resume else 'wb') as fh:
        try:
            for chunk in r.iter_content(1 << 20):
                fh.write(chunk)
                got += len(chunk)
        except requests.RequestException as err:
            problem = str(err)
        if problem or got < expected:
            problem = problem or 'the connection closed early'
            raise click.ClickException(f'the download stopped at byte {fh.tell()} '
                                       f'({problem}); run the same command again to resume')
    tag.unlink(missing_ok=True)
    click.echo(output)


def _get_zip(client, job: str, headers: dict):
    try:
        return client.session.get(f'{client.url}/orders/{job}/download', headers=headers,
                                  stream=True, timeout=60)
    except requests.RequestException as err:
        raise click.ClickException(f'{client.url} cannot be reached: {err}') from None


@order.command()
@click.argument('job')
@click.option('--path', help='workspace folder (default orders/JOB)')
@click.pass_obj
def push(client, job, path):
    """Copy the order's files and manifest.json into a folder of your workspace."""
    _echo(client.call('POST', f'/orders/{job}/workspace',
                      json={'path': path} if path else {}).json())


@order.command()
@click.argument('job')
@click.pass_obj
def retry(client, job):
    """A new order of the granules that failed."""
    _echo(client.call('POST', f'/orders/{job}/retry').json())


if __name__ == '__main__':
    sys.exit(order())
