#include "history/history_writer.h"

#include <algorithm>
#include <utility>

#include "common/assert.h"

namespace pw::history {

using SteadyClock = std::chrono::steady_clock;

namespace {

std::int64_t system_clock_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

constexpr std::int64_t kMsPerDay = 24LL * 60 * 60 * 1000;

} // namespace

Result<std::unique_ptr<HistoryWriter>> HistoryWriter::start(std::unique_ptr<HistoryStore> store,
                                                            HistorySettings settings,
                                                            WriterOptions options) {
    // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
    PW_ASSERT(store); // the caller opens it: a writer without a file is a bug
    auto next = store->next_id();
    if (!next) {
        return std::unexpected(next.error());
    }
    if (!options.wall_clock_ms) {
        options.wall_clock_ms = system_clock_ms;
    }
    options.capacity = std::max<std::size_t>(options.capacity, 2);
    return std::unique_ptr<HistoryWriter>(
        new HistoryWriter(std::move(store), settings, std::move(options), *next));
}

HistoryWriter::HistoryWriter(std::unique_ptr<HistoryStore> store, HistorySettings settings,
                             WriterOptions options, std::uint64_t first_id)
    : store_(std::move(store)),
      options_(std::move(options)),
      first_id_(first_id),
      enabled_(settings.enable),
      settings_(settings),
      thread_([this] { run(); }) {}

HistoryWriter::~HistoryWriter() {
    {
        const std::scoped_lock lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join(); // the thread commits what is queued before it returns
}

Pushed HistoryWriter::push_item(Item item) {
    if (!enabled_.load(std::memory_order_relaxed)) {
        return Pushed::Disabled;
    }
    std::size_t size = 0;
    {
        const std::scoped_lock lock(mutex_);
        if (pending_.size() >= options_.capacity) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return Pushed::Dropped;
        }
        if (pending_.empty()) {
            pending_since_ = SteadyClock::now();
        }
        pending_.push_back(std::move(item));
        size = pending_.size();
    }
    accepted_.fetch_add(1, std::memory_order_relaxed);
    // Wake the writer early once, when half full, so that a burst does not fill the queue
    // while the writer sleeps out its interval.
    if (size == options_.capacity / 2) {
        wake_.notify_one();
    }
    return Pushed::Queued;
}

void HistoryWriter::set_settings(HistorySettings settings) {
    enabled_.store(settings.enable, std::memory_order_relaxed);
    {
        const std::scoped_lock lock(mutex_);
        settings_ = settings;
        prune_due_ = true;
    }
    wake_.notify_one();
}

WriterStats HistoryWriter::stats() {
    WriterStats stats;
    {
        const std::scoped_lock lock(mutex_);
        stats.queued = pending_.size();
        stats.last_error = last_error_;
        stats.write_lag = write_lag_;
    }
    stats.accepted = accepted_.load(std::memory_order_relaxed);
    stats.written = written_.load(std::memory_order_relaxed);
    stats.dropped = dropped_.load(std::memory_order_relaxed);
    stats.failed = failed_.load(std::memory_order_relaxed);
    stats.unmatched_ends = unmatched_ends_.load(std::memory_order_relaxed);
    stats.batches = batches_.load(std::memory_order_relaxed);
    stats.pruned = pruned_.load(std::memory_order_relaxed);
    return stats;
}

void HistoryWriter::flush() {
    std::unique_lock lock(mutex_);
    const std::uint64_t ticket = ++flush_requested_;
    wake_.notify_one();
    flushed_.wait(lock, [&] { return flush_done_ >= ticket; });
}

void HistoryWriter::record_error(std::string message) {
    const std::scoped_lock lock(mutex_);
    last_error_ = std::move(message);
}

void HistoryWriter::write(std::vector<Item>& items, SteadyClock::time_point since) {
    Batch batch;
    for (Item& item : items) {
        if (auto* record = std::get_if<ConnectionRecord>(&item)) {
            batch.connections.push_back(std::move(*record));
        } else if (auto* end = std::get_if<ConnectionEnd>(&item)) {
            batch.ends.push_back(*end);
        } else {
            batch.dns_queries.push_back(std::move(std::get<DnsQueryRecord>(item)));
        }
    }
    items.clear();
    auto outcome = store_->write_batch(batch);
    if (!outcome) {
        failed_.fetch_add(batch.size(), std::memory_order_relaxed);
        record_error(outcome.error().message());
        return;
    }
    written_.fetch_add(batch.size(), std::memory_order_relaxed);
    unmatched_ends_.fetch_add(outcome->unmatched_ends, std::memory_order_relaxed);
    batches_.fetch_add(1, std::memory_order_relaxed);
    const auto lag =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - since);
    const std::scoped_lock lock(mutex_);
    write_lag_ = lag;
}

void HistoryWriter::prune() {
    HistorySettings settings;
    {
        const std::scoped_lock lock(mutex_);
        settings = settings_;
        prune_due_ = false;
    }
    const std::int64_t cutoff = options_.wall_clock_ms() - settings.keep_days * kMsPerDay;
    auto outcome = store_->prune(cutoff, settings.max_bytes, options_.prune_rows_per_round);
    if (!outcome) {
        record_error(outcome.error().message());
        return;
    }
    if (!outcome->complete) {
        // More to prune: the next round continues right after committing what is queued.
        const std::scoped_lock lock(mutex_);
        prune_due_ = true;
    }
    pruned_.fetch_add(
        static_cast<std::uint64_t>(outcome->connections_removed + outcome->dns_queries_removed),
        std::memory_order_relaxed);
}

void HistoryWriter::run() {
    // The writer's own buffer: swapped with pending_, so that the producers' vector keeps its
    // capacity and a push seldom allocates.
    std::vector<Item> items;
    auto next_commit = SteadyClock::now() + options_.commit_interval;
    auto next_prune = SteadyClock::now() + options_.prune_interval;
    for (;;) {
        SteadyClock::time_point since;
        std::uint64_t flush_ticket = 0;
        bool stop = false;
        bool prune_now = false;
        {
            std::unique_lock lock(mutex_);
            wake_.wait_until(lock, next_commit, [&] {
                return stopping_ || prune_due_ || flush_requested_ > flush_done_ ||
                       pending_.size() >= options_.capacity / 2;
            });
            items.swap(pending_);
            since = pending_since_;
            flush_ticket = flush_requested_;
            stop = stopping_;
            prune_now = prune_due_;
        }
        next_commit = SteadyClock::now() + options_.commit_interval;
        if (!items.empty()) {
            write(items, since);
        }
        if (prune_now || SteadyClock::now() >= next_prune) {
            prune();
            next_prune = SteadyClock::now() + options_.prune_interval;
        }
        {
            const std::scoped_lock lock(mutex_);
            flush_done_ = std::max(flush_done_, flush_ticket);
        }
        flushed_.notify_all();
        if (stop) {
            return; // everything pushed before stopping_ was set is written
        }
    }
}

} // namespace pw::history
