"""The `portwarden` client verbs (issue 11 item 3, docs/cli.md) against a live daemon.

The daemon runs in the client namespace with its API on 127.0.0.1:817 there; every CLI command
runs in the same namespace (`ip netns exec <client> portwarden ...`), as root unless a test says
otherwise. Attribution from the socket tables (no eBPF). Cases: every verb in human and --json
output; a global rule added with the CLI decides a real connection, and its removal undoes it;
`--app PATH` creates a profile for a writing command only; a prompt answered with the CLI releases
the held connection; nothing listening gives exit 3; a user who is neither root nor in group
portwarden gets exit 4 with the API's reason; pause/resume when the daemon has the routes.

Every wait is bounded: bounds are hang guards, not performance assertions.

Run: ctest --test-dir build/release -R integration_cli --output-on-failure
"""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
import unittest

import world as w
from world import INTERNET_V4

ECHO_PORT, OTHER_PORT = 9000, 9001
EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_FORBIDDEN = 1, 2, 3, 4

_ROOT_RULES_BEFORE = None


def setUpModule():
    global _ROOT_RULES_BEFORE
    reason = w.missing_prerequisite(need_daemon=True)
    if not reason and shutil.which("setpriv") is None:
        reason = "needs setpriv (util-linux) for the unprivileged caller"
    if reason:
        w.skip_suite(reason)
    _ROOT_RULES_BEFORE = w.root_namespace_rules()


def tearDownModule():
    if _ROOT_RULES_BEFORE is None:
        return
    problems = w.suite_leftovers(_ROOT_RULES_BEFORE)
    if problems:
        raise AssertionError("\n".join(problems))


class CliCase(unittest.TestCase):
    """One world and one daemon per test class: the verbs only read or change the API's state."""

    maxDiff = None
    config = {"filter/defaultAction": "permit"}

    @classmethod
    def setUpClass(cls):
        cls.world = w.World().__enter__()
        try:
            cls.world.start_echo_services()
            cls.daemon = None
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.world.close()

    def start(self):
        daemon = self.world.start_daemon(self.config)
        deadline = time.monotonic() + 10
        while self.cli("status").returncode != 0:
            if time.monotonic() > deadline or not daemon.alive():
                raise AssertionError(f"the API does not answer\n{daemon.describe()}")
            time.sleep(0.1)
        type(self).daemon = daemon
        return daemon

    def cli(self, *args, prefix=(), timeout=30):
        """`portwarden ARGS` in the client namespace, standard input a pipe (never the runner's
        terminal); returns the CompletedProcess."""
        return self.world.run("client", [*prefix, self.world.portwarden_bin, *args],
                              timeout=timeout, input="")

    def ok(self, *args):
        completed = self.cli(*args)
        self.assertEqual(completed.returncode, 0,
                         f"portwarden {' '.join(args)}: rc={completed.returncode}\n"
                         f"stdout: {completed.stdout}\nstderr: {completed.stderr}\n"
                         f"{self.daemon.describe() if self.daemon else ''}")
        return completed

    def json_of(self, *args):
        return json.loads(self.ok("--json", *args).stdout)


class NotRunningTest(CliCase):
    def test_nothing_listening_is_exit_3(self):
        completed = self.cli("status")
        self.assertEqual(completed.returncode, EXIT_NOT_RUNNING, completed.stderr)
        self.assertIn("portwarden is not running (nothing answers on 127.0.0.1:817): start it "
                      "with `systemctl start portwarden` or `portwarden run`", completed.stderr)
        self.assertEqual(completed.stdout, "")

    def test_usage_error_is_exit_2(self):
        completed = self.cli("rules", "add", "--list", "sideways", "+ x")
        self.assertEqual(completed.returncode, EXIT_USAGE, completed.stderr)
        completed = self.cli("--api", "nowhere", "status")
        self.assertEqual(completed.returncode, EXIT_USAGE, completed.stderr)


class VerbsTest(CliCase):
    def setUp(self):
        if self.daemon is None or not self.daemon.alive():
            self.start()

    def test_status(self):
        human = self.ok("status").stdout
        self.assertRegex(human, r"(?m)^version\s+\S+")
        self.assertRegex(human, r"(?m)^uptime\s+\d+")
        self.assertRegex(human, r"(?m)^paused\s+no$")
        status = self.json_of("status")
        self.assertIn("version", status)
        self.assertIs(status["paused"], False)

    def test_settings_get_set_unset(self):
        # The daemon is shared by the class: leave the settings as they were.
        for key in ("filter/blockLAN", "filter/outboundBlockAction", "filter/askTimeout"):
            self.addCleanup(self.cli, "settings", "unset", key)
        listed = self.json_of("settings", "get")
        self.assertIn("filter/blockLAN", [s["key"] for s in listed])
        self.assertRegex(self.ok("settings", "get").stdout, r"(?m)^KEY\s+VALUE\s+LAYER\s+SCOPE$")
        # VALUE as JSON when it parses, else as a string: true, 5, "reject" and drop all work.
        for typed, stored in (("true", True), ("false", False)):
            self.ok("settings", "set", "filter/blockLAN", typed)
            one = self.json_of("settings", "get", "filter/blockLAN")
            self.assertEqual((one["value"], one["layer"]), (stored, "store"), one)
        self.ok("settings", "set", "filter/askTimeout", "5")
        self.assertEqual(self.json_of("settings", "get", "filter/askTimeout")["value"], 5)
        self.ok("settings", "set", "filter/outboundBlockAction", "drop")
        self.assertEqual(self.json_of("settings", "get", "filter/outboundBlockAction")["value"],
                         "drop")
        self.ok("settings", "set", "filter/outboundBlockAction", '"reject"')
        self.assertRegex(self.ok("settings", "get", "filter/outboundBlockAction").stdout,
                         r"(?m)^filter/outboundBlockAction\s+reject\s+store\s+global$")
        self.ok("settings", "unset", "filter/blockLAN")
        self.assertEqual(self.json_of("settings", "get", "filter/blockLAN")["layer"], "default")
        # Values the daemon refuses: exit 1 with its message.
        refused = self.cli("settings", "set", "filter/outboundBlockAction", "sometimes")
        self.assertEqual(refused.returncode, EXIT_REFUSED, refused.stderr)
        self.assertTrue(refused.stderr.startswith("portwarden: "), refused.stderr)
        self.assertIn("sometimes", refused.stderr)
        fixed = self.cli("settings", "set", "filter/defaultAction", "block")
        self.assertEqual(fixed.returncode, EXIT_REFUSED, fixed.stderr)
        self.assertIn("is set by the config file", fixed.stderr)
        unknown = self.cli("settings", "get", "no/suchKey")
        self.assertEqual(unknown.returncode, EXIT_REFUSED, unknown.stderr)
        self.assertIn("unknown setting 'no/suchKey'", unknown.stderr)

    def test_a_rule_added_with_the_cli_decides_a_connection(self):
        self.assertEqual(self.world.tcp(INTERNET_V4, OTHER_PORT).outcome, "ok")
        rule = f"- {INTERNET_V4} tcp/{OTHER_PORT}"
        self.addCleanup(self.cli, "rules", "remove", rule)
        added = self.ok("rules", "add", rule)
        self.assertIn(f"added '{rule}' to endpoints of the global rules", added.stdout)
        listed = self.json_of("rules", "list")
        self.assertIsNone(listed["profile"])
        self.assertEqual(listed["endpoints"], [rule], listed)
        self.assertRegex(self.ok("rules", "list").stdout, rf"(?m)^endpoints\s+0\s+{rule}$")
        blocked = self.world.tcp(INTERNET_V4, OTHER_PORT, timeout=2)
        self.assertNotEqual(blocked.outcome, "ok", f"{blocked}\n{self.daemon.describe()}")
        self.assertEqual(self.world.tcp(INTERNET_V4, ECHO_PORT).outcome, "ok")
        self.ok("rules", "remove", rule)
        self.assertEqual(self.json_of("rules", "list")["endpoints"], [])
        self.assertEqual(self.world.tcp(INTERNET_V4, OTHER_PORT).outcome, "ok")
        missing = self.cli("rules", "remove", rule)
        self.assertEqual(missing.returncode, EXIT_REFUSED, missing.stderr)
        self.assertIn("no rule", missing.stderr)

    def test_app_by_path_is_created_for_writes_only(self):
        path = "/opt/pw-cli-test/bin/tool"
        read = self.cli("rules", "list", "--app", path)
        self.assertEqual(read.returncode, EXIT_REFUSED, read.stderr)
        self.assertIn("no profile for the executable", read.stderr)
        added = self.ok("rules", "add", "--app", path, "- .example.com")
        self.assertIn(f"no profile for {path}: created profile 'tool'", added.stderr)
        profiles = self.json_of("apps")
        mine = [p for p in profiles
                if {"type": "path", "operation": "equals", "value": path} in p["fingerprints"]]
        self.assertEqual(len(mine), 1, profiles)
        profile_id = mine[0]["id"]
        # The same application by path, by name and by ID; no second profile.
        for name in (path, "tool", profile_id):
            listed = self.json_of("rules", "list", "--app", name)
            self.assertEqual(listed["profile"]["id"], profile_id)
            self.assertEqual(listed["endpoints"], ["- .example.com"])
        self.ok("settings", "set", "--app", "tool", "filter/blockLAN", "true")
        one = self.json_of("settings", "get", "--app", path, "filter/blockLAN")
        self.assertEqual((one["value"], one["layer"]), (True, "app"), one)
        human = self.ok("apps").stdout
        self.assertRegex(human, r"(?m)^ID\s+NAME\s+SOURCE\s+EXECUTABLE\s+FIRST SEEN\s+LAST SEEN$")
        self.assertRegex(human, rf"(?m)^{profile_id}\s+tool\s+user\s+{path}\s")
        shown = self.ok("apps", "show", "tool").stdout
        self.assertIn(f"fingerprint  {path}", shown)
        self.assertIn("- .example.com", shown)
        self.assertEqual(self.json_of("apps", "show", profile_id)["id"], profile_id)
        self.assertEqual(len([p for p in self.json_of("apps") if p["name"] == "tool"]), 1)

    def test_unprivileged_user_is_exit_4(self):
        completed = self.cli("status", prefix=("setpriv", "--reuid=nobody", "--regid=nogroup",
                                               "--clear-groups"))
        self.assertEqual(completed.returncode, EXIT_FORBIDDEN,
                         f"{completed.stdout}{completed.stderr}")
        self.assertIn("is not allowed to use the API: root or a member of group(s) portwarden",
                      completed.stderr)

    def test_pause_and_resume(self):
        paused = self.cli("pause", "--for", "5m")
        if paused.returncode == EXIT_REFUSED and "does not support pause" in paused.stderr:
            self.skipTest("this daemon has no POST /api/v1/pause yet (the lead adds the route)")
        self.assertEqual(paused.returncode, 0, paused.stderr)
        self.assertIs(self.json_of("status")["paused"], True)
        self.ok("resume")
        self.assertIs(self.json_of("status")["paused"], False)


class PromptTest(CliCase):
    config = {"filter/defaultAction": "ask"}

    def test_prompts_answer_releases_the_held_connection(self):
        if self.daemon is None or not self.daemon.alive():
            self.start()
        self.assertEqual(self.json_of("prompts"), [])
        self.assertEqual(self.ok("prompts").stdout, "(no open prompts)\n")
        held, prompt = self.hold_and_wait_for_prompt()
        self.assertEqual(prompt["remote"], {"ip": INTERNET_V4, "port": ECHO_PORT}, prompt)
        human = self.ok("prompts").stdout
        self.assertRegex(human, rf"(?m)^{prompt['id']}\s+\S+\s+outbound\s+tcp\s+-\s+"
                                rf"{INTERNET_V4}\s+{ECHO_PORT}\s")
        self.assertIsNone(held.poll(), "the connection waits for the answer")
        answered = self.ok("prompts", "answer", str(prompt["id"]), "permit", "--for", "once",
                           "--target", "ip")
        self.assertIn(f"prompt {prompt['id']}: permit once", answered.stdout)
        stdout, _ = held.communicate(timeout=20)
        report = json.loads(stdout.strip().splitlines()[-1])
        self.assertEqual(report["outcome"], "ok", f"{report}\n{self.daemon.describe()}")
        gone = self.cli("prompts", "answer", str(prompt["id"]), "block")
        self.assertEqual(gone.returncode, EXIT_REFUSED, gone.stderr)
        self.assertIn(f"no open prompt {prompt['id']}", gone.stderr)

    def hold_and_wait_for_prompt(self):
        """A TCP client whose connection waits for a prompt; returns (process, prompt)."""
        held = self.world.spawn("client", [sys.executable, w.PROBE, "tcp", INTERNET_V4,
                                           ECHO_PORT, "--timeout", "20"], text=True)
        deadline = time.monotonic() + 10
        while True:
            prompts = self.json_of("prompts")
            if prompts:
                return held, prompts[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no prompt opened\n{self.daemon.describe()}")
            time.sleep(0.2)

    def test_watch_answers_with_a_key_and_restores_the_terminal(self):
        if self.daemon is None or not self.daemon.alive():
            self.start()
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        before = termios.tcgetattr(slave)
        watch = subprocess.Popen(["ip", "netns", "exec", self.world.ns("client"),
                                  self.world.portwarden_bin, "prompts", "watch"],
                                 stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        self.addCleanup(lambda: watch.poll() is None and watch.kill())
        seen = b""

        def read_until(text, timeout=10.0):
            nonlocal seen
            deadline = time.monotonic() + timeout
            while text.encode() not in seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"watch did not print {text!r}; it printed:\n"
                                         f"{seen.decode(errors='replace')}")
                ready, _, _ = select.select([master], [], [], remaining)
                if ready:
                    seen += os.read(master, 4096)

        read_until("Watching for prompts")
        held, prompt = self.hold_and_wait_for_prompt()
        read_until(f"prompt       {prompt['id']}")
        read_until("[p] permit once")
        during = termios.tcgetattr(slave)
        self.assertEqual(during[3] & (termios.ICANON | termios.ECHO), 0, "raw mode while watching")
        os.write(master, b"p")
        read_until(f"prompt {prompt['id']}: permit once")
        stdout, _ = held.communicate(timeout=20)
        self.assertEqual(json.loads(stdout.strip().splitlines()[-1])["outcome"], "ok")
        # Ctrl-C (SIGINT) ends the watch with exit 0 and the terminal as it was.
        os.kill(watch.pid, signal.SIGINT)
        self.assertEqual(watch.wait(timeout=10), 0, seen.decode(errors="replace"))
        self.assertEqual(termios.tcgetattr(slave)[3], before[3], "terminal modes restored")

    def test_watch_refuses_without_a_terminal(self):
        completed = self.cli("prompts", "watch")
        self.assertEqual(completed.returncode, EXIT_USAGE, completed.stderr)
        self.assertIn("needs a terminal", completed.stderr)


if __name__ == "__main__":
    unittest.main()
