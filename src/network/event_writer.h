#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "network/event_sink.h"

namespace pw::network {

// Writes events as JSON lines, one self-contained object per line:
//   {"event":"decided","id":7,"time":"2026-11-22T11:40:00.123Z","protocol":"tcp","ipVersion":4,
//    "direction":"outbound","local":{"ip":"10.0.0.1","port":40000},
//    "remote":{"ip":"10.0.0.2","port":443},"verdict":"accept","mark":1710,"permanent":true,
//    "process":{...},"profile":{"id":"3f1c...","name":"curl"},
//    "reason":"default action: permit (global, profile 'curl')"}
// Buffered; flushed at the end of every packet batch so that a reader sees events promptly.
// Runs on the event-loop thread only.
class JsonLinesEventWriter final : public EventSink {
public:
    // "-" is standard output; anything else a file, appended to (created if missing).
    [[nodiscard]] static Result<std::unique_ptr<JsonLinesEventWriter>> open(
        const std::string& target);

    JsonLinesEventWriter(const JsonLinesEventWriter&) = delete;
    JsonLinesEventWriter& operator=(const JsonLinesEventWriter&) = delete;
    JsonLinesEventWriter(JsonLinesEventWriter&&) = delete;
    JsonLinesEventWriter& operator=(JsonLinesEventWriter&&) = delete;
    ~JsonLinesEventWriter() override;

    // network::EventSink
    void connection_new(std::uint64_t id, const firewall::ConnectionFacts& connection) override;
    void connection_decided(std::uint64_t id, const firewall::ConnectionFacts& connection,
                            const firewall::Decision& decision, std::uint32_t mark) override;
    // {"event":"dns","time":...,"protocol":"udp","client":{"ip":"127.0.0.1","port":40000},
    //  "question":{"name":"www.example.com","type":"A"},"rcode":"NOERROR",
    //  "answers":["192.0.2.1"],"cnames":[],"source":"cache","upstream":"dns://192.0.2.53:53",
    //  "reason":"","scope":"/usr/bin/curl","process":{...}}
    void dns_query(const DnsQueryEvent& query) override;
    // {"event":"prompt","action":"opened","time":...,"id":3,"profile":{"id":"...","name":"curl"},
    //  "executable":"/usr/bin/curl","pid":4242,"direction":"outbound","protocol":"tcp",
    //  "domain":"example.com","remote":{"ip":"203.0.113.5","port":443},"localPort":40000,
    //  "connections":1}; "answered" adds
    //  "answer":{"verdict":"permit","target":"domain","for":"always"}.
    void prompt(profile::PromptEvent event, const profile::Prompt& prompt,
                const profile::PromptAnswer* answer) override;
    void flush() override;

    // Writes one line that the caller formatted as a JSON object (lifecycle events, stats).
    void write_line(std::string_view json_object);

private:
    JsonLinesEventWriter(std::FILE* file, bool owns_file) : file_(file), owns_file_(owns_file) {}
    void write_connection(std::string_view event, std::uint64_t id,
                          const firewall::ConnectionFacts& connection,
                          const firewall::Decision* decision, std::uint32_t mark);

    std::FILE* file_;
    bool owns_file_;
    std::string line_; // reused for every event, so formatting does not allocate
};

// JSON string escaping for the few free-text fields (reasons, paths, names).
void append_json_string(std::string& out, std::string_view text);

// "2026-11-22T11:40:00.123Z" for now, UTC.
[[nodiscard]] std::string utc_timestamp_now();
[[nodiscard]] std::string utc_timestamp(std::chrono::system_clock::time_point time);

// "tcp", "udp", "icmp", "icmpv6", "udplite", "sctp", "igmp", or the number.
[[nodiscard]] std::string protocol_name(std::uint8_t protocol);

} // namespace pw::network
