//! The search keys of one record: each searchable field in each of its forms, written as
//! its suffixes (from every unit on), so that a prefix of a suffix is a substring of the
//! form and every kind of match is a range of one ordered index (`docs/search.md`).
use super::fold::{Unit, fold, org_core, readings, units};
use crate::kernel::normalize;

/// How a key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i16)]
pub enum Form {
    /// Folded text (simplified characters, lower case, no spaces or punctuation).
    Text = 1,
    /// Readings of the characters, without tones or spaces.
    Pinyin = 2,
    /// The first letter of each reading (and of each Latin word).
    Initials = 3,
    /// A phone number's digits: E.164 without `+`, and a Chinese landline with its trunk 0.
    Digits = 4,
    /// An e-mail address, lower case.
    Email = 5,
}

/// The field a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i16)]
pub enum Field {
    /// A person's name (an individual customer).
    Name = 1,
    Phone = 2,
    /// The customer's or the contact's e-mail.
    Email = 3,
    /// An organization's name.
    Organization = 4,
    ContactName = 5,
    ContactMobile = 6,
    ContactOfficePhone = 7,
}

impl Field {
    /// Every field, in its number's order.
    pub const ALL: [Field; 7] = [
        Field::Name,
        Field::Phone,
        Field::Email,
        Field::Organization,
        Field::ContactName,
        Field::ContactMobile,
        Field::ContactOfficePhone,
    ];

    /// Whether the field is a contact detail (shown only to who sees that field group).
    pub fn is_contact_detail(self) -> bool {
        matches!(self, Field::Phone | Field::Email | Field::ContactMobile | Field::ContactOfficePhone)
    }
}

/// A key as stored: its form's number, then its term (`1张伟`, `2zhangwei`), so that the
/// keys of one form are one range of an index on the stored key alone (whose sort compares
/// the first bytes of each key at once; a form column before the term made the rebuild's
/// index sort twice as long).
pub fn stored(form: Form, term: &str) -> String {
    format!("{}{term}", form as u8)
}

/// One key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub form: Form,
    pub field: Field,
    pub term: String,
    /// The whole form from its start.
    pub head: bool,
}

/// Units a name's suffixes start from at most (a longer name is found by its beginning).
const MAX_UNITS: usize = 24;
/// Characters of a term at most.
pub const MAX_TERM: usize = 64;
/// Digits of a phone fragment at least.
pub const MIN_DIGITS: usize = 4;

fn cut(s: &str) -> String {
    s.chars().take(MAX_TERM).collect()
}

/// Suffixes of `parts` joined, from each part on.
fn suffixes(out: &mut Vec<Key>, form: Form, field: Field, parts: &[String]) {
    for i in 0..parts.len().min(MAX_UNITS) {
        let term = cut(&parts[i..].concat());
        if !term.is_empty() {
            out.push(Key { form, field, term, head: i == 0 });
        }
    }
}

/// The keys of a name: its text, and where it has Chinese characters, its readings and
/// initials. A person's name starts with a surname (`fold::SURNAMES`) and is read from
/// every syllable on (`wei` finds 张伟); an organization's is read from its start (and its
/// core's, [`organization`]): nobody calls a company by the sound of its middle.
pub fn name(out: &mut Vec<Key>, field: Field, raw: &str, person: bool) {
    let units = units(&fold(raw));
    if units.is_empty() {
        return;
    }
    let texts: Vec<String> = units.iter().map(Unit::text).collect();
    suffixes(out, Form::Text, field, &texts);
    if units.iter().any(|u| matches!(u, Unit::Han(_))) {
        let read = readings(&units, person);
        if person {
            suffixes(out, Form::Pinyin, field, &read);
        } else {
            out.push(Key { form: Form::Pinyin, field, term: cut(&read.concat()), head: true });
        }
        let initials: String = read.iter().filter_map(|r| r.chars().next()).collect();
        if initials.chars().count() >= 2 {
            out.push(Key { form: Form::Initials, field, term: cut(&initials), head: true });
        }
    }
}

/// The keys of an organization's name: those of [`name`], and its core (without region and
/// company form) as a whole of its own, with its initials.
pub fn organization(out: &mut Vec<Key>, raw: &str) {
    // Without its company form: every company is a 有限公司, no one searches for that.
    name(out, Field::Organization, &normalize::org_name(raw), false);
    let core = org_core(raw);
    let core_units = units(&core);
    let text: String = core_units.iter().map(Unit::text).collect();
    if !text.is_empty() {
        out.push(Key { form: Form::Text, field: Field::Organization, term: cut(&text), head: true });
        if core_units.iter().any(|u| matches!(u, Unit::Han(_))) {
            let read = readings(&core_units, false);
            out.push(Key { form: Form::Pinyin, field: Field::Organization, term: cut(&read.concat()), head: true });
            let initials: String = read.iter().filter_map(|r| r.chars().next()).collect();
            if initials.len() >= 2 {
                out.push(Key { form: Form::Initials, field: Field::Organization, term: initials, head: true });
            }
        }
    }
}

/// The keys of a phone number: the digits of its E.164 form from each digit on (a fragment
/// of at least four digits is a prefix of one), and a Chinese landline as dialled at home
/// (`021…`). A number that does not parse keeps its digits as written.
pub fn phone(out: &mut Vec<Key>, field: Field, raw: &str) {
    let digits: String = match normalize::phone_e164(raw) {
        Ok(p) => p.as_str().trim_start_matches('+').to_string(),
        Err(_) => normalize::fold_width(raw).chars().filter(char::is_ascii_digit).collect(),
    };
    if digits.len() < MIN_DIGITS {
        return;
    }
    // A Chinese number's keys start after its country code: the national number is the
    // number as people say it, and a query that starts with 86 is also read without it
    // (`query.rs`), which saves a key per number (two million in a million customers).
    let national = if digits.starts_with("86") { 2 } else { 0 };
    for i in national..=digits.len() - MIN_DIGITS {
        out.push(Key { form: Form::Digits, field, term: digits[i..].to_string(), head: i == national });
    }
    if let Some(rest) = digits.strip_prefix("86")
        && !rest.starts_with('1')
    {
        out.push(Key { form: Form::Digits, field, term: format!("0{rest}"), head: true });
    }
}

/// The key of an e-mail address (found by prefix).
pub fn email(out: &mut Vec<Key>, field: Field, raw: &str) {
    let e = raw.trim().to_lowercase();
    if !e.is_empty() {
        out.push(Key { form: Form::Email, field, term: cut(&e), head: true });
    }
}

/// Sorted, without repeats (a name like 张张 has one suffix twice; a head wins).
pub fn dedup(mut keys: Vec<Key>) -> Vec<Key> {
    keys.sort_by(|a, b| (a.form, &a.term, a.field, !a.head).cmp(&(b.form, &b.term, b.field, !b.head)));
    keys.dedup_by(|later, first| later.form == first.form && later.term == first.term && later.field == first.field);
    keys
}

/// The reading of a query's characters, for matching it against readings: the first
/// characters as a surname when they are one.
pub fn query_readings(units: &[Unit]) -> Vec<String> {
    readings(units, true)
}

/// The words one typo away from `s`: a letter missing, one too many, two swapped.
pub fn one_typo(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    for i in 0..b.len() {
        // `s` has an extra letter.
        out.push([&b[..i], &b[i + 1..]].concat());
        if i + 1 < b.len() && b[i] != b[i + 1] {
            let mut t = b.to_vec();
            t.swap(i, i + 1);
            out.push(t);
        }
    }
    for i in 0..=b.len() {
        for c in b'a'..=b'z' {
            out.push([&b[..i], &[c][..], &b[i..]].concat());
        }
    }
    let mut words: Vec<String> = out.into_iter().filter_map(|w| String::from_utf8(w).ok()).filter(|w| w != s).collect();
    words.sort();
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(keys: &[Key], form: Form) -> Vec<(String, bool)> {
        keys.iter().filter(|k| k.form == form).map(|k| (k.term.clone(), k.head)).collect()
    }

    #[test]
    fn a_name_is_its_suffixes_in_text_pinyin_and_initials() {
        let mut keys = Vec::new();
        name(&mut keys, Field::Name, "張 偉明", true);
        assert_eq!(
            terms(&keys, Form::Text),
            vec![("张伟明".into(), true), ("伟明".into(), false), ("明".into(), false)]
        );
        assert_eq!(
            terms(&keys, Form::Pinyin),
            vec![("zhangweiming".into(), true), ("weiming".into(), false), ("ming".into(), false)]
        );
        assert_eq!(terms(&keys, Form::Initials), vec![("zwm".into(), true)]);
    }

    #[test]
    fn a_phone_is_found_by_any_four_digits_and_as_dialled() {
        let mut keys = Vec::new();
        phone(&mut keys, Field::Phone, "021-6555 1234");
        let t = terms(&keys, Form::Digits);
        assert!(!t.iter().any(|(s, _)| s.starts_with("8621")), "the country code is read off the query");
        assert!(t.contains(&("2165551234".into(), true)));
        assert!(t.contains(&("65551234".into(), false)));
        assert!(t.contains(&("1234".into(), false)));
        assert!(t.contains(&("02165551234".into(), true)));
        assert!(!t.iter().any(|(s, _)| s.len() < MIN_DIGITS));
        let mut mobile = Vec::new();
        phone(&mut mobile, Field::Phone, "138 0013 8000");
        assert!(!terms(&mobile, Form::Digits).iter().any(|(s, _)| s.starts_with('0') && s.len() == 11));
    }

    #[test]
    fn an_organization_is_found_without_region_and_form() {
        let mut keys = Vec::new();
        organization(&mut keys, "上海华联商贸有限公司");
        assert!(terms(&keys, Form::Text).contains(&("华联商贸".into(), true)));
        assert!(terms(&keys, Form::Text).contains(&("上海华联商贸".into(), true)));
        assert!(terms(&keys, Form::Initials).contains(&("hlsm".into(), true)));
    }

    #[test]
    fn one_typo_covers_a_swap_a_missing_and_an_extra_letter() {
        let v = one_typo("zhangwie");
        assert!(v.contains(&"zhangwei".to_string()));
        assert!(one_typo("zhagwei").contains(&"zhangwei".to_string()));
        assert!(one_typo("zhanggwei").contains(&"zhangwei".to_string()));
        assert!(!v.contains(&"zhangwie".to_string()));
    }
}
