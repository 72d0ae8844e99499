//! An import run line by line: each chunk in a transaction, each line in a savepoint,
//! customers created or updated through the customer services, the run's counters kept.
use super::*;

impl Importer<'_> {
    /// Imports one chunk of lines: one transaction (rolled back on a dry run), a savepoint
    /// per line, the outcomes and counters written with the chunk.
    ///
    /// # Errors
    /// Database errors (the run is then marked FAILED by [`Importer::fail`]).
    pub async fn chunk(&mut self, lines: Vec<Line>) -> AppResult<()> {
        // The chunk regrades its customers and rebuilds their search keys itself, once
        // each, at its end: the writes of its lines run no finishers.
        crate::kernel::store::deferring(self.chunk_lines(lines)).await
    }

    async fn chunk_lines(&mut self, lines: Vec<Line>) -> AppResult<()> {
        // Signals belong to one chunk: a chunk that failed and rolled back left its own
        // behind, unpublished; they name customers that do not exist.
        self.signals.clear();
        // SQLite: the chunk takes its turn among the instance's writers and gives it back
        // at its end, so a rep's save waits for one chunk at most (`kernel::db::turns`).
        let _turn = crate::kernel::db::turns::take(self.db).await?;
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        let catalogue = Catalogue::load(&txn).await?;
        let mut outcomes = Vec::with_capacity(lines.len());
        for line in lines {
            let number = line.number;
            let outcome = match self.line(&txn, &catalogue, line).await {
                Ok(o) => o,
                Err(e @ AppError::Internal(_)) => {
                    txn.rollback().await?;
                    return Err(e);
                }
                Err(e) => Outcome::new(number, ImportOutcome::Failed, None, Some(e.to_string())),
            };
            outcomes.push(outcome);
        }
        // Deals' customers regraded once each, in id order (the order a full pass locks
        // them in); a dry run's are rolled back anyway.
        for (customer, reason) in std::mem::take(&mut self.regrade) {
            if !self.options.dry_run {
                crate::classification::recompute(&txn, customer, reason, Some(self.actor.id())).await?;
            }
        }
        // The search keys of the chunk's customers and contacts, once each.
        let changes = crate::kernel::store::deferred_changes();
        if !self.options.dry_run {
            crate::search::index::follow(&txn, &changes).await?;
        }
        let txn = if self.options.dry_run {
            txn.rollback().await?;
            // A record created in the rolled-back chunk does not exist: no id to show,
            // whichever line reached it.
            let gone = std::mem::take(&mut self.created_here);
            for o in &mut outcomes {
                if o.record_id.is_some_and(|id| gone.contains(&id)) {
                    o.record_id = None;
                }
            }
            self.db.begin().await?
        } else {
            txn
        };
        self.record(&txn, &outcomes).await?;
        txn.commit().await?;
        // A dry run's changes were rolled back: they signal nothing.
        for signal in std::mem::take(&mut self.signals) {
            if !self.options.dry_run {
                self.events.publish(signal).await;
            }
        }
        for o in outcomes {
            if self.problems.len() < PROBLEMS_SHOWN
                && matches!(
                    o.outcome,
                    ImportOutcome::Duplicate | ImportOutcome::Invalid | ImportOutcome::Failed | ImportOutcome::Skipped
                )
            {
                self.problems.push(o);
            }
        }
        Ok(())
    }

    /// Writes the outcomes of a chunk and moves the run's counters.
    pub(super) async fn record(&mut self, txn: &DatabaseTransaction, outcomes: &[Outcome]) -> AppResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let rows = outcomes.iter().map(|o| import_line::ActiveModel {
            id: Set(new_id()),
            run_id: Set(self.run.id),
            line: Set(o.line),
            outcome: Set(o.outcome),
            record_id: Set(o.record_id),
            message: Set(o.message.clone()),
            problems: Set((!o.problems.is_empty()).then(|| serde_json::to_value(&o.problems).unwrap_or(Json::Null))),
        });
        import_line::Entity::insert_many(rows).exec(txn).await?;
        let count = |k: ImportOutcome| outcomes.iter().filter(|o| o.outcome == k).count() as i64;
        use import_run::Column as R;
        let add = |c: R, n: i64| (c, Expr::col(c).add(n));
        let mut update = import_run::Entity::update_many().filter(R::Id.eq(self.run.id));
        for (c, e) in [
            add(R::LinesRead, outcomes.len() as i64),
            add(R::Created, count(ImportOutcome::Created)),
            add(R::Updated, count(ImportOutcome::Updated)),
            add(R::Unchanged, count(ImportOutcome::Unchanged)),
            add(R::Duplicate, count(ImportOutcome::Duplicate)),
            add(R::Skipped, count(ImportOutcome::Skipped)),
            add(R::Invalid, count(ImportOutcome::Invalid)),
            add(R::Failed, count(ImportOutcome::Failed)),
        ] {
            update = update.col_expr(c, e);
        }
        update.col_expr(R::HeartbeatAt, Expr::value(now())).exec(txn).await?;
        self.run.lines_read += outcomes.len() as i64;
        self.run.created += count(ImportOutcome::Created);
        self.run.updated += count(ImportOutcome::Updated);
        self.run.unchanged += count(ImportOutcome::Unchanged);
        self.run.duplicate += count(ImportOutcome::Duplicate);
        self.run.skipped += count(ImportOutcome::Skipped);
        self.run.invalid += count(ImportOutcome::Invalid);
        self.run.failed += count(ImportOutcome::Failed);
        Ok(())
    }

    pub(super) fn cells(&self, line: &Line) -> Cells {
        let mut fields = HashMap::new();
        let mut custom = Vec::new();
        for (target, cell) in self.mapping.targets.iter().zip(&line.cells) {
            let value = unguarded(cell.trim());
            if value.is_empty() {
                continue;
            }
            match target {
                Target::Field(f) => {
                    fields.insert(*f, value.to_string());
                }
                Target::Custom(k) => custom.push((k.clone(), value.to_string())),
                Target::Skip => {}
            }
        }
        Cells { fields, custom }
    }

    /// One line, in a savepoint of the chunk's transaction.
    pub(super) async fn line(
        &mut self,
        txn: &DatabaseTransaction,
        catalogue: &Catalogue,
        line: Line,
    ) -> AppResult<Outcome> {
        let number = line.number;
        if let Some(why) = line.unreadable {
            return Ok(Outcome::invalid(number, vec![FieldError::new("line", why)]));
        }
        if line.cells.len() > self.mapping.targets.len() {
            return Ok(Outcome::invalid(
                number,
                vec![FieldError::new(
                    "line",
                    format!("{} cells for {} columns", line.cells.len(), self.mapping.targets.len()),
                )],
            ));
        }
        // PostgreSQL refuses a NUL in any text, a lookup too, and an error aborts the
        // chunk's transaction: such a line stops here.
        if line.cells.iter().any(|c| c.contains('\0')) {
            return Ok(Outcome::invalid(number, vec![FieldError::new("line", crate::kernel::NUL_MESSAGE)]));
        }
        let cells = self.cells(&line);
        match self.options.kind {
            ImportKind::Contacts => return self.contact_line(txn, number, &cells).await,
            ImportKind::Deals => return self.deal_line(txn, number, &cells).await,
            ImportKind::Customers => {}
        }
        let mut problems = Vec::new();
        let parsed = parse(&mut problems, &cells);
        let kind = parsed.kind.unwrap_or(self.options.default_kind);
        let keys = natural_keys(kind, &cells);
        // An id (an exported file coming back) matches its record; an id unknown here (a
        // file from elsewhere) leaves the natural keys to match.
        let id = cells.get(Field::Id).and_then(|id| Uuid::parse_str(id).ok());
        // One indexed lookup per key (each key has its own unique index over live rows; an
        // OR of the keys is a scan of the table per line).
        let live = || entity::customer::Entity::find().filter(C::DeletedAt.is_null());
        let mut matched = Vec::<entity::customer::Model>::new();
        if let Some(id) = id
            && let Some(m) = live().filter(C::Id.eq(id)).one(txn).await?
        {
            matched.push(m);
        }
        for (column, value) in &keys {
            if matched.iter().any(|m| key_value(m, *column) == Some(value.as_str())) {
                continue;
            }
            if let Some(m) = live().filter(column.eq(value.clone())).one(txn).await?
                && !matched.iter().any(|x| x.id == m.id)
            {
                matched.push(m);
            }
        }
        match matched.as_slice() {
            [] => {
                let remembered: Vec<String> = keys.iter().map(|(c, v)| format!("{c:?}:{v}")).collect();
                if let Some(repeat) = self.repeat_of(number, &remembered, "customer", parsed.kind, problems.clone()) {
                    return Ok(repeat);
                }
                let outcome = self.create(txn, catalogue, number, kind, parsed, &cells, problems).await?;
                if outcome.outcome == ImportOutcome::Created {
                    self.remember(number, remembered, Some(kind));
                }
                Ok(outcome)
            }
            [old] => self.update(txn, catalogue, number, old.clone(), parsed, &cells, problems).await,
            many => {
                let by: Vec<&str> = keys
                    .iter()
                    .filter(|(c, v)| many.iter().any(|m| key_value(m, *c) == Some(v.as_str())))
                    .map(|(c, _)| key_label(*c))
                    .chain(id.filter(|id| many.iter().any(|m| m.id == *id)).map(|_| "id"))
                    .collect();
                let message = format!("matches {} customers (by {}); merge them first", many.len(), by.join(", "));
                Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message)))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create(
        &mut self,
        txn: &DatabaseTransaction,
        catalogue: &Catalogue,
        number: i64,
        kind: CustomerKind,
        parsed: Parsed,
        cells: &Cells,
        mut problems: Vec<FieldError>,
    ) -> AppResult<Outcome> {
        let category =
            cells.get(Field::Category).map_or_else(|| customer::default_category(kind).to_string(), str::to_lowercase);
        let custom = custom_fields(&mut problems, catalogue, &category, cells, None);
        let input = NewCustomer {
            kind: Some(kind),
            category: Some(category),
            name: cells.text(Field::Name).unwrap_or_default(),
            gender: parsed.gender,
            birthday: parsed.birthday,
            phone: cells.text(Field::Phone),
            email: cells.text(Field::Email),
            address: cells.text(Field::Address),
            region: cells.text(Field::Region),
            industry: cells.text(Field::Industry),
            source: parsed.source,
            importance: parsed.importance,
            credit_rating: cells.text(Field::CreditRating),
            cooperation_start_date: parsed.cooperation_start_date,
            soft_profile: None,
            custom_fields: custom,
            lifecycle_stage: parsed.lifecycle_stage,
        };
        let model = match customer::prepare(txn, self.vault, self.actor, catalogue, input).await {
            Ok(m) => m,
            Err(AppError::Validation(mut fields)) => {
                problems.append(&mut fields);
                return Ok(Outcome::invalid(number, problems));
            }
            Err(e) => return Err(e),
        };
        if !problems.is_empty() {
            return Ok(Outcome::invalid(number, problems));
        }
        let sp = txn.begin().await?;
        match customer::insert_in(&sp, self.actor, Verb::Import, model.clone()).await {
            Ok((m, signal)) => {
                sp.commit().await?;
                self.created(m.id);
                self.signals.extend(signal);
                Ok(Outcome::new(number, ImportOutcome::Created, Some(m.id), None))
            }
            Err(e @ AppError::Duplicate { .. }) => {
                sp.rollback().await?;
                let e = customer::explain_duplicate(txn, self.actor, e, &model).await;
                Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(e.to_string())))
            }
            // The importer's holding cap (care policy): this line, not the run, fails.
            Err(e @ AppError::Conflict(_)) => {
                sp.rollback().await?;
                Ok(Outcome::new(number, ImportOutcome::Failed, None, Some(e.to_string())))
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn update(
        &mut self,
        txn: &DatabaseTransaction,
        catalogue: &Catalogue,
        number: i64,
        old: entity::customer::Model,
        parsed: Parsed,
        cells: &Cells,
        mut problems: Vec<FieldError>,
    ) -> AppResult<Outcome> {
        let old = match customer::load_for_action(txn, self.actor, old.id, Action::Update).await {
            Ok(m) => m,
            Err(AppError::NotFound(_) | AppError::Forbidden(_)) => {
                // One the importer may read but not change (their department's pool, in a
                // rep's own export): left as it is, and said so plainly.
                if customer::load_for_action(txn, self.actor, old.id, Action::Read).await.is_ok() {
                    let message = "a customer you may read but not change (the department's pool: claim it \
                                   to change it); left as it is";
                    // Its id only when the line named it: a line matched on a phone or an
                    // e-mail must not tell which pool customer holds them (contact details
                    // of the pool are not the rep's to read).
                    let named = cells.get(Field::Id).and_then(|v| Uuid::parse_str(v.trim()).ok()) == Some(old.id);
                    return Ok(Outcome::new(
                        number,
                        ImportOutcome::Skipped,
                        named.then_some(old.id),
                        Some(message.into()),
                    ));
                }
                let message = self.untouchable(txn, &old).await?;
                return Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message)));
            }
            Err(e) => return Err(e),
        };
        if let Some(k) = parsed.kind
            && k != old.kind
        {
            problems.push(FieldError::new("kind", format!("the customer this line matches is {}", old.kind)));
        }
        let category = cells.get(Field::Category).map(str::to_lowercase);
        let custom = custom_fields(
            &mut problems,
            catalogue,
            category.as_deref().unwrap_or(&old.category),
            cells,
            old.custom_fields.as_ref(),
        );
        let set = |v: Option<String>| v.map(Some);
        let patch = CustomerPatch {
            category: category.filter(|c| *c != old.category),
            name: cells.text(Field::Name),
            gender: parsed.gender.map(Some),
            birthday: parsed.birthday.map(Some),
            phone: set(cells.text(Field::Phone)),
            email: set(cells.text(Field::Email)),
            address: set(cells.text(Field::Address)),
            region: set(cells.text(Field::Region)),
            industry: set(cells.text(Field::Industry)),
            source: parsed.source.map(Some),
            importance: parsed.importance.map(Some),
            credit_rating: set(cells.text(Field::CreditRating)),
            cooperation_start_date: parsed.cooperation_start_date.map(Some),
            soft_profile: None,
            custom_fields: custom.map(Some),
            // The stage moves with deals once past PROSPECT; a file restating it is no change.
            lifecycle_stage: parsed.lifecycle_stage.filter(|s| *s != old.lifecycle_stage),
        };
        let am = match customer::patched(txn, catalogue, self.vault, self.actor, &old, patch).await {
            Ok(am) => am,
            Err(AppError::Validation(mut fields)) => {
                problems.append(&mut fields);
                return Ok(Outcome::invalid(number, problems));
            }
            Err(e) => return Err(e),
        };
        if !problems.is_empty() {
            return Ok(Outcome::invalid(number, problems));
        }
        if am.clone().try_into_model().is_ok_and(|new| new == old) {
            return Ok(Outcome::new(number, ImportOutcome::Unchanged, Some(old.id), None));
        }
        let sp = txn.begin().await?;
        match crate::kernel::store::save::<entity::customer::Entity>(
            &sp,
            Some(self.actor.id()),
            Verb::Import,
            &old,
            am.clone(),
        )
        .await
        {
            Ok(m) => {
                sp.commit().await?;
                Ok(Outcome::new(number, ImportOutcome::Updated, Some(m.id), None))
            }
            Err(e @ AppError::Duplicate { .. }) => {
                sp.rollback().await?;
                let e = customer::explain_duplicate(txn, self.actor, e, &am).await;
                Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(e.to_string())))
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }

    /// Why a matched record is not touched (`customer::held_by`).
    pub(super) async fn untouchable(
        &mut self,
        txn: &DatabaseTransaction,
        m: &entity::customer::Model,
    ) -> AppResult<String> {
        Ok(customer::held_by(txn, self.actor, m).await?.1)
    }

    /// Dry run: the outcome of a line that repeats a key an earlier chunk (rolled back)
    /// would have created (`kind`: the line's, checked against a customer's): the update
    /// it will be, or INVALID with the line's problems. None on a real run or a new key.
    pub(super) fn repeat_of(
        &self,
        number: i64,
        keys: &[String],
        what: &str,
        kind: Option<CustomerKind>,
        mut problems: Vec<FieldError>,
    ) -> Option<Outcome> {
        if !self.options.dry_run {
            return None;
        }
        let &(first, first_kind) = keys.iter().find_map(|k| self.would_create.get(k))?;
        if let (Some(k), Some(f)) = (kind, first_kind)
            && k != f
        {
            problems.push(FieldError::new("kind", format!("the customer this line matches is {f}")));
        }
        if !problems.is_empty() {
            return Some(Outcome::invalid(number, problems));
        }
        // Whether it would change anything is not known without the record.
        let message = format!("updates the {what} line {first} creates (a dry run does not compare)");
        Some(Outcome::new(number, ImportOutcome::Updated, None, Some(message)))
    }

    /// Dry run: remembers the keys of a record line `number` created (see [`repeat_of`]).
    pub(super) fn remember(&mut self, number: i64, keys: impl IntoIterator<Item = String>, kind: Option<CustomerKind>) {
        if self.options.dry_run {
            for k in keys {
                self.would_create.entry(k).or_insert((number, kind));
            }
        }
    }

    /// Dry run: a record created in this chunk, rolled back with it (its id is not shown).
    pub(super) fn created(&mut self, id: Uuid) {
        if self.options.dry_run {
            self.created_here.insert(id);
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> Uuid {
        self.run.id
    }

    /// Marks the run done.
    ///
    /// # Errors
    /// Database errors.
    pub async fn finish(mut self) -> AppResult<(import_run::Model, Vec<Outcome>)> {
        self.run = self.end(ImportStatus::Done, None).await?;
        Ok((self.run, self.problems))
    }

    /// Marks the run failed with why.
    pub async fn fail(mut self, why: String) -> (import_run::Model, Vec<Outcome>) {
        match self.end(ImportStatus::Failed, Some(why.clone())).await {
            Ok(run) => self.run = run,
            Err(e) => {
                tracing::error!(error = %e, run = %self.run.id, "cannot mark an import failed");
                self.run.status = ImportStatus::Failed;
                self.run.error = Some(why);
            }
        }
        (self.run, self.problems)
    }

    pub(super) async fn end(&self, status: ImportStatus, error: Option<String>) -> AppResult<import_run::Model> {
        let mut am: import_run::ActiveModel = self.run.clone().into();
        let at = now();
        am.status = Set(status);
        am.error = Set(error);
        am.finished_at = Set(Some(at));
        am.heartbeat_at = Set(at);
        // Only the columns set here are written; the counters stay as the chunks left them.
        Ok(am.update(self.db).await?)
    }
}
