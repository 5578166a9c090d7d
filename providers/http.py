"""Routes of providers/: the BDI table at /bdis (JSON and HTML).

Counts, last harvest and health come from the index (providers/store.py); nothing is probed
over the network per request (for grid BDIs: a stat of their files in the mirror).
`register` is called by vre/app.py.
"""
from __future__ import annotations

import html
import json
import os

import sqlalchemy as sa
from flask import Blueprint, Response, request

from providers import store
from vre.errors import BAD_REQUEST, APIError


def bdi_table(db_url: str) -> list[dict]:
    """One row per harvested BDI: kind, collections, granule counts, last harvest, health."""
    eng = store.engine(db_url)
    B, C, G, I = store.BDI, store.COLLECTION, store.GRANULE, store.ISSUE
    with eng.connect() as conn:
        counts = dict(conn.execute(sa.select(G.c.bdi, sa.func.count()).group_by(G.c.bdi)).all())
        per_coll = dict(conn.execute(sa.select(G.c.collection, sa.func.count())
                                     .group_by(G.c.collection)).all())
        issues = dict(conn.execute(sa.select(I.c.bdi, sa.func.count()).group_by(I.c.bdi)).all())
        colls = sorted(conn.execute(sa.select(C.c.bdi, C.c.id, C.c.title, C.c.extra)).all(),
                       key=lambda c: (c.bdi, c.id))     # one order whatever the collation
        rows = sorted(conn.execute(sa.select(B)).mappings().all(), key=lambda r: r['name'])
    out = []
    for r in rows:
        files = json.loads(r['report'] or '{}').get('files')   # grid files served as they are
        grids = [json.loads(c.extra or '{}').get('data') for c in colls if c.bdi == r['name']]
        files = files or [g for g in grids if g] or None   # a harvested BDI with grids too
        missing = [os.path.basename(f) for f in files or [] if not os.path.exists(f)]
        mine = []
        for c in colls:
            if c.bdi != r['name']:
                continue
            data = json.loads(c.extra or '{}').get('data')
            mine.append({'id': c.id, 'title': c.title, 'granules': per_coll.get(c.id, 0),
                         **({'available': os.path.exists(data)} if data else {})})
        health = {'reachable': bool(r['reachable']), 'last_error': r['last_error'],
                  'skipped': issues.get(r['name'], 0)}
        if files is not None:
            health.update(reachable=health['reachable'] and not missing, last_error='; '.join(
                filter(None, [r['last_error'], missing and
                              f'not in the mirror: {", ".join(missing)}'])) or None)
        out.append({
            'name': r['name'], 'title': r['title'], 'kind': r['kind'], 'source': r['source'],
            'collections': mine, 'granules': counts.get(r['name'], 0),
            'last_harvest': r['last_harvest'], 'health': health,
        })
    return out


def _html(rows: list[dict]) -> str:
    e = html.escape
    body = ''.join(
        f"<tr><td>{e(r['name'])}</td><td>{e(r['title'] or '')}</td><td>{e(r['kind'] or '')}</td>"
        f"<td>{'<br>'.join(e(c['id']) + ' (' + str(c['granules']) + ')' for c in r['collections'])}"
        f"</td><td>{r['granules']}</td><td>{e(r['last_harvest'] or '')}</td>"
        f"<td>{'reachable' if r['health']['reachable'] else 'unreachable'}"
        f"{'<br>' + e(r['health']['last_error']) if r['health']['last_error'] else ''}</td></tr>"
        for r in rows)
    return ('<!doctype html><html><head><meta charset="utf-8"><title>BDIs</title></head><body>'
            '<h1>Blue Data Infrastructures</h1><table border="1"><tr><th>BDI</th><th>Title</th>'
            '<th>Kind of data</th><th>Collections (granules)</th><th>Granules</th>'
            f'<th>Last harvest</th><th>Health</th></tr>{body}</table>'
            '<p><a href="?f=json">JSON</a></p></body></html>')


def register(app, api, settings) -> None:
    bp = Blueprint('bdis', __name__)

    @bp.get('/bdis')
    def bdis():
        fmt = request.args.get('f')
        if fmt not in (None, 'json', 'html'):
            raise APIError(400, BAD_REQUEST, f'f must be json or html, not {fmt!r}')
        rows = bdi_table(settings.index_db_url)
        wants_html = fmt == 'html' or (fmt is None and request.accept_mimetypes.best_match(
            ['application/json', 'text/html']) == 'text/html')
        if wants_html:
            return Response(_html(rows), mimetype='text/html')
        return Response(json.dumps({'bdis': rows, 'links': [
            {'rel': 'self', 'type': 'application/json', 'href': f'{settings.url}/bdis?f=json'},
            {'rel': 'alternate', 'type': 'text/html', 'href': f'{settings.url}/bdis?f=html'}]}),
            mimetype='application/json')

    app.register_blueprint(bp)
    from providers.query import accept_cql2_text
    accept_cql2_text()
    from providers import coverage
    coverage.register(app, api, settings)
    from providers import ecotaxa
    ecotaxa.register(app, api, settings)
