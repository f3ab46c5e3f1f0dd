#include "network/event_writer.h"

#include <cerrno>
#include <chrono>
#include <ctime>

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

} // namespace

Result<std::unique_ptr<JsonLinesEventWriter>> JsonLinesEventWriter::open(
    const std::string& target) {
    if (target == "-") {
        return std::unique_ptr<JsonLinesEventWriter>(new JsonLinesEventWriter(stdout, false));
    }
    std::FILE* file = std::fopen(target.c_str(), "ae");
    if (file == nullptr) {
        return fail_errno("open events file " + target, errno);
    }
    return std::unique_ptr<JsonLinesEventWriter>(new JsonLinesEventWriter(file, true));
}

JsonLinesEventWriter::~JsonLinesEventWriter() {
    std::fflush(file_);
    if (owns_file_) {
        std::fclose(file_);
    }
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
    std::string& out = line_;
    out.clear();
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
    out += "}\n";
    std::fwrite(out.data(), 1, out.size(), file_);
}

void JsonLinesEventWriter::dns_query(const DnsQueryEvent& query) {
    std::string& out = line_;
    out.clear();
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
    out += "}\n";
    std::fwrite(out.data(), 1, out.size(), file_);
}

void JsonLinesEventWriter::prompt(profile::PromptEvent event, const profile::Prompt& prompt,
                                  const profile::PromptAnswer* answer) {
    const profile::PromptSubject& subject = prompt.subject;
    std::string& out = line_;
    out.clear();
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
    out += "}\n";
    std::fwrite(out.data(), 1, out.size(), file_);
}

void JsonLinesEventWriter::flush() {
    std::fflush(file_);
}

void JsonLinesEventWriter::write_line(std::string_view json_object) {
    std::fwrite(json_object.data(), 1, json_object.size(), file_);
    std::fputc('\n', file_);
    std::fflush(file_);
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
