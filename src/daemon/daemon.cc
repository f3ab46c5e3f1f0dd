#include "daemon/daemon.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "api/access_policy.h"
#include "api/caller.h"
#include "api/event_stream.h"
#include "api/group_membership.h"
#include "api/http_server.h"
#include "common/clock.h"
#include "common/heap.h"
#include "common/log.h"
#include "config/config_file.h"
#include "daemon/api_backend.h"
#include "dns/descriptor_limit.h"
#include "dns/ip_domain_memory.h"
#include "dns/nameserver.h"
#include "dns/resolv_conf.h"
#include "dns/resolved_monitor.h"
#include "dns/resolver.h"
#include "interception/conntrack.h"
#include "interception/conntrack_destroy_listener.h"
#include "interception/nfqueue.h"
#include "interception/queue_keeper.h"
#include "interception/rule_set.h"
#include "network/attributor.h"
#include "network/connection_table.h"
#include "network/dns_client_directory.h"
#include "network/dns_query_policy.h"
#include "network/event_writer.h"
#include "network/live_connections.h"
#include "network/packet_processor.h"
#include "network/streaming_event_sink.h"
#include "packet/verdict.h"
#include "process/inode_pid_index.h"
#include "process/process_info.h"
#include "process/process_registry.h"
#include "profile/database.h"
#include "profile/prompts.h"
#include "profile/settings_store.h"
#include "state/bpf/socket_owner_records.h"
#include "state/proc_net_socket_table.h"
#include "state/sock_diag_socket_table.h"

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
// Forgetting exited processes (one stat per cached process), expired IP -> domain names and idle
// DNS clients (full scans): not every second.
constexpr auto kProcessExpiryInterval = std::chrono::seconds(15);
constexpr auto kQueueErrorBackoff = std::chrono::milliseconds(100);
// How often the kernel's rules are compared with what we installed (issue 10 item 3: at least
// every 2 s, restored within 5 s). One iptables-save per family and check, in a child process.
constexpr auto kRuleCheckInterval = std::chrono::seconds(1);
// A mark cut over for a new UDP sender is applied again after this: long enough for a packet
// that was inside the chains to have passed.
constexpr auto kReapplyAfter = std::chrono::milliseconds(20);
// Rule statistics and last-seen times go to the database this often (one transaction each).
constexpr int kStatisticsFlushTicks = 10;
// The free heap goes back to the kernel (common/heap.h) at the slow tick after start and after
// API use, but only with fewer live connections than this: the heap is then a few MiB and the
// trim takes well under a millisecond; under load it could hold verdicts back for ~100 ms.
constexpr std::size_t kTrimBelowLiveConnections = 4096;

// Whether the process `pid` that started at `start_time` still runs: its /proc entry exists
// and started then (a reused PID is another process).
bool process_alive(std::int64_t pid, std::uint64_t start_time) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::ostringstream text;
    text << file.rdbuf();
    const auto stat = process::parse_stat(text.str());
    return stat && (start_time == 0 || stat->start_time == start_time);
}

// Raises the soft limit of open files to what a full nameserver TCP table needs (issue 10: with
// the common default of 1024, a flood of connections leaves accept() failing with EMFILE).
void log_descriptor_limit(spdlog::logger& log, std::uint64_t wanted) {
    const auto limit = dns::raise_descriptor_limit(wanted);
    if (!limit) {
        log.warn("open_files_limit_unchanged error=\"{}\"", limit.error().message());
    } else if (limit->after < wanted) {
        log.warn(
            "open_files_limit={} hard={} wanted={} (a flood of DNS-over-TCP connections "
            "may exhaust it: raise LimitNOFILE)",
            limit->after, limit->hard, wanted);
    } else if (limit->after != limit->before) {
        log.info("open_files_limit={} was={}", limit->after, limit->before);
    }
}

// Who is on the other end of an API connection: the owner of the peer's socket, which is
// local (the API listens on loopback only). sock_diag names its UID.
class SocketCallerLookup final : public api::CallerLookup {
public:
    explicit SocketCallerLookup(std::unique_ptr<state::SocketTable> sockets)
        : sockets_(std::move(sockets)) {}

    [[nodiscard]] std::optional<api::Caller> find_caller(
        const api::ConnectionEndpoints& endpoints) override {
        if (!sockets_) {
            return std::nullopt;
        }
        const auto found = sockets_->find({.protocol = packet::protocol::kTcp,
                                           .local_address = endpoints.peer_address,
                                           .local_port = endpoints.peer_port,
                                           .remote_address = endpoints.local_address,
                                           .remote_port = endpoints.local_port,
                                           .direction = packet::Direction::Outbound});
        if (!found) {
            return std::nullopt;
        }
        const auto& owner = *found;
        if (!owner) {
            return std::nullopt;
        }
        return api::Caller{.uid = owner->uid, .pid = std::nullopt, .executable = {}};
    }

private:
    std::unique_ptr<state::SocketTable> sockets_;
};

// Where a private cgroup2 is mounted for the eBPF programs when no cgroup v2 hierarchy is
// visible (issue 10 item 9); only for the moment of attaching them.
constexpr std::string_view kRunDirectory = "/run/portwarden";

// The cgroup the eBPF programs observe: --bpf-cgroup, else the cgroup v2 root, mounted
// privately if need be.
Result<state::bpf::Cgroup2Root> bpf_cgroup_for(const RunOptions& options) {
    if (!options.bpf_cgroup) {
        return state::bpf::find_or_mount_cgroup2_root(kRunDirectory);
    }
    auto named = state::bpf::resolve_cgroup2_directory(*options.bpf_cgroup);
    if (!named) {
        return std::unexpected(named.error());
    }
    return state::bpf::Cgroup2Root{.path = std::move(*named), .private_mount = nullptr};
}

interception::FlowTuple flow_of(const network::ConnectionKey& key) {
    return {.protocol = key.protocol,
            .local_address = key.local_address,
            .local_port = key.local_port,
            .remote_address = key.remote_address,
            .remote_port = key.remote_port};
}

network::ConnectionKey key_of(const interception::FlowTuple& flow) {
    return {.protocol = flow.protocol,
            .local_address = flow.local_address,
            .local_port = flow.local_port,
            .remote_address = flow.remote_address,
            .remote_port = flow.remote_port};
}

std::string read_text_file(const std::filesystem::path& path) {
    std::ifstream file(path);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

// Checks the kernel's rules every kRuleCheckInterval, and at once when asked, on a thread of its
// own: RuleSet::check_and_repair() waits for iptables-save (and iptables-restore when it
// repairs), which must not stall the event loop. What it found goes to `report`, called on the
// watcher's thread (the daemon posts it to the event loop). The RuleSet is used by this thread
// only between start() and stop().
class RuleWatcher {
public:
    using Report = std::function<void(std::vector<interception::RuleCheck>)>;

    RuleWatcher(interception::RuleSet& rules, Report report)
        : rules_(rules), report_(std::move(report)) {}
    RuleWatcher(const RuleWatcher&) = delete;
    RuleWatcher& operator=(const RuleWatcher&) = delete;
    RuleWatcher(RuleWatcher&&) = delete;
    RuleWatcher& operator=(RuleWatcher&&) = delete;
    ~RuleWatcher() { stop(); }

    void start() {
        thread_ = std::jthread([this](const std::stop_token& stop) { watch(stop); });
    }
    // The next check runs now rather than at the end of the interval (SIGUSR2).
    void check_now() {
        {
            const std::scoped_lock lock(mutex_);
            check_requested_ = true;
        }
        wake_.notify_all();
    }
    // Waits for a check in progress to end; RuleSet is the caller's again afterwards.
    void stop() {
        if (thread_.joinable()) {
            thread_.request_stop();
            thread_.join();
        }
    }

private:
    void watch(const std::stop_token& stop) {
        while (true) {
            {
                std::unique_lock lock(mutex_);
                wake_.wait_for(lock, stop, kRuleCheckInterval, [this] { return check_requested_; });
                check_requested_ = false;
            }
            if (stop.stop_requested()) {
                return;
            }
            report_(rules_.check_and_repair());
        }
    }

    interception::RuleSet& rules_;
    Report report_;
    std::mutex mutex_; // guards check_requested_ (the condition variable needs a plain mutex)
    std::condition_variable_any wake_;
    bool check_requested_ = false;
    std::jthread thread_;
};

// Passes every event on, except that a decision the kernel is known not to enforce says so
// (issue 10 item 3): while a family's rules are missing and could not be installed again, the
// reason of a "decided" event of that family starts with "NOT ENFORCED". `missing` is the
// daemon's per-family flag (V4 first). Runs on the event-loop thread only.
class EnforcementNotingSink final : public network::EventSink {
public:
    EnforcementNotingSink(std::unique_ptr<network::EventSink> inner,
                          const std::array<bool, 2>& missing)
        : inner_(std::move(inner)), missing_(missing) {}

    // network::EventSink
    void connection_new(std::uint64_t id, const firewall::ConnectionFacts& connection) override {
        inner_->connection_new(id, connection);
    }
    void connection_decided(std::uint64_t id, const firewall::ConnectionFacts& connection,
                            const firewall::Decision& decision, std::uint32_t mark) override {
        if (!missing_[connection.ip_family == IpFamily::V4 ? 0 : 1]) {
            inner_->connection_decided(id, connection, decision, mark);
            return;
        }
        firewall::Decision noted = decision;
        noted.reason =
            "NOT ENFORCED (the kernel rules are missing, see the rules event): " + decision.reason;
        inner_->connection_decided(id, connection, noted, mark);
    }
    void dns_query(const network::DnsQueryEvent& query) override { inner_->dns_query(query); }
    void prompt(profile::PromptEvent event, const profile::Prompt& prompt,
                const profile::PromptAnswer* answer) override {
        inner_->prompt(event, prompt, answer);
    }
    void flush() override { inner_->flush(); }

private:
    std::unique_ptr<network::EventSink> inner_;
    const std::array<bool, 2>& missing_;
};

// Whether this process may administer the network (CAP_NET_ADMIN in its effective set), read
// from /proc/self/status: the kernel answers EPERM both for a missing capability and for a
// queue that another socket holds.
bool has_net_admin() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (!line.starts_with("CapEff:")) {
            continue;
        }
        const auto digits = line.find_first_not_of(" \t", 7);
        std::uint64_t effective = 0;
        if (digits == std::string::npos ||
            std::from_chars(line.data() + digits, line.data() + line.size(), effective, 16).ec !=
                std::errc{}) {
            return false;
        }
        constexpr unsigned kCapNetAdmin = 12;
        return ((effective >> kCapNetAdmin) & 1U) != 0;
    }
    return false;
}

network::JsonLinesEventWriter::Options event_writer_options(const config::EventSettings& limits) {
    return {.rotation = {.max_file_size = limits.max_file_size, .keep_files = limits.keep_files},
            .repeats = {.count = limits.repeat_limit, .window = limits.repeat_window}};
}

// PacketRef.queue for the daemon: the queue's index in the low byte, its socket's generation
// above (see QueueBinding::generation).
constexpr std::uint32_t kQueueIndexMask = 0xff;
constexpr std::uint32_t queue_ref(std::uint32_t index, std::uint32_t generation) {
    return index | (generation << 8U);
}

// One bound queue registered with the event loop. The descriptor borrows the queue's fd and
// releases it before the queue closes it (at stop, or when the keeper replaces a failed one).
struct QueueBinding {
    std::unique_ptr<interception::QueueKeeper> keeper;
    // Counts the sockets the queue had. A new socket numbers its packets from 1 again, so a
    // verdict owed to a packet of an earlier one must not reach it (it would decide another
    // packet): PacketRef.queue carries the generation next to the index (queue_ref()).
    std::uint32_t generation = 0;
    packet::Direction direction = packet::Direction::Outbound;
    std::unique_ptr<asio::posix::stream_descriptor> descriptor;
    std::unique_ptr<asio::steady_timer> backoff;
};

// Owns everything the running firewall needs, in start/stop order. Runs on the event-loop
// thread only (the one that calls serve()).
class Daemon final : public network::PacketProcessor::VerdictSink {
public:
    Daemon(config::Config config, std::unique_ptr<network::EventSink> events,
           network::JsonLinesEventWriter* lifecycle_writer, RunOptions options)
        : config_(std::move(config)),
          options_(std::move(options)),
          // The events file, then the API's event stream (rendered only while someone listens).
          events_(std::make_unique<EnforcementNotingSink>(
              std::make_unique<network::FanOutEventSink>(
                  std::move(events),
                  std::make_unique<network::StreamingEventSink>(
                      [this] { return event_hub_.active(); },
                      [this](std::string text) { event_hub_.publish(std::move(text)); })),
              enforcement_missing_)),
          lifecycle_writer_(lifecycle_writer),
          // SIGQUIT too: its default action (a core dump) would leave every rule behind.
          signals_(io_, SIGINT, SIGTERM, SIGQUIT),
          control_signals_(io_, SIGHUP, SIGUSR1, SIGUSR2),
          expiry_timer_(io_),
          retry_timer_(io_),
          rules_(runner_, redirect_targets(config_)),
          watcher_(rules_, [this](std::vector<interception::RuleCheck> checks) {
              asio::post(io_, [this, checks = std::move(checks)] { rules_checked(checks); });
          }) {
        control_signals_.add(SIGALRM);
    }

    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;
    Daemon(Daemon&&) = delete;
    Daemon& operator=(Daemon&&) = delete;
    // The store and its database go while the event loop still exists: the database hands the
    // completions of its last writes to it.
    ~Daemon() override {
        store_.reset();
        database_.reset();
    }

    [[nodiscard]] Status start();
    void serve();
    // Removes the rules and closes everything. Returns false when rules of ours are left.
    [[nodiscard]] bool stop();

    // network::PacketProcessor::VerdictSink: verdicts for packets the processor held back.
    void verdict(network::PacketRef packet, std::uint32_t mark) override;
    void flush() override;

private:
    [[nodiscard]] Status open_settings();
    [[nodiscard]] Status start_api();
    [[nodiscard]] nlohmann::json status_json() const;
    void set_up_prompts();
    void set_up_live_connections();
    // Returns the heap's free memory to the kernel once after start and then after API use,
    // while the load is light (kTrimBelowLiveConnections).
    void trim_heap_after_api_use();
    void wait_for_conntrack_ends();
    void settings_changed(const profile::SettingsChange& change);
    void apply_event_settings();
    void apply_mark_changes(const std::vector<network::MarkChange>& changes);
    // Pauses filtering until `until` (wall clock) or ends the pause (nullopt): every live and
    // held connection is decided again, a "pause" event and a log line say so.
    [[nodiscard]] nlohmann::json set_pause(
        std::optional<std::chrono::system_clock::time_point> until);
    [[nodiscard]] nlohmann::json pause_json() const;
    void set_up_attribution();
    void wait_for_udp_senders();
    void udp_sender_seen(const state::bpf::UdpSender& sender);
    [[nodiscard]] Status set_up_dns();
    [[nodiscard]] nlohmann::ordered_json dns_json() const;
    [[nodiscard]] nlohmann::ordered_json dns_stats_json() const;
    [[nodiscard]] nlohmann::ordered_json attribution_json() const;
    [[nodiscard]] nlohmann::ordered_json attribution_stats_json() const;
    void schedule_retries();
    [[nodiscard]] Status bind_queues();
    void install_rules();
    void forget_remembered_verdicts();
    void wait_for_packets(QueueBinding& binding);
    void on_readable(QueueBinding& binding);
    void queue_failed(QueueBinding& binding, const Error& error);
    void schedule_reopen(QueueBinding& binding);
    void queue_reopened(QueueBinding& binding);
    void write_queue_event(const QueueBinding& binding, std::string_view state);
    [[nodiscard]] nlohmann::json queue_states_json() const;
    void schedule_expiry();
    void wait_for_stop_signal();
    void wait_for_control_signals();
    void control_signal(int signal_number);
    void reopen_events();
    void rules_checked(const std::vector<interception::RuleCheck>& checks);
    [[nodiscard]] nlohmann::ordered_json rules_stats_json() const;
    void write_lifecycle(const std::string& json);
    [[nodiscard]] std::string stats_json() const;

    std::shared_ptr<spdlog::logger> log_ = log::get("daemon");
    config::Config config_;
    RunOptions options_;
    SteadyClock clock_;
    // Settings and profiles (issue 9): the database, and the store every component reads
    // settings through. Created by start(), before anything that asks for a policy.
    std::unique_ptr<profile::Database> database_;
    std::unique_ptr<profile::SettingsStore> store_;
    std::unique_ptr<profile::PromptBroker> prompts_;
    int ticks_ = 0;
    std::uint64_t api_requests_at_trim_ = 0;
    bool heap_trimmed_once_ = false;
    // Re-evaluation (issue 9 item 5): the live connections, the kernel's table to cut them
    // over, and its reports of ended entries. The kernel parts are null when unavailable.
    network::LiveConnections live_;
    network::FilterPause pause_;
    std::optional<interception::ConntrackTable> conntrack_;
    std::optional<interception::ConntrackDestroyListener> conntrack_ends_;
    // The local API (core/listenAddress); null when "off".
    std::unique_ptr<ApiBackend> api_backend_;
    std::unique_ptr<SocketCallerLookup> api_callers_;
    api::SystemGroupMembership api_groups_;
    std::unique_ptr<api::AccessPolicy> api_access_;
    std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
    network::ConnectionTable table_;
    // The API's event stream (GET /api/v1/events); before events_, which publishes to it.
    api::EventHub event_hub_;
    std::unique_ptr<network::EventSink> events_;
    network::JsonLinesEventWriter* lifecycle_writer_; // nullptr without --events
    // Attribution: each null when not in use (mode, or it could not be set up).
    std::unique_ptr<state::bpf::SocketOwnerRecords> kernel_records_;
    std::unique_ptr<state::SocketTable> sockets_;
    std::string socket_table_name_ = "none";
    std::unique_ptr<process::InodePidIndex> inode_owners_;
    std::unique_ptr<process::ProcessRegistry> processes_;
    std::unique_ptr<network::ProcessAttributor> attributor_;
    std::unique_ptr<network::PacketProcessor> processor_; // created by start()
    // The nameserver side (issue 4); null without nameserver endpoints.
    dns::IpDomainMemory domain_memory_;
    network::DnsClientDirectory dns_clients_;
    std::vector<dns::Upstream> upstreams_;
    std::string upstreams_source_ = "none"; // "config", "resolv.conf"
    std::unique_ptr<network::DnsQueryPolicy> dns_policy_;
    asio::io_context io_;
    // Declared after io_ so that they go first: their sockets belong to it.
    std::unique_ptr<dns::Resolver> resolver_;
    std::unique_ptr<dns::Nameserver> nameserver_;
    std::unique_ptr<dns::ResolvedMonitor> resolved_monitor_;
    std::unique_ptr<api::HttpServer> api_server_;
    asio::signal_set signals_;
    // Signals that must not end the daemon (issue 10 item 1): SIGHUP, SIGUSR1, SIGUSR2, SIGALRM.
    asio::signal_set control_signals_;
    asio::steady_timer expiry_timer_;
    asio::steady_timer retry_timer_;
    bool retry_timer_armed_ = false;
    std::unique_ptr<asio::posix::stream_descriptor> conntrack_ends_descriptor_;
    // The eBPF records' reports of new UDP senders (issue 10 item 8); borrows libbpf's fd.
    std::unique_ptr<asio::posix::stream_descriptor> udp_senders_descriptor_;
    std::vector<bool> queues_with_deferred_verdicts_;
    Clock::TimePoint next_process_expiry_;
    std::vector<QueueBinding> queues_;
    interception::IptablesBinaryRunner runner_;
    interception::RuleSet rules_;
    // After rules_: it borrows the rule set, and its thread must end first.
    RuleWatcher watcher_;
    bool ipv4_rules_ = false;
    bool ipv6_rules_ = false;
    // Rule checks (issue 10 item 3), counted on the event-loop thread from the watcher's reports.
    struct RuleCounters {
        std::uint64_t checks = 0;
        std::uint64_t changes = 0;  // checks that found our rules changed behind our back
        std::uint64_t restored = 0; // ... and installed them again
        std::uint64_t restore_failures = 0;
    } rule_counters_;
    // Per family (V4 first): the rules are known to be missing or changed and could not be
    // restored, so the kernel does not enforce what the events say.
    std::array<bool, 2> enforcement_missing_{};
    std::string last_intact_check_ = network::utc_timestamp_now();
};

Status Daemon::start() {
    set_up_attribution();
    if (auto opened = open_settings(); !opened) {
        return opened;
    }
    processor_ = std::make_unique<network::PacketProcessor>(*store_, table_, *events_, clock_,
                                                            attributor_.get());
    processor_->set_verdict_sink(*this);
    processor_->set_pause(pause_);
    set_up_prompts();
    // Before the queues: the kernel reports only the ends of entries made while we listen.
    set_up_live_connections();
    // First the queues: once the rules exist, C17 drops every packet that no one answers.
    if (auto bound = bind_queues(); !bound) {
        return bound;
    }
    // Then the nameserver: once the rules exist, every DNS query is sent to it.
    if (auto dns_ready = set_up_dns(); !dns_ready) {
        return dns_ready;
    }
    if (auto api_ready = start_api(); !api_ready) {
        return api_ready;
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
                                      {"ipv6Rules", ipv6_rules_},
                                      {"attribution", attribution_json()},
                                      {"dns", dns_json()}};
    for (const QueueSpec& spec : kQueues) {
        started["queues"].push_back(spec.number);
    }
    write_lifecycle(started.dump());
    log_->info("started queues=17040,17140,17060,17160 ipv6_rules={}", ipv6_rules_);
    return {};
}

Status Daemon::open_settings() {
    const std::filesystem::path file = options_.data_directory / "portwarden.db";
    auto database = profile::Database::open(
        file, [this](std::function<void()> job) { asio::post(io_, std::move(job)); });
    if (!database) {
        // Never replaced or repaired behind the user's back: they decide what to do with it.
        return fail(database.error().message());
    }
    database_ = std::move(*database);
    auto store = profile::SettingsStore::open(profile::SettingsStore::Dependencies{
        .database = database_.get(),
        .file_layer = config_.file_layer,
        .file_name = options_.config_path ? options_.config_path->string() : std::string(),
        .processes = [this](const firewall::ProcessFacts& facts)
            -> std::shared_ptr<const process::ProcessInfo> {
            if (!processes_ || facts.pid < 0) {
                return nullptr;
            }
            auto found = processes_->lookup_started(static_cast<int>(facts.pid), facts.start_time);
            return found ? *found : nullptr;
        },
        .ancestors = [this](const process::ProcessInfo& process)
            -> std::vector<std::shared_ptr<const process::ProcessInfo>> {
            return processes_ ? processes_->ancestors(process)
                              : std::vector<std::shared_ptr<const process::ProcessInfo>>{};
        },
        .process_alive = process_alive,
        .wall_clock = {}});
    if (!store) {
        return fail(store.error().message());
    }
    store_ = std::move(*store);
    store_->subscribe([this](const profile::SettingsChange& change) { settings_changed(change); });
    apply_event_settings();
    log_->info("settings database={} profiles={}", file.string(), store_->profiles().size());
    return {};
}

Status Daemon::start_api() {
    const auto& endpoints = config_.core.api_endpoints;
    if (endpoints.empty()) {
        log_->info("api=off (core/listenAddress)");
        return {};
    }
    api_backend_ = std::make_unique<ApiBackend>(
        *store_, *prompts_, [this] { return status_json(); },
        [this](std::optional<std::chrono::seconds> length) {
            return set_pause(length ? std::optional(std::chrono::system_clock::now() + *length)
                                    : std::nullopt);
        });
    auto sockets = state::SockDiagSocketTable::open();
    api_callers_ = std::make_unique<SocketCallerLookup>(
        sockets ? std::move(*sockets) : std::unique_ptr<state::SockDiagSocketTable>());
    api_access_ = std::make_unique<api::AccessPolicy>(config_.core.api_groups, api_groups_);
    // Like the nameserver's: "localhost" on a host without IPv6 is 127.0.0.1 alone (issue 10).
    const config::HostListenEndpoints fitted =
        config::fit_listen_endpoints_to_host(endpoints, config::probe_ipv6_loopback());
    std::vector<api::ListenEndpoint> listen;
    listen.reserve(fitted.bind.size());
    for (const firewall::IpEndpoint& endpoint : fitted.bind) {
        listen.push_back({.address = endpoint.address, .port = endpoint.port});
    }
    auto server = api::HttpServer::start(io_, listen, api::ServerLimits{}, *api_callers_,
                                         *api_access_, *api_backend_, &event_hub_);
    if (!server) {
        const std::string hint =
            config::listen_failure_hint(server.error().reason, "core/listenAddress");
        return fail("api: " + server.error().message() + (hint.empty() ? "" : " (" + hint + ")"));
    }
    api_server_ = std::move(*server);
    std::string where;
    for (const auto& endpoint : api_server_->endpoints()) {
        where += (where.empty() ? "" : ",") + api::to_string(endpoint);
    }
    log_->info("api listen={}", where);
    return {};
}

nlohmann::json Daemon::status_json() const {
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::steady_clock::now() - started_at_);
    const auto& counters = processor_->counters();
    return {{"version", PW_VERSION},
            {"uptimeSeconds", uptime.count()},
            {"paused", pause_.active()},
            {"pausedUntil", pause_json()["until"]},
            {"attribution", attribution_json()},
            {"dns", dns_json()},
            {"queues", {17040, 17140, 17060, 17160}},
            {"queueStates", queue_states_json()},
            {"ipv4Rules", ipv4_rules_},
            {"ipv6Rules", ipv6_rules_},
            {"rules", rules_stats_json()},
            {"profiles", store_->profiles().size()},
            {"openPrompts", prompts_->size()},
            {"counters",
             {{"packets", counters.packets},
              {"connections", counters.connections},
              {"held", counters.held},
              {"promptsRefused", counters.prompts_refused},
              {"answered", counters.answered},
              {"unanswered", counters.unanswered},
              {"reevaluations", counters.reevaluations},
              {"cutOver", counters.cut_over}}},
            {"events", lifecycle_writer_ != nullptr ? lifecycle_writer_->counters_json()
                                                    : nlohmann::ordered_json()}};
}

void Daemon::set_up_prompts() {
    prompts_ = std::make_unique<profile::PromptBroker>(clock_);
    // The store first: an answer's rule must be in the settings before the held connections
    // are decided again (the packet processor listens last).
    prompts_->subscribe([this](profile::PromptEvent event, const profile::Prompt& prompt,
                               const profile::PromptAnswer* answer) {
        if (event == profile::PromptEvent::Answered && answer != nullptr) {
            store_->prompt_answered(prompt, *answer);
        }
    });
    prompts_->subscribe(
        [this](profile::PromptEvent event, const profile::Prompt& prompt,
               const profile::PromptAnswer* answer) { events_->prompt(event, prompt, answer); });
    processor_->enable_prompts(*prompts_);
}

void Daemon::set_up_live_connections() {
    processor_->enable_live_connections(live_);
    if (auto table = interception::ConntrackTable::open()) {
        conntrack_.emplace(std::move(*table));
    } else {
        log_->warn(
            "conntrack_unavailable error=\"{}\" (a settings change cannot cut over connections "
            "that the kernel already passes on its own)",
            table.error().message());
    }
    if (auto listener = interception::ConntrackDestroyListener::open()) {
        conntrack_ends_.emplace(std::move(*listener));
        conntrack_ends_descriptor_ =
            std::make_unique<asio::posix::stream_descriptor>(io_, conntrack_ends_->fd());
    } else {
        log_->warn(
            "conntrack_events_unavailable error=\"{}\" (ended connections stay registered "
            "until newer ones push them out)",
            listener.error().message());
    }
}

void Daemon::wait_for_conntrack_ends() {
    if (!conntrack_ends_descriptor_) {
        return;
    }
    conntrack_ends_descriptor_->async_wait(
        asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& error) {
            if (error) {
                return;
            }
            const auto drained =
                conntrack_ends_->drain([this](const interception::ConntrackEntry& entry) {
                    // The event does not say which side opened the connection: both keys.
                    for (const network::ConnectionKey& key :
                         {key_of(entry.as_outbound()), key_of(entry.as_inbound())}) {
                        // The stream's "ended" names the ID the registry gave the connection.
                        const network::LiveConnection* live =
                            event_hub_.active() ? live_.find(key) : nullptr;
                        if (live != nullptr) {
                            event_hub_.publish(network::ended_event(live->id()));
                        }
                        processor_->connection_ended(key);
                    }
                });
            if (!drained) {
                log_->error("conntrack_events_failed error=\"{}\" (no longer listening)",
                            drained.error().message());
                return;
            }
            wait_for_conntrack_ends();
        });
}

void Daemon::wait_for_udp_senders() {
    if (!udp_senders_descriptor_) {
        return;
    }
    udp_senders_descriptor_->async_wait(
        asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& error) {
            if (error) {
                return;
            }
            const auto drained = kernel_records_->drain_udp_senders(
                [this](const state::bpf::UdpSender& sender) { udp_sender_seen(sender); });
            if (!drained) {
                log_->error("udp_senders_failed error=\"{}\" (a reused UDP flow keeps its verdict)",
                            drained.error().message());
                return;
            }
            events_->flush();
            wait_for_udp_senders();
        });
}

// Issue 10 item 8: a process sending on a live UDP flow that was decided for another process
// must not ride that verdict. The processor decides the connection again for the new sender and
// the kernel's mark is cut over as for a settings change (the conntrack entry stays: a reply in
// flight still belongs to it). A packet of the flow that was between the mangle and the filter
// chain at that moment saves the old mark again (CONNMARK --save-mark), so the change is applied
// once more shortly after, if it still holds.
void Daemon::udp_sender_seen(const state::bpf::UdpSender& sender) {
    static const auto kNanosecondsPerTick = 1'000'000'000 / std::max(1L, ::sysconf(_SC_CLK_TCK));
    const network::UdpSender seen{
        .flow = {.protocol = sender.flow.protocol,
                 .local_address = sender.flow.local_address,
                 .local_port = sender.flow.local_port,
                 .remote_address = sender.flow.remote_address,
                 .remote_port = sender.flow.remote_port},
        .pid = sender.owner.tgid,
        .start_time = static_cast<std::uint64_t>(sender.owner.process_start.count()) /
                      static_cast<std::uint64_t>(kNanosecondsPerTick)};
    auto changes = processor_->udp_sender_seen(seen);
    if (changes.empty()) {
        return;
    }
    for (const network::MarkChange& change : changes) {
        log_->info("udp_new_sender connection={} pid={} old_mark={} new_mark={}", change.id,
                   seen.pid, change.old_mark, change.new_mark);
    }
    apply_mark_changes(changes);
    auto timer = std::make_shared<asio::steady_timer>(io_, kReapplyAfter);
    timer->async_wait([this, timer, changes = std::move(changes)](
                          const boost::system::error_code& error) mutable {
        if (error) {
            return;
        }
        std::erase_if(changes, [this](const network::MarkChange& change) {
            const network::LiveConnection* live = live_.find(change.key);
            return live == nullptr || live->id() != change.id || live->mark() != change.new_mark;
        });
        apply_mark_changes(changes);
    });
}

void Daemon::settings_changed(const profile::SettingsChange& change) {
    if (event_hub_.active()) {
        event_hub_.publish(network::setting_event(change.profile_id, change.what));
    }
    if (!change.profile_id) {
        apply_event_settings();
    }
    if (!processor_) {
        return;
    }
    const network::LiveFilter filter = change.profile_id
                                           ? network::LiveFilter::profile(*change.profile_id)
                                           : network::LiveFilter::all();
    apply_mark_changes(processor_->reevaluate(filter));
    events_->flush();
}

// events/... as the store and the config file say now (the writer was opened with the file's).
void Daemon::apply_event_settings() {
    if (lifecycle_writer_ != nullptr) {
        lifecycle_writer_->set_options(event_writer_options(config::effective_event_settings(
            {.store = &store_->store_layer(), .file = &store_->file_layer(), .app = nullptr})));
    }
}

nlohmann::json Daemon::pause_json() const {
    const auto until = pause_.until();
    return {{"paused", until.has_value()},
            {"until", until ? nlohmann::json(network::utc_timestamp(*until)) : nlohmann::json()}};
}

nlohmann::json Daemon::set_pause(std::optional<std::chrono::system_clock::time_point> until) {
    const bool was_paused = pause_.active();
    if (until) {
        pause_.pause(*until);
        log_->warn("filtering_paused until={} (nothing is blocked until then)",
                   network::utc_timestamp(*until));
    } else {
        pause_.resume();
        log_->info("filtering_resumed{}", was_paused ? "" : " (was not paused)");
    }
    nlohmann::ordered_json event = {{"event", "pause"},
                                    {"time", network::utc_timestamp_now()},
                                    {"paused", pause_.active()},
                                    {"until", pause_json()["until"]}};
    write_lifecycle(event.dump());
    // Everything decided before is decided again: connections blocked before the pause are let
    // through (a UDP flow, a held prompt), those permitted during it are cut over at its end.
    if (processor_ && (was_paused || pause_.active())) {
        apply_mark_changes(processor_->reevaluate(network::LiveFilter::all()));
    }
    events_->flush();
    return pause_json();
}

void Daemon::apply_mark_changes(const std::vector<network::MarkChange>& changes) {
    if (!conntrack_) {
        return;
    }
    for (const network::MarkChange& change : changes) {
        // Temporary verdicts live in the connection table, which the processor has changed
        // already: the kernel sends the connection's packets to the queue anyway. A permanent
        // verdict is in the conntrack entry: replace it (with 0, "ask again", for a temporary
        // one), or, for a reroute, delete the entry so that the next packet starts afresh.
        if (change.old_persistence != packet::Persistence::Permanent) {
            continue;
        }
        const interception::FlowTuple flow = flow_of(change.key);
        const bool reroute = change.old_mark == packet::mark::kRerouteToTunnel ||
                             change.old_mark == packet::mark::kRerouteToNameserver ||
                             change.new_mark == packet::mark::kRerouteToTunnel ||
                             change.new_mark == packet::mark::kRerouteToNameserver;
        const std::uint32_t mark =
            change.new_persistence == packet::Persistence::Permanent ? change.new_mark : 0;
        const auto applied =
            reroute ? conntrack_->delete_entry(flow) : conntrack_->update_mark(flow, mark);
        if (!applied) {
            log_->error("cut_over_failed connection={} error=\"{}\"", change.id,
                        applied.error().message());
        }
    }
}

void Daemon::set_up_attribution() {
    if (options_.attribution == AttributionMode::Off) {
        log_->info("attribution=off (connections carry no process)");
        return;
    }
    if (options_.attribution == AttributionMode::Auto) {
        // A private cgroup2 mount, if any, goes at the end of this block: the attached
        // programs hold the cgroup, not the mount.
        auto cgroup = bpf_cgroup_for(options_);
        auto records = cgroup ? state::bpf::SocketOwnerRecords::load(cgroup->path)
                              : Result<std::unique_ptr<state::bpf::SocketOwnerRecords>>(
                                    std::unexpected(cgroup.error()));
        if (records) {
            kernel_records_ = std::move(*records);
            log_->info("attribution_ebpf cgroup={} private_mount={} exec_records={}",
                       cgroup->path.string(), cgroup->private_mount != nullptr,
                       kernel_records_->has_exec_records());
            if (kernel_records_->udp_sender_fd() >= 0) {
                udp_senders_descriptor_ = std::make_unique<asio::posix::stream_descriptor>(
                    io_, kernel_records_->udp_sender_fd());
            }
            if (!kernel_records_->has_exec_records()) {
                log_->warn(
                    "attribution_exec_records_unavailable (the kernel refused the exec "
                    "tracepoints: processes that exit before their first packet is read are "
                    "known by PID only)");
            }
        } else {
            log_->warn(
                "attribution_ebpf_unavailable error=\"{}\" (falling back to socket tables: "
                "slower, and short-lived senders may stay unidentified)",
                records.error().message());
        }
    }
    if (auto diag = state::SockDiagSocketTable::open()) {
        sockets_ = std::move(*diag);
        socket_table_name_ = "sock_diag";
    } else {
        log_->warn("attribution_sock_diag_unavailable error=\"{}\" (using /proc/net)",
                   diag.error().message());
        sockets_ = std::make_unique<state::ProcNetSocketTable>("/proc");
        socket_table_name_ = "proc_net";
    }
    inode_owners_ = std::make_unique<process::InodePidIndex>("/proc", clock_);
    processes_ = std::make_unique<process::ProcessRegistry>("/proc", clock_);
    // One full scan now, so that sockets of processes already running are cache hits later
    // instead of stalls on the event loop.
    const std::size_t scanned = inode_owners_->scan_new_processes();
    attributor_ = std::make_unique<network::ProcessAttributor>(
        network::AttributionSources{.kernel_records = kernel_records_.get(),
                                    .sockets = sockets_.get(),
                                    .inode_owners = inode_owners_.get(),
                                    .processes = processes_.get()});
    log_->info("attribution={} ebpf={} socket_table={} processes_indexed={}",
               options_.attribution == AttributionMode::Auto ? "auto" : "tables",
               kernel_records_ != nullptr, socket_table_name_, scanned);
}

Status Daemon::set_up_dns() {
    const auto& endpoints = config_.filter.dns.nameserver_endpoints;
    if (endpoints.empty()) {
        log_->info("dns=off (no dns/listenAddress: DNS is not intercepted)");
        return {};
    }
    upstreams_ = config_.dns.nameservers;
    upstreams_source_ = "config";
    if (upstreams_.empty()) {
        upstreams_ = dns::upstreams_from_resolv_conf(read_text_file("/etc/resolv.conf"));
        upstreams_source_ = "resolv.conf";
        if (upstreams_.empty()) {
            return fail(
                "no upstream nameserver: dns/nameservers is not set and /etc/resolv.conf names "
                "none that is not local (set dns/nameservers, e.g. [\"dns://192.0.2.53\"] or "
                "[\"dot://dns.example?ip=192.0.2.53\"])");
        }
    }
    dns::ResolverOptions resolver_options;
    resolver_options.upstreams = upstreams_;
    auto resolver = dns::Resolver::create(io_, std::move(resolver_options), clock_);
    if (!resolver) {
        return std::unexpected(resolver.error()); // names dns/nameservers itself
    }
    resolver_ = std::move(*resolver);
    dns_policy_ = std::make_unique<network::DnsQueryPolicy>(
        *store_, dns_clients_, attributor_.get(), domain_memory_, *events_, clock_);
    dns_policy_->set_pause(pause_);
    // Issue 10: "localhost" on a host without IPv6 is 127.0.0.17 alone; enough descriptors for a
    // full TCP table.
    const config::HostListenEndpoints fitted =
        config::fit_listen_endpoints_to_host(endpoints, config::probe_ipv6_loopback());
    std::vector<dns::ListenEndpoint> listen;
    for (const firewall::IpEndpoint& endpoint : fitted.left_out) {
        log_->info(
            "dns_listen_ipv4_only left_out={} (this host has no ::1, IPv6 is disabled: "
            "the nameserver listens on IPv4 alone)",
            dns::to_string({.address = endpoint.address, .port = endpoint.port}));
    }
    listen.reserve(fitted.bind.size());
    for (const firewall::IpEndpoint& endpoint : fitted.bind) {
        listen.push_back({.address = endpoint.address, .port = endpoint.port});
    }
    log_descriptor_limit(*log_, dns::descriptors_wanted(dns::TcpLimits{}));
    auto nameserver = dns::Nameserver::start(io_, listen, *resolver_, *dns_policy_);
    if (!nameserver) {
        const std::string hint =
            config::listen_failure_hint(nameserver.error().reason, "dns/listenAddress");
        return fail("nameserver: " + nameserver.error().message() +
                    (hint.empty() ? "" : " (" + hint + ")"));
    }
    nameserver_ = std::move(*nameserver);
    processor_->enable_dns(dns_clients_, domain_memory_);
    if (options_.resolved_monitor) {
        resolved_monitor_ = std::make_unique<dns::ResolvedMonitor>(
            io_, *options_.resolved_monitor, [this](const dns::MonitoredAnswer& answer) {
                for (const IpAddress& address : answer.addresses) {
                    domain_memory_.record(dns::IpDomainMemory::kGlobalScope, address, answer.name,
                                          answer.cname_chain, std::chrono::seconds(answer.ttl),
                                          clock_.now());
                }
            });
        resolved_monitor_->start();
    }
    std::string names;
    for (const auto& upstream : upstreams_) {
        names += (names.empty() ? "" : ",") + upstream.url;
    }
    std::string where;
    for (const auto& endpoint : listen) {
        where += (where.empty() ? "" : ",") + dns::to_string(endpoint);
    }
    log_->info("dns listen={} upstreams={} from={}", where, names, upstreams_source_);
    return {};
}

nlohmann::ordered_json Daemon::dns_json() const {
    if (!nameserver_) {
        return {{"enabled", false}};
    }
    nlohmann::ordered_json listen = nlohmann::json::array();
    for (const auto& endpoint : nameserver_->endpoints()) { // bound: without ::1 if IPv6 is off
        listen.push_back(dns::to_string(endpoint));
    }
    nlohmann::ordered_json upstreams = nlohmann::json::array();
    for (const auto& upstream : upstreams_) {
        upstreams.push_back(upstream.url);
    }
    return {{"enabled", true},
            {"listen", listen},
            {"nameservers", upstreams},
            {"nameserversFrom", upstreams_source_},
            {"resolvedMonitor", options_.resolved_monitor
                                    ? nlohmann::ordered_json(options_.resolved_monitor->string())
                                    : nlohmann::ordered_json(nullptr)}};
}

nlohmann::ordered_json Daemon::dns_stats_json() const {
    if (!nameserver_) {
        return nullptr;
    }
    const auto& server = nameserver_->counters();
    const auto& resolver = resolver_->counters();
    const auto& cache = resolver_->cache_counters();
    const auto& policy = dns_policy_->counters();
    nlohmann::ordered_json stats = {
        {"udpQueries", server.udp_queries},
        {"tcpQueries", server.tcp_queries},
        {"malformed", server.malformed},
        {"dropped", server.dropped},
        {"cacheAnswers", server.cache_answers},
        {"upstreamAnswers", server.upstream_answers},
        {"policyAnswers", server.policy_answers},
        {"servfail", server.servfail},
        {"sendErrors", server.send_errors},
        {"tcpConnections", server.tcp_connections},
        {"tcpRefused", server.tcp_refused},
        {"tcpClientRefused", server.tcp_client_refused},
        {"tcpEvictions", server.tcp_evictions},
        {"tcpClientEvictions", server.tcp_client_evictions},
        {"tcpIdleCloses", server.tcp_idle_closes},
        {"tcpLifetimeCloses", server.tcp_lifetime_closes},
        {"upstreamQueries", resolver.upstream_queries},
        {"merged", resolver.merged},
        {"timeouts", resolver.timeouts},
        {"failovers", resolver.failovers},
        {"tcpFallbacks", resolver.tcp_fallbacks},
        {"failures", resolver.failures},
        {"mismatched", resolver.mismatched},
        {"cacheEntries", resolver_->cache_size()},
        {"cacheHits", cache.hits},
        {"cacheMisses", cache.misses},
        {"askersByDirectory", policy.by_directory},
        {"askersByLookup", policy.by_lookup},
        {"blocked", policy.blocked},
        {"addressesRecorded", policy.recorded},
        {"domainMemoryEntries", domain_memory_.size()},
    };
    if (resolved_monitor_) {
        const auto& monitor = resolved_monitor_->counters();
        stats["resolvedConnections"] = monitor.connections;
        stats["resolvedAnswers"] = monitor.answers;
        stats["resolvedMalformed"] = monitor.malformed;
    }
    return stats;
}

nlohmann::ordered_json Daemon::attribution_json() const {
    const char* mode = "off";
    if (attributor_) {
        mode = options_.attribution == AttributionMode::Auto ? "auto" : "tables";
    }
    return {{"mode", mode},
            {"ebpf", kernel_records_ != nullptr},
            {"execRecords", kernel_records_ != nullptr && kernel_records_->has_exec_records()},
            {"socketTable", socket_table_name_}};
}

nlohmann::ordered_json Daemon::attribution_stats_json() const {
    const auto& processor = processor_->counters();
    nlohmann::ordered_json stats = {{"deferred", processor.deferred},
                                    {"retries", processor.retries},
                                    {"retryFound", processor.retry_found},
                                    {"retryGaveUp", processor.retry_gave_up}};
    if (attributor_) {
        const auto& counters = attributor_->counters();
        stats["lookups"] = counters.lookups;
        stats["byKernelRecord"] = counters.by_kernel_record;
        stats["byExecRecord"] = counters.by_exec_record;
        stats["bySocketTable"] = counters.by_socket_table;
        stats["pidOnly"] = counters.pid_only;
        stats["kernelSockets"] = counters.kernel_sockets;
        stats["noSocket"] = counters.no_socket;
        stats["noProcess"] = counters.no_process;
        stats["socketErrors"] = counters.socket_errors;
        stats["remoteOnlyHints"] = counters.remote_only_hints;
        stats["staleUdpRecords"] = counters.stale_udp_records;
        stats["newUdpOwners"] = processor.new_udp_owners;
        stats["udpSenderReportsLost"] =
            kernel_records_ ? kernel_records_->udp_senders_lost() : std::uint64_t{0};
        const auto& registry = processes_->counters();
        stats["processLookups"] = registry.lookups;
        stats["processCacheHits"] = registry.cache_hits;
        stats["processLoads"] = registry.loads;
        const auto& index = inode_owners_->counters();
        stats["inodeLookups"] = index.lookups;
        stats["inodeCacheHits"] = index.cache_hits;
        stats["procListings"] = index.proc_listings;
    }
    return stats;
}

Status Daemon::bind_queues() {
    for (const QueueSpec& spec : kQueues) {
        auto queue = interception::NfQueue::open({.queue_number = spec.number});
        if (!queue) {
            // The kernel answers EPERM, not EBUSY, when another socket holds the queue; with
            // CAP_NET_ADMIN that is the only reason left (issue 10 item 7).
            if (queue.error().reason.value() == EPERM && has_net_admin()) {
                return fail("bind nfqueue " + std::to_string(spec.number) +
                                ": the queue is in use by another program (a second portwarden, "
                                "or another NFQUEUE user: stop it first)",
                            queue.error().reason);
            }
            return std::unexpected(queue.error());
        }
        QueueBinding binding;
        binding.direction = spec.direction;
        binding.descriptor = std::make_unique<asio::posix::stream_descriptor>(io_, (*queue)->fd());
        binding.backoff = std::make_unique<asio::steady_timer>(io_);
        binding.keeper = std::make_unique<interception::QueueKeeper>(
            spec.number, std::move(*queue),
            [number = spec.number]() -> Result<std::unique_ptr<interception::PacketQueue>> {
                auto reopened = interception::NfQueue::open({.queue_number = number});
                if (!reopened) {
                    return std::unexpected(reopened.error());
                }
                return std::move(*reopened);
            });
        queues_.push_back(std::move(binding));
    }
    queues_with_deferred_verdicts_.assign(queues_.size(), false);
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
    wait_for_stop_signal();
    wait_for_control_signals();
    for (QueueBinding& binding : queues_) {
        wait_for_packets(binding);
    }
    schedule_expiry();
    wait_for_conntrack_ends();
    wait_for_udp_senders();
    watcher_.start();
    io_.run();
}

void Daemon::wait_for_stop_signal() {
    signals_.async_wait([this](const boost::system::error_code& error, int signal_number) {
        if (!error) {
            log_->info("stopping signal={}", signal_number);
            io_.stop();
        }
    });
}

void Daemon::wait_for_control_signals() {
    control_signals_.async_wait([this](const boost::system::error_code& error, int signal_number) {
        if (error) {
            return;
        }
        control_signal(signal_number);
        wait_for_control_signals();
    });
}

// What the signals that do not stop the daemon do (docs/operations.md). None is fatal: the
// default action of each would end the daemon and leave its rules behind, and every new
// connection of the host would then be dropped.
void Daemon::control_signal(int signal_number) {
    switch (signal_number) {
        case SIGHUP:
            // Log rotation. The config file is not read again: its keys are fixed while the
            // daemon runs (README, "Configuration"); runtime changes go through the API.
            log_->info("signal=HUP log rotation (the config file is not re-read)");
            reopen_events();
            return;
        case SIGUSR1:
            log_->info("signal=USR1 writing a stats event");
            write_lifecycle(stats_json());
            events_->flush();
            return;
        case SIGUSR2:
            log_->info("signal=USR2 checking the kernel rules now");
            watcher_.check_now();
            return;
        default:
            log_->info("signal={} ignored", signal_number);
            return;
    }
}

// SIGHUP: the events file is reopened, so that a file that logrotate moved away is let go and a
// new one created. Filtering goes on whatever happens to the events.
void Daemon::reopen_events() {
    if (lifecycle_writer_ == nullptr) {
        return; // no --events
    }
    if (auto reopened = lifecycle_writer_->reopen(); !reopened) {
        log_->error("events_reopen_failed error=\"{}\"", reopened.error().message());
        return;
    }
    log_->info("events_reopened");
}

void Daemon::rules_checked(const std::vector<interception::RuleCheck>& checks) {
    ++rule_counters_.checks;
    bool intact = true;
    for (const interception::RuleCheck& check : checks) {
        const bool v4 = check.family == IpFamily::V4;
        auto& missing = enforcement_missing_[v4 ? 0 : 1];
        if (check.problem.empty()) {
            missing = false;
            continue;
        }
        intact = false;
        ++rule_counters_.changes;
        const char* family = v4 ? "ipv4" : "ipv6";
        nlohmann::ordered_json event = {{"event", "rules"},
                                        {"time", network::utc_timestamp_now()},
                                        {"family", family},
                                        {"problem", check.problem},
                                        // Decisions since then may not have been enforced.
                                        {"lastIntact", last_intact_check_}};
        if (check.repair) {
            ++rule_counters_.restored;
            missing = false;
            event["action"] = "restored";
            log_->warn(
                "rules_changed family={} problem=\"{}\" action=restored (changed by another "
                "program: decisions since {} may not have been enforced)",
                family, check.problem, last_intact_check_);
        } else {
            ++rule_counters_.restore_failures;
            missing = true;
            event["action"] = "restoreFailed";
            event["error"] = check.repair.error().message();
            log_->error(
                "rules_changed family={} problem=\"{}\" action=restore_failed error=\"{}\" "
                "(the kernel does NOT enforce the decisions; retrying)",
                family, check.problem, check.repair.error().message());
        }
        write_lifecycle(event.dump());
    }
    events_->flush();
    if (intact || std::ranges::none_of(enforcement_missing_, [](bool flag) { return flag; })) {
        last_intact_check_ = network::utc_timestamp_now();
    }
}

nlohmann::ordered_json Daemon::rules_stats_json() const {
    return {
        {"checks", rule_counters_.checks},
        {"changes", rule_counters_.changes},
        {"restored", rule_counters_.restored},
        {"restoreFailures", rule_counters_.restore_failures},
        {"enforced", std::ranges::none_of(enforcement_missing_, [](bool flag) { return flag; })}};
}

void Daemon::wait_for_packets(QueueBinding& binding) {
    binding.descriptor->async_wait(
        asio::posix::stream_descriptor::wait_read,
        [this, &binding](const boost::system::error_code& error) {
            if (!error) {
                on_readable(binding);
            } else if (error != asio::error::operation_aborted) {
                // A socket the event loop cannot wait on is as dead as one that fails to read.
                queue_failed(binding, Error{.what = "wait on nfqueue " +
                                                    std::to_string(binding.keeper->queue_number()),
                                            .reason = std::error_code(error.value(),
                                                                      std::system_category())});
            }
        });
}

void Daemon::on_readable(QueueBinding& binding) {
    const packet::Direction direction = binding.direction;
    const std::uint32_t queue_index =
        queue_ref(static_cast<std::uint32_t>(&binding - queues_.data()), binding.generation);
    const auto drained = binding.keeper->queue()->drain(
        [this, direction,
         queue_index](const interception::QueuedPacket& packet) -> std::optional<std::uint32_t> {
            return processor_->handle(direction, packet.bytes,
                                      {.queue = queue_index, .packet_id = packet.packet_id});
        });
    events_->flush();
    schedule_retries();
    if (drained) {
        binding.keeper->drained();
        wait_for_packets(binding);
        return;
    }
    queue_failed(binding, drained.error());
}

// Issue 10 item 9: a queue socket that keeps failing is replaced (the original's outage #110:
// one queue died silently, and its packets were dropped from then on). Reported as a log line,
// a "queue" event, the status's queueStates and the stats' counters.
void Daemon::queue_failed(QueueBinding& binding, const Error& error) {
    const auto outcome = binding.keeper->queue_failed(
        error, [&binding] { static_cast<void>(binding.descriptor->release()); });
    switch (outcome) {
        case interception::QueueKeeper::Outcome::Retry:
            // The kernel keeps the packets queued (or drops them: fail-closed); try again
            // shortly rather than spinning on a broken socket.
            log_->error("queue_error queue={} error=\"{}\"", binding.keeper->queue_number(),
                        error.message());
            binding.backoff->expires_after(kQueueErrorBackoff);
            binding.backoff->async_wait([this, &binding](const boost::system::error_code& wait) {
                if (!wait) {
                    wait_for_packets(binding);
                }
            });
            return;
        case interception::QueueKeeper::Outcome::Reopened:
            queue_reopened(binding);
            return;
        case interception::QueueKeeper::Outcome::Closed:
            log_->error(
                "queue_closed queue={} error=\"{}\" (its packets are dropped until it is bound "
                "again; retrying)",
                binding.keeper->queue_number(), binding.keeper->last_error());
            write_queue_event(binding, "closed");
            schedule_reopen(binding);
            return;
    }
}

void Daemon::schedule_reopen(QueueBinding& binding) {
    binding.backoff->expires_after(binding.keeper->retry_delay());
    binding.backoff->async_wait([this, &binding](const boost::system::error_code& error) {
        if (error) {
            return;
        }
        if (binding.keeper->try_reopen()) {
            queue_reopened(binding);
            return;
        }
        log_->warn("queue_reopen_failed queue={} error=\"{}\" retry_in_ms={}",
                   binding.keeper->queue_number(), binding.keeper->last_error(),
                   binding.keeper->retry_delay().count());
        schedule_reopen(binding);
    });
}

void Daemon::queue_reopened(QueueBinding& binding) {
    ++binding.generation;
    binding.descriptor =
        std::make_unique<asio::posix::stream_descriptor>(io_, binding.keeper->queue()->fd());
    log_->warn("queue_reopened queue={} after=\"{}\" reopened={}", binding.keeper->queue_number(),
               binding.keeper->last_error(), binding.keeper->counters().reopened);
    write_queue_event(binding, "reopened");
    wait_for_packets(binding);
}

void Daemon::write_queue_event(const QueueBinding& binding, std::string_view state) {
    const nlohmann::ordered_json event = {{"event", "queue"},
                                          {"time", network::utc_timestamp_now()},
                                          {"queue", binding.keeper->queue_number()},
                                          {"state", state},
                                          {"error", binding.keeper->last_error()},
                                          {"reopened", binding.keeper->counters().reopened}};
    write_lifecycle(event.dump());
    events_->flush();
}

nlohmann::json Daemon::queue_states_json() const {
    nlohmann::json states = nlohmann::json::array();
    for (const QueueBinding& binding : queues_) {
        const auto& counters = binding.keeper->counters();
        states.push_back(
            {{"queue", binding.keeper->queue_number()},
             {"state", binding.keeper->state() == interception::QueueKeeper::State::Open
                           ? "open"
                           : "closed"},
             {"failures", counters.failures},
             {"reopened", counters.reopened},
             {"lastError", binding.keeper->last_error()}});
    }
    return states;
}

void Daemon::schedule_expiry() {
    expiry_timer_.expires_after(kExpiryInterval);
    expiry_timer_.async_wait([this](const boost::system::error_code& error) {
        if (error) {
            return;
        }
        processor_->expire_connections();
        prompts_->expire();
        if (pause_.ended_by(std::chrono::system_clock::now())) {
            static_cast<void>(set_pause(std::nullopt));
        }
        ticks_ = (ticks_ + 1) % kStatisticsFlushTicks;
        store_->tick(ticks_ == 0 ? profile::SettingsStore::FlushStatistics::Yes
                                 : profile::SettingsStore::FlushStatistics::No);
        events_->flush();
        if (resolver_) {
            resolver_->expire_cache();
        }
        if (clock_.now() >= next_process_expiry_) {
            if (processes_) {
                processes_->expire();
            }
            domain_memory_.expire(clock_.now());
            dns_clients_.expire(clock_.now());
            next_process_expiry_ = clock_.now() + kProcessExpiryInterval;
            trim_heap_after_api_use();
        }
        schedule_expiry();
    });
}

void Daemon::trim_heap_after_api_use() {
    const std::uint64_t requests = api_server_ ? api_server_->counters().requests : 0;
    if (requests == api_requests_at_trim_ && heap_trimmed_once_) {
        return;
    }
    if (live_.size() >= kTrimBelowLiveConnections) {
        return; // later, when the load has passed
    }
    trim_free_heap();
    api_requests_at_trim_ = requests;
    heap_trimmed_once_ = true;
}

void Daemon::schedule_retries() {
    const auto due = processor_->next_retry_at();
    if (!due || retry_timer_armed_) {
        return;
    }
    retry_timer_armed_ = true;
    retry_timer_.expires_at(*due);
    retry_timer_.async_wait([this](const boost::system::error_code& error) {
        retry_timer_armed_ = false;
        if (error) {
            return;
        }
        processor_->run_due_retries();
        events_->flush();
        schedule_retries();
    });
}

void Daemon::verdict(network::PacketRef packet, std::uint32_t mark) {
    // A queue closed since the packet came took the packet with it.
    const std::uint32_t index = packet.queue & kQueueIndexMask;
    const QueueBinding& binding = queues_[index];
    interception::PacketQueue* queue = binding.keeper->queue();
    if (queue == nullptr || packet.queue != queue_ref(index, binding.generation)) {
        return;
    }
    queue->queue_verdict(packet.packet_id, mark);
    queues_with_deferred_verdicts_[index] = true;
}

void Daemon::flush() {
    for (std::size_t index = 0; index < queues_.size(); ++index) {
        if (!queues_with_deferred_verdicts_[index]) {
            continue;
        }
        queues_with_deferred_verdicts_[index] = false;
        interception::PacketQueue* queue = queues_[index].keeper->queue();
        if (queue == nullptr) {
            continue;
        }
        if (auto sent = queue->flush_verdicts(); !sent) {
            log_->error("deferred_verdicts_failed queue={} error=\"{}\"", queue->queue_number(),
                        sent.error().message());
        }
    }
}

bool Daemon::stop() {
    // A check in progress ends first: the rule set is ours again afterwards.
    watcher_.stop();
    // Packets held for attribution get their verdict while the queues are still bound.
    processor_->decide_all_waiting();
    // Rules first: while they exist, packets nobody answers are dropped.
    bool rules_left = false;
    for (const auto& outcome : rules_.remove()) {
        if (outcome.status) {
            continue;
        }
        const bool v4 = outcome.family == IpFamily::V4;
        // IPv6 rules that were never installed (no ip6tables, IPv6 disabled) cannot be left.
        if (!v4 && !ipv6_rules_) {
            continue;
        }
        rules_left = true;
        log_->error(
            "rules_remove_failed family={} error=\"{}\" (new connections are dropped until "
            "`portwarden iptables remove` succeeds)",
            v4 ? "ipv4" : "ipv6", outcome.status.error().message());
    }
    forget_remembered_verdicts();
    if (api_server_) {
        api_server_->stop();
    }
    // The nameserver last: until the rules are gone, DNS queries are sent to it.
    if (nameserver_) {
        nameserver_->stop();
    }
    if (resolved_monitor_) {
        resolved_monitor_->stop();
    }
    if (resolver_) {
        resolver_->shut_down();
    }
    write_lifecycle(stats_json());
    // What the store gathered since its last flush (rule statistics, last-seen times).
    store_->tick(profile::SettingsStore::FlushStatistics::Yes);
    database_->flush();
    if (conntrack_ends_descriptor_) {
        static_cast<void>(conntrack_ends_descriptor_->release());
    }
    if (udp_senders_descriptor_) {
        static_cast<void>(udp_senders_descriptor_->release()); // libbpf closes it
    }
    for (QueueBinding& binding : queues_) {
        // The queue owns the fd; the descriptor must not close it a second time.
        static_cast<void>(binding.descriptor->release());
    }
    queues_.clear();
    log_->info("stopped packets={} connections={} malformed={} rules_left={}",
               processor_->counters().packets, processor_->counters().connections,
               processor_->counters().malformed, rules_left);
    return !rules_left;
}

std::string Daemon::stats_json() const {
    const auto& counters = processor_->counters();
    interception::QueueCounters queues;
    std::uint64_t queue_failures = 0;
    std::uint64_t queue_reopens = 0;
    for (const QueueBinding& binding : queues_) {
        queue_failures += binding.keeper->counters().failures;
        queue_reopens += binding.keeper->counters().reopened;
        const auto queue = binding.keeper->queue_counters();
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
        {"queueFailures", queue_failures},
        {"queueReopens", queue_reopens},
        {"attribution", attribution_stats_json()},
        {"dns", dns_stats_json()},
        {"rules", rules_stats_json()},
        {"events", lifecycle_writer_ != nullptr ? lifecycle_writer_->counters_json() : nullptr},
    };
    return stats.dump();
}

void Daemon::write_lifecycle(const std::string& json) {
    if (lifecycle_writer_ != nullptr) {
        lifecycle_writer_->write_line(json);
    }
}

} // namespace

interception::RedirectTargets redirect_targets(const config::Config& config) {
    interception::RedirectTargets targets{.nameserver_v4 = "", .nameserver_v6 = ""};
    for (const firewall::IpEndpoint& endpoint : config.filter.dns.nameserver_endpoints) {
        std::string& target =
            endpoint.address.is_v4() ? targets.nameserver_v4 : targets.nameserver_v6;
        if (target.empty()) {
            target = dns::to_string(
                dns::ListenEndpoint{.address = endpoint.address, .port = endpoint.port});
        }
    }
    return targets;
}

Status check_config_path(const std::filesystem::path& path) {
    struct stat status{};
    if (::stat(path.c_str(), &status) != 0) {
        if (errno == ENOENT) {
            return {}; // the loader names the missing file
        }
        return fail_errno(path.string(), errno);
    }
    if (!S_ISREG(status.st_mode)) {
        // A FIFO would block the start forever, a directory or device make no sense.
        return fail(path.string() + ": not a regular file (the config must be a JSON file)");
    }
    return {};
}

void ignore_fatal_signals() {
    // Signals whose default action ends the process and that the event loop does not handle:
    // ignored. Writing to a closed pipe (--events - | head) then fails with EPIPE instead.
    // SIGINT/SIGTERM/SIGQUIT (stop) and SIGHUP/SIGUSR1/SIGUSR2/SIGALRM are handled by the
    // daemon's signal sets; faults (SIGSEGV, SIGABRT ...) still end it, and the systemd unit
    // removes the rules after that.
    for (const int signal_number :
         {SIGPIPE, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT, SIGXCPU, SIGXFSZ}) {
        static_cast<void>(std::signal(signal_number, SIG_IGN));
    }
    for (int signal_number = SIGRTMIN; signal_number <= SIGRTMAX; ++signal_number) {
        static_cast<void>(std::signal(signal_number, SIG_IGN));
    }
}

int run(const RunOptions& options) {
    const auto log = log::get("daemon");
    ignore_fatal_signals();
    config::Config config;
    if (options.config_path) {
        if (auto regular = check_config_path(*options.config_path); !regular) {
            log->error("config_refused {}", regular.error().message());
            return kExitBadConfig;
        }
        auto loaded = config::load_config_file(*options.config_path);
        if (!loaded) {
            log->error("config_refused {}", loaded.error().message());
            return kExitBadConfig;
        }
        config = std::move(*loaded);
    }
    // A cgroup the user named must exist: falling back to the socket tables behind their back
    // would hide a typo. (Failing to *load* eBPF there is a warning, see set_up_attribution.)
    if (options.attribution == AttributionMode::Auto && options.bpf_cgroup) {
        if (auto cgroup = state::bpf::resolve_cgroup2_directory(*options.bpf_cgroup); !cgroup) {
            log->error("bpf_cgroup_refused --bpf-cgroup {}", cgroup.error().message());
            return kExitBadConfig;
        }
    }
    if (::geteuid() != 0) {
        log->error(
            "not_root: portwarden run needs root (CAP_NET_ADMIN) to bind NFQUEUE and "
            "install iptables rules");
        return kExitFailure;
    }

    // The events writer's clock (repeat windows, rate of failure logs); outlives the daemon.
    const SteadyClock events_clock;
    std::unique_ptr<network::EventSink> events;
    network::JsonLinesEventWriter* lifecycle_writer = nullptr;
    if (options.events_target) {
        auto writer = network::JsonLinesEventWriter::open(
            *options.events_target, event_writer_options(config.events), events_clock);
        if (!writer) {
            log->error("events_failed {}", writer.error().message());
            return kExitFailure;
        }
        lifecycle_writer = writer->get();
        events = std::move(*writer);
    } else {
        events = std::make_unique<network::NullEventSink>();
    }

    Daemon daemon(std::move(config), std::move(events), lifecycle_writer, options);
    if (auto started = daemon.start(); !started) {
        log->error("start_failed {}", started.error().message());
        return kExitFailure;
    }
    daemon.serve();
    return daemon.stop() ? kExitOk : kExitRulesLeft;
}

} // namespace pw::daemon
