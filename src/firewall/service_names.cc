#include "firewall/service_names.h"

#include <algorithm>
#include <array>

namespace pw::firewall {
namespace {

// Port numbers from the IANA Service Name and Transport Protocol Port Number Registry; the
// names are IANA's where it has one, plus the short forms people write (dns, postgres, mssql).
// Sorted by port. Keep docs/rules.md in step.
constexpr auto kServiceNames = std::to_array<ServiceName>({
    {.name = "ftp-data", .port = 20},      {.name = "ftp", .port = 21},
    {.name = "ssh", .port = 22},           {.name = "telnet", .port = 23},
    {.name = "smtp", .port = 25},          {.name = "whois", .port = 43},
    {.name = "domain", .port = 53},        {.name = "dns", .port = 53},
    {.name = "bootps", .port = 67},        {.name = "bootpc", .port = 68},
    {.name = "tftp", .port = 69},          {.name = "http", .port = 80},
    {.name = "kerberos", .port = 88},      {.name = "pop3", .port = 110},
    {.name = "sunrpc", .port = 111},       {.name = "nntp", .port = 119},
    {.name = "ntp", .port = 123},          {.name = "netbios-ns", .port = 137},
    {.name = "netbios-dgm", .port = 138},  {.name = "netbios-ssn", .port = 139},
    {.name = "imap", .port = 143},         {.name = "snmp", .port = 161},
    {.name = "bgp", .port = 179},          {.name = "ldap", .port = 389},
    {.name = "https", .port = 443},        {.name = "microsoft-ds", .port = 445},
    {.name = "smb", .port = 445},          {.name = "smtps", .port = 465},
    {.name = "syslog", .port = 514},       {.name = "submission", .port = 587},
    {.name = "ipp", .port = 631},          {.name = "ldaps", .port = 636},
    {.name = "domain-s", .port = 853},     {.name = "dot", .port = 853},
    {.name = "rsync", .port = 873},        {.name = "ftps", .port = 990},
    {.name = "imaps", .port = 993},        {.name = "pop3s", .port = 995},
    {.name = "socks", .port = 1080},       {.name = "openvpn", .port = 1194},
    {.name = "ms-sql-s", .port = 1433},    {.name = "mssql", .port = 1433},
    {.name = "l2tp", .port = 1701},        {.name = "pptp", .port = 1723},
    {.name = "mqtt", .port = 1883},        {.name = "ssdp", .port = 1900},
    {.name = "nfs", .port = 2049},         {.name = "mysql", .port = 3306},
    {.name = "rdp", .port = 3389},         {.name = "ms-wbt-server", .port = 3389},
    {.name = "stun", .port = 3478},        {.name = "turn", .port = 3478},
    {.name = "ipsec-nat-t", .port = 4500}, {.name = "sip", .port = 5060},
    {.name = "sips", .port = 5061},        {.name = "xmpp-client", .port = 5222},
    {.name = "xmpp-server", .port = 5269}, {.name = "stuns", .port = 5349},
    {.name = "turns", .port = 5349},       {.name = "mdns", .port = 5353},
    {.name = "llmnr", .port = 5355},       {.name = "postgresql", .port = 5432},
    {.name = "postgres", .port = 5432},    {.name = "amqp", .port = 5672},
    {.name = "vnc", .port = 5900},         {.name = "redis", .port = 6379},
    {.name = "irc", .port = 6667},         {.name = "ircs", .port = 6697},
    {.name = "http-alt", .port = 8080},    {.name = "mqtts", .port = 8883},
    {.name = "git", .port = 9418},         {.name = "mongodb", .port = 27017},
    {.name = "wireguard", .port = 51820},
});

// The longest name above; anything longer cannot be one.
constexpr std::size_t kMaxServiceNameLength = [] {
    std::size_t longest = 0;
    for (const ServiceName& service : kServiceNames) {
        longest = std::max(longest, service.name.size());
    }
    return longest;
}();

} // namespace

std::optional<std::uint16_t> service_port(std::string_view name) {
    if (name.empty() || name.size() > kMaxServiceNameLength) {
        return std::nullopt;
    }
    const auto found = std::ranges::find_if(kServiceNames, [name](const ServiceName& service) {
        return std::ranges::equal(service.name, name, [](char known, char given) {
            const char lower =
                (given >= 'A' && given <= 'Z') ? static_cast<char>(given - 'A' + 'a') : given;
            return known == lower;
        });
    });
    if (found == kServiceNames.end()) {
        return std::nullopt;
    }
    return found->port;
}

std::span<const ServiceName> service_names() {
    return kServiceNames;
}

} // namespace pw::firewall
