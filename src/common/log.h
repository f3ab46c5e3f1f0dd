#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace pw::log {

// One named logger per subsystem ("nfq", "rules", "conntrack", "daemon", "dns", "api"), all
// writing to stderr, where journald collects them. Messages read `event key=value`.
// Never used from the pure core (packet parsing, rule matching, decide()).
[[nodiscard]] std::shared_ptr<spdlog::logger> get(const std::string& subsystem);

// Sets the level of every logger, present and future: "debug", "info", "warn", "error".
void set_level(const std::string& level);

} // namespace pw::log
