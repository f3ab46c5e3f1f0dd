#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/result.h"
#include "history/history_settings.h"
#include "history/history_store.h"
#include "history/record.h"

namespace pw::history {

struct WriterOptions {
    // Records held in memory between commits. When full, push() drops and counts: the packet
    // path never waits for the disk. 64 Ki records is about a minute of a very busy desktop.
    std::size_t capacity = 65'536;
    // A commit at least this often. Half the bound (a kill -9 loses at most the last
    // second), so that a slow commit still keeps it.
    std::chrono::milliseconds commit_interval{500};
    std::chrono::milliseconds prune_interval = std::chrono::hours(1);
    // Rows one round may prune before the writer commits again (HistoryStore::prune's
    // max_rows): about 0.2 s of deletes, which keeps a kill -9's loss under a second.
    std::int64_t prune_rows_per_round = 10'000;
    // Unix time in milliseconds, for the age cutoff of prune(); the system clock by default.
    // NOLINTNEXTLINE(readability-redundant-member-init): GCC 12 -Wmissing-field-initializers
    std::function<std::int64_t()> wall_clock_ms{};
};

// What the writer has done, for /metrics and `portwarden status`. Counts since start.
struct WriterStats {
    std::uint64_t queued = 0;         // records waiting for the next commit, now
    std::uint64_t accepted = 0;       // records that push() queued
    std::uint64_t written = 0;        // records committed
    std::uint64_t dropped = 0;        // records refused because the queue was full
    std::uint64_t failed = 0;         // records lost with a batch that failed to commit
    std::uint64_t unmatched_ends = 0; // ends of connections that are not in the history
    std::uint64_t batches = 0;        // committed transactions
    std::uint64_t pruned = 0;         // rows removed by prune (age and size)
    // From the first record's push to its batch's commit, for the last batch written.
    std::chrono::milliseconds write_lag{0};
    std::string last_error; // empty: no failure yet
};

enum class Pushed : std::uint8_t {
    Queued,
    Dropped,  // the queue was full; counted in WriterStats::dropped
    Disabled, // history/enable is off; not counted
};

// Writes the history on a thread of its own, away from the packet path. The event loop
// push()es records: a push takes a mutex that the writer holds only to swap two vectors, never
// during I/O, and never blocks on a full queue (the record is dropped and counted instead).
// The writer thread commits what is queued as one transaction every commit_interval (or sooner
// when the queue is half full), prunes by age and size every prune_interval, and is the only
// thread that touches its HistoryStore.
//
// Threads: push(), set_settings(), stats(), flush() from any thread (normally the event loop);
// the store from the writer thread only. The destructor commits what is queued and joins:
// destroy the writer after the last push() (the daemon's stop order).
class HistoryWriter {
public:
    using Item = std::variant<ConnectionRecord, ConnectionEnd, DnsQueryRecord>;

    // Takes the store (opened ReadWrite), reads its next connection ID, and starts the thread.
    // Open the store with IntegrityCheck::Deferred for the daemon: the check then runs on the
    // writer thread in its first round, and a corrupt file shows up as failed batches and
    // last_error instead of a slow start (the file is never written).
    [[nodiscard]] static Result<std::unique_ptr<HistoryWriter>> start(
        std::unique_ptr<HistoryStore> store, HistorySettings settings, WriterOptions options = {});

    HistoryWriter(const HistoryWriter&) = delete;
    HistoryWriter& operator=(const HistoryWriter&) = delete;
    HistoryWriter(HistoryWriter&&) = delete;
    HistoryWriter& operator=(HistoryWriter&&) = delete;
    ~HistoryWriter();

    // The first connection ID the daemon may use (HistoryStore::next_id() at start).
    [[nodiscard]] std::uint64_t first_id() const { return first_id_; }

    Pushed push(ConnectionRecord record) { return push_item(Item(std::move(record))); }
    Pushed push(ConnectionEnd end) { return push_item(Item(end)); }
    Pushed push(DnsQueryRecord query) { return push_item(Item(std::move(query))); }

    // New retention or enable; the next round prunes with them.
    void set_settings(HistorySettings settings);
    [[nodiscard]] WriterStats stats();

    // Blocks until everything pushed before the call is committed (or failed). For shutdown
    // and tests; never from the packet path.
    void flush();

private:
    HistoryWriter(std::unique_ptr<HistoryStore> store, HistorySettings settings,
                  WriterOptions options, std::uint64_t first_id);
    Pushed push_item(Item item);
    void run();
    void write(std::vector<Item>& items, std::chrono::steady_clock::time_point since);
    void prune();
    void record_error(std::string message);

    const std::unique_ptr<HistoryStore> store_; // writer thread only
    const WriterOptions options_;
    const std::uint64_t first_id_;
    std::atomic<bool> enabled_;

    // Between the producers and the writer thread. Not a Guarded<T>: the writer waits on it
    // with condition variables, which need the mutex itself.
    std::mutex mutex_;
    std::condition_variable wake_;                        // the writer: stop, flush, or half full
    std::condition_variable flushed_;                     // flush() callers
    std::vector<Item> pending_;                           // guarded by mutex_
    std::chrono::steady_clock::time_point pending_since_; // guarded by mutex_
    HistorySettings settings_;                            // guarded by mutex_
    bool prune_due_ = true;                               // guarded by mutex_: at start, too
    std::uint64_t flush_requested_ = 0;                   // guarded by mutex_
    std::uint64_t flush_done_ = 0;                        // guarded by mutex_
    bool stopping_ = false;                               // guarded by mutex_
    std::string last_error_;                              // guarded by mutex_
    std::chrono::milliseconds write_lag_{0};              // guarded by mutex_

    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::uint64_t> written_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> failed_{0};
    std::atomic<std::uint64_t> unmatched_ends_{0};
    std::atomic<std::uint64_t> batches_{0};
    std::atomic<std::uint64_t> pruned_{0};

    std::thread thread_; // last: starts after everything above exists
};

} // namespace pw::history
