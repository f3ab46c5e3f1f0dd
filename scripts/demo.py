#!/usr/bin/env python3
"""`make demo`: portwarden in a sandbox, with a simulated internet, printing its live events.

Builds the integration tests' world (two network namespaces joined by a veth pair; nothing is
installed in your own network namespace), starts echo services in the `internet` namespace and
`portwarden run` in the `client` namespace with a small rule set, then sends traffic from the
client: permitted, blocked (rejected at once) and dropped connections over TCP, UDP and ICMP, IPv4
and IPv6. Every decision is printed as it happens. Ctrl-C (or --once) ends it and removes the
namespaces.

DNS: nsd in the `internet` namespace serves the tests' zone pwtest. (10.77.0.2), the daemon
forwards to it, and the client namespace's resolv.conf names the daemon's nameserver
(127.0.0.17). After the connections above, the client resolves www.pwtest and connects to it
in one process (bash's /dev/tcp: the decision shows the name that process resolved), asks for
x.tracker.pwtest (blocked by the rule `- .tracker.pwtest`: answered 0.0.0.17) and sends a
query astray to 10.77.0.2 (redirected and answered by portwarden). Each answered query is
printed as one "dns" line. Without nsd or dig the DNS part is left out, with a note.
"""

import argparse
import json
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import dns_servers as pw_dns  # noqa: E402
import world as pw_world  # noqa: E402

NAMESERVER = "127.0.0.17"
ECHO_PORT = 9000
WWW = f"www.{pw_dns.ZONE}"
TRACKER = f"x.tracker.{pw_dns.ZONE}"
BLOCKED_V4 = "0.0.0.17"
# A dns event for a query shows up within this time (a hang guard for the demo's own check).
DNS_EVENT_WAIT = 3.0

DEMO_CONFIG = {
    "filter": {
        "defaultAction": "permit",
        # The domain rule comes first: rules are first-match, so a name can be answered 0.0.0.17
        # at DNS time only when no rule before it needs the connection's address and port.
        "endpoints": [
            f"- .tracker.{pw_dns.ZONE}",
            f"- {pw_world.INTERNET_V4} tcp/9001",
            f"- {pw_world.INTERNET_V6} udp/9001",
            f"- {pw_world.INTERNET_V4_ALT} icmp",
        ],
        "permanentVerdicts": True,
        "outboundBlockAction": "reject",
    },
    "dns": {"nameservers": [f"dns://{pw_world.INTERNET_V4}"]},
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

# The client resolves and connects in one process, so that the connection's own process is the
# one that asked: a name resolved by one program labels that program's connections (and those
# of system resolvers' clients), not everybody's. bash resolves /dev/tcp names through glibc,
# i.e. through the namespace's resolv.conf, and echo_server.py sends the line back.
RESOLVE_AND_CONNECT = ("exec 3<>/dev/tcp/{host}/{port} && echo hello >&3 "
                       "&& read -r -t 2 reply <&3 && echo \"$reply\"")

# The printing of the two threads (the traffic and the event follower) must not interleave.
_PRINT_LOCK = threading.Lock()


def say(text):
    with _PRINT_LOCK:
        print(text, flush=True)


def who(process):
    """[identity pid N] of an event's process, or "" when the daemon did not know it."""
    if not process:
        return ""
    name = process["identity"] if process["kind"] == "process" else process["kind"]
    return f"[{name} pid {process['pid']}]" if process["pid"] >= 0 else f"[{name}]"


def describe(event):
    local, remote = event["local"], event["remote"]
    arrow = "→" if event["direction"] == "outbound" else "←"
    line = (f"{event['protocol']:<6} {local['ip']}:{local['port']} {arrow} "
            f"{remote['ip']}:{remote['port']}")
    if event.get("domain"):
        line += f" ({' → '.join([event['domain'], *event.get('cnames', [])])})"
    process = event.get("process")
    if process:
        line += f"  {who(process)}"
    if event["event"] == "decided":
        line += f"  {event['verdict'].upper()} (mark {event['mark']}): {event['reason']}"
    return line


def describe_dns(event):
    """One line per answered query: process, question, answers, where the answer came from."""
    question = event["question"]
    chain = " → ".join([question["name"], *event.get("cnames", [])])
    answers = ", ".join(event.get("answers", [])) or event["rcode"]
    source = event["source"]
    if source == "upstream" and event.get("upstream"):
        source += f" {event['upstream']}"
    if source in ("blocked", "canary", "error") and event.get("reason"):
        source += f": {event['reason']}"
    process = who(event.get("process")) or "[unknown process]"
    return (f"dns    {process}  {chain} {question['type']} → {answers}  ({source}, "
            f"{event['protocol']})")


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
                say(f"  event  {describe(event)}")
            elif event["event"] == "dns":
                say(f"  event  {describe_dns(event)}")
            elif event["event"] in ("started", "stats"):
                say(f"  event  {line.strip()}")


def start_dns(world):
    """nsd for pwtest. in the internet namespace, and the client's resolv.conf naming our
    nameserver. Returns None, or why the DNS part is left out."""
    missing = pw_dns.missing_dns_tools(("nsd", "dig", "openssl"))
    if missing:
        return missing
    pki = pw_dns.make_test_pki(world.directory / "pki")
    pw_dns.start_nsd(world, pki)  # killed with the world, like every process it starts
    world.write_namespace_resolv_conf("client", [NAMESERVER])
    return None


class DnsTraffic:
    """The DNS part of a round: each step prints one "client ..." line and says whether the
    result was the expected one."""

    def __init__(self, world, daemon):
        self.world = world
        self.daemon = daemon

    def report(self, what, outcome, why, ok, expected):
        note = "" if ok else f"  UNEXPECTED: wanted {expected}"
        say(f"client {what}: {outcome} ({why}){note}")
        return not ok

    def answered_by_us(self, result):
        """True once the daemon wrote a dns event for this dig process."""
        deadline = time.monotonic() + DNS_EVENT_WAIT
        while time.monotonic() < deadline:
            if any((event.get("process") or {}).get("pid") == result.pid
                   for event in self.daemon.events("dns")):
                return True
            time.sleep(0.05)
        return False

    def resolve_and_connect(self):
        script = RESOLVE_AND_CONNECT.format(host=WWW, port=ECHO_PORT)
        completed = self.world.run("client", ["bash", "-c", script], timeout=15)
        outcome = "ok" if completed.returncode == 0 and completed.stdout.strip() == "hello" \
            else f"failed (exit {completed.returncode}: {completed.stderr.strip()})"
        return self.report(f"bash /dev/tcp/{WWW}/{ECHO_PORT}", outcome,
                           "resolved through portwarden; the connection carries the name",
                           outcome == "ok", "ok")

    def blocked_name(self):
        result = pw_dns.dig(self.world, NAMESERVER, TRACKER, timeout=2)
        answers = result.data("A")
        return self.report(f"dig @{NAMESERVER} {TRACKER}", f"{result.status} {answers}",
                           "blocked by the rule `- .tracker.pwtest`",
                           result.status == "NOERROR" and answers == [BLOCKED_V4],
                           f"NOERROR ['{BLOCKED_V4}']")

    def astray_query(self):
        server = pw_world.INTERNET_V4
        result = pw_dns.dig(self.world, server, WWW, timeout=2)
        answers = result.data("A")
        ours = result.status == "NOERROR" and self.answered_by_us(result)
        return self.report(f"dig @{server} {WWW}", f"{result.status} {answers}",
                           "astray: redirected to portwarden, which answered", ours,
                           "an answer from portwarden (a dns event for this dig)")

    def run(self):
        """Returns the number of surprises."""
        surprises = 0
        for step in (self.resolve_and_connect, self.blocked_name, self.astray_query):
            surprises += step()
            time.sleep(0.2)  # as between the probes: lets the step's events print first
        return surprises


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
        surprises = 0
        try:
            dns_skipped = start_dns(world)
        except pw_dns.DnsServerError as error:
            dns_skipped = f"nsd did not start: {error}  UNEXPECTED"
            surprises += 1
        if dns_skipped:
            print(f"dns: left out ({dns_skipped})")
        else:
            print(f"dns: nsd serves {pw_dns.ZONE}. on {pw_world.INTERNET_V4}; the client "
                  f"resolves through portwarden at {NAMESERVER}")
        # --resolved-monitor off: the sandboxed daemon sees the host's files, and must not
        # subscribe to the host's systemd-resolved (every lookup of the host).
        daemon = pw_world.start_daemon_seeing_host_mounts(
            world, DEMO_CONFIG, ["--bpf-cgroup", cgroup.path, "--resolved-monitor", "off"])
        stop = threading.Event()
        follower = threading.Thread(target=follow, args=(daemon.events_path, stop), daemon=True)
        follower.start()
        dns_traffic = None if dns_skipped else DnsTraffic(world, daemon)
        try:
            while True:
                for mode, host, port, expected, why in TRAFFIC:
                    result = world.probe(mode, host, port, timeout=1.0)
                    note = "" if result.outcome == expected else f"  UNEXPECTED: wanted {expected}"
                    surprises += result.outcome != expected
                    say(f"client {mode} {host} {port or ''}: {result.outcome} "
                        f"in {result.elapsed * 1000:.0f} ms ({why}){note}")
                    time.sleep(0.2)
                if dns_traffic is not None:
                    surprises += dns_traffic.run()
                if args.once:
                    break
                say("... again in 5 s (Ctrl-C to stop)")
                time.sleep(5)
        except KeyboardInterrupt:
            pass
        finally:
            try:
                code = daemon.stop()
                time.sleep(0.2)
            finally:
                stop.set()
            note = "" if code == 0 else "  UNEXPECTED: portwarden must exit 0"
            say(f"portwarden stopped (exit {code}); rules removed, namespaces deleted.{note}")
    return 1 if surprises or code != 0 else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except unittest.SkipTest as skip:
        # No root, namespaces or cgroup v2: ctest reads the exit code (world.SKIP_EXIT_CODE).
        print(f"INTEGRATION SKIPPED: {skip}", file=sys.stderr, flush=True)
        sys.exit(pw_world.skip_exit_code())
