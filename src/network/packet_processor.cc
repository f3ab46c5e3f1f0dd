#include "network/packet_processor.h"

#include <utility>

#include "firewall/decide.h"
#include "firewall/ip_scope.h"
#include "network/dns_query_policy.h"
#include "packet/packet_parser.h"
#include "packet/verdict.h"

namespace pw::network {
namespace {

firewall::ConnectionFacts facts_from_packet(const packet::PacketInfo& packet,
                                            packet::Direction direction, const ConnectionKey& key) {
    firewall::ConnectionFacts facts;
    facts.direction = direction;
    facts.ip_family = packet.ip_family;
    facts.protocol = packet.protocol;
    facts.local_address = key.local_address;
    facts.local_port = key.local_port;
    facts.remote_address = key.remote_address;
    facts.remote_port = key.remote_port;
    facts.icmp_type = packet.icmp_type;
    return facts;
}

// " (profile match tie: ...)": a tie is never broken silently.
void add_tie(firewall::Decision& decision, const std::string& tie) {
    if (!tie.empty()) {
        decision.reason += " (" + tie + ")";
    }
}

// "(app, profile 'curl')" for reasons that rest on a prompt.
std::string profile_note(const firewall::FilterSettings& settings) {
    return settings.profile.id.empty() ? std::string()
                                       : " (profile '" + settings.profile.name + "')";
}

} // namespace

firewall::Decision PacketProcessor::decide_now(const firewall::FilterSettings& settings,
                                               const firewall::ConnectionFacts& facts) const {
    firewall::Decision decision = firewall::decide(settings, facts);
    if (pause_ != nullptr) {
        pause_->apply(decision);
    }
    return decision;
}

void PacketProcessor::enable_prompts(profile::PromptBroker& prompts) {
    prompts_ = &prompts;
    prompts.subscribe([this](profile::PromptEvent event, const profile::Prompt& prompt,
                             const profile::PromptAnswer* answer) {
        if (event != profile::PromptEvent::Opened) {
            on_prompt_closed(event, prompt, answer);
        }
    });
}

std::optional<std::uint32_t> PacketProcessor::handle(packet::Direction direction,
                                                     std::span<const std::uint8_t> bytes,
                                                     PacketRef ref) {
    ++counters_.packets;
    const auto parsed = packet::parse_packet(bytes);
    if (!parsed) {
        ++counters_.malformed;
        return packet::mark::kDrop;
    }
    const ConnectionKey key = ConnectionKey::from_packet(*parsed, direction);
    const Clock::TimePoint now = clock_.now();
    if (ConnectionEntry* known = table_.find(key)) {
        ++counters_.known;
        ++known->packets;
        known->last_seen = now;
        return known->mark;
    }
    if (!pending_.empty()) {
        if (const auto waiting = pending_.find(key); waiting != pending_.end()) {
            // A later packet of a connection still being attributed shares its verdict.
            waiting->second.packets.push_back(ref);
            return std::nullopt;
        }
    }
    if (!held_.empty()) {
        if (const auto waiting = held_.find(key); waiting != held_.end()) {
            // Retransmissions share the wait for the answer, up to a share of the queue.
            if (waiting->second.packets.size() < kMaxHeldPacketsPerConnection) {
                waiting->second.packets.push_back(ref);
                return std::nullopt;
            }
            ++counters_.held_packets_dropped;
            return packet::mark::kDrop;
        }
    }
    return start_new_connection(*parsed, direction, key, ref, now);
}

std::optional<std::uint32_t> PacketProcessor::start_new_connection(const packet::PacketInfo& packet,
                                                                   packet::Direction direction,
                                                                   const ConnectionKey& key,
                                                                   PacketRef ref,
                                                                   Clock::TimePoint now) {
    const std::uint64_t id = next_connection_id_++;
    ++counters_.connections;
    // The facts are complete before anything is reported or decided: the process now, its
    // profile and the domain of the remote address in decide().
    firewall::ConnectionFacts facts = facts_from_packet(packet, direction, key);
    if (attributor_ != nullptr) {
        Attribution attribution = attributor_->attribute(facts);
        if (attribution.worth_retrying && verdicts_ != nullptr) {
            const auto delay = state::next_retry_delay(retry_policy_, 1, {});
            if (delay && pending_.size() < kMaxPendingConnections) {
                ++counters_.deferred;
                PendingConnection pending{.id = id,
                                          .facts = std::move(facts),
                                          .fallback = std::move(attribution),
                                          .attempts = 1,
                                          .first_attempt = now,
                                          .next_attempt = now + *delay,
                                          .packets = {ref}};
                pending_.emplace(key, std::move(pending));
                return std::nullopt;
            }
            if (delay) {
                ++counters_.pending_full;
            }
        }
        facts.process = std::move(attribution.process);
    }
    std::vector<PacketRef> packets = {ref};
    auto mark = decide(id, facts, key, packets, now);
    if (mark) {
        decision_stats_.timed(clock_.now() - now);
    }
    return mark;
}

void PacketProcessor::add_domain(firewall::ConnectionFacts& facts, Clock::TimePoint now) const {
    if (domain_memory_ == nullptr || facts.direction != packet::Direction::Outbound) {
        return;
    }
    const std::string_view scope =
        memory_scope(facts.profile, facts.process ? &*facts.process : nullptr);
    if (auto name = domain_memory_->lookup(scope, facts.remote_address, now)) {
        facts.domain = firewall::DomainFacts{
            .domain = std::move(name->domain),
            .cname_chain = std::move(name->cname_chain),
            .resolver_scope =
                name->resolver ? std::optional(firewall::ip_scope(*name->resolver)) : std::nullopt};
    }
}

void PacketProcessor::remember_dns_client(const firewall::ConnectionFacts& facts,
                                          const firewall::FilterSettings& settings,
                                          const firewall::Decision& decision,
                                          Clock::TimePoint now) {
    if (dns_clients_ == nullptr || facts.direction != packet::Direction::Outbound ||
        (facts.protocol != packet::protocol::kUdp && facts.protocol != packet::protocol::kTcp)) {
        return;
    }
    const bool to_our_nameserver =
        decision.verdict == packet::Verdict::RerouteToNameserver ||
        (decision.verdict == packet::Verdict::Accept &&
         firewall::is_nameserver_endpoint(settings, facts.remote_address, facts.remote_port));
    if (!to_our_nameserver) {
        return;
    }
    std::shared_ptr<const firewall::ProcessFacts> process;
    if (facts.process) {
        process = std::make_shared<const firewall::ProcessFacts>(*facts.process);
    }
    dns_clients_->record(facts.protocol, facts.local_address, facts.local_port, std::move(process),
                         now);
}

std::optional<std::uint32_t> PacketProcessor::decide(std::uint64_t id,
                                                     firewall::ConnectionFacts& facts,
                                                     const ConnectionKey& key,
                                                     std::vector<PacketRef>& packets,
                                                     Clock::TimePoint now) {
    const profile::Policy policy =
        policies_.policy_for(facts.process ? &*facts.process : nullptr, facts.direction);
    const firewall::FilterSettings& settings = *policy.settings;
    facts.profile = settings.profile;
    add_domain(facts, now);
    if (facts.direction == packet::Direction::Inbound) {
        facts.answers_broadcast_to = broadcasts_.answered(facts, now);
    }
    events_.connection_new(id, facts);
    firewall::Decision decision = decide_now(settings, facts);
    add_tie(decision, policy.tie);
    if (decision.outcome == firewall::Outcome::Ask) {
        auto refused = hold(id, facts, policy, decision, key, packets);
        if (!refused) {
            return std::nullopt;
        }
        decision = std::move(*refused);
    }
    return finish(id, facts, settings, decision, key, now);
}

std::optional<firewall::Decision> PacketProcessor::hold(
    std::uint64_t id, const firewall::ConnectionFacts& facts, const profile::Policy& policy,
    const firewall::Decision& decision, const ConnectionKey& key, std::vector<PacketRef>& packets) {
    const firewall::FilterSettings& settings = *policy.settings;
    const auto refuse = [&](std::string_view why) {
        ++counters_.prompts_refused;
        firewall::Decision blocked = decision;
        blocked.outcome = firewall::Outcome::Decided;
        blocked.persistence = packet::Persistence::Temporary;
        blocked.reason = std::string(why) + profile_note(settings);
        blocked.step = firewall::DecisionStep::Prompt;
        return blocked;
    };
    if (prompts_ == nullptr || verdicts_ == nullptr || stopping_) {
        firewall::Decision blocked = decision;
        blocked.outcome = firewall::Outcome::Decided;
        blocked.persistence = packet::Persistence::Temporary;
        blocked.reason +=
            stopping_ ? " (portwarden is stopping: nobody can answer)" : " (nobody can be asked)";
        return blocked;
    }
    if (held_.size() >= kMaxHeldConnections) {
        return refuse("too many open prompts");
    }
    profile::PromptSubject subject;
    subject.profile = settings.profile;
    if (facts.process) {
        subject.executable =
            facts.process->identity.empty() ? facts.process->executable : facts.process->identity;
        subject.pid = facts.process->pid;
        subject.process_start = facts.process->start_time;
    }
    subject.direction = facts.direction;
    subject.protocol = facts.protocol;
    if (facts.domain) {
        subject.domain = facts.domain->domain;
    }
    subject.remote_address = facts.remote_address;
    subject.remote_port = facts.remote_port;
    subject.local_port = facts.local_port;
    const auto prompt = prompts_->hold(subject, settings.ask_timeout);
    if (!prompt) {
        return refuse("too many open prompts");
    }
    ++counters_.held;
    held_.emplace(key, HeldConnection{.id = id,
                                      .prompt = *prompt,
                                      .facts = facts,
                                      .settings = policy.settings,
                                      .fallback = decision,
                                      .packets = std::move(packets)});
    return std::nullopt;
}

void PacketProcessor::on_prompt_closed(profile::PromptEvent event, const profile::Prompt& prompt,
                                       const profile::PromptAnswer* answer) {
    const Clock::TimePoint now = clock_.now();
    bool sent = false;
    for (auto entry = held_.begin(); entry != held_.end();) {
        if (entry->second.prompt != prompt.id) {
            ++entry;
            continue;
        }
        HeldConnection held = std::move(entry->second);
        const ConnectionKey key = entry->first;
        entry = held_.erase(entry);
        firewall::Decision decision;
        std::shared_ptr<const firewall::FilterSettings> settings = held.settings;
        if (event == profile::PromptEvent::Answered && answer != nullptr) {
            ++counters_.answered;
            // The answer's rule (if any) is in the settings by now: decide anew, so that the
            // connection carries the rule that decided it; an answer without a rule (once)
            // decides it directly.
            const profile::Policy policy = policies_.policy_for(
                held.facts.process ? &*held.facts.process : nullptr, held.facts.direction);
            settings = policy.settings;
            decision = decide_now(*settings, held.facts);
            if (decision.outcome == firewall::Outcome::Ask) {
                const bool permit = answer->verdict == profile::PromptVerdict::Permit;
                decision = firewall::decide_as(
                    *settings, held.facts,
                    permit ? packet::Verdict::Accept : packet::Verdict::Block,
                    std::string("prompt answered: ") + (permit ? "permit " : "block ") +
                        profile::duration_text(*answer) + profile_note(*settings));
            }
        } else {
            ++counters_.unanswered;
            decision = held.fallback;
            decision.outcome = firewall::Outcome::Decided;
            decision.persistence = packet::Persistence::Temporary;
            decision.reason = "no answer to the prompt" + profile_note(*settings);
            decision.step = firewall::DecisionStep::Prompt;
        }
        const std::uint32_t mark = finish(held.id, held.facts, *settings, decision, key, now);
        send(held.packets, mark);
        sent = true;
    }
    if (sent && verdicts_ != nullptr) {
        verdicts_->flush();
        events_.flush();
    }
}

std::uint32_t PacketProcessor::finish(std::uint64_t id, const firewall::ConnectionFacts& facts,
                                      const firewall::FilterSettings& settings,
                                      const firewall::Decision& decision, const ConnectionKey& key,
                                      Clock::TimePoint now) {
    remember_dns_client(facts, settings, decision, now);
    if (decision.verdict == packet::Verdict::Accept) {
        broadcasts_.sent(key, facts, now);
    }
    if (decision.rule) {
        policies_.rule_matched(settings, *decision.rule);
    }
    const std::uint32_t mark = packet::mark_for(decision.verdict, decision.persistence);
    const bool remembered = table_.insert(key, ConnectionEntry{.id = id,
                                                               .mark = mark,
                                                               .persistence = decision.persistence,
                                                               .last_seen = now,
                                                               .packets = 1});
    if (!remembered) {
        ++counters_.table_full;
    }
    if (live_ != nullptr) {
        live_->add(key, facts,
                   NewLiveConnection{.id = id,
                                     .profile_id = settings.profile.id,
                                     .mark = mark,
                                     .persistence = decision.persistence,
                                     .reason = decision.reason,
                                     .decided_at = now});
    }
    decision_stats_.decided(decision);
    events_.connection_decided(id, facts, decision, mark);
    return mark;
}

std::vector<MarkChange> PacketProcessor::reevaluate(const LiveFilter& filter) {
    ++counters_.reevaluations;
    reevaluate_held(filter);
    if (live_ == nullptr) {
        return {};
    }
    const Clock::TimePoint now = clock_.now();
    auto changes = live_->reevaluate(
        filter,
        [this](const LiveConnection& connection) -> LiveDecision {
            const profile::Policy policy =
                policies_.policy_for(connection.process(), connection.direction());
            firewall::ConnectionFacts facts = connection.facts();
            facts.profile = policy.settings->profile;
            firewall::Decision decision = decide_now(*policy.settings, facts);
            if (decision.outcome == firewall::Outcome::Ask) {
                return connection.decision(); // decided once; a live connection is not asked
            }
            add_tie(decision, policy.tie);
            const std::uint32_t mark = packet::mark_for(decision.verdict, decision.persistence);
            if (mark != connection.mark()) {
                decision.reason = "re-evaluated: " + decision.reason;
                events_.connection_decided(connection.id(), facts, decision, mark);
            }
            return {.mark = mark, .persistence = decision.persistence, .reason = decision.reason};
        },
        now);
    for (const MarkChange& change : changes) {
        ++counters_.cut_over;
        if (ConnectionEntry* entry = table_.find(change.key)) {
            entry->mark = change.new_mark;
            entry->persistence = change.new_persistence;
            entry->last_seen = now;
        }
    }
    if (!changes.empty()) {
        events_.flush();
    }
    return changes;
}

void PacketProcessor::reevaluate_held(const LiveFilter& filter) {
    const Clock::TimePoint now = clock_.now();
    bool sent = false;
    for (auto entry = held_.begin(); entry != held_.end();) {
        HeldConnection& held = entry->second;
        if (filter.profile_id && *filter.profile_id != held.settings->profile.id) {
            ++entry;
            continue;
        }
        const profile::Policy policy = policies_.policy_for(
            held.facts.process ? &*held.facts.process : nullptr, held.facts.direction);
        firewall::Decision decision = decide_now(*policy.settings, held.facts);
        if (decision.outcome == firewall::Outcome::Ask) {
            ++entry;
            continue;
        }
        add_tie(decision, policy.tie);
        HeldConnection done = std::move(held);
        const ConnectionKey key = entry->first;
        entry = held_.erase(entry);
        if (prompts_ != nullptr) {
            prompts_->release(done.prompt);
        }
        const std::uint32_t mark =
            finish(done.id, done.facts, *policy.settings, decision, key, now);
        send(done.packets, mark);
        sent = true;
    }
    if (sent && verdicts_ != nullptr) {
        verdicts_->flush();
    }
}

void PacketProcessor::connection_ended(const ConnectionKey& key) {
    broadcasts_.ended(key, clock_.now());
    if (live_ != nullptr) {
        live_->remove(key);
    }
}

namespace {

// Whether `connection` was decided for another process than `sender`. Only connections of an
// ordinary, known process are compared: the special identities have no PID to compare with.
bool decided_for_another_process(const LiveConnection& connection, const UdpSender& sender) {
    if (connection.direction() != packet::Direction::Outbound || connection.process() == nullptr) {
        return false;
    }
    const firewall::ProcessFacts& process = *connection.process();
    if (process.kind != firewall::ProcessKind::Process || process.pid <= 0 || sender.pid <= 0) {
        return false;
    }
    if (process.pid != sender.pid) {
        return true;
    }
    // The same PID, reused by a new process (start times known on both sides and different).
    return process.start_time != 0 && sender.start_time != 0 &&
           process.start_time != sender.start_time;
}

} // namespace

std::vector<MarkChange> PacketProcessor::udp_sender_seen(const UdpSender& sender) {
    ++counters_.udp_senders;
    std::vector<MarkChange> changes;
    if (live_ == nullptr) {
        return changes;
    }
    std::vector<ConnectionKey> candidates;
    if (sender.flow.local_address.is_unspecified()) {
        candidates = live_->find_udp_any_local(sender.flow);
    } else {
        candidates.push_back(sender.flow);
    }
    for (const ConnectionKey& key : candidates) {
        const LiveConnection* connection = live_->find(key);
        if (connection == nullptr || !decided_for_another_process(*connection, sender)) {
            continue;
        }
        ++counters_.new_udp_owners;
        if (auto change = redecide_for_new_sender(key, *connection, sender)) {
            changes.push_back(*change);
        }
    }
    if (!changes.empty()) {
        events_.flush();
    }
    return changes;
}

firewall::ProcessFacts PacketProcessor::new_sender_facts(const firewall::ConnectionFacts& facts,
                                                         const UdpSender& sender) {
    // The flow record names the new sender now: attribution as for a new connection. Should it
    // name someone else (a socket table that still sees the old socket), the report's PID is
    // what is known for sure.
    if (attributor_ != nullptr) {
        auto attribution = attributor_->attribute(facts);
        if (attribution.process && attribution.process->pid == sender.pid) {
            return std::move(*attribution.process);
        }
    }
    firewall::ProcessFacts process;
    process.pid = sender.pid;
    process.start_time = sender.start_time;
    process.source = "ebpf";
    return process;
}

std::optional<MarkChange> PacketProcessor::redecide_for_new_sender(const ConnectionKey& key,
                                                                   const LiveConnection& connection,
                                                                   const UdpSender& sender) {
    const Clock::TimePoint now = clock_.now();
    // `connection` goes with the add() below: what is needed of it is copied first.
    firewall::ConnectionFacts facts = connection.facts();
    facts.process = new_sender_facts(facts, sender);
    const profile::Policy policy = policies_.policy_for(&*facts.process, facts.direction);
    facts.profile = policy.settings->profile;
    firewall::Decision decision = decide_now(*policy.settings, facts);
    MarkChange change{.key = key,
                      .direction = facts.direction,
                      .id = connection.id(),
                      .old_mark = connection.mark(),
                      .new_mark = 0,
                      .old_persistence = connection.persistence(),
                      .new_persistence = packet::Persistence::Temporary};
    if (decision.outcome == firewall::Outcome::Ask) {
        // A live connection cannot be held for a prompt: forget it, and its next packet is a
        // new connection of the new sender, held like any other (the caller clears the mark).
        live_->remove(key);
        table_.erase(key);
        return change;
    }
    add_tie(decision, policy.tie);
    decision.reason = "new sender on a live UDP flow: " + decision.reason;
    const std::uint32_t mark = packet::mark_for(decision.verdict, decision.persistence);
    // Always reported, even with the same verdict: the event names the process that sends now.
    events_.connection_decided(change.id, facts, decision, mark);
    if (ConnectionEntry* entry = table_.find(key)) {
        entry->mark = mark;
        entry->persistence = decision.persistence;
        entry->last_seen = now;
    }
    change.new_mark = mark;
    change.new_persistence = decision.persistence;
    live_->add(key, facts,
               NewLiveConnection{.id = change.id,
                                 .profile_id = policy.settings->profile.id,
                                 .mark = mark,
                                 .persistence = decision.persistence,
                                 .reason = decision.reason,
                                 .decided_at = now});
    if (change.new_mark == change.old_mark && change.new_persistence == change.old_persistence) {
        return std::nullopt; // nothing to change in the kernel
    }
    ++counters_.cut_over;
    return change;
}

void PacketProcessor::send(std::span<const PacketRef> packets, std::uint32_t mark) {
    if (verdicts_ == nullptr) {
        return;
    }
    for (const PacketRef packet : packets) {
        verdicts_->verdict(packet, mark);
    }
}

std::optional<Clock::TimePoint> PacketProcessor::next_retry_at() const {
    std::optional<Clock::TimePoint> earliest;
    for (const auto& [key, pending] : pending_) {
        if (!earliest || pending.next_attempt < *earliest) {
            earliest = pending.next_attempt;
        }
    }
    return earliest;
}

void PacketProcessor::run_due_retries() {
    const Clock::TimePoint now = clock_.now();
    bool sent = false;
    for (auto entry = pending_.begin(); entry != pending_.end();) {
        PendingConnection& pending = entry->second;
        if (pending.next_attempt > now) {
            ++entry;
            continue;
        }
        ++counters_.retries;
        Attribution attribution = attributor_->attribute(pending.facts);
        ++pending.attempts;
        if (attribution.worth_retrying) {
            const auto elapsed =
                std::chrono::duration_cast<std::chrono::microseconds>(now - pending.first_attempt);
            if (const auto delay =
                    state::next_retry_delay(retry_policy_, pending.attempts, elapsed)) {
                pending.next_attempt = now + *delay;
                ++entry;
                continue;
            }
            ++counters_.retry_gave_up;
        } else {
            ++counters_.retry_found;
        }
        PendingConnection done = std::move(pending);
        const ConnectionKey key = entry->first;
        entry = pending_.erase(entry);
        done.facts.process = std::move(attribution.process);
        if (const auto mark = decide(done.id, done.facts, key, done.packets, now)) {
            send(done.packets, *mark);
        }
        sent = true;
    }
    if (sent && verdicts_ != nullptr) {
        verdicts_->flush();
    }
}

void PacketProcessor::decide_all_waiting() {
    stopping_ = true;
    const Clock::TimePoint now = clock_.now();
    // Nobody will answer any more: held connections get what applies without an answer.
    while (!held_.empty()) {
        profile::Prompt closed;
        closed.id = held_.begin()->second.prompt;
        on_prompt_closed(profile::PromptEvent::Expired, closed, nullptr);
    }
    for (auto& [key, pending] : pending_) {
        pending.facts.process = std::move(pending.fallback.process);
        if (const auto mark = decide(pending.id, pending.facts, key, pending.packets, now)) {
            send(pending.packets, *mark);
        }
    }
    pending_.clear();
    if (verdicts_ != nullptr) {
        verdicts_->flush();
    }
}

} // namespace pw::network
