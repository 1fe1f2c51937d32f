"""Agent health through the CLI and a real browser.

The `sigsci-kit` binary runs the simulator, `health check` (with a Slack and a webhook channel pointed at
local receivers), `health serve` (the acknowledgement pages) and `health status|ack|unack`. Headless
Chromium follows the Acknowledge link from the recorded Slack message, presses the button, and a second
visit shows "Already acknowledged". The webhook signature is checked with Python's own hmac module.
"""

import contextlib
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

import testkit

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SIGSCI_KIT_BIN", ROOT / "target" / "release" / "sigsci-kit"))
CORP = "testcorp"
WEBHOOK_KEY = "webhook-key-from-python"
CHECK = "site-1/no_agents_online"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    work = tmp_path_factory.mktemp("agent-health")
    with contextlib.ExitStack() as stack:
        sim_url = stack.enter_context(testkit.simulator(kit=BINARY))
        receiver = stack.enter_context(testkit.http_receiver())
        receiver_url = receiver.url

        ack_port = testkit.free_port()
        rules = work / "rules.yaml"
        rules.write_text(
            f"ack: {{base_url: 'http://127.0.0.1:{ack_port}', secret: 'env:AH_TEST_ACK_KEY'}}\n"
            "channels:\n"
            "  - {name: slack, type: slack, secret: 'env:AH_TEST_SLACK', throttle_period: 30m}\n"
            f"  - {{name: hook, type: webhook, url: '{receiver_url}/hook', secret: 'env:AH_TEST_HOOK_KEY', ack_enabled: false}}\n"
        )
        env = testkit.sim_env(
            sim_url,
            AH_TEST_ACK_KEY=json.dumps({"key": "browser-test-signing-key"}),
            AH_TEST_SLACK=json.dumps({"webhook_url": f"{receiver_url}/services/T000/B000/XXXX"}),
            AH_TEST_HOOK_KEY=WEBHOOK_KEY,
        )
        state = work / "state"

        def cli(*args, check=True):
            result = subprocess.run([str(BINARY), "health", *args], env=env, capture_output=True, text=True, timeout=120)
            if check:
                assert result.returncode == 0, f"health {' '.join(args)}: {result.stderr}"
            return result

        stack.enter_context(testkit.serving(
            [BINARY, "health", "serve", "--corp", CORP, "--rules", rules, "--state", state,
             "--listen", f"127.0.0.1:{ack_port}"],
            f"http://127.0.0.1:{ack_port}/healthz", env=env, stdout=subprocess.DEVNULL,
        ))

        yield {
            "sim": sim_url,
            "receiver": receiver,
            "rules": rules,
            "state": state,
            "state_file": state / "agent-health" / f"{CORP}.json",
            "cli": cli,
            "work": work,
        }


def recorded(bed, path_prefix):
    return [r for r in bed["receiver"].recorded if r["path"].startswith(path_prefix)]


def sim_calls(bed):
    log = requests.get(f"{bed['sim']}/__sim/log", timeout=5).json()
    return sum(log["calls"].values())


def browser(work):
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromium-driver are missing: tests/health/install-deps.sh installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={work / 'chromium-profile'}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def test_bad_rules_are_refused_with_the_key_path_and_nothing_is_evaluated(bed):
    bad = bed["work"] / "bad.yaml"
    bad.write_text("channels:\n  - {name: slack, type: slack, secret: 'env:AH_TEST_SLACK', throttle_period: soon}\n")
    before = sim_calls(bed)
    result = bed["cli"]("check", "--rules", str(bad), "--state", str(bed["state"]), check=False)
    assert result.returncode == 1
    assert "channels[0].throttle_period" in result.stderr, result.stderr
    assert sim_calls(bed) == before
    assert not bed["state_file"].exists()


def test_outage_is_sent_once_with_a_signed_webhook(bed):
    requests.put(f"{bed['sim']}/__sim/sites/site-1/agents", json={"online": 0}, timeout=5).raise_for_status()
    bed["cli"]("check", "--rules", str(bed["rules"]), "--state", str(bed["state"]))
    bed["cli"]("check", "--rules", str(bed["rules"]), "--state", str(bed["state"]))
    assert len(recorded(bed, "/services/")) == 1, "throttled: one Slack message for two runs"
    hooks = recorded(bed, "/hook")
    assert len(hooks) == 1
    hook = hooks[0]
    headers = {name.lower(): value for name, value in hook["headers"].items()}
    timestamp = headers["x-sigsci-kit-timestamp"]
    # The documented algorithm: "v1=" + hex(HMAC-SHA256(key, "{timestamp}.{raw body}")).
    expected = hmac.new(WEBHOOK_KEY.encode(), timestamp.encode() + b"." + hook["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-sigsci-kit-signature"], f"v1={expected}")
    assert abs(time.time() - int(timestamp)) < 300
    body = json.loads(hook["body"])
    assert body["notifications"][0]["check"] == CHECK
    assert body["notifications"][0]["status"] == "firing"


def test_acknowledge_in_a_real_browser(bed):
    message = json.loads(recorded(bed, "/services/")[0]["body"])
    link = next(block["accessory"]["url"] for block in message["blocks"] if "accessory" in block)
    driver = browser(bed["work"])
    try:
        driver.get(link)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Acknowledge this alert?"
        html = driver.find_element(By.TAG_NAME, "html")
        assert html.get_attribute("lang") == "en"
        assert "<script" not in driver.page_source
        name = driver.find_element(By.ID, "by")
        label = driver.find_element(By.CSS_SELECTOR, "label[for='by']")
        assert label.text == "Your name (optional)"
        name.send_keys("Browser User")
        driver.find_element(By.XPATH, "//button[normalize-space()='Acknowledge']").click()
        WebDriverWait(driver, 15).until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Acknowledged"))
        assert "Acknowledged by Browser User (link from slack)" in driver.find_element(By.TAG_NAME, "main").text

        state = json.loads(bed["state_file"].read_text())
        ack = state["conditions"][CHECK]["acks"]["whole"]
        assert ack["by"] == "Browser User (link from slack)" and ack["how"] == "link"
        assert state["ack_log"][-1]["via"] == "slack"

        # The same link again: a calm "already acknowledged", not an error page.
        driver.get(link)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Already acknowledged"
        assert "Nothing was changed" in driver.find_element(By.TAG_NAME, "main").text

        # A tampered link is refused and changes nothing.
        before = bed["state_file"].read_bytes()
        driver.get(link.replace("site-1%2Fno_agents_online", "site-2%2Fno_agents_online"))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Link refused"
        assert bed["state_file"].read_bytes() == before
    finally:
        driver.quit()
    response = requests.get(link.replace("site-1%2Fno_agents_online", "site-2%2Fno_agents_online"), timeout=5)
    assert response.status_code == 403


def test_status_ack_and_unack_from_the_cli(bed):
    status = bed["cli"]("status", "--corp", CORP, "--state", str(bed["state"]), "--max-age", "10m").stdout
    assert f"FIRING   {CHECK} [critical]" in status, status
    assert "acknowledged (all channels) by Browser User (link from slack)" in status, status

    refused = bed["cli"]("ack", "--corp", CORP, "--state", str(bed["state"]), "--rules", str(bed["rules"]),
                         CHECK, "--channel", "hook", check=False)
    assert refused.returncode == 1
    assert 'channel "hook" has ack_enabled: false' in refused.stderr, refused.stderr

    bed["cli"]("unack", "--corp", CORP, "--state", str(bed["state"]), "--rules", str(bed["rules"]), CHECK, "--by", "cli-user")
    acked = bed["cli"]("ack", "--corp", CORP, "--state", str(bed["state"]), "--rules", str(bed["rules"]),
                       CHECK, "--channel", "slack", "--until", "2h", "--by", "cli-user")
    assert "silenced slack" in acked.stdout, acked.stdout
    state = json.loads(bed["state_file"].read_text())
    assert state["conditions"][CHECK]["acks"]["channels"]["slack"]["until"]
    assert [event["action"] for event in state["ack_log"][-2:]] == ["unack", "ack"]
