//! The deal's fields (its line items' prices with them).
use super::{CUSTOMER_EMAIL, CUSTOMER_ID, CUSTOMER_NAME, CUSTOMER_PHONE, FieldSpec as F, ID, RecordCatalogue};
use crate::kernel::change::Subject;
use entity::enums::Resource::{Deal, DealAmount};

pub static DEAL: RecordCatalogue = RecordCatalogue {
    subject: Subject::Deal,
    resource: Deal,
    fields: &[
        ID,
        CUSTOMER_ID,
        CUSTOMER_NAME,
        CUSTOMER_PHONE,
        CUSTOMER_EMAIL,
        F::new("title").erased().filter().sort().both(&["标题", "名称", "订单", "商机", "商机名称"]),
        F::new("stage").filter().sort().both(&["阶段", "状态"]),
        F::new("amount").stored(&["amount_minor"]).group(DealAmount).filter().sort().both(&[
            "金额",
            "成交金额",
            "订单金额",
        ]),
        F::new("currency").both(&["币种", "货币"]),
        F::new("expectedCloseDate").filter().both(&["预计成交日期"]),
        F::new("actualCloseDate").filter().both(&["成交日期", "实际成交日期"]),
        F::new("lostReason").erased().both(&["丢单原因", "输单原因"]),
        F::new("owner").exported(),
        F::new("createdAt").filter().sort().exported(),
        F::new("updatedAt").sort().exported(),
        F::new("ownerId").filter(),
        F::new("unitPrice").stored(&["unit_price_minor"]).group(DealAmount),
        F::new("unitCost").stored(&["unit_cost_minor"]).group(DealAmount),
    ],
};
