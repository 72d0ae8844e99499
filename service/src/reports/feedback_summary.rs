//! The feedback summary: counts by kind, channel or status, with small groups pooled.
use super::*;

/// Dimensions of the feedback summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackDimension {
    Kind,
    Channel,
    Status,
}

impl FeedbackDimension {
    pub fn name(self) -> &'static str {
        match self {
            FeedbackDimension::Kind => "kind",
            FeedbackDimension::Channel => "channel",
            FeedbackDimension::Status => "status",
        }
    }
}

/// One row of the feedback summary.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    pub keys: Vec<String>,
    pub count: i64,
    pub rated: i64,
    /// Average rating x 100 (1-5 scale), when any feedback is rated.
    pub average_rating_x100: Option<i64>,
    /// Net promoter score (-100..100) over the answers with an NPS score.
    pub nps: Option<i64>,
    pub nps_answers: i64,
    /// Median time from creation to resolution, in minutes.
    pub median_resolution_minutes: Option<i64>,
}

/// Feedback received between two dates: counts by the dimensions, average rating, NPS
/// (promoters 9-10 minus detractors 0-6) and median resolution time.
///
/// # Errors
/// FORBIDDEN without report access; VALIDATION for a reversed period.
pub async fn feedback_summary(
    db: &DatabaseConnection,
    actor: &Actor,
    from: NaiveDate,
    to: NaiveDate,
    group_by: &[FeedbackDimension],
) -> AppResult<Vec<FeedbackRow>> {
    actor.require(Resource::Report, Action::Read)?;
    if to < from {
        return Err(AppError::invalid("to", "must not be before from"));
    }
    if group_by.iter().enumerate().any(|(i, d)| group_by[..i].contains(d)) {
        return Err(AppError::invalid("groupBy", "a dimension appears twice"));
    }
    let (start, end) = (from.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_else(Utc::now), end_of(to));
    let customers = Query::select()
        .column((customer::Entity, customer::Column::Id))
        .from(customer::Entity)
        .cond_where(report_condition(actor)?)
        .to_owned();
    // Rows are aggregated here, one feedback row at a time: the median needs them.
    #[derive(sea_orm::FromQueryResult)]
    struct Item {
        kind: String,
        channel: String,
        status: String,
        rating: Option<i32>,
        nps: Option<i32>,
        created_at: DateTime<Utc>,
        resolved_at: Option<DateTime<Utc>>,
    }
    let items = feedback::Entity::find()
        .select_only()
        .columns([
            feedback::Column::Kind,
            feedback::Column::Channel,
            feedback::Column::Status,
            feedback::Column::Rating,
            feedback::Column::Nps,
        ])
        .columns([feedback::Column::CreatedAt, feedback::Column::ResolvedAt])
        .filter(feedback::Column::DeletedAt.is_null())
        .filter(feedback::Column::CreatedAt.gte(start))
        .filter(feedback::Column::CreatedAt.lt(end))
        .filter(feedback::Column::CustomerId.in_subquery(customers))
        .into_model::<Item>()
        .all(db)
        .await?;
    struct Acc {
        count: i64,
        ratings: Vec<i64>,
        promoters: i64,
        detractors: i64,
        nps_answers: i64,
        resolution: Vec<i64>,
    }
    let mut groups: BTreeMap<Vec<String>, Acc> = BTreeMap::new();
    for item in items {
        let keys: Vec<String> = group_by
            .iter()
            .map(|d| match d {
                FeedbackDimension::Kind => item.kind.clone(),
                FeedbackDimension::Channel => item.channel.clone(),
                FeedbackDimension::Status => item.status.clone(),
            })
            .collect();
        let acc = groups.entry(keys).or_insert(Acc {
            count: 0,
            ratings: vec![],
            promoters: 0,
            detractors: 0,
            nps_answers: 0,
            resolution: vec![],
        });
        acc.count += 1;
        if let Some(r) = item.rating {
            acc.ratings.push(r as i64);
        }
        if let Some(n) = item.nps {
            acc.nps_answers += 1;
            if n >= 9 {
                acc.promoters += 1;
            } else if n <= 6 {
                acc.detractors += 1;
            }
        }
        if let Some(r) = item.resolved_at {
            acc.resolution.push((r - item.created_at).num_minutes().max(0));
        }
    }
    Ok(groups
        .into_iter()
        .map(|(keys, mut a)| {
            a.resolution.sort_unstable();
            let median = match a.resolution.len() {
                0 => None,
                n if n % 2 == 1 => Some(a.resolution[n / 2]),
                n => Some((a.resolution[n / 2 - 1] + a.resolution[n / 2]) / 2),
            };
            FeedbackRow {
                keys,
                count: a.count,
                rated: a.ratings.len() as i64,
                average_rating_x100: (!a.ratings.is_empty()).then(|| {
                    (a.ratings.iter().sum::<i64>() * 100 + a.ratings.len() as i64 / 2) / a.ratings.len() as i64
                }),
                nps: (a.nps_answers > 0).then(|| ((a.promoters - a.detractors) * 100) / a.nps_answers),
                nps_answers: a.nps_answers,
                median_resolution_minutes: median,
            }
        })
        .collect())
}
