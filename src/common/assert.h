#pragma once

#include <cstdio>
#include <cstdlib>

// Invariants only: never for anything the network or the OS controls (CONVENTIONS rule 11).
#define PW_ASSERT(condition)                                                                       \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #condition); \
            std::abort();                                                                          \
        }                                                                                          \
    } while (false)
