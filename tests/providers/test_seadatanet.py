"""SeaDataNet connector and harvest: NetCDF/ODV/CDI values against netCDF4, csv and xml.dom
reading the samples, Gregorian times, mirror vs live HTTP, increments, unreadable granules."""
from __future__ import annotations

import csv
import shutil
import xml.dom.minidom
from datetime import date, datetime, timedelta

import netCDF4
import numpy as np
import pytest
import sqlalchemy as sa

from providers import store
from providers.base import GranuleError, HttpSource, MirrorSource
from providers.harvest import harvest_one
from providers.seadatanet import SeaDataNetConnector, read_cdi, read_netcdf, read_odv

from bdi_samples import BDI_DATA

SDN = BDI_DATA / 'seadatanet'
NC = sorted((SDN / 'netcdf').glob('*.nc'))


def gregorian(cjd: float) -> datetime:
    """Chronological Julian day -> Gregorian, by day ordinals (0001-01-01 is CJD 1721426)."""
    day = int(np.floor(cjd))
    return datetime.combine(date.fromordinal(day - 1721425), datetime.min.time()) + \
        timedelta(seconds=round((cjd - day) * 86400))


def odv_rows(path):
    lines = [ln for ln in path.read_text(encoding='utf-8').splitlines()
             if ln.strip('\t') and not ln.startswith('//')]
    return list(csv.reader(lines, delimiter='\t'))


def test_ctd_times_are_gregorian_utc_inside_the_cruise():
    f = SDN / 'netcdf/netCDF_vertical_profiles_ctd.nc'
    got = read_netcdf(f.read_bytes())
    with netCDF4.Dataset(f) as ds:
        cjd = ds['TIME'][:].astype('f8')
        start = ds['SDN_CRUISE'].startDate[:10]
        end = ds['SDN_CRUISE'].endDate[:10]
        julian = netCDF4.num2date(cjd, ds['TIME'].units, 'julian')
    for p, v, jul in zip(got, cjd, julian):
        want = gregorian(v)
        assert p['time'] == want.strftime('%Y-%m-%dT%H:%M:%SZ')
        assert start <= p['time'][:10] <= end          # the Julian reading is before the cruise
        assert jul.strftime('%Y-%m-%d') < start
        assert (want.date() - date(jul.year, jul.month, jul.day)).days == 13


@pytest.mark.parametrize('path', NC, ids=lambda p: p.stem)
def test_netcdf_instances_read_as_netcdf4_reads_them(path):
    got = read_netcdf(path.read_bytes())
    with netCDF4.Dataset(path) as ds:
        assert len(got) == ds.dimensions['INSTANCE'].size
        assert {p['featureType'] for p in got} == {ds.featureType}
        for p in got:
            i = p['index']
            assert p['longitude'] == pytest.approx(float(ds['LONGITUDE'][i]))
            assert p['latitude'] == pytest.approx(float(ds['LATITUDE'][i]))
            assert p['local_cdi_id'] == str(netCDF4.chartostring(ds['SDN_LOCAL_CDI_ID'][i])).strip()
            assert p['position_qc'] == chr(int(ds['POSITION_SEADATANET_QC'][i]))
            for name in p['parameters'] + ([p['axis_z']] if p['axis_z'] else []):
                raw = np.ma.filled(ds[name][i].astype('f8'), np.nan)
                vals = np.array([np.nan if v is None else v for v in p['levels'][name]])
                n = len(vals)
                np.testing.assert_allclose(vals, raw[:n], rtol=1e-6, equal_nan=True)
                assert np.all(np.isnan(raw[n:]))
                flags = np.ma.filled(ds[name + '_SEADATANET_QC'][i], 57)[:n]
                assert p['levels'][name + '_SEADATANET_QC'] == ''.join(chr(c) for c in flags)


def test_timeseries_times_and_a_value_at_a_time():
    f = SDN / 'netcdf/netCDF_timeseries_tidegauge.nc'
    (ts,) = read_netcdf(f.read_bytes())
    with netCDF4.Dataset(f) as ds:
        cjd = np.ma.filled(ds['TIME'][0].astype('f8'), np.nan)
        k = 4321
        assert ts['levels']['TIME'][k] == gregorian(cjd[k]).strftime('%Y-%m-%dT%H:%M:%SZ')
        assert ts['levels']['ASLVZZ01'][k] == pytest.approx(float(ds['ASLVZZ01'][0, k]))
        assert ts['depth'] == pytest.approx(float(ds['DEPTH'][0]))
    assert ts['axis_t'] == 'TIME' and ts['time'] == ts['levels']['TIME'][0]


def test_odv_stations_values_and_flags_as_csv_reads_them():
    f = SDN / 'odv/sample_ODV_aggregated.txt'
    rows = odv_rows(f)
    head, body = rows[0], rows[1:]
    info, stations = read_odv(f.read_bytes())
    starts = [r for r in body if r[0]]
    assert len(stations) == len(starts) == 2
    col = head.index('ITS-90 water temperature [degrees C]')
    dcol = head.index('Depth [m]')
    for st, start in zip(stations, starts):
        assert st['longitude'] == float(start[head.index('Longitude [degrees_east]')])
        assert st['time'].startswith(start[3][:19])
    first = body[:body.index(starts[1])]
    temps = [float(r[col]) if r[col] else None for r in first]
    assert stations[0]['levels']['ITS_90_water_temperature'] == temps
    assert stations[0]['levels']['Depth'] == [float(r[dcol]) for r in first]
    assert stations[0]['levels']['ITS_90_water_temperature_SEADATANET_QC'] == \
        ''.join(r[col + 1] for r in first)


def test_odv_p01_mapping_and_timeseries():
    _, (st,) = read_odv((SDN / 'odv/sample_ODV.txt').read_bytes())
    assert 'ODSDM021' in st['levels'] and 'ADEPZZ01' in st['levels']   # header mapping
    info, series = read_odv((SDN / 'odv/time_series_small.txt').read_bytes())
    rows = odv_rows(SDN / 'odv/time_series_small.txt')
    tcol = rows[0].index('time_ISO8601')
    assert info['data_type'] == 'TimeSeries'
    assert sum(len(s['levels']['time_ISO8601']) for s in series) == len(rows) - 1
    assert series[1]['levels']['time_ISO8601'][-1] == rows[-1][tcol] + 'Z'


def test_cdi_record_fields_as_the_xml_says():
    f = SDN / 'cdi_metadata/cdi_iso19139_1022-DS02-4_aggregated_record.xml'
    cdi = read_cdi(f.read_bytes())
    dom = xml.dom.minidom.parse(str(f))

    def first(tag):
        return dom.getElementsByTagName(tag)[0].getElementsByTagName('gco:Decimal')[0] \
            .firstChild.data

    assert cdi['boxes'] == [[float(first('gmd:westBoundLongitude')),
                             float(first('gmd:southBoundLatitude')),
                             float(first('gmd:eastBoundLongitude')),
                             float(first('gmd:northBoundLatitude'))]]
    assert cdi['begin'] == dom.getElementsByTagName('gml:beginPosition')[0].firstChild.data
    assert cdi['parameters'] == [e.getAttribute('codeListValue') for e in
                                 dom.getElementsByTagName('sdn:SDN_ParameterDiscoveryCode')]
    assert any('SDN:L08::LS' in lic for lic in cdi['licences'])
    assert cdi['links'][0]['href'] == dom.getElementsByTagName('gmd:URL')[-1].firstChild.data


@pytest.mark.parametrize('reader,data', [(read_netcdf, b'CDF\x01 truncated'),
                                         (read_odv, b'just some text\n'),
                                         (read_cdi, b'<cdi>'),
                                         (read_cdi, b'<a/>')])
def test_unreadable_granules_are_clear_errors(reader, data):
    with pytest.raises(GranuleError):
        reader(data)


def _rows(url):
    O = store.OBSERVATION
    with store.engine(url).connect() as conn:
        return conn.execute(sa.select(O.c.id, O.c.time, O.c.lon, O.c.lat, O.c.levels)
                            .where(O.c.bdi == 'seadatanet').order_by(O.c.id)).all()


def test_mirror_and_live_http_harvests_agree(live_bdis, tmp_path):
    a, b = f'sqlite:///{tmp_path}/a.sqlite', f'sqlite:///{tmp_path}/b.sqlite'
    ra = harvest_one(store.engine(a), SeaDataNetConnector(), MirrorSource(SDN))
    rb = harvest_one(store.engine(b), SeaDataNetConnector(),
                     HttpSource(live_bdis + '/seadatanet/'))
    listing = xml.dom.minidom.parse(str(SDN / 'cdi_metadata/cdi_aggregation_listing_cdiGroup.xml'))
    listed = len(listing.getElementsByTagName('cdiUrl'))
    cdi_files = len(list((SDN / 'cdi_metadata').glob('cdi_iso19139_*.xml')))
    data_files = len(NC) + len(list((SDN / 'odv').glob('*.txt')))
    assert ra['added'] == rb['added'] == cdi_files + data_files
    missing = listed - 1   # only one listed record is on the partial mirror
    assert len(ra['skipped']) == len(rb['skipped']) == missing
    assert all(s['reason'] == 'not found at the source' for s in rb['skipped'])
    assert _rows(a) == _rows(b) and len(_rows(a)) == ra['observations']
    again = harvest_one(store.engine(b), SeaDataNetConnector(),
                        HttpSource(live_bdis + '/seadatanet/'))
    assert (again['added'], again['updated'], again['unchanged']) == (0, 0, rb['added'])


def test_incremental_harvest_and_corrupt_files(tmp_path, index_url):
    mirror = tmp_path / 'seadatanet'
    shutil.copytree(SDN / 'netcdf', mirror / 'netcdf')
    shutil.copytree(SDN / 'odv', mirror / 'odv')
    eng = store.engine(index_url)
    first = harvest_one(eng, SeaDataNetConnector(), MirrorSource(mirror))
    assert first['added'] == len(NC) + 3 and first['skipped'] == [
        {'granule': 'cdi_metadata/cdi_aggregation_listing_cdiGroup.xml',
         'reason': 'CDI listing not found'}]
    second = harvest_one(eng, SeaDataNetConnector(), MirrorSource(mirror))
    assert (second['added'], second['updated'], second['unchanged']) == (0, 0, first['added'])
    (mirror / 'netcdf/netCDF_vertical_profiles_ctd.nc').write_bytes(b'CDF\x01 broken')
    (mirror / 'odv/broken.txt').write_text('not an ODV file\n')
    shutil.copy(mirror / 'odv/time_series_small.txt', mirror / 'odv/sample_ODV.txt')
    third = harvest_one(eng, SeaDataNetConnector(), MirrorSource(mirror))
    reasons = {s['granule']: s['reason'] for s in third['skipped']}
    assert 'not a readable NetCDF' in reasons['netcdf/netCDF_vertical_profiles_ctd.nc']
    assert 'not an ODV spreadsheet' in reasons['odv/broken.txt']
    assert third['updated'] == 1 and third['unchanged'] == first['added'] - 2
    with eng.connect() as conn:
        kinds = conn.execute(sa.select(store.OBSERVATION.c.kind).where(
            store.OBSERVATION.c.granule == 'sdn-sample_ODV')).scalars().all()
    assert kinds == ['timeSeries', 'timeSeries']
