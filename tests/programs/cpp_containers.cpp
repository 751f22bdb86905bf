// C++ allocations reach malloc/free through libstdc++: new/delete,
// new[]/delete[], std::vector growth, std::string, std::map. The program
// computes the sizes it asks for (capacities, node sizes) and prints them.
// Also: exceptions thrown through allocating frames still work, and the
// program's own unwinder and backtrace() are the system's.
#include "common.h"
#include <dlfcn.h>
#include <execinfo.h>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unwind.h>
#include <vector>

struct Obj {
    char payload[1016];
};

struct S12 {
    int a, b, c;
};

struct Big {
    char data[900];
};

typedef std::map<int, Big> BigMap;
typedef std::_Rb_tree_node<BigMap::value_type> BigNode;

static Obj *volatile k_obj[50];
static char *volatile k_arr[100];

// Depth-first recursion where every frame owns heap memory; the innermost throws.
static int deep(int depth, std::vector<std::unique_ptr<char[]>> &sink) {
    std::unique_ptr<char[]> mine(new char[3333]);
    std::vector<int> local(depth + 10, depth);
    KEEP(mine.get());
    KEEP(local.data());
    if (depth == 0) throw std::runtime_error("bottom reached");
    int r = deep(depth - 1, sink) + local[0];
    sink.push_back(std::move(mine));
    return r;
}

static std::string where(void *fn) {
    Dl_info info;
    if (!dladdr(fn, &info) || !info.dli_fname) return "?";
    std::string s = info.dli_fname;
    return s.substr(s.rfind('/') + 1);
}

int main() {
    // new / delete
    for (int i = 0; i < 50; i++) k_obj[i] = new Obj();
    for (int i = 0; i < 20; i++) delete k_obj[i];
    // new[] / delete[]
    for (int i = 0; i < 100; i++) k_arr[i] = new char[1234];
    for (int i = 0; i < 60; i++) delete[] k_arr[i];

    // std::vector growth: 1000 push_backs, the capacity doubles from 1.
    std::vector<S12> grown;
    for (int i = 0; i < 1000; i++) grown.push_back(S12{i, i, i});
    KEEP(grown.data());
    size_t grown_bytes = grown.capacity() * sizeof(S12);

    std::vector<char> reserved;
    reserved.reserve(77777);
    KEEP(reserved.data());

    // std::string: heap buffers of capacity + 1 bytes.
    std::vector<std::string> strings;
    strings.reserve(20);
    for (int i = 0; i < 20; i++) strings.emplace_back(4999, 'a' + i % 26);
    size_t string_alloc = strings[0].capacity() + 1;
    for (auto &s : strings) CHECK(s.capacity() + 1 == string_alloc);

    // std::map: one node per element.
    BigMap m;
    for (int i = 0; i < 64; i++) m[i * 7].data[0] = (char)i;
    for (int i = 0; i < 16; i++) m.erase(i * 7);

    // Exceptions thrown through allocating frames.
    int caught = 0;
    for (int round = 0; round < 100; round++) {
        std::vector<std::unique_ptr<char[]>> sink;
        try {
            deep(8, sink);
        } catch (const std::runtime_error &e) {
            if (std::string(e.what()) == "bottom reached") caught++;
        }
        CHECK(sink.empty());
    }
    printf("caught=%d\n", caught);

    // The host's own unwinder and backtrace() are the system's, not the profiler's.
    void *bt[64];
    int n = backtrace(bt, 64);
    printf("backtrace_frames_ok=%d\n", n >= 2);
    printf("backtrace_from=%s\n", where((void *)&backtrace).c_str());
    printf("unwind_from=%s\n", where((void *)&_Unwind_RaiseException).c_str());

    snap_now();
    expect("1", sizeof(Obj), 30);
    expect("1", 1234, 40);
    expect("1", grown_bytes, 1);
    expect("1", 77777, 1);
    expect("1", 20 * sizeof(std::string), 1);
    expect("1", string_alloc, 20);
    expect("1", sizeof(BigNode), 48);
    expect("1", 3333, 0);

    for (int i = 20; i < 50; i++) delete k_obj[i];
    for (int i = 60; i < 100; i++) delete[] k_arr[i];
    m.clear();
    strings.resize(5);
    snap_now();
    expect("2", sizeof(Obj), 0);
    expect("2", 1234, 0);
    expect("2", sizeof(BigNode), 0);
    expect("2", string_alloc, 5);
    expect("2", grown_bytes, 1);
    printf("done\n");
    return 0;
}
