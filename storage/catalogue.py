"""The file catalogue (SQLAlchemy; SQLite by default): one row per stored version with owner,
size, checksums, media type, licence, citation and provenance; plus folders, shares and
public links. A row is committed only after the bytes are safely in place."""
from __future__ import annotations

import sqlite3
import time
import unicodedata

from sqlalchemy import (Float, Integer, String, Text, UniqueConstraint, create_engine, event,
                        select)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from storage.errors import BadPath

MAX_NAME, MAX_PATH = 255, 1024


class Base(DeclarativeBase):
    pass


class FileRow(Base):
    __tablename__ = 'files'
    __table_args__ = (UniqueConstraint('tier', 'owner', 'path', 'version'),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)   # space: user or @group
    path: Mapped[str] = mapped_column(Text, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(255), default='application/octet-stream')
    licence: Mapped[str | None] = mapped_column(Text, nullable=True)
    citation: Mapped[str | None] = mapped_column(Text, nullable=True)
    provenance: Mapped[str | None] = mapped_column(Text, nullable=True)
    author: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created: Mapped[float] = mapped_column(Float, default=time.time)
    trashed: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    expires: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    blob: Mapped[str | None] = mapped_column(String(64), nullable=True)       # workspace
    codec: Mapped[str] = mapped_column(String(8), default='raw')
    stored_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stored_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sites: Mapped[str | None] = mapped_column(Text, nullable=True)            # JSON list


class FolderRow(Base):
    __tablename__ = 'folders'
    __table_args__ = (UniqueConstraint('tier', 'owner', 'path'),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tier: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    trashed: Mapped[float | None] = mapped_column(Float, nullable=True)


class ShareRow(Base):
    __tablename__ = 'shares'
    __table_args__ = (UniqueConstraint('owner', 'path', 'grantee'),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    path: Mapped[str] = mapped_column(Text)            # '' = the whole space
    grantee: Mapped[str] = mapped_column(String(255))  # 'user:bob' or 'group:oceanlab'
    mode: Mapped[str] = mapped_column(String(8))       # 'read' or 'write'
    created: Mapped[float] = mapped_column(Float, default=time.time)


class LinkRow(Base):
    __tablename__ = 'links'
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    path: Mapped[str] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float, default=time.time)
    revoked: Mapped[float | None] = mapped_column(Float, nullable=True)


class Catalogue:
    """Engine + session factory; WAL and a busy timeout so web and worker processes share it.
    `durable=False`: commits do not wait for the disk (SQLite synchronous=NORMAL: a power
    cut may lose the last ones, never the database), for the tiers that do not either."""

    def __init__(self, url: str, durable: bool = True):
        sqlite = url.startswith('sqlite')
        # the busy timeout must be set before the first statement: switching to WAL takes a
        # lock that the other web workers, starting at the same moment, also want
        self.engine = create_engine(url, connect_args={'timeout': 15} if sqlite else {})
        if sqlite:
            @event.listens_for(self.engine, 'connect')
            def _pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                cur.execute('PRAGMA busy_timeout=15000')
                try:
                    cur.execute('PRAGMA journal_mode=WAL')
                except sqlite3.OperationalError:
                    pass    # another process is switching it; WAL is a property of the file
                if not durable:
                    cur.execute('PRAGMA synchronous=NORMAL')
                cur.close()
        for attempt in range(5):   # web workers start together: another may win the race
            try:
                Base.metadata.create_all(self.engine)
                break
            except OperationalError as err:
                if 'already exists' not in str(err) or attempt == 4:
                    raise

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def rows(self, stmt):
        with self.session() as s:
            return list(s.scalars(stmt))

    def one(self, stmt, params: dict | None = None):
        with self.session() as s:
            return s.scalars(stmt, params).first()


def clean_path(path: str, allow_root: bool = True) -> str:
    """A safe relative path 'a/b/c': no '..', '.', control characters or over-long names.
    Other characters (spaces, accents, brackets, ...) are kept, NFC-normalised."""
    if not isinstance(path, str):
        raise BadPath('path must be text')
    path = unicodedata.normalize('NFC', path)
    parts = [p for p in path.replace('\\', '/').split('/') if p]
    for part in parts:
        if part in ('.', '..'):
            raise BadPath(f'path may not contain "{part}" segments: {path!r}')
        if any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise BadPath(f'path has control characters: {path!r}')
        if len(part.encode()) > MAX_NAME:
            raise BadPath(f'a name is longer than {MAX_NAME} bytes')
        if part.startswith('.vre-'):
            raise BadPath('names starting with ".vre-" are reserved')
    clean = '/'.join(parts)
    if len(clean.encode()) > MAX_PATH:
        raise BadPath(f'path is longer than {MAX_PATH} bytes')
    if not clean and not allow_root:
        raise BadPath('a file path is needed here, not the root folder')
    return clean


def under(path: str, folder: str) -> bool:
    """True if `path` is `folder` or inside it ('' is the root and holds everything)."""
    return not folder or path == folder or path.startswith(folder + '/')


__all__ = ['Catalogue', 'FileRow', 'FolderRow', 'ShareRow', 'LinkRow', 'clean_path', 'under',
           'select']
