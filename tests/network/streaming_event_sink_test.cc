#include "network/streaming_event_sink.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "network/event_writer.h"

// The stream's sink: the same lines as the events file, rendered only while someone listens.

namespace pw::network {
namespace {

firewall::ConnectionFacts outbound_connection() {
    return firewall::ConnectionFacts{
        .direction = packet::Direction::Outbound,
        .ip_family = IpFamily::V4,
        .protocol = 6,
        .local_address = *IpAddress::parse("10.0.0.1"),
        .local_port = 40000,
        .remote_address = *IpAddress::parse("10.0.0.2"),
        .remote_port = 443,
    };
}

TEST(StreamingEventSink, RendersNothingWhileNobodyListens) {
    int asked = 0;
    std::vector<std::string> published;
    StreamingEventSink sink([&] { return ++asked, false; },
                            [&](std::string text) { published.push_back(std::move(text)); });
    const firewall::Decision decision{.verdict = packet::Verdict::Accept,
                                      .persistence = packet::Persistence::Permanent,
                                      .reason = "default"};
    sink.connection_new(1, outbound_connection());
    sink.connection_decided(1, outbound_connection(), decision, 7);
    EXPECT_EQ(asked, 2);
    EXPECT_TRUE(published.empty());
}

TEST(StreamingEventSink, PublishesTheEventsFileLines) {
    std::vector<std::string> published;
    StreamingEventSink sink([] { return true; },
                            [&](std::string text) { published.push_back(std::move(text)); });
    const firewall::Decision decision{.verdict = packet::Verdict::Drop,
                                      .persistence = packet::Persistence::Permanent,
                                      .reason = "rule \"x\""};
    sink.connection_new(3, outbound_connection());
    sink.connection_decided(3, outbound_connection(), decision, 1712);
    ASSERT_EQ(published.size(), 2U);
    std::string expected;
    append_connection_event(expected, "decided", 3, outbound_connection(), &decision, 1712);
    const auto line = nlohmann::json::parse(published[1]);
    const auto same = nlohmann::json::parse(expected);
    EXPECT_EQ(line["event"], "decided");
    EXPECT_EQ(line["id"], 3);
    EXPECT_EQ(line["verdict"], "drop");
    EXPECT_EQ(line["reason"], "rule \"x\"");
    EXPECT_EQ(line["remote"], same["remote"]);
    EXPECT_EQ(published[1].find('\n'), std::string::npos); // one message, no newline
    EXPECT_EQ(nlohmann::json::parse(published[0])["event"], "new");
}

TEST(StreamingEventSink, EndedAndSettingEvents) {
    const auto ended = nlohmann::json::parse(ended_event(42));
    EXPECT_EQ(ended["event"], "ended");
    EXPECT_EQ(ended["id"], 42);
    EXPECT_TRUE(ended["time"].get<std::string>().ends_with("Z"));
    const auto global = nlohmann::json::parse(setting_event(std::nullopt, "filter/defaultAction"));
    EXPECT_EQ(global["event"], "setting");
    EXPECT_TRUE(global["profileId"].is_null());
    EXPECT_EQ(global["what"], "filter/defaultAction");
    const auto one = nlohmann::json::parse(setting_event("3f1c", "rule \"expired\""));
    EXPECT_EQ(one["profileId"], "3f1c");
    EXPECT_EQ(one["what"], "rule \"expired\"");
}

} // namespace
} // namespace pw::network
