#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"

namespace pw::interception {

// The kernel side of the seed design: mangle chains C170 (OUTPUT) and C171 (INPUT) that queue
// undecided packets, filter chain C17 that acts on the verdict marks, and the nat OUTPUT rules
// for marks 1799 and 1717. See docs/architecture.md for the rule text and its order.
//
// The composition below is pure text so that it is tested without root; RuleSet runs it.

// Where marks 1799 (astray DNS query) send a flow: our nameserver, "IP:PORT" for IPv4 and
// "[IP]:PORT" for IPv6 (`dns/listenAddress`). Empty: the nameserver does not listen on that IP
// version, there is no DNAT rule for it and the firewall blocks such queries instead.
struct RedirectTargets {
    std::string nameserver_v4 = "127.0.0.17:53";
    std::string nameserver_v6 = "[::1]:53";
};

// The iptables-restore script that installs our rules on a system that has none of them; this is
// what `portwarden iptables show` prints (with a header naming the family).
[[nodiscard]] std::string render_rules(IpFamily family, const RedirectTargets& targets = {});

// The script for `iptables-restore --noflush` that installs our rules atomically given the
// current `iptables-save` output: it declares (and thereby flushes) our chains, deletes every
// jump rule and nat rule of ours already present (stale ones after a crash, duplicates
// included) and then adds ours once. Applying it twice yields the same ruleset.
[[nodiscard]] std::string compose_apply_script(IpFamily family, std::string_view current_save,
                                               const RedirectTargets& targets = {});

// The script that removes every trace of ours given the current `iptables-save` output: jump
// rules, nat rules and the chains. Empty when nothing of ours is installed.
[[nodiscard]] std::string compose_remove_script(IpFamily family, std::string_view current_save);

// Runs the iptables binaries. A seam so that RuleSet is tested with a fake.
class IptablesRunner {
public:
    virtual ~IptablesRunner() = default;
    // `iptables-save` / `ip6tables-save` of the tables we touch (mangle, filter, nat).
    [[nodiscard]] virtual Result<std::string> save(IpFamily family) = 0;
    // `iptables-restore --noflush --wait` / `ip6tables-restore ...` with `script` on stdin.
    [[nodiscard]] virtual Status restore(IpFamily family, std::string_view script) = 0;
};

// The real runner: execs iptables-save/-restore (whichever backend, nft or legacy, the system's
// alternatives select). Errors carry the tool's own stderr ("can't initialize ip6tables table
// `mangle': Table does not exist") or "iptables-restore not found: install the iptables package".
class IptablesBinaryRunner final : public IptablesRunner {
public:
    // interception::IptablesRunner
    [[nodiscard]] Result<std::string> save(IpFamily family) override;
    [[nodiscard]] Status restore(IpFamily family, std::string_view script) override;
};

// How applying or removing went for one family. IPv6 may fail (no ip6tables, IPv6 disabled)
// without stopping IPv4.
struct FamilyOutcome {
    IpFamily family = IpFamily::V4;
    Status status;
};

// Installs and removes the ruleset for IPv4 and IPv6. Runs on the caller's thread; blocking
// (it waits for the iptables binaries), so the daemon calls it at start and stop only.
class RuleSet {
public:
    explicit RuleSet(IptablesRunner& runner, RedirectTargets targets = {})
        : runner_(runner), targets_(std::move(targets)) {}

    // Both families are attempted; the outcome of each is returned.
    [[nodiscard]] std::vector<FamilyOutcome> apply();
    [[nodiscard]] std::vector<FamilyOutcome> remove();

private:
    IptablesRunner& runner_;
    RedirectTargets targets_;
};

} // namespace pw::interception
