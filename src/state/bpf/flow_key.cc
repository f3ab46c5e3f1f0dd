#include "state/bpf/flow_key.h"

#include <algorithm>
#include <span>

namespace pw::state::bpf {

SocketOwnerFlowKey make_flow_key(const Flow& flow, FlowMatch match) {
    SocketOwnerFlowKey key{};
    key.protocol = flow.protocol;
    key.family =
        flow.remote_address.is_v4() ? PW_SOCKET_OWNER_FAMILY_V4 : PW_SOCKET_OWNER_FAMILY_V6;
    const auto remote = flow.remote_address.bytes();
    std::ranges::copy(remote, std::begin(key.remote_address));
    key.remote_port = flow.remote_port;
    if (match == FlowMatch::RemoteOnly) {
        return key;
    }
    key.local_port = flow.local_port;
    // A local address of the other family cannot belong to this flow; leave it "unknown".
    if (match == FlowMatch::Exact && flow.local_address.family() == flow.remote_address.family()) {
        std::ranges::copy(flow.local_address.bytes(), std::begin(key.local_address));
    }
    return key;
}

Flow flow_of_key(const SocketOwnerFlowKey& key) {
    const bool v4 = key.family == PW_SOCKET_OWNER_FAMILY_V4;
    const auto address = [v4](const __u8(&bytes)[16]) { // NOLINT(modernize-avoid-c-arrays): ABI
        const std::span<const std::uint8_t, 16> all(bytes);
        return v4 ? IpAddress::from_v4_bytes(all.first<4>()) : IpAddress::from_v6_bytes(all);
    };
    return Flow{.protocol = key.protocol,
                .local_address = address(key.local_address),
                .local_port = key.local_port,
                .remote_address = address(key.remote_address),
                .remote_port = key.remote_port};
}

} // namespace pw::state::bpf
