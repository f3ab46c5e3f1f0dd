#include "api/browser_guard.h"

#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace pw::api {
namespace {

ServerAddress server(std::string_view address, std::uint16_t port) {
    return ServerAddress{.address = IpAddress::parse(address).value(), .port = port};
}

TEST(HostRefusal, AcceptsLocalhostAndLoopbackLiteralsWithOurPort) {
    const ServerAddress v4 = server("127.0.0.1", 817);
    for (const std::string_view host : {"localhost:817", "LocalHost:817", "127.0.0.1:817",
                                        "127.0.0.17:817", "[::1]:817", "[::ffff:127.0.0.1]:817"}) {
        EXPECT_EQ(host_refusal(host, v4), std::nullopt) << host;
    }
}

TEST(HostRefusal, RefusesOtherNamesPortsAndForms) {
    const ServerAddress v4 = server("127.0.0.1", 817);
    for (const std::string_view host : {"evil.example:817",
                                        "localhost.evil.example:817",
                                        "localhost",
                                        "127.0.0.1",
                                        "localhost:818",
                                        "localhost:80",
                                        "localhost:",
                                        "localhost:817x",
                                        "localhost:+817",
                                        "localhost:-817",
                                        "::1:817",
                                        "[::1]",
                                        "[::1]817",
                                        "[127.0.0.1]:817",
                                        "[::1:817",
                                        "192.168.1.10:817",
                                        "0.0.0.0:817",
                                        "",
                                        ":817",
                                        "localhost.:817",
                                        "localhost:817:817"}) {
        EXPECT_NE(host_refusal(host, v4), std::nullopt) << host;
    }
    const auto refusal = host_refusal("evil.example:817", v4);
    ASSERT_TRUE(refusal.has_value());
    EXPECT_EQ(*refusal,
              "Host 'evil.example:817' does not name this API: requests must be addressed to "
              "localhost:817, 127.0.0.1:817 or [::1]:817 (other names are refused, so that a web "
              "page cannot reach the API by pointing its own name at this machine)");
}

TEST(HostRefusal, AcceptsTheServersOwnAddressWhenItIsNotLoopback) {
    const ServerAddress lan = server("192.168.1.10", 8817);
    EXPECT_EQ(host_refusal("192.168.1.10:8817", lan), std::nullopt);
    EXPECT_EQ(host_refusal("localhost:8817", lan), std::nullopt);
    EXPECT_NE(host_refusal("192.168.1.11:8817", lan), std::nullopt);
    const auto refusal = host_refusal("router.lan:8817", lan);
    ASSERT_TRUE(refusal.has_value());
    EXPECT_NE(refusal->find("192.168.1.10:8817, localhost:8817"), std::string::npos) << *refusal;
}

TEST(OriginRefusal, AcceptsOnlyOurOwnOrigins) {
    const ServerAddress v6 = server("::1", 817);
    for (const std::string_view origin :
         {"http://localhost:817", "http://127.0.0.1:817", "http://[::1]:817"}) {
        EXPECT_EQ(origin_refusal(origin, v6), std::nullopt) << origin;
    }
    for (const std::string_view origin :
         {"null", "", "https://localhost:817", "http://localhost:8080", "http://localhost",
          "http://evil.example", "http://evil.example:817", "http://localhost:817/",
          "HTTP://localhost:817", "file://", "chrome-extension://abc"}) {
        EXPECT_NE(origin_refusal(origin, v6), std::nullopt) << origin;
    }
    const auto refusal = origin_refusal("https://evil.example", v6);
    ASSERT_TRUE(refusal.has_value());
    EXPECT_EQ(*refusal,
              "cross-origin request from 'https://evil.example' refused: the API answers browsers "
              "only on its own origin, http://localhost:817, http://127.0.0.1:817 or "
              "http://[::1]:817");
}

TEST(OriginRefusal, QuotesLongValuesCut) {
    const std::string long_origin = "http://" + std::string(500, 'a');
    const auto refusal = origin_refusal(long_origin, server("127.0.0.1", 817));
    ASSERT_TRUE(refusal.has_value());
    EXPECT_LT(refusal->size(), 300U);
    EXPECT_NE(refusal->find("...'"), std::string::npos);
}

} // namespace
} // namespace pw::api
