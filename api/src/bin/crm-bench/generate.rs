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
/// Common surnames, the polyphonic ones among them (read by their surname reading) and
/// compound ones; the first are drawn most often.
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "于",
    "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆",
    "汪", "范", "金", "单", "解", "仇", "区", "查", "朴", "盖", "乐", "翟", "覃", "缪", "尉迟", "欧阳", "司马", "上官",
    "诸葛",
];
/// Characters of given names.
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀", "霞",
    "平", "刚", "桂", "英", "华", "玉", "萍", "红", "建", "文", "辉", "力", "斌", "宇", "浩", "凯", "鹏", "晨", "欣",
    "婷", "雪", "琳", "晶", "颖", "俊", "峰", "波", "宁", "龙", "凤", "国", "东", "海", "春", "林", "燕", "飞", "亮",
    "志", "新", "梅", "佳", "嘉", "子", "梓", "涵", "睿", "博", "思", "雨", "轩", "怡", "晓", "小", "永", "振", "成",
    "兰", "荣", "贵", "福",
];
/// Simplified characters of the names above and their traditional forms: one name in
/// twenty is written traditional (Hong Kong, Taiwan and older records).
pub const TRADITIONAL: &[(char, char)] = &[
    ('张', '張'),
    ('陈', '陳'),
    ('刘', '劉'),
    ('黄', '黃'),
    ('赵', '趙'),
    ('吴', '吳'),
    ('孙', '孫'),
    ('马', '馬'),
    ('郑', '鄭'),
    ('杨', '楊'),
    ('罗', '羅'),
    ('梁', '梁'),
    ('谢', '謝'),
    ('许', '許'),
    ('韩', '韓'),
    ('冯', '馮'),
    ('邓', '鄧'),
    ('伟', '偉'),
    ('丽', '麗'),
    ('军', '軍'),
    ('强', '強'),
    ('华', '華'),
    ('红', '紅'),
    ('国', '國'),
    ('东', '東'),
    ('龙', '龍'),
    ('凤', '鳳'),
    ('艳', '艷'),
    ('杰', '傑'),
    ('涛', '濤'),
    ('辉', '輝'),
    ('鹏', '鵬'),
    ('颖', '穎'),
    ('峰', '峰'),
    ('宁', '寧'),
    ('飞', '飛'),
    ('亮', '亮'),
    ('晓', '曉'),
    ('荣', '榮'),
    ('贵', '貴'),
];
/// Characters company brands are made of.
const BRAND: &[char] = &[
    '华', '联', '鑫', '源', '恒', '达', '汇', '通', '锦', '程', '嘉', '禾', '金', '辉', '宏', '发', '瑞', '丰', '永',
    '安', '东', '方', '天', '成', '盛', '昌', '泰', '隆', '兴', '旺', '富', '康', '宝', '利', '信', '诚', '德', '润',
    '佳', '美',
];

/// A brand name unique to `n` (its digits in base 40, two characters at least): company
/// names are unique once folded (`uq_customer_name_norm`).
fn brand(mut n: u64) -> String {
    let mut out = String::new();
    loop {
        out.push(BRAND[(n % BRAND.len() as u64) as usize]);
        n /= BRAND.len() as u64;
        if n == 0 && out.chars().count() >= 2 {
            return out;
        }
    }
}
const TRADES: &[&str] = &["贸易", "商贸", "科技", "实业", "电子", "食品"];
const MAIL_DOMAINS: &[&str] = &["163.com", "qq.com", "126.com", "sina.com", "gmail.com"];

/// A person's name: a surname (the common ones most often) and one or two characters.
fn person_name(rng: &mut StdRng) -> String {
    // Squared: the first surnames are drawn far more often, as in life.
    let pick = rng.random_range(0.0..1.0f64);
    let surname = SURNAMES[((pick * pick) * SURNAMES.len() as f64) as usize];
    let mut name = surname.to_string();
    for _ in 0..if rng.random_range(0..10) < 6 { 2 } else { 1 } {
        name.push_str(GIVEN[rng.random_range(0..GIVEN.len())]);
    }
    if rng.random_range(0..20) == 0 {
        name = name.chars().map(|c| TRADITIONAL.iter().find(|(s, _)| *s == c).map_or(c, |(_, t)| *t)).collect();
    }
    name
}

/// A mobile number unique to `n` (a permutation of eight digits, so fragments spread).
fn mobile(prefix: &str, n: u64) -> String {
    format!("{prefix}{:08}", (n * 7_919_237 + 12_345) % 100_000_000)
}

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
        customer::Column::Email,
        customer::Column::EmailNorm,
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
            format!("{city}{}{}有限公司", brand(n), TRADES[rng.random_range(0..TRADES.len())])
        } else {
            person_name(&mut rng)
        };
        let phone = mobile(["138", "159", "177", "186", "199"][(n % 5) as usize], n);
        let phone_norm = normalize::phone_e164(&phone).ok().map(String::from);
        // Three in ten have an e-mail address, made of their name's pinyin.
        let email = (rng.random_range(0..10) < 3).then(|| {
            let units = service::search::fold::units(&service::search::fold::fold(&name));
            let local: String = service::search::fold::readings(&units, !organization).concat();
            format!("{}{n}@{}", local.chars().take(16).collect::<String>(), MAIL_DOMAINS[(n % 5) as usize])
        });
        let email_norm = email.as_deref().and_then(|e| normalize::email(e).ok()).map(String::from);
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
                    v(email),
                    v(email_norm),
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
                            v(person_name(&mut rng)),
                            v("采购经理"),
                            v(mobile("139", n * 3 + k)),
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
