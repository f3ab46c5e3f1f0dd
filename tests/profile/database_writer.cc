// The writer of the kill -9 test (database_kill_test.cc): stores COUNT profiles, one
// transaction each, and prints "ack <id>" on stdout in each write's completion, that is after
// its commit returned. The test kills it with SIGKILL at a moment of its choosing and checks
// that every acknowledged profile is in the file, whole.
//
//   database_writer FILE COUNT [--checkpoints]
//
// Output, one line per event, written unbuffered so that nothing is held back at the kill:
//   open                          the database is open (schema created)
//   ack <id>                      put_profile(<id>) committed
//   fail <id> <error>             put_profile(<id>) failed (the test fails on it)
//   checkpoint <n>                a second connection starts WAL checkpoint number n
//   checkpointed <n> <pages>      ... and finished it, having copied <pages> pages
//   done <count> <seconds> <writes per second>
// With --checkpoints a second connection checkpoints the WAL in a loop (alternately PASSIVE and
// TRUNCATE), every 50 ms, so that the kill can land inside a checkpoint.
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "profile/database.h"
#include "profile/writer_payload.h"

namespace {

using pw::profile::Database;

void say(const std::string& line) {
    const std::string text = line + "\n";
    std::size_t written = 0;
    while (written < text.size()) {
        const ssize_t result = ::write(STDOUT_FILENO, text.data() + written, text.size() - written);
        if (result <= 0) {
            std::_Exit(3); // the test is gone
        }
        written += static_cast<std::size_t>(result);
    }
}

// Checkpoints the WAL from a connection of its own until `stop` is set.
void checkpoint_loop(const std::string& file, const std::atomic<bool>& stop) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        say(fmt::format("checkpoint-error {}", sqlite3_errmsg(db)));
        sqlite3_close_v2(db);
        return;
    }
    sqlite3_busy_timeout(db, 5000);
    for (int number = 1; !stop.load(); ++number) {
        // Far enough apart that each checkpoint has a few commits' pages to copy and sync.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        say(fmt::format("checkpoint {}", number));
        const int mode = number % 2 == 0 ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE;
        int copied = 0;
        sqlite3_wal_checkpoint_v2(db, nullptr, mode, nullptr, &copied);
        say(fmt::format("checkpointed {} {}", number, copied));
    }
    sqlite3_close_v2(db);
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        fmt::print(stderr, "usage: database_writer FILE COUNT [--checkpoints]\n");
        return 2;
    }
    const std::string file = argv[1];
    const int count = std::atoi(argv[2]);
    const bool checkpoints = argc > 3 && std::string_view(argv[3]) == "--checkpoints";

    // Completions run on the worker, at once: the ack leaves as soon as the commit returned.
    auto opened = Database::open(file, [](const std::function<void()>& call) { call(); });
    if (!opened) {
        fmt::print(stderr, "{}\n", opened.error().message());
        return 1;
    }
    Database& database = **opened;
    say("open");

    std::atomic<bool> stop = false;
    std::thread checkpointer;
    if (checkpoints) {
        checkpointer = std::thread([&] { checkpoint_loop(file, stop); });
    }

    const auto start = std::chrono::steady_clock::now();
    for (int index = 0; index < count; ++index) {
        auto profile = pw::profile::testing::writer_profile(index);
        std::string id = profile.id;
        database.put_profile(std::move(profile), [id](pw::Status status) {
            say(status ? "ack " + id : "fail " + id + " " + status.error().message());
        });
    }
    database.flush();
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    stop = true;
    if (checkpointer.joinable()) {
        checkpointer.join();
    }
    say(fmt::format("done {} {:.3f} {:.0f}", count, elapsed.count(), count / elapsed.count()));
    return 0;
}
