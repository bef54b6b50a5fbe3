//! `mictlanx`: the MictlanX command for people at a terminal.

mod demo;

use std::process::ExitCode;

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
    Demo {
        /// Size of the generated file (e.g. 64MB, 1GiB).
        #[arg(long, default_value = "64MB", value_parser = parse_size_arg)]
        size: u64,
        /// Peers in the embedded cluster.
        #[arg(long, default_value_t = 3)]
        peers: usize,
        /// Replicas of each chunk.
        #[arg(long, default_value_t = 2)]
        rf: u32,
        /// Bytes per chunk.
        #[arg(long, default_value = "1MB", value_parser = parse_size_arg)]
        chunk_size: u64,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    mictlanx::size::parse_size(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mictlanx: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo {
                size,
                peers,
                rf,
                chunk_size,
                quiet,
            } => {
                if chunk_size == 0 {
                    return Err("--chunk-size must be at least 1 byte".to_string());
                }
                let config = demo::DemoConfig {
                    size,
                    peers,
                    replication_factor: rf,
                    chunk_size,
                    quiet,
                };
                demo::run(config).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mictlanx: {message}");
            ExitCode::FAILURE
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

    #[test]
    fn demo_flags_take_human_sizes() {
        let cli =
            Cli::try_parse_from(["mictlanx", "demo", "--size", "2MB", "--chunk-size", "256kb"])
                .unwrap();
        let Command::Demo {
            size, chunk_size, ..
        } = cli.command;
        assert_eq!((size, chunk_size), (2_000_000, 256_000));
        assert!(Cli::try_parse_from(["mictlanx", "demo", "--size", "huge"]).is_err());
    }

    /// The README's first command, small: the whole path through an embedded cluster.
    #[test]
    fn demo_runs_end_to_end_on_a_small_file() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let config = demo::DemoConfig {
                size: 3_000_000,
                peers: 3,
                replication_factor: 2,
                chunk_size: 1_000_000,
                quiet: true,
            };
            tokio::time::timeout(std::time::Duration::from_secs(120), demo::run(config))
                .await
                .expect("demo finishes in time")
                .expect("demo succeeds");
        });
    }
}
