//! Writes the two tiktoken vocabularies the gateway counts with (o200k_base, cl100k_base) as
//! flat tables into `OUT_DIR`, for `tokens::bpe` to include: every ordinary token's bytes in
//! rank order, their end offsets, and the special tokens. Built here, from tiktoken-rs's own
//! files, rather than at start-up: tiktoken-rs's `CoreBPE` takes tens of megabytes to build,
//! which the allocator keeps after it is dropped.

use std::{error::Error, fmt::Write as _, fs, path::Path};

use tiktoken_rs::CoreBPE;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    let out = std::env::var("OUT_DIR")?;
    write_tables(&tiktoken_rs::o200k_base()?, Path::new(&out), "o200k_base")?;
    write_tables(&tiktoken_rs::cl100k_base()?, Path::new(&out), "cl100k_base")?;
    Ok(())
}

/// `NAME.tokens` (the bytes of ranks 0, 1, … up to the first special or missing rank, one
/// after another), `NAME.ends` (where each ends, little-endian `u32`s) and `NAME.specials`
/// (`rank text` lines).
fn write_tables(bpe: &CoreBPE, out: &Path, name: &str) -> Result<(), Box<dyn Error>> {
    let mut specials = Vec::new();
    for text in bpe.special_tokens() {
        match bpe.encode_with_special_tokens(text)[..] {
            [rank] => specials.push((rank, text.to_owned())),
            _ => return Err(format!("{name}: the special token {text} is not one id").into()),
        }
    }
    specials.sort_unstable();
    let mut tokens = Vec::new();
    let mut ends = Vec::new();
    let mut rank = 0;
    while !specials.iter().any(|(special, _)| *special == rank) {
        let Ok(bytes) = bpe.decode_bytes(&[rank]) else {
            break;
        };
        tokens.extend_from_slice(&bytes);
        ends.extend_from_slice(&u32::try_from(tokens.len())?.to_le_bytes());
        rank += 1;
    }
    let mut lines = String::new();
    for (rank, text) in &specials {
        writeln!(lines, "{rank} {text}")?;
    }
    fs::write(out.join(format!("{name}.tokens")), tokens)?;
    fs::write(out.join(format!("{name}.ends")), ends)?;
    fs::write(out.join(format!("{name}.specials")), lines)?;
    Ok(())
}
