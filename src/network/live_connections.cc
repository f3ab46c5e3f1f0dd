#include "network/live_connections.h"

#include <algorithm>
#include <bit>
#include <utility>

#include "common/assert.h"

namespace pw::network {

namespace {

constexpr std::uint8_t kUdp = 17;
constexpr std::uint32_t kNone = UINT32_MAX;
// 256 slots of 136 bytes: about 34 KiB per block.
constexpr unsigned kBlockShift = 8;
constexpr std::uint32_t kBlockSize = 1U << kBlockShift;
constexpr std::uint32_t kBlockMask = kBlockSize - 1;
constexpr unsigned kFirstBucketBits = 6;
// remove() compacts when fewer than a quarter of the slots are registered, and more than this
// many blocks are allocated (below that the memory is not worth the copying).
constexpr std::size_t kBlocksKept = 4;
constexpr std::size_t kCompactBelowFraction = 4;

// Mixes the bits of a hash before it is cut to a power of two (Fibonacci hashing): the key hash
// combines fields with *31, whose low bits alone cluster.
constexpr std::uint64_t kGoldenRatio = 0x9E3779B97F4A7C15ULL;

// Boost's hash_combine.
std::size_t combine(std::size_t seed, std::size_t value) {
    return seed ^ (value + 0x9E3779B9U + (seed << 6U) + (seed >> 2U));
}

// The facts' own protocol, addresses and ports (equal to the key's on the packet path).
ConnectionKey endpoint_of(const firewall::ConnectionFacts& facts) {
    return ConnectionKey{.protocol = facts.protocol,
                         .local_address = facts.local_address,
                         .local_port = facts.local_port,
                         .remote_address = facts.remote_address,
                         .remote_port = facts.remote_port};
}

} // namespace

LiveDecision LiveConnection::decision() const {
    return {.mark = mark_, .persistence = persistence_, .reason = std::string(reason())};
}

firewall::ConnectionFacts LiveConnection::facts() const {
    const Unusual* unusual = unusual_.get();
    const ConnectionKey& endpoint = unusual != nullptr ? unusual->endpoint : key_;
    firewall::ConnectionFacts facts;
    facts.direction = direction_;
    facts.ip_family = ip_family_;
    facts.protocol = endpoint.protocol;
    facts.local_address = endpoint.local_address;
    facts.local_port = endpoint.local_port;
    facts.remote_address = endpoint.remote_address;
    facts.remote_port = endpoint.remote_port;
    facts.icmp_type = icmp_type_;
    if (process_ != nullptr) {
        facts.process = process_->value();
    }
    if (domain_ != nullptr) {
        facts.domain = domain_->value();
    }
    facts.profile = label_->value();
    if (unusual != nullptr) {
        facts.answers_broadcast_to = unusual->answers_broadcast_to;
    }
    return facts;
}

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

std::size_t LiveConnections::ProcessHash::operator()(
    const firewall::ProcessFacts& process) const noexcept {
    std::size_t hash = std::hash<std::int64_t>{}(process.pid);
    hash = combine(hash, std::hash<std::uint64_t>{}(process.start_time));
    hash = combine(hash, static_cast<std::size_t>(process.kind));
    hash = combine(hash, process.uid);
    return combine(hash, std::hash<std::string_view>{}(process.identity));
}

std::size_t LiveConnections::DomainHash::operator()(
    const firewall::DomainFacts& domain) const noexcept {
    std::size_t hash = std::hash<std::string_view>{}(domain.domain);
    for (const std::string& name : domain.cname_chain) {
        hash = combine(hash, std::hash<std::string_view>{}(name));
    }
    return hash;
}

std::size_t LiveConnections::LabelHash::operator()(
    const firewall::ProfileLabel& label) const noexcept {
    return combine(std::hash<std::string_view>{}(label.id),
                   std::hash<std::string_view>{}(label.name));
}

LiveConnections::LiveConnections(std::size_t capacity) : capacity_(capacity) {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(capacity_ > 0);
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(capacity_ < kNone); // slots are numbered in 32 bits
}

// The slots' destructors touch no pool, so the members' order of destruction does not matter.
LiveConnections::~LiveConnections() = default;

void LiveConnections::add(const ConnectionKey& key, const firewall::ConnectionFacts& facts,
                          const NewLiveConnection& connection) {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(!visiting_);
    // The shared parts first, before anything is released: `connection`'s views may point into
    // copies that the replacement or eviction below would free (its profile id, its reason).
    LiveProfile& profile = profile_entry(connection.profile_id);
    const auto* process = facts.process ? &processes_.acquire(*facts.process) : nullptr;
    const auto* domain = facts.domain ? &domains_.acquire(*facts.domain) : nullptr;
    const auto& label = labels_.acquire(facts.profile);
    const auto& reason = reasons_.acquire(connection.reason);

    LiveProfile* emptied = nullptr; // may have lost its last connection
    std::uint32_t slot = lookup(key);
    if (slot != kNone) {
        ++counters_.replaced;
        emptied = at(slot).profile_;
        unlink(slot);
        release_shared(at(slot));
    } else {
        if (size_ >= capacity_) {
            ++counters_.evicted;
            emptied = at(oldest_).profile_;
            forget(oldest_);
        }
        ++counters_.added;
        slot = allocate();
        at(slot).key_ = key;
        index(slot);
        ++size_;
    }
    LiveConnection& live = at(slot);
    live.id_ = connection.id;
    live.decided_at_ = connection.decided_at;
    live.process_ = process;
    live.domain_ = domain;
    live.label_ = &label;
    live.reason_ = &reason;
    live.mark_ = connection.mark;
    live.persistence_ = connection.persistence;
    live.direction_ = facts.direction;
    live.ip_family_ = facts.ip_family;
    live.icmp_type_ = facts.icmp_type;
    if (const ConnectionKey endpoint = endpoint_of(facts);
        endpoint != key || facts.answers_broadcast_to) {
        live.unusual_ = std::make_unique<LiveConnection::Unusual>(LiveConnection::Unusual{
            .endpoint = endpoint, .answers_broadcast_to = facts.answers_broadcast_to});
    }
    link(slot, profile);
    if (emptied != nullptr && emptied != &profile) {
        drop_if_empty(*emptied);
    }
}

bool LiveConnections::remove(const ConnectionKey& key) {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(!visiting_);
    const std::uint32_t slot = lookup(key);
    if (slot == kNone) {
        return false;
    }
    ++counters_.removed;
    LiveProfile& profile = *at(slot).profile_;
    forget(slot);
    drop_if_empty(profile);
    if (blocks_.size() > kBlocksKept && size_ * kCompactBelowFraction < used_) {
        compact();
    }
    return true;
}

std::size_t LiveConnections::slots() const {
    return blocks_.size() * kBlockSize;
}

void LiveConnections::compact() {
    const auto count = static_cast<std::uint32_t>(size_);
    std::vector<std::unique_ptr<LiveConnection[]>> blocks; // NOLINT(modernize-avoid-c-arrays)
    for (std::uint32_t made = 0; made < count; made += kBlockSize) {
        // Not make_unique: the slots' constructor is private to LiveConnection and us.
        // NOLINTNEXTLINE(modernize-avoid-c-arrays)
        std::unique_ptr<LiveConnection[]> block(new LiveConnection[kBlockSize]);
        blocks.push_back(std::move(block));
    }
    std::uint32_t next = 0;
    for (std::uint32_t slot = oldest_; slot != kNone; slot = at(slot).newer_, ++next) {
        LiveConnection& from = at(slot);
        LiveConnection& to = blocks[next >> kBlockShift][next & kBlockMask];
        to.key_ = from.key_;
        to.id_ = from.id_;
        to.decided_at_ = from.decided_at_;
        to.process_ = from.process_;
        to.domain_ = from.domain_;
        to.label_ = from.label_;
        to.reason_ = from.reason_;
        to.profile_ = from.profile_;
        to.unusual_ = std::move(from.unusual_);
        to.mark_ = from.mark_;
        to.persistence_ = from.persistence_;
        to.direction_ = from.direction_;
        to.ip_family_ = from.ip_family_;
        to.icmp_type_ = from.icmp_type_;
    }
    blocks_ = std::move(blocks);
    used_ = count;
    free_ = kNone;
    // The age list and every profile's list were in the same order (both append on add and
    // drop on remove), so linking again oldest first rebuilds both.
    oldest_ = newest_ = kNone;
    for (auto& [id, profile] : profiles_) {
        profile->first = profile->last = kNone;
        profile->size = 0;
    }
    for (std::uint32_t slot = 0; slot < count; ++slot) {
        link(slot, *at(slot).profile_);
    }
    rehash(std::max(std::size_t{1} << kFirstBucketBits, std::bit_ceil(std::size_t{count})));
}

LiveConnection& LiveConnections::at(std::uint32_t slot) const {
    return blocks_[slot >> kBlockShift][slot & kBlockMask];
}

std::size_t LiveConnections::bucket_of(const ConnectionKey& key) const {
    const std::uint64_t hash = ConnectionKeyHash{}(key);
    return static_cast<std::size_t>((hash * kGoldenRatio) >> (64U - bucket_bits_));
}

std::uint32_t LiveConnections::lookup(const ConnectionKey& key) const {
    if (buckets_.empty()) {
        return kNone;
    }
    std::uint32_t slot = buckets_[bucket_of(key)];
    while (slot != kNone && at(slot).key_ != key) {
        slot = at(slot).next_in_bucket_;
    }
    return slot;
}

std::uint32_t LiveConnections::allocate() {
    if (free_ != kNone) {
        const std::uint32_t slot = free_;
        free_ = at(slot).next_in_bucket_;
        return slot;
    }
    if (used_ == blocks_.size() * kBlockSize) {
        // Not make_unique: the slots' constructor is private to LiveConnection and us.
        // NOLINTNEXTLINE(modernize-avoid-c-arrays,modernize-make-unique)
        std::unique_ptr<LiveConnection[]> block(new LiveConnection[kBlockSize]);
        blocks_.push_back(std::move(block));
    }
    return used_++;
}

void LiveConnections::release_shared(LiveConnection& connection) {
    if (connection.process_ != nullptr) {
        processes_.release(*connection.process_);
    }
    if (connection.domain_ != nullptr) {
        domains_.release(*connection.domain_);
    }
    labels_.release(*connection.label_);
    reasons_.release(*connection.reason_);
    connection.process_ = nullptr;
    connection.domain_ = nullptr;
    connection.label_ = nullptr;
    connection.reason_ = nullptr;
    connection.unusual_.reset();
}

void LiveConnections::forget(std::uint32_t slot) {
    unlink(slot);
    unindex(slot);
    release_shared(at(slot));
    at(slot).next_in_bucket_ = free_;
    free_ = slot;
    --size_;
}

void LiveConnections::index(std::uint32_t slot) {
    if (size_ + 1 > buckets_.size()) {
        rehash(buckets_.empty() ? std::size_t{1} << kFirstBucketBits : buckets_.size() * 2);
    }
    chain(slot);
}

void LiveConnections::chain(std::uint32_t slot) {
    LiveConnection& connection = at(slot);
    std::uint32_t& head = buckets_[bucket_of(connection.key_)];
    connection.next_in_bucket_ = head;
    head = slot;
    if (connection.key_.protocol == kUdp) {
        std::uint32_t& udp_head = udp_buckets_[bucket_of(any_local(connection.key_))];
        connection.next_udp_ = udp_head;
        udp_head = slot;
    }
}

void LiveConnections::unindex(std::uint32_t slot) {
    LiveConnection& connection = at(slot);
    std::uint32_t* link = &buckets_[bucket_of(connection.key_)];
    while (*link != slot) {
        // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
        PW_ASSERT(*link != kNone);
        link = &at(*link).next_in_bucket_;
    }
    *link = connection.next_in_bucket_;
    if (connection.key_.protocol == kUdp) {
        link = &udp_buckets_[bucket_of(any_local(connection.key_))];
        while (*link != slot) {
            // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
            PW_ASSERT(*link != kNone);
            link = &at(*link).next_udp_;
        }
        *link = connection.next_udp_;
    }
}

// Every registered slot is in the age list, so that is what the new tables are filled from.
void LiveConnections::rehash(std::size_t buckets) {
    bucket_bits_ = static_cast<unsigned>(std::countr_zero(buckets));
    buckets_.assign(buckets, kNone);
    udp_buckets_.assign(buckets, kNone);
    for (std::uint32_t slot = oldest_; slot != kNone; slot = at(slot).newer_) {
        chain(slot);
    }
}

ConnectionKey LiveConnections::any_local(const ConnectionKey& key) {
    ConnectionKey indexed = key;
    indexed.local_address = IpAddress();
    return indexed;
}

std::vector<ConnectionKey> LiveConnections::find_udp_any_local(const ConnectionKey& key) const {
    std::vector<ConnectionKey> keys;
    if (key.protocol != kUdp || udp_buckets_.empty()) {
        return keys;
    }
    const ConnectionKey wanted = any_local(key);
    for (std::uint32_t slot = udp_buckets_[bucket_of(wanted)]; slot != kNone;
         slot = at(slot).next_udp_) {
        if (any_local(at(slot).key_) == wanted) {
            keys.push_back(at(slot).key_);
        }
    }
    return keys;
}

const LiveConnection* LiveConnections::find(const ConnectionKey& key) const {
    const std::uint32_t slot = lookup(key);
    return slot == kNone ? nullptr : &at(slot);
}

void LiveConnections::for_each(const LiveFilter& filter, const Visitor& visit) const {
    const VisitGuard guard(visiting_);
    for (std::uint32_t slot = first_of(filter); slot != kNone; slot = next_of(filter, at(slot))) {
        const LiveConnection& connection = at(slot);
        if (!filter.predicate || filter.predicate(connection)) {
            visit(connection.key_, connection);
        }
    }
}

std::vector<MarkChange> LiveConnections::reevaluate(const LiveFilter& filter, const Decide& decide,
                                                    Clock::TimePoint now) {
    const VisitGuard guard(visiting_);
    std::vector<MarkChange> changes;
    for (std::uint32_t slot = first_of(filter); slot != kNone; slot = next_of(filter, at(slot))) {
        LiveConnection& connection = at(slot);
        if (filter.predicate && !filter.predicate(connection)) {
            continue;
        }
        const LiveDecision decision = decide(connection);
        if (decision.mark != connection.mark_) {
            changes.push_back(MarkChange{.key = connection.key_,
                                         .direction = connection.direction_,
                                         .id = connection.id_,
                                         .old_mark = connection.mark_,
                                         .new_mark = decision.mark,
                                         .old_persistence = connection.persistence_,
                                         .new_persistence = decision.persistence});
            connection.decided_at_ = now;
        }
        const auto& reason = reasons_.acquire(decision.reason);
        reasons_.release(*connection.reason_);
        connection.reason_ = &reason;
        connection.mark_ = decision.mark;
        connection.persistence_ = decision.persistence;
    }
    return changes;
}

std::size_t LiveConnections::count(std::string_view profile_id) const {
    const auto found = profiles_.find(profile_id);
    return found == profiles_.end() ? 0 : found->second->size;
}

LiveProfile& LiveConnections::profile_entry(std::string_view id) {
    if (const auto found = profiles_.find(id); found != profiles_.end()) {
        return *found->second;
    }
    auto profile = std::make_unique<LiveProfile>();
    profile->id = std::string(id);
    LiveProfile& entry = *profile;
    profiles_.emplace(std::string_view(entry.id), std::move(profile));
    return entry;
}

void LiveConnections::link(std::uint32_t slot, LiveProfile& profile) {
    LiveConnection& connection = at(slot);
    connection.profile_ = &profile;
    connection.older_ = newest_;
    connection.newer_ = kNone;
    (newest_ != kNone ? at(newest_).newer_ : oldest_) = slot;
    newest_ = slot;
    connection.older_in_profile_ = profile.last;
    connection.newer_in_profile_ = kNone;
    (profile.last != kNone ? at(profile.last).newer_in_profile_ : profile.first) = slot;
    profile.last = slot;
    ++profile.size;
}

void LiveConnections::unlink(std::uint32_t slot) {
    LiveConnection& connection = at(slot);
    (connection.older_ != kNone ? at(connection.older_).newer_ : oldest_) = connection.newer_;
    (connection.newer_ != kNone ? at(connection.newer_).older_ : newest_) = connection.older_;
    LiveProfile& profile = *connection.profile_;
    (connection.older_in_profile_ != kNone ? at(connection.older_in_profile_).newer_in_profile_
                                           : profile.first) = connection.newer_in_profile_;
    (connection.newer_in_profile_ != kNone ? at(connection.newer_in_profile_).older_in_profile_
                                           : profile.last) = connection.older_in_profile_;
    --profile.size;
    connection.older_ = connection.newer_ = kNone;
    connection.older_in_profile_ = connection.newer_in_profile_ = kNone;
}

void LiveConnections::drop_if_empty(LiveProfile& profile) {
    if (profile.size == 0) {
        profiles_.erase(profiles_.find(std::string_view(profile.id)));
    }
}

std::uint32_t LiveConnections::first_of(const LiveFilter& filter) const {
    if (!filter.profile_id) {
        return oldest_;
    }
    const auto found = profiles_.find(*filter.profile_id);
    return found == profiles_.end() ? kNone : found->second->first;
}

std::uint32_t LiveConnections::next_of(const LiveFilter& filter, const LiveConnection& connection) {
    return filter.profile_id ? connection.newer_in_profile_ : connection.newer_;
}

} // namespace pw::network
