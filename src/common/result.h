#pragma once

#include <expected>
#include <string>
#include <system_error>
#include <utility>

namespace pw {

// An error a log reader can act on: what failed, and the OS reason if there was one.
struct Error {
    std::string what;       // "open /proc/4242/fd: Permission denied"
    std::error_code reason; // empty for parse and logic errors

    // "what: reason" when there is an OS reason, else just "what".
    [[nodiscard]] std::string message() const {
        return reason ? what + ": " + reason.message() : what;
    }
};

// Expected failures are values, not exceptions (CONVENTIONS rule 10). GCC 12 has no and_then,
// so callers propagate with early returns.
template <typename T>
using Result = std::expected<T, Error>;

// Result<void> for operations that return nothing on success.
using Status = Result<void>;

inline std::unexpected<Error> fail(std::string what, std::error_code reason = {}) {
    return std::unexpected(Error{.what = std::move(what), .reason = reason});
}

// For the common case right after a failed syscall; call it before anything can clobber errno.
inline std::unexpected<Error> fail_errno(std::string what, int saved_errno) {
    return fail(std::move(what), std::error_code(saved_errno, std::system_category()));
}

} // namespace pw
