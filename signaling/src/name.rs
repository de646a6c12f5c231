//! Display names: what a participant may be called. Others see a name in their tile, the
//! participant list and every chat line, so a name must not hide text, reorder the text
//! around it, or be invisible.

use crate::wire::{ErrorCode, MAX_NAME_CHARS, Reject};

/// Check a name from `join`; call before admitting. The name without the whitespace and
/// invisible characters around it, or `bad_name` when nothing visible is left, it is too
/// long, or it holds a control or bidi character.
pub fn display_name(raw: &str) -> Result<&str, Reject> {
    let name = raw.trim_matches(is_invisible);
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(bad(format!(
            "a name is 1 to {MAX_NAME_CHARS} characters, and shows something"
        )));
    }
    if let Some(c) = name.chars().find(|&c| is_control(c) || is_bidi(c)) {
        return Err(bad(format!(
            "a name may not hold control or text-direction characters (U+{:04X})",
            u32::from(c)
        )));
    }
    Ok(name)
}

fn bad(message: String) -> Reject {
    Reject::new(ErrorCode::BadName, message)
}

/// C0 and C1 controls and DEL, and the line and paragraph separators: they break lines or
/// move the cursor where a name is shown.
fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Marks, embeddings, overrides and isolates: they reorder what follows the name, such as
/// the chat line after it ("Trojan Source").
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whitespace and characters that draw nothing. They are trimmed from both ends; inside a
/// name some of them do work (a zero-width joiner builds an emoji), so they stay there.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(name: &str) -> bool {
        display_name(name).is_err_and(|r| r.code == ErrorCode::BadName)
    }

    #[test]
    fn names_are_trimmed() {
        assert_eq!(display_name("  Ann \t").unwrap(), "Ann");
        assert_eq!(display_name("\u{200B}Ann\u{FEFF}").unwrap(), "Ann");
        assert_eq!(display_name("Zoë Ó Briain").unwrap(), "Zoë Ó Briain");
    }

    #[test]
    fn empty_and_long_names_are_refused() {
        assert!(refused(""));
        assert!(refused(&"a".repeat(MAX_NAME_CHARS + 1)));
        assert!(!refused(&"é".repeat(MAX_NAME_CHARS)));
        // Trimmed before counting.
        assert!(!refused(&format!(" {} ", "a".repeat(MAX_NAME_CHARS))));
    }

    #[test]
    fn c0_and_c1_controls_are_refused() {
        for c in [
            '\0', '\u{7}', '\t', '\n', '\r', '\u{1B}', '\u{7F}', '\u{85}', '\u{9B}',
        ] {
            assert!(refused(&format!("An{c}n")), "U+{:04X}", u32::from(c));
        }
        assert!(refused("one\u{2028}two"));
    }

    #[test]
    fn bidi_controls_are_refused() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            assert!(refused(&format!("{c}Ann")), "U+{:04X}", u32::from(c));
            assert!(refused(&format!("Ann{c}")), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn names_that_show_nothing_are_refused() {
        for name in [
            "\u{200B}",
            "\u{200C}\u{200D}",
            "\u{2060}",
            "\u{FEFF}",
            " \u{200B} \u{FEFF} ",
            "   ",
            "\u{3000}\u{00A0}",
            "\u{3164}",
            "\u{E0041}",
        ] {
            assert!(refused(name), "{name:?}");
        }
    }

    #[test]
    fn invisible_characters_that_do_work_inside_a_name_are_kept() {
        let coder = "👩\u{200D}💻 Ann";
        assert_eq!(display_name(coder).unwrap(), coder);
        assert_eq!(display_name("An\u{00AD}na").unwrap(), "An\u{00AD}na");
    }
}
