#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace pw::log {

std::shared_ptr<spdlog::logger> get(const std::string& subsystem) {
    if (auto existing = spdlog::get(subsystem)) {
        return existing;
    }
    auto logger = spdlog::stderr_color_mt(subsystem);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
    return logger;
}

void set_level(const std::string& level) {
    spdlog::set_level(spdlog::level::from_str(level));
}

} // namespace pw::log
