//! Sorting SDK errors into what the caller does next: back off (throttled), retry
//! (transient), or give up and say why (fatal).
//!
//! The SDK has already retried by the time an error reaches us (standard retry
//! mode); this classification is for the caller's own loop: a shard reader backs
//! off on a throttle, a lease renewer tries again at its next tick, and a fatal
//! error (no permission, no such stream, a bad request) stops the work with its
//! reason instead of retrying forever.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
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
    /// The error and its causes, one line.
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
            message: DisplayErrorContext(err).to_string(),
        }
    }

    /// Whether a retry (after a back-off when throttled) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class != ErrorClass::Fatal
    }
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
/// here because the credentials provider fetches fresh ones for the next call.
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

    #[test]
    fn failures_before_an_answer() {
        let timeout: SdkError<ErrorMetadata, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(classify(&timeout), ErrorClass::Transient);
        let construction: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::construction_failure("bad input");
        assert_eq!(classify(&construction), ErrorClass::Fatal);
    }
}
