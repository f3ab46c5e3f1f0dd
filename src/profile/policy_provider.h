#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "firewall/connection_facts.h"
#include "firewall/decide.h"
#include "firewall/settings.h"
#include "packet/packet_info.h"

namespace pw::profile {

// The settings that decide one connection or query: those of its application's profile, every
// per-application value resolved (FilterSettings::profile names the profile). Special profiles
// (kernel, unidentified, unsolicited, system DNS client, portwarden) have IDs that start with
// '_'; no other profile's does.
struct Policy {
    std::shared_ptr<const firewall::FilterSettings> settings;
    // Set when two profiles matched the process equally well: the decision's reason says which
    // ones, and which was used ("profile match tie: 'a' and 'b', used 'a'").
    std::string tie;
};

// How the packet path and the nameserver find the settings of an application: the one window
// of network/ into profiles. The settings store implements it (profiles, matching cached per
// process, snapshots swapped on change); tests and benchmarks use FixedPolicyProvider.
// Runs on the event-loop thread only.
class PolicyProvider {
public:
    virtual ~PolicyProvider() = default;

    // The policy of the application behind a connection or query. `process` is what attribution
    // found (nullptr when it names nobody: ICMP, attribution off); `direction` picks the
    // special profile of a connection without a process (unidentified outbound, unsolicited
    // inbound). On the packet path: a hash lookup for a process seen before.
    [[nodiscard]] virtual Policy policy_for(const firewall::ProcessFacts* process,
                                            packet::Direction direction) = 0;

    // The policy that decides a DNS query of `asker` (nullptr: unknown): its profile's, except
    // for the system DNS client (systemd-resolved, nscd, dnsmasq), which asks on behalf of
    // applications we cannot see and is decided by the global settings.
    [[nodiscard]] virtual Policy query_policy_for(const firewall::ProcessFacts* asker) = 0;

    // A rule of `settings` decided a connection: counted, with the time, and kept with its
    // profile, so that a person can see which rules are used and which are dead.
    virtual void rule_matched(const firewall::FilterSettings& settings,
                              const firewall::RuleMatch& match) = 0;
};

// One set of settings for everything: the daemon before profiles existed, and the tests and
// benchmarks of the packet path. Borrows `settings`, so a test can change them between calls.
class FixedPolicyProvider final : public PolicyProvider {
public:
    explicit FixedPolicyProvider(const firewall::FilterSettings& settings)
        : settings_(std::shared_ptr<const firewall::FilterSettings>(), &settings) {}

    // profile::PolicyProvider
    [[nodiscard]] Policy policy_for(const firewall::ProcessFacts* /*process*/,
                                    packet::Direction /*direction*/) override {
        return {.settings = settings_, .tie = {}};
    }
    [[nodiscard]] Policy query_policy_for(const firewall::ProcessFacts* /*asker*/) override {
        return {.settings = settings_, .tie = {}};
    }
    void rule_matched(const firewall::FilterSettings& /*settings*/,
                      const firewall::RuleMatch& /*match*/) override {
        ++rule_matches;
    }

    std::size_t rule_matches = 0;

private:
    // Aliasing constructor: points at the borrowed settings and owns nothing.
    std::shared_ptr<const firewall::FilterSettings> settings_;
};

} // namespace pw::profile
