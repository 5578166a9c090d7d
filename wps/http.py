"""WPS 1.0.0 and 2.0.0 at /wps, a second door onto the same processes and the same jobs.

GET (KVP) and POST (XML) requests are parsed into a `Call`; Execute becomes an OGC API
execute request submitted to the Celery job manager (type 'wps', owner = the caller), so
WPS jobs are listed at /jobs and obey the same ownership rule: another user's job is
"no such job". Async 1.0 jobs are polled at /wps/status/<job id> (the statusLocation),
2.0 jobs with GetStatus/GetResult/Dismiss. Every error is an OWS ExceptionReport.
"""
from __future__ import annotations

import configparser
import logging
import os
from pathlib import Path

from flask import Response, request
from werkzeug.exceptions import HTTPException

from vre.auth import current_user
from wps import wps10, wps20
from wps.errors import WPSError, exception_report, invalid
from wps.execute import execute_request, failure, run_async
from wps.processes import process_class
from wps.requests import Call, WPS20, parse_kvp, parse_xml

LOGGER = logging.getLogger(__name__)
XML = 'application/xml'


def _escape(value) -> str:
    """A config value as ConfigParser reads it back (pywps interpolates % signs)."""
    if isinstance(value, dict):
        value = value.get('en') or next(iter(value.values()), '')
    if isinstance(value, list):
        value = ','.join(map(str, value))
    return str(value or '').replace('%', '%%')


def configure_pywps(settings, meta: dict) -> Path:
    """Write pywps's config under the VRE home and load it: pywps reads its global CONFIG
    for service metadata and limits, so this is the one place that sets it."""
    from pywps import configuration

    folder = settings.home / 'wps'
    (folder / 'tmp').mkdir(parents=True, exist_ok=True)
    ident, provider = meta.get('identification') or {}, meta.get('provider') or {}
    contact = meta.get('contact') or {}
    keywords = ident.get('keywords') or {}
    mb = max(1, settings.max_body_bytes // (1024 * 1024))
    cfg = configparser.ConfigParser(interpolation=None)
    cfg['server'] = {
        'url': f'{settings.url}/wps', 'language': 'en-US', 'parallelprocesses': '-1',
        'maxrequestsize': f'{mb}mb', 'maxsingleinputsize': f'{mb}mb',
        'workdir': str(folder / 'tmp'), 'temp_path': str(folder / 'tmp'),
        'outputpath': str(settings.jobs_dir), 'outputurl': f'{settings.url}/jobs'}
    cfg['logging'] = {'level': 'WARNING', 'file': str(folder / 'pywps.log'),
                      'database': f'sqlite:///{folder / "pywps-requests.sqlite"}'}
    cfg['metadata:main'] = {
        'identification_title': _escape(ident.get('title')),
        'identification_abstract': _escape(ident.get('description')),
        'identification_keywords': _escape(keywords.get('en', []) if isinstance(keywords, dict)
                                           else keywords),
        'identification_keywords_type': _escape(ident.get('keywords_type') or 'theme'),
        'identification_fees': 'NONE',
        'identification_accessconstraints': _escape((meta.get('license') or {}).get('name')
                                                    or 'NONE'),
        'provider_name': _escape(provider.get('name')),
        'provider_url': _escape(provider.get('url')),
        **{f'contact_{key}': _escape(contact.get(key)) for key in (
            'name', 'position', 'address', 'city', 'stateorprovince', 'postalcode',
            'country', 'phone', 'fax', 'email', 'url', 'hours', 'instructions', 'role')}}
    path = folder / 'pywps.cfg'
    tmp = folder / f'pywps.cfg.{os.getpid()}'
    with tmp.open('w') as fh:
        cfg.write(fh)
    os.replace(tmp, path)          # several web workers start at once
    configuration.load_configuration([str(path)])
    return path


def _guess_version() -> str:
    """The WPS version an early error should be reported in (before parsing succeeded)."""
    if request.method == 'POST':
        return '2.0.0' if WPS20.encode() in request.get_data()[:2000] else '1.0.0'
    values = [v for k, v in request.args.items() if k.lower() in ('version', 'acceptversions')]
    return '2.0.0' if any(v.startswith('2.0.0') for v in values) else '1.0.0'


def _xml(doc: bytes, status: int = 200, headers: dict | None = None) -> Response:
    return Response(doc, status=status, mimetype=XML, headers=headers)


class WPSService:
    def __init__(self, api, settings):
        self.manager = api.manager
        self.base_url = settings.url
        self.max_mb = max(1, settings.max_body_bytes // (1024 * 1024))
        self.service_meta = (api.config or {}).get('metadata') or {}
        configure_pywps(settings, self.service_meta)
        self.metadata, self.processes = {}, {}
        for pid in self.manager.processes:
            md = self.manager.get_processor(pid).metadata
            try:
                self.processes[pid] = process_class(pid, md)()
            except Exception:   # one odd description must not take the whole server down
                LOGGER.exception('process "%s" is left out of the WPS: its description '
                                 'cannot be expressed as a pywps Process', pid)
                continue
            self.metadata[pid] = md

    # -- entry points -------------------------------------------------------------
    def handle(self):
        version = '1.0.0'
        try:
            version = _guess_version()
            if request.method not in ('GET', 'POST'):
                resp = exception_report(WPSError(
                    'OperationNotSupported', f'{request.method} is not used by WPS; send GET '
                    '(KVP) or POST (XML)', 'method', status=405), version)
                resp.headers['Allow'] = 'GET, POST'
                return resp
            if request.method == 'POST' and request.mimetype == \
                    'application/x-www-form-urlencoded':
                call = parse_kvp(request.form)
            elif request.method == 'POST':
                call = parse_xml(request.get_data())
            else:
                call = parse_kvp(request.args)
            version = call.version
            return getattr(self, call.operation)(call)
        except Exception as err:  # every failure, ours included, is an ExceptionReport
            return exception_report(self._as_wps_error(err), version)

    def status_document(self, job_id):
        """The 1.0.0 statusLocation: the ExecuteResponse of the job as it is now."""
        try:
            row = self.job(job_id)
            md = self.metadata.get(row['process_id'], {})
            return _xml(wps10.execute_response(row, md, self.base_url, self._status_url(row)))
        except Exception as err:
            return exception_report(self._as_wps_error(err), '1.0.0')

    @staticmethod
    def _as_wps_error(err: Exception) -> WPSError:
        if isinstance(err, WPSError):
            return err
        if isinstance(err, HTTPException) and err.code == 413:
            return WPSError('FileSizeExceeded', 'the request body is larger than the limit of '
                            'this server', status=413)
        if isinstance(err, HTTPException) and (err.code or 500) < 500:
            return WPSError('NoApplicableCode', err.description or err.name, status=err.code)
        LOGGER.exception('WPS request failed')
        return WPSError('NoApplicableCode', 'internal error; the server log has the details',
                        status=500)

    # -- helpers ------------------------------------------------------------------
    def _status_url(self, row: dict) -> str:
        return f"{self.base_url}/wps/status/{row['job_id']}"

    def job(self, job_id: str) -> dict:
        """The job if the caller may see it (others' jobs are 'no such job', as in /jobs)."""
        row = self.manager.get_job_row(job_id)
        user = current_user()
        if row is None or (row['owner'] is not None and
                           (user is None or not user.may_access(row['owner']))):
            raise WPSError('NoSuchJob', f'no job "{job_id}"', 'JobID')
        return row

    def _process(self, call: Call) -> tuple[str, dict]:
        pid = call.identifiers[0]
        if pid not in self.metadata:
            text = f'no process "{pid}"; GetCapabilities lists the processes'
            if call.version == '1.0.0':
                raise invalid('Identifier', text)
            raise WPSError('NoSuchProcess', text, 'Identifier')
        return pid, self.metadata[pid]

    # -- operations ---------------------------------------------------------------
    def GetCapabilities(self, call: Call):
        if call.version == '1.0.0':
            return _xml(wps10.capabilities(self.processes))
        return _xml(wps20.capabilities(self.service_meta, self.metadata,
                                       f'{self.base_url}/wps'))

    def DescribeProcess(self, call: Call):
        if call.version == '1.0.0':
            return _xml(wps10.describe(self.processes, call.identifiers, self.max_mb))
        return _xml(wps20.describe(self.metadata, call.identifiers))

    def Execute(self, call: Call):
        pid, md = self._process(call)
        body = execute_request(md, call)
        answer_now = run_async(md, call)
        user = current_user()
        row = self.manager.submit(pid, body, owner=user.name if user else None, type_='wps',
                                  meta={'wps': {'version': call.version,
                                                'lineage': call.lineage}})
        if answer_now:
            if call.version == '1.0.0':
                return _xml(wps10.execute_response(row, md, self.base_url,
                                                   self._status_url(row)))
            return _xml(wps20.status_info(row))
        row = self.manager.wait(row['job_id'])
        if row is not None and row['status'] in ('accepted', 'running'):
            raise WPSError('NoApplicableCode', f"job {row['job_id']} is still {row['status']} "
                           'after its time limit', status=504)
        if row is None or row['status'] != 'successful':
            raise failure(row)
        if call.raw:
            results = list((row['results'] or {}).values())
            if not results:
                raise WPSError('NoApplicableCode', 'the process gave no output', status=500)
            data, media = wps10.raw_output(results[0])
            return Response(data, mimetype=media)
        if call.version == '1.0.0':
            return _xml(wps10.execute_response(row, md, self.base_url, None))
        return _xml(wps20.result(row, md))

    def GetStatus(self, call: Call):
        return _xml(wps20.status_info(self.job(call.job_id)))

    def GetResult(self, call: Call):
        row = self.job(call.job_id)
        if row['status'] in ('accepted', 'running'):
            raise WPSError('ResultNotReady', f"job {call.job_id} is {row['status']}; ask "
                           'again when GetStatus says Succeeded', 'JobID')
        if row['status'] != 'successful':
            raise failure(row)
        return _xml(wps20.result(row, self.metadata.get(row['process_id'], {})))

    def Dismiss(self, call: Call):
        row = self.job(call.job_id)
        self.manager.dismiss(call.job_id)
        return _xml(wps20.status_info(row, 'dismissed'))


def register(app, api, settings) -> None:
    service = WPSService(api, settings)
    app.extensions['vre_wps'] = service
    from wps.errors import from_api_error
    app.extensions['vre_error_renderers']['/wps'] = from_api_error
    app.add_url_rule('/wps', 'vre_wps', service.handle,
                     methods=['GET', 'POST', 'PUT', 'DELETE', 'PATCH'])
    app.add_url_rule('/wps/status/<job_id>', 'vre_wps_status', service.status_document)
