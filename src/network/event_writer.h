#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/result.h"
#include "network/event_file.h"
#include "network/event_sink.h"
#include "network/repeat_aggregator.h"

namespace pw::network {

// Writes events as JSON lines, one self-contained object per line:
//   {"event":"decided","id":7,"time":"2026-11-22T11:40:00.123Z","protocol":"tcp","ipVersion":4,
//    "direction":"outbound","local":{"ip":"10.0.0.1","port":40000},
//    "remote":{"ip":"10.0.0.2","port":443},"verdict":"accept","mark":1710,"permanent":true,
//    "process":{...},"profile":{"id":"3f1c...","name":"curl"},
//    "reason":"default action: permit (global, profile 'curl')"}
// Buffered; flushed at the end of every packet batch so that a reader sees events promptly.
// The output (EventFile) survives a full disk and a reader that left, and rotates by size;
// "new", "decided" and "dns" events that repeat one another beyond `events/repeatLimit` per
// `events/repeatWindow` are summed up in one line:
//   {"event":"repeated","time":...,"count":2417,"windowSeconds":60,"lastTime":...,
//    "like":{...the first event left out, as it would have been written...}}
// Runs on the event-loop thread only.
class JsonLinesEventWriter final : public EventSink {
public:
    // Everything `events/...` configures (settings_schema.h). The defaults write every event to
    // one file that grows without end, as the writer did before they existed.
    struct Options {
        RotationLimits rotation;
        RepeatLimit repeats;
    };

    // What the writer did, for the daemon's stats and status.
    struct Counters {
        EventFileCounters file;
        std::uint64_t suppressed = 0; // repeated events summed up instead of written
        std::uint64_t summaries = 0;  // "repeated" lines
    };

    // "-" is standard output; anything else a file, appended to (created if missing). `clock`
    // (the repeat windows, the rate of failure logs) must outlive the writer. Ignores SIGPIPE
    // unless the process has a handler for it: a reader that leaves is an EPIPE we handle.
    [[nodiscard]] static Result<std::unique_ptr<JsonLinesEventWriter>> open(
        const std::string& target, Options options, const Clock& clock);
    // Without rotation and aggregation, on the steady clock.
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
    // Never aggregated.
    void write_line(std::string_view json_object);

    // Opens the events file again by name, for log rotation by another program (SIGHUP): the
    // next line goes to a new file at the configured path. Standard output is only flushed. An
    // error (the directory is gone, ...) is also logged; events are then dropped and counted,
    // and opening is retried with every batch, at most once a second.
    [[nodiscard]] Status reopen();

    // New limits (the settings changed). Windows of repeated events end early: their summaries
    // are written now.
    void set_options(Options options);

    [[nodiscard]] Counters counters() const;
    // counters() as the "events" member of the daemon's stats and status:
    // {"written":..,"writeFailures":..,"dropped":..,"rotations":..,"rotationFailures":..,
    //  "reopens":..,"repeatsSuppressed":..,"repeatSummaries":..,"state":"writing"}
    [[nodiscard]] nlohmann::ordered_json counters_json() const;

private:
    JsonLinesEventWriter(std::unique_ptr<EventFile> file, RepeatLimit repeats, const Clock& clock)
        : file_(std::move(file)), clock_(clock), repeats_(clock, repeats) {}
    void write_connection(std::string_view event, std::uint64_t id,
                          const firewall::ConnectionFacts& connection,
                          const firewall::Decision* decision, std::uint32_t mark);
    // line_ is formatted: write it, or count it when it repeats the events before it (key_).
    void emit();
    void write_summaries(const std::vector<RepeatAggregator::Summary>& summaries);

    std::unique_ptr<EventFile> file_;
    const Clock& clock_;
    RepeatAggregator repeats_;
    std::uint64_t summaries_ = 0;
    std::string line_; // reused for every event, so formatting does not allocate
    std::string key_;  // what makes line_ the same as another event; empty: never aggregated
};

// The event lines as JsonLinesEventWriter writes them (the shapes above), appended to `out`
// without the newline: for the writer and for other consumers of the same events (the API's
// event stream, StreamingEventSink), so that both say the same.
void append_connection_event(std::string& out, std::string_view event, std::uint64_t id,
                             const firewall::ConnectionFacts& connection,
                             const firewall::Decision* decision, std::uint32_t mark);
void append_dns_event(std::string& out, const DnsQueryEvent& query);
void append_prompt_event(std::string& out, profile::PromptEvent event,
                         const profile::Prompt& prompt, const profile::PromptAnswer* answer);

// JSON string escaping for the few free-text fields (reasons, paths, names).
void append_json_string(std::string& out, std::string_view text);

// "2026-11-22T11:40:00.123Z" for now, UTC.
[[nodiscard]] std::string utc_timestamp_now();
[[nodiscard]] std::string utc_timestamp(std::chrono::system_clock::time_point time);

// "tcp", "udp", "icmp", "icmpv6", "udplite", "sctp", "igmp", or the number.
[[nodiscard]] std::string protocol_name(std::uint8_t protocol);

} // namespace pw::network
