//! Consents per channel (marketing needs one) and the legal hold that stops an erasure.
use super::*;

/// Sets or lifts a legal hold (admins: settings update, scope ALL). While set, the
/// person's data cannot be erased.
///
/// # Errors
/// FORBIDDEN, NOT_FOUND, VALIDATION (a hold needs a reason).
pub async fn set_legal_hold(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    hold: bool,
    reason: Option<String>,
) -> AppResult<customer::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    let reason = clean(reason);
    if hold && reason.is_none() {
        return Err(AppError::invalid("reason", "a legal hold needs a reason"));
    }
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500 || r.contains('\0')) {
        return Err(AppError::invalid("reason", "at most 500 characters, no NUL"));
    }
    write(db, async |txn| {
        let old = lock_customer(txn, id).await?;
        customer::Entity::update_many()
            .col_expr(customer::Column::LegalHold, Expr::value(hold))
            .col_expr(customer::Column::LegalHoldReason, Expr::value(if hold { reason.clone() } else { None }))
            .col_expr(customer::Column::Version, Expr::col(customer::Column::Version).add(1))
            .col_expr(customer::Column::UpdatedAt, Expr::value(now()))
            .filter(customer::Column::Id.eq(id))
            .exec(txn)
            .await?;
        let new = customer::Entity::find_by_id(id).one(txn).await?.ok_or(AppError::NotFound("customer"))?;
        change::record(txn, Some(actor.id()), Verb::LegalHold, Subject::Customer, id, Some(&old), Some(&new)).await?;
        Ok(new)
    })
    .await
}

/// Records that a customer gave (or withdrew) marketing consent on a channel, and where.
/// Needs the right to update the customer.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN, VALIDATION (source too long).
pub async fn set_consent(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    channel: ConsentChannel,
    given: bool,
    source: Option<String>,
) -> AppResult<consent::Model> {
    let source = clean(source);
    if source.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(AppError::invalid("source", "at most 200 characters"));
    }
    write(db, async |txn| {
        lock_customer(txn, id).await?;
        let c = customers::load_for_action(txn, actor, id, Action::Update).await?;
        if c.erased_at.is_some() {
            return Err(AppError::Conflict("this person's data was erased".into()));
        }
        let old = consent::Entity::find_by_id((id, channel)).one(txn).await?;
        let at = now();
        let row = consent::Model {
            customer_id: id,
            channel,
            given_at: if given { Some(at) } else { old.as_ref().and_then(|o| o.given_at) },
            withdrawn_at: if given { None } else { Some(at) },
            source: source.or_else(|| old.as_ref().and_then(|o| o.source.clone())),
            recorded_by: Some(actor.id()),
            updated_at: at,
        };
        let am = consent::ActiveModel {
            customer_id: Set(row.customer_id),
            channel: Set(row.channel),
            given_at: Set(row.given_at),
            withdrawn_at: Set(row.withdrawn_at),
            source: Set(row.source.clone()),
            recorded_by: Set(row.recorded_by),
            updated_at: Set(row.updated_at),
        };
        consent::Entity::insert(am)
            .on_conflict(
                OnConflict::columns([consent::Column::CustomerId, consent::Column::Channel])
                    .update_columns([
                        consent::Column::GivenAt,
                        consent::Column::WithdrawnAt,
                        consent::Column::Source,
                        consent::Column::RecordedBy,
                        consent::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        let verb = if given { Verb::ConsentGiven } else { Verb::ConsentWithdrawn };
        change::record(txn, Some(actor.id()), verb, Subject::Consent, id, old.as_ref(), Some(&row)).await?;
        Ok(row)
    })
    .await
}

/// The consents of customers, by customer.
///
/// # Errors
/// Database errors.
pub async fn consents_of(db: &impl ConnectionTrait, ids: Vec<Uuid>) -> AppResult<HashMap<Uuid, Vec<consent::Model>>> {
    let mut out: HashMap<Uuid, Vec<consent::Model>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        for c in consent::Entity::find()
            .filter(consent::Column::CustomerId.is_in(chunk.to_vec()))
            .order_by_asc(consent::Column::Channel)
            .all(db)
            .await?
        {
            out.entry(c.customer_id).or_default().push(c);
        }
    }
    Ok(out)
}

/// Of these customers, those with marketing consent on at least one channel (given and
/// not withdrawn): only they get promotional reminders.
///
/// # Errors
/// Database errors.
pub async fn consenting(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<std::collections::HashSet<Uuid>> {
    let mut out = std::collections::HashSet::new();
    for chunk in ids.chunks(1000) {
        let rows: Vec<Uuid> = consent::Entity::find()
            .select_only()
            .column(consent::Column::CustomerId)
            .filter(consent::Column::CustomerId.is_in(chunk.to_vec()))
            .filter(
                Condition::all()
                    .add(consent::Column::GivenAt.is_not_null())
                    .add(consent::Column::WithdrawnAt.is_null()),
            )
            .into_tuple()
            .all(db)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}
