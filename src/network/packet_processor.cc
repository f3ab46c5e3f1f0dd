#include "network/packet_processor.h"

#include "firewall/decide.h"
#include "network/dns_query_policy.h"
#include "packet/packet_parser.h"
#include "packet/verdict.h"

namespace pw::network {
namespace {

firewall::ConnectionFacts facts_from_packet(const packet::PacketInfo& packet,
                                            packet::Direction direction, const ConnectionKey& key) {
    return firewall::ConnectionFacts{
        .direction = direction,
        .ip_family = packet.ip_family,
        .protocol = packet.protocol,
        .local_address = key.local_address,
        .local_port = key.local_port,
        .remote_address = key.remote_address,
        .remote_port = key.remote_port,
        .icmp_type = packet.icmp_type,
        .process = std::nullopt,
        .domain = std::nullopt,
    };
}

} // namespace

std::optional<std::uint32_t> PacketProcessor::handle(packet::Direction direction,
                                                     std::span<const std::uint8_t> bytes,
                                                     PacketRef ref) {
    ++counters_.packets;
    const auto parsed = packet::parse_packet(bytes);
    if (!parsed) {
        ++counters_.malformed;
        return packet::mark::kDrop;
    }
    const ConnectionKey key = ConnectionKey::from_packet(*parsed, direction);
    const Clock::TimePoint now = clock_.now();
    if (ConnectionEntry* known = table_.find(key)) {
        ++counters_.known;
        ++known->packets;
        known->last_seen = now;
        return known->mark;
    }
    if (!pending_.empty()) {
        if (const auto waiting = pending_.find(key); waiting != pending_.end()) {
            // A later packet of a connection still being attributed shares its verdict.
            waiting->second.packets.push_back(ref);
            return std::nullopt;
        }
    }
    return start_new_connection(*parsed, direction, key, ref, now);
}

std::optional<std::uint32_t> PacketProcessor::start_new_connection(const packet::PacketInfo& packet,
                                                                   packet::Direction direction,
                                                                   const ConnectionKey& key,
                                                                   PacketRef ref,
                                                                   Clock::TimePoint now) {
    const std::uint64_t id = next_connection_id_++;
    ++counters_.connections;
    // The facts are complete before anything is reported or decided: the process now, the
    // domain of the remote address with the nameserver (issue 4).
    firewall::ConnectionFacts facts = facts_from_packet(packet, direction, key);
    if (attributor_ != nullptr) {
        Attribution attribution = attributor_->attribute(facts);
        if (attribution.worth_retrying) {
            const auto delay = state::next_retry_delay(retry_policy_, 1, {});
            if (delay && pending_.size() < kMaxPendingConnections) {
                ++counters_.deferred;
                PendingConnection pending{.id = id,
                                          .facts = std::move(facts),
                                          .fallback = std::move(attribution),
                                          .attempts = 1,
                                          .first_attempt = now,
                                          .next_attempt = now + *delay,
                                          .packets = {ref}};
                pending_.emplace(key, std::move(pending));
                return std::nullopt;
            }
            if (delay) {
                ++counters_.pending_full;
            }
        }
        facts.process = std::move(attribution.process);
    }
    return decide(id, facts, key, now);
}

void PacketProcessor::add_domain(firewall::ConnectionFacts& facts, Clock::TimePoint now) const {
    if (domain_memory_ == nullptr || facts.direction != packet::Direction::Outbound) {
        return;
    }
    const std::string_view scope = memory_scope(facts.process ? &*facts.process : nullptr);
    if (auto name = domain_memory_->lookup(scope, facts.remote_address, now)) {
        facts.domain = firewall::DomainFacts{.domain = std::move(name->domain),
                                             .cname_chain = std::move(name->cname_chain)};
    }
}

void PacketProcessor::remember_dns_client(const firewall::ConnectionFacts& facts,
                                          const firewall::Decision& decision,
                                          Clock::TimePoint now) {
    if (dns_clients_ == nullptr || facts.direction != packet::Direction::Outbound ||
        (facts.protocol != packet::protocol::kUdp && facts.protocol != packet::protocol::kTcp)) {
        return;
    }
    const bool to_our_nameserver =
        decision.verdict == packet::Verdict::RerouteToNameserver ||
        (decision.verdict == packet::Verdict::Accept &&
         firewall::is_nameserver_endpoint(settings_, facts.remote_address, facts.remote_port));
    if (!to_our_nameserver) {
        return;
    }
    std::shared_ptr<const firewall::ProcessFacts> process;
    if (facts.process) {
        process = std::make_shared<const firewall::ProcessFacts>(*facts.process);
    }
    dns_clients_->record(facts.protocol, facts.local_address, facts.local_port, std::move(process),
                         now);
}

std::uint32_t PacketProcessor::decide(std::uint64_t id, firewall::ConnectionFacts& facts,
                                      const ConnectionKey& key, Clock::TimePoint now) {
    add_domain(facts, now);
    events_.connection_new(id, facts);
    const firewall::Decision decision = firewall::decide(settings_, facts);
    remember_dns_client(facts, decision, now);
    const std::uint32_t mark = packet::mark_for(decision.verdict, decision.persistence);
    const bool remembered = table_.insert(key, ConnectionEntry{.id = id,
                                                               .mark = mark,
                                                               .persistence = decision.persistence,
                                                               .last_seen = now,
                                                               .packets = 1});
    if (!remembered) {
        ++counters_.table_full;
    }
    events_.connection_decided(id, facts, decision, mark);
    return mark;
}

std::optional<Clock::TimePoint> PacketProcessor::next_retry_at() const {
    std::optional<Clock::TimePoint> earliest;
    for (const auto& [key, pending] : pending_) {
        if (!earliest || pending.next_attempt < *earliest) {
            earliest = pending.next_attempt;
        }
    }
    return earliest;
}

void PacketProcessor::run_due_retries(const DeferredVerdict& verdict) {
    const Clock::TimePoint now = clock_.now();
    for (auto entry = pending_.begin(); entry != pending_.end();) {
        PendingConnection& pending = entry->second;
        if (pending.next_attempt > now) {
            ++entry;
            continue;
        }
        ++counters_.retries;
        Attribution attribution = attributor_->attribute(pending.facts);
        ++pending.attempts;
        if (attribution.worth_retrying) {
            const auto elapsed =
                std::chrono::duration_cast<std::chrono::microseconds>(now - pending.first_attempt);
            if (const auto delay =
                    state::next_retry_delay(retry_policy_, pending.attempts, elapsed)) {
                pending.next_attempt = now + *delay;
                ++entry;
                continue;
            }
            ++counters_.retry_gave_up;
        } else {
            ++counters_.retry_found;
        }
        pending.facts.process = std::move(attribution.process);
        const std::uint32_t mark = decide(pending.id, pending.facts, entry->first, now);
        for (const PacketRef packet : pending.packets) {
            verdict(packet, mark);
        }
        entry = pending_.erase(entry);
    }
}

void PacketProcessor::decide_all_pending(const DeferredVerdict& verdict) {
    const Clock::TimePoint now = clock_.now();
    for (auto& [key, pending] : pending_) {
        pending.facts.process = std::move(pending.fallback.process);
        const std::uint32_t mark = decide(pending.id, pending.facts, key, now);
        for (const PacketRef packet : pending.packets) {
            verdict(packet, mark);
        }
    }
    pending_.clear();
}

} // namespace pw::network
