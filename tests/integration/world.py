"""A throw-away network world for the portwarden integration tests.

World builds two network namespaces with unique names, `client` and `internet`, joined by a veth
pair:

    client   (pwt-<pid>-<rand>-c)  pw0  10.77.0.1/24   fd77::1/64
    internet (pwt-<pid>-<rand>-i)  pw0  10.77.0.2/24   fd77::2/64
                                        10.77.0.3/24   fd77::3/64   (second address, for rules)

Everything the tests do runs through `ip netns exec` in one of those namespaces: the echo
services, the probes, the daemon and `portwarden iptables ...`. Nothing is ever installed in the
root namespace: the veth pair is created inside the client namespace, and the only commands
that run in the root namespace are `ip netns add/del/pids` and the read-only `iptables-save`
used to prove the root namespace was not touched.

Teardown (World.__exit__, atexit, SIGTERM/SIGINT/SIGHUP) kills the processes the world started
(by PID, plus any process still inside its namespaces), then deletes the namespaces. A world
whose test runner was SIGKILLed (a ctest timeout) is swept by the next World: each world writes
its namespace names with its owner PID under REGISTRY, and a registered namespace whose owner is
dead is deleted.

For the eBPF side of process attribution, TestCgroup (end of this file) moves the test runner into
a cgroup v2 child of its own, pwt-<pid>-<hex>, the only cgroup the daemon's programs are attached
to (`--bpf-cgroup`), and start_daemon_seeing_host_mounts() starts a daemon that can open it.
Stale pwt-* cgroups are swept the same way as stale namespaces.

For DNS, World.write_namespace_resolv_conf() gives a namespace its own /etc/resolv.conf (and
an nsswitch.conf whose hosts line is "files dns"): `ip netns exec NS` bind-mounts every file of
/etc/netns/NS over /etc, so getent and every glibc program run through World.run/spawn in that
namespace resolve through the given nameserver. The directory goes with the namespace, at
teardown and in the stale-world sweep.
"""

import atexit
import concurrent.futures
import dataclasses
import difflib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

TOOLS = Path(__file__).resolve().parent / "tools"
PROBE = TOOLS / "probe.py"
ECHO_SERVER = TOOLS / "echo_server.py"
REGISTRY = Path("/run/pwt-integration")
# `ip netns exec NS` bind-mounts each file of NETNS_ETC/NS over the file of the same name in /etc.
NETNS_ETC = Path("/etc/netns")
SKIP_MESSAGE = "needs root and ip netns"
# What a suite or program exits with when it cannot run here (ctest SKIP_RETURN_CODE; see
# runner.py). Skips are told by exit code only: no test has a skip pattern on its output, so a
# failure that prints "needs root" (a busy NFQUEUE, say) stays a failure.
SKIP_EXIT_CODE = 77


def skips_are_failures():
    """In CI (CI=true) everything the tests need is installed: a skip is a test that did not run."""
    return os.environ.get("CI") == "true"


def skip_exit_code():
    """The exit code for "cannot run here": SKIP_EXIT_CODE, or 1 (a failure) under CI=true."""
    return 1 if skips_are_failures() else SKIP_EXIT_CODE

CLIENT_V4, INTERNET_V4, INTERNET_V4_ALT = "10.77.0.1", "10.77.0.2", "10.77.0.3"
CLIENT_V6, INTERNET_V6, INTERNET_V6_ALT = "fd77::1", "fd77::2", "fd77::3"

# The connection marks of the seed design, as iptables-save prints them (hex).
MARKS = {1700: "0x6a4", 1701: "0x6a5", 1702: "0x6a6", 1710: "0x6ae", 1711: "0x6af",
         1712: "0x6b0", 1717: "0x6b5", 1799: "0x707"}
_OUR_RULE = re.compile(r"\bC17[01]?\b|NFQUEUE|DNAT|--mark (" + "|".join(MARKS.values()) + r")\b")


# ---------------------------------------------------------------------------------------------
# Prerequisites


def _run_root(argv, timeout=10):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def missing_prerequisite(need_daemon=True):
    """Why the integration tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return f"{SKIP_MESSAGE}: not running as root (euid {os.geteuid()})"
    for tool in ("ip", "iptables-save", "ip6tables-save", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"{SKIP_MESSAGE}: `{tool}` not found in PATH"
    name = f"pwt-{os.getpid()}-{secrets.token_hex(2)}-chk"
    try:
        added = _run_root(["ip", "netns", "add", name])
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{SKIP_MESSAGE}: `ip netns add` failed: {error}"
    if added.returncode != 0:
        return f"{SKIP_MESSAGE}: `ip netns add` failed: {added.stderr.strip()}"
    _run_root(["ip", "netns", "del", name])
    if need_daemon:
        binary = os.environ.get("PORTWARDEN_BIN", "")
        if not binary:
            return f"{SKIP_MESSAGE}: PORTWARDEN_BIN is not set (ctest sets it)"
        if not os.access(binary, os.X_OK):
            return f"{SKIP_MESSAGE}: PORTWARDEN_BIN={binary} is not an executable file"
    return None


def normalize_save(text):
    """iptables-save output without timestamps and counters, so two saves can be compared."""
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        lines.append(re.sub(r"\[\d+:\d+\]", "[0:0]", line))
    return "\n".join(lines)


def our_rules(save_text):
    """The lines of an iptables-save that belong to portwarden (chains, queues, marks, DNAT)."""
    return [line for line in save_text.splitlines() if _OUR_RULE.search(line)]


def skip_suite(reason):
    """Ends a module's setUpModule when its suite cannot run here: the reason goes to stderr
    (ctest shows it) and unittest.SkipTest, which runner.py turns into the skip exit code."""
    print(f"INTEGRATION SKIPPED: {reason}", file=sys.stderr, flush=True)
    raise unittest.SkipTest(reason)


def suite_cgroup():
    """A TestCgroup for the whole module, entered (close() it in tearDownModule); the suite is
    skipped, with the reason, where there is no cgroup v2 to make one in."""
    try:
        return TestCgroup().__enter__()
    except unittest.SkipTest as skip:
        skip_suite(str(skip))
        raise  # not reached: skip_suite raises


def root_namespace_rules():
    """Read-only snapshot of the root namespace's rules (iptables-save never writes)."""
    snapshot = {}
    for tool in ("iptables-save", "ip6tables-save"):
        completed = _run_root([tool])
        snapshot[tool] = normalize_save(completed.stdout) + completed.stderr
    return snapshot


def suite_leftovers(rules_before):
    """What this test process left behind: its namespaces, and any change to the root
    namespace's rules since `rules_before` (root_namespace_rules() when the suite began)."""
    problems = []
    leftovers = [name for name in live_worlds_namespaces()
                 if name.startswith(f"pwt-{os.getpid()}-")]
    if leftovers:
        problems.append(f"namespaces left behind: {leftovers}")
    after = root_namespace_rules()
    for tool, before in rules_before.items():
        if after[tool] != before:
            diff = "\n".join(difflib.unified_diff(before.splitlines(), after[tool].splitlines(),
                                                  "before", "after", lineterm=""))
            problems.append(f"root namespace {tool} changed during the suite:\n{diff}")
    return problems


def live_worlds_namespaces():
    listed = _run_root(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith("pwt-")]


# ---------------------------------------------------------------------------------------------
# Cleanup of every world, also on signals and at exit

_LIVE_WORLDS = set()
_CLEANUP_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _teardown_all():
    for world in list(_LIVE_WORLDS):
        world.close()


def _on_signal(signum, _frame):
    _teardown_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup_handlers():
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_teardown_all)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, _on_signal)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(namespace):
    """SIGKILLs what still runs inside one of our namespaces: only our test processes can."""
    listed = _run_root(["ip", "netns", "pids", namespace])
    for token in listed.stdout.split():
        if token.isdigit() and int(token) != os.getpid():
            try:
                os.kill(int(token), signal.SIGKILL)
            except ProcessLookupError:
                pass


def sweep_stale_worlds():
    """Deletes namespaces registered by earlier test runs whose owner process is gone."""
    if not REGISTRY.is_dir():
        return
    for entry in REGISTRY.iterdir():
        try:
            owner = int(entry.read_text().strip() or "0")
        except (OSError, ValueError):
            continue
        if owner and _pid_alive(owner):
            continue
        _kill_namespace_processes(entry.name)
        _run_root(["ip", "netns", "del", entry.name])
        remove_namespace_etc(entry.name)
        entry.unlink(missing_ok=True)


_NETNS_ETC_CREATED = False


def remove_namespace_etc(namespace):
    """Deletes /etc/netns/<namespace> (the per-namespace resolv.conf), for our pwt-* names
    only; /etc/netns itself too if this process created it and it is empty now."""
    if not namespace.startswith("pwt-") or "/" in namespace:
        return
    shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)
    if _NETNS_ETC_CREATED:
        try:
            NETNS_ETC.rmdir()
        except OSError:
            pass  # not empty: another world still uses it


# ---------------------------------------------------------------------------------------------
# Results and the daemon handle


@dataclasses.dataclass
class ProbeResult:
    outcome: str
    elapsed: float
    local_ip: str | None = None
    local_port: int | None = None
    detail: str = ""
    raw: dict = dataclasses.field(default_factory=dict)

    def __str__(self):
        where = f" from {self.local_ip}:{self.local_port}" if self.local_port else ""
        target = f"{self.raw.get('host', '?')}:{self.raw.get('port', '')}"
        return (f"{self.raw.get('mode', '?')} {target}"
                f" -> {self.outcome} in {self.elapsed:.3f}s{where} ({self.detail})")


def parse_events(text):
    """One JSON object per line; a partly written last line is ignored."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


class DaemonError(AssertionError):
    pass


class Daemon:
    """A `portwarden run` in the client namespace, with its config, events and stderr files."""

    def __init__(self, world, process, directory, config_path, events_path, stderr_path):
        self.world = world
        self.process = process
        self.directory = directory
        self.config_path = config_path
        self.events_path = events_path
        self.stderr_path = stderr_path
        self.returncode = None

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def events(self, kind=None):
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        events = parse_events(text)
        return [event for event in events if kind is None or event.get("event") == kind]

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self, limit=4000):
        """Daemon state for failure messages: exit code, stderr tail, event count."""
        state = "running" if self.alive() else f"exited with {self.process.returncode}"
        text = self.stderr()
        tail = text[-limit:] if len(text) > limit else text
        return (f"daemon pid {self.pid} {state}; {len(self.events())} events in "
                f"{self.events_path}\n--- daemon stderr (tail) ---\n{tail}--- end ---")

    def wait_for(self, predicate, timeout=5.0, what="event"):
        """Polls the events file until predicate(events) is true; returns the events."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                raise DaemonError(f"timed out after {timeout}s waiting for {what}\n"
                                  + self.describe())
            time.sleep(0.05)

    def wait_started(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            if any(event.get("event") == "started" for event in self.events()):
                return
            if not self.alive():
                raise DaemonError("daemon exited before its \"started\" event\n"
                                  + self.describe())
            if time.monotonic() > deadline:
                raise DaemonError(f"no \"started\" event within {timeout}s\n" + self.describe())
            time.sleep(0.05)

    def stop(self, signum=signal.SIGTERM, timeout=10.0):
        """Sends signum and waits; returns the exit code (negative: killed by a signal)."""
        if self.alive():
            self.process.send_signal(signum)
        try:
            self.returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait(timeout=5)
            raise DaemonError(f"daemon did not exit within {timeout}s of signal {signum}; "
                              "SIGKILLed\n" + self.describe()) from None
        return self.returncode

    def kill(self):
        return self.stop(signal.SIGKILL, timeout=5)


# ---------------------------------------------------------------------------------------------
# The world


class World:
    """Two namespaces, a veth pair and whatever processes the test starts in them."""

    VETH = "pw0"

    def __init__(self, portwarden_bin=None, static_neighbours=True):
        self.portwarden_bin = portwarden_bin or os.environ.get("PORTWARDEN_BIN", "")
        self.static_neighbours = static_neighbours
        tag = f"pwt-{os.getpid()}-{secrets.token_hex(2)}"
        self.namespaces = {"client": f"{tag}-c", "internet": f"{tag}-i"}
        self.directory = None
        self.processes = []
        self.daemons = []
        self._created = []
        self._closed = False
        self._lock = threading.Lock()

    # Life cycle -------------------------------------------------------------------------------

    def __enter__(self):
        reason = missing_prerequisite(need_daemon=False)
        if reason:
            raise unittest.SkipTest(reason)
        _install_cleanup_handlers()
        sweep_stale_worlds()
        _LIVE_WORLDS.add(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc):
        self.close()
        return False

    def _build(self):
        self.directory = Path(tempfile.mkdtemp(prefix="pwt-world-"))
        REGISTRY.mkdir(parents=True, exist_ok=True)
        for name in self.namespaces.values():
            (REGISTRY / name).write_text(str(os.getpid()))
            self._must(["ip", "netns", "add", name])
            self._created.append(name)
        client, internet = self.namespaces["client"], self.namespaces["internet"]
        for name in (client, internet):
            # A quiet IPv6: no router solicitations, no DAD, MLD reports done quickly, so
            # the only packets the daemon sees are the ones a test sends.
            for key, value in (("accept_ra", 0), ("router_solicitations", 0),
                               ("accept_dad", 0), ("dad_transmits", 0),
                               ("mldv1_unsolicited_report_interval", 1),
                               ("mldv2_unsolicited_report_interval", 1)):
                for scope in ("all", "default"):
                    self._sysctl(name, f"net.ipv6.conf.{scope}.{key}", value)
            self._must(["ip", "-n", name, "link", "set", "lo", "up"])
        # Created inside the client namespace with the peer moved straight into `internet`:
        # the root namespace never sees the interfaces.
        self._must(["ip", "-n", client, "link", "add", self.VETH, "type", "veth",
                    "peer", "name", self.VETH, "netns", internet])
        addresses = {client: [f"{CLIENT_V4}/24", f"{CLIENT_V6}/64"],
                     internet: [f"{INTERNET_V4}/24", f"{INTERNET_V4_ALT}/24",
                                f"{INTERNET_V6}/64", f"{INTERNET_V6_ALT}/64"]}
        for name, cidrs in addresses.items():
            for cidr in cidrs:
                extra = ["nodad"] if ":" in cidr else []
                self._must(["ip", "-n", name, "addr", "add", cidr, "dev", self.VETH] + extra)
            self._must(["ip", "-n", name, "link", "set", self.VETH, "up"])
        if self.static_neighbours:
            # Permanent neighbour entries: no ARP/NDP during tests, so no ICMPv6 neighbour
            # discovery packets compete with the probes in the daemon's queues.
            macs = {name: self._mac(name) for name in (client, internet)}
            for address in (INTERNET_V4, INTERNET_V4_ALT, INTERNET_V6, INTERNET_V6_ALT):
                self._must(["ip", "-n", client, "neigh", "replace", address, "lladdr",
                            macs[internet], "dev", self.VETH, "nud", "permanent"])
            for address in (CLIENT_V4, CLIENT_V6):
                self._must(["ip", "-n", internet, "neigh", "replace", address, "lladdr",
                            macs[client], "dev", self.VETH, "nud", "permanent"])

    def _mac(self, namespace):
        shown = self._must(["ip", "-n", namespace, "-j", "link", "show", self.VETH])
        return json.loads(shown.stdout)[0]["address"]

    def _sysctl(self, namespace, key, value):
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(namespace, ["sh", "-c", f"[ -e {path} ] && echo {value} > {path} || true"])

    def _must(self, argv, timeout=10):
        completed = _run_root(argv, timeout=timeout)
        if completed.returncode != 0:
            raise RuntimeError(f"world setup: {' '.join(argv)} failed "
                               f"({completed.returncode}): {completed.stderr.strip()}")
        return completed

    def close(self):
        """Kills our processes and deletes our namespaces. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for daemon in self.daemons:
            if daemon.alive():
                try:
                    daemon.stop(signal.SIGTERM, timeout=3)
                except Exception:  # noqa: BLE001 - teardown must go on
                    pass
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.terminate()
                    process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    process.kill()
                    try:
                        process.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        pass
                except OSError:
                    pass
        for name in self._created:
            try:
                _kill_namespace_processes(name)
                _run_root(["ip", "netns", "del", name])
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
            remove_namespace_etc(name)
            (REGISTRY / name).unlink(missing_ok=True)
        for process in self.processes:
            for stream in (process.stdout, process.stderr, process.stdin):
                if stream:
                    stream.close()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        _LIVE_WORLDS.discard(self)

    # Running things ----------------------------------------------------------------------------

    def ns(self, namespace):
        return self.namespaces.get(namespace, namespace)

    def run(self, namespace, argv, timeout=15, input=None):  # noqa: A002 - subprocess's name
        """Runs argv inside a namespace; returns the CompletedProcess (never raises on exit)."""
        return subprocess.run(["ip", "netns", "exec", self.ns(namespace), *map(str, argv)],
                              capture_output=True, text=True, timeout=timeout, input=input,
                              check=False)

    def spawn(self, namespace, argv, **popen_kwargs):
        """Starts argv inside a namespace; the process is killed at teardown."""
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        popen_kwargs.setdefault("stdout", subprocess.PIPE)
        popen_kwargs.setdefault("stderr", subprocess.PIPE)
        process = subprocess.Popen(["ip", "netns", "exec", self.ns(namespace), *map(str, argv)],
                                   start_new_session=True, **popen_kwargs)
        self.processes.append(process)
        return process

    def _start_echo(self, namespace, addresses, tcp_ports, udp_ports, timeout=10):
        argv = [sys.executable, ECHO_SERVER]
        for address in addresses:
            argv += ["--address", address]
        for port in tcp_ports:
            argv += ["--tcp", port]
        for port in udp_ports:
            argv += ["--udp", port]
        process = self.spawn(namespace, argv, text=True)
        ready = {}

        def read_ready():
            ready["line"] = process.stdout.readline()

        reader = threading.Thread(target=read_ready, daemon=True)
        reader.start()
        reader.join(timeout)
        if ready.get("line", "").strip() != "READY":
            if process.poll() is None:
                process.kill()
            stderr = process.stderr.read() if process.poll() is not None else ""
            raise RuntimeError(f"echo server in {namespace} not ready: {stderr.strip()}")
        return process

    def start_echo_services(self, tcp_ports=(9000, 9001), udp_ports=(9000, 9001)):
        """TCP and UDP echo on every internet address (v4 and v6, both addresses)."""
        return self._start_echo("internet",
                                [INTERNET_V4, INTERNET_V4_ALT, INTERNET_V6, INTERNET_V6_ALT],
                                tcp_ports, udp_ports)

    def start_client_listener(self, tcp_ports=(9100,), udp_ports=(9100,)):
        """TCP and UDP echo in the client namespace, for inbound connections."""
        return self._start_echo("client", [CLIENT_V4, CLIENT_V6], tcp_ports, udp_ports)

    # Name resolution inside a namespace -----------------------------------------------------

    def write_namespace_resolv_conf(self, namespace="client", nameservers=("127.0.0.17",),
                                    options=("timeout:3", "attempts:1"), nsswitch=True):
        """Writes /etc/netns/<ns>/resolv.conf (and, with nsswitch, an nsswitch.conf that is
        the host's with its hosts line set to "files dns", so no NSS module of the host
        answers instead of DNS). Takes effect for commands started afterwards through
        run()/spawn(); removed at teardown. Returns the directory."""
        global _NETNS_ETC_CREATED
        name = self.ns(namespace)
        if name not in self._created:
            raise ValueError(f"{namespace} is not a namespace of this world")
        if not NETNS_ETC.exists():
            NETNS_ETC.mkdir(mode=0o755)
            _NETNS_ETC_CREATED = True
        directory = NETNS_ETC / name
        directory.mkdir(mode=0o755, exist_ok=True)
        lines = [f"nameserver {server}" for server in nameservers]
        if options:
            lines.append("options " + " ".join(options))
        (directory / "resolv.conf").write_text("\n".join(lines) + "\n")
        if nsswitch:
            try:
                host_lines = Path("/etc/nsswitch.conf").read_text().splitlines()
            except OSError:
                host_lines = ["passwd: files", "group: files", "shadow: files"]
            kept = [line for line in host_lines if not re.match(r"\s*hosts\s*:", line)]
            (directory / "nsswitch.conf").write_text("\n".join(kept + ["hosts: files dns"])
                                                     + "\n")
        return directory

    # The daemon --------------------------------------------------------------------------------

    def portwarden(self, args, namespace="client", timeout=30):
        """Runs `portwarden ARGS...` inside a namespace (default: client)."""
        return self.run(namespace, [self.portwarden_bin, *args], timeout=timeout)

    # False: configs written by write_config() set events/repeatLimit 0 unless they set it.
    sum_up_repeated_events = False

    def write_config(self, config, name="config.json"):
        """Writes a config (dict: JSON, one endpoint per line; str: verbatim); returns its path."""
        directory = Path(tempfile.mkdtemp(prefix="daemon-", dir=self.directory))
        path = directory / name
        if (isinstance(config, dict) and not self.sum_up_repeated_events
                and "events/repeatLimit" not in config):
            # The tests look for the event of each connection they make: identical decisions
            # are not summed up (events/repeatLimit 0) unless a test asks for it.
            config = dict(config)
            events = dict(config.get("events") or {})
            events.setdefault("repeatLimit", 0)
            config["events"] = events
        path.write_text(config if isinstance(config, str) else json.dumps(config, indent=2) + "\n")
        return path

    def start_daemon(self, config, extra_args=(), wait=True, timeout=10.0):
        """Starts `portwarden run` in the client namespace and waits for its "started" event.

        A dict config without DNS upstreams gets dns/nameservers = the internet namespace, so
        that the daemon never depends on the host's /etc/resolv.conf (which it would read, and
        which may name only a local stub: the daemon then refuses to start)."""
        config = with_test_upstream(config)
        config_path = self.write_config(config)
        directory = config_path.parent
        events_path = directory / "events.jsonl"
        stderr_path = directory / "stderr.log"
        stdout_path = directory / "stdout.log"
        with open(stderr_path, "wb") as stderr, open(stdout_path, "wb") as stdout:
            process = self.spawn("client", [self.portwarden_bin, "run", "--config", config_path,
                                            "--events", events_path,
                                            *hermetic_args(extra_args, directory)],
                                 stdout=stdout, stderr=stderr)
        daemon = Daemon(self, process, directory, config_path, events_path, stderr_path)
        self.daemons.append(daemon)
        if wait:
            daemon.wait_started(timeout)
        return daemon

    # Probes -------------------------------------------------------------------------------------

    def probe(self, mode, host, port=0, timeout=1.5, namespace="client", **options):
        argv = [sys.executable, PROBE, mode, host, port, "--timeout", timeout]
        for key, value in options.items():
            argv += [f"--{key}", value]
        completed = self.run(namespace, argv, timeout=timeout + 15)
        lines = completed.stdout.strip().splitlines()
        try:
            raw = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            return ProbeResult("error", 0.0, detail=f"probe failed: rc={completed.returncode} "
                               f"stdout={completed.stdout!r} stderr={completed.stderr!r}")
        return ProbeResult(raw["outcome"], raw["elapsed"], raw.get("local_ip"),
                           raw.get("local_port"), raw.get("detail", ""), raw)

    def tcp(self, host, port, timeout=1.5, namespace="client", **options):
        return self.probe("tcp", host, port, timeout, namespace, **options)

    def udp(self, host, port, timeout=1.5, namespace="client", **options):
        return self.probe("udp", host, port, timeout, namespace, **options)

    def ping(self, host, timeout=1.5, namespace="client", **options):
        return self.probe("ping", host, 0, timeout, namespace, **options)

    def malformed(self, host, port=9000, namespace="client"):
        return self.probe("malformed", host, port, 1.0, namespace)

    def probes(self, specs, workers=16):
        """Runs probes in parallel. specs: (mode, host, port, options-dict) tuples; results in
        the same order."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self.probe, mode, host, port, **options)
                       for mode, host, port, options in specs]
            return [future.result() for future in futures]

    # Rules ---------------------------------------------------------------------------------------

    def queue_counters(self, namespace="client"):
        """{queue number: packets that hit its NFQUEUE rule}, from `ip(6)tables-save -c`."""
        counters = {}
        for tool in ("iptables-save", "ip6tables-save"):
            completed = self.run(namespace, [tool, "-c", "-t", "mangle"])
            for line in completed.stdout.splitlines():
                match = re.match(r"\[(\d+):\d+\] .*NFQUEUE --queue-num (\d+)", line)
                if match:
                    queue = int(match.group(2))
                    counters[queue] = counters.get(queue, 0) + int(match.group(1))
        return counters

    def rules(self, namespace="client"):
        """Normalized iptables-save + ip6tables-save of a namespace."""
        texts = []
        for tool in ("iptables-save", "ip6tables-save"):
            completed = self.run(namespace, [tool])
            texts.append(f"### {tool}\n" + normalize_save(completed.stdout) + completed.stderr)
        return "\n".join(texts)


# ---------------------------------------------------------------------------------------------
# A cgroup v2 directory of the test's own, for the daemon's eBPF programs
#
# `portwarden run --bpf-cgroup DIR` attaches its cgroup hooks to DIR, and they observe every
# process in DIR and below. The tests never let it attach to the host's cgroup v2 root: the test
# runner moves itself into a fresh child cgroup (TestCgroup), so every process it starts inherits
# it (`ip netns exec` children, the daemon, the clients), and passes that directory.

CGROUP2_CANDIDATES = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
_CGROUP_NAME = re.compile(r"^pwt-(\d+)-[0-9a-f]+$")


def hermetic_args(extra_args, directory):
    """`extra_args`, plus `--attribution tables` unless they name a mode or a --bpf-cgroup (see
    below); `--resolved-monitor off` unless they name a monitor socket: a daemon
    under test must not subscribe to the host's systemd-resolved (its answers would label the
    test's connections); and `--data-dir DIRECTORY/data` unless they name one, so that its
    settings database is the test's own (a test that restarts a daemon passes the same one)."""
    extra_args = list(extra_args)
    # Without a cgroup of the test's own, no eBPF: the daemon would otherwise mount a private
    # cgroup2 (it sees none under `ip netns exec`) and attach to the host's cgroup v2 root.
    if "--bpf-cgroup" not in extra_args and "--attribution" not in extra_args:
        extra_args += ["--attribution", "tables"]
    if "--resolved-monitor" not in extra_args:
        extra_args += ["--resolved-monitor", "off"]
    if "--data-dir" not in extra_args:
        extra_args += ["--data-dir", Path(directory) / "data"]
    return extra_args


def with_test_upstream(config):
    """`config` with dns/nameservers set to the internet namespace's address unless it has
    DNS upstreams (or is a string, written verbatim)."""
    if not isinstance(config, dict):
        return config
    if "dns/nameservers" in config or "nameservers" in config.get("dns", {}):
        return config
    return {**config, "dns/nameservers": [f"dns://{INTERNET_V4}"]}


def cgroup2_root():
    """The cgroup v2 hierarchy: /sys/fs/cgroup on unified systems, /sys/fs/cgroup/unified on
    hybrid ones (the first of the two that /proc/mounts lists as cgroup2), or None."""
    mounted = set()
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                mounted.add(fields[1])
    except OSError:
        return None
    for candidate in CGROUP2_CANDIDATES:
        if candidate in mounted:
            return Path(candidate)
    return None


def own_cgroup2_path(pid="self"):
    """A process's cgroup v2 path relative to the hierarchy's root ("/" for the root)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def _cgroup_procs(directory):
    try:
        return [int(token) for token in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _empty_and_remove_cgroup(directory, destination, timeout=5.0):
    """Moves every process out of directory (and its sub-cgroups) into destination, then
    removes the directories, deepest first. Returns an error text, or "" on success."""
    children = sorted((path for path in directory.rglob("*") if path.is_dir()),
                      key=lambda path: len(path.parts), reverse=True)
    deadline = time.monotonic() + timeout
    last_error = ""
    for cgroup in [*children, directory]:
        while True:
            for pid in _cgroup_procs(cgroup):
                try:
                    (destination / "cgroup.procs").write_text(str(pid))
                except OSError:
                    pass  # exited meanwhile
            try:
                cgroup.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as error:
                # EBUSY while an exiting process is still being released.
                last_error = f"rmdir {cgroup}: {error}"
                if time.monotonic() > deadline:
                    return last_error
                time.sleep(0.05)
    return ""


def sweep_stale_cgroups():
    """Removes pwt-<pid>-<hex> cgroups whose owner (the test runner <pid>) is gone; what still
    runs in them goes to the hierarchy's root."""
    root = cgroup2_root()
    if root is None:
        return
    for entry in root.iterdir():
        match = _CGROUP_NAME.match(entry.name)
        if not match or not entry.is_dir() or _pid_alive(int(match.group(1))):
            continue
        _empty_and_remove_cgroup(entry, root)


class TestCgroup:
    """A child cgroup of the cgroup v2 root that holds the test runner and all its children.

        with TestCgroup() as cgroup:      # or cgroup = TestCgroup().__enter__()
            daemon = start_daemon_seeing_host_mounts(world, config,
                                                     ["--bpf-cgroup", cgroup.path])

    Entering creates <root>/pwt-<pid>-<hex> and moves this process into it, so every process
    started afterwards is inside. Closing (also at exit and on SIGTERM/SIGINT/SIGHUP, after the
    worlds are torn down) moves whatever is left in it back to the runner's original cgroup and
    removes it. A cgroup whose runner was SIGKILLed is removed by the next TestCgroup.
    """

    def __init__(self):
        self.root = cgroup2_root()
        self.path = None
        self.original = None
        self._previous_handlers = {}
        self._closed = False

    def __enter__(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest(f"{SKIP_MESSAGE}: not running as root")
        if self.root is None:
            raise unittest.SkipTest("no cgroup v2 hierarchy at " + " or ".join(CGROUP2_CANDIDATES))
        sweep_stale_cgroups()
        self.original = self.root / own_cgroup2_path().lstrip("/")
        self.path = self.root / f"pwt-{os.getpid()}-{secrets.token_hex(3)}"
        self.path.mkdir()
        # The worlds' handlers first, so that ours (which tear the worlds down before the
        # cgroup) wrap them instead of being replaced by them.
        _install_cleanup_handlers()
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                self._previous_handlers[signum] = signal.getsignal(signum)
                signal.signal(signum, self._on_signal)
        try:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc):
        self.close()
        return False

    def _on_signal(self, signum, frame):
        _teardown_all()
        self.close()
        previous = self._previous_handlers.get(signum)
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def pids(self):
        """The processes in the cgroup (not in its sub-cgroups)."""
        return _cgroup_procs(self.path) if self.path else []

    def close(self):
        """Moves every process back to the runner's original cgroup and removes the cgroup.
        Safe to call more than once; raises if the directory could not be removed."""
        if self._closed or self.path is None:
            return
        self._closed = True
        for signum, previous in self._previous_handlers.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
        atexit.unregister(self.close)
        error = _empty_and_remove_cgroup(self.path, self.original)
        if error:
            raise RuntimeError(f"TestCgroup: {error}; still inside: {_cgroup_procs(self.path)}")


def live_test_cgroups():
    """The pwt-* cgroups that exist now (for the end-of-suite leak check)."""
    root = cgroup2_root()
    if root is None:
        return []
    return sorted(entry.name for entry in root.iterdir() if _CGROUP_NAME.match(entry.name))


def start_daemon_seeing_host_mounts(world, config, extra_args=(), wait=True, timeout=10.0):
    """World.start_daemon, except that the daemon sees the runner's mounts.

    `ip netns exec` gives its command a private mount namespace with a fresh sysfs on /sys, in
    which /sys/fs/cgroup is an empty directory: a daemon started by World.start_daemon cannot
    open a --bpf-cgroup directory there. This one runs `ip netns exec NS nsenter
    --mount=/proc/<runner>/ns/mnt -- portwarden run ...`: still the client network namespace,
    but the runner's /sys/fs/cgroup. nsenter execs (it forks only for a PID namespace), so the
    Popen's PID is the daemon's.
    """
    config_path = world.write_config(with_test_upstream(config))
    directory = config_path.parent
    events_path = directory / "events.jsonl"
    stderr_path = directory / "stderr.log"
    stdout_path = directory / "stdout.log"
    with open(stderr_path, "wb") as stderr, open(stdout_path, "wb") as stdout:
        process = world.spawn("client", ["nsenter", f"--mount=/proc/{os.getpid()}/ns/mnt", "--",
                                         world.portwarden_bin, "run", "--config", config_path,
                                         "--events", events_path,
                                         *hermetic_args(extra_args, directory)],
                              stdout=stdout, stderr=stderr)
    daemon = Daemon(world, process, directory, config_path, events_path, stderr_path)
    world.daemons.append(daemon)
    if wait:
        daemon.wait_started(timeout)
    return daemon
