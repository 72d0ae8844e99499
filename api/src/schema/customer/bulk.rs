//! `createCustomers` / `upsertCustomers`: a result per item.
use super::*;

/// Why a record of a bulk call was not written.
#[derive(SimpleObject)]
pub struct BulkError {
    /// As a GraphQL error's `extensions.code`: DUPLICATE, VALIDATION, FORBIDDEN, ...
    pub code: String,
    pub message: String,
    /// VALIDATION: every bad field.
    pub fields: Vec<crate::schema::import::ImportProblem>,
    /// DUPLICATE: the department that holds the customer, where you may know it.
    pub department: Option<String>,
}

/// The result of one record of `createCustomers` / `upsertCustomers`.
#[derive(SimpleObject)]
pub struct BulkCustomerResult {
    /// The record's position in the input, from 0.
    pub index: i32,
    pub outcome: crate::schema::import::ImportOutcome,
    /// The customer written (CREATED, UPDATED) or matched and left as it was (UNCHANGED).
    pub customer: Option<Customer>,
    pub error: Option<BulkError>,
}

/// `createCustomers` / `upsertCustomers`.
pub(super) async fn bulk(
    ctx: &Context<'_>,
    mode: service::customer::bulk::Mode,
    inputs: Vec<CreateCustomerInput>,
) -> Result<Vec<BulkCustomerResult>> {
    let actor = actor(ctx)?;
    let state = ctx.data_unchecked::<crate::state::AppState>();
    let inputs = inputs.into_iter().map(Into::into).collect();
    let items = service::customer::bulk::customers(&state.db, &state.events, &state.privacy.keys, actor, mode, inputs)
        .await
        .gql()?;
    Ok(BulkCustomerResult::list(items))
}

impl BulkCustomerResult {
    fn list(items: Vec<service::customer::bulk::Item>) -> Vec<Self> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| BulkCustomerResult {
                index: i as i32,
                outcome: item.outcome.into(),
                customer: item.customer.map(Customer),
                error: item.error.map(|e| {
                    let (fields, department) = match &e {
                        AppError::Validation(fields) => (
                            fields
                                .iter()
                                .map(|f| crate::schema::import::ImportProblem {
                                    field: f.field.clone(),
                                    message: f.message.clone(),
                                })
                                .collect(),
                            None,
                        ),
                        AppError::Duplicate { department, .. } => (Vec::new(), department.clone()),
                        _ => (Vec::new(), None),
                    };
                    let message = match &e {
                        AppError::Internal(_) => "internal error".to_string(),
                        e => e.to_string(),
                    };
                    BulkError { code: e.code().to_string(), message, fields, department }
                }),
            })
            .collect()
    }
}
