#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/result.h"

namespace pw::interception {

// Deletes the conntrack entries (IPv4 and IPv6) whose mark is one of `marks`, so that every
// such flow is queued and decided afresh. Used at start (verdicts of a previous run must not
// outlive it) and at stop. Returns how many entries were deleted. Blocking; start/stop only.
[[nodiscard]] Result<std::size_t> delete_conntrack_entries_with_marks(
    std::span<const std::uint32_t> marks);

} // namespace pw::interception
