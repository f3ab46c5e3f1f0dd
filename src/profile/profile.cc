#include "profile/profile.h"

#include <utility>

#include "common/utf8.h"

namespace pw::profile {
namespace {

std::string_view basename_of(std::string_view path) {
    while (path.size() > 1 && path.ends_with('/')) {
        path.remove_suffix(1);
    }
    const std::size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

} // namespace

nlohmann::json OwnSettings::json() const {
    // The text is nlohmann's own dump of an object, so it parses; should memory ever have been
    // corrupted, an empty object is safer than an exception on the event loop.
    auto parsed = nlohmann::json::parse(text_, nullptr, false);
    return parsed.is_object() ? parsed : nlohmann::json::object();
}

std::string_view profile_source_name(ProfileSource source) {
    switch (source) {
        case ProfileSource::Auto:
            return "auto";
        case ProfileSource::User:
            return "user";
        case ProfileSource::Special:
            return "special";
    }
    return "auto";
}

std::optional<ProfileSource> profile_source_named(std::string_view name) {
    for (const ProfileSource source :
         {ProfileSource::Auto, ProfileSource::User, ProfileSource::Special}) {
        if (profile_source_name(source) == name) {
            return source;
        }
    }
    return std::nullopt;
}

std::string application_name(const process::ProcessInfo& process) {
    const process::ProcessTags& tags = process.tags;
    std::string_view name;
    if (tags.flatpak_id && !tags.flatpak_id->empty()) {
        name = *tags.flatpak_id;
    } else if (tags.snap_name && !tags.snap_name->empty()) {
        name = *tags.snap_name;
    } else if (tags.appimage && !tags.appimage->empty()) {
        name = basename_of(*tags.appimage);
    } else if (!process.identity_path.empty()) {
        name = basename_of(process.identity_path); // the script of an interpreter
    } else {
        name = basename_of(process.executable);
    }
    std::string text = to_valid_utf8(name.empty() ? std::string_view("unknown") : name);
    if (process.container_name) {
        text += " (container " + to_valid_utf8(*process.container_name) + ")";
    }
    return text;
}

Profile make_auto_profile(const process::ProcessInfo& process,
                          std::chrono::system_clock::time_point now) {
    Profile profile;
    profile.fingerprints = auto_fingerprints(process);
    profile.id = profile_id_for(profile.fingerprints);
    profile.name = application_name(process);
    profile.source = ProfileSource::Auto;
    profile.created = now;
    profile.first_seen = now;
    profile.last_seen = now;
    return profile;
}

} // namespace pw::profile
