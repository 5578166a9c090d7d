"""ELIXIR-ENA connector, harvest and served collections.

The real ENA answers in ../shared/data/bdi/ena (read_run filereports, browser XML for a study,
sample, experiment and run) are mouse / human-gut records, not marine. No real marine Portal
API search answer exists offline, so the marine answers below are BUILT IN THIS TEST from the
format SOURCE.md describes: TSV = a header of the requested field names and one row per
record ('' for missing); JSON = an array of flat objects with string values. Their accessions
(SAMEA9000000x, ERR90000001, PRJEB90001) are invented; the run row uses the header of the real
31-field filereport. The empty-result and error behaviour of ENA is not verified: the loopback
server answers an empty body and an HTTP 204 (both must be "no records") and a 400 (must be
reported). Expected values come from csv and ElementTree reading the files, and from the
marine label each fixture row is given by hand here.
"""
from __future__ import annotations

import csv
import http.server
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa

from bdi_samples import BDI_DATA, run_harvest, get_json as get
from providers import store
from providers.base import HttpSource, MirrorSource
from providers.ena import EnaConnector, marine_of, read_browser_xml, read_portal
from providers.harvest import harvest_one
from serverkit import serve, start_server

ENA = BDI_DATA / 'ena'
REAL_TSV = sorted(ENA.rglob('*.tsv'))
REAL_XML = sorted(ENA.rglob('*.xml'))
SAMPLE_HEADER = ['sample_accession', 'secondary_sample_accession', 'description',
                 'collection_date', 'first_public', 'tax_id', 'scientific_name', 'lat', 'lon',
                 'country', 'depth', 'environment_biome', 'environment_feature',
                 'environment_material', 'broad_scale_environmental_context',
                 'local_environmental_context', 'environmental_medium']

# (row, marine label by hand); TSV search 'marine-tsv'
TSV_SAMPLES = [
    ({'sample_accession': 'SAMEA90000001', 'secondary_sample_accession': 'ERS90000001',
      'description': 'surface water, Kiel Bight', 'collection_date': '2019-05-03',
      'tax_id': '408172', 'scientific_name': 'marine metagenome', 'lat': '54.5',
      'lon': '10.25', 'country': 'Baltic Sea', 'depth': '5',
      'environment_biome': 'marine biome (ENVO:00000447)'}, 'yes'),
    ({'sample_accession': 'SAMEA90000002', 'secondary_sample_accession': 'ERS90000002',
      'description': 'stool', 'collection_date': '2018-01', 'tax_id': '408170',
      'scientific_name': 'human gut metagenome', 'lat': '51.5', 'lon': '-0.12'}, 'no'),
    ({'sample_accession': 'SAMEA90000003', 'secondary_sample_accession': 'ERS90000003',
      'description': 'unlabelled environmental sample', 'collection_date': '2020',
      'tax_id': '256318', 'scientific_name': 'metagenome', 'lat': '-33.9', 'lon': '18.4'},
     'unknown'),
    ({'sample_accession': 'SAMEA90000004', 'secondary_sample_accession': 'ERS90000004',
      'collection_date': '2021-07-01/2021-07-15', 'tax_id': '12908',
      'scientific_name': 'unclassified sequences',
      'broad_scale_environmental_context': 'ocean biome'}, 'yes'),
    ({'sample_accession': 'SAMEA90000005', 'secondary_sample_accession': 'ERS90000005',
      'description': 'lung', 'tax_id': '10090', 'scientific_name': 'Mus musculus',
      'lat': '48.1', 'lon': '11.6'}, 'no'),
]
# JSON search 'marine-json'
JSON_SAMPLES = [
    ({'sample_accession': 'SAMEA90000006', 'secondary_sample_accession': 'ERS90000006',
      'collection_date': '2011-10-20T06:30:00Z', 'tax_id': '256318',
      'scientific_name': 'metagenome', 'lat': '-12.0', 'lon': '-140.5', 'depth': '200 m',
      'environment_material': 'sea water [ENVO:00002149]'}, 'yes'),
    ({'sample_accession': 'SAMEA90000007', 'secondary_sample_accession': 'ERS90000007',
      'tax_id': '410658', 'scientific_name': 'soil metagenome', 'lat': '40.0', 'lon': '-3.7',
      'environment_biome': 'terrestrial biome'}, 'no'),
    ({'sample_accession': 'SAMEA90000008', 'secondary_sample_accession': 'ERS90000008',
      'tax_id': '12908', 'scientific_name': 'unclassified sequences'}, 'unknown'),
]
RUN = {'run_accession': 'ERR90000001', 'experiment_accession': 'ERX90000001',
       'sample_accession': 'SAMEA90000001', 'secondary_sample_accession': 'ERS90000001',
       'study_accession': 'PRJEB90001', 'secondary_study_accession': 'ERP90001',
       'library_layout': 'PAIRED', 'library_selection': 'RANDOM',
       'library_source': 'METAGENOMIC', 'library_strategy': 'WGS',
       'instrument_model': 'Illumina NovaSeq 6000', 'instrument_platform': 'ILLUMINA',
       'base_count': '3000000', 'read_count': '10000', 'tax_id': '408172',
       'scientific_name': 'marine metagenome', 'study_title': 'Baltic surface water metagenomes',
       'experiment_title': 'Illumina NovaSeq 6000 paired end sequencing',
       'fastq_md5': '0123456789abcdef0123456789abcdef;fedcba9876543210fedcba9876543210',
       'fastq_bytes': '1500000;1600000',
       'fastq_ftp': 'ftp.sra.ebi.ac.uk/vol1/fastq/ERR900/001/ERR90000001/ERR90000001_1.fastq.gz;'
                    'ftp.sra.ebi.ac.uk/vol1/fastq/ERR900/001/ERR90000001/ERR90000001_2.fastq.gz'}
# real records: the marine label their metadata gives
REAL_LABELS = {'ena-SRR13191702': 'no', 'ena-SAMN10719598': 'no', 'ena-SRR8426358': 'no',
               'ena-SRR6835844': 'unknown', 'ena-SRR6425163': 'unknown'}
FIXTURE_LABELS = dict({f"ena-{r['sample_accession']}": m for r, m in TSV_SAMPLES + JSON_SAMPLES},
                      **{'ena-ERR90000001': 'yes'})
LABELS = dict(REAL_LABELS, **FIXTURE_LABELS)
KEPT = {g for g, m in LABELS.items() if m != 'no'}


def tsv(header: list[str], rows: list[dict]) -> bytes:
    return ('\t'.join(header) + '\n' + ''.join(
        '\t'.join(r.get(h, '') for h in header) + '\n' for r in rows)).encode()


def real_run_header() -> list[str]:
    return (ENA / 'SRR13191702.filereport_read_run.tsv').read_text().splitlines()[0].split('\t')


def make_mirror(root):
    """The shared ena folder as it is, plus the marine answers built here."""
    shutil.copytree(ENA, root)
    for p in [root, *root.rglob('*')]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    (root / 'search_marine-tsv.tsv').write_bytes(tsv(SAMPLE_HEADER, [r for r, _ in TSV_SAMPLES]))
    (root / 'search_marine-json.json').write_text(json.dumps(
        [{h: r.get(h, '') for h in SAMPLE_HEADER} for r, _ in JSON_SAMPLES]))
    (root / 'ERR90000001.filereport_read_run.tsv').write_bytes(tsv(real_run_header(), [RUN]))
    return root


def csv_rows(path) -> list[dict]:
    with open(path, newline='') as fh:
        return list(csv.DictReader(fh, delimiter='\t'))


def granules(eng) -> dict:
    with eng.connect() as conn:
        rows = conn.execute(sa.select(store.GRANULE)).mappings().all()
    return {r['id']: dict(r, extra=json.loads(r['extra'])) for r in rows}


# --- the answer formats -------------------------------------------------------------------
@pytest.mark.parametrize('path', REAL_TSV, ids=lambda p: p.name)
def test_portal_tsv_as_csv_reads_it(path):
    want = [{k: v for k, v in r.items() if v} for r in csv_rows(path)]
    assert read_portal(path.read_bytes()) == want
    assert want and all('run_accession' in r for r in want)


def test_portal_json_and_empty_answers():
    body = json.dumps([{h: r.get(h, '') for h in SAMPLE_HEADER} for r, _ in JSON_SAMPLES])
    got = read_portal(body.encode())
    assert got == [{k: v for k, v in r.items() if v} for r, _ in JSON_SAMPLES]
    assert read_portal(b'') == [] and read_portal(b'\n') == []
    with pytest.raises(ValueError):
        read_portal(b'{"message": "Invalid field"}')


@pytest.mark.parametrize('path', REAL_XML, ids=lambda p: p.name)
def test_browser_xml_as_elementtree_reads_it(path):
    root = ET.parse(path).getroot()
    got = read_browser_xml(path.read_bytes())
    els = list(root)
    assert len(got) == len(els)
    for ent, el in zip(got, els):
        assert el.get('accession') in ent['ids']
        assert ent['kind'] == el.tag.lower()
        tag = el.tag
        attrs = {a.findtext('TAG').strip(): a.findtext('VALUE').strip()
                 for a in el.iter(f'{tag}_ATTRIBUTE')}
        assert ent['attributes'] == attrs
        links = {}
        for x in el.iter('XREF_LINK'):
            links.setdefault(x.findtext('DB').strip(), []).append(x.findtext('ID').strip())
        assert ent['links'] == links
        f = ent['fields']
        if tag == 'SAMPLE':
            assert f['tax_id'] == el.findtext('SAMPLE_NAME/TAXON_ID')
            assert f['scientific_name'] == el.findtext('SAMPLE_NAME/SCIENTIFIC_NAME')
            assert f['first_public'] == attrs['ENA-FIRST-PUBLIC']
            bio = [e.text for e in el.iter('EXTERNAL_ID') if e.get('namespace') == 'BioSample']
            assert set(bio) <= ent['ids']
        if tag == 'STUDY':
            assert f['study_title'] == el.findtext('DESCRIPTOR/STUDY_TITLE')
            assert el.findtext('IDENTIFIERS/SECONDARY_ID') in ent['ids']
        if tag == 'EXPERIMENT':
            lib = el.find('DESIGN/LIBRARY_DESCRIPTOR')
            assert f['library_strategy'] == lib.findtext('LIBRARY_STRATEGY')
            assert f['library_layout'] == lib.find('LIBRARY_LAYOUT')[0].tag
            assert f['instrument_model'] == el.findtext('PLATFORM/*/INSTRUMENT_MODEL')
            assert ent['refs']['run'] == {x.findtext('ID') for x in el.iter('XREF_LINK')
                                          if x.findtext('DB') == 'ENA-RUN'}
        if tag == 'RUN':
            assert f['read_count'] == attrs['ENA-SPOT-COUNT']
            assert ent['refs']['experiment'] == {el.find('EXPERIMENT_REF').get('accession')}


def test_marine_labels_follow_the_metadata():
    for row, label in TSV_SAMPLES + JSON_SAMPLES + [(RUN, 'yes')]:
        assert marine_of(row)[0] == label, row
    (real,) = csv_rows(ENA / 'SRR13191702.filereport_read_run.tsv')
    assert marine_of(real) == ('no', 'tax_id 408170 (human gut metagenome)')
    assert marine_of({'marine': 'true', 'tax_id': '408170'})[0] == 'yes'
    assert marine_of({'country': 'Atlantic Ocean: Bay of Biscay'})[0] == 'yes'
    assert marine_of({'scientific_name': 'seawater metagenome'})[0] == 'yes'


# --- harvest -------------------------------------------------------------------------------
def test_real_samples_merged_linked_and_filtered(tmp_path):
    eng = store.engine(f'sqlite:///{tmp_path}/all.sqlite')
    rep = harvest_one(eng, EnaConnector({'marine_only': False}), MirrorSource(ENA))
    assert rep['skipped'] == [] and rep['filtered']['count'] == 0
    got = granules(eng)
    assert set(got) == set(REAL_LABELS)
    for gid, label in REAL_LABELS.items():
        assert got[gid]['extra']['marine'] == label
    # paired fastq: ';' splits path, md5 and size; ftp paths are also served over https
    (row,) = csv_rows(ENA / 'SRR13191702.filereport_read_run.tsv')
    files = got['ena-SRR13191702']['extra']['files']
    assert [f['url'] for f in files] == ['https://' + p for p in row['fastq_ftp'].split(';')]
    assert [f['ftp'] for f in files] == ['ftp://' + p for p in row['fastq_ftp'].split(';')]
    assert [f['md5'] for f in files] == row['fastq_md5'].split(';')
    assert [f['bytes'] for f in files] == [int(b) for b in row['fastq_bytes'].split(';')]
    r = got['ena-SRR13191702']
    assert (r['collection'], r['platform'], r['taxon']) == \
        (f"ena-{row['study_accession']}", row['instrument_model'], row['scientific_name'])
    assert r['extra']['read_count'] == int(row['read_count'])
    assert r['url'] == files[0]['url']
    # SRR8426358: files from the 4-field filereport, study and taxon from the browser XML
    (fq,) = csv_rows(ENA / 'ffq_fixtures/filereport_read_run_fastq_SRR8426358.tsv')
    run = got['ena-SRR8426358']
    assert [f['md5'] for f in run['extra']['files']] == fq['fastq_md5'].split(';')
    study = ET.parse(ENA / 'ffq_fixtures/ena_browser_xml_SRP178136.xml').getroot()[0]
    bioproject = study.find("IDENTIFIERS/EXTERNAL_ID[@namespace='BioProject']").text
    sample = ET.parse(ENA / 'ffq_fixtures/ena_browser_xml_SRS4237519.xml').getroot()[0]
    assert run['collection'] == f'ena-{bioproject}'
    assert run['taxon'] == sample.findtext('SAMPLE_NAME/SCIENTIFIC_NAME')
    biosample = sample.find("IDENTIFIERS/EXTERNAL_ID[@namespace='BioSample']").text
    assert got[f'ena-{biosample}']['extra']['runs'] == ['SRR8426358']
    # the run with an empty fastq row: a record without files
    empty = got['ena-SRR6835844']
    assert empty['extra']['fastq'] == 'none listed' and 'files' not in empty['extra']
    # the run named by the experiment XML carries the experiment's library
    exp = ET.parse(ENA / 'ffq_fixtures/ena_browser_xml_SRX3517583.xml').getroot()[0]
    lib = got['ena-SRR6425163']
    assert lib['platform'] == exp.findtext('PLATFORM/ILLUMINA/INSTRUMENT_MODEL')
    assert lib['extra']['library_strategy'] == exp.findtext('.//LIBRARY_STRATEGY')
    assert lib['collection'] == f"ena-{exp.find('STUDY_REF').get('accession')}"
    with eng.connect() as conn:
        colls = {c.id: c for c in conn.execute(sa.select(store.COLLECTION))}
    assert colls[f'ena-{bioproject}'].title == study.findtext('DESCRIPTOR/STUDY_TITLE')

    # marine_only (the default): the clearly non-marine ones are left out, and counted
    eng2 = store.engine(f'sqlite:///{tmp_path}/marine.sqlite')
    rep = harvest_one(eng2, EnaConnector(), MirrorSource(ENA))
    assert set(granules(eng2)) == {g for g, m in REAL_LABELS.items() if m != 'no'}
    assert rep['filtered']['count'] == 3
    assert rep['filtered']['reasons'] == {'tax_id 408170 (human gut metagenome)': 1,
                                          'tax_id 10090 (Mus musculus)': 2}


class EnaHandler(http.server.BaseHTTPRequestHandler):
    """The ENA Portal and Browser APIs at their live paths, answering from the mirror files:
    browser XML by accession, filereport rows whose accessions match, searches by query."""
    xml: dict = {}
    runs: list = []
    searches: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, status, body=b'', ctype='text/plain'):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.startswith('/ena/browser/api/xml/'):
            f = self.xml.get(url.path.rsplit('/', 1)[1])
            return self._send(200, f.read_bytes(), 'application/xml') if f else self._send(404)
        fields = q.get('fields', '').split(',')
        if url.path == '/ena/portal/api/filereport':
            rows = [r for r in self.runs if q['accession'] in
                    {v for k, v in r.items() if k.endswith('accession')}]
            return self._send(200, tsv(fields, rows) if rows else b'')
        if url.path == '/ena/portal/api/search':
            if q['query'] == 'nothing_204':
                return self._send(204)
            if q['query'] == 'nothing_empty':
                return self._send(200)
            if q['query'] not in self.searches:
                return self._send(400, f"Invalid query: {q['query']}".encode())
            rows = self.searches[q['query']]
            if q.get('format') == 'json':
                return self._send(200, json.dumps([{h: r.get(h, '') for h in fields}
                                                   for r in rows]).encode(), 'application/json')
            return self._send(200, tsv(fields, rows))
        self._send(404)


@pytest.fixture
def ena_live(tmp_path):
    mirror = make_mirror(tmp_path / 'mirror' / 'ena')
    EnaHandler.xml = {}
    for f in mirror.rglob('*.xml'):
        for el in ET.parse(f).getroot():
            for acc in [el.get('accession')] + [i.text for i in el.find('IDENTIFIERS')]:
                EnaHandler.xml[acc] = f
    EnaHandler.runs = [r for f in mirror.rglob('*.tsv') if 'filereport' in f.name
                       for r in csv_rows(f)]
    EnaHandler.searches = {'tax_eq(408172)': [r for r, _ in TSV_SAMPLES],
                           'tax_tree(408169)': [r for r, _ in JSON_SAMPLES]}
    with serve(EnaHandler) as url:
        yield mirror, f'{url}/'


def test_mirror_and_live_http_harvests_agree(ena_live, tmp_path):
    mirror, base = ena_live
    a = store.engine(f'sqlite:///{tmp_path}/a.sqlite')
    ra = harvest_one(a, EnaConnector(), MirrorSource(mirror))
    options = {'url': 'https://www.ebi.ac.uk/', 'accessions': [
        'SRP178136', 'SRS4237519', 'SRX3517583', 'SRR8426358', 'SRR13191702', 'SRR6835844',
        'ERR90000001'], 'searches': [
        {'name': 'marine-tsv', 'result': 'sample', 'query': 'tax_eq(408172)',
         'fields': SAMPLE_HEADER},
        {'name': 'marine-json', 'result': 'sample', 'query': 'tax_tree(408169)',
         'format': 'json'},
        {'name': 'none-a', 'query': 'nothing_204'}, {'name': 'none-b', 'query': 'nothing_empty'},
        {'name': 'bad', 'query': 'no_such_field=1'}]}
    b = store.engine(f'sqlite:///{tmp_path}/b.sqlite')
    rb = harvest_one(b, EnaConnector(options), HttpSource(base))
    assert set(granules(a)) == set(granules(b)) == KEPT
    for gid, ga in granules(a).items():
        gb = granules(b)[gid]
        for k in ('collection', 'title', 'url', 'minx', 'miny', 'tmin', 'tmax', 'taxon',
                  'platform', 'parameters', 'checksum'):
            assert ga[k] == gb[k], (gid, k)
        assert ga['extra']['marine'] == LABELS[gid]
    assert ra['filtered'] == rb['filtered']
    assert ra['filtered']['count'] == sum(m == 'no' for m in LABELS.values())
    assert ra['skipped'] == []
    problems = {s['granule'].split('?')[0]: s['reason'] for s in rb['skipped']}
    bad = [s for s in rb['skipped'] if 'no_such_field' in s['granule']]
    assert len(bad) == 1 and bad[0]['reason'].startswith('HTTP 400: Invalid query')
    # no XML for the accessions without a recorded one; 204 and empty body are no records
    assert {p for p in problems if '/xml/' in p} == {
        f'ena/browser/api/xml/{a}' for a in ('SRR13191702', 'SRR6835844', 'ERR90000001')}
    assert not any('nothing' in s['granule'] for s in rb['skipped'])
    with b.connect() as conn:
        colls = {c for (c,) in conn.execute(sa.select(store.COLLECTION.c.id))}
    assert {'ena-marine-tsv', 'ena-marine-json', 'ena-PRJEB90001'} <= colls
    assert not colls & {'ena-none-a', 'ena-none-b', 'ena-bad'}
    again = harvest_one(b, EnaConnector(options), HttpSource(base))
    assert again['unchanged'] == len(KEPT) and again['added'] == again['updated'] == 0


def test_unreachable_service_keeps_the_index(ena_live, tmp_path):
    mirror, base = ena_live
    eng = store.engine(f'sqlite:///{tmp_path}/c.sqlite')
    opts = {'accessions': ['ERR90000001']}
    first = harvest_one(eng, EnaConnector(opts), HttpSource(base))
    assert first['added'] == 1
    down = harvest_one(eng, EnaConnector(opts), HttpSource('http://127.0.0.1:9/'))
    assert 'error' in down and set(granules(eng)) == {'ena-ERR90000001'}
    with pytest.raises(FileNotFoundError):
        EnaConnector({}).granules(HttpSource(base))


# --- served ----------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def ena_server(tmp_path_factory):
    top = tmp_path_factory.mktemp('ena')
    make_mirror(top / 'mirror' / 'ena')
    home = top / 'home'
    home.mkdir()
    report = run_harvest(home, 'ena', '--mirror', str(top / 'mirror'))
    with start_server(home) as server:
        server.harvest_report = report
        yield server


def fixture_positions() -> dict:
    return {f"ena-{r['sample_accession']}": (float(r['lon']), float(r['lat']))
            for r, m in TSV_SAMPLES + JSON_SAMPLES if m != 'no' and r.get('lat')}


def test_report_says_what_the_filter_left_out(ena_server):
    rep = ena_server.harvest_report['ena']
    assert rep['marine_only'] is True
    left_out = {g for g, m in LABELS.items() if m == 'no'}
    assert rep['filtered']['count'] == len(left_out)
    assert {f'ena-{a}' for a in rep['filtered']['records']} == left_out
    assert rep['filtered']['reasons']['tax_id 408170 (human gut metagenome)'] == 2
    assert rep['added'] == len(KEPT)


def test_level2_records_link_the_sequence_files_and_xml(ena_server):
    got = get(ena_server, '/collections/ena-granules/items', limit=100)
    by_id = {r['id']: r for r in got['features']}
    assert set(by_id) == KEPT and got['numberMatched'] == len(KEPT)
    for gid, r in by_id.items():
        assert r['properties']['marine'] == LABELS[gid]
    run = by_id['ena-ERR90000001']
    enclosures = [lk for lk in run['links'] if lk['rel'] == 'enclosure']
    paths = RUN['fastq_ftp'].split(';')
    assert [lk['href'] for lk in enclosures] == ['https://' + p for p in paths]
    assert [lk['length'] for lk in enclosures] == [int(b) for b in RUN['fastq_bytes'].split(';')]
    assert [f['md5'] for f in run['properties']['files']] == RUN['fastq_md5'].split(';')
    xml = [lk['href'] for lk in run['links'] if lk['rel'] == 'describedby']
    assert xml == ['https://www.ebi.ac.uk/ena/browser/api/xml/ERR90000001']
    assert run['properties']['collection'] == 'ena-PRJEB90001'
    assert run['properties']['platform'] == RUN['instrument_model']
    # the run inherits its sample's position (records bbox), but only samples are Features
    assert run['geometry']['coordinates'] == [10.25, 54.5]
    exp = ET.parse(ENA / 'ffq_fixtures/ena_browser_xml_SRX3517583.xml').getroot()[0]
    real = by_id['ena-SRR6425163']['properties']
    assert real['library_strategy'] == exp.findtext('.//LIBRARY_STRATEGY')
    assert real['platform'] == exp.findtext('PLATFORM/ILLUMINA/INSTRUMENT_MODEL')
    assert by_id['ena-SRR6835844']['properties']['fastq'] == 'none listed'
    wgs = get(ena_server, '/collections/ena-granules/items', parameter='WGS')
    assert [r['id'] for r in wgs['features']] == ['ena-ERR90000001']
    baltic = get(ena_server, '/collections/ena-granules/items', bbox='9,54,11,55')
    assert {r['id'] for r in baltic['features']} == {'ena-ERR90000001', 'ena-SAMEA90000001'}
    july = get(ena_server, '/collections/ena-granules/items', datetime='2021-07-10')
    assert [r['id'] for r in july['features']] == ['ena-SAMEA90000004']
    from owslib.ogcapi.records import Records
    recs = Records(ena_server.url).collection_items('ena-granules', limit=100)
    assert {r['id'] for r in recs['features']} == KEPT


def test_level1_collections_per_study_and_search(ena_server):
    got = get(ena_server, '/collections/bdi-collections/items', bdi='ena', limit=50)
    ids = {c['id'] for c in got['features']}
    assert ids == {'ena-PRJEB90001', 'ena-marine-tsv', 'ena-marine-json', 'ena-no-study',
                   'ena-SRP127624'}
    study = next(c for c in got['features'] if c['id'] == 'ena-PRJEB90001')
    assert study['properties']['title'] == RUN['study_title']
    assert study['properties']['granules'] == 2       # the run and its sample


def test_samples_with_a_position_are_features(ena_server):
    want = fixture_positions()
    got = get(ena_server, '/collections/ena-samples/items', limit=100)
    assert {f['id']: tuple(f['geometry']['coordinates']) for f in got['features']} == want
    by_id = {f['id']: f['properties'] for f in got['features']}
    deep = by_id['ena-SAMEA90000006']
    assert deep['depth'] == 200 and deep['collection_date'] == '2011-10-20T06:30:00Z'
    assert deep['marine'] == 'yes' and deep['scientific_name'] == 'metagenome'
    assert by_id['ena-SAMEA90000003']['marine'] == 'unknown'
    assert by_id['ena-SAMEA90000001']['runs'] == ['ERR90000001']
    assert by_id['ena-SAMEA90000001']['study'] == 'PRJEB90001'
    one = get(ena_server, '/collections/ena-samples/items', marine='unknown')
    assert [f['id'] for f in one['features']] == ['ena-SAMEA90000003']
    from owslib.ogcapi.features import Features
    feats = Features(ena_server.url).collection_items('ena-samples', limit=100)
    assert len(feats['features']) == len(want)
    ogrinfo = shutil.which('ogrinfo')
    if ogrinfo is None:
        pytest.skip('gdal-bin not installed')
    out = subprocess.run([ogrinfo, '-ro', '-al', '-q',
                          f'OAPIF:{ena_server.url}/collections/ena-samples'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for gid, (x, y) in want.items():
        assert f'POINT ({x:g} {y:g})' in out.stdout, (gid, out.stdout[:2000])


@pytest.mark.parametrize('path,params,status', [
    ('ena-samples/items', {'bbox': '1,2'}, 400),
    ('ena-samples/items', {'datetime': 'not-a-date'}, 400),
    ('ena-granules/items', {'sortby': 'nosuch'}, 400),
    ('ena-granules/items/ena-NOSUCH', {}, 404)])
def test_bad_input_is_a_clear_4xx(ena_server, path, params, status):
    r = requests.get(f'{ena_server.url}/collections/{path}', params=params, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert r.json()['detail']
