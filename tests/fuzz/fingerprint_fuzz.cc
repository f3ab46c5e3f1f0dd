// libFuzzer target: parse_fingerprints_text() on arbitrary bytes, then, with what it accepts,
// the round trip through to_json(), profile_id_for(), and matching: score() and ProfileIndex
// against best_profile() on a few processes, one of them made of the input bytes themselves
// (its paths, command line and environment), so that every regex also runs on arbitrary text.
// Fingerprints come from the settings database and the API: any text must give fingerprints or
// an error naming `where`, never a crash, a hang (a regex that backtracks) or undefined
// behaviour.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/utf8.h"
#include "process/process_info.h"
#include "profile/fingerprint.h"
#include "profile/profile.h"
#include "profile/profile_index.h"

namespace {

using pw::process::ProcessInfo;
using pw::profile::Fingerprints;
using ProcessList = std::vector<std::shared_ptr<const ProcessInfo>>;

void check(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

ProcessInfo sample_process(std::string executable) {
    ProcessInfo info;
    info.pid = 4242;
    info.user = "alice";
    info.executable = executable;
    info.identity_path = std::move(executable);
    info.command_line = {info.executable, "-v", "https://example.org"};
    info.environment = {{"CI", "true"}, {"X", "y"}};
    return info;
}

// Processes that between them show every tag, a container and a parent chain.
std::vector<ProcessInfo> sample_processes(std::string_view input) {
    std::vector<ProcessInfo> processes;
    processes.push_back(sample_process("/usr/bin/curl"));
    ProcessInfo script = sample_process("/usr/bin/bash");
    script.identity_path = "/opt/backup.sh";
    script.tags.interpreter = "/usr/bin/bash";
    script.systemd_unit = "apt-daily.service";
    processes.push_back(script);
    ProcessInfo packaged = sample_process("/app/bin/firefox");
    packaged.tags.flatpak_id = "org.mozilla.firefox";
    packaged.tags.snap_name = "firefox";
    packaged.tags.appimage = "/home/alice/Firefox.AppImage";
    packaged.container_id = std::string(64, 'a');
    packaged.container_name = "web-1";
    processes.push_back(packaged);
    // The input as everything a process shows.
    ProcessInfo raw = sample_process(std::string(input));
    raw.identity_path = std::string(input.substr(input.size() / 2));
    raw.command_line = {std::string(input), std::string(input.substr(0, input.size() / 3))};
    raw.environment = {{"CI", std::string(input)}};
    raw.systemd_unit = std::string(input);
    raw.container_name = pw::to_valid_utf8(input.substr(0, 12)); // as parse_cgroup makes them
    raw.user = std::string(input);
    processes.push_back(raw);
    return processes;
}

void check_matching(const Fingerprints& fingerprints, std::string_view input) {
    const std::vector<ProcessInfo> processes = sample_processes(input);
    ProcessList ancestors;
    for (const ProcessInfo& process : processes) {
        ancestors.push_back(std::make_shared<const ProcessInfo>(process));
    }
    // One profile with the fingerprints, one with the auto fingerprints of each process, and a
    // copy of the first under another ID: ties, ancestors and containers all get exercised.
    std::vector<pw::profile::Profile> profiles;
    profiles.push_back({.id = "fuzz", .fingerprints = fingerprints});
    profiles.push_back({.id = "fuzz-copy", .fingerprints = fingerprints});
    for (const ProcessInfo& process : processes) {
        pw::profile::Profile profile;
        profile.fingerprints = pw::profile::auto_fingerprints(process);
        profile.id = pw::profile::profile_id_for(profile.fingerprints);
        // Whatever a process looks like, its auto profile is valid and matches it.
        check(pw::profile::score(profile.fingerprints, process, {}) > 0 ||
              profile.fingerprints.empty());
        check(pw::profile::to_json(profile.fingerprints).dump().size() > 1);
        profiles.push_back(std::move(profile));
    }
    const pw::profile::ProfileIndex index(profiles);
    for (std::size_t i = 0; i < processes.size(); ++i) {
        const pw::profile::Ancestors chain(ancestors.data() + i + 1, ancestors.size() - i - 1);
        const int score = pw::profile::score(fingerprints, processes[i], chain);
        check(score >= 0);
        check(index.match(processes[i], chain) ==
              pw::profile::best_profile(profiles, processes[i], chain));
    }
}

} // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): libFuzzer hands out bytes.
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto parsed = pw::profile::parse_fingerprints_text(input, "fuzz");
    if (!parsed) {
        // Every error names where the text came from.
        check(parsed.error().what.starts_with("fuzz: "));
        return 0;
    }
    // The JSON form reads back as the same fingerprints, and gives the same ID.
    const std::string text = pw::profile::to_json(*parsed).dump();
    const auto again = pw::profile::parse_fingerprints_text(text, "again");
    check(again.has_value() && *again == *parsed);
    const std::string id = pw::profile::profile_id_for(*parsed);
    check(!id.empty() && !id.starts_with('_') && id == pw::profile::profile_id_for(*again));
    check_matching(*parsed, input);
    return 0;
}
