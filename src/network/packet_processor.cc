#include "network/packet_processor.h"

#include "firewall/decide.h"
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

std::uint32_t PacketProcessor::handle(packet::Direction direction,
                                      std::span<const std::uint8_t> bytes) {
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
    return decide_new_connection(*parsed, direction, key, now);
}

std::uint32_t PacketProcessor::decide_new_connection(const packet::PacketInfo& packet,
                                                     packet::Direction direction,
                                                     const ConnectionKey& key,
                                                     Clock::TimePoint now) {
    const std::uint64_t id = next_connection_id_++;
    ++counters_.connections;
    // The facts are complete before anything is reported or decided: the process now, the
    // domain of the remote address with the nameserver (issue 4).
    firewall::ConnectionFacts facts = facts_from_packet(packet, direction, key);
    if (attributor_ != nullptr) {
        facts.process = attributor_->attribute(facts);
    }
    events_.connection_new(id, facts);

    const firewall::Decision decision = firewall::decide(settings_, facts);
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

} // namespace pw::network
