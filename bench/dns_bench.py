#!/usr/bin/env python3
"""DNS benchmark of portwarden's nameserver (issue 4) against unbound and dnsmasq, with dnsperf.

Three caching forwarders in front of the same upstream, side by side in one run:

    portwarden   `portwarden run` with dns/nameservers ["dns://10.77.0.2"] (no --events)
    unbound      one thread, forward-zone "." to 10.77.0.2
    unbound+fw   the same unbound on port 5353, with portwarden running as above next to it
    dnsmasq      --server=10.77.0.2 --cache-size=10000

Each listens on 127.0.0.17:53 in the client namespace of a throw-away world
(tests/integration/world.py: namespaces `client` 10.77.0.1 and `internet` 10.77.0.2), one at a
time and never next to portwarden (which would redirect the others' port-53 traffic to itself).
The exception is unbound+fw: unbound on 127.0.0.17:5353 behind portwarden's firewall (its rules,
conntrack, its eBPF cgroup hooks), so that the firewall's kernel path on every packet, which
portwarden's own nameserver pays too, can be told apart from the nameserver's own cost. After the
first packets of dnsperf's flow nothing is queued to portwarden (the inbound accept is saved in
the connmark); the packets queued during each phase are counted from the NFQUEUE rules'
counters. Its upstream queries are "astray DNS" that portwarden redirects to its own nameserver,
so only its cache hits are measured.
The upstream is nsd in the internet namespace, authoritative for pwtest.
(tests/integration/dns_servers.py). dnsperf runs in the client namespace.

For each server, in interleaved rounds (the order rotates every round):
  warm-up     every name of the cache-hit set once
  hit/cpu     the cache-hit set (names from the zone) looped at --cpu-qps for --seconds
  hit/lat     the same at --latency-qps, with dnsperf -v (per-query latency)
  miss/cpu    unique names under *.wild.pwtest, each asked once, at --cpu-qps
  miss/lat    the same at --latency-qps, with -v
CPU µs per query = (utime + stime of the server's process, all threads, from /proc/PID/stat)
before/after ÷ queries completed (unbound's for unbound+fw; portwarden's is shown apart).
Latency p50/p99 from dnsperf -v. Lost = dnsperf's "Queries lost". The table shows medians over
rounds with min..max, then portwarden/unbound ratios and the targets of issue 4.

Nothing is installed in the host's namespace; every namespace and process goes away at the end,
also on failure, Ctrl-C and SIGTERM (World's teardown). portwarden's eBPF programs are attached
to a cgroup of the benchmark's own (world.TestCgroup), never to the host's cgroup v2 root.

    sudo bench/dns_bench.py                          # 3 rounds, 5 s per phase
    sudo bench/dns_bench.py --only unbound,dnsmasq --rounds 1 --seconds 2
    sudo bench/dns_bench.py --only portwarden,unbound,unbound+fw   # the firewall's share

Python standard library only; needs root, nsd, unbound, dnsmasq, dnsperf, dig.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import unittest
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

import dns_servers as d  # noqa: E402 - after the path above
import world as w  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
SERVERS = ("portwarden", "unbound", "unbound+fw", "dnsmasq")
BEHIND_FW = "unbound+fw"
# Not 53: port 53 on 127.0.0.17 is portwarden's nameserver, and portwarden redirects every other
# port-53 flow to it. A flow to another port is an ordinary loopback connection for it.
BEHIND_FW_PORT = 5353
# The configurations that run portwarden (its cgroup, its rules in the client namespace).
WITH_PORTWARDEN = ("portwarden", BEHIND_FW)
LISTEN = "127.0.0.17"
HIT_NAMES = 100
PHASES = ("hit", "miss")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Targets of issue 4, against this run's own unbound (never absolute figures).
TARGET_CPU_VS_UNBOUND = 1.0
# unbound+fw: packets queued to portwarden per phase above which the report has a note. dnsperf
# opens one socket per run, i.e. one new flow: its first query is queued on the way out
# (temporary accept, loopback) and on the way in (the permanent accept that goes to the
# connmark), and queries sent before that verdict is in are queued too. Anything more means
# verdicts that do not stick.
QUEUED_NOTE_LIMIT = 20
NOT_MEASURED = "–"  # a phase a configuration does not have (unbound+fw's cache misses)


def log(message):
    print(f"[dns-bench] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Measurements


def process_cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    # After "pid (comm)": state is fields[0], utime fields[11], stime fields[12] (stat(5)).
    return int(fields[11]) + int(fields[12])


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * len(sorted_values))) - 1))
    return sorted_values[index]


@dataclass
class DnsperfRun:
    sent: int = 0
    completed: int = 0
    lost: int = 0
    rcodes: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)  # seconds, per completed query (-v)
    qps: float = 0.0
    raw_tail: str = ""
    rcvbuf_drops: int = 0  # UDP datagrams the client namespace dropped for a full buffer


_STAT = {
    "sent": re.compile(r"Queries sent:\s+(\d+)"),
    "completed": re.compile(r"Queries completed:\s+(\d+)"),
    "lost": re.compile(r"Queries lost:\s+(\d+)"),
    "qps": re.compile(r"Queries per second:\s+([\d.]+)"),
}
_VERBOSE = re.compile(r"^> (\S+) \S+ \S+ ([\d.]+)$")


def parse_dnsperf(stdout):
    run = DnsperfRun(raw_tail=stdout[-1500:])
    for key, pattern in _STAT.items():
        match = pattern.search(stdout)
        if match is None:
            raise BenchError(f"dnsperf printed no '{key}':\n{stdout[-2000:]}")
        setattr(run, key, float(match.group(1)) if key == "qps" else int(match.group(1)))
    codes = re.search(r"Response codes:\s+(.*)", stdout)
    if codes:
        for name, count in re.findall(r"(\w+) (\d+) \(", codes.group(1)):
            run.rcodes[name] = int(count)
    for line in stdout.splitlines():
        match = _VERBOSE.match(line)
        if match:
            run.latencies.append(float(match.group(2)))
    run.latencies.sort()
    return run


@dataclass
class PhaseResult:
    server: str
    phase: str        # hit / miss
    kind: str         # cpu / lat
    qps_target: int
    run: DnsperfRun
    cpu_ticks: int
    # Packets that hit the NFQUEUE rules of the client namespace during the phase (configurations
    # with portwarden only), i.e. packets portwarden had to decide in userspace.
    queued: int | None = None
    # portwarden's own utime+stime during an unbound+fw phase: unbound's queries should cost it
    # nothing once their flow's verdict is in the connmark.
    firewall_cpu_ticks: int | None = None

    @property
    def cpu_us_per_query(self):
        if self.run.completed == 0:
            return None
        return self.cpu_ticks / CLOCK_TICKS / self.run.completed * 1e6

    @property
    def firewall_cpu_us_per_query(self):
        if self.firewall_cpu_ticks is None or self.run.completed == 0:
            return None
        return self.firewall_cpu_ticks / CLOCK_TICKS / self.run.completed * 1e6

    @property
    def p50_ms(self):
        value = percentile(self.run.latencies, 0.50)
        return None if value is None else value * 1000

    @property
    def p99_ms(self):
        value = percentile(self.run.latencies, 0.99)
        return None if value is None else value * 1000


# ---------------------------------------------------------------------------------------------
# The bench


class BehindFirewall:
    """unbound+fw: unbound on LISTEN:BEHIND_FW_PORT with portwarden running next to it. Looks like
    a dns_servers.Server to the bench; pid is unbound's (the process whose CPU is measured)."""

    name = BEHIND_FW

    def __init__(self, portwarden, unbound):
        self.portwarden = portwarden
        self.unbound = unbound

    @property
    def pid(self):
        return self.unbound.pid

    def alive(self):
        return self.unbound.alive() and self.portwarden.alive()

    def log(self, limit=3000):
        return (f"--- unbound ---\n{self.unbound.log(limit)}\n"
                f"--- portwarden ---\n{self.portwarden.log(limit)}")


class Bench:
    def __init__(self, args):
        self.args = args
        self.world = None
        self.cgroup = None
        self.nsd = None
        self.results: list[PhaseResult] = []
        self.failures: dict[str, list[str]] = {}
        self.notes: list[str] = []

    # Setup ----------------------------------------------------------------------------------

    def setup(self):
        if os.geteuid() != 0:
            raise BenchError("needs root (network namespaces)")
        needed = ["dnsperf", "dig", "nsd"]
        if "unbound" in self.args.only or BEHIND_FW in self.args.only:
            needed.append("unbound")
        if "dnsmasq" in self.args.only:
            needed.append("dnsmasq")
        for tool in needed:
            d.tool_path(tool)  # raises DnsServerError naming the Debian package
        if any(name in WITH_PORTWARDEN for name in self.args.only):
            if not os.access(self.args.portwarden, os.X_OK):
                raise BenchError(f"{self.args.portwarden} is not an executable "
                                 "(cmake --build build/release --target portwarden)")
            try:
                # Before the world: the cgroup must hold every process the bench starts.
                self.cgroup = w.TestCgroup().__enter__()
            except unittest.SkipTest as skip:
                raise BenchError(f"no cgroup for portwarden's eBPF programs: {skip}") from None
        try:
            self.world = w.World(portwarden_bin=str(self.args.portwarden)).__enter__()
        except unittest.SkipTest as skip:
            raise BenchError(str(skip)) from None
        self.nsd = d.start_nsd(self.world, None)
        self.directory = self.world.directory
        names = [f"hit-{index}.wild.{d.ZONE}" for index in range(self.args.hit_names - 4)]
        names += [f"www.{d.ZONE}", f"other.{d.ZONE}", f"alt.{d.ZONE}", f"alias.{d.ZONE}"]
        self.hit_file = self.directory / "hit.txt"
        self.hit_file.write_text("".join(f"{name} A\n" for name in names))
        self.hit_count = len(names)

    def close(self):
        if self.world is not None:
            self.world.close()
        if self.cgroup is not None:
            try:
                self.cgroup.close()
            except RuntimeError as error:
                log(f"warning: {error}")

    # Servers --------------------------------------------------------------------------------

    def start_server(self, name):
        if name == "unbound":
            return d.start_unbound(self.world, listen=LISTEN, upstream=d.INTERNET_V4)
        if name == "dnsmasq":
            return d.start_dnsmasq(self.world, listen=LISTEN, upstream=d.INTERNET_V4)
        if name == BEHIND_FW:
            return self.start_behind_firewall()
        return self.start_portwarden()

    def start_behind_firewall(self):
        # portwarden first, exactly as its own configuration runs it, so that unbound's sockets
        # and every packet to them meet the firewall as any program's would.
        portwarden = self.start_portwarden()
        try:
            unbound = d.start_unbound(self.world, listen=LISTEN, port=BEHIND_FW_PORT,
                                      upstream=d.INTERNET_V4)
        except BaseException:
            self.stop_portwarden(portwarden)
            raise
        return BehindFirewall(portwarden, unbound)

    def start_portwarden(self):
        directory = self.directory / f"portwarden-{time.monotonic_ns()}"
        directory.mkdir()
        config = directory / "config.json"
        config.write_text(json.dumps({"filter/defaultAction": "permit",
                                      "dns/nameservers": [f"dns://{d.INTERNET_V4}"]}) + "\n")
        log_path = directory / "stderr.log"
        # nsenter --mount: the runner's mounts (so --bpf-cgroup can be opened, see
        # world.start_daemon_seeing_host_mounts); nsenter execs, so the PID is portwarden's.
        argv = ["nsenter", f"--mount=/proc/{os.getpid()}/ns/mnt", "--", self.args.portwarden,
                "run", "--config", config, "--attribution", "auto",
                "--bpf-cgroup", self.cgroup.path, "--resolved-monitor", "off",
                "--data-dir", directory / "data"]
        with open(log_path, "ab") as log_file:
            process = self.world.spawn("client", argv, stdout=log_file,
                                       stderr=subprocess.STDOUT)
        server = d.Server("portwarden", process, directory, log_path, [LISTEN])
        try:
            d.wait_for_answer(self.world, "client", LISTEN, f"www.{d.ZONE}", timeout=20,
                              process=process, what="portwarden")
        except d.DnsServerError as error:
            server.stop()
            raise d.DnsServerError(f"{error}\n--- portwarden log ---\n{server.log()}") from None
        return server

    def stop_server(self, server):
        if isinstance(server, BehindFirewall):
            try:
                server.unbound.stop()
            finally:
                self.stop_portwarden(server.portwarden)
        elif server.name == "portwarden":
            self.stop_portwarden(server)
        else:
            server.stop(timeout=15)

    def stop_portwarden(self, server):
        code = server.stop(timeout=15)
        if code != 0:
            self.notes.append(f"portwarden exited with {code} after SIGTERM: "
                              f"{server.log(500)!r}")
        # portwarden removes its rules when it stops. Rules left behind would put the next
        # configurations (plain unbound, dnsmasq) behind its firewall and make their figures
        # those of another configuration: stop the bench instead (the world's teardown deletes
        # the namespace, and the rules with it).
        left = self.portwarden_rules()
        if left:
            raise BenchError("portwarden left rules in the client namespace after it stopped:\n"
                             + "\n".join(left[:20]))
        # What is left are the built-in base chains that iptables-nft created (empty, policy
        # accept: it never deletes them). They are still hooks on every packet, and the
        # namespace had none before: remove them, so that the configurations measured after
        # this one run in the same empty ruleset as the first.
        self.world.run("client", ["nft", "flush", "ruleset"])
        remaining = self.world.run("client", ["nft", "list", "ruleset"]).stdout.strip()
        if remaining:
            raise BenchError(f"the client namespace's ruleset is not empty after portwarden "
                             f"stopped:\n{remaining[:2000]}")

    def portwarden_rules(self):
        """Lines of iptables-save/ip6tables-save in the client namespace that are portwarden's."""
        found = []
        for tool in ("iptables-save", "ip6tables-save"):
            completed = self.world.run("client", [tool])
            found += [line for line in completed.stdout.splitlines()
                      if re.search(r"\bC17[01]?\b|NFQUEUE|--mark 17\d\d\b", line)]
        return found

    def queued_packets(self):
        """Packets that hit portwarden's NFQUEUE rules in the client namespace so far."""
        return sum(self.world.queue_counters("client").values())

    # dnsperf --------------------------------------------------------------------------------

    def dnsperf(self, data_file, qps, seconds, verbose, once, port=53):
        # -b 4096: dnsperf's own socket buffers of 4 MiB, so that what is lost is lost by the
        # server (its receive buffer), not by dnsperf falling behind on a busy machine.
        argv = ["dnsperf", "-s", LISTEN, "-p", port, "-d", data_file, "-c", 1, "-q", 1000,
                "-t", 2, "-b", 4096, "-Q", qps, "-l", seconds]
        if once:
            argv += ["-n", 1]
        if verbose:
            argv.append("-v")
        completed = self.world.run("client", argv, timeout=seconds + 30)
        if completed.returncode != 0:
            raise BenchError(f"dnsperf failed ({completed.returncode}): {completed.stderr}"
                             f"{completed.stdout[-1000:]}")
        return parse_dnsperf(completed.stdout)

    def udp_rcvbuf_errors(self):
        """Udp RcvbufErrors of the client namespace (dnsperf's and the server's sockets)."""
        completed = self.world.run("client", ["cat", "/proc/net/snmp"])
        rows = [line.split() for line in completed.stdout.splitlines()
                if line.startswith("Udp:")]
        if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
            return 0
        return int(rows[1][rows[0].index("RcvbufErrors")])

    def miss_file(self, tag, count):
        path = self.directory / f"miss-{tag}.txt"
        path.write_text("".join(f"m{index}-{tag}.wild.{d.ZONE} A\n" for index in range(count)))
        return path

    def measure(self, server, round_index):
        seconds = self.args.seconds
        behind_fw = isinstance(server, BehindFirewall)
        port = BEHIND_FW_PORT if behind_fw else 53
        firewalled = server.name in WITH_PORTWARDEN
        # unbound+fw: its warm-up queries reach nsd through portwarden's nameserver (astray DNS
        # redirected), which is fine for filling unbound's cache. Its misses would measure both
        # nameservers in a row, so they are not measured.
        phases = ("hit",) if behind_fw else PHASES
        warm = self.dnsperf(self.hit_file, 2000, 10, verbose=False, once=True, port=port)
        if warm.completed != self.hit_count:
            self.notes.append(f"round {round_index + 1} {server.name}: warm-up completed "
                              f"{warm.completed} of {self.hit_count}")
        for phase in phases:
            for kind, qps in (("cpu", self.args.cpu_qps), ("lat", self.args.latency_qps)):
                if phase == "hit":
                    data, once = self.hit_file, False
                else:
                    # Unique names, a margin over what the rate allows, each asked once.
                    data = self.miss_file(f"r{round_index}-{server.name}-{kind}",
                                          int(qps * seconds * 1.05) + 10)
                    once = True
                drops_before = self.udp_rcvbuf_errors()
                queued_before = self.queued_packets() if firewalled else None
                firewall_before = process_cpu_ticks(server.portwarden.pid) if behind_fw \
                    else None
                before = process_cpu_ticks(server.pid)
                run = self.dnsperf(data, qps, seconds, verbose=kind == "lat", once=once,
                                   port=port)
                after = process_cpu_ticks(server.pid)
                firewall_ticks = process_cpu_ticks(server.portwarden.pid) - firewall_before \
                    if behind_fw else None
                queued = self.queued_packets() - queued_before if firewalled else None
                run.rcvbuf_drops = self.udp_rcvbuf_errors() - drops_before
                wrong = {code: count for code, count in run.rcodes.items() if code != "NOERROR"}
                if wrong:
                    self.notes.append(f"round {round_index + 1} {server.name} {phase}/{kind}: "
                                      f"answers other than NOERROR: {wrong}")
                if run.lost:
                    self.notes.append(
                        f"round {round_index + 1} {server.name} {phase}/{kind}: {run.lost} "
                        f"lost; {run.rcvbuf_drops} UDP datagrams dropped for a full socket "
                        "buffer in the client namespace meanwhile")
                if not server.alive():
                    raise BenchError(f"{server.name} died during {phase}/{kind}:\n{server.log()}")
                result = PhaseResult(server.name, phase, kind, qps, run, after - before,
                                     queued, firewall_ticks)
                self.results.append(result)
                if behind_fw and queued > QUEUED_NOTE_LIMIT:
                    self.notes.append(
                        f"round {round_index + 1} {server.name} {phase}/{kind}: {queued} packets "
                        f"were queued to portwarden (expected only the first few of dnsperf's "
                        f"flow, ≤ {QUEUED_NOTE_LIMIT})")
                cpu = result.cpu_us_per_query
                extra = ""
                if queued is not None:
                    extra += f", queued {queued}"
                if result.firewall_cpu_us_per_query is not None:
                    extra += f", portwarden {result.firewall_cpu_us_per_query:.2f} µs/query"
                log(f"  {server.name:10} {phase}/{kind} {qps} qps: completed {run.completed}, "
                    f"lost {run.lost}, cpu {cpu:.1f} µs/query{extra}" if cpu is not None else
                    f"  {server.name:10} {phase}/{kind}: nothing completed")

    def run(self):
        configs = list(self.args.only)
        for round_index in range(self.args.rounds):
            shift = round_index % len(configs)
            order = configs[shift:] + configs[:shift]
            log(f"round {round_index + 1}/{self.args.rounds}: {', '.join(order)}")
            for name in order:
                if name in WITH_PORTWARDEN and self.failures.get(name):
                    continue  # it could not start: no point in retrying every round
                try:
                    server = self.start_server(name)
                except (d.DnsServerError, BenchError) as error:
                    log(f"{name} could not start: {str(error)[:2000]}")
                    self.failures.setdefault(name, []).append(str(error))
                    continue
                try:
                    self.measure(server, round_index)
                finally:
                    self.stop_server(server)

    # Report ---------------------------------------------------------------------------------

    def values(self, server, phase, kind, attribute):
        values = []
        for result in self.results:
            if (result.server, result.phase, result.kind) == (server, phase, kind):
                value = getattr(result, attribute) if not attribute.startswith("run.") \
                    else getattr(result.run, attribute[4:])
                if value is not None:
                    values.append(value)
        return values

    @staticmethod
    def cell(values, digits=1):
        if not values:
            return "n/a"
        median = statistics.median(values)
        if len(values) == 1:
            return f"{median:.{digits}f}"
        return f"{median:.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"

    def median(self, server, phase, kind, attribute):
        values = self.values(server, phase, kind, attribute)
        return statistics.median(values) if values else None

    def raw_results(self):
        """Every phase of every round, for bench/results/dns-<timestamp>.json."""
        return [{"server": result.server, "phase": result.phase, "kind": result.kind,
                 "qps": result.qps_target, "sent": result.run.sent,
                 "completed": result.run.completed, "lost": result.run.lost,
                 "rcodes": result.run.rcodes, "rcvbufDrops": result.run.rcvbuf_drops,
                 "cpuTicks": result.cpu_ticks, "cpuUsPerQuery": result.cpu_us_per_query,
                 "p50Ms": result.p50_ms, "p99Ms": result.p99_ms, "queued": result.queued,
                 "portwardenCpuTicks": result.firewall_cpu_ticks}
                for result in self.results]

    def report(self, load_before, load_after):
        args = self.args
        lines = [
            f"# DNS benchmark {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            "",
            f"{args.rounds} round(s), {args.seconds} s per phase; CPU at {args.cpu_qps} qps, "
            f"latency at {args.latency_qps} qps; {self.hit_count} cache-hit names; "
            f"load average before {load_before}, after {load_after}; {os.cpu_count()} CPUs.",
            f"Versions: {versions()}",
            "",
            "Medians over rounds, (min..max). CPU: the server's utime+stime per completed query."
            " Lost: dnsperf's lost queries, summed over rounds (cpu-rate + latency-rate runs).",
            "",
            "| server | hit CPU µs/q | miss CPU µs/q | hit p50 ms | hit p99 ms | miss p50 ms |"
            " miss p99 ms | lost hit | lost miss |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for server in args.only:
            if not any(result.server == server for result in self.results):
                reason = (self.failures.get(server) or ["no result"])[0].splitlines()[0]
                lines.append(f"| {server} | not measured: {reason[:120]} |||||||| ")
                continue
            lost = {phase: sum(self.values(server, phase, "cpu", "run.lost")
                               + self.values(server, phase, "lat", "run.lost"))
                    for phase in PHASES}
            if server == BEHIND_FW:
                lost["miss"] = NOT_MEASURED

            def column(phase, kind, attribute, digits=1, server=server):
                if server == BEHIND_FW and phase == "miss":
                    return NOT_MEASURED
                return self.cell(self.values(server, phase, kind, attribute), digits)

            lines.append(
                f"| {server} | {column('hit', 'cpu', 'cpu_us_per_query')}"
                f" | {column('miss', 'cpu', 'cpu_us_per_query')}"
                f" | {column('hit', 'lat', 'p50_ms', 3)} | {column('hit', 'lat', 'p99_ms', 3)}"
                f" | {column('miss', 'lat', 'p50_ms', 3)} | {column('miss', 'lat', 'p99_ms', 3)}"
                f" | {lost['hit']} | {lost['miss']} |")
        lines.append("")
        if BEHIND_FW in args.only:
            lines += [f"{BEHIND_FW}: unbound on {LISTEN}:{BEHIND_FW_PORT} with portwarden running "
                      "as in its own row (its rules, conntrack, eBPF hooks), i.e. the firewall's "
                      "kernel path without portwarden's nameserver; cache hits only (its upstream "
                      "queries are redirected to portwarden's nameserver).", ""]
        lines += self.ratios()
        lines += self.firewall_lines()
        if self.notes:
            lines += ["", "Notes:"] + [f"- {note}" for note in self.notes]
        # Sections that are left out would leave two blank lines in a row.
        lines = [line for index, line in enumerate(lines)
                 if line or index == 0 or lines[index - 1]]
        return "\n".join(lines) + "\n"

    def ratios(self):
        lines = []
        others = [server for server in ("unbound", BEHIND_FW, "dnsmasq")
                  if server in self.args.only]
        if "portwarden" not in self.args.only or not others:
            return lines
        lines += ["Ratios of medians (portwarden / peer; < 1 means portwarden is cheaper or "
                  "faster):", ""]
        metrics = (("hit CPU", "hit", "cpu", "cpu_us_per_query"),
                   ("miss CPU", "miss", "cpu", "cpu_us_per_query"),
                   ("hit p50", "hit", "lat", "p50_ms"), ("hit p99", "hit", "lat", "p99_ms"),
                   ("miss p50", "miss", "lat", "p50_ms"), ("miss p99", "miss", "lat", "p99_ms"))
        for peer in others:
            cells = []
            for label, phase, kind, attribute in metrics:
                if peer == BEHIND_FW and phase == "miss":
                    continue
                mine = self.median("portwarden", phase, kind, attribute)
                theirs = self.median(peer, phase, kind, attribute)
                ratio = "n/a" if mine is None or not theirs else f"{mine / theirs:.2f}"
                cells.append(f"{label} {ratio}")
            lines.append(f"- portwarden / {peer}: " + ", ".join(cells))
        lines += ["", "Targets (issue 4):"]
        for label, phase in (("cache-hit CPU per query ≤ unbound's", "hit"),
                             ("cache-miss CPU per query ≤ unbound's", "miss")):
            mine = self.median("portwarden", phase, "cpu", "cpu_us_per_query")
            theirs = self.median("unbound", phase, "cpu", "cpu_us_per_query")
            if mine is None or theirs is None:
                state = "not measured"
            else:
                met = mine <= theirs * TARGET_CPU_VS_UNBOUND
                state = f"{'met' if met else 'MISSED'} ({mine:.1f} vs {theirs:.1f} µs)"
            lines.append(f"- {label}: {state}")
        lost = sum(sum(self.values("portwarden", phase, kind, "run.lost"))
                   for phase in PHASES for kind in ("cpu", "lat")) \
            if any(r.server == "portwarden" for r in self.results) else None
        lines.append("- no lost queries (portwarden): " + (
            "not measured" if lost is None else ("met" if lost == 0 else f"MISSED ({lost} lost)")))
        if BEHIND_FW in self.args.only:
            mine = self.median("portwarden", "hit", "cpu", "cpu_us_per_query")
            theirs = self.median(BEHIND_FW, "hit", "cpu", "cpu_us_per_query")
            figures = "not measured" if mine is None or theirs is None \
                else f"{mine:.1f} vs {theirs:.1f} µs"
            lines += ["", "For information (no target):",
                      f"- cache-hit CPU vs unbound behind the same firewall: {figures}"]
        return lines

    def firewall_lines(self):
        """What portwarden did while the configurations with its firewall were measured."""
        lines = []
        firewalled = [server for server in WITH_PORTWARDEN
                      if any(result.server == server for result in self.results)]
        if not firewalled:
            return lines
        lines += ["", "Packets queued to portwarden per phase (NFQUEUE rule counters of the "
                  "client namespace; medians over rounds, (min..max)):", ""]
        for server in firewalled:
            cells = []
            for phase in (("hit",) if server == BEHIND_FW else PHASES):
                for kind in ("cpu", "lat"):
                    queued = self.values(server, phase, kind, "queued")
                    queries = self.values(server, phase, kind, "run.completed")
                    if queued:
                        cells.append(f"{phase}/{kind} {self.cell(queued, 0)} of "
                                     f"{statistics.median(queries):.0f} queries")
            lines.append(f"- {server}: " + ", ".join(cells))
        fw_cpu = self.values(BEHIND_FW, "hit", "cpu", "firewall_cpu_us_per_query")
        if fw_cpu:
            lines += ["", f"portwarden's own CPU during {BEHIND_FW}'s hit/cpu phases: "
                      f"{self.cell(fw_cpu, 2)} µs per query of unbound's (not in its row)."]
        return lines


def versions():
    parts = []
    for argv, pattern in ((["nsd", "-v"], r"NSD version ([\d.]+)"),
                          (["unbound", "-V"], r"Version ([\d.]+)"),
                          (["dnsmasq", "-v"], r"Dnsmasq version ([\d.]+)"),
                          (["dnsperf", "-h"], r"Version ([\d.]+)")):
        try:
            binary = d.tool_path(argv[0])
            completed = subprocess.run([binary, *argv[1:]], capture_output=True, text=True,
                                       timeout=10, check=False)
            match = re.search(pattern, completed.stdout + completed.stderr)
            parts.append(f"{argv[0]} {match.group(1) if match else '?'}")
        except (d.DnsServerError, OSError, subprocess.TimeoutExpired):
            parts.append(f"{argv[0]} missing")
    return ", ".join(parts)


def load_average():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portwarden", type=Path,
                        default=REPO / "build" / "release" / "src" / "cli" / "portwarden")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--only", default=",".join(SERVERS),
                        help=f"a subset of {','.join(SERVERS)} (default: all)")
    parser.add_argument("--cpu-qps", type=int, default=5000,
                        help="query rate of the CPU phases (default 5000)")
    parser.add_argument("--latency-qps", type=int, default=1000,
                        help="query rate of the latency phases (default 1000)")
    parser.add_argument("--hit-names", type=int, default=HIT_NAMES,
                        help="names in the cache-hit set (default 100)")
    parser.add_argument("--no-save", action="store_true",
                        help="do not write bench/results/dns-<timestamp>.md and .json")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in SERVERS]
    if unknown or not args.only:
        parser.error(f"--only: unknown {unknown} (choose from {', '.join(SERVERS)})")
    if args.rounds < 1 or args.seconds < 1 or args.hit_names < 10:
        parser.error("--rounds and --seconds must be >= 1, --hit-names >= 10")
    args.portwarden = args.portwarden.resolve()
    return args


def main(argv):
    args = parse_args(argv)
    bench = Bench(args)
    load_before = load_average()
    stem = RESULTS_DIR / f"dns-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    try:
        bench.setup()
        bench.run()
        if not args.no_save:
            # The raw figures first: a report that fails must not lose a run.
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            stem.with_suffix(".json").write_text(json.dumps(bench.raw_results(), indent=1))
        text = bench.report(load_before, load_average())
    except (BenchError, d.DnsServerError) as error:
        log(f"error: {error}")
        return 2
    finally:
        bench.close()
    print(text)
    if not args.no_save:
        stem.with_suffix(".md").write_text(text)
        log(f"written to {stem}.md and {stem}.json")
    return 0


if __name__ == "__main__":
    # SIGTERM/SIGINT tear down the world (world.py installs the handlers when it is entered);
    # this makes a SIGTERM before that point exit quietly too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main(sys.argv[1:]))
