#include "interception/queue_keeper.h"

#include <algorithm>
#include <utility>

namespace pw::interception {

namespace {

void add(QueueCounters& total, const QueueCounters& more) {
    total.packets += more.packets;
    total.verdicts += more.verdicts;
    total.receive_errors += more.receive_errors;
    total.truncated_messages += more.truncated_messages;
    total.send_errors += more.send_errors;
}

} // namespace

QueueKeeper::QueueKeeper(std::uint16_t queue_number, std::unique_ptr<PacketQueue> queue,
                         Opener opener)
    : queue_number_(queue_number), queue_(std::move(queue)), opener_(std::move(opener)) {}

QueueCounters QueueKeeper::queue_counters() const {
    QueueCounters total = closed_queues_;
    if (queue_) {
        add(total, queue_->counters());
    }
    return total;
}

QueueKeeper::Outcome QueueKeeper::queue_failed(const Error& error,
                                               const std::function<void()>& before_close) {
    ++counters_.failures;
    last_error_ = error.message();
    if (!queue_) {
        return Outcome::Closed;
    }
    if (++consecutive_failures_ < kFailuresBeforeReopen) {
        return Outcome::Retry;
    }
    close(before_close);
    failed_attempts_ = 0;
    return try_reopen() ? Outcome::Reopened : Outcome::Closed;
}

void QueueKeeper::close(const std::function<void()>& before_close) {
    if (before_close) {
        before_close();
    }
    add(closed_queues_, queue_->counters());
    // Unbinding first: the kernel lets only one socket bind a queue number.
    queue_.reset();
    consecutive_failures_ = 0;
}

bool QueueKeeper::try_reopen() {
    if (queue_) {
        return true;
    }
    auto opened = opener_();
    if (!opened) {
        ++counters_.reopen_failures;
        last_error_ = opened.error().message();
        // 100 ms, 200 ms, 400 ms ... up to 5 s: a queue number that another program took may
        // stay taken, and each attempt costs a few syscalls and a log line.
        retry_delay_ =
            std::min(kFirstRetryDelay * (1 << std::min(failed_attempts_, 6)), kMaxRetryDelay);
        ++failed_attempts_;
        return false;
    }
    queue_ = std::move(*opened);
    ++counters_.reopened;
    failed_attempts_ = 0;
    retry_delay_ = kFirstRetryDelay;
    return true;
}

} // namespace pw::interception
