"""The three storage tiers behind one small interface, usable without Flask (Celery workers).

    tiers = open_tiers(settings, config)
    f = tiers.get('workspace').put('alice', 'runs/out.nc', fileobj, meta={'provenance': '/jobs/1'})
    tiers.get('workspace').url_for(f)

A *space* is whose files these are: a user name; in the dataspace also '@group'.
Access control (who may reach a space) is `Tier.access`; the HTTP layer enforces it, the
Python API trusts its caller.
"""
from __future__ import annotations

import errno
import hashlib
import json
import mimetypes
import os
import secrets
import shutil
import stat
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import bindparam, func, select, update

from storage.catalogue import Catalogue, FileRow, FolderRow, LinkRow, ShareRow, clean_path, under
from storage.config import StorageConfig
from storage.errors import (BadPath, Conflict, DiskFull, Forbidden, Gone, IncompleteUpload,
                            NotFound, QuotaExceeded, StorageError, TooLarge, Unavailable)
from storage.replicas import CHUNK, ReplicaStore

META_KEYS = ('licence', 'citation', 'provenance')
TOMBSTONE = 7 * 24 * 3600   # how long an expired volatile URL still answers 410
MODES = {None: 0, 'read': 1, 'write': 2, 'owner': 3}


@dataclass
class StoredFile:
    tier: str
    owner: str
    path: str
    size: int
    sha256: str | None
    media_type: str
    version: int = 1
    created: float = 0.0
    author: str | None = None
    licence: str | None = None
    citation: str | None = None
    provenance: str | None = None
    expires: float | None = None
    codec: str | None = None
    stored_size: int | None = None
    token: str | None = field(default=None, repr=False)   # volatile capability, never stored
    local: Path | None = field(default=None, repr=False)  # its file, on the local tiers

    @classmethod
    def from_row(cls, row: FileRow, token: str | None = None) -> 'StoredFile':
        return cls(tier=row.tier, owner=row.owner, path=row.path, size=row.size,
                   sha256=row.sha256 or None, media_type=row.media_type, version=row.version,
                   created=row.created, author=row.author, licence=row.licence,
                   citation=row.citation, provenance=row.provenance, expires=row.expires,
                   codec=row.codec, stored_size=row.stored_size, token=token)

    @property
    def name(self) -> str:
        return self.path.rsplit('/', 1)[-1]

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None and k not in ('token', 'local')}
        d['type'] = 'file'
        return d


STORED_FIELDS = {f.name for f in fields(StoredFile)}


def guess_type(path: str, given: str | None) -> str:
    if given and given.split(';')[0].strip() not in ('', 'application/x-www-form-urlencoded'):
        return given
    return mimetypes.guess_type(path)[0] or 'application/octet-stream'


def _metas(meta: dict | None, metas: list | None, files: list) -> list[dict]:
    """The metadata of each of `files`: theirs (`metas`) over the shared `meta`, all with the
    same keys (None where a file has none: the rows are inserted in one statement)."""
    each = [_meta(dict(meta or {}, **(m or {}))) for m in (metas or [None] * len(files))]
    keys = {k for m in each for k in m}
    return [{k: m.get(k) for k in keys} for m in each]


def _meta(meta: dict | None) -> dict:
    meta = meta or {}
    unknown = set(meta) - set(META_KEYS)
    if unknown:
        raise BadPath(f'unknown metadata keys: {sorted(unknown)}; allowed: {list(META_KEYS)}')
    return {k: (str(v) if v is not None else None) for k, v in meta.items()}


class _Source:
    """Accept a file object, a path or bytes as the input of put()."""

    def __init__(self, src):
        self.src, self.fh = src, None

    def __enter__(self):
        if isinstance(src := self.src, (bytes, bytearray)):
            import io
            self.fh = io.BytesIO(src)
        elif isinstance(src, (str, os.PathLike)):
            self.fh = open(src, 'rb')
        else:
            return src
        return self.fh

    def __exit__(self, *exc):
        if self.fh is not None and not isinstance(self.src, (bytes, bytearray)):
            self.fh.close()


def move_local(src: Path, target: Path, room: int | None = None, limit: int | None = None,
               what: str = '', fsync: bool = True, sha256: str | None = None,
               hash_later: bool = False) -> tuple[int, str] | None:
    """Rename a disposable file (a job's output) to `target` after hashing it: the bytes are
    read once and never written again; not even once when the caller hashed them while
    writing them (`sha256`) or hashes them after (`hash_later`: the checksum is then '' until
    `record_sha256`). None when they are on another filesystem."""
    size = os.stat(src).st_size
    if room is not None and size > room:
        raise QuotaExceeded(f'{size} bytes exceed the quota of {what}; nothing stored')
    if limit is not None and size > limit:
        raise TooLarge(f'the file is larger than the {limit} bytes allowed')
    if (sha256 is None and not hash_later) or fsync:
        with open(src, 'rb') as fh:
            if sha256 is None and not hash_later:
                sha256 = hashlib.file_digest(fh, 'sha256').hexdigest()
            if fsync:
                os.fsync(fh.fileno())
    try:
        os.replace(src, target)
    except OSError as err:
        if err.errno == errno.EXDEV:
            return None
        raise
    return size, sha256 or ''


def write_local(src, target: Path, room: int | None = None, limit: int | None = None,
                expected: int | None = None, what: str = '', move: bool = False,
                fsync: bool = True, sha256: str | None = None,
                hash_later: bool = False) -> tuple[int, str]:
    """Stream `src` to `target` atomically (temp name, fsync, rename); (size, sha256).
    `room` is the quota left, `limit` the request size limit; nothing stays on failure.
    `move`: src is a path that may be renamed into place instead of copied; `sha256` its
    checksum when the caller knows it, `hash_later` when the caller hashes it after (a
    renamed file only: a copy is hashed as it is written). `fsync=False` for tiers that do
    not wait for the disk."""
    if move and isinstance(src, (str, os.PathLike)):
        moved = move_local(Path(src), target, room, limit, what, fsync, sha256, hash_later)
        if moved is not None:
            return moved
    tmp = target.parent / f'.vre-tmp-{uuid.uuid4().hex}'
    h, size = hashlib.sha256(), 0
    try:
        with _Source(src) as fh, open(tmp, 'wb') as out:
            while chunk := fh.read(CHUNK):
                size += len(chunk)
                if room is not None and size > room:
                    raise QuotaExceeded(f'upload exceeds the quota of {what}; nothing stored')
                if limit is not None and size > limit:
                    raise TooLarge(f'upload is larger than the {limit} bytes allowed')
                h.update(chunk)
                out.write(chunk)
            if expected is not None and size != expected:
                raise IncompleteUpload(f'received {size} of {expected} bytes; nothing stored')
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f'the disk of {what} is full; nothing was stored') from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size, h.hexdigest()


def _distinct(files: list) -> list:
    """The (path, local file, media type, sha256) tuples of a put_many, refusing a path
    given twice (one call stores each path once)."""
    seen = set()
    for path, *_ in files:
        key = clean_path(path, allow_root=False)
        if key in seen:
            raise Conflict(f'{key} is given twice')
        seen.add(key)
    return list(files)


def _place(files: list, targets: list[Path], what: str, fsync: bool) -> list[tuple[int, str]]:
    """Each file moved (or, across filesystems, copied) to its target: (size, sha256) each.
    On a failure the files already placed are removed: the caller stores nothing."""
    placed = []
    try:
        for (_, src, _, sha), target in zip(files, targets):
            placed.append(write_local(src, target, what=what, move=True, fsync=fsync,
                                      sha256=sha))
    except BaseException:
        for target in targets[:len(placed)]:
            target.unlink(missing_ok=True)
        raise
    return placed


def _stored_files(rows: list[dict], targets: list[Path]) -> list[StoredFile]:
    """StoredFiles of catalogue rows inserted as dicts (one executemany, no ORM objects)."""
    out = []
    for row, target in zip(rows, targets):
        f = StoredFile(**{k: v for k, v in row.items() if k in STORED_FIELDS})
        f.local = target
        out.append(f)
    return out


class Tier:
    """One extension point: put / open / stat / list / delete / url_for."""
    name = ''

    def __init__(self, cfg: StorageConfig, cat: Catalogue, users=None):
        self.cfg, self.cat, self.users = cfg, cat, users

    def access(self, user, space: str, path: str = '') -> str | None:
        """'owner', 'write', 'read' or None for `user` (vre.auth.User or None) on a path."""
        if user is None:
            return None
        if user.admin or user.name == space:
            return 'owner'
        return None

    def need(self, user, space: str, path: str, mode: str) -> str:
        """Raise unless `user` has at least `mode`; someone with no access at all gets 404,
        so that other users' files are not even confirmed to exist. Bad names give 400."""
        self.check_space(space)
        clean_path(path)
        got = self.access(user, space, path)
        if got is None:
            raise NotFound(f'no such file or folder: {self.name}/{space}/{path}'.rstrip('/'))
        if MODES[got] < MODES[mode]:
            raise Forbidden(f'{mode} access needed on {self.name}/{space}/{path}')
        return got

    def check_space(self, space: str) -> None:
        if not space or clean_path(space) != space or '/' in space:
            raise BadPath(f'bad space name: {space!r}')

    def url_for(self, f: StoredFile) -> str:
        return f'{self.cfg.base_url}/storage/{self.name}/{quote(f.owner)}/{quote(f.path)}'

    def record_sha256(self, f: StoredFile, sha256: str) -> None:
        """The checksum of a file stored with `hash_later`, once known (the tiers that
        copy what they store hash it then, and have nothing to record)."""

    def _record_sha256(self, path: str, f: StoredFile, sha256: str) -> None:
        with self.cat.session() as s, s.begin():
            s.execute(update(FileRow).where(
                FileRow.tier == self.name, FileRow.owner == f.owner, FileRow.path == path,
                FileRow.size == f.size, FileRow.sha256 == '').values(sha256=sha256))

    def put_many(self, owner, files: list, author=None, meta=None,
                 metas: list | None = None) -> list[StoredFile]:
        """Several disposable local files (path in the tier, local file, media type, known
        SHA-256 or None), taken over as `put(move=True)` takes one. `metas`: each file's own
        metadata (licence, citation), over the `meta` they share."""
        return [self.put(owner, path, src, media_type=media, meta=m, author=author,
                         move=True, sha256=sha)
                for (path, src, media, sha), m in zip(files, _metas(meta, metas, files))]


# --------------------------------------------------------------------------------------------
class Workspace(Tier):
    """Replicated, checksummed, compressed, versioned, shareable; deletes go to the trash."""
    name = 'workspace'

    def __init__(self, cfg, cat, users=None):
        super().__init__(cfg, cat, users)
        self.store = ReplicaStore(cfg.workspace_sites, cfg.replicas, cfg.compress_level)

    # -- access ----------------------------------------------------------------------
    def access(self, user, space, path=''):
        got = super().access(user, space, path)
        if got or user is None:
            return got
        grantees = {f'user:{user.name}'} | {f'group:{g}' for g in user.groups}
        best = None
        for share in self.cat.rows(select(ShareRow).where(ShareRow.owner == space)):
            if share.grantee in grantees and under(path, share.path):
                if MODES[share.mode] > MODES[best]:
                    best = share.mode
        return best

    def shared_with(self, user) -> list[dict]:
        """Shares that give `user` access to other users' files."""
        grantees = [f'user:{user.name}'] + [f'group:{g}' for g in sorted(user.groups)]
        rows = self.cat.rows(select(ShareRow).where(ShareRow.grantee.in_(grantees)))
        return [{'owner': r.owner, 'path': r.path, 'mode': r.mode, 'via': r.grantee}
                for r in rows if r.owner != user.name]

    # -- catalogue queries -------------------------------------------------------------
    def _current(self, space, path, version=None) -> FileRow | None:
        q = select(FileRow).where(FileRow.tier == self.name, FileRow.owner == space,
                                  FileRow.path == path)
        if version is None:
            q = q.where(FileRow.trashed.is_(None)).order_by(FileRow.version.desc())
        else:
            q = q.where(FileRow.version == int(version))
        return self.cat.one(q)

    def _live(self, space, folder=''):
        q = select(FileRow).where(FileRow.tier == self.name, FileRow.owner == space,
                                  FileRow.trashed.is_(None))
        if folder:
            q = q.where(FileRow.path.startswith(folder + '/', autoescape=True))
        return self.cat.rows(q)

    def _folders(self, space, folder=''):
        q = select(FolderRow).where(FolderRow.tier == self.name, FolderRow.owner == space,
                                    FolderRow.trashed.is_(None))
        return [r for r in self.cat.rows(q) if under(r.path, folder) and r.path != folder]

    def is_folder(self, space, path) -> bool:
        if not path:
            return True
        return bool(self._live(space, path)) or self.cat.one(select(FolderRow).where(
            FolderRow.tier == self.name, FolderRow.owner == space, FolderRow.path == path,
            FolderRow.trashed.is_(None))) is not None

    def _check_parents(self, space, path):
        """A file may not sit where a folder is, nor below a file."""
        if self.is_folder(space, path):
            raise Conflict(f'{path} is a folder')
        parts = path.split('/')
        for i in range(1, len(parts)):
            if self._current(space, '/'.join(parts[:i])):
                raise Conflict(f'{"/".join(parts[:i])} is a file, not a folder')

    def check_free(self, owner: str, dest: str, targets: list[str]) -> None:
        """Conflict unless a file can be put at each of `targets` (paths under `dest`):
        none is a folder, none lies below a file (`put`'s rule, checked for all of them
        with two queries; `put` asks once per file)."""
        ups = ['/'.join(dest.split('/')[:i]) for i in range(1, dest.count('/') + 2)]
        below = dest + '/'
        files = set(self.cat.rows(select(FileRow.path).where(
            FileRow.tier == self.name, FileRow.owner == owner, FileRow.trashed.is_(None),
            FileRow.path.in_(ups) | FileRow.path.startswith(below, autoescape=True))))
        folders = set(self.cat.rows(select(FolderRow.path).where(
            FolderRow.tier == self.name, FolderRow.owner == owner, FolderRow.trashed.is_(None),
            FolderRow.path.startswith(below, autoescape=True))))
        for path in files:
            parts = path.split('/')
            folders.update('/'.join(parts[:i]) for i in range(1, len(parts)))
        for target in targets:
            if target in folders:
                raise Conflict(f'{target} is a folder in the workspace')
            parts = target.split('/')
            for i in range(1, len(parts)):
                if '/'.join(parts[:i]) in files:
                    raise Conflict(f'{"/".join(parts[:i])} is a file in the workspace, '
                                   'not a folder')

    def discard(self, written: list[StoredFile]) -> None:
        """Take back file versions just written (rows, then their replicas' blobs): what
        was at those paths before is current again. Not a delete: nothing goes to the
        trash, as if the versions had never been put."""
        blobs = []
        with self.cat.session() as s, s.begin():
            for f in written:
                r = s.scalars(select(FileRow).where(
                    FileRow.tier == self.name, FileRow.owner == f.owner, FileRow.path == f.path,
                    FileRow.version == f.version)).first()
                if r is not None:
                    blobs.append((r.blob, json.loads(r.sites or '[]')))
                    s.delete(r)
        for blob, sites in blobs:
            self.store.remove(blob, sites)

    # -- the interface ---------------------------------------------------------------------
    def put(self, owner, path, src, media_type=None, meta=None, author=None,
            expected_size=None, limit=None, move=False, sha256=None,
            hash_later=False) -> StoredFile:
        """`move`, `sha256` (the caller's checksum of a file it wrote) and `hash_later` are
        hints for the local tiers; replicas are always copies, hashed as they are written."""
        path = clean_path(path, allow_root=False)
        meta = _meta(meta)
        self._check_parents(owner, path)
        with _Source(src) as fh:
            blob = self.store.write(fh, limit=limit, expected=expected_size)
        sites = blob.pop('sites')
        try:
            with self.cat.session() as s, s.begin():
                last = s.scalar(select(func.max(FileRow.version)).where(
                    FileRow.tier == self.name, FileRow.owner == owner, FileRow.path == path))
                row = FileRow(tier=self.name, owner=owner, path=path, version=(last or 0) + 1,
                              media_type=guess_type(path, media_type), author=author or owner,
                              created=time.time(), sites=json.dumps(sites), **blob, **meta)
                s.add(row)
        except BaseException:
            self.store.remove(blob['blob'], sites)   # no row, so no visible file: drop bytes
            raise
        return StoredFile.from_row(row)

    def stat(self, owner, path, version=None) -> StoredFile:
        path = clean_path(path)
        row = self._current(owner, path, version)
        if row is None:
            raise NotFound(f'no such file: workspace/{owner}/{path}'
                           + (f' version {version}' if version else ''))
        return StoredFile.from_row(row)

    def open(self, owner, path, version=None):
        """A verified reader: the first replica whose checksum holds; damaged or missing
        replicas met on the way are repaired from it."""
        row = self._current(owner, clean_path(path), version)
        if row is None:
            raise NotFound(f'no such file: workspace/{owner}/{path}')
        good, _, _ = self.store.good_replica(row.blob, json.loads(row.sites),
                                             row.stored_sha256, row.stored_size)
        if good is None:
            raise Unavailable(f'every replica of workspace/{owner}/{path} is damaged or '
                              'unreachable; the operator has been told (see `vre storage check`)')
        return self.store.open(good, row.blob, row.codec)

    def list(self, owner, folder='') -> list[dict]:
        folder = clean_path(folder)
        if folder and self._current(owner, folder):
            raise Conflict(f'{folder} is a file, not a folder')
        prefix = folder + '/' if folder else ''
        files, dirs = {}, set()
        for row in self._live(owner, folder):
            rest = row.path[len(prefix):]
            if '/' in rest:
                dirs.add(rest.split('/', 1)[0])
            elif rest not in files or row.version > files[rest].version:
                files[rest] = row
        for f in self._folders(owner, folder):
            dirs.add(f.path[len(prefix):].split('/', 1)[0])
        if folder and not files and not dirs and not self.is_folder(owner, folder):
            raise NotFound(f'no such folder: workspace/{owner}/{folder}')
        out = [{'type': 'folder', 'name': d, 'path': prefix + d} for d in sorted(dirs)]
        return out + [dict(StoredFile.from_row(files[n]).to_dict(), name=n)
                      for n in sorted(files)]

    def versions(self, owner, path) -> list[dict]:
        path = clean_path(path, allow_root=False)
        rows = self.cat.rows(select(FileRow).where(
            FileRow.tier == self.name, FileRow.owner == owner, FileRow.path == path)
            .order_by(FileRow.version))
        if not rows:
            raise NotFound(f'no such file: workspace/{owner}/{path}')
        return [dict(StoredFile.from_row(r).to_dict(), trashed=r.trashed) for r in rows]

    def mkdir(self, owner, path) -> None:
        path = clean_path(path, allow_root=False)
        self._check_parents(owner, path) if not self.is_folder(owner, path) else None
        with self.cat.session() as s, s.begin():
            if not s.scalar(select(FolderRow).where(FolderRow.tier == self.name,
                                                    FolderRow.owner == owner,
                                                    FolderRow.path == path)):
                s.add(FolderRow(tier=self.name, owner=owner, path=path))

    def delete(self, owner, path) -> int:
        """Move a file (all versions) or a folder to the trash; returns how many files."""
        path = clean_path(path, allow_root=False)
        now = time.time()
        with self.cat.session() as s, s.begin():
            n = s.execute(update(FileRow).where(
                FileRow.tier == self.name, FileRow.owner == owner, FileRow.trashed.is_(None),
                (FileRow.path == path) | FileRow.path.startswith(path + '/', autoescape=True))
                .values(trashed=now)).rowcount
            m = s.execute(update(FolderRow).where(
                FolderRow.tier == self.name, FolderRow.owner == owner,
                FolderRow.trashed.is_(None),
                (FolderRow.path == path) | FolderRow.path.startswith(path + '/', autoescape=True))
                .values(trashed=now)).rowcount
        if not n and not m:
            raise NotFound(f'no such file or folder: workspace/{owner}/{path}')
        return n

    def trash(self, owner) -> list[dict]:
        rows = self.cat.rows(select(FileRow).where(
            FileRow.tier == self.name, FileRow.owner == owner, FileRow.trashed.is_not(None)))
        return [dict(StoredFile.from_row(r).to_dict(), trashed=r.trashed) for r in rows]

    def restore(self, owner, path) -> int:
        """Bring back the most recently trashed file or folder at `path`."""
        path = clean_path(path, allow_root=False)
        match = ((FileRow.path == path) | FileRow.path.startswith(path + '/', autoescape=True))
        with self.cat.session() as s, s.begin():
            when = s.scalar(select(func.max(FileRow.trashed)).where(
                FileRow.tier == self.name, FileRow.owner == owner, match))
            if when is None:
                raise NotFound(f'nothing in the trash at workspace/{owner}/{path}')
            live = s.scalar(select(FileRow.id).where(
                FileRow.tier == self.name, FileRow.owner == owner, FileRow.trashed.is_(None),
                match))
            if live:
                raise Conflict(f'workspace/{owner}/{path} exists again; move it away first')
            n = s.execute(update(FileRow).where(FileRow.tier == self.name,
                                                FileRow.owner == owner, match,
                                                FileRow.trashed == when)
                          .values(trashed=None)).rowcount
            s.execute(update(FolderRow).where(
                FolderRow.tier == self.name, FolderRow.owner == owner,
                (FolderRow.path == path) | FolderRow.path.startswith(path + '/', autoescape=True),
                FolderRow.trashed == when).values(trashed=None))
        return n

    def move(self, owner, path, dest) -> int:
        """Rename a file or folder (with all versions); the blobs stay where they are."""
        path, dest = clean_path(path, allow_root=False), clean_path(dest, allow_root=False)
        if under(dest, path):
            raise BadPath('cannot move a folder into itself')
        if self._current(owner, dest) or self.is_folder(owner, dest):
            raise Conflict(f'workspace/{owner}/{dest} already exists')
        self._check_parents(owner, dest)
        n = 0
        with self.cat.session() as s, s.begin():
            for model in (FileRow, FolderRow):
                for row in s.scalars(select(model).where(
                        model.tier == self.name, model.owner == owner,
                        (model.path == path) | model.path.startswith(path + '/',
                                                                     autoescape=True))):
                    row.path = dest + row.path[len(path):]
                    n += model is FileRow
            for share in s.scalars(select(ShareRow).where(ShareRow.owner == owner)):
                if under(share.path, path):
                    share.path = dest + share.path[len(path):]
        if not n and not self.is_folder(owner, dest):
            raise NotFound(f'no such file or folder: workspace/{owner}/{path}')
        return n

    # -- sharing -------------------------------------------------------------------------
    def share(self, owner, path, grantee: str, mode: str = 'read') -> dict:
        path = clean_path(path)
        kind, _, who = grantee.partition(':')
        if kind not in ('user', 'group') or not who:
            raise BadPath('share "with" must be "user:<name>" or "group:<name>"')
        if mode not in ('read', 'write'):
            raise BadPath('share "mode" must be "read" or "write"')
        if self.users is not None and kind == 'user' and self.users.by_name(who) is None:
            raise BadPath(f'no such user: {who}')
        if self.users is not None and kind == 'group' and not self.users.group_members(who):
            raise BadPath(f'no such group (or it has no members): {who}')
        if path and not self._current(owner, path) and not self.is_folder(owner, path):
            raise NotFound(f'no such file or folder: workspace/{owner}/{path}')
        with self.cat.session() as s, s.begin():
            row = s.scalar(select(ShareRow).where(ShareRow.owner == owner, ShareRow.path == path,
                                                  ShareRow.grantee == grantee))
            if row is None:
                s.add(ShareRow(owner=owner, path=path, grantee=grantee, mode=mode))
            else:
                row.mode = mode
        return {'owner': owner, 'path': path, 'with': grantee, 'mode': mode}

    def unshare(self, owner, path, grantee) -> None:
        path = clean_path(path)
        with self.cat.session() as s, s.begin():
            row = s.scalar(select(ShareRow).where(ShareRow.owner == owner, ShareRow.path == path,
                                                  ShareRow.grantee == grantee))
            if row is None:
                raise NotFound(f'no share of workspace/{owner}/{path} with {grantee}')
            s.delete(row)

    def shares(self, owner, path) -> list[dict]:
        rows = self.cat.rows(select(ShareRow).where(ShareRow.owner == owner))
        return [{'path': r.path, 'with': r.grantee, 'mode': r.mode} for r in rows
                if under(path, r.path)]

    def link(self, owner, path) -> str:
        """A new public, revocable link token for a file or folder."""
        path = clean_path(path, allow_root=False)
        if not self._current(owner, path) and not self.is_folder(owner, path):
            raise NotFound(f'no such file or folder: workspace/{owner}/{path}')
        token = secrets.token_urlsafe(24)
        with self.cat.session() as s, s.begin():
            s.add(LinkRow(token=token, owner=owner, path=path))
        return token

    def links(self, owner, path) -> list[dict]:
        rows = self.cat.rows(select(LinkRow).where(LinkRow.owner == owner,
                                                   LinkRow.revoked.is_(None)))
        return [{'token': r.token, 'path': r.path,
                 'url': f'{self.cfg.base_url}/storage/public/{r.token}'}
                for r in rows if under(r.path, path)]

    def resolve_link(self, token: str, sub: str = '') -> tuple[str, str]:
        row = self.cat.one(select(LinkRow).where(LinkRow.token == token))
        if row is None or row.revoked is not None:
            raise NotFound('no such public link (or it was revoked)')
        sub = clean_path(sub)
        return row.owner, f'{row.path}/{sub}' if sub else row.path

    def revoke(self, token: str, user) -> None:
        with self.cat.session() as s, s.begin():
            row = s.scalar(select(LinkRow).where(LinkRow.token == token))
            if row is None or row.revoked is not None or not (
                    user and (user.admin or user.name == row.owner)):
                raise NotFound('no such public link of yours')
            row.revoked = time.time()

    def url_for(self, f: StoredFile) -> str:
        return super().url_for(f)

    # -- scrub -------------------------------------------------------------------------------
    def check(self) -> dict:
        """Verify every replica of every kept version (trash included), repair what can be."""
        report = {'files': 0, 'replicas_ok': 0, 'repaired': [], 'unrepaired': []}
        for row in self.cat.rows(select(FileRow).where(FileRow.tier == self.name)):
            sites = json.loads(row.sites)
            report['files'] += 1
            good, repaired, failed = self.store.good_replica(
                row.blob, sites, row.stored_sha256, row.stored_size, scrub=True)
            name = f'{row.owner}/{row.path} v{row.version}'
            report['replicas_ok'] += len(sites) - len(repaired) - len(failed)
            report['repaired'] += [f'{name} on {u}' for u in repaired]
            report['unrepaired'] += [f'{name} on {u}' for u in failed]
        return report


# --------------------------------------------------------------------------------------------
class Dataspace(Tier):
    """Plain files under one root: users/<name>/ and groups/<group>/ (space '@group'), so a
    notebook or JupyterHub can mount the same folder. One quota per space."""
    name = 'dataspace'

    def access(self, user, space, path=''):
        if user is not None and space.startswith('@') and space[1:] in user.groups:
            return 'write'
        return super().access(user, space, path)

    def check_space(self, space: str) -> None:
        self.space_root(space)

    def space_root(self, space: str) -> Path:
        if space.startswith('@'):
            name, kind = space[1:], 'groups'
        else:
            name, kind = space, 'users'
        if not name or clean_path(name) != name or '/' in name:
            raise BadPath(f'bad space name: {space!r}')
        return self.cfg.dataspace_root / kind / name

    def local_path(self, space, path, allow_root=True) -> Path:
        """The real path of a file, refusing anything (symlinks included) that leads out."""
        root = self.space_root(space)
        p = root / clean_path(path, allow_root=allow_root)
        real, real_root = p.resolve(), root.resolve()
        if real != real_root and not real.is_relative_to(real_root):
            raise NotFound(f'no such file: dataspace/{space}/{path}')
        return p

    def usage(self, space) -> int:
        total = 0
        for dirpath, _, files in os.walk(self.space_root(space)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total

    def put(self, owner, path, src, media_type=None, meta=None, author=None,
            expected_size=None, limit=None, move=False, sha256=None,
            hash_later=False) -> StoredFile:
        target = self.local_path(owner, path, allow_root=False)
        rel = clean_path(path)
        meta = _meta(meta)
        if target.is_dir():
            raise Conflict(f'{rel} is a folder')
        old = target.stat().st_size if target.is_file() else 0
        room = self.cfg.quota - (self.usage(owner) - old)
        if expected_size is not None and expected_size > room:
            raise QuotaExceeded(f'{expected_size} bytes do not fit: {max(room, 0)} bytes left '
                                f'of the {self.cfg.quota} byte quota of {owner}')
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise Conflict(f'a parent of {rel} is a file, not a folder') from None
        size, sha = write_local(src, target, room, limit, expected_size, f'dataspace/{owner}',
                                move, self.cfg.dataspace_fsync, sha256, hash_later)
        row = FileRow(tier=self.name, owner=owner, path=rel, version=1, size=size,
                      sha256=sha, media_type=guess_type(rel, media_type),
                      author=author or owner, created=time.time(), **meta)
        with self.cat.session() as s, s.begin():
            s.execute(FileRow.__table__.delete().where(
                FileRow.tier == self.name, FileRow.owner == owner, FileRow.path == rel))
            s.add(row)
        stored = StoredFile.from_row(row)
        stored.local = target
        return stored

    def put_many(self, owner, files: list, author=None, meta=None,
                 metas: list | None = None) -> list[StoredFile]:
        """Many disposable files at once: the space is measured once, the files renamed,
        their rows written in one transaction (one `put` each would walk the space and
        commit once per file). Over quota: nothing is stored."""
        files = _distinct(files)
        metas = _metas(meta, metas, files)
        rels = [clean_path(path, allow_root=False) for path, *_ in files]
        # each folder is checked once (not one realpath per file): a renamed file replaces
        # a symlink in its place rather than following it, so the folders are what matter
        folders = {rel.rpartition('/')[0] for rel in rels}
        real = {f: self.local_path(owner, f) for f in folders}
        targets = [real[rel.rpartition('/')[0]] / rel.rpartition('/')[2] for rel in rels]
        old = 0
        for rel, target in zip(rels, targets):
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                raise Conflict(f'{rel} is a folder')
            old += st.st_size
        sizes = [os.stat(src).st_size for _, src, _, _ in files]
        room = self.cfg.quota - (self.usage(owner) - old)
        if sum(sizes) > room:
            raise QuotaExceeded(f'{sum(sizes)} bytes do not fit: {max(room, 0)} bytes left '
                                f'of the {self.cfg.quota} byte quota of {owner}; nothing stored')
        for parent in {t.parent for t in targets}:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise Conflict(f'a parent of {parent.name} is a file, not a folder') from None
        placed = _place(files, targets, f'dataspace/{owner}', self.cfg.dataspace_fsync)
        now = time.time()
        rows = [dict(tier=self.name, owner=owner, path=rel, version=1, size=size, sha256=sha,
                     media_type=guess_type(rel, media), author=author or owner, created=now,
                     **m)
                for rel, (_, _, media, _), (size, sha), m in zip(rels, files, placed, metas)]
        with self.cat.session() as s, s.begin():
            for i in range(0, len(rels), 500):
                s.execute(FileRow.__table__.delete().where(
                    FileRow.tier == self.name, FileRow.owner == owner,
                    FileRow.path.in_(rels[i:i + 500])))
            s.execute(FileRow.__table__.insert(), rows)
        return _stored_files(rows, targets)

    def record_sha256(self, f, sha256):
        self._record_sha256(f.path, f, sha256)

    def stat(self, owner, path, version=None) -> StoredFile:
        p = self.local_path(owner, path)
        rel = clean_path(path)
        if not p.is_file():
            raise NotFound(f'no such file: dataspace/{owner}/{rel}')
        st = p.stat()
        row = self.cat.one(select(FileRow).where(FileRow.tier == self.name,
                                                 FileRow.owner == owner, FileRow.path == rel))
        if self.describes(row, st):
            return StoredFile.from_row(row)
        # written by a notebook: the file itself is the truth, checksum unknown
        return StoredFile(tier=self.name, owner=owner, path=rel, size=st.st_size, sha256=None,
                          media_type=guess_type(rel, None), created=st.st_mtime)

    @staticmethod
    def describes(row: FileRow | None, st: os.stat_result) -> bool:
        """The catalogue row is of the file on disk: not written since by a notebook."""
        return row is not None and row.size == st.st_size and row.created >= st.st_mtime - 1

    def open(self, owner, path, version=None):
        p = self.local_path(owner, path)
        if not p.is_file():
            raise NotFound(f'no such file: dataspace/{owner}/{clean_path(path)}')
        return open(p, 'rb')

    def list(self, owner, folder='') -> list[dict]:
        p = self.local_path(owner, folder)
        rel = clean_path(folder)
        if not p.exists() and not rel:
            return []
        if not p.is_dir():
            raise NotFound(f'no such folder: dataspace/{owner}/{rel}')
        out = []
        for entry in sorted(os.scandir(p), key=lambda e: e.name):
            if entry.name.startswith('.vre-'):
                continue
            sub = f'{rel}/{entry.name}' if rel else entry.name
            if entry.is_dir():
                out.append({'type': 'folder', 'name': entry.name, 'path': sub})
            elif entry.is_file():
                try:
                    out.append(dict(self.stat(owner, sub).to_dict(), name=entry.name))
                except StorageError:
                    continue   # a symlink leading out of the space: not shown
        return out

    def delete(self, owner, path) -> int:
        p = self.local_path(owner, path, allow_root=False)
        rel = clean_path(path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            raise NotFound(f'no such file or folder: dataspace/{owner}/{rel}')
        with self.cat.session() as s, s.begin():
            s.execute(FileRow.__table__.delete().where(
                FileRow.tier == self.name, FileRow.owner == owner,
                (FileRow.path == rel) | FileRow.path.startswith(rel + '/', autoescape=True)))
        return 1

    def mkdir(self, owner, path) -> None:
        p = self.local_path(owner, path, allow_root=False)
        try:
            p.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise Conflict(f'{clean_path(path)} or a parent of it is a file') from None


# --------------------------------------------------------------------------------------------
class Volatile(Tier):
    """Short-lived files reachable only by an unguessable capability URL; no listing.
    Only the SHA-256 of the capability is kept, on disk and in the catalogue."""
    name = 'volatile'

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.cfg.volatile_root / key[:2] / key

    def put(self, owner, path, src, media_type=None, meta=None, author=None,
            expected_size=None, limit=None, ttl: int | None = None, move=False,
            sha256=None, hash_later=False) -> StoredFile:
        name = clean_path(path or 'file', allow_root=False).rsplit('/', 1)[-1]
        meta = _meta(meta)
        ttl = self.cfg.default_ttl if ttl is None else int(ttl)
        if not 0 < ttl <= self.cfg.max_ttl:
            raise BadPath(f'ttl must be between 1 and {self.cfg.max_ttl} seconds')
        token = secrets.token_urlsafe(32)
        key = self._key(token)
        target = self._file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        size, sha = write_local(src, target, None, limit, expected_size, 'the volatile tier',
                                move, self.cfg.volatile_fsync, sha256, hash_later)
        now = time.time()
        row = FileRow(tier=self.name, owner=owner, path=key, version=1, size=size,
                      sha256=sha, media_type=guess_type(name, media_type),
                      author=author or owner, created=now, expires=now + ttl,
                      blob=name, **meta)   # blob holds the display name here
        with self.cat.session() as s, s.begin():
            s.add(row)
        stored = self._stored(row, token)
        stored.local = target
        return stored

    def put_many(self, owner, files: list, author=None, meta=None,
                 metas: list | None = None) -> list[StoredFile]:
        """Many disposable files at once: renamed into place, rows in one transaction."""
        files = _distinct(files)
        metas = _metas(meta, metas, files)
        names = [clean_path(path or 'file', allow_root=False).rsplit('/', 1)[-1]
                 for path, *_ in files]
        tokens = [secrets.token_urlsafe(32) for _ in files]
        keys = [self._key(t) for t in tokens]
        targets = [self._file(k) for k in keys]
        for parent in {t.parent for t in targets}:
            parent.mkdir(parents=True, exist_ok=True)
        placed = _place(files, targets, 'the volatile tier', self.cfg.volatile_fsync)
        now = time.time()
        rows = [dict(tier=self.name, owner=owner, path=key, version=1, size=size, sha256=sha,
                     media_type=guess_type(name, media), author=author or owner, created=now,
                     expires=now + self.cfg.default_ttl, blob=name, **m)
                for key, name, (_, _, media, _), (size, sha), m in zip(keys, names, files, placed,
                                                                        metas)]
        try:
            with self.cat.session() as s, s.begin():
                s.execute(FileRow.__table__.insert(), rows)
        except BaseException:       # no rows: files nobody could reach or purge
            for target in targets:
                target.unlink(missing_ok=True)
            raise
        out = _stored_files(rows, targets)
        for f, name, token in zip(out, names, tokens):
            f.path, f.token = name, token
        return out

    def record_sha256(self, f, sha256):
        self._record_sha256(self._key(f.token), f, sha256)

    def _stored(self, row, token=None) -> StoredFile:
        f = StoredFile.from_row(row, token=token)
        f.path = row.blob or 'file'
        return f

    _ROW = select(FileRow).where(FileRow.tier == 'volatile', FileRow.path == bindparam('key'))

    def _row(self, token: str) -> FileRow:
        row = self.cat.one(self._ROW, {'key': self._key(token)})   # built once: every download
        if row is None:
            raise NotFound('no such volatile file')
        if row.expires <= time.time():
            raise Gone('this volatile file has expired')
        return row

    def stat(self, token, path=None, version=None) -> StoredFile:
        return self._stored(self._row(token), token)

    def open(self, token, path=None, version=None):
        return self.opened(token)[1]

    def opened(self, token) -> tuple[StoredFile, object]:
        """The file's entry and the file opened, with one catalogue lookup."""
        row = self._row(token)
        try:
            fh = open(self._file(row.path), 'rb')
        except FileNotFoundError:
            raise Gone('this volatile file has expired') from None
        if os.fstat(fh.fileno()).st_size != row.size:    # cut short by a crash (no fsync)
            fh.close()
            raise Gone('this volatile file was lost (the server stopped while storing it)')
        return self._stored(row, token), fh

    def list(self, owner, folder=''):
        raise NotFound('the volatile tier has no listing; files are reachable by URL only')

    def delete(self, token, path=None, user=None) -> int:
        row = self._row(token)
        if user is not None and not (user.admin or user.name == row.owner):
            raise Forbidden('only the owner may delete this volatile file')
        self._file(row.path).unlink(missing_ok=True)
        with self.cat.session() as s, s.begin():
            s.execute(FileRow.__table__.delete().where(FileRow.id == row.id))
        return 1

    def purge(self, now: float | None = None) -> int:
        """Delete the bytes of every expired file; returns how many. The row stays a week
        as a tombstone, so the URL keeps answering 410 Gone rather than 404."""
        now = now or time.time()
        with self.cat.session() as s, s.begin():
            rows = list(s.scalars(select(FileRow).where(
                FileRow.tier == self.name, FileRow.expires <= now, FileRow.trashed.is_(None))))
            for row in rows:
                self._file(row.path).unlink(missing_ok=True)
                row.trashed = now
            s.execute(FileRow.__table__.delete().where(
                FileRow.tier == self.name, FileRow.expires <= now - TOMBSTONE))
        return len(rows)

    def url_for(self, f: StoredFile) -> str:
        if not f.token:
            raise StorageError('a volatile URL is known only to whoever stored the file')
        return f'{self.cfg.base_url}/storage/volatile/{f.token}'


# --------------------------------------------------------------------------------------------
class Tiers:
    def __init__(self, cfg: StorageConfig, users=None):
        self.cfg = cfg
        for d in (cfg.staging, cfg.dataspace_root, cfg.volatile_root):
            d.mkdir(parents=True, exist_ok=True)
        self.cat = Catalogue(cfg.catalogue_url)
        # a scratch tier that does not wait for the disk with its files does not with its
        # rows either (one commit per job output: an fsync each)
        quick = Catalogue(cfg.catalogue_url, durable=False)
        self.workspace = Workspace(cfg, self.cat, users)
        self.dataspace = Dataspace(cfg, self.cat if cfg.dataspace_fsync else quick, users)
        self.volatile = Volatile(cfg, self.cat if cfg.volatile_fsync else quick, users)

    def get(self, name: str) -> Tier:
        if name not in ('workspace', 'dataspace', 'volatile'):
            raise NotFound(f'no storage tier {name!r}; tiers: workspace, dataspace, volatile')
        return getattr(self, name)

    def resolve(self, ref: str, user=None) -> tuple[Tier, str, str]:
        """(tier, space or token, path) of a storage URL or '<tier>/<space>/<path>' reference,
        checking that `user` may read it (None = trusted caller)."""
        parts = urlsplit(ref)
        p = unquote(parts.path)
        if parts.scheme and not ref.startswith(self.cfg.base_url):
            raise BadPath(f'not a URL of this server: {ref}')
        p = p.split('/storage/', 1)[1] if '/storage/' in p else p.lstrip('/')
        tier_name, _, rest = p.partition('/')
        if tier_name == 'public':
            token, _, sub = rest.partition('/')
            space, path = self.workspace.resolve_link(token, sub)
            return self.workspace, space, path
        tier = self.get(tier_name)
        if tier is self.volatile:
            return tier, rest.split('/', 1)[0], ''
        space, _, path = rest.partition('/')
        if user is not None:
            tier.need(user, space, path, 'read')
        return tier, space, path

    def stat_many(self, hrefs: list[str]) -> list[tuple[int, str | None] | None]:
        """(size, SHA-256) of each stored file now, as its tier's `stat` gives them, or None
        when it is gone, from one catalogue query per tier and space (500 paths each; `stat`
        asks once per file, and an order has thousands): the workspace's latest live
        version, a volatile file until it expires, a dataspace file as on disk (its
        checksum unknown when changed there since)."""
        where = [self.resolve(h) for h in hrefs]
        keys = [('volatile', None, self.volatile._key(space)) if tier is self.volatile
                else (tier.name, space, clean_path(path)) for tier, space, path in where]
        groups: dict = {}
        for name, space, path in keys:
            groups.setdefault((name, space), set()).add(path)
        rows: dict = {}
        for (name, space), paths in groups.items():
            paths = sorted(paths)
            for i in range(0, len(paths), 500):
                q = select(FileRow).where(FileRow.tier == name,
                                          FileRow.path.in_(paths[i:i + 500]))
                if space is not None:
                    q = q.where(FileRow.owner == space)
                if name == 'workspace':
                    q = q.where(FileRow.trashed.is_(None))
                for r in self.cat.rows(q):
                    key = (name, space, r.path)
                    if key not in rows or r.version > rows[key].version:
                        rows[key] = r
        now, out = time.time(), []
        for (tier, space, _), key in zip(where, keys):
            r = rows.get(key)
            if tier is self.dataspace:
                out.append(self._on_disk(space, key[2], r))
            elif r is None or (r.expires is not None and r.expires <= now):
                out.append(None)
            else:
                out.append((r.size, r.sha256 or None))
        return out

    def _on_disk(self, space: str, path: str, row) -> tuple[int, str | None] | None:
        try:
            st = self.dataspace.local_path(space, path).stat()
        except (StorageError, OSError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return st.st_size, (row.sha256 or None) if self.dataspace.describes(row, st) else None

    def copy_to_workspace(self, user, source: str, dest_path: str, owner: str | None = None,
                          ) -> StoredFile:
        """Copy any stored file (storage URL, public link, volatile URL or job output
        /jobs/<id>/outputs/<name>) into a workspace, keeping its metadata. Provenance is the
        job for a job output, else the file's own, else the source URL."""
        name = user if isinstance(user, str) else user.name
        owner = owner or name
        if not isinstance(user, str):
            self.workspace.need(user, owner, dest_path, 'write')
        job = self._job_output(user, source)
        if job is not None:
            job_url, result = job
            href = result.get('href') or ''
            if href.startswith(self.cfg.base_url + '/storage/'):
                source = href   # the job owner may read its stored outputs
                user = name
            elif result.get('path'):
                media = result.get('type') or result.get('mediaType')
                try:
                    with open(result['path'], 'rb') as fh:
                        return self.workspace.put(owner, dest_path, fh, media_type=media,
                                                  meta={'provenance': job_url}, author=name)
                except FileNotFoundError:
                    raise Gone(f'the output file of {job_url} is gone') from None
            else:
                raise NotFound(f'{source} is not a file output (ask for it by reference)')
        tier, space, path = self.resolve(source, None if isinstance(user, str) else user)
        src = tier.stat(space, path)
        meta = {k: getattr(src, k) for k in META_KEYS}
        if job is not None:
            meta['provenance'] = job[0]
        meta['provenance'] = meta['provenance'] or (source if tier is not self.volatile
                                                     else 'volatile file')
        with tier.open(space, path) as fh:
            return self.workspace.put(owner, dest_path, fh, media_type=src.media_type,
                                      meta=meta, author=name)

    def _job_output(self, user, source: str) -> tuple[str, dict] | None:
        """(job URL, stored result) when `source` is /jobs/<id>/outputs/<name> or
        /jobs/<id>/results/<name>; another user's job is 'not found'. None otherwise."""
        p = unquote(urlsplit(source).path)
        if urlsplit(source).scheme and not source.startswith(self.cfg.base_url):
            return None
        parts = p.strip('/').split('/')
        if len(parts) != 4 or parts[0] != 'jobs' or parts[2] not in ('outputs', 'results'):
            return None
        from processes.jobstore import JobStore
        job_id, out = parts[1], parts[3]
        row = JobStore(self.cfg.jobs_db_url).get(job_id)
        mine = row is not None and (row['owner'] in (None, user) if isinstance(user, str)
                                    else user.may_access(row['owner']))
        if not mine:
            raise NotFound(f'no job "{job_id}"')
        result = (row['results'] or {}).get(out) if row['status'] == 'successful' else None
        if result is None:
            raise NotFound(f'job {job_id} has no output "{out}" (status: {row["status"]})')
        return f'{self.cfg.base_url}/jobs/{job_id}', result

    def url_for(self, f: StoredFile) -> str:
        return self.get(f.tier).url_for(f)


_OPEN: dict = {}


def open_tiers(settings, config: dict | None = None, users=None) -> Tiers:
    """The tiers for these settings, built once per process (web worker or Celery worker)."""
    cfg = StorageConfig.build(settings, config)
    key = (cfg, id(users))
    if key not in _OPEN:
        _OPEN[key] = Tiers(cfg, users)
    return _OPEN[key]
