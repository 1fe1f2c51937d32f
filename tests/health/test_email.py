"""The email channel end to end, through the `sigsci-kit` binary.

`health check` runs against the simulator with an email channel and a Slack channel side by side: the
email goes over SMTP with STARTTLS and a login to a local aiosmtpd server (smtp_receiver.py, a
self-signed certificate trusted through SSL_CERT_FILE), Slack's message to a local HTTP receiver, so
the two can be compared. Then: the repeat is throttled, the email's own acknowledgement link (posted
to `health serve`) silences only the email channel, the resolution is emailed; a wrong password, a
server without STARTTLS and an untrusted certificate each fail the delivery (exit 3) with an error
naming the server, never the password, and the last two before any login is tried.
"""

import contextlib
import html
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

import testkit

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SIGSCI_KIT_BIN", ROOT / "target" / "release" / "sigsci-kit"))
RECEIVER = Path(__file__).resolve().parent / "smtp_receiver.py"
CORP = "testcorp"
SITES = ["site-1", "site-2", "site-3", "site-4"]
SMTP_USER = "agent-health-mailer"
SMTP_PASSWORD = "smtp-pa55word-for-tests"
WRONG_PASSWORD = "wr0ng-pa55word-that-must-never-show"
SENDER = "agent-health@example.com"
RECIPIENTS = ["ops@example.com", "oncall@example.com"]
THROTTLE_SECS = 5


class SmtpServer:
    """smtp_receiver.py in a process; `events(kind)` reads what it recorded."""

    def __init__(self, work, name, *, starttls=True):
        self.events_path = work / f"{name}-events.jsonl"
        self.cert_dir = work / "certs"
        args = [sys.executable, str(RECEIVER), "--out", str(self.events_path), "--cert-dir", str(self.cert_dir),
                "--username", SMTP_USER, "--password", SMTP_PASSWORD]
        if not starttls:
            args.append("--no-starttls")
        self.log = (work / f"{name}.log").open("w")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready = self.process.stdout.readline()
        assert ready, f"smtp_receiver.py did not start: see {work / f'{name}.log'}"
        self.port = json.loads(ready)["port"]
        self.address = f"127.0.0.1:{self.port}"

    def events(self, kind=None):
        if not self.events_path.exists():
            return []
        events = [json.loads(line) for line in self.events_path.read_text().splitlines()]
        return [event for event in events if kind is None or event["event"] == kind]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def only(site):
    """Rules lines that switch every other simulated site off, so each scenario has its own."""
    others = ", ".join(f"{other}: {{enabled: false}}" for other in SITES if other != site)
    return f"sites: {{{others}}}\n"


def email_channel(port, **extra):
    settings = {
        "name": "email", "type": "email", "secret": "env:AH_TEST_SMTP", "smtp_host": "127.0.0.1",
        "smtp_port": port, "from": f"Agent health <{SENDER}>", "to": RECIPIENTS, **extra,
    }
    return f"  - {json.dumps(settings)}\n"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    work = tmp_path_factory.mktemp("email")
    with contextlib.ExitStack() as stack:
        sim_url = stack.enter_context(testkit.simulator("--sites", str(len(SITES)), kit=BINARY))
        # Slack's messages, each as the JSON it posted.
        slack = stack.enter_context(testkit.http_receiver(keep=lambda path, headers, body: json.loads(body)))
        smtp = SmtpServer(work, "smtp")
        stack.callback(smtp.stop)
        plain_smtp = SmtpServer(work, "plain-smtp", starttls=False)
        stack.callback(plain_smtp.stop)

        ack_port = testkit.free_port()
        rules = work / "rules.yaml"
        rules.write_text(
            only("site-1")
            + f"ack: {{base_url: 'http://127.0.0.1:{ack_port}', secret: 'env:AH_TEST_ACK_KEY'}}\n"
            "channels:\n"
            f"  - {{name: slack, type: slack, secret: 'env:AH_TEST_SLACK', throttle_period: {THROTTLE_SECS}s}}\n"
            + email_channel(smtp.port, throttle_period=f"{THROTTLE_SECS}s")
        )
        env = testkit.sim_env(
            sim_url,
            AH_TEST_ACK_KEY=json.dumps({"key": "email-test-signing-key"}),
            AH_TEST_SLACK=json.dumps({"webhook_url": f"{slack.url}/services/T0/B0/X"}),
            AH_TEST_SMTP=json.dumps({"username": SMTP_USER, "password": SMTP_PASSWORD}),
            # The test server's self-signed certificate is the only root these processes trust.
            SSL_CERT_FILE=str(smtp.cert_dir / "cert.pem"),
        )
        stack.enter_context(testkit.serving(
            [BINARY, "health", "serve", "--corp", CORP, "--rules", rules, "--state", work / "state",
             "--listen", f"127.0.0.1:{ack_port}"],
            f"http://127.0.0.1:{ack_port}/healthz", env=env, stdout=subprocess.DEVNULL,
        ))

        def check(rules_path, state, env_overrides=None, *, expect):
            result = subprocess.run(
                [str(BINARY), "health", "check", "--rules", str(rules_path), "--state", str(state)],
                env={**env, **(env_overrides or {})}, capture_output=True, text=True, timeout=120,
            )
            assert result.returncode == expect, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
            return result

        def set_online(site, online):
            requests.put(f"{sim_url}/__sim/sites/{site}/agents", json={"online": 3 if online else 0},
                         timeout=5).raise_for_status()

        yield {
            "work": work, "rules": rules, "state": work / "state", "ack": f"http://127.0.0.1:{ack_port}",
            "slack": slack.recorded, "smtp": smtp, "plain_smtp": plain_smtp, "check": check, "set_online": set_online,
        }


def text_part(message):
    return next(p["text"] for p in message["parts"] if p["content_type"] == "text/plain").replace("\r\n", "\n")


def html_part(message):
    return next(p["text"] for p in message["parts"] if p["content_type"] == "text/html").replace("\r\n", "\n")


def email_links(message):
    text = text_part(message)
    whole = re.search(r"^Acknowledge \(silences every channel\): (\S+)$", text, re.M)
    channel = re.search(r"^Acknowledge on email only \(the other channels keep notifying\): (\S+)$", text, re.M)
    return whole and whole.group(1), channel and channel.group(1)


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def test_the_firing_email_says_what_slack_says_over_tls_after_a_login(bed):
    bed["set_online"]("site-1", False)
    bed["check"](bed["rules"], bed["state"], expect=0)
    # After the run: its deliveries were recorded as sent before this moment.
    bed["first_sent"] = time.monotonic()

    smtp = bed["smtp"]
    [message] = smtp.events("message")
    # The session: EHLO in clear, STARTTLS, EHLO again under TLS, then the login, then the message.
    assert [event["event"] for event in smtp.events()] == ["ehlo", "ehlo", "auth", "message"]
    assert [event["tls"] for event in smtp.events("ehlo")] == [False, True]
    [auth] = smtp.events("auth")
    assert auth == {"event": "auth", "mechanism": auth["mechanism"], "username": SMTP_USER, "success": True,
                    "tls": True}
    assert message["tls"] and message["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert message["authenticated"] and message["username"] == SMTP_USER
    assert message["mail_from"] == SENDER
    assert message["rcpt_tos"] == RECIPIENTS
    assert message["headers"]["From"] == f"Agent health <{SENDER}>"
    assert message["headers"]["To"] == ", ".join(RECIPIENTS)
    assert message["content_type"] == "multipart/alternative"
    assert [part["content_type"] for part in message["parts"]] == ["text/plain", "text/html"]

    [slack] = bed["slack"]
    header = slack["blocks"][0]["text"]["text"]
    item = slack["blocks"][1]
    headline = slack["text"].splitlines()[1]
    assert headline.startswith("[FIRING] testcorp/site-1 · No agents online: "), headline
    details = headline.split("No agents online: ", 1)[1]
    since = re.search(r"_(since [^_]+)_", item["text"]["text"]).group(1)
    assert message["headers"]["Subject"] == headline
    text, page = text_part(message), html_part(message)
    assert text.startswith(header + "\n"), text
    for expected in ["🔴 FIRING · testcorp/site-1 · No agents online (critical)", details, since]:
        assert expected in text, f"{expected!r} in {text}"
        assert html.escape(expected, quote=True) in page, f"{expected!r} in {page}"
    assert re.search(r"^Agents: \S", text, re.M), text

    # The same two links as Slack's button and the link under it, signed for this channel.
    whole, channel = email_links(message)
    slack_whole = item["accessory"]["url"]
    slack_channel = re.search(r"<([^|>]+)\|Acknowledge in Slack only>", item["text"]["text"]).group(1)
    for mine, theirs, channels in [(whole, slack_whole, None), (channel, slack_channel, "email")]:
        ours, slacks = query(mine), query(theirs)
        assert mine.split("?")[0] == theirs.split("?")[0] == f"{bed['ack']}/ack"
        for key in ["corp", "check", "episode"]:
            assert ours[key] == slacks[key], key
        assert ours["check"] == "site-1/no_agents_online"
        assert ours["via"] == "email" and slacks["via"] == "slack"
        assert ours.get("channels") == channels
        assert f'href="{html.escape(mine, quote=True)}"' in page
    bed["links"] = (whole, channel)


def test_the_repeat_is_throttled_and_the_email_link_acknowledges_only_email(bed):
    bed["check"](bed["rules"], bed["state"], expect=0)
    assert len(bed["smtp"].events("message")) == 1 and len(bed["slack"]) == 1, "throttled"

    _, channel_link = bed["links"]
    params = query(channel_link)
    response = requests.post(f"{bed['ack']}/ack", data={**params, "by": "Mail Reader"}, timeout=10)
    assert response.status_code == 200, response.text
    assert "Acknowledged by Mail Reader (link from email)" in response.text
    state = json.loads((bed["state"] / "agent-health" / f"{CORP}.json").read_text())
    acks = state["conditions"]["site-1/no_agents_online"]["acks"]
    assert set(acks["channels"]) == {"email"} and not acks.get("whole"), acks

    time.sleep(max(0.0, bed["first_sent"] + THROTTLE_SECS + 0.5 - time.monotonic()))
    bed["check"](bed["rules"], bed["state"], expect=0)
    assert len(bed["slack"]) == 2, "Slack is reminded after its throttle period"
    assert bed["slack"][1]["text"].splitlines()[1].startswith("[STILL FIRING] testcorp/site-1")
    assert len(bed["smtp"].events("message")) == 1, "the acknowledged email channel stays quiet"


def test_the_resolution_is_emailed(bed):
    bed["set_online"]("site-1", True)
    bed["check"](bed["rules"], bed["state"], expect=0)
    messages = bed["smtp"].events("message")
    assert len(messages) == 2
    resolved = messages[1]
    slack = bed["slack"][-1]
    assert resolved["headers"]["Subject"] == slack["text"].splitlines()[1]
    assert resolved["headers"]["Subject"].startswith("[RESOLVED] testcorp/site-1 · No agents online: recovered (was: ")
    text = text_part(resolved)
    assert text.startswith(slack["blocks"][0]["text"]["text"] + "\n")
    assert "✅ RESOLVED · testcorp/site-1" in text
    assert re.search(r"^cleared \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.M), text
    assert "Acknowledge" not in text and "<a href" not in html_part(resolved)
    assert resolved["tls"] and resolved["username"] == SMTP_USER


def test_a_wrong_password_fails_the_delivery_without_showing_it_and_the_retry_says_fired_and_resolved(bed):
    smtp = bed["smtp"]
    rules = bed["work"] / "wrong-password.yaml"
    rules.write_text(only("site-2") + "channels:\n" + email_channel(smtp.port, ack_enabled=False))
    state = bed["work"] / "wrong-password-state"
    wrong = {"AH_TEST_SMTP": json.dumps({"username": SMTP_USER, "password": WRONG_PASSWORD})}
    before = len(smtp.events("message"))

    bed["set_online"]("site-2", False)
    result = bed["check"](rules, state, wrong, expect=3)
    output = result.stdout + result.stderr
    assert f"channel email: SMTP server {smtp.address}: permanent error (535)" in output, output
    assert WRONG_PASSWORD not in output and SMTP_PASSWORD not in output
    assert WRONG_PASSWORD not in (state / "agent-health" / f"{CORP}.json").read_text()
    assert smtp.events("auth")[-1] == {"event": "auth", "mechanism": smtp.events("auth")[-1]["mechanism"],
                                       "username": SMTP_USER, "success": False, "tls": True}
    assert len(smtp.events("message")) == before

    # Recovered before the retry: the retry still tells the channel it fired.
    bed["set_online"]("site-2", True)
    bed["check"](rules, state, expect=0)
    messages = smtp.events("message")
    assert len(messages) == before + 1
    subject = messages[-1]["headers"]["Subject"]
    assert subject.startswith("[FIRED AND RESOLVED] testcorp/site-2 · No agents online: fired at "), subject
    assert "recovered before it could be delivered" in text_part(messages[-1])


def test_a_server_without_starttls_is_refused_before_any_login(bed):
    plain = bed["plain_smtp"]
    rules = bed["work"] / "plain.yaml"
    rules.write_text(only("site-3") + "channels:\n" + email_channel(plain.port, ack_enabled=False))
    bed["set_online"]("site-3", False)
    result = bed["check"](rules, bed["work"] / "plain-state", expect=3)
    output = result.stdout + result.stderr
    assert f"channel email: SMTP server {plain.address}: " in output, output
    assert "STARTTLS is not supported" in output, output
    assert SMTP_PASSWORD not in output
    assert plain.events("ehlo"), "the client did reach the server"
    assert plain.events("auth") == [] and plain.events("message") == []
    bed["set_online"]("site-3", True)


def test_a_certificate_nobody_trusts_is_refused_before_any_login(bed):
    smtp = bed["smtp"]
    rules = bed["work"] / "untrusted.yaml"
    rules.write_text(only("site-4") + "channels:\n" + email_channel(smtp.port, ack_enabled=False))
    before = (len(smtp.events("auth")), len(smtp.events("message")))
    bed["set_online"]("site-4", False)
    # An empty trust store: the platform roots would not know the self-signed certificate either.
    empty = bed["work"] / "no-roots.pem"
    empty.write_text("")
    result = bed["check"](rules, bed["work"] / "untrusted-state", {"SSL_CERT_FILE": str(empty)}, expect=3)
    output = result.stdout + result.stderr
    assert f"channel email: SMTP server {smtp.address}: " in output, output
    assert "certificate" in output.lower(), output
    assert (len(smtp.events("auth")), len(smtp.events("message"))) == before
    bed["set_online"]("site-4", True)
