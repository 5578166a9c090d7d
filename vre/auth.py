"""Bearer-token users and groups from a small YAML users file.

The embedded default creates the file on first start (one `admin` user with a random
token) and prints its path. Anonymous requests may read public resources; anything a
user owns (jobs, files) is reachable only by that user, users it is shared with, or admins.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from flask import g, request

from vre.errors import APIError, FORBIDDEN, UNAUTHORIZED


@dataclass(frozen=True)
class User:
    name: str
    groups: frozenset = frozenset()
    admin: bool = False

    def may_access(self, owner: str | None) -> bool:
        """True if this user may see a resource owned by `owner` (None = anonymous/public)."""
        return self.admin or owner is None or owner == self.name


def ensure_users_file(path: Path) -> bool:
    """Create the default users file if missing; True when it was created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {'users': {'admin': {'token': secrets.token_urlsafe(24), 'groups': ['admins'],
                                   'admin': True}},
               'groups': {'admins': {'description': 'operators of this VRE'}}}
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    path.chmod(0o600)
    return True


class UserDirectory:
    """Users by token, re-read when the file changes so an operator can add users live."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._mtime = None
        self._by_token: dict[str, User] = {}
        self._by_name: dict[str, User] = {}

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._by_token, self._by_name, self._mtime = {}, {}, None
            return
        if mtime == self._mtime:
            return
        data = yaml.safe_load(self.path.read_text()) or {}
        by_token, by_name = {}, {}
        for name, entry in (data.get('users') or {}).items():
            user = User(name=str(name), groups=frozenset(entry.get('groups') or ()),
                        admin=bool(entry.get('admin', False)))
            by_name[user.name] = user
            if entry.get('token'):
                by_token[str(entry['token'])] = user
        self._by_token, self._by_name, self._mtime = by_token, by_name, mtime

    def by_token(self, token: str) -> User | None:
        self._reload()
        return self._by_token.get(token)

    def by_name(self, name: str) -> User | None:
        self._reload()
        return self._by_name.get(name)

    def group_members(self, group: str) -> list[str]:
        self._reload()
        return sorted(u.name for u in self._by_name.values() if group in u.groups)


def install_auth(app, directory: UserDirectory) -> None:
    """Resolve the bearer token of every request into `flask.g.user` (None = anonymous)."""
    app.extensions['vre_users'] = directory

    @app.before_request
    def _authenticate():
        g.user = None
        header = request.headers.get('Authorization', '')
        if not header:
            return None
        scheme, _, token = header.partition(' ')
        if scheme.lower() != 'bearer' or not token.strip():
            raise APIError(401, UNAUTHORIZED, 'Authorization must be "Bearer <token>"',
                           headers={'WWW-Authenticate': 'Bearer'})
        user = directory.by_token(token.strip())
        if user is None:
            raise APIError(401, UNAUTHORIZED, 'unknown or revoked token',
                           headers={'WWW-Authenticate': 'Bearer'})
        g.user = user
        return None


def current_user() -> User | None:
    """The authenticated user of this request, or None when anonymous."""
    return g.get('user')


def require_user() -> User:
    """The authenticated user, or a 401 problem for anonymous requests."""
    user = current_user()
    if user is None:
        raise APIError(401, UNAUTHORIZED, 'this operation needs a bearer token',
                       headers={'WWW-Authenticate': 'Bearer'})
    return user


def require_access(owner: str | None) -> None:
    """404-free ownership check: callers should answer 'not found' for others' resources
    where existence itself is private; this raises 403 where it is not."""
    user = current_user()
    if owner is not None and (user is None or not user.may_access(owner)):
        raise APIError(403, FORBIDDEN, 'this resource belongs to another user')
