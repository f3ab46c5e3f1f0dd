#pragma once

#include "state/bpf/socket_owner_abi.h"
#include "state/bpf/socket_owner_records.h"

namespace pw::state::bpf {

// The map key that the BPF programs would have written for `flow` when they knew as much of
// the local end as `match` says (Exact: everything; AnyLocalAddress: not the address;
// RemoteOnly: nothing). Pure; unit-tested without root.
[[nodiscard]] SocketOwnerFlowKey make_flow_key(const Flow& flow, FlowMatch match);

// The flow a key names, the inverse of make_flow_key(): a local address the programs did not
// know (all zeros) becomes the unspecified address of the remote's family. Pure.
[[nodiscard]] Flow flow_of_key(const SocketOwnerFlowKey& key);

} // namespace pw::state::bpf
