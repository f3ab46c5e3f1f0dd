"""Attribution hardening (issue 10 items 8 and 9) with real processes in the test namespaces.

1. A reused UDP 5-tuple. A permitted program sends from a fixed local port to the echo service
   and exits; a blocked program sends from the same port to the same destination right after.
   The flow's conntrack entry still carries the first program's permanent accept: before the fix
   the second program's datagrams rode it (all echoed, no event). Now the eBPF records report the
   new sender, the daemon decides the connection again for the second program and cuts the
   entry's mark over: a "decided" event names it, and its datagrams after the first few (sent
   before the daemon could read the report) are blocked.
2. No cgroup v2 mount visible. The daemon runs in a mount namespace of its own in which
   /sys/fs/cgroup is a tmpfs (`unshare --mount` + `mount -t tmpfs`, inside that namespace only:
   the host's mounts are never touched) and must still attribute with eBPF, through a cgroup2 it
   mounts privately for the moment of attaching, instead of falling back to the socket tables.
   It also runs in a cgroup namespace of its own (`unshare --cgroup`) whose root is the test's
   own cgroup, so that the root of that private mount -- where the programs attach -- is the
   test's cgroup, never the host's cgroup v2 root (checked with bpftool).

The eBPF programs are attached to a cgroup of the test's own only (world.TestCgroup), as in
test_attribution.py.

Run: ctest --test-dir build/release -R integration_attribution_hardening --output-on-failure
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
from pathlib import Path

import world as w
from world import INTERNET_V4

ECHO_PORT = 9000
EVENT_TIMEOUT = 8.0
CLIENT_SOURCE = w.TOOLS / "attribution_client.c"
REUSER_SOURCE = w.TOOLS / "udp_reuser.c"
API_CLIENT = w.TOOLS / "api_client.py"
# The second sender's first datagrams may leave before the daemon has read the kernel's report
# (it reacts in well under a millisecond, but the report and the datagram race): the ones after
# these must be blocked.
RACE_ALLOWANCE = 2
_PORTS = itertools.count(26000)

_ROOT_RULES_BEFORE = None
_CGROUP = None
_DIRECTORY = None
_PROGRAMS = {}


def missing_tools():
    for tool in ("cc", "nsenter", "unshare", "bpftool", "sh"):
        if shutil.which(tool) is None:
            return f"{w.SKIP_MESSAGE}: `{tool}` not found in PATH"
    return None


def compile_to(source, destination):
    destination.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    built = subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-o", destination, source],
                           capture_output=True, text=True, timeout=60, check=False)
    if built.returncode != 0:
        raise RuntimeError(f"cc {source} failed:\n{built.stderr}")
    destination.chmod(0o755)


def setUpModule():
    global _ROOT_RULES_BEFORE, _CGROUP, _DIRECTORY
    reason = w.missing_prerequisite(need_daemon=True) or missing_tools()
    if reason:
        w.skip_suite(reason)
    _ROOT_RULES_BEFORE = w.root_namespace_rules()
    _CGROUP = w.suite_cgroup()
    _DIRECTORY = Path(os.path.realpath(tempfile.mkdtemp(prefix=f"pwt-hardening-{os.getpid()}-")))
    _DIRECTORY.chmod(0o755)
    # One program under two paths: two applications with a profile each.
    _PROGRAMS["permitted"] = _DIRECTORY / "bin" / "permitted-sender"
    _PROGRAMS["blocked"] = _DIRECTORY / "opt" / "blocked" / "blocked-sender"
    compile_to(REUSER_SOURCE, _PROGRAMS["permitted"])
    _PROGRAMS["blocked"].parent.mkdir(mode=0o755, parents=True)
    shutil.copyfile(_PROGRAMS["permitted"], _PROGRAMS["blocked"])
    _PROGRAMS["blocked"].chmod(0o755)
    _PROGRAMS["client"] = _DIRECTORY / "bin" / "hidden-cgroup-client"
    compile_to(CLIENT_SOURCE, _PROGRAMS["client"])


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


class HardeningCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)
        self.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=(ECHO_PORT,))
        self.daemon = None

    def stop_daemon(self):
        code = self.daemon.stop(signal.SIGTERM)
        self.assertEqual(code, 0, f"exit code after SIGTERM\n{self.daemon.describe()}")

    def decided(self, predicate, what, timeout=EVENT_TIMEOUT):
        def matching(events):
            return [event for event in events
                    if event.get("event") == "decided" and predicate(event)]
        try:
            events = self.daemon.wait_for(matching, timeout, what)
        except w.DaemonError as error:
            shown = "\n".join(json.dumps(e) for e in self.daemon.events("decided")[-20:])
            raise AssertionError(f"no decided event for {what}\n{shown}\n{error}") from None
        return matching(events)[0]


def local_port_is(port):
    return lambda event: (event.get("local") or {}).get("port") == port


class ReusedUdpFlowTest(HardeningCase):
    def api(self, method, path, body=None):
        argv = [sys.executable, API_CLIENT, method, path]
        if body is not None:
            argv.append(json.dumps(body))
        completed = self.world.run("client", argv, timeout=20)
        try:
            return json.loads(completed.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"status": 0, "error": f"rc={completed.returncode} {completed.stderr}"}

    def wait_for_api(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            reply = self.api("GET", "/api/v1/status")
            if reply["status"] == 200:
                return
            if time.monotonic() > deadline or not self.daemon.alive():
                raise AssertionError(f"the API does not answer: {reply}\n"
                                     f"{self.daemon.describe()}")
            time.sleep(0.1)

    def send(self, role, local_port, count, interval_ms):
        argv = [_PROGRAMS[role], INTERNET_V4, str(ECHO_PORT), str(local_port), str(count),
                str(interval_ms)]
        completed = self.world.run("client", argv, timeout=30)
        try:
            return json.loads(completed.stdout.splitlines()[0])
        except (IndexError, json.JSONDecodeError):
            self.fail(f"{role}: rc={completed.returncode} {completed.stdout!r} "
                      f"{completed.stderr!r}")

    def test_blocked_program_reusing_a_permitted_programs_udp_flow_is_decided_again(self):
        self.daemon = w.start_daemon_seeing_host_mounts(
            self.world, {"filter/defaultAction": "permit"},
            ["--attribution", "auto", "--bpf-cgroup", str(_CGROUP.path)])
        self.wait_for_api()
        created = self.api("POST", "/api/v1/profiles", {
            "name": "blocked-sender",
            "fingerprints": [{"type": "path", "operation": "equals",
                              "value": str(_PROGRAMS["blocked"])}],
            "settings": {"filter/endpoints": [f"- {INTERNET_V4}"]}})
        self.assertIn(created["status"], (200, 201), created)

        port = next(_PORTS)
        first = self.send("permitted", port, 3, 200)
        self.assertTrue(all(first["echoes"]), f"the permitted program: {first}")
        accepted = self.decided(local_port_is(port), f"permitted sender from port {port}")
        self.assertEqual(accepted["process"]["pid"], first["pid"], json.dumps(accepted))
        self.assertEqual(accepted["verdict"], "accept", json.dumps(accepted))
        self.assertTrue(accepted["permanent"], json.dumps(accepted))

        # Right after it: the same local port, the same destination, while the flow's conntrack
        # entry still holds the permanent accept.
        second = self.send("blocked", port, 10, 150)
        blocked = self.decided(
            lambda event: local_port_is(port)(event)
            and (event.get("process") or {}).get("pid") == second["pid"],
            f"blocked sender reusing port {port}")
        self.assertEqual(blocked["process"].get("executable"), str(_PROGRAMS["blocked"]),
                         json.dumps(blocked))
        self.assertEqual(blocked["verdict"], "block", json.dumps(blocked))
        self.assertEqual(blocked["direction"], "outbound", json.dumps(blocked))
        self.assertIn("new sender on a live UDP flow", blocked["reason"], json.dumps(blocked))
        print(f"\nblocked sender's echoes: {second['echoes']}", file=sys.stderr)
        self.assertFalse(any(second["echoes"][RACE_ALLOWANCE:]),
                         f"the blocked program rode the permitted one's verdict: {second}\n"
                         f"{self.daemon.describe()}")
        self.stop_daemon()
        stats = self.daemon.events("stats")
        self.assertTrue(stats, self.daemon.describe())
        self.assertGreaterEqual(stats[-1]["attribution"].get("newUdpOwners", 0), 1, stats[-1])


class HiddenCgroupMountTest(HardeningCase):
    def start_daemon_without_cgroup_mount(self):
        """`portwarden run --attribution auto` (no --bpf-cgroup) in the client network
        namespace, in a mount namespace of its own where /sys/fs/cgroup is an empty tmpfs, and in
        a cgroup namespace whose root is the test's cgroup."""
        self.assertEqual(Path(w.cgroup2_root()) / w.own_cgroup2_path().lstrip("/"),
                         _CGROUP.path, "the test runner must be inside its own cgroup")
        config_path = self.world.write_config(w.with_test_upstream(
            {"filter/defaultAction": "permit"}))
        directory = config_path.parent
        events_path = directory / "events.jsonl"
        stderr_path = directory / "stderr.log"
        hide_and_run = 'mount -t tmpfs pwt-hidden-cgroup /sys/fs/cgroup && exec "$0" "$@"'
        argv = ["unshare", "--mount", "--cgroup", "--propagation", "private", "--",
                "sh", "-c", hide_and_run,
                self.world.portwarden_bin, "run", "--config", config_path,
                "--events", events_path,
                *w.hermetic_args(["--attribution", "auto"], directory)]
        with open(stderr_path, "wb") as stderr, open(directory / "stdout.log", "wb") as stdout:
            process = self.world.spawn("client", argv, stdout=stdout, stderr=stderr)
        self.daemon = w.Daemon(self.world, process, directory, config_path, events_path,
                               stderr_path)
        self.world.daemons.append(self.daemon)
        self.daemon.wait_started(15.0)

    def attached_programs(self, cgroup):
        completed = subprocess.run(["bpftool", "cgroup", "show", str(cgroup)],
                                   capture_output=True, text=True, timeout=10, check=False)
        return completed.stdout

    def test_attributes_with_ebpf_through_a_private_cgroup2_mount(self):
        self.start_daemon_without_cgroup_mount()
        log = self.daemon.stderr()
        self.assertIn("private_mount=true", log, self.daemon.describe())
        self.assertNotIn("attribution_ebpf_unavailable", log, self.daemon.describe())
        # Attached to the test's cgroup (the root of the daemon's cgroup namespace), not to the
        # host's cgroup v2 root.
        self.assertIn("pw_sendmsg4", self.attached_programs(_CGROUP.path))
        self.assertNotIn("pw_sendmsg4", self.attached_programs(w.cgroup2_root()))
        # The private mount is gone once the programs are attached.
        self.assertEqual(list(Path("/run/portwarden").glob("cgroup2-*"))
                         if Path("/run/portwarden").is_dir() else [], [])

        port = next(_PORTS)
        # A TCP round trip: the process is alive when its flow record is read ("ebpf"; a
        # sender already gone would be named from its exec record instead).
        completed = self.world.run("client", [_PROGRAMS["client"], "tcp", INTERNET_V4,
                                              str(ECHO_PORT), "--source-port", str(port)],
                                   timeout=20)
        report = json.loads(completed.stdout.splitlines()[0])
        self.assertEqual(report["outcome"], "ok", report)
        event = self.decided(local_port_is(port), f"TCP from port {port}")
        process = event.get("process") or {}
        self.assertEqual(process.get("source"), "ebpf", json.dumps(event))
        self.assertEqual(process.get("pid"), report["pid"], json.dumps(event))
        self.assertEqual(process.get("executable"), str(_PROGRAMS["client"]), json.dumps(event))
        self.stop_daemon()


if __name__ == "__main__":
    unittest.main()
