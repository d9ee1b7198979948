//! The subcommands, one module each.

pub mod check_config;
pub mod decode;
pub mod once;
pub mod run;
pub mod status;
