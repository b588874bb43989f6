//! The named built-in scenarios a `[[fake:NAME]]` marker in the last user message picks, so clients
//! (Claude Code, SDK scripts) can drive the fake without the control API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::scenario::{ContentBlock, ErrorSpec, Scenario, StreamErrorSpec, Usage};

/// Every built-in name, in the order the docs list them.
pub const BUILTIN_NAMES: &[&str] = &[
    "text",
    "bash",
    "parallel_tools",
    "thinking",
    "thinking_tool",
    "redacted_thinking",
    "cache",
    "empty",
    "max_tokens",
    "stop_sequence",
    "huge",
    "slow",
    "silent",
    "stream_error",
    "stream_overloaded",
    "truncated",
    "no_metadata",
    "throttle",
    "validation",
    "context_overflow",
    "prompt_too_long",
    "access_denied",
    "not_found",
    "quota",
    "not_ready",
    "unavailable",
    "internal",
    "model_timeout",
    "model_error",
    "tier_reject",
];

/// The name of the first `[[fake:NAME]]` marker naming a built-in in `text`.
pub fn find_marker(text: &str) -> Option<&'static str> {
    let mut rest = text;
    while let Some(start) = rest.find("[[fake:") {
        let after = &rest[start + "[[fake:".len()..];
        let end = after.find("]]")?;
        let name = after[..end].trim();
        if let Some(known) = BUILTIN_NAMES.iter().find(|known| **known == name) {
            return Some(known);
        }
        rest = after;
    }
    None
}

/// A built-in scenario by name.
pub fn builtin(name: &str) -> Option<Scenario> {
    let scenario = match name {
        "text" => Scenario::text("This is a scripted text reply from the fake Bedrock."),
        "bash" => Scenario::with_content(vec![
            ContentBlock::text("I'll run that command."),
            bash_tool(
                "toolu_bdrk_fake_bash_0001",
                "echo hello-from-tool",
                "Print a greeting",
            ),
        ]),
        "parallel_tools" => Scenario::with_content(vec![
            bash_tool("toolu_bdrk_fake_par_0001", "echo one", "Print one"),
            bash_tool("toolu_bdrk_fake_par_0002", "echo two", "Print two"),
        ]),
        "thinking" => Scenario::with_content(vec![
            ContentBlock::thinking(
                "The user wants a short answer. Let me think it through step by step.",
                "EqQBCkgIARABGAIiQFakeSignatureForTheThinkingBlock0123456789==",
            ),
            ContentBlock::text("After thinking: the answer is 42."),
        ]),
        "thinking_tool" => Scenario::with_content(vec![
            ContentBlock::thinking(
                "I should run a command to find out.",
                "EqQBCkgIARABGAIiQFakeSignatureBeforeATool0123456789==",
            ),
            bash_tool(
                "toolu_bdrk_fake_think_0001",
                "echo hello-from-tool",
                "Print a greeting",
            ),
        ]),
        "redacted_thinking" => Scenario::with_content(vec![
            ContentBlock::RedactedThinking {
                data: STANDARD.encode(b"\x00\x01redacted-bytes-from-the-fake\xff"),
            },
            ContentBlock::text("Some of my reasoning was redacted."),
        ]),
        "cache" => Scenario {
            usage: Some(Usage {
                input_tokens: Some(12),
                output_tokens: None,
                cache_read_input_tokens: Some(1800),
                cache_creation_input_tokens: Some(600),
                ..Default::default()
            }),
            ..Scenario::text("Reply with cache usage.")
        },
        "empty" => Scenario::with_content(Vec::new()),
        "max_tokens" => Scenario {
            stop_reason: Some("max_tokens".into()),
            ..Scenario::text("This reply was cut off because it reached the max")
        },
        "stop_sequence" => Scenario {
            stop_reason: Some("stop_sequence".into()),
            ..Scenario::text("Counting: one, two, three")
        },
        "huge" => Scenario::text(huge_text()),
        "slow" => Scenario {
            event_delay_ms: 300,
            ..Scenario::text("A slow reply, arriving piece by piece.")
        },
        "silent" => Scenario {
            first_event_delay_ms: 3000,
            ..Scenario::text("Sorry for the long silence.")
        },
        "stream_error" => stream_error("throttlingException", None),
        "stream_overloaded" => stream_error("modelStreamErrorException", Some(529)),
        "truncated" => Scenario {
            truncate_after_events: Some(3),
            ..long_text()
        },
        "no_metadata" => Scenario {
            omit_metadata: true,
            ..Scenario::text("No metadata follows this message.")
        },
        "throttle" => error(
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        "validation" => error(
            "ValidationException",
            "The model returned the following errors: messages.0: scripted validation error",
        ),
        "context_overflow" => error(
            "ValidationException",
            "Input is too long for requested model.",
        ),
        "prompt_too_long" => error(
            "ValidationException",
            "The model returned the following errors: prompt is too long: 250000 tokens > 200000 maximum",
        ),
        "access_denied" => error(
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        "not_found" => error(
            "ResourceNotFoundException",
            "The provided model identifier is invalid.",
        ),
        "quota" => error(
            "ServiceQuotaExceededException",
            "Your request exceeds the service quota for your account.",
        ),
        "not_ready" => error(
            "ModelNotReadyException",
            "Model is not ready to serve inference requests.",
        ),
        "unavailable" => error(
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        "internal" => error(
            "InternalServerException",
            "The system encountered an unexpected error during processing.",
        ),
        "model_timeout" => error(
            "ModelTimeoutException",
            "Model has timed out in processing the request.",
        ),
        "model_error" => Scenario {
            error: Some(ErrorSpec {
                status: None,
                kind: "ModelErrorException".into(),
                message: Some("The model is overloaded.".into()),
                original_status_code: Some(529),
            }),
            ..Scenario::default()
        },
        "tier_reject" => Scenario {
            reject_service_tiers: vec!["priority".into(), "flex".into(), "reserved".into()],
            ..Scenario::text("Answered on the default tier.")
        },
        _ => return None,
    };
    Some(scenario)
}

fn bash_tool(id: &str, command: &str, description: &str) -> ContentBlock {
    ContentBlock::tool_use(
        id,
        "Bash",
        json!({"command": command, "description": description}),
    )
}

fn error(kind: &str, message: &str) -> Scenario {
    Scenario::error(kind, message)
}

fn long_text() -> Scenario {
    Scenario::text(
        "This reply streams several pieces before something goes wrong in the middle of it.",
    )
}

fn stream_error(kind: &str, original_status_code: Option<u16>) -> Scenario {
    Scenario {
        stream_error: Some(StreamErrorSpec {
            after_events: 3,
            kind: kind.into(),
            message: None,
            original_status_code,
            original_message: None,
        }),
        ..long_text()
    }
}

/// About 200 KB of varied text.
fn huge_text() -> String {
    let mut text = String::with_capacity(205_000);
    let mut line = 0;
    while text.len() < 200_000 {
        line += 1;
        text.push_str(&format!(
            "Line {line:05}: the quick brown fox jumps over the lazy dog while the fake Bedrock streams.\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_is_defined() {
        for name in BUILTIN_NAMES {
            assert!(builtin(name).is_some(), "{name} has no definition");
        }
        assert!(builtin("nope").is_none());
    }

    #[test]
    fn finds_known_markers_only() {
        assert_eq!(find_marker("please [[fake:bash]] now"), Some("bash"));
        assert_eq!(
            find_marker("[[fake:nope]] then [[fake:throttle]]"),
            Some("throttle")
        );
        assert_eq!(find_marker("[[fake:bash"), None);
        assert_eq!(find_marker("no marker"), None);
    }

    #[test]
    fn huge_is_about_200_kb() {
        let len = huge_text().len();
        assert!((200_000..210_000).contains(&len), "{len}");
    }
}
