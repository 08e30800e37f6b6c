"""An index on `user.linked_to_id`: a Telegram customer's own conversations (the Mini App, the export)
include those of the website visitors linked to them, and without it that lookup scanned every user
(19 ms at 60,000 users in bench/miniapp_api.py, on every "my conversations" request)."""

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0012_staff_roles")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="User",
            index=Index(fields=["linked_to_id"], name="user_linked_to_idx"),
        ),
    ]
