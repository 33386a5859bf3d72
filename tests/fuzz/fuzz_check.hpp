// What the fuzz targets share: FUZZ_CHECK, a property that must hold for every input. A
// failed check aborts, which libFuzzer reports as a crash with the input saved, and the
// replay tests (replay_main.cpp) as a failed test.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                \
    do {                                                                                     \
        if (!(condition)) {                                                                  \
            std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__,       \
                         #condition);                                                        \
            std::abort();                                                                    \
        }                                                                                    \
    } while (false)
