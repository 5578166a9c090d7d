"""One REST API for the three tiers (JSON, or HTML with f=html), plus the Workspace as
WebDAV at /dav.

    GET    /storage                                spaces you can reach
    GET    /storage/{workspace|dataspace}/{space}/{path}   file (Range) or folder listing;
           ?f=json stat, ?versions list, ?version=N an old version, ?trash the trash
    PUT    same                                    upload (raw body; ?licence=&citation=&provenance=)
    DELETE same                                    workspace: to the trash; dataspace: removed
    POST   same, JSON {"action": mkdir|move|share|unshare|link|restore|copy, ...}
    POST   /storage/volatile?ttl=S&name=N          upload, 201 with the capability URL
    GET|HEAD|DELETE /storage/volatile/{token}      no listing
    GET    /storage/public/{token}[/{path}]        a public link; DELETE /storage/links/{token}
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request
from markupsafe import escape

from storage.errors import BadPath, NotFound, StorageError
from storage.tiers import Tiers, open_tiers
from vre.auth import require_user

bp = Blueprint('storage', __name__)


def tiers() -> Tiers:
    return current_app.extensions['vre_storage']


def _wants_html() -> bool:
    f = request.args.get('f')
    if f:
        return f == 'html'
    best = request.accept_mimetypes.best_match(['application/json', 'text/html'])
    return best == 'text/html' and request.accept_mimetypes[best] > \
        request.accept_mimetypes['application/json']


def _html(title: str, body: dict) -> str:
    rows = ''
    for e in body.get('entries', []):
        href = e.get('href', '')
        rows += (f'<tr><td>{escape(e.get("type", ""))}</td><td><a href="{escape(href)}">'
                 f'{escape(e.get("name", e.get("path", "")))}</a></td>'
                 f'<td>{escape(e.get("size", ""))}</td><td>{escape(e.get("sha256", ""))}</td></tr>')
    meta = escape(json.dumps({k: v for k, v in body.items() if k != 'entries'}, indent=1))
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'</head><body><h1>{escape(title)}</h1><table><tr><th>type</th><th>name</th>'
            f'<th>size</th><th>sha256</th></tr>{rows}</table><pre>{meta}</pre></body></html>')


def answer(body: dict, status: int = 200, title: str = 'storage') -> Response:
    if _wants_html():
        return Response(_html(title, body), status, mimetype='text/html')
    return Response(json.dumps(body), status, mimetype='application/json')


def send(fh, f, filename: str | None = None) -> Response:
    """Stream an open file with Range support (one range; others get the whole file)."""
    start, stop, status = 0, f.size, 200
    rng = request.range
    if rng is not None and len(rng.ranges) == 1:
        span = rng.range_for_length(f.size)
        if span is None:
            fh.close()
            return Response(status=416, headers={'Content-Range': f'bytes */{f.size}'})
        (start, stop), status = span, 206
    if start:
        fh.seek(start)

    def body():
        left = stop - start
        try:
            while left > 0:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            fh.close()

    headers = {'Accept-Ranges': 'bytes', 'Content-Length': str(stop - start),
               'Content-Disposition': f"inline; filename*=UTF-8''"
                                      f"{_quote(filename or f.name)}"}
    if f.sha256:
        headers['ETag'] = f'"{f.sha256}"'
        headers['Digest'] = f'sha-256={f.sha256}'
    if status == 206:
        headers['Content-Range'] = f'bytes {start}-{stop - 1}/{f.size}'
    if request.method == 'HEAD':
        fh.close()
        return Response(status=status, headers=headers, mimetype=f.media_type)
    return Response(body(), status, headers=headers, mimetype=f.media_type,
                    direct_passthrough=True)


def _quote(name: str) -> str:
    from urllib.parse import quote
    return quote(name, safe='')


def _meta_args() -> dict:
    return {k: request.args[k] for k in ('licence', 'citation', 'provenance') if k in request.args}


def _upload_args() -> dict:
    """The request body as a stream with no app-wide size cap: tiers enforce their own quota."""
    request.max_content_length = 1 << 60   # None would mean "the app-wide limit"
    return dict(src=request.stream, media_type=request.mimetype or None, meta=_meta_args(),
                expected_size=request.content_length)


def _href(tier: str, space: str, path: str) -> str:
    from urllib.parse import quote
    return f'{tiers().cfg.base_url}/storage/{tier}/{quote(space)}/{quote(path)}'.rstrip('/')


# -- routes -----------------------------------------------------------------------------------
def _spaces(user) -> dict:
    t = tiers()
    ws = [{'space': user.name, 'href': _href('workspace', user.name, '')}]
    ws += [dict(s, href=_href('workspace', s['owner'], s['path']))
           for s in t.workspace.shared_with(user)]
    ds = [{'space': s, 'href': _href('dataspace', s, '')}
          for s in [user.name] + [f'@{g}' for g in sorted(user.groups)]]
    return {'workspace': ws, 'dataspace': ds, 'dav': f'{t.cfg.base_url}/dav/',
            'volatile': {'upload': f'{t.cfg.base_url}/storage/volatile',
                         'max_ttl': t.cfg.max_ttl}}


@bp.get('/storage')
def spaces():
    return answer(_spaces(require_user()), title='Your storage')


@bp.get('/storage/<any(workspace, dataspace):tier>')
def tier_root(tier):
    body = _spaces(require_user())
    return answer({'entries': [dict(e, type='space', name=e.get('space') or e['owner'])
                               for e in body[tier]]}, title=tier)


@bp.route('/storage/<any(workspace, dataspace):tier>/<space>', methods=['GET', 'HEAD', 'POST'],
          defaults={'path': ''})
@bp.route('/storage/<any(workspace, dataspace):tier>/<space>/', methods=['GET', 'HEAD', 'POST'],
          defaults={'path': ''})
@bp.route('/storage/<any(workspace, dataspace):tier>/<space>/<path:path>',
          methods=['GET', 'HEAD', 'PUT', 'DELETE', 'POST'])
def item(tier, space, path):
    user = require_user()
    t = tiers().get(tier)
    if request.method in ('GET', 'HEAD'):
        t.need(user, space, path, 'read')
        return read(t, space, path, user)
    if request.method == 'PUT':
        t.need(user, space, path, 'write')
        f = t.put(space, path, author=user.name, **_upload_args())
        return answer(dict(f.to_dict(), href=t.url_for(f)), 201)
    if request.method == 'DELETE':
        t.need(user, space, path, 'write')
        n = t.delete(space, path)
        return answer({'deleted': path, 'files': n,
                       'trash': tier == 'workspace'})
    return action(t, space, path, user)


def read(t, space, path, user):
    args = request.args
    if 'trash' in args and t.name == 'workspace':
        t.need(user, space, '', 'owner')
        return answer({'trash': t.trash(space)}, title='trash')
    if 'versions' in args and t.name == 'workspace':
        return answer({'versions': t.versions(space, path)}, title=f'versions of {path}')
    version = args.get('version')
    if version is not None and not version.isdigit():
        raise BadPath('version must be a positive integer')
    try:
        f = t.stat(space, path, version) if path else None
    except NotFound:
        f = None
    if f is None:
        entries = [dict(e, href=_href(t.name, space, e['path'])) for e in t.list(space, path)]
        return answer({'tier': t.name, 'space': space, 'path': path, 'entries': entries},
                      title=f'{t.name}/{space}/{path}')
    if args.get('f') in ('json', 'html'):
        body = dict(f.to_dict(), href=t.url_for(f))
        if t.name == 'workspace' and t.access(user, space, path) == 'owner':
            body['shares'] = t.shares(space, path)
            body['links'] = t.links(space, path)
        return answer(body, title=path)
    return send(t.open(space, path, version), f)


def action(t, space, path, user):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get('action'), str):
        raise BadPath('POST needs a JSON object with an "action": '
                      'mkdir, move, share, unshare, link, restore or copy')
    act = body['action']
    ws_only = {'move', 'share', 'unshare', 'link', 'restore', 'copy'}
    if act in ws_only and t.name != 'workspace':
        raise BadPath(f'"{act}" is a workspace action')
    if act == 'mkdir':
        t.need(user, space, path, 'write')
        t.mkdir(space, path)
        return answer({'created': path, 'href': _href(t.name, space, path)}, 201)
    if act == 'copy':
        t.need(user, space, path, 'write')
        if not isinstance(body.get('from'), str):
            raise BadPath('"copy" needs "from": the URL of a stored file')
        f = tiers().copy_to_workspace(user, body['from'], path, owner=space)
        return answer(dict(f.to_dict(), href=t.url_for(f)), 201)
    t.need(user, space, path, 'owner')
    if act == 'move':
        if not isinstance(body.get('to'), str):
            raise BadPath('"move" needs "to": the new path in the same space')
        t.move(space, path, body['to'])
        return answer({'moved': path, 'to': body['to'],
                       'href': _href(t.name, space, body['to'])})
    if act in ('share', 'unshare'):
        if not isinstance(body.get('with'), str):
            raise BadPath(f'"{act}" needs "with": "user:<name>" or "group:<name>"')
        if act == 'unshare':
            t.unshare(space, path, body['with'])
            return answer({'unshared': path, 'with': body['with']})
        return answer(t.share(space, path, body['with'], body.get('mode', 'read')), 201)
    if act == 'link':
        token = t.link(space, path)
        return answer({'url': f'{t.cfg.base_url}/storage/public/{token}', 'token': token}, 201)
    if act == 'restore':
        return answer({'restored': path, 'files': t.restore(space, path)})
    raise BadPath(f'unknown action {act!r}')


@bp.post('/storage/volatile')
def volatile_upload():
    user = require_user()
    ttl = request.args.get('ttl')
    if ttl is not None and not ttl.isdigit():
        raise BadPath('ttl must be a whole number of seconds')
    v = tiers().volatile
    f = v.put(user.name, request.args.get('name', 'file'), ttl=None if ttl is None else int(ttl),
              author=user.name, **_upload_args())
    url = v.url_for(f)
    return answer(dict(f.to_dict(), url=url), 201, title='volatile file')


@bp.get('/storage/volatile')
@bp.get('/storage/volatile/')
def volatile_list():
    raise NotFound('the volatile tier has no listing; files are reachable by URL only')


@bp.route('/storage/volatile/<token>', methods=['GET', 'HEAD', 'DELETE'])
@bp.route('/storage/volatile/<token>/<path:name>', methods=['GET', 'HEAD', 'DELETE'])
def volatile_item(token, name=None):
    v = tiers().volatile
    if request.method == 'DELETE':
        v.delete(token, user=require_user())
        return answer({'deleted': True})
    if request.args.get('f') in ('json', 'html'):
        f = v.stat(token)
        return answer(f.to_dict(), title=f.name)
    f, fh = v.opened(token)
    return send(fh, f)


@bp.route('/storage/public/<token>', methods=['GET', 'HEAD'])
@bp.route('/storage/public/<token>/<path:sub>', methods=['GET', 'HEAD'])
def public(token, sub=''):
    ws = tiers().workspace
    space, path = ws.resolve_link(token, sub)
    try:
        f = ws.stat(space, path)
    except NotFound:
        base = f'{ws.cfg.base_url}/storage/public/{token}'
        prefix = ws.resolve_link(token)[1]
        entries = [dict(e, href=f'{base}/{e["path"][len(prefix) + 1:]}')
                   for e in ws.list(space, path)]
        return answer({'entries': entries}, title='shared folder')
    if request.args.get('f') in ('json', 'html'):
        return answer(f.to_dict(), title=f.name)
    return send(ws.open(space, path), f)


@bp.delete('/storage/links/<token>')
def revoke(token):
    tiers().workspace.revoke(token, require_user())
    return answer({'revoked': token})


def register(app, api, settings) -> None:
    """Mount the REST routes and the WebDAV door on the app (called by vre.app)."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from storage.dav import make_dav_app

    users = app.extensions.get('vre_users')
    t = open_tiers(settings, getattr(api, 'config', None), users)
    app.extensions['vre_storage'] = t
    app.register_blueprint(bp)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {'/dav': make_dav_app(t, users)})


__all__ = ['register', 'bp', 'StorageError']
