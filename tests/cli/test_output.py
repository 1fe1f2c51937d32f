"""Scriptable and human output of the real `sigsci-kit` binary against a simulator it starts:
-o json|yaml documents alone on stdout, aligned tables, colour only where it belongs, the shared time
parser, config -f forms, completions and the man page, and wording without Rust debug names."""
import json
import os
import pty
import re
import select
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
import yaml

import testkit

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "target" / "release" / "sigsci-kit"
MANIFESTS = ROOT / "tests" / "fixtures" / "manifests"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def sim():
    with testkit.simulator("--sites", "2", "--rps", "2", kit=CLI) as url:
        yield url


def env_for(sim_url, **extra):
    env = testkit.sim_env(sim_url, RUST_LOG="warn")
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


def kit(sim_url, *args, check=True, stdin=None, **extra):
    result = subprocess.run([str(CLI), *args], env=env_for(sim_url, **extra), capture_output=True, text=True,
                            input=stdin, timeout=300)
    if check:
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def on_pty(sim_url, *args, **extra):
    """Runs with stdout and stderr on a pseudo-terminal; returns everything it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(CLI), *args], env=env_for(sim_url, **extra), stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    proc.wait(60)
    os.close(leader)
    return output.decode()


def assert_aligned(table, first_header):
    """Headers in capitals, and every column starts where its header does (kubectl/gh style)."""
    lines = table.rstrip("\n").splitlines()
    header = lines[0]
    assert header.startswith(first_header) and header == header.upper(), table
    starts = [m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", header)]
    assert len(starts) >= 3, table
    for line in lines[1:]:
        for start in starts[1:]:
            assert line[start - 1] == " " and line[start] != " ", f"column at {start} misaligned:\n{table}"


# --- manifests for config plan ---------------------------------------------------------------------

def write_manifests(sim_url, base):
    # The same manifests tests/operator/config-cli.sh plans.
    connection = (MANIFESTS / "connection.yaml").read_text().replace("SIM_URL", sim_url)
    alert = (MANIFESTS / "no-agents-alert.yaml").read_text()
    (base / "nested" / "deeper").mkdir(parents=True)
    (base / "connection.yaml").write_text(connection)
    (base / "nested" / "deeper" / "alert.yml").write_text(alert)
    return connection, alert


def test_documents_alone_on_stdout_parse_as_json_and_yaml(sim, tmp_path):
    sites = json.loads(kit(sim, "sites", "-o", "json").stdout)
    assert [s["name"] for s in sites["sites"]] == ["site-1", "site-2"]
    assert set(sites["sites"][0]) == {"name", "display_name", "agent_level", "created"}
    agents = yaml.safe_load(kit(sim, "agents", "--site", "site-1", "--site", "site-2", "-o", "yaml").stdout)
    assert {a["site"] for a in agents["agents"]} == {"site-1", "site-2"}
    seen = json.loads(kit(sim, "agents", "--site", "site-1", "-o", "json").stdout)["agents"][0]["last_seen"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", str(seen)), seen

    base = tmp_path / "manifests"
    write_manifests(sim, base)
    plan = kit(sim, "config", "plan", "-f", str(base), "-R", "-o", "json", check=False)
    assert plan.returncode == 2, plan.stderr
    document = json.loads(plan.stdout)
    assert sum(document["summary"].values()) == 1, document
    change = document["plans"][0]["changes"][0]
    assert change["action"] in ("create", "update") and change["manifest"] == "AgentAlert default/no-agents", change
    yaml.safe_load(kit(sim, "config", "plan", "-f", str(base), "-R", "-o", "yaml", check=False).stdout)

    # health: the console channel's messages go to stderr when stdout is the JSON report.
    requests.put(f"{sim}/__sim/sites/site-1/agents", json={"online": 0}).raise_for_status()
    rules = tmp_path / "rules.yaml"
    rules.write_text("channels:\n  - {name: console, type: console, ack_enabled: false}\n")
    state = tmp_path / "state"
    state.mkdir()
    check = kit(sim, "health", "check", "--rules", str(rules), "--state", str(state), "-o", "json")
    assert json.loads(check.stdout)["sites_evaluated"] == 2
    assert "[FIRING]" in check.stderr and "severity: critical" in check.stderr, check.stderr
    again = kit(sim, "health", "check", "--rules", str(rules), "--state", str(state), "-o", "yaml")
    assert yaml.safe_load(again.stdout)["sites_evaluated"] == 2, again.stdout
    legacy = kit(sim, "health", "check", "--rules", str(rules), "--state", str(state), "--json")
    assert json.loads(legacy.stdout)["sites_evaluated"] == 2
    status = json.loads(kit(sim, "health", "status", "--state", str(state), "-o", "json").stdout)
    assert status["conditions"]["site-1/no_agents_online"]["firing"] is True
    assert yaml.safe_load(kit(sim, "health", "status", "--state", str(state), "-o", "yaml").stdout)["corp"] == "testcorp"

    # Human wording: no Rust debug names such as (Cli) in the acknowledgement log.
    kit(sim, "health", "ack", "--state", str(state), "--rules", str(rules), "--until", "2h", "site-1/no_agents_online")
    human = kit(sim, "health", "status", "--state", str(state)).stdout
    assert "(command line)" in human and "(Cli)" not in human and "Ack " not in human, human
    requests.put(f"{sim}/__sim/sites/site-1/agents", json={"online": 3}).raise_for_status()


def test_tables_have_headers_aligned_columns_and_ages(sim):
    sites = kit(sim, "sites").stdout
    assert_aligned(sites, "NAME")
    assert sites.splitlines()[0].split()[-1] == "AGE", sites
    agents = kit(sim, "agents", "--site", "site-1").stdout
    assert_aligned(agents, "SITE")
    assert "LAST SEEN" in agents.splitlines()[0], agents
    assert re.search(r"  \d+[smhd]$", agents.splitlines()[1]), agents
    wide = kit(sim, "agents", "--site", "site-1", "-o", "wide").stdout
    assert "ADDRESS" in wide.splitlines()[0] and "ADDRESS" not in agents
    assert_aligned(wide, "SITE")


def cells(line):
    """A table row's cells: columns are two or more spaces apart, a cell has at most single spaces."""
    return re.split(r"\s{2,}", line.strip())


def test_health_status_heading_tables_wide_and_json(sim, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("channels:\n  - {name: console, type: console, ack_enabled: false}\n")
    state = tmp_path / "state"
    state.mkdir()
    empty = kit(sim, "health", "status", "--state", str(state)).stdout
    assert empty.startswith("no state at ") and "never run for corp testcorp" in empty, empty
    requests.put(f"{sim}/__sim/sites/site-2/agents", json={"online": 0}).raise_for_status()
    try:
        kit(sim, "health", "check", "--rules", str(rules), "--state", str(state))
        kit(sim, "health", "ack", "--state", str(state), "--rules", str(rules), "--until", "2h", "--by", "oncall",
            "site-2/no_agents_online")
    finally:
        requests.put(f"{sim}/__sim/sites/site-2/agents", json={"online": 3}).raise_for_status()
    status = ["health", "status", "--state", str(state)]
    rfc3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"

    table = kit(sim, *status).stdout
    assert not ANSI.search(table), table
    heading, conditions, acks = table.split("\n\n")
    assert heading.startswith("corp:       testcorp\n"), heading
    assert re.search(rf"^evaluator:  last run {rfc3339} \(\d+[smhd] ago\), run \S+$", heading, re.M), heading
    assert "\nsites:      2 of 2 evaluated\n" in heading and "NOT EVALUATED" not in heading, heading
    assert cells(conditions.splitlines()[0]) == ["SITE", "CHECK", "STATUS", "SEVERITY", "AGE", "ACK", "SUMMARY"]
    assert_aligned(conditions, "SITE")
    row = next(cells(line) for line in conditions.splitlines() if line.startswith("site-2  no_agents_online "))
    assert row[2:4] == ["FIRING", "critical"] and re.fullmatch(r"\d+[smhd]", row[4]) and row[5] == "oncall", row
    assert re.fullmatch(r"0 of \d+ agents online.*", row[6]), row
    title, ack_table = acks.split("\n", 1)
    assert title == "recent acknowledgements:", acks
    assert cells(ack_table.splitlines()[0]) == ["TIME", "AGE", "ACTION", "CHECK", "CHANNELS", "BY", "UNTIL"]
    assert_aligned(ack_table, "TIME")
    event = cells(ack_table.splitlines()[1])
    assert re.fullmatch(rfc3339, event[0]) and re.fullmatch(rfc3339, event[6]), event
    assert event[2:6] == ["acknowledged", "site-2/no_agents_online", "all", "oncall (command line)"], event

    wide = kit(sim, *status, "-o", "wide").stdout
    wide_conditions = wide.split("\n\n")[1]
    assert cells(wide_conditions.splitlines()[0])[-4:] == ["SUMMARY", "SINCE", "ACK UNTIL", "CHANNELS"], wide
    assert_aligned(wide_conditions, "SITE")
    row = next(cells(line) for line in wide_conditions.splitlines() if line.startswith("site-2  no_agents_online "))
    assert re.fullmatch(rfc3339, row[7]) and row[8] == event[6], row
    assert re.fullmatch(r"console: 1 sent \(last \d+[smhd] ago\)", row[9]), row

    document = json.loads(kit(sim, *status, "-o", "json").stdout)
    condition = document["conditions"]["site-2/no_agents_online"]
    assert condition["firing"] is True and condition["acks"]["whole"]["by"] == "oncall", condition
    until = datetime.fromisoformat(document["ack_log"][-1]["until"].replace("Z", "+00:00"))
    assert until.strftime("%Y-%m-%dT%H:%M:%SZ") == event[6], (document["ack_log"], event)
    # On a terminal the status is coloured, and the escape codes take no width: columns stay aligned.
    terminal = on_pty(sim, *status).replace("\r\n", "\n")
    assert "\x1b[31mFIRING\x1b[0m" in terminal, terminal
    assert_aligned(ANSI.sub("", terminal).split("\n\n")[1], "SITE")


def test_feed_status_collapses_pending_hours_and_times_take_every_form(sim, tmp_path):
    out = tmp_path / "feed"
    # Relative forms: the hour that ended one to two hours ago (durations round down to a minute).
    now = requests.get(sim + "/__sim/clock").json()["now"]
    start = (now - 300) // 3600 * 3600 - 3 * 3600
    kit(sim, "feed", "backfill", "--site", "site-1", "--out", str(out),
        "--from", str(start), "--until", str(start + 3600))
    again = kit(sim, "feed", "backfill", "--site", "site-1", "--out", str(out),
                "--from", str(start), "--until", str(start + 3600))
    assert "already complete, skipped" in again.stdout, again.stdout
    relative = kit(sim, "feed", "backfill", "--site", "site-1", "--out", str(out), "--from", "7h", "--until", "6h",
                   check=False)
    assert relative.returncode in (0, 3), relative.stdout + relative.stderr

    table = kit(sim, "feed", "status", "--site", "site-1", "--out", str(out)).stdout
    assert_aligned(table, "SITE")
    assert "PENDING HOURS" in table.splitlines()[0], table
    document = json.loads(kit(sim, "feed", "status", "--site", "site-1", "--out", str(out), "-o", "json").stdout)
    site = document["sites"][0]
    # Breaks only where exported hours are: at most four runs, each one range in the table.
    assert sum(r["hours"] for r in site["pending_ranges"]) == len(site["pending"]) > 4
    assert len(site["pending_ranges"]) <= 4, site["pending_ranges"]
    assert re.search(r"\d\d:00Z\.\.\d{4}-\d\d-\d\dT\d\d:00Z \(\d+h\)", table), table
    assert table.count("T") < len(site["pending"]), "every pending hour listed instead of ranges"
    assert all(h.endswith("Z") or h.endswith("+00:00") for h in site["complete"]), site

    # One parser for every time flag: RFC 3339, a date, epoch seconds name the same hour.
    forms = ["2026-11-26T00:30:00Z", "2026-11-26", "1795653000"]
    answers = {kit(sim, "feed", "verify", "--out", str(out), "--site", "site-1", "--hour", form,
                   check=False).stderr for form in forms}
    assert len(answers) == 1 and "not a time" not in answers.pop()
    bad = kit(sim, "feed", "backfill", "--site", "site-1", "--out", str(out), "--from", "yesterday", "--until", "1h",
              check=False)
    assert bad.returncode == 1 and bad.stdout == "", bad.stdout
    assert bad.stderr.startswith('error: --from: "yesterday" is not a time: write RFC 3339'), bad.stderr
    # Errors name times in RFC 3339, never as epoch seconds.
    backwards = kit(sim, "feed", "backfill", "--site", "site-1", "--out", str(out),
                    "--from", str(start + 3600), "--until", str(start), check=False)
    assert backwards.returncode == 1 and str(start) not in backwards.stderr, backwards.stderr
    assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)) in backwards.stderr, backwards.stderr


def test_colour_only_on_a_terminal_and_never_with_no_color(sim, tmp_path):
    base = tmp_path / "manifests"
    write_manifests(sim, base)
    plan = ["config", "plan", "-f", str(base), "-R"]
    piped = kit(sim, *plan, check=False)
    # The simulator's site-2 has this alert disabled: the plan updates it (~, yellow).
    assert piped.returncode == 2 and "~ site site-2 alert" in piped.stdout, piped.stdout
    assert not ANSI.search(piped.stdout + piped.stderr)
    forced = kit(sim, *plan, "--color", "always", check=False)
    assert "\x1b[33m  ~ site site-2 alert" in forced.stdout, forced.stdout
    terminal = on_pty(sim, *plan)
    assert "\x1b[33m  ~ site site-2 alert" in terminal, terminal
    assert not ANSI.search(on_pty(sim, *plan, NO_COLOR="1")), "NO_COLOR ignored"
    assert not ANSI.search(on_pty(sim, *plan, "--color", "never"))
    # Logs into a pipe or file carry no escape codes; on a terminal they are coloured.
    logged = kit(sim, "sites", RUST_LOG="debug")
    assert logged.stderr and not ANSI.search(logged.stderr), logged.stderr[:500]
    assert ANSI.search(on_pty(sim, "sites", RUST_LOG="debug"))
    assert not ANSI.search(on_pty(sim, "sites", RUST_LOG="debug", NO_COLOR="1"))


def test_config_reads_files_directories_recursively_and_stdin(sim, tmp_path):
    base = tmp_path / "manifests"
    connection, alert = write_manifests(sim, base)

    def planned(*args, stdin=None):
        result = kit(sim, "config", "plan", *args, "-o", "json", check=False, stdin=stdin)
        assert result.returncode in (0, 2), result.stderr
        return sum(len(p["changes"]) for p in json.loads(result.stdout)["plans"])

    assert planned("-f", str(base)) == 0, "a directory without -R reads only its own files"
    assert planned("-f", str(base), "-R") == 1
    assert planned("-f", str(base / "connection.yaml"), "-f", str(base / "nested" / "deeper" / "alert.yml")) == 1
    assert planned("-f", str(base / "connection.yaml"), "-f", "-", stdin=alert) == 1
    assert planned("-f", "-", stdin=connection + "---\n" + alert) == 1


def test_completions_and_man_page(sim, tmp_path):
    for shell in ["bash", "zsh", "fish"]:
        script = kit(sim, "completion", shell).stdout
        assert "sigsci-kit" in script and "feed" in script and "output" in script, shell
    bash = tmp_path / "sigsci-kit.bash"
    bash.write_text(kit(sim, "completion", "bash").stdout)
    subprocess.run(["bash", "-n", str(bash)], check=True)
    man = kit(sim, "man").stdout
    assert man.startswith(".ie") or ".TH sigsci-kit 1" in man, man[:200]
    assert ".TH sigsci-kit 1" in man and "completion" in man and "\\-\\-color" in man


def test_a_full_stdout_is_an_error_that_names_it(sim):
    """Not a closed pipe but a failed write (ENOSPC): one line naming standard output, exit 1."""
    with open("/dev/full", "w") as full:
        for args in (["completion", "bash"], ["man"], ["sites"]):
            proc = subprocess.run([str(CLI), *args], env=env_for(sim), stdout=full, stderr=subprocess.PIPE,
                                  text=True, timeout=120)
            assert proc.returncode == 1, f"{args}: exit {proc.returncode}: {proc.stderr}"
            assert "cannot write to standard output" in proc.stderr and "panicked" not in proc.stderr, proc.stderr


def ignored_signals(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.M).group(1), 16)


def test_long_running_commands_keep_sigpipe_ignored(sim, tmp_path):
    """Sockets are written with writev, which raises SIGPIPE when the peer is gone (a client killed
    mid-response, an API that resets): with the default disposition that killed the process without
    a word. Only a closed stdout ends a command that way (test_a_closed_pipe_ends_every_subcommand_quietly)."""
    sigpipe = 1 << (13 - 1)
    # An API that accepts connections and never answers keeps the export running while it is looked at.
    silent = socket.create_server(("127.0.0.1", 0))
    silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    runs = [(["sim", "--listen", "127.0.0.1:0", "--sites", "1"], sim),
            (["feed", "export", "--site", "site-1", "--out", str(tmp_path / "feed"), "--from", "3h", "--until", "1h"], silent_url)]
    try:
        for command, api in runs:
            proc = subprocess.Popen([str(CLI), *command], env=env_for(api), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                assert proc.poll() is None, f"{command} ended early: exit {proc.returncode}"
                assert ignored_signals(proc.pid) & sigpipe, f"{command} would die of SIGPIPE"
            finally:
                proc.kill()
                proc.wait()
    finally:
        silent.close()
