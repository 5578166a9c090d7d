"""`fco2-trend`: surface-ocean fCO2 trend and mean seasonal cycle per region from SOCAT and
ICOS-OTC files.

Why this method: cruises sample regions unevenly through the year, so a straight-line fit
of raw fCO2 mixes the seasonal cycle into the trend. The mean seasonal cycle (monthly means
minus their mean) is removed first, then the trend is an ordinary least-squares line in
years of 365.25 days. Formats read (see data/bdi/socat and icos-marine SOURCE.md): PANGAEA
SOCAT .tab, SOCAT Upload Dashboard CSV, SOCAT synthesis/enhanced TSV, ICOS OTC CSV.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from processes.base import InputError, Output, VREProcess
from processes.cfdata import bbox_lonlat

GOOD = 2                     # WOCE flag "good"; 3 = questionable
YEAR = np.timedelta64(int(365.25 * 86400), 's')


def _frame(time, lat, lon, fco2, flag) -> pd.DataFrame:
    t = pd.to_datetime(pd.Series(time), errors='coerce', utc=True).dt.tz_localize(None)
    df = pd.DataFrame({'time': t.values, 'lat': pd.to_numeric(lat, errors='coerce').values,
                       'lon': pd.to_numeric(lon, errors='coerce').values,
                       'fco2': pd.to_numeric(fco2, errors='coerce').values,
                       'flag': pd.to_numeric(flag, errors='coerce').values})
    df.loc[df['fco2'] <= -999, 'fco2'] = np.nan
    df['lon'] = ((df['lon'] + 180) % 360) - 180          # SOCAT synthesis: 0..360
    return df


def _column(columns, *patterns, what='fCO2'):
    for pattern in patterns:
        hits = [c for c in columns if re.fullmatch(pattern, c)]
        if hits:
            return hits[0]
    raise InputError(f'data: no {what} column (looked for {patterns})')


def _features(text: str) -> pd.DataFrame:
    """GeoJSON points of our socat-fco2 / icos-marine-fco2 collections (a collection input):
    `fCO2` (µatm at SST), its WOCE flag `woce_flag` (SOCAT) or `fCO2_QC` (ICOS)."""
    try:
        feats = json.loads(text).get('features')
    except (ValueError, AttributeError):
        feats = None
    if not isinstance(feats, list):
        raise InputError('data: JSON that is not a GeoJSON FeatureCollection')
    rows = [(f.get('properties') or {}, (f.get('geometry') or {}).get('coordinates') or
             [None, None]) for f in feats if isinstance(f, dict)]
    if rows and not any('fCO2' in p for p, _ in rows):
        raise InputError('data: the features have no fCO2 property (give socat-fco2 or '
                         'icos-marine-fco2 items)')
    column = lambda values: pd.Series(values, dtype=object)  # noqa: E731
    return _frame(column([p.get('time') for p, _ in rows]), column([c[1] for _, c in rows]),
                  column([c[0] for _, c in rows]), column([p.get('fCO2') for p, _ in rows]),
                  column([p.get('woce_flag') or p.get('fCO2_QC') or GOOD for p, _ in rows]))


def read_fco2(path: Path) -> pd.DataFrame:
    """time, lat, lon, fco2 (µatm at SST, wet), flag (WOCE) from any supported layout."""
    text = path.read_bytes().decode('utf-8', errors='replace')
    if text.lstrip().startswith('{'):
        return _features(text)
    lines = text.splitlines()
    if lines and lines[0].startswith('/*'):                          # PANGAEA .tab
        end = next((i for i, ln in enumerate(lines) if ln.strip() == '*/'), None)
        if end is None:
            raise InputError('data: PANGAEA header without "*/"')
        df = pd.read_csv(io.StringIO('\n'.join(lines[end + 1:])), sep='\t')
        cols = list(df.columns)
        fco2 = _column(cols, r'fCO2water_SST_wet \[µatm\] \(Recomputed.*',
                       r'fCO2water_SST_wet \[µatm\]')
        return _frame(df['Date/Time'], df['Latitude'], df['Longitude'], df[fco2],
                      df['Flag [#]'] if 'Flag [#]' in df else GOOD)
    # the data header: a SOCAT data report opens with a table of its datasets whose header
    # starts with Expocode too, so the one naming an fCO2 column wins
    starts = [i for i, ln in enumerate(lines[:5000])
              if ln.startswith(('Expocode,', 'Expocode\t', 'Date/Time,'))]
    header = next((i for i in starts if 'fCO2' in lines[i]), starts[0] if starts else None)
    if header is None:
        raise InputError('data: not a SOCAT (.tab, dashboard CSV, synthesis TSV) or ICOS '
                         'OTC CSV file')
    sep = '\t' if '\t' in lines[header] else ','
    try:
        df = pd.read_csv(io.StringIO('\n'.join(lines[header:])), sep=sep, low_memory=False)
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError(f'data: the table does not parse: {err}'.strip()) from None
    cols = list(df.columns)
    if 'DATE_UTC__ddmmyyyy' in df:                                   # SOCAT dashboard CSV
        time = pd.to_datetime(df['DATE_UTC__ddmmyyyy'].astype(str).str.zfill(8) + ' '
                              + df['TIME_UTC_hh:mm:ss'].astype(str), format='%d%m%Y %H:%M:%S',
                              errors='coerce')
        return _frame(time, df['LAT_dec_degree'], df['LONG_dec_degree'],
                      df[_column(cols, r'fCO2_SW@SST_uatm', r'fCO2.*SST.*')],
                      df['WOCE_QC_FLAG'] if 'WOCE_QC_FLAG' in df else GOOD)
    if 'yr' in df and 'fCO2rec [uatm]' in df:                         # SOCAT synthesis TSV
        time = pd.to_datetime(dict(year=df['yr'], month=df['mon'], day=df['day'],
                                   hour=df['hh'], minute=df['mm'], second=df['ss']),
                              errors='coerce')
        return _frame(time, df[_column(cols, r'latitude.*', what='latitude')],
                      df[_column(cols, r'longitude.*', what='longitude')], df['fCO2rec [uatm]'],
                      df['fCO2rec_flag'] if 'fCO2rec_flag' in df else GOOD)
    if 'Date/Time' in df and 'fCO2 [uatm]' in df:                     # ICOS OTC export
        flag = df['fCO2 [uatm] QC Flag'] if 'fCO2 [uatm] QC Flag' in df else GOOD
        return _frame(df['Date/Time'], df['Latitude'], df['Longitude'], df['fCO2 [uatm]'], flag)
    raise InputError('data: no fCO2 column found (fCO2_SW@SST_uatm, fCO2rec [uatm], '
                     'fCO2 [uatm], fCO2water_SST_wet)')


def trend(df: pd.DataFrame) -> dict:
    """Trend (µatm/yr) of fCO2 minus its mean seasonal cycle, and that cycle."""
    years = (df['time'].values - np.datetime64('1970-01-01')) / YEAR
    month = pd.DatetimeIndex(df['time']).month.values
    monthly = pd.Series(df['fco2'].values).groupby(month).mean()
    cycle = monthly - monthly.mean()
    deseason = df['fco2'].values - cycle.reindex(month).values
    result = {'n': int(len(df)), 'first': str(df['time'].min()), 'last': str(df['time'].max()),
              'mean_fco2': float(df['fco2'].mean()),
              'seasonal_cycle': {f'{m:02d}': float(v) for m, v in cycle.items()},
              'n_per_month': {f'{m:02d}': int(v) for m, v in
                              pd.Series(month).value_counts().sort_index().items()},
              'trend': None, 'trend_stderr': None}
    span = years.max() - years.min() if len(years) else 0
    if len(df) < 3 or span < 1 / 365.25:
        result['note'] = 'fewer than 3 points or less than a day: no trend'
        return result
    A = np.column_stack([years - years.mean(), np.ones_like(years)])
    coef, res, *_ = np.linalg.lstsq(A, deseason, rcond=None)
    resid = deseason - A @ coef
    sigma2 = resid @ resid / max(len(df) - 2, 1)
    result['trend'] = float(coef[0])
    result['trend_stderr'] = float(np.sqrt(sigma2 / ((years - years.mean()) ** 2).sum()))
    result['intercept_at_mean_time'] = float(coef[1])
    years_per_month = pd.Series(pd.DatetimeIndex(df['time']).year).groupby(month).nunique()
    if years_per_month.max() < 2:
        result['note'] = ('no month has data from two different years: the seasonal cycle '
                          'and the trend cannot be told apart')
    elif span < 2:
        result['note'] = 'less than two years of data: the trend is not a long-term trend'
    return result


class FCO2TrendProcess(VREProcess):
    METADATA = {
        'version': '1.0.0', 'id': 'fco2-trend',
        'title': {'en': 'fCO2 trend and seasonal cycle'},
        'description': {'en': 'Per region (bbox): the mean seasonal cycle of surface-ocean '
                              'fCO2 (monthly means minus their mean, µatm) and the trend of '
                              'the deseasonalised fCO2 (ordinary least squares, µatm per year '
                              'of 365.25 days, with its standard error), from SOCAT (PANGAEA '
                              '.tab, Upload Dashboard CSV, synthesis TSV) and ICOS OTC CSV '
                              'files. Only WOCE flag 2 (good) values unless flags says more.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['fCO2', 'SOCAT', 'ICOS', 'carbon', 'trend', 'seasonal cycle'],
        'links': [{'type': 'text/html', 'rel': 'about', 'title': 'SOCAT',
                   'href': 'https://socat.info', 'hreflang': 'en'}],
        'inputs': {
            'data': {'title': 'fCO2 files', 'description': 'SOCAT or ICOS OTC files, by '
                                                           'reference, or the collections '
                                                           'socat-fco2 / icos-marine-fco2 of '
                                                           'this server; several are pooled.',
                     'schema': {'type': 'string', 'contentEncoding': 'binary',
                                'contentMediaType': 'text/tab-separated-values'},
                     'minOccurs': 1, 'maxOccurs': 'unbounded'},
            'regions': {'title': 'Regions', 'description': 'Name -> [minlon, minlat, maxlon, '
                                                           'maxlat] in degrees (default: one '
                                                           'region "all").',
                        'schema': {'type': 'object', 'additionalProperties': {
                            'type': 'array', 'items': {'type': 'number'},
                            'minItems': 4, 'maxItems': 4}},
                        'minOccurs': 0, 'maxOccurs': 1},
            'flags': {'title': 'WOCE flags kept', 'description': '2 good, 3 questionable.',
                      'schema': {'type': 'array', 'items': {'type': 'integer',
                                                            'enum': [2, 3, 4]},
                                 'default': [2]}, 'minOccurs': 0, 'maxOccurs': 1},
        },
        'outputs': {'trend': {'title': 'Trend and seasonal cycle per region',
                              'description': 'n, first, last, mean_fco2 (µatm), trend (µatm/yr),'
                                             ' trend_stderr, seasonal_cycle (µatm per month), '
                                             'n_per_month.',
                              'schema': {'type': 'object', 'contentMediaType': 'application/json'}}},
        'example': {'inputs': {
            'data': [{'href': 'https://doi.pangaea.de/10.1594/PANGAEA.849337?format=textfile'}],
            'regions': {'irminger': [-45, 55, -25, 65]}}},
    }

    def run(self, inputs, ctx):
        files = inputs['data'] if isinstance(inputs['data'], list) else [inputs['data']]
        frames = []
        for i, ref in enumerate(files):
            ctx.progress(int(60 * i / len(files)), f'reading file {i + 1} of {len(files)}')
            frames.append(read_fco2(ctx.input_file(ref)))
        df = pd.concat(frames, ignore_index=True)
        keep = set(inputs.get('flags') or [GOOD])
        df = df[df['flag'].isin(keep) & df['fco2'].notna() & df['time'].notna()
                & df['lat'].notna() & df['lon'].notna()]
        regions = inputs.get('regions') or {'all': [-180, -90, 180, 90]}
        out = {}
        for name, box in regions.items():
            x0, y0, x1, y1 = bbox_lonlat(box, None)
            sel = df[(df['lon'] >= x0) & (df['lon'] <= x1) & (df['lat'] >= y0)
                     & (df['lat'] <= y1)]
            out[name] = trend(sel) if len(sel) else {'n': 0, 'trend': None,
                                                     'note': 'no fCO2 values in this region'}
        if not any(r['n'] for r in out.values()):
            raise InputError('no good fCO2 values in any region (check bbox and flags)')
        return {'trend': Output(value=out, media_type='application/json')}
