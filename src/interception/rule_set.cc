#include "interception/rule_set.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"
#include "packet/verdict.h"

namespace pw::interception {
namespace {

// ---------------------------------------------------------------------------------------------
// The rules of the seed design ("Linux" section), as data.

constexpr std::string_view kOutputQueueChain = "C170"; // mangle OUTPUT -> C170
constexpr std::string_view kInputQueueChain = "C171";  // mangle INPUT -> C171
constexpr std::string_view kVerdictChain = "C17";      // filter INPUT and OUTPUT -> C17

// Everything that differs between the IPv4 and the IPv6 ruleset.
struct FamilyRules {
    std::string_view name; // "IPv4"
    std::string_view save_tool;
    std::string_view restore_tool;
    // NFQUEUE numbers: "17" + direction (0 out, 1 in) + family (4, 6) + queue index 0.
    std::string_view output_queue;
    std::string_view input_queue;
    std::string_view icmp_protocol;
    std::string_view reject_with;
    std::string_view tunnel; // DNAT target for Gate17 (mark 1717)
};

constexpr FamilyRules kV4Rules{
    .name = "IPv4",
    .save_tool = "iptables-save",
    .restore_tool = "iptables-restore",
    .output_queue = "17040",
    .input_queue = "17140",
    .icmp_protocol = "icmp",
    .reject_with = "icmp-host-prohibited",
    .tunnel = "127.0.0.17:1117",
};

constexpr FamilyRules kV6Rules{
    .name = "IPv6",
    .save_tool = "ip6tables-save",
    .restore_tool = "ip6tables-restore",
    .output_queue = "17060",
    .input_queue = "17160",
    .icmp_protocol = "ipv6-icmp",
    .reject_with = "icmp6-adm-prohibited",
    .tunnel = "[::1]:1117",
};

const FamilyRules& rules_for(IpFamily family) {
    return family == IpFamily::V4 ? kV4Rules : kV6Rules;
}

std::string mark_match(std::uint32_t mark) {
    return "-m mark --mark " + std::to_string(mark);
}

// The rules of one of our queueing chains (mangle C170 / C171).
//
// An ICMP error related to a connection whose verdict is not in its connmark (a temporary
// verdict, filter/permanentVerdicts false) is accepted for this packet (1700) instead of being
// queued. Above all the error that our own REJECT of a temporary block (1701) sends back to
// the application: queued, it was dropped, and "reject" behaved as a silent drop (issue 10
// item 7). With a permanent verdict the restored connmark already lets such errors pass (the
// "-p icmp -j RETURN" rules of C17), so this is the same treatment for both.
std::vector<std::string> queue_chain_rules(std::string_view chain, std::string_view queue,
                                           std::string_view icmp_protocol) {
    const std::string prefix = "-A " + std::string(chain) + " ";
    return {
        prefix + "-j CONNMARK --restore-mark",
        prefix + "-p " + std::string(icmp_protocol) + " -m conntrack --ctstate RELATED " +
            mark_match(packet::mark::kUndecided) + " -j MARK --set-mark " +
            std::to_string(packet::mark::kAccept),
        prefix + mark_match(packet::mark::kUndecided) + " -j NFQUEUE --queue-num " +
            std::string(queue) + " --queue-bypass",
    };
}

// The rules of filter C17, in the seed's order: temporary verdicts first, then the connmark is
// saved so that permanent verdicts (and reroutes) stick to the connection.
std::vector<std::string> verdict_chain_rules(const FamilyRules& rules) {
    namespace mark = packet::mark;
    const std::string prefix = "-A " + std::string(kVerdictChain) + " ";
    const std::string icmp = " -p " + std::string(rules.icmp_protocol);
    const std::string reject = " -j REJECT --reject-with " + std::string(rules.reject_with);
    return {
        prefix + mark_match(mark::kUndecided) + " -j DROP",
        prefix + mark_match(mark::kAccept) + " -j ACCEPT",
        // ICMP is never rejected with ICMP (RFC 1122 §3.2.2); it is left to the other chains.
        prefix + mark_match(mark::kBlock) + icmp + " -j RETURN",
        prefix + mark_match(mark::kBlock) + reject,
        prefix + mark_match(mark::kDrop) + " -j DROP",
        prefix + "-j CONNMARK --save-mark",
        prefix + mark_match(mark::kPermanentAccept) + " -j ACCEPT",
        prefix + mark_match(mark::kPermanentBlock) + icmp + " -j RETURN",
        prefix + mark_match(mark::kPermanentBlock) + reject,
        prefix + mark_match(mark::kPermanentDrop) + " -j DROP",
        prefix + mark_match(mark::kRerouteToTunnel) + " -j ACCEPT",
    };
}

// Our rules in the builtin nat OUTPUT chain (the seed puts them there, not in a chain of ours).
// The seed redirects astray DNS over UDP only; a TCP query marked 1799 would then leave
// unchanged. We redirect TCP/53 the same way (docs/architecture.md, "Astray DNS"): a client
// that retries over TCP after a truncated answer must reach the same nameserver.
std::vector<std::string> nat_rules(const FamilyRules& rules, std::string_view nameserver_target) {
    namespace mark = packet::mark;
    const std::string tunnel = " -j DNAT --to-destination " + std::string(rules.tunnel);
    std::vector<std::string> lines;
    if (!nameserver_target.empty()) {
        const std::string nameserver =
            " -j DNAT --to-destination " + std::string(nameserver_target);
        lines.push_back("-A OUTPUT -p udp --dport 53 " + mark_match(mark::kRerouteToNameserver) +
                        nameserver);
        lines.push_back("-A OUTPUT -p tcp --dport 53 " + mark_match(mark::kRerouteToNameserver) +
                        nameserver);
    }
    lines.push_back("-A OUTPUT -p tcp " + mark_match(mark::kRerouteToTunnel) + tunnel);
    lines.push_back("-A OUTPUT -p udp " + mark_match(mark::kRerouteToTunnel) + tunnel);
    return lines;
}

// ---------------------------------------------------------------------------------------------
// Reading iptables-save output.

// Splits a rule line into words; a double-quoted word (`--comment "a b"`) stays one word.
std::vector<std::string_view> split_words(std::string_view line) {
    std::vector<std::string_view> words;
    std::size_t position = 0;
    while (position < line.size()) {
        if (line[position] == ' ' || line[position] == '\t') {
            ++position;
            continue;
        }
        std::size_t end = position;
        bool quoted = false;
        while (end < line.size() && (quoted || (line[end] != ' ' && line[end] != '\t'))) {
            if (line[end] == '\\' && end + 1 < line.size()) {
                ++end;
            } else if (line[end] == '"') {
                quoted = !quoted;
            }
            ++end;
        }
        words.push_back(line.substr(position, end - position));
        position = end;
    }
    return words;
}

// The word after `option` (the first occurrence), if any.
std::optional<std::string_view> option_value(const std::vector<std::string_view>& words,
                                             std::string_view option) {
    for (std::size_t index = 0; index + 1 < words.size(); ++index) {
        if (words[index] == option) {
            return words[index + 1];
        }
    }
    return std::nullopt;
}

// Parses a mark as iptables-save prints it ("0x6b5", "0x6b5/0xffffffff") or as we write it
// ("1717"). A mask other than all-ones is not one of ours.
std::optional<std::uint32_t> parse_mark(std::string_view text) {
    if (const auto slash = text.find('/'); slash != std::string_view::npos) {
        const std::string_view mask = text.substr(slash + 1);
        if (mask != "0xffffffff" && mask != "4294967295") {
            return std::nullopt;
        }
        text = text.substr(0, slash);
    }
    int base = 10;
    if (text.starts_with("0x") || text.starts_with("0X")) {
        base = 16;
        text.remove_prefix(2);
    }
    std::uint32_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (error != std::errc{} || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
    }
    return value;
}

bool is_our_chain(std::string_view chain) {
    return chain == kOutputQueueChain || chain == kInputQueueChain || chain == kVerdictChain;
}

// A nat rule of ours, also one left by an older version with other details: a DNAT in nat
// OUTPUT on one of our reroute marks.
bool is_our_nat_rule(const std::vector<std::string_view>& words) {
    if (words.size() < 2 || words[1] != "OUTPUT" || option_value(words, "-j") != "DNAT") {
        return false;
    }
    const auto mark_text = option_value(words, "--mark");
    if (!mark_text) {
        return false;
    }
    const auto mark = parse_mark(*mark_text);
    return mark == packet::mark::kRerouteToNameserver || mark == packet::mark::kRerouteToTunnel;
}

// What of ours one table of the save output holds.
struct TableState {
    std::vector<std::string> chains;      // our chains declared in this table
    std::vector<std::string> stale_rules; // "-A ..." lines to delete, once per occurrence
};

// Whether an "-A" line of `table` is ours outside our chains. Jumps to our chains from any
// other chain are (a stale jump from a foreign chain would keep -X from working); in nat, so
// are the DNAT rules on our marks.
bool is_stale_rule(std::string_view table, std::string_view line) {
    const auto words = split_words(line);
    if (words.size() < 2 || is_our_chain(words[1])) {
        return false; // the content of our chains goes with the chain itself
    }
    const auto jump = option_value(words, "-j");
    const auto go_to = option_value(words, "-g");
    if ((jump && is_our_chain(*jump)) || (go_to && is_our_chain(*go_to))) {
        return true;
    }
    return table == "nat" && is_our_nat_rule(words);
}

// Reads what of ours `table` of an iptables-save output holds.
TableState read_table(std::string_view save, std::string_view table) {
    TableState state;
    std::string_view current_table;
    while (!save.empty()) {
        const auto newline = save.find('\n');
        std::string_view line = save.substr(0, newline);
        save = newline == std::string_view::npos ? std::string_view{} : save.substr(newline + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
            line.remove_suffix(1);
        }
        if (line.starts_with('*')) {
            current_table = line.substr(1);
        } else if (current_table != table) {
            continue;
        } else if (line.starts_with(':')) {
            const std::string_view chain = line.substr(1, line.find(' ') - 1);
            if (is_our_chain(chain)) {
                state.chains.emplace_back(chain);
            }
        } else if (line.starts_with("-A ") && is_stale_rule(table, line)) {
            state.stale_rules.emplace_back(line);
        }
    }
    return state;
}

// "-A CHAIN rest" as printed by iptables-save becomes "-D CHAIN rest": iptables-restore deletes
// the first rule that matches the same specification.
std::string deletion_of(std::string_view append_line) {
    return "-D" + std::string(append_line.substr(2));
}

// The lines of an iptables-save output, trailing blanks and carriage returns removed.
template <typename Function>
void for_each_line(std::string_view save, Function&& function) {
    while (!save.empty()) {
        const auto newline = save.find('\n');
        std::string_view line = save.substr(0, newline);
        save = newline == std::string_view::npos ? std::string_view{} : save.substr(newline + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
            line.remove_suffix(1);
        }
        function(line);
    }
}

// installed_rules() lines are "<group> | <rule>"; the group of a jump ends in " #<position>".
constexpr std::string_view kGroupSeparator = " | ";

// The line of installed_rules() for an "-A" line of `table`, or nothing when it is not ours.
// `position` is the rule's 1-based position in its chain.
std::optional<std::string> installed_line(std::string_view table, std::string_view line,
                                          int position) {
    const auto words = split_words(line);
    if (words.size() < 2) {
        return std::nullopt;
    }
    const std::string prefix = std::string(table) + " " + std::string(words[1]);
    if (is_our_chain(words[1])) {
        return prefix + std::string(kGroupSeparator) + std::string(line);
    }
    const auto jump = option_value(words, "-j");
    const auto go_to = option_value(words, "-g");
    const auto target = jump && is_our_chain(*jump) ? jump : go_to;
    if (target && is_our_chain(*target)) {
        return prefix + " -> " + std::string(*target) + " #" + std::to_string(position) +
               std::string(kGroupSeparator) + std::string(line);
    }
    if (table == "nat" && is_our_nat_rule(words)) {
        return prefix + " DNAT" + std::string(kGroupSeparator) + std::string(line);
    }
    return std::nullopt;
}

// The group of an installed_rules() line without a jump's position: what the rule counts of
// describe_rule_changes() are per.
std::string_view group_of(std::string_view installed) {
    std::string_view group = installed.substr(0, installed.find(kGroupSeparator));
    if (const auto hash = group.rfind(" #"); hash != std::string_view::npos) {
        group = group.substr(0, hash);
    }
    return group;
}

// ---------------------------------------------------------------------------------------------
// Writing restore scripts.

struct ScriptWriter {
    std::string text;

    void line(std::string_view content) {
        text += content;
        text += '\n';
    }
    void comment(std::string_view content) {
        text += "# ";
        text += content;
        text += '\n';
    }
    void lines(const std::vector<std::string>& contents) {
        for (const auto& content : contents) {
            line(content);
        }
    }
    void deletions(const TableState& state) {
        for (const auto& stale : state.stale_rules) {
            line(deletion_of(stale));
        }
    }
};

// The apply script. `current_save` is empty for the plain rendering of render_rules().
std::string compose_apply(IpFamily family, std::string_view current_save,
                          const RedirectTargets& targets) {
    const FamilyRules& rules = rules_for(family);
    const TableState mangle = read_table(current_save, "mangle");
    const TableState filter = read_table(current_save, "filter");
    const TableState nat = read_table(current_save, "nat");
    const std::string output_chain(kOutputQueueChain);
    const std::string input_chain(kInputQueueChain);
    const std::string verdict_chain(kVerdictChain);

    ScriptWriter script;
    script.comment("portwarden " + std::string(rules.name) + " rules, for `" +
                   std::string(rules.restore_tool) + " --noflush`.");
    script.comment("Declaring a chain creates it, or flushes it when it exists.");

    script.line("*mangle");
    script.line(":" + output_chain + " - [0:0]");
    script.line(":" + input_chain + " - [0:0]");
    script.deletions(mangle);
    script.comment("Undecided packets (mark 0) go to portwarden; decided connections carry");
    script.comment("their verdict in the connmark. --queue-bypass: accept if nobody listens.");
    script.lines(queue_chain_rules(kOutputQueueChain, rules.output_queue, rules.icmp_protocol));
    script.lines(queue_chain_rules(kInputQueueChain, rules.input_queue, rules.icmp_protocol));
    script.line("-I OUTPUT 1 -j " + output_chain);
    script.line("-I INPUT 1 -j " + input_chain);
    script.line("COMMIT");

    script.line("*filter");
    script.line(":" + verdict_chain + " - [0:0]");
    script.deletions(filter);
    script.comment("Act on the verdict mark: 1700/1701/1702 accept/block/drop for this packet,");
    script.comment("1710/1711/1712 the same for the whole connection (connmark), 1717 Gate17.");
    script.lines(verdict_chain_rules(rules));
    script.line("-I OUTPUT 1 -j " + verdict_chain);
    script.line("-I INPUT 1 -j " + verdict_chain);
    script.line("COMMIT");

    script.line("*nat");
    script.deletions(nat);
    script.comment("Reroutes: 1799 astray DNS query to our nameserver, 1717 to Gate17.");
    script.lines(
        nat_rules(rules, family == IpFamily::V4 ? targets.nameserver_v4 : targets.nameserver_v6));
    script.line("COMMIT");
    return std::move(script.text);
}

void append_removal(ScriptWriter& script, std::string_view table, const TableState& state) {
    if (state.chains.empty() && state.stale_rules.empty()) {
        return;
    }
    script.line("*" + std::string(table));
    script.deletions(state);
    // Every reference is gone, so the chains can be flushed and then deleted.
    for (const auto& chain : state.chains) {
        script.line("-F " + chain);
    }
    for (const auto& chain : state.chains) {
        script.line("-X " + chain);
    }
    script.line("COMMIT");
}

// ---------------------------------------------------------------------------------------------
// Running the iptables binaries.

// What a finished tool printed and how it exited.
struct ToolOutput {
    int exit_code = 0;
    std::string out;
    std::string err;
};

// The iptables binaries live in /usr/sbin, which a user's PATH may lack (Debian).
std::optional<std::string> find_tool(std::string_view tool) {
    std::string directories = "/usr/sbin:/sbin:/usr/bin:/bin";
    // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing in the daemon calls setenv() after start.
    if (const char* path = ::getenv("PATH"); path != nullptr && *path != '\0') {
        directories = std::string(path) + ":" + directories;
    }
    std::string_view rest = directories;
    while (!rest.empty()) {
        const auto colon = rest.find(':');
        const std::string_view directory = rest.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
        if (directory.empty()) {
            continue;
        }
        std::string candidate = std::string(directory) + "/" + std::string(tool);
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return std::nullopt;
}

struct Pipe {
    UniqueFd read_end;
    UniqueFd write_end;
};

Result<Pipe> make_pipe() {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
        return fail_errno("create pipe", errno);
    }
    return Pipe{.read_end = UniqueFd(fds[0]), .write_end = UniqueFd(fds[1])};
}

// The environment of the parent with LC_ALL=C, so that the tools' messages and number formats
// are the ones we parse and report.
class ChildEnvironment {
public:
    ChildEnvironment() {
        for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
            const std::string_view variable(*entry);
            if (!variable.starts_with("LC_ALL=")) {
                storage_.emplace_back(variable);
            }
        }
        storage_.emplace_back("LC_ALL=C");
        for (auto& variable : storage_) {
            pointers_.push_back(variable.data());
        }
        pointers_.push_back(nullptr);
    }
    [[nodiscard]] char* const* get() const { return pointers_.data(); }

private:
    std::vector<std::string> storage_;
    std::vector<char*> pointers_;
};

// posix_spawn attributes and file actions, destroyed exactly once.
class SpawnSetup {
public:
    SpawnSetup() {
        ::posix_spawn_file_actions_init(&actions_);
        ::posix_spawnattr_init(&attributes_);
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;
    SpawnSetup(SpawnSetup&&) = delete;
    SpawnSetup& operator=(SpawnSetup&&) = delete;
    ~SpawnSetup() {
        ::posix_spawn_file_actions_destroy(&actions_);
        ::posix_spawnattr_destroy(&attributes_);
    }
    posix_spawn_file_actions_t* actions() { return &actions_; }
    posix_spawnattr_t* attributes() { return &attributes_; }

private:
    posix_spawn_file_actions_t actions_{};
    posix_spawnattr_t attributes_{};
};

// Blocks SIGPIPE on this thread while we write to a child that may have exited, and swallows
// the SIGPIPE such a write leaves pending, so that a dying iptables-restore cannot kill us.
class SigpipeBlock {
public:
    SigpipeBlock() {
        sigemptyset(&sigpipe_);
        sigaddset(&sigpipe_, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &sigpipe_, &previous_);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;
    SigpipeBlock(SigpipeBlock&&) = delete;
    SigpipeBlock& operator=(SigpipeBlock&&) = delete;
    ~SigpipeBlock() {
        const timespec no_wait{};
        while (::sigtimedwait(&sigpipe_, nullptr, &no_wait) == SIGPIPE) {
        }
        ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    }

private:
    sigset_t sigpipe_{};
    sigset_t previous_{};
};

constexpr std::chrono::seconds kToolTimeout{60};

// The tool's stderr on one line, without its "Try `iptables-restore -h'" hint.
std::string one_line(std::string_view text) {
    std::string result;
    while (!text.empty()) {
        const auto newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) {
            line.remove_suffix(1);
        }
        if (line.empty() || line.starts_with("Try `")) {
            continue;
        }
        result += result.empty() ? "" : "; ";
        result += line;
    }
    return result;
}

// Writes what the child's stdin pipe takes of `input`; closes the pipe when all is written or
// the child is gone (EPIPE: the tool exited early; its exit code says why).
void write_some(UniqueFd& to_child, std::string_view& input) {
    const ssize_t written = ::write(to_child.get(), input.data(), input.size());
    if (written > 0) {
        input.remove_prefix(static_cast<std::size_t>(written));
    } else if (written < 0 && errno != EINTR && errno != EAGAIN) {
        to_child.reset();
    }
    if (input.empty()) {
        to_child.reset();
    }
}

// Appends what one of the child's output pipes holds to `sink`; closes the pipe at its end.
void read_some(UniqueFd& from_child, std::string& sink) {
    std::array<char, 65536> buffer{};
    const ssize_t count = ::read(from_child.get(), buffer.data(), buffer.size());
    if (count > 0) {
        sink.append(buffer.data(), static_cast<std::size_t>(count));
    } else if (count == 0 || (errno != EINTR && errno != EAGAIN)) {
        from_child.reset();
    }
}

// Feeds `input` to the child's stdin and collects its stdout and stderr until both close.
// All three at once: a large save output would otherwise fill a pipe and deadlock us both.
// poll() skips the closed ones: their fd is -1.
Status exchange(UniqueFd to_child, UniqueFd from_stdout, UniqueFd from_stderr,
                std::string_view input, ToolOutput& output, std::string_view tool) {
    const SigpipeBlock sigpipe_block;
    const auto deadline = std::chrono::steady_clock::now() + kToolTimeout;
    if (input.empty()) {
        to_child.reset();
    }
    while (to_child.valid() || from_stdout.valid() || from_stderr.valid()) {
        std::array<pollfd, 3> fds{{{.fd = to_child.get(), .events = POLLOUT, .revents = 0},
                                   {.fd = from_stdout.get(), .events = POLLIN, .revents = 0},
                                   {.fd = from_stderr.get(), .events = POLLIN, .revents = 0}}};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return fail(std::string(tool) + " timed out after " +
                        std::to_string(kToolTimeout.count()) + " s");
        }
        if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail_errno("poll " + std::string(tool) + " pipes", errno);
        }
        if (fds[0].revents != 0) {
            write_some(to_child, input);
        }
        if (fds[1].revents != 0) {
            read_some(from_stdout, output.out);
        }
        if (fds[2].revents != 0) {
            read_some(from_stderr, output.err);
        }
    }
    return {};
}

Result<int> wait_for_exit(pid_t pid, std::string_view tool, bool kill_first) {
    if (kill_first) {
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return fail_errno("wait for " + std::string(tool), errno);
        }
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return fail(std::string(tool) + " killed by signal " + std::to_string(WTERMSIG(status)));
}

// Runs `tool args...` without a shell, writes `input` to its stdin and returns what it printed.
Result<ToolOutput> run_tool(std::string_view tool, const std::vector<std::string>& arguments,
                            std::string_view input) {
    const auto path = find_tool(tool);
    if (!path) {
        return fail(std::string(tool) + " not found: install the iptables package");
    }
    auto stdin_pipe = make_pipe();
    if (!stdin_pipe) {
        return std::unexpected(stdin_pipe.error());
    }
    auto stdout_pipe = make_pipe();
    if (!stdout_pipe) {
        return std::unexpected(stdout_pipe.error());
    }
    auto stderr_pipe = make_pipe();
    if (!stderr_pipe) {
        return std::unexpected(stderr_pipe.error());
    }

    SpawnSetup setup;
    ::posix_spawn_file_actions_adddup2(setup.actions(), stdin_pipe->read_end.get(), 0);
    ::posix_spawn_file_actions_adddup2(setup.actions(), stdout_pipe->write_end.get(), 1);
    ::posix_spawn_file_actions_adddup2(setup.actions(), stderr_pipe->write_end.get(), 2);
    // The child starts with no blocked signals and every signal at its default action,
    // whatever the daemon ignores (SIGPIPE, SIGHUP ...). It runs in a process group of its own
    // (issue 10 item 2): `kill -TERM -<pgid>` of the daemon's group, as `timeout` and some
    // supervisors send, and a terminal's Ctrl-C reach the daemon, which then removes the rules,
    // but never the iptables-restore that is removing them.
    sigset_t no_signals;
    sigemptyset(&no_signals);
    sigset_t default_signals;
    sigfillset(&default_signals);
    ::posix_spawnattr_setsigmask(setup.attributes(), &no_signals);
    ::posix_spawnattr_setsigdefault(setup.attributes(), &default_signals);
    ::posix_spawnattr_setpgroup(setup.attributes(), 0);
    ::posix_spawnattr_setflags(
        setup.attributes(), POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

    std::vector<std::string> argv_storage{std::string(tool)};
    argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    argv.reserve(argv_storage.size() + 1);
    for (auto& argument : argv_storage) {
        argv.push_back(argument.data());
    }
    argv.push_back(nullptr);
    const ChildEnvironment environment;

    pid_t pid = 0;
    const int spawn_error = ::posix_spawn(&pid, path->c_str(), setup.actions(), setup.attributes(),
                                          argv.data(), environment.get());
    if (spawn_error != 0) {
        return fail_errno("start " + *path, spawn_error);
    }
    // Our copies of the child's ends must close, or we would never see end-of-file.
    stdin_pipe->read_end.reset();
    stdout_pipe->write_end.reset();
    stderr_pipe->write_end.reset();

    ToolOutput output;
    const Status exchanged =
        exchange(std::move(stdin_pipe->write_end), std::move(stdout_pipe->read_end),
                 std::move(stderr_pipe->read_end), input, output, tool);
    const auto exit_code = wait_for_exit(pid, tool, !exchanged.has_value());
    if (!exchanged) {
        return std::unexpected(exchanged.error());
    }
    if (!exit_code) {
        return std::unexpected(exit_code.error());
    }
    output.exit_code = *exit_code;
    return output;
}

Result<ToolOutput> run_successfully(std::string_view tool,
                                    const std::vector<std::string>& arguments,
                                    std::string_view input) {
    auto output = run_tool(tool, arguments, input);
    if (!output) {
        return output;
    }
    if (output->exit_code != 0) {
        return fail(std::string(tool) + " failed (exit " + std::to_string(output->exit_code) +
                    "): " + one_line(output->err));
    }
    return output;
}

} // namespace

std::string render_rules(IpFamily family, const RedirectTargets& targets) {
    return compose_apply(family, {}, targets);
}

std::string compose_apply_script(IpFamily family, std::string_view current_save,
                                 const RedirectTargets& targets) {
    return compose_apply(family, current_save, targets);
}

std::string compose_remove_script(IpFamily family, std::string_view current_save) {
    ScriptWriter script;
    append_removal(script, "mangle", read_table(current_save, "mangle"));
    append_removal(script, "filter", read_table(current_save, "filter"));
    append_removal(script, "nat", read_table(current_save, "nat"));
    if (script.text.empty()) {
        return {};
    }
    return "# portwarden: remove the " + std::string(rules_for(family).name) + " rules.\n" +
           script.text;
}

std::vector<std::string> installed_rules(std::string_view current_save) {
    std::vector<std::string> lines;
    std::string table;
    std::map<std::string, int, std::less<>> positions; // rules seen so far per chain
    for_each_line(current_save, [&](std::string_view line) {
        if (line.starts_with('*')) {
            table = line.substr(1);
            positions.clear();
            return;
        }
        if (line.starts_with(':')) {
            const std::string_view chain = line.substr(1, line.find(' ') - 1);
            if (is_our_chain(chain)) {
                lines.push_back(table + " " + std::string(chain) + " (chain)");
            }
            return;
        }
        if (!line.starts_with("-A ")) {
            return;
        }
        const auto words = split_words(line);
        const int position = words.size() < 2 ? 0 : ++positions[std::string(words[1])];
        if (auto ours = installed_line(table, line, position)) {
            lines.push_back(std::move(*ours));
        }
    });
    return lines;
}

std::string describe_rule_changes(const std::vector<std::string>& installed,
                                  const std::vector<std::string>& now) {
    if (installed == now) {
        return {};
    }
    // Per group, in the order of first appearance: how many rules it had and has, and whether
    // its lines (with jump positions) are still the same.
    struct Group {
        std::string name;
        std::vector<std::string_view> installed;
        std::vector<std::string_view> now;
    };
    std::vector<Group> groups;
    const auto group_for = [&groups](std::string_view name) -> Group& {
        for (Group& group : groups) {
            if (group.name == name) {
                return group;
            }
        }
        return groups.emplace_back(Group{.name = std::string(name), .installed = {}, .now = {}});
    };
    for (const std::string& line : installed) {
        group_for(group_of(line)).installed.emplace_back(line);
    }
    for (const std::string& line : now) {
        group_for(group_of(line)).now.emplace_back(line);
    }
    std::string description;
    for (const Group& group : groups) {
        if (group.installed == group.now) {
            continue;
        }
        description += description.empty() ? "" : "; ";
        description += group.name;
        if (group.installed.size() == group.now.size()) {
            description += ": changed or moved";
        } else if (group.name.ends_with(" (chain)")) {
            description += group.now.empty() ? ": deleted" : ": declared twice";
        } else {
            description += ": " + std::to_string(group.now.size()) + " rules (" +
                           std::to_string(group.installed.size()) + " installed)";
        }
    }
    return description;
}

namespace {

std::string_view family_label(IpFamily family) {
    return family == IpFamily::V4 ? "v4" : "v6";
}

// One family at a time, each atomic: iptables-restore commits a table's changes at once.
Status apply_family(IptablesRunner& runner, IpFamily family, const RedirectTargets& targets) {
    auto current = runner.save(family);
    if (!current) {
        return std::unexpected(current.error());
    }
    return runner.restore(family, compose_apply_script(family, *current, targets));
}

Status remove_family(IptablesRunner& runner, IpFamily family) {
    auto current = runner.save(family);
    if (!current) {
        return std::unexpected(current.error());
    }
    const std::string script = compose_remove_script(family, *current);
    if (script.empty()) {
        return {}; // nothing of ours is installed
    }
    return runner.restore(family, script);
}

void log_outcome(std::string_view action, const FamilyOutcome& outcome) {
    if (outcome.status) {
        log::get("rules")->info("rules_{} family={} result=ok", action,
                                family_label(outcome.family));
    } else {
        log::get("rules")->warn("rules_{} family={} result=failed error=\"{}\"", action,
                                family_label(outcome.family), outcome.status.error().message());
    }
}

} // namespace

Result<std::string> IptablesBinaryRunner::save(IpFamily family) {
    // The whole save rather than `-t mangle` etc.: asking for a table that does not exist yet
    // would create it (legacy backend) or fail; we only read what is there.
    auto output = run_successfully(rules_for(family).save_tool, {}, {});
    if (!output) {
        return std::unexpected(output.error());
    }
    return std::move(output->out);
}

Status IptablesBinaryRunner::restore(IpFamily family, std::string_view script) {
    // --noflush: leave every rule that is not ours alone. --wait: queue behind other users of
    // the xtables lock instead of failing (legacy backend; nft ignores it).
    auto output = run_successfully(rules_for(family).restore_tool, {"--noflush", "--wait"}, script);
    if (!output) {
        return std::unexpected(output.error());
    }
    return {};
}

namespace {

std::size_t index_of(IpFamily family) {
    return family == IpFamily::V4 ? 0 : 1;
}

} // namespace

Status RuleSet::apply_and_remember(IpFamily family) {
    installed_[index_of(family)].reset();
    if (auto applied = apply_family(runner_, family, targets_); !applied) {
        return applied;
    }
    // What the kernel shows now is what check_and_repair() compares with: the backend's own
    // spelling of marks and options, not ours.
    auto current = runner_.save(family);
    if (!current) {
        return std::unexpected(current.error());
    }
    installed_[index_of(family)] = installed_rules(*current);
    return {};
}

std::vector<FamilyOutcome> RuleSet::apply() {
    std::vector<FamilyOutcome> outcomes;
    for (const IpFamily family : {IpFamily::V4, IpFamily::V6}) {
        outcomes.push_back(FamilyOutcome{.family = family, .status = apply_and_remember(family)});
        log_outcome("apply", outcomes.back());
    }
    return outcomes;
}

Status RuleSet::remove_family_verified(IpFamily family) {
    // A removal can fail halfway (the tool killed by a signal, the xtables lock taken away):
    // read the rules back and try again while anything of ours is left.
    Status last = fail("no removal attempted");
    for (int attempt = 1; attempt <= kRemoveAttempts; ++attempt) {
        const Status removed = remove_family(runner_, family);
        auto current = runner_.save(family);
        if (!current) {
            last = std::unexpected(current.error());
            continue;
        }
        const std::string left = compose_remove_script(family, *current);
        if (left.empty()) {
            installed_[index_of(family)].reset();
            return {};
        }
        last = fail("rules of ours are still installed after removal attempt " +
                    std::to_string(attempt) +
                    (removed ? std::string() : " (" + removed.error().message() + ")"));
        log::get("rules")->warn("rules_remove family={} attempt={} result=left error=\"{}\"",
                                family_label(family), attempt, last.error().message());
    }
    return last;
}

std::vector<FamilyOutcome> RuleSet::remove() {
    std::vector<FamilyOutcome> outcomes;
    for (const IpFamily family : {IpFamily::V4, IpFamily::V6}) {
        outcomes.push_back(
            FamilyOutcome{.family = family, .status = remove_family_verified(family)});
        log_outcome("remove", outcomes.back());
    }
    return outcomes;
}

std::vector<RuleCheck> RuleSet::check_and_repair() {
    std::vector<RuleCheck> checks;
    for (const IpFamily family : {IpFamily::V4, IpFamily::V6}) {
        const auto& installed = installed_[index_of(family)];
        if (!installed) {
            continue;
        }
        RuleCheck check{.family = family, .problem = {}, .repair = {}};
        if (auto current = runner_.save(family); !current) {
            check.problem = "cannot read the rules: " + current.error().message();
        } else {
            check.problem = describe_rule_changes(*installed, installed_rules(*current));
        }
        if (!check.problem.empty()) {
            // Install again, keeping the old expectation if that fails: the next check then
            // still sees the difference and tries again.
            auto expected = *installed;
            check.repair = apply_and_remember(family);
            if (!check.repair) {
                installed_[index_of(family)] = std::move(expected);
            }
        }
        checks.push_back(std::move(check));
    }
    return checks;
}

} // namespace pw::interception
