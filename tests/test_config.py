from pathlib import Path

import pytest

from cdp.config import load_config
from cdp.errors import ConfigError


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "base.yaml",
        "lake:\n  root: ${LAKE_HOME}/lake\n  engine: auto\nspark:\n  conf:\n    a.b: 1\n",
    )
    write(tmp_path, "local.yaml", "spark:\n  master: local[1]\n  conf:\n    c.d: true\n")
    return tmp_path


def test_overlay_merges_on_base_and_expands_variables(conf: Path) -> None:
    cfg = load_config("local", conf_dir=conf, environ={"LAKE_HOME": "/data"})
    assert cfg.env == "local"
    assert cfg.lake.root == "/data/lake"
    assert cfg.spark.master == "local[1]"
    assert dict(cfg.spark.conf) == {"a.b": "1", "c.d": "true"}


def test_missing_variable_names_file_and_key(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"base\.yaml: key 'lake\.root' uses \$\{LAKE_HOME\}"):
        load_config("local", conf_dir=conf, environ={})


def test_default_after_colon_dash(conf: Path) -> None:
    write(conf, "base.yaml", "lake:\n  root: ${LAKE_HOME:-/fallback}\n")
    assert load_config("local", conf_dir=conf, environ={}).lake.root == "/fallback"


def test_unknown_key_names_the_overlay_file(conf: Path) -> None:
    write(conf, "local.yaml", "spark:\n  mastr: local[1]\n")
    with pytest.raises(ConfigError, match=r"local\.yaml: key 'spark\.mastr': unknown key"):
        load_config("local", conf_dir=conf, environ={"LAKE_HOME": "/x"})


def test_wrong_type_is_an_error(conf: Path) -> None:
    write(conf, "local.yaml", "lake:\n  engine: spark-magic\n")
    with pytest.raises(ConfigError, match=r"local\.yaml: key 'lake\.engine'"):
        load_config("local", conf_dir=conf, environ={"LAKE_HOME": "/x"})


def test_an_unknown_time_zone_names_its_key(conf: Path) -> None:
    write(conf, "local.yaml", "tags:\n  timezone: Asia/Beijing\n")
    with pytest.raises(ConfigError, match=r"local\.yaml: key 'tags\.timezone'.*'Asia/Beijing' is not a time zone"):
        load_config("local", conf_dir=conf, environ={"LAKE_HOME": "/x"})
    write(conf, "local.yaml", "tags:\n  timezone: America/New_York\n")
    assert load_config("local", conf_dir=conf, environ={"LAKE_HOME": "/x"}).tags.timezone == "America/New_York"


def test_lake_root_precedence_cli_over_env_over_file(conf: Path) -> None:
    env = {"LAKE_HOME": "/x", "CDP_LAKE": "/from-env"}
    assert load_config("local", conf_dir=conf, environ=env).lake.root == "/from-env"
    assert load_config("local", conf_dir=conf, environ=env, lake_root="/from-cli").lake.root == "/from-cli"


def test_unknown_environment_lists_known_ones(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such environment overlay 'prod' \(known: local\)"):
        load_config("prod", conf_dir=conf, environ={"LAKE_HOME": "/x"})


def test_config_is_frozen(conf: Path) -> None:
    cfg = load_config("local", conf_dir=conf, environ={"LAKE_HOME": "/x"})
    with pytest.raises(Exception, match="frozen"):
        cfg.lake.root = "/elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.spark.conf["x"] = "y"  # type: ignore[index]


def test_shipped_configuration_loads() -> None:
    for env in ("local", "cluster"):
        cfg = load_config(env, environ={"CDP_LAKE": "s3a://bucket/cdp"})
        assert cfg.lake.root == "s3a://bucket/cdp"
    assert load_config("cluster", environ={"CDP_LAKE": "/l"}).spark.master is None
    with pytest.raises(ConfigError, match=r"cluster\.yaml: key 'lake\.root' uses \$\{CDP_LAKE\}"):
        load_config("cluster", environ={})


def test_tag_catalogue_folder_is_taken_from_the_configuration_folder(conf: Path, tmp_path_factory) -> None:
    cfg = load_config("local", conf_dir=conf, environ={"LAKE_HOME": "/data"})
    assert cfg.tags.catalogue == str((conf / "tags").resolve())
    elsewhere = tmp_path_factory.mktemp("catalogue")
    write(conf, "other.yaml", f"tags:\n  catalogue: {elsewhere}\n")
    assert load_config("other", conf_dir=conf, environ={"LAKE_HOME": "/data"}).tags.catalogue == str(elsewhere)
