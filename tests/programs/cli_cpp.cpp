// C++ allocation lines for the memtrace CLI: operator new[], a reserved
// std::vector and a std::string, each at a marked line. The allocating
// frames are libstdc++'s; `memtrace top` must name these lines instead.
#include "common.h"
#include <string>
#include <vector>

static char *volatile arrays[300];
static std::vector<std::vector<double>> vectors;
static std::vector<std::string> strings;

__attribute__((noinline)) static void make_arrays() {
    for (int i = 0; i < 300; i++) arrays[i] = new char[3000]; /* MARK:new_array */
}

__attribute__((noinline)) static void make_vectors() {
    vectors.reserve(64);
    for (int i = 0; i < 64; i++) {
        vectors.emplace_back();
        vectors.back().reserve(2500); /* MARK:vector_reserve */
    }
}

__attribute__((noinline)) static void make_strings() {
    strings.reserve(40);
    for (int i = 0; i < 40; i++) strings.emplace_back(6999, 'x'); /* MARK:string */
}

int main() {
    make_arrays();
    make_vectors();
    make_strings();
    snap_now();
    printf("done\n");
    return 0;
}
