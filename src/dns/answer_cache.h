#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/ip_address.h"
#include "dns/message.h"

namespace pw::dns {

// One upstream answer as the nameserver serves it, shared between the cache and the queries it
// answers (immutable once made).
struct Answer {
    Rcode rcode = Rcode::NoError;
    std::vector<IpAddress> addresses;     // see UpstreamAnswer
    std::vector<std::string> cname_chain; // see UpstreamAnswer
    CachedAnswer wire;
    std::string upstream; // the URL of the upstream that answered ("dns://10.0.0.1:53")
    // Its address, for `filter/removeOutOfScopeDNS` (the scope of the resolver); unset (nullopt)
    // for answers that came from no upstream.
    std::optional<IpAddress> upstream_address{}; // NOLINT(readability-redundant-member-init):
                                                 // GCC -Wmissing-field-initializers
};

struct CacheLimits {
    std::size_t max_entries = 10000; // least recently used goes first
    // Positive answers: their TTL, clamped. The floor keeps TTL-0 names from sending every
    // query upstream; the ceiling bounds how long a changed record can be served stale.
    std::chrono::seconds min_ttl{10};
    std::chrono::seconds max_ttl{std::chrono::hours(24)};
    // NXDOMAIN and NODATA (RFC 2308): the SOA's negative TTL clamped, or negative_without_soa.
    std::chrono::seconds min_negative_ttl{10};
    std::chrono::seconds max_negative_ttl{std::chrono::hours(1)};
    std::chrono::seconds negative_without_soa{60};
};

// Answers by question (name, type, class), with their lifetime. Answers other than NOERROR and
// NXDOMAIN (SERVFAIL, REFUSED, ...) are not stored: they say something about the upstream at one
// moment, not about the name. Runs on the event-loop thread only; time is passed in.
class AnswerCache {
public:
    struct Hit {
        std::shared_ptr<const Answer> answer;
        std::uint32_t age_seconds = 0; // since it was stored: subtract from the TTLs
    };
    struct Counters {
        std::uint64_t hits = 0;
        std::uint64_t misses = 0; // includes expired entries
        std::uint64_t insertions = 0;
        std::uint64_t evictions = 0; // pushed out by max_entries
    };

    explicit AnswerCache(CacheLimits limits = {});

    // The live answer for `question`, or nullopt (never stored, expired, or evicted). A hit makes
    // the entry the most recently used.
    [[nodiscard]] std::optional<Hit> lookup(const Question& question, Clock::TimePoint now);

    // Stores `answer` for `question` (replacing an older one) and returns how long it will be
    // kept, or 0 s when it is not cacheable. `ttl` is UpstreamAnswer::ttl.
    std::chrono::seconds insert(const Question& question, std::shared_ptr<const Answer> answer,
                                std::optional<std::uint32_t> ttl, Clock::TimePoint now);

    // Forgets expired entries (a timer calls it); returns how many went.
    std::size_t expire(Clock::TimePoint now);

    void clear();
    [[nodiscard]] std::size_t size() const;
    [[nodiscard]] const Counters& counters() const { return counters_; }

private:
    struct Entry;
    struct Index;
    CacheLimits limits_;
    std::unique_ptr<Index> index_; // hides the container choice from users of the header
    Counters counters_;

public:
    ~AnswerCache();
    AnswerCache(AnswerCache&&) noexcept;
    AnswerCache& operator=(AnswerCache&&) noexcept;
    AnswerCache(const AnswerCache&) = delete;
    AnswerCache& operator=(const AnswerCache&) = delete;
};

} // namespace pw::dns
