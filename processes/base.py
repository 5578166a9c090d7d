"""The one base class of an analytic: OGC metadata as a class attribute, one `run` method.

The OGC process description, the WPS description (wps/) and input validation all derive
from `METADATA`; the job runner (processes/runner.py) gives `run` a `JobContext` for
progress, by-reference inputs and a scratch folder.
"""
from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pygeoapi.process.base import BaseProcessor


class InputError(Exception):
    """A client mistake found while running (bad file, empty selection): job fails, 4xx."""


class FetchError(InputError):
    """A reference that could not be read; `retry` when the server may answer later
    (5xx, 429, timeout, refused connection) rather than never (404, too large)."""

    def __init__(self, message: str, retry: bool = False):
        super().__init__(message)
        self.retry = retry


@dataclass
class Output:
    """One output of a run: a JSON-able value, a file written in the job's folder, or a
    reference the process made itself (`href`, e.g. an order's zip made when downloaded)."""
    value: Any = None
    path: Path | None = None
    media_type: str = 'application/json'
    href: str | None = None


@dataclass
class JobContext:
    job_id: str
    user: str | None
    workdir: Path
    max_input_bytes: int
    report: Callable[[int, str], None]
    used: list = field(default_factory=list)   # inputs read by reference, for provenance
    # store([(relative path, local file, media type, sha256 or None[, {licence, citation}]),
    # ...]) -> [{href, path, sha256, size}]: files a process delivers one by one (an order's
    # granules) put into the job's output tier and folder in one go, taken over (renamed) by
    # a local tier, each with its own licence and citation when given
    store: Callable[[list], list] | None = None
    base_url: str = ''            # the server's public URL, for references a process makes

    def progress(self, percent: int, message: str = '') -> None:
        self.report(int(max(0, min(100, percent))), message)

    def input_file(self, value, suffix: str = '') -> Path:
        """A local file for a complex input given by reference ({"href": ...}) or by value
        (base64 in {"value": ...} or plain text)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        target = self.workdir / f'input-{len(list(self.workdir.glob("input-*")))}{suffix}'
        if isinstance(value, dict) and 'href' in value:
            self._download(value['href'], target)
        elif isinstance(value, dict) and 'value' in value:
            raw = value['value']
            data = (base64.b64decode(raw) if value.get('encoding', 'base64') == 'base64'
                    and not value.get('mediaType', '').startswith('text') else raw.encode())
            target.write_bytes(data)
        elif isinstance(value, str):
            target.write_text(value)
        else:
            raise InputError('a file input must be {"href": URL} or {"value": ...}')
        return target

    def _download(self, href: str, target: Path) -> None:
        self.fetch(href, target)

    def fetch(self, href: str, target: Path, limit: int | None = None,
              timeout=(10, 120)) -> dict:
        """Stream an http(s) URL to `target`, checksumming on the way; the read is recorded
        in `used` (provenance). Raises FetchError; bounded by `timeout` and `limit` bytes."""
        from processes.fetch import fetch, shared_pools
        used = fetch(shared_pools(), href, target, limit or self.max_input_bytes, timeout)
        self.used.append(used)
        return used


TIERS = ['volatile', 'workspace', 'dataspace']
# Inputs every process takes: where its outputs by reference are stored. The runner reads
# them; `run` never sees them.
STORAGE_INPUTS = ('output_tier', 'output_folder')


def is_file(schema: dict) -> bool:
    """A file input or output: binary content, or a media type that is not JSON or text."""
    media = schema.get('contentMediaType', '')
    return schema.get('contentEncoding') == 'binary' or bool(
        media and not media.startswith(('application/json', 'text/')))


def storage_inputs(default_tier: str) -> dict:
    return {
        'output_tier': {
            'title': 'Storage tier of the outputs',
            'description': 'Where outputs by reference are written: volatile (24 h, reachable '
                           'by URL only), workspace (persistent, replicated; needs a user) or '
                           'dataspace (large and fast; needs a user).',
            'schema': {'type': 'string', 'enum': TIERS, 'default': default_tier},
            'minOccurs': 0, 'maxOccurs': 1,
        },
        'output_folder': {
            'title': 'Folder of the outputs',
            'description': 'Folder in the workspace or dataspace of the user (default '
                           'jobs/<job id>); ignored for the volatile tier.',
            'schema': {'type': 'string', 'pattern': r'^[^\\]*$', 'maxLength': 512},
            'minOccurs': 0, 'maxOccurs': 1,
        },
    }


class VREProcess(BaseProcessor):
    """Subclass with METADATA (an OGC process description) and `run(inputs, ctx)`."""

    METADATA: dict = {}
    rerun_safe: bool = True        # may be run again if its worker dies mid-job
    timeout: float | None = None   # seconds; None = the server's default
    default_tier: str = 'volatile'
    job_type: str = 'process'      # the job list's `type` of its jobs (orders: 'order')
    basket_input: str | None = None  # the array input PATCH {"add", "remove"} edits
    needs_user: bool = False       # jobs of anonymous callers are refused (401)

    def __init__(self, processor_def: dict):
        metadata = dict(self.METADATA)
        if any(is_file(o.get('schema', {})) for o in metadata.get('outputs', {}).values()):
            metadata['inputs'] = {**metadata.get('inputs', {}),
                                  **storage_inputs(self.default_tier)}
        super().__init__(processor_def, metadata)
        self.config = processor_def       # the processor block of the config (extra options)

    def run(self, inputs: dict, ctx: JobContext) -> dict[str, Output]:
        raise NotImplementedError

    def check(self, inputs: dict, partial: bool = False) -> None:
        """Checks at submission that the schema cannot make (ids that must exist), so a
        mistake is a 400 now rather than a failed job later; raise InputError. `partial`:
        a job still being put together (Part 4 `created`), which may be incomplete."""

    def execute(self, data: dict, outputs=None):
        """pygeoapi's in-process entry point, for tools that call processors directly."""
        import tempfile
        tmp = Path(tempfile.mkdtemp(prefix='vre-exec-'))
        try:
            ctx = JobContext('local', None, tmp, 1 << 30, lambda p, m: None)
            result = self.run(data, ctx)
            return 'application/json', {
                k: (o.value if o.path is None else str(o.path)) for k, o in result.items()}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
