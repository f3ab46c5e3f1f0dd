// QueueKeeper (issue 10 item 9): a queue whose socket keeps failing is closed and bound again,
// with backoff while binding fails, and every step is counted. Fake queues: no root.
#include "interception/queue_keeper.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace pw::interception {
namespace {

// A queue whose receive fails while `failing` is set; counts what it was asked.
class FakePacketQueue final : public PacketQueue {
public:
    FakePacketQueue(int fd, bool* closed) : fd_(fd), closed_(closed) {}
    FakePacketQueue(const FakePacketQueue&) = delete;
    FakePacketQueue& operator=(const FakePacketQueue&) = delete;
    FakePacketQueue(FakePacketQueue&&) = delete;
    FakePacketQueue& operator=(FakePacketQueue&&) = delete;
    ~FakePacketQueue() override { *closed_ = true; }

    // interception::PacketQueue
    [[nodiscard]] int fd() const override { return fd_; }
    [[nodiscard]] std::uint16_t queue_number() const override { return 17040; }
    [[nodiscard]] const QueueCounters& counters() const override { return counters_; }
    [[nodiscard]] Result<std::size_t> drain(const PacketHandler& /*handler*/) override {
        if (failing) {
            return fail_errno("receive from nfqueue 17040", EBADF);
        }
        ++counters_.packets;
        return std::size_t{1};
    }
    void queue_verdict(std::uint32_t /*packet_id*/, std::uint32_t /*mark*/) override {
        ++counters_.verdicts;
    }
    [[nodiscard]] Status flush_verdicts() override { return {}; }

    bool failing = false;

private:
    int fd_;
    bool* closed_;
    QueueCounters counters_;
};

// Hands out fake queues with fds 10, 11, 12 ... and remembers them; fails while told to.
class FakeOpener {
public:
    QueueKeeper::Opener opener() {
        return [this]() -> Result<std::unique_ptr<PacketQueue>> {
            ++attempts;
            if (refuse) {
                return fail_errno("bind nfqueue 17040", EBUSY);
            }
            auto queue = std::make_unique<FakePacketQueue>(next_fd++, &closed.emplace_back());
            opened.push_back(queue.get());
            return queue;
        };
    }

    std::unique_ptr<PacketQueue> first() {
        auto queue = opener()();
        return std::move(*queue);
    }

    bool refuse = false;
    int attempts = 0;
    int next_fd = 10;
    std::vector<FakePacketQueue*> opened; // valid while not closed
    std::deque<bool> closed;              // deque: the queues keep pointers into it
};

Error receive_error() {
    return Error{.what = "receive from nfqueue 17040",
                 .reason = std::error_code(EBADF, std::system_category())};
}

class QueueKeeperTest : public ::testing::Test {
protected:
    // Drains the current queue as the daemon does and reports a failure to the keeper.
    QueueKeeper::Outcome drain_once() {
        auto drained = keeper_.queue()->drain({});
        if (drained) {
            keeper_.drained();
            return QueueKeeper::Outcome::Retry;
        }
        return keeper_.queue_failed(drained.error(), [this] { ++before_close_calls_; });
    }

    FakeOpener opener_;
    QueueKeeper keeper_{17040, opener_.first(), opener_.opener()};
    int before_close_calls_ = 0;
};

TEST_F(QueueKeeperTest, AFailingSocketIsClosedAndTheQueueBoundAgain) {
    opener_.opened[0]->failing = true;
    EXPECT_EQ(drain_once(), QueueKeeper::Outcome::Retry);
    EXPECT_EQ(drain_once(), QueueKeeper::Outcome::Retry);
    EXPECT_EQ(before_close_calls_, 0);
    EXPECT_EQ(drain_once(), QueueKeeper::Outcome::Reopened);
    EXPECT_EQ(before_close_calls_, 1); // the caller stopped watching the old fd first
    EXPECT_TRUE(opener_.closed[0]);    // the old socket is gone (unbound) ...
    ASSERT_NE(keeper_.queue(), nullptr);
    EXPECT_EQ(keeper_.queue()->fd(), 11); // ... and a new one took its place
    EXPECT_EQ(keeper_.state(), QueueKeeper::State::Open);
    EXPECT_EQ(keeper_.counters().failures, 3U);
    EXPECT_EQ(keeper_.counters().reopened, 1U);
    EXPECT_NE(keeper_.last_error().find("receive from nfqueue 17040"), std::string::npos);
    // The new queue works.
    EXPECT_TRUE(keeper_.queue()->drain({}).has_value());
}

TEST_F(QueueKeeperTest, AnErrorThatPassesDoesNotCostTheQueue) {
    opener_.opened[0]->failing = true;
    EXPECT_EQ(drain_once(), QueueKeeper::Outcome::Retry);
    EXPECT_EQ(drain_once(), QueueKeeper::Outcome::Retry);
    opener_.opened[0]->failing = false;
    static_cast<void>(drain_once()); // succeeds: the streak is over
    opener_.opened[0]->failing = true;
    EXPECT_EQ(drain_once(), QueueKeeper::Outcome::Retry);
    EXPECT_EQ(drain_once(), QueueKeeper::Outcome::Retry);
    EXPECT_EQ(keeper_.counters().reopened, 0U);
    EXPECT_EQ(opener_.attempts, 1); // only the first bind
}

class ClosedQueueKeeperTest : public QueueKeeperTest {
protected:
    // The socket fails and binding again is refused (say, another program took the number).
    void SetUp() override {
        opener_.opened[0]->failing = true;
        opener_.refuse = true;
        for (int failure = 0; failure < QueueKeeper::kFailuresBeforeReopen; ++failure) {
            last_outcome_ = drain_once();
        }
    }

    QueueKeeper::Outcome last_outcome_ = QueueKeeper::Outcome::Retry;
};

TEST_F(ClosedQueueKeeperTest, AQueueThatCannotBeBoundAgainIsClosed) {
    EXPECT_EQ(last_outcome_, QueueKeeper::Outcome::Closed);
    EXPECT_EQ(keeper_.state(), QueueKeeper::State::Closed);
    EXPECT_EQ(keeper_.queue(), nullptr);
    EXPECT_EQ(keeper_.retry_delay(), QueueKeeper::kFirstRetryDelay);
    EXPECT_NE(keeper_.last_error().find("bind nfqueue 17040"), std::string::npos);
}

TEST_F(ClosedQueueKeeperTest, BindingIsRetriedWithBackoff) {
    std::vector<std::chrono::milliseconds> delays;
    for (int attempt = 0; attempt < 8; ++attempt) {
        EXPECT_FALSE(keeper_.try_reopen());
        delays.push_back(keeper_.retry_delay());
    }
    EXPECT_EQ(delays.front(), std::chrono::milliseconds(200));
    EXPECT_EQ(delays.back(), QueueKeeper::kMaxRetryDelay);
    EXPECT_TRUE(std::ranges::is_sorted(delays));
    EXPECT_EQ(keeper_.counters().reopen_failures, 9U);
}

TEST_F(ClosedQueueKeeperTest, TheQueueIsOpenAgainOnceBindingWorks) {
    EXPECT_FALSE(keeper_.try_reopen());
    opener_.refuse = false;
    EXPECT_TRUE(keeper_.try_reopen());
    EXPECT_EQ(keeper_.state(), QueueKeeper::State::Open);
    EXPECT_EQ(keeper_.counters().reopened, 1U);
    EXPECT_EQ(keeper_.retry_delay(), QueueKeeper::kFirstRetryDelay);
}

TEST_F(ClosedQueueKeeperTest, FailuresReportedWhileClosedOnlyCount) {
    EXPECT_EQ(keeper_.queue_failed(receive_error(), {}), QueueKeeper::Outcome::Closed);
    EXPECT_EQ(keeper_.counters().failures, 4U);
}

TEST_F(QueueKeeperTest, CountersOfReplacedSocketsAreKept) {
    static_cast<void>(drain_once()); // one packet on the first socket
    keeper_.queue()->queue_verdict(1, 1700);
    opener_.opened[0]->failing = true;
    for (int failure = 0; failure < QueueKeeper::kFailuresBeforeReopen; ++failure) {
        static_cast<void>(drain_once());
    }
    static_cast<void>(drain_once()); // one packet on the second
    const QueueCounters total = keeper_.queue_counters();
    EXPECT_EQ(total.packets, 2U);
    EXPECT_EQ(total.verdicts, 1U);
}

} // namespace
} // namespace pw::interception
