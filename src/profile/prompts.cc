#include "profile/prompts.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/duration.h"
#include "packet/packet_info.h"

namespace pw::profile {
namespace {

using Json = nlohmann::json;

constexpr std::chrono::seconds kShortestFor{1};
constexpr std::chrono::seconds kLongestFor = std::chrono::hours(24 * 366);

std::string_view protocol_name(std::uint8_t protocol) {
    switch (protocol) {
        case packet::protocol::kTcp:
            return "tcp";
        case packet::protocol::kUdp:
            return "udp";
        case packet::protocol::kUdpLite:
            return "udplite";
        case packet::protocol::kSctp:
            return "sctp";
        default:
            return {};
    }
}

Result<PromptDuration> parse_duration(std::string_view text, std::chrono::seconds& length) {
    if (text == "once") {
        return PromptDuration::Once;
    }
    if (text == "restart") {
        return PromptDuration::UntilRestart;
    }
    if (text == "exit") {
        return PromptDuration::UntilExit;
    }
    if (text == "always") {
        return PromptDuration::Always;
    }
    if (const auto parsed = pw::parse_duration(text)) {
        length = *parsed;
        return PromptDuration::For;
    }
    return fail("for '" + std::string(text) +
                "': expected once, restart, exit, always or a duration such as 15m, 2h or 1d");
}

Result<PromptTarget> parse_target(std::string_view text) {
    constexpr std::array<std::pair<std::string_view, PromptTarget>, 4> kTargets = {{
        {"domain", PromptTarget::Domain},
        {"zone", PromptTarget::DomainAndSubdomains},
        {"ip", PromptTarget::Address},
        {"port", PromptTarget::LocalPort},
    }};
    for (const auto& [name, target] : kTargets) {
        if (text == name) {
            return target;
        }
    }
    return fail("target '" + std::string(text) + "': expected domain, zone, ip or port");
}

// A string member of the answer object, or nullopt when it is absent.
Result<std::optional<std::string_view>> string_member(const Json& body, const char* name) {
    const auto found = body.find(name);
    if (found == body.end()) {
        return std::optional<std::string_view>{};
    }
    if (!found->is_string()) {
        return fail(std::string(name) + " must be a string");
    }
    return std::optional<std::string_view>(found->get_ref<const std::string&>());
}

} // namespace

PromptTarget default_target(const PromptSubject& subject) {
    if (subject.direction == packet::Direction::Inbound) {
        return PromptTarget::LocalPort;
    }
    return subject.domain.empty() ? PromptTarget::Address : PromptTarget::Domain;
}

Result<PromptAnswer> parse_prompt_answer(const Json& body, const PromptSubject& subject) {
    if (!body.is_object()) {
        return fail(
            "the answer must be a JSON object such as "
            R"({"verdict": "permit", "for": "always"})");
    }
    for (const auto& [name, value] : body.items()) {
        if (name != "verdict" && name != "target" && name != "for") {
            return fail("unknown field '" + name + "' (expected verdict, target and for)");
        }
    }
    PromptAnswer answer;
    const auto verdict = string_member(body, "verdict");
    if (!verdict) {
        return std::unexpected(verdict.error());
    }
    if (*verdict == "permit") {
        answer.verdict = PromptVerdict::Permit;
    } else if (*verdict == "block") {
        answer.verdict = PromptVerdict::Block;
    } else {
        return fail(verdict->has_value()
                        ? "verdict '" + std::string(**verdict) + "': expected permit or block"
                        : std::string("verdict is missing (permit or block)"));
    }
    const auto target = string_member(body, "target");
    if (!target) {
        return std::unexpected(target.error());
    }
    answer.target = default_target(subject);
    if (target->has_value()) {
        auto parsed = parse_target(**target);
        if (!parsed) {
            return std::unexpected(parsed.error());
        }
        answer.target = *parsed;
    }
    const auto duration = string_member(body, "for");
    if (!duration) {
        return std::unexpected(duration.error());
    }
    if (!duration->has_value()) {
        return fail("for is missing (once, restart, exit, always or a duration such as 15m)");
    }
    auto parsed = parse_duration(**duration, answer.length);
    if (!parsed) {
        return std::unexpected(parsed.error());
    }
    answer.duration = *parsed;
    if (auto fits = check_answer(subject, answer); !fits) {
        return std::unexpected(fits.error());
    }
    return answer;
}

Status check_answer(const PromptSubject& subject, const PromptAnswer& answer) {
    const bool inbound = subject.direction == packet::Direction::Inbound;
    switch (answer.target) {
        case PromptTarget::Domain:
        case PromptTarget::DomainAndSubdomains:
            if (inbound || subject.domain.empty()) {
                return fail("target domain: this connection has no domain (answer for its ip" +
                            std::string(inbound ? " or port)" : ")"));
            }
            break;
        case PromptTarget::Address:
            break;
        case PromptTarget::LocalPort:
            if (!inbound) {
                return fail(
                    "target port is for inbound connections (answer for the domain or "
                    "the ip)");
            }
            if (protocol_name(subject.protocol).empty()) {
                return fail("target port: this protocol has no ports (answer for the ip)");
            }
            break;
    }
    if (answer.duration == PromptDuration::For &&
        (answer.length < kShortestFor || answer.length > kLongestFor)) {
        return fail("for: a duration from 1s to 366d");
    }
    return {};
}

AnswerRule rule_for(const PromptSubject& subject, const PromptAnswer& answer) {
    std::string text = answer.verdict == PromptVerdict::Permit ? "+ " : "- ";
    switch (answer.target) {
        case PromptTarget::Domain:
            return {.list = RuleListName::Endpoints, .text = text + subject.domain};
        case PromptTarget::DomainAndSubdomains:
            return {.list = RuleListName::Endpoints, .text = text + "." + subject.domain};
        case PromptTarget::Address:
            return {.list = subject.direction == packet::Direction::Inbound
                                ? RuleListName::ServiceEndpoints
                                : RuleListName::Endpoints,
                    .text = text + subject.remote_address.to_string()};
        case PromptTarget::LocalPort:
            break;
    }
    return {.list = RuleListName::ServiceEndpoints,
            .text = text + "* " + std::string(protocol_name(subject.protocol)) + "/" +
                    std::to_string(subject.local_port)};
}

std::string duration_text(const PromptAnswer& answer) {
    switch (answer.duration) {
        case PromptDuration::Once:
            return "once";
        case PromptDuration::UntilExit:
            return "exit";
        case PromptDuration::UntilRestart:
            return "restart";
        case PromptDuration::Always:
            return "always";
        case PromptDuration::For:
            break;
    }
    const auto seconds = answer.length.count();
    if (seconds % 86400 == 0) {
        return std::to_string(seconds / 86400) + "d";
    }
    if (seconds % 3600 == 0) {
        return std::to_string(seconds / 3600) + "h";
    }
    if (seconds % 60 == 0) {
        return std::to_string(seconds / 60) + "m";
    }
    return std::to_string(seconds) + "s";
}

PromptBroker::Key PromptBroker::key_of(const PromptSubject& subject) {
    if (subject.direction == packet::Direction::Inbound) {
        return {subject.profile.id, subject.direction, subject.protocol,
                std::to_string(subject.local_port)};
    }
    // Outbound: one prompt per destination, whatever the port or protocol, because an answer
    // is about the destination.
    return {subject.profile.id, subject.direction, 0,
            subject.domain.empty() ? subject.remote_address.to_string() : subject.domain};
}

std::expected<std::uint64_t, PromptBroker::Refusal> PromptBroker::hold(
    const PromptSubject& subject, std::chrono::seconds timeout) {
    const Key key = key_of(subject);
    if (const auto open = by_key_.find(key); open != by_key_.end()) {
        ++prompts_.at(open->second).connections;
        return open->second;
    }
    if (prompts_.size() >= limits_.total) {
        return std::unexpected(Refusal::TooMany);
    }
    std::size_t& of_profile = open_per_profile_[subject.profile.id];
    if (of_profile >= limits_.per_profile) {
        return std::unexpected(Refusal::TooManyForProfile);
    }
    ++of_profile;
    const std::uint64_t id = next_id_++;
    Prompt& prompt = prompts_[id];
    prompt = Prompt{.id = id,
                    .subject = subject,
                    .opened = std::chrono::system_clock::now(),
                    .deadline = clock_.now() + timeout,
                    .connections = 1};
    by_key_.emplace(key, id);
    notify(PromptEvent::Opened, prompt, nullptr);
    return id;
}

void PromptBroker::release(std::uint64_t id) {
    const auto found = prompts_.find(id);
    if (found == prompts_.end()) {
        return;
    }
    if (found->second.connections > 1) {
        --found->second.connections;
        return;
    }
    Prompt closed = close(found);
    closed.connections = 0;
    notify(PromptEvent::Expired, closed, nullptr);
}

std::vector<Prompt> PromptBroker::list() const {
    std::vector<Prompt> open;
    open.reserve(prompts_.size());
    for (const auto& [id, prompt] : prompts_) {
        open.push_back(prompt);
    }
    return open;
}

const Prompt* PromptBroker::find(std::uint64_t id) const {
    const auto found = prompts_.find(id);
    return found == prompts_.end() ? nullptr : &found->second;
}

Result<Prompt> PromptBroker::answer(std::uint64_t id, const PromptAnswer& answer) {
    const auto found = prompts_.find(id);
    if (found == prompts_.end()) {
        return fail("no open prompt " + std::to_string(id) + " (it was answered, or it expired)");
    }
    if (auto fits = check_answer(found->second.subject, answer); !fits) {
        return std::unexpected(fits.error());
    }
    Prompt closed = close(found);
    notify(PromptEvent::Answered, closed, &answer);
    return closed;
}

std::optional<Clock::TimePoint> PromptBroker::next_deadline() const {
    std::optional<Clock::TimePoint> earliest;
    for (const auto& [id, prompt] : prompts_) {
        if (!earliest || prompt.deadline < *earliest) {
            earliest = prompt.deadline;
        }
    }
    return earliest;
}

void PromptBroker::expire() {
    const Clock::TimePoint now = clock_.now();
    std::vector<Prompt> expired;
    for (auto entry = prompts_.begin(); entry != prompts_.end();) {
        auto next = std::next(entry);
        if (entry->second.deadline <= now) {
            expired.push_back(close(entry));
        }
        entry = next;
    }
    for (const Prompt& prompt : expired) {
        notify(PromptEvent::Expired, prompt, nullptr);
    }
}

Prompt PromptBroker::close(std::map<std::uint64_t, Prompt>::iterator open) {
    Prompt closed = std::move(open->second);
    prompts_.erase(open);
    by_key_.erase(key_of(closed.subject));
    if (auto count = open_per_profile_.find(closed.subject.profile.id);
        count != open_per_profile_.end() && --count->second == 0) {
        open_per_profile_.erase(count);
    }
    return closed;
}

void PromptBroker::notify(PromptEvent event, const Prompt& prompt,
                          const PromptAnswer* answer) const {
    for (const Listener& listener : listeners_) {
        listener(event, prompt, answer);
    }
}

} // namespace pw::profile
