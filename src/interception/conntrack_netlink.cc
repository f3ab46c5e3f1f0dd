#include "interception/conntrack_netlink.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <span>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

namespace pw::interception {
namespace {

// The attributes of one direction: its addresses and ports.
struct TupleAttributes {
    nf_conntrack_attr ipv4_source;
    nf_conntrack_attr ipv4_destination;
    nf_conntrack_attr ipv6_source;
    nf_conntrack_attr ipv6_destination;
    nf_conntrack_attr source_port;
    nf_conntrack_attr destination_port;
};

constexpr TupleAttributes kOriginal{.ipv4_source = ATTR_ORIG_IPV4_SRC,
                                    .ipv4_destination = ATTR_ORIG_IPV4_DST,
                                    .ipv6_source = ATTR_ORIG_IPV6_SRC,
                                    .ipv6_destination = ATTR_ORIG_IPV6_DST,
                                    .source_port = ATTR_ORIG_PORT_SRC,
                                    .destination_port = ATTR_ORIG_PORT_DST};
constexpr TupleAttributes kReply{.ipv4_source = ATTR_REPL_IPV4_SRC,
                                 .ipv4_destination = ATTR_REPL_IPV4_DST,
                                 .ipv6_source = ATTR_REPL_IPV6_SRC,
                                 .ipv6_destination = ATTR_REPL_IPV6_DST,
                                 .source_port = ATTR_REPL_PORT_SRC,
                                 .destination_port = ATTR_REPL_PORT_DST};

std::optional<IpAddress> address_of(const nf_conntrack& object, std::uint8_t family,
                                    nf_conntrack_attr ipv4, nf_conntrack_attr ipv6) {
    if (family == AF_INET) {
        if (nfct_attr_is_set(&object, ipv4) <= 0) {
            return std::nullopt;
        }
        std::array<std::uint8_t, 4> bytes{};
        std::memcpy(bytes.data(), nfct_get_attr(&object, ipv4), bytes.size());
        return IpAddress::from_v4_bytes(bytes);
    }
    if (nfct_attr_is_set(&object, ipv6) <= 0) {
        return std::nullopt;
    }
    std::array<std::uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), nfct_get_attr(&object, ipv6), bytes.size());
    return IpAddress::from_v6_bytes(bytes);
}

std::uint16_t port_of(const nf_conntrack& object, nf_conntrack_attr attribute) {
    return nfct_attr_is_set(&object, attribute) > 0 ? ntohs(nfct_get_attr_u16(&object, attribute))
                                                    : std::uint16_t{0};
}

std::optional<ConntrackTuple> tuple_of(const nf_conntrack& object, std::uint8_t family,
                                       std::uint8_t protocol, const TupleAttributes& attributes) {
    const auto source = address_of(object, family, attributes.ipv4_source, attributes.ipv6_source);
    const auto destination =
        address_of(object, family, attributes.ipv4_destination, attributes.ipv6_destination);
    if (!source || !destination) {
        return std::nullopt;
    }
    // ICMP's identifier, type and code live elsewhere; its "ports" stay 0, like the key's.
    const bool ports = carries_ports(protocol);
    return ConntrackTuple{
        .source = *source,
        .source_port = ports ? port_of(object, attributes.source_port) : std::uint16_t{0},
        .destination = *destination,
        .destination_port =
            ports ? port_of(object, attributes.destination_port) : std::uint16_t{0}};
}

std::optional<ConntrackCounters> counters_of(const nf_conntrack& object, nf_conntrack_attr packets,
                                             nf_conntrack_attr bytes) {
    if (nfct_attr_is_set(&object, packets) <= 0 || nfct_attr_is_set(&object, bytes) <= 0) {
        return std::nullopt;
    }
    return ConntrackCounters{.packets = nfct_get_attr_u64(&object, packets),
                             .bytes = nfct_get_attr_u64(&object, bytes)};
}

} // namespace

void NfConntrackDeleter::operator()(nf_conntrack* object) const noexcept {
    nfct_destroy(object);
}

NfConntrack new_nf_conntrack() {
    return NfConntrack(nfct_new());
}

std::optional<ConntrackEntry> entry_from(const nf_conntrack& object) {
    if (nfct_attr_is_set(&object, ATTR_L3PROTO) <= 0 ||
        nfct_attr_is_set(&object, ATTR_L4PROTO) <= 0) {
        return std::nullopt;
    }
    const std::uint8_t family = nfct_get_attr_u8(&object, ATTR_L3PROTO);
    if (family != AF_INET && family != AF_INET6) {
        return std::nullopt;
    }
    const std::uint8_t protocol = nfct_get_attr_u8(&object, ATTR_L4PROTO);
    const auto original = tuple_of(object, family, protocol, kOriginal);
    const auto reply = tuple_of(object, family, protocol, kReply);
    if (!original || !reply) {
        return std::nullopt;
    }
    return ConntrackEntry{
        .protocol = protocol,
        .original = *original,
        .reply = *reply,
        .mark = nfct_attr_is_set(&object, ATTR_MARK) > 0 ? nfct_get_attr_u32(&object, ATTR_MARK)
                                                         : std::uint32_t{0},
        .id = nfct_attr_is_set(&object, ATTR_ID) > 0 ? nfct_get_attr_u32(&object, ATTR_ID)
                                                     : std::uint32_t{0},
        .original_counters =
            counters_of(object, ATTR_ORIG_COUNTER_PACKETS, ATTR_ORIG_COUNTER_BYTES),
        .reply_counters = counters_of(object, ATTR_REPL_COUNTER_PACKETS, ATTR_REPL_COUNTER_BYTES),
    };
}

std::optional<ConntrackEntry> parse_conntrack_message(const nlmsghdr* message) {
    // A fresh object per message: the parser only sets what the message carries, and a reused
    // object would keep the counters or mark of the previous entry.
    const NfConntrack object = new_nf_conntrack();
    if (!object || nfct_nlmsg_parse(message, object.get()) < 0) {
        return std::nullopt;
    }
    return entry_from(*object);
}

} // namespace pw::interception
