// kill -9 during 1,000 profile writes loses nothing acknowledged and leaves no half-written
// profile (issue 9, item 6). database_writer (PW_DATABASE_WRITER) stores writer_profile(0..999)
// in order, one transaction each, and prints "ack <id>" after each commit; this test kills it
// with SIGKILL at chosen moments (fixed seeds), then opens the file again and checks it row by
// row. Needs no root: the writer is an ordinary child process.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/unique_fd.h"
#include "profile/database.h"
#include "profile/writer_payload.h"

namespace pw::profile {
namespace {

namespace fs = std::filesystem;
constexpr int kWrites = 1000;

// When the test pulls the trigger.
struct KillPoint {
    // AfterCheckpoint: at the first checkpoint that begins after `count` acks.
    enum class Kind { AtStart, AfterOpen, AfterAcks, AfterCheckpoint, Never };
    Kind kind = Kind::Never;
    int count = 0; // acks to wait for
    std::string describe() const {
        switch (kind) {
            case Kind::AtStart:
                return "at start";
            case Kind::AfterOpen:
                return "right after open";
            case Kind::AfterAcks:
                return fmt::format("after ack {}", count);
            case Kind::AfterCheckpoint:
                return fmt::format("as a checkpoint began after ack {}", count);
            case Kind::Never:
                return "never (runs to the end)";
        }
        return "?";
    }
};

struct RoundOutcome {
    std::set<std::string> acked;
    std::string done_line; // "done ..." when the writer finished
    bool killed = false;
    // AfterCheckpoint: the writer died before it could report the end of that checkpoint.
    bool died_inside_checkpoint = false;
};

// The writer as a child process whose stdout we read line by line.
class Writer {
public:
    Writer(const fs::path& file, bool checkpoints) {
        std::array<int, 2> ends{};
        EXPECT_EQ(::pipe2(ends.data(), O_CLOEXEC), 0);
        output_ = UniqueFd(ends[0]);
        UniqueFd write_end(ends[1]);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(write_end.get(), STDOUT_FILENO);
            const std::string path = file.string();
            const std::string count = std::to_string(kWrites);
            std::vector<const char*> args = {PW_DATABASE_WRITER, path.c_str(), count.c_str()};
            if (checkpoints) {
                args.push_back("--checkpoints");
            }
            args.push_back(nullptr);
            ::execv(PW_DATABASE_WRITER, const_cast<char* const*>(args.data()));
            std::_Exit(127);
        }
        EXPECT_GT(pid_, 0);
    }
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    Writer(Writer&&) = delete;
    Writer& operator=(Writer&&) = delete;
    ~Writer() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    // The next line, or nullopt at the end of the output.
    std::optional<std::string> line() {
        for (;;) {
            if (auto end = buffer_.find('\n'); end != std::string::npos) {
                std::string line = buffer_.substr(0, end);
                buffer_.erase(0, end + 1);
                return line;
            }
            std::array<char, 4096> chunk{};
            const ssize_t got = ::read(output_.get(), chunk.data(), chunk.size());
            if (got <= 0) {
                return std::nullopt;
            }
            buffer_.append(chunk.data(), static_cast<std::size_t>(got));
        }
    }

    void kill() const { ::kill(pid_, SIGKILL); }

    // Waits for the exit; true when SIGKILL ended it.
    bool wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    }

private:
    pid_t pid_ = -1;
    UniqueFd output_;
    std::string buffer_;
};

RoundOutcome run_writer(const fs::path& file, KillPoint point, bool checkpoints) {
    RoundOutcome outcome;
    Writer writer(file, checkpoints);
    bool fired = false;
    auto fire = [&] {
        if (!fired) {
            writer.kill();
            fired = true;
        }
    };
    if (point.kind == KillPoint::Kind::AtStart) {
        fire();
    }
    std::string fired_checkpoint; // "checkpoint <n>" that triggered the kill
    bool checkpoint_ended = false;
    // Reading goes on after the kill: every ack the writer printed before it died counts.
    while (auto line = writer.line()) {
        if (line->starts_with("ack ")) {
            outcome.acked.insert(line->substr(4));
        } else if (line->starts_with("done ")) {
            outcome.done_line = *line;
        } else if (line->starts_with("fail ")) {
            ADD_FAILURE() << "the writer reported: " << *line;
        } else if (!fired_checkpoint.empty() && line->starts_with("checkpointed ") &&
                   line->substr(4).starts_with(fired_checkpoint.substr(4) + " ")) {
            checkpoint_ended = true; // "checkpointed <n> ..." of the checkpoint we fired at
        }
        const int acks = static_cast<int>(outcome.acked.size());
        bool now = false;
        switch (point.kind) {
            case KillPoint::Kind::AfterOpen:
                now = *line == "open";
                break;
            case KillPoint::Kind::AfterAcks:
                now = acks >= point.count;
                break;
            case KillPoint::Kind::AfterCheckpoint:
                now = !fired && acks >= point.count && line->starts_with("checkpoint ");
                if (now) {
                    fired_checkpoint = *line;
                }
                break;
            default:
                break;
        }
        if (now) {
            fire();
        }
    }
    outcome.died_inside_checkpoint = !fired_checkpoint.empty() && !checkpoint_ended;
    outcome.killed = writer.wait();
    return outcome;
}

std::string integrity_check(const fs::path& file) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    std::string result;
    sqlite3_exec(
        db, "PRAGMA integrity_check",
        [](void* out, int, char** values, char**) {
            *static_cast<std::string*>(out) += values[0] != nullptr ? values[0] : "NULL";
            return 0;
        },
        &result, nullptr);
    sqlite3_close_v2(db);
    return result;
}

// What is wrong with the rows found after a round, compared with what the writer acknowledged.
// The writes are sequential, so the rows must be exactly writer_profile(0..n-1), with n the
// number of acks or one more (a commit that was killed before its ack was printed).
std::vector<std::string> problems_in(const StoredState& state, const RoundOutcome& outcome) {
    std::vector<std::string> problems;
    std::map<std::string, const StoredProfile*> rows;
    for (const StoredProfile& row : state.profiles) {
        rows.emplace(row.id, &row);
    }
    for (const std::string& id : outcome.acked) {
        if (!rows.contains(id)) {
            problems.push_back(fmt::format("acknowledged profile {} is lost", id));
        }
    }
    if (rows.size() > outcome.acked.size() + 1) {
        problems.push_back(fmt::format("{} rows for {} acks: more than one unacknowledged commit",
                                       rows.size(), outcome.acked.size()));
    }
    for (int index = 0; index < static_cast<int>(rows.size()); ++index) {
        const StoredProfile expected = testing::writer_profile(index);
        const auto found = rows.find(expected.id);
        if (found == rows.end()) {
            problems.push_back(fmt::format("rows are not a prefix: {} is missing", expected.id));
        } else if (*found->second != expected) {
            problems.push_back(fmt::format("profile {} is not what was written", expected.id));
        } else if (!nlohmann::json::accept(found->second->settings_json) ||
                   !nlohmann::json::accept(found->second->fingerprints_json)) {
            problems.push_back(
                fmt::format("profile {} holds JSON that does not parse", expected.id));
        }
    }
    return problems;
}

// Opens the file the way the daemon would at its next start and checks every row.
// Returns the number of rows.
std::size_t verify(const fs::path& file, const RoundOutcome& outcome) {
    auto opened = Database::open(file, [](const std::function<void()>& call) { call(); });
    EXPECT_TRUE(opened) << opened.error().message();
    if (!opened) {
        return 0;
    }
    auto state = (*opened)->load();
    opened->reset();
    EXPECT_TRUE(state) << state.error().message();
    if (!state) {
        return 0;
    }
    const std::vector<std::string> problems = problems_in(*state, outcome);
    EXPECT_TRUE(problems.empty()) << problems.size()
                                  << " problems, the first: " << problems.front();
    EXPECT_EQ(integrity_check(file), "ok");
    return state->profiles.size();
}

struct Round {
    KillPoint point;
    bool checkpoints = false; // a second connection checkpoints the WAL in a loop
};

// The kill points, the same on every run (fixed seed).
std::vector<Round> kill_rounds() {
    using Kind = KillPoint::Kind;
    std::vector<Round> rounds = {
        // inside exec, open or the creation of the schema
        {.point = {.kind = Kind::AtStart}},
        // during the first commits
        {.point = {.kind = Kind::AfterOpen}},
        {.point = {.kind = Kind::AfterAcks, .count = 1}},
    };
    std::mt19937 random(20'240'917);
    std::uniform_int_distribution<int> ack(2, kWrites - 1);
    for (int round = 0; round < 6; ++round) {
        rounds.push_back({.point = {.kind = Kind::AfterAcks, .count = ack(random)}});
    }
    std::uniform_int_distribution<int> checkpoint_after(20, 400);
    for (int round = 0; round < 4; ++round) {
        rounds.push_back(
            {.point = {.kind = Kind::AfterCheckpoint, .count = checkpoint_after(random)},
             .checkpoints = true});
    }
    rounds.push_back({.point = {.kind = Kind::Never}});
    return rounds;
}

class DatabaseKillTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "pw-database-kill-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        directory_ = pattern;
    }
    void TearDown() override {
        std::error_code ignored;
        fs::remove_all(directory_, ignored);
    }

    fs::path directory_;
};

TEST_F(DatabaseKillTest, KillNineLosesNoAcknowledgedProfileAndLeavesNoneHalfWritten) {
    const std::vector<Round> rounds = kill_rounds();
    std::size_t total_acks = 0;
    int killed = 0;
    int inside_checkpoint = 0;
    for (std::size_t number = 0; number < rounds.size() && !HasFailure(); ++number) {
        const Round& round = rounds[number];
        const fs::path file = directory_ / fmt::format("round-{}.db", number);
        const RoundOutcome outcome = run_writer(file, round.point, round.checkpoints);
        const std::size_t rows = verify(file, outcome);
        total_acks += outcome.acked.size();
        killed += outcome.killed ? 1 : 0;
        inside_checkpoint += outcome.died_inside_checkpoint ? 1 : 0;
        fmt::print("kill round {}: killed {}: {}{}, {} acks, {} rows{}{}\n", number,
                   round.point.describe(), outcome.killed ? "died of SIGKILL" : "finished",
                   outcome.died_inside_checkpoint ? " inside the checkpoint" : "",
                   outcome.acked.size(), rows,
                   outcome.done_line.empty() ? "" : "; writer: ", outcome.done_line);
        // The last round runs to the end: its "done" line carries the write rate.
        EXPECT_TRUE(round.point.kind != KillPoint::Kind::Never ||
                    outcome.acked.size() == static_cast<std::size_t>(kWrites));
    }
    fmt::print(
        "kill test: {} rounds, {} killed by SIGKILL ({} inside a WAL checkpoint), {} "
        "acknowledged writes checked\n",
        rounds.size(), killed, inside_checkpoint, total_acks);
}

} // namespace
} // namespace pw::profile
