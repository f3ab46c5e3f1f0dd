#pragma once

// Private to pw_dns: how the resolver talks to one upstream. The resolver decides whom to ask
// and for how long (it owns the timers); the transports only move one question and its answer.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include "common/result.h"
#include "dns/message.h"
#include "dns/upstream.h"

namespace pw::dns {

// Called at most once, from a completion handler (never from inside the call that started the
// exchange), with the upstream's answer, already checked against the question and ID by
// analyze_upstream_response(), or with what went wrong. Error texts are phrased to follow the
// upstream's URL in a message: "dot://dns.example?ip=10.0.0.2 certificate verification failed:
// hostname mismatch".
using ExchangeCallback = std::function<void(Result<UpstreamAnswer>)>;

// A question sent to an upstream and not answered yet. Destroying it abandons the question: the
// callback is not called after that (the timers that decide to give up live in the resolver).
class PendingExchange {
public:
    virtual ~PendingExchange() = default;
};

// The TLS client context for a dot:// upstream: TLS 1.2 or newer, peer verification against the
// system's CA store, or only against `upstream.ca_file` when it is given. Fails when that file
// cannot be loaded (named in the error). Made once, when the resolver is created; shared between
// the resolver and the connections in progress, whose last handlers may run after the resolver
// is gone.
[[nodiscard]] Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(
    const Upstream& upstream);

// Plain DNS over UDP to one dns:// upstream through a small pool of connected sockets, opened on
// first use. Connected sockets make the kernel drop datagrams from any other source and report
// ICMP errors (port unreachable) to us; each socket gets a port the kernel picks at random. The
// query ID is random and unique among the questions waiting on its socket; an incoming datagram
// goes to the waiting question with its ID if analyze_upstream_response() accepts it for that
// question, and is counted in `mismatched` otherwise (the question keeps waiting: a spoofed or
// late datagram must not end it). Runs on the io_context's thread only; owned by the resolver.
class UdpUpstream {
public:
    static constexpr std::size_t kSockets = 4;

    // `random` and `mismatched` belong to the resolver and must outlive this object.
    UdpUpstream(boost::asio::io_context& io, Upstream upstream, std::mt19937& random,
                std::uint64_t& mismatched);
    ~UdpUpstream();
    UdpUpstream(const UdpUpstream&) = delete;
    UdpUpstream& operator=(const UdpUpstream&) = delete;
    UdpUpstream(UdpUpstream&&) = delete;
    UdpUpstream& operator=(UdpUpstream&&) = delete;

    // Sends `question`. Fails at once only when no socket can be opened or every ID is taken.
    [[nodiscard]] Result<std::unique_ptr<PendingExchange>> send(const Question& question,
                                                                ExchangeCallback done);

    // Closes every socket and forgets the waiting questions without calling them back.
    void close();

    // One socket of the pool (defined in the .cc; public only so that its helpers can name it).
    class Socket;

private:
    boost::asio::io_context& io_;
    Upstream upstream_;
    std::mt19937& random_;
    std::uint64_t& mismatched_;
    // Shared with the socket's own receive handler, which keeps it alive until it has run.
    std::array<std::shared_ptr<Socket>, kSockets> sockets_;
    std::size_t next_socket_ = 0;
};

// One question over a new TCP connection to `upstream`'s address and port, as a 2-byte length
// prefix and the message (RFC 7766 section 8, RFC 1035 section 4.2.2); over TLS when `tls` is
// given (RFC 7858), with the certificate checked against upstream.tls_name, which is also sent as
// SNI. The connection is closed once the answer is in or the exchange is abandoned. Used for
// tcp://, dot:// and for dns:// answers that came back truncated.
[[nodiscard]] Result<std::unique_ptr<PendingExchange>> exchange_over_stream(
    boost::asio::io_context& io, const Upstream& upstream,
    std::shared_ptr<boost::asio::ssl::context> tls, std::uint16_t id, const Question& question,
    ExchangeCallback done);

} // namespace pw::dns
