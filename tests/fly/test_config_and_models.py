"""Pure pieces of the Fly client: token header, config, Retry-After, lenient models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.fly import FlyClient, FlyConfig, Machine, MachineConfig, authorization_header
from bot.fly.retry import parse_retry_after


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        ("fm2_abc", "FlyV1 fm2_abc"),
        ("fm1r_abc", "FlyV1 fm1r_abc"),
        ("fm1a_abc", "FlyV1 fm1a_abc"),
        ("FlyV1 fm2_abc", "FlyV1 fm2_abc"),
        ("  FlyV1   fm2_abc\n", "FlyV1 fm2_abc"),
        ("Bearer fo1_personal", "Bearer fo1_personal"),
        ("bearer fo1_personal", "Bearer fo1_personal"),
        ("plain-token", "Bearer plain-token"),
        ("FlyV1 Bearer fm2_x", "FlyV1 fm2_x"),
    ],
)
def test_authorization_header_follows_flyctl(raw: str, header: str) -> None:
    assert authorization_header(raw) == header


def test_config_from_env_and_defaults() -> None:
    config = FlyConfig.from_env({"FLY_API_TOKEN": "FlyV1 fm2_secret", "FLY_ORG": "acme"})
    assert config.token == "fm2_secret"
    assert config.flaps_base_url == "https://api.machines.dev"
    assert config.api_base_url == "https://api.fly.io"
    assert config.prometheus_url == "https://api.fly.io/prometheus/acme"

    config = FlyConfig.from_env(
        {
            "FLY_API_TOKEN": "t",
            "FLY_FLAPS_BASE_URL": "http://127.0.0.1:1/",
            "FLY_API_BASE_URL": "http://127.0.0.1:2/",
            "FLY_PROMETHEUS_BASE_URL": "http://127.0.0.1:3/prom/",
        }
    )
    assert config.flaps_base_url == "http://127.0.0.1:1"
    assert config.api_base_url == "http://127.0.0.1:2"
    assert config.prometheus_url == "http://127.0.0.1:3/prom"


async def test_token_is_not_in_repr() -> None:
    config = FlyConfig(token="fm2_topsecret")
    assert "topsecret" not in repr(config)
    client = FlyClient(config)
    try:
        assert "topsecret" not in repr(client)
        assert "topsecret" not in repr(client._auth)
    finally:
        await client.aclose()


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(7.0)
    past = format_datetime(now - timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(past, now=now.timestamp()) == 0.0


def test_machine_config_round_trip_keeps_fields_it_does_not_know() -> None:
    raw = {
        "image": "registry.fly.io/app:1",
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "gpu_kind": None},
        "services": [{"internal_port": 8080, "autostop": "suspend", "future_field": {"x": 1}}],
        "dns": {"skip_registration": True},
        "metadata": {"fly_platform_version": "v2"},
    }
    config = MachineConfig.model_validate(raw)
    config.env = {"A": "1"}
    sent = config.to_json()
    assert sent["dns"] == {"skip_registration": True}
    assert sent["services"][0]["future_field"] == {"x": 1}
    assert sent["services"][0]["autostop"] == "suspend"
    assert sent["env"] == {"A": "1"}
    assert "gpu_kind" not in sent["guest"]


def test_machine_reads_version_and_instance_id() -> None:
    machine = Machine.model_validate({"id": "m1", "instance_id": "01OLD", "brand_new": 1})
    assert machine.current_version == "01OLD"
    assert Machine.model_validate({"id": "m1", "version": "01NEW"}).current_version == "01NEW"
    assert machine.metadata == {}
