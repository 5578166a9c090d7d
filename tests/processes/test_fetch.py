"""processes.fetch.fetch against a real loopback HTTP server: redirects, bodies hashed in
the fetching thread and in a second one (large or of unknown length), and the failures
that are worth retrying (5xx, refused) told from those that are not (404, too large)."""
from __future__ import annotations

import hashlib
import http.server
import os
import socket

import pytest

from processes.base import FetchError
from processes.fetch import HASH_THREAD_AT, Pools, fetch
from serverkit import serve

SMALL = os.urandom(5000)
LARGE = os.urandom(HASH_THREAD_AT + 12345)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        if self.path == '/old':
            self.send_response(302)
            self.send_header('Location', '/small')
            self.send_header('Content-Length', '0')
            self.end_headers()
        elif self.path in ('/small', '/large'):
            body = SMALL if self.path == '/small' else LARGE
            self.send_response(200)
            self.send_header('Content-Type', 'application/x-netcdf')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == '/chunked':            # no length known: hashed in a second thread
            self.send_response(200)
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            for i in range(0, len(LARGE), 1 << 20):
                piece = LARGE[i:i + (1 << 20)]
                self.wfile.write(b'%x\r\n%s\r\n' % (len(piece), piece))
            self.wfile.write(b'0\r\n\r\n')
        else:
            self.send_response(503 if self.path == '/busy' else 404)
            self.send_header('Content-Length', '0')
            self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def server():
    with serve(Handler) as url:
        yield url


@pytest.mark.parametrize('path,body', [('/small', SMALL), ('/old', SMALL), ('/large', LARGE),
                                       ('/chunked', LARGE)])
def test_bodies_and_their_sha256(server, tmp_path, path, body):
    pools = Pools(2)
    for n in range(2):                          # the second time on a kept-alive connection
        used = fetch(pools, server + path, tmp_path / f'g{n}', 1 << 30, (5, 30))
        assert (tmp_path / f'g{n}').read_bytes() == body
        assert used == {'href': server + path, 'sha256': hashlib.sha256(body).hexdigest(),
                        'bytes': len(body),
                        'mediaType': None if path == '/chunked' else 'application/x-netcdf'}


def test_failures_say_whether_to_retry(server, tmp_path):
    pools = Pools(2)
    with pytest.raises(FetchError, match='HTTP 503') as busy:
        fetch(pools, server + '/busy', tmp_path / 'x', 1 << 30, (5, 30))
    assert busy.value.retry
    with pytest.raises(FetchError, match='HTTP 404') as missing:
        fetch(pools, server + '/missing', tmp_path / 'x', 1 << 30, (5, 30))
    assert not missing.value.retry
    for path in ('/large', '/chunked'):           # known length, then counted as it comes
        with pytest.raises(FetchError, match='larger than the limit') as big:
            fetch(pools, server + path, tmp_path / 'x', 1 << 20, (5, 30))
        assert not big.value.retry
    assert fetch(pools, server + '/small', tmp_path / 'y', 1 << 30, (5, 30))['bytes'] == 5000
    with socket.socket() as s:                    # a port nobody listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match='could not be read') as refused:
        fetch(pools, f'http://127.0.0.1:{port}/x', tmp_path / 'x', 1 << 30, (5, 30))
    assert refused.value.retry
    with pytest.raises(FetchError, match='only http'):
        fetch(pools, 'file:///etc/passwd', tmp_path / 'x', 1 << 30, (5, 30))
