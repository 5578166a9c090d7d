"""biodiversity-indices through the running server; richness, Shannon, Simpson and ES50 are
counted here by hand (collections.Counter, math.comb) on the same records."""
from __future__ import annotations

import collections
import math

import pandas as pd
import pytest

from test_ogcapi_processes import execute

EUROBIS = 'eurobis/esas_dwca_sample'


def by_hand(records, size):
    """{(ix, iy): Counter(taxon)} with cells counted from the south-west corner of the globe."""
    cells = collections.defaultdict(collections.Counter)
    for lon, lat, taxon in records:
        cells[(math.floor((lon + 180) / size), math.floor((lat + 90) / size))][taxon] += 1
    return cells


def es50_by_hand(counter):
    n = sum(counter.values())
    if n < 50:
        return None
    return sum(1 - math.comb(n - ni, 50) / math.comb(n, 50) for ni in counter.values())


def grid(server, inputs):
    resp = execute(server, 'biodiversity-indices', {'inputs': inputs, 'response': 'document'})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc['grid']['mediaType'] == 'application/geo+json'     # a qualified value
    return {tuple(map(int, f['id'].split('_'))): f for f in doc['grid']['value']['features']}, \
        doc['summary']


def test_indices_of_a_small_set_by_value(vre_server):
    records = ([(2.3, 51.2, 'Gadus morhua')] * 30 + [(2.7, 51.9, 'Mola mola')] * 15
               + [(2.1, 51.5, 'Abra alba')] * 8 + [(2.9, 51.1, 'Larus argentatus')]
               + [(-4.5, 48.2, 'Abra alba'), (-4.6, 48.3, 'Mola mola'), (-4.2, 48.9, 'Abra alba')])
    lines = ['decimalLongitude,decimalLatitude,scientificName,occurrenceStatus']
    lines += [f'{x},{y},{t},present' for x, y, t in records]
    lines += ['-4.4,48.4,Gadus morhua,absent', ',,Mola mola,present']
    cells, summary = grid(vre_server, {
        'occurrences': {'value': '\n'.join(lines) + '\n', 'mediaType': 'text/csv'},
        'cell_size': 1})
    want = by_hand(records, 1)
    assert set(cells) == set(want) and summary['records_used'] == len(records)
    assert summary['absences_left_out'] == 1 and summary['without_coordinates'] == 1
    for key, counter in want.items():
        props = cells[key]['properties']
        n = sum(counter.values())
        assert props['n'] == n and props['richness'] == len(counter)
        assert props['shannon'] == pytest.approx(
            -sum(c / n * math.log(c / n) for c in counter.values()), rel=1e-12)
        assert props['simpson'] == pytest.approx(1 - sum((c / n) ** 2 for c in counter.values()))
        want_es = es50_by_hand(counter)
        assert (props['es50'] is None) == (want_es is None)
        if want_es is not None:
            assert props['es50'] == pytest.approx(want_es, rel=1e-9)
    assert cells[(182, 141)]['geometry']['coordinates'][0][0] == [2, 51]
    assert sum(p['properties']['es50'] is not None for p in cells.values()) == 1


def test_eurobis_archive_with_event_table(vre_server, static_server, bdi_data):
    cells, summary = grid(vre_server, {
        'occurrences': {'href': f'{static_server}/{EUROBIS}/occurrence.tsv'},
        'events': {'href': f'{static_server}/{EUROBIS}/event.tsv'},
        'cell_size': 0.1, 'taxon_field': 'scientificName'})
    occ = pd.read_csv(bdi_data / EUROBIS / 'occurrence.tsv', sep='\t')
    ev = pd.read_csv(bdi_data / EUROBIS / 'event.tsv', sep='\t')
    coords = {r.eventID: (r.decimalLongitude, r.decimalLatitude) for r in ev.itertuples()}
    records = [(*coords[r.eventID], r.scientificName) for r in occ.itertuples()
               if r.eventID in coords and not math.isnan(coords[r.eventID][0])
               and r.occurrenceStatus == 'present']
    want = by_hand(records, 0.1)
    assert len(records) > 100 and summary['records_used'] == len(records)
    assert {k: (f['properties']['n'], f['properties']['richness']) for k, f in cells.items()} \
        == {k: (sum(c.values()), len(c)) for k, c in want.items()}
    for key, counter in want.items():
        want_es = es50_by_hand(counter)
        got = cells[key]['properties']['es50']
        assert got == (None if want_es is None else pytest.approx(want_es, rel=1e-9))


def test_obis_json_and_errors(vre_server, static_server):
    cells, summary = grid(vre_server, {
        'occurrences': {'href': f'{static_server}/obis/api_v3/occurrence_any_size100.json'},
        'cell_size': 5})
    assert summary['records_read'] == 100 and summary['taxon_field'] == 'speciesid'
    assert sum(f['properties']['n'] for f in cells.values()) == summary['records_used']
    r = execute(vre_server, 'biodiversity-indices', {'inputs': {
        'occurrences': {'href': f'{static_server}/{EUROBIS}/occurrence.tsv'}}})
    assert r.status_code == 400 and 'no decimalLatitude column' in r.json()['detail']
    r = execute(vre_server, 'biodiversity-indices', {'inputs': {'occurrences': {
        'href': f'{static_server}/obis/api_v3/occurrence_point_empty_result.json'}}})
    assert r.status_code == 400 and 'empty' in r.json()['detail']


def test_hexagonal_grid_counts_and_geometry(vre_server, static_server, bdi_data):
    """H3 hexagons: records grouped here with h3 directly and counted by hand; every record
    lies inside the polygon served for its cell."""
    import h3
    from shapely.geometry import Point, shape
    resp = execute(vre_server, 'biodiversity-indices', {'inputs': {
        'occurrences': {'href': f'{static_server}/{EUROBIS}/occurrence.tsv'},
        'events': {'href': f'{static_server}/{EUROBIS}/event.tsv'},
        'grid': 'hexagon', 'h3_resolution': 5, 'taxon_field': 'scientificName'},
        'response': 'document'})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    cells = {f['id']: f for f in doc['grid']['value']['features']}
    occ = pd.read_csv(bdi_data / EUROBIS / 'occurrence.tsv', sep='\t')
    ev = pd.read_csv(bdi_data / EUROBIS / 'event.tsv', sep='\t')
    coords = {r.eventID: (r.decimalLongitude, r.decimalLatitude) for r in ev.itertuples()}
    want = collections.defaultdict(collections.Counter)
    points = collections.defaultdict(list)
    for r in occ.itertuples():
        lon, lat = coords.get(r.eventID, (math.nan, math.nan))
        if not math.isnan(lon) and r.occurrenceStatus == 'present':
            cell = h3.latlng_to_cell(lat, lon, 5)
            want[cell][r.scientificName] += 1
            points[cell].append(Point(lon, lat))
    assert len(want) > 3 and doc['summary']['grid'] == 'hexagon'
    assert {k: (f['properties']['n'], f['properties']['richness']) for k, f in cells.items()} \
        == {k: (sum(c.values()), len(c)) for k, c in want.items()}
    for key, counter in want.items():
        props = cells[key]['properties']
        n = sum(counter.values())
        assert props['h3_resolution'] == 5
        assert props['shannon'] == pytest.approx(
            -sum(c / n * math.log(c / n) for c in counter.values()), rel=1e-12)
        poly = shape(cells[key]['geometry'])
        assert poly.geom_type == 'Polygon' and len(poly.exterior.coords) == 7
        assert all(poly.buffer(1e-9).contains(p) for p in points[key])


def test_hexagon_across_the_antimeridian_is_split(vre_server):
    lines = ['decimalLongitude,decimalLatitude,scientificName',
             '179.95,0.1,Mola mola', '-179.95,0.1,Abra alba', '179.99,-0.05,Mola mola']
    resp = execute(vre_server, 'biodiversity-indices', {'inputs': {
        'occurrences': {'value': '\n'.join(lines) + '\n', 'mediaType': 'text/csv'},
        'grid': 'hexagon', 'h3_resolution': 1}, 'response': 'document'})
    assert resp.status_code == 200, resp.text
    feats = resp.json()['grid']['value']['features']
    assert sum(f['properties']['n'] for f in feats) == 3
    for f in feats:
        xs = [x for poly in (f['geometry']['coordinates'] if f['geometry']['type'] ==
                             'MultiPolygon' else [f['geometry']['coordinates']])
              for x, _ in poly[0]]
        assert -180 <= min(xs) and max(xs) <= 180
    assert any(f['geometry']['type'] == 'MultiPolygon' for f in feats)
