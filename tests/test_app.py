"""The app as a whole: one server, errors as problem+json, config errors, first start."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests
import yaml

from serverkit import REPO, VRE


def test_errors_are_problem_json_everywhere(vre_server):
    for method, path, status in (('GET', '/collections/no-such-collection', 404),
                                 ('GET', '/no/such/route', 404),
                                 ('PUT', '/processes', 405),
                                 ('GET', '/jobs?limit=-1', 400)):
        r = requests.request(method, vre_server.url + path)
        assert r.status_code == status, path
        assert r.headers['Content-Type'] == 'application/problem+json', path
        body = r.json()
        assert body['status'] == status and body['detail'] and 'Traceback' not in r.text


def test_html_and_json_for_the_landing_page(vre_server):
    html = requests.get(vre_server.url + '/', headers={'Accept': 'text/html'})
    assert html.status_code == 200 and '<html' in html.text.lower()
    doc = requests.get(vre_server.url + '/?f=json').json()
    rels = {link['rel'] for link in doc['links']}
    assert {'service-desc', 'conformance'} <= rels


def _run_vre(args, home: Path, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(('VRE_', 'PYGEOAPI_'))}
    full.update(VRE_HOME=str(home), **env)
    return subprocess.run([VRE, *args], env=full, capture_output=True, text=True, timeout=120)


def test_config_error_is_a_clear_message(tmp_path):
    config = yaml.safe_load((REPO / 'pygeoapi-config.yml').read_text())
    config['resources']['echo']['processor']['name'] = 'processes.echo.NoSuchClass'
    bad = tmp_path / 'bad.yml'
    bad.write_text(yaml.safe_dump(config))
    done = _run_vre(['openapi'], tmp_path / 'home', VRE_CONFIG=str(bad))
    assert done.returncode == 2
    assert 'resources.echo.processor' in done.stderr and 'NoSuchClass' in done.stderr
    assert 'Traceback' not in done.stderr
    (tmp_path / 'broken.yml').write_text('server: [unclosed')
    done = _run_vre(['openapi'], tmp_path / 'home', VRE_CONFIG=str(tmp_path / 'broken.yml'))
    assert done.returncode == 2 and 'cannot be read' in done.stderr


def test_openapi_is_generated_from_the_config(tmp_path):
    done = _run_vre(['openapi'], tmp_path / 'home')
    assert done.returncode == 0, done.stderr
    oas = yaml.safe_load(Path(done.stdout.strip()).read_text())
    assert '/processes/echo/execution' in oas['paths']
    assert '/processes/ocean-heat-content/execution' in oas['paths']


def test_first_start_creates_a_users_file(tmp_path, server_factory):
    home = tmp_path / 'home'
    with server_factory(home, users=False) as server:
        users = yaml.safe_load((home / 'users.yml').read_text())['users']
        token = users['admin']['token']
        assert len(token) >= 24 and oct((home / 'users.yml').stat().st_mode)[-3:] == '600'
        ok = requests.get(f'{server.url}/jobs', headers={'Authorization': f'Bearer {token}'})
        assert ok.status_code == 200
    log = (home.parent / 'home-serve.log').read_text()
    assert str(home / 'users.yml') in log
