#include "dns/resolver.h"

#include <algorithm>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "dns/upstream_transport.h"

namespace pw::dns {
namespace {

namespace asio = boost::asio;

// How long an upstream that failed waits behind the ones that work.
constexpr std::chrono::seconds kFailurePenalty{30};

// Rounds through the upstreams before giving up (within ResolverOptions::total_timeout) when an
// attempt timed out: a UDP query or answer lost once (a full socket buffer under load, a dropped
// packet) must not turn into SERVFAIL when the only upstream would answer the question asked
// again. Upstreams that refused, failed TLS or answered SERVFAIL would say the same again.
constexpr int kPasses = 2;

struct QuestionHash {
    std::size_t operator()(const Question& question) const noexcept {
        const std::size_t kind = (std::size_t{question.type} << 16) | question.qclass;
        return std::hash<std::string>{}(question.name) ^ (kind * 0x9e3779b97f4a7c15ULL);
    }
};

std::string milliseconds(std::chrono::milliseconds duration) {
    return std::to_string(duration.count()) + " ms";
}

std::string join(const std::vector<std::string>& parts) {
    std::string text;
    for (const std::string& part : parts) {
        text += text.empty() ? part : "; " + part;
    }
    return text;
}

// A random engine seeded from the kernel (std::random_device reads getrandom()).
std::mt19937 seeded_engine() {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(),
                       device(), device(), device(), device()};
    return std::mt19937(seed);
}

// One upstream as configured, with what it needs to be asked and how it did lately.
struct UpstreamState {
    Upstream upstream;
    std::unique_ptr<UdpUpstream> udp;          // dns:// only
    std::shared_ptr<asio::ssl::context> tls;   // dot:// only
    std::optional<Clock::TimePoint> failed_at; // last failure; cleared by an answer
};

// One question in flight upstream and everybody waiting for its answer. Owned by the resolver's
// map; timer handlers hold it weakly, so that a flight that ended ignores its late timers.
struct Flight {
    Flight(asio::io_context& io, Question asked)
        : question(std::move(asked)), attempt_timer(io), deadline(io) {}

    Question question;
    std::vector<Resolver::Callback> waiters;
    std::vector<std::size_t> order; // indices of the upstreams, in the order they are asked
    std::size_t next = 0;           // index into `order` of the upstream being asked
    int pass = 1;                   // rounds through `order`; see kPasses
    bool timed_out = false;         // an attempt got no answer in time (worth asking again)
    bool over_tcp = false;          // the attempt is the TCP retry of a truncated UDP answer
    // Tells the handler of an attempt timer that fired just as its attempt ended that it is late.
    std::uint64_t attempt_serial = 0;
    std::vector<std::string> report; // what each upstream asked so far did
    bool finished = false;           // the waiters have been called back (or are about to be)
    std::unique_ptr<PendingExchange> exchange;
    asio::steady_timer attempt_timer;
    asio::steady_timer deadline;
};

// The resolver of the daemon. Runs on the io_context's thread only.
class UpstreamResolver final : public Resolver {
public:
    UpstreamResolver(asio::io_context& io, ResolverOptions options, const Clock& clock,
                     std::vector<std::shared_ptr<asio::ssl::context>> tls_contexts)
        : io_(io),
          options_(std::move(options)),
          clock_(clock),
          cache_(options_.cache),
          random_(seeded_engine()) {
        for (std::size_t index = 0; index < options_.upstreams.size(); ++index) {
            const Upstream& upstream = options_.upstreams[index];
            UpstreamState state{.upstream = upstream,
                                .udp = nullptr,
                                .tls = std::move(tls_contexts[index]),
                                .failed_at = std::nullopt};
            if (upstream.protocol == UpstreamProtocol::Udp) {
                state.udp =
                    std::make_unique<UdpUpstream>(io_, upstream, random_, counters_.mismatched);
            }
            upstreams_.push_back(std::move(state));
        }
    }

    // NOLINTNEXTLINE(bugprone-exception-escape): only bad_alloc, which ends the process anyway.
    ~UpstreamResolver() override { shut_down(); }
    UpstreamResolver(const UpstreamResolver&) = delete;
    UpstreamResolver& operator=(const UpstreamResolver&) = delete;
    UpstreamResolver(UpstreamResolver&&) = delete;
    UpstreamResolver& operator=(UpstreamResolver&&) = delete;

    // Resolver
    std::optional<AnswerCache::Hit> cached(const Question& question) override {
        return cache_.lookup(question, clock_.now());
    }
    void resolve(const Question& question, Callback done) override;
    void expire_cache() override { cache_.expire(clock_.now()); }
    const Counters& counters() const override { return counters_; }
    const AnswerCache::Counters& cache_counters() const override { return cache_.counters(); }
    std::size_t cache_size() const override { return cache_.size(); }
    void shut_down() override;

private:
    std::vector<std::size_t> upstream_order() const;
    void ask_next(const std::shared_ptr<Flight>& flight);
    Result<std::unique_ptr<PendingExchange>> send(const std::shared_ptr<Flight>& flight,
                                                  const UpstreamState& state);
    void arm_attempt_timer(const std::shared_ptr<Flight>& flight);
    void on_answer(const std::shared_ptr<Flight>& flight, Result<UpstreamAnswer>&& result);
    void on_truncated(const std::shared_ptr<Flight>& flight);
    void upstream_failed(const std::shared_ptr<Flight>& flight, const std::string& what);
    void note_failure(Flight& flight, const std::string& what);
    void on_deadline(const std::shared_ptr<Flight>& flight);
    void finish(const std::shared_ptr<Flight>& flight,
                const Result<std::shared_ptr<const Answer>>& result);

    asio::io_context& io_;
    ResolverOptions options_;
    const Clock& clock_;
    AnswerCache cache_;
    std::mt19937 random_;
    Counters counters_;
    std::vector<UpstreamState> upstreams_;
    std::unordered_map<Question, std::shared_ptr<Flight>, QuestionHash> flights_;
    bool shut_down_ = false;
};

void UpstreamResolver::resolve(const Question& question, Callback done) {
    if (shut_down_) {
        ++counters_.failures;
        asio::post(io_, [done = std::move(done)] { done(fail("resolver shut down")); });
        return;
    }
    // parse_query() never makes such a name, but a caller that builds a Question by hand might;
    // no upstream should be blamed for it.
    if (build_upstream_query(0, question).empty()) {
        ++counters_.failures;
        asio::post(io_, [done = std::move(done), name = question.name] {
            done(fail("cannot ask upstream for the invalid name '" + name + "'"));
        });
        return;
    }
    if (const auto flight = flights_.find(question); flight != flights_.end()) {
        ++counters_.merged;
        flight->second->waiters.push_back(std::move(done));
        return;
    }
    auto flight = std::make_shared<Flight>(io_, question);
    flight->waiters.push_back(std::move(done));
    flight->order = upstream_order();
    flights_.emplace(question, flight);
    flight->deadline.expires_after(options_.total_timeout);
    flight->deadline.async_wait(
        [this, weak = std::weak_ptr(flight)](const boost::system::error_code& error) {
            // A live flight means a live resolver: shut_down() drops every flight.
            if (const auto alive = weak.lock(); alive && !error && !alive->finished) {
                on_deadline(alive);
            }
        });
    ask_next(flight);
}

// Upstreams that failed in the last 30 s go behind the others; each group keeps the configured
// order.
std::vector<std::size_t> UpstreamResolver::upstream_order() const {
    std::vector<std::size_t> order;
    order.reserve(upstreams_.size());
    for (std::size_t index = 0; index < upstreams_.size(); ++index) {
        order.push_back(index);
    }
    const Clock::TimePoint now = clock_.now();
    std::ranges::stable_partition(order, [&](std::size_t index) {
        const auto& failed_at = upstreams_[index].failed_at;
        return !failed_at || now - *failed_at >= kFailurePenalty;
    });
    return order;
}

// Asks the upstream at flight->next; one that cannot even be asked (no socket) counts as failed
// and the next is tried, until one is asked or none is left.
void UpstreamResolver::ask_next(const std::shared_ptr<Flight>& flight) {
    if (flight->next >= flight->order.size() && flight->timed_out && flight->pass < kPasses) {
        ++flight->pass;
        flight->next = 0;
    }
    while (flight->next < flight->order.size()) {
        UpstreamState& state = upstreams_[flight->order[flight->next]];
        auto exchange = send(flight, state);
        if (exchange) {
            ++counters_.upstream_queries;
            flight->exchange = std::move(*exchange);
            arm_attempt_timer(flight);
            return;
        }
        note_failure(*flight, exchange.error().message());
    }
    finish(flight, fail("all upstreams failed: " + join(flight->report)));
}

Result<std::unique_ptr<PendingExchange>> UpstreamResolver::send(
    const std::shared_ptr<Flight>& flight, const UpstreamState& state) {
    // The exchange never outlives its flight (the flight owns it), and a flight never outlives
    // the resolver, so a live flight means `this` is alive too.
    ExchangeCallback done = [this, weak = std::weak_ptr(flight)](Result<UpstreamAnswer> answer) {
        if (const auto alive = weak.lock()) {
            on_answer(alive, std::move(answer));
        }
    };
    const auto id = std::uniform_int_distribution<std::uint16_t>{}(random_);
    if (flight->over_tcp) {
        return exchange_over_stream(io_, state.upstream, nullptr, id, flight->question,
                                    std::move(done));
    }
    switch (state.upstream.protocol) {
        case UpstreamProtocol::Udp:
            return state.udp->send(flight->question, std::move(done));
        case UpstreamProtocol::Tcp:
            return exchange_over_stream(io_, state.upstream, nullptr, id, flight->question,
                                        std::move(done));
        case UpstreamProtocol::Tls:
            return exchange_over_stream(io_, state.upstream, state.tls, id, flight->question,
                                        std::move(done));
    }
    return fail("has an unknown protocol");
}

void UpstreamResolver::arm_attempt_timer(const std::shared_ptr<Flight>& flight) {
    const std::uint64_t serial = ++flight->attempt_serial;
    flight->attempt_timer.expires_after(options_.attempt_timeout);
    flight->attempt_timer.async_wait(
        [this, weak = std::weak_ptr(flight), serial](const boost::system::error_code& error) {
            const auto alive = weak.lock();
            if (!alive || error || alive->attempt_serial != serial) {
                return;
            }
            ++counters_.timeouts;
            alive->timed_out = true;
            upstream_failed(alive, "timed out after " + milliseconds(options_.attempt_timeout));
        });
}

void UpstreamResolver::on_answer(const std::shared_ptr<Flight>& flight,
                                 Result<UpstreamAnswer>&& result) {
    if (!result) {
        upstream_failed(flight, result.error().message());
        return;
    }
    if (result->truncated) {
        on_truncated(flight);
        return;
    }
    if (result->rcode != Rcode::NoError && result->rcode != Rcode::NxDomain) {
        // SERVFAIL, REFUSED and the like say something about this upstream, not about the name.
        upstream_failed(flight, "answered " + std::string(rcode_name(result->rcode)));
        return;
    }
    UpstreamState& state = upstreams_[flight->order[flight->next]];
    state.failed_at.reset();
    auto answer =
        std::make_shared<const Answer>(Answer{.rcode = result->rcode,
                                              .addresses = std::move(result->addresses),
                                              .cname_chain = std::move(result->cname_chain),
                                              .wire = std::move(result->cached),
                                              .upstream = state.upstream.url,
                                              .upstream_address = state.upstream.address});
    cache_.insert(flight->question, answer, result->ttl, clock_.now());
    finish(flight, answer);
}

// RFC 1035 section 4.2.1 / RFC 7766 section 6: a truncated UDP answer is asked again over TCP at
// the same upstream. A truncated answer over TCP or TLS makes no sense: that upstream is broken.
void UpstreamResolver::on_truncated(const std::shared_ptr<Flight>& flight) {
    const UpstreamState& state = upstreams_[flight->order[flight->next]];
    if (flight->over_tcp || state.upstream.protocol != UpstreamProtocol::Udp) {
        upstream_failed(flight, "sent a truncated answer over a stream");
        return;
    }
    ++counters_.tcp_fallbacks;
    flight->over_tcp = true;
    flight->exchange.reset();
    ask_next(flight);
}

// The upstream being asked did not help: note what it did, put it behind the others for a while
// and ask the next.
void UpstreamResolver::upstream_failed(const std::shared_ptr<Flight>& flight,
                                       const std::string& what) {
    flight->exchange.reset();
    flight->attempt_timer.cancel();
    ++flight->attempt_serial;
    note_failure(*flight, what);
    ask_next(flight);
}

void UpstreamResolver::note_failure(Flight& flight, const std::string& what) {
    UpstreamState& state = upstreams_[flight.order[flight.next]];
    state.failed_at = clock_.now();
    const std::string how = flight.over_tcp ? " (over TCP after a truncated answer) " : " ";
    flight.report.push_back(state.upstream.url + how + what);
    flight.over_tcp = false;
    if (++flight.next < flight.order.size()) {
        ++counters_.failovers;
    }
}

// Out of time: the upstream being asked is not blamed (it may just have had too little time),
// and the ones never asked are listed as such.
void UpstreamResolver::on_deadline(const std::shared_ptr<Flight>& flight) {
    ++counters_.timeouts;
    std::vector<std::string> report = flight->report;
    for (std::size_t index = flight->next; index < flight->order.size(); ++index) {
        const std::string& url = upstreams_[flight->order[index]].upstream.url;
        report.push_back(url + (index == flight->next ? " had not answered yet" : " not asked"));
    }
    finish(flight,
           fail("no answer within " + milliseconds(options_.total_timeout) + ": " + join(report)));
}

// Ends the flight and calls its waiters later (never from inside resolve()).
void UpstreamResolver::finish(const std::shared_ptr<Flight>& flight,
                              const Result<std::shared_ptr<const Answer>>& result) {
    flight->finished = true;
    flight->exchange.reset();
    flight->attempt_timer.cancel();
    flight->deadline.cancel();
    ++flight->attempt_serial;
    if (const auto entry = flights_.find(flight->question);
        entry != flights_.end() && entry->second == flight) {
        flights_.erase(entry);
    }
    if (!result) {
        counters_.failures += flight->waiters.size();
    }
    asio::post(io_, [waiters = std::move(flight->waiters), result] {
        for (const Callback& waiter : waiters) {
            waiter(result);
        }
    });
    flight->waiters.clear();
}

void UpstreamResolver::shut_down() {
    shut_down_ = true;
    auto flights = std::move(flights_);
    flights_.clear();
    for (auto& [question, flight] : flights) {
        finish(flight, fail("resolver shut down"));
    }
    for (UpstreamState& state : upstreams_) {
        if (state.udp) {
            state.udp->close();
        }
    }
}

} // namespace

Result<std::unique_ptr<Resolver>> Resolver::create(asio::io_context& io, ResolverOptions options,
                                                   const Clock& clock) {
    if (options.upstreams.empty()) {
        return fail("dns/nameservers: no upstream nameserver configured");
    }
    // TLS contexts load their CA files now, so that a bad verify= stops the daemon at startup
    // instead of failing every query later.
    std::vector<std::shared_ptr<asio::ssl::context>> tls_contexts(options.upstreams.size());
    for (std::size_t index = 0; index < options.upstreams.size(); ++index) {
        const Upstream& upstream = options.upstreams[index];
        if (upstream.protocol != UpstreamProtocol::Tls) {
            continue;
        }
        auto context = make_tls_context(upstream);
        if (!context) {
            return std::unexpected(context.error());
        }
        tls_contexts[index] = std::move(*context);
    }
    return std::make_unique<UpstreamResolver>(io, std::move(options), clock,
                                              std::move(tls_contexts));
}

} // namespace pw::dns
