//! `crm-bench generate`: a large synthetic data set for benchmarks (customers, contacts, deals
//! with line items over three years, interactions, feedback), written with multi-row
//! INSERTs in large transactions. It bypasses the services on purpose (no audit rows, no
//! per-deal reclassification): it is bulk loading, and a full pass grades the result.
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{contact, customer, deal, deal_line_item, feedback, interaction, user};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::sea_query::{InsertStatement, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait};
use service::access::{department, password};
use service::error::{AppError, AppResult};
use service::kernel::{new_id, normalize, now};
use uuid::Uuid;

const CITIES: &[(&str, &str)] = &[
    ("上海", "华东"),
    ("杭州", "华东"),
    ("南京", "华东"),
    ("广州", "华南"),
    ("深圳", "华南"),
    ("北京", "华北"),
    ("天津", "华北"),
    ("成都", "西南"),
    ("重庆", "西南"),
    ("武汉", "华中"),
];
const SURNAMES: &[&str] =
    &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭"];
const GIVEN: &[&str] =
    &["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明"];
const PRODUCTS: &[(&str, i64, i64)] = &[
    ("真丝围巾", 38_000, 15_000),
    ("羊绒大衣", 158_000, 72_000),
    ("龙井茶礼盒", 68_800, 30_000),
    ("蓝牙耳机", 29_900, 18_000),
    ("保温杯", 12_800, 4_500),
    ("床品四件套", 59_900, 26_000),
    ("运动鞋", 45_900, 21_000),
    ("护肤套装", 88_800, 31_000),
];

/// What was generated.
#[derive(Debug, Default)]
pub struct Generated {
    pub customers: u64,
    pub contacts: u64,
    pub deals: u64,
    pub line_items: u64,
    pub interactions: u64,
    pub feedback: u64,
}

/// Rows per INSERT statement (well under SQLite's parameter limit for the widest table).
const ROWS: usize = 500;

/// Buffers rows of one table and flushes them as multi-row INSERTs.
struct Batch<E: EntityTrait> {
    columns: Vec<E::Column>,
    rows: Vec<Vec<SimpleExpr>>,
    count: u64,
}

impl<E: EntityTrait> Batch<E> {
    fn new(columns: Vec<E::Column>) -> Self {
        Batch { columns, rows: Vec::with_capacity(ROWS), count: 0 }
    }

    /// Buffers a row; rows are written by `flush`, parents before children.
    async fn push(&mut self, _db: &impl ConnectionTrait, row: Vec<SimpleExpr>) -> AppResult<()> {
        self.rows.push(row);
        Ok(())
    }

    /// Writes the buffered rows, `ROWS` per statement.
    async fn flush(&mut self, db: &impl ConnectionTrait) -> AppResult<()> {
        while !self.rows.is_empty() {
            let take = self.rows.len().min(ROWS);
            let mut insert: InsertStatement = Query::insert();
            insert.into_table(E::default().table_ref()).columns(self.columns.clone());
            for row in self.rows.drain(..take) {
                self.count += 1;
                insert.values_panic(row);
            }
            db.execute(&insert).await?;
        }
        Ok(())
    }
}

fn v<T: Into<sea_orm::Value>>(x: T) -> SimpleExpr {
    SimpleExpr::Value(x.into())
}

/// Generates `customers` customers (about five deals each) with a fixed seed.
///
/// # Errors
/// CONFLICT when the database already holds generated data.
pub async fn generate(db: &DatabaseConnection, customers: u64, seed: u64) -> AppResult<Generated> {
    // It writes around the services (no audit, no grading): only into a database that
    // holds nothing of anyone's.
    if customer::Entity::find().one(db).await?.is_some() {
        return Err(AppError::Conflict("the database already holds customers; generate into a fresh one".into()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let today = now().date_naive();
    let start = now();

    // Departments and staff: one hash for every generated user keeps this fast.
    let hash = password::hash("generated-password".into()).await?;
    let txn = db.begin().await?;
    let hq = department::insert(&txn, None, "生成数据总部", None).await?;
    let mut reps: Vec<(Uuid, Uuid)> = Vec::new();
    let mut users = Batch::<user::Entity>::new(vec![
        user::Column::Id,
        user::Column::Email,
        user::Column::Name,
        user::Column::PasswordHash,
        user::Column::Role,
        user::Column::DepartmentId,
        user::Column::Active,
        user::Column::Version,
        user::Column::CreatedAt,
        user::Column::UpdatedAt,
    ]);
    for (r, (city, _)) in CITIES.iter().enumerate() {
        let region = department::insert(&txn, None, &format!("{city}大区"), Some(hq.id)).await?;
        for b in 0..3 {
            let branch = department::insert(&txn, None, &format!("{city}第{}分部", b + 1), Some(region.id)).await?;
            for s in 0..8 {
                let id = new_id();
                reps.push((id, branch.id));
                users
                    .push(
                        &txn,
                        vec![
                            v(id),
                            v(format!("rep{r}-{b}-{s}@gen.crm")),
                            v(format!("销售{r}-{b}-{s}")),
                            v(hash.clone()),
                            v("SALES"),
                            v(branch.id),
                            v(true),
                            v(1),
                            v(start),
                            v(start),
                        ],
                    )
                    .await?;
            }
        }
        users
            .push(
                &txn,
                vec![
                    v(new_id()),
                    v(format!("manager{r}@gen.crm")),
                    v(format!("经理{r}")),
                    v(hash.clone()),
                    v("MANAGER"),
                    v(region.id),
                    v(true),
                    v(1),
                    v(start),
                    v(start),
                ],
            )
            .await?;
    }
    users.flush(&txn).await?;
    txn.commit().await?;

    let mut customers_b = Batch::<customer::Entity>::new(vec![
        customer::Column::Id,
        customer::Column::Kind,
        customer::Column::Category,
        customer::Column::Name,
        customer::Column::NameNorm,
        customer::Column::Phone,
        customer::Column::PhoneNorm,
        customer::Column::Region,
        customer::Column::Industry,
        customer::Column::OwnerId,
        customer::Column::DepartmentId,
        customer::Column::LifecycleStage,
        customer::Column::Tier,
        customer::Column::ComputedTier,
        customer::Column::CreatedBy,
        customer::Column::Version,
        customer::Column::WonCount,
        customer::Column::RevenueMinor,
        customer::Column::MarginMinor,
        customer::Column::CreatedAt,
        customer::Column::UpdatedAt,
    ]);
    let mut contacts_b = Batch::<contact::Entity>::new(vec![
        contact::Column::Id,
        contact::Column::CustomerId,
        contact::Column::Name,
        contact::Column::Title,
        contact::Column::Mobile,
        contact::Column::Version,
        contact::Column::CreatedAt,
        contact::Column::UpdatedAt,
    ]);
    let mut deals_b = Batch::<deal::Entity>::new(vec![
        deal::Column::Id,
        deal::Column::CustomerId,
        deal::Column::OwnerId,
        deal::Column::Title,
        deal::Column::Stage,
        deal::Column::AmountMinor,
        deal::Column::Currency,
        deal::Column::ExpectedCloseDate,
        deal::Column::ActualCloseDate,
        deal::Column::LostReason,
        deal::Column::Version,
        deal::Column::CreatedAt,
        deal::Column::UpdatedAt,
    ]);
    let mut lines_b = Batch::<deal_line_item::Entity>::new(vec![
        deal_line_item::Column::Id,
        deal_line_item::Column::DealId,
        deal_line_item::Column::Position,
        deal_line_item::Column::Product,
        deal_line_item::Column::Quantity,
        deal_line_item::Column::UnitPriceMinor,
        deal_line_item::Column::UnitCostMinor,
        deal_line_item::Column::CreatedAt,
    ]);
    let mut interactions_b = Batch::<interaction::Entity>::new(vec![
        interaction::Column::Id,
        interaction::Column::CustomerId,
        interaction::Column::UserId,
        interaction::Column::Kind,
        interaction::Column::Direction,
        interaction::Column::OccurredAt,
        interaction::Column::Summary,
        interaction::Column::Version,
        interaction::Column::CreatedAt,
        interaction::Column::UpdatedAt,
    ]);
    let mut feedback_b = Batch::<feedback::Entity>::new(vec![
        feedback::Column::Id,
        feedback::Column::CustomerId,
        feedback::Column::Kind,
        feedback::Column::Channel,
        feedback::Column::Rating,
        feedback::Column::Nps,
        feedback::Column::Content,
        feedback::Column::Status,
        feedback::Column::Version,
        feedback::Column::CreatedAt,
        feedback::Column::UpdatedAt,
    ]);

    let mut txn = db.begin().await?;
    for n in 0..customers {
        let (owner, dept) = reps[rng.random_range(0..reps.len())];
        let (city, region) = CITIES[(n % CITIES.len() as u64) as usize];
        let organization = n % 3 != 0;
        let name = if organization {
            format!("{city}{}贸易有限公司{n}", ["华联", "鑫源", "恒达", "汇通", "锦程", "嘉禾"][(n % 6) as usize])
        } else {
            format!("{}{}", SURNAMES[rng.random_range(0..SURNAMES.len())], GIVEN[rng.random_range(0..GIVEN.len())])
        };
        let phone = format!("1{}{:09}", [3, 5, 7, 8, 9][(n % 5) as usize], n % 1_000_000_000);
        let phone_norm = normalize::phone_e164(&phone).ok().map(String::from);
        let created: DateTime<Utc> = start - Duration::minutes(rng.random_range(0..60 * 24 * 365 * 3));
        let id = new_id();
        customers_b
            .push(
                &txn,
                vec![
                    v(id),
                    v(if organization { "ORGANIZATION" } else { "INDIVIDUAL" }),
                    v(if organization { "partner" } else { "retail" }),
                    v(name.clone()),
                    v(organization.then(|| normalize::org_name(&name))),
                    v(phone),
                    v(phone_norm),
                    v(region),
                    v(["批发零售", "连锁超市", "服装", "餐饮"][(n % 4) as usize]),
                    v(owner),
                    v(dept),
                    v("PROSPECT"),
                    v("D"),
                    v("D"),
                    v(owner),
                    v(1),
                    v(0),
                    v(0i64),
                    v(0i64),
                    v(created),
                    v(created),
                ],
            )
            .await?;
        if organization {
            for k in 0..rng.random_range(0..3) {
                contacts_b
                    .push(
                        &txn,
                        vec![
                            v(new_id()),
                            v(id),
                            v(format!("联系人{k}")),
                            v("采购经理"),
                            v(format!("139{:08}", (n * 3 + k) % 100_000_000)),
                            v(1),
                            v(created),
                            v(created),
                        ],
                    )
                    .await?;
            }
        }
        for d in 0..rng.random_range(0..11u32) {
            let roll = rng.random_range(0..100);
            let stage = if roll < 60 {
                "WON"
            } else if roll < 80 {
                "LOST"
            } else {
                ["LEAD", "QUALIFIED", "PROPOSAL", "NEGOTIATION"][(d % 4) as usize]
            };
            let closed: NaiveDate = today - Duration::days(rng.random_range(0..365 * 3));
            let deal_id = new_id();
            let mut amount = 0i64;
            for position in 0..rng.random_range(1..3) {
                let (product, price, cost) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
                let quantity = rng.random_range(1..if organization { 40 } else { 3 });
                amount += price * quantity;
                lines_b
                    .push(
                        &txn,
                        vec![
                            v(new_id()),
                            v(deal_id),
                            v(position),
                            v(product),
                            v(quantity),
                            v(price),
                            v(Some(cost)),
                            v(created),
                        ],
                    )
                    .await?;
            }
            let done = matches!(stage, "WON" | "LOST");
            deals_b
                .push(
                    &txn,
                    vec![
                        v(deal_id),
                        v(id),
                        v(owner),
                        v("订单"),
                        v(stage),
                        v(amount),
                        v("CNY"),
                        v(closed),
                        v(done.then_some(closed)),
                        v((stage == "LOST").then_some("价格")),
                        v(1),
                        v(created),
                        v(created),
                    ],
                )
                .await?;
        }
        for i in 0..rng.random_range(0..4) {
            let at = start - Duration::minutes(rng.random_range(0..60 * 24 * 365));
            interactions_b
                .push(
                    &txn,
                    vec![
                        v(new_id()),
                        v(id),
                        v(owner),
                        v(["CALL", "VISIT", "WECHAT", "SMS"][i % 4]),
                        v("OUTBOUND"),
                        v(at),
                        v("回访"),
                        v(1),
                        v(at),
                        v(at),
                    ],
                )
                .await?;
        }
        if n % 5 == 0 {
            let complaint = rng.random_bool(0.3);
            feedback_b
                .push(
                    &txn,
                    vec![
                        v(new_id()),
                        v(id),
                        v(if complaint { "COMPLAINT" } else { "SURVEY" }),
                        v("WECHAT"),
                        v(Some(if complaint { 2 } else { 5 })),
                        v(Some(if complaint { 3 } else { 9 })),
                        v("反馈"),
                        v("OPEN"),
                        v(1),
                        v(created),
                        v(created),
                    ],
                )
                .await?;
        }
        // Parents before children, so foreign keys hold at every statement.
        if customers_b.rows.len() >= ROWS {
            customers_b.flush(&txn).await?;
            contacts_b.flush(&txn).await?;
            deals_b.flush(&txn).await?;
            lines_b.flush(&txn).await?;
            interactions_b.flush(&txn).await?;
            feedback_b.flush(&txn).await?;
        }
        // Commit every 10,000 customers: bounded transactions, steady progress.
        if n % 10_000 == 9_999 {
            txn.commit().await?;
            txn = db.begin().await?;
            tracing::info!(customers = n + 1, "generated");
        }
    }
    customers_b.flush(&txn).await?;
    contacts_b.flush(&txn).await?;
    deals_b.flush(&txn).await?;
    lines_b.flush(&txn).await?;
    interactions_b.flush(&txn).await?;
    feedback_b.flush(&txn).await?;
    txn.commit().await?;
    // Planner statistics for the new rows, as any bulk load needs: without them
    // PostgreSQL scans whole tables for queries its indexes answer.
    db.execute_unprepared("ANALYZE").await?;
    super::mark_generated(db, customers, seed).await?;
    Ok(Generated {
        customers: customers_b.count,
        contacts: contacts_b.count,
        deals: deals_b.count,
        line_items: lines_b.count,
        interactions: interactions_b.count,
        feedback: feedback_b.count,
    })
}
