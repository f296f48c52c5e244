import { sql, type Kysely } from "kysely";
import type { Dialect } from "../database.ts";

/**
 * PostgreSQL: "every posting belongs to a recorded transaction" checked once per postings
 * statement at COMMIT instead of once per posting (guard rule 2 of 0003-ledger, last sentence).
 *
 * The deferred foreign key from `ledger_postings.transaction_id` ran PostgreSQL's referential
 * check for each of a settlement pass's 40,000 postings at COMMIT, each a query that also
 * share-locks the transaction row: about 0.3 s of a 1.3 s pass (bench/RESULTS.md, session 4). Now
 * each postings INSERT statement notes its id range in `ledger_posting_batches` (one row, from a
 * statement trigger), and a deferred constraint trigger on that row checks at COMMIT, in one query,
 * that every transaction among those postings has its row; then it deletes the note. The
 * guarantee is the one the foreign key gave: a DB transaction that leaves postings without their
 * transaction row does not commit. Concurrent writers' postings inside the range are committed
 * ones (whose own check passed) or invisible, so the range check never blames another's work.
 * Notes are written and removed only by these triggers (the table refuses other changes).
 *
 * SQLite keeps its deferred foreign key: SQLite counts unresolved references as rows come and
 * checks the count at COMMIT, which costs nothing measurable.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  if (dialect !== "postgres") return;
  for (const statement of recordedPerStatement()) await statement.execute(db);
}

function recordedPerStatement() {
  return [
    sql`ALTER TABLE ledger_postings DROP CONSTRAINT ledger_postings_transaction_id_fkey`,
    sql`CREATE TABLE ledger_posting_batches (
      id bigserial PRIMARY KEY,
      first_posting_id bigint NOT NULL,
      last_posting_id bigint NOT NULL
    )`,
    sql`CREATE FUNCTION ledger_posting_batches_note() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ledger_posting_batches (first_posting_id, last_posting_id)
          SELECT MIN(id), MAX(id) FROM new_postings HAVING COUNT(*) > 0;
        RETURN NULL;
      END $$`,
    sql`CREATE TRIGGER ledger_postings_note_batch AFTER INSERT ON ledger_postings
      REFERENCING NEW TABLE AS new_postings
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_posting_batches_note()`,
    sql`CREATE FUNCTION ledger_posting_batches_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE bad record;
      BEGIN
        SELECT d.transaction_id INTO bad
          FROM (SELECT DISTINCT transaction_id FROM ledger_postings
                WHERE id BETWEEN NEW.first_posting_id AND NEW.last_posting_id) d
          WHERE NOT EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.id = d.transaction_id)
          LIMIT 1;
        IF FOUND THEN
          RAISE EXCEPTION 'LEDGER_UNRECORDED: postings of transaction % have no transaction row',
            bad.transaction_id USING ERRCODE = 'foreign_key_violation';
        END IF;
        DELETE FROM ledger_posting_batches WHERE id = NEW.id;
        RETURN NULL;
      END $$`,
    sql`CREATE CONSTRAINT TRIGGER ledger_posting_batches_recorded AFTER INSERT ON ledger_posting_batches
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_posting_batches_recorded()`,
    // Notes come and go only through the two triggers above (trigger depth 2 and more).
    sql`CREATE FUNCTION ledger_posting_batches_internal() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF pg_trigger_depth() < 2 THEN
          RAISE EXCEPTION 'LEDGER_BATCH_INTERNAL: posting batch notes are written by the ledger triggers only'
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
      END $$`,
    sql`CREATE TRIGGER ledger_posting_batches_internal BEFORE INSERT OR UPDATE OR DELETE
      ON ledger_posting_batches FOR EACH ROW EXECUTE FUNCTION ledger_posting_batches_internal()`,
    sql`CREATE TRIGGER ledger_posting_batches_no_truncate BEFORE TRUNCATE ON ledger_posting_batches
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()`,
  ];
}
