"""EMODnet Chemistry and SeaDataNet products (providers/emodnet_chemistry.py): Sextant ISO 19139
product records harvested as level-1 collections and level-2 granules, matched to their DIVAnd
NetCDF in the mirror, which is served as a coverage (GDAL netCDF driver and OWSLib read it);
records read by OWSLib (OGC API - Records) and compared with lxml reading the XML directly.

What is real: the EMODnet Chemistry record (../shared/data/bdi/emodnet-chemistry/
iso19139_product_Water_body_ammonium_combined_6years.xml). What is built here, since no real
sample exists offline (see that folder's SOURCE.md): the DIVAnd NetCDF files
(test_grid_edr.divand_product), and the SeaDataNet product record, made from the real
Sextant record (SeaDataNet products use the same Sextant ISO 19139 profile) with its own
identifier, title, abstract, parameter keyword and online resources; its download URL names a
file that is not in the mirror, so it is matched to its NetCDF by the `product_id` attribute.

Live paths (loopback server): the Sextant CSW at /geonetwork/srv/eng/csw answering
GetRecordById (outputSchema ISO 19139) with the record wrapped in csw:GetRecordByIdResponse,
and an empty response for an unknown id, as GeoNetwork does.
"""
from __future__ import annotations

import http.server
import json
import shutil
import subprocess
from urllib.parse import parse_qs, urljoin, urlsplit

import numpy as np
import pytest
import requests
import xarray as xr
import yaml
from lxml import etree

from bdi_samples import BDI_DATA, run_harvest
from serverkit import REPO, serve, start_server
from test_grid_edr import AMM, CHEM_COLL, SAL, SDN_COLL, divand_product

CHEM_XML = BDI_DATA / 'emodnet-chemistry/iso19139_product_Water_body_ammonium_combined_6years.xml'
CHEM_ID = 'e61d12cd-837f-49ff-a0e1-3a694ab84bc5'
SDN_ID = '0c1a8c1e-4a3d-4a43-9c3e-sdn-salinity-test'
CHEM_NC, SDN_NC = 'Water_body_ammonium.combined.nc', 'Water_body_salinity.4Danl.nc'
NS = {'gmd': 'http://www.isotc211.org/2005/gmd', 'gco': 'http://www.isotc211.org/2005/gco',
      'gml': 'http://www.opengis.net/gml', 'gmx': 'http://www.isotc211.org/2005/gmx',
      'xlink': 'http://www.w3.org/1999/xlink'}
CSW = 'http://www.opengis.net/cat/csw/2.0.2'


def sdn_record() -> bytes:
    """The SeaDataNet product record: the real Sextant record with SeaDataNet content."""
    tree = etree.parse(str(CHEM_XML))
    text = lambda path: tree.find(path, NS)   # noqa: E731
    text('gmd:fileIdentifier/gco:CharacterString').text = SDN_ID
    ident = 'gmd:identificationInfo/gmd:MD_DataIdentification/'
    text(ident + 'gmd:citation/gmd:CI_Citation/gmd:title/gco:CharacterString').text = \
        'SeaDataNet North Sea climatology of Water body salinity (DIVAnd)'
    text(ident + 'gmd:abstract/gco:CharacterString').text = \
        'Seasonal climatology of water body salinity computed with DIVAnd from SeaDataNet data.'
    anchor = tree.find('.//gmx:Anchor[@xlink:href="http://vocab.nerc.ac.uk/collection/P35/'
                       'current/EPC00009/"]', NS)
    anchor.set(f"{{{NS['xlink']}}}href", 'http://vocab.nerc.ac.uk/collection/P35/current/EPC00001/')
    anchor.text = 'Water body salinity'
    live = 'https://thredds.example.org/SeaDataNet/NorthSea/SDN_NorthSea_salinity_v2.nc'
    for url in tree.iterfind('.//gmd:distributionInfo//gmd:URL', NS):
        if url.text.endswith('.nc'):
            url.text = live
        elif url.text.endswith('.nc.html'):
            url.text = live + '.html'
    for name in tree.iterfind('.//gmd:distributionInfo//gmd:name/gco:CharacterString', NS):
        if '*' in (name.text or ''):
            name.text = 'NorthSea/SDN_NorthSea_salinity_v2.nc*Water_body_salinity_L2'
    return etree.tostring(tree, xml_declaration=True, encoding='UTF-8')


@pytest.fixture(scope='module')
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp('products')
    (root / 'emodnet-chemistry').mkdir()
    (root / 'seadatanet-products').mkdir()
    shutil.copy(CHEM_XML, root / 'emodnet-chemistry' / CHEM_XML.name)
    divand_product(root / 'emodnet-chemistry' / CHEM_NC, AMM, 'umol/l')
    (root / 'seadatanet-products/iso19139_product_sdn_salinity.xml').write_bytes(sdn_record())
    (root / 'seadatanet-products/broken.xml').write_text('<gmd:MD_Metadata')
    divand_product(root / 'seadatanet-products' / SDN_NC, SAL, '1e-3', product_id=SDN_ID)
    return root


@pytest.fixture(scope='module')
def server(tmp_path_factory, mirror):
    home = tmp_path_factory.mktemp('chem') / 'home'
    home.mkdir()
    env = {'VRE_BDI_MIRROR': str(mirror)}
    report = run_harvest(home, '--mirror', str(mirror), extra_env=env)
    with start_server(home, extra_env=env) as srv:
        srv.harvest_report = report
        yield srv


def items(server, coll, **params) -> dict:
    r = requests.get(f'{server.url}/collections/{coll}/items',
                     params={'f': 'json', 'limit': 100, **params}, timeout=60)
    assert r.status_code == 200, r.text
    return {f['id']: f for f in r.json()['features']}


def iso_facts(data: bytes) -> dict:
    """What the record says, read with lxml (independently of OWSLib and the connector)."""
    root = etree.fromstring(data)
    ident = root.find('gmd:identificationInfo/gmd:MD_DataIdentification', NS)
    box = ident.find('.//gmd:EX_GeographicBoundingBox', NS)
    num = lambda k: float(box.findtext(f'gmd:{k}/gco:Decimal', namespaces=NS))   # noqa: E731
    parties = root.findall('gmd:contact/gmd:CI_ResponsibleParty', NS) + \
        ident.findall('gmd:pointOfContact/gmd:CI_ResponsibleParty', NS)
    return {
        'id': root.findtext('gmd:fileIdentifier/gco:CharacterString', namespaces=NS),
        'title': ident.findtext('.//gmd:title/gco:CharacterString', namespaces=NS),
        'bbox': [num('westBoundLongitude'), num('southBoundLatitude'),
                 num('eastBoundLongitude'), num('northBoundLatitude')],
        'begin': ident.findtext('.//gml:beginPosition', namespaces=NS),
        'end': ident.findtext('.//gml:endPosition', namespaces=NS),
        'online': [u.text for u in root.iterfind('gmd:distributionInfo//gmd:onLine//gmd:URL',
                                                 NS)],
        'protocols': [p.text for p in root.iterfind(
            'gmd:distributionInfo//gmd:onLine//gmd:protocol/gco:CharacterString', NS)],
        'organisations': [p.findtext('gmd:organisationName/gco:CharacterString',
                                     namespaces=NS) for p in parties],
        'keywords': [k.text for k in ident.iterfind(
            'gmd:descriptiveKeywords//gmd:keyword/*', NS) if (k.text or '').strip()],
        'other': [c.text for c in ident.iterfind('.//gmd:otherConstraints/*', NS)],
    }


def test_harvest_report(server):
    rep = server.harvest_report
    assert rep['emodnet-chemistry']['added'] == 1 and not rep['emodnet-chemistry']['skipped']
    sdn = rep['seadatanet-products']
    assert sdn['added'] == 1
    assert [s['granule'] for s in sdn['skipped']] == ['broken.xml']


@pytest.mark.parametrize('bdi,xml,uuid', [
    ('emodnet-chemistry', CHEM_XML, CHEM_ID), ('seadatanet-products', None, SDN_ID)])
def test_granule_records_read_by_owslib_match_the_iso_record(server, bdi, xml, uuid):
    from owslib.ogcapi.records import Records
    facts = iso_facts(xml.read_bytes() if xml else sdn_record())
    assert facts['id'] == uuid
    api = Records(server.url)
    got = api.collection_items(f'{bdi}-granules', limit=50)
    (rec,) = [f for f in got['features'] if f['id'] == f'{bdi}-{uuid}']
    p = rec['properties']
    assert p['title'] == facts['title'] and p['identifier'] == uuid
    ring = np.array(rec['geometry']['coordinates'][0])
    assert [*ring.min(axis=0), *ring.max(axis=0)] == facts['bbox']
    assert rec['time']['interval'] == [f"{facts['begin']}T00:00:00Z", f"{facts['end']}T23:59:59Z"]
    assert [c['organisation'] for c in p['contacts']] == facts['organisations']
    assert len(p['contacts']) > 50                  # the real record's originators are kept
    assert p['keywords'] == facts['keywords']
    assert all(o in p['license'] for o in facts['other'])
    hrefs = {lk['href']: lk for lk in rec['links']}
    assert set(facts['online']) <= set(hrefs)        # every online resource is a link
    wms = [lk for lk in rec['links'] if lk.get('protocol') == 'OGC:WMS']
    assert 'OGC:WMS' in facts['protocols'] and len(wms) == 1 and wms[0]['rel'] == 'service'
    netcdf = [u for u in facts['online'] if u.endswith('.nc')]
    assert [hrefs[u]['rel'] for u in netcdf] == ['enclosure']
    assert hrefs[netcdf[0]]['type'] == 'application/x-netcdf'
    iso = next(lk for lk in rec['links'] if lk['rel'] == 'describedby')
    assert 'request=GetRecordById' in iso['href'] and iso['href'].endswith(f'id={uuid}')


@pytest.mark.parametrize('bdi,uuid,coll,nc,var', [
    ('emodnet-chemistry', CHEM_ID, CHEM_COLL, CHEM_NC, AMM),        # matched by file name
    ('seadatanet-products', SDN_ID, SDN_COLL, SDN_NC, SAL)])        # matched by product_id
def test_product_granule_links_its_netcdf_and_the_coverage(server, mirror, bdi, uuid, coll,
                                                            nc, var):
    item_url = f'{server.url}/collections/{bdi}-granules/items/{bdi}-{uuid}'
    rec = requests.get(item_url, params={'f': 'json'}, timeout=30).json()
    p = rec['properties']
    assert p['file'] == nc and p['coverage'] == coll
    assert p['data'] == str(mirror / bdi / nc)
    assert var in p['parameters']
    cov = next(lk for lk in rec['links']
               if lk['rel'] == 'http://www.opengis.net/def/rel/ogc/1.0/coverage')
    r = requests.get(urljoin(item_url, cov['href']), params={'f': 'json'}, timeout=30)
    assert r.status_code == 200 and r.json()['type'] == 'Coverage' and var in r.json()['ranges']


def test_products_are_level1_collections_next_to_their_coverage(server):
    found = items(server, 'bdi-collections', q='ammonium')
    prod = found[f'emodnet-chemistry-product-{CHEM_ID}']['properties']
    assert prod['type'] == 'product' and prod['granules'] == 1
    assert 'Water body ammonium' in prod['keywords']
    assert found[CHEM_COLL]['properties']['available'] is True
    sal = items(server, 'bdi-collections', q='salinity', bbox='-4,50.5,-3,51')
    assert {f'seadatanet-products-product-{SDN_ID}', SDN_COLL} <= set(sal)
    assert not set(items(server, 'bdi-collections', q='ammonium', datetime='2015-01-01/..'))


def test_bdis_show_one_coherent_row_per_product_bdi(server):
    rows = requests.get(f'{server.url}/bdis', params={'f': 'json'}, timeout=30).json()['bdis']
    for name, coll in (('emodnet-chemistry', CHEM_COLL), ('seadatanet-products', SDN_COLL)):
        (row,) = [r for r in rows if r['name'] == name]
        ids = {c['id'] for c in row['collections']}
        assert coll in ids and any(i.startswith(f'{name}-product-') for i in ids)
        assert row['granules'] == 1 and row['last_harvest']
        health = row['health']       # both files are in the mirror; broken.xml was skipped
        assert health['reachable'] is True
        assert health['skipped'] == (name == 'seadatanet-products')
        assert (health['last_error'] is None) is (name == 'emodnet-chemistry')


def test_coverage_netcdf_read_by_gdal(server, mirror, tmp_path):
    import rasterio
    r = requests.get(f'{server.url}/collections/{SDN_COLL}/coverage',
                     params={'f': 'netcdf', 'bbox': '-4.5,50.2,-3,51.2'}, timeout=60)
    assert r.status_code == 200, r.text
    out = tmp_path / 'sal.nc'
    out.write_bytes(r.content)
    info = json.loads(subprocess.run(['gdalinfo', '-json', f'NETCDF:{out}:{SAL}_L1'],
                                     capture_output=True, text=True, check=True).stdout)
    assert info['driverShortName'] == 'netCDF'
    with xr.open_dataset(mirror / 'seadatanet-products' / SDN_NC) as ds:
        want = ds[f'{SAL}_L1'].sel(lon=slice(-4.5, -3), lat=slice(50.2, 51.2))
        assert info['size'] == [want.sizes['lon'], want.sizes['lat']]
        assert len(info['bands']) == want.sizes['time'] * want.sizes['depth']
        with rasterio.open(f'NETCDF:{out}:{SAL}_L1') as src:
            band = src.read(1, masked=True)          # band 1: first time, first depth
            first = want.isel(time=0, depth=0)
            for lon, lat in ((-4.4, 50.3), (-3.1, 51.1), (-3.6, 50.7)):
                row, col = src.index(lon, lat)
                cell = first.sel(lon=lon, lat=lat, method='nearest')
                if np.isnan(cell):
                    assert band.mask[row, col]
                else:
                    assert float(band[row, col]) == float(cell)


def test_coverage_read_by_owslib(server, mirror):
    from owslib.ogcapi.coverages import Coverages
    api = Coverages(server.url)
    assert {CHEM_COLL, SDN_COLL} <= set(api.coverages())
    cj = json.load(api.coverage(CHEM_COLL, subset={'lat': (50.5, 51), 'lon': (-4, -3.5)},
                                properties=[f'{AMM}_L2']))
    rng = cj['ranges'][f'{AMM}_L2']
    got = np.array([np.nan if v is None else v for v in rng['values']]).reshape(rng['shape'])
    with xr.open_dataset(mirror / 'emodnet-chemistry' / CHEM_NC) as ds:
        want = ds[f'{AMM}_L2'].sel(lat=slice(50.5, 51), lon=slice(-4, -3.5))
        np.testing.assert_array_equal(got, want.values)


# --- the live paths: Sextant CSW GetRecordById ----------------------------------------------
class SextantHandler(http.server.BaseHTTPRequestHandler):
    records: dict[str, bytes] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k.lower(): v[0] for k, v in parse_qs(url.query).items()}
        if url.path != '/geonetwork/srv/eng/csw' or q.get('request') != 'GetRecordById':
            self.send_response(404)
            self.end_headers()
            return
        body = self.records.get(q.get('id'), b'')
        if body:
            body = body.split(b'?>', 1)[1] if body.startswith(b'<?xml') else body
        data = (f'<?xml version="1.0" encoding="UTF-8"?><csw:GetRecordByIdResponse '
                f'xmlns:csw="{CSW}">').encode() + body + b'</csw:GetRecordByIdResponse>'
        self.send_response(200)
        self.send_header('Content-Type', 'application/xml')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope='module')
def sextant():
    SextantHandler.records = {CHEM_ID: CHEM_XML.read_bytes(), SDN_ID: sdn_record()}
    with serve(SextantHandler) as url:
        yield f'{url}/geonetwork/srv/eng/'


def test_harvest_from_the_live_csw_paths_equals_the_mirror(tmp_path, sextant, mirror, server):
    config = yaml.safe_load((REPO / 'pygeoapi-config.yml').read_text())
    config['vre']['bdis']['seadatanet-products']['records'] = [SDN_ID, 'no-such-record']
    (tmp_path / 'config.yml').write_text(yaml.safe_dump(config))
    home = tmp_path / 'home'
    env = {'VRE_BDI_MIRROR': str(mirror), 'VRE_CONFIG': str(tmp_path / 'config.yml')}
    rep = run_harvest(home, 'emodnet-chemistry', 'seadatanet-products',
                      '--url', f'emodnet-chemistry={sextant}',
                      '--url', f'seadatanet-products={sextant}', extra_env=env)
    assert rep['emodnet-chemistry']['added'] == 1
    assert rep['seadatanet-products']['added'] == 1
    assert [s['granule'] for s in rep['seadatanet-products']['skipped']] == [
        'csw?service=CSW&version=2.0.2&request=GetRecordById&elementSetName=full'
        '&outputSchema=http://www.isotc211.org/2005/gmd&id=no-such-record']
    again = run_harvest(home, 'emodnet-chemistry', '--url', f'emodnet-chemistry={sextant}',
                        extra_env=env)
    assert again['emodnet-chemistry']['unchanged'] == 1
    with start_server(home, extra_env=env) as live:
        for bdi in ('emodnet-chemistry', 'seadatanet-products'):
            a, b = items(live, f'{bdi}-granules'), items(server, f'{bdi}-granules')
            assert set(a) == set(b)
            for k in a:
                strip = lambda f: {**f['properties'], 'checksum': None, 'size': None}  # noqa
                assert strip(a[k]) == strip(b[k]) and a[k]['links'] == b[k]['links']
