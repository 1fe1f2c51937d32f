"""`feed export --format both|ocsf-parquet` end to end (docs/ocsf-mapping.md).

The CLI reads the simulator through a proxy that makes some records odd (unicode headers, no
response, many tags, IPv6 and invalid addresses, unknown fields, a null, a method OCSF does not
enumerate, a hostname with a port). pyarrow reads the Parquet back and every event must rebuild the
NDJSON record of the same hour exactly, by the inverse the mapping table states (read from the
docs, which a Rust test keeps equal to the code), and validate against the OCSF 1.1.0 JSON schema
(ocsf-json-schema's offline copy of the schema, checked by jsonschema). A killed run under faults
leaves both outputs exact.
"""
import contextlib
import datetime
import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import jsonschema
import pyarrow.parquet as pq
import pytest
import requests
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

import testkit

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "target" / "release" / "sigsci-kit"
CORP = "testcorp"
SITES = ["site-1", "site-2"]
OCSF_VERSION = "1.1.0"


def mapping_table():
    """(vendor field, OCSF attribute path) rows of the first table of docs/ocsf-mapping.md."""
    text = (ROOT / "docs" / "ocsf-mapping.md").read_text()
    section = text.split("## The vendor's fields", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("vendor field", "---"):
            rows.append((cells[0], cells[1].strip("`")))
    assert len(rows) > 20, rows
    return rows


MAPPING = mapping_table()
INTEGERS = {"responseCode", "agentResponseCode", "responseSize", "responseMillis"}
# A value that is no address (no hostname) names the endpoint instead (the table says so).
ALTERNATES = {"remoteIP": "src_endpoint.name", "serverHostname": "dst_endpoint.name"}
LISTS = {"headersIn", "headersOut", "tags"}


# --- the proxy that makes odd records ---------------------------------------------------------------

def kind(record_id, modulus):
    return hashlib.sha1(record_id.encode()).digest()[0] % modulus


def make_odd(record):
    """Deterministic by id, so a page fetched twice (retries, restarts) is the same both times."""
    rid = record["id"]
    if kind(rid, 6) == 0:
        record["headersIn"] = list(record.get("headersIn") or []) + [["X-Grüße", "日本語 ✓ \"q\" \\ \t end"]]
    if kind(rid, 7) == 1:  # no response
        record.update(responseCode=0, responseSize=0, responseMillis=0, headersOut=None)
    if kind(rid, 9) == 2:
        record["tags"] = [{"type": f"SIG{i}", "location": "QUERY", "value": f"välue {i}", "detector": "d", "redactions": i}
                          for i in range(25)]
    if kind(rid, 10) == 3:
        record["remoteIP"] = f"2001:db8:{kind(rid, 251):x}::{kind(rid, 241):x}"
    if kind(rid, 11) == 4:
        record["futureField"] = {"a": [1, "ü", None]}
        record["remoteIP"] = "unknown"
    if kind(rid, 13) == 5:
        record["method"] = "PATCH"
        record["serverName"] = record["serverName"] + ":8443"
    if kind(rid, 17) == 6:
        record["userAgent"] = None
    return record


def make_page_odd(body):
    try:
        page = json.loads(body)
    except ValueError:
        return body  # a malformed page (a simulator fault) goes through as it is
    if isinstance(page, dict) and isinstance(page.get("data"), list):
        page["data"] = [make_odd(r) for r in page["data"]]
        return json.dumps(page, ensure_ascii=False).encode()
    return body


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "connection", "accept-encoding")}
        try:
            reply = requests.request(self.command, self.server.upstream + self.path, data=body,
                                     headers=headers, timeout=60)
        except requests.RequestException:
            self.close_connection = True  # the upstream dropped the connection: so do we
            return
        content = reply.content
        if reply.status_code == 200 and "/feed/requests" in self.path:
            content = make_page_odd(content)
        self.send_response(reply.status_code)
        for name in ("Content-Type", "Retry-After"):
            if name in reply.headers:
                self.send_header(name, reply.headers[name])
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def odd_proxy(upstream):
    with serving(_Proxy, upstream=upstream) as url:
        yield url


@contextlib.contextmanager
def serving(handler, **attrs):
    """A local HTTP server with `handler`; `attrs` are set on the server for the handler to read."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attrs.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def sim():
    with testkit.simulator("--sites", "2", "--rps", "4", kit=CLI) as url:
        yield url


# --- reading both outputs back -----------------------------------------------------------------------

def last_hours(sim_url, count):
    now = requests.get(sim_url + "/__sim/clock").json()["now"]
    newest = (now - 300) // 3600 * 3600 - 3600
    return [newest - 3600 * i for i in reversed(range(count))]


def hive(site, start):
    t = time.gmtime(start)
    return Path(f"corp={CORP}") / f"site={site}" / time.strftime("dt=%Y-%m-%d", t) / time.strftime("hour=%H", t)


def ndjson_records(out, site, start):
    records = []
    for part in sorted((out / hive(site, start)).glob("part-*.ndjson.gz")):
        with gzip.open(part, "rt", encoding="utf-8") as f:
            records.extend(json.loads(line) for line in f)
    return records


def parquet_events(files):
    events = []
    for path in files:
        table = pq.read_table(path)
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"
        events.extend(table.to_pylist())
    return events


def manifest(out, site, start):
    return json.loads((out / hive(site, start) / "_manifest.json").read_text())


def truth(sim_url, site, start):
    reply = requests.get(sim_url + "/__sim/truth", params={"corp": CORP, "site": site, "from": start, "until": start + 3600})
    return sorted(reply.json()["ids"])


def api_env(api_url):
    return testkit.sim_env(api_url, RUST_LOG="warn")


def feed(api_url, *args, check=True):
    return subprocess.run([str(CLI), "feed", *args], env=api_env(api_url), capture_output=True, text=True,
                          check=check, timeout=600)


# --- the inverse of the mapping, and the schema ------------------------------------------------------

def at(event, path):
    value = event
    for name in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def epoch_ms(rfc3339):
    return int(datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


INVERSE = {
    "timestamp": lambda ms: ms,  # compared as the same instant: the record's is turned into ms too
    "agentResponseCode": lambda text: None if text is None else int(text),
    "headersIn": lambda hs: None if hs is None else [[h["name"], h["value"]] for h in hs],
    "headersOut": lambda hs: None if hs is None else [[h["name"], h["value"]] for h in hs],
    "tags": lambda es: None if es is None else [
        {"type": e["name"], "value": e["value"], **json.loads(e["data"])} for e in es],
}


def rebuild(event):
    """The vendor record, from the event alone, by the table's inverse."""
    unmapped = json.loads(event["unmapped"]) if event.get("unmapped") else {}
    record = {}
    for vendor, path in MAPPING:
        if vendor.startswith("("):
            continue
        if vendor in unmapped:
            record[vendor] = unmapped[vendor]
            continue
        value = at(event, path)
        if value is None and vendor in ALTERNATES:
            value = at(event, ALTERNATES[vendor])
        value = INVERSE.get(vendor, lambda v: v)(value)
        if value is None and vendor not in INTEGERS | LISTS:
            value = ""  # an empty string is an absent attribute
        if value is not None or vendor in LISTS:
            record[vendor] = value
    for name, value in unmapped.items():
        record.setdefault(name, value)
    return record


def expected(record):
    return dict(record, timestamp=epoch_ms(record["timestamp"]))


def as_ocsf_json(event):
    """The Parquet row as an OCSF JSON event: no nulls, JSON-typed attributes as objects."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    out = clean(event)
    if "unmapped" in out:
        out["unmapped"] = json.loads(out["unmapped"])
    for enrichment in out.get("enrichments", []):
        enrichment["data"] = json.loads(enrichment["data"])
    return out


@pytest.fixture(scope="module")
def validator():
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))
    name = schema.lookup_class_name_from_uid(class_uid=4002)
    return jsonschema.Draft202012Validator(schema.get_class_schema(class_name=name, profiles=[]))


def schema_errors(validator, event):
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:160]}" for e in validator.iter_errors(event)]


def check_hour(out, ocsf_files, site, start, validator):
    """Every event rebuilds its NDJSON record and validates; the same ids, once each, nothing lost."""
    records = {r["id"]: r for r in ndjson_records(out, site, start)}
    events = parquet_events(ocsf_files)
    ids = [e["metadata"]["uid"] for e in events]
    assert len(ids) == len(set(ids)), f"{site} {start}: duplicate events"
    assert sorted(ids) == sorted(records), f"{site} {start}: events and NDJSON records differ"
    for event in events:
        record = records[event["metadata"]["uid"]]
        assert rebuild(event) == expected(record), json.dumps(record, ensure_ascii=False)
        errors = schema_errors(validator, as_ocsf_json(event))
        assert not errors, f"{record['id']}: {errors}"
        assert (event["class_uid"], event["category_uid"]) == (4002, 4)
        assert event["type_uid"] == 400200 + event["activity_id"]
        assert event["metadata"]["version"] == OCSF_VERSION
        assert (event["metadata"]["tenant_uid"], event["metadata"]["log_name"]) == (CORP, site)
    return events


def test_every_event_rebuilds_its_ndjson_record_and_validates(sim, tmp_path, validator):
    out = tmp_path / "feed"
    start = last_hours(sim, 1)[0]
    with odd_proxy(sim) as api:
        run = feed(api, "export", "--site", SITES[0], "--site", SITES[1], "--out", str(out), "--format", "both",
                   "--from", str(start), "--until", str(start + 3600))
    assert "exported 2 hours" in run.stdout, run.stdout + run.stderr
    events = []
    for site in SITES:
        listed = manifest(out, site, start)["ocsf"]
        assert (listed["version"], listed["layout"], listed["compression"]) == (OCSF_VERSION, "hive", "snappy")
        files = sorted((out / "ocsf" / hive(site, start)).glob("*.parquet"))
        assert sorted(str(f.relative_to(out / "ocsf")) for f in files) == sorted(p["name"] for p in listed["parts"])
        assert sum(p["records"] for p in listed["parts"]) == manifest(out, site, start)["records"]
        events += check_hour(out, files, site, start, validator)
    # The corpus had every odd kind, and every attribute of the table was filled somewhere.
    unmapped = [json.loads(e["unmapped"]) for e in events if e["unmapped"]]
    assert any("futureField" in u for u in unmapped) and any("serverName" in u for u in unmapped)
    assert any(at(e, "src_endpoint.name") == "unknown" for e in events), "no invalid address"
    assert any(u.get("method") == "PATCH" for u in unmapped) and any(u.get("userAgent", 0) is None for u in unmapped)
    assert any(":" in (at(e, "src_endpoint.ip") or "") for e in events), "no IPv6 address"
    assert any(at(e, "http_response.http_headers") is None and at(e, "http_response.code") == 0 for e in events)
    assert any(len(e["enrichments"] or []) >= 25 for e in events), "no record with many tags"
    assert any("日本語" in h["value"] for e in events for h in at(e, "http_request.http_headers") or [])
    for vendor, path in MAPPING:
        assert any(at(e, path) is not None for e in events), f"{path} ({vendor}) is never filled"


def test_a_field_that_breaks_the_schema_fails_validation(sim, tmp_path, validator):
    out = tmp_path / "feed"
    start = last_hours(sim, 1)[0]
    feed(sim, "export", "--site", "site-1", "--out", str(out), "--format", "ocsf-parquet",
         "--from", str(start), "--until", str(start + 3600))
    event = as_ocsf_json(parquet_events(sorted((out / "ocsf").glob("**/*.parquet")))[0])
    assert not schema_errors(validator, event)
    breakages = {
        "an unknown attribute": lambda e: e.update(bogus=1),
        "a status code as text": lambda e: e["http_response"].update(code="200"),
        "an address that is none": lambda e: e["src_endpoint"].update(ip="not-an-ip"),
        "a method OCSF does not list": lambda e: e["http_request"].update(http_method="PATCH"),
        "an empty hostname": lambda e: e["dst_endpoint"].update(hostname=""),
        "no metadata": lambda e: e.pop("metadata"),
        "an activity out of the enum": lambda e: e.update(activity_id=77),
    }
    for what, breakage in breakages.items():
        broken = json.loads(json.dumps(event))
        breakage(broken)
        assert schema_errors(validator, broken), f"{what} passed validation"


def test_killed_both_export_under_faults_reruns_to_exact_outputs(sim, tmp_path, validator):
    out = tmp_path / "feed"
    hours = last_hours(sim, 2)
    window = ["--from", str(hours[0]), "--until", str(hours[-1] + 3600)]
    sites = [a for s in SITES for a in ("--site", s)]
    requests.put(sim + "/__sim/faults", json={"page_latency_ms": 150}).raise_for_status()
    proc = subprocess.Popen([str(CLI), "feed", "export", *sites, "--out", str(out), "--format", "both",
                             "--lease-ttl", "10", *window],
                            env=api_env(sim), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("ocsf/**/part-*.parquet")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob("ocsf/**/part-*.parquet")), "the exporter wrote no Parquet part before the kill"
    assert len(list(out.glob("**/_manifest.json"))) < len(SITES) * len(hours), "the kill came too late"

    # The rerun meets the simulator's faults too.
    requests.put(sim + "/__sim/faults", json={"rate_limit_429": 0.1, "server_error": 0.05, "reset": 0.03,
                                              "malformed": 0.03, "cursor_ttl_secs": 2}).raise_for_status()
    time.sleep(11)  # the killed run's leases expire
    feed(sim, "export", *sites, "--out", str(out), "--format", "both", "--lease-ttl", "10", *window)
    requests.put(sim + "/__sim/faults", json={}).raise_for_status()
    hidden = [str(p) for p in out.glob("**/.*") if p.is_file()]
    assert not hidden, f"the killed run's temp or lock files are left: {hidden}"
    for site in SITES:
        for start in hours:
            listed = manifest(out, site, start)["ocsf"]["parts"]
            files = sorted((out / "ocsf" / hive(site, start)).glob("*"))
            assert sorted(str(f.relative_to(out / "ocsf")) for f in files) == sorted(p["name"] for p in listed)
            events = check_hour(out, files, site, start, validator)
            assert sorted(e["metadata"]["uid"] for e in events) == truth(sim, site, start)


def test_ocsf_only_in_the_security_lake_layout(sim, tmp_path, validator):
    out, lake = tmp_path / "feed", tmp_path / "lake"
    start = last_hours(sim, 1)[0]
    lake_flags = ["--ocsf-layout", "security-lake", "--ocsf-source", "sigsci", "--ocsf-region", "eu-west-1",
                  "--ocsf-account-id", "123456789012", "--ocsf-out", str(lake)]
    feed(sim, "export", "--site", "site-1", "--out", str(out), "--format", "ocsf-parquet", *lake_flags,
         "--from", str(start), "--until", str(start + 3600))
    assert not list(out.glob("**/*.ndjson.gz")), "ocsf-parquet wrote NDJSON"
    day = time.strftime("%Y%m%d", time.gmtime(start))
    directory = lake / "ext" / "sigsci" / "region=eu-west-1" / "accountId=123456789012" / f"eventDay={day}"
    files = sorted(directory.glob("*.parquet"))
    assert files and all(f.name.startswith(f"{CORP}~site-1~{time.strftime('%Y%m%d%H', time.gmtime(start))}~part-")
                         for f in files), files
    events = parquet_events(files)
    assert sorted(e["metadata"]["uid"] for e in events) == truth(sim, "site-1", start)
    for event in events[:500]:
        assert not schema_errors(validator, as_ocsf_json(event))
    assert manifest(out, "site-1", start)["ocsf"]["layout"] == "security-lake"
    verify = feed(sim, "verify", "--out", str(out), "--ocsf-out", str(lake), "--site", "site-1", "--hour", str(start))
    assert "OK" in verify.stdout and f"{len(files)} parts, {len(events)} events" in verify.stdout, verify.stdout
    # The parts are checked where they are: not under the default OUT/ocsf.
    elsewhere = feed(sim, "verify", "--out", str(out), "--site", "site-1", "--hour", str(start), check=False)
    assert elsewhere.returncode == 1 and "missing" in elsewhere.stdout, elsewhere.stdout


@pytest.mark.parametrize("flags, message", [
    (["--format", "parquet"], "--format"),
    (["--format", "both", "--ocsf-layout", "security-lake"], "--ocsf-source"),
    (["--format", "both", "--ocsf-layout", "security-lake", "--ocsf-source", "s", "--ocsf-region", "eu-west-1",
      "--ocsf-account-id", "12"], "--ocsf-account-id"),
])
def test_bad_ocsf_flags_are_one_clear_error(sim, tmp_path, flags, message):
    run = feed(sim, "export", "--out", str(tmp_path / "feed"), *flags, check=False)
    assert run.returncode in (1, 2), run
    assert message in run.stderr, run.stderr
    assert not (tmp_path / "feed").exists() or not list((tmp_path / "feed").glob("**/*.parquet"))


# --- verify and the summary -------------------------------------------------------------------------

def test_verify_checks_the_parquet_parts_and_the_summary_shows_them(sim, tmp_path):
    out = tmp_path / "feed"
    start = last_hours(sim, 1)[0]
    run = feed(sim, "export", "--site", "site-1", "--out", str(out), "--format", "both", "-o", "json",
               "--from", str(start), "--until", str(start + 3600))
    listed = manifest(out, "site-1", start)["ocsf"]["parts"]
    report = json.loads(run.stdout)
    [hour] = report["sites"][0]["exported"]
    assert hour["ocsf"] == {"parts": len(listed), "records": hour["records"],
                            "bytes": sum(p["bytes"] for p in listed)}, hour
    ndjson_only = feed(sim, "export", "--site", "site-2", "--out", str(out), "-o", "json",
                       "--from", str(start), "--until", str(start + 3600))
    assert "ocsf" not in json.loads(ndjson_only.stdout)["sites"][0]["exported"][0]

    # The table names the OCSF output beside the NDJSON's columns.
    again = tmp_path / "again"
    table = feed(sim, "export", "--site", "site-1", "--out", str(again), "--format", "both",
                 "--from", str(start), "--until", str(start + 3600))
    [line] = [l for l in table.stdout.splitlines() if l.startswith("site-1 ")]
    assert f"ocsf: {hour['records']:>9} records  {len(listed):>3} parts" in line, table.stdout

    def verify():
        return feed(sim, "verify", "--out", str(out), "--site", "site-1", "--hour", str(start), check=False)

    good = verify()
    assert good.returncode == 0 and "the OCSF parts parse and hold the same ids" in good.stdout, good.stdout
    part = out / "ocsf" / listed[0]["name"]
    body = part.read_bytes()
    # Truncated: no footer.
    part.write_bytes(body[: len(body) // 2])
    bad = verify()
    assert bad.returncode == 1 and f"{len(body) // 2} bytes, manifest says {len(body)}" in bad.stdout, bad.stdout
    assert f"problem: OCSF part {listed[0]['name']}: not a readable Parquet file" in bad.stdout, bad.stdout
    assert "problem(s) found" in bad.stderr, bad.stderr
    # Bytes flipped in the footer, the size kept.
    flipped = bytearray(body)
    for i in range(len(body) - 40, len(body) - 24):
        flipped[i] ^= 0xA5
    part.write_bytes(bytes(flipped))
    bad = verify()
    assert bad.returncode == 1 and f"OCSF part {listed[0]['name']}: sha256" in bad.stdout, bad.stdout
    assert "not a readable Parquet file" in bad.stdout, bad.stdout
    # Missing.
    part.unlink()
    bad = verify()
    assert bad.returncode == 1 and f"problem: OCSF part {listed[0]['name']}: missing" in bad.stdout, bad.stdout
    part.write_bytes(body)
    assert verify().returncode == 0


# --- S3 on moto: both layouts, the lake through an assumed role ---------------------------------------

def moto():
    url = os.environ.get("SIGSCI_KIT_TEST_MOTO_URL")
    assert url, "SIGSCI_KIT_TEST_MOTO_URL is not set: run tests/run.sh feed, or tests/services.sh up DIR moto and source DIR/env"
    aws = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return url, boto3.client("s3", **aws)


def keys(s3, bucket, prefix=""):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def export_and_verify(cli, name, flags, feed_bucket, start, role):
    out = f"s3://{feed_bucket}/{name}"
    window = ["--site", "site-1", "--out", out, "--format", "both", "--from", str(start), "--until", str(start + 3600)]
    run = cli("export", *window, *flags)
    assert run.returncode == 0 and "ocsf:" in run.stdout, run.stdout + run.stderr
    ocsf_out = [f for f in flags if f.startswith("s3://")] or [f"{out}/ocsf"]
    role_flags = ["--ocsf-role-arn", role] if "--ocsf-role-arn" in flags else []
    verify = cli("verify", "--corp", CORP, "--out", out, "--ocsf-out", ocsf_out[0], *role_flags,
                 "--site", "site-1", "--hour", str(start))
    assert verify.returncode == 0 and "the OCSF parts parse and hold the same ids" in verify.stdout, \
        verify.stdout + verify.stderr


class _Recorder(BaseHTTPRequestHandler):
    """Forwards S3 and STS requests to moto as they are, noting each S3 request's bucket and signing
    key, and each AssumeRole's role and the key it issued."""
    protocol_version = "HTTP/1.1"

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        match = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        self.server.signed.append((self.path.lstrip("/").split("/", 1)[0].split("?", 1)[0],
                                   match.group(1) if match else None))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "expect")}
        reply = requests.request(self.command, self.server.upstream + self.path, data=body, headers=headers,
                                 stream=True, timeout=60)
        content = reply.raw.read(decode_content=False)
        if body and b"Action=AssumeRole" in body:
            role = re.search(rb"RoleArn=([^&]+)", body)
            issued = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", content)
            self.server.assumed.append((urllib.parse.unquote(role.group(1).decode()) if role else None,
                                        issued.group(1).decode() if issued else None))
        self._reply(reply, content)

    def _reply(self, reply, content):
        self.send_response(reply.status_code)
        for name, value in reply.raw.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", reply.headers.get("Content-Length", "0") if self.command == "HEAD"
                         else str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def signature_recorder(upstream, signed, assumed):
    with serving(_Recorder, upstream=upstream, signed=signed, assumed=assumed) as url:
        yield url


def test_both_formats_into_s3_in_both_layouts_verify(sim, tmp_path):
    moto_url, s3 = moto()
    feed_bucket, lake_bucket = f"feed-ocsf-{os.getpid()}", f"lake-ocsf-{os.getpid()}"
    for bucket in (feed_bucket, lake_bucket):
        s3.create_bucket(Bucket=bucket)
    start = last_hours(sim, 1)[0]
    t = time.gmtime(start)
    role = f"arn:aws:iam::123456789012:role/lake-writer-{os.getpid()}"
    env = dict(api_env(sim), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    lake = ["--ocsf-layout", "security-lake", "--ocsf-source", "sigsci", "--ocsf-region", "eu-west-1",
            "--ocsf-account-id", "123456789012", "--ocsf-out", f"s3://{lake_bucket}", "--ocsf-role-arn", role]
    runs = {"hive": [], "lake": lake}

    signed = []  # (bucket, access key id) of every S3 request the CLI made
    assumed = []  # (role ARN, access key id issued) of every AssumeRole

    def cli(*args):
        return subprocess.run([str(CLI), "feed", *args, "--s3-endpoint", proxy], env=dict(env, AWS_ENDPOINT_URL_STS=proxy),
                              capture_output=True, text=True, timeout=600)

    with signature_recorder(moto_url, signed, assumed) as proxy:
        for name, flags in runs.items():
            export_and_verify(cli, name, flags, feed_bucket, start, role)

    hive_part = f"corp={CORP}/site=site-1/" + time.strftime("dt=%Y-%m-%d/hour=%H/", t)
    ndjson = [k for k in keys(s3, feed_bucket, "hive/") if k.startswith(f"hive/{hive_part}part-")]
    parquet = keys(s3, feed_bucket, "hive/ocsf/")
    assert ndjson and all(k.endswith(".ndjson.gz") for k in ndjson), ndjson
    assert parquet == sorted(f"hive/ocsf/{hive_part}{k.rsplit('/', 1)[1][:-len('.ndjson.gz')]}.parquet" for k in ndjson)
    lake_keys = keys(s3, lake_bucket)
    prefix = (f"ext/sigsci/region=eu-west-1/accountId=123456789012/eventDay={time.strftime('%Y%m%d', t)}/"
              f"{CORP}~site-1~{time.strftime('%Y%m%d%H', t)}~part-")
    assert lake_keys and all(k.startswith(prefix) and k.endswith(".parquet") for k in lake_keys), lake_keys
    assert not keys(s3, feed_bucket, "lake/ocsf/"), "the lake run wrote OCSF beside the feed"
    listed = json.loads(s3.get_object(Bucket=feed_bucket, Key=f"lake/{hive_part}_manifest.json")["Body"].read())
    assert sorted(p["name"] for p in listed["ocsf"]["parts"]) == lake_keys
    # The export and the verify each assumed the lake's role once (the S3 client caches the credentials).
    assert [arn for arn, _ in assumed] == [role, role], assumed
    issued = {key_id for _, key_id in assumed}
    assert len(issued) == 2 and None not in issued, assumed
    # Every request to the lake was signed with a key STS issued for the role; the feed's with ours.
    signers = {}
    for bucket, key_id in signed:
        signers.setdefault(bucket, set()).add(key_id)
    assert signers[lake_bucket] and signers[lake_bucket] <= issued, (signers, issued)
    assert signers[feed_bucket] == {"testing"}, signers
