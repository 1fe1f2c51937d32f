"""`sigsci-kit feed` end to end: a real simulator process and the CLI as a process (killed mid-hour and
rerun, to a directory and to S3 on moto). The Lambda is tested from its package in tests/deploy."""
import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import requests

import testkit

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "target" / "release" / "sigsci-kit"
CORP = "testcorp"
SITES = ["site-1", "site-2"]


@pytest.fixture()
def sim():
    with testkit.simulator("--sites", "2", "--rps", "8", kit=CLI) as url:
        yield url


def api_env(sim_url):
    return testkit.sim_env(sim_url, RUST_LOG="warn")


def last_hours(sim_url, count):
    now = requests.get(sim_url + "/__sim/clock").json()["now"]
    newest = (now - 300) // 3600 * 3600 - 3600
    return [newest - 3600 * i for i in reversed(range(count))]


def hour_dir(out, site, start):
    t = time.gmtime(start)
    return Path(out) / f"corp={CORP}" / f"site={site}" / time.strftime("dt=%Y-%m-%d", t) / time.strftime("hour=%H", t)


def partition_ids(directory):
    """Every id in the partition, as a scan of all part files (Athena-style) reads them."""
    ids = []
    for part in sorted(Path(directory).glob("part-*.ndjson.gz")):
        with gzip.open(part, "rt") as f:
            ids.extend(json.loads(line)["id"] for line in f)
    return ids


def truth(sim_url, site, start):
    reply = requests.get(sim_url + "/__sim/truth", params={"corp": CORP, "site": site, "from": start, "until": start + 3600})
    return sorted(reply.json()["ids"])


def feed(sim_url, *args, check=True):
    return subprocess.run([str(CLI), "feed", *args], env=api_env(sim_url), capture_output=True, text=True, check=check, timeout=600)


def test_killed_export_reruns_to_an_exact_result(sim, tmp_path):
    out = tmp_path / "feed"
    hours = last_hours(sim, 2)
    window = ["--from", str(hours[0]), "--until", str(hours[-1] + 3600)]
    sites = [a for s in SITES for a in ("--site", s)]
    # Slow pages so the kill lands mid-hour.
    requests.put(sim + "/__sim/faults", json={"page_latency_ms": 150}).raise_for_status()
    proc = subprocess.Popen([str(CLI), "feed", "export", *sites, "--out", str(out), "--lease-ttl", "10", *window],
                            env=api_env(sim), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed once a part is done and the next one is being written (its hidden temp file exists).
    deadline = time.time() + 120
    while time.time() < deadline and not (list(out.glob("**/part-*.ndjson.gz")) and list(out.glob("**/.part-*.tmp-*"))):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob("**/part-*.ndjson.gz")), "the exporter wrote no part before the kill"
    assert list(out.glob("**/.part-*.tmp-*")), "the kill must leave a part being written"
    manifests = list(out.glob("**/_manifest.json"))
    assert len(manifests) < len(SITES) * len(hours), "the kill must land before every hour is complete"

    requests.put(sim + "/__sim/faults", json={}).raise_for_status()
    time.sleep(11)  # the killed run's leases expire
    rerun = feed(sim, "export", *sites, "--out", str(out), "--lease-ttl", "10", *window)
    assert "busy" not in rerun.stdout, rerun.stdout
    hidden = [str(p) for p in out.glob("**/.*") if p.is_file()]
    assert not hidden, f"the killed run's temp or lock files are left: {hidden}"
    for site in SITES:
        for start in hours:
            directory = hour_dir(out, site, start)
            ids = partition_ids(directory)
            assert len(ids) == len(set(ids)), f"{directory}: duplicates"
            assert sorted(ids) == truth(sim, site, start), f"{directory}: not the truth"
            assert (directory / "_manifest.json").exists()
            verify = feed(sim, "verify", "--out", str(out), "--site", site, "--hour", str(start))
            assert "OK" in verify.stdout, verify.stdout
    # Rerunning complete hours writes nothing.
    before = {p: p.stat().st_mtime_ns for p in out.glob("**/*")}
    again = feed(sim, "export", *sites, "--out", str(out), *window)
    assert "already complete, skipped" in again.stdout, again.stdout
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("**/*")}


def moto_clients():
    moto = os.environ.get("SIGSCI_KIT_TEST_MOTO_URL")
    assert moto, "SIGSCI_KIT_TEST_MOTO_URL is not set: run tests/run.sh feed, or tests/services.sh up DIR moto and source DIR/env"
    aws = dict(endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return moto, boto3.client("s3", **aws)


def test_a_multipart_upload_killed_midway_leaves_nothing_visible(sim, tmp_path):
    moto, s3 = moto_clients()
    bucket = f"feed-kill-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    start = last_hours(sim, 1)[0]
    t = time.gmtime(start)
    prefix = f"feeds/corp={CORP}/site=site-1/" + time.strftime("dt=%Y-%m-%d/hour=%H/", t)
    # Uncompressed parts of about 14 MB (two 8 MiB multipart parts each) and slow pages, so the
    # kill lands while a multipart upload is open.
    requests.put(sim + "/__sim/faults", json={"page_latency_ms": 100}).raise_for_status()
    args = ["export", "--site", "site-1", "--out", f"s3://{bucket}/feeds", "--s3-endpoint", moto, "--gzip-level", "0",
            "--lease-ttl", "10", "--from", str(start), "--until", str(start + 3600)]
    env = dict(api_env(sim), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    proc = subprocess.Popen([str(CLI), "feed", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads"):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    open_uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert open_uploads, "the kill must land while a multipart upload is open"
    visible = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}
    assert not {u["Key"] for u in open_uploads} & visible, "an interrupted upload is visible"
    assert prefix + "_manifest.json" not in visible

    requests.put(sim + "/__sim/faults", json={}).raise_for_status()
    time.sleep(11)  # the killed run's lease expires
    rerun = subprocess.run([str(CLI), "feed", *args], env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert not s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads"), "the abandoned upload is left"
    ids = []
    for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        if o["Key"].rsplit("/", 1)[1].startswith("part-"):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            ids.extend(json.loads(line)["id"] for line in gzip.decompress(body).splitlines())
    assert len(ids) == len(set(ids)) and sorted(ids) == truth(sim, "site-1", start)


def test_verify_detects_tampering_and_status_reports(sim, tmp_path):
    out = tmp_path / "feed"
    start = last_hours(sim, 1)[0]
    feed(sim, "backfill", "--site", "site-1", "--out", str(out), "--from", str(start), "--until", str(start + 3600))
    status = feed(sim, "status", "--site", "site-1", "--out", str(out))
    assert status.stdout.splitlines()[1].split()[:2] == ["site-1", "1"], status.stdout
    part = sorted(hour_dir(out, "site-1", start).glob("part-*.ndjson.gz"))[0]
    part.write_bytes(gzip.compress(b'{"id":"x","timestamp":"2000-01-01T00:00:00Z"}\n'))
    verify = feed(sim, "verify", "--out", str(out), "--site", "site-1", "--hour", str(start), check=False)
    assert verify.returncode == 1 and "sha256" in verify.stdout, verify.stdout + verify.stderr


def test_status_validates_its_inputs(sim, tmp_path):
    out = tmp_path / "feed"
    start = last_hours(sim, 1)[0]
    feed(sim, "backfill", "--site", "site-1", "--out", str(out), "--from", str(start), "--until", str(start + 3600))
    unknown = feed(sim, "status", "--site", "site-1", "--site", "no-such-site", "--out", str(out), check=False)
    assert unknown.returncode == 1 and unknown.stdout == "", unknown.stdout + unknown.stderr
    assert "no-such-site" in unknown.stderr and "site-1" in unknown.stderr, unknown.stderr
    # A site of the corp that was never exported here says so instead of listing every hour pending.
    both = feed(sim, "status", "--out", str(out))
    assert both.stdout.splitlines()[1].split()[:2] == ["site-1", "1"], both.stdout
    site_2 = [line for line in both.stdout.splitlines() if line.startswith("site-2")]
    assert len(site_2) == 1 and "no ledger" in site_2[0], both.stdout
    # An --out with no ledger at all is a mistake to name, not a table of pending hours.
    empty = feed(sim, "status", "--out", str(tmp_path / "elsewhere"), check=False)
    assert empty.returncode == 1 and empty.stdout == "", empty.stdout + empty.stderr
    assert "no ledger" in empty.stderr and "elsewhere" in empty.stderr, empty.stderr
    moto = os.environ.get("SIGSCI_KIT_TEST_MOTO_URL")
    assert moto, "SIGSCI_KIT_TEST_MOTO_URL is not set: run tests/run.sh feed, or tests/services.sh up DIR moto and source DIR/env"
    missing = feed(sim, "status", "--site", "site-1", "--out", "s3://no-such-feed-bucket/x", "--s3-endpoint", moto, check=False)
    assert missing.returncode == 1 and missing.stdout == "", missing.stdout + missing.stderr
    assert "no-such-feed-bucket" in missing.stderr and len(missing.stderr.splitlines()) == 1, missing.stderr


def test_bad_input_is_one_clear_error(sim, tmp_path):
    out = tmp_path / "feed"
    bad = subprocess.run([str(CLI), "feed", "export", "--out", str(out)], env=dict(api_env(sim), SIGSCI_API_TOKEN="wrong"),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "401" in bad.stderr, bad.stderr
    assert not out.exists(), "nothing written"
    moto = os.environ.get("SIGSCI_KIT_TEST_MOTO_URL")
    assert moto, "SIGSCI_KIT_TEST_MOTO_URL is not set: run tests/run.sh feed, or tests/services.sh up DIR moto and source DIR/env"
    missing = feed(sim, "export", "--out", "s3://no-such-feed-bucket/x", "--s3-endpoint", moto, check=False)
    assert missing.returncode == 1 and "no-such-feed-bucket" in missing.stderr, missing.stderr


def hold_lease(out, site, start, seconds=600):
    """What a crashed run leaves behind: an unexpired lease on the hour."""
    directory = hour_dir(out, site, start)
    directory.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    (directory / "_lease.json").write_text(json.dumps({"owner": "crashed-run", "acquired_at": now, "expires_at": now + seconds}))


def test_exit_codes_say_whether_hours_are_complete_pending_or_lost(sim, tmp_path):
    out = tmp_path / "feed"
    hours = last_hours(sim, 2)
    hold_lease(out, "site-1", hours[0])
    window = ["--site", "site-1", "--out", str(out), "--from", str(hours[0]), "--until", str(hours[-1] + 3600)]
    busy = feed(sim, "export", *window, check=False)
    assert busy.returncode == 3, busy.stdout + busy.stderr
    assert "pending 1 (1 busy)" in busy.stdout, busy.stdout
    # The lease gone, a rerun completes the range.
    (hour_dir(out, "site-1", hours[0]) / "_lease.json").unlink()
    done = feed(sim, "export", *window, check=False)
    assert done.returncode == 0 and "pending 0" in done.stdout and "busy" not in done.stdout, done.stdout + done.stderr
    # A backfill reaching back past the retention: the unreachable hours are lost.
    newest = last_hours(sim, 1)[0]
    lost = feed(sim, "backfill", "--site", "site-1", "--out", str(out), "--from", str(newest - 26 * 3600),
                "--until", str(newest - 21 * 3600), check=False)
    assert lost.returncode == 4 and "LOST" in lost.stdout, lost.stdout + lost.stderr
    help_text = feed(sim, "export", "--help").stdout
    assert "Exit codes" in help_text and "3  some hours are pending" in help_text, help_text


@pytest.mark.parametrize("flags, flag, expected", [
    (["--from", "1764576000000", "--until", "1764579600000"], "--from", "milliseconds"),
    (["--from", "{h0}", "--until", "{future}"], "--until", "future"),
    (["--from", "{h1}", "--until", "{h0}"], "--until", "after --from"),
    (["--from", "{old}", "--until", "{h1}"], "--from/--until", "24 h 5 min"),
    (["--from", "0", "--until", "3600"], "--until", "retention"),
])
def test_bad_ranges_are_one_clear_error(sim, tmp_path, flags, flag, expected):
    out = tmp_path / "feed"
    h0 = last_hours(sim, 1)[0]
    values = {"h0": h0, "h1": h0 + 3600, "future": h0 + 5 * 3600, "old": h0 - 30 * 3600}
    args = [f.format(**values) for f in flags]
    result = feed(sim, "backfill", "--site", "site-1", "--out", str(out), *args, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {flag}:") and expected in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not out.exists(), "nothing written"


def test_a_closed_pipe_ends_every_subcommand_quietly(sim, tmp_path):
    out = tmp_path / "feed"
    start = last_hours(sim, 1)[0]
    feed(sim, "backfill", "--site", "site-1", "--out", str(out), "--from", str(start), "--until", str(start + 3600))
    commands = [
        ["feed", "status", "--site", "site-1", "--out", str(out)],
        ["feed", "export", "--site", "site-1", "--out", str(out), "--from", str(start), "--until", str(start + 3600)],
        ["feed", "verify", "--out", str(out), "--site", "site-1", "--hour", str(start)],
        ["sites"],
        ["--help"],
    ]
    for command in commands:
        # The reader is gone before the first line is written.
        read, write = os.pipe()
        os.close(read)
        proc = subprocess.run([str(CLI), *command], env=api_env(sim), stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
        os.close(write)
        assert "panicked" not in proc.stderr and proc.stderr == "", f"{command}: {proc.stderr}"
        assert proc.returncode in (0, -signal.SIGPIPE), f"{command}: exit {proc.returncode}"
