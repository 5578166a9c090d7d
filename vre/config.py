"""Load and check the one resource config (pygeoapi-config.yml) at start.

pygeoapi reads the config and the OpenAPI document through environment variables at
import time; `prepare()` sets them from our settings and writes the OpenAPI document
generated from the config, so the document always matches what is served.
"""
from __future__ import annotations

import importlib
import io
import os
from pathlib import Path

import yaml

from vre.settings import Settings


class ConfigError(Exception):
    """A config that cannot be served; the message says what and where."""


def _export(settings: Settings) -> None:
    for key, value in settings.env().items():
        os.environ[key] = value
    os.environ['PYGEOAPI_CONFIG'] = str(settings.config_path)
    os.environ['PYGEOAPI_OPENAPI'] = str(settings.home / 'openapi.yml')


def load_config(settings: Settings) -> dict:
    """The config as a dict, with ${VAR} references resolved from the settings."""
    from pygeoapi.util import yaml_load

    _export(settings)
    path = settings.config_path
    if not path.exists():
        raise ConfigError(f'config file not found: {path}')
    try:
        with path.open(encoding='utf8') as fh:
            config = yaml_load(fh)
    except (yaml.YAMLError, EnvironmentError) as err:
        raise ConfigError(f'{path}: cannot be read: {err}') from None
    check_config(config, path)
    return config


def _importable(dotted: str) -> str | None:
    module, _, cls = dotted.rpartition('.')
    try:
        getattr(importlib.import_module(module), cls)
    except Exception as err:  # report any import failure as a config problem
        return f'{dotted}: {type(err).__name__}: {err}'
    return None


def check_config(config: dict, path: Path) -> None:
    problems = []
    if not isinstance(config, dict) or 'server' not in config or 'resources' not in config:
        raise ConfigError(f'{path}: needs top-level "server" and "resources" sections')
    manager = (config['server'].get('manager') or {}).get('name', '')
    if '.' in manager and (p := _importable(manager)):
        problems.append(f'server.manager.name: {p}')
    for rid, res in (config.get('resources') or {}).items():
        if not isinstance(res, dict) or 'type' not in res:
            problems.append(f'resources.{rid}: needs a "type"')
            continue
        if res['type'] == 'process':
            name = (res.get('processor') or {}).get('name', '')
            if not name:
                problems.append(f'resources.{rid}.processor.name is missing')
            elif '.' in name and (p := _importable(name)):
                problems.append(f'resources.{rid}.processor: {p}')
        for i, prov in enumerate(res.get('providers') or []):
            name = prov.get('name', '')
            if '.' in name and (p := _importable(name)):
                problems.append(f'resources.{rid}.providers[{i}]: {p}')
    if problems:
        raise ConfigError(f'{path}:\n  ' + '\n  '.join(problems))


def prepare(settings: Settings) -> dict:
    """Check the config, write the OpenAPI document beside the data, export the env vars."""
    from pygeoapi.openapi import get_oas

    config = load_config(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        oas = get_oas(config, fail_on_invalid_collection=True)
    except Exception as err:
        raise ConfigError(f'{settings.config_path}: OpenAPI generation failed: '
                          f'{type(err).__name__}: {err}') from None
    from processes.api import extend_openapi
    extend_openapi(oas)
    target = settings.home / 'openapi.yml'
    tmp = target.with_suffix('.tmp')
    buf = io.StringIO()
    yaml.safe_dump(oas, buf, sort_keys=False, default_flow_style=False)
    tmp.write_text(buf.getvalue())
    tmp.replace(target)
    return config
