//! What was typed, read every way it may be meant: text, phone digits, e-mail, pinyin,
//! initials, one typo; each reading a range (or for a typo a set) of stored keys.
use super::fold::{Unit, fold, is_han, org_core, units};
use super::keys::{Form, MAX_TERM, MIN_DIGITS, one_typo, query_readings};
use crate::error::{AppError, AppResult};
use crate::kernel::normalize;

/// Characters a search may have.
const MAX_QUERY: usize = 100;
/// Letters at least for a match with one typo, and at most (the variants grow with it).
const FUZZY_LETTERS: std::ops::RangeInclusive<usize> = 5..=24;

/// How a range's matches score.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Points {
    /// Whole 100, from the start 90, inside 80.
    Text,
    /// Whole 100, from the start 90 (an e-mail address is found by its beginning).
    Email,
    /// Whole 78, from the start 74, from a later syllable 70.
    Pinyin,
    /// Whole 64, from the start 60.
    Initials,
    /// 50.
    Fuzzy,
}

/// One reading of the query: a range (or, for a typo, a set) of terms of some forms.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reading {
    pub forms: Vec<Form>,
    /// The prefix; for [`Points::Fuzzy`] the terms themselves.
    pub terms: Vec<String>,
    pub points: Points,
    /// Characters the record's text must hold too (`zhang伟`: 张伟, not 张维).
    pub han: Vec<char>,
    /// Only keys of a whole form from its start (a number typed with its country code:
    /// the national number starts where the code ends).
    pub head_only: bool,
}

/// The readings of a query; `None` when it is too short to mean anything but everything
/// (one Latin letter or digit).
///
/// # Errors
/// VALIDATION when it holds no letter, digit or character, or is too long.
pub(super) fn readings(query: &str) -> AppResult<Option<Vec<Reading>>> {
    let raw = query.trim();
    if raw.chars().count() > MAX_QUERY {
        return Err(AppError::invalid("query", format!("is longer than {MAX_QUERY} characters")));
    }
    if raw.chars().any(char::is_control) {
        return Err(AppError::invalid("query", "has a control character"));
    }
    let folded = fold(raw);
    let parts = units(&folded);
    if parts.is_empty() {
        return Err(AppError::invalid("query", "has no letter, digit or Chinese character to search for"));
    }
    let compact: String = parts.iter().map(Unit::text).collect();
    let han: Vec<char> = compact.chars().filter(|c| is_han(*c)).collect();
    let has_digit = compact.chars().any(|c| c.is_ascii_digit());
    let has_letter = compact.chars().any(|c| c.is_ascii_lowercase());
    if han.is_empty() && compact.chars().count() < 2 {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut add = |forms: Vec<Form>, term: String, points: Points, han: Vec<char>, head_only: bool| {
        // Keys are cut as long; a longer query is found by its beginning.
        let term: String = term.chars().take(MAX_TERM).collect();
        let same = |r: &Reading| r.forms == forms && r.terms == [term.clone()] && r.head_only == head_only;
        if !term.is_empty() && !out.iter().any(same) {
            out.push(Reading { forms, terms: vec![term], points, han, head_only });
        }
    };

    // An e-mail address is nothing else.
    if folded.contains('@') {
        let address: String = folded.chars().filter(|c| !c.is_whitespace()).collect();
        add(vec![Form::Email], address, Points::Email, vec![], false);
        return Ok(Some(out));
    }

    // Text as typed, and an organization's name without its company form and region.
    add(vec![Form::Text], compact.clone(), Points::Text, vec![], false);
    let without_form: String = units(&fold(&normalize::org_name(raw))).iter().map(Unit::text).collect();
    let core: String = units(&org_core(raw)).iter().map(Unit::text).collect();
    // A region typed is meant: 上海华联商贸 is not 北京华联商贸, whose core is the same.
    let region_typed = core != without_form && without_form.ends_with(&core);
    add(vec![Form::Text], without_form, Points::Text, vec![], false);
    if !region_typed {
        add(vec![Form::Text], core, Points::Text, vec![], false);
    }

    // A phone number or a fragment of one, in any written form.
    let phone_like = folded.chars().all(|c| c.is_ascii_digit() || " +-().//".contains(c));
    if phone_like {
        let digits: String = folded.chars().filter(char::is_ascii_digit).collect();
        // 00 starts an international number, or is two digits inside one; 86 starts a
        // Chinese number with its country code, whose keys start after it, or is two
        // digits inside one.
        let mut numbers = vec![digits.clone()];
        numbers.extend(digits.strip_prefix("00").map(str::to_string));
        for n in numbers {
            if let Some(national) = n.strip_prefix("86").filter(|r| r.len() >= MIN_DIGITS) {
                add(vec![Form::Digits], national.to_string(), Points::Text, vec![], true);
            }
            if n.len() >= MIN_DIGITS {
                add(vec![Form::Digits], n, Points::Text, vec![], false);
            }
        }
    }

    // The start of an address without its @: when it has what names rarely have (a dot,
    // a digit beside letters); plain letters are a name, whose pinyin an address often
    // repeats (zhangwei88@…), and would rank every such address above the name itself.
    let addressy = folded.contains(['.', '_', '-', '+']) || (has_letter && has_digit);
    if han.is_empty() && addressy && !folded.contains(char::is_whitespace) {
        add(vec![Form::Email], folded.clone(), Points::Email, vec![], false);
    }

    // Pinyin, initials and typos: letters (with characters among them, read as pinyin).
    if has_letter && !has_digit {
        let mixed = if han.is_empty() { vec![] } else { han.clone() };
        let read: String = query_readings(&parts).concat();
        add(vec![Form::Pinyin], read, Points::Pinyin, mixed.clone(), false);
        // A character's initial as its reading starts (a surname's as a surname's).
        let initials: String = parts
            .iter()
            .zip(query_readings(&parts))
            .map(|(u, r)| match u {
                Unit::Han(_) => r.chars().next().map(String::from).unwrap_or_default(),
                Unit::Word(w) => w.clone(),
            })
            .collect();
        if initials.len() >= 2 {
            add(vec![Form::Initials], initials, Points::Initials, mixed, false);
        }
        if han.is_empty() && FUZZY_LETTERS.contains(&compact.len()) {
            out.push(Reading {
                forms: vec![Form::Pinyin, Form::Text],
                terms: one_typo(&compact),
                points: Points::Fuzzy,
                han: vec![],
                head_only: false,
            });
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(q: &str) -> Vec<(Vec<Form>, String)> {
        readings(q)
            .unwrap()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.points != Points::Fuzzy)
            .map(|r| (r.forms, r.terms[0].clone()))
            .collect()
    }

    #[test]
    fn a_query_is_read_every_way_it_may_be_meant() {
        let p = prefixes("Zhāng Wěi");
        assert!(p.contains(&(vec![Form::Pinyin], "zhangwei".into())), "{p:?}");
        assert!(p.contains(&(vec![Form::Text], "zhangwei".into())));
        assert!(prefixes("zhang伟").contains(&(vec![Form::Pinyin], "zhangwei".into())));
        assert!(prefixes("张w").contains(&(vec![Form::Initials], "zw".into())));
        assert!(prefixes("曾w").contains(&(vec![Form::Pinyin], "zengw".into())));
        assert!(prefixes("華聯").contains(&(vec![Form::Text], "华联".into())));
        assert!(prefixes("021-6555").contains(&(vec![Form::Digits], "0216555".into())));
        assert!(prefixes("+86 138 0013").contains(&(vec![Form::Digits], "861380013".into())));
        assert!(prefixes("+86 138 0013").contains(&(vec![Form::Digits], "1380013".into())));
        let whole = readings("+8613800138000").unwrap().unwrap();
        assert!(whole.iter().any(|r| r.head_only && r.terms == ["13800138000"]), "{whole:?}");
        assert!(!whole.iter().any(|r| !r.head_only && r.terms == ["13800138000"]));
        assert!(prefixes("００１３８０００").contains(&(vec![Form::Digits], "138000".into())));
        assert!(prefixes("华联商贸有限公司").contains(&(vec![Form::Text], "华联商贸".into())));
        assert!(prefixes("上海华联商贸有限公司").contains(&(vec![Form::Text], "上海华联商贸".into())));
        assert!(!prefixes("北京华联商贸").contains(&(vec![Form::Text], "华联商贸".into())), "a region typed is meant");
        assert!(prefixes("li.na@ex").contains(&(vec![Form::Email], "li.na@ex".into())));
        // Too short to mean anything but everything.
        assert!(readings("z").unwrap().is_none());
        assert!(readings("7").unwrap().is_none());
        // Nothing to search for.
        for bad in ["", "  ", "---", "。，"] {
            assert!(readings(bad).is_err(), "{bad:?}");
        }
        // A digit fragment under four digits is no phone search.
        assert!(!prefixes("138").iter().any(|(f, _)| f == &vec![Form::Digits]));
    }
}
