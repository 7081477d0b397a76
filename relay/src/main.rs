//! The `dephy-relay` binary: a thin wrapper around [`dephy_relay::cli`].

fn main() -> std::process::ExitCode {
    dephy_relay::cli::main()
}
