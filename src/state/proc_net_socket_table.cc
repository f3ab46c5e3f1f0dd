#include "state/proc_net_socket_table.h"

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace pw::state {
namespace {

constexpr std::uint8_t kTcpListen = 0x0A;

// Splits off the next whitespace-separated field; empty when there is none.
std::string_view next_field(std::string_view& rest) {
    const auto start = rest.find_first_not_of(" \t");
    if (start == std::string_view::npos) {
        rest = {};
        return {};
    }
    rest.remove_prefix(start);
    const auto end = std::min(rest.find_first_of(" \t"), rest.size());
    const std::string_view field = rest.substr(0, end);
    rest.remove_prefix(end);
    return field;
}

template <typename Integer>
std::optional<Integer> parse_integer(std::string_view text, int base) {
    Integer value{};
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

struct Endpoint {
    IpAddress address;
    std::uint16_t port = 0;
};

// "0100007F:0035" or "00000000000000000000000001000000:0035".
std::optional<Endpoint> parse_endpoint(std::string_view text, IpFamily family) {
    const std::size_t address_digits = family == IpFamily::V4 ? 8 : 32;
    if (text.size() != address_digits + 5 || text[address_digits] != ':') {
        return std::nullopt;
    }
    std::array<std::uint8_t, 16> bytes{};
    for (std::size_t word = 0; word < address_digits / 8; ++word) {
        const auto value = parse_integer<std::uint32_t>(text.substr(word * 8, 8), 16);
        if (!value) {
            return std::nullopt;
        }
        // The word was printed as a host-order integer: its bytes in memory are the address
        // bytes in network order, on any endianness.
        std::memcpy(bytes.data() + word * 4, &*value, 4);
    }
    const auto port = parse_integer<std::uint16_t>(text.substr(address_digits + 1), 16);
    if (!port) {
        return std::nullopt;
    }
    if (family == IpFamily::V4) {
        return Endpoint{
            .address = IpAddress::from_v4_bytes(std::span<const std::uint8_t, 4>(bytes.data(), 4)),
            .port = *port};
    }
    return Endpoint{.address = IpAddress::from_v6_bytes(bytes), .port = *port};
}

// Column indexes of the fields we read, counted from "sl".
constexpr std::size_t kLocalColumn = 1;
constexpr std::size_t kRemoteColumn = 2;
constexpr std::size_t kStateColumn = 3;
constexpr std::size_t kUidColumn = 7;
constexpr std::size_t kInodeColumn = 9;

bool is_wildcard_for(const IpAddress& bound, const IpAddress& wanted) {
    // A v6 wildcard (::) also takes IPv4 unless the socket is IPV6_V6ONLY, which /proc does
    // not show; accepting it matches the default (net.ipv6.bindv6only = 0).
    return bound.is_unspecified() && (bound.family() == wanted.family() || wanted.is_v4());
}

// How well a bound-only socket (a listener, an unconnected UDP socket) fits the local end, in
// the kernel's order: a specific address, then an IPv4 wildcard, then an IPv6 one. 0: no fit.
int bound_score(const ProcNetEntry& entry, const SocketQuery& query) {
    if (entry.local_port != query.local_port || entry.inode == 0) {
        return 0;
    }
    if (entry.local_address == query.local_address) {
        return 3;
    }
    if (!is_wildcard_for(entry.local_address, query.local_address)) {
        return 0;
    }
    return entry.local_address.family() == query.local_address.family() ? 2 : 1;
}

bool is_exact(const ProcNetEntry& entry, const SocketQuery& query) {
    return entry.inode != 0 && entry.local_port == query.local_port &&
           entry.remote_port == query.remote_port && entry.local_address == query.local_address &&
           entry.remote_address == query.remote_address;
}

// The rules of the class comment, over every entry of the protocol's tables.
std::optional<SocketRecord> select_socket(std::span<const ProcNetEntry> entries,
                                          const SocketQuery& query) {
    const bool tcp = query.protocol == packet::protocol::kTcp;
    const bool inbound = query.direction == packet::Direction::Inbound;
    const ProcNetEntry* best_bound = nullptr;
    int best_score = 0;
    for (const ProcNetEntry& entry : entries) {
        if (tcp && entry.state == kTcpListen) {
            const int score = inbound ? bound_score(entry, query) : 0;
            if (score > best_score) {
                best_bound = &entry;
                best_score = score;
            }
            continue;
        }
        if (is_exact(entry, query)) {
            return SocketRecord{
                .inode = entry.inode, .uid = entry.uid, .match = SocketMatch::Exact};
        }
        if (!tcp && entry.remote_port == 0 && entry.remote_address.is_unspecified()) {
            const int score = bound_score(entry, query);
            if (score > best_score) {
                best_bound = &entry;
                best_score = score;
            }
        }
    }
    if (best_bound == nullptr) {
        return std::nullopt;
    }
    return SocketRecord{.inode = best_bound->inode,
                        .uid = best_bound->uid,
                        .match = tcp ? SocketMatch::Listener : SocketMatch::UnconnectedUdp};
}

// Appends the entries of one table; a missing file (no IPv6 in this kernel) adds nothing.
Status read_table(const std::filesystem::path& path, IpFamily family,
                  std::vector<ProcNetEntry>& entries) {
    std::ifstream file(path);
    if (!file) {
        const int saved = errno;
        if (saved == ENOENT) {
            return {};
        }
        return fail_errno("open " + path.string(), saved);
    }
    std::string line;
    std::getline(file, line); // the header
    while (std::getline(file, line)) {
        if (line.find_first_not_of(" \t") == std::string::npos) {
            continue;
        }
        auto entry = parse_proc_net_line(line, family);
        if (!entry) {
            return fail(path.string() + ": " + entry.error().what);
        }
        entries.push_back(*entry);
    }
    if (file.bad()) {
        return fail("read " + path.string());
    }
    return {};
}

} // namespace

Result<ProcNetEntry> parse_proc_net_line(std::string_view line, IpFamily family) {
    std::array<std::string_view, kInodeColumn + 1> fields{};
    std::string_view rest = line;
    for (std::string_view& field : fields) {
        field = next_field(rest);
        if (field.empty()) {
            return fail("short /proc/net line '" + std::string(line) + "'");
        }
    }
    const auto local = parse_endpoint(fields[kLocalColumn], family);
    const auto remote = parse_endpoint(fields[kRemoteColumn], family);
    const auto state = parse_integer<std::uint8_t>(fields[kStateColumn], 16);
    const auto uid = parse_integer<std::uint32_t>(fields[kUidColumn], 10);
    const auto inode = parse_integer<std::uint64_t>(fields[kInodeColumn], 10);
    if (!fields[0].ends_with(':') || !local || !remote || !state || !uid || !inode) {
        return fail("malformed /proc/net line '" + std::string(line) + "'");
    }
    return ProcNetEntry{.local_address = local->address,
                        .local_port = local->port,
                        .remote_address = remote->address,
                        .remote_port = remote->port,
                        .state = *state,
                        .uid = *uid,
                        .inode = *inode};
}

Result<std::optional<SocketRecord>> ProcNetSocketTable::find(const SocketQuery& query) {
    const char* name = nullptr;
    if (query.protocol == packet::protocol::kTcp) {
        name = "tcp";
    } else if (query.protocol == packet::protocol::kUdp) {
        name = "udp";
    } else {
        return fail("/proc/net lookup: no socket table for protocol " +
                    std::to_string(query.protocol));
    }
    const std::filesystem::path directory = proc_root_ / "net";
    std::vector<ProcNetEntry> entries;
    // IPv4 flows can belong to IPv4 sockets or to dual-stack IPv6 ones (tcp6, v4-mapped);
    // IPv6 flows only to IPv6 sockets.
    if (query.local_address.is_v4()) {
        if (auto read = read_table(directory / name, IpFamily::V4, entries); !read) {
            return std::unexpected(read.error());
        }
    }
    if (auto read = read_table(directory / (std::string(name) + "6"), IpFamily::V6, entries);
        !read) {
        return std::unexpected(read.error());
    }
    return select_socket(entries, query);
}

} // namespace pw::state
