#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace pw::network {

// Size-based rotation of an events file (`events/maxFileSize`, `events/keepFiles`).
struct RotationLimits {
    std::uint64_t max_file_size = 0; // bytes; 0: never rotated
    std::uint32_t keep_files = 0;    // rotated files kept: FILE.1 (newest) to FILE.N
};

// What happened to the lines given to an EventFile. Lines are counted, not bytes: a reader
// compares them with the events it got.
struct EventFileCounters {
    std::uint64_t lines_written = 0;
    std::uint64_t write_failures = 0;    // failed write(2) calls: ENOSPC, EIO, EPIPE, ...
    std::uint64_t lines_dropped = 0;     // lost to those failures, or after the reader left
    std::uint64_t rotations = 0;         // FILE became FILE.1
    std::uint64_t rotation_failures = 0; // a rename or the new file's open failed
    std::uint64_t reopens = 0;           // reopen() calls that opened the target again
};

// Moves FILE to FILE.1, FILE.1 to FILE.2, ... and deletes FILE.<keep>, so that at most `keep`
// old files remain (with keep 0, FILE is deleted). A file missing in the chain is no error.
[[nodiscard]] Status rotate_files(const std::filesystem::path& file, std::uint32_t keep);

// The events stream's output: standard output ("-") or a file, written in whole lines. Failures
// never stop the daemon (issue 10 items 1 and 6): a write that fails (full disk, /dev/full, an
// I/O error) drops the batch, is counted and logged (at most once a minute), and the next batch
// tries again, so that writing resumes when space returns. A reader that closed its pipe (EPIPE)
// ends the stream for good: the lines after it are only counted (reopen() starts again on a
// named target). A line cut by a failure is removed from a regular file again, or ended with a
// newline before the next line, so that every line a reader sees stands on its own.
// Runs on the event-loop thread only.
class EventFile {
public:
    // Whether lines get written: Failing retries every batch, ReaderGone does not.
    enum class State : std::uint8_t { Writing, Failing, ReaderGone };

    // "-" is standard output (never rotated or reopened); anything else is opened for appending
    // (created if missing) and, when it is a regular file, rotated by `limits`.
    [[nodiscard]] static Result<std::unique_ptr<EventFile>> open(const std::string& target,
                                                                 RotationLimits limits,
                                                                 const Clock& clock);

    EventFile(const EventFile&) = delete;
    EventFile& operator=(const EventFile&) = delete;
    EventFile(EventFile&&) = delete;
    EventFile& operator=(EventFile&&) = delete;
    ~EventFile();

    // One complete line, its newline included. Buffered: written by flush(), or at once when the
    // buffer is full. Rotates first when the line would take the file past its size limit.
    void append(std::string_view line);
    // Writes what is buffered.
    void flush();
    // Closes the target and opens it again by name (after logrotate moved it away: SIGHUP).
    // Also how a stream whose reader left starts again. Standard output is only flushed.
    [[nodiscard]] Status reopen();

    // New limits apply from the next line on.
    void set_rotation(RotationLimits limits) { limits_ = limits; }

    [[nodiscard]] const EventFileCounters& counters() const { return counters_; }
    [[nodiscard]] State state() const { return state_; }
    [[nodiscard]] const std::string& target() const { return target_; }

private:
    EventFile(std::string target, RotationLimits limits, const Clock& clock);

    [[nodiscard]] Status open_target(int extra_flags);
    [[nodiscard]] bool rotates() const;
    void rotate();
    void write_buffer();
    void write_failed(int error, std::size_t written);
    void drop_buffer();
    void log_failure(int error);
    void retry_open();

    std::string target_;
    bool standard_output_ = false;
    RotationLimits limits_;
    const Clock& clock_;
    UniqueFd owned_fd_; // invalid for standard output, and while the target could not be opened
    int fd_ = -1;
    bool regular_file_ = false;
    std::uint64_t file_size_ = 0; // of a regular file, as far as we wrote it
    // A failure cut the last line written and it could not be cut back out of the file: the
    // next write starts with a newline.
    bool torn_ = false;
    std::string buffer_;
    std::uint64_t buffered_lines_ = 0;
    State state_ = State::Writing;
    EventFileCounters counters_;
    // Rate limit for failure logs, and for retries of an open or a rotation that failed.
    Clock::TimePoint next_failure_log_;
    std::uint64_t failures_not_logged_ = 0;
    std::uint64_t dropped_since_writing_ = 0;
    Clock::TimePoint next_open_attempt_;
    Clock::TimePoint next_rotation_attempt_;
};

} // namespace pw::network
