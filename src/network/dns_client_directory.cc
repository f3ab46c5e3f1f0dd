#include "network/dns_client_directory.h"

#include <utility>

namespace pw::network {

void DnsClientDirectory::record(std::uint8_t protocol, const IpAddress& address, std::uint16_t port,
                                std::shared_ptr<const firewall::ProcessFacts> process,
                                Clock::TimePoint now) {
    const Key key{.protocol = protocol, .address = address, .port = port};
    if (entries_.size() >= kMaxEntries && !entries_.contains(key)) {
        expire(now);
        if (entries_.size() >= kMaxEntries) {
            // A flood of DNS flows: their queries are attributed by a socket lookup instead.
            return;
        }
    }
    entries_.insert_or_assign(key, Entry{.process = std::move(process), .last_used = now});
}

std::shared_ptr<const firewall::ProcessFacts> DnsClientDirectory::find(std::uint8_t protocol,
                                                                       const IpAddress& address,
                                                                       std::uint16_t port,
                                                                       Clock::TimePoint now) {
    const auto found = entries_.find(Key{.protocol = protocol, .address = address, .port = port});
    if (found == entries_.end()) {
        return nullptr;
    }
    if (now - found->second.last_used > kIdleLifetime) {
        entries_.erase(found);
        return nullptr;
    }
    found->second.last_used = now;
    return found->second.process;
}

std::size_t DnsClientDirectory::expire(Clock::TimePoint now) {
    return std::erase_if(entries_, [now](const auto& entry) {
        return now - entry.second.last_used > kIdleLifetime;
    });
}

} // namespace pw::network
