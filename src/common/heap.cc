#include "common/heap.h"

#include <malloc.h>

namespace pw {

void trim_free_heap() {
    // Returns whole free pages anywhere in the heap (madvise), not only at its top, and moves
    // nothing.
    ::malloc_trim(0);
}

} // namespace pw
