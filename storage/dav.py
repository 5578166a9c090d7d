"""The Workspace as WebDAV (wsgidav), for file managers, rclone and QGIS.

Paths are /dav/<space>/<path>, as in the REST API. Auth is the same bearer token, or HTTP
Basic with the user name and the token as password (what file managers and rclone send).
Every read and write goes through the Workspace tier, so replicas, checksums, versions,
the trash and sharing rules all hold here too.
"""
from __future__ import annotations

import base64
import tempfile

from wsgidav.dav_error import DAVError, HTTP_FORBIDDEN
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from storage.catalogue import under
from storage.errors import NotFound, StorageError
from storage.tiers import MODES


def _dav_error(err: StorageError) -> DAVError:
    return DAVError(err.status, context_info=err.detail)


def _split(path: str) -> tuple[str, str]:
    space, _, rest = path.strip('/').partition('/')
    return space, rest


class _Base:
    def _ctx(self, environ):
        self.user = environ['vre.user']
        self.ws = environ['wsgidav.provider'].tiers.workspace
        self.space, self.rel = _split(self.path)

    def _need(self, mode):
        try:
            self.ws.need(self.user, self.space, self.rel, mode)
        except StorageError as err:
            raise _dav_error(err) from None

    def delete(self):
        self._need('write')
        try:
            self.ws.delete(self.space, self.rel)
        except StorageError as err:
            raise _dav_error(err) from None

    def support_recursive_move(self, dest_path):
        return True

    def move_recursive(self, dest_path):
        _move(self, dest_path)


class Root(DAVCollection):
    """The spaces a user can reach: their own and those of users who shared with them."""

    def __init__(self, environ):
        super().__init__('/', environ)
        self.user = environ['vre.user']
        self.ws = environ['wsgidav.provider'].tiers.workspace

    def get_member_names(self):
        return sorted({self.user.name} | {s['owner'] for s in self.ws.shared_with(self.user)})

    def get_member(self, name):
        return Folder(f'/{name}', self.environ)


class Folder(_Base, DAVCollection):
    def __init__(self, path, environ):
        DAVCollection.__init__(self, path, environ)
        self._ctx(environ)

    def _visible(self, path: str) -> bool:
        """Readable, or on the way to something shared with this user."""
        if self.ws.access(self.user, self.space, path):
            return True
        return any(s['owner'] == self.space and under(s['path'], path)
                   for s in self.ws.shared_with(self.user))

    def get_member_names(self):
        try:
            entries = self.ws.list(self.space, self.rel)
        except StorageError as err:
            raise _dav_error(err) from None
        return [e['name'] for e in entries if self._visible(e['path'])]

    def get_member(self, name):
        return self.provider.get_resource_inst(f'{self.path.rstrip("/")}/{name}', self.environ)

    def create_empty_resource(self, name):
        path = f'{self.path.rstrip("/")}/{name}'
        res = File(path, self.environ, None)
        res._need('write')
        return res

    def create_collection(self, name):
        path = f'{self.path.rstrip("/")}/{name}'
        sub = Folder(path, self.environ)
        sub._need('write')
        try:
            self.ws.mkdir(self.space, sub.rel)
        except StorageError as err:
            raise _dav_error(err) from None

    def support_recursive_delete(self):
        return True

    def copy_move_single(self, dest_path, *, is_move):
        dest = Folder(dest_path, self.environ)
        dest._need('write')
        if not self.ws.is_folder(dest.space, dest.rel):
            self.ws.mkdir(dest.space, dest.rel)

    def get_last_modified(self):
        return None


def _move(res, dest_path):
    space, rel = _split(dest_path)
    if space != res.space:
        raise DAVError(HTTP_FORBIDDEN, context_info='moves stay inside one space')
    res._need('owner')
    try:
        res.ws.move(res.space, res.rel, rel)
    except StorageError as err:
        raise _dav_error(err) from None


class File(_Base, DAVNonCollection):
    def __init__(self, path, environ, stored):
        DAVNonCollection.__init__(self, path, environ)
        self._ctx(environ)
        self.stored = stored
        self._spool = None

    def get_content_length(self):
        return self.stored.size if self.stored else 0

    def get_content_type(self):
        return self.stored.media_type if self.stored else 'application/octet-stream'

    def get_creation_date(self):
        return self.stored.created if self.stored else None

    def get_last_modified(self):
        return self.stored.created if self.stored else None

    def get_etag(self):
        return self.stored.sha256 if self.stored else None

    def support_etag(self):
        return True

    def support_ranges(self):
        return True

    def get_content(self):
        try:
            return self.ws.open(self.space, self.rel)
        except StorageError as err:
            raise _dav_error(err) from None

    def begin_write(self, *, content_type=None):
        self._need('write')
        self._type = content_type
        self._spool = tempfile.NamedTemporaryFile(dir=self.ws.cfg.staging, prefix='dav-')
        return _KeepOpen(self._spool)

    def end_write(self, *, with_errors):
        spool, self._spool = self._spool, None
        try:
            if not with_errors:
                spool.seek(0)
                self.stored = self.ws.put(self.space, self.rel, spool, media_type=self._type,
                                          author=self.user.name)
        except StorageError as err:
            raise _dav_error(err) from None
        finally:
            spool.close()

    def copy_move_single(self, dest_path, *, is_move):
        if is_move:
            return _move(self, dest_path)
        dest = File(dest_path, self.environ, None)
        dest._need('write')
        try:
            with self.ws.open(self.space, self.rel) as fh:
                self.ws.put(dest.space, dest.rel, fh, media_type=self.stored.media_type,
                            author=self.user.name,
                            meta={'provenance': self.ws.url_for(self.stored)})
        except StorageError as err:
            raise _dav_error(err) from None


class _KeepOpen:
    """wsgidav closes the write handle before end_write; keep the spool until then."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, data):
        return self.fh.write(data)

    def close(self):
        self.fh.flush()


class WorkspaceProvider(DAVProvider):
    def __init__(self, tiers):
        super().__init__()
        self.tiers = tiers

    def is_readonly(self):
        return False

    def get_resource_inst(self, path, environ):
        self._count_get_resource_inst += 1
        user = environ['vre.user']
        if path.strip('/') == '':
            return Root(environ)
        space, rel = _split(path)
        ws = self.tiers.workspace
        try:
            f = ws.stat(space, rel) if rel else None
        except NotFound:
            f = None
        except StorageError:
            return None
        if f is not None:
            if MODES[ws.access(user, space, rel)] < MODES['read']:
                return None
            return File(path, environ, f)
        folder = Folder(path, environ)
        if ws.is_folder(space, rel) and folder._visible(rel):
            return folder
        if not rel and space == user.name:
            return folder   # one's own empty workspace
        return None


def make_dav_app(tiers, users):
    """The WebDAV WSGI app, behind our token check (wsgidav's own authenticator is off)."""
    dav = WsgiDAVApp({
        'provider_mapping': {'/': WorkspaceProvider(tiers)},
        'mount_path': '/dav',
        'middleware_stack': [ErrorPrinter, WsgiDavDirBrowser, RequestResolver],
        'http_authenticator': {'domain_controller': None},
        'lock_storage': _lock_storage(tiers.cfg.redis_url),
        'logging': {'enable': False},
        'verbose': 1,
        'dir_browser': {'enable': True, 'response_trailer': 'Marine VRE workspace'},
    })

    def authenticated(environ, start_response):
        user = _user(environ.get('HTTP_AUTHORIZATION', ''), users)
        if user is None:
            start_response('401 Unauthorized', [
                ('WWW-Authenticate', 'Basic realm="Marine VRE workspace", charset="UTF-8"'),
                ('Content-Type', 'application/problem+json')])
            return [b'{"type": "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/'
                    b'unauthorized", "title": "Unauthorized", "status": 401, "detail": '
                    b'"use your VRE token: Bearer, or Basic with your user name and token"}']
        environ['vre.user'] = user
        environ['wsgidav.auth.user_name'] = user.name
        return dav(environ, start_response)

    return authenticated


def _lock_storage(redis_url: str):
    """Locks in Redis when there is one, so a LOCK taken through one gunicorn worker holds
    in every other; in memory (one process only) otherwise."""
    if not redis_url:
        return True
    from urllib.parse import urlsplit

    from wsgidav.lock_man.lock_storage_redis import LockStorageRedis
    u = urlsplit(redis_url)
    return LockStorageRedis(host=u.hostname or '127.0.0.1', port=u.port or 6379,
                            db=int(u.path.strip('/') or 0), password=u.password)


def _user(header: str, users):
    scheme, _, value = header.partition(' ')
    if users is None or not value.strip():
        return None
    if scheme.lower() == 'bearer':
        return users.by_token(value.strip())
    if scheme.lower() == 'basic':
        try:
            name, _, token = base64.b64decode(value.strip()).decode('utf8').partition(':')
        except (ValueError, UnicodeDecodeError):
            return None
        user = users.by_token(token)
        return user if user is not None and user.name == name else None
    return None
