//! The verifier's verdict on every row of cache evaluation files (the dev set's format), one
//! line per row, for comparing the verifier with a reference implementation row by row:
//!
//!     cargo run -p gateway-client --example verifier_verdicts -- FILE.tsv...
//!     cargo run -p gateway-client --example verifier_verdicts -- --tokens FILE.tsv...
//!
//! Each line is `kind<TAB>cached<TAB>query<TAB>verdict` (`hit`, or the refusal); with
//! `--tokens`, each prompt's analysis instead: `prompt<TAB>word/kind/possessive…`.

use std::io::{self, Write};

use gateway_client::semantic::{analysis::analyze, verify::verify_text};

fn main() -> io::Result<()> {
    let mut tokens = false;
    let mut out = io::stdout().lock();
    for argument in std::env::args().skip(1) {
        if argument == "--tokens" {
            tokens = true;
            continue;
        }
        let data = std::fs::read_to_string(&argument)?;
        let rows = data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
        for row in rows {
            let columns: Vec<&str> = row.split('\t').collect();
            let [kind, cached, query, _expect] = columns[..] else {
                writeln!(out, "malformed row: {row}")?;
                continue;
            };
            if tokens {
                for prompt in [cached, query] {
                    let analysed: Vec<String> = analyze(prompt)
                        .iter()
                        .map(|t| format!("{}/{:?}/{}", t.word, t.kind, t.possessive))
                        .collect();
                    writeln!(out, "{prompt}\t{}", analysed.join(" "))?;
                }
            } else {
                let verdict = match verify_text(query, cached, None) {
                    Ok(()) => "hit".to_owned(),
                    Err(refusal) => format!("{refusal:?}"),
                };
                writeln!(out, "{kind}\t{cached}\t{query}\t{verdict}")?;
            }
        }
    }
    Ok(())
}
