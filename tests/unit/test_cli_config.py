"""The client subcommands find the API and their key as the ``cs`` client does, or in the data
directory of ``motion up``."""
from __future__ import annotations

import pytest

from motion.clientconfig import ConfigMissing, load


def ini(path, section="cloudstack", endpoint="http://ini/client/api", key="k-ini", secret="s-ini"):
    path.write_text(f"[{section}]\nendpoint = {endpoint}\nkey = {key}\nsecret = {secret}\ntimeout = 12\n")
    return path


def test_a_data_directory_gives_the_ini_that_motion_up_wrote(tmp_path):
    ini(tmp_path / "cloudstack.ini")
    conf = load(str(tmp_path))
    assert (conf["endpoint"], conf["key"], conf["secret"], conf["timeout"]) == (
        "http://ini/client/api", "k-ini", "s-ini", 12.0)


def test_a_data_directory_without_an_ini_says_to_start_motion_up(tmp_path):
    with pytest.raises(ConfigMissing, match="motion up --data-dir"):
        load(str(tmp_path / "nothing"))


def test_the_environment_alone_is_enough_as_for_cs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"CLOUDSTACK_ENDPOINT": "http://env/client/api", "CLOUDSTACK_KEY": "k", "CLOUDSTACK_SECRET": "s"}
    conf = load(env=env)
    assert (conf["endpoint"], conf["key"], conf["secret"]) == ("http://env/client/api", "k", "s")
    assert conf["timeout"] == 30.0


def test_cloudstack_config_names_the_ini_and_its_section_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = ini(tmp_path / "elsewhere.ini", section="lab")
    env = {"CLOUDSTACK_CONFIG": str(path), "CLOUDSTACK_REGION": "lab", "CLOUDSTACK_KEY": "k-env"}
    assert load(env=env)["key"] == "k-ini"
    assert load(region="lab", env={"CLOUDSTACK_CONFIG": str(path)})["endpoint"] == "http://ini/client/api"


def test_cloudstack_ini_in_the_working_directory_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ini(tmp_path / "cloudstack.ini", key="k-cwd")
    assert load(env={})["key"] == "k-cwd"


def test_no_endpoint_anywhere_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigMissing, match="CLOUDSTACK_ENDPOINT"):
        load(env={})
