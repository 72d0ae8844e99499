//! Contact compliance: what the care standards expect and what was done, per customer
//! and per owner.
use super::*;

/// What one standard expects of a customer and what was done.
#[derive(SimpleObject, Clone)]
pub struct Expectation {
    pub role: Role,
    pub kind: ContactKind,
    /// Contacts expected per period.
    pub expected: i32,
    pub period_days: i32,
    /// Contacts logged within the period up to `asOf`.
    pub logged: i64,
    pub last_contact_at: Option<DateTime<Utc>>,
    /// By when the next contact is due.
    pub due_by: Date,
    pub overdue: bool,
    /// `logged >= expected`.
    pub met: bool,
}

/// A customer's follow-up compliance.
#[derive(SimpleObject, Clone)]
pub struct CustomerCompliance {
    pub customer: Customer,
    pub expectations: Vec<Expectation>,
    /// Any expectation overdue.
    pub overdue: bool,
}

/// One owner's follow-up summary (seed 000: callback counts feed appraisals).
#[derive(SimpleObject)]
pub struct OwnerCompliance {
    /// None: customers in a public pool.
    pub owner: Option<crate::schema::user::User>,
    pub owner_id: Option<ID>,
    pub customers: i64,
    /// Expectations (customer x standard).
    pub expected: i64,
    pub met: i64,
    pub overdue: i64,
    /// Contacts logged that count toward the expectations.
    pub contacts_logged: i64,
    /// met / expected, 0 to 1.
    pub compliance_rate: f64,
}

/// The follow-up compliance report.
pub struct Compliance {
    pub(super) report: svc::Compliance,
}

#[Object]
impl Compliance {
    async fn as_of(&self) -> Date {
        Date(self.report.as_of)
    }
    async fn owners(&self, ctx: &Context<'_>) -> Result<Vec<OwnerCompliance>> {
        // All owners in one batch of the user loader, not one query per owner.
        let users = async_graphql::futures_util::future::try_join_all(self.report.owners.iter().map(|o| async move {
            match o.owner_id {
                Some(id) => crate::schema::loaders::user(ctx, id).await,
                None => Ok(None),
            }
        }))
        .await?;
        Ok(self
            .report
            .owners
            .iter()
            .zip(users)
            .map(|(o, owner)| OwnerCompliance {
                owner,
                owner_id: o.owner_id.map(|id| ID(id.to_string())),
                customers: o.customers,
                expected: o.expected,
                met: o.met,
                overdue: o.overdue,
                contacts_logged: o.contacts_logged,
                compliance_rate: if o.expected == 0 { 1.0 } else { o.met as f64 / o.expected as f64 },
            })
            .collect())
    }
    /// Customers in the report, by id, as a page.
    #[graphql(complexity = "crate::schema::common::list_cost(first, child_complexity)")]
    async fn customers(
        &self,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(default)] overdue_only: bool,
    ) -> Result<CustomerComplianceConnection> {
        let page = self.report.customer_page(overdue_only, &page_args(first, after)).gql()?;
        Ok(CustomerComplianceConnection(page.map(customer_compliance)))
    }
    /// Customers in the report.
    async fn total_customers(&self) -> i64 {
        self.report.customers.len() as i64
    }
}

pub(super) fn customer_compliance(c: svc::CustomerCompliance) -> CustomerCompliance {
    let expectations: Vec<Expectation> = c
        .expectations
        .iter()
        .map(|e| Expectation {
            role: e.standard.role.into(),
            kind: e.standard.kind.into(),
            expected: e.standard.count,
            period_days: e.standard.period_days,
            logged: e.logged,
            last_contact_at: e.last_contact,
            due_by: Date(e.due_by),
            overdue: e.overdue,
            met: e.met(),
        })
        .collect();
    CustomerCompliance { customer: Customer(c.customer), overdue: expectations.iter().any(|e| e.overdue), expectations }
}

connection!(
    CustomerComplianceConnection,
    CustomerComplianceEdge,
    CustomerCompliance,
    "customer's follow-up compliance"
);
