"""The demo seed: what `flybot sandbox` shows first."""

from __future__ import annotations

from tests.simulator.conftest import Sim


async def test_the_demo_org(demo: Sim) -> None:
    apps = (await demo.http.get("/v1/apps", params={"org_slug": "demo"})).json()["apps"]
    assert [(a["name"], a["machine_count"]) for a in apps] == [
        ("ping-go-dev", 2),
        ("ping-go-prod", 3),
        ("hello-static", 1),
    ]
    prod = (await demo.http.get("/v1/apps/ping-go-prod/machines")).json()
    layout = sorted((m["config"]["metadata"]["fly_process_group"], m["region"]) for m in prod)
    assert layout == [("cron", "nrt"), ("web", "nrt"), ("web", "sin")]
    releases = (await demo.http.get("/api/v1/apps/ping-go-prod/releases")).json()["releases"]
    assert [(r["version"], r["status"]) for r in releases] == [(1, "complete")]
    for m in prod:
        meta = m["config"]["metadata"]
        assert meta["fly_platform_version"] == "v2"
        assert (meta["fly_release_id"], meta["fly_release_version"]) == (releases[0]["id"], "1")
        assert m["config"]["image"] == "registry.fly.io/ping-go:v1"
        assert m["state"] == "started"
        assert all(c["status"] == "passing" for c in m["checks"])
        web = meta["fly_process_group"] == "web"
        assert bool(m["config"].get("services")) is web
        if web:
            [service] = m["config"]["services"]
            assert service["internal_port"] == 8080
            assert service["checks"][0]["path"] == "/healthz"
            assert m["checks"][0]["name"] == "servicecheck-00-http-8080"

    dev = (await demo.http.get("/v1/apps/ping-go-dev/machines")).json()
    assert {m["config"]["image"] for m in dev} == {"registry.fly.io/ping-go:v2"}
    assert {m["region"] for m in dev} == {"nrt"}
    dev_releases = (await demo.http.get("/api/v1/apps/ping-go-dev/releases")).json()["releases"]
    assert [r["version"] for r in dev_releases] == [2, 1]
    query = '{ app(name: "ping-go-dev") { currentReleaseUnprocessed { imageRef version } } }'
    current = (await demo.http.post("/graphql", json={"query": query})).json()["data"]["app"]
    assert current["currentReleaseUnprocessed"] == {
        "imageRef": "registry.fly.io/ping-go:v2",
        "version": 2,
    }

    secrets = (await demo.http.get("/v1/apps/ping-go-prod/secrets")).json()["secrets"]
    assert {s["name"] for s in secrets} == {"DATABASE_URL", "PING_API_TOKEN", "SENTRY_DSN"}
    cert = (await demo.http.get("/v1/apps/ping-go-prod/certificates/ping.example.com")).json()
    assert cert["status"] == "active" and cert["certificates"]
    static = (await demo.http.get("/v1/apps/hello-static/machines")).json()
    assert len(static) == 1 and static[0]["state"] == "started"


async def test_seeding_twice_changes_nothing(demo: Sim) -> None:
    demo.sim.seed_demo()
    apps = (await demo.http.get("/v1/apps", params={"org_slug": "personal"})).json()["apps"]
    assert len(apps) == 3
