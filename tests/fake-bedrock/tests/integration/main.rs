//! Integration tests: the fake served in-process, driven by the real `aws-sdk-bedrockruntime` client,
//! by raw HTTP (control API, strictness the SDK cannot produce), by the binary and by boto3.
//! The modules are `cfg(test)` so the workspace lints treat their helpers as test code.

#[cfg(test)]
mod boto3;
#[cfg(test)]
mod common;
#[cfg(test)]
mod control;
#[cfg(test)]
mod converse;
#[cfg(test)]
mod count_tokens;
#[cfg(test)]
mod errors;
#[cfg(test)]
mod invoke;
#[cfg(test)]
mod strictness;
#[cfg(test)]
mod tiers;
