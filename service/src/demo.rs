//! `crm demo`: a realistic data set of a Chinese retail and distribution company, entered
//! through the same services (rules, ownership, audit) as the API uses.
use crate::access::user::{self, NewUser};
use crate::access::{Actor, department};
use crate::customer::{self, NewCustomer};
use crate::error::{AppError, AppResult};
use crate::kernel::now;
use crate::kernel::types::Id;
use crate::records::contact::{self, NewContact};
use crate::records::deal::{self, LineItemInput, NewDeal};
use crate::records::feedback::{self, NewFeedback};
use crate::records::interaction::{self, NewInteraction};
use chrono::{Duration, NaiveDate};
use entity::enums::{
    ContactRole, CustomerKind, CustomerSource, DealStage, Direction, FeedbackChannel, FeedbackKind, FeedbackStatus,
    Gender, Importance, InteractionKind, LifecycleStage, Role,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sea_orm::DatabaseConnection;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞",
    "平", "刚", "桂英", "建华", "志强", "晓燕", "海燕", "子涵", "浩然", "欣怡", "雨轩",
];
const CITIES: &[(&str, &str)] = &[
    ("上海", "华东"),
    ("杭州", "华东"),
    ("苏州", "华东"),
    ("南京", "华东"),
    ("宁波", "华东"),
    ("广州", "华南"),
    ("深圳", "华南"),
    ("东莞", "华南"),
    ("北京", "华北"),
    ("天津", "华北"),
    ("成都", "西南"),
    ("重庆", "西南"),
    ("武汉", "华中"),
    ("长沙", "华中"),
];
const TRADE_WORDS: &[&str] = &[
    "华联",
    "永辉",
    "鑫源",
    "恒达",
    "金桥",
    "汇通",
    "新世纪",
    "百盛",
    "联华",
    "万家",
    "宏图",
    "锦程",
    "东方",
    "瑞丰",
    "嘉禾",
    "同创",
];
const INDUSTRIES: &[(&str, &str)] = &[
    ("商贸", "批发零售"),
    ("百货", "百货零售"),
    ("超市", "连锁超市"),
    ("服饰", "服装"),
    ("酒店管理", "酒店"),
    ("餐饮管理", "餐饮"),
    ("物流", "物流"),
    ("电子科技", "消费电子"),
];
const PRODUCTS: &[(&str, &str, i64, i64)] = &[
    ("真丝围巾", "SJ-01", 38_000, 15_000),
    ("羊绒大衣", "YR-12", 158_000, 72_000),
    ("龙井茶礼盒", "LJ-500", 68_800, 30_000),
    ("蓝牙耳机", "BT-3", 29_900, 18_000),
    ("不锈钢保温杯", "BW-450", 12_800, 4_500),
    ("床品四件套", "CP-4", 59_900, 26_000),
    ("运动鞋", "YD-42", 45_900, 21_000),
    ("护肤套装", "HF-6", 88_800, 31_000),
    ("智能手表", "ZS-8", 139_900, 95_000),
];
const TITLES: &[&str] = &["总经理", "采购经理", "采购专员", "财务总监", "店长", "运营总监", "行政主管"];
const SUMMARIES: &[&str] = &[
    "电话回访，了解近期销售情况",
    "上门拜访，介绍春季新品",
    "微信沟通订单交期",
    "寄送节日礼品",
    "邀请参加新品发布会",
    "确认上月对账单",
    "跟进样品试用反馈",
];
const COMPLAINTS: &[&str] = &["送货延迟三天", "部分商品包装破损", "发票信息有误", "客服电话无人接听"];
const PRAISE: &[&str] = &["业务员服务周到", "新品很受欢迎", "物流很快"];

/// Default password of demo staff.
pub const DEMO_PASSWORD: &str = "demo-password-2026";

fn person(rng: &mut StdRng) -> String {
    format!("{}{}", SURNAMES.choose(rng).unwrap_or(&"王"), GIVEN.choose(rng).unwrap_or(&"伟"))
}

/// What `load` created.
pub struct DemoSummary {
    pub staff: usize,
    /// Every demo login (all share `DEMO_PASSWORD`), in the order they were made.
    pub logins: Vec<DemoLogin>,
    pub customers: usize,
    pub deals: usize,
}

/// A demo login: e-mail, name, role and department name.
pub struct DemoLogin {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub department: String,
}

/// Loads the demo data set. Refuses if it is already there.
///
/// # Errors
/// CONFLICT when demo data exists; any service error.
pub async fn load(
    db: &DatabaseConnection,
    events: &crate::access::live::Events,
    vault: &crate::kernel::vault::Keyring,
    customers: usize,
    seed: u64,
) -> AppResult<DemoSummary> {
    if user::by_email(db, "zhou.min@demo.crm").await.is_ok() {
        return Err(AppError::Conflict("demo data is already loaded".into()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let hq = department::find_or_create_by_name(db, "总部").await?;
    let dept = |name: &'static str, parent: uuid::Uuid| async move {
        crate::kernel::store::write(db, async |txn| department::insert(txn, None, name, Some(parent)).await).await
    };
    let east = dept("华东大区", hq.id).await?;
    let shanghai = dept("上海分公司", east.id).await?;
    let hangzhou = dept("杭州分公司", east.id).await?;
    let south = dept("华南大区", hq.id).await?;
    let guangzhou = dept("广州分公司", south.id).await?;
    let service_center = dept("客服中心", hq.id).await?;
    let bi = dept("数据分析部", hq.id).await?;
    let it = dept("信息技术部", hq.id).await?;

    let department_names = [
        (hq.id, hq.name.clone()),
        (east.id, east.name.clone()),
        (shanghai.id, shanghai.name.clone()),
        (hangzhou.id, hangzhou.name.clone()),
        (south.id, south.name.clone()),
        (guangzhou.id, guangzhou.name.clone()),
        (service_center.id, service_center.name.clone()),
        (bi.id, bi.name.clone()),
        (it.id, it.name.clone()),
    ];
    let staff_plan: Vec<(&str, &str, Role, uuid::Uuid)> = vec![
        ("zhou.min", "周敏", Role::Executive, hq.id),
        ("wang.qiang", "王强", Role::Manager, east.id),
        ("li.na", "李娜", Role::Manager, south.id),
        ("chen.jie", "陈杰", Role::Sales, shanghai.id),
        ("zhao.li", "赵丽", Role::Sales, shanghai.id),
        ("sun.hao", "孙浩", Role::Sales, hangzhou.id),
        ("liu.yang", "刘洋", Role::Sales, guangzhou.id),
        ("huang.ting", "黄婷", Role::Sales, guangzhou.id),
        ("xu.jing", "徐静", Role::Service, service_center.id),
        ("ma.chao", "马超", Role::Analyst, bi.id),
        ("api.partner", "官网线索接口", Role::Integration, it.id),
    ];
    let (mut staff, mut logins) = (Vec::new(), Vec::new());
    for (login, name, role, department_id) in staff_plan {
        logins.push(DemoLogin {
            email: format!("{login}@demo.crm"),
            name: name.into(),
            role,
            department: department_names
                .iter()
                .find(|(id, _)| *id == department_id)
                .map(|(_, n)| n.clone())
                .unwrap_or_default(),
        });
        let u = user::bootstrap(
            db,
            NewUser {
                email: format!("{login}@demo.crm"),
                name: name.into(),
                password: DEMO_PASSWORD.into(),
                role,
                department_id,
            },
        )
        .await?;
        staff.push(Actor::load(db, u.id).await?);
    }
    let reps: Vec<&Actor> = staff.iter().filter(|a| a.role() == Role::Sales).collect();
    let service = staff.iter().find(|a| a.role() == Role::Service).ok_or(AppError::NotFound("user"))?;
    let integration = staff.iter().find(|a| a.role() == Role::Integration).ok_or(AppError::NotFound("user"))?;

    let today = now().date_naive();
    let mut deals = 0;
    for n in 0..customers {
        let rep = if n % 25 == 24 { integration } else { reps[n % reps.len()] };
        let organization = n % 3 != 0;
        let (city, region) = *CITIES.choose(&mut rng).unwrap_or(&("上海", "华东"));
        let phone = format!("1{}{:09}", [3, 5, 7, 8, 9][n % 5], 100_000_000 + n * 7919 % 900_000_000);
        let input = if organization {
            let (suffix, industry) = *INDUSTRIES.choose(&mut rng).unwrap_or(&("商贸", "批发零售"));
            let word = TRADE_WORDS[n % TRADE_WORDS.len()];
            NewCustomer {
                kind: Some(CustomerKind::Organization),
                category: Some(
                    ["partner", "retail", "vip", "supplier", "competitor", "other"][[0, 0, 0, 1, 2, 3, 4, 5][n % 8]]
                        .into(),
                ),
                name: format!("{city}{word}{suffix}有限公司（{n:03}）"),
                phone: Some(format!("0{}-{}", [21, 571, 20, 10, 28][n % 5], 60_000_000 + n)),
                email: Some(format!("purchase{n}@{}.com.cn", ["hualian", "yonghui", "xinyuan", "hengda"][n % 4])),
                address: Some(format!("{city}市{}路{}号", ["人民", "中山", "解放", "建设"][n % 4], 10 + n % 300)),
                region: Some(region.into()),
                industry: Some(industry.into()),
                source: Some(
                    [CustomerSource::Referral, CustomerSource::Event, CustomerSource::PhoneOut, CustomerSource::Web]
                        [n % 4],
                ),
                importance: Some([Importance::A, Importance::B, Importance::C][n % 3]),
                lifecycle_stage: Some(if n % 7 == 0 { LifecycleStage::Target } else { LifecycleStage::Prospect }),
                ..Default::default()
            }
        } else {
            NewCustomer {
                kind: Some(CustomerKind::Individual),
                category: Some(if n % 9 == 0 { "vip" } else { "retail" }.into()),
                name: person(&mut rng),
                gender: Some(if rng.random_bool(0.55) { Gender::Female } else { Gender::Male }),
                birthday: NaiveDate::from_ymd_opt(1960 + (n % 40) as i32, 1 + (n % 12) as u32, 1 + (n % 28) as u32),
                phone: Some(phone),
                region: Some(region.into()),
                source: Some(
                    [
                        CustomerSource::PhoneIn,
                        CustomerSource::Web,
                        CustomerSource::Advertising,
                        CustomerSource::Referral,
                    ][n % 4],
                ),
                soft_profile: Some(
                    serde_json::json!({"hobbies": (["茶艺", "旅游", "摄影", "健身"][n % 4]), "promotionReceptiveness": (["高", "中", "低"][n % 3])}),
                ),
                ..Default::default()
            }
        };
        let c = customer::create(db, events, vault, rep, input).await?;
        if organization {
            for k in 0..(n % 4) {
                contact::create(
                    db,
                    vault,
                    rep,
                    NewContact {
                        customer_id: Id::new(c.id),
                        name: person(&mut rng),
                        title: Some(TITLES[(n + k) % TITLES.len()].into()),
                        deal_role: Some(
                            [
                                ContactRole::DecisionMaker,
                                ContactRole::Influencer,
                                ContactRole::Insider,
                                ContactRole::Opponent,
                            ][k % 4],
                        ),
                        mobile: Some(format!("13{}{:08}", k, 10_000_000 + n * 31 + k)),
                        email: Some(format!("contact{n}.{k}@example.cn")),
                        hometown: Some(CITIES[(n + k) % CITIES.len()].0.into()),
                        ..NewContact::new(Id::new(c.id), String::new())
                    },
                )
                .await?;
            }
        }
        if rep.role() == Role::Integration {
            continue;
        }
        for d in 0..(n % 5) {
            let stage = [DealStage::Won, DealStage::Won, DealStage::Lost, DealStage::Negotiation, DealStage::Proposal]
                [(n + d) % 5];
            let items: Vec<LineItemInput> = (0..1 + (n + d) % 3)
                .map(|i| {
                    let (product, sku, price, cost) = PRODUCTS[(n + d + i) % PRODUCTS.len()];
                    LineItemInput {
                        product: product.into(),
                        sku: Some(sku.into()),
                        quantity: rng.random_range(1..if organization { 200 } else { 4 }),
                        unit_price: crate::kernel::money::format_minor(price, "CNY"),
                        unit_cost: Some(crate::kernel::money::format_minor(cost, "CNY")),
                    }
                })
                .collect();
            let closed = today - Duration::days(rng.random_range(0..1000));
            deal::create(
                db,
                rep,
                NewDeal {
                    customer_id: Id::new(c.id),
                    title: format!("{}订单", ["春季", "夏季", "秋季", "年终", "节日"][(n + d) % 5]),
                    stage: Some(stage),
                    amount: None,
                    currency: None,
                    expected_close_date: Some(closed),
                    actual_close_date: matches!(stage, DealStage::Won | DealStage::Lost).then_some(closed),
                    lost_reason: (stage == DealStage::Lost).then(|| "价格高于竞品".to_string()),
                    line_items: items,
                },
            )
            .await?;
            deals += 1;
        }
        for i in 0..(n % 4) {
            interaction::record_history(
                db,
                rep,
                NewInteraction {
                    customer_id: Id::new(c.id),
                    contact_id: None,
                    kind: [
                        InteractionKind::Call,
                        InteractionKind::Visit,
                        InteractionKind::Wechat,
                        InteractionKind::Gift,
                    ][(n + i) % 4],
                    direction: Some(if i % 3 == 2 { Direction::Inbound } else { Direction::Outbound }),
                    occurred_at: Some(now() - Duration::hours(rng.random_range(1..24 * 200))),
                    summary: SUMMARIES[(n + i) % SUMMARIES.len()].into(),
                    outcome: None,
                    next_follow_up_on: Some(today + Duration::days(rng.random_range(1..45))),
                },
            )
            .await?;
        }
        if n % 6 == 0 {
            let complaint = n % 12 == 0;
            let fb = feedback::create(
                db,
                service,
                NewFeedback {
                    customer_id: Id::new(c.id),
                    contact_id: None,
                    kind: if complaint { FeedbackKind::Complaint } else { FeedbackKind::Praise },
                    channel: [FeedbackChannel::Phone, FeedbackChannel::Wechat, FeedbackChannel::OnlineReview][n % 3],
                    rating: Some(if complaint { 2 } else { 5 }),
                    nps: Some(if complaint { 4 } else { 9 }),
                    content: if complaint { COMPLAINTS[n % COMPLAINTS.len()] } else { PRAISE[n % PRAISE.len()] }.into(),
                    handler_id: Some(service.id()),
                },
            )
            .await?;
            if complaint && n % 24 == 0 {
                feedback::update(
                    db,
                    service,
                    fb.id,
                    fb.version,
                    feedback::FeedbackPatch {
                        status: Some(FeedbackStatus::Resolved),
                        resolution: Some(Some("已补发并致歉".into())),
                        ..Default::default()
                    },
                )
                .await?;
            }
        }
    }
    Ok(DemoSummary { staff: staff.len(), logins, customers, deals })
}
