"""A stand-in for systemd-resolved's monitor socket, for the DNS integration tests.

    resolved = FakeResolved(world.directory / "resolve" / "io.systemd.Resolve.Monitor").start()
    daemon = ...  # portwarden run --resolved-monitor <resolved.path>
    request = resolved.wait_for_subscriptions(1)[0]     # the parsed varlink call
    resolved.push(query_result("resolved.pwtest", ["10.77.0.3", "fd77::3"]))
    ...
    resolved.stop()                                     # closes every connection, unlinks

The daemon (`--resolved-monitor PATH`) connects to a Unix socket and makes one varlink call
(https://varlink.org/Method-Call), `io.systemd.Resolve.Monitor.SubscribeQueryResults` with
"more": true, then reads replies until the connection ends. Every varlink message is a JSON
object followed by a NUL byte. FakeResolved is a varlink server for that one method: a thread
in the test process that accepts connections, records each request it reads, answers a
subscription with resolved's first reply ({"ready": true}) and keeps it open, so that the test
can push query results to every subscriber whenever it likes. Other methods get a varlink
error and the connection is closed, as resolved does.

query_result() builds a result in the shape systemd-resolved (252-256) sends: "question" (and,
when resolved followed CNAMEs itself, "collectedQuestions" with the client's name first), and
"answer" items with "rr" (key, and "address" as a byte array or "name" for a CNAME) and "raw"
(the record in wire format, base64), which is where the daemon takes the TTL from. See
src/dns/resolved_monitor.cc for what the daemon accepts.

The socket lives where the caller says (normally in the world's temporary directory): the
daemon runs in the client network namespace, but a Unix socket with a path is reached through
the file system, which the daemon shares with the test process. Standard library only.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import selectors
import socket
import threading
import time
from pathlib import Path

SUBSCRIBE_METHOD = "io.systemd.Resolve.Monitor.SubscribeQueryResults"
# resolved's first reply to a subscription: nothing resolved yet, more to come.
READY_REPLY = {"parameters": {"ready": True}, "continues": True}
# A request that does not end with a NUL within this many bytes is not a varlink client.
MAX_REQUEST = 1 << 16

TYPE_A, TYPE_CNAME, TYPE_AAAA = 1, 5, 28
CLASS_IN = 1
IFINDEX = 2  # resolved names the link an answer came from; any link will do


# ---------------------------------------------------------------------------------------------
# Query results


def wire_name(name):
    """A domain name in DNS wire format (uncompressed labels and the root label)."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"


def raw_record(name, rtype, ttl, rdata):
    """One resource record in wire format (RFC 1035 4.1.3), base64: resolved's "raw" field."""
    wire = (wire_name(name) + rtype.to_bytes(2, "big") + CLASS_IN.to_bytes(2, "big")
            + ttl.to_bytes(4, "big") + len(rdata).to_bytes(2, "big") + rdata)
    return base64.b64encode(wire).decode("ascii")


def key(name, rtype):
    return {"class": CLASS_IN, "type": rtype, "name": name}


def address_item(name, address, ttl):
    ip = ipaddress.ip_address(address)
    rtype = TYPE_A if ip.version == 4 else TYPE_AAAA
    return {"rr": {"key": key(name, rtype), "address": list(ip.packed)},
            "raw": raw_record(name, rtype, ttl, ip.packed), "ifindex": IFINDEX}


def cname_item(name, target, ttl):
    return {"rr": {"key": key(name, TYPE_CNAME), "name": target},
            "raw": raw_record(name, TYPE_CNAME, ttl, wire_name(target)), "ifindex": IFINDEX}


def query_result(name, addresses, cnames=(), ttl=300):
    """A successful lookup of `name` as resolved reports it to its monitor: `name` -> each of
    `cnames` in turn -> `addresses` (A and AAAA, as resolved merges the two transactions of one
    getaddrinfo). With CNAMEs, "question" holds the chain's last name and
    "collectedQuestions" every name asked on the way, the client's first."""
    names = [name, *cnames]
    answer = [cname_item(owner, target, ttl) for owner, target in zip(names, names[1:])]
    answer += [address_item(names[-1], address, ttl) for address in addresses]
    parameters = {"state": "success", "rcode": 0,
                  "question": [key(names[-1], TYPE_A), key(names[-1], TYPE_AAAA)],
                  "answer": answer}
    if cnames:
        parameters["collectedQuestions"] = [key(asked, rtype) for asked in names
                                            for rtype in (TYPE_A, TYPE_AAAA)]
    return {"parameters": parameters, "continues": True}


def failed_result(name, state="rcode-failure", rcode=3):
    """A lookup that failed (NXDOMAIN by default): nothing for the daemon to remember."""
    return {"parameters": {"state": state, "rcode": rcode,
                           "question": [key(name, TYPE_A), key(name, TYPE_AAAA)]},
            "continues": True}


# ---------------------------------------------------------------------------------------------
# The server


class FakeResolvedError(AssertionError):
    pass


class FakeResolved:
    """A varlink server for io.systemd.Resolve.Monitor on a Unix socket, run by one thread.

    requests: every request read, parsed (or {"unparsable": text}), in order, over all
    connections; subscriptions(): those that subscribed. push() sends to every live subscriber.
    Thread-safe: the server thread and the test share the state under one lock.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.requests = []
        self._subscribers = []       # sockets whose subscription is live
        self._lock = threading.Condition()
        # Serialises writes: push() (test thread) and the replies (server thread) share sockets.
        self._send_lock = threading.Lock()
        self._selector = None
        self._listener = None
        self._thread = None
        self._wake_read, self._wake_write = None, None
        self._stopping = False

    # Life cycle --------------------------------------------------------------------------------

    def start(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(8)
        self._listener.setblocking(False)
        self._wake_read, self._wake_write = os.pipe()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "listener")
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name=f"fake-resolved {self.path}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Closes the listener and every connection (the daemon reads EOF, as when resolved
        exits) and removes the socket file. Safe to call more than once."""
        if self._thread is None:
            return
        with self._lock:
            self._stopping = True
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise FakeResolvedError(f"fake resolved at {self.path}: server thread did not end")
        self._thread = None
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)
        self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *_exc):
        self.stop()
        return False

    # What the test sees ------------------------------------------------------------------------

    def subscriptions(self):
        """The requests that asked for query results with "more" (the daemon's call)."""
        with self._lock:
            return [request for request in self.requests if _is_subscription(request)]

    def subscriber_count(self):
        with self._lock:
            return len(self._subscribers)

    def wait_for_subscriptions(self, count, timeout=5.0):
        """Waits until `count` subscriptions were read in all; returns every request read. The
        timeout is a hang guard."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while sum(_is_subscription(request) for request in self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FakeResolvedError(
                        f"fake resolved at {self.path}: {count} subscription(s) expected within "
                        f"{timeout}s; requests read: {json.dumps(self.requests)}")
                self._lock.wait(left)
            return list(self.requests)

    def push(self, message):
        """Sends one message (a dict, or str/bytes sent verbatim) plus the terminating NUL to
        every live subscriber. Returns how many it reached."""
        if isinstance(message, dict):
            data = json.dumps(message, separators=(",", ":")).encode()
        elif isinstance(message, str):
            data = message.encode()
        else:
            data = bytes(message)
        with self._lock:
            subscribers = list(self._subscribers)
        reached = 0
        with self._send_lock:
            for connection in subscribers:
                try:
                    connection.sendall(data + b"\0")
                    reached += 1
                except OSError:
                    pass  # the daemon went away; the server thread notices the EOF
        return reached

    # The server thread -------------------------------------------------------------------------

    def _serve(self):
        buffers = {}
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        break
                for selected, _ in self._selector.select(timeout=1.0):
                    role = selected.data
                    if role == "wake":
                        os.read(self._wake_read, 64)
                    elif role == "listener":
                        self._accept(buffers)
                    else:
                        self._read(selected.fileobj, buffers)
        finally:
            for connection in list(buffers):
                self._close(connection, buffers)
            self._selector.unregister(self._listener)
            self._selector.unregister(self._wake_read)
            self._listener.close()
            self._selector.close()

    def _accept(self, buffers):
        try:
            connection, _ = self._listener.accept()
        except BlockingIOError:
            return
        connection.setblocking(True)
        connection.settimeout(5.0)  # a send to a daemon that stopped reading must not hang
        buffers[connection] = b""
        self._selector.register(connection, selectors.EVENT_READ, "connection")

    def _read(self, connection, buffers):
        try:
            chunk = connection.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self._close(connection, buffers)
            return
        buffers[connection] += chunk
        while b"\0" in buffers[connection]:
            text, buffers[connection] = buffers[connection].split(b"\0", 1)
            self._handle(connection, text, buffers)
            if connection not in buffers:
                return
        if len(buffers[connection]) > MAX_REQUEST:
            self._close(connection, buffers)

    def _handle(self, connection, text, buffers):
        try:
            request = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError):
            request = {"unparsable": text.decode(errors="replace")}
        subscribed = _is_subscription(request)
        if subscribed:
            # The first reply goes out before push() can see the connection, so that it is
            # the first message the daemon reads, as with resolved.
            self._send(connection, READY_REPLY, buffers)
        with self._lock:
            self.requests.append(request)
            if subscribed and connection in buffers:
                self._subscribers.append(connection)
            self._lock.notify_all()
        if subscribed:
            return
        method = request.get("method") if isinstance(request, dict) else None
        error = ("org.varlink.service.MethodNotFound" if isinstance(method, str)
                 else "org.varlink.service.InvalidParameter")
        self._send(connection, {"error": error, "parameters": {"method": method}}, buffers)
        self._close(connection, buffers)

    def _send(self, connection, message, buffers):
        try:
            with self._send_lock:
                connection.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\0")
        except OSError:
            self._close(connection, buffers)

    def _close(self, connection, buffers):
        with self._lock:
            if connection in self._subscribers:
                self._subscribers.remove(connection)
        if connection in buffers:
            del buffers[connection]
            self._selector.unregister(connection)
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        connection.close()


def _is_subscription(request):
    return (isinstance(request, dict) and request.get("method") == SUBSCRIBE_METHOD
            and request.get("more") is True)
