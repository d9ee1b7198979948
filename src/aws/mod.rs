//! AWS access: the SDK configuration every client is built from, and the sorting of
//! SDK errors into what the caller does next ([`error`]).
//!
//! Credentials, region and endpoints come from the standard chain (environment,
//! shared config and credentials files with profiles, `credential_process`, SSO, web
//! identity, ECS, IMDS), so operators configure the collector as any AWS tool, and
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` point it at local emulators with
//! no code change. A stream may name its own region and a role to assume (another
//! account's stream).
//!
//! Proxies need no code either: the SDK's default HTTP client (hyper 1 with rustls,
//! behavior version 2025-08-07 and later) reads `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` (and their lower-case forms) from the environment, as
//! curl does: `https://` endpoints (AWS) through `HTTPS_PROXY` with a CONNECT
//! tunnel, `http://` endpoints (instance metadata, emulators) through `HTTP_PROXY`
//! in absolute form; `NO_PROXY` takes names (with their subdomains), IP addresses
//! and CIDR ranges, no ports, and nothing is bypassed implicitly (not even
//! 127.0.0.1). That holds for every client built from [`sdk_config`], STS and
//! instance metadata included; `tests/aws_proxy.rs` checks it end to end.

pub mod backoff;
pub mod error;

use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;

pub use error::{classify, AwsError, ErrorClass};

/// Where and as whom to call AWS: one per stream and region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsTarget {
    /// Region; `None` takes the chain's (`AWS_REGION`, the profile's `region`, IMDS).
    pub region: Option<String>,
    /// Role to assume with the chain's credentials (STS AssumeRole), e.g. to read a
    /// stream in another account.
    pub role_arn: Option<String>,
    /// External id the role's trust policy may require.
    pub external_id: Option<String>,
}

/// Why an SDK configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    /// Neither the target nor the standard chain names a region.
    #[error(
        "no AWS region: set `region` for the stream, or AWS_REGION, or `region` in the AWS profile"
    )]
    NoRegion,
    /// The role of a stream could not be assumed (its trust policy, the
    /// collector's own permissions, or STS unreachable).
    #[error("cannot assume role {role_arn} in {region}: {reason}")]
    AssumeRole {
        /// The role.
        role_arn: String,
        /// The region whose STS endpoint was asked.
        region: String,
        /// STS's answer or why it could not be asked.
        reason: String,
    },
}

/// Connect timeout for every AWS call. Lease calls have their own, shorter,
/// operation timeouts (see the lease store).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of one attempt of any AWS call (a GetRecords answer of 10 MB over a
/// slow proxy stays well within it).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Loads the SDK configuration for `target` from the standard chain.
///
/// With `role_arn`, the chain's credentials assume the role (session name
/// `session_name`, e.g. the worker id), refreshed before they expire. The role is
/// assumed once here, so that a role that cannot be assumed is reported with
/// STS's reason before any work starts, not as a failed Kinesis call.
pub async fn sdk_config(
    target: &AwsTarget,
    session_name: &str,
) -> Result<SdkConfig, AwsConfigError> {
    let loader = || {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(region) = &target.region {
            loader = loader.region(Region::new(region.clone()));
        }
        loader
    };
    let base = loader().load().await;
    if base.region().is_none() {
        return Err(AwsConfigError::NoRegion);
    }
    let Some(role_arn) = &target.role_arn else {
        return Ok(base);
    };
    let mut role = AssumeRoleProvider::builder(role_arn.clone())
        .session_name(sanitize_session_name(session_name))
        .configure(&base);
    if let Some(id) = &target.external_id {
        role = role.external_id(id.clone());
    }
    let role = role.build().await;
    if let Err(err) = role.provide_credentials().await {
        return Err(AwsConfigError::AssumeRole {
            role_arn: role_arn.clone(),
            region: base.region().map(ToString::to_string).unwrap_or_default(),
            reason: error::causes(&err),
        });
    }
    Ok(loader().credentials_provider(role).load().await)
}

/// An STS role session name: 2 to 64 characters of `[\w+=,.@-]`; anything else
/// becomes `-`.
fn sanitize_session_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while out.len() < 2 {
        out.push('-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_fit_sts_rules() {
        assert_eq!(
            sanitize_session_name("host-1.example_a1b2"),
            "host-1.example_a1b2"
        );
        assert_eq!(sanitize_session_name("host 1/é"), "host-1--");
        assert_eq!(sanitize_session_name(""), "--");
        assert_eq!(sanitize_session_name(&"x".repeat(100)).len(), 64);
    }
}
