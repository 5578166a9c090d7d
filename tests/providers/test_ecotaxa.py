"""EcoTaxa connector, harvest and served collections, checked against pandas reading the real
export TSVs of ../shared/data/bdi/ecotaxa and against the published Darwin Core conversion of
the 1-line DOI export (akvaplan-niva/ecotaxa-darwin-core).

Fixtures built here (no real sample of them exists): a latin-1 copy of the real import TSV
with one non-ASCII category, a TSV with a broken row and a non-zip "zip" (both in a temporary
copy of the mirror), and an export zip of the real UVP files as EcoPart delivers a raw export
(served at api/jobs/<id>/file, the EcoTaxa API's path for an export job's file).
"""
from __future__ import annotations

import http.server
import io
import json
import shutil
import subprocess
import zipfile

import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from providers import store
from providers.base import GranuleError, HttpSource, MirrorSource
from providers.ecotaxa import EcotaxaConnector
from providers.harvest import harvest_one

from bdi_samples import BDI_DATA, run_harvest, get_json as get
from serverkit import serve, start_server

ECO = BDI_DATA / 'ecotaxa'
UVP = ECO / 'uvp5_bats361_export'
META = UVP / 'export_raw_20220810_16_31_Export_metadata_summary.tsv'
ZOO = UVP / '20190714203848_bats361_ctd5_ZOO_raw_20220810_16_31.tsv'
PAR = UVP / '20190714203848_bats361_ctd5_PAR_raw_20220810_16_31.tsv'
DWC = ECO / 'darwin_core_conversion'
IMPORT = ECO / 'import_example/m106_mn01_n1_sml'
SUMS = ECO / 'export_summaries'
OPTIONS = {'projects': {'darwin_core_conversion/': 818}}   # as in pygeoapi-config.yml


def iso(ts: str) -> str:
    return pd.Timestamp(ts).strftime('%Y-%m-%dT%H:%M:%SZ')


def read_export(source, path: str, options=None):
    conn = EcotaxaConnector(options if options is not None else OPTIONS)
    (ref,) = [r for r in conn.granules(source) if r.path == path]
    return conn.read(ref, conn.fetch(source, ref))


def kind(granule, k):
    return [o for o in granule.observations if o['kind'] == k]


@pytest.fixture(scope='module')
def mirror():
    return MirrorSource(ECO)


# --- Darwin Core against the published conversion ---------------------------------------
def test_darwin_core_occurrence_matches_the_published_conversion(mirror):
    published = json.loads((DWC / 'ecotaxa-doi-export-1-line-dynamic-properties.json').read_text())
    tsv = pd.read_csv(DWC / 'ecotaxa-doi-export-1-line.tsv', sep='\t')
    (occ,) = kind(read_export(mirror, 'darwin_core_conversion/'), 'occurrence')
    ours = occ['props']
    same = {k for k in published if k != 'dynamicProperties' and ours.get(k) == published[k]}
    differ = {k for k in published if k != 'dynamicProperties' and k in ours} - same
    assert len(same) == len(published) - 3    # all but dynamicProperties and the two below
    # the only differences, explained in providers/ecotaxa.py: the annotation time kept,
    # and no made-up coordinate uncertainty
    assert differ == {'dateIdentified'}
    assert published['dateIdentified'] == '2018-05-14T00:00:00Z'
    assert ours['dateIdentified'] == _annotated(tsv.iloc[0]) == '2018-05-14T09:48:12Z'
    assert set(published) - set(ours) == {'coordinateUncertaintyInMeters'}
    # the UUIDv5 identifiers are reproduced exactly
    assert {ours[k] for k in ('occurrenceID', 'eventID', 'datasetID')} == \
        {published[k] for k in ('occurrenceID', 'eventID', 'datasetID')}
    numeric = {k: v for k, v in published['dynamicProperties'].items()
               if isinstance(v, (int, float))}
    shared = {k for k in numeric if k in ours['dynamicProperties']}
    assert len(shared) >= 60
    for k in shared:
        assert ours['dynamicProperties'][k] == pytest.approx(numeric[k]), k
    # the geometry keeps the exported value, the DwC fields are rounded as published
    assert (occ['lon'], occ['lat']) == (tsv.object_lon[0], tsv.object_lat[0])
    assert occ['taxon'] == 'Copepoda' and occ['qc'] == 'validated'


def _annotated(row) -> str:
    d, t = str(row.object_annotation_date), str(row.object_annotation_time).zfill(6)
    return iso(f'{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:4]}:{t[4:]}')


# --- UVP raw export: casts joined to objects and particles -------------------------------
def test_uvp_objects_get_their_cast_position_time_and_depth(mirror):
    g = read_export(mirror, 'uvp5_bats361_export/')
    meta = pd.read_csv(META, sep='\t')
    zoo = pd.read_csv(ZOO, sep='\t').merge(meta, on='psampleid', how='left')
    occ = {o['props']['catalogNumber']: o for o in kind(g, 'occurrence')}
    assert len(occ) == len(zoo) == 480
    for _, row in zoo.iterrows():
        o = occ[row.orig_id]
        assert (o['lon'], o['lat']) == (row.longitude, row.latitude)
        assert o['time'] == iso(row.sampledate)
        assert o['depth'] == pytest.approx(row.depth_including_offset)
        assert o['parameters'] == row['name']
        assert o['qc'] == {'V': 'validated', 'P': 'predicted', 'D': 'dubious'}[row.classif_qual]
        assert o['props']['identificationRemarks'] == row.taxo_hierarchy
        assert o['props']['objid'] == row.objid
        assert o['props']['dynamicProperties']['esd'] == pytest.approx(row.esd)
    # scientific names only for living, Latin-named categories
    cope = zoo[zoo.taxo_hierarchy.str.endswith('>Copepoda')]
    assert {o['props']['catalogNumber'] for o in occ.values() if o['taxon'] == 'Copepoda'} == \
        set(cope.orig_id)
    assert all(o['taxon'] is None for o in occ.values()
               if o['props']['identificationRemarks'].startswith('not-living'))
    assert g.record['collection'] == f'ecotaxa-project-{meta.projid[0]}'


def test_uvp_casts_are_samples_with_counts_and_particle_profile(mirror):
    g = read_export(mirror, 'uvp5_bats361_export/')
    meta = pd.read_csv(META, sep='\t')
    samples = {s['platform']: s for s in kind(g, 'sample')}
    assert set(samples) == set(meta.profileid)
    for _, cast in meta.iterrows():
        s = samples[cast.profileid]
        assert (s['lon'], s['lat'], s['time']) == (cast.longitude, cast.latitude,
                                                   iso(cast.sampledate))
    ctd5 = samples['bats361_ctd5']
    zoo = pd.read_csv(ZOO, sep='\t')
    assert ctd5['props']['categories'] == zoo['name'].value_counts().to_dict()
    assert ctd5['props']['plankton_file_in_export'] is True
    assert samples['bats361_ctd1']['props']['plankton_file_in_export'] is False
    par = pd.read_csv(PAR, sep='\t')
    vol = float(meta.loc[meta.profileid == 'bats361_ctd5', 'acq_volimage'].iloc[0])
    per_depth = par.groupby('depth').agg(nbr=('nbr', 'sum'), img=('imgcount', 'first'))
    want = (per_depth.nbr / (per_depth.img * vol)).to_numpy()
    lv = ctd5['levels']
    assert lv['particle_depth'] == list(per_depth.index)
    assert lv['particles_per_litre'] == pytest.approx(list(want))
    assert sum(lv['particle_count']) == par.nbr.sum()


# --- summaries, import files, exports -----------------------------------------------------
def test_per_sample_summaries_join_their_sample(mirror):
    g = read_export(mirror, 'export_summaries/')
    samples = {s['platform']: s for s in kind(g, 'sample')}
    pos = pd.read_csv(SUMS / 'summary_per_sample.tsv', sep='\t')
    for name, col, key in (('abundances', 'count', 'abundance'),
                           ('concentrations', 'concentration', 'concentration'),
                           ('biovolumes', 'biovolume', 'biovolume')):
        df = pd.read_csv(SUMS / f'{name}_by_sample.tsv', sep='\t')
        for sid, part in df.groupby('sampleid'):
            got = samples[sid]['props'][key]
            want = {t: None if pd.isna(v) else v for t, v in zip(part.taxonid, part[col])}
            assert got == pytest.approx(want)
    for sid, part in pos.groupby('sample_id'):
        s = samples[sid]
        assert (s['lon'], s['lat']) == (part.longitude.iloc[0], part.latitude.iloc[0])
        assert s['props']['summary_counts'] == dict(zip(part.display_name, part.nbr))
    whole = pd.read_csv(SUMS / 'summary_whole.tsv', sep='\t')
    assert g.record['extra']['whole_counts'] == dict(zip(whole.display_name, whole.nbr))


def test_import_file_type_row_dropped_and_vignettes_linked(mirror):
    g = read_export(mirror, 'import_example/m106_mn01_n1_sml/')
    df = pd.read_csv(IMPORT / 'ecotaxa_m106_mn01_n1_sml.tsv', sep='\t', skiprows=[1])
    occ = {o['props']['catalogNumber']: o for o in kind(g, 'occurrence')}
    assert set(occ) == set(df.object_id)
    for _, row in df.iterrows():
        o = occ[row.object_id]
        assert (o['lon'], o['lat']) == pytest.approx((row.object_lon, row.object_lat))
        assert o['props']['media'] == [f'import_example/m106_mn01_n1_sml/{row.img_file_name}']
        assert (ECO / o['props']['media'][0]).is_file()
    assert occ['m106_mn01_n1_sml_409']['time'] == '2014-04-20T04:20:00Z'   # '420' is 04:20


def test_object_export_files_of_one_export_are_read_together(mirror):
    g = read_export(mirror, 'export/')
    full = pd.read_csv(ECO / 'export/ecotaxa_export_1_20210530_1122.tsv', sep='\t')
    occ = {o['props']['catalogNumber']: o for o in kind(g, 'occurrence')}
    assert set(occ) == set(full.object_id)        # the split exports repeat the same objects
    for _, row in full.iterrows():
        o = occ[row.object_id]
        assert o['props']['references'].endswith(f'/api/object/{row.objid}')
        assert 'media' not in o['props']           # images/... are not in the export folder
    ann = pd.read_csv(ECO / 'export/just_annotations_ref.tsv', sep='\t', skiprows=[1])
    (why,) = g.problems
    assert f'{len(ann)} object(s) without a position' in why
    assert g.record['collection'] == 'ecotaxa-project-1'   # ecotaxa_export_<project>_...
    assert {s['platform'] for s in kind(g, 'sample')} == set(full.sample_id)


def test_export_zip_with_images_keeps_every_vignette_of_an_object(tmp_path):
    """An export zip as EcoTaxa builds it with images (built here: the real export TSV, and a
    real vignette of the import example stored under the img_file_name paths it names)."""
    full = pd.read_csv(ECO / 'export/ecotaxa_export_1_20210530_1122.tsv', sep='\t')
    jpg = (IMPORT / 'm106_mn01_n1_sml_409.jpg').read_bytes()
    with zipfile.ZipFile(tmp_path / 'ecotaxa_export_1_20210530_1122.zip', 'w') as zf:
        zf.write(ECO / 'export/ecotaxa_export_1_20210530_1122.tsv',
                 'ecotaxa_export_1_20210530_1122.tsv')
        for img in full.img_file_name:
            zf.writestr(img, jpg)
    g = read_export(MirrorSource(tmp_path), 'ecotaxa_export_1_20210530_1122.zip')
    got = {o['props']['catalogNumber']: o['props']['vignette'] for o in kind(g, 'occurrence')}
    want = full.groupby('object_id', sort=False).img_file_name.apply(list).to_dict()
    assert got == want and max(len(v) for v in want.values()) == 2


def test_latin1_import_file(tmp_path):
    """A latin-1 import TSV (built here from the real one, one category made non-ASCII)."""
    text = (IMPORT / 'ecotaxa_m106_mn01_n1_sml.tsv').read_text()
    (tmp_path / 'eco').mkdir()
    (tmp_path / 'eco/ecotaxa_latin1.tsv').write_bytes(
        text.replace('Cyclopoida', 'Cyclopoïda').encode('latin-1'))
    g = read_export(MirrorSource(tmp_path / 'eco'), 'ecotaxa_latin1.tsv', {})
    assert 'Cyclopoïda' in {o.get('parameters') for o in g.observations}


def test_unreadable_export_and_broken_row_are_reported_and_harvest_goes_on(tmp_path, index_url):
    root = tmp_path / 'ecotaxa'
    shutil.copytree(ECO, root)
    f = root / 'import_example/m106_mn01_n1_sml/ecotaxa_m106_mn01_n1_sml.tsv'
    lines = f.read_text().splitlines()
    lines[3] = '\t'.join(lines[3].split('\t')[:2])      # an object row cut short
    f.write_text('\n'.join(lines) + '\n')
    (root / 'job_9.zip').write_text('this is not an export')
    eng = store.engine(index_url)
    conn = EcotaxaConnector(OPTIONS)
    rep = harvest_one(eng, conn, MirrorSource(root))
    reasons = {s['granule']: s['reason'] for s in rep['skipped']}
    assert 'ecotaxa_m106_mn01_n1_sml.tsv line 4: 2 fields' in \
        reasons['import_example/m106_mn01_n1_sml/']
    assert 'job_9.zip' in reasons
    assert rep['added'] == 5
    with pytest.raises(GranuleError):
        conn.read(conn.granules(MirrorSource(root))[-1], b'not a tsv\tat all\n1\t2\n')
    with eng.connect() as c:
        n = c.execute(sa.select(sa.func.count()).select_from(store.OBSERVATION).where(
            store.OBSERVATION.c.granule == 'ecotaxa-import_example_m106_mn01_n1_sml')).scalar()
    assert n == 8 - 1 + 1          # one object row broken, plus its sample
    again = harvest_one(eng, EcotaxaConnector(OPTIONS), MirrorSource(root))
    assert again['unchanged'] == 5 and again['added'] == 0


# --- live layout on a loopback server ------------------------------------------------------
def _uvp_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        for p in sorted(UVP.iterdir()):
            zf.writestr(p.name, p.read_bytes())
    return buf.getvalue()


class EcotaxaLive(http.server.BaseHTTPRequestHandler):
    """/ecotaxa/...: the export tree as a web folder with autoindex pages;
    /ecotaxa-api/api/jobs/7/file: the UVP raw export zip of a finished export job."""

    def log_message(self, *args):
        pass

    def _resolve(self):
        path = self.path.split('?')[0]
        if path == '/ecotaxa-api/api/jobs/7/file':
            return _uvp_zip(), 'application/zip'
        if not path.startswith('/ecotaxa/') or '..' in path:
            return None
        target = ECO / path[len('/ecotaxa/'):]
        if path.endswith('/') and target.is_dir():
            links = ''.join(f'<a href="{p.name}{"/" if p.is_dir() else ""}">{p.name}</a>\n'
                            for p in sorted(target.iterdir()))
            return (f'<html><body><a href="../">../</a>\n<a href="?C=M;O=A">Modified</a>\n'
                    f'{links}</body></html>').encode(), 'text/html'
        if target.is_file():
            return target.read_bytes(), 'application/octet-stream'
        return None

    def _answer(self, body):
        found = self._resolve()
        self.send_response(200 if found else 404)
        data = found[0] if found else b''
        self.send_header('Content-Length', str(len(data)))
        if found:
            self.send_header('Content-Type', found[1])
            self.send_header('ETag', f'"{hash(data)}"')
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)


@pytest.fixture(scope='module')
def live():
    with serve(EcotaxaLive) as url:
        yield url


def _obs(eng):
    O = store.OBSERVATION
    with eng.connect() as c:
        return {r.id: r for r in c.execute(sa.select(O).where(O.c.bdi == 'ecotaxa'))}


def test_http_folder_harvest_equals_mirror_harvest(live, tmp_path):
    a = store.engine(f'sqlite:///{tmp_path}/a.sqlite')
    b = store.engine(f'sqlite:///{tmp_path}/b.sqlite')
    ra = harvest_one(a, EcotaxaConnector(OPTIONS), MirrorSource(ECO))
    rb = harvest_one(b, EcotaxaConnector(OPTIONS), HttpSource(live + '/ecotaxa/'))
    assert ra['added'] == rb['added'] == 5 and ra['observations'] == rb['observations']
    oa, ob = _obs(a), _obs(b)
    assert oa.keys() == ob.keys()
    for i, row in oa.items():
        assert (row.lon, row.lat, row.time, row.taxon, row.depth) == \
            (ob[i].lon, ob[i].lat, ob[i].time, ob[i].taxon, ob[i].depth)
    # live, a vignette is linked where the web folder serves it
    i = 'ecotaxa-import_example_m106_mn01_n1_sml-m106_mn01_n1_sml_821'
    url = json.loads(ob[i].props)['associatedMedia']
    assert url == f'{live}/ecotaxa/import_example/m106_mn01_n1_sml/m106_mn01_n1_sml_821.jpg'
    assert requests.get(url, timeout=10).content == \
        (IMPORT / 'm106_mn01_n1_sml_821.jpg').read_bytes()
    assert harvest_one(b, EcotaxaConnector(OPTIONS),
                       HttpSource(live + '/ecotaxa/'))['unchanged'] == 5


def test_http_export_job_zip(live, tmp_path):
    eng = store.engine(f'sqlite:///{tmp_path}/z.sqlite')
    conn = EcotaxaConnector({'exports': ['api/jobs/7/file', 'api/jobs/8/file']})
    rep = harvest_one(eng, conn, HttpSource(live + '/ecotaxa-api/'))
    assert rep['added'] == 1
    assert [s['granule'] for s in rep['skipped']] == ['api/jobs/8/file']
    zoo = pd.read_csv(ZOO, sep='\t')
    occ = [r for r in _obs(eng).values() if r.kind == 'occurrence']
    assert sorted(json.loads(r.props)['catalogNumber'] for r in occ) == sorted(zoo.orig_id)
    with eng.connect() as c:
        (coll,) = c.execute(sa.select(store.COLLECTION.c.id, store.COLLECTION.c.url)).all()
    assert coll == ('ecotaxa-project-2551', 'https://ecotaxa.obs-vlfr.fr/prj/2551')


# --- through a real server -----------------------------------------------------------------
@pytest.fixture(scope='module')
def eco_server(tmp_path_factory, bdi_data):
    home = tmp_path_factory.mktemp('eco') / 'home'
    home.mkdir(parents=True)
    report = run_harvest(home, 'ecotaxa', '--mirror', str(bdi_data))
    with start_server(home, extra_env={'VRE_BDI_MIRROR': str(bdi_data)}) as server:
        server.harvest_report = report
        yield server


def test_served_occurrences_against_pandas(eco_server):
    rep = eco_server.harvest_report['ecotaxa']
    assert rep['added'] == 5 and not rep.get('error')
    full = pd.read_csv(ECO / 'export/ecotaxa_export_1_20210530_1122.tsv', sep='\t')
    n = 480 + 1 + full.object_id.nunique() + len(pd.read_csv(IMPORT / 'ecotaxa_m106_mn01_n1_sml.tsv',
                                              sep='\t', skiprows=[1]))
    got = get(eco_server, '/collections/ecotaxa-occurrences/items', limit=1)
    assert got['numberMatched'] == n
    meta = pd.read_csv(META, sep='\t')
    cast = meta[meta.profileid == 'bats361_ctd5'].iloc[0]
    zoo = pd.read_csv(ZOO, sep='\t')
    cope = get(eco_server, '/collections/ecotaxa-occurrences/items', scientificName='Copepoda',
               bbox='-65,31,-63,33', datetime='2019-07-14', limit=100)
    assert cope['numberMatched'] == zoo.taxo_hierarchy.str.endswith('>Copepoda').sum()
    for f in cope['features']:
        assert f['geometry']['coordinates'] == [cast.longitude, cast.latitude]
        assert f['properties']['eventDate'] == iso(cast.sampledate)
    row = zoo.iloc[42]
    f = get(eco_server, f'/collections/ecotaxa-occurrences/items/'
                        f'ecotaxa-uvp5_bats361_export-{row.orig_id}')
    assert f['properties']['minimumDepthInMeters'] == row.depth_including_offset
    assert f['properties']['category'] == row['name']
    dubious = get(eco_server, '/collections/ecotaxa-occurrences/items',
                  identificationVerificationStatus='predicted', limit=1)
    assert dubious['numberMatched'] == full.object_id.nunique() + 8   # QA exports: predicted


def test_vignette_served_by_our_route(eco_server):
    f = get(eco_server, '/collections/ecotaxa-occurrences/items/'
                        'ecotaxa-import_example_m106_mn01_n1_sml-m106_mn01_n1_sml_851')
    url = f['properties']['associatedMedia']
    assert url == f'{eco_server.url}/ecotaxa/media/import_example/m106_mn01_n1_sml/' \
                  'm106_mn01_n1_sml_851.jpg'
    assert {'rel': 'preview', 'href': url} .items() <= f['links'][0].items()
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.headers['Content-Type'] == 'image/jpeg'
    assert r.content == (IMPORT / 'm106_mn01_n1_sml_851.jpg').read_bytes()


def test_served_samples_and_records(eco_server):
    meta = pd.read_csv(META, sep='\t')
    casts = get(eco_server, '/collections/ecotaxa-samples/items', instrument='uvp5', limit=100)
    assert casts['numberMatched'] == len(meta)
    pos = {f['properties']['sample']: f['geometry']['coordinates'] for f in casts['features']}
    assert pos == {r.profileid: [r.longitude, r.latitude] for r in meta.itertuples()}
    day = get(eco_server, '/collections/ecotaxa-samples/items', datetime='2019-07-16',
              limit=100)
    assert day['numberMatched'] == (pd.to_datetime(meta.sampledate).dt.date.astype(str)
                                    == '2019-07-16').sum()
    conc = pd.read_csv(SUMS / 'concentrations_by_sample.tsv', sep='\t')
    s = get(eco_server, '/collections/ecotaxa-samples/items/'
                        'ecotaxa-export_summaries-sample-m106_mn01_n2_sml')
    part = conc[conc.sampleid == 'm106_mn01_n2_sml']
    assert s['properties']['concentration'] == pytest.approx(dict(zip(part.taxonid,
                                                                      part.concentration)))
    recs = get(eco_server, '/collections/ecotaxa-granules/items', limit=20)
    by_id = {r['id']: r for r in recs['features']}
    uvp = by_id['ecotaxa-uvp5_bats361_export']['properties']
    assert uvp['objects'] == 480 and uvp['instruments'] == ['uvp5']
    assert sorted(uvp['samples']) == sorted(meta.profileid)
    assert by_id['ecotaxa-uvp5_bats361_export']['time']['interval'] == \
        [iso(meta.sampledate.min()), iso(meta.sampledate.max())]
    l1 = get(eco_server, '/collections/bdi-collections/items', q='EcoTaxa', limit=50)
    assert {'ecotaxa-project-2551', 'ecotaxa-project-818', 'ecotaxa-project-1'} <= \
        {r['id'] for r in l1['features']}


@pytest.mark.parametrize('path,params,status', [
    ('/collections/ecotaxa-occurrences/items', {'bbox': '1,2'}, 400),
    ('/collections/ecotaxa-occurrences/items', {'datetime': 'not-a-date'}, 400),
    ('/collections/ecotaxa-samples/items', {'sortby': 'nosuch'}, 400),
    ('/ecotaxa/media/import_example/m106_mn01_n1_sml/ecotaxa_m106_mn01_n1_sml.tsv', {}, 400),
    ('/ecotaxa/media/import_example/nosuch.jpg', {}, 404),
    ('/ecotaxa/media/..%2F..%2Fetc/passwd.jpg', {}, 404)])
def test_bad_input_is_a_clear_4xx(eco_server, path, params, status):
    r = requests.get(f'{eco_server.url}{path}', params=params, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers['Content-Type'].startswith('application/problem+json')
    assert r.json()['detail']


def test_gdal_and_owslib_read_the_occurrences(eco_server):
    from owslib.ogcapi.features import Features
    n = get(eco_server, '/collections/ecotaxa-occurrences/items', limit=1)['numberMatched']
    feats = Features(eco_server.url).collection_items('ecotaxa-occurrences', limit=1000)
    assert len(feats['features']) == n
    assert {f['properties']['scientificName'] for f in feats['features']
            if f['properties'].get('scientificName')} >= {'Copepoda', 'Trichodesmium'}
    ogrinfo = shutil.which('ogrinfo')
    if ogrinfo is None:
        pytest.skip('gdal-bin not installed (apt-get install gdal-bin)')
    for coll in ('ecotaxa-occurrences', 'ecotaxa-samples'):
        count = get(eco_server, f'/collections/{coll}/items', limit=1)['numberMatched']
        out = subprocess.run([ogrinfo, '-ro', '-so', '-al', f'OAPIF:{eco_server.url}/collections/{coll}'],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f'Feature Count: {count}' in out.stdout
    out = subprocess.run([ogrinfo, '-ro', '-al', '-where', "scientificName = 'Copepoda'",
                          f'OAPIF:{eco_server.url}/collections/ecotaxa-occurrences'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('OGRFeature(') == 1 + 8      # DOI export + UVP Copepoda


