#include "dns/resolved_monitor.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace pw::dns {
namespace {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;
using Json = nlohmann::json;
using std::chrono::milliseconds;

IpAddress address(std::string_view text) {
    return IpAddress::parse(text).value();
}

// ---------------------------------------------------------------------------------------------
// Messages as systemd-resolved sends them (shape of systemd 252-254's manager_monitor_send; the
// "raw" fields were made with Python's base64 module from hand-built wire records).

// www.example.com -> www.example.com.edgekey.example.net (CNAME, TTL 300)
//                 -> e1234.a.cdn.example.net (CNAME, TTL 120)
//                 -> 93.184.216.34 (A, TTL 20) and 2606:2800:220:1:248:1893:25c8:1946 (AAAA, 40).
// resolved followed the chain itself, so "question" is the chain's end and
// "collectedQuestions" starts with the client's name (as the client spelled it).
constexpr std::string_view kCnameChainMessage =
    R"({"parameters":{"state":"success","question":[{"class":1,"type":1,"name":"e1234.a.cdn.example.net"},{"class":1,"type":28,"name":"e1234.a.cdn.example.net"}],"answer":[{"rr":{"key":{"class":1,"type":5,"name":"WWW.Example.com"},"name":"www.example.com.edgekey.example.net"},"raw":"A1dXVwdFeGFtcGxlA2NvbQAABQABAAABLAAlA3d3dwdleGFtcGxlA2NvbQdlZGdla2V5B2V4YW1wbGUDbmV0AA==","ifindex":2},{"rr":{"key":{"class":1,"type":5,"name":"www.example.com.edgekey.example.net"},"name":"e1234.a.cdn.example.net"},"raw":"A3d3dwdleGFtcGxlA2NvbQdlZGdla2V5B2V4YW1wbGUDbmV0AAAFAAEAAAB4ABkFZTEyMzQBYQNjZG4HZXhhbXBsZQNuZXQA","ifindex":2},{"rr":{"key":{"class":1,"type":1,"name":"e1234.a.cdn.example.net"},"address":[93,184,216,34]},"raw":"BWUxMjM0AWEDY2RuB2V4YW1wbGUDbmV0AAABAAEAAAAUAARduNgi","ifindex":2},{"rr":{"key":{"class":1,"type":28,"name":"e1234.a.cdn.example.net"},"address":[38,6,40,0,2,32,0,1,2,72,24,147,37,200,25,70]},"raw":"BWUxMjM0AWEDY2RuB2V4YW1wbGUDbmV0AAAcAAEAAAAoABAmBigAAiAAAQJIGJMlyBlG","ifindex":2}],"collectedQuestions":[{"class":1,"type":1,"name":"WWW.Example.com"},{"class":1,"type":28,"name":"WWW.Example.com"},{"class":1,"type":1,"name":"www.example.com.edgekey.example.net"},{"class":1,"type":28,"name":"www.example.com.edgekey.example.net"}]},"continues":true})";

// example.org -> 192.0.2.7 (A, TTL 3600).
constexpr std::string_view kSimpleMessage =
    R"({"parameters":{"state":"success","question":[{"class":1,"type":1,"name":"example.org"}],"answer":[{"rr":{"key":{"class":1,"type":1,"name":"example.org"},"address":[192,0,2,7]},"raw":"B2V4YW1wbGUDb3JnAAABAAEAAA4QAATAAAIH","ifindex":3}]},"continues":true})";

constexpr std::string_view kReadyMessage = R"({"parameters":{"ready":true},"continues":true})";

// ---------------------------------------------------------------------------------------------
// Builders for messages the tests vary.

std::string base64(std::span<const std::uint8_t> bytes) {
    constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::size_t left = bytes.size() - i;
        std::uint32_t group = std::uint32_t{bytes[i]} << 16U;
        if (left > 1) {
            group |= std::uint32_t{bytes[i + 1]} << 8U;
        }
        if (left > 2) {
            group |= bytes[i + 2];
        }
        out.push_back(kAlphabet[(group >> 18U) & 63U]);
        out.push_back(kAlphabet[(group >> 12U) & 63U]);
        out.push_back(left > 1 ? kAlphabet[(group >> 6U) & 63U] : '=');
        out.push_back(left > 2 ? kAlphabet[group & 63U] : '=');
    }
    return out;
}

// A record in wire format (RFC 1035 4.1.3), base64: what resolved puts into "raw".
std::string raw_record(std::string_view name, std::uint16_t type, std::uint32_t ttl,
                       const std::vector<std::uint8_t>& rdata) {
    std::vector<std::uint8_t> wire;
    std::size_t start = 0;
    while (start < name.size()) {
        std::size_t end = name.find('.', start);
        if (end == std::string_view::npos) {
            end = name.size();
        }
        wire.push_back(static_cast<std::uint8_t>(end - start));
        wire.insert(wire.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                    name.begin() + static_cast<std::ptrdiff_t>(end));
        start = end + 1;
    }
    wire.push_back(0);
    const auto push16 = [&wire](std::uint32_t value) {
        wire.push_back(static_cast<std::uint8_t>(value >> 8U));
        wire.push_back(static_cast<std::uint8_t>(value));
    };
    push16(type);
    push16(1);
    push16(ttl >> 16U);
    push16(ttl & 0xffffU);
    push16(static_cast<std::uint32_t>(rdata.size()));
    wire.insert(wire.end(), rdata.begin(), rdata.end());
    return base64(wire);
}

Json a_item(std::string_view name, std::vector<std::uint8_t> bytes,
            std::optional<std::uint32_t> ttl = std::nullopt) {
    const auto type = static_cast<std::uint16_t>(bytes.size() == 4 ? 1 : 28);
    Json item = {
        {"rr", {{"key", {{"class", 1}, {"type", type}, {"name", name}}}, {"address", bytes}}},
        {"ifindex", 2}};
    if (ttl) {
        item["raw"] = raw_record(name, type, *ttl, bytes);
    }
    return item;
}

Json cname_item(std::string_view name, std::string_view target,
                std::optional<std::uint32_t> ttl = std::nullopt) {
    Json item = {{"rr", {{"key", {{"class", 1}, {"type", 5}, {"name", name}}}, {"name", target}}}};
    if (ttl) {
        item["raw"] = raw_record(name, 5, *ttl, {0});
    }
    return item;
}

std::string success_message(std::string_view question, Json answer) {
    Json message = {{"parameters",
                     {{"state", "success"},
                      {"rcode", 0},
                      {"question", Json::array({{{"class", 1}, {"type", 1}, {"name", question}}})},
                      {"answer", std::move(answer)}}},
                    {"continues", true}};
    return message.dump();
}

// ---------------------------------------------------------------------------------------------
// parse_monitor_message

TEST(ParseMonitorMessage, TheReadyReplyCarriesNoAnswer) {
    const auto parsed = parse_monitor_message(kReadyMessage);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    EXPECT_FALSE(parsed->has_value());
}

TEST(ParseMonitorMessage, AnARecordGivesItsAddressAndTheTtlFromTheRawRecord) {
    const auto parsed = parse_monitor_message(kSimpleMessage);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    const MonitoredAnswer& answer = **parsed;
    EXPECT_EQ(answer.name, "example.org");
    EXPECT_EQ(answer.addresses, std::vector<IpAddress>{address("192.0.2.7")});
    EXPECT_TRUE(answer.cname_chain.empty());
    EXPECT_EQ(answer.ttl, 3600U);
}

TEST(ParseMonitorMessage, AaaaAddressesAreSixteenBytes) {
    const auto parsed = parse_monitor_message(success_message(
        "v6.example",
        Json::array({a_item("v6.example",
                            {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 600)})));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->addresses, std::vector<IpAddress>{address("2001:db8::1")});
    EXPECT_EQ((*parsed)->ttl, 600U);
}

TEST(ParseMonitorMessage, TheChainIsFollowedFromTheNameTheClientAsked) {
    const auto parsed = parse_monitor_message(kCnameChainMessage);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    const MonitoredAnswer& answer = **parsed;
    EXPECT_EQ(answer.name, "www.example.com");
    EXPECT_EQ(answer.cname_chain, (std::vector<std::string>{"www.example.com.edgekey.example.net",
                                                            "e1234.a.cdn.example.net"}));
    EXPECT_EQ(answer.addresses,
              (std::vector<IpAddress>{address("93.184.216.34"),
                                      address("2606:2800:220:1:248:1893:25c8:1946")}));
    EXPECT_EQ(answer.ttl, 20U); // the A record's; the CNAMEs (300, 120) and AAAA (40) live longer
}

TEST(ParseMonitorMessage, WithoutCollectedQuestionsTheChainStartsAtTheQuestion) {
    const auto parsed = parse_monitor_message(success_message(
        "www.example.com", Json::array({cname_item("www.example.com", "example.com", 50),
                                        a_item("example.com", {93, 184, 216, 34}, 90),
                                        // Not on the chain: neither its address nor its TTL count.
                                        a_item("other.example", {198, 51, 100, 1}, 5)})));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->name, "www.example.com");
    EXPECT_EQ((*parsed)->cname_chain, std::vector<std::string>{"example.com"});
    EXPECT_EQ((*parsed)->addresses, std::vector<IpAddress>{address("93.184.216.34")});
    EXPECT_EQ((*parsed)->ttl, 50U);
}

TEST(ParseMonitorMessage, RepeatedRecordsGiveEachAddressOnce) {
    const auto parsed = parse_monitor_message(
        success_message("a.example", Json::array({a_item("a.example", {192, 0, 2, 1}, 30),
                                                  a_item("a.example", {192, 0, 2, 2}, 30),
                                                  a_item("a.example", {192, 0, 2, 1}, 30)})));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->addresses,
              (std::vector<IpAddress>{address("192.0.2.1"), address("192.0.2.2")}));
}

TEST(ParseMonitorMessage, WithoutRawRecordsTheTtlIsZero) {
    const auto parsed = parse_monitor_message(
        success_message("a.example", Json::array({a_item("a.example", {192, 0, 2, 1})})));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->ttl, 0U);
}

TEST(ParseMonitorMessage, ARawRecordThatDoesNotFitGivesNoTtlButKeepsTheAddress) {
    Json wrong_type = a_item("a.example", {192, 0, 2, 1});
    wrong_type["raw"] = raw_record("a.example", 28, 7, {192, 0, 2, 1});
    Json not_base64 = a_item("b.example", {192, 0, 2, 2});
    not_base64["raw"] = "!!not base64!!";
    Json truncated = a_item("c.example", {192, 0, 2, 3});
    truncated["raw"] = base64(std::vector<std::uint8_t>{1, 'c', 0, 0, 1});
    Json compressed = a_item("d.example", {192, 0, 2, 4});
    compressed["raw"] = base64(std::vector<std::uint8_t>{0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4});
    for (const auto& [name, item] : {std::pair{"a.example", wrong_type},
                                     {"b.example", not_base64},
                                     {"c.example", truncated},
                                     {"d.example", compressed}}) {
        const auto parsed = parse_monitor_message(success_message(name, Json::array({item})));
        ASSERT_TRUE(parsed.has_value()) << name << ": " << parsed.error().what;
        ASSERT_TRUE(parsed->has_value()) << name;
        EXPECT_EQ((*parsed)->addresses.size(), 1U) << name;
        EXPECT_EQ((*parsed)->ttl, 0U) << name;
    }
}

TEST(ParseMonitorMessage, ATtlWithTheTopBitSetCountsAsZero) {
    const auto parsed = parse_monitor_message(success_message(
        "a.example", Json::array({a_item("a.example", {192, 0, 2, 1}, 0x80000001U)})));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->ttl, 0U); // RFC 2181 section 8
}

TEST(ParseMonitorMessage, FailedLookupsCarryNoAnswer) {
    for (const std::string_view state :
         {"errno", "rcode-failure", "no-servers", "timeout", "attempts-max-reached",
          "invalid-reply", "dnssec-failed", "network-down", "not-found"}) {
        Json message = Json::parse(kSimpleMessage);
        message["parameters"]["state"] = state;
        const auto parsed = parse_monitor_message(message.dump());
        ASSERT_TRUE(parsed.has_value()) << state << ": " << parsed.error().what;
        EXPECT_FALSE(parsed->has_value()) << state;
    }
}

TEST(ParseMonitorMessage, SuccessWithoutAddressesCarriesNoAnswer) {
    const std::vector<std::string> messages = {
        // NODATA: no answer at all.
        R"({"parameters":{"state":"success","question":[{"class":1,"type":28,"name":"a.example"}]},"continues":true})",
        // An empty answer.
        success_message("a.example", Json::array()),
        // A chain that ends without an address.
        success_message("a.example", Json::array({cname_item("a.example", "b.example")})),
        // Addresses, but for another name.
        success_message("a.example", Json::array({a_item("b.example", {192, 0, 2, 1})})),
        // Records of other types (MX) and of class CH.
        success_message(
            "a.example",
            Json::array({{{"rr",
                           {{"key", {{"class", 1}, {"type", 15}, {"name", "a.example"}}},
                            {"priority", 10},
                            {"exchange", "mx.a.example"}}}},
                         {{"rr",
                           {{"key", {{"class", 3}, {"type", 1}, {"name", "a.example"}}},
                            {"address", {192, 0, 2, 1}}}}}})),
        // A record resolved could not break down has no "rr".
        success_message("a.example", Json::array({{{"raw", "AA=="}}})),
    };
    for (const std::string& message : messages) {
        const auto parsed = parse_monitor_message(message);
        ASSERT_TRUE(parsed.has_value()) << message << ": " << parsed.error().what;
        EXPECT_FALSE(parsed->has_value()) << message;
    }
}

// A chain a0 -> a1 -> ... -> a<hops> with an address at its end.
std::string chain_message(std::size_t hops) {
    Json answer = Json::array();
    for (std::size_t i = 0; i < hops; ++i) {
        answer.push_back(cname_item("a" + std::to_string(i) + ".example",
                                    "a" + std::to_string(i + 1) + ".example"));
    }
    answer.push_back(a_item("a" + std::to_string(hops) + ".example", {192, 0, 2, 1}));
    return success_message("a0.example", std::move(answer));
}

TEST(ParseMonitorMessage, ChainsAreFollowedForSixteenHopsAndNoMore) {
    const auto sixteen = parse_monitor_message(chain_message(16));
    ASSERT_TRUE(sixteen.has_value()) << sixteen.error().what;
    ASSERT_TRUE(sixteen->has_value());
    EXPECT_EQ((*sixteen)->cname_chain.size(), 16U);
    EXPECT_EQ((*sixteen)->cname_chain.back(), "a16.example");

    const auto seventeen = parse_monitor_message(chain_message(17));
    ASSERT_TRUE(seventeen.has_value()) << seventeen.error().what;
    EXPECT_FALSE(seventeen->has_value());
}

TEST(ParseMonitorMessage, ACnameLoopCarriesNoAnswer) {
    const auto parsed = parse_monitor_message(success_message(
        "a.example",
        Json::array({cname_item("a.example", "b.example"), cname_item("b.example", "a.example"),
                     a_item("a.example", {192, 0, 2, 1})})));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    EXPECT_FALSE(parsed->has_value());
}

TEST(ParseMonitorMessage, NamesAreLowerCaseWithoutTrailingDotAndOddBytesEscaped) {
    // resolved escapes '.' inside a label as "\." and odd bytes as \DDD; we use \DDD for both.
    const auto parsed = parse_monitor_message(success_message(
        "Odd\\.Label\\032X.Example.",
        Json::array({cname_item("odd\\046label\\032x.example.", "Target.EXAMPLE.net."),
                     a_item("target.example.net", {192, 0, 2, 1})})));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->name, "odd\\046label\\032x.example");
    EXPECT_EQ((*parsed)->cname_chain, std::vector<std::string>{"target.example.net"});
}

TEST(ParseMonitorMessage, AnErrorReplyIsAnError) {
    const auto parsed = parse_monitor_message(
        R"({"error":"io.systemd.System","parameters":{"errno":1,"errnoName":"EPERM"}})");
    ASSERT_FALSE(parsed.has_value());
    EXPECT_NE(parsed.error().what.find("io.systemd.System"), std::string::npos)
        << parsed.error().what;
}

// Replaces the first answer item of kSimpleMessage's shape by `item`.
std::string with_item(const Json& item) {
    return success_message("example.org", Json::array({item}));
}

TEST(ParseMonitorMessage, MalformedAndHostileTextIsAnErrorNeverACrash) {
    const Json key = {{"class", 1}, {"type", 1}, {"name", "example.org"}};
    const auto with_address = [&key](Json value) {
        return with_item({{"rr", {{"key", key}, {"address", std::move(value)}}}});
    };
    const auto with_key = [](Json value) {
        return with_item({{"rr", {{"key", std::move(value)}, {"address", {192, 0, 2, 1}}}}});
    };
    const auto with_parameter = [](const char* name, Json value) {
        Json message = Json::parse(kSimpleMessage);
        message["parameters"][name] = std::move(value);
        return message.dump();
    };
    const std::vector<std::string> inputs = {
        "",
        "garbage",
        "{",
        R"({"parameters":{})",
        "[]",
        "null",
        "42",
        R"("string")",
        std::string("{\"parameters\":{}}\0{}", 20), // a NUL inside: not one message
        R"({"parameters":{"state":"success"}} trailing)",
        R"({"parameters":[]})",
        R"({"parameters":"x"})",
        R"({"continues":"yes"})",
        R"({"error":5})",
        R"({"error":""})",
        R"({"parameters":{"state":5}})",
        R"({"parameters":{"state":"success","answer":[]}})", // no question
        R"({"parameters":{"state":"success","question":[]}})",
        R"({"parameters":{"state":"success","question":"x"}})",
        R"({"parameters":{"state":"success","question":[5]}})",
        R"({"parameters":{"state":"success","question":[{"name":5}]}})",
        R"({"parameters":{"state":"success","question":[{"type":1}]}})",
        with_parameter("collectedQuestions", "x"),
        with_parameter("collectedQuestions", Json::array({Json::array()})),
        with_parameter("answer", Json::object()),
        with_parameter("answer", "x"),
        with_parameter("answer", Json::array({5})),
        with_parameter("answer", Json::array({Json::array()})),
        with_item({{"rr", 5}}),
        with_item({{"rr", Json::object()}}),
        with_item({{"rr", {{"key", "example.org"}}}}),
        with_item({{"rr", {{"key", key}, {"address", {192, 0, 2, 1}}}}, {"raw", 5}}),
        with_key({{"class", 1}, {"type", "1"}, {"name", "example.org"}}),
        with_key({{"class", 1}, {"type", -1}, {"name", "example.org"}}),
        with_key({{"class", 1}, {"type", 1.0}, {"name", "example.org"}}),
        with_key({{"class", 1}, {"type", 65536}, {"name", "example.org"}}),
        with_key({{"class", 1}, {"name", "example.org"}}),
        with_key({{"class", "IN"}, {"type", 1}, {"name", "example.org"}}),
        with_key({{"class", 1}, {"type", 1}, {"name", 7}}),
        with_key({{"class", 1}, {"type", 1}}),
        with_key({{"class", 1}, {"type", 1}, {"name", "a..example"}}),
        with_key({{"class", 1}, {"type", 1}, {"name", ".example"}}),
        with_key({{"class", 1}, {"type", 1}, {"name", "example\\"}}),
        with_key({{"class", 1}, {"type", 1}, {"name", "example\\25"}}),
        with_key({{"class", 1}, {"type", 1}, {"name", "example\\256"}}),
        with_key({{"class", 1}, {"type", 1}, {"name", std::string(64, 'a') + ".example"}}),
        with_key({{"class", 1},
                  {"type", 1},
                  {"name",
                   [] {
                       std::string name;
                       for (int i = 0; i < 60; ++i) {
                           name += "abcd.";
                       }
                       return name + "example";
                   }()}}),
        with_address("192.0.2.1"),
        with_address(Json::array()),
        with_address({192, 0, 2}),
        with_address({192, 0, 2, 1, 5}),
        with_address({192, 0, 2, 256}),
        with_address({192, 0, 2, -1}),
        with_address({192, 0, 2, 1.5}),
        with_address({192, 0, 2, "1"}),
        with_address({192, 0, 2, nullptr}),
        with_item({{"rr", {{"key", key}}}}),
        with_item({{"rr",
                    {{"key", {{"class", 1}, {"type", 28}, {"name", "example.org"}}},
                     {"address", {192, 0, 2, 1}}}}}),
        with_item({{"rr", {{"key", {{"class", 1}, {"type", 5}, {"name", "example.org"}}}}}}),
        with_item({{"rr",
                    {{"key", {{"class", 1}, {"type", 5}, {"name", "example.org"}}},
                     {"name", Json::array()}}}}),
        // Invalid UTF-8 in a string.
        "{\"parameters\":{\"state\":\"succ\xff\xfe\"}}",
        // Hostile nesting and sizes.
        std::string(100000, '[') + std::string(100000, ']'),
        R"({"parameters":)" + std::string(40, '[') + std::string(40, ']') + "}",
        std::string(500, ']') + std::string(40, '[') + std::string(40, ']'),
        R"({"x":")" + std::string((std::size_t{1} << 20U) + 1, 'a') + R"("})",
        R"({"parameters":{"state":"success","x":1e999999}})",
    };
    for (const std::string& input : inputs) {
        const auto parsed = parse_monitor_message(input);
        EXPECT_FALSE(parsed.has_value()) << input.substr(0, 300);
    }
}

TEST(ParseMonitorMessage, HugeAnswerArraysAreRefused) {
    Json answer = Json::array();
    for (int i = 0; i < 10000; ++i) {
        answer.push_back(a_item("example.org", {192, 0, 2, static_cast<std::uint8_t>(i)}));
    }
    EXPECT_FALSE(parse_monitor_message(success_message("example.org", answer)).has_value());
    answer.erase(answer.begin() + 1000, answer.end());
    const auto parsed = parse_monitor_message(success_message("example.org", answer));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->addresses.size(), 256U); // the last byte wraps: 256 distinct addresses
}

TEST(ParseMonitorMessage, UnknownFieldsAndARecordWithoutClassAreAccepted) {
    Json message = Json::parse(kSimpleMessage);
    message["parameters"]["futureField"] = {{"nested", Json::array({1, 2, 3})}};
    message["parameters"]["answer"][0]["rr"]["key"].erase("class");
    message["somethingNew"] = true;
    const auto parsed = parse_monitor_message(message.dump());
    ASSERT_TRUE(parsed.has_value()) << parsed.error().what;
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->addresses, std::vector<IpAddress>{address("192.0.2.7")});
}

// Every prefix and many single-byte changes of real messages: whatever comes back, nothing
// crashes or reads out of bounds (run under ASan or valgrind to see the latter).
TEST(ParseMonitorMessage, MutatedMessagesNeverCrash) {
    std::size_t answers = 0;
    for (const std::string_view sample : {kCnameChainMessage, kSimpleMessage, kReadyMessage}) {
        for (std::size_t length = 0; length < sample.size(); ++length) {
            // A cut message is never a whole one.
            EXPECT_FALSE(parse_monitor_message(sample.substr(0, length)).has_value()) << length;
        }
        for (std::size_t i = 0; i < sample.size(); ++i) {
            for (const char replacement : {'\0', '"', '\\', '[', '}', '9', '.', '\xff'}) {
                std::string mutated(sample);
                mutated[i] = replacement;
                const auto parsed = parse_monitor_message(mutated);
                answers += parsed.has_value() && parsed->has_value() ? 1 : 0;
            }
        }
    }
    // Many mutations only touch names or raw bytes and still leave a usable answer.
    EXPECT_GT(answers, 0U);
}

// ---------------------------------------------------------------------------------------------
// ResolvedMonitor against a fake resolved on a real Unix socket.

template <typename Closable>
void close_quietly(Closable& closable) {
    boost::system::error_code ignored;
    // NOLINTNEXTLINE(bugprone-unused-return-value): the same error is in `ignored`, unused.
    closable.close(ignored);
}

// Listens where resolved's monitor socket would be, records each connection's first message
// (the subscription) and sends what the test tells it to, on the test's io_context.
class FakeResolved {
public:
    FakeResolved(asio::io_context& io, std::filesystem::path path)
        : path_(std::move(path)), acceptor_(io, Local::endpoint(path_.string())) {
        accept();
    }
    ~FakeResolved() { close(); }
    FakeResolved(const FakeResolved&) = delete;
    FakeResolved& operator=(const FakeResolved&) = delete;
    FakeResolved(FakeResolved&&) = delete;
    FakeResolved& operator=(FakeResolved&&) = delete;

    // The subscription requests received, one per connection, without their NUL.
    [[nodiscard]] const std::vector<std::string>& requests() const { return requests_; }

    // Sends bytes as they are to the newest connection.
    void send_bytes(std::string bytes) {
        writes_.push_back(std::move(bytes));
        if (writes_.size() == 1) {
            write_next();
        }
    }
    void send(std::string_view message) { send_bytes(std::string(message) + '\0'); }

    void drop_client() {
        if (client_) {
            close_quietly(*client_);
        }
    }

    // Stops listening and removes the socket file.
    void close() {
        close_quietly(acceptor_);
        drop_client();
        std::error_code not_there;
        std::filesystem::remove(path_, not_there);
    }

    // True when everything sent has been written to the socket.
    [[nodiscard]] bool idle() const { return writes_.empty(); }

private:
    void accept() {
        acceptor_.async_accept(
            [this](const boost::system::error_code& error, Local::socket socket) {
                if (error) {
                    return;
                }
                client_ = std::make_shared<Local::socket>(std::move(socket));
                request_buffer_.clear();
                read_request(client_);
                accept();
            });
    }

    void read_request(const std::shared_ptr<Local::socket>& client) {
        asio::async_read_until(
            *client, asio::dynamic_buffer(request_buffer_), '\0',
            [this, client](const boost::system::error_code& error, std::size_t size) {
                if (error) {
                    return;
                }
                requests_.push_back(request_buffer_.substr(0, size - 1));
            });
    }

    void write_next() {
        asio::async_write(
            *client_, asio::buffer(writes_.front()),
            [this, client = client_](const boost::system::error_code& error, std::size_t) {
                if (error) {
                    writes_.clear();
                    return;
                }
                writes_.pop_front();
                if (!writes_.empty()) {
                    write_next();
                }
            });
    }

    std::filesystem::path path_;
    Local::acceptor acceptor_;
    std::shared_ptr<Local::socket> client_;
    std::string request_buffer_;
    std::vector<std::string> requests_;
    std::deque<std::string> writes_;
};

class ResolvedMonitorTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "pw-resolved-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        directory_ = pattern;
        socket_path_ = directory_ / "io.systemd.Resolve.Monitor";
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove_all(directory_, ignored);
    }

    ResolvedMonitor::OnAnswer record_answers() {
        return [this](const MonitoredAnswer& answer) {
            answers_.push_back(answer);
        };
    }

    // Runs the loop until `done` holds. The time limit only keeps a broken test from hanging;
    // nothing here measures time.
    template <typename Predicate>
    bool run_until(Predicate done) {
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!done()) {
            if (std::chrono::steady_clock::now() > give_up) {
                return false;
            }
            io_.run_one_for(milliseconds(100));
            if (io_.stopped()) {
                io_.restart();
            }
        }
        return true;
    }

    // Runs `count` handlers, waiting for each; returns how many ran before the loop ran dry.
    std::size_t run_handlers(std::size_t count) {
        std::size_t ran = 0;
        while (ran < count && io_.run_one() == 1) {
            ++ran;
        }
        return ran;
    }

    asio::io_context io_;
    std::filesystem::path directory_;
    std::filesystem::path socket_path_;
    std::vector<MonitoredAnswer> answers_;
    static constexpr milliseconds kRetry{5};
};

TEST_F(ResolvedMonitorTest, SubscribesAndHandsAnswersOver) {
    FakeResolved resolved(io_, socket_path_);
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), kRetry);
    monitor.start();
    ASSERT_TRUE(run_until([&] { return !resolved.requests().empty(); }));

    const Json request = Json::parse(resolved.requests().front(), nullptr, false);
    ASSERT_TRUE(request.is_object()) << resolved.requests().front();
    EXPECT_EQ(request.value("method", ""), "io.systemd.Resolve.Monitor.SubscribeQueryResults");
    EXPECT_EQ(request.value("more", false), true);

    resolved.send(kReadyMessage);
    resolved.send(kCnameChainMessage);
    resolved.send(kSimpleMessage);
    ASSERT_TRUE(run_until([&] { return answers_.size() == 2; }));
    EXPECT_EQ(answers_[0].name, "www.example.com");
    EXPECT_EQ(answers_[0].addresses.size(), 2U);
    EXPECT_EQ(answers_[1].name, "example.org");
    EXPECT_TRUE(monitor.connected());
    EXPECT_EQ(monitor.counters().connections, 1U);
    EXPECT_EQ(monitor.counters().answers, 2U);
    EXPECT_EQ(monitor.counters().malformed, 0U);
}

TEST_F(ResolvedMonitorTest, SurvivesAMalformedMessage) {
    FakeResolved resolved(io_, socket_path_);
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), kRetry);
    monitor.start();
    ASSERT_TRUE(run_until([&] { return !resolved.requests().empty(); }));
    resolved.send("this is not JSON");
    resolved.send(R"({"parameters":{"state":"success","question":[{"name":5}]},"continues":true})");
    resolved.send(kSimpleMessage);
    ASSERT_TRUE(run_until([&] { return answers_.size() == 1; }));
    EXPECT_EQ(monitor.counters().malformed, 2U);
    EXPECT_EQ(monitor.counters().connections, 1U); // the same connection carried on
    EXPECT_EQ(resolved.requests().size(), 1U);
}

TEST_F(ResolvedMonitorTest, MessagesSplitAcrossWritesAndSharingOneWriteAreAllFound) {
    FakeResolved resolved(io_, socket_path_);
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), kRetry);
    monitor.start();
    ASSERT_TRUE(run_until([&] { return !resolved.requests().empty(); }));
    const std::string first(kCnameChainMessage);
    resolved.send_bytes(first.substr(0, 100));
    // Let the first part arrive on its own before the rest.
    ASSERT_TRUE(run_until([&] { return resolved.idle(); }));
    io_.poll();
    resolved.send_bytes(first.substr(100) + '\0' + std::string(kSimpleMessage) + '\0' +
                        std::string(kReadyMessage) + '\0');
    ASSERT_TRUE(run_until([&] { return answers_.size() == 2; }));
    EXPECT_EQ(answers_[0].name, "www.example.com");
    EXPECT_EQ(answers_[1].name, "example.org");
    EXPECT_EQ(monitor.counters().malformed, 0U);
}

TEST_F(ResolvedMonitorTest, ReconnectsAfterTheServerClosesTheConnection) {
    FakeResolved resolved(io_, socket_path_);
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), kRetry);
    monitor.start();
    ASSERT_TRUE(run_until([&] { return monitor.counters().connections == 1; }));
    resolved.drop_client();
    ASSERT_TRUE(run_until([&] { return resolved.requests().size() == 2; }));
    ASSERT_TRUE(run_until([&] { return monitor.counters().connections == 2; }));
    resolved.send(kSimpleMessage);
    ASSERT_TRUE(run_until([&] { return answers_.size() == 1; }));
    EXPECT_TRUE(monitor.connected());
}

TEST_F(ResolvedMonitorTest, ReconnectsAfterAnErrorReplyOrTheLastReply) {
    FakeResolved resolved(io_, socket_path_);
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), kRetry);
    monitor.start();
    ASSERT_TRUE(run_until([&] { return !resolved.requests().empty(); }));
    resolved.send(R"({"error":"io.systemd.System","parameters":{"errno":1}})");
    ASSERT_TRUE(run_until([&] { return resolved.requests().size() == 2; }));
    // A reply without "continues" ends the call: its answer counts, then the monitor asks again.
    resolved.send(
        R"({"parameters":{"state":"success","question":[{"class":1,"type":1,"name":"last.example"}],"answer":[{"rr":{"key":{"class":1,"type":1,"name":"last.example"},"address":[192,0,2,9]}}]}})");
    ASSERT_TRUE(run_until([&] { return resolved.requests().size() == 3; }));
    ASSERT_EQ(answers_.size(), 1U);
    EXPECT_EQ(answers_[0].name, "last.example");
    EXPECT_EQ(monitor.counters().malformed, 0U);
}

TEST_F(ResolvedMonitorTest, AnOversizedMessageIsMalformedAndTheMonitorReconnects) {
    FakeResolved resolved(io_, socket_path_);
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), kRetry);
    monitor.start();
    ASSERT_TRUE(run_until([&] { return !resolved.requests().empty(); }));
    resolved.send_bytes(std::string((std::size_t{1} << 20U) + 4096, 'x'));
    ASSERT_TRUE(run_until([&] { return resolved.requests().size() == 2; }));
    EXPECT_EQ(monitor.counters().malformed, 1U);
    ASSERT_TRUE(run_until([&] { return monitor.counters().connections == 2; }));
    resolved.send(kSimpleMessage);
    ASSERT_TRUE(run_until([&] { return answers_.size() == 1; }));
}

TEST_F(ResolvedMonitorTest, StartsWithoutTheSocketAndConnectsOnceItAppears) {
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), kRetry);
    monitor.start();
    // Several failed attempts: each is a connect that fails and a timer that expires.
    ASSERT_EQ(run_handlers(8), 8U);
    EXPECT_FALSE(monitor.connected());
    EXPECT_EQ(monitor.counters().connections, 0U);

    FakeResolved resolved(io_, socket_path_);
    ASSERT_TRUE(run_until(
        [&] { return monitor.counters().connections == 1 && !resolved.requests().empty(); }));
    EXPECT_TRUE(monitor.connected());
    resolved.send(kSimpleMessage);
    ASSERT_TRUE(run_until([&] { return answers_.size() == 1; }));
}

TEST_F(ResolvedMonitorTest, ASocketFileNobodyListensOnIsRetried) {
    {
        // Leaves the socket file behind, as a crashed resolved would.
        Local::acceptor stale(io_, Local::endpoint(socket_path_.string()));
    }
    ASSERT_TRUE(std::filesystem::exists(socket_path_));
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), kRetry);
    monitor.start();
    ASSERT_EQ(run_handlers(6), 6U);
    EXPECT_FALSE(monitor.connected());
    std::filesystem::remove(socket_path_);
    FakeResolved resolved(io_, socket_path_);
    ASSERT_TRUE(run_until([&] { return monitor.counters().connections == 1; }));
}

TEST_F(ResolvedMonitorTest, StopWithPendingHandlersIsSafeAndLeavesNoWork) {
    FakeResolved resolved(io_, socket_path_);
    auto monitor = std::make_unique<ResolvedMonitor>(io_, socket_path_, record_answers(), kRetry);
    monitor->start();
    ASSERT_TRUE(run_until([&] { return monitor->counters().connections == 1; }));
    // A read is pending now; stop() and destruction must not wait for it.
    resolved.send(kSimpleMessage);
    monitor->stop();
    EXPECT_FALSE(monitor->connected());
    monitor.reset();
    resolved.close();
    io_.run_for(std::chrono::seconds(20));
    EXPECT_TRUE(io_.stopped()) << "work left behind after stop()";
    EXPECT_TRUE(answers_.empty()) << "an answer was handed over after stop()";
}

TEST_F(ResolvedMonitorTest, StopWhileWaitingToReconnectLeavesNoWork) {
    ResolvedMonitor monitor(io_, socket_path_, record_answers(), std::chrono::hours(1));
    monitor.start();
    ASSERT_EQ(io_.run_one(), 1U); // the failed connect; the hour-long timer is pending now
    monitor.stop();
    io_.run_for(std::chrono::seconds(20));
    EXPECT_TRUE(io_.stopped());
    // And it can be started again.
    io_.restart();
    FakeResolved resolved(io_, socket_path_);
    monitor.start();
    ASSERT_TRUE(run_until([&] { return monitor.counters().connections == 1; }));
}

TEST_F(ResolvedMonitorTest, StopFromInsideOnAnswerDeliversNothingMore) {
    FakeResolved resolved(io_, socket_path_);
    std::unique_ptr<ResolvedMonitor> monitor;
    monitor = std::make_unique<ResolvedMonitor>(
        io_, socket_path_,
        [&](const MonitoredAnswer& answer) {
            answers_.push_back(answer);
            monitor->stop();
        },
        kRetry);
    monitor->start();
    ASSERT_TRUE(run_until([&] { return !resolved.requests().empty(); }));
    resolved.send_bytes(std::string(kSimpleMessage) + '\0' + std::string(kCnameChainMessage) +
                        '\0');
    ASSERT_TRUE(run_until([&] { return !answers_.empty(); }));
    resolved.close();
    io_.run_for(std::chrono::seconds(20));
    EXPECT_TRUE(io_.stopped());
    EXPECT_EQ(answers_.size(), 1U);
    EXPECT_FALSE(monitor->connected());
}

TEST_F(ResolvedMonitorTest, DestroyingTheMonitorFromInsideOnAnswerIsSafe) {
    FakeResolved resolved(io_, socket_path_);
    std::unique_ptr<ResolvedMonitor> monitor;
    monitor = std::make_unique<ResolvedMonitor>(
        io_, socket_path_,
        [&](const MonitoredAnswer& answer) {
            answers_.push_back(answer);
            monitor.reset();
        },
        kRetry);
    monitor->start();
    ASSERT_TRUE(run_until([&] { return !resolved.requests().empty(); }));
    resolved.send_bytes(std::string(kSimpleMessage) + '\0' + std::string(kSimpleMessage) + '\0');
    ASSERT_TRUE(run_until([&] { return monitor == nullptr; }));
    resolved.close();
    io_.run_for(std::chrono::seconds(20));
    EXPECT_TRUE(io_.stopped());
    EXPECT_EQ(answers_.size(), 1U);
}

} // namespace
} // namespace pw::dns
