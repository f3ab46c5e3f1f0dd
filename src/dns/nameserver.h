#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"
#include "dns/answer_cache.h"
#include "dns/message.h"

namespace boost::asio {
class io_context; // NOLINT(readability-identifier-naming): Boost's name
} // namespace boost::asio

namespace pw::dns {

class Resolver;

enum class ClientTransport : std::uint8_t { Udp, Tcp };

struct ListenEndpoint {
    IpAddress address;
    std::uint16_t port = 53;
    friend bool operator==(const ListenEndpoint&, const ListenEndpoint&) = default;
};

// One query as the nameserver received it. `query` refers to the received bytes: valid during
// the call it is passed to only.
struct ClientQuery {
    ClientTransport transport = ClientTransport::Udp;
    IpAddress client_address;
    std::uint16_t client_port = 0;
    ListenEndpoint server;
    const Query& query;
};

// A TCP connection as the nameserver accepted it, before its first query.
struct ClientConnection {
    IpAddress client_address;
    std::uint16_t client_port = 0;
    ListenEndpoint server;
};

enum class QueryAction : std::uint8_t {
    Resolve,  // answer from the cache or the upstreams
    Block,    // A 0.0.0.17 / AAAA ::17 (TTL 1), NOERROR without records for other types
    NxDomain, // answer NXDOMAIN ourselves (the Firefox canary)
    Refuse,   // answer REFUSED
};

// Whatever the handler wants to keep about a query until it is answered (who asked, ...).
class QueryContext {
public:
    virtual ~QueryContext() = default;
};

struct QueryPlan {
    QueryAction action = QueryAction::Resolve;
    std::string reason;                    // why, for Block / NxDomain / Refuse (and a filtering)
    std::unique_ptr<QueryContext> context; // handed back to QueryHandler::answered()
    // Addresses of the answer that this client must not see (set by QueryHandler::review()).
    // The client then gets the other addresses alone, as records of the question name
    // (address_only_answer()); a handler that removes every address sets Block instead.
    std::vector<IpAddress> removed_addresses;
};

enum class AnswerSource : std::uint8_t {
    Cache,    // a live cache entry
    Upstream, // asked upstream for this query (or joined a query in flight)
    Policy,   // made up by us from the plan (Block, NxDomain, Refuse)
    Failure,  // SERVFAIL: every upstream failed
};

struct QueryOutcome {
    Rcode rcode = Rcode::NoError;
    AnswerSource source = AnswerSource::Upstream;
    const Answer* answer = nullptr; // for Cache and Upstream
    std::uint32_t age_seconds = 0;  // for Cache: subtract from the answer's TTLs
    std::string_view failure;       // for Failure: what the upstreams did
};

// The policy seam between the nameserver (sockets, messages, resolver) and the firewall
// (processes, rules, IP -> domain memory, events), implemented in network/. Called on the
// io_context's thread.
class QueryHandler {
public:
    virtual ~QueryHandler() = default;
    // Decides how to answer a well-formed query.
    [[nodiscard]] virtual QueryPlan plan(const ClientQuery& query) = 0;
    // An answer (from the cache or upstream) before it is sent, when it went through CNAMEs or
    // has addresses: the aliases may show what the name stands for (a tracker behind a
    // first-party alias), and the addresses where the client would connect. The handler may
    // change the plan to Block or NxDomain, or list addresses to leave out
    // (QueryPlan::removed_addresses). Not called for answers with neither (NXDOMAIN, NODATA).
    virtual void review(const ClientQuery& /*query*/, QueryPlan& /*plan*/,
                        const Answer& /*answer*/) {}
    // The answer went out (or could not be sent: the client is gone).
    virtual void answered(const ClientQuery& query, const QueryPlan& plan,
                          const QueryOutcome& outcome) = 0;
    // The end of a batch of queries: a good moment to write buffered events out.
    virtual void flush() {}
    // The process behind a new TCP connection (its PID), for the per-client connection limit;
    // nullopt when the handler cannot name it, and the limit then goes by the client's address.
    // Every local process connects from 127.0.0.1 (or the host's own address when redirected):
    // by address alone, a flood from one process would share its limit with dig. Called once
    // per accepted connection.
    [[nodiscard]] virtual std::optional<std::int64_t> connection_process(
        const ClientConnection& /*connection*/) {
        return std::nullopt;
    }
};

// How the nameserver keeps TCP clients from holding it (issue 10). A client is the process
// behind a connection when the QueryHandler names one, else the source address. A connection
// is idle while it waits for a query (a partial query counts as none), busy from a whole query
// until its answer is written. A new connection of a client at `max_per_client` closes that
// client's longest-idle connection; one that finds the table at `max_connections` closes the
// longest-idle connection of all, or, when every connection is busy, the longest-held one of the
// client holding the most (if it holds at least two more than the newcomer's client). Only when
// no candidate is left is the new one refused.
// Idle connections close after `idle_timeout`, every connection after `lifetime` (a busy one
// once its answer is out, at the latest one `idle_timeout` later): trickling one query every
// few seconds keeps no connection for ever.
struct TcpLimits {
    std::size_t max_connections = 512;
    std::size_t max_per_client = 32;
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds lifetime{std::chrono::seconds(60)};
};

// The local nameserver (issue 4, part 1): UDP and TCP on each listen endpoint (127.0.0.17:53 and
// [::1]:53 by default). Every datagram or TCP message is parsed by parse_query(); garbage gets
// FORMERR / NOTIMP / REFUSED when it has a readable query header and is dropped otherwise; a
// well-formed query is planned by the QueryHandler and answered from the plan, the cache or the
// resolver. UDP answers bigger than the client's payload size are truncated (TC) so that the
// client asks again over TCP.
//
// Cost per cached answer is what the benchmark measures, so the UDP path reads up to 32
// datagrams per recvmmsg() and sends their answers with one sendmmsg(), and allocates nothing
// per query beyond the question name and the handler's context. TCP: queries on one connection
// are answered in order; the limits and timeouts of TcpLimits keep any number of abusive
// connections from keeping others out. Runs on the io_context's thread only.
class Nameserver {
public:
    struct Counters {
        std::uint64_t udp_queries = 0;
        std::uint64_t tcp_queries = 0;
        std::uint64_t malformed = 0;        // answered with an error rcode
        std::uint64_t dropped = 0;          // not even a header: no answer
        std::uint64_t cache_answers = 0;    // answered from the cache
        std::uint64_t upstream_answers = 0; // answered after asking upstream
        std::uint64_t policy_answers = 0;   // blocked, canary, refused
        std::uint64_t filtered_answers = 0; // sent with addresses removed for the client
        std::uint64_t servfail = 0;
        std::uint64_t send_errors = 0;
        std::uint64_t tcp_connections = 0;    // accepted and kept
        std::uint64_t tcp_refused = 0;        // table full of busy connections: closed at once
        std::uint64_t tcp_client_refused = 0; // the client's share full of busy ones: the same
        std::uint64_t tcp_evictions =
            0; // table full: the longest-idle (or biggest holder's) closed
        std::uint64_t tcp_client_evictions = 0; // client at its limit: its longest idle closed
        std::uint64_t tcp_idle_closes = 0;      // no query within the idle timeout
        std::uint64_t tcp_lifetime_closes = 0;  // open for the whole lifetime
    };

    // Binds every endpoint (UDP and TCP). Fails, naming the endpoint, when one cannot be bound
    // (typically another DNS server on port 53), and when a limit is zero; nothing stays bound
    // then. The resolver and the handler must outlive the nameserver.
    [[nodiscard]] static Result<std::unique_ptr<Nameserver>> start(
        boost::asio::io_context& io, std::span<const ListenEndpoint> endpoints, Resolver& resolver,
        QueryHandler& handler, const TcpLimits& limits = {});

    virtual ~Nameserver() = default;

    // Closes every socket; queries waiting for the resolver are not answered.
    virtual void stop() = 0;

    // Where it listens; an endpoint given with port 0 shows the port the kernel chose (the same
    // for UDP and TCP).
    [[nodiscard]] virtual std::vector<ListenEndpoint> endpoints() const = 0;

    [[nodiscard]] virtual const Counters& counters() const = 0;
};

// "127.0.0.17:53", "[::1]:53".
[[nodiscard]] std::string to_string(const ListenEndpoint& endpoint);

} // namespace pw::dns
