#include "network/broadcast_replies.h"

#include <algorithm>
#include <iterator>

#include "firewall/ip_scope.h"
#include "packet/packet_info.h"

namespace pw::network {

namespace {

bool is_broadcast_or_multicast(const IpAddress& address) {
    const firewall::IpScope scope = firewall::ip_scope(address);
    return scope == firewall::IpScope::LocalMulticast ||
           scope == firewall::IpScope::GlobalMulticast;
}

} // namespace

void BroadcastReplies::sent(const ConnectionKey& key, const firewall::ConnectionFacts& outbound,
                            Clock::TimePoint now) {
    if (capacity_ == 0 || outbound.direction != packet::Direction::Outbound ||
        outbound.protocol != packet::protocol::kUdp || !outbound.process ||
        outbound.process->kind != firewall::ProcessKind::Process ||
        !is_broadcast_or_multicast(outbound.remote_address)) {
        return;
    }
    const std::uint32_t port = bucket_of(key.protocol, key.local_port);
    if (const auto bucket = buckets_.find(port); bucket != buckets_.end()) {
        const auto known = std::ranges::find(bucket->second, key, &Flow::key);
        if (known != bucket->second.end()) {
            // A new connection on a flow still remembered (it ended, and was sent again).
            known->pid = outbound.process->pid;
            known->start_time = outbound.process->start_time;
            known->sent_at = now;
            known->forget_at.reset();
            ++counters_.remembered;
            return;
        }
    }
    if (size_ >= capacity_) {
        make_room(now); // may erase buckets: the flow's own is looked up after it
    }
    buckets_[port].push_back(Flow{.key = key,
                                  .pid = outbound.process->pid,
                                  .start_time = outbound.process->start_time,
                                  .sent_at = now,
                                  .forget_at = std::nullopt});
    ++size_;
    ++counters_.remembered;
}

void BroadcastReplies::ended(const ConnectionKey& key, Clock::TimePoint now) {
    const auto bucket = buckets_.find(bucket_of(key.protocol, key.local_port));
    if (bucket == buckets_.end()) {
        return;
    }
    const auto flow = std::ranges::find(bucket->second, key, &Flow::key);
    if (flow != bucket->second.end() && !flow->forget_at) {
        flow->forget_at = now + kAnswerWindow;
    }
}

std::optional<IpAddress> BroadcastReplies::answered(const firewall::ConnectionFacts& inbound,
                                                    Clock::TimePoint now) {
    if (size_ == 0 || inbound.direction != packet::Direction::Inbound || !inbound.process ||
        inbound.process->kind != firewall::ProcessKind::Process) {
        return std::nullopt;
    }
    const auto bucket = buckets_.find(bucket_of(inbound.protocol, inbound.local_port));
    if (bucket == buckets_.end()) {
        return std::nullopt;
    }
    const Flow* newest = nullptr;
    for (const Flow& flow : bucket->second) {
        if (flow.forget_at && *flow.forget_at <= now) {
            continue;
        }
        if (flow.key.local_address != inbound.local_address || flow.pid != inbound.process->pid ||
            flow.start_time != inbound.process->start_time) {
            continue;
        }
        if (newest == nullptr || flow.sent_at > newest->sent_at) {
            newest = &flow;
        }
    }
    if (newest == nullptr) {
        return std::nullopt;
    }
    ++counters_.answers;
    return newest->key.remote_address;
}

void BroadcastReplies::make_room(Clock::TimePoint now) {
    std::size_t dropped = 0;
    for (auto bucket = buckets_.begin(); bucket != buckets_.end();) {
        dropped += std::erase_if(bucket->second, [now](const Flow& flow) {
            return flow.forget_at && *flow.forget_at <= now;
        });
        bucket = bucket->second.empty() ? buckets_.erase(bucket) : std::next(bucket);
    }
    size_ -= dropped;
    if (dropped > 0 || size_ == 0) {
        return;
    }
    // Every flow is still live or in its window: the one sent longest ago goes. (No bucket is
    // empty here: the loop above erased those.)
    auto oldest_bucket = buckets_.end();
    Bucket::iterator oldest;
    for (auto bucket = buckets_.begin(); bucket != buckets_.end(); ++bucket) {
        const auto candidate = std::ranges::min_element(bucket->second, {}, &Flow::sent_at);
        if (oldest_bucket == buckets_.end() || candidate->sent_at < oldest->sent_at) {
            oldest_bucket = bucket;
            oldest = candidate;
        }
    }
    oldest_bucket->second.erase(oldest);
    if (oldest_bucket->second.empty()) {
        buckets_.erase(oldest_bucket);
    }
    --size_;
    ++counters_.evicted;
}

} // namespace pw::network
