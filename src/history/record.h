#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

// What the history stores: plain values, filled by the daemon from its events and from
// conntrack's destroy events. Nothing here knows about sockets, the event loop or SQLite, so
// that the daemon, the API and the tests can build and read records freely. Times are unix
// time in milliseconds (wall clock: history is read by people and pruned by age).

namespace pw::history {

enum class Direction : std::uint8_t { Outbound, Inbound };

// What became of a connection, as the history shows it. Block (refused with an ICMP error) and
// Drop (silently discarded) are the "blocked" verdicts of the top-blocked aggregate.
enum class Verdict : std::uint8_t {
    Accept,
    Block,
    Drop,
    Reroute, // redirected to our nameserver or tunnel
    Pending, // not decided yet (held for a prompt); a later record of the same ID replaces it
};

// One connection. Written when the daemon has decided it; writing the same `id` again replaces
// every field but the end (`ConnectionEnd`), so that the daemon may record a connection when it
// is new and again when it is decided.
struct ConnectionRecord {
    std::uint64_t id = 0;   // the daemon's connection ID: unique across restarts (next_id())
    std::string profile_id; // empty: no profile
    std::string executable; // empty: unknown
    std::int64_t pid = -1;  // -1: unknown
    std::uint32_t uid = 0;
    std::string user;
    std::string local_address; // "192.0.2.1", "2001:db8::1"
    std::uint16_t local_port = 0;
    std::string remote_address;
    std::uint16_t remote_port = 0;
    std::uint8_t protocol = 0; // IP protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6
    Direction direction = Direction::Outbound;
    std::string domain; // the name the remote address was resolved from; empty: none
    Verdict verdict = Verdict::Pending;
    std::string reason;
    std::int64_t start_ms = 0;
    // Filled by ConnectionEnd; in a ConnectionRecord that is written they are ignored.
    // NOLINTNEXTLINE(readability-redundant-member-init): GCC 12 -Wmissing-field-initializers
    std::optional<std::int64_t> end_ms{};
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t packets_in = 0;
    std::uint64_t packets_out = 0;

    friend bool operator==(const ConnectionRecord&, const ConnectionRecord&) = default;
};

// The end of a connection, from conntrack's destroy event with accounting
// (nf_conntrack_acct=1). "in" is the reply direction of an outbound connection (what the remote
// side sent), "out" the original direction; for an inbound connection the other way round.
struct ConnectionEnd {
    std::uint64_t id = 0;
    std::int64_t end_ms = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t packets_in = 0;
    std::uint64_t packets_out = 0;

    friend bool operator==(const ConnectionEnd&, const ConnectionEnd&) = default;
};

// One query that our nameserver answered.
struct DnsQueryRecord {
    std::int64_t id = 0; // given by the store when written; ignored on write
    std::int64_t time_ms = 0;
    std::string profile_id; // the asker's profile; empty: unknown (e.g. the system resolver)
    std::string executable;
    std::int64_t pid = -1;
    std::string domain;
    std::uint16_t type = 0; // QTYPE: 1 A, 28 AAAA, ...
    std::string rcode;      // "NOERROR", "NXDOMAIN", ...
    std::string source;     // "cache", "upstream", "blocked", "canary", "refused", "error"
    bool blocked = false;   // the nameserver refused to resolve it (source "blocked")
    std::string reason;     // why it was blocked, or what the upstreams did
    std::string answers;    // a summary: "192.0.2.1, 2001:db8::1; cname example.net"

    friend bool operator==(const DnsQueryRecord&, const DnsQueryRecord&) = default;
};

// One batch of writes: one transaction. Connections are written first, then the ends, then the
// DNS queries, so that an end in the same batch as its connection finds it.
struct Batch {
    std::vector<ConnectionRecord> connections;
    std::vector<ConnectionEnd> ends;
    std::vector<DnsQueryRecord> dns_queries;

    [[nodiscard]] bool empty() const {
        return connections.empty() && ends.empty() && dns_queries.empty();
    }
    [[nodiscard]] std::size_t size() const {
        return connections.size() + ends.size() + dns_queries.size();
    }
};

} // namespace pw::history
