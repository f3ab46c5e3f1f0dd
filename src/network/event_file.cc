#include "network/event_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include "common/log.h"

namespace pw::network {
namespace {

// A batch this big is written at once: the buffer stays small between two flush() calls.
constexpr std::size_t kFlushThreshold = std::size_t{64} * 1024;
// A failing target is reported at most this often (the first failure at once).
constexpr std::chrono::seconds kFailureLogInterval{60};
// A target that could not be opened again, or rotated, is retried at most this often.
constexpr std::chrono::seconds kRetryInterval{1};

std::string error_text(int error) {
    return std::error_code(error, std::system_category()).message();
}

std::filesystem::path numbered(const std::filesystem::path& file, std::uint32_t number) {
    std::filesystem::path result = file;
    result += "." + std::to_string(number);
    return result;
}

} // namespace

Status rotate_files(const std::filesystem::path& file, std::uint32_t keep) {
    std::error_code error;
    if (keep == 0) {
        std::filesystem::remove(file, error);
        if (error) {
            return fail("remove " + file.string(), error);
        }
        return {};
    }
    std::filesystem::remove(numbered(file, keep), error);
    if (error) {
        return fail("remove " + numbered(file, keep).string(), error);
    }
    // Oldest first, so that no rename replaces a file still to be moved.
    for (std::uint32_t number = keep - 1; number >= 1; --number) {
        std::filesystem::rename(numbered(file, number), numbered(file, number + 1), error);
        if (error && error != std::errc::no_such_file_or_directory) {
            return fail("rename " + numbered(file, number).string(), error);
        }
    }
    std::filesystem::rename(file, numbered(file, 1), error);
    if (error && error != std::errc::no_such_file_or_directory) {
        return fail("rename " + file.string(), error);
    }
    return {};
}

EventFile::EventFile(std::string target, RotationLimits limits, const Clock& clock)
    : target_(std::move(target)),
      standard_output_(target_ == "-"),
      limits_(limits),
      clock_(clock) {}

Result<std::unique_ptr<EventFile>> EventFile::open(const std::string& target, RotationLimits limits,
                                                   const Clock& clock) {
    std::unique_ptr<EventFile> file(new EventFile(target, limits, clock));
    if (file->standard_output_) {
        file->fd_ = STDOUT_FILENO;
        return file;
    }
    // Blocking, as the daemon always opened it: a FIFO target waits for its reader here.
    if (auto opened = file->open_target(0); !opened) {
        return std::unexpected(opened.error());
    }
    return file;
}

EventFile::~EventFile() {
    flush();
}

Status EventFile::open_target(int extra_flags) {
    owned_fd_.reset();
    fd_ = -1;
    // 0666 before the umask, as fopen(3) created it before.
    const int fd =
        ::open(target_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | extra_flags, 0666);
    if (fd < 0) {
        return fail_errno("open events file " + target_, errno);
    }
    owned_fd_.reset(fd);
    if ((extra_flags & O_NONBLOCK) != 0) {
        // Non-blocking only to open a FIFO without waiting for a reader; writes block as always.
        const int flags = ::fcntl(fd, F_GETFL);
        static_cast<void>(::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK));
    }
    struct stat status{};
    if (::fstat(fd, &status) != 0) {
        return fail_errno("stat events file " + target_, errno);
    }
    fd_ = fd;
    regular_file_ = S_ISREG(status.st_mode);
    file_size_ = regular_file_ ? static_cast<std::uint64_t>(status.st_size) : 0;
    torn_ = false;
    return {};
}

bool EventFile::rotates() const {
    return !standard_output_ && regular_file_ && limits_.max_file_size > 0;
}

void EventFile::append(std::string_view line) {
    const std::uint64_t pending = file_size_ + buffer_.size();
    if (rotates() && pending > 0 && pending + line.size() > limits_.max_file_size &&
        clock_.now() >= next_rotation_attempt_) {
        flush();
        rotate();
    }
    buffer_ += line;
    ++buffered_lines_;
    if (buffer_.size() >= kFlushThreshold) {
        flush();
    }
}

void EventFile::flush() {
    if (buffer_.empty()) {
        return;
    }
    if (state_ == State::ReaderGone) {
        drop_buffer();
        return;
    }
    if (fd_ < 0) {
        retry_open();
    }
    if (fd_ < 0) {
        drop_buffer();
        return;
    }
    write_buffer();
}

void EventFile::write_buffer() {
    if (torn_) {
        // The last line in the target was cut by a failure: end it, so that the next one starts
        // on a line of its own.
        if (::write(fd_, "\n", 1) != 1) {
            write_failed(errno, 0);
            return;
        }
        torn_ = false;
        file_size_ += regular_file_ ? 1 : 0;
    }
    std::size_t written = 0;
    while (written < buffer_.size()) {
        const ssize_t result = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
        if (result < 0) {
            if (errno == EINTR) {
                continue;
            }
            write_failed(errno, written);
            return;
        }
        written += static_cast<std::size_t>(result);
    }
    counters_.lines_written += buffered_lines_;
    file_size_ += regular_file_ ? written : 0;
    buffer_.clear();
    buffered_lines_ = 0;
    if (state_ == State::Failing) {
        state_ = State::Writing;
        log::get("events")->warn("events_write_resumed target={} dropped={}", target_,
                                 dropped_since_writing_);
        dropped_since_writing_ = 0;
        next_failure_log_ = {};
        failures_not_logged_ = 0;
    }
}

void EventFile::write_failed(int error, std::size_t written) {
    ++counters_.write_failures;
    // The whole lines that made it out count as written; a cut one is taken back out of a
    // regular file, or ended by the next write.
    const std::string_view sent(buffer_.data(), written);
    const std::size_t whole =
        sent.empty() || sent.back() == '\n'
            ? sent.size()
            : (sent.rfind('\n') == std::string_view::npos ? 0 : sent.rfind('\n') + 1);
    const auto whole_lines = static_cast<std::uint64_t>(std::ranges::count(sent, '\n'));
    if (regular_file_) {
        file_size_ += whole;
    }
    if (whole < written) {
        const bool cut_back =
            regular_file_ && ::ftruncate(fd_, static_cast<off_t>(file_size_)) == 0;
        torn_ = !cut_back;
    }
    counters_.lines_written += whole_lines;
    buffered_lines_ -= whole_lines;
    drop_buffer();
    if (error == EPIPE) {
        // Nobody reads any more (`--events - | head -1`, a log shipper that restarted): writing
        // again cannot succeed. Filtering goes on; the events are only counted.
        state_ = State::ReaderGone;
        log::get("events")->warn(
            "events_reader_gone target={} error=\"{}\" (events are no longer written, only "
            "counted; filtering goes on{})",
            target_, error_text(error), standard_output_ ? "" : "; SIGHUP reopens the target");
        return;
    }
    state_ = State::Failing;
    log_failure(error);
}

void EventFile::log_failure(int error) {
    const Clock::TimePoint now = clock_.now();
    if (now < next_failure_log_) {
        ++failures_not_logged_;
        return;
    }
    log::get("events")->error(
        "events_write_failed target={} error=\"{}\" failures={} dropped={} (events are dropped "
        "until a write succeeds again; filtering goes on; next report in {}s at the earliest)",
        target_, error_text(error), counters_.write_failures, counters_.lines_dropped,
        kFailureLogInterval.count());
    next_failure_log_ = now + kFailureLogInterval;
    failures_not_logged_ = 0;
}

void EventFile::drop_buffer() {
    counters_.lines_dropped += buffered_lines_;
    dropped_since_writing_ += buffered_lines_;
    buffer_.clear();
    buffered_lines_ = 0;
}

void EventFile::retry_open() {
    const Clock::TimePoint now = clock_.now();
    if (standard_output_ || now < next_open_attempt_) {
        return;
    }
    next_open_attempt_ = now + kRetryInterval;
    if (auto opened = open_target(O_NONBLOCK); !opened) {
        ++counters_.write_failures;
        state_ = State::Failing;
        log_failure(opened.error().reason.value());
    }
}

void EventFile::rotate() {
    owned_fd_.reset();
    fd_ = -1;
    if (auto rotated = rotate_files(target_, limits_.keep_files); !rotated) {
        ++counters_.rotation_failures;
        next_rotation_attempt_ = clock_.now() + kRetryInterval;
        log::get("events")->error("events_rotation_failed target={} error=\"{}\"", target_,
                                  rotated.error().message());
    } else {
        ++counters_.rotations;
        log::get("events")->info("events_rotated target={} keep={}", target_, limits_.keep_files);
    }
    if (auto opened = open_target(O_NONBLOCK); !opened) {
        ++counters_.rotation_failures;
        log::get("events")->error("events_rotation_failed {} (retried every second)",
                                  opened.error().message());
    }
}

Status EventFile::reopen() {
    flush();
    if (standard_output_) {
        return {};
    }
    state_ = State::Writing;
    if (auto opened = open_target(O_NONBLOCK); !opened) {
        state_ = State::Failing;
        return opened;
    }
    ++counters_.reopens;
    return {};
}

} // namespace pw::network
