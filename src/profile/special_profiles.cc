#include "profile/special_profiles.h"

#include <algorithm>
#include <array>
#include <string>

namespace pw::profile {
namespace {

constexpr std::array<SpecialProfile, 5> kSpecialProfiles = {{
    {.id = kKernelProfileId, .name = "Kernel and system"},
    {.id = kUnidentifiedProfileId, .name = "Unidentified"},
    {.id = kUnsolicitedProfileId, .name = "Unsolicited inbound"},
    {.id = kSystemResolverProfileId, .name = "System DNS client"},
    {.id = kPortwardenProfileId, .name = "Portwarden"},
}};

constexpr std::array<std::string_view, 3> kSystemResolvers = {"systemd-resolved", "nscd",
                                                              "dnsmasq"};

} // namespace

std::span<const SpecialProfile> special_profiles() {
    return kSpecialProfiles;
}

bool is_special_profile_id(std::string_view id) {
    return std::ranges::any_of(kSpecialProfiles,
                               [id](const SpecialProfile& special) { return special.id == id; });
}

std::optional<std::string_view> special_profile_id(process::IdentityKind kind) {
    switch (kind) {
        case process::IdentityKind::Process:
            return std::nullopt;
        case process::IdentityKind::Kernel:
            return kKernelProfileId;
        case process::IdentityKind::UnidentifiedOutbound:
            return kUnidentifiedProfileId;
        case process::IdentityKind::UnsolicitedInbound:
            return kUnsolicitedProfileId;
        case process::IdentityKind::Portwarden:
            return kPortwardenProfileId;
    }
    return kUnidentifiedProfileId;
}

Profile make_special_profile(const SpecialProfile& special,
                             std::chrono::system_clock::time_point now) {
    Profile profile;
    profile.id = std::string(special.id);
    profile.name = std::string(special.name);
    profile.source = ProfileSource::Special;
    profile.created = now;
    profile.first_seen = now;
    profile.last_seen = now;
    return profile;
}

bool is_system_resolver(std::string_view executable) {
    const std::size_t slash = executable.rfind('/');
    const std::string_view name =
        slash == std::string_view::npos ? executable : executable.substr(slash + 1);
    return std::ranges::find(kSystemResolvers, name) != kSystemResolvers.end();
}

} // namespace pw::profile
