#pragma once

#include <cstddef>

namespace pw {

// Gives the heap's free memory back to the kernel when more than `threshold` bytes of it lie
// free. glibc keeps freed memory for reuse as long as the process lives: one reply of the API
// that lists 1,000 profiles, or the start's load of them, would otherwise stay resident in an
// idle daemon for good. Cheap when there is little to give back (one look at the allocator's
// totals); the daemon calls it once a second. Returns the bytes that were free before.
std::size_t trim_free_heap(std::size_t threshold);

} // namespace pw
