#include "dns/answer_cache.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <string_view>
#include <utility>

namespace pw::dns {

// One stored answer. Entries live in a list ordered by use (most recent first), so that their
// addresses never change; the hash index holds views of their names, which is what lets a
// lookup search with the question's own name and allocate nothing.
struct AnswerCache::Entry {
    std::string name;
    std::uint16_t type = 0;
    std::uint16_t qclass = 0;
    std::shared_ptr<const Answer> answer;
    Clock::TimePoint stored_at;
    Clock::TimePoint expires_at;
};

namespace {

// A question as the index sees it: a view of the name (the entry's, or the question's when
// looking up).
struct KeyView {
    std::string_view name;
    std::uint16_t type = 0;
    std::uint16_t qclass = 0;
    friend bool operator==(const KeyView&, const KeyView&) = default;
};

struct KeyViewHash {
    std::size_t operator()(const KeyView& key) const noexcept {
        const std::size_t name_hash = std::hash<std::string_view>{}(key.name);
        return name_hash ^ ((std::size_t{key.type} << 16U | key.qclass) * 0x9e3779b97f4a7c15ULL);
    }
};

KeyView key_of(const Question& question) {
    return KeyView{.name = question.name, .type = question.type, .qclass = question.qclass};
}

// RFC 2308 2.2: NODATA is NOERROR with nothing in the answer section.
bool is_negative(const Answer& answer) {
    if (answer.rcode == Rcode::NxDomain) {
        return true;
    }
    return answer.addresses.empty() && answer.wire.answer_count == 0;
}

} // namespace

struct AnswerCache::Index {
    using Order = std::list<Entry>;
    Order by_use; // most recently used first
    std::unordered_map<KeyView, Order::iterator, KeyViewHash> by_question;

    void erase(Order::iterator entry) {
        by_question.erase(
            KeyView{.name = entry->name, .type = entry->type, .qclass = entry->qclass});
        by_use.erase(entry);
    }
};

AnswerCache::AnswerCache(CacheLimits limits) : limits_(limits), index_(std::make_unique<Index>()) {}

AnswerCache::~AnswerCache() = default;
AnswerCache::AnswerCache(AnswerCache&&) noexcept = default;
AnswerCache& AnswerCache::operator=(AnswerCache&&) noexcept = default;

std::optional<AnswerCache::Hit> AnswerCache::lookup(const Question& question,
                                                    Clock::TimePoint now) {
    const auto found = index_->by_question.find(key_of(question));
    if (found == index_->by_question.end()) {
        ++counters_.misses;
        return std::nullopt;
    }
    const Index::Order::iterator entry = found->second;
    if (entry->expires_at <= now) {
        index_->erase(entry);
        ++counters_.misses;
        return std::nullopt;
    }
    index_->by_use.splice(index_->by_use.begin(), index_->by_use, entry);
    ++counters_.hits;
    // A clock that went backwards (it should not: it is steady) ages nothing.
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - entry->stored_at);
    const auto age_seconds = std::clamp<std::chrono::seconds::rep>(
        age.count(), 0, std::numeric_limits<std::uint32_t>::max());
    return Hit{.answer = entry->answer, .age_seconds = static_cast<std::uint32_t>(age_seconds)};
}

std::chrono::seconds AnswerCache::insert(const Question& question,
                                         std::shared_ptr<const Answer> answer,
                                         std::optional<std::uint32_t> ttl, Clock::TimePoint now) {
    if (!answer || limits_.max_entries == 0) {
        return std::chrono::seconds(0);
    }
    if (answer->rcode != Rcode::NoError && answer->rcode != Rcode::NxDomain) {
        return std::chrono::seconds(0);
    }
    // First, how long: negative answers (RFC 2308) by their SOA, or a fixed time without one;
    // positive ones by their TTL (one without a TTL gets the floor). Both within their clamps.
    // std::max then std::min rather than std::clamp: a misconfigured floor above the ceiling
    // must not be undefined behaviour.
    std::chrono::seconds keep(0);
    if (is_negative(*answer)) {
        keep = ttl ? std::min(std::max(std::chrono::seconds(*ttl), limits_.min_negative_ttl),
                              limits_.max_negative_ttl)
                   : limits_.negative_without_soa;
    } else {
        keep = std::min(std::max(std::chrono::seconds(ttl.value_or(0)), limits_.min_ttl),
                        limits_.max_ttl);
    }
    if (keep <= std::chrono::seconds(0)) {
        return std::chrono::seconds(0);
    }

    // Second, replace the entry for this question, or make room for a new one.
    if (const auto found = index_->by_question.find(key_of(question));
        found != index_->by_question.end()) {
        index_->erase(found->second);
    }
    while (index_->by_use.size() >= limits_.max_entries) {
        index_->erase(std::prev(index_->by_use.end()));
        ++counters_.evictions;
    }
    index_->by_use.push_front(Entry{.name = question.name,
                                    .type = question.type,
                                    .qclass = question.qclass,
                                    .answer = std::move(answer),
                                    .stored_at = now,
                                    .expires_at = now + keep});
    const Entry& entry = index_->by_use.front();
    index_->by_question.emplace(
        KeyView{.name = entry.name, .type = entry.type, .qclass = entry.qclass},
        index_->by_use.begin());
    ++counters_.insertions;
    return keep;
}

std::size_t AnswerCache::expire(Clock::TimePoint now) {
    std::size_t removed = 0;
    for (auto entry = index_->by_use.begin(); entry != index_->by_use.end();) {
        const auto next = std::next(entry);
        if (entry->expires_at <= now) {
            index_->erase(entry);
            ++removed;
        }
        entry = next;
    }
    return removed;
}

void AnswerCache::clear() {
    index_->by_question.clear();
    index_->by_use.clear();
}

std::size_t AnswerCache::size() const {
    return index_->by_use.size();
}

} // namespace pw::dns
