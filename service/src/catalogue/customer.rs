//! The customer's fields.
use super::{FieldSpec as F, RecordCatalogue};
use crate::kernel::change::Subject;
use entity::enums::Resource::{ContactDetails, Customer, DealAmount, PersonalDetails};

pub static CUSTOMER: RecordCatalogue = RecordCatalogue {
    subject: Subject::Customer,
    resource: Customer,
    fields: &[
        F::new("id").filter().both(&[]),
        F::new("kind").filter().sort().both(&["类型", "客户类型"]),
        F::new("category").filter().sort().both(&["类别", "分类", "客户类别"]).merge(),
        F::new("name")
            .stored(&["name", "name_norm"])
            .erased()
            .filter()
            .sort()
            .both(&["名称", "姓名", "客户名称", "客户", "公司名称", "单位名称"])
            .merge(),
        // Base profile data, as the name and phone are in the archive (客户档案): read
        // with the row, in no group.
        F::new("gender").erased().both(&["性别"]).profile(),
        F::new("birthday").stored(&["birthday"]).erased().group(PersonalDetails).both(&["生日", "出生日期"]).profile(),
        F::new("phone")
            .stored(&["phone"])
            .erased()
            .group(ContactDetails)
            .filter()
            .both(&["电话", "手机", "手机号", "手机号码", "联系电话"])
            .profile(),
        F::new("phoneE164").stored(&["phone_norm"]).erased().group(ContactDetails),
        F::new("email")
            .stored(&["email", "email_norm"])
            .erased()
            .group(ContactDetails)
            .filter()
            .both(&["邮箱", "电子邮件", "电子邮箱", "e-mail"])
            .profile(),
        F::new("address").stored(&["address"]).erased().group(ContactDetails).both(&["地址", "联系地址"]).profile(),
        F::new("region").filter().both(&["地区", "区域", "所在地区"]).profile(),
        F::new("industry").filter().both(&["行业", "所属行业"]).profile(),
        F::new("source").filter().both(&["来源", "客户来源"]).profile(),
        F::new("importance").filter().both(&["重要程度", "重要性"]).profile(),
        F::new("creditRating").both(&["信用等级"]).profile(),
        F::new("cooperationStartDate").both(&["合作开始日期"]).profile(),
        F::new("softProfile").stored(&["soft_profile"]).erased().group(PersonalDetails).merge(),
        F::new("customFields").erased().merge(),
        // Why a person set the tier by hand: free text about the customer.
        F::new("tierOverrideReason").erased(),
        F::new("lifecycleStage").filter().sort().both(&["阶段", "生命周期阶段"]),
        F::new("tier").filter().sort().exported(),
        F::new("owner").exported(),
        F::new("department").exported(),
        F::new("createdAt").filter().sort().exported(),
        F::new("updatedAt").filter().sort().exported(),
        // Older exports carried it; an import reads past it.
        F::new("completeness").read_past(),
        F::new("ownerId").filter(),
        F::new("departmentId").filter(),
        F::new("frequencyClass").filter(),
        F::new("valueClass").filter(),
        F::new("relationshipType").filter(),
        F::new("turnoverMarginClass").filter(),
        F::new("rfmScore").filter(),
        F::new("wonDealCount").stored(&["won_count"]).filter().sort(),
        F::new("lastPurchaseOn").filter(),
        // Won revenue and margin in the window, in the base currency.
        F::new("revenue").stored(&["revenue_minor"]).group(DealAmount).filter().sort(),
        F::new("margin").stored(&["margin_minor"]).group(DealAmount),
    ],
};
