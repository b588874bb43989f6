//! ptc-svc
fn main() {}
