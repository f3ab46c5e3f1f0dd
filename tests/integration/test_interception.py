"""Interception with real traffic: the daemon in a client namespace, echo services behind a veth.

Proves, with packets rather than mocks, the Linux integration of the seed design: NFQUEUE
17040/17140 (IPv4) and 17060/17160 (IPv6) see the first packet of every connection, verdicts
come back as connection marks (1710 accept, 1711 block = REJECT, 1712 drop), permanent verdicts
keep every later packet in the kernel, the ruleset fails closed when the daemon dies and is
removed when it stops. Every test builds its own World (world.py); nothing runs in the root
namespace except read-only `iptables-save`, which tearDownModule uses to prove exactly that.

Run: ctest --test-dir build/dev -L integration --output-on-failure
 or: sudo PORTWARDEN_BIN=build/dev/src/cli/portwarden python3 -m unittest -v test_interception
     (from tests/integration)
"""

import ipaddress
import json
import re
import signal
import unittest

import world as w
from world import (CLIENT_V4, CLIENT_V6, INTERNET_V4, INTERNET_V4_ALT, INTERNET_V6,
                   INTERNET_V6_ALT, MARKS)

# How long a probe waits before it calls the outcome "timeout". Blocks must answer well
# within this; drops must not answer at all.
TIMEOUT = 1.5
# A REJECT must reach the client quickly (the issue: "< 1 s").
QUICK = 1.0
ECHO_PORT, BLOCKED_PORT, CLOSED_PORT, LISTENER_PORT = 9000, 9001, 9009, 9100

_ROOT_RULES_BEFORE = None


def setUpModule():
    global _ROOT_RULES_BEFORE
    reason = w.missing_prerequisite(need_daemon=True)
    if reason:
        w.skip_suite(reason)
    _ROOT_RULES_BEFORE = w.root_namespace_rules()


def tearDownModule():
    if _ROOT_RULES_BEFORE is None:
        return
    problems = w.suite_leftovers(_ROOT_RULES_BEFORE)
    if problems:
        raise AssertionError("\n".join(problems))


def parse_rules(text):
    """World.rules() text as {(tool, table): [rule lines]}."""
    tables, tool, table = {}, None, None
    for line in text.splitlines():
        if line.startswith("### "):
            tool = line[4:].strip()
        elif line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith("-A "):
            tables.setdefault((tool, table), []).append(line)
    return tables


def same_ip(left, right):
    try:
        return ipaddress.ip_address(left) == ipaddress.ip_address(right)
    except ValueError:
        return False


def endpoint_config(default_action="permit", outbound_block_action="reject", permanent=True,
                    endpoints=()):
    # blockInbound (on by default since profiles) off: these cases test the default action and
    # the rules on inbound connections; test_profiles.py tests blockInbound itself.
    return {"filter": {"defaultAction": default_action, "endpoints": list(endpoints),
                       "permanentVerdicts": permanent,
                       "outboundBlockAction": outbound_block_action, "blockInbound": False}}


# The blocks of the outbound matrix: port 9001 for TCP and UDP, the second internet address
# for ICMP. A mix of plain addresses, CIDRs and ranges so the parser is exercised too.
OUTBOUND_BLOCKS = [
    f"- {INTERNET_V4} tcp/{BLOCKED_PORT}",
    f"- {INTERNET_V6} tcp/{BLOCKED_PORT}-{BLOCKED_PORT + 1}",
    f"- 10.77.0.0/24 udp/{BLOCKED_PORT}",
    f"- fd77::/64 udp/{BLOCKED_PORT}",
    f"- {INTERNET_V4_ALT} icmp",
    f"- {INTERNET_V6_ALT}/128 icmpv6",
]


class Case:
    """One probe of a matrix: what to send and what the client and the events must show."""

    def __init__(self, name, mode, host, port, outcome, verdict, mark=None):
        self.name, self.mode, self.host, self.port = name, mode, host, port
        self.outcome = outcome
        self.verdict = verdict  # a string, or a set of acceptable verdicts
        self.mark = mark        # an int, a set, or None for "not checked"

    @property
    def ip_version(self):
        return ipaddress.ip_address(self.host).version

    @property
    def protocol(self):
        if self.mode == "ping":
            return "icmpv6" if self.ip_version == 6 else "icmp"
        return self.mode


class IntegrationCase(unittest.TestCase):
    """Assertions that explain themselves: every failure carries the probe and the daemon."""

    maxDiff = None

    def assert_outcome(self, result, expected, daemon=None, quick=False):
        context = f"\n{daemon.describe()}" if daemon else ""
        self.assertEqual(result.outcome, expected, f"probe {result}{context}")
        if expected == "timeout":
            self.assertGreaterEqual(result.elapsed, TIMEOUT - 0.2, f"probe {result}")
        if quick:
            self.assertLess(result.elapsed, QUICK,
                            f"a block must answer in < {QUICK}s: probe {result}{context}")

    def find_connection(self, daemon, case, result, direction="outbound", timeout=3.0):
        """The ("new", "decided") events of the connection a probe made."""
        local_ip = (CLIENT_V6 if case.ip_version == 6 else CLIENT_V4)

        def matches(event):
            if event.get("protocol") != case.protocol or event.get("ipVersion") != case.ip_version:
                return False
            if event.get("direction") != direction:
                return False
            local, remote = event.get("local") or {}, event.get("remote") or {}
            if direction == "outbound":
                if not (same_ip(local.get("ip"), local_ip)
                        and same_ip(remote.get("ip"), case.host)):
                    return False
                if case.mode != "ping":
                    return (remote.get("port") == case.port
                            and local.get("port") == result.local_port)
                return True
            # Inbound: the probe ran in `internet` and connected to the listener in `client`.
            peer = INTERNET_V6 if case.ip_version == 6 else INTERNET_V4
            if not (same_ip(local.get("ip"), case.host) and same_ip(remote.get("ip"), peer)):
                return False
            return local.get("port") == case.port and remote.get("port") == result.local_port

        def found(events):
            news = [e for e in events if e.get("event") == "new" and matches(e)]
            ids = {e.get("id") for e in news}
            decided = [e for e in events if e.get("event") == "decided" and e.get("id") in ids]
            return news and decided

        try:
            events = daemon.wait_for(found, timeout, f"events of {case.name}")
        except w.DaemonError as error:
            raise AssertionError(f"{case.name}: no new+decided event pair matching probe "
                                 f"{result}\n{self.dump_events(daemon)}\n{error}") from None
        news = [e for e in events if e.get("event") == "new" and matches(e)]
        self.assertEqual(len(news), 1, f"{case.name}: one connection, one new event: {news}")
        decided = [e for e in events
                   if e.get("event") == "decided" and e.get("id") == news[0]["id"]]
        self.assertEqual(len(decided), 1, f"{case.name}: one decision per connection: {decided}")
        return news[0], decided[0]

    def check_decision(self, case, new, decided, permanent=True):
        for field in ("protocol", "ipVersion", "direction", "local", "remote"):
            self.assertEqual(decided.get(field), new.get(field),
                             f"{case.name}: decided.{field} differs from new.{field}")
        verdicts = case.verdict if isinstance(case.verdict, set) else {case.verdict}
        self.assertIn(decided.get("verdict"), verdicts, f"{case.name}: {decided}")
        if case.mark is not None:
            marks = case.mark if isinstance(case.mark, set) else {case.mark}
            self.assertIn(decided.get("mark"), marks, f"{case.name}: {decided}")
        self.assertIs(decided.get("permanent"), permanent, f"{case.name}: {decided}")

    @staticmethod
    def dump_events(daemon, limit=60):
        events = daemon.events()
        shown = "\n".join(json.dumps(e) for e in events[-limit:])
        return f"--- last {min(limit, len(events))} of {len(events)} events ---\n{shown}"

    def run_matrix(self, world, daemon, cases, namespace="client", direction="outbound",
                   permanent=True):
        specs = []
        for case in cases:
            options = {"timeout": TIMEOUT, "namespace": namespace}
            if direction == "inbound":
                # Explicit source: `internet` has two addresses per family.
                options["bind"] = INTERNET_V6 if case.ip_version == 6 else INTERNET_V4
            specs.append((case.mode, case.host, case.port, options))
        results = world.probes(specs)
        for case, result in zip(cases, results):
            with self.subTest(case=case.name):
                self.assert_outcome(result, case.outcome, daemon,
                                    quick=case.outcome in ("ok", "refused", "unreachable"))
        for case, result in zip(cases, results):
            with self.subTest(case=case.name, check="events"):
                new, decided = self.find_connection(daemon, case, result, direction)
                self.check_decision(case, new, decided, permanent)
        return results

    def stop_cleanly(self, world, daemon):
        code = daemon.stop(signal.SIGTERM)
        self.assertEqual(code, 0, f"exit code after SIGTERM\n{daemon.describe()}")
        self.assertEqual(w.our_rules(world.rules()), [],
                         f"rules left behind after SIGTERM\n{world.rules()}")
        stats = daemon.events("stats")
        self.assertEqual(len(stats), 1, f"one stats event at stop\n{self.dump_events(daemon)}")
        return stats[0]


class OutboundVerdictTest(IntegrationCase):
    """Permit, block (REJECT) and drop for TCP, UDP and ICMP over IPv4 and IPv6."""

    @classmethod
    def setUpClass(cls):
        cls.world = w.World().__enter__()
        try:
            cls.world.start_echo_services(tcp_ports=(ECHO_PORT, BLOCKED_PORT),
                                          udp_ports=(ECHO_PORT, BLOCKED_PORT))
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.world.close()

    def permitted_cases(self):
        cases = []
        for family, host in (("v4", INTERNET_V4), ("v6", INTERNET_V6)):
            cases += [
                Case(f"tcp {family} permit", "tcp", host, ECHO_PORT, "ok", "accept", 1710),
                Case(f"udp {family} permit", "udp", host, ECHO_PORT, "ok", "accept", 1710),
                Case(f"ping {family} permit", "ping", host, 0, "ok", "accept", 1710),
                # A closed port answers with RST / port unreachable: the permit lets it through.
                Case(f"tcp {family} permit closed port", "tcp", host, CLOSED_PORT, "refused",
                     "accept", 1710),
            ]
        return cases

    def test_permit_and_reject(self):
        daemon = self.world.start_daemon(endpoint_config(endpoints=OUTBOUND_BLOCKS))
        cases = self.permitted_cases()
        for family, host, alt in (("v4", INTERNET_V4, INTERNET_V4_ALT),
                                  ("v6", INTERNET_V6, INTERNET_V6_ALT)):
            cases += [
                Case(f"tcp {family} block", "tcp", host, BLOCKED_PORT, "unreachable", "block",
                     1711),
                Case(f"udp {family} block", "udp", host, BLOCKED_PORT, "unreachable", "block",
                     1711),
                # A block of ICMP is always a drop: the ping times out.
                Case(f"ping {family} block", "ping", alt, 0, "timeout", {"block", "drop"},
                     {1711, 1712}),
            ]
        self.run_matrix(self.world, daemon, cases)
        self.stop_cleanly(self.world, daemon)

    def test_permit_and_drop(self):
        daemon = self.world.start_daemon(endpoint_config(outbound_block_action="drop",
                                                         endpoints=OUTBOUND_BLOCKS))
        cases = self.permitted_cases()
        for family, host, alt in (("v4", INTERNET_V4, INTERNET_V4_ALT),
                                  ("v6", INTERNET_V6, INTERNET_V6_ALT)):
            cases += [
                Case(f"tcp {family} drop", "tcp", host, BLOCKED_PORT, "timeout", "drop", 1712),
                Case(f"udp {family} drop", "udp", host, BLOCKED_PORT, "timeout", "drop", 1712),
                Case(f"ping {family} drop", "ping", alt, 0, "timeout", "drop", 1712),
            ]
        self.run_matrix(self.world, daemon, cases)
        self.stop_cleanly(self.world, daemon)


class InboundTest(IntegrationCase):
    """Connections to a listener in the client namespace go through the inbound queues."""

    @classmethod
    def setUpClass(cls):
        cls.world = w.World().__enter__()
        try:
            cls.world.start_echo_services(tcp_ports=(ECHO_PORT, BLOCKED_PORT),
                                          udp_ports=(ECHO_PORT,))
            cls.world.start_client_listener(tcp_ports=(LISTENER_PORT,),
                                            udp_ports=(LISTENER_PORT,))
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.world.close()

    @staticmethod
    def inbound_cases(outcome, verdict, mark):
        return [Case(f"{mode} {family} inbound", mode, host, LISTENER_PORT, outcome, verdict, mark)
                for mode in ("tcp", "udp")
                for family, host in (("v4", CLIENT_V4), ("v6", CLIENT_V6))]

    def test_inbound_permitted(self):
        daemon = self.world.start_daemon(endpoint_config(default_action="permit"))
        self.run_matrix(self.world, daemon, self.inbound_cases("ok", "accept", 1710),
                        namespace="internet", direction="inbound")
        # The first packet of each inbound connection (TCP SYN, first UDP datagram) went
        # through the INPUT queues, and with permanent verdicts nothing else did: the replies
        # leave with the restored mark instead of visiting the OUTPUT queues.
        counters = self.world.queue_counters()
        self.assertEqual({queue: counters.get(queue) for queue in (17140, 17160, 17040, 17060)},
                         {17140: 2, 17160: 2, 17040: 0, 17060: 0},
                         f"NFQUEUE rule counters: {counters}\n{self.dump_events(daemon)}")
        self.stop_cleanly(self.world, daemon)

    def test_inbound_blocked_by_default_is_a_silent_drop(self):
        endpoints = [f"+ {INTERNET_V4} tcp/{ECHO_PORT}", f"+ {INTERNET_V6} tcp/{ECHO_PORT}"]
        daemon = self.world.start_daemon(endpoint_config(default_action="block",
                                                         endpoints=endpoints))
        # Inbound blocks are silent drops whatever outboundBlockAction says.
        self.run_matrix(self.world, daemon,
                        self.inbound_cases("timeout", {"block", "drop"}, {1711, 1712}),
                        namespace="internet", direction="inbound")
        # Outbound in the same configuration: the "+" rule permits, the default blocks.
        outbound = []
        for family, host in (("v4", INTERNET_V4), ("v6", INTERNET_V6)):
            outbound += [
                Case(f"tcp {family} permitted by rule", "tcp", host, ECHO_PORT, "ok", "accept",
                     1710),
                Case(f"tcp {family} blocked by default", "tcp", host, BLOCKED_PORT,
                     "unreachable", "block", 1711),
                Case(f"udp {family} blocked by default", "udp", host, ECHO_PORT, "unreachable",
                     "block", 1711),
            ]
        self.run_matrix(self.world, daemon, outbound)
        self.stop_cleanly(self.world, daemon)


class NeighbourDiscoveryTest(IntegrationCase):
    """IPv6 needs neighbour discovery: it passes even when everything else is blocked."""

    def test_default_block_keeps_ipv6_neighbour_discovery_working(self):
        # No static neighbour entries here: the client must solicit the internet's address.
        with w.World(static_neighbours=False) as world:
            world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=())
            daemon = world.start_daemon(endpoint_config(
                default_action="block", endpoints=[f"+ {INTERNET_V6} tcp/{ECHO_PORT}"]))
            result = world.tcp(INTERNET_V6, ECHO_PORT, timeout=TIMEOUT)
            self.assert_outcome(result, "ok", daemon)
            fast_tracked = [e for e in daemon.events("decided")
                            if e.get("protocol") == "icmpv6"
                            and "neighbour discovery" in e.get("reason", "")]
            self.assertTrue(fast_tracked, f"no fast-tracked NDP\n{self.dump_events(daemon)}")
            self.assertTrue(all(e["verdict"] == "accept" and e["permanent"] is False
                                for e in fast_tracked), self.dump_events(daemon))
            self.stop_cleanly(world, daemon)


class PermanentVerdictTest(IntegrationCase):
    """Permanent verdicts keep all but the first packet of a connection in the kernel."""

    CONNECTIONS = 20

    @classmethod
    def setUpClass(cls):
        cls.world = w.World().__enter__()
        try:
            cls.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=())
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.world.close()

    def exchange(self, daemon):
        # Five round trips of 3000 bytes each: SYN, several data segments and ACKs both
        # ways, FINs. Only the SYN is a new connection.
        specs = [("tcp", INTERNET_V4, ECHO_PORT,
                  {"timeout": 5.0, "exchanges": 5, "size": 3000})] * self.CONNECTIONS
        results = self.world.probes(specs, workers=10)
        for index, result in enumerate(results):
            with self.subTest(connection=index):
                self.assert_outcome(result, "ok", daemon)
        return results

    def test_permanent_verdicts_one_packet_per_connection(self):
        daemon = self.world.start_daemon(endpoint_config(permanent=True))
        results = self.exchange(daemon)
        ports = {result.local_port for result in results}
        stats = self.stop_cleanly(self.world, daemon)
        news = daemon.events("new")
        decided = daemon.events("decided")
        ours = [e for e in news if (e.get("remote") or {}).get("port") == ECHO_PORT
                and (e.get("local") or {}).get("port") in ports]
        self.assertEqual(len(ours), self.CONNECTIONS,
                         f"one new event per TCP connection\n{self.dump_events(daemon)}")
        self.assertEqual(len(news), self.CONNECTIONS,
                         f"no other connections in this world\n{self.dump_events(daemon)}")
        self.assertEqual(stats.get("packets"), len(news),
                         f"only the SYN of each connection reaches userspace: {stats}\n"
                         f"{self.dump_events(daemon)}")
        for event in decided:
            self.assertIs(event.get("permanent"), True, f"{event}")
            self.assertEqual(event.get("mark"), 1710, f"{event}")
        self.assertEqual(stats.get("connections"), self.CONNECTIONS, f"{stats}")

    def test_non_permanent_verdicts_queue_more_packets(self):
        daemon = self.world.start_daemon(endpoint_config(permanent=False))
        results = self.exchange(daemon)
        ports = {result.local_port for result in results}
        stats = self.stop_cleanly(self.world, daemon)
        news = [e for e in daemon.events("new") if (e.get("local") or {}).get("port") in ports]
        self.assertEqual(len(news), self.CONNECTIONS,
                         f"one new event per connection, not per packet\n"
                         f"{self.dump_events(daemon)}")
        for event in daemon.events("decided"):
            self.assertIs(event.get("permanent"), False, f"{event}")
            self.assertEqual(event.get("mark"), 1700, f"{event}")
        # Every packet of every connection (both directions) is queued: far more than one each.
        self.assertGreater(stats.get("packets", 0), 2 * self.CONNECTIONS,
                           f"non-permanent verdicts: more packets than connections: {stats}")


class LifecycleTest(IntegrationCase):
    """Start, stop, crash and bad configuration; one world per test."""

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)

    def assert_rules_installed(self, rules):
        """The seed's ruleset, per family and table, with the C17 rules in the seed's order."""
        tables = parse_rules(rules)
        families = (("iptables-save", 17040, 17140, "icmp-host-prohibited"),
                    ("ip6tables-save", 17060, 17160, "icmp6-adm-prohibited"))
        for tool, queue_out, queue_in, reject in families:
            with self.subTest(family=tool):
                mangle, filter_, nat = (tables.get((tool, t), []) for t in
                                        ("mangle", "filter", "nat"))
                for line in ("-A OUTPUT -j C170", "-A INPUT -j C171"):
                    self.assertIn(line, mangle, f"{tool} mangle:\n{rules}")
                for line in ("-A OUTPUT -j C17", "-A INPUT -j C17"):
                    self.assertIn(line, filter_, f"{tool} filter:\n{rules}")
                for chain, queue in (("C170", queue_out), ("C171", queue_in)):
                    self.assert_in_order(mangle, chain, [
                        r"-j CONNMARK --restore-mark",
                        rf"--mark 0x0 -j NFQUEUE --queue-num {queue} --queue-bypass"], rules)
                self.assert_in_order(filter_, "C17", [
                    r"--mark 0x0 -j DROP",
                    rf"--mark {MARKS[1700]} -j ACCEPT",
                    rf"--mark {MARKS[1701]} .*-j REJECT --reject-with {reject}",
                    rf"--mark {MARKS[1702]} -j DROP",
                    r"-j CONNMARK --save-mark",
                    rf"--mark {MARKS[1710]} -j ACCEPT",
                    rf"--mark {MARKS[1711]} .*-j REJECT --reject-with {reject}",
                    rf"--mark {MARKS[1712]} -j DROP",
                    rf"--mark {MARKS[1717]} -j ACCEPT"], rules)
                for mark in (1799, 1717):
                    self.assertTrue(any(f"--mark {MARKS[mark]}" in line and "-j DNAT" in line
                                        and line.startswith("-A OUTPUT") for line in nat),
                                    f"{tool} nat OUTPUT DNAT for mark {mark}:\n{rules}")

    def assert_in_order(self, lines, chain, patterns, rules):
        chain_lines = [line for line in lines if line.startswith(f"-A {chain} ")]
        position = -1
        for pattern in patterns:
            found = [index for index, line in enumerate(chain_lines)
                     if index > position and re.search(pattern, line)]
            self.assertTrue(found, f"chain {chain}: no rule matching {pattern!r} after rule "
                                   f"{position}:\n" + "\n".join(chain_lines) + f"\n\n{rules}")
            position = found[0]

    def test_sigterm_removes_every_rule(self):
        self.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=())
        daemon = self.world.start_daemon(endpoint_config())
        self.assert_rules_installed(self.world.rules())
        self.assert_outcome(self.world.tcp(INTERNET_V4, ECHO_PORT), "ok", daemon)
        stats = self.stop_cleanly(self.world, daemon)
        self.assertGreaterEqual(stats.get("connections", 0), 1, f"{stats}")
        # Without rules the namespace is back to plain networking.
        self.assert_outcome(self.world.tcp(INTERNET_V4, ECHO_PORT), "ok")
        self.assert_outcome(self.world.tcp(INTERNET_V6, ECHO_PORT), "ok")

    def test_sigkill_fails_closed_until_rules_are_removed(self):
        self.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=())
        daemon = self.world.start_daemon(endpoint_config())
        before = self.world.probes([("tcp", INTERNET_V4, ECHO_PORT, {}),
                                    ("tcp", INTERNET_V6, ECHO_PORT, {})])
        for result in before:
            self.assert_outcome(result, "ok", daemon)
        daemon.kill()
        self.assertTrue(w.our_rules(self.world.rules()), "rules stay after kill -9")
        # No program on the queues: --queue-bypass lets packets through mangle, and filter C17
        # drops mark 0. New connections time out.
        crashed = self.world.probes([("tcp", INTERNET_V4, ECHO_PORT, {}),
                                     ("tcp", INTERNET_V6, ECHO_PORT, {})])
        for result in crashed:
            with self.subTest(probe=str(result)):
                self.assert_outcome(result, "timeout")
        removed = self.world.portwarden(["iptables", "remove"])
        self.assertEqual(removed.returncode, 0,
                         f"iptables remove: {removed.stdout}{removed.stderr}")
        self.assertEqual(w.our_rules(self.world.rules()), [], self.world.rules())
        restored = self.world.probes([("tcp", INTERNET_V4, ECHO_PORT, {}),
                                      ("tcp", INTERNET_V6, ECHO_PORT, {})])
        for result in restored:
            with self.subTest(probe=str(result)):
                self.assert_outcome(result, "ok")

    def test_bad_config_exits_2_with_the_line_and_installs_nothing(self):
        good_endpoint = f'"+ {INTERNET_V4} tcp/{ECHO_PORT}"'
        head = '{\n  "filter": {\n    "defaultAction": "permit",\n    "endpoints": [\n'
        tail = '\n    ]\n  }\n}\n'
        configs = {
            # name: (config text, 1-based line of the error)
            "bad address": (head + f"      {good_endpoint},\n"
                            '      "+ 10.77.0.300 tcp/9000"' + tail, 6),
            "bad protocol": (head + '      "- * carrier-pigeon/17"' + tail, 5),
            "bad port": (head + f"      {good_endpoint},\n      " + good_endpoint + ",\n"
                         '      "- * tcp/70000"' + tail, 7),
            "bad action": ('{\n  "filter": {\n    "defaultAction": "maybe",\n'
                           '    "endpoints": []\n  }\n}\n', 3),
            "syntax error": (head + '      "+ * tcp"\n  }\n}\n', 6),
        }
        for name, (text, line) in configs.items():
            with self.subTest(config=name):
                daemon = self.world.start_daemon(text, wait=False)
                try:
                    code = daemon.process.wait(timeout=10)
                except Exception:  # noqa: BLE001 - report below, the world kills it
                    code = None
                stderr = daemon.stderr()
                self.assertEqual(code, 2, f"exit code for {name}\n{daemon.describe()}")
                self.assertIn(f"{daemon.config_path}:{line}:", stderr,
                              f"{name}: stderr must name FILE:LINE\n{daemon.describe()}")
                self.assertEqual(daemon.events("started"), [], name)
                self.assertEqual(w.our_rules(self.world.rules()), [],
                                 f"{name}: rules installed\n{self.world.rules()}")

    def test_iptables_apply_twice_is_idempotent(self):
        show = self.world.portwarden(["iptables", "show"])
        self.assertEqual(show.returncode, 0, show.stderr)
        for needle in ("C170", "C171", "C17", "17040", "17140", "17060", "17160"):
            self.assertIn(needle, show.stdout, f"iptables show:\n{show.stdout}")
        self.assertEqual(w.our_rules(self.world.rules()), [], "show must not install anything")

        first = self.world.portwarden(["iptables", "apply"])
        self.assertEqual(first.returncode, 0, f"{first.stdout}{first.stderr}")
        after_first = self.world.rules()
        self.assert_rules_installed(after_first)
        second = self.world.portwarden(["iptables", "apply"])
        self.assertEqual(second.returncode, 0, f"{second.stdout}{second.stderr}")
        self.assertEqual(self.world.rules(), after_first, "apply twice yields the same ruleset")

        removed = self.world.portwarden(["iptables", "remove"])
        self.assertEqual(removed.returncode, 0, f"{removed.stdout}{removed.stderr}")
        self.assertEqual(w.our_rules(self.world.rules()), [], self.world.rules())
        again = self.world.portwarden(["iptables", "remove"])
        self.assertEqual(again.returncode, 0, f"remove with nothing installed: {again.stderr}")


class MalformedPacketTest(IntegrationCase):
    """A truncated TCP packet is counted as malformed and does not stop the daemon."""

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)

    def test_malformed_packet_is_counted_and_daemon_keeps_working(self):
        self.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=())
        daemon = self.world.start_daemon(endpoint_config())
        sent = self.world.malformed(INTERNET_V4, ECHO_PORT)
        self.assertEqual(sent.outcome, "ok", f"raw send: {sent}")
        self.assertTrue(daemon.alive(), daemon.describe())
        for result in self.world.probes([("tcp", INTERNET_V4, ECHO_PORT, {}),
                                         ("tcp", INTERNET_V6, ECHO_PORT, {})]):
            self.assert_outcome(result, "ok", daemon)
        stats = self.stop_cleanly(self.world, daemon)
        self.assertGreaterEqual(stats.get("malformed", 0), 1, f"{stats}")
        self.assertGreaterEqual(stats.get("packets", 0), 3, f"{stats}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
