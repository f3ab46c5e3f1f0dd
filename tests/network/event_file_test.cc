#include "network/event_file.h"

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace pw::network {
namespace {

namespace fs = std::filesystem;

// A line of exactly `size` bytes, newline included, that says which one it is.
std::string numbered_line(int number, std::size_t size = 100) {
    std::string line = R"({"n":)" + std::to_string(number) + R"(,"pad":")";
    line.append(size - line.size() - 3, 'x');
    line += "\"}\n";
    return line;
}

std::string read_file(const fs::path& path) {
    std::ifstream input(path);
    std::stringstream text;
    text << input.rdbuf();
    return text.str();
}

std::vector<std::string> lines_of(const fs::path& path) {
    std::vector<std::string> lines;
    std::istringstream input(read_file(path));
    for (std::string line; std::getline(input, line);) {
        lines.push_back(line + "\n");
    }
    return lines;
}

class EventFileTest : public ::testing::Test {
protected:
    void SetUp() override { fs::create_directories(directory_); }
    void TearDown() override { fs::remove_all(directory_); }

    std::unique_ptr<EventFile> open(RotationLimits limits = {}) {
        auto file = EventFile::open(path_.string(), limits, clock_);
        EXPECT_TRUE(file.has_value()) << file.error().message();
        return file ? std::move(*file) : nullptr;
    }

    testing::FakeClock clock_;
    fs::path directory_ = fs::temp_directory_path() /
                          ("pw-event-file-" + std::to_string(::getpid()) + "-" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::path path_ = directory_ / "events.jsonl";
};

TEST_F(EventFileTest, WritesWholeLinesAtFlushAndCountsThem) {
    auto file = open();
    file->append(numbered_line(1));
    file->append(numbered_line(2));
    EXPECT_EQ(read_file(path_), ""); // buffered
    file->flush();
    EXPECT_EQ(read_file(path_), numbered_line(1) + numbered_line(2));
    EXPECT_EQ(file->counters().lines_written, 2U);
    EXPECT_EQ(file->state(), EventFile::State::Writing);
}

TEST_F(EventFileTest, AppendsToAnExistingFile) {
    std::ofstream(path_) << numbered_line(0);
    auto file = open();
    file->append(numbered_line(1));
    file->flush();
    EXPECT_EQ(lines_of(path_), (std::vector<std::string>{numbered_line(0), numbered_line(1)}));
}

TEST_F(EventFileTest, DevFullCountsAndReportsEveryFailedBatchAndKeepsTrying) {
    auto file = EventFile::open("/dev/full", {}, clock_);
    ASSERT_TRUE(file.has_value()) << file.error().message();
    (*file)->append(numbered_line(1));
    (*file)->append(numbered_line(2));
    (*file)->flush();
    EXPECT_EQ((*file)->state(), EventFile::State::Failing);
    EXPECT_EQ((*file)->counters().write_failures, 1U);
    EXPECT_EQ((*file)->counters().lines_dropped, 2U);
    EXPECT_EQ((*file)->counters().lines_written, 0U);
    // The next batch tries again (space may have returned); it fails again here.
    (*file)->append(numbered_line(3));
    (*file)->flush();
    EXPECT_EQ((*file)->counters().write_failures, 2U);
    EXPECT_EQ((*file)->counters().lines_dropped, 3U);
    EXPECT_EQ((*file)->state(), EventFile::State::Failing);
}

// The file size limit (RLIMIT_FSIZE) stands in for a full disk: writes past it fail (EFBIG)
// after writing what fits, and raising it is space that returns.
class FileSizeLimit {
public:
    explicit FileSizeLimit(rlim_t bytes) {
        static_cast<void>(::getrlimit(RLIMIT_FSIZE, &saved_));
        // Without a handler SIGXFSZ would end the test; the write must fail instead.
        previous_ = std::signal(SIGXFSZ, SIG_IGN);
        set(bytes);
    }
    FileSizeLimit(const FileSizeLimit&) = delete;
    FileSizeLimit& operator=(const FileSizeLimit&) = delete;
    FileSizeLimit(FileSizeLimit&&) = delete;
    FileSizeLimit& operator=(FileSizeLimit&&) = delete;
    ~FileSizeLimit() {
        static_cast<void>(::setrlimit(RLIMIT_FSIZE, &saved_));
        static_cast<void>(std::signal(SIGXFSZ, previous_));
    }
    void set(rlim_t bytes) const {
        rlimit limit = saved_;
        limit.rlim_cur = bytes;
        ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
    }
    void lift() const { set(saved_.rlim_cur); }

private:
    rlimit saved_{};
    void (*previous_)(int) = nullptr;
};

TEST_F(EventFileTest, AFullFileLosesNoHalfLineAndResumesWhenSpaceReturns) {
    auto file = open();
    const FileSizeLimit limit(250); // room for two lines and a half
    for (int number = 1; number <= 4; ++number) {
        file->append(numbered_line(number));
    }
    file->flush();
    EXPECT_EQ(file->state(), EventFile::State::Failing);
    EXPECT_EQ(file->counters().write_failures, 1U);
    EXPECT_EQ(file->counters().lines_written, 2U);
    EXPECT_EQ(file->counters().lines_dropped, 2U);
    // The half line was cut back out of the file.
    EXPECT_EQ(read_file(path_), numbered_line(1) + numbered_line(2));

    file->append(numbered_line(5));
    file->flush();
    EXPECT_EQ(file->counters().write_failures, 2U);
    EXPECT_EQ(file->counters().lines_dropped, 3U);

    limit.lift();
    file->append(numbered_line(6));
    file->flush();
    EXPECT_EQ(file->state(), EventFile::State::Writing);
    EXPECT_EQ(file->counters().lines_written, 3U);
    EXPECT_EQ(lines_of(path_),
              (std::vector<std::string>{numbered_line(1), numbered_line(2), numbered_line(6)}));
}

TEST_F(EventFileTest, APipeWhoseReaderClosedStopsTheStreamWithoutASignal) {
    const auto previous = std::signal(SIGPIPE, SIG_IGN); // JsonLinesEventWriter::open does this
    std::array<int, 2> ends{};
    ASSERT_EQ(::pipe(ends.data()), 0);
    // Opened by name, as `--events /dev/stdout` or a FIFO would be.
    auto file = EventFile::open("/proc/self/fd/" + std::to_string(ends[1]), {}, clock_);
    ::close(ends[1]);
    ASSERT_TRUE(file.has_value()) << file.error().message();
    (*file)->append(numbered_line(1));
    (*file)->flush();
    EXPECT_EQ((*file)->counters().lines_written, 1U);

    ::close(ends[0]); // `head -1` is done
    (*file)->append(numbered_line(2));
    (*file)->flush();
    EXPECT_EQ((*file)->state(), EventFile::State::ReaderGone);
    EXPECT_EQ((*file)->counters().write_failures, 1U);
    EXPECT_EQ((*file)->counters().lines_dropped, 1U);
    // Later lines are counted, not written: no write is tried again.
    for (int number = 3; number < 10; ++number) {
        (*file)->append(numbered_line(number));
        (*file)->flush();
    }
    EXPECT_EQ((*file)->counters().write_failures, 1U);
    EXPECT_EQ((*file)->counters().lines_dropped, 8U);
    static_cast<void>(std::signal(SIGPIPE, previous));
}

TEST_F(EventFileTest, RotatesBySizeAndKeepsTheNewestFiles) {
    auto file = open(RotationLimits{.max_file_size = 300, .keep_files = 2});
    for (int number = 1; number <= 10; ++number) {
        file->append(numbered_line(number));
        file->flush();
    }
    // Three lines fit in a file: 1-3, 4-6, 7-9 and 10; the oldest file went.
    EXPECT_EQ(lines_of(path_), (std::vector<std::string>{numbered_line(10)}));
    EXPECT_EQ(lines_of(path_.string() + ".1"),
              (std::vector<std::string>{numbered_line(7), numbered_line(8), numbered_line(9)}));
    EXPECT_EQ(lines_of(path_.string() + ".2"),
              (std::vector<std::string>{numbered_line(4), numbered_line(5), numbered_line(6)}));
    EXPECT_FALSE(fs::exists(path_.string() + ".3"));
    EXPECT_EQ(file->counters().rotations, 3U);
    EXPECT_EQ(file->counters().lines_written, 10U);
}

TEST_F(EventFileTest, RotationWorksOnBufferedLinesToo) {
    auto file = open(RotationLimits{.max_file_size = 250, .keep_files = 1});
    for (int number = 1; number <= 5; ++number) {
        file->append(numbered_line(number));
    }
    file->flush();
    EXPECT_EQ(lines_of(path_), (std::vector<std::string>{numbered_line(5)}));
    EXPECT_EQ(lines_of(path_.string() + ".1"),
              (std::vector<std::string>{numbered_line(3), numbered_line(4)}));
    for (const auto& entry : fs::directory_iterator(directory_)) {
        EXPECT_LE(fs::file_size(entry.path()), 250U) << entry.path();
    }
}

TEST_F(EventFileTest, KeepingNoFilesStartsTheFileAfresh) {
    auto file = open(RotationLimits{.max_file_size = 200, .keep_files = 0});
    for (int number = 1; number <= 3; ++number) {
        file->append(numbered_line(number));
        file->flush();
    }
    EXPECT_EQ(lines_of(path_), (std::vector<std::string>{numbered_line(3)}));
    EXPECT_FALSE(fs::exists(path_.string() + ".1"));
}

TEST_F(EventFileTest, AnExistingFileCountsTowardsTheLimit) {
    std::ofstream(path_) << numbered_line(0) << numbered_line(0);
    auto file = open(RotationLimits{.max_file_size = 250, .keep_files = 1});
    file->append(numbered_line(1));
    file->flush();
    EXPECT_EQ(lines_of(path_), (std::vector<std::string>{numbered_line(1)}));
    EXPECT_EQ(lines_of(path_.string() + ".1").size(), 2U);
}

TEST_F(EventFileTest, ReopenFollowsTheNameAfterAnotherProgramMovedTheFile) {
    auto file = open();
    file->append(numbered_line(1));
    file->flush();
    fs::rename(path_, path_.string() + ".old"); // logrotate
    file->append(numbered_line(2));
    ASSERT_TRUE(file->reopen().has_value());
    file->append(numbered_line(3));
    file->flush();
    // What was buffered before went to the old file; what came after, to the new one.
    EXPECT_EQ(lines_of(path_.string() + ".old"),
              (std::vector<std::string>{numbered_line(1), numbered_line(2)}));
    EXPECT_EQ(lines_of(path_), (std::vector<std::string>{numbered_line(3)}));
    EXPECT_EQ(file->counters().reopens, 1U);
}

TEST_F(EventFileTest, AFailedReopenDropsAndCountsUntilTheTargetCanBeOpenedAgain) {
    const fs::path nested = directory_ / "sub" / "events.jsonl";
    fs::create_directories(nested.parent_path());
    auto opened = EventFile::open(nested.string(), {}, clock_);
    ASSERT_TRUE(opened.has_value());
    auto& file = *opened;
    fs::remove_all(nested.parent_path());
    EXPECT_FALSE(file->reopen().has_value());
    file->append(numbered_line(1));
    file->flush();
    EXPECT_EQ(file->counters().lines_dropped, 1U);
    fs::create_directories(nested.parent_path());
    clock_.advance(std::chrono::seconds(1));
    file->append(numbered_line(2));
    file->flush();
    EXPECT_EQ(file->state(), EventFile::State::Writing);
    EXPECT_EQ(lines_of(nested), (std::vector<std::string>{numbered_line(2)}));
}

TEST(RotateFiles, ShiftsTheChainAndSkipsMissingLinks) {
    const fs::path directory =
        fs::temp_directory_path() / ("pw-rotate-" + std::to_string(::getpid()));
    fs::create_directories(directory);
    const fs::path file = directory / "events";
    std::ofstream(file) << "current";
    std::ofstream(file.string() + ".2") << "second";
    std::ofstream(file.string() + ".3") << "third";
    ASSERT_TRUE(rotate_files(file, 3).has_value());
    EXPECT_FALSE(fs::exists(file));
    EXPECT_EQ(read_file(file.string() + ".1"), "current");
    EXPECT_FALSE(fs::exists(file.string() + ".2"));
    EXPECT_EQ(read_file(file.string() + ".3"), "second"); // "third" was the oldest
    EXPECT_FALSE(fs::exists(file.string() + ".4"));
    fs::remove_all(directory);
}

TEST(EventFileOpen, AnUnwritablePathIsAnErrorNamingIt) {
    testing::FakeClock clock;
    auto file = EventFile::open("/nonexistent-dir/events.jsonl", {}, clock);
    ASSERT_FALSE(file.has_value());
    EXPECT_NE(file.error().message().find("/nonexistent-dir/events.jsonl"), std::string::npos);
}

} // namespace
} // namespace pw::network
