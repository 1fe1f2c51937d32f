"""pysigsci 3.18.1, an independent public client, run unchanged against `sigsci-kit sim`.

pysigsci exits 0 and prints plain text even when a call fails, so every case checks both that its
stdout is the expected JSON and that the simulator's state changed as it should (control API under
/__sim/ and direct API calls), including which HTTP calls the simulator saw.
"""

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SIM_BINARY = REPO / "target" / "release" / "sigsci-kit"
WRAPPER = Path(__file__).resolve().parent / "pysigsci_wrapper.py"

CORP = "testcorp"
SITES = ["site-1", "site-2", "site-3"]
EMAIL = "sim@example.com"
TOKEN = "sim-token"
PASSWORD = "sim-password"
AGENT_ALERT_TAGS = ("requests_total", "agent_scoreboards")
PATCH_ALERT = "PATCH /corps/{}/sites/{}/alerts/{}"

SIM_START_TIMEOUT_SECS = 30
PYSIGSCI_TIMEOUT_SECS = 60
HTTP_TIMEOUT_SECS = 30


@dataclass
class Sim:
    base_url: str
    http: requests.Session

    def api(self, method, path, headers=None, **kwargs):
        """A call to /api/v0 with the token credentials (overridable through `headers`)."""
        auth = {"x-api-user": EMAIL, "x-api-token": TOKEN}
        auth.update(headers or {})
        response = self.http.request(
            method, f"{self.base_url}/api/v0{path}", headers=auth, timeout=HTTP_TIMEOUT_SECS, **kwargs
        )
        if response.status_code != 204:
            content_type = response.headers.get("content-type", "")
            assert content_type.startswith("application/json"), (
                f"{method} {path} -> {response.status_code} with Content-Type {content_type!r}: "
                f"{response.text[:300]!r}"
            )
        return response

    def api_json(self, method, path, **kwargs):
        response = self.api(method, path, **kwargs)
        assert response.status_code == 200, f"{method} {path} -> {response.status_code}: {response.text[:300]}"
        return response.json()

    def control(self, method, path, **kwargs):
        response = self.http.request(method, f"{self.base_url}/__sim{path}", timeout=HTTP_TIMEOUT_SECS, **kwargs)
        assert response.ok, f"{method} /__sim{path} -> {response.status_code}: {response.text[:300]}"
        return response

    def alerts(self, site):
        return self.api_json("GET", f"/corps/{CORP}/sites/{site}/alerts")["data"]

    def agent_alerts(self, site):
        """The site's agent alerts by tagName (each tag must appear exactly once)."""
        found = [alert for alert in self.alerts(site) if alert.get("tagName") in AGENT_ALERT_TAGS]
        tags = sorted(alert["tagName"] for alert in found)
        assert tags == sorted(AGENT_ALERT_TAGS), f"{site}: agent alerts by tag {tags}"
        return {alert["tagName"]: alert for alert in found}

    def now(self):
        return self.control("GET", "/clock").json()["now"]

    def truth(self, site, start, end):
        query = {"corp": CORP, "site": site, "from": start, "until": end}
        return self.control("GET", "/truth", params=query).json()

    def reset_log(self):
        self.control("DELETE", "/log")

    def api_calls(self):
        """Calls to /api/v0 since the last reset, path parameters written `{}`, zero counts dropped."""
        calls = {}
        for key, count in self.control("GET", "/log").json()["calls"].items():
            method, _, template = key.partition(" ")
            if count and not template.startswith("/__sim"):
                normal = f"{method} {re.sub(r'{[^}]*}', '{}', template)}"
                calls[normal] = calls.get(normal, 0) + count
        return calls


def _drain(stream):
    for _ in stream:
        pass


@pytest.fixture(scope="session")
def sim():
    if not SIM_BINARY.is_file():
        pytest.fail(f"{SIM_BINARY} is missing: run `tests/run.sh conformance`, which builds it")
    # The simulator's log goes to a file so a full pipe can never block it; shown if startup fails.
    stderr = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [
            str(SIM_BINARY), "sim", "--listen", "127.0.0.1:0", "--corp", CORP, "--sites", str(len(SITES)),
            "--rps", "50", "--seed", "1", "--email", EMAIL, "--token", TOKEN, "--password", PASSWORD,
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    first_line = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(SIM_START_TIMEOUT_SECS)
    base_url = first_line[0].strip() if first_line else ""
    if not re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url):
        process.kill()
        process.wait()
        stderr.seek(0)
        pytest.fail(
            f"simulator did not print its base URL within {SIM_START_TIMEOUT_SECS}s "
            f"(first stdout line {base_url!r}, exit {process.returncode}); stderr:\n{stderr.read()[-3000:]}"
        )
    threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
    http = requests.Session()
    http.trust_env = False  # loopback only: never route through a proxy from the environment
    yield Sim(base_url=base_url, http=http)
    http.close()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    stderr.close()


@pytest.fixture(scope="session")
def seeded_alerts(sim):
    """Every site's alerts as the simulator serves them before any case changes them."""
    return {site: sim.alerts(site) for site in SITES}


@pytest.fixture
def log(sim):
    sim.reset_log()
    return sim


@pytest.fixture
def frozen_clock(log):
    """The simulator clock stopped at its current second (time-derived agent fields hold still)."""
    now = log.now()
    log.control("PUT", "/clock", json={"frozen_at": now})
    yield log
    log.control("PUT", "/clock", json={"offset_secs": 0})
    assert log.control("GET", "/clock").json()["frozen"] is False


@pytest.fixture
def alerts_disabled(sim, seeded_alerts):
    """All agent alerts disabled through the API (not pysigsci), and a fresh call log."""
    set_agent_alerts(sim, SITES, enabled=False)
    sim.reset_log()
    return sim


@pytest.fixture
def alerts_enabled(sim, seeded_alerts):
    set_agent_alerts(sim, SITES, enabled=True)
    sim.reset_log()
    return sim


def set_agent_alerts(sim, sites, enabled):
    for site in sites:
        for alert in sim.agent_alerts(site).values():
            sim.api_json("PATCH", f"/corps/{CORP}/sites/{site}/alerts/{alert['id']}", json={"enabled": enabled})
        states = {tag: alert["enabled"] for tag, alert in sim.agent_alerts(site).items()}
        assert states == dict.fromkeys(AGENT_ALERT_TAGS, enabled), f"{site} after PATCH enabled={enabled}: {states}"


def agent_alert_states(sim):
    return {site: {tag: alert["enabled"] for tag, alert in sim.agent_alerts(site).items()} for site in SITES}


def pysigsci(sim, *args, secret="token", password=PASSWORD, token=TOKEN):
    """Run the pysigsci CLI through the wrapper; returns (stdout lines, completed process)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SIGSCI_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(SIGSCI_SIM_URL=sim.base_url, SIGSCI_EMAIL=EMAIL, SIGSCI_CORP=CORP)
    if secret == "token":
        env["SIGSCI_API_TOKEN"] = token
    else:
        env["SIGSCI_PASSWORD"] = password
    assert shutil.which("pysigsci", path=env["PATH"]), "pysigsci is not installed in this venv"
    done = subprocess.run(
        [sys.executable, str(WRAPPER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=PYSIGSCI_TIMEOUT_SECS,
    )
    assert done.returncode == 0, f"pysigsci {args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return [line for line in done.stdout.splitlines() if line.strip()], done


def pysigsci_json(sim, *args, message_ok=False, **kwargs):
    """pysigsci's single JSON reply; fails on its error text or on an API error object."""
    lines, done = pysigsci(sim, *args, **kwargs)
    assert len(lines) == 1, f"pysigsci {args}: expected one JSON line, got:\n{done.stdout}\n{done.stderr}"
    try:
        reply = json.loads(lines[0])
    except json.JSONDecodeError:
        pytest.fail(f"pysigsci {args} printed error text instead of JSON: {lines[0][:500]!r}\n{done.stderr}")
    if not message_ok:
        assert not (isinstance(reply, dict) and set(reply) == {"message"}), f"pysigsci {args}: API error {reply}"
    return reply


def parse_time(value):
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --- sites, agents, alerts -------------------------------------------------------------------------


def test_list_sites(log):
    reply = pysigsci_json(log, "--get", "corp-sites")
    assert [site["name"] for site in reply["data"]] == SITES
    assert [site["displayName"] for site in reply["data"]] == [f"Site {n}" for n in range(1, len(SITES) + 1)]
    assert log.api_calls() == {"GET /corps/{}/sites": 1}
    assert reply == log.api_json("GET", f"/corps/{CORP}/sites")


def test_get_one_site(log):
    reply = pysigsci_json(log, "--get", "corp-site", "--site", "site-2")
    assert reply["name"] == "site-2"
    assert reply["displayName"] == "Site 2"
    assert log.api_calls() == {"GET /corps/{}/sites/{}": 1}


def test_list_agents_of_an_explicit_fleet(frozen_clock):
    log = frozen_clock
    fleet = [
        {"name": "edge-a", "status": "online", "version": "4.57.0", "versions_behind": 0,
         "last_seen_ago_secs": 15, "rps": 20.0},
        {"name": "edge-b", "status": "online", "version": "4.56.0", "versions_behind": 1,
         "last_seen_ago_secs": 15, "rps": 10.0},
        {"name": "edge-c", "status": "offline", "version": "4.50.0", "versions_behind": 7,
         "last_seen_ago_secs": 3600, "rps": 0.0},
    ]
    log.control("PUT", "/sites/site-3/agents", json={"agents": fleet})
    log.reset_log()

    reply = pysigsci_json(log, "--get", "agents", "--site", "site-3")
    now = log.now()
    agents = {agent["agent.name"]: agent for agent in reply["data"]}
    assert sorted(agents) == ["edge-a", "edge-b", "edge-c"]
    for wanted in fleet:
        agent = agents[wanted["name"]]
        online = wanted["status"] == "online"
        assert agent["agent.status"] == wanted["status"], agent
        assert agent["agent.active"] is online, agent
        assert agent["agent.version"] == wanted["version"], agent
        assert agent["agent.versions_behind"] == wanted["versions_behind"], agent
        assert agent["agent.current_requests"] == (round(wanted["rps"] * 30) if online else 0), agent
        assert parse_time(agent["agent.last_seen"]) == now - wanted["last_seen_ago_secs"], agent
    assert log.api_calls() == {"GET /corps/{}/sites/{}/agents": 1}
    assert reply == log.api_json("GET", f"/corps/{CORP}/sites/site-3/agents")

    one = pysigsci_json(log, "--get", "agent", "--site", "site-3", "--id", "edge-b")
    assert one["agent.name"] == "edge-b"
    assert one["agent.version"] == "4.56.0"


def test_list_agents_of_a_counted_fleet(log):
    log.control("PUT", "/sites/site-2/agents", json={"count": 4, "online": 3, "rps": 20.0, "version": "4.57.0"})
    log.reset_log()

    reply = pysigsci_json(log, "--get", "agents", "--site", "site-2")
    agents = reply["data"]
    assert len(agents) == 4
    assert len({agent["agent.name"] for agent in agents}) == 4, "agent names must be unique"
    online = [agent for agent in agents if agent["agent.active"]]
    offline = [agent for agent in agents if not agent["agent.active"]]
    assert len(online) == 3
    assert all(agent["agent.status"] == "offline" and agent["agent.current_requests"] == 0 for agent in offline)
    assert all(agent["agent.version"] == "4.57.0" for agent in agents)
    # 20 rps over a 30 s report interval, shared among the online agents (rounding per agent).
    total = sum(agent["agent.current_requests"] for agent in online)
    assert abs(total - 600) <= len(online), [agent["agent.current_requests"] for agent in online]
    assert log.api_calls() == {"GET /corps/{}/sites/{}/agents": 1}


def test_agent_alerts_are_seeded_disabled_on_every_site(seeded_alerts):
    for site, alerts in seeded_alerts.items():
        tags = sorted(alert["tagName"] for alert in alerts if alert["tagName"] in AGENT_ALERT_TAGS)
        assert tags == sorted(AGENT_ALERT_TAGS), f"{site}: {alerts}"
        assert all(not alert["enabled"] for alert in alerts if alert["tagName"] in AGENT_ALERT_TAGS), alerts
        assert len({alert["id"] for alert in alerts}) == len(alerts), f"{site}: alert ids must be unique"


def test_list_alerts(log, seeded_alerts):
    reply = pysigsci_json(log, "--get", "custom-alerts", "--site", "site-1")
    assert log.api_calls() == {"GET /corps/{}/sites/{}/alerts": 1}
    assert {alert["tagName"] for alert in reply["data"]} >= set(AGENT_ALERT_TAGS)
    assert reply == {"data": log.alerts("site-1")}

    first = reply["data"][0]
    one = pysigsci_json(log, "--get", "custom-alert", "--site", "site-1", "--id", first["id"])
    assert one == first


# --- enabling and disabling agent alerts -----------------------------------------------------------


def assert_patch_replies(reply, count, enabled, tags=AGENT_ALERT_TAGS):
    assert isinstance(reply, list) and len(reply) == count, f"expected {count} PATCH replies, got {reply}"
    for alert in reply:
        assert alert["enabled"] is enabled, alert
        assert alert["tagName"] in tags, alert


def assert_only_enabled_changed(before, after, changed):
    """`changed` holds (site, tag) pairs whose alert flipped; everything else must be identical."""
    for site in SITES:
        for tag in AGENT_ALERT_TAGS:
            old, new = before[site][tag], after[site][tag]
            flipped = (site, tag) in changed
            assert new["enabled"] is (not old["enabled"] if flipped else old["enabled"]), (site, tag, old, new)
            assert without_enabled(new) == without_enabled(old), f"{site}/{tag}: PATCH changed more than `enabled`"


def without_enabled(alert):
    return {key: value for key, value in alert.items() if key != "enabled"}


def snapshot(sim):
    return {site: sim.agent_alerts(site) for site in SITES}


def test_enable_agent_alerts_on_one_site(alerts_disabled):
    sim = alerts_disabled
    before = snapshot(sim)
    sim.reset_log()

    reply = pysigsci_json(sim, "--enable", "agent-alerts", "--site", "site-1")

    assert_patch_replies(reply, 2, enabled=True)
    assert {alert["id"] for alert in reply} == {alert["id"] for alert in before["site-1"].values()}
    assert sim.api_calls() == {"GET /corps/{}/sites/{}/alerts": 1, PATCH_ALERT: 2}
    assert_only_enabled_changed(before, snapshot(sim), {("site-1", tag) for tag in AGENT_ALERT_TAGS})


@pytest.mark.parametrize("tag", AGENT_ALERT_TAGS)
def test_enable_one_agent_alert_by_tag_name(alerts_disabled, tag):
    sim = alerts_disabled
    before = snapshot(sim)
    sim.reset_log()

    reply = pysigsci_json(sim, "--enable", "agent-alerts", "--site", "site-2", "--alert-tag-name", tag)

    assert_patch_replies(reply, 1, enabled=True, tags=(tag,))
    assert reply[0]["id"] == before["site-2"][tag]["id"]
    assert sim.api_calls() == {"GET /corps/{}/sites/{}/alerts": 1, PATCH_ALERT: 1}
    assert_only_enabled_changed(before, snapshot(sim), {("site-2", tag)})


def test_enable_agent_alerts_on_all_sites(alerts_disabled):
    sim = alerts_disabled
    before = snapshot(sim)
    sim.reset_log()

    reply = pysigsci_json(sim, "--enable", "agent-alerts-all-sites")

    assert_patch_replies(reply, 2 * len(SITES), enabled=True)
    assert sim.api_calls() == {
        "GET /corps/{}/sites": 1,
        "GET /corps/{}/sites/{}/alerts": len(SITES),
        PATCH_ALERT: 2 * len(SITES),
    }
    assert_only_enabled_changed(before, snapshot(sim), {(site, tag) for site in SITES for tag in AGENT_ALERT_TAGS})


def test_enable_one_agent_alert_on_all_sites_by_tag_name(alerts_disabled):
    sim = alerts_disabled
    before = snapshot(sim)
    sim.reset_log()

    reply = pysigsci_json(sim, "--enable", "agent-alerts-all-sites", "--alert-tag-name", "agent_scoreboards")

    assert_patch_replies(reply, len(SITES), enabled=True, tags=("agent_scoreboards",))
    assert sim.api_calls() == {
        "GET /corps/{}/sites": 1,
        "GET /corps/{}/sites/{}/alerts": len(SITES),
        PATCH_ALERT: len(SITES),
    }
    assert_only_enabled_changed(before, snapshot(sim), {(site, "agent_scoreboards") for site in SITES})


def test_disable_agent_alerts_on_one_site(alerts_enabled):
    sim = alerts_enabled
    before = snapshot(sim)
    sim.reset_log()

    reply = pysigsci_json(sim, "--disable", "agent-alerts", "--site", "site-3")

    assert_patch_replies(reply, 2, enabled=False)
    assert sim.api_calls() == {"GET /corps/{}/sites/{}/alerts": 1, PATCH_ALERT: 2}
    assert_only_enabled_changed(before, snapshot(sim), {("site-3", tag) for tag in AGENT_ALERT_TAGS})


def test_disable_agent_alerts_on_all_sites(alerts_enabled):
    sim = alerts_enabled
    before = snapshot(sim)
    sim.reset_log()

    reply = pysigsci_json(sim, "--disable", "agent-alerts-all-sites")

    assert_patch_replies(reply, 2 * len(SITES), enabled=False)
    assert sim.api_calls() == {
        "GET /corps/{}/sites": 1,
        "GET /corps/{}/sites/{}/alerts": len(SITES),
        PATCH_ALERT: 2 * len(SITES),
    }
    assert_only_enabled_changed(before, snapshot(sim), {(site, tag) for site in SITES for tag in AGENT_ALERT_TAGS})
    assert agent_alert_states(sim) == {site: dict.fromkeys(AGENT_ALERT_TAGS, False) for site in SITES}


# --- integrations ----------------------------------------------------------------------------------

SLACK = {"type": "slack", "url": "https://hooks.example.com/services/T0/B0/conformance", "events": ["agentAlert", "flag"]}


def create_integration(sim, site, body):
    """POST through the API; the reply is the site's whole list with the new integration last."""
    created = sim.api_json("POST", f"/corps/{CORP}/sites/{site}/integrations", json=body)["data"][-1]
    assert created["type"] == body["type"] and created["url"] == body["url"], created
    return created


def integration_ids(sim, site):
    return [item["id"] for item in sim.api_json("GET", f"/corps/{CORP}/sites/{site}/integrations")["data"]]


def test_add_integration(log):
    before = integration_ids(log, "site-2")
    log.reset_log()

    reply = pysigsci_json(log, "--add", "integration", "--site", "site-2", "--data", json.dumps(SLACK))

    assert isinstance(reply.get("data"), list) and reply["data"], f"expected the integration list, got {reply}"
    added = reply["data"][-1]
    assert added["id"] and added["id"] not in before, added
    assert (added["type"], added["url"], sorted(added["events"])) == (SLACK["type"], SLACK["url"], sorted(SLACK["events"]))
    assert log.api_calls() == {"POST /corps/{}/sites/{}/integrations": 1}

    assert [item["id"] for item in reply["data"]] == before + [added["id"]]
    assert integration_ids(log, "site-2") == before + [added["id"]]
    stored = log.api_json("GET", f"/corps/{CORP}/sites/site-2/integrations/{added['id']}")
    assert (stored["type"], stored["url"], sorted(stored["events"])) == (SLACK["type"], SLACK["url"], sorted(SLACK["events"]))
    assert not any(added["id"] in integration_ids(log, site) for site in SITES if site != "site-2")


def test_get_integrations(log):
    created = create_integration(log, "site-1", SLACK)
    log.reset_log()

    listed = pysigsci_json(log, "--get", "integrations", "--site", "site-1")
    one = pysigsci_json(log, "--get", "integration", "--site", "site-1", "--id", created["id"])

    assert log.api_calls() == {"GET /corps/{}/sites/{}/integrations": 1, "GET /corps/{}/sites/{}/integrations/{}": 1}
    assert listed == log.api_json("GET", f"/corps/{CORP}/sites/site-1/integrations")
    assert created["id"] in [item["id"] for item in listed["data"]]
    assert one == log.api_json("GET", f"/corps/{CORP}/sites/site-1/integrations/{created['id']}")
    assert one["id"] == created["id"] and one["url"] == SLACK["url"]


def test_update_integration(log):
    created = create_integration(log, "site-2", SLACK)
    change = {"url": "https://hooks.example.com/services/T0/B0/changed", "events": ["flag"]}
    log.reset_log()

    reply = pysigsci_json(
        log, "--update", "integration", "--site", "site-2", "--id", created["id"], "--data", json.dumps(change),
        message_ok=True,
    )

    # The API answers a PATCH with 200 and the integration or 204 (pysigsci prints "PATCH successful.").
    if set(reply) == {"message"}:
        assert reply == {"message": "PATCH successful."}
    else:
        assert reply["id"] == created["id"] and reply["url"] == change["url"], reply
    assert log.api_calls() == {"PATCH /corps/{}/sites/{}/integrations/{}": 1}
    stored = log.api_json("GET", f"/corps/{CORP}/sites/site-2/integrations/{created['id']}")
    assert (stored["id"], stored["type"], stored["url"], stored["events"]) == (
        created["id"], "slack", change["url"], change["events"],
    )


def test_delete_integration(log):
    created = create_integration(log, "site-3", SLACK)
    log.reset_log()

    reply = pysigsci_json(
        log, "--delete", "integration", "--site", "site-3", "--id", created["id"], message_ok=True
    )

    assert reply == {"message": "DELETE successful."}, "DELETE must answer 204 with an empty body"
    assert log.api_calls() == {"DELETE /corps/{}/sites/{}/integrations/{}": 1}
    assert created["id"] not in integration_ids(log, "site-3")
    gone = log.api("GET", f"/corps/{CORP}/sites/site-3/integrations/{created['id']}")
    assert gone.status_code == 404, gone.text
    assert gone.json().get("message"), gone.text


# --- lists ---------------------------------------------------------------------------------------
# The pysigsci CLI only reads site lists (`--get rule-lists`); its library (SigSciApi) has the rest,
# so the writes go through the library, unchanged, pointed at the simulator as the wrapper does.


def pysigsci_library(sim, site=None):
    from pysigsci import sigsciapi

    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    api = sigsciapi.SigSciApi(email=EMAIL, api_token=TOKEN)
    api.base_url = sim.base_url + "/api/"
    api.corp = CORP
    api.site = site
    return api


BLOCKLIST = {"name": "Conformance Block", "type": "ip", "description": "pysigsci", "entries": ["198.51.100.0/24"]}


def test_site_list_lifecycle_through_the_pysigsci_library(log):
    api = pysigsci_library(log, site="site-2")

    created = api.add_site_rule_lists(BLOCKLIST)
    assert created["id"] == "site.conformance-block", created
    assert (created["name"], created["type"], created["entries"]) == ("Conformance Block", "ip", ["198.51.100.0/24"])

    patched = api.update_site_rule_lists(
        created["id"], {"entries": {"additions": ["203.0.113.9", "192.0.2.0/28"], "deletions": ["198.51.100.0/24"]}}
    )
    assert patched["entries"] == ["203.0.113.9", "192.0.2.0/28"], patched
    assert api.get_site_rule_list(created["id"]) == patched

    listed = pysigsci_json(log, "--get", "rule-lists", "--site", "site-2")
    assert [item["id"] for item in listed["data"]] == [created["id"]]
    assert listed == log.api_json("GET", f"/corps/{CORP}/sites/site-2/lists")

    replaced = api.replace_site_rule_lists(created["id"], {"entries": ["10.0.0.0/8"]})
    assert replaced["entries"] == ["10.0.0.0/8"]

    assert api.delete_site_rule_lists(created["id"]) == {"message": "DELETE successful."}
    assert log.api("GET", f"/corps/{CORP}/sites/site-2/lists/{created['id']}").status_code == 404
    assert log.api_calls() == {
        "POST /corps/{}/sites/{}/lists": 1,
        "PATCH /corps/{}/sites/{}/lists/{}": 1,
        "GET /corps/{}/sites/{}/lists/{}": 2,
        "GET /corps/{}/sites/{}/lists": 2,
        "PUT /corps/{}/sites/{}/lists/{}": 1,
        "DELETE /corps/{}/sites/{}/lists/{}": 1,
    }


def test_corp_list_lifecycle_through_the_pysigsci_library(log):
    api = pysigsci_library(log)
    created = api.add_corp_rule_lists({"name": "embargo", "type": "country", "entries": ["KP"]})
    assert created["id"] == "corp.embargo", created
    updated = api.update_corp_rule_lists(created["id"], {"description": "sanctions", "entries": {"additions": ["IR"]}})
    assert (updated["description"], updated["entries"]) == ("sanctions", ["KP", "IR"])
    assert [item["id"] for item in api.get_corp_rule_lists()["data"]] == [created["id"]]
    assert api.delete_corp_rule_lists(created["id"]) == {"message": "DELETE successful."}
    assert api.get_corp_rule_lists() == {"data": []}


INVALID_LISTS = {
    "no name": ({"type": "ip"}, "name is required"),
    "unknown type": ({"name": "x", "type": "cidr"}, "invalid list type"),
    "bad address": ({"name": "x", "type": "ip", "entries": ["10.0.0.0/33"]}, "invalid ip list entry"),
    "bad country": ({"name": "x", "type": "country", "entries": ["Germany"]}, "invalid country list entry"),
}


@pytest.mark.parametrize("label", INVALID_LISTS)
def test_invalid_lists_are_refused_with_400_message(log, label):
    body, message = INVALID_LISTS[label]
    api = pysigsci_library(log, site="site-1")
    # pysigsci raises "400 Bad Request: <message>" for a 400.
    with pytest.raises(Exception, match=f"^400 Bad Request: .*{re.escape(message)}"):
        api.add_site_rule_lists(body)
    assert log.api_json("GET", f"/corps/{CORP}/sites/site-1/lists") == {"data": []}


def test_duplicate_list_name_and_contradictory_patch_are_refused(log):
    api = pysigsci_library(log, site="site-3")
    created = api.add_site_rule_lists({"name": "dup", "type": "string", "entries": ["a"]})
    try:
        with pytest.raises(Exception, match="^400 Bad Request: .*already exists"):
            api.add_site_rule_lists({"name": "DUP", "type": "string"})
        with pytest.raises(Exception, match="^400 Bad Request: .*both added and deleted"):
            api.update_site_rule_lists(created["id"], {"entries": {"additions": ["b"], "deletions": ["b"]}})
        assert api.get_site_rule_list(created["id"])["entries"] == ["a"]
    finally:
        api.delete_site_rule_lists(created["id"])


# --- request feed ----------------------------------------------------------------------------------


def feed_window(sim, minutes_back=10, minutes_long=20):
    """A valid window by the simulator's clock: whole minutes, ending before now − 5 min."""
    until = sim.now() // 60 * 60 - minutes_back * 60
    return until - minutes_long * 60, until


def assert_feed_page(sim, reply, site, window, expected_count):
    start, end = window
    records = reply["data"]
    assert len(records) == expected_count, f"page holds {len(records)} records, expected {expected_count}"
    ids = [record["id"] for record in records]
    assert len(set(ids)) == len(ids), "duplicate ids within one page"
    truth = sim.truth(site, start, end)
    assert truth["count"] >= expected_count, truth["count"]
    assert set(ids) <= set(truth["ids"]), f"{len(set(ids) - set(truth['ids']))} ids are not in /__sim/truth"
    for record in records:
        assert start <= parse_time(record["timestamp"]) < end, record["timestamp"]
    # Far more records than one page exist in the window, so a cursor must follow.
    next_uri = reply["next"]["uri"]
    assert next_uri.startswith(f"/api/v0/corps/{CORP}/sites/{site}/feed/requests?"), next_uri
    assert "next=" in next_uri, next_uri


@pytest.mark.parametrize(("limit", "expected"), [(None, 1000), (1000, 1000), (250, 250), (1, 1)])
def test_feed_page(log, limit, expected):
    window = feed_window(log)
    args = ["--get", "request-feed", "--site", "site-1", f"--from-time={window[0]}", f"--until-time={window[1]}"]
    if limit is not None:
        args.append(f"--limit={limit}")
    log.reset_log()

    reply = pysigsci_json(log, *args)

    assert_feed_page(log, reply, "site-1", window, expected)
    assert log.api_calls() == {"GET /corps/{}/sites/{}/feed/requests": 1}


def test_feed_page_with_relative_times(log):
    def window_now():
        minute = int(time.time()) // 60 * 60
        return minute - 30 * 60, minute - 5 * 60

    before = window_now()
    reply = pysigsci_json(log, "--get", "request-feed", "--site", "site-2", "--from-time=-30m", "--until-time=-5m")
    after = window_now()

    # pysigsci computes the window from the wall clock; a minute may turn during the call.
    ids = {record["id"] for record in reply["data"]}
    matches = [w for w in {before, after} if ids <= set(log.truth("site-2", *w)["ids"])]
    assert matches, "page ids are not a subset of /__sim/truth for the window pysigsci asked for"
    assert_feed_page(log, reply, "site-2", matches[0], 1000)


def test_feed_ignores_pysigsci_tag_parameter(log):
    window = feed_window(log)
    reply = pysigsci_json(
        log, "--get", "request-feed", "--site", "site-3", f"--from-time={window[0]}", f"--until-time={window[1]}",
        "--tag", "SQLI", "--limit", "10",
    )
    assert_feed_page(log, reply, "site-3", window, 10)


# (from, until, limit) as offsets from the simulator's current whole minute.
INVALID_FEED_QUERIES = {
    "until later than now-5min": (-1200, 0, None),
    "from older than now-24h5min": (-86400 - 600, -600, None),
    "from not on a whole minute": (-1200 + 30, -600, None),
    "until not on a whole minute": (-1200, -600 + 30, None),
    "limit over 1000": (-1200, -600, 1001),
}


@pytest.mark.parametrize("label", INVALID_FEED_QUERIES)
def test_feed_rejects_invalid_query_with_400_message(log, label):
    from_offset, until_offset, limit = INVALID_FEED_QUERIES[label]
    minute = log.now() // 60 * 60
    start, end = minute + from_offset, minute + until_offset
    args = ["--get", "request-feed", "--site", "site-1", f"--from-time={start}", f"--until-time={end}"]
    if limit is not None:
        args.append(f"--limit={limit}")
    log.reset_log()

    lines, done = pysigsci(log, *args)

    # pysigsci turns a 400 into "400 Bad Request: <message>"; other statuses would print JSON.
    assert len(lines) == 1 and re.fullmatch(r"400 Bad Request: \S.*", lines[0]), f"{label}: {done.stdout}{done.stderr}"
    assert log.api_calls() == {"GET /corps/{}/sites/{}/feed/requests": 1}


# --- authentication --------------------------------------------------------------------------------


def test_token_login(log):
    reply = pysigsci_json(log, "--get", "corp-sites", secret="token")
    assert [site["name"] for site in reply["data"]] == SITES
    assert log.api_calls() == {"GET /corps/{}/sites": 1}, "token mode must not call /auth"


def test_wrong_token_is_rejected_with_401_json(log):
    lines, done = pysigsci(log, "--get", "corp-sites", token="not-the-token")
    assert len(lines) == 1, done.stdout
    reply = json.loads(lines[0])
    assert set(reply) == {"message"} and reply["message"], reply

    direct = log.api("GET", f"/corps/{CORP}/sites", headers={"x-api-token": "not-the-token"})
    assert direct.status_code == 401 and direct.json().get("message"), direct.text


def test_password_login_then_bearer_calls(alerts_disabled):
    sim = alerts_disabled
    reply = pysigsci_json(sim, "--get", "corp-sites", secret="password")
    assert [site["name"] for site in reply["data"]] == SITES
    assert sim.api_calls() == {"POST /auth": 1, "GET /corps/{}/sites": 1}

    # A write made with the session token must land like one made with an access token.
    before = snapshot(sim)
    sim.reset_log()
    reply = pysigsci_json(
        sim, "--enable", "agent-alerts", "--site", "site-1", "--alert-tag-name", "requests_total", secret="password"
    )
    assert_patch_replies(reply, 1, enabled=True, tags=("requests_total",))
    assert sim.api_calls() == {"POST /auth": 1, "GET /corps/{}/sites/{}/alerts": 1, PATCH_ALERT: 1}
    assert_only_enabled_changed(before, snapshot(sim), {("site-1", "requests_total")})


def test_wrong_password_login_fails(log):
    lines, done = pysigsci(log, "--get", "corp-sites", secret="password", password="wrong-password")
    assert lines and "Login failed" in lines[0], f"{done.stdout}{done.stderr}"
    assert len(lines) == 1, done.stdout
    calls = log.api_calls()
    assert calls == {"POST /auth": 1}, f"after a failed login pysigsci must stop; the simulator saw {calls}"


def test_bearer_token_is_checked(sim):
    login = sim.http.post(
        f"{sim.base_url}/api/v0/auth", data={"email": EMAIL, "password": PASSWORD}, timeout=HTTP_TIMEOUT_SECS
    )
    assert login.status_code == 200, login.text
    assert login.headers.get("content-type", "").startswith("application/json")
    token = login.json()["token"]
    assert token

    bearer = {"Authorization": f"Bearer {token}"}
    ok = sim.http.get(f"{sim.base_url}/api/v0/corps/{CORP}/sites", headers=bearer, timeout=HTTP_TIMEOUT_SECS)
    assert ok.status_code == 200 and [s["name"] for s in ok.json()["data"]] == SITES, ok.text

    forged = {"Authorization": "Bearer not-a-session"}
    denied = sim.http.get(f"{sim.base_url}/api/v0/corps/{CORP}/sites", headers=forged, timeout=HTTP_TIMEOUT_SECS)
    assert denied.status_code == 401 and denied.json().get("message"), denied.text

    bad_login = sim.http.post(
        f"{sim.base_url}/api/v0/auth", data={"email": EMAIL, "password": "wrong-password"}, timeout=HTTP_TIMEOUT_SECS
    )
    assert bad_login.status_code == 401 and "Login failed" in bad_login.json().get("message", ""), bad_login.text
