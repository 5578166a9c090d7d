"""Harvest: listing -> changed granules -> index rows, incrementally, with a report.

Per granule the index keeps size, mtime, etag (the BDI's own change marker when it has one)
and a SHA-256; a second run reads only granules whose marker changed and rewrites only those
whose checksum changed. A granule that cannot be read is reported and skipped.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
from pathlib import Path
from typing import Callable, Iterable

import sqlalchemy as sa

from providers import store
from providers.base import Connector, GranuleError, HttpSource, MirrorSource, Source


# every BDI connector, as module:class; a new BDI adds its line here
CONNECTORS = [
    'providers.argo:ArgoConnector',
    'providers.seadatanet:SeaDataNetConnector',
    'providers.obis:ObisConnector',
    'providers.obis:EurobisConnector',
    'providers.socat:SocatConnector',
    'providers.icos:IcosMarineConnector',
    'providers.ecotaxa:EcotaxaConnector',
    'providers.ena:EnaConnector',
    'providers.emodnet:BathymetryConnector',
    'providers.emodnet:BiologyConnector',
    'providers.emodnet:ChemistryOwsConnector',
    'providers.emodnet_chemistry:EmodnetChemistryConnector',
    'providers.emodnet_chemistry:SeaDataNetProductsConnector',
    'providers.erddap:ErddapConnector',
]


@functools.cache
def connectors() -> dict[str, type[Connector]]:
    """name -> connector class, in the order of CONNECTORS (read once: pygeoapi builds a
    provider, which asks for them, on every request)."""
    out = {}
    for entry in CONNECTORS:
        module, cls = entry.split(':')
        c = getattr(importlib.import_module(module), cls)
        out[c.name] = c
    return out


def sources_for(bdis: list[str] | None, mirror: Path | None, urls: dict | None,
                config: dict | None = None) -> dict[str, Source]:
    """Which source each BDI is harvested from: --mirror DIR, --url, or the config."""
    known = connectors()
    conf = ((config or {}).get('vre') or {}).get('bdis') or {}
    wanted = list(bdis or [])
    unknown = [b for b in wanted if b not in known]
    if unknown:
        raise ValueError(f'unknown BDI {", ".join(unknown)}; known: {", ".join(known)}')
    out: dict[str, Source] = {}
    for name in wanted or list(known):
        if urls and urls.get(name):
            out[name] = HttpSource(urls[name])
        elif mirror is not None:
            folder = known[name].folder or name
            if (Path(mirror) / folder).is_dir():
                out[name] = MirrorSource(Path(mirror) / folder)
            elif name in wanted:
                raise ValueError(f'{mirror} has no {folder}/ folder')
        elif (conf.get(name) or {}).get('mirror'):
            out[name] = MirrorSource(Path(conf[name]['mirror']))
        elif (conf.get(name) or {}).get('url') and (conf[name].get('harvest', True)):
            out[name] = HttpSource(conf[name]['url'])
    return out


def harvest(db_url: str, sources: dict[str, Source], config: dict | None = None,
            progress: Callable[[Iterable, str], Iterable] | None = None) -> dict:
    """Harvest each BDI from its source into the index at db_url; returns the report."""
    conf = ((config or {}).get('vre') or {}).get('bdis') or {}
    eng = store.engine(db_url)
    report = {}
    for name, source in sources.items():
        connector = connectors()[name](conf.get(name) or {})
        report[name] = harvest_one(eng, connector, source, progress)
    return report


def harvest_one(eng, connector: Connector, source: Source, progress=None) -> dict:
    progress = progress or (lambda it, label: it)
    name = connector.name
    rep = {'source': repr(source), 'added': 0, 'updated': 0, 'unchanged': 0, 'removed': 0,
           'observations': 0, 'skipped': [], 'problems': []}
    started = store.now_iso()
    try:
        refs = connector.granules(source)
    except Exception as err:  # listing unreachable: record health, keep the old index
        rep['error'] = f'{type(err).__name__}: {err}'
        _save_bdi(eng, connector, source, started, False, rep['error'], rep)
        return rep
    rep['skipped'] += [{'granule': g, 'reason': why} for g, why in connector.listing_problems()]
    rep.update(getattr(connector, 'report_notes', dict)())   # e.g. what a filter left out
    G = store.GRANULE
    with eng.connect() as conn:
        known = {r.id: r for r in conn.execute(
            sa.select(G.c.id, G.c.size, G.c.mtime, G.c.etag, G.c.checksum).where(G.c.bdi == name))}
    seen, unchanged = set(), set()
    for ref in progress(refs, name):
        seen.add(ref.id)
        old = known.get(ref.id)
        try:
            st = connector.stat(source, ref)
            etag = ref.etag or st.etag
            if old and (old.size, old.mtime, old.etag) == (st.size, st.mtime, etag):
                rep['unchanged'] += 1
                unchanged.add(ref.path)
                continue
            data = connector.fetch(source, ref)
            checksum = hashlib.sha256(data).hexdigest()
            stamp = {'size': st.size if st.size is not None else len(data), 'mtime': st.mtime,
                     'etag': etag, 'checksum': checksum}
            if old and old.checksum == checksum:
                with eng.begin() as conn:
                    conn.execute(G.update().where(G.c.id == ref.id).values(**stamp))
                rep['unchanged'] += 1
                unchanged.add(ref.path)
                continue
            granule = connector.read(ref, data)
        except FileNotFoundError:
            rep['skipped'].append({'granule': ref.path, 'reason': 'not found at the source'})
            continue
        except GranuleError as err:
            rep['skipped'].append({'granule': ref.path, 'reason': str(err)})
            continue
        except Exception as err:  # a corrupt or unexpected file must not stop the harvest
            rep['skipped'].append({'granule': ref.path,
                                   'reason': f'unreadable: {type(err).__name__}: {err}'})
            continue
        rep['skipped'] += [{'granule': ref.path, 'reason': p} for p in granule.problems]
        _write_granule(eng, granule, stamp)
        rep['observations'] += len(granule.observations)
        rep['updated' if old else 'added'] += 1
    gone = [g for g in known if g not in seen]
    with eng.begin() as conn:
        for i in range(0, len(gone), 500):
            chunk = gone[i:i + 500]
            store.delete(conn, store.OBSERVATION, store.OBSERVATION.c.granule.in_(chunk))
            store.delete(conn, G, G.c.id.in_(chunk))
        rep['removed'] = len(gone)
        _write_collections(conn, connector)
        I = store.ISSUE
        kept = conn.execute(sa.select(I.c.granule, I.c.problem).where(
            I.c.bdi == name, I.c.granule.in_(unchanged))).all()
        rep['skipped'] += [{'granule': g, 'reason': p} for g, p in kept]
        conn.execute(I.delete().where(I.c.bdi == name))
        if rep['skipped']:
            conn.execute(store.ISSUE.insert(), [
                {'bdi': name, 'granule': s['granule'], 'problem': s['reason'], 'time': started}
                for s in rep['skipped']])
    _save_bdi(eng, connector, source, started, True, None, rep)
    return rep


def _write_granule(eng, granule, stamp: dict) -> None:
    rec = dict(granule.record, **stamp, n_obs=len(granule.observations))
    rec['extra'] = store.dumps(rec.get('extra'))
    rows = [dict(o, props=store.dumps(o.get('props')), levels=store.dumps(o.get('levels')))
            for o in granule.observations]
    cols = set(store.OBSERVATION.c.keys())
    rows = [{k: r.get(k) for k in cols if k != 'rid'} for r in rows]
    with eng.begin() as conn:
        store.delete(conn, store.OBSERVATION, store.OBSERVATION.c.granule == rec['id'])
        store.upsert(conn, store.GRANULE, [rec])
        for i in range(0, len(rows), 2000):
            store.upsert(conn, store.OBSERVATION, rows[i:i + 2000])


def _write_collections(conn, connector: Connector) -> None:
    """Collection records with extents and counts taken from their granules.

    Collections the connector did not describe this run (nothing of theirs changed) are kept
    while they still have granules.
    """
    G, C = store.GRANULE, store.COLLECTION
    rows = {c['id']: c for c in connector.collections()}
    # grid collections (type coverage) of a BDI are written by coverage.register_catalogue
    mine = sa.and_(C.c.bdi == connector.name, sa.func.coalesce(C.c.type, '') != 'coverage')
    for old in conn.execute(sa.select(C).where(mine)).mappings():
        if old['id'] not in rows:
            rows[old['id']] = dict({k: v for k, v in old.items() if k != 'rid'},
                                   extra=json.loads(old['extra'] or '{}'), _old=True)
    out = []
    for coll in rows.values():
        ext = conn.execute(sa.select(
            sa.func.min(G.c.minx), sa.func.min(G.c.miny), sa.func.max(G.c.maxx),
            sa.func.max(G.c.maxy), sa.func.min(G.c.tmin), sa.func.max(G.c.tmax),
            sa.func.count(), sa.func.sum(G.c.n_obs)).where(G.c.collection == coll['id'])).one()
        if coll.pop('_old', False) and not ext[6]:
            continue
        extra = dict(coll.pop('extra', None) or {}, granules=ext[6], observations=ext[7] or 0)
        if ext[6]:
            coll.update(minx=ext[0], miny=ext[1], maxx=ext[2], maxy=ext[3], tmin=ext[4],
                        tmax=ext[5])
        out.append(dict(coll, extra=store.dumps(extra)))
    store.delete(conn, C, mine)
    store.upsert(conn, C, out)


def _save_bdi(eng, connector, source, when, reachable, error, rep) -> None:
    B = store.BDI
    row = {'name': connector.name, 'title': connector.title, 'kind': connector.kind,
           'source': repr(source), 'last_harvest': when, 'reachable': reachable,
           'last_error': error or (f"{len(rep['skipped'])} granule(s) or row(s) skipped"
                                   if rep['skipped'] else None),
           'report': json.dumps(rep)}
    with eng.begin() as conn:
        conn.execute(B.delete().where(B.c.name == connector.name))
        conn.execute(B.insert(), [row])
