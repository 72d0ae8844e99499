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
        F::new("name").erased().filter().sort().both(&["姓名", "联系人", "联系人姓名"]),
        F::new("gender").erased().both(&["性别"]),
        F::new("title").erased().filter().both(&["职务", "职位"]),
        F::new("dealRole").filter().both(&["角色", "决策角色"]),
        F::new("birthday").erased().stored(&["birthday"]).group(PersonalDetails).both(&["生日", "出生日期"]),
        F::new("mobile").erased().stored(&["mobile"]).group(ContactDetails).filter().both(&[
            "手机",
            "手机号",
            "手机号码",
        ]),
        F::new("officePhone").erased().stored(&["office_phone"]).group(ContactDetails).both(&[
            "办公电话",
            "座机",
            "电话",
        ]),
        F::new("email").erased().stored(&["email"]).group(ContactDetails).filter().both(&[
            "邮箱",
            "电子邮件",
            "电子邮箱",
        ]),
        F::new("address").erased().stored(&["address"]).group(ContactDetails).both(&["地址"]),
        F::new("hometown").erased().stored(&["hometown"]).group(PersonalDetails).both(&["籍贯", "家乡"]),
        F::new("hobbies").erased().stored(&["hobbies"]).group(PersonalDetails).both(&["爱好", "兴趣爱好"]),
        F::new("notes").erased().both(&["备注"]),
        F::new("createdAt").filter().sort().exported(),
        F::new("updatedAt").sort().exported(),
        F::new("idNumber").stored(&["id_number"]).group(PersonalDetails),
    ],
};
