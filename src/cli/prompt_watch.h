#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "cli/commands.h"

namespace pw::cli {

// What a key press in `portwarden prompts watch` does.
struct KeyAction {
    enum class Kind : std::uint8_t { Answer, Skip, Quit };
    Kind kind = Kind::Skip;
    std::string verdict;  // Answer: permit or block
    std::string duration; // Answer: once or always
};

// p permit once, P permit always, b block once, B block always, s skip, q quit; nullopt for any
// other key (ignored).
[[nodiscard]] std::optional<KeyAction> key_action(char key);

// `portwarden prompts watch`: polls GET /prompts every `poll_interval` (the WebSocket event stream
// comes later, issue 11), shows each new prompt and answers it with one key press. The terminal on
// `input_fd` is put in non-canonical mode without echo and restored when the watch ends, on q,
// on SIGINT/SIGTERM or on an error. Refuses (exit 2) when `input_fd` is not a terminal. Returns
// the exit code: 0 after q or a signal, else the failed request's.
int watch_prompts(Commands& commands, int input_fd, std::chrono::milliseconds poll_interval);

} // namespace pw::cli
