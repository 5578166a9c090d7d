"""W3C PROV of a job, built from its job store row with the `prov` library.

The job is an activity; the process (id and version) a plan; the user an agent; every input
read by reference an entity with its checksum; every output an entity with its checksum.
Orders and later jobs that read these outputs link to the same entity ids (their URLs).
A job with nested processes ran as a Celery workflow: each step (each nested process, and
the outer one as step 0) is an activity of its own, with its Celery task, worker and times,
informed by the steps it came after; a nested step generated the entity its output is."""
from __future__ import annotations

import hashlib
import io
import json

from prov.model import ProvDocument

PROV_TYPES = {
    'json': 'application/json',
    'provn': 'text/provenance-notation',
    'xml': 'application/provenance+xml',
}


def job_provenance(row: dict, base_url: str, process_version: str) -> ProvDocument:
    doc = ProvDocument()
    doc.add_namespace('vre', f'{base_url}/')
    doc.add_namespace('job', f'{base_url}/jobs/')
    doc.add_namespace('process', f'{base_url}/processes/')
    doc.add_namespace('user', f'{base_url}/users/')
    doc.add_namespace('ext', 'urn:vre:external:')
    request = row.get('request') or {}
    job_id = row['job_id']
    activity = doc.activity(f"job:{job_id}", row.get('started'), row.get('finished'), {
        'prov:type': 'vre:Job', 'vre:status': row['status'],
        'vre:worker': row.get('worker') or '', 'vre:attempts': row.get('attempts') or 0,
        'vre:parameters': json.dumps({k: v for k, v in (request.get('inputs') or {}).items()
                                      if not (isinstance(v, dict) and 'href' in v)},
                                     sort_keys=True),
    })
    plan = doc.entity(f"process:{row['process_id']}", {
        'prov:type': 'prov:Plan', 'vre:version': process_version})
    agent = doc.agent(f"user:{row.get('owner') or 'anonymous'}", {'prov:type': 'prov:Person'})
    doc.wasAssociatedWith(activity, agent, plan)
    doc.wasStartedBy(activity, time=row.get('started'), other_attributes={
        'vre:created': row['created'].isoformat()})
    for used in (row.get('meta') or {}).get('used', []):
        entity = doc.entity(_entity_id(used['href']), {
            'prov:location': used['href'], 'vre:sha256': used['sha256'],
            'vre:bytes': used['bytes'], 'vre:mediaType': used.get('mediaType') or ''})
        doc.used(activity, entity)
    for name, result in (row.get('results') or {}).items():
        ident = result.get('href') or f'{base_url}/jobs/{job_id}/results#{name}'
        entity = doc.entity(_entity_id(ident), {
            'vre:output': name, 'vre:sha256': result.get('sha256') or _file_sha256(result),
            'vre:mediaType': result.get('type') or result.get('mediaType') or '',
            'prov:location': ident})
        doc.wasGeneratedBy(entity, activity, row.get('finished'))
        doc.wasAttributedTo(entity, agent)
    _steps(doc, activity, job_id, (row.get('meta') or {}).get('steps', []))
    if row.get('type') == 'order':
        from processes.order import order_provenance
        order_provenance(doc, row, activity)    # the stored granule files
    return doc


def _steps(doc, job, job_id: str, steps: list) -> None:
    activities = {}
    for step in steps:                  # depth first: a step comes after those it needs
        activities[step['step']] = act = doc.activity(
            f"job:{job_id}/steps/{step['step']}", step['started'], step['finished'], {
                'prov:type': 'vre:Step', 'vre:process': step['process'],
                'vre:task': step['task'] or '', 'vre:worker': step['worker']})
        doc.wasInformedBy(job, act)
        for n in step['after']:
            doc.wasInformedBy(act, activities[n])
        if step.get('output'):
            doc.wasGeneratedBy(_entity_id(step['output']), act, step['finished'])


def _file_sha256(result: dict) -> str:
    """The checksum of a file output that its worker hashes after the job's answer and has
    not recorded yet: the same bytes, hashed here ('' once the file is gone)."""
    try:
        with open(result['path'], 'rb') as fh:
            return hashlib.file_digest(fh, 'sha256').hexdigest()
    except (KeyError, OSError):
        return ''


def _entity_id(url: str) -> str:
    """A stable qualified name for any URL: the same file gets the same id in every graph."""
    return 'ext:' + hashlib.sha256(url.encode()).hexdigest()[:32]


def serialize(doc: ProvDocument, fmt: str) -> str:
    if fmt == 'provn':
        return doc.get_provn()
    buf = io.StringIO()
    doc.serialize(buf, format='xml' if fmt == 'xml' else 'json')
    return buf.getvalue()
