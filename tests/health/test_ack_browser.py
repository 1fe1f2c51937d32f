"""Agent health through the CLI and a real browser.

The `sigsci-kit` binary runs the simulator, `health check` (with Slack, PagerDuty and a webhook channel
pointed at local receivers), `health serve` (the acknowledgement pages) and `health status|ack|unack`.
Headless Chromium follows the Acknowledge link from the recorded Slack message, types a name, presses
the button (the PagerDuty incident is acknowledged too), undoes it, acknowledges again, and a second
visit shows "Already acknowledged". Every page state is photographed at desktop and phone width, light
and dark, under target/screenshots/ack-pages/. The webhook signature is checked with Python's hmac.
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
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

import testkit

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SIGSCI_KIT_BIN", ROOT / "target" / "release" / "sigsci-kit"))
CORP = "testcorp"
WEBHOOK_KEY = "webhook-key-from-python"
CHECK = "site-1/no_agents_online"
ROUTING_KEY = "pd-routing-key-from-python"
SCREENSHOTS = ROOT / "target" / "screenshots" / "ack-pages"
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


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
            f"  - {{name: pd, type: pagerduty, secret: 'env:AH_TEST_PD', base_url: '{receiver_url}/pd'}}\n"
            "links:\n  runbook: 'https://wiki.example/runbooks/agent-health#{check}'\n"
        )
        env = testkit.sim_env(
            sim_url,
            AH_TEST_ACK_KEY=json.dumps({"key": "browser-test-signing-key"}),
            AH_TEST_SLACK=json.dumps({"webhook_url": f"{receiver_url}/services/T000/B000/XXXX"}),
            AH_TEST_HOOK_KEY=WEBHOOK_KEY,
            AH_TEST_PD=json.dumps({"routing_key": ROUTING_KEY}),
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


def pagerduty_events(bed, action):
    events = [json.loads(r["body"]) for r in recorded(bed, "/pd/v2/enqueue")]
    return [event for event in events if event["event_action"] == action]


def photograph(driver, state):
    """The page as it stands, at each size, light and dark (kept as test artefacts)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ["light", "dark"]:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
        for size, (width, height) in SIZES.items():
            driver.set_window_size(width, height)
            # Dates never wrap, at any width.
            for wrapped in driver.execute_script(
                    "return [...document.querySelectorAll('time')]"
                    ".filter(t => getComputedStyle(t).whiteSpace !== 'nowrap' || t.getClientRects().length !== 1)"
                    ".map(t => t.textContent)"):
                pytest.fail(f"{state}: the date {wrapped!r} wraps at {size} width")
            assert driver.save_screenshot(str(SCREENSHOTS / f"{state}-{size}-{scheme}.png"))
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    driver.set_window_size(*SIZES["desktop"])


def luminance(css_colour):
    channels = [int(c) / 255 for c in css_colour[css_colour.index("(") + 1:css_colour.index(")")].split(",")[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first, second):
    light, dark = sorted([luminance(first), luminance(second)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def focus_ring_contrast(driver):
    """Tabs to the submit button (keyboard focus, so :focus-visible applies) and returns the contrast
    of its outline with the page behind it."""
    driver.find_element(By.TAG_NAME, "body").click()
    for _ in range(12):
        webdriver.ActionChains(driver).send_keys(Keys.TAB).perform()
        if driver.execute_script("return document.activeElement.tagName") == "BUTTON":
            break
    else:
        pytest.fail("the button cannot be reached with the keyboard")
    outline, width, page = driver.execute_script(
        "const s = getComputedStyle(document.activeElement);"
        "return [s.outlineColor, s.outlineWidth, getComputedStyle(document.body).backgroundColor];")
    assert float(width.removesuffix("px")) >= 2, width
    return contrast(outline, page)


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
    assert "https://wiki.example/runbooks/agent-health#no_agents_online" in json.dumps(message)
    assert len(pagerduty_events(bed, "trigger")) == 1
    driver = browser(bed["work"])
    try:
        driver.set_window_size(*SIZES["desktop"])
        driver.get(link)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Acknowledge this alert?"
        html = driver.find_element(By.TAG_NAME, "html")
        assert html.get_attribute("lang") == "en"
        assert "<script" not in driver.page_source
        main = driver.find_element(By.TAG_NAME, "main").text
        assert "Silences\nslack, pd" in main, main
        assert "Incidents\nacknowledged in pd as well" in main, main
        assert "Link valid until" in main and "Runbook" in main
        photograph(driver, "confirm")
        for scheme, least in [("light", 3), ("dark", 3)]:
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                   {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
            ratio = focus_ring_contrast(driver)
            assert ratio >= least, f"{scheme}: the focus ring's contrast is {ratio:.2f}:1"
        dark_background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert luminance(dark_background) < 0.05, dark_background
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

        # The name is required: the browser will not submit the form without it.
        name = driver.find_element(By.ID, "by")
        assert driver.find_element(By.CSS_SELECTOR, "label[for='by']").text == "Your name"
        assert name.get_attribute("required") is not None
        driver.find_element(By.XPATH, "//button[normalize-space()='Acknowledge']").click()
        assert driver.find_element(By.TAG_NAME, "h1").text == "Acknowledge this alert?"
        assert "acks" not in json.loads(bed["state_file"].read_text())["conditions"][CHECK]

        name.send_keys("Browser User")
        driver.find_element(By.ID, "for-1h").click()
        driver.find_element(By.XPATH, "//button[normalize-space()='Acknowledge']").click()
        WebDriverWait(driver, 15).until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Acknowledged"))
        main = driver.find_element(By.TAG_NAME, "main").text
        assert "Acknowledged by Browser User (link from slack) until" in main, main
        assert "pd: incident of site-1/no_agents_online acknowledged." in main, main
        photograph(driver, "acknowledged")
        # PagerDuty heard it with the trigger's dedup_key, before the page answered.
        [acknowledge] = pagerduty_events(bed, "acknowledge")
        [trigger] = pagerduty_events(bed, "trigger")
        assert acknowledge["dedup_key"] == trigger["dedup_key"] == f"sigsci-kit/{CORP}/{CHECK}"
        assert acknowledge["routing_key"] == ROUTING_KEY
        state = json.loads(bed["state_file"].read_text())
        ack = state["conditions"][CHECK]["acks"]["whole"]
        assert ack["by"] == "Browser User (link from slack)" and ack["how"] == "link" and ack["until"]

        # Undo: notifications resume and the link offers the form again, the name filled in.
        driver.find_element(By.XPATH, "//button[normalize-space()='Undo (notify again)']").click()
        WebDriverWait(driver, 15).until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "withdrawn"))
        assert "acks" not in json.loads(bed["state_file"].read_text())["conditions"][CHECK]
        photograph(driver, "withdrawn")

        # The next visit remembers the name (a cookie); acknowledge until it recovers.
        driver.get(link)
        assert driver.find_element(By.ID, "by").get_attribute("value") == "Browser User"
        driver.find_element(By.XPATH, "//button[normalize-space()='Acknowledge']").click()
        WebDriverWait(driver, 15).until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Acknowledged"))
        state = json.loads(bed["state_file"].read_text())
        assert state["conditions"][CHECK]["acks"]["whole"]["by"] == "Browser User (link from slack)"
        assert state["ack_log"][-1]["via"] == "slack"

        # The same link again: a calm "already acknowledged", not an error page.
        driver.get(link)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Already acknowledged"
        assert "Nothing was changed" in driver.find_element(By.TAG_NAME, "main").text
        photograph(driver, "already-acknowledged")

        # A tampered link is refused, says which alert it claimed to be for, and changes nothing.
        before = bed["state_file"].read_bytes()
        driver.get(link.replace("site-1%2Fno_agents_online", "site-2%2Fno_agents_online"))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Link refused"
        assert "The link was for testcorp/site-2 · No agents online (as the link claims)." in driver.find_element(By.TAG_NAME, "main").text
        assert bed["state_file"].read_bytes() == before
        photograph(driver, "refused")
    finally:
        driver.quit()
    response = requests.get(link.replace("site-1%2Fno_agents_online", "site-2%2Fno_agents_online"), timeout=5)
    assert response.status_code == 403


def test_status_ack_and_unack_from_the_cli(bed):
    status = bed["cli"]("status", "--corp", CORP, "--state", str(bed["state"]), "--max-age", "10m").stdout
    row = next(line.split() for line in status.splitlines() if line.startswith("site-1 "))
    assert row[:4] == ["site-1", "no_agents_online", "FIRING", "critical"], status
    assert "Browser User (link from slack)" in " ".join(row), status
    assert "unacknowledged" in status and "acknowledged" in status, status

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


def test_a_site_acknowledged_from_the_cli_reaches_pagerduty(bed):
    requests.put(f"{bed['sim']}/__sim/sites/site-2/agents", json={"online": 0}, timeout=5).raise_for_status()
    bed["cli"]("check", "--rules", str(bed["rules"]), "--state", str(bed["state"]))
    before = len(pagerduty_events(bed, "acknowledge"))
    acked = bed["cli"]("ack", "--corp", CORP, "--state", str(bed["state"]), "--rules", str(bed["rules"]),
                       "site-2", "--by", "cli-user")
    assert "acknowledged site-2/no_agents_online: silenced slack, pd" in acked.stdout, acked.stdout
    assert "pd incident of site-2/no_agents_online: acknowledged" in acked.stdout, acked.stdout
    [event] = pagerduty_events(bed, "acknowledge")[before:]
    assert event["dedup_key"] == f"sigsci-kit/{CORP}/site-2/no_agents_online"
    nothing = bed["cli"]("ack", "--corp", CORP, "--state", str(bed["state"]), "--rules", str(bed["rules"]),
                         "site-3", check=False)
    assert nothing.returncode == 1 and "nothing is firing on site site-3" in nothing.stderr, nothing.stderr


def test_a_link_to_a_recovered_alert_says_so(bed):
    message = json.loads(recorded(bed, "/services/")[0]["body"])
    link = next(block["accessory"]["url"] for block in message["blocks"] if "accessory" in block)
    requests.put(f"{bed['sim']}/__sim/sites/site-1/agents", json={"online": 3}, timeout=5).raise_for_status()
    bed["cli"]("check", "--rules", str(bed["rules"]), "--state", str(bed["state"]))
    assert requests.get(link, timeout=5).status_code == 410
    driver = browser(bed["work"])
    try:
        driver.get(link)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Already recovered"
        assert "testcorp/site-1 · No agents online has recovered" in driver.find_element(By.TAG_NAME, "main").text
        photograph(driver, "recovered")
    finally:
        driver.quit()
