//! The subcommands, one module each.

pub mod check_config;
pub mod decode;
pub mod run;
