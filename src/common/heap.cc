#include "common/heap.h"

#include <malloc.h>

namespace pw {

std::size_t trim_free_heap(std::size_t threshold) {
    const struct mallinfo2 totals = ::mallinfo2();
    // fordblks: free bytes inside the arenas; keepcost: the part at the top, which free()
    // trims by itself past M_TRIM_THRESHOLD. The rest sits between live blocks: only
    // malloc_trim() returns those pages (madvise), without moving anything.
    const std::size_t free_bytes = totals.fordblks;
    if (free_bytes > threshold) {
        ::malloc_trim(0);
    }
    return free_bytes;
}

} // namespace pw
