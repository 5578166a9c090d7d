"""The orders dashboard: a user's orders as lines (one per granule), as the original
platform's data dashboard shows them, and the actions on an order.

    GET  /orders[?bdi=&status=&f=json|html|csv]   the caller's order lines
    GET  /orders/{id}                             one order (JSON)
    GET  /orders/{id}/download                    the delivered zip (streamed, Range)
    POST /orders/{id}/workspace  {"path": ...}    copy the zip into the caller's workspace
    POST /orders/{id}/retry                       a new order of the granules that failed

The HTML page renders the table on the server for a signed-in request; opened in a
browser without a token header it reads the token from the URL fragment (#token=..., never
sent to the server) or sessionStorage and fills the same table from the JSON.
"""
from __future__ import annotations

import csv
import io
import json

from flask import Response, request
from markupsafe import escape

from processes.api import _json, check_job
from processes.documents import iso, status_info
from processes.order import bdi_sources, granule_rows
from vre.auth import current_user, require_user
from vre.errors import APIError, BAD_REQUEST, INVALID_PARAMETER, NO_SUCH_JOB, RESULT_NOT_READY

COLUMNS = [('order', 'Order number'), ('bdi', 'BDI'), ('dataset', 'Dataset name'),
           ('source', 'Source'), ('submitted', 'Submitted'), ('delivered', 'Delivered'),
           ('status', 'Status'), ('size', 'Size (bytes)')]
# a line's status from its job's state (a successful job: the granule's own status)
JOB_LINE_STATUS = {'created': 'basket', 'accepted': 'submitted', 'running': 'in progress',
                   'failed': 'failed', 'dismissed': 'dismissed'}
LINE_STATUSES = ('basket', 'submitted', 'in progress', 'delivered', 'failed')


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

    def _zip(self, row: dict) -> str:
        if row['status'] != 'successful':
            raise APIError(404, RESULT_NOT_READY, f"order {row['job_id']} is {row['status']}"
                           ': nothing delivered to download')
        return row['results']['order']['href']

    def download(self, job_id):
        from storage.http import send
        require_user()
        row = self._order(job_id)
        tier, space, path = self.tiers.resolve(self._zip(row))
        f = tier.stat(space, path)
        return send(tier.open(space, path), f, filename=f'order-{job_id}.zip')

    def push(self, job_id):
        user = require_user()
        row = self._order(job_id)
        body = request.get_json(silent=True) or {}
        dest = body.get('path') if isinstance(body, dict) else None
        dest = dest or f'orders/order-{job_id}.zip'
        if not isinstance(dest, str):
            raise APIError(400, INVALID_PARAMETER, '"path" must be a workspace path')
        stored = self.tiers.copy_to_workspace(user, self._zip(row), dest)
        doc = dict(stored.to_dict(), href=self.tiers.url_for(stored))
        return _json(doc, 201, {'Location': doc['href']})

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
