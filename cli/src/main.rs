//! `mictlanx`: the MictlanX command for people at a terminal.
//!
//! Exit codes: 0 ok, 1 a failed operation, 2 a usage error. Errors are one line on stderr.

mod commands;
mod connect;
mod demo;
mod generate;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{bench, inspect, keys, policy, remove, transfer, up};
use crate::output::Output;

/// MictlanX: put and get balls in buckets through routers.
#[derive(Debug, Parser)]
#[command(name = "mictlanx", version, about)]
struct Cli {
    /// Routers: `mictlanx://router-0@host:port,...?protocol=http` (else MICTLANX_URI, .env).
    #[arg(long, global = true, env = "MICTLANX_URI")]
    uri: Option<String>,
    /// Print one JSON object per result line.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
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
    },
    /// Run a persistent local cluster (router + peers) in the foreground.
    Up(up::UpArgs),
    /// Store files (FILE..., `-r DIR`, or `-` for standard input) as balls.
    Put {
        /// Files or directories; `-` reads standard input (needs --key).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Walk directories.
        #[arg(short, long)]
        recursive: bool,
        /// Target bucket.
        #[arg(long, short)]
        bucket: String,
        /// Ball id (one file or stdin; default: from the file's path).
        #[arg(long, short)]
        key: Option<String>,
        /// Bytes per chunk (e.g. 256kb, 4MiB).
        #[arg(long, value_parser = parse_size_arg)]
        chunk_size: Option<u64>,
        /// Replicas of each chunk.
        #[arg(long, default_value_t = 1)]
        rf: u32,
        /// A tag `k=v` (repeatable).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Encrypt to this public key (repeatable): a `.pub` file, or a key name in
        /// XOLO_SECRET_PATH. Any one recipient's private key opens the ball.
        #[arg(long = "encrypt-to", value_name = "KEY.pub")]
        encrypt_to: Vec<String>,
    },
    /// Read a ball into a file (`-o FILE`, default ./KEY) or standard output (`-o -`).
    Get {
        /// Bucket.
        bucket: String,
        /// Ball id.
        key: String,
        /// Destination file, or `-` for standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Open an encrypted ball with this private key: a key name in XOLO_SECRET_PATH,
        /// or a file.
        #[arg(long = "decrypt-with", value_name = "NAME")]
        decrypt_with: Option<String>,
    },
    /// Make an X25519 key pair: NAME (private, mode 0600) and NAME.pub in the key directory.
    Keygen {
        /// Key name (a file name: letters, digits, '.', '_', '-').
        name: String,
        /// Key directory (default: XOLO_SECRET_PATH, else ~/.mictlanx/xolo/keys).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace an existing key of that name.
        #[arg(long)]
        force: bool,
    },
    /// List the balls of a bucket.
    Ls {
        /// Bucket.
        bucket: String,
    },
    /// Show a ball's size, checksum, chunks and tags.
    Stat {
        /// Bucket.
        bucket: String,
        /// Ball id.
        key: String,
    },
    /// Delete a ball.
    Rm {
        /// Bucket.
        bucket: String,
        /// Ball id.
        key: String,
    },
    /// Delete every ball of a bucket.
    RmBucket {
        /// Bucket.
        bucket: String,
    },
    /// Health, latency and disk use of each configured router.
    Routers,
    /// Measure throughput and latency against an embedded cluster (or --uri).
    Bench(bench::BenchArgs),
    /// Availability policies: check a file offline, apply it, list, show, remove.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    mictlanx::size::parse_size(s).map_err(|e| e.to_string())
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("tag {s:?} is not k=v")),
    }
}

fn main() -> ExitCode {
    mictlanx_server::alloc::limit_malloc_arenas();
    let cli = Cli::parse();
    // Offline, and the only command with its own exit code for invalid input (2).
    if let Command::Policy(policy::PolicyCommand::Check { file, lenient }) = &cli.command {
        return policy::check(Output { json: cli.json }, file, *lenient);
    }
    let _log = mictlanx_server::logging::init("mictlanx-cli", "warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mictlanx: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mictlanx: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let out = Output { json: cli.json };
    let uri = cli.uri.as_deref();
    match cli.command {
        Command::Demo {
            size,
            peers,
            rf,
            chunk_size,
        } => {
            if chunk_size == 0 {
                return Err("--chunk-size must be at least 1 byte".to_string());
            }
            demo::run(demo::DemoConfig {
                size,
                peers,
                replication_factor: rf,
                chunk_size,
                quiet: cli.quiet,
                json: cli.json,
            })
            .await
        }
        Command::Up(args) => up::up(args, out).await,
        Command::Put {
            paths,
            recursive,
            bucket,
            key,
            chunk_size,
            rf,
            tags,
            encrypt_to,
        } => {
            let recipients = encrypt_to
                .iter()
                .map(|spec| keys::find_public(spec))
                .collect::<Result<Vec<_>, _>>()?;
            let args = transfer::PutArgs {
                paths,
                recursive,
                bucket,
                key,
                chunk_size,
                rf,
                tags,
                recipients,
                quiet: cli.quiet,
            };
            transfer::put(connect::client(uri)?, out, args).await
        }
        Command::Get {
            bucket,
            key,
            output,
            decrypt_with,
        } => {
            let pair = decrypt_with.as_deref().map(keys::find_pair).transpose()?;
            let target = transfer::GetTarget {
                bucket: &bucket,
                key: &key,
                output,
                decrypt_with: pair.as_ref(),
            };
            transfer::get(&connect::client(uri)?, out, target).await
        }
        Command::Keygen { name, dir, force } => keys::keygen(&name, dir, force, out),
        Command::Ls { bucket } => inspect::ls(&connect::client(uri)?, out, &bucket).await,
        Command::Stat { bucket, key } => {
            inspect::stat(&connect::client(uri)?, out, &bucket, &key).await
        }
        Command::Rm { bucket, key } => remove::rm(&connect::client(uri)?, out, &bucket, &key).await,
        Command::RmBucket { bucket } => {
            remove::rm_bucket(&connect::client(uri)?, out, &bucket).await
        }
        Command::Routers => {
            let client = connect::build(uri, |b| b.lb(mictlanx::LbAlgorithm::SortUf))?;
            inspect::routers(&client, out).await
        }
        Command::Bench(args) => bench::run(args, uri, out).await,
        Command::Policy(cmd) => policy::run(cmd, uri, out).await,
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
    fn flags_take_human_sizes_and_tags() {
        let cli =
            Cli::try_parse_from(["mictlanx", "demo", "--size", "2MB", "--chunk-size", "256kb"])
                .unwrap();
        let Command::Demo {
            size, chunk_size, ..
        } = cli.command
        else {
            panic!("demo");
        };
        assert_eq!((size, chunk_size), (2_000_000, 256_000));
        assert!(Cli::try_parse_from(["mictlanx", "demo", "--size", "huge"]).is_err());
        let cli = Cli::try_parse_from([
            "mictlanx", "put", "a.txt", "-b", "bk", "--tag", "k=v=w", "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let Command::Put { tags, .. } = cli.command else {
            panic!("put");
        };
        assert_eq!(tags, vec![("k".to_string(), "v=w".to_string())]);
        assert!(Cli::try_parse_from(["mictlanx", "put", "a", "-b", "b", "--tag", "=x"]).is_err());
        let cli = Cli::try_parse_from([
            "mictlanx",
            "put",
            "a",
            "-b",
            "b",
            "--encrypt-to",
            "alice.pub",
            "--encrypt-to",
            "/k/bob.pub",
        ])
        .unwrap();
        let Command::Put { encrypt_to, .. } = cli.command else {
            panic!("put");
        };
        assert_eq!(encrypt_to, ["alice.pub", "/k/bob.pub"]);
        let cli =
            Cli::try_parse_from(["mictlanx", "get", "b", "k", "--decrypt-with", "alice"]).unwrap();
        assert!(
            matches!(cli.command, Command::Get { decrypt_with: Some(ref n), .. } if n == "alice")
        );
        let cli = Cli::try_parse_from(["mictlanx", "keygen", "alice", "--force"]).unwrap();
        assert!(matches!(cli.command, Command::Keygen { force: true, .. }));
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
                json: false,
            };
            tokio::time::timeout(std::time::Duration::from_secs(120), demo::run(config))
                .await
                .expect("demo finishes in time")
                .expect("demo succeeds");
        });
    }
}
