#include "network/live_connections.h"

#include <utility>

#include "common/assert.h"

namespace pw::network {

namespace {
constexpr std::uint8_t kUdp = 17;
} // namespace

class LiveConnections::VisitGuard {
public:
    explicit VisitGuard(bool& visiting) : visiting_(visiting) {
        // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
        PW_ASSERT(!visiting_);
        visiting_ = true;
    }
    VisitGuard(const VisitGuard&) = delete;
    VisitGuard& operator=(const VisitGuard&) = delete;
    VisitGuard(VisitGuard&&) = delete;
    VisitGuard& operator=(VisitGuard&&) = delete;
    ~VisitGuard() { visiting_ = false; }

private:
    bool& visiting_;
};

LiveConnections::LiveConnections(std::size_t capacity) : capacity_(capacity) {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(capacity_ > 0);
}

void LiveConnections::add(const ConnectionKey& key, LiveConnection connection) {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(!visiting_);
    // The profile first: `connection.profile_id` may view a string of ours that the eviction
    // or replacement below would free.
    Profiles::value_type& profile = profile_entry(connection.profile_id);
    const Profiles::value_type* emptied = nullptr; // may have lost its last connection
    auto found = entries_.find(key);
    if (found != entries_.end()) {
        ++counters_.replaced;
        emptied = found->second.profile;
        unlink(found->second);
    } else {
        if (entries_.size() >= capacity_) {
            ++counters_.evicted;
            Node& oldest = *oldest_;
            emptied = oldest.profile;
            unlink(oldest);
            erase_entry(*oldest.key);
        }
        ++counters_.added;
        found = entries_.try_emplace(key).first;
        found->second.key = &found->first;
        if (key.protocol == kUdp) {
            udp_index_.emplace(any_local(key), &found->first);
        }
    }
    Node& node = found->second;
    node.connection = std::move(connection);
    node.connection.profile_id = profile.first;
    link(node, profile);
    if (emptied != nullptr && emptied != &profile) {
        drop_if_empty(*emptied);
    }
}

bool LiveConnections::remove(const ConnectionKey& key) {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(!visiting_);
    const auto found = entries_.find(key);
    if (found == entries_.end()) {
        return false;
    }
    ++counters_.removed;
    const Profiles::value_type& profile = *found->second.profile;
    unlink(found->second);
    erase_entry(key);
    drop_if_empty(profile);
    return true;
}

ConnectionKey LiveConnections::any_local(const ConnectionKey& key) {
    ConnectionKey indexed = key;
    indexed.local_address = IpAddress();
    return indexed;
}

void LiveConnections::erase_entry(const ConnectionKey& key) {
    const auto found = entries_.find(key);
    if (found == entries_.end()) {
        return;
    }
    if (key.protocol == kUdp) {
        auto [first, last] = udp_index_.equal_range(any_local(key));
        for (auto entry = first; entry != last; ++entry) {
            if (entry->second == &found->first) {
                udp_index_.erase(entry);
                break;
            }
        }
    }
    entries_.erase(found);
}

std::vector<ConnectionKey> LiveConnections::find_udp_any_local(const ConnectionKey& key) const {
    std::vector<ConnectionKey> keys;
    if (key.protocol != kUdp) {
        return keys;
    }
    auto [first, last] = udp_index_.equal_range(any_local(key));
    for (auto entry = first; entry != last; ++entry) {
        keys.push_back(*entry->second);
    }
    return keys;
}

const LiveConnection* LiveConnections::find(const ConnectionKey& key) const {
    const auto found = entries_.find(key);
    return found == entries_.end() ? nullptr : &found->second.connection;
}

void LiveConnections::for_each(const LiveFilter& filter, const Visitor& visit) const {
    const VisitGuard guard(visiting_);
    for (const Node* node = first_of(filter); node != nullptr; node = next_of(filter, *node)) {
        if (!filter.predicate || filter.predicate(node->connection)) {
            visit(*node->key, node->connection);
        }
    }
}

std::vector<MarkChange> LiveConnections::reevaluate(const LiveFilter& filter, const Decide& decide,
                                                    Clock::TimePoint now) {
    const VisitGuard guard(visiting_);
    std::vector<MarkChange> changes;
    for (Node* node = first_of(filter); node != nullptr; node = next_of(filter, *node)) {
        LiveConnection& connection = node->connection;
        if (filter.predicate && !filter.predicate(connection)) {
            continue;
        }
        LiveDecision decision = decide(connection);
        if (decision.mark != connection.decision.mark) {
            changes.push_back(MarkChange{.key = *node->key,
                                         .direction = connection.facts.direction,
                                         .id = connection.id,
                                         .old_mark = connection.decision.mark,
                                         .new_mark = decision.mark,
                                         .old_persistence = connection.decision.persistence,
                                         .new_persistence = decision.persistence});
            connection.decided_at = now;
        }
        connection.decision = std::move(decision);
    }
    return changes;
}

std::size_t LiveConnections::count(std::string_view profile_id) const {
    const auto found = profiles_.find(profile_id);
    return found == profiles_.end() ? 0 : found->second.size;
}

LiveConnections::Profiles::value_type& LiveConnections::profile_entry(std::string_view id) {
    if (const auto found = profiles_.find(id); found != profiles_.end()) {
        return *found;
    }
    return *profiles_.emplace(std::string(id), ProfileList{}).first;
}

void LiveConnections::link(Node& node, Profiles::value_type& profile) {
    node.profile = &profile;
    node.older = newest_;
    node.newer = nullptr;
    (newest_ != nullptr ? newest_->newer : oldest_) = &node;
    newest_ = &node;
    ProfileList& list = profile.second;
    node.older_in_profile = list.last;
    node.newer_in_profile = nullptr;
    (list.last != nullptr ? list.last->newer_in_profile : list.first) = &node;
    list.last = &node;
    ++list.size;
}

void LiveConnections::unlink(Node& node) {
    (node.older != nullptr ? node.older->newer : oldest_) = node.newer;
    (node.newer != nullptr ? node.newer->older : newest_) = node.older;
    ProfileList& list = node.profile->second;
    (node.older_in_profile != nullptr ? node.older_in_profile->newer_in_profile : list.first) =
        node.newer_in_profile;
    (node.newer_in_profile != nullptr ? node.newer_in_profile->older_in_profile : list.last) =
        node.older_in_profile;
    --list.size;
    node.older = node.newer = node.older_in_profile = node.newer_in_profile = nullptr;
}

void LiveConnections::drop_if_empty(const Profiles::value_type& profile) {
    if (profile.second.size == 0) {
        profiles_.erase(profiles_.find(profile.first));
    }
}

LiveConnections::Node* LiveConnections::first_of(const LiveFilter& filter) const {
    if (!filter.profile_id) {
        return oldest_;
    }
    const auto found = profiles_.find(*filter.profile_id);
    return found == profiles_.end() ? nullptr : found->second.first;
}

LiveConnections::Node* LiveConnections::next_of(const LiveFilter& filter, const Node& node) {
    return filter.profile_id ? node.newer_in_profile : node.newer;
}

} // namespace pw::network
