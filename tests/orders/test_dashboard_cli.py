"""The dashboard page in a real headless browser (Debian `chromium`), and `vre order` on the
command line, both against a real server."""
from __future__ import annotations

import html.parser
import http.server
import json
import os
import shutil
import subprocess
import zipfile

import pytest
import requests

from orderkit import VRE, wait_for
from serverkit import serve

COLUMNS = ['Order number', 'BDI', 'Dataset name', 'Source', 'Submitted', 'Delivered',
           'Status', 'Size (bytes)']


class Table(html.parser.HTMLParser):
    """The rows of <table id="orders"> as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows, self.inside, self.cell = [], False, None

    def handle_starttag(self, tag, attrs):
        if tag == 'table' and ('id', 'orders') in attrs:
            self.inside = True
        elif self.inside and tag == 'tr':
            self.rows.append([])
        elif self.inside and tag in ('td', 'th'):
            self.cell = ''

    def handle_endtag(self, tag):
        if tag == 'table':
            self.inside = False
        elif self.inside and tag in ('td', 'th') and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def submit(server, granules, user='alice'):
    r = requests.post(f'{server.url}/jobs', headers=server.auth(user), timeout=30, json={
        'process': 'order', 'inputs': {'granules': granules}})
    jid = r.json()['jobID']
    requests.post(f'{server.url}/jobs/{jid}/results', headers=server.auth(user), timeout=30)
    return wait_for(server, jid, user)


def chromium_dom(url: str, tmp_path) -> str:
    exe = shutil.which('chromium')
    if exe is None:
        pytest.fail('Debian chromium is needed: apt-get install -y chromium')
    proc = subprocess.run(
        [exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--no-first-run', f'--user-data-dir={tmp_path}/chrome',
         '--virtual-time-budget=10000', '--dump-dom', url],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_dashboard_table_in_headless_chromium(order_server, tmp_path):
    s = order_server
    done = submit(s, ['D6901929_001', 'sdn-netCDF_timeseries_tidegauge'])
    assert done['status'] == 'successful', done['message']
    # the token goes in the fragment: a browser never sends it, the page's script uses it
    dom = chromium_dom(f'{s.url}/orders?f=html&bdi=seadatanet#token={s.token("alice")}',
                       tmp_path)
    table = Table()
    table.feed(dom)
    head, rows = table.rows[0], table.rows[1:]
    assert head == COLUMNS
    mine = [r for r in rows if r[0] == done['jobID']]
    want = requests.get(f'{s.url}/orders/{done["jobID"]}', headers=s.auth('alice'),
                        timeout=30).json()['lines']
    want = [ln for ln in want if ln['bdi'] == 'seadatanet']
    assert len(mine) == len(want) == 1
    assert mine[0][1:4] == [want[0]['bdi'], want[0]['dataset'], want[0]['source']]
    assert mine[0][6:] == ['delivered', str(want[0]['size'])]
    assert all(r[1] == 'seadatanet' for r in rows)

    # without a token the page shows an empty table, not someone's orders
    anonymous = Table()
    anonymous.feed(chromium_dom(f'{s.url}/orders?f=html', tmp_path / 'anon'))
    assert anonymous.rows == [COLUMNS]


def test_vre_order_command(order_server, tmp_path):
    s = order_server
    env = {k: v for k, v in os.environ.items() if not k.startswith('VRE_')}
    env.update(VRE_URL=s.url, VRE_TOKEN=s.token('alice'))

    def vre(*args, ok=True):
        proc = subprocess.run([VRE, 'order', *args], env=env, capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert (proc.returncode == 0) == ok, proc.stderr
        return proc

    job = json.loads(vre('create', 'D6901929_002').stdout)
    jid = job['jobID']
    assert 'unknown granule' in vre('add', jid, 'no-such-granule', ok=False).stderr
    vre('add', jid, 'D6901929_003')
    vre('remove', jid, 'D6901929_002')
    assert json.loads(vre('submit', jid).stdout)['status'] == 'accepted'
    assert wait_for(s, jid)['status'] == 'successful'
    lines = json.loads(vre('show', jid).stdout)['lines']
    assert [(ln['granule'], ln['status']) for ln in lines] == [('D6901929_003', 'delivered')]
    assert jid in vre('list', '--csv', '--bdi', 'argo').stdout

    whole = requests.get(f'{s.url}/orders/{jid}/download', headers=s.auth('alice'),
                         timeout=30).content
    target = tmp_path / 'o.zip'
    target.write_bytes(whole[:777])              # an interrupted download
    vre('download', jid, '-o', str(target))
    assert target.read_bytes() == whole
    zf = zipfile.ZipFile(target)
    assert zf.namelist() == ['argo/D6901929_003.nc', 'manifest.json']
    if shutil.which('unzip'):
        test = subprocess.run(['unzip', '-t', str(target)], capture_output=True, text=True)
        assert test.returncode == 0, test.stdout + test.stderr
    pushed = json.loads(vre('push', jid, '--path', 'cli/o').stdout)
    assert pushed['path'] == 'cli/o' and pushed['files'] == 2
    assert pushed['size'] == zf.getinfo('argo/D6901929_003.nc').file_size
    got = requests.get(f'{s.url}/storage/workspace/alice/cli/o/argo/D6901929_003.nc',
                       headers=s.auth('alice'), timeout=30)
    assert got.content == zf.read('argo/D6901929_003.nc')


class CutShort(http.server.BaseHTTPRequestHandler):
    """A loopback proxy to the server that passes the headers on but stops each body after
    `limit` bytes and closes the connection: a download interrupted by the network."""
    target, limit = '', 5000

    def do_GET(self):
        keep = ('authorization', 'range', 'if-range')
        with requests.get(self.target + self.path, stream=True, timeout=30, headers={
                k: v for k, v in self.headers.items() if k.lower() in keep}) as r:
            self.send_response(r.status_code)
            for k in ('Content-Type', 'Content-Length', 'Content-Range', 'ETag'):
                if k in r.headers:
                    self.send_header(k, r.headers[k])
            self.end_headers()
            self.wfile.write(r.raw.read(self.limit))
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_download_resumes_only_the_same_zip(order_server, tmp_path):
    """`vre order download` cut short keeps the zip's ETag next to the partial file, sends
    it as If-Range when run again and appends only to the same zip; a partial file of
    another zip (or one with no ETag kept) is downloaded again from the start."""
    s = order_server
    first = submit(s, ['D6901929_001', 'sdn-netCDF_timeseries_tidegauge'])
    other = submit(s, ['D6901929_002'])
    assert first['status'] == other['status'] == 'successful'
    zips = {}
    for job in (first, other):
        r = requests.get(f"{s.url}/orders/{job['jobID']}/download", headers=s.auth('alice'),
                         timeout=30)
        zips[job['jobID']] = (r.content, r.headers['ETag'])
    whole, etag = zips[first['jobID']]
    assert len(whole) > 2 * CutShort.limit and etag != zips[other['jobID']][1]
    target, tag = tmp_path / 'o.zip', tmp_path / 'o.zip.etag'

    def vre(url, job, ok=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith('VRE_')}
        env.update(VRE_URL=url, VRE_TOKEN=s.token('alice'))
        proc = subprocess.run([VRE, 'order', 'download', job, '-o', str(target)], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert (proc.returncode == 0) == ok, proc.stderr
        return proc

    CutShort.target = s.url
    with serve(CutShort) as proxy:
        cut = vre(proxy, first['jobID'], ok=False)
        assert 'run the same command again' in cut.stderr and 'Traceback' not in cut.stderr
        assert target.read_bytes() == whole[:CutShort.limit] and tag.read_text() == etag
        cut = vre(proxy, first['jobID'], ok=False)           # resumed, and cut again
        assert f'resuming {target} at byte {CutShort.limit}' in cut.stderr
        assert target.read_bytes() == whole[:2 * CutShort.limit]
    done = vre(s.url, first['jobID'])
    assert f'at byte {2 * CutShort.limit}' in done.stderr
    assert target.read_bytes() == whole and not tag.exists()
    assert zipfile.ZipFile(target).testzip() is None

    # the same partial file, but the order asked for now is another zip: If-Range fails,
    # the server sends the whole zip (200) and the file is written again from the start
    target.write_bytes(whole[:CutShort.limit])
    tag.write_text(etag)
    again = vre(s.url, other['jobID'])
    assert 'downloading it again' in again.stderr
    assert target.read_bytes() == zips[other['jobID']][0] and not tag.exists()
    target.write_bytes(whole[:CutShort.limit])             # no ETag kept: not resumed
    vre(s.url, first['jobID'])
    assert target.read_bytes() == whole
