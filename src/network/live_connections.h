#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "firewall/connection_facts.h"
#include "network/connection_key.h"
#include "network/intern_pool.h"
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

class LiveConnections;

// What add() registers besides the facts. Views: the registry copies only what it does not hold
// yet (a profile, a reason it has not seen), so registering a connection of a known process and
// domain allocates nothing on the packet path.
struct NewLiveConnection {
    std::uint64_t id = 0;
    std::string_view profile_id; // may view the registry's own copy (LiveConnection::profile_id)
    std::uint32_t mark = 0;
    packet::Persistence persistence = packet::Persistence::Temporary;
    std::string_view reason;
    // When the mark was given.
    Clock::TimePoint
        decided_at{}; // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-initializers
};

// One profile's registered connections: its id (the registry's one copy) and an intrusive list
// through their slots. LiveConnections' bookkeeping; declared here for LiveConnection.
struct LiveProfile {
    std::string id;
    std::uint32_t first = UINT32_MAX;
    std::uint32_t last = UINT32_MAX;
    std::size_t size = 0;
};

// A decided connection that is still alive, with what it was decided from, so that it can be
// decided again when a setting, a rule or a profile changes. Compact (issue 9, memory): what many
// connections have in common (process, domain, profile label, reason) is one shared copy in the
// registry's pools, and the facts' addresses are the key's. facts() puts the full facts back
// together for re-evaluation. Only the registry makes them; a reference stays valid until the
// next add() or remove().
class LiveConnection {
public:
    LiveConnection(const LiveConnection&) = delete;
    LiveConnection& operator=(const LiveConnection&) = delete;
    LiveConnection(LiveConnection&&) = delete;
    LiveConnection& operator=(LiveConnection&&) = delete;
    ~LiveConnection() = default;

    [[nodiscard]] std::uint64_t id() const { return id_; }
    [[nodiscard]] const ConnectionKey& key() const { return key_; }
    [[nodiscard]] packet::Direction direction() const { return direction_; }
    // nullptr: not known. The registry's shared copy.
    [[nodiscard]] const firewall::ProcessFacts* process() const {
        return process_ != nullptr ? &process_->value() : nullptr;
    }
    [[nodiscard]] const firewall::DomainFacts* domain() const {
        return domain_ != nullptr ? &domain_->value() : nullptr;
    }
    // The facts' profile label (what events name).
    [[nodiscard]] const firewall::ProfileLabel& profile_label() const { return label_->value(); }
    // The profile it is indexed under: the registry's one copy.
    [[nodiscard]] std::string_view profile_id() const { return profile_->id; }
    // The verdict the connection carries: what the kernel was told, and why.
    [[nodiscard]] std::uint32_t mark() const { return mark_; }
    [[nodiscard]] packet::Persistence persistence() const { return persistence_; }
    [[nodiscard]] std::string_view reason() const { return reason_->value(); }
    // mark(), persistence() and reason() as one value (copies the reason).
    [[nodiscard]] LiveDecision decision() const;
    // When the current mark was given.
    [[nodiscard]] Clock::TimePoint decided_at() const { return decided_at_; }
    // The facts as they were added (allocates: for re-evaluation, which is rare).
    [[nodiscard]] firewall::ConnectionFacts facts() const;

private:
    friend class LiveConnections;

    // What few connections have: facts whose addresses are not the key's, a broadcast answered.
    struct Unusual {
        ConnectionKey endpoint; // the facts' protocol, addresses and ports
        std::optional<IpAddress> answers_broadcast_to;
    };

    LiveConnection() = default;

    // Key first: 40 bytes of 2-byte alignment, then the 8-byte fields, then the small ones.
    ConnectionKey key_;
    std::uint64_t id_ = 0;
    Clock::TimePoint decided_at_;
    const Interned<firewall::ProcessFacts>* process_ = nullptr;
    const Interned<firewall::DomainFacts>* domain_ = nullptr;
    const Interned<firewall::ProfileLabel>* label_ = nullptr;
    const Interned<std::string>* reason_ = nullptr;
    LiveProfile* profile_ = nullptr;
    std::unique_ptr<Unusual> unusual_; // nullptr for nearly every connection
    std::uint32_t mark_ = 0;
    packet::Persistence persistence_ = packet::Persistence::Temporary;
    packet::Direction direction_ = packet::Direction::Outbound;
    IpFamily ip_family_ = IpFamily::V4;
    std::uint8_t icmp_type_ = 0;
    // Slot indices (UINT32_MAX: none) of the age list, the profile's list, the key's hash chain
    // (the free list while unused) and the UDP index's chain.
    std::uint32_t older_ = UINT32_MAX;
    std::uint32_t newer_ = UINT32_MAX;
    std::uint32_t older_in_profile_ = UINT32_MAX;
    std::uint32_t newer_in_profile_ = UINT32_MAX;
    std::uint32_t next_in_bucket_ = UINT32_MAX;
    std::uint32_t next_udp_ = UINT32_MAX;
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
// connection when it decides it; the conntrack destroy events remove it.
//
// Memory (issue 9): connections live in slots of fixed blocks (no allocation per connection; the
// blocks stay at the high-water mark, at most `capacity` slots), found through hash chains of slot
// indices; the lists link slots by 32-bit index. Process facts, domain facts, profile labels and
// reasons are shared, reference-counted copies (InternPool), freed with their last connection.
// Runs on the event-loop thread only.
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
    ~LiveConnections();

    // Registers the connection, or replaces the one registered under `key` (a new connection
    // reusing the tuple); either way it becomes the most recently added. Copies from `facts` only
    // what the registry does not hold yet.
    void add(const ConnectionKey& key, const firewall::ConnectionFacts& facts,
             const NewLiveConnection& connection);

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

    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] std::size_t capacity() const { return capacity_; }
    // How many connections `profile_id` has registered (from the index).
    [[nodiscard]] std::size_t count(std::string_view profile_id) const;
    // Profiles with at least one registered connection.
    [[nodiscard]] std::size_t profile_count() const { return profiles_.size(); }
    [[nodiscard]] const Counters& counters() const { return counters_; }
    // Distinct shared copies held (for tests and memory accounting).
    struct Shared {
        std::size_t processes = 0;
        std::size_t domains = 0;
        std::size_t labels = 0;
        std::size_t reasons = 0;

        friend bool operator==(const Shared&, const Shared&) = default;
    };
    // Slots allocated, registered or free (memory accounting): at most the high-water mark,
    // rounded up to a block, until remove() gives most of them back.
    [[nodiscard]] std::size_t slots() const;
    [[nodiscard]] Shared shared() const {
        return {.processes = processes_.size(),
                .domains = domains_.size(),
                .labels = labels_.size(),
                .reasons = reasons_.size()};
    }

private:
    struct ProcessHash {
        std::size_t operator()(const firewall::ProcessFacts& process) const noexcept;
    };
    struct DomainHash {
        std::size_t operator()(const firewall::DomainFacts& domain) const noexcept;
    };
    struct LabelHash {
        std::size_t operator()(const firewall::ProfileLabel& label) const noexcept;
    };
    struct ReasonHash {
        std::size_t operator()(std::string_view reason) const noexcept {
            return std::hash<std::string_view>{}(reason);
        }
    };

    [[nodiscard]] LiveConnection& at(std::uint32_t slot) const;
    // The slot registered under `key`, or UINT32_MAX.
    [[nodiscard]] std::uint32_t lookup(const ConnectionKey& key) const;
    // A free slot (from the free list, or a new one, growing the blocks).
    [[nodiscard]] std::uint32_t allocate();
    // Gives the connection's shared copies back.
    void release_shared(LiveConnection& connection);
    // Takes the connection out of the lists and the hash chains, gives its shared copies back and
    // puts its slot on the free list (its profile stays, even when empty).
    void forget(std::uint32_t slot);
    // Puts the slot in its key's hash chain (and the UDP index's), growing the tables first when
    // they are as long as the registry will be.
    void index(std::uint32_t slot);
    void chain(std::uint32_t slot);
    void unindex(std::uint32_t slot);
    void rehash(std::size_t buckets);
    // Moves the registered connections, oldest first, into as few new blocks as they need and
    // frees the old ones: after a burst, the memory goes back (the heap is trimmed later).
    void compact();
    [[nodiscard]] std::size_t bucket_of(const ConnectionKey& key) const;

    // Appends the slot to the age list and to `profile`'s list.
    void link(std::uint32_t slot, LiveProfile& profile);
    // Takes the slot out of both lists; leaves its profile in the index even when empty.
    void unlink(std::uint32_t slot);
    // Forgets `profile` when its last connection is gone.
    void drop_if_empty(LiveProfile& profile);
    [[nodiscard]] LiveProfile& profile_entry(std::string_view id);
    // The first slot the filter selects by list (not yet by predicate), and the next one.
    [[nodiscard]] std::uint32_t first_of(const LiveFilter& filter) const;
    [[nodiscard]] static std::uint32_t next_of(const LiveFilter& filter,
                                               const LiveConnection& connection);

    // Set while a visitor or `decide` runs: they must not change the lists being walked.
    class VisitGuard;

    // `key` without its local address: the key of the UDP index.
    [[nodiscard]] static ConnectionKey any_local(const ConnectionKey& key);

    std::size_t capacity_;
    std::size_t size_ = 0;
    // Slots live in blocks of kBlockSize that never move, so pointers to them stay valid.
    std::vector<std::unique_ptr<LiveConnection[]>> blocks_; // NOLINT(modernize-avoid-c-arrays)
    std::uint32_t used_ = 0;          // slots ever handed out: the free list holds the rest
    std::uint32_t free_ = UINT32_MAX; // free list, through next_in_bucket_
    // Heads of the hash chains by key, and of the UDP index by any_local(key) (issue 10 item 8:
    // a new sender on a flow is reported with the local address its socket knows, often none).
    std::vector<std::uint32_t> buckets_;
    std::vector<std::uint32_t> udp_buckets_;
    unsigned bucket_bits_ = 0;
    std::unordered_map<std::string_view, std::unique_ptr<LiveProfile>> profiles_; // key views id
    InternPool<firewall::ProcessFacts, const firewall::ProcessFacts&, ProcessHash> processes_;
    InternPool<firewall::DomainFacts, const firewall::DomainFacts&, DomainHash> domains_;
    InternPool<firewall::ProfileLabel, const firewall::ProfileLabel&, LabelHash> labels_;
    InternPool<std::string, std::string_view, ReasonHash> reasons_;
    std::uint32_t oldest_ = UINT32_MAX;
    std::uint32_t newest_ = UINT32_MAX;
    Counters counters_;
    mutable bool visiting_ = false;
};

} // namespace pw::network
