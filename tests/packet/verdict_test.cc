#include "packet/verdict.h"

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string_view>

#include <gtest/gtest.h>

namespace pw::packet {
namespace {

constexpr std::array kAllVerdicts = {Verdict::Accept, Verdict::Block, Verdict::Drop,
                                     Verdict::RerouteToNameserver, Verdict::RerouteToTunnel};
constexpr std::array kAllPersistences = {Persistence::Temporary, Persistence::Permanent};

bool is_reroute(Verdict verdict) {
    return verdict == Verdict::RerouteToNameserver || verdict == Verdict::RerouteToTunnel;
}

// The numbers are a contract with iptables rules that may outlive this binary (a crashed older
// version leaves its rules behind), so they are spelled out here rather than taken from mark::.
TEST(Verdict, UsesTheSeedMarkNumbers) {
    EXPECT_EQ(mark_for(Verdict::Accept, Persistence::Temporary), 1700U);
    EXPECT_EQ(mark_for(Verdict::Block, Persistence::Temporary), 1701U);
    EXPECT_EQ(mark_for(Verdict::Drop, Persistence::Temporary), 1702U);
    EXPECT_EQ(mark_for(Verdict::Accept, Persistence::Permanent), 1710U);
    EXPECT_EQ(mark_for(Verdict::Block, Persistence::Permanent), 1711U);
    EXPECT_EQ(mark_for(Verdict::Drop, Persistence::Permanent), 1712U);
    EXPECT_EQ(mark_for(Verdict::RerouteToTunnel, Persistence::Permanent), 1717U);
    EXPECT_EQ(mark_for(Verdict::RerouteToNameserver, Persistence::Permanent), 1799U);
    EXPECT_EQ(mark::kUndecided, 0U);
}

TEST(Verdict, GivesReroutesOneMarkWhateverThePersistence) {
    EXPECT_EQ(mark_for(Verdict::RerouteToTunnel, Persistence::Temporary), 1717U);
    EXPECT_EQ(mark_for(Verdict::RerouteToNameserver, Persistence::Temporary), 1799U);
}

void expect_round_trip(Verdict verdict, Persistence persistence) {
    const std::uint32_t value = mark_for(verdict, persistence);
    const std::optional<MarkMeaning> meaning = meaning_of_mark(value);
    ASSERT_TRUE(meaning.has_value()) << "mark " << value;
    EXPECT_EQ(meaning->verdict, verdict) << "mark " << value;
    // Reroutes are always remembered by the kernel, so they read back as permanent.
    const Persistence expected = is_reroute(verdict) ? Persistence::Permanent : persistence;
    EXPECT_EQ(meaning->persistence, expected) << "mark " << value;
}

TEST(Verdict, RoundTripsEveryVerdictAndPersistenceThroughItsMark) {
    for (const Verdict verdict : kAllVerdicts) {
        for (const Persistence persistence : kAllPersistences) {
            expect_round_trip(verdict, persistence);
        }
    }
}

TEST(Verdict, GivesEveryNonRerouteCombinationItsOwnMark) {
    std::set<std::uint32_t> marks;
    for (const Verdict verdict : kAllVerdicts) {
        for (const Persistence persistence : kAllPersistences) {
            marks.insert(mark_for(verdict, persistence));
        }
    }
    EXPECT_EQ(marks.size(), 8U); // 3 verdicts x 2 persistences + 2 reroutes
}

TEST(Verdict, ReadsTheSeedMarkNumbersBack) {
    struct Expected {
        std::uint32_t value;
        Verdict verdict;
        Persistence persistence;
    };
    const std::array<Expected, 8> table = {{
        {.value = 1700, .verdict = Verdict::Accept, .persistence = Persistence::Temporary},
        {.value = 1701, .verdict = Verdict::Block, .persistence = Persistence::Temporary},
        {.value = 1702, .verdict = Verdict::Drop, .persistence = Persistence::Temporary},
        {.value = 1710, .verdict = Verdict::Accept, .persistence = Persistence::Permanent},
        {.value = 1711, .verdict = Verdict::Block, .persistence = Persistence::Permanent},
        {.value = 1712, .verdict = Verdict::Drop, .persistence = Persistence::Permanent},
        {.value = 1717, .verdict = Verdict::RerouteToTunnel, .persistence = Persistence::Permanent},
        {.value = 1799,
         .verdict = Verdict::RerouteToNameserver,
         .persistence = Persistence::Permanent},
    }};
    for (const Expected& row : table) {
        const auto meaning = meaning_of_mark(row.value);
        ASSERT_TRUE(meaning.has_value()) << "mark " << row.value;
        EXPECT_EQ(meaning->verdict, row.verdict) << "mark " << row.value;
        EXPECT_EQ(meaning->persistence, row.persistence) << "mark " << row.value;
    }
}

TEST(Verdict, HasNoMeaningForUndecidedOrForeignMarks) {
    EXPECT_FALSE(meaning_of_mark(mark::kUndecided).has_value());
    for (const std::uint32_t foreign : {1U, 17U, 1699U, 1703U, 1709U, 1713U, 1716U, 1718U, 1798U,
                                        1800U, 0x10000U + 1700U, 0xffffffffU}) {
        EXPECT_FALSE(meaning_of_mark(foreign).has_value()) << "mark " << foreign;
    }
}

TEST(Verdict, NamesEveryVerdict) {
    EXPECT_EQ(verdict_name(Verdict::Accept), "accept");
    EXPECT_EQ(verdict_name(Verdict::Block), "block");
    EXPECT_EQ(verdict_name(Verdict::Drop), "drop");
    EXPECT_EQ(verdict_name(Verdict::RerouteToNameserver), "reroute-nameserver");
    EXPECT_EQ(verdict_name(Verdict::RerouteToTunnel), "reroute-tunnel");
}

} // namespace
} // namespace pw::packet
