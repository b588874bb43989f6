//! The Converse request JSON (the body Bedrock's HTTP API takes, without `modelId`) mapped onto
//! SDK types, field by field. Anything the SDK cannot express is a 400 naming the field; nothing
//! is dropped silently. `temperature`/`topP` are `f32` in the SDK (Bedrock's model), so they go on
//! the wire as the nearest `f32`.

use super::content::{to_cache_point, to_content_block, to_guard_content};
use super::document::to_document;
use super::error::BedrockError;
use super::json::{Obj, Result, built, join, strings, union};
use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, AutoToolChoice, ConversationRole, ConverseTokensRequest, InferenceConfiguration,
    JsonSchemaDefinition, Message, OutputConfig, OutputFormat, OutputFormatStructure,
    OutputFormatType, PerformanceConfigLatency, PerformanceConfiguration, ServiceTier,
    ServiceTierType, SpecificToolChoice, SystemContentBlock, SystemTool, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use aws_smithy_types::Document;
use serde_json::Value;
use std::collections::HashMap;

/// Every ConverseInput / ConverseStreamInput field this gateway can send, as SDK types.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConverseParts {
    pub messages: Vec<Message>,
    pub system: Option<Vec<SystemContentBlock>>,
    pub inference_config: Option<InferenceConfiguration>,
    pub tool_config: Option<ToolConfiguration>,
    pub additional_model_request_fields: Option<Document>,
    pub additional_model_response_field_paths: Option<Vec<String>>,
    pub request_metadata: Option<HashMap<String, String>>,
    pub performance_config: Option<PerformanceConfiguration>,
    pub service_tier: Option<ServiceTier>,
    pub output_config: Option<OutputConfig>,
}

const TOP_LEVEL: &[&str] = &[
    "modelId",
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
];

/// The whole Converse request body. A `modelId` member, if present, is ignored: the call's model
/// id is authoritative.
pub(crate) fn to_converse_parts(request: &Value) -> Result<ConverseParts> {
    let o = Obj::new(request, "")?;
    o.only(TOP_LEVEL)?;
    Ok(ConverseParts {
        messages: messages(&o)?,
        system: system(&o)?,
        inference_config: o
            .get("inferenceConfig")
            .map(|v| inference_config(v, "inferenceConfig"))
            .transpose()?,
        tool_config: o
            .get("toolConfig")
            .map(|v| tool_config(v, "toolConfig"))
            .transpose()?,
        additional_model_request_fields: additional_fields(&o)?,
        additional_model_response_field_paths: o
            .opt_arr("additionalModelResponseFieldPaths")?
            .map(|a| strings(a, "additionalModelResponseFieldPaths"))
            .transpose()?,
        request_metadata: o
            .get("requestMetadata")
            .map(|v| request_metadata(v, "requestMetadata"))
            .transpose()?,
        performance_config: o
            .get("performanceConfig")
            .map(|v| performance_config(v, "performanceConfig"))
            .transpose()?,
        service_tier: o
            .get("serviceTier")
            .map(|v| service_tier_object(v, "serviceTier"))
            .transpose()?,
        output_config: o
            .get("outputConfig")
            .map(|v| output_config(v, "outputConfig"))
            .transpose()?,
    })
}

/// `CountTokens` `input.converse`: `{messages, system?, toolConfig?, additionalModelRequestFields?}`.
pub(crate) fn to_converse_tokens_request(
    value: &Value,
    path: &str,
) -> Result<ConverseTokensRequest> {
    let o = Obj::new(value, path)?;
    o.only(&[
        "messages",
        "system",
        "toolConfig",
        "additionalModelRequestFields",
    ])?;
    let tool_config = o
        .get("toolConfig")
        .map(|v| tool_config(v, &o.path_of("toolConfig")))
        .transpose()?;
    Ok(ConverseTokensRequest::builder()
        .set_messages(Some(messages(&o)?))
        .set_system(system(&o)?)
        .set_tool_config(tool_config)
        .set_additional_model_request_fields(additional_fields(&o)?)
        .build())
}

/// `serviceTier: {"type": "<tier>"}` from a tier name.
pub(crate) fn service_tier(tier: &str, path: &str) -> Result<ServiceTier> {
    built(
        ServiceTier::builder()
            .r#type(ServiceTierType::from(tier))
            .build(),
        path,
    )
}

fn messages(o: &Obj<'_>) -> Result<Vec<Message>> {
    let path = o.path_of("messages");
    let mut out = Vec::new();
    for (i, m) in o.arr("messages")?.iter().enumerate() {
        let m_path = join(&path, i);
        let m = Obj::new(m, &m_path)?;
        m.only(&["role", "content"])?;
        let role = match m.str("role")? {
            r @ ("user" | "assistant" | "system") => ConversationRole::from(r),
            _ => {
                return Err(BedrockError::invalid_request(
                    &m.path_of("role"),
                    "unknown role",
                ));
            }
        };
        let content_path = m.path_of("content");
        let content = m
            .arr("content")?
            .iter()
            .enumerate()
            .map(|(j, block)| to_content_block(block, &join(&content_path, j)))
            .collect::<Result<Vec<_>>>()?;
        out.push(built(
            Message::builder()
                .role(role)
                .set_content(Some(content))
                .build(),
            &m_path,
        )?);
    }
    Ok(out)
}

fn system(o: &Obj<'_>) -> Result<Option<Vec<SystemContentBlock>>> {
    let Some(items) = o.opt_arr("system")? else {
        return Ok(None);
    };
    let path = o.path_of("system");
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = join(&path, i);
        let (member, inner) = union(item, &item_path)?;
        let p = &join(&item_path, member);
        out.push(match member {
            "text" => SystemContentBlock::Text(
                inner
                    .as_str()
                    .ok_or_else(|| BedrockError::invalid_request(p, "expected a string"))?
                    .to_owned(),
            ),
            "cachePoint" => SystemContentBlock::CachePoint(to_cache_point(inner, p)?),
            "guardContent" => SystemContentBlock::GuardContent(to_guard_content(inner, p)?),
            _ => return Err(BedrockError::invalid_request(p, "unsupported system block")),
        });
    }
    Ok(Some(out))
}

fn additional_fields(o: &Obj<'_>) -> Result<Option<Document>> {
    match o.get("additionalModelRequestFields") {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(to_document(v))),
        Some(_) => Err(BedrockError::invalid_request(
            &o.path_of("additionalModelRequestFields"),
            "expected an object",
        )),
    }
}

fn inference_config(value: &Value, path: &str) -> Result<InferenceConfiguration> {
    let o = Obj::new(value, path)?;
    o.only(&["maxTokens", "temperature", "topP", "stopSequences"])?;
    let max_tokens = match o.get("maxTokens") {
        None => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| {
                    BedrockError::invalid_request(
                        &o.path_of("maxTokens"),
                        "expected a 32-bit integer",
                    )
                })?,
        ),
    };
    Ok(InferenceConfiguration::builder()
        .set_max_tokens(max_tokens)
        .set_temperature(float(&o, "temperature")?)
        .set_top_p(float(&o, "topP")?)
        .set_stop_sequences(
            o.opt_arr("stopSequences")?
                .map(|a| strings(a, &o.path_of("stopSequences")))
                .transpose()?,
        )
        .build())
}

/// The SDK models `temperature` and `topP` as `f32`.
fn float(o: &Obj<'_>, key: &str) -> Result<Option<f32>> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|f| Some(f as f32))
            .ok_or_else(|| BedrockError::invalid_request(&o.path_of(key), "expected a number")),
    }
}

fn tool_config(value: &Value, path: &str) -> Result<ToolConfiguration> {
    let o = Obj::new(value, path)?;
    o.only(&["tools", "toolChoice"])?;
    let tools_path = o.path_of("tools");
    let mut tools = Vec::new();
    for (i, item) in o.arr("tools")?.iter().enumerate() {
        let item_path = join(&tools_path, i);
        let (member, inner) = union(item, &item_path)?;
        let p = &join(&item_path, member);
        tools.push(match member {
            "toolSpec" => Tool::ToolSpec(tool_spec(inner, p)?),
            "cachePoint" => Tool::CachePoint(to_cache_point(inner, p)?),
            "systemTool" => {
                let s = Obj::new(inner, p)?;
                s.only(&["name"])?;
                Tool::SystemTool(built(
                    SystemTool::builder().name(s.str("name")?).build(),
                    p,
                )?)
            }
            _ => return Err(BedrockError::invalid_request(p, "unsupported tool")),
        });
    }
    let tool_choice = match o.get("toolChoice") {
        None => None,
        Some(v) => Some(tool_choice(v, &o.path_of("toolChoice"))?),
    };
    built(
        ToolConfiguration::builder()
            .set_tools(Some(tools))
            .set_tool_choice(tool_choice)
            .build(),
        path,
    )
}

fn tool_spec(value: &Value, path: &str) -> Result<ToolSpecification> {
    let o = Obj::new(value, path)?;
    o.only(&["name", "description", "inputSchema", "strict"])?;
    let schema = match o.get("inputSchema") {
        None => None,
        Some(v) => {
            let p = o.path_of("inputSchema");
            let (member, inner) = union(v, &p)?;
            match member {
                "json" => Some(ToolInputSchema::Json(to_document(inner))),
                _ => {
                    return Err(BedrockError::invalid_request(
                        &join(&p, member),
                        "unsupported schema",
                    ));
                }
            }
        }
    };
    built(
        ToolSpecification::builder()
            .name(o.str("name")?)
            .set_description(o.opt_str("description")?.map(str::to_owned))
            .set_input_schema(schema)
            .set_strict(o.opt_bool("strict")?)
            .build(),
        path,
    )
}

fn tool_choice(value: &Value, path: &str) -> Result<ToolChoice> {
    let (member, inner) = union(value, path)?;
    let p = &join(path, member);
    let o = Obj::new(inner, p)?;
    match member {
        "auto" => {
            o.only(&[])?;
            Ok(ToolChoice::Auto(AutoToolChoice::builder().build()))
        }
        "any" => {
            o.only(&[])?;
            Ok(ToolChoice::Any(AnyToolChoice::builder().build()))
        }
        "tool" => {
            o.only(&["name"])?;
            Ok(ToolChoice::Tool(built(
                SpecificToolChoice::builder().name(o.str("name")?).build(),
                p,
            )?))
        }
        _ => Err(BedrockError::invalid_request(p, "unsupported tool choice")),
    }
}

fn request_metadata(value: &Value, path: &str) -> Result<HashMap<String, String>> {
    let o = Obj::new(value, path)?;
    o.map
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| Ok((k.clone(), o.str(k)?.to_owned())))
        .collect()
}

fn performance_config(value: &Value, path: &str) -> Result<PerformanceConfiguration> {
    let o = Obj::new(value, path)?;
    o.only(&["latency"])?;
    Ok(PerformanceConfiguration::builder()
        .latency(PerformanceConfigLatency::from(o.str("latency")?))
        .build())
}

fn service_tier_object(value: &Value, path: &str) -> Result<ServiceTier> {
    let o = Obj::new(value, path)?;
    o.only(&["type"])?;
    service_tier(o.str("type")?, path)
}

fn output_config(value: &Value, path: &str) -> Result<OutputConfig> {
    let o = Obj::new(value, path)?;
    o.only(&["textFormat", "effort"])?;
    let text_format = match o.get("textFormat") {
        None => None,
        Some(v) => {
            let p = o.path_of("textFormat");
            let f = Obj::new(v, &p)?;
            f.only(&["type", "structure"])?;
            let structure = match f.get("structure") {
                None => None,
                Some(s) => {
                    let sp = f.path_of("structure");
                    let (member, inner) = union(s, &sp)?;
                    let mp = join(&sp, member);
                    if member != "jsonSchema" {
                        return Err(BedrockError::invalid_request(&mp, "unsupported structure"));
                    }
                    let j = Obj::new(inner, &mp)?;
                    j.only(&["schema", "name", "description"])?;
                    Some(OutputFormatStructure::JsonSchema(built(
                        JsonSchemaDefinition::builder()
                            .schema(j.str("schema")?)
                            .set_name(j.opt_str("name")?.map(str::to_owned))
                            .set_description(j.opt_str("description")?.map(str::to_owned))
                            .build(),
                        &mp,
                    )?))
                }
            };
            Some(built(
                OutputFormat::builder()
                    .r#type(OutputFormatType::from(f.str("type")?))
                    .set_structure(structure)
                    .build(),
                &p,
            )?)
        }
    };
    Ok(OutputConfig::builder()
        .set_text_format(text_format)
        .set_effort(o.opt_str("effort")?.map(str::to_owned))
        .build())
}
