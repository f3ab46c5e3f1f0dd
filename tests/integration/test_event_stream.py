"""The API's WebSocket event stream (issue 11 item 1) against the real daemon.

The daemon runs in the `client` namespace with its API on 127.0.0.1:817 and an echo service in
the `internet` namespace. tools/ws_events.py reads the stream (a standard-library WebSocket
client); a connection made meanwhile shows up as "new" and "decided" messages with the same
fields as the events file's lines, and a settings change through the API as a "setting"
message. A page of another origin is refused (403) before the handshake.

Run: ctest --test-dir build/release -R integration_event_stream --output-on-failure
"""

import json
import subprocess
import sys
import time
import unittest

import world as w
from world import INTERNET_V4

ECHO_PORT = 9000
API_CLIENT = w.TOOLS / "api_client.py"
WS_EVENTS = w.TOOLS / "ws_events.py"

_ROOT_RULES_BEFORE = None


def setUpModule():
    global _ROOT_RULES_BEFORE
    reason = w.missing_prerequisite(need_daemon=True)
    if reason:
        w.skip_suite(reason)
    _ROOT_RULES_BEFORE = w.root_namespace_rules()


def tearDownModule():
    if _ROOT_RULES_BEFORE is not None:
        problems = w.suite_leftovers(_ROOT_RULES_BEFORE)
        if problems:
            raise AssertionError("\n".join(problems))


class EventStreamCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.world = w.World().__enter__()
        self.addCleanup(self.world.close)
        self.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=())
        self.daemon = self.world.start_daemon({"filter/defaultAction": "permit"})
        self.wait_for_api()

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
        while self.api("GET", "/api/v1/status")["status"] != 200:
            if time.monotonic() > deadline or not self.daemon.alive():
                raise AssertionError(f"the API does not answer\n{self.daemon.describe()}")
            time.sleep(0.1)

    def reader(self, *options):
        return self.world.spawn("client", [sys.executable, WS_EVENTS, *options],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def test_connection_and_setting_events_arrive_in_order(self):
        reader = self.reader("--until", "setting", "--seconds", "20")
        self.addCleanup(reader.kill)
        first = reader.stdout.readline()
        self.assertEqual(json.loads(first), {"status": 101}, self.daemon.describe())
        # Subscribed once the handshake is answered: what happens from now on is streamed.
        result = self.world.tcp(INTERNET_V4, ECHO_PORT)
        self.assertEqual(result.outcome, "ok", str(result))
        changed = self.api("PUT", "/api/v1/settings/filter%2FblockInternet", {"value": True})
        self.assertIn(changed["status"], (200, 204), changed)
        out, err = reader.communicate(timeout=30)
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        kinds = [line.get("event") for line in lines]
        decided = [line for line in lines if line.get("event") == "decided"
                   and line["remote"] == {"ip": INTERNET_V4, "port": ECHO_PORT}]
        self.assertTrue(decided, f"no decided event in {kinds}\n{err}")
        self.assertEqual(decided[0]["verdict"], "accept")
        news = [line for line in lines if line.get("event") == "new"
                and line.get("id") == decided[0]["id"]]
        self.assertTrue(news, f"no new event before the decision: {kinds}")
        self.assertLess(lines.index(news[0]), lines.index(decided[0]))
        self.assertEqual(kinds[-1], "setting", kinds)
        self.assertIn("filter/blockInternet", lines[-1]["what"], lines[-1])
        self.assertIsNone(lines[-1]["profileId"])
        # The events file has the same decision (same rendering, same fields).
        in_file = [event for event in self.daemon.events("decided")
                   if event.get("id") == decided[0]["id"]]
        self.assertTrue(in_file)
        self.assertEqual({k: v for k, v in in_file[0].items() if k != "time"},
                         {k: v for k, v in decided[0].items() if k != "time"})

    def test_foreign_origin_is_refused_before_the_handshake(self):
        reader = self.reader("--origin", "http://evil.example", "--seconds", "5")
        out, _ = reader.communicate(timeout=15)
        self.assertEqual(json.loads(out.splitlines()[0]), {"status": 403})
        same = self.reader("--origin", "http://127.0.0.1:817", "--seconds", "1")
        out, _ = same.communicate(timeout=15)
        self.assertEqual(json.loads(out.splitlines()[0]), {"status": 101})


if __name__ == "__main__":
    unittest.main()
