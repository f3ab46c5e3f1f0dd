// Integration tests of RuleSet and the conntrack cleanup against the real iptables binaries and
// the real kernel. Every test first moves this process into a brand-new network namespace and
// verifies that it left the namespace it started in, so nothing here can touch the host's
// rules. Needs root (CAP_SYS_ADMIN for unshare, CAP_NET_ADMIN inside).
#include <arpa/inet.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "common/ip_address.h"
#include "fakes/private_network_namespace.h"
#include "interception/conntrack.h"
#include "interception/rule_set.h"
#include "support/skip_exit.h"

namespace pw::interception {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// strerror() is not thread-safe; this is.
std::string errno_text() {
    return std::error_code(errno, std::system_category()).message();
}

// Moves the process into a new network namespace and proves it. Anything but a proven private
// namespace ends the process: running iptables-restore in the host namespace is not an option.
class NetnsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (const auto reason = testing::PrivateNetworkNamespace::enter()) {
            GTEST_SKIP() << *reason;
        }
    }

    // iptables-save without comments and counters, and without the tables that hold nothing
    // (the nf_tables backend keeps empty builtin tables around once they were used).
    std::vector<std::string> normalised_save(IpFamily family) {
        const auto save = runner_.save(family);
        EXPECT_TRUE(save.has_value()) << save.error().message();
        if (!save) {
            return {};
        }
        std::vector<std::string> lines;
        std::vector<std::string> table;
        bool table_has_content = false;
        std::string_view rest = *save;
        while (!rest.empty()) {
            const auto newline = rest.find('\n');
            std::string line(rest.substr(0, newline));
            rest =
                newline == std::string_view::npos ? std::string_view{} : rest.substr(newline + 1);
            if (line.empty() || line.starts_with('#')) {
                continue;
            }
            if (line.starts_with(':')) {
                line = line.substr(0, line.rfind(" ["));
                table_has_content = table_has_content || !line.ends_with(" ACCEPT");
            } else if (line.starts_with("-A ")) {
                table_has_content = true;
            }
            table.push_back(line);
            if (line == "COMMIT") {
                if (table_has_content) {
                    lines.insert(lines.end(), table.begin(), table.end());
                }
                table.clear();
                table_has_content = false;
            }
        }
        return lines;
    }

    // The rule lines ("-A ...") and non-builtin chains of one table of the save.
    std::vector<std::string> table_rules(IpFamily family, std::string_view name) {
        std::vector<std::string> rules;
        bool in_table = false;
        for (const auto& line : normalised_save(family)) {
            if (line.starts_with('*')) {
                in_table = line.substr(1) == name;
            } else if (in_table && (line.starts_with("-A ") || line.ends_with(" -"))) {
                rules.push_back(line);
            }
        }
        return rules;
    }

    void expect_all_ok(const std::vector<FamilyOutcome>& outcomes) {
        ASSERT_EQ(outcomes.size(), 2U);
        for (const auto& outcome : outcomes) {
            EXPECT_TRUE(outcome.status.has_value()) << outcome.status.error().message();
        }
    }

    // The problems one check finds, per family (V4 first): "" for a family as installed. Every
    // repair must succeed.
    std::vector<std::string> check_problems() {
        std::vector<std::string> problems;
        for (const auto& check : rule_set_.check_and_repair()) {
            EXPECT_TRUE(check.repair.has_value()) << check.repair.error().message();
            problems.push_back(check.problem);
        }
        return problems;
    }

    void restore_or_fail(IpFamily family, std::string_view script) {
        const auto restored = runner_.restore(family, script);
        ASSERT_TRUE(restored.has_value()) << restored.error().message();
    }

    IptablesBinaryRunner runner_;
    RuleSet rule_set_{runner_};
};

// How iptables-save prints our rules: hex marks, "-p" first, explicit CONNMARK masks, "-m udp".
struct PrintedFamily {
    std::string_view output_queue;
    std::string_view input_queue;
    std::string_view icmp;
    std::string_view reject_with;
    std::string_view nameserver;
    std::string_view tunnel;
};

std::vector<std::string> expected_mangle(const PrintedFamily& family) {
    const std::string restore =
        " -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff";
    const std::string related =
        " -m conntrack --ctstate RELATED -m mark --mark 0x0 -j MARK --set-xmark 0x6a4/0xffffffff";
    return {
        ":C170 -",
        ":C171 -",
        "-A INPUT -j C171",
        "-A OUTPUT -j C170",
        "-A C170" + restore,
        "-A C170 -p " + std::string(family.icmp) + related,
        "-A C170 -m mark --mark 0x0 -j NFQUEUE --queue-num " + std::string(family.output_queue) +
            " --queue-bypass",
        "-A C171" + restore,
        "-A C171 -p " + std::string(family.icmp) + related,
        "-A C171 -m mark --mark 0x0 -j NFQUEUE --queue-num " + std::string(family.input_queue) +
            " --queue-bypass",
    };
}

std::vector<std::string> expected_filter(const PrintedFamily& family) {
    const std::string icmp = "-p " + std::string(family.icmp) + " ";
    const std::string reject = " -j REJECT --reject-with " + std::string(family.reject_with);
    return {
        ":C17 -",
        "-A INPUT -j C17",
        "-A OUTPUT -j C17",
        "-A C17 -m mark --mark 0x0 -j DROP",
        "-A C17 -m mark --mark 0x6a4 -j ACCEPT",
        "-A C17 " + icmp + "-m mark --mark 0x6a5 -j RETURN",
        "-A C17 -m mark --mark 0x6a5" + reject,
        "-A C17 -m mark --mark 0x6a6 -j DROP",
        "-A C17 -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
        "-A C17 -m mark --mark 0x6ae -j ACCEPT",
        "-A C17 " + icmp + "-m mark --mark 0x6af -j RETURN",
        "-A C17 -m mark --mark 0x6af" + reject,
        "-A C17 -m mark --mark 0x6b0 -j DROP",
        "-A C17 -m mark --mark 0x6b5 -j ACCEPT",
    };
}

std::vector<std::string> expected_nat(const PrintedFamily& family) {
    const std::string tunnel = " -j DNAT --to-destination " + std::string(family.tunnel);
    return {
        "-A OUTPUT -p udp -m udp --dport 53 -m mark --mark 0x707 -j DNAT --to-destination " +
            std::string(family.nameserver),
        "-A OUTPUT -p tcp -m tcp --dport 53 -m mark --mark 0x707 -j DNAT --to-destination " +
            std::string(family.nameserver),
        "-A OUTPUT -p tcp -m mark --mark 0x6b5" + tunnel,
        "-A OUTPUT -p udp -m mark --mark 0x6b5" + tunnel,
    };
}

constexpr PrintedFamily kPrintedV4{.output_queue = "17040",
                                   .input_queue = "17140",
                                   .icmp = "icmp",
                                   .reject_with = "icmp-host-prohibited",
                                   .nameserver = "127.0.0.17:53",
                                   .tunnel = "127.0.0.17:1117"};
constexpr PrintedFamily kPrintedV6{.output_queue = "17060",
                                   .input_queue = "17160",
                                   .icmp = "ipv6-icmp",
                                   .reject_with = "icmp6-adm-prohibited",
                                   .nameserver = "[::1]:53",
                                   .tunnel = "[::1]:1117"};

constexpr std::array kFamilies{IpFamily::V4, IpFamily::V6};

const PrintedFamily& printed(IpFamily family) {
    return family == IpFamily::V4 ? kPrintedV4 : kPrintedV6;
}

TEST_F(NetnsTest, ApplyInstallsExactlyOurRulesInTheSeedOrder) {
    expect_all_ok(rule_set_.apply());
    for (const IpFamily family : kFamilies) {
        SCOPED_TRACE(family == IpFamily::V4 ? "IPv4" : "IPv6");
        EXPECT_THAT(table_rules(family, "mangle"),
                    ElementsAreArray(expected_mangle(printed(family))));
        EXPECT_THAT(table_rules(family, "filter"),
                    ElementsAreArray(expected_filter(printed(family))));
        EXPECT_THAT(table_rules(family, "nat"), ElementsAreArray(expected_nat(printed(family))));
    }
}

TEST_F(NetnsTest, ApplyTwiceGivesTheSameRuleset) {
    expect_all_ok(rule_set_.apply());
    const auto first_v4 = normalised_save(IpFamily::V4);
    const auto first_v6 = normalised_save(IpFamily::V6);
    expect_all_ok(rule_set_.apply());
    EXPECT_EQ(normalised_save(IpFamily::V4), first_v4);
    EXPECT_EQ(normalised_save(IpFamily::V6), first_v6);
}

TEST_F(NetnsTest, ApplyReplacesTheLeftoversOfACrash) {
    expect_all_ok(rule_set_.apply());
    const auto clean_v4 = normalised_save(IpFamily::V4);
    const auto clean_v6 = normalised_save(IpFamily::V6);
    // A previous run died half-way: jumps twice, junk in our chains, nat rules twice.
    restore_or_fail(IpFamily::V4,
                    "*mangle\n-A OUTPUT -j C170\n-A C171 -j DROP\nCOMMIT\n"
                    "*filter\n-I INPUT 1 -j C17\n-A OUTPUT -j C17\n"
                    "-A C17 -s 192.0.2.1 -j ACCEPT\n-I C17 1 -j RETURN\nCOMMIT\n"
                    "*nat\n-A OUTPUT -p udp --dport 53 -m mark --mark 1799 -j DNAT "
                    "--to-destination 127.0.0.17:53\nCOMMIT\n");
    restore_or_fail(IpFamily::V6,
                    "*mangle\n-I INPUT 1 -j C171\nCOMMIT\n"
                    "*filter\n-A INPUT -j C17\n-A C17 -s 2001:db8::1 -j ACCEPT\nCOMMIT\n"
                    "*nat\n-A OUTPUT -p tcp -m mark --mark 1717 -j DNAT "
                    "--to-destination [::1]:1117\nCOMMIT\n");
    ASSERT_NE(normalised_save(IpFamily::V4), clean_v4);

    expect_all_ok(rule_set_.apply());

    EXPECT_EQ(normalised_save(IpFamily::V4), clean_v4);
    EXPECT_EQ(normalised_save(IpFamily::V6), clean_v6);
}

TEST_F(NetnsTest, RemoveRestoresThePristineRulesetAndKeepsForeignRules) {
    restore_or_fail(IpFamily::V4,
                    "*mangle\n-A PREROUTING -p tcp --dport 22 -j MARK --set-mark 5\nCOMMIT\n"
                    "*filter\n:FOREIGN - [0:0]\n-A INPUT -s 192.0.2.7 -j ACCEPT\n"
                    "-A INPUT -j FOREIGN\n-A FOREIGN -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
                    "*nat\n-A OUTPUT -p tcp --dport 80 -j DNAT --to-destination 192.0.2.8:8080\n"
                    "-A OUTPUT -p udp -m mark --mark 1700 -j DNAT --to-destination 192.0.2.8:53\n"
                    "COMMIT\n");
    restore_or_fail(IpFamily::V6,
                    "*filter\n-A OUTPUT -d 2001:db8::7 -j DROP\nCOMMIT\n"
                    "*nat\n-A PREROUTING -p udp -m mark --mark 1799 -j DNAT "
                    "--to-destination [2001:db8::9]:53\nCOMMIT\n");
    const auto pristine_v4 = normalised_save(IpFamily::V4);
    const auto pristine_v6 = normalised_save(IpFamily::V6);

    expect_all_ok(rule_set_.apply());
    const auto applied = normalised_save(IpFamily::V4);
    EXPECT_NE(std::ranges::find(applied, "-A INPUT -s 192.0.2.7/32 -j ACCEPT"), applied.end());
    EXPECT_NE(std::ranges::find(applied, "-A FOREIGN -p tcp -m tcp --dport 22 -j ACCEPT"),
              applied.end());

    expect_all_ok(rule_set_.remove());
    EXPECT_EQ(normalised_save(IpFamily::V4), pristine_v4);
    EXPECT_EQ(normalised_save(IpFamily::V6), pristine_v6);

    expect_all_ok(rule_set_.remove());
    EXPECT_EQ(normalised_save(IpFamily::V4), pristine_v4);
    EXPECT_EQ(normalised_save(IpFamily::V6), pristine_v6);
}

TEST_F(NetnsTest, RemoveOnAFreshNamespaceIsANoOp) {
    expect_all_ok(rule_set_.remove());
    EXPECT_THAT(normalised_save(IpFamily::V4), IsEmpty());
    EXPECT_THAT(normalised_save(IpFamily::V6), IsEmpty());
}

TEST_F(NetnsTest, RemoveAfterApplyLeavesNothingOfOurs) {
    expect_all_ok(rule_set_.apply());
    expect_all_ok(rule_set_.remove());
    for (const IpFamily family : kFamilies) {
        EXPECT_THAT(normalised_save(family), IsEmpty());
    }
}

// Issue 10 item 3, with the real tools: what another program does to our rules is noticed and
// undone, and an untouched ruleset reads back as installed.
TEST_F(NetnsTest, CheckFindsNothingOnTheRulesAsInstalled) {
    expect_all_ok(rule_set_.apply());
    EXPECT_THAT(check_problems(), ElementsAre("", ""));
}

TEST_F(NetnsTest, CheckRestoresAFlushedChainAndADeletedJump) {
    expect_all_ok(rule_set_.apply());
    const auto installed_v4 = normalised_save(IpFamily::V4);
    const auto installed_v6 = normalised_save(IpFamily::V6);
    restore_or_fail(IpFamily::V4, "*filter\n-F C17\nCOMMIT\n");
    restore_or_fail(IpFamily::V6, "*mangle\n-D OUTPUT -j C170\nCOMMIT\n");

    EXPECT_THAT(check_problems(), ElementsAre("filter C17: 0 rules (11 installed)",
                                              "mangle OUTPUT -> C170: 0 rules (1 installed)"));
    EXPECT_THAT(normalised_save(IpFamily::V4), ElementsAreArray(installed_v4));
    EXPECT_THAT(normalised_save(IpFamily::V6), ElementsAreArray(installed_v6));
    EXPECT_THAT(check_problems(), ElementsAre("", ""));
}

TEST_F(NetnsTest, CheckRestoresOurJumpAboveAForeignRuleInsertedFirst) {
    expect_all_ok(rule_set_.apply());
    restore_or_fail(IpFamily::V4, "*filter\n-I OUTPUT 1 -j ACCEPT\n-A INPUT -j C17\nCOMMIT\n");

    EXPECT_THAT(check_problems(),
                ElementsAre(AllOf(HasSubstr("filter OUTPUT -> C17: changed or moved"),
                                  HasSubstr("filter INPUT -> C17: 2 rules (1 installed)")),
                            ""));
    // Ours first again; the foreign rule stays, after it.
    const auto filter = table_rules(IpFamily::V4, "filter");
    const auto ours = std::ranges::find(filter, "-A OUTPUT -j C17");
    const auto foreign = std::ranges::find(filter, "-A OUTPUT -j ACCEPT");
    ASSERT_NE(ours, filter.end());
    ASSERT_NE(foreign, filter.end());
    EXPECT_LT(ours, foreign);
    EXPECT_EQ(std::ranges::count(filter, "-A INPUT -j C17"), 1);
}

TEST_F(NetnsTest, RenderedRulesAreAcceptedAsTheyAre) {
    restore_or_fail(IpFamily::V4, render_rules(IpFamily::V4));
    restore_or_fail(IpFamily::V6, render_rules(IpFamily::V6));
    EXPECT_THAT(table_rules(IpFamily::V6, "filter"), ElementsAreArray(expected_filter(kPrintedV6)));
}

TEST_F(NetnsTest, RestoreFailureCarriesTheToolsExitCodeAndMessage) {
    const auto restored = runner_.restore(IpFamily::V6, "*filter\n-D INPUT -j C17\nCOMMIT\n");
    ASSERT_FALSE(restored.has_value());
    EXPECT_THAT(restored.error().what, StartsWith("ip6tables-restore failed (exit "));
    EXPECT_THAT(restored.error().what, HasSubstr("C17"));
}

// ---------------------------------------------------------------------------------------------
// Conntrack. Entries are created through ctnetlink, which needs no traffic.

struct NfctHandleDeleter {
    void operator()(nfct_handle* handle) const noexcept { nfct_close(handle); }
};
struct ConntrackDeleter {
    void operator()(nf_conntrack* entry) const noexcept { nfct_destroy(entry); }
};

void create_udp_entry(IpFamily family, std::string_view source, std::uint32_t mark) {
    const std::unique_ptr<nfct_handle, NfctHandleDeleter> handle(nfct_open(CONNTRACK, 0));
    ASSERT_NE(handle, nullptr) << errno_text();
    const std::unique_ptr<nf_conntrack, ConntrackDeleter> entry(nfct_new());
    ASSERT_NE(entry, nullptr);
    const auto address = IpAddress::parse(source);
    ASSERT_TRUE(address.has_value());
    const auto destination =
        IpAddress::parse(family == IpFamily::V4 ? "192.0.2.200" : "2001:db8::c8");
    ASSERT_TRUE(destination.has_value());
    if (family == IpFamily::V4) {
        nfct_set_attr_u8(entry.get(), ATTR_L3PROTO, AF_INET);
        nfct_set_attr(entry.get(), ATTR_IPV4_SRC, address->bytes().data());
        nfct_set_attr(entry.get(), ATTR_IPV4_DST, destination->bytes().data());
    } else {
        nfct_set_attr_u8(entry.get(), ATTR_L3PROTO, AF_INET6);
        nfct_set_attr(entry.get(), ATTR_IPV6_SRC, address->bytes().data());
        nfct_set_attr(entry.get(), ATTR_IPV6_DST, destination->bytes().data());
    }
    nfct_set_attr_u8(entry.get(), ATTR_L4PROTO, IPPROTO_UDP);
    nfct_set_attr_u16(entry.get(), ATTR_PORT_SRC, htons(40000));
    nfct_set_attr_u16(entry.get(), ATTR_PORT_DST, htons(53));
    nfct_setobjopt(entry.get(), NFCT_SOPT_SETUP_REPLY);
    nfct_set_attr_u32(entry.get(), ATTR_TIMEOUT, 120);
    nfct_set_attr_u32(entry.get(), ATTR_MARK, mark);
    ASSERT_EQ(nfct_query(handle.get(), NFCT_Q_CREATE, entry.get()), 0) << errno_text();
}

// The marks of every conntrack entry of both families, sorted.
std::vector<std::uint32_t> conntrack_marks() {
    std::vector<std::uint32_t> marks;
    const std::unique_ptr<nfct_handle, NfctHandleDeleter> handle(nfct_open(CONNTRACK, 0));
    EXPECT_NE(handle, nullptr) << errno_text();
    if (!handle) {
        return marks;
    }
    nfct_callback_register(
        handle.get(), NFCT_T_ALL,
        [](nf_conntrack_msg_type /*type*/, nf_conntrack* entry, void* data) noexcept {
            static_cast<std::vector<std::uint32_t>*>(data)->push_back(
                nfct_get_attr_u32(entry, ATTR_MARK));
            return static_cast<int>(NFCT_CB_CONTINUE);
        },
        &marks);
    for (std::uint32_t family : {std::uint32_t{AF_INET}, std::uint32_t{AF_INET6}}) {
        EXPECT_EQ(nfct_query(handle.get(), NFCT_Q_DUMP, &family), 0) << errno_text();
    }
    std::ranges::sort(marks);
    return marks;
}

TEST_F(NetnsTest, DeletesTheConntrackEntriesWithOurMarksOnly) {
    ASSERT_NO_FATAL_FAILURE(create_udp_entry(IpFamily::V4, "192.0.2.1", 1710));
    ASSERT_NO_FATAL_FAILURE(create_udp_entry(IpFamily::V4, "192.0.2.2", 0));
    ASSERT_NO_FATAL_FAILURE(create_udp_entry(IpFamily::V6, "2001:db8::1", 1710));
    ASSERT_NO_FATAL_FAILURE(create_udp_entry(IpFamily::V6, "2001:db8::2", 1711));
    ASSERT_THAT(conntrack_marks(), ElementsAreArray({0U, 1710U, 1710U, 1711U}));

    constexpr std::array<std::uint32_t, 1> kMarks{1710};
    const auto deleted = delete_conntrack_entries_with_marks(kMarks);

    ASSERT_TRUE(deleted.has_value()) << deleted.error().message();
    EXPECT_EQ(*deleted, 2U);
    EXPECT_THAT(conntrack_marks(), ElementsAreArray({0U, 1711U}));

    const auto again = delete_conntrack_entries_with_marks(kMarks);
    ASSERT_TRUE(again.has_value()) << again.error().message();
    EXPECT_EQ(*again, 0U);
}

} // namespace
} // namespace pw::interception

int main(int argc, char** argv) {
    if (!pw::testing::PrivateNetworkNamespace::record_original()) {
        return 1;
    }
    ::testing::InitGoogleTest(&argc, argv);
    pw::testing::use_skip_code_printer();
    return pw::testing::exit_code_with_skips(RUN_ALL_TESTS());
}
