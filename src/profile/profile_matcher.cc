#include "profile/profile_matcher.h"

#include <string>
#include <utility>

#include "profile/special_profiles.h"

namespace pw::profile {
namespace {

std::shared_ptr<const ProfileIndex> or_empty(std::shared_ptr<const ProfileIndex> index) {
    return index != nullptr ? std::move(index) : std::make_shared<const ProfileIndex>();
}

MatcherOutcome special(std::string_view id) {
    return {.assignment = ProfileAssignment{.profile_id = std::string(id), .score = 0},
            .create = std::nullopt};
}

} // namespace

ProfileMatcher::ProfileMatcher(std::shared_ptr<const ProfileIndex> index, AncestorLookup ancestors)
    : index_(or_empty(std::move(index))), ancestors_(std::move(ancestors)) {}

void ProfileMatcher::set_index(std::shared_ptr<const ProfileIndex> index) {
    index_ = or_empty(std::move(index));
}

MatcherOutcome ProfileMatcher::profile_for(const process::ProcessInfo& process,
                                           std::chrono::system_clock::time_point now) const {
    if (const auto id = special_profile_id(process.kind)) {
        return special(*id);
    }
    std::vector<std::shared_ptr<const process::ProcessInfo>> ancestors;
    if (index_->has_ancestor_fingerprints() && ancestors_) {
        ancestors = ancestors_(process);
    }
    if (auto assignment = index_->match(process, ancestors)) {
        return {.assignment = std::move(assignment), .create = std::nullopt};
    }
    Profile created = make_auto_profile(process, now);
    if (created.fingerprints.empty()) {
        return special(kUnidentifiedProfileId);
    }
    // Taken only by a profile whose fingerprints were edited since its ID was derived (else it
    // would have matched); the next attempt is as stable as the first for the same index.
    for (unsigned attempt = 1; index_->contains(created.id); ++attempt) {
        created.id = profile_id_for(created.fingerprints, attempt);
    }
    ProfileAssignment assignment{.profile_id = created.id,
                                 .score = score(created.fingerprints, process, ancestors)};
    return {.assignment = std::move(assignment), .create = std::move(created)};
}

} // namespace pw::profile
