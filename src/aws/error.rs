//! Sorting SDK errors into what the caller does next: back off (throttled), retry
//! (transient), or give up and say why (fatal).
//!
//! The SDK has already retried by the time an error reaches us (standard retry
//! mode); this classification is for the caller's own loop: a shard reader backs
//! off on a throttle, a lease renewer tries again at its next tick, and a fatal
//! error (no permission, no such stream, a bad request) stops the work with its
//! reason instead of retrying forever.

use std::error::Error;
use std::fmt;

use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What a caller does about a failed AWS call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The service asked us to slow down: back off (exponentially, with jitter).
    Throttled,
    /// A network problem, a timeout or a server-side failure: try again.
    Transient,
    /// Retrying will not help (permissions, a missing resource, a bad request).
    Fatal,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::Fatal => "fatal",
        })
    }
}

/// A failed AWS call: which, how it is classified, and the service's explanation.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed ({class}{}): {message}", .code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct AwsError {
    /// The API operation, e.g. `GetRecords`.
    pub operation: &'static str,
    /// What to do about it.
    pub class: ErrorClass,
    /// The service's error code, e.g. `AccessDeniedException`, when it sent one.
    pub code: Option<String>,
    /// The error and its causes, one line (see [`describe`]).
    pub message: String,
}

impl AwsError {
    /// Classifies `err`, the failure of `operation`.
    pub fn new<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        AwsError {
            operation,
            class: classify(err),
            code: err.code().map(str::to_owned),
            message: describe(err),
        }
    }

    /// Whether a retry (after a back-off when throttled) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class != ErrorClass::Fatal
    }
}

/// Longest part of an unreadable error answer's body that [`describe`] shows.
const BODY_SHOWN: usize = 300;

/// An SDK error on one line, as an operator reads it: the service's error code and
/// message (also for codes the operation does not model, such as STS's
/// `AccessDenied`, which the SDK's own text reduces to "unhandled error"); an answer
/// without a readable error code (a proxy's error page, say) as its HTTP status and
/// the start of its body; any other failure as its chain of causes, including why
/// credentials could not be had. Never the SDK's debug dump of the whole response.
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    match err {
        SdkError::ServiceError(context) => service_error(context.err(), context.raw()),
        other => causes(other),
    }
}

fn service_error<E: ProvideErrorMetadata>(err: &E, raw: &HttpResponse) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => format!("{code} (HTTP {})", raw.status().as_u16()),
        (None, _) => {
            let body = raw.body().bytes().unwrap_or_default();
            let body = String::from_utf8_lossy(&body[..body.len().min(BODY_SHOWN)]);
            let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
            format!(
                "HTTP {} without an error code: {body:?}",
                raw.status().as_u16()
            )
        }
    }
}

/// `err` and its sources, `: `-separated; a failed STS call among them (the
/// credentials of an assumed role or of web identity) as [`describe`] shows it.
pub fn causes(err: &(dyn Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(sts) = cause.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
            parts.push(format!("sts:AssumeRole: {}", describe(sts)));
            break;
        }
        if let Some(sts) =
            cause.downcast_ref::<SdkError<AssumeRoleWithWebIdentityError, HttpResponse>>()
        {
            parts.push(format!("sts:AssumeRoleWithWebIdentity: {}", describe(sts)));
            break;
        }
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Classifies an SDK error by where it failed and, for a service's answer, by its
/// error code and HTTP status.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorClass {
    match err {
        // The request could not be built: a bug or a bad setting, never transient.
        SdkError::ConstructionFailure(_) => ErrorClass::Fatal,
        SdkError::TimeoutError(_) => ErrorClass::Transient,
        // A user error is an invalid endpoint URL or similar; "other" includes
        // failures to get credentials (IMDS, STS, a credential_process), which are
        // often passing, and whose message says what failed.
        SdkError::DispatchFailure(failure) if failure.is_user() => ErrorClass::Fatal,
        SdkError::DispatchFailure(_) => ErrorClass::Transient,
        // An answer that could not be read (cut off, not the protocol): try again.
        SdkError::ResponseError(_) => ErrorClass::Transient,
        SdkError::ServiceError(context) => {
            classify_code(context.err().code(), context.raw().status().as_u16())
        }
        _ => ErrorClass::Transient,
    }
}

/// Error codes that mean "slow down" (the SDK's own list plus the KMS throttle,
/// which a KMS-encrypted stream returns on GetRecords).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "KMSThrottlingException",
];

/// Error codes worth retrying that are not throttles. An expired session token is
/// here because the credentials provider fetches fresh ones for the next call;
/// `ResourceInUseException` because Kinesis answers it while a stream is not ACTIVE
/// (being created or deleted): wait, and the stream is either ready or gone
/// (ResourceNotFound, which ends the shard's reader). DynamoDB's CreateTable answers
/// it for a table that exists, which the lease store checks first.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalFailure",
    "InternalServerError",
    "InternalServerErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSInternalException",
    "ExpiredToken",
    "ExpiredTokenException",
    "IDPCommunicationError",
    "ResourceInUseException",
];

/// Classifies a service's error answer by its code, else by its HTTP status.
pub fn classify_code(code: Option<&str>, status: u16) -> ErrorClass {
    match code {
        Some(code) if THROTTLING_CODES.contains(&code) => ErrorClass::Throttled,
        Some(code) if TRANSIENT_CODES.contains(&code) => ErrorClass::Transient,
        _ if status == 429 => ErrorClass::Throttled,
        _ if status >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn codes_and_statuses() {
        let cases = [
            (
                Some("ProvisionedThroughputExceededException"),
                400,
                ErrorClass::Throttled,
            ),
            (Some("LimitExceededException"), 400, ErrorClass::Throttled),
            (Some("KMSThrottlingException"), 400, ErrorClass::Throttled),
            (Some("ThrottlingException"), 400, ErrorClass::Throttled),
            (None, 429, ErrorClass::Throttled),
            (Some("InternalFailure"), 500, ErrorClass::Transient),
            (Some("ExpiredTokenException"), 400, ErrorClass::Transient),
            (Some("ResourceInUseException"), 400, ErrorClass::Transient),
            (Some("Whatever"), 503, ErrorClass::Transient),
            (None, 502, ErrorClass::Transient),
            (Some("AccessDeniedException"), 400, ErrorClass::Fatal),
            (Some("ResourceNotFoundException"), 400, ErrorClass::Fatal),
            (Some("ValidationException"), 400, ErrorClass::Fatal),
            (None, 403, ErrorClass::Fatal),
        ];
        for (code, status, want) in cases {
            assert_eq!(classify_code(code, status), want, "{code:?} {status}");
        }
    }

    fn service_error(code: &str, status: u16) -> SdkError<ErrorMetadata, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("nope").build();
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(meta, raw)
    }

    #[test]
    fn service_errors_carry_operation_code_and_message() {
        let err = AwsError::new("GetRecords", &service_error("AccessDeniedException", 400));
        assert_eq!(err.class, ErrorClass::Fatal);
        assert!(!err.is_retryable());
        assert_eq!(err.code.as_deref(), Some("AccessDeniedException"));
        let text = err.to_string();
        assert!(
            text.starts_with("GetRecords failed (fatal, AccessDeniedException): "),
            "{text}"
        );
        assert!(text.contains("nope"), "{text}");

        let err = AwsError::new(
            "GetRecords",
            &service_error("ProvisionedThroughputExceededException", 400),
        );
        assert_eq!(err.class, ErrorClass::Throttled);
        assert!(err.is_retryable());
    }

    fn raw(status: u16, body: &str) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(body.to_owned()),
        )
    }

    #[test]
    fn descriptions_carry_the_service_s_reason_without_the_debug_dump() {
        // A modeled or unmodeled code: code and message.
        let err = service_error("AccessDeniedException", 400);
        assert_eq!(describe(&err), "AccessDeniedException: nope");
        // No readable code (a proxy's page): status and the start of the body.
        let page = format!(
            "<html>\n  <h1>Forbidden</h1>  by policy{}</html>",
            "x".repeat(400)
        );
        let err: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::service_error(ErrorMetadata::builder().build(), raw(403, &page));
        let text = describe(&err);
        assert!(
            text.starts_with(
                r#"HTTP 403 without an error code: "<html> <h1>Forbidden</h1> by policyxxx"#
            ),
            "{text}"
        );
        assert!(text.len() < 350, "{text}");
        assert!(!text.contains("ServiceError"), "{text}");
    }

    #[test]
    fn a_refused_role_is_named_with_sts_s_reason() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_sdk_sts::operation::assume_role::AssumeRoleError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        // As the SDK nests it: the Kinesis call could not get credentials because
        // STS refused (AccessDenied is not modeled for AssumeRole).
        let refused = AssumeRoleError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User: arn:aws:iam::1:user/c is not authorized to perform: sts:AssumeRole")
                .build(),
        );
        let sts: SdkError<AssumeRoleError, HttpResponse> =
            SdkError::service_error(refused, raw(403, "<ErrorResponse/>"));
        let credentials = CredentialsError::provider_error(sts);
        let err: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(credentials), None));
        assert_eq!(
            describe(&err),
            "dispatch failure: other: an error occurred while loading credentials: \
             sts:AssumeRole: AccessDenied: User: arn:aws:iam::1:user/c is not authorized to \
             perform: sts:AssumeRole"
        );
        assert_eq!(classify(&err), ErrorClass::Transient);
    }

    #[test]
    fn failures_before_an_answer() {
        let timeout: SdkError<ErrorMetadata, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(classify(&timeout), ErrorClass::Transient);
        let construction: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::construction_failure("bad input");
        assert_eq!(classify(&construction), ErrorClass::Fatal);
    }
}
