"""`flybot sandbox` and `flybot simulator`, run as the commands a person types."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.shell.test_shell_process import answers
from tests.simulator.test_foreign_clients import CURL, curl


def flybot(*args: str, script: str = "", tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLY", "FLYBOT"))}
    env["HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=script,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_the_sandbox_shows_the_demo_apps_machines(tmp_path: Path) -> None:
    out = answers(flybot("sandbox", script="status ping-go dev\n", tmp_path=tmp_path))
    lines = out["alice> status ping-go dev"]
    assert lines[:3] == ["ping-go/dev", "App: ping-go-dev", "Machines: 2"]
    assert lines[3] == "cron (1)" and lines[5] == "web (1)"
    assert "nrt  started  registry.fly.io/ping-go:v2" in lines[4]
    assert lines[6].endswith("checks 1/1 passing")


def test_the_sandbox_runs_a_guarded_prod_deploy_through_approval(tmp_path: Path) -> None:
    script = (
        "\n".join(
            [
                "as bob",
                "deploy ping-go prod",
                "approve 1",
                "as carol",
                "approve 1",
                "wait",
                "releases ping-go prod",
                "status ping-go prod",
            ]
        )
        + "\n"
    )
    out = answers(flybot("sandbox", script=script, tmp_path=tmp_path))
    request = out["bob> deploy ping-go prod"]
    assert "#1 deploy ping-go/prod requested by bob" in request[0]
    assert (
        "Image: registry.fly.io/ping-go:v1 → registry.fly.io/ping-go:v2 (promoted from dev)"
        in " ".join(request)
    )
    assert "[Approve] → type: approve 1" in request
    assert out["bob> approve 1"] == [
        "(only you) ✗ You asked for #1; someone else has to approve it."
    ]
    assert any("carol approved (1/1): running it" in line for line in out["carol> approve 1"])
    assert any("succeeded in" in line for line in out["carol> wait"])
    [release] = out["carol> releases ping-go prod"][1:]
    assert release.startswith(
        "v1  succeeded   registry.fly.io/ping-go:v2  rolling  by bob, approved by carol"
    )
    status = " ".join(out["carol> status ping-go prod"])
    assert "registry.fly.io/ping-go:v1" not in status and status.count("ping-go:v2") == 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_flybot_simulator_serves_curl(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "simulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len(exports) < 3 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                exports[name] = value.strip("'\"")
        base = f"http://127.0.0.1:{port}"
        assert exports["FLY_FLAPS_BASE_URL"] == exports["FLY_API_BASE_URL"] == base

        status, _, apps = curl(base, "GET", "/v1/apps?org_slug=demo")
        assert status == 200 and {a["name"] for a in apps["apps"]} >= {
            "ping-go-dev",
            "ping-go-prod",
        }
        config = {
            "image": "registry.fly.io/ping-go:v9",
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        }
        status, _, machine = curl(
            base, "POST", "/v1/apps/ping-go-dev/machines", {"config": config, "region": "nrt"}
        )
        assert status == 200, machine
        path = f"/v1/apps/ping-go-dev/machines/{machine['id']}"
        status, _, waited = curl(base, "GET", f"{path}/wait?state=started&timeout=10")
        assert status == 200 and waited["ok"] is True
        status, _, lease = curl(base, "POST", f"{path}/lease", {"ttl": 30})
        assert status == 201
        nonce = lease["data"]["nonce"]
        status, _, _ = curl(base, "POST", path, {"config": {**config, "env": {"A": "1"}}})
        assert status == 409  # leased: an update without the nonce is refused
        status, _, updated = curl(
            base,
            "POST",
            path,
            {"config": {**config, "env": {"A": "1"}}},
            {"fly-machine-lease-nonce": nonce},
        )
        assert status == 200 and updated["version"] != machine["version"]
        status, _, _ = curl(
            base, "DELETE", f"{path}/lease", None, {"fly-machine-lease-nonce": nonce}
        )
        assert status == 200
        status, _, _ = curl(base, "DELETE", f"{path}?force=true")
        assert status == 200
        status, _, waited = curl(base, "GET", f"{path}/wait?state=destroyed&timeout=10")
        assert status == 200 and waited["state"] == "destroyed"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_sandbox_tour_of_certificates(tmp_path: Path) -> None:
    script = "as bob\ncerts add ping-go prod www.example.com\ncerts list ping-go prod\n"
    script += "certs check ping-go prod www.example.com\ncerts show ping-go prod ping.example.com\n"
    out = answers(flybot("sandbox", script=script, tmp_path=tmp_path))
    added = " ".join(out["bob> certs add ping-go prod www.example.com"])
    assert "Certificate for www.example.com on ping-go/prod (ping-go-prod)" in added
    assert "CNAME www.example.com → ping-go-prod.fly.dev" in added
    assert "CNAME _acme-challenge.www.example.com →" in added
    listed = out["bob> certs list ping-go prod"]
    assert "ping.example.com  active" in listed
    assert "www.example.com  pending_validation  (flybot watches it)" in listed
    checked = " ".join(out["bob> certs check ping-go prod www.example.com"])
    assert "✗ No A/AAAA or CNAME record for www.example.com" in checked
    shown = " ".join(out["bob> certs show ping-go prod ping.example.com"])
    assert "Status: active (issued)" in shown and "Let's Encrypt" in shown
