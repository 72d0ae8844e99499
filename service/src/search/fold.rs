//! Text as search compares it: full-width folded to half-width (width only, not NFKC),
//! lower case, tone marks dropped (`zhāng` is `zhang`, `ü` is `v` as pinyin keyboards type
//! it), traditional characters as simplified (OpenCC's table, through `fast2s`), and cut
//! into units: each Chinese character is a unit, a run of Latin letters or digits is one.
//! Readings come from the `pinyin` crate; surnames with a reading of their own are in
//! [`SURNAMES`] (`docs/search.md`).
use crate::kernel::normalize::fold_width;
use pinyin::ToPinyin;

/// Whether `c` is a Chinese character (CJK unified ideographs and extension A, and the
/// compatibility block).
pub fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FA1F}')
}

/// A letter without its tone mark; `ü` as `v`.
fn toneless(c: char) -> char {
    match c {
        'ā' | 'á' | 'ǎ' | 'à' => 'a',
        'ē' | 'é' | 'ě' | 'è' | 'ê' => 'e',
        'ī' | 'í' | 'ǐ' | 'ì' => 'i',
        'ō' | 'ó' | 'ǒ' | 'ò' => 'o',
        'ū' | 'ú' | 'ǔ' | 'ù' => 'u',
        'ü' | 'ǖ' | 'ǘ' | 'ǚ' | 'ǜ' => 'v',
        'ń' | 'ň' | 'ǹ' => 'n',
        'ḿ' => 'm',
        c => c,
    }
}

/// Folded text: width, case, tone marks, traditional to simplified.
pub fn fold(s: &str) -> String {
    let lower: String = fold_width(s).to_lowercase().chars().map(toneless).collect();
    // Character by character (the table is per character): the units stay aligned.
    fast2s::convert(&lower)
}

/// One unit of folded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    Han(char),
    /// Latin letters and digits (`a-z0-9`), one word.
    Word(String),
}

impl Unit {
    pub fn text(&self) -> String {
        match self {
            Unit::Han(c) => c.to_string(),
            Unit::Word(w) => w.clone(),
        }
    }
}

/// The units of folded text; everything else (spaces, punctuation) separates them.
pub fn units(folded: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in folded.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(Unit::Word(std::mem::take(&mut word)));
        }
        if is_han(c) {
            out.push(Unit::Han(c));
        }
    }
    if !word.is_empty() {
        out.push(Unit::Word(word));
    }
    out
}

/// Surnames whose reading is not the character's common one (曾 is zeng, not ceng), and
/// compound surnames, two characters first. Hand-written: no crate tells a surname's
/// reading from a name's (`docs/search.md` lists them).
pub const SURNAMES: &[(&str, &[&str])] = &[
    ("尉迟", &["yu", "chi"]),
    ("万俟", &["mo", "qi"]),
    ("单于", &["chan", "yu"]),
    ("长孙", &["zhang", "sun"]),
    ("澹台", &["tan", "tai"]),
    ("令狐", &["ling", "hu"]),
    ("皇甫", &["huang", "fu"]),
    ("欧阳", &["ou", "yang"]),
    ("司马", &["si", "ma"]),
    ("上官", &["shang", "guan"]),
    ("诸葛", &["zhu", "ge"]),
    ("东方", &["dong", "fang"]),
    ("夏侯", &["xia", "hou"]),
    ("公孙", &["gong", "sun"]),
    ("慕容", &["mu", "rong"]),
    ("宇文", &["yu", "wen"]),
    ("曾", &["zeng"]),
    ("单", &["shan"]),
    ("解", &["xie"]),
    ("仇", &["qiu"]),
    ("区", &["ou"]),
    ("查", &["zha"]),
    ("朴", &["piao"]),
    ("盖", &["ge"]),
    ("尉", &["wei"]),
    ("乐", &["yue"]),
    ("覃", &["qin"]),
    ("翟", &["zhai"]),
    ("柏", &["bai"]),
    ("缪", &["miao"]),
    ("秘", &["bi"]),
    ("种", &["chong"]),
    ("重", &["chong"]),
    ("召", &["shao"]),
    ("折", &["she"]),
    ("朝", &["chao"]),
    ("员", &["yun"]),
    ("句", &["gou"]),
    ("能", &["nai"]),
    ("繁", &["po"]),
    ("眭", &["sui"]),
    ("隗", &["wei"]),
    ("藏", &["zang"]),
    ("长", &["chang"]),
    ("沈", &["shen"]),
    ("石", &["shi"]),
    ("薄", &["bo"]),
    ("便", &["pian"]),
    ("阚", &["kan"]),
    ("牟", &["mu"]),
    ("褚", &["chu"]),
    ("谌", &["chen"]),
    ("宓", &["fu"]),
    ("逄", &["pang"]),
    ("冼", &["xian"]),
    ("华", &["hua"]),
    ("任", &["ren"]),
    ("纪", &["ji"]),
    ("燕", &["yan"]),
    ("葛", &["ge"]),
    ("费", &["fei"]),
];

/// The common reading of a character (the `pinyin` crate's first), without tone; `ü` as `v`.
pub fn reading(c: char) -> Option<String> {
    c.to_pinyin().map(|p| p.plain().replace('ü', "v"))
}

/// The readings of `units`, one per unit: a word reads as itself, a character by its
/// reading (or itself when it has none). A person's name starts with a surname read as a
/// surname.
pub fn readings(units: &[Unit], person: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(units.len());
    let mut from = 0;
    if person {
        let head: String = units.iter().take(2).map(|u| if let Unit::Han(c) = u { *c } else { ' ' }).collect();
        if let Some((surname, read)) = SURNAMES.iter().find(|(s, _)| head.starts_with(s)) {
            out.extend(read.iter().map(|r| (*r).to_string()));
            from = surname.chars().count();
        }
    }
    for u in &units[from..] {
        out.push(match u {
            Unit::Han(c) => reading(*c).unwrap_or_else(|| c.to_string()),
            Unit::Word(w) => w.clone(),
        });
    }
    // Places whose characters read otherwise alone (重庆 is chongqing, not zhongqing).
    for i in from..units.len().saturating_sub(1) {
        if let (Unit::Han(a), Unit::Han(b)) = (&units[i], &units[i + 1])
            && let Some((_, read)) = PLACES.iter().find(|(p, _)| p.starts_with(*a) && p.ends_with(*b))
        {
            out[i] = read[0].to_string();
            out[i + 1] = read[1].to_string();
        }
    }
    out
}

/// Place names a company's name carries whose characters' common readings are not the
/// place's: hand-written like [`SURNAMES`].
const PLACES: &[(&str, [&str; 2])] = &[
    ("重庆", ["chong", "qing"]),
    ("长沙", ["chang", "sha"]),
    ("长春", ["chang", "chun"]),
    ("长治", ["chang", "zhi"]),
    ("厦门", ["xia", "men"]),
    ("蚌埠", ["beng", "bu"]),
    ("六安", ["lu", "an"]),
    ("丽水", ["li", "shui"]),
    ("乐山", ["le", "shan"]),
    ("大理", ["da", "li"]),
    ("番禺", ["pan", "yu"]),
    ("台州", ["tai", "zhou"]),
];

/// Region names an organization's name may start or end with (`上海华联商贸` is
/// `华联商贸` to whoever types it): provinces, autonomous regions and the cities a
/// company's registered name most often carries.
const REGIONS: &[&str] = &[
    "北京",
    "天津",
    "上海",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
    "广州",
    "深圳",
    "杭州",
    "南京",
    "苏州",
    "武汉",
    "成都",
    "西安",
    "沈阳",
    "大连",
    "青岛",
    "厦门",
    "宁波",
    "济南",
    "郑州",
    "长沙",
    "福州",
    "合肥",
    "昆明",
    "无锡",
    "佛山",
    "东莞",
    "珠海",
    "温州",
    "石家庄",
    "哈尔滨",
    "长春",
    "太原",
    "南昌",
    "南宁",
    "贵阳",
    "兰州",
    "海口",
    "乌鲁木齐",
    "呼和浩特",
];

/// Administrative suffixes a region name may carry in a company name (`上海市`).
const REGION_SUFFIXES: &[&str] = &["省", "市", "自治区", "特别行政区"];

/// An organization's name without its region at the start or end and without its company
/// form (`上海华联商贸有限公司`, `华联商贸(上海)有限公司`: `华联商贸`), folded.
pub fn org_core(name: &str) -> String {
    let key = fold(&crate::kernel::normalize::org_name(name));
    let strip_front = |s: &str| -> Option<String> {
        let region = REGIONS.iter().find(|r| s.starts_with(*r))?;
        let mut rest = &s[region.len()..];
        if let Some(suffix) = REGION_SUFFIXES.iter().find(|x| rest.starts_with(*x)) {
            rest = &rest[suffix.len()..];
        }
        (rest.chars().count() >= 2).then(|| rest.to_string())
    };
    let strip_back = |s: &str| -> Option<String> {
        let mut s = s;
        if let Some(suffix) = REGION_SUFFIXES.iter().find(|x| s.ends_with(*x)) {
            s = &s[..s.len() - suffix.len()];
        }
        let region = REGIONS.iter().find(|r| s.ends_with(*r))?;
        let rest = &s[..s.len() - region.len()];
        (rest.chars().count() >= 2).then(|| rest.to_string())
    };
    let key = strip_front(&key).unwrap_or(key);
    strip_back(&key).unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, person: bool) -> String {
        readings(&units(&fold(name)), person).concat()
    }

    #[test]
    fn folding_is_width_case_tone_and_script() {
        assert_eq!(fold("ＺＨＡＮＧ　Wěi"), "zhang wei");
        assert_eq!(fold("張偉"), "张伟");
        assert_eq!(fold("華聯"), "华联");
        assert_eq!(fold("Lǚ"), "lv");
        assert_eq!(fold("０２１－６５５５"), "021-6555");
        assert_eq!(
            units(&fold("ABC贸易 co")),
            vec![Unit::Word("abc".into()), Unit::Han('贸'), Unit::Han('易'), Unit::Word("co".into())]
        );
    }

    #[test]
    fn surnames_read_as_surnames() {
        assert_eq!(read("张伟", true), "zhangwei");
        for (name, pinyin) in [
            ("曾伟", "zengwei"),
            ("单明", "shanming"),
            ("解放", "xiefang"),
            ("仇英", "qiuying"),
            ("区华", "ouhua"),
            ("查理", "zhali"),
            ("朴树", "piaoshu"),
            ("盖丽", "geli"),
            ("尉迟恭", "yuchigong"),
            ("吕布", "lvbu"),
        ] {
            assert_eq!(read(name, true), pinyin, "{name}");
        }
        // Not a person: the common reading.
        assert_eq!(read("曾经", false), "cengjing");
        // Places by their own reading.
        assert_eq!(read("重庆鑫源贸易", false), "chongqingxinyuanmaoyi");
        assert_eq!(read("长沙", false), "changsha");
    }

    #[test]
    fn organizations_lose_region_and_form() {
        assert_eq!(org_core("上海华联商贸有限公司"), "华联商贸");
        assert_eq!(org_core("华联商贸(上海)有限公司"), "华联商贸");
        assert_eq!(org_core("上海市华联商贸有限公司"), "华联商贸");
        assert_eq!(org_core("上海华联"), "华联");
        assert_eq!(org_core("上海"), "上海");
        assert_eq!(org_core("ABC Trading Co., Ltd."), "abctrading");
    }
}
