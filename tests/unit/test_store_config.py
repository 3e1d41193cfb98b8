"""The store's config file (socikit.store.config), its TOML writer, the registry endpoints it
gives, and the checks on the root and the mountpoint."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from socikit import tomlconfig
from socikit.errors import ConfigError
from socikit.lazy.remote import Endpoint
from socikit.store.config import (
    StoreConfig,
    dumps_config,
    load_config,
    parse_config,
    registry_hosts,
)
from socikit.store.mountpoint import check_mountpoint, check_paths, prepare_mountpoint
from socikit.store.options import resolve_options

FULL = """
debug = true

[pull_modes.soci_v1]
enable = true

[resolver]
docker_config = "/run/containers/0/auth.json"

[resolver.host."127.0.0.1:5000"]
plain_http = true

[resolver.host."registry.example"]
tls_verify = false
cert_dir = "/etc/socikit/certs/registry.example"
mirrors = [{host = "mirror.example:5000", insecure = true, request_timeout_sec = 5}, {host = "tls-mirror.example"}]

[resolver.host."tls-mirror.example"]
cert_dir = "/etc/socikit/certs/tls-mirror"

[fuse]
negative_timeout = 0

[cache]
max_bytes = 1048576
"""


def test_defaults() -> None:
    config = StoreConfig()
    assert tomlconfig.to_document(config) == {
        "debug": False,
        "max_concurrency": 100,
        "pull_modes": {"soci_v1": {"enable": False}, "soci_v2": {"enable": True}},
        "resolver": {"docker_config": "", "lookup_timeout_sec": 10, "host": {}},
        "blob": {"fetching_timeout_sec": 300, "max_retries": 8, "min_wait_msec": 30, "max_wait_msec": 300000,
                 "max_span_verification_retries": 0},
        "fuse": {"attr_timeout": 1, "entry_timeout": 1, "negative_timeout": 1},
        "background_fetch": {"disable": False, "silence_period_msec": 30000, "fetch_period_msec": 500,
                             "max_queue_size": 300, "drop_policy": "newest", "emit_metric_period_sec": 10},
        "cache": {"max_bytes": 10 << 30},
    }


def test_a_full_file_reads_and_round_trips() -> None:
    config = parse_config(FULL)
    assert config.debug and config.pull_modes.soci_v1.enable and config.pull_modes.soci_v2.enable
    assert config.resolver.host["127.0.0.1:5000"].plain_http
    example = config.resolver.host["registry.example"]
    assert not example.tls_verify and [m.host for m in example.mirrors] == ["mirror.example:5000", "tls-mirror.example"]
    assert config.fuse.negative_timeout == 0 and config.cache.max_bytes == 1 << 20
    text = dumps_config(config)
    assert parse_config(text) == config
    assert tomllib.loads(text)["resolver"]["host"]["registry.example"]["mirrors"][0]["request_timeout_sec"] == 5


@pytest.mark.parametrize(("text", "message"), [
    ("bogus = 1", "unknown key 'bogus'"),
    ("[resolver]\nhosts = {}", "unknown key 'resolver.hosts'"),
    ("debug = 1", "'debug' must be a boolean, not 1"),
    ("[cache]\nmax_bytes = true", "'cache.max_bytes' must be an integer, not True"),
    ("[cache]\nmax_bytes = -1", "cache.max_bytes must not be negative"),
    ("[fuse]\nattr_timeout = -1", "fuse.attr_timeout must not be negative"),
    ("[resolver]\nlookup_timeout_sec = 0", "resolver.lookup_timeout_sec must be positive"),
    ("[blob]\nmax_retries = -1", "blob.max_retries must not be negative"),
    ('[background_fetch]\ndrop_policy = "random"', "background_fetch.drop_policy must be"),
    ("[pull_modes.soci_v2]\nenable = false", "soci_v1 and soci_v2 are both disabled"),
    ('[resolver.host."http://x"]\nplain_http = true', 'resolver.host."http://x": not a registry host'),
    ('[resolver.host."x.example"]\nmirrors = [{insecure = true}]', "'' is not a registry host"),
    ('[resolver.host."x.example"]\nmirrors = [{host = "m", bogus = 1}]',
     "unknown key 'resolver.host.\"x.example\".mirrors[0].bogus'"),
    ('[resolver.host."x.example"]\ncert_dir = "certs"', "cert_dir must be an absolute path"),
    ('[resolver]\ndocker_config = "auth.json"', "docker_config must be an absolute path"),
    ("debug = ", "not valid TOML"),
])
def test_bad_files_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="store.toml")
    assert str(caught.value).startswith("store.toml: ") and message in str(caught.value)


def test_loading(tmp_path: Path) -> None:
    assert load_config(tmp_path / "missing.toml", missing_ok=True) == StoreConfig()
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", missing_ok=False)
    (tmp_path / "store.toml").write_text(FULL)
    assert load_config(tmp_path / "store.toml", missing_ok=False).debug


def test_endpoints_mirrors_first_then_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from socikit.store import config as config_module

    (tmp_path / "other.example").mkdir()
    monkeypatch.setattr(config_module, "CERTS_D", (tmp_path / "containers", tmp_path))
    hosts = registry_hosts(parse_config(FULL))
    assert hosts.endpoints("registry.example") == [
        Endpoint("mirror.example:5000", True, 5),
        Endpoint("tls-mirror.example", False, cert_dir="/etc/socikit/certs/tls-mirror"),
        Endpoint("registry.example", False, tls_verify=False, cert_dir="/etc/socikit/certs/registry.example"),
    ]
    assert hosts.endpoints("127.0.0.1:5000") == [Endpoint("127.0.0.1:5000", True)]
    # a host without a table: its certs.d directory when there is one
    assert hosts.endpoints("other.example") == [Endpoint("other.example", False,
                                                         cert_dir=str(tmp_path / "other.example"))]
    # Docker Hub's API lives on another host
    assert hosts.endpoints("docker.io") == [Endpoint("registry-1.docker.io", False)]


def test_a_configured_loopback_registry_may_speak_tls() -> None:
    hosts = registry_hosts(parse_config('[resolver.host."127.0.0.1:5000"]\ntls_verify = false\n'))
    assert hosts.endpoints("127.0.0.1:5000") == [Endpoint("127.0.0.1:5000", False, tls_verify=False)]
    assert registry_hosts(StoreConfig()).endpoints("127.0.0.1:5000") == [Endpoint("127.0.0.1:5000", True)]


def test_a_mirror_naming_the_registry_stands_for_it() -> None:
    config = parse_config('[resolver.host."r.example:5000"]\nmirrors = [{host = "r.example:5000", insecure = true}]')
    assert registry_hosts(config).endpoints("r.example:5000") == [Endpoint("r.example:5000", True)]


def test_toml_writer_quotes_and_escapes() -> None:
    document = {"a": "x\"y\\\n\x01", "n": 1.5, "t": {"k.e y": [1, 2], "e": {}}}
    text = tomlconfig.dumps(document)
    assert tomllib.loads(text) == document


# --- root and mountpoint ---------------------------------------------------------------------------

def test_root_and_mountpoint_paths(tmp_path: Path) -> None:
    check_paths(root=tmp_path / "root", mountpoint=tmp_path / "root" / "store")  # the mount inside the root: fine
    with pytest.raises(ConfigError, match="inside the mountpoint"):
        check_paths(root=tmp_path / "store" / "state", mountpoint=tmp_path / "store")
    with pytest.raises(ConfigError, match="inside the mountpoint"):
        check_paths(root=tmp_path / "store", mountpoint=tmp_path / "store/")
    with pytest.raises(ConfigError, match="not an absolute path"):
        check_paths(root=Path("root"), mountpoint=tmp_path)


def test_the_mountpoint_must_be_an_empty_unmounted_directory(tmp_path: Path) -> None:
    check_mountpoint(tmp_path / "new", must_exist=False)
    with pytest.raises(ConfigError, match="does not exist"):
        check_mountpoint(tmp_path / "new", must_exist=True)
    prepare_mountpoint(tmp_path / "new" / "store")
    assert (tmp_path / "new" / "store").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        check_mountpoint(tmp_path / "file", must_exist=False)
    with pytest.raises(ConfigError, match="is not empty"):
        check_mountpoint(tmp_path, must_exist=False)
    with pytest.raises(ConfigError, match="already a mount point"):
        check_mountpoint(Path("/proc"), must_exist=True)


def test_options_resolve_relative_paths_and_the_log_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "store.toml").write_text("debug = true\n")
    options = resolve_options(root=Path("state"), mountpoint=Path("mnt"), config_path=Path("store.toml"))
    assert options.root == tmp_path / "state" and options.mountpoint == tmp_path / "mnt"
    assert options.log_level == "debug"
    assert not (tmp_path / "mnt").exists() and not (tmp_path / "state").exists()  # nothing created
    assert resolve_options(mountpoint=Path("mnt"), config_path=Path("store.toml"), log_level="warn").log_level == "warn"
    with pytest.raises(ConfigError, match="--log-level 'loud'"):
        resolve_options(mountpoint=Path("mnt"), config_path=Path("store.toml"), log_level="loud")
