//! A file's header mapped to fields: each record kind's import fields, their names and
//! other headers (the catalogue's), custom fields by key or label, export-only columns.
use super::*;

/// A field a column can fill (of a customer, or of a contact and the customer it hangs off).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Field {
    /// The record's id, as an export writes it: matched before the natural keys.
    Id,
    /// The customer a contact hangs off: its id, or one of its natural keys.
    CustomerId,
    CustomerName,
    CustomerPhone,
    CustomerEmail,
    Title,
    DealRole,
    Mobile,
    OfficePhone,
    Hometown,
    Hobbies,
    Notes,
    Stage,
    Amount,
    Currency,
    ExpectedCloseDate,
    ActualCloseDate,
    LostReason,
    Kind,
    Category,
    Name,
    Gender,
    Birthday,
    Phone,
    Email,
    Address,
    Region,
    Industry,
    Source,
    Importance,
    CreditRating,
    CooperationStartDate,
    LifecycleStage,
}

/// A field and its name (the API's, the export's header); its other headers are the
/// record's catalogue's (`catalogue`).
pub type FieldName = (Field, &'static str);

/// Each customer field an import reads.
pub const CUSTOMER_FIELDS: &[FieldName] = &[
    (Field::Id, "id"),
    (Field::Kind, "kind"),
    (Field::Category, "category"),
    (Field::Name, "name"),
    (Field::Gender, "gender"),
    (Field::Birthday, "birthday"),
    (Field::Phone, "phone"),
    (Field::Email, "email"),
    (Field::Address, "address"),
    (Field::Region, "region"),
    (Field::Industry, "industry"),
    (Field::Source, "source"),
    (Field::Importance, "importance"),
    (Field::CreditRating, "creditRating"),
    (Field::CooperationStartDate, "cooperationStartDate"),
    (Field::LifecycleStage, "lifecycleStage"),
];

/// Where one column goes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Target {
    Field(Field),
    /// A custom field, by key (typed by the line's category template).
    Custom(String),
    Skip,
}

/// The columns of a file, mapped.
pub struct Mapping {
    pub(super) targets: Vec<Target>,
}

pub(super) fn folded(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .collect::<String>()
        .to_lowercase()
}

/// The fields of a kind of record.
pub(super) fn fields_of(kind: ImportKind) -> &'static [FieldName] {
    match kind {
        ImportKind::Customers => CUSTOMER_FIELDS,
        ImportKind::Contacts => contacts::FIELDS,
        ImportKind::Deals => deals::FIELDS,
    }
}

/// The catalogue of the records a kind of import writes.
pub(super) fn catalogue_of(kind: ImportKind) -> &'static RecordCatalogue {
    match kind {
        ImportKind::Customers => &catalogue::CUSTOMER,
        ImportKind::Contacts => &catalogue::CONTACT,
        ImportKind::Deals => &catalogue::DEAL,
    }
}

/// The field a header names: a field's name or one of its headers in the catalogue.
pub(super) fn field_named(kind: ImportKind, name: &str) -> Option<Field> {
    let f = folded(name);
    let (api, _) = catalogue_of(kind)
        .import_fields()
        .find(|(n, headers)| folded(n) == f || headers.iter().any(|a| folded(a) == f))?;
    fields_of(kind).iter().find(|(_, n)| *n == api).map(|(field, _)| *field)
}

impl Mapping {
    /// Maps header cells to fields: a field's name or common Chinese header, `custom.<key>`
    /// or a custom field's key or label in a category open to the importer (`categories`), an export-only column (skipped),
    /// or what `explicit` says (`header -> field name`, `custom.<key>`, or `-` to skip).
    ///
    /// # Errors
    /// VALIDATION listing every header that maps to nothing or to a field already mapped.
    pub fn new(
        kind: ImportKind,
        categories: &[Category],
        header: &[String],
        explicit: &HashMap<String, String>,
    ) -> AppResult<Self> {
        let mut problems = Vec::new();
        let catalogue = catalogue_of(kind);
        // Custom fields are customers' (`category.rs`).
        let categories = if kind == ImportKind::Customers { categories } else { &[] };
        let mut targets = Vec::with_capacity(header.len());
        let custom_of = |name: &str| -> Option<String> {
            let n = name.trim();
            if kind == ImportKind::Customers
                && let Some(key) = n.strip_prefix("custom.").or_else(|| n.strip_prefix("customFields."))
            {
                return Some(key.trim().to_string());
            }
            categories
                .iter()
                .flat_map(|c| c.fields.iter())
                .find(|f| f.key == n || f.label.trim() == n)
                .map(|f| f.key.clone())
        };
        for (i, raw) in header.iter().enumerate() {
            let name = raw.trim().trim_start_matches('\u{feff}').trim();
            let column = format!("header.{}", i + 1);
            let target = match explicit.get(name).map(|s| s.trim()) {
                Some("-") => Some(Target::Skip),
                Some(to) => field_named(kind, to).map(Target::Field).or_else(|| {
                    to.strip_prefix("custom.")
                        .filter(|_| kind == ImportKind::Customers)
                        .map(|k| Target::Custom(k.trim().to_string()))
                }),
                None if name.is_empty() => Some(Target::Skip),
                None => field_named(kind, name)
                    .map(Target::Field)
                    .or_else(|| custom_of(name).map(Target::Custom))
                    .or_else(|| catalogue.read_past().any(|r| folded(r) == folded(name)).then_some(Target::Skip)),
            };
            match target {
                None => problems.push(FieldError::new(
                    column,
                    format!("column \"{name}\" maps to no field (map it with map={name}:<field>, or skip it with map={name}:-)"),
                )),
                Some(t) => {
                    if t != Target::Skip && targets.contains(&t) {
                        problems.push(FieldError::new(column, format!("column \"{name}\" fills a field an earlier column fills")));
                    }
                    targets.push(t);
                }
            }
        }
        let (required, hint) = match kind {
            ImportKind::Deals => (Field::Title, "title (标题)"),
            _ => (Field::Name, "name (名称/姓名)"),
        };
        if !targets.contains(&Target::Field(required)) && problems.is_empty() {
            problems.push(FieldError::new("header", format!("no column maps to {hint}")));
        }
        let links = [Field::CustomerId, Field::CustomerName, Field::CustomerPhone, Field::CustomerEmail];
        if kind != ImportKind::Customers
            && problems.is_empty()
            && !links.iter().any(|f| targets.contains(&Target::Field(*f)))
        {
            problems.push(FieldError::new(
                "header",
                "no column names the customer (customerId, customerName/客户名称, customerPhone or customerEmail)",
            ));
        }
        if problems.is_empty() { Ok(Self { targets }) } else { Err(AppError::Validation(problems)) }
    }
}
