"""The `--events` stream under pressure (issue 10 items 1 and 6), with a real daemon.

- A reader that leaves (`portwarden run --events - | head -1`): the daemon must not die of
  SIGPIPE at its next event; it keeps filtering, logs the loss and counts it.
- Size-based rotation (`events/maxFileSize`, `events/keepFiles`): the file is rotated at the
  limit and only the newest files are kept, each of whole JSON lines.
- A flood of identical decisions (a remote peer connecting again and again from new source
  ports): at most `events/repeatLimit` lines per `events/repeatWindow`, and a "repeated" line
  that counts the rest.

Every test builds its own World (world.py); nothing runs in the root namespace except the
read-only `iptables-save` of tearDownModule.

Run: ctest --test-dir build/release -R integration_event_sinks --output-on-failure
 or: sudo PORTWARDEN_BIN=build/release/src/cli/portwarden python3 -m unittest -v test_event_sinks
     (from tests/integration)
"""

import json
import subprocess
import sys
import time
import unittest
from pathlib import Path

import world as w
from world import CLIENT_V4, INTERNET_V4

API_CLIENT = w.TOOLS / "api_client.py"
ECHO_PORT = 9000
# Inbound to a port nobody serves: blockInbound (on by default) drops it, the same decision for
# every source port.
FLOOD_PORT = 2222

_ROOT_RULES_BEFORE = None

# Opens COUNT TCP connections to HOST:PORT without waiting for them, each from a new source
# port, and holds the sockets for a moment so that no port is reused.
FLOOD = """
import socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sockets = []
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    sockets.append(s)
time.sleep(0.5)
print(len(sockets))
"""


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


class EventSinkCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.world = w.World()
        self.world.__enter__()
        self.addCleanup(self.world.__exit__, None, None, None)
        self.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=())

    def api(self, method, path, body=None):
        argv = [sys.executable, API_CLIENT, method, path]
        if body is not None:
            argv.append(json.dumps(body))
        completed = self.world.run("client", argv, timeout=20)
        try:
            return json.loads(completed.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"status": 0, "error": f"rc={completed.returncode} {completed.stderr}"}

    def status(self, daemon, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            reply = self.api("GET", "/api/v1/status")
            if reply["status"] == 200:
                return reply["body"]
            if time.monotonic() > deadline or not daemon.alive():
                raise AssertionError(f"the API does not answer: {reply}\n{daemon.describe()}")
            time.sleep(0.1)

    def assert_connects(self, daemon, what):
        result = self.world.tcp(INTERNET_V4, ECHO_PORT)
        self.assertEqual(result.outcome, "ok",
                         f"{what}: {result}\n{daemon.describe()}")

    def flood(self, count):
        completed = self.world.run("internet", [sys.executable, "-c", FLOOD, CLIENT_V4,
                                                str(FLOOD_PORT), str(count)], timeout=60)
        self.assertEqual(completed.returncode, 0, completed.stderr)

    def start_piped_daemon(self, config):
        """`portwarden run --events -` with its standard output on a pipe the test holds."""
        config_path = self.world.write_config(w.with_test_upstream(config))
        directory = config_path.parent
        stderr_path = directory / "stderr.log"
        with open(stderr_path, "wb") as stderr:
            process = self.world.spawn(
                "client", [self.world.portwarden_bin, "run", "--config", config_path,
                           "--events", "-", *w.hermetic_args((), directory)],
                stdout=subprocess.PIPE, stderr=stderr)
        daemon = w.Daemon(self.world, process, directory, config_path,
                          directory / "no-events-file.jsonl", stderr_path)
        self.world.daemons.append(daemon)
        return daemon


class ReaderThatLeaves(EventSinkCase):
    def test_a_closed_events_pipe_stops_the_events_not_the_firewall(self):
        daemon = self.start_piped_daemon({})
        # `| head -1`: one line, then the reader is gone.
        first = daemon.process.stdout.readline()
        self.assertEqual(json.loads(first)["event"], "started", first)
        daemon.process.stdout.close()

        # Its next events go to a pipe without a reader: EPIPE, formerly a SIGPIPE that killed
        # the daemon and left every new connection dropped.
        self.assert_connects(daemon, "first connection after the reader left")
        time.sleep(0.3)
        self.assertTrue(daemon.alive(), "the daemon died\n" + daemon.describe())
        self.assert_connects(daemon, "a later connection, still decided")
        self.assertTrue(daemon.alive(), "the daemon died\n" + daemon.describe())

        self.assertIn("events_reader_gone", daemon.stderr(), daemon.describe())
        events = self.status(daemon)["events"]
        self.assertEqual(events["state"], "readerGone", events)
        self.assertGreaterEqual(events["dropped"], 2, events)  # the two connections, at least
        self.assertEqual(events["writeFailures"], 1, events)

        self.assertEqual(daemon.stop(), 0, daemon.describe())
        self.assertIn("events_closed", daemon.stderr(), daemon.describe())


class Rotation(EventSinkCase):
    def test_the_events_file_is_rotated_at_its_size_limit(self):
        limit = 4096
        daemon = self.world.start_daemon({"events/maxFileSize": limit, "events/keepFiles": 2,
                                          "events/repeatLimit": 0})
        path = Path(daemon.events_path)
        # Each connection writes "new" and "decided" lines of several hundred bytes.
        results = self.world.probes([("tcp", INTERNET_V4, ECHO_PORT, {})] * 30, workers=8)
        for result in results:
            self.assertEqual(result.outcome, "ok", f"{result}\n{daemon.describe()}")
        self.assertEqual(daemon.stop(), 0, daemon.describe())

        rotated = [Path(f"{path}.{number}") for number in (1, 2)]
        for file in [path, *rotated]:
            self.assertTrue(file.exists(), f"{file} missing\n{daemon.describe()}")
            self.assertLessEqual(file.stat().st_size, limit, file)
            for line in file.read_text().splitlines():
                json.loads(line)  # whole lines only
        self.assertFalse(Path(f"{path}.3").exists(), "more files kept than events/keepFiles")
        stats = daemon.events("stats")
        self.assertEqual(len(stats), 1, daemon.describe())
        self.assertGreaterEqual(stats[0]["events"]["rotations"], 2, stats[0])
        self.assertIn("events_rotated", daemon.stderr())


class Flood(EventSinkCase):
    def test_a_flood_of_identical_decisions_is_summed_up(self):
        self.world.sum_up_repeated_events = True  # the limits are set through the API below
        daemon = self.world.start_daemon({})
        # Through the API: the running daemon applies the new limits at once.
        self.status(daemon)
        for key, value in (("events%2FrepeatLimit", 3), ("events%2FrepeatWindow", 2)):
            reply = self.api("PUT", f"/api/v1/settings/{key}", {"value": value})
            self.assertEqual(reply["status"], 200, reply)
        count = 300
        self.flood(count)

        def summed_up(events):
            return any(event.get("event") == "repeated"
                       and event["like"].get("event") == "decided" for event in events)

        events = daemon.wait_for(summed_up, timeout=10.0, what="a \"repeated\" event")
        decided = [event for event in events if event.get("event") == "decided"
                   and event["local"]["port"] == FLOOD_PORT]
        summaries = [event for event in events if event.get("event") == "repeated"
                     and event["like"].get("event") == "decided"
                     and event["like"]["local"]["port"] == FLOOD_PORT]
        # At most repeatLimit lines per window (the flood may straddle two or three windows).
        self.assertLessEqual(len(decided), 3 * 3, json.dumps(decided[:5]))
        self.assertGreaterEqual(len(decided), 3)
        summary = summaries[0]
        self.assertEqual(summary["windowSeconds"], 2)
        self.assertEqual(summary["like"]["direction"], "inbound")
        self.assertEqual(summary["like"]["verdict"], "drop")
        # Every decision is either written or counted: none is lost without a trace. (A SYN
        # that was dropped leaves no conntrack entry behind, so its retransmission may be
        # decided again: at least one decision per connection.)
        self.assertEqual(daemon.stop(), 0, daemon.describe())
        events = daemon.events()
        decided = [event for event in events if event.get("event") == "decided"
                   and event["local"]["port"] == FLOOD_PORT]
        counted = sum(event["count"] for event in events if event.get("event") == "repeated"
                      and event["like"].get("event") == "decided"
                      and event["like"]["local"]["port"] == FLOOD_PORT)
        self.assertGreaterEqual(len(decided) + counted, count,
                                f"written {len(decided)}, counted {counted}")
        self.assertGreater(counted, count - 10)
        stats = daemon.events("stats")[0]["events"]
        self.assertGreaterEqual(stats["repeatsSuppressed"], counted, stats)


if __name__ == "__main__":
    unittest.main()
