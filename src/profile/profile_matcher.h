#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "process/process_info.h"
#include "profile/profile.h"
#include "profile/profile_index.h"

namespace pw::profile {

// What profile_for() found: always an assignment; and when no profile matched, the new auto
// profile that the assignment names, for the caller to store and add to the next index.
struct MatcherOutcome {
    std::optional<ProfileAssignment> assignment{}; // NOLINT(readability-redundant-member-init)
    std::optional<Profile> create{};               // NOLINT(readability-redundant-member-init)
};

// Finds the profile of a process (issue 9, "Profiles"): the best-scoring one of the current
// index, ties reported; or, when none matches, a new auto profile (make_auto_profile). The
// caller caches the outcome per process (PID + start time), so this runs once per process, not
// per packet. Runs on the event-loop thread only; the index it holds is immutable and may be
// shared with other threads.
class ProfileMatcher {
public:
    // The parent chain of a process, nearest first (ProcessRegistry::ancestors).
    using AncestorLookup = std::function<std::vector<std::shared_ptr<const process::ProcessInfo>>(
        const process::ProcessInfo&)>;

    // `index` may be null (no profiles yet); `ancestors` may be empty (no ancestor matching).
    ProfileMatcher(std::shared_ptr<const ProfileIndex> index, AncestorLookup ancestors);

    // The profile of `process`, at `now` (the time stamps of a new profile):
    //   - an ordinary process: the best match (score > 0) of the index; else a new auto profile
    //     in `create`, whose ID is free in the index (profile_id_for with the next attempt when
    //     a profile with other fingerprints holds it), assigned with the score of its own
    //     fingerprints; the same process gives the same new profile until an index holds it;
    //   - a process with nothing to recognise it by (no readable executable): "_unidentified";
    //   - the special identities (kernel, unidentified, unsolicited, portwarden): their special
    //     profile, score 0. The caller normally handles them itself.
    // Ancestors are read only when the index has ancestor fingerprints.
    [[nodiscard]] MatcherOutcome profile_for(const process::ProcessInfo& process,
                                             std::chrono::system_clock::time_point now) const;

    // Swaps in the index of a changed set of profiles. Cached outcomes made with the old one
    // are the caller's to drop.
    void set_index(std::shared_ptr<const ProfileIndex> index);
    [[nodiscard]] const ProfileIndex& index() const { return *index_; }

private:
    std::shared_ptr<const ProfileIndex> index_; // never null
    AncestorLookup ancestors_;
};

} // namespace pw::profile
