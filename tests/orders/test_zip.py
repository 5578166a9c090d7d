"""The zip of an order, laid out from names and sizes alone (processes.orders.StoredZip),
read back by Python's zipfile and Info-ZIP's `unzip -t`, whole and by byte ranges."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
import zlib
from datetime import datetime

import pytest

from processes.orders import StoredZip

FILES = {'argo/D6901929_001.nc': os.urandom(70_000), 'obis/occurrence é.json': b'{"a": 1}',
         'seadatanet/empty.txt': b'', 'manifest.json': b'{"order": "x"}'}
WHEN = datetime(2026, 11, 24, 3, 30, 7)


def archive(zip64_at=0xFFFFFFFF, crcs=None):
    names = list(FILES)
    asked = []

    def crc(i):
        asked.append(i)
        return zlib.crc32(FILES[names[i]])
    z = StoredZip([(n, len(FILES[n])) for n in names], crc,
                  lambda i: io.BytesIO(FILES[names[i]]), WHEN, zip64_at)
    return z, asked


@pytest.mark.parametrize('zip64_at', [0xFFFFFFFF, 0, 40_000],
                         ids=['plain', 'all-zip64', 'zip64-from-the-big-member-on'])
def test_zipfile_and_unzip_read_it(zip64_at, tmp_path):
    z, _ = archive(zip64_at)
    data = b''.join(z.read(0, z.size))
    assert len(data) == z.size
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    assert zf.namelist() == list(FILES)
    for info in zf.infolist():
        assert info.compress_type == zipfile.ZIP_STORED and info.file_size == len(FILES[info.filename])
        assert info.date_time == (2026, 11, 24, 3, 30, 6)
        assert zf.read(info) == FILES[info.filename]
    if shutil.which('unzip') is None:
        pytest.skip('Debian unzip is not installed; zipfile read it above')
    (tmp_path / 'o.zip').write_bytes(data)
    proc = subprocess.run(['unzip', '-t', str(tmp_path / 'o.zip')], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and 'No errors detected' in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(['unzip', '-o', '-q', str(tmp_path / 'o.zip'), '-d',
                           str(tmp_path / 'out')], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name, content in FILES.items():
        assert (tmp_path / 'out' / name).read_bytes() == content


def test_same_bytes_as_a_zip_written_by_zipfile_apart_from_the_attributes():
    """Python's writer gives the same members at the same offsets (only its version and
    attribute fields differ): the layout is the standard one."""
    z, _ = archive()
    ours = zipfile.ZipFile(io.BytesIO(b''.join(z.read(0, z.size))))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as zf:
        for name, content in FILES.items():
            zf.writestr(zipfile.ZipInfo(name, WHEN.timetuple()[:6]), content)
    theirs = zipfile.ZipFile(buf)
    assert len(buf.getvalue()) == z.size
    assert [(i.filename, i.header_offset, i.CRC, i.file_size) for i in ours.infolist()] == \
        [(i.filename, i.header_offset, i.CRC, i.file_size) for i in theirs.infolist()]


def test_any_range_is_the_slice_of_the_whole():
    z, _ = archive(40_000)
    whole = b''.join(z.read(0, z.size))
    cuts = sorted({0, 1, 29, 30, 31, 500, 69_999, 70_050, 70_100, z.size - 23, z.size - 1}
                  | set(range(0, z.size, 4_999)))
    for a in cuts:
        for b in (a + 1, a + 57, a + 70_001, z.size):
            b = min(b, z.size)
            assert b''.join(z.read(a, b)) == whole[a:b], (a, b)


def test_a_download_resumed_mid_file_and_across_entries(tmp_path):
    """Cut in the middle of the first member, resumed up to the middle of the third entry's
    header, then the rest: the pieces make the same valid zip."""
    z, asked = archive()
    whole = b''.join(z.read(0, z.size))
    third = whole.index(b'seadatanet/empty.txt')           # inside the third local header
    pieces = [b''.join(z.read(0, 12_345)), b''.join(z.read(12_345, third)),
              b''.join(z.read(third, z.size))]
    assert b''.join(pieces) == whole
    assert zipfile.ZipFile(io.BytesIO(b''.join(pieces))).testzip() is None


def test_crcs_are_asked_only_for_the_headers_read():
    z, asked = archive()
    first_data = len(z._local(0, 0))
    list(z.read(first_data + 10, first_data + 20_000))     # inside the first member only
    assert asked == []
    list(z.read(0, 10))
    assert asked == [0]
    assert z.size == len(b''.join(z.read(0, z.size)))      # the length never needed a CRC
