#include "network/event_writer.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fakes/fake_clock.h"

namespace pw::network {
namespace {

namespace fs = std::filesystem;

class EventWriterTest : public ::testing::Test {
protected:
    void TearDown() override { fs::remove(path_); }

    std::vector<nlohmann::json> read_lines() const {
        std::ifstream input(path_);
        std::vector<nlohmann::json> lines;
        for (std::string line; std::getline(input, line);) {
            lines.push_back(nlohmann::json::parse(line));
        }
        return lines;
    }

    fs::path path_ =
        fs::temp_directory_path() / ("pw-events-" + std::to_string(::getpid()) + ".jsonl");
};

TEST_F(EventWriterTest, DecidedLineIsSelfContainedJson) {
    {
        auto writer = JsonLinesEventWriter::open(path_.string());
        ASSERT_TRUE(writer.has_value()) << writer.error().message();
        firewall::ConnectionFacts connection{
            .direction = packet::Direction::Inbound,
            .ip_family = IpFamily::V6,
            .protocol = 17,
            .local_address = *IpAddress::parse("fd00::1"),
            .local_port = 53,
            .remote_address = *IpAddress::parse("fd00::2"),
            .remote_port = 40000,
        };
        const firewall::Decision decision{.verdict = packet::Verdict::Drop,
                                          .persistence = packet::Persistence::Permanent,
                                          .reason = "rule '- \"odd\\text'"};
        (*writer)->connection_new(7, connection);
        (*writer)->connection_decided(7, connection, decision, 1712);
    }
    const auto lines = read_lines();
    ASSERT_EQ(lines.size(), 2U);
    EXPECT_EQ(lines[0]["event"], "new");
    const auto& decided = lines[1];
    EXPECT_EQ(decided["event"], "decided");
    EXPECT_EQ(decided["id"], 7);
    EXPECT_EQ(decided["protocol"], "udp");
    EXPECT_EQ(decided["ipVersion"], 6);
    EXPECT_EQ(decided["direction"], "inbound");
    EXPECT_EQ(decided["local"]["ip"], "fd00::1");
    EXPECT_EQ(decided["local"]["port"], 53);
    EXPECT_EQ(decided["remote"]["ip"], "fd00::2");
    EXPECT_EQ(decided["remote"]["port"], 40000);
    EXPECT_EQ(decided["verdict"], "drop");
    EXPECT_EQ(decided["mark"], 1712);
    EXPECT_EQ(decided["permanent"], true);
    EXPECT_EQ(decided["reason"], "rule '- \"odd\\text'");
    EXPECT_TRUE(decided["time"].get<std::string>().ends_with("Z"));
}

TEST_F(EventWriterTest, DecidedLineNamesTheProcessBesideTheAddresses) {
    {
        auto writer = JsonLinesEventWriter::open(path_.string());
        ASSERT_TRUE(writer.has_value()) << writer.error().message();
        firewall::ConnectionFacts connection{
            .direction = packet::Direction::Outbound,
            .ip_family = IpFamily::V4,
            .protocol = 6,
            .local_address = *IpAddress::parse("10.0.0.1"),
            .local_port = 40000,
            .remote_address = *IpAddress::parse("10.0.0.2"),
            .remote_port = 443,
        };
        connection.process = firewall::ProcessFacts{.kind = firewall::ProcessKind::Process,
                                                    .pid = 4242,
                                                    .parent_pid = 1,
                                                    .executable = "/usr/bin/python3.11",
                                                    .identity = "/home/u/fetch \"x\".py",
                                                    .uid = 1000,
                                                    .user = "u",
                                                    .tags = {"script", "flatpak"},
                                                    .source = "ebpf"};
        const firewall::Decision decision{.verdict = packet::Verdict::Accept,
                                          .persistence = packet::Persistence::Permanent,
                                          .reason = "default"};
        (*writer)->connection_decided(1, connection, decision, 1710);
    }
    const auto lines = read_lines();
    ASSERT_EQ(lines.size(), 1U);
    const auto& process = lines[0]["process"];
    EXPECT_EQ(process["kind"], "process");
    EXPECT_EQ(process["pid"], 4242);
    EXPECT_EQ(process["parentPid"], 1);
    EXPECT_EQ(process["executable"], "/usr/bin/python3.11");
    EXPECT_EQ(process["identity"], "/home/u/fetch \"x\".py");
    EXPECT_EQ(process["uid"], 1000);
    EXPECT_EQ(process["user"], "u");
    EXPECT_EQ(process["tags"], nlohmann::json::array({"script", "flatpak"}));
    EXPECT_EQ(process["source"], "ebpf");
    EXPECT_EQ(lines[0]["remote"]["port"], 443);
}

TEST_F(EventWriterTest, OpeningAnUnwritablePathIsAClearError) {
    auto writer = JsonLinesEventWriter::open("/nonexistent-dir/events.jsonl");
    ASSERT_FALSE(writer.has_value());
    EXPECT_NE(writer.error().message().find("/nonexistent-dir/events.jsonl"), std::string::npos);
}

firewall::ConnectionFacts inbound_from(std::string_view remote, std::uint16_t remote_port,
                                       std::uint16_t local_port = 22) {
    return firewall::ConnectionFacts{
        .direction = packet::Direction::Inbound,
        .ip_family = IpFamily::V4,
        .protocol = 6,
        .local_address = *IpAddress::parse("10.0.0.1"),
        .local_port = local_port,
        .remote_address = *IpAddress::parse(remote),
        .remote_port = remote_port,
    };
}

const firewall::Decision kDropped{.verdict = packet::Verdict::Drop,
                                  .persistence = packet::Persistence::Permanent,
                                  .reason = "blockInbound"};

TEST_F(EventWriterTest, AFloodOfIdenticalDecisionsIsSummedUpPerWindow) {
    testing::FakeClock clock;
    {
        auto writer = JsonLinesEventWriter::open(
            path_.string(),
            {.rotation = {}, .repeats = {.count = 2, .window = std::chrono::seconds(10)}}, clock);
        ASSERT_TRUE(writer.has_value()) << writer.error().message();
        // The same peer, a new source port each time: the same decision.
        for (std::uint16_t port = 40000; port < 40100; ++port) {
            (*writer)->connection_decided(port, inbound_from("192.0.2.7", port), kDropped, 1712);
            (*writer)->flush();
        }
        // Another local port is another decision.
        (*writer)->connection_decided(1, inbound_from("192.0.2.7", 50000, 80), kDropped, 1712);
        clock.advance(std::chrono::seconds(10));
        (*writer)->flush(); // the window ended: its summary
        (*writer)->connection_decided(2, inbound_from("192.0.2.7", 50001), kDropped, 1712);
        EXPECT_EQ((*writer)->counters().suppressed, 98U);
        EXPECT_EQ((*writer)->counters().summaries, 1U);
    }
    const auto lines = read_lines();
    ASSERT_EQ(lines.size(), 5U);
    EXPECT_EQ(lines[0]["remote"]["port"], 40000);
    EXPECT_EQ(lines[1]["remote"]["port"], 40001);
    EXPECT_EQ(lines[2]["local"]["port"], 80);
    const auto& summary = lines[3];
    EXPECT_EQ(summary["event"], "repeated");
    EXPECT_EQ(summary["count"], 98);
    EXPECT_EQ(summary["windowSeconds"], 10);
    EXPECT_EQ(summary["like"]["event"], "decided");
    EXPECT_EQ(summary["like"]["remote"]["port"], 40002); // the first one left out
    EXPECT_EQ(summary["like"]["verdict"], "drop");
    EXPECT_TRUE(summary["lastTime"].get<std::string>().ends_with("Z"));
    // A new window: written again.
    EXPECT_EQ(lines[4]["id"], 2);
}

TEST_F(EventWriterTest, PendingSummariesAreWrittenWhenTheWriterCloses) {
    testing::FakeClock clock;
    {
        auto writer = JsonLinesEventWriter::open(
            path_.string(),
            {.rotation = {}, .repeats = {.count = 1, .window = std::chrono::seconds(60)}}, clock);
        ASSERT_TRUE(writer.has_value()) << writer.error().message();
        for (std::uint16_t port = 40000; port < 40005; ++port) {
            (*writer)->connection_new(port, inbound_from("192.0.2.7", port));
        }
    }
    const auto lines = read_lines();
    ASSERT_EQ(lines.size(), 2U);
    EXPECT_EQ(lines[1]["event"], "repeated");
    EXPECT_EQ(lines[1]["count"], 4);
    EXPECT_EQ(lines[1]["like"]["event"], "new");
}

TEST_F(EventWriterTest, NewLimitsWriteThePendingSummariesAndApplyAtOnce) {
    testing::FakeClock clock;
    {
        auto writer = JsonLinesEventWriter::open(
            path_.string(),
            {.rotation = {}, .repeats = {.count = 1, .window = std::chrono::seconds(60)}}, clock);
        ASSERT_TRUE(writer.has_value()) << writer.error().message();
        for (std::uint16_t port = 40000; port < 40003; ++port) {
            (*writer)->connection_new(port, inbound_from("192.0.2.7", port));
        }
        (*writer)->set_options({.rotation = {}, .repeats = {}});
        for (std::uint16_t port = 40003; port < 40006; ++port) {
            (*writer)->connection_new(port, inbound_from("192.0.2.7", port));
        }
    }
    const auto lines = read_lines();
    ASSERT_EQ(lines.size(), 5U); // one, the summary of two, then all three
    EXPECT_EQ(lines[1]["event"], "repeated");
    EXPECT_EQ(lines[1]["count"], 2);
    EXPECT_EQ(lines[4]["id"], 40005);
}

TEST_F(EventWriterTest, LifecycleLinesAreNeverAggregated) {
    testing::FakeClock clock;
    {
        auto writer = JsonLinesEventWriter::open(
            path_.string(),
            {.rotation = {}, .repeats = {.count = 1, .window = std::chrono::seconds(60)}}, clock);
        ASSERT_TRUE(writer.has_value()) << writer.error().message();
        for (int index = 0; index < 3; ++index) {
            (*writer)->write_line(R"({"event":"stats"})");
        }
    }
    EXPECT_EQ(read_lines().size(), 3U);
}

TEST_F(EventWriterTest, AReaderThatLeftIsCountedAndDoesNotKillTheProcess) {
    testing::FakeClock clock;
    std::array<int, 2> ends{};
    ASSERT_EQ(::pipe(ends.data()), 0);
    auto writer = JsonLinesEventWriter::open("/proc/self/fd/" + std::to_string(ends[1]),
                                             {.rotation = {}, .repeats = {}}, clock);
    ::close(ends[1]);
    ASSERT_TRUE(writer.has_value()) << writer.error().message();
    (*writer)->connection_decided(1, inbound_from("192.0.2.7", 40000), kDropped, 1712);
    (*writer)->flush();
    ::close(ends[0]);
    // Without SIGPIPE ignored, this would end the test binary.
    (*writer)->connection_decided(2, inbound_from("192.0.2.7", 40001), kDropped, 1712);
    (*writer)->flush();
    (*writer)->write_line(R"({"event":"stats"})");
    const auto counters = (*writer)->counters();
    EXPECT_EQ(counters.file.lines_written, 1U);
    EXPECT_EQ(counters.file.write_failures, 1U);
    EXPECT_EQ(counters.file.lines_dropped, 2U);
    const auto json = (*writer)->counters_json();
    EXPECT_EQ(json["state"], "readerGone");
    EXPECT_EQ(json["dropped"], 2);
    EXPECT_EQ(json["writeFailures"], 1);
}

TEST(EventWriterDevFull, WriteFailuresAreCountedAndFilteringGoesOn) {
    testing::FakeClock clock;
    auto writer = JsonLinesEventWriter::open("/dev/full", {.rotation = {}, .repeats = {}}, clock);
    ASSERT_TRUE(writer.has_value()) << writer.error().message();
    for (std::uint16_t port = 40000; port < 40003; ++port) {
        (*writer)->connection_decided(port, inbound_from("192.0.2.7", port), kDropped, 1712);
        (*writer)->flush();
    }
    const auto json = (*writer)->counters_json();
    EXPECT_EQ(json["writeFailures"], 3);
    EXPECT_EQ(json["dropped"], 3);
    EXPECT_EQ(json["written"], 0);
    EXPECT_EQ(json["state"], "failing");
}

TEST(JsonString, EscapesControlCharactersQuotesAndBackslashes) {
    std::string out;
    append_json_string(out, std::string_view("a\"b\\c\n\x01", 7));
    EXPECT_EQ(out, R"("a\"b\\c\u000a\u0001")");
}

} // namespace
} // namespace pw::network
