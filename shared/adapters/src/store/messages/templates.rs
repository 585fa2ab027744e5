//! Message templates and Meta's review of them.

use super::*;
use crate::store::attrs::{key, n, now_secs, opt_s, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, dynamo_err};
use domain::meta::TemplateStatus;

/// A tenant's templates.
#[derive(Clone, Copy, Debug)]
pub struct Templates<'a> {
    pub(crate) table: &'a Table,
}

impl Templates<'_> {
    /// Records Meta's review outcome of a template; what was stored when it was created
    /// (category, components) stays.
    pub async fn apply_review(
        &self,
        scope: &TenantScope,
        template: &TemplateStatus,
    ) -> Result<(), StoreError> {
        let language = template.language.as_deref().unwrap_or("-");
        self.table
            .update(key(scope.pk(), format!("TEMPLATE#{}#{language}", template.name)))
            .update_expression(
                "SET #name = :name, #language = :language, #status = :status, reason = :reason, \
                 #raw = :raw, updatedAt = :now",
            )
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#language", "language")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#raw", "raw")
            .expression_attribute_values(":name", s(&template.name))
            .expression_attribute_values(":language", s(language))
            .expression_attribute_values(":status", s(&template.event))
            .expression_attribute_values(":reason", s(template.reason.as_deref().unwrap_or("NONE")))
            .expression_attribute_values(":raw", s(template.raw.to_string()))
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await
            .map(|_| ())
            .map_err(dynamo_err)
    }

    /// A template submitted to Meta, before its review.
    pub async fn create(
        &self,
        scope: &TenantScope,
        template: &TemplateView,
    ) -> Result<bool, StoreError> {
        let mut item = key(scope.pk(), format!("TEMPLATE#{}#{}", template.name, template.language));
        item.insert("name".into(), s(&template.name));
        item.insert("language".into(), s(&template.language));
        item.insert("category".into(), s(&template.category));
        item.insert("status".into(), s(&template.status));
        item.insert("components".into(), s(template.components.to_string()));
        if let Some(id) = &template.meta_id {
            item.insert("metaId".into(), s(id));
        }
        item.insert("updatedAt".into(), n(now_secs()));
        self.table.put_if_absent(item).await
    }

    /// Every template of the tenant (a WhatsApp account holds at most a few hundred).
    pub async fn list(&self, scope: &TenantScope) -> Result<Vec<TemplateView>, StoreError> {
        let query = self
            .table
            .query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(scope.pk()))
            .expression_attribute_values(":prefix", s("TEMPLATE#"));
        self.table.query_all(query).await?.iter().map(template_from).collect()
    }

    /// Deletes every language of a template; false when there was none.
    pub async fn delete(&self, scope: &TenantScope, name: &str) -> Result<bool, StoreError> {
        let found: Vec<TemplateView> =
            self.list(scope).await?.into_iter().filter(|t| t.name == name).collect();
        for template in &found {
            self.table
                .client()
                .delete_item()
                .table_name(self.table.name())
                .set_key(Some(key(
                    scope.pk(),
                    format!("TEMPLATE#{}#{}", template.name, template.language),
                )))
                .send()
                .await
                .map_err(dynamo_err)?;
        }
        Ok(!found.is_empty())
    }

    pub async fn status(
        &self,
        scope: &TenantScope,
        name: &str,
        language: &str,
    ) -> Result<Option<String>, StoreError> {
        let item = self.table.get(key(scope.pk(), format!("TEMPLATE#{name}#{language}"))).await?;
        Ok(item.as_ref().and_then(|i| opt_s(i, "status")).map(str::to_owned))
    }
}
