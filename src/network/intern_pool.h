#pragma once

#include <cstddef>
#include <unordered_set>
#include <utility>

#include "common/assert.h"

namespace pw::network {

template <typename T, typename View, typename Hash>
class InternPool;

// The one shared, immutable copy of a value in an InternPool, and how many holders it has.
template <typename T>
class Interned {
public:
    explicit Interned(T value) : value_(std::move(value)) {}

    [[nodiscard]] const T& value() const { return value_; }
    [[nodiscard]] std::size_t references() const { return references_; }

private:
    template <typename, typename, typename>
    friend class InternPool;

    T value_;
    // Mutable: the pool's set hands out const elements; the count is not part of the value.
    mutable std::size_t references_ = 0;
};

// Shares equal values between their holders, so that a thousand connections of one process hold
// one copy of its facts (issue 9, memory). acquire() gives the one copy of a value, made on its
// first use; release() gives it back, and the last release frees it: nothing outlives its last
// holder. `View` is what callers look values up with, without building a T (std::string_view
// for std::string, a const reference for others); `Hash` hashes a View, and T must compare
// equal to a View with ==. Entries do not move: a holder may keep a pointer until it releases.
// Not thread-safe: its owner's thread only.
template <typename T, typename View, typename Hash>
class InternPool {
public:
    using Entry = Interned<T>;

    // The pooled copy of `value` (copied now if the pool has none), with one more holder.
    [[nodiscard]] const Entry& acquire(View value) {
        auto found = entries_.find(value);
        if (found == entries_.end()) {
            found = entries_.emplace(T(value)).first;
        }
        ++found->references_;
        return *found;
    }

    // One holder fewer; the last one frees the entry.
    void release(const Entry& entry) {
        // NOLINTNEXTLINE(modernize-use-std-print): PW_ASSERT's fprintf (no <print> in GCC 12)
        PW_ASSERT(entry.references_ > 0);
        if (--entry.references_ == 0) {
            entries_.erase(entries_.find(entry));
        }
    }

    // Distinct values held.
    [[nodiscard]] std::size_t size() const { return entries_.size(); }

private:
    // Entries are found by View without building a T (heterogeneous lookup).
    struct EntryHash {
        using is_transparent = void; // NOLINT(readability-identifier-naming): the standard's name
        std::size_t operator()(const Entry& entry) const noexcept {
            return Hash{}(static_cast<View>(entry.value_));
        }
        std::size_t operator()(View value) const noexcept { return Hash{}(value); }
    };
    struct EntryEqual {
        using is_transparent = void; // NOLINT(readability-identifier-naming): the standard's name
        bool operator()(const Entry& left, const Entry& right) const {
            return &left == &right || static_cast<View>(left.value_) == right.value_;
        }
        bool operator()(View left, const Entry& right) const { return right.value_ == left; }
        bool operator()(const Entry& left, View right) const { return left.value_ == right; }
    };

    std::unordered_set<Entry, EntryHash, EntryEqual> entries_;
};

} // namespace pw::network
