"""Where the client subcommands find the API and their key: as the ``cs`` client does.

With ``--data-dir DIR``: ``DIR/cloudstack.ini``, written by ``motion up --data-dir DIR``.
Otherwise, like ``cs``: ``CLOUDSTACK_ENDPOINT``, ``CLOUDSTACK_KEY``, ``CLOUDSTACK_SECRET`` (and
``CLOUDSTACK_TIMEOUT``) from the environment when all three are set (and ``CLOUDSTACK_OVERRIDES``
is not); else the ini files ``~/.cloudstack.ini``, ``./cloudstack.ini`` and ``$CLOUDSTACK_CONFIG``
(read in that order, the last wins), section ``$CLOUDSTACK_REGION`` or ``--region`` (default
``cloudstack``), over the environment's values. These are the CloudStack client's own variables,
read here on the client side; the services' settings are ``orchestrator.config``'s.
"""
from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Mapping

KEYS = ("endpoint", "key", "secret", "timeout")


class ConfigMissing(Exception):
    """Raised when no endpoint and key pair can be found; the text says where we looked."""


def _from_ini(paths: list[Path], section: str) -> dict:
    ini = configparser.ConfigParser()
    ini.read([str(p) for p in paths])
    if not ini.has_section(section):
        return {}
    return {k: v for k, v in ini.items(section) if k in KEYS and v}


def load(data_dir: str | None = None, region: str | None = None,
         env: Mapping[str, str] | None = None) -> dict:
    """``{"endpoint", "key", "secret", "timeout"}`` for the client; raises ConfigMissing."""
    if data_dir:
        path = Path(data_dir) / "cloudstack.ini"
        if not path.exists():
            raise ConfigMissing(f"no {path}: start the system with 'motion up --data-dir {data_dir}' first")
        conf = _from_ini([path], "cloudstack")
        where = str(path)
    else:
        env = os.environ if env is None else env
        from_env = {k: env[f"CLOUDSTACK_{k.upper()}"] for k in KEYS if env.get(f"CLOUDSTACK_{k.upper()}")}
        paths = [Path.home() / ".cloudstack.ini", Path.cwd() / "cloudstack.ini"]
        if env.get("CLOUDSTACK_CONFIG"):
            paths.append(Path(env["CLOUDSTACK_CONFIG"]).expanduser())
        section = region or env.get("CLOUDSTACK_REGION") or "cloudstack"
        if {"endpoint", "key", "secret"} <= set(from_env) and not env.get("CLOUDSTACK_OVERRIDES"):
            conf = from_env
        else:
            conf = {**from_env, **_from_ini([p for p in paths if p.exists()], section)}
        where = f"CLOUDSTACK_ENDPOINT/KEY/SECRET, or section [{section}] of {', '.join(str(p) for p in paths)}"
    missing = [k for k in ("endpoint", "key", "secret") if not conf.get(k)]
    if missing:
        raise ConfigMissing(f"no {', '.join(missing)} found in {where}; use --data-dir DIR of "
                            f"'motion up', or configure it as for the cs client")
    conf["timeout"] = float(conf.get("timeout") or 30)
    return conf
