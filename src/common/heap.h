#pragma once

namespace pw {

// Gives the heap's free memory back to the kernel. glibc keeps freed memory for reuse as long
// as the process lives: the start's load of 1,000 profiles, or one reply of the API that lists
// them, would otherwise stay resident in an idle daemon for good.
//
// Not for the packet path's rhythm: glibc walks every free chunk under the arena's lock, which
// takes ~100 ms on a fragmented heap of 50 MiB (and so does mallinfo2(), which is why there is
// no "only when much is free" test here). The daemon calls it after start and after API use,
// and only while its heap is small (few live connections).
void trim_free_heap();

} // namespace pw
