#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string_view>

#include "process/process_info.h"
#include "profile/profile.h"

namespace pw::profile {

// The profiles of what is not an ordinary application. Their IDs start with '_', which no
// other profile's does (profile_id_for never makes one), so that they can never collide.
inline constexpr std::string_view kKernelProfileId = "_kernel";
inline constexpr std::string_view kUnidentifiedProfileId = "_unidentified";
inline constexpr std::string_view kUnsolicitedProfileId = "_unsolicited";
inline constexpr std::string_view kSystemResolverProfileId = "_system-resolver";
inline constexpr std::string_view kPortwardenProfileId = "_portwarden";

struct SpecialProfile {
    std::string_view id;
    std::string_view name;
};

// All of them, in the order above.
[[nodiscard]] std::span<const SpecialProfile> special_profiles();

// True for the ID of one of special_profiles().
[[nodiscard]] bool is_special_profile_id(std::string_view id);

// True for every ID that starts with '_': the special profiles' and any future ones. A profile
// that a person or the matcher makes must not have one.
[[nodiscard]] constexpr bool is_reserved_profile_id(std::string_view id) {
    return id.starts_with('_');
}

// The special profile of a special identity (kernel, unidentified outbound, unsolicited
// inbound, portwarden); nullopt for an ordinary process.
[[nodiscard]] std::optional<std::string_view> special_profile_id(process::IdentityKind kind);

// The stored form of a special profile: source Special, no fingerprints, no settings.
[[nodiscard]] Profile make_special_profile(const SpecialProfile& special,
                                           std::chrono::system_clock::time_point now);

// The system DNS client: systemd-resolved, nscd, dnsmasq, by the base name of the executable.
// They resolve on behalf of processes we cannot see, so their queries are not blamed on them:
// decided by the global settings, their answers remembered for everyone.
[[nodiscard]] bool is_system_resolver(std::string_view executable);

} // namespace pw::profile
