"""Hardening of the daemon (issue 10 items 1, 2, 3 and 7): signals, stops, rules changed behind
the daemon's back, and small things that misled.

Every test builds its own World (world.py) or shares its class's; the daemon runs in the client
namespace, and every iptables command a test runs to tamper with the rules runs there too.
Nothing runs in the root namespace except read-only `iptables-save`, which tearDownModule uses
to prove exactly that.

Run: ctest --test-dir build/release -R integration_hardening_daemon --output-on-failure
 or: sudo PORTWARDEN_BIN=build/release/src/cli/portwarden \
        python3 -m unittest -v test_hardening_daemon   (from tests/integration)
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import world as w
from world import INTERNET_V4, INTERNET_V6

TIMEOUT = 1.5
ECHO_PORT, BLOCKED_PORT = 9000, 9001
# Issue 10 item 3: the rules are restored within 5 s of a change.
RESTORE_WITHIN = 5.0
# The exit code of a stop that left rules behind (src/daemon/daemon.h kExitRulesLeft).
EXIT_RULES_LEFT = 3

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


def blocking_config(permanent=True):
    """Permit by default, reject TCP and UDP to port 9001 (both families)."""
    return {"filter": {"defaultAction": "permit", "permanentVerdicts": permanent,
                       "outboundBlockAction": "reject", "blockInbound": False,
                       "endpoints": [f"- * tcp/{BLOCKED_PORT}", f"- * udp/{BLOCKED_PORT}"]}}


# Every daemon here runs without process attribution: these tests are about the kernel rules and
# the process, not about who connects, and eBPF would attach to the host's cgroup root.
LIGHT = ("--attribution", "off")


def start_daemon_with(world, config, extra_args=(), env=None, events="file"):
    """World.start_daemon with an environment of our own (PATH for a fake iptables-restore) or
    events on standard output (events="-"); returns a world.Daemon (stdout: a pipe when "-")."""
    config_path = world.write_config(w.with_test_upstream(config))
    directory = config_path.parent
    events_path = directory / "events.jsonl"
    stderr_path = directory / "stderr.log"
    argv = [world.portwarden_bin, "run", "--config", config_path,
            "--events", events_path if events == "file" else "-",
            *w.hermetic_args(list(LIGHT) + list(extra_args), directory)]
    with open(stderr_path, "wb") as stderr:
        kwargs = {"stderr": stderr, "env": env}
        kwargs["stdout"] = subprocess.PIPE if events == "-" else subprocess.DEVNULL
        process = world.spawn("client", argv, **kwargs)
    daemon = w.Daemon(world, process, directory, config_path, events_path, stderr_path)
    world.daemons.append(daemon)
    return daemon


def refusing_iptables_restore(world):
    """An iptables-restore found first in PATH that fails while the returned flag file exists.
    Returns (flag path, environment for the daemon)."""
    tools = Path(tempfile.mkdtemp(prefix="tools-", dir=world.directory))
    flag = tools / "refuse"
    real = shutil.which("iptables-restore")
    wrapper = tools / "iptables-restore"
    wrapper.write_text(f"#!/bin/sh\nif [ -e {flag} ]; then echo 'refused by the test' >&2; "
                       f"exit 1; fi\nexec {real} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return flag, {**os.environ, "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


class HardeningCase(unittest.TestCase):
    maxDiff = None

    def assert_outcome(self, result, expected, daemon=None):
        context = f"\n{daemon.describe()}" if daemon else ""
        self.assertEqual(result.outcome, expected, f"probe {result}{context}")

    def assert_filtering(self, world, daemon, what=""):
        """A permitted connection passes and a blocked one is rejected, in both families."""
        results = world.probes([("tcp", INTERNET_V4, ECHO_PORT, {"timeout": TIMEOUT}),
                                ("tcp", INTERNET_V4, BLOCKED_PORT, {"timeout": TIMEOUT}),
                                ("tcp", INTERNET_V6, ECHO_PORT, {"timeout": TIMEOUT}),
                                ("tcp", INTERNET_V6, BLOCKED_PORT, {"timeout": TIMEOUT})])
        for result, expected in zip(results, ("ok", "unreachable", "ok", "unreachable")):
            with self.subTest(what=what, probe=str(result)):
                self.assert_outcome(result, expected, daemon)
        self.assertTrue(daemon.alive(), f"{what}: daemon died\n{daemon.describe()}")

    def assert_stops_cleanly(self, world, daemon, signum=signal.SIGTERM):
        code = daemon.stop(signum)
        self.assertEqual(code, 0, f"exit code after signal {signum}\n{daemon.describe()}")
        self.assertEqual(w.our_rules(world.rules()), [],
                         f"rules left behind after signal {signum}\n{world.rules()}")


class SignalTest(HardeningCase):
    """Item 1: no signal that a user, a log rotator or a pipe sends ends the daemon with its
    rules in place."""

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)
        self.world.start_echo_services(tcp_ports=(ECHO_PORT, BLOCKED_PORT), udp_ports=())

    def test_every_non_stop_signal_keeps_the_daemon_filtering(self):
        daemon = start_daemon_with(self.world, blocking_config())
        daemon.wait_started()
        self.assert_filtering(self.world, daemon, "before any signal")
        signals = [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
                   signal.SIGPIPE, signal.SIGXFSZ, signal.SIGVTALRM, signal.SIGPROF,
                   signal.SIGIO, signal.SIGPWR, signal.SIGRTMIN, signal.SIGRTMAX]
        for signum in signals:
            name = signal.Signals(signum).name
            os.kill(daemon.pid, signum)
            time.sleep(0.2)
            self.assertTrue(daemon.alive(), f"{name} ended the daemon\n{daemon.describe()}")
            self.assertTrue(w.our_rules(self.world.rules()), f"{name}: rules gone")
            self.assert_filtering(self.world, daemon, f"after {name}")
        # SIGUSR1 writes a stats event (and the one at stop follows).
        stats = daemon.events("stats")
        self.assertGreaterEqual(len(stats), 1, f"SIGUSR1: a stats event\n{daemon.describe()}")
        self.assert_stops_cleanly(self.world, daemon)
        self.assertIn("signal=HUP", daemon.stderr())

    def test_sighup_reopens_a_rotated_events_file(self):
        # What logrotate does without copytruncate: move the file away, then SIGHUP.
        daemon = start_daemon_with(self.world, blocking_config())
        daemon.wait_started()
        self.assert_outcome(self.world.tcp(INTERNET_V4, ECHO_PORT), "ok", daemon)
        rotated = daemon.events_path.with_name("events.jsonl.rotated")
        os.rename(daemon.events_path, rotated)
        os.kill(daemon.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not daemon.events_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(daemon.events_path.exists(),
                        f"SIGHUP made no new events file\n{daemon.describe()}")
        self.assert_outcome(self.world.tcp(INTERNET_V4, BLOCKED_PORT), "unreachable", daemon)

        def to_port(events, port):
            return [event for event in events if (event.get("remote") or {}).get("port") == port]

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not to_port(daemon.events("decided"), BLOCKED_PORT):
            time.sleep(0.1)
        self.assertTrue(to_port(daemon.events("decided"), BLOCKED_PORT),
                        f"the new file has the decision made after SIGHUP\n{daemon.describe()}")
        self.assertFalse(to_port(daemon.events("decided"), ECHO_PORT),
                         "the new file starts empty: the earlier decision is in the old one")
        old = [json.loads(line) for line in rotated.read_text().splitlines() if line.strip()]
        self.assertTrue(to_port([e for e in old if e.get("event") == "decided"], ECHO_PORT),
                        "the rotated file keeps what was written before")
        self.assertIn("events_reopened", daemon.stderr())
        self.assert_stops_cleanly(self.world, daemon)

    def test_sigquit_stops_cleanly(self):
        daemon = start_daemon_with(self.world, blocking_config())
        daemon.wait_started()
        self.assert_stops_cleanly(self.world, daemon, signal.SIGQUIT)

    def test_events_to_a_closed_pipe_do_not_end_the_daemon(self):
        # `portwarden run --events - | head -1`: the reader goes away after one line.
        daemon = start_daemon_with(self.world, blocking_config(), events="-")
        first = daemon.process.stdout.readline()
        self.assertIn(b'"started"', first, daemon.describe())
        daemon.process.stdout.close()
        # Several connections, so that the daemon writes (and flushes) to the closed pipe.
        for _ in range(3):
            self.assert_outcome(self.world.tcp(INTERNET_V4, ECHO_PORT), "ok", daemon)
        time.sleep(0.3)
        self.assertTrue(daemon.alive(), f"SIGPIPE ended the daemon\n{daemon.describe()}")
        self.assert_filtering(self.world, daemon, "after the pipe closed")
        self.assert_stops_cleanly(self.world, daemon)


class StopTest(HardeningCase):
    """Item 2: a stop leaves no rule behind, or says so with its exit code."""

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)

    def test_sigterm_to_the_whole_process_group_removes_every_rule(self):
        daemon = start_daemon_with(self.world, blocking_config())
        daemon.wait_started()
        self.assertTrue(w.our_rules(self.world.rules()))
        pgid = os.getpgid(daemon.pid)
        self.assertEqual(pgid, daemon.pid, "the daemon leads its own process group (World.spawn)")
        # What `timeout` and some supervisors do, insistently: SIGTERM to the group, again and
        # again while the daemon stops. Its iptables helpers must not be hit.
        deadline = time.monotonic() + 10
        while daemon.alive() and time.monotonic() < deadline:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                break
            time.sleep(0.005)
        code = daemon.stop(signal.SIGTERM)
        self.assertEqual(code, 0, daemon.describe())
        self.assertEqual(w.our_rules(self.world.rules()), [],
                         f"rules left after a group SIGTERM\n{self.world.rules()}")

    def test_a_removal_that_cannot_succeed_exits_3_and_says_so(self):
        flag, env = refusing_iptables_restore(self.world)
        daemon = start_daemon_with(self.world, blocking_config(), env=env)
        daemon.wait_started()
        flag.touch()
        code = daemon.stop(signal.SIGTERM, timeout=30)
        self.assertEqual(code, EXIT_RULES_LEFT, daemon.describe())
        self.assertIn("rules_remove_failed family=ipv4", daemon.stderr())
        self.assertIn("refused by the test", daemon.stderr())
        self.assertTrue(w.our_rules(self.world.rules()), "the rules are still there")
        removed = self.world.portwarden(["iptables", "remove"])
        self.assertEqual(removed.returncode, 0, removed.stdout + removed.stderr)
        self.assertEqual(w.our_rules(self.world.rules()), [])


# Tampering with the rules as another program would, in the client namespace: a name and one
# iptables command each.
TAMPERING = [
    ("flush filter C17", ["iptables", "-F", "C17"]),
    ("flush filter C17 (IPv6)", ["ip6tables", "-F", "C17"]),
    ("delete the mangle OUTPUT jump", ["iptables", "-t", "mangle", "-D", "OUTPUT", "-j", "C170"]),
    ("delete the filter INPUT jump", ["iptables", "-D", "INPUT", "-j", "C17"]),
    ("delete the nat rules", ["iptables", "-t", "nat", "-F", "OUTPUT"]),
    ("duplicate the filter OUTPUT jump", ["iptables", "-A", "OUTPUT", "-j", "C17"]),
    ("accept everything before our jump", ["iptables", "-I", "OUTPUT", "1", "-j", "ACCEPT"]),
    ("a rule added to C17", ["iptables", "-I", "C17", "1", "-j", "ACCEPT"]),
    ("plain iptables -F", ["iptables", "-F"]),
]


def first_output_rule(world):
    """The first rule of filter OUTPUT (IPv4), as iptables-save prints it."""
    save = world.run("client", ["iptables-save", "-t", "filter"]).stdout
    rules = [line for line in save.splitlines() if line.startswith("-A OUTPUT ")]
    return rules[0] if rules else None


def rules_as_installed(world, installed):
    """Our rules are all there, and our jump comes first in filter OUTPUT."""
    return (w.our_rules(world.rules()) == installed
            and first_output_rule(world) == "-A OUTPUT -j C17")


class RuleWatchTest(HardeningCase):
    """Item 3: rules changed behind the daemon's back are restored within 5 s, with a warning, an
    event and a counter, and blocked connections are blocked again."""

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)
        self.world.start_echo_services(tcp_ports=(ECHO_PORT, BLOCKED_PORT), udp_ports=())

    def test_rules_changed_by_another_program_are_restored(self):
        daemon = start_daemon_with(self.world, blocking_config())
        daemon.wait_started()
        installed = w.our_rules(self.world.rules())
        self.assert_filtering(self.world, daemon, "as installed")
        for name, argv in TAMPERING:
            with self.subTest(tampering=name):
                before = len(daemon.events("rules"))
                done = self.world.run("client", argv)
                self.assertEqual(done.returncode, 0, f"{argv}: {done.stderr}")
                started = time.monotonic()
                # One check finds it and restores it: one rules event per tampering.
                events = daemon.wait_for(
                    lambda events, n=before: len([e for e in events
                                                  if e.get("event") == "rules"]) > n,
                    timeout=RESTORE_WITHIN, what=f"a rules event for {name}")
                while not rules_as_installed(self.world, installed):
                    if time.monotonic() - started > RESTORE_WITHIN:
                        self.fail(f"{name}: not restored within {RESTORE_WITHIN}s\n"
                                  f"{self.world.rules()}\n{daemon.describe()}")
                    time.sleep(0.1)
                event = [e for e in events if e.get("event") == "rules"][-1]
                self.assertEqual(event.get("action"), "restored", json.dumps(event))
                self.assertTrue(event.get("problem"), json.dumps(event))
                self.assertIn("lastIntact", event)
                self.assert_filtering(self.world, daemon, f"after {name}")
        self.assertIn("rules_changed", daemon.stderr())
        self.assert_stops_cleanly(self.world, daemon)
        stats = daemon.events("stats")[-1]
        problems = [event.get("problem") for event in daemon.events("rules")]
        self.assertEqual(stats["rules"]["restored"], len(TAMPERING),
                         json.dumps(stats) + "\n" + "\n".join(problems))
        self.assertEqual(stats["rules"]["restoreFailures"], 0, json.dumps(stats))
        self.assertTrue(stats["rules"]["enforced"], json.dumps(stats))

    def test_a_flushed_c17_lets_no_blocked_connection_pass_for_long(self):
        # The case: `iptables -F C17` while connections are being blocked.
        daemon = start_daemon_with(self.world, blocking_config())
        daemon.wait_started()
        self.assertEqual(self.world.run("client", ["iptables", "-F", "C17"]).returncode, 0)
        time.sleep(RESTORE_WITHIN)
        self.assert_filtering(self.world, daemon, "5 s after iptables -F C17")
        self.assert_stops_cleanly(self.world, daemon)


    def test_decisions_are_not_reported_as_enforced_while_the_rules_cannot_be_restored(self):
        flag, env = refusing_iptables_restore(self.world)
        daemon = start_daemon_with(self.world, blocking_config(), env=env)
        daemon.wait_started()
        flag.touch()
        self.assertEqual(self.world.run("client", ["iptables", "-F", "C17"]).returncode, 0)
        daemon.wait_for(lambda events: any(e.get("event") == "rules"
                                           and e.get("action") == "restoreFailed"
                                           for e in events),
                        timeout=RESTORE_WITHIN, what="a rules event with restoreFailed")
        self.assertIn("action=restore_failed", daemon.stderr())
        # C17 is empty: the blocked connection passes. Its event must not claim a block.
        result = self.world.tcp(INTERNET_V4, BLOCKED_PORT)
        self.assert_outcome(result, "ok", daemon)

        def blocked_decision(events):
            return [e for e in events if e.get("event") == "decided"
                    and (e.get("remote") or {}).get("port") == BLOCKED_PORT
                    and (e.get("local") or {}).get("port") == result.local_port]

        decided = blocked_decision(daemon.wait_for(blocked_decision, timeout=3.0,
                                                   what="the blocked connection's decision"))
        self.assertTrue(decided[0]["reason"].startswith("NOT ENFORCED"), json.dumps(decided[0]))
        # Once the rules can be installed again, they are, and the block holds again.
        flag.unlink()
        daemon.wait_for(lambda events: any(e.get("event") == "rules"
                                           and e.get("action") == "restored" for e in events),
                        timeout=RESTORE_WITHIN, what="a rules event with restored")
        self.assert_outcome(self.world.tcp(INTERNET_V4, BLOCKED_PORT), "unreachable", daemon)
        self.assert_stops_cleanly(self.world, daemon)
        stats = daemon.events("stats")[-1]
        self.assertGreaterEqual(stats["rules"]["restoreFailures"], 1, json.dumps(stats))
        self.assertTrue(stats["rules"]["enforced"], json.dumps(stats))


class MisleadingTest(HardeningCase):
    """Item 7: exit codes and messages that said something else than what happened."""

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)

    def test_refused_options_exit_2(self):
        for args in (["run", "--attribution", "bogus"], ["run", "--no-such-option"],
                     ["--log-level", "loud", "version"], ["run", "--config"],
                     ["no-such-command"], ["iptables", "frobnicate"]):
            with self.subTest(args=args):
                done = self.world.portwarden(args, timeout=20)
                self.assertEqual(done.returncode, 2, f"{args}: {done.stdout}{done.stderr}")
        self.assertEqual(w.our_rules(self.world.rules()), [])
        self.assertEqual(self.world.portwarden(["--help"]).returncode, 0)

    def test_config_naming_a_fifo_is_refused_at_once(self):
        fifo = Path(tempfile.mkdtemp(prefix="fifo-", dir=self.world.directory)) / "config.json"
        os.mkfifo(fifo)
        for args in (["run", "--config", str(fifo), *LIGHT],
                     ["iptables", "--config", str(fifo), "show"]):
            with self.subTest(args=args):
                started = time.monotonic()
                done = self.world.portwarden(args, timeout=20)
                self.assertEqual(done.returncode, 2, f"{args}: {done.stdout}{done.stderr}")
                self.assertIn("not a regular file", done.stderr)
                self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(w.our_rules(self.world.rules()), [])

    def test_a_busy_queue_is_reported_as_in_use(self):
        first = start_daemon_with(self.world, blocking_config())
        first.wait_started()
        second = start_daemon_with(self.world, blocking_config())
        try:
            code = second.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("the second daemon did not give up\n" + second.describe())
        self.assertEqual(code, 1, second.describe())
        self.assertIn("in use", second.stderr())
        self.assertNotIn("needs root", second.stderr())
        self.assertTrue(first.alive(), first.describe())
        self.assert_stops_cleanly(self.world, first)

    def test_temporary_block_with_reject_rejects(self):
        # filter/permanentVerdicts false: the REJECT's ICMP error must reach the application
        # (it was dropped: a silent drop, a timeout instead of "unreachable").
        self.world.start_echo_services(tcp_ports=(ECHO_PORT, BLOCKED_PORT),
                                       udp_ports=(ECHO_PORT, BLOCKED_PORT))
        daemon = start_daemon_with(self.world, blocking_config(permanent=False))
        daemon.wait_started()
        specs = []
        for host in (INTERNET_V4, INTERNET_V6):
            for mode in ("tcp", "udp"):
                specs.append((mode, host, BLOCKED_PORT, {"timeout": TIMEOUT}))
                specs.append((mode, host, ECHO_PORT, {"timeout": TIMEOUT}))
        results = self.world.probes(specs)
        for (mode, host, port, _), result in zip(specs, results):
            expected = "unreachable" if port == BLOCKED_PORT else "ok"
            with self.subTest(probe=f"{mode} {host}:{port}"):
                self.assert_outcome(result, expected, daemon)
                if expected == "unreachable":
                    self.assertLess(result.elapsed, 1.0, str(result))
        for event in daemon.events("decided"):
            self.assertIs(event.get("permanent"), False, json.dumps(event))
        self.assert_stops_cleanly(self.world, daemon)


if __name__ == "__main__":
    unittest.main()
