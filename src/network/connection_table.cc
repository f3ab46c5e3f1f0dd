#include "network/connection_table.h"

#include <malloc.h>

#include <iterator>

namespace pw::network {
namespace {

// How many connections one expiry must forget before the memory is handed back.
constexpr std::size_t kCompactionThreshold = 1024;

} // namespace

ConnectionEntry* ConnectionTable::find(const ConnectionKey& key) {
    const auto found = entries_.find(key);
    return found == entries_.end() ? nullptr : &found->second;
}

bool ConnectionTable::insert(const ConnectionKey& key, const ConnectionEntry& entry) {
    if (entries_.size() >= limits_.max_entries) {
        return false;
    }
    entries_.insert_or_assign(key, entry);
    return true;
}

std::size_t ConnectionTable::expire(Clock::TimePoint now) {
    std::size_t expired = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (now - it->second.last_seen >= lifetime(it->first, it->second)) {
            it = entries_.erase(it);
            ++expired;
        } else {
            it = std::next(it);
        }
    }
    if (expired >= kCompactionThreshold) {
        // The bucket array never shrinks by itself, and glibc keeps freed nodes in its arenas:
        // after a burst of new connections both would stay resident until the next burst.
        entries_.rehash(0);
        malloc_trim(0);
    }
    return expired;
}

std::chrono::seconds ConnectionTable::lifetime(const ConnectionKey& key,
                                               const ConnectionEntry& entry) const {
    if (entry.persistence == packet::Persistence::Permanent) {
        return limits_.permanent_linger;
    }
    switch (key.protocol) {
        case packet::protocol::kTcp:
            return limits_.tcp_idle;
        case packet::protocol::kUdp:
        case packet::protocol::kUdpLite:
            return limits_.udp_idle;
        default:
            return limits_.other_idle;
    }
}

} // namespace pw::network
