"""Fixtures for the SOCAT and ICOS-Marine tests where no real sample exists offline, built from
the format descriptions in ../shared/data/bdi/{socat,icos-marine}/SOURCE.md, and a loopback web
server answering at the live paths.

- `synthesis_tsv()`: a SOCAT synthesis "data report" TSV (SOURCE.md: no real file offline). The
  layout follows SOURCE.md (report line, per-dataset table with QC Flag and DOI, column
  explanations, then the data header `Expocode, version, Source_DOI, QC_Flag, yr ... fCO2rec,
  fCO2rec_src, fCO2rec_flag`, longitudes 0..360, NaN for missing). Every value is invented: a
  cruise crossing the Greenwich meridian (longitudes 359.7..0.5), one in the North Pacific
  (200.5 E), and one with cruise QC flag E, which SOCAT leaves out of its synthesis.
- `landing_page(data, ...)`: an ICOS Carbon Portal landing page (DataObject JSON) for a data
  object, with the keys SOURCE.md lists (verified there against the CP metacore model); the
  station and citation describe the real Nuka Arctica 26NA20050107 file it is used with.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import http.server
import shutil
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from bdi_samples import BDI_DATA
from serverkit import serve

SOCAT_TAB = BDI_DATA / 'socat/pangaea_socatv3/26NA20050107_CO2_underway_SOCATv3.tab'

SYNTHESIS_HEADER = (
    'Expocode\tversion\tSource_DOI\tQC_Flag\tyr\tmon\tday\thh\tmm\tss\t'
    'longitude [dec.deg.E]\tlatitude [dec.deg.N]\tsample_depth [m]\tsal\tSST [deg.C]\t'
    'Tequ [deg.C]\tPPPP [hPa]\tPequ [hPa]\tWOA_SSS\tNCEP_SLP [hPa]\tETOPO2_depth [m]\t'
    'dist_to_land [km]\tGVCO2 [umol/mol]\tfCO2rec [uatm]\tfCO2rec_src\tfCO2rec_flag')
# (expocode, QC, doi, y, mo, d, h, mi, s, lon 0..360, lat, sal, SST, fCO2rec, src, flag)
SYNTHESIS_ROWS = [
    ('74JC20240101', 'B', '10.0000/fixture.74JC', 2024, 1, 1, 6, 0, 0, 359.70, 50.00,
     35.10, 11.20, 385.4, 1, 2),
    ('74JC20240101', 'B', '10.0000/fixture.74JC', 2024, 1, 1, 7, 0, 30, 359.90, 50.10,
     35.12, 11.10, 386.9, 1, 2),
    ('74JC20240101', 'B', '10.0000/fixture.74JC', 2024, 1, 1, 8, 0, 0, 0.10, 50.20,
     'NaN', 11.05, 390.2, 1, 3),
    ('74JC20240101', 'B', '10.0000/fixture.74JC', 2024, 1, 1, 9, 0, 0, 0.30, 50.30,
     35.20, 10.90, 'NaN', 0, 9),
    ('74JC20240101', 'B', '10.0000/fixture.74JC', 2024, 1, 1, 10, 0, 0, 0.50, 50.40,
     35.21, 10.80, 381.0, 1, 2),
    ('49NZ20240202', 'A', '10.0000/fixture.49NZ', 2024, 2, 2, 0, 15, 0, 200.50, 30.00,
     34.80, 20.10, 350.2, 2, 2),
    ('49NZ20240202', 'A', '10.0000/fixture.49NZ', 2024, 2, 2, 0, 30, 0, 201.00, 30.10,
     34.82, 20.00, 351.7, 2, 2),
    ('33RO20240303', 'E', '10.0000/fixture.33RO', 2024, 3, 3, 12, 0, 0, 300.00, 10.00,
     36.00, 27.50, 402.0, 1, 2),
]
SYNTHESIS_DATASETS = [
    ('74JC20240101', 'JC-FIX-1', 'RRS James Cook', 'Kitidis, V.', 'B', '10.0000/fixture.74JC'),
    ('49NZ20240202', 'NZ-FIX-2', 'Fixture Pacific Ship', 'Doe, J.; Roe, R.', 'A',
     '10.0000/fixture.49NZ'),
    ('33RO20240303', 'RO-FIX-3', 'Fixture Tropical Ship', 'Poe, E.', 'E',
     '10.0000/fixture.33RO'),
]


def synthesis_tsv() -> bytes:
    lines = ['SOCAT data report created: 2024-06-12 09:14:27 -0700',
             'Expocode\tversion\tDataset Name\tPlatform Name\tPlatform Type\tOrganization\t'
             'Principal Investigator(s)\tStart Date\tEnd Date\tQC Flag\tDOI']
    for expo, name, ship, pi, qc, doi in SYNTHESIS_DATASETS:
        lines.append(f'{expo}\t2024\t{name}\t{ship}\tShip\tFixture Lab\t{pi}\t\t\t{qc}\t{doi}')
    lines += ['', 'Explanation of data columns:',
              'Expocode: unique identifier for the dataset',
              'QC_Flag: dataset QC flag (A-D included in SOCAT; E excluded)',
              'longitude [dec.deg.E]: 0 to 360 decimal degrees east',
              'fCO2rec [uatm]: fCO2 recomputed from the raw data by SOCAT',
              'fCO2rec_flag: WOCE flag of fCO2rec (2 good, 3 questionable, 4 bad, 9 not '
              'generated)', '', SYNTHESIS_HEADER]
    for (expo, qc, doi, y, mo, d, h, mi, s, lon, lat, sal, sst, fco2, src, fl) in \
            SYNTHESIS_ROWS:
        lines.append('\t'.join(str(v) for v in (
            expo, 2024, doi, qc, y, mo, d, h, mi, s, lon, lat, 5, sal, sst, 'NaN', 1013.1,
            'NaN', 35.0, 1013.2, -4000, 150, 419.2, fco2, src, fl)))
    return ('\n'.join(lines) + '\n').encode()


def object_id(data: bytes) -> str:
    """The Carbon Portal's id of a data object: base64url of the first 18 SHA-256 bytes."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()[:18]).decode()


def landing_page(data: bytes, file_name: str, n_rows: int, start: str, stop: str,
                 hash_of: bytes | None = None) -> dict:
    """A landing page (CP DataObject JSON) for the data object `data`."""
    oid = object_id(data)

    def res(uri, label):
        return {'uri': uri, 'label': label, 'comments': []}
    station = {
        'org': {'self': res('http://meta.icos-cp.eu/resources/stations/OS_26NA', 'Nuka Arctica'),
                'name': 'Nuka Arctica', 'email': None, 'website': None, 'webpageDetails': None},
        'id': '26NA', 'location': None, 'coverage': None, 'responsibleOrganization': None,
        'pictures': [], 'countryCode': 'NO', 'funding': None,
        'specificInfo': {'theme': None, 'stationClass': '1', 'labelingDate': None,
                         'discontinued': False, 'timeZoneOffset': 0, 'documentation': []}}
    columns = [{'model': res(f'http://meta.icos-cp.eu/resources/cpmeta/{label}', label),
                'label': label, 'valueType': {'self': res('', label), 'quantityKind': None,
                                              'unit': unit},
                'valueFormat': 'http://meta.icos-cp.eu/ontologies/cpmeta/float32',
                'minMax': None, 'instrumentDeployments': None}
               for label, unit in (('fCO2rec', 'µatm'), ('SST', '°C'), ('WOA_SSS', 'psu'))]
    return {
        'hash': hashlib.sha256(hash_of or data).hexdigest(),
        'accessUrl': f'https://data.icos-cp.eu/objects/{oid}', 'pid': f'11676/{oid}',
        'doi': None, 'fileName': file_name, 'size': len(data),
        'submission': {'submitter': {'self': res('http://meta.icos-cp.eu/resources/organizations/OTC', 'OTC'),
                                     'name': 'Ocean Thematic Centre', 'email': None,
                                     'website': None, 'webpageDetails': None},
                       'start': '2016-08-22T10:00:00Z', 'stop': '2016-08-22T10:00:05Z'},
        'specification': {
            'self': res('http://meta.icos-cp.eu/resources/cpmeta/socatOtcTimeSer',
                        'SOCAT-format ocean time series'),
            'project': {'self': res('http://meta.icos-cp.eu/resources/projects/icos', 'ICOS'),
                        'keywords': None},
            'theme': {'self': res('http://meta.icos-cp.eu/resources/themes/ocean', 'Ocean data'),
                      'icon': 'https://static.icos-cp.eu/images/themes/oce.svg',
                      'markerIcon': None},
            'format': res('http://meta.icos-cp.eu/ontologies/cpmeta/socatTsv',
                          'SOCAT-format tab-separated text'),
            'encoding': res('http://meta.icos-cp.eu/ontologies/cpmeta/plain', 'plain'),
            'dataLevel': 2, 'specificDatasetType': 'StationTimeSeries', 'datasetSpec': None,
            'documentation': [], 'keywords': None},
        'specificInfo': {
            'acquisition': {'station': station, 'site': None,
                            'interval': {'start': start, 'stop': stop}, 'instrument': None,
                            'samplingPoint': None, 'samplingHeight': None},
            'productionInfo': None, 'nRows': n_rows, 'coverage': None, 'columns': columns},
        'previousVersion': None, 'nextVersion': None,
        'latestVersion': f'https://meta.icos-cp.eu/objects/{oid}', 'parentCollections': [],
        'references': {
            'citationString': 'Olsen, A. et al. (2016). Nuka Arctica 26NA20050107 surface '
                              'ocean CO2, ICOS OTC (fixture), https://hdl.handle.net/11676/'
                              + oid,
            'citationBibTex': None, 'citationRis': None, 'doi': None,
            'keywords': ['ICOS', 'ocean', 'fCO2'], 'authors': None,
            'title': 'Underway CO2 of Nuka Arctica cruise 26NA20050107',
            'temporalCoverageDisplay': None, 'acknowledgements': None,
            'licence': {'url': 'https://data.icos-cp.eu/licence', 'name': 'CC BY 4.0',
                        'webpage': 'https://creativecommons.org/licenses/by/4.0/',
                        'baseLicence': None}}}


def build_mirror(root: Path) -> Path:
    """A mirror with socat/ (the real files + the synthesis fixture) and icos-marine/ (the real
    exports + a landing page and data object for the real 26NA SOCAT-format file)."""
    import json
    shutil.copytree(BDI_DATA / 'socat', root / 'socat')
    (root / 'socat/synthesis').mkdir()
    (root / 'socat/synthesis/SOCATv2024_fixture.tsv').write_bytes(synthesis_tsv())
    shutil.copytree(BDI_DATA / 'icos-marine', root / 'icos-marine')
    data = SOCAT_TAB.read_bytes()
    oid = object_id(data)
    for d in ('meta.icos-cp.eu/objects', 'data.icos-cp.eu/objects'):
        (root / 'icos-marine' / d).mkdir(parents=True)
    (root / 'icos-marine/data.icos-cp.eu/objects' / oid).write_bytes(data)
    page = landing_page(data, SOCAT_TAB.name, 526, '2005-01-07T01:08:00Z',
                        '2005-01-08T00:08:00Z')
    (root / 'icos-marine/meta.icos-cp.eu/objects' / oid).write_text(json.dumps(page))
    return root


class TreeHandler(http.server.BaseHTTPRequestHandler):
    """A web folder: files, autoindex pages for folders, and Carbon Portal landing pages that
    answer JSON only to `Accept: application/json` (HTML otherwise), as the live portal does."""
    root: Path = Path('.')
    requests: list = []

    def log_message(self, *args):
        pass

    def _answer(self, body: bool):
        rel = unquote(urlsplit(self.path).path).lstrip('/')
        target = (self.root / rel).resolve()
        self.requests.append((self.command, rel, self.headers.get('Accept')))
        ok = target == self.root.resolve() or self.root.resolve() in target.parents
        ctype = 'application/octet-stream'
        if ok and target.is_dir():
            links = ''.join(f'<a href="{quote(p.name)}{"/" if p.is_dir() else ""}">'
                            f'{html.escape(p.name)}</a>\n' for p in sorted(target.iterdir()))
            data, ctype = f'<html><body><a href="../">../</a>\n{links}</body></html>'.encode(), \
                'text/html'
        elif ok and target.is_file():
            data = target.read_bytes()
            if '/objects/' in rel and rel.startswith('meta.') and \
                    'application/json' not in (self.headers.get('Accept') or ''):
                data, ctype = b'<html><body>landing page</body></html>', 'text/html'
        else:
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Last-Modified', self.date_time_string(target.stat().st_mtime))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)


@contextlib.contextmanager
def serve_tree(root: Path):
    """Base URL of a loopback web server over root; the handler class (its request log)."""
    handler = type('Handler', (TreeHandler,), {'root': Path(root), 'requests': []})
    with serve(handler) as url:
        yield url, handler
