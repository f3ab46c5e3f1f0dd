"""Real DNS servers for the DNS integration tests and the dnsperf benchmark.

    pki = make_test_pki(directory)                # a test CA and a certificate for dns.pwtest
    nsd = start_nsd(world, pki)                   # authoritative for pwtest. in `internet`
    ...
    nsd.stop()                                    # or world.close(), which kills it anyway

`start_nsd` runs Debian's nsd in the world's `internet` namespace on 10.77.0.2 and fd77::2, port
53 (UDP and TCP) and 853 (TLS, certificate for dns.pwtest signed by the test CA), serving the
zone below. It returns once dig has an answer over UDP, TCP and TLS.

`start_unbound` and `start_dnsmasq` run the two reference caching forwarders in front of it (the
benchmark's peers), `start_silent_server` a server that reads queries and never answers (an
upstream that is "up" but useless). `dig()` runs dig in a namespace and parses what it printed.

Everything runs through the `world` object (tests/integration/world.py World, or anything with
its `spawn(namespace, argv, ...)`, `run(namespace, argv, timeout=...)`), so every process is in a
namespace of the world and is killed with it; stop() kills by PID. Files go to a directory of
the caller's (normally under the world's temporary directory). Standard library only.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INTERNET_V4, INTERNET_V4_ALT = "10.77.0.2", "10.77.0.3"
INTERNET_V6 = "fd77::2"

ZONE = "pwtest"
TLS_NAME = "dns.pwtest"
DEFAULT_TTL = 300

# big.pwtest: TXT records whose answer is ~2 kB, more than the 1232 bytes of EDNS buffer that
# nsd, dig and most resolvers use since DNS flag day 2020, so UDP answers come back truncated
# (TC) and are fetched again over TCP. Under 4 kB, so one TCP message holds them easily.
BIG_TXT_COUNT = 12
BIG_TXT_LENGTH = 150


def big_txt_strings():
    """The TXT strings of big.pwtest, in zone order (dig prints them quoted)."""
    return [f"pwtest-big-{index:02d}-" + "x" * (BIG_TXT_LENGTH - 14)
            for index in range(BIG_TXT_COUNT)]


def zone_text(serial=1):
    """The pwtest. zone. Every name the tests and the benchmark use is here."""
    lines = [
        f"$ORIGIN {ZONE}.",
        f"$TTL {DEFAULT_TTL}",
        f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. {serial} 3600 600 86400 60",
        f"@ IN NS ns.{ZONE}.",
        f"ns IN A {INTERNET_V4}",
        f"dns IN A {INTERNET_V4}",
        f"www IN A {INTERNET_V4}",
        f"www IN AAAA {INTERNET_V6}",
        # A second name for the same address: domain attribution must keep them apart per
        # process.
        f"other IN A {INTERNET_V4}",
        f"alt IN A {INTERNET_V4_ALT}",
        # A chain of two CNAMEs ending in www.
        f"alias IN CNAME cdn.{ZONE}.",
        f"cdn IN CNAME www.{ZONE}.",
        f"short 1 IN A {INTERNET_V4_ALT}",
        f"blocked IN A {INTERNET_V4_ALT}",
        f"blocked IN AAAA {INTERNET_V6}",
        f"x.tracker IN A {INTERNET_V4_ALT}",
        # An address of Internet scope (routed to the internet namespace by the tests that
        # use it), for blockP2P: a direct connection versus one after resolving.
        "public IN A 203.0.113.5",
        # Any name under wild.pwtest: unique names for cache misses.
        f"*.wild IN A {INTERNET_V4}",
    ]
    lines += [f'big IN TXT "{text}"' for text in big_txt_strings()]
    return "\n".join(lines) + "\n"


class DnsServerError(RuntimeError):
    pass


def missing_tools(tools, skip_message):
    """Why a suite that needs `tools` and nsd cannot run here (`skip_message`: ...), or None."""
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{skip_message}: `{tool}` not found in PATH"
    try:
        tool_path("nsd")
    except DnsServerError as error:
        return f"{skip_message}: {error}"
    return None


def _run(argv, timeout=60):
    completed = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True,
                               timeout=timeout, check=False)
    if completed.returncode != 0:
        raise DnsServerError(f"{' '.join(map(str, argv))} failed ({completed.returncode}): "
                             f"{completed.stderr.strip() or completed.stdout.strip()}")
    return completed


def missing_dns_tools(tools=("nsd", "dig", "openssl")):
    """Why the DNS servers cannot run here (a tool is missing), or None."""
    for tool in tools:
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"`{tool}` not found (Debian package {DEBIAN_PACKAGES.get(tool, tool)})"
    return None


DEBIAN_PACKAGES = {"nsd": "nsd", "dig": "bind9-dnsutils", "openssl": "openssl",
                   "unbound": "unbound", "dnsmasq": "dnsmasq-base", "dnsperf": "dnsperf"}


def tool_path(name):
    """A server's binary: on PATH, or in /usr/sbin (not on every root PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path("/usr/sbin") / name
    if candidate.exists():
        return str(candidate)
    raise DnsServerError(f"`{name}` not found (Debian package {DEBIAN_PACKAGES.get(name, name)})")


# ---------------------------------------------------------------------------------------------
# Certificates


@dataclasses.dataclass
class TestPki:
    """A throw-away CA, nsd's certificate for dns.pwtest signed by it, and a second CA that
    signed nothing (a verify= file that must not be trusted for nsd's certificate)."""

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path


def _make_ca(directory, stem, subject):
    key, cert = directory / f"{stem}.key", directory / f"{stem}.pem"
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", subject,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return key, cert


def make_test_pki(directory):
    """Creates the CA and certificates with the openssl CLI (EC P-256: fast to make)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca(directory, "ca", "/CN=portwarden test CA")
    _, other_ca_cert = _make_ca(directory, "other-ca", "/CN=portwarden untrusted test CA")
    server_key, csr = directory / "server.key", directory / "server.csr"
    server_cert = directory / "server.pem"
    _run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-keyout", server_key, "-out", csr, "-subj", f"/CN={TLS_NAME}"])
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName=DNS:{TLS_NAME}\nextendedKeyUsage=serverAuth\n"
                          "basicConstraints=critical,CA:FALSE\n"
                          "keyUsage=critical,digitalSignature\n")
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
          "-CAcreateserial", "-out", server_cert, "-days", "2", "-extfile", extensions])
    for path in directory.iterdir():
        path.chmod(0o644)
    return TestPki(directory=directory, ca_cert=ca_cert, server_cert=server_cert,
                   server_key=server_key, other_ca_cert=other_ca_cert)


# ---------------------------------------------------------------------------------------------
# dig


@dataclasses.dataclass
class DigResult:
    """What dig printed, parsed. status is None when no answer arrived at all."""

    argv: list
    returncode: int
    stdout: str
    stderr: str
    pid: int = 0
    status: str | None = None          # NOERROR, NXDOMAIN, SERVFAIL, ...
    flags: list = dataclasses.field(default_factory=list)
    answers: list = dataclasses.field(default_factory=list)  # (name, ttl, type, data)
    truncated_retry: bool = False       # dig printed ";; Truncated, retrying in TCP mode."

    def data(self, rtype):
        return [data for _, _, kind, data in self.answers if kind == rtype]

    def names(self, rtype):
        return [name for name, _, kind, _ in self.answers if kind == rtype]

    def __str__(self):
        return (f"`{' '.join(map(str, self.argv))}` -> exit {self.returncode}, status "
                f"{self.status}, answers {self.answers}\n--- dig stdout ---\n{self.stdout}"
                f"--- dig stderr ---\n{self.stderr}")


_HEADER = re.compile(r"->>HEADER<<- opcode: \w+, status: (\w+), id: \d+")
_FLAGS = re.compile(r"^;; flags: ([a-z ]*);", re.MULTILINE)


def parse_dig(argv, completed_stdout, completed_stderr, returncode, pid=0):
    result = DigResult(argv=list(argv), returncode=returncode, stdout=completed_stdout,
                       stderr=completed_stderr, pid=pid)
    headers = _HEADER.findall(completed_stdout)
    if headers:
        result.status = headers[-1]  # after a TC retry, the TCP answer is the last one
    flags = _FLAGS.findall(completed_stdout)
    if flags:
        result.flags = flags[-1].split()
    result.truncated_retry = "Truncated, retrying in TCP mode" in completed_stdout
    # Only the last answer section counts (a truncated UDP answer may come first).
    sections = completed_stdout.split(";; ANSWER SECTION:")
    if len(sections) > 1:
        for line in sections[-1].splitlines()[1:]:
            if not line.strip() or line.startswith(";"):
                break
            fields = line.split(None, 4)
            if len(fields) == 5 and fields[2] == "IN":
                data = fields[4]
                if fields[3] == "TXT":
                    data = data.strip().strip('"')
                elif fields[3] == "CNAME":
                    data = data.rstrip(".")
                result.answers.append((fields[0].rstrip("."), int(fields[1]), fields[3], data))
    return result


def dig(world, server, name, rtype="A", namespace="client", port=None, transport="udp",
        timeout=4, tries=1, extra=(), tls_ca=None, tls_hostname=None):
    """Runs dig in a namespace (`transport` udp, tcp or tls) and returns a DigResult whose pid
    is dig's own (ip netns exec execs it), so tests can match it with the daemon's events.
    +time/+tries keep a dead server from holding the test for long: a hang guard only."""
    argv = ["dig", f"@{server}", name, rtype, f"+time={timeout}", f"+tries={tries}",
            "+nocookie"]
    if port is not None:
        argv += ["-p", str(port)]
    if transport == "tcp":
        argv.append("+tcp")
    elif transport == "tls":
        argv.append("+tls")
        if tls_ca is not None:
            argv.append(f"+tls-ca={tls_ca}")
        if tls_hostname is not None:
            argv.append(f"+tls-hostname={tls_hostname}")
    argv += list(extra)
    process = world.spawn(namespace, argv, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout * (tries + 1) + 10)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        stderr += "\n(killed: dig did not finish, see the hang guard in dns_servers.dig)"
    return parse_dig(argv, stdout, stderr, process.returncode, process.pid)


def wait_for_answer(world, namespace, server, name, transport="udp", timeout=10.0,
                    port=None, process=None, what="DNS server", **dig_options):
    """Polls with dig until an answer with status NOERROR arrives; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DnsServerError(f"{what} exited with {process.returncode} before it answered")
        last = dig(world, server, name, namespace=namespace, port=port, transport=transport,
                   timeout=1, **dig_options)
        if last.status == "NOERROR" and last.answers:
            return last
        time.sleep(0.1)
    raise DnsServerError(f"{what} at {server} gives no {transport} answer for {name} within "
                         f"{timeout}s; last try: {last}")


# ---------------------------------------------------------------------------------------------
# Servers


class Server:
    """A server process started in a namespace; stop() kills it by PID."""

    def __init__(self, name, process, directory, log_path, addresses=()):
        self.name = name
        self.process = process
        self.directory = Path(directory)
        self.log_path = Path(log_path)
        self.addresses = list(addresses)

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def log(self, limit=3000):
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[-limit:]

    def stop(self, timeout=5.0):
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
            except ProcessLookupError:
                pass
        return self.process.returncode


def _spawn_logged(world, namespace, argv, log_path):
    with open(log_path, "ab") as log_file:
        return world.spawn(namespace, argv, stdout=log_file, stderr=subprocess.STDOUT)


def _server_directory(world, name):
    base = getattr(world, "directory", None) or tempfile.gettempdir()
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    directory.chmod(0o755)  # dnsmasq drops to nobody, nsd/unbound may read as another user
    return directory


def nsd_config(directory, pki, addresses, port=53, tls_port=853):
    directory = Path(directory)
    lines = ["server:", "    server-count: 1", f"    port: {port}"]
    for address in addresses:
        lines.append(f"    ip-address: {address}")
    if pki is not None:
        for address in addresses:
            lines.append(f"    ip-address: {address}@{tls_port}")
    lines += [
        "    do-ip4: yes",
        "    do-ip6: yes",
        # Foreground (-d), no chroot, no user switch: every file lives in the world's temp dir.
        '    username: ""',
        '    chroot: ""',
        f'    zonesdir: "{directory}"',
        '    database: ""',
        f'    zonelistfile: "{directory / "zone.list"}"',
        f'    xfrdfile: "{directory / "xfrd.state"}"',
        f'    xfrdir: "{directory}"',
        f'    pidfile: "{directory / "nsd.pid"}"',
        f'    logfile: "{directory / "nsd.log"}"',
        "    verbosity: 1",
        "    hide-version: yes",
        "    refuse-any: no",
        "    round-robin: no",
        # The default since flag day 2020, said explicitly: big.pwtest relies on truncation.
        "    ipv4-edns-size: 1232",
        "    ipv6-edns-size: 1232",
        # No response rate limiting (on by default, 200 qps per source /24): every query of
        # the tests and of the benchmark's forwarders comes from one address.
        "    rrl-ratelimit: 0",
        "    rrl-whitelist-ratelimit: 0",
    ]
    if pki is not None:
        lines += [f'    tls-service-key: "{pki.server_key}"',
                  f'    tls-service-pem: "{pki.server_cert}"',
                  f"    tls-port: {tls_port}"]
    lines += ["remote-control:", "    control-enable: no",
              "zone:", f"    name: {ZONE}", f'    zonefile: "{directory / (ZONE + ".zone")}"']
    return "\n".join(lines) + "\n"


def start_nsd(world, pki, namespace="internet", addresses=(INTERNET_V4, INTERNET_V6),
              timeout=15.0):
    """nsd -d in `namespace`, authoritative for pwtest. over UDP and TCP on port 53 and over
    TLS on 853 (when pki is given). Returns once it answers over every transport."""
    binary = tool_path("nsd")
    directory = _server_directory(world, "nsd")
    (directory / f"{ZONE}.zone").write_text(zone_text())
    config = directory / "nsd.conf"
    config.write_text(nsd_config(directory, pki, addresses))
    checked = subprocess.run([tool_path("nsd-checkconf") if shutil.which("nsd-checkconf")
                              or Path("/usr/sbin/nsd-checkconf").exists() else "true",
                              str(config)], capture_output=True, text=True, timeout=10,
                             check=False)
    if checked.returncode != 0:
        raise DnsServerError(f"nsd-checkconf {config}: {checked.stdout}{checked.stderr}")
    log_path = directory / "stderr.log"
    process = _spawn_logged(world, namespace, [binary, "-d", "-c", config], log_path)
    server = Server("nsd", process, directory, directory / "nsd.log", addresses)
    try:
        transports = ["udp", "tcp"] + (["tls"] if pki is not None else [])
        for address in addresses:
            for transport in transports:
                extra = {"tls_ca": pki.ca_cert, "tls_hostname": TLS_NAME} \
                    if transport == "tls" else {}
                wait_for_answer(world, namespace, address, f"www.{ZONE}", transport=transport,
                                timeout=timeout, process=process, what="nsd", **extra)
    except DnsServerError as error:
        server.stop()
        raise DnsServerError(f"{error}\n--- nsd log ---\n{server.log()}\n--- nsd stderr ---\n"
                             f"{log_path.read_text(errors='replace')}") from None
    return server


def unbound_config(directory, listen, port, upstream, cache_mib=64):
    return "\n".join([
        "server:",
        "    num-threads: 1",
        f"    interface: {listen}",
        f"    port: {port}",
        "    do-ip4: yes",
        "    do-ip6: yes",
        "    do-udp: yes",
        "    do-tcp: yes",
        "    access-control: 0.0.0.0/0 allow",
        "    access-control: ::/0 allow",
        '    username: ""',
        '    chroot: ""',
        f'    directory: "{directory}"',
        f'    pidfile: "{directory / "unbound.pid"}"',
        "    use-syslog: no",
        f'    logfile: "{directory / "unbound.log"}"',
        "    verbosity: 0",
        # A forwarder like the others: no DNSSEC validation (the zone is unsigned anyway and
        # there is no trust anchor in this config), no prefetch.
        '    module-config: "iterator"',
        f"    msg-cache-size: {cache_mib}m",
        f"    rrset-cache-size: {cache_mib * 2}m",
        "    num-queries-per-thread: 4096",
        "    outgoing-range: 8192",
        "    so-rcvbuf: 4m",
        "    so-sndbuf: 4m",
        "    prefetch: no",
        "    qname-minimisation: no",
        "    do-not-query-localhost: no",
        f'    domain-insecure: "{ZONE}"',
        "remote-control:",
        "    control-enable: no",
        "forward-zone:",
        '    name: "."',
        f"    forward-addr: {upstream}",
    ]) + "\n"


def start_unbound(world, namespace="client", listen="127.0.0.17", port=53,
                  upstream=INTERNET_V4, timeout=15.0):
    """unbound -d: one thread, caching forwarder of everything to `upstream`."""
    binary = tool_path("unbound")
    directory = _server_directory(world, "unbound")
    config = directory / "unbound.conf"
    config.write_text(unbound_config(directory, listen, port, upstream))
    if shutil.which("unbound-checkconf") or Path("/usr/sbin/unbound-checkconf").exists():
        checked = subprocess.run([tool_path("unbound-checkconf"), str(config)],
                                 capture_output=True, text=True, timeout=10, check=False)
        if checked.returncode != 0:
            raise DnsServerError(f"unbound-checkconf {config}: {checked.stdout}{checked.stderr}")
    log_path = directory / "stderr.log"
    process = _spawn_logged(world, namespace, [binary, "-d", "-c", config], log_path)
    server = Server("unbound", process, directory, log_path, [listen])
    _wait_forwarder(world, namespace, server, listen, port, timeout, directory / "unbound.log")
    return server


def start_dnsmasq(world, namespace="client", listen="127.0.0.17", port=53,
                  upstream=INTERNET_V4, cache_size=10000, timeout=15.0):
    """dnsmasq -k: caching forwarder to `upstream`, nothing read from /etc."""
    binary = tool_path("dnsmasq")
    directory = _server_directory(world, "dnsmasq")
    log_path = directory / "stderr.log"
    argv = [binary, "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", f"--server={upstream}", f"--cache-size={cache_size}",
            f"--listen-address={listen}", "--bind-interfaces", f"--port={port}",
            # The default (150 queries in flight to upstreams) would drop queries of a
            # cache-miss load that the others handle; 4096 matches unbound's per-thread limit.
            "--dns-forward-max=4096",
            f"--pid-file={directory / 'dnsmasq.pid'}", "--log-facility=-", "--user=root"]
    process = _spawn_logged(world, namespace, argv, log_path)
    server = Server("dnsmasq", process, directory, log_path, [listen])
    _wait_forwarder(world, namespace, server, listen, port, timeout, log_path)
    return server


def _wait_forwarder(world, namespace, server, listen, port, timeout, log_path):
    try:
        wait_for_answer(world, namespace, listen, f"www.{ZONE}", port=port, timeout=timeout,
                        process=server.process, what=server.name)
    except DnsServerError as error:
        server.stop()
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        raise DnsServerError(f"{error}\n--- {server.name} log ---\n{log[-3000:]}") from None


SILENT_SERVER = r'''
import socket, sys, time
address, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in address else socket.AF_INET
udp = socket.socket(family, socket.SOCK_DGRAM)
udp.bind((address, port))
tcp = socket.socket(family, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((address, port))
tcp.listen(64)  # connections complete in the kernel and are never accepted or answered
print("READY", flush=True)
while True:
    udp.recv(65535)
'''


def start_silent_server(world, address, port, namespace="internet"):
    """Binds UDP and TCP on address:port in `namespace`, reads queries and never answers."""
    process = world.spawn(namespace, [sys.executable, "-c", SILENT_SERVER, address, port],
                          text=True)
    line = process.stdout.readline()
    if line.strip() != "READY":
        raise DnsServerError(f"silent server on {address}:{port} not ready: "
                             f"{process.stderr.read() if process.poll() is not None else ''}")
    return process
