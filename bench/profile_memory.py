#!/usr/bin/env python3
"""The daemon's resident memory with many profiles (issue 9: <= 16 MiB with 1,000).

Runs as root. Everything happens in a network namespace of its own (pwm-<pid>, deleted at the
end, also on errors): the daemon filters only that namespace, with `--attribution tables` (no eBPF
programs: their maps would be measured, not the profiles). For each profile count the daemon
starts on an empty data directory, the profiles are created through the API (ten rules each,
the shape of run_bench.py's), the daemon is left idle for 16 s (one slow tick) and its memory is read from
/proc; then it is restarted on the same data directory, so that the figure without the API's
transient allocations (the profiles loaded from the database) is measured too.

    sudo bench/profile_memory.py                       # 0 and 1000 profiles
    sudo bench/profile_memory.py --counts 0,100,1000,5000
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORTWARDEN = ROOT / "build/release/src/cli/portwarden"
TARGET_MIB = 16.0
# The daemon returns free heap to the kernel at its slow tick (every 15 s) after API use: the
# figures are those of a daemon that has been idle for a moment, not of one still answering.
SETTLE_SECONDS = 16.0


def api(method, path, body=None, timeout=10, connection=None):
    connection = connection or http.client.HTTPConnection("127.0.0.1", 817, timeout=timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, "/api/v1" + path,
                       body=None if body is None else json.dumps(body), headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def wait_for_api(daemon, deadline_seconds=20):
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            sys.exit(f"the daemon exited with {daemon.returncode} before its API answered")
        try:
            status, _ = api("GET", "/status", timeout=1)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the API did not answer within 20 s")


def create_profiles(count):
    # One keep-alive connection for all of them, as a UI or a script would: 1,000 connections
    # would each stay in the daemon's live-connection table while in TIME_WAIT (~560 bytes
    # each), and this measures the profiles.
    connection = http.client.HTTPConnection("127.0.0.1", 817, timeout=10)
    for index in range(count):
        rules = [f"- host{index}-{rule}.example.com" for rule in range(8)]
        rules += [f"+ 198.18.{index % 250}.0/24 tcp/443", "+ .example.org"]
        body = {"name": f"app{index}",
                "fingerprints": [{"type": "path", "operation": "equals",
                                  "value": f"/opt/app{index}/bin/app"}],
                "settings": {"filter/endpoints": rules}}
        status, text = api("POST", "/profiles", body, connection=connection)
        if status not in (200, 201):
            sys.exit(f"creating profile {index}: {status} {text!r}")


def memory_of(pid):
    """VmRSS and its parts (kB) from /proc/PID/status."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
            figures[key] = int(value.split()[0])
    return figures


def start_daemon(portwarden, data_dir):
    return subprocess.Popen([str(portwarden), "run", "--attribution", "tables",
                             "--data-dir", str(data_dir), "--resolved-monitor", "off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_daemon(daemon):
    daemon.terminate()
    try:
        daemon.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def measure(portwarden, count, work_dir):
    data_dir = Path(tempfile.mkdtemp(prefix=f"data-{count}-", dir=work_dir))
    daemon = start_daemon(portwarden, data_dir)
    try:
        wait_for_api(daemon)
        started = time.monotonic()
        create_profiles(count)
        creation_seconds = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        after_api = memory_of(daemon.pid)
    finally:
        stop_daemon(daemon)
    daemon = start_daemon(portwarden, data_dir)
    try:
        wait_for_api(daemon)
        status, text = api("GET", "/profiles")
        listed = len(json.loads(text)) if status == 200 else -1
        time.sleep(SETTLE_SECONDS)
        after_restart = memory_of(daemon.pid)
    finally:
        stop_daemon(daemon)
    return {"profiles": count, "listed_after_restart": listed,
            "creation_seconds": round(creation_seconds, 2),
            "after_api": after_api, "after_restart": after_restart}


def inside(arguments):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    work_dir = Path(tempfile.mkdtemp(prefix="pw-profile-memory-"))
    results = []
    try:
        for count in arguments.counts:
            results.append(measure(arguments.portwarden, count, work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(json.dumps(results) if arguments.json else table(results))


def mib(kilobytes):
    return f"{kilobytes / 1024:.1f}"


def table(results):
    lines = ["| profiles | RSS after creation via API, MiB (anon / file) | RSS after restart, MiB "
             "(anon / file) | peak RSS, MiB | profiles listed after restart |",
             "|---|---|---|---|---|"]
    for result in results:
        api_figures, restart = result["after_api"], result["after_restart"]
        lines.append(
            f"| {result['profiles']:,} | {mib(api_figures['VmRSS'])} "
            f"({mib(api_figures['RssAnon'])} / {mib(api_figures['RssFile'])}) | "
            f"{mib(restart['VmRSS'])} ({mib(restart['RssAnon'])} / {mib(restart['RssFile'])}) | "
            f"{mib(max(api_figures['VmHWM'], restart['VmHWM']))} | "
            f"{result['listed_after_restart']:,} |")
    largest = max(results, key=lambda result: result["profiles"])
    worst = max(largest["after_api"]["VmRSS"], largest["after_restart"]["VmRSS"]) / 1024
    verdict = "met" if worst <= TARGET_MIB else "NOT met"
    lines.append(f"\n{largest['profiles']:,} profiles: at most {worst:.1f} MiB resident "
                 f"(target <= {TARGET_MIB:g} MiB with 1,000: {verdict})")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portwarden", type=Path, default=DEFAULT_PORTWARDEN)
    parser.add_argument("--counts", default="0,1000",
                        help="comma-separated profile counts, one daemon each (default 0,1000)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    arguments.counts = [int(part) for part in arguments.counts.split(",")]
    arguments.portwarden = arguments.portwarden.resolve()
    if arguments.inside:
        return inside(arguments)
    if os.geteuid() != 0:
        sys.exit("needs root: the daemon runs in a network namespace of its own")
    namespace = f"pwm-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        command = ["ip", "netns", "exec", namespace, sys.executable, __file__, "--inside",
                   "--portwarden", str(arguments.portwarden),
                   "--counts", ",".join(map(str, arguments.counts))]
        if arguments.json:
            command.append("--json")
        return subprocess.run(command, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


if __name__ == "__main__":
    sys.exit(main())
