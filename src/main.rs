use clap::Parser;

mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::Chosen = alloc::Chosen;

fn main() {
    let cli = restack::cli::Cli::parse();
    let code = match restack::commands::dispatch(cli) {
        Ok(exit) => exit as i32,
        Err(err) => restack::error::report(&err),
    };
    std::process::exit(code);
}
