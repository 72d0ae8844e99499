//! The contact's fields.
use super::{CUSTOMER_EMAIL, CUSTOMER_ID, CUSTOMER_NAME, CUSTOMER_PHONE, FieldSpec as F, ID, RecordCatalogue};
use crate::kernel::change::Subject;
use entity::enums::Resource::{Contact, ContactDetails, PersonalDetails};

pub static CONTACT: RecordCatalogue = RecordCatalogue {
    subject: Subject::Contact,
    resource: Contact,
    fields: &[
        ID,
        CUSTOMER_ID,
        CUSTOMER_NAME,
        CUSTOMER_PHONE,
        CUSTOMER_EMAIL,
        F::new("name").filter().sort().both(&["姓名", "联系人", "联系人姓名"]),
        F::new("gender").both(&["性别"]),
        F::new("title").filter().both(&["职务", "职位"]),
        F::new("dealRole").filter().both(&["角色", "决策角色"]),
        F::new("birthday").stored(&["birthday"]).group(PersonalDetails).both(&["生日", "出生日期"]),
        F::new("mobile").stored(&["mobile"]).group(ContactDetails).filter().both(&["手机", "手机号", "手机号码"]),
        F::new("officePhone").stored(&["office_phone"]).group(ContactDetails).both(&["办公电话", "座机", "电话"]),
        F::new("email").stored(&["email"]).group(ContactDetails).filter().both(&["邮箱", "电子邮件", "电子邮箱"]),
        F::new("address").stored(&["address"]).group(ContactDetails).both(&["地址"]),
        F::new("hometown").stored(&["hometown"]).group(PersonalDetails).both(&["籍贯", "家乡"]),
        F::new("hobbies").stored(&["hobbies"]).group(PersonalDetails).both(&["爱好", "兴趣爱好"]),
        F::new("notes").both(&["备注"]),
        F::new("createdAt").filter().sort().exported(),
        F::new("updatedAt").sort().exported(),
        F::new("idNumber").stored(&["id_number"]).group(PersonalDetails),
    ],
};
