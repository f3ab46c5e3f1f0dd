#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "dns/ip_domain_memory.h"
#include "firewall/decide.h"
#include "firewall/settings.h"
#include "network/attributor.h"
#include "network/broadcast_replies.h"
#include "network/connection_table.h"
#include "network/decision_stats.h"
#include "network/dns_client_directory.h"
#include "network/event_sink.h"
#include "network/filter_pause.h"
#include "network/live_connections.h"
#include "packet/packet_info.h"
#include "profile/policy_provider.h"
#include "profile/prompts.h"
#include "state/retry_policy.h"

namespace pw::network {

// A process that sent on a UDP flow, as the eBPF records report it (issue 10 item 8).
struct UdpSender {
    ConnectionKey flow;           // local address unspecified when the socket did not know it
    std::int64_t pid = -1;        // the sending process
    std::uint64_t start_time = 0; // its start, clock ticks after boot; 0 when unknown
};

// Names a queued packet whose verdict is given later: which queue it came from (the daemon's
// reference: the queue's index and its socket's generation) and the kernel's packet id in it.
struct PacketRef {
    std::uint32_t queue = 0;
    std::uint32_t packet_id = 0;
    friend bool operator==(const PacketRef&, const PacketRef&) = default;
};

// The life of a packet in userspace, minus the kernel I/O: parse, find or create the connection,
// find its process and profile, decide, and answer with a mark. The daemon calls handle() for
// every queued packet; tests feed it packets they built. A connection's verdict can wait: for
// another attribution attempt (a socket not visible yet), or for a person's answer to a prompt
// (`filter/defaultAction: ask`); its packets then stay in the kernel's queue and get their
// verdict through the VerdictSink. Runs on the event-loop thread only.
class PacketProcessor {
public:
    struct Counters {
        std::uint64_t packets = 0;     // every packet handed to handle()
        std::uint64_t malformed = 0;   // could not be parsed: dropped, never remembered
        std::uint64_t connections = 0; // new connections decided
        std::uint64_t known = 0;       // packets of connections already decided
        std::uint64_t table_full = 0;  // decided but not remembered
        std::uint64_t deferred = 0;    // new connections held for another attribution attempt
        std::uint64_t retries = 0;     // attribution attempts after the first
        std::uint64_t retry_found = 0; // deferred connections a retry attributed
        std::uint64_t retry_gave_up = 0;
        std::uint64_t pending_full = 0;    // decided at once: too many connections were waiting
        std::uint64_t held = 0;            // connections held for a prompt
        std::uint64_t prompts_refused = 0; // blocked at once: too many open prompts / held
        std::uint64_t held_packets_dropped = 0; // a held connection's packets beyond its share
        std::uint64_t answered = 0;             // held connections decided by an answer
        std::uint64_t unanswered = 0;           // held connections blocked: no answer in time
        std::uint64_t reevaluations = 0;        // reevaluate() calls
        std::uint64_t cut_over = 0;             // live connections whose verdict changed
        std::uint64_t udp_senders = 0;          // udp_sender_seen() calls
        std::uint64_t new_udp_owners = 0;       // live UDP connections decided again: a new sender
    };

    // Where the verdicts of packets that handle() held back go: verdict() for each, then
    // flush() once for the batch.
    class VerdictSink {
    public:
        virtual ~VerdictSink() = default;
        virtual void verdict(PacketRef packet, std::uint32_t mark) = 0;
        virtual void flush() = 0;
    };

    // All references are borrowed and must outlive the processor. Without an attributor,
    // connections carry no process.
    PacketProcessor(profile::PolicyProvider& policies, ConnectionTable& table, EventSink& events,
                    const Clock& clock, Attributor* attributor = nullptr,
                    state::RetryPolicy retry_policy = {})
        : policies_(policies),
          table_(table),
          events_(events),
          clock_(clock),
          attributor_(attributor),
          retry_policy_(retry_policy) {}

    PacketProcessor(const PacketProcessor&) = delete;
    PacketProcessor& operator=(const PacketProcessor&) = delete;
    PacketProcessor(PacketProcessor&&) = delete;
    PacketProcessor& operator=(PacketProcessor&&) = delete;
    ~PacketProcessor() = default;

    // Receives the verdicts of deferred and held packets. Required before handle() can defer
    // anything: without a sink, nothing is held (attribution is not retried, ask blocks).
    void set_verdict_sink(VerdictSink& sink) { verdicts_ = &sink; }

    // With the nameserver (issue 4): outbound connections take their domain from `memory` (the
    // profile's scope, then the global one), and the processes behind DNS flows that go to our
    // nameserver (directly or redirected) are recorded in `clients` for the nameserver to find.
    void enable_dns(DnsClientDirectory& clients, const dns::IpDomainMemory& memory) {
        dns_clients_ = &clients;
        domain_memory_ = &memory;
    }

    // With prompts (issue 9): a connection whose decision is "ask" is held until `prompts`
    // closes its prompt. Without them, ask blocks (the decision's fallback verdict).
    void enable_prompts(profile::PromptBroker& prompts);

    // With a pause (issue 11): while `pause` is active, nothing is blocked or asked
    // (FilterPause::apply); the caller re-evaluates when it starts or ends.
    void set_pause(const FilterPause& pause) { pause_ = &pause; }

    // With re-evaluation (issue 9 item 5): every decided connection is registered in `live`
    // until it ends, so that a change of settings can decide it again.
    void enable_live_connections(LiveConnections& live) { live_ = &live; }

    // Decides again the live and held connections that `filter` selects, with the settings as
    // they are now (the PolicyProvider's). A live connection whose mark changes is cut over: its
    // connection-table entry at once, and the returned changes are for the caller to apply to
    // the kernel (conntrack); its `decided` event is written again with the new reason. A live
    // connection is never held for a prompt afterwards: if it would be asked now, it keeps its
    // verdict. A held connection that no longer asks is decided and its packets answered.
    [[nodiscard]] std::vector<MarkChange> reevaluate(const LiveFilter& filter);

    // The kernel forgot the connection (conntrack destroy event): it is live no more.
    void connection_ended(const ConnectionKey& key);

    // A process sent on a UDP flow with a socket no record named for it (issue 10 item 8). A
    // live outbound connection of that flow decided for another process (a program reusing the
    // local port and destination of one that is gone, or still sending) is decided again for the
    // new sender, as a re-evaluation would: a "decided" event names it, its connection-table
    // entry changes at once, and the returned changes are for the caller to apply to the kernel
    // (the conntrack mark, which would otherwise go on passing the new sender's packets with
    // the old verdict). Should the new sender's decision be "ask", the connection is forgotten
    // (change to mark 0, temporary) and its next packet held as a new one. Connections of the
    // special identities (kernel, portwarden ...) are left alone.
    [[nodiscard]] std::vector<MarkChange> udp_sender_seen(const UdpSender& sender);

    // Returns the mark for this packet's NF_ACCEPT verdict, or nullopt when the decision waits
    // (another attribution attempt, or a prompt): the verdict then goes to the VerdictSink,
    // together with those of the connection's later packets. Malformed packets get the
    // temporary drop mark: counted, dropped, never remembered.
    [[nodiscard]] std::optional<std::uint32_t> handle(packet::Direction direction,
                                                      std::span<const std::uint8_t> bytes,
                                                      PacketRef ref = {});

    // When run_due_retries() has work next; nullopt when nothing waits.
    [[nodiscard]] std::optional<Clock::TimePoint> next_retry_at() const;

    // Looks up again every connection whose retry is due and decides those found or out of
    // time. The daemon calls it from a timer armed at next_retry_at().
    void run_due_retries();

    // Decides every waiting connection now with what is known, held ones as unanswered (at
    // shutdown, while the queues are still bound).
    void decide_all_waiting();

    [[nodiscard]] std::size_t pending_connections() const { return pending_.size(); }
    [[nodiscard]] std::size_t held_connections() const { return held_.size(); }

    // Forgets connections past their lifetime; the daemon calls this from a timer.
    std::size_t expire_connections() { return table_.expire(clock_.now()); }

    [[nodiscard]] const Counters& counters() const { return counters_; }
    [[nodiscard]] const DecisionStats& decision_stats() const { return decision_stats_; }
    // The outbound broadcasts and multicasts remembered for their answers (decide() step
    // "broadcast reply").
    [[nodiscard]] const BroadcastReplies& broadcast_replies() const { return broadcasts_; }

    // Connections waiting for attribution at once at most; beyond it, new ones are decided
    // without waiting.
    static constexpr std::size_t kMaxPendingConnections = 4096;
    // Held for prompts: the packets stay in the kernel's queue, which must never fill up with
    // them (other applications' connections would be dropped), so both are bounded well below
    // the queue's length. A held connection's packets beyond its share (a UDP sender that does
    // not wait) are dropped one by one; a connection that would exceed the total is blocked at
    // once ("too many open prompts").
    static constexpr std::size_t kMaxHeldConnections = 1024;
    static constexpr std::size_t kMaxHeldPacketsPerConnection = 8;

private:
    struct PendingConnection {
        std::uint64_t id = 0;
        firewall::ConnectionFacts facts;
        Attribution fallback; // the answer to use when the retries run out
        int attempts = 1;
        Clock::TimePoint first_attempt;
        Clock::TimePoint next_attempt;
        std::vector<PacketRef> packets;
    };
    struct HeldConnection {
        std::uint64_t id = 0;
        std::uint64_t prompt = 0;
        firewall::ConnectionFacts facts;
        std::shared_ptr<const firewall::FilterSettings> settings;
        firewall::Decision fallback; // what applies when nobody answers
        std::vector<PacketRef> packets;
    };

    std::optional<std::uint32_t> start_new_connection(const packet::PacketInfo& packet,
                                                      packet::Direction direction,
                                                      const ConnectionKey& key, PacketRef ref,
                                                      Clock::TimePoint now);
    void add_domain(firewall::ConnectionFacts& facts, Clock::TimePoint now) const;
    // firewall::decide(), then the pause (if any).
    [[nodiscard]] firewall::Decision decide_now(const firewall::FilterSettings& settings,
                                                const firewall::ConnectionFacts& facts) const;
    void remember_dns_client(const firewall::ConnectionFacts& facts,
                             const firewall::FilterSettings& settings,
                             const firewall::Decision& decision, Clock::TimePoint now);
    // Decides a connection whose facts are complete: the mark for its `packets` (which the
    // caller answers), or nullopt when it is held for a prompt (then they are held with it).
    std::optional<std::uint32_t> decide(std::uint64_t id, firewall::ConnectionFacts& facts,
                                        const ConnectionKey& key, std::vector<PacketRef>& packets,
                                        Clock::TimePoint now);
    // Remembers and reports a final decision; returns its mark.
    std::uint32_t finish(std::uint64_t id, const firewall::ConnectionFacts& facts,
                         const firewall::FilterSettings& settings,
                         const firewall::Decision& decision, const ConnectionKey& key,
                         Clock::TimePoint now);
    // Holds a connection for a prompt, taking its `packets`; when it cannot be held (limits,
    // nobody to ask), the decision to apply at once instead.
    std::optional<firewall::Decision> hold(std::uint64_t id, const firewall::ConnectionFacts& facts,
                                           const profile::Policy& policy,
                                           const firewall::Decision& decision,
                                           const ConnectionKey& key,
                                           std::vector<PacketRef>& packets);
    void on_prompt_closed(profile::PromptEvent event, const profile::Prompt& prompt,
                          const profile::PromptAnswer* answer);
    void send(std::span<const PacketRef> packets, std::uint32_t mark);
    [[nodiscard]] firewall::ProcessFacts new_sender_facts(const firewall::ConnectionFacts& facts,
                                                          const UdpSender& sender);
    [[nodiscard]] std::optional<MarkChange> redecide_for_new_sender(
        const ConnectionKey& key, const LiveConnection& connection, const UdpSender& sender);
    void reevaluate_held(const LiveFilter& filter);

    profile::PolicyProvider& policies_;
    ConnectionTable& table_;
    EventSink& events_;
    const Clock& clock_;
    Attributor* attributor_;
    VerdictSink* verdicts_ = nullptr;
    DnsClientDirectory* dns_clients_ = nullptr;
    const dns::IpDomainMemory* domain_memory_ = nullptr;
    profile::PromptBroker* prompts_ = nullptr;
    LiveConnections* live_ = nullptr;
    BroadcastReplies broadcasts_;
    const FilterPause* pause_ = nullptr;
    state::RetryPolicy retry_policy_;
    std::unordered_map<ConnectionKey, PendingConnection, ConnectionKeyHash> pending_;
    std::unordered_map<ConnectionKey, HeldConnection, ConnectionKeyHash> held_;
    Counters counters_;
    DecisionStats decision_stats_;
    std::uint64_t next_connection_id_ = 1;
    bool stopping_ = false; // decide_all_waiting() ran: nothing is held any more
};

} // namespace pw::network
