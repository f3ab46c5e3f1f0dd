#include "config/listen_address.h"

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

namespace pw::config {
namespace {

using firewall::IpEndpoint;

IpEndpoint endpoint(std::string_view address, std::uint16_t port) {
    auto parsed = IpAddress::parse(address);
    EXPECT_TRUE(parsed.has_value()) << address;
    return IpEndpoint{.address = parsed.value_or(IpAddress{}), .port = port};
}

std::vector<IpEndpoint> listen_ok(std::string_view text) {
    auto endpoints = parse_listen_address(text);
    EXPECT_TRUE(endpoints.has_value()) << text << ": " << endpoints.error().what;
    return endpoints.value_or(std::vector<IpEndpoint>{});
}

std::string listen_error(std::string_view text) {
    auto endpoints = parse_listen_address(text);
    EXPECT_FALSE(endpoints.has_value()) << "parsed: " << text;
    return endpoints.has_value() ? std::string{} : endpoints.error().what;
}

TEST(ListenAddress, LocalhostMeansBothLoopbackEndpoints) {
    EXPECT_EQ(listen_ok("localhost:53"),
              (std::vector<IpEndpoint>{endpoint("127.0.0.17", 53), endpoint("::1", 53)}));
    EXPECT_EQ(listen_ok("LocalHost:5353"),
              (std::vector<IpEndpoint>{endpoint("127.0.0.17", 5353), endpoint("::1", 5353)}));
    EXPECT_EQ(localhost_listen_endpoints(53), listen_ok("localhost:53"));
}

TEST(ListenAddress, OneAddressOfEitherFamily) {
    EXPECT_EQ(listen_ok("192.168.1.10:53"),
              (std::vector<IpEndpoint>{endpoint("192.168.1.10", 53)}));
    EXPECT_EQ(listen_ok("[::1]:53"), (std::vector<IpEndpoint>{endpoint("::1", 53)}));
    EXPECT_EQ(listen_ok("[2001:db8::1]:65535"),
              (std::vector<IpEndpoint>{endpoint("2001:db8::1", 65535)}));
}

TEST(ListenAddress, PortErrors) {
    EXPECT_EQ(listen_error("127.0.0.17:0"),
              "dns/listenAddress '127.0.0.17:0': port 0 is out of range (1-65535)");
    EXPECT_EQ(listen_error("127.0.0.17:65536"),
              "dns/listenAddress '127.0.0.17:65536': port 65536 is out of range (1-65535)");
    EXPECT_EQ(listen_error("127.0.0.17:dns"),
              "dns/listenAddress '127.0.0.17:dns': invalid port 'dns' (expected a number "
              "1-65535)");
    EXPECT_NE(listen_error("127.0.0.17:999999").find("invalid port '999999'"), std::string::npos);
    EXPECT_NE(listen_error("127.0.0.17:+53").find("invalid port '+53'"), std::string::npos);
    EXPECT_NE(listen_error("127.0.0.17:").find("has no port"), std::string::npos);
    EXPECT_NE(listen_error("[::1]").find("has no port after ']'"), std::string::npos);
    EXPECT_NE(listen_error("[::1]53").find("has no port after ']'"), std::string::npos);
}

TEST(ListenAddress, AddressErrors) {
    EXPECT_EQ(listen_error("::1:53"),
              "dns/listenAddress '::1:53': an IPv6 address goes in brackets, as in [::1]:53");
    EXPECT_EQ(listen_error("[127.0.0.1]:53"),
              "dns/listenAddress '[127.0.0.1]:53': brackets are only for IPv6 addresses (write "
              "127.0.0.1:53)");
    EXPECT_EQ(listen_error("[::1:53"),
              "dns/listenAddress '[::1:53': missing ']' after the IPv6 address");
    EXPECT_EQ(listen_error("dns.example:53"),
              "dns/listenAddress 'dns.example:53': invalid IP address 'dns.example' (expected "
              "localhost, an IPv4 address or an IPv6 address in brackets)");
    EXPECT_NE(listen_error("[localhost]:53").find("brackets are only for IPv6"), std::string::npos);
    EXPECT_EQ(listen_error(""),
              "dns/listenAddress is empty (expected e.g. localhost:53, or off for no nameserver)");
}

TEST(ListenAddress, EveryAddressIsRefused) {
    EXPECT_EQ(listen_error("0.0.0.0:53"),
              "dns/listenAddress '0.0.0.0:53': 0.0.0.0 would listen on every address; give one "
              "address, such as 127.0.0.17 or a LAN address, or localhost");
    EXPECT_NE(listen_error("[::]:53").find(":: would listen on every address"), std::string::npos);
}

TEST(ListenAddress, OffMeansNoEndpoints) {
    EXPECT_TRUE(listen_ok("off").empty());
    EXPECT_NE(listen_error("OFF").find("has no port"), std::string::npos); // case-sensitive
}

// --- core/listenAddress: the same forms, its own loopback address, port and messages ---------

std::vector<IpEndpoint> api_ok(std::string_view text) {
    auto endpoints = parse_api_listen_address(text);
    EXPECT_TRUE(endpoints.has_value()) << text << ": " << endpoints.error().what;
    return endpoints.value_or(std::vector<IpEndpoint>{});
}

std::string api_error(std::string_view text) {
    auto endpoints = parse_api_listen_address(text);
    EXPECT_FALSE(endpoints.has_value()) << "parsed: " << text;
    return endpoints.has_value() ? std::string{} : endpoints.error().what;
}

TEST(ApiListenAddress, LocalhostMeans127001AndIpv6Loopback) {
    EXPECT_EQ(api_ok("localhost:817"),
              (std::vector<IpEndpoint>{endpoint("127.0.0.1", 817), endpoint("::1", 817)}));
    EXPECT_EQ(localhost_api_endpoints(kApiPort), api_ok("localhost:817"));
}

TEST(ApiListenAddress, OneAddressOrOff) {
    EXPECT_EQ(api_ok("127.0.0.1:8817"), (std::vector<IpEndpoint>{endpoint("127.0.0.1", 8817)}));
    EXPECT_EQ(api_ok("[::1]:817"), (std::vector<IpEndpoint>{endpoint("::1", 817)}));
    EXPECT_TRUE(api_ok("off").empty());
}

TEST(ApiListenAddress, ErrorsNameTheKeyAndItsOwnExamples) {
    EXPECT_EQ(api_error(""),
              "core/listenAddress is empty (expected e.g. localhost:817, or off for no API)");
    EXPECT_EQ(api_error("localhost"),
              "core/listenAddress 'localhost' has no port (expected e.g. localhost:817, "
              "127.0.0.1:817 or [::1]:817)");
    EXPECT_EQ(api_error("::1:817"),
              "core/listenAddress '::1:817': an IPv6 address goes in brackets, as in [::1]:817");
    EXPECT_EQ(api_error("[::1]"),
              "core/listenAddress '[::1]' has no port after ']' (expected e.g. [::1]:817)");
    EXPECT_EQ(api_error("127.0.0.1:0"),
              "core/listenAddress '127.0.0.1:0': port 0 is out of range (1-65535)");
    EXPECT_EQ(api_error("api.example:817"),
              "core/listenAddress 'api.example:817': invalid IP address 'api.example' (expected "
              "localhost, an IPv4 address or an IPv6 address in brackets)");
}

TEST(ApiListenAddress, EveryAddressIsRefused) {
    EXPECT_EQ(api_error("0.0.0.0:817"),
              "core/listenAddress '0.0.0.0:817': 0.0.0.0 would listen on every address; give one "
              "address, such as 127.0.0.1 or a LAN address, or localhost");
    EXPECT_NE(api_error("[::]:817").find(":: would listen on every address"), std::string::npos);
}

// --- Hosts without IPv6 (issue 10) ----------------------------------------------------------

TEST(FitListenEndpoints, WithIpv6EverythingIsBound) {
    const auto fitted =
        fit_listen_endpoints_to_host(listen_ok("localhost:53"), Ipv6Loopback::Available);
    EXPECT_EQ(fitted.bind, listen_ok("localhost:53"));
    EXPECT_TRUE(fitted.left_out.empty());
}

TEST(FitListenEndpoints, LocalhostFallsBackToIpv4WithoutIpv6) {
    const auto fitted =
        fit_listen_endpoints_to_host(listen_ok("localhost:5353"), Ipv6Loopback::Missing);
    EXPECT_EQ(fitted.bind, (std::vector<IpEndpoint>{endpoint("127.0.0.17", 5353)}));
    EXPECT_EQ(fitted.left_out, (std::vector<IpEndpoint>{endpoint("::1", 5353)}));
    const auto api =
        fit_listen_endpoints_to_host(localhost_api_endpoints(817), Ipv6Loopback::Missing);
    EXPECT_EQ(api.bind, (std::vector<IpEndpoint>{endpoint("127.0.0.1", 817)}));
    EXPECT_EQ(api.left_out, (std::vector<IpEndpoint>{endpoint("::1", 817)}));
}

TEST(FitListenEndpoints, AnAddressWrittenOutIsBoundAsGivenSoThatItsFailureIsReported) {
    for (const std::string_view text : {"[::1]:53", "[2001:db8::1]:53", "127.0.0.17:53"}) {
        const auto fitted = fit_listen_endpoints_to_host(listen_ok(text), Ipv6Loopback::Missing);
        EXPECT_EQ(fitted.bind, listen_ok(text)) << text;
        EXPECT_TRUE(fitted.left_out.empty()) << text;
    }
    EXPECT_TRUE(fit_listen_endpoints_to_host({}, Ipv6Loopback::Missing).bind.empty());
}

TEST(FitListenEndpoints, TheProbeAnswersOnThisHost) {
    // Whatever this host has: the probe must neither fail nor leak its socket.
    const Ipv6Loopback first = probe_ipv6_loopback();
    EXPECT_EQ(probe_ipv6_loopback(), first);
}

TEST(ListenFailureHint, NamesTheRealCause) {
    const auto hint = [](std::errc error) {
        return listen_failure_hint(std::make_error_code(error), "dns/listenAddress");
    };
    EXPECT_EQ(hint(std::errc::address_in_use),
              "another server is listening there: stop it, or change dns/listenAddress");
    EXPECT_EQ(hint(std::errc::address_not_available),
              "this host does not have that address (::1 is missing when IPv6 is disabled, "
              "disable_ipv6=1): change dns/listenAddress, for instance to localhost");
    EXPECT_EQ(hint(std::errc::address_family_not_supported),
              "IPv6 is disabled on this host (ipv6.disable=1): change dns/listenAddress to "
              "localhost or an IPv4 address");
}

TEST(ListenFailureHint, NamesAMissingPrivilegeAndNothingForOtherReasons) {
    const auto hint = [](std::errc error) {
        return listen_failure_hint(std::make_error_code(error), "dns/listenAddress");
    };
    EXPECT_EQ(hint(std::errc::permission_denied),
              "binding a port below 1024 needs root or CAP_NET_BIND_SERVICE");
    EXPECT_EQ(hint(std::errc::operation_not_permitted), hint(std::errc::permission_denied));
    EXPECT_EQ(hint(std::errc::no_buffer_space), "");
    EXPECT_EQ(listen_failure_hint({}, "dns/listenAddress"), "");
}

TEST(ListenFailureHint, UnderstandsTheKernelsErrno) {
    // The reason as the kernel gives it (errno in the system category).
    EXPECT_EQ(listen_failure_hint(std::error_code(EADDRINUSE, std::system_category()),
                                  "core/listenAddress"),
              "another server is listening there: stop it, or change core/listenAddress");
}

} // namespace
} // namespace pw::config
