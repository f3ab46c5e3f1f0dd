#pragma once

#include <map>
#include <memory>
#include <string>

#include "profile/policy_provider.h"
#include "profile/special_profiles.h"

namespace pw::testing {

// One profile per executable, as the real matcher makes for processes without fingerprints:
// profile id = the process's identity, name = its basename. The system DNS client
// (systemd-resolved, nscd, dnsmasq) and connections without a process get special profiles
// ("_system-resolver", "_unidentified"), and queries of the system DNS client are decided by the
// global settings. Every profile starts from `global`; per_profile(id) overrides them.
class ProfilePerExecutable final : public profile::PolicyProvider {
public:
    explicit ProfilePerExecutable(const firewall::FilterSettings& global) : global_(global) {}

    // The settings one profile gets instead of the global ones (its profile label is kept).
    firewall::FilterSettings& per_profile(const std::string& id) { return overrides_[id]; }

    // profile::PolicyProvider
    [[nodiscard]] profile::Policy policy_for(const firewall::ProcessFacts* process,
                                             packet::Direction /*direction*/) override {
        if (process == nullptr) {
            return settings_of("_unidentified", "Unidentified");
        }
        if (is_system_resolver(*process)) {
            return settings_of("_system-resolver", "System DNS client");
        }
        const std::string& identity =
            process->identity.empty() ? process->executable : process->identity;
        return settings_of(identity, basename(identity));
    }
    [[nodiscard]] profile::Policy query_policy_for(const firewall::ProcessFacts* asker) override {
        if (asker != nullptr && is_system_resolver(*asker)) {
            return {.settings = std::make_shared<const firewall::FilterSettings>(global_),
                    .tie = {}};
        }
        return policy_for(asker, packet::Direction::Outbound);
    }
    void rule_matched(const firewall::FilterSettings& settings,
                      const firewall::RuleMatch& /*match*/) override {
        ++matches[settings.profile.id];
    }

    std::map<std::string, int> matches;

private:
    static std::string basename(const std::string& path) {
        const auto slash = path.rfind('/');
        return slash == std::string::npos ? path : path.substr(slash + 1);
    }
    static bool is_system_resolver(const firewall::ProcessFacts& process) {
        return profile::is_system_resolver(process.executable);
    }
    profile::Policy settings_of(const std::string& id, const std::string& name) {
        const auto found = overrides_.find(id);
        auto settings = std::make_shared<firewall::FilterSettings>(
            found != overrides_.end() ? found->second : global_);
        settings->profile = {.id = id, .name = name};
        return {.settings = std::move(settings), .tie = {}};
    }

    const firewall::FilterSettings& global_;
    std::map<std::string, firewall::FilterSettings> overrides_;
};

} // namespace pw::testing
