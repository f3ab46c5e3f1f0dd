#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "dns/answer_cache.h"
#include "dns/message.h"
#include "dns/upstream.h"

namespace boost::asio {
class io_context; // NOLINT(readability-identifier-naming): Boost's name
} // namespace boost::asio

namespace pw::dns {

struct ResolverOptions {
    std::vector<Upstream> upstreams; // in order of preference; must not be empty
    // How long one upstream gets before the next one is asked (and, with TCP/TLS, for the
    // connection and handshake together).
    std::chrono::milliseconds attempt_timeout{1500};
    // How long a query may take in all; past it the answer is SERVFAIL.
    std::chrono::milliseconds total_timeout{4000};
    CacheLimits cache;
};

// Resolves questions through the configured upstreams, in order, with a cache in front
// (issue 4, part 2):
//   - a cache hit is answered synchronously by cached();
//   - resolve() merges identical questions in flight: one upstream query, every waiter called
//     back with its answer;
//   - an upstream that times out, cannot be reached, fails TLS verification, answers garbage,
//     SERVFAIL or REFUSED makes the resolver ask the next one (and remember for 30 s to try the
//     upstreams that worked first);
//   - dns:// answers with TC set are asked again over TCP at the same upstream;
//   - when every upstream failed or total_timeout passed, the callback gets an error that says
//     what each upstream did: "all upstreams failed: dns://10.0.0.1:53 timed out after 1500 ms;
//     dot://dns.example?ip=10.0.0.2 certificate verification failed (...)".
// Upstream sockets: per dns:// upstream a small pool of connected UDP sockets (each with a port
// the kernel chose at random) is kept open, so that the firewall sees a few long flows instead
// of one new flow per query; the 16-bit query ID is random per query and the answer must match
// ID, source address and question. tcp:// and dot:// open a connection per query (no pipelining
// yet). Runs on the io_context's thread only; the io_context must outlive the resolver.
class Resolver {
public:
    using Callback = std::function<void(Result<std::shared_ptr<const Answer>>)>;

    struct Counters {
        std::uint64_t upstream_queries = 0; // sent, including retries on other upstreams
        std::uint64_t merged = 0;           // resolve() calls that joined a query in flight
        std::uint64_t timeouts = 0;
        std::uint64_t failovers = 0;     // an upstream failed and the next was asked
        std::uint64_t tcp_fallbacks = 0; // truncated UDP answers asked again over TCP
        std::uint64_t failures = 0;      // callbacks that got an error
        std::uint64_t mismatched = 0;    // UDP datagrams dropped: wrong ID/question/source
    };

    // Fails when an option is unusable: no upstreams, or a verify= CA file that cannot be loaded.
    [[nodiscard]] static Result<std::unique_ptr<Resolver>> create(boost::asio::io_context& io,
                                                                  ResolverOptions options,
                                                                  const Clock& clock);

    virtual ~Resolver() = default;

    // The cached answer for `question`, if live.
    [[nodiscard]] virtual std::optional<AnswerCache::Hit> cached(const Question& question) = 0;

    // Resolves `question` upstream (callers ask cached() first) and calls `done` exactly once,
    // later, on the io_context's thread — never from inside resolve(). Successful answers
    // (NOERROR, NXDOMAIN) are cached before `done` runs.
    virtual void resolve(const Question& question, Callback done) = 0;

    // Forgets expired cache entries; the daemon calls it from a timer.
    virtual void expire_cache() = 0;

    [[nodiscard]] virtual const Counters& counters() const = 0;
    [[nodiscard]] virtual const AnswerCache::Counters& cache_counters() const = 0;
    [[nodiscard]] virtual std::size_t cache_size() const = 0;

    // Cancels every query in flight (their callbacks get an error) and closes all sockets; the
    // daemon calls it before it stops the io_context.
    virtual void shut_down() = 0;
};

} // namespace pw::dns
