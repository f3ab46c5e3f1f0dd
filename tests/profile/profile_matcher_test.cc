#include "profile/profile_matcher.h"

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "profile/profile_index.h"
#include "profile/special_profiles.h"

namespace pw::profile {
namespace {

using nlohmann::json;
using process::ProcessInfo;
using std::chrono::system_clock;
using ProcessList = std::vector<std::shared_ptr<const ProcessInfo>>;

const system_clock::time_point kNow(std::chrono::seconds(1'700'000'000));

ProcessInfo process_of(std::string executable) {
    ProcessInfo info;
    info.pid = 4242;
    info.start_time = 1000;
    info.user = "alice";
    info.executable = executable;
    info.identity_path = std::move(executable);
    info.command_line = {info.identity_path};
    return info;
}

ProcessInfo script_process(std::string interpreter, std::string script) {
    ProcessInfo info = process_of(interpreter);
    info.identity_path = script;
    info.tags.interpreter = std::move(interpreter);
    info.command_line = {"sh", std::move(script)};
    return info;
}

Fingerprints fingerprints_of(std::string_view json_text) {
    auto parsed = parse_fingerprints_text(json_text, "test");
    EXPECT_TRUE(parsed.has_value()) << parsed.error().what;
    return parsed ? std::move(*parsed) : Fingerprints{};
}

Profile profile_of(std::string id, std::string_view json_text) {
    Profile profile;
    profile.id = std::move(id);
    profile.name = profile.id;
    profile.source = ProfileSource::User;
    profile.fingerprints = fingerprints_of(json_text);
    return profile;
}

std::shared_ptr<const ProfileIndex> index_of(const std::vector<Profile>& profiles) {
    return std::make_shared<const ProfileIndex>(profiles);
}

// A matcher whose ancestor lookup counts its calls and answers from a fixed list.
struct MatcherWithAncestors {
    explicit MatcherWithAncestors(std::shared_ptr<const ProfileIndex> index, ProcessList chain = {})
        : ancestors(std::move(chain)),
          matcher(std::move(index), [this](const ProcessInfo& /*process*/) {
              ++lookups;
              return ancestors;
          }) {}
    ProcessList ancestors;
    int lookups = 0;
    ProfileMatcher matcher;
};

// --- Ties ----------------------------------------------------------------------------------------

TEST(ProfileIndex, ATieIsReportedAndTheSmallestIdWins) {
    const std::string_view curl =
        R"([{"type":"path","operation":"equals","value":"/usr/bin/curl"}])";
    const std::vector<Profile> profiles = {profile_of("zeta", curl), profile_of("alpha", curl),
                                           profile_of("mid", curl)};
    const ProcessInfo process = process_of("/usr/bin/curl");
    const auto assignment = ProfileIndex(profiles).match(process, {});
    ASSERT_TRUE(assignment.has_value());
    EXPECT_EQ(assignment->profile_id, "alpha");
    EXPECT_EQ(assignment->tied_with, (std::vector<std::string>{"mid", "zeta"}));
    EXPECT_EQ(assignment, best_profile(profiles, process, {}));
    // The order of the profiles does not matter.
    const std::vector<Profile> reversed(profiles.rbegin(), profiles.rend());
    EXPECT_EQ(ProfileIndex(reversed).match(process, {}), assignment);
}

TEST(ProfileIndex, AHigherScoreIsNoTie) {
    const std::vector<Profile> profiles = {
        profile_of("by-prefix", R"([{"type":"path","operation":"prefix","value":"/usr/bin/"}])"),
        profile_of("by-path", R"([{"type":"path","operation":"equals","value":"/usr/bin/curl"}])"),
        profile_of("other", R"([{"type":"path","operation":"equals","value":"/usr/bin/wget"}])")};
    const auto assignment = ProfileIndex(profiles).match(process_of("/usr/bin/curl"), {});
    ASSERT_TRUE(assignment.has_value());
    EXPECT_EQ(assignment->profile_id, "by-path");
    EXPECT_EQ(assignment->score, kScoreIdentityPath + kScoreEquals + 13);
    EXPECT_TRUE(assignment->tied_with.empty());
    EXPECT_FALSE(ProfileIndex(profiles).match(process_of("/bin/true"), {}).has_value());
    EXPECT_FALSE(ProfileIndex().match(process_of("/usr/bin/curl"), {}).has_value());
}

TEST(ProfileIndex, KnowsItsIds) {
    const ProfileIndex index(
        std::vector<Profile>{profile_of("b", "[]"), profile_of("a", "[]"), profile_of("c", "[]")});
    EXPECT_EQ(index.size(), 3U);
    EXPECT_TRUE(index.contains("a"));
    EXPECT_TRUE(index.contains("c"));
    EXPECT_FALSE(index.contains("d"));
    EXPECT_FALSE(index.contains(""));
    EXPECT_FALSE(index.has_ancestor_fingerprints());
}

// --- The index agrees with the scan --------------------------------------------------------------

// Random profiles and processes over small alphabets, so that many fingerprints match.
class RandomWorld {
public:
    explicit RandomWorld(std::uint32_t seed) : random_(seed) {}

    std::string pick(const std::vector<std::string>& from) {
        return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(random_)];
    }
    bool chance(int percent) { return std::uniform_int_distribution(0, 99)(random_) < percent; }

    json random_fingerprint() {
        json entry = json::object();
        const std::string type = pick({"path", "path", "tag", "env", "cmdline"});
        entry["type"] = type;
        std::string value;
        if (type == "path") {
            value = pick(paths_);
        } else if (type == "tag") {
            const std::string key = pick({"script", "flatpak", "systemd-unit", "container-name",
                                          "container-id", "user", "snap", "appimage"});
            entry["key"] = key;
            value = key == "user"             ? pick({"alice", "bob"})
                    : key == "systemd-unit"   ? pick(units_)
                    : key.starts_with("cont") ? pick(containers_)
                                              : pick(paths_);
        } else if (type == "env") {
            entry["key"] = pick({"A", "B", "C"});
            value = pick({"1", "12", "123", "x"});
        } else {
            value = pick(paths_) + pick({"", " -v", " -v x"});
        }
        const std::string operation = pick({"equals", "equals", "prefix", "regex"});
        entry["operation"] = operation;
        if (operation == "prefix") {
            const auto length =
                std::uniform_int_distribution<std::size_t>(1, value.size())(random_);
            value.resize(length);
        } else if (operation == "regex") {
            value = pick({".*", value + ".*", "/usr/bin/(curl|wget)", "[a-z0-9/ .-]+", "1.*"});
        }
        entry["value"] = value;
        if (chance(20)) {
            entry["ancestor"] = true;
        }
        if (chance(20) && !(type == "tag" && entry["key"].get<std::string>().starts_with("cont"))) {
            entry["container"] = pick(containers_);
        }
        return entry;
    }

    std::vector<Profile> random_profiles(std::size_t count) {
        std::vector<Profile> profiles;
        for (std::size_t i = 0; i < count; ++i) {
            json fingerprints = json::array();
            const int size = std::uniform_int_distribution(0, 4)(random_);
            for (int j = 0; j < size; ++j) {
                fingerprints.push_back(random_fingerprint());
            }
            Profile profile;
            profile.id = "p" + std::to_string(i);
            auto parsed = parse_fingerprints(fingerprints);
            EXPECT_TRUE(parsed.has_value()) << parsed.error().what << " " << fingerprints.dump();
            profile.fingerprints = parsed ? std::move(*parsed) : Fingerprints{};
            profiles.push_back(std::move(profile));
        }
        return profiles;
    }

    std::shared_ptr<const ProcessInfo> random_process() {
        ProcessInfo info = process_of(pick(paths_));
        if (chance(30)) {
            info.tags.interpreter = info.executable;
            info.identity_path = pick(paths_);
        }
        if (chance(20)) {
            info.tags.flatpak_id = pick(paths_);
        }
        if (chance(10)) {
            info.tags.snap_name = pick(paths_);
        }
        if (chance(10)) {
            info.tags.appimage = pick(paths_);
        }
        if (chance(40)) {
            info.systemd_unit = pick(units_);
        }
        if (chance(30)) {
            info.container_name = pick(containers_);
            info.container_id = pick(containers_);
        }
        info.user = pick({"alice", "bob"});
        for (const char* key : {"A", "B", "C"}) {
            if (chance(50)) {
                info.environment.emplace_back(key, pick({"1", "12", "123", "x"}));
            }
        }
        info.command_line = {info.executable};
        if (chance(50)) {
            info.command_line.emplace_back(pick({"-v", "x"}));
        }
        if (chance(5)) {
            info.kind = process::IdentityKind::Portwarden; // matches nothing
        }
        return std::make_shared<const ProcessInfo>(std::move(info));
    }

    ProcessList random_ancestors() {
        ProcessList chain;
        const int depth = std::uniform_int_distribution(0, 3)(random_);
        for (int i = 0; i < depth; ++i) {
            chain.push_back(random_process());
        }
        return chain;
    }

private:
    const std::vector<std::string> paths_ = {"/usr/bin/curl", "/usr/bin/wget", "/usr/bin/cu",
                                             "/opt/a.sh",     "/opt/ab.sh",    "org.app.One"};
    const std::vector<std::string> units_ = {"apt-daily.service", "cron.service", "a.scope"};
    const std::vector<std::string> containers_ = {"web-1", "db", "0123456789ab"};
    std::mt19937 random_;
};

TEST(ProfileIndex, AgreesWithTheScanOnRandomProfiles) {
    for (std::uint32_t seed = 1; seed <= 30; ++seed) {
        RandomWorld world(seed);
        const std::vector<Profile> profiles = world.random_profiles(std::size_t{seed} * 4);
        const ProfileIndex index(profiles);
        for (int round = 0; round < 200; ++round) {
            const auto process = world.random_process();
            const ProcessList ancestors = world.random_ancestors();
            const auto expected = best_profile(profiles, *process, ancestors);
            ASSERT_EQ(index.match(*process, ancestors), expected)
                << "seed " << seed << " round " << round << " exe " << process->executable;
        }
    }
}

// --- The matcher ---------------------------------------------------------------------------------

TEST(ProfileMatcher, ANewApplicationGetsAnAutoProfileUntilTheIndexHoldsIt) {
    MatcherWithAncestors fixture(nullptr);
    const ProcessInfo curl = process_of("/usr/bin/curl");
    const MatcherOutcome first = fixture.matcher.profile_for(curl, kNow);
    ASSERT_TRUE(first.assignment.has_value());
    ASSERT_TRUE(first.create.has_value());
    EXPECT_EQ(first.assignment->profile_id, first.create->id);
    EXPECT_EQ(first.assignment->score, kScoreIdentityPath + kScoreEquals + 13);
    EXPECT_EQ(first.create->name, "curl");
    EXPECT_EQ(first.create->source, ProfileSource::Auto);
    EXPECT_EQ(first.create->first_seen, kNow);
    EXPECT_EQ(first.create->fingerprints, auto_fingerprints(curl));

    // Asked again before the profile is stored: the same profile, so the caller adds it once.
    const MatcherOutcome again = fixture.matcher.profile_for(curl, kNow + std::chrono::hours(1));
    ASSERT_TRUE(again.create.has_value());
    EXPECT_EQ(again.create->id, first.create->id);

    fixture.matcher.set_index(index_of({*first.create}));
    const MatcherOutcome known = fixture.matcher.profile_for(curl, kNow);
    ASSERT_TRUE(known.assignment.has_value());
    EXPECT_EQ(known.assignment->profile_id, first.create->id);
    EXPECT_FALSE(known.create.has_value());
    EXPECT_EQ(fixture.lookups, 0); // no ancestor fingerprints: the chain was never read
}

TEST(ProfileMatcher, AutoProfilesOfPlainScriptFlatpakSnapAndAppImageProcesses) {
    ProfileMatcher matcher(nullptr, {});
    ProcessInfo flatpak = process_of("/app/bin/firefox");
    flatpak.tags.flatpak_id = "org.mozilla.firefox";
    ProcessInfo snap = process_of("/snap/spotify/75/usr/bin/spotify");
    snap.tags.snap_name = "spotify";
    ProcessInfo appimage = process_of("/tmp/.mount_Krita1/usr/bin/krita");
    appimage.tags.appimage = "/home/alice/krita.AppImage";
    const ProcessInfo script = script_process("/usr/bin/bash", "/opt/backup.sh");
    const ProcessInfo plain = process_of("/usr/bin/curl");
    const std::vector<std::pair<const ProcessInfo*, std::string>> cases = {
        {&plain, "curl"},
        {&script, "backup.sh"},
        {&flatpak, "org.mozilla.firefox"},
        {&snap, "spotify"},
        {&appimage, "krita.AppImage"}};
    std::vector<Profile> created;
    for (const auto& [process, name] : cases) {
        const MatcherOutcome outcome = matcher.profile_for(*process, kNow);
        ASSERT_TRUE(outcome.create.has_value()) << name;
        EXPECT_EQ(outcome.create->name, name);
        EXPECT_GT(outcome.assignment->score, 0) << name;
        created.push_back(*outcome.create);
    }
    EXPECT_EQ(created[1].fingerprints.front().key, "script");
    EXPECT_EQ(created[2].fingerprints.front().key, "flatpak");
    EXPECT_EQ(created[3].fingerprints.front().key, "snap");
    EXPECT_EQ(created[4].fingerprints.front().key, "appimage");

    // With all of them stored, each process finds its own, and the interpreter is not the
    // script: a bash without a script is a new application.
    matcher.set_index(index_of(created));
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const MatcherOutcome outcome = matcher.profile_for(*cases[i].first, kNow);
        EXPECT_FALSE(outcome.create.has_value());
        EXPECT_EQ(outcome.assignment->profile_id, created[i].id);
        EXPECT_TRUE(outcome.assignment->tied_with.empty());
    }
    const MatcherOutcome bash = matcher.profile_for(process_of("/usr/bin/bash"), kNow);
    ASSERT_TRUE(bash.create.has_value());
    EXPECT_EQ(bash.create->name, "bash");
}

TEST(ProfileMatcher, AContainersPingIsNotTheHostsPing) {
    ProfileMatcher matcher(nullptr, {});
    const ProcessInfo host = process_of("/usr/bin/ping");
    ProcessInfo contained = process_of("/usr/bin/ping");
    contained.container_id = std::string(64, 'a');
    contained.container_name = "web-1";

    const MatcherOutcome host_outcome = matcher.profile_for(host, kNow);
    ASSERT_TRUE(host_outcome.create.has_value());
    matcher.set_index(index_of({*host_outcome.create}));

    // The host's profile does not claim the container's ping: it gets its own.
    const MatcherOutcome container_outcome = matcher.profile_for(contained, kNow);
    ASSERT_TRUE(container_outcome.create.has_value());
    EXPECT_NE(container_outcome.create->id, host_outcome.create->id);
    EXPECT_EQ(container_outcome.create->name, "ping (container web-1)");

    matcher.set_index(index_of({*host_outcome.create, *container_outcome.create}));
    EXPECT_EQ(matcher.profile_for(host, kNow).assignment->profile_id, host_outcome.create->id);
    EXPECT_EQ(matcher.profile_for(contained, kNow).assignment->profile_id,
              container_outcome.create->id);
    // A whole-container profile outranks the per-executable one.
    const Profile whole = profile_of(
        "web", R"([{"type":"tag","key":"container-name","operation":"equals","value":"web-1"}])");
    matcher.set_index(index_of({*host_outcome.create, *container_outcome.create, whole}));
    EXPECT_EQ(matcher.profile_for(contained, kNow).assignment->profile_id, "web");
    EXPECT_EQ(matcher.profile_for(host, kNow).assignment->profile_id, host_outcome.create->id);
}

TEST(ProfileMatcher, ASystemdUnitFingerprintRulesTheService) {
    const Profile apt = profile_of(
        "apt-daily",
        R"([{"type":"tag","key":"systemd-unit","operation":"equals","value":"apt-daily.service"}])");
    const Profile curl_profile = make_auto_profile(process_of("/usr/bin/curl"), kNow);
    ProfileMatcher matcher(index_of({apt, curl_profile}), {});
    ProcessInfo in_unit = process_of("/usr/bin/curl");
    in_unit.systemd_unit = "apt-daily.service";
    ProcessInfo elsewhere = process_of("/usr/bin/curl");
    elsewhere.systemd_unit = "session-2.scope";
    EXPECT_EQ(matcher.profile_for(in_unit, kNow).assignment->profile_id, "apt-daily");
    EXPECT_EQ(matcher.profile_for(elsewhere, kNow).assignment->profile_id, curl_profile.id);
}

TEST(ProfileMatcher, AnAncestorFingerprintCatchesTheCurlOfAScript) {
    const auto script =
        std::make_shared<const ProcessInfo>(script_process("/usr/bin/bash", "/opt/backup.sh"));
    const auto shell = std::make_shared<const ProcessInfo>(process_of("/usr/bin/bash"));
    const Profile backup_children = profile_of("backup-children", R"([{"type":"tag",
        "key":"script","operation":"equals","value":"/opt/backup.sh","ancestor":true}])");
    const Profile curl_profile = make_auto_profile(process_of("/usr/bin/curl"), kNow);
    const auto index = index_of({backup_children, curl_profile});
    EXPECT_TRUE(index->has_ancestor_fingerprints());

    MatcherWithAncestors by_script(index, {script, shell});
    const MatcherOutcome outcome = by_script.matcher.profile_for(process_of("/usr/bin/curl"), kNow);
    EXPECT_EQ(outcome.assignment->profile_id, "backup-children");
    EXPECT_GT(outcome.assignment->score, kScoreAncestor);
    EXPECT_EQ(by_script.lookups, 1);

    MatcherWithAncestors by_hand(index, {shell});
    EXPECT_EQ(by_hand.matcher.profile_for(process_of("/usr/bin/curl"), kNow).assignment->profile_id,
              curl_profile.id);
    // The script itself is not its own child.
    MatcherWithAncestors itself(index, {shell});
    const MatcherOutcome own = itself.matcher.profile_for(*script, kNow);
    ASSERT_TRUE(own.create.has_value());
    EXPECT_EQ(own.create->name, "backup.sh");
}

TEST(ProfileMatcher, SpecialIdentitiesAndUnrecognisableProcesses) {
    ProfileMatcher matcher(index_of({make_auto_profile(process_of("/usr/bin/curl"), kNow)}), {});
    const auto special_of = [&matcher](const ProcessInfo& process) {
        const MatcherOutcome outcome = matcher.profile_for(process, kNow);
        EXPECT_FALSE(outcome.create.has_value());
        EXPECT_TRUE(outcome.assignment.has_value());
        return outcome.assignment ? outcome.assignment->profile_id : std::string();
    };
    EXPECT_EQ(special_of(*process::kernel_identity()), kKernelProfileId);
    EXPECT_EQ(special_of(*process::unidentified_outbound_identity()), kUnidentifiedProfileId);
    EXPECT_EQ(special_of(*process::unsolicited_inbound_identity()), kUnsolicitedProfileId);
    ProcessInfo self = process_of("/usr/bin/curl");
    self.kind = process::IdentityKind::Portwarden;
    EXPECT_EQ(special_of(self), kPortwardenProfileId);
    EXPECT_EQ(special_of(process_of("")), kUnidentifiedProfileId); // unreadable executable
}

TEST(ProfileMatcher, ATakenIdMovesTheNewProfileToAStableOtherId) {
    // A profile that once was curl's auto profile, its fingerprints since edited.
    const ProcessInfo curl = process_of("/usr/bin/curl");
    Profile edited = make_auto_profile(curl, kNow);
    edited.fingerprints =
        fingerprints_of(R"([{"type":"path","operation":"equals","value":"/usr/local/bin/curl"}])");
    ProfileMatcher matcher(index_of({edited}), {});
    const MatcherOutcome outcome = matcher.profile_for(curl, kNow);
    ASSERT_TRUE(outcome.create.has_value());
    EXPECT_NE(outcome.create->id, edited.id);
    EXPECT_EQ(outcome.create->id, profile_id_for(outcome.create->fingerprints, 1));
    EXPECT_EQ(outcome.assignment->profile_id, outcome.create->id);
    EXPECT_EQ(matcher.profile_for(curl, kNow).create->id, outcome.create->id);
}

TEST(ProfileMatcher, IdsAreStableAcrossRestartsAndUpdates) {
    ProcessInfo before = process_of("/usr/bin/firefox");
    ProcessInfo after = before; // the package was upgraded: a new file, another process
    after.pid = 9999;
    after.start_time = 99'999;
    after.deleted = false;
    before.deleted = true;
    const std::string id = ProfileMatcher(nullptr, {}).profile_for(before, kNow).create->id;
    EXPECT_EQ(ProfileMatcher(nullptr, {}).profile_for(after, kNow).create->id, id);
    EXPECT_EQ(id, make_auto_profile(before, kNow + std::chrono::hours(24)).id);
}

TEST(ProfileMatcher, ManyProfilesStillMatchTheRightOne) {
    std::vector<Profile> profiles;
    profiles.reserve(1000);
    for (int i = 0; i < 1000; ++i) {
        profiles.push_back(make_auto_profile(process_of("/opt/app" + std::to_string(i)), kNow));
    }
    ProfileMatcher matcher(index_of(profiles), {});
    for (const int i : {0, 1, 500, 999}) {
        const MatcherOutcome outcome =
            matcher.profile_for(process_of("/opt/app" + std::to_string(i)), kNow);
        EXPECT_FALSE(outcome.create.has_value());
        EXPECT_EQ(outcome.assignment->profile_id, profiles[static_cast<std::size_t>(i)].id);
    }
    EXPECT_TRUE(matcher.profile_for(process_of("/opt/app1000"), kNow).create.has_value());
}

} // namespace
} // namespace pw::profile
