"""Apps, secrets, certificates, releases and GraphQL over the wire."""

from __future__ import annotations

import json

from tests.simulator.conftest import Sim


async def test_apps(fly: Sim) -> None:
    app = await fly.create_app("my-app")
    taken = await fly.http.post("/v1/apps", json={"app_name": "my-app", "org_slug": "personal"})
    assert taken.status_code == 422 and taken.json()["status"] == "name_taken"
    listed = (await fly.http.get("/v1/apps", params={"org_slug": "personal"})).json()
    assert [a["name"] for a in listed["apps"]] == [app] and listed["total_apps"] == 1
    assert (await fly.http.get("/v1/apps")).status_code == 400
    assert (await fly.http.get("/v1/apps", params={"org_slug": "nobody"})).status_code == 404
    shown = (await fly.http.get(f"/v1/apps/{app}")).json()
    assert shown["organization"]["slug"] == "personal" and shown["machine_count"] == 0
    assert (await fly.http.delete(f"/v1/apps/{app}")).status_code == 202
    missing = await fly.http.get(f"/v1/apps/{app}")
    assert missing.status_code == 404 and missing.json()["status"] == "unknown"


async def test_secrets_versions_and_values_never_leave(fly: Sim) -> None:
    app = await fly.create_app()
    url = f"/v1/apps/{app}/secrets"
    first = await fly.http.post(url, json={"values": {"API_TOKEN": "s3cret-1", "B": "s3cret-2"}})
    assert first.status_code == 200
    assert first.json()["version"] == 1
    assert [s["name"] for s in first.json()["secrets"]] == ["API_TOKEN", "B"]
    second = await fly.http.post(url, json={"values": {"B": None, "C": "s3cret-3"}})
    assert second.json()["version"] == 2
    listed = (await fly.http.get(url)).json()["secrets"]
    assert [s["name"] for s in listed] == ["API_TOKEN", "C"]
    assert set(listed[0]) == {"name", "digest", "created_at", "updated_at"}
    assert (await fly.http.get(url, params={"show_secrets": "true"})).status_code == 403
    one = await fly.http.post(f"{url}/D", json={"value": "s3cret-4"})
    assert one.status_code == 201 and one.json()["version"] == 3 and "value" not in one.json()
    assert (await fly.http.get(f"{url}/D")).json()["name"] == "D"
    assert (await fly.http.delete(f"{url}/D")).json() == {"version": 4}
    assert (await fly.http.get(f"{url}/D")).status_code == 404
    bad = await fly.http.post(url, json={"values": {"A": 1}})
    assert bad.status_code == 400

    # A machine created with min_secrets_version sees them; a version not reached is refused.
    made = await fly.create_machine(app, min_secrets_version=4)
    assert fly.sim.machine_secrets(app, made["id"])["API_TOKEN"] == "s3cret-1"
    r = await fly.http.post(
        f"/v1/apps/{app}/machines",
        json={"config": made["config"], "region": "nrt", "min_secrets_version": 9},
    )
    assert r.status_code == 400

    secret_calls = [c for c in fly.sim.calls if "/secrets" in c.path]
    assert len(secret_calls) >= 8
    log = json.dumps([c.to_json() for c in fly.sim.calls])
    assert "s3cret" not in log
    assert secret_calls[0].body == {"values": {"API_TOKEN": "[redacted]", "B": "[redacted]"}}
    assert secret_calls[1].body == {"values": {"B": None, "C": "[redacted]"}}
    served = (await fly.http.get("/__sim/calls")).text
    assert "s3cret" not in served and "[redacted]" in served


async def test_certificate_is_active_only_after_dns_and_a_check(fly: Sim) -> None:
    app = await fly.create_app()
    url = f"/v1/apps/{app}/certificates"
    r = await fly.http.post(f"{url}/acme", json={"hostname": "www.example.com"})
    assert r.status_code == 201
    cert = r.json()
    assert cert["status"] == "pending_validation" and cert["configured"] is False
    dns = cert["dns_requirements"]
    assert dns["cname"] == f"{app}.fly.dev" and dns["a"] and dns["aaaa"]
    assert dns["acme_challenge"]["name"] == "_acme-challenge.www.example.com"
    assert dns["acme_challenge"]["target"].endswith(".flydns.net")
    assert dns["ownership"]["name"] == "_fly-ownership.www.example.com"
    assert dns["ownership"]["app_value"]

    checked = (await fly.http.post(f"{url}/www.example.com/check")).json()
    assert checked["status"] == "pending_validation" and checked["certificates"] == []
    assert checked["validation_errors"][0]["code"] == "dns_not_configured"
    assert "dns_records" in checked

    dns_set = await fly.http.post(
        f"/__sim/certificates/{app}/www.example.com/dns", json={"set": True}
    )
    assert dns_set.status_code == 200
    not_yet = (await fly.http.get(f"{url}/www.example.com")).json()
    assert not_yet["status"] == "pending_validation"
    active = (await fly.http.post(f"{url}/www.example.com/check")).json()
    assert active["status"] == "active" and active["configured"] is True
    assert active["validation_errors"] == []
    assert {c["status"] for c in active["certificates"]} == {"active"}
    assert all("Let's Encrypt" in c["issuer"] for c in active["certificates"])

    listed = (await fly.http.get(url)).json()
    assert [(c["hostname"], c["status"]) for c in listed["certificates"]] == [
        ("www.example.com", "active")
    ]
    assert (await fly.http.delete(f"{url}/www.example.com")).status_code == 204
    assert (await fly.http.get(f"{url}/www.example.com")).status_code == 404


async def test_releases_and_graphql(fly: Sim) -> None:
    app = await fly.create_app()
    body = {
        "app_name": app,
        "image": "registry.fly.io/a:v1",
        "definition": {},
        "strategy": "rolling",
    }
    r = await fly.http.post("/api/v1/releases", json=body)
    assert r.status_code == 201
    first = r.json()["release"]
    assert first["version"] == 1 and first["id"]
    query = {
        "query": "query ($app: String!) { app(name: $app) { currentReleaseUnprocessed "
        "{ version imageRef } } }",
        "variables": {"app": app},
    }
    assert (await fly.http.post("/graphql", json=query)).json() == {
        "data": {"app": {"currentReleaseUnprocessed": None}}
    }
    done = await fly.http.patch(f"/api/v1/releases/{first['id']}", json={"status": "complete"})
    assert done.json()["release"]["status"] == "complete"
    second = (await fly.http.post("/api/v1/releases", json={**body, "image": "x/a:v2"})).json()
    assert second["release"]["version"] == 2
    await fly.http.patch(f"/api/v1/releases/{second['release']['id']}", json={"status": "failed"})
    bad = await fly.http.patch(f"/api/v1/releases/{first['id']}", json={"status": "great"})
    assert bad.status_code == 400
    history = (await fly.http.get(f"/api/v1/apps/{app}/releases")).json()["releases"]
    assert [(r["version"], r["status"]) for r in history] == [(2, "failed"), (1, "complete")]
    # the current release is the last complete one
    current = (await fly.http.post("/graphql", json=query)).json()["data"]["app"]
    assert current == {
        "currentReleaseUnprocessed": {"version": 1, "imageRef": "registry.fly.io/a:v1"}
    }

    sizes = (
        await fly.http.post(
            "/graphql", json={"query": "{ platform { vmSizes { name priceMonth priceSecond } } }"}
        )
    ).json()["data"]["platform"]["vmSizes"]
    one = next(s for s in sizes if s["name"] == "shared-cpu-1x")
    assert one["priceMonth"] == 1.94 and 0 < one["priceSecond"] < 1e-5

    missing = (
        await fly.http.post("/graphql", json={"query": '{ app(name: "nope") { name } }'})
    ).json()
    assert missing["data"] == {"app": None}
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    unknown = (
        await fly.http.post("/graphql", json={"query": f'{{ app(name: "{app}") {{ bogus }} }}'})
    ).json()
    assert "bogus" in unknown["errors"][0]["message"]


async def test_a_machine_keeps_the_secrets_of_its_version_until_it_is_updated(fly: Sim) -> None:
    app = await fly.create_app()
    url = f"/v1/apps/{app}/secrets"
    await fly.http.post(url, json={"values": {"API_TOKEN": "one"}})
    made = await fly.create_machine(app)
    assert fly.sim.machine_secrets(app, made["id"]) == {"API_TOKEN": "one"}
    second = (await fly.http.post(url, json={"values": {"API_TOKEN": "two", "NEW": "x"}})).json()
    restarted = await fly.http.post(f"/v1/apps/{app}/machines/{made['id']}/restart")
    assert restarted.status_code == 200
    assert fly.sim.machine_secrets(app, made["id"]) == {"API_TOKEN": "one"}  # not handed out
    update = {"config": made["config"], "min_secrets_version": second["version"]}
    assert (await fly.http.post(f"/v1/apps/{app}/machines/{made['id']}", json=update)).is_success
    assert fly.sim.machine_secrets(app, made["id"]) == {"API_TOKEN": "two", "NEW": "x"}


async def test_an_echo_fault_quotes_the_request_in_its_error(fly: Sim) -> None:
    app = await fly.create_app()
    fly.sim.inject("Secrets_update", status=422, echo=True, count=1)
    answer = await fly.http.post(f"/v1/apps/{app}/secrets", json={"values": {"A": "quoted-1"}})
    assert answer.status_code == 422 and "quoted-1" in answer.json()["error"]
    assert "quoted-1" not in json.dumps([c.to_json() for c in fly.sim.calls])  # the log: never
