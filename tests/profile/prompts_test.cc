#include "profile/prompts.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fakes/fake_clock.h"

namespace pw::profile {
namespace {

using Json = nlohmann::json;
using std::chrono::seconds;

PromptSubject outbound(std::string profile, std::string domain,
                       std::string_view address = "203.0.113.5", std::uint16_t port = 443) {
    PromptSubject subject;
    subject.profile = {.id = profile, .name = profile};
    subject.executable = "/usr/bin/" + profile;
    subject.pid = 4242;
    subject.direction = packet::Direction::Outbound;
    subject.protocol = packet::protocol::kTcp;
    subject.domain = std::move(domain);
    subject.remote_address = IpAddress::parse(address).value_or(IpAddress{});
    subject.remote_port = port;
    subject.local_port = 40000;
    return subject;
}

PromptSubject inbound(std::string profile, std::uint16_t local_port) {
    PromptSubject subject = outbound(std::move(profile), "", "192.168.1.20", 51000);
    subject.direction = packet::Direction::Inbound;
    subject.local_port = local_port;
    return subject;
}

struct Heard {
    PromptEvent event;
    std::uint64_t id;
    std::optional<PromptAnswer> answer;
};

class PromptBrokerTest : public ::testing::Test {
protected:
    PromptBrokerTest() {
        broker_.subscribe(
            [this](PromptEvent event, const Prompt& prompt, const PromptAnswer* answer) {
                heard_.push_back(
                    {event, prompt.id, answer != nullptr ? std::optional(*answer) : std::nullopt});
            });
    }

    testing::FakeClock clock_;
    PromptBroker broker_{clock_, {.per_profile = 3, .total = 5}};
    std::vector<Heard> heard_;
};

TEST_F(PromptBrokerTest, ConnectionsOfOneAppToOneDomainShareOnePrompt) {
    const auto first =
        broker_.hold(outbound("curl", "example.com", "203.0.113.5", 443), seconds(60));
    const auto second =
        broker_.hold(outbound("curl", "example.com", "203.0.113.6", 80), seconds(60));
    ASSERT_TRUE(first.has_value());
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(*first, *second);
    ASSERT_EQ(broker_.list().size(), 1U);
    EXPECT_EQ(broker_.list().front().connections, 2U);
    ASSERT_EQ(heard_.size(), 1U); // opened once
    EXPECT_EQ(heard_[0].event, PromptEvent::Opened);
}

TEST_F(PromptBrokerTest, OtherAppsAndOtherDestinationsGetPromptsOfTheirOwn) {
    const auto curl = broker_.hold(outbound("curl", "example.com"), seconds(60));
    const auto wget = broker_.hold(outbound("wget", "example.com"), seconds(60));
    const auto other = broker_.hold(outbound("curl", "example.net"), seconds(60));
    const auto by_address = broker_.hold(outbound("curl", "", "198.51.100.7"), seconds(60));
    ASSERT_TRUE(curl && wget && other && by_address);
    EXPECT_NE(*curl, *wget);
    EXPECT_NE(*curl, *other);
    EXPECT_NE(*other, *by_address);
    EXPECT_EQ(broker_.size(), 4U);
}

TEST_F(PromptBrokerTest, InboundPromptsAreOnePerLocalPort) {
    const auto ssh = broker_.hold(inbound("sshd", 22), seconds(60));
    PromptSubject again = inbound("sshd", 22);
    again.remote_address = IpAddress::parse("192.168.1.99").value_or(IpAddress{});
    const auto same = broker_.hold(again, seconds(60));
    const auto web = broker_.hold(inbound("sshd", 8080), seconds(60));
    ASSERT_TRUE(ssh && same && web);
    EXPECT_EQ(*ssh, *same);
    EXPECT_NE(*ssh, *web);
}

TEST_F(PromptBrokerTest, AnAnswerClosesThePromptAndEveryListenerHearsIt) {
    const auto id = broker_.hold(outbound("curl", "example.com"), seconds(60));
    ASSERT_TRUE(id.has_value());
    const PromptAnswer permit_always{.verdict = PromptVerdict::Permit,
                                     .target = PromptTarget::Domain,
                                     .duration = PromptDuration::Always};
    const auto answered = broker_.answer(*id, permit_always);
    ASSERT_TRUE(answered.has_value()) << answered.error().what;
    EXPECT_EQ(answered->subject.domain, "example.com");
    EXPECT_EQ(broker_.size(), 0U);
    ASSERT_EQ(heard_.size(), 2U);
    EXPECT_EQ(heard_[1].event, PromptEvent::Answered);
    EXPECT_EQ(heard_[1].answer, permit_always);
    // The next connection opens a new prompt.
    const auto next = broker_.hold(outbound("curl", "example.com"), seconds(60));
    ASSERT_TRUE(next.has_value());
    EXPECT_NE(*next, *id);
}

TEST_F(PromptBrokerTest, AWrongAnswerChangesNothing) {
    const auto id = broker_.hold(outbound("curl", ""), seconds(60));
    ASSERT_TRUE(id.has_value());
    const auto by_domain = broker_.answer(*id, {.verdict = PromptVerdict::Permit,
                                                .target = PromptTarget::Domain,
                                                .duration = PromptDuration::Once});
    ASSERT_FALSE(by_domain.has_value());
    EXPECT_NE(by_domain.error().what.find("no domain"), std::string::npos);
    EXPECT_FALSE(broker_.answer(*id + 100, {}).has_value());
    EXPECT_EQ(broker_.size(), 1U);
    EXPECT_EQ(heard_.size(), 1U);
}

TEST_F(PromptBrokerTest, UnansweredPromptsExpireAtTheirDeadline) {
    const auto early = broker_.hold(outbound("curl", "a.example"), seconds(10));
    clock_.advance(seconds(5));
    const auto late = broker_.hold(outbound("curl", "b.example"), seconds(10));
    // Joining does not move the deadline.
    ASSERT_TRUE(broker_.hold(outbound("curl", "a.example"), seconds(10)).has_value());
    ASSERT_TRUE(early && late);
    EXPECT_EQ(broker_.next_deadline(), clock_.now() + seconds(5));
    clock_.advance(seconds(5));
    broker_.expire();
    ASSERT_EQ(broker_.size(), 1U);
    EXPECT_EQ(broker_.list().front().id, *late);
    EXPECT_EQ(heard_.back().event, PromptEvent::Expired);
    EXPECT_EQ(heard_.back().id, *early);
}

TEST_F(PromptBrokerTest, PromptsAreBoundedPerAppAndInTotal) {
    for (int index = 0; index < 3; ++index) {
        ASSERT_TRUE(
            broker_.hold(outbound("flood", "n" + std::to_string(index) + ".example"), seconds(60)));
    }
    const auto fourth = broker_.hold(outbound("flood", "n3.example"), seconds(60));
    ASSERT_FALSE(fourth.has_value());
    EXPECT_EQ(fourth.error(), PromptBroker::Refusal::TooManyForProfile);
    // Joining an open prompt is always possible.
    EXPECT_TRUE(broker_.hold(outbound("flood", "n0.example"), seconds(60)).has_value());
    // Other apps still get prompts, up to the total.
    EXPECT_TRUE(broker_.hold(outbound("curl", "example.com"), seconds(60)).has_value());
    EXPECT_TRUE(broker_.hold(outbound("wget", "example.com"), seconds(60)).has_value());
    const auto over = broker_.hold(outbound("ssh", "example.com"), seconds(60));
    ASSERT_FALSE(over.has_value());
    EXPECT_EQ(over.error(), PromptBroker::Refusal::TooMany);
}

TEST_F(PromptBrokerTest, ThePromptClosesWhenItsLastConnectionStopsWaiting) {
    const auto id = broker_.hold(outbound("curl", "example.com"), seconds(60));
    ASSERT_TRUE(broker_.hold(outbound("curl", "example.com"), seconds(60)).has_value());
    ASSERT_TRUE(id.has_value());
    broker_.release(*id);
    EXPECT_EQ(broker_.size(), 1U);
    broker_.release(*id);
    EXPECT_EQ(broker_.size(), 0U);
    EXPECT_EQ(heard_.back().event, PromptEvent::Expired);
}

// --- Answers --------------------------------------------------------------------------------

TEST(PromptAnswers, ParseTheApiForm) {
    const PromptSubject subject = outbound("curl", "example.com");
    const auto always = parse_prompt_answer(
        Json::parse(R"({"verdict": "permit", "target": "zone", "for": "always"})"), subject);
    ASSERT_TRUE(always.has_value()) << always.error().what;
    EXPECT_EQ(always->verdict, PromptVerdict::Permit);
    EXPECT_EQ(always->target, PromptTarget::DomainAndSubdomains);
    EXPECT_EQ(always->duration, PromptDuration::Always);

    const auto timed =
        parse_prompt_answer(Json::parse(R"({"verdict": "block", "for": "15m"})"), subject);
    ASSERT_TRUE(timed.has_value()) << timed.error().what;
    EXPECT_EQ(timed->target, PromptTarget::Domain); // the default with a domain
    EXPECT_EQ(timed->duration, PromptDuration::For);
    EXPECT_EQ(timed->length, std::chrono::minutes(15));
    EXPECT_EQ(duration_text(*timed), "15m");

    for (const auto& [text, duration] : std::vector<std::pair<std::string, PromptDuration>>{
             {"once", PromptDuration::Once},
             {"exit", PromptDuration::UntilExit},
             {"restart", PromptDuration::UntilRestart},
             {"2h", PromptDuration::For},
             {"1d", PromptDuration::For}}) {
        const auto parsed =
            parse_prompt_answer(Json{{"verdict", "permit"}, {"for", text}}, subject);
        ASSERT_TRUE(parsed.has_value()) << text;
        EXPECT_EQ(parsed->duration, duration) << text;
    }
}

TEST(PromptAnswers, BadAnswersSayWhatIsWrong) {
    const PromptSubject subject = outbound("curl", "");
    const auto error = [&subject](std::string_view text) {
        const auto parsed = parse_prompt_answer(Json::parse(text), subject);
        return parsed ? std::string("accepted") : parsed.error().what;
    };
    EXPECT_EQ(error(R"({"verdict": "allow", "for": "once"})"),
              "verdict 'allow': expected permit or block");
    EXPECT_EQ(error(R"({"for": "once"})"), "verdict is missing (permit or block)");
    EXPECT_EQ(error(R"({"verdict": "permit"})"),
              "for is missing (once, restart, exit, always or a duration such as 15m)");
    EXPECT_EQ(error(R"({"verdict": "permit", "for": "15x"})"),
              "for '15x': expected once, restart, exit, always or a duration such as 15m, 2h or "
              "1d");
    EXPECT_EQ(error(R"({"verdict": "permit", "for": "0m"})"),
              "for '0m': expected once, restart, exit, always or a duration such as 15m, 2h or "
              "1d");
    EXPECT_EQ(error(R"({"verdict": "permit", "for": "once", "target": "domain"})"),
              "target domain: this connection has no domain (answer for its ip)");
    EXPECT_EQ(error(R"({"verdict": "permit", "for": "once", "target": "port"})"),
              "target port is for inbound connections (answer for the domain or the ip)");
    EXPECT_EQ(error(R"({"verdict": "permit", "for": "once", "extra": 1})"),
              "unknown field 'extra' (expected verdict, target and for)");
    EXPECT_EQ(error(R"({"verdict": 1, "for": "once"})"), "verdict must be a string");
    EXPECT_EQ(error(R"(["permit"])"),
              R"(the answer must be a JSON object such as {"verdict": "permit", "for": "always"})");
}

TEST(PromptAnswers, RulesOfAnswers) {
    const PromptSubject web = outbound("curl", "example.com", "203.0.113.5");
    EXPECT_EQ(
        rule_for(web, {.verdict = PromptVerdict::Permit, .target = PromptTarget::Domain}).text,
        "+ example.com");
    EXPECT_EQ(rule_for(web, {.verdict = PromptVerdict::Block,
                             .target = PromptTarget::DomainAndSubdomains})
                  .text,
              "- .example.com");
    const AnswerRule address =
        rule_for(web, {.verdict = PromptVerdict::Permit, .target = PromptTarget::Address});
    EXPECT_EQ(address.text, "+ 203.0.113.5");
    EXPECT_EQ(address.list, RuleListName::Endpoints);
    const AnswerRule port = rule_for(
        inbound("sshd", 22), {.verdict = PromptVerdict::Permit, .target = PromptTarget::LocalPort});
    EXPECT_EQ(port.text, "+ * tcp/22");
    EXPECT_EQ(port.list, RuleListName::ServiceEndpoints);
}

} // namespace
} // namespace pw::profile
