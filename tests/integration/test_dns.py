"""The local nameserver (issue 4) against real DNS servers and real clients.

nsd (Debian) in the `internet` namespace is authoritative for `pwtest.` on 10.77.0.2 / fd77::2,
over UDP and TCP on port 53 and over TLS on 853 (a certificate for dns.pwtest from a throw-away
CA): see dns_servers.py for the zone. The daemon runs in the `client` namespace with
`dns/nameservers` pointing at it, and its nameserver listens on 127.0.0.17:53 and [::1]:53.
Clients in the client namespace resolve through it with the system's tools (dig, getent with a
resolv.conf of the namespace, a small C program using getaddrinfo) and then connect, and every
check reads what the clients got and what the daemon wrote to its events file:

- a "dns" line per answered query (question, rcode, answers, cnames, source
  upstream/cache/blocked/canary/error, upstream, scope, and the asking process);
- the "decided" line of each connection, with the domain and CNAME chain its own process
  resolved the remote address from.

Cases: answers over UDP and TCP on both listeners; CNAME chains; an answer too big for UDP (TCP
fallback upstream, TC and retry for the client); the cache; getent; two executables resolving
two names of one address, each connection carrying its own name; the global scope of a system
resolver (dnsmasq) used by a process that did not resolve; queries to other nameservers
(astray) answered by us; domain rules answering 0.0.0.17 / ::17; the DoH canary; DoT to a
resolver blocked while the daemon's own dot:// upstream works; tcp:// and dot:// upstreams,
certificate checks, failover, SERVFAIL when every upstream is down or silent; malformed queries
over UDP and TCP; a bad upstream URL refused at start; systemd-resolved's monitor socket (played
by fake_resolved.py): its answers name the connections of processes without an answer of their
own, malformed messages are skipped, and the daemon subscribes again when resolved comes back.

Every wait is bounded (dig +time, event polls, subprocess timeouts): a daemon that does not
answer makes a test fail with what it did write, never hang. Bounds are hang guards, not
performance assertions.

Run: ctest --test-dir build/dev -R integration_dns --output-on-failure
 or: sudo PORTWARDEN_BIN=build/dev/src/cli/portwarden python3 -m unittest -v test_dns
     (from tests/integration)
"""

import dataclasses
import ipaddress
import itertools
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import dns_servers as d
import fake_resolved as fr
import world as w
from world import INTERNET_V4, INTERNET_V4_ALT, INTERNET_V6, INTERNET_V6_ALT

NAMESERVER_V4, NAMESERVER_V6 = "127.0.0.17", "::1"
ECHO_PORT = 9000
EVENT_TIMEOUT = 5.0
# dig's +time for queries whose answer depends on upstream timeouts: only a hang guard, far
# above any sane resolver timeout, never a performance figure.
HANG_GUARD_SECONDS = 10
BLOCKED_V4, BLOCKED_V6 = "0.0.0.17", "::17"
CANARY = "use-application-dns.net"
DEAD_UPSTREAM = f"dns://{INTERNET_V4_ALT}:5353"   # nothing listens: port unreachable
SILENT_PORT = 5354
SILENT_UPSTREAM = f"dns://{INTERNET_V4_ALT}:{SILENT_PORT}"  # reads queries, never answers
GOOD_UPSTREAM = f"dns://{INTERNET_V4}"
CLIENT_SOURCE = w.TOOLS / "dns_client.c"
# The resolved monitor retries a lost connection every 5 s (ResolvedMonitor's default): the
# wait for a new subscription is that plus slack. A hang guard, not a performance figure.
RESUBSCRIBE_TIMEOUT = 8.0
# Local ports for the clients' connections: below the ephemeral range, never used twice.
_PORTS = itertools.count(21000)
_NAMES = itertools.count(1)

_ROOT_RULES_BEFORE = None
_CGROUP = None
_PROGRAMS = None
_PKI = None
_MODULE_DIRECTORY = None


def unique_name(label):
    """A fresh name under *.wild.pwtest: never asked before, so never cached, and its events
    are found by name alone."""
    return f"{label}-{os.getpid()}-{next(_NAMES)}.wild.{d.ZONE}"


def missing_tools():
    return d.missing_tools(("cc", "nsenter", "dig", "openssl", "getent"), w.SKIP_MESSAGE)


def setUpModule():
    global _ROOT_RULES_BEFORE, _CGROUP, _PROGRAMS, _PKI, _MODULE_DIRECTORY
    reason = w.missing_prerequisite(need_daemon=True) or missing_tools()
    if reason:
        w.skip_suite(reason)
    _ROOT_RULES_BEFORE = w.root_namespace_rules()
    _CGROUP = w.suite_cgroup()
    sweep_stale_module_directories()
    _MODULE_DIRECTORY = Path(os.path.realpath(
        tempfile.mkdtemp(prefix=f"pwt-dns-{os.getpid()}-")))
    _MODULE_DIRECTORY.chmod(0o755)
    _PKI = d.make_test_pki(_MODULE_DIRECTORY / "pki")
    _PROGRAMS = Programs.build(_MODULE_DIRECTORY)


def tearDownModule():
    problems = []
    if _MODULE_DIRECTORY is not None:
        shutil.rmtree(_MODULE_DIRECTORY, ignore_errors=True)
    if _CGROUP is not None:
        try:
            _CGROUP.close()
        except RuntimeError as error:
            problems.append(str(error))
        leftovers = [name for name in w.live_test_cgroups()
                     if name.startswith(f"pwt-{os.getpid()}-")]
        if leftovers:
            problems.append(f"cgroups left behind: {leftovers}")
    leftover_etc = [path.name for path in w.NETNS_ETC.glob(f"pwt-{os.getpid()}-*")]
    if leftover_etc:
        problems.append(f"/etc/netns entries left behind: {leftover_etc}")
    if _ROOT_RULES_BEFORE is not None:
        problems += w.suite_leftovers(_ROOT_RULES_BEFORE)
    if problems:
        raise AssertionError("\n".join(problems))


def sweep_stale_module_directories():
    """Removes the directories of earlier runs whose runner is gone (killed by a signal)."""
    for directory in Path(tempfile.gettempdir()).glob("pwt-dns-*-*"):
        owner = directory.name.split("-")[2]
        if owner.isdigit() and not w._pid_alive(int(owner)):  # noqa: SLF001 - same suite
            shutil.rmtree(directory, ignore_errors=True)


@dataclasses.dataclass
class Programs:
    """Copies of tools/dns_client.c under distinct names: each copy is an executable scope of
    its own for the daemon's IP -> domain memory."""

    www: Path      # resolves www.pwtest
    other: Path    # resolves other.pwtest (same address)
    chain: Path    # resolves alias.pwtest (a CNAME chain)
    stranger: Path  # resolves nothing itself: only the global scope can name its connections

    @classmethod
    def build(cls, root):
        compiled = root / "build" / "dns_client"
        compiled.parent.mkdir(mode=0o755)
        built = subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-o", compiled, CLIENT_SOURCE],
                               capture_output=True, text=True, timeout=60, check=False)
        if built.returncode != 0:
            raise RuntimeError(f"cc {CLIENT_SOURCE} failed:\n{built.stderr}")
        paths = {"www": "bin/www-client", "other": "opt/other/other-client",
                 "chain": "opt/chain/chain-client", "stranger": "opt/stranger/stranger-client"}
        copies = {}
        for role, relative in paths.items():
            destination = root / relative
            destination.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            shutil.copyfile(compiled, destination)
            destination.chmod(0o755)
            copies[role] = destination
        return cls(**copies)


# ---------------------------------------------------------------------------------------------
# Helpers


def dns_config(nameservers=(GOOD_UPSTREAM,), endpoints=None):
    config = {"filter/defaultAction": "permit", "dns/nameservers": list(nameservers)}
    if endpoints is not None:
        config["filter/endpoints"] = list(endpoints)
    return config


def start_daemon(world, config, wait=True):
    """The daemon with eBPF attribution on the test's own cgroup (see test_attribution.py)."""
    try:
        return w.start_daemon_seeing_host_mounts(
            world, config, ["--attribution", "auto", "--bpf-cgroup", str(_CGROUP.path)],
            wait=wait)
    except w.DaemonError as error:
        raise w.DaemonError(f"{error}\n(config: {json.dumps(config)}; a daemon without issue "
                            "4's nameserver refuses the dns/ settings)") from None


def assert_scope_is_profile_of(case, event, program_name, context):
    """Answers are remembered under the asking application's profile (issue 9): the event's
    scope is the ID of the profile portwarden made for the program, named after it."""
    profile = event.get("profile") or {}
    case.assertEqual(profile.get("name"), program_name, context)
    case.assertTrue(profile.get("id"), context)
    case.assertEqual(event.get("scope"), profile.get("id"),
                     f"answers are remembered under the asker's profile\n{context}")


def normalize(name):
    return (name or "").rstrip(".").lower()


def same_ip(left, right):
    try:
        return ipaddress.ip_address(left) == ipaddress.ip_address(right)
    except (TypeError, ValueError):
        return False


def executable(tool):
    return os.path.realpath(shutil.which(tool))


class LineReader:
    """Reads the JSON lines a spawned process prints, with a timeout."""

    def __init__(self, process):
        self.process = process
        self.buffer = b""

    def line(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise AssertionError(f"no line from pid {self.process.pid} within "
                                         f"{timeout}s (have {self.buffer!r})")
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError(f"pid {self.process.pid} closed stdout (have "
                                         f"{self.buffer!r}, exit {self.process.poll()}, stderr "
                                         f"{self.process.stderr.read()!r})")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


class DnsCase(unittest.TestCase):
    """Shared helpers: dig, the daemon's dns and decided events, and assertions that explain
    themselves (every failure shows what dig printed and what the daemon wrote)."""

    maxDiff = None
    world = None
    daemon = None

    @classmethod
    def build_world(cls, nsd=True, echo=False):
        cls.world = w.World().__enter__()
        try:
            cls.nsd = d.start_nsd(cls.world, _PKI) if nsd else None
            if echo:
                cls.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=(ECHO_PORT,))
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def stop_class_daemon(cls):
        try:
            if cls.daemon is not None and cls.daemon.alive():
                code = cls.daemon.stop(signal.SIGTERM)
                if code != 0:
                    raise AssertionError(f"daemon exit code {code} after SIGTERM\n"
                                         f"{cls.daemon.describe()}")
        finally:
            cls.world.close()

    # dig ------------------------------------------------------------------------------------

    def dig(self, server, name, rtype="A", **options):
        return d.dig(self.world, server, name, rtype, **options)

    def assert_answer(self, result, rtype, expected, status="NOERROR", daemon=None):
        daemon = daemon or self.daemon
        context = f"{result}\n{daemon.describe() if daemon else ''}"
        self.assertEqual(result.status, status, f"status of {result.argv}\n{context}")
        got = sorted(result.data(rtype))
        if rtype in ("A", "AAAA"):
            self.assertTrue(all(_is_ip(value) for value in got), context)
            got = sorted(str(ipaddress.ip_address(value)) for value in got)
            expected = sorted(str(ipaddress.ip_address(value)) for value in expected)
        self.assertEqual(got, sorted(expected), f"{rtype} answers of {result.argv}\n{context}")

    # events ---------------------------------------------------------------------------------

    def dump_events(self, daemon=None, kind=None, limit=40):
        daemon = daemon or self.daemon
        events = daemon.events(kind)
        shown = "\n".join(json.dumps(event) for event in events[-limit:])
        return f"--- last {min(limit, len(events))} of {len(events)} {kind or ''} events ---\n" \
               f"{shown}"

    def dns_events(self, name, rtype="A", pid=None, protocol=None, daemon=None,
                   minimum=1, timeout=EVENT_TIMEOUT, what=None):
        """The "dns" events of a question (optionally of one process / protocol); waits until
        at least `minimum` are there."""
        daemon = daemon or self.daemon
        wanted = normalize(name)

        def matching(events):
            found = []
            for event in events:
                question = event.get("question") or {}
                if event.get("event") != "dns" or normalize(question.get("name")) != wanted:
                    continue
                if rtype is not None and question.get("type") != rtype:
                    continue
                if protocol is not None and event.get("protocol") != protocol:
                    continue
                if pid is not None and (event.get("process") or {}).get("pid") != pid:
                    continue
                found.append(event)
            return found

        try:
            events = daemon.wait_for(lambda events: len(matching(events)) >= minimum, timeout,
                                     what or f"a dns event for {name} {rtype}")
        except w.DaemonError as error:
            same_name = [event for event in daemon.events("dns")
                         if normalize((event.get("question") or {}).get("name")) == wanted]
            raise AssertionError(
                f"{what or name}: expected {minimum} dns event(s) for {name} {rtype}"
                f"{f' from pid {pid}' if pid else ''}{f' over {protocol}' if protocol else ''}"
                f"\nevents for that name: {json.dumps(same_name, indent=1)}\n"
                f"{self.dump_events(daemon, 'dns')}\n{error}") from None
        return matching(events)

    def dig_event(self, result, rtype="A", protocol=None, daemon=None):
        """The one dns event of a dig run, found by question and dig's PID."""
        name = result.argv[2]
        events = self.dns_events(name, rtype, pid=result.pid, protocol=protocol, daemon=daemon,
                                 what=f"the dns event of {' '.join(result.argv)}")
        self.assertEqual(len(events), 1, f"one query, one event: {events}")
        return events[0]

    def assert_dig_process(self, event, result):
        process = event.get("process")
        context = f"event: {json.dumps(event)}\ndig pid {result.pid}"
        self.assertIsInstance(process, dict, f"no process in the dns event\n{context}")
        self.assertEqual(process.get("kind"), "process", context)
        self.assertEqual(process.get("pid"), result.pid, context)
        self.assertEqual(process.get("executable"), executable("dig"), context)
        assert_scope_is_profile_of(self, event, "dig", context)

    def assert_event(self, event, protocol, rcode, answers, sources, cnames=(), client=None):
        context = f"event: {json.dumps(event)}"
        self.assertEqual(event.get("protocol"), protocol, context)
        self.assertEqual(event.get("rcode"), rcode, context)
        self.assertEqual(sorted(str(ipaddress.ip_address(a)) for a in event.get("answers", [])),
                         sorted(str(ipaddress.ip_address(a)) for a in answers), context)
        self.assertEqual([normalize(name) for name in event.get("cnames", [])],
                         [normalize(name) for name in cnames], context)
        self.assertIn(event.get("source"), set(sources), context)
        if client is not None:
            address = (event.get("client") or {}).get("ip")
            self.assertTrue(_is_ip(address), context)
            self.assertEqual(ipaddress.ip_address(address).version,
                             ipaddress.ip_address(client).version, context)
            self.assertTrue(ipaddress.ip_address(address).is_loopback,
                            f"the client of a query to {client} is local\n{context}")
            self.assertIsInstance((event.get("client") or {}).get("port"), int, context)

    def decided_event(self, local_port, remote_ip, remote_port=ECHO_PORT, protocol="tcp",
                      daemon=None, what="connection"):
        daemon = daemon or self.daemon

        def matching(events):
            return [event for event in events
                    if event.get("event") == "decided" and event.get("protocol") == protocol
                    and event.get("direction") == "outbound"
                    and (event.get("local") or {}).get("port") == local_port
                    and (event.get("remote") or {}).get("port") == remote_port
                    and same_ip((event.get("remote") or {}).get("ip"), remote_ip)]

        try:
            events = daemon.wait_for(lambda events: matching(events), EVENT_TIMEOUT,
                                     f"the decided event of {what}")
        except w.DaemonError as error:
            raise AssertionError(f"{what}: no decided event for local port {local_port} -> "
                                 f"{remote_ip}:{remote_port}\n{self.dump_events(daemon)}\n"
                                 f"{error}") from None
        found = matching(events)
        self.assertEqual(len(found), 1, f"{what}: one connection, one decision: {found}")
        return found[0]

    def assert_still_answering(self, daemon=None):
        daemon = daemon or self.daemon
        self.assertTrue(daemon.alive(), f"the daemon died\n{daemon.describe()}")
        name = unique_name("alive")
        for transport in ("udp", "tcp"):
            result = self.dig(NAMESERVER_V4, name, transport=transport)
            self.assert_answer(result, "A", [INTERNET_V4], daemon=daemon)


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The nameserver with a plain dns:// upstream: answers, events, attribution, astray, bypasses


class NameserverTest(DnsCase):
    """One world, nsd, echo services, the client namespace's resolv.conf, one daemon."""

    @classmethod
    def setUpClass(cls):
        cls.build_world(echo=True)
        try:
            cls.world.write_namespace_resolv_conf("client", [NAMESERVER_V4])
            # Before the daemon runs, DoT from the client namespace to nsd works: what the
            # bypass test later sees blocked is the daemon's doing.
            cls.dot_before = d.dig(cls.world, INTERNET_V4, f"www.{d.ZONE}", transport="tls",
                                   tls_ca=_PKI.ca_cert, tls_hostname=d.TLS_NAME, timeout=3)
            cls.daemon = start_daemon(cls.world, dns_config())
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stop_class_daemon()

    def tearDown(self):
        self.assertTrue(self.daemon.alive(), f"the daemon died during {self.id()}\n"
                                             f"{self.daemon.describe()}")

    # Answers and their events -------------------------------------------------------------------

    def test_udp_and_tcp_on_127_0_0_17(self):
        for transport in ("udp", "tcp"):
            with self.subTest(transport=transport):
                result = self.dig(NAMESERVER_V4, f"www.{d.ZONE}", transport=transport)
                self.assert_answer(result, "A", [INTERNET_V4])
                event = self.dig_event(result, protocol=transport)
                self.assert_event(event, transport, "NOERROR", [INTERNET_V4],
                                  {"upstream", "cache"}, client=NAMESERVER_V4)
                self.assert_dig_process(event, result)
                if event.get("source") == "upstream":
                    self.assertTrue(str(event.get("upstream", "")).startswith(GOOD_UPSTREAM),
                                    f"{event}")

    def test_udp_and_tcp_on_ipv6_loopback(self):
        for transport in ("udp", "tcp"):
            with self.subTest(transport=transport):
                result = self.dig(NAMESERVER_V6, f"www.{d.ZONE}", "AAAA", transport=transport)
                self.assert_answer(result, "AAAA", [INTERNET_V6])
                event = self.dig_event(result, "AAAA", protocol=transport)
                self.assert_event(event, transport, "NOERROR", [INTERNET_V6],
                                  {"upstream", "cache"}, client=NAMESERVER_V6)
                self.assert_dig_process(event, result)

    def test_cname_chain_is_answered_and_reported(self):
        result = self.dig(NAMESERVER_V4, f"alias.{d.ZONE}")
        self.assert_answer(result, "A", [INTERNET_V4])
        self.assertEqual([(name, data) for name, _, kind, data in result.answers
                          if kind == "CNAME"],
                         [(f"alias.{d.ZONE}", f"cdn.{d.ZONE}"), (f"cdn.{d.ZONE}", f"www.{d.ZONE}")],
                         f"the whole chain reaches the client\n{result}")
        event = self.dig_event(result)
        self.assert_event(event, "udp", "NOERROR", [INTERNET_V4], {"upstream", "cache"},
                          cnames=[f"cdn.{d.ZONE}", f"www.{d.ZONE}"])

    def test_answer_too_big_for_udp(self):
        expected = d.big_txt_strings()
        # 1. Over TCP to us, first: the daemon's dns:// upstream truncates it (nsd's 1232-byte
        #    EDNS limit), so the daemon must have asked again over TCP to get it whole.
        first = self.dig(NAMESERVER_V4, f"big.{d.ZONE}", "TXT", transport="tcp")
        self.assert_answer(first, "TXT", expected)
        event = self.dig_event(first, "TXT", protocol="tcp")
        self.assertEqual(event.get("source"), "upstream", f"first query: {event}")
        self.assertEqual(event.get("rcode"), "NOERROR", f"{event}")
        # 2. Over UDP with dig's 1232-byte EDNS buffer: we answer with TC, dig asks again over
        #    TCP, and the whole answer arrives.
        second = self.dig(NAMESERVER_V4, f"big.{d.ZONE}", "TXT")
        self.assertTrue(second.truncated_retry,
                        f"an answer over 1232 bytes must come back truncated over UDP\n{second}")
        self.assert_answer(second, "TXT", expected)
        self.dns_events(f"big.{d.ZONE}", "TXT", pid=second.pid, protocol="udp")
        self.dns_events(f"big.{d.ZONE}", "TXT", pid=second.pid, protocol="tcp")

    def test_second_identical_query_is_a_cache_hit(self):
        name = unique_name("cache")
        first = self.dig(NAMESERVER_V4, name)
        self.assert_answer(first, "A", [INTERNET_V4])
        self.assertEqual(self.dig_event(first).get("source"), "upstream",
                         self.dump_events(kind="dns"))
        second = self.dig(NAMESERVER_V4, name)
        self.assert_answer(second, "A", [INTERNET_V4])
        event = self.dig_event(second)
        self.assert_event(event, "udp", "NOERROR", [INTERNET_V4], {"cache"})
        ttl = second.answers[0][1]
        self.assertLessEqual(ttl, d.DEFAULT_TTL, f"a cached TTL never grows\n{second}")

    def test_getent_through_the_namespace_resolv_conf(self):
        process = self.world.spawn("client", ["getent", "ahostsv4", f"www.{d.ZONE}"], text=True)
        stdout, stderr = process.communicate(timeout=30)
        self.assertEqual(process.returncode, 0, f"getent: {stdout}{stderr}\n"
                                                f"{self.daemon.describe()}")
        addresses = {line.split()[0] for line in stdout.splitlines() if line.strip()}
        self.assertEqual(addresses, {INTERNET_V4}, stdout)
        events = self.dns_events(f"www.{d.ZONE}", "A", pid=process.pid)
        self.assertEqual((events[0].get("process") or {}).get("executable"),
                         executable("getent"), f"{events[0]}")
        # `getent hosts` asks for AAAA first (gethostbyname2 AF_INET6), then A.
        hosts = self.world.run("client", ["getent", "hosts", f"www.{d.ZONE}"], timeout=30)
        self.assertEqual(hosts.returncode, 0, f"getent hosts: {hosts.stdout}{hosts.stderr}")
        self.assertIn(hosts.stdout.split()[0], {INTERNET_V6, INTERNET_V4}, hosts.stdout)

    # Domain attribution ---------------------------------------------------------------------------

    def run_resolver_client(self, program, name, host_for_connect=None):
        """Starts a client copy that resolves `name`, and waits for its resolution; the
        connection follows go()."""
        argv = [program, host_for_connect or name, ECHO_PORT, "--wait",
                "--source-port", next(_PORTS)]
        process = self.world.spawn("client", argv, stdin=subprocess.PIPE)
        reader = LineReader(process)
        resolved = reader.line()
        self.assertEqual(resolved.get("outcome"), "ok", f"{program} {name}: {resolved}\n"
                                                        f"{self.daemon.describe()}")
        return process, reader, resolved

    def go(self, process, reader):
        process.stdin.write(b"go\n")
        process.stdin.flush()
        connected = reader.line()
        process.wait(timeout=15)
        self.assertEqual(connected.get("outcome"), "ok", f"{connected}")
        return connected

    def test_each_process_gets_the_domain_it_resolved(self):
        # Both resolve first, then both connect: a daemon that kept one global "latest name"
        # per address would give www-client's connection other.pwtest.
        www = self.run_resolver_client(_PROGRAMS.www, f"www.{d.ZONE}")
        other = self.run_resolver_client(_PROGRAMS.other, f"other.{d.ZONE}")
        for (_, _, resolved), name in ((www, "www"), (other, "other")):
            self.assertEqual(resolved.get("addresses"), [INTERNET_V4], f"{name}: {resolved}")
        for (process, reader, resolved), program, name in (
                (www, _PROGRAMS.www, f"www.{d.ZONE}"),
                (other, _PROGRAMS.other, f"other.{d.ZONE}")):
            with self.subTest(program=program.name):
                events = self.dns_events(name, "A", pid=resolved["pid"])
                assert_scope_is_profile_of(self, events[0], program.name, f"{events[0]}")
                connected = self.go(process, reader)
                decided = self.decided_event(connected["localPort"], INTERNET_V4,
                                             what=f"{program.name}'s connection")
                context = f"{program.name} resolved {name}\ndecided: {json.dumps(decided)}"
                self.assertEqual((decided.get("process") or {}).get("executable"),
                                 str(program), context)
                self.assertEqual(normalize(decided.get("domain")), name, context)
                self.assertEqual(decided.get("cnames"), [], context)

    def test_connection_carries_the_cname_chain(self):
        process, reader, resolved = self.run_resolver_client(_PROGRAMS.chain,
                                                             f"alias.{d.ZONE}")
        self.assertEqual(resolved.get("addresses"), [INTERNET_V4], f"{resolved}")
        connected = self.go(process, reader)
        decided = self.decided_event(connected["localPort"], INTERNET_V4,
                                     what="chain-client's connection")
        context = json.dumps(decided)
        self.assertEqual(normalize(decided.get("domain")), f"alias.{d.ZONE}", context)
        self.assertEqual([normalize(name) for name in decided.get("cnames") or []],
                         [f"cdn.{d.ZONE}", f"www.{d.ZONE}"], context)

    def test_system_resolver_answers_are_global(self):
        # dnsmasq (a system resolver: its clients cannot be seen) forwards to us; a process
        # that never asked us connects to the address dnsmasq's client resolved, and its
        # connection is named from the global scope.
        try:
            dnsmasq = d.start_dnsmasq(self.world, listen="127.0.0.53", port=5353,
                                      upstream=NAMESERVER_V4)
        except d.DnsServerError as error:
            if "not found" in str(error):
                self.skipTest(str(error))
            raise AssertionError(f"{error}\n{self.daemon.describe()}") from None
        try:
            result = self.dig("127.0.0.53", f"alt.{d.ZONE}", port=5353)
            self.assert_answer(result, "A", [INTERNET_V4_ALT])
            events = self.dns_events(f"alt.{d.ZONE}", "A", pid=dnsmasq.pid)
            self.assertEqual(events[0].get("scope"), "",
                             f"a system resolver's answers go to the global scope: {events[0]}")
            report = self.go(*self.run_resolver_client(_PROGRAMS.stranger, f"alt.{d.ZONE}",
                                                       host_for_connect=INTERNET_V4_ALT)[:2])
            decided = self.decided_event(report["localPort"], INTERNET_V4_ALT,
                                         what="stranger-client's connection")
            self.assertEqual(normalize(decided.get("domain")), f"alt.{d.ZONE}",
                             json.dumps(decided))
        finally:
            dnsmasq.stop()

    # Astray queries and bypasses ------------------------------------------------------------------

    def test_queries_to_other_nameservers_are_answered_by_us(self):
        # 10.77.0.3 and fd77::3 have no DNS server at all; 10.77.0.2 has nsd, so there only the
        # daemon's event shows that we answered.
        for server, transport in ((INTERNET_V4, "udp"), (INTERNET_V4_ALT, "udp"),
                                  (INTERNET_V6_ALT, "udp"), (INTERNET_V4, "tcp"),
                                  (INTERNET_V4_ALT, "tcp")):
            with self.subTest(server=server, transport=transport):
                name = unique_name("astray")
                result = self.dig(server, name, transport=transport)
                self.assert_answer(result, "A", [INTERNET_V4])
                event = self.dig_event(result, protocol=transport)
                self.assert_dig_process(event, result)

    def test_doh_canary_is_nxdomain(self):
        result = self.dig(NAMESERVER_V4, CANARY)
        self.assert_answer(result, "A", [], status="NXDOMAIN")
        event = self.dig_event(result)
        self.assertEqual(event.get("source"), "canary", f"{event}")
        self.assertEqual(event.get("rcode"), "NXDOMAIN", f"{event}")

    def test_dns_over_tls_from_the_client_is_blocked(self):
        self.assertEqual(self.dot_before.status, "NOERROR",
                         f"precondition: DoT to nsd works without the daemon\n{self.dot_before}")
        result = self.dig(INTERNET_V4, f"www.{d.ZONE}", transport="tls", tls_ca=_PKI.ca_cert,
                          tls_hostname=d.TLS_NAME, timeout=3)
        self.assertIsNone(result.status, f"DoT to 10.77.0.2:853 must not get through\n{result}")

        def dot_decisions(events):
            return [event for event in events if event.get("event") == "decided"
                    and (event.get("remote") or {}).get("port") == 853]

        try:
            events = self.daemon.wait_for(dot_decisions, EVENT_TIMEOUT,
                                          "the decided event of the DoT connection")
        except w.DaemonError as error:
            raise AssertionError(f"no decision for the connection to port 853\n{error}") from None
        for event in dot_decisions(events):
            self.assertIn(event.get("verdict"), {"block", "drop"}, json.dumps(event))

    # Malformed queries ----------------------------------------------------------------------------

    def run_malformed(self, transport):
        completed = self.world.run("client", [sys.executable, "-c", MALFORMED_SENDER, transport,
                                              NAMESERVER_V4, 53], timeout=120)
        self.assertEqual(completed.returncode, 0, f"{completed.stdout}{completed.stderr}")
        return [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]

    # A query with a whole header and QR clear is a query: it gets an error answer (RFC 1035
    # 4.1.1: FORMERR, NOTIMP or REFUSED), not silence, which would leave the client waiting for
    # its timeout. Only garbage (no header) may go unanswered, and a response (QR set) must be:
    # answering responses lets two servers bounce errors at each other.
    MUST_ANSWER = {"header only, one question announced", "two questions", "class CH",
                   "no question", "label past the end", "compression loop",
                   "question plus answer count"}
    NEVER_ANSWER = {"QR set"}

    def check_malformed(self, transport):
        cases = self.run_malformed(transport)
        self.assertGreaterEqual(len(cases), 6, f"{cases}")
        labels = {case["case"] for case in cases}
        self.assertLessEqual(self.MUST_ANSWER | self.NEVER_ANSWER, labels,
                             f"the sender must try every case\n{cases}")
        unanswered = sorted(case["case"] for case in cases
                            if case["case"] in self.MUST_ANSWER and case.get("reply") is None)
        self.assertEqual(unanswered, [],
                         f"{transport}: no answer to these queries\n{self.daemon.describe()}")
        for case in cases:
            with self.subTest(transport=transport, case=case["case"]):
                reply = case.get("reply")
                if case["case"] in self.NEVER_ANSWER:
                    self.assertIsNone(reply, f"a response was answered: {json.dumps(case)}")
                if reply is None:
                    continue  # no answer is a correct answer to garbage
                context = f"{json.dumps(case)}\n{self.daemon.describe()}"
                self.assertTrue(reply["qr"], f"a reply is a response\n{context}")
                self.assertIn(reply["rcode"], {"FORMERR", "REFUSED", "NOTIMP"}, context)
                self.assertEqual(reply["ancount"], 0, context)
                if case.get("id") is not None:
                    self.assertEqual(reply["id"], case["id"], f"the query's ID\n{context}")
        self.assert_still_answering()

    def test_malformed_udp_queries(self):
        self.check_malformed("udp")

    def test_malformed_tcp_queries(self):
        self.check_malformed("tcp")


# The garbage: each case from a socket (UDP) or connection (TCP) of its own; one JSON line per
# case with the reply's header, if one came within a second.
MALFORMED_SENDER = r'''
import json, random, socket, sys
transport, server, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(1799)

def name(text):
    return b"".join(bytes([len(l)]) + l.encode() for l in text.split(".")) + b"\0"

def header(ident=0x4242, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return b"".join(v.to_bytes(2, "big") for v in (ident, flags, qd, an, ns, ar))

def question(qname="www.pwtest", qtype=1, qclass=1):
    return name(qname) + qtype.to_bytes(2, "big") + qclass.to_bytes(2, "big")

good = header() + question()
cases = [
    ("random bytes", bytes(rng.randrange(256) for _ in range(40)), None),
    ("truncated header", good[:7], None),
    ("header only, one question announced", header(), 0x4242),
    ("QR set", header(flags=0x8100) + question(), 0x4242),
    ("two questions", header(qd=2) + question() + question("other.pwtest"), 0x4242),
    ("class CH", header() + question("version.bind", 16, 3), 0x4242),
    ("no question", header(qd=0), 0x4242),
    ("label past the end", header() + b"\x3fwww", 0x4242),
    ("compression loop", header() + b"\xc0\x0c" + b"\x00\x01\x00\x01", 0x4242),
    ("question plus answer count", header(an=5) + question(), 0x4242),
]
if transport == "tcp":
    cases += [
        ("length 0", b"", None),
        ("length larger than the data, then EOF", good[:10], None),
        ("length 1, one byte", b"\x00", None),
    ]

def describe(data):
    if data is None or len(data) < 12:
        return None
    flags = int.from_bytes(data[2:4], "big")
    names = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
    return {"id": int.from_bytes(data[:2], "big"), "qr": bool(flags & 0x8000),
            "rcode": names.get(flags & 15, str(flags & 15)),
            "ancount": int.from_bytes(data[6:8], "big"), "length": len(data)}

def recv_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data

for label, payload, ident in cases:
    reply, closed = None, False
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            sock.sendto(payload, (server, port))
            try:
                reply = sock.recv(65535)
            except socket.timeout:
                pass
    else:
        with socket.create_connection((server, port), timeout=3) as sock:
            sock.settimeout(1.0)
            if label == "length larger than the data, then EOF":
                framed = (512).to_bytes(2, "big") + payload
            elif label == "length 1, one byte":
                framed = payload
            else:
                framed = len(payload).to_bytes(2, "big") + payload
            sock.sendall(framed)
            if label in ("length larger than the data, then EOF", "length 1, one byte"):
                sock.shutdown(socket.SHUT_WR)
            try:
                length = recv_exact(sock, 2)
                if length is None:
                    closed = True
                else:
                    reply = recv_exact(sock, int.from_bytes(length, "big"))
            except (socket.timeout, ConnectionResetError):
                pass
    print(json.dumps({"case": label, "id": ident, "sent": len(payload), "closed": closed,
                      "raw_length": None if reply is None else len(reply),
                      "reply": describe(reply)}), flush=True)
'''


# ---------------------------------------------------------------------------------------------
# Upstream protocols, failover and failure


class UpstreamTest(DnsCase):
    """One world with nsd and a silent server; each test runs daemons of its own."""

    @classmethod
    def setUpClass(cls):
        cls.build_world()
        try:
            cls.silent = d.start_silent_server(cls.world, INTERNET_V4_ALT, SILENT_PORT)
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.world.close()

    def run_daemon(self, nameservers):
        daemon = start_daemon(self.world, dns_config(nameservers))

        def stop():
            if daemon.alive():
                code = daemon.stop(signal.SIGTERM)
                self.assertEqual(code, 0, f"exit code after SIGTERM\n{daemon.describe()}")
            self.assertEqual(w.our_rules(self.world.rules()), [],
                             f"rules left behind\n{self.world.rules()}")

        self.addCleanup(stop)
        return daemon

    def check_upstream_answers(self, daemon, url_prefix):
        name = unique_name("upstream")
        result = self.dig(NAMESERVER_V4, name)
        self.assert_answer(result, "A", [INTERNET_V4], daemon=daemon)
        event = self.dig_event(result, daemon=daemon)
        self.assert_event(event, "udp", "NOERROR", [INTERNET_V4], {"upstream"})
        self.assertTrue(str(event.get("upstream", "")).startswith(url_prefix),
                        f"answered by {url_prefix}: {event}")
        return event

    def test_tcp_upstream(self):
        daemon = self.run_daemon([f"tcp://{INTERNET_V4}"])
        self.check_upstream_answers(daemon, f"tcp://{INTERNET_V4}")
        big = self.dig(NAMESERVER_V4, f"big.{d.ZONE}", "TXT", transport="tcp")
        self.assert_answer(big, "TXT", d.big_txt_strings(), daemon=daemon)

    def test_dot_upstream_with_a_private_ca(self):
        url = f"dot://{d.TLS_NAME}?ip={INTERNET_V4}&verify={_PKI.ca_cert}"
        daemon = self.run_daemon([url])
        self.check_upstream_answers(daemon, f"dot://{d.TLS_NAME}")
        # The daemon's own DoT works, while a client's DoT to the same server is blocked.
        direct = self.dig(INTERNET_V4, f"www.{d.ZONE}", transport="tls", tls_ca=_PKI.ca_cert,
                          tls_hostname=d.TLS_NAME, timeout=3)
        self.assertIsNone(direct.status, f"a client's DoT must not get through\n{direct}\n"
                                         f"{daemon.describe()}")

    def test_dot_upstream_with_a_wrong_certificate_is_servfail(self):
        cases = {
            "name not in the certificate":
                f"dot://wrong.{d.ZONE}?ip={INTERNET_V4}&verify={_PKI.ca_cert}",
            "certificate from an untrusted CA":
                f"dot://{d.TLS_NAME}?ip={INTERNET_V4}&verify={_PKI.other_ca_cert}",
        }
        for case, url in cases.items():
            with self.subTest(case=case):
                daemon = start_daemon(self.world, dns_config([url]))
                try:
                    result = self.dig(NAMESERVER_V4, unique_name("badtls"),
                                      timeout=HANG_GUARD_SECONDS)
                    self.assert_answer(result, "A", [], status="SERVFAIL", daemon=daemon)
                    event = self.dig_event(result, daemon=daemon)
                    self.assertEqual(event.get("source"), "error", f"{event}")
                finally:
                    self.assertEqual(daemon.stop(signal.SIGTERM), 0, daemon.describe())

    def test_failover_to_the_next_upstream(self):
        for first in (DEAD_UPSTREAM, SILENT_UPSTREAM):
            with self.subTest(first=first):
                daemon = start_daemon(self.world, dns_config([first, GOOD_UPSTREAM]))
                try:
                    name = unique_name("failover")
                    result = self.dig(NAMESERVER_V4, name, timeout=HANG_GUARD_SECONDS)
                    self.assert_answer(result, "A", [INTERNET_V4], daemon=daemon)
                    event = self.dig_event(result, daemon=daemon)
                    self.assertTrue(str(event.get("upstream", "")).startswith(GOOD_UPSTREAM),
                                    f"{event}")
                finally:
                    self.assertEqual(daemon.stop(signal.SIGTERM), 0, daemon.describe())

    def test_every_upstream_down_is_servfail(self):
        for upstreams in ([DEAD_UPSTREAM], [SILENT_UPSTREAM], [DEAD_UPSTREAM, SILENT_UPSTREAM]):
            with self.subTest(upstreams=upstreams):
                daemon = start_daemon(self.world, dns_config(upstreams))
                try:
                    for transport in ("udp", "tcp"):
                        result = self.dig(NAMESERVER_V4, unique_name("down"),
                                          transport=transport, timeout=HANG_GUARD_SECONDS)
                        self.assertEqual(result.status, "SERVFAIL",
                                         f"SERVFAIL within the {HANG_GUARD_SECONDS}s hang guard"
                                         f"\n{result}\n{daemon.describe()}")
                        event = self.dig_event(result, protocol=transport, daemon=daemon)
                        self.assertEqual(event.get("rcode"), "SERVFAIL", f"{event}")
                        self.assertEqual(event.get("source"), "error", f"{event}")
                finally:
                    self.assertEqual(daemon.stop(signal.SIGTERM), 0, daemon.describe())


# ---------------------------------------------------------------------------------------------
# Domain rules


class BlockingTest(DnsCase):
    """Domain rules in filter/endpoints answer 0.0.0.17 / ::17 at DNS time."""

    ENDPOINTS = [f"- .tracker.{d.ZONE}", f"- blocked.{d.ZONE}"]

    @classmethod
    def setUpClass(cls):
        cls.build_world(echo=True)
        try:
            # A default route inside the client namespace (only there), so that a connection
            # to 0.0.0.17 is routed and reaches the firewall.
            added = cls.world.run("client", ["ip", "route", "add", "default", "via",
                                             INTERNET_V4])
            if added.returncode != 0:
                raise RuntimeError(f"default route in the client namespace: {added.stderr}")
            cls.daemon = start_daemon(cls.world, dns_config(endpoints=cls.ENDPOINTS))
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stop_class_daemon()

    def test_blocked_names_answer_the_blocked_addresses(self):
        for name, rtype, address in ((f"blocked.{d.ZONE}", "A", BLOCKED_V4),
                                     (f"blocked.{d.ZONE}", "AAAA", BLOCKED_V6),
                                     (f"x.tracker.{d.ZONE}", "A", BLOCKED_V4)):
            with self.subTest(name=name, rtype=rtype):
                result = self.dig(NAMESERVER_V4, name, rtype)
                self.assert_answer(result, rtype, [address])
                event = self.dig_event(result, rtype)
                self.assert_event(event, "udp", "NOERROR", [address], {"blocked"})
                self.assertIn(f".{d.ZONE}", event.get("reason", ""),
                              f"the reason names the rule: {event}")

    def test_other_names_are_not_blocked(self):
        for name, address in ((f"www.{d.ZONE}", INTERNET_V4), (f"alt.{d.ZONE}",
                                                                 INTERNET_V4_ALT)):
            with self.subTest(name=name):
                result = self.dig(NAMESERVER_V4, name)
                self.assert_answer(result, "A", [address])

    def test_connections_to_the_blocked_address_fail(self):
        # With the default route of setUpClass the SYN to 0.0.0.17 leaves the client (without
        # one, connect() fails with ENETUNREACH before any firewall sees it): the daemon must
        # decide it, and not accept it.
        result = self.world.tcp(BLOCKED_V4, ECHO_PORT, timeout=1.5)
        self.assertNotEqual(result.outcome, "ok", f"{result}\n{self.daemon.describe()}")
        decided = self.decided_event(result.local_port, BLOCKED_V4,
                                     what="the connection to 0.0.0.17")
        self.assertIn(decided.get("verdict"), {"block", "drop"}, json.dumps(decided))


# ---------------------------------------------------------------------------------------------
# Configuration errors


class BadConfigTest(DnsCase):
    """A bad upstream URL: exit 2 with the offending value on stderr, nothing installed."""

    @classmethod
    def setUpClass(cls):
        cls.build_world(nsd=False)

    @classmethod
    def tearDownClass(cls):
        cls.world.close()

    def test_bad_upstream_urls_are_refused_at_start(self):
        for url in ("ftp://x", f"dot://{d.TLS_NAME}", "dns://10.77.0.2:0", "dns://not-an-ip"):
            with self.subTest(url=url):
                daemon = start_daemon(self.world, dns_config([url]), wait=False)
                try:
                    code = daemon.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    code = None
                stderr = daemon.stderr()
                self.assertEqual(code, 2, f"exit code for {url}\n{daemon.describe()}")
                self.assertIn(url, stderr, f"stderr names the value\n{daemon.describe()}")
                # FILE:LINE: of the URL (or of its key), as for every other config error.
                text = daemon.config_path.read_text().splitlines()
                lines = {number for number, line in enumerate(text, 1)
                         if url in line or '"dns/nameservers"' in line}
                self.assertTrue(any(f"{daemon.config_path}:{line}:" in stderr for line in lines),
                                f"stderr names {daemon.config_path}:LINE (one of {sorted(lines)})"
                                f"\n{daemon.describe()}")
                self.assertEqual(daemon.events("started"), [], url)
                self.assertEqual(w.our_rules(self.world.rules()), [],
                                 f"{url}: rules installed\n{self.world.rules()}")


# ---------------------------------------------------------------------------------------------
# systemd-resolved's monitor socket


class ResolvedMonitorTest(DnsCase):
    """The daemon subscribed to systemd-resolved's query results (issue 4, part 4).

    fake_resolved.FakeResolved plays resolved: a varlink server on a Unix socket in the world's
    temporary directory, passed with --resolved-monitor. The daemon runs in the client network
    namespace and reaches the socket through the file system. Each test pushes the query results
    it needs (the most recent answer for an address wins, so the tests do not depend on their
    order) and then connects from the client namespace with the probe, a process that never
    asks our nameserver: only the global scope, where resolved's answers go, can name its
    connections. tearDownClass stops the daemon and checks its stats event.
    """

    @classmethod
    def setUpClass(cls):
        cls.build_world(echo=True)
        cls.fakes = []
        cls.malformed_pushed = 0
        cls.answers_confirmed = 0
        try:
            cls.world.write_namespace_resolv_conf("client", [NAMESERVER_V4])
            cls.socket_path = cls.world.directory / "resolve" / "io.systemd.Resolve.Monitor"
            cls.resolved = cls.start_fake()
            cls.daemon = w.start_daemon_seeing_host_mounts(
                cls.world, dns_config(),
                ["--attribution", "auto", "--bpf-cgroup", str(_CGROUP.path),
                 "--resolved-monitor", str(cls.socket_path)])
            # Before anything is pushed: what the probe's connections look like without an answer
            # from resolved (the tests compare with their decided events).
            cls.before = {address: cls.world.tcp(address, ECHO_PORT)
                          for address in (INTERNET_V4, INTERNET_V4_ALT, INTERNET_V6_ALT)}
        except BaseException:
            cls.stop_fakes()
            cls.world.close()
            raise

    @classmethod
    def start_fake(cls):
        fake = fr.FakeResolved(cls.socket_path).start()
        cls.fakes.append(fake)
        return fake

    @classmethod
    def stop_fakes(cls):
        for fake in cls.fakes:
            fake.stop()

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            code = cls.daemon.stop(signal.SIGTERM)
            if code != 0:
                problems.append(f"daemon exit code {code} after SIGTERM")
            problems += cls.stats_problems()
            if problems:
                problems.append(cls.daemon.describe())
        finally:
            cls.stop_fakes()
            cls.world.close()
        if problems:
            raise AssertionError("\n".join(problems))

    @classmethod
    def stats_problems(cls):
        """What is wrong with the "dns" part of the stats event the daemon wrote at stop."""
        stats = cls.daemon.events("stats")
        if len(stats) != 1:
            return [f"one stats event at stop expected, found {len(stats)}"]
        dns = stats[0].get("dns") or {}
        subscriptions = sum(len(fake.subscriptions()) for fake in cls.fakes)
        context = f"stats dns: {json.dumps(dns)}; subscriptions seen by the fakes: " \
                  f"{subscriptions}; malformed messages pushed: {cls.malformed_pushed}; " \
                  f"answers confirmed by a connection: {cls.answers_confirmed}"
        problems = []
        connections = dns.get("resolvedConnections")
        if not isinstance(connections, int) or connections < max(1, subscriptions):
            problems.append(f"resolvedConnections: at least {max(1, subscriptions)} expected\n"
                            f"{context}")
        answers = dns.get("resolvedAnswers")
        if not isinstance(answers, int) or answers < cls.answers_confirmed:
            problems.append(f"resolvedAnswers: at least {cls.answers_confirmed} expected\n"
                            f"{context}")
        # Every malformed message was followed by a good one the daemon used, so it read them
        # all; and none of the well-formed ones may count as malformed.
        if dns.get("resolvedMalformed") != cls.malformed_pushed:
            problems.append(f"resolvedMalformed: {cls.malformed_pushed} expected\n{context}")
        return problems

    def tearDown(self):
        self.assertTrue(self.daemon.alive(), f"the daemon died during {self.id()}\n"
                                             f"{self.daemon.describe()}")

    # Helpers ------------------------------------------------------------------------------------

    def push(self, message):
        """Pushes one message to the daemon's live subscription (waiting for it first)."""
        fake = type(self).resolved
        try:
            fake.wait_for_subscriptions(len(fake.subscriptions()) or 1)
        except fr.FakeResolvedError as error:
            raise AssertionError(f"{error}\n{self.daemon.describe()}") from None
        reached = fake.push(message)
        self.assertEqual(reached, 1, f"one subscriber (the daemon) expected; pushed "
                                     f"{message!r}\n{self.daemon.describe()}")

    def connect_until_named(self, address, domain, cnames=(), what="the probe's connection"):
        """Connects from the client namespace to address:ECHO_PORT until the decided event
        carries `domain`: the daemon reads resolved's messages on its own schedule, so the
        first connection after a push may come before the answer is recorded. Bounded by
        EVENT_TIMEOUT (a hang guard); returns the decided event that carried it."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        seen = []
        while True:
            result = self.world.tcp(address, ECHO_PORT)
            self.assertEqual(result.outcome, "ok", f"{result}\n{self.daemon.describe()}")
            decided = self.decided_event(result.local_port, address, what=what)
            seen.append(decided)
            if normalize(decided.get("domain")) == domain:
                break
            if time.monotonic() > deadline:
                self.fail(f"{what} to {address}: no connection named {domain} within "
                          f"{EVENT_TIMEOUT}s of resolved's answer; decided events:\n"
                          + "\n".join(json.dumps(event) for event in seen)
                          + f"\n{self.daemon.describe()}")
            time.sleep(0.1)
        context = json.dumps(decided)
        self.assertEqual([normalize(name) for name in decided.get("cnames") or []],
                         [normalize(name) for name in cnames], context)
        return decided

    def assert_unnamed_before(self, address):
        """The connection setUpClass made before any push carried no domain: what the tests
        then see comes from resolved's answers."""
        result = self.before[address]
        self.assertEqual(result.outcome, "ok", f"{result}")
        decided = self.decided_event(result.local_port, address,
                                     what="the connection before any push")
        self.assertIsNone(decided.get("domain"), json.dumps(decided))

    # Tests -------------------------------------------------------------------------------------

    def test_subscribes_to_query_results(self):
        started = self.daemon.events("started")
        self.assertEqual(len(started), 1, self.daemon.describe())
        self.assertEqual((started[0].get("dns") or {}).get("resolvedMonitor"),
                         str(self.socket_path), json.dumps(started[0]))
        fake = type(self).resolved
        try:
            requests = fake.wait_for_subscriptions(1)
        except fr.FakeResolvedError as error:
            raise AssertionError(f"{error}\n{self.daemon.describe()}") from None
        self.assertEqual(requests[0], {"method": fr.SUBSCRIBE_METHOD, "parameters": {},
                                       "more": True}, f"the daemon's call: {requests}")
        self.assertEqual(len(requests), len(fake.subscriptions()),
                         f"the daemon makes no other call: {requests}")
        self.assertEqual(fake.subscriber_count(), 1, "one connection, kept open")

    def test_connections_carry_the_domain_resolved_answered(self):
        for address in (INTERNET_V4_ALT, INTERNET_V6_ALT):
            self.assert_unnamed_before(address)
        name = f"resolved.{d.ZONE}"
        self.push(fr.query_result(name, [INTERNET_V4_ALT, INTERNET_V6_ALT]))
        for address in (INTERNET_V4_ALT, INTERNET_V6_ALT):
            with self.subTest(address=address):
                self.connect_until_named(address, name)
        type(self).answers_confirmed += 1

    def test_cname_chain_resolved_followed(self):
        self.assert_unnamed_before(INTERNET_V4)
        # The client asked for chain.resolved.pwtest; resolved followed the CNAME itself, so
        # "question" is edge.resolved.pwtest and "collectedQuestions" starts with the client's
        # name: the connection must carry the client's name and the chain.
        name, edge = f"chain.resolved.{d.ZONE}", f"edge.resolved.{d.ZONE}"
        self.push(fr.query_result(name, [INTERNET_V4], cnames=[edge]))
        self.connect_until_named(INTERNET_V4, name, cnames=[edge])
        type(self).answers_confirmed += 1

    def test_own_answer_wins_over_resolved(self):
        # other-client resolves alt.pwtest (10.77.0.3) through our nameserver and waits; then
        # resolved reports another name for the same address, more recent; other-client's
        # connection must still carry its own name, while the probe's carries resolved's.
        program = _PROGRAMS.other
        process = self.world.spawn("client", [program, f"alt.{d.ZONE}", ECHO_PORT, "--wait",
                                              "--source-port", next(_PORTS)],
                                   stdin=subprocess.PIPE)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        reader = LineReader(process)
        resolved = reader.line()
        self.assertEqual(resolved.get("outcome"), "ok", f"{resolved}\n{self.daemon.describe()}")
        self.assertEqual(resolved.get("addresses"), [INTERNET_V4_ALT], f"{resolved}")
        events = self.dns_events(f"alt.{d.ZONE}", "A", pid=resolved["pid"])
        assert_scope_is_profile_of(self, events[0], program.name, f"{events[0]}")

        name = f"newer.resolved.{d.ZONE}"
        self.push(fr.query_result(name, [INTERNET_V4_ALT]))
        self.connect_until_named(INTERNET_V4_ALT, name,
                                 what="the connection of a process without an answer")
        type(self).answers_confirmed += 1

        process.stdin.write(b"go\n")
        process.stdin.flush()
        connected = reader.line()
        process.wait(timeout=15)
        self.assertEqual(connected.get("outcome"), "ok", f"{connected}")
        decided = self.decided_event(connected["localPort"], INTERNET_V4_ALT,
                                     what="other-client's connection")
        context = json.dumps(decided)
        self.assertEqual((decided.get("process") or {}).get("executable"), str(program), context)
        self.assertEqual(normalize(decided.get("domain")), f"alt.{d.ZONE}",
                         f"a process's own answer comes before resolved's\n{context}")

    def test_malformed_messages_are_skipped(self):
        fake = type(self).resolved
        subscriptions = len(fake.subscriptions())
        key = {"class": 1, "type": 1, "name": f"garbage.resolved.{d.ZONE}"}
        malformed = [
            "this is not JSON",
            '{"parameters":{"state":"success","question":[{"name":5}]},"continues":true}',
            # An A record with three address bytes.
            {"parameters": {"state": "success", "question": [key],
                            "answer": [{"rr": {"key": key, "address": [10, 77, 0]}}]},
             "continues": True},
            '{"parameters":' + "[" * 100 + "]" * 100 + ',"continues":true}',
        ]
        for message in malformed:
            self.push(message)
            type(self).malformed_pushed += 1
        # Well-formed, but nothing to remember: a failed lookup and a success without addresses.
        self.push(fr.failed_result(f"missing.resolved.{d.ZONE}"))
        self.push(fr.query_result(f"empty.resolved.{d.ZONE}", []))
        name = f"after-garbage.resolved.{d.ZONE}"
        self.push(fr.query_result(name, [INTERNET_V4_ALT]))
        self.connect_until_named(INTERNET_V4_ALT, name)
        type(self).answers_confirmed += 1
        self.assertEqual(len(fake.subscriptions()), subscriptions,
                         "the same subscription carried on after the bad messages")
        self.assertEqual(fake.subscriber_count(), 1)

    def test_subscribes_again_when_resolved_comes_back(self):
        fake = type(self).resolved
        fake.wait_for_subscriptions(1)
        # resolved goes away: the daemon reads EOF, keeps running and keeps answering.
        fake.stop()
        self.assert_still_answering()
        # ... and comes back at the same path: the daemon's next try (every 5 s) subscribes.
        restarted = type(self).resolved = self.start_fake()
        try:
            requests = restarted.wait_for_subscriptions(1, timeout=RESUBSCRIBE_TIMEOUT)
        except fr.FakeResolvedError as error:
            raise AssertionError(f"no new subscription within {RESUBSCRIBE_TIMEOUT}s of "
                                 f"resolved's return\n{error}\n{self.daemon.describe()}") from None
        self.assertEqual(requests[0].get("method"), fr.SUBSCRIBE_METHOD, f"{requests}")
        self.assertIs(requests[0].get("more"), True, f"{requests}")
        name = f"again.resolved.{d.ZONE}"
        self.push(fr.query_result(name, [INTERNET_V4_ALT]))
        self.connect_until_named(INTERNET_V4_ALT, name)
        type(self).answers_confirmed += 1


if __name__ == "__main__":
    unittest.main(verbosity=2)


# ---------------------------------------------------------------------------------------------
# TCP under abuse (issue 10)


class TcpAbuseTest(DnsCase):
    """1,000 TCP connections to 127.0.0.17:53 held by 20 abusive processes (50 each, over the
    per-client limit of 32; together over the table of 512): a third only connect, a third send
    half a length prefix, a third trickle a query every 3 s, and every process opens its closed
    connections again each second. Meanwhile a query over TCP (dig +tcp to us, the TCP retry
    after a truncated UDP answer, and TCP/53 to another server redirected to us) is answered.

    The nameserver closes the longest-idle connection for a newcomer instead of refusing it, so
    the legitimate query gets in whatever the abusers hold. The time to each answer is printed
    (for the issue's figures: under 1 s expected), not asserted: only that it was answered and
    that the daemon is alive. The stats event at stop shows the evictions that made room."""

    PROCESSES = 20
    CONNECTIONS_PER_PROCESS = 50
    TRICKLE_SECONDS = 3.0
    RECONNECT_SECONDS = 1.0
    # The abusers run this long before the first dig: a few trickles and reconnects.
    SETTLE_SECONDS = 4.0
    READY_TIMEOUT = 30.0  # a hang guard for 1,000 connects, not a performance figure

    @classmethod
    def setUpClass(cls):
        cls.build_world()
        try:
            cls.daemon = start_daemon(cls.world, dns_config())
        except BaseException:
            cls.world.close()
            raise
        cls.abusers = None

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            code = cls.daemon.stop(signal.SIGTERM)
            if code != 0:
                problems.append(f"daemon exit code {code} after SIGTERM")
            problems += cls.stats_problems()
            if problems:
                problems.append(cls.daemon.describe())
        finally:
            cls.world.close()
        if problems:
            raise AssertionError("\n".join(problems))

    @classmethod
    def stats_problems(cls):
        """The nameserver's TCP counters in the stats event at stop: the abusers' connections
        were evicted, both for the table and for the per-process limit."""
        stats = cls.daemon.events("stats")
        if len(stats) != 1:
            return [f"one stats event at stop expected, found {len(stats)}"]
        dns = stats[0].get("dns") or {}
        keys = ("tcpConnections", "tcpRefused", "tcpClientRefused", "tcpEvictions",
                "tcpClientEvictions", "tcpIdleCloses", "tcpLifetimeCloses")
        counters = {key: dns.get(key) for key in keys}
        print(f"  nameserver TCP counters at stop: {json.dumps(counters)}", file=sys.stderr)
        if not all(isinstance(value, int) for value in counters.values()):
            return [f"TCP counters missing from the stats event: {json.dumps(dns)}"]
        problems = []
        if counters["tcpEvictions"] == 0 or counters["tcpClientEvictions"] == 0:
            problems.append(f"evictions expected for the table and for the per-process "
                            f"limit: {json.dumps(counters)}")
        return problems

    def tearDown(self):
        self.stop_abusers()
        self.assertTrue(self.daemon.alive(), f"the daemon died during {self.id()}\n"
                                             f"{self.daemon.describe()}")

    def start_abusers(self):
        process = self.world.spawn("client", [
            sys.executable, "-c", TCP_ABUSER, NAMESERVER_V4, 53, self.PROCESSES,
            self.CONNECTIONS_PER_PROCESS, self.TRICKLE_SECONDS, self.RECONNECT_SECONDS])
        self.abusers = process
        reader = LineReader(process)
        opened = 0
        for _ in range(self.PROCESSES):
            opened += reader.line(timeout=self.READY_TIMEOUT).get("opened", 0)
        return opened

    def stop_abusers(self):
        """Stops the abusers (by PID); returns their summary lines."""
        process, self.abusers = self.abusers, None
        if process is None or process.poll() is not None:
            return []
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        if stderr:
            print(f"abusers' stderr: {stderr.decode(errors='replace')}", file=sys.stderr)
        lines = []
        for line in stdout.decode(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return [line for line in lines if "closed_by_server" in line]

    def timed_dig(self, server, name, rtype="A", transport="tcp"):
        started = time.monotonic()
        result = self.dig(server, name, rtype, transport=transport)
        elapsed = time.monotonic() - started
        found = re.search(r";; Query time: (\d+) msec", result.stdout)
        query_ms = int(found.group(1)) if found else None
        return result, elapsed, query_ms

    def test_tcp_queries_are_answered_while_1000_abusive_connections_are_held(self):
        opened = self.start_abusers()
        time.sleep(self.SETTLE_SECONDS)
        self.assertIsNone(self.abusers.poll(), "the abusers exited early")
        expected_big = d.big_txt_strings()
        cases = [("dig +tcp @127.0.0.17, cached", NAMESERVER_V4, f"www.{d.ZONE}", "A", "tcp",
                  [INTERNET_V4])]
        cases += [(f"dig +tcp @127.0.0.17, new name {index}", NAMESERVER_V4,
                   unique_name("abuse"), "A", "tcp", [INTERNET_V4]) for index in range(5)]
        cases += [("dig @127.0.0.17 big TXT: UDP, truncated, then TCP", NAMESERVER_V4,
                   f"big.{d.ZONE}", "TXT", "udp", expected_big),
                  ("dig +tcp @10.77.0.3: TCP/53 elsewhere, redirected to us", INTERNET_V4_ALT,
                   unique_name("astray"), "A", "tcp", [INTERNET_V4])]
        timings = []
        for label, server, name, rtype, transport, expected in cases:
            with self.subTest(label):
                result, elapsed, query_ms = self.timed_dig(server, name, rtype, transport)
                timings.append((label, elapsed, query_ms, result.status))
                self.assert_answer(result, rtype, expected)
                if rtype == "TXT":
                    self.assertTrue(result.truncated_retry, f"no TCP retry\n{result}")
                if server == INTERNET_V4_ALT:
                    event = self.dig_event(result, protocol="tcp")
                    self.assert_dig_process(event, result)
        summaries = self.stop_abusers()
        totals = {key: sum(line.get(key, 0) for line in summaries)
                  for key in ("opened", "closed_by_server", "held_at_stop", "connect_errors")}
        print(f"\nTCP under abuse: {opened} connections opened by {self.PROCESSES} processes, "
              f"{self.SETTLE_SECONDS:.0f} s before the first query; wall time includes `ip "
              "netns exec` and dig's start (~100 ms without abuse):", file=sys.stderr)
        for label, elapsed, query_ms, status in timings:
            print(f"  {label}: {status} after {elapsed * 1000:.0f} ms (dig's query time "
                  f"{query_ms} ms)", file=sys.stderr)
        print(f"  abusers in all: {json.dumps(totals)}", file=sys.stderr)
        self.assertEqual(opened, self.PROCESSES * self.CONNECTIONS_PER_PROCESS,
                         f"the abusers could not open their connections: {summaries}")
        self.assertEqual(len(summaries), self.PROCESSES, f"{summaries}")
        self.assertGreater(sum(line["closed_by_server"] for line in summaries), 0,
                           f"the nameserver closed none of the abusers' connections: "
                           f"{summaries}")
        self.assert_still_answering()


# 20 worker processes (argv: server, port, processes, connections per process, trickle period,
# reconnect period), each holding its connections: slot % 3 == 0 only connects, 1 sends one
# byte of a length prefix, 2 sends a query for www.pwtest at once and then every trickle
# period. A connection the server closes is opened again at the next reconnect tick. Each
# worker prints {"opened": n} once its connections are open, and its counts on SIGTERM.
TCP_ABUSER = r'''
import json, os, selectors, signal, socket, sys, time
server, port = sys.argv[1], int(sys.argv[2])
processes, per_process = int(sys.argv[3]), int(sys.argv[4])
trickle, reconnect = float(sys.argv[5]), float(sys.argv[6])

def name(text):
    return b"".join(bytes([len(l)]) + l.encode() for l in text.split(".")) + b"\0"

QUERY = (b"\x4a\x4a\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name("www.pwtest")
         + b"\x00\x01\x00\x01")
FRAMED = len(QUERY).to_bytes(2, "big") + QUERY

def say(record):
    # One write per line (print may take two): the workers share one pipe.
    os.write(1, (json.dumps(record) + "\n").encode())

def worker():
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    selector = selectors.DefaultSelector()
    slots = [None] * per_process
    due = [0.0] * per_process
    counts = {"opened": 0, "connect_errors": 0, "closed_by_server": 0, "bytes_read": 0}

    def send(sock, data):
        try:
            sock.send(data)
        except OSError:
            pass

    def open_slot(slot):
        try:
            sock = socket.create_connection((server, port), timeout=2)
        except OSError:
            counts["connect_errors"] += 1
            return
        sock.setblocking(False)
        counts["opened"] += 1
        if slot % 3 == 1:
            send(sock, b"\0")
        elif slot % 3 == 2:
            send(sock, FRAMED)
        slots[slot] = sock
        due[slot] = time.monotonic() + trickle
        selector.register(sock, selectors.EVENT_READ, slot)

    for slot in range(per_process):
        open_slot(slot)
    say({"pid": os.getpid(), "opened": counts["opened"]})
    next_reconnect = time.monotonic() + reconnect
    while not stopping:
        for key, _ in selector.select(0.1):
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                counts["bytes_read"] += len(data)
                continue
            selector.unregister(key.fileobj)
            key.fileobj.close()
            slots[key.data] = None
            counts["closed_by_server"] += 1
        now = time.monotonic()
        for slot, sock in enumerate(slots):
            if sock is not None and slot % 3 == 2 and now >= due[slot]:
                send(sock, FRAMED)
                due[slot] = now + trickle
        if now >= next_reconnect:
            for slot in range(per_process):
                if slots[slot] is None and not stopping:
                    open_slot(slot)
            next_reconnect = now + reconnect
    counts["held_at_stop"] = sum(sock is not None for sock in slots)
    say({"pid": os.getpid(), **counts})
    os._exit(0)

children = []
for _ in range(processes):
    pid = os.fork()
    if pid == 0:
        worker()
    children.append(pid)

def forward(*_):
    for child in children:
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass

signal.signal(signal.SIGTERM, forward)
for child in children:
    while True:
        try:
            os.waitpid(child, 0)
            break
        except ChildProcessError:
            break
        except InterruptedError:
            continue
'''
