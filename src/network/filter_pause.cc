#include "network/filter_pause.h"

#include "network/event_writer.h"

namespace pw::network {

void FilterPause::pause(WallClock::time_point until) {
    until_ = until;
    note_ = "filtering paused until " + utc_timestamp(until);
}

void FilterPause::apply(firewall::Decision& decision) const {
    if (!until_) {
        return;
    }
    const bool stops = decision.outcome == firewall::Outcome::Ask ||
                       decision.verdict == packet::Verdict::Block ||
                       decision.verdict == packet::Verdict::Drop;
    if (!stops) {
        return;
    }
    const char* would = decision.outcome == firewall::Outcome::Ask   ? "ask"
                        : decision.verdict == packet::Verdict::Block ? "block"
                                                                     : "drop";
    decision.reason = note_ + " (would " + would + ": " + decision.reason + ")";
    decision.verdict = packet::Verdict::Accept;
    decision.outcome = firewall::Outcome::Decided;
    decision.step = firewall::DecisionStep::Pause;
    // The rule that would have blocked did not decide: it does not count a match.
    decision.rule.reset();
}

} // namespace pw::network
