"""Per-application profiles (issue 9) with real processes in the test namespaces.

The daemon runs in the `client` namespace with eBPF attribution on the test's own cgroup (as in
test_attribution.py), nsd in the `internet` namespace answers pwtest. (dns_servers.py), and echo
services answer on 10.77.0.2 / fd77::2 (LAN scope: private and unique-local addresses), on
203.0.113.5 (an address of Internet scope, routed to the internet namespace) and on 127.0.0.1 in
the client namespace (Localhost scope). Clients are copies of tools/attribution_client.c under
different paths (each copy is an application of its own) and Python scripts (tools/probe.py,
tools/stream_client.py). Profiles, settings and prompt answers go through the local API on
127.0.0.1:817 (tools/api_client.py), the interface the CLI and the web UI use.

Cases: two executables to the same destination, one permitted by its profile and one blocked; a
Python script versus the interpreter itself; blockInternet, blockLAN and blockLocal; blockInbound
with and without a serviceEndpoints permit; blockP2P (a direct IP blocked, the same IP permitted
after the application resolved it); a DNS-time block for one application and not another;
defaultAction ask: the held connection completes when a person answers 'permit always', the
rule is in the profile and survives a restart; ask timeout; a prompt flood stays bounded;
re-evaluation of a running TCP stream (IPv4 and IPv6) and of a blocked UDP flow; a container's
process gets a profile of its own; a corrupt database stops the start with exit 1 naming the
file.

Every wait is bounded: bounds are hang guards, not performance assertions (the times a test
observes are printed, the benchmarks measure them).

Run: ctest --test-dir build/release -R integration_profiles --output-on-failure
"""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
from pathlib import Path

import dns_servers as d
import world as w
from world import CLIENT_V4, INTERNET_V4, INTERNET_V6

PUBLIC_V4 = "203.0.113.5"  # Internet scope, routed from the client to the internet namespace
ECHO_PORT = 9000
LOCAL_ECHO_PORT = 9200
LISTENER_PORT = 9100
EVENT_TIMEOUT = 8.0
CLIENT_SOURCE = w.TOOLS / "attribution_client.c"
DNS_CLIENT_SOURCE = w.TOOLS / "dns_client.c"
API_CLIENT = w.TOOLS / "api_client.py"
STREAM_CLIENT = w.TOOLS / "stream_client.py"
_PORTS = itertools.count(23000)

_ROOT_RULES_BEFORE = None
_CGROUP = None
_DIRECTORY = None
_PROGRAMS = {}


def missing_tools():
    return d.missing_tools(("cc", "nsenter", "dig"), w.SKIP_MESSAGE)


def setUpModule():
    global _ROOT_RULES_BEFORE, _CGROUP, _DIRECTORY
    reason = w.missing_prerequisite(need_daemon=True) or missing_tools()
    if reason:
        w.skip_suite(reason)
    _ROOT_RULES_BEFORE = w.root_namespace_rules()
    _CGROUP = w.suite_cgroup()
    _DIRECTORY = Path(os.path.realpath(tempfile.mkdtemp(prefix=f"pwt-profiles-{os.getpid()}-")))
    _DIRECTORY.chmod(0o755)
    compiled = _DIRECTORY / "build" / "client"
    compiled.parent.mkdir(mode=0o755)
    built = subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-o", compiled, CLIENT_SOURCE],
                           capture_output=True, text=True, timeout=60, check=False)
    if built.returncode != 0:
        raise RuntimeError(f"cc {CLIENT_SOURCE} failed:\n{built.stderr}")
    for role, relative in {"alpha": "bin/alpha-client", "beta": "opt/beta/beta-client",
                           "gamma": "opt/gamma/gamma-client", "flood": "bin/flood-client",
                           "boxed": "bin/boxed-client"}.items():
        destination = _DIRECTORY / relative
        destination.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        shutil.copyfile(compiled, destination)
        destination.chmod(0o755)
        _PROGRAMS[role] = destination
    for tool in ("dig",):
        destination = _DIRECTORY / "tools" / f"{tool}-one"
        destination.parent.mkdir(mode=0o755, exist_ok=True)
        shutil.copyfile(os.path.realpath(shutil.which(tool)), destination)
        destination.chmod(0o755)
        _PROGRAMS[f"{tool}-one"] = destination
        other = _DIRECTORY / "tools" / f"{tool}-two"
        shutil.copyfile(destination, other)
        other.chmod(0o755)
        _PROGRAMS[f"{tool}-two"] = other
    resolver_client = _DIRECTORY / "opt" / "p2p" / "p2p-client"
    resolver_client.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    built = subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-o", resolver_client,
                            DNS_CLIENT_SOURCE], capture_output=True, text=True, timeout=60,
                           check=False)
    if built.returncode != 0:
        raise RuntimeError(f"cc {DNS_CLIENT_SOURCE} failed:\n{built.stderr}")
    _PROGRAMS["p2p"] = resolver_client
    script = _DIRECTORY / "scripts" / "fetch.py"
    script.parent.mkdir(mode=0o755)
    shutil.copyfile(w.PROBE, script)
    script.chmod(0o755)
    _PROGRAMS["script"] = script


def tearDownModule():
    problems = []
    if _DIRECTORY is not None:
        shutil.rmtree(_DIRECTORY, ignore_errors=True)
    if _CGROUP is not None:
        try:
            _CGROUP.close()
        except RuntimeError as error:
            problems.append(str(error))
    if _ROOT_RULES_BEFORE is not None:
        problems += w.suite_leftovers(_ROOT_RULES_BEFORE)
    if problems:
        raise AssertionError("\n".join(problems))


def encoded(text):
    return urllib.parse.quote(text, safe="")


class ProfilesCase(unittest.TestCase):
    """One world per test: namespaces, nsd, echo services, and the daemon(s) the test starts."""

    maxDiff = None

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)
        self.nsd = d.start_nsd(self.world, None)
        self.addCleanup(self.nsd.stop)
        # An address of Internet scope on the internet side, reached through the veth.
        self.world._must(["ip", "-n", self.world.ns("internet"), "addr", "add",  # noqa: SLF001
                          f"{PUBLIC_V4}/32", "dev", w.World.VETH])
        self.world._must(["ip", "-n", self.world.ns("client"), "route", "add",  # noqa: SLF001
                          f"{PUBLIC_V4}/32", "via", INTERNET_V4])
        self.world._start_echo("internet",  # noqa: SLF001
                               [INTERNET_V4, INTERNET_V6, PUBLIC_V4], [ECHO_PORT], [ECHO_PORT])
        self.world._start_echo("client", ["127.0.0.1"], [LOCAL_ECHO_PORT], [])  # noqa: SLF001
        self.world.write_namespace_resolv_conf("client")
        self.daemon = None

    # Daemon ---------------------------------------------------------------------------------

    def start(self, config=None, data_dir=None, wait=True):
        config = {"filter/defaultAction": "permit", **(config or {})}
        extra = ["--attribution", "auto", "--bpf-cgroup", str(_CGROUP.path)]
        if data_dir is not None:
            extra += ["--data-dir", str(data_dir)]
        daemon = w.start_daemon_seeing_host_mounts(self.world, config, extra, wait=wait)
        if wait:
            self.wait_for_api(daemon)
        self.daemon = daemon
        return daemon

    def stop(self, daemon=None):
        daemon = daemon or self.daemon
        code = daemon.stop(signal.SIGTERM)
        self.assertEqual(code, 0, f"exit code after SIGTERM\n{daemon.describe()}")

    def wait_for_api(self, daemon, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            reply = self.api("GET", "/api/v1/status")
            if reply["status"] == 200:
                return
            if time.monotonic() > deadline or not daemon.alive():
                raise AssertionError(f"the API does not answer: {reply}\n{daemon.describe()}")
            time.sleep(0.1)

    # API ------------------------------------------------------------------------------------

    def api(self, method, path, body=None):
        argv = [sys.executable, API_CLIENT, method, path]
        if body is not None:
            argv.append(json.dumps(body))
        completed = self.world.run("client", argv, timeout=20)
        try:
            return json.loads(completed.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"status": 0, "error": f"rc={completed.returncode} {completed.stderr}"}

    def api_ok(self, method, path, body=None, status=(200, 201, 204)):
        reply = self.api(method, path, body)
        self.assertIn(reply["status"], status,
                      f"{method} {path} {json.dumps(body)} -> {reply}\n"
                      f"{self.daemon.describe() if self.daemon else ''}")
        return reply.get("body")

    def hold(self, role, host, timeout=20):
        """Starts a client whose connection will wait for a prompt; returns (process, port)."""
        local_port = next(_PORTS)
        process = self.world.spawn("client", [_PROGRAMS[role], "tcp", host, ECHO_PORT,
                                              "--source-port", local_port,
                                              "--timeout", timeout], text=True)
        return process, local_port

    def prompt_event(self, action="opened", count=1):
        events = self.daemon.wait_for(
            lambda events: len([e for e in events if e.get("event") == "prompt"
                                and e.get("action") == action]) >= count,
            EVENT_TIMEOUT, f"{count} prompt {action} event(s)")
        return [e for e in events if e.get("event") == "prompt" and e.get("action") == action]

    def create_profile(self, name, executable, settings):
        return self.api_ok("POST", "/api/v1/profiles", {
            "name": name,
            "fingerprints": [{"type": "path", "operation": "equals", "value": str(executable)}],
            "settings": settings})

    def set_profile_setting(self, profile_id, key, value):
        return self.api_ok("PUT", f"/api/v1/profiles/{encoded(profile_id)}/settings/"
                           f"{encoded(key)}", {"value": value})

    # Clients --------------------------------------------------------------------------------

    def client(self, role, mode, host, port, *options, namespace="client"):
        """One attribution_client run; returns its first JSON line and the process's PID."""
        argv = [_PROGRAMS[role], mode, host, str(port), "--timeout", "3", *map(str, options)]
        completed = self.world.run(namespace, argv, timeout=20)
        try:
            return json.loads(completed.stdout.splitlines()[0])
        except (IndexError, json.JSONDecodeError):
            return {"outcome": "error", "detail": f"rc={completed.returncode} "
                    f"{completed.stdout!r} {completed.stderr!r}"}

    def decided(self, predicate, what, timeout=EVENT_TIMEOUT, daemon=None):
        daemon = daemon or self.daemon

        def matching(events):
            return [event for event in events
                    if event.get("event") == "decided" and predicate(event)]
        try:
            events = daemon.wait_for(lambda events: matching(events), timeout, what)
        except w.DaemonError as error:
            shown = "\n".join(json.dumps(e) for e in daemon.events("decided")[-20:])
            raise AssertionError(f"no decided event for {what}\n{shown}\n{error}") from None
        return matching(events)[0]

    def decided_for_port(self, local_port, what, daemon=None):
        return self.decided(lambda event: (event.get("local") or {}).get("port") == local_port,
                            what, daemon=daemon)

    def connect(self, role, host, port=ECHO_PORT, mode="tcp"):
        """Connects from a fixed local port; returns (client report, decided event)."""
        local_port = next(_PORTS)
        report = self.client(role, mode, host, port, "--source-port", local_port)
        event = self.decided_for_port(local_port, f"{role} {mode} -> {host}:{port}")
        return report, event


# -------------------------------------------------------------------------------------------------


class ApplicationRulesTest(ProfilesCase):
    def test_two_executables_to_the_same_destination(self):
        self.start()
        self.create_profile("alpha", _PROGRAMS["alpha"], {"filter/endpoints": [f"+ {INTERNET_V4}"]})
        beta = self.create_profile("beta", _PROGRAMS["beta"],
                                   {"filter/endpoints": [f"- {INTERNET_V4}"]})
        report, event = self.connect("alpha", INTERNET_V4)
        self.assertEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")
        self.assertEqual(event["profile"]["name"], "alpha", json.dumps(event))
        self.assertIn("(app, profile 'alpha')", event["reason"])
        report, event = self.connect("beta", INTERNET_V4)
        self.assertNotEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")
        self.assertEqual(event["verdict"], "block", json.dumps(event))
        self.assertEqual(event["profile"]["id"], beta["id"], json.dumps(event))
        self.assertIn(f"rule '- {INTERNET_V4}' (app, profile 'beta')", event["reason"])
        # The rule counts its match, kept with the profile.
        shown = self.api_ok("GET", f"/api/v1/profiles/{encoded(beta['id'])}")
        self.assertTrue(shown["lastSeen"], shown)
        statistics = [s for s in shown["ruleStatistics"] if s["rule"] == f"- {INTERNET_V4}"]
        self.assertEqual(len(statistics), 1, shown)
        self.assertGreaterEqual(statistics[0]["matches"], 1, shown)
        self.assertEqual(statistics[0]["list"], "endpoints", shown)

    def test_unknown_application_gets_its_own_profile(self):
        self.start()
        _, event = self.connect("gamma", INTERNET_V4)
        profile_id = event["profile"]["id"]
        shown = self.api_ok("GET", f"/api/v1/profiles/{encoded(profile_id)}")
        self.assertEqual(shown["source"], "auto", shown)
        self.assertEqual(shown["fingerprints"],
                         [{"type": "path", "operation": "equals",
                           "value": str(_PROGRAMS["gamma"])}], shown)
        self.assertEqual(shown["name"], "gamma-client", shown)
        self.assertTrue(shown["firstSeen"] and shown["lastSeen"], shown)

    def test_script_versus_interpreter(self):
        self.start()
        script = _PROGRAMS["script"]
        self.api_ok("POST", "/api/v1/profiles", {
            "name": "fetch script",
            "fingerprints": [{"type": "tag", "key": "script", "operation": "equals",
                              "value": str(script)}],
            "settings": {"filter/endpoints": [f"- {INTERNET_V4}"]}})
        blocked = self.world.run("client", [sys.executable, script, "tcp", INTERNET_V4,
                                            ECHO_PORT, "--timeout", "2"])
        self.assertNotEqual(json.loads(blocked.stdout.splitlines()[-1])["outcome"], "ok",
                            blocked.stdout + self.daemon.describe())
        event = self.decided(lambda e: (e.get("process") or {}).get("identity") == str(script),
                             "the script's connection")
        self.assertEqual(event["profile"]["name"], "fetch script", json.dumps(event))
        self.assertEqual(event["verdict"], "block", json.dumps(event))
        # The interpreter itself, running other code, is another application.
        code = ("import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])),"
                " timeout=3); s.sendall(b'x\\n'); print(s.recv(2))")
        allowed = self.world.run("client", [sys.executable, "-c", code, INTERNET_V4, ECHO_PORT])
        self.assertEqual(allowed.returncode, 0, allowed.stderr + self.daemon.describe())
        event = self.decided(lambda e: (e.get("process") or {}).get("identity")
                             == os.path.realpath(sys.executable), "the interpreter's connection")
        self.assertEqual(event["verdict"], "accept", json.dumps(event))
        self.assertNotEqual(event["profile"]["name"], "fetch script", json.dumps(event))


class ScopeTest(ProfilesCase):
    DESTINATIONS = {"Internet": PUBLIC_V4, "LAN": INTERNET_V4, "Localhost": "127.0.0.1"}

    def outcomes(self):
        found = {}
        for scope, address in self.DESTINATIONS.items():
            port = LOCAL_ECHO_PORT if scope == "Localhost" else ECHO_PORT
            report, event = self.connect("alpha", address, port)
            found[scope] = (report["outcome"] == "ok", event["reason"])
        return found

    def check(self, setting, blocked_scope):
        daemon = self.start({f"filter/{setting}": True})
        found = self.outcomes()
        for scope, (ok, reason) in found.items():
            if scope == blocked_scope:
                self.assertFalse(ok, f"{setting}: {scope} should be blocked: {found}")
                self.assertIn(setting, reason, found)
            else:
                self.assertTrue(ok, f"{setting}: {scope} should pass: {found}\n"
                                f"{daemon.describe()}")
        self.stop(daemon)

    def test_block_internet(self):
        self.check("blockInternet", "Internet")

    def test_block_lan(self):
        self.check("blockLAN", "LAN")

    def test_block_local(self):
        self.check("blockLocal", "Localhost")


class InboundTest(ProfilesCase):
    def inbound(self):
        """A connection from the internet namespace to the client's listener."""
        listener = self.world._start_echo("client", [CLIENT_V4],  # noqa: SLF001
                                          [LISTENER_PORT], [])
        try:
            probe = self.world.tcp(CLIENT_V4, LISTENER_PORT, namespace="internet", timeout=2)
        finally:
            listener.kill()
            listener.wait(timeout=5)
        event = self.decided(lambda e: e.get("direction") == "inbound"
                             and (e.get("local") or {}).get("port") == LISTENER_PORT,
                             "the inbound connection")
        return probe, event

    def test_block_inbound_by_default(self):
        self.start()
        probe, event = self.inbound()
        self.assertNotEqual(probe.outcome, "ok", str(probe))
        self.assertEqual(event["verdict"], "drop", json.dumps(event))
        self.assertIn("blockInbound", event["reason"])

    def test_service_endpoints_permit_inbound(self):
        self.start({"filter/serviceEndpoints": [f"+ * tcp/{LISTENER_PORT}"]})
        probe, event = self.inbound()
        self.assertEqual(probe.outcome, "ok", f"{probe}\n{json.dumps(event)}")
        self.assertIn(f"+ * tcp/{LISTENER_PORT}", event["reason"])


# A discovery client: one datagram to the SSDP multicast group from a fixed local port, then
# the first unicast answer from any device (printed as JSON).
DISCOVERY_CLIENT = """
import json, socket, sys
local_port, timeout = int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], local_port))
s.sendto(b"M-SEARCH * HTTP/1.1", ("239.255.255.250", 1900))
print(json.dumps({"sent": True}), flush=True)
s.settimeout(timeout)
try:
    data, sender = s.recvfrom(2048)
    print(json.dumps({"outcome": "ok", "from": sender[0], "data": data.decode()}), flush=True)
except OSError as error:
    print(json.dumps({"outcome": "error", "detail": str(error)}), flush=True)
"""

# A device's unicast answer to the client's port, from the internet namespace (a LAN address).
DEVICE_ANSWER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 1900))
s.sendto(b"HTTP/1.1 200 OK", (sys.argv[2], int(sys.argv[3])))
"""


class BroadcastReplyTest(ProfilesCase):
    """The devices' unicast answers to a multicast of this process pass blockInbound (decide()
    step "broadcast reply"); the same datagram to a port that sent nothing does not."""

    def discover(self, timeout):
        local_port = next(_PORTS)
        client = self.world.spawn("client", [sys.executable, "-c", DISCOVERY_CLIENT, CLIENT_V4,
                                             local_port, timeout], text=True)
        self.assertEqual(json.loads(client.stdout.readline()), {"sent": True})
        return client, local_port

    def answer(self, local_port):
        self.world.run("internet", [sys.executable, "-c", DEVICE_ANSWER, INTERNET_V4, CLIENT_V4,
                                    str(local_port)])

    def test_a_devices_answer_to_a_multicast_is_permitted(self):
        self.start()
        client, local_port = self.discover(timeout=10)
        sent = self.decided_for_port(local_port, "the multicast")
        self.assertEqual(sent["verdict"], "accept", json.dumps(sent))
        self.answer(local_port)
        stdout, _ = client.communicate(timeout=20)
        report = json.loads(stdout.splitlines()[-1])
        answered = self.decided(lambda e: e.get("direction") == "inbound"
                                and (e.get("local") or {}).get("port") == local_port,
                                "the device's answer")
        self.assertEqual(report.get("outcome"), "ok", f"{report}\n{json.dumps(answered)}")
        self.assertEqual(report["from"], INTERNET_V4)
        self.assertEqual(answered["verdict"], "accept", json.dumps(answered))
        self.assertIn("broadcast to 239.255.255.250", answered["reason"])

    def test_the_same_datagram_to_a_port_that_sent_nothing_is_dropped(self):
        self.start()
        listener = self.world.spawn("client", [_PROGRAMS["alpha"], "udp-listen", str(LISTENER_PORT),
                                               "--timeout", "5"], text=True)
        self.assertIn("listening", listener.stdout.readline())
        self.answer(LISTENER_PORT)
        dropped = self.decided(lambda e: e.get("direction") == "inbound"
                               and (e.get("local") or {}).get("port") == LISTENER_PORT,
                               "the unsolicited datagram")
        self.assertEqual(dropped["verdict"], "drop", json.dumps(dropped))
        self.assertIn("blockInbound", dropped["reason"])
        listener.kill()
        listener.wait(timeout=5)


class PeerToPeerTest(ProfilesCase):
    def resolve_and_connect(self, name):
        """p2p-client (getaddrinfo, then connect): returns (connected report, decided event)."""
        local_port = next(_PORTS)
        completed = self.world.run("client", [_PROGRAMS["p2p"], name, ECHO_PORT,
                                              "--source-port", local_port, "--timeout", "3"])
        lines = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
        connected = [line for line in lines if line.get("mode") == "connected"]
        self.assertTrue(connected, f"{completed.stdout}{completed.stderr}")
        event = self.decided_for_port(local_port, f"p2p-client {name}")
        return connected[0], event

    def test_direct_ip_blocked_resolved_ip_permitted(self):
        self.start({"filter/blockP2P": True})
        report, event = self.resolve_and_connect(PUBLIC_V4)
        self.assertNotEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")
        self.assertIn("blockP2P", event["reason"])
        # The same program resolves the name first: its own DNS answer leads to the address.
        report, event = self.resolve_and_connect(f"public.{d.ZONE}")
        self.assertEqual(report["outcome"], "ok",
                         f"{report}\n{json.dumps(event)}\n{self.daemon.describe()}")
        self.assertEqual(event.get("domain"), f"public.{d.ZONE}", json.dumps(event))
        # A LAN address needs no DNS answer: blockP2P is about the Internet.
        report, event = self.resolve_and_connect(INTERNET_V4)
        self.assertEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")


class DnsTimeTest(ProfilesCase):
    def test_name_blocked_for_one_application_only(self):
        self.start()
        self.create_profile("dig one", _PROGRAMS["dig-one"],
                            {"filter/endpoints": [f"- blocked.{d.ZONE}"]})
        name = f"blocked.{d.ZONE}"
        one = self.world.run("client", [_PROGRAMS["dig-one"], "@127.0.0.17", name, "A", "+short",
                                        "+time=5", "+tries=1"])
        two = self.world.run("client", [_PROGRAMS["dig-two"], "@127.0.0.17", name, "A", "+short",
                                        "+time=5", "+tries=1"])
        self.assertEqual(one.stdout.split(), ["0.0.0.17"], one.stdout + self.daemon.describe())
        self.assertEqual(two.stdout.split(), [w.INTERNET_V4_ALT],
                         two.stdout + self.daemon.describe())


class AskTest(ProfilesCase):
    def test_permit_always_releases_the_held_connection_and_survives_a_restart(self):
        data_dir = Path(tempfile.mkdtemp(dir=_DIRECTORY))
        self.start({"filter/defaultAction": "ask"}, data_dir=data_dir)
        process, _ = self.hold("alpha", INTERNET_V4)
        prompt = self.prompt_event()[0]
        self.assertEqual(prompt["remote"]["ip"], INTERNET_V4, json.dumps(prompt))
        self.assertEqual(prompt["executable"], str(_PROGRAMS["alpha"]), json.dumps(prompt))
        self.assertIsNone(process.poll(), "the application waits, it is not refused")
        listed = self.api_ok("GET", "/api/v1/prompts")
        self.assertEqual([p["id"] for p in listed], [prompt["id"]], listed)
        answered_at = time.monotonic()
        self.api_ok("POST", f"/api/v1/prompts/{prompt['id']}/answer",
                    {"verdict": "permit", "for": "always"})
        stdout, _ = process.communicate(timeout=15)
        completed_after = time.monotonic() - answered_at
        report = json.loads(stdout.splitlines()[0])
        self.assertEqual(report["outcome"], "ok", f"{report}\n{self.daemon.describe()}")
        print(f"\nheld connection completed {completed_after * 1000:.0f} ms after the answer was "
              "sent (API round trip included)", file=sys.stderr)
        profile_id = prompt["profile"]["id"]
        shown = self.api_ok("GET", f"/api/v1/profiles/{encoded(profile_id)}")
        self.assertEqual(shown["settings"].get("filter/endpoints"), [f"+ {INTERNET_V4}"], shown)
        self.stop()
        # After a restart the rule decides at once: no prompt.
        self.start({"filter/defaultAction": "ask"}, data_dir=data_dir)
        report, event = self.connect("alpha", INTERNET_V4)
        self.assertEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")
        self.assertIn(f"rule '+ {INTERNET_V4}' (app", event["reason"])
        self.assertEqual(self.daemon.events("prompt"), [])

    def test_no_answer_blocks(self):
        self.start({"filter/defaultAction": "ask", "filter/askTimeout": 2})
        # The held connect() has retransmitted its SYN while it waited; the block is a reject
        # (icmp-host-prohibited) that reaches it: the application learns at once, it does not
        # wait for its own 30 s timeout.
        process, local_port = self.hold("alpha", INTERNET_V4, timeout=30)
        self.prompt_event("expired")
        stdout, _ = process.communicate(timeout=40)
        report = json.loads(stdout.splitlines()[0])
        self.assertEqual(report["outcome"], "error", stdout)
        self.assertIn("No route to host", report["detail"], stdout)
        event = self.decided_for_port(local_port, "the unanswered connection")
        self.assertIn("no answer", event["reason"])
        self.assertEqual(event["verdict"], "block", json.dumps(event))

    def test_other_applications_are_not_decided_by_an_open_prompt(self):
        self.start()
        self.create_profile("asker", _PROGRAMS["alpha"], {"filter/defaultAction": "ask"})
        process, _ = self.hold("alpha", INTERNET_V4)
        self.prompt_event()
        report, event = self.connect("beta", INTERNET_V4)
        self.assertEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")
        process.kill()
        process.wait(timeout=5)

    def test_prompt_flood_stays_bounded(self):
        self.start()
        self.create_profile("flood", _PROGRAMS["flood"], {"filter/defaultAction": "ask",
                                                          "filter/askTimeout": 30})
        # 100 destinations at once from one application (held packets never leave, so the
        # addresses need no host): the broker's per-application limit is 32 open prompts; the
        # rest are blocked at once with a reason.
        processes = [self.world.spawn("client", [_PROGRAMS["flood"], "udp-connected",
                                                 f"10.77.0.{100 + index}", ECHO_PORT,
                                                 "--timeout", "5"])
                     for index in range(100)]
        try:
            events = self.daemon.wait_for(
                lambda events: len([e for e in events if e.get("event") == "decided"
                                    and "too many open prompts" in e.get("reason", "")]) >= 60,
                20, "connections refused past the prompt limit")
            opened = [e for e in events if e.get("event") == "prompt"
                      and e.get("action") == "opened"]
            self.assertLessEqual(len(opened), 32, f"{len(opened)} prompts opened")
            self.assertGreater(len(opened), 0)
            listed = self.api_ok("GET", "/api/v1/prompts")
            self.assertLessEqual(len(listed), 32)
            self.assertTrue(self.daemon.alive())
        finally:
            for process in processes:
                process.kill()
                process.wait(timeout=5)


class PauseTest(ProfilesCase):
    """POST /api/v1/pause permits everything for a while (issue 11); resume, or the end of the
    duration, restores the rules."""

    def test_a_pause_permits_what_is_blocked_until_resume(self):
        self.start({"filter/defaultAction": "block"})
        report, event = self.connect("alpha", INTERNET_V4)
        self.assertNotEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")
        paused = self.api_ok("POST", "/api/v1/pause", {"duration": "10m"})
        self.assertTrue(paused["paused"], paused)
        self.assertTrue(paused["until"].endswith("Z"), paused)
        status = self.api_ok("GET", "/api/v1/status")
        self.assertTrue(status["paused"], status)
        self.assertEqual(status["pausedUntil"], paused["until"])
        report, event = self.connect("alpha", INTERNET_V4)
        self.assertEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")
        self.assertEqual(event["verdict"], "accept", json.dumps(event))
        self.assertIn("filtering paused until", event["reason"])
        self.assertIn("would block: default action: block", event["reason"])

        resumed = self.api_ok("POST", "/api/v1/resume")
        self.assertEqual(resumed, {"paused": False, "until": None})
        report, event = self.connect("alpha", INTERNET_V4)
        self.assertNotEqual(report["outcome"], "ok", f"{report}\n{json.dumps(event)}")
        self.assertIn("default action: block", event["reason"])
        self.assertEqual([e["paused"] for e in self.daemon.events("pause")], [True, False])

    def test_a_pause_releases_a_held_connection_and_ends_by_itself(self):
        self.start({"filter/defaultAction": "ask"})
        process, _ = self.hold("alpha", INTERNET_V4)
        self.prompt_event()
        self.api_ok("POST", "/api/v1/pause", {"duration": "3s"})
        stdout, _ = process.communicate(timeout=20)
        self.assertEqual(json.loads(stdout.splitlines()[0])["outcome"], "ok", stdout)
        self.daemon.wait_for(lambda events: any(e.get("event") == "pause" and not e["paused"]
                                                for e in events), 15, "the end of the pause")
        self.assertFalse(self.api_ok("GET", "/api/v1/status")["paused"])
        refused = self.api("POST", "/api/v1/pause", {"duration": "2d"})
        self.assertEqual(refused["status"], 400, refused)


class ReevaluationTest(ProfilesCase):
    def stream(self, protocol, host):
        process = self.world.spawn("client", [sys.executable, STREAM_CLIENT, protocol, host,
                                              ECHO_PORT, "--duration", "20"], text=True)
        first = json.loads(process.stdout.readline())
        self.assertTrue(first.get("ready"), first)
        return process, first["localPort"]

    def lines_until(self, process, until):
        lines = []
        while time.monotonic() < until:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(json.loads(line))
        return lines

    def check_stream_is_cut(self, protocol, host):
        self.start()
        process, local_port = self.stream(protocol, host)
        try:
            event = self.decided_for_port(local_port, f"the {protocol} stream")
            before = self.lines_until(process, time.monotonic() + 1.0)
            self.assertTrue(before and all(line["ok"] for line in before), before)
            changed_at = time.monotonic()
            self.set_profile_setting(event["profile"]["id"], "filter/endpoints",
                                     [f"- {host}"])
            after = self.lines_until(process, time.monotonic() + 3.0)
            last_ok = max((line["at"] for line in after if line["ok"]), default=changed_at)
            failed = [line for line in after if not line["ok"]]
            self.assertTrue(failed, f"the stream still carries data: {after[-5:]}\n"
                            f"{self.daemon.describe()}")
            ok_late = [line for line in after if line["ok"] and line["at"] > changed_at + 2.0]
            self.assertEqual(ok_late, [], "data still flows 2 s after the rule")
            print(f"\n{protocol} {host}: last data {1000 * (last_ok - changed_at):.0f} ms after "
                  "the rule change (API round trip included)", file=sys.stderr)
        finally:
            process.kill()
            process.wait(timeout=5)

    def test_running_tcp_stream_v4(self):
        self.check_stream_is_cut("tcp", INTERNET_V4)

    def test_running_tcp_stream_v6(self):
        self.check_stream_is_cut("tcp", INTERNET_V6)

    def test_blocked_udp_flow_is_permitted_by_a_new_rule(self):
        self.start({"filter/endpoints": [f"- {INTERNET_V4} udp"]})
        process, local_port = self.stream("udp", INTERNET_V4)
        try:
            event = self.decided_for_port(local_port, "the blocked udp flow")
            self.assertEqual(event["verdict"], "block", json.dumps(event))
            before = self.lines_until(process, time.monotonic() + 1.0)
            self.assertFalse(any(line["ok"] for line in before), before)
            self.set_profile_setting(event["profile"]["id"], "filter/endpoints",
                                     [f"+ {INTERNET_V4} udp"])
            after = self.lines_until(process, time.monotonic() + 3.0)
            self.assertTrue(any(line["ok"] for line in after),
                            f"the flow is still blocked: {after[-5:]}\n{self.daemon.describe()}")
        finally:
            process.kill()
            process.wait(timeout=5)


class ContainerTest(ProfilesCase):
    def test_a_containers_process_is_not_the_hosts(self):
        """The same executable in a cgroup that looks like a Docker container's scope gets a
        profile of its own: a container's `ping` is not the host's `ping`."""
        self.start()
        _, host_event = self.connect("boxed", INTERNET_V4)
        container_id = "ab" * 32
        scope = Path(_CGROUP.path) / f"docker-{container_id}.scope"
        scope.mkdir()
        self.addCleanup(lambda: scope.exists() and scope.rmdir())
        local_port = next(_PORTS)
        # The shell moves itself into the container's cgroup, then execs the client.
        completed = self.world.run("client", [
            "nsenter", f"--mount=/proc/{os.getpid()}/ns/mnt", "--", "sh", "-c", f"echo $$ > {scope}/cgroup.procs && exec {_PROGRAMS['boxed']} tcp "
            f"{INTERNET_V4} {ECHO_PORT} --source-port {local_port} --timeout 3"])
        self.assertEqual(completed.returncode, 0, completed.stderr)
        event = self.decided_for_port(local_port, "the container's connection")
        self.assertNotEqual(event["profile"]["id"], host_event["profile"]["id"],
                            f"{json.dumps(host_event)}\n{json.dumps(event)}")
        shown = self.api_ok("GET", f"/api/v1/profiles/{encoded(event['profile']['id'])}")
        self.assertIn(container_id[:12], json.dumps(shown), shown)


class StorageTest(ProfilesCase):
    def test_corrupt_database_is_a_start_error_naming_the_file(self):
        data_dir = Path(tempfile.mkdtemp(dir=_DIRECTORY))
        database = data_dir / "portwarden.db"
        database.write_bytes(b"this is not a SQLite database" * 100)
        daemon = self.start(data_dir=data_dir, wait=False)
        code = daemon.process.wait(timeout=15)
        self.assertEqual(code, 1, daemon.describe())
        self.assertIn(str(database), daemon.stderr())
        self.assertEqual(database.read_bytes(), b"this is not a SQLite database" * 100,
                         "the file must never be replaced")
        self.assertEqual(w.our_rules(self.world.rules()), [], "no rules left behind")

    def test_bad_api_requests_are_refused_and_change_nothing(self):
        self.start()
        created = self.create_profile("alpha", _PROGRAMS["alpha"],
                                      {"filter/endpoints": [f"- {INTERNET_V4}"]})
        rules = f"/api/v1/profiles/{encoded(created['id'])}/rules"
        bad = [
            ("POST", rules, {"rule": 5}),
            ("POST", rules, {"rule": "+ example.com", "position": "first"}),
            ("POST", rules, {"rule": "+ example.com", "position": -1}),
            ("POST", rules, {"rule": "+ example.com", "list": "inbound"}),
            ("POST", rules, {"rule": "+ exa mple.com tcp/http tcp"}),
            ("DELETE", rules, {"rule": ["- 10.77.0.2"]}),
            ("POST", "/api/v1/profiles", {"name": 7, "fingerprints": []}),
            ("POST", "/api/v1/profiles", {"name": "x", "id": 7, "fingerprints": []}),
            ("POST", "/api/v1/profiles", {"name": "x", "fingerprints": [{"type": "smell"}]}),
            ("PATCH", f"/api/v1/profiles/{encoded(created['id'])}", {"name": []}),
            ("PATCH", f"/api/v1/profiles/{encoded(created['id'])}", {"settings": "all"}),
            ("PUT", f"/api/v1/profiles/{encoded(created['id'])}/settings/"
                    f"{encoded('filter/defaultAction')}", {"value": "maybe"}),
            ("PUT", f"/api/v1/profiles/{encoded(created['id'])}/settings/"
                    f"{encoded('dns/nameservers')}", {"value": []}),
            ("PUT", f"/api/v1/settings/{encoded('filter/blockP2P')}", {"value": "yes"}),
        ]
        for method, path, body in bad:
            with self.subTest(method=method, path=path, body=body):
                reply = self.api(method, path, body)
                self.assertIn(reply["status"], (400, 409), reply)
                self.assertTrue((reply.get("body") or {}).get("error"), reply)
        self.assertTrue(self.daemon.alive(), self.daemon.describe())
        shown = self.api_ok("GET", f"/api/v1/profiles/{encoded(created['id'])}")
        self.assertEqual(shown["name"], "alpha", shown)
        self.assertEqual(shown["settings"], {"filter/endpoints": [f"- {INTERNET_V4}"]}, shown)
        settings = self.api_ok("GET", "/api/v1/settings")
        p2p = [s for s in settings if s["key"] == "filter/blockP2P"]
        self.assertEqual((p2p[0]["value"], p2p[0]["layer"]), (False, "default"), p2p)

    def test_settings_survive_a_kill(self):
        data_dir = Path(tempfile.mkdtemp(dir=_DIRECTORY))
        daemon = self.start(data_dir=data_dir)
        created = self.create_profile("alpha", _PROGRAMS["alpha"],
                                      {"filter/endpoints": [f"- {INTERNET_V4}"]})
        self.api_ok("PUT", f"/api/v1/settings/{encoded('filter/blockP2P')}", {"value": True})
        daemon.kill()
        self.world.portwarden(["iptables", "remove"])
        self.start(data_dir=data_dir)
        shown = self.api_ok("GET", f"/api/v1/profiles/{encoded(created['id'])}")
        self.assertEqual(shown["settings"], {"filter/endpoints": [f"- {INTERNET_V4}"]})
        settings = self.api_ok("GET", "/api/v1/settings")
        p2p = [s for s in settings if s["key"] == "filter/blockP2P"]
        self.assertEqual(p2p[0]["value"], True, p2p)
        self.assertEqual(p2p[0]["layer"], "store", p2p)


if __name__ == "__main__":
    unittest.main()
