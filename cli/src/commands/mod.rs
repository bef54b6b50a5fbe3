//! One module per group of subcommands; each is a thin shell over the SDK.

pub mod bench;
pub mod inspect;
pub mod keys;
pub mod policy;
pub mod remove;
pub mod transfer;
pub mod up;
