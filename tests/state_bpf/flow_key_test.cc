// Key building for the flow map, without root: the C++ side must produce byte for byte the key
// the BPF programs write.
#include "state/bpf/flow_key.h"

#include <array>
#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include "common/ip_address.h"

namespace pw::state::bpf {
namespace {

IpAddress address(const char* text) {
    return IpAddress::parse(text).value();
}

TEST(FlowKeyTest, ExactIpv4KeyHasBothEnds) {
    const Flow flow{.protocol = 6,
                    .local_address = address("10.0.0.2"),
                    .local_port = 40000,
                    .remote_address = address("192.0.2.1"),
                    .remote_port = 443};
    const SocketOwnerFlowKey key = make_flow_key(flow, FlowMatch::Exact);
    EXPECT_EQ(key.protocol, 6);
    EXPECT_EQ(key.family, PW_SOCKET_OWNER_FAMILY_V4);
    EXPECT_EQ(key.local_port, 40000);
    EXPECT_EQ(key.remote_port, 443);
    const std::array<std::uint8_t, 16> local{10, 0, 0, 2};
    const std::array<std::uint8_t, 16> remote{192, 0, 2, 1};
    EXPECT_EQ(std::memcmp(key.local_address, local.data(), 16), 0);
    EXPECT_EQ(std::memcmp(key.remote_address, remote.data(), 16), 0);
}

TEST(FlowKeyTest, MappedAddressesGiveTheIpv4Key) {
    const Flow mapped{.protocol = 17,
                      .local_address = address("::ffff:127.0.0.1"),
                      .local_port = 5000,
                      .remote_address = address("::ffff:127.0.0.1"),
                      .remote_port = 53};
    const Flow plain{.protocol = 17,
                     .local_address = address("127.0.0.1"),
                     .local_port = 5000,
                     .remote_address = address("127.0.0.1"),
                     .remote_port = 53};
    const SocketOwnerFlowKey a = make_flow_key(mapped, FlowMatch::Exact);
    const SocketOwnerFlowKey b = make_flow_key(plain, FlowMatch::Exact);
    EXPECT_EQ(a.family, PW_SOCKET_OWNER_FAMILY_V4);
    EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0);
}

TEST(FlowKeyTest, WildcardKeysForgetTheLocalEnd) {
    const Flow flow{.protocol = 17,
                    .local_address = address("2001:db8::2"),
                    .local_port = 5353,
                    .remote_address = address("2001:db8::1"),
                    .remote_port = 53};
    const SocketOwnerFlowKey any_address = make_flow_key(flow, FlowMatch::AnyLocalAddress);
    EXPECT_EQ(any_address.family, PW_SOCKET_OWNER_FAMILY_V6);
    EXPECT_EQ(any_address.local_port, 5353);
    const std::array<std::uint8_t, 16> zero{};
    EXPECT_EQ(std::memcmp(any_address.local_address, zero.data(), 16), 0);

    const SocketOwnerFlowKey remote_only = make_flow_key(flow, FlowMatch::RemoteOnly);
    EXPECT_EQ(remote_only.local_port, 0);
    EXPECT_EQ(std::memcmp(remote_only.local_address, zero.data(), 16), 0);
    EXPECT_EQ(remote_only.remote_port, 53);
    EXPECT_EQ(remote_only.remote_address[0], 0x20);
}

TEST(FlowKeyTest, KeysReadBackAsTheFlowTheyWereMadeFrom) {
    const Flow v4{.protocol = 17,
                  .local_address = address("10.0.0.2"),
                  .local_port = 5353,
                  .remote_address = address("192.0.2.1"),
                  .remote_port = 53};
    const Flow read_v4 = flow_of_key(make_flow_key(v4, FlowMatch::Exact));
    EXPECT_EQ(read_v4.protocol, 17);
    EXPECT_EQ(read_v4.local_address, v4.local_address);
    EXPECT_EQ(read_v4.local_port, 5353);
    EXPECT_EQ(read_v4.remote_address, v4.remote_address);
    EXPECT_EQ(read_v4.remote_port, 53);

    const Flow v6{.protocol = 17,
                  .local_address = address("fd00::2"),
                  .local_port = 40000,
                  .remote_address = address("2001:db8::1"),
                  .remote_port = 443};
    const Flow read_v6 = flow_of_key(make_flow_key(v6, FlowMatch::Exact));
    EXPECT_EQ(read_v6.local_address, v6.local_address);
    EXPECT_EQ(read_v6.remote_address, v6.remote_address);
}

TEST(FlowKeyTest, AnUnknownLocalAddressReadsAsTheUnspecifiedAddressOfTheRemotesFamily) {
    const Flow v6{.protocol = 17,
                  .local_address = address("fd00::2"),
                  .local_port = 40000,
                  .remote_address = address("2001:db8::1"),
                  .remote_port = 443};
    const Flow read = flow_of_key(make_flow_key(v6, FlowMatch::AnyLocalAddress));
    EXPECT_TRUE(read.local_address.is_unspecified());
    EXPECT_FALSE(read.local_address.is_v4());
    EXPECT_EQ(read.local_port, 40000);
}

} // namespace
} // namespace pw::state::bpf
