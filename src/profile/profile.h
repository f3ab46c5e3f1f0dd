#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "process/process_info.h"
#include "profile/fingerprint.h"

namespace pw::profile {

// Who made a profile: the matcher for a new application, a person, or portwarden itself.
enum class ProfileSource { Auto, User, Special };

// "auto", "user", "special": the names the database and the API use.
[[nodiscard]] std::string_view profile_source_name(ProfileSource source);
[[nodiscard]] std::optional<ProfileSource> profile_source_named(std::string_view name);

// A profile's own settings as written: a JSON object of per-application keys, kept as its
// compact JSON text. A parsed nlohmann::json of ten rules costs about 1 KiB in two dozen
// allocations, its text one allocation of a quarter of that; with 1,000 profiles the difference
// is the larger part of the store's memory (issue 9: 16 MiB with 1,000 profiles). Only the API
// and the database read it, never the packet path (which reads the compiled settings).
class OwnSettings {
public:
    OwnSettings() = default;
    // `object` must be a JSON object (the store checks this before: compile_own).
    explicit OwnSettings(const nlohmann::json& object) : text_(object.dump()) {}

    // The settings, parsed again: a copy the caller may change.
    [[nodiscard]] nlohmann::json json() const;
    // The compact JSON text, as the database stores it.
    [[nodiscard]] const std::string& text() const { return text_; }
    [[nodiscard]] bool empty() const { return text_ == "{}"; }

    friend bool operator==(const OwnSettings&, const OwnSettings&) = default;

private:
    std::string text_ = "{}";
};

// One application as the firewall knows it: how to recognise its processes, and its own values
// of the per-application settings. Plain data, owned by the settings store.
struct Profile {
    std::string id{};   // NOLINT(readability-redundant-member-init): GCC -Wmissing-field-...
    std::string name{}; // NOLINT(readability-redundant-member-init): as above
    ProfileSource source = ProfileSource::Auto;
    Fingerprints fingerprints{}; // NOLINT(readability-redundant-member-init): as above
    OwnSettings settings{};      // NOLINT(readability-redundant-member-init): per-app keys only
    std::chrono::system_clock::time_point created{};    // NOLINT(readability-redundant-member-init)
    std::chrono::system_clock::time_point first_seen{}; // NOLINT(readability-redundant-member-init)
    std::chrono::system_clock::time_point last_seen{};  // NOLINT(readability-redundant-member-init)
};

// The readable name of the application a process belongs to: its Flatpak ID, Snap name,
// AppImage file, script file or executable file name (the same order as auto_fingerprints), with
// " (container <name>)" for a process in a container. Always valid UTF-8.
[[nodiscard]] std::string application_name(const process::ProcessInfo& process);

// The profile made for a process that matches none: auto_fingerprints(), the ID derived from
// them (profile_id_for), application_name(), no settings of its own, created and seen `now`.
// The systemd unit is not in the name: the fingerprints do not name it, so the next process of
// the same executable may well run in another unit or in none.
[[nodiscard]] Profile make_auto_profile(const process::ProcessInfo& process,
                                        std::chrono::system_clock::time_point now);

} // namespace pw::profile
