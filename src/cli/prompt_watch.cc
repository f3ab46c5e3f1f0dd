#include "cli/prompt_watch.h"

#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <ostream>
#include <set>
#include <string>
#include <utility>

namespace pw::cli {
namespace {

using nlohmann::json;

// Set by SIGINT/SIGTERM while a watch runs. A signal handler can only reach static storage, so
// this one flag is the exception to "no mutable globals" (CONVENTIONS rule 6).
volatile std::sig_atomic_t g_stop_requested = 0;

extern "C" void request_stop(int /*signal*/) {
    g_stop_requested = 1;
}

// Non-canonical input without echo on a terminal, restored on destruction. Output processing
// and signals (ISIG) stay on: "\n" still ends a line and Ctrl-C still raises SIGINT, which the
// watch catches to leave through this destructor.
class RawTerminal {
public:
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;
    RawTerminal(RawTerminal&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)), saved_(other.saved_) {}
    RawTerminal& operator=(RawTerminal&&) = delete;
    ~RawTerminal() {
        if (fd_ >= 0) {
            ::tcsetattr(fd_, TCSAFLUSH, &saved_);
        }
    }

    [[nodiscard]] static Result<RawTerminal> enter(int fd) {
        termios saved{};
        if (::tcgetattr(fd, &saved) != 0) {
            return fail_errno("tcgetattr", errno);
        }
        termios raw = saved;
        raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        if (::tcsetattr(fd, TCSAFLUSH, &raw) != 0) {
            return fail_errno("tcsetattr", errno);
        }
        return RawTerminal(fd, saved);
    }

private:
    RawTerminal(int fd, const termios& saved) : fd_(fd), saved_(saved) {}

    int fd_ = -1;
    termios saved_{};
};

// SIGINT and SIGTERM set g_stop_requested for as long as this lives; the previous handlers come
// back afterwards. No SA_RESTART: poll() returns EINTR, so the loop sees the flag at once.
class StopSignals {
public:
    StopSignals() {
        g_stop_requested = 0;
        struct sigaction action{};
        action.sa_handler = request_stop;
        sigemptyset(&action.sa_mask);
        ::sigaction(SIGINT, &action, &saved_interrupt_);
        ::sigaction(SIGTERM, &action, &saved_terminate_);
    }
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;
    StopSignals(StopSignals&&) = delete;
    StopSignals& operator=(StopSignals&&) = delete;
    ~StopSignals() {
        ::sigaction(SIGINT, &saved_interrupt_, nullptr);
        ::sigaction(SIGTERM, &saved_terminate_, nullptr);
    }

private:
    struct sigaction saved_interrupt_{};
    struct sigaction saved_terminate_{};
};

// One key from `fd`, waiting at most `timeout`; nullopt on timeout or a signal.
std::optional<char> read_key(int fd, std::chrono::milliseconds timeout) {
    pollfd entry{.fd = fd, .events = POLLIN, .revents = 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(timeout.count()));
    if (ready <= 0) {
        return std::nullopt;
    }
    char key = 0;
    if (::read(fd, &key, 1) != 1) {
        // End of input (the terminal went away): stop as q would.
        return 'q';
    }
    return key;
}

std::optional<std::uint64_t> prompt_id(const json& prompt) {
    if (!prompt.is_object()) {
        return std::nullopt;
    }
    const auto found = prompt.find("id");
    if (found == prompt.end() || !found->is_number_unsigned()) {
        return std::nullopt;
    }
    return found->get<std::uint64_t>();
}

constexpr std::string_view kKeys =
    "[p] permit once  [P] permit always  [b] block once  [B] block always  [s] skip  [q] quit";

} // namespace

std::optional<KeyAction> key_action(char key) {
    switch (key) {
        case 'p':
            return KeyAction{
                .kind = KeyAction::Kind::Answer, .verdict = "permit", .duration = "once"};
        case 'P':
            return KeyAction{
                .kind = KeyAction::Kind::Answer, .verdict = "permit", .duration = "always"};
        case 'b':
            return KeyAction{
                .kind = KeyAction::Kind::Answer, .verdict = "block", .duration = "once"};
        case 'B':
            return KeyAction{
                .kind = KeyAction::Kind::Answer, .verdict = "block", .duration = "always"};
        case 's':
        case 'S':
            return KeyAction{.kind = KeyAction::Kind::Skip, .verdict = {}, .duration = {}};
        case 'q':
        case 'Q':
            return KeyAction{.kind = KeyAction::Kind::Quit, .verdict = {}, .duration = {}};
        default:
            return std::nullopt;
    }
}

namespace {

// The state of one watch: the prompt on screen and those already dealt with here. Runs on the
// caller's thread only.
class PromptWatch {
public:
    explicit PromptWatch(Commands& commands)
        : commands_(commands),
          out_(commands.output().out),
          json_lines_(commands.output().format == Output::Format::Json) {}

    // Forgets the prompt on screen when it is no longer open, then shows the next one not dealt
    // with, if none is on screen.
    void refresh(const json& listed) {
        if (current_ && !is_listed(listed, prompt_id(*current_))) {
            if (!json_lines_) {
                out_ << "prompt " << display_value((*current_)["id"])
                     << " closed (answered elsewhere or timed out)\n\n";
            }
            handled_.insert(prompt_id(*current_).value_or(0));
            current_.reset();
        }
        if (current_) {
            return;
        }
        for (const json& prompt : listed) {
            const auto id = prompt_id(prompt);
            if (id && !handled_.contains(*id)) {
                current_ = prompt;
                if (json_lines_) {
                    out_ << prompt.dump() << "\n";
                } else {
                    out_ << format_prompt(prompt) << kKeys << "\n";
                }
                break;
            }
        }
        out_ << std::flush;
    }

    // Skips or answers the prompt on screen (no prompt: the key is ignored).
    void act(const KeyAction& action) {
        if (!current_) {
            return;
        }
        const std::uint64_t id = prompt_id(*current_).value_or(0);
        handled_.insert(id);
        current_.reset();
        if (action.kind == KeyAction::Kind::Skip) {
            if (!json_lines_) {
                out_ << "prompt " << id << " skipped\n\n" << std::flush;
            }
            return;
        }
        auto request = prompt_answer_request(PromptAnswerArguments{
            .id = id, .verdict = action.verdict, .duration = action.duration, .target = {}});
        if (!request) {
            commands_.output().err << request.error().message << "\n";
            return;
        }
        auto answered = commands_.call(*request);
        if (!answered) {
            // A prompt that closed between the poll and the key press is not fatal.
            commands_.output().err << answered.error().message << "\n";
        } else if (json_lines_) {
            out_ << answered->dump() << "\n";
        } else {
            out_ << format_prompt_answer(*answered) << "\n";
        }
        out_ << std::flush;
    }

private:
    static bool is_listed(const json& listed, std::optional<std::uint64_t> id) {
        return std::ranges::any_of(listed,
                                   [id](const json& prompt) { return prompt_id(prompt) == id; });
    }

    Commands& commands_;
    std::ostream& out_;
    bool json_lines_;
    std::set<std::uint64_t> handled_; // answered or skipped here: not shown again
    std::optional<json> current_;
};

} // namespace

int watch_prompts(Commands& commands, int input_fd, std::chrono::milliseconds poll_interval) {
    if (::isatty(input_fd) == 0) {
        return commands.report(CommandError{
            .exit_code = kExitUsage,
            .message = "portwarden prompts watch: needs a terminal to read key presses (standard "
                       "input is not one); scripts use `portwarden prompts` and `portwarden "
                       "prompts answer ID permit|block`",
            .http_status = 0});
    }
    auto terminal = RawTerminal::enter(input_fd);
    if (!terminal) {
        return commands.report(
            CommandError{.exit_code = kExitUsage,
                         .message = "portwarden prompts watch: " + terminal.error().message(),
                         .http_status = 0});
    }
    const StopSignals signals;
    if (commands.output().format == Output::Format::Human) {
        commands.output().out << "Watching for prompts (Ctrl-C or q to stop).\n" << std::flush;
    }
    PromptWatch watch(commands);
    while (g_stop_requested == 0) {
        auto listed = commands.call(
            ApiRequest{.method = "GET", .target = "/api/v1/prompts", .body = std::nullopt});
        if (!listed) {
            return commands.report(listed.error());
        }
        watch.refresh(*listed);
        const std::optional<char> key = read_key(input_fd, poll_interval);
        const std::optional<KeyAction> action = key ? key_action(*key) : std::nullopt;
        if (!action) {
            continue;
        }
        if (action->kind == KeyAction::Kind::Quit) {
            break;
        }
        watch.act(*action);
    }
    return kExitOk;
}

} // namespace pw::cli
