#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/access_policy.h"
#include "api/backend.h"
#include "api/caller.h"
#include "api/event_stream.h"
#include "common/ip_address.h"
#include "common/result.h"

namespace boost::asio {
class io_context; // NOLINT(readability-identifier-naming): Boost's name
} // namespace boost::asio

namespace pw::api {

// One address the API listens on (`core/listenAddress`: 127.0.0.1:817 and [::1]:817 by
// default). Port 0 binds a port the kernel chooses (tests).
struct ListenEndpoint {
    IpAddress address;
    std::uint16_t port = 0;

    friend bool operator==(const ListenEndpoint&, const ListenEndpoint&) = default;
};

// "127.0.0.1:817", "[::1]:817".
[[nodiscard]] std::string to_string(const ListenEndpoint& endpoint);

// What one client may hold of the server. A new connection that finds `max_connections` open
// closes the longest-idle one (a connection waiting for its next request); when every one is
// busy the newcomer is closed at once. A whole request must arrive within `idle_timeout` of the
// connection opening or of the previous answer (this bounds slow senders too), and an answer
// must be taken by the client within it. A change the backend has not answered within
// `answer_timeout` gets 503 and its late answer is dropped.
struct ServerLimits {
    std::size_t max_connections = 64;
    std::size_t max_body_bytes = std::size_t{1} << 20U;
    std::chrono::seconds idle_timeout{30};
    std::size_t max_header_bytes = std::size_t{16} * 1024;
    std::chrono::seconds answer_timeout{30};
};

// The local API's HTTP/1.1 server (issue 11 item 1) with Boost.Beast, on the daemon's event loop.
// For each request, in order: HTTP framing and limits (400, 413, 431), the Host check (403,
// DNS rebinding), the Origin check (403, cross-site requests), the caller's access (403: root or
// a member of the API groups, found once per connection through CallerLookup), then the Router
// (docs/api.md). Connections are kept alive; requests on one connection are answered in order,
// one at a time. A client that closes its connection while the backend works on its change loses
// the answer (the change still happens).
//
// Runs on the io_context's thread only and never blocks it: start(), stop() and the destructor
// belong there too (or run while the loop is not running). The backend, the caller lookup and
// the access policy must outlive the server.
class HttpServer {
public:
    struct Counters {
        std::uint64_t connections = 0;         // accepted and kept
        std::uint64_t connections_refused = 0; // the table was full of busy connections
        std::uint64_t evictions = 0;           // the longest-idle connection closed for a new one
        std::uint64_t requests = 0;            // whole requests read
        std::uint64_t malformed = 0;           // 400/413/431 before routing; the connection closes
        std::uint64_t host_refusals = 0;
        std::uint64_t origin_refusals = 0;
        std::uint64_t access_refusals = 0;
        std::uint64_t answer_timeouts = 0;       // the backend did not answer within answer_timeout
        std::uint64_t abandoned = 0;             // the client left before its answer was ready
        std::uint64_t timeouts = 0;              // idle or slow connections closed
        std::uint64_t event_streams = 0;         // WebSocket upgrades to the event stream taken
        std::uint64_t event_streams_refused = 0; // no stream, or max clients reached (503)
    };

    // Binds every endpoint and starts accepting. Fails when an endpoint cannot be bound, naming
    // it ("127.0.0.1:817: Address already in use"); nothing stays bound then. `events` serves
    // the WebSocket event stream (GET /api/v1/events with Upgrade: websocket, after the same
    // checks as any request); nullptr: no stream (503). It must outlive the server.
    [[nodiscard]] static Result<std::unique_ptr<HttpServer>> start(
        boost::asio::io_context& io, const std::vector<ListenEndpoint>& endpoints,
        ServerLimits limits, CallerLookup& callers, AccessPolicy& access, Backend& backend,
        EventHub* events = nullptr);

    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;
    HttpServer(HttpServer&&) = delete;
    HttpServer& operator=(HttpServer&&) = delete;

    // Stops accepting and closes every connection; answers the backend gives later are dropped.
    // Idempotent; the destructor calls it.
    void stop();

    // Where it listens, with the ports the kernel chose for port 0.
    [[nodiscard]] std::vector<ListenEndpoint> endpoints() const;

    [[nodiscard]] const Counters& counters() const;
    // Open connections (HTTP; event-stream clients are counted by event_stream_count()).
    [[nodiscard]] std::size_t connection_count() const;
    // Open event-stream (WebSocket) connections, closing ones included.
    [[nodiscard]] std::size_t event_stream_count() const;

    class Impl;

private:
    explicit HttpServer(std::shared_ptr<Impl> impl);

    // Shared with the connections' pending handlers, which may outlive the server object.
    std::shared_ptr<Impl> impl_;
};

} // namespace pw::api
