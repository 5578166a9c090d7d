"""Storage problems as `APIError`s: the library raises them, the app renders problem+json,
and a Celery worker gets a plain exception with a clear message."""
from __future__ import annotations

from vre.errors import APIError, BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOO_LARGE

PROBLEMS = 'urn:marine-vre:storage:'


class StorageError(APIError):
    status = 400
    type_ = BAD_REQUEST

    def __init__(self, detail: str):
        super().__init__(self.status, self.type_, detail)


class BadPath(StorageError):
    type_ = PROBLEMS + 'bad-path'


class NotFound(StorageError):
    status, type_ = 404, NOT_FOUND


class Forbidden(StorageError):
    status, type_ = 403, FORBIDDEN


class Conflict(StorageError):
    status, type_ = 409, PROBLEMS + 'conflict'


class Gone(StorageError):
    status, type_ = 410, PROBLEMS + 'expired'


class QuotaExceeded(StorageError):
    status, type_ = 413, PROBLEMS + 'quota-exceeded'


class TooLarge(StorageError):
    status, type_ = 413, TOO_LARGE


class IncompleteUpload(StorageError):
    status, type_ = 400, PROBLEMS + 'incomplete-upload'


class Unavailable(StorageError):
    """A replica site is gone or every replica is damaged: a server fault, said clearly."""
    status, type_ = 503, PROBLEMS + 'unavailable'


class DiskFull(StorageError):
    status, type_ = 507, PROBLEMS + 'insufficient-storage'
