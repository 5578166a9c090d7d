"""Job-finished notices over Redis pub/sub.

Whoever writes a job's final status (the worker, the reaper, a dismiss) publishes its id; a
web process waiting for that job (sync execute, `Prefer: wait`) wakes at once instead of
polling the job store. One listener thread per process fans the notices out to the waiters.
Notices are a shortcut, not the truth: waiters re-read the store on wake-up and at least
every `RECHECK` seconds, so a lost notice (Redis restarting) costs latency, never a result.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time

import redis

CHANNEL = 'vre:jobs:final'
RECHECK = 0.5


class Notices:
    def __init__(self, redis_url: str | None):
        self.url = redis_url
        self._client = None
        self._pid = None
        self._waiters: dict[str, list[threading.Event]] = {}
        self._lock = threading.Lock()
        self._listener = None

    def _redis(self):
        if self._client is None or self._pid != os.getpid():   # not shared across a fork
            self._client = redis.Redis.from_url(self.url, socket_timeout=2,
                                                socket_connect_timeout=2)
            self._pid = os.getpid()
        return self._client

    def publish(self, job_id: str) -> None:
        if not self.url:
            return
        try:
            self._redis().publish(CHANNEL, job_id)
        except redis.RedisError:
            pass                                        # waiters fall back to re-reading

    @contextlib.contextmanager
    def waiter(self, job_id: str):
        """An Event set when `job_id` is announced final; register it before reading the
        store, so a notice sent between the read and the wait is not missed."""
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, []).append(event)
            if self.url and (self._listener is None or not self._listener.is_alive()
                             or self._listener.pid != os.getpid()):
                self._listener = _Listener(self)
                self._listener.start()
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiters.get(job_id, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._waiters.pop(job_id, None)

    def _announce(self, job_id: str) -> None:
        with self._lock:
            for event in self._waiters.get(job_id, []):
                event.set()


class _Listener(threading.Thread):
    def __init__(self, notices: Notices):
        super().__init__(name='vre-job-notices', daemon=True)
        self.notices = notices
        self.pid = os.getpid()

    def run(self):
        while True:
            try:
                client = redis.Redis.from_url(self.notices.url)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                for message in pubsub.listen():
                    data = message.get('data')
                    if isinstance(data, bytes):
                        self.notices._announce(data.decode())
            except redis.RedisError:
                time.sleep(1)                           # Redis restarting: try again
