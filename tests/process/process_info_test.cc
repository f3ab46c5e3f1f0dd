#include "process/process_info.h"

#include <gtest/gtest.h>

namespace pw::process {
namespace {

using std::string_literals::operator""s;
using std::string_view_literals::operator""sv;

TEST(ParseStat, CommWithSpacesAndParenthesesIsTakenUpToTheLastParenthesis) {
    const auto stat = parse_stat(
        "4242 (a) b (c) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0\n");
    ASSERT_TRUE(stat.has_value()) << stat.error().what;
    EXPECT_EQ(stat->pid, 4242);
    EXPECT_EQ(stat->comm, "a) b (c");
    EXPECT_EQ(stat->state, 'S');
    EXPECT_EQ(stat->parent_pid, 17);
    EXPECT_EQ(stat->flags, 4194560U);
    EXPECT_EQ(stat->start_time, 987654U);
}

TEST(ParseStat, KernelThreadFlagIsVisible) {
    const auto stat = parse_stat(
        "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0 18446744073709551615");
    ASSERT_TRUE(stat.has_value());
    EXPECT_NE(stat->flags & kKernelThreadFlag, 0U);
}

TEST(ParseStat, RejectsTruncatedAndMalformedInput) {
    EXPECT_FALSE(parse_stat("").has_value());
    EXPECT_FALSE(parse_stat("12 (x").has_value());
    EXPECT_FALSE(parse_stat("12 (x) S 1 2 3").has_value());
    EXPECT_FALSE(parse_stat("x (y) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5").has_value());
    EXPECT_FALSE(parse_stat("12 (y) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 -5").has_value());
}

TEST(ParseStatusUid, TakesTheRealUid) {
    EXPECT_EQ(parse_status_uid("Name:\tx\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t5\n"), 1000U);
    EXPECT_EQ(parse_status_uid("Name:\tx\n"), std::nullopt);
    EXPECT_EQ(parse_status_uid("Uid:\tabc\n"), std::nullopt);
}

TEST(SplitNul, SplitsCommandLines) {
    EXPECT_EQ(split_nul("a\0b c\0"s), (std::vector<std::string>{"a", "b c"}));
    EXPECT_EQ(split_nul("single"), (std::vector<std::string>{"single"}));
    EXPECT_TRUE(split_nul("").empty());
}

TEST(EnvironmentValue, FindsExactNames) {
    const std::string environ = "FLATPAK_IDX=no\0FLATPAK_ID=org.example.App\0HOME=/\0"s;
    EXPECT_EQ(environment_value(environ, "FLATPAK_ID"), "org.example.App");
    EXPECT_EQ(environment_value(environ, "HOME"), "/");
    EXPECT_EQ(environment_value(environ, "SNAP_NAME"), std::nullopt);
}

TEST(InterpreterFamily, RecognisesVersionedInterpreters) {
    EXPECT_EQ(interpreter_family("/usr/bin/python3.11"), InterpreterFamily::Python);
    EXPECT_EQ(interpreter_family("/usr/bin/python3"), InterpreterFamily::Python);
    EXPECT_EQ(interpreter_family("/usr/bin/dash"), InterpreterFamily::Shell);
    EXPECT_EQ(interpreter_family("/bin/bash"), InterpreterFamily::Shell);
    EXPECT_EQ(interpreter_family("/usr/bin/perl5.36.0"), InterpreterFamily::Perl);
    EXPECT_EQ(interpreter_family("/usr/bin/ruby3.1"), InterpreterFamily::Ruby);
    EXPECT_EQ(interpreter_family("/usr/local/bin/node"), InterpreterFamily::Node);
    EXPECT_EQ(interpreter_family("/usr/bin/curl"), std::nullopt);
    EXPECT_EQ(interpreter_family("/usr/bin/ssh"), std::nullopt);
    EXPECT_EQ(interpreter_family("/usr/bin/pythonista"), std::nullopt);
}

TEST(ScriptArgument, SkipsOptionsAndTheirValues) {
    using F = InterpreterFamily;
    EXPECT_EQ(script_argument(F::Python, {"python3", "-u", "-W", "error", "app.py", "x"}),
              "app.py");
    EXPECT_EQ(script_argument(F::Python, {"python3", "-Werror", "app.py"}), "app.py");
    EXPECT_EQ(script_argument(F::Shell, {"bash", "-e", "+x", "-o", "pipefail", "s.sh"}), "s.sh");
    EXPECT_EQ(script_argument(F::Node, {"node", "--require", "m", "--title=x", "srv.js"}),
              "srv.js");
    EXPECT_EQ(script_argument(F::Perl, {"perl", "--", "-weird.pl"}), "-weird.pl");
}

TEST(ScriptArgument, InlineCodeAndStdinHaveNoScript) {
    using F = InterpreterFamily;
    EXPECT_EQ(script_argument(F::Python, {"python3", "-c", "print(1)"}), std::nullopt);
    EXPECT_EQ(script_argument(F::Python, {"python3", "-Bm", "http.server"}), std::nullopt);
    EXPECT_EQ(script_argument(F::Shell, {"sh", "-ec", "curl x"}), std::nullopt);
    EXPECT_EQ(script_argument(F::Shell, {"bash"}), std::nullopt);
    EXPECT_EQ(script_argument(F::Perl, {"perl", "-e", "1"}), std::nullopt);
    EXPECT_EQ(script_argument(F::Node, {"node", "--eval", "1"}), std::nullopt);
    EXPECT_EQ(script_argument(F::Ruby, {"ruby", "-"}), std::nullopt);
}

TEST(FlatpakInfoName, ReadsTheApplicationSection) {
    EXPECT_EQ(flatpak_info_name("[Instance]\nname=wrong\n[Application]\nname=org.a.B\n"),
              "org.a.B");
    EXPECT_EQ(flatpak_info_name("[Runtime]\nname=org.gnome.Platform\n"), std::nullopt);
}

TEST(SpecialIdentities, AreDistinctAndStable) {
    EXPECT_EQ(kernel_identity(), kernel_identity());
    EXPECT_EQ(kernel_identity()->kind, IdentityKind::Kernel);
    EXPECT_EQ(unidentified_outbound_identity()->kind, IdentityKind::UnidentifiedOutbound);
    EXPECT_EQ(unsolicited_inbound_identity()->kind, IdentityKind::UnsolicitedInbound);
    EXPECT_NE(kernel_identity()->identity_path, unsolicited_inbound_identity()->identity_path);
}

TEST(ProcessTags, NamesEachTag) {
    const ProcessTags tags{.flatpak_id = "",
                           .snap_name = std::nullopt,
                           .appimage = "/a.AppImage",
                           .interpreter = "/usr/bin/python3"};
    EXPECT_EQ(tags.names(), (std::vector<std::string_view>{"flatpak", "appimage", "script"}));
}

// --- environ ---

TEST(ParseEnviron, SplitsNamesAndValues) {
    const Environment environment =
        parse_environ("HOME=/root\0EMPTY=\0EQ=a=b\0HOME=/second\0NOEQUALS\0=anon\0LAST=x"sv);
    EXPECT_EQ(environment,
              (Environment{{"HOME", "/root"}, {"EMPTY", ""}, {"EQ", "a=b"}, {"LAST", "x"}}));
    ASSERT_NE(find_environment(environment, "EQ"), nullptr);
    EXPECT_EQ(*find_environment(environment, "EQ"), "a=b");
    EXPECT_EQ(find_environment(environment, "HOM"), nullptr);
    EXPECT_EQ(find_environment(environment, "NOEQUALS"), nullptr);
    EXPECT_TRUE(parse_environ("").empty());
    EXPECT_TRUE(parse_environ(std::string_view("\0\0", 2)).empty());
}

// --- cgroup ---

TEST(ParseCgroup, SystemServiceUnit) {
    const CgroupFacts facts = parse_cgroup("0::/system.slice/apt-daily.service\n");
    EXPECT_EQ(facts.systemd_unit, "apt-daily.service");
    EXPECT_EQ(facts.container_id, std::nullopt);
    EXPECT_EQ(facts.container_name, std::nullopt);
}

TEST(ParseCgroup, UserUnitAndSubgroupsOfAUnit) {
    EXPECT_EQ(parse_cgroup("0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
                           "foo.service\n")
                  .systemd_unit,
              "foo.service");
    // A service that delegates sub-cgroups: the unit is the last *.service/*.scope element.
    EXPECT_EQ(parse_cgroup("0::/system.slice/docker.service/payload\n").systemd_unit,
              "docker.service");
    EXPECT_EQ(parse_cgroup("0::/user.slice/user-1000.slice/session-2.scope").systemd_unit,
              "session-2.scope");
    EXPECT_EQ(parse_cgroup("0::/init.scope\n").systemd_unit, "init.scope");
    EXPECT_EQ(parse_cgroup("0::/\n"), CgroupFacts{});
    EXPECT_EQ(parse_cgroup("0::/system.slice/.service\n").systemd_unit, std::nullopt);
}

TEST(ParseCgroup, DockerWithTheSystemdDriver) {
    const std::string id(64, 'a');
    const CgroupFacts facts = parse_cgroup("0::/system.slice/docker-" + id + ".scope\n");
    EXPECT_EQ(facts.container_id, id);
    EXPECT_EQ(facts.container_name, "aaaaaaaaaaaa");
    EXPECT_EQ(facts.systemd_unit, std::nullopt); // its scope is the container, not a unit
}

TEST(ParseCgroup, DockerWithTheCgroupfsDriverInCgroupV1) {
    const std::string id = "3f4e2b1a" + std::string(56, '0');
    const CgroupFacts facts = parse_cgroup("12:cpuset:/docker/" + id + "\n11:memory:/docker/" + id +
                                           "\n1:name=systemd:/docker/" + id + "\n");
    EXPECT_EQ(facts.container_id, id);
    EXPECT_EQ(facts.container_name, "3f4e2b1a0000");
}

TEST(ParseCgroup, PodmanRootfulAndRootless) {
    const std::string id(64, 'b');
    EXPECT_EQ(parse_cgroup("0::/machine.slice/libpod-" + id + ".scope/container\n").container_id,
              id);
    const CgroupFacts rootless =
        parse_cgroup("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id +
                     ".scope/container\n");
    EXPECT_EQ(rootless.container_name, "bbbbbbbbbbbb");
    EXPECT_EQ(rootless.systemd_unit, std::nullopt); // user@1000.service is the host's
    // Podman's monitor runs on the host, outside the container: its scope is a unit.
    const CgroupFacts conmon = parse_cgroup("0::/machine.slice/libpod-conmon-" + id + ".scope\n");
    EXPECT_EQ(conmon.container_id, std::nullopt);
    EXPECT_EQ(conmon.systemd_unit, "libpod-conmon-" + id + ".scope");
}

TEST(ParseCgroup, LxcByNameWithItsOwnUnits) {
    const CgroupFacts facts = parse_cgroup("0::/lxc.payload.web-1/system.slice/nginx.service\n");
    EXPECT_EQ(facts.container_id, "web-1");
    EXPECT_EQ(facts.container_name, "web-1");
    EXPECT_EQ(facts.systemd_unit, "nginx.service"); // a unit of the container's own systemd
    EXPECT_EQ(parse_cgroup("1:name=systemd:/lxc/db/init.scope\n").container_name, "db");
    // Names go into JSON profiles: bytes that are not UTF-8 are replaced.
    EXPECT_EQ(parse_cgroup("0::/lxc.payload.caf\xe9/init.scope\n").container_name, "caf?");
    // The monitor runs on the host.
    EXPECT_EQ(parse_cgroup("0::/lxc.monitor.web-1\n").container_name, std::nullopt);
}

TEST(ParseCgroup, NestedContainersGiveTheInnermost) {
    const std::string id(64, 'c');
    const CgroupFacts facts =
        parse_cgroup("0::/lxc.payload.host/system.slice/docker-" + id + ".scope\n");
    EXPECT_EQ(facts.container_id, id);
    EXPECT_EQ(facts.systemd_unit, std::nullopt);
}

TEST(ParseCgroup, NotAContainer) {
    // Almost IDs: wrong length, upper case, not hex.
    EXPECT_EQ(parse_cgroup("0::/docker/" + std::string(63, 'a') + "\n").container_id, std::nullopt);
    EXPECT_EQ(parse_cgroup("0::/docker/" + std::string(64, 'A') + "\n").container_id, std::nullopt);
    EXPECT_EQ(
        parse_cgroup("0::/system.slice/docker-" + std::string(64, 'g') + ".scope\n").container_id,
        std::nullopt);
    EXPECT_EQ(parse_cgroup("0::/lxc.payload.\n").container_id, std::nullopt);
}

TEST(ParseCgroup, PrefersTheUnifiedHierarchyAndSurvivesGarbage) {
    EXPECT_EQ(
        parse_cgroup("4:cpu:/a.service\n1:name=systemd:/b.service\n0::/c.service\n").systemd_unit,
        "c.service");
    EXPECT_EQ(parse_cgroup("4:cpu:/a.service\n1:name=systemd:/b.service\n").systemd_unit,
              "b.service");
    EXPECT_EQ(parse_cgroup("4:cpu:/a.service").systemd_unit, "a.service");
    EXPECT_EQ(parse_cgroup(""), CgroupFacts{});
    EXPECT_EQ(parse_cgroup("garbage\n::\n:"), CgroupFacts{});
    EXPECT_EQ(parse_cgroup("0::/a:b/x.service").systemd_unit, "x.service");
}

} // namespace
} // namespace pw::process
