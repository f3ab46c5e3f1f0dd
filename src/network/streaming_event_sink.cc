#include "network/streaming_event_sink.h"

#include <string>
#include <utility>

#include "network/event_writer.h"

namespace pw::network {

void StreamingEventSink::connection_new(std::uint64_t id,
                                        const firewall::ConnectionFacts& connection) {
    if (!wanted_()) {
        return;
    }
    std::string text;
    append_connection_event(text, "new", id, connection, nullptr, 0);
    publish_(std::move(text));
}

void StreamingEventSink::connection_decided(std::uint64_t id,
                                            const firewall::ConnectionFacts& connection,
                                            const firewall::Decision& decision,
                                            std::uint32_t mark) {
    if (!wanted_()) {
        return;
    }
    std::string text;
    append_connection_event(text, "decided", id, connection, &decision, mark);
    publish_(std::move(text));
}

void StreamingEventSink::dns_query(const DnsQueryEvent& query) {
    if (!wanted_()) {
        return;
    }
    std::string text;
    append_dns_event(text, query);
    publish_(std::move(text));
}

void StreamingEventSink::prompt(profile::PromptEvent event, const profile::Prompt& prompt,
                                const profile::PromptAnswer* answer) {
    if (!wanted_()) {
        return;
    }
    std::string text;
    append_prompt_event(text, event, prompt, answer);
    publish_(std::move(text));
}

std::string ended_event(std::uint64_t id) {
    return R"({"event":"ended","id":)" + std::to_string(id) + R"(,"time":")" + utc_timestamp_now() +
           R"("})";
}

std::string setting_event(std::optional<std::string_view> profile_id, std::string_view what) {
    std::string out = R"({"event":"setting","time":")" + utc_timestamp_now() + R"(","profileId":)";
    if (profile_id) {
        append_json_string(out, *profile_id);
    } else {
        out += "null";
    }
    out += R"(,"what":)";
    append_json_string(out, what);
    out += '}';
    return out;
}

} // namespace pw::network
