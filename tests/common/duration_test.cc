#include "common/duration.h"

#include <gtest/gtest.h>

namespace pw {
namespace {

using std::chrono::seconds;

TEST(ParseDuration, ANumberAndOneUnit) {
    EXPECT_EQ(parse_duration("45s"), seconds(45));
    EXPECT_EQ(parse_duration("15m"), seconds(900));
    EXPECT_EQ(parse_duration("2h"), seconds(7200));
    EXPECT_EQ(parse_duration("1d"), seconds(86400));
}

TEST(ParseDuration, AnythingElseIsRefused) {
    for (const char* text : {"", "m", "5", "0m", "-5m", "5 m", " 5m", "5mm", "5M", "1.5h", "5w",
                             "99999999999m", "+5m"}) {
        EXPECT_EQ(parse_duration(text), std::nullopt) << text;
    }
}

TEST(DurationText, TheLargestUnitThatFits) {
    EXPECT_EQ(duration_text(seconds(86400)), "1d");
    EXPECT_EQ(duration_text(seconds(5400)), "90m");
    EXPECT_EQ(duration_text(seconds(3600)), "1h");
    EXPECT_EQ(duration_text(seconds(45)), "45s");
    EXPECT_EQ(duration_text(seconds(0)), "0s");
    EXPECT_EQ(parse_duration(duration_text(seconds(5400))), seconds(5400));
}

} // namespace
} // namespace pw
