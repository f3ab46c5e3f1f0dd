#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "firewall/connection_facts.h"
#include "network/connection_key.h"
#include "packet/packet_info.h"
#include "packet/verdict.h"

namespace pw::network {

// The verdict a connection carries: what the kernel was told, and why.
struct LiveDecision {
    std::uint32_t mark = 0;
    packet::Persistence persistence = packet::Persistence::Temporary;
    std::string reason;

    friend bool operator==(const LiveDecision&, const LiveDecision&) = default;
};

// A decided connection that is still alive, with what it was decided from, so that it can be
// decided again when a setting, a rule or a profile changes.
struct LiveConnection {
    std::uint64_t id = 0;
    firewall::ConnectionFacts facts;
    // In add(): any view, copied. Stored: the registry's one copy per profile, valid while the
    // connection is registered.
    std::string_view profile_id;
    LiveDecision decision;
    // When the current mark was given.
    Clock::TimePoint
        decided_at{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-initializers
};

// A connection whose mark re-evaluation changed: what the caller applies to the kernel (the
// conntrack entry of a permanent verdict) or to the connection table (a temporary one).
struct MarkChange {
    ConnectionKey key;
    packet::Direction direction = packet::Direction::Outbound;
    std::uint64_t id = 0;
    std::uint32_t old_mark = 0;
    std::uint32_t new_mark = 0;
    packet::Persistence old_persistence = packet::Persistence::Temporary;
    packet::Persistence new_persistence = packet::Persistence::Temporary;

    friend bool operator==(const MarkChange&, const MarkChange&) = default;
};

// Which live connections an operation looks at: all, or one profile's (through the profile
// index: no scan of the other connections), optionally narrowed further by a predicate.
struct LiveFilter {
    std::optional<std::string> profile_id; // nullopt: every profile
    // Empty: no further narrowing.
    std::function<bool(const LiveConnection&)>
        predicate{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-initializers

    [[nodiscard]] static LiveFilter all() { return {}; }
    [[nodiscard]] static LiveFilter profile(std::string id) {
        return {.profile_id = std::move(id), .predicate = {}};
    }
};

// The registry of decided, live connections, keyed like the connection table. Bounded: when
// full, adding a new connection evicts the least recently added one (counted): a host with more
// live connections than the bound re-evaluates only the newest. Indexed by profile, so that
// re-evaluating one profile's connections visits only those. The packet processor adds a
// connection when it decides it; the conntrack destroy events remove it. Runs on the event-loop
// thread only.
class LiveConnections {
public:
    struct Counters {
        std::uint64_t added = 0;    // new keys
        std::uint64_t replaced = 0; // add() of a key already registered
        std::uint64_t removed = 0;
        std::uint64_t evicted = 0; // the oldest connection made room for a new one
    };

    // The new decision for one connection; given the connection as registered.
    using Decide = std::function<LiveDecision(const LiveConnection&)>;
    using Visitor = std::function<void(const ConnectionKey&, const LiveConnection&)>;

    static constexpr std::size_t kDefaultCapacity = 65536;

    explicit LiveConnections(std::size_t capacity = kDefaultCapacity);
    LiveConnections(const LiveConnections&) = delete;
    LiveConnections& operator=(const LiveConnections&) = delete;
    LiveConnections(LiveConnections&&) = delete;
    LiveConnections& operator=(LiveConnections&&) = delete;
    ~LiveConnections() = default;

    // Registers the connection, or replaces the one registered under `key` (a new connection
    // reusing the tuple); either way it becomes the most recently added.
    void add(const ConnectionKey& key, LiveConnection connection);

    // Forgets the connection (it ended); false when it was not registered.
    bool remove(const ConnectionKey& key);

    // The registered connection, or nullptr; valid until the next add() or remove().
    [[nodiscard]] const LiveConnection* find(const ConnectionKey& key) const;

    // The keys of the registered UDP connections that match `key` in all but the local address
    // (a socket bound to the wildcard address does not know its own), from an index: no scan.
    [[nodiscard]] std::vector<ConnectionKey> find_udp_any_local(const ConnectionKey& key) const;

    // Visits the selected connections, oldest first. `visit` must not add or remove.
    void for_each(const LiveFilter& filter, const Visitor& visit) const;

    // Decides every selected connection again with `decide` and stores the new decision (the
    // reason too when the mark stays); decided_at becomes `now` where the mark changed. Returns
    // the connections whose mark changed, oldest first, for the caller to apply. `decide` must
    // not add or remove.
    [[nodiscard]] std::vector<MarkChange> reevaluate(const LiveFilter& filter, const Decide& decide,
                                                     Clock::TimePoint now);

    [[nodiscard]] std::size_t size() const { return entries_.size(); }
    [[nodiscard]] std::size_t capacity() const { return capacity_; }
    // How many connections `profile_id` has registered (from the index).
    [[nodiscard]] std::size_t count(std::string_view profile_id) const;
    // Profiles with at least one registered connection.
    [[nodiscard]] std::size_t profile_count() const { return profiles_.size(); }
    [[nodiscard]] const Counters& counters() const { return counters_; }

private:
    struct Node;

    // The connections of one profile: an intrusive list through their nodes.
    struct ProfileList {
        Node* first = nullptr;
        Node* last = nullptr;
        std::size_t size = 0;
    };

    // Profile ids are looked up by string_view without building a string.
    struct ProfileHash {
        using is_transparent = void; // NOLINT(readability-identifier-naming): the standard's name
        std::size_t operator()(std::string_view id) const noexcept {
            return std::hash<std::string_view>{}(id);
        }
    };
    using Profiles = std::unordered_map<std::string, ProfileList, ProfileHash, std::equal_to<>>;

    // One registered connection and its places in the two intrusive lists (age, profile). The
    // map's nodes do not move, so the pointers stay valid until the node is erased.
    struct Node {
        LiveConnection connection;
        const ConnectionKey* key = nullptr;
        Profiles::value_type* profile = nullptr;
        Node* older = nullptr;
        Node* newer = nullptr;
        Node* older_in_profile = nullptr;
        Node* newer_in_profile = nullptr;
    };

    // Appends the node to the age list and to `profile`'s list.
    void link(Node& node, Profiles::value_type& profile);
    // Takes the node out of both lists; leaves its profile in the index even when empty.
    void unlink(Node& node);
    // Forgets `profile` when its last connection is gone.
    void drop_if_empty(const Profiles::value_type& profile);
    [[nodiscard]] Profiles::value_type& profile_entry(std::string_view id);
    // The first node the filter selects by list (not yet by predicate), and the next one.
    [[nodiscard]] Node* first_of(const LiveFilter& filter) const;
    [[nodiscard]] static Node* next_of(const LiveFilter& filter, const Node& node);

    // Set while a visitor or `decide` runs: they must not change the lists being walked.
    class VisitGuard;

    // `key` without its local address: the key of the UDP index.
    [[nodiscard]] static ConnectionKey any_local(const ConnectionKey& key);
    // Erases the node under `key` from the map and the UDP index (already unlinked).
    void erase_entry(const ConnectionKey& key);

    std::size_t capacity_;
    std::unordered_map<ConnectionKey, Node, ConnectionKeyHash> entries_;
    // UDP connections by any_local(key) -> their key in entries_ (issue 10 item 8: a new sender
    // on a flow is reported with the local address its socket knows, often none).
    std::unordered_multimap<ConnectionKey, const ConnectionKey*, ConnectionKeyHash> udp_index_;
    Profiles profiles_;
    Node* oldest_ = nullptr;
    Node* newest_ = nullptr;
    Counters counters_;
    mutable bool visiting_ = false;
};

} // namespace pw::network
