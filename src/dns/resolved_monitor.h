#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"

namespace boost::asio {
class io_context; // NOLINT(readability-identifier-naming): Boost's name
} // namespace boost::asio

namespace pw::dns {

// systemd-resolved's default monitor socket.
inline constexpr std::string_view kResolvedMonitorSocket =
    "/run/systemd/resolve/io.systemd.Resolve.Monitor";

// One answer systemd-resolved gave one of its clients, as far as IP -> domain memory needs it.
struct MonitoredAnswer {
    std::string name;                     // the question name, lower case, no trailing dot
    std::vector<IpAddress> addresses;     // A/AAAA reached from it through CNAMEs
    std::vector<std::string> cname_chain; // as in UpstreamAnswer
    std::uint32_t ttl = 0;                // lowest TTL of the records used
};

// Parses one varlink message (the JSON text without its terminating NUL) of a
// io.systemd.Resolve.Monitor.SubscribeQueryResults subscription. Returns nullopt for messages
// that carry no usable answer (the subscription's first reply, failed lookups, answers without
// addresses); an error for text that is not a varlink reply we understand.
[[nodiscard]] Result<std::optional<MonitoredAnswer>> parse_monitor_message(std::string_view text);

// Subscribes to systemd-resolved's query results (issue 4, part 4): every answer it gives any
// client is handed to `on_answer`, so that connections of processes that asked resolved (over
// D-Bus or varlink, invisible to us) still get their domain from the global scope. The socket's
// absence is normal (resolved not running): the monitor then checks again every
// `reconnect_interval`; when the connection drops, it reconnects the same way. Runs on the
// io_context's thread only.
class ResolvedMonitor {
public:
    using OnAnswer = std::function<void(const MonitoredAnswer&)>;

    struct Counters {
        std::uint64_t connections = 0; // subscriptions made
        std::uint64_t answers = 0;     // handed to on_answer
        std::uint64_t malformed = 0;   // messages parse_monitor_message refused
    };

    ResolvedMonitor(boost::asio::io_context& io, std::filesystem::path socket_path,
                    OnAnswer on_answer,
                    std::chrono::milliseconds reconnect_interval = std::chrono::seconds(5));
    ~ResolvedMonitor();
    ResolvedMonitor(const ResolvedMonitor&) = delete;
    ResolvedMonitor& operator=(const ResolvedMonitor&) = delete;
    ResolvedMonitor(ResolvedMonitor&&) = delete;
    ResolvedMonitor& operator=(ResolvedMonitor&&) = delete;

    void start();
    void stop();
    [[nodiscard]] bool connected() const;
    [[nodiscard]] const Counters& counters() const;

private:
    struct State;
    std::shared_ptr<State> state_; // shared with pending handlers, which outlive stop()
};

} // namespace pw::dns
