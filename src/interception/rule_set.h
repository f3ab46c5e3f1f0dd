#pragma once

#include <array>
#include <optional>
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

// Our lines of an iptables-save output, each prefixed with its table: the rules of our chains in
// order, the jumps to them with their position in the chain that jumps ("mangle OUTPUT#1 -A
// OUTPUT -j C170"), and our nat rules. Two saves of an unchanged ruleset give the same lines,
// whatever the backend prints for a mark or a CONNMARK option; anything else (a flushed chain, a
// jump deleted, duplicated or pushed down by a foreign rule) gives other lines.
[[nodiscard]] std::vector<std::string> installed_rules(std::string_view current_save);

// What differs between two installed_rules() results, for a log line and an event:
// "filter C17: 0 rules (11 installed); mangle OUTPUT -j C170: 2 rules (1 installed)". Empty when
// they are equal.
[[nodiscard]] std::string describe_rule_changes(const std::vector<std::string>& installed,
                                                const std::vector<std::string>& now);

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
// alternatives select). Each tool runs in a process group of its own with default signal
// dispositions, so that a signal sent to the daemon's group (`timeout`, a supervisor, Ctrl-C)
// cannot kill it halfway through the removal of the rules (issue 10 item 2). Errors carry the
// tool's own stderr ("can't initialize ip6tables table `mangle': Table does not exist") or
// "iptables-restore not found: install the iptables package".
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

// What a check of the kernel's rules found for one family that apply() installed.
struct RuleCheck {
    IpFamily family = IpFamily::V4;
    // Empty: the rules are as installed. Else what changed (describe_rule_changes), or why the
    // rules could not be read.
    std::string problem;
    // When `problem` is set: whether installing the rules again worked (and they then read back
    // as installed).
    Status repair;
};

// Installs, watches and removes the ruleset for IPv4 and IPv6. Blocking (it waits for the
// iptables binaries): the daemon calls apply() and remove() at start and stop on the event-loop
// thread, and check_and_repair() on a worker thread in between. One call at a time: the caller
// makes sure none of them overlap.
class RuleSet {
public:
    // A removal is tried this often before its family counts as failed ("rules left").
    static constexpr int kRemoveAttempts = 3;

    explicit RuleSet(IptablesRunner& runner, RedirectTargets targets = {})
        : runner_(runner), targets_(std::move(targets)) {}

    // Both families are attempted; the outcome of each is returned. A family that succeeds is
    // read back and remembered for check_and_repair().
    [[nodiscard]] std::vector<FamilyOutcome> apply();
    // Both families; each is read back after its removal and removed again (up to
    // kRemoveAttempts) while anything of ours is left. An outcome fails when rules are left or
    // the family's rules could not be read.
    [[nodiscard]] std::vector<FamilyOutcome> remove();
    // For each family that apply() installed: reads the kernel's rules and compares them with
    // what was installed; on any difference, installs the rules again (which also deletes stale
    // and duplicated jumps) and remembers the result. Returns one entry per installed family.
    [[nodiscard]] std::vector<RuleCheck> check_and_repair();

private:
    [[nodiscard]] Status remove_family_verified(IpFamily family);
    [[nodiscard]] Status apply_and_remember(IpFamily family);

    IptablesRunner& runner_;
    RedirectTargets targets_;
    // installed_rules() of each family right after apply(), indexed by IpFamily (V4 first);
    // nullopt: not installed by us.
    std::array<std::optional<std::vector<std::string>>, 2> installed_;
};

} // namespace pw::interception
