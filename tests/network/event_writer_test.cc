#include "network/event_writer.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

TEST(JsonString, EscapesControlCharactersQuotesAndBackslashes) {
    std::string out;
    append_json_string(out, std::string_view("a\"b\\c\n\x01", 7));
    EXPECT_EQ(out, R"("a\"b\\c\u000a\u0001")");
}

} // namespace
} // namespace pw::network
