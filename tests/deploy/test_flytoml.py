"""The stage config reader: fly.toml → each process group's Machines API config."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator

from bot.deploy.flytoml import (
    FlyTomlError,
    StageConfig,
    format_go_duration,
    load_stage_config,
    parse_go_duration,
    with_release,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "ping-go"
SPEC = Path(__file__).resolve().parents[3] / "shared" / "fly-api" / "machines-openapi-2024.yaml"
MARK = "# <-"

RICH = """
app = "ping-go-rich"
primary_region = "nrt"
kill_signal = "SIGTERM"
kill_timeout = 90

[deploy]
  strategy = "bluegreen"
  release_command = "/app/migrate --yes"

[env]
  PORT = 8080
  DEBUG = true

[processes]
  web = "/app/ping-go serve"
  worker = "/app/ping-go work --queue 'high prio'"

[[services]]
  protocol = "tcp"
  internal_port = 5432
  processes = ["worker"]
  auto_stop_machines = "suspend"
  [services.concurrency]
    type = "connections"
    hard_limit = 25
    soft_limit = 20
  [[services.ports]]
    port = 5432
    handlers = ["pg_tls"]
  [[services.ports]]
    start_port = 6000
    end_port = 6010
  [[services.tcp_checks]]
    interval = "10s"
    timeout = "1s"
  [[services.http_checks]]
    interval = "1m"
    path = "/ready"
    protocol = "https"
    tls_skip_verify = true
    [services.http_checks.headers]
      X-Check = "1"

[checks.alive]
  type = "tcp"
  port = 8080
  interval = "1h30m"
  processes = ["web"]

[[vm]]
  size = "performance-2x"
  processes = ["worker"]

[[vm]]
  cpus = 2
  memory = "1gb"

[mounts]
  source = "data"
  destination = "/data"
  processes = ["worker"]

[metrics]
  port = 9091

[[restart]]
  policy = "never"
"""


def write(tmp_path: Path, text: str, name: str = "prod.fly.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rich(tmp_path: Path) -> StageConfig:
    return load_stage_config(write(tmp_path, RICH))


# --- the example stages ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fly.toml", "prod.fly.toml"])
def test_example_stages_load(name: str) -> None:
    config = load_stage_config(EXAMPLES / name)
    assert config.app in {"ping-go-dev", "ping-go-prod"}
    assert config.primary_region == "nrt"
    assert config.groups == ("web", "cron")
    assert config.kill_signal == "SIGINT"
    assert config.kill_timeout == timedelta(seconds=5)
    assert config.group_has_services("web")
    assert not config.group_has_services("cron")


def test_dev_and_prod_settings() -> None:
    dev = load_stage_config(EXAMPLES / "fly.toml")
    prod = load_stage_config(EXAMPLES / "prod.fly.toml")
    assert dev.build_image == "registry.fly.io/ping-go:v2"
    assert prod.build_image is None
    assert (dev.deploy.strategy, dev.deploy.max_unavailable) == ("rolling", 1)
    assert dev.deploy.wait_timeout == timedelta(minutes=2)
    assert prod.deploy.max_unavailable == 0.33
    assert prod.deploy.wait_timeout == timedelta(minutes=5)
    assert prod.deploy.release_command is None
    assert prod.env == {"LOG_LEVEL": "info", "PING_TARGETS": "https://example.com,https://fly.io"}


def test_prod_web_config_has_service_and_check() -> None:
    config = load_stage_config(EXAMPLES / "prod.fly.toml")
    web = config.machine_config("web", "registry.fly.io/ping-go:v3")
    assert web["image"] == "registry.fly.io/ping-go:v3"
    assert web["env"] == {
        "LOG_LEVEL": "info",
        "PING_TARGETS": "https://example.com,https://fly.io",
        "PRIMARY_REGION": "nrt",
        "FLY_PROCESS_GROUP": "web",
    }
    assert web["init"] == {"cmd": ["/app/ping-go", "serve"]}
    assert web["guest"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
    assert web["services"] == [
        {
            "protocol": "tcp",
            "internal_port": 8080,
            "ports": [
                {"port": 80, "handlers": ["http"], "force_https": True},
                {"port": 443, "handlers": ["tls", "http"]},
            ],
            "autostop": False,
            "autostart": True,
            "min_machines_running": 2,
            "checks": [
                {
                    "type": "http",
                    "interval": "15s",
                    "timeout": "2s",
                    "grace_period": "10s",
                    "method": "GET",
                    "path": "/healthz",
                }
            ],
        }
    ]
    assert web["stop_config"] == {"signal": "SIGINT", "timeout": "5s"}
    assert web["metadata"] == {"fly_platform_version": "v2", "fly_process_group": "web"}
    assert "checks" not in web and "mounts" not in web


def test_cron_config_has_no_services() -> None:
    config = load_stage_config(EXAMPLES / "fly.toml")
    cron = config.machine_config("cron", "img")
    assert "services" not in cron
    assert cron["init"] == {"cmd": ["/app/ping-go", "cron", "--every", "5m"]}
    assert cron["env"]["FLY_PROCESS_GROUP"] == "cron"
    assert cron["metadata"]["fly_process_group"] == "cron"
    assert config.machine_config("web", "img")["services"][0]["autostop"] is True


def test_unknown_group_is_refused() -> None:
    config = load_stage_config(EXAMPLES / "fly.toml")
    with pytest.raises(ValueError, match="no process group 'worker'"):
        config.machine_config("worker", "img")


def test_without_processes_there_is_one_app_group(tmp_path: Path) -> None:
    config = load_stage_config(write(tmp_path, 'app = "solo"\n[http_service]\n'))
    assert config.processes == {}
    assert config.groups == ("app",)
    app = config.machine_config("app", "img")
    assert "init" not in app
    assert app["env"] == {"FLY_PROCESS_GROUP": "app"}
    assert app["services"][0]["internal_port"] == 8080
    assert app["metadata"]["fly_process_group"] == "app"


# --- the other sections ------------------------------------------------------------------


def test_rich_worker_config(tmp_path: Path) -> None:
    config = rich(tmp_path)
    assert config.deploy.strategy == "bluegreen"
    assert config.deploy.release_command == "/app/migrate --yes"
    worker = config.machine_config("worker", "img")
    assert worker["env"]["PORT"] == "8080" and worker["env"]["DEBUG"] == "true"
    assert worker["init"]["cmd"] == ["/app/ping-go", "work", "--queue", "high prio"]
    assert worker["guest"] == {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}
    assert worker["services"] == [
        {
            "protocol": "tcp",
            "internal_port": 5432,
            "ports": [
                {"port": 5432, "handlers": ["pg_tls"]},
                {"start_port": 6000, "end_port": 6010},
            ],
            "checks": [
                {"type": "tcp", "interval": "10s", "timeout": "1s"},
                {
                    "type": "http",
                    "interval": "1m0s",
                    "path": "/ready",
                    "protocol": "https",
                    "tls_skip_verify": True,
                    "headers": [{"name": "X-Check", "values": ["1"]}],
                },
            ],
            "autostop": "suspend",
            "concurrency": {"type": "connections", "hard_limit": 25, "soft_limit": 20},
        }
    ]
    assert worker["mounts"] == [{"name": "data", "path": "/data"}]
    assert worker["metrics"] == {"port": 9091, "path": "/metrics"}
    assert worker["restart"] == {"policy": "no"}
    assert worker["stop_config"] == {"signal": "SIGTERM", "timeout": "1m30s"}
    assert "checks" not in worker
    assert config.group_has_services("worker")


def test_rich_web_config(tmp_path: Path) -> None:
    config = rich(tmp_path)
    web = config.machine_config("web", "img")
    assert web["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 1024}
    assert web["checks"] == {"alive": {"type": "tcp", "port": 8080, "interval": "1h30m0s"}}
    assert "services" not in web and "mounts" not in web
    assert not config.group_has_services("web")
    assert config.mount("web") is None
    assert config.mount("worker") is not None


@pytest.mark.parametrize(
    ("vm", "guest"),
    [
        ("", ("shared", 1, 256)),
        ('size = "shared-cpu-2x"', ("shared", 2, 512)),
        ('size = "shared-cpu-8x"', ("shared", 8, 2048)),
        ('size = "performance-1x"', ("performance", 1, 2048)),
        ('size = "performance-16x"', ("performance", 16, 32768)),
        ('size = "shared-cpu-1x"\nmemory = "1gb"', ("shared", 1, 1024)),
        ('size = "shared-cpu-1x"\nmemory = 512', ("shared", 1, 512)),
        ('memory = "2048MB"', ("shared", 1, 2048)),
        ("memory_mb = 768", ("shared", 1, 768)),
        ('cpus = 4\nmemory = "1gb"', ("shared", 4, 1024)),
        ('cpu_kind = "performance"\ncpus = 2\nmemory = "8gb"', ("performance", 2, 8192)),
    ],
)
def test_guest_sizes(tmp_path: Path, vm: str, guest: tuple[str, int, int]) -> None:
    text = 'app = "sized"\n' + (f"[[vm]]\n{vm}\n" if vm else "")
    config = load_stage_config(write(tmp_path, text))
    expected = dict(zip(("cpu_kind", "cpus", "memory_mb"), guest, strict=True))
    assert config.machine_config("app", "img")["guest"] == expected


def test_vm_for_a_named_group_wins_over_the_general_one(tmp_path: Path) -> None:
    text = """app = "sized"
[processes]
web = "serve"
cron = "cron"
[[vm]]
size = "shared-cpu-4x"
processes = ["cron"]
[[vm]]
size = "shared-cpu-2x"
"""
    config = load_stage_config(write(tmp_path, text))
    assert config.guest("cron").cpus == 4
    assert config.guest("web").cpus == 2


def test_http_service_for_all_groups_when_processes_absent(tmp_path: Path) -> None:
    text = 'app = "a"\n[processes]\nweb = "w"\ncron = "c"\n[http_service]\ninternal_port = 3000\n'
    config = load_stage_config(write(tmp_path, text))
    assert config.group_has_services("web") and config.group_has_services("cron")
    assert config.machine_config("cron", "img")["services"][0]["internal_port"] == 3000


def test_with_release_adds_release_metadata_to_a_copy() -> None:
    config = load_stage_config(EXAMPLES / "prod.fly.toml").machine_config("web", "img")
    released = with_release(config, "rel_123", 7)
    assert released["metadata"] == {
        "fly_platform_version": "v2",
        "fly_process_group": "web",
        "fly_release_id": "rel_123",
        "fly_release_version": "7",
    }
    assert "fly_release_id" not in config["metadata"]
    released["services"][0]["ports"].clear()
    assert config["services"][0]["ports"]


@pytest.mark.parametrize(
    ("text", "delta", "go"),
    [
        ("15s", timedelta(seconds=15), "15s"),
        ("2m", timedelta(minutes=2), "2m0s"),
        ("1h30m", timedelta(hours=1, minutes=30), "1h30m0s"),
        ("500ms", timedelta(milliseconds=500), "500ms"),
        ("1.5s", timedelta(seconds=1.5), "1.5s"),
        ("0", timedelta(0), "0s"),
        (30, timedelta(seconds=30), "30s"),
        (3600, timedelta(hours=1), "1h0m0s"),
    ],
)
def test_go_durations(text: str | int, delta: timedelta, go: str) -> None:
    assert parse_go_duration(text) == delta
    assert format_go_duration(delta) == go


@pytest.mark.parametrize("text", ["", "5", "5 s", "5sec", "-5s", "1d", "s", True, 1.5, -1])
def test_bad_go_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


# --- the Machines API spec -----------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """Refuse properties the spec does not name, so a misspelled field fails validation."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def machine_config_validator() -> OAS30Validator:
    if not SPEC.is_file():
        pytest.skip(f"the Machines OpenAPI spec is not at {SPEC}")
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    # The 2024 spec names its config schemas api.*; newer ones use fly.*.
    name = next(n for n in ("fly.MachineConfig", "api.MachineConfig") if n in schemas)
    components = _strict(copy.deepcopy(spec["components"]))
    return OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": components})


def _configs() -> list[tuple[str, Path | str, str]]:
    return [
        ("dev-web", EXAMPLES / "fly.toml", "web"),
        ("dev-cron", EXAMPLES / "fly.toml", "cron"),
        ("prod-web", EXAMPLES / "prod.fly.toml", "web"),
        ("prod-cron", EXAMPLES / "prod.fly.toml", "cron"),
        # autostop "suspend" is newer than the 2024 spec (boolean there): validate a stop.
        ("rich-worker", RICH.replace('"suspend"', '"stop"'), "worker"),
        ("rich-web", RICH, "web"),
    ]


@pytest.mark.parametrize(("label", "source", "group"), _configs(), ids=lambda v: str(v))
def test_machine_config_matches_the_spec(
    machine_config_validator: OAS30Validator,
    tmp_path: Path,
    label: str,
    source: Path | str,
    group: str,
) -> None:
    path = source if isinstance(source, Path) else write(tmp_path, source)
    config = load_stage_config(path).machine_config(group, "registry.fly.io/ping-go:v3")
    released = with_release(config, "rel_1", 3)
    errors = [e.message for e in machine_config_validator.iter_errors(released)]
    assert errors == [], label


# --- malformed files ---------------------------------------------------------------------

HEAD = 'app = "ping-go-prod"\n'
PROCESSES = '[processes]\nweb = "/app/ping-go serve"\ncron = "/app/ping-go cron"\n'

MALFORMED = [
    # (text with the expected line marked "# <-", key, part of the message)
    (
        '[http_service]\ninternal_port = "eighty"  # <-\n',
        "http_service.internal_port",
        'must be a port number (1-65535), not "eighty"',
    ),
    ("[http_service]\ninternal_port = 70000  # <-\n", "http_service.internal_port", "70000"),
    ("[http_service]\nforce_https = 1  # <-\n", "http_service.force_https", "true or false"),
    (
        '[http_service]\nauto_stop_machines = "sometimes"  # <-\n',
        "http_service.auto_stop_machines",
        "off, stop or suspend",
    ),
    (
        '[http_service]\n[[http_service.checks]]\ninterval = "15"  # <-\n',
        "http_service.checks[0].interval",
        'like "5s"',
    ),
    (
        PROCESSES + '[http_service]\nprocesses = ["worker"]  # <-\n',
        "http_service.processes",
        '"worker", which is not in [processes]',
    ),
    ("primary_region = 5  # <-\n", "primary_region", "must be a string, not 5"),
    ('kill_signal = "SIGHUP"  # <-\n', "kill_signal", "one of SIGINT"),
    ('kill_timeout = "5 seconds"  # <-\n', "kill_timeout", "duration"),
    ('env = "LOG_LEVEL=info"  # <-\n', "env", "must be a table"),
    ("[env]\nTARGETS = [1, 2]  # <-\n", "env.TARGETS", "must be a string"),
    ('[env]\nFLY_REGION = "nrt"  # <-\n', "env.FLY_REGION", "FLY_"),
    ("[build]\nimage = 3  # <-\n", "build.image", "must be a string"),
    ('[deploy]\nstrategy = "fast"  # <-\n', "deploy.strategy", "rolling, immediate, canary"),
    ("[deploy]\nmax_unavailable = 0  # <-\n", "deploy.max_unavailable", "fraction"),
    ("[deploy]\nmax_unavailable = 1.5  # <-\n", "deploy.max_unavailable", "1.5"),
    ('[deploy]\nwait_timeout = "soon"  # <-\n', "deploy.wait_timeout", '"soon"'),
    ("[deploy]\nwait_timeout = 0  # <-\n", "deploy.wait_timeout", "longer than 0s"),
    ('[deploy]\nrelease_command = "migrate \'now"  # <-\n', "deploy.release_command", "split"),
    (
        '[deploy]\nstrategy = "canary"  # <-\n[mounts]\nsource = "d"\ndestination = "/d"\n',
        "deploy.strategy",
        "canary cannot be used with [mounts]",
    ),
    (
        '[deploy]\nstrategy = "bluegreen"  # <-\n',
        "deploy.strategy",
        "needs at least one health check",
    ),
    ('[processes]\nweb = "serve \'oops"  # <-\n', "processes.web", "split"),
    ('[processes]\n"web app" = "serve"  # <-\n', 'processes."web app"', "process group names"),
    ('[[vm]]\nsize = "huge"  # <-\n', "vm[0].size", "shared-cpu-1x"),
    ('[[vm]]\nsize = "shared-cpu-1x"\nmemory = "300mb"  # <-\n', "vm[0].memory", "multiple of 256"),
    ('[[vm]]\nsize = "shared-cpu-1x"\nmemory = "4gb"  # <-\n', "vm[0].memory", "256-2048 MB"),
    ('[[vm]]\nmemory = "lots"  # <-\n', "vm[0].memory", '"512mb"'),
    ("[[vm]]\ncpus = 3  # <-\n", "vm[0].cpus", "1, 2, 4, 6, 8"),
    ("[[vm]]\ncpus = 2  # <-\n", "vm[0].cpus", "256 MB is outside 512-4096 MB"),
    ('[[vm]]\ncpu_kind = "gpu"  # <-\n', "vm[0].cpu_kind", "shared or performance"),
    (
        PROCESSES + '[[vm]]\nsize = "shared-cpu-1x"\nprocesses = ["worker"]  # <-\n',
        "vm[0].processes",
        "worker",
    ),
    (
        '[[vm]]\nsize = "shared-cpu-1x"\n[[vm]]  # <-\nsize = "shared-cpu-2x"\n',
        "vm[1]",
        "another [[vm]] entry",
    ),
    ('vm = "shared-cpu-1x"  # <-\n', "vm", "array of tables"),
    ('[[services]]  # <-\nprotocol = "tcp"\n', "services[0].internal_port", "is required"),
    (
        '[[services]]\nprotocol = "tcp"\ninternal_port = 8080\n'
        "[[services.ports]]\nport = 80\n[[services.ports]]\nport = 0  # <-\n",
        "services[0].ports[1].port",
        "not 0",
    ),
    (
        '[[services]]\nprotocol = "tcp"\ninternal_port = 1\n[[services]]\nprotocol = "tcp"\n'
        'internal_port = 2\n[[services.http_checks]]\ntimeout = "x"  # <-\n',
        "services[1].http_checks[0].timeout",
        "duration",
    ),
    ('[checks.alive]\ntype = "icmp"  # <-\nport = 8080\n', "checks.alive.type", "tcp, http"),
    ('[checks.alive]  # <-\ntype = "tcp"\n', "checks.alive.port", "is required"),
    ('[mounts]\nsource = "data"\ndestination = "data"  # <-\n', "mounts.destination", "absolute"),
    ("[metrics]\nport = 9091\npath = 5  # <-\n", "metrics.path", "must be a string"),
    ('[[restart]]\npolicy = "sometimes"  # <-\n', "restart[0].policy", "always, never"),
    ('[http_service]\nprocesses = "web"  # <-\n', "http_service.processes", "list of strings"),
]


@pytest.mark.parametrize(("snippet", "key", "message"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_files_name_file_line_and_key(
    tmp_path: Path, snippet: str, key: str, message: str
) -> None:
    text = HEAD + snippet
    line = next(n for n, row in enumerate(text.split("\n"), start=1) if MARK in row)
    path = write(tmp_path, text)
    with pytest.raises(FlyTomlError) as caught:
        load_stage_config(path)
    error = caught.value
    assert (error.path, error.line, error.key) == (path, line, key)
    assert str(error).startswith(f"{path}, line {line}, key {key}: ")
    assert message in str(error)


def test_the_error_reads_as_in_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "deploy" / "ping-go" / "prod.fly.toml"
    path.parent.mkdir(parents=True)
    shutil.copy(EXAMPLES / "prod.fly.toml", path)
    text = path.read_text().replace("internal_port = 8080", 'internal_port = "eighty"')
    path.write_text(text)
    line = text.split("\n").index('  internal_port = "eighty"') + 1
    with pytest.raises(FlyTomlError) as caught:
        load_stage_config(path)
    assert str(caught.value) == (
        f"{path}, line {line}, key http_service.internal_port: "
        'must be a port number (1-65535), not "eighty"'
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [('primary_region = "nrt"\n', "app"), ('app = ""\n', "app"), ("app = 1\n", "app")],
)
def test_top_level_app_problems(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(FlyTomlError) as caught:
        load_stage_config(path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}")
    assert "key app" in str(caught.value)


def test_toml_syntax_errors_give_tomlkits_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'app = "a"\n\n[env\nX = "1"\n')
    with pytest.raises(FlyTomlError) as caught:
        load_stage_config(path)
    assert caught.value.line == 3
    assert caught.value.key is None
    assert str(caught.value).startswith(f"{path}, line 3: not valid TOML")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FlyTomlError, match="cannot be read"):
        load_stage_config(tmp_path / "absent.fly.toml")


def test_unknown_sections_and_keys_are_ignored(tmp_path: Path) -> None:
    text = (
        HEAD + "swap_size_mb = 512\n[experimental]\nauto_rollback = true\n[http_service]\nx = 1\n"
    )
    config = load_stage_config(write(tmp_path, text))
    assert config.group_has_services("app")


# --- config_hash -------------------------------------------------------------------------


REORDERED_PROD = """
kill_timeout = "5s"
[processes]
  cron = "/app/ping-go cron --every 1m"
  web = "/app/ping-go serve"
[[vm]]
  processes = ["web", "cron"]
  memory = "256mb"
  size = "shared-cpu-1x"
[http_service]
  processes = ["web"]
  min_machines_running = 2
  auto_start_machines = true
  auto_stop_machines = "off"
  force_https = true
  internal_port = 8080
  [[http_service.checks]]
    timeout = "2s"
    path = "/healthz"
    method = "GET"
    interval = "15s"
    grace_period = "10s"
[env]
  PING_TARGETS = "https://example.com,https://fly.io"
  LOG_LEVEL = "info"
[deploy]
  wait_timeout = "5m"
  max_unavailable = 0.33
  strategy = "rolling"
"""


def test_config_hash_ignores_key_order(tmp_path: Path) -> None:
    original = load_stage_config(EXAMPLES / "prod.fly.toml")
    top = 'kill_signal = "SIGINT"\nprimary_region = "nrt"\napp = "ping-go-prod"\n'
    other = load_stage_config(write(tmp_path, top + REORDERED_PROD))
    assert list(other.env) != list(original.env)
    assert other.config_hash() == original.config_hash()
    for group in original.groups:
        assert other.config_hash(group) == original.config_hash(group)


def test_config_hash_changes_with_env_not_with_image(tmp_path: Path) -> None:
    text = (EXAMPLES / "fly.toml").read_text()
    base = load_stage_config(EXAMPLES / "fly.toml")
    other_image = load_stage_config(write(tmp_path, text.replace("ping-go:v2", "ping-go:v9"), "a"))
    other_env = load_stage_config(write(tmp_path, text.replace('"debug"', '"info"'), "b"))
    assert other_image.build_image != base.build_image
    assert other_image.config_hash() == base.config_hash()
    assert other_env.config_hash() != base.config_hash()
    assert other_env.config_hash("web") != base.config_hash("web")
    assert len(base.config_hash()) == 64
    assert base.config_hash("web") != base.config_hash("cron")


def test_config_hash_of_the_stage_covers_deploy_settings(tmp_path: Path) -> None:
    text = (EXAMPLES / "fly.toml").read_text()
    base = load_stage_config(EXAMPLES / "fly.toml")
    other = load_stage_config(write(tmp_path, text.replace('"2m"', '"3m"')))
    assert other.config_hash("web") == base.config_hash("web")
    assert other.config_hash() != base.config_hash()


# --- fuzzing -----------------------------------------------------------------------------

_HEADERS = [
    "[env]", "[deploy]", "[http_service]", "[[http_service.checks]]", "[[vm]]", "[vm]",
    "[processes]", "[[services]]", "[[services.ports]]", "[[services.tcp_checks]]",
    "[[services.http_checks]]", "[checks.a]", "[checks]", "[mounts]", "[[mounts]]",
    "[metrics]", "[[restart]]", "[build]", "[http_service.concurrency]", "[experimental]",
    "[http_service.checks.headers]", "[services.concurrency]",
]  # fmt: skip
_KEYS = [
    "app", "primary_region", "kill_signal", "kill_timeout", "strategy", "max_unavailable",
    "wait_timeout", "release_command", "internal_port", "processes", "size", "memory",
    "memory_mb", "cpus", "cpu_kind", "interval", "timeout", "grace_period", "port", "type",
    "source", "destination", "policy", "retries", "auto_stop_machines", "auto_start_machines",
    "handlers", "protocol", "headers", "web", "cron", "FOO", "FLY_X", "path", "image", "env",
    "start_port", "end_port", "force_https", "min_machines_running", "http_options", "a",
    "checks", "vm", "services", "mounts", "hard_limit", "method", "tls_options", "deploy",
]  # fmt: skip
_VALUES = [
    '"5s"', '"1h30m"', '"0"', '"512mb"', '"1gb"', '"shared-cpu-2x"', '"performance-2x"',
    '["web"]', '["app"]', '["cron", "web"]', "true", "false", "0.5", "{}", "[]", "1979-05-27",
    '"SIGINT"', '"tcp"', '"http"', '"rolling"', '"canary"', '"bluegreen"', '{ a = "b" }',
    '"/data"', '"stop"', '"suspend"', '"web"', '"ping-go"', '"serve \'x"', '"GET"', "[{}]",
    '"connections"', "1e400", "nan", "inf", '[[1], "a"]', '"shared"', '"performance"',
]  # fmt: skip

_value = st.one_of(
    st.sampled_from(_VALUES),
    st.integers(min_value=-5, max_value=70_000).map(str),
    st.text(max_size=12).map(lambda t: json.dumps(t, ensure_ascii=False)),
)
_line = st.one_of(
    st.sampled_from(_HEADERS),
    st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(_KEYS), _value),
    st.text(max_size=20),
)
_body = st.dictionaries(st.sampled_from(_KEYS), _value, max_size=5)
_section = st.tuples(st.sampled_from(_HEADERS), _body)


def _render(top: dict[str, str], sections: list[tuple[str, dict[str, str]]]) -> str:
    lines = [f"{key} = {value}" for key, value in top.items()]
    for header, body in sections:
        lines += [header, *(f"{key} = {value}" for key, value in body.items())]
    return "\n".join(lines)


# Free lines exercise the TOML parser; sections without duplicate keys get past it more often.
_documents = st.one_of(
    st.lists(_line, max_size=14).map("\n".join),
    st.builds(_render, _body, st.lists(_section, max_size=6, unique_by=lambda s: s[0])),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(with_app=st.booleans(), document=_documents)
def test_any_text_loads_or_raises_fly_toml_error(
    tmp_path_factory: pytest.TempPathFactory, with_app: bool, document: str
) -> None:
    text = ('app = "fuzz"\n' if with_app else "") + document
    path = tmp_path_factory.mktemp("fuzz") / "fly.toml"
    path.write_text(text, encoding="utf-8")
    try:
        config = load_stage_config(path)
    except FlyTomlError as error:
        assert str(error).startswith(str(path))
        return
    for group in config.groups:
        json.dumps(config.machine_config(group, "img"), allow_nan=False)
        config.config_hash(group)
        config.group_has_services(group)
    config.config_hash()
