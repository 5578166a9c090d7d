"""Request parameters -> SQL clauses: datetime, bbox, property filters, CQL2 (pygeofilter AST).

Every bad value raises ProviderInvalidQueryError, which pygeoapi answers with a 400 and the
message; nothing here may let a malformed request become a 500.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import sqlalchemy as sa
from dateutil import parser as dateparser
from pygeoapi.provider.base import ProviderInvalidQueryError
from pygeofilter import ast, values

ISO = '%Y-%m-%dT%H:%M:%SZ'


def bad(msg: str) -> ProviderInvalidQueryError:
    return ProviderInvalidQueryError(msg=msg, user_msg=msg)


def iso(value) -> str:
    """An RFC 3339 string, date or datetime as the index's UTC text form."""
    if isinstance(value, str):
        try:
            value = dateparser.isoparse(value)
        except ValueError:
            raise bad(f'not an RFC 3339 date-time: {value!r}') from None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime(ISO)
    if isinstance(value, date):
        return value.strftime('%Y-%m-%dT00:00:00Z')
    raise bad(f'not a date-time: {value!r}')


def time_range(datetime_: str | None) -> tuple[str | None, str | None] | None:
    """OGC datetime (instant, a/b, ../b, a/..) as an inclusive (start, end) in index form.

    A date without a time stands for that whole day.
    """
    if not datetime_:
        return None
    parts = datetime_.split('/')
    if len(parts) > 2:
        raise bad(f'datetime must be an instant or an interval a/b: {datetime_!r}')
    if len(parts) == 1:
        start = iso(parts[0])
        if 'T' not in parts[0].upper():
            return start, start[:10] + 'T23:59:59Z'
        return start, start
    lo, hi = (p.strip() for p in parts)
    start = None if lo in ('', '..') else iso(lo)
    end = None if hi in ('', '..') else iso(hi)
    if end and 'T' not in hi.upper():
        end = end[:10] + 'T23:59:59Z'
    if start and end and start > end:
        raise bad(f'datetime interval ends before it starts: {datetime_!r}')
    return start, end


def instant_clause(col, rng):
    start, end = rng
    clauses = [col.isnot(None)]
    if start:
        clauses.append(col >= start)
    if end:
        clauses.append(col <= end)
    return sa.and_(*clauses)


def extent_clause(tmin, tmax, rng):
    """Rows whose [tmin, tmax] overlaps the range."""
    start, end = rng
    clauses = []
    if start:
        clauses.append(tmax >= start)
    if end:
        clauses.append(tmin <= end)
    return sa.and_(*clauses) if clauses else sa.true()


def coerce(value, kind: str):
    try:
        if kind == 'integer':
            return int(value)
        if kind == 'number':
            return float(value)
    except (TypeError, ValueError):
        raise bad(f'{value!r} is not a {kind}') from None
    return str(value)


class CQL:
    """pygeofilter AST -> SQLAlchemy clause over mapped columns (bound parameters only)."""

    def __init__(self, fields: dict, bbox_clause, time_col, spatial=None):
        self.fields = fields              # public name -> (column, type)
        self.bbox_clause = bbox_clause    # callable([minx, miny, maxx, maxy]) -> clause
        self.time_col = time_col
        self.spatial = spatial            # callable(predicate, shapely geometry) -> clause

    def col(self, node):
        if not isinstance(node, ast.Attribute):
            raise bad('the left side of a comparison must be a queryable property')
        if node.name not in self.fields:
            raise bad(f'{node.name!r} is not a queryable of this collection')
        return self.fields[node.name]

    def val(self, node, kind='string'):
        if isinstance(node, ast.Function) and node.name.upper() in ('TIMESTAMP', 'DATE'):
            return iso(node.arguments[0])
        if isinstance(node, (datetime, date)):
            return iso(node)
        if isinstance(node, values.Interval):
            raise bad('intervals are only valid in temporal predicates')
        if isinstance(node, (ast.Node, values.Geometry, values.Envelope)):
            raise bad(f'unsupported value in filter: {node}')
        return coerce(node, kind) if kind in ('integer', 'number') and not isinstance(
            node, (int, float)) else node

    def __call__(self, node):
        if isinstance(node, ast.And):
            return sa.and_(self(node.lhs), self(node.rhs))
        if isinstance(node, ast.Or):
            return sa.or_(self(node.lhs), self(node.rhs))
        if isinstance(node, ast.Not):
            return sa.not_(self(node.sub_node))
        if isinstance(node, ast.Comparison):
            col, kind = self.col(node.lhs)
            v = self.val(node.rhs, kind)
            return {'=': col.__eq__, '<>': col.__ne__, '<': col.__lt__, '<=': col.__le__,
                    '>': col.__gt__, '>=': col.__ge__}[node.op.value](v)
        if isinstance(node, ast.Between):
            col, kind = self.col(node.lhs)
            c = col.between(self.val(node.low, kind), self.val(node.high, kind))
            return sa.not_(c) if node.not_ else c
        if isinstance(node, ast.Like):
            col, _ = self.col(node.lhs)
            pattern = node.pattern.replace(node.wildcard, '%').replace(node.singlechar, '_')
            c = sa.func.lower(col).like(pattern.lower()) if node.nocase else col.like(pattern)
            return sa.not_(c) if node.not_ else c
        if isinstance(node, ast.In):
            col, kind = self.col(node.lhs)
            c = col.in_([self.val(v, kind) for v in node.sub_nodes])
            return sa.not_(c) if node.not_ else c
        if isinstance(node, ast.IsNull):
            col, _ = self.col(node.lhs)
            return col.isnot(None) if node.not_ else col.is_(None)
        if isinstance(node, ast.BBox):
            return self.bbox_clause([node.minx, node.miny, node.maxx, node.maxy])
        if isinstance(node, ast.SpatialComparisonPredicate):
            return self._spatial(node)
        if isinstance(node, ast.TemporalPredicate):
            return self._temporal(node)
        raise bad(f'unsupported filter operation: {type(node).__name__}')

    # the predicate seen from the other side: S_CONTAINS(POLYGON(...), geometry) = within
    CONVERSE = {'within': 'contains', 'contains': 'within'}

    def _spatial(self, node):
        """S_INTERSECTS / S_WITHIN / S_CONTAINS / S_DISJOINT (and the other comparisons) of the
        features' geometry with any geometry of the filter, tested exactly by the store."""
        pred = node.op.value.lower()
        lhs, rhs = node.lhs, node.rhs
        if not isinstance(lhs, ast.Attribute) and isinstance(rhs, ast.Attribute):
            lhs, rhs, pred = rhs, lhs, self.CONVERSE.get(pred, pred)
        if not isinstance(lhs, ast.Attribute) or isinstance(rhs, ast.Attribute):
            raise bad('a spatial predicate compares the geometry with a literal geometry')
        geom = self.geometry(rhs)
        if self.spatial is None:
            raise bad('spatial predicates are not supported on this collection')
        return self.spatial(pred, geom)

    @staticmethod
    def geometry(value):
        """The shapely geometry of a filter literal (WKT or GeoJSON, already parsed into
        pygeofilter values); anything unreadable, empty or invalid is a 400."""
        import shapely
        from shapely.geometry import box, shape
        try:
            if isinstance(value, values.Envelope):
                geom = box(value.x1, value.y1, value.x2, value.y2)
            elif isinstance(value, ast.Function) and value.name.lower() == 'bbox':
                # CQL2-text BBOX(minx, miny, maxx, maxy) or its 3D form
                c = [float(v) for v in value.arguments]
                geom = box(*(c if len(c) == 4 else c[:2] + c[3:5]))
            else:
                geom = shape(value.geometry if hasattr(value, 'geometry') else value)
        except Exception as err:
            raise bad(f'unreadable geometry in filter: {err}') from None
        if geom.is_empty:
            raise bad('empty geometry in filter')
        if not geom.is_valid:
            raise bad(f'invalid geometry in filter: {shapely.is_valid_reason(geom)}')
        return geom

    def _temporal(self, node):
        col = self.col(node.lhs)[0] if isinstance(node.lhs, ast.Attribute) else self.time_col
        rhs = node.rhs
        if isinstance(rhs, values.Interval):
            lo = None if rhs.start in (None, '..') else iso(rhs.start)
            hi = None if rhs.end in (None, '..') else iso(rhs.end)
        else:
            lo = hi = self.val(rhs)
        if isinstance(node, ast.TimeAfter):
            return col > (hi or lo)
        if isinstance(node, ast.TimeBefore):
            return col < (lo or hi)
        if isinstance(node, (ast.TimeDuring, ast.TimeEquals)) or \
                type(node).__name__ == 'TimeIntersects':
            return instant_clause(col, (lo, hi))
        raise bad(f'unsupported temporal operation: {type(node).__name__}')


def _envelopes(node):
    """A CQL2-JSON document with each `{"bbox": [minx, miny, maxx, maxy]}` literal (or its 3D
    form) given in the order pygeofilter 0.4's reader passes on to its Envelope (x1, x2, y1,
    y2): as written, the box came out with its axes crossed."""
    if isinstance(node, list):
        return [_envelopes(v) for v in node]
    if not isinstance(node, dict):
        return node
    box = node.get('bbox')
    if set(node) == {'bbox'} and isinstance(box, list) and len(box) in (4, 6):
        x0, y0, x1, y1 = box if len(box) == 4 else box[:2] + box[3:5]
        return {'bbox': [x0, x1, y0, y1]}
    return {k: _envelopes(v) for k, v in node.items()}


def accept_cql2_text() -> None:
    """pygeoapi 0.21 parses a GET `filter` as ECQL only, where the CQL2-text names of the
    spatial predicates (S_INTERSECTS, S_WITHIN, ...) are a syntax error: read such a filter
    with pygeofilter's CQL2-text parser when ECQL cannot. Its CQL2-JSON reader gets bbox
    literals in the order pygeofilter expects (`_envelopes`). Called once when the app
    starts."""
    from pygeoapi.api import itemtypes
    from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
    ecql = itemtypes.parse_ecql_text
    if getattr(ecql, 'reads_cql2_text', False):
        return
    cql2_json = itemtypes.parse_cql2_json
    itemtypes.parse_cql2_json = lambda doc: cql2_json(_envelopes(
        json.loads(doc) if isinstance(doc, (str, bytes)) else doc))

    def parse(text: str):
        try:
            return ecql(text)
        except Exception:       # not ECQL: CQL2-text, or a mistake pygeoapi answers with 400
            return parse_cql2_text(text)

    parse.reads_cql2_text = True
    itemtypes.parse_ecql_text = parse
