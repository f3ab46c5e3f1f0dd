#include "profile/fingerprint.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "profile/profile.h"
#include "profile/special_profiles.h"

namespace pw::profile {
namespace {

using nlohmann::json;
using process::ProcessInfo;
using std::chrono::system_clock;

ProcessInfo process_of(std::string executable) {
    ProcessInfo info;
    info.pid = 4242;
    info.start_time = 1000;
    info.parent_pid = 17;
    info.user = "alice";
    info.executable = executable;
    info.identity_path = std::move(executable);
    info.command_line = {info.executable};
    return info;
}

ProcessInfo script_process(std::string interpreter, std::string script) {
    ProcessInfo info = process_of(interpreter);
    info.identity_path = script;
    info.tags.interpreter = std::move(interpreter);
    info.command_line = {"python3", std::move(script)};
    return info;
}

Fingerprint fingerprint_of(const json& object) {
    auto parsed = parse_fingerprints(json::array({object}));
    EXPECT_TRUE(parsed.has_value()) << parsed.error().what;
    return parsed ? parsed->front() : Fingerprint{};
}

int score_of(const json& object, const ProcessInfo& process,
             const std::vector<std::shared_ptr<const ProcessInfo>>& ancestors = {}) {
    return score(fingerprint_of(object), process, ancestors);
}

std::string error_of(const json& array) {
    auto parsed = parse_fingerprints(array);
    EXPECT_FALSE(parsed.has_value());
    return parsed ? std::string() : parsed.error().what;
}

// --- Parsing -------------------------------------------------------------------------------------

TEST(ParseFingerprints, ReadsEveryDocumentedForm) {
    const auto parsed = parse_fingerprints_text(R"([
        {"type": "path", "operation": "equals", "value": "/usr/bin/curl"},
        {"type": "tag", "key": "systemd-unit", "operation": "equals", "value": "apt-daily.service"},
        {"type": "env", "key": "X", "operation": "prefix", "value": "y", "ancestor": true},
        {"type": "cmdline", "operation": "regex", "value": "curl .*", "ancestor": false},
        {"type": "path", "operation": "equals", "value": "/usr/bin/ping", "container": "web-1"}
    ])",
                                                "test");
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_EQ(parsed->size(), 5U);
    const Fingerprints& list = *parsed;
    EXPECT_EQ(list[0], (Fingerprint{.type = FingerprintType::Path,
                                    .operation = FingerprintOperation::Equals,
                                    .value = "/usr/bin/curl"}));
    EXPECT_EQ(list[1].type, FingerprintType::Tag);
    EXPECT_EQ(list[1].key, "systemd-unit");
    EXPECT_EQ(list[2].type, FingerprintType::Env);
    EXPECT_EQ(list[2].operation, FingerprintOperation::Prefix);
    EXPECT_TRUE(list[2].ancestor);
    EXPECT_EQ(list[3].operation, FingerprintOperation::Regex);
    EXPECT_NE(list[3].regex, nullptr);
    EXPECT_FALSE(list[3].ancestor);
    EXPECT_EQ(list[4].container, "web-1");
    EXPECT_EQ(list[0].regex, nullptr);
}

TEST(ParseFingerprints, RoundTripsThroughJson) {
    const auto parsed = parse_fingerprints_text(R"([
        {"type": "tag", "key": "flatpak", "operation": "prefix", "value": "org.mozilla."},
        {"type": "env", "key": "CI", "operation": "equals", "value": "1", "ancestor": true},
        {"type": "cmdline", "operation": "regex", "value": "^curl( .*)?$"},
        {"type": "path", "operation": "equals", "value": "/usr/bin/ping", "container": "web-1"}
    ])",
                                                "test");
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    const json dumped = to_json(*parsed);
    EXPECT_FALSE(dumped[0].contains("ancestor")); // optional fields only when set
    EXPECT_FALSE(dumped[0].contains("container"));
    EXPECT_FALSE(dumped[2].contains("key"));
    const auto again = parse_fingerprints(dumped);
    ASSERT_TRUE(again.has_value()) << again.error().what;
    EXPECT_EQ(*again, *parsed);
    const auto from_text = parse_fingerprints_text(dumped.dump(), "again");
    ASSERT_TRUE(from_text.has_value());
    EXPECT_EQ(*from_text, *parsed);
    EXPECT_EQ(to_json(*from_text), dumped);
    EXPECT_NE((*again)[2].regex, nullptr);
}

TEST(ParseFingerprints, EmptyArrayIsNoFingerprints) {
    const auto parsed = parse_fingerprints_text("[]", "test");
    ASSERT_TRUE(parsed.has_value());
    EXPECT_TRUE(parsed->empty());
}

TEST(ParseFingerprints, ErrorsNameTheEntryAndTheField) {
    const json good = {{"type", "path"}, {"operation", "equals"}, {"value", "/a"}};
    const auto with = [&good](const std::string& field, const json& value) {
        json entry = good;
        entry[field] = value;
        return json::array({good, good, entry});
    };
    const auto without = [&good](const std::string& field) {
        json entry = good;
        entry.erase(field);
        return json::array({good, good, entry});
    };
    EXPECT_EQ(error_of(json::object()), "fingerprints: must be a JSON array, not object");
    EXPECT_EQ(error_of(json::array({good, good, 5})),
              "fingerprints[2]: must be an object, not number");
    EXPECT_EQ(error_of(without("type")), "fingerprints[2].type: is missing");
    EXPECT_EQ(error_of(without("operation")), "fingerprints[2].operation: is missing");
    EXPECT_EQ(error_of(without("value")), "fingerprints[2].value: is missing");
    EXPECT_EQ(error_of(with("type", "file")),
              R"(fingerprints[2].type: must be one of tag, cmdline, env, path (got "file"))");
    EXPECT_EQ(error_of(with("type", 3)), "fingerprints[2].type: must be a string, not number");
    EXPECT_EQ(error_of(with("operation", "eq")),
              R"(fingerprints[2].operation: must be one of equals, prefix, regex (got "eq"))");
    EXPECT_EQ(error_of(with("value", "")), "fingerprints[2].value: must not be empty");
    EXPECT_EQ(error_of(with("value", json::array())),
              "fingerprints[2].value: must be a string, not array");
    EXPECT_EQ(error_of(with("value", std::string(kMaxFingerprintValue + 1, 'a'))),
              "fingerprints[2].value: is 4097 bytes long; at most 4096 are allowed");
    EXPECT_EQ(error_of(with("value", std::string("a\0b", 3))),
              "fingerprints[2].value: must not contain NUL characters");
    EXPECT_EQ(error_of(with("ancestor", "yes")),
              R"(fingerprints[2].ancestor: must be true or false, not "yes")");
    EXPECT_EQ(error_of(with("ancestors", true)),
              "fingerprints[2].ancestors: unknown field (known: type, key, operation, value, "
              "ancestor, container)");
    EXPECT_EQ(error_of(with("key", "x")), "fingerprints[2].key: is not used by type path");
    EXPECT_EQ(error_of(with("container", "")), "fingerprints[2].container: must not be empty");
}

TEST(ParseFingerprints, KeysOfTagsAndEnvironmentVariables) {
    EXPECT_EQ(error_of(json::array({{{"type", "tag"}, {"operation", "equals"}, {"value", "a"}}})),
              "fingerprints[0].key: is required for type tag");
    EXPECT_EQ(error_of(json::array(
                  {{{"type", "tag"}, {"key", "unit"}, {"operation", "equals"}, {"value", "a"}}})),
              R"(fingerprints[0].key: must be one of script, flatpak, snap, appimage, )"
              R"(systemd-unit, container-id, container-name, user (got "unit"))");
    EXPECT_EQ(error_of(json::array({{{"type", "env"}, {"operation", "equals"}, {"value", "a"}}})),
              "fingerprints[0].key: is required for type env");
    EXPECT_EQ(error_of(json::array(
                  {{{"type", "env"}, {"key", "A=B"}, {"operation", "equals"}, {"value", "a"}}})),
              "fingerprints[0].key: an environment name has no '='");
    EXPECT_EQ(error_of(json::array({{{"type", "tag"},
                                     {"key", "container-name"},
                                     {"operation", "equals"},
                                     {"value", "web-1"},
                                     {"container", "web-1"}}})),
              "fingerprints[0].container: the container tags match in every container; remove "
              "\"container\"");
    for (const std::string_view tag : fingerprint_tags()) {
        EXPECT_TRUE(
            parse_fingerprints(
                json::array(
                    {{{"type", "tag"}, {"key", tag}, {"operation", "equals"}, {"value", "x"}}}))
                .has_value())
            << tag;
    }
}

TEST(ParseFingerprints, BadRegularExpressionsAreRefused) {
    const auto regex = [](const std::string& pattern) {
        return json::array({{{"type", "cmdline"}, {"operation", "regex"}, {"value", pattern}}});
    };
    EXPECT_TRUE(error_of(regex("([a-z"))
                    .starts_with("fingerprints[0].value: is not a valid regular expression: "));
    // Back-references would need the backtracking executor: refused.
    EXPECT_TRUE(error_of(regex("(a)\\1")).starts_with("fingerprints[0].value: is not a valid"));
    // Numbers that would overflow libstdc++'s parser (found by fingerprint_fuzz).
    const std::string huge(30, '3');
    for (const std::string& pattern :
         {"a\\" + huge, "[x\\" + huge + "]", "a{" + huge + "}", "a{1," + huge + "}"}) {
        EXPECT_EQ(error_of(regex(pattern)),
                  "fingerprints[0].value: is not a valid regular expression: a number of more "
                  "than 6 digits")
            << pattern;
    }
    // Digits that are text, or follow an escaped backslash, are fine.
    for (const std::string& pattern : {"/opt/app" + huge, "\\\\" + huge, "a{2}" + huge}) {
        EXPECT_TRUE(parse_fingerprints(regex(pattern)).has_value()) << pattern;
    }
    EXPECT_EQ(error_of(regex(std::string(kMaxFingerprintRegex + 1, 'a'))),
              "fingerprints[0].value: a regular expression may be at most 512 bytes long");
}

TEST(ParseFingerprints, TooManyEntries) {
    const json good = {{"type", "path"}, {"operation", "equals"}, {"value", "/a"}};
    EXPECT_EQ(error_of(json(std::vector<json>(kMaxFingerprints + 1, good))),
              "fingerprints: 257 entries; at most 256 are allowed");
}

TEST(ParseFingerprintsText, ErrorsStartWithWhere) {
    const auto bad_json = parse_fingerprints_text("[{", "profile curl-1");
    ASSERT_FALSE(bad_json.has_value());
    EXPECT_TRUE(bad_json.error().what.starts_with("profile curl-1: not valid JSON: "))
        << bad_json.error().what;
    const auto bad_entry =
        parse_fingerprints_text(R"([{"type":"path","operation":"is","value":"/a"}])", "p");
    ASSERT_FALSE(bad_entry.has_value());
    EXPECT_EQ(bad_entry.error().what,
              R"(p: fingerprints[0].operation: must be one of equals, prefix, regex (got "is"))");
}

TEST(MakeFingerprint, CompilesRegexAndChecks) {
    const auto made = make_fingerprint({.type = FingerprintType::Path,
                                        .operation = FingerprintOperation::Regex,
                                        .value = "/usr/bin/.*"});
    ASSERT_TRUE(made.has_value());
    EXPECT_NE(made->regex, nullptr);
    const auto bad = make_fingerprint({.type = FingerprintType::Env, .value = "x"});
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().what, "key: is required for type env");
}

// --- Scores --------------------------------------------------------------------------------------

TEST(Score, DocumentedNumbers) {
    const ProcessInfo curl = process_of("/usr/bin/curl");
    EXPECT_EQ(
        score_of({{"type", "path"}, {"operation", "equals"}, {"value", "/usr/bin/curl"}}, curl),
        kScoreIdentityPath + kScoreEquals + 13);
    EXPECT_EQ(score_of({{"type", "path"}, {"operation", "prefix"}, {"value", "/usr/"}}, curl),
              kScoreIdentityPath + kScorePrefix + 5);
    EXPECT_EQ(score_of({{"type", "path"}, {"operation", "regex"}, {"value", ".*/curl"}}, curl),
              kScoreIdentityPath + kScoreRegex + 7);
    EXPECT_EQ(
        score_of({{"type", "path"}, {"operation", "equals"}, {"value", "/usr/bin/wget"}}, curl), 0);
    // Strength is capped below the next operation.
    ProcessInfo long_path = process_of("/" + std::string(1000, 'a'));
    EXPECT_EQ(score_of({{"type", "path"}, {"operation", "equals"}, {"value", long_path.executable}},
                       long_path),
              kScoreIdentityPath + kScoreEquals + kScoreMaxStrength);
}

TEST(Score, OperationOrderEqualsPrefixRegexAndLongerPrefixWins) {
    const ProcessInfo curl = process_of("/usr/bin/curl");
    const int equals =
        score_of({{"type", "path"}, {"operation", "equals"}, {"value", "/usr/bin/curl"}}, curl);
    const int long_prefix =
        score_of({{"type", "path"}, {"operation", "prefix"}, {"value", "/usr/bin/cur"}}, curl);
    const int short_prefix =
        score_of({{"type", "path"}, {"operation", "prefix"}, {"value", "/"}}, curl);
    const int long_regex = score_of(
        {{"type", "path"}, {"operation", "regex"}, {"value", "(" + std::string(400, 'x') + ")?.*"}},
        curl);
    EXPECT_GT(equals, long_prefix);
    EXPECT_GT(long_prefix, short_prefix);
    EXPECT_GT(short_prefix, long_regex);
    EXPECT_GT(long_regex, 0);
}

TEST(Score, TypeOrderTagCmdlineEnvScriptPathInterpreterPath) {
    ProcessInfo script = script_process("/usr/bin/python3.11", "/opt/sync.py");
    script.environment = {{"SYNC_MODE", "full"}};
    script.systemd_unit = "sync.service";
    const int tag = score_of(
        {{"type", "tag"}, {"key", "systemd-unit"}, {"operation", "regex"}, {"value", ".*"}},
        script);
    const int cmdline = score_of(
        {{"type", "cmdline"}, {"operation", "equals"}, {"value", "python3 /opt/sync.py"}}, script);
    const int env = score_of(
        {{"type", "env"}, {"key", "SYNC_MODE"}, {"operation", "equals"}, {"value", "full"}},
        script);
    const int script_path =
        score_of({{"type", "path"}, {"operation", "equals"}, {"value", "/opt/sync.py"}}, script);
    const int interpreter_path = score_of(
        {{"type", "path"}, {"operation", "equals"}, {"value", "/usr/bin/python3.11"}}, script);
    EXPECT_GT(tag, cmdline);
    EXPECT_GT(cmdline, env);
    EXPECT_GT(env, script_path);
    EXPECT_GT(script_path, interpreter_path);
    EXPECT_EQ(interpreter_path, kScoreExecutablePath + kScoreEquals + 19);
    EXPECT_GT(interpreter_path, 0);
}

TEST(Score, RegexIsAnchoredToTheWholeText) {
    const ProcessInfo tool = process_of("/usr/bin/curl-dl");
    EXPECT_EQ(
        score_of({{"type", "path"}, {"operation", "regex"}, {"value", "/usr/bin/curl"}}, tool), 0);
    EXPECT_GT(
        score_of({{"type", "path"}, {"operation", "regex"}, {"value", "/usr/bin/curl.*"}}, tool),
        0);
}

TEST(Score, RegexOnAHugeCommandLineNeitherOverflowsNorBacktracks) {
    ProcessInfo java = process_of("/usr/bin/java");
    java.command_line = {"java", "-cp", std::string(200'000, 'a')};
    // Each of these kills a backtracking matcher: deep recursion or exponential time.
    EXPECT_EQ(score_of({{"type", "cmdline"}, {"operation", "regex"}, {"value", "(a|b)*c"}}, java),
              0);
    EXPECT_EQ(
        score_of({{"type", "cmdline"}, {"operation", "regex"}, {"value", "java(a*)*b"}}, java), 0);
    EXPECT_GT(
        score_of({{"type", "cmdline"}, {"operation", "regex"}, {"value", "java -cp (a|b)*"}}, java),
        0);
}

TEST(Score, TagsComeFromTheProcess) {
    ProcessInfo app = process_of("/app/bin/firefox");
    app.tags.flatpak_id = "org.mozilla.firefox";
    app.tags.snap_name = "firefox";
    app.tags.appimage = "/home/alice/Firefox.AppImage";
    app.systemd_unit = "app-firefox.scope";
    const auto tag = [&app](std::string_view key, std::string_view value) {
        return score_of({{"type", "tag"}, {"key", key}, {"operation", "equals"}, {"value", value}},
                        app);
    };
    EXPECT_GT(tag(kTagFlatpak, "org.mozilla.firefox"), kScoreTag);
    EXPECT_GT(tag(kTagSnap, "firefox"), kScoreTag);
    EXPECT_GT(tag(kTagAppImage, "/home/alice/Firefox.AppImage"), kScoreTag);
    EXPECT_GT(tag(kTagSystemdUnit, "app-firefox.scope"), kScoreTag);
    EXPECT_GT(tag(kTagUser, "alice"), kScoreTag);
    EXPECT_EQ(tag(kTagUser, "bob"), 0);
    EXPECT_EQ(tag(kTagScript, "/app/bin/firefox"), 0); // not a script
    EXPECT_EQ(tag(kTagContainerId, "x"), 0);           // not in a container

    const ProcessInfo script = script_process("/usr/bin/python3", "/opt/sync.py");
    EXPECT_GT(score_of({{"type", "tag"},
                        {"key", kTagScript},
                        {"operation", "equals"},
                        {"value", "/opt/sync.py"}},
                       script),
              kScoreTag);
}

TEST(Score, EnvironmentVariables) {
    ProcessInfo process = process_of("/usr/bin/make");
    process.environment = {{"CI", "true"}, {"EMPTY", ""}};
    const auto env = [&process](std::string_view key, std::string_view operation,
                                std::string_view value) {
        return score_of({{"type", "env"}, {"key", key}, {"operation", operation}, {"value", value}},
                        process);
    };
    EXPECT_EQ(env("CI", "equals", "true"), kScoreEnv + kScoreEquals + 4);
    EXPECT_EQ(env("CI", "equals", "false"), 0);
    EXPECT_EQ(env("UNSET", "regex", ".*"), 0); // an unset variable matches nothing
    EXPECT_GT(env("EMPTY", "regex", ".*"), 0); // a set, empty one matches ".*"
}

TEST(Score, ContainersAreSeparateSystems) {
    const ProcessInfo host = process_of("/usr/bin/ping");
    ProcessInfo contained = process_of("/usr/bin/ping");
    contained.container_id = std::string(64, 'a');
    contained.container_name = "web-1";
    const json host_ping = {{"type", "path"}, {"operation", "equals"}, {"value", "/usr/bin/ping"}};
    json web_ping = host_ping;
    web_ping["container"] = "web-1";
    json db_ping = host_ping;
    db_ping["container"] = "db";
    EXPECT_GT(score_of(host_ping, host), 0);
    EXPECT_EQ(score_of(host_ping, contained), 0);
    EXPECT_GT(score_of(web_ping, contained), 0);
    EXPECT_EQ(score_of(web_ping, host), 0);
    EXPECT_EQ(score_of(db_ping, contained), 0);
    // The container tags match without a scope.
    EXPECT_GT(score_of({{"type", "tag"},
                        {"key", kTagContainerName},
                        {"operation", "equals"},
                        {"value", "web-1"}},
                       contained),
              kScoreTag);
    EXPECT_GT(score_of({{"type", "tag"},
                        {"key", kTagContainerId},
                        {"operation", "prefix"},
                        {"value", "aaaaaaaaaaaa"}},
                       contained),
              kScoreTag);
}

TEST(Score, AncestorFingerprintsMatchTheParentChainAndOutrankOwnOnes) {
    const ProcessInfo curl = process_of("/usr/bin/curl");
    const auto script =
        std::make_shared<const ProcessInfo>(script_process("/usr/bin/bash", "/opt/backup.sh"));
    const auto cron = std::make_shared<const ProcessInfo>(process_of("/usr/sbin/cron"));
    const std::vector<std::shared_ptr<const ProcessInfo>> chain = {script, cron};
    const json by_script = {{"type", "tag"},
                            {"key", kTagScript},
                            {"operation", "equals"},
                            {"value", "/opt/backup.sh"},
                            {"ancestor", true}};
    const json by_cron = {
        {"type", "path"}, {"operation", "equals"}, {"value", "/usr/sbin/cron"}, {"ancestor", true}};
    const json own = {{"type", "path"}, {"operation", "equals"}, {"value", "/usr/bin/curl"}};
    EXPECT_EQ(score_of(by_script, curl, chain), kScoreAncestor + kScoreTag + kScoreEquals + 14);
    EXPECT_GT(score_of(by_cron, curl, chain), score_of(own, curl, chain));
    EXPECT_EQ(score_of(by_script, curl, {}), 0);
    EXPECT_EQ(score_of(by_script, *script, {cron}), 0); // a process is not its own ancestor
    json not_ancestor = by_script;
    not_ancestor.erase("ancestor");
    EXPECT_EQ(score_of(not_ancestor, curl, chain), 0);
}

TEST(Score, OnlyOrdinaryProcessesMatch) {
    ProcessInfo kernel = *process::kernel_identity();
    EXPECT_EQ(score_of({{"type", "path"}, {"operation", "regex"}, {"value", ".*"}}, kernel), 0);
    ProcessInfo self = process_of("/usr/sbin/portwarden");
    self.kind = process::IdentityKind::Portwarden;
    EXPECT_EQ(score_of({{"type", "path"}, {"operation", "regex"}, {"value", ".*"}}, self), 0);
}

TEST(Score, AProfileScoresItsBestFingerprint) {
    const ProcessInfo curl = process_of("/usr/bin/curl");
    const auto parsed = parse_fingerprints_text(R"([
        {"type": "path", "operation": "prefix", "value": "/usr/"},
        {"type": "path", "operation": "equals", "value": "/usr/bin/curl"},
        {"type": "path", "operation": "equals", "value": "/usr/bin/wget"}
    ])",
                                                "test");
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(score(*parsed, curl, {}), kScoreIdentityPath + kScoreEquals + 13);
    EXPECT_EQ(score(Fingerprints{}, curl, {}), 0);
}

// --- Identity ------------------------------------------------------------------------------------

TEST(ProfileIdFor, IsStableReadableAndContentDerived) {
    const Fingerprints curl = {{.type = FingerprintType::Path, .value = "/usr/bin/curl"}};
    // A golden value: a change here renames every auto profile of every installation.
    EXPECT_EQ(profile_id_for(curl), "curl-" + profile_id_for(curl).substr(5));
    EXPECT_EQ(profile_id_for(curl), "curl-e4a2f5ac27d23d6bc340");
}

TEST(ProfileIdFor, IgnoresOrderAndDuplicates) {
    const Fingerprint a{.type = FingerprintType::Path, .value = "/usr/bin/curl"};
    const Fingerprint b{.type = FingerprintType::Tag, .key = "user", .value = "alice"};
    EXPECT_EQ(profile_id_for({a, b}), profile_id_for({b, a}));
    EXPECT_EQ(profile_id_for({a, b, a}), profile_id_for({b, a}));
    EXPECT_NE(profile_id_for({a}), profile_id_for({a, b}));
    Fingerprint scoped = a;
    scoped.container = "web-1";
    EXPECT_NE(profile_id_for({a}), profile_id_for({scoped}));
    Fingerprint empty_scope = a;
    empty_scope.container = "";
    EXPECT_NE(profile_id_for({a}), profile_id_for({empty_scope}));
    Fingerprint ancestor = a;
    ancestor.ancestor = true;
    EXPECT_NE(profile_id_for({a}), profile_id_for({ancestor}));
    EXPECT_NE(profile_id_for({a}, 1), profile_id_for({a}));
    EXPECT_EQ(profile_id_for({a}, 0), profile_id_for({a}));
}

TEST(ProfileIdFor, SlugIsSafeAndNeverSpecial) {
    const auto id_of = [](FingerprintType type, std::string key, std::string value) {
        return profile_id_for({{.type = type, .key = std::move(key), .value = std::move(value)}});
    };
    EXPECT_TRUE(id_of(FingerprintType::Tag, "flatpak", "org.mozilla.firefox")
                    .starts_with("org.mozilla.firefox-"));
    EXPECT_TRUE(id_of(FingerprintType::Tag, "script", "/opt/Backup Tool.sh")
                    .starts_with("backup-tool.sh-"));
    EXPECT_TRUE(id_of(FingerprintType::Path, "", "/usr/bin/_x_").starts_with("x-"));
    EXPECT_TRUE(id_of(FingerprintType::Path, "", "/usr/bin/___").starts_with("app-"));
    EXPECT_TRUE(profile_id_for({}).starts_with("app-"));
    for (const std::string& id :
         {id_of(FingerprintType::Path, "", "/x/\xff\xfe"), id_of(FingerprintType::Path, "", "/"),
          id_of(FingerprintType::Cmdline, "", std::string(300, 'Z'))}) {
        EXPECT_FALSE(id.starts_with('_')) << id;
        EXPECT_LE(id.size(), 32U + 1 + 20);
        for (const char c : id) {
            EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')
                << id;
        }
    }
}

// --- Auto fingerprints and profiles --------------------------------------------------------------

TEST(AutoFingerprints, PlainExecutableIsItsPath) {
    const Fingerprints fingerprints = auto_fingerprints(process_of("/usr/bin/curl"));
    ASSERT_EQ(fingerprints.size(), 1U);
    EXPECT_EQ(fingerprints[0], (Fingerprint{.type = FingerprintType::Path,
                                            .operation = FingerprintOperation::Equals,
                                            .value = "/usr/bin/curl"}));
}

TEST(AutoFingerprints, TagsOfScriptsFlatpaksSnapsAndAppImages) {
    const ProcessInfo script = script_process("/usr/bin/python3", "/opt/sync.py");
    ProcessInfo flatpak = process_of("/app/bin/meld");
    flatpak.tags.flatpak_id = "org.gnome.meld";
    flatpak.tags.interpreter = "/usr/bin/python3"; // a Python app in a Flatpak: the Flatpak wins
    ProcessInfo snap = process_of("/snap/spotify/75/usr/bin/spotify");
    snap.tags.snap_name = "spotify";
    ProcessInfo appimage = process_of("/tmp/.mount_Kritaa1b2c/usr/bin/krita");
    appimage.tags.appimage = "/home/alice/krita.AppImage";
    ProcessInfo unnamed_flatpak = process_of("/app/bin/x");
    unnamed_flatpak.tags.flatpak_id = ""; // a Flatpak whose name we could not read: by path
    const auto only = [](const ProcessInfo& process) {
        const Fingerprints fingerprints = auto_fingerprints(process);
        EXPECT_EQ(fingerprints.size(), 1U);
        return fingerprints.empty() ? Fingerprint{} : fingerprints.front();
    };
    EXPECT_EQ(
        only(script),
        (Fingerprint{.type = FingerprintType::Tag, .key = "script", .value = "/opt/sync.py"}));
    EXPECT_EQ(
        only(flatpak),
        (Fingerprint{.type = FingerprintType::Tag, .key = "flatpak", .value = "org.gnome.meld"}));
    EXPECT_EQ(only(snap),
              (Fingerprint{.type = FingerprintType::Tag, .key = "snap", .value = "spotify"}));
    EXPECT_EQ(only(appimage), (Fingerprint{.type = FingerprintType::Tag,
                                           .key = "appimage",
                                           .value = "/home/alice/krita.AppImage"}));
    EXPECT_EQ(only(unnamed_flatpak),
              (Fingerprint{.type = FingerprintType::Path, .value = "/app/bin/x"}));
    // Every auto fingerprint matches the process it was made for.
    for (const ProcessInfo* process : std::initializer_list<const ProcessInfo*>{
             &script, &flatpak, &snap, &appimage, &unnamed_flatpak}) {
        EXPECT_GT(score(auto_fingerprints(*process), *process, {}), 0);
    }
}

TEST(AutoFingerprints, ScopedToTheContainer) {
    ProcessInfo ping = process_of("/usr/bin/ping");
    ping.container_id = std::string(64, 'a');
    ping.container_name = "web-1";
    const Fingerprints fingerprints = auto_fingerprints(ping);
    ASSERT_EQ(fingerprints.size(), 1U);
    EXPECT_EQ(fingerprints[0].container, "web-1");
    EXPECT_NE(profile_id_for(fingerprints),
              profile_id_for(auto_fingerprints(process_of("/usr/bin/ping"))));
}

TEST(AutoFingerprints, NothingToRecognise) {
    EXPECT_TRUE(auto_fingerprints(process_of("")).empty());
    EXPECT_TRUE(auto_fingerprints(*process::kernel_identity()).empty());
}

TEST(AutoFingerprints, PathThatIsNotUtf8BecomesAnExactRegex) {
    const ProcessInfo odd = process_of("/home/alice/bin/caf\xe9 (1).bin");
    const Fingerprints fingerprints = auto_fingerprints(odd);
    ASSERT_EQ(fingerprints.size(), 1U);
    EXPECT_EQ(fingerprints[0].operation, FingerprintOperation::Regex);
    EXPECT_EQ(fingerprints[0].value, "/home/alice/bin/caf. \\(1\\)\\.bin");
    EXPECT_GT(score(fingerprints, odd, {}), 0);
    EXPECT_EQ(score(fingerprints, process_of("/home/alice/bin/cafe (1)xbin"), {}), 0);
    // It can be stored: JSON text and back.
    const auto again = parse_fingerprints_text(to_json(fingerprints).dump(), "test");
    ASSERT_TRUE(again.has_value()) << again.error().what;
    EXPECT_EQ(*again, fingerprints);
}

TEST(MakeAutoProfile, NamesTheApplication) {
    const auto now = system_clock::time_point(std::chrono::seconds(1'700'000'000));
    const Profile curl = make_auto_profile(process_of("/usr/bin/curl"), now);
    EXPECT_EQ(curl.name, "curl");
    EXPECT_EQ(curl.source, ProfileSource::Auto);
    EXPECT_EQ(curl.id, profile_id_for(curl.fingerprints));
    EXPECT_EQ(curl.created, now);
    EXPECT_EQ(curl.first_seen, now);
    EXPECT_EQ(curl.last_seen, now);
    EXPECT_TRUE(curl.settings.empty());

    EXPECT_EQ(make_auto_profile(script_process("/usr/bin/python3", "/opt/sync.py"), now).name,
              "sync.py");
    ProcessInfo flatpak = process_of("/app/bin/firefox");
    flatpak.tags.flatpak_id = "org.mozilla.firefox";
    EXPECT_EQ(make_auto_profile(flatpak, now).name, "org.mozilla.firefox");
    ProcessInfo appimage = process_of("/tmp/.mount_x/krita");
    appimage.tags.appimage = "/home/alice/krita.AppImage";
    EXPECT_EQ(make_auto_profile(appimage, now).name, "krita.AppImage");
    ProcessInfo ping = process_of("/usr/bin/ping");
    ping.container_name = "web-1";
    ping.systemd_unit = "foo.service";
    EXPECT_EQ(make_auto_profile(ping, now).name, "ping (container web-1)");
    EXPECT_EQ(make_auto_profile(process_of("/x/caf\xe9"), now).name, "caf?");
}

TEST(ProfileSourceName, RoundTrips) {
    for (const ProfileSource source :
         {ProfileSource::Auto, ProfileSource::User, ProfileSource::Special}) {
        EXPECT_EQ(profile_source_named(profile_source_name(source)), source);
    }
    EXPECT_EQ(profile_source_name(ProfileSource::User), "user");
    EXPECT_EQ(profile_source_named("robot"), std::nullopt);
}

// --- Special profiles ----------------------------------------------------------------------------

TEST(SpecialProfiles, AreListedAndStartWithAnUnderscore) {
    ASSERT_EQ(special_profiles().size(), 5U);
    for (const SpecialProfile& special : special_profiles()) {
        EXPECT_TRUE(special.id.starts_with('_'));
        EXPECT_TRUE(is_special_profile_id(special.id));
        EXPECT_FALSE(special.name.empty());
        const Profile profile = make_special_profile(special, system_clock::time_point{});
        EXPECT_EQ(profile.id, special.id);
        EXPECT_EQ(profile.source, ProfileSource::Special);
        EXPECT_TRUE(profile.fingerprints.empty());
    }
    EXPECT_TRUE(is_special_profile_id(kSystemResolverProfileId));
    EXPECT_FALSE(is_special_profile_id("curl-e4a2f5ac27d23d6bc340"));
    EXPECT_FALSE(is_special_profile_id(""));
    EXPECT_FALSE(is_special_profile_id("_future"));
    EXPECT_TRUE(is_reserved_profile_id("_future"));
    EXPECT_FALSE(is_reserved_profile_id("curl-1a0e8a7f4e0c7d0d8b8c"));
    EXPECT_EQ(special_profile_id(process::IdentityKind::Kernel), kKernelProfileId);
    EXPECT_EQ(special_profile_id(process::IdentityKind::UnsolicitedInbound), kUnsolicitedProfileId);
    EXPECT_EQ(special_profile_id(process::IdentityKind::Process), std::nullopt);
}

TEST(IsSystemResolver, ByBaseName) {
    EXPECT_TRUE(is_system_resolver("/usr/lib/systemd/systemd-resolved"));
    EXPECT_TRUE(is_system_resolver("/usr/sbin/nscd"));
    EXPECT_TRUE(is_system_resolver("/usr/sbin/dnsmasq"));
    EXPECT_TRUE(is_system_resolver("dnsmasq"));
    EXPECT_FALSE(is_system_resolver("/usr/bin/dnsmasq-helper"));
    EXPECT_FALSE(is_system_resolver("/usr/bin/curl"));
    EXPECT_FALSE(is_system_resolver(""));
}

} // namespace
} // namespace pw::profile
