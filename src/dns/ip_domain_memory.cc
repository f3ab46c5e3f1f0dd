#include "dns/ip_domain_memory.h"

#include <algorithm>
#include <utility>

namespace pw::dns {

void IpDomainMemory::record(std::string_view scope, const IpAddress& address,
                            std::string_view domain, std::span<const std::string> cname_chain,
                            std::chrono::seconds ttl, Clock::TimePoint now,
                            const std::optional<IpAddress>& resolver) {
    if (limits_.max_entries == 0) {
        return;
    }
    const std::chrono::seconds keep = std::clamp(ttl, limits_.min_keep, limits_.max_keep);
    if (const auto known = entries_.find(KeyView{.scope = scope, .address = address});
        known != entries_.end()) {
        Entry& entry = known->second;
        if (entry.name.domain != domain ||
            !std::ranges::equal(entry.name.cname_chain, cname_chain)) {
            entry.name.domain.assign(domain);
            entry.name.cname_chain.assign(cname_chain.begin(), cname_chain.end());
        }
        entry.name.recorded_at = now;
        entry.name.resolver = resolver;
        entry.expires_at = now + keep;
        // The newest answer moves to the young end.
        oldest_first_.splice(oldest_first_.end(), oldest_first_, entry.age);
        return;
    }
    while (entries_.size() >= limits_.max_entries) {
        entries_.erase(oldest_first_.front());
        oldest_first_.pop_front();
    }
    Key key{.scope = std::string(scope), .address = address};
    ResolvedName name{.domain = std::string(domain),
                      .cname_chain = {cname_chain.begin(), cname_chain.end()},
                      .recorded_at = now,
                      .resolver = resolver};
    oldest_first_.push_back(key);
    entries_.emplace(std::move(key), Entry{.name = std::move(name),
                                           .expires_at = now + keep,
                                           .age = std::prev(oldest_first_.end())});
}

const IpDomainMemory::Entry* IpDomainMemory::find(std::string_view scope, const IpAddress& address,
                                                  Clock::TimePoint now) const {
    const auto found = entries_.find(KeyView{.scope = scope, .address = address});
    if (found == entries_.end() || found->second.expires_at <= now) {
        return nullptr;
    }
    return &found->second;
}

std::optional<ResolvedName> IpDomainMemory::lookup(std::string_view scope, const IpAddress& address,
                                                   Clock::TimePoint now) const {
    const Entry* entry = find(scope, address, now);
    if (entry == nullptr && scope != kGlobalScope) {
        entry = find(kGlobalScope, address, now);
    }
    if (entry == nullptr) {
        return std::nullopt;
    }
    return entry->name;
}

std::size_t IpDomainMemory::expire(Clock::TimePoint now) {
    std::size_t removed = 0;
    for (auto entry = entries_.begin(); entry != entries_.end();) {
        if (entry->second.expires_at <= now) {
            oldest_first_.erase(entry->second.age);
            entry = entries_.erase(entry);
            ++removed;
        } else {
            ++entry;
        }
    }
    return removed;
}

} // namespace pw::dns
