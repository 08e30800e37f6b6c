"""Indexes for the queries bench/inbox.py measured on 100k conversations and 1M messages.

Without them a conversation's messages, the AI's context and "is this message answered?" scanned
the whole message table (100-250 ms at 1M messages); the inbox and /open scanned every conversation.
The conversation indexes are partial (only the few conversations people have), written in SQL that
SQLite and PostgreSQL both accept, since Tortoise's PartialIndex takes only equality conditions.
"""

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

WITH_PEOPLE = "status IN ('waiting', 'assigned')"


class Migration(migrations.Migration):
    dependencies = [("models", "0004_widget")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Message",
            index=Index(fields=["conversation_id", "id"], name="message_conversation_id_idx"),
        ),
        ops.AddIndex(
            model_name="Message",
            index=Index(fields=["reply_to_id"], name="message_reply_to_id_idx"),
        ),
        ops.RunSQL(
            [
                "CREATE INDEX conversation_with_people_idx ON conversation "
                f"(bot_id, last_message_at DESC, id DESC) WHERE {WITH_PEOPLE}",
                f"CREATE INDEX conversation_waiting_idx ON conversation (bot_id, handed_off_at) WHERE {WITH_PEOPLE}",
                "CREATE INDEX conversation_card_idx ON conversation (bot_id, manager_card_id) "
                "WHERE manager_card_id IS NOT NULL",
            ],
            reverse_sql=[
                "DROP INDEX conversation_with_people_idx",
                "DROP INDEX conversation_waiting_idx",
                "DROP INDEX conversation_card_idx",
            ],
        ),
    ]
