#pragma once

#include <bitset>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "firewall/endpoint_rule.h"
#include "firewall/ip_scope.h"

namespace pw::firewall {

// `filter/defaultAction`: what happens to a connection that no rule or setting decides. Ask
// holds the connection and opens a prompt (profile/prompts.h).
enum class DefaultAction : std::uint8_t { Permit, Block, Ask };

// `filter/permanentVerdicts`: let the kernel remember verdicts for the whole connection.
enum class PermanentVerdicts : std::uint8_t { Off, On };

// `filter/outboundBlockAction`: how a blocked outbound connection ends for the application.
// Reject answers at once (ICMP host/admin prohibited: "No route to host"); Drop is silent and the
// application times out. Inbound blocks are always silent drops, so scanners learn nothing.
enum class OutboundBlockAction : std::uint8_t { Reject, Drop };

// `filter/preventBypassing`: stop applications from resolving names around portwarden's
// nameserver (DNS over TLS, known DNS-over-HTTPS resolvers, Firefox's DoH canary).
enum class PreventBypassing : std::uint8_t { Off, On };

// What happens to a DNS query sent to a nameserver other than portwarden's own.
//   Redirect: rerouted to portwarden's nameserver (mark 1799) when it listens on an address of
//             the query's IP family, else blocked (there is nowhere to send it).
//   Block:    always blocked.
// There is no "let it pass": a query that leaves unseen would give a connection no domain and
// bypass every domain rule.
enum class AstrayDns : std::uint8_t { Redirect, Block };

// An IP address and a port, such as 127.0.0.17:53.
struct IpEndpoint {
    IpAddress address;
    std::uint16_t port = 0;

    friend bool operator==(const IpEndpoint&, const IpEndpoint&) = default;
};

// What decide() must know about portwarden's own nameserver (`dns/listenAddress`).
struct DnsInterception {
    // Where the nameserver listens. Empty means that no nameserver runs (`dns/listenAddress:
    // off`): DNS is then ordinary traffic, neither redirected nor blocked as astray.
    std::vector<IpEndpoint> nameserver_endpoints;
    AstrayDns astray = AstrayDns::Redirect;

    friend bool operator==(const DnsInterception&, const DnsInterception&) = default;
};

// The settings an application's profile may set for itself (facts 6.6, "settable per app").
// Every other key is global only. The order is the order of FilterSettings' fields.
enum class AppSetting : std::uint8_t {
    DefaultAction,       // filter/defaultAction
    Endpoints,           // filter/endpoints (outbound rules)
    ServiceEndpoints,    // filter/serviceEndpoints (inbound rules)
    BlockInternet,       // filter/blockInternet
    BlockLan,            // filter/blockLAN
    BlockLocal,          // filter/blockLocal
    BlockInbound,        // filter/blockInbound
    BlockP2p,            // filter/blockP2P
    IncludeCnames,       // filter/includeCNAMEs
    IncludeSubdomains,   // filter/includeSubdomains
    RemoveOutOfScopeDns, // filter/removeOutOfScopeDNS
    RemoveBlockedDns,    // filter/removeBlockedDNS
    PreventBypassing,    // filter/preventBypassing
    PermanentVerdicts,   // filter/permanentVerdicts
    AskTimeout,          // filter/askTimeout
};
inline constexpr std::size_t kAppSettingCount = 15;

// "filter/defaultAction", ...: the key as users write it.
[[nodiscard]] std::string_view app_setting_key(AppSetting setting);
// "defaultAction", ...: the key without its section, as decision reasons name it.
[[nodiscard]] std::string_view app_setting_name(AppSetting setting);

// Where a value that decide() used came from: the application's profile, or the global layer
// (the config file, the settings store, or the built-in default).
enum class SettingLayer : std::uint8_t { App, Global };

// Which per-application values came from the profile rather than the global layer.
class SettingOrigins {
public:
    void set(AppSetting setting, SettingLayer layer) {
        app_.set(static_cast<std::size_t>(setting), layer == SettingLayer::App);
    }
    [[nodiscard]] SettingLayer of(AppSetting setting) const {
        return app_.test(static_cast<std::size_t>(setting)) ? SettingLayer::App
                                                            : SettingLayer::Global;
    }
    friend bool operator==(const SettingOrigins&, const SettingOrigins&) = default;

private:
    std::bitset<kAppSettingCount> app_;
};

// One immutable list of rules. Shared between the snapshots that use it, so that a change to one
// profile copies no other profile's rules and the global rules exist once.
using RuleList = std::vector<EndpointRule>;
using SharedRules = std::shared_ptr<const RuleList>;

// A rule list as decide() reads it: the profile's own rules first, then the global ones; first
// match wins across both. A null pointer is an empty list.
struct RuleLayers {
    SharedRules app;
    SharedRules global;
};

// Everything decide() and decide_query() read for one connection or query: the settings of one
// application's profile, each per-application value resolved (the profile's own, else the global
// one, else the default), with the global-only settings. Plain data, validated when loaded
// (config/), built once per profile and shared by every connection of it (profile/).
struct FilterSettings {
    // --- Per application (AppSetting), resolved. ---
    DefaultAction default_action = DefaultAction::Permit;
    RuleLayers endpoints;         // outbound connections, and DNS-time decisions
    RuleLayers service_endpoints; // inbound connections (the service port is the local port)
    bool block_internet = false;  // remote addresses of Internet scope
    bool block_lan = false;       // LAN scope: private, link-local, local multicast, broadcast
    bool block_local = false;     // Localhost scope: loopback
    bool block_inbound = true;    // inbound connections from other hosts (silently dropped)
    bool block_p2p = false;       // direct connections: no DNS answer led to the address; STUN
    // Domain rules of endpoints/serviceEndpoints (decide(), decide_query(), filter_answer()),
    // and the filter lists once they exist, also match the CNAME chain that led to the address.
    // The shipped DoH resolver list always does (bypass prevention is not the user's list).
    bool include_cnames = true;
    // Filter lists only (the seam of decide()'s "filter lists" step, issue 14): a listed name
    // also blocks the names below it. Rules are not affected: ".example.com" is how a rule says
    // "and its subdomains". Kept, resolved and layered like the others, but no step reads it yet.
    bool include_subdomains = true;
    bool remove_out_of_scope_dns = true; // a public resolver answering private addresses
    bool remove_blocked_dns = true;      // DNS answers pointing where the app may not connect
    PreventBypassing prevent_bypassing = PreventBypassing::On;
    PermanentVerdicts permanent_verdicts = PermanentVerdicts::On;
    std::chrono::seconds ask_timeout{60};
    // The filter lists this application uses (IDs or categories). The seam for issue 14, which
    // adds `filter/lists` and the lists themselves; empty until then.
    std::vector<std::string> lists;
    SettingOrigins origins; // which of the values above are the profile's own

    // --- Global only. ---
    OutboundBlockAction outbound_block_action = OutboundBlockAction::Reject;
    DnsInterception dns;
    // Where portwarden's local API listens (`core/listenAddress`): connections to it from this
    // host are accepted before any setting, so that the CLI and the web UI reach the firewall
    // even under `defaultAction: block` or `ask` (the API checks who may use it).
    std::vector<IpEndpoint> api_endpoints;

    // --- Whose settings these are. ---
    ProfileLabel profile;
};

// " (app, profile 'curl')", " (global)": the note that every reason resting on a setting or a
// rule ends with, naming the layer the value came from and whose profile it is.
[[nodiscard]] std::string layer_note(const FilterSettings& settings, SettingLayer layer);
// The same for one per-application setting: the layer its value came from.
[[nodiscard]] std::string setting_note(const FilterSettings& settings, AppSetting setting);

// The scope setting that blocks addresses of `scope` (blockInternet, blockLAN or blockLocal)
// when it is on; nullopt when it is off or the scope is Invalid (in no network scope).
[[nodiscard]] std::optional<AppSetting> blocking_scope_setting(const FilterSettings& settings,
                                                               IpScope scope);

} // namespace pw::firewall
