#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "dns/ip_domain_memory.h"
#include "dns/nameserver.h"
#include "firewall/settings.h"
#include "network/attributor.h"
#include "network/dns_client_directory.h"
#include "network/event_sink.h"
#include "network/filter_pause.h"
#include "profile/policy_provider.h"

namespace pw::network {

// The firewall's side of the nameserver (issue 4): who asks (the process behind the client's
// flow), what the rules of its profile say about the name (blocked names get 0.0.0.17 / ::17,
// the Firefox canary NXDOMAIN), and what the answer teaches the IP -> domain memory: every
// address the asked name resolved to is remembered under the asker's scope (its profile; the
// global scope for system resolvers and unidentified askers), so that the connection that
// follows carries the name. Runs on the event-loop thread only.
class DnsQueryPolicy final : public dns::QueryHandler {
public:
    struct Counters {
        std::uint64_t by_directory = 0; // asker found from the flow the firewall decided
        std::uint64_t by_lookup = 0;    // asker found by a socket lookup
        std::uint64_t blocked = 0;      // answered as blocked (by name, CNAME, or every address)
        std::uint64_t filtered = 0;     // answered with some addresses removed (answer_filter.h)
        std::uint64_t recorded = 0;     // addresses written to the IP -> domain memory
    };

    // `attributor` may be null (attribution off): queries then count as unidentified.
    DnsQueryPolicy(profile::PolicyProvider& policies, DnsClientDirectory& clients,
                   Attributor* attributor, dns::IpDomainMemory& memory, EventSink& events,
                   const Clock& clock)
        : policies_(policies),
          clients_(clients),
          attributor_(attributor),
          memory_(memory),
          events_(events),
          clock_(clock) {}

    // dns::QueryHandler
    [[nodiscard]] dns::QueryPlan plan(const dns::ClientQuery& query) override;
    // Applies the domain rules to the CNAMEs of the answer as well (decide_query with the chain),
    // then removes the addresses the asker may not see (filter_answer(), with the asker's
    // settings); an answer left without addresses is answered as blocked.
    void review(const dns::ClientQuery& query, dns::QueryPlan& plan,
                const dns::Answer& answer) override;
    void answered(const dns::ClientQuery& query, const dns::QueryPlan& plan,
                  const dns::QueryOutcome& outcome) override;
    void flush() override { events_.flush(); }
    // The PID of the process behind a TCP connection, found as for its queries (which then
    // find it in the directory).
    [[nodiscard]] std::optional<std::int64_t> connection_process(
        const dns::ClientConnection& connection) override;

    [[nodiscard]] const Counters& counters() const { return counters_; }

    // While `pause` is active, no name is blocked and no answer filtered (FilterPause).
    void set_pause(const FilterPause& pause) { pause_ = &pause; }

private:
    [[nodiscard]] std::shared_ptr<const firewall::ProcessFacts> find_asker(
        dns::ClientTransport transport, const IpAddress& client_address, std::uint16_t client_port,
        const dns::ListenEndpoint& server);

    profile::PolicyProvider& policies_;
    DnsClientDirectory& clients_;
    Attributor* attributor_;
    dns::IpDomainMemory& memory_;
    EventSink& events_;
    const Clock& clock_;
    const FilterPause* pause_ = nullptr;
    Counters counters_;
};

// The IP -> domain memory scope of a profile: its ID, or the global scope for the special
// profiles (unidentified, kernel, system DNS client, ...: IDs that start with '_'). Without a
// profile (one set of settings for everything), the process's identity, except for the system
// resolvers (systemd-resolved, nscd, dnsmasq): they ask on behalf of processes we cannot see,
// so their answers teach everyone, as do those of no process at all.
[[nodiscard]] std::string_view memory_scope(const firewall::ProfileLabel& profile,
                                            const firewall::ProcessFacts* process);

} // namespace pw::network
