#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "profile/database.h"

namespace pw::profile::testing {

// The profile that database_writer stores as its write number `index`: the kill -9 test
// rebuilds it to check that each row it finds is exactly what was written, byte for byte.
// Around 4 KB, so that a row spans pages and WAL frames like a real profile with many rules.
inline StoredProfile writer_profile(int index) {
    const std::string id = fmt::format("p{:04}", index);
    std::string fingerprints = fmt::format(
        R"([{{"type":"path","operation":"equals","value":"/usr/lib/app-{0}/bin/app-{0}"}},)"
        R"({{"type":"tag","key":"systemd-unit","operation":"equals","value":"app-{0}.service"}}])",
        index);
    std::string rules;
    for (int rule = 0; rule < 60; ++rule) {
        rules += fmt::format(R"({}"{} host-{}-{}.example.com tcp/{}")", rule == 0 ? "" : ",",
                             (index + rule) % 3 == 0 ? '-' : '+', index, rule, 1000 + rule);
    }
    std::string settings = fmt::format(
        R"({{"filter/defaultAction":"{}","filter/blockInternet":{},"filter/endpoints":[{}]}})",
        index % 2 == 0 ? "ask" : "block", index % 5 == 0 ? "true" : "false", rules);
    return StoredProfile{.id = id,
                         .name = fmt::format("app-{}", index),
                         .source = StoredProfile::Source::Auto,
                         .fingerprints_json = std::move(fingerprints),
                         .settings_json = std::move(settings),
                         .created_ms = 1'700'000'000'000 + index,
                         .first_seen_ms = 1'700'000'000'000 + index,
                         .last_seen_ms = 1'700'000'100'000 + index};
}

} // namespace pw::profile::testing
