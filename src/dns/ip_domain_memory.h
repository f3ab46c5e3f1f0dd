#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/ip_address.h"

namespace pw::dns {

// The name a remote address was resolved from, as a connection will carry it.
struct ResolvedName {
    std::string domain;                   // the name that was asked for
    std::vector<std::string> cname_chain; // the CNAMEs followed to the address, in order
    Clock::TimePoint recorded_at;         // when the answer came
    // The upstream server that gave the answer, for `filter/removeOutOfScopeDNS` at connection
    // time (a setting changed since the query, an answer given to the system DNS client for
    // everyone); nullopt when unknown (answers seen through systemd-resolved's monitor).
    std::optional<IpAddress> resolver{}; // NOLINT(readability-redundant-member-init): GCC
                                         // -Wmissing-field-initializers
    bool operator==(const ResolvedName&) const = default;
};

struct MemoryLimits {
    // Entries kept at most; the least recently answered goes first.
    std::size_t max_entries = 65536;
    // How long an answer is remembered: its TTL, clamped. Connections often come after the
    // TTL ran out (a browser keeps its own cache), hence the floor; the ceiling bounds how long
    // a stale name can label an address that changed hands.
    std::chrono::seconds min_keep{std::chrono::minutes(10)};
    std::chrono::seconds max_keep{std::chrono::hours(24)};
};

// Remote IP → the domain it was resolved from, per scope (issue 4, part 3): the asking
// process's identity (its executable until profiles exist), and a global scope for askers
// that stand for others (system resolvers such as systemd-resolved, dnsmasq, nscd) or could not
// be identified. A connection takes the most recent name for its remote address from its own
// scope first, then from the global one. Pure: time is passed in. Bounded in memory. Runs on
// the event-loop thread only.
class IpDomainMemory {
public:
    static constexpr std::string_view kGlobalScope{};

    explicit IpDomainMemory(MemoryLimits limits = {}) : limits_(limits) {}

    // Remembers that `domain` (through `cname_chain`) resolved to `address` for `scope`; a newer
    // answer for the same scope and address replaces the older one. Called for every answered
    // query, cache hits included, so refreshing a known entry allocates nothing. `resolver` is
    // the upstream that answered, when known.
    void record(std::string_view scope, const IpAddress& address, std::string_view domain,
                std::span<const std::string> cname_chain, std::chrono::seconds ttl,
                Clock::TimePoint now, const std::optional<IpAddress>& resolver = std::nullopt);

    // The most recent name for `address` in `scope`, else in the global scope; nullopt when
    // neither remembers it (or it expired).
    [[nodiscard]] std::optional<ResolvedName> lookup(std::string_view scope,
                                                     const IpAddress& address,
                                                     Clock::TimePoint now) const;

    // Forgets expired entries; call it from a timer. Returns how many went.
    std::size_t expire(Clock::TimePoint now);

    [[nodiscard]] std::size_t size() const { return entries_.size(); }

private:
    struct Key {
        std::string scope;
        IpAddress address;
        bool operator==(const Key&) const = default;
    };
    // Lookups use a view of the key, so that finding an entry allocates nothing.
    struct KeyView {
        std::string_view scope;
        const IpAddress& address;
    };
    struct KeyHash {
        using is_transparent = void; // NOLINT(readability-identifier-naming): the standard's name
        std::size_t operator()(const KeyView& key) const noexcept {
            return std::hash<std::string_view>{}(key.scope) * 31U ^ key.address.hash();
        }
        std::size_t operator()(const Key& key) const noexcept {
            return (*this)(KeyView{.scope = key.scope, .address = key.address});
        }
    };
    struct KeyEqual {
        using is_transparent = void; // NOLINT(readability-identifier-naming): the standard's name
        static bool same(const KeyView& left, const KeyView& right) {
            return left.address == right.address && left.scope == right.scope;
        }
        bool operator()(const Key& left, const Key& right) const { return left == right; }
        bool operator()(const KeyView& left, const Key& right) const {
            return same(left, {.scope = right.scope, .address = right.address});
        }
        bool operator()(const Key& left, const KeyView& right) const {
            return same({.scope = left.scope, .address = left.address}, right);
        }
    };
    struct Entry {
        ResolvedName name;
        Clock::TimePoint expires_at;
        std::list<Key>::iterator age; // position in oldest_first_
    };

    [[nodiscard]] const Entry* find(std::string_view scope, const IpAddress& address,
                                    Clock::TimePoint now) const;

    MemoryLimits limits_;
    std::unordered_map<Key, Entry, KeyHash, KeyEqual> entries_;
    std::list<Key> oldest_first_; // by the time of their last answer
};

} // namespace pw::dns
