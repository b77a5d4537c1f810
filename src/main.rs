use clap::Parser;

/// glibc malloc showed up at ~9% of the engine's CPU under load; mimalloc is faster for the
/// many small, short-lived allocations of request handling.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = restack::cli::Cli::parse();
    let code = match restack::commands::dispatch(cli) {
        Ok(exit) => exit as i32,
        Err(err) => restack::error::report(&err),
    };
    std::process::exit(code);
}
