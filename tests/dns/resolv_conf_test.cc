#include "dns/resolv_conf.h"

#include <gtest/gtest.h>

namespace pw::dns {
namespace {

TEST(ResolvConf, NameserversBecomePlainDnsUpstreamsInOrder) {
    const auto upstreams = upstreams_from_resolv_conf(
        "# written by NetworkManager\n"
        "search lan\n"
        "nameserver 192.0.2.53\n"
        "nameserver\t2001:db8::53   \n"
        "options edns0 trust-ad\n");
    ASSERT_EQ(upstreams.size(), 2U);
    EXPECT_EQ(upstreams[0].url, "dns://192.0.2.53");
    EXPECT_EQ(upstreams[0].protocol, UpstreamProtocol::Udp);
    EXPECT_EQ(upstreams[0].port, 53);
    EXPECT_EQ(upstreams[1].url, "dns://[2001:db8::53]");
    EXPECT_EQ(upstreams[1].address.to_string(), "2001:db8::53");
}

TEST(ResolvConf, LocalStubsAndWhatWeCannotUseAreSkipped) {
    // 127.0.0.53 (systemd-resolved's stub) would send its upstream queries back to us: a loop.
    const auto upstreams = upstreams_from_resolv_conf(
        "nameserver 127.0.0.53\n"
        "nameserver ::1\n"
        "nameserver 0.0.0.0\n"
        "nameserver fe80::1%eth0\n"
        "nameserver not-an-address\n"
        "nameserverx 192.0.2.1\n"
        "; nameserver 192.0.2.2\n"
        "nameserver 192.0.2.3 # the router\n");
    ASSERT_EQ(upstreams.size(), 1U);
    EXPECT_EQ(upstreams[0].url, "dns://192.0.2.3");
}

TEST(ResolvConf, NothingUsableIsAnEmptyList) {
    EXPECT_TRUE(upstreams_from_resolv_conf("").empty());
    EXPECT_TRUE(upstreams_from_resolv_conf("nameserver 127.0.0.53\n").empty());
}

} // namespace
} // namespace pw::dns
