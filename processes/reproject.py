"""`reproject`: GeoJSON features or a raster to another CRS.

Features go through a pyproj Transformer (always_xy, so lon/lat and easting/northing order
whatever the CRS's axis order); rasters through rasterio.warp onto the grid GDAL proposes
for the target CRS (calculate_default_transform). NetCDF grids are written as GeoTIFF first.
"""
from __future__ import annotations

import json

import numpy as np
import pyproj
import rasterio
import rasterio.warp
import shapely.geometry
import shapely.ops

from processes.base import InputError, Output, VREProcess
from processes.zonal import raster_path

CRS84 = 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'
RESAMPLING = ('nearest', 'bilinear', 'cubic', 'average', 'mode')


def parse_crs(text, what: str) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(text)
    except (pyproj.exceptions.CRSError, TypeError):
        raise InputError(f'{what}: unknown coordinate reference system "{text}"') from None


def crs_name(crs: pyproj.CRS) -> str:
    code = crs.to_authority()
    return f'urn:ogc:def:crs:{code[0]}::{code[1]}' if code else crs.to_wkt()


def reproject_features(doc: dict, src: pyproj.CRS, dst: pyproj.CRS) -> dict:
    """The document with every geometry's coordinates transformed; the legacy `crs` member
    names the target so GDAL/QGIS read the coordinates right."""
    if doc.get('type') == 'FeatureCollection':
        features = doc.get('features') or []
    elif doc.get('type') == 'Feature':
        features = [doc]
    else:
        features = [{'type': 'Feature', 'properties': {}, 'geometry': doc}]
    move = pyproj.Transformer.from_crs(src, dst, always_xy=True).transform
    out = []
    for i, f in enumerate(features):
        geom = (f or {}).get('geometry')
        if geom is not None:
            try:
                moved = shapely.ops.transform(move, shapely.geometry.shape(geom))
            except (ValueError, TypeError, AttributeError, KeyError) as err:
                raise InputError(f'data: feature {i} has no valid geometry ({err})') from None
            if not moved.is_empty and not np.isfinite(moved.bounds).all():
                raise InputError(f'data: feature {i} lies outside the area of the target CRS')
            geom = shapely.geometry.mapping(moved)
        out.append({**f, 'geometry': geom})
    return {'type': 'FeatureCollection', 'crs': {'type': 'name', 'properties': {
        'name': crs_name(dst)}}, 'features': out}


def reproject_raster(path, dst: pyproj.CRS, resampling: str, target) -> None:
    with rasterio.open(path) as src:
        if src.crs is None:
            raise InputError('data: the raster has no CRS')
        dst_crs = rasterio.crs.CRS.from_wkt(dst.to_wkt())
        try:
            transform, width, height = rasterio.warp.calculate_default_transform(
                src.crs, dst_crs, src.width, src.height, *src.bounds)
        except Exception as err:       # GDAL's error for rasters outside the CRS's area
            raise InputError(f'data: the raster cannot be reprojected to the target CRS '
                             f'({err})') from None
        nodata = src.nodata if src.nodata is not None else (
            np.nan if np.issubdtype(np.dtype(src.dtypes[0]), np.floating) else None)
        profile = dict(src.profile, crs=dst_crs, transform=transform, width=width,
                       height=height, nodata=nodata, driver='GTiff')
        with rasterio.open(target, 'w', **profile) as out:
            for i in range(1, src.count + 1):
                rasterio.warp.reproject(
                    rasterio.band(src, i), rasterio.band(out, i), src_nodata=src.nodata,
                    dst_nodata=nodata, resampling=rasterio.warp.Resampling[resampling])
                out.set_band_description(i, src.descriptions[i - 1])


class ReprojectProcess(VREProcess):
    METADATA = {
        'version': '1.0.0',
        'id': 'reproject',
        'title': {'en': 'Reproject features or a raster'},
        'description': {'en': 'Transforms GeoJSON features (pyproj) or a raster (GeoTIFF, or a '
                              'NetCDF latitude/longitude grid; rasterio.warp) to a target CRS '
                              'given as an EPSG code or an OGC CRS URI. Features come back as '
                              'GeoJSON naming the CRS in a `crs` member, rasters as GeoTIFF.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['reproject', 'CRS', 'EPSG', 'GeoJSON', 'GeoTIFF', 'warp'],
        'links': [],
        'inputs': {
            'data': {
                'title': 'Features or raster',
                'description': 'GeoJSON by value or by reference, or a GeoTIFF / NetCDF grid by '
                               'reference.',
                'schema': {'oneOf': [{'type': 'string', 'contentEncoding': 'binary'},
                                     {'type': 'object', 'required': ['type']}]},
                'minOccurs': 1, 'maxOccurs': 1,
            },
            'target_crs': {
                'title': 'Target CRS', 'description': 'EPSG code ("EPSG:3031") or URI.',
                'schema': {'type': 'string'}, 'minOccurs': 1, 'maxOccurs': 1,
            },
            'source_crs': {
                'title': 'CRS of GeoJSON input',
                'description': 'CRS of the GeoJSON coordinates (default CRS84, lon/lat); rasters '
                               'carry their own.',
                'schema': {'type': 'string', 'default': CRS84}, 'minOccurs': 0, 'maxOccurs': 1,
            },
            'variable': {
                'title': 'NetCDF variable', 'description': 'Grid variable of a NetCDF input.',
                'schema': {'type': 'string'}, 'minOccurs': 0, 'maxOccurs': 1,
            },
            'resampling': {
                'title': 'Resampling', 'description': 'How raster cells are resampled.',
                'schema': {'type': 'string', 'enum': list(RESAMPLING), 'default': 'nearest'},
                'minOccurs': 0, 'maxOccurs': 1,
            },
        },
        'outputs': {
            'result': {
                'title': 'Reprojected data',
                'description': 'GeoJSON (application/geo+json) for features, GeoTIFF (image/tiff; '
                               'application=geotiff) for rasters.',
                'schema': {'type': 'string', 'contentEncoding': 'binary'},
            },
        },
        'example': {'inputs': {
            'data': {'type': 'Feature', 'properties': {},
                     'geometry': {'type': 'Point', 'coordinates': [100.5, -61.5]}},
            'target_crs': 'http://www.opengis.net/def/crs/EPSG/0/3031'}},
    }

    def run(self, inputs, ctx):
        dst = parse_crs(inputs['target_crs'], 'target_crs')
        value = inputs['data']
        if isinstance(value, dict) and isinstance(value.get('value'), dict):
            value = value['value']
        doc = value if isinstance(value, dict) and 'type' in value else None
        path = None
        if doc is None:
            path = ctx.input_file(value)
            with open(path, 'rb') as fh:
                is_json = fh.read(64).lstrip().startswith(b'{')
            if is_json:
                try:
                    doc = json.loads(path.read_text())
                except (ValueError, UnicodeDecodeError) as err:
                    raise InputError(f'data: not valid GeoJSON ({err})') from None
        ctx.progress(10, 'input read')
        if doc is not None:
            src = parse_crs(inputs.get('source_crs', CRS84), 'source_crs')
            target = ctx.workdir / 'reprojected.geojson'
            target.write_text(json.dumps(reproject_features(doc, src, dst)))
            return {'result': Output(path=target, media_type='application/geo+json')}
        raster = raster_path(path, inputs.get('variable'), ctx.workdir)
        try:
            rasterio.open(raster).close()
        except rasterio.errors.RasterioIOError:
            raise InputError('data: neither GeoJSON, GeoTIFF nor NetCDF') from None
        target = ctx.workdir / 'reprojected.tif'
        reproject_raster(raster, dst, inputs.get('resampling', 'nearest'), target)
        return {'result': Output(path=target, media_type='image/tiff; application=geotiff')}
