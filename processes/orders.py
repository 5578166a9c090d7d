"""The orders dashboard: a user's orders as lines (one per granule), as the original
platform's data dashboard shows them, and the actions on an order.

    GET  /orders[?bdi=&status=&f=json|html|csv]   the caller's order lines
    GET  /orders/{id}                             one order (JSON)
    GET  /orders/{id}/download                    its files as one zip, made as it is
                                                  sent (Range, resumable)
    POST /orders/{id}/workspace  {"path": ...}    copy its files into the caller's workspace
                                                  (all or nothing)
    POST /orders/{id}/retry                       a new order of the granules that failed

The HTML page renders the table on the server for a signed-in request; opened in a
browser without a token header it reads the token from the URL fragment (#token=..., never
sent to the server) or sessionStorage and fills the same table from the JSON.
"""
from __future__ import annotations

import bisect
import csv
import io
import json
import struct
import zlib
from datetime import datetime
from urllib.parse import quote

from flask import Response, request
from markupsafe import escape

from processes.api import _json, check_job
from processes.documents import iso, status_info
from processes.order import bdi_sources, granule_rows
from storage.catalogue import clean_path
from storage.errors import Conflict, Gone
from vre.auth import current_user, require_user
from vre.errors import APIError, BAD_REQUEST, INVALID_PARAMETER, NO_SUCH_JOB, RESULT_NOT_READY

COLUMNS = [('order', 'Order number'), ('bdi', 'BDI'), ('dataset', 'Dataset name'),
           ('source', 'Source'), ('submitted', 'Submitted'), ('delivered', 'Delivered'),
           ('status', 'Status'), ('size', 'Size (bytes)')]
# a line's status from its job's state (a successful job: the granule's own status)
JOB_LINE_STATUS = {'created': 'basket', 'accepted': 'submitted', 'running': 'in progress',
                   'failed': 'failed', 'dismissed': 'dismissed'}
LINE_STATUSES = ('basket', 'submitted', 'in progress', 'delivered', 'failed')


class StoredZip:
    """A ZIP_STORED archive laid out from its members' names and sizes alone: its length is
    known before any byte is read, and any byte range maps to header bytes and slices of
    the members' files, so a zip of files already stored is sent without being written and
    a download can resume anywhere. `crc(i)` gives member i's CRC-32 when a header needs it
    (the caller computes and caches them); `open(i)` a binary file of member i. Members or
    offsets of `zip64_at` bytes or more get zip64 fields (tests lower it)."""

    def __init__(self, members: list[tuple[str, int]], crc, open_, when: datetime,
                 zip64_at: int = 0xFFFFFFFF):
        self.names = [n.encode() for n, _ in members]
        self.sizes = [size for _, size in members]
        self.crc, self.open, self.zip64_at = crc, open_, zip64_at
        self.dos = (when.hour << 11 | when.minute << 5 | when.second // 2,
                    max(when.year - 1980, 0) << 9 | when.month << 5 | when.day)
        self.offsets, self.starts, self.parts = [], [], []   # parts: (kind, member)
        at = 0
        for i, size in enumerate(self.sizes):
            self.offsets.append(at)
            for kind, length in (('local', len(self._local(i, 0))), ('data', size)):
                self.starts.append(at)
                self.parts.append((kind, i))
                at += length
        self.central_at = at
        self.starts.append(at)
        self.parts.append(('tail', None))
        self.size = at + len(self._tail(lambda i: 0))

    def _local(self, i: int, crc: int) -> bytes:
        size, big = self.sizes[i], self.sizes[i] >= self.zip64_at
        extra = struct.pack('<HHQQ', 1, 16, size, size) if big else b''
        return struct.pack('<IHHHHHIIIHH', 0x04034B50, 45 if big else 20, 0x800, 0,
                           *self.dos, crc, self._cap(size), self._cap(size),
                           len(self.names[i]), len(extra)) + self.names[i] + extra

    def _central(self, i: int, crc: int) -> bytes:
        size, offset = self.sizes[i], self.offsets[i]
        wide = ([size, size] if size >= self.zip64_at else []) + \
            ([offset] if offset >= self.zip64_at else [])
        extra = struct.pack(f'<HH{len(wide)}Q', 1, 8 * len(wide), *wide) if wide else b''
        version = 45 if wide else 20
        return struct.pack('<IHHHHHHIIIHHHHHII', 0x02014B50, 3 << 8 | version, version,
                           0x800, 0, *self.dos, crc, self._cap(size), self._cap(size),
                           len(self.names[i]), len(extra), 0, 0, 0, 0o100644 << 16,
                           self._cap(offset)) + self.names[i] + extra

    def _cap(self, value: int) -> int:
        """A 32-bit field's value, or 0xFFFFFFFF when the value is in a zip64 field."""
        return 0xFFFFFFFF if value >= self.zip64_at else value

    def _tail(self, crc) -> bytes:
        """Central directory and end records (zip64 ones when counts or offsets need them)."""
        central = b''.join(self._central(i, crc(i)) for i in range(len(self.sizes)))
        n, at, length = len(self.sizes), self.central_at, len(central)
        end = b''
        if n >= 0xFFFF or at >= self.zip64_at or length >= self.zip64_at:
            end = struct.pack('<IQHHIIQQQQ', 0x06064B50, 44, 3 << 8 | 45, 45, 0, 0, n, n,
                              length, at) + struct.pack('<IIQI', 0x07064B50, 0,
                                                        at + length, 1)
        return central + end + struct.pack('<IHHHHIIH', 0x06054B50, 0, 0, min(n, 0xFFFF),
                                           min(n, 0xFFFF), self._cap(length), self._cap(at), 0)

    def read(self, start: int, stop: int):
        """The archive's bytes [start, stop), in chunks."""
        k = bisect.bisect_right(self.starts, start) - 1
        while start < stop and k < len(self.parts):
            kind, i = self.parts[k]
            base = self.starts[k]
            end = self.starts[k + 1] if k + 1 < len(self.starts) else self.size
            upto = min(stop, end)
            if kind == 'data':
                with self.open(i) as fh:
                    fh.seek(start - base)
                    left = upto - start
                    while left > 0:
                        chunk = fh.read(min(left, 1 << 20))
                        if not chunk:
                            raise IOError(f'{self.names[i].decode()} is shorter than its '
                                          'recorded size')
                        left -= len(chunk)
                        yield chunk
            else:
                data = self._local(i, self.crc(i)) if kind == 'local' else self._tail(self.crc)
                yield data[start - base:upto - base]
            start, k = upto, k + 1


class Orders:
    def __init__(self, processes_api, index_url: str, tiers):
        self.p = processes_api
        self.manager = processes_api.manager
        self.base_url = processes_api.base_url
        self.index = index_url
        self.tiers = tiers

    def _order(self, job_id: str) -> dict:
        row = self.p.job_for_request(job_id)
        if row['type'] != 'order':
            raise APIError(404, NO_SUCH_JOB, f'job {job_id} is not an order')
        return row

    def lines(self, row: dict) -> list[dict]:
        """One line per granule of the order, from its manifest once fulfilled."""
        meta = row.get('meta') or {}
        submitted = meta.get('submitted') or (iso(row['created'])
                                             if row['status'] != 'created' else None)
        manifest = (((row.get('results') or {}).get('manifest') or {}).get('value') or {})
        entries = manifest.get('granules')
        if entries is None:
            ids = ((row.get('request') or {}).get('inputs') or {}).get('granules') or []
            known = granule_rows(self.index, ids) if ids else {}
            entries = [{'granule': g, 'bdi': known.get(g, {}).get('bdi'),
                        'title': known.get(g, {}).get('title'),
                        'url': known.get(g, {}).get('url'),
                        'expected_size': known.get(g, {}).get('size'),
                        'status': JOB_LINE_STATUS.get(row['status'], row['status'])}
                       for g in ids]
        out = []
        for e in entries:
            delivered = e['status'] == 'delivered'
            out.append({'order': row['job_id'], 'granule': e['granule'], 'bdi': e.get('bdi'),
                        'dataset': e.get('title') or e['granule'], 'source': e.get('url'),
                        'submitted': submitted,
                        'delivered': iso(row['finished']) if delivered else None,
                        'status': e['status'],
                        'size': e.get('bytes') if delivered else e.get('expected_size'),
                        'error': e.get('error') or (row['message'] if row['status'] == 'failed'
                                                    else None)})
        return out

    def summary(self, row: dict, lines: list[dict]) -> dict:
        url = f"{self.base_url}/orders/{row['job_id']}"
        doc = {'id': row['job_id'], 'status': row['status'], 'message': row['message'],
               'created': iso(row['created']), 'finished': iso(row['finished']),
               'size': sum(ln['size'] or 0 for ln in lines if ln['status'] == 'delivered'),
               'lines': lines,
               'links': [{'href': f"{self.base_url}/jobs/{row['job_id']}", 'rel': 'status',
                          'type': 'application/json'},
                         {'href': f"{self.base_url}/jobs/{row['job_id']}/prov",
                          'rel': 'provenance', 'type': 'application/json'}]}
        if row['status'] == 'successful':
            doc['links'] += [
                {'href': f'{url}/download', 'rel': 'enclosure', 'type': 'application/zip'},
                {'href': f'{url}/workspace', 'rel': 'push-to-workspace', 'method': 'POST'}]
            stored = row['results']['manifest']['value'].get('manifest_file')
            if stored:
                doc['links'].append({'href': stored['href'], 'rel': 'describedby',
                                     'type': 'application/json', 'title': 'manifest.json'})
        return doc

    # -- routes -------------------------------------------------------------------
    def dashboard(self):
        fmt = request.args.get('f') or ('html' if _browser() else 'json')
        if fmt not in ('json', 'html', 'csv'):
            raise APIError(400, BAD_REQUEST, f'f={fmt}: use json, html or csv')
        user = current_user()
        if user is None and fmt != 'html':
            require_user()          # 401; the HTML page fills itself with a token (above)
        bdis = [v for v in request.args.getlist('bdi') for v in v.split(',') if v]
        statuses = [v for v in request.args.getlist('status') for v in v.split(',') if v]
        known = bdi_sources(self.index)
        bad = [b for b in bdis if b not in known] + [s for s in statuses
                                                    if s not in LINE_STATUSES]
        if bad:
            raise APIError(400, INVALID_PARAMETER, f'unknown filter value(s) {bad}: bdi is '
                           f'one of {sorted(known)}, status one of {list(LINE_STATUSES)}')
        orders = []
        if user is not None:
            rows, _ = self.manager.query(owner=user.name, types=['order'], limit=10000)
            for row in rows:
                lines = [ln for ln in self.lines(row) if (not bdis or ln['bdi'] in bdis)
                         and (not statuses or ln['status'] in statuses)]
                if lines or not (bdis or statuses):
                    orders.append(self.summary(row, lines))
        if fmt == 'csv':
            return _csv([ln for o in orders for ln in o['lines']])
        if fmt == 'html':
            return Response(_page(orders, user is not None), mimetype='text/html')
        return _json({'orders': orders, 'numberMatched': len(orders)})

    def one(self, job_id):
        require_user()
        row = self._order(job_id)
        return _json(self.summary(row, self.lines(row)))

    def _members(self, row: dict) -> list[tuple[str, str, int, str]]:
        """(name in the zip, stored URL, size, SHA-256) of a fulfilled order's files,
        manifest.json last."""
        if row['status'] != 'successful':
            raise APIError(404, RESULT_NOT_READY, f"order {row['job_id']} is {row['status']}"
                           ': nothing delivered to download')
        manifest = row['results']['manifest']['value']
        m = manifest['manifest_file']
        return [(e['file'], e['href'], e['bytes'], e['sha256'])
                for e in manifest['granules'] if e['status'] == 'delivered'] + \
            [('manifest.json', m['href'], m['bytes'], m['sha256'])]

    def _unchanged(self, job_id: str, members: list) -> None:
        """410 Gone unless every member is still stored as delivered (size and SHA-256),
        checked with a few catalogue queries for all of them."""
        now = self.tiers.stat_many([href for _, href, _, _ in members])
        for (name, _, size, sha), facts in zip(members, now):
            if facts is None:
                raise Gone(f'{name} of order {job_id} is no longer stored (deleted or '
                           'expired): order it again')
            if facts != (size, sha):
                raise Gone(f'{name} of order {job_id} was changed or replaced since it was '
                           'delivered: order it again')

    def download(self, job_id):
        """The order as one zip, made as it is sent; `Range` answered from the layout."""
        require_user()
        row = self._order(job_id)
        members = self._members(row)
        self._unchanged(job_id, members)
        files = [self.tiers.resolve(href) for _, href, _, _ in members]
        crcs = dict((row.get('meta') or {}).get('zip_crc32') or {})
        computed = {}

        def crc(i: int) -> int:
            name = members[i][0]
            if name not in crcs:
                value = 0
                with open_(i) as fh:
                    while chunk := fh.read(1 << 20):
                        value = zlib.crc32(chunk, value)
                crcs[name] = computed[name] = value
            return crcs[name]

        def open_(i: int):
            tier, space, path = files[i]
            return tier.open(space, path)

        archive = StoredZip([(name, size) for name, _, size, _ in members], crc, open_,
                            row['finished'])
        etag = f'"{members[-1][3]}"'      # the manifest's checksum names every member's
        start, stop, status = 0, archive.size, 200
        rng = request.range
        if rng is not None and len(rng.ranges) == 1 and \
                request.headers.get('If-Range', etag) == etag:
            span = rng.range_for_length(archive.size)
            if span is None:
                return Response(status=416, headers={'Content-Range': f'bytes */{archive.size}'})
            (start, stop), status = span, 206
        headers = {'Accept-Ranges': 'bytes', 'Content-Length': str(stop - start), 'ETag': etag,
                   'Content-Disposition': f'attachment; filename=order-{job_id}.zip'}
        if status == 206:
            headers['Content-Range'] = f'bytes {start}-{stop - 1}/{archive.size}'
        if request.method == 'HEAD':
            return Response(status=status, headers=headers, mimetype='application/zip')

        def body():
            try:
                yield from archive.read(start, stop)
            finally:
                if computed:      # CRC-32s are computed once, at the first download
                    self._keep_crcs(job_id, computed)
        return Response(body(), status, headers=headers, mimetype='application/zip',
                        direct_passthrough=True)

    def _keep_crcs(self, job_id: str, computed: dict) -> None:
        row = self.manager.store.get(job_id)
        if row is not None:
            meta = dict(row.get('meta') or {})
            meta['zip_crc32'] = dict(meta.get('zip_crc32') or {}, **computed)
            self.manager.store.update(job_id, meta=meta)

    def push(self, job_id):
        """The order's files and manifest.json copied into a folder of the caller's
        workspace (default orders/<id>), in one request, all or nothing. A file already at
        a destination path gets a new version (the workspace keeps the earlier ones), as
        any upload over it does. What can be checked first is, before anything is copied:
        every file still stored as delivered (else 410) and no destination taken by a
        folder or below a file (else 409). A copy that still fails part-way is undone: the
        versions this push wrote are removed (what was there before is current again) and
        the copy's error is answered."""
        user = require_user()
        row = self._order(job_id)
        body = request.get_json(silent=True) or {}
        dest = body.get('path') if isinstance(body, dict) else None
        dest = dest or f'orders/{job_id}'
        if not isinstance(dest, str) or not dest.strip('/'):
            raise APIError(400, INVALID_PARAMETER, '"path" must be a workspace folder')
        dest = clean_path(dest)
        members = self._members(row)
        self.tiers.workspace.need(user, user.name, dest, 'write')
        self._unchanged(job_id, members)
        targets = [clean_path(f'{dest}/{name}') for name, _, _, _ in members]
        try:
            self.tiers.workspace.check_free(user.name, dest, targets)
        except Conflict as err:
            raise Conflict(f'{err.detail}; nothing was pushed') from None
        copied = []
        try:
            for (_, href, _, _), target in zip(members, targets):
                copied.append(self.tiers.copy_to_workspace(user, href, target))
        except BaseException as err:
            self.tiers.workspace.discard(copied)
            if isinstance(err, APIError):
                err.detail += (f'; nothing was pushed ({len(copied)} file(s) already copied '
                               'were removed again)')
            raise
        href = f'{self.tiers.cfg.base_url}/storage/workspace/{quote(user.name)}/{quote(dest)}'
        doc = {'tier': 'workspace', 'path': dest, 'href': href, 'files': len(copied),
               'size': sum(f.size for f in copied[:-1]),
               'manifest': self.tiers.url_for(copied[-1])}
        return _json(doc, 201, {'Location': href})

    def retry(self, job_id):
        user = require_user()
        row = self._order(job_id)
        if row['status'] not in ('successful', 'failed'):
            raise APIError(409, BAD_REQUEST, f"order {job_id} is {row['status']}: only a "
                           'finished order can be retried', title='Conflict')
        failed = [ln['granule'] for ln in self.lines(row) if ln['status'] == 'failed']
        if not failed:
            raise APIError(409, BAD_REQUEST, f'order {job_id} has no failed granule to retry',
                           title='Conflict')
        body = dict(row['request'] or {})
        body['inputs'] = dict(body.get('inputs') or {}, granules=failed)
        check_job(self.manager.get_processor(row['process_id']), body['inputs'])
        new = self.manager.submit(row['process_id'], body, owner=user.name,
                                  meta={'retry_of': job_id})
        return _json(status_info(new, self.base_url), 201,
                     {'Location': f"{self.base_url}/jobs/{new['job_id']}"})


def _browser() -> bool:
    best = request.accept_mimetypes.best_match(['application/json', 'text/html'])
    return best == 'text/html' and request.accept_mimetypes['text/html'] > \
        request.accept_mimetypes['application/json']


def _csv(lines: list[dict]) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([k for k, _ in COLUMNS] + ['granule', 'error'])
    for ln in lines:
        writer.writerow([ln[k] if ln[k] is not None else '' for k, _ in COLUMNS]
                        + [ln['granule'], ln['error'] or ''])
    return Response(buf.getvalue(), mimetype='text/csv',
                    headers={'Content-Disposition': 'attachment; filename=orders.csv'})


def _cells(ln: dict) -> str:
    cells = []
    for key, _ in COLUMNS:
        value = ln[key] if ln[key] is not None else ''
        if key == 'source' and value:
            value = f'<a href="{escape(value)}">{escape(value)}</a>'
        else:
            value = escape(value)
        cells.append(f'<td class="{key}">{value}</td>')
    return ''.join(cells)


def _page(orders: list[dict], signed_in: bool) -> str:
    rows = ''.join(f'<tr>{_cells(ln)}</tr>' for o in orders for ln in o['lines'])
    head = ''.join(f'<th>{escape(t)}</th>' for _, t in COLUMNS)
    keys = json.dumps([k for k, _ in COLUMNS])
    return f'''<!doctype html><html><head><meta charset="utf-8"><title>Orders</title>
<style>td,th{{border:1px solid #ccc;padding:2px 6px}}table{{border-collapse:collapse}}</style>
</head><body><h1>Orders</h1><p id="who">{'signed in' if signed_in else ''}</p>
<p>Export: <a href="?f=csv">CSV</a> · <a href="?f=json">JSON</a></p>
<table id="orders"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<div id="actions"></div>
<script>
(function () {{
  var signedIn = {json.dumps(signed_in)};
  var m = location.hash.match(/token=([^&]+)/);
  if (m) {{ sessionStorage.setItem('vre-token', decodeURIComponent(m[1]));
           history.replaceState(null, '', location.pathname + location.search); }}
  var token = sessionStorage.getItem('vre-token');
  if (signedIn || !token) return;
  var auth = {{'Authorization': 'Bearer ' + token, 'Accept': 'application/json'}};
  var q = new URLSearchParams(location.search); q.set('f', 'json');
  fetch('?' + q.toString(), {{headers: auth}}).then(function (r) {{ return r.json(); }})
  .then(function (doc) {{
    var body = document.querySelector('#orders tbody'), keys = {keys};
    document.getElementById('who').textContent = 'signed in';
    (doc.orders || []).forEach(function (o) {{
      o.lines.forEach(function (ln) {{
        var tr = document.createElement('tr');
        keys.forEach(function (k) {{
          var td = document.createElement('td'); td.className = k;
          td.textContent = ln[k] === null || ln[k] === undefined ? '' : ln[k];
          tr.appendChild(td); }});
        body.appendChild(tr); }});
      if (o.status !== 'successful') return;
      var b = document.createElement('button');
      b.textContent = 'Push order ' + o.id + ' to the workspace';
      b.onclick = function () {{
        fetch(location.pathname.replace(/\\/?$/, '/') + o.id + '/workspace',
              {{method: 'POST', headers: auth}}).then(function (r) {{
          b.textContent = r.ok ? 'pushed' : 'push failed (' + r.status + ')'; }}); }};
      document.getElementById('actions').appendChild(b); }});
  }});
}})();
</script></body></html>'''


def register(app, api, settings) -> None:
    """After processes.api and storage.http (their handlers and tiers are reused)."""
    handlers = Orders(app.extensions['vre_processes'], settings.index_db_url,
                      app.extensions['vre_storage'])
    app.add_url_rule('/orders', 'vre_orders', handlers.dashboard)
    app.add_url_rule('/orders/<job_id>', 'vre_order', handlers.one)
    app.add_url_rule('/orders/<job_id>/download', 'vre_order_download', handlers.download,
                     methods=['GET', 'HEAD'])
    app.add_url_rule('/orders/<job_id>/workspace', 'vre_order_push', handlers.push,
                     methods=['POST'])
    app.add_url_rule('/orders/<job_id>/retry', 'vre_order_retry', handlers.retry,
                     methods=['POST'])
