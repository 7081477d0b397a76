//! The `dephy-relay` binary: a thin wrapper around [`dephy_relay::cli`], with mimalloc as its
//! allocator (see `dephy_relay::memory`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dephy_relay::cli::main()
}
