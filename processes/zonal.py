"""`zonal-statistics`: count, min, max, mean and std of a raster's cells inside each polygon.

A cell belongs to a polygon when its centre lies inside (rasterio.features.geometry_mask,
all_touched=False), so the result does not depend on how much of a cell a border clips.
NetCDF grids are first written as GeoTIFF (processes/tables.py), so both inputs take one path.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
import shapely.geometry
import shapely.ops

from processes.base import InputError, Output, VREProcess
from processes.cfdata import find_axes, is_netcdf, open_netcdf
from processes.tables import write_geotiff

STATS = ('count', 'min', 'max', 'mean', 'std')
MAX_POLYGONS = 10_000


def geojson_input(value, ctx, what: str) -> dict:
    """A GeoJSON document given by value (an object, or {"value": object}) or by reference."""
    if isinstance(value, dict) and isinstance(value.get('value'), dict):
        value = value['value']
    if isinstance(value, dict) and 'type' in value:
        return value
    path = ctx.input_file(value)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f'{what}: not valid GeoJSON ({err})')


def polygons(doc: dict) -> list[dict]:
    """The features of a FeatureCollection, a Feature or a bare geometry, all (Multi)Polygons."""
    kind = doc.get('type')
    features = (doc.get('features') if kind == 'FeatureCollection'
                else [doc] if kind == 'Feature' else [{'type': 'Feature', 'geometry': doc,
                                                      'properties': {}}])
    if not isinstance(features, list) or not features:
        raise InputError('polygons: the GeoJSON holds no features')
    if len(features) > MAX_POLYGONS:
        raise InputError(f'polygons: more than {MAX_POLYGONS} features')
    for i, f in enumerate(features):
        geom = (f or {}).get('geometry') or {}
        if geom.get('type') not in ('Polygon', 'MultiPolygon'):
            raise InputError(f'polygons: feature {i} is a {geom.get("type")}, not a Polygon '
                             'or MultiPolygon')
    return features


def raster_path(path: Path, variable: str | None, workdir: Path) -> Path:
    """A GeoTIFF of the raster input: as given, or a NetCDF grid variable written as one."""
    if not is_netcdf(path):
        return path
    with open_netcdf(path, 'raster') as ds:
        axes = find_axes(ds)
        gridded = [n for n, v in ds.data_vars.items()
                   if {axes['latitude'], axes['longitude']} <= set(v.dims)]
        name = variable or (gridded[0] if len(gridded) == 1 else None)
        if name is None:
            raise InputError(f'raster: say which variable to use, one of {gridded}')
        if name not in gridded:
            raise InputError(f'raster: "{name}" is not a variable on the latitude/longitude '
                             f'grid; the file has {gridded}')
        target = workdir / 'raster.tif'
        write_geotiff(ds[[name]], axes, target)
    return target


def statistics(values: np.ndarray) -> dict:
    if values.size == 0:
        return {'count': 0, 'min': None, 'max': None, 'mean': None, 'std': None}
    return {'count': int(values.size), 'min': float(values.min()), 'max': float(values.max()),
            'mean': float(values.mean()), 'std': float(values.std())}


class ZonalStatisticsProcess(VREProcess):
    METADATA = {
        'version': '1.0.0',
        'id': 'zonal-statistics',
        'title': {'en': 'Zonal statistics of a raster over polygons'},
        'description': {'en': 'Count, minimum, maximum, mean and standard deviation (population, '
                              'ddof=0) of the cells of a raster (GeoTIFF, or a NetCDF latitude/'
                              'longitude grid) whose centres lie inside each polygon; nodata and '
                              'NaN cells are left out. Returns the polygons as GeoJSON with the '
                              'statistics added to their properties.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['zonal statistics', 'raster', 'polygons', 'GeoTIFF', 'NetCDF', 'GeoJSON'],
        'links': [],
        'inputs': {
            'raster': {
                'title': 'Raster',
                'description': 'A GeoTIFF or a NetCDF file with a regular latitude/longitude '
                               'grid, by reference ({"href": URL}).',
                'schema': {'type': 'string', 'contentEncoding': 'binary'},
                'minOccurs': 1, 'maxOccurs': 1,
            },
            'variable': {
                'title': 'NetCDF variable',
                'description': 'Grid variable of a NetCDF raster; needed when it has several.',
                'schema': {'type': 'string'}, 'minOccurs': 0, 'maxOccurs': 1,
            },
            'band': {
                'title': 'Band', 'description': 'Band of the raster (1 = first).',
                'schema': {'type': 'integer', 'minimum': 1, 'default': 1},
                'minOccurs': 0, 'maxOccurs': 1,
            },
            'polygons': {
                'title': 'Polygons',
                'description': 'GeoJSON (lon/lat, CRS84) Polygon or MultiPolygon features, by '
                               'value or by reference.',
                'schema': {'oneOf': [
                    {'type': 'string', 'contentEncoding': 'binary',
                     'contentMediaType': 'application/geo+json'},
                    {'type': 'object', 'required': ['type']}]},
                'minOccurs': 1, 'maxOccurs': 1,
            },
        },
        'outputs': {
            'zones': {
                'title': 'Polygons with statistics',
                'description': 'The polygons with count, min, max, mean and std properties '
                               '(null when no cell centre lies inside).',
                'schema': {'type': 'object', 'contentMediaType': 'application/geo+json'},
            },
        },
        'example': {'inputs': {
            'raster': {'href': 'https://coastwatch.pfeg.noaa.gov/erddap/griddap/GEBCO_2020.nc?'
                               'elevation[(-62):(-61)][(100):(101.5)]'},
            'polygons': {'type': 'Feature', 'properties': {'name': 'box'}, 'geometry': {
                'type': 'Polygon', 'coordinates': [[[100.2, -61.8], [101.1, -61.8],
                                                    [101.1, -61.2], [100.2, -61.8]]]}}}},
    }

    def run(self, inputs, ctx):
        features = polygons(geojson_input(inputs['polygons'], ctx, 'polygons'))
        ctx.progress(5, 'polygons read')
        path = raster_path(ctx.input_file(inputs['raster']), inputs.get('variable'), ctx.workdir)
        band_no = int(inputs.get('band', 1))
        try:
            src = rasterio.open(path)
        except rasterio.errors.RasterioIOError:
            raise InputError('raster: neither a GeoTIFF nor a NetCDF file')
        with src:
            if band_no > src.count:
                raise InputError(f'band {band_no} asked; the raster has {src.count}')
            band = src.read(band_no, masked=True)
            transform, crs = src.transform, src.crs
        valid = ~np.ma.getmaskarray(band) & np.isfinite(band.filled(np.nan).astype(float))
        data = band.filled(np.nan).astype('float64')
        to_raster = None
        if crs is not None and crs.to_epsg() != 4326:
            import pyproj
            to_raster = pyproj.Transformer.from_crs('EPSG:4326', crs.to_wkt(),
                                                    always_xy=True).transform
        out = []
        for i, f in enumerate(features):
            geom = shapely.geometry.shape(f['geometry'])
            if to_raster:
                geom = shapely.ops.transform(to_raster, geom)
            inside = rasterio.features.geometry_mask([geom], band.shape, transform, invert=True)
            stats = statistics(data[inside & valid])
            out.append({'type': 'Feature', 'geometry': f['geometry'],
                        'properties': {**(f.get('properties') or {}), **stats}})
            ctx.progress(10 + int(85 * (i + 1) / len(features)), f'polygon {i + 1}')
        return {'zones': Output(value={'type': 'FeatureCollection', 'features': out},
                                media_type='application/geo+json')}
