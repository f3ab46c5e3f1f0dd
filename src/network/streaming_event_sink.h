#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "network/event_sink.h"

namespace pw::network {

// Renders each event once, as the `--events` line JsonLinesEventWriter writes for it (without
// its newline and without repeat aggregation: a live reader sees every event), and hands the
// text on: the API's event stream (api::EventHub) publishes it to its WebSocket clients. Asks
// `wanted` first, so that an event nobody subscribed to costs a call, not its rendering. Runs
// on the event-loop thread only.
class StreamingEventSink final : public EventSink {
public:
    using Wanted = std::function<bool()>;
    using Publish = std::function<void(std::string text)>;

    StreamingEventSink(Wanted wanted, Publish publish)
        : wanted_(std::move(wanted)), publish_(std::move(publish)) {}

    // network::EventSink
    void connection_new(std::uint64_t id, const firewall::ConnectionFacts& connection) override;
    void connection_decided(std::uint64_t id, const firewall::ConnectionFacts& connection,
                            const firewall::Decision& decision, std::uint32_t mark) override;
    void dns_query(const DnsQueryEvent& query) override;
    void prompt(profile::PromptEvent event, const profile::Prompt& prompt,
                const profile::PromptAnswer* answer) override;
    void flush() override {}

private:
    Wanted wanted_;
    Publish publish_;
};

// Passes every event to two sinks, `first` first (the events file, then the stream). Runs on
// the event-loop thread only.
class FanOutEventSink final : public EventSink {
public:
    FanOutEventSink(std::unique_ptr<EventSink> first, std::unique_ptr<EventSink> second)
        : first_(std::move(first)), second_(std::move(second)) {}

    // network::EventSink
    void connection_new(std::uint64_t id, const firewall::ConnectionFacts& connection) override {
        first_->connection_new(id, connection);
        second_->connection_new(id, connection);
    }
    void connection_decided(std::uint64_t id, const firewall::ConnectionFacts& connection,
                            const firewall::Decision& decision, std::uint32_t mark) override {
        first_->connection_decided(id, connection, decision, mark);
        second_->connection_decided(id, connection, decision, mark);
    }
    void dns_query(const DnsQueryEvent& query) override {
        first_->dns_query(query);
        second_->dns_query(query);
    }
    void prompt(profile::PromptEvent event, const profile::Prompt& prompt,
                const profile::PromptAnswer* answer) override {
        first_->prompt(event, prompt, answer);
        second_->prompt(event, prompt, answer);
    }
    void flush() override {
        first_->flush();
        second_->flush();
    }

private:
    std::unique_ptr<EventSink> first_;
    std::unique_ptr<EventSink> second_;
};

// {"event":"ended","id":7,"time":"2026-11-22T11:40:00.123Z"}: the kernel forgot a connection
// that the registry of live connections knew by this ID (stream only).
[[nodiscard]] std::string ended_event(std::uint64_t id);

// {"event":"setting","time":"...","profileId":"3f1c..."|null,"what":"filter/endpoints"}: the
// settings changed, of one profile or (null) the global ones (stream only). `what` is the
// store's description of the change: a key, "rule expired", "profile deleted", ...
[[nodiscard]] std::string setting_event(std::optional<std::string_view> profile_id,
                                        std::string_view what);

} // namespace pw::network
