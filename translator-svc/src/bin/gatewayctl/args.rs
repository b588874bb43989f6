//! The command line of `gatewayctl`, as clap types.

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gatewayctl",
    version,
    about = "Manage the gateway: API keys, usage, budgets, pricing, model mapping"
)]
pub struct Cli {
    /// Gateway (or translator-svc) base URL.
    #[arg(
        long,
        env = "GATEWAY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The master key (MASTER_API_KEY of translator-svc).
    #[arg(long, env = "MASTER_API_KEY", hide_env_values = true, global = true)]
    pub master_key: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create, list, change and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Usage and cost totals per key, model or day.
    Usage(UsageArgs),
    /// Monthly budgets: keys near or over theirs this month; set or clear a key's budget.
    Budgets(BudgetsArgs),
    /// Per-model prices (USD per million tokens).
    Pricing {
        #[command(subcommand)]
        command: Option<PricingCommand>,
    },
    /// Run-time model mapping entries.
    Models {
        #[command(subcommand)]
        command: Option<ModelsCommand>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create(KeySettings),
    List,
    Show {
        id: String,
    },
    /// Change settings; options not given stay as they are.
    Update {
        id: String,
        #[command(flatten)]
        settings: KeyUpdate,
    },
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
    /// Issue a new secret; the old one stops working.
    Rotate {
        id: String,
    },
    Delete {
        id: String,
    },
    /// The key's individual requests, newest first.
    Requests {
        id: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Args)]
pub struct KeySettings {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub owner: Option<String>,
    /// Requests per minute (0 = unlimited).
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Tokens per minute (0 = unlimited).
    #[arg(long)]
    pub tpm: Option<u32>,
    /// default, flex, priority or reserved.
    #[arg(long)]
    pub tier: Option<String>,
    /// Monthly budget in USD.
    #[arg(long)]
    pub budget: Option<f64>,
    /// Comma-separated model names this key may use.
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Preferred prompt-cache TTL: 5m or 1h.
    #[arg(long)]
    pub cache_ttl: Option<String>,
}

#[derive(Args)]
pub struct KeyUpdate {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long)]
    pub rpm: Option<u32>,
    #[arg(long)]
    pub tpm: Option<u32>,
    #[arg(long)]
    pub tier: Option<String>,
    #[arg(long, conflicts_with = "no_budget")]
    pub budget: Option<f64>,
    /// Remove the monthly budget.
    #[arg(long)]
    pub no_budget: bool,
    #[arg(long, value_delimiter = ',', conflicts_with = "all_models")]
    pub models: Option<Vec<String>>,
    /// Allow every model again.
    #[arg(long)]
    pub all_models: bool,
    #[arg(long)]
    pub cache_ttl: Option<String>,
}

#[derive(Args)]
pub struct UsageArgs {
    /// First day, YYYY-MM-DD (default: the first of this month, UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    pub to: Option<String>,
    /// Group by key, model or day.
    #[arg(long, default_value = "key")]
    pub by: String,
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BudgetsArgs {
    #[command(subcommand)]
    pub command: Option<BudgetsCommand>,
    #[command(flatten)]
    pub list: BudgetsList,
}

/// `budgets` without a subcommand: the keys near or over their budget.
#[derive(Args)]
pub struct BudgetsList {
    /// Share of the budget (0 to 1) from which a key counts as near (the API's default: 0.8).
    #[arg(long)]
    pub near: Option<f64>,
    /// Every key with a budget, also those well within it.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand)]
pub enum BudgetsCommand {
    /// Set a key's monthly budget in USD; raising it lifts a budget block at once.
    Set {
        /// The key id (`key_...`).
        id: String,
        /// Monthly budget in USD, more than 0 (the API checks it).
        #[arg(allow_negative_numbers = true)]
        usd: f64,
    },
    /// Remove a key's monthly budget.
    Clear {
        /// The key id (`key_...`).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum PricingCommand {
    List,
    /// Set a model's price; cache prices default to 0.1x / 1.25x / 2x the input price.
    Set {
        model: String,
        #[arg(long)]
        input: f64,
        #[arg(long)]
        output: f64,
        #[arg(long)]
        cache_read: Option<f64>,
        #[arg(long)]
        cache_write_5m: Option<f64>,
        #[arg(long)]
        cache_write_1h: Option<f64>,
    },
    Delete {
        model: String,
    },
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    List,
    /// Map a model name to a Bedrock model (the same fields as MODEL_MAP entries).
    Set {
        key: String,
        #[arg(long, required_unless_present = "entry")]
        bedrock_id: Option<String>,
        /// The whole entry as JSON, e.g. '{"bedrock_id":"...","backend":"converse"}'.
        #[arg(long, conflicts_with = "bedrock_id")]
        entry: Option<String>,
    },
    Delete {
        key: String,
    },
}
