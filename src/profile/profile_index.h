#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "process/process_info.h"
#include "profile/fingerprint.h"
#include "profile/profile.h"

namespace pw::profile {

// Which profile a process belongs to, and how sure the match is.
struct ProfileAssignment {
    std::string profile_id;
    int score = 0; // the profile's score (fingerprint.h); 0 for a special profile
    // Other profiles that scored exactly as well, by ID. The assignment is the smallest ID of
    // them all (deterministic, whatever the order of the profiles), and the caller reports the
    // tie: in the decision's reason and a warning, never silently.
    std::vector<std::string> tied_with{}; // NOLINT(readability-redundant-member-init): GCC
                                          // -Wmissing-field-initializers

    friend bool operator==(const ProfileAssignment&, const ProfileAssignment&) = default;
};

// The reference matcher: scores every profile (score(Fingerprints, ...)) and takes the best,
// ties as in ProfileAssignment. nullopt when no profile scores above 0. ProfileIndex::match()
// gives the same answer without the scan.
[[nodiscard]] std::optional<ProfileAssignment> best_profile(std::span<const Profile> profiles,
                                                            const process::ProcessInfo& process,
                                                            Ancestors ancestors);

// The fingerprints of a set of profiles, indexed so that matching a process looks only at the
// fingerprints that can match it, not at every profile:
//   - Equals: one hash lookup per thing the process shows (its paths, each of its tags, its
//     command line, the environment variables that some fingerprint names);
//   - Prefix: one hash lookup per distinct prefix length used for that thing;
//   - Regex: scanned, all of those for that thing (keep them few).
// The candidates found are then scored with score(), so the index can only be faster than
// best_profile(), never different. Immutable: built once per change of the set of profiles and
// shared (shared_ptr<const ProfileIndex>) by whoever matches, on any thread.
class ProfileIndex {
public:
    ProfileIndex();
    explicit ProfileIndex(std::span<const Profile> profiles);
    // The same, taking the IDs and fingerprints over instead of copying them.
    explicit ProfileIndex(std::vector<Profile>&& profiles);

    // The best profile for `process`, as best_profile() over the profiles indexed. `ancestors`
    // are used only by ancestor fingerprints (see has_ancestor_fingerprints()).
    [[nodiscard]] std::optional<ProfileAssignment> match(const process::ProcessInfo& process,
                                                         Ancestors ancestors) const;

    // False when no fingerprint looks at the parent chain: then match() needs no ancestors, and
    // the caller need not read them.
    [[nodiscard]] bool has_ancestor_fingerprints() const { return !ancestor_.empty(); }

    // Whether a profile with this ID is indexed (the ID of a new profile must be free).
    [[nodiscard]] bool contains(std::string_view profile_id) const;

    [[nodiscard]] std::size_t size() const { return profiles_.size(); }

private:
    // A fingerprint, by the position of its profile and its own position in that profile.
    struct Entry {
        std::uint32_t profile = 0;
        std::uint32_t fingerprint = 0;
    };
    using Entries = std::vector<Entry>;

    // The fingerprints that look at the process itself, or at its ancestors. Keys are "slots"
    // (what a fingerprint looks at: type, key and container scope, NUL-separated), followed by
    // the value for Equals and Prefix.
    struct Table {
        std::unordered_map<std::string, Entries> equals;
        std::unordered_map<std::string, Entries> prefixes;
        std::unordered_map<std::string, std::vector<std::size_t>> prefix_lengths; // by slot
        std::unordered_map<std::string, Entries> regexes;                         // by slot
        std::vector<std::string> env_keys; // sorted: the variables some fingerprint reads
        bool reads_command_line = false;

        [[nodiscard]] bool empty() const {
            return equals.empty() && prefixes.empty() && regexes.empty();
        }
        void add(const Fingerprint& fingerprint, Entry entry);
        // Appends the entries that may match `process` to `candidates`.
        void candidates(const process::ProcessInfo& process, Entries& candidates) const;
        void candidates_for(const std::string& slot, std::string_view text,
                            Entries& candidates) const;
    };

    struct Indexed {
        std::string id;
        Fingerprints fingerprints;
    };

    void add(std::string id, Fingerprints fingerprints);
    void sort_ids();

    std::vector<Indexed> profiles_;
    std::vector<std::uint32_t> by_id_; // positions in profiles_, sorted by ID: contains()
    Table own_;
    Table ancestor_;
};

} // namespace pw::profile
