#include "profile/profile_index.h"

#include <algorithm>
#include <utility>

namespace pw::profile {
namespace {

using process::ProcessInfo;

// What a fingerprint looks at: its type, key and container scope. NUL separates the parts:
// fingerprints hold no NUL (make_fingerprint refuses it), so no two slots can run together.
// The container tags match in every scope ("*"); the others on the host ("h") or in one
// container ("c<name>").
std::string slot_of(FingerprintType type, std::string_view key,
                    const std::optional<std::string>& container) {
    std::string slot(fingerprint_type_name(type));
    slot += '\0';
    slot += key;
    slot += '\0';
    if (type == FingerprintType::Tag && (key == kTagContainerId || key == kTagContainerName)) {
        slot += '*';
    } else if (container) {
        slot += 'c';
        slot += *container;
    } else {
        slot += 'h';
    }
    slot += '\0';
    return slot;
}

// The profiles that scored best, smallest ID first: the assignment and its ties.
std::optional<ProfileAssignment> best_of(
    const std::vector<std::pair<std::string_view, int>>& scored) {
    int best = 0;
    for (const auto& [id, score] : scored) {
        best = std::max(best, score);
    }
    if (best == 0) {
        return std::nullopt;
    }
    std::vector<std::string_view> winners;
    for (const auto& [id, score] : scored) {
        if (score == best) {
            winners.push_back(id);
        }
    }
    std::ranges::sort(winners);
    const auto [first, last] = std::ranges::unique(winners);
    winners.erase(first, last);
    ProfileAssignment assignment{.profile_id = std::string(winners.front()), .score = best};
    for (std::size_t i = 1; i < winners.size(); ++i) {
        assignment.tied_with.emplace_back(winners[i]);
    }
    return assignment;
}

} // namespace

std::optional<ProfileAssignment> best_profile(std::span<const Profile> profiles,
                                              const ProcessInfo& process, Ancestors ancestors) {
    std::vector<std::pair<std::string_view, int>> scored;
    for (const Profile& profile : profiles) {
        if (const int value = score(profile.fingerprints, process, ancestors); value > 0) {
            scored.emplace_back(profile.id, value);
        }
    }
    return best_of(scored);
}

void ProfileIndex::Table::add(const Fingerprint& fingerprint, Entry entry) {
    std::string slot = slot_of(fingerprint.type, fingerprint.key, fingerprint.container);
    if (fingerprint.type == FingerprintType::Env) {
        const auto at = std::ranges::lower_bound(env_keys, fingerprint.key);
        if (at == env_keys.end() || *at != fingerprint.key) {
            env_keys.insert(at, fingerprint.key);
        }
    }
    reads_command_line = reads_command_line || fingerprint.type == FingerprintType::Cmdline;
    switch (fingerprint.operation) {
        case FingerprintOperation::Equals:
            equals[slot + fingerprint.value].push_back(entry);
            return;
        case FingerprintOperation::Prefix: {
            prefixes[slot + fingerprint.value].push_back(entry);
            auto& lengths = prefix_lengths[std::move(slot)];
            const auto at = std::ranges::lower_bound(lengths, fingerprint.value.size());
            if (at == lengths.end() || *at != fingerprint.value.size()) {
                lengths.insert(at, fingerprint.value.size());
            }
            return;
        }
        case FingerprintOperation::Regex:
            regexes[std::move(slot)].push_back(entry);
            return;
    }
}

void ProfileIndex::Table::candidates_for(const std::string& slot, std::string_view text,
                                         Entries& candidates) const {
    const auto append = [&candidates](const auto& map, const std::string& key) {
        if (const auto found = map.find(key); found != map.end()) {
            candidates.insert(candidates.end(), found->second.begin(), found->second.end());
        }
    };
    std::string key = slot;
    if (!equals.empty()) {
        key.append(text);
        append(equals, key);
    }
    if (const auto lengths = prefix_lengths.find(slot); lengths != prefix_lengths.end()) {
        for (const std::size_t length : lengths->second) {
            if (length > text.size()) {
                break; // sorted: the longer ones cannot be prefixes either
            }
            key.assign(slot).append(text.substr(0, length));
            append(prefixes, key);
        }
    }
    append(regexes, slot);
}

void ProfileIndex::Table::candidates(const ProcessInfo& process, Entries& candidates) const {
    if (empty() || process.kind != process::IdentityKind::Process) {
        return;
    }
    const std::optional<std::string>& scope = process.container_name;
    if (!process.identity_path.empty()) {
        candidates_for(slot_of(FingerprintType::Path, "", scope), process.identity_path,
                       candidates);
    }
    if (!process.executable.empty() && process.executable != process.identity_path) {
        candidates_for(slot_of(FingerprintType::Path, "", scope), process.executable, candidates);
    }
    for (const std::string_view tag : fingerprint_tags()) {
        if (const auto value = tag_value(tag, process)) {
            candidates_for(slot_of(FingerprintType::Tag, tag, scope), *value, candidates);
        }
    }
    if (reads_command_line) {
        candidates_for(slot_of(FingerprintType::Cmdline, "", scope), joined_command_line(process),
                       candidates);
    }
    for (const std::string& key : env_keys) {
        if (const std::string* value = process::find_environment(process.environment, key)) {
            candidates_for(slot_of(FingerprintType::Env, key, scope), *value, candidates);
        }
    }
}

ProfileIndex::ProfileIndex() = default;

ProfileIndex::ProfileIndex(std::span<const Profile> profiles) {
    profiles_.reserve(profiles.size());
    for (const Profile& profile : profiles) {
        add(profile.id, profile.fingerprints);
    }
    sort_ids();
}

ProfileIndex::ProfileIndex(std::vector<Profile>&& profiles) {
    profiles_.reserve(profiles.size());
    for (Profile& profile : profiles) {
        add(std::move(profile.id), std::move(profile.fingerprints));
    }
    sort_ids();
}

void ProfileIndex::add(std::string id, Fingerprints fingerprints) {
    const auto position = static_cast<std::uint32_t>(profiles_.size());
    for (std::size_t i = 0; i < fingerprints.size(); ++i) {
        const Fingerprint& fingerprint = fingerprints[i];
        const Entry entry{.profile = position, .fingerprint = static_cast<std::uint32_t>(i)};
        (fingerprint.ancestor ? ancestor_ : own_).add(fingerprint, entry);
    }
    profiles_.push_back(Indexed{.id = std::move(id), .fingerprints = std::move(fingerprints)});
    by_id_.push_back(position);
}

void ProfileIndex::sort_ids() {
    std::ranges::sort(by_id_, {}, [this](std::uint32_t position) -> std::string_view {
        return profiles_[position].id;
    });
}

bool ProfileIndex::contains(std::string_view profile_id) const {
    const auto found = std::ranges::lower_bound(
        by_id_, profile_id, {},
        [this](std::uint32_t position) { return std::string_view(profiles_[position].id); });
    return found != by_id_.end() && profiles_[*found].id == profile_id;
}

std::optional<ProfileAssignment> ProfileIndex::match(const ProcessInfo& process,
                                                     Ancestors ancestors) const {
    Entries candidates;
    own_.candidates(process, candidates);
    if (!ancestor_.empty()) {
        for (const auto& ancestor : ancestors) {
            if (ancestor != nullptr) {
                ancestor_.candidates(*ancestor, candidates);
            }
        }
    }
    // Each candidate is scored in full (an ancestor fingerprint against every ancestor), so a
    // fingerprint found twice scores the same twice.
    std::vector<std::pair<std::string_view, int>> scored;
    scored.reserve(candidates.size());
    for (const Entry& entry : candidates) {
        const Indexed& profile = profiles_[entry.profile];
        const int value = score(profile.fingerprints[entry.fingerprint], process, ancestors);
        if (value > 0) {
            scored.emplace_back(profile.id, value);
        }
    }
    return best_of(scored);
}

} // namespace pw::profile
