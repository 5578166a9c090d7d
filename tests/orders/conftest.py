"""Fixtures of the order tests: the loopback stand-in of the BDIs (503 on demand) and a real
`vre serve` whose index was harvested from it over HTTP. Helpers live in orderkit.py."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from serverkit import serve


def _load_kit():
    spec = importlib.util.spec_from_file_location('orderkit', Path(__file__).with_name('orderkit.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules['orderkit'] = module
    spec.loader.exec_module(module)
    return module


kit = _load_kit()
StandIn = kit.StandIn


@pytest.fixture(scope='session')
def stand_in(bdi_data):
    StandIn.obis = kit._PROVIDERS._obis_manifest()
    with serve(StandIn) as url:
        yield url


@pytest.fixture
def bdi_down():
    """bdi_down('/seadatanet/') makes that BDI answer 503 until the test ends."""
    yield StandIn.failing.add
    StandIn.failing.clear()


@pytest.fixture(scope='module')
def order_server(tmp_path_factory, stand_in):
    """A real server whose index was harvested over HTTP from the stand-in."""
    root = tmp_path_factory.mktemp('orders')
    home = root / 'home'
    home.mkdir()
    config = kit.write_config(root / 'config.yml', stand_in)
    report = kit.harvest(home, config)
    assert all(report[b]['added'] > 0 for b in ('argo', 'obis', 'seadatanet', 'eurobis')), report
    with kit.start_server(home, config_path=config) as server:
        server.stand_in = stand_in
        yield server


