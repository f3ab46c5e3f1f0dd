#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "interception/packet_queue.h"

namespace pw::interception {

// Keeps one queue bound (issue 10 item 9; the original's outage #110: one queue died silently
// and its packets were dropped from then on). A queue whose socket keeps failing is closed and
// bound again; while binding fails, the caller retries after retry_delay(), which backs off.
// Failures, re-opens and the state are reported for the status, events and counters. Owned by
// the daemon, one per queue; the daemon registers fd() with its event loop and must stop
// watching the old fd before queue_failed() or try_reopen() can close it (`before_close`).
// Runs on the event-loop thread only.
class QueueKeeper {
public:
    // Binds the queue again: NfQueue::open in the daemon, a fake in tests.
    using Opener = std::function<Result<std::unique_ptr<PacketQueue>>()>;

    enum class State : std::uint8_t {
        Open,   // queue() is bound
        Closed, // it failed and could not be bound again yet: its packets are dropped
    };

    // What queue_failed() did.
    enum class Outcome : std::uint8_t {
        Retry,    // the same socket: drain it again after a short pause
        Reopened, // closed and bound again: wait on the new fd()
        Closed,   // closed, and binding failed: try_reopen() after retry_delay()
    };

    struct Counters {
        std::uint64_t failures = 0;        // drains that failed
        std::uint64_t reopened = 0;        // queues closed and bound again
        std::uint64_t reopen_failures = 0; // binding attempts that failed
    };

    // Consecutive failed drains after which the socket is given up: one failure may be a
    // passing error; a socket that keeps failing is broken (~200 ms at the daemon's 100 ms
    // pause).
    static constexpr int kFailuresBeforeReopen = 3;
    static constexpr std::chrono::milliseconds kFirstRetryDelay{100};
    static constexpr std::chrono::milliseconds kMaxRetryDelay{5000};

    QueueKeeper(std::uint16_t queue_number, std::unique_ptr<PacketQueue> queue, Opener opener);

    // The bound queue; nullptr while Closed.
    [[nodiscard]] PacketQueue* queue() const { return queue_.get(); }
    [[nodiscard]] std::uint16_t queue_number() const { return queue_number_; }
    [[nodiscard]] State state() const { return queue_ ? State::Open : State::Closed; }
    // Why the queue last failed (or could not be bound); empty if it never did.
    [[nodiscard]] const std::string& last_error() const { return last_error_; }
    [[nodiscard]] const Counters& counters() const { return counters_; }
    // The counters of every socket this queue had, the current one included, so that the
    // totals never go backwards when a socket is replaced.
    [[nodiscard]] QueueCounters queue_counters() const;

    // drain() succeeded: the failure streak is over.
    void drained() { consecutive_failures_ = 0; }

    // drain() (or the event loop's wait on fd()) failed with `error`. After
    // kFailuresBeforeReopen in a row, closes the queue (calling `before_close` first) and binds
    // it again at once.
    [[nodiscard]] Outcome queue_failed(const Error& error,
                                       const std::function<void()>& before_close);

    // While Closed: binds the queue again; true when it is Open. After a failure,
    // retry_delay() says when to try again: kFirstRetryDelay, doubling up to kMaxRetryDelay.
    [[nodiscard]] bool try_reopen();
    [[nodiscard]] std::chrono::milliseconds retry_delay() const { return retry_delay_; }

private:
    void close(const std::function<void()>& before_close);

    std::uint16_t queue_number_;
    std::unique_ptr<PacketQueue> queue_;
    Opener opener_;
    Counters counters_;
    QueueCounters closed_queues_; // what the sockets closed so far counted
    int consecutive_failures_ = 0;
    int failed_attempts_ = 0; // binding attempts that failed since the queue closed
    std::chrono::milliseconds retry_delay_ = kFirstRetryDelay;
    std::string last_error_;
};

} // namespace pw::interception
