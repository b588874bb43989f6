//! Unit tests for the Bedrock error mapping: every row of spec 5.3 and 13.6, and 5.4 rewriting.

use super::*;
use crate::error::ErrorType;

fn err(kind: ExceptionKind, message: &str) -> BedrockError {
    BedrockError::new(kind, message)
}

fn mapped(e: &BedrockError) -> (u16, ErrorType, String, Option<u64>) {
    let api = e.to_api_error("claude-sonnet-4-5");
    (
        api.status.as_u16(),
        api.error_type,
        api.message,
        api.retry_after_secs,
    )
}

#[test]
fn table_5_3_rows() {
    use ErrorType as T;
    use ExceptionKind as K;
    let rows: Vec<(BedrockError, u16, ErrorType, &str, Option<u64>)> = vec![
        (
            err(K::Validation, "messages.0: bad"),
            400,
            T::InvalidRequest,
            "messages.0: bad",
            None,
        ),
        (
            err(
                K::AccessDenied,
                "User arn:aws:iam::123456789012:role/x is not authorized",
            ),
            403,
            T::Permission,
            "the gateway is not permitted to use model: claude-sonnet-4-5",
            None,
        ),
        (
            err(K::ResourceNotFound, "Model not found in 123456789012"),
            404,
            T::NotFound,
            "model: claude-sonnet-4-5 not found",
            None,
        ),
        (
            err(K::Throttling, "Too many requests"),
            429,
            T::RateLimit,
            "Too many requests",
            Some(5),
        ),
        (
            err(K::ServiceQuotaExceeded, "Quota hit"),
            429,
            T::RateLimit,
            "Quota hit",
            Some(5),
        ),
        (
            err(K::ModelNotReady, "Not ready"),
            529,
            T::Overloaded,
            "Not ready",
            Some(10),
        ),
        (
            err(K::ServiceUnavailable, "Unavailable"),
            529,
            T::Overloaded,
            "Unavailable",
            Some(10),
        ),
        (
            err(K::ModelTimeout, "Model timed out"),
            500,
            T::Api,
            "Model timed out",
            None,
        ),
        (
            err(K::InternalServer, "Internal"),
            500,
            T::Api,
            "Internal",
            None,
        ),
        (
            err(
                K::Conflict,
                "conflict on arn:aws:bedrock:us-east-1:123456789012:x",
            ),
            500,
            T::Api,
            "unexpected error from the model service; quote the request_id when reporting it",
            None,
        ),
        (
            err(K::Unknown("WeirdException".into()), "odd"),
            500,
            T::Api,
            "unexpected error from the model service; quote the request_id when reporting it",
            None,
        ),
        (
            err(
                K::Transport,
                "dns error: bedrock-runtime.us-east-1.amazonaws.com",
            ),
            500,
            T::Api,
            "upstream request failed",
            None,
        ),
        (
            err(K::Timeout, "read timeout"),
            500,
            T::Api,
            "upstream request failed",
            None,
        ),
    ];
    for (e, status, ty, message, retry) in rows {
        assert_eq!(
            mapped(&e),
            (status, ty, message.to_owned(), retry),
            "row {:?}",
            e.kind
        );
    }
}

#[test]
fn model_error_follows_original_status_code() {
    use ErrorType as T;
    use ExceptionKind as K;
    for kind in [K::ModelError, K::ModelStreamError] {
        for (code, status, ty) in [
            (Some(400), 400, T::InvalidRequest),
            (Some(429), 429, T::RateLimit),
            (Some(529), 529, T::Overloaded),
            (Some(503), 529, T::Overloaded),
            (Some(500), 500, T::Api),
            (Some(424), 500, T::Api),
            (None, 500, T::Api),
        ] {
            let e = err(kind.clone(), "boom").with_original_status_code(code);
            let (s, t, m, _) = mapped(&e);
            assert_eq!(
                (s, t, m.as_str()),
                (status, ty, "boom"),
                "{kind:?} {code:?}"
            );
        }
    }
}

#[test]
fn context_overflow_is_phrased_like_anthropic() {
    let e = err(
        ExceptionKind::Validation,
        "Input is too long for requested model.",
    );
    assert_eq!(
        mapped(&e).2,
        "prompt is too long: input is too long for requested model"
    );
    let e = err(
        ExceptionKind::ModelError,
        "The model returned the following errors: input length and `max_tokens` exceed context limit: 197000 + 21333 > 200000, decrease input length or `max_tokens` and try again",
    )
    .with_original_status_code(Some(400));
    let (status, ty, message, _) = mapped(&e);
    assert_eq!((status, ty), (400, ErrorType::InvalidRequest));
    assert_eq!(
        message,
        "input length and `max_tokens` exceed context limit: 197000 + 21333 > 200000, decrease input length or `max_tokens` and try again"
    );
    let e = err(
        ExceptionKind::Validation,
        "The model returned the following errors: prompt is too long: 210000 tokens > 200000 maximum",
    );
    assert_eq!(
        mapped(&e).2,
        "prompt is too long: 210000 tokens > 200000 maximum"
    );
}

#[test]
fn internals_are_scrubbed() {
    let e = err(
        ExceptionKind::Validation,
        "Invocation of model ID arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x with on-demand throughput isn't supported. Account 123456789012 (see https://bedrock-runtime.us-east-1.amazonaws.com/x).",
    );
    let message = mapped(&e).2;
    assert!(!message.contains("123456789012"), "{message}");
    assert!(!message.contains("arn:aws"), "{message}");
    assert!(!message.contains("amazonaws.com"), "{message}");
    assert_eq!(
        message,
        "Invocation of model ID [redacted-arn] with on-demand throughput isn't supported. Account [redacted-account] (see [redacted-endpoint])."
    );
    // Numbers of other lengths stay: they are token counts and limits.
    assert_eq!(
        scrub("1234567890123 and 12345678901 and 200000"),
        "1234567890123 and 12345678901 and 200000"
    );
    assert_eq!(
        scrub("arn:aws-us-gov:iam::123456789012:role/r,"),
        "[redacted-arn],"
    );
    assert_eq!(
        scrub("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        "[redacted-endpoint]"
    );
    assert_eq!(scrub("line one\nline two"), "line one\nline two");
}

#[test]
fn requested_model_is_scrubbed_too() {
    let e = err(ExceptionKind::ResourceNotFound, "");
    let api =
        e.to_api_error("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc");
    assert_eq!(api.message, "model: [redacted-arn] not found");
}

#[test]
fn empty_message_gets_a_generic_text() {
    let (_, _, message, _) = mapped(&err(ExceptionKind::Throttling, "  "));
    assert_eq!(
        message,
        "the model service returned an error without a message"
    );
}

#[test]
fn table_13_6_rows() {
    use ErrorType as T;
    use ExceptionKind as K;
    let rows = [
        (err(K::Throttling, "slow down"), T::RateLimit),
        (err(K::ServiceUnavailable, "down"), T::Overloaded),
        (
            err(K::ModelStreamError, "x").with_original_status_code(Some(429)),
            T::RateLimit,
        ),
        (
            err(K::ModelStreamError, "x").with_original_status_code(Some(529)),
            T::Overloaded,
        ),
        (
            err(K::ModelStreamError, "x").with_original_status_code(Some(503)),
            T::Overloaded,
        ),
        (
            err(K::ModelStreamError, "x").with_original_status_code(Some(400)),
            T::Api,
        ),
        (err(K::ModelStreamError, "x"), T::Api),
        (err(K::Validation, "bad"), T::InvalidRequest),
        (err(K::ModelTimeout, "late"), T::Api),
        (err(K::InternalServer, "oops"), T::Api),
        (err(K::Unknown("fooException".into()), "?"), T::Api),
        (err(K::Decode, "crc mismatch"), T::Api),
        (err(K::Transport, "connection reset"), T::Api),
    ];
    for (e, ty) in rows {
        let api = e.to_stream_api_error();
        assert_eq!(api.error_type, ty, "{e:?}");
    }
    let api = err(K::Transport, "reset by 10.0.0.1").to_stream_api_error();
    assert_eq!(api.message, "upstream connection lost");
    let api = err(
        K::Throttling,
        "The model returned the following errors: slow",
    )
    .to_stream_api_error();
    assert_eq!(api.message, "slow");
}

#[test]
fn service_tier_rejection_is_detected() {
    let yes = [
        "The provided service tier is not supported for this model.",
        "Invalid serviceTier: priority",
        "service_tier flex unavailable",
    ];
    for m in yes {
        assert!(
            err(ExceptionKind::Validation, m).is_service_tier_rejection(),
            "{m}"
        );
    }
    assert!(!err(ExceptionKind::Validation, "messages: bad").is_service_tier_rejection());
    assert!(!err(ExceptionKind::Throttling, "service tier busy").is_service_tier_rejection());
    assert!(
        !BedrockError::invalid_request("serviceTier", "expected an object")
            .is_service_tier_rejection(),
        "a local error is not Bedrock's rejection"
    );
}

#[test]
fn codes_parse_with_any_case_and_suffix() {
    assert_eq!(
        ExceptionKind::from_code("ThrottlingException"),
        ExceptionKind::Throttling
    );
    assert_eq!(
        ExceptionKind::from_code("throttlingException"),
        ExceptionKind::Throttling
    );
    assert_eq!(
        ExceptionKind::from_code(
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        ),
        ExceptionKind::Validation
    );
    assert_eq!(
        ExceptionKind::from_code("modelStreamErrorException"),
        ExceptionKind::ModelStreamError
    );
    assert_eq!(
        ExceptionKind::from_code("ServiceQuotaExceededException"),
        ExceptionKind::ServiceQuotaExceeded
    );
    assert_eq!(
        ExceptionKind::from_code("ConflictException"),
        ExceptionKind::Conflict
    );
    assert_eq!(
        ExceptionKind::from_code("NewException"),
        ExceptionKind::Unknown("NewException".into())
    );
}
