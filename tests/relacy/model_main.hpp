// One driver for every Relacy harness: `harness <model> [iterations] [random|bound]`.
// Each harness lists its models in a table and hands it to model_main, so the scheduler
// settings and the command line are the same for all of them.
#pragma once

#include <relacy/relacy.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rb_models {

typedef bool (*model_fn)(unsigned long iterations, bool bound);

struct model_entry {
    const char *name;
    model_fn run;
};

// The random scheduler by default; "bound" is the exhaustive search up to two preemptions,
// which is where ordering bugs in a handful of steps show up.
template <typename Model>
bool run(unsigned long iterations, bool bound)
{
    rl::test_params p;
    p.iteration_count = iterations;
    if (bound) {
        p.search_type = rl::fair_context_bound_scheduler_type;
        p.context_bound = 2;
    }
    return rl::simulate<Model>(p);
}

template <size_t N>
int model_main(int argc, char **argv, const model_entry (&models)[N])
{
    if (argc >= 2) {
        unsigned long iterations = argc > 2 ? std::strtoul(argv[2], 0, 10) : 100000;
        bool bound = argc > 3 && std::strcmp(argv[3], "bound") == 0;
        for (size_t i = 0; i < N; i++)
            if (!std::strcmp(argv[1], models[i].name))
                return models[i].run(iterations, bound) ? 0 : 1;
        std::fprintf(stderr, "unknown model %s\n", argv[1]);
    }
    std::fprintf(stderr, "usage: %s <model> [iterations] [random|bound]; models:", argv[0]);
    for (size_t i = 0; i < N; i++)
        std::fprintf(stderr, " %s", models[i].name);
    std::fprintf(stderr, "\n");
    return 2;
}

}  // namespace rb_models
