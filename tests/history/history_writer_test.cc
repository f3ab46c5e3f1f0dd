#include "history/history_writer.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "history/history_test_support.h"

namespace pw::history {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::connection_record;
using testing::dns_record;
using ::testing::HasSubstr;
using testing::RawDatabase;
using testing::TempDir;

constexpr std::int64_t kDay = 24LL * 60 * 60 * 1000;
constexpr std::int64_t kNow = 1'780'000'000'000; // the fake wall clock, in ms

std::int64_t system_clock_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Polls, for what a separate thread does on its own schedule; fails after `limit`.
template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!predicate()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

class HistoryWriterTest : public ::testing::Test {
protected:
    std::unique_ptr<HistoryWriter> start(HistorySettings settings = {},
                                         WriterOptions options = {}) {
        auto store = HistoryStore::open(file_);
        EXPECT_TRUE(store.has_value()) << store.error().message();
        if (!store) {
            return nullptr;
        }
        if (!options.wall_clock_ms) {
            options.wall_clock_ms = [] {
                return kNow;
            };
        }
        auto writer = HistoryWriter::start(std::move(*store), settings, std::move(options));
        EXPECT_TRUE(writer.has_value()) << writer.error().message();
        return writer ? std::move(*writer) : nullptr;
    }

    std::unique_ptr<HistoryStore> reader() {
        auto store = HistoryStore::open(file_, OpenMode::ReadOnly);
        EXPECT_TRUE(store.has_value()) << store.error().message();
        return store ? std::move(*store) : nullptr;
    }

    TempDir dir_;
    fs::path file_ = dir_.path() / "history.sqlite";
};

TEST_F(HistoryWriterTest, FlushCommitsEverythingPushedBefore) {
    auto writer = start({}, {.commit_interval = 1h});
    ASSERT_TRUE(writer);
    EXPECT_EQ(writer->first_id(), 1U);
    EXPECT_EQ(writer->push(connection_record(1, "curl", "example.com", kNow)), Pushed::Queued);
    EXPECT_EQ(writer->push(ConnectionEnd{.id = 1, .end_ms = kNow + 5, .bytes_in = 70}),
              Pushed::Queued);
    EXPECT_EQ(writer->push(dns_record(kNow, "curl", "example.com")), Pushed::Queued);
    writer->flush();

    auto store = reader();
    ASSERT_TRUE(store);
    auto stored = store->connection(1);
    ASSERT_TRUE(stored.has_value() && stored->has_value());
    EXPECT_EQ((*stored)->end_ms, kNow + 5);
    EXPECT_EQ((*stored)->bytes_in, 70U);
    auto queries = store->dns_queries({});
    ASSERT_TRUE(queries.has_value());
    EXPECT_EQ(queries->rows.size(), 1U);

    const WriterStats stats = writer->stats();
    EXPECT_EQ(stats.accepted, 3U);
    EXPECT_EQ(stats.written, 3U);
    EXPECT_EQ(stats.queued, 0U);
    EXPECT_EQ(stats.dropped, 0U);
    EXPECT_GE(stats.batches, 1U); // the first round may have taken the first record alone
    EXPECT_TRUE(stats.last_error.empty());
}

TEST_F(HistoryWriterTest, CommitsOnItsOwnWithinTheInterval) {
    auto writer = start({}, {.commit_interval = 20ms});
    ASSERT_TRUE(writer);
    writer->push(connection_record(1, "curl", "example.com", kNow));
    EXPECT_TRUE(eventually([&] { return writer->stats().written == 1; }));
    EXPECT_LT(writer->stats().write_lag, 1s);
}

TEST_F(HistoryWriterTest, DestructorCommitsWhatIsQueued) {
    {
        auto writer = start({}, {.commit_interval = 1h});
        ASSERT_TRUE(writer);
        writer->push(connection_record(1, "curl", "example.com", kNow));
    }
    auto store = reader();
    ASSERT_TRUE(store);
    auto stored = store->connection(1);
    ASSERT_TRUE(stored.has_value());
    EXPECT_TRUE(stored->has_value());
}

TEST_F(HistoryWriterTest, EndsOfUnknownConnectionsAreCounted) {
    auto writer = start();
    ASSERT_TRUE(writer);
    writer->push(ConnectionEnd{.id = 42, .end_ms = kNow});
    writer->flush();
    EXPECT_EQ(writer->stats().unmatched_ends, 1U);
}

TEST_F(HistoryWriterTest, DisabledHistoryQueuesNothingAndCountsNoDrop) {
    auto writer = start({.enable = false});
    ASSERT_TRUE(writer);
    EXPECT_EQ(writer->push(connection_record(1, "curl", "example.com", kNow)), Pushed::Disabled);
    writer->set_settings({.enable = true});
    EXPECT_EQ(writer->push(connection_record(2, "curl", "example.com", kNow)), Pushed::Queued);
    writer->flush();
    const WriterStats stats = writer->stats();
    EXPECT_EQ(stats.accepted, 1U);
    EXPECT_EQ(stats.written, 1U);
    EXPECT_EQ(stats.dropped, 0U);
}

TEST_F(HistoryWriterTest, NextIdComesFromTheFile) {
    {
        auto writer = start();
        ASSERT_TRUE(writer);
        writer->push(connection_record(41, "curl", "example.com", kNow));
    }
    auto writer = start();
    ASSERT_TRUE(writer);
    EXPECT_EQ(writer->first_id(), 42U);
}

TEST_F(HistoryWriterTest, PrunesByAgeAtStartAndWhenTheSettingsChange) {
    {
        auto store = HistoryStore::open(file_);
        ASSERT_TRUE(store.has_value());
        ASSERT_TRUE(
            (*store)
                ->write_batch({.connections = {connection_record(1, "a", "", kNow - 40 * kDay),
                                               connection_record(2, "a", "", kNow - 10 * kDay),
                                               connection_record(3, "a", "", kNow)},
                               .ends = {},
                               .dns_queries = {}})
                .has_value());
    }
    auto writer = start({.keep_days = 30}, {.commit_interval = 1h});
    ASSERT_TRUE(writer);
    writer->flush(); // the first round prunes
    EXPECT_EQ(writer->stats().pruned, 1U);
    writer->set_settings({.keep_days = 5});
    writer->flush();
    EXPECT_EQ(writer->stats().pruned, 2U);
    auto store = reader();
    ASSERT_TRUE(store);
    auto rest = store->connections({});
    ASSERT_TRUE(rest.has_value());
    ASSERT_EQ(rest->rows.size(), 1U);
    EXPECT_EQ(rest->rows[0].id, 3U);
}

TEST_F(HistoryWriterTest, LargePruneGoesInRoundsUntilDone) {
    {
        auto store = HistoryStore::open(file_);
        ASSERT_TRUE(store.has_value());
        Batch batch;
        for (std::uint64_t id = 1; id <= 50; ++id) {
            batch.connections.push_back(connection_record(id, "a", "", kNow - 40 * kDay));
        }
        ASSERT_TRUE((*store)->write_batch(batch).has_value());
    }
    auto writer = start({}, {.commit_interval = 1h, .prune_rows_per_round = 7});
    ASSERT_TRUE(writer);
    EXPECT_TRUE(eventually([&] { return writer->stats().pruned == 50; }));
}

// The writer is held up (another connection holds the write lock, as a slow disk would): the
// queue fills, further pushes are dropped and counted, and not one push waits.
TEST_F(HistoryWriterTest, FullQueueDropsAndCountsAndNeverBlocks) {
    constexpr std::size_t kCapacity = 8;
    auto writer = start({}, {.capacity = kCapacity, .commit_interval = 1h});
    ASSERT_TRUE(writer);
    writer->flush(); // the start's prune is done: the writer now waits for work

    RawDatabase blocker(file_);
    blocker.exec("BEGIN IMMEDIATE");
    // Half the capacity wakes the writer, which takes these records and then waits for the
    // lock (up to its busy timeout of 5 s).
    std::uint64_t id = 0;
    for (std::size_t i = 0; i < kCapacity / 2; ++i) {
        ASSERT_EQ(writer->push(connection_record(++id, "a", "", kNow)), Pushed::Queued);
    }
    ASSERT_TRUE(eventually([&] { return writer->stats().queued == 0; }));

    for (std::size_t i = 0; i < kCapacity; ++i) {
        ASSERT_EQ(writer->push(connection_record(++id, "a", "", kNow)), Pushed::Queued);
    }
    const auto before = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) {
        EXPECT_EQ(writer->push(connection_record(++id, "a", "", kNow)), Pushed::Dropped);
    }
    const auto spent = std::chrono::steady_clock::now() - before;
    EXPECT_LT(spent, 100ms); // the writer is stuck for seconds; the pushes did not wait for it
    WriterStats stats = writer->stats();
    EXPECT_EQ(stats.dropped, 1000U);
    EXPECT_EQ(stats.queued, kCapacity);
    EXPECT_EQ(stats.written, 0U);

    blocker.exec("ROLLBACK");
    writer->flush();
    stats = writer->stats();
    EXPECT_EQ(stats.written, kCapacity / 2 + kCapacity);
    EXPECT_EQ(stats.accepted, kCapacity / 2 + kCapacity);
    EXPECT_EQ(stats.dropped, 1000U);
    EXPECT_TRUE(stats.last_error.empty()) << stats.last_error;
}

TEST_F(HistoryWriterTest, FailedBatchIsCountedWithItsError) {
    auto writer = start({}, {.commit_interval = 1h});
    ASSERT_TRUE(writer);
    writer->flush();
    {
        RawDatabase blocker(file_);
        blocker.exec("BEGIN IMMEDIATE");
        writer->push(connection_record(1, "a", "", kNow));
        writer->flush(); // the writer gives up after its busy timeout
        blocker.exec("ROLLBACK");
    }
    const WriterStats stats = writer->stats();
    EXPECT_EQ(stats.failed, 1U);
    EXPECT_EQ(stats.written, 0U);
    EXPECT_THAT(stats.last_error, HasSubstr(file_.string()));
    EXPECT_THAT(stats.last_error, HasSubstr("locked"));
}

TEST_F(HistoryWriterTest, CorruptFileFoundByTheDeferredCheckIsReportedAndNeverWritten) {
    {
        auto store = HistoryStore::open(file_);
        ASSERT_TRUE(store.has_value());
        Batch batch;
        for (std::uint64_t id = 1; id <= 2000; ++id) {
            batch.connections.push_back(connection_record(id, "app", "example.com", kNow));
        }
        ASSERT_TRUE((*store)->write_batch(batch).has_value());
    }
    std::string bytes = testing::read_bytes(file_);
    std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2),
              bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2 + 4096), '\xA5');
    testing::write_bytes(file_, bytes);

    auto store = HistoryStore::open(file_, OpenMode::ReadWrite, IntegrityCheck::Deferred);
    ASSERT_TRUE(store.has_value()) << store.error().message();
    {
        auto writer = HistoryWriter::start(std::move(*store), {}, {.wall_clock_ms = [] {
                                               return kNow;
                                           }});
        ASSERT_TRUE(writer.has_value());
        (*writer)->push(connection_record(5000, "app", "example.com", kNow));
        (*writer)->flush();
        const WriterStats stats = (*writer)->stats();
        EXPECT_EQ(stats.failed, 1U);
        EXPECT_EQ(stats.written, 0U);
        EXPECT_THAT(stats.last_error, HasSubstr(file_.string()));
        EXPECT_THAT(stats.last_error, HasSubstr("corrupt"));
    }
    EXPECT_EQ(testing::read_bytes(file_), bytes);
}

// kill -9 (issue 11): a child writes a connection every millisecond through the writer with
// its default options and is killed with SIGKILL. The file must pass integrity_check, hold a
// gap-free run of the first connections, and miss at most the last second before the kill.
TEST_F(HistoryWriterTest, KillNineLosesAtMostTheLastSecondAndNeverCorrupts) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        auto store = HistoryStore::open(file_);
        if (!store) {
            ::_exit(2);
        }
        auto writer = HistoryWriter::start(std::move(*store), {});
        if (!writer) {
            ::_exit(3);
        }
        const char byte = 'r';
        if (::write(ready[1], &byte, 1) != 1) {
            ::_exit(4);
        }
        for (std::uint64_t id = 1;; ++id) {
            (*writer)->push(connection_record(id, "app", "example.com", system_clock_ms()));
            std::this_thread::sleep_for(1ms);
        }
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1);
    ::close(ready[0]);
    std::this_thread::sleep_for(2500ms);
    const std::int64_t killed_at = system_clock_ms();
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

    {
        RawDatabase raw(file_);
        EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
        const std::string count = raw.text("SELECT count(*) FROM connections");
        EXPECT_EQ(raw.text("SELECT coalesce(max(id), 0) FROM connections"), count)
            << "the stored connections are not the first ones without a gap";
        const std::int64_t newest = std::stoll(raw.text("SELECT max(started) FROM connections"));
        EXPECT_GE(newest, killed_at - 1000) << "more than the last second was lost";
        EXPECT_GT(std::stoll(count), 1000); // the child really wrote for 2.5 s
    }
    auto store = HistoryStore::open(file_);
    ASSERT_TRUE(store.has_value()) << store.error().message();
}

} // namespace
} // namespace pw::history
