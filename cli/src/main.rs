//! `mictlanx`: the MictlanX command for people at a terminal.

use clap::{Parser, Subcommand};

/// MictlanX: put and get balls in buckets through routers.
#[derive(Debug, Parser)]
#[command(name = "mictlanx", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start an embedded local cluster, store a generated ball, read it back and verify it.
    Demo,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => {
            println!(
                "mictlanx demo: the embedded LocalCluster (router + 3 peers) is coming with the \
                 server; until then the SDK's foundation is tested with `cargo test --workspace`."
            );
            std::process::ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
