#include "dns/upstream.h"

#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace pw::dns {
namespace {

IpAddress address(std::string_view text) {
    return IpAddress::parse(text).value();
}

// The error for `url`, or a note that there was none.
std::string error_for(std::string_view url) {
    const auto upstream = parse_upstream_url(url);
    return upstream ? "(accepted)" : upstream.error().what;
}

TEST(ParseUpstreamUrl, DnsTakesAnIpv4AddressAndDefaultsToPort53) {
    const auto upstream = parse_upstream_url("dns://10.0.0.1");
    ASSERT_TRUE(upstream.has_value()) << upstream.error().what;
    EXPECT_EQ(upstream->protocol, UpstreamProtocol::Udp);
    EXPECT_EQ(upstream->address, address("10.0.0.1"));
    EXPECT_EQ(upstream->port, 53);
    EXPECT_EQ(upstream->tls_name, "");
    EXPECT_FALSE(upstream->ca_file.has_value());
    EXPECT_EQ(upstream->url, "dns://10.0.0.1");
}

TEST(ParseUpstreamUrl, DnsTakesABracketedIpv6AddressWithAPort) {
    const auto upstream = parse_upstream_url("dns://[2001:db8::1]:5353");
    ASSERT_TRUE(upstream.has_value()) << upstream.error().what;
    EXPECT_EQ(upstream->protocol, UpstreamProtocol::Udp);
    EXPECT_EQ(upstream->address, address("2001:db8::1"));
    EXPECT_EQ(upstream->port, 5353);
    EXPECT_EQ(upstream->url, "dns://[2001:db8::1]:5353");
}

TEST(ParseUpstreamUrl, BracketedIpv6WithoutPortGetsTheDefault) {
    const auto upstream = parse_upstream_url("tcp://[::1]");
    ASSERT_TRUE(upstream.has_value()) << upstream.error().what;
    EXPECT_EQ(upstream->protocol, UpstreamProtocol::Tcp);
    EXPECT_EQ(upstream->address, address("::1"));
    EXPECT_EQ(upstream->port, 53);
}

TEST(ParseUpstreamUrl, TcpTakesAnAddressAndPort) {
    const auto upstream = parse_upstream_url("tcp://192.0.2.7:1053");
    ASSERT_TRUE(upstream.has_value()) << upstream.error().what;
    EXPECT_EQ(upstream->protocol, UpstreamProtocol::Tcp);
    EXPECT_EQ(upstream->address, address("192.0.2.7"));
    EXPECT_EQ(upstream->port, 1053);
}

TEST(ParseUpstreamUrl, PortLimitsAreInclusive) {
    EXPECT_EQ(parse_upstream_url("dns://10.0.0.1:1").value().port, 1);
    EXPECT_EQ(parse_upstream_url("dns://10.0.0.1:65535").value().port, 65535);
}

TEST(ParseUpstreamUrl, SchemeIsCaseInsensitive) {
    EXPECT_EQ(parse_upstream_url("DNS://10.0.0.1").value().protocol, UpstreamProtocol::Udp);
    EXPECT_EQ(parse_upstream_url("Tcp://10.0.0.1").value().protocol, UpstreamProtocol::Tcp);
    EXPECT_EQ(parse_upstream_url("DoT://a.example?ip=10.0.0.1").value().protocol,
              UpstreamProtocol::Tls);
}

TEST(ParseUpstreamUrl, DotTakesANameAndAnAddressAndDefaultsToPort853) {
    const auto upstream = parse_upstream_url("dot://dns.example?ip=10.0.0.1");
    ASSERT_TRUE(upstream.has_value()) << upstream.error().what;
    EXPECT_EQ(upstream->protocol, UpstreamProtocol::Tls);
    EXPECT_EQ(upstream->address, address("10.0.0.1"));
    EXPECT_EQ(upstream->port, 853);
    EXPECT_EQ(upstream->tls_name, "dns.example");
    EXPECT_FALSE(upstream->ca_file.has_value());
    EXPECT_EQ(upstream->url, "dot://dns.example?ip=10.0.0.1");
}

TEST(ParseUpstreamUrl, DotTakesEveryParameterInAnyOrder) {
    const auto upstream =
        parse_upstream_url("dot://dns.example?verify=/etc/pw/ca.pem&port=8853&ip=2001:db8::53");
    ASSERT_TRUE(upstream.has_value()) << upstream.error().what;
    EXPECT_EQ(upstream->address, address("2001:db8::53"));
    EXPECT_EQ(upstream->port, 8853);
    EXPECT_EQ(upstream->tls_name, "dns.example");
    EXPECT_EQ(upstream->ca_file, std::filesystem::path("/etc/pw/ca.pem"));
}

TEST(ParseUpstreamUrl, DotTakesThePortAfterTheNameAndABracketedIp) {
    const auto upstream = parse_upstream_url("dot://dns.example:8853?ip=[2001:db8::53]");
    ASSERT_TRUE(upstream.has_value()) << upstream.error().what;
    EXPECT_EQ(upstream->address, address("2001:db8::53"));
    EXPECT_EQ(upstream->port, 8853);
    EXPECT_EQ(upstream->tls_name, "dns.example");
}

TEST(ParseUpstreamUrl, DotNameMayBeAnAddressThatTheCertificateNames) {
    const auto v4 = parse_upstream_url("dot://1.1.1.1?ip=1.1.1.1");
    ASSERT_TRUE(v4.has_value()) << v4.error().what;
    EXPECT_EQ(v4->tls_name, "1.1.1.1");
    const auto v6 = parse_upstream_url("dot://[2606:4700::1111]:853?ip=2606:4700::1111");
    ASSERT_TRUE(v6.has_value()) << v6.error().what;
    EXPECT_EQ(v6->tls_name, "2606:4700::1111");
    EXPECT_EQ(v6->address, address("2606:4700::1111"));
}

TEST(ParseUpstreamUrl, RejectsAnythingThatIsNotAUrlOfAKnownScheme) {
    EXPECT_EQ(error_for("10.0.0.1"),
              "dns/nameservers: not an upstream URL in '10.0.0.1' (expected dns://IP, tcp://IP "
              "or dot://NAME?ip=IP)");
    EXPECT_EQ(error_for(""),
              "dns/nameservers: not an upstream URL in '' (expected dns://IP, tcp://IP or "
              "dot://NAME?ip=IP)");
    EXPECT_EQ(error_for("https://dns.example/dns-query"),
              "dns/nameservers: unknown scheme 'https' in 'https://dns.example/dns-query' "
              "(expected dns://IP, tcp://IP or dot://NAME?ip=IP)");
}

TEST(ParseUpstreamUrl, RejectsMissingAndMalformedAddresses) {
    EXPECT_EQ(error_for("dns://"), "dns/nameservers: missing address in 'dns://'");
    EXPECT_EQ(error_for("dns://dns.example"),
              "dns/nameservers: 'dns.example' is not an IP address in 'dns://dns.example' "
              "(upstreams are given by address, so that no name needs resolving)");
    EXPECT_EQ(error_for("tcp://10.0.0.256"),
              "dns/nameservers: '10.0.0.256' is not an IP address in 'tcp://10.0.0.256' "
              "(upstreams are given by address, so that no name needs resolving)");
    EXPECT_EQ(error_for("dns://10.0.0.1/"),
              "dns/nameservers: '10.0.0.1/' is not an IP address in 'dns://10.0.0.1/' "
              "(upstreams are given by address, so that no name needs resolving)");
    EXPECT_EQ(error_for("dns://[]:53"),
              "dns/nameservers: '' is not an IP address in 'dns://[]:53' "
              "(upstreams are given by address, so that no name needs resolving)");
}

TEST(ParseUpstreamUrl, RejectsIpv6WithoutBracketsAndBrokenBrackets) {
    EXPECT_EQ(error_for("dns://2001:db8::1"),
              "dns/nameservers: IPv6 address '2001:db8::1' without brackets in "
              "'dns://2001:db8::1' (write it as [ADDRESS] or [ADDRESS]:PORT)");
    EXPECT_EQ(error_for("dns://[::1"), "dns/nameservers: unclosed '[' in 'dns://[::1'");
    EXPECT_EQ(error_for("dns://[::1]53"),
              "dns/nameservers: unexpected '53' after ']' in 'dns://[::1]53'");
}

TEST(ParseUpstreamUrl, RejectsPortsOutsideTheRange) {
    for (const std::string_view port :
         {"0", "65536", "99999999999", "-1", "+53", "5x", "", " 53"}) {
        const std::string url = "dns://10.0.0.1:" + std::string(port);
        EXPECT_EQ(error_for(url), "dns/nameservers: port '" + std::string(port) +
                                      "' is not a number from 1 to 65535 in '" + url + "'");
    }
    EXPECT_EQ(error_for("dot://dns.example?ip=10.0.0.1&port=70000"),
              "dns/nameservers: port '70000' is not a number from 1 to 65535 in "
              "'dot://dns.example?ip=10.0.0.1&port=70000'");
}

TEST(ParseUpstreamUrl, PlainSchemesTakeNoParameters) {
    EXPECT_EQ(error_for("dns://10.0.0.1?ip=10.0.0.2"),
              "dns/nameservers: unexpected parameters in 'dns://10.0.0.1?ip=10.0.0.2' (only "
              "dot:// takes parameters: dot://NAME?ip=IP)");
    EXPECT_EQ(error_for("tcp://10.0.0.1:53?"),
              "dns/nameservers: unexpected parameters in 'tcp://10.0.0.1:53?' (only dot:// takes "
              "parameters: dot://NAME?ip=IP)");
}

TEST(ParseUpstreamUrl, DotNeedsAnAddress) {
    const std::string hint =
        " (dot://NAME?ip=IP: NAME is checked against the certificate, IP is where to connect)";
    EXPECT_EQ(error_for("dot://dns.example"),
              "dns/nameservers: missing ip= in 'dot://dns.example'" + hint);
    EXPECT_EQ(error_for("dot://dns.example?port=853"),
              "dns/nameservers: missing ip= in 'dot://dns.example?port=853'" + hint);
    EXPECT_EQ(error_for("dot://dns.example?ip=dns.example"),
              "dns/nameservers: 'dns.example' is not an IP address in "
              "'dot://dns.example?ip=dns.example' (upstreams are given by address, so that no "
              "name needs resolving)");
}

TEST(ParseUpstreamUrl, DotRejectsUnknownEmptyAndRepeatedParameters) {
    EXPECT_EQ(error_for("dot://dns.example?ip=10.0.0.1&vrfy=/ca.pem"),
              "dns/nameservers: unknown parameter 'vrfy' in "
              "'dot://dns.example?ip=10.0.0.1&vrfy=/ca.pem' (expected ip, port, verify)");
    EXPECT_EQ(error_for("dot://dns.example?"),
              "dns/nameservers: unknown parameter '' in 'dot://dns.example?' (expected ip, port, "
              "verify)");
    EXPECT_EQ(error_for("dot://dns.example?ip=10.0.0.1&"),
              "dns/nameservers: unknown parameter '' in 'dot://dns.example?ip=10.0.0.1&' "
              "(expected ip, port, verify)");
    EXPECT_EQ(error_for("dot://dns.example?ip=10.0.0.1&verify="),
              "dns/nameservers: empty value for parameter 'verify' in "
              "'dot://dns.example?ip=10.0.0.1&verify='");
    EXPECT_EQ(error_for("dot://dns.example?ip"),
              "dns/nameservers: empty value for parameter 'ip' in 'dot://dns.example?ip'");
    EXPECT_EQ(error_for("dot://dns.example?ip=10.0.0.1&ip=10.0.0.2"),
              "dns/nameservers: parameter 'ip' given twice in "
              "'dot://dns.example?ip=10.0.0.1&ip=10.0.0.2'");
    EXPECT_EQ(error_for("dot://dns.example:853?ip=10.0.0.1&port=853"),
              "dns/nameservers: port given twice (after the name and as port=) in "
              "'dot://dns.example:853?ip=10.0.0.1&port=853'");
}

TEST(ParseUpstreamUrl, DotRejectsNamesThatNoCertificateCarries) {
    EXPECT_EQ(error_for("dot://?ip=10.0.0.1"),
              "dns/nameservers: missing address in 'dot://?ip=10.0.0.1'");
    const auto expect_rejected = [](const std::string& name) {
        const std::string url = "dot://" + name + "?ip=10.0.0.1";
        EXPECT_EQ(error_for(url),
                  "dns/nameservers: '" + name + "' is not a host name in '" + url + "'");
    };
    for (const std::string& name : std::initializer_list<std::string>{
             "dns..example", "dns.example.", ".example", "dns example", "dns/example",
             std::string(64, 'a') + ".example"}) {
        expect_rejected(name);
    }
    EXPECT_EQ(error_for("dot://[dns.example]?ip=10.0.0.1"),
              "dns/nameservers: 'dns.example' is not a host name in "
              "'dot://[dns.example]?ip=10.0.0.1'");
}

TEST(ParseUpstreamUrl, NeverCrashesOnOddInput) {
    for (const std::string_view url :
         {"://", "dns:/", "dns:///", "dot://a?=", "dot://a?&&", "dot://a?ip=[", "dot://a?ip=[]",
          "dot://[", "dot://]",
          "tcp://[:::]:", "dns://:", "dns://1.2.3.4:", "dot://a:?ip=1.2.3.4"}) {
        EXPECT_FALSE(parse_upstream_url(url).has_value()) << url;
    }
}

} // namespace
} // namespace pw::dns
