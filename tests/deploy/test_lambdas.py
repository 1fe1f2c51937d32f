"""The packaged Lambda functions, as Lambda would run them.

`scripts/package.sh` (run by tests/deploy/run.sh first) left target/lambda/<function>/bootstrap.zip for
SIGSCI_KIT_DEPLOY_ARCH (arm64 unless set). Each zip must hold exactly one executable `bootstrap`, an ELF for
that architecture that provided.al2023 (glibc 2.34) can load, within the 8 MB size target.

Then each zip's own `bootstrap` (under qemu-user when it is not the host's architecture) runs under cargo-lambda's
Runtime API emulator (`cargo lambda watch` + `cargo lambda invoke`) with the event its trigger really sends:
- feed-export and agent-health: the default notification of EventBridge Scheduler (a schedule without input);
- ack-url: Lambda function URL requests (payload format 2.0), the GET of a link and the POST of its form,
against the simulator and moto (S3, Secrets Manager), with the settings the Terraform module sets
(docs/interfaces.md#environment) and every secret in Secrets Manager.
Checked: the exported hours in S3 (manifests, and one hour's ids against the simulator's truth), the
notifications at a recording HTTP receiver, and the acknowledgement in the health state in S3.
"""

import base64
import calendar
import contextlib
import gzip
import json
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlencode

import boto3
import pytest
import requests

import testkit

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "target" / "release" / "sigsci-kit"
CARGO_LAMBDA = [str(ROOT / "target" / "venv" / "bin" / "cargo-lambda"), "lambda"]
ARCH = os.environ.get("SIGSCI_KIT_DEPLOY_ARCH", "arm64")
FUNCTIONS = ["feed-export", "agent-health", "ack-url"]
MAX_ZIP_BYTES = 8 * 1024 * 1024
CORP = "testcorp"
CHECK = "site-1/no_agents_online"
REGION = "us-east-1"
ACCOUNT = "123456789012"
# The function URL the ack links point at (Lambda's own domain form); requests reach the function as events.
FUNCTION_URL = "https://deploytest0123456789abcdef.lambda-url.us-east-1.on.aws"

# ELF e_machine, the program interpreter provided.al2023 has, and the qemu-user that runs it elsewhere.
ELF = {
    "arm64": {"machine": 183, "interpreter": "/lib/ld-linux-aarch64.so.1", "qemu": "qemu-aarch64",
              "sysroot": "/usr/aarch64-linux-gnu", "host": "aarch64"},
    "x86_64": {"machine": 62, "interpreter": "/lib64/ld-linux-x86-64.so.2", "qemu": "qemu-x86_64",
               "sysroot": "/usr/x86_64-linux-gnu", "host": "x86_64"},
}[ARCH]
# provided.al2023's glibc: a binary needing a newer symbol version would not start there.
AL2023_GLIBC = (2, 34)


LAMBDA_DIR = Path(os.environ.get("SIGSCI_KIT_DEPLOY_LAMBDA_DIR", ROOT / "target" / "lambda"))


def zip_path(function):
    return LAMBDA_DIR / function / "bootstrap.zip"


def wait_port(port, seconds):
    """Waits until something listens on the port (an HTTP probe would itself be an invocation)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port}")


# --- the packages ---------------------------------------------------------------------------------

def elf_facts(data):
    """(e_type, e_machine, program interpreter or None) of a little-endian 64-bit ELF."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    assert data[4] == 2 and data[5] == 1, f"not a 64-bit little-endian ELF (class {data[4]}, data {data[5]})"
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    interpreter = None
    for index in range(e_phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + index * e_phentsize)
        if p_type == 3:  # PT_INTERP
            interpreter = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    return e_type, e_machine, interpreter


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_zip_holds_one_bootstrap_for_the_architecture(function):
    path = zip_path(function)
    assert path.is_file(), f"{path} is missing: scripts/package.sh --arch {ARCH} makes it"
    size = path.stat().st_size
    assert size <= MAX_ZIP_BYTES, f"{path}: {size} bytes, over the 8 MB target"
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None, f"{path}: a corrupt member"
        entries = archive.infolist()
        assert [entry.filename for entry in entries] == ["bootstrap"], [entry.filename for entry in entries]
        mode = entries[0].external_attr >> 16
        assert mode & 0o111 == 0o111, f"bootstrap is not executable in the zip (mode {oct(mode)})"
        data = archive.read("bootstrap")
    e_type, e_machine, interpreter = elf_facts(data)
    assert e_type in (2, 3), f"ELF type {e_type} is no executable"
    assert e_machine == ELF["machine"], f"ELF machine {e_machine}, not {ELF['machine']} ({ARCH})"
    assert interpreter == ELF["interpreter"], f"interpreter {interpreter}, not {ELF['interpreter']}"
    # Symbol versions the binary needs (their names sit in .dynstr): none newer than the runtime's glibc.
    versions = {(2, int(match.group(1))) for match in re.finditer(rb"GLIBC_2\.(\d+)", data)}
    newest = max(versions, default=(0, 0))
    assert newest <= AL2023_GLIBC, f"needs GLIBC_2.{newest[1]}, newer than provided.al2023's 2.34"
    print(f"{path}: {size} bytes, {ARCH} ELF, newest symbol version GLIBC_2.{newest[1]}")


# --- running them under the emulator --------------------------------------------------------------

class HiddenInputs(HTMLParser):
    """The hidden fields of the confirmation form (the signed link parameters)."""

    def __init__(self):
        super().__init__()
        self.fields = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "hidden":
            self.fields.append((attrs["name"], attrs.get("value") or ""))


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    moto = os.environ.get("SIGSCI_KIT_TEST_MOTO_URL")
    assert moto, "SIGSCI_KIT_TEST_MOTO_URL is not set: run tests/run.sh deploy, or tests/services.sh up DIR moto and source DIR/env"
    assert CLI.exists(), f"{CLI} is missing: tests/deploy/run.sh builds the workspace first"
    work = tmp_path_factory.mktemp("deploy")
    with contextlib.ExitStack() as stack:
        # A small feed rate: a scheduled run exports every hour in the 24 h retention, possibly under qemu.
        sim_url = stack.enter_context(testkit.simulator("--sites", "2", "--rps", "0.2", kit=CLI))
        receiver = stack.enter_context(testkit.http_receiver())
        receiver_url = receiver.url

        aws = dict(endpoint_url=moto, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        s3 = boto3.client("s3", **aws)
        bucket = f"sigsci-deploy-{os.getpid()}"
        s3.create_bucket(Bucket=bucket)
        secrets = boto3.client("secretsmanager", **aws)
        prefix = f"sigsci-kit-{os.getpid()}"
        for name, value in {
            "credentials": {"email": "sim@example.com", "token": "sim-token"},
            "ack": {"key": "deploy-test-link-signing-key"},
            "slack": {"webhook_url": f"{receiver_url}/services/T000/B000/XXXX"},
            "webhook": {"signing_key": "deploy-test-webhook-key"},
        }.items():
            secrets.create_secret(Name=f"{prefix}/{name}", SecretString=json.dumps(value))
        rules = (
            f"ack: {{base_url: '{FUNCTION_URL}', secret: 'secretsmanager:{prefix}/ack'}}\n"
            "channels:\n"
            f"  - {{name: slack, type: slack, secret: 'secretsmanager:{prefix}/slack', throttle_period: 30m}}\n"
            f"  - {{name: hook, type: webhook, url: '{receiver_url}/hook', secret: 'secretsmanager:{prefix}/webhook', ack_enabled: false}}\n"
        )
        # The AWS SDK's own variables, as Lambda sets them (credentials) and a test sets the endpoint.
        aws_env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
                   "AWS_ENDPOINT_URL": moto}
        # What the Terraform module sets per function (docs/interfaces.md#environment).
        environments = {
            "feed-export": {"SIGSCI_CORP": CORP, "SIGSCI_API_URL": sim_url, "SIGSCI_KIT_CREDENTIALS_SECRET": f"{prefix}/credentials",
                            "SIGSCI_KIT_FEED_LOCATION": f"s3://{bucket}/feed", "SIGSCI_KIT_SITES": "site-1"},
            "agent-health": {"SIGSCI_CORP": CORP, "SIGSCI_API_URL": sim_url, "SIGSCI_KIT_CREDENTIALS_SECRET": f"{prefix}/credentials",
                             "SIGSCI_KIT_STATE": f"s3://{bucket}/health", "SIGSCI_KIT_RULES": rules},
            "ack-url": {"SIGSCI_CORP": CORP, "SIGSCI_KIT_STATE": f"s3://{bucket}/health", "SIGSCI_KIT_RULES": rules},
        }
        yield {"sim": sim_url, "receiver": receiver, "s3": s3, "bucket": bucket, "work": work,
               "env": {name: {**aws_env, **values} for name, values in environments.items()}}


def bootstrap_command(function, work):
    """The zip's own bootstrap, unpacked; under qemu-user when it is built for another architecture."""
    directory = work / function
    directory.mkdir(exist_ok=True)
    with zipfile.ZipFile(zip_path(function)) as archive:
        archive.extract("bootstrap", directory)
    bootstrap = directory / "bootstrap"
    bootstrap.chmod(0o755)
    if platform.machine() == ELF["host"]:
        return [str(bootstrap)]
    qemu = shutil.which(ELF["qemu"])
    assert qemu, f"{ELF['qemu']} is missing: tests/deploy/install-deps.sh installs qemu-user"
    # qemu -L looks the program interpreter (and through it the libraries) up under the sysroot.
    assert Path(ELF["sysroot"] + ELF["interpreter"]).exists(), \
        f"no {ARCH} glibc under {ELF['sysroot']}: tests/deploy/install-deps.sh installs it"
    return [qemu, "-L", ELF["sysroot"], str(bootstrap)]


class Emulated:
    """`cargo lambda watch` serving the Runtime API, and the function's bootstrap polling it."""

    def __init__(self, function, env, work):
        self.function = function
        self.port = testkit.free_port()
        self.log = work / f"{function}.log"
        self.watch = subprocess.Popen(
            [*CARGO_LAMBDA, "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port)],
            cwd=ROOT / "functions" / function, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.process = None
        try:
            wait_port(self.port, seconds=60)
            runtime = {"AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{self.port}/.rt", "AWS_LAMBDA_FUNCTION_NAME": "_",
                       "AWS_LAMBDA_FUNCTION_VERSION": "1", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
                       "AWS_LAMBDA_LOG_LEVEL": "INFO"}
            # Lambda's own PATH, and no HOME: nothing of the host's (~/.aws) may stand in for the settings.
            base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC"}
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen(bootstrap_command(function, work), env={**base, **env, **runtime},
                                                stdout=log, stderr=subprocess.STDOUT)
        except BaseException:
            self.close()
            raise

    def invoke(self, event, timeout=600):
        """One invocation through the emulator; the function's JSON result, or a failed test with its log."""
        result = subprocess.run([*CARGO_LAMBDA, "invoke", "_", "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port),
                                 "--data-ascii", json.dumps(event)], capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{self.function}: {result.stdout}{result.stderr}\n--- function log\n{self.log.read_text()}"
        assert self.process.poll() is None, f"{self.function} exited ({self.process.returncode}):\n{self.log.read_text()}"
        return json.loads(result.stdout)

    def close(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
        os.killpg(self.watch.pid, signal.SIGTERM)
        try:
            self.watch.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.watch.pid, signal.SIGKILL)
            self.watch.wait(10)


def scheduler_event(schedule):
    """What EventBridge Scheduler delivers to a Lambda target whose schedule sets no input."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.scheduler",
        "account": ACCOUNT, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": REGION,
        "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{schedule}"], "detail": "{}",
    }


def function_url_event(method, url, headers=None, body=None):
    """A Lambda function URL request (payload format 2.0). Function URLs base64-encode form bodies."""
    parts = urlsplit(url)
    headers = {"host": parts.netloc, "user-agent": "Mozilla/5.0 (deploy test)", "x-forwarded-proto": "https",
               "x-forwarded-for": "203.0.113.7", "accept": "text/html", **(headers or {})}
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    now = time.time()
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": parts.path, "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": parts.netloc.split(".")[0], "domainName": parts.netloc,
            "domainPrefix": parts.netloc.split(".")[0],
            "http": {"method": method, "path": parts.path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                     "userAgent": headers["user-agent"]},
            "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = base64.b64encode(body.encode()).decode()
        event["isBase64Encoded"] = True
    return event


def truth(sim, site, start):
    reply = requests.get(f"{sim}/__sim/truth", params={"corp": CORP, "site": site, "from": start, "until": start + 3600}, timeout=30)
    reply.raise_for_status()
    return reply.json()["ids"]


def test_feed_export_on_its_schedule_writes_manifested_hours(bed):
    function = Emulated("feed-export", bed["env"]["feed-export"], bed["work"])
    try:
        reply = function.invoke(scheduler_event(f"sigsci-feed-export-{CORP}"))
    finally:
        function.close()
    # The whole retention in one run: a day of complete hours (the current one is pending).
    assert reply["hours_exported"] >= 23 and reply["hours_lost"] == 0, json.dumps(reply)
    s3, bucket = bed["s3"], bed["bucket"]
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="feed/")
            for obj in page.get("Contents", [])]
    manifests = sorted(key for key in keys if key.endswith("/_manifest.json"))
    assert len(manifests) == reply["hours_exported"], (len(manifests), json.dumps(reply))
    assert all(key.startswith(f"feed/corp={CORP}/site=site-1/") for key in manifests), manifests[:3]
    # The newest complete hour holds exactly what the API served for it.
    newest = manifests[-1]
    hour = time.strptime(re.search(r"dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/", newest).group(0), "dt=%Y-%m-%d/hour=%H/")
    start = calendar.timegm(hour)
    ids = []
    for key in keys:
        if key.startswith(newest.rsplit("/", 1)[0] + "/part-"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            ids.extend(json.loads(line)["id"] for line in gzip.decompress(body).splitlines())
    assert sorted(ids) == truth(bed["sim"], "site-1", start), newest


def test_agent_health_on_its_schedule_notifies_and_ack_url_records_the_acknowledgement(bed):
    requests.put(f"{bed['sim']}/__sim/sites/site-1/agents", json={"online": 0}, timeout=10).raise_for_status()
    function = Emulated("agent-health", bed["env"]["agent-health"], bed["work"])
    try:
        report = function.invoke(scheduler_event(f"sigsci-agent-health-{CORP}"))
    finally:
        function.close()
    assert report["sites_evaluated"] == report["sites_total"] == 2 and not report["sites_failed"], json.dumps(report)
    assert report["notifications_sent"] >= 2 and report["notifications_failed"] == 0, json.dumps(report)
    recorded = bed["receiver"].recorded
    hooks = [json.loads(r["body"]) for r in recorded if r["path"] == "/hook"]
    assert any(n["check"] == CHECK and n["status"] == "firing" for hook in hooks for n in hook["notifications"]), hooks
    slack = [json.loads(r["body"]) for r in recorded if r["path"].startswith("/services/")]
    links = [block["accessory"]["url"] for message in slack for block in message.get("blocks", [])
             if "accessory" in block and "no_agents_online" in block["accessory"].get("url", "")]
    assert links, f"no acknowledgement link in the Slack messages: {slack}"
    link = links[0]
    assert link.startswith(FUNCTION_URL + "/ack?"), link

    state_key = f"health/agent-health/{CORP}.json"
    function = Emulated("ack-url", bed["env"]["ack-url"], bed["work"])
    try:
        page = function.invoke(function_url_event("GET", link))
        assert page["statusCode"] == 200, page
        html = base64.b64decode(page["body"]).decode() if page.get("isBase64Encoded") else page["body"]
        assert "<h1>Acknowledge this alert?</h1>" in html, html
        form = HiddenInputs()
        form.feed(html)
        assert form.fields, html
        before = json.loads(bed["s3"].get_object(Bucket=bed["bucket"], Key=state_key)["Body"].read())
        assert not before["conditions"][CHECK].get("acks", {}).get("whole"), before["conditions"][CHECK]
        # The browser posts the form to the same function URL.
        done = function.invoke(function_url_event(
            "POST", f"{FUNCTION_URL}/ack", headers={"content-type": "application/x-www-form-urlencoded"},
            body=urlencode([*form.fields, ("by", "Deploy Test")])))
        assert done["statusCode"] == 200, done
        html = base64.b64decode(done["body"]).decode() if done.get("isBase64Encoded") else done["body"]
        assert "Acknowledged by Deploy Test (link from slack)" in html, html
        # The same link again: nothing to do.
        again = function.invoke(function_url_event("GET", link))
        html = base64.b64decode(again["body"]).decode() if again.get("isBase64Encoded") else again["body"]
        assert again["statusCode"] == 200 and "Already acknowledged" in html, again
        # A tampered link is refused.
        refused = function.invoke(function_url_event("GET", link.replace("site-1%2Fno_agents_online", "site-2%2Fno_agents_online")))
        assert refused["statusCode"] == 403, refused
    finally:
        function.close()
    state = json.loads(bed["s3"].get_object(Bucket=bed["bucket"], Key=state_key)["Body"].read())
    ack = state["conditions"][CHECK]["acks"]["whole"]
    assert ack["by"] == "Deploy Test (link from slack)" and ack["how"] == "link", ack
    assert state["ack_log"][-1]["via"] == "slack", state["ack_log"][-1]
