"""Process attribution with real processes: which program owns each connection.

Every connection here is made by a process the test started itself, from an executable of its
own (copies of tools/attribution_client.c under different names and paths, a Python script, a
bash script), and every check compares the daemon's "process" field of the "decided" event with
what that process reported about itself: PID, parent PID, executable, identity and UID. "Some
process was found" is never enough.

The same cases run against `--attribution auto` (eBPF socket-owner records, with the socket
tables as fallback) and `--attribution tables` (sock_diag + /proc only); `--attribution off`
must leave the field out. The eBPF programs are attached to a cgroup of the test's own
(world.TestCgroup, passed as --bpf-cgroup), never to the host's cgroup v2 root: the test runner
moves itself into that cgroup, so every process it starts is inside.

Run: ctest --test-dir build/dev -L integration --output-on-failure
 or: sudo PORTWARDEN_BIN=build/dev/src/cli/portwarden python3 -m unittest -v test_attribution
     (from tests/integration)
"""

import dataclasses
import ipaddress
import itertools
import json
import os
import pwd
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import world as w
from world import CLIENT_V4, CLIENT_V6, INTERNET_V4, INTERNET_V6

ECHO_PORT = 9000
EVENT_TIMEOUT = 5.0
CLIENT_SOURCE = w.TOOLS / "attribution_client.c"
FIRE_AND_FORGET_SENDS = 200
FIRE_AND_FORGET_MIN_FRACTION = 0.99
IDLE_PROCESSES = 1000
NOBODY_UID = 65534
# Local ports for the test's own sockets: below the ephemeral range (32768-60999), never used
# twice in one run, so no connection can meet a conntrack entry (and its saved mark) of an
# earlier one, and every event is found by its local port.
_PORTS = itertools.count(20000)

_ROOT_RULES_BEFORE = None
_CGROUP = None
_PROGRAMS = None
_HELP_HAS_ATTRIBUTION = None


def next_port():
    return next(_PORTS)


def port_block(count):
    first = next_port()
    for _ in range(count - 1):
        next_port()
    return first


def missing_tools():
    for tool in ("cc", "setpriv", "nsenter", "bash"):
        if shutil.which(tool) is None:
            return f"{w.SKIP_MESSAGE}: `{tool}` not found in PATH"
    return None


def setUpModule():
    global _ROOT_RULES_BEFORE, _CGROUP, _PROGRAMS, _HELP_HAS_ATTRIBUTION
    reason = w.missing_prerequisite(need_daemon=True) or missing_tools()
    if reason:
        w.skip_suite(reason)
    help_text = subprocess.run([os.environ["PORTWARDEN_BIN"], "run", "--help"],
                               capture_output=True, text=True, timeout=10, check=False)
    _HELP_HAS_ATTRIBUTION = "--attribution" in help_text.stdout + help_text.stderr
    if not _HELP_HAS_ATTRIBUTION:
        print("NOTE: `portwarden run --help` lists no --attribution option: the daemon side of "
              "this feature is not built, every test below will fail", file=sys.stderr,
              flush=True)
    _ROOT_RULES_BEFORE = w.root_namespace_rules()
    _CGROUP = w.suite_cgroup()
    _PROGRAMS = Programs.build()


def tearDownModule():
    problems = []
    if _PROGRAMS is not None:
        shutil.rmtree(_PROGRAMS.root, ignore_errors=True)
    if _CGROUP is not None:
        try:
            _CGROUP.close()
        except RuntimeError as error:
            problems.append(str(error))
        leftovers = [name for name in w.live_test_cgroups()
                     if name.startswith(f"pwt-{os.getpid()}-")]
        if leftovers:
            problems.append(f"cgroups left behind: {leftovers}")
    if _ROOT_RULES_BEFORE is not None:
        problems += w.suite_leftovers(_ROOT_RULES_BEFORE)
    if problems:
        raise AssertionError("\n".join(problems))


# ---------------------------------------------------------------------------------------------
# The programs that make the connections

PYTHON_CLIENT = '''#!/usr/bin/env python3
"""One TCP echo round trip from a chosen local port; prints what this process is."""
import json, os, socket, sys

host, port, source_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as sock:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(5)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source_port))
    sock.connect((host, port))
    sock.sendall(b"pwt-attribution python\\n")
    sock.recv(64)
print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(),
                  "localPort": source_port, "exe": os.readlink("/proc/self/exe")}), flush=True)
'''

# bash cannot choose the local port of /dev/tcp, so it looks its socket up in /proc/net/tcp*
# by inode to tell the test which connection is its own.
BASH_CLIENT = r'''#!/bin/bash
# One TCP echo round trip through bash's /dev/tcp; prints what this process is.
set -e
exec 3<>"/dev/tcp/$1/$2"
socket=$(readlink "/proc/$$/fd/3")
inode=${socket//[^0-9]/}
port=0
for table in /proc/net/tcp /proc/net/tcp6; do
    while read -r _ local _ _ _ _ _ _ _ node _; do
        if [ "$node" = "$inode" ]; then port=$((16#${local##*:})); fi
    done < "$table"
done
echo "pwt-attribution bash" >&3
read -r _ <&3
exec 3>&-
printf '{"pid": %d, "ppid": %d, "uid": %d, "localPort": %d, "exe": "%s"}\n' \
    $$ "$PPID" "$UID" "$port" "$(readlink "/proc/$$/exe")"
'''

# The client's parent must be this shell: a subshell is forked, and it execs the client.
FORK_EXEC = r'''#!/bin/bash
# Forks a subshell that execs "$@", and waits for it.
printf '{"shell": %d}\n' $$
( exec "$@" )
exit $?
'''


@dataclasses.dataclass
class Programs:
    """Copies of the client under distinct names and paths, and the scripts. One per role, so
    that a wrong attribution shows up as a wrong executable, not only as a wrong PID."""

    root: Path
    outbound: Path      # most outbound connections
    listener: Path      # the server side of inbound and loopback connections
    chained: Path       # exec'd by the fork/exec chain script
    sender: Path        # fire-and-forget UDP
    reuse_first: Path   # PID reuse: process A
    reuse_second: Path  # PID reuse: process B, same PID, other executable
    launcher: Path      # spawn-at: forks B at a chosen PID
    unprivileged: Path  # runs as nobody
    idle: Path          # the 1,000 background processes
    python_script: Path
    bash_script: Path
    fork_exec_script: Path

    @classmethod
    def build(cls):
        sweep_stale_program_directories()
        root = Path(os.path.realpath(tempfile.mkdtemp(prefix=f"pwt-attribution-{os.getpid()}-")))
        # Every directory world-readable: one client runs as nobody.
        root.chmod(0o755)
        compiled = root / "build" / "attribution_client"
        compiled.parent.mkdir(mode=0o755)
        built = subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-o", compiled, CLIENT_SOURCE],
                               capture_output=True, text=True, timeout=60, check=False)
        if built.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"cc {CLIENT_SOURCE} failed:\n{built.stderr}")
        paths = {
            "outbound": "bin/alpha-client",
            "listener": "opt/beta/beta-server",
            "chained": "opt/gamma/gamma-client",
            "sender": "opt/udp/delta-sender",
            "reuse_first": "bin/reuse-first",
            "reuse_second": "opt/reuse/reuse-second",
            "launcher": "bin/pid-launcher",
            "unprivileged": "opt/nobody/epsilon-client",
            "idle": "bin/idle-holder",
        }
        copies = {}
        for role, relative in paths.items():
            destination = root / relative
            for parent in reversed(destination.relative_to(root).parents[:-1]):
                (root / parent).mkdir(mode=0o755, exist_ok=True)
            shutil.copyfile(compiled, destination)
            destination.chmod(0o755)
            copies[role] = destination
        scripts = root / "scripts"
        scripts.mkdir(mode=0o755)
        texts = {"python_script": ("py-client.py", PYTHON_CLIENT),
                 "bash_script": ("sh-client.sh", BASH_CLIENT),
                 "fork_exec_script": ("fork-exec.sh", FORK_EXEC)}
        for role, (name, text) in texts.items():
            path = scripts / name
            path.write_text(text)
            path.chmod(0o755)
            copies[role] = path
        return cls(root=root, **copies)


def sweep_stale_program_directories():
    """Removes the program directories of earlier runs whose runner is gone (killed by a signal
    before tearDownModule)."""
    for directory in Path(tempfile.gettempdir()).glob("pwt-attribution-*-*"):
        owner = directory.name.split("-")[2]
        if owner.isdigit() and not w._pid_alive(int(owner)):  # noqa: SLF001 - same suite
            shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Helpers


def same_ip(left, right):
    try:
        return ipaddress.ip_address(left) == ipaddress.ip_address(right)
    except (TypeError, ValueError):
        return False


def json_lines(text):
    return w.parse_events(text or "")


class LineReader:
    """Reads the JSON lines a spawned process prints, with a timeout, without a thread."""

    def __init__(self, process):
        self.process = process
        self.buffer = b""

    def line(self, timeout=10.0):
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
                    raise AssertionError(f"pid {self.process.pid} closed stdout "
                                         f"(have {self.buffer!r}, exit {self.process.poll()})")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


@dataclasses.dataclass
class Expected:
    """The process a connection must be attributed to, as that process reported itself."""

    what: str
    pid: int
    parent_pid: int
    executable: str
    identity: str = ""
    uid: int = 0
    user: str = "root"
    script: bool = False

    def __post_init__(self):
        self.identity = self.identity or self.executable

    def fields(self):
        return {"kind": "process", "pid": self.pid, "parentPid": self.parent_pid,
                "executable": str(self.executable), "identity": str(self.identity),
                "uid": self.uid, "user": self.user}


def expected_client(what, report, program, **overrides):
    """What a client copy that printed `report` must be attributed as."""
    fields = {"pid": report["pid"], "parent_pid": report["ppid"], "uid": report["uid"]}
    fields.update(overrides)
    if fields["uid"] != report["uid"]:
        raise AssertionError(f"{what}: the client ran as uid {report['uid']}, not "
                             f"{fields['uid']}: {report}")
    return Expected(what=what, executable=str(program), **fields)


def daemon_args(mode):
    # --bpf-cgroup in every mode: should a mode load the programs after all, they still only
    # see the test's own cgroup, never the host's root.
    return ["--attribution", mode, "--bpf-cgroup", str(_CGROUP.path)]


def start_daemon(world, mode):
    try:
        return w.start_daemon_seeing_host_mounts(world, {"filter": {"defaultAction": "permit", "blockInbound": False}},
                                                 daemon_args(mode))
    except w.DaemonError as error:
        hint = ("" if _HELP_HAS_ATTRIBUTION else
                "\n(`portwarden run --help` lists no --attribution: the feature is not built)")
        raise w.DaemonError(f"{error}{hint}") from None


# ---------------------------------------------------------------------------------------------
# The cases


class AttributionBase(unittest.TestCase):
    """One world and one daemon per class; each test makes its own connections, from local
    ports no other test uses, and checks the daemon's event for each of them. No tests of its
    own: SharedCases holds the ones every attributing mode runs."""

    maxDiff = None
    mode = "auto"

    @classmethod
    def setUpClass(cls):
        cls.world = w.World().__enter__()
        try:
            cls.world.start_echo_services(tcp_ports=(ECHO_PORT,), udp_ports=(ECHO_PORT,))
            cls.daemon = start_daemon(cls.world, cls.mode)
        except BaseException:
            cls.world.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.daemon.stop(signal.SIGTERM)
            if code != 0:
                raise AssertionError(f"daemon exit code {code} after SIGTERM\n"
                                     f"{cls.daemon.describe()}")
        finally:
            cls.world.close()

    def tearDown(self):
        self.assertTrue(self.daemon.alive(), f"the daemon died during {self.id()}\n"
                                             f"{self.daemon.describe()}")

    # Running clients ---------------------------------------------------------------------------

    def run_client(self, argv, namespace="client", timeout=30, mode=None):
        """Runs a client to completion; returns its result line (the one of `mode`, default
        the first line that has a "pid") and all its lines."""
        completed = self.world.run(namespace, argv, timeout=timeout)
        lines = json_lines(completed.stdout)
        chosen = [line for line in lines
                  if (line.get("mode") == mode if mode else "pid" in line)]
        context = (f"{' '.join(map(str, argv))} in {namespace}: exit {completed.returncode}\n"
                   f"stdout: {completed.stdout}\nstderr: {completed.stderr}")
        self.assertTrue(chosen, f"no result line from {context}")
        self.assertNotEqual(chosen[0].get("outcome"), "error", context)
        self.assertEqual(completed.returncode, 0, context)
        return chosen[0], lines

    def connect(self, program, kind, host, port=ECHO_PORT, namespace="client", bind=None,
                prefix=()):
        source_port = next_port()
        argv = [*prefix, program, kind, host, port, "--source-port", source_port]
        if bind:
            argv += ["--bind", bind]
        report, _ = self.run_client(argv, namespace=namespace)
        self.assertEqual(report.get("localPort"), source_port, f"{report}")
        return report

    def start_listener(self, kind, address, program=None):
        """A listener (`listen` or `udp-listen`) in the client namespace; returns
        (process, reader, first line)."""
        port = next_port()
        process = self.world.spawn("client", [program or _PROGRAMS.listener, kind, port,
                                              "--bind", address, "--timeout", 15])
        reader = LineReader(process)
        ready = reader.line()
        self.assertTrue(ready.get("listening"), f"listener not ready: {ready}")
        self.assertEqual(ready.get("localPort"), port, f"{ready}")
        return process, reader, ready

    def finish_listener(self, process, reader):
        served = reader.line()
        self.assertTrue(served.get("served"), f"listener did not serve: {served}")
        process.wait(timeout=10)
        return served

    # Finding and checking events ---------------------------------------------------------------

    def dump_events(self, limit=40):
        events = self.daemon.events()
        shown = "\n".join(json.dumps(event) for event in events[-limit:])
        return f"--- last {min(limit, len(events))} of {len(events)} events ---\n{shown}"

    def decided_event(self, what, protocol, direction, local_port, remote_ip, remote_port,
                      local_ip=None, timeout=EVENT_TIMEOUT):
        """The one "decided" event of a connection, found by its ports and remote address."""
        version = ipaddress.ip_address(remote_ip).version

        def matching(events):
            found = []
            for event in events:
                local, remote = event.get("local") or {}, event.get("remote") or {}
                if (event.get("event") == "decided" and event.get("protocol") == protocol
                        and event.get("direction") == direction
                        and event.get("ipVersion") == version
                        and local.get("port") == local_port
                        and remote.get("port") == remote_port
                        and same_ip(remote.get("ip"), remote_ip)
                        and (local_ip is None or same_ip(local.get("ip"), local_ip))):
                    found.append(event)
            return found

        try:
            events = self.daemon.wait_for(lambda events: matching(events), timeout,
                                          f"the decided event of {what}")
        except w.DaemonError as error:
            raise AssertionError(f"{what}: no decided {direction} {protocol} event for local "
                                 f"port {local_port}, remote {remote_ip} port {remote_port}\n"
                                 f"{self.dump_events()}\n{error}") from None
        found = matching(events)
        self.assertEqual(len(found), 1, f"{what}: one connection, one decision: {found}")
        return found[0]

    def allowed_sources(self):
        return {"auto": {"ebpf", "exec-record", "socket-table"},
                "tables": {"socket-table"}}[self.mode]

    def assert_process(self, event, expected):
        process = event.get("process")
        context = (f"{expected.what} (--attribution {self.mode})\nevent: {json.dumps(event)}\n"
                   f"expected: {expected}")
        self.assertIsInstance(process, dict, f"no \"process\" in the event: {context}")
        actual = {key: process.get(key) for key in expected.fields()}
        self.assertEqual(actual, expected.fields(), context)
        tags = process.get("tags")
        self.assertIsInstance(tags, list, context)
        if expected.script:
            self.assertIn("script", tags, context)
        else:
            self.assertNotIn("script", tags, context)
        self.assertIn(process.get("source"), self.allowed_sources(), context)

    # Reusable case bodies (also run next to 1,000 idle processes) ------------------------------

    def check_outbound(self, kind, host, program=None, prefix=(), what=None, **overrides):
        """One outbound connection from a client copy; its event must name that client."""
        program = program or _PROGRAMS.outbound
        what = what or f"{kind} to {host}"
        report = self.connect(program, kind, host, prefix=prefix)
        protocol = "tcp" if kind.startswith("tcp") else "udp"
        local_ip = CLIENT_V6 if ":" in host else CLIENT_V4
        event = self.decided_event(what, protocol, "outbound", report["localPort"], host,
                                   ECHO_PORT, local_ip=local_ip)
        self.assert_process(event, expected_client(what, report, program, **overrides))
        return event

    def check_inbound(self, kind, listen_address, peer_address):
        """The internet namespace connects to a listener in the client namespace; the inbound
        event must name the listener, not the peer (which runs in this cgroup too)."""
        what = f"inbound {kind} to {listen_address}"
        process, reader, ready = self.start_listener(
            "listen" if kind == "tcp" else "udp-listen", listen_address)
        client_kind = "tcp" if kind == "tcp" else "udp-connected"
        peer = self.connect(_PROGRAMS.outbound, client_kind, listen_address,
                            port=ready["localPort"], namespace="internet", bind=peer_address)
        self.finish_listener(process, reader)
        event = self.decided_event(what, kind, "inbound", ready["localPort"], peer_address,
                                   peer["localPort"], local_ip=listen_address)
        self.assert_process(event, expected_client(what, ready, _PROGRAMS.listener))
        self.assertNotEqual(event["process"].get("pid"), peer["pid"], "named the peer")


class SharedCases:
    """The cases of every attributing mode (a mixin: unittest runs them once per mode class)."""

    def test_tcp_v4(self):
        self.check_outbound("tcp", INTERNET_V4)

    def test_tcp_v6(self):
        self.check_outbound("tcp", INTERNET_V6)

    def test_udp_connected(self):
        for host in (INTERNET_V4, INTERNET_V6):
            with self.subTest(host=host):
                self.check_outbound("udp-connected", host)

    def test_ipv4_through_a_dual_stack_socket(self):
        # AF_INET6 socket, IPV6_V6ONLY=0, connected to ::ffff:10.77.0.2: IPv4 on the wire.
        event = self.check_outbound("tcp6-dualstack", INTERNET_V4, what="dual-stack socket")
        self.assertEqual(event.get("ipVersion"), 4, f"{event}")
        self.assertEqual((event.get("remote") or {}).get("ip"), INTERNET_V4, f"{event}")

    def test_inbound(self):
        for kind, listen_address, peer_address in (("tcp", CLIENT_V4, INTERNET_V4),
                                                   ("tcp", CLIENT_V6, INTERNET_V6),
                                                   ("udp", CLIENT_V4, INTERNET_V4)):
            with self.subTest(kind=kind, listener=listen_address):
                self.check_inbound(kind, listen_address, peer_address)

    def test_loopback_is_two_connections_with_their_own_processes(self):
        for address in ("127.0.0.1", "::1"):
            with self.subTest(address=address):
                what = f"loopback {address}"
                process, reader, ready = self.start_listener("listen", address)
                client = self.connect(_PROGRAMS.outbound, "tcp", address,
                                      port=ready["localPort"])
                self.finish_listener(process, reader)
                outbound = self.decided_event(f"{what} client side", "tcp", "outbound",
                                              client["localPort"], address, ready["localPort"])
                inbound = self.decided_event(f"{what} server side", "tcp", "inbound",
                                             ready["localPort"], address, client["localPort"])
                self.assert_process(outbound, expected_client(f"{what} client side", client,
                                                              _PROGRAMS.outbound))
                self.assert_process(inbound, expected_client(f"{what} server side", ready,
                                                             _PROGRAMS.listener))

    def test_python_script(self):
        script = _PROGRAMS.python_script
        python = os.path.realpath(sys.executable)
        variants = {
            # The kernel runs the #! line: env finds python3 on PATH (maybe through a shim
            # that execs the real interpreter: the process reports its final executable).
            "shebang": [script],
            # `python3 py-client.py` from the script's directory: a relative path in argv.
            "relative path": ["sh", "-c", f'cd "{script.parent}" && exec "{python}" '
                                          f'"{script.name}" "$@"', "sh"],
        }
        for variant, command in variants.items():
            with self.subTest(variant=variant):
                what = f"python script ({variant})"
                source_port = next_port()
                report, _ = self.run_client([*command, INTERNET_V4, ECHO_PORT, source_port])
                self.assertEqual(report["exe"], os.path.realpath(report["exe"]), f"{report}")
                event = self.decided_event(what, "tcp", "outbound", source_port, INTERNET_V4,
                                           ECHO_PORT)
                self.assert_process(event, Expected(
                    what=what, pid=report["pid"], parent_pid=report["ppid"],
                    executable=report["exe"], identity=str(script), script=True))

    def test_bash_script(self):
        script = _PROGRAMS.bash_script
        report, _ = self.run_client([script, INTERNET_V4, ECHO_PORT])
        self.assertGreater(report["localPort"], 0, f"the script did not find its socket: "
                                                   f"{report}")
        self.assertEqual(report["exe"], os.path.realpath(shutil.which("bash")), f"{report}")
        event = self.decided_event("bash script", "tcp", "outbound", report["localPort"],
                                   INTERNET_V4, ECHO_PORT)
        self.assert_process(event, Expected(
            what="bash /dev/tcp script", pid=report["pid"], parent_pid=report["ppid"],
            executable=report["exe"], identity=str(script), script=True))

    def test_fork_exec_chain(self):
        # fork-exec.sh forks a subshell, which execs the client: the connection belongs to the
        # client copy, whose parent is the shell that forked.
        source_port = next_port()
        report, lines = self.run_client([_PROGRAMS.fork_exec_script, _PROGRAMS.chained, "tcp",
                                         INTERNET_V4, ECHO_PORT, "--source-port", source_port],
                                        mode="tcp")
        shell = [line["shell"] for line in lines if "shell" in line]
        self.assertEqual(shell, [report["ppid"]], f"the client's parent is the shell: {lines}")
        event = self.decided_event("fork/exec chain", "tcp", "outbound", source_port,
                                   INTERNET_V4, ECHO_PORT)
        self.assert_process(event, Expected(
            what="client exec'd by a forked subshell", pid=report["pid"], parent_pid=shell[0],
            executable=str(_PROGRAMS.chained)))

    def test_pid_reuse_names_the_new_executable(self):
        # A connects and is attributed, then exits; B, another executable, gets A's PID.
        first_port = next_port()
        first = self.world.spawn("client", [_PROGRAMS.reuse_first, "tcp", INTERNET_V4,
                                            ECHO_PORT, "--source-port", first_port,
                                            "--hold", "0.3"])
        stdout, stderr = first.communicate(timeout=20)  # also reaps it: its PID is free now
        reports = json_lines(stdout.decode())
        self.assertTrue(reports and reports[0].get("outcome") == "ok",
                        f"process A: {stdout!r} {stderr!r}")
        a_report = reports[0]
        event = self.decided_event("process A", "tcp", "outbound", first_port, INTERNET_V4,
                                   ECHO_PORT)
        self.assert_process(event, expected_client("process A", a_report, _PROGRAMS.reuse_first))

        pid = a_report["pid"]
        second_port = next_port()
        completed = self.world.run("client", [
            _PROGRAMS.launcher, "spawn-at", pid, "--tries", 200, "--", _PROGRAMS.reuse_second,
            "tcp", INTERNET_V4, ECHO_PORT, "--source-port", second_port], timeout=30)
        lines = json_lines(completed.stdout)
        launch = next((line for line in lines if line.get("mode") == "spawn-at"), {})
        if launch.get("outcome") != "ok":
            self.skipTest(f"could not start process B with PID {pid} again (another process "
                          f"took it): {launch or completed.stdout} {completed.stderr}")
        b_report = next((line for line in lines if line.get("mode") == "tcp"), {})
        self.assertEqual(b_report.get("pid"), pid, f"{lines} {completed.stderr}")
        self.assertEqual(b_report.get("outcome"), "ok", f"{lines} {completed.stderr}")
        event = self.decided_event("process B", "tcp", "outbound", second_port, INTERNET_V4,
                                   ECHO_PORT)
        self.assert_process(event, expected_client(f"process B (PID {pid} reused)", b_report,
                                                   _PROGRAMS.reuse_second))

    def test_non_root_uid(self):
        user = pwd.getpwuid(NOBODY_UID).pw_name
        self.assertEqual(user, "nobody", "this test expects uid 65534 to be nobody")
        self.check_outbound("tcp", INTERNET_V4, program=_PROGRAMS.unprivileged,
                            prefix=["setpriv", f"--reuid={NOBODY_UID}",
                                    f"--regid={NOBODY_UID}", "--clear-groups"],
                            what="client running as nobody", uid=NOBODY_UID, user=user)

    def test_exact_next_to_a_thousand_idle_processes(self):
        idle = self.world.spawn("client", [_PROGRAMS.idle, "idle", IDLE_PROCESSES])
        try:
            ready = LineReader(idle).line(timeout=60)
            self.assertEqual(ready.get("children"), IDLE_PROCESSES, f"{ready}")
            for kind, host in (("tcp", INTERNET_V4), ("tcp", INTERNET_V6),
                               ("udp-connected", INTERNET_V4), ("udp-connected", INTERNET_V6)):
                with self.subTest(kind=kind, host=host):
                    self.check_outbound(kind, host, what=f"{kind} to {host} next to "
                                                         f"{IDLE_PROCESSES} idle processes")
            with self.subTest(kind="inbound tcp"):
                self.check_inbound("tcp", CLIENT_V4, INTERNET_V4)
        finally:
            idle.send_signal(signal.SIGTERM)  # it SIGKILLs its children by PID, then exits
            idle.wait(timeout=30)
        left = [pid for pid in _CGROUP.pids() if executable_of(pid) == str(_PROGRAMS.idle)]
        self.assertEqual(left, [], "idle processes left behind")

    def fire_and_forget(self):
        """FIRE_AND_FORGET_SENDS processes each send one datagram and exit at once. Returns
        ({category: [...]}, summary text); "right" is the sender's PID, executable and UID,
        "incomplete" its PID without them, "wrong" another process, "wrong parent" the right
        ones whose parentPid is not the sender's parent (the shell)."""
        first = port_block(FIRE_AND_FORGET_SENDS)
        last = first + FIRE_AND_FORGET_SENDS - 1
        loop = (f'for port in $(seq {first} {last}); do "{_PROGRAMS.sender}" udp-sendto '
                f'{INTERNET_V4} {ECHO_PORT} --source-port "$port" || exit 1; done')
        completed = self.world.run("client", ["bash", "-c", loop], timeout=120)
        reports = {line["localPort"]: line for line in json_lines(completed.stdout)
                   if line.get("mode") == "udp-sendto" and line.get("outcome") == "ok"}
        self.assertEqual(len(reports), FIRE_AND_FORGET_SENDS,
                         f"senders: exit {completed.returncode}, {completed.stderr}")

        def decided_by_port(events):
            return {event["local"]["port"]: event for event in events
                    if event.get("event") == "decided" and event.get("protocol") == "udp"
                    and event.get("direction") == "outbound"
                    and (event.get("local") or {}).get("port") in reports
                    and (event.get("remote") or {}).get("port") == ECHO_PORT}

        try:
            events = self.daemon.wait_for(
                lambda events: len(decided_by_port(events)) >= len(reports), 30,
                "a decided event for every datagram")
        except w.DaemonError:
            events = self.daemon.events()  # the missing ones are reported below
        decided = decided_by_port(events)
        outcome = {"right": [], "unidentified": [], "wrong": [], "incomplete": [],
                   "missing": [], "no process field": [], "wrong parent": []}
        for port, report in sorted(reports.items()):
            event = decided.get(port)
            if event is None:
                outcome["missing"].append(report)
                continue
            process = event.get("process")
            got = (process.get("kind"), process.get("pid"), process.get("executable"),
                   process.get("uid")) if process else None
            if got == ("process", report["pid"], str(_PROGRAMS.sender), report["uid"]):
                outcome["right"].append(event)
                if process.get("parentPid") != report["ppid"]:
                    outcome["wrong parent"].append({"sender": report, "event": event})
            elif process is None:
                outcome["no process field"].append(event)
            elif process.get("kind") == "unidentified":
                outcome["unidentified"].append(event)
            elif (process.get("kind"), process.get("pid")) == ("process", report["pid"]):
                # The sender's PID, but not its executable (or UID): half an answer, which
                # rules would match as a different program.
                outcome["incomplete"].append({"sender": report, "event": event})
            else:
                outcome["wrong"].append({"sender": report, "event": event})
        sources = {}
        for event in outcome["right"]:
            source = event["process"].get("source")
            sources[source] = sources.get(source, 0) + 1
        summary = (f"--attribution {self.mode}: {len(outcome['right'])}/{len(reports)} "
                   f"attributed to the sender ({len(outcome['right']) / len(reports):.1%}; "
                   f"sources {sources}), {len(outcome['unidentified'])} unidentified, "
                   f"{len(outcome['wrong'])} WRONG, {len(outcome['incomplete'])} with the "
                   f"sender's PID but not its executable/UID, "
                   f"{len(outcome['missing'])} without an event, "
                   f"{len(outcome['no process field'])} without a \"process\" field"
                   f"; {len(outcome['wrong parent'])} of the attributed with a wrong parentPid"
                   f"\nfirst wrong: {json.dumps(outcome['wrong'][:3])}"
                   f"\nfirst incomplete: {json.dumps(outcome['incomplete'][:2])}"
                   f"\nfirst wrong parent: {json.dumps(outcome['wrong parent'][:2])}"
                   f"\nfirst unidentified: {json.dumps(outcome['unidentified'][:2])}"
                   f"\nfirst missing: {json.dumps(outcome['missing'][:3])}")
        return outcome, summary


def executable_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


class AutoModeTest(SharedCases, AttributionBase):
    """--attribution auto: eBPF socket-owner records first, the socket tables as fallback."""

    mode = "auto"

    def test_fire_and_forget_udp_senders_that_exit_at_once(self):
        outcome, summary = self.fire_and_forget()
        fraction = len(outcome["right"]) / FIRE_AND_FORGET_SENDS
        for category in ("wrong", "incomplete", "wrong parent"):
            self.assertEqual(len(outcome[category]), 0, summary)
        self.assertGreaterEqual(fraction, FIRE_AND_FORGET_MIN_FRACTION, summary)

    def test_live_outbound_connections_come_from_ebpf_records(self):
        # With the programs attached, a live socket's owner is known from the records; a
        # socket-table answer here means the eBPF side silently fell back.
        for kind, host in (("tcp", INTERNET_V4), ("udp-connected", INTERNET_V6)):
            with self.subTest(kind=kind, host=host):
                event = self.check_outbound(kind, host)
                self.assertEqual(event["process"].get("source"), "ebpf",
                                 f"{event}\n{self.daemon.describe()}")


class TablesModeTest(SharedCases, AttributionBase):
    """--attribution tables: sock_diag and the /proc inode index only."""

    mode = "tables"

    def test_fire_and_forget_udp_senders_that_exit_at_once(self):
        # The sender may be gone before /proc is read: "unidentified" is acceptable here, a
        # wrong process never is.
        outcome, summary = self.fire_and_forget()
        for category in ("wrong", "incomplete", "wrong parent", "missing", "no process field"):
            self.assertEqual(len(outcome[category]), 0, summary)
        for event in outcome["unidentified"]:
            self.assertEqual(event["process"].get("pid"), -1, f"{event}")


class AttributionOffTest(AttributionBase):
    """--attribution off: decisions without a "process" field."""

    mode = "off"

    def test_no_process_field(self):
        for kind, host in (("tcp", INTERNET_V4), ("udp-connected", INTERNET_V6)):
            with self.subTest(kind=kind, host=host):
                report = self.connect(_PROGRAMS.outbound, kind, host)
                event = self.decided_event(f"{kind} with attribution off",
                                           "tcp" if kind == "tcp" else "udp", "outbound",
                                           report["localPort"], host, ECHO_PORT)
                self.assertNotIn("process", event, f"{event}")


class BadOptionsTest(unittest.TestCase):
    """Options the user got wrong are refused before anything is touched."""

    def test_a_bpf_cgroup_that_is_not_one_exits_2_and_installs_nothing(self):
        with w.World() as world:
            before = world.rules()
            daemon = w.start_daemon_seeing_host_mounts(
                world, {"filter": {"defaultAction": "permit", "blockInbound": False}},
                ["--attribution", "auto", "--bpf-cgroup", "/nonexistent/pwt-cgroup"], wait=False)
            try:
                code = daemon.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            self.assertEqual(code, 2, daemon.describe())
            self.assertIn("--bpf-cgroup /nonexistent/pwt-cgroup is not a cgroup v2 directory",
                          daemon.stderr(), daemon.describe())
            self.assertEqual(world.rules(), before, "rules were installed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
