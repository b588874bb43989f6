//! SDK failures (`SdkError<E, R>` of any operation or event stream) to `BedrockError`. Modeled
//! exceptions are matched by variant (a stream's `modelStreamErrorException` has no `code()`),
//! unmodeled ones by their code; transport, timeout and decode failures keep their detail for logs.

use super::error::{BedrockError, ExceptionKind};
use aws_sdk_bedrockruntime::Error as ServiceError;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::RequestId;

/// Any operation or stream error.
pub(crate) fn from_sdk_error<E, R>(err: SdkError<E, R>) -> BedrockError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    ServiceError: From<E>,
    R: std::fmt::Debug,
{
    let detail = DisplayErrorContext(&err).to_string();
    match err {
        SdkError::ServiceError(ctx) => from_service_error(ctx.into_err()),
        SdkError::TimeoutError(_) => BedrockError::new(ExceptionKind::Timeout, detail),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            BedrockError::new(ExceptionKind::Timeout, detail)
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            BedrockError::new(ExceptionKind::Transport, detail)
        }
        SdkError::ResponseError(_) => BedrockError::new(ExceptionKind::Decode, detail),
        _ => BedrockError::new(ExceptionKind::Unknown("sdk".into()), detail),
    }
}

/// A modeled (or unhandled) service error of any operation.
pub(crate) fn from_service_error<E>(err: E) -> BedrockError
where
    E: ProvideErrorMetadata,
    ServiceError: From<E>,
{
    let meta = err.meta().clone();
    let request_id = meta.request_id().map(str::to_owned);
    let err = ServiceError::from(err);
    let (kind, message, original) = match &err {
        ServiceError::ValidationException(e) => (ExceptionKind::Validation, e.message(), None),
        ServiceError::AccessDeniedException(e) => (ExceptionKind::AccessDenied, e.message(), None),
        ServiceError::ResourceNotFoundException(e) => {
            (ExceptionKind::ResourceNotFound, e.message(), None)
        }
        ServiceError::ThrottlingException(e) => (ExceptionKind::Throttling, e.message(), None),
        ServiceError::ServiceQuotaExceededException(e) => {
            (ExceptionKind::ServiceQuotaExceeded, e.message(), None)
        }
        ServiceError::ModelNotReadyException(e) => {
            (ExceptionKind::ModelNotReady, e.message(), None)
        }
        ServiceError::ServiceUnavailableException(e) => {
            (ExceptionKind::ServiceUnavailable, e.message(), None)
        }
        ServiceError::ModelTimeoutException(e) => (ExceptionKind::ModelTimeout, e.message(), None),
        ServiceError::ModelErrorException(e) => (
            ExceptionKind::ModelError,
            e.message(),
            e.original_status_code(),
        ),
        ServiceError::ModelStreamErrorException(e) => (
            ExceptionKind::ModelStreamError,
            e.message().or(e.original_message()),
            e.original_status_code(),
        ),
        ServiceError::InternalServerException(e) => {
            (ExceptionKind::InternalServer, e.message(), None)
        }
        ServiceError::ConflictException(e) => (ExceptionKind::Conflict, e.message(), None),
        _ => (
            meta.code()
                .map(ExceptionKind::from_code)
                .unwrap_or_else(|| ExceptionKind::Unknown("unknown".into())),
            meta.message(),
            None,
        ),
    };
    let message = message
        .map(str::to_owned)
        .unwrap_or_else(|| err.to_string());
    BedrockError::new(kind, message)
        .with_original_status_code(original.and_then(|c| u16::try_from(c).ok()))
        .with_request_id(request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockruntime::types::error::{
        ConverseStreamOutputError, ModelStreamErrorException, ThrottlingException,
    };
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn stream_model_error_is_matched_by_variant() {
        let e = ConverseStreamOutputError::ModelStreamErrorException(
            ModelStreamErrorException::builder()
                .message("model failed")
                .original_status_code(529)
                .original_message("overloaded")
                .build(),
        );
        assert_eq!(e.code(), None, "the SDK gives no code for this variant");
        let got = from_service_error(e);
        assert_eq!(got.kind, ExceptionKind::ModelStreamError);
        assert_eq!(got.message, "model failed");
        assert_eq!(got.original_status_code, Some(529));
    }

    #[test]
    fn unhandled_code_is_kept() {
        let e = ConverseStreamOutputError::generic(
            ErrorMetadata::builder()
                .code("ServiceQuotaExceededException")
                .message("quota")
                .build(),
        );
        let got = from_service_error(e);
        assert_eq!(got.kind, ExceptionKind::ServiceQuotaExceeded);
        assert_eq!(got.message, "quota");
        let e = ConverseStreamOutputError::generic(
            ErrorMetadata::builder().code("brandNewException").build(),
        );
        assert_eq!(
            from_service_error(e).kind,
            ExceptionKind::Unknown("brandNewException".into())
        );
    }

    #[test]
    fn throttling_variant_maps() {
        let e = ConverseStreamOutputError::ThrottlingException(
            ThrottlingException::builder().message("slow").build(),
        );
        let got = from_service_error(e);
        assert_eq!(
            (got.kind, got.message.as_str()),
            (ExceptionKind::Throttling, "slow")
        );
    }
}
