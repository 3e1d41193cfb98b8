"""The daemon config: the reference's keys and defaults, strict parsing, TOML output that round-trips."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from socikit.errors import ConfigError
from socikit.snapshotter.config import (
    REFERENCE_ONLY_KEYS,
    SnapshotterConfig,
    config_to_document,
    dumps_config,
    load_config,
    parse_config,
)
from tests.vectors import REPO_ROOT

# The reference's defaults for the keys socikit shares (fact sheet §7.9), in the file's spelling.
REFERENCE_DEFAULTS = {
    "debug": False, "disable_verification": False, "max_concurrency": 100, "mount_timeout_sec": 30,
    "fuse_metrics_emit_wait_duration_sec": 60, "no_prometheus": False, "metrics_address": "",
    "metrics_network": "tcp",
    "http.DialTimeoutMsec": 3000, "http.ResponseHeaderTimeoutMsec": 3000, "http.RequestTimeoutMsec": 300000,
    "http.MaxRetries": 8, "http.MinWaitMsec": 30, "http.MaxWaitMsec": 300000,
    "blob.valid_interval": 60, "blob.fetching_timeout_sec": 300, "blob.max_retries": 8, "blob.min_wait_msec": 30,
    "blob.max_wait_msec": 300000, "blob.check_always": False, "blob.force_single_range_mode": False,
    "blob.max_span_verification_retries": 0,
    "fuse.attr_timeout": 1, "fuse.entry_timeout": 1, "fuse.negative_timeout": 1, "fuse.log_fuse_operations": False,
    "background_fetch.disable": False, "background_fetch.silence_period_msec": 30000,
    "background_fetch.fetch_period_msec": 500, "background_fetch.max_queue_size": 300,
    "background_fetch.drop_policy": "newest", "background_fetch.emit_metric_period_sec": 10,
    "pull_modes.soci_v1.enable": False, "pull_modes.soci_v2.enable": True,
    "snapshotter.min_layer_size": 0, "snapshotter.allow_invalid_mounts_on_restart": False,
}


def _flatten(document: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def test_defaults_are_the_references_where_shared() -> None:
    flat = _flatten(config_to_document(SnapshotterConfig()))
    assert {k: flat[k] for k in REFERENCE_DEFAULTS} == REFERENCE_DEFAULTS
    # socikit's own keys
    assert flat["cache.max_bytes"] == 10 << 30
    assert flat["metrics_allow_non_loopback"] is False
    assert flat["lazy.enable"] is True
    assert flat["lazy.prefetch_on_open"] == 0
    assert set(flat) == set(REFERENCE_DEFAULTS) | {"cache.max_bytes", "metrics_allow_non_loopback", "lazy.enable",
                                                   "lazy.prefetch_on_open"}


def test_a_reference_config_file_carries_over() -> None:
    text = """
metrics_address = "127.0.0.1:8000"
http_cache_type = "memory"
[http]
DialTimeoutMsec = 1000
[background_fetch]
silence_period_msec = 1
[pull_modes.soci_v1]
enable = true
[pull_modes.parallel_pull_unpack]
enable = false
max_concurrent_downloads = 5
[pull_modes.parallel_pull_unpack.decompress_streams."gzip"]
path = "/usr/bin/unpigz"
args = ["-d", "-c"]
[directory_cache]
direct = true
[resolver]
auth_client_ttl_sec = 60
[resolver.host."registry.example.com".mirrors]
[[resolver.host."docker.io".mirrors]]
host = "mirror.example.com:5000"
insecure = true
request_timeout_sec = 7
[snapshotter]
min_layer_size = 10485760
"""
    text = text.replace('[resolver.host."registry.example.com".mirrors]\n', "")
    loaded = parse_config(text)
    config = loaded.config
    assert config.metrics_address == "127.0.0.1:8000"
    assert config.http.dial_timeout_msec == 1000
    assert config.background_fetch.silence_period_msec == 1
    assert config.pull_modes.soci_v1.enable and config.pull_modes.soci_v2.enable
    (mirror,) = config.resolver.host["docker.io"].mirrors
    assert (mirror.host, mirror.insecure, mirror.request_timeout_sec) == ("mirror.example.com:5000", True, 7)
    assert config.snapshotter.min_layer_size == 10 << 20
    assert set(loaded.ignored_keys) == {
        "http_cache_type", "pull_modes.parallel_pull_unpack.enable",
        "pull_modes.parallel_pull_unpack.max_concurrent_downloads",
        "pull_modes.parallel_pull_unpack.decompress_streams", "directory_cache.direct", "resolver.auth_client_ttl_sec",
    }
    assert set(loaded.ignored_keys) <= set(REFERENCE_ONLY_KEYS)


@pytest.mark.parametrize(("text", "message"), [
    ("colour = 1", "unknown key 'colour'"),
    ("[fuse]\nattr_timout = 1", "unknown key 'fuse.attr_timout'"),
    ("[http]\ndial_timeout_msec = 1", "unknown key 'http.dial_timeout_msec'"),  # the reference spells it CamelCase
    ('[[resolver.host."r.example".mirrors]]\nhots = "x"', "unknown key 'resolver.host.\"r.example\".mirrors[0].hots'"),
    ("[fuse]\nattr_timeout = \"1\"", "'fuse.attr_timeout' must be an integer, not '1'"),
    ("debug = 1", "'debug' must be a boolean, not 1"),
    ("[cache]\nmax_bytes = true", "'cache.max_bytes' must be an integer, not True"),
    ("fuse = 3", "'fuse' must be a table"),
    ("metadata_store = 3", "'metadata_store' must be a string, not 3"),
    ("[background_fetch]\ndrop_policy = \"random\"", "drop_policy must be"),
    ("metrics_network = \"unix\"", "metrics_network 'unix' is not supported"),
    ('[[resolver.host."r.example".mirrors]]\ninsecure = true', "every mirror needs a host"),
    ("[fuse", "not valid TOML"),
])
def test_bad_config_is_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="snap.toml")
    assert str(caught.value).startswith("snap.toml: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_printed_config_round_trips() -> None:
    text = """
debug = true
metrics_address = "[::1]:9100"
[http]
MaxRetries = 2
[resolver.host."127.0.0.1:5000"]
mirrors = [{host = "127.0.0.1:5001", insecure = true}, {host = "x\\"quote\\\\"}]
[cache]
max_bytes = 0
"""
    config = parse_config(text).config
    printed = dumps_config(config)
    assert parse_config(printed).config == config
    assert tomllib.loads(printed)["resolver"]["host"]["127.0.0.1:5000"]["mirrors"][1]["host"] == 'x"quote\\'
    assert parse_config(dumps_config(SnapshotterConfig())).config == SnapshotterConfig()


def test_missing_default_file_is_fine_missing_explicit_file_is_not(tmp_path: Path) -> None:
    assert load_config(tmp_path / "none.toml", missing_ok=True).config == SnapshotterConfig()
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml", missing_ok=False)


def _socikit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "socikit", "snapshotter", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_print_config_applies_flags_and_parses(tmp_path: Path) -> None:
    config = tmp_path / "snap.toml"
    config.write_text('[fuse]\nattr_timeout = 5\n[resolver.host."127.0.0.1:5000"]\n'
                      'mirrors = [{host = "127.0.0.1:5000", insecure = true}]\n')
    result = _socikit("--config", str(config), "--metrics-address", "127.0.0.1:9911", "--print-config")
    assert result.returncode == 0, result.stderr
    printed = parse_config(result.stdout).config
    assert printed.fuse.attr_timeout == 5
    assert printed.metrics_address == "127.0.0.1:9911"
    assert printed == parse_config('metrics_address = "127.0.0.1:9911"\n' + config.read_text()).config
    assert tomllib.loads(result.stdout)["http"]["DialTimeoutMsec"] == 3000


@pytest.mark.parametrize(("args", "message"), [
    (("--config", "MISSING"), "does not exist"),
    (("--config", "BAD"), "unknown key 'nonsense'"),
    (("--log-level", "loud"), "--log-level 'loud'"),
    (("--metrics-address", "10.1.2.3:9000"), "is not a loopback address"),
    (("--metrics-address", "nonsense"), "expected HOST:PORT"),
])
def test_cli_bad_options_are_one_line_exit_1(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "BAD").write_text("nonsense = 1\n")
    resolved = [str(tmp_path / a) if a in ("MISSING", "BAD") else a for a in args]
    result = _socikit(*resolved, "--root", str(tmp_path / "root"), "--address", str(tmp_path / "s.sock"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "root").exists() and not (tmp_path / "s.sock").exists()
