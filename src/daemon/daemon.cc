#include "daemon/daemon.h"

#include <unistd.h>

#include <array>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/log.h"
#include "interception/conntrack.h"
#include "interception/nfqueue.h"
#include "interception/rule_set.h"
#include "network/connection_table.h"
#include "network/event_writer.h"
#include "network/packet_processor.h"
#include "packet/verdict.h"
#include "profile/config_file.h"

namespace pw::daemon {
namespace {

namespace asio = boost::asio;

// The queue numbers of the seed design: 17 + direction (0 out, 1 in) + IP version + 0.
struct QueueSpec {
    std::uint16_t number;
    packet::Direction direction;
};
constexpr std::array<QueueSpec, 4> kQueues = {{
    {.number = 17040, .direction = packet::Direction::Outbound},
    {.number = 17140, .direction = packet::Direction::Inbound},
    {.number = 17060, .direction = packet::Direction::Outbound},
    {.number = 17160, .direction = packet::Direction::Inbound},
}};

// Marks whose conntrack entries must not outlive a run: a new run decides every flow afresh.
constexpr std::array<std::uint32_t, 5> kRememberedMarks = {
    packet::mark::kPermanentAccept, packet::mark::kPermanentBlock, packet::mark::kPermanentDrop,
    packet::mark::kRerouteToTunnel, packet::mark::kRerouteToNameserver};

constexpr auto kExpiryInterval = std::chrono::seconds(1);
constexpr auto kQueueErrorBackoff = std::chrono::milliseconds(100);

// One bound queue registered with the event loop. The descriptor borrows the queue's fd and
// releases it before the queue closes it.
struct QueueBinding {
    std::unique_ptr<interception::NfQueue> queue;
    packet::Direction direction = packet::Direction::Outbound;
    std::unique_ptr<asio::posix::stream_descriptor> descriptor;
    std::unique_ptr<asio::steady_timer> backoff;
};

// Owns everything the running firewall needs, in start/stop order. Runs on the event-loop
// thread only (the one that calls serve()).
class Daemon {
public:
    Daemon(profile::Config config, std::unique_ptr<network::EventSink> events,
           network::JsonLinesEventWriter* lifecycle_writer)
        : config_(std::move(config)),
          events_(std::move(events)),
          lifecycle_writer_(lifecycle_writer),
          processor_(config_.filter, table_, *events_, clock_),
          signals_(io_, SIGINT, SIGTERM),
          expiry_timer_(io_),
          rules_(runner_) {}

    [[nodiscard]] Status start();
    void serve();
    void stop();

private:
    [[nodiscard]] Status bind_queues();
    void install_rules();
    void forget_remembered_verdicts();
    void wait_for_packets(QueueBinding& binding);
    void on_readable(QueueBinding& binding);
    void schedule_expiry();
    void write_lifecycle(const std::string& json);
    [[nodiscard]] std::string stats_json() const;

    std::shared_ptr<spdlog::logger> log_ = log::get("daemon");
    profile::Config config_;
    SteadyClock clock_;
    network::ConnectionTable table_;
    std::unique_ptr<network::EventSink> events_;
    network::JsonLinesEventWriter* lifecycle_writer_; // nullptr without --events
    network::PacketProcessor processor_;
    asio::io_context io_;
    asio::signal_set signals_;
    asio::steady_timer expiry_timer_;
    std::vector<QueueBinding> queues_;
    interception::IptablesBinaryRunner runner_;
    interception::RuleSet rules_;
    bool ipv4_rules_ = false;
    bool ipv6_rules_ = false;
};

Status Daemon::start() {
    // First the queues: once the rules exist, C17 drops every packet that no one answers.
    if (auto bound = bind_queues(); !bound) {
        return bound;
    }
    forget_remembered_verdicts();
    install_rules();
    if (!ipv4_rules_) {
        // Without IPv4 rules nothing is filtered: refuse to pretend otherwise.
        static_cast<void>(rules_.remove());
        return fail("the IPv4 rules could not be installed (see the error above)");
    }
    nlohmann::ordered_json started = {{"event", "started"},
                                      {"time", network::utc_timestamp_now()},
                                      {"queues", nlohmann::json::array()},
                                      {"ipv4Rules", ipv4_rules_},
                                      {"ipv6Rules", ipv6_rules_}};
    for (const QueueSpec& spec : kQueues) {
        started["queues"].push_back(spec.number);
    }
    write_lifecycle(started.dump());
    log_->info("started queues=17040,17140,17060,17160 ipv6_rules={}", ipv6_rules_);
    return {};
}

Status Daemon::bind_queues() {
    for (const QueueSpec& spec : kQueues) {
        auto queue = interception::NfQueue::open({.queue_number = spec.number});
        if (!queue) {
            return std::unexpected(queue.error());
        }
        QueueBinding binding;
        binding.direction = spec.direction;
        binding.descriptor = std::make_unique<asio::posix::stream_descriptor>(io_, (*queue)->fd());
        binding.backoff = std::make_unique<asio::steady_timer>(io_);
        binding.queue = std::move(*queue);
        queues_.push_back(std::move(binding));
    }
    return {};
}

void Daemon::forget_remembered_verdicts() {
    const auto deleted = interception::delete_conntrack_entries_with_marks(kRememberedMarks);
    if (!deleted) {
        log_->warn(
            "conntrack_flush_failed error=\"{}\" (connections decided by an earlier run "
            "keep their verdict until they end)",
            deleted.error().message());
        return;
    }
    log_->info("conntrack_flushed entries={}", *deleted);
}

void Daemon::install_rules() {
    for (const auto& outcome : rules_.apply()) {
        const bool v4 = outcome.family == IpFamily::V4;
        (v4 ? ipv4_rules_ : ipv6_rules_) = outcome.status.has_value();
        if (outcome.status) {
            continue;
        }
        if (v4) {
            log_->error("rules_failed family=ipv4 error=\"{}\"", outcome.status.error().message());
        } else {
            log_->warn("rules_failed family=ipv6 error=\"{}\" (IPv6 traffic is NOT filtered)",
                       outcome.status.error().message());
        }
    }
}

void Daemon::serve() {
    signals_.async_wait([this](const boost::system::error_code& error, int signal_number) {
        if (!error) {
            log_->info("stopping signal={}", signal_number);
            io_.stop();
        }
    });
    for (QueueBinding& binding : queues_) {
        wait_for_packets(binding);
    }
    schedule_expiry();
    io_.run();
}

void Daemon::wait_for_packets(QueueBinding& binding) {
    binding.descriptor->async_wait(asio::posix::stream_descriptor::wait_read,
                                   [this, &binding](const boost::system::error_code& error) {
                                       if (!error) {
                                           on_readable(binding);
                                       }
                                   });
}

void Daemon::on_readable(QueueBinding& binding) {
    const packet::Direction direction = binding.direction;
    const auto drained = binding.queue->drain(
        [this,
         direction](const interception::QueuedPacket& packet) -> std::optional<std::uint32_t> {
            return processor_.handle(direction, packet.bytes);
        });
    events_->flush();
    if (drained) {
        wait_for_packets(binding);
        return;
    }
    // The kernel keeps the packets queued (or drops them: fail-closed); try again shortly
    // rather than spinning on a broken socket.
    log_->error("queue_error queue={} error=\"{}\"", binding.queue->queue_number(),
                drained.error().message());
    binding.backoff->expires_after(kQueueErrorBackoff);
    binding.backoff->async_wait([this, &binding](const boost::system::error_code& error) {
        if (!error) {
            wait_for_packets(binding);
        }
    });
}

void Daemon::schedule_expiry() {
    expiry_timer_.expires_after(kExpiryInterval);
    expiry_timer_.async_wait([this](const boost::system::error_code& error) {
        if (error) {
            return;
        }
        processor_.expire_connections();
        schedule_expiry();
    });
}

void Daemon::stop() {
    // Rules first: while they exist, packets nobody answers are dropped.
    for (const auto& outcome : rules_.remove()) {
        if (!outcome.status) {
            log_->error(
                "rules_remove_failed family={} error=\"{}\" (run `portwarden iptables "
                "remove`)",
                outcome.family == IpFamily::V4 ? "ipv4" : "ipv6", outcome.status.error().message());
        }
    }
    forget_remembered_verdicts();
    write_lifecycle(stats_json());
    for (QueueBinding& binding : queues_) {
        // The queue owns the fd; the descriptor must not close it a second time.
        static_cast<void>(binding.descriptor->release());
    }
    queues_.clear();
    log_->info("stopped packets={} connections={} malformed={}", processor_.counters().packets,
               processor_.counters().connections, processor_.counters().malformed);
}

std::string Daemon::stats_json() const {
    const auto& counters = processor_.counters();
    interception::NfQueue::Counters queues;
    for (const QueueBinding& binding : queues_) {
        const auto& queue = binding.queue->counters();
        queues.verdicts += queue.verdicts;
        queues.receive_errors += queue.receive_errors;
        queues.truncated_messages += queue.truncated_messages;
        queues.send_errors += queue.send_errors;
    }
    const nlohmann::ordered_json stats = {
        {"event", "stats"},
        {"time", network::utc_timestamp_now()},
        {"packets", counters.packets},
        {"malformed", counters.malformed},
        {"connections", counters.connections},
        {"knownPackets", counters.known},
        {"tableFull", counters.table_full},
        {"verdicts", queues.verdicts},
        {"receiveErrors", queues.receive_errors},
        {"truncatedMessages", queues.truncated_messages},
        {"sendErrors", queues.send_errors},
    };
    return stats.dump();
}

void Daemon::write_lifecycle(const std::string& json) {
    if (lifecycle_writer_ != nullptr) {
        lifecycle_writer_->write_line(json);
    }
}

} // namespace

int run(const RunOptions& options) {
    const auto log = log::get("daemon");
    profile::Config config;
    if (options.config_path) {
        auto loaded = profile::load_config_file(*options.config_path);
        if (!loaded) {
            log->error("config_refused {}", loaded.error().message());
            return kExitBadConfig;
        }
        config = std::move(*loaded);
    }
    if (::geteuid() != 0) {
        log->error(
            "not_root: portwarden run needs root (CAP_NET_ADMIN) to bind NFQUEUE and "
            "install iptables rules");
        return kExitFailure;
    }

    std::unique_ptr<network::EventSink> events;
    network::JsonLinesEventWriter* lifecycle_writer = nullptr;
    if (options.events_target) {
        auto writer = network::JsonLinesEventWriter::open(*options.events_target);
        if (!writer) {
            log->error("events_failed {}", writer.error().message());
            return kExitFailure;
        }
        lifecycle_writer = writer->get();
        events = std::move(*writer);
    } else {
        events = std::make_unique<network::NullEventSink>();
    }

    Daemon daemon(std::move(config), std::move(events), lifecycle_writer);
    if (auto started = daemon.start(); !started) {
        log->error("start_failed {}", started.error().message());
        return kExitFailure;
    }
    daemon.serve();
    daemon.stop();
    return kExitOk;
}

} // namespace pw::daemon
