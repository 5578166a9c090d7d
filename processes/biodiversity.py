"""`biodiversity-indices`: species richness, Shannon, Simpson and ES50 per cell of a lon/lat grid
or of Uber's H3 hexagonal grid (the hexagons OBIS maps use; near-equal areas at every latitude,
which a lon/lat grid does not have).

Occurrences come as OBIS API v3 JSON ({"results": [...]}) or as a Darwin Core CSV/TSV table;
a Darwin Core archive's occurrence table has no coordinates, so its event table may be given
too and is joined on eventID. As in OBIS's own indicators, abundance is the number of
occurrence records per taxon (counts of individuals are not comparable across datasets) and
absence records are left out. ES50 is Hurlbert's expected number of taxa in 50 records,
given only where a cell has at least 50 records.
"""
from __future__ import annotations

import json
from pathlib import Path

import h3
import numpy as np
import pandas as pd
from shapely.geometry import Polygon, box, mapping
from scipy.special import gammaln

from processes.base import InputError, Output, VREProcess
from processes.cfdata import read_table

TAXON_FIELDS = ('speciesid', 'scientificNameID', 'aphiaID', 'scientificName')


def es(counts: np.ndarray, n: int = 50) -> float | None:
    """Hurlbert's expected richness in n records: sum of 1 - C(N-Ni, n) / C(N, n)."""
    total = int(counts.sum())
    if total < n:
        return None
    log_c = lambda a, b: gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)  # noqa: E731
    rest = total - counts
    p_absent = np.where(rest >= n, np.exp(log_c(rest, n) - log_c(total, n)), 0.0)
    return float(np.sum(1 - p_absent))


def cell_indices(counts: np.ndarray) -> dict:
    p = counts / counts.sum()
    return {'n': int(counts.sum()), 'richness': int((counts > 0).sum()),
            'shannon': float(-np.sum(p * np.log(p))) + 0.0, 'simpson': float(1 - np.sum(p * p)),
            'es50': es(counts)}


def read_occurrences(path: Path) -> pd.DataFrame:
    with open(path, 'rb') as fh:
        first = fh.read(64).lstrip()
    if first.startswith((b'{', b'[')):
        try:
            doc = json.loads(path.read_text())
        except ValueError as err:
            raise InputError(f'occurrences: not valid JSON ({err})')
        rows = doc.get('results') if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise InputError('occurrences: JSON must be an OBIS API v3 answer {"results": [...]}')
        return pd.DataFrame(rows)
    return read_table(path, 'occurrences')


def hexagon(cell: str) -> dict:
    """GeoJSON of an H3 cell; one crossing the antimeridian is cut there (RFC 7946 3.1.9)."""
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    lons = [x for x, _ in ring]
    if max(lons) - min(lons) <= 180:
        return mapping(Polygon(ring))
    shifted = Polygon([(x + 360 if x < 0 else x, y) for x, y in ring])
    east = shifted.intersection(box(0, -90, 180, 90))
    west = shifted.intersection(box(180, -90, 360, 90))
    west = Polygon([(x - 360, y) for x, y in west.exterior.coords])
    return {'type': 'MultiPolygon',
            'coordinates': [mapping(east)['coordinates'], mapping(west)['coordinates']]}


class BiodiversityIndicesProcess(VREProcess):
    METADATA = {
        'version': '1.0.0', 'id': 'biodiversity-indices',
        'title': {'en': 'Biodiversity indices on a grid'},
        'description': {'en': 'Species richness, Shannon index (natural log), Gini-Simpson index '
                              '(1 - sum p^2) and ES50 (Hurlbert) per cell of a regular lon/lat '
                              'grid, from OBIS / EurOBIS occurrences (OBIS API v3 JSON, or a '
                              'Darwin Core CSV/TSV with an optional event table joined on '
                              'eventID). Abundances are numbers of occurrence records per '
                              'taxon; absences are left out.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['biodiversity', 'OBIS', 'EurOBIS', 'ES50', 'Shannon', 'Simpson', 'richness'],
        'links': [{'type': 'text/html', 'rel': 'about', 'title': 'OBIS indicators (ES50)',
                   'href': 'https://manual.obis.org/indicators.html', 'hreflang': 'en-US'}],
        'inputs': {
            'occurrences': {
                'title': 'Occurrences',
                'description': 'OBIS API v3 JSON, or a Darwin Core occurrence CSV/TSV '
                               '(decimalLatitude, decimalLongitude, a taxon column).',
                'schema': {'type': 'string', 'contentEncoding': 'binary'},
                'minOccurs': 1, 'maxOccurs': 1,
            },
            'events': {
                'title': 'Event table',
                'description': 'Darwin Core event CSV/TSV (eventID, decimalLatitude, '
                               'decimalLongitude) when the occurrences have no coordinates.',
                'schema': {'type': 'string', 'contentEncoding': 'binary',
                           'contentMediaType': 'text/tab-separated-values'},
                'minOccurs': 0, 'maxOccurs': 1,
            },
            'cell_size': {
                'title': 'Cell size', 'description': 'Grid cell edge, in degrees.',
                'schema': {'type': 'number', 'minimum': 0.01, 'maximum': 90, 'default': 1},
                'minOccurs': 0, 'maxOccurs': 1,
            },
            'grid': {
                'title': 'Grid',
                'description': '"square": cells of cell_size degrees from (-180, -90); '
                               '"hexagon": H3 hexagons of resolution h3_resolution.',
                'schema': {'type': 'string', 'enum': ['square', 'hexagon'],
                           'default': 'square'},
                'minOccurs': 0, 'maxOccurs': 1,
            },
            'h3_resolution': {
                'title': 'H3 resolution',
                'description': 'Resolution of the hexagonal grid: 2 (edge ~160 km), 3 (~60 km), '
                               '4 (~23 km), 5 (~9 km), ... (H3 cell statistics).',
                'schema': {'type': 'integer', 'minimum': 0, 'maximum': 10, 'default': 3},
                'minOccurs': 0, 'maxOccurs': 1,
            },
            'taxon_field': {
                'title': 'Taxon column',
                'description': 'Column naming the taxon; "auto" takes the first present of '
                               + ', '.join(TAXON_FIELDS) + '.',
                'schema': {'type': 'string', 'default': 'auto'}, 'minOccurs': 0, 'maxOccurs': 1,
            },
        },
        'outputs': {
            'grid': {
                'title': 'Grid cells with indices',
                'description': 'GeoJSON polygons (square cells or H3 hexagons; a hexagon '
                               'across the antimeridian is split into a MultiPolygon) with n '
                               '(records), richness, shannon, simpson, es50 (null below 50 '
                               'records).',
                'schema': {'type': 'object', 'contentMediaType': 'application/geo+json'},
            },
            'summary': {'title': 'Summary', 'description': 'Records read, used and left out.',
                        'schema': {'type': 'object', 'contentMediaType': 'application/json'}},
        },
        'example': {'inputs': {
            'occurrences': {'href': 'https://api.obis.org/v3/occurrence?scientificname=Abra%20alba'
                                    '&size=1000'},
            'cell_size': 1, 'taxon_field': 'auto'}},
    }

    def run(self, inputs, ctx):
        size = float(inputs.get('cell_size', 1))
        occ = read_occurrences(ctx.input_file(inputs['occurrences']))
        read = len(occ)
        if read == 0:
            raise InputError('the selection is empty: the occurrences file holds no records')
        if 'events' in inputs:
            occ = self._join_events(occ, read_table(ctx.input_file(inputs['events']), 'events'))
        for col in ('decimalLatitude', 'decimalLongitude'):
            if col not in occ:
                raise InputError(f'occurrences: no {col} column (give the event table as '
                                 '"events" for a Darwin Core archive)')
        taxon = self._taxon_field(occ, inputs.get('taxon_field', 'auto'))
        absent = self._absent(occ)
        lat = pd.to_numeric(occ['decimalLatitude'], errors='coerce')
        lon = pd.to_numeric(occ['decimalLongitude'], errors='coerce')
        located = lat.between(-90, 90) & lon.between(-180, 180)
        named = occ[taxon].notna() & (occ[taxon].astype(str).str.strip() != '')
        use = located & named & ~absent
        if not use.any():
            raise InputError('the selection is empty: no present occurrence with coordinates '
                             f'and a {taxon}')
        hexagons = inputs.get('grid', 'square') == 'hexagon'
        res = int(inputs.get('h3_resolution', 3))
        if hexagons:
            cell_of = [h3.latlng_to_cell(y, x, res) for y, x in zip(lat[use], lon[use])]
        else:
            ix = np.floor((lon[use] + 180) / size).astype(int)
            iy = np.floor((lat[use] + 90) / size).astype(int)
            cell_of = ix.astype(str) + '_' + iy.astype(str)
        df = pd.DataFrame({'cell': list(cell_of), 'taxon': occ.loc[use, taxon].astype(str)})
        cells = df.groupby(['cell', 'taxon']).size().groupby(level='cell')
        features = []
        for k, (cell, counts) in enumerate(cells):
            props = cell_indices(counts.to_numpy())
            if hexagons:
                geometry = hexagon(cell)
                props.update(h3_resolution=res)
            else:
                ix, iy = map(int, cell.split('_'))
                x0, y0 = ix * size - 180, iy * size - 90
                geometry = {'type': 'Polygon', 'coordinates': [[
                    [x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]]}
                props.update(cell_size=size)
            features.append({'type': 'Feature', 'id': cell, 'geometry': geometry,
                             'properties': props})
            ctx.progress(10 + int(85 * (k + 1) / cells.ngroups), f'cell {k + 1}')
        summary = {'records_read': read, 'records_used': int(use.sum()),
                   'absences_left_out': int(absent.sum()),
                   'without_coordinates': int((~located).sum()),
                   'without_taxon': int((~named).sum()), 'taxon_field': taxon,
                   'cells': len(features), 'grid': 'hexagon' if hexagons else 'square',
                   **({'h3_resolution': res} if hexagons else {'cell_size_deg': size})}
        return {'grid': Output(value={'type': 'FeatureCollection', 'features': features},
                               media_type='application/geo+json'),
                'summary': Output(value=summary)}

    @staticmethod
    def _join_events(occ, events):
        if 'eventID' not in occ or 'eventID' not in events:
            raise InputError('events: both tables need an eventID column to be joined')
        cols = [c for c in ('eventID', 'decimalLatitude', 'decimalLongitude', 'eventDate')
                if c in events and (c == 'eventID' or c not in occ)]
        return occ.merge(events[cols].drop_duplicates('eventID'), on='eventID', how='left')

    @staticmethod
    def _taxon_field(occ, wanted):
        if wanted != 'auto':
            if wanted not in occ:
                raise InputError(f'taxon_field: no column "{wanted}" in the occurrences')
            return wanted
        for name in TAXON_FIELDS:
            if name in occ and occ[name].notna().any():
                return name
        raise InputError(f'occurrences: no taxon column (one of {list(TAXON_FIELDS)})')

    @staticmethod
    def _absent(occ) -> pd.Series:
        absent = pd.Series(False, index=occ.index)
        if 'occurrenceStatus' in occ:
            absent |= occ['occurrenceStatus'].astype(str).str.lower().eq('absent')
        if 'absence' in occ:
            absent |= occ['absence'].astype(str).str.lower().isin(['true', '1'])
        return absent
