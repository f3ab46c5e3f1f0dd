#!/usr/bin/env python3
"""System benchmark of portwarden (issues 2 and 3), run entirely inside private network namespaces.

Builds two namespaces joined by a veth pair: pwb-client-<pid> (where the firewall under test
runs, together with the load generator's clients) and pwb-internet-<pid> (the servers). Then, in
interleaved rounds, measures for every configuration: new TCP connections per second with 1 and 2
client threads (the load generator keeps --inflight connections opening per thread; connect
latency at that rate, and one connection at a time), new UDP request/response flows per second,
bulk TCP throughput over one connection (iperf3), and for the configurations with a verdict
process its CPU time per new TCP connection and its resident memory at the end of its run. The
daemon runs with every feature on (portwarden) and with each of them switched off in turn
(attribution, its nameserver, --events), and with attribution tables and off without events, so
that what each feature costs shows side by side; the runs with attribution also check, from the
daemon's events, that it named the load generator. --sweep measures instead the rates at each
point of client threads x flows in flight, to show where the load generator stops being the
limit.

Nothing is ever installed in the root network namespace: every iptables command, every server
and every client runs in the benchmark's namespaces (`ip netns exec`, or `nsenter --net` for the
daemon), and both namespaces are deleted on exit, including on failure, Ctrl-C and SIGTERM. The
daemon's eBPF programs are attached to a cgroup v2 child of the benchmark's own, pwb-<pid>, into
which the benchmark moves itself first (so every process it starts is inside), never to the
host's cgroup v2 root; at the end everything left in it goes back and it is removed. See
bench/README.md for how to read the output.

Python standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"

CLIENT_V4, SERVER_V4 = "10.199.0.1", "10.199.0.2"
CLIENT_V6, SERVER_V6 = "fd99::1", "fd99::2"
TCP_PORT, UDP_PORT, IPERF_PORT = 7000, 7001, 5201
PERMANENT_ACCEPT_MARK = 1710
QUEUES = (17040, 17140, 17060, 17160)

# The targets of issues 2 and 3, always against this run's own baselines (never absolute
# figures: the machines are shared and noisy). Issue 2's are for the interception core alone
# (portwarden-off); issue 3's for the daemon with attribution (portwarden, mode auto).
TARGET_TCP_UDP_VS_MINIMAL = 0.9
TARGET_BULK_VS_KERNEL = 0.97
TARGET_RSS_MIB = 8.0
TARGET_TCP_WITH_ATTRIBUTION_VS_MINIMAL = 0.85
# Below this share of the load generator's TCP connections named as pw_loadgen, a round warns.
ATTRIBUTED_WARNING_FRACTION = 0.99
# Length of each load in the attribution check run that follows a measured daemon run.
CHECK_SECONDS = 1.0

CONFIGS = ("none", "kernel-only", "minimal-verdict", "portwarden", "portwarden-profiles",
           "portwarden-1000-profiles", "portwarden-tables", "portwarden-off", "portwarden-attribution-off",
           "portwarden-dns-off", "portwarden-events-off", "opensnitchd")


@dataclass(frozen=True)
class DaemonVariant:
    """How one of the daemon's configurations runs: its --attribution mode, whether its
    nameserver runs, and whether it writes --events while it is measured (None: only with
    --events-while-measuring)."""
    attribution: str
    dns: bool
    events: bool | None
    profiles: int = 0  # > 0: default-block, and this many profiles (the load generator's permits)


# `portwarden` is the daemon with every feature on (attribution auto, its nameserver, an event
# line per connection); each `portwarden-<feature>-off` switches exactly one of them off, so
# that the ratio to `portwarden` is what that feature costs. `portwarden-tables` and
# `portwarden-off` are the attribution study of issues 2 and 3, measured without --events as
# before (the daemon's default): `portwarden-off` is the interception core alone.
PORTWARDEN_VARIANTS = {
    "portwarden": DaemonVariant("auto", dns=True, events=True),
    # Issue 9: `filter/defaultAction: block` and 100 profiles, created through the API before
    # the measurement; the load generator's own profile permits the server, so every connection
    # is matched to a profile and decided by its rules (target: >= 0.9x `portwarden`).
    "portwarden-profiles": DaemonVariant("auto", dns=True, events=True, profiles=100),
    # The same with 1,000 profiles: its resident memory is issue 9's (target <= 16 MiB).
    "portwarden-1000-profiles": DaemonVariant("auto", dns=True, events=True, profiles=1000),
    "portwarden-tables": DaemonVariant("tables", dns=True, events=None),
    "portwarden-off": DaemonVariant("off", dns=True, events=None),
    "portwarden-attribution-off": DaemonVariant("off", dns=True, events=True),
    "portwarden-dns-off": DaemonVariant("auto", dns=False, events=True),
    "portwarden-events-off": DaemonVariant("auto", dns=True, events=False),
}
# The daemon's configurations and the --attribution mode each one runs with.
PORTWARDEN_MODES = {name: variant.attribution for name, variant in PORTWARDEN_VARIANTS.items()}
# What the daemon's config says to switch its nameserver off. A daemon that does not know the
# setting yet refuses the config (exit status 2): the configuration is then skipped.
DNS_OFF_CONFIG = {"dns": {"listenAddress": "off"}}
CONFIG_REFUSED_EXIT = 2

# Creates the profiles of `portwarden-profiles` through the API on 127.0.0.1:817 (run in the
# client namespace; exits 1 while the API does not answer yet).
PROFILES_SCRIPT = """
import http.client, json, sys
def post(body):
    connection = http.client.HTTPConnection("127.0.0.1", 817, timeout=10)
    connection.request("POST", "/api/v1/profiles", body=json.dumps(body),
                       headers={{"Content-Type": "application/json"}})
    response = connection.getresponse()
    text = response.read()
    if response.status not in (200, 201):
        sys.exit(f"{{response.status}} {{text!r}}")
def path(value):
    return [{{"type": "path", "operation": "equals", "value": value}}]
try:
    for name, executable in (("pw_loadgen", "{loadgen}"), ("iperf3", "{iperf3}")):
        post({{"name": name, "fingerprints": path(executable),
              "settings": {{"filter/endpoints": ["- 192.0.2.0/24", "- .tracker.example",
                                                 "+ {server_v4}", "+ {server_v6}"]}}}})
    for index in range({count} - 2):
        rules = [f"- host{{index}}-{{rule}}.example.com" for rule in range(8)]
        rules += [f"+ 198.18.{{index % 250}}.0/24 tcp/443", "+ .example.org"]
        post({{"name": f"app{{index}}", "fingerprints": path(f"/opt/app{{index}}/bin/app"),
              "settings": {{"filter/endpoints": rules}}}})
except OSError as error:
    sys.exit(str(error))
"""

# New flows in flight per client thread while the rates are measured (pw_loadgen --inflight):
# enough to keep the minimal verdict program busy on a 2-vCPU machine (see the sweep in
# bench/README.md). The latency of one connection on an otherwise idle path is measured apart,
# with one flow in flight.
DEFAULT_INFLIGHT = 64
# Length of the one-connection-at-a-time latency measurement (at most --seconds).
LATENCY_SECONDS = 2.0
# The sweep (--sweep): client threads x flows in flight per thread, for TCP and UDP.
DEFAULT_SWEEP_THREADS = "1,2"
DEFAULT_SWEEP_INFLIGHT = "1,4,16,64,256"

# The seed ruleset (shared/seeds/003: chains C170/C171/C17 and the nat rules for marks 1799 and
# 1717). Used only when `portwarden iptables show` does not work yet, and said so in the output.
FALLBACK_RULES = {
    4: """*mangle
:C170 - [0:0]
:C171 - [0:0]
-A C170 -j CONNMARK --restore-mark
-A C170 -m mark --mark 0 -j NFQUEUE --queue-num 17040 --queue-bypass
-A C171 -j CONNMARK --restore-mark
-A C171 -m mark --mark 0 -j NFQUEUE --queue-num 17140 --queue-bypass
-I OUTPUT 1 -j C170
-I INPUT 1 -j C171
COMMIT
*filter
:C17 - [0:0]
-A C17 -m mark --mark 0 -j DROP
-A C17 -m mark --mark 1700 -j ACCEPT
-A C17 -m mark --mark 1701 -j REJECT --reject-with icmp-host-prohibited
-A C17 -m mark --mark 1702 -j DROP
-A C17 -j CONNMARK --save-mark
-A C17 -m mark --mark 1710 -j ACCEPT
-A C17 -m mark --mark 1711 -j REJECT --reject-with icmp-host-prohibited
-A C17 -m mark --mark 1712 -j DROP
-A C17 -m mark --mark 1717 -j ACCEPT
-I OUTPUT 1 -j C17
-I INPUT 1 -j C17
COMMIT
*nat
-A OUTPUT -p udp --dport 53 -m mark --mark 1799 -j DNAT --to-destination 127.0.0.17:53
-A OUTPUT -p tcp -m mark --mark 1717 -j DNAT --to-destination 127.0.0.17:717
-A OUTPUT -p udp -m mark --mark 1717 -j DNAT --to-destination 127.0.0.17:717
COMMIT
""",
    6: """*mangle
:C170 - [0:0]
:C171 - [0:0]
-A C170 -j CONNMARK --restore-mark
-A C170 -m mark --mark 0 -j NFQUEUE --queue-num 17060 --queue-bypass
-A C171 -j CONNMARK --restore-mark
-A C171 -m mark --mark 0 -j NFQUEUE --queue-num 17160 --queue-bypass
-I OUTPUT 1 -j C170
-I INPUT 1 -j C171
COMMIT
*filter
:C17 - [0:0]
-A C17 -m mark --mark 0 -j DROP
-A C17 -m mark --mark 1700 -j ACCEPT
-A C17 -m mark --mark 1701 -j REJECT --reject-with icmp6-adm-prohibited
-A C17 -m mark --mark 1702 -j DROP
-A C17 -j CONNMARK --save-mark
-A C17 -m mark --mark 1710 -j ACCEPT
-A C17 -m mark --mark 1711 -j REJECT --reject-with icmp6-adm-prohibited
-A C17 -m mark --mark 1712 -j DROP
-A C17 -m mark --mark 1717 -j ACCEPT
-I OUTPUT 1 -j C17
-I INPUT 1 -j C17
COMMIT
*nat
-A OUTPUT -p udp --dport 53 -m mark --mark 1799 -j DNAT --to-destination [::1]:53
-A OUTPUT -p tcp -m mark --mark 1717 -j DNAT --to-destination [::1]:717
-A OUTPUT -p udp -m mark --mark 1717 -j DNAT --to-destination [::1]:717
COMMIT
""",
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


class ConfigUnsupported(BenchError):
    """The binary under test cannot run this configuration at all (it refused the config):
    the configuration is skipped for the rest of the run, with this message in the notes."""


def run(argv: list[str], *, input_text: str | None = None, timeout: float = 60,
        check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, input=input_text, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({result.returncode}): "
                         f"{result.stderr.strip() or result.stdout.strip()}")
    return result


# ---------------------------------------------------------------------------------------------
# The world: two namespaces, a veth pair, servers.

# Set in the client namespace only (each of them is per network namespace).
CLIENT_SYSCTLS = ("net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1",
                  "net.netfilter.nf_conntrack_tcp_timeout_close=1",
                  "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1",
                  "net.netfilter.nf_conntrack_udp_timeout=1")


class World:
    """Owns the namespaces and every process started in them; close() undoes all of it."""

    def __init__(self, loadgen: Path, workdir: Path) -> None:
        pid = os.getpid()
        self.client = f"pwb-client-{pid}"
        self.internet = f"pwb-internet-{pid}"
        self.loadgen = loadgen
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []
        self.created: list[str] = []

    # Commands -------------------------------------------------------------------------------

    def in_client(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.client, *argv], **kwargs)

    def in_internet(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.internet, *argv], **kwargs)

    def spawn(self, namespace: str, argv: list[str], log_name: str) -> subprocess.Popen:
        """Starts a long-running process in `namespace`; its output goes to a log file."""
        return self._spawn(["ip", "netns", "exec", namespace, *argv], log_name)

    def spawn_net_only(self, namespace: str, argv: list[str], log_name: str) -> subprocess.Popen:
        """Like spawn(), but only the network namespace changes: the process keeps our mounts.

        `ip netns exec` gives its command a private mount namespace with a fresh sysfs on /sys,
        in which the cgroup file systems are missing, so a daemon started that way cannot open
        its --bpf-cgroup directory. nsenter execs (it forks only for a PID namespace): the
        Popen's PID is the command's own.
        """
        return self._spawn(["nsenter", f"--net=/run/netns/{namespace}", "--", *argv], log_name)

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen:
        log_file = open(self.workdir / f"{log_name}.log", "wb")  # noqa: SIM115 (kept by Popen)
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=log_file, start_new_session=True)
        log_file.close()
        self.processes.append(process)
        return process

    def log_tail(self, log_name: str, lines: int = 15) -> str:
        path = self.workdir / f"{log_name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, process: subprocess.Popen, timeout: float = 10) -> int | None:
        """SIGTERM, wait, then SIGKILL; only ever the process we started, by PID."""
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {process.pid} ignored SIGTERM for {timeout} s; killing it")
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            except ProcessLookupError:
                pass
        if process in self.processes:
            self.processes.remove(process)
        return process.returncode

    # Setup ----------------------------------------------------------------------------------

    def setup(self) -> None:
        for namespace in (self.client, self.internet):
            run(["ip", "netns", "add", namespace])
            self.created.append(namespace)
        # The veth pair is created inside the client namespace with its peer placed straight
        # into the internet namespace: no interface ever appears in the root namespace.
        run(["ip", "-n", self.client, "link", "add", "pwb0", "type", "veth", "peer", "name",
             "pwb1", "netns", self.internet])
        for namespace, device, v4, v6 in ((self.client, "pwb0", CLIENT_V4, CLIENT_V6),
                                          (self.internet, "pwb1", SERVER_V4, SERVER_V6)):
            run(["ip", "-n", namespace, "addr", "add", f"{v4}/24", "dev", device])
            run(["ip", "-n", namespace, "addr", "add", f"{v6}/64", "dev", device, "nodad"])
            run(["ip", "-n", namespace, "link", "set", "lo", "up"])
            run(["ip", "-n", namespace, "link", "set", device, "up"])
        # Client side: a wide port range and short conntrack timeouts for closed TCP and
        # answered UDP flows. All of these are per network namespace (the kernel gives each
        # namespace its own copy), so the host's values are never touched. Without them the
        # table of a 40k connections/s run fills up: nf_conntrack_max and
        # nf_conntrack_buckets are global and read-only outside the root namespace (the
        # limit is compared with each namespace's own count; conntrack_state() watches it),
        # and a reused UDP source port would find its old entry with connmark 1710 and skip
        # the queue. Closed TCP entries (the load generator ends each connection with a RST)
        # then live 1 s: some 40,000 entries at 40k connections/s.
        for setting in CLIENT_SYSCTLS:
            result = self.in_client(["sysctl", "-q", "-w", setting], check=False)
            if result.returncode != 0:
                log(f"warning: sysctl {setting} in the client namespace: {result.stderr.strip()}")
        # Server side: room for a burst of handshakes that the accept loop has not reached yet
        # (the load generator keeps up to threads x --inflight connections opening at once).
        for setting in ("net.core.somaxconn=8192", "net.ipv4.tcp_max_syn_backlog=8192"):
            self.in_internet(["sysctl", "-q", "-w", setting], check=False)

        # Servers listen on the IPv6 wildcard, which also takes IPv4.
        self.spawn(self.internet, [str(self.loadgen), "tcp-server", "--bind", "::", "--port",
                                   str(TCP_PORT), "--threads", "2"], "tcp-server")
        self.spawn(self.internet, [str(self.loadgen), "udp-server", "--bind", "::", "--port",
                                   str(UDP_PORT), "--threads", "2"], "udp-server")
        self.spawn(self.internet, ["iperf3", "-s", "-p", str(IPERF_PORT)], "iperf3-server")
        self.wait_reachable()

    def start_background(self, processes: int, target: str) -> None:
        """Idle processes holding 5 TCP connections each: a populated socket table. They are
        in the benchmark's cgroup, like everything it starts after entering it."""
        process = self.spawn(self.client, [str(self.loadgen), "idle-sockets", "--target", target,
                                           "--port", str(TCP_PORT), "--processes",
                                           str(processes), "--sockets", "5"], "background")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "READY" in self.log_tail("background", 1):
                log(f"background: {processes} processes holding 5 connections each")
                return
            if process.poll() is not None:
                break
            time.sleep(0.2)
        raise BenchError(f"background processes did not start:\n{self.log_tail('background')}")

    def wait_reachable(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            v4 = self.in_client(["ping", "-c", "1", "-W", "1", SERVER_V4], check=False)
            v6 = self.in_client(["ping", "-6", "-c", "1", "-W", "1", SERVER_V6], check=False)
            listening = self.in_internet(["ss", "-Hltn", f"sport = :{TCP_PORT}"], check=False)
            if v4.returncode == 0 and v6.returncode == 0 and listening.stdout.strip():
                return
            time.sleep(0.2)
        raise BenchError("the internet namespace is not reachable from the client namespace")

    # Firewall state in the client namespace -------------------------------------------------

    def mangle_rules(self, family: int = 4) -> str:
        tool = "iptables" if family == 4 else "ip6tables"
        return self.in_client([tool, "-w", "5", "-t", "mangle", "-S"], check=False).stdout

    def flush_firewall(self) -> None:
        """Empties the client namespace's netfilter state: rules, tables and connections.

        The namespace is ours alone, so flushing everything in it is safe; it also removes the
        empty iptables-nft base chains that `iptables -F` would leave hooked in, so that "none"
        really has no firewall.
        """
        self.in_client(["nft", "flush", "ruleset"], check=False)
        for family in ("ipv4", "ipv6"):
            self.in_client(["conntrack", "-F", "-f", family], check=False)
        for family in (4, 6):
            rules = self.mangle_rules(family)
            if "C170" in rules or "NFQUEUE" in rules:
                raise BenchError("rules are still installed in the client namespace after flush")

    def queue_table(self) -> list[list[int]]:
        """/proc/net/netfilter/nfnetlink_queue of the client namespace, one row per bound queue:
        number, portid, waiting, copy mode, copy range, dropped (queue full), dropped (netlink
        send failed), id sequence (packets queued so far), 1."""
        text = self.in_client(["cat", "/proc/net/netfilter/nfnetlink_queue"], check=False).stdout
        return [[int(v) for v in line.split()] for line in text.splitlines() if line.strip()]

    def conntrack_state(self) -> tuple[int, int, int]:
        """(entries now, nf_conntrack_max, packets dropped by conntrack so far) in the client
        namespace. The drops are `conntrack -S`'s drop + early_drop + insert_failed summed
        over the CPUs: a full table or a clash shows there, as lost SYNs would not."""
        def read(name: str) -> int:
            result = self.in_client(["cat", f"/proc/sys/net/netfilter/{name}"], check=False)
            return int(result.stdout.strip() or 0)
        stats = self.in_client(["conntrack", "-S"], check=False).stdout
        dropped = sum(int(value) for key, value in
                      re.findall(r"\b(drop|early_drop|insert_failed)=(\d+)", stats))
        return read("nf_conntrack_count"), read("nf_conntrack_max"), dropped

    def queues_bound(self) -> set[int]:
        return {row[0] for row in self.queue_table()}

    def queue_counters(self) -> tuple[int, int]:
        """(packets queued so far, packets dropped so far) over all bound queues."""
        table = self.queue_table()
        return sum(row[7] for row in table), sum(row[5] + row[6] for row in table)

    # Teardown -------------------------------------------------------------------------------

    def close(self) -> None:
        for process in list(reversed(self.processes)):
            try:
                self.stop(process, timeout=5)
            except Exception as error:  # noqa: BLE001 (teardown must go on)
                log(f"warning: stopping pid {process.pid}: {error}")
        for namespace in reversed(self.created):
            # Anything still inside was started by us (the namespace is ours alone); a process
            # left in it would keep the namespace alive.
            pids = run(["ip", "netns", "pids", namespace], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", namespace], check=False)
        self.created.clear()


# ---------------------------------------------------------------------------------------------
# A cgroup v2 directory of the benchmark's own, for the daemon's eBPF programs.
#
# `portwarden run --bpf-cgroup DIR` attaches its cgroup hooks to DIR, and they see only the
# processes in DIR and below. The benchmark never lets them attach to the host's cgroup v2 root:
# it creates <root>/pwb-<pid>, moves itself into it before it starts anything (so the servers,
# load generators, background processes and the daemon all inherit it), and passes that.

CGROUP2_CANDIDATES = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
CGROUP_NAME = re.compile(r"^pwb-(\d+)$")


def cgroup2_root() -> Path | None:
    """The cgroup v2 hierarchy: /sys/fs/cgroup on unified systems, /sys/fs/cgroup/unified on
    hybrid ones; whichever /proc/mounts lists with file system type cgroup2."""
    mounted = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            mounted.append(Path(fields[1]))
    for candidate in CGROUP2_CANDIDATES:
        if candidate in mounted:
            return candidate
    return mounted[0] if mounted else None


def own_cgroup2_path(pid: str = "self") -> str:
    """A process's cgroup v2 path relative to the hierarchy's root ("/" for the root)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def cgroup_pids(directory: Path) -> list[int]:
    try:
        return [int(token) for token in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def empty_and_remove_cgroup(directory: Path, destination: Path, timeout: float = 10) -> str:
    """Moves every process in `directory` (and below) to `destination`, then removes the
    directories, deepest first. Returns an error text, or "" on success."""
    deadline = time.monotonic() + timeout
    nested = sorted((p for p in directory.rglob("*") if p.is_dir()),
                    key=lambda p: len(p.parts), reverse=True)
    for cgroup in [*nested, directory]:
        while True:
            for pid in cgroup_pids(cgroup):
                try:
                    (destination / "cgroup.procs").write_text(str(pid))
                except OSError:
                    pass  # it exited meanwhile
            try:
                cgroup.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as error:
                # EBUSY while an exiting process is still being released.
                if time.monotonic() > deadline:
                    return f"rmdir {cgroup}: {error} (still inside: {cgroup_pids(cgroup)})"
                time.sleep(0.05)
    return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BenchCgroup:
    """<cgroup v2 root>/pwb-<pid>, holding this process and everything it starts.

    enter() creates it and moves this process into it; close() moves whatever is left in it
    (this process included) back to the cgroup this process came from and removes it. A pwb-<pid>
    cgroup whose benchmark is gone (SIGKILLed) is removed by the next enter().
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / f"pwb-{os.getpid()}"
        self.original = root / own_cgroup2_path().lstrip("/")
        self.created = False

    def enter(self) -> None:
        for entry in self.root.iterdir():
            match = CGROUP_NAME.match(entry.name)
            if match and entry.is_dir() and not pid_alive(int(match.group(1))):
                log(f"removing the stale cgroup {entry} of a benchmark that is gone")
                error = empty_and_remove_cgroup(entry, self.root)
                if error:
                    log(f"warning: {error}")
        self.path.mkdir()
        self.created = True
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        if not self.created:
            return
        error = empty_and_remove_cgroup(self.path, self.original)
        if error:
            log(f"warning: cgroup {self.path} not removed: {error}")
            return
        self.created = False


# ---------------------------------------------------------------------------------------------
# The ruleset, as portwarden renders it (or the seed fallback).


def split_rule_script(text: str) -> dict[int, str]:
    """Splits `portwarden iptables show` into the IPv4 and IPv6 iptables-restore scripts.

    The two scripts are separated by comment headers naming the family; a script that mentions an
    IPv6 queue number or an IPv6-only reject type is IPv6 whatever its header says.
    """
    sections: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("#") and re.search(r"ip6?tables|ipv[46]", line, re.IGNORECASE):
            if any(not l.startswith("#") and l.strip() for l in sections[-1]):
                sections.append([])
        sections[-1].append(line)
    scripts: dict[int, str] = {}
    for section in sections:
        body = "\n".join(section) + "\n"
        if "*mangle" not in body and "*filter" not in body:
            continue
        header = " ".join(l for l in section if l.startswith("#")).lower()
        is_v6 = ("17060" in body or "17160" in body or "icmp6" in body or "ip6tables" in header
                 or "ipv6" in header)
        scripts[6 if is_v6 else 4] = body
    return scripts


def kernel_only(script: str) -> str:
    """The same ruleset with the verdict made in the kernel: NFQUEUE becomes MARK 1710."""
    return re.sub(r"-j NFQUEUE\b[^\n]*", f"-j MARK --set-mark {PERMANENT_ACCEPT_MARK}", script)


@dataclass
class Ruleset:
    scripts: dict[int, str]
    source: str
    from_portwarden: bool  # False: the seed fallback, and `portwarden iptables` is not used


def load_ruleset(portwarden: Path | None) -> Ruleset:
    if portwarden is not None:
        try:
            result = run([str(portwarden), "iptables", "show"], timeout=20, check=False)
            scripts = split_rule_script(result.stdout)
            if result.returncode == 0 and set(scripts) == {4, 6} and all(
                    "NFQUEUE" in s for s in scripts.values()):
                return Ruleset(scripts, f"`{portwarden} iptables show`", True)
            log(f"warning: `portwarden iptables show` gave no usable v4+v6 scripts "
                f"(exit {result.returncode}); using the seed rules")
        except (OSError, subprocess.TimeoutExpired) as error:
            log(f"warning: `portwarden iptables show`: {error}; using the seed rules")
    return Ruleset(dict(FALLBACK_RULES), "seed rules built into bench/run_bench.py (fallback)",
                   False)


def apply_scripts(world: World, scripts: dict[int, str]) -> None:
    for family, script in sorted(scripts.items()):
        tool = "iptables-restore" if family == 4 else "ip6tables-restore"
        world.in_client([tool, "--noflush", "-w", "5"], input_text=script)


# ---------------------------------------------------------------------------------------------
# Configurations. Each one is installed in the client namespace, measured, and removed again.


@dataclass
class Firewall:
    """What a configuration leaves running while it is measured."""
    process: subprocess.Popen | None = None


class Config:
    name = ""

    def __init__(self) -> None:
        # Things the report should say about this configuration (said once).
        self.notes: list[str] = []

    def start(self, world: World) -> Firewall:  # noqa: ARG002
        return Firewall()

    def stop(self, world: World, firewall: Firewall) -> dict[str, float]:
        """Stops it and removes its state; returns the figures only known afterwards."""
        if firewall.process is not None:
            code = world.stop(firewall.process)
            if code not in (0, -signal.SIGTERM):
                log(f"warning: {self.name} exited with {code}")
        world.flush_firewall()
        return {}

    def check(self, world: World, target: str) -> dict[str, float]:  # noqa: ARG002
        """A run of its own after the measurement, for figures the measurement must not pay
        for (the daemon's event log); none by default."""
        return {}


class NoFirewall(Config):
    name = "none"


class KernelOnly(Config):
    name = "kernel-only"

    def __init__(self, ruleset: Ruleset) -> None:
        super().__init__()
        self.scripts = {family: kernel_only(s) for family, s in ruleset.scripts.items()}

    def start(self, world: World) -> Firewall:
        apply_scripts(world, self.scripts)
        return Firewall()


def wait_for(predicate, what: str, process: subprocess.Popen | None, world: World,
             log_name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BenchError(f"{what}: the process exited with {process.returncode}\n"
                             f"{world.log_tail(log_name)}")
        if predicate():
            return
        time.sleep(0.1)
    raise BenchError(f"{what}: not ready after {timeout} s\n{world.log_tail(log_name)}")


class MinimalVerdict(Config):
    name = "minimal-verdict"

    def __init__(self, binary: Path, ruleset: Ruleset, portwarden: Path | None) -> None:
        super().__init__()
        self.binary = binary
        self.ruleset = ruleset
        self.portwarden = portwarden  # set whenever ruleset.from_portwarden is

    def start(self, world: World) -> Firewall:
        # The daemon's own rule installer when it works; the same text through
        # iptables-restore otherwise (it is what `iptables show` printed, or the seed rules).
        if self.ruleset.from_portwarden:
            world.in_client([str(self.portwarden), "iptables", "apply"], timeout=30)
        else:
            apply_scripts(world, self.ruleset.scripts)
        process = world.spawn(world.client, [str(self.binary)], self.name)
        wait_for(lambda: set(QUEUES) <= world.queues_bound(), "pw_minimal_verdict", process,
                 world, self.name)
        return Firewall(process)

    def stop(self, world: World, firewall: Firewall) -> dict[str, float]:
        if firewall.process is not None:
            world.stop(firewall.process)
            firewall.process = None
        if self.ruleset.from_portwarden:
            world.in_client([str(self.portwarden), "iptables", "remove"], timeout=30,
                            check=False)
        return super().stop(world, firewall)


class Portwarden(Config):
    """`portwarden run` with one --attribution mode, its nameserver on or off, and --events or
    not; it installs and removes its rules itself.

    The daemon is started with `nsenter --net` rather than `ip netns exec` so that it can open
    the benchmark's cgroup (see World.spawn_net_only). Without events_while_measuring it is
    measured without --events, as it runs by default: writing an event line per connection
    costs about 4 µs each. Whether attribution worked is then checked by check(), a short run
    of its own with --events, right after the measured one; with events_while_measuring, from
    the measured run's own events. With dns=False its config switches the nameserver off
    (DNS_OFF_CONFIG); a daemon that refuses that config is skipped (ConfigUnsupported).
    """

    def __init__(self, name: str, binary: Path, attribution: str | None,
                 cgroup: Path | None, events_while_measuring: bool = False,
                 dns: bool = True, profiles: int = 0) -> None:
        super().__init__()
        self.profiles = profiles
        self.name = name
        self.binary = binary
        self.attribution = attribution  # None: a daemon without --attribution (older build)
        self.cgroup = cgroup            # --bpf-cgroup, for mode auto
        self.events_while_measuring = events_while_measuring
        self.dns = dns
        self.writing_events = False     # whether the daemon now running has --events
        if attribution == "auto" and cgroup is None:
            raise BenchError("attribution auto needs the benchmark's cgroup")

    def events_path(self, world: World) -> Path:
        return world.workdir / f"{self.name}-events.jsonl"

    def start(self, world: World) -> Firewall:
        return self.start_daemon(world, events=self.events_while_measuring)

    def start_daemon(self, world: World, events: bool) -> Firewall:
        config = world.workdir / f"{self.name}.json"
        # An upstream of the benchmark's own, so that the nameserver never depends on the
        # host's /etc/resolv.conf (nothing here resolves names).
        settings = {"filter": {"defaultAction": "block" if self.profiles else "permit"},
                    **({"dns": {"nameservers": [f"dns://{SERVER_V4}"]}} if self.dns
                       else DNS_OFF_CONFIG)}
        config.write_text(json.dumps(settings) + "\n")
        events_path = self.events_path(world)
        events_path.unlink(missing_ok=True)
        # Never the host's systemd-resolved: nothing here resolves names.
        argv = [str(self.binary), "run", "--config", str(config), "--resolved-monitor", "off",
                "--data-dir", str(world.workdir / f"{self.name}-data")]
        if events:
            argv += ["--events", str(events_path)]
        if self.attribution is not None:
            argv += ["--attribution", self.attribution]
        if self.attribution == "auto":
            argv += ["--bpf-cgroup", str(self.cgroup)]
        self.writing_events = events
        process = world.spawn_net_only(world.client, argv, self.name)
        try:
            wait_for(lambda: ("C170" in world.mangle_rules(4)
                              and set(QUEUES) <= world.queues_bound()),
                     "portwarden run (rules and queues)", process, world, self.name)
        except BenchError as error:
            if not self.dns and process.returncode == CONFIG_REFUSED_EXIT:
                world.stop(process)
                world.flush_firewall()
                refusal = world.log_tail(self.name, 3).strip().splitlines()
                raise ConfigUnsupported(
                    f"{self.name} skipped: this build refused the config "
                    f"{json.dumps(DNS_OFF_CONFIG)} (exit {CONFIG_REFUSED_EXIT}: it has no "
                    f"setting to switch the nameserver off yet); it said: "
                    f"{refusal[-1] if refusal else '(nothing)'}") from error
            raise
        if events:
            self.check_started(events_path)
        if self.profiles:
            self.create_profiles(world)
        return Firewall(process)

    def create_profiles(self, world: World) -> None:
        """`self.profiles` profiles through the daemon's API: the load generator's, whose rules
        permit the server, and others for executables that do not run, with ten rules each."""
        script = PROFILES_SCRIPT.format(count=self.profiles, loadgen=str(Path(world.loadgen).resolve()),
                                        iperf3=os.path.realpath(shutil.which("iperf3") or "iperf3"),
                                        server_v4=SERVER_V4, server_v6=SERVER_V6)
        deadline = time.monotonic() + 10
        while True:
            result = world.in_client([sys.executable, "-c", script])
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: creating the profiles failed: "
                                 f"{result.stdout}{result.stderr}\n{world.log_tail(self.name)}")
            time.sleep(0.2)

    def check_started(self, events: Path) -> None:
        """Says so when mode auto runs without its eBPF records (it then falls back to the
        socket tables, and the figures are those of tables)."""
        if self.attribution != "auto":
            return
        # The daemon writes its started event just after it installed its rules, which is
        # what start_daemon() waited for: give it a moment.
        deadline = time.monotonic() + 5
        started = read_event(events, "started", from_end=False)
        while started is None and time.monotonic() < deadline:
            time.sleep(0.05)
            started = read_event(events, "started", from_end=False)
        attribution = (started or {}).get("attribution", {})
        if not attribution.get("ebpf"):
            note = (f"{self.name}: the daemon runs without its eBPF records (started event: "
                    f"{json.dumps(attribution)}); see {self.name}.log")
            if note not in self.notes:
                self.notes.append(note)
                log(f"warning: {note}")

    def stop(self, world: World, firewall: Firewall) -> dict[str, float]:
        # portwarden removes its own rules on SIGTERM; check that it did before flushing.
        if firewall.process is not None:
            code = world.stop(firewall.process)
            firewall.process = None
            if code not in (0, -signal.SIGTERM):
                log(f"warning: portwarden exited with {code}\n{world.log_tail(self.name)}")
            if "C170" in world.mangle_rules(4) or "C170" in world.mangle_rules(6):
                log("warning: portwarden left its rules installed after SIGTERM")
        super().stop(world, firewall)
        if not self.writing_events:
            return {}
        events = self.events_path(world)
        try:
            return attribution_figures(events) if self.attribution != "off" else {}
        finally:
            events.unlink(missing_ok=True)

    def check(self, world: World, target: str) -> dict[str, float]:
        """The attribution check: the same daemon with --events, CHECK_SECONDS of TCP connects
        (1 thread) and of UDP flows, then its stats event and decided events."""
        if self.attribution == "off" or self.events_while_measuring:
            return {}
        firewall = self.start_daemon(world, events=True)
        try:
            loadgen(world, "tcp-connect", TCP_PORT, CHECK_SECONDS, 1, target)
            loadgen(world, "udp-flows", UDP_PORT, CHECK_SECONDS, 1, target)
            if firewall.process is not None and firewall.process.poll() is not None:
                raise BenchError(f"{self.name} died during the attribution check\n"
                                 f"{world.log_tail(self.name)}")
        finally:
            figures = self.stop(world, firewall)
        return figures


def read_event(path: Path, event: str, from_end: bool) -> dict | None:
    """The first (or, from_end, the last) event of that name in an events file; only the first
    or last 256 KiB are read, as the file holds an event line per connection."""
    if not path.exists():
        return None
    with open(path, "rb") as file:
        if from_end:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 256 * 1024))
        lines = file.read(256 * 1024).splitlines()
    prefix = f'{{"event":"{event}"'.encode()
    for line in (reversed(lines) if from_end else lines):
        if line.startswith(prefix):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def attribution_figures(events: Path) -> dict[str, float]:
    """What attribution achieved in one daemon run, from its events file.

    From the stats event (all connections): the share of connections attributed to a process,
    and of those from the eBPF records. A connection whose first lookup found nothing is looked
    up again (deferred), and every retry counts as a lookup, so the share is taken over
    lookups - retries: one per connection. From the decided events: the share of the load
    generator's TCP and UDP connections that were named as pw_loadgen.
    """
    figures: dict[str, float] = {}
    stats = read_event(events, "stats", from_end=True)
    attribution = (stats or {}).get("attribution", {})
    connections = attribution.get("lookups", 0) - attribution.get("retries", 0)
    if connections > 0:
        by_ebpf = attribution.get("byKernelRecord", 0) + attribution.get("byExecRecord", 0)
        attributed = by_ebpf + attribution.get("bySocketTable", 0)
        figures["attr_pct"] = 100 * attributed / connections
        figures["attr_ebpf_pct"] = 100 * by_ebpf / connections
        figures["attr_deferred"] = attribution.get("deferred", 0)
        figures["attr_gave_up"] = attribution.get("retryGaveUp", 0)
    # (protocol, server port) -> [connections, named pw_loadgen]
    counts = {("tcp", TCP_PORT): [0, 0], ("udp", UDP_PORT): [0, 0]}
    with open(events, "rb") as file:
        for line in file:
            if not line.startswith(b'{"event":"decided"'):
                continue
            event = json.loads(line)
            key = (event.get("protocol"), event.get("remote", {}).get("port"))
            if key not in counts or event.get("direction") != "outbound":
                continue
            counts[key][0] += 1
            process = event.get("process") or {}
            if (process.get("kind") == "process"
                    and process.get("executable", "").endswith("/pw_loadgen")):
                counts[key][1] += 1
    for (protocol, _port), (total, named) in counts.items():
        if total:
            figures[f"attr_{protocol}_pct"] = 100 * named / total
            figures[f"attr_{protocol}_count"] = total
    return figures


class OpenSnitch(Config):
    """Debian's opensnitchd 1.5.8 with its defaults and no UI (it then allows connections)."""
    name = "opensnitchd"

    def __init__(self, binary: Path) -> None:
        super().__init__()
        self.binary = binary

    def start(self, world: World) -> Firewall:
        # opensnitchd 1.5.8 reads its settings from /etc/opensnitchd/ only; where that is
        # missing it logs an error and runs with its built-in defaults, which allow connections
        # when no UI answers. Everything else is given on the command line.
        rules = world.workdir / "opensnitch-rules"
        rules.mkdir(exist_ok=True)
        process = world.spawn(world.client, [
            str(self.binary), "-rules-path", str(rules),
            "-ui-socket", f"unix://{world.workdir}/osui.sock",
            "-process-monitor-method", "proc",
            "-log-file", str(world.workdir / "opensnitchd-own.log")], self.name)
        wait_for(lambda: "NFQUEUE" in world.mangle_rules(4), "opensnitchd rules", process,
                 world, self.name, timeout=30)
        time.sleep(1)  # It binds its queue right after adding the rules.
        return Firewall(process)


# ---------------------------------------------------------------------------------------------
# Measurements.


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def process_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def loadgen(world: World, command: str, port: int, seconds: float, threads: int,
            target: str, inflight: int = 1) -> dict:
    """One pw_loadgen client run in the client namespace: its JSON line (rate, p50_us, p99_us,
    count, errors, lost, timeouts, seconds, threads, inflight, cpu_us_per_flow)."""
    result = world.in_client([str(world.loadgen), command, "--target", target, "--port",
                              str(port), "--threads", str(threads), "--inflight", str(inflight),
                              "--seconds", str(seconds)],
                             timeout=seconds + 30)
    if result.stderr.strip():
        log(f"{command}: {result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def iperf(world: World, seconds: float, target: str) -> float:
    result = world.in_client(["iperf3", "-c", target, "-p", str(IPERF_PORT), "-t",
                              str(max(1, round(seconds))), "-J"], timeout=seconds + 30)
    report = json.loads(result.stdout)
    return report["end"]["sum_received"]["bits_per_second"] / 1e9


def measure(world: World, config: Config, seconds: float, target: str,
            inflight: int) -> dict[str, float]:
    firewall = config.start(world)
    figures: dict[str, float] = {}
    try:
        pid = firewall.process.pid if firewall.process is not None else None
        cpu_before = process_cpu_seconds(pid) if pid else (0.0, 0.0)
        queued_before, dropped_before = world.queue_counters()
        conntrack_dropped_before = world.conntrack_state()[2]
        tcp1 = loadgen(world, "tcp-connect", TCP_PORT, seconds, 1, target, inflight)
        tcp2 = loadgen(world, "tcp-connect", TCP_PORT, seconds, 2, target, inflight)
        connections = tcp1["count"] + tcp2["count"]
        # Right after the busiest phase: how full the namespace's conntrack table got.
        entries, table_max, _ = world.conntrack_state()
        figures["conntrack_fill_pct"] = 100 * entries / table_max if table_max else 0.0
        if pid and connections:
            user, system = (after - before for after, before in
                            zip(process_cpu_seconds(pid), cpu_before))
            figures["cpu_us_per_conn"] = (user + system) * 1e6 / connections
            figures["user_cpu_us_per_conn"] = user * 1e6 / connections
            # 1 when only the SYN reaches userspace, as the design intends.
            queued = world.queue_counters()[0] - queued_before
            figures["queued_per_conn"] = queued / connections
        # One connection at a time: the latency of the firewall's path on an idle machine.
        single = loadgen(world, "tcp-connect", TCP_PORT, min(seconds, LATENCY_SECONDS), 1,
                         target, 1)
        udp = loadgen(world, "udp-flows", UDP_PORT, seconds, 1, target, inflight)
        figures.update({
            "tcp1_rate": tcp1["rate"], "tcp1_p50": tcp1["p50_us"], "tcp1_p99": tcp1["p99_us"],
            "tcp2_rate": tcp2["rate"], "tcp2_p50": tcp2["p50_us"], "tcp2_p99": tcp2["p99_us"],
            "single_p50": single["p50_us"], "single_p99": single["p99_us"],
            "tcp_errors": tcp1["errors"] + tcp2["errors"] + single["errors"],
            "udp_rate": udp["rate"], "udp_p50": udp["p50_us"], "udp_p99": udp["p99_us"],
            "udp_lost": udp["lost"] + udp["errors"],
            "loadgen_cpu_us": tcp1.get("cpu_us_per_flow", float("nan")),
        })
        figures["bulk_gbps"] = iperf(world, seconds, target)
        figures["conntrack_drops"] = world.conntrack_state()[2] - conntrack_dropped_before
        if pid:
            figures["rss_mib"] = process_rss_mib(pid)
            figures["queue_drops"] = world.queue_counters()[1] - dropped_before
            if firewall.process.poll() is not None:
                raise BenchError(f"{config.name} died during the measurement\n"
                                 f"{world.log_tail(config.name)}")
    finally:
        after_stop = config.stop(world, firewall)
    figures.update(after_stop)
    figures.update(config.check(world, target))
    return figures


def sweep_points(arguments: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(command, threads, inflight) of every point of the sweep, TCP first."""
    threads = [int(t) for t in arguments.sweep_threads.split(",") if t.strip()]
    inflight = [int(i) for i in arguments.sweep_inflight.split(",") if i.strip()]
    return [(command, t, i) for command in ("tcp-connect", "udp-flows")
            for t in threads for i in inflight]


def measure_sweep(world: World, config: Config, seconds: float, target: str,
                  points: list[tuple[str, int, int]]) -> dict[str, float]:
    """For one configuration: the rate (and latency, errors, the verdict process's CPU share)
    at every (command, threads, inflight) point, with the firewall started once for all."""
    firewall = config.start(world)
    figures: dict[str, float] = {}
    try:
        pid = firewall.process.pid if firewall.process is not None else None
        for command, threads, inflight in points:
            key = f"{command}/{threads}/{inflight}"
            cpu_before = sum(process_cpu_seconds(pid)) if pid else 0.0
            dropped_before = world.queue_counters()[1]
            conntrack_before = world.conntrack_state()[2]
            port = TCP_PORT if command == "tcp-connect" else UDP_PORT
            result = loadgen(world, command, port, seconds, threads, target, inflight)
            figures[f"{key}/rate"] = result["rate"]
            figures[f"{key}/p50"] = result["p50_us"]
            figures[f"{key}/p99"] = result["p99_us"]
            figures[f"{key}/loadgen_cpu"] = result.get("cpu_us_per_flow", float("nan"))
            figures[f"{key}/failed"] = (result["errors"] + result["lost"]
                                        + world.queue_counters()[1] - dropped_before
                                        + world.conntrack_state()[2] - conntrack_before)
            if pid:
                figures[f"{key}/verdict_cpu_pct"] = (
                    100 * (sum(process_cpu_seconds(pid)) - cpu_before) / result["seconds"])
        if pid and firewall.process.poll() is not None:
            raise BenchError(f"{config.name} died during the sweep\n"
                             f"{world.log_tail(config.name)}")
    finally:
        config.stop(world, firewall)
    return figures


# ---------------------------------------------------------------------------------------------
# Report.

ROWS = (
    # (label, key(s), format)
    ("TCP connects/s, 1 client thread", ("tcp1_rate",), "{:,.0f}"),
    ("p50 / p99 connect latency µs, 1 thread (at that rate)", ("tcp1_p50", "tcp1_p99"),
     "{:,.0f}"),
    ("TCP connects/s, 2 client threads", ("tcp2_rate",), "{:,.0f}"),
    ("p50 / p99 connect latency µs, 2 threads (at that rate)", ("tcp2_p50", "tcp2_p99"),
     "{:,.0f}"),
    ("p50 / p99 connect latency µs, one connection at a time", ("single_p50", "single_p99"),
     "{:,.0f}"),
    ("UDP new request/response flows/s, 1 client thread", ("udp_rate",), "{:,.0f}"),
    ("p50 / p99 UDP flow latency µs (at that rate)", ("udp_p50", "udp_p99"), "{:,.0f}"),
    ("bulk TCP Gbit/s (one connection)", ("bulk_gbps",), "{:.2f}"),
    ("firewall CPU µs per new TCP connection", ("cpu_us_per_conn",), "{:.1f}"),
    ("… of which in user space", ("user_cpu_us_per_conn",), "{:.1f}"),
    ("firewall resident memory MiB (end of run)", ("rss_mib",), "{:.1f}"),
    ("packets queued to userspace per new TCP connection", ("queued_per_conn",), "{:.2f}"),
    ("TCP errors / UDP lost / queue drops / conntrack drops (sum over rounds)",
     ("tcp_errors", "udp_lost", "queue_drops", "conntrack_drops"), "{:,.0f}"),
    ("conntrack table fill after the TCP phases, % of nf_conntrack_max", ("conntrack_fill_pct",),
     "{:.1f}"),
    ("load generator CPU µs per TCP connection, 1 thread", ("loadgen_cpu_us",), "{:.1f}"),
    ("connections attributed to a process, % (stats event)", ("attr_pct",),
     "{:.2f}"),
    ("… of which by eBPF records, %", ("attr_ebpf_pct",), "{:.2f}"),
    ("loadgen TCP / UDP connections named pw_loadgen, % (decided events)",
     ("attr_tcp_pct", "attr_udp_pct"), "{:.2f}"),
    ("connections deferred / given up on (sum over rounds)", ("attr_deferred", "attr_gave_up"),
     "{:,.0f}"),
)
SUMMED = {"tcp_errors", "udp_lost", "queue_drops", "conntrack_drops", "attr_deferred",
          "attr_gave_up"}


def cell(values: list[float], fmt: str, key: str) -> str:
    if not values:
        return "–"
    if key in SUMMED:
        return fmt.format(sum(values))
    median = fmt.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def median_of(results: dict[str, list[dict]], config: str, key: str) -> float | None:
    values = [r[key] for r in results.get(config, []) if key in r]
    return statistics.median(values) if values else None


def ratio_lines(results: dict[str, list[dict]]) -> list[str]:
    pairs = (("minimal-verdict", "kernel-only"),
             ("portwarden", "minimal-verdict"), ("portwarden-tables", "minimal-verdict"),
             ("portwarden-off", "minimal-verdict"),
             ("portwarden-attribution-off", "minimal-verdict"),
             ("portwarden-dns-off", "minimal-verdict"),
             ("portwarden-events-off", "minimal-verdict"),
             # What each feature costs: the daemon with all of them over the one without it.
             ("portwarden", "portwarden-attribution-off"), ("portwarden", "portwarden-dns-off"),
             ("portwarden", "portwarden-events-off"),
             ("portwarden-events-off", "portwarden-off"),
             ("portwarden-tables", "portwarden-off"), ("portwarden", "kernel-only"),
             ("portwarden", "opensnitchd"), ("minimal-verdict", "none"),
             ("kernel-only", "none"))
    keys = (("TCP 1 thread", "tcp1_rate"), ("TCP 2 threads", "tcp2_rate"),
            ("UDP flows", "udp_rate"), ("bulk", "bulk_gbps"))
    lines = []
    for numerator, denominator in pairs:
        if not results.get(numerator) or not results.get(denominator):
            continue
        parts = []
        for label, key in keys:
            top, bottom = median_of(results, numerator, key), median_of(results, denominator, key)
            if top is not None and bottom:
                parts.append(f"{label} {top / bottom:.2f}×")
        lines.append(f"- {numerator} / {denominator}: " + ", ".join(parts))
    return lines


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def rate_target_line(results: dict[str, list[dict]], config: str, label: str, key: str,
                     target: float) -> str:
    top = median_of(results, config, key)
    bottom = median_of(results, "minimal-verdict", key)
    if top is None or not bottom:
        return f"- {label} ≥ {target}× minimal-verdict: not measured"
    value = top / bottom
    return f"- {label} ≥ {target}× minimal-verdict: {value:.2f}× {verdict(value >= target)}"


def target_lines(results: dict[str, list[dict]]) -> list[str]:
    """Issue 2's targets for the interception core alone (portwarden-off), issue 3's for the
    daemon with attribution (mode auto) as it runs by default, without --events:
    portwarden-events-off, or portwarden (which writes events) when that is not measured."""
    lines = ["Issue 2, the interception core (portwarden-off):", ""]
    core = "portwarden-off"
    if not results.get(core):
        lines.append(f"- {core} not measured: issue 2's targets not evaluated")
    else:
        for label, key in (("TCP 1 thread", "tcp1_rate"), ("TCP 2 threads", "tcp2_rate"),
                           ("UDP flows", "udp_rate")):
            lines.append(rate_target_line(results, core, label, key, TARGET_TCP_UDP_VS_MINIMAL))
        top = median_of(results, core, "bulk_gbps")
        bottom = median_of(results, "kernel-only", "bulk_gbps")
        if top is not None and bottom:
            value = top / bottom
            lines.append(f"- bulk ≥ {TARGET_BULK_VS_KERNEL}× kernel-only: {value:.3f}× "
                         f"{verdict(value >= TARGET_BULK_VS_KERNEL)}")
        else:
            lines.append(f"- bulk ≥ {TARGET_BULK_VS_KERNEL}× kernel-only: not measured")
        rss = [r["rss_mib"] for r in results[core] if "rss_mib" in r]
        if rss:
            lines.append(f"- resident memory ≤ {TARGET_RSS_MIB:g} MiB after the run: max "
                         f"{max(rss):.1f} MiB {verdict(max(rss) <= TARGET_RSS_MIB)}")
    attributed = next((c for c in ("portwarden-events-off", "portwarden") if results.get(c)),
                      None)
    lines += ["", f"Issue 3, with process attribution ({attributed or 'portwarden'}, mode auto"
              + (", with --events" if attributed == "portwarden" else "") + "):", ""]
    if attributed is None:
        lines.append("- portwarden-events-off and portwarden not measured: issue 3's targets "
                     "not evaluated")
        return lines
    target = TARGET_TCP_WITH_ATTRIBUTION_VS_MINIMAL
    for label, key in (("TCP 1 thread", "tcp1_rate"), ("TCP 2 threads", "tcp2_rate")):
        line = rate_target_line(results, attributed, label, key, target)
        tables = median_of(results, "portwarden-tables", key)
        bottom = median_of(results, "minimal-verdict", key)
        if tables is not None and bottom:
            line += f" (portwarden-tables, for comparison: {tables / bottom:.2f}×)"
        lines.append(line)
    named = [r["attr_tcp_pct"] for c in ("portwarden", "portwarden-events-off")
             for r in results.get(c, []) if "attr_tcp_pct" in r]
    floor = 100 * ATTRIBUTED_WARNING_FRACTION
    if named:
        lines.append(f"- loadgen TCP connections named pw_loadgen ≥ {floor:g}% in every round: "
                     f"lowest {min(named):.2f}% {verdict(min(named) >= floor)}")
    else:
        lines.append("- loadgen TCP connections named: not measured (no events)")
    return lines


def report(results: dict[str, list[dict]], configs: list[str], header: list[str],
           notes: list[str]) -> str:
    measured = [c for c in configs if results.get(c)]
    lines = ["# portwarden system benchmark", "", *header, ""]
    lines.append("Medians over the rounds, (min..max) in brackets.")
    lines.append("")
    lines.append("| figure | " + " | ".join(measured) + " |")
    lines.append("|---|" + "---|" * len(measured))
    for label, keys, fmt in ROWS:
        cells = []
        for config in measured:
            parts = [cell([r[k] for r in results[config] if k in r], fmt, k) for k in keys]
            cells.append(" / ".join(parts) if any(p != "–" for p in parts) else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios of medians:", "", *ratio_lines(results), "", "Targets:", "",
              *target_lines(results)]
    if notes:
        lines += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def sweep_report(results: dict[str, list[dict]], configs: list[str],
                 points: list[tuple[str, int, int]], header: list[str],
                 notes: list[str]) -> str:
    """One row per (kind, threads, inflight): per configuration the rate (median, min..max),
    and for a verdict process the share of one CPU it used (median)."""
    measured = [c for c in configs if results.get(c)]
    lines = ["# portwarden benchmark: load generator sweep", "", *header, ""]
    lines.append("New flows per second, medians over the rounds, (min..max) in brackets; "
                 "`cpu` is the verdict process's CPU time over the wall time (100% = one CPU "
                 "busy); `failed` is the sum over the rounds of errors, lost UDP requests, "
                 "queue drops and conntrack drops.")
    lines.append("")
    columns = []
    for config in measured:
        columns += [f"{config} flows/s", f"{config} p50 / p99 µs"]
        if any(k.endswith("verdict_cpu_pct") for r in results[config] for k in r):
            columns.append(f"{config} cpu")
        columns.append(f"{config} failed")
    lines.append("| flows | threads | in flight per thread | " + " | ".join(columns) + " |")
    lines.append("|---|---|---|" + "---|" * len(columns))
    for command, threads, inflight in points:
        key = f"{command}/{threads}/{inflight}"
        cells = []
        for config in measured:
            rows = results[config]
            cells.append(cell([r[f"{key}/rate"] for r in rows if f"{key}/rate" in r],
                              "{:,.0f}", "rate"))
            p50 = median_of(results, config, f"{key}/p50")
            p99 = median_of(results, config, f"{key}/p99")
            cells.append("–" if p50 is None else f"{p50:,.0f} / {p99:,.0f}")
            if any(k.endswith("verdict_cpu_pct") for r in rows for k in r):
                cpu = median_of(results, config, f"{key}/verdict_cpu_pct")
                cells.append("–" if cpu is None else f"{cpu:.0f}%")
            cells.append(f"{sum(r.get(f'{key}/failed', 0) for r in rows):,.0f}")
        kind = "TCP connects" if command == "tcp-connect" else "UDP flows"
        lines.append(f"| {kind} | {threads} | {inflight} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Main.


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portwarden", type=Path,
                        default=REPO / "build" / "release" / "src" / "cli" / "portwarden",
                        help="the portwarden binary (default: %(default)s)")
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "release",
                        help="where pw_loadgen and pw_minimal_verdict are built "
                             "(bench/ under it; default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="duration of each measurement (default: %(default)s)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of: {', '.join(CONFIGS)} "
                        "(default: all)")
    parser.add_argument("--ipv6", action="store_true",
                        help="send the traffic over IPv6 (fd99::2) instead of IPv4")
    parser.add_argument("--opensnitchd", type=Path, default=None,
                        help="opensnitchd binary (default: the one on PATH, if any); "
                        "bench/extract_opensnitchd.sh unpacks Debian's without installing it")
    parser.add_argument("--background", type=int, default=0, metavar="N",
                        help="N idle processes in the client namespace holding 5 TCP "
                        "connections each, as on a busy desktop; they are in the "
                        "benchmark's cgroup, so the eBPF programs see them (default 0)")
    parser.add_argument("--events-while-measuring", action="store_true",
                        help="run portwarden-* with --events during the measurement itself "
                        "(about 4 µs more per connection) and take the attribution rows from "
                        "it, instead of from a check run of its own after each measurement")
    parser.add_argument("--inflight", type=int, default=DEFAULT_INFLIGHT, metavar="N",
                        help="new flows the load generator keeps in flight per client thread "
                        "while it measures the rates (default %(default)s)")
    parser.add_argument("--sweep", action="store_true",
                        help="instead of the figures: the TCP and UDP rates of every "
                        "configuration at each client threads x in-flight point, to show "
                        "where the load generator stops being the limit")
    parser.add_argument("--sweep-threads", default=DEFAULT_SWEEP_THREADS, metavar="A,B",
                        help="client threads of the sweep (default %(default)s)")
    parser.add_argument("--sweep-inflight", default=DEFAULT_SWEEP_INFLIGHT, metavar="A,B",
                        help="flows in flight per thread of the sweep (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 1 s")
    parser.add_argument("--no-save", action="store_true",
                        help="do not write bench/results/<timestamp>.md")
    arguments = parser.parse_args()
    if not 1 <= arguments.inflight <= 4096:
        parser.error("--inflight must be 1..4096")
    if arguments.quick:
        arguments.rounds, arguments.seconds = 1, 1.0
    arguments.no_attribution_option = False
    arguments.cgroup_root = cgroup2_root()
    return arguments


def daemon_has_attribution_option(portwarden: Path) -> bool:
    """Whether this build knows --attribution (older builds, given with --portwarden, do not)."""
    try:
        result = run([str(portwarden), "run", "--help"], timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--attribution" in result.stdout + result.stderr


def choose_configs(arguments: argparse.Namespace, notes: list[str]) -> list[str]:
    wanted = [c.strip() for c in arguments.only.split(",") if c.strip()] or list(CONFIGS)
    unknown = [c for c in wanted if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s): {', '.join(unknown)}")
    daemons = [c for c in wanted if c in PORTWARDEN_MODES]
    if daemons and not os.access(arguments.portwarden, os.X_OK):
        notes.append(f"{', '.join(daemons)} skipped: {arguments.portwarden} is not built")
        wanted = [c for c in wanted if c not in daemons]
    elif daemons and not daemon_has_attribution_option(arguments.portwarden):
        arguments.no_attribution_option = True
        dropped = [c for c in daemons if c != "portwarden"]
        notes.append(f"{arguments.portwarden} has no --attribution option: portwarden runs "
                     "without it" + (f", {', '.join(dropped)} skipped" if dropped else ""))
        wanted = [c for c in wanted if c not in dropped]
    needs_cgroup = [c for c in wanted if PORTWARDEN_MODES.get(c) == "auto"]
    if needs_cgroup and arguments.cgroup_root is None:
        notes.append(f"{', '.join(needs_cgroup)} (attribution auto) skipped: no cgroup v2 "
                     "hierarchy to give its eBPF programs a cgroup of the benchmark's own "
                     "(never the root)")
        wanted = [c for c in wanted if c not in needs_cgroup]
    if arguments.opensnitchd is None and shutil.which("opensnitchd"):
        arguments.opensnitchd = Path(shutil.which("opensnitchd"))
    if "opensnitchd" in wanted and (arguments.opensnitchd is None or
                                    not os.access(arguments.opensnitchd, os.X_OK)):
        notes.append("opensnitchd skipped: not installed (Debian package `opensnitch`); see "
                     "shared/reference/peer-figures.md for figures measured on this kind of "
                     "machine")
        wanted.remove("opensnitchd")
    return wanted


def check_tools(arguments: argparse.Namespace) -> tuple[Path, Path]:
    if os.geteuid() != 0:
        raise SystemExit("run_bench.py needs root (network namespaces, iptables, NFQUEUE)")
    for tool in ("ip", "iptables-restore", "ip6tables-restore", "nft", "conntrack", "iperf3",
                 "ss", "ping", "nsenter"):
        if shutil.which(tool) is None:
            raise SystemExit(f"missing tool: {tool}")
    bench_dir = arguments.build_dir / "bench"
    loadgen_binary, verdict_binary = bench_dir / "pw_loadgen", bench_dir / "pw_minimal_verdict"
    if not (loadgen_binary.exists() and verdict_binary.exists()):
        log(f"building pw_loadgen and pw_minimal_verdict in {arguments.build_dir}")
        subprocess.run(["cmake", "--build", str(arguments.build_dir), "--target", "pw_loadgen",
                        "pw_minimal_verdict"], check=True)
    return loadgen_binary, verdict_binary


def make_config(name: str, arguments: argparse.Namespace, ruleset: Ruleset,
                verdict_binary: Path, cgroup: BenchCgroup | None) -> Config:
    portwarden = arguments.portwarden if os.access(arguments.portwarden, os.X_OK) else None
    if name == "none":
        return NoFirewall()
    if name == "kernel-only":
        return KernelOnly(ruleset)
    if name == "minimal-verdict":
        return MinimalVerdict(verdict_binary, ruleset, portwarden)
    if name in PORTWARDEN_VARIANTS:
        variant = PORTWARDEN_VARIANTS[name]
        mode = None if arguments.no_attribution_option else variant.attribution
        events = (arguments.events_while_measuring if variant.events is None
                  else variant.events)
        return Portwarden(name, arguments.portwarden, mode,
                          cgroup.path if cgroup is not None else None,
                          events_while_measuring=events, dns=variant.dns,
                          profiles=variant.profiles)
    return OpenSnitch(arguments.opensnitchd)


def describe_daemon(config: Portwarden) -> str:
    return (f"{config.name}: --attribution {config.attribution or '(none)'}, nameserver "
            f"{'on' if config.dns else 'off'}, "
            f"{'--events' if config.events_while_measuring else 'no --events'}")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def raise_on_signal(signal_number: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signal_number}")


def snapshot(binary: Path, directory: Path) -> Path:
    """A copy of `binary` in `directory`, under the same name: every round then runs the same
    build, and a rebuild of build/release while the benchmark runs cannot break a round."""
    directory.mkdir(exist_ok=True)
    copy = directory / binary.name
    shutil.copy2(binary, copy)
    return copy


def main() -> int:
    arguments = parse_arguments()
    loadgen_binary, verdict_binary = check_tools(arguments)
    with tempfile.TemporaryDirectory(prefix="pwb-") as workdir:
        return run_benchmark(arguments, Path(workdir), loadgen_binary, verdict_binary)


def run_benchmark(arguments: argparse.Namespace, workdir: Path, loadgen_binary: Path,
                  verdict_binary: Path) -> int:
    notes: list[str] = []
    binaries = workdir / "bin"
    built = arguments.portwarden
    if os.access(arguments.portwarden, os.X_OK):
        arguments.portwarden = snapshot(arguments.portwarden, binaries)
    loadgen_binary = snapshot(loadgen_binary, binaries)
    verdict_binary = snapshot(verdict_binary, binaries)
    config_names = choose_configs(arguments, notes)
    portwarden = arguments.portwarden if os.access(arguments.portwarden, os.X_OK) else None
    ruleset = load_ruleset(portwarden)
    if not ruleset.from_portwarden:
        notes.append("kernel-only and minimal-verdict used the seed rules, not "
                     "`portwarden iptables show`")
    # Only a daemon with eBPF attribution needs the cgroup; entered below, inside the try.
    cgroup = (BenchCgroup(arguments.cgroup_root)
              if any(PORTWARDEN_MODES.get(c) == "auto" for c in config_names)
              and arguments.cgroup_root is not None else None)
    configs = [make_config(n, arguments, ruleset, verdict_binary, cgroup) for n in config_names]
    target = SERVER_V6 if arguments.ipv6 else SERVER_V4

    load_before = load_average()
    if load_before > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {load_before:.1f} on {os.cpu_count()} CPUs: the figures "
            "will be noisy")
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signal_number, raise_on_signal)
    results: dict[str, list[dict]] = {c.name: [] for c in configs}
    unsupported: set[str] = set()
    points = sweep_points(arguments)
    world = World(loadgen_binary, workdir)
    try:
        if cgroup is not None:
            # First: everything started from here on inherits it.
            cgroup.enter()
            log(f"eBPF cgroup: {cgroup.path} (this process and all it starts)")
        world.setup()
        world.flush_firewall()
        if arguments.background:
            world.start_background(arguments.background, target)
        loadgen(world, "tcp-connect", TCP_PORT, 0.5, 1, target)  # warm-up, not recorded
        for round_index in range(arguments.rounds):
            # Interleaved, and rotated each round so that no configuration always runs
            # first (or right after the same neighbour) while the machine drifts.
            shift = round_index % len(configs)
            for config in configs[shift:] + configs[:shift]:
                if config.name in unsupported:
                    continue
                log(f"round {round_index + 1}/{arguments.rounds}: {config.name}")
                try:
                    if arguments.sweep:
                        figures = measure_sweep(world, config, arguments.seconds, target,
                                                points)
                    else:
                        figures = measure(world, config, arguments.seconds, target,
                                          arguments.inflight)
                except ConfigUnsupported as error:
                    log(str(error))
                    notes.append(str(error))
                    unsupported.add(config.name)
                    continue
                except BenchError as error:
                    log(f"error: {config.name}: {error}")
                    notes.append(f"round {round_index + 1}, {config.name}: {error}"
                                 .splitlines()[0])
                    continue
                results[config.name].append(figures)
                log("  " + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()
                                     if not arguments.sweep or k.endswith("/rate")))
                named = figures.get("attr_tcp_pct")
                if named is not None and named < 100 * ATTRIBUTED_WARNING_FRACTION:
                    warning = (f"round {round_index + 1}, {config.name}: only {named:.2f}% "
                               f"of the load generator's "
                               f"{figures.get('attr_tcp_count', 0):,.0f} TCP connections "
                               f"were named pw_loadgen (< "
                               f"{100 * ATTRIBUTED_WARNING_FRACTION:g}%)")
                    log(f"WARNING: {warning}")
                    notes.append(f"WARNING: {warning}")
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        # A second Ctrl-C must not cut the teardown short.
        for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signal_number, signal.SIG_IGN)
        world.close()
        if cgroup is not None:
            cgroup.close()

    for config in configs:
        notes.extend(config.notes)
    header = [
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}, "
        f"kernel {os.uname().release}, {os.cpu_count()} CPUs",
        f"- {arguments.rounds} interleaved round(s) of {arguments.seconds:g} s per measurement, "
        f"traffic over IPv{'6' if arguments.ipv6 else '4'}",
        (f"- load generator: threads {arguments.sweep_threads} x flows in flight per thread "
         f"{arguments.sweep_inflight}, TCP connects and UDP flows"
         if arguments.sweep else
         f"- load generator: {arguments.inflight} new flows in flight per client thread "
         "(non-blocking sockets, epoll); the one-at-a-time latency with 1 in flight for "
         f"{min(arguments.seconds, LATENCY_SECONDS):g} s"),
        f"- background in the client namespace: {arguments.background} idle processes x 5 TCP "
        "connections" + (" (in the eBPF cgroup)" if arguments.background and cgroup else ""),
        "- portwarden's eBPF programs: " + (f"attached to {cgroup.path}, which holds the "
                                            "benchmark and every process it starts"
                                            if cgroup else "not used in this run"),
        "- portwarden-*: daemon started with `nsenter --net`; " + "; ".join(
            describe_daemon(c) for c in configs if isinstance(c, Portwarden)) + (
            f". Attribution rows from the measured run where it writes --events, else from a "
            f"check run with --events after it ({CHECK_SECONDS:g} s of TCP connects, "
            f"{CHECK_SECONDS:g} s of UDP flows, one flow in flight)"
            if any(isinstance(c, Portwarden) for c in configs) else "none measured"),
        f"- binaries: copies taken at the start of {built}, {arguments.build_dir / 'bench'}/"
        "pw_loadgen and pw_minimal_verdict",
        f"- ruleset: {ruleset.source}",
        f"- load average (1 min) before / after: {load_before:.2f} / {load_average():.2f} "
        "(ours adds about 2 while it runs; more than that means other work shared the CPUs)",
    ]
    if arguments.sweep:
        text = sweep_report(results, [c.name for c in configs], points, header, notes)
    else:
        text = report(results, [c.name for c in configs], header, notes)
    print(text)
    if not arguments.no_save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
        path = RESULTS_DIR / f"{'sweep-' if arguments.sweep else ''}{stamp}.md"
        path.write_text(text)
        log(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
