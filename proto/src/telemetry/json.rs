//! One flat JSON object per line: `timestamp`, `level`, `target`, `message`, `span`, then the
//! fields of every enclosing span (outermost first, so `request_id` is on every line of a
//! request), then the event's own fields. Flat and stable, so log tools need no nesting rules.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub(super) struct FlatJson;

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_string(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}").into());
    }
}

/// Adds `fields` to the line. The outer value of a name wins (`request_id` is the gateway's,
/// not the AWS SDK's span field of the same name); a different inner value is kept as
/// `<scope>.<name>`. Trace-export hints (`otel.*`) and `log` origins (`log.*`) stay out.
fn merge(line: &mut Map<String, Value>, scope: &str, fields: Map<String, Value>) {
    for (name, value) in fields {
        if name.starts_with("otel.") || name.starts_with("log.") {
            continue;
        }
        match line.get(&name) {
            None => {
                line.insert(name, value);
            }
            Some(existing) if *existing == value => {}
            Some(_) => {
                line.insert(format!("{scope}.{name}"), value);
            }
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut own = Map::new();
        event.record(&mut Fields(&mut own));
        let meta = event.metadata();
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(message) = own.remove("message") {
            line.insert("message".into(), message);
        }
        let mut spans = Vec::new();
        for span in ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
        {
            let extensions = span.extensions();
            let fields = extensions
                .get::<FormattedFields<JsonFields>>()
                .and_then(|fields| serde_json::from_str::<Value>(fields).ok());
            let fields = match fields {
                Some(Value::Object(fields)) => fields,
                _ => Map::new(),
            };
            spans.push((span.name(), fields));
        }
        // The key every line of a request shares comes right after the message.
        let request_id = spans
            .iter()
            .find_map(|(_, fields)| fields.get("request_id"))
            .or_else(|| own.get("request_id"));
        if let Some(id) = request_id.cloned() {
            line.insert("request_id".into(), id);
        }
        if let Some((name, _)) = spans.last() {
            line.insert("span".into(), (*name).into());
        }
        for (name, fields) in spans {
            merge(&mut line, name, fields);
        }
        merge(&mut line, "event", own);
        writeln!(writer, "{}", Value::Object(line))
    }
}
