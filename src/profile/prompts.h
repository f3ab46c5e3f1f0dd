#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/clock.h"
#include "common/ip_address.h"
#include "common/result.h"
#include "firewall/settings.h"
#include "packet/packet_info.h"

namespace pw::profile {

// What a prompt asks about: one application wanting to reach one destination (outbound: a
// domain, or the address when no name is known), or to be reached on one local port (inbound).
struct PromptSubject {
    firewall::ProfileLabel profile;
    std::string executable; // what the person sees: the identity (script or executable)
    std::int64_t pid = -1;
    std::uint64_t process_start = 0; // with pid, the process: "until the application exits"
    packet::Direction direction = packet::Direction::Outbound;
    std::uint8_t protocol = 0;
    std::string domain; // outbound: the name the application resolved; empty when none
    IpAddress remote_address;
    std::uint16_t remote_port = 0;
    std::uint16_t local_port = 0;
};

enum class PromptVerdict : std::uint8_t { Permit, Block };

// What the rule of an answer matches.
enum class PromptTarget : std::uint8_t {
    Domain,              // exactly the domain:        "+ example.com"
    DomainAndSubdomains, // the domain and below:      "+ .example.com"
    Address,             // the remote address:        "+ 203.0.113.5"
    LocalPort,           // inbound: the local port:   "+ * tcp/8080" (in serviceEndpoints)
};

// How long an answer holds.
enum class PromptDuration : std::uint8_t {
    Once,         // the held connections only; no rule
    For,          // a rule that expires after PromptAnswer::length (wall clock, across suspend
                  // and restarts)
    UntilExit,    // a rule removed when the process that asked exits
    UntilRestart, // a rule kept in memory until portwarden stops
    Always,       // a rule added to the profile's own rules
};

struct PromptAnswer {
    PromptVerdict verdict = PromptVerdict::Block;
    PromptTarget target = PromptTarget::Domain;
    PromptDuration duration = PromptDuration::Once;
    std::chrono::seconds length{0}; // PromptDuration::For only

    friend bool operator==(const PromptAnswer&, const PromptAnswer&) = default;
};

// Parses an answer as the API and the CLI send it:
//   {"verdict": "permit"|"block", "target": "domain"|"zone"|"ip"|"port",
//    "for": "once"|"restart"|"exit"|"always"|"15m"|"2h"|"900s"|"1d"}
// "target" defaults to "domain" when the prompt has one, else "ip" (outbound) or "port"
// (inbound); that default is applied by check_answer's caller through default_target().
// Errors name the field: "for '15x': expected once, restart, exit, always or a duration such as
// 15m".
[[nodiscard]] Result<PromptAnswer> parse_prompt_answer(const nlohmann::json& body,
                                                       const PromptSubject& subject);

// The target an answer without one gets: the domain when there is one, else the address
// (outbound) or the local port (inbound).
[[nodiscard]] PromptTarget default_target(const PromptSubject& subject);

// Whether `answer` fits `subject`: a domain target needs a domain, a local-port target an inbound
// prompt, an address target an outbound one; For needs a length of 1 s .. 1 year.
[[nodiscard]] Status check_answer(const PromptSubject& subject, const PromptAnswer& answer);

// Which rule list an answer's rule goes to, and its text ("+ .example.com", "- 203.0.113.5",
// "+ * tcp/8080"). Only for answers that check_answer() accepted.
enum class RuleListName : std::uint8_t { Endpoints, ServiceEndpoints };
struct AnswerRule {
    RuleListName list = RuleListName::Endpoints;
    std::string text;
};
[[nodiscard]] AnswerRule rule_for(const PromptSubject& subject, const PromptAnswer& answer);

// "once", "15m", "exit", "restart", "always": for events and the API.
[[nodiscard]] std::string duration_text(const PromptAnswer& answer);

// One open prompt.
struct Prompt {
    std::uint64_t id = 0;
    PromptSubject subject;
    std::chrono::system_clock::time_point opened; // wall clock, for people
    Clock::TimePoint deadline;                    // when it is given up: filter/askTimeout
    std::size_t connections = 0;                  // connections held for it
};

enum class PromptEvent : std::uint8_t { Opened, Answered, Expired };

// Open prompts: the one interface the packet path, the API and the event stream share (issue 9
// item 4). A held connection opens a prompt, or joins the open prompt of the same application
// and destination; the prompt closes when it is answered or its deadline passes, and every
// listener hears it. An open prompt never decides anything for other applications or other
// destinations. Bounded: past the limits, hold() refuses and the caller blocks the connection.
// Runs on the event-loop thread only.
class PromptBroker {
public:
    struct Limits {
        std::size_t per_profile = 32; // open prompts of one application
        std::size_t total = 512;      // open prompts of everyone
    };
    enum class Refusal : std::uint8_t { TooManyForProfile, TooMany };

    // `answer` is only set for PromptEvent::Answered.
    using Listener =
        std::function<void(PromptEvent event, const Prompt& prompt, const PromptAnswer* answer)>;

    explicit PromptBroker(const Clock& clock) : PromptBroker(clock, Limits{}) {}
    PromptBroker(const Clock& clock, Limits limits) : clock_(clock), limits_(limits) {}

    // Opens a prompt for one held connection of `subject`, or joins the open prompt with the
    // same application, direction and destination. `timeout` is the application's
    // filter/askTimeout; joining never moves the deadline.
    [[nodiscard]] std::expected<std::uint64_t, Refusal> hold(const PromptSubject& subject,
                                                             std::chrono::seconds timeout);
    // A connection stops waiting for `id` without an answer (it was decided otherwise, e.g. at
    // shutdown). When none is left, the prompt closes as if expired: nothing waits for it.
    void release(std::uint64_t id);

    [[nodiscard]] std::vector<Prompt> list() const;
    [[nodiscard]] const Prompt* find(std::uint64_t id) const;
    [[nodiscard]] std::size_t size() const { return prompts_.size(); }

    // Closes the prompt with `answer`; every listener hears it. An unknown id or an answer that
    // does not fit (check_answer) is an error and changes nothing.
    [[nodiscard]] Result<Prompt> answer(std::uint64_t id, const PromptAnswer& answer);

    // When expire() has work next; nullopt without open prompts.
    [[nodiscard]] std::optional<Clock::TimePoint> next_deadline() const;
    // Closes every prompt whose deadline has passed; listeners hear Expired.
    void expire();

    void subscribe(Listener listener) { listeners_.push_back(std::move(listener)); }

private:
    // Application, direction, protocol (inbound), destination: what makes two held connections
    // one prompt.
    using Key = std::tuple<std::string, packet::Direction, std::uint8_t, std::string>;
    [[nodiscard]] static Key key_of(const PromptSubject& subject);
    // Removes an open prompt from every index and returns it.
    Prompt close(std::map<std::uint64_t, Prompt>::iterator open);
    void notify(PromptEvent event, const Prompt& prompt, const PromptAnswer* answer) const;

    const Clock& clock_;
    Limits limits_;
    std::uint64_t next_id_ = 1;
    std::map<std::uint64_t, Prompt> prompts_;
    std::map<Key, std::uint64_t> by_key_;
    std::map<std::string, std::size_t, std::less<>> open_per_profile_;
    std::vector<Listener> listeners_;
};

} // namespace pw::profile
