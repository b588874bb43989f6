//! `gatewayctl`: the operator's command line for the gateway admin API (keys, usage, budgets,
//! pricing, model mapping). It only speaks HTTP to `/admin/v1/...`; it never touches the store itself.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints its results"
)]

#[path = "gatewayctl/args.rs"]
mod args;
#[path = "gatewayctl/render.rs"]
mod render;

use std::process::ExitCode;

use clap::Parser;
use serde_json::{Value, json};

use args::{BudgetsArgs, BudgetsCommand, Cli, Command, KeysCommand, ModelsCommand, PricingCommand};
use render::{
    budgets_table, keys_table, query, segment, settings_body, text, update_body, usage_table,
};

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// A failed command: message for stderr and the exit code.
struct Failure(String, u8);

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}/admin/v1/{path}", self.base.trim_end_matches('/'));
        let mut request = self
            .http
            .request(method, &url)
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure(format!("cannot reach {url}: {e}"), 2))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Failure(format!("reading the answer: {e}"), 2))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let message = match (&value["error"]["type"], &value["error"]["message"]) {
            (Value::String(kind), Value::String(message)) => format!("{kind}: {message}"),
            _ => value.to_string(),
        };
        Err(Failure(format!("{status}: {message}"), 1))
    }
}

async fn run(cli: Cli) -> Result<String, Failure> {
    let key = cli
        .master_key
        .clone()
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            Failure(
                "the master key is required: --master-key or MASTER_API_KEY".into(),
                2,
            )
        })?;
    let client = Client {
        http: reqwest::Client::new(),
        base: cli.url.clone(),
        key,
    };
    use reqwest::Method as M;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let out = match cli.command {
        Command::Keys(KeysCommand::Create(settings)) => {
            let created = client
                .send(M::POST, "keys", Some(settings_body(settings)))
                .await?;
            if cli.json {
                return Ok(pretty(&created));
            }
            format!(
                "created key {} ({})\nsecret (shown once, store it now): {}",
                text(&created["key"]["id"]),
                text(&created["key"]["name"]),
                text(&created["secret"])
            )
        }
        Command::Keys(KeysCommand::List) => {
            let listed = client.send(M::GET, "keys", None).await?;
            if cli.json {
                return Ok(pretty(&listed));
            }
            keys_table(&listed["data"])
        }
        Command::Keys(KeysCommand::Show { id }) => pretty(
            &client
                .send(M::GET, &format!("keys/{}", segment(&id)), None)
                .await?,
        ),
        Command::Keys(KeysCommand::Update { id, settings }) => pretty(
            &client
                .send(
                    M::PATCH,
                    &format!("keys/{}", segment(&id)),
                    Some(update_body(settings)),
                )
                .await?,
        ),
        Command::Keys(KeysCommand::Disable { id }) => pretty(
            &client
                .send(M::POST, &format!("keys/{}/disable", segment(&id)), None)
                .await?,
        ),
        Command::Keys(KeysCommand::Enable { id }) => pretty(
            &client
                .send(M::POST, &format!("keys/{}/enable", segment(&id)), None)
                .await?,
        ),
        Command::Keys(KeysCommand::Rotate { id }) => {
            let rotated = client
                .send(M::POST, &format!("keys/{}/rotate", segment(&id)), None)
                .await?;
            if cli.json {
                return Ok(pretty(&rotated));
            }
            format!(
                "rotated key {id}\nnew secret (shown once, store it now): {}",
                text(&rotated["secret"])
            )
        }
        Command::Keys(KeysCommand::Delete { id }) => pretty(
            &client
                .send(M::DELETE, &format!("keys/{}", segment(&id)), None)
                .await?,
        ),
        Command::Keys(KeysCommand::Requests {
            id,
            from,
            to,
            limit,
        }) => {
            let q = query(&[
                ("from", from),
                ("to", to),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            pretty(
                &client
                    .send(M::GET, &format!("keys/{}/requests{q}", segment(&id)), None)
                    .await?,
            )
        }
        Command::Usage(args) => {
            let q = query(&[
                ("from", args.from),
                ("to", args.to),
                ("group_by", Some(args.by.clone())),
                ("key_id", args.key),
                ("model", args.model),
            ]);
            let usage = client.send(M::GET, &format!("usage{q}"), None).await?;
            if cli.json {
                pretty(&usage)
            } else {
                usage_table(&usage, &args.by)
            }
        }
        Command::Budgets(BudgetsArgs {
            command: None,
            list,
        }) => {
            let q = query(&[("near", list.near.map(|n| n.to_string()))]);
            let budgets = client.send(M::GET, &format!("budgets{q}"), None).await?;
            if cli.json {
                pretty(&budgets)
            } else {
                budgets_table(&budgets, list.all)
            }
        }
        Command::Budgets(BudgetsArgs {
            command: Some(command),
            ..
        }) => {
            // A budget is a key setting: the same PATCH as `keys update --budget/--no-budget`.
            let (id, budget) = match command {
                BudgetsCommand::Set { id, usd } => (id, json!(usd)),
                BudgetsCommand::Clear { id } => (id, Value::Null),
            };
            let updated = client
                .send(
                    M::PATCH,
                    &format!("keys/{}", segment(&id)),
                    Some(json!({"monthly_budget_usd": budget})),
                )
                .await?;
            if cli.json {
                return Ok(pretty(&updated));
            }
            let key = &updated["key"];
            match key["monthly_budget_usd"].as_f64() {
                Some(usd) => format!(
                    "key {} ({}): monthly budget {usd:.2} USD, status {}",
                    text(&key["id"]),
                    text(&key["name"]),
                    text(&key["status"])
                ),
                None => format!(
                    "key {} ({}): no monthly budget, status {}",
                    text(&key["id"]),
                    text(&key["name"]),
                    text(&key["status"])
                ),
            }
        }
        Command::Pricing {
            command: None | Some(PricingCommand::List),
        } => pretty(&client.send(M::GET, "pricing", None).await?),
        Command::Pricing {
            command:
                Some(PricingCommand::Set {
                    model,
                    input,
                    output,
                    cache_read,
                    cache_write_5m,
                    cache_write_1h,
                }),
        } => {
            let mut body = json!({"input": input, "output": output});
            for (name, value) in [
                ("cache_read", cache_read),
                ("cache_write_5m", cache_write_5m),
                ("cache_write_1h", cache_write_1h),
            ] {
                if let (Some(v), Some(o)) = (value, body.as_object_mut()) {
                    o.insert(name.into(), json!(v));
                }
            }
            pretty(
                &client
                    .send(M::PUT, &format!("pricing/{}", segment(&model)), Some(body))
                    .await?,
            )
        }
        Command::Pricing {
            command: Some(PricingCommand::Delete { model }),
        } => pretty(
            &client
                .send(M::DELETE, &format!("pricing/{}", segment(&model)), None)
                .await?,
        ),
        Command::Models {
            command: None | Some(ModelsCommand::List),
        } => pretty(&client.send(M::GET, "models", None).await?),
        Command::Models {
            command:
                Some(ModelsCommand::Set {
                    key,
                    bedrock_id,
                    entry,
                }),
        } => {
            let body = match (entry, bedrock_id) {
                (Some(entry), _) => serde_json::from_str(&entry)
                    .map_err(|e| Failure(format!("--entry is not JSON: {e}"), 2))?,
                (None, id) => json!({"bedrock_id": id}),
            };
            pretty(
                &client
                    .send(M::PUT, &format!("models/{}", segment(&key)), Some(body))
                    .await?,
            )
        }
        Command::Models {
            command: Some(ModelsCommand::Delete { key }),
        } => pretty(
            &client
                .send(M::DELETE, &format!("models/{}", segment(&key)), None)
                .await?,
        ),
    };
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure(message, code)) => {
            eprintln!("gatewayctl: {message}");
            ExitCode::from(code)
        }
    }
}
