"""CQL2 spatial predicates with any geometry (points, lines, polygons, multi-geometries,
envelopes) through a real `vre serve` on the SQLite index harvested from the mirror: the answer
must be exactly the features shapely finds when it tests the geometries of the unfiltered
answer, with exact numberMatched and paging; bad geometries are a 400 problem+json.

Filters reach pygeoapi as `filter=` text (pygeoapi parses it with pygeofilter's ECQL parser:
INTERSECTS/WITHIN/CONTAINS/DISJOINT(geometry, <WKT>)) or as a CQL2-JSON body POSTed to /items
(s_intersects, s_within, ... with GeoJSON or {"bbox": [...]})."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import requests
import shapely
from shapely.geometry import LineString, Polygon, box, shape

from bdi_samples import get_json


def wkt(geom) -> str:
    """WKT that keeps every digit (shapely's default rounds the last one of some numbers)."""
    return shapely.to_wkt(geom, rounding_precision=17, trim=True)

COLLS = ['argo-profiles', 'obis-occurrences']


def _all(server, coll, **params):
    got = get_json(server, f'/collections/{coll}/items', limit=10000, f='json', **params)
    assert got['numberMatched'] == len(got['features'])
    return got['features']


def _shapes(server, coll):
    """id -> shapely geometry of every feature with a geometry, from the unfiltered answer
    (a record's box that is flat in one direction is the line it is)."""
    out = {}
    for f in _all(server, coll):
        if f['geometry']:
            g = shape(f['geometry'])
            if g.geom_type == 'Polygon' and g.area == 0:
                g = LineString([g.bounds[:2], g.bounds[2:]])
            out[f['id']] = g
    return out


def _points(shapes) -> list:
    """The distinct points, west to east."""
    return sorted({s.coords[0] for s in shapes.values()})


def _filtered(server, coll, cql: str, **params):
    feats = _all(server, coll, filter=cql, **params)
    return [f['id'] for f in feats]


def _wedge(shapes) -> Polygon:
    """A concave polygon (not a rectangle) over the data: a triangle with a notch."""
    x0, y0, x1, y1 = _bounds(shapes)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    return Polygon([(x0 - 1, y0 - 1), (x1 + 1, y0 - 1), (mx, my), (x0 - 1, y1 + 1)])


def _bounds(shapes):
    xs = [v for s in shapes for v in (s.bounds[0], s.bounds[2])]
    ys = [v for s in shapes for v in (s.bounds[1], s.bounds[3])]
    return min(xs), min(ys), max(xs), max(ys)


@pytest.mark.parametrize('coll', COLLS)
def test_polygon_answers_what_shapely_finds(bdi_server, coll):
    shapes = _shapes(bdi_server, coll)
    wedge = _wedge(shapes.values())
    for op in ('intersects', 'within', 'disjoint'):
        want = {i for i, s in shapes.items() if getattr(s, op)(wedge)}
        assert 0 < len(want) < len(shapes), (op, len(want))   # the filter does filter
        got = _filtered(bdi_server, coll, f'{op.upper()}(geometry, {wkt(wedge)})')
        assert len(got) == len(set(got)) and set(got) == want, op
    # a polygon is not its envelope: the bbox of the wedge matches more
    in_box = {i for i, s in shapes.items() if s.intersects(box(*wedge.bounds))}
    assert in_box > {i for i, s in shapes.items() if s.intersects(wedge)}


@pytest.mark.parametrize('coll', COLLS)
def test_paging_and_number_matched_are_exact(bdi_server, coll):
    shapes = _shapes(bdi_server, coll)
    wedge = _wedge(shapes.values())
    cql = f'INTERSECTS(geometry, {wkt(wedge)})'
    full = _filtered(bdi_server, coll, cql)
    assert len(full) > 3
    size, pages = max(1, len(full) // 4), []
    for offset in range(0, len(full) + size, size):
        page = get_json(bdi_server, f'/collections/{coll}/items', filter=cql,
                        limit=size, offset=offset, f='json')
        assert page['numberMatched'] == len(full)
        assert page['numberReturned'] == len(page['features']) <= size
        pages += [f['id'] for f in page['features']]
    assert pages == full
    hits = get_json(bdi_server, f'/collections/{coll}/items', filter=cql, resulttype='hits',
                    f='json')
    assert hits['numberMatched'] == len(full)


def test_lines_intersect_points_and_boxes(bdi_server):
    shapes = _shapes(bdi_server, 'argo-profiles')
    pid, pt = sorted(shapes.items())[0]
    through = LineString([pt.coords[0], (pt.x + 3.5, pt.y + 1.25)])   # starts on one profile
    want = {i for i, s in shapes.items() if s.intersects(through)}
    assert pid in want
    assert set(_filtered(bdi_server, 'argo-profiles',
                         f'INTERSECTS(geometry, {wkt(through)})')) == want
    # collection records are boxes: a line from a small one far away meets some, exactly
    boxes = _shapes(bdi_server, 'bdi-collections')
    small = min((s for s in boxes.values() if s.area > 0), key=lambda s: s.area)
    c = small.centroid
    line = LineString([(c.x, c.y), (c.x + 40, c.y - 30), (c.x + 45, c.y - 10)])
    want = {i for i, s in boxes.items() if s.intersects(line)}
    assert 0 < len(want) < len(boxes)
    assert set(_filtered(bdi_server, 'bdi-collections', f'INTERSECTS(geometry, {wkt(line)})')) \
        == want


def test_boxes_containing_a_point(bdi_server):
    boxes = _shapes(bdi_server, 'bdi-collections')
    p = min((s for s in boxes.values() if s.area > 0), key=lambda s: s.area).centroid
    want = {i for i, s in boxes.items() if s.contains(p)}
    assert 0 < len(want) < len(boxes)
    assert set(_filtered(bdi_server, 'bdi-collections', f'CONTAINS(geometry, {wkt(p)})')) == want
    # S_WITHIN with the same point on the other side is the same question
    r = _post(bdi_server, 'bdi-collections', {'op': 's_within', 'args': [
        p.__geo_interface__, {'property': 'geometry'}]})
    assert r.status_code == 200, r.text
    assert {f['id'] for f in r.json()['features']} == want


def _post(server, coll, body, **params):
    return requests.post(f'{server.url}/collections/{coll}/items',
                         params={'limit': 10000, 'f': 'json', **params},
                         data=json.dumps(body),
                         headers={'Content-Type': 'application/query-cql-json'}, timeout=60)


@pytest.mark.parametrize('coll', COLLS)
def test_cql2_json_multipolygon(bdi_server, coll):
    shapes = _shapes(bdi_server, coll)
    pts = _points(shapes)
    n = max(1, len(pts) // 5)
    west = shapely.MultiPoint(pts[:n]).convex_hull.buffer(0.001)
    east = shapely.MultiPoint(pts[-n:]).convex_hull.buffer(0.001)
    multi = west.union(east)
    assert multi.geom_type == 'MultiPolygon'
    for op in ('s_intersects', 's_within'):
        r = _post(bdi_server, coll, {'op': op, 'args': [
            {'property': 'geometry'}, json.loads(json.dumps(multi.__geo_interface__))]})
        assert r.status_code == 200, r.text
        want = {i for i, s in shapes.items() if getattr(s, op[2:])(multi)}
        assert {f['id'] for f in r.json()['features']} == want and want
        assert r.json()['numberMatched'] == len(want)
    # S_CONTAINS written the other way round: the polygon contains the feature
    r = _post(bdi_server, coll, {'op': 's_contains', 'args': [
        multi.__geo_interface__, {'property': 'geometry'}]})
    assert r.status_code == 200, r.text
    assert {f['id'] for f in r.json()['features']} == \
        {i for i, s in shapes.items() if multi.contains(s)}


def test_spatial_and_other_conditions(bdi_server):
    shapes = _shapes(bdi_server, 'argo-profiles')
    wedge = _wedge(shapes.values())
    synthetic = {f['id'] for f in _all(bdi_server, 'argo-profiles',
                                       filter="file_type = 'synthetic'")}
    want = {i for i, s in shapes.items() if s.intersects(wedge)} & synthetic
    got = _filtered(bdi_server, 'argo-profiles',
                    f"INTERSECTS(geometry, {wkt(wedge)}) AND file_type = 'synthetic'")
    assert set(got) == want
    # with the bbox parameter too (both R*Tree lookups in one statement)
    bx = box(*wedge.bounds).buffer(-0.25, join_style=2)
    want = {i for i, s in shapes.items() if s.intersects(wedge) and s.intersects(bx)}
    got = _filtered(bdi_server, 'argo-profiles', f'INTERSECTS(geometry, {wkt(wedge)})',
                    bbox=','.join(map(str, bx.bounds)))
    assert set(got) == want


def test_gdal_ogrinfo_spatial_filter(bdi_server):
    ogrinfo = shutil.which('ogrinfo')
    if ogrinfo is None:
        pytest.skip('gdal-bin not installed (apt-get install gdal-bin)')
    shapes = _shapes(bdi_server, 'argo-profiles')
    pts = _points(shapes)
    spat = list(shapely.MultiPoint(pts[:len(pts) // 2]).bounds)
    want = {i for i, s in shapes.items() if s.intersects(box(*spat))}
    assert 0 < len(want) < len(shapes)
    out = subprocess.run([ogrinfo, '-ro', '-al', '-q', '-spat', *map(str, spat),
                          f'OAPIF:{bdi_server.url}/collections/argo-profiles'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = {line.split('=', 1)[1].strip() for line in out.stdout.splitlines()
           if line.strip().startswith('id (String) =')}
    assert got == want


@pytest.mark.parametrize('cql', [
    'INTERSECTS(geometry, POLYGON((0 0, 1 0, 0 1, 1 1, 0 0)))',     # self-intersecting
    'INTERSECTS(geometry, POLYGON((0 0, 1 0)))',                     # not a ring
    'INTERSECTS(geometry, POLYGON((0 0, 1 0, 1 1'                    # not WKT
])
def test_bad_geometry_is_a_400(bdi_server, cql):
    r = requests.get(f'{bdi_server.url}/collections/argo-profiles/items',
                     params={'filter': cql}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert r.json()['status'] == 400 and r.json()['detail']


@pytest.mark.parametrize('geom', [
    {'type': 'Polygon', 'coordinates': [[[0, 0], [1, 0], [0, 1], [1, 1], [0, 0]]]},
    {'type': 'LineString', 'coordinates': [[0, 0]]},
    {'type': 'Polygon', 'coordinates': 'nonsense'},
])
def test_bad_geojson_is_a_400(bdi_server, geom):
    r = _post(bdi_server, 'argo-profiles', {'op': 's_intersects',
                                            'args': [{'property': 'geometry'}, geom]})
    assert r.status_code == 400, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')


def test_point_sanity(bdi_server):
    """A point of a profile finds that profile (exact float match through WKT)."""
    shapes = _shapes(bdi_server, 'argo-profiles')
    pid, pt = sorted(shapes.items())[-1]
    got = _filtered(bdi_server, 'argo-profiles', f'INTERSECTS(geometry, {wkt(pt)})')
    assert pid in got and all(shapes[i].equals(pt) for i in got)


@pytest.mark.parametrize('coll', COLLS)
def test_cql2_text_names_answer_as_ecql(bdi_server, coll):
    """S_INTERSECTS / S_WITHIN (CQL2-text) in a GET filter answer as INTERSECTS / WITHIN."""
    wedge = _wedge(_shapes(bdi_server, coll).values())
    for ecql, cql2 in (('INTERSECTS', 'S_INTERSECTS'), ('WITHIN', 'S_WITHIN'),
                       ('DISJOINT', 'S_DISJOINT')):
        want = _filtered(bdi_server, coll, f'{ecql}(geometry, {wkt(wedge)})')
        assert _filtered(bdi_server, coll, f'{cql2}(geometry, {wkt(wedge)})') == want
    r = requests.get(f'{bdi_server.url}/collections/{coll}/items',
                     params={'filter': 'S_INTERSECTS(geometry, POLYGON((0 0, 1 0'})
    assert r.status_code == 400


def test_sqlite_bbox_is_exact_at_the_edges(tmp_path):
    """The R*Tree keeps float32 boxes rounded outward: a point 1e-7 degree outside a bbox
    edge is a candidate there, and must still not match."""
    import sqlalchemy as sa
    from providers import store
    eng = store.engine(f'sqlite:///{tmp_path}/index.sqlite')
    rows = [{'id': i, 'bdi': 'x', 'collection': 'c', 'granule': 'g', 'lon': lon, 'lat': 5.0}
            for i, lon in (('in', 10.0), ('out', 10.0000001))]
    with eng.begin() as conn:
        store.upsert(conn, store.OBSERVATION, rows)
    O = store.OBSERVATION
    with eng.connect() as conn:
        got = conn.execute(sa.select(O.c.id).where(
            store.bbox_clause(O, [0, 0, 10.0, 10], True))).scalars().all()
    assert got == ['in']


@pytest.mark.parametrize('coll', COLLS)
def test_bbox_literals_mean_minx_miny_maxx_maxy(bdi_server, coll):
    """A CQL2-JSON {"bbox": [...]} literal and a CQL2-text BBOX(...) literal select what the
    same rectangle as a polygon selects (pygeofilter 0.4 read the JSON one with its axes
    crossed)."""
    shapes = _shapes(bdi_server, coll)
    xs = sorted(p[0] for p in _points(shapes))
    ys = sorted(p[1] for p in _points(shapes))
    rect = [xs[len(xs) // 4], ys[len(ys) // 4], xs[3 * len(xs) // 4], ys[3 * len(ys) // 4]]
    want = {i for i, s in shapes.items() if s.intersects(box(*rect))}
    assert want and want != set(shapes)
    for literal in ({'bbox': rect}, box(*rect).__geo_interface__):
        r = _post(bdi_server, coll, {'op': 's_intersects',
                                     'args': [{'property': 'geometry'}, literal]})
        assert r.status_code == 200, r.text
        assert {f['id'] for f in r.json()['features']} == want, literal
    text = f'S_INTERSECTS(geometry, BBOX({", ".join(repr(v) for v in rect)}))'
    assert set(_filtered(bdi_server, coll, text)) == want
