fn main() {
    std::process::exit(memtrace::cli::main());
}
