//! The gateway client.
