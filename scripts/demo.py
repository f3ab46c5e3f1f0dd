#!/usr/bin/env python3
"""`make demo`: portwarden in a sandbox, with a simulated internet, printing its live events.

Builds the integration tests' world (two network namespaces joined by a veth pair; nothing is
installed in your own network namespace), starts echo services in the `internet` namespace and
`portwarden run` in the `client` namespace with a small rule set, then sends traffic from the
client: permitted, blocked (rejected at once) and dropped connections over TCP, UDP and ICMP, IPv4
and IPv6. Every decision is printed as it happens. Ctrl-C (or --once) ends it and removes the
namespaces.
"""

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import world as pw_world  # noqa: E402

DEMO_CONFIG = {
    "filter": {
        "defaultAction": "permit",
        "endpoints": [
            f"- {pw_world.INTERNET_V4} tcp/9001",
            f"- {pw_world.INTERNET_V6} udp/9001",
            f"- {pw_world.INTERNET_V4_ALT} icmp",
        ],
        "permanentVerdicts": True,
        "outboundBlockAction": "reject",
    }
}

# (probe, host, port, expected outcome, why)
TRAFFIC = [
    ("tcp", pw_world.INTERNET_V4, 9000, "ok", "permitted by the default action"),
    ("tcp", pw_world.INTERNET_V4, 9001, "unreachable", "blocked by a rule: rejected at once"),
    ("udp", pw_world.INTERNET_V4, 9000, "ok", "permitted"),
    ("udp", pw_world.INTERNET_V6, 9001, "unreachable", "blocked by a rule, IPv6"),
    ("tcp", pw_world.INTERNET_V6, 9000, "ok", "permitted, IPv6"),
    ("ping", pw_world.INTERNET_V4, 0, "ok", "permitted"),
    ("ping", pw_world.INTERNET_V4_ALT, 0, "timeout", "ICMP blocks are silent drops"),
]


def describe(event):
    local, remote = event["local"], event["remote"]
    arrow = "→" if event["direction"] == "outbound" else "←"
    line = (f"{event['protocol']:<6} {local['ip']}:{local['port']} {arrow} "
            f"{remote['ip']}:{remote['port']}")
    process = event.get("process")
    if process:
        who = process["identity"] if process["kind"] == "process" else process["kind"]
        line += f"  [{who} pid {process['pid']}]" if process["pid"] >= 0 else f"  [{who}]"
    if event["event"] == "decided":
        line += f"  {event['verdict'].upper()} (mark {event['mark']}): {event['reason']}"
    return line


def follow(path, stop):
    """Prints every event of the daemon's JSON-lines stream as it is written."""
    with open(path, encoding="utf-8") as stream:
        while not stop.is_set():
            line = stream.readline()
            if not line:
                time.sleep(0.05)
                continue
            event = json.loads(line)
            if event["event"] == "decided":
                print(f"  event  {describe(event)}", flush=True)
            elif event["event"] in ("started", "stats"):
                print(f"  event  {line.strip()}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("portwarden", help="path to the portwarden binary")
    parser.add_argument("--once", action="store_true", help="one round of traffic, then stop")
    args = parser.parse_args()

    # The eBPF attribution programs observe this demo's own cgroup only, never the whole host.
    with pw_world.TestCgroup() as cgroup, \
            pw_world.World(portwarden_bin=str(Path(args.portwarden).resolve()),
                           static_neighbours=False) as world:
        world.start_echo_services()
        print("portwarden demo: client 10.77.0.1 / fd77::1, internet 10.77.0.2-3 / fd77::2-3")
        print("rules:", json.dumps(DEMO_CONFIG["filter"]["endpoints"]))
        daemon = pw_world.start_daemon_seeing_host_mounts(world, DEMO_CONFIG,
                                                          ["--bpf-cgroup", cgroup.path])
        stop = threading.Event()
        follower = threading.Thread(target=follow, args=(daemon.events_path, stop), daemon=True)
        follower.start()
        surprises = 0
        try:
            while True:
                for mode, host, port, expected, why in TRAFFIC:
                    result = world.probe(mode, host, port, timeout=1.0)
                    note = "" if result.outcome == expected else f"  UNEXPECTED: wanted {expected}"
                    surprises += result.outcome != expected
                    print(f"client {mode} {host} {port or ''}: {result.outcome} "
                          f"in {result.elapsed * 1000:.0f} ms ({why}){note}", flush=True)
                    time.sleep(0.2)
                if args.once:
                    break
                print("... again in 5 s (Ctrl-C to stop)", flush=True)
                time.sleep(5)
        except KeyboardInterrupt:
            pass
        finally:
            code = daemon.stop()
            time.sleep(0.2)
            stop.set()
            print(f"portwarden stopped (exit {code}); rules removed, namespaces deleted.")
    return 1 if surprises or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
