//! What a pod config may hold, checked on the text before a parser sees it:
//! a hostile file must end in an error, never in a stack overflow or an
//! unbounded allocation inside the parser.
//!
//! | limit | value | why |
//! |---|---|---|
//! | size of a config text | 1 MiB | a pod config is a few hundred bytes |
//! | nesting depth | 32 | the parsers recurse once per level |
//! | YAML anchors and aliases | none | an alias bomb expands exponentially |
//! | segments of a `POD__` override | 16 | the config has 4 levels at most |

use crate::config::ConfigFormat;

/// The largest config text accepted, in bytes.
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// The deepest nesting of tables, arrays or YAML blocks accepted.
pub(crate) const MAX_DEPTH: usize = 32;
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
    let mut scan = Scan::default();
    for (index, line) in lines(text).enumerate() {
        scan.line(line, format).map_err(|limit| Exceeded {
            limit,
            max: match limit {
                ANCHORS => 0,
                _ => MAX_DEPTH,
            },
            at: format!("line {}", index + 1),
        })?;
    }
    Ok(())
}

/// The lines of `text` as the parsers see them: YAML breaks a line at
/// `\n`, `\r\n` and a lone `\r` (which `str::lines` would not split, so
/// a file of `\r`-separated blocks would pass as one line).
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

const DEPTH: &str = "nesting depth";
const ANCHORS: &str = "YAML anchors and aliases";

/// Tracks nesting across lines: brackets outside strings and comments for
/// every format, and YAML's indentation and `- ` sequences.
#[derive(Default)]
struct Scan {
    brackets: usize,
    /// Open string (its quote) carried over from a previous line.
    quote: Option<char>,
    /// Indentation of the open YAML blocks.
    indents: Vec<usize>,
}

impl Scan {
    fn line(&mut self, line: &str, format: ConfigFormat) -> Result<(), &'static str> {
        let yaml = format == ConfigFormat::Yaml;
        let mut block = 0;
        if yaml && self.quote.is_none() && self.brackets == 0 {
            let body = line.trim_start_matches(' ');
            if !body.is_empty() && !body.starts_with('#') {
                let indent = line.len() - body.len();
                while self.indents.last().is_some_and(|&open| open >= indent) {
                    self.indents.pop();
                }
                self.indents.push(indent);
                // `- - - x` nests one level per dash on the same line.
                block = body
                    .split(' ')
                    .take_while(|token| *token == "-" || token.is_empty())
                    .filter(|token| *token == "-")
                    .count();
            }
        }
        if self.indents.len() + block > MAX_DEPTH {
            return Err(DEPTH);
        }
        // Where a YAML node may begin: at the start of the line, and after
        // `: `, `- `, `[`, `{` or `,`; only there do `&` and `*` mark an
        // anchor or an alias (in `R&D *done*` they are text).
        // TOML's dotted keys (`a.b.c = 1`, `[a.b.c]`) nest one table per
        // dot; counted per key, so that a float's dot adds at most one.
        let toml = format == ConfigFormat::Toml;
        let mut key_dots = 0;
        let mut node_start = true;
        // YAML starts a comment only at the start of a line or after
        // blank space: in `[a#, [b]]` the `#` is text.
        let mut after_blank = true;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            let blank_before = std::mem::replace(&mut after_blank, c == ' ' || c == '\t');
            match self.quote {
                Some(quote) => {
                    if c == '\\' && quote == '"' {
                        chars.next();
                    } else if c == quote {
                        self.quote = None;
                    }
                    node_start = false;
                }
                None => match c {
                    // A YAML quote opens a string only where a node begins:
                    // in `x: he said "hi` it is text, and must not hide the
                    // following lines from the scan.
                    '"' | '\'' if !yaml || node_start => self.quote = Some(c),
                    '#' if format == ConfigFormat::Toml || (yaml && blank_before) => break,
                    '.' if toml => {
                        key_dots += 1;
                        if self.brackets + key_dots > MAX_DEPTH {
                            return Err(DEPTH);
                        }
                    }
                    '=' if toml => key_dots = 0,
                    ',' => {
                        key_dots = 0;
                        node_start = true;
                    }
                    '[' | '{' => {
                        self.brackets += 1;
                        key_dots = 0;
                        node_start = true;
                        if self.indents.len() + block + self.brackets > MAX_DEPTH {
                            return Err(DEPTH);
                        }
                    }
                    ']' | '}' => {
                        self.brackets = self.brackets.saturating_sub(1);
                        node_start = false;
                    }
                    ' ' | '\t' => {}
                    ':' | '-' if chars.peek().is_none_or(|n| *n == ' ') => node_start = true,
                    '&' | '*'
                        if yaml
                            && node_start
                            && chars
                                .peek()
                                .is_some_and(|n| n.is_alphanumeric() || *n == '_') =>
                    {
                        return Err(ANCHORS);
                    }
                    _ => node_start = false,
                },
            }
        }
        // YAML and TOML strings do not span lines unless they say so; a
        // stray quote must not hide the rest of the file from the scan.
        if format != ConfigFormat::Json && self.quote == Some('\'') {
            self.quote = None;
        }
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
        assert_eq!(check(&format!("a: {flow}"), ConfigFormat::Yaml), Err(DEPTH));
        let block: String = (0..1000)
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

    #[test]
    fn yaml_anchors_and_aliases_are_refused() {
        let bomb = "a: &a [\"lol\", \"lol\"]\nb: &b [*a, *a]\nc: [*b, *b]\n";
        assert_eq!(check(bomb, ConfigFormat::Yaml), Err(ANCHORS));
        assert_eq!(
            check("base: &base\n  x: 1\n", ConfigFormat::Yaml),
            Err(ANCHORS)
        );
        assert_eq!(check("k:\n  - *x\n", ConfigFormat::Yaml), Err(ANCHORS));
    }

    #[test]
    fn a_huge_text_is_refused_by_size() {
        let text = "#".repeat(MAX_BYTES + 1);
        assert_eq!(check(&text, ConfigFormat::Toml), Err("size in bytes"));
    }
}
