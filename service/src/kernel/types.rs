//! Values that can only hold what is valid, so that a check made once travels with the
//! value (the "parse, don't validate" pattern): a phone number in E.164, an e-mail address
//! as compared, a supported currency, and ids that name their record kind. Each is made
//! by its parser only; the string inside is read with `as_str` or taken with `String::from`.
use std::fmt;
use std::marker::PhantomData;
use uuid::Uuid;

macro_rules! text_value {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for sea_orm::Value {
            fn from(v: $name) -> sea_orm::Value {
                v.0.into()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_value! {
    /// A phone number in E.164 form (`+8613812345678`), the duplicate key of a customer:
    /// made by `normalize::phone_e164` only.
    Phone
}

text_value! {
    /// An e-mail address of the form local@domain, lower-cased as compared: made by
    /// `normalize::email` only.
    Email
}

text_value! {
    /// A supported ISO 4217 currency code, upper-case: made by `money::currency` only.
    Currency
}

impl Phone {
    pub(crate) fn new_unchecked(e164: String) -> Phone {
        Phone(e164)
    }
}

impl Email {
    pub(crate) fn new_unchecked(address: String) -> Email {
        Email(address)
    }
}

impl Currency {
    pub(crate) fn new_unchecked(code: String) -> Currency {
        Currency(code)
    }
}

/// The id of a record of kind `K` (`Id<entity::customer::Entity>`): a customer's id cannot
/// be passed where a deal's is wanted.
pub struct Id<K> {
    id: Uuid,
    kind: PhantomData<fn() -> K>,
}

impl<K> Id<K> {
    /// The id of a record of kind `K`.
    pub fn new(id: Uuid) -> Id<K> {
        Id { id, kind: PhantomData }
    }

    /// The plain id.
    pub fn uuid(self) -> Uuid {
        self.id
    }
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Id<K> {}
impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl<K> Eq for Id<K> {}
impl<K> std::hash::Hash for Id<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}
impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.id)
    }
}
impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.id.fmt(f)
    }
}
impl<K> From<Id<K>> for Uuid {
    fn from(id: Id<K>) -> Uuid {
        id.id
    }
}

/// Ids of the record kinds.
pub type CustomerId = Id<entity::customer::Entity>;
pub type ContactId = Id<entity::contact::Entity>;
pub type DealId = Id<entity::deal::Entity>;
pub type FeedbackId = Id<entity::feedback::Entity>;
pub type InteractionId = Id<entity::interaction::Entity>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{money, normalize};

    #[test]
    fn values_are_made_by_their_parsers_only() {
        let p = normalize::phone_e164("138 1234 5678").unwrap();
        assert_eq!(p.as_str(), "+8613812345678");
        assert!(normalize::phone_e164("call me").is_err());
        let e = normalize::email(" Li.Lei@Example.COM ").unwrap();
        assert_eq!(String::from(e), "li.lei@example.com");
        let c = money::currency("jpy").unwrap();
        assert_eq!((c.as_str(), money::exponent(&c)), ("JPY", Ok(0)));
        assert!(money::currency("XXX").is_err());
        let id = Uuid::now_v7();
        let customer: CustomerId = Id::new(id);
        assert_eq!(Uuid::from(customer), id);
        assert_eq!(customer.to_string(), id.to_string());
    }
}
