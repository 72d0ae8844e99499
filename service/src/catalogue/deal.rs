//! The deal's fields (its line items' prices with them).
use super::{FieldSpec as F, RecordCatalogue};
use crate::kernel::change::Subject;
use entity::enums::Resource::{Deal, DealAmount};

pub static DEAL: RecordCatalogue = RecordCatalogue {
    subject: Subject::Deal,
    resource: Deal,
    fields: &[
        F::new("id").both(&[]),
        F::new("customerId").filter().both(&[]),
        F::new("customerName").both(&["客户", "客户名称", "公司", "公司名称", "单位", "单位名称"]),
        F::new("customerPhone").import(&["客户电话"]),
        F::new("customerEmail").import(&["客户邮箱"]),
        F::new("title").filter().sort().both(&["标题", "名称", "订单", "商机", "商机名称"]),
        F::new("stage").filter().sort().both(&["阶段", "状态"]),
        F::new("amount").stored(&["amount_minor"]).group(DealAmount).filter().sort().both(&[
            "金额",
            "成交金额",
            "订单金额",
        ]),
        F::new("currency").both(&["币种", "货币"]),
        F::new("expectedCloseDate").filter().both(&["预计成交日期"]),
        F::new("actualCloseDate").filter().both(&["成交日期", "实际成交日期"]),
        F::new("lostReason").both(&["丢单原因", "输单原因"]),
        F::new("owner").exported(),
        F::new("createdAt").filter().sort().exported(),
        F::new("updatedAt").sort().exported(),
        F::new("ownerId").filter(),
        F::new("unitPrice").stored(&["unit_price_minor"]).group(DealAmount),
        F::new("unitCost").stored(&["unit_cost_minor"]).group(DealAmount),
    ],
};
