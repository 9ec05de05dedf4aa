//! The gateway's policies, one small unit each.

pub mod azure_content_safety;
pub mod budget;
pub mod content_safety;
pub mod expected;
pub mod governance;
