//! What a pod config may hold, checked before the parser that builds values
//! sees it: a hostile file must end in an error, never in a stack overflow
//! or an unbounded allocation inside that parser.
//!
//! | limit | value | why |
//! |---|---|---|
//! | size of a config text | 256 KiB | a pod config is a few hundred bytes, and YAML holds ~130 bytes per token of an open flow collection |
//! | nesting depth | 32 | the parsers recurse once per level |
//! | values | 10,000 | each costs the parsers tens of bytes |
//! | YAML anchors and aliases | none | an alias bomb expands exponentially |
//! | YAML tags | none | a tag that fails to convert (`!!int abc`) re-pairs the keys after it |
//! | segments of a `POD__` override | 16 | the config has 4 levels at most |
//!
//! YAML is checked on the parser's own events (its event parser keeps a
//! stack of states and does not recurse; the recursion is in the loader
//! that builds values from them), so no spelling of a nesting or an alias
//! escapes the count. TOML and JSON are checked by a scan of the text.

use crate::config::ConfigFormat;

/// The largest config text accepted, in bytes.
pub(crate) const MAX_BYTES: usize = 256 << 10;
/// The deepest nesting of tables, arrays or YAML blocks accepted.
pub(crate) const MAX_DEPTH: usize = 32;
/// The most values (scalars and collections; in TOML and JSON, the `,`
/// `=` and `:` between them) accepted.
pub(crate) const MAX_VALUES: usize = 10_000;
/// The most `__`-separated segments in a `POD__` override's name.
pub(crate) const MAX_OVERRIDE_SEGMENTS: usize = 16;

/// A limit a config text went over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub(crate) limit: &'static str,
    pub(crate) max: usize,
    /// Where: a line, or the size found.
    pub(crate) at: String,
}

/// Checks size, nesting and (for YAML) anchors before parsing.
pub(crate) fn check_text(text: &str, format: ConfigFormat) -> Result<(), Exceeded> {
    if text.len() > MAX_BYTES {
        return Err(Exceeded {
            limit: "size in bytes",
            max: MAX_BYTES,
            at: format!("{} bytes", text.len()),
        });
    }
    if format == ConfigFormat::Yaml {
        return check_yaml(text);
    }
    let mut scan = Scan::default();
    for (index, line) in lines(text).enumerate() {
        scan.line(line, format).map_err(|limit| Exceeded {
            limit,
            max: match limit {
                VALUES => MAX_VALUES,
                _ => MAX_DEPTH,
            },
            at: format!("line {}", index + 1),
        })?;
    }
    Ok(())
}

/// The lines of `text`, broken at `\n`, `\r\n` and a lone `\r` (which
/// `str::lines` keeps inside a line), so that a line number is right
/// whatever the file's line ends.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\n', '\r']) {
            Some(at) => {
                let next = if current[at..].starts_with("\r\n") {
                    at + 2
                } else {
                    at + 1
                };
                rest = Some(&current[next..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                (!current.is_empty()).then_some(current)
            }
        }
    })
}

/// Counts YAML's nesting, values and anchors on the parser's events. A
/// syntax error ends the check: the loader's parse reports it, with its
/// line.
fn check_yaml(text: &str) -> Result<(), Exceeded> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let (mut depth, mut values) = (0, 0);
    loop {
        let Ok((event, mark)) = parser.next_token() else {
            return Ok(());
        };
        let exceeded = |limit, max| Exceeded {
            limit,
            max,
            at: format!("line {}", mark.line()),
        };
        let (anchor, tag) = match event {
            Event::StreamEnd => return Ok(()),
            Event::Alias(_) => return Err(exceeded(ANCHORS, 0)),
            Event::Scalar(_, _, anchor, tag) => (anchor, tag),
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(exceeded(DEPTH, MAX_DEPTH));
                }
                (anchor, tag)
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth -= 1;
                continue;
            }
            _ => continue,
        };
        if anchor != 0 {
            return Err(exceeded(ANCHORS, 0));
        }
        if tag.is_some() {
            return Err(exceeded(TAGS, 0));
        }
        values += 1;
        if values > MAX_VALUES {
            return Err(exceeded(VALUES, MAX_VALUES));
        }
    }
}

const DEPTH: &str = "nesting depth";
const VALUES: &str = "values";
const ANCHORS: &str = "YAML anchors and aliases";
const TAGS: &str = "YAML tags";

/// Tracks nesting and values across the lines of a TOML or JSON text:
/// brackets and TOML's dotted keys outside strings and comments, and the
/// separators between values.
#[derive(Default)]
struct Scan {
    brackets: usize,
    values: usize,
    /// Open string (its quote) carried over from a previous line.
    quote: Option<char>,
}

impl Scan {
    fn line(&mut self, line: &str, format: ConfigFormat) -> Result<(), &'static str> {
        let toml = format == ConfigFormat::Toml;
        // TOML's dotted keys (`a.b.c = 1`, `[a.b.c]`) nest one table per
        // dot; counted per key, so that a float's dot adds at most one.
        let mut key_dots = 0;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if let Some(quote) = self.quote {
                if c == '\\' && quote == '"' {
                    chars.next();
                } else if c == quote {
                    self.quote = None;
                }
                continue;
            }
            match c {
                '"' | '\'' => self.quote = Some(c),
                '#' if toml => break,
                '.' if toml => {
                    key_dots += 1;
                    if self.brackets + key_dots > MAX_DEPTH {
                        return Err(DEPTH);
                    }
                }
                ',' | '=' | ':' => {
                    key_dots = 0;
                    self.values += 1;
                    if self.values > MAX_VALUES {
                        return Err(VALUES);
                    }
                }
                '[' | '{' => {
                    self.brackets += 1;
                    key_dots = 0;
                    if self.brackets > MAX_DEPTH {
                        return Err(DEPTH);
                    }
                }
                ']' | '}' => self.brackets = self.brackets.saturating_sub(1),
                _ => {}
            }
        }
        // A string left open carries over to the next line: TOML's `"""`
        // and `'''` (read here as a string closed and a new one opened)
        // span lines. A quote that opens nothing is a syntax error, which
        // the parser reports before it builds anything.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, format: ConfigFormat) -> Result<(), &'static str> {
        check_text(text, format).map_err(|e| e.limit)
    }

    #[test]
    fn ordinary_configs_pass() {
        let yaml = "name: a\nruntime:\n  kind: process\n  args:\n    - --x\n    - \"a & b, *c\"\n  env: { K: 'v [1]' }\nnote: R&D *done*\n";
        assert_eq!(check(yaml, ConfigFormat::Yaml), Ok(()));
        let toml = "name = \"a # [b\"\n[runtime]\nkind = 'process'\nargs = [\"x\", \"y\"] # [[[\n";
        assert_eq!(check(toml, ConfigFormat::Toml), Ok(()));
        let json = r#"{"name": "a\" [", "runtime": {"kind": "in-process", "name": "x"}}"#;
        assert_eq!(check(json, ConfigFormat::Json), Ok(()));
    }

    #[test]
    fn deep_nesting_is_refused_in_every_format() {
        let flow = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
        assert_eq!(
            check(&format!("a = {flow}"), ConfigFormat::Toml),
            Err(DEPTH)
        );
        assert_eq!(
            check(&format!("{{\"a\": {flow}}}"), ConfigFormat::Json),
            Err(DEPTH)
        );
        // (Deeper than 256 flow levels, YAML's scanner stops with an error
        // of its own before any event, which the loader then reports.)
        let yaml_flow = format!("a: {}1{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(check(&yaml_flow, ConfigFormat::Yaml), Err(DEPTH));
        let block: String = (0..500)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(check(&block, ConfigFormat::Yaml), Err(DEPTH));
        let dashes = format!("a:\n{}x\n", "- ".repeat(2000));
        assert_eq!(check(&dashes, ConfigFormat::Yaml), Err(DEPTH));
        let fine: String = (0..MAX_DEPTH)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(check(&fine, ConfigFormat::Yaml), Ok(()));
    }

    #[test]
    fn yaml_quotes_and_comments_count_only_where_yaml_has_them() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        // A quote inside a plain scalar is text, not the start of a string.
        let quote = format!("a: he said \"hi\nb: {deep}\n");
        assert_eq!(check(&quote, ConfigFormat::Yaml), Err(DEPTH));
        // `#` glued to a word is text, not the start of a comment.
        let hash = format!("a: [x#, {deep}]\n");
        assert_eq!(check(&hash, ConfigFormat::Yaml), Err(DEPTH));
        // At a node's start they are a string and a comment.
        let fine = format!("a: \"{deep}\"\nb: x #{deep}\nc: ['{deep}']\n");
        assert_eq!(check(&fine, ConfigFormat::Yaml), Ok(()));
        // TOML comments begin at any `#` outside a string.
        assert_eq!(
            check(&format!("a = 1#{deep}\n"), ConfigFormat::Toml),
            Ok(())
        );
    }

    #[test]
    fn toml_dotted_keys_nest_one_level_per_dot() {
        let key = vec!["a"; 40].join(".");
        assert_eq!(
            check(&format!("[{key}]\nx = 1\n"), ConfigFormat::Toml),
            Err(DEPTH)
        );
        assert_eq!(
            check(&format!("{key} = 1\n"), ConfigFormat::Toml),
            Err(DEPTH)
        );
        assert_eq!(
            check(&format!("x = {{ {key} = 1 }}\n"), ConfigFormat::Toml),
            Err(DEPTH)
        );
        // Dots in values and strings are not keys.
        let floats = vec!["1.5"; 100].join(", ");
        let fine = format!("x = [{floats}]\ny = \"{key}\"\n[a.b.c]\nv = 1.0\n");
        assert_eq!(check(&fine, ConfigFormat::Toml), Ok(()));
        // In YAML a dot is text, and `=` does not start a node.
        assert_eq!(check(&format!("{key}: a=&b\n"), ConfigFormat::Yaml), Ok(()));
    }

    #[test]
    fn a_lone_carriage_return_breaks_a_line() {
        let blocks: String = (0..100)
            .map(|i| format!("{}k{i}:\r", " ".repeat(i)))
            .collect();
        assert_eq!(check(&blocks, ConfigFormat::Yaml), Err(DEPTH));
        let found: Vec<&str> = lines("a\r\nb\rc\n\nd").collect();
        assert_eq!(found, ["a", "b", "c", "", "d"]);
        assert_eq!(lines("").count(), 0);
        assert_eq!(lines("x\n").collect::<Vec<_>>(), ["x"]);
    }

    /// Spellings that a text scan of YAML missed (issue 12's attack round):
    /// the parser's events see through all of them.
    #[test]
    fn yaml_nesting_and_anchors_are_seen_however_they_are_spelled() {
        let dashes = format!("b:\n{}x\n", "- ".repeat(1000));
        for head in [
            "a: |\n  \"\n",
            "a: foo\n  \"bar\n",
            "a: x, \"y\n",
            "a: x{\"y\n",
            "a: 'x\n  \"y'\n",
            "env: {A: 'x'', \"y'}\n",
            "a: x[\n",
        ] {
            let text = format!("{head}{dashes}");
            assert_eq!(check(&text, ConfigFormat::Yaml), Err(DEPTH), "{head}");
        }
        let keys = format!("{}x\n", "? ".repeat(1000));
        assert_eq!(check(&keys, ConfigFormat::Yaml), Err(DEPTH));
        for text in [
            "a: &.x [1]\nb: *.x\n",
            "a:\t&x [1]\nb:\t*x\n",
            "a: !!seq &x [1]\n",
            "a: &- 1\n",
        ] {
            assert_eq!(check(text, ConfigFormat::Yaml), Err(ANCHORS), "{text}");
        }
    }

    #[test]
    fn ordinary_text_is_not_mistaken_for_anchors_or_nesting() {
        let brackets = format!("A: 'it''s {}'\n", "[".repeat(40));
        for text in [
            "env:\n  NOTE: fast, *really* fast\n",
            "env:\n  NOTE: 5 - *five*\n",
            "a: |\n  *bold* text\n  f(a, *args)\n",
            &brackets,
        ] {
            assert_eq!(check(text, ConfigFormat::Yaml), Ok(()), "{text}");
        }
        let literal = format!("args = ['''\n{}\n''']\n", ".".repeat(40));
        assert_eq!(check(&literal, ConfigFormat::Toml), Ok(()));
    }

    #[test]
    fn a_wide_flat_text_is_refused_by_its_count_of_values() {
        let many = vec!["0"; MAX_VALUES + 1].join(",");
        let toml = format!("a = [{many}]\n");
        assert_eq!(check(&toml, ConfigFormat::Toml), Err(VALUES));
        assert_eq!(
            check(&format!("a: [{many}]\n"), ConfigFormat::Yaml),
            Err(VALUES)
        );
        let json = format!("{{\"a\": [{many}]}}");
        assert_eq!(check(&json, ConfigFormat::Json), Err(VALUES));
        let keys: String = (0..=MAX_VALUES).map(|i| format!("k{i} = 1\n")).collect();
        assert_eq!(check(&keys, ConfigFormat::Toml), Err(VALUES));
        let fine = vec!["0"; 1000].join(",");
        assert_eq!(
            check(&format!("a = [{fine}]\n"), ConfigFormat::Toml),
            Ok(())
        );
    }

    #[test]
    fn yaml_anchors_and_aliases_are_refused() {
        let bomb = "a: &a [\"lol\", \"lol\"]\nb: &b [*a, *a]\nc: [*b, *b]\n";
        assert_eq!(check(bomb, ConfigFormat::Yaml), Err(ANCHORS));
        assert_eq!(
            check("base: &base\n  x: 1\n", ConfigFormat::Yaml),
            Err(ANCHORS)
        );
        assert_eq!(
            check("a: 1\nk:\n  - &x b\n", ConfigFormat::Yaml),
            Err(ANCHORS)
        );
    }

    #[test]
    fn a_huge_text_is_refused_by_size() {
        let text = "#".repeat(MAX_BYTES + 1);
        assert_eq!(check(&text, ConfigFormat::Toml), Err("size in bytes"));
    }
}
