#include "network/event_writer.h"

#include <chrono>
#include <csignal>
#include <ctime>
#include <utility>

#include "common/log.h"
#include "dns/message.h"
#include "packet/packet_info.h"

namespace pw::network {
namespace {

void append_endpoint(std::string& out, std::string_view name, const IpAddress& address,
                     std::uint16_t port) {
    std::array<char, IpAddress::kMaxTextLength> buffer{};
    out += '"';
    out += name;
    out += R"(":{"ip":")";
    out += address.format(buffer);
    out += R"(","port":)";
    out += std::to_string(port);
    out += '}';
}

void append_process(std::string& out, const firewall::ProcessFacts& process) {
    out += R"(,"process":{"kind":)";
    append_json_string(out, firewall::process_kind_name(process.kind));
    out += R"(,"pid":)";
    out += std::to_string(process.pid);
    out += R"(,"parentPid":)";
    out += std::to_string(process.parent_pid);
    out += R"(,"executable":)";
    append_json_string(out, process.executable);
    out += R"(,"identity":)";
    append_json_string(out, process.identity);
    out += R"(,"uid":)";
    out += std::to_string(process.uid);
    out += R"(,"user":)";
    append_json_string(out, process.user);
    out += R"(,"tags":[)";
    for (std::size_t index = 0; index < process.tags.size(); ++index) {
        if (index > 0) {
            out += ',';
        }
        append_json_string(out, process.tags[index]);
    }
    out += R"(],"source":)";
    append_json_string(out, process.source);
    out += '}';
}

void append_domain(std::string& out, const firewall::DomainFacts& domain) {
    out += R"(,"domain":)";
    append_json_string(out, domain.domain);
    out += R"(,"cnames":[)";
    for (std::size_t index = 0; index < domain.cname_chain.size(); ++index) {
        if (index > 0) {
            out += ',';
        }
        append_json_string(out, domain.cname_chain[index]);
    }
    out += ']';
}

void append_profile(std::string& out, const firewall::ProfileLabel& profile) {
    out += R"(,"profile":{"id":)";
    append_json_string(out, profile.id);
    out += R"(,"name":)";
    append_json_string(out, profile.name);
    out += '}';
}

std::string_view prompt_action(profile::PromptEvent event) {
    switch (event) {
        case profile::PromptEvent::Opened:
            return "opened";
        case profile::PromptEvent::Answered:
            return "answered";
        case profile::PromptEvent::Expired:
            break;
    }
    return "expired";
}

std::string_view target_name(profile::PromptTarget target) {
    switch (target) {
        case profile::PromptTarget::Domain:
            return "domain";
        case profile::PromptTarget::DomainAndSubdomains:
            return "zone";
        case profile::PromptTarget::Address:
            return "ip";
        case profile::PromptTarget::LocalPort:
            break;
    }
    return "port";
}

// Keys of the repeat aggregation are the fields joined by a separator that no field holds as
// such (control characters in free text are rare, and a collision only merges two summaries).
void add_key_part(std::string& key, std::string_view part) {
    key += part;
    key += '\x1f';
}

// What makes two connection events "the same": everything but their ID, time, process ID and
// the ephemeral port (the local one of an outbound connection, the remote one of an inbound).
void connection_key(std::string& key, std::string_view event,
                    const firewall::ConnectionFacts& connection, const firewall::Decision* decision,
                    std::uint32_t mark) {
    std::array<char, IpAddress::kMaxTextLength> buffer{};
    key.clear();
    add_key_part(key, event);
    const bool outbound = connection.direction == packet::Direction::Outbound;
    add_key_part(key, outbound ? "o" : "i");
    add_key_part(key, std::to_string(connection.protocol));
    add_key_part(key, connection.local_address.format(buffer));
    add_key_part(key, connection.remote_address.format(buffer));
    add_key_part(key, std::to_string(outbound ? connection.remote_port : connection.local_port));
    add_key_part(key, std::to_string(connection.icmp_type));
    if (connection.process) {
        add_key_part(key, firewall::process_kind_name(connection.process->kind));
        add_key_part(key, connection.process->executable);
        add_key_part(key, connection.process->identity);
        add_key_part(key, std::to_string(connection.process->uid));
    }
    if (connection.domain) {
        add_key_part(key, connection.domain->domain);
    }
    add_key_part(key, connection.profile.id);
    if (decision != nullptr) {
        add_key_part(key, packet::verdict_name(decision->verdict));
        add_key_part(key, std::to_string(mark));
        add_key_part(key, decision->reason);
    }
}

// Two answers to the same question from the same asker are the same event, whatever the client
// port and the addresses (round-robin answers differ).
void dns_key(std::string& key, const DnsQueryEvent& query) {
    std::array<char, IpAddress::kMaxTextLength> buffer{};
    key.clear();
    add_key_part(key, "dns");
    add_key_part(key, query.protocol);
    add_key_part(key, query.client_address.format(buffer));
    add_key_part(key, query.name);
    add_key_part(key, std::to_string(query.type));
    add_key_part(key, query.rcode);
    add_key_part(key, query.source);
    add_key_part(key, query.reason);
    add_key_part(key, query.scope);
    if (query.process != nullptr) {
        add_key_part(key, query.process->executable);
        add_key_part(key, query.process->identity);
    }
    if (query.profile != nullptr) {
        add_key_part(key, query.profile->id);
    }
}

std::string_view state_name(EventFile::State state) {
    switch (state) {
        case EventFile::State::Writing:
            return "writing";
        case EventFile::State::Failing:
            return "failing";
        case EventFile::State::ReaderGone:
            break;
    }
    return "readerGone";
}

// A reader that leaves must be an EPIPE that EventFile handles, not a SIGPIPE that ends the
// daemon with its rules in place (issue 10 item 1). A handler that the process installed is
// left alone.
void ignore_sigpipe_unless_handled() {
    struct sigaction current{};
    if (::sigaction(SIGPIPE, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) {
        return;
    }
    struct sigaction ignore{};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    static_cast<void>(::sigaction(SIGPIPE, &ignore, nullptr));
}

} // namespace

Result<std::unique_ptr<JsonLinesEventWriter>> JsonLinesEventWriter::open(const std::string& target,
                                                                         Options options,
                                                                         const Clock& clock) {
    ignore_sigpipe_unless_handled();
    auto file = EventFile::open(target, options.rotation, clock);
    if (!file) {
        return std::unexpected(file.error());
    }
    return std::unique_ptr<JsonLinesEventWriter>(
        new JsonLinesEventWriter(std::move(*file), options.repeats, clock));
}

Result<std::unique_ptr<JsonLinesEventWriter>> JsonLinesEventWriter::open(
    const std::string& target) {
    // Stateless: one for every writer that is not given a clock.
    static const SteadyClock kSteadyClock;
    return open(target, Options{}, kSteadyClock);
}

JsonLinesEventWriter::~JsonLinesEventWriter() {
    // What the windows still hold would otherwise be lost with them.
    write_summaries(repeats_.take_all());
    file_->flush();
    const EventFileCounters& counters = file_->counters();
    if (counters.write_failures > 0 || counters.lines_dropped > 0) {
        // The final stats line may not have made it: say what was lost where it is seen.
        log::get("events")->warn(
            "events_closed target={} written={} dropped={} write_failures={} state={}",
            file_->target(), counters.lines_written, counters.lines_dropped,
            counters.write_failures, state_name(file_->state()));
    }
}

void JsonLinesEventWriter::emit() {
    if (!key_.empty()) {
        const std::string_view object(line_.data(), line_.size() - 1); // without its newline
        if (repeats_.admit(key_, object) == RepeatAggregator::Admission::Suppress) {
            return;
        }
    }
    file_->append(line_);
}

void JsonLinesEventWriter::write_summaries(
    const std::vector<RepeatAggregator::Summary>& summaries) {
    if (summaries.empty()) {
        return;
    }
    const auto wall_now = std::chrono::system_clock::now();
    const Clock::TimePoint now = clock_.now();
    std::string out;
    for (const RepeatAggregator::Summary& summary : summaries) {
        out.clear();
        out += R"({"event":"repeated","time":")";
        out += utc_timestamp(wall_now);
        out += R"(","count":)";
        out += std::to_string(summary.count);
        out += R"(,"windowSeconds":)";
        out += std::to_string(repeats_.limit().window.count());
        out += R"(,"lastTime":")";
        out += utc_timestamp(
            wall_now -
            std::chrono::duration_cast<std::chrono::system_clock::duration>(now - summary.last));
        out += R"(","like":)";
        out += summary.first_line;
        out += "}\n";
        file_->append(out);
        ++summaries_;
    }
}

void JsonLinesEventWriter::set_options(Options options) {
    const RepeatLimit current = repeats_.limit();
    if (current.count != options.repeats.count || current.window != options.repeats.window) {
        write_summaries(repeats_.take_all());
        repeats_.set_limit(options.repeats);
    }
    file_->set_rotation(options.rotation);
}

Status JsonLinesEventWriter::reopen() {
    return file_->reopen();
}

JsonLinesEventWriter::Counters JsonLinesEventWriter::counters() const {
    return Counters{
        .file = file_->counters(), .suppressed = repeats_.suppressed(), .summaries = summaries_};
}

nlohmann::ordered_json JsonLinesEventWriter::counters_json() const {
    const EventFileCounters& file = file_->counters();
    return {{"written", file.lines_written},
            {"writeFailures", file.write_failures},
            {"dropped", file.lines_dropped},
            {"rotations", file.rotations},
            {"rotationFailures", file.rotation_failures},
            {"reopens", file.reopens},
            {"repeatsSuppressed", repeats_.suppressed()},
            {"repeatSummaries", summaries_},
            {"state", state_name(file_->state())}};
}

void JsonLinesEventWriter::connection_new(std::uint64_t id,
                                          const firewall::ConnectionFacts& connection) {
    write_connection("new", id, connection, nullptr, 0);
}

void JsonLinesEventWriter::connection_decided(std::uint64_t id,
                                              const firewall::ConnectionFacts& connection,
                                              const firewall::Decision& decision,
                                              std::uint32_t mark) {
    write_connection("decided", id, connection, &decision, mark);
}

void JsonLinesEventWriter::write_connection(std::string_view event, std::uint64_t id,
                                            const firewall::ConnectionFacts& connection,
                                            const firewall::Decision* decision,
                                            std::uint32_t mark) {
    line_.clear();
    append_connection_event(line_, event, id, connection, decision, mark);
    line_ += '\n';
    connection_key(key_, event, connection, decision, mark);
    emit();
}

void append_connection_event(std::string& out, std::string_view event, std::uint64_t id,
                             const firewall::ConnectionFacts& connection,
                             const firewall::Decision* decision, std::uint32_t mark) {
    out += R"({"event":")";
    out += event;
    out += R"(","id":)";
    out += std::to_string(id);
    out += R"(,"time":")";
    out += utc_timestamp_now();
    out += R"(","protocol":")";
    out += protocol_name(connection.protocol);
    out += R"(","ipVersion":)";
    out += connection.ip_family == IpFamily::V4 ? "4" : "6";
    out += R"(,"direction":")";
    out += connection.direction == packet::Direction::Outbound ? "outbound" : "inbound";
    out += R"(",)";
    append_endpoint(out, "local", connection.local_address, connection.local_port);
    out += ',';
    append_endpoint(out, "remote", connection.remote_address, connection.remote_port);
    if (connection.protocol == packet::protocol::kIcmp ||
        connection.protocol == packet::protocol::kIcmpV6) {
        out += R"(,"icmpType":)";
        out += std::to_string(connection.icmp_type);
    }
    if (connection.process) {
        append_process(out, *connection.process);
    }
    if (connection.domain) {
        append_domain(out, *connection.domain);
    }
    if (!connection.profile.id.empty()) {
        append_profile(out, connection.profile);
    }
    if (decision != nullptr) {
        out += R"(,"verdict":")";
        out += packet::verdict_name(decision->verdict);
        out += R"(","mark":)";
        out += std::to_string(mark);
        out += R"(,"permanent":)";
        out += decision->persistence == packet::Persistence::Permanent ? "true" : "false";
        out += R"(,"reason":)";
        append_json_string(out, decision->reason);
    }
    out += '}';
}

void JsonLinesEventWriter::dns_query(const DnsQueryEvent& query) {
    line_.clear();
    append_dns_event(line_, query);
    line_ += '\n';
    dns_key(key_, query);
    emit();
}

void append_dns_event(std::string& out, const DnsQueryEvent& query) {
    out += R"({"event":"dns","time":")";
    out += utc_timestamp_now();
    out += R"(","protocol":")";
    out += query.protocol;
    out += R"(",)";
    append_endpoint(out, "client", query.client_address, query.client_port);
    out += R"(,"question":{"name":)";
    append_json_string(out, query.name);
    out += R"(,"type":")";
    out += dns::type_name(query.type);
    out += R"("},"rcode":")";
    out += query.rcode;
    out += R"(","answers":[)";
    for (std::size_t index = 0; index < query.answers.size(); ++index) {
        if (index > 0) {
            out += ',';
        }
        std::array<char, IpAddress::kMaxTextLength> buffer{};
        out += '"';
        out += query.answers[index].format(buffer);
        out += '"';
    }
    out += R"(],"cnames":[)";
    for (std::size_t index = 0; index < query.cnames.size(); ++index) {
        if (index > 0) {
            out += ',';
        }
        append_json_string(out, query.cnames[index]);
    }
    out += R"(],"source":")";
    out += query.source;
    out += R"(","upstream":)";
    append_json_string(out, query.upstream);
    out += R"(,"reason":)";
    append_json_string(out, query.reason);
    out += R"(,"scope":)";
    append_json_string(out, query.scope);
    if (query.process != nullptr) {
        append_process(out, *query.process);
    }
    if (query.profile != nullptr) {
        append_profile(out, *query.profile);
    }
    out += '}';
}

void JsonLinesEventWriter::prompt(profile::PromptEvent event, const profile::Prompt& prompt,
                                  const profile::PromptAnswer* answer) {
    line_.clear();
    append_prompt_event(line_, event, prompt, answer);
    line_ += '\n';
    // Prompts are few (one per held connection, capped) and each one matters.
    key_.clear();
    emit();
}

void append_prompt_event(std::string& out, profile::PromptEvent event,
                         const profile::Prompt& prompt, const profile::PromptAnswer* answer) {
    const profile::PromptSubject& subject = prompt.subject;
    out += R"({"event":"prompt","action":")";
    out += prompt_action(event);
    out += R"(","time":")";
    out += utc_timestamp_now();
    out += R"(","id":)";
    out += std::to_string(prompt.id);
    append_profile(out, subject.profile);
    out += R"(,"executable":)";
    append_json_string(out, subject.executable);
    out += R"(,"pid":)";
    out += std::to_string(subject.pid);
    out += R"(,"direction":")";
    out += subject.direction == packet::Direction::Outbound ? "outbound" : "inbound";
    out += R"(","protocol":")";
    out += protocol_name(subject.protocol);
    out += R"(","domain":)";
    append_json_string(out, subject.domain);
    out += ',';
    append_endpoint(out, "remote", subject.remote_address, subject.remote_port);
    out += R"(,"localPort":)";
    out += std::to_string(subject.local_port);
    out += R"(,"connections":)";
    out += std::to_string(prompt.connections);
    if (answer != nullptr) {
        out += R"(,"answer":{"verdict":")";
        out += answer->verdict == profile::PromptVerdict::Permit ? "permit" : "block";
        out += R"(","target":")";
        out += target_name(answer->target);
        out += R"(","for":")";
        out += profile::duration_text(*answer);
        out += R"("})";
    }
    out += '}';
}

void JsonLinesEventWriter::flush() {
    write_summaries(repeats_.take_due());
    file_->flush();
}

void JsonLinesEventWriter::write_line(std::string_view json_object) {
    line_.assign(json_object);
    line_ += '\n';
    file_->append(line_);
    file_->flush();
}

void append_json_string(std::string& out, std::string_view text) {
    static constexpr std::string_view kHex = "0123456789abcdef";
    out += '"';
    for (const char character : text) {
        const auto byte = static_cast<unsigned char>(character);
        if (character == '"' || character == '\\') {
            out += '\\';
            out += character;
        } else if (byte < 0x20) {
            out += "\\u00";
            out += kHex[byte >> 4U];
            out += kHex[byte & 0x0FU];
        } else {
            out += character;
        }
    }
    out += '"';
}

std::string utc_timestamp_now() {
    return utc_timestamp(std::chrono::system_clock::now());
}

std::string utc_timestamp(std::chrono::system_clock::time_point now) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    std::array<char, 32> buffer{};
    const std::size_t length =
        std::strftime(buffer.data(), buffer.size(), "%Y-%m-%dT%H:%M:%S", &utc);
    std::array<char, 8> fraction{};
    std::snprintf(fraction.data(), fraction.size(), ".%03dZ", static_cast<int>(millis));
    return std::string(buffer.data(), length) + fraction.data();
}

std::string protocol_name(std::uint8_t protocol) {
    switch (protocol) {
        case packet::protocol::kTcp:
            return "tcp";
        case packet::protocol::kUdp:
            return "udp";
        case packet::protocol::kIcmp:
            return "icmp";
        case packet::protocol::kIcmpV6:
            return "icmpv6";
        case packet::protocol::kUdpLite:
            return "udplite";
        case packet::protocol::kSctp:
            return "sctp";
        case packet::protocol::kIgmp:
            return "igmp";
        default:
            return std::to_string(protocol);
    }
}

} // namespace pw::network
